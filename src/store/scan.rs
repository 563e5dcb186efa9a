//! Filtered reports from raw events. Roll-ups answer unfiltered questions;
//! once a filter slices by a dimension, the answer is computed here by
//! reading the raw events of the range (which exist only for the retention
//! period), rebuilding visits with the visit engine the roll-ups are
//! written with ([`super::visits`]: 30-minute gap, pings never start a
//! visit, entry, exit, bounce, dwell), and counting what matches.
//!
//! Filter semantics: an event matches when every filter holds for it.
//! Page-level dimensions (`page`, `title`) are the page the event happened
//! on; visit-level ones (entry/exit page, referrer, campaign) are the
//! visit's; device and plugin fields are the event's; `download`,
//! `outbound` and `search_term` only have values on those event kinds.
//! A visit counts when any of its events matches; visits that began before
//! the range start with their first event inside it.
//!
//! The scan streams: one UTC day of events is decoded at a time (only the
//! columns the question needs), each visit's events are held until the
//! visit is over, then judged and counted. Strings are never materialised
//! per event: filters are decided once per distinct dictionary id, and
//! breakdown rows are counted by id and named at the end.

use super::ids::StringId;
use std::collections::HashMap;
use std::ops::ControlFlow;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::model::{plugins, EventKind};
use crate::report::filter::Filter;
use crate::storage::{Counting, FilteredAnswer, FilteredQuery};
use crate::store::replay::DaySource;
use crate::store::rollup::{
    campaign_values, device_values, referrer_values, CAMPAIGN_DIMS, DEVICE_DIMS, REFERRER_DIMS,
};
use crate::store::visits::{self, Dwell, FollowedVisit, VisitEvent, VisitSlots};
use crate::store::{Col, Cols, Counters, Dimension, RawEvent, Resolver, Store, StoreError, Totals};

use crate::store::schema::{MS_PER_DAY, MS_PER_HOUR};

/// Where a dimension's value of an event comes from: a dictionary id and
/// which part of the entry it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Part {
    Text,
    /// Index into [`referrer_values`] (and so [`REFERRER_DIMS`]); the same
    /// for campaigns and devices.
    Referrer(u8),
    Campaign(u8),
    Device(u8),
    /// The id is the plugin bit set itself.
    Plugins,
}

/// A value as the scan keys it: which part of an entry, and the stored
/// number of the raw-dictionary id naming it (for [`Part::Plugins`], the
/// plugin bit set itself).
pub(crate) type Key = (Part, u32);

/// One event, as the scan keeps it while its visit runs.
#[derive(Clone, Copy, Debug)]
struct ScannedEvent {
    raw: RawEvent,
    /// Index of the event's UTC day in the scan.
    day: u32,
    /// The visitor's hash (its number within the day is `raw.visitor`).
    visitor: u64,
    /// The page-view id (0 = none).
    pageview: u64,
}

/// A visit as the scan follows it: the engine's [`visits::Visit`] plus
/// what counting it under filters needs.
#[derive(Debug)]
struct Visit {
    core: visits::Visit,
    /// An event of the visit matched: it counts (once).
    counted: bool,
    /// It was counted before its entry page was known (entry-page rows
    /// get the visit once the first page view comes).
    entry_pending: bool,
    /// Events held back until what their filters need is known: all of
    /// them with an exit-page filter (known when the visit ends), those
    /// before the first page view with an entry-page filter.
    held: Vec<ScannedEvent>,
}

/// Dictionary ids below this are cached in a flat vector (the fast path:
/// one index per event); higher ones in a map. Ids are never reused, so
/// they grow with a store's whole history: without the bound a long-lived
/// store's newest strings would make every query allocate a vector as long
/// as every id ever handed out, per thread and per filter.
const DENSE_IDS: usize = 1 << 22;

/// A cache of one small value per dictionary id (`V::default()`: not
/// decided yet), flat for the first [`DENSE_IDS`] ids.
#[derive(Clone, Default)]
pub(crate) struct IdCache<V> {
    dense: Vec<V>,
    sparse: FxHashMap<u32, V>,
}

impl<V: Copy + Default> IdCache<V> {
    pub(crate) fn get(&self, id: u32) -> V {
        let index = id as usize;
        if index < DENSE_IDS {
            self.dense.get(index).copied().unwrap_or_default()
        } else {
            self.sparse.get(&id).copied().unwrap_or_default()
        }
    }

    pub(crate) fn set(&mut self, id: u32, value: V) {
        let index = id as usize;
        if index < DENSE_IDS {
            if self.dense.len() <= index {
                self.dense.resize(index + 1, V::default());
            }
            self.dense[index] = value;
        } else {
            self.sparse.insert(id, value);
        }
    }
}

/// Decides filters and names values, once per distinct dictionary id
/// (also for goal and funnel counts, `super::conversions`).
pub(crate) struct Values<'f> {
    pub(crate) res: Resolver,
    pub(crate) filters: &'f [Filter],
    names: FxHashMap<Key, Vec<String>>,
    /// Per filter, its verdict per dictionary id (0 unknown, 1 no, 2 yes):
    /// a filter's dimension decides which part of an entry the id names.
    verdicts: Vec<IdCache<u8>>,
}

