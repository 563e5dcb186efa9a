//! `[device] rules_dir`: operators load a newer copy of DeviceDetector's
//! rule files without a new release. A running server detects with the
//! copy it is given (a rule only that copy has decides the stored brand
//! and model); a folder without the rules, or with a broken file, stops
//! start-up with an error that names the config key.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const PHONE_UA: &str = "Mozilla/5.0 (Linux; Android 14; SparsamPhone 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36";

/// A copy of the vendored rules in `dir`, with `edit` applied to mobiles.yml.
fn copy_rules(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/device-detector/regexes");
    let dst = dir.join("regexes");
    for sub in ["", "client", "client/hints", "device"] {
        std::fs::create_dir_all(dst.join(sub)).unwrap();
        for entry in std::fs::read_dir(src.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yml") {
                let name = path.strip_prefix(&src).unwrap();
                let mut text = std::fs::read_to_string(&path).unwrap();
                if name == Path::new("device/mobiles.yml") {
                    text = edit(text);
                }
                std::fs::write(dst.join(name), text).unwrap();
            }
        }
    }
    dst
}

fn config_with_rules(dir: &Path, rules: &Path) -> String {
    format!(
        "{}\n[device]\nrules_dir = \"{}\"\n",
        test_config(&dir.join("data"), "", ""),
        rules.display()
    )
}

fn hit(s: &Server) {
    let res = client()
        .post(s.url("/api/event"))
        .header("User-Agent", PHONE_UA)
        .body(r#"{"site":"demo","url":"https://example.org/"}"#)
        .send()
        .unwrap();
    assert_eq!(res.status(), 202);
}

#[test]
fn a_newer_rules_copy_decides_detection() {
    // The built-in rules do not know the made-up phone.
    let mut s = Server::start();
    hit(&s);
    s.stop();
    let d = stored_events(&s.store_path())[0].device.clone();
    assert_ne!(d.brand, "Sparsamphone", "{d:?}");

    let tmp = tempfile::tempdir().unwrap();
    let rules = copy_rules(tmp.path(), |mobiles| {
        format!(
            "Sparsamphone:\n  regex: 'SparsamPhone [0-9]+'\n  device: 'smartphone'\n  models:\n    - regex: 'SparsamPhone ([0-9]+)'\n      model: 'Model \\g<1>'\n\n{mobiles}"
        )
    });
    let mut s = Server::start_config(tmp.path(), &config_with_rules(tmp.path(), &rules));
    hit(&s);
    s.stop();
    let d = stored_events(&s.store_path())[0].device.clone();
    assert_eq!(
        (d.brand.as_str(), d.model.as_str()),
        ("Sparsamphone", "Model 7"),
        "{d:?}"
    );
    assert_eq!(d.browser, "Chrome Mobile", "{d:?}");
}

#[test]
fn a_folder_without_rules_is_a_config_error_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = start_fails(tmp.path(), &config_with_rules(tmp.path(), &empty));
    assert!(err.contains("device.rules_dir"), "{err}");
}

#[test]
fn a_broken_rule_file_stops_start_up_naming_the_key_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = copy_rules(tmp.path(), |mobiles| {
        format!("Broken: [unclosed\n{mobiles}")
    });
    let err = start_fails(tmp.path(), &config_with_rules(tmp.path(), &rules));
    assert!(err.contains("device.rules_dir"), "{err}");
    assert!(err.contains("mobiles.yml"), "{err}");
}

/// Brand and model breakdowns count the hits without a known brand (a
/// desktop browser names none) instead of hiding them, and browsers carry
/// Matomo's names.
#[test]
fn brand_breakdown_counts_unknown_and_uses_matomo_names() {
    let s = Server::start();
    for ua in [PHONE_UA, CHROME_UA, "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36"] {
        let res = client()
            .post(s.url("/api/event"))
            .header("User-Agent", ua)
            .body(r#"{"site":"demo","url":"https://example.org/"}"#)
            .send()
            .unwrap();
        assert_eq!(res.status(), 202);
    }
    let get = |dim: &str| -> serde_json::Value {
        let res = client()
            .get(s.url(&format!("/api/v1/sites/demo/breakdown/{dim}?period=today")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .unwrap();
        assert!(res.status().is_success());
        res.json().unwrap()
    };
    let values = |b: &serde_json::Value| -> Vec<(String, u64)> {
        b["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["value"].as_str().unwrap().to_string(),
                    r["pageviews"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let brands = values(&get("brand"));
    let total: u64 = brands.iter().map(|(_, n)| n).sum();
    assert_eq!(
        total, 3,
        "every hit counted, unknown brand included: {brands:?}"
    );
    assert!(brands.iter().any(|(v, _)| v == "Samsung"), "{brands:?}");
    assert!(
        brands.iter().any(|(v, n)| v == "Unknown" && *n == 2),
        "{brands:?}"
    );
    let models = values(&get("model"));
    assert!(
        models.iter().any(|(v, _)| v == "Galaxy S23 Ultra"),
        "{models:?}"
    );
    let browsers = values(&get("browser"));
    assert!(
        browsers
            .iter()
            .any(|(v, n)| v == "Chrome Mobile" && *n == 2),
        "{browsers:?}"
    );
    let versions = values(&get("browser_version"));
    assert!(
        versions.iter().any(|(v, _)| v == "Chrome Mobile 124.0"),
        "{versions:?}"
    );
    let os_versions = values(&get("os_version"));
    assert!(
        os_versions.iter().any(|(v, _)| v == "Android 14"),
        "{os_versions:?}"
    );
}
