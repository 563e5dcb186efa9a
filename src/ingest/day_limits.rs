//! Bounds on what one site can add in one UTC day, enforced before events
//! reach the store writer, so a flood from many networks (each within its
//! rate limit) still cannot grow the store's dictionaries or the writer's
//! memory without end:
//!
//! * distinct strings: at most `store.max_new_strings_per_site_day`
//!   different values (URLs, titles, referrers, link targets, search
//!   terms, campaign values, device models) per site and day; past that,
//!   a value not yet seen that day is stored as `(other)` (URLs on the
//!   page's own host keep their origin: `https://example.org/(other)`;
//!   referrers and link targets on any other host, and referrer names,
//!   become plain `(other)`, so a flood of distinct hosts adds nothing)
//!   and counted in
//!   `sparsam_strings_capped_total`. The store's dictionaries therefore
//!   gain at most that many entries per site and day.
//! * events: at most `store.max_events_per_site_day` per site and day;
//!   past that, events are answered like stored ones but dropped, and
//!   counted as `sparsam_hits_total{outcome="day_full"}`. The writer's
//!   state of an open day (`store/state.rs`) holds at most one visitor
//!   and one page view per event: a 48-byte visit slot, a 16-byte page-view
//!   slot and two hash-map entries of 16 bytes at up to 7/8 load, about
//!   100 bytes, up to twice that while its tables grow. So this bounds its
//!   memory per open day (2,000,000 events: about 200 MB, 400 MB at most).
//!
//! The counts live in memory for the current UTC day only (one 64-bit
//! hash per distinct value); a restart starts them afresh, so across a
//! restart a day may take up to the bounds once more.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::Mutex;

use crate::model::Event;
use crate::privacy::visitor::utc_day;

/// What an over-the-limit value is stored as.
pub const OTHER: &str = "(other)";

pub struct DayLimits {
    max_new_strings: usize,
    max_events: u64,
    sites: Mutex<HashMap<String, SiteDay>>,
    hasher: RandomState,
}

#[derive(Default)]
struct SiteDay {
    day: i64,
    strings: HashSet<u64>,
    events: u64,
}

/// Which field a value belongs to (the same text in two fields is two
/// dictionary entries' worth of growth at most, and counted so).
#[derive(Hash, Clone, Copy)]
enum Field {
    Url,
    Title,
    Referrer,
    ReferrerName,
    Target,
    SearchTerm,
    Campaign,
    DeviceModel,
}

impl DayLimits {
    pub fn new(max_new_strings: usize, max_events: u64) -> DayLimits {
        DayLimits {
            max_new_strings,
            max_events,
            sites: Mutex::new(HashMap::new()),
            hasher: RandomState::new(),
        }
    }

    /// Drops the events past the day's event bound and replaces values
    /// past the day's string bound with [`OTHER`]; returns how many
    /// events were dropped.
    pub fn apply(&self, events: &mut Vec<Event>) -> usize {
        let mut sites = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        let before = events.len();
        events.retain_mut(|event| {
            let day =
                utc_day(chrono::DateTime::from_timestamp_millis(event.ts_ms).unwrap_or_default());
            let site = match sites.get_mut(&event.site) {
                Some(site) => site,
                None => sites.entry(event.site.clone()).or_default(),
            };
            if site.day != day {
                *site = SiteDay {
                    day,
                    ..SiteDay::default()
                };
            }
            if site.events >= self.max_events {
                return false;
            }
            site.events += 1;
            let capped = self.cap_strings(site, event);
            if capped > 0 {
                metrics::counter!("sparsam_strings_capped_total", "site" => event.site.clone())
                    .increment(capped);
            }
            true
        });
        let dropped = before - events.len();
        if dropped > 0 {
            metrics::counter!("sparsam_hits_total", "outcome" => "day_full")
                .increment(dropped as u64);
        }
        dropped
    }

    /// Returns how many values were replaced.
    fn cap_strings(&self, site: &mut SiteDay, e: &mut Event) -> u64 {
        // the page's host is one of the site's own (the pipeline checked
        // it); only URLs on it keep their origin past the bound
        let own_host = url::Url::parse(&e.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned));
        let own_host = own_host.as_deref();
        let mut capped = 0;
        let mut keep = |field: Field, value: &str| -> bool {
            if value.is_empty() || is_placeholder(value, own_host) {
                return true;
            }
            let hash = self.hasher.hash_one((field, value));
            if site.strings.contains(&hash) {
                return true;
            }
            if site.strings.len() < self.max_new_strings {
                site.strings.insert(hash);
                return true;
            }
            capped += 1;
            false
        };
        if !keep(Field::Url, &e.url) {
            e.url = other_url(&e.url, own_host);
        }
        if !keep(Field::Title, &e.title) {
            e.title = OTHER.into();
        }
        if !keep(Field::Referrer, &e.referrer.url) {
            e.referrer.url = other_url(&e.referrer.url, own_host);
        }
        if !keep(Field::ReferrerName, &e.referrer.name) {
            e.referrer.name = OTHER.into();
        }
        if !keep(Field::Target, &e.target) {
            e.target = other_url(&e.target, own_host);
        }
        if !keep(Field::SearchTerm, &e.search_term) {
            e.search_term = OTHER.into();
        }
        for value in [
            &mut e.campaign.source,
            &mut e.campaign.medium,
            &mut e.campaign.campaign,
        ] {
            if !keep(Field::Campaign, value) {
                *value = OTHER.into();
            }
        }
        // "Unknown" is detection's own label for a missing model, not a
        // value anyone sent: it never counts as new
        if e.device.model != crate::enrich::device::UNKNOWN
            && !keep(Field::DeviceModel, &e.device.model)
        {
            e.device.model = OTHER.into();
        }
        capped
    }
}

