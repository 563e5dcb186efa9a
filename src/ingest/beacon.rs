//! Script beacons, `POST /api/event`: one JSON event, an array of events,
//! or `{"events": [...]}`. Sent by `t.js` with `navigator.sendBeacon` as
//! `text/plain` so cross-origin posts need no CORS preflight. Plausible's
//! event format on the same route is handled by `super::plausible`.
//!
//! ```json
//! {"site":"demo","kind":"pageview","url":"https://example.org/a",
//!  "ref":"https://www.google.de/","title":"A","pv":"k3j2h1",
//!  "engaged_ms":1200,"plugins":["pdf"],"hints":{"model":"Pixel 8"}}
//! {"site":"demo","kind":"event","url":"https://example.org/signup",
//!  "event":"signup","props":{"plan":"pro"},"revenue":9.9}
//! ```
//!
//! A declared custom event names itself with `event` (or `e`); `props`
//! and `revenue` go with it.

use serde::Deserialize;
use serde_json::Number;

use super::hit::{parse_kind, parse_props, parse_revenue, plugins_from_names, Hit, Reject};
use crate::enrich::client_hints::ClientHints;
use crate::goals::RawCustomEvent;

#[derive(Debug, Deserialize)]
struct BeaconEvent {
    #[serde(default)]
    site: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default, alias = "referrer")]
    r#ref: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    pv: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    search: Option<String>,
    #[serde(default)]
    results: Option<Number>,
    #[serde(default)]
    engaged_ms: Option<Number>,
    #[serde(default)]
    plugins: Option<Vec<String>>,
    #[serde(default)]
    hints: Option<ClientHints>,
    #[serde(default, alias = "e")]
    event: Option<String>,
    #[serde(default)]
    props: Option<serde_json::Value>,
    #[serde(default)]
    revenue: Option<Number>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Body {
    Many(Vec<BeaconEvent>),
    Wrapped { events: Vec<BeaconEvent> },
    One(Box<BeaconEvent>),
}

fn number(field: &'static str, n: Option<Number>) -> Result<Option<u32>, Reject> {
    match n {
        None => Ok(None),
        Some(n) => n
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .map(Some)
            .ok_or(Reject::Invalid {
                field,
                why: "expected a whole number from 0 to 4294967295".into(),
            }),
    }
}

/// Parses a beacon body into hits (at most `max_events`).
pub fn parse_beacon(body: &[u8], max_events: usize) -> Result<Vec<Hit>, Reject> {
    let parsed: Body = serde_json::from_slice(body).map_err(|e| {
        Reject::Body(format!(
            "expected a JSON event, an array of events or {{\"events\": [...]}} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let events = match parsed {
        Body::Many(v) | Body::Wrapped { events: v } => v,
        Body::One(e) => vec![*e],
    };
    if events.is_empty() {
        return Err(Reject::Body("no events".into()));
    }
    if events.len() > max_events {
        return Err(Reject::TooManyEvents(max_events));
    }
    events.into_iter().map(to_hit).collect()
}

fn to_hit(e: BeaconEvent) -> Result<Hit, Reject> {
    let props = match &e.props {
        Some(p) => parse_props("props", p)?,
        None => Vec::new(),
    };
    let revenue_cents = e
        .revenue
        .as_ref()
        .map(|n| parse_revenue("revenue", &n.to_string()))
        .transpose()?;
    let custom = match e.event.filter(|n| !n.is_empty()) {
        Some(name) => Some(RawCustomEvent {
            name,
            props,
            revenue_cents,
        }),
        None if !props.is_empty() || revenue_cents.is_some() => {
            return Err(Reject::Missing("event"))
        }
        None => None,
    };
    Ok(Hit {
        site: e.site.ok_or(Reject::Missing("site"))?,
        kind: e.kind.as_deref().map(parse_kind).transpose()?,
        url: e
            .url
            .filter(|u| !u.is_empty())
            .ok_or(Reject::Missing("url"))?,
        referrer: e.r#ref,
        title: e.title,
        pageview_id: e.pv,
        target: e.target,
        search: e.search,
        search_results: number("results", e.results)?,
        engaged_ms: number("engaged_ms", e.engaged_ms)?,
        plugins: e
            .plugins
            .map(|p| plugins_from_names(p.iter().map(String::as_str)))
            .unwrap_or(0),
        hints: e.hints,
        user_agent: None,
        custom,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_many_wrapped() {
        let one = br#"{"site":"a","url":"https://x.org/"}"#;
        assert_eq!(parse_beacon(one, 10).unwrap().len(), 1);
        let many = br#"[{"site":"a","url":"https://x.org/"},{"site":"a","url":"https://x.org/b","kind":"ping","pv":"p1","engaged_ms":5}]"#;
        let hits = parse_beacon(many, 10).unwrap();
        assert_eq!(hits[1].engaged_ms, Some(5));
        let wrapped = br#"{"events":[{"site":"a","url":"https://x.org/"}]}"#;
        assert_eq!(parse_beacon(wrapped, 10).unwrap().len(), 1);
    }

    #[test]
    fn bad_bodies_are_rejected_with_reasons() {
        assert!(matches!(parse_beacon(b"{", 10), Err(Reject::Body(_))));
        assert!(matches!(parse_beacon(b"[]", 10), Err(Reject::Body(_))));
        assert!(matches!(
            parse_beacon(&[0xff, 0xfe], 10),
            Err(Reject::Body(_))
        ));
        let neg = br#"{"site":"a","url":"https://x.org/","engaged_ms":-1}"#;
        assert!(matches!(
            parse_beacon(neg, 10),
            Err(Reject::Invalid {
                field: "engaged_ms",
                ..
            })
        ));
        let huge = br#"{"site":"a","url":"https://x.org/","engaged_ms":1e300}"#;
        assert!(matches!(
            parse_beacon(huge, 10),
            Err(Reject::Invalid { .. })
        ));
        let many = format!(
            "[{}]",
            [r#"{"site":"a","url":"https://x.org/"}"#; 11].join(",")
        );
        assert_eq!(
            parse_beacon(many.as_bytes(), 10).unwrap_err(),
            Reject::TooManyEvents(10)
        );
    }
}
