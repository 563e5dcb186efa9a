//! A seeded, varied workload for the reporting tests, and a ledger of what
//! every report must say about it.
//!
//! The generator builds visits explicitly (several visitors with fixed
//! devices, one to three visits a day each, page views with titles, pings
//! with rising and repeated engaged times, pings that arrive after the
//! visit ended, downloads, outbound clicks, site searches with and without
//! results, search/social/website/campaign/internal/direct referrers), so
//! the ledger can count them by the documented rules without rebuilding
//! visits from events: it is an independent account, not a second copy of
//! the code under test.
//!
//! Every visit lies between 03:00 and 22:30 local time, so none crosses a
//! local or UTC midnight (a visit that began before a range start is
//! counted differently by raw scans on purpose, see docs/reporting-api.md).
//! Events are written through the store's public writer before the server
//! starts (see `Server::start_seeded`), with the timestamps of past days.

#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use sparsam::model::{
    plugins, Campaign, Device, DeviceType, Event, EventKind, Referrer, ReferrerType,
};
use sparsam::privacy::{AnonIp, IpMasks};

/// Every dimension of the breakdown endpoint except `search_no_results`.
pub const DIMS: [&str; 22] = [
    "page",
    "title",
    "entry_page",
    "exit_page",
    "referrer",
    "referrer_type",
    "search_engine",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "download",
    "outbound",
    "search_term",
    "device_type",
    "brand",
    "model",
    "os",
    "os_version",
    "browser",
    "browser_version",
    "engine",
    "plugin",
];

/// Headline counts of one local day (or, added up, of a range).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Day {
    pub pageviews: u64,
    pub visits: u64,
    pub visitors: u64,
    pub bounces: u64,
    pub dwell_ms_sum: u64,
    pub dwell_pageviews: u64,
    pub downloads: u64,
    pub outbound: u64,
    pub searches: u64,
}

impl Day {
    pub fn add(&mut self, o: &Day) {
        self.pageviews += o.pageviews;
        self.visits += o.visits;
        self.visitors += o.visitors;
        self.bounces += o.bounces;
        self.dwell_ms_sum += o.dwell_ms_sum;
        self.dwell_pageviews += o.dwell_pageviews;
        self.downloads += o.downloads;
        self.outbound += o.outbound;
        self.searches += o.searches;
    }

    pub fn views_per_visit(&self) -> f64 {
        ratio(self.pageviews, self.visits)
    }

    pub fn bounce_rate(&self) -> f64 {
        ratio(self.bounces, self.visits)
    }

