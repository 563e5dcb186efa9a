//! Declared custom events, goals and funnels.
//!
//! A custom event ("signup", "brochure ordered") is free text chosen by a
//! site, so sparsam stores one only when the site's configuration declares
//! it: its name, and per property the key, a maximum length and optionally
//! a closed list of values. The privacy notice lists exactly these
//! declarations, so what is disclosed and what is stored cannot drift
//! apart. Everything else is refused where it comes in and counted in a
//! metric (`sparsam_custom_refused_total`).
//!
//! Goals (a page pattern, or an event with an optional property match) and
//! funnels (up to [`MAX_FUNNEL_STEPS`] ordered steps within a visit) are
//! questions asked of stored events; the store answers them from raw
//! events inside retention with the visit engine.
//!
//! - [`config`]: the `[[sites.events]]`, `[[sites.goals]]` and
//!   `[[sites.funnels]]` tables and their validation;
//! - [`pattern`]: path patterns (`/guide/*`);
//! - [`accept`]: what an incoming custom event keeps (declared names and
//!   properties, values scrubbed and cut like URLs).

pub mod accept;
pub mod config;
pub mod pattern;

pub use accept::{accept, AcceptError, CustomEvent, RawCustomEvent};
pub use config::{EventDecl, FunnelDecl, GoalDecl, PropDecl, MAX_FUNNEL_STEPS};
pub use pattern::PathPattern;

/// One condition on a stored event, as goals and funnel steps ask it.
#[derive(Clone, Debug)]
pub enum Condition {
    /// A page view whose path matches.
    Page(PathPattern),
    /// A custom event of this name whose properties hold these values.
    Event {
        name: String,
        props: Vec<(String, String)>,
    },
}

impl Condition {
    /// True when a page view of `path` meets the condition.
    pub fn matches_page(&self, path: &str) -> bool {
        matches!(self, Condition::Page(p) if p.matches(path))
    }

    /// True when a custom event `name` with `props` meets the condition.
    pub fn matches_event(&self, event: &str, event_props: &[(String, String)]) -> bool {
        match self {
            Condition::Event { name, props } => {
                name == event
                    && props
                        .iter()
                        .all(|want| event_props.iter().any(|have| have == want))
            }
            Condition::Page(_) => false,
        }
    }
}

/// A goal ready to be counted.
#[derive(Clone, Debug)]
pub struct Goal {
    pub name: String,
    pub condition: Condition,
}

/// A funnel ready to be counted: its steps in order.
#[derive(Clone, Debug)]
pub struct Funnel {
    pub name: String,
    pub steps: Vec<(String, Condition)>,
}

/// The path of a stored page URL (`https://host/a/b?x=1` → `/a/b`).
pub fn url_path(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(url, |i| &url[i + 3..]);
    let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    path.split(['?', '#']).next().unwrap_or("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_paths() {
        assert_eq!(url_path("https://x.org/a/b?q=1"), "/a/b");
        assert_eq!(url_path("https://x.org"), "/");
        assert_eq!(url_path("https://x.org/?q"), "/");
        assert_eq!(url_path("/a"), "/a");
    }

    #[test]
    fn event_conditions_match_props_as_a_subset() {
        let c = Condition::Event {
            name: "signup".into(),
            props: vec![("plan".into(), "pro".into())],
        };
        let p = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert!(c.matches_event("signup", &[p("plan", "pro"), p("via", "nav")]));
        assert!(!c.matches_event("signup", &[p("plan", "free")]));
        assert!(!c.matches_event("other", &[p("plan", "pro")]));
        assert!(!c.matches_page("/signup"));
    }
}
