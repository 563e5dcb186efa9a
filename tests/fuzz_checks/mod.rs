//! The properties the fuzz targets check, shared by the cargo-fuzz targets
//! in `fuzz/fuzz_targets/` (nightly, libFuzzer) and by
//! `tests/fuzz_replay.rs` (stable), which replays every committed corpus
//! file through the same function. Each `pub fn` takes the raw fuzz input
//! and panics when a property does not hold; returning means the input is
//! fine. Only the crate's public API is used, so nothing in `src/` is made
//! public for fuzzing. See `docs/fuzzing.md`.
//!
//! Inputs are raw bytes; targets that need text take them lossily as UTF-8
//! (the HTTP layer hands the parsers `&str`), and targets that need two
//! inputs split them at the first newline.

#![allow(dead_code)]

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

use sparsam::config::Config;
use sparsam::enrich::client_hints::{is_grease, Brand, MAX_BRANDS, MAX_VALUE_LEN};
use sparsam::enrich::device::MAX_UA_LEN;
use sparsam::enrich::referrer::{campaign_from_params, classify, truncate};
use sparsam::enrich::{ClientHints, DeviceDetector};
use sparsam::import::combined::{parse_line, LogLine};
use sparsam::ingest::beacon::parse_beacon;
use sparsam::ingest::matomo::{is_bulk, parse_bulk, parse_request, MatomoRequest};
use sparsam::ingest::pixel::parse_pixel;
use sparsam::ingest::plausible::{is_plausible, parse_event_body};
use sparsam::ingest::query::strict_pairs;
use sparsam::ingest::site_ref::{matomo_sites, pixel_sites};
use sparsam::ingest::{Hit, Pipeline, PipelineError, Processed, Reject, RequestMeta};
use sparsam::model::{plugins, Campaign, DeviceType, Event, EventKind, ReferrerType};
use sparsam::privacy::{
    anonymised_client, strip_url, AnonIp, ClientAddrPolicy, ClientIpHeader, IpMasks, SaltKeeper,
    StoredIp,
};

/// A property check: returns when the input is fine, panics otherwise.
pub type Check = fn(&[u8]);

/// Every target, by the name of its fuzz target and corpus directory.
pub const TARGETS: &[(&str, Check)] = &[
    ("pixel", pixel),
    ("beacon", beacon),
    ("plausible", plausible),
    ("matomo", matomo),
    ("client_hints", client_hints),
    ("device", device),
    ("forwarded", forwarded),
    ("log_line", log_line),
    ("config", config),
    ("url", url),
    ("pipeline", pipeline),
    ("day_limits", day_limits),
];

/// Events per beacon / bulk request in these checks.
const MAX_EVENTS: usize = 8;
/// A reason told to the client stays short whatever the input was.
const MAX_REASON: usize = 1024;

/// Configuration of the protocol and pipeline targets: a small
/// `max_field_bytes`, so short inputs reach the length limits.
const CONFIG: &str = r#"
[server]
max_field_bytes = 128

[[sites]]
id = "demo"
matomo_id = 1
hostnames = ["example.org", "*.example.org"]
keep_query_params = ["page"]

[[sites]]
id = "other"
matomo_id = 7
hostnames = ["other.net"]
honour_dnt = true
"#;

fn test_config() -> &'static Arc<Config> {
    static C: OnceLock<Arc<Config>> = OnceLock::new();
    C.get_or_init(|| Arc::new(Config::parse(CONFIG).expect("fuzz config is valid")))
}

/// The fixed receipt time of the pipeline target.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 29, 1, 30, 0).unwrap()
}

fn text(data: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Splits at the first newline: (first line, rest if there was a newline).
fn split2(s: &str) -> (&str, Option<&str>) {
    match s.split_once('\n') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    }
}

/// `name: value` lines as header pairs.
fn header_lines(s: &str) -> Vec<(&str, &str)> {
    s.lines().filter_map(|l| l.split_once(':')).collect()
}

