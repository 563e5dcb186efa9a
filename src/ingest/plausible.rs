//! The Plausible Events API on `POST /api/event`, next to sparsam's own
//! beacon format on the same route.
//!
//! Why: sites running Plausible's script (or its npm tracker) can point its
//! `endpoint` at sparsam unchanged. A body is Plausible's when it is one
//! JSON object with an event name (`n` or `name`) and no sparsam `site`;
//! everything else goes to [`super::beacon`].
//!
//! Mapping: `d` (domain; a comma-separated list allowed) names the site by
//! hostname, falling back to the host of `u`. `pageview` is a page view;
//! `File Download` and `Outbound Link: Click` with `props.url` are
//! download and outbound events. Plausible's `engagement` events report
//! engaged time `e` as milliseconds since the page's previous report (the
//! script resets its clock after each one) and carry no page-view id. Each
//! becomes a dwell-time ping of its own, with a page-view id made here that
//! no other event shares, so the store adds its `e` to the dwell time in
//! full (a ping adds its increase over the page view's previous report,
//! and there is none). The sum over a page's reports is its engaged time,
//! as sparsam's own ping reports it. Scroll depth (`sd`) is not a sparsam
//! figure and is dropped. Every other event name is a custom event: its
//! props `p` and revenue (`$` as the script sends it, or `revenue`:
//! `{"amount": "9.90", "currency": "EUR"}`; the currency is not kept) go
//! with it, and the pipeline keeps it only when the site declared it
//! (`crate::goals`). Props of page views, downloads and outbound clicks
//! (other than the link's `url`) are dropped.
//!
//! Both spellings of the fields are understood: the short ones the script
//! sends (`n`, `u`, `d`, `r`, `p`, `e`) and the full ones of Plausible's
//! documented Events API (`name`, `url`, `domain`, `referrer`, `props`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

use super::beacon::parse_beacon;
use super::hit::{parse_props, parse_revenue, Hit, Reject};
use crate::config::{Config, SiteConfig};
use crate::goals::RawCustomEvent;
use crate::model::EventKind;

#[derive(Debug, Deserialize)]
struct PlausibleEvent {
    #[serde(alias = "name")]
    n: String,
    #[serde(default, alias = "url")]
    u: Option<String>,
    #[serde(default, alias = "domain")]
    d: Option<String>,
    #[serde(default, alias = "referrer")]
    r: Option<String>,
    #[serde(default, alias = "props")]
    p: Option<Value>,
    /// Engaged milliseconds since the previous engagement report.
    #[serde(default)]
    e: Option<Value>,
    /// Revenue of a custom event: `{"amount": …, "currency": …}`.
    #[serde(default, rename = "$", alias = "revenue")]
    revenue: Option<Value>,
}

/// True when `body` is a Plausible event rather than a sparsam beacon.
pub fn is_plausible(value: &Value) -> bool {
    match value.as_object() {
        Some(o) => (o.contains_key("n") || o.contains_key("name")) && !o.contains_key("site"),
        None => false,
    }
}

/// Parses a body posted to `/api/event`: Plausible's format or sparsam's
/// own. Returns no hits for accepted events that store nothing.
pub fn parse_event_body(
    body: &[u8],
    max_events: usize,
    config: &Config,
) -> Result<Vec<Hit>, Reject> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if is_plausible(&v) => parse_plausible(v, config),
        _ => parse_beacon(body, max_events),
    }
}

fn parse_plausible(value: Value, config: &Config) -> Result<Vec<Hit>, Reject> {
    // serde's message quotes the offending value or field name: not told
    let e: PlausibleEvent = serde_json::from_value(value).map_err(|_| {
        Reject::Body(
            "not a Plausible event: `n` (name) is a string; `u` (url), `d` (domain) and \
             `r` (referrer) are strings when present"
                .into(),
        )
    })?;
    let url = e.u.filter(|u| !u.is_empty()).ok_or(Reject::Missing("u"))?;
    let site = site_for(e.d.as_deref(), &url, config)?;
    let (kind, target) = match e.n.as_str() {
        "pageview" => (EventKind::PageView, None),
        "File Download" => (EventKind::Download, Some(prop_url(e.p.as_ref())?)),
        "Outbound Link: Click" => (EventKind::Outbound, Some(prop_url(e.p.as_ref())?)),
        "engagement" => {
            let engaged_ms = engaged_ms(e.e.as_ref())?;
            if engaged_ms == 0 {
                // A report of scrolling alone adds no time.
                return Ok(Vec::new());
            }
            return Ok(vec![Hit {
                site,
                kind: Some(EventKind::Ping),
                url,
                engaged_ms: Some(engaged_ms),
                pageview_id: Some(engagement_id()),
                ..Hit::default()
            }]);
        }
        name => {
            return Ok(vec![Hit {
                site,
                kind: Some(EventKind::Custom),
                url,
                referrer: e.r.filter(|r| !r.is_empty()),
                custom: Some(RawCustomEvent {
                    name: name.to_owned(),
                    props: custom_props(e.p.as_ref())?,
                    revenue_cents: revenue(e.revenue.as_ref())?,
                }),
                ..Hit::default()
            }])
        }
    };
    Ok(vec![Hit {
        site,
        kind: Some(kind),
        url,
        referrer: e.r.filter(|r| !r.is_empty()),
        target,
        ..Hit::default()
    }])
}

