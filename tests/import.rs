//! `sparsam import` end to end: a small access log (plain and gzip, with
//! malformed lines, a bot, assets, an old line) imported by the real binary
//! into a real store, then read back through a real server's API, and the
//! store file scanned for the full addresses.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use chrono::{Duration, Utc};
use common::{client, contains_bytes, test_config, Server, ADMIN_TOKEN, CHROME_UA, FIREFOX_UA};
use flate2::write::GzEncoder;
use flate2::Compression;

const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const V4: &str = "181.153.77.201";
const V6: &str = "2001:db8:85a3:1234:5678:8a2e:370:7334";

fn line(ip: &str, days_ago: i64, req: &str, status: u16, referer: &str, ua: &str) -> String {
    let t = Utc::now() - Duration::days(days_ago);
    format!(
        "{ip} - - [{}] \"{req}\" {status} 1234 \"{referer}\" \"{ua}\"\n",
        t.format("%d/%b/%Y:%H:%M:%S +0000")
    )
}

fn import(config: &Path, files: &[&Path]) -> Output {
    Command::new(common::bin())
        .arg("--config")
        .arg(config)
        .args(["import", "--site", "demo"])
        .args(files)
        .env("NO_COLOR", "1")
        .output()
        .expect("run import")
}

fn gz_member(text: &str) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(text.as_bytes()).expect("gzip");
    enc.finish().expect("gzip")
}

