//! `sparsam migrate --to clickhouse` against a real ClickHouse server
//! (Debian's 18.16, started by `common/clickhouse.rs`): a redb store with
//! events on three days, two sites, an IPv6 visitor and a sweep record is
//! copied; the copy equals the source row by row; a day ClickHouse already
//! holds events of is left alone and reported; a day past retention is not
//! copied as raw events, its roll-ups are (reports on ClickHouse answer
//! for it as the embedded store does); a second run copies nothing twice; a day whose copy was
//! interrupted is dropped and copied again; a finished day collectors
//! wrote into since is left alone; a progress file of another target, a
//! running server and an unknown target are refused clearly.

mod common;
#[path = "common/clickhouse.rs"]
mod servers;

use std::path::{Path, PathBuf};
use std::process::Command;

use sparsam::model::Event;
use sparsam::privacy::{AnonIp, IpMasks};
use sparsam::storage::clickhouse::settings::ClickHouseConfig;
use sparsam::storage::clickhouse::{ClickHouseStorage, OpenOptions};
use sparsam::storage::redb::RedbStorage;
use sparsam::storage::Storage;
use sparsam::store::{StoreOptions, WriterOptions};

use common::{bin, stored_pageview, test_config};
use servers::ClickHouseSet;

const DAY_MS: i64 = 86_400_000;
/// Events of a day this far back are past the default
/// `retention.raw_days` (90) and are not copied.
const EXPIRED_DAYS_AGO: i64 = 200;

/// Noon UTC ten days ago: the first of the three days copied (inside the
/// default 90 days of raw retention).
fn first_noon() -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    (now / DAY_MS - 10) * DAY_MS + DAY_MS / 2
}
const DATABASE: &str = "sparsam_migrate";

struct Env {
    dir: tempfile::TempDir,
    data: PathBuf,
    config_path: PathBuf,
}

impl Env {
    fn new(set: &ClickHouseSet) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let urls: Vec<String> = set.urls().iter().map(|u| format!("{u:?}")).collect();
        let text = format!(
            "{}\n[clickhouse]\nurls = [{}]\ndatabase = \"{DATABASE}\"\nflush_ms = 50\n",
            test_config(&data, "", ""),
            urls.join(", ")
        );
        let config_path = dir.path().join("sparsam.toml");
        std::fs::write(&config_path, text).unwrap();
        Env {
            dir,
            data,
            config_path,
        }
    }

    fn migrate(&self, target: &str) -> (i32, String, String) {
        let out = Command::new(bin())
            .arg("--config")
            .arg(&self.config_path)
            .args(["migrate", "--to", target])
            .output()
            .expect("run sparsam migrate");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn progress_file(&self) -> PathBuf {
        self.data.join("clickhouse-migration.jsonl")
    }
}

fn day(noon: i64) -> String {
    chrono::DateTime::from_timestamp_millis(noon)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string()
}

/// The source events: 120, 80 and 40 page views on three days, site
/// `other` on the second day, one IPv6 visitor, one site search.
fn source_events() -> Vec<Event> {
    let mut events = Vec::new();
    for (d, n) in [(0, 120u64), (1, 80), (2, 40)] {
        let noon = first_noon() + d * DAY_MS;
        for i in 0..n {
            let mut e = stored_pageview(
                noon + i as i64 * 1_000,
                i,
                &format!("https://example.org/d{d}/p{i}"),
            );
            if d == 1 && i % 4 == 0 {
                e.site = "other".into();
                e.url = format!("https://other.example/p{i}");
            }
            events.push(e);
        }
    }
    // a day past retention: left in the embedded store, not copied
    for i in 0..7 {
        events.push(stored_pageview(
            first_noon() - EXPIRED_DAYS_AGO * DAY_MS + i,
            700 + i as u64,
            "https://example.org/expired",
        ));
    }
    let mut v6 = stored_pageview(first_noon() + 500, 999, "https://example.org/v6");
    v6.anon_ip = AnonIp::truncate("2001:db8:1234:5678::9".parse().unwrap(), &IpMasks::DEFAULT);
    v6.search_term = "impfung termine".into();
    events.push(v6);
    events
}