/// `p` of a custom event: an object, or (older clients) a JSON string.
fn custom_props(props: Option<&Value>) -> Result<Vec<(String, String)>, Reject> {
    match props {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => {
            let parsed = serde_json::from_str::<Value>(s).map_err(|_| Reject::Invalid {
                field: "p",
                why: "expected an object of strings, numbers or booleans".into(),
            })?;
            parse_props("p", &parsed)
        }
        Some(other) => parse_props("p", other),
    }
}

/// The amount of a custom event's revenue (`{"amount": "9.90", …}`).
fn revenue(value: Option<&Value>) -> Result<Option<i64>, Reject> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let invalid = || Reject::Invalid {
        field: "revenue",
        why: "expected {\"amount\": \"9.90\", \"currency\": \"EUR\"}".into(),
    };
    let amount = match value.get("amount").ok_or_else(invalid)? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(invalid()),
    };
    parse_revenue("revenue", &amount).map(Some)
}

/// `e` of an engagement event: whole milliseconds, 0 to 4294967295.
fn engaged_ms(e: Option<&Value>) -> Result<u32, Reject> {
    let e = e.ok_or(Reject::Missing("e"))?;
    e.as_u64()
        .and_then(|ms| u32::try_from(ms).ok())
        .ok_or_else(|| Reject::Invalid {
            field: "e",
            why: "expected engaged milliseconds, a whole number from 0 to 4294967295".into(),
        })
}

/// A page-view id for one engagement report, shared by no other event:
/// a random number drawn once per process, and a counter. The store keeps
/// the largest engaged time per page-view id, so each increment needs an
/// id of its own to be added in full.
fn engagement_id() -> String {
    static PROCESS: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let process = *PROCESS.get_or_init(|| {
        let mut bytes = [0u8; 8];
        match getrandom::fill(&mut bytes) {
            Ok(()) => u64::from_le_bytes(bytes),
            // Without the system's random source the start time still
            // tells this process from the one before a restart.
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        }
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("plausible-engagement:{process:016x}:{n:x}")
}

/// The configured sites of a comma-separated `d` (domain) field, in order.
pub(crate) fn domain_sites<'a, 'c>(
    domains: &'a str,
    config: &'c Config,
) -> impl Iterator<Item = &'c SiteConfig> + use<'a, 'c> {
    domains
        .split(',')
        .filter_map(|d| config.site_by_host(d.trim()))
}

/// The configured site of a page URL's host.
pub(crate) fn url_site<'c>(url: &str, config: &'c Config) -> Option<&'c SiteConfig> {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().and_then(|h| config.site_by_host(h)))
}

/// The configured site for Plausible's `d`, else for the page's host.
fn site_for(domains: Option<&str>, url: &str, config: &Config) -> Result<String, Reject> {
    domains
        .and_then(|d| domain_sites(d, config).next())
        .or_else(|| url_site(url, config))
        .map(|s| s.id.clone())
        .ok_or(Reject::UnknownSite)
}