impl<'f> Values<'f> {
    pub(crate) fn new(res: Resolver, filters: &'f [Filter]) -> Self {
        Values {
            res,
            filters,
            names: FxHashMap::default(),
            verdicts: vec![IdCache::default(); filters.len()],
        }
    }

    fn names(&mut self, key: Key) -> Result<&Vec<String>, StoreError> {
        if !self.names.contains_key(&key) {
            let (part, stored) = key;
            let id = StringId::from_stored(stored);
            let one = |s: String| if s.is_empty() { Vec::new() } else { vec![s] };
            let v = match part {
                Part::Text => one(self.res.text(id)?),
                Part::Referrer(i) => {
                    one(referrer_values(&self.res.referrer(id)?)[usize::from(i)].to_owned())
                }
                Part::Campaign(i) => {
                    one(campaign_values(&self.res.campaign(id)?)[usize::from(i)].to_owned())
                }
                Part::Device(i) => {
                    let mut values = device_values(&self.res.device(id)?);
                    one(std::mem::take(&mut values[usize::from(i)]))
                }
                Part::Plugins => plugins::NAMES
                    .iter()
                    .filter(|(bit, _)| stored & u32::from(*bit) != 0)
                    .map(|(_, n)| (*n).to_owned())
                    .collect(),
            };
            self.names.insert(key, v);
        }
        self.names
            .get(&key)
            .ok_or_else(|| StoreError::Decode("value cache".into()))
    }

    pub(crate) fn matches(&mut self, i: usize, key: Option<Key>) -> Result<bool, StoreError> {
        let Some(key) = key else {
            return Ok(self.filters[i].matches::<&str>(&[]));
        };
        match self.verdicts[i].get(key.1) {
            1 => return Ok(false),
            2 => return Ok(true),
            _ => {}
        }
        let names = self.names(key)?.clone();
        let v = self.filters[i].matches(&names);
        self.verdicts[i].set(key.1, 1 + u8::from(v));
        Ok(v)
    }
}

/// The key of `dim`'s value for event `e` in `visit` (None: no value).
fn key_of(e: &RawEvent, visit: Option<&Visit>, dim: Dimension) -> Option<Key> {
    key_of_core(e, visit.map(|v| &v.core), dim)
}

/// [`key_of`] for a visit as the visit engine keeps it.
pub(crate) fn key_of_core(
    e: &RawEvent,
    visit: Option<&visits::Visit>,
    dim: Dimension,
) -> Option<Key> {
    let nz = |part: Part, id: StringId| (!id.is_none()).then_some((part, id.stored()));
    match dim {
        Dimension::Page => nz(Part::Text, e.url),
        Dimension::Title => nz(Part::Text, e.title),
        Dimension::EntryPage => visit.and_then(|v| nz(Part::Text, v.entry)),
        Dimension::ExitPage => visit.and_then(|v| nz(Part::Text, v.exit)),
        Dimension::Referrer | Dimension::ReferrerType | Dimension::SearchEngine => {
            visit.and_then(|v| nz(Part::Referrer(position(&REFERRER_DIMS, dim)), v.referrer))
        }
        Dimension::UtmSource | Dimension::UtmMedium | Dimension::UtmCampaign => {
            visit.and_then(|v| nz(Part::Campaign(position(&CAMPAIGN_DIMS, dim)), v.campaign))
        }
        Dimension::Download => (e.kind == EventKind::Download)
            .then(|| nz(Part::Text, e.target))
            .flatten(),
        Dimension::Outbound => (e.kind == EventKind::Outbound)
            .then(|| nz(Part::Text, e.target))
            .flatten(),
        Dimension::SearchTerm => (e.kind == EventKind::Search)
            .then(|| nz(Part::Text, e.search_term))
            .flatten(),
        Dimension::DeviceType
        | Dimension::Brand
        | Dimension::Model
        | Dimension::Os
        | Dimension::OsVersion
        | Dimension::Browser
        | Dimension::BrowserVersion
        | Dimension::Engine => nz(Part::Device(position(&DEVICE_DIMS, dim)), e.device),
        Dimension::Plugin => (e.plugins != 0).then_some((Part::Plugins, u32::from(e.plugins))),
    }
}

/// Index of `dim` in `dims` (which holds it).
fn position(dims: &[Dimension], dim: Dimension) -> u8 {
    dims.iter().position(|d| *d == dim).unwrap_or(0) as u8
}

/// Columns a dimension's values need (besides time and kind).
pub(crate) fn cols_for(dim: Dimension) -> Cols {
    let c = Cols::NONE;
    match dim {
        Dimension::Page | Dimension::EntryPage | Dimension::ExitPage => c.with(Col::Url),
        Dimension::Title => c.with(Col::Title),
        Dimension::Referrer | Dimension::ReferrerType | Dimension::SearchEngine => {
            c.with(Col::Referrer)
        }
        Dimension::UtmSource | Dimension::UtmMedium | Dimension::UtmCampaign => {
            c.with(Col::Campaign)
        }
        Dimension::Download | Dimension::Outbound => c.with(Col::Target),
        Dimension::SearchTerm => c.with(Col::SearchTerm),
        Dimension::Plugin => c.with(Col::Plugins),
        _ => c.with(Col::Device),
    }
}

