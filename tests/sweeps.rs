//! When sweeps run and what they tell, against the real binary and real
//! redb files: scheduled sweeps firing while the server runs, the start-up
//! sweep after a missed schedule (and none after a recent sweep),
//! `POST /api/v1/sweep`, `sparsam sweep --dry-run` and `sparsam audit`
//! text on a store with known data, and `next_sweep`.

mod common;

use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use common::{client, test_config, Server, ADMIN_TOKEN, CHROME_UA, SITE_TOKEN};
use serde_json::Value;
use sparsam::model::Event;
use sparsam::retention::audit::{self, AuditRecord, SweepRecord};
use sparsam::retention::sweeper::sweep_missed;
use sparsam::storage::redb::RedbStorage;
use sparsam::storage::Storage;
use sparsam::store::{StoreOptions, WriterOptions};
use sparsam::Config;

const DAY: i64 = 86_400_000;
/// Yearly, on 1 January: the last scheduled time is this year's, the next
/// one months away, so only start-up and requested sweeps run.
const YEARLY: &str = "0 0 0 1 1 *";

fn event(ts_ms: i64, n: u64) -> Event {
    common::stored_pageview(ts_ms, n, &format!("https://example.org/page{n}"))
}

/// A temp dir with `sparsam.toml` (the common test config plus
/// `retention`) and its parsed form.
struct Env {
    dir: tempfile::TempDir,
    text: String,
    config: Config,
}

