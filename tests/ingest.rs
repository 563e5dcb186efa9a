//! End-to-end ingest: the real binary on a free port, real HTTP, real redb.

mod common;

use common::*;
use serde_json::json;

#[test]
fn pixel_hit_is_counted_and_answered_with_an_uncached_gif() {
    let s = Server::start();
    let c = client();
    let url = format!(
        "/p.gif?site=demo&url={}&ref={}&title=Start",
        enc("https://example.org/start?q=masern"),
        enc("https://www.google.de/search?q=secret")
    );
    let res = c
        .get(s.url(&url))
        .header("User-Agent", CHROME_UA)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/gif");
    assert!(res.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("no-store"));
    assert!(res.headers().get("set-cookie").is_none());
    let body = res.bytes().unwrap();
    assert!(body.starts_with(b"GIF89a"));

    let sum = summary(&s, "demo");
    assert_eq!(sum["pageviews"], 1);
    assert_eq!(sum["visits"], 1);
    assert_eq!(sum["visitors"], 1);
    assert_eq!(sum["searches"], 1, "the q parameter is a site search");
    assert_eq!(summary(&s, "other")["pageviews"], 0);
}

#[test]
fn pixel_falls_back_to_the_referer_header_for_the_page() {
    let s = Server::start();
    let res = client()
        .get(s.url("/p.gif?site=demo"))
        .header("Referer", "https://example.org/noscript")
        .header("User-Agent", FIREFOX_UA)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(pageviews(&s, "demo"), 1);
}

#[test]
fn beacon_batch_records_every_event_kind_and_dwell_time() {
    let s = Server::start();
    let c = client();
    let events = json!([
        {"site": "demo", "kind": "pageview", "url": "https://example.org/a", "pv": "pv-1", "title": "A"},
        {"site": "demo", "kind": "ping", "url": "https://example.org/a", "pv": "pv-1", "engaged_ms": 3000},
        {"site": "demo", "kind": "ping", "url": "https://example.org/a", "pv": "pv-1", "engaged_ms": 9000},
        {"site": "demo", "url": "https://example.org/a", "pv": "pv-1", "target": "https://example.org/files/report.pdf?token=x"},
        {"site": "demo", "url": "https://example.org/a", "pv": "pv-1", "target": "https://www.bund.de/"},
        {"site": "demo", "kind": "pageview", "url": "https://example.org/b", "pv": "pv-2"},
        {"site": "demo", "kind": "search", "url": "https://example.org/b", "pv": "pv-2", "search": "impfung", "results": 0}
    ]);
    let res = c
        .post(s.url("/api/event"))
        .header("User-Agent", CHROME_UA)
        .header("Content-Type", "text/plain")
        .body(events.to_string())
        .send()
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    assert!(res.headers().get("set-cookie").is_none());

    let sum = summary(&s, "demo");
    assert_eq!(sum["pageviews"], 2);
    assert_eq!(sum["visits"], 1);
    assert_eq!(sum["downloads"], 1);
    assert_eq!(sum["outbound"], 1);
    assert_eq!(sum["searches"], 1);
    assert_eq!(sum["bounce_rate"], 0.0);
    assert_eq!(
        sum["avg_dwell_seconds"], 9.0,
        "dwell is the largest ping, once"
    );
}

#[test]
fn single_object_and_wrapped_forms_are_accepted() {
    let s = Server::start();
    let c = client();
    for body in [
        json!({"site": "demo", "url": "https://example.org/x"}),
        json!({"events": [{"site": "demo", "url": "https://example.org/y"}]}),
    ] {
        let res = c
            .post(s.url("/api/event"))
            .header("User-Agent", CHROME_UA)
            .body(body.to_string())
            .send()
            .unwrap();
        assert_eq!(res.status(), 202);
    }
    assert_eq!(pageviews(&s, "demo"), 2);
}

