//! `Hit`: what every wire protocol produces, before privacy and enrichment.
//!
//! Protocol modules (pixel, beacon, …) only translate their format into
//! hits; the pipeline applies the same privacy rules and classification to
//! all of them. `Reject` is the one error type for bad input, carrying the
//! short reason a client is told.

use crate::enrich::client_hints::ClientHints;
use crate::model::{plugins, EventKind};

/// One interaction as the client described it. Strings are raw: nothing
/// here has been stripped or validated beyond size.
#[derive(Clone, Debug, Default)]
pub struct Hit {
    /// Configured site id (protocols resolve their own site references).
    pub site: String,
    pub kind: Option<EventKind>,
    pub url: String,
    pub referrer: Option<String>,
    pub title: Option<String>,
    /// Page-view id made in the page (random, per page view).
    pub pageview_id: Option<String>,
    /// Link target of a download or outbound click.
    pub target: Option<String>,
    /// Explicit site-search term (when the page's URL does not carry it).
    pub search: Option<String>,
    pub search_results: Option<u32>,
    pub engaged_ms: Option<u32>,
    pub plugins: u16,
    /// Client hints sent in the body (they add to the request headers').
    pub hints: Option<ClientHints>,
    /// A user agent sent as data (Matomo `ua`); overrides the header.
    pub user_agent: Option<String>,
    /// A custom event (kind `Custom`): name, properties, revenue as sent;
    /// the pipeline keeps only what the site declared.
    pub custom: Option<crate::goals::RawCustomEvent>,
}

/// Why a hit was refused. The message is safe to show to the client: it
/// never contains the rejected value, nor anything else the client sent
/// (a reason names fields, never their contents).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("unknown site: no configured site has this id, idsite or domain")]
    UnknownSite,
    #[error("missing field `{0}`")]
    Missing(&'static str),
    #[error("field `{field}` is longer than {max} bytes")]
    TooLong { field: &'static str, max: usize },
    #[error("field `{field}` is invalid: {why}")]
    Invalid { field: &'static str, why: String },
    #[error("host of `url` is not allowed for this site (not one of its hostnames)")]
    HostNotAllowed,
    #[error("too many events in one request (at most {0})")]
    TooManyEvents(usize),
    #[error("malformed body: {0}")]
    Body(String),
}

impl Reject {
    /// The HTTP status for this rejection.
    pub fn status(&self) -> u16 {
        match self {
            Reject::UnknownSite => 404,
            Reject::HostNotAllowed => 403,
            Reject::TooLong { .. } | Reject::TooManyEvents(_) => 413,
            _ => 400,
        }
    }
}

/// Parses an event kind as clients name it.
pub fn parse_kind(s: &str) -> Result<EventKind, Reject> {
    Ok(match s {
        "pageview" | "page_view" | "pv" => EventKind::PageView,
        "ping" | "engagement" | "dwell" => EventKind::Ping,
        "download" => EventKind::Download,
        "outbound" | "link" => EventKind::Outbound,
        "search" => EventKind::Search,
        "event" | "custom" => EventKind::Custom,
        _ => {
            return Err(Reject::Invalid {
                field: "kind",
                why: "expected pageview, ping, download, outbound, search or event".into(),
            })
        }
    })
}

/// Parses a non-negative integer field, refusing negative, fractional and
/// out-of-range values instead of wrapping.
pub fn parse_u32(field: &'static str, s: &str) -> Result<u32, Reject> {
    s.trim().parse::<u32>().map_err(|_| Reject::Invalid {
        field,
        why: "expected a whole number from 0 to 4294967295".into(),
    })
}

/// Plugin flags from names such as `pdf` (unknown names are ignored).
pub fn plugins_from_names<'a>(names: impl Iterator<Item = &'a str>) -> u16 {
    names.fold(0, |acc, n| {
        acc | plugins::NAMES
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(n.trim()))
            .map(|(bit, _)| *bit)
            .unwrap_or(0)
    })
}

/// Revenue in hundredths from a decimal amount (`9.90`).
pub fn parse_revenue(field: &'static str, s: &str) -> Result<i64, Reject> {
    crate::goals::accept::parse_revenue(s).ok_or(Reject::Invalid {
        field,
        why: "expected an amount such as 9.90, from -1e12 to 1e12".into(),
    })
}

/// Custom-event properties sent as a JSON object (`{"plan":"pro"}`):
/// strings, numbers and booleans become text; anything else is refused.
pub fn parse_props(
    field: &'static str,
    value: &serde_json::Value,
) -> Result<Vec<(String, String)>, Reject> {
    let why = || Reject::Invalid {
        field,
        why: "expected an object of strings, numbers or booleans".into(),
    };
    let object = match value {
        serde_json::Value::Null => return Ok(Vec::new()),
        serde_json::Value::Object(o) => o,
        _ => return Err(why()),
    };
    object
        .iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return Err(why()),
            };
            Ok((k.clone(), text))
        })
        .collect()
}

/// Refuses a field over `max` bytes.
pub fn check_len(field: &'static str, value: &str, max: usize) -> Result<(), Reject> {
    if value.len() > max {
        Err(Reject::TooLong { field, max })
    } else {
        Ok(())
    }
}
