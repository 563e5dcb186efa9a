//! The privacy notice, `GET /privacy`: a German or English page rendered
//! from the live configuration and the code, so what it says is always what
//! the running server does. Every statement is derived:
//!
//! - the data collected: one item per stored field of an event (a field
//!   added to `Event` does not compile until it is listed here), with the
//!   per-site URL parameters, search parameters and download extensions;
//! - address shortening from the masks, with computed examples;
//! - cookies from `privacy::cookies` (the collector's opt-out cookie from
//!   the config, the tracker's from the embedded script);
//! - retention of raw events, the longest possible age from the sweep
//!   schedule, whether counts are kept or deleted, and, separately, when
//!   free text (search terms, URL queries) goes and which rule keeps any;
//! - controller, legal basis and location from `[notice]`.
//!
//! The wording is in one askama template per language
//! (`templates/privacy_notice.de.html`, `.en.html`), checked when the crate
//! compiles; this module derives the facts the templates state. The
//! templates escape every value from the configuration on their own. The
//! page needs no script and may be embedded in a site's own privacy page.

use std::net::IpAddr;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::error::ApiError;
use super::lang::{pick_lang, Lang};
use super::AppState;
use crate::config::Config;
use crate::model::{Campaign, Device, Event, Referrer};
use crate::privacy::cookies::{tracker_scan, ScriptScan};
use crate::privacy::AnonIp;
use crate::store::schema::MS_PER_DAY;

/// Example addresses shown shortened in the notice.
const EXAMPLE_V4: &str = "181.153.77.201";
const EXAMPLE_V6: &str = "2001:db8:85a3:1234:5678:8a2e:370:7334";

#[derive(Deserialize)]
pub struct LangQuery {
    lang: Option<String>,
}

fn masked_example(addr: &str, config: &Config) -> (String, String) {
    let shown = addr
        .parse::<IpAddr>()
        .map(|ip| AnonIp::truncate(ip, &config.privacy.masks()).masked_display())
        .unwrap_or_default();
    (addr.to_string(), shown)
}

/// Every stored field of an event, each named with the notice item that
/// discloses it. A field added to `Event`, `Device`, `Referrer` or
/// `Campaign` breaks this pattern until the notice says what it is.
const _EVERY_STORED_FIELD_IS_DISCLOSED: fn(&Event) = |e| {
    let Event {
        site: _,        // which website (the operator's own)
        ts_ms: _,       // "time"
        kind: _,        // "url", "downloads", "outbound", "search"
        visitor: _,     // "visitor"
        pageview_id: _, // "pageview"
        url: _,         // "url"
        title: _,       // "title"
        referrer:
            Referrer {
                kind: _, // "referrer"
                name: _, // "referrer"
                url: _,  // "referrer"
            },
        campaign:
            Campaign {
                source: _,   // "campaign"
                medium: _,   // "campaign"
                campaign: _, // "campaign"
            },
        target: _,         // "downloads", "outbound"
        search_term: _,    // "search"
        search_results: _, // "search-results"
        engaged_ms: _,     // "dwell"
        device:
            Device {
                device_type: _,     // "device"
                brand: _,           // "device"
                model: _,           // "device"
                os: _,              // "device"
                os_version: _,      // "device"
                browser: _,         // "device"
                browser_version: _, // "device"
                engine: _,          // "device"
                engine_version: _,  // "device"
                bot: _,             // bots are not stored
            },
        plugins: _, // "plugins"
        anon_ip: _, // "address"
        custom: _,  // "custom-events", listed per site in the notice's event table
    } = e;
};

/// The longest gap between two scheduled sweeps, in whole days rounded up
/// (at least 1), over the next 64 sweeps.
fn sweep_interval_days(config: &Config) -> i64 {
    let schedule = &config.retention.sweep_schedule;
    let times: Vec<_> = schedule.upcoming(chrono::Utc).take(65).collect();
    let longest = times
        .windows(2)
        .map(|w| (w[1] - w[0]).num_milliseconds())
        .max()
        .unwrap_or(MS_PER_DAY);
    ((longest + MS_PER_DAY - 1) / MS_PER_DAY).max(1)
}

