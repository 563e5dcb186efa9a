//! Filtered reports from raw events. Roll-ups answer unfiltered questions;
//! once a filter slices by a dimension, the answer is computed here by
//! reading the raw events of the range (which exist only for the retention
//! period), rebuilding visits in memory with the same rules as the roll-ups
//! (30-minute gap, pings never start a visit), and counting what matches.
//!
//! Filter semantics: an event matches when every filter holds for it.
//! Page-level dimensions (`page`, `title`) are the page the event happened
//! on; visit-level ones (entry/exit page, referrer, campaign) are the
//! visit's; device and plugin fields are the event's; `download`,
//! `outbound` and `search_term` only have values on those event kinds.
//! A visit counts when any of its events matches; visits that began before
//! the range start with their first event inside it.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use crate::model::{plugins, EventKind, ReferrerType};
use crate::store::rollup::{referrer_value, VISIT_TIMEOUT_MS};
use crate::store::{Counters, Dimension, Store, StoredEvent, Totals};

use super::filter::Filter;
use super::query::ReportError;

/// Most raw events one filtered report reads (bounds memory per request).
pub const MAX_SCAN_EVENTS: usize = 5_000_000;

const MS_PER_HOUR: i64 = 3_600_000;
const MS_PER_DAY: i64 = 86_400_000;

#[derive(Debug, Default)]
struct Visit {
    start_ts: i64,
    pageviews: u32,
    entry: String,
    exit: String,
    referrer: String,
    referrer_type: ReferrerType,
    search_engine: String,
    utm_source: String,
    utm_medium: String,
    utm_campaign: String,
}

/// Raw events of one site and range with their rebuilt visits, and which
/// of them pass the filters.
pub struct Scanned {
    events: Vec<StoredEvent>,
    visit_of: Vec<Option<usize>>,
    visits: Vec<Visit>,
    matched: Vec<bool>,
}

fn joined(a: &str, b: &str) -> String {
    if b.is_empty() {
        String::new()
    } else if a.is_empty() {
        b.to_owned()
    } else {
        format!("{a} {b}")
    }
}

impl Scanned {
    /// Reads `site`'s events in `[from_ms, to_ms)` and applies `filters`.
    pub fn load(
        store: &Store,
        site: &str,
        from_ms: i64,
        to_ms: i64,
        filters: &[Filter],
    ) -> Result<Scanned, ReportError> {
        let mut events = Vec::new();
        let mut too_many = false;
        store.scan_events(site, from_ms, to_ms, |e| {
            if events.len() >= MAX_SCAN_EVENTS {
                too_many = true;
                return ControlFlow::Break(());
            }
            events.push(e);
            ControlFlow::Continue(())
        })?;
        if too_many {
            return Err(ReportError::Invalid(format!(
                "filtered reports read raw events, and this range holds more than \
                 {MAX_SCAN_EVENTS} of them; choose a shorter range or remove the filters"
            )));
        }
        events.sort_by_key(|e| (e.ts_ms, e.seq));
        let mut current: HashMap<u64, (usize, i64)> = HashMap::new();
        let mut visits: Vec<Visit> = Vec::new();
        let mut visit_of = Vec::with_capacity(events.len());
        for e in &events {
            let live = current
                .get(&e.visitor)
                .filter(|(_, last)| e.ts_ms - *last < VISIT_TIMEOUT_MS)
                .map(|(i, _)| *i);
            let idx = match live {
                Some(i) => Some(i),
                None if e.kind != EventKind::Ping => {
                    visits.push(Visit {
                        start_ts: e.ts_ms,
                        referrer: if e.referrer.url.is_empty() {
                            String::new()
                        } else {
                            referrer_value(&e.referrer.url).to_owned()
                        },
                        referrer_type: e.referrer.kind,
                        search_engine: if e.referrer.kind == ReferrerType::Search {
                            e.referrer.name.clone()
                        } else {
                            String::new()
                        },
                        utm_source: e.campaign.source.clone(),
                        utm_medium: e.campaign.medium.clone(),
                        utm_campaign: e.campaign.campaign.clone(),
                        ..Visit::default()
                    });
                    Some(visits.len() - 1)
                }
                None => None,
            };
            if let Some(i) = idx {
                current.insert(e.visitor, (i, e.ts_ms));
                let v = &mut visits[i];
                if e.kind == EventKind::PageView {
                    v.pageviews = v.pageviews.saturating_add(1);
                    if v.entry.is_empty() {
                        v.entry = e.url.clone();
                    }
                    v.exit = e.url.clone();
                }
            }
            visit_of.push(idx);
        }
        let mut s = Scanned {
            events,
            visit_of,
            visits,
            matched: Vec::new(),
        };
        s.matched = (0..s.events.len())
            .map(|i| filters.iter().all(|f| f.matches(&s.values(i, f.dim))))
            .collect();
        Ok(s)
    }