/// Counts what the query's [`Counting`] asks for over matching events.
struct Tally {
    counting: Counting,
    hours: HashMap<i64, Totals>,
    /// Per scanned day, which of its visitors were counted already.
    visitors_seen: Vec<Vec<bool>>,
    /// Largest engaged time per page-view id, of the current and the
    /// previous UTC day (as the roll-ups carry it across midnight).
    dwell: FxHashMap<u64, Dwell>,
    dwell_prev: FxHashMap<u64, Dwell>,
    rows: FxHashMap<Key, Counters>,
    live_visitors: FxHashSet<u64>,
    pageviews: u64,
}

/// The columns a filtered query needs decoded: those the visit engine
/// reads, those its filters look at, and those its counting reports.
fn columns_for(filters: &[Filter], counting: Counting) -> Cols {
    let mut cols = Cols::NONE
        .with(Col::Visitor)
        .with(Col::Url)
        .with(Col::Referrer)
        .with(Col::Campaign);
    for f in filters {
        cols = cols.union(cols_for(f.dim));
    }
    match counting {
        Counting::Hourly => cols.with(Col::Pageview).with(Col::Engaged),
        Counting::Breakdown(d) => cols.union(cols_for(d)),
        Counting::NoResultSearches => cols.with(Col::SearchTerm).with(Col::SearchResults),
        Counting::Live => cols,
    }
}

/// Threads that decode and prepare days for a scan that spreads its days
/// over the machine's cores (at least one, at most four).
pub(crate) fn day_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4))
}

/// Decodes the days of `site` in `[from_ms, to_ms)` (only `cols`) on
/// `workers` threads, day `i` on thread `i % workers`, each running
/// `prepare` over its days with a state of its own made by `init` (say, a
/// resolver and its verdict caches); `consume` gets the prepared days on
/// the calling thread, oldest first. Preparing is what can be done per
/// day on its own; what links days (visits across midnight) stays with
/// `consume`. Each thread keeps at most two days ahead of the consumer.
pub(crate) fn days_in_parallel<S, T: Send>(
    snap: &crate::store::Snapshot,
    (site, from_ms, to_ms): (&str, i64, i64),
    cols: Cols,
    workers: usize,
    init: impl Fn() -> Result<S, StoreError> + Sync,
    prepare: impl Fn(&mut S, crate::store::DayEvents) -> Result<T, StoreError> + Sync,
    mut consume: impl FnMut(T) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let days = snap.days_between(from_ms, to_ms)?;
    let workers = workers.clamp(1, days.len().max(1));
    let (init, prepare, days) = (&init, &prepare, &days);
    std::thread::scope(|scope| {
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<T, StoreError>>(2);
            receivers.push(rx);
            handles.push(scope.spawn(move || {
                let mut state = match init() {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                for &day in days.iter().skip(w).step_by(workers) {
                    let prepared = snap
                        .scan_day(site, day, from_ms, to_ms, cols)
                        .and_then(|d| prepare(&mut state, d));
                    let failed = prepared.is_err();
                    // a send fails when the consumer stopped (it failed)
                    if tx.send(prepared).is_err() || failed {
                        return;
                    }
                }
            }));
        }
        let mut outcome = Ok(());
        for i in 0..days.len() {
            let next = receivers[i % workers]
                .recv()
                .unwrap_or_else(|_| Err(StoreError::Decode("a scan thread stopped early".into())));
            if let Err(e) = next.and_then(&mut consume) {
                outcome = Err(e);
                break;
            }
        }
        // the workers stop at their next send once nobody receives
        drop(receivers);
        for h in handles {
            if h.join().is_err() && outcome.is_ok() {
                outcome = Err(StoreError::Decode("scan thread panicked".into()));
            }
        }
        outcome
    })
}

/// The order in which to hand `day`'s events to the visit engine: `None`
/// when the stored order will do, else the events' indexes in (time,
/// position) order.
///
/// The engine follows each visitor on its own, and what the counts add up
/// (sums, sets) does not depend on which visitor comes first, so the
/// stored order will do whenever every visitor's own events come in
/// (time, position) order. Stored order is receipt order, in which visits
/// overlap but each visitor's events rarely go backwards; sorting a whole
/// day instead (100,000 events and more) and then reading its events out
/// of place cost the goal and funnel counts a large part of their time.
pub(crate) fn visit_order(day: &crate::store::DayEvents) -> Option<Vec<usize>> {
    let mut last_seen: Vec<(i64, u32)> = vec![(i64::MIN, 0); day.visitor_hashes.len()];
    let each_visitor_in_order = day.events.iter().zip(&day.seqs).all(|(e, &seq)| {
        match last_seen.get_mut(e.visitor as usize) {
            Some(last) if *last <= (e.ts_ms, seq) => {
                *last = (e.ts_ms, seq);
                true
            }
            _ => false,
        }
    });
    if each_visitor_in_order {
        return None;
    }
    let mut order: Vec<usize> = (0..day.events.len()).collect();
    order.sort_by_key(|&i| (day.events[i].ts_ms, day.seqs[i]));
    Some(order)
}