/// One row of the notice's table of sites.
struct SiteRow<'a> {
    name: &'a str,
    /// As visitors read them (the config holds them in ASCII).
    hostnames: Vec<String>,
    honour_dnt: bool,
    honour_gpc: bool,
    search_params: &'a [String],
    keep_query_params: &'a [String],
    download_extensions: &'a [String],
}

/// One declared custom event of a site, as the notice lists it.
struct CustomEventRow<'a> {
    site: &'a str,
    name: &'a str,
    /// Each allowed property: key, maximum length, the closed list of
    /// values if there is one.
    props: Vec<(&'a str, usize, Option<&'a [String]>)>,
}

/// An opt-out cookie the tracking script sets on a site's own domain.
struct TrackerOptoutCookie<'a> {
    name: &'a str,
    days: u32,
    set_by: &'a str,
    /// Makes the element ids unique when the script sets more than one.
    id_suffix: String,
}

/// Everything the notice states, derived from the configuration and the
/// code; the wording around it lives in `templates/privacy_notice.*.html`.
struct NoticeFacts<'a> {
    controller: &'a str,
    processing_location: &'a str,
    legal_basis_de: &'a str,
    legal_basis_en: &'a str,
    no_address: bool,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    /// An example address and how it is stored.
    example_v4: (String, String),
    example_v6: (String, String),
    any_search: bool,
    any_kept: bool,
    any_download: bool,
    /// What the tracking script stores in the browser to count; empty when
    /// it stores nothing.
    tracker_stores: Vec<String>,
    tracker_optout_cookies: Vec<TrackerOptoutCookie<'a>>,
    optout_cookie: &'a str,
    optout_cookie_days: u32,
    sites: Vec<SiteRow<'a>>,
    /// Every site's declared custom events; empty when none declares any.
    custom_events: Vec<CustomEventRow<'a>>,
    raw_days: u32,
    /// The oldest a raw event can get: `raw_days` plus one sweep interval.
    max_days: i64,
    /// 0: roll-ups are kept.
    rollup_days: u32,
    free_text_min_visitors: u32,
    free_text_max_days: i64,
}

#[derive(askama::Template)]
#[template(path = "privacy_notice.de.html")]
struct NoticeDe<'a> {
    n: &'a NoticeFacts<'a>,
}

#[derive(askama::Template)]
#[template(path = "privacy_notice.en.html")]
struct NoticeEn<'a> {
    n: &'a NoticeFacts<'a>,
}

