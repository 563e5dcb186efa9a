//! `sparsam import` end to end: a small access log (plain and gzip, with
//! malformed lines, a bot, assets, an old line) imported by the real binary
//! into a real store, then read back through a real server's API, and the
//! store file scanned for the full addresses.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use chrono::{Duration, Utc};
use common::{client, test_config, Server, ADMIN_TOKEN, CHROME_UA, FIREFOX_UA};
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
    assert!(stdout.contains("lines read:         14\n"), "{stdout}");
    // 6 page views, 1 download, 1 search.
    assert!(
        stdout.contains("imported events:    8 (6 page views, 1 downloads)"),
        "{stdout}"
    );
    assert!(stdout.contains("bots dropped:       1\n"), "{stdout}");
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
        assert!(
            !bytes.windows(n.len()).any(|w| w == n),
            "store contains {n:?}"
        );
    }
    let paths_present = |p: &str| bytes.windows(p.len()).any(|w| w == p.as_bytes());
    assert!(paths_present("/blog/post"), "imported URL should be stored");
    assert!(!paths_present("/ancient"), "old line must not be stored");

    // With the server holding the store, import refuses clearly.
    let out = import(&server.config_path, &[&log]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("running sparsam server"), "{stderr}");
    server.stop();
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