fn check_reason(r: &Reject) {
    let m = r.to_string();
    assert!(
        m.len() <= MAX_REASON,
        "reason of {} bytes: {:?}",
        m.len(),
        truncate(&m, 200)
    );
    assert!((400..500).contains(&r.status()), "status {}", r.status());
}

// --- pixel --------------------------------------------------------------

/// `GET /p.gif`: the query (first line) and an optional `Referer` (rest).
/// A parsed hit has a site and a URL; the last `site` / `url` parameter
/// wins and `url` falls back to the Referer; decoding never grows a value;
/// invalid UTF-8 after percent-decoding is refused, never altered; the
/// opt-out decision (`site_ref::pixel_sites`) covers the site the hit is
/// counted for; reasons are short 4xx.
pub fn pixel(data: &[u8]) {
    let s = text(data);
    let (query, referer) = split2(&s);
    let pairs = strict_pairs(query);
    let parsed = parse_pixel(query, referer);
    let pairs = match (pairs, &parsed) {
        (Err(e), Err(p)) => {
            assert_eq!(&e, p, "a query that does not decode is refused as such");
            check_reason(p);
            return;
        }
        (Err(e), Ok(_)) => panic!("undecodable query accepted: {e}"),
        (Ok(pairs), _) => pairs,
    };
    for (k, v) in &pairs {
        assert!(k.len() <= query.len() && v.len() <= query.len());
    }
    let last = |k: &str| {
        pairs
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let hit = match parsed {
        Err(r) => return check_reason(&r),
        Ok(hit) => hit,
    };
    assert!(!hit.site.is_empty());
    assert_eq!(Some(hit.site.as_str()), last("site"));
    assert!(!hit.url.is_empty());
    match last("url").filter(|u| !u.is_empty()) {
        Some(u) => assert_eq!(hit.url, u),
        None => assert_eq!(Some(hit.url.as_str()), referer),
    }
    for v in [
        &hit.referrer,
        &hit.title,
        &hit.pageview_id,
        &hit.target,
        &hit.search,
    ]
    .into_iter()
    .flatten()
    {
        assert!(
            v.len() <= query.len(),
            "decoded value longer than the query"
        );
    }
    let config = test_config();
    if config.site(&hit.site).is_some() {
        assert!(
            pixel_sites(query, config).iter().any(|s| s.id == hit.site),
            "the opt-out check must cover the site the hit is counted for"
        );
    }
}

// --- beacon -------------------------------------------------------------

fn hints_json(h: &ClientHints) -> Value {
    let brands = |b: &[Brand]| -> Value {
        b.iter()
            .map(|b| json!({"brand": b.brand, "version": b.version}))
            .collect()
    };
    json!({
        "brands": brands(&h.brands),
        "fullVersionList": brands(&h.full_version_list),
        "mobile": h.mobile,
        "platform": h.platform,
        "platformVersion": h.platform_version,
        "model": h.model,
        "formFactors": h.form_factors,
        "architecture": h.arch,
        "bitness": h.bitness,
    })
}

/// A hit written back in the beacon format.
fn hit_json(h: &Hit) -> Value {
    let plugin_names: Vec<&str> = plugins::NAMES
        .iter()
        .filter(|(bit, _)| h.plugins & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    json!({
        "site": h.site,
        "kind": h.kind.map(EventKind::as_str),
        "url": h.url,
        "ref": h.referrer,
        "title": h.title,
        "pv": h.pageview_id,
        "target": h.target,
        "search": h.search,
        "results": h.search_results,
        "engaged_ms": h.engaged_ms,
        "plugins": plugin_names,
        "hints": h.hints.as_ref().map(hints_json),
    })
}

fn check_hit_shape(h: &Hit) {
    assert!(!h.url.is_empty());
    if let Some(hints) = &h.hints {
        check_hints(hints);
    }
}

/// `POST /api/event` in sparsam's own format: at most `max` events, each
/// with a site and URL; numbers in range; hints within their caps; written
/// back as JSON the hits parse to the same hits (round trip).
pub fn beacon(data: &[u8]) {
    let hits = match parse_beacon(data, MAX_EVENTS) {
        Err(r) => return check_reason(&r),
        Ok(h) => h,
    };
    assert!(!hits.is_empty() && hits.len() <= MAX_EVENTS);
    for h in &hits {
        check_hit_shape(h);
        assert!(h.user_agent.is_none());
    }
    let body = Value::Array(hits.iter().map(hit_json).collect()).to_string();
    let again = parse_beacon(body.as_bytes(), MAX_EVENTS).expect("re-encoded hits parse");
    assert_eq!(format!("{hits:?}"), format!("{again:?}"), "round trip");
}

// --- plausible ----------------------------------------------------------

/// `POST /api/event` with Plausible detection: a body that is not a
/// Plausible event gets exactly the beacon parser's answer; a Plausible
/// event yields at most one hit, for a configured site, with a target
/// exactly when it is a download or outbound click.
pub fn plausible(data: &[u8]) {
    let config = test_config();
    let result = parse_event_body(data, MAX_EVENTS, config);
    let is_p = serde_json::from_slice::<Value>(data)
        .ok()
        .is_some_and(|v| is_plausible(&v));
    if !is_p {
        assert_eq!(
            format!("{result:?}"),
            format!("{:?}", parse_beacon(data, MAX_EVENTS)),
            "non-Plausible bodies go to the beacon parser"
        );
        return;
    }
    let hits = match result {
        Err(r) => return check_reason(&r),
        Ok(h) => h,
    };
    assert!(hits.len() <= 1);
    for h in &hits {
        assert!(config.site(&h.site).is_some(), "unknown site {:?}", h.site);
        check_hit_shape(h);
        let kind = h.kind.expect("Plausible hits have a kind");
        assert_eq!(
            h.target.is_some(),
            matches!(kind, EventKind::Download | EventKind::Outbound)
        );
        assert!(h.target.as_ref().is_none_or(|t| !t.is_empty()));
    }
}

// --- matomo -------------------------------------------------------------

fn matomo_params(params: &str) {
    let config = test_config();
    let hit = match parse_request(params, config) {
        Err(r) => return check_reason(&r),
        Ok(MatomoRequest::Ignored) => return,
        Ok(MatomoRequest::Hit(h)) => h,
    };
    let site = config.site(&hit.site).expect("hit for a configured site");
    assert!(
        matomo_sites(params.as_bytes(), config)
            .iter()
            .any(|s| s.id == site.id),
        "the DNT/GPC check must cover the site the hit is counted for"
    );
    check_hit_shape(&hit);
    let kind = hit.kind.expect("Matomo hits have a kind");
    if matches!(kind, EventKind::Download | EventKind::Outbound) {
        assert!(hit.target.is_some());
    }
    if kind == EventKind::Search {
        assert!(hit.search.as_ref().is_some_and(|s| !s.trim().is_empty()));
    }
}

/// The Matomo tracking API: a bulk body (`{"requests": [...]}`, at most
/// `max` requests) or one request's parameters. A recorded hit is for a
/// configured site, one the DNT/GPC check (`site_ref::matomo_sites`)
/// covers; downloads and links carry a target, searches a term.
pub fn matomo(data: &[u8]) {
    if is_bulk(data) {
        match parse_bulk(data, MAX_EVENTS) {
            Err(r) => check_reason(&r),
            Ok(requests) => {
                assert!(requests.len() <= MAX_EVENTS);
                for r in &requests {
                    matomo_params(r);
                }
            }
        }
    } else {
        matomo_params(&text(data));
    }
}

// --- client hints -------------------------------------------------------

fn check_hints(h: &ClientHints) {
    for list in [&h.brands, &h.full_version_list] {
        assert!(list.len() <= MAX_BRANDS);
        for b in list {
            assert!(!b.brand.trim().is_empty(), "empty brand kept");
            assert!(!is_grease(&b.brand), "GREASE brand kept: {:?}", b.brand);
            assert!(b.brand.len() <= MAX_VALUE_LEN && b.version.len() <= MAX_VALUE_LEN);
        }
    }
    assert!(h.form_factors.len() <= MAX_BRANDS);
    for f in &h.form_factors {
        assert!(!f.trim().is_empty() && f.len() <= MAX_VALUE_LEN);
    }
    for v in [
        &h.platform,
        &h.platform_version,
        &h.model,
        &h.arch,
        &h.bitness,
    ]
    .into_iter()
    .flatten()
    {
        assert!(!v.trim().is_empty(), "blank hint kept as Some");
        assert!(v.len() <= MAX_VALUE_LEN);
    }
}

/// Client hints from `Sec-CH-UA-*` headers (`name: value` lines) and from
/// the JSON form (the whole input): lists and values stay within their
/// caps, GREASE and blank brands are dropped, and the JSON form round-trips.
pub fn client_hints(data: &[u8]) {
    let s = text(data);
    let h = ClientHints::from_headers(header_lines(&s).into_iter());
    check_hints(&h);
    if let Ok(j) = ClientHints::from_json(&s) {
        check_hints(&j);
        let again = ClientHints::from_json(&hints_json(&j).to_string()).expect("re-encoded");
        assert_eq!(j, again, "JSON round trip");
    }
}

// --- device -------------------------------------------------------------

fn detector() -> &'static DeviceDetector {
    static D: OnceLock<DeviceDetector> = OnceLock::new();
    D.get_or_init(|| DeviceDetector::try_new(1024).expect("embedded device rules"))
}

fn uncached_detector() -> &'static DeviceDetector {
    static D: OnceLock<DeviceDetector> = OnceLock::new();
    D.get_or_init(|| DeviceDetector::new(0))
}