impl<'a> NoticeFacts<'a> {
    fn derive(config: &'a Config, tracker: &'a ScriptScan) -> NoticeFacts<'a> {
        let n = &config.notice;
        let p = &config.privacy;
        let r = &config.retention;
        let max_days = i64::from(r.raw_days) + sweep_interval_days(config);
        let tracker_stores = if tracker.tracks() {
            let mut stored = tracker.other_cookie_writes.clone();
            stored.extend(tracker.web_storage.iter().cloned());
            stored
        } else {
            Vec::new()
        };
        NoticeFacts {
            controller: &n.controller,
            processing_location: &n.processing_location,
            legal_basis_de: &n.legal_basis_de,
            legal_basis_en: &n.legal_basis_en,
            no_address: p.ipv4_prefix == 0 && p.ipv6_prefix == 0,
            ipv4_prefix: p.ipv4_prefix,
            ipv6_prefix: p.ipv6_prefix,
            example_v4: masked_example(EXAMPLE_V4, config),
            example_v6: masked_example(EXAMPLE_V6, config),
            any_search: config.sites.iter().any(|s| !s.search_params.is_empty()),
            any_kept: config.sites.iter().any(|s| !s.keep_query_params.is_empty()),
            any_download: config
                .sites
                .iter()
                .any(|s| !s.download_extensions.is_empty()),
            tracker_stores,
            tracker_optout_cookies: tracker
                .optout_cookies
                .iter()
                .enumerate()
                .map(|(i, c)| TrackerOptoutCookie {
                    name: &c.name,
                    days: c.days,
                    set_by: &c.set_by,
                    id_suffix: if i == 0 {
                        String::new()
                    } else {
                        format!("-{i}")
                    },
                })
                .collect(),
            optout_cookie: &p.optout_cookie,
            optout_cookie_days: p.optout_cookie_days,
            sites: config
                .sites
                .iter()
                .map(|s| SiteRow {
                    name: if s.name.is_empty() { &s.id } else { &s.name },
                    hostnames: s
                        .hostnames
                        .iter()
                        .map(|h| crate::privacy::url_strip::unicode_domain(h))
                        .collect(),
                    honour_dnt: s.honour_dnt,
                    honour_gpc: s.honour_gpc,
                    search_params: &s.search_params,
                    keep_query_params: &s.keep_query_params,
                    download_extensions: &s.download_extensions,
                })
                .collect(),
            custom_events: config
                .sites
                .iter()
                .flat_map(|s| {
                    let site = if s.name.is_empty() { &s.id } else { &s.name };
                    s.events.iter().map(move |e| CustomEventRow {
                        site,
                        name: &e.name,
                        props: e
                            .props
                            .iter()
                            .map(|(key, p)| (key.as_str(), p.max_len, p.values.as_deref()))
                            .collect(),
                    })
                })
                .collect(),
            raw_days: r.raw_days,
            max_days,
            rollup_days: r.rollup_days,
            free_text_min_visitors: r.free_text_min_visitors,
            // Roll-ups lose free text a whole (site-local) day at a time: a
            // local day may start up to 14 hours before its UTC day and goes
            // with the first sweep after the UTC day after it is past
            // `raw_days`.
            free_text_max_days: max_days + 2,
        }
    }
}

/// Renders the notice for `lang` from `config`; the templates escape every
/// value they are given.
pub fn render(config: &Config, lang: Lang) -> Result<String, askama::Error> {
    use askama::Template as _;
    let tracker = tracker_scan();
    let facts = NoticeFacts::derive(config, tracker);
    match lang {
        Lang::De => NoticeDe { n: &facts }.render(),
        Lang::En => NoticeEn { n: &facts }.render(),
    }
}

/// `GET /privacy`
pub async fn show(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<LangQuery>,
) -> Result<HttpResponse, ApiError> {
    let lang = pick_lang(q.lang.as_deref(), &req);
    let page = render(&state.config, lang).map_err(|e| {
        tracing::error!(error = %e, "privacy notice did not render");
        ApiError::Internal
    })?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_LANGUAGE, lang.code()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors *",
        ))
        .body(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every text the configuration puts on the page arrives escaped, in
    /// both languages, without a call to an escaping function here.
    #[test]
    fn configured_text_is_escaped_everywhere_it_appears() {
        let config = Config::parse(
            "[notice]\ncontroller = \"<i>c</i>\"\nprocessing_location = \"<i>l</i>\"\n\
             legal_basis_de = \"<i>d</i>\"\nlegal_basis_en = \"<i>e</i>\"\n\
             [[sites]]\nid = \"a\"\nname = \"<i>n</i>\"\nhostnames = [\"x.org\"]\n\
             keep_query_params = [\"<i>k</i>\"]\nsearch_params = [\"<i>s</i>\"]\n",
        )
        .unwrap();
        for lang in [Lang::De, Lang::En] {
            let page = render(&config, lang).unwrap();
            assert!(!page.contains("<i>"), "{page}");
            let escaped = page.matches("&#60;i&#62;").count();
            // controller, location, one legal basis, site name, two parameters
            assert_eq!(escaped, 6, "{page}");
        }
    }
}
