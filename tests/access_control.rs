//! Access control against the real binary: every protected `/api/v1`
//! route in the OpenAPI document refuses missing, wrong, query-string and
//! non-Bearer tokens with 401 and another site's token with 403; the audit
//! and sweep routes are admin-only; the dashboard cannot be framed and the
//! opt-out page only by the configured sites; no route's answer carries a
//! token or the visitor salt.

mod common;

use common::*;
use serde_json::Value;

fn get(s: &Server, path: &str, auth: Option<&str>) -> (u16, String, reqwest::header::HeaderMap) {
    let mut req = client().get(s.url(path));
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let res = req.send().unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, res.text().unwrap(), headers)
}

fn protected_paths() -> Vec<String> {
    let doc: Value =
        serde_json::to_value(sparsam::http::openapi::document()).expect("the OpenAPI document");
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if item.get("get").is_none() {
            continue;
        }
        let public = item["get"]["security"]
            .as_array()
            .is_some_and(|a| a.is_empty());
        if !public {
            out.push(
                path.replace("{site}", "demo")
                    .replace("{dimension}", "page"),
            );
        }
    }
    assert!(out.len() >= 5, "protected routes found: {out:?}");
    out
}

#[test]
fn every_protected_route_refuses_bad_tokens() {
    let s = Server::start();
    let site_bearer = format!("Bearer {SITE_TOKEN}");
    let other_bearer = format!("Bearer {OTHER_TOKEN}");
    let admin_bearer = format!("Bearer {ADMIN_TOKEN}");
    for path in protected_paths() {
        let with_query = |q: &str| {
            let sep = if path.contains('?') { '&' } else { '?' };
            format!("{path}{sep}{q}")
        };
        let unauthorized: Vec<(String, Option<String>)> = vec![
            (path.clone(), None),
            (path.clone(), Some("Bearer wrong-token-0123456789".into())),
            (path.clone(), Some(format!("Bearer {ADMIN_TOKEN}x"))),
            (path.clone(), Some(format!("Bearer {}", &ADMIN_TOKEN[..10]))),
            (path.clone(), Some(format!("Basic {ADMIN_TOKEN}"))),
            (path.clone(), Some(ADMIN_TOKEN.into())),
            (path.clone(), Some("Bearer ".into())),
            (with_query(&format!("token={ADMIN_TOKEN}")), None),
            (with_query(&format!("access_token={ADMIN_TOKEN}")), None),
            (with_query(&format!("token_auth={ADMIN_TOKEN}")), None),
        ];
        for (url, auth) in unauthorized {
            let (status, body, headers) = get(&s, &url, auth.as_deref());
            assert_eq!(status, 401, "GET {url} with {auth:?}: {body}");
            assert!(body.contains("\"error\""), "{url}: {body}");
            assert!(headers.get("www-authenticate").is_some(), "{url}");
        }
        let (admin_status, _, _) = get(&s, &path, Some(&admin_bearer));
        assert_eq!(admin_status, 200, "GET {path} with the admin token");
        if path.contains("/demo/") {
            let (status, body, _) = get(&s, &path, Some(&other_bearer));
            assert_eq!(status, 403, "GET {path} with another site's token: {body}");
            let (status, _, _) = get(&s, &path, Some(&site_bearer));
            assert_eq!(status, 200, "GET {path} with the site's token");
        }
    }
    // POST routes (the on-demand sweep): the same refusals, and only the
    // admin token is let through (with a dry run, so nothing changes).
    let doc: Value = serde_json::to_value(sparsam::http::openapi::document()).unwrap();
    let posts: Vec<&String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, item)| item.get("post").is_some())
        .map(|(p, _)| p)
        .collect();
    assert!(posts.iter().any(|p| *p == "/api/v1/sweep"), "{posts:?}");
    for path in posts {
        let post = |url: &str, auth: Option<&str>| {
            let mut req = client().post(s.url(url));
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            let res = req.send().unwrap();
            let status = res.status().as_u16();
            let www = res.headers().get("www-authenticate").is_some();
            (status, res.text().unwrap(), www)
        };
        let dry = format!("{path}?dry_run=true");
        for (url, auth) in [
            (dry.clone(), None),
            (
                dry.clone(),
                Some("Bearer wrong-token-0123456789".to_string()),
            ),
            (dry.clone(), Some(format!("Bearer {ADMIN_TOKEN}x"))),
            (dry.clone(), Some(format!("Basic {ADMIN_TOKEN}"))),
            (dry.clone(), Some(ADMIN_TOKEN.to_string())),
            (format!("{dry}&token={ADMIN_TOKEN}"), None),
        ] {
            let (status, body, www) = post(&url, auth.as_deref());
            assert_eq!(status, 401, "POST {url} with {auth:?}: {body}");
            assert!(www && body.contains("\"error\""), "POST {url}: {body}");
        }
        for bearer in [&site_bearer, &other_bearer] {
            let (status, body, _) = post(&dry, Some(bearer));
            assert_eq!(status, 403, "POST {dry} with a site token: {body}");
        }
        let (status, body, _) = post(&dry, Some(&admin_bearer));
        assert_eq!(status, 200, "POST {dry} with the admin token: {body}");
    }

    // The audit view is for the operator only.
    let (status, body, _) = get(&s, "/api/v1/audit", Some(&site_bearer));
    assert_eq!(status, 403, "audit with a site token: {body}");
    let (status, _, _) = get(&s, "/api/v1/audit", None);
    assert_eq!(status, 401);
    let (status, _, _) = get(&s, "/api/v1/audit", Some(&admin_bearer));
    assert_eq!(status, 200);
}