/// `day`'s events' indexes in (time, position) order.
fn time_order(day: &crate::store::DayEvents) -> Vec<usize> {
    let mut order: Vec<usize> = (0..day.events.len()).collect();
    let in_order = day
        .events
        .windows(2)
        .zip(day.seqs.windows(2))
        .all(|(e, q)| (e[0].ts_ms, q[0]) <= (e[1].ts_ms, q[1]));
    if !in_order {
        order.sort_by_key(|&i| (day.events[i].ts_ms, day.seqs[i]));
    }
    order
}

/// Scans the query's raw events and counts what it asks for over the
/// events that pass its filters.
pub fn filtered(store: &Store, query: &FilteredQuery<'_>) -> Result<FilteredAnswer, StoreError> {
    filtered_from(store.snapshot()?, query)
}

/// [`filtered`] over the days of any [`DaySource`] (a snapshot of the
/// store, or a replay of events kept elsewhere).
pub(crate) fn filtered_from(
    mut source: impl DaySource,
    query: &FilteredQuery<'_>,
) -> Result<FilteredAnswer, StoreError> {
    let FilteredQuery {
        site,
        from_ms,
        to_ms,
        filters,
        counting,
    } = *query;
    let cols = columns_for(filters, counting);
    let mut follower = ScanFollower {
        values: Values::new(source.resolver()?, filters),
        tally: Tally::new(counting),
        counting,
        hold_all: filters.iter().any(|f| f.dim == Dimension::ExitPage),
        hold_until_entry: filters.iter().any(|f| f.dim == Dimension::EntryPage),
        to_ms,
        visits: VisitSlots::default(),
        day_index: 0,
    };
    let mut failure: Option<StoreError> = None;

    // Decoding runs on a second thread, one day ahead of the counting.
    let (tx, rx) = std::sync::mpsc::sync_channel::<crate::store::DayEvents>(2);
    let decoded = std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            source.scan_days(site, from_ms, to_ms, cols, &mut move |day| {
                Ok(match tx.send(day) {
                    Ok(()) => ControlFlow::Continue(()),
                    // the counting side stopped (it failed)
                    Err(_) => ControlFlow::Break(()),
                })
            })
        });
        for day in rx {
            if let Err(e) = follower.day(&day) {
                failure = Some(e);
                break;
            }
        }
        producer
            .join()
            .unwrap_or_else(|_| Err(StoreError::Decode("scan thread panicked".into())))
    });
    if let Some(e) = failure {
        return Err(e);
    }
    decoded?;
    follower.finish()
}

/// Follows every visitor's visits through the scanned days, in day order,
/// and feeds the tally each event once what its filters need is known.
struct ScanFollower<'f> {
    values: Values<'f>,
    tally: Tally,
    counting: Counting,
    /// An exit-page filter: a visit's events wait until it is over.
    hold_all: bool,
    /// An entry-page filter: events before a visit's first page view wait
    /// for it.
    hold_until_entry: bool,
    /// End of the queried range: visits still running then are over.
    to_ms: i64,
    visits: VisitSlots<Visit>,
    day_index: u32,
}

impl FollowedVisit for Visit {
    fn core(&self) -> &visits::Visit {
        &self.core
    }
    fn core_mut(&mut self) -> &mut visits::Visit {
        &mut self.core
    }
}

