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
        "rate_limit_per_minute = 0\nrate_limit_events_per_minute = 0\n[store]\nqueue_capacity = 1\nmax_batch = 1",
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
    let err = start_fails(
        dir.path(),
        "[server]\nlisten = \"127.0.0.1:0\"\n[privacy]\nipv4_prefix = 24\n[[sites]]\nid = \"a\"\nhostnames = [\"x.org\"]\n",
    );
    assert!(err.contains("privacy.ipv4_prefix"), "{err}");

    // A header a proxy does not write this way is refused by name.
    let err = start_fails(
        dir.path(),
        "[server]\nlisten = \"127.0.0.1:0\"\nclient_ip_header = \"true-client-ip\"\n[[sites]]\nid = \"a\"\nhostnames = [\"x.org\"]\n",
    );
    assert!(
        err.contains("server.client_ip_header") && err.contains("x-forwarded-for"),
        "{err}"
    );
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

/// A site's day is bounded: past `store.max_new_strings_per_site_day`
/// different values, new ones are stored as "(other)" (a URL on the
/// page's host keeps its origin; referrers and link targets on other hosts
/// do not, nor referrer names) and counted; past `store.max_events_per_site_day` events, hits
/// are answered alike but dropped and counted. Another site keeps its
/// own bounds.
#[test]
fn new_strings_and_events_per_site_and_day_are_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n[store]\nmax_new_strings_per_site_day = 5\nmax_events_per_site_day = 14\n",
        test_config(&tmp.path().join("data"), "", "")
    );
    let mut s = Server::start_config(tmp.path(), &config);
    let c = client();
    let send = |event: serde_json::Value| {
        let res = c
            .post(s.url("/api/event"))
            .header("User-Agent", CHROME_UA)
            .body(event.to_string())
            .send()
            .unwrap();
        assert_eq!(res.status(), 202);
    };
    let hit = |site: &str, host: &str, path: &str| {
        send(json!({"site": site, "url": format!("https://{host}{path}")}));
    };
    for i in 0..5 {
        hit("demo", "example.org", &format!("/page{i}"));
    }
    // the sixth different URL of the day is past the bound; a known one
    // is not
    hit("demo", "example.org", "/capmarker6");
    hit("demo", "example.org", "/page0");
    let metrics_text = metrics(&s);
    assert!(
        metrics_text
            .lines()
            .any(|l| l.starts_with("sparsam_strings_capped_total{site=\"demo\"} 1")),
        "{metrics_text}"
    );
    // past the bound, referrers and link targets on hosts of their own
    // add nothing either (neither their URLs nor the referrer's name)
    for i in 0..2 {
        send(json!({"site": "demo", "url": "https://example.org/page1",
            "ref": format!("https://refmarker-host{i}.example/from")}));
        send(json!({"site": "demo", "url": "https://example.org/page1",
            "target": format!("https://targetmarker-host{i}.example/file.pdf")}));
    }
    // events 12 to 16 of the day: the last two are dropped (two of the
    // fourteen kept are link clicks, not page views)
    for i in 0..5 {
        hit("demo", "example.org", &format!("/page{i}"));
    }
    assert_eq!(pageviews(&s, "demo"), 12);
    assert!(
        metrics(&s).contains("sparsam_hits_total{outcome=\"day_full\"} 2"),
        "{}",
        metrics(&s)
    );
    // the other site has bounds of its own
    hit("other", "other.example", "/capmarker-other");
    assert_eq!(pageviews(&s, "other"), 1);
    s.stop();

    let events = stored_events(&s.store_path());
    let urls: Vec<&str> = events.iter().map(|e| e.url.as_str()).collect();
    assert!(urls.contains(&"https://example.org/(other)"), "{urls:?}");
    assert!(
        urls.contains(&"https://other.example/capmarker-other"),
        "{urls:?}"
    );
    let bytes = std::fs::read(s.store_path()).unwrap();
    assert!(
        !contains_bytes(&bytes, b"capmarker6"),
        "a value past the bound reached the store"
    );
    for marker in [&b"refmarker-host"[..], b"targetmarker-host"] {
        assert!(
            !contains_bytes(&bytes, marker),
            "a host past the bound reached the store: {}",
            String::from_utf8_lossy(marker)
        );
    }
}

