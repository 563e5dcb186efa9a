//! Device detection against Matomo DeviceDetector's own test fixtures
//! (vendored, gzipped, in `tests/data/device-detector/` with their licence
//! and provenance), plus concrete cases in sparsam's stored form.
//!
//! `conformance` runs every fixture (user agent, and client-hint headers
//! where the fixture has them) through the rule engine and counts, per
//! field, how often sparsam says what DeviceDetector says: device type,
//! brand, model, OS name and version, client name and version, engine and
//! version, and bot or not (bot fixtures count for the bot field only).
//! The table is printed (`cargo test --release --test device_corpus --
//! --nocapture conformance`) and recorded in docs/device-detection.md;
//! the test fails when a field drops below its floor in [`FLOORS`], set
//! just under the figure measured. There is no list of expected misses:
//! any regression shows in the figures. `SPARSAM_CORPUS_MISSES=field`
//! prints the misses of one field; `SPARSAM_CORPUS_DUMP=path` writes every
//! fixture's full detection to `path`, one line each, so that two builds
//! of the engine can be compared field by field (`diff` of two dumps).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde_yaml::Value;
use sparsam::enrich::{ClientHints, DeviceDetector};
use sparsam::model::{Device, DeviceType};

fn detect(det: &DeviceDetector, ua: &str) -> Device {
    det.detect(ua, &ClientHints::default())
}

/// One fixture's expectations (empty strings where the fixture is empty).
struct Fixture {
    ua: String,
    headers: Vec<(String, String)>,
    bot: bool,
    fields: BTreeMap<&'static str, String>,
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn fixtures() -> Vec<(String, Fixture)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/device-detector");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".yml.gz"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 80,
        "fixture files missing in {}",
        dir.display()
    );
    let mut out = Vec::new();
    for path in files {
        let mut yaml = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
            .read_to_string(&mut yaml)
            .unwrap();
        let name = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".yml.gz", "");
        let cases: Vec<Value> = serde_yaml::from_str(&yaml).unwrap();
        for c in cases {
            let mut headers = Vec::new();
            if let Some(Value::Mapping(h)) = c.get("headers") {
                for (k, v) in h {
                    headers.push((text(Some(k)), text(Some(v))));
                }
            }
            let mut fields = BTreeMap::new();
            let os = c.get("os");
            let client = c.get("client");
            let device = c.get("device");
            let get = |v: Option<&Value>, k: &str| text(v.and_then(|v| v.get(k)));
            fields.insert("os", get(os, "name"));
            fields.insert("os_version", get(os, "version"));
            fields.insert("client", get(client, "name"));
            fields.insert("client_version", get(client, "version"));
            fields.insert("engine", get(client, "engine"));
            fields.insert("engine_version", get(client, "engine_version"));
            fields.insert("device_type", get(device, "type"));
            fields.insert("brand", get(device, "brand"));
            fields.insert("model", get(device, "model"));
            out.push((
                name.clone(),
                Fixture {
                    ua: text(c.get("user_agent")),
                    headers,
                    bot: c.get("bot").is_some_and(|b| !b.is_null()),
                    fields,
                },
            ));
        }
    }
    out
}

/// Fields in table order, and the floor (per cent) each must reach.
const FLOORS: &[(&str, f64)] = &[
    ("device_type", 99.9),
    ("brand", 99.9),
    ("model", 99.9),
    ("os", 99.95),
    ("os_version", 99.75),
    ("client", 99.95),
    ("client_version", 99.9),
    ("engine", 99.95),
    ("engine_version", 99.45),
    ("bot", 99.95),
];

#[test]
fn conformance() {
    let det = DeviceDetector::new(0);
    let rules = det.rules();
    let show = std::env::var("SPARSAM_CORPUS_MISSES").unwrap_or_default();
    let mut tally: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let all = fixtures();
    let mut dump = std::env::var_os("SPARSAM_CORPUS_DUMP").map(|path| {
        std::io::BufWriter::new(std::fs::File::create(&path).expect("SPARSAM_CORPUS_DUMP file"))
    });
    for (file, f) in &all {
        let hints =
            ClientHints::from_headers(f.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let got = rules.detect(&f.ua, &hints);
        if let Some(out) = dump.as_mut() {
            use std::io::Write;
            writeln!(out, "{file}\t{:?}\t{:?}\t{got:?}", f.ua, f.headers).expect("dump");
        }
        let mut count = |field: &'static str, want: &str, got: &str| {
            let t = tally.entry(field).or_default();
            t.1 += 1;
            if want == got {
                t.0 += 1;
            } else if show == field {
                println!(
                    "MISS {field} [{file}]: want {want:?} got {got:?} :: {}",
                    f.ua
                );
            }
        };
        count("bot", &f.bot.to_string(), &got.bot.is_some().to_string());
        if f.bot {
            continue;
        }
        let got_fields = [
            ("os", got.os.as_str()),
            ("os_version", got.os_version.as_str()),
            ("client", got.client.as_str()),
            ("client_version", got.client_version.as_str()),
            ("engine", got.engine.as_str()),
            ("engine_version", got.engine_version.as_str()),
            ("device_type", got.device_type.unwrap_or("")),
            ("brand", got.brand.as_str()),
            ("model", got.model.as_str()),
        ];
        for (field, value) in got_fields {
            count(field, &f.fields[field], value);
        }
    }
    println!("DeviceDetector fixtures: {} cases", all.len());
    println!("| field | agree | cases | per cent |");
    println!("| --- | ---: | ---: | ---: |");
    let mut failed = Vec::new();
    for (field, floor) in FLOORS {
        let (ok, n) = tally.get(field).copied().unwrap_or_default();
        let pct = 100.0 * ok as f64 / n.max(1) as f64;
        println!("| {field} | {ok} | {n} | {pct:.2} |");
        if pct < *floor {
            failed.push(format!("{field}: {pct:.2} % < floor {floor} %"));
        }
    }
    assert!(failed.is_empty(), "agreement dropped: {failed:?}");
}

