//! No route sets a cookie but the opt-out form, checked on every route the
//! server registers (every path literal under `src/http`, so a new route is
//! covered without editing this test), with every method, with and without
//! tokens and with valid hits; and the audit view, whose cookie statements
//! come from the config, the tracker script and a watch over every
//! response, agrees.

mod common;

use common::{client, Server, ADMIN_TOKEN, CHROME_UA, SITE_TOKEN};
use reqwest::Method;
use serde_json::Value;

/// Every `"/…"` path literal in `src/http/*.rs`, with placeholders filled.
fn registered_paths() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let src = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for piece in src.split("\"/").skip(1) {
            let lit: String = piece.chars().take_while(|c| *c != '"').collect();
            let path_like = lit
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_./{}:*-".contains(c));
            if path_like {
                let p = format!("/{lit}")
                    .replace("{site}", "demo")
                    .replace("{dimension}", "page")
                    .replace("{file:.*}", "app.js");
                out.push(p);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn no_route_sets_a_cookie_except_the_opt_out_form() {
    let mut s = Server::start_with("", "optout_cookie = \"no_stats\"");
    let c = client();
    let paths = registered_paths();
    for must in [
        "/p.gif",
        "/matomo.php",
        "/api/event",
        "/t.js",
        "/optout",
        "/privacy",
    ] {
        assert!(
            paths.iter().any(|p| p == must),
            "{must} not found: {paths:?}"
        );
    }
    assert!(paths.iter().any(|p| p == "/api/v1/sweep"), "{paths:?}");
    let hit_query = "site=demo&idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2Fa&action_name=A";
    let beacon = r#"{"site":"demo","kind":"pageview","url":"https://example.org/b"}"#;
    let mut checked = 0;
    for path in &paths {
        for method in [Method::GET, Method::POST, Method::HEAD, Method::OPTIONS] {
            for token in [None, Some(SITE_TOKEN), Some(ADMIN_TOKEN)] {
                for query in ["", hit_query] {
                    // A real sweep would empty nothing here, but keep it a dry run.
                    let query = if path == "/api/v1/sweep" && method == Method::POST {
                        "dry_run=true"
                    } else {
                        query
                    };
                    let sep = if query.is_empty() { "" } else { "?" };
                    let mut req = c
                        .request(method.clone(), s.url(&format!("{path}{sep}{query}")))
                        .header("User-Agent", CHROME_UA)
                        .header("Origin", &s.base);
                    if let Some(t) = token {
                        req = req.bearer_auth(t);
                    }
                    if method == Method::POST && path == "/api/event" {
                        req = req.body(beacon);
                    } else if method == Method::POST && path == "/optout" {
                        // The opt-out form with no choice: refused, no cookie.
                        req = req.form(&[("lang", "en")]);
                    }
                    let res = req.send().unwrap();
                    let status = res.status();
                    let cookies: Vec<_> = res.headers().get_all("set-cookie").iter().collect();
                    assert!(
                        cookies.is_empty(),
                        "{method} {path}?{query} ({status}) set {cookies:?}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 200, "only {checked} requests");
    // The requests above included stored hits.
    assert!(common::pageviews(&s, "demo") >= 2);

    // The opt-out form sets the configured cookie and nothing else.
    let res = c
        .post(s.url("/optout"))
        .header("Origin", &s.base)
        .form(&[("action", "optout"), ("lang", "en")])
        .send()
        .unwrap();
    let set: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(set.len(), 1, "{set:?}");
    assert!(set[0].starts_with("no_stats=1"), "{set:?}");

    // The server watched every one of those responses and saw nothing else.
    let v: Value = c
        .get(s.url("/api/v1/audit"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let cookies = &v["cookies"];
    assert_eq!(cookies["unexpected_set_cookie_responses"], 0, "{cookies}");
    assert_eq!(
        cookies["unexpected_set_cookie_routes"],
        serde_json::json!([])
    );
    assert_eq!(cookies["tracking_cookies"], false);
    assert_eq!(cookies["optout_cookie"], "no_stats");
    s.stop();
}
