//! Query, storage, sweep and start-up cost on a big store made by
//! `gen-data`. Skipped (prints a note) unless `SPARSAM_BENCH_STORE` names
//! the data directory that holds `sparsam.redb`:
//!
//! ```text
//! cargo run --release --bin gen-data -- --data-dir /tmp/s1m --events 1000000
//! SPARSAM_BENCH_STORE=/tmp/s1m cargo bench --bench queries
//! ```
//!
//! Measured with criterion, through the same report functions the API
//! calls: the dashboard's overview (summary plus five top-10 lists over 90
//! days), the 90-day timeseries by day, and a filtered 90-day query no
//! roll-up answers (top pages where referrer type = search and device =
//! tablet, a scan of raw events), and with the same filters the goals
//! report (three goals) and a three-step funnel (raw events through the
//! visit engine). Measured once: bytes on disk per event
//! (the whole file, and the raw-event tables alone), and, on a copy of the
//! store, dropping the largest day partition (what the sweeper does) and
//! start-up of the real binary to its first accepted pixel hit.
//!
//! With `SPARSAM_BENCH_ROUNDS=n` it runs only the three filtered queries, in
//! turn for `n` rounds, and prints each one's wall and CPU time (CPU time
//! compares builds on a machine that other work keeps busy);
//! `SPARSAM_BENCH_CACHE_MB` sets the store's page cache (64 MiB).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use chrono_tz::Tz;
use criterion::Criterion;
use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};
use sparsam::config::{Config, SiteConfig};
use sparsam::report::filter::Filter;
use sparsam::report::goals::{funnel_report, goals_report};
use sparsam::report::query::{self, BreakdownKind, Interval};
use sparsam::report::range::DayRange;
use sparsam::storage::redb::RedbStorage;
use sparsam::storage::Storage;
use sparsam::store::{Dimension, StoreOptions, WriterOptions};

const DAY_MS: i64 = 86_400_000;

/// The store's page cache: 64 MiB, or `SPARSAM_BENCH_CACHE_MB`.
fn cache_bytes() -> usize {
    std::env::var("SPARSAM_BENCH_CACHE_MB")
        .ok()
        .and_then(|mb| mb.parse::<usize>().ok())
        .unwrap_or(64)
        * 1024
        * 1024
}

fn open(path: &Path) -> RedbStorage {
    RedbStorage::open(
        path,
        &StoreOptions {
            cache_size: cache_bytes(),
        },
        WriterOptions::default(),
    )
    .expect("open store")
}

fn range(days: i64) -> (i64, i64, NaiveDate, NaiveDate) {
    let today = Utc::now().timestamp_millis().div_euclid(DAY_MS);
    let (from_d, to_d) = (today - days + 1, today);
    let date = |d: i64| {
        chrono::DateTime::from_timestamp_millis(d * DAY_MS)
            .expect("date")
            .date_naive()
    };
    (
        from_d * DAY_MS,
        (to_d + 1) * DAY_MS,
        date(from_d),
        date(to_d),
    )
}

fn day_range() -> DayRange {
    let (_, _, from, to) = range(90);
    DayRange::new(&Tz::UTC, from, to).expect("range")
}

/// What the dashboard's first screen asks: summary and five top-10 lists.
fn overview(store: &RedbStorage, site: &str) -> usize {
    let r = day_range();
    let (t, _) = query::summary(store, site, &r, &[]).expect("summary");
    let mut n = t.pageviews as usize;
    for dim in [
        Dimension::Page,
        Dimension::Referrer,
        Dimension::Browser,
        Dimension::Os,
        Dimension::DeviceType,
    ] {
        let (b, _) = query::breakdown(store, site, &r, BreakdownKind::Dim(dim), &[], 10, 0)
            .expect("breakdown");
        n += b.rows.len();
    }
    n
}

fn timeseries_days(store: &RedbStorage, site: &str) -> usize {
    let (b, _) = query::timeseries(store, site, &Tz::UTC, &day_range(), Interval::Day, &[])
        .expect("timeseries");
    b.len()
}

/// Top pages of visits from search engines on tablets: no roll-up can
/// answer this, so it scans the raw events of 90 days.
fn filtered_scan(store: &RedbStorage, site: &str) -> Vec<(String, u64)> {
    let filters: Vec<Filter> = ["referrer_type==search", "device_type==tablet"]
        .iter()
        .map(|f| f.parse().expect("filter"))
        .collect();
    let (b, _) = query::breakdown(
        store,
        site,
        &day_range(),
        BreakdownKind::Dim(Dimension::Page),
        &filters,
        10,
        0,
    )
    .expect("filtered breakdown");
    b.rows.into_iter().map(|r| (r.value, r.pageviews)).collect()
}