impl ScanFollower<'_> {
    fn day(&mut self, day: &crate::store::DayEvents) -> Result<(), StoreError> {
        let (tally, values) = (&mut self.tally, &mut self.values);
        self.visits
            .begin_day(&day.visitor_hashes, |v| tally.finish_visit(values, v))?;
        self.tally
            .visitors_seen
            .push(vec![false; day.visitor_hashes.len()]);
        self.tally.dwell_prev = std::mem::take(&mut self.tally.dwell);
        // Hourly counting follows the whole day in time order: it credits
        // dwell to the hour of the ping that raised a page view's maximum,
        // and page-view ids are not tied to one visitor. The other
        // countings only need each visitor's events in order
        // ([`visit_order`]).
        let order = match self.counting {
            Counting::Hourly => Some(time_order(day)),
            _ => visit_order(day),
        };
        for i in (0..day.events.len()).map(|i| order.as_ref().map_or(i, |o| o[i])) {
            self.event(day, day.events[i])?;
        }
        let day_end = (crate::store::schema::day_start_ms(day.day) + MS_PER_DAY).min(self.to_ms);
        let (tally, values) = (&mut self.tally, &mut self.values);
        self.visits.end_day(&day.visitor_hashes, day_end, |v| {
            tally.finish_visit(values, v)
        })?;
        self.day_index += 1;
        Ok(())
    }

    /// One event of `day`: moves its visitor's visit on (ending and
    /// finishing the previous one when it timed out), then counts the
    /// event or holds it until its visit's entry or exit page is known.
    fn event(&mut self, day: &crate::store::DayEvents, raw: RawEvent) -> Result<(), StoreError> {
        let n = raw.visitor as usize;
        let visitor = *day
            .visitor_hashes
            .get(n)
            .ok_or_else(|| StoreError::Decode("event refers to an unknown visitor".into()))?;
        let pageview = match raw.pageview {
            0 => 0,
            p => day.pageview_ids.get(p as usize - 1).copied().unwrap_or(0),
        };
        let e = ScannedEvent {
            raw,
            day: self.day_index,
            visitor,
            pageview,
        };
        let (tally, values) = (&mut self.tally, &mut self.values);
        let (moved, visit) = self.visits.advance(
            n,
            &VisitEvent {
                ts_ms: raw.ts_ms,
                kind: raw.kind,
                url: raw.url,
                referrer: raw.referrer,
                campaign: raw.campaign,
            },
            |core| Visit {
                core,
                counted: false,
                entry_pending: false,
                held: Vec::new(),
            },
            |v| tally.finish_visit(values, v),
        )?;
        let Some(v) = visit else {
            return self.tally.event(&mut self.values, &e, None);
        };
        if moved.pageview_number == 1 {
            // the entry page is known now
            if v.entry_pending {
                v.entry_pending = false;
                self.tally
                    .rows
                    .entry((Part::Text, v.core.entry.stored()))
                    .or_default()
                    .visits += 1;
            }
            if !self.hold_all && !v.held.is_empty() {
                for held in std::mem::take(&mut v.held) {
                    self.tally.event(&mut self.values, &held, Some(v))?;
                }
            }
        }
        if self.hold_all || (self.hold_until_entry && v.core.pageviews == 0) {
            v.held.push(e);
            Ok(())
        } else {
            self.tally.event(&mut self.values, &e, Some(v))
        }
    }

    /// Finishes the visits still running at the end of the range and
    /// gives the answer.
    fn finish(mut self) -> Result<FilteredAnswer, StoreError> {
        let (tally, values) = (&mut self.tally, &mut self.values);
        self.visits.finish_all(|v| tally.finish_visit(values, v))?;
        self.tally.finish(&mut self.values)
    }
}

impl Tally {
    /// An empty tally for `counting`.
    fn new(counting: Counting) -> Tally {
        Tally {
            counting,
            hours: HashMap::new(),
            visitors_seen: Vec::new(),
            dwell: FxHashMap::default(),
            dwell_prev: FxHashMap::default(),
            rows: FxHashMap::default(),
            live_visitors: FxHashSet::default(),
            pageviews: 0,
        }
    }

    fn finish_visit(&mut self, values: &mut Values<'_>, mut v: Visit) -> Result<(), StoreError> {
        for e in std::mem::take(&mut v.held) {
            self.event(values, &e, Some(&mut v))?;
        }
        if !v.counted {
            return Ok(());
        }
        match self.counting {
            Counting::Hourly if v.core.bounced() => {
                self.hours
                    .entry(v.core.start_ts.div_euclid(MS_PER_HOUR))
                    .or_default()
                    .bounces += 1;
            }
            Counting::Breakdown(Dimension::ExitPage) if !v.core.exit.is_none() => {
                self.rows
                    .entry((Part::Text, v.core.exit.stored()))
                    .or_default()
                    .visits += 1;
            }
            _ => {}
        }
        Ok(())
    }