#[test]
fn imports_logs_and_keeps_no_full_address() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let config = test_config(&dir.join("data"), "", "");
    let config_path = dir.join("sparsam.toml");
    std::fs::write(&config_path, &config).expect("config");

    let plain = [
        line(V4, 2, "GET / HTTP/1.1", 200, "-", CHROME_UA),
        line(
            V4,
            2,
            "GET /blog/post?utm_source=news&session=s3cr3tvalue HTTP/1.1",
            200,
            "https://www.google.com/search?q=x",
            FIREFOX_UA,
        ),
        line(V4, 2, "GET /style.css HTTP/1.1", 200, "-", CHROME_UA),
        line(V4, 2, "GET /files/report.pdf HTTP/1.1", 200, "-", CHROME_UA),
        line("66.249.66.1", 2, "GET /about HTTP/1.1", 200, "-", GOOGLEBOT),
        line(V4, 2, "POST /contact HTTP/1.1", 200, "-", CHROME_UA),
        line(V4, 2, "GET /missing HTTP/1.1", 404, "-", CHROME_UA),
        "this is not a log line\n".to_string(),
        line(V4, 200, "GET /ancient HTTP/1.1", 200, "-", CHROME_UA),
        line(V4, 1, "GET /search?q=impfung HTTP/1.1", 200, "-", CHROME_UA),
        line(V6, 1, "GET /ipv6.html HTTP/2.0", 200, "-", FIREFOX_UA),
        // A referrer on the referrer-spam list: skipped and counted.
        line(
            V4,
            1,
            "GET /from-spam HTTP/1.1",
            200,
            "https://www.0-0.fr/",
            CHROME_UA,
        ),
    ]
    .concat();
    let log = dir.join("access.log");
    std::fs::write(&log, plain).expect("log");

    // Two gzip members, as logrotate's `cat a.gz b.gz` would make.
    let mut gz = gz_member(&line(V4, 3, "GET /gz-one HTTP/1.1", 304, "-", CHROME_UA));
    gz.extend(gz_member(&format!(
        "{}1.2.3.4 - - [not a time] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"\n",
        line(V4, 3, "GET /gz-two/ HTTP/1.1", 200, "-", FIREFOX_UA)
    )));
    let gz_path = dir.join("access.log.1.gz");
    std::fs::write(&gz_path, gz).expect("gz");

    let out = import(&config_path, &[&log, &gz_path]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "import failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("lines read:         15\n"), "{stdout}");
    // 6 page views, 1 download, 1 search.
    assert!(
        stdout.contains("imported events:    8 (6 page views, 1 downloads)"),
        "{stdout}"
    );
    assert!(stdout.contains("bots dropped:       1\n"), "{stdout}");
    assert!(stdout.contains("referrer spam:      1\n"), "{stdout}");
    assert!(stdout.contains("skipped (too old):  1\n"), "{stdout}");
    assert!(stdout.contains("skipped (not page): 3\n"), "{stdout}");
    assert!(stdout.contains("malformed lines:    2\n"), "{stdout}");
    assert!(stdout.contains("access.log:8"), "{stdout}");
    assert!(stdout.contains("access.log.1.gz:3"), "{stdout}");
    assert!(!stderr.contains(V4) && !stdout.contains(V4));

    let mut server = Server::start_config(dir, &config);
    let from = (Utc::now() - Duration::days(10)).format("%Y-%m-%d");
    let to = (Utc::now() + Duration::days(1)).format("%Y-%m-%d");
    let res = client()
        .get(server.url(&format!("/api/v1/sites/demo/summary?from={from}&to={to}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .expect("summary");
    assert_eq!(res.status(), 200);
    let s: serde_json::Value = res.json().expect("json");
    assert_eq!(s["pageviews"], 6, "{s}");
    assert_eq!(s["downloads"], 1, "{s}");
    assert_eq!(s["searches"], 1, "{s}");
    assert!(s["visitors"].as_i64().unwrap_or(0) >= 2, "{s}");

    // The store holds neither full address nor the dropped query value.
    let bytes = std::fs::read(dir.join("data").join("sparsam.redb")).expect("redb");
    let v6: std::net::Ipv6Addr = V6.parse().unwrap();
    let needles: [&[u8]; 5] = [
        V4.as_bytes(),
        &[181, 153, 77, 201],
        V6.as_bytes(),
        &v6.octets(),
        b"s3cr3tvalue",
    ];
    for n in needles {
        assert!(!contains_bytes(&bytes, n), "store contains {n:?}");
    }
    let paths_present = |p: &str| contains_bytes(&bytes, p.as_bytes());
    assert!(paths_present("/blog/post"), "imported URL should be stored");
    assert!(!paths_present("/ancient"), "old line must not be stored");
    assert!(
        !paths_present("/from-spam"),
        "referrer spam must not be stored"
    );

    // With the server holding the store, import refuses clearly.
    let out = import(&server.config_path, &[&log]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("running sparsam server"), "{stderr}");
    server.stop();
}

/// Log lines pass through the same scrubbing as live hits: e-mail
/// addresses and tokens in paths and referrers become placeholders, path
/// parameters and unlisted `utm_` parameters are dropped, and none of it
/// is in the store file.
#[test]
fn imported_paths_and_referrers_keep_nothing_that_identifies() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let config = test_config(&dir.join("data"), "", "");
    let config_path = dir.join("sparsam.toml");
    std::fs::write(&config_path, &config).expect("config");
    let log = dir.join("access.log");
    std::fs::write(
        &log,
        [
            line(
                V4,
                1,
                "GET /konto/importmail.marker@example.com;jsessionid=importsession42/reset/\
                 9d8c7b6a5f4e3d2c1b0a9d8c7b6a5f4e?utm_source=nl&utm_id=importutm HTTP/1.1",
                200,
                "https://mail.example/read/5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b/x",
                CHROME_UA,
            ),
            line(
                V4,
                1,
                "GET /files/9d8c7b6a5f4e3d2c1b0a9d8c/bescheid.pdf;jsessionid=importsession42 HTTP/1.1",
                200,
                "-",
                CHROME_UA,
            ),
        ]
        .concat(),
    )
    .expect("log");
    let out = import(&config_path, &[&log]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "import failed:\n{stdout}");
    assert!(stdout.contains("imported events:    2"), "{stdout}");

    let store = dir.join("data").join("sparsam.redb");
    let events = common::stored_events(&store);
    let pv = events
        .iter()
        .find(|e| e.kind == sparsam::model::EventKind::PageView)
        .expect("page view");
    assert_eq!(
        pv.url,
        "https://example.org/konto/:email/reset/:id?utm_source=nl"
    );
    assert_eq!(pv.referrer.url, "https://mail.example/read/:id/x");
    let download = events
        .iter()
        .find(|e| e.kind == sparsam::model::EventKind::Download)
        .expect("a download: the path parameter no longer hides the extension");
    assert_eq!(download.url, "https://example.org/files/:id/bescheid.pdf");

    let bytes = std::fs::read(&store).expect("redb");
    for marker in [
        "importmail",
        "importsession42",
        "jsessionid",
        "9d8c7b6a5f4e3d2c",
        "5e6f7a8b",
        "importutm",
    ] {
        assert!(
            !contains_bytes(&bytes, marker.as_bytes()),
            "{marker} in the store"
        );
    }
}

#[test]
fn unknown_site_and_missing_file_fail_without_panicking() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config_path = tmp.path().join("sparsam.toml");
    std::fs::write(&config_path, test_config(&tmp.path().join("data"), "", "")).unwrap();
    let out = Command::new(common::bin())
        .arg("--config")
        .arg(&config_path)
        .args(["import", "--site", "nope", "x.log"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown site `nope`"));
    let out = import(&config_path, &[&tmp.path().join("missing.log")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot read"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn line_at(ip: &str, t: chrono::DateTime<Utc>, req: &str, referer: &str, ua: &str) -> String {
    format!(
        "{ip} - - [{}] \"{req}\" 200 1234 \"{referer}\" \"{ua}\"\n",
        t.format("%d/%b/%Y:%H:%M:%S +0000")
    )
}

const IPHONE_UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

#[test]
fn future_dated_lines_are_skipped_and_reported_by_line_number() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config_path = tmp.path().join("sparsam.toml");
    std::fs::write(&config_path, test_config(&tmp.path().join("data"), "", "")).unwrap();
    let now = Utc::now();
    let log = tmp.path().join("access.log");
    std::fs::write(
        &log,
        [
            line_at(
                V4,
                now - Duration::hours(1),
                "GET /ok HTTP/1.1",
                "-",
                CHROME_UA,
            ),
            line_at(
                V4,
                now + Duration::days(1),
                "GET /tomorrow HTTP/1.1",
                "-",
                CHROME_UA,
            ),
            "garbage\n".to_string(),
            line_at(
                V4,
                now + Duration::hours(2),
                "GET /later HTTP/1.1",
                "-",
                CHROME_UA,
            ),
        ]
        .concat(),
    )
    .unwrap();
    let out = import(&config_path, &[&log]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("lines read:         4\n"), "{stdout}");
    assert!(
        stdout.contains("imported events:    1 (1 page views"),
        "{stdout}"
    );
    assert!(stdout.contains("skipped (future):   2\n"), "{stdout}");
    let future = stdout
        .lines()
        .find_map(|l| l.strip_prefix("first future:"))
        .unwrap_or_default();
    let positions: Vec<&str> = future.split(", ").map(str::trim).collect();
    assert_eq!(positions.len(), 2, "{stdout}");
    assert!(positions[0].ends_with("access.log:2"), "{stdout}");
    assert!(positions[1].ends_with("access.log:4"), "{stdout}");
    assert!(stdout.contains("malformed lines:    1\n"), "{stdout}");
    assert!(
        stdout.contains("access.log:3 (no client address)"),
        "{stdout}"
    );
    let bytes = std::fs::read(tmp.path().join("data").join("sparsam.redb")).unwrap();
    for p in ["/tomorrow", "/later"] {
        assert!(!contains_bytes(&bytes, p.as_bytes()), "{p} was stored");
    }
}

/// The dimensions the reporting API offers, from the OpenAPI document.
fn dimensions() -> Vec<String> {
    let doc: serde_json::Value = serde_json::to_value(sparsam::http::openapi::document()).unwrap();
    doc["components"]["schemas"]["Breakdown"]["properties"]["dimension"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn report(server: &Server, path: &str) -> serde_json::Value {
    let from = (Utc::now() - Duration::days(2)).format("%Y-%m-%d");
    let to = (Utc::now() + Duration::days(2)).format("%Y-%m-%d");
    // breakdowns take a page size; the summary takes none
    let page = if path.contains("/breakdown/") {
        "&limit=100"
    } else {
        ""
    };
    let res = client()
        .get(server.url(&format!("{path}?from={from}&to={to}{page}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .expect("report");
    assert_eq!(res.status(), 200, "{path}");
    res.json().expect("json")
}

#[test]
fn an_imported_log_reports_like_the_same_hits_sent_live() {
    const GOOGLEBOT_UA: &str = GOOGLEBOT;
    // (address, request target, referrer, user agent, download)
    let hits: [(&str, &str, &str, &str, bool); 7] = [
        // Campaigns are attributed to a visit from its first page.
        (
            V4,
            "/?utm_source=news&utm_medium=email&utm_campaign=spring&session=s3cr3t",
            "https://news.example.com/item?id=7",
            CHROME_UA,
            false,
        ),
        (
            V4,
            "/blog/post",
            "https://www.google.com/search?q=x",
            CHROME_UA,
            false,
        ),
        (
            V6,
            "/search?q=impfung&page=2",
            "https://www.google.com/search?q=impfung",
            FIREFOX_UA,
            false,
        ),
        (
            "10.20.30.40",
            "/files/report.pdf",
            "https://example.org/blog/post",
            IPHONE_UA,
            true,
        ),
        ("10.20.30.40", "/about.html", "-", IPHONE_UA, false),
        ("66.249.66.1", "/about", "-", GOOGLEBOT_UA, false),
        (V6, "/search?q=Impfung+Termin", "-", FIREFOX_UA, false),
    ];

    // Live: the same hits as pixel requests, the address passed on by a
    // trusted proxy as a web server in front of sparsam would.
    let live = Server::start_with(r#"trusted_proxies = ["127.0.0.1/32"]"#, "");
    for (ip, target, referer, ua, download) in hits {
        let url = format!("https://example.org{target}");
        let mut pairs = vec![("site", "demo".to_string()), ("url", url.clone())];
        if referer != "-" {
            pairs.push(("ref", referer.to_string()));
        }
        if download {
            pairs.push(("kind", "download".into()));
            pairs.push(("target", url));
        }
        let q: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let res = client()
            .get(live.url(&format!("/p.gif?{q}")))
            .header("User-Agent", ua)
            .header("X-Forwarded-For", ip)
            .send()
            .expect("hit");
        assert_eq!(res.status(), 200);
    }

    // Imported: the same hits as an access log of the last minute.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let config = test_config(&dir.join("data"), "", "");
    let config_path = dir.join("sparsam.toml");
    std::fs::write(&config_path, &config).unwrap();
    let start = Utc::now() - Duration::seconds(60);
    let log: String = hits
        .iter()
        .enumerate()
        .map(|(i, (ip, target, referer, ua, _))| {
            line_at(
                ip,
                start + Duration::seconds(i as i64),
                &format!("GET {target} HTTP/1.1"),
                referer,
                ua,
            )
        })
        .collect();
    let log_path = dir.join("access.log");
    std::fs::write(&log_path, log).unwrap();
    let out = import(&config_path, &[&log_path]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("bots dropped:       1\n"), "{stdout}");
    let imported = Server::start_config(dir, &config);

    let live_summary = report(&live, "/api/v1/sites/demo/summary");
    let imported_summary = report(&imported, "/api/v1/sites/demo/summary");
    assert_eq!(live_summary["pageviews"], 5, "{live_summary}");
    assert_eq!(live_summary["downloads"], 1, "{live_summary}");
    assert_eq!(live_summary["searches"], 2, "{live_summary}");
    for k in ["pageviews", "visitors", "visits", "downloads", "searches"] {
        assert_eq!(live_summary[k], imported_summary[k], "summary {k}");
    }
    let mut nonempty = Vec::new();
    for dim in dimensions() {
        let path = format!("/api/v1/sites/demo/breakdown/{dim}");
        let (l, i) = (report(&live, &path), report(&imported, &path));
        for k in ["rows", "total", "total_rows"] {
            assert_eq!(
                l[k], i[k],
                "{dim} {k}:\nlive     {}\nimported {}",
                l[k], i[k]
            );
        }
        if l["total_rows"].as_i64().unwrap_or(0) > 0 {
            nonempty.push(dim);
        }
    }
    // The comparison covered what the hits carry.
    for dim in [
        "page",
        "referrer",
        "referrer_type",
        "search_engine",
        "utm_source",
        "utm_campaign",
        "download",
        "search_term",
        "device_type",
        "browser",
        "os",
    ] {
        assert!(
            nonempty.iter().any(|d| d == dim),
            "{dim} empty: {nonempty:?}"
        );
    }
    let terms = report(&imported, "/api/v1/sites/demo/breakdown/search_term");
    let values: Vec<&str> = terms["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    assert!(values.contains(&"impfung"), "{values:?}");
    assert!(values.contains(&"Impfung Termin"), "{values:?}");
}

#[test]
fn imported_aged_lines_are_swept_by_the_rule() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let data = dir.join("data");
    let base = test_config(&data, "", "");
    let config_90 = dir.join("sparsam.toml");
    std::fs::write(&config_90, format!("{base}\n[retention]\nraw_days = 90\n")).unwrap();
    // The operator shortens retention to 89 days after importing.
    let config_89 = dir.join("sparsam-89.toml");
    std::fs::write(&config_89, format!("{base}\n[retention]\nraw_days = 89\n")).unwrap();

    let now = Utc::now();
    let edge = now - Duration::days(89);
    let outside = edge - Duration::minutes(2);
    let inside = edge + Duration::minutes(2);
    let log = dir.join("access.log");
    std::fs::write(
        &log,
        [
            line_at(
                V4,
                now - Duration::days(95),
                "GET /too-old HTTP/1.1",
                "-",
                CHROME_UA,
            ),
            line_at(V4, outside, "GET /just-outside HTTP/1.1", "-", CHROME_UA),
            line_at(V4, inside, "GET /just-inside HTTP/1.1", "-", CHROME_UA),
            line_at(
                V4,
                now - Duration::days(3),
                "GET /recent HTTP/1.1",
                "-",
                CHROME_UA,
            ),
        ]
        .concat(),
    )
    .unwrap();
    let out = import(&config_90, &[&log]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("imported events:    3 "), "{stdout}");
    assert!(stdout.contains("skipped (too old):  1\n"), "{stdout}");

    let cli = |config: &Path, args: &[&str]| {
        let out = Command::new(common::bin())
            .arg("--config")
            .arg(config)
            .args(args)
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, swept) = cli(&config_89, &["sweep"]);
    assert_eq!(code, Some(0), "{swept}");
    assert!(swept.contains("raw events:  deleted 1\n"), "{swept}");
    let cutoff: chrono::DateTime<Utc> = swept
        .lines()
        .find_map(|l| l.strip_prefix("cutoff:"))
        .and_then(|l| l.split_whitespace().next())
        .expect("cutoff line")
        .parse()
        .expect("cutoff time");
    // The rule: gone exactly when received before the cutoff.
    assert!(outside < cutoff && cutoff <= inside, "{swept}");

    let (code, json) = cli(&config_89, &["audit", "--json"]);
    assert_eq!(code, Some(0), "{json}");
    let view: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(view["raw_events"], 2, "{view}");
    assert_eq!(
        view["oldest_raw_event"],
        inside.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "the just-inside line survived"
    );
    assert_eq!(view["last_sweeps"][0]["events_deleted"], 1);
    let bytes = std::fs::read(data.join("sparsam.redb")).unwrap();
    let present = |p: &str| contains_bytes(&bytes, p.as_bytes());
    assert!(!present("/too-old"), "never imported");
}
