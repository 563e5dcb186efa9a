//! The reporting API against the real binary: tokens, summary, time
//! series, breakdowns, filters, realtime, CSV and errors over known data
//! (hits sent today plus a generated workload of past days written through
//! the store's writer, whose ledger says what every report must answer);
//! comparison with the previous period for summary, time series and
//! breakdowns; and agreement of roll-up answers with raw-scan answers for
//! every report shape.

#[path = "report_support/mod.rs"]
mod support;

use std::collections::BTreeMap;

use chrono::{Datelike, Duration, NaiveDate};
use chrono_tz::Tz;
use serde_json::Value;
use support::workload::{today, Day, Ledger, Rows, DIMS};
use support::*;

/// A filter every event passes: turns any report into a raw scan.
const ALL: &str = "filter=device_type%21%3Dno-such-value";
/// Filters every event passes too, but on the visit's entry and exit page:
/// a raw scan has to hold events back until those are known.
const ALL_BY_VISIT: [&str; 2] = [
    "filter=entry_page%21%3Dno-such-value",
    "filter=exit_page%21%3Dno-such-value",
];

fn berlin() -> Tz {
    "Europe/Berlin".parse().unwrap()
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("`{k}` is not a count in {v}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

const COUNTS: [&str; 6] = [
    "pageviews",
    "visits",
    "visitors",
    "downloads",
    "outbound",
    "searches",
];

/// Differences between a summary (or its `compare` part) and the ledger.
fn summary_diffs(what: &str, v: &Value, want: &Day) -> Vec<String> {
    let mut out = vec![];
    let wants = [
        want.pageviews,
        want.visits,
        want.visitors,
        want.downloads,
        want.outbound,
        want.searches,
    ];
    for (k, w) in COUNTS.iter().zip(wants) {
        if v[k].as_u64() != Some(w) {
            out.push(format!("{what}: {k} is {} but should be {w}", v[k]));
        }
    }
    for (k, w) in [
        ("views_per_visit", want.views_per_visit()),
        ("bounce_rate", want.bounce_rate()),
        ("avg_dwell_seconds", want.avg_dwell_seconds()),
    ] {
        if !v[k].as_f64().is_some_and(|x| close(x, w)) {
            out.push(format!("{what}: {k} is {} but should be {w}", v[k]));
        }
    }
    out
}

/// Differences between a time-series bucket and the ledger's counts.
fn bucket_diffs(what: &str, b: &Value, want: &Day) -> Vec<String> {
    let mut out = vec![];
    for (k, w) in [
        ("pageviews", want.pageviews),
        ("visits", want.visits),
        ("visitors", want.visitors),
        ("bounces", want.bounces),
        ("downloads", want.downloads),
        ("outbound", want.outbound),
        ("searches", want.searches),
    ] {
        if b[k].as_u64() != Some(w) {
            out.push(format!("{what}: {k} is {} but should be {w}", b[k]));
        }
    }
    out
}

/// A breakdown's rows as value -> [pageviews, visits, events].
fn rows_of(b: &Value) -> Rows {
    b["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows in {b}"))
        .iter()
        .map(|r| {
            (
                r["value"].as_str().unwrap().to_string(),
                [n(r, "pageviews"), n(r, "visits"), n(r, "events")],
            )
        })
        .collect()
}

/// Readable differences between two row sets (at most 8 lines).
fn rows_diffs(what: &str, left: (&str, &Rows), right: (&str, &Rows)) -> Vec<String> {
    let mut out = vec![];
    let keys: std::collections::BTreeSet<&String> = left.1.keys().chain(right.1.keys()).collect();
    let fmt = |c: Option<&[u64; 3]>| match c {
        Some([p, v, e]) => format!("{p} page views / {v} visits / {e} events"),
        None => "no row".to_string(),
    };
    for k in keys {
        let (a, b) = (left.1.get(k), right.1.get(k));
        if a != b {
            out.push(format!(
                "{what} {k:?}: {} {}, {} {}",
                left.0,
                fmt(a),
                right.0,
                fmt(b)
            ));
        }
    }
    if out.len() > 8 {
        let more = out.len() - 8;
        out.truncate(8);
        out.push(format!("{what}: … and {more} more differing values"));
    }
    out
}

fn metric_index(metric: &str) -> usize {
    match metric {
        "pageviews" => 0,
        "visits" => 1,
        "events" => 2,
        other => panic!("unknown metric {other}"),
    }
}

fn metric_of_dim(dim: &str) -> &'static str {
    match dim {
        "download" | "outbound" | "search_term" | "search_no_results" => "events",
        "entry_page" | "exit_page" => "visits",
        _ => "pageviews",
    }
}

/// Fails with every difference listed (the first 60, and a count per
/// report when there are more).
fn fail_on(diffs: Vec<String>, what: &str) {
    if diffs.is_empty() {
        return;
    }
    let mut per_report: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &diffs {
        *per_report
            .entry(d.split(' ').next().unwrap_or(""))
            .or_default() += 1;
    }
    let shown = diffs.len().min(60);
    panic!(
        "{what}: {} differences ({})\n  {}{}",
        diffs.len(),
        per_report
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        diffs[..shown].join("\n  "),
        if shown < diffs.len() {
            format!("\n  … {} more", diffs.len() - shown)
        } else {
            String::new()
        }
    );
}