/// Hits whose referrer is on the embedded referrer-spam list, or on the
/// operator's own `referrer_spam.extra_hosts`, are answered like any hit,
/// counted in a metric and never stored, whichever protocol sent them. A
/// legitimate referrer is still counted.
#[test]
fn referrer_spam_is_dropped_before_storing_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n[referrer_spam]\nextra_hosts = [\"own-spam-marker.example\", \"bücher-spam.example\"]\n",
        test_config(&tmp.path().join("data"), "", "")
    );
    let mut s = Server::start_config(tmp.path(), &config);
    let c = client();
    let pixel_from = |referrer: &str, path: &str, user_agent: &str| {
        let res = c
            .get(s.url(&format!(
                "/p.gif?site=demo&url={}&ref={}",
                enc(&format!("https://example.org/{path}")),
                enc(referrer)
            )))
            .header("User-Agent", user_agent)
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "image/gif");
    };
    let pixel = |referrer: &str, path: &str| pixel_from(referrer, path, CHROME_UA);
    // Listed host, a subdomain of a listed host, an extra host's subdomain,
    // an extra host given in Unicode and sent in punycode.
    pixel("https://0-0.fr/", "spam-one");
    pixel("http://www.zvuker.net/some/page", "spam-two");
    pixel("https://cdn.own-spam-marker.example/x", "spam-three");
    pixel("https://xn--bcher-spam-9db.example/", "spam-four");
    // The same protocols that carry a referrer elsewhere.
    let beacon = c
        .post(s.url("/api/event"))
        .header("User-Agent", CHROME_UA)
        .header("Content-Type", "text/plain")
        .body(
            json!({"site": "demo", "url": "https://example.org/spam-five", "ref": "https://01casino-x.ru/"})
                .to_string(),
        )
        .send()
        .unwrap();
    assert_eq!(beacon.status(), 202);
    let plausible = c
        .post(s.url("/api/event"))
        .header("User-Agent", CHROME_UA)
        .header("Content-Type", "text/plain")
        .body(r#"{"n":"pageview","u":"https://example.org/spam-six","d":"example.org","r":"https://03e.info/"}"#)
        .send()
        .unwrap();
    assert_eq!(plausible.status(), 202);
    let matomo = c
        .get(s.url(&format!(
            "/matomo.php?idsite=1&rec=1&url={}&urlref={}",
            enc("https://example.org/spam-seven"),
            enc("https://www.0-0.fr/")
        )))
        .header("User-Agent", CHROME_UA)
        .send()
        .unwrap();
    assert_eq!(matomo.status(), 200);
    // A legitimate referrer, and one that only looks like a listed host
    // (another visitor, so it starts a visit of its own).
    pixel("https://www.bund.de/", "legit");
    pixel_from("https://zvuker.net.example.net/", "lookalike", FIREFOX_UA);

    let sum = summary(&s, "demo");
    assert_eq!(sum["pageviews"], 2, "{sum}");
    let referrers: serde_json::Value = c
        .get(s.url("/api/v1/sites/demo/breakdown/referrer?period=today&limit=100"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut names: Vec<&str> = referrers["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["www.bund.de", "zvuker.net.example.net"],
        "{referrers}"
    );
    let m = metrics(&s);
    assert!(
        m.contains("sparsam_hits_total{outcome=\"referrer_spam\"} 7"),
        "{m}"
    );

    s.stop();
    let events = stored_events(&s.store_path());
    let urls: Vec<&str> = events.iter().map(|e| e.url.as_str()).collect();
    assert_eq!(urls.len(), 2, "{urls:?}");
    assert!(urls.iter().all(|u| !u.contains("spam")), "{urls:?}");
    let file = std::fs::read(s.store_path()).unwrap();
    for marker in [
        "spam-one",
        "0-0.fr",
        "zvuker.net/",
        "own-spam-marker",
        "01casino",
        "03e.info",
        "bcher-spam",
    ] {
        assert!(
            !contains_bytes(&file, marker.as_bytes()),
            "{marker} in the store"
        );
    }
}

/// A bad extra spam host stops the server before it listens, naming the key.
#[test]
fn a_bad_referrer_spam_host_names_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n[referrer_spam]\nextra_hosts = [\"ok.example\", \"https://spam.example/\"]\n",
        test_config(&tmp.path().join("data"), "", "")
    );
    let err = start_fails(tmp.path(), &config);
    assert!(err.contains("referrer_spam.extra_hosts[1]"), "{err}");
}

/// International domain names: a site's hostnames match whether the config
/// and the hit write them in Unicode or in punycode, and reports show them
/// in Unicode (pages, referrers, the site list).
#[test]
fn international_domain_names_match_in_either_form_and_read_in_unicode() {
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "{data}"
workers = 2

[auth]
admin_token = "{ADMIN_TOKEN}"

[[sites]]
id = "demo"
hostnames = ["bücher.example"]
tokens = ["{SITE_TOKEN}"]

[[sites]]
id = "other"
hostnames = ["*.xn--caf-dma.example"]
tokens = ["{OTHER_TOKEN}"]
"#,
        data = tmp.path().join("data").display()
    );
    let mut s = Server::start_config(tmp.path(), &config);
    let c = client();
    let pixel = |site: &str, url: &str, referrer: &str| {
        let res = c
            .get(s.url(&format!(
                "/p.gif?site={site}&url={}&ref={}",
                enc(url),
                enc(referrer)
            )))
            .header("User-Agent", CHROME_UA)
            .send()
            .unwrap();
        assert_eq!(res.status(), 200, "{url}");
    };
    // Configured in Unicode, sent in punycode and in Unicode.
    pixel(
        "demo",
        "https://xn--bcher-kva.example/seite",
        "https://www.xn--mnchen-3ya.example/",
    );
    pixel(
        "demo",
        "https://bücher.example/seite",
        "https://münchen.example/x",
    );
    // Configured in punycode (with subdomains), sent in Unicode.
    pixel("other", "https://www.café.example/karte", "");
    // Plausible names the site by its domain, in either form.
    for domain in ["bücher.example", "xn--bcher-kva.example"] {
        let res = c
            .post(s.url("/api/event"))
            .header("User-Agent", CHROME_UA)
            .header("Content-Type", "text/plain")
            .body(format!(
                r#"{{"n":"pageview","u":"https://bücher.example/plausible","d":"{domain}"}}"#
            ))
            .send()
            .unwrap();
        assert_eq!(res.status(), 202, "{domain}");
    }
    // Another host is still refused.
    let res = c
        .get(s.url(&format!(
            "/p.gif?site=demo&url={}",
            enc("https://buecher.example/")
        )))
        .header("User-Agent", CHROME_UA)
        .send()
        .unwrap();
    assert_eq!(res.status(), 403);

    let rows = |site: &str, dim: &str| -> Vec<String> {
        let v: serde_json::Value = c
            .get(s.url(&format!(
                "/api/v1/sites/{site}/breakdown/{dim}?period=today&limit=100"
            )))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let mut out: Vec<String> = v["rows"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|r| format!("{} {}", r["value"].as_str().unwrap(), r["pageviews"]))
            .collect();
        out.sort();
        out
    };
    assert_eq!(
        rows("demo", "page"),
        [
            "https://bücher.example/plausible 2",
            "https://bücher.example/seite 2"
        ]
    );
    // Every page view of the visit is attributed to its referrer.
    assert_eq!(rows("demo", "referrer"), ["www.münchen.example 4"]);
    assert_eq!(rows("other", "page"), ["https://www.café.example/karte 1"]);
    let sites: serde_json::Value = c
        .get(s.url("/api/v1/sites"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(sites["sites"][0]["hostnames"], json!(["bücher.example"]));
    assert_eq!(sites["sites"][1]["hostnames"], json!(["*.café.example"]));
    let notice = c.get(s.url("/privacy")).send().unwrap().text().unwrap();
    assert!(
        notice.contains("bücher.example") && notice.contains("*.café.example"),
        "the privacy notice names the hosts in Unicode"
    );

    s.stop();
    let events = stored_events(&s.store_path());
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|e| !e.url.contains("xn--")), "{events:?}");
}
