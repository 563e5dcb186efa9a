//! `gen-data`: fills a fresh store with synthetic events through the real
//! store writer, so query, storage and start-up figures can be reproduced.
//!
//! Events are spread over the last `--days` days (weekdays busier than
//! weekends, daytime busier than night), pages follow a Zipf law over
//! `--pages` paths, referrers come from a short list (direct, two search
//! engines, social, other sites), devices from a fixed list of realistic
//! classifications, and visitors repeat within a day. About a quarter of
//! the events are dwell-time pings of the visitor's latest page view (as a
//! tracker script sends them), a few percent downloads, outbound clicks and
//! searches. Everything is deterministic for a given `--seed`.
//!
//! ```text
//! cargo run --release --bin gen-data -- --data-dir /tmp/big --events 1000000
//! # one day of 1 M events, 100 days ago (for the sweep benchmark)
//! cargo run --release --bin gen-data -- --data-dir /tmp/old --events 1000000 --days 1 --days-ago 100
//! ```

use std::collections::{HashMap, VecDeque};
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
    let mut visitor_pages: HashMap<u64, usize> = HashMap::new();
    let mut last_pv: HashMap<u64, (u64, u32)> = HashMap::new();
    let mut last_url: HashMap<u64, String> = HashMap::new();
    for (i, day) in (first_day..=today).enumerate() {
        let remaining = args.events.saturating_sub(generated);
        let n = if i + 1 == day_w.len() {
            remaining
        } else {
            ((args.events as f64 * day_w[i] / w_sum).round() as u64).min(remaining)
        };
        // Timestamps of the day, sorted: the writer sees time order, as live.
        let mut ts: Vec<i64> = (0..n)
            .map(|_| {
                let hour = *pick(&mut rng, &hour_weights) as i64;
                day * 86_400_000 + hour * 3_600_000 + rng.below(3_600_000) as i64
            })
            .filter(|&t| t < now_ms)
            .collect();
        ts.sort_unstable();
        // About three page views per visitor and day.
        let pool = (n / 3).max(1);
        visitor_pages.clear();
        last_pv.clear();
        last_url.clear();
        for t in ts {
            let v = rng.below(pool);
            let visitor =
                (day as u64).wrapping_mul(0x1000_0000_01b3) ^ v.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            // A visitor keeps device and referrer for the day.
            let mut vr = Rng(visitor | 1);
            let dev = pick(&mut vr, &devices).clone();
            let referrer = pick(&mut vr, &referrers).clone();
            let ip = AnonIp::truncate(
                std::net::IpAddr::from([(vr.below(200) + 20) as u8, vr.below(256) as u8, 0, 1]),
                &IpMasks::DEFAULT,
            );
            let seen = visitor_pages.entry(visitor).or_insert(0);
            *seen += 1;
            let page = zipf.sample(&mut rng);
            let url = format!(
                "https://www.example.org/{}/seite-{page}",
                SECTIONS[page % SECTIONS.len()]
            );
            // Page views get a fresh page-view id; pings (a quarter of all
            // events, as a tracker's visibility reports make them), clicks
            // and searches belong to the visitor's latest page view.
            let roll = rng.below(100);
            let last = last_pv.get(&visitor).copied();
            let (kind, target, term) = match (roll, last) {
                (0..=2, _) => (
                    EventKind::Download,
                    format!(
                        "https://www.example.org/files/bericht-{}.pdf",
                        rng.below(300)
                    ),
                    String::new(),
                ),
                (3..=4, _) => (
                    EventKind::Outbound,
                    format!("https://partner-{}.example.net/", rng.below(50)),
                    String::new(),
                ),
                (5..=6, _) => (
                    EventKind::Search,
                    String::new(),
                    format!("begriff {}", rng.below(500)),
                ),
                (7..=31, Some(_)) => (EventKind::Ping, String::new(), String::new()),
                _ => (EventKind::PageView, String::new(), String::new()),
            };
            let (pageview_id, engaged_ms) = match (kind, last) {
                (EventKind::PageView, _) | (_, None) => {
                    let id = rng.next().max(1);
                    last_pv.insert(visitor, (id, 0));
                    (id, 0)
                }
                (EventKind::Ping, Some((id, engaged))) => {
                    let e = engaged + 5_000 + rng.below(60_000) as u32;
                    last_pv.insert(visitor, (id, e));
                    (id, e)
                }
                (_, Some((id, _))) => (id, 0),
            };
            let url = match (kind, last_url.get(&visitor)) {
                (EventKind::PageView, _) | (_, None) => {
                    last_url.insert(visitor, url.clone());
                    url
                }
                (_, Some(u)) => u.clone(),
            };
            generated += 1;
            batch.push(Event {
                site: args.site.clone(),
                ts_ms: t,
                kind,
                visitor,
                pageview_id,
                url,
                title: format!("Seite {page} – Example"),
                referrer: if *seen == 1 {
                    referrer
                } else {
                    Referrer::default()
                },
                campaign: Campaign::default(),
                target,
                search_term: term,
                search_results: None,
                engaged_ms,
                device: dev,
                plugins: 1,
                anon_ip: ip,
            });
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
