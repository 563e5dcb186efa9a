//! End to end in a real browser: Debian's headless Chromium, driven by
//! `tests/node/browser.js` (playwright-core), browses the demo site that
//! the collector itself serves (`[demo]`), opened as `localhost`, while the
//! collector is addressed as `127.0.0.1` (cross-origin). What the pages
//! sent is printed by the script; what was stored is read through the
//! reporting API and from the redb file after a graceful stop.

mod collector;

use collector::{node, Collector, TOKEN};
use sparsam::ingest::pipeline::pageview_id;
use sparsam::model::{plugins, DeviceType, EventKind, ReferrerType};

/// Values of a breakdown from the reporting API (today, demo site).
fn breakdown(c: &Collector, dimension: &str) -> Vec<String> {
    let v: serde_json::Value = reqwest::blocking::Client::new()
        .get(c.url(&format!(
            "/api/v1/sites/demo/breakdown/{dimension}?period=today&limit=100"
        )))
        .bearer_auth(TOKEN)
        .send()
        .expect("breakdown")
        .json()
        .expect("breakdown json");
    v["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|r| r["value"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn major(v: &str) -> &str {
    v.split('.').next().unwrap_or_default()
}

#[test]
fn tracker_and_plausible_in_chromium() {
    // `demo` honours DNT and GPC; `nogpc` (same hostnames) honours neither.
    let c = Collector::start_with(
        "[demo]\nlisten = \"127.0.0.1:0\"",
        r#"keep_query_params = ["list"]
honour_dnt = true

[[sites]]
id = "nogpc"
hostnames = ["localhost"]
timezone = "UTC"
honour_gpc = false
keep_query_params = ["list"]
"#,
    );
    let demo = c.demo.expect("demo site address");
    let demo_url = format!("http://localhost:{}", demo.port());
    let out = node("browser.js", &[&c.url(""), &demo_url]);
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("report json");
    let site = report["site"].as_str().unwrap().to_string();
    let os_versions = breakdown(&c, "os_version");
    let models = breakdown(&c, "model");

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

    let salt = c.salt();
    let all = c.stop_and_scan_sites(&["demo", "nogpc"]);
    let (events, other_site): (Vec<_>, Vec<_>) = all.into_iter().partition(|e| e.site == "demo");
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
    let ua = report["user_agent"].as_str().unwrap();
    let landing = events
        .iter()
        .find(|e| e.kind == EventKind::PageView && e.pageview_id == pageview_id(&salt, index_pv))
        .unwrap_or_else(|| panic!("landing page view missing:\n{dump}"));
    assert_eq!(landing.url, page("index.html"));
    assert_eq!(landing.title, "Beispielstadt City Library");
    assert_eq!(landing.referrer.kind, ReferrerType::Direct);
    // The user agent says "Chrome/<major>.0.0.0" on Linux. The client hints
    // the page sent carry the full version where the browser gives one
    // (Chromium leaves fullVersionList empty once the user agent is
    // overridden, as here), and on Linux an empty platformVersion, so no
    // OS version is known.
    let chromium = report["chromium_version"].as_str().unwrap();
    let sent_hints = report["sent"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["pv"] == index_pv && b["kind"] == "pageview")
        .map(|b| b["hints"].clone())
        .unwrap_or_else(|| panic!("landing beacon missing: {report}"));
    assert_eq!(sent_hints["platformVersion"], "", "{sent_hints}");
    // Versions are stored as Matomo reports them: major.minor.
    let ua_version = ua
        .split("Chrome/")
        .nth(1)
        .and_then(|v| v.split(' ').next())
        .unwrap()
        .to_string();
    let expected_version = sent_hints["fullVersionList"]
        .as_array()
        .and_then(|l| l.iter().find(|b| b["brand"] == "Chromium"))
        .and_then(|b| b["version"].as_str())
        .map_or(ua_version, str::to_string)
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".");
    let d = &landing.device;
    assert_eq!(d.device_type, DeviceType::Desktop, "{d:?}");
    assert_eq!(d.os, "GNU/Linux", "{d:?}");
    assert_eq!(d.os_version, "", "{d:?}");
    assert_eq!(d.browser, "Chrome", "{d:?}");
    assert_eq!(d.browser_version, expected_version, "{d:?}");
    assert_eq!(d.engine, "Blink", "{d:?}");
    assert_eq!(major(&d.engine_version), major(chromium), "{d:?}");
    assert_eq!(
        (d.brand.as_str(), d.model.as_str()),
        ("Unknown", "Unknown"),
        "{d:?}"
    );
    assert!(!d.bot);
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

    // PDF click → download with the file URL (from both trackers, and
    // from a link added to the page after load).
    let downloads: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Download)
        .collect();
    assert_eq!(downloads.len(), 3, "{dump}");
    for d in &downloads {
        assert_eq!(d.target, page("files/benutzungsordnung.pdf"));
    }
    assert!(downloads.iter().any(|d| d.url == page("plausible.html")));
    assert!(
        downloads
            .iter()
            .any(|d| d.url == page("app.html?list=late")),
        "{dump}"
    );
    let outbound: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Outbound)
        .map(|e| (e.url.as_str(), e.target.as_str()))
        .collect();
    let late_page = page("app.html?list=late");
    assert_eq!(
        outbound,
        [(late_page.as_str(), "https://elsewhere.example/news")],
        "{dump}"
    );

    // Client hints: model and OS version only the hints carry (the reduced
    // user agent says "Android 10; K"), from the script's
    // getHighEntropyValues, stored and reported by the API.
    assert_eq!(report["hints_sent"]["model"], "Pixel 8", "{report}");
    let hinted = events
        .iter()
        .find(|e| e.kind == EventKind::PageView && e.url == page("app.html?list=hints"))
        .unwrap_or_else(|| panic!("{dump}"));
    let d = &hinted.device;
    assert_eq!(d.device_type, DeviceType::Smartphone, "{d:?}");
    assert_eq!(
        (d.brand.as_str(), d.model.as_str()),
        ("Google", "Pixel 8"),
        "{d:?}"
    );
    // Matomo's names and versions cut to major.minor, as its reports show.
    assert_eq!(
        (d.os.as_str(), d.os_version.as_str()),
        ("Android", "14.0"),
        "{d:?}"
    );
    assert_eq!(d.browser, "Chrome Mobile", "{d:?}");
    let full_version = report["hints_full_version"].as_str().unwrap();
    assert_eq!(
        d.browser_version,
        full_version
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join("."),
        "{d:?}"
    );
    // The pixel on a page that sends Accept-CH and delegates the hints to
    // the collector (Permissions-Policy) receives them as headers.
    let ph = &report["pixel_headers"];
    assert_eq!(ph["sec-ch-ua-model"], "\"Pixel 8\"", "{ph}");
    assert_eq!(ph["sec-ch-ua-platform-version"], "\"14.0.0\"", "{ph}");
    let pixel_hit = events
        .iter()
        .find(|e| e.kind == EventKind::PageView && e.url == page("pixel.html"))
        .unwrap_or_else(|| panic!("pixel hit missing:\n{dump}"));
    let d = &pixel_hit.device;
    assert_eq!(
        (d.brand.as_str(), d.model.as_str()),
        ("Google", "Pixel 8"),
        "{d:?}"
    );
    assert_eq!(
        (d.os.as_str(), d.os_version.as_str()),
        ("Android", "14.0"),
        "{d:?}"
    );
    assert_eq!(d.device_type, DeviceType::Smartphone, "{d:?}");
    assert!(
        os_versions.iter().any(|v| v == "Android 14.0"),
        "{os_versions:?}"
    );
    assert!(models.iter().any(|v| v == "Pixel 8"), "{models:?}");

    // Site search: term from the URL, and the explicit call.
    let terms: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == EventKind::Search)
        .map(|e| e.search_term.as_str())
        .collect();
    assert_eq!(terms, ["opening hours", "large print"], "{dump}");
    assert!(
        !dump.contains("collector optout"),
        "stored after the collector opt-out:\n{dump}"
    );

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

    // Plausible page view, the engagement report sent when the window lost
    // focus (a ping with the engaged time it reported, tied to a page-view
    // id of its own), the download, then the final page view.
    let mut plausible_kinds = kinds_at(&page("plausible.html"));
    plausible_kinds.sort_by_key(|k| *k as u8);
    assert_eq!(
        plausible_kinds,
        [EventKind::PageView, EventKind::Ping, EventKind::Download],
        "{dump}"
    );
    assert_eq!(report["plausible_engagement_status"], 202);
    let engagement = &report["plausible_engagement"];
    let engaged_ms = engagement["e"].as_u64().unwrap_or(0);
    assert!(engaged_ms >= 1000, "{engagement}");
    let plausible_ping = events
        .iter()
        .find(|e| e.kind == EventKind::Ping && e.url == page("plausible.html"))
        .unwrap();
    assert_eq!(u64::from(plausible_ping.engaged_ms), engaged_ms, "{dump}");
    let plausible_view = events
        .iter()
        .find(|e| e.kind == EventKind::PageView && e.url == page("plausible.html"))
        .unwrap();
    assert_ne!(plausible_ping.pageview_id, plausible_view.pageview_id);
    assert_eq!(views(&page("index.html")), 2, "{dump}");

    // The collector's opt-out cookie, set on its own page in the browser:
    // SameSite=None and Secure (a loopback collector is a secure context),
    // HttpOnly, 400 days (the most browsers keep). Afterwards nothing the pages send is stored,
    // although each request got its usual answer: (a) on pages of the
    // collector's own site, where the cookie is first-party, and (b) on
    // pages of another site in a profile that allows third-party cookies,
    // where only SameSite=None lets it travel.
    for case in ["same_site", "cross_site"] {
        let r = &report["collector_optout"][case];
        assert_eq!(r["state"], "true", "{case}: {r}");
        let cookies = r["cookies"].as_array().unwrap();
        assert_eq!(cookies.len(), 1, "{case}: {r}");
        let ck = &cookies[0];
        assert_eq!(ck["name"], "sparsam_optout");
        assert_eq!(ck["sameSite"], "None", "{case}: {ck}");
        assert_eq!(ck["secure"], true, "{case}: {ck}");
        assert_eq!(ck["httpOnly"], true, "{case}: {ck}");
        let days_left = (ck["expires"].as_f64().unwrap()
            - std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64())
            / 86_400.0;
        assert!(days_left > 399.0, "{case}: {ck}");
        assert_eq!(r["pv_status"], 202, "{case}: {r}");
        assert_eq!(r["search_status"], 202, "{case}: {r}");
        assert_eq!(r["pixel_status"], 200, "{case}: {r}");
    }
    assert!(!dump.contains("collector optout"), "{dump}");
    let pixel_views = events
        .iter()
        .filter(|e| e.kind == EventKind::PageView && e.url.ends_with("/pixel.html"))
        .count();
    assert_eq!(
        pixel_views, 1,
        "only the pixel hit before opting out:\n{dump}"
    );

    // DNT and GPC as configured per site: the script of `demo` sent
    // nothing at all; the same browser on `nogpc` is counted.
    for signal in ["dnt", "gpc"] {
        let s = &report["signals"][signal];
        assert_eq!(s["demo_sent"], serde_json::json!([]), "{signal}: {s}");
        assert_eq!(s["other_status"], 202, "{signal}: {s}");
        let url = format!(
            "{}/other-site.html?list={signal}",
            report["other_site"].as_str().unwrap()
        );
        assert!(
            other_site
                .iter()
                .any(|e| e.kind == EventKind::PageView && e.url == url),
            "{signal}: {url} not stored for nogpc"
        );
    }
    assert_eq!(report["signals"]["dnt"]["navigator"]["dnt"], "1");
    assert_eq!(report["signals"]["gpc"]["navigator"]["gpc"], true);
    assert!(!dump.contains("honoured"), "{dump}");
}