/// Device detection of a user agent (first line) with client-hint headers
/// (further lines): cached and uncached detection agree; a bot is typed
/// Bot and has no brand or model, a non-bot is never typed Bot; every field
/// is bounded whatever the input's length, and bytes past the first
/// `MAX_UA_LEN` of a user agent change nothing.
pub fn device(data: &[u8]) {
    let s = text(data);
    let (ua, rest) = split2(&s);
    let hints = ClientHints::from_headers(header_lines(rest.unwrap_or("")).into_iter());
    let d = detector().detect(ua, &hints);
    assert_eq!(
        d,
        uncached_detector().detect(ua, &hints),
        "cache changes result"
    );
    if d.bot {
        assert_eq!(d.device_type, DeviceType::Bot);
        assert!(d.brand.is_empty() && d.model.is_empty());
    } else {
        assert_ne!(d.device_type, DeviceType::Bot);
    }
    for f in [
        &d.brand,
        &d.model,
        &d.os,
        &d.os_version,
        &d.browser,
        &d.browser_version,
        &d.engine,
        &d.engine_version,
    ] {
        assert!(f.len() <= 2 * MAX_UA_LEN, "field of {} bytes", f.len());
    }
    if ua.len() >= MAX_UA_LEN {
        let longer = format!("{ua} trailing/1.0 (bot; +x)");
        assert_eq!(d, detector().detect(&longer, &hints), "bytes past the cap");
    }
}

