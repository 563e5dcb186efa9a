//! Floods from one shortened-address prefix: past the burst, ingest
//! requests get 429 with `Retry-After` and a JSON reason, nothing of them
//! is stored, other prefixes are still served, and the refusals are
//! counted in `/metrics`.

mod common;

use common::*;

fn pixel(s: &Server, forwarded_for: Option<&str>, n: usize) -> reqwest::blocking::Response {
    let mut req = client()
        .get(s.url(&format!(
            "/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2Fflood{n}"
        )))
        .header("User-Agent", CHROME_UA);
    if let Some(addr) = forwarded_for {
        req = req.header("X-Forwarded-For", addr);
    }
    req.send().unwrap()
}

#[test]
fn a_flood_from_one_prefix_is_refused_with_429_and_others_are_served() {
    // One request a minute after a burst of 5: the flood cannot refill
    // its budget while the test runs.
    let s = Server::start_with(
        "trusted_proxies = [\"127.0.0.1/32\"]\nrate_limit_per_minute = 1\nrate_limit_burst = 5",
        "",
    );
    let mut statuses = Vec::new();
    for n in 0..8 {
        let res = pixel(&s, Some("203.0.113.7"), n);
        let status = res.status().as_u16();
        if status == 429 {
            let retry: u64 = res.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry >= 1, "Retry-After {retry}");
            let body: serde_json::Value = res.json().expect("JSON reason");
            assert!(
                body["error"]
                    .as_str()
                    .unwrap()
                    .contains("too many requests"),
                "{body}"
            );
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);

    // Same /16 prefix, different full address: the same budget.
    assert_eq!(pixel(&s, Some("203.0.200.1"), 100).status(), 429);
    // Another prefix, and the beacon route of that prefix, still served.
    assert_eq!(pixel(&s, Some("198.51.100.9"), 101).status(), 200);
    let beacon = client()
        .post(s.url("/api/event"))
        .header("X-Forwarded-For", "203.0.113.8")
        .body(r#"{"site":"demo","url":"https://example.org/b"}"#)
        .send()
        .unwrap();
    assert_eq!(beacon.status(), 429, "the beacon shares the prefix budget");
    let matomo = client()
        .get(s.url("/matomo.php?idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2Fm"))
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .unwrap();
    assert_eq!(matomo.status(), 429, "Matomo shares the prefix budget");

    assert_eq!(pageviews(&s, "demo"), 6, "refused hits are not stored");
    let metrics = metrics(&s);
    let line = metrics
        .lines()
        .find(|l| l.starts_with("sparsam_hits_total") && l.contains("rate_limited"))
        .unwrap_or_else(|| panic!("no rate_limited counter in {metrics}"));
    assert!(line.ends_with(" 6"), "{line}");
    // The limiter is keyed by the prefix only: no full address in logs.
    assert!(!s.log().contains("203.0.113.7"));
}

#[test]
fn zero_switches_the_limit_off() {
    // A burst of one would refuse the second request if the limit were on.
    let s = Server::start_with("rate_limit_per_minute = 0\nrate_limit_burst = 1", "");
    for n in 0..30 {
        assert_eq!(pixel(&s, None, n).status(), 200);
    }
    assert_eq!(pageviews(&s, "demo"), 30);
}

#[test]
fn a_burst_of_zero_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let err = start_fails(
        dir.path(),
        "[server]\nlisten = \"127.0.0.1:0\"\nrate_limit_burst = 0\n[[sites]]\nid = \"a\"\nhostnames = [\"x.org\"]\n",
    );
    assert!(err.contains("server.rate_limit_burst"), "{err}");
}

/// A Matomo bulk body of `n` page views.
fn bulk_body(n: usize, tag: &str) -> String {
    let requests: Vec<String> = (0..n)
        .map(|i| format!("?idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2F{tag}{i}"))
        .collect();
    serde_json::json!({ "requests": requests }).to_string()
}

fn bulk(s: &Server, forwarded_for: &str, body: String) -> reqwest::blocking::Response {
    client()
        .post(s.url("/matomo.php"))
        .header("X-Forwarded-For", forwarded_for)
        .header("User-Agent", CHROME_UA)
        .body(body)
        .send()
        .unwrap()
}