/// `props.url`; props may be an object or (older clients) a JSON string.
fn prop_url(props: Option<&Value>) -> Result<String, Reject> {
    let parsed;
    let props = match props {
        Some(Value::String(s)) => {
            parsed = serde_json::from_str::<Value>(s).ok();
            parsed.as_ref()
        }
        other => other,
    };
    props
        .and_then(|p| p.get("url"))
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .ok_or(Reject::Missing("props.url"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(
            r#"
[[sites]]
id = "demo"
hostnames = ["example.org", "*.example.org"]
[[sites]]
id = "other"
hostnames = ["other.net"]
"#,
        )
        .unwrap()
    }

    fn one(body: &str) -> Vec<Hit> {
        parse_event_body(body.as_bytes(), 10, &config()).unwrap()
    }

    #[test]
    fn plausible_events_map_to_hits() {
        let pv = one(
            r#"{"n":"pageview","u":"https://www.example.org/a?q=x","d":"example.org","r":"https://duckduckgo.com/","p":{"author":"alice"},"h":1,"v":36}"#,
        );
        assert_eq!(pv.len(), 1);
        assert_eq!(
            (pv[0].site.as_str(), pv[0].kind),
            ("demo", Some(EventKind::PageView))
        );
        assert_eq!(pv[0].referrer.as_deref(), Some("https://duckduckgo.com/"));
        assert!(!format!("{pv:?}").contains("alice"), "props are dropped");

        let dl = one(
            r#"{"n":"File Download","u":"https://example.org/","d":"example.org","p":{"url":"https://example.org/a.pdf"}}"#,
        );
        assert_eq!(
            (dl[0].kind, dl[0].target.as_deref()),
            (Some(EventKind::Download), Some("https://example.org/a.pdf"))
        );
        let out = one(
            r#"{"name":"Outbound Link: Click","url":"https://example.org/","domain":"x.com,other.net","props":"{\"url\":\"https://elsewhere.com/\"}"}"#,
        );
        assert_eq!(
            (out[0].site.as_str(), out[0].kind),
            ("other", Some(EventKind::Outbound))
        );

        // Domain unknown: the page's host decides.
        assert_eq!(
            one(r#"{"n":"pageview","u":"https://other.net/","d":"renamed.io"}"#)[0].site,
            "other"
        );
        let engaged = |body: &str| {
            let hits = one(body);
            assert_eq!(hits.len(), 1, "{body}");
            assert_eq!(hits[0].kind, Some(EventKind::Ping));
            (hits[0].engaged_ms, hits[0].pageview_id.clone().unwrap())
        };
        let (ms, first) = engaged(
            r#"{"n":"engagement","u":"https://example.org/","d":"example.org","e":5000,"sd":40}"#,
        );
        assert_eq!(ms, Some(5000));
        let (ms, second) = engaged(
            r#"{"name":"engagement","url":"https://example.org/","domain":"example.org","e":1200}"#,
        );
        assert_eq!(ms, Some(1200));
        assert_ne!(first, second, "each report is added in full");
        assert!(
            one(r#"{"n":"engagement","u":"https://example.org/","d":"example.org","e":0,"sd":80}"#)
                .is_empty(),
            "scrolling alone adds no time"
        );
        let custom = one(
            r#"{"n":"Signup","u":"https://example.org/","d":"example.org","p":{"plan":"x","n":3},"$":{"amount":"9.90","currency":"EUR"}}"#,
        );
        assert_eq!(custom[0].kind, Some(EventKind::Custom));
        let c = custom[0].custom.clone().unwrap();
        assert_eq!(c.name, "Signup");
        assert_eq!(
            c.props,
            vec![
                ("n".to_string(), "3".to_string()),
                ("plan".to_string(), "x".to_string())
            ]
        );
        assert_eq!(c.revenue_cents, Some(990));
        let full = one(
            r#"{"name":"Signup","url":"https://example.org/","domain":"example.org","props":"{\"plan\":\"pro\"}","revenue":{"amount":12,"currency":"EUR"}}"#,
        );
        let c = full[0].custom.clone().unwrap();
        assert_eq!((c.props.len(), c.revenue_cents), (1, Some(1200)));
    }

    #[test]
    fn plausible_refusals_and_sparsam_beacons_still_work() {
        let c = config();
        let err = |b: &str| parse_event_body(b.as_bytes(), 10, &c).unwrap_err();
        assert_eq!(
            err(r#"{"n":"pageview","d":"example.org"}"#),
            Reject::Missing("u")
        );
        assert!(matches!(
            err(r#"{"n":"pageview","u":"https://nowhere.io/","d":"nowhere.io"}"#),
            Reject::UnknownSite
        ));
        assert_eq!(
            err(r#"{"n":"File Download","u":"https://example.org/","d":"example.org"}"#),
            Reject::Missing("props.url")
        );
        assert!(matches!(
            err(r#"{"n":5,"u":"https://example.org/"}"#),
            Reject::Body(_)
        ));
        assert_eq!(
            err(r#"{"n":"engagement","u":"https://example.org/","d":"example.org"}"#),
            Reject::Missing("e")
        );
        for bad in ["-5", "1.5", "\"300\"", "4294967296"] {
            let body = format!(
                r#"{{"n":"engagement","u":"https://example.org/","d":"example.org","e":{bad}}}"#
            );
            assert!(
                matches!(err(&body), Reject::Invalid { field: "e", .. }),
                "{bad}"
            );
        }
        let own = one(r#"{"site":"demo","url":"https://example.org/","kind":"pageview"}"#);
        assert_eq!(own[0].site, "demo");
        assert_eq!(
            one(r#"[{"site":"demo","url":"https://example.org/"}]"#).len(),
            1
        );
        assert!(matches!(err("{"), Reject::Body(_)));
    }
}
