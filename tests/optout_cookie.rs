//! The collector's opt-out cookie over HTTP: its attributes decide whether
//! browsers send it along with cross-site pixel and beacon requests.
//! `SameSite=None; Secure` where the browser sees a secure context (HTTPS
//! as a trusted proxy says, or a loopback address), `SameSite=Lax` on plain
//! HTTP otherwise, `Secure` always with `optout_cookie_secure = "always"`;
//! a forged `X-Forwarded-Proto` from a peer that is not a trusted proxy
//! changes nothing, and the request cannot choose name, value or attributes.
//! Posts from another origin, or naming none, are refused.

mod common;

use common::{client, Server};

/// Posts the opt-out form (`action`) with extra headers, as the opt-out
/// page itself does (with the `Origin` of the host addressed), and returns
/// every `Set-Cookie` header of the answer.
fn post(s: &Server, action: &str, headers: &[(&str, &str)]) -> Vec<String> {
    let origin = match headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("host")) {
        Some((_, host)) => format!("http://{host}"),
        None => s.base.clone(),
    };
    let res = send(s, action, &origin_and(&origin, headers));
    assert_eq!(res.status(), 200, "{:?}", res.text());
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn origin_and<'a>(origin: &'a str, headers: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![("Origin", origin)];
    all.extend_from_slice(headers);
    all
}

/// Posts the opt-out form with exactly these headers (and fields a forger
/// might add).
fn send(s: &Server, action: &str, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
    let mut req = client().post(s.url("/optout")).form(&[
        ("action", action),
        ("lang", "en"),
        ("name", "evil"),
        ("value", "0"),
        ("domain", "evil.example"),
        ("samesite", "Strict"),
    ]);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().expect("post /optout")
}

/// The attributes of the one cookie, lower-cased, without its value.
fn attributes(cookies: &[String], name: &str) -> Vec<String> {
    assert_eq!(cookies.len(), 1, "exactly one cookie: {cookies:?}");
    let c = &cookies[0];
    assert!(c.starts_with(&format!("{name}=")), "{c}");
    assert!(!c.contains("evil") && !c.contains("Strict"), "{c}");
    let mut a: Vec<String> = c
        .split(';')
        .skip(1)
        .map(|p| p.trim().to_ascii_lowercase())
        .collect();
    a.sort();
    a
}

fn has(a: &[String], attr: &str) -> bool {
    a.iter().any(|x| x == attr)
}