fn rate_limited_by(s: &Server, measure: &str) -> u64 {
    let metrics = metrics(s);
    metrics
        .lines()
        .find(|l| {
            l.starts_with("sparsam_rate_limited_total") && l.contains(&format!("by=\"{measure}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// Events are counted, not requests: a bulk request of 100 page views
/// spends 100 of the prefix's events, so batching cannot get around the
/// limit; a refused bulk stores nothing of itself.
#[test]
fn a_bulk_request_counts_each_of_its_events() {
    let s = Server::start_with(
        "trusted_proxies = [\"127.0.0.1/32\"]\nrate_limit_per_minute = 0\n\
         rate_limit_events_per_minute = 1\nrate_limit_events_burst = 150",
        "",
    );
    let res = bulk(&s, "203.0.113.7", bulk_body(100, "first"));
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<serde_json::Value>().unwrap()["tracked"], 100);
    // 50 events left: another bulk of 100 is refused whole
    let res = bulk(&s, "203.0.113.7", bulk_body(100, "second"));
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    // a single page view still fits, a beacon batch of 60 does not
    assert_eq!(pixel(&s, Some("203.0.113.7"), 1).status(), 200);
    let batch: Vec<serde_json::Value> = (0..60)
        .map(|i| serde_json::json!({"site": "demo", "url": format!("https://example.org/b{i}")}))
        .collect();
    let res = client()
        .post(s.url("/api/event"))
        .header("X-Forwarded-For", "203.0.113.8")
        .header("User-Agent", CHROME_UA)
        .json(&batch)
        .send()
        .unwrap();
    assert_eq!(res.status(), 429, "the beacon shares the prefix's events");
    // another prefix has its own budget
    assert_eq!(
        bulk(&s, "198.51.100.9", bulk_body(100, "other")).status(),
        200
    );
    assert_eq!(pageviews(&s, "demo"), 201, "refused requests store nothing");
    assert_eq!(rate_limited_by(&s, "events"), 2);
}

/// Bytes are counted too: the query string and the body of every ingest
/// request, per prefix.
#[test]
fn request_bytes_count_against_the_limit() {
    let s = Server::start_with(
        "trusted_proxies = [\"127.0.0.1/32\"]\nrate_limit_per_minute = 0\n\
         max_body_bytes = 4096\nrate_limit_bytes_per_minute = 1\nrate_limit_bytes_burst = 4096",
        "",
    );
    let beacon = |addr: &str, padding: usize| {
        let body = serde_json::json!({
            "site": "demo",
            "url": format!("https://example.org/{}", "p".repeat(padding)),
        })
        .to_string();
        client()
            .post(s.url("/api/event"))
            .header("X-Forwarded-For", addr)
            .header("User-Agent", CHROME_UA)
            .body(body)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(beacon("203.0.113.7", 1800), 202);
    assert_eq!(beacon("203.0.113.7", 1800), 202);
    // about 3,700 of 4,096 bytes spent: 700 more are refused, a pixel of
    // under a hundred bytes still fits
    assert_eq!(beacon("203.0.113.7", 700), 429);
    assert_eq!(pixel(&s, Some("203.0.113.7"), 1).status(), 200);
    assert_eq!(beacon("198.51.100.9", 1800), 202, "another prefix");
    assert_eq!(pageviews(&s, "demo"), 4);
    assert_eq!(rate_limited_by(&s, "bytes"), 1);
}

#[test]
fn event_and_byte_bursts_below_one_request_are_config_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (setting, key) in [
        (
            "rate_limit_events_burst = 10",
            "server.rate_limit_events_burst",
        ),
        (
            "rate_limit_bytes_burst = 100",
            "server.rate_limit_bytes_burst",
        ),
    ] {
        let err = start_fails(
            dir.path(),
            &format!("[server]\nlisten = \"127.0.0.1:0\"\n{setting}\n[[sites]]\nid = \"a\"\nhostnames = [\"x.org\"]\n"),
        );
        assert!(err.contains(key), "{err}");
    }
}
