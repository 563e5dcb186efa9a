//! The Matomo HTTP Tracking API (`/matomo.php`, `/piwik.php`): turns one
//! Matomo request (query string or form body) into a [`Hit`], and a bulk
//! body `{"requests": ["?idsite=…", …]}` into a list of them.
//!
//! Why: many sites already run Matomo's tracker; pointing it at sparsam
//! must work without changing the page. Only parameters that carry data
//! sparsam collects are read (`docs/protocols.md` lists them); every
//! parameter that identifies a person (`_id`, `uid`, `cid`, `cip`, custom
//! dimensions and variables, event names, …) is accepted and dropped here,
//! so it never reaches the pipeline. The client's clock (`cdt`, `h`/`m`/`s`)
//! is ignored: events carry the server's time.
//!
//! Events and goals become declared custom events (`crate::goals`):
//! `trackEvent(category, action, name, value)` (`e_c`, `e_a`, `e_n`,
//! `e_v`) is the declared event named `category/action` when the site
//! declares that name, otherwise the one named `action`; `e_n` is its
//! property `name`, `e_c` its property `category` (when the event
//! declares one and its name does not hold the category already), `e_v`
//! its revenue. `trackGoal(id, revenue)` (`idgoal`, `revenue`) stores the
//! event of the goal declared with `matomo_id = id`, with the goal's
//! property values. Undeclared ones are refused in the pipeline (or here,
//! for a goal id no goal declares) and counted.

use serde::Deserialize;

use super::hit::{parse_revenue, parse_u32, Hit, Reject};
use super::query::strict_pairs;
use crate::config::{Config, SiteConfig};
use crate::enrich::client_hints::ClientHints;
use crate::goals::accept::count_refused;
use crate::goals::RawCustomEvent;
use crate::model::{plugins, EventKind};

/// What one Matomo request asks for.
#[derive(Debug)]
pub enum MatomoRequest {
    /// Something sparsam records.
    Hit(Box<Hit>),
    /// A valid request that stores nothing: `rec` is not 1, a heartbeat
    /// ping without a page-view id, or a custom action without a page view
    /// (events, content impressions).
    Ignored,
}

/// Matomo's plugin flags and the sparsam plugin each one means.
const PLUGIN_FLAGS: [(&str, u16); 10] = [
    ("pdf", plugins::PDF),
    ("java", plugins::JAVA),
    ("fla", plugins::FLASH),
    ("ag", plugins::SILVERLIGHT),
    ("qt", plugins::QUICKTIME),
    ("realp", plugins::REALPLAYER),
    ("wma", plugins::WINDOWS_MEDIA),
    ("dir", plugins::DIRECTOR),
    ("gears", plugins::GEARS),
    ("cookie", plugins::COOKIES),
];

