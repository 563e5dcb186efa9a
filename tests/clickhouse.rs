//! The ClickHouse backend against real servers (Debian's ClickHouse 18.16
//! and ZooKeeper, started by `common/clickhouse.rs`): schema migrations
//! run by two collectors at once, acknowledged events stored exactly once
//! on a two-shard cluster with a replicated shard, replicas agreeing,
//! retried batches not counted twice and identical events in distinct
//! batches not merged, whole-day retention checked in `system.parts` of
//! every server, the audit log shared by collectors, the spool carrying
//! events through an outage of ClickHouse and a collector's restart, and
//! the collector binary serving ingest and reports on ClickHouse, and every
//! report endpoint answering alike on ClickHouse and on the embedded store
//! for the same events; collectors sharing the daily salt (also while
//! ClickHouse is down at midnight) and forgetting old ones; and faults
//! under load through two collectors (a replica and a collector killed,
//! ClickHouse stopped for 10 s) losing nothing acknowledged.
//! The single-server statements (schema, migrations,
//! inserts, retry check, retention, audit) and the report differential run
//! again on a current ClickHouse engine through chDB (`common/chdb.rs`).

#[path = "common/chdb.rs"]
mod chdb;
mod common;
#[path = "common/clickhouse.rs"]
mod servers;

use std::path::Path;
use std::time::{Duration, Instant};

use sparsam::model::Event;
use sparsam::storage::clickhouse::settings::ClickHouseConfig;
use sparsam::storage::clickhouse::spool::Spool;
use sparsam::storage::clickhouse::{rows, schema, ClickHouseStorage, OpenOptions};
use sparsam::storage::Storage;

use common::{client, stored_pageview, ADMIN_TOKEN, CHROME_UA};
use servers::{ClickHouseSet, CLUSTER};

const DAY_MS: i64 = 86_400_000;
/// 2025-11-30 12:00 UTC.
const TODAY_NOON: i64 = 1_764_504_000_000;

fn options(set: &ClickHouseSet, cluster: &str, data: &Path) -> OpenOptions {
    options_at(set.urls(), cluster, data)
}

fn options_at(urls: Vec<String>, cluster: &str, data: &Path) -> OpenOptions {
    OpenOptions {
        config: ClickHouseConfig {
            urls,
            database: "sparsam_test".into(),
            cluster: cluster.into(),
            flush_ms: 50,
            request_timeout_secs: 20,
            ..ClickHouseConfig::default()
        },
        data_dir: data.to_path_buf(),
        queue_capacity: 1000,
        site_timezones: Default::default(),
        max_engaged_ms: 1_800_000,
        raw_days: 90,
    }
}

/// Submits `events` in one call and waits for the acknowledgement.
fn store(storage: &ClickHouseStorage, events: Vec<Event>) {
    let ack = storage.submit(events).expect("submit");
    ack.blocking_recv()
        .expect("ack channel")
        .expect("events acknowledged");
}

/// Polls `probe` until it returns `want` (replication and the sender run
/// in the background); panics with the last value after a generous bound.
fn eventually<T: PartialEq + std::fmt::Debug>(want: T, mut probe: impl FnMut() -> T) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = probe();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "expected {want:?}, still {got:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_sent(storage: &ClickHouseStorage) {
    storage.flush().expect("flush");
    eventually(0, || storage.backlog().0);
}

fn events_on(day_noon: i64, visitors: std::ops::Range<u64>) -> Vec<Event> {
    visitors
        .map(|n| stored_pageview(day_noon + n as i64, n, &format!("https://example.org/p{n}")))
        .collect()
}