#[test]
fn dashboard_cannot_be_framed_and_optout_only_by_the_sites() {
    let s = Server::start();
    for path in [
        "/dashboard",
        "/dashboard/",
        "/dashboard/app.js",
        "/dashboard/nope",
    ] {
        let (_, _, h) = get(&s, path, None);
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
    }
    let (status, _, h) = get(&s, "/optout", None);
    assert_eq!(status, 200);
    let csp = h["content-security-policy"].to_str().unwrap();
    let ancestors = csp
        .split(';')
        .map(str::trim)
        .find_map(|d| d.strip_prefix("frame-ancestors "))
        .unwrap_or_else(|| panic!("no frame-ancestors in {csp}"));
    let sources: Vec<&str> = ancestors.split_whitespace().collect();
    assert!(!sources.contains(&"*"), "{csp}");
    for host in ["example.org", "localhost", "other.example"] {
        assert!(
            sources.contains(&format!("https://{host}").as_str()),
            "{csp}"
        );
    }
    assert!(
        sources.iter().all(|src| *src == "'self'"
            || ["example.org", "localhost", "127.0.0.1", "other.example"]
                .iter()
                .any(|h| src.ends_with(&format!("://{h}")))),
        "a source beyond the configured sites: {csp}"
    );
}

#[test]
fn no_route_reveals_tokens_or_the_salt() {
    let s = Server::start();
    // Some data, so reports are not empty.
    client()
        .get(s.url("/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2F"))
        .header("User-Agent", CHROME_UA)
        .send()
        .unwrap();
    let mut salt_files = Vec::new();
    for e in std::fs::read_dir(s.dir.join("data")).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().contains("salt") {
            salt_files.push(std::fs::read(&p).unwrap());
        }
    }
    assert!(!salt_files.is_empty(), "no salt file to compare against");
    // The salt is the file's tail; any 8 of its bytes, in hex or raw, is a leak.
    let mut needles: Vec<Vec<u8>> = vec![
        ADMIN_TOKEN.as_bytes().to_vec(),
        SITE_TOKEN.as_bytes().to_vec(),
        OTHER_TOKEN.as_bytes().to_vec(),
    ];
    for f in &salt_files {
        let tail = &f[f.len().saturating_sub(16)..];
        let hex: String = tail[..8].iter().map(|b| format!("{b:02x}")).collect();
        needles.push(hex.into_bytes());
        needles.push(tail[..8].to_vec());
    }
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let mut paths: Vec<String> = protected_paths();
    paths.extend(
        [
            "/api/v1/openapi.json",
            "/api/v1/audit",
            "/api/v1/sites/demo/summary?format=csv",
            "/healthz",
            "/metrics",
            "/optout",
            "/privacy",
            "/t.js",
            "/dashboard/",
            "/no-such-route",
            "/p.gif?site=nope&url=x",
        ]
        .map(String::from),
    );
    for path in &paths {
        for auth in [None, Some(admin.as_str())] {
            let res = {
                let mut r = client().get(s.url(path));
                if let Some(a) = auth {
                    r = r.header("Authorization", a);
                }
                r.send().unwrap()
            };
            let head = format!("{:?}", res.headers());
            let body = res.bytes().unwrap();
            for n in &needles {
                let hit = |hay: &[u8]| contains_bytes(hay, n);
                assert!(
                    !hit(&body) && !hit(head.as_bytes()),
                    "GET {path} reveals a secret ({})",
                    String::from_utf8_lossy(n)
                );
            }
        }
    }
}

