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
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:0\"\nrate_limit_burst = 0\n[[sites]]\nid = \"a\"\nhostnames = [\"x.org\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.rate_limit_burst"), "{err}");
    assert!(!err.contains("listening"), "{err}");
}