fn max_age(a: &[String]) -> i64 {
    a.iter()
        .find_map(|x| x.strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .expect("max-age")
}

/// What a browser on another host sees on plain HTTP: the request reaches
/// the collector for `stats.example.org` from a peer that is not a proxy.
const PLAIN_HOST: (&str, &str) = ("Host", "stats.example.org");

#[test]
fn plain_http_gets_lax_and_loopback_gets_none_secure() {
    let s = Server::start_with(
        "",
        "optout_cookie = \"my_optout\"\noptout_cookie_days = 400",
    );

    let a = attributes(&post(&s, "optout", &[PLAIN_HOST]), "my_optout");
    assert!(has(&a, "samesite=lax"), "{a:?}");
    assert!(!has(&a, "secure"), "{a:?}");
    assert!(has(&a, "httponly") && has(&a, "path=/"), "{a:?}");
    assert_eq!(max_age(&a), 400 * 86_400);

    // A forged X-Forwarded-Proto / Forwarded from a peer that is not a
    // trusted proxy (none is configured) is ignored.
    for forged in [("X-Forwarded-Proto", "https"), ("Forwarded", "proto=https")] {
        let a = attributes(&post(&s, "optout", &[PLAIN_HOST, forged]), "my_optout");
        assert!(
            has(&a, "samesite=lax") && !has(&a, "secure"),
            "{forged:?}: {a:?}"
        );
    }

    // A browser on this machine, addressing the collector on loopback:
    // browsers count http://127.0.0.1 and http://localhost as secure.
    for host in [None, Some("localhost:8080")] {
        let headers: Vec<(&str, &str)> = host.map(|h| ("Host", h)).into_iter().collect();
        let a = attributes(&post(&s, "optout", &headers), "my_optout");
        assert!(
            has(&a, "samesite=none") && has(&a, "secure"),
            "{host:?}: {a:?}"
        );
        assert!(has(&a, "httponly"), "{a:?}");
    }

    // Opting in again clears the cookie with the same attributes.
    let a = attributes(&post(&s, "optin", &[PLAIN_HOST]), "my_optout");
    assert_eq!(max_age(&a), 0, "{a:?}");
    assert!(has(&a, "samesite=lax"), "{a:?}");
    let a = attributes(&post(&s, "optin", &[]), "my_optout");
    assert_eq!(max_age(&a), 0, "{a:?}");
    assert!(has(&a, "samesite=none") && has(&a, "secure"), "{a:?}");
}

#[test]
fn https_is_believed_from_a_trusted_proxy_only() {
    // The test client connects from 127.0.0.1: here that is the proxy.
    let s = Server::start_with("trusted_proxies = [\"127.0.0.1/32\"]", "");
    let name = "sparsam_optout";

    let said = [
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-For", "198.51.100.7"),
    ];
    let mut headers = vec![PLAIN_HOST];
    headers.extend_from_slice(&said);
    let a = attributes(&post(&s, "optout", &headers), name);
    assert!(
        has(&a, "samesite=none") && has(&a, "secure"),
        "{said:?}: {a:?}"
    );
    assert!(has(&a, "httponly"), "{a:?}");

    // The proxy says plain HTTP (or nothing): Lax, even on a loopback
    // address, since the browser talks to the proxy, not to us. A
    // `Forwarded: proto=https` is not what this proxy writes (it writes
    // X-Forwarded-For and X-Forwarded-Proto): the client sent it.
    for said in [
        vec![("X-Forwarded-Proto", "http")],
        vec![],
        vec![
            ("Forwarded", "for=198.51.100.7;proto=https"),
            ("X-Forwarded-Proto", "http"),
        ],
    ] {
        let mut headers = vec![PLAIN_HOST];
        headers.extend_from_slice(&said);
        let a = attributes(&post(&s, "optout", &headers), name);
        assert!(
            has(&a, "samesite=lax") && !has(&a, "secure"),
            "{said:?}: {a:?}"
        );
    }
    let a = attributes(&post(&s, "optout", &[("Host", "127.0.0.1")]), name);
    assert!(has(&a, "samesite=lax") && !has(&a, "secure"), "{a:?}");

    // A client behind the proxy that sends its own X-Forwarded-Proto gets
    // it appended to by the proxy: the proxy's (last) value counts.
    let a = attributes(
        &post(
            &s,
            "optout",
            &[PLAIN_HOST, ("X-Forwarded-Proto", "https, http")],
        ),
        name,
    );
    assert!(has(&a, "samesite=lax") && !has(&a, "secure"), "{a:?}");
}

#[test]
fn a_proxy_writing_forwarded_is_believed_in_that_header_only() {
    let s = Server::start_with(
        "trusted_proxies = [\"127.0.0.1/32\"]\nclient_ip_header = \"forwarded\"",
        "",
    );
    let name = "sparsam_optout";
    let secure = [
        PLAIN_HOST,
        ("Forwarded", "for=198.51.100.7;proto=https"),
        ("X-Forwarded-Proto", "http"),
    ];
    let a = attributes(&post(&s, "optout", &secure), name);
    assert!(has(&a, "samesite=none") && has(&a, "secure"), "{a:?}");
    // The client's own element, left of the proxy's, says nothing.
    let plain = [
        PLAIN_HOST,
        (
            "Forwarded",
            "for=6.6.6.6;proto=https, for=198.51.100.7;proto=http",
        ),
        ("X-Forwarded-Proto", "https"),
    ];
    let a = attributes(&post(&s, "optout", &plain), name);
    assert!(has(&a, "samesite=lax") && !has(&a, "secure"), "{a:?}");
}

/// Another site cannot opt a visitor in or out: a post whose `Origin` or
/// `Referer` is not the collector's own, or that names no origin at all,
/// is refused with a reason and sets no cookie. The opt-out page's own
/// form, also inside an iframe on a site's page, sends the collector's
/// origin and works.
#[test]
fn cross_site_posts_are_refused_and_set_no_cookie() {
    let s = Server::start();
    let own_page = s.url("/optout?lang=en");
    let host = s.base.trim_start_matches("http://").to_string();
    let refused: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("another origin", vec![("Origin", "https://evil.example")]),
        (
            "another origin, own referer",
            vec![("Origin", "https://evil.example"), ("Referer", &own_page)],
        ),
        ("another port", vec![("Origin", "http://127.0.0.1:1")]),
        (
            "same host name, other scheme's default port",
            vec![("Origin", "https://127.0.0.1")],
        ),
        (
            "another origin under our host name",
            vec![("Origin", "http://127.0.0.1.evil.example")],
        ),
        ("opaque origin", vec![("Origin", "null")]),
        (
            "no origin, another referer",
            vec![("Referer", "https://evil.example/page")],
        ),
        ("neither origin nor referer", vec![]),
        ("garbage origin", vec![("Origin", "not a url")]),
    ];
    for (case, headers) in &refused {
        for action in ["optout", "optin"] {
            let res = send(&s, action, headers);
            assert_eq!(res.status(), 403, "{case}");
            assert!(
                res.headers().get("set-cookie").is_none(),
                "{case}: a cookie was set"
            );
            let body: serde_json::Value = res.json().expect("JSON reason");
            let reason = body["error"].as_str().unwrap_or_default();
            assert!(reason.contains("opt-out page"), "{case}: {reason}");
            assert!(!reason.contains("evil"), "{case}: echoes input: {reason}");
        }
    }

    // The page's own form: Origin, or without it a Referer, of this host.
    for headers in [
        vec![("Origin", s.base.as_str())],
        vec![("Referer", own_page.as_str())],
        vec![("Origin", s.base.as_str()), ("Host", host.as_str())],
    ] {
        let res = send(&s, "optout", &headers);
        assert_eq!(res.status(), 200, "{headers:?}");
        assert_eq!(res.headers().get_all("set-cookie").iter().count(), 1);
    }

    // Showing the page is unchanged: no origin needed, no cookie set.
    let res = client()
        .get(s.url("/optout"))
        .header("Origin", "https://evil.example")
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("set-cookie").is_none());
}

