//! The ingest pipeline: `Hit` + request facts → stored `Event`.
//!
//! Runs the same steps for every protocol and for log import, in an order
//! that keeps personal data from spreading: site, size and engaged-time
//! checks, URL stripping and scrubbing (before anything reads the URL),
//! referrer spam (stops here), device detection (bots stop here), visitor hash from the
//! already-truncated address, referrer and campaign, search term. This is
//! the one place where page URLs, link targets and referrers are stripped
//! (`privacy::strip_url`) and titles and explicit search terms scrubbed
//! (`privacy::scrub_identifiers`), so no protocol can bypass it.
//! Timestamps are always the server's clock at receipt.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::hit::{check_len, Hit, Reject};
use crate::config::{Config, SiteConfig};
use crate::enrich::client_hints::ClientHints;
use crate::enrich::device::DeviceDetector;
use crate::enrich::referrer::{campaign_from_params, classify_stripped, truncate};
use crate::enrich::search::search_term;
use crate::model::{Event, EventKind};
use crate::privacy::visitor::{pageview_hash, utc_day, DaySalts, SaltError};
use crate::privacy::{scrub_identifiers, strip_url, visitor_hash, AnonIp, CleanUrl, SaltKeeper};

/// What the HTTP layer learned about the request itself.
#[derive(Clone, Debug)]
pub struct RequestMeta {
    pub anon_ip: AnonIp,
    pub user_agent: String,
    pub header_hints: ClientHints,
}