#[test]
fn cluster_stores_each_acknowledged_event_once_and_drops_whole_days() {
    let set = ClickHouseSet::cluster();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];

    // two collectors start at once on an empty cluster
    let opened: Vec<ClickHouseStorage> = std::thread::scope(|scope| {
        let handles: Vec<_> = dirs
            .iter()
            .map(|d| {
                let o = options(&set, CLUSTER, d.path());
                scope.spawn(move || ClickHouseStorage::open(&o))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().expect("open on the cluster"))
            .collect()
    });
    let (a, b) = (&opened[0], &opened[1]);
    for i in 0..set.servers.len() {
        // replicated to every server
        eventually(u64::from(schema::LATEST_VERSION), || {
            set.count(i, "SELECT max(version) FROM sparsam_test.schema_migrations")
        });
        assert_eq!(
            set.count(
                i,
                "SELECT count() FROM system.tables WHERE database = 'sparsam_test' \
                 AND name IN ('events', 'events_local', 'audit', 'schema_migrations')"
            ),
            4,
            "every table on server {i}"
        );
    }
    // opening again is a no-op
    drop(ClickHouseStorage::open(&options(&set, CLUSTER, dirs[0].path())).expect("reopen"));

    // 300 events on two days through both collectors
    let yesterday = TODAY_NOON - DAY_MS;
    store(a, events_on(yesterday, 0..100));
    store(b, events_on(TODAY_NOON, 100..250));
    store(a, events_on(TODAY_NOON, 250..300));
    // the very same event in two different batches is two events
    let twice = stored_pageview(TODAY_NOON + 5_000, 7, "https://example.org/twice");
    store(a, vec![twice.clone()]);
    a.flush().unwrap();
    store(a, vec![twice]);
    wait_sent(a);
    wait_sent(b);
    eventually(302, || a.event_count().unwrap());
    let yesterday_day = rows::utc_day(yesterday);
    let today_day = rows::utc_day(TODAY_NOON);
    assert_eq!(
        a.days().unwrap(),
        vec![(yesterday_day, 100), (today_day, 202)]
    );
    // reports read both shards, through either collector
    for collector in [a, b] {
        let pages = collector
            .ranked(
                "demo",
                sparsam::storage::Dimension::Page,
                yesterday_day,
                today_day,
                1000,
                0,
            )
            .unwrap();
        assert_eq!((pages.total, pages.total_rows), (302, 301));
        let hours = collector
            .hourly_totals("demo", yesterday - DAY_MS, TODAY_NOON + DAY_MS)
            .unwrap();
        let visitors: u64 = hours.iter().map(|(_, t)| t.visitors).sum();
        // visitor 7 of yesterday came back today (the event sent twice)
        assert_eq!(visitors, 301);
    }
    // both shards hold some, and the replicas of shard 1 agree
    let local = "SELECT count() FROM sparsam_test.events_local";
    let shard1 = set.count(0, local);
    let shard2 = set.count(2, local);
    assert!(shard1 > 0 && shard2 > 0, "{shard1} / {shard2}");
    assert_eq!(shard1 + shard2, 302);
    eventually(shard1, || set.count(1, local));
    eventually(
        set.query(0, "SELECT groupArray(ts_ms) FROM (SELECT ts_ms FROM sparsam_test.events_local ORDER BY ts_ms, batch)"),
        || set.query(1, "SELECT groupArray(ts_ms) FROM (SELECT ts_ms FROM sparsam_test.events_local ORDER BY ts_ms, batch)"),
    );

    // only the shortened address is stored: 181.153.0.0/16 as AnonIp bytes
    let ips = set.query(
        0,
        "SELECT DISTINCT ip FROM sparsam_test.events FORMAT TabSeparated",
    );
    assert_eq!(ips.trim(), "0410b599", "stored addresses: {ips}");
    let mut facts = 0;
    a.for_each_stored_event(&mut |fact| {
        let ip = fact.ip.expect("address decodes");
        assert!(ip.is_truncated() && ip.prefix_len == 16, "{ip:?}");
        facts += 1;
    })
    .unwrap();
    assert_eq!(facts, 302);

    // a batch that reached ClickHouse but whose confirmation was lost is
    // replayed from the spool at the next start and not counted again
    let replay_dir = tempfile::tempdir().unwrap();
    {
        let spool = Spool::open(&replay_dir.path().join("clickhouse-spool"), 1 << 30).unwrap();
        let mut body = Vec::new();
        let replayed = events_on(TODAY_NOON + 60_000, 1000..1010);
        for (seq, e) in replayed.iter().enumerate() {
            rows::push_row(&mut body, e, 0xfeed, seq as u64);
        }
        spool.put(0xfeed, today_day, 10, &body).unwrap();
        let first = ClickHouseStorage::open(&options(&set, CLUSTER, replay_dir.path())).unwrap();
        wait_sent(&first);
        drop(first);
        eventually(312, || a.event_count().unwrap());
        // the same file again, as if the deletion had been lost in a crash
        spool.put(0xfeed, today_day, 10, &body).unwrap();
    }
    let again = ClickHouseStorage::open(&options(&set, CLUSTER, replay_dir.path())).unwrap();
    wait_sent(&again);
    drop(again);
    // sent straight to ClickHouse, the identical block is dropped as a
    // duplicate by the replicated table too
    let body = std::fs::read_dir(replay_dir.path().join("clickhouse-spool"))
        .unwrap()
        .count();
    assert_eq!(body, 0, "spool emptied");
    assert_eq!(a.event_count().unwrap(), 312);

    // the audit log is one log: written through one collector, read
    // through the other
    let id = a
        .audit_append(r#"{"kind":"test","marker":"audit-one-place"}"#)
        .unwrap();
    b.audit_replace(id, r#"{"kind":"test","marker":"audit-replaced"}"#)
        .unwrap();
    eventually(
        vec![(
            id,
            r#"{"kind":"test","marker":"audit-replaced"}"#.to_string(),
        )],
        || b.audit_records().unwrap(),
    );
    eventually(1, || a.audit_records().unwrap().len());

    // retention: yesterday goes whole, on every replica of every shard
    assert_eq!(a.drop_day(yesterday_day).unwrap(), 100);
    assert_eq!(a.days().unwrap(), vec![(today_day, 212)]);
    for i in 0..set.servers.len() {
        assert_eq!(
            set.count(
                i,
                &format!(
                    "SELECT count() FROM system.parts WHERE database = 'sparsam_test' \
                     AND table = 'events_local' AND partition = '{yesterday_day}' AND active"
                )
            ),
            0,
            "server {i} still has active parts of {yesterday_day}"
        );
        assert_eq!(
            set.count(
                i,
                &format!(
                    "SELECT count() FROM sparsam_test.events_local WHERE day = '{yesterday_day}'"
                )
            ),
            0
        );
    }
    // the boundary day is trimmed by a mutation: today's events are at
    // TODAY_NOON + n for n in 100..300, and ten more a minute later
    let cutoff = TODAY_NOON + 150;
    let plan = a.expiry_plan(cutoff).unwrap();
    assert!(plan.whole.is_empty());
    assert_eq!(plan.boundary, Some((today_day, 50)));
    assert_eq!(a.trim_day(today_day, cutoff).unwrap(), 50);
    assert_eq!(a.event_count().unwrap(), 162);
    assert!(a.oldest_event_ms().unwrap().unwrap() >= cutoff);
}

#[test]
fn outage_and_collector_restart_lose_nothing_acknowledged() {
    let mut set = ClickHouseSet::single();
    let data = tempfile::tempdir().unwrap();
    let day = rows::utc_day(TODAY_NOON);

    assert_timeout_is_transient(&set.urls()[0]);
    let storage = ClickHouseStorage::open(&options(&set, "", data.path())).unwrap();
    store(&storage, events_on(TODAY_NOON, 0..40));
    wait_sent(&storage);
    assert_eq!(storage.event_count().unwrap(), 40);
    assert_eq!(
        set.query(
            0,
            "SELECT engine FROM system.tables WHERE database = 'sparsam_test' AND name = 'events'"
        )
        .trim(),
        "MergeTree"
    );

    // ClickHouse goes away: ingest is still acknowledged, into the spool
    set.kill_all();
    for chunk in 0..5u64 {
        store(
            &storage,
            events_on(TODAY_NOON, 100 + chunk * 10..110 + chunk * 10),
        );
    }
    storage.flush().unwrap();
    let (batches, bytes) = storage.backlog();
    assert!(
        batches >= 1 && bytes > 0,
        "{batches} batches, {bytes} bytes waiting"
    );
    assert!(storage.event_count().is_err(), "ClickHouse is down");

    // ClickHouse comes back: the spool drains, every event once
    set.start_all();
    wait_sent(&storage);
    assert_eq!(storage.event_count().unwrap(), 90);

    // down again, and the collector stops (or crashes) with a full spool
    set.kill_all();
    store(&storage, events_on(TODAY_NOON, 200..230));
    storage.close().unwrap();
    assert!(storage.submit(Vec::new()).is_err(), "closed");
    drop(storage);
    let spooled = std::fs::read_dir(data.path().join("clickhouse-spool"))
        .unwrap()
        .count();
    assert!(spooled >= 1, "the spool survives the collector");

    // both come back: the new collector replays what the old one accepted
    set.start_all();
    let storage = ClickHouseStorage::open(&options(&set, "", data.path())).unwrap();
    wait_sent(&storage);
    assert_eq!(storage.event_count().unwrap(), 120);
    assert_eq!(storage.days().unwrap(), vec![(day, 120)]);

    // a plain MergeTree does not deduplicate: a batch replayed after it
    // landed is recognised by its insert id and not inserted again
    drop(storage);
    let replay = tempfile::tempdir().unwrap();
    let spool = Spool::open(&replay.path().join("clickhouse-spool"), 1 << 30).unwrap();
    let mut body = Vec::new();
    for (seq, e) in events_on(TODAY_NOON, 500..510).iter().enumerate() {
        rows::push_row(&mut body, e, 0xbeef, seq as u64);
    }
    for _ in 0..2 {
        spool.put(0xbeef, day, 10, &body).unwrap();
        let replayer = ClickHouseStorage::open(&options(&set, "", replay.path())).unwrap();
        wait_sent(&replayer);
    }
    let storage = ClickHouseStorage::open(&options(&set, "", data.path())).unwrap();
    assert_eq!(storage.event_count().unwrap(), 130);

    // a single server's partitions go the same way
    assert_eq!(storage.drop_day(day).unwrap(), 130);
    assert_eq!(storage.event_count().unwrap(), 0);
    assert_eq!(storage.oldest_event_ms().unwrap(), None);
}

#[test]
fn a_full_spool_refuses_instead_of_acknowledging() {
    let mut set = ClickHouseSet::single();
    let data = tempfile::tempdir().unwrap();
    let mut o = options(&set, "", data.path());
    o.config.spool_max_mb = 1;
    let storage = ClickHouseStorage::open(&o).unwrap();
    set.kill_all();
    // about 400 bytes a row: 1 MiB holds some 2600 events
    let mut refused = None;
    for round in 0..20u64 {
        let ack = storage
            .submit(events_on(TODAY_NOON, round * 500..(round + 1) * 500))
            .expect("queued");
        if let Err(e) = ack.blocking_recv().unwrap() {
            refused = Some((round, e));
            break;
        }
    }
    let (round, error) = refused.expect("a full spool refuses");
    assert!(error.is_transient(), "{error}");
    assert!(error.to_string().contains("spool is full"), "{error}");
    // what was acknowledged before arrives once ClickHouse is back, and
    // nothing of the refused batch
    set.start_all();
    wait_sent(&storage);
    assert_eq!(storage.event_count().unwrap(), round * 500);
}

fn collector_config(data: &Path, urls: &[String], extra_store: &str, retention: &str) -> String {
    let urls = urls
        .iter()
        .map(|u| format!("{u:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "{data}"
workers = 2
trusted_proxies = ["127.0.0.1"]

[store]
backend = "clickhouse"
{extra_store}

[retention]
{retention}

[clickhouse]
urls = [{urls}]
database = "sparsam_http"
flush_ms = 50

[auth]
admin_token = "{ADMIN_TOKEN}"

[[sites]]
id = "demo"
hostnames = ["example.org"]
matomo_id = 1
"#,
        data = data.display()
    )
}

#[test]
fn the_collector_ingests_into_clickhouse_and_reports_from_it() {
    let set = ClickHouseSet::single();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // settings this backend cannot serve are refused by name
    let err = common::start_fails(dir.path(), &collector_config(&data, &set.urls(), "", ""));
    assert!(err.contains("retention.vacuum_after_sweep"), "{err}");
    let err = common::start_fails(
        dir.path(),
        &collector_config(
            &data,
            &set.urls(),
            "",
            "vacuum_after_sweep = false\nfree_text_min_visitors = 10",
        ),
    );
    assert!(err.contains("retention.free_text_min_visitors"), "{err}");
    let err = common::start_fails(
        dir.path(),
        &collector_config(&data, &["ftp://x".into()], "", "vacuum_after_sweep = false"),
    );
    assert!(err.contains("clickhouse.urls[0]"), "{err}");

    // a dead first URL: writes fail over to the second
    let urls = vec!["http://127.0.0.1:9".to_string(), set.urls()[0].clone()];
    let config = collector_config(&data, &urls, "", "vacuum_after_sweep = false");
    let server = common::Server::start_config(dir.path(), &config);
    let c = client();
    for n in 0..5 {
        let res = c
            .get(server.url(&format!(
                "/matomo.php?idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2Fch{n}&send_image=0"
            )))
            .header("User-Agent", CHROME_UA)
            .header("X-Forwarded-For", "203.0.113.77")
            .send()
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
    }
    eventually(5, || {
        set.count(
            0,
            "SELECT count() FROM sparsam_http.events WHERE site = 'demo'",
        )
    });
    // the settings record of the audit log went to ClickHouse
    assert!(set.count(0, "SELECT count() FROM sparsam_http.audit") >= 1);
    // no full address anywhere in the row
    let row = set.query(0, "SELECT * FROM sparsam_http.events FORMAT TabSeparated");
    assert!(
        !row.contains("203.0.113.77") && !row.contains("cb00714d"),
        "{row}"
    );

    // reports read ClickHouse
    let res = c
        .get(server.url("/api/v1/sites/demo/summary?period=today"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let summary: serde_json::Value = res.json().unwrap();
    assert_eq!(summary["pageviews"], 5, "{summary}");
    let health = c.get(server.url("/healthz")).send().unwrap();
    assert_eq!(health.status(), 200);
}

/// A metric's value on a metrics page (summed over its labels).
fn metric_value(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Stores `events` through the backend `config` names (in batches of 37,
/// as collectors' batches come) and closes it once all are counted.
fn store_through_backend(config: &str, events: &[sparsam::model::Event]) {
    let parsed = sparsam::Config::parse(config).expect("config");
    let storage = sparsam::app::open_backend(&parsed).expect("open backend");
    for chunk in events.chunks(37) {
        storage
            .submit(chunk.to_vec())
            .expect("queued")
            .blocking_recv()
            .expect("answer")
            .expect("stored");
    }
    eventually(events.len() as u64, || storage.event_count().unwrap_or(0));
    storage.close().expect("close");
}

/// A collector keeps a closed day's roll-ups between reports (the second
/// report of the day is answered from its cache), yet a late event that
/// another writer puts into that day (a collector replaying its spool, an
/// import, a migration) shows in the next report: ClickHouse's
/// fingerprint of the day's rows decides, not the collector's memory.
#[test]
fn a_late_event_into_a_cached_closed_day_changes_the_answer() {
    let set = ClickHouseSet::single();
    let dir = tempfile::tempdir().unwrap();
    let config = collector_config(
        &dir.path().join("data"),
        &set.urls(),
        "",
        "vacuum_after_sweep = false",
    );
    let server = common::Server::start_config(dir.path(), &config);
    // the other writer, on the collector's database
    let mut o = options(&set, "", &dir.path().join("writer"));
    o.config.database = "sparsam_http".into();
    let writer = ClickHouseStorage::open(&o).expect("writer");

    let today = chrono::Utc::now().date_naive();
    let closed = today - chrono::Days::new(3);
    let noon = closed
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    store(&writer, events_on(noon, 0..20));
    wait_sent(&writer);

    let summary = format!("/api/v1/sites/demo/summary?from={closed}&to={closed}");
    let pages = format!("/api/v1/sites/demo/breakdown/page?from={closed}&to={closed}&limit=100");
    let hits = |server: &common::Server| {
        metric_value(
            &common::metrics(server),
            "sparsam_clickhouse_report_cache_hits_total",
        )
    };
    assert_eq!(common::admin_json(&server, &summary)["pageviews"], 20);
    assert_eq!(
        common::admin_json(&server, &pages)["rows"]
            .as_array()
            .unwrap()
            .len(),
        20
    );
    // asked again: the closed day comes from the cache
    let before = hits(&server);
    assert_eq!(common::admin_json(&server, &summary)["pageviews"], 20);
    assert_eq!(
        common::admin_json(&server, &pages)["rows"]
            .as_array()
            .unwrap()
            .len(),
        20
    );
    assert!(hits(&server) > before, "the closed day was not cached");
    let held = metric_value(
        &common::metrics(&server),
        "sparsam_clickhouse_report_cache_days",
    );
    assert!(held >= 1.0, "{held} days held");

    // a late page view of a new visitor, into the cached day
    store(
        &writer,
        vec![stored_pageview(
            noon + 3_600_000,
            500,
            "https://example.org/late",
        )],
    );
    wait_sent(&writer);
    let answer = common::admin_json(&server, &summary);
    assert_eq!(answer["pageviews"], 21, "{answer}");
    assert_eq!(answer["visitors"], 21, "{answer}");
    let rows = common::admin_json(&server, &pages);
    assert!(
        rows["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["value"] == "https://example.org/late"),
        "{rows}"
    );
}

/// Free text held in the report cache goes when the embedded store's
/// roll-ups would lose it: the sweep that drops a day past
/// `retention.raw_days` takes the day's cached roll-ups (a search term
/// among them) out of the collector's memory at once, without waiting for
/// the next report.
#[test]
fn the_sweep_takes_cached_free_text_out_of_memory() {
    let set = ClickHouseSet::single();
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("clock");
    // 2025-11-30 12:00 UTC: the day before is closed
    let now = chrono::DateTime::from_timestamp_millis(TODAY_NOON).unwrap();
    set_clock(&clock, now);
    let config = collector_config(
        &dir.path().join("data"),
        &set.urls(),
        "",
        "vacuum_after_sweep = false\nraw_days = 2\nsweep_schedule = \"0 0 0 1 1 *\"",
    );
    let server = common::Server::start_config_env(
        dir.path(),
        &config,
        &[(sparsam::clock::SIMULATED_CLOCK_ENV, &clock)],
    );
    let mut o = options(&set, "", &dir.path().join("writer"));
    o.config.database = "sparsam_http".into();
    let writer = ClickHouseStorage::open(&o).expect("writer");
    let yesterday_noon = TODAY_NOON - DAY_MS;
    let searches: Vec<Event> = (0..3u64)
        .map(|n| Event {
            kind: sparsam::model::EventKind::Search,
            search_term: "my own name".into(),
            ..stored_pageview(yesterday_noon + n as i64, n, "https://example.org/search")
        })
        .collect();
    store(&writer, searches);
    wait_sent(&writer);

    let terms = "/api/v1/sites/demo/breakdown/search_term?from=2025-11-29&to=2025-11-29";
    let answer = common::admin_json(&server, terms);
    assert_eq!(answer["rows"][0]["value"], "my own name", "{answer}");
    let days_held = |server: &common::Server| {
        metric_value(
            &common::metrics(server),
            "sparsam_clickhouse_report_cache_days",
        )
    };
    assert!(days_held(&server) >= 1.0, "the closed day was not cached");

    // two days and a half later the day is past retention.raw_days
    set_clock(&clock, now + chrono::Duration::hours(60));
    let res = client()
        .post(server.url("/api/v1/sweep"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let report: serde_json::Value = res.json().unwrap();
    assert_eq!(report["events_deleted"], 3, "{report}");
    // gone from memory by the sweep itself, before any report asks
    assert_eq!(days_held(&server), 0.0);
    let answer = common::admin_json(&server, terms);
    assert_eq!(answer["rows"], serde_json::json!([]), "{answer}");
}

/// Site `demo` (Europe/Berlin) with declared events, goals and a funnel,
/// on the backend named by `store`.
fn report_config(data: &Path, store: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "{data}"
workers = 2

{store}

[auth]
admin_token = "{ADMIN_TOKEN}"

[[sites]]
id = "demo"
hostnames = ["example.org"]
timezone = "Europe/Berlin"

[[sites.events]]
name = "signup"
props = {{ plan = {{ max_len = 8, values = ["free", "pro"] }} }}

[[sites.goals]]
name = "Signed up"
event = "signup"

[[sites.goals]]
name = "Pro sign-up"
event = "signup"
props = {{ plan = "pro" }}

[[sites.goals]]
name = "Read the guide"
path = "/guide/*"

[[sites.funnels]]
name = "Sign-up flow"
steps = ["path:/pricing", "path:/signup", "event:signup"]
"#,
        data = data.display()
    )
}

/// A deterministic mix of visitors over the four UTC days before the one
/// starting at `today` (ms), and a few in the minutes before `now`: visits
/// of one to six events with page views, dwell pings, downloads, outbound
/// clicks, searches with and without results, sign-ups with revenue; a
/// visitor coming back after the visit timeout, visits across the UTC and
/// the Berlin midnight; two page views of one millisecond (read back in
/// receipt order); devices, referrers and campaigns per visitor.
fn generated_events(today: i64, now: i64) -> Vec<Event> {
    use sparsam::goals::CustomEvent;
    use sparsam::model::{Campaign, Device, DeviceType, EventKind, Referrer, ReferrerType};
    let mut seed: u64 = 0x5eed_1234_abcd;
    let mut rnd = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    const MIN: i64 = 60_000;
    let pages = [
        "/", "/pricing", "/signup", "/guide/a", "/guide/b", "/blog/x",
    ];
    let mut out = Vec::new();
    for day in 0..4i64 {
        let midnight = today - (4 - day) * DAY_MS;
        for v in 0..14u64 {
            let visitor = 1_000 * (day as u64 + 1) + v;
            let device = match v % 3 {
                0 => Device {
                    device_type: DeviceType::Desktop,
                    os: "Windows".into(),
                    browser: "Chrome".into(),
                    browser_version: "124".into(),
                    engine: "Blink".into(),
                    ..Device::default()
                },
                1 => Device {
                    device_type: DeviceType::Smartphone,
                    brand: "Apple".into(),
                    model: "iPhone".into(),
                    os: "iOS".into(),
                    browser: "Mobile Safari".into(),
                    engine: "WebKit".into(),
                    ..Device::default()
                },
                _ => Device {
                    device_type: DeviceType::Desktop,
                    os: "GNU/Linux".into(),
                    browser: "Firefox".into(),
                    browser_version: "126".into(),
                    engine: "Gecko".into(),
                    ..Device::default()
                },
            };
            // the first visitor of a day starts just before midnight (UTC),
            // the second just before midnight in Berlin
            let mut t = match v {
                0 => midnight + DAY_MS - 10 * MIN,
                1 => midnight + DAY_MS - 70 * MIN,
                _ => midnight + 30 * MIN + rnd(20 * 60) as i64 * MIN,
            };
            let visits = 1 + rnd(2);
            for visit in 0..visits {
                let referrer = match (v + visit) % 4 {
                    0 => Referrer::default(),
                    1 => Referrer {
                        kind: ReferrerType::Search,
                        name: "Google".into(),
                        url: "https://www.google.com/".into(),
                    },
                    2 => Referrer {
                        kind: ReferrerType::Social,
                        name: "Mastodon".into(),
                        url: "https://mastodon.social/@x".into(),
                    },
                    _ => Referrer {
                        kind: ReferrerType::Website,
                        name: String::new(),
                        url: "https://blog.example/post".into(),
                    },
                };
                let campaign = if v % 5 == 0 {
                    Campaign {
                        source: "newsletter".into(),
                        medium: "email".into(),
                        campaign: format!("week{day}"),
                    }
                } else {
                    Campaign::default()
                };
                let mut pageview = 0u64;
                for step in 0..1 + rnd(6) {
                    let mut e = stored_pageview(t, visitor, "");
                    e.device = device.clone();
                    e.plugins = if v % 2 == 0 { 0b101 } else { 0 };
                    e.referrer = referrer.clone();
                    e.campaign = campaign.clone();
                    let page = pages[rnd(pages.len() as u64) as usize];
                    e.url = format!("https://example.org{page}");
                    e.title = format!("Title {page}");
                    let kind = if step == 0 { 0 } else { rnd(8) };
                    match kind {
                        0..=2 => {
                            pageview = visitor * 100 + step;
                            e.pageview_id = pageview;
                        }
                        3 => {
                            e.kind = EventKind::Ping;
                            e.pageview_id = pageview;
                            e.engaged_ms = 1_000 + rnd(60_000) as u32;
                        }
                        4 => {
                            e.kind = EventKind::Download;
                            e.pageview_id = 0;
                            e.target = format!("https://example.org/files/{}.pdf", rnd(3));
                        }
                        5 => {
                            e.kind = EventKind::Outbound;
                            e.pageview_id = 0;
                            e.target = format!("https://elsewhere.example/{}", rnd(3));
                        }
                        6 => {
                            e.kind = EventKind::Search;
                            e.pageview_id = 0;
                            e.search_term = format!("term {}", rnd(4));
                            e.search_results = Some(rnd(3) as u32);
                        }
                        _ => {
                            e.kind = EventKind::Custom;
                            e.pageview_id = 0;
                            let plan = if rnd(2) == 0 { "free" } else { "pro" };
                            e.custom = Some(CustomEvent {
                                name: "signup".into(),
                                props: vec![("plan".into(), plan.into())],
                                revenue_cents: if plan == "pro" { 990 } else { 0 },
                            });
                        }
                    }
                    if step == 0 && visit == 0 && v % 4 == 3 {
                        // a second page view in the same millisecond: both
                        // engines take it after the first (receipt order),
                        // so the visit's entry page stays the first's
                        let mut tie = e.clone();
                        tie.url = "https://example.org/same-ms".into();
                        tie.title = "Same millisecond".into();
                        tie.pageview_id = visitor * 100 + 99;
                        out.push(e);
                        out.push(tie);
                    } else {
                        out.push(e);
                    }
                    t += (1 + rnd(9) as i64) * MIN + rnd(1000) as i64;
                }
                // back after the visit timeout
                t += 45 * MIN + rnd(60) as i64 * MIN;
            }
        }
    }
    // live visitors for the realtime report
    for v in 0..3u64 {
        let mut e = stored_pageview(now - (10 + v as i64) * MIN, 9_000 + v, "");
        e.url = format!("https://example.org/live{v}");
        out.push(e);
    }
    out.sort_by_key(|e| e.ts_ms);
    out
}

/// GETs `path` with the admin token; `csv` asks for CSV. Returns status and
/// body.
fn report_answer(server: &common::Server, path: &str, csv: bool) -> (u16, String) {
    let mut req = client().get(server.url(path)).bearer_auth(ADMIN_TOKEN);
    if csv {
        req = req.header("Accept", "text/csv");
    }
    let res = req.send().expect("report request");
    (res.status().as_u16(), res.text().expect("report body"))
}

/// Every report endpoint answers alike on the embedded store and on
/// ClickHouse for the same events: summary, time series, every breakdown
/// dimension, filters on event-, visit- and device-level dimensions,
/// comparisons, goals, funnel, realtime and CSV.
#[test]
fn reports_on_clickhouse_equal_the_embedded_stores() {
    let set = ClickHouseSet::single();
    assert_reports_equal(&set.urls()[0]);
}

/// Loads the generated events into a redb store and into the ClickHouse
/// at `url` (database `sparsam_diff`, made by the backend's migrations),
/// starts a collector binary on each and compares every report endpoint's
/// JSON and CSV; any difference fails with both answers.
fn assert_reports_equal(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let redb_data = dir.path().join("redb");
    let ch_data = dir.path().join("ch");
    let redb_config = report_config(&redb_data, "");
    let ch_config = report_config(
        &ch_data,
        &format!(
            "[store]\nbackend = \"clickhouse\"\n[retention]\nvacuum_after_sweep = false\n\
             [clickhouse]\nurls = [{url:?}]\ndatabase = \"sparsam_diff\"\nflush_ms = 50"
        ),
    );
    // reports and retention run on the wall clock: days before today
    let now = chrono::Utc::now();
    let today = now.date_naive();
    let today_ms = today
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    let events = generated_events(today_ms, now.timestamp_millis());
    assert!(events.len() > 150, "{} events", events.len());
    for config in [&redb_config, &ch_config] {
        store_through_backend(config, &events);
    }

    let redb_dir = tempfile::tempdir().unwrap();
    let ch_dir = tempfile::tempdir().unwrap();
    let embedded = common::Server::start_config(redb_dir.path(), &redb_config);
    let clickhouse = common::Server::start_config(ch_dir.path(), &ch_config);

    let day = |back: u64| today - chrono::Days::new(back);
    let range = format!("from={}&to={today}", day(5));
    let recent = format!("from={}&to={}", day(2), day(1));
    let filters = [
        "",
        "&filter=device_type%3D%3Dsmartphone",
        "&filter=entry_page%3D%3Dhttps%3A%2F%2Fexample.org%2Fpricing",
        "&filter=exit_page%21%3Dhttps%3A%2F%2Fexample.org%2F",
        "&filter=referrer_type%3D%3Dsearch",
        "&filter=page%3D%3Dhttps%3A%2F%2Fexample.org%2Fguide%2Fa",
        "&filter=utm_source%3D%3Dnewsletter&filter=browser%21%3DFirefox",
    ];
    let mut paths = Vec::new();
    for f in filters {
        paths.push(format!("summary?{range}{f}"));
        paths.push(format!("summary?{recent}&compare=previous{f}"));
        paths.push(format!("timeseries?{range}&interval=hour{f}"));
        paths.push(format!(
            "timeseries?{range}&interval=day&compare=previous{f}"
        ));
        paths.push(format!("goals?{range}{f}"));
        paths.push(format!("funnel?{range}{f}"));
        for dim in sparsam::storage::Dimension::ALL {
            paths.push(format!("breakdown/{dim}?{range}&limit=1000{f}"));
        }
    }
    for dim in sparsam::storage::Dimension::ALL {
        paths.push(format!(
            "breakdown/{dim}?from={}&to={}&limit=3&offset=1&compare=previous",
            day(1),
            day(1)
        ));
    }
    paths.push("realtime".into());
    paths.push("summary?period=today".into());
    let mut compared = 0;
    let mut differences = Vec::new();
    for path in &paths {
        let path = format!("/api/v1/sites/demo/{path}");
        for csv in [false, true] {
            if csv
                && (path.contains("realtime")
                    || path.contains("/goals")
                    || path.contains("/funnel"))
            {
                continue;
            }
            let want = report_answer(&embedded, &path, csv);
            let got = report_answer(&clickhouse, &path, csv);
            assert_eq!(want.0, 200, "{path} (csv: {csv}) on redb: {}", want.1);
            if csv {
                if want != got {
                    differences.push(format!(
                        "{path} CSV\n  redb:       {}\n  ClickHouse: {}",
                        want.1, got.1
                    ));
                }
            } else {
                // the time of the answer is the only thing allowed to differ
                let parse = |body: &str| {
                    let mut v: Option<serde_json::Value> = serde_json::from_str(body).ok();
                    if let Some(serde_json::Value::Object(o)) = v.as_mut() {
                        o.remove("as_of");
                    }
                    v
                };
                let want = parse(&want.1).unwrap();
                let got_json = parse(&got.1);
                if got_json.as_ref() != Some(&want) {
                    differences.push(format!(
                        "{path}\n  redb:       {want}\n  ClickHouse: {}",
                        got.1
                    ));
                }
            }
            compared += 1;
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {compared} answers differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
    // the answers compared are not empty ones
    let (_, summary) = report_answer(
        &embedded,
        &format!("/api/v1/sites/demo/summary?{range}"),
        false,
    );
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert!(summary["visits"].as_u64().unwrap_or(0) > 50, "{summary}");
    let (_, goals) = report_answer(
        &embedded,
        &format!("/api/v1/sites/demo/goals?{range}"),
        false,
    );
    let goals: serde_json::Value = serde_json::from_str(&goals).unwrap();
    let converted = goals["rows"].as_array().map_or(0, |rows| {
        rows.iter()
            .filter(|r| r["conversions"].as_u64().unwrap_or(0) > 0)
            .count()
    });
    assert!(converted >= 2, "{goals}");
    let (_, live) = report_answer(&embedded, "/api/v1/sites/demo/realtime", false);
    assert!(!live.contains("\"visitors\":0"), "{live}");
}

/// Sweeps the collector behind `server` at its (simulated) clock and
/// returns the sweep's report.
fn sweep(server: &common::Server) -> serde_json::Value {
    let res = client()
        .post(server.url("/api/v1/sweep"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().unwrap()
}

/// Reports over days whose raw events the sweep deleted answer on
/// ClickHouse as on the embedded store, from the roll-ups the sweep kept
/// (Debian's ClickHouse 18.16).
#[test]
fn reports_past_raw_days_equal_the_embedded_stores() {
    let set = ClickHouseSet::single();
    assert_history_equal(&set.urls()[0], |sql| set.query(0, sql));
}

/// The same on a current ClickHouse (chDB).
#[test]
fn reports_past_raw_days_on_current_clickhouse_equal_the_embedded_stores() {
    let Some(chdb) = chdb::Chdb::start() else {
        return;
    };
    assert!(chdb_major(&chdb) >= 24, "not a current ClickHouse");
    assert_history_equal(&chdb.url(), |sql| chdb.query(sql));
    // the roll-up statements came to chDB
    let statements = chdb.statements();
    for start in [
        "CREATE TABLE IF NOT EXISTS sparsam_history.rollups (",
        "INSERT INTO sparsam_history.rollups FORMAT JSONEachRow\n{",
        "SELECT day, site, version, rows, kind, hour, dimension, local_day, value, counts FROM sparsam_history.rollups WHERE site = 'demo'",
        "ALTER TABLE sparsam_history.rollups DELETE WHERE ",
    ] {
        assert!(
            statements.iter().any(|s| s.starts_with(start)),
            "no {start:?} ran on chDB ({} statements)",
            statements.len()
        );
    }
}

/// Loads the generated events of four days and of the same days a year
/// earlier into a redb store and into ClickHouse (`sparsam_history`),
/// starts a collector on each with `retention.raw_days = 2`, sweeps both at
/// once, and compares every report endpoint over the whole range, swept
/// days included: summary, time series, every breakdown (the free-text
/// dimensions day by day too), filters, `compare=previous` and
/// `compare=year`, goals and funnel. Then both restart with
/// `raw_days = 1` and sweep again (the day that was the boundary goes,
/// and the free text of its roll-ups with it) and everything is compared
/// again. `query` runs SQL on the ClickHouse server.
fn assert_history_equal(url: &str, query: impl Fn(&str) -> String) {
    let dir = tempfile::tempdir().unwrap();
    let retention = |raw_days: u32| {
        format!(
            "[retention]\nvacuum_after_sweep = false\nraw_days = {raw_days}\n\
             sweep_schedule = \"0 0 0 1 1 *\"\n"
        )
    };
    let redb_config = |raw_days| report_config(&dir.path().join("redb"), &retention(raw_days));
    let ch_config = |raw_days| {
        report_config(
            &dir.path().join("ch"),
            &format!(
                "[store]\nbackend = \"clickhouse\"\n{}\
                 [clickhouse]\nurls = [{url:?}]\ndatabase = \"sparsam_history\"\nflush_ms = 50",
                retention(raw_days)
            ),
        )
    };
    // reports and retention run on the wall clock
    let now = chrono::Utc::now();
    let today = now.date_naive();
    let today_ms = today
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    const YEAR_MS: i64 = 364 * DAY_MS;
    let mut events = generated_events(today_ms, now.timestamp_millis());
    events.extend(generated_events(
        today_ms - YEAR_MS,
        now.timestamp_millis() - YEAR_MS,
    ));
    events.sort_by_key(|e| e.ts_ms);
    for config in [redb_config(2), ch_config(2)] {
        store_through_backend(&config, &events);
    }

    let day = |back: u64| today - chrono::Days::new(back);
    for raw_days in [2, 1] {
        let redb_dir = tempfile::tempdir().unwrap();
        let ch_dir = tempfile::tempdir().unwrap();
        let mut embedded = common::Server::start_config(redb_dir.path(), &redb_config(raw_days));
        let mut clickhouse = common::Server::start_config(ch_dir.path(), &ch_config(raw_days));
        // a start-up sweep (the first time) is over before the one asked for
        for server in [&embedded, &clickhouse] {
            eventually(true, || {
                let audit = common::admin_json(server, "/api/v1/audit");
                audit["last_sweeps"][0]["outcome"] == "ok"
            });
        }
        // both at once, so both cut at the same time
        let (want, got) = std::thread::scope(|s| {
            let a = s.spawn(|| sweep(&embedded));
            let b = s.spawn(|| sweep(&clickhouse));
            (a.join().unwrap(), b.join().unwrap())
        });
        let boundary = chrono::DateTime::from_timestamp_millis(got["cutoff_ms"].as_i64().unwrap())
            .unwrap()
            .date_naive();
        assert_eq!(boundary, day(u64::from(raw_days)));
        assert_eq!(want["dry_run"], got["dry_run"]);
        // the raw events of the swept days are gone from ClickHouse
        let raw_left = query(&format!(
            "SELECT count() FROM sparsam_history.events WHERE day < '{boundary}'"
        ));
        assert_eq!(raw_left.trim(), "0", "raw_days {raw_days}");

        let range = format!("from={}&to={today}", day(6));
        let year_ago = format!(
            "from={}&to={}",
            day(6) - chrono::Days::new(364),
            day(0) - chrono::Days::new(364)
        );
        let filters = [
            "",
            "&filter=device_type%3D%3Dsmartphone",
            "&filter=page%3D%3Dhttps%3A%2F%2Fexample.org%2Fguide%2Fa",
        ];
        let mut paths = Vec::new();
        for f in filters {
            for r in [&range, &year_ago] {
                paths.push(format!("summary?{r}{f}"));
                paths.push(format!("timeseries?{r}&interval=hour{f}"));
                paths.push(format!("timeseries?{r}&interval=day{f}"));
                for dim in sparsam::storage::Dimension::ALL {
                    paths.push(format!("breakdown/{dim}?{r}&limit=1000{f}"));
                }
            }
            paths.push(format!(
                "summary?from={}&to={}&compare=year{f}",
                day(5),
                day(1)
            ));
            paths.push(format!(
                "timeseries?from={}&to={}&interval=day&compare=year{f}",
                day(5),
                day(1)
            ));
            paths.push(format!(
                "summary?from={}&to={}&compare=previous{f}",
                day(2),
                day(1)
            ));
            paths.push(format!("goals?{range}{f}"));
            paths.push(format!("funnel?{range}{f}"));
        }
        for dim in sparsam::storage::Dimension::ALL {
            paths.push(format!(
                "breakdown/{dim}?from={}&to={}&limit=1000&compare=year",
                day(5),
                day(1)
            ));
        }
        // the free-text dimensions day by day: kept, cut or gone per day
        for back in 0..7 {
            for dim in sparsam::store::rollup::FREE_TEXT_DIMS {
                paths.push(format!(
                    "breakdown/{dim}?from={}&to={}&limit=1000",
                    day(back),
                    day(back)
                ));
            }
        }
        let mut differences = Vec::new();
        for path in &paths {
            let path = format!("/api/v1/sites/demo/{path}");
            let want = report_answer(&embedded, &path, false);
            let got = report_answer(&clickhouse, &path, false);
            assert_eq!(want.0, 200, "{path} on redb: {}", want.1);
            let parse = |body: &str| {
                let mut v: Option<serde_json::Value> = serde_json::from_str(body).ok();
                if let Some(serde_json::Value::Object(o)) = v.as_mut() {
                    o.remove("as_of");
                }
                v
            };
            let want_json = parse(&want.1).unwrap();
            if parse(&got.1).as_ref() != Some(&want_json) {
                differences.push(format!(
                    "{path}\n  redb:       {want_json}\n  ClickHouse: {}",
                    got.1
                ));
            }
        }
        assert!(
            differences.is_empty(),
            "raw_days {raw_days}: {} of {} answers differ:\n{}",
            differences.len(),
            paths.len(),
            differences.join("\n")
        );
        // what was compared over the swept days is not empty
        for r in [format!("from={}&to={}", day(4), day(3)), year_ago.clone()] {
            let (_, summary) = report_answer(
                &clickhouse,
                &format!("/api/v1/sites/demo/summary?{r}"),
                false,
            );
            let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
            assert!(
                summary["pageviews"].as_u64().unwrap_or(0) > 20,
                "raw_days {raw_days}, {r}: {summary}"
            );
        }
        let (_, pages) = report_answer(
            &clickhouse,
            &format!(
                "/api/v1/sites/demo/breakdown/page?from={}&to={}",
                day(4),
                day(4)
            ),
            false,
        );
        assert!(pages.contains("https://example.org/"), "{pages}");
        embedded.stop();
        clickhouse.stop();
    }
    // every swept day's roll-ups are read from one write per site and day
    let writes = query(
        "SELECT count() FROM (SELECT site, day, uniqExact(version) AS n \
         FROM sparsam_history.rollups GROUP BY site, day HAVING n > 1)",
    );
    assert_eq!(writes.trim(), "0");
    let free_text = query(&format!(
        "SELECT count() FROM sparsam_history.rollups WHERE dimension = 'search_term' \
         AND local_day < {}",
        sparsam::store::ids::DayNumber::of(day(1)).stored()
    ));
    assert_eq!(free_text.trim(), "0");
}

/// A sweep that stops after writing a day's roll-ups and before dropping
/// the day neither loses nor doubles the day: the step run twice writes
/// once, and the reports after the drop are those before it (one server).
#[test]
fn keeping_a_days_rollups_twice_writes_them_once() {
    let set = ClickHouseSet::single();
    keep_rollups_twice(&set, "");
}

/// The same on the cluster (`ReplicatedMergeTree` and `Distributed`, two
/// shards, one of them replicated), with the later cut of a stored day's
/// free text and the roll-up partitions' drop checked on every server.
#[test]
fn keeping_a_days_rollups_on_a_cluster() {
    let set = ClickHouseSet::cluster();
    keep_rollups_twice(&set, CLUSTER);
}

fn keep_rollups_twice(set: &ClickHouseSet, cluster: &str) {
    use sparsam::storage::Dimension;
    let dir = tempfile::tempdir().unwrap();
    let storage = ClickHouseStorage::open(&options(set, cluster, dir.path())).expect("open");
    let day = rows::utc_day(TODAY_NOON - 5 * DAY_MS);
    let before = day.pred_opt().unwrap();
    let noon = TODAY_NOON - 5 * DAY_MS;
    // a visit across midnight into `day`, and page views on `day`
    let mut events = vec![
        stored_pageview(noon - DAY_MS / 2 - 120_000, 7, "https://example.org/late"),
        stored_pageview(
            noon - DAY_MS / 2 + 60_000,
            7,
            "https://example.org/after?q=1",
        ),
    ];
    events.extend(events_on(noon, 0..20));
    store(&storage, events);
    wait_sent(&storage);
    let (from, to) = (noon - DAY_MS, noon + DAY_MS);
    let totals = storage.hourly_totals("demo", from, to).unwrap();
    let browsers = storage
        .ranked("demo", Dimension::Browser, before, day, 100, 0)
        .unwrap();
    let pages = storage
        .ranked("demo", Dimension::Page, day, day, 100, 0)
        .unwrap();
    assert!(!totals.is_empty());

    // `day` and the day before are still within raw_days: their free text
    // stays for now (the visit's exit page moved to the query, dated on
    // the day before)
    let day_number = sparsam::store::ids::DayNumber::of(day).stored();
    let first = storage.keep_rollups(day, day_number - 1).unwrap();
    assert_eq!((first.sites_written, first.sites_present), (1, 0));
    assert!(first.rows > 0 && first.free_text_cut == 0, "{first:?}");
    // the sweep stopped here; the next one runs the step again
    let again = storage.keep_rollups(day, day_number - 1).unwrap();
    assert_eq!(
        (again.sites_written, again.sites_present, again.rows),
        (0, 1, 0)
    );
    let versions = || {
        set.count(
            0,
            &format!("SELECT uniqExact(version) FROM sparsam_test.rollups WHERE day = '{day}'"),
        )
    };
    assert_eq!(versions(), 1);
    // stored days answer as the replay did, before and after the drop
    assert_eq!(storage.hourly_totals("demo", from, to).unwrap(), totals);
    storage.keep_rollups(before, day_number - 1).unwrap();
    storage.drop_day(before).unwrap();
    storage.drop_day(day).unwrap();
    assert_eq!(storage.event_count().unwrap(), 0);
    assert_eq!(storage.hourly_totals("demo", from, to).unwrap(), totals);
    assert_eq!(
        storage
            .ranked("demo", Dimension::Browser, before, day, 100, 0)
            .unwrap(),
        browsers
    );
    assert_eq!(
        storage
            .ranked("demo", Dimension::Page, day, day, 100, 0)
            .unwrap(),
        pages
    );

    // a day later `day` is past raw_days: its stored free text is cut,
    // the write holding it deleted
    let found = storage
        .free_text_days(
            None,
            sparsam::store::ids::DayNumber::from_stored(day_number + 1),
        )
        .unwrap();
    let local_days: Vec<i32> = found.keys().map(|d| d.stored()).collect();
    assert_eq!(local_days, vec![day_number - 1, day_number], "{found:?}");
    let mut expired = 0;
    for (local_day, sites) in found {
        assert_eq!(
            sites.into_iter().collect::<Vec<_>>(),
            vec!["demo".to_string()]
        );
        let sites = std::iter::once("demo".to_string()).collect();
        expired += storage
            .expire_free_text(local_day, sites, Default::default(), None, false)
            .unwrap()
            .rows_expired;
    }
    // the page on `day`, the exit page on the day before
    assert_eq!(expired, 2);
    assert!(storage
        .free_text_days(
            None,
            sparsam::store::ids::DayNumber::from_stored(day_number + 1)
        )
        .unwrap()
        .is_empty());
    assert_eq!(versions(), 1);
    let values: Vec<String> = storage
        .ranked("demo", Dimension::Page, day, day, 100, 0)
        .unwrap()
        .rows
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    assert!(
        values.contains(&"https://example.org/after".to_string()),
        "{values:?}"
    );
    assert!(!values.iter().any(|v| v.contains('?')), "{values:?}");
    assert_eq!(storage.hourly_totals("demo", from, to).unwrap(), totals);

    // past rollup_days both days' partitions go, on every server
    let cutoff = noon + DAY_MS;
    let counted = storage.expire_rollups(cutoff, true).unwrap();
    assert!(
        counted.hourly_rows > 0 && counted.dim_rows > 0,
        "{counted:?}"
    );
    assert_eq!(storage.expire_rollups(cutoff, false).unwrap(), counted);
    for server in 0..set.urls().len() {
        let table = if cluster.is_empty() {
            "rollups"
        } else {
            "rollups_local"
        };
        assert_eq!(
            set.count(
                server,
                &format!(
                    "SELECT count() FROM system.parts WHERE database = 'sparsam_test' \
                     AND table = '{table}' AND active"
                )
            ),
            0
        );
    }
    assert!(storage.hourly_totals("demo", from, to).unwrap().is_empty());
}

/// After the sweep no table of the database holds a search term or a
/// query of a day past `retention.raw_days`, while that day's counts are
/// still reported (its path kept); the audit names the roll-up table with
/// no free text and the oldest roll-up day; `retention.rollup_days` drops
/// the roll-up partitions, checked in `system.parts`.
#[test]
fn no_free_text_of_swept_days_is_left_in_any_table() {
    const MARKER: &str = "zqxmarker";
    let set = ClickHouseSet::single();
    let dir = tempfile::tempdir().unwrap();
    let config = |rollup_days: u32| {
        collector_config(
            &dir.path().join("data"),
            &set.urls(),
            "",
            &format!(
                "vacuum_after_sweep = false\nraw_days = 2\nrollup_days = {rollup_days}\n\
                 sweep_schedule = \"0 0 0 1 1 *\""
            ),
        )
    };
    let mut server = common::Server::start_config(dir.path(), &config(30));
    // the start-up sweep (none ran before) is over before events come
    eventually(true, || {
        let audit = common::admin_json(&server, "/api/v1/audit");
        audit["last_sweeps"][0]["outcome"] == "ok"
    });
    let mut o = options(&set, "", &dir.path().join("writer"));
    o.config.database = "sparsam_http".into();
    let writer = ClickHouseStorage::open(&o).expect("writer");
    // reports and retention run on the wall clock
    let old_noon = chrono::Utc::now()
        .date_naive()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
        - 5 * DAY_MS;
    let old_day = rows::utc_day(old_noon);
    let mut events: Vec<Event> = (0..4u64)
        .map(|n| Event {
            kind: sparsam::model::EventKind::Search,
            search_term: format!("{MARKER} {n}"),
            ..stored_pageview(old_noon + n as i64 * 1000, n, "https://example.org/search")
        })
        .collect();
    events.extend((0..4u64).map(|n| {
        stored_pageview(
            old_noon + 10_000 + n as i64,
            n,
            &format!("https://example.org/search?q={MARKER}"),
        )
    }));
    store(&writer, events);
    wait_sent(&writer);
    let everything = || -> String {
        let tables = set.query(
            0,
            "SELECT name FROM system.tables WHERE database = 'sparsam_http' FORMAT TabSeparated",
        );
        tables
            .lines()
            .map(|t| {
                set.query(
                    0,
                    &format!("SELECT * FROM sparsam_http.{t} FORMAT TabSeparated"),
                )
            })
            .collect()
    };
    assert!(everything().contains(MARKER), "the marker was never stored");
    // the files under the servers' directories: the scan does see it
    let on_disk = || {
        files_under(set.path())
            .into_iter()
            .filter(|(_, bytes)| bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()))
            .map(|(path, _)| path.display().to_string())
            .collect::<Vec<_>>()
    };
    assert!(
        !on_disk().is_empty(),
        "the scan does not find the stored marker"
    );

    let report = sweep(&server);
    assert_eq!(report["events_deleted"], 8, "{report}");
    assert!(
        report["rollups_kept"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(old_day.to_string())),
        "{report}"
    );
    let all = everything();
    assert!(
        !all.contains(MARKER),
        "free text left after the sweep:\n{all}"
    );
    // dropped parts leave the disk after old_parts_lifetime
    let deadline = Instant::now() + Duration::from_secs(60);
    while !on_disk().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(on_disk(), Vec::<String>::new(), "free text left on disk");
    // the day's counts are still there, its page path without the query
    let pages = common::admin_json(
        &server,
        &format!("/api/v1/sites/demo/breakdown/page?from={old_day}&to={old_day}"),
    );
    assert_eq!(
        pages["rows"][0]["value"],
        "https://example.org/search",
        "{pages}\n{}",
        set.query(0, "SELECT * FROM sparsam_http.rollups FORMAT TabSeparated")
    );
    let summary = common::admin_json(
        &server,
        &format!("/api/v1/sites/demo/summary?from={old_day}&to={old_day}"),
    );
    assert_eq!(summary["pageviews"], 4, "{summary}");
    let terms = common::admin_json(
        &server,
        &format!("/api/v1/sites/demo/breakdown/search_term?from={old_day}&to={old_day}"),
    );
    assert_eq!(terms["rows"], serde_json::json!([]), "{terms}");
    // the audit: the roll-up table checked, nothing of free text in it
    let audit = common::admin_json(&server, "/api/v1/audit");
    assert_eq!(audit["oldest_rollup_day"], old_day.to_string(), "{audit}");
    let table = audit["free_text"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "rollups")
        .unwrap_or_else(|| panic!("no rollups table in {audit}"))
        .clone();
    assert_eq!(table["older_than_allowed"], 0, "{table}");
    assert_eq!(audit["verification"]["ok"], true, "{audit}");
    assert_eq!(
        audit["last_sweeps"][0]["rollups_kept"], report["rollups_kept"],
        "{audit}"
    );

    // past retention.rollup_days the day's roll-up partition goes
    server.stop();
    let server = common::Server::start_config(dir.path(), &config(3));
    let report = sweep(&server);
    assert!(
        report["rollup_rows_deleted"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert_eq!(
        set.count(
            0,
            &format!(
                "SELECT count() FROM system.parts WHERE database = 'sparsam_http' \
                 AND table = 'rollups' AND partition = '{old_day}' AND active"
            )
        ),
        0
    );
    let summary = common::admin_json(
        &server,
        &format!("/api/v1/sites/demo/summary?from={old_day}&to={old_day}"),
    );
    assert_eq!(summary["pageviews"], 0, "{summary}");
}

/// Sets the collectors' simulated clock (see `sparsam::clock`), replacing
/// the file by a rename so it is never read half-written.
fn set_clock(file: &Path, at: chrono::DateTime<chrono::Utc>) {
    let temp = file.with_extension("new");
    std::fs::write(&temp, at.to_rfc3339()).unwrap();
    std::fs::rename(&temp, file).unwrap();
}

/// Every row of the shared salts table on server `i`: (day, salt hex).
fn salt_rows(set: &ClickHouseSet, i: usize) -> Vec<(String, String)> {
    set.query(
        i,
        "SELECT day, salt FROM sparsam_http.salts ORDER BY day, offered, salt FORMAT TabSeparated",
    )
    .lines()
    .filter_map(|l| l.split_once('\t'))
    .map(|(d, s)| (d.to_string(), s.to_string()))
    .collect()
}

/// Every file under `dir` with its bytes.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                out.push((path, bytes));
            }
        }
    }
    out
}

/// Stateless collectors: concurrent offers of a day's salt from every
/// server of the cluster settle on one; a visitor whose hits go to two
/// collectors counts once; neither collector keeps a salt on disk or
/// writes it to its log; after the day changes twice, no salt older than
/// yesterday is left in the table or in any part of any server.
#[test]
fn collectors_share_the_daily_salt_and_forget_old_ones() {
    use sparsam::privacy::SaltExchange;
    use sparsam::storage::clickhouse::http::Client;

    let set = ClickHouseSet::cluster();
    let dir = tempfile::tempdir().unwrap();
    let urls = set.urls();

    // the schema, as a collector makes it
    let mut o = options(&set, CLUSTER, &dir.path().join("migrate"));
    o.config.database = "sparsam_http".into();
    drop(ClickHouseStorage::open(&o).expect("migrate"));

    // eight exchanges offer different candidates for a day at once, each
    // through another server first: all of them settle on one salt (four
    // days, so a race that goes wrong now and then shows)
    let layout = schema::Layout {
        database: "sparsam_http".into(),
        cluster: CLUSTER.into(),
    };
    for race_day in 20_000..20_004 {
        // 2024-10-04 to 2024-10-07
        let barrier = std::sync::Barrier::new(8);
        let agreed: Vec<[u8; 32]> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|k| {
                    let mut rotated = urls.clone();
                    rotated.rotate_left(k % urls.len());
                    let exchange = sparsam::storage::clickhouse::salts::ClickHouseSalts::new(
                        std::sync::Arc::new(
                            Client::new(rotated, "default".into(), None, Duration::from_secs(20))
                                .unwrap(),
                        ),
                        layout.clone(),
                    );
                    let barrier = &barrier;
                    scope.spawn(move || {
                        let candidate = [k as u8 + 1; 32];
                        barrier.wait();
                        *exchange.agree(race_day, &candidate).expect("agree")
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(
            agreed.iter().all(|s| *s == agreed[0]),
            "collectors disagree on day {race_day}'s salt: {:?}",
            agreed.iter().map(|s| s[0]).collect::<Vec<_>>()
        );
    }
    for i in 0..set.servers.len() {
        eventually(true, || {
            salt_rows(&set, i)
                .iter()
                .filter(|(day, _)| day.as_str() < "2024-10-08")
                .count()
                >= 4
        });
    }

    // two collectors, each talking to another server first, on one clock
    let clock = dir.path().join("clock");
    let now = chrono::Utc::now();
    set_clock(&clock, now);
    let start = |name: &str, urls: &[String]| {
        let home = dir.path().join(name);
        std::fs::create_dir_all(&home).unwrap();
        let config = collector_config(&home.join("data"), urls, "", "vacuum_after_sweep = false")
            .replace(
                "database = \"sparsam_http\"",
                &format!("database = \"sparsam_http\"\ncluster = \"{CLUSTER}\""),
            );
        common::Server::start_config_env(
            &home,
            &config,
            &[(sparsam::clock::SIMULATED_CLOCK_ENV, &clock)],
        )
    };
    // B ran on its own store before: its salt file goes at start
    let stale = [0x5au8; 40];
    std::fs::create_dir_all(dir.path().join("b/data")).unwrap();
    std::fs::write(dir.path().join("b/data/salt"), stale).unwrap();
    let a = start("a", &urls);
    let reversed: Vec<String> = urls.iter().rev().cloned().collect();
    let b = start("b", &reversed);
    let c = client();
    let hit = |server: &common::Server, address: &str, page: &str| {
        let res = c
            .get(server.url(&format!(
                "/matomo.php?idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2F{page}&send_image=0"
            )))
            .header("User-Agent", CHROME_UA)
            .header("X-Forwarded-For", address)
            .send()
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
    };
    let visitors_on = |day: chrono::NaiveDate, pageviews: u64| -> u64 {
        let mut summary = serde_json::Value::Null;
        eventually(true, || {
            let res = c
                .get(a.url(&format!("/api/v1/sites/demo/summary?from={day}&to={day}")))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .unwrap();
            summary = res.json().unwrap();
            summary["pageviews"] == pageviews
        });
        summary["visitors"].as_u64().expect("visitors")
    };

    // one visitor (one /16, one browser) on A then on B, and another on B
    hit(&a, "203.0.113.77", "first");
    hit(&b, "203.0.113.99", "second");
    hit(&b, "198.51.100.1", "other");
    assert_eq!(
        visitors_on(now.date_naive(), 3),
        2,
        "the visitor seen by both collectors counts once"
    );

    let today = now.date_naive().format("%Y-%m-%d").to_string();
    let mut seen_salts: Vec<String> = Vec::new();
    for i in 0..set.servers.len() {
        eventually(true, || salt_rows(&set, i).iter().any(|(d, _)| *d == today));
        seen_salts.extend(salt_rows(&set, i).into_iter().map(|(_, s)| s));
    }

    // two days later (each collector rotates at its own pace)
    let later = (now.date_naive() + chrono::Days::new(2))
        .and_hms_opt(0, 0, 5)
        .unwrap()
        .and_utc();
    set_clock(&clock, later);
    let yesterday = (later.date_naive() - chrono::Days::new(1))
        .format("%Y-%m-%d")
        .to_string();
    let later_day = later.date_naive().format("%Y-%m-%d").to_string();
    let old_parts = format!(
        "SELECT count() FROM system.parts WHERE database = 'sparsam_http' \
         AND table = 'salts' AND partition < '{yesterday}'"
    );
    for i in 0..set.servers.len() {
        // nothing older than yesterday in the table, not even an inactive
        // part (old_parts_lifetime is short here)
        eventually((0, 0), || {
            (
                salt_rows(&set, i)
                    .iter()
                    .filter(|(d, _)| *d < yesterday)
                    .count(),
                set.count(i, &old_parts),
            )
        });
        eventually(true, || {
            salt_rows(&set, i).iter().any(|(d, _)| *d == later_day)
        });
        seen_salts.extend(salt_rows(&set, i).into_iter().map(|(_, s)| s));
    }
    // the visitor again, on both collectors, with the new day's salt
    hit(&b, "203.0.113.99", "again");
    hit(&a, "203.0.113.77", "again");
    assert_eq!(visitors_on(later.date_naive(), 2), 1);
    assert!(
        a.log()
            .contains("shared visitor salts older than yesterday dropped"),
        "{}",
        a.log()
    );

    // no salt file and no salt in any file of either collector, nor in
    // their logs
    seen_salts.sort();
    seen_salts.dedup();
    assert!(seen_salts.len() >= 2, "{seen_salts:?}");
    for (name, server) in [("a", &a), ("b", &b)] {
        let data = dir.path().join(name).join("data");
        assert!(
            !data.join("salt").exists(),
            "salt file in {name}'s data dir"
        );
        for (path, bytes) in files_under(&data) {
            assert!(
                !common::contains_bytes(&bytes, &stale[8..]),
                "the old salt file's salt in {}",
                path.display()
            );
        }
        let log = server.log();
        for hex in &seen_salts {
            assert!(hex.len() == 64, "{hex}");
            let raw: Vec<u8> = (0..32)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            for (path, bytes) in files_under(&data) {
                assert!(
                    !common::contains_bytes(&bytes, &raw)
                        && !common::contains_bytes(&bytes, hex.as_bytes()),
                    "a salt in {}",
                    path.display()
                );
            }
            assert!(
                !log.contains(hex.as_str()),
                "a salt in {name}'s log:\n{log}"
            );
        }
    }
}

/// One hit of the fault test: its number (its page is `/load/{n}`) and
/// its visitor (one of [`FAULT_VISITORS`] address prefixes).
#[derive(Clone, Copy)]
struct LoadHit {
    n: u64,
    visitor: u64,
}

const FAULT_VISITORS: u64 = 25;

/// Faults under load, sent alternately to two collectors on the cluster:
/// a replica killed (-9) and restarted, then all of ClickHouse stopped for
/// 10 s, during which one collector is killed (-9) with events in its
/// spool and restarted once ClickHouse is back. At the end every
/// acknowledged event is stored exactly once (a hit whose answer was lost
/// may be stored, once), the visitors are what one collector alone would
/// count, and the two replicas of shard 1 hold the same rows.
#[test]
fn faults_under_load_lose_nothing_acknowledged() {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let mut set = ClickHouseSet::cluster();
    let dir = tempfile::tempdir().unwrap();
    let urls = set.urls();
    let clock = dir.path().join("clock");
    let now = chrono::Utc::now();
    // one fixed time: every hit falls on one UTC day, however long it runs
    set_clock(&clock, now);
    let start = |name: &str, urls: &[String]| {
        let home = dir.path().join(name);
        std::fs::create_dir_all(&home).unwrap();
        let config = collector_config(&home.join("data"), urls, "", "vacuum_after_sweep = false")
            .replace(
                "database = \"sparsam_http\"",
                &format!("database = \"sparsam_http\"\ncluster = \"{CLUSTER}\"\nrequest_timeout_secs = 5"),
            )
            .replace(
                "workers = 2",
                "workers = 2\nrate_limit_per_minute = 0\nrate_limit_events_per_minute = 0\n\
                 rate_limit_bytes_per_minute = 0",
            );
        common::Server::start_config_env(
            &home,
            &config,
            &[(sparsam::clock::SIMULATED_CLOCK_ENV, &clock)],
        )
    };
    let reversed: Vec<String> = urls.iter().rev().cloned().collect();
    let a = start("a", &urls);
    let mut b = Some(start("b", &reversed));
    let targets: Arc<Mutex<[Option<String>; 2]>> = Arc::new(Mutex::new([
        Some(a.base.clone()),
        b.as_ref().map(|b| b.base.clone()),
    ]));
    let stop = Arc::new(AtomicBool::new(false));

    // the load: four senders, each one hit at a time, alternately to each
    // collector that is up
    const SENDERS: u64 = 4;
    let load: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let targets = targets.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let c = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let (mut acked, mut uncertain) = (Vec::new(), Vec::new());
                let mut n = sender;
                while !stop.load(Ordering::Relaxed) {
                    let base = {
                        let t = targets.lock().unwrap();
                        t[((n / SENDERS) % 2) as usize]
                            .clone()
                            .or_else(|| t[0].clone())
                    };
                    let hit = LoadHit {
                        n,
                        visitor: n % FAULT_VISITORS,
                    };
                    let answer = base.and_then(|base| {
                        c.get(format!(
                            "{base}/matomo.php?idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2Fload%2F{n}&send_image=0"
                        ))
                        .header("User-Agent", CHROME_UA)
                        .header(
                            "X-Forwarded-For",
                            format!("100.{}.{}.7", hit.visitor, n % 250),
                        )
                        .send()
                        .ok()
                    });
                    match answer {
                        Some(res) if res.status().is_success() => acked.push(hit),
                        Some(res) => {
                            assert!(res.status().is_server_error(), "{}", res.status());
                            uncertain.push(hit);
                        }
                        // no answer: the hit may or may not have been kept
                        None => uncertain.push(hit),
                    }
                    n += SENDERS;
                }
                (acked, uncertain)
            })
        })
        .collect();
    let pause = |secs: u64| std::thread::sleep(Duration::from_secs(secs));

    pause(3);
    set.kill(1); // shard 1's second replica
    pause(3);
    set.restart(1);
    pause(2);
    set.kill_all();
    let outage = Instant::now();
    pause(3);
    // the collector dies with what it acknowledged during the outage in
    // its spool
    targets.lock().unwrap()[1] = None;
    b.as_mut().unwrap().child.kill().unwrap();
    b.as_mut().unwrap().child.wait().unwrap();
    drop(b.take());
    std::thread::sleep(Duration::from_secs(10).saturating_sub(outage.elapsed()));
    set.start_all();
    let b = start("b", &reversed);
    targets.lock().unwrap()[1] = Some(b.base.clone());
    pause(3);
    stop.store(true, Ordering::Relaxed);
    let (mut acked, mut uncertain) = (Vec::new(), Vec::new());
    for sender in load {
        let (a, u) = sender.join().unwrap();
        acked.extend(a);
        uncertain.extend(u);
    }
    assert!(acked.len() > 300, "only {} hits acknowledged", acked.len());

    let stored = || -> BTreeMap<u64, u64> {
        set.query(
            0,
            "SELECT url, count() FROM sparsam_http.events WHERE site = 'demo' GROUP BY url \
             FORMAT TabSeparated",
        )
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(url, count)| {
            let n = url
                .strip_prefix("https://example.org/load/")
                .unwrap_or_else(|| panic!("stored url {url}"));
            (n.parse().unwrap(), count.parse().unwrap())
        })
        .collect()
    };
    // both collectors' spools drain
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut rows = stored();
    while !acked.iter().all(|h| rows.contains_key(&h.n)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        rows = stored();
    }
    let missing: Vec<u64> = acked
        .iter()
        .filter(|h| !rows.contains_key(&h.n))
        .map(|h| h.n)
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost (of {}), e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
    let twice: Vec<(&u64, &u64)> = rows.iter().filter(|(_, c)| **c != 1).collect();
    assert!(twice.is_empty(), "events stored more than once: {twice:?}");
    let sent: BTreeSet<u64> = acked.iter().chain(&uncertain).map(|h| h.n).collect();
    assert!(
        rows.keys().all(|n| sent.contains(n)),
        "stored events nobody sent"
    );
    let unacknowledged_stored = rows.len() - acked.len();
    assert!(unacknowledged_stored <= uncertain.len());

    // replicas agree; the shards together hold every row once
    let local = "SELECT count() FROM sparsam_http.events_local";
    for i in [0, 1] {
        set.query(i, "SYSTEM SYNC REPLICA sparsam_http.events_local");
    }
    eventually(set.count(0, local), || set.count(1, local));
    assert_eq!(set.count(0, local) + set.count(2, local), rows.len() as u64);

    // the visitors one collector alone would count
    let visitors: BTreeSet<u64> = rows.keys().map(|n| n % FAULT_VISITORS).collect();
    assert_eq!(
        set.count(0, "SELECT uniqExact(visitor) FROM sparsam_http.events"),
        visitors.len() as u64
    );
    let day = now.date_naive();
    let summary: serde_json::Value = client()
        .get(a.url(&format!("/api/v1/sites/demo/summary?from={day}&to={day}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(summary["pageviews"], rows.len() as u64, "{summary}");
    assert_eq!(summary["visitors"], visitors.len() as u64, "{summary}");
    eprintln!(
        "fault test: {} acknowledged, {} without an answer ({} of them stored), {} visitors",
        acked.len(),
        uncertain.len(),
        unacknowledged_stored,
        visitors.len()
    );
}

/// ClickHouse down at midnight: the collector keeps answering with a
/// provisional salt of its own, and once ClickHouse is back it takes the
/// shared one, which a second collector then uses too.
#[test]
fn a_salt_rotation_while_clickhouse_is_down_is_provisional() {
    let mut set = ClickHouseSet::single();
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("clock");
    let now = chrono::Utc::now();
    set_clock(&clock, now);
    let urls = set.urls();
    let start = |name: &str| {
        let home = dir.path().join(name);
        std::fs::create_dir_all(&home).unwrap();
        let config = collector_config(&home.join("data"), &urls, "", "vacuum_after_sweep = false");
        common::Server::start_config_env(
            &home,
            &config,
            &[(sparsam::clock::SIMULATED_CLOCK_ENV, &clock)],
        )
    };
    let a = start("a");
    let c = client();
    let hit = |server: &common::Server, address: &str, page: &str| {
        let res = c
            .get(server.url(&format!(
                "/matomo.php?idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2F{page}&send_image=0"
            )))
            .header("User-Agent", CHROME_UA)
            .header("X-Forwarded-For", address)
            .send()
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
    };
    let wait_log = |server: &common::Server, line: &str| {
        eventually(true, || server.log().contains(line));
    };

    set.kill_all();
    let tomorrow = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 5)
        .unwrap()
        .and_utc();
    set_clock(&clock, tomorrow);
    wait_log(&a, "hashes with a salt of its own");
    hit(&a, "198.51.100.1", "during-outage");

    set.start_all();
    wait_log(&a, "now hashing with the shared visitor salt");
    let day = tomorrow.date_naive();
    assert!(
        set.query(0, "SELECT day FROM sparsam_http.salts FORMAT TabSeparated")
            .contains(&day.to_string()),
        "tomorrow's salt offered once ClickHouse is back"
    );
    let b = start("b");
    hit(&a, "203.0.113.77", "after");
    hit(&b, "203.0.113.99", "after");
    let mut summary = serde_json::Value::Null;
    eventually(true, || {
        summary = c
            .get(a.url(&format!("/api/v1/sites/demo/summary?from={day}&to={day}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .unwrap()
            .json()
            .unwrap();
        summary["pageviews"] == 3
    });
    assert_eq!(
        summary["visitors"], 2,
        "after the switch both collectors hash alike: {summary}"
    );
}

/// A statement the server stops for taking too long (code 159) is
/// recognised as worth retrying, in the error format of the server at
/// `url` (18.16: `Code: 159, e.displayText() = …`; current: `Code: 159. …`).
fn assert_timeout_is_transient(url: &str) {
    let client = sparsam::storage::clickhouse::http::Client::new(
        vec![url.to_string()],
        "default".into(),
        None,
        Duration::from_secs(30),
    )
    .unwrap();
    let err = client
        .query(
            "SELECT count() FROM system.numbers WHERE number % 7 = 3",
            &[("max_execution_time", "1")],
        )
        .expect_err("stopped by max_execution_time");
    assert!(err.is_transient(), "{err}");
    // and a wrong statement is not
    let err = client.query("SELEC 1", &[]).expect_err("a syntax error");
    assert!(!err.is_transient(), "{err}");
}

/// The current engine (chDB) answers, for the version of ClickHouse it
/// reports.
fn chdb_major(chdb: &chdb::Chdb) -> u32 {
    let version = chdb.query("SELECT version()");
    version
        .split('.')
        .next()
        .and_then(|m| m.trim().parse().ok())
        .unwrap_or_else(|| panic!("version {version:?}"))
}

/// The differential test on a current ClickHouse: the schema and its
/// migrations, the writer's inserts and every read the reports issue run
/// on chDB, and every report endpoint equals the embedded store's.
#[test]
fn reports_on_current_clickhouse_equal_the_embedded_stores() {
    let Some(chdb) = chdb::Chdb::start() else {
        return;
    };
    assert!(chdb_major(&chdb) >= 24, "not a current ClickHouse");
    assert_reports_equal(&chdb.url());
    // the statements came to chDB, not elsewhere: each kind at least once
    let statements = chdb.statements();
    let day_read = format!(
        "SELECT {} FROM sparsam_diff.events WHERE site = 'demo' AND day = ",
        rows::REPLAY_COLUMNS
    );
    for (what, start) in [
        ("schema", "CREATE TABLE IF NOT EXISTS sparsam_diff.events ("),
        (
            "migration 2",
            "ALTER TABLE sparsam_diff.events ADD COLUMN custom ",
        ),
        (
            "event inserts",
            "INSERT INTO sparsam_diff.events FORMAT JSONEachRow\n{",
        ),
        (
            "audit inserts",
            "INSERT INTO sparsam_diff.audit FORMAT JSONEachRow\n{",
        ),
        (
            "fingerprints of a site's days",
            "SELECT day, count(), sum(seq), sum(batch) FROM sparsam_diff.events WHERE site = 'demo' AND day >= ",
        ),
        ("a day's events", day_read.as_str()),
    ] {
        assert!(
            statements.iter().any(|s| s.starts_with(start)),
            "no {what} statement ran on chDB ({} statements)",
            statements.len()
        );
    }
}

/// The other statements of the single-server layout on a current
/// ClickHouse: migrations (again: a no-op), inserts, the retry check of a
/// plain MergeTree, the audit log's replacements, the stored-event facts,
/// whole-day drops checked in `system.parts` and the boundary-day trim.
#[test]
fn single_server_statements_run_on_current_clickhouse() {
    let Some(chdb) = chdb::Chdb::start() else {
        return;
    };
    assert!(chdb_major(&chdb) >= 24, "not a current ClickHouse");
    let data = tempfile::tempdir().unwrap();
    let o = options_at(vec![chdb.url()], "", data.path());
    assert_timeout_is_transient(&chdb.url());
    let storage = ClickHouseStorage::open(&o).expect("schema made on chDB");
    drop(ClickHouseStorage::open(&o).expect("reopen"));
    assert_eq!(
        chdb.query("SELECT groupArray(version) FROM (SELECT version FROM sparsam_test.schema_migrations ORDER BY version)")
            .trim(),
        format!(
            "[{}]",
            (1..=schema::LATEST_VERSION)
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
        "each migration recorded once"
    );

    let yesterday = TODAY_NOON - DAY_MS;
    let (yesterday_day, today_day) = (rows::utc_day(yesterday), rows::utc_day(TODAY_NOON));
    store(&storage, events_on(yesterday, 0..100));
    store(&storage, events_on(TODAY_NOON, 100..250));
    let twice = stored_pageview(TODAY_NOON + 5_000, 7, "https://example.org/twice");
    store(&storage, vec![twice.clone()]);
    storage.flush().unwrap();
    store(&storage, vec![twice]);
    wait_sent(&storage);
    assert_eq!(storage.event_count().unwrap(), 252);
    assert_eq!(
        storage.days().unwrap(),
        vec![(yesterday_day, 100), (today_day, 152)]
    );
    let pages = storage
        .ranked(
            "demo",
            sparsam::storage::Dimension::Page,
            yesterday_day,
            today_day,
            1000,
            0,
        )
        .unwrap();
    assert_eq!((pages.total, pages.total_rows), (252, 251));
    let mut facts = 0;
    storage
        .for_each_stored_event(&mut |fact| {
            let ip = fact.ip.expect("address decodes");
            assert!(ip.is_truncated() && ip.prefix_len == 16, "{ip:?}");
            assert!(fact.ts_ms.is_ok());
            facts += 1;
        })
        .unwrap();
    assert_eq!(facts, 252);
    assert_eq!(storage.oldest_event_ms().unwrap(), Some(yesterday));

    // a spooled batch that landed but whose confirmation was lost is
    // recognised by its insert id, not inserted again
    let replay = tempfile::tempdir().unwrap();
    let spool = Spool::open(&replay.path().join("clickhouse-spool"), 1 << 30).unwrap();
    let mut body = Vec::new();
    for (seq, e) in events_on(TODAY_NOON + 60_000, 500..510).iter().enumerate() {
        rows::push_row(&mut body, e, 0xbeef, seq as u64);
    }
    for _ in 0..2 {
        spool.put(0xbeef, today_day, 10, &body).unwrap();
        let replayer =
            ClickHouseStorage::open(&options_at(vec![chdb.url()], "", replay.path())).unwrap();
        wait_sent(&replayer);
    }
    assert_eq!(storage.event_count().unwrap(), 262);

    // the audit log: the newest version of a record wins
    let id = storage
        .audit_append(r#"{"kind":"test","marker":"first"}"#)
        .unwrap();
    storage
        .audit_replace(id, r#"{"kind":"test","marker":"replaced"}"#)
        .unwrap();
    assert_eq!(
        storage.audit_records().unwrap(),
        vec![(id, r#"{"kind":"test","marker":"replaced"}"#.to_string())]
    );

    // retention: a whole day dropped (checked gone in system.parts), the
    // boundary day trimmed by a mutation
    assert_eq!(storage.drop_day(yesterday_day).unwrap(), 100);
    assert_eq!(storage.days().unwrap(), vec![(today_day, 162)]);
    let cutoff = TODAY_NOON + 150;
    let plan = storage.expiry_plan(cutoff).unwrap();
    assert!(plan.whole.is_empty());
    assert_eq!(plan.boundary, Some((today_day, 50)));
    assert_eq!(storage.trim_day(today_day, cutoff).unwrap(), 50);
    assert_eq!(storage.event_count().unwrap(), 112);
    assert!(storage.oldest_event_ms().unwrap().unwrap() >= cutoff);
}

/// Not a test: hosts the test cluster (ZooKeeper, two shards, shard 1
/// replicated twice, started as every test here starts it) for
/// `benches/cluster_load.sh`. Writes the servers' URLs, one a line, into
/// the file named by `SPARSAM_BENCH_CLUSTER_FILE` and keeps the cluster up
/// until that file is deleted.
#[test]
#[ignore = "run by benches/cluster_load.sh"]
fn bench_cluster_host() {
    let file = std::env::var("SPARSAM_BENCH_CLUSTER_FILE").expect("SPARSAM_BENCH_CLUSTER_FILE");
    let set = ClickHouseSet::cluster();
    let tmp = format!("{file}.tmp");
    std::fs::write(&tmp, set.urls().join("\n") + "\n").unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    while Path::new(&file).exists() {
        std::thread::sleep(Duration::from_millis(200));
    }
}
