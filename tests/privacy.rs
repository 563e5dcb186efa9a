//! Privacy invariants, each tested so that breaking it fails a test:
//! full addresses never stored or logged, default masks, no tracking
//! cookies, opt-out drops before storing with an identical answer, visitor
//! hashes from the shortened address with a destroyed daily salt, stripped
//! query strings, server-side timestamps.

mod common;

use std::path::Path;

use common::*;
use serde_json::json;
use sparsam::privacy::{visitor_hash, AnonIp, IpMasks};

const FULL_V4: &str = "203.0.113.77";
const FULL_V6: &str = "2001:db8:1234:5678:9abc:def0:1234:77";
const SECRET: &str = "topsecret4711";

/// Every file under `dir`, as bytes.
fn all_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(all_bytes(&p));
        } else {
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

#[test]
fn full_addresses_never_reach_store_or_logs_but_masked_ones_do() {
    let mut s = Server::start_with(r#"trusted_proxies = ["127.0.0.1/32"]"#, "");
    let c = client();
    let mut error_bodies = Vec::new();
    for (ip, path) in [(FULL_V4, "/v4"), (FULL_V6, "/v6")] {
        let url = format!(
            "/p.gif?site=demo&url={}",
            enc(&format!("https://example.org{path}?secret={SECRET}"))
        );
        let res = c
            .get(s.url(&url))
            .header("X-Forwarded-For", ip)
            .header("User-Agent", CHROME_UA)
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
        // A rejected hit must not echo the address either.
        let bad = c
            .post(s.url("/api/event"))
            .header("X-Forwarded-For", ip)
            .body(r#"{"site":"nope","url":"https://example.org/"}"#)
            .send()
            .unwrap();
        let body = bad.text().unwrap();
        assert!(!body.contains(ip) && !body.contains("203.0.113"), "{body}");
        // Every other kind of refusal, from the same address: kept for the
        // byte scan below.
        for path in [
            "/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2F%FF",
            "/p.gif?site=demo&url=https%3A%2F%2Fevil.example%2F",
            "/matomo.php?idsite=99&rec=1&url=https%3A%2F%2Fexample.org%2F",
            "/matomo.php?idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2F&search_count=-1",
            "/api/v1/sites/demo/summary",
            "/no-such-route",
        ] {
            let res = c
                .get(s.url(path))
                .header("X-Forwarded-For", ip)
                .send()
                .unwrap();
            assert!(res.status().is_client_error(), "{path}");
            error_bodies.extend(res.bytes().unwrap());
        }
    }
    let metrics = metrics(&s);
    s.stop();

    let v4: std::net::Ipv4Addr = FULL_V4.parse().unwrap();
    let v6: std::net::Ipv6Addr = FULL_V6.parse().unwrap();
    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("v4 text", FULL_V4.as_bytes().to_vec()),
        ("v4 last octets", b"113.77".to_vec()),
        ("v4 binary", v4.octets().to_vec()),
        ("v4 third octet onwards", vec![203, 0, 113]),
        ("v6 text", FULL_V6.as_bytes().to_vec()),
        ("v6 text compressed", v6.to_string().into_bytes()),
        ("v6 third group", b"1234:5678".to_vec()),
        ("v6 binary", v6.octets().to_vec()),
        ("v6 binary /48", v6.octets()[..6].to_vec()),
        ("query secret", SECRET.as_bytes().to_vec()),
    ];
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut needles = needles;
    for (what, bytes) in [
        ("v4 hex", v4.octets().to_vec()),
        ("v6 hex", v6.octets().to_vec()),
    ] {
        needles.push((what, hex(&bytes).into_bytes()));
        needles.push((what, hex(&bytes).to_uppercase().into_bytes()));
    }
    needles.push(("v4 as integer", u32::from(v4).to_string().into_bytes()));
    let mut haystacks = all_bytes(&s.dir.join("data"));
    haystacks.push(("server log".into(), s.log().into_bytes()));
    haystacks.push(("metrics".into(), metrics.into_bytes()));
    haystacks.push(("error bodies".into(), error_bodies));
    for (name, hay) in &haystacks {
        for (what, needle) in &needles {
            assert!(!contains_bytes(hay, needle), "{what} found in {name}");
        }
    }

    // The shortened forms are there: the scan above looked at real data.
    let events = stored_events(&s.store_path());
    let mut masked: Vec<String> = events
        .iter()
        .map(|e| format!("{}/{}", e.anon_ip.addr, e.anon_ip.prefix_len))
        .collect();
    masked.sort();
    assert_eq!(masked, vec!["2001:db8::/32", "203.0.0.0/16"]);
    assert!(events.iter().all(|e| e.anon_ip.is_truncated()));
}

#[test]
fn stricter_masks_are_applied() {
    let mut s = Server::start_with(
        r#"trusted_proxies = ["127.0.0.1/32"]"#,
        "ipv4_prefix = 8\nipv6_prefix = 24",
    );
    let res = client()
        .get(s.url("/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2F"))
        .header("X-Forwarded-For", FULL_V4)
        .header("User-Agent", CHROME_UA)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    s.stop();
    let e = stored_events(&s.store_path());
    assert_eq!(
        format!("{}/{}", e[0].anon_ip.addr, e[0].anon_ip.prefix_len),
        "203.0.0.0/8"
    );
}

#[test]
fn forwarded_headers_from_untrusted_peers_are_ignored() {
    let mut s = Server::start();
    let res = client()
        .get(s.url("/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2F"))
        .header("X-Forwarded-For", FULL_V4)
        .header("Forwarded", "for=198.51.100.9")
        .header("User-Agent", CHROME_UA)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    s.stop();
    let e = stored_events(&s.store_path());
    assert_eq!(
        format!("{}/{}", e[0].anon_ip.addr, e[0].anon_ip.prefix_len),
        "127.0.0.0/16"
    );
}

#[test]
fn tracking_sets_no_cookie_and_optout_sets_only_its_own() {
    let s = Server::start();
    let c = client();
    let pixel = c
        .get(s.url("/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2F"))
        .header("User-Agent", CHROME_UA)
        .send()
        .unwrap();
    assert!(pixel.headers().get("set-cookie").is_none());
    let beacon = c
        .post(s.url("/api/event"))
        .body(r#"{"site":"demo","url":"https://example.org/"}"#)
        .send()
        .unwrap();
    assert!(beacon.headers().get("set-cookie").is_none());
    let page = c.get(s.url("/optout")).send().unwrap();
    assert!(
        page.headers().get("set-cookie").is_none(),
        "showing the page sets nothing"
    );

    let res = c
        .post(s.url("/optout"))
        .header("Origin", &s.base)
        .form(&[
            ("action", "optout"),
            ("lang", "en"),
            ("name", "evil"),
            ("value", "x"),
        ])
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookies: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let ck = &cookies[0];
    assert!(ck.starts_with("sparsam_optout=1"), "{ck}");
    assert!(
        ck.contains("HttpOnly") && ck.contains("Max-Age=") && ck.contains("Path=/"),
        "{ck}"
    );
    assert!(res.text().unwrap().contains("data-opted-out=\"true\""));

    let res = c
        .post(s.url("/optout"))
        .header("Origin", &s.base)
        .form(&[("action", "optin")])
        .send()
        .unwrap();
    let ck = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        ck.starts_with("sparsam_optout=") && ck.contains("Max-Age=0"),
        "cleared: {ck}"
    );

    let cross = c
        .post(s.url("/optout"))
        .header("Origin", "https://evil.example")
        .form(&[("action", "optin")])
        .send()
        .unwrap();
    assert_eq!(cross.status(), 403);
    assert!(cross.headers().get("set-cookie").is_none());
}

#[test]
fn optout_page_speaks_german_and_english_and_shows_state() {
    let s = Server::start();
    let c = client();
    let de = c
        .get(s.url("/optout"))
        .header("Accept-Language", "de-DE,de;q=0.9,en;q=0.5")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(de.contains("lang=\"de\"") && de.contains("Nicht mehr erfassen"));
    let en = c
        .get(s.url("/optout"))
        .header("Accept-Language", "fr, en;q=0.8")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(en.contains("lang=\"en\"") && en.contains("Stop counting"));
    let out = c
        .get(s.url("/optout?lang=de"))
        .header("Cookie", "sparsam_optout=1")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(out.contains("data-opted-out=\"true\"") && out.contains("wieder erlauben"));
}

/// One ingest protocol: a request that stores a hit, and one that is
/// malformed (refused with a 4xx when nobody opted out). `path` goes into
/// the page URL so stored events can be traced to their request.
struct Protocol {
    name: &'static str,
    valid: fn(&reqwest::blocking::Client, &Server, &str) -> reqwest::blocking::RequestBuilder,
    malformed: fn(&reqwest::blocking::Client, &Server, &str) -> reqwest::blocking::RequestBuilder,
}

fn protocols() -> Vec<Protocol> {
    vec![
        Protocol {
            name: "pixel",
            valid: |c, s, path| {
                c.get(s.url(&format!(
                    "/p.gif?site=demo&url={}",
                    enc(&format!("https://example.org/{path}"))
                )))
            },
            malformed: |c, s, path| {
                c.get(s.url(&format!(
                    "/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2F{path}%FF&engaged_ms=-1"
                )))
            },
        },
        Protocol {
            name: "beacon",
            valid: |c, s, path| {
                c.post(s.url("/api/event")).body(format!(
                    r#"{{"site":"demo","url":"https://example.org/{path}"}}"#
                ))
            },
            malformed: |c, s, path| {
                c.post(s.url("/api/event")).body(format!(
                    r#"{{"site":"demo","url":"https://example.org/{path}","engaged_ms":-1"#
                ))
            },
        },
        Protocol {
            name: "Plausible",
            valid: |c, s, path| {
                c.post(s.url("/api/event")).body(format!(
                    r#"{{"n":"pageview","d":"example.org","u":"https://example.org/{path}"}}"#
                ))
            },
            malformed: |c, s, path| {
                c.post(s.url("/api/event")).body(format!(
                    r#"{{"n":"pageview","d":"example.org","u":"https://example.org/{path}","#
                ))
            },
        },
        Protocol {
            name: "Matomo GET",
            valid: |c, s, path| {
                c.get(s.url(&format!(
                    "/matomo.php?idsite=1&rec=1&url={}",
                    enc(&format!("https://example.org/{path}"))
                )))
            },
            malformed: |c, s, path| {
                c.get(s.url(&format!(
                    "/matomo.php?idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2F{path}%FF%FE"
                )))
            },
        },
        Protocol {
            name: "Matomo POST form",
            valid: |c, s, path| {
                c.post(s.url("/matomo.php"))
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(format!(
                        "idsite=1&rec=1&url={}",
                        enc(&format!("https://example.org/{path}"))
                    ))
            },
            malformed: |c, s, path| {
                let mut body =
                    format!("idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2F{path}").into_bytes();
                body.extend_from_slice(&[0xff, 0xfe]);
                c.post(s.url("/matomo.php"))
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(body)
            },
        },
        Protocol {
            name: "Matomo bulk",
            valid: |c, s, path| {
                c.post(s.url("/matomo.php")).body(format!(
                    r#"{{"requests":["?idsite=1&rec=1&url={}"]}}"#,
                    enc(&format!("https://example.org/{path}"))
                ))
            },
            malformed: |c, s, path| {
                c.post(s.url("/matomo.php")).body(format!(
                    r#"{{"requests":["?idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2F{path}%FF""#
                ))
            },
        },
    ]
}

#[test]
fn opted_out_hits_are_dropped_and_answered_identically() {
    let mut s = Server::start();
    let c = client();
    let signals = [
        ("cookie", ("Cookie", "a=b; sparsam_optout=1")),
        ("DNT", ("DNT", "1")),
        ("GPC", ("Sec-GPC", "1")),
    ];
    let mut failures = Vec::new();
    for p in protocols() {
        let stored = observe(
            (p.valid)(&c, &s, &format!("stored-{}", p.name.replace(' ', "-")))
                .header("User-Agent", CHROME_UA)
                .send()
                .unwrap(),
        );
        assert!(
            (200..300).contains(&stored.0),
            "{}: stored hit got {}",
            p.name,
            stored.0
        );
        assert!(stored.1.iter().all(|(k, _)| k != "set-cookie"));
        let refused = (p.malformed)(&c, &s, "refused")
            .header("User-Agent", CHROME_UA)
            .send()
            .unwrap()
            .status();
        assert!(
            refused.is_client_error(),
            "{}: the malformed request must be refused without opt-out, got {refused}",
            p.name
        );
        for (signal, header) in signals {
            for (form, make) in [("valid", p.valid), ("malformed", p.malformed)] {
                let got = observe(
                    make(&c, &s, "opted-out")
                        .header("User-Agent", CHROME_UA)
                        .header(header.0, header.1)
                        .send()
                        .unwrap(),
                );
                if got != stored {
                    failures.push(format!(
                        "{} {form} with {signal}: {:?} {:?} vs stored {:?} {:?}",
                        p.name,
                        got.0,
                        String::from_utf8_lossy(&got.2),
                        stored.0,
                        String::from_utf8_lossy(&stored.2)
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(pageviews(&s, "demo"), protocols().len() as i64);

    // A site that does not honour DNT/GPC still honours the cookie.
    let other = |extra: Option<(&str, &str)>| {
        let mut r = c
            .get(s.url("/p.gif?site=other&url=https%3A%2F%2Fother.example%2F"))
            .header("User-Agent", CHROME_UA);
        if let Some((k, v)) = extra {
            r = r.header(k, v);
        }
        assert_eq!(r.send().unwrap().status(), 200);
    };
    other(Some(("DNT", "1")));
    other(Some(("Sec-GPC", "1")));
    assert_eq!(pageviews(&s, "other"), 2);
    other(Some(("Cookie", "sparsam_optout=1")));
    assert_eq!(pageviews(&s, "other"), 2);
    // A batch naming a site that honours DNT is dropped whole.
    let mixed = c
        .post(s.url("/api/event"))
        .header("User-Agent", CHROME_UA)
        .header("DNT", "1")
        .body(r#"[{"site":"other","url":"https://other.example/mixed"},{"site":"demo","url":"https://example.org/mixed"}]"#)
        .send()
        .unwrap();
    assert_eq!(mixed.status(), 202);

    s.stop();
    let events = stored_events(&s.store_path());
    let urls: Vec<&str> = events.iter().map(|e| e.url.as_str()).collect();
    assert!(
        urls.iter()
            .all(|u| !u.contains("opted-out") && !u.contains("refused") && !u.contains("mixed")),
        "{urls:?}"
    );
    assert_eq!(events.len(), protocols().len() + 2, "{urls:?}");
}

#[test]
fn visitors_are_counted_by_shortened_address_and_salt_is_not_stored() {
    let mut s = Server::start_with(r#"trusted_proxies = ["127.0.0.1/32"]"#, "");
    let c = client();
    let hit = |ip: &str, ua: &str| {
        let res = c
            .get(s.url("/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2F"))
            .header("X-Forwarded-For", ip)
            .header("User-Agent", ua)
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
    };
    let today_before = utc_day();
    hit("198.51.1.1", CHROME_UA);
    hit("198.51.200.200", CHROME_UA); // same /16, same UA: same visitor
    hit("198.52.1.1", CHROME_UA); // other /16
    hit("198.51.1.1", FIREFOX_UA); // other UA
    assert_eq!(summary(&s, "demo")["visitors"], 3);
    s.stop();

    let events = stored_events(&s.store_path());
    assert_eq!(events[0].visitor, events[1].visitor);
    assert_ne!(events[0].visitor, events[2].visitor);
    assert_ne!(events[0].visitor, events[3].visitor);

    // The salt file holds today's day and the salt the hashes were made
    // with: nothing else, nothing older.
    let salt_file = std::fs::read(s.dir.join("data/salt")).unwrap();
    assert_eq!(salt_file.len(), 40, "one day number and one salt");
    let day = i64::from_le_bytes(salt_file[..8].try_into().unwrap());
    assert!(
        (today_before..=utc_day()).contains(&day),
        "salt stamped with day {day}, not today"
    );
    let file_salt: [u8; 32] = salt_file[8..].try_into().unwrap();
    let anon = AnonIp::truncate("198.51.1.1".parse().unwrap(), &IpMasks::DEFAULT);
    assert_eq!(
        events[0].visitor,
        visitor_hash(&file_salt, "demo", &anon, CHROME_UA),
        "visitors are hashed with the salt on disk"
    );
    let salt = &salt_file[8..];
    let redb = std::fs::read(s.store_path()).unwrap();
    assert!(
        !contains_bytes(&redb, salt),
        "salt must not be in the store"
    );
    assert!(!s.log().contains(&format!(
        "{:02x}{:02x}{:02x}{:02x}",
        salt[0], salt[1], salt[2], salt[3]
    )));
}

fn utc_day() -> i64 {
    chrono::Utc::now().timestamp().div_euclid(86_400)
}

#[test]
fn stale_salt_is_destroyed_at_start_up_before_any_hit() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let old_salt = [0xA5u8; 32];
    let yesterday = utc_day() - 1;
    let mut file = yesterday.to_le_bytes().to_vec();
    file.extend_from_slice(&old_salt);
    std::fs::write(data.join("salt"), &file).unwrap();

    let mut s = Server::start_config(tmp.path(), &test_config(&data, "", ""));
    // No hit has arrived: the salt is replaced already.
    let now = std::fs::read(data.join("salt")).unwrap();
    assert_eq!(now.len(), 40);
    let day = i64::from_le_bytes(now[..8].try_into().unwrap());
    assert!(day > yesterday, "salt of day {day} kept");
    for (name, bytes) in all_bytes(&data) {
        assert!(
            !contains_bytes(&bytes, &old_salt),
            "yesterday's salt in {name}"
        );
    }

    // Hits are hashed with the new salt, never with yesterday's.
    let res = client()
        .get(s.url("/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2F"))
        .header("User-Agent", CHROME_UA)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    s.stop();
    let events = stored_events(&s.store_path());
    let anon = AnonIp::truncate("127.0.0.1".parse().unwrap(), &IpMasks::DEFAULT);
    let new_salt: [u8; 32] = std::fs::read(data.join("salt")).unwrap()[8..]
        .try_into()
        .unwrap();
    assert_eq!(
        events[0].visitor,
        visitor_hash(&new_salt, "demo", &anon, CHROME_UA)
    );
    assert_ne!(
        events[0].visitor,
        visitor_hash(&old_salt, "demo", &anon, CHROME_UA)
    );
}

#[test]
fn stored_urls_keep_only_allow_listed_parameters_and_server_time() {
    let mut s = Server::start();
    let before = chrono::Utc::now().timestamp_millis();
    let body = json!({
        "site": "demo",
        "url": "https://example.org/suche?q=grippe&session=abc123&utm_source=newsletter&email=a%40b.de#section",
        "ref": "https://www.bund.de/page?token=xyz#frag",
        "ts": 0,
        "timestamp": "2001-01-01T00:00:00Z"
    });
    let res = client()
        .post(s.url("/api/event"))
        .header("User-Agent", CHROME_UA)
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(res.status(), 202);
    let after = chrono::Utc::now().timestamp_millis();
    s.stop();
    let events = stored_events(&s.store_path());
    assert!(!events.is_empty());
    for e in &events {
        assert_eq!(
            e.url,
            "https://example.org/suche?q=grippe&utm_source=newsletter"
        );
        assert_eq!(e.referrer.url, "https://www.bund.de/page");
        assert!(
            e.ts_ms >= before && e.ts_ms <= after,
            "server clock, not the client's"
        );
    }
    assert_eq!(
        events.iter().filter(|e| e.search_term == "grippe").count(),
        2,
        "page view and search"
    );
    let redb = std::fs::read(s.store_path()).unwrap();
    for secret in [&b"abc123"[..], b"a@b.de", b"xyz", b"section", b"frag"] {
        assert!(!contains_bytes(&redb, secret));
    }
}

/// The address a trusted proxy saw, and one a client wrote into headers
/// itself, hoping to be counted under it.
const PROXY_SAW: &str = "203.0.113.77";
const CLIENT_CLAIMS: &str = "198.51.100.9";

/// The headers of one request, in order.
type RequestHeaders = Vec<(&'static str, String)>;

/// Behind a trusted proxy (the test client's 127.0.0.1) that writes the
/// configured header, every way a client can add forwarding headers of its
/// own: the counted address is always the one the proxy wrote, visitors are
/// counted under it alone, and neither full address is in the store files
/// or the log.
#[test]
fn spoofed_forwarding_headers_cannot_choose_the_counted_address() {
    // (configured header, headers of one request): the proxy's value last.
    let cases: [(&str, Vec<RequestHeaders>); 3] = [
        (
            "x-forwarded-for",
            vec![
                vec![("X-Forwarded-For", PROXY_SAW.to_string())],
                // A client-sent `Forwarded` must not win over the proxy's
                // X-Forwarded-For.
                vec![
                    ("Forwarded", format!("for={CLIENT_CLAIMS}")),
                    ("X-Forwarded-For", PROXY_SAW.to_string()),
                ],
                // The client's own X-Forwarded-For, appended to by the proxy.
                vec![("X-Forwarded-For", format!("{CLIENT_CLAIMS}, {PROXY_SAW}"))],
                // The same as two header lines.
                vec![
                    ("X-Forwarded-For", CLIENT_CLAIMS.to_string()),
                    ("X-Forwarded-For", PROXY_SAW.to_string()),
                ],
                vec![
                    ("X-Real-IP", CLIENT_CLAIMS.to_string()),
                    ("X-Forwarded-For", PROXY_SAW.to_string()),
                ],
            ],
        ),
        (
            "forwarded",
            vec![
                vec![("Forwarded", format!("for={PROXY_SAW};proto=https"))],
                vec![
                    ("X-Forwarded-For", CLIENT_CLAIMS.to_string()),
                    ("Forwarded", format!("for={PROXY_SAW}")),
                ],
                vec![(
                    "Forwarded",
                    format!("for={CLIENT_CLAIMS}, for=\"{PROXY_SAW}:4711\""),
                )],
            ],
        ),
        (
            "x-real-ip",
            vec![vec![
                ("Forwarded", format!("for={CLIENT_CLAIMS}")),
                ("X-Forwarded-For", CLIENT_CLAIMS.to_string()),
                ("X-Real-IP", PROXY_SAW.to_string()),
            ]],
        ),
    ];
    for (header, requests) in cases {
        let mut s = Server::start_with(
            &format!("trusted_proxies = [\"127.0.0.1/32\"]\nclient_ip_header = \"{header}\""),
            "",
        );
        let c = client();
        for (i, headers) in requests.iter().enumerate() {
            let mut req = c
                .get(s.url(&format!(
                    "/p.gif?site=demo&url=https%3A%2F%2Fexample.org%2Fproxy-{i}"
                )))
                .header("User-Agent", CHROME_UA);
            for (name, value) in headers {
                req = req.header(*name, value);
            }
            assert_eq!(req.send().unwrap().status(), 200, "{header}: {headers:?}");
        }
        // One visitor: every request was counted under the proxy's address.
        let summary = summary(&s, "demo");
        assert_eq!(summary["pageviews"], requests.len(), "{header}: {summary}");
        assert_eq!(summary["visitors"], 1, "{header}: {summary}");
        let log = s.log();
        s.stop();

        let events = stored_events(&s.store_path());
        assert_eq!(events.len(), requests.len());
        for e in &events {
            assert_eq!(
                format!("{}/{}", e.anon_ip.addr, e.anon_ip.prefix_len),
                "203.0.0.0/16",
                "{header}: {} counted under another address",
                e.url
            );
        }
        let claimed: std::net::Ipv4Addr = CLIENT_CLAIMS.parse().unwrap();
        let saw: std::net::Ipv4Addr = PROXY_SAW.parse().unwrap();
        let needles: [(&str, Vec<u8>); 4] = [
            ("claimed address", CLIENT_CLAIMS.as_bytes().to_vec()),
            ("claimed address, binary", claimed.octets().to_vec()),
            ("proxy's full address", PROXY_SAW.as_bytes().to_vec()),
            ("proxy's full address, binary", saw.octets().to_vec()),
        ];
        let mut haystacks = all_bytes(&s.dir.join("data"));
        haystacks.push(("server log".into(), log.into_bytes()));
        for (name, hay) in &haystacks {
            for (what, needle) in &needles {
                assert!(!contains_bytes(hay, needle), "{header}: {what} in {name}");
            }
        }
    }
}

/// Identifying parts of a page URL, a title and a referrer.
const MAIL_IN_PATH: &str = "max.mustermann@example.com";
const MAIL_IN_TITLE: &str = "erika.musterfrau@example.net";
const PATH_PARAMETER: &str = "jsessionid=pathparammarker42";
const HEX_TOKEN: &str = "3f2a9c8b7e6d5f4a3b2c1d0e9f8a7b6c";
const UUID_TOKEN: &str = "123e4567-e89b-12d3-a456-426614174000";
const BASE64_TOKEN: &str = "Qk9ZdGVzdDEyMzQ1Njc4OTBhYmM";
const UNLISTED_UTM: &str = "utm_id=utmidmarker";

fn identifying_page(protocol: &str) -> String {
    format!(
        "https://example.org/{protocol}/konto/{MAIL_IN_PATH};{PATH_PARAMETER}/reset/{HEX_TOKEN}\
         ?utm_source=newsletter&{UNLISTED_UTM}&utm_content={BASE64_TOKEN}&session=x#top"
    )
}

fn identifying_title() -> String {
    format!("Passwort für {MAIL_IN_TITLE} – Vorgang {UUID_TOKEN}")
}

fn identifying_referrer() -> String {
    format!("https://mail.example/inbox/{UUID_TOKEN}/{MAIL_IN_TITLE}/view;{PATH_PARAMETER}?id=1")
}

/// The same identifying page view sent over every protocol, and a download
/// link with a token: what is stored keeps the page's shape with `:email`
/// and `:id` in place of the identifiers, only the standard campaign
/// parameters, no path parameter, and none of the identifying text is in
/// the store file.
#[test]
fn identifying_urls_titles_and_referrers_are_scrubbed_for_every_protocol() {
    let mut s = Server::start();
    let c = client();
    let matomo_query = |protocol: &str| {
        format!(
            "idsite=1&rec=1&url={}&urlref={}&action_name={}",
            enc(&identifying_page(protocol)),
            enc(&identifying_referrer()),
            enc(&identifying_title())
        )
    };
    let requests = vec![
        (
            "pixel",
            c.get(s.url(&format!(
                "/p.gif?site=demo&url={}&ref={}&title={}",
                enc(&identifying_page("pixel")),
                enc(&identifying_referrer()),
                enc(&identifying_title())
            ))),
        ),
        (
            "beacon",
            c.post(s.url("/api/event")).body(
                json!({"site": "demo", "url": identifying_page("beacon"),
                       "ref": identifying_referrer(), "title": identifying_title()})
                .to_string(),
            ),
        ),
        (
            "plausible",
            c.post(s.url("/api/event")).body(
                json!({"n": "pageview", "d": "example.org", "u": identifying_page("plausible"),
                       "r": identifying_referrer()})
                .to_string(),
            ),
        ),
        (
            "matomo",
            c.get(s.url(&format!("/matomo.php?{}", matomo_query("matomo")))),
        ),
        (
            "matomo-bulk",
            c.post(s.url("/matomo.php")).body(
                json!({"requests": [format!("?{}", matomo_query("matomo-bulk"))]}).to_string(),
            ),
        ),
        (
            "matomo-download",
            c.get(s.url(&format!(
                "/matomo.php?idsite=1&rec=1&url={}&download={}",
                enc("https://example.org/downloads"),
                enc(&format!(
                    "https://example.org/files/{HEX_TOKEN}/{MAIL_IN_PATH}/bescheid.pdf;{PATH_PARAMETER}"
                ))
            ))),
        ),
    ];
    for (protocol, req) in requests {
        let res = req.header("User-Agent", CHROME_UA).send().unwrap();
        assert!(res.status().is_success(), "{protocol}: {}", res.status());
    }
    s.stop();

    let events = stored_events(&s.store_path());
    let mut page_views = 0;
    for e in &events {
        if e.kind == sparsam::model::EventKind::Download {
            assert_eq!(
                e.target,
                "https://example.org/files/:id/:email/bescheid.pdf"
            );
            continue;
        }
        page_views += 1;
        let protocol = e.url.split('/').nth(3).unwrap();
        assert_eq!(
            e.url,
            format!(
                "https://example.org/{protocol}/konto/:email/reset/:id\
                 ?utm_source=newsletter&utm_content=%3Aid"
            )
        );
        assert_eq!(e.referrer.url, "https://mail.example/inbox/:id/:email/view");
        if protocol != "plausible" {
            assert_eq!(e.title, "Passwort für :email – Vorgang :id", "{protocol}");
        }
        assert_eq!(e.campaign.source, "newsletter");
    }
    assert_eq!(page_views, 5, "{events:?}");
    assert_eq!(events.len(), 6, "{events:?}");

    let redb = std::fs::read(s.store_path()).unwrap();
    for marker in [
        "mustermann",
        "musterfrau",
        "pathparammarker42",
        "jsessionid",
        &HEX_TOKEN[..16],
        &UUID_TOKEN[..8],
        BASE64_TOKEN,
        "utmidmarker",
        "utm_id",
    ] {
        assert!(
            !contains_bytes(&redb, marker.as_bytes()),
            "{marker} in the store"
        );
    }
}

/// Sets the server's simulated clock (see `sparsam::clock`): the file is
/// replaced by a rename, so the server never reads it half-written.
fn set_clock(file: &Path, at: chrono::DateTime<chrono::Utc>) {
    let temp = file.with_extension("new");
    std::fs::write(&temp, at.to_rfc3339()).unwrap();
    std::fs::rename(&temp, file).unwrap();
}

/// The salt file's day and salt.
fn salt_file(data: &Path) -> (i64, [u8; 32]) {
    let bytes = std::fs::read(data.join("salt")).unwrap();
    assert_eq!(bytes.len(), 40, "one day number and one salt");
    (
        i64::from_le_bytes(bytes[..8].try_into().unwrap()),
        bytes[8..].try_into().unwrap(),
    )
}

/// Where `needle` occurs in the readable memory of process `pid` (read
/// through /proc, which a parent may do for its child).
fn found_in_memory(pid: u32, needle: &[u8]) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut found = Vec::new();
    let mut regions = 0;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !perms.starts_with('r') || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let mut buf = vec![0u8; (end - start) as usize];
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        regions += 1;
        if contains_bytes(&buf, needle) {
            found.push(line.to_string());
        }
    }
    assert!(regions > 0, "no memory of process {pid} could be read");
    found
}

/// Midnight with a simulated clock: at 00:00 UTC the rotation task puts a
/// new salt in force without waiting for a hit, yesterday's salt is gone
/// from the salt file, the data directory and the server's memory, and
/// the same visitor after midnight is hashed anew.
#[test]
fn at_utc_midnight_the_salt_rotates_and_the_old_one_is_gone() {
    use chrono::{Duration, Utc};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let clock = tmp.path().join("clock");
    // The coming real midnight, so the simulated days are never older than
    // the writer's own idea of today.
    let midnight = (Utc::now().date_naive() + Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let day_before = midnight.timestamp().div_euclid(86_400) - 1;
    set_clock(&clock, midnight - Duration::seconds(2));
    // One HTTP worker: the hits before and after midnight take the same
    // path through the same thread.
    let config = test_config(&data, "", "").replace("workers = 2", "workers = 1");
    let mut s = Server::start_config_env(
        tmp.path(),
        &config,
        &[(sparsam::clock::SIMULATED_CLOCK_ENV, &clock)],
    );
    assert!(s.log().contains("simulated clock in use"), "{}", s.log());
    let hit = |path: &str| {
        let res = client()
            .get(s.url(&format!(
                "/p.gif?site=demo&url={}",
                enc(&format!("https://example.org{path}"))
            )))
            .header("User-Agent", CHROME_UA)
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
    };
    hit("/before");
    let (day, old_salt) = salt_file(&data);
    assert_eq!(day, day_before);

    set_clock(&clock, midnight + Duration::seconds(1));
    // No hit needed: the rotation task notices the new day by itself.
    let mut rotated = false;
    for _ in 0..600 {
        if salt_file(&data).0 == day_before + 1 {
            rotated = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(rotated, "salt not rotated at midnight; log:\n{}", s.log());
    let (_, new_salt) = salt_file(&data);
    assert_ne!(new_salt, old_salt);
    for (name, bytes) in all_bytes(&data) {
        assert!(
            !contains_bytes(&bytes, &old_salt),
            "yesterday's salt in {name}"
        );
    }
    hit("/after");
    let in_memory = found_in_memory(s.child.id(), &old_salt);
    assert!(
        in_memory.is_empty(),
        "yesterday's salt still in the server's memory: {in_memory:?}"
    );
    // the scan does find a salt that is there
    assert!(
        !found_in_memory(s.child.id(), &new_salt).is_empty(),
        "today's salt not found in memory: the scan is blind"
    );

    // Both hits fall on one local day of the site (Europe/Berlin, where
    // UTC midnight is 01:00): two visitors there, because the same
    // address and browser hash differently after midnight.
    let local_day = midnight
        .with_timezone(&chrono_tz::Europe::Berlin)
        .date_naive();
    let res = client()
        .get(s.url(&format!(
            "/api/v1/sites/demo/summary?from={local_day}&to={local_day}"
        )))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap();
    let summary: serde_json::Value = res.json().unwrap();
    assert_eq!(summary["pageviews"], 2, "{summary}");
    assert_eq!(summary["visitors"], 2, "{summary}");
    s.stop();

    let events = stored_events(&s.store_path());
    assert_eq!(events.len(), 2);
    let anon = AnonIp::truncate("127.0.0.1".parse().unwrap(), &IpMasks::DEFAULT);
    let (before, after) = (&events[0], &events[1]);
    assert_eq!(
        before.ts_ms,
        (midnight - Duration::seconds(2)).timestamp_millis()
    );
    assert_eq!(
        after.ts_ms,
        (midnight + Duration::seconds(1)).timestamp_millis()
    );
    assert_eq!(
        before.visitor,
        visitor_hash(&old_salt, "demo", &anon, CHROME_UA)
    );
    assert_eq!(
        after.visitor,
        visitor_hash(&new_salt, "demo", &anon, CHROME_UA)
    );
    assert_ne!(
        before.visitor, after.visitor,
        "a new visitor after midnight"
    );
}

/// The store file, the salt file and the data directory are the
/// collector's alone; a page-view id is stored only keyed with the salt.
#[cfg(unix)]
#[test]
fn data_files_are_private_and_page_view_ids_are_salted() {
    use std::os::unix::fs::PermissionsExt;
    let mut s = Server::start();
    let data = s.dir.join("data");
    let res = client()
        .get(s.url("/matomo.php?idsite=1&rec=1&url=https%3A%2F%2Fexample.org%2Fpv&pv_id=Zz91Qx"))
        .header("User-Agent", CHROME_UA)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&s.store_path()), 0o600, "store file");
    assert_eq!(mode(&data.join("salt")), 0o600, "salt file");
    assert_eq!(mode(&data), 0o700, "data directory");
    let (_, salt) = salt_file(&data);
    s.stop();
    let events = stored_events(&s.store_path());
    assert_eq!(events.len(), 1);
    let plain = blake3::hash(b"Zz91Qx");
    let plain = u64::from_le_bytes(plain.as_bytes()[..8].try_into().unwrap());
    assert_ne!(
        events[0].pageview_id, plain,
        "page-view id hashed without salt"
    );
    assert_eq!(
        events[0].pageview_id,
        sparsam::ingest::pipeline::pageview_id(&salt, "Zz91Qx")
    );
}