#[test]
fn metrics_need_the_admin_token() {
    let s = Server::start();
    // one hit, so the counters have something to show
    let hit = client()
        .get(s.url("/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2Fmetrics"))
        .header("User-Agent", CHROME_UA)
        .send()
        .unwrap();
    assert_eq!(hit.status(), 200);
    let (status, body, headers) = get(&s, "/metrics", None);
    assert_eq!(status, 401, "{body}");
    assert!(headers.get("www-authenticate").is_some());
    assert!(!body.contains("sparsam_"), "{body}");
    let (status, body, _) = get(&s, "/metrics", Some(&format!("Bearer {SITE_TOKEN}")));
    assert_eq!(status, 403, "a site's token: {body}");
    let (status, body, _) = get(&s, "/metrics", Some(&format!("Bearer {ADMIN_TOKEN}")));
    assert_eq!(status, 200);
    assert!(
        body.lines().any(|l| l.starts_with("sparsam_hits_total{")),
        "{body}"
    );
}

/// A sweep request without the token is refused at once, before the
/// server waits for (or buffers) a body that may never come.
#[test]
fn the_sweep_route_checks_the_token_before_reading_a_body() {
    use std::io::{Read, Write};
    let s = Server::start_with("client_timeout_secs = 60", "");
    let addr = s.base.trim_start_matches("http://").to_string();
    for auth in ["", "Authorization: Bearer wrong-token-0123456789\r\n"] {
        let mut conn = std::net::TcpStream::connect(&addr).unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        // announces a large body and sends none of it
        write!(
            conn,
            "POST /api/v1/sweep HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: 10000000\r\n\r\n"
        )
        .unwrap();
        let mut buf = [0u8; 512];
        let n = conn.read(&mut buf).unwrap_or(0);
        let head = String::from_utf8_lossy(&buf[..n]);
        assert!(
            head.starts_with("HTTP/1.1 401"),
            "answer without a valid token ({auth:?}): {head:?}"
        );
    }
}

/// Wrong tokens from one address prefix: past the configured number per
/// minute every wrong token from there gets 429 with `Retry-After`, while
/// a right token still works (a neighbour in the same prefix cannot lock
/// the operator out); other prefixes and requests without a token are
/// not affected.
#[test]
fn failed_token_attempts_are_throttled_per_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let config = test_config(
        &tmp.path().join("data"),
        r#"trusted_proxies = ["127.0.0.1/32"]"#,
        "",
    )
    .replace(
        "max_failed_tokens_per_minute = 10000",
        "max_failed_tokens_per_minute = 3",
    );
    assert!(config.contains("max_failed_tokens_per_minute = 3"));
    let s = Server::start_config(tmp.path(), &config);
    let path = "/api/v1/sites/demo/summary?period=today";
    let from = |addr: &str, token: Option<&str>| {
        let mut req = client().get(s.url(path)).header("X-Forwarded-For", addr);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().unwrap();
        let status = res.status().as_u16();
        let retry = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        (status, retry)
    };
    // requests without a token are no guesses
    for _ in 0..5 {
        assert_eq!(from("203.0.113.5", None).0, 401);
    }
    for _ in 0..3 {
        assert_eq!(from("203.0.113.5", Some("wrong-token-0123456789")).0, 401);
    }
    let (status, retry) = from("203.0.113.5", Some("wrong-token-0123456789"));
    assert_eq!(status, 429, "a fourth wrong token");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        from("203.0.200.9", Some("another-wrong-token-0123")).0,
        429,
        "a wrong token from the same /16 prefix"
    );
    assert_eq!(
        from("203.0.113.5", Some(ADMIN_TOKEN)).0,
        200,
        "the right token still works while the prefix is locked out"
    );
    assert_eq!(
        from("203.0.200.9", Some(SITE_TOKEN)).0,
        200,
        "a right site token from the same prefix too"
    );
    assert_eq!(
        from("198.51.100.7", Some("wrong-token-0123456789")).0,
        401,
        "another prefix is not locked out"
    );
    assert_eq!(
        from("198.51.100.7", Some(SITE_TOKEN)).0,
        200,
        "another prefix"
    );
    assert!(
        metrics(&s).contains("sparsam_token_lockouts_total"),
        "lockouts are counted"
    );
    assert!(
        !s.log().contains("203.0.113.5"),
        "no full address in the log"
    );
}

