//! Retention sweeper and audit trail, against real redb files and the real
//! binary: the exact boundary of the rule, the audit record and view agreeing
//! with the store, a planted violation, ingest during a sweep, and recovery
//! from a sweep killed mid-run.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;

use chrono::Utc;
use redb::ReadableDatabase;
use sparsam::model::{Event, Referrer};
use sparsam::retention::audit::{self, AuditRecord};
use sparsam::retention::sweep_now;
use sparsam::storage::redb::RedbStorage;
use sparsam::storage::Storage;
use sparsam::store::{schema, StoreOptions, WriterOptions};
use sparsam::Config;

const DAY: i64 = 86_400_000;
const ADMIN: &str = "admin-token-for-tests-0001";

fn config_text(data: &Path, schedule: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "{}"
workers = 2
[retention]
raw_days = 90
sweep_schedule = "{schedule}"
[auth]
admin_token = "{ADMIN}"
[[sites]]
id = "demo"
hostnames = ["example.org"]
timezone = "UTC"
tokens = ["demo-token-for-tests-0001"]
"#,
        data.display()
    )
}

struct Env {
    dir: tempfile::TempDir,
    config: Config,
    /// The config as written to `sparsam.toml`, for the server.
    text: String,
}

impl Env {
    fn new() -> Env {
        // Far-future schedule: only start-up and explicit sweeps run.
        Env::with_schedule("0 0 0 1 1 * 2099")
    }
    fn with_schedule(schedule: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let text = config_text(dir.path(), schedule);
        std::fs::write(dir.path().join("sparsam.toml"), &text).unwrap();
        let config = Config::parse(&text).unwrap();
        Env { dir, config, text }
    }
    fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("sparsam.toml")
    }
    fn open(&self) -> RedbStorage {
        RedbStorage::open(
            self.config.store_path(),
            &StoreOptions::default(),
            WriterOptions::default(),
        )
        .unwrap()
    }
}

fn event(ts_ms: i64, n: u64) -> Event {
    common::stored_pageview(ts_ms, n, "https://example.org/page")
}

fn write_events(store: &RedbStorage, events: Vec<Event>) {
    for chunk in events.chunks(5_000) {
        store
            .submit(chunk.to_vec())
            .unwrap()
            .blocking_recv()
            .unwrap()
            .unwrap();
    }
}

