//! Crash safety: the real binary under load is killed (SIGKILL) or stopped
//! (SIGTERM) at seeded random moments and restarted on the same store.
//! Every event that got a success answer must be in the store afterwards,
//! and the store must open cleanly every time. Requests that got no answer
//! may or may not be stored. A file-size limit set on the running server
//! with `prlimit` (util-linux) stands in for a full disk.
//!
//! `SPARSAM_CRASH_ROUNDS` (default 20) and `SPARSAM_CRASH_SEED` override the
//! number of SIGKILL rounds and the seed, for longer runs.

mod common;

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::*;
use serde_json::json;
use sparsam::store::{Store, StoreOptions};

const CLIENT_THREADS: usize = 4;
/// Upper bound of requests per client thread and round.
const MAX_REQUESTS_PER_THREAD: usize = 20_000;
/// Upper bound of polls while waiting for the load to get going.
const MAX_WAIT_POLLS: usize = 6_000;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the clients of one round learned.
#[derive(Default)]
struct Outcome {
    /// Page paths of events answered with 2xx.
    acked: HashSet<String>,
    /// Page paths of events sent without a success answer.
    unanswered: HashSet<String>,
}

/// Client threads sending pixel hits and beacon batches, each event with a
/// unique path `/crash/{tag}/t{thread}/n{i}[a|b]`, until told to stop, the
/// server goes away, or the per-thread bound is reached.
struct Load {
    stop: Arc<AtomicBool>,
    acked_count: Arc<AtomicUsize>,
    outcome: Arc<Mutex<Outcome>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(base: &str, tag: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked_count = Arc::new(AtomicUsize::new(0));
        let outcome = Arc::new(Mutex::new(Outcome::default()));
        let threads = (0..CLIENT_THREADS)
            .map(|t| {
                let (base, tag) = (base.to_string(), tag.to_string());
                let (stop, acked_count, outcome) =
                    (stop.clone(), acked_count.clone(), outcome.clone());
                std::thread::spawn(move || {
                    let c = client();
                    for i in 0..MAX_REQUESTS_PER_THREAD {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let path = format!("/crash/{tag}/t{t}/n{i}");
                        let (paths, res) = if i % 2 == 0 {
                            let url = format!(
                                "{base}/p.gif?site=demo&url={}",
                                enc(&format!("https://example.org{path}"))
                            );
                            (
                                vec![path],
                                c.get(url).header("User-Agent", CHROME_UA).send(),
                            )
                        } else {
                            let (a, b) = (format!("{path}a"), format!("{path}b"));
                            let body = json!([
                                {"site": "demo", "kind": "pageview", "url": format!("https://example.org{a}")},
                                {"site": "demo", "kind": "pageview", "url": format!("https://example.org{b}")},
                            ]);
                            (
                                vec![a, b],
                                c.post(format!("{base}/api/event"))
                                    .header("User-Agent", FIREFOX_UA)
                                    .header("Content-Type", "text/plain")
                                    .body(body.to_string())
                                    .send(),
                            )
                        };
                        let ok = match res {
                            Ok(r) if r.status().is_success() => r.bytes().is_ok(),
                            _ => false,
                        };
                        let mut o = outcome.lock().unwrap();
                        if ok {
                            acked_count.fetch_add(paths.len(), Ordering::Relaxed);
                            o.acked.extend(paths);
                        } else {
                            o.unanswered.extend(paths);
                            // The server is going away; further requests
                            // would only be refused.
                            break;
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            acked_count,
            outcome,
            threads,
        }
    }

    /// Waits (bounded by a poll count) until at least `n` events are acked.
    fn wait_for_acks(&self, n: usize) {
        for _ in 0..MAX_WAIT_POLLS {
            if self.acked_count.load(Ordering::Relaxed) >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("load did not reach {n} acknowledged events");
    }

    fn finish(self) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("client thread");
        }
        Arc::try_unwrap(self.outcome)
            .ok()
            .expect("threads joined")
            .into_inner()
            .unwrap()
    }
}

/// Opens the store file directly (the server must be stopped) and returns
/// the paths of every stored event of site `demo`.
fn stored_paths(store_path: &Path) -> HashSet<String> {
    let store = Store::open(store_path, &StoreOptions::default())
        .unwrap_or_else(|e| panic!("store must open cleanly after the crash: {e}"));
    let mut paths = HashSet::new();
    store
        .scan_events("demo", 0, i64::MAX, |e| {
            let path = e
                .url
                .strip_prefix("https://example.org")
                .unwrap_or(&e.url)
                .to_string();
            paths.insert(path);
            ControlFlow::Continue(())
        })
        .expect("scan events");
    paths
}

fn missing(acked: &HashSet<String>, found: &HashSet<String>) -> Vec<String> {
    let mut m: Vec<String> = acked.difference(found).cloned().collect();
    m.sort();
    m
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_event() {
    let rounds = env_number("SPARSAM_CRASH_ROUNDS", 20);
    let seed = env_number("SPARSAM_CRASH_SEED", 0x5EED_C0FFEE);
    let mut rng = fastrand::Rng::with_seed(seed);
    println!("SIGKILL rounds: {rounds}, seed {seed:#x}");

    let mut server = Server::start();
    let tmp = server.take_tempdir();
    let config = std::fs::read_to_string(&server.config_path).expect("config");
    let store_path = server.store_path();
    let mut all_acked: HashSet<String> = HashSet::new();
    let (mut total_acked, mut total_unanswered, mut total_unanswered_found) = (0, 0, 0);

    for round in 0..rounds {
        let load = Load::start(&server.base, &format!("r{round}"));
        // A random moment: after a random number of acknowledged events,
        // plus a random pause, so kills land in every phase of a commit.
        load.wait_for_acks(rng.usize(1..=300));
        std::thread::sleep(Duration::from_millis(rng.u64(0..=40)));
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("wait for the killed server");
        let outcome = load.finish();

        let found = stored_paths(&store_path);
        all_acked.extend(outcome.acked.iter().cloned());
        let lost = missing(&all_acked, &found);
        let unanswered_found = outcome.unanswered.intersection(&found).count();
        let round_found = outcome.acked.iter().filter(|p| found.contains(*p)).count();
        println!(
            "round {round:>2}: acked {:>4}, found {:>4}, unanswered {} (of which stored {}), store total {}",
            outcome.acked.len(),
            round_found,
            outcome.unanswered.len(),
            unanswered_found,
            found.len()
        );
        assert!(
            lost.is_empty(),
            "round {round}: {} acknowledged events missing after SIGKILL, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
        total_acked += outcome.acked.len();
        total_unanswered += outcome.unanswered.len();
        total_unanswered_found += unanswered_found;

        server = Server::start_config(&server.dir, &config);
    }
    println!(
        "total: {rounds} rounds, acked {total_acked}, all found; unanswered {total_unanswered} (of which stored {total_unanswered_found})"
    );
    assert!(total_acked > 0);

    // The restarted server reads the same store and keeps taking hits.
    let res = client()
        .get(server.url(&format!(
            "/p.gif?site=demo&url={}",
            enc("https://example.org/crash/after")
        )))
        .header("User-Agent", CHROME_UA)
        .send()
        .expect("hit after the last restart");
    assert_eq!(res.status(), 200);
    server.stop();
    let found = stored_paths(&store_path);
    assert!(found.contains("/crash/after"));
    assert!(missing(&all_acked, &found).is_empty());
    drop(server);
    drop(tmp);
}

#[test]
fn sigterm_commits_every_accepted_event_and_exits_zero() {
    let mut server = Server::start();
    let tmp = server.take_tempdir();
    let config = std::fs::read_to_string(&server.config_path).expect("config");
    let store_path = server.store_path();

    let load = Load::start(&server.base, "term");
    load.wait_for_acks(200);
    // Requests are in flight on every client thread when the signal lands.
    let pid = server.child.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = server.child.wait().expect("wait");
    let outcome = load.finish();
    assert!(
        status.success(),
        "SIGTERM must exit 0, got {status}; log:\n{}",
        server.log()
    );
    assert!(server.log().contains("store closed"), "{}", server.log());

    // Restart on the same store: it opens and serves reports.
    let restarted = Server::start_config(&server.dir, &config);
    assert!(pageviews(&restarted, "demo") >= 1);
    let mut restarted = restarted;
    restarted.stop();

    let found = stored_paths(&store_path);
    let lost = missing(&outcome.acked, &found);
    println!(
        "SIGTERM: acked {}, found {}, unanswered {} (of which stored {})",
        outcome.acked.len(),
        outcome.acked.len() - lost.len(),
        outcome.unanswered.len(),
        outcome.unanswered.intersection(&found).count()
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged events missing after SIGTERM, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    drop(server);
    drop(tmp);
}

/// Sets the file-size limit (RLIMIT_FSIZE) of a running process.
fn set_file_size_limit(pid: u32, limit: &str) {
    let status = Command::new("prlimit")
        .arg("--pid")
        .arg(pid.to_string())
        .arg(format!("--fsize={limit}"))
        .status()
        .expect("prlimit (util-linux) is needed for the disk-full test");
    assert!(status.success(), "prlimit --fsize={limit} failed");
}

/// A beacon batch of 50 page views with long titles (about 50 KB), so the
/// store file must grow after a few requests.
fn bulky_batch(tag: &str, i: usize) -> (Vec<String>, String) {
    let title = "x".repeat(900);
    let paths: Vec<String> = (0..50).map(|k| format!("/full/{tag}/{i}/{k}")).collect();
    let events: Vec<_> = paths
        .iter()
        .map(|p| json!({"site": "demo", "kind": "pageview", "url": format!("https://example.org{p}"), "title": title}))
        .collect();
    (paths, serde_json::Value::Array(events).to_string())
}

/// Every ingest rate limit off: the disk-full test sends many bulky
/// batches from one address, and a 429 would hide the store's answer.
const NO_RATE_LIMITS: &str = "rate_limit_per_minute = 0\n\
    rate_limit_events_per_minute = 0\n\
    rate_limit_bytes_per_minute = 0\n";

/// "Disk full" while roll-up changes are held in memory: ingest answers
/// 503, the writer's folds of the held roll-ups fail too (and are retried
/// at a bounded pace, not in a loop), the reports keep counting every
/// acknowledged event, and once space is back ingest and folding resume
/// without a restart, with the reports unchanged across one.
#[test]
fn disk_full_answers_503_keeps_reports_and_resumes_by_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let config = test_config(&tmp.path().join("data"), NO_RATE_LIMITS, "");
    let mut server = Server::start_config(tmp.path(), &config);
    let store_path = server.store_path();
    let c = client();
    let send = |tag: &str, i: usize| {
        let (paths, body) = bulky_batch(tag, i);
        let res = c
            .post(server.url("/api/event"))
            .header("User-Agent", CHROME_UA)
            .body(body)
            .send()
            .expect("beacon");
        (paths, res)
    };
    let mut acked: HashSet<String> = HashSet::new();
    for i in 0..3 {
        let (paths, res) = send("before", i);
        assert_eq!(res.status(), 202);
        acked.extend(paths);
    }
    let before = pageviews(&server, "demo");

    // "Disk full": the store file may not grow beyond its present size.
    let size = std::fs::metadata(&store_path).expect("store file").len();
    set_file_size_limit(server.child.id(), &format!("{size}:unlimited"));
    let mut refused = None;
    for i in 0..400 {
        let (paths, res) = send("full", i);
        if res.status().is_success() {
            acked.extend(paths);
            continue;
        }
        refused = Some(res);
        break;
    }
    let res = refused.expect("ingest must fail once the store file cannot grow");
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"), "Retry-After");
    let reason: serde_json::Value = res.json().expect("JSON reason");
    assert!(reason["error"].is_string(), "{reason}");

    // The disk stays full past the time a fold of the held roll-ups is
    // due (every second by default): the writer tries, fails, and tries
    // again only after a pause.
    std::thread::sleep(Duration::from_millis(2_500));
    let log = server.log();
    let failed_folds = log.matches("folding the held roll-ups failed").count();
    assert!(
        failed_folds >= 1,
        "a fold must have been tried on the full disk; log:\n{log}"
    );
    assert!(
        failed_folds <= 5,
        "{failed_folds} failed folds in 2.5 s: the writer retries in a loop"
    );

    // Health and reports keep working, and count every acknowledged
    // event (the held roll-up changes included).
    let health = c.get(server.url("/healthz")).send().expect("healthz");
    assert_eq!(health.status(), 200);
    assert_eq!(pageviews(&server, "demo"), acked.len() as i64);
    assert!(acked.len() as i64 > before);

    // Space is back: ingest resumes without a restart.
    set_file_size_limit(server.child.id(), "unlimited:unlimited");
    let mut resumed = false;
    for i in 0..50 {
        let (paths, res) = send("after", i);
        if res.status().is_success() {
            acked.extend(paths);
            resumed = true;
            break;
        }
        assert_eq!(res.status(), 503);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(resumed, "ingest did not resume; log:\n{}", server.log());
    assert_eq!(pageviews(&server, "demo"), acked.len() as i64);
    assert!(
        server.log().contains("store reopened after an I/O error"),
        "{}",
        server.log()
    );
    // folding resumes too: the held changes reach the tables
    let mut folded = false;
    for _ in 0..50 {
        if metric_value(&metrics(&server), "sparsam_store_unfolded_events") == 0.0 {
            folded = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(folded, "held roll-ups never folded; log:\n{}", server.log());
    let reports = demo_reports(&server);

    server.stop();
    let mut restarted = Server::start_config(tmp.path(), &config);
    assert_eq!(demo_reports(&restarted), reports, "reports after a restart");
    restarted.stop();
    let found = stored_paths(&store_path);
    let lost = missing(&acked, &found);
    println!(
        "disk full: acked {} events, all found: {}; store file limited at {size} bytes",
        acked.len(),
        lost.is_empty()
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged events missing",
        lost.len()
    );
    drop(server);
    drop(restarted);
    drop(tmp);
}

/// A stored block of today that does not decode: the writer cannot build
/// today's state, so the hit is not stored. That is the store's fault,
/// neither the client's nor a full disk's: the answer is 500 and the
/// failure is logged, never 503 with `Retry-After` (a retry cannot help).
#[test]
fn a_store_that_cannot_write_for_a_reason_other_than_the_disk_answers_500() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let table = format!("events_{}", chrono::Utc::now().format("%Y%m%d"));
    {
        let store = Store::open(data.join("sparsam.redb"), &StoreOptions::default()).unwrap();
        let db = store.database().unwrap();
        let txn = redb::Database::begin_write(&db).unwrap();
        txn.open_table(redb::TableDefinition::<(&str, u32), &[u8]>::new(&table))
            .unwrap()
            .insert(("demo", 0), [2u8, 0, 1, 2].as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let mut s = Server::start_config(tmp.path(), &test_config(&data, "", ""));
    let res = client()
        .get(s.url("/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2Fbroken"))
        .header("User-Agent", CHROME_UA)
        .send()
        .unwrap();
    assert_eq!(res.status().as_u16(), 500, "{}", s.log());
    assert!(res.headers().get("retry-after").is_none());
    s.stop();
    assert!(s.log().contains("store commit failed"), "{}", s.log());
}

/// The config of the default test server with roll-up folds every
/// `fold_events` events (and otherwise only hourly), so that a test knows
/// where the folds fall.
fn config_folding_every(data: &Path, fold_events: u64) -> String {
    format!(
        "{}\n[store]\nrollup_fold_secs = 3600\nrollup_fold_events = {fold_events}\n",
        test_config(data, "", "")
    )
}

/// The reports a dashboard shows for site `demo` over the last week: the
/// summary, the hourly series and the ranked dimensions that visits,
/// page views and events move (what the roll-ups hold).
fn demo_reports(server: &Server) -> serde_json::Value {
    let c = client();
    let get = |path: &str| -> serde_json::Value {
        let res = c
            .get(server.url(&format!("/api/v1/sites/demo/{path}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(res.status(), 200, "{path}");
        res.json().expect("report JSON")
    };
    let mut out = serde_json::Map::new();
    out.insert("summary".into(), get("summary?period=7d"));
    out.insert(
        "timeseries".into(),
        get("timeseries?period=7d&interval=hour"),
    );
    for dim in [
        "page",
        "title",
        "entry_page",
        "exit_page",
        "referrer",
        "referrer_type",
        "browser",
        "download",
        "outbound",
    ] {
        out.insert(
            dim.into(),
            get(&format!("breakdown/{dim}?period=7d&limit=1000")),
        );
    }
    serde_json::Value::Object(out)
}

/// A metric's value in a Prometheus text page (0 when absent).
fn metric_value(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Sends event `i` of a small site's traffic: a few visitors (user
/// agents) whose visits run through several pages, with referrers, dwell
/// pings, downloads and outbound clicks, each request on its own (so each
/// is its own commit). Returns the page path it stored, if a page view.
fn send_visit_event(c: &reqwest::blocking::Client, base: &str, i: usize) -> String {
    let visitor = i % 5;
    let ua = format!(
        "Mozilla/5.0 (X11; Linux x86_64; rv:12{visitor}.0) Gecko/20100101 Firefox/12{visitor}.0"
    );
    let path = format!("/fold/v{visitor}/p{}", i / 5 % 4);
    let url = format!("https://example.org{path}");
    let event = match i % 7 {
        3 => {
            json!({"site": "demo", "kind": "ping", "url": url, "pv": format!("pv{}", i - 1), "engaged_ms": 1500 + i})
        }
        5 => {
            json!({"site": "demo", "kind": "download", "url": url, "target": format!("https://example.org/files/f{}.pdf", i % 3)})
        }
        6 => {
            json!({"site": "demo", "kind": "outbound", "url": url, "target": format!("https://elsewhere.example/{}", i % 2)})
        }
        _ => {
            json!({"site": "demo", "kind": "pageview", "url": url, "title": format!("Page {}", i / 5 % 4),
                    "ref": format!("https://www.search{}.example/", visitor % 2), "pv": format!("pv{i}")})
        }
    };
    let res = c
        .post(format!("{base}/api/event"))
        .header("User-Agent", ua)
        .header("Content-Type", "text/plain")
        .body(event.to_string())
        .send()
        .expect("beacon");
    assert!(res.status().is_success(), "event {i}: {}", res.status());
    path
}

/// A commit writes only the raw events; their roll-ups are folded later.
/// Killed between two folds, the collector must come back with every
/// acknowledged event and the very reports it gave before the kill:
/// start-up replays the events past the last fold through the visit
/// engine (visits that began before the fold and went on after it
/// included).
#[test]
fn sigkill_between_rollup_folds_keeps_every_event_and_the_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = config_folding_every(&data, 100);
    let mut server = Server::start_config(tmp.path(), &config);
    let c = client();
    // 2 folds (after 100 and 200 events), then 77 events held in memory
    let mut acked_pages: HashSet<String> = HashSet::new();
    let (mut acked, mut pageviews_sent) = (0, 0);
    for i in 0..277 {
        let path = send_visit_event(&c, &server.base, i);
        acked += 1;
        if !matches!(i % 7, 3 | 5 | 6) {
            acked_pages.insert(path);
            pageviews_sent += 1;
        }
    }
    let before = demo_reports(&server);
    let m = metrics(&server);
    assert!(
        metric_value(&m, "sparsam_store_rollup_folds_total") >= 2.0,
        "the roll-ups were folded meanwhile:\n{m}"
    );
    let held = metric_value(&m, "sparsam_store_unfolded_events");
    assert!(held > 0.0, "the kill must fall between two folds:\n{m}");
    assert_eq!(
        before["summary"]["pageviews"].as_u64(),
        Some(pageviews_sent),
        "reports include the events held in memory"
    );

    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("wait for the killed server");

    // every acknowledged event is stored
    let found = stored_paths(&server.store_path());
    let lost: Vec<&String> = acked_pages.difference(&found).collect();
    assert!(lost.is_empty(), "acknowledged events lost: {lost:?}");
    let stored = stored_events(&server.store_path());
    assert_eq!(
        stored.len(),
        acked,
        "every acknowledged event is stored once"
    );

    // the restarted collector reports what it reported before the kill
    let mut restarted = Server::start_config(tmp.path(), &config);
    assert!(
        restarted.log().contains("replayed"),
        "start-up replays the events after the last fold; log:\n{}",
        restarted.log()
    );
    let after = demo_reports(&restarted);
    for (key, value) in before.as_object().expect("reports") {
        assert_eq!(&after[key], value, "{key} differs after the restart");
    }
    // and folds them: a graceful restart reports the same again
    restarted.stop();
    let mut third = Server::start_config(tmp.path(), &config);
    assert_eq!(demo_reports(&third), before);
    third.stop();
}
