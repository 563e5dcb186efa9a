//! End to end in a real browser: Debian's headless Chromium, driven by
//! `tests/node/browser.js` (playwright-core), browses the demo site on
//! `localhost` while the collector runs on `127.0.0.1` (cross-origin).
//! What the page sent is printed by the script; what was stored is read
//! from the redb file after a graceful stop.

mod collector;

use collector::{node, Collector};
use sparsam::ingest::pipeline::pageview_id;
use sparsam::model::{plugins, DeviceType, EventKind, ReferrerType};

#[test]
fn tracker_and_plausible_in_chromium() {
    let c = Collector::start(r#"keep_query_params = ["list"]"#);
    let out = node("browser.js", &[&c.url("")]);
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("report json");
    let site = report["site"].as_str().unwrap().to_string();

    // Nothing kept on the device; opt-out stops sending on the page itself.
    assert_eq!(report["storage"]["cookie"], "", "{report}");
    assert_eq!(report["storage"]["local"], 0);
    assert_eq!(report["storage"]["session"], 0);
    assert_eq!(report["browser_cookies"], 0, "the collector set no cookie");
    assert_eq!(report["optout_cookie"], "sparsam_optout=1");
    assert_eq!(
        report["sent_while_opted_out"],
        serde_json::json!([]),
        "{report}"
    );
    assert_eq!(report["cookie_after_optin"], "");
    assert_eq!(report["plausible_pv_status"], 202);

    let events = c.stop_and_scan();
    let page = |path: &str| format!("{site}/{path}");
    let kinds_at = |url: &str| -> Vec<EventKind> {
        events
            .iter()
            .filter(|e| e.url == url)
            .map(|e| e.kind)
            .collect()
    };
    let dump: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{:?} {} target={} term={} ms={}",
                e.kind, e.url, e.target, e.search_term, e.engaged_ms
            )
        })
        .collect();
    let dump = dump.join("\n");

    // Landing page view: URL, no referrer, device fields, plugins.
    let index_pv = report["index_pv"].as_str().unwrap();
    let landing = events
        .iter()
        .find(|e| e.kind == EventKind::PageView && e.pageview_id == pageview_id(index_pv))
        .unwrap_or_else(|| panic!("landing page view missing:\n{dump}"));
    assert_eq!(landing.url, page("index.html"));
    assert_eq!(landing.title, "Beispielstadt City Library");
    assert_eq!(landing.referrer.kind, ReferrerType::Direct);
    assert_eq!(
        landing.device.device_type,
        DeviceType::Desktop,
        "{:?}",
        landing.device
    );
    assert_eq!(landing.device.os, "Linux", "{:?}", landing.device);
    assert!(!landing.device.browser.is_empty(), "{:?}", landing.device);
    assert!(!landing.device.bot);
    let ua = report["user_agent"].as_str().unwrap();
    if ua.contains("Chrome") {
        assert_eq!(
            landing.plugins & plugins::PDF,
            landing.plugins,
            "only pdf is ever sent"
        );
    }

    // Dwell: the ping of the landing page matches the time it was visible.
    let visible = report["index_visible_ms"].as_i64().unwrap();
    let ping = events
        .iter()
        .filter(|e| e.kind == EventKind::Ping && e.pageview_id == landing.pageview_id)
        .map(|e| i64::from(e.engaged_ms))
        .max()
        .unwrap_or_else(|| panic!("no ping for the landing page:\n{dump}"));
    eprintln!(
        "landing page: visible {visible} ms (link clicked at {} ms), engaged {ping} ms reported",
        report["index_click_ms"]
    );
    assert!(
        (ping - visible).abs() <= 1000,
        "engaged {ping} ms, visible {visible} ms"
    );

    // Internal referrer for the next page.
    let hours = events
        .iter()
        .find(|e| e.kind == EventKind::PageView && e.url == page("opening-hours.html"))
        .unwrap_or_else(|| panic!("{dump}"));
    assert_eq!(
        hours.referrer.kind,
        ReferrerType::Internal,
        "{:?}",
        hours.referrer
    );

    // PDF click → download with the file URL (from both trackers).
    let downloads: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Download)
        .collect();
    assert_eq!(downloads.len(), 2, "{dump}");
    for d in &downloads {
        assert_eq!(d.target, page("files/benutzungsordnung.pdf"));
    }
    assert!(downloads.iter().any(|d| d.url == page("plausible.html")));

    // Site search: term from the URL, and the explicit call.
    let terms: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == EventKind::Search)
        .map(|e| e.search_term.as_str())
        .collect();
    assert_eq!(terms, ["opening hours", "large print"], "{dump}");

    // SPA: load, pushState, popstate = three page views of app.html.
    let views = |url: &str| {
        events
            .iter()
            .filter(|e| e.kind == EventKind::PageView && e.url == url)
            .count()
    };
    assert_eq!(views(&page("app.html")), 2, "{dump}");
    assert_eq!(views(&page("app.html?list=fiction")), 1, "{dump}");

    // After opt-out nothing is stored, not even pings for pages viewed
    // while opted out (the second opening-hours visit, the search page).
    assert!(!dump.contains("not counted"), "{dump}");
    assert_eq!(views(&page("opening-hours.html")), 1, "{dump}");
    let hours_pings = events
        .iter()
        .filter(|e| e.kind == EventKind::Ping && e.url == page("opening-hours.html"))
        .all(|e| e.pageview_id == hours.pageview_id);
    assert!(hours_pings, "{dump}");

    // Plausible page view and download, then the final page view.
    assert_eq!(
        kinds_at(&page("plausible.html")),
        [EventKind::PageView, EventKind::Download],
        "{dump}"
    );
    assert_eq!(views(&page("index.html")), 2, "{dump}");
}