fn all_ts(store: &RedbStorage) -> Vec<i64> {
    let mut out = Vec::new();
    store
        .engine()
        .scan_events("demo", i64::MIN / 2, i64::MAX / 2, |e| {
            out.push(e.ts_ms);
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    out
}

#[test]
fn just_inside_survives_just_outside_is_gone_and_audit_agrees() {
    let env = Env::new();
    let store = env.open();
    let now = Utc::now();
    let cutoff = now.timestamp_millis() - 90 * DAY;
    let inside = cutoff + 60_000;
    let outside = cutoff - 60_000;
    let old = cutoff - 20 * DAY;
    let recent = now.timestamp_millis() - DAY;
    write_events(
        &store,
        vec![
            event(old, 1),
            event(outside, 2),
            event(inside, 3),
            event(recent, 4),
        ],
    );
    assert_eq!(store.event_count().unwrap(), 4);

    let dry = sweep_now(&store, &env.config, now, true, &AtomicBool::new(false)).unwrap();
    assert_eq!(dry.events_deleted, 2);
    assert_eq!(store.event_count().unwrap(), 4, "a dry run deletes nothing");
    assert!(
        audit::last_sweeps(&store, 5).unwrap().is_empty(),
        "a dry run is not audited"
    );

    let r = sweep_now(&store, &env.config, now, false, &AtomicBool::new(false)).unwrap();
    assert_eq!(r.events_deleted, 2);
    assert_eq!(r.partitions_dropped, vec![schema::utc_day(old).to_string()]);
    let mut left = all_ts(&store);
    left.sort();
    assert_eq!(left, vec![inside, recent]);
    assert_eq!(store.oldest_event_ms().unwrap(), Some(inside));
    // The old day's state tables went with its partition.
    let txn = store.engine().database().unwrap().begin_read().unwrap();
    let names: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| redb::TableHandle::name(&t).to_owned())
        .collect();
    let old_suffix = schema::day_table_name("", schema::utc_day(old));
    assert!(!names.iter().any(|n| n.ends_with(&old_suffix)), "{names:?}");
    drop(txn);

    // The audit record and the view agree with the store.
    let sweeps = audit::last_sweeps(&store, 5).unwrap();
    assert_eq!(sweeps.len(), 1);
    assert_eq!(sweeps[0].outcome, "ok");
    assert_eq!(sweeps[0].events_deleted, 2);
    assert_eq!(sweeps[0].cutoff_ms, cutoff);
    let view = audit::audit_view(&store, &env.config, now).unwrap();
    assert!(view.verification.ok, "{:?}", view.verification);
    assert_eq!(view.raw_events, store.event_count().unwrap());
    assert_eq!(view.raw_events_by_age.d0_7, 1);
    assert_eq!(view.raw_events_by_age.d61_90, 1);
    assert_eq!(view.ip_masks.ipv4_example, "181.153.xxx.xxx");
    assert_eq!(view.last_sweeps[0], sweeps[0]);

    // A second sweep at the same time deletes nothing more.
    let again = sweep_now(&store, &env.config, now, false, &AtomicBool::new(false)).unwrap();
    assert_eq!(again.events_deleted, 0);
}

#[test]
fn settings_are_recorded_only_when_changed() {
    let env = Env::new();
    let store = env.open();
    let now = Utc::now();
    assert!(audit::record_settings(&store, &env.config, now).unwrap());
    assert!(!audit::record_settings(&store, &env.config, now).unwrap());
    let mut stricter = env.config.clone();
    stricter.privacy.ipv4_prefix = 8;
    assert!(audit::record_settings(&store, &stricter, now).unwrap());
    let settings: Vec<_> = audit::records(&store)
        .unwrap()
        .into_iter()
        .filter(|(_, r)| matches!(r, AuditRecord::Settings(_)))
        .collect();
    assert_eq!(settings.len(), 2);
}

#[test]
fn planted_violations_are_reported() {
    let env = Env::new();
    let store = env.open();
    let now = Utc::now();
    let ts = now.timestamp_millis() - DAY;
    write_events(
        &store,
        vec![event(ts, 1), event(now.timestamp_millis() - 200 * DAY, 2)],
    );

    // An address stored with all 32 bits, in a block written past the
    // writer.
    let mut block = sparsam::store::codec::BlockBuilder::new(1000, 1000);
    let raw = sparsam::store::RawEvent {
        ts_ms: ts + 5,
        visitor: 1000,
        ..Default::default()
    };
    block.push(&raw, Some(7), None, &[4, 32, 181, 153, 27, 94]);
    let table = schema::day_table_name(schema::EVENTS_PREFIX, schema::utc_day(ts));
    {
        let txn = store.engine().database().unwrap().begin_write().unwrap();
        txn.open_table(schema::events_table(&table))
            .unwrap()
            .insert(("demo", 999u32), block.encode().as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let v = audit::audit_view(&store, &env.config, now)
        .unwrap()
        .verification;
    assert!(!v.ok);
    assert_eq!(v.address_violations, 1, "{v:?}");
    assert_eq!(v.age_violations, 1, "{v:?}");
    assert_eq!(v.events_checked, 3);
    let first = v.first_offender.unwrap();
    assert!(first.problem.contains("older"), "{first:?}");

    // The CLI fails loudly too.
    drop(store);
    let out = Command::new(env!("CARGO_BIN_EXE_sparsam"))
        .args(["--config"])
        .arg(env.config_path())
        .args(["audit", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["verification"]["ok"], false);
    assert_eq!(json["verification"]["address_violations"], 1);
}

/// The real server over the environment's store and config (the one test
/// harness, `tests/common`).
fn spawn_server(env: &Env) -> common::Server {
    common::Server::start_config(env.dir.path(), &env.text)
}

#[test]
fn ingest_continues_while_a_large_partition_is_swept() {
    let env = Env::new();
    let store = env.open();
    let base = Utc::now().timestamp_millis() - 120 * DAY;
    write_events(
        &store,
        (0..200_000).map(|i| event(base + i, i as u64)).collect(),
    );
    drop(store);

    // No sweep recorded yet: the server sweeps at start-up.
    let mut server = spawn_server(&env);
    let url = server.base.clone();
    let client = reqwest::blocking::Client::new();
    let mut answered = 0;
    let mut finished = false;
    for i in 0..10_000 {
        let r = client
            .get(format!("{url}/p.gif"))
            .query(&[
                ("site", "demo"),
                ("url", &format!("https://example.org/p{i}")),
            ])
            .header(
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            )
            .send()
            .unwrap();
        assert!(r.status().is_success(), "hit {i}: {}", r.status());
        answered += 1;
        if i % 10 == 0 {
            let a: serde_json::Value = client
                .get(format!("{url}/api/v1/audit"))
                .bearer_auth(ADMIN)
                .send()
                .unwrap()
                .json()
                .unwrap();
            if a["last_sweeps"][0]["outcome"] == "ok" {
                assert_eq!(a["last_sweeps"][0]["events_deleted"], 200_000);
                assert_eq!(a["verification"]["ok"], true, "{a}");
                assert_eq!(a["free_text"]["rule"], "expire_with_raw_events", "{a}");
                assert_eq!(a["last_sweeps"][0]["vacuumed"], true, "{a}");
                finished = true;
                break;
            }
        }
    }
    server.stop();
    assert!(finished, "the start-up sweep did not finish");
    let store = env.open();
    assert_eq!(store.event_count().unwrap(), answered);
}

#[test]
fn audit_endpoint_needs_the_admin_token() {
    let env = Env::new();
    let mut server = spawn_server(&env);
    let url = server.base.clone();
    let client = reqwest::blocking::Client::new();
    let s = client
        .get(format!("{url}/api/v1/audit"))
        .send()
        .unwrap()
        .status();
    let site = client
        .get(format!("{url}/api/v1/audit"))
        .bearer_auth("demo-token-for-tests-0001")
        .send()
        .unwrap()
        .status();
    server.stop();
    assert_eq!(s.as_u16(), 401);
    assert_eq!(site.as_u16(), 403);
}

#[test]
fn killed_sweep_leaves_a_consistent_store_and_the_next_sweep_finishes() {
    let env = Env::new();
    let store = env.open();
    let now = Utc::now().timestamp_millis();
    let mut evs: Vec<Event> = Vec::new();
    for d in 0..20 {
        let start = now - (95 + d) * DAY;
        evs.extend((0..5_000).map(|i| event(start + i, i as u64)));
    }
    evs.push(event(now - DAY, 7));
    write_events(&store, evs);
    // A sweep that stopped half-way: its record says running, some days gone.
    audit::append(
        &store,
        &AuditRecord::Sweep(audit::SweepRecord {
            started_ms: now - 1000,
            cutoff_ms: now - 90 * DAY,
            outcome: "running".into(),
            ..Default::default()
        }),
    )
    .unwrap();
    let first = store.days().unwrap()[0].0;
    store.drop_day(first).unwrap();
    drop(store);

    // And a real one, killed at whatever point it reached.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sparsam"))
        .arg("--config")
        .arg(env.config_path())
        .arg("sweep")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    let _ = child.kill();
    let _ = child.wait();

    let store = env.open();
    let v = audit::audit_view(&store, &env.config, Utc::now()).unwrap();
    assert_eq!(v.verification.undecodable, 0);
    assert_eq!(v.verification.address_violations, 0);
    drop(store);

    let out = Command::new(env!("CARGO_BIN_EXE_sparsam"))
        .arg("--config")
        .arg(env.config_path())
        .arg("sweep")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = env.open();
    assert_eq!(store.event_count().unwrap(), 1);
    let v = audit::audit_view(&store, &env.config, Utc::now()).unwrap();
    assert!(v.verification.ok, "{:?}", v.verification);
    assert_eq!(v.last_sweeps[0].outcome, "ok");
    assert!(v.last_sweeps.iter().any(|s| s.outcome == "interrupted"));
    assert!(v.last_sweeps.iter().all(|s| s.outcome != "running"));
}

/// With `retention.vacuum_after_sweep`, a sweep that deleted something
/// also rewrites the file, so the expired events' bytes are gone from it;
/// a sweep that deleted nothing leaves the file alone.
#[test]
fn vacuum_after_sweep_leaves_no_bytes_of_expired_events() {
    let mut env = Env::new();
    env.config.retention.vacuum_after_sweep = true;
    let store = env.open();
    let now = Utc::now();
    let marker = "https://forum.example/thread/abgelaufen-c0ffee";
    let mut old = event(now.timestamp_millis() - 120 * DAY, 1);
    old.referrer = Referrer {
        kind: sparsam::model::ReferrerType::Website,
        name: String::new(),
        url: marker.into(),
    };
    write_events(&store, vec![old, event(now.timestamp_millis() - DAY, 2)]);
    let path = env.config.store_path();
    let has = |p: &std::path::Path| {
        let b = std::fs::read(p).unwrap();
        b.windows(marker.len()).any(|w| w == marker.as_bytes())
    };
    assert!(has(&path));
    let r = sweep_now(&store, &env.config, now, false, &AtomicBool::new(false)).unwrap();
    assert_eq!(r.events_deleted, 1);
    assert!(r.vacuumed);
    assert!(
        !has(&path),
        "the expired referrer URL is gone from the file"
    );
    assert_eq!(all_ts(&store).len(), 1);
    assert!(audit::last_sweeps(&store, 1).unwrap()[0].vacuumed);
    let again = sweep_now(&store, &env.config, now, false, &AtomicBool::new(false)).unwrap();
    assert!(!again.vacuumed, "nothing deleted, nothing rewritten");
}

fn rollup_values(
    store: &RedbStorage,
    dim: sparsam::store::Dimension,
    day: i64,
) -> Vec<(String, u64)> {
    let d = schema::utc_day(day);
    let by = dim.sort_by();
    store
        .engine()
        .top("demo", dim, d, d, 1000, 0)
        .unwrap()
        .into_iter()
        .map(|(v, c)| {
            let n = match by {
                sparsam::store::SortBy::Pageviews => c.pageviews,
                sparsam::store::SortBy::Visits => c.visits,
                sparsam::store::SortBy::Events => c.events,
            };
            (v, n)
        })
        .collect()
}

/// 12:00 UTC of the day of `ts`, so events a few seconds apart share a day.
fn noon_of(ts: i64) -> i64 {
    schema::day_start_ms(schema::utc_day(ts)) + DAY / 2
}

fn file_has(path: &Path, marker: &str) -> bool {
    common::contains_bytes(&std::fs::read(path).unwrap(), marker.as_bytes())
}

/// A page view with a campaign term in its URL and a full referrer URL,
/// and a site search, of visitor `n` at `ts`.
fn free_text_events(ts: i64, n: u64, term: &str) -> Vec<Event> {
    let mut view = common::stored_pageview(
        ts,
        n,
        &format!("https://example.org/suche?q={term}&utm_term={term}-utm"),
    );
    view.referrer = Referrer {
        kind: sparsam::model::ReferrerType::Website,
        name: "forum.example".into(),
        url: format!("https://forum.example/thread/{term}-ref"),
    };
    let mut search = common::stored_pageview(ts + 1, n, "https://example.org/suche");
    search.kind = sparsam::model::EventKind::Search;
    search.search_term = format!("{term}-suche");
    vec![view, search]
}

/// Free text (a search term, a query value, a campaign term, a full
/// referrer URL) of a day past `raw_days` is gone from the roll-ups, the
/// dictionaries and the bytes of the store file after one default sweep;
/// the counts stay, per page path and per referrer host; the sweep's audit
/// record says what expired, and the audit view finds nothing too old.
#[test]
fn free_text_expires_with_the_raw_events_and_leaves_the_file() {
    let env = Env::new();
    let store = env.open();
    let now = Utc::now();
    let old = noon_of(now.timestamp_millis() - 120 * DAY);
    let marker = "zx7geheimnis";
    let mut evs = free_text_events(old, 1, marker);
    evs.push(event(now.timestamp_millis() - DAY, 2));
    write_events(&store, evs);
    let path = env.config.store_path();
    use sparsam::store::Dimension;
    assert!(file_has(&path, marker));
    assert_eq!(
        rollup_values(&store, Dimension::SearchTerm, old),
        vec![(format!("{marker}-suche"), 1)]
    );

    let r = sweep_now(&store, &env.config, now, false, &AtomicBool::new(false)).unwrap();
    assert_eq!(r.events_deleted, 2);
    assert!(r.vacuumed, "the file is rewritten by default");
    // page, entry page, exit page cut to the path; the search term deleted
    assert!(r.free_text_rows_expired >= 4, "{r:?}");
    assert_eq!(r.free_text_expired_by_dimension["search_term"], 1, "{r:?}");
    assert_eq!(r.free_text_expired_by_dimension["page"], 1, "{r:?}");
    assert_eq!(r.free_text_rows_kept, 0);

    assert!(rollup_values(&store, Dimension::SearchTerm, old).is_empty());
    assert_eq!(
        rollup_values(&store, Dimension::Page, old),
        vec![("https://example.org/suche".to_string(), 1)],
        "the count stays, under the path"
    );
    assert_eq!(
        rollup_values(&store, Dimension::Referrer, old),
        vec![("forum.example".to_string(), 1)],
        "the referrer host stays"
    );
    let day = schema::day_start_ms(schema::utc_day(old));
    let totals = store.engine().summary("demo", day, day + DAY).unwrap();
    assert_eq!((totals.pageviews, totals.searches), (1, 1), "{totals:?}");

    for m in [
        marker.to_string(),
        format!("{marker}-utm"),
        format!("{marker}-ref"),
        format!("{marker}-suche"),
    ] {
        assert!(!file_has(&path, &m), "{m} is still in the store file");
    }

    let rec = &audit::last_sweeps(&store, 1).unwrap()[0];
    assert_eq!(rec.free_text_rows_expired, r.free_text_rows_expired);
    assert_eq!(rec.free_text_expired_by_dimension["search_term"], 1);
    assert_eq!(
        rec.free_text_before.as_deref(),
        Some(
            schema::utc_day(now.timestamp_millis() - 90 * DAY)
                .to_string()
                .as_str()
        )
    );
    let view = audit::audit_view(&store, &env.config, now).unwrap();
    assert!(view.verification.ok, "{:?}", view.verification);
    assert_eq!(view.free_text.rule, "expire_with_raw_events");
    let sealed = view
        .free_text
        .tables
        .iter()
        .find(|t| t.table == "dims_sealed")
        .unwrap();
    assert_eq!(sealed.oldest_day, None, "{:?}", view.free_text);
    let again = sweep_now(&store, &env.config, now, false, &AtomicBool::new(false)).unwrap();
    assert_eq!(again.free_text_rows_expired, 0);
}

/// A roll-up row with free text of a day past `raw_days` that a sweep
/// did not take out (planted: the raw events are deleted, the roll-up is
/// not) fails the verification, by table and day.
#[test]
fn planted_free_text_in_rollups_fails_the_audit() {
    let env = Env::new();
    let store = env.open();
    let now = Utc::now();
    let old = now.timestamp_millis() - 200 * DAY;
    write_events(&store, free_text_events(old, 1, "gepflanzt"));
    store.drop_day(schema::utc_day(old)).unwrap();
    store.expire_strings(now.timestamp_millis()).unwrap();
    let view = audit::audit_view(&store, &env.config, now).unwrap();
    let v = &view.verification;
    assert!(!v.ok, "{v:?}");
    assert_eq!((v.age_violations, v.string_violations), (0, 0), "{v:?}");
    // page, entry page, exit page with the query, and the search term
    assert_eq!(v.free_text_violations, 4, "{v:?}");
    let old_day = schema::utc_day(old).to_string();
    assert!(
        view.free_text
            .tables
            .iter()
            .any(|t| t.oldest_day.as_deref() == Some(old_day.as_str()) && t.older_than_allowed > 0),
        "{:?}",
        view.free_text
    );
    // A sweep takes it out and the view agrees.
    sweep_now(&store, &env.config, now, false, &AtomicBool::new(false)).unwrap();
    let v = audit::audit_view(&store, &env.config, now)
        .unwrap()
        .verification;
    assert!(v.ok, "{v:?}");
}

/// With `retention.free_text_min_visitors = 10`, a search term and a URL
/// query seen from 10 distinct visitors on a day stay in that day's
/// roll-ups past `raw_days`; one seen from 9 does not. Without the
/// opt-in, none stays; turning it off later expires what it kept.
#[test]
fn free_text_seen_by_k_visitors_survives_only_with_the_opt_in() {
    use sparsam::store::Dimension;
    let now = Utc::now();
    let old = noon_of(now.timestamp_millis() - 100 * DAY);
    let mut evs = Vec::new();
    for n in 0..10 {
        evs.extend(free_text_events(
            old + n as i64 * 1000,
            100 + n,
            "gemeinsam",
        ));
    }
    for n in 0..9 {
        evs.extend(free_text_events(old + n as i64 * 1000, 200 + n, "selten"));
    }
    let common_url = "https://example.org/suche?q=gemeinsam&utm_term=gemeinsam-utm";

    for opt_in in [false, true] {
        let mut env = Env::new();
        if opt_in {
            env.config.retention.free_text_min_visitors = 10;
        }
        let store = env.open();
        write_events(&store, evs.clone());
        let r = sweep_now(&store, &env.config, now, false, &AtomicBool::new(false)).unwrap();
        let terms = rollup_values(&store, Dimension::SearchTerm, old);
        let pages = rollup_values(&store, Dimension::Page, old);
        let path = env.config.store_path();
        if opt_in {
            assert_eq!(terms, vec![("gemeinsam-suche".to_string(), 10)], "{r:?}");
            assert!(pages.contains(&(common_url.to_string(), 10)), "{pages:?}");
            assert!(
                pages.contains(&("https://example.org/suche".to_string(), 9)),
                "{pages:?}"
            );
            assert!(r.free_text_rows_kept > 0, "{r:?}");
            assert!(file_has(&path, "gemeinsam-suche"));
            let view = audit::audit_view(&store, &env.config, now).unwrap();
            assert!(view.verification.ok, "{:?}", view.verification);
            assert_eq!(view.free_text.min_visitors, Some(10));
            assert!(view.free_text.tables.iter().any(|t| t.kept_by_rule > 0));

            // The operator turns the opt-in off: the kept text is now too
            // old for the rule in force, and the next sweep expires it.
            let mut strict = env.config.clone();
            strict.retention.free_text_min_visitors = 0;
            let v = audit::audit_view(&store, &strict, now)
                .unwrap()
                .verification;
            assert!(!v.ok && v.free_text_violations > 0, "{v:?}");
            sweep_now(&store, &strict, now, false, &AtomicBool::new(false)).unwrap();
            assert!(rollup_values(&store, Dimension::SearchTerm, old).is_empty());
            assert_eq!(
                rollup_values(&store, Dimension::Page, old),
                vec![("https://example.org/suche".to_string(), 19)]
            );
            let v = audit::audit_view(&store, &strict, now)
                .unwrap()
                .verification;
            assert!(v.ok, "{v:?}");
        } else {
            assert!(terms.is_empty(), "{terms:?}");
            assert_eq!(pages, vec![("https://example.org/suche".to_string(), 19)]);
            assert_eq!(r.free_text_rows_kept, 0);
        }
        assert!(!file_has(&path, "selten-suche"));
        assert!(!file_has(&path, "selten-utm"));
        if !opt_in {
            assert!(!file_has(&path, "gemeinsam"));
        }
    }
}

/// Cutting a value's free text can need a roll-up value that did not exist
/// yet (the page's path): the sweep hands out a new value id on the
/// writer's thread. A page first seen after the sweep must get an id of
/// its own, not the one just handed out, so both days read back their own
/// pages.
#[test]
fn a_value_id_handed_out_by_the_free_text_step_is_not_handed_out_again() {
    use sparsam::store::Dimension;
    let env = Env::new();
    let store = env.open();
    let now = Utc::now();
    let old = noon_of(now.timestamp_millis() - 120 * DAY);
    let today = now.timestamp_millis() - 1_000;
    // the old page exists only with its query; today's batch makes the
    // writer read its next free value id
    write_events(
        &store,
        vec![
            common::stored_pageview(old, 1, "https://example.org/nur-mit?q=abfrage"),
            common::stored_pageview(today, 2, "https://example.org/heute"),
        ],
    );
    let r = sweep_now(&store, &env.config, now, false, &AtomicBool::new(false)).unwrap();
    assert!(r.free_text_rows_expired > 0, "{r:?}");
    assert_eq!(
        rollup_values(&store, Dimension::Page, old),
        vec![("https://example.org/nur-mit".to_string(), 1)]
    );
    // a value the writer has not seen before, after the sweep
    write_events(
        &store,
        vec![common::stored_pageview(
            today + 1,
            3,
            "https://example.org/neu-nach-dem-sweep",
        )],
    );
    assert_eq!(
        rollup_values(&store, Dimension::Page, old),
        vec![("https://example.org/nur-mit".to_string(), 1)],
        "the old day keeps its page"
    );
    let mut pages = rollup_values(&store, Dimension::Page, today);
    pages.sort();
    assert_eq!(
        pages,
        vec![
            ("https://example.org/heute".to_string(), 1),
            ("https://example.org/neu-nach-dem-sweep".to_string(), 1),
        ]
    );
}

/// A free-text step that fails (here: the k-visitor rule meets an old block
/// that does not decode) does not stop the sweep from deleting the raw
/// events: the 90-day rule never waits for roll-up bookkeeping. The sweep
/// still reports the error, and the audit records it.
#[test]
fn a_failing_free_text_step_still_deletes_the_raw_events() {
    let now = Utc::now();
    let old = noon_of(now.timestamp_millis() - 100 * DAY);
    let mut env = Env::new();
    env.config.retention.free_text_min_visitors = 10;
    let store = env.open();
    write_events(&store, free_text_events(old, 1, "kaputt"));
    {
        let day = chrono::DateTime::from_timestamp_millis(old).unwrap();
        let table = format!("events_{}", day.format("%Y%m%d"));
        let txn = store.engine().database().unwrap().begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<(&str, u32), &[u8]>::new(&table))
            .unwrap()
            .insert(("demo", 999), [2u8, 0, 1, 2].as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let err = sweep_now(&store, &env.config, now, false, &AtomicBool::new(false)).unwrap_err();
    assert!(
        all_ts(&store)
            .iter()
            .all(|&ts| ts > now.timestamp_millis() - 90 * DAY),
        "raw events older than raw_days survived a sweep whose free-text step failed ({err})"
    );
    let last = audit::records(&store)
        .unwrap()
        .into_iter()
        .rev()
        .find_map(|(_, r)| match r {
            AuditRecord::Sweep(s) => Some(s),
            _ => None,
        })
        .expect("a sweep record");
    assert_eq!(last.outcome, "error", "{last:?}");
    assert!(last.partitions_dropped.len() == 1, "{last:?}");
}

/// The copy a vacuum killed mid-way leaves beside the store holds the
/// store as it was (expired events and free text included) where neither
/// the sweep nor the audit looks: start-up removes it.
#[test]
fn a_vacuum_copy_left_by_a_crash_is_removed_at_start_up() {
    let env = Env::new();
    drop(env.open());
    let leftover = env.config.store_path().with_extension("redb.vacuum");
    std::fs::write(
        &leftover,
        b"https://forum.example/thread/vacuum-leftover-c0ffee",
    )
    .unwrap();
    spawn_server(&env).stop();
    assert!(
        !leftover.exists(),
        "the interrupted vacuum's copy survived a start-up"
    );
}
