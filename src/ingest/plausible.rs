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
//! time and scroll depth as increments since the last report, with no
//! page-view id, so they cannot be tied to one page view: they are
//! accepted and not stored. Custom events and every other property are
//! free text chosen by the site and are dropped.

use serde::Deserialize;
use serde_json::Value;

use super::beacon::parse_beacon;
use super::hit::{Hit, Reject};
use crate::config::{Config, SiteConfig};
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
        _ => return Ok(Vec::new()),
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

/// The configured site for Plausible's `d`, else for the page's host.
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
        assert!(one(
            r#"{"n":"engagement","u":"https://example.org/","d":"example.org","e":5000,"sd":40}"#
        )
        .is_empty());
        assert!(one(
            r#"{"n":"Signup","u":"https://example.org/","d":"example.org","p":{"plan":"x"}}"#
        )
        .is_empty());
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
        let own = one(r#"{"site":"demo","url":"https://example.org/","kind":"pageview"}"#);
        assert_eq!(own[0].site, "demo");
        assert_eq!(
            one(r#"[{"site":"demo","url":"https://example.org/"}]"#).len(),
            1
        );
        assert!(matches!(err("{"), Reject::Body(_)));
    }
}