/// Parses one request's parameters (`a=1&b=2`, a leading `?` allowed).
/// `ua_header`-independent: the HTTP layer supplies the header user agent;
/// `ua` here overrides it through [`Hit::user_agent`].
pub fn parse_request(params: &str, config: &Config) -> Result<MatomoRequest, Reject> {
    let params = params.strip_prefix('?').unwrap_or(params);
    let mut hit = Hit::default();
    let mut idsite = None;
    let mut rec = false;
    let mut ping = false;
    let mut custom_action = false;
    let mut search = None;
    let mut event = MatomoEvent::default();
    for (k, v) in strict_pairs(params)? {
        match k.as_str() {
            "idsite" => idsite = Some(parse_u32("idsite", &v)?),
            "rec" => rec = v.trim() == "1",
            "url" => hit.url = v,
            "urlref" => hit.referrer = Some(v).filter(|r| !r.is_empty()),
            "action_name" => hit.title = Some(v),
            "search" => search = Some(v),
            "search_count" if !v.trim().is_empty() => {
                hit.search_results = Some(parse_u32("search_count", &v)?)
            }
            "download" => {
                hit.kind = Some(EventKind::Download);
                hit.target = Some(v);
            }
            "link" => {
                hit.kind = Some(EventKind::Outbound);
                hit.target = Some(v);
            }
            "ping" => ping = v.trim() == "1",
            "ca" => custom_action = v.trim() == "1",
            "pv_id" => hit.pageview_id = Some(v).filter(|p| !p.is_empty()),
            "ua" if !v.trim().is_empty() => hit.user_agent = Some(v),
            // Malformed hints are dropped, like malformed hint headers.
            "uadata" => hit.hints = ClientHints::from_json(&v).ok(),
            "e_c" => event.category = Some(v).filter(|c| !c.trim().is_empty()),
            "e_a" => event.action = Some(v).filter(|a| !a.trim().is_empty()),
            "e_n" => event.name = Some(v).filter(|n| !n.trim().is_empty()),
            "e_v" if !v.trim().is_empty() => event.value = Some(parse_revenue("e_v", &v)?),
            "idgoal" if !v.trim().is_empty() => event.goal = Some(parse_u32("idgoal", &v)?),
            "revenue" if !v.trim().is_empty() => {
                event.revenue = Some(parse_revenue("revenue", &v)?)
            }
            name => {
                if let Some((_, bit)) = PLUGIN_FLAGS.iter().find(|(n, _)| *n == name) {
                    if v.trim() == "1" {
                        hit.plugins |= bit;
                    }
                }
                // Everything else is ignored on purpose (docs/protocols.md).
            }
        }
    }
    let idsite = idsite.ok_or(Reject::Missing("idsite"))?;
    let site = config
        .site_by_matomo_id(idsite)
        .ok_or(Reject::UnknownSite)?;
    hit.site = site.id.clone();
    if !rec {
        return Ok(MatomoRequest::Ignored);
    }
    if ping {
        // A heartbeat carries no duration: it becomes a dwell-time ping
        // with no engaged time of its own, which the store times as the
        // time since its page view. Without a page-view id it cannot be
        // tied to one.
        if hit.pageview_id.is_none() {
            return Ok(MatomoRequest::Ignored);
        }
        if hit.url.is_empty() {
            return Err(Reject::Missing("url"));
        }
        return Ok(MatomoRequest::Hit(Box::new(Hit {
            kind: Some(EventKind::Ping),
            engaged_ms: None,
            target: None,
            search: None,
            search_results: None,
            ..hit
        })));
    }
    if hit.url.is_empty() {
        return Err(Reject::Missing("url"));
    }
    if event.is_custom() {
        return Ok(match event.into_custom(site) {
            Some(custom) => MatomoRequest::Hit(Box::new(Hit {
                kind: Some(EventKind::Custom),
                custom: Some(custom),
                target: None,
                search: None,
                search_results: None,
                ..hit
            })),
            None => MatomoRequest::Ignored,
        });
    }
    if let Some(term) = search.filter(|s| !s.trim().is_empty()) {
        if hit.kind.is_none() {
            // Matomo records a site search instead of the page view.
            hit.kind = Some(EventKind::Search);
        }
        hit.search = Some(term);
    }
    if hit.kind.is_none() {
        if custom_action {
            return Ok(MatomoRequest::Ignored);
        }
        hit.kind = Some(EventKind::PageView);
    }
    Ok(MatomoRequest::Hit(Box::new(hit)))
}

/// The event and goal parameters of one request.
#[derive(Debug, Default)]
struct MatomoEvent {
    category: Option<String>,
    action: Option<String>,
    name: Option<String>,
    value: Option<i64>,
    goal: Option<u32>,
    revenue: Option<i64>,
}

impl MatomoEvent {
    fn is_custom(&self) -> bool {
        self.action.is_some() || self.goal.is_some()
    }

    /// The custom event this request records for `site`; `None` for a
    /// request that records nothing (an e-commerce order, `idgoal=0`, or
    /// a goal id no goal of the site declares, which is counted).
    fn into_custom(self, site: &SiteConfig) -> Option<RawCustomEvent> {
        if let Some(id) = self.goal.filter(|_| self.action.is_none()) {
            if id == 0 {
                return None;
            }
            let Some(goal) = site.goals.iter().find(|g| g.matomo_id == Some(id)) else {
                count_refused("unknown_goal");
                return None;
            };
            return Some(RawCustomEvent {
                name: goal.event.clone().unwrap_or_default(),
                props: goal
                    .props
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                revenue_cents: self.revenue,
            });
        }
        let action = self.action?;
        let declared = |name: &str| site.events.iter().find(|e| e.name == name);
        let mut props = Vec::new();
        let name = match &self.category {
            Some(category) if declared(&format!("{category}/{action}")).is_some() => {
                format!("{category}/{action}")
            }
            Some(category) => {
                if declared(&action).is_some_and(|e| e.props.contains_key("category")) {
                    props.push(("category".to_owned(), category.clone()));
                }
                action
            }
            None => action,
        };
        if let Some(n) = self.name {
            props.push(("name".to_owned(), n));
        }
        Some(RawCustomEvent {
            name,
            props,
            revenue_cents: self.value.or(self.revenue),
        })
    }
}