#[test]
fn bad_input_gets_a_reason_and_stores_nothing() {
    let s = Server::start();
    let c = client();
    let long = "a".repeat(3000);
    let cases: Vec<(&str, reqwest::blocking::RequestBuilder, u16, &str)> = vec![
        (
            "unknown site",
            c.post(s.url("/api/event"))
                .body(r#"{"site":"nope","url":"https://example.org/"}"#),
            404,
            "unknown site",
        ),
        (
            "host not allowed",
            c.post(s.url("/api/event"))
                .body(r#"{"site":"demo","url":"https://evil.example/"}"#),
            403,
            "not allowed",
        ),
        (
            "malformed json",
            c.post(s.url("/api/event")).body("{\"site\":"),
            400,
            "malformed",
        ),
        (
            "invalid utf-8",
            c.post(s.url("/api/event")).body(vec![0xff, 0xfe, 0x00]),
            400,
            "malformed",
        ),
        (
            "missing url",
            c.post(s.url("/api/event")).body(r#"{"site":"demo"}"#),
            400,
            "url",
        ),
        (
            "negative number",
            c.post(s.url("/api/event"))
                .body(r#"{"site":"demo","url":"https://example.org/","engaged_ms":-4}"#),
            400,
            "engaged_ms",
        ),
        (
            "not http",
            c.post(s.url("/api/event"))
                .body(r#"{"site":"demo","url":"javascript:alert(1)"}"#),
            400,
            "url",
        ),
        (
            "oversized body",
            c.post(s.url("/api/event")).body(format!(
                "[{}]",
                vec![r#"{"site":"demo","url":"https://example.org/"}"#; 3000].join(",")
            )),
            413,
            "body",
        ),
        (
            "too many events",
            c.post(s.url("/api/event")).body(format!(
                "[{}]",
                vec![r#"{"site":"demo","url":"https://example.org/"}"#; 101].join(",")
            )),
            413,
            "too many",
        ),
        (
            "field too long",
            c.post(s.url("/api/event")).body(format!(
                r#"{{"site":"demo","url":"https://example.org/{long}"}}"#
            )),
            413,
            "url",
        ),
        (
            "ping without pv",
            c.post(s.url("/api/event"))
                .body(r#"{"site":"demo","kind":"ping","url":"https://example.org/"}"#),
            400,
            "pv",
        ),
        (
            "pixel without site",
            c.get(s.url("/p.gif?url=https%3A%2F%2Fexample.org%2F")),
            400,
            "site",
        ),
        (
            "pixel bad percent",
            c.get(s.url("/p.gif?site=demo&url=%E0%A4%A")),
            400,
            "url",
        ),
        (
            "dwell time above server.max_engaged_seconds",
            c.post(s.url("/api/event")).body(
                r#"{"site":"demo","kind":"ping","pv":"p1","url":"https://example.org/","engaged_ms":86400001}"#,
            ),
            400,
            "engaged_ms",
        ),
        (
            "pixel huge number",
            c.get(s.url(
                "/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2F&engaged_ms=99999999999999",
            )),
            400,
            "engaged_ms",
        ),
    ];
    for (name, req, status, needle) in cases {
        let res = req.header("User-Agent", CHROME_UA).send().unwrap();
        assert_eq!(res.status().as_u16(), status, "{name}");
        let text = res.text().unwrap();
        assert!(
            text.to_lowercase().contains(needle),
            "{name}: body {text:?} lacks {needle:?}"
        );
    }
    assert_eq!(pageviews(&s, "demo"), 0);
    let health = client().get(s.url("/healthz")).send().unwrap();
    assert_eq!(health.status(), 200);
    assert!(!s.log().contains("panicked"), "a handler panicked");
}

#[test]
fn bots_are_not_counted_but_answered_like_visitors() {
    let s = Server::start();
    let c = client();
    const BOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    let pixel = |ua: &str| {
        observe(
            c.get(s.url("/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2F"))
                .header("User-Agent", ua)
                .send()
                .unwrap(),
        )
    };
    let beacon = |ua: &str| {
        observe(
            c.post(s.url("/api/event"))
                .header("User-Agent", ua)
                .body(r#"{"site":"demo","url":"https://example.org/b"}"#)
                .send()
                .unwrap(),
        )
    };
    let matomo = |ua: &str| {
        observe(
            c.get(
                s.url("/matomo.php?idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2Fm&send_image=0"),
            )
            .header("User-Agent", ua)
            .send()
            .unwrap(),
        )
    };
    let bot = (pixel(BOT), beacon(BOT), matomo(BOT));
    assert_eq!(pageviews(&s, "demo"), 0);
    let human = (pixel(CHROME_UA), beacon(CHROME_UA), matomo(CHROME_UA));
    assert_eq!(pageviews(&s, "demo"), 3);
    // Status, every header but Date, and body: the same.
    assert_eq!(bot, human);
    assert_eq!(bot.0 .0, 200);
    assert!(bot.0 .2.starts_with(b"GIF89a"));
    let metrics = metrics(&s);
    assert!(
        metrics.contains("sparsam_hits_total{outcome=\"bot\"} 3"),
        "{metrics}"
    );
}

#[test]
fn body_client_hints_add_to_header_hints() {
    let mut s = Server::start();
    const REDUCED: &str = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36";
    let res = client()
        .post(s.url("/api/event"))
        .header("User-Agent", REDUCED)
        .header("Sec-CH-UA-Model", "\"Pixel 8\"")
        .header("Sec-CH-UA-Platform", "\"Android\"")
        .header("Sec-CH-UA-Platform-Version", "\"13.0.0\"")
        .body(
            r#"{"site":"demo","url":"https://example.org/","hints":{"platformVersion":"14.0.0"}}"#,
        )
        .send()
        .unwrap();
    assert_eq!(res.status(), 202);
    s.stop();
    let events = stored_events(&s.store_path());
    let d = &events[0].device;
    assert_eq!(
        d.model, "Pixel 8",
        "the header's model fills the gap: {d:?}"
    );
    assert_eq!(d.brand, "Google", "{d:?}");
    assert_eq!(d.os_version, "14.0", "the body's version wins: {d:?}");
}

#[test]
fn full_store_queue_answers_503_and_loses_no_acknowledged_event() {
    use std::sync::{Arc, Barrier};
    let mut s = Server::start_with(
        "rate_limit_per_minute = 0\n[store]\nqueue_capacity = 1\nmax_batch = 1",
        "",
    );
    let base = s.base.clone();
    let mut acked: Vec<String> = Vec::new();
    let mut busy = 0;
    let mut rounds = 0;
    const THREADS: usize = 24;
    while busy == 0 || rounds < 3 {
        assert!(rounds < 60, "no 503 in {rounds} bursts of {THREADS}");
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (base, barrier) = (base.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let path = format!("burst/{rounds}/{i}");
                    let c = client();
                    let req = if i % 2 == 0 {
                        c.get(format!(
                            "{base}/p.gif?site=demo&url={}",
                            enc(&format!("https://example.org/{path}"))
                        ))
                    } else {
                        c.post(format!("{base}/api/event")).body(format!(
                            r#"{{"site":"demo","url":"https://example.org/{path}"}}"#
                        ))
                    };
                    let req = req.header("User-Agent", CHROME_UA);
                    barrier.wait();
                    let res = req.send().unwrap();
                    let status = res.status().as_u16();
                    let retry = res
                        .headers()
                        .get("retry-after")
                        .map(|v| v.to_str().unwrap().to_string());
                    let body = res.text().unwrap();
                    (path, status, retry, body)
                })
            })
            .collect();
        for h in handles {
            let (path, status, retry, body) = h.join().unwrap();
            match status {
                200 | 202 => acked.push(format!("https://example.org/{path}")),
                503 => {
                    busy += 1;
                    assert!(retry.is_some_and(|r| r.parse::<u64>().is_ok()), "{body}");
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                    assert!(
                        v["error"].as_str().unwrap().contains("busy"),
                        "JSON reason: {body}"
                    );
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        rounds += 1;
    }
    // Still serving once the burst is over.
    let after = client()
        .get(s.url("/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2Fafter"))
        .header("User-Agent", CHROME_UA)
        .send()
        .unwrap();
    assert_eq!(after.status(), 200);
    acked.push("https://example.org/after".into());
    let metrics = metrics(&s);
    assert!(
        metrics.contains("sparsam_hits_total{outcome=\"busy\"}"),
        "{metrics}"
    );
    s.stop();

    // Every acknowledged event is stored, and nothing that was refused.
    let mut stored: Vec<String> = stored_events(&s.store_path())
        .into_iter()
        .map(|e| e.url)
        .collect();
    stored.sort();
    acked.sort();
    assert_eq!(stored, acked, "{busy} answered 503 over {rounds} bursts");
    eprintln!(
        "{} acknowledged, {busy} answered 503, {rounds} bursts of {THREADS}",
        acked.len()
    );
}

#[test]
fn data_survives_a_graceful_restart() {
    let mut s = Server::start();
    let c = client();
    for i in 0..5 {
        let res = c
            .get(s.url(&format!(
                "/p.gif?site=demo&url={}",
                enc(&format!("https://example.org/p{i}"))
            )))
            .header("User-Agent", CHROME_UA)
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let before = summary(&s, "demo");
    let tmp = s.take_tempdir();
    s.stop();
    assert!(s.log().contains("store closed"));
    let config = std::fs::read_to_string(&s.config_path).unwrap();
    let s2 = Server::start_config(&s.dir, &config);
    let after = summary(&s2, "demo");
    assert_eq!(before, after);
    assert_eq!(after["pageviews"], 5);
    drop(s2);
    drop(tmp);
}

#[test]
fn config_errors_name_the_key_and_exit_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:0\"\n[privacy]\nipv4_prefix = 24\n[[sites]]\nid = \"a\"\nhostnames = [\"x.org\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("privacy.ipv4_prefix"), "{err}");
    assert!(!err.contains("listening"), "{err}");
}

#[test]
fn healthz_and_unknown_routes() {
    let s = Server::start();
    let c = client();
    assert_eq!(
        c.get(s.url("/healthz")).send().unwrap().text().unwrap(),
        "ok"
    );
    let res = c.get(s.url("/nope")).send().unwrap();
    assert_eq!(res.status(), 404);
}

#[test]
fn ua_subcommand_classifies_lines() {
    use std::io::Write;
    let mut child = std::process::Command::new(bin())
        .arg("ua")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        let stdin = child.stdin.as_mut().unwrap();
        writeln!(stdin, "{}", json!({"ua": "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36", "headers": {"Sec-CH-UA-Model": "\"Pixel 8\""}})).unwrap();
        writeln!(stdin, "not json").unwrap();
        writeln!(stdin, "{}", json!({"ua": "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36", "headers": {"Sec-CH-UA-Model": "Pixel 8"}})).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["model"], "Pixel 8");
    assert_eq!(lines[0]["device_type"], "smartphone");
    assert!(lines[1]["error"].is_string());
    assert_eq!(
        lines[2]["model"], "Pixel 8",
        "bare value, as people type it"
    );
    assert_eq!(lines[2]["brand"], "Google");
}