/// `(other)` itself or a URL made by [`other_url`] on `own_host`: nothing
/// new to store. Exact, so that a value merely ending in "(other)" (or
/// such a URL on another host) is counted like any.
fn is_placeholder(value: &str, own_host: Option<&str>) -> bool {
    value == OTHER
        || (value.ends_with(OTHER)
            && url::Url::parse(value).is_ok_and(|u| {
                u.path() == format!("/{OTHER}") && u.query().is_none() && u.fragment().is_none()
            })
            && other_url(value, own_host) == value)
}

/// `https://host/(other)` for a stored URL on `own_host` (the page's
/// host, one of the site's own, so a bounded set): the origin stays, the
/// rest is the placeholder. A URL on any other host is plain `(other)`:
/// keeping its origin would let distinct hosts add strings without end.
fn other_url(url: &str, own_host: Option<&str>) -> String {
    match url::Url::parse(url) {
        Ok(u) if u.has_host() && u.host_str() == own_host => {
            format!("{}/{OTHER}", u.origin().ascii_serialization())
        }
        _ => OTHER.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store's test page view, with this URL and title.
    fn event(site: &str, ts_ms: i64, url: &str, title: &str) -> Event {
        Event {
            url: url.into(),
            title: title.into(),
            ..crate::store::test_event(site, ts_ms, 1)
        }
    }

    const DAY_MS: i64 = 86_400_000;

    #[test]
    fn values_past_the_bound_become_other_until_the_next_day() {
        let limits = DayLimits::new(4, 1000);
        let mut events: Vec<Event> = (0..4)
            .map(|i| event("a", DAY_MS, &format!("https://example.org/p{i}"), "T"))
            .collect();
        assert_eq!(limits.apply(&mut events), 0);
        // p0, "T", p1 and p2 fill the bound of 4: p3 is past it
        assert_eq!(events[1].title, "T", "a value seen today stays");
        assert_eq!(events[2].url, "https://example.org/p2");
        assert_eq!(events[3].url, "https://example.org/(other)");
        let mut more = vec![
            event("a", DAY_MS, "https://example.org/p1", ""),
            event("a", DAY_MS, "https://example.org/new", ""),
            event("b", DAY_MS, "https://example.net/new", ""),
        ];
        limits.apply(&mut more);
        assert_eq!(more[0].url, "https://example.org/p1");
        assert_eq!(more[1].url, "https://example.org/(other)");
        assert_eq!(more[2].url, "https://example.net/new", "per site");
        // the next UTC day starts afresh
        let mut next = vec![event("a", 2 * DAY_MS, "https://example.org/new", "")];
        limits.apply(&mut next);
        assert_eq!(next[0].url, "https://example.org/new");
    }

    #[test]
    fn events_past_the_bound_are_dropped() {
        let limits = DayLimits::new(100, 3);
        let mut events: Vec<Event> = (0..5)
            .map(|_| event("a", DAY_MS, "https://example.org/", ""))
            .collect();
        assert_eq!(limits.apply(&mut events), 2);
        assert_eq!(events.len(), 3);
        let mut other_site = vec![event("b", DAY_MS, "https://example.org/", "")];
        assert_eq!(limits.apply(&mut other_site), 0);
        let mut next_day = vec![event("a", 2 * DAY_MS, "https://example.org/", "")];
        assert_eq!(limits.apply(&mut next_day), 0);
    }

    #[test]
    fn only_exact_placeholders_go_uncounted() {
        let own = Some("example.org");
        assert!(is_placeholder(OTHER, own));
        assert!(is_placeholder("https://example.org/(other)", own));
        assert!(!is_placeholder("https://example.org/x(other)", own));
        assert!(!is_placeholder("https://example.org/(other)?x=1", own));
        assert!(!is_placeholder("x(other)", own));
        assert!(
            !is_placeholder("https://elsewhere.example/(other)", own),
            "another host's placeholder is a new string"
        );
        let limits = DayLimits::new(1, 1000);
        let mut events: Vec<Event> = ["/a", "/b(other)", "/c(other)"]
            .iter()
            .map(|p| event("a", DAY_MS, &format!("https://example.org{p}"), ""))
            .collect();
        limits.apply(&mut events);
        assert_eq!(events[1].url, "https://example.org/(other)");
        assert_eq!(events[2].url, "https://example.org/(other)");
    }

    #[test]
    fn other_urls_keep_their_origin_on_the_own_host_only() {
        let own = Some("example.org");
        assert_eq!(
            other_url("https://example.org:8443/a/b?q=1", own),
            "https://example.org:8443/(other)"
        );
        assert_eq!(other_url("not a url", own), OTHER);
        assert_eq!(
            other_url("https://elsewhere.example/a", own),
            OTHER,
            "only the page's own host keeps its origin"
        );
    }
}