impl Env {
    fn new(retention: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let text = format!("{}\n[retention]\n{retention}\n", test_config(&data, "", ""));
        std::fs::write(dir.path().join("sparsam.toml"), &text).unwrap();
        let config = Config::parse(&text).unwrap();
        Env { dir, text, config }
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
    /// Sweeps in the audit log of the (closed) store.
    fn sweeps_on_record(&self) -> usize {
        audit::records(&self.open())
            .unwrap()
            .iter()
            .filter(|(_, r)| matches!(r, AuditRecord::Sweep(_)))
            .count()
    }
    /// Writes events and audit records into the store, then closes it.
    fn seed(&self, events: Vec<Event>, records: Vec<AuditRecord>) {
        let store = self.open();
        if !events.is_empty() {
            store
                .submit(events)
                .unwrap()
                .blocking_recv()
                .unwrap()
                .unwrap();
        }
        for r in records {
            audit::append(&store, &r).unwrap();
        }
    }
    fn start(&self) -> Server {
        Server::start_config(self.dir.path(), &self.text)
    }
    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(common::bin())
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn sweep_record(started_ms: i64) -> AuditRecord {
    AuditRecord::Sweep(SweepRecord {
        started_ms,
        finished_ms: Some(started_ms + 5),
        cutoff_ms: started_ms - 90 * DAY,
        outcome: "ok".into(),
        ..SweepRecord::default()
    })
}

fn audit_json(s: &Server) -> Value {
    let res = client()
        .get(s.url("/api/v1/audit"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().unwrap()
}

/// Polls `f` until it returns `Some`, for at most `cap` (a generous bound,
/// not a timing expectation).
fn wait_for<T>(what: &str, cap: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < cap, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_for_startup_check(s: &Server) -> String {
    wait_for("the start-up sweep check", Duration::from_secs(60), || {
        let log = s.log();
        log.lines()
            .find(|l| l.contains("start-up sweep check"))
            .map(str::to_string)
    })
}

fn ms(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn day(ts_ms: i64) -> NaiveDate {
    Utc.timestamp_millis_opt(ts_ms).unwrap().date_naive()
}

#[test]
fn scheduled_sweeps_run_on_schedule_while_the_server_runs() {
    let every_2s = "*/2 * * * * *";
    let schedule = cron::Schedule::from_str(every_2s).unwrap();
    let env = Env::new(&format!("raw_days = 1\nsweep_schedule = \"{every_2s}\""));
    // Expires 20 s from now: the start-up sweep keeps it, a scheduled one
    // deletes it without a restart.
    let expires = Utc::now().timestamp_millis() + 20_000;
    let ts = expires - DAY;
    env.seed(vec![event(ts, 1)], vec![]);

    let mut server = env.start();
    let view = wait_for(
        "the event to be swept and three more scheduled sweeps",
        Duration::from_secs(120),
        || {
            let v = audit_json(&server);
            let done = v["last_sweeps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["outcome"] == "ok")
                .count();
            let deleted = v["last_sweeps"]
                .as_array()
                .unwrap()
                .iter()
                .position(|s| s["events_deleted"] == 1);
            // Newest first: three sweeps after the one that deleted.
            (deleted.is_some_and(|i| i >= 3) && done >= 5).then_some(v)
        },
    );
    server.stop();

    assert_eq!(view["raw_events"], 0, "{view}");
    assert_eq!(view["verification"]["ok"], true, "{view}");
    let mut sweeps: Vec<&Value> = view["last_sweeps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["outcome"] == "ok")
        .collect();
    sweeps.reverse();
    // Listed sweeps are the newest ten; the start-up sweep may have scrolled
    // out, but the event survived every sweep whose cutoff was before it.
    for s in &sweeps {
        let deleted = ms(&s["events_deleted"]);
        let cutoff = ms(&s["cutoff_ms"]);
        if cutoff <= ts {
            assert_eq!(deleted, 0, "a sweep before expiry deleted: {s}");
        }
        assert_eq!(cutoff, ms(&s["started_ms"]) - DAY, "{s}");
    }
    let deleting: Vec<&&Value> = sweeps.iter().filter(|s| s["events_deleted"] == 1).collect();
    assert_eq!(deleting.len(), 1, "{view}");
    assert!(ms(&deleting[0]["cutoff_ms"]) > ts);
    // Sweeps after the first run only on the schedule: between two
    // consecutive sweeps lies a scheduled time, at or before the second.
    for pair in sweeps.windows(2) {
        let (a, b) = (ms(&pair[0]["started_ms"]), ms(&pair[1]["started_ms"]));
        let a_t = Utc.timestamp_millis_opt(a).unwrap();
        let slot = schedule.after(&a_t).next().unwrap().timestamp_millis();
        assert!(
            a < slot && slot <= b,
            "sweep at {b} does not follow a scheduled time after {a}"
        );
    }
    // The log shows the start-up sweep came first, and the first sweep ever
    // recorded deleted nothing (it ran before the event expired).
    let store = env.open();
    let all: Vec<SweepRecord> = audit::records(&store)
        .unwrap()
        .into_iter()
        .filter_map(|(_, r)| match r {
            AuditRecord::Sweep(s) => Some(s),
            AuditRecord::Settings(_) => None,
        })
        .collect();
    assert!(
        all[0].started_ms < expires,
        "the server took more than 20 s to start: {:?}",
        all[0]
    );
    assert_eq!(all[0].events_deleted, 0, "{:?}", all[0]);
    assert_eq!(all.iter().map(|s| s.events_deleted).sum::<u64>(), 1);
}

#[test]
fn sweep_missed_compares_the_last_sweep_with_the_last_scheduled_time() {
    let env = Env::new("sweep_schedule = \"0 30 3 * * *\"");
    let store = env.open();
    let schedule = env.config.retention.sweep_schedule.clone();
    let now: DateTime<Utc> = "2026-11-05T12:00:00Z".parse().unwrap();
    let slot: DateTime<Utc> = "2026-11-05T03:30:00Z".parse().unwrap();
    let slot = slot.timestamp_millis();
    assert!(sweep_missed(&store, &schedule, now).unwrap(), "never swept");
    audit::append(&store, &sweep_record(slot - DAY)).unwrap();
    assert!(
        sweep_missed(&store, &schedule, now).unwrap(),
        "last sweep was yesterday's: today's 03:30 was missed"
    );
    audit::append(&store, &sweep_record(slot - 1)).unwrap();
    assert!(sweep_missed(&store, &schedule, now).unwrap(), "1 ms early");
    audit::append(&store, &sweep_record(slot)).unwrap();
    assert!(!sweep_missed(&store, &schedule, now).unwrap(), "on time");
    audit::append(&store, &sweep_record(now.timestamp_millis() - 60_000)).unwrap();
    assert!(!sweep_missed(&store, &schedule, now).unwrap(), "recent");
    // Settings records in between do not count as sweeps.
    audit::record_settings(&store, &env.config, now).unwrap();
    assert!(!sweep_missed(&store, &schedule, now).unwrap());
}

#[test]
fn a_sweep_missed_while_down_runs_once_at_start_up() {
    let env = Env::new(&format!("sweep_schedule = \"{YEARLY}\""));
    let now = Utc::now().timestamp_millis();
    // The last sweep ran before this year's scheduled time.
    env.seed(
        vec![event(now - 100 * DAY, 1), event(now - DAY, 2)],
        vec![sweep_record(now - 400 * DAY)],
    );
    let mut server = env.start();
    let check = wait_for_startup_check(&server);
    assert!(check.contains("missed=true"), "{check}");
    let view = wait_for("the start-up sweep", Duration::from_secs(60), || {
        let v = audit_json(&server);
        (v["last_sweeps"][0]["outcome"] == "ok" && v["last_sweeps"].as_array()?.len() == 2)
            .then_some(v)
    });
    assert_eq!(view["last_sweeps"][0]["events_deleted"], 1, "{view}");
    assert_eq!(view["raw_events"], 1);
    // One sweep, not one per missed slot: after the server stopped, the
    // store holds the seeded sweep and this one only.
    server.stop();
    assert_eq!(env.sweeps_on_record(), 2);
    assert_eq!(env.open().event_count().unwrap(), 1);
    assert_eq!(server.log().matches("start-up sweep check").count(), 1);
}

#[test]
fn a_recent_sweep_is_not_repeated_at_start_up() {
    let env = Env::new(&format!("sweep_schedule = \"{YEARLY}\""));
    let now = Utc::now().timestamp_millis();
    env.seed(
        vec![event(now - 100 * DAY, 1)],
        vec![sweep_record(now - 60_000)],
    );
    let mut server = env.start();
    let check = wait_for_startup_check(&server);
    assert!(check.contains("missed=false"), "{check}");
    let view = audit_json(&server);
    server.stop();
    assert_eq!(view["last_sweeps"].as_array().unwrap().len(), 1, "{view}");
    assert_eq!(view["raw_events"], 1, "nothing was swept: {view}");
    // nor later, until the server stopped
    assert_eq!(env.sweeps_on_record(), 1);
    assert_eq!(env.open().event_count().unwrap(), 1);
}

#[test]
fn sweep_endpoint_runs_one_sweep_now_for_the_admin_only() {
    let env = Env::new(&format!("sweep_schedule = \"{YEARLY}\""));
    let now = Utc::now().timestamp_millis();
    let (a, b) = (now - 100 * DAY, now - 95 * DAY);
    env.seed(
        vec![event(a, 1), event(b, 2), event(now - DAY, 3)],
        vec![sweep_record(now - 60_000)],
    );
    let mut server = env.start();
    wait_for_startup_check(&server);
    let c = client();
    let post = |q: &str, token: Option<&str>, body: &str| {
        let mut r = c.post(server.url(&format!("/api/v1/sweep{q}")));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let res = r.body(body.to_string()).send().unwrap();
        let status = res.status().as_u16();
        let www = res.headers().get("www-authenticate").is_some();
        let json: Value = res.json().unwrap();
        (status, json, www)
    };

    let (s, j, www) = post("", None, "");
    assert_eq!((s, www), (401, true), "{j}");
    assert!(j["error"].is_string());
    assert_eq!(post("", Some("not-a-token-0123456789"), "").0, 401);
    let (s, j, _) = post("", Some(SITE_TOKEN), "");
    assert_eq!(s, 403, "a site token may not sweep: {j}");
    assert_eq!(post("?dry_run=true", Some(SITE_TOKEN), "").0, 403);
    for (q, body) in [
        ("?dry_run=maybe", ""),
        ("?dryrun=true", ""),
        ("?dry_run=true&dry_run=false", ""),
        ("", "dry_run=true"),
    ] {
        let (s, j, _) = post(q, Some(ADMIN_TOKEN), body);
        assert_eq!(s, 400, "{q} {body}: {j}");
        assert!(j["error"].as_str().unwrap().contains("dry_run"), "{j}");
    }
    let untouched = audit_json(&server);
    assert_eq!(untouched["raw_events"], 3, "refused requests swept");
    assert_eq!(untouched["last_sweeps"].as_array().unwrap().len(), 1);

    let (s, dry, _) = post("?dry_run=true", Some(ADMIN_TOKEN), "");
    assert_eq!(s, 200, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["events_deleted"], 2, "{dry}");
    assert_eq!(
        dry["partitions_dropped"],
        serde_json::json!([day(a).to_string(), day(b).to_string()])
    );
    let after_dry = audit_json(&server);
    assert_eq!(after_dry["raw_events"], 3, "a dry run deletes nothing");
    assert_eq!(after_dry["last_sweeps"].as_array().unwrap().len(), 1);

    let (s, real, _) = post("?dry_run=false", Some(ADMIN_TOKEN), "");
    assert_eq!(s, 200, "{real}");
    assert_eq!(real["dry_run"], false);
    assert_eq!(real["events_deleted"], 2, "{real}");
    let view = audit_json(&server);
    assert_eq!(view["raw_events"], 1, "{view}");
    assert_eq!(view["verification"]["ok"], true, "{view}");
    let last = &view["last_sweeps"][0];
    assert_eq!(last["outcome"], "ok");
    assert_eq!(last["events_deleted"], 2);
    assert_eq!(last["cutoff_ms"], real["cutoff_ms"]);
    assert_eq!(view["last_sweeps"].as_array().unwrap().len(), 2);

    // Ingest is unaffected, and a second sweep finds nothing more.
    let hit = c
        .get(server.url("/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2Fnew"))
        .header("User-Agent", CHROME_UA)
        .send()
        .unwrap();
    assert_eq!(hit.status(), 200);
    let (s, again, _) = post("", Some(ADMIN_TOKEN), "");
    assert_eq!((s, again["events_deleted"].as_i64()), (200, Some(0)));
    server.stop();
}

/// The lines of `out` starting with `label`, with the label cut off.
fn field<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no line {label:?} in:\n{out}"))
        .trim()
}

#[test]
fn cli_dry_run_and_audit_text_describe_a_known_store() {
    let env = Env::new("raw_days = 90\nsweep_schedule = \"0 30 3 * * *\"");
    let schedule = env.config.retention.sweep_schedule.clone();
    let now = Utc::now().timestamp_millis();
    let hour = 3_600_000;
    let (a, b, c, d, e, f) = (
        now - 100 * DAY,
        now - 95 * DAY,
        now - 90 * DAY - hour, // just outside
        now - 90 * DAY + hour, // just inside
        now - 10 * DAY,
        now - hour,
    );
    env.seed(
        vec![
            event(a, 1),
            event(b, 2),
            event(c, 3),
            event(d, 4),
            event(e, 5),
            event(f, 6),
        ],
        vec![],
    );

    let before = Utc::now();
    let (code, out, err) = env.cli(&["sweep", "--dry-run"]);
    let after = Utc::now();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("dry run: nothing was deleted\n"), "{out}");
    let cutoff_text = field(&out, "cutoff:").split(' ').next().unwrap();
    let cutoff: DateTime<Utc> = cutoff_text.parse().unwrap();
    let cutoff_ms = cutoff.timestamp_millis();
    assert!(
        before.timestamp_millis() - 90 * DAY - 1000 <= cutoff_ms
            && cutoff_ms <= after.timestamp_millis() - 90 * DAY,
        "{out}"
    );
    assert!(field(&out, "cutoff:").contains("retention.raw_days = 90"));
    assert_eq!(field(&out, "raw events:"), "would delete 3", "{out}");
    // Days before the cutoff's day go whole; the cutoff's day is trimmed.
    let cut_day = cutoff.date_naive();
    let mut whole: Vec<String> = [a, b, c]
        .iter()
        .filter(|t| day(**t) < cut_day)
        .map(|t| day(*t).to_string())
        .collect();
    whole.dedup();
    assert_eq!(
        field(&out, "days:"),
        format!("{} would be deleted whole", whole.join(", ")),
        "{out}"
    );
    if day(c) == cut_day {
        assert_eq!(
            field(&out, "boundary:"),
            format!("{cut_day} would be trimmed at the cutoff")
        );
    } else {
        assert!(!out.contains("boundary:"), "{out}");
    }
    assert_eq!(field(&out, "roll-ups:"), "kept (retention.rollup_days = 0)");
    assert_eq!(
        field(&out, "free text:"),
        format!(
            "would cut 0 roll-up values of days before {cut_day} (search terms, URL queries); none kept (retention.free_text_min_visitors = 0)"
        ),
        "{out}"
    );
    let store = env.open();
    assert_eq!(store.event_count().unwrap(), 6, "a dry run deletes nothing");
    assert!(audit::last_sweeps(&store, 5).unwrap().is_empty());
    drop(store);

    let before = Utc::now();
    let (code, text, err) = env.cli(&["audit"]);
    let after = Utc::now();
    assert_eq!(code, 2, "two events are past the rule: {text}{err}");
    assert!(err.contains("audit verification FAILED"), "{err}");
    assert_eq!(
        field(&text, "retention:"),
        "raw events 90 days, roll-ups kept; schedule \"0 30 3 * * *\""
    );
    assert_eq!(
        field(&text, "address masks:"),
        "IPv4 /16 (e.g. 181.153.xxx.xxx), IPv6 /32 (e.g. 2001:db8:xxxx…)"
    );
    assert_eq!(field(&text, "cookies:"), "none for tracking");
    assert!(text.contains(
        "opt-out cookie \"sparsam_optout\" (400 days) on the collector's host, set only by POST /optout"
    ));
    assert!(text.contains(
        "opt-out cookie \"sparsam_optout\" (400 days) on the website's domain, set only by the tracker's sparsam.optOut()"
    ));
    assert!(text.contains("since start-up: not observed (no server running)"));
    assert_eq!(field(&text, "raw events:"), "6");
    let iso = |t: i64| {
        Utc.timestamp_millis_opt(t)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    assert_eq!(field(&text, "oldest:"), iso(a));
    assert_eq!(
        field(&text, "by age:"),
        "0-7d 1  8-30d 1  31-60d 0  61-90d 2  >90d 2"
    );
    let next = field(&text, "next sweep:");
    let expected: Vec<String> = [before, after]
        .iter()
        .map(|t| {
            schedule
                .after(t)
                .next()
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .collect();
    assert!(expected.iter().any(|e| e == next), "{next} vs {expected:?}");
    assert!(text.contains("last sweeps:\n  (none)\n"), "{text}");
    assert_eq!(
        field(&text, "verification:"),
        "FAILED (6 events checked, 0 address violations, 2 too old, 0 undecodable, 0 free-text values too old)"
    );
    assert!(
        field(&text, "free text:").starts_with(
            "free text (search terms, query-parameter values, full referrer URLs) is deleted"
        ),
        "{text}"
    );
    assert!(text.contains("  dims_sealed "), "{text}");
    assert!(field(&text, "first offender:").contains("older than allowed"));

    let (code, out, err) = env.cli(&["sweep"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("dry run"), "{out}");
    assert_eq!(field(&out, "raw events:"), "deleted 3", "{out}");
    let (code, text, err) = env.cli(&["audit"]);
    assert_eq!(code, 0, "{text}{err}");
    assert_eq!(field(&text, "raw events:"), "3");
    assert_eq!(field(&text, "oldest:"), iso(d));
    assert_eq!(
        field(&text, "by age:"),
        "0-7d 1  8-30d 1  31-60d 0  61-90d 1  >90d 0"
    );
    let sweep_line = text
        .lines()
        .skip_while(|l| !l.starts_with("last sweeps:"))
        .nth(1)
        .unwrap();
    assert!(
        sweep_line.contains("partitions, 3 events, 0 roll-up rows") && sweep_line.ends_with(" ok"),
        "{sweep_line}"
    );
    assert_eq!(
        field(&text, "verification:"),
        "OK (3 events checked, 0 address violations, 0 too old, 0 undecodable, 0 free-text values too old)"
    );
}

#[test]
fn next_sweep_follows_the_schedule() {
    let thursday: DateTime<Utc> = "2026-11-05T12:00:00Z".parse().unwrap();
    let early: DateTime<Utc> = "2026-11-05T02:00:00Z".parse().unwrap();
    for (schedule, now, next) in [
        ("0 30 3 * * *", thursday, Some("2026-11-06T03:30:00Z")),
        ("0 30 3 * * *", early, Some("2026-11-05T03:30:00Z")),
        ("0 0 4 * * Mon", thursday, Some("2026-11-09T04:00:00Z")),
        ("0 15 */6 * * *", thursday, Some("2026-11-05T12:15:00Z")),
        // Only times in the past: no next sweep.
        ("0 0 0 1 1 * 2020", thursday, None),
    ] {
        let env = Env::new(&format!("sweep_schedule = \"{schedule}\""));
        let store = env.open();
        let view = audit::audit_view(&store, &env.config, now).unwrap();
        assert_eq!(view.next_sweep.as_deref(), next, "{schedule}");
        let text = audit::render_text(&view);
        assert!(
            text.contains(&format!("next sweep:     {}\n", next.unwrap_or("-"))),
            "{text}"
        );
    }
}

#[test]
fn audit_cookies_come_from_the_config_and_the_running_server() {
    let env = Env::new(&format!("sweep_schedule = \"{YEARLY}\""));
    let text = env.text.replace(
        "[privacy]\n",
        "[privacy]\noptout_cookie = \"no_stats\"\noptout_cookie_days = 30\n",
    );
    std::fs::write(env.config_path(), &text).unwrap();
    let mut server = Server::start_config(env.dir.path(), &text);
    let v = audit_json(&server);
    server.stop();
    let c = &v["cookies"];
    assert_eq!(c["tracking_cookies"], false, "{c}");
    assert_eq!(c["optout_cookie"], "no_stats");
    assert_eq!(c["optout_cookie_days"], 30);
    assert_eq!(c["tracker_optout_cookies"][0]["name"], "sparsam_optout");
    assert_eq!(c["tracker_optout_cookies"][0]["days"], 400);
    assert_eq!(c["tracker_other_cookies"], serde_json::json!([]));
    assert_eq!(c["unexpected_set_cookie_responses"], 0, "{c}");

    // Without a server, nothing was observed, and the view says so.
    let (code, out, err) = env.cli(&["audit", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let cli: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        cli["cookies"]["unexpected_set_cookie_responses"],
        Value::Null
    );
    assert_eq!(cli["cookies"]["optout_cookie"], "no_stats");
    // The settings record written at start-up agrees.
    let store = env.open();
    let settings = audit::records(&store)
        .unwrap()
        .into_iter()
        .find_map(|(_, r)| match r {
            AuditRecord::Settings(s) => Some(s),
            AuditRecord::Sweep(_) => None,
        })
        .unwrap();
    assert!(!settings.settings.tracking_cookies);
    assert_eq!(settings.settings.optout_cookie, "no_stats");
}