// --- forwarded ----------------------------------------------------------

fn check_truncated(a: &AnonIp, masks: &IpMasks) {
    let stored = StoredIp::decode(&a.to_bytes()).expect("encoding decodes");
    assert!(stored.is_truncated(), "untruncated address {a:?}");
    let want = match a.addr() {
        IpAddr::V4(_) => masks.v4_prefix.min(32),
        IpAddr::V6(_) => masks.v6_prefix.min(128),
    };
    assert_eq!(a.prefix_len(), want);
}

/// The client address from the configured proxy header (the input) under
/// each header kind: always truncated to the mask; the header from a peer
/// that is not a trusted proxy is ignored; an address is never taken from
/// left of an untrusted hop nearer to us.
pub fn forwarded(data: &[u8]) {
    let s = text(data);
    let header = Some(s.as_ref()).filter(|h| !h.is_empty());
    for masks in [
        IpMasks::DEFAULT,
        IpMasks {
            v4_prefix: 8,
            v6_prefix: 20,
        },
    ] {
        for kind in [
            ClientIpHeader::XForwardedFor,
            ClientIpHeader::Forwarded,
            ClientIpHeader::XRealIp,
        ] {
            let policy = ClientAddrPolicy {
                trusted_proxies: vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
                client_ip_header: kind,
                masks,
            };
            for peer in ["10.1.2.3", "::1", "203.0.113.9", "2001:db8::7"] {
                let peer: IpAddr = peer.parse().unwrap();
                let a = anonymised_client(Some(peer), header, &policy).expect("peer given");
                check_truncated(&a, &masks);
                if !policy.trusted_proxies.iter().any(|n| n.contains(&peer)) {
                    assert_eq!(
                        a,
                        AnonIp::truncate(peer, &masks),
                        "untrusted peer's headers used"
                    );
                }
            }
            // Whatever the client wrote, the address the proxy appends wins.
            let proxy_seen: IpAddr = "198.51.100.7".parse().unwrap();
            let appended = match kind {
                ClientIpHeader::Forwarded => format!("{s}, for={proxy_seen}"),
                _ => format!("{s}, {proxy_seen}"),
            };
            let peer: IpAddr = "10.1.2.3".parse().unwrap();
            assert_eq!(
                anonymised_client(Some(peer), Some(&appended), &policy),
                Some(AnonIp::truncate(proxy_seen, &masks)),
                "a client-written entry chose the address"
            );
        }
    }
}