    pub fn avg_dwell_seconds(&self) -> f64 {
        ratio(self.dwell_ms_sum, self.visits) / 1000.0
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// `[pageviews, visits, events]` per value.
pub type Rows = BTreeMap<String, [u64; 3]>;

/// What the reports must say, per local day.
#[derive(Debug, Default)]
pub struct Ledger {
    pub days: BTreeMap<NaiveDate, Day>,
    /// (day, dimension) -> value -> counters; `search_no_results` included.
    pub dims: BTreeMap<(NaiveDate, &'static str), Rows>,
}

impl Ledger {
    pub fn totals(&self, from: NaiveDate, to: NaiveDate) -> Day {
        let mut t = Day::default();
        for (_, d) in self.days.range(from..=to) {
            t.add(d);
        }
        t
    }

    pub fn rows(&self, dim: &str, from: NaiveDate, to: NaiveDate) -> Rows {
        let mut out = Rows::new();
        for ((day, d), rows) in &self.dims {
            if *d != dim || *day < from || *day > to {
                continue;
            }
            for (v, c) in rows {
                let e = out.entry(v.clone()).or_default();
                for i in 0..3 {
                    e[i] += c[i];
                }
            }
        }
        out
    }

    fn day(&mut self, d: NaiveDate) -> &mut Day {
        self.days.entry(d).or_default()
    }

    fn count(&mut self, d: NaiveDate, dim: &'static str, value: &str, field: usize) {
        if value.is_empty() {
            return;
        }
        self.dims
            .entry((d, dim))
            .or_default()
            .entry(value.to_string())
            .or_default()[field] += 1;
    }
}

const PV: usize = 0;
const VISIT: usize = 1;
const EVENT: usize = 2;

/// What to generate.
pub struct Spec {
    pub site: &'static str,
    pub tz: Tz,
    /// The site's host, for page URLs.
    pub host: &'static str,
    pub seed: u64,
    pub persons: usize,
    /// Local days, counted back from today: `first_back..=last_back`
    /// (e.g. `1..=14` for the two weeks before today).
    pub first_back: i64,
    pub last_back: i64,
    /// Chance that a person visits on a given day.
    pub activity: f64,
    /// Strings that must be shown literally wherever they appear: used as
    /// extra page title, search term, referrer and campaign values.
    pub hostile: Vec<String>,
}

/// A device from `[brand, model, os, os version, browser, browser
/// version, engine]`.
fn device(t: DeviceType, f: [&str; 7]) -> Device {
    let [brand, model, os, osv, browser, bv, engine] = f;
    Device {
        device_type: t,
        brand: brand.into(),
        model: model.into(),
        os: os.into(),
        os_version: osv.into(),
        browser: browser.into(),
        browser_version: bv.into(),
        engine: engine.into(),
        engine_version: String::new(),
        bot: false,
    }
}

/// Devices and plugin sets, one per person (cycled).
fn profiles() -> Vec<(Device, u16)> {
    use DeviceType::*;
    vec![
        (
            device(
                Desktop,
                ["", "", "GNU/Linux", "", "Firefox", "128.0", "Gecko"],
            ),
            plugins::PDF | plugins::COOKIES,
        ),
        (
            device(
                Desktop,
                ["", "", "Windows", "10", "Chrome", "124.0.0.0", "Blink"],
            ),
            plugins::PDF | plugins::COOKIES | plugins::JAVA,
        ),
        (
            device(
                Smartphone,
                [
                    "Apple",
                    "iPhone",
                    "iOS",
                    "17.5",
                    "Mobile Safari",
                    "17.5",
                    "WebKit",
                ],
            ),
            plugins::COOKIES,
        ),
        (
            device(
                Smartphone,
                [
                    "Samsung",
                    "SM-G991B",
                    "Android",
                    "14",
                    "Chrome Mobile",
                    "124.0",
                    "Blink",
                ],
            ),
            plugins::COOKIES,
        ),
        (
            device(
                Tablet,
                [
                    "Apple", "iPad", "iPadOS", "17.5", "Safari", "17.5", "WebKit",
                ],
            ),
            0,
        ),
        (
            device(
                Desktop,
                ["Apple", "Mac", "Mac", "14.5", "Safari", "17.5", "WebKit"],
            ),
            plugins::PDF | plugins::COOKIES | plugins::QUICKTIME,
        ),
        (
            device(
                Tv,
                [
                    "Samsung",
                    "Smart TV",
                    "Tizen",
                    "6.0",
                    "Samsung Browser",
                    "20.0",
                    "Blink",
                ],
            ),
            0,
        ),
    ]
}

struct Page {
    path: &'static str,
    title: &'static str,
}

const PAGES: [Page; 7] = [
    Page {
        path: "/",
        title: "Home",
    },
    Page {
        path: "/docs",
        title: "Documentation",
    },
    Page {
        path: "/docs/install",
        title: "Install",
    },
    Page {
        path: "/blog/2026/autumn",
        title: "Autumn news",
    },
    Page {
        path: "/about",
        title: "About us",
    },
    Page {
        path: "/contact",
        // a page without a title: no row in the title list
        title: "",
    },
    Page {
        path: "/shop/cart",
        title: "Cart",
    },
];

const DOWNLOADS: [&str; 3] = [
    "/files/guide.pdf",
    "/files/price-list.pdf",
    "/files/map.zip",
];
const OUTBOUND: [&str; 3] = [
    "https://partner.example/",
    "https://www.wikipedia.org/wiki/Statistics",
    "https://elsewhere.example/page",
];
const TERMS: [&str; 4] = [
    "install guide",
    "opening hours",
    "preise",
    "nothing-matches-this",
];

fn referrer(rng: &mut fastrand::Rng, host: &str, hostile: &[String]) -> (Referrer, Campaign) {
    let r = |kind, name: &str, url: &str| Referrer {
        kind,
        name: name.into(),
        url: url.into(),
    };
    let c = |s: &str, m: &str, n: &str| Campaign {
        source: s.into(),
        medium: m.into(),
        campaign: n.into(),
    };
    match rng.u32(0..100) {
        0..=24 => (Referrer::default(), Campaign::default()),
        25..=39 => (
            r(ReferrerType::Search, "Google", "https://www.google.com/"),
            Campaign::default(),
        ),
        40..=47 => (
            r(
                ReferrerType::Search,
                "DuckDuckGo",
                "https://duckduckgo.com/",
            ),
            Campaign::default(),
        ),
        48..=57 => (
            r(
                ReferrerType::Social,
                "Mastodon",
                "https://mastodon.social/@someone/1",
            ),
            Campaign::default(),
        ),
        58..=69 => (
            r(
                ReferrerType::Website,
                "",
                "https://news.example.net/article/7",
            ),
            Campaign::default(),
        ),
        70..=79 => (
            r(
                ReferrerType::Campaign,
                "",
                "https://newsletter.example/issue/3",
            ),
            c("newsletter", "email", "autumn-sale"),
        ),
        80..=85 => (
            r(ReferrerType::Campaign, "", ""),
            // a campaign without a name: no utm_campaign row
            c("mastodon", "social", ""),
        ),
        86..=91 => (
            r(ReferrerType::Internal, "", &format!("https://{host}/docs")),
            Campaign::default(),
        ),
        _ => match hostile.get(rng.usize(..hostile.len().max(1))) {
            Some(h) => (
                // not a URL: the referrer list shows it as it is
                r(ReferrerType::Website, "", h),
                c(h, "web", h),
            ),
            None => (Referrer::default(), Campaign::default()),
        },
    }
}

fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser: visitor hashes and page-view ids
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Today in `tz`.
pub fn today(tz: &Tz) -> NaiveDate {
    Utc::now().with_timezone(tz).date_naive()
}

fn local_ms(tz: &Tz, day: NaiveDate, minute: i64) -> i64 {
    let naive = day.and_hms_opt(0, 0, 0).expect("midnight") + Duration::minutes(minute);
    tz.from_local_datetime(&naive)
        .earliest()
        .expect("03:00-23:00 exists on every day")
        .timestamp_millis()
}

/// Generates the events (time order) and their ledger.
pub fn generate(spec: &Spec) -> (Vec<Event>, Ledger) {
    let mut rng = fastrand::Rng::with_seed(spec.seed);
    let profiles = profiles();
    let today = today(&spec.tz);
    let mut events = Vec::new();
    let mut ledger = Ledger::default();
    let ip = AnonIp::truncate("198.51.100.77".parse().expect("ip"), &IpMasks::DEFAULT);
    let mut next_pv = 1u64;
    let base = |site: &str, ts_ms, kind, visitor| Event {
        site: site.to_string(),
        ts_ms,
        kind,
        visitor,
        pageview_id: 0,
        url: String::new(),
        title: String::new(),
        referrer: Referrer::default(),
        campaign: Campaign::default(),
        target: String::new(),
        search_term: String::new(),
        search_results: None,
        engaged_ms: 0,
        device: Device::default(),
        plugins: 0,
        anon_ip: ip,
        custom: None,
    };
    let url = |path: &str| format!("https://{}{path}", spec.host);

    for back in (spec.first_back..=spec.last_back).rev() {
        let day = today - Duration::days(back);
        ledger.day(day);
        for person in 0..spec.persons {
            if !chance(&mut rng, spec.activity) {
                continue;
            }
            let (dev, plug) = profiles[person % profiles.len()].clone();
            // the salt changes daily, so the hash does too
            let visitor = mix(spec.seed ^ mix(((person as u64) << 32) | back as u64));
            ledger.day(day).visitors += 1;
            let sessions = rng.usize(1..=3);
            // 03:00 to 22:00 split into equal slots; a visit and its late
            // pings fit into the first part of its slot, so visits of one
            // person are always more than 30 minutes apart.
            let slot = (22 - 3) * 60 / sessions as i64;
            for s in 0..sessions {
                let start_min = 3 * 60 + s as i64 * slot + rng.i64(0..(slot - 130));
                let mut ts = local_ms(&spec.tz, day, start_min);
                let (refr, camp) = referrer(&mut rng, spec.host, &spec.hostile);
                let mut visit_pvs: Vec<String> = Vec::new();
                // per page view of this visit: (id, largest engaged time)
                let mut dwell: Vec<(u64, u32)> = Vec::new();
                let steps = rng.usize(1..=7);
                let mk = |kind, ts| {
                    let mut e = base(spec.site, ts, kind, visitor);
                    e.device = dev.clone();
                    e.plugins = plug;
                    e
                };
                for step in 0..steps {
                    if step > 0 {
                        ts += rng.i64(5_000..12 * 60_000);
                    }
                    let roll = rng.u32(0..100);
                    let mut kind = match (step, roll) {
                        (0, 0..=84) => EventKind::PageView,
                        (0, 85..=91) => EventKind::Download,
                        (0, 92..=95) => EventKind::Search,
                        (0, _) => EventKind::Outbound,
                        (_, 0..=44) => EventKind::PageView,
                        (_, 45..=69) => EventKind::Ping,
                        (_, 70..=79) => EventKind::Download,
                        (_, 80..=87) => EventKind::Outbound,
                        _ => EventKind::Search,
                    };
                    if kind == EventKind::Ping && dwell.is_empty() {
                        kind = EventKind::PageView;
                    }
                    let mut e = mk(kind, ts);
                    let current = visit_pvs.last().cloned().unwrap_or_else(|| url("/"));
                    e.url = current.clone();
                    if step == 0 {
                        e.referrer = refr.clone();
                        e.campaign = camp.clone();
                    } else {
                        e.referrer = Referrer {
                            kind: ReferrerType::Internal,
                            name: String::new(),
                            url: current.clone(),
                        };
                    }
                    let d = ledger.day(day);
                    match kind {
                        EventKind::PageView => {
                            let hostile_title = !spec.hostile.is_empty() && chance(&mut rng, 0.05);
                            let p = &PAGES[rng.usize(..PAGES.len())];
                            e.url = url(p.path);
                            e.title = if hostile_title {
                                spec.hostile[rng.usize(..spec.hostile.len())].clone()
                            } else {
                                p.title.to_string()
                            };
                            e.pageview_id = mix(spec.seed.wrapping_add(next_pv));
                            next_pv += 1;
                            dwell.push((e.pageview_id, 0));
                            visit_pvs.push(e.url.clone());
                            d.pageviews += 1;
                            let (u, t) = (e.url.clone(), e.title.clone());
                            ledger.count(day, "page", &u, PV);
                            ledger.count(day, "title", &t, PV);
                        }
                        EventKind::Ping => {
                            let i = dwell.len() - 1;
                            let (id, max) = dwell[i];
                            // mostly rising, sometimes a repeat or a smaller
                            // (late, reordered) report that must not count
                            let engaged = match rng.u32(0..10) {
                                0 => max,
                                1 => max / 2,
                                _ => max + rng.u32(1_000..90_000),
                            };
                            e.pageview_id = id;
                            e.engaged_ms = engaged;
                            if engaged > max {
                                if max == 0 {
                                    d.dwell_pageviews += 1;
                                }
                                d.dwell_ms_sum += u64::from(engaged - max);
                                dwell[i].1 = engaged;
                            }
                        }
                        EventKind::Download => {
                            e.target = url(DOWNLOADS[rng.usize(..DOWNLOADS.len())]);
                            e.pageview_id = dwell.last().map_or(0, |x| x.0);
                            d.downloads += 1;
                            let t = e.target.clone();
                            ledger.count(day, "download", &t, EVENT);
                        }
                        EventKind::Outbound => {
                            e.target = OUTBOUND[rng.usize(..OUTBOUND.len())].to_string();
                            e.pageview_id = dwell.last().map_or(0, |x| x.0);
                            d.outbound += 1;
                            let t = e.target.clone();
                            ledger.count(day, "outbound", &t, EVENT);
                        }
                        EventKind::Search => {
                            let hostile_term = !spec.hostile.is_empty() && chance(&mut rng, 0.1);
                            e.search_term = if hostile_term {
                                spec.hostile[rng.usize(..spec.hostile.len())].clone()
                            } else {
                                TERMS[rng.usize(..TERMS.len())].to_string()
                            };
                            e.search_results = match e.search_term.as_str() {
                                "nothing-matches-this" => Some(0),
                                _ if chance(&mut rng, 0.3) => None,
                                _ => Some(rng.u32(1..40)),
                            };
                            d.searches += 1;
                            let t = e.search_term.clone();
                            ledger.count(day, "search_term", &t, EVENT);
                            if e.search_results == Some(0) {
                                ledger.count(day, "search_no_results", &t, EVENT);
                            }
                        }
                        // the workload draws no custom events
                        EventKind::Custom => {}
                    }
                    events.push(e);
                }

                // the visit, counted once, on its (single) local day
                let d = ledger.day(day);
                d.visits += 1;
                if visit_pvs.len() <= 1 {
                    d.bounces += 1;
                }
                let os_version = joined(&dev.os, &dev.os_version);
                let browser_version = joined(&dev.browser, &dev.browser_version);
                let mut visit_level: Vec<(&'static str, String)> = vec![
                    ("referrer", referrer_host(&refr.url)),
                    ("referrer_type", kind_name(refr.kind).to_string()),
                    (
                        "search_engine",
                        if refr.kind == ReferrerType::Search {
                            refr.name.clone()
                        } else {
                            String::new()
                        },
                    ),
                    ("utm_source", camp.source.clone()),
                    ("utm_medium", camp.medium.clone()),
                    ("utm_campaign", camp.campaign.clone()),
                    ("device_type", type_name(dev.device_type).to_string()),
                    ("brand", dev.brand.clone()),
                    ("model", dev.model.clone()),
                    ("os", dev.os.clone()),
                    ("os_version", os_version),
                    ("browser", dev.browser.clone()),
                    ("browser_version", browser_version),
                    ("engine", dev.engine.clone()),
                ];
                for (bit, name) in plugins::NAMES {
                    if plug & bit != 0 {
                        visit_level.push(("plugin", name.to_string()));
                    }
                }
                if let (Some(entry), Some(exit)) = (visit_pvs.first(), visit_pvs.last()) {
                    ledger.count(day, "exit_page", exit, VISIT);
                    visit_level.push(("entry_page", entry.clone()));
                }
                for (dim, value) in &visit_level {
                    ledger.count(day, dim, value, VISIT);
                    for _ in &visit_pvs {
                        ledger.count(day, dim, value, PV);
                    }
                }

                // a late ping, after the visit timed out: dwell counts,
                // no visit starts
                if !dwell.is_empty() && chance(&mut rng, 0.2) {
                    let (id, max) = *dwell.last().expect("a page view");
                    let late = ts + rng.i64(31 * 60_000..45 * 60_000);
                    let mut e = mk(EventKind::Ping, late);
                    e.url = visit_pvs.last().cloned().unwrap_or_default();
                    e.pageview_id = id;
                    e.engaged_ms = max + 5_000;
                    let d = ledger.day(day);
                    if max == 0 {
                        d.dwell_pageviews += 1;
                    }
                    d.dwell_ms_sum += 5_000;
                    events.push(e);
                }
            }
        }
    }
    events.sort_by_key(|e| e.ts_ms);
    (events, ledger)
}

fn joined(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (_, true) => String::new(),
        (true, false) => b.to_string(),
        _ => format!("{a} {b}"),
    }
}

/// The referrer list's value: the host, or the whole string without one.
fn referrer_host(url: &str) -> String {
    match url.split_once("://") {
        Some((_, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            if end == 0 {
                url.to_string()
            } else {
                rest[..end].to_string()
            }
        }
        None => url.to_string(),
    }
}

fn kind_name(k: ReferrerType) -> &'static str {
    match k {
        ReferrerType::Direct => "direct",
        ReferrerType::Internal => "internal",
        ReferrerType::Search => "search",
        ReferrerType::Social => "social",
        ReferrerType::Website => "website",
        ReferrerType::Campaign => "campaign",
    }
}

/// The label reports show for a device type (Matomo's names).
fn type_name(t: DeviceType) -> &'static str {
    match t {
        DeviceType::Car => "car browser",
        DeviceType::Other => "unknown",
        other => other.as_str(),
    }
}

fn chance(rng: &mut fastrand::Rng, p: f64) -> bool {
    rng.f64() < p
}
