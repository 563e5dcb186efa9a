//! `gen-data`: fills a fresh store with synthetic events through the real
//! store writer, so query, storage and start-up figures can be reproduced.
//!
//! Events are spread over the last `--days` days (weekdays busier than
//! weekends, daytime busier than night) as visits like sites see them:
//! one to a dozen page views seconds to minutes apart (about half the
//! visits bounce), dwell-time pings of each page view (as a tracker script
//! sends them), a few percent downloads, outbound clicks and searches, and
//! some visitors back for a second visit later in the day. Pages follow a
//! Zipf law over `--pages` paths, referrers come from a short list (direct,
//! search engines, social, other sites) and only the visit's first page
//! view carries one, devices come from a fixed list of realistic
//! classifications. Everything is deterministic for a given `--seed`.
//!
//! ```text
//! cargo run --release --bin gen-data -- --data-dir /tmp/big --events 1000000
//! # one day of 1 M events, 100 days ago (for the sweep benchmark)
//! cargo run --release --bin gen-data -- --data-dir /tmp/old --events 1000000 --days 1 --days-ago 100
//! ```

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use sparsam::model::{Campaign, Device, DeviceType, Event, EventKind, Referrer, ReferrerType};
use sparsam::privacy::{AnonIp, IpMasks};
use sparsam::store::{Store, StoreOptions, Writer, WriterOptions};

#[derive(Parser)]
#[command(
    name = "gen-data",
    about = "Fill a fresh sparsam store with synthetic events"
)]
struct Args {
    /// Directory for the new store (`sparsam.redb` inside; must not exist yet).
    #[arg(long)]
    data_dir: PathBuf,
    /// Number of events.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Days the events are spread over, ending today.
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// Shift the days this far into the past (e.g. beyond the retention
    /// period, to measure a sweep).
    #[arg(long, default_value_t = 0)]
    days_ago: u32,
    /// Site id of the events.
    #[arg(long, default_value = "bench")]
    site: String,
    /// Distinct page paths (Zipf-distributed).
    #[arg(long, default_value_t = 20_000)]
    pages: usize,
    /// Events per submitted write request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Seed of the pseudo-random generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// redb cache in MiB.
    #[arg(long, default_value_t = 256)]
    cache_mb: usize,
}

/// xorshift64*: small, fast and good enough for synthetic data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf(s = 1) sampler over `0..n` by inverse CDF.
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for k in 1..=n.max(1) {
            acc += 1.0 / k as f64;
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf(cdf)
    }
    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.0.partition_point(|&c| c < u).min(self.0.len() - 1)
    }
}

#[allow(clippy::too_many_arguments)]
fn device(
    t: DeviceType,
    brand: &str,
    model: &str,
    os: &str,
    osv: &str,
    browser: &str,
    bv: &str,
    engine: &str,
) -> Device {
    Device {
        device_type: t,
        brand: brand.into(),
        model: model.into(),
        os: os.into(),
        os_version: osv.into(),
        browser: browser.into(),
        browser_version: bv.into(),
        engine: engine.into(),
        engine_version: bv.into(),
        bot: false,
    }
}

/// (weight, device)
fn devices() -> Vec<(u32, Device)> {
    use DeviceType::*;
    vec![
        (
            30,
            device(Desktop, "", "", "Windows", "10", "Chrome", "131.0", "Blink"),
        ),
        (
            10,
            device(Desktop, "", "", "Windows", "10", "Edge", "131.0", "Blink"),
        ),
        (
            8,
            device(
                Desktop, "", "", "Windows", "10", "Firefox", "133.0", "Gecko",
            ),
        ),
        (
            8,
            device(
                Desktop, "Apple", "Mac", "Mac OS X", "10.15", "Safari", "18.1", "WebKit",
            ),
        ),
        (
            3,
            device(Desktop, "", "", "Linux", "", "Firefox", "133.0", "Gecko"),
        ),
        (
            15,
            device(
                Smartphone, "Apple", "iPhone", "iOS", "18.1", "Safari", "18.1", "WebKit",
            ),
        ),
        (
            10,
            device(
                Smartphone,
                "Samsung",
                "SM-S921B",
                "Android",
                "14",
                "Samsung Internet",
                "26.0",
                "Blink",
            ),
        ),
        (
            6,
            device(
                Smartphone, "Google", "Pixel 8", "Android", "15", "Chrome", "131.0", "Blink",
            ),
        ),
        (
            4,
            device(
                Tablet, "Apple", "iPad", "iOS", "17.6", "Safari", "17.6", "WebKit",
            ),
        ),
        (
            2,
            device(
                Tablet, "Samsung", "SM-X710", "Android", "14", "Chrome", "131.0", "Blink",
            ),
        ),
        (
            1,
            device(
                Tv,
                "Samsung",
                "Smart TV",
                "Tizen",
                "7.0",
                "Samsung Internet",
                "5.0",
                "Blink",
            ),
        ),
        (3, device(Other, "", "", "", "", "", "", "")),
    ]
}