#[test]
fn always_marks_the_cookie_secure_on_plain_http() {
    let s = Server::start_with("", "optout_cookie_secure = \"always\"");
    let a = attributes(&post(&s, "optout", &[PLAIN_HOST]), "sparsam_optout");
    assert!(has(&a, "samesite=none") && has(&a, "secure"), "{a:?}");
}

#[test]
fn a_bad_setting_is_refused_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::test_config(
        &dir.path().join("data"),
        "",
        "optout_cookie_secure = \"sometimes\"",
    );
    let path = dir.path().join("sparsam.toml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(common::bin())
        .arg("--config")
        .arg(&path)
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("privacy.optout_cookie_secure"), "{err}");
}

/// The opt-out page embedded in an iframe on another site's privacy page,
/// in headless Chromium (`tests/node/optout_iframe.js`): the form inside
/// the frame belongs to the collector's page, so the browser sends the
/// collector's own origin and the post is accepted.
#[test]
fn the_page_embedded_in_another_site_s_iframe_posts_with_the_collector_s_origin() {
    let s = Server::start();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    assert!(
        dir.join("node_modules").exists(),
        "run `npm ci` in tests/node first (scripts/test.sh does)"
    );
    let out = std::process::Command::new("node")
        .current_dir(&dir)
        .arg("optout_iframe.js")
        .arg(&s.base)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node optout_iframe.js failed\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("JSON line");
    assert_eq!(seen["origin"], s.base.as_str(), "{seen}");
    assert_eq!(seen["status"], 200, "{seen}");
    assert_eq!(seen["state"], "true", "{seen}");
}