    /// Counts one event if it matches, with its visit's attributes as
    /// known now (see [`Visit::held`] for when they are final).
    fn event(
        &mut self,
        values: &mut Values<'_>,
        e: &ScannedEvent,
        mut visit: Option<&mut Visit>,
    ) -> Result<(), StoreError> {
        for i in 0..values.filters.len() {
            let key = key_of(&e.raw, visit.as_deref(), values.filters[i].dim);
            if !values.matches(i, key)? {
                return Ok(());
            }
        }
        let first = match visit.as_deref_mut() {
            Some(v) => !std::mem::replace(&mut v.counted, true),
            None => false,
        };
        let visit = visit;
        let r = &e.raw;
        match self.counting {
            Counting::Hourly => {
                let hour = r.ts_ms.div_euclid(MS_PER_HOUR);
                let seen = self
                    .visitors_seen
                    .get_mut(e.day as usize)
                    .and_then(|d| d.get_mut(r.visitor as usize));
                if let Some(seen @ false) = seen {
                    *seen = true;
                    self.hours.entry(hour).or_default().visitors += 1;
                }
                if let (true, Some(v)) = (first, &visit) {
                    // bounces are known when the visit ends
                    self.hours
                        .entry(v.core.start_ts.div_euclid(MS_PER_HOUR))
                        .or_default()
                        .visits += 1;
                }
                let t = self.hours.entry(hour).or_default();
                match r.kind {
                    EventKind::PageView => t.pageviews += 1,
                    EventKind::Download => t.downloads += 1,
                    EventKind::Outbound => t.outbound += 1,
                    EventKind::Search => t.searches += 1,
                    EventKind::Custom => {}
                    EventKind::Ping => {
                        if e.pageview != 0 {
                            let mut dwell = self
                                .dwell
                                .get(&e.pageview)
                                .or_else(|| self.dwell_prev.get(&e.pageview))
                                .copied()
                                .unwrap_or_default();
                            if let Some((added, first)) = dwell.report(r.engaged_ms) {
                                t.dwell_ms_sum += u64::from(added);
                                if first {
                                    t.dwell_pageviews += 1;
                                }
                                self.dwell.insert(e.pageview, dwell);
                            }
                        }
                    }
                }
            }
            Counting::Breakdown(dim) => {
                let is_pv = r.kind == EventKind::PageView;
                match dim {
                    Dimension::Page | Dimension::Title => {
                        if let (true, Some(k)) = (is_pv, key_of(r, None, dim)) {
                            self.rows.entry(k).or_default().pageviews += 1;
                        }
                    }
                    Dimension::Download | Dimension::Outbound | Dimension::SearchTerm => {
                        if let Some(k) = key_of(r, None, dim) {
                            self.rows.entry(k).or_default().events += 1;
                        }
                    }
                    // counted when the visit ends, from its final exit page
                    Dimension::ExitPage => {}
                    Dimension::EntryPage => {
                        let Some(v) = visit else { return Ok(()) };
                        if v.core.pageviews == 0 {
                            // the first page view will name it
                            v.entry_pending |= first;
                        } else {
                            let c = self
                                .rows
                                .entry((Part::Text, v.core.entry.stored()))
                                .or_default();
                            if first {
                                c.visits += 1;
                            }
                            if is_pv {
                                c.pageviews += 1;
                            }
                        }
                    }
                    _ => {
                        let Some(v) = visit else { return Ok(()) };
                        if let Some(k) = key_of(r, Some(v), dim) {
                            let c = self.rows.entry(k).or_default();
                            if first {
                                c.visits += 1;
                            }
                            if is_pv {
                                c.pageviews += 1;
                            }
                        }
                    }
                }
            }
            Counting::NoResultSearches => {
                if r.kind == EventKind::Search && r.search_results == 1 && !r.search_term.is_none()
                {
                    self.rows
                        .entry((Part::Text, r.search_term.stored()))
                        .or_default()
                        .events += 1;
                }
            }
            Counting::Live => {
                self.live_visitors.insert(e.visitor);
                if r.kind == EventKind::PageView {
                    self.pageviews += 1;
                }
            }
        }
        Ok(())
    }