fn seed(data: &Path) {
    let store = RedbStorage::open(
        data.join("sparsam.redb"),
        &StoreOptions::default(),
        WriterOptions::default(),
    )
    .unwrap();
    let ack = store.submit(source_events()).unwrap();
    ack.blocking_recv().unwrap().unwrap();
    store
        .audit_append(r#"{"kind":"sweep","marker":"migrated-audit-record"}"#)
        .unwrap();
    store.close().unwrap();
}

/// A collector on ClickHouse stores `events` (confirmed by the server
/// before this returns), as a collector running beside a migration would.
fn collector_writes(set: &ClickHouseSet, env: &Env, events: Vec<Event>) {
    let collector = ClickHouseStorage::open(&OpenOptions {
        config: ClickHouseConfig {
            urls: set.urls(),
            database: DATABASE.into(),
            flush_ms: 50,
            ..ClickHouseConfig::default()
        },
        data_dir: env.dir.path().join("collector"),
        queue_capacity: 100,
        site_timezones: Default::default(),
        max_engaged_ms: 1_800_000,
        raw_days: 90,
    })
    .unwrap();
    collector
        .submit(events)
        .unwrap()
        .blocking_recv()
        .unwrap()
        .unwrap();
    collector.flush().unwrap();
    while collector.backlog().0 > 0 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    collector.close().unwrap();
}

fn count(set: &ClickHouseSet, where_: &str) -> u64 {
    set.count(
        0,
        &format!("SELECT count() FROM {DATABASE}.events WHERE {where_}"),
    )
}

#[test]
fn migrate_copies_every_day_once_resumes_and_leaves_foreign_days_alone() {
    let set = ClickHouseSet::single();
    let env = Env::new(&set);
    seed(&env.data);
    let days = [
        day(first_noon()),
        day(first_noon() + DAY_MS),
        day(first_noon() + 2 * DAY_MS),
    ];

    // A collector already writes into ClickHouse on the third day.
    let live: Vec<Event> = (0..5)
        .map(|i| {
            stored_pageview(
                first_noon() + 2 * DAY_MS + 3_600_000 + i,
                500 + i as u64,
                "https://example.org/live",
            )
        })
        .collect();
    collector_writes(&set, &env, live);

    // First run: two days copied, the third left alone and reported.
    let (code, out, err) = env.migrate("clickhouse");
    assert_eq!(code, 1, "a day left alone makes the run fail\n{out}\n{err}");
    assert!(
        out.contains(&format!("{}  copied 121 events", days[0])),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}  copied 80 events", days[1])),
        "{out}"
    );
    assert!(out.contains(&format!("{}  LEFT ALONE", days[2])), "{out}");
    assert!(
        out.contains(&format!(
            "MISMATCH {}: embedded store 40, ClickHouse 5",
            days[2]
        )),
        "{out}"
    );
    assert!(out.contains("audit records copied: 1"), "{out}");
    assert!(
        out.contains(&format!(
            "{}  not copied: 7 events past retention.raw_days",
            day(first_noon() - EXPIRED_DAYS_AGO * DAY_MS)
        )),
        "{out}"
    );
    assert_eq!(count(&set, "url = 'https://example.org/expired'"), 0);
    // its counts are copied as roll-ups: reports on ClickHouse answer for
    // it as the embedded store does
    assert!(
        out.contains("roll-ups of days before the first copied day: 1 site-days copied"),
        "{out}"
    );
    let expired = chrono::NaiveDate::parse_from_str(
        &day(first_noon() - EXPIRED_DAYS_AGO * DAY_MS),
        "%Y-%m-%d",
    )
    .unwrap();
    let from = expired
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    let answers = |storage: &dyn Storage| {
        (
            storage.hourly_totals("demo", from, from + DAY_MS).unwrap(),
            storage
                .ranked(
                    "demo",
                    sparsam::storage::Dimension::Page,
                    expired,
                    expired,
                    100,
                    0,
                )
                .unwrap(),
        )
    };
    let embedded = {
        let source = RedbStorage::open(
            env.data.join("sparsam.redb"),
            &StoreOptions::default(),
            WriterOptions::default(),
        )
        .unwrap();
        let answers = answers(&source);
        source.close().unwrap();
        answers
    };
    assert_eq!(embedded.1.rows[0].0, "https://example.org/expired");
    let clickhouse = ClickHouseStorage::open(&OpenOptions {
        config: ClickHouseConfig {
            urls: set.urls(),
            database: DATABASE.into(),
            ..ClickHouseConfig::default()
        },
        data_dir: env.dir.path().join("reader"),
        queue_capacity: 100,
        site_timezones: Default::default(),
        max_engaged_ms: 1_800_000,
        raw_days: 90,
    })
    .unwrap();
    assert_eq!(answers(&clickhouse), embedded);
    clickhouse.close().unwrap();
    assert!(
        out.contains("delete it when the collectors run on ClickHouse"),
        "{out}"
    );
    assert_eq!(count(&set, &format!("day = '{}'", days[0])), 121);
    assert_eq!(count(&set, &format!("day = '{}'", days[1])), 80);
    assert_eq!(
        count(&set, &format!("day = '{}'", days[2])),
        5,
        "the collector's events are untouched"
    );
    assert_eq!(count(&set, "site = 'other'"), 20);

    // Row by row the copy equals the source (site, time, visitor, url, search term, address).
    let source = seed_rows(&env.data, &days[..2]);
    let copied = set.query(
        0,
        &format!(
            "SELECT site, ts_ms, visitor, url, search_term, ip FROM {DATABASE}.events \
             WHERE day IN ('{}', '{}') ORDER BY site, ts_ms, visitor FORMAT TabSeparated",
            days[0], days[1]
        ),
    );
    assert_eq!(
        copied.lines().map(str::to_owned).collect::<Vec<_>>(),
        source
    );
    // the IPv6 visitor's address went over as its /32 and nothing more
    let v6 = set.query(
        0,
        &format!("SELECT ip FROM {DATABASE}.events WHERE url = 'https://example.org/v6'"),
    );
    assert_eq!(v6.trim(), "062020010db8", "tag 6, prefix 32, four octets");
    let audit = set.query(0, &format!("SELECT json FROM {DATABASE}.audit"));
    assert!(audit.contains("migrated-audit-record"), "{audit}");

    // The operator clears the foreign day; the next run copies it and
    // nothing else again.
    set.query(
        0,
        &format!("ALTER TABLE {DATABASE}.events DROP PARTITION '{}'", days[2]),
    );
    let (code, out, err) = env.migrate("clickhouse");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("{}  already copied (121 events)", days[0])),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}  already copied (80 events)", days[1])),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}  copied 40 events", days[2])),
        "{out}"
    );
    assert!(out.contains("every day's count matches"), "{out}");
    assert_eq!(count(&set, "1"), 241);
    // the expired day's roll-ups are not written twice
    assert!(
        out.contains("roll-ups of days before the first copied day: 0 site-days copied (0 rows), 1 already there"),
        "{out}"
    );
    assert_eq!(
        set.count(
            0,
            &format!("SELECT uniqExact(version) FROM {DATABASE}.rollups")
        ),
        1
    );

    // An interrupted copy of the second day: started, never finished.
    let progress = std::fs::read_to_string(env.progress_file()).unwrap();
    let kept: Vec<&str> = progress
        .lines()
        .filter(|l| !(l.contains(&days[1]) && l.contains("finished")))
        .collect();
    assert_eq!(kept.len(), progress.lines().count() - 1, "{progress}");
    std::fs::write(env.progress_file(), kept.join("\n") + "\n").unwrap();
    let (code, out, err) = env.migrate("clickhouse");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "{}  dropped 80 events of an interrupted copy, copied 80 events",
            days[1]
        )),
        "{out}"
    );
    assert_eq!(
        count(&set, &format!("day = '{}'", days[1])),
        80,
        "not counted twice"
    );
    assert_eq!(count(&set, "1"), 241);

    // Collectors started on ClickHouse write into a day copied earlier: a
    // later run (say, as a check) leaves their events alone and says so.
    let late: Vec<Event> = (0..3)
        .map(|i| {
            stored_pageview(
                first_noon() + 7_200_000 + i,
                800 + i as u64,
                "https://example.org/late",
            )
        })
        .collect();
    collector_writes(&set, &env, late);
    let (code, out, err) = env.migrate("clickhouse");
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "{}  LEFT ALONE: copied 121 events in an earlier run, ClickHouse now holds 124",
            days[0]
        )),
        "{out}"
    );
    assert_eq!(
        count(&set, &format!("day = '{}'", days[0])),
        124,
        "the collectors' events of a finished day are never dropped"
    );

    // A progress file written for another target says nothing about this
    // one: refused, by name.
    let progress = std::fs::read_to_string(env.progress_file()).unwrap();
    let elsewhere = progress.replacen(DATABASE, "staging", 1);
    assert_ne!(elsewhere, progress, "the target line names the database");
    std::fs::write(env.progress_file(), elsewhere).unwrap();
    let (code, out, err) = env.migrate("clickhouse");
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("records a migration into"), "{err}");
    assert!(err.contains("staging"), "{err}");
    assert_eq!(count(&set, "1"), 244, "nothing touched");
}