    /// The values event `i` has for `dim` (empty values left out).
    fn values(&self, i: usize, dim: Dimension) -> Vec<String> {
        let e = &self.events[i];
        let v = self.visit_of[i].map(|j| &self.visits[j]);
        let d = &e.device;
        let of_kind = |k: EventKind, s: &str| {
            if e.kind == k {
                s.to_owned()
            } else {
                String::new()
            }
        };
        let one = match dim {
            Dimension::Page => e.url.clone(),
            Dimension::Title => e.title.clone(),
            Dimension::EntryPage => v.map(|v| v.entry.clone()).unwrap_or_default(),
            Dimension::ExitPage => v.map(|v| v.exit.clone()).unwrap_or_default(),
            Dimension::Referrer => v.map(|v| v.referrer.clone()).unwrap_or_default(),
            Dimension::ReferrerType => v
                .map(|v| v.referrer_type.as_str().to_owned())
                .unwrap_or_default(),
            Dimension::SearchEngine => v.map(|v| v.search_engine.clone()).unwrap_or_default(),
            Dimension::UtmSource => v.map(|v| v.utm_source.clone()).unwrap_or_default(),
            Dimension::UtmMedium => v.map(|v| v.utm_medium.clone()).unwrap_or_default(),
            Dimension::UtmCampaign => v.map(|v| v.utm_campaign.clone()).unwrap_or_default(),
            Dimension::Download => of_kind(EventKind::Download, &e.target),
            Dimension::Outbound => of_kind(EventKind::Outbound, &e.target),
            Dimension::SearchTerm => of_kind(EventKind::Search, &e.search_term),
            Dimension::DeviceType => d.device_type.as_str().to_owned(),
            Dimension::Brand => d.brand.clone(),
            Dimension::Model => d.model.clone(),
            Dimension::Os => d.os.clone(),
            Dimension::OsVersion => joined(&d.os, &d.os_version),
            Dimension::Browser => d.browser.clone(),
            Dimension::BrowserVersion => joined(&d.browser, &d.browser_version),
            Dimension::Engine => d.engine.clone(),
            Dimension::Plugin => {
                return plugins::NAMES
                    .iter()
                    .filter(|(bit, _)| e.plugins & bit != 0)
                    .map(|(_, n)| (*n).to_owned())
                    .collect()
            }
        };
        if one.is_empty() {
            Vec::new()
        } else {
            vec![one]
        }
    }