/// The bench site with the declarations `gen-data`'s custom events fit.
fn goals_site(site: &str) -> SiteConfig {
    Config::parse(&format!(
        r#"
[[sites]]
id = "{site}"
hostnames = ["www.example.org"]
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
name = "Help pages"
path = "/hilfe/*"
[[sites.funnels]]
name = "Products to sign-up"
steps = ["path:/produkte/*", "path:/hilfe/*", "event:signup"]
"#
    ))
    .expect("bench config")
    .sites
    .remove(0)
}

fn bench_filters() -> Vec<Filter> {
    ["referrer_type==search", "device_type==tablet"]
        .iter()
        .map(|f| f.parse().expect("filter"))
        .collect()
}

/// The goals report over 90 days with the filtered scan's filters.
fn filtered_goals(store: &RedbStorage, site: &SiteConfig) -> Vec<(String, u64)> {
    goals_report(store, site, &day_range(), &bench_filters())
        .expect("goals")
        .rows
        .into_iter()
        .map(|r| (r.goal, r.conversions))
        .collect()
}

/// The funnel report over 90 days with the same filters.
fn filtered_funnel(store: &RedbStorage, site: &SiteConfig) -> Vec<u64> {
    funnel_report(store, site, None, &day_range(), &bench_filters())
        .expect("funnel")
        .steps
        .into_iter()
        .map(|s| s.visits)
        .collect()
}

/// Bytes of the file's pages held by each group of tables.
fn storage_by_group(store: &RedbStorage) -> Vec<(&'static str, u64)> {
    let db = store.engine().database().expect("db");
    let txn = db.begin_read().expect("read");
    let mut groups: Vec<(&'static str, u64)> = vec![
        ("raw events (day partitions)", 0),
        ("raw string dictionary", 0),
        ("roll-ups", 0),
        ("other", 0),
    ];
    for t in txn.list_tables().expect("tables") {
        let name = t.name().to_owned();
        let stats = match txn.open_untyped_table(t) {
            Ok(t) => t.stats().expect("stats"),
            Err(_) => continue,
        };
        let bytes = stats.stored_bytes() + stats.metadata_bytes() + stats.fragmented_bytes();
        let g = if name.starts_with("events_") {
            0
        } else if name == "strings" || name == "string_ids" || name == "day_counts" {
            1
        } else if name.starts_with("dims") || name == "hourly" || name.starts_with("dim_value") {
            2
        } else {
            3
        };
        groups[g].1 += bytes;
    }
    groups
}

fn copy_store(dir: &Path) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::Builder::new()
        .prefix("sparsam-bench-")
        .tempdir_in(
            std::env::var_os("SPARSAM_BENCH_TMP")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
        )
        .expect("temp dir");
    let path = tmp.path().join("sparsam.redb");
    std::fs::copy(dir.join("sparsam.redb"), &path).expect("copy store");
    // Flush the copy now: otherwise the store's first fsync at start-up
    // writes the whole copied file back and is timed with it.
    std::fs::File::open(&path)
        .and_then(|f| f.sync_all())
        .expect("sync the copy");
    (tmp, path)
}

