//! The reporting API against the real binary: tokens, summary and
//! comparison, time series, breakdowns, filters, realtime, CSV, errors.

#[path = "report_support/mod.rs"]
mod support;

use support::*;

#[test]
fn reporting_api_end_to_end() {
    let s = Server::start();
    seed(&s);

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
    assert_eq!(sum["compare"]["pageviews"], 0);

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
    assert_eq!(pv, 3);

    // --- breakdowns: every dimension answers, rows sorted, shares sum to 1
    for dim in [
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
        "search_no_results",
    ] {
        for q in ["", "&filter=page%3D~example"] {
            let b = s.json(
                &format!("/api/v1/sites/demo/breakdown/{dim}?period=today{q}"),
                DEMO,
            );
            let rows = b["rows"].as_array().unwrap();
            let metric = b["metric"].as_str().unwrap();
            let vals: Vec<u64> = rows.iter().map(|r| r[metric].as_u64().unwrap()).collect();
            assert!(
                vals.windows(2).all(|w| w[0] >= w[1]),
                "{dim} not sorted: {b}"
            );
            if !rows.is_empty() {
                let share: f64 = rows.iter().map(|r| r["share"].as_f64().unwrap()).sum();
                assert!((share - 1.0).abs() < 1e-9, "{dim} shares {share}");
            }
        }
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
}
