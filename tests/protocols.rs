//! Third-party clients against a running collector: the Matomo HTTP
//! Tracking API through the `matomo-tracker` npm package, plus the Matomo
//! answers and opt-out rules checked over plain HTTP. Results are read back
//! from the redb file after a graceful stop, and through the summary API.

mod collector;

use collector::{node, Collector};
use reqwest::blocking::Client;
use reqwest::StatusCode;
use sparsam::model::{plugins, DeviceType, EventKind, ReferrerType};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

#[test]
fn matomo_tracker_client_is_understood() {
    let c = Collector::start("");
    let out = node("matomo.js", &[&c.url("")]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Five GIFs and one 204 (send_image=0), then the bulk answer.
    let statuses: Vec<u64> = lines[..6]
        .iter()
        .map(|l| l["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 204], "{out}");
    assert_eq!(lines[0]["type"], "image/gif");
    let bulk = &lines[6]["bulk"];
    assert_eq!(bulk["status"], "success");
    assert_eq!(bulk["tracked"], 2);
    assert_eq!(bulk["invalid"], 1);
    assert_eq!(bulk["invalid_indices"], serde_json::json!([1]));

    let summary = c.summary();
    assert_eq!(summary["pageviews"], 4, "{summary}"); // guide, no-image, bulk one + two
    assert_eq!(summary["downloads"], 1, "{summary}");
    assert_eq!(summary["outbound"], 1, "{summary}");
    assert_eq!(summary["searches"], 1, "{summary}");

    let salt = c.salt();
    let events = c.stop_and_scan();
    let all = format!("{events:?}");
    for dropped in [
        "alice",
        "feedface",
        "203.0.113",
        "secret-dimension",
        "secret-cvar",
        "session",
        "abc123",
        "412x915",
        "token=x",
        "utm_id",
        "utmid77",
        "jsessionid",
        "sess0815",
    ] {
        assert!(
            !all.contains(dropped),
            "{dropped} must not be stored: {all}"
        );
    }
    let pv = events
        .iter()
        .find(|e| e.kind == EventKind::PageView && e.title == "Guide")
        .expect("guide page view");
    assert_eq!(
        pv.url,
        "http://127.0.0.1/docs/guide.html?utm_source=newsletter"
    );
    assert_eq!(
        pv.referrer.kind,
        ReferrerType::Campaign,
        "{:?}",
        pv.referrer
    );
    assert_eq!(pv.device.device_type, DeviceType::Smartphone);
    assert_eq!(
        pv.device.model, "Pixel 8",
        "model from uadata: {:?}",
        pv.device
    );
    assert_eq!(pv.device.os_version, "14.0", "{:?}", pv.device);
    assert_eq!(pv.plugins, plugins::PDF);
    assert_eq!(
        pv.pageview_id,
        sparsam::ingest::pipeline::pageview_id(&salt, "Ab12Cd")
    );
    let now = chrono::Utc::now().timestamp_millis();
    assert!((now - pv.ts_ms).abs() < 3_600_000, "server time, not cdt");

    let dl = events
        .iter()
        .find(|e| e.kind == EventKind::Download)
        .unwrap();
    assert_eq!(dl.target, "http://127.0.0.1/files/report.pdf");
    let out = events
        .iter()
        .find(|e| e.kind == EventKind::Outbound)
        .unwrap();
    assert_eq!(out.target, "https://example.net/elsewhere");
    let search = events.iter().find(|e| e.kind == EventKind::Search).unwrap();
    assert_eq!(search.search_term, "tax forms");
    assert_eq!(search.search_results, Some(3));
    // The heartbeat ping becomes a ping of the guide's page view; it sent
    // no engaged time, so the store timed it since the page view.
    let pings: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Ping)
        .collect();
    assert_eq!(pings.len(), 1, "{all}");
    assert_eq!(pings[0].pageview_id, pv.pageview_id);
    assert_eq!(
        i64::from(pings[0].engaged_ms),
        pings[0].ts_ms - pv.ts_ms,
        "timed since the page view"
    );
    assert_eq!(pings[0].url, "http://127.0.0.1/docs/guide.html");
    assert!(events.iter().any(|e| e.url == "http://localhost/bulk/two"));
    assert_eq!(events.len(), 8, "{all}");
}

/// A Matomo heartbeat carries no duration; the store times such a ping as
/// the time since its page view, so dwell time is above zero.
#[test]
fn matomo_heartbeat_gives_dwell_time() {
    let c = Collector::start("");
    let client = Client::builder().user_agent(FIREFOX).build().unwrap();
    let hit = |extra: &str| {
        let res = client
            .get(c.url(&format!(
                "/matomo.php?idsite=1&rec=1&url=http%3A%2F%2F127.0.0.1%2Fread&pv_id=Rd34Ef{extra}"
            )))
            .send()
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    };
    hit("&action_name=Read");
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    hit("&ping=1");
    let summary = c.summary();
    assert_eq!(summary["pageviews"], 1, "{summary}");
    let dwell = summary["avg_dwell_seconds"].as_f64().unwrap_or(0.0);
    assert!(dwell >= 2.0, "server-timed ping: {summary}");
    let salt = c.salt();
    let events = c.stop_and_scan();
    let ping = events.iter().find(|e| e.kind == EventKind::Ping).unwrap();
    assert_eq!(
        ping.pageview_id,
        sparsam::ingest::pipeline::pageview_id(&salt, "Rd34Ef")
    );
}

#[test]
fn matomo_answers_and_opt_outs() {
    let c = Collector::start("honour_dnt = true");
    let client = Client::builder().user_agent(FIREFOX).build().unwrap();
    let q = |extra: &str| {
        c.url(&format!(
            "/matomo.php?idsite=1&rec=1&url=http%3A%2F%2F127.0.0.1%2Fx{extra}"
        ))
    };

    let gif = client.get(q("")).send().unwrap();
    assert_eq!(gif.status(), StatusCode::OK);
    assert_eq!(gif.headers()["content-type"], "image/gif");
    assert!(gif.headers().get("set-cookie").is_none());
    assert_eq!(
        client.get(q("&send_image=0")).send().unwrap().status(),
        StatusCode::NO_CONTENT
    );

    // Nothing of these is stored, and each answers like a stored hit.
    let not_recorded = client
        .get(c.url("/matomo.php?idsite=1&rec=0&url=http%3A%2F%2F127.0.0.1%2Fnorec"))
        .send()
        .unwrap();
    assert_eq!(not_recorded.headers()["content-type"], "image/gif");
    let cookie = client
        .get(q("-cookie"))
        .header("Cookie", "sparsam_optout=1")
        .send()
        .unwrap();
    assert_eq!(cookie.headers()["content-type"], "image/gif");
    let dnt = client.get(q("-dnt")).header("DNT", "1").send().unwrap();
    assert_eq!(dnt.headers()["content-type"], "image/gif");
    let bulk_opted_out = client
        .post(c.url("/matomo.php"))
        .header("Cookie", "sparsam_optout=1")
        .body(r#"{"requests":["?idsite=1&rec=1&url=http%3A%2F%2F127.0.0.1%2Fbulk-cookie"]}"#)
        .send()
        .unwrap();
    let body: serde_json::Value = bulk_opted_out.json().unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status":"success","tracked":1,"invalid":0})
    );

    // Unknown site and missing idsite are refused with a reason.
    let unknown = client
        .get(c.url("/matomo.php?idsite=99&rec=1&url=x"))
        .send()
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    // POST form body on the legacy path.
    let form = client
        .post(c.url("/piwik.php?idsite=1"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("rec=1&url=http%3A%2F%2F127.0.0.1%2Fform&action_name=Form&send_image=0")
        .send()
        .unwrap();
    assert_eq!(form.status(), StatusCode::NO_CONTENT);

    let events = c.stop_and_scan();
    let urls: Vec<&str> = events.iter().map(|e| e.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "http://127.0.0.1/x",
            "http://127.0.0.1/x",
            "http://127.0.0.1/form"
        ],
        "only the recorded hits are stored"
    );
}

/// Plausible's script reports engaged time as `engagement` events whose
/// `e` is the time since the page's previous report: their sum is the
/// page's dwell time, as with sparsam's own pings. Both spellings of the
/// Events API fields are understood.
#[test]
fn plausible_engagement_gives_dwell_time_and_both_field_spellings_work() {
    let c = Collector::start("");
    let client = Client::builder().user_agent(FIREFOX).build().unwrap();
    let post = |body: &str| {
        let res = client
            .post(c.url("/api/event"))
            .header("Content-Type", "text/plain")
            .body(body.to_string())
            .send()
            .unwrap();
        let status = res.status();
        (status, res.text().unwrap_or_default())
    };
    // The short form the script sends.
    let (status, _) = post(
        r#"{"n":"pageview","u":"http://127.0.0.1/read","d":"127.0.0.1","r":"https://duckduckgo.com/","v":36}"#,
    );
    assert_eq!(status, StatusCode::ACCEPTED);
    for e in [3000, 1500] {
        let (status, body) = post(&format!(
            r#"{{"n":"engagement","sd":40,"d":"127.0.0.1","u":"http://127.0.0.1/read","p":{{}},"e":{e},"v":36}}"#
        ));
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    // Scrolling alone: answered, nothing to add.
    let (status, _) = post(
        r#"{"n":"engagement","sd":90,"d":"127.0.0.1","u":"http://127.0.0.1/read","e":0,"v":36}"#,
    );
    assert_eq!(status, StatusCode::ACCEPTED);
    // Bad `e` is refused with a reason naming it; nothing is stored.
    let (status, body) =
        post(r#"{"n":"engagement","d":"127.0.0.1","u":"http://127.0.0.1/read","e":-4}"#);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("`e`"), "{body}");
    let (status, body) =
        post(r#"{"n":"engagement","d":"127.0.0.1","u":"http://127.0.0.1/read","e":999999999}"#);
    assert_eq!(status, StatusCode::BAD_REQUEST, "over max_engaged_seconds");
    assert!(body.contains("engaged"), "{body}");

    // The full form of the documented Events API.
    let (status, _) = post(
        r#"{"name":"pageview","url":"http://127.0.0.1/full?utm_source=mail","domain":"127.0.0.1","referrer":"https://www.bing.com/","props":{"author":"someone-secret"}}"#,
    );
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = post(
        r#"{"name":"File Download","url":"http://127.0.0.1/full","domain":"127.0.0.1","props":{"url":"http://127.0.0.1/a.pdf"}}"#,
    );
    assert_eq!(status, StatusCode::ACCEPTED);

    let summary = c.summary();
    assert_eq!(summary["pageviews"], 2, "{summary}");
    assert_eq!(summary["visits"], 1, "{summary}");
    assert_eq!(summary["downloads"], 1, "{summary}");
    // 3.0 s + 1.5 s of engaged time in one visit.
    assert_eq!(summary["avg_dwell_seconds"], 4.5, "{summary}");

    let events = c.stop_and_scan();
    let all = format!("{events:?}");
    assert!(!all.contains("someone-secret"), "props are dropped: {all}");
    let pings: Vec<u32> = events
        .iter()
        .filter(|e| e.kind == EventKind::Ping)
        .map(|e| e.engaged_ms)
        .collect();
    assert_eq!(pings, [3000, 1500], "{all}");
    let read = events
        .iter()
        .find(|e| e.kind == EventKind::PageView && e.url == "http://127.0.0.1/read")
        .unwrap();
    assert_eq!(
        read.referrer.kind,
        ReferrerType::Search,
        "{:?}",
        read.referrer
    );
    let full = events
        .iter()
        .find(|e| e.kind == EventKind::PageView && e.url.starts_with("http://127.0.0.1/full"))
        .unwrap_or_else(|| panic!("full-form page view: {all}"));
    assert_eq!(full.url, "http://127.0.0.1/full?utm_source=mail");
    assert_eq!(
        (full.referrer.kind, full.referrer.name.as_str()),
        (ReferrerType::Campaign, "Bing"),
        "the campaign keeps the referrer's name: {:?}",
        full.referrer
    );
    let dl = events
        .iter()
        .find(|e| e.kind == EventKind::Download)
        .unwrap();
    assert_eq!(dl.target, "http://127.0.0.1/a.pdf");
}