/// The source rows of `days` in the order of the ClickHouse query above.
fn seed_rows(data: &Path, days: &[String]) -> Vec<String> {
    let mut rows: Vec<(String, i64, u64, String, String, String)> =
        common::stored_events(&data.join("sparsam.redb"))
            .into_iter()
            .filter(|e| days.contains(&day(e.ts_ms)))
            .map(|e| {
                let ip = AnonIp::truncate(
                    e.anon_ip.addr,
                    &IpMasks {
                        v4_prefix: e.anon_ip.prefix_len,
                        v6_prefix: e.anon_ip.prefix_len,
                    },
                );
                let hex: String = ip.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
                (e.site, e.ts_ms, e.visitor, e.url, e.search_term, hex)
            })
            .collect();
    rows.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
    rows.into_iter()
        .map(|(site, ts, visitor, url, term, ip)| {
            format!("{site}\t{ts}\t{visitor}\t{url}\t{term}\t{ip}")
        })
        .collect()
}

#[test]
fn migrate_refuses_a_running_server_and_an_unknown_target() {
    let set = ClickHouseSet::single();
    let env = Env::new(&set);
    let (code, _, err) = env.migrate("postgres");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("possible values: clickhouse"), "{err}");

    let config = std::fs::read_to_string(&env.config_path).unwrap();
    let mut server = common::Server::start_config(env.dir.path(), &config);
    let (code, out, err) = env.migrate("clickhouse");
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("open in a running sparsam server; stop it first"),
        "{err}"
    );
    server.stop();
    let (code, out, err) = env.migrate("clickhouse");
    assert_eq!(code, 0, "an empty store migrates to nothing\n{out}\n{err}");
    assert!(out.contains("count check: 0 days"), "{out}");
}