// --- log line -----------------------------------------------------------

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A parsed line written back in combined format.
fn write_line(l: &LogLine) -> String {
    let request = match &l.request {
        Some((m, t)) => format!("{m} {t} HTTP/1.1"),
        None => "-".into(),
    };
    format!(
        "{} - - [{}] \"{}\" {} - \"{}\" \"{}\"",
        l.anon_ip.addr(),
        l.time.format("%d/%b/%Y:%H:%M:%S %z"),
        escape(&request),
        l.status,
        escape(l.referrer.as_deref().unwrap_or("-")),
        escape(&l.user_agent),
    )
}

/// `sparsam import` log lines (NCSA combined): the address is always
/// truncated to the mask (the full one never leaves the parser), the status
/// is 100-599, `-` fields are `None`, and a parsed line written back parses
/// to the same line (round trip).
pub fn log_line(data: &[u8]) {
    let s = text(data);
    for masks in [
        IpMasks::DEFAULT,
        IpMasks {
            v4_prefix: 0,
            v6_prefix: 3,
        },
    ] {
        let Ok(l) = parse_line(&s, &masks) else {
            continue;
        };
        check_truncated(&l.anon_ip, &masks);
        assert!((100..600).contains(&l.status));
        if let Some(r) = &l.referrer {
            assert!(!r.trim().is_empty() && r.trim() != "-");
        }
        if let Some((m, t)) = &l.request {
            assert!(!m.is_empty() && !t.is_empty());
            assert!(!m.contains(char::is_whitespace) && !t.contains(char::is_whitespace));
        }
        let line = write_line(&l);
        let again = parse_line(&line, &masks).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert_eq!(
            format!("{l:?}"),
            format!("{again:?}"),
            "round trip: {line:?}"
        );
    }
}

// --- config -------------------------------------------------------------

