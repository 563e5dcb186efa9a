//! Integration tests of the store through its public API, on real redb
//! files in temporary directories.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use chrono::NaiveDate;
use sparsam::model::{Campaign, Device, DeviceType, Event, EventKind, Referrer, ReferrerType};
use sparsam::privacy::{AnonIp, IpMasks};
use sparsam::store::schema::SCHEMA_VERSION;
use sparsam::store::{
    Counters, Dimension, Store, StoreError, StoreOptions, SubmitError, Summary, Writer,
    WriterHandle, WriterOptions,
};

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

/// 2026-11-05T00:00:00Z
fn day0() -> i64 {
    NaiveDate::from_ymd_opt(2026, 11, 5)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

fn ev(site: &str, ts_ms: i64, kind: EventKind, visitor: u64, url: &str) -> Event {
    Event {
        site: site.into(),
        ts_ms,
        kind,
        visitor,
        pageview_id: 0,
        url: url.into(),
        title: format!("title of {url}"),
        referrer: Referrer::default(),
        campaign: Campaign::default(),
        target: String::new(),
        search_term: String::new(),
        search_results: None,
        engaged_ms: 0,
        device: Device {
            device_type: DeviceType::Desktop,
            os: "Linux".into(),
            browser: "Firefox".into(),
            browser_version: "133".into(),
            ..Device::default()
        },
        plugins: 0,
        anon_ip: AnonIp::truncate("181.153.77.201".parse().unwrap(), &IpMasks::DEFAULT),
        custom: None,
    }
}

/// `n` page views of site "s" from the start of `day0()`, `step_ms`
/// apart, by 300 visitors over 40 pages, each its own page view.
fn busy_day(n: usize, step_ms: i64) -> Vec<Event> {
    (0..n)
        .map(|i| {
            pv(
                "s",
                day0() + i as i64 * step_ms,
                (i % 300) as u64,
                &format!("/p{}", i % 40),
                i as u64 + 1,
            )
        })
        .collect()
}

fn pv(site: &str, ts: i64, visitor: u64, url: &str, pvid: u64) -> Event {
    let mut e = ev(site, ts, EventKind::PageView, visitor, url);
    e.pageview_id = pvid;
    e
}

fn ping(site: &str, ts: i64, visitor: u64, pvid: u64, engaged_ms: u32) -> Event {
    let mut e = ev(site, ts, EventKind::Ping, visitor, "");
    e.pageview_id = pvid;
    e.engaged_ms = engaged_ms;
    e
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: Arc<Store>,
    writer: WriterHandle,
}

fn open_with(opts: WriterOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparsam.redb");
    let store = Arc::new(Store::open(&path, &StoreOptions::default()).unwrap());
    let writer = Writer::spawn(store.clone(), opts).unwrap();
    Fixture {
        _dir: dir,
        path,
        store,
        writer,
    }
}

fn open() -> Fixture {
    open_with(WriterOptions::default())
}

/// Writes each event in its own committed batch, in order.
fn write_each(w: &WriterHandle, events: impl IntoIterator<Item = Event>) {
    for e in events {
        w.submit(vec![e]).unwrap().blocking_recv().unwrap().unwrap();
    }
}

/// Writes `events` in committed batches of `size`, in order.
fn write_in_batches(w: &WriterHandle, events: &[Event], size: usize) {
    for batch in events.chunks(size) {
        w.submit(batch.to_vec())
            .unwrap()
            .blocking_recv()
            .unwrap()
            .unwrap();
    }
}

fn scan_all(store: &Store, site: &str) -> Vec<sparsam::store::StoredEvent> {
    let mut v = Vec::new();
    store
        .scan_events(site, i64::MIN / 2, i64::MAX / 2, |e| {
            v.push(e);
            ControlFlow::Continue(())
        })
        .unwrap();
    v
}

#[test]
fn schema_version_mismatch_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    drop(Store::open(&path, &StoreOptions::default()).unwrap());
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, u32>::new("meta"))
            .unwrap()
            .insert("schema_version", 99)
            .unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(&path, &StoreOptions::default())
        .err()
        .expect("a file with schema version 99 must be refused");
    assert!(
        matches!(
            err,
            StoreError::SchemaVersion {
                found: 99,
                expected: SCHEMA_VERSION
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("99") && msg.contains(&format!("version {SCHEMA_VERSION}")),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_acknowledges_every_concurrent_submitter() {
    let f = open();
    let writer = Arc::new(f.writer);
    let mut tasks = Vec::new();
    for t in 0..40u64 {
        let w = writer.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25i64 {
                let base = day0() + (t as i64) * 1000 + i * 50_000;
                let batch = (0..4)
                    .map(|k| pv("s", base + k, t, &format!("/p{k}"), 0))
                    .collect();
                w.write(batch).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    writer.shutdown().await.unwrap();
    assert_eq!(f.store.event_count().unwrap(), 40 * 25 * 4);
    let before = f.store.summary("s", day0(), day0() + DAY).unwrap();
    assert_eq!(before.pageviews, 4000);
    drop(writer);
    drop(f.store); // the writer thread has dropped its clone: db closes here
    let store = Store::open(&f.path, &StoreOptions::default()).unwrap();
    assert_eq!(store.event_count().unwrap(), 4000);
    assert_eq!(scan_all(&store, "s").len(), 4000);
    assert_eq!(store.summary("s", day0(), day0() + DAY).unwrap(), before);
}

#[test]
fn scripted_visits_bounces_exits_and_dwell() {
    let f = open();
    let t0 = day0() + 10 * HOUR;
    let (a, b) = (0xA, 0xB);
    write_each(
        &f.writer,
        [
            pv("s", t0, a, "/a", 1),
            pv("s", t0 + MIN, b, "/a", 10),
            ping("s", t0 + MIN + 1, a, 1, 3000),
            ping("s", t0 + 2 * MIN, a, 1, 5000),
            ping("s", t0 + 3 * MIN, a, 1, 4000), // lower: no change
            pv("s", t0 + 5 * MIN, a, "/b", 2),
            ping("s", t0 + 6 * MIN, a, 2, 1000),
            // 31 minutes after A's last event: a new visit
            pv("s", t0 + 37 * MIN, a, "/c", 3),
        ],
    );
    let s = f.store.summary("s", day0(), day0() + DAY).unwrap();
    assert_eq!(
        s,
        Summary {
            pageviews: 4,
            visits: 3,
            visitors: 2,
            bounces: 2, // B, and A's second visit
            dwell_ms_sum: 6000,
            dwell_pageviews: 2,
            avg_dwell_ms: 2000,
            downloads: 0,
            outbound: 0,
            searches: 0,
        }
    );
    let day = NaiveDate::from_ymd_opt(2026, 11, 5).unwrap();
    let top = |d| {
        f.store
            .top("s", d, day, day, 10, 0)
            .unwrap()
            .into_iter()
            .map(|(v, c)| (v, c.pageviews, c.visits))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        top(Dimension::Page),
        vec![
            ("/a".into(), 2, 0),
            ("/b".into(), 1, 0),
            ("/c".into(), 1, 0)
        ]
    );
    assert_eq!(
        top(Dimension::ExitPage),
        vec![
            ("/a".into(), 0, 1),
            ("/b".into(), 0, 1),
            ("/c".into(), 0, 1)
        ]
    );
    // entry: visits counted once; page views of the visit follow the entry
    assert_eq!(
        top(Dimension::EntryPage),
        vec![("/a".into(), 3, 2), ("/c".into(), 1, 1)]
    );
    assert_eq!(top(Dimension::Browser), vec![("Firefox".into(), 4, 3)]);
    assert_eq!(
        top(Dimension::BrowserVersion),
        vec![("Firefox 133".into(), 4, 3)]
    );
    assert_eq!(top(Dimension::ReferrerType), vec![("direct".into(), 4, 3)]);
    assert_eq!(top(Dimension::Referrer), vec![]);
    // limit and offset
    let page2 = f.store.top("s", Dimension::Page, day, day, 1, 1).unwrap();
    assert_eq!(page2.len(), 1);
    assert_eq!(page2[0].0, "/b");
    // the first visit's bounce was taken back in its start hour
    let hours = f.store.timeseries_hours("s", t0, t0 + HOUR).unwrap();
    assert_eq!(hours.len(), 1);
    assert_eq!(hours[0].1.bounces, 2);
    // other sites see nothing
    assert_eq!(
        f.store.summary("other", day0(), day0() + DAY).unwrap(),
        Summary::default()
    );
    f.writer.shutdown_blocking().unwrap();
}

#[test]
fn exit_page_moves_with_the_visit_and_events_count() {
    let f = open();
    let t0 = day0() + HOUR;
    let mut dl = ev("s", t0 + 2 * MIN, EventKind::Download, 1, "/a");
    dl.target = "https://example.org/report.pdf".into();
    let mut out = ev("s", t0 + 3 * MIN, EventKind::Outbound, 1, "/a");
    out.target = "https://elsewhere.example/".into();
    let mut search = ev("s", t0 + 4 * MIN, EventKind::Search, 1, "/a");
    search.search_term = "öffnungszeiten".into();
    let mut first = pv("s", t0, 1, "/a", 1);
    first.referrer = Referrer {
        kind: ReferrerType::Search,
        name: "Google".into(),
        url: "https://www.google.de/search".into(),
    };
    first.campaign.source = "newsletter".into();
    write_each(
        &f.writer,
        [
            first,
            pv("s", t0 + MIN, 1, "/b", 2),
            dl,
            out,
            search,
            pv("s", t0 + 5 * MIN, 1, "/a", 3),
        ],
    );
    let day = NaiveDate::from_ymd_opt(2026, 11, 5).unwrap();
    let exits = f
        .store
        .top("s", Dimension::ExitPage, day, day, 10, 0)
        .unwrap();
    assert_eq!(
        exits,
        vec![(
            "/a".to_string(),
            Counters {
                pageviews: 0,
                visits: 1,
                events: 0
            }
        )]
    );
    let s = f.store.summary("s", day0(), day0() + DAY).unwrap();
    assert_eq!((s.visits, s.bounces, s.pageviews), (1, 0, 3));
    assert_eq!((s.downloads, s.outbound, s.searches), (1, 1, 1));
    let one = |d| f.store.top("s", d, day, day, 10, 0).unwrap();
    assert_eq!(
        one(Dimension::Download)[0].0,
        "https://example.org/report.pdf"
    );
    assert_eq!(one(Dimension::Download)[0].1.events, 1);
    assert_eq!(one(Dimension::SearchTerm)[0].0, "öffnungszeiten");
    assert_eq!(one(Dimension::Outbound)[0].1.events, 1);
    // visit-level attribution: all three page views go to the visit's referrer
    let r = one(Dimension::Referrer);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, "www.google.de");
    assert_eq!((r[0].1.pageviews, r[0].1.visits), (3, 1));
    assert_eq!(one(Dimension::SearchEngine)[0].0, "Google");
    assert_eq!(one(Dimension::UtmSource)[0].1.visits, 1);
    f.writer.shutdown_blocking().unwrap();
}

#[test]
fn dimension_days_follow_the_site_time_zone() {
    let mut tz = HashMap::new();
    tz.insert("berlin".to_string(), chrono_tz::Europe::Berlin);
    let f = open_with(WriterOptions {
        site_timezones: tz,
        ..WriterOptions::default()
    });
    // 23:30 UTC on Nov 5 is 00:30 on Nov 6 in Berlin (CET, UTC+1)
    let ts = day0() + 23 * HOUR + 30 * MIN;
    write_each(
        &f.writer,
        [pv("berlin", ts, 1, "/x", 1), pv("utc", ts, 1, "/x", 1)],
    );
    let d5 = NaiveDate::from_ymd_opt(2026, 11, 5).unwrap();
    let d6 = NaiveDate::from_ymd_opt(2026, 11, 6).unwrap();
    let n = |site, d| {
        f.store
            .top(site, Dimension::Page, d, d, 10, 0)
            .unwrap()
            .len()
    };
    assert_eq!((n("berlin", d5), n("berlin", d6)), (0, 1));
    assert_eq!((n("utc", d5), n("utc", d6)), (1, 0));
    f.writer.shutdown_blocking().unwrap();
}

/// Deterministic pseudo-random numbers (xorshift64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A mixed, time-ordered workload over three UTC days and two sites,
/// including visits that run across midnight.
fn workload() -> Vec<Event> {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut out = Vec::new();
    let mut ts = day0() + 20 * HOUR;
    let mut next_pvid = 1u64;
    // visitor -> (page view id, when it was made)
    let mut last_pvid: HashMap<u64, (u64, i64)> = HashMap::new();
    while ts < day0() + 3 * DAY {
        ts += 1 + rng.below(4 * MIN as u64) as i64;
        let site = if rng.below(4) == 0 { "b" } else { "a" };
        let visitor = rng.below(12);
        let kind = match rng.below(10) {
            0..=4 => EventKind::PageView,
            5..=7 => EventKind::Ping,
            8 => EventKind::Download,
            _ => EventKind::Search,
        };
        let mut e = ev(site, ts, kind, visitor, &format!("/p{}", rng.below(5)));
        match kind {
            EventKind::PageView => {
                e.pageview_id = next_pvid;
                last_pvid.insert(visitor, (next_pvid, ts));
                next_pvid += 1;
            }
            EventKind::Ping => {
                // pings belong to a recent page view (as a tab's would)
                e.pageview_id = match last_pvid.get(&visitor) {
                    Some(&(id, made)) if ts - made < 2 * HOUR => id,
                    _ => 0,
                };
                e.engaged_ms = rng.below(60_000) as u32;
            }
            EventKind::Download => e.target = format!("/f{}.pdf", rng.below(3)),
            _ => e.search_term = format!("term{}", rng.below(3)),
        }
        out.push(e);
    }
    out
}

/// Recomputes hourly totals from raw events, written from the definitions
/// in the store's documentation rather than from its code.
fn recount(events: &[sparsam::store::StoredEvent]) -> HashMap<i64, Summary> {
    let mut hours: HashMap<i64, Summary> = HashMap::new();
    let hour = |ts: i64| ts.div_euclid(HOUR);
    let mut seen: HashSet<(i64, u64)> = HashSet::new();
    // visitor -> (last_ts, start_hour, pageviews)
    let mut visits: HashMap<u64, (i64, i64, u32)> = HashMap::new();
    let mut dwell: HashMap<u64, u32> = HashMap::new();
    for e in events {
        let h = hour(e.ts_ms);
        if seen.insert((e.ts_ms.div_euclid(DAY), e.visitor)) {
            hours.entry(h).or_default().visitors += 1;
        }
        let live = matches!(visits.get(&e.visitor), Some(v) if e.ts_ms - v.0 < 30 * MIN);
        if !live {
            visits.remove(&e.visitor);
            if e.kind != EventKind::Ping {
                visits.insert(e.visitor, (e.ts_ms, h, 0));
                hours.entry(h).or_default().visits += 1;
            }
        }
        if let Some(v) = visits.get_mut(&e.visitor) {
            v.0 = e.ts_ms;
            if e.kind == EventKind::PageView {
                v.2 += 1;
            }
        }
        let t = hours.entry(h).or_default();
        match e.kind {
            EventKind::PageView => t.pageviews += 1,
            EventKind::Download => t.downloads += 1,
            EventKind::Outbound => t.outbound += 1,
            EventKind::Search => t.searches += 1,
            EventKind::Custom => {}
            EventKind::Ping => {
                if e.pageview_id != 0 && e.engaged_ms > 0 {
                    let prev = dwell.get(&e.pageview_id).copied();
                    if e.engaged_ms > prev.unwrap_or(0) {
                        t.dwell_ms_sum += u64::from(e.engaged_ms - prev.unwrap_or(0));
                        if prev.is_none() {
                            t.dwell_pageviews += 1;
                        }
                        dwell.insert(e.pageview_id, e.engaged_ms);
                    }
                }
            }
        }
    }
    // bounces: visits with at most one page view, in their start hour —
    // recomputed by replaying visit boundaries
    let mut current: HashMap<u64, (i64, i64, u32)> = HashMap::new();
    let mut finished: Vec<(i64, u32)> = Vec::new();
    for e in events {
        let live = matches!(current.get(&e.visitor), Some(v) if e.ts_ms - v.0 < 30 * MIN);
        if !live {
            if let Some(v) = current.remove(&e.visitor) {
                finished.push((v.1, v.2));
            }
            if e.kind != EventKind::Ping {
                current.insert(e.visitor, (e.ts_ms, hour(e.ts_ms), 0));
            }
        }
        if let Some(v) = current.get_mut(&e.visitor) {
            v.0 = e.ts_ms;
            v.2 += u32::from(e.kind == EventKind::PageView);
        }
    }
    finished.extend(current.values().map(|v| (v.1, v.2)));
    for (h, pvs) in finished {
        if pvs <= 1 {
            hours.entry(h).or_default().bounces += 1;
        }
    }
    hours
}

#[test]
fn summary_and_timeseries_equal_a_recount_from_raw_events() {
    let f = open();
    let events = workload();
    assert!(events.len() > 1000, "{}", events.len());
    // batches of varying size, in time order
    let mut i = 0;
    let mut rng = Rng(7);
    while i < events.len() {
        let n = (1 + rng.below(40) as usize).min(events.len() - i);
        f.writer
            .submit(events[i..i + n].to_vec())
            .unwrap()
            .blocking_recv()
            .unwrap()
            .unwrap();
        i += n;
    }
    let (from, to) = (day0(), day0() + 4 * DAY);
    for site in ["a", "b"] {
        let raw = scan_all(&f.store, site);
        assert_eq!(raw.len(), events.iter().filter(|e| e.site == site).count());
        let expected = recount(&raw);
        let mut total = Summary::default();
        let mut got_hours = 0;
        for (h, t) in f.store.timeseries_hours(site, from, to).unwrap() {
            let want = expected.get(&h).copied().unwrap_or_default();
            let got = Summary::from(t);
            assert_eq!(
                (got.pageviews, got.visits, got.visitors, got.bounces),
                (want.pageviews, want.visits, want.visitors, want.bounces),
                "site {site} hour {h}"
            );
            assert_eq!(
                (
                    got.dwell_ms_sum,
                    got.dwell_pageviews,
                    got.downloads,
                    got.searches
                ),
                (
                    want.dwell_ms_sum,
                    want.dwell_pageviews,
                    want.downloads,
                    want.searches
                ),
                "site {site} hour {h}"
            );
            total.pageviews += want.pageviews;
            total.visits += want.visits;
            total.bounces += want.bounces;
            got_hours += 1;
        }
        assert_eq!(got_hours, expected.len(), "hours with data");
        let s = f.store.summary(site, from, to).unwrap();
        assert_eq!(
            (s.pageviews, s.visits, s.bounces),
            (total.pageviews, total.visits, total.bounces)
        );
        assert!(
            s.visits > 10 && s.bounces > 0 && s.bounces < s.visits,
            "{s:?}"
        );
    }
    f.writer.shutdown_blocking().unwrap();
}

#[test]
fn drop_day_removes_exactly_one_day_and_its_state() {
    let f = open();
    let d1 = day0();
    let d2 = day0() + DAY;
    write_each(
        &f.writer,
        [
            pv("s", d1 + HOUR, 1, "/a", 1),
            ping("s", d1 + HOUR + MIN, 1, 1, 2000),
            pv("s", d1 + 2 * HOUR, 2, "/b", 2),
            pv("t", d1 + 3 * HOUR, 3, "/c", 3),
            pv("s", d2 + HOUR, 1, "/a", 4),
            ping("s", d2 + HOUR + MIN, 1, 4, 1500),
        ],
    );
    let day1 = NaiveDate::from_ymd_opt(2026, 11, 5).unwrap();
    let day2 = NaiveDate::from_ymd_opt(2026, 11, 6).unwrap();
    assert_eq!(f.store.partitions().unwrap(), vec![day1, day2]);
    assert_eq!(
        f.store.partition_stats().unwrap(),
        vec![(day1, 4), (day2, 2)]
    );
    assert_eq!(f.store.oldest_event_ts().unwrap(), Some(d1 + HOUR));
    let before_s = f.store.summary("s", d1, d2 + DAY).unwrap();
    let before_top = f
        .store
        .top("s", Dimension::Page, day1, day2, 10, 0)
        .unwrap();

    assert_eq!(f.writer.drop_day(day1).unwrap(), 4);

    assert_eq!(f.store.partitions().unwrap(), vec![day2]);
    assert_eq!(f.store.event_count().unwrap(), 2);
    assert_eq!(f.store.oldest_event_ts().unwrap(), Some(d2 + HOUR));
    assert!(scan_all(&f.store, "t").is_empty());
    assert_eq!(scan_all(&f.store, "s").len(), 2);
    // roll-ups untouched
    assert_eq!(f.store.summary("s", d1, d2 + DAY).unwrap(), before_s);
    assert_eq!(
        f.store
            .top("s", Dimension::Page, day1, day2, 10, 0)
            .unwrap(),
        before_top
    );
    // no table of that day remains; the other day's state does
    let names: Vec<String> = {
        use redb::{ReadableDatabase, TableHandle};
        let txn = f.store.database().unwrap().begin_read().unwrap();
        txn.list_tables()
            .unwrap()
            .map(|t| t.name().to_owned())
            .collect()
    };
    assert!(!names.iter().any(|n| n.ends_with("20261105")), "{names:?}");
    assert!(names.contains(&"events_20261106".to_string()), "{names:?}");
    // dropping again (or a day without data) deletes nothing
    assert_eq!(f.writer.drop_day(day1).unwrap(), 0);
    f.writer.shutdown_blocking().unwrap();
}

#[test]
fn full_queue_returns_queue_full() {
    let f = open_with(WriterOptions {
        queue_capacity: 3,
        ..WriterOptions::default()
    });
    // Stall the writer: it blocks in begin_write while we hold the lock.
    let blocker = f.store.database().unwrap().begin_write().unwrap();
    let mut accepted = Vec::new();
    let mut full = 0;
    // The writer takes at most one round (≤ 3 requests) before blocking and
    // the queue holds 3 more, so 7 submits must see QueueFull.
    for i in 0..7 {
        match f.writer.submit(vec![pv("s", day0() + i, 1, "/", 0)]) {
            Ok(rx) => accepted.push(rx),
            Err(SubmitError::QueueFull) => full += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(full >= 1);
    drop(blocker);
    let n_accepted = accepted.len() as u64;
    for rx in accepted {
        rx.blocking_recv().unwrap().unwrap();
    }
    f.writer.shutdown_blocking().unwrap();
    assert_eq!(f.store.event_count().unwrap(), n_accepted);
    assert_eq!(f.writer.submit(vec![]).unwrap_err(), SubmitError::Closed);
}

#[test]
fn shutdown_commits_queued_events_and_data_survives_reopen() {
    let f = open();
    let blocker = f.store.database().unwrap().begin_write().unwrap();
    let receivers: Vec<_> = (0..50)
        .map(|i| {
            f.writer
                .submit(vec![pv("s", day0() + i * MIN, 1, "/x", 0)])
                .unwrap()
        })
        .collect();
    drop(blocker);
    f.writer.shutdown_blocking().unwrap();
    for mut rx in receivers {
        assert!(rx.try_recv().unwrap().is_ok());
    }
    let Fixture {
        _dir, path, store, ..
    } = f;
    drop(store);
    let store = Store::open(&path, &StoreOptions::default()).unwrap();
    assert_eq!(store.event_count().unwrap(), 50);
    let s = store.summary("s", day0(), day0() + DAY).unwrap();
    assert_eq!((s.pageviews, s.visits, s.visitors), (50, 1, 1));
    // a new writer on the reopened store continues the same visit
    let store = Arc::new(store);
    let w = Writer::spawn(store.clone(), WriterOptions::default()).unwrap();
    write_each(&w, [pv("s", day0() + 50 * MIN, 1, "/y", 0)]);
    w.shutdown_blocking().unwrap();
    let s = store.summary("s", day0(), day0() + DAY).unwrap();
    assert_eq!((s.pageviews, s.visits, s.visitors), (51, 1, 1));
}

#[test]
fn scan_reads_only_the_range_and_can_stop_early() {
    let f = open();
    let events: Vec<Event> = (0..10)
        .map(|i| pv("s", day0() + i * HOUR * 6, 1, &format!("/{i}"), 0))
        .collect();
    f.writer
        .submit(events)
        .unwrap()
        .blocking_recv()
        .unwrap()
        .unwrap();
    let mut seen = Vec::new();
    f.store
        .scan_events("s", day0() + 6 * HOUR, day0() + 30 * HOUR, |e| {
            seen.push(e.url);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(seen, vec!["/1", "/2", "/3", "/4"]);
    let mut n = 0;
    f.store
        .scan_events("s", i64::MIN / 2, i64::MAX / 2, |_| {
            n += 1;
            if n == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(n, 3);
    f.writer.shutdown_blocking().unwrap();
}

#[test]
fn garbage_on_disk_is_a_decode_error_not_a_panic() {
    let f = open();
    write_each(&f.writer, [pv("s", day0(), 1, "/", 0)]);
    f.writer.shutdown_blocking().unwrap();
    {
        let txn = f.store.database().unwrap().begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<(&str, u32), &[u8]>::new(
            "events_20261105",
        ))
        .unwrap()
        .insert(("s", 1), [2u8, 0, 1, 2].as_slice())
        .unwrap();
        txn.commit().unwrap();
    }
    let err = f
        .store
        .scan_events("s", day0(), day0() + DAY, |_| ControlFlow::Continue(()))
        .unwrap_err();
    assert!(matches!(err, StoreError::Decode(_)), "{err:?}");
}

#[test]
fn older_schema_version_is_refused_by_the_binary_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store_path = data.join("sparsam.redb");
    {
        let db = redb::Database::create(&store_path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, u32>::new("meta"))
            .unwrap()
            .insert("schema_version", 0)
            .unwrap();
        txn.commit().unwrap();
    }
    let config = dir.path().join("sparsam.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[auth]\nadmin_token = \"test-admin-token-0123456789\"\n[[sites]]\nid = \"demo\"\nhostnames = [\"example.org\"]\n",
            data.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sparsam"))
        .arg("--config")
        .arg(&config)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(!err.contains("listening"), "{err}");
    assert!(
        err.contains("schema version 0") && err.contains(&format!("version {SCHEMA_VERSION}")),
        "both versions named: {err}"
    );
    assert!(err.contains("older"), "{err}");
    assert!(err.contains("no automatic migration"), "{err}");
    assert!(err.contains(&store_path.display().to_string()), "{err}");
    // The refused file still says what it is.
    let db = redb::Database::create(&store_path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let meta = txn
        .open_table(redb::TableDefinition::<&str, u32>::new("meta"))
        .unwrap();
    assert_eq!(meta.get("schema_version").unwrap().unwrap().value(), 0);
}

/// Events of one visitor-rich day written in many commits, with writer
/// restarts in between (so the in-memory state is rebuilt from blocks
/// several times, also in the middle of a block): every event comes back,
/// and the roll-ups equal a recount from the raw events.
#[test]
fn restarts_in_the_middle_of_blocks_lose_and_miscount_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparsam.redb");
    let events = workload();
    let chunks: Vec<&[Event]> = events.chunks(events.len() / 5 + 1).collect();
    for chunk in &chunks {
        let store = Arc::new(Store::open(&path, &StoreOptions::default()).unwrap());
        let w = Writer::spawn(store.clone(), WriterOptions::default()).unwrap();
        for batch in chunk.chunks(37) {
            w.submit(batch.to_vec())
                .unwrap()
                .blocking_recv()
                .unwrap()
                .unwrap();
        }
        w.shutdown_blocking().unwrap();
    }
    let store = Store::open(&path, &StoreOptions::default()).unwrap();
    assert_eq!(store.event_count().unwrap(), events.len() as u64);
    for site in ["a", "b"] {
        let raw = scan_all(&store, site);
        let want: Vec<(i64, &str)> = events
            .iter()
            .filter(|e| e.site == site)
            .map(|e| (e.ts_ms, e.url.as_str()))
            .collect();
        let got: Vec<(i64, &str)> = raw.iter().map(|e| (e.ts_ms, e.url.as_str())).collect();
        assert_eq!(got, want, "site {site}");
        let expected = recount(&raw);
        let hours = store
            .timeseries_hours(site, day0(), day0() + 4 * DAY)
            .unwrap();
        assert_eq!(hours.len(), expected.len(), "site {site}: hours");
        for (h, t) in hours {
            let want = expected.get(&h).copied().unwrap_or_default();
            let got = Summary::from(t);
            assert_eq!(
                (
                    got.pageviews,
                    got.visits,
                    got.visitors,
                    got.bounces,
                    got.dwell_ms_sum
                ),
                (
                    want.pageviews,
                    want.visits,
                    want.visitors,
                    want.bounces,
                    want.dwell_ms_sum
                ),
                "site {site} hour {h}"
            );
        }
    }
}

/// More than one block's worth of events on one day: blocks roll over and
/// a scan reads them in order.
#[test]
fn a_busy_day_spans_many_blocks() {
    let f = open();
    let n = sparsam::store::codec::BLOCK_MAX_EVENTS * 2 + 77;
    let events: Vec<Event> = busy_day(n, 10);
    write_in_batches(&f.writer, &events, 500);
    let (blocks, _, _) = f.store.snapshot().unwrap().block_stats().unwrap();
    assert!(blocks >= 3, "{blocks} blocks");
    let raw = scan_all(&f.store, "s");
    assert_eq!(raw.len(), n);
    assert!(raw.windows(2).all(|w| w[0].ts_ms < w[1].ts_ms));
    assert_eq!(raw[n - 1].pageview_id, n as u64);
    assert_eq!(raw[n - 1].visitor, ((n - 1) % 300) as u64);
    let s = f.store.summary("s", day0(), day0() + DAY).unwrap();
    assert_eq!((s.pageviews, s.visitors), (n as u64, 300));
    f.writer.shutdown_blocking().unwrap();
}

/// Trimming a day the writer is still writing to: the writer notices, and
/// what it appends afterwards continues the rewritten blocks.
#[test]
fn the_writer_continues_a_day_trimmed_under_it() {
    let f = open();
    let t0 = day0() + 10 * HOUR;
    write_each(
        &f.writer,
        (0..20).map(|i| {
            pv(
                "s",
                t0 + i * MIN,
                (i % 4) as u64,
                &format!("/{i}"),
                i as u64 + 1,
            )
        }),
    );
    let trimmed = f
        .writer
        .trim_day(NaiveDate::from_ymd_opt(2026, 11, 5).unwrap(), t0 + 10 * MIN)
        .unwrap();
    assert_eq!(trimmed, 10);
    write_each(
        &f.writer,
        (20..30).map(|i| {
            pv(
                "s",
                t0 + i * MIN,
                (i % 4) as u64,
                &format!("/{i}"),
                i as u64 + 1,
            )
        }),
    );
    let raw = scan_all(&f.store, "s");
    let urls: Vec<String> = raw.iter().map(|e| e.url.clone()).collect();
    let want: Vec<String> = (10..30).map(|i| format!("/{i}")).collect();
    assert_eq!(urls, want);
    assert_eq!(raw[19].visitor, 29 % 4);
    assert_eq!(f.store.event_count().unwrap(), 20);
    f.writer.shutdown_blocking().unwrap();
}

/// Strings (here a search term) live exactly as long as an event that
/// uses them: expiring them keeps those still in use and frees the rest;
/// a term seen again later is interned anew.
#[test]
fn dictionary_strings_expire_with_their_last_event() {
    let f = open();
    let mut old = ev("s", day0() + HOUR, EventKind::Search, 1, "/suche");
    old.search_term = "nur-einmal-gesucht".into();
    let mut kept = ev("s", day0() + DAY + HOUR, EventKind::Search, 1, "/suche");
    kept.search_term = "zweimal".into();
    let mut kept_old = kept.clone();
    kept_old.ts_ms = day0() + 2 * HOUR;
    write_each(&f.writer, [old, kept_old, kept]);
    let cutoff = day0() + DAY;
    let plan = f.store.expiry_plan(cutoff).unwrap();
    assert_eq!(plan.events(), 2);
    assert_eq!(plan.strings, 1, "only the term that no later event uses");
    f.writer
        .drop_day(NaiveDate::from_ymd_opt(2026, 11, 5).unwrap())
        .unwrap();
    assert_eq!(f.writer.expire_strings(cutoff).unwrap(), 1);
    assert_eq!(f.writer.expire_strings(cutoff).unwrap(), 0);
    let raw = scan_all(&f.store, "s");
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].search_term, "zweimal");
    assert_eq!(raw[0].url, "/suche");
    // the expired term is interned again when it comes back
    let mut again = ev("s", day0() + DAY + 2 * HOUR, EventKind::Search, 2, "/suche");
    again.search_term = "nur-einmal-gesucht".into();
    write_each(&f.writer, [again]);
    let terms: Vec<String> = scan_all(&f.store, "s")
        .into_iter()
        .map(|e| e.search_term)
        .collect();
    assert_eq!(terms, vec!["zweimal", "nur-einmal-gesucht"]);
    f.writer.shutdown_blocking().unwrap();
}

/// Closed days are sealed when a writer starts; reports read the same
/// before and after, and rows that arrive for a sealed day (an import)
/// are added on top.
#[test]
fn sealed_days_answer_like_open_ones_and_take_late_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparsam.redb");
    let d = NaiveDate::from_ymd_opt(2026, 11, 5).unwrap();
    let tables = |store: &Store| -> (u64, u64) {
        use redb::{ReadableDatabase, ReadableTableMetadata};
        let txn = store.database().unwrap().begin_read().unwrap();
        let open = txn
            .open_table(sparsam::store::schema::DIMS_OPEN)
            .map(|t| t.len().unwrap())
            .unwrap_or(0);
        let sealed = txn
            .open_table(sparsam::store::schema::DIMS_SEALED)
            .map(|t| t.len().unwrap())
            .unwrap_or(0);
        (open, sealed)
    };
    let before;
    {
        let store = Arc::new(Store::open(&path, &StoreOptions::default()).unwrap());
        let w = Writer::spawn(store.clone(), WriterOptions::default()).unwrap();
        // a visit whose exit page moves: +1 and -1 rows
        write_each(
            &w,
            [
                pv("s", day0() + HOUR, 1, "/a", 1),
                pv("s", day0() + HOUR + MIN, 1, "/b", 2),
                pv("s", day0() + 2 * HOUR, 2, "/a", 3),
            ],
        );
        w.shutdown_blocking().unwrap();
        before = Dimension::ALL
            .iter()
            .map(|dim| store.top("s", *dim, d, d, 100, 0).unwrap())
            .collect::<Vec<_>>();
    }
    let store = Arc::new(Store::open(&path, &StoreOptions::default()).unwrap());
    // opening a writer seals the closed day (it waits for nothing queued)
    let w = Writer::spawn(store.clone(), WriterOptions::default()).unwrap();
    let mut sealed = (0, 0);
    for _ in 0..200 {
        sealed = tables(&store);
        if sealed.0 == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(sealed.0, 0, "no open rows left for a closed day");
    assert!(sealed.1 > 5, "{sealed:?}");
    let after: Vec<_> = Dimension::ALL
        .iter()
        .map(|dim| store.top("s", *dim, d, d, 100, 0).unwrap())
        .collect();
    assert_eq!(after, before);
    // a late page view for the sealed day
    write_each(&w, [pv("s", day0() + 3 * HOUR, 3, "/a", 4)]);
    let pages = store.top("s", Dimension::Page, d, d, 10, 0).unwrap();
    assert_eq!(
        pages[0],
        (
            "/a".into(),
            Counters {
                pageviews: 3,
                visits: 0,
                events: 0
            }
        )
    );
    let r = store.ranked("s", Dimension::Page, d, d, 1, 1).unwrap();
    assert_eq!((r.total_rows, r.total), (2, 4));
    assert_eq!(
        r.rows,
        vec![(
            "/b".into(),
            Counters {
                pageviews: 1,
                visits: 0,
                events: 0
            }
        )]
    );
    w.shutdown_blocking().unwrap();
}

/// A ping without a measurement of its own (Matomo's heartbeat) is timed
/// by the store as the time since its page view, capped, and stored with
/// that value so reports from raw events agree.
#[test]
fn heartbeats_are_timed_since_their_page_view() {
    let f = open_with(WriterOptions {
        max_engaged_ms: 600_000,
        ..WriterOptions::default()
    });
    let t0 = day0() + 9 * HOUR;
    let timed = sparsam::model::ENGAGED_SERVER_TIMED;
    write_each(
        &f.writer,
        [
            pv("s", t0, 1, "/a", 7),
            ping("s", t0 + 30_000, 1, 7, timed),
            ping("s", t0 + 90_000, 1, 7, timed),
            // unknown page view: nothing to time it against
            ping("s", t0 + 95_000, 1, 8, timed),
            // a page view left open for an hour: capped at 10 minutes
            pv("s", t0 + 2 * MIN, 2, "/b", 9),
            ping("s", t0 + 62 * MIN, 2, 9, timed),
        ],
    );
    let s = f.store.summary("s", day0(), day0() + DAY).unwrap();
    assert_eq!((s.dwell_ms_sum, s.dwell_pageviews), (90_000 + 600_000, 2));
    let engaged: Vec<u32> = scan_all(&f.store, "s")
        .iter()
        .filter(|e| e.kind == EventKind::Ping)
        .map(|e| e.engaged_ms)
        .collect();
    assert_eq!(engaged, vec![30_000, 90_000, 0, 600_000]);
    f.writer.shutdown_blocking().unwrap();
}

fn file_contains(path: &std::path::Path, needle: &[u8]) -> bool {
    let bytes = std::fs::read(path).unwrap();
    bytes.windows(needle.len()).any(|w| w == needle)
}

/// Deleting only frees pages: the expired bytes stay in the file until a
/// vacuum rewrites it with live data only. After it, nothing that only the
/// expired raw event held (the referrer's full URL, the visitor hash, the
/// page-view id) is left anywhere in the file, and everything live reads
/// back. (Roll-ups keep their own aggregates, such as the referrer's host,
/// by design.)
#[test]
fn vacuum_leaves_no_trace_of_swept_data_in_the_file() {
    let f = open();
    let ref_marker = "https://forum.example/thread/geheimer-pfad-7f3a9c";
    let visitor: u64 = 0x5ec2_e77a_11be_ef01;
    let pvid: u64 = 0x0dd_ba11_cafe_f00d;
    let mut old = pv("s", day0() + HOUR, visitor, "/a", pvid);
    old.referrer = Referrer {
        kind: ReferrerType::Website,
        name: String::new(),
        url: ref_marker.into(),
    };
    write_each(&f.writer, [old]);
    // many commits, so earlier versions of blocks pile up in free pages
    write_each(
        &f.writer,
        (0..50).map(|i| pv("s", day0() + 2 * HOUR + i * MIN, 2, "/x", 0)),
    );
    write_each(&f.writer, [pv("s", day0() + DAY + HOUR, 3, "/bleibt", 0)]);
    let before = f.store.summary("s", day0(), day0() + 2 * DAY).unwrap();
    let traces = |path: &std::path::Path| {
        [
            file_contains(path, ref_marker.as_bytes()),
            file_contains(path, &visitor.to_le_bytes()),
            file_contains(path, &pvid.to_le_bytes()),
        ]
    };
    assert_eq!(traces(&f.path), [true; 3]);
    f.writer
        .drop_day(NaiveDate::from_ymd_opt(2026, 11, 5).unwrap())
        .unwrap();
    assert!(f.writer.expire_strings(day0() + DAY).unwrap() >= 1);
    assert!(
        traces(&f.path).contains(&true),
        "deleting alone leaves bytes in the file"
    );
    let v = f.writer.vacuum(&f.store).unwrap();
    assert!(v.bytes_after < v.bytes_before, "{v:?}");
    assert_eq!(
        traces(&f.path),
        [false; 3],
        "referrer URL, visitor hash, page-view id"
    );
    assert!(file_contains(&f.path, b"/bleibt"), "live data kept");
    assert_eq!(scan_all(&f.store, "s").len(), 1);
    assert_eq!(
        f.store.summary("s", day0(), day0() + 2 * DAY).unwrap(),
        before
    );
    // the writer goes on writing into the new file
    write_each(
        &f.writer,
        [pv("s", day0() + DAY + 2 * HOUR, 3, "/danach", 0)],
    );
    f.writer.shutdown_blocking().unwrap();
    let Fixture {
        path, store, _dir, ..
    } = f;
    drop(store);
    let store = Store::open(&path, &StoreOptions::default()).unwrap();
    let urls: Vec<String> = scan_all(&store, "s").into_iter().map(|e| e.url).collect();
    assert_eq!(urls, vec!["/bleibt", "/danach"]);
}

/// A vacuum while writes keep coming: every acknowledged event is in the
/// new file.
#[test]
fn vacuum_under_concurrent_writes_loses_no_acknowledged_event() {
    let f = open();
    let writer = Arc::new(f.writer);
    let w = writer.clone();
    let feeder = std::thread::spawn(move || {
        let mut acked = 0u64;
        for i in 0..400i64 {
            let rx = w.submit(vec![pv("s", day0() + i * 1000, (i % 17) as u64, "/p", 0)]);
            if let Ok(rx) = rx {
                if matches!(rx.blocking_recv(), Ok(Ok(()))) {
                    acked += 1;
                }
            }
        }
        acked
    });
    for _ in 0..5 {
        writer.vacuum(&f.store).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let acked = feeder.join().unwrap();
    writer.shutdown_blocking().unwrap();
    assert_eq!(acked, 400, "no batch failed");
    assert_eq!(scan_all(&f.store, "s").len(), 400);
    assert_eq!(
        f.store
            .summary("s", day0(), day0() + DAY)
            .unwrap()
            .pageviews,
        400
    );
}

/// The vacuum copies the file while the writer keeps committing: hits are
/// acknowledged while it runs (the store is held only for the catch-up),
/// and every one of them, written before, during or after the copy, is in
/// the new file with its roll-ups.
#[test]
fn writes_go_on_while_a_vacuum_copies_the_store() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let f = open();
    // enough stored data that the copy takes many commits' time
    let old: Vec<Event> = (0..150_000i64)
        .map(|i| {
            pv(
                "s",
                day0() - DAY + i * 100,
                (i % 5_000) as u64,
                &format!("/alt/{}", i % 3_000),
                0,
            )
        })
        .collect();
    write_in_batches(&f.writer, &old, 10_000);
    let writer = Arc::new(f.writer);
    let stop = Arc::new(AtomicBool::new(false));
    let acked_so_far = Arc::new(AtomicU64::new(0));
    let feeder = {
        let (w, stop, acked_so_far) = (writer.clone(), stop.clone(), acked_so_far.clone());
        std::thread::spawn(move || {
            let mut acked = 0i64;
            while !stop.load(Ordering::SeqCst) {
                let e = pv("s", day0() + acked * 1000, (acked % 17) as u64, "/neu", 0);
                w.submit(vec![e]).unwrap().blocking_recv().unwrap().unwrap();
                acked += 1;
                acked_so_far.fetch_add(1, Ordering::SeqCst);
            }
            acked
        })
    };
    // The writer's pace on this machine right now, without a vacuum: the
    // machine may be busy with other work, so the vacuum is judged against
    // it rather than against a fixed count.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let quiet_start = (
        std::time::Instant::now(),
        acked_so_far.load(Ordering::SeqCst),
    );
    std::thread::sleep(std::time::Duration::from_millis(400));
    let quiet = (
        quiet_start.0.elapsed(),
        acked_so_far.load(Ordering::SeqCst) - quiet_start.1,
    );
    let vacuum_start = (
        std::time::Instant::now(),
        acked_so_far.load(Ordering::SeqCst),
    );
    writer.vacuum(&f.store).unwrap();
    let vacuum = (
        vacuum_start.0.elapsed(),
        acked_so_far.load(Ordering::SeqCst) - vacuum_start.1,
    );
    std::thread::sleep(std::time::Duration::from_millis(50));
    stop.store(true, Ordering::SeqCst);
    let acked = feeder.join().unwrap();
    writer.shutdown_blocking().unwrap();
    let per_second =
        |(took, writes): (std::time::Duration, u64)| writes as f64 / took.as_secs_f64().max(1e-3);
    let (quiet_rate, vacuum_rate) = (per_second(quiet), per_second(vacuum));
    eprintln!(
        "writes acknowledged: {} in {:?} without a vacuum ({quiet_rate:.0}/s), \
         {} in {:?} while the vacuum ran ({vacuum_rate:.0}/s)",
        quiet.1, quiet.0, vacuum.1, vacuum.0
    );
    // Holding the store for the whole copy lets through only the few
    // commits of the vacuum's set-up (5 when measured, a few per cent of
    // the quiet pace); copying from a snapshot lets the writer commit
    // throughout the copy, at about half its quiet pace or more (the copy
    // takes a core) less the short hold for the catch-up and swap.
    assert!(
        vacuum_rate >= quiet_rate * 0.2,
        "{} writes ({vacuum_rate:.0}/s) were acknowledged while the vacuum ran, \
         against {quiet_rate:.0}/s without one",
        vacuum.1
    );
    let new = scan_all(&f.store, "s")
        .into_iter()
        .filter(|e| e.url == "/neu")
        .count() as i64;
    assert_eq!(new, acked);
    assert_eq!(scan_all(&f.store, "s").len() as i64, 150_000 + acked);
    assert_eq!(
        f.store
            .summary("s", day0(), day0() + DAY)
            .unwrap()
            .pageviews as i64,
        acked
    );
}

/// A day bigger than one deletion transaction (more than
/// `BLOCKS_PER_SWEEP_TXN` blocks, over two sites) is dropped whole in
/// several transactions: no block, no count and no table of it is left,
/// and the next day is untouched.
#[test]
fn a_big_day_is_dropped_in_several_transactions() {
    let f = open();
    let per_site =
        (sparsam::store::BLOCKS_PER_SWEEP_TXN * sparsam::store::codec::BLOCK_MAX_EVENTS) as i64 * 3
            / 4
            + 500;
    for site in ["a", "b"] {
        let events: Vec<Event> = (0..per_site)
            .map(|i| pv(site, day0() + i * 500, (i % 5000) as u64, "/x", 0))
            .collect();
        write_in_batches(&f.writer, &events, 20_000);
    }
    write_each(&f.writer, [pv("a", day0() + DAY + HOUR, 1, "/bleibt", 0)]);
    assert_eq!(f.store.event_count().unwrap(), 2 * per_site as u64 + 1);
    let (blocks, _, _) = f.store.snapshot().unwrap().block_stats().unwrap();
    assert!(
        blocks > sparsam::store::BLOCKS_PER_SWEEP_TXN as u64 + 1,
        "{blocks} blocks: one transaction would do"
    );
    let deleted = f
        .writer
        .drop_day(NaiveDate::from_ymd_opt(2026, 11, 5).unwrap())
        .unwrap();
    assert_eq!(deleted, 2 * per_site as u64);
    assert_eq!(f.store.event_count().unwrap(), 1);
    assert_eq!(f.store.partition_stats().unwrap().len(), 1);
    let left = scan_all(&f.store, "a");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].url, "/bleibt");
    assert!(scan_all(&f.store, "b").is_empty());
    // the writer goes on writing to the day after
    write_each(
        &f.writer,
        [pv("a", day0() + DAY + 2 * HOUR, 2, "/danach", 0)],
    );
    assert_eq!(f.store.event_count().unwrap(), 2);
    f.writer.shutdown_blocking().unwrap();
}

/// The keys of site `site`'s values in the event table of `day`.
fn event_keys(path: &std::path::Path, day: &str, site: &str) -> Vec<u32> {
    use redb::ReadableDatabase;
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_read().unwrap();
    let t = txn
        .open_table(sparsam::store::schema::events_table(day))
        .unwrap();
    let keys = t
        .range::<(&str, u32)>((site, 0)..=(site, u32::MAX))
        .unwrap()
        .map(|r| r.unwrap().0.value().1)
        .collect();
    keys
}

/// A commit stores only the events it adds: while a block fills, each
/// batch is one tail piece of its own holding that batch's events, not
/// the block rewritten; the block is written whole once it fills, and its
/// pieces are gone.
#[test]
fn each_commit_stores_only_its_own_events_until_the_block_fills() {
    use sparsam::store::codec::{decode_block, BlockPlace, Cols, BLOCK_MAX_EVENTS};
    let f = open();
    let n = BLOCK_MAX_EVENTS + 40;
    let events: Vec<Event> = (0..n)
        .map(|i| {
            pv(
                "s",
                day0() + i as i64 * 10,
                (i % 90) as u64,
                "/p",
                i as u64 + 1,
            )
        })
        .collect();
    write_in_batches(&f.writer, &events[..BLOCK_MAX_EVENTS - 24], 100);
    f.writer.shutdown_blocking().unwrap();
    drop(f.store);
    let day = "events_20261105";
    let sizes = |path: &std::path::Path| {
        use redb::ReadableDatabase;
        let db = redb::Database::create(path).unwrap();
        let txn = db.begin_read().unwrap();
        let t = txn
            .open_table(sparsam::store::schema::events_table(day))
            .unwrap();
        t.range::<(&str, u32)>(("s", 0)..=("s", u32::MAX))
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                let place = BlockPlace::of_key(k.value().1);
                let len = decode_block(v.value(), Cols::NONE).unwrap().events.len();
                (place, len)
            })
            .collect::<Vec<_>>()
    };
    let pieces = sizes(&f.path);
    assert_eq!(pieces.len(), 10, "{pieces:?}");
    for (i, (place, len)) in pieces.iter().enumerate() {
        assert!(place.piece && place.block == 0, "{pieces:?}");
        assert_eq!(place.first_index as usize, i * 100);
        assert_eq!(
            *len,
            if i < 9 {
                100
            } else {
                BLOCK_MAX_EVENTS - 24 - 900
            }
        );
    }

    let store = Arc::new(Store::open(&f.path, &StoreOptions::default()).unwrap());
    let writer = Writer::spawn(store.clone(), WriterOptions::default()).unwrap();
    write_in_batches(&writer, &events[BLOCK_MAX_EVENTS - 24..], 64);
    writer.shutdown_blocking().unwrap();
    let raw = scan_all(&store, "s");
    assert_eq!(raw.len(), n);
    assert!(raw.windows(2).all(|w| w[0].ts_ms < w[1].ts_ms));
    let s = store.summary("s", day0(), day0() + DAY).unwrap();
    assert_eq!((s.pageviews, s.visitors), (n as u64, 90));
    drop(store);
    let after = sizes(&f.path);
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(after[0].0, BlockPlace::of_key(0));
    assert_eq!(after[0].1, BLOCK_MAX_EVENTS);
    assert!(after[1].0.piece && after[1].0.block == 1 && after[1].0.first_index == 0);
    assert_eq!(after[1].1, 40);
}

/// A store written before tail pieces (schema version 3) kept its block
/// still filling whole under the block's number. It opens, is stamped
/// version 4, reads the same events and numbers, and new events go in
/// pieces after that block: read in order, after a restart too, and once
/// the block fills it is written whole and its pieces deleted.
#[test]
fn a_version_3_store_is_continued_in_tail_pieces() {
    use redb::{ReadableDatabase, ReadableTable};
    use sparsam::store::codec::{decode_block, BlockBuilder, BlockPlace, Cols, BLOCK_MAX_EVENTS};
    let f = open();
    let n = BLOCK_MAX_EVENTS + 500;
    let events: Vec<Event> = busy_day(n + 700, 1000);
    write_in_batches(&f.writer, &events[..n], 100);
    f.writer.shutdown_blocking().unwrap();
    let summary = |store: &Store| store.summary("s", day0(), day0() + DAY).unwrap();
    let d = NaiveDate::from_ymd_opt(2026, 11, 5).unwrap();
    let pages = |store: &Store| store.ranked("s", Dimension::Page, d, d, 100, 0).unwrap();
    let (raw_before, summary_before, pages_before) =
        (scan_all(&f.store, "s"), summary(&f.store), pages(&f.store));
    drop(f.store);

    // the layout version 3 wrote: block 1, still filling, stored whole
    let day = "events_20261105";
    assert_eq!(event_keys(&f.path, day, "s")[0], 0);
    {
        let db = redb::Database::create(&f.path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn
                .open_table(sparsam::store::schema::events_table(day))
                .unwrap();
            let mut tail: Option<BlockBuilder> = None;
            let mut pieces = Vec::new();
            for r in t.range::<(&str, u32)>(("s", 1)..=("s", u32::MAX)).unwrap() {
                let (k, v) = r.unwrap();
                let block = decode_block(v.value(), Cols::ALL).unwrap();
                match &mut tail {
                    None => tail = Some(BlockBuilder::from_block(&block)),
                    Some(b) => b.extend_from_block(&block),
                }
                pieces.push(k.value().1);
            }
            assert!(pieces.len() > 1, "block 1 is held in pieces: {pieces:x?}");
            assert!(pieces.iter().all(|&k| BlockPlace::of_key(k).piece));
            for k in pieces {
                t.remove(("s", k)).unwrap();
            }
            t.insert(("s", 1), tail.unwrap().encode().as_slice())
                .unwrap();
        }
        txn.open_table(redb::TableDefinition::<&str, u32>::new("meta"))
            .unwrap()
            .insert("schema_version", 3)
            .unwrap();
        txn.commit().unwrap();
    }
    assert_eq!(event_keys(&f.path, day, "s"), vec![0, 1]);

    let store = Arc::new(Store::open(&f.path, &StoreOptions::default()).unwrap());
    {
        let db = store.database().unwrap();
        let txn = db.begin_read().unwrap();
        let meta = txn
            .open_table(redb::TableDefinition::<&str, u32>::new("meta"))
            .unwrap();
        assert_eq!(meta.get("schema_version").unwrap().unwrap().value(), 4);
    }
    assert_eq!(scan_all(&store, "s"), raw_before);
    assert_eq!(summary(&store), summary_before);
    assert_eq!(pages(&store), pages_before);

    // 200 more: pieces after the whole, still filling block 1
    let writer = Writer::spawn(store.clone(), WriterOptions::default()).unwrap();
    write_in_batches(&writer, &events[n..n + 200], 50);
    writer.shutdown_blocking().unwrap();
    drop(store);
    let keys = event_keys(&f.path, day, "s");
    assert_eq!(&keys[..2], &[0, 1]);
    assert!(keys[2..].iter().all(|&k| {
        let p = BlockPlace::of_key(k);
        p.piece && p.block == 1
    }));
    assert_eq!(BlockPlace::of_key(keys[2]).first_index, 500);

    // after a restart, 500 more: block 1 fills and is written whole
    let store = Arc::new(Store::open(&f.path, &StoreOptions::default()).unwrap());
    assert_eq!(scan_all(&store, "s").len(), n + 200);
    let writer = Writer::spawn(store.clone(), WriterOptions::default()).unwrap();
    write_in_batches(&writer, &events[n + 200..], 50);
    writer.shutdown_blocking().unwrap();
    let raw = scan_all(&store, "s");
    assert_eq!(raw.len(), n + 700);
    assert_eq!(
        raw.iter().map(|e| e.ts_ms).collect::<Vec<_>>(),
        events.iter().map(|e| e.ts_ms).collect::<Vec<_>>()
    );
    assert_eq!(&raw[..n], &raw_before[..]);
    let s = summary(&store);
    assert_eq!((s.pageviews, s.visitors), ((n + 700) as u64, 300));
    drop(store);
    let keys = event_keys(&f.path, day, "s");
    assert_eq!(&keys[..2], &[0, 1]);
    assert!(keys[2..].iter().all(|&k| {
        let p = BlockPlace::of_key(k);
        p.piece && p.block == 2
    }));
}