/// The result of processing one hit.
#[derive(Debug)]
pub enum Processed {
    /// One or two events to store (a search results page yields a page
    /// view and a search).
    Events(Vec<Event>),
    /// A bot: answered like any hit, counted in a metric, not stored.
    Bot,
    /// Its referrer is on the referrer-spam list: answered like any hit,
    /// counted in a metric, not stored.
    ReferrerSpam,
    /// A custom event the site did not declare: answered like any hit,
    /// counted in a metric, not stored.
    UndeclaredEvent,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Reject(#[from] Reject),
    #[error("visitor salt unavailable: {0}")]
    Salt(#[from] SaltError),
}

pub struct Pipeline {
    config: Arc<Config>,
    detector: DeviceDetector,
    salts: Arc<SaltKeeper>,
}

const MAX_PAGEVIEW_ID: usize = 64;

impl Pipeline {
    /// `salts` may be shared (in an `Arc`) with the task that rotates them
    /// at each UTC midnight.
    pub fn new(
        config: Arc<Config>,
        detector: DeviceDetector,
        salts: impl Into<Arc<SaltKeeper>>,
    ) -> Self {
        Pipeline {
            config,
            detector,
            salts: salts.into(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn detector(&self) -> &DeviceDetector {
        &self.detector
    }

    /// Processes one hit received at `now`.
    pub fn process(
        &self,
        hit: Hit,
        meta: &RequestMeta,
        now: DateTime<Utc>,
    ) -> Result<Processed, PipelineError> {
        Self::process_with(
            &self.config,
            &self.detector,
            hit,
            meta,
            now,
            &mut &*self.salts,
        )
    }

    /// The same steps as [`Pipeline::process`] for a hit received at `now`,
    /// with the visitor-hash salt of a UTC day lent by `salts` instead of
    /// the live salt file. A log import passes the time of the
    /// log line and salts that live only in its own memory.
    pub fn process_with(
        config: &Config,
        detector: &DeviceDetector,
        hit: Hit,
        meta: &RequestMeta,
        now: DateTime<Utc>,
        salts: &mut dyn DaySalts,
    ) -> Result<Processed, PipelineError> {
        let site = config.site(&hit.site).ok_or(Reject::UnknownSite)?;
        let max = config.server.max_field_bytes.as_u64() as usize;
        check_sizes(config, &hit, meta, max)?;

        let page = strip_url(&hit.url, |p| site.is_kept_param(p)).map_err(|e| Reject::Invalid {
            field: "url",
            why: e.to_string(),
        })?;
        if !site.allows_host(&page.host) {
            return Err(Reject::HostNotAllowed.into());
        }
        let Some(referrer_url) = referrer_unless_spam(config, hit.referrer.as_deref()) else {
            return Ok(Processed::ReferrerSpam);
        };

        let user_agent = hit.user_agent.as_deref().unwrap_or(&meta.user_agent);
        // Hints sent in the body win per field; the headers' fill the gaps.
        let merged;
        let hints = match &hit.hints {
            Some(body) => {
                merged = body.or(&meta.header_hints);
                &merged
            }
            None => &meta.header_hints,
        };
        let device = detector.detect(user_agent, hints);
        if device.bot {
            return Ok(Processed::Bot);
        }

        let (mut visitor, mut pageview) = (0, 0);
        salts.with_salt(utc_day(now), &mut |salt| {
            visitor = visitor_hash(salt, &site.id, &meta.anon_ip, user_agent);
            pageview = hit
                .pageview_id
                .as_deref()
                .map(|raw| pageview_id(salt, raw))
                .unwrap_or(0);
        })?;

        let campaign = campaign_from_params(&page.params, 200);
        let referrer = classify_stripped(referrer_url, |h| site.allows_host(h), &campaign);
        // Kept URL values are scrubbed by `strip_url`; an explicit term and
        // the title get the same treatment here.
        let term = match hit.search.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => Some(truncate(&scrub_identifiers(t), max)),
            _ => search_term(&page.params, &site.search_params, max),
        };

        let (kind, target) = classify_kind(site, &hit)?;
        let custom = match (kind, &hit.custom) {
            (EventKind::Custom, Some(raw)) => match crate::goals::accept(&site.events, raw) {
                Ok(custom) => Some(custom),
                Err(crate::goals::AcceptError::Undeclared) => {
                    return Ok(Processed::UndeclaredEvent)
                }
            },
            (EventKind::Custom, None) => return Err(Reject::Missing("event name").into()),
            _ => None,
        };
        let event = Event {
            site: site.id.clone(),
            ts_ms: now.timestamp_millis(),
            kind,
            visitor,
            pageview_id: pageview,
            url: page.url,
            title: hit
                .title
                .as_deref()
                .map(|t| truncate(&scrub_identifiers(t.trim()), max))
                .unwrap_or_default(),
            referrer,
            campaign,
            target,
            search_term: term.clone().unwrap_or_default(),
            search_results: hit.search_results,
            // a ping without a measurement is timed by the store (the time
            // since its page view); an explicit 0 means no engaged time
            engaged_ms: match (kind, hit.engaged_ms) {
                (EventKind::Ping, None) => crate::model::ENGAGED_SERVER_TIMED,
                (_, ms) => ms.unwrap_or(0),
            },
            device,
            plugins: hit.plugins,
            anon_ip: meta.anon_ip,
            custom,
        };
        with_search(event, term.is_some()).map(Processed::Events)
    }
}

/// Refuses a hit with a field longer than the server accepts, or with more
/// engaged time than one page view can have, before anything reads it.
fn check_sizes(config: &Config, hit: &Hit, meta: &RequestMeta, max: usize) -> Result<(), Reject> {
    check_len("url", &hit.url, max)?;
    check_len("user agent", &meta.user_agent, max)?;
    for (field, value) in [
        ("ref", &hit.referrer),
        ("title", &hit.title),
        ("target", &hit.target),
        ("search", &hit.search),
        ("ua", &hit.user_agent),
    ] {
        if let Some(v) = value {
            check_len(field, v, max)?;
        }
    }
    if let Some(pv) = &hit.pageview_id {
        check_len("pv", pv, MAX_PAGEVIEW_ID)?;
    }
    let max_engaged = config.server.max_engaged_seconds;
    if hit
        .engaged_ms
        .is_some_and(|ms| u64::from(ms) > u64::from(max_engaged) * 1000)
    {
        return Err(Reject::Invalid {
            field: "engaged_ms",
            why: format!("more than {max_engaged} seconds of engaged time for one page view"),
        });
    }
    Ok(())
}

/// The referrer, stripped, when it is a URL the parser takes; `None` when
/// it is on the referrer-spam list, so the hit stops here. It is parsed
/// once: its host is checked against the spam list here and the stripped
/// URL classified afterwards.
fn referrer_unless_spam(config: &Config, raw: Option<&str>) -> Option<Option<CleanUrl>> {
    let Some(raw) = raw.filter(|raw| !raw.trim().is_empty()) else {
        return Some(None);
    };
    let stripped = strip_url(raw, |_| false);
    let spam = match &stripped {
        Ok(clean) => config.referrer_spam.is_spam_host(&clean.host),
        // no http(s) URL the parser takes (some spam hosts are not valid
        // IDNA): the spam check reads its host by hand
        Err(_) => config.referrer_spam.is_spam(raw),
    };
    (!spam).then(|| stripped.ok())
}

/// The events a hit stores: a page view with a search term (a search
/// results page) is also a search; a search without a term is refused.
fn with_search(event: Event, has_term: bool) -> Result<Vec<Event>, PipelineError> {
    match event.kind {
        EventKind::PageView if has_term => {
            let mut search = event.clone();
            search.kind = EventKind::Search;
            Ok(vec![event, search])
        }
        EventKind::Search if !has_term => Err(Reject::Missing("search").into()),
        _ => Ok(vec![event]),
    }
}

/// The event kind, and the stripped link target for downloads and outbound
/// clicks. A target without an explicit kind is a download when its
/// extension is configured as one, otherwise an outbound link.
fn classify_kind(site: &SiteConfig, hit: &Hit) -> Result<(EventKind, String), Reject> {
    let target = match hit.target.as_deref().filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(strip_url(t, |_| false).map_err(|e| Reject::Invalid {
            field: "target",
            why: e.to_string(),
        })?),
    };
    let kind = match (hit.kind, &target) {
        (Some(k), _) => k,
        (None, _) if hit.custom.is_some() => EventKind::Custom,
        (None, Some(t)) if site.is_download(&t.path) => EventKind::Download,
        (None, Some(_)) => EventKind::Outbound,
        (None, None) => EventKind::PageView,
    };
    if matches!(kind, EventKind::Download | EventKind::Outbound) && target.is_none() {
        return Err(Reject::Missing("target"));
    }
    if kind == EventKind::Ping && hit.pageview_id.is_none() {
        return Err(Reject::Missing("pv"));
    }
    Ok((kind, target.map(|t| t.url).unwrap_or_default()))
}

/// A page-view id as stored: 64 bits keyed with the day's salt. Ids are
/// random strings made in the page (Matomo's six characters, our own),
/// short enough that a plain hash could be reversed by trying them all; the
/// salt, destroyed with its day, prevents that. Never 0, which means "none".
pub fn pageview_id(salt: &[u8; 32], raw: &str) -> u64 {
    pageview_hash(salt, raw)
}