#[test]
fn reporting_api_end_to_end() {
    let past = seeded(14, 12, 7);
    let ledger = past.demo;
    let s = Server::start_seeded(past.events);
    seed(&s);
    let today = today(&berlin());

    // --- auth
    assert_eq!(s.get("/api/v1/sites/demo/summary", None).status(), 401);
    assert_eq!(
        s.get(
            "/api/v1/sites/demo/summary",
            Some("wrong-token-xxxxxxxxxxx")
        )
        .status(),
        401
    );
    assert_eq!(
        s.get("/api/v1/sites/demo/summary", Some(OTHER)).status(),
        403
    );
    let sites = s.json("/api/v1/sites", DEMO);
    assert_eq!(sites["sites"].as_array().unwrap().len(), 1);
    assert_eq!(
        s.json("/api/v1/sites", ADMIN)["sites"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // --- summary (roll-ups)
    let sum = s.json(
        "/api/v1/sites/demo/summary?period=today&compare=previous",
        DEMO,
    );
    assert_eq!(sum["source"], "rollup");
    assert_eq!(sum["pageviews"], 4, "{sum}");
    assert_eq!(sum["visits"], 2);
    assert_eq!(sum["visitors"], 2);
    assert_eq!(sum["downloads"], 1);
    assert_eq!(sum["outbound"], 1);
    assert_eq!(sum["searches"], 2);
    assert_eq!(sum["bounce_rate"], 0.5);
    // the previous period of today is yesterday, known from the ledger
    let yesterday = today - Duration::days(1);
    assert_eq!(sum["compare"]["from"], yesterday.to_string());
    assert!(ledger.totals(yesterday, yesterday).pageviews > 0);
    fail_on(
        summary_diffs(
            "today's compare",
            &sum["compare"],
            &ledger.totals(yesterday, yesterday),
        ),
        "summary compare",
    );

    // --- the same numbers from a raw scan with a filter that keeps all
    let all = s.json(
        "/api/v1/sites/demo/summary?filter=page%3D~example.org",
        DEMO,
    );
    assert_eq!(all["source"], "raw");
    for k in [
        "pageviews",
        "visits",
        "visitors",
        "downloads",
        "outbound",
        "searches",
        "bounce_rate",
    ] {
        assert_eq!(all[k], sum[k], "{k}: raw {all} vs rollup {sum}");
    }

    // --- filters narrow
    let fx = s.json(
        "/api/v1/sites/demo/summary?filter=browser%3D%3DFirefox",
        DEMO,
    );
    assert_eq!(fx["pageviews"], 3, "{fx}");
    assert_eq!(fx["visits"], 1);
    let not_fx = s.json(
        "/api/v1/sites/demo/summary?filter=browser!%3DFirefox&filter=device_type%3D%3Dsmartphone",
        DEMO,
    );
    assert_eq!(not_fx["pageviews"], 1, "{not_fx}");

    // --- timeseries: hourly buckets for one day, empty ones included
    let ts = s.json(
        "/api/v1/sites/demo/timeseries?period=today&interval=hour",
        DEMO,
    );
    let b = ts["buckets"].as_array().unwrap();
    assert!(b.len() >= 23 && b.len() <= 25, "{}", b.len());
    let pv: u64 = b.iter().map(|x| x["pageviews"].as_u64().unwrap()).sum();
    assert_eq!(pv, 4);
    let ts = s.json("/api/v1/sites/demo/timeseries?period=7d&interval=day", DEMO);
    assert_eq!(ts["buckets"].as_array().unwrap().len(), 7);
    let ts = s.json(
        "/api/v1/sites/demo/timeseries?period=year&interval=month&filter=browser%3D%3DFirefox",
        DEMO,
    );
    let pv: u64 = ts["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["pageviews"].as_u64().unwrap())
        .sum();
    // today's three Firefox page views plus the past days of this year
    let jan1 = today.with_ordinal(1).unwrap();
    let past_fx = if today > jan1 {
        ledger
            .rows("browser", jan1.max(today - Duration::days(14)), yesterday)
            .get("Firefox")
            .map_or(0, |c| c[0])
    } else {
        0
    };
    assert_eq!(pv, 3 + past_fx);

    // --- every dimension has known values in the past fortnight
    let (from, to) = (today - Duration::days(14), yesterday);
    for dim in DIMS.iter().copied().chain(["search_no_results"]) {
        let want = ledger.rows(dim, from, to);
        let least = if dim == "search_no_results" { 1 } else { 2 };
        assert!(
            want.len() >= least,
            "the workload should give {dim} at least {least} values: {want:?}"
        );
        for q in ["", "&filter=page%3D~example.org"] {
            let b = s.json(
                &format!("/api/v1/sites/demo/breakdown/{dim}?from={from}&to={to}&limit=1000{q}"),
                DEMO,
            );
            let metric = b["metric"].as_str().unwrap();
            assert_eq!(metric, metric_of_dim(dim), "{dim}");
            // every generated event happens on an example.org page, so
            // the filtered (raw) answer must be the same
            let want_here = &want;
            fail_on(
                rows_diffs(dim, ("API", &rows_of(&b)), ("ledger", want_here)),
                &format!("breakdown/{dim}{q}"),
            );
            let i = metric_index(metric);
            let total: u64 = want_here.values().map(|c| c[i]).sum();
            assert_eq!(n(&b, "total"), total, "{dim} total");
            assert_eq!(n(&b, "total_rows"), want_here.len() as u64, "{dim} rows");
            let rows = b["rows"].as_array().unwrap();
            let vals: Vec<u64> = rows.iter().map(|r| r[metric].as_u64().unwrap()).collect();
            assert!(
                vals.windows(2).all(|w| w[0] >= w[1]),
                "{dim} not sorted: {b}"
            );
            for r in rows {
                let share = r["share"].as_f64().unwrap();
                let want_share = n(r, metric) as f64 / total as f64;
                assert!(close(share, want_share), "{dim} share {r}");
            }
        }
    }

    // --- today's hits (sent over HTTP) in the breakdowns
    for (dim, value, count) in [
        ("page", "https://example.org/", 2),
        ("title", "Home", 2),
        ("title", HOSTILE, 1),
        ("browser", "Firefox", 3),
        ("device_type", "smartphone", 1),
        ("download", "https://example.org/guide.pdf", 1),
        ("outbound", "https://elsewhere.example/", 1),
        ("search_term", HOSTILE, 1),
        ("search_engine", "Google", 3),
        ("referrer_type", "search", 3),
        ("entry_page", "https://example.org/", 2),
    ] {
        let b = s.json(
            &format!("/api/v1/sites/demo/breakdown/{dim}?period=today&limit=1000"),
            DEMO,
        );
        let metric = b["metric"].as_str().unwrap();
        let got = rows_of(&b).get(value).map(|c| c[metric_index(metric)]);
        assert_eq!(got, Some(count), "{dim} {value:?} today: {b}");
    }
    let pages = s.json("/api/v1/sites/demo/breakdown/page?period=today", DEMO);
    assert_eq!(pages["rows"][0]["value"], "https://example.org/");
    assert_eq!(pages["rows"][0]["pageviews"], 2);
    assert_eq!(pages["total"], 4);
    let page2 = s.json("/api/v1/sites/demo/breakdown/page?limit=1&offset=1", DEMO);
    assert_eq!(page2["rows"].as_array().unwrap().len(), 1);
    assert_eq!(page2["total_rows"], 3);
    let terms = s.json("/api/v1/sites/demo/breakdown/search_term", DEMO);
    assert!(
        terms["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["value"] == HOSTILE),
        "{terms}"
    );
    let none = s.json("/api/v1/sites/demo/breakdown/search_no_results", DEMO);
    assert_eq!(none["source"], "raw");
    assert_eq!(none["rows"].as_array().unwrap().len(), 1, "{none}");
    assert_eq!(none["rows"][0]["value"], "+no such thing");
    let csv = s
        .get(
            "/api/v1/sites/demo/breakdown/search_no_results?format=csv",
            Some(DEMO),
        )
        .text()
        .unwrap();
    assert!(csv.contains("'+no such thing"), "{csv}");
    let filtered = s.json(
        "/api/v1/sites/demo/breakdown/page?filter=device_type%3D%3Dsmartphone",
        DEMO,
    );
    assert_eq!(filtered["rows"].as_array().unwrap().len(), 1);

    // --- realtime
    let rt = s.json("/api/v1/sites/demo/realtime", DEMO);
    assert_eq!(rt["visitors"], 2);
    assert_eq!(rt["pageviews"], 4);
    let rt = s.json(
        "/api/v1/sites/demo/realtime?filter=browser%3D%3DFirefox",
        DEMO,
    );
    assert_eq!(rt["visitors"], 1);

    // --- CSV, both ways, with formulas neutralised
    let csv = s.get("/api/v1/sites/demo/breakdown/title?format=csv", Some(DEMO));
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let body = csv.text().unwrap();
    assert!(
        body.starts_with("title,pageviews,visits,events,share\r\n"),
        "{body}"
    );
    assert!(body.contains("'=cmd|"), "{body}");
    assert!(!body.contains(",=cmd"), "{body}");
    let res = reqwest::blocking::Client::new()
        .get(s.url("/api/v1/sites/demo/timeseries?period=7d"))
        .bearer_auth(DEMO)
        .header("accept", "text/csv")
        .send()
        .unwrap();
    assert_eq!(res.text().unwrap().lines().count(), 8);
    for p in ["summary", "realtime"] {
        let r = s.get(&format!("/api/v1/sites/demo/{p}?format=csv"), Some(DEMO));
        assert_eq!(r.status(), 200);
        assert!(r.text().unwrap().contains("pageviews"));
    }

    // --- errors say what to fix
    let err = |path: &str| {
        let r = s.get(path, Some(DEMO));
        assert_eq!(r.status(), 400, "{path}");
        let v: serde_json::Value = r.json().unwrap();
        v["error"].as_str().unwrap().to_string()
    };
    assert!(err("/api/v1/sites/demo/breakdown/pages").contains("entry_page"));
    assert!(err("/api/v1/sites/demo/summary?filter=page").contains("DIMENSION==VALUE"));
    assert!(err("/api/v1/sites/demo/summary?filter=nope%3D%3Dx").contains("valid dimensions"));
    assert!(err("/api/v1/sites/demo/summary?period=forever").contains("7d"));
    assert!(err("/api/v1/sites/demo/timeseries?interval=minute").contains("hour, day"));
    assert!(err("/api/v1/sites/demo/breakdown/page?limit=x").contains("limit"));
    assert!(err("/api/v1/sites/demo/summary?fliter=x").contains("known parameters"));
    assert_eq!(
        s.get("/api/v1/sites/nope/summary", Some(ADMIN)).status(),
        404
    );

    // --- the audit view needs the admin token, and says so
    let r = s.get("/api/v1/audit", Some(DEMO));
    assert_eq!(r.status(), 403);
    let msg = r.json::<Value>().unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("needs the admin token"), "{msg}");
    assert!(!msg.contains("may not read site"), "{msg}");
}

/// Ledger counts of the days `from..=to`, grouped the way the comparison
/// groups them: bucket boundaries come from the current range
/// (`starts(day)` opens a new bucket), the counts from the same days
/// shifted back by `shift` days.
fn shifted_groups(
    ledger: &Ledger,
    from: NaiveDate,
    to: NaiveDate,
    shift: i64,
    starts: impl Fn(NaiveDate) -> bool,
) -> Vec<Day> {
    let mut out: Vec<Day> = vec![];
    let mut d = from;
    while d <= to {
        if out.is_empty() || starts(d) {
            out.push(Day::default());
        }
        let back = d - Duration::days(shift);
        out.last_mut().unwrap().add(&ledger.totals(back, back));
        d += Duration::days(1);
    }
    out
}

fn bucket_sum(buckets: &[Value]) -> BTreeMap<&'static str, u64> {
    let mut m = BTreeMap::new();
    for k in [
        "pageviews",
        "visits",
        "visitors",
        "bounces",
        "downloads",
        "outbound",
        "searches",
    ] {
        m.insert(k, buckets.iter().map(|b| n(b, k)).sum());
    }
    m
}

#[test]
fn compare_with_the_previous_period() {
    let past = seeded(14, 12, 11);
    let ledger = past.demo;
    let s = Server::start_seeded(past.events);
    let today = today(&berlin());
    let day = |back: i64| today - Duration::days(back);
    let (cf, ct, pf, pt) = (day(7), day(1), day(14), day(8));
    let (now_t, before_t) = (ledger.totals(cf, ct), ledger.totals(pf, pt));
    assert!(
        before_t.visits > 20 && before_t.dwell_ms_sum > 0 && before_t.bounces > 0,
        "the previous week must hold data: {before_t:?}"
    );
    assert_ne!(now_t, before_t, "the two weeks should differ");

    // --- summary: roll-ups, and a filtered (raw) one
    let sum = s.json(
        &format!("/api/v1/sites/demo/summary?from={cf}&to={ct}&compare=previous"),
        DEMO,
    );
    assert_eq!(sum["compare"]["from"], pf.to_string());
    assert_eq!(sum["compare"]["to"], pt.to_string());
    let mut diffs = summary_diffs("current week", &sum, &now_t);
    diffs.extend(summary_diffs("previous week", &sum["compare"], &before_t));
    fail_on(diffs, "summary?compare=previous");
    let fx = "filter=browser%3D%3DFirefox";
    let sum_fx = s.json(
        &format!("/api/v1/sites/demo/summary?from={cf}&to={ct}&compare=previous&{fx}"),
        DEMO,
    );
    assert_eq!(sum_fx["source"], "raw");
    let fx_before = ledger.rows("browser", pf, pt)["Firefox"];
    assert_eq!(n(&sum_fx["compare"], "pageviews"), fx_before[0]);
    assert_eq!(n(&sum_fx["compare"], "visits"), fx_before[1]);
    let direct = s.json(
        &format!("/api/v1/sites/demo/summary?from={pf}&to={pt}&{fx}"),
        DEMO,
    );
    for k in COUNTS {
        assert_eq!(sum_fx["compare"][k], direct[k], "filtered compare {k}");
    }
    let plain = s.json(
        &format!("/api/v1/sites/demo/summary?from={cf}&to={ct}"),
        DEMO,
    );
    assert!(plain.get("compare").is_none(), "no compare unless asked");

    // --- time series by day: bucket i compares with day i of last week
    let ts = s.json(
        &format!("/api/v1/sites/demo/timeseries?from={cf}&to={ct}&interval=day&compare=previous"),
        DEMO,
    );
    assert_eq!(ts["compare"]["from"], pf.to_string());
    let (cur, prev) = (
        ts["buckets"].as_array().unwrap(),
        ts["compare"]["buckets"].as_array().unwrap(),
    );
    assert_eq!((cur.len(), prev.len()), (7, 7), "{ts}");
    let mut diffs = vec![];
    for i in 0..7 {
        let (c, p) = (cf + Duration::days(i), pf + Duration::days(i));
        for (b, d) in [(&cur[i as usize], c), (&prev[i as usize], p)] {
            assert!(
                b["start"].as_str().unwrap().starts_with(&d.to_string()),
                "bucket {i} should start on {d}: {b}"
            );
            diffs.extend(bucket_diffs(&format!("day {d}"), b, &ledger.totals(d, d)));
        }
    }
    fail_on(diffs, "timeseries?interval=day&compare=previous");

    // --- weeks and months over a 10-day range: equally long stretches
    let (wf, wt) = (day(10), day(1));
    for (interval, starts) in [
        (
            "week",
            Box::new(|d: NaiveDate| d.weekday() == chrono::Weekday::Mon)
                as Box<dyn Fn(NaiveDate) -> bool>,
        ),
        ("month", Box::new(|d: NaiveDate| d.day() == 1)),
    ] {
        let ts = s.json(
            &format!(
                "/api/v1/sites/demo/timeseries?from={wf}&to={wt}&interval={interval}&compare=previous"
            ),
            DEMO,
        );
        let cur = ts["buckets"].as_array().unwrap();
        let prev = ts["compare"]["buckets"].as_array().unwrap();
        let want_cur = shifted_groups(&ledger, wf, wt, 0, &starts);
        let want_prev = shifted_groups(&ledger, wf, wt, 10, &starts);
        assert_eq!(cur.len(), want_cur.len(), "{interval}: {ts}");
        assert_eq!(prev.len(), cur.len(), "{interval}: {ts}");
        let mut diffs = vec![];
        for i in 0..cur.len() {
            diffs.extend(bucket_diffs(
                &format!("{interval} {i}"),
                &cur[i],
                &want_cur[i],
            ));
            diffs.extend(bucket_diffs(
                &format!("previous {interval} {i}"),
                &prev[i],
                &want_prev[i],
            ));
        }
        // the first comparison bucket starts where the previous period does
        assert!(
            prev[0]["start"]
                .as_str()
                .unwrap()
                .starts_with(&(wf - Duration::days(10)).to_string()),
            "{interval}: {}",
            prev[0]
        );
        fail_on(
            diffs,
            &format!("timeseries?interval={interval}&compare=previous"),
        );
    }

    // --- hours: the i-th hour of each period; totals kept across DST
    let ts = s.json(
        &format!(
            "/api/v1/sites/demo/timeseries?from={}&to={}&interval=hour&compare=previous",
            day(2),
            day(1)
        ),
        DEMO,
    );
    let direct = s.json(
        &format!(
            "/api/v1/sites/demo/timeseries?from={}&to={}&interval=hour",
            day(4),
            day(3)
        ),
        DEMO,
    );
    let (cur, prev, before) = (
        ts["buckets"].as_array().unwrap(),
        ts["compare"]["buckets"].as_array().unwrap(),
        direct["buckets"].as_array().unwrap(),
    );
    assert_eq!(prev.len(), cur.len());
    let last = cur.len() - 1;
    for i in 0..last.min(before.len()) {
        assert_eq!(prev[i], before[i], "hour {i}");
    }
    assert_eq!(
        bucket_sum(prev),
        bucket_sum(before),
        "the comparison keeps every count of the previous period"
    );
    let want = ledger.totals(day(4), day(3));
    assert_eq!(bucket_sum(prev)["pageviews"], want.pageviews);
    assert_eq!(bucket_sum(prev)["visits"], want.visits);

    // --- breakdowns: every row gets last week's counters and the change
    let mut with_previous = 0;
    for dim in DIMS.iter().copied().chain(["search_no_results"]) {
        let b = s.json(
            &format!(
                "/api/v1/sites/demo/breakdown/{dim}?from={cf}&to={ct}&limit=1000&compare=previous"
            ),
            DEMO,
        );
        let metric = b["metric"].as_str().unwrap();
        let mi = metric_index(metric);
        let (now_rows, before_rows) = (ledger.rows(dim, cf, ct), ledger.rows(dim, pf, pt));
        fail_on(
            rows_diffs(dim, ("API", &rows_of(&b)), ("ledger", &now_rows)),
            &format!("breakdown/{dim} current rows"),
        );
        let before_total: u64 = before_rows.values().map(|c| c[mi]).sum();
        assert_eq!(b["compare"]["from"], pf.to_string());
        assert_eq!(
            n(&b["compare"], "total"),
            before_total,
            "{dim} previous total"
        );
        assert_eq!(
            n(&b["compare"], "total_rows"),
            before_rows.len() as u64,
            "{dim} previous rows"
        );
        let mut diffs = vec![];
        for r in b["rows"].as_array().unwrap() {
            let value = r["value"].as_str().unwrap();
            let then = before_rows.get(value).copied().unwrap_or_default();
            let p = &r["previous"];
            let got = [n(p, "pageviews"), n(p, "visits"), n(p, "events")];
            if got != then {
                diffs.push(format!("{value:?}: previous {got:?}, ledger {then:?}"));
            }
            let want_share = if before_total > 0 {
                then[mi] as f64 / before_total as f64
            } else {
                0.0
            };
            if !p["share"].as_f64().is_some_and(|x| close(x, want_share)) {
                diffs.push(format!(
                    "{value:?}: previous share {} not {want_share}",
                    p["share"]
                ));
            }
            let now = n(r, metric);
            match (then[mi], r["change"].as_f64()) {
                (0, None) => {}
                (0, Some(c)) => {
                    diffs.push(format!("{value:?}: change {c} without a previous count"))
                }
                (t, c) => {
                    let want = (now as f64 - t as f64) / t as f64;
                    if !c.is_some_and(|c| close(c, want)) {
                        diffs.push(format!("{value:?}: change {c:?}, should be {want}"));
                    }
                    with_previous += 1;
                }
            }
        }
        fail_on(diffs, &format!("breakdown/{dim}?compare=previous"));
    }
    assert!(
        with_previous > 40,
        "only {with_previous} rows had a previous count"
    );

    // a later page still finds its value anywhere in the previous period
    let paged = s.json(
        &format!(
            "/api/v1/sites/demo/breakdown/page?from={cf}&to={ct}&limit=2&offset=3&compare=previous"
        ),
        DEMO,
    );
    let before_pages = ledger.rows("page", pf, pt);
    assert_eq!(paged["rows"].as_array().unwrap().len(), 2, "{paged}");
    for r in paged["rows"].as_array().unwrap() {
        let then = before_pages
            .get(r["value"].as_str().unwrap())
            .copied()
            .unwrap_or_default();
        assert_eq!(n(&r["previous"], "pageviews"), then[0], "{r}");
    }

    // --- CSV carries the comparison columns
    let csv = s
        .get(
            &format!(
                "/api/v1/sites/demo/breakdown/page?from={cf}&to={ct}&compare=previous&format=csv"
            ),
            Some(DEMO),
        )
        .text()
        .unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("page,pageviews,visits,events,share,previous_pageviews,previous_visits,previous_events,previous_share,change")
    );
    let now_pages = ledger.rows("page", cf, ct);
    assert_eq!(
        csv.lines().count() - 1,
        now_pages.len(),
        "one CSV row per page"
    );
    let now_total: u64 = now_pages.values().map(|c| c[0]).sum();
    let before_total: u64 = before_pages.values().map(|c| c[0]).sum();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let (now, then) = (
            now_pages[f[0]],
            before_pages.get(f[0]).copied().unwrap_or_default(),
        );
        let change = if then[0] > 0 {
            format!("{:.4}", (now[0] as f64 - then[0] as f64) / then[0] as f64)
        } else {
            String::new()
        };
        // a negative change starts with '-', which the CSV writer guards
        let change = if change.starts_with('-') {
            format!("'{change}")
        } else {
            change
        };
        assert_eq!(
            f,
            vec![
                f[0].to_string(),
                now[0].to_string(),
                now[1].to_string(),
                now[2].to_string(),
                format!("{:.4}", now[0] as f64 / now_total as f64),
                then[0].to_string(),
                then[1].to_string(),
                then[2].to_string(),
                format!("{:.4}", then[0] as f64 / before_total as f64),
                change,
            ],
            "{line}"
        );
    }
    let csv = s
        .get(
            &format!("/api/v1/sites/demo/timeseries?from={cf}&to={ct}&interval=day&compare=previous&format=csv"),
            Some(DEMO),
        )
        .text()
        .unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 8, "{csv}");
    assert_eq!(rows[0][8], "previous_start");
    assert_eq!(rows[0][9], "previous_visits");
    for (i, r) in rows[1..].iter().enumerate() {
        let p = pf + Duration::days(i as i64);
        assert!(r[8].starts_with(&p.to_string()), "{r:?}");
        assert_eq!(r[9], ledger.totals(p, p).visits.to_string(), "{r:?}");
    }

    // --- unknown values and reports without a period are refused
    let err = |path: &str| {
        let r = s.get(path, Some(DEMO));
        assert_eq!(r.status(), 400, "{path}");
        r.json::<Value>().unwrap()["error"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for p in ["summary", "timeseries", "breakdown/page"] {
        let m = err(&format!("/api/v1/sites/demo/{p}?compare=last_year"));
        assert!(m.contains("compare=previous"), "{p}: {m}");
        assert!(
            !m.contains("last_year"),
            "the value sent is not repeated: {p}: {m}"
        );
        let none = s.json(&format!("/api/v1/sites/demo/{p}?compare=none"), DEMO);
        assert!(none.get("compare").is_none(), "{p}: {none}");
    }
    assert!(err("/api/v1/sites/demo/realtime?compare=previous").contains("realtime"));
    assert!(err("/api/v1/sites?compare=previous").contains("site list"));
    assert!(
        err("/api/v1/sites/demo/summary?from=0001-01-01&to=0001-01-02&compare=previous")
            .contains("previous period")
    );
}

/// One report asked twice: from the roll-ups (no filter) and from a raw
/// scan (a filter every event passes). Returns both answers after checking
/// that each says where it came from.
/// `compare=year`: the same days a year earlier. The range asked for lies a
/// year after the generated week, so the comparison must be exactly that
/// week as the ledger knows it, bucket by bucket, and row by row.
#[test]
fn compare_with_the_same_days_a_year_earlier() {
    let past = seeded(8, 10, 17);
    let ledger = past.demo;
    let s = Server::start_seeded(past.events);
    let today = today(&berlin());
    let (pf, pt) = (today - Duration::days(7), today - Duration::days(1));
    let year_on = |d: NaiveDate| d.checked_add_months(chrono::Months::new(12)).unwrap();
    let (cf, ct) = (year_on(pf), year_on(pf) + Duration::days(6));
    let before = ledger.totals(pf, pt);
    assert!(before.visits > 10, "the generated week must hold data");

    for filter in ["", "&filter=browser%21%3Dno-such-browser"] {
        let sum = s.json(
            &format!("/api/v1/sites/demo/summary?from={cf}&to={ct}&compare=year{filter}"),
            DEMO,
        );
        assert_eq!(sum["compare"]["from"], pf.to_string(), "{sum}");
        assert_eq!(sum["compare"]["to"], pt.to_string(), "{sum}");
        assert_eq!(sum["pageviews"], 0, "nothing happened a year from now");
        fail_on(
            summary_diffs("a year earlier", &sum["compare"], &before),
            &format!("summary?compare=year{filter}"),
        );
    }

    let ts = s.json(
        &format!("/api/v1/sites/demo/timeseries?from={cf}&to={ct}&interval=day&compare=year"),
        DEMO,
    );
    let prev = ts["compare"]["buckets"].as_array().unwrap();
    assert_eq!(prev.len(), 7, "{ts}");
    let mut diffs = vec![];
    for (i, b) in prev.iter().enumerate() {
        let d = pf + Duration::days(i as i64);
        assert!(
            b["start"].as_str().unwrap().starts_with(&d.to_string()),
            "bucket {i} should start on {d}: {b}"
        );
        diffs.extend(bucket_diffs(&format!("day {d}"), b, &ledger.totals(d, d)));
    }
    fail_on(diffs, "timeseries?compare=year");

    // Rows of the later range are the generated week's own values when
    // that range is the one a year earlier's comparison: ask the other
    // way round, from the week to a year before it (no data there).
    let b = s.json(
        &format!("/api/v1/sites/demo/breakdown/page?from={pf}&to={pt}&limit=1000&compare=year"),
        DEMO,
    );
    let year_before = pf.checked_sub_months(chrono::Months::new(12)).unwrap();
    assert_eq!(b["compare"]["from"], year_before.to_string(), "{b}");
    assert_eq!(b["compare"]["total"], 0, "{b}");
    for r in b["rows"].as_array().unwrap() {
        assert_eq!(r["previous"]["pageviews"], 0, "{r}");
        assert!(r["change"].is_null(), "{r}");
    }

    // Before the year 1 there is nothing to compare with.
    let res = s.get(
        "/api/v1/sites/demo/summary?from=0001-03-01&to=0001-03-02&compare=year",
        Some(DEMO),
    );
    assert_eq!(res.status(), 400);
    assert!(res.text().unwrap().contains("a year earlier"));
    // Reports without a period refuse it, saying so.
    let res = s.get("/api/v1/sites/demo/realtime?compare=year", Some(DEMO));
    assert_eq!(res.status(), 400);
    let text = res.text().unwrap();
    assert!(
        text.contains("`compare` does not apply to realtime"),
        "{text}"
    );
    let res = s.get("/api/v1/sites/demo/summary?compare=decade", Some(DEMO));
    assert_eq!(res.status(), 400);
    assert!(res.text().unwrap().contains("compare=year"));
}

fn both(s: &Server, path: &str, diffs: &mut Vec<String>) -> (Value, Value) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let rollup = s.json(path, DEMO);
    let raw = s.json(&format!("{path}{sep}{ALL}"), DEMO);
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("filters");
        }
        v
    };
    for f in ALL_BY_VISIT {
        let held = s.json(&format!("{path}{sep}{f}"), DEMO);
        if strip(&held) != strip(&raw) {
            diffs.push(format!(
                "{path}: raw scan with {f} differs from one with {ALL}"
            ));
        }
    }
    if rollup["source"] != "rollup" || raw["source"] != "raw" {
        diffs.push(format!(
            "{path}: sources {} and {} (expected rollup and raw)",
            rollup["source"], raw["source"]
        ));
    }
    (rollup, raw)
}