#[derive(Deserialize)]
struct Bulk {
    requests: Vec<String>,
}

/// Parses a bulk body into its request strings (at most `max`).
pub fn parse_bulk(body: &[u8], max: usize) -> Result<Vec<String>, Reject> {
    let bulk: Bulk = serde_json::from_slice(body).map_err(|e| {
        Reject::Body(format!(
            "expected {{\"requests\": [\"?idsite=…\", …]}} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if bulk.requests.len() > max {
        return Err(Reject::TooManyEvents(max));
    }
    Ok(bulk.requests)
}

/// True when a POST body is a bulk request rather than form parameters.
pub fn is_bulk(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(
            r#"
[[sites]]
id = "demo"
matomo_id = 7
hostnames = ["example.org"]
"#,
        )
        .unwrap()
    }

    fn hit(q: &str) -> Hit {
        match parse_request(q, &config()).unwrap() {
            MatomoRequest::Hit(h) => *h,
            MatomoRequest::Ignored => panic!("ignored: {q}"),
        }
    }

    #[test]
    fn page_view_keeps_only_collected_fields() {
        let h = hit("?idsite=7&rec=1&url=https%3A%2F%2Fexample.org%2Fa&urlref=https%3A%2F%2Fwww.google.de%2F&action_name=A&pv_id=abc123&pdf=1&java=0&fla=1&_id=1234567890abcdef&uid=alice&cid=1234567890abcdef&cip=1.2.3.4&_idts=1&_idvc=5&_viewts=1&cdt=2001-01-01&res=1920x1080&dimension1=secret&_cvar=%7B%7D&lang=de&h=1&m=2&s=3&uadata=%7B%22model%22%3A%22Pixel%208%22%7D");
        assert_eq!(h.site, "demo");
        assert_eq!(h.kind, Some(EventKind::PageView));
        assert_eq!(h.url, "https://example.org/a");
        assert_eq!(h.referrer.as_deref(), Some("https://www.google.de/"));
        assert_eq!(h.title.as_deref(), Some("A"));
        assert_eq!(h.pageview_id.as_deref(), Some("abc123"));
        assert_eq!(h.plugins, plugins::PDF | plugins::FLASH);
        assert_eq!(h.hints.unwrap().model.as_deref(), Some("Pixel 8"));
        let dbg = format!("{:?}", hit("idsite=7&rec=1&url=https%3A%2F%2Fexample.org%2F&uid=alice&cip=1.2.3.4&_id=feedfacefeedface&dimension1=secret"));
        for leaked in ["alice", "1.2.3.4", "feedface", "secret"] {
            assert!(!dbg.contains(leaked), "{leaked} must be dropped");
        }
    }

    #[test]
    fn downloads_links_and_searches() {
        let d = hit("idsite=7&rec=1&url=https%3A%2F%2Fexample.org%2F&download=https%3A%2F%2Fexample.org%2Fa.pdf");
        assert_eq!(
            (d.kind, d.target.as_deref()),
            (Some(EventKind::Download), Some("https://example.org/a.pdf"))
        );
        let l =
            hit("idsite=7&rec=1&url=https%3A%2F%2Fexample.org%2F&link=https%3A%2F%2Fother.org%2F");
        assert_eq!(l.kind, Some(EventKind::Outbound));
        let s = hit("idsite=7&rec=1&url=https%3A%2F%2Fexample.org%2Fs&search=tax+forms&search_cat=x&search_count=12");
        assert_eq!(
            (s.kind, s.search.as_deref(), s.search_results),
            (Some(EventKind::Search), Some("tax forms"), Some(12))
        );
    }

    #[test]
    fn heartbeat_pings_with_a_page_view_id_are_pings() {
        let p = hit("idsite=7&rec=1&ping=1&pv_id=abc123&url=https%3A%2F%2Fexample.org%2Fa&link=https%3A%2F%2Fx.org%2F&search=s");
        assert_eq!(p.kind, Some(EventKind::Ping));
        assert_eq!(p.pageview_id.as_deref(), Some("abc123"));
        assert_eq!(p.engaged_ms, None, "timed by the server");
        assert_eq!((p.target, p.search), (None, None));
        assert_eq!(
            parse_request("idsite=7&rec=1&ping=1&pv_id=abc123", &config()).unwrap_err(),
            Reject::Missing("url")
        );
    }

    #[test]
    fn ignored_and_refused_requests() {
        let c = config();
        let ignored = |q: &str| matches!(parse_request(q, &c), Ok(MatomoRequest::Ignored));
        assert!(ignored("idsite=7&url=https%3A%2F%2Fexample.org%2F"));
        assert!(ignored("idsite=7&rec=0&url=https%3A%2F%2Fexample.org%2F"));
        assert!(ignored(
            "idsite=7&rec=1&ping=1&url=https%3A%2F%2Fexample.org%2F"
        ));
        assert!(ignored(
            "idsite=7&rec=1&ca=1&idgoal=0&revenue=5&url=https%3A%2F%2Fexample.org%2F"
        ));
        assert!(ignored(
            "idsite=7&rec=1&ca=1&e_c=Video&url=https%3A%2F%2Fexample.org%2F"
        ));
        assert_eq!(
            parse_request("rec=1&url=x", &c).unwrap_err(),
            Reject::Missing("idsite")
        );
        assert_eq!(
            parse_request("idsite=8&rec=1&url=x", &c).unwrap_err(),
            Reject::UnknownSite
        );
        assert!(matches!(
            parse_request("idsite=-1&rec=1", &c),
            Err(Reject::Invalid { .. })
        ));
        assert_eq!(
            parse_request("idsite=7&rec=1", &c).unwrap_err(),
            Reject::Missing("url")
        );
        assert!(matches!(
            parse_request("idsite=7&rec=1&url=x%ZZ&uadata=%7B", &c),
            Ok(MatomoRequest::Hit(_))
        ));
        assert!(matches!(
            parse_request("idsite=7&rec=1&url=%FF%ZZ", &c),
            Err(Reject::Invalid { field: "query", .. })
        ));
    }

    #[test]
    fn events_and_goals_become_custom_events() {
        let c = Config::parse(
            r#"
[[sites]]
id = "demo"
matomo_id = 7
hostnames = ["example.org"]
[[sites.events]]
name = "Video/Play"
props = { name = { max_len = 32 } }
[[sites.events]]
name = "Download"
props = { category = { max_len = 32 } }
[[sites.events]]
name = "signup"
props = { plan = { max_len = 8 } }
[[sites.goals]]
name = "Signed up"
event = "signup"
props = { plan = "pro" }
matomo_id = 3
"#,
        )
        .unwrap();
        let custom = |q: &str| match parse_request(q, &c).unwrap() {
            MatomoRequest::Hit(h) => {
                assert_eq!(h.kind, Some(EventKind::Custom));
                h.custom.unwrap()
            }
            MatomoRequest::Ignored => panic!("ignored: {q}"),
        };
        let url = "url=https%3A%2F%2Fexample.org%2F";
        let e = custom(&format!(
            "idsite=7&rec=1&ca=1&e_c=Video&e_a=Play&e_n=Intro&e_v=2.5&{url}"
        ));
        assert_eq!(e.name, "Video/Play");
        assert_eq!(e.props, vec![("name".to_string(), "Intro".to_string())]);
        assert_eq!(e.revenue_cents, Some(250));
        let e = custom(&format!("idsite=7&rec=1&e_c=Brochure&e_a=Download&{url}"));
        assert_eq!(e.name, "Download");
        assert_eq!(
            e.props,
            vec![("category".to_string(), "Brochure".to_string())]
        );
        let e = custom(&format!("idsite=7&rec=1&idgoal=3&revenue=19.99&{url}"));
        assert_eq!(e.name, "signup");
        assert_eq!(e.props, vec![("plan".to_string(), "pro".to_string())]);
        assert_eq!(e.revenue_cents, Some(1999));
        assert!(matches!(
            parse_request(&format!("idsite=7&rec=1&idgoal=9&{url}"), &c),
            Ok(MatomoRequest::Ignored)
        ));
    }

    #[test]
    fn bulk_bodies() {
        let b = br#" {"requests": ["?idsite=7&rec=1&url=x", "?idsite=7"], "token_auth": "t"}"#;
        assert!(is_bulk(b));
        assert!(!is_bulk(b"idsite=7&rec=1"));
        assert_eq!(parse_bulk(b, 10).unwrap().len(), 2);
        assert_eq!(parse_bulk(b, 1).unwrap_err(), Reject::TooManyEvents(1));
        assert!(matches!(
            parse_bulk(b"{\"requests\": 5}", 10),
            Err(Reject::Body(_))
        ));
    }
}