/// (weight, referrer)
fn referrers() -> Vec<(u32, Referrer)> {
    let r = |kind, name: &str, url: &str| Referrer {
        kind,
        name: name.into(),
        url: url.into(),
    };
    vec![
        (45, Referrer::default()),
        (
            28,
            r(ReferrerType::Search, "Google", "https://www.google.de/"),
        ),
        (5, r(ReferrerType::Search, "Bing", "https://www.bing.com/")),
        (
            3,
            r(
                ReferrerType::Search,
                "DuckDuckGo",
                "https://duckduckgo.com/",
            ),
        ),
        (
            5,
            r(ReferrerType::Social, "Mastodon", "https://mastodon.social/"),
        ),
        (
            3,
            r(
                ReferrerType::Social,
                "LinkedIn",
                "https://www.linkedin.com/",
            ),
        ),
        (
            6,
            r(
                ReferrerType::Website,
                "www.heise.de",
                "https://www.heise.de/news/",
            ),
        ),
        (
            5,
            r(
                ReferrerType::Website,
                "de.wikipedia.org",
                "https://de.wikipedia.org/wiki/",
            ),
        ),
    ]
}

fn pick<'a, T>(rng: &mut Rng, items: &'a [(u32, T)]) -> &'a T {
    let total: u32 = items.iter().map(|(w, _)| w).sum();
    let mut x = rng.below(total as u64) as u32;
    for (w, t) in items {
        if x < *w {
            return t;
        }
        x -= w;
    }
    &items[items.len() - 1].1
}

const SECTIONS: [&str; 8] = [
    "produkte",
    "blog",
    "hilfe",
    "ueber-uns",
    "presse",
    "jobs",
    "kontakt",
    "docs",
];

/// Relative traffic by hour of day (UTC), night low, afternoon high.
const HOURS: [u32; 24] = [
    2, 1, 1, 1, 1, 2, 4, 7, 9, 10, 10, 10, 9, 10, 10, 10, 9, 8, 8, 8, 7, 6, 4, 3,
];

/// Longest pause between two page views of one visit: below the 30-minute
/// visit timeout, so a visit's page views stay one visit.
const MAX_GAP_MS: u64 = 10 * 60 * 1000;

/// Generates one day's events as sites see them: visits of one to a dozen
/// page views (about half of them bounces), seconds to minutes apart,
/// entered from a referrer that only the first page view carries, each
/// page view followed by the tracker's dwell pings while it is visible,
/// with occasional downloads, outbound clicks and site searches; some
/// visitors come back later in the day for a second visit.
struct DayPlan<'a> {
    rng: &'a mut Rng,
    zipf: &'a Zipf,
    devices: &'a [(u32, Device)],
    referrers: &'a [(u32, Referrer)],
    hour_weights: &'a [(u32, usize)],
    site: &'a str,
    /// UTC day number (days since 1970-01-01).
    day: i64,
}