#[test]
fn placeholder_tokens_refuse_to_start_off_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let run = |config: &str| {
        let path = tmp.path().join("sparsam.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = std::process::Command::new(bin())
            .arg("--config")
            .arg(&path)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // a server that does start would run until stopped: wait for its
        // first lines only
        let mut stderr = child.stderr.take().unwrap();
        let mut text = String::new();
        let mut reader = std::io::BufReader::new(&mut stderr);
        let mut line = String::new();
        use std::io::BufRead;
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            text.push_str(&line);
            if line.contains("listening on") {
                break;
            }
            line.clear();
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        (status, text)
    };
    let placeholder = test_config(&data, "", "")
        .replace(ADMIN_TOKEN, "change-me-admin-token-0000")
        .replace("listen = \"127.0.0.1:0\"", "listen = \"0.0.0.0:0\"");
    let (status, err) = run(&placeholder);
    assert!(!status.success(), "{err}");
    assert!(
        err.contains("auth.admin_token") && err.contains("change-me"),
        "{err}"
    );
    assert!(!err.contains("listening"), "{err}");

    let site_placeholder = test_config(&data, "", "")
        .replace(SITE_TOKEN, "change-me-demo-token-0000")
        .replace("listen = \"127.0.0.1:0\"", "listen = \"0.0.0.0:0\"");
    let (_, err) = run(&site_placeholder);
    assert!(err.contains("sites[0].tokens[0]"), "{err}");
    assert!(!err.contains("listening"), "{err}");

    // on loopback the placeholders are fine (the shipped example config)
    let (_, out) =
        run(&test_config(&data, "", "").replace(ADMIN_TOKEN, "change-me-admin-token-0000"));
    assert!(out.contains("listening on"), "{out}");
}

/// With `server.metrics_listen`, a second address serves `/metrics` (and
/// nothing else) without a token; on the main address the admin token is
/// still needed.
#[test]
fn a_separate_metrics_address_serves_metrics_without_a_token() {
    let s = Server::start_with("metrics_listen = \"127.0.0.1:0\"", "");
    let log = s.log();
    let addr = log
        .lines()
        .find_map(|l| l.split("metrics on http://").nth(1))
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no metrics address in the log:\n{log}"))
        .to_string();
    // one counted hit, so the metrics hold a counter
    let hit = client()
        .get(s.url("/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2F"))
        .header("User-Agent", CHROME_UA)
        .send()
        .unwrap();
    assert_eq!(hit.status(), 200);
    let res = client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().unwrap();
    assert!(body.contains("sparsam_hits_total"), "{body}");
    for path in ["/api/v1/sites/demo/summary", "/healthz", "/"] {
        let res = client().get(format!("http://{addr}{path}")).send().unwrap();
        assert_eq!(res.status(), 404, "{path} on the metrics address");
    }
    let (status, _, _) = get(&s, "/metrics", None);
    assert_eq!(status, 401, "the main address still needs the token");
}
