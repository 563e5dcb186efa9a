//! The dashboard in a real browser: starts the binary with known data
//! (including hostile titles, paths and search terms), then runs
//! `tests/node/dashboard.mjs` (playwright-core driving Debian's headless
//! Chromium), which signs in, compares every panel with the API, filters
//! by clicking a row, downloads a CSV, and saves screenshots under
//! `<target>/test-output/`. Needs `npm ci` in `tests/node` first.

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
        .map(|p| p.join("test-output"))
        .expect("target dir");
    std::fs::create_dir_all(&out_dir).expect("create test-output");
    let shot = out_dir.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);

    let s = Server::start();
    seed(&s);

    let out = Command::new("node")
        .arg(node_dir.join("dashboard.mjs"))
        .current_dir(&node_dir)
        .env("SPARSAM_BASE", &s.base)
        .env("SPARSAM_TOKEN", DEMO)
        .env("SPARSAM_SHOT", &shot)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "browser checks failed: {stdout}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim().lines().last().unwrap_or(""))
        .expect("node printed a JSON report");
    assert_eq!(v["ok"], true);
    assert_eq!(v["dialogs"].as_array().map(Vec::len), Some(0));
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 10_000)
            .unwrap_or(false),
        "screenshot at {}",
        shot.display()
    );
    eprintln!("screenshot: {}", shot.display());
}