    fn matched(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.events.len()).filter(|&i| self.matched[i])
    }

    /// Hourly totals of the matching events, oldest first; hours without
    /// data left out (the shape of [`Store::timeseries_hours`]).
    pub fn hourly(&self) -> Vec<(i64, Totals)> {
        let mut hours: HashMap<i64, Totals> = HashMap::new();
        let mut visitors: HashSet<(i64, u64)> = HashSet::new();
        let mut visits: HashSet<usize> = HashSet::new();
        let mut dwell: HashMap<u64, u32> = HashMap::new();
        for i in self.matched() {
            let e = &self.events[i];
            let hour = e.ts_ms.div_euclid(MS_PER_HOUR);
            if visitors.insert((e.ts_ms.div_euclid(MS_PER_DAY), e.visitor)) {
                hours.entry(hour).or_default().visitors += 1;
            }
            if let Some(j) = self.visit_of[i] {
                if visits.insert(j) {
                    let v = &self.visits[j];
                    let t = hours.entry(v.start_ts.div_euclid(MS_PER_HOUR)).or_default();
                    t.visits += 1;
                    if v.pageviews <= 1 {
                        t.bounces += 1;
                    }
                }
            }
            let t = hours.entry(hour).or_default();
            match e.kind {
                EventKind::PageView => t.pageviews += 1,
                EventKind::Download => t.downloads += 1,
                EventKind::Outbound => t.outbound += 1,
                EventKind::Search => t.searches += 1,
                EventKind::Ping => {
                    if e.pageview_id != 0 && e.engaged_ms > 0 {
                        let before = dwell.get(&e.pageview_id).copied();
                        if e.engaged_ms > before.unwrap_or(0) {
                            t.dwell_ms_sum += u64::from(e.engaged_ms - before.unwrap_or(0));
                            if before.is_none() {
                                t.dwell_pageviews += 1;
                            }
                            dwell.insert(e.pageview_id, e.engaged_ms);
                        }
                    }
                }
            }
        }
        let mut out: Vec<(i64, Totals)> = hours.into_iter().collect();
        out.sort_unstable_by_key(|(h, _)| *h);
        out
    }

    /// Counters per value of `dim` over the matching events, counted as
    /// the roll-ups count them (see [`crate::store::rollup`]).
    pub fn breakdown(&self, dim: Dimension) -> HashMap<String, Counters> {
        let mut acc: HashMap<String, Counters> = HashMap::new();
        let mut seen_visits: HashSet<usize> = HashSet::new();
        for i in self.matched() {
            let e = &self.events[i];
            let is_pv = e.kind == EventKind::PageView;
            match dim {
                Dimension::Page | Dimension::Title => {
                    if is_pv {
                        for v in self.values(i, dim) {
                            acc.entry(v).or_default().pageviews += 1;
                        }
                    }
                }
                Dimension::Download | Dimension::Outbound | Dimension::SearchTerm => {
                    for v in self.values(i, dim) {
                        acc.entry(v).or_default().events += 1;
                    }
                }
                _ => {
                    let first = match self.visit_of[i] {
                        Some(j) => seen_visits.insert(j),
                        None => continue,
                    };
                    let vals = self.values(i, dim);
                    for v in vals {
                        let c = acc.entry(v).or_default();
                        if first {
                            c.visits += 1;
                        }
                        if is_pv && dim != Dimension::ExitPage {
                            c.pageviews += 1;
                        }
                    }
                }
            }
        }
        acc.retain(|_, c| *c != Counters::default());
        acc
    }

    /// Site-search terms of matching searches that reported zero results,
    /// as event counts.
    pub fn no_result_searches(&self) -> HashMap<String, Counters> {
        let mut acc: HashMap<String, Counters> = HashMap::new();
        for i in self.matched() {
            let e = &self.events[i];
            if e.kind == EventKind::Search
                && e.search_results == Some(0)
                && !e.search_term.is_empty()
            {
                acc.entry(e.search_term.clone()).or_default().events += 1;
            }
        }
        acc
    }

    /// Distinct visitors and page views among the matching events.
    pub fn live_counts(&self) -> (u64, u64) {
        let mut visitors = HashSet::new();
        let mut pageviews = 0u64;
        for i in self.matched() {
            let e = &self.events[i];
            visitors.insert(e.visitor);
            if e.kind == EventKind::PageView {
                pageviews += 1;
            }
        }
        (visitors.len() as u64, pageviews)
    }
}