// ---------------------------------------------------------------- cases

fn hints(pairs: &[(&str, &str)]) -> ClientHints {
    ClientHints::from_headers(pairs.iter().copied())
}

#[test]
fn ipad() {
    let d = detect(
        &DeviceDetector::new(8),
        "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    );
    assert_eq!(d.device_type, DeviceType::Tablet);
    assert_eq!((d.brand.as_str(), d.model.as_str()), ("Apple", "iPad"));
    assert_eq!((d.os.as_str(), d.os_version.as_str()), ("iPadOS", "17.4"));
    assert_eq!(d.browser, "Mobile Safari");
    assert_eq!(d.engine, "WebKit");
}

#[test]
fn android_tablet() {
    let d = detect(
        &DeviceDetector::new(8),
        "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    );
    assert_eq!(d.device_type, DeviceType::Tablet);
    assert_eq!(d.brand, "Samsung");
    assert_eq!(d.os, "Android");
    assert_eq!(d.browser, "Chrome");
    assert_eq!(
        (d.engine.as_str(), d.engine_version.as_str()),
        ("Blink", "124.0")
    );
}

#[test]
fn galaxy_phone() {
    let d = detect(
        &DeviceDetector::new(8),
        "Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
    );
    assert_eq!(d.device_type, DeviceType::Smartphone);
    assert_eq!(d.brand, "Samsung");
    assert_eq!(d.model, "Galaxy S23 Ultra");
    assert_eq!(d.browser, "Samsung Browser");
    assert_eq!(d.engine, "Blink");
    assert!(!d.bot);
}

#[test]
fn smart_tvs() {
    let det = DeviceDetector::new(8);
    for ua in [
        "Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 76.0.3809.146/6.0 TV Safari/537.36",
        "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.79 Safari/537.36 WebAppManager",
        "Mozilla/5.0 (Linux; Android 9; AFTMM Build/PS7633) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/108.0.5359.160 Mobile Safari/537.36",
        "Mozilla/5.0 (X11; Linux armv7l) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/90.0.4430.225 Safari/537.36 CrKey/1.56.500000",
        "AppleTV11,1/11.1",
    ] {
        assert_eq!(detect(&det, ua).device_type, DeviceType::Tv, "{ua}");
    }
}

#[test]
fn playstation() {
    let d = detect(
        &DeviceDetector::new(8),
        "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Safari/605.1.15",
    );
    assert_eq!(d.device_type, DeviceType::Console);
    let d = detect(
        &DeviceDetector::new(8),
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36 Edge/18.19041",
    );
    assert_eq!(d.device_type, DeviceType::Console);
}

#[test]
fn tesla() {
    let d = detect(
        &DeviceDetector::new(8),
        "Mozilla/5.0 (X11; GNU/Linux) AppleWebKit/537.36 (KHTML, like Gecko) Chromium/108.0.5359.124 Chrome/108.0.5359.124 Safari/537.36 Tesla/2023.20.8-8c3a1d4d3cdd",
    );
    assert_eq!(d.device_type, DeviceType::Car);
    assert!(!d.bot);
}

#[test]
fn apple_watch() {
    let d = detect(
        &DeviceDetector::new(8),
        "atc/1.0 watchOS/5.1.3 model/Watch3,4 hwp/t8004 build/16S535 (6; dt:156)",
    );
    assert_eq!(d.device_type, DeviceType::Wearable);
    assert_eq!(d.brand, "Apple");
}

#[test]
fn bots() {
    let det = DeviceDetector::new(8);
    for ua in [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
        "curl/8.5.0",
        "python-requests/2.31.0",
        "Go-http-client/1.1",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        "",
    ] {
        let d = detect(&det, ua);
        assert!(d.bot, "{ua}");
        assert_eq!(d.device_type, DeviceType::Bot, "{ua}");
    }
}

#[test]
fn reduced_ua_with_model_hint() {
    let det = DeviceDetector::new(8);
    let ua = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36";
    let h = hints(&[
        (
            "Sec-CH-UA",
            r#""Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99""#,
        ),
        (
            "Sec-CH-UA-Full-Version-List",
            r#""Chromium";v="124.0.6367.82", "Google Chrome";v="124.0.6367.82", "Not-A.Brand";v="99.0.0.0""#,
        ),
        ("Sec-CH-UA-Mobile", "?1"),
        ("Sec-CH-UA-Platform", r#""Android""#),
        ("Sec-CH-UA-Platform-Version", r#""14.0.0""#),
        ("Sec-CH-UA-Model", r#""Pixel 8""#),
    ]);
    let d = det.detect(ua, &h);
    assert_eq!(d.model, "Pixel 8");
    assert_eq!(d.brand, "Google");
    assert_eq!(d.browser, "Chrome Mobile");
    assert_eq!(d.browser_version, "124.0");
    assert_eq!((d.os.as_str(), d.os_version.as_str()), ("Android", "14.0"));
    assert_eq!(d.device_type, DeviceType::Smartphone);
    // Without hints the reduced UA says nothing about the model.
    assert_ne!(det.detect(ua, &ClientHints::default()).model, "Pixel 8");
}

#[test]
fn windows_11_via_platform_version() {
    let det = DeviceDetector::new(8);
    let ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0";
    let d = det.detect(ua, &ClientHints::default());
    assert_eq!((d.os.as_str(), d.os_version.as_str()), ("Windows", "10"));
    assert_eq!(d.browser, "Microsoft Edge");
    let h = hints(&[
        (
            "sec-ch-ua",
            r#""Microsoft Edge";v="124", "Not-A.Brand";v="99""#,
        ),
        ("sec-ch-ua-platform", r#""Windows""#),
        ("sec-ch-ua-platform-version", r#""15.0.0""#),
    ]);
    let d = det.detect(ua, &h);
    assert_eq!((d.os.as_str(), d.os_version.as_str()), ("Windows", "11"));
    assert_eq!(d.browser, "Microsoft Edge");
    assert_eq!(d.device_type, DeviceType::Desktop);
    let h = ClientHints::from_json(r#"{"platform":"Windows","platformVersion":"10.0.0"}"#).unwrap();
    assert_eq!(det.detect(ua, &h).os_version, "10");
}

#[test]
fn firefox_engine_from_rv() {
    let d = detect(
        &DeviceDetector::new(8),
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0",
    );
    assert_eq!(d.browser, "Firefox");
    assert_eq!(d.os, "Mac");
    assert_eq!(
        (d.engine.as_str(), d.engine_version.as_str()),
        ("Gecko", "125.0")
    );
    assert_eq!(d.device_type, DeviceType::Desktop);
}

#[test]
fn cached_equals_uncached() {
    let cached = DeviceDetector::new(64);
    let cold = DeviceDetector::new(0);
    let ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
    let h = hints(&[("sec-ch-ua-model", "\"x\"")]);
    for _ in 0..3 {
        assert_eq!(cached.detect(ua, &h), cold.detect(ua, &h));
        assert_eq!(
            cached.detect(ua, &ClientHints::default()),
            cold.detect(ua, &ClientHints::default())
        );
    }
}

#[test]
fn garbage_never_panics() {
    let det = DeviceDetector::new(8);
    let huge = "Mozilla/5.0 (Linux; Android 14; ".to_string() + &"é".repeat(100_000);
    let nul = "\0\0\0Mozilla\u{fffd}\u{202e}";
    let cut_in_token = format!("{}Chrome/1", "x".repeat(505));
    for ua in [
        "",
        " ",
        "()",
        ";;;;",
        "Mozilla/5.0 (",
        "Chrome/",
        "rv:",
        "Trident/",
        huge.as_str(),
        nul,
        cut_in_token.as_str(),
        "; AFT",
    ] {
        let d = det.detect(ua, &ClientHints::default());
        assert!(d.browser.len() <= 1024);
        let h = hints(&[
            ("sec-ch-ua", ua),
            ("sec-ch-ua-model", ua),
            ("sec-ch-ua-platform-version", ua),
        ]);
        let _ = det.detect(ua, &h);
    }
}

#[test]
fn android_tablet_whose_browser_says_mobile() {
    // Many Android tablets' browsers add "Mobile"; the device name that
    // uap-core finds ("GOCLEVER TAB 9300") says tablet.
    let d = detect(
        &DeviceDetector::new(8),
        "Mozilla/5.0 (Linux; Android 4.0.4; GOCLEVER TAB 9300 Build/IMM76D) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/29.0.1547.72 Mobile Safari/537.36 OPR/16.0.1212.64462",
    );
    assert_eq!(d.device_type, DeviceType::Tablet, "{d:?}");
    let phone = detect(
        &DeviceDetector::new(8),
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
    );
    assert_eq!(phone.device_type, DeviceType::Smartphone, "{phone:?}");
}

#[test]
fn ios_browser_asking_for_the_desktop_site_is_webkit() {
    let d = detect(
        &DeviceDetector::new(8),
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Version/17.0 Safari/605.1.15",
    );
    assert_eq!(d.engine, "WebKit", "{d:?}");
}