/// `Config::parse` on arbitrary TOML: never panics or hangs, and a config
/// it accepts satisfies every documented bound, so code that uses the
/// config (listen address, proxies, sweep schedule, retention arithmetic,
/// site lookups) cannot fail on it later.
pub fn config(data: &[u8]) {
    let s = text(data);
    let Ok(c) = Config::parse(&s) else {
        return;
    };
    let schedule = &c.retention.sweep_schedule;
    let now = now();
    let _ = schedule.after(&now).next();
    let _ = schedule.after(&now).next_back();
    let _ = sparsam::retention::audit::oldest_allowed_ms(&c, now);
    let s = &c.server;
    assert!((1024..=16 << 20).contains(&s.max_body_bytes.as_u64()));
    assert!((64..=65536).contains(&s.max_field_bytes.as_u64()));
    assert!((1..=10_000).contains(&s.max_batch_events));
    let m = c.privacy.masks();
    assert!(m.v4_prefix <= 32 && m.v6_prefix <= 128);
    if !c.privacy.allow_weaker_masks {
        assert!(m.v4_prefix <= IpMasks::DEFAULT.v4_prefix);
        assert!(m.v6_prefix <= IpMasks::DEFAULT.v6_prefix);
    }
    assert!(c.retention.raw_days >= 1);
    // every limit can let its largest single request through
    if s.rate_limit_events_per_minute > 0 {
        assert!(s.rate_limit_events_burst as usize >= s.max_batch_events);
    }
    if s.rate_limit_bytes_per_minute.as_u64() > 0 {
        assert!(s.rate_limit_bytes_burst >= s.max_body_bytes);
    }
    assert!(s.rate_limit_bytes_burst.as_u64() <= u64::from(u32::MAX));
    assert!(s.rate_limit_bytes_per_minute.as_u64() <= u64::from(u32::MAX));
    assert!(c.auth.max_failed_tokens_per_minute >= 1);
    assert!(c.store.max_new_strings_per_site_day >= 1 && c.store.max_events_per_site_day >= 1);
    // the example's placeholder tokens guard a loopback listener only
    if !s.listen.ip().is_loopback() {
        let placeholder = |t: &str| t.to_ascii_lowercase().contains("change-me");
        assert!(!placeholder(&c.auth.admin_token));
        assert!(!c
            .sites
            .iter()
            .flat_map(|s| &s.tokens)
            .any(|t| placeholder(t)));
    }
    assert!(!c.sites.is_empty());
    for site in &c.sites {
        assert!(std::ptr::eq(c.site(&site.id).expect("by id"), site));
        if let Some(m) = site.matomo_id {
            assert!(std::ptr::eq(c.site_by_matomo_id(m).expect("by id"), site));
        }
        for h in &site.hostnames {
            assert!(site.allows_host(h.strip_prefix("*.").unwrap_or(h)));
        }
        let _ = site.tz();
    }
}

// --- url ----------------------------------------------------------------

fn keep(k: &str) -> bool {
    k == "q" || k == "page" || k.starts_with("utm_")
}

/// URL stripping and referrer classification of hostile URLs: a stripped
/// URL is absolute http(s), has no credentials or fragment, keeps only
/// allow-listed parameters (exactly those reported), and stripping it
/// again changes nothing; a classified referrer keeps no query at all;
/// `truncate` cuts on a character boundary within its limit.
pub fn url(data: &[u8]) {
    let s = text(data);
    if let Ok(c) = strip_url(&s, keep) {
        let u = url::Url::parse(&c.url).expect("stored URL parses");
        assert!(matches!(u.scheme(), "http" | "https"));
        assert!(u.username().is_empty() && u.password().is_none() && u.fragment().is_none());
        assert_eq!(
            u.host_str().map(str::to_ascii_lowercase),
            Some(c.host.clone())
        );
        assert_eq!(u.path(), c.path);
        let pairs: Vec<(String, String)> = u.query_pairs().into_owned().collect();
        assert_eq!(pairs, c.params, "reported parameters are the kept ones");
        assert!(c.params.iter().all(|(k, _)| keep(k)));
        let again = strip_url(&c.url, keep).expect("a stripped URL strips again");
        assert_eq!(again, c, "stripping is idempotent");
        let camp = campaign_from_params(&c.params, 16);
        assert!(camp.source.len() <= 16 && camp.medium.len() <= 16 && camp.campaign.len() <= 16);
    }
    let r = classify(Some(&s), |h| h == "example.org", &Campaign::default());
    if r.kind == ReferrerType::Direct {
        assert!(r.url.is_empty() && r.name.is_empty());
    } else {
        let u = url::Url::parse(&r.url).expect("referrer URL parses");
        assert!(u.query().is_none() && u.fragment().is_none() && u.username().is_empty());
    }
    for max in [0, 1, 5, 64] {
        let t = truncate(&s, max);
        assert!(t.len() <= max && s.starts_with(&t));
        assert!(t.len() == s.len() || t.len() + 4 > max, "cut too short");
    }
}