    fn finish(self, values: &mut Values<'_>) -> Result<FilteredAnswer, StoreError> {
        Ok(match self.counting {
            Counting::Hourly => {
                let mut out: Vec<(i64, Totals)> = self.hours.into_iter().collect();
                out.sort_unstable_by_key(|(h, _)| *h);
                FilteredAnswer::Hourly(out)
            }
            Counting::Live => FilteredAnswer::Live {
                visitors: self.live_visitors.len() as u64,
                pageviews: self.pageviews,
            },
            Counting::Breakdown(_) | Counting::NoResultSearches => {
                let mut rows: HashMap<String, Counters> = HashMap::new();
                for (key, c) in self.rows {
                    for name in values.names(key)?.clone() {
                        rows.entry(name).or_default().add(&c);
                    }
                }
                rows.retain(|_, c| *c != Counters::default());
                FilteredAnswer::Rows(rows)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_cache_keeps_high_ids_out_of_its_vector() {
        let mut cache: IdCache<u8> = IdCache::default();
        cache.set(7, 2);
        let high = (DENSE_IDS as u32) * 8 + 3;
        cache.set(high, 1);
        assert_eq!(
            (cache.get(7), cache.get(high), cache.get(high + 1)),
            (2, 1, 0)
        );
        assert_eq!(cache.get(8), 0);
        // a store's newest, highest ids cost a map entry, not a vector as
        // long as every id ever handed out
        assert_eq!(cache.dense.len(), 8);
        assert_eq!(cache.sparse.len(), 1);
    }
    use crate::model::EventKind;
    use crate::store::{test_event, StoreOptions, Writer, WriterOptions};
    use std::sync::Arc;

    fn ask(
        store: &Store,
        (from_ms, to_ms): (i64, i64),
        filters: &[Filter],
        counting: Counting,
    ) -> FilteredAnswer {
        filtered(
            store,
            &FilteredQuery {
                site: "s",
                from_ms,
                to_ms,
                filters,
                counting,
            },
        )
        .unwrap()
    }

    fn breakdown(
        store: &Store,
        range: (i64, i64),
        filters: &[Filter],
        dim: Dimension,
    ) -> HashMap<String, Counters> {
        match ask(store, range, filters, Counting::Breakdown(dim)) {
            FilteredAnswer::Rows(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn hourly(store: &Store, range: (i64, i64), filters: &[Filter]) -> Vec<(i64, Totals)> {
        match ask(store, range, filters, Counting::Hourly) {
            FilteredAnswer::Hourly(h) => h,
            other => panic!("{other:?}"),
        }
    }

    /// Exit and entry page are the visit's final ones, even for events
    /// that happened before they were known.
    #[test]
    fn visit_level_filters_use_the_final_entry_and_exit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path().join("db"), &StoreOptions::default()).unwrap());
        let w = Writer::spawn(store.clone(), WriterOptions::default()).unwrap();
        let t0 = 20_000 * MS_PER_DAY + 10 * MS_PER_HOUR;
        let mk = |ts: i64, visitor: u64, kind: EventKind, url: &str| {
            let mut e = test_event("s", ts, visitor);
            e.kind = kind;
            e.url = url.into();
            e.target = if kind == EventKind::Download {
                "https://example.org/f.pdf".into()
            } else {
                String::new()
            };
            e
        };
        let events = vec![
            // visit 1: a download before the first page view, then /a, /b
            mk(t0, 1, EventKind::Download, "/a"),
            mk(t0 + 1000, 1, EventKind::PageView, "/a"),
            mk(t0 + 2000, 1, EventKind::PageView, "/b"),
            // visit 2: only /a
            mk(t0 + 3000, 2, EventKind::PageView, "/a"),
        ];
        w.submit(events).unwrap().blocking_recv().unwrap().unwrap();
        w.shutdown_blocking().unwrap();
        let f = |s: &str| vec![s.parse::<Filter>().unwrap()];
        let range = (t0 - MS_PER_HOUR, t0 + MS_PER_HOUR);
        let pages = |filters: &[Filter]| {
            let mut r: Vec<(String, u64)> = breakdown(&store, range, filters, Dimension::Page)
                .into_iter()
                .map(|(k, c)| (k, c.pageviews))
                .collect();
            r.sort();
            r
        };
        // visit 1 exits on /b: its first page view counts too
        assert_eq!(
            pages(&f("exit_page==/b")),
            vec![("/a".into(), 1), ("/b".into(), 1)]
        );
        assert_eq!(pages(&f("exit_page==/a")), vec![("/a".into(), 1)]);
        // the download happened before visit 1's entry page was known
        let downloads = breakdown(&store, range, &f("entry_page==/a"), Dimension::Download);
        assert_eq!(downloads["https://example.org/f.pdf"].events, 1);
        let exits = breakdown(&store, range, &[], Dimension::ExitPage);
        assert_eq!((exits["/a"].visits, exits["/b"].visits), (1, 1));
        let h = hourly(&store, range, &f("exit_page==/b"));
        let t: Totals = h.iter().fold(Totals::default(), |mut a, (_, t)| {
            a.add(t);
            a
        });
        assert_eq!(
            (t.visits, t.bounces, t.pageviews, t.downloads),
            (1, 0, 2, 1)
        );
        let entries = breakdown(&store, range, &f("device_type!=x"), Dimension::EntryPage);
        assert_eq!((entries["/a"].visits, entries["/a"].pageviews), (2, 3));
    }

    /// The same events through both paths of the visit engine: as the
    /// writer rolls them up, and as a scan with a filter every event
    /// passes counts them. Every total and every breakdown must agree,
    /// also for the cases where the two used to differ (a first page view
    /// without URL, a ping outside any visit, a visit running past
    /// midnight, a visitor coming back after the timeout).
    #[test]
    fn rollups_and_a_scan_count_the_same_visits() {
        use crate::model::{Campaign, Device, DeviceType, Referrer, ReferrerType};
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path().join("db"), &StoreOptions::default()).unwrap());
        let w = Writer::spawn(store.clone(), WriterOptions::default()).unwrap();
        let midnight = 20_001 * MS_PER_DAY;
        let min = 60_000;
        let mk = |ts: i64, visitor: u64, kind: EventKind, url: &str, pvid: u64| {
            let mut e = test_event("s", ts, visitor);
            e.kind = kind;
            e.url = url.into();
            e.title = if url.is_empty() {
                String::new()
            } else {
                format!("T {url}")
            };
            e.pageview_id = pvid;
            e.device = Device {
                device_type: if visitor % 2 == 0 {
                    DeviceType::Smartphone
                } else {
                    DeviceType::Desktop
                },
                browser: "Firefox".into(),
                ..Device::default()
            };
            if visitor % 3 == 0 {
                e.referrer = Referrer {
                    kind: ReferrerType::Search,
                    name: "Example Search".into(),
                    url: "https://search.example/".into(),
                };
                e.campaign = Campaign {
                    source: "news".into(),
                    ..Campaign::default()
                };
            }
            match kind {
                EventKind::Download | EventKind::Outbound => {
                    e.target = format!("https://files.example{url}.pdf")
                }
                EventKind::Search => e.search_term = format!("term {visitor}"),
                EventKind::Ping => e.engaged_ms = 4_000 + visitor as u32 * 100,
                EventKind::PageView | EventKind::Custom => {}
            }
            e
        };
        let t = midnight - 20 * min;
        let events = vec![
            // a visit across midnight, with a dwell ping on each side
            mk(t, 1, EventKind::PageView, "/a", 11),
            mk(t + min, 1, EventKind::Ping, "/a", 11),
            mk(t + 25 * min, 1, EventKind::PageView, "/b", 12),
            mk(t + 26 * min, 1, EventKind::Ping, "/b", 12),
            mk(t + 27 * min, 1, EventKind::Download, "/b", 0),
            // a first page view without URL, then one with
            mk(t + 2 * min, 2, EventKind::PageView, "", 21),
            mk(t + 3 * min, 2, EventKind::PageView, "/c", 22),
            // a ping outside any visit, then a search that starts one
            mk(midnight + 5 * min, 3, EventKind::Ping, "", 0),
            mk(midnight + 6 * min, 3, EventKind::Search, "/suche", 0),
            mk(midnight + 7 * min, 3, EventKind::PageView, "/suche", 31),
            // back after the timeout: a second visit, a bounce
            mk(midnight + 50 * min, 3, EventKind::PageView, "/a", 32),
            mk(midnight + 51 * min, 3, EventKind::Outbound, "/out", 0),
            mk(midnight + 52 * min, 4, EventKind::PageView, "/c", 41),
        ];
        w.submit(events).unwrap().blocking_recv().unwrap().unwrap();
        w.shutdown_blocking().unwrap();
        let everything = vec!["device_type!=no-such-device".parse::<Filter>().unwrap()];
        let range = (midnight - MS_PER_DAY, midnight + MS_PER_DAY);
        let sum = |hours: Vec<(i64, Totals)>| {
            hours.into_iter().fold(Totals::default(), |mut a, (_, t)| {
                a.add(&t);
                a
            })
        };
        let rolled = store.timeseries_hours("s", range.0, range.1).unwrap();
        let scanned = hourly(&store, range, &everything);
        assert_eq!(scanned, rolled, "hourly totals");
        assert_eq!(sum(scanned).visits, 5);
        let days = (
            crate::store::schema::utc_day(range.0),
            crate::store::schema::utc_day(range.1 - 1),
        );
        for dim in Dimension::ALL {
            let mut from_rollups: Vec<(String, Counters)> = store
                .ranked("s", dim, days.0, days.1, usize::MAX, 0)
                .unwrap()
                .rows;
            from_rollups.sort_by(|a, b| a.0.cmp(&b.0));
            let mut from_scan: Vec<(String, Counters)> = breakdown(&store, range, &everything, dim)
                .into_iter()
                .collect();
            from_scan.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(from_scan, from_rollups, "{dim}");
        }
    }

    /// Stored order does not change a filtered answer: the same visits
    /// stored in time order, and with the later half received first (each
    /// visitor's events then go backwards in stored order, which
    /// [`visit_order`] must sort), give the same breakdowns.
    #[test]
    fn a_scan_counts_the_same_whatever_order_the_events_were_stored_in() {
        let t0 = 20_000 * MS_PER_DAY + 8 * MS_PER_HOUR;
        let min = 60_000;
        let mut events = Vec::new();
        for visitor in 1..=12u64 {
            // page views a few minutes apart, a gap that ends the visit
            // after the fourth, visitors overlapping in time
            for k in 0..8i64 {
                let gap = if k >= 4 { 40 * min } else { 0 };
                let mut e = test_event("s", t0 + visitor as i64 * min + k * 3 * min + gap, visitor);
                e.url = format!("/p{}", (visitor as i64 + k) % 5);
                events.push(e);
            }
        }
        events.sort_by_key(|e| e.ts_ms);
        let half = events.len() / 2;
        let stores: Vec<_> = [
            vec![events.clone()],
            vec![events[half..].to_vec(), events[..half].to_vec()],
        ]
        .into_iter()
        .map(|batches| {
            let dir = tempfile::tempdir().unwrap();
            let store =
                Arc::new(Store::open(dir.path().join("db"), &StoreOptions::default()).unwrap());
            let w = Writer::spawn(store.clone(), WriterOptions::default()).unwrap();
            for batch in batches {
                w.submit(batch).unwrap().blocking_recv().unwrap().unwrap();
            }
            w.shutdown_blocking().unwrap();
            (dir, store)
        })
        .collect();
        let everything = vec!["device_type!=no-such-device".parse::<Filter>().unwrap()];
        let range = (t0 - MS_PER_HOUR, t0 + 4 * MS_PER_HOUR);
        for dim in [Dimension::EntryPage, Dimension::ExitPage, Dimension::Page] {
            let answers: Vec<Vec<(String, Counters)>> = stores
                .iter()
                .map(|(_, store)| {
                    let mut rows: Vec<_> = breakdown(store, range, &everything, dim)
                        .into_iter()
                        .collect();
                    rows.sort_by(|a, b| a.0.cmp(&b.0));
                    rows
                })
                .collect();
            assert_eq!(answers[0], answers[1], "{dim}");
            // two visits per visitor
            let visits: u64 = answers[0].iter().map(|(_, c)| c.visits).sum();
            if dim == Dimension::EntryPage {
                assert_eq!(visits, 24);
            }
        }
    }
}