impl DayPlan<'_> {
    fn events(mut self, target: u64) -> Vec<Event> {
        let mut out = Vec::with_capacity(target as usize + 64);
        let mut visitor_no = 0u64;
        while (out.len() as u64) < target {
            visitor_no += 1;
            let visitor = (self.day as u64).wrapping_mul(0x1000_0000_01b3)
                ^ visitor_no.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            // A visitor keeps device and address for the day.
            let mut traits = Rng(visitor | 1);
            let device = pick(&mut traits, self.devices).clone();
            let ip = AnonIp::truncate(
                std::net::IpAddr::from([
                    (traits.below(200) + 20) as u8,
                    traits.below(256) as u8,
                    0,
                    1,
                ]),
                &IpMasks::DEFAULT,
            );
            let hour = *pick(self.rng, self.hour_weights) as i64;
            let mut start =
                self.day * 86_400_000 + hour * 3_600_000 + self.rng.below(3_600_000) as i64;
            // One visitor in eight comes back for a second visit an hour
            // or more later (a new visit: past the 30-minute timeout).
            let visits = if self.rng.below(8) == 0 { 2 } else { 1 };
            for _ in 0..visits {
                let end = self.visit(&mut out, visitor, &device, ip, start);
                start = end + 3_600_000 + self.rng.below(4 * 3_600_000) as i64;
                if start >= (self.day + 1) * 86_400_000 {
                    break;
                }
            }
        }
        out.truncate(target as usize);
        out
    }

    /// Appends one visit's events starting at `start`; returns its last timestamp.
    fn visit(
        &mut self,
        out: &mut Vec<Event>,
        visitor: u64,
        device: &Device,
        ip: AnonIp,
        start: i64,
    ) -> i64 {
        let referrer = pick(self.rng, self.referrers).clone();
        // Half the visits bounce; the others read 2 + a geometric number
        // of further pages (mean about 3.5 pages for a non-bounce).
        let pages = if self.rng.below(100) < 50 {
            1
        } else {
            let mut n = 2;
            while n < 12 && self.rng.below(100) < 60 {
                n += 1;
            }
            n
        };
        let day_end = (self.day + 1) * 86_400_000 - 1;
        let mut ts = start;
        for page_no in 0..pages {
            let page = self.zipf.sample(self.rng);
            let url = format!(
                "https://www.example.org/{}/seite-{page}",
                SECTIONS[page % SECTIONS.len()]
            );
            let pageview_id = self.rng.next().max(1);
            let base = Event {
                site: self.site.to_string(),
                ts_ms: ts,
                kind: EventKind::PageView,
                visitor,
                pageview_id,
                url,
                title: format!("Seite {page} – Example"),
                referrer: if page_no == 0 {
                    referrer.clone()
                } else {
                    Referrer::default()
                },
                campaign: Campaign::default(),
                target: String::new(),
                search_term: String::new(),
                search_results: None,
                engaged_ms: 0,
                device: device.clone(),
                plugins: 1,
                anon_ip: ip,
                custom: None,
            };
            out.push(base.clone());
            // Time on the page: log-uniform between 5 s and the longest gap.
            let dwell = (5_000.0 * (MAX_GAP_MS as f64 / 5_000.0).powf(self.rng.unit())) as u64;
            let follow_up = |rng: &mut Rng, kind: EventKind, at: i64| Event {
                ts_ms: at.min(day_end),
                kind,
                referrer: Referrer::default(),
                target: match kind {
                    EventKind::Download => {
                        format!(
                            "https://www.example.org/files/bericht-{}.pdf",
                            rng.below(300)
                        )
                    }
                    EventKind::Outbound => {
                        format!("https://partner-{}.example.net/", rng.below(50))
                    }
                    _ => String::new(),
                },
                search_term: if kind == EventKind::Search {
                    format!("begriff {}", rng.below(500))
                } else {
                    String::new()
                },
                ..base.clone()
            };
            let roll = self.rng.below(100);
            let click_at = ts + (dwell / 2) as i64;
            match roll {
                0..=3 => out.push(follow_up(self.rng, EventKind::Download, click_at)),
                4..=6 => out.push(follow_up(self.rng, EventKind::Outbound, click_at)),
                7..=9 => out.push(follow_up(self.rng, EventKind::Search, click_at)),
                // a declared custom event (see the example site's
                // [[sites.events]] in docs/performance.md); draws nothing
                // from the generator, so the rest of the data stays as it was
                10..=11 => out.push(Event {
                    custom: Some(sparsam::goals::CustomEvent {
                        name: "signup".into(),
                        props: vec![(
                            "plan".into(),
                            if page % 2 == 0 { "free" } else { "pro" }.into(),
                        )],
                        revenue_cents: if page % 2 == 0 { 0 } else { 990 },
                    }),
                    ..follow_up(self.rng, EventKind::Custom, click_at)
                }),
                _ => {}
            }
            // Dwell pings: the tracker reports engaged time when the page
            // is hidden or left; most page views send one or two.
            let pings = match self.rng.below(10) {
                0..=2 => 0,
                3..=7 => 1,
                _ => 2,
            };
            for k in 1..=pings {
                let at = ts + (dwell * k / pings) as i64;
                let mut ping = follow_up(self.rng, EventKind::Ping, at);
                ping.engaged_ms = (dwell * k / pings).min(u64::from(u32::MAX)) as u32;
                out.push(ping);
            }
            ts = (ts + dwell as i64 + 1_000).min(day_end);
        }
        ts
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let path = args.data_dir.join("sparsam.redb");
    if path.exists() {
        bail!(
            "{} exists already; gen-data only fills a fresh store",
            path.display()
        );
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let store = Arc::new(
        Store::open(
            &path,
            &StoreOptions {
                cache_size: args.cache_mb * 1024 * 1024,
            },
        )
        .context("opening the store")?,
    );
    let mut opts = WriterOptions::default();
    opts.site_timezones
        .insert(args.site.clone(), chrono_tz::Tz::UTC);
    let writer = Writer::spawn(store.clone(), opts).context("starting the writer")?;

    let mut rng = Rng(args.seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let zipf = Zipf::new(args.pages);
    let devices = devices();
    let referrers = referrers();
    let hour_weights: Vec<(u32, usize)> = HOURS.iter().copied().zip(0..24).collect();

    // Day weights: weekends at 60 %.
    let today = chrono::Utc::now().timestamp().div_euclid(86_400) - i64::from(args.days_ago);
    let first_day = today - i64::from(args.days) + 1;
    let day_w: Vec<f64> = (first_day..=today)
        .map(|d| if (d + 3).rem_euclid(7) >= 5 { 0.6 } else { 1.0 })
        .collect();
    let w_sum: f64 = day_w.iter().sum();
    let now_ms = chrono::Utc::now().timestamp_millis();

    let started = Instant::now();
    let mut written = 0u64;
    let mut generated = 0u64;
    let mut inflight = VecDeque::new();
    let mut batch = Vec::with_capacity(args.batch);
    for (i, day) in (first_day..=today).enumerate() {
        let remaining = args.events.saturating_sub(generated);
        let target = if i + 1 == day_w.len() {
            remaining
        } else {
            ((args.events as f64 * day_w[i] / w_sum).round() as u64).min(remaining)
        };
        let mut day_events = DayPlan {
            rng: &mut rng,
            zipf: &zipf,
            devices: &devices,
            referrers: &referrers,
            hour_weights: &hour_weights,
            site: &args.site,
            day,
        }
        .events(target);
        // Time order within the day, as the writer sees it live; nothing
        // from the future on today.
        day_events.retain(|e| e.ts_ms < now_ms);
        day_events.sort_by_key(|e| e.ts_ms);
        generated += target;
        for event in day_events {
            batch.push(event);
            if batch.len() == args.batch {
                let events = std::mem::replace(&mut batch, Vec::with_capacity(args.batch));
                written += events.len() as u64;
                inflight.push_back(writer.submit(events).map_err(|e| anyhow::anyhow!("{e}"))?);
                if inflight.len() > 16 {
                    if let Some(rx) = inflight.pop_front() {
                        rx.blocking_recv().context("writer gone")??;
                    }
                }
            }
        }
    }
    if !batch.is_empty() {
        written += batch.len() as u64;
        inflight.push_back(writer.submit(batch).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    for rx in inflight {
        rx.blocking_recv().context("writer gone")??;
    }
    writer.shutdown_blocking().context("stopping the writer")?;
    let elapsed = started.elapsed();
    let count = store.event_count()?;
    drop(store);
    let bytes = std::fs::metadata(&path)?.len();
    println!(
        "wrote {written} events ({count} stored) over {} days in {:.1} s = {:.0} events/s",
        args.days,
        elapsed.as_secs_f64(),
        written as f64 / elapsed.as_secs_f64()
    );
    println!(
        "file {} : {} bytes = {:.1} bytes per event",
        path.display(),
        bytes,
        bytes as f64 / count.max(1) as f64
    );
    Ok(())
}