// --- pipeline -----------------------------------------------------------

fn pipeline_instance() -> &'static Pipeline {
    static P: OnceLock<Pipeline> = OnceLock::new();
    P.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("sparsam-fuzz-salt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("salt dir");
        let day = now().timestamp().div_euclid(86_400);
        let salts = SaltKeeper::open(&dir, day).expect("salt");
        Pipeline::new(
            Arc::clone(test_config()),
            DeviceDetector::try_new(1024).expect("embedded device rules"),
            salts,
        )
    })
}

fn check_event(e: &Event, hit: &Hit, masks: &IpMasks) {
    let config = test_config();
    let max = config.server.max_field_bytes.as_u64() as usize;
    let site = config.site(&e.site).expect("configured site");
    assert_eq!(e.site, hit.site);
    assert_eq!(e.ts_ms, now().timestamp_millis());
    let u = url::Url::parse(&e.url).expect("stored URL parses");
    assert!(u.username().is_empty() && u.password().is_none() && u.fragment().is_none());
    assert!(
        site.allows_host(u.host_str().unwrap_or("")),
        "host not allowed"
    );
    for (k, _) in u.query_pairs() {
        assert!(site.is_kept_param(&k), "parameter {k:?} kept");
    }
    // Percent-encoding may triple the bytes of a URL that was within limit.
    assert!(e.url.len() <= 3 * max + 32, "url of {} bytes", e.url.len());
    assert!(e.title.len() <= max && e.search_term.len() <= max);
    for c in [&e.campaign.source, &e.campaign.medium, &e.campaign.campaign] {
        assert!(c.len() <= 200);
    }
    if !e.referrer.url.is_empty() {
        let r = url::Url::parse(&e.referrer.url).expect("referrer parses");
        assert!(r.query().is_none(), "referrer query kept");
        assert!(r.fragment().is_none() && r.username().is_empty());
    }
    if matches!(e.kind, EventKind::Download | EventKind::Outbound) {
        assert!(!e.target.is_empty());
    }
    if e.kind == EventKind::Ping {
        assert_ne!(e.pageview_id, 0);
    }
    assert!(!e.device.bot && e.device.device_type != DeviceType::Bot);
    check_truncated(&e.anon_ip, masks);
}

/// The whole ingest pipeline: the first line is the user agent, the rest a
/// request (JSON → `/api/event`, `?…` → Matomo, else a pixel query). Every
/// stored event is for a configured site and an allowed host, its URL has
/// no credentials, fragment or unlisted parameter, text fields are within
/// `max_field_bytes`, the address is truncated, downloads and outbound
/// clicks have a target, pings a page-view id; bots are never stored; a
/// search-results page gives exactly a page view and a search.
pub fn pipeline(data: &[u8]) {
    let s = text(data);
    let (ua, body) = split2(&s);
    let body = body.unwrap_or("");
    let config = test_config();
    let hits = if body.trim_start().starts_with(['{', '[']) {
        parse_event_body(body.as_bytes(), MAX_EVENTS, config).unwrap_or_default()
    } else if let Some(q) = body.strip_prefix('?') {
        match parse_request(q, config) {
            Ok(MatomoRequest::Hit(h)) => vec![*h],
            _ => Vec::new(),
        }
    } else {
        parse_pixel(body, None).map(|h| vec![h]).unwrap_or_default()
    };
    let masks = config.privacy.masks();
    let meta = RequestMeta {
        anon_ip: AnonIp::truncate("203.0.113.77".parse().unwrap(), &masks),
        user_agent: ua.to_string(),
        header_hints: ClientHints::default(),
    };
    let p = pipeline_instance();
    for hit in hits {
        match p.process(hit.clone(), &meta, now()) {
            Err(PipelineError::Reject(r)) => check_reason(&r),
            Err(e) => panic!("pipeline failed: {e}"),
            Ok(Processed::ReferrerSpam) => {
                let referrer = hit.referrer.as_deref().unwrap_or_default();
                assert!(p.config().referrer_spam.is_spam(referrer), "{referrer}");
            }
            Ok(Processed::UndeclaredEvent) => {
                assert!(hit.custom.is_some(), "only custom events are undeclared");
            }
            Ok(Processed::Bot) => {
                let used_ua = hit.user_agent.as_deref().unwrap_or(ua);
                let hints = hit.hints.clone().unwrap_or_default();
                assert!(p.detector().detect(used_ua, &hints).bot);
            }
            Ok(Processed::Events(events)) => {
                assert!(!events.is_empty() && events.len() <= 2);
                if events.len() == 2 {
                    assert_eq!(
                        (events[0].kind, events[1].kind),
                        (EventKind::PageView, EventKind::Search)
                    );
                    assert!(!events[1].search_term.is_empty());
                }
                for e in &events {
                    check_event(e, &hit, &masks);
                }
            }
        }
    }
}

