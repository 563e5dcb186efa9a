//! The dashboard in a real browser. Starts the binary over a store seeded
//! with two weeks of generated traffic on two sites (hostile strings among
//! titles, referrers, search terms and campaigns) plus today's hits over
//! HTTP (hostile page path, title, search term, campaign), then runs
//! `tests/node/dashboard.mjs` (playwright-core driving Debian's headless
//! Chromium). The script compares the text the page shows with the API's
//! numbers formatted as the dashboard formats them (summary with the
//! change against the previous period or the same period last year, chart
//! points of both periods, every list with URLs shown as paths and cut
//! long values whole on hover, realtime; English and German), the
//! site picker, a filter click narrowing every panel, the CSV download,
//! that no hostile string runs (also with the CSP switched off) and shows
//! literally, and the contrast of every visible text against its
//! background. Screenshots go to `<target>/test-output/dashboard_browser/`.
//! Needs `npm ci` in `tests/node` first.

#[path = "report_support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;

use support::*;

#[test]
fn dashboard_in_headless_chromium() {
    let node_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    assert!(
        node_dir.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in tests/node first (playwright-core is missing)"
    );
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|p| p.join("test-output").join("dashboard_browser"))
        .expect("target dir");
    std::fs::create_dir_all(&out_dir).expect("create test-output");
    let shot = out_dir.join("dashboard.png");
    for name in ["dashboard.png", "dashboard-de.png", "dashboard-phone.png"] {
        let _ = std::fs::remove_file(out_dir.join(name));
    }

    let past = seeded(14, 8, 5);
    let s = Server::start_seeded(past.events);
    seed(&s);
    seed_hostile(&s);
    // A page whose path is longer than a list row: shown cut, whole on hover.
    let long_url = format!(
        "https://example.org/verwaltung/buergerservice/formulare-und-antraege/{}/antrag-auf-erteilung-einer-bescheinigung.html",
        "dienstleistungen-von-a-bis-z".repeat(4)
    );
    for _ in 0..3 {
        s.hit(
            &[("site", "demo"), ("url", &long_url), ("title", "Antrag")],
            FIREFOX,
        );
    }

    let out = Command::new("node")
        .arg(node_dir.join("dashboard.mjs"))
        .current_dir(&node_dir)
        .env("SPARSAM_BASE", &s.base)
        .env("SPARSAM_TOKEN", DEMO)
        .env("SPARSAM_ADMIN", ADMIN)
        .env("SPARSAM_SHOT", &shot)
        .env("SPARSAM_LONG_URL", &long_url)
        .env(
            "SPARSAM_PAYLOADS",
            serde_json::to_string(&PAYLOADS).expect("json"),
        )
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(stdout.trim().lines().last().unwrap_or(""))
        .unwrap_or_else(|_| panic!("node printed no JSON report: {stdout}"));
    assert!(
        out.status.success() && v["ok"] == true,
        "browser checks failed: {}",
        v["error"]
    );
    assert_eq!(v["dialogs"].as_array().map(Vec::len), Some(0), "{v}");
    // what the script covered, so a shortcut there shows up here
    assert!(v["textChecks"].as_u64().unwrap_or(0) > 500, "{v}");
    assert!(v["contrastPairs"].as_u64().unwrap_or(0) > 100, "{v}");
    assert!(v["contrastMin"].as_f64().unwrap_or(0.0) >= 4.5, "{v}");
    let kinds: Vec<&str> = v["hostileSeen"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    for dim in ["page", "title", "referrer", "search_term", "utm_campaign"] {
        assert!(
            kinds.contains(&dim),
            "no hostile {dim} value was shown: {kinds:?}"
        );
    }
    for name in ["dashboard.png", "dashboard-de.png", "dashboard-phone.png"] {
        let p = out_dir.join(name);
        assert!(
            std::fs::metadata(&p)
                .map(|m| m.len() > 10_000)
                .unwrap_or(false),
            "screenshot missing at {}",
            p.display()
        );
    }
    println!("screenshot: {}", shot.display());
}
