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
    assert_eq!(pv.device.os_version, "14", "{:?}", pv.device);
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