fn sweep(dir: &Path) {
    let (_tmp, path) = copy_store(dir);
    let store = open(&path);
    let stats = store.days().expect("stats");
    let Some(&(day, n)) = stats.iter().max_by_key(|(_, n)| *n) else {
        println!("sweep: store has no partitions");
        return;
    };
    let t = Instant::now();
    let deleted = store.drop_day(day).expect("drop_day");
    println!(
        "sweep: drop_day({day}) deleted {deleted} of {n} events in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
}

fn startup(dir: &Path, site: &str) {
    let (tmp, _path) = copy_store(dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let config = tmp.path().join("sparsam.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n\n\
             [[sites]]\nid = \"{site}\"\nhostnames = [\"example.org\", \"*.example.org\"]\n\
             tokens = [\"bench-token-000000000000\"]\n",
            tmp.path().display()
        ),
    )
    .expect("write config");
    let url = format!(
        "http://127.0.0.1:{port}/p.gif?site={site}&url=https%3A%2F%2Fwww.example.org%2Fstart"
    );
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sparsam"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("SPARSAM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sparsam");
    let mut answered = None;
    while t.elapsed() < Duration::from_secs(60) {
        match client
            .get(&url)
            .header(
                "User-Agent",
                "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            )
            .send()
        {
            Ok(r) if r.status().is_success() => {
                answered = Some(t.elapsed());
                break;
            }
            Ok(r) => {
                println!("startup: first answer was {}", r.status());
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    match answered {
        Some(d) => println!(
            "startup: spawn to first accepted pixel hit: {:.1} ms",
            d.as_secs_f64() * 1e3
        ),
        None => println!("startup: no accepted hit within 60 s"),
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

/// CPU time (user + system, all threads) this process has used so far.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// `SPARSAM_BENCH_ROUNDS=n`: the three filtered queries (top pages, goals,
/// funnel) in turn, `n` rounds, each query's wall time (fastest and
/// median) and CPU time (all threads, median). On a machine shared with
/// other work, wall time says how long other processes held the cores;
/// CPU time says what the query itself costs.
fn filtered_rounds(store: &RedbStorage, site: &str, goals_cfg: &SiteConfig, rounds: usize) {
    type Query<'a> = (&'static str, Box<dyn Fn() -> usize + 'a>);
    let queries: [Query<'_>; 3] = [
        (
            "filtered top pages",
            Box::new(|| filtered_scan(store, site).len()),
        ),
        (
            "filtered goals",
            Box::new(|| filtered_goals(store, goals_cfg).len()),
        ),
        (
            "filtered funnel",
            Box::new(|| filtered_funnel(store, goals_cfg).len()),
        ),
    ];
    let mut times: Vec<(Vec<Duration>, Vec<Duration>)> = vec![Default::default(); queries.len()];
    for _ in 0..rounds {
        for (q, (_, run)) in queries.iter().enumerate() {
            let (wall, cpu) = (Instant::now(), cpu_time());
            black_box(run());
            times[q].0.push(wall.elapsed());
            times[q].1.push(cpu_time() - cpu);
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for ((name, _), (mut wall, mut cpu)) in queries.iter().zip(times) {
        wall.sort();
        cpu.sort();
        println!(
            "rounds: {name}: wall fastest {:.0} ms, median {:.0} ms; cpu median {:.0} ms ({rounds} rounds)",
            ms(wall[0]),
            ms(wall[wall.len() / 2]),
            ms(cpu[cpu.len() / 2]),
        );
    }
}

fn main() {
    let Some(dir) = std::env::var_os("SPARSAM_BENCH_STORE").map(PathBuf::from) else {
        println!("queries: skipped; set SPARSAM_BENCH_STORE to a data dir made by gen-data");
        return;
    };
    let site = std::env::var("SPARSAM_BENCH_SITE").unwrap_or_else(|_| "bench".into());
    let file = dir.join("sparsam.redb");
    {
        let store = open(&file);
        let events = store.event_count().expect("count");
        let bytes = std::fs::metadata(&file).expect("stat").len();
        println!(
            "storage: {events} events, {} partitions, {bytes} bytes = {:.1} bytes per event",
            store.days().expect("partitions").len(),
            bytes as f64 / events.max(1) as f64
        );
        let (blocks, in_blocks, block_bytes) = store
            .engine()
            .snapshot()
            .expect("snapshot")
            .block_stats()
            .expect("blocks");
        println!(
            "storage: {blocks} blocks hold {in_blocks} events in {block_bytes} encoded bytes = {:.1} bytes per event",
            block_bytes as f64 / in_blocks.max(1) as f64
        );
        for (group, b) in storage_by_group(&store) {
            println!(
                "storage: {group}: {b} bytes = {:.1} bytes per event",
                b as f64 / events.max(1) as f64
            );
        }
        println!(
            "check: overview rows {}, days {}, filtered top pages {:?}",
            overview(&store, &site),
            timeseries_days(&store, &site),
            filtered_scan(&store, &site)
        );
        let goals_cfg = goals_site(&site);
        println!(
            "check: filtered goals {:?}, filtered funnel {:?}",
            filtered_goals(&store, &goals_cfg),
            filtered_funnel(&store, &goals_cfg)
        );

        if let Some(rounds) = std::env::var("SPARSAM_BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse::<usize>().ok())
        {
            filtered_rounds(&store, &site, &goals_cfg, rounds);
            return;
        }

        let mut c = Criterion::default().configure_from_args();
        let mut g = c.benchmark_group("queries_90d");
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        g.bench_function("summary_plus_five_top10", |b| {
            b.iter(|| black_box(overview(&store, &site)))
        });
        g.bench_function("timeseries_by_day", |b| {
            b.iter(|| black_box(timeseries_days(&store, &site)))
        });
        g.bench_function("filtered_scan_search_tablet_top_pages", |b| {
            b.iter(|| black_box(filtered_scan(&store, &site)))
        });
        g.bench_function("filtered_goals_three_goals", |b| {
            b.iter(|| black_box(filtered_goals(&store, &goals_cfg)))
        });
        g.bench_function("filtered_funnel_three_steps", |b| {
            b.iter(|| black_box(filtered_funnel(&store, &goals_cfg)))
        });
        g.finish();
        c.final_summary();
    }
    sweep(&dir);
    startup(&dir, &site);
}