#[test]
fn rollups_and_raw_scans_agree() {
    // Three weeks of varied traffic before today plus today's hits over
    // HTTP; every report shape asked both ways over several ranges.
    let past = seeded(21, 20, 42);
    let ledger = past.demo;
    let s = Server::start_seeded(past.events);
    seed(&s);
    let today = today(&berlin());
    let day = |back: i64| today - Duration::days(back);

    // the workload must exercise what a storage layer can get wrong
    let all = ledger.totals(day(21), day(1));
    assert!(all.visits > 300, "{all:?}");
    assert!(all.visitors > 100 && all.visitors < all.visits, "{all:?}");
    assert!(all.bounces > 0 && all.bounces < all.visits, "{all:?}");
    assert!(all.dwell_ms_sum > 0 && all.dwell_pageviews > 0, "{all:?}");
    assert!(
        all.downloads > 0 && all.outbound > 0 && all.searches > 0,
        "{all:?}"
    );
    for dim in DIMS {
        let values = ledger.rows(dim, day(21), day(1)).len();
        assert!(values >= 2, "{dim} has {values} values in the workload");
    }

    let ranges = [
        (day(21), day(1)),
        (day(14), day(8)),
        (day(7), day(1)),
        (day(10), day(10)),
        (day(1), day(1)),
        (today, today),
        (day(21), today),
    ];
    let mut diffs: Vec<String> = vec![];
    let mut compared = 0usize;
    for (from, to) in ranges {
        let span = format!("{from}..{to}");
        let q = format!("from={from}&to={to}");
        let past_only = to < today;

        // summary
        let (rollup, raw) = both(&s, &format!("/api/v1/sites/demo/summary?{q}"), &mut diffs);
        for k in COUNTS
            .iter()
            .chain(&["views_per_visit", "bounce_rate", "avg_dwell_seconds"])
        {
            let same = match (rollup[k].as_f64(), raw[k].as_f64()) {
                (Some(a), Some(b)) => close(a, b),
                _ => false,
            };
            if !same {
                diffs.push(format!(
                    "summary {span} {k}: rollup {} raw {}",
                    rollup[k], raw[k]
                ));
            }
            compared += 1;
        }
        if past_only {
            let want = ledger.totals(from, to);
            diffs.extend(summary_diffs(
                &format!("summary {span} (rollup vs ledger)"),
                &rollup,
                &want,
            ));
            diffs.extend(summary_diffs(
                &format!("summary {span} (raw vs ledger)"),
                &raw,
                &want,
            ));
        }

        // time series in every interval
        for interval in ["hour", "day", "week", "month"] {
            let (rollup, raw) = both(
                &s,
                &format!("/api/v1/sites/demo/timeseries?{q}&interval={interval}"),
                &mut diffs,
            );
            let (a, b) = (
                rollup["buckets"].as_array().unwrap(),
                raw["buckets"].as_array().unwrap(),
            );
            if a.len() != b.len() {
                diffs.push(format!(
                    "timeseries {interval} {span}: {} rollup buckets, {} raw",
                    a.len(),
                    b.len()
                ));
            }
            for (x, y) in a.iter().zip(b) {
                if x != y {
                    let fields: Vec<String> = [
                        "visits",
                        "visitors",
                        "pageviews",
                        "bounces",
                        "downloads",
                        "outbound",
                        "searches",
                    ]
                    .iter()
                    .filter(|k| x[**k] != y[**k])
                    .map(|k| format!("{k} rollup {} raw {}", x[*k], y[*k]))
                    .collect();
                    diffs.push(format!(
                        "timeseries {interval} bucket {}: {}",
                        x["start"].as_str().unwrap_or("?"),
                        if fields.is_empty() {
                            format!("{x} vs {y}")
                        } else {
                            fields.join(", ")
                        }
                    ));
                }
                compared += 1;
            }
            if interval == "day" && past_only {
                for (i, x) in a.iter().enumerate() {
                    let d = from + Duration::days(i as i64);
                    diffs.extend(bucket_diffs(
                        &format!("timeseries day {d} (rollup vs ledger)"),
                        x,
                        &ledger.totals(d, d),
                    ));
                }
            }
        }

        // every breakdown, all rows
        for dim in DIMS {
            let (rollup, raw) = both(
                &s,
                &format!("/api/v1/sites/demo/breakdown/{dim}?{q}&limit=1000"),
                &mut diffs,
            );
            let (a, b) = (rows_of(&rollup), rows_of(&raw));
            diffs.extend(rows_diffs(
                &format!("breakdown/{dim} {span}"),
                ("rollup", &a),
                ("raw", &b),
            ));
            for k in ["total", "total_rows"] {
                if rollup[k] != raw[k] {
                    diffs.push(format!(
                        "breakdown/{dim} {span} {k}: rollup {} raw {}",
                        rollup[k], raw[k]
                    ));
                }
            }
            // same order too (metric descending, then value)
            let order = |v: &Value| -> Vec<String> {
                v["rows"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["value"].as_str().unwrap().to_string())
                    .collect()
            };
            if a == b && order(&rollup) != order(&raw) {
                diffs.push(format!("breakdown/{dim} {span}: rows in a different order"));
            }
            if past_only {
                diffs.extend(rows_diffs(
                    &format!("breakdown/{dim} {span}"),
                    ("rollup", &a),
                    ("ledger", &ledger.rows(dim, from, to)),
                ));
            }
            compared += a.len().max(1);
        }
    }
    eprintln!("compared {compared} roll-up and raw figures");
    fail_on(diffs, "roll-up answers differ from raw-scan answers");
    assert!(compared > 1000, "only {compared} figures compared");
}
