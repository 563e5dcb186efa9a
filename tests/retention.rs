//! Retention sweeper and audit trail, against real redb files and the real
//! binary: the exact boundary of the rule, the audit record and view agreeing
//! with the store, a planted violation, ingest during a sweep, and recovery
//! from a sweep killed mid-run.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
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
        Env { dir, config }
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

fn spawn_server(env: &Env) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sparsam"))
        .arg("--config")
        .arg(env.config_path())
        .arg("serve")
        .env("SPARSAM_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if let Some(i) = line.find("listening on http://") {
            break line[i + "listening on http://".len()..].trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, format!("http://{addr}"))
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
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
    let (child, url) = spawn_server(&env);
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
                finished = true;
                break;
            }
        }
    }
    stop(child);
    assert!(finished, "the start-up sweep did not finish");
    let store = env.open();
    assert_eq!(store.event_count().unwrap(), answered);
}

#[test]
fn audit_endpoint_needs_the_admin_token() {
    let env = Env::new();
    let (child, url) = spawn_server(&env);
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
    stop(child);
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