// --- day limits -----------------------------------------------------------

/// Bounds of the `day_limits` check: small, so inputs reach them.
const DAY_STRINGS: usize = 6;
const DAY_EVENTS: u64 = 12;

/// Lines are events (`site|path|title|search term`); a blank line ends a
/// request (one call). Whatever the values: per site and day, the values
/// kept as they were never exceed the string bound, kept events never
/// exceed the event bound, a replaced URL keeps its origin, and the
/// events that stay are the first ones in their order.
pub fn day_limits(data: &[u8]) {
    use sparsam::ingest::day_limits::{DayLimits, OTHER};
    use std::collections::{HashMap, HashSet};
    let text = text(data);
    let limits = DayLimits::new(DAY_STRINGS, DAY_EVENTS);
    let mut kept_values: HashMap<String, HashSet<(u8, String)>> = HashMap::new();
    let mut kept_events: HashMap<String, u64> = HashMap::new();
    for request in text.split("\n\n") {
        let mut events: Vec<Event> = request
            .lines()
            .take(64)
            .enumerate()
            .map(|(i, line)| {
                let mut parts = line.splitn(4, '|');
                let site = ["a", "b"][usize::from(parts.next().unwrap_or("").len() % 2 == 1)];
                let mut e = limits_event(site);
                e.url = format!("https://example.org/{}", parts.next().unwrap_or(""));
                e.title = parts.next().unwrap_or("").to_string();
                e.search_term = parts.next().unwrap_or("").to_string();
                e.engaged_ms = i as u32;
                e
            })
            .collect();
        let sent = events.len();
        let dropped = limits.apply(&mut events);
        assert_eq!(events.len() + dropped, sent);
        for (i, e) in events.iter().enumerate() {
            assert_eq!(
                e.engaged_ms as usize, i,
                "kept events are the first, in order"
            );
            assert!(
                e.url.starts_with("https://example.org/"),
                "origin kept: {}",
                e.url
            );
            let values = kept_values.entry(e.site.clone()).or_default();
            for (field, v) in [(0u8, &e.url), (1, &e.title), (2, &e.search_term)] {
                if !v.is_empty() && v != OTHER && v != "https://example.org/(other)" {
                    values.insert((field, v.clone()));
                }
            }
            assert!(values.len() <= DAY_STRINGS, "{} values kept", values.len());
            let n = kept_events.entry(e.site.clone()).or_default();
            *n += 1;
            assert!(*n <= DAY_EVENTS);
        }
    }
}

fn limits_event(site: &str) -> Event {
    Event {
        site: site.into(),
        ts_ms: now().timestamp_millis(),
        kind: EventKind::PageView,
        visitor: 1,
        pageview_id: 0,
        url: String::new(),
        title: String::new(),
        referrer: Default::default(),
        campaign: Default::default(),
        target: String::new(),
        search_term: String::new(),
        search_results: None,
        engaged_ms: 0,
        device: Default::default(),
        plugins: 0,
        anon_ip: AnonIp::truncate("192.0.2.1".parse().unwrap(), &IpMasks::DEFAULT),
        custom: None,
    }
}
