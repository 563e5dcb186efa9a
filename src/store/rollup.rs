//! Roll-ups: hourly totals and per-dimension counters, updated incrementally
//! inside the writer's transaction.
//!
//! Dashboards read these instead of raw events. They hold no personal data
//! (counts per site, hour or local day, dimension and value) and are not
//! dropped with raw partitions. To update them incrementally the writer
//! keeps per-day visit state (`visits_*`), a per-day set of visitors already
//! counted (`seen_*`) and the largest engaged time reported per page view
//! (`dwell_*`); those tables are keyed by UTC day and deleted with that
//! day's events. All of it is written in the same transaction as the events,
//! so a restart never double counts and a failed commit leaves nothing.
//!
//! Definitions (a recount from raw events must agree with these):
//! - A *visit* is a run of events of one visitor hash on one site with gaps
//!   under 30 minutes. Any event kind except `Ping` can start a visit; a
//!   ping only extends a visit that is still live (heartbeats do not create
//!   visits). Visits count in the hour and local day where they start.
//! - A *bounce* is a visit with at most one page view: a starting visit adds
//!   one bounce to its start hour, its second page view takes it back.
//! - *Visitors* are unique per site and UTC day (the hash's salt rotates
//!   daily), counted in the hour of their first event that day. A sum over a
//!   range of days is therefore a sum of daily uniques.
//! - *Dwell* of a page view is the largest `engaged_ms` its pings reported;
//!   each ping adds only the increase over the previous maximum, in the
//!   ping's hour. `dwell_pageviews` counts page views with any dwell data.
//! - Page-level dimensions (`page`, `title`) count page views on the
//!   event's local day. Visit-level dimensions (entry page, referrer,
//!   campaign, device fields, plugins) count a visit once on the local day the
//!   visit started, and every page view of the visit on the page view's local
//!   day, attributed to the visit's referrer and campaign. `exit_page` counts
//!   visits only, moved from the old to the new last page as the visit goes
//!   on. Event dimensions (`download`, `outbound`, `search_term`) count
//!   events. Empty values are not counted.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use redb::{ReadableTable, Table, WriteTransaction};

use crate::model::{plugins, Event, EventKind, ReferrerType};

use super::codec::{encode_event, put_ivarint, put_str, put_varint, Reader};
use super::schema::{self, DimKey, HourKey, VisitorKey, DIMS, HOURLY, MS_PER_HOUR};
use super::StoreError;

/// Gap that ends a visit.
pub const VISIT_TIMEOUT_MS: i64 = 30 * 60 * 1000;

/// A reporting dimension of the `dims` roll-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Dimension {
    /// Page URL (page views).
    Page = 0,
    /// Page title (page views).
    Title = 1,
    /// First page of a visit (visits; page views of visits entering there).
    EntryPage = 2,
    /// Last page of a visit (visits only).
    ExitPage = 3,
    /// Referrer host (or the URL when it has no host).
    Referrer = 4,
    /// [`ReferrerType::as_str`] of the visit's referrer.
    ReferrerType = 5,
    /// Search engine name, for search referrers.
    SearchEngine = 6,
    UtmSource = 7,
    UtmMedium = 8,
    UtmCampaign = 9,
    /// Download target (events).
    Download = 10,
    /// Outbound link target (events).
    Outbound = 11,
    /// Site-search term (events).
    SearchTerm = 12,
    /// [`crate::model::DeviceType::as_str`].
    DeviceType = 13,
    Brand = 14,
    Model = 15,
    Os = 16,
    /// `"{os} {os_version}"`, since a version alone says little.
    OsVersion = 17,
    Browser = 18,
    /// `"{browser} {browser_version}"`.
    BrowserVersion = 19,
    Engine = 20,
    /// One row per set plugin bit, named as in [`plugins::NAMES`].
    Plugin = 21,
}

/// Which counter orders a dimension's values in [`crate::store::Store::top`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortBy {
    Pageviews,
    Visits,
    Events,
}

impl Dimension {
    pub const ALL: [Dimension; 22] = [
        Dimension::Page,
        Dimension::Title,
        Dimension::EntryPage,
        Dimension::ExitPage,
        Dimension::Referrer,
        Dimension::ReferrerType,
        Dimension::SearchEngine,
        Dimension::UtmSource,
        Dimension::UtmMedium,
        Dimension::UtmCampaign,
        Dimension::Download,
        Dimension::Outbound,
        Dimension::SearchTerm,
        Dimension::DeviceType,
        Dimension::Brand,
        Dimension::Model,
        Dimension::Os,
        Dimension::OsVersion,
        Dimension::Browser,
        Dimension::BrowserVersion,
        Dimension::Engine,
        Dimension::Plugin,
    ];

    pub fn from_u8(v: u8) -> Option<Dimension> {
        Self::ALL.get(usize::from(v)).copied()
    }

    /// Stable name, for APIs and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Page => "page",
            Dimension::Title => "title",
            Dimension::EntryPage => "entry_page",
            Dimension::ExitPage => "exit_page",
            Dimension::Referrer => "referrer",
            Dimension::ReferrerType => "referrer_type",
            Dimension::SearchEngine => "search_engine",
            Dimension::UtmSource => "utm_source",
            Dimension::UtmMedium => "utm_medium",
            Dimension::UtmCampaign => "utm_campaign",
            Dimension::Download => "download",
            Dimension::Outbound => "outbound",
            Dimension::SearchTerm => "search_term",
            Dimension::DeviceType => "device_type",
            Dimension::Brand => "brand",
            Dimension::Model => "model",
            Dimension::Os => "os",
            Dimension::OsVersion => "os_version",
            Dimension::Browser => "browser",
            Dimension::BrowserVersion => "browser_version",
            Dimension::Engine => "engine",
            Dimension::Plugin => "plugin",
        }
    }

    /// The counter that ranks values of this dimension.
    pub fn sort_by(self) -> SortBy {
        match self {
            Dimension::Download | Dimension::Outbound | Dimension::SearchTerm => SortBy::Events,
            Dimension::EntryPage | Dimension::ExitPage => SortBy::Visits,
            _ => SortBy::Pageviews,
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown dimension name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dimension {0:?}")]
pub struct UnknownDimension(pub String);

impl FromStr for Dimension {
    type Err = UnknownDimension;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dimension::ALL
            .iter()
            .copied()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| UnknownDimension(s.to_owned()))
    }
}

/// Counters of one dimension value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub pageviews: u64,
    pub visits: u64,
    pub events: u64,
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        self.pageviews += o.pageviews;
        self.visits += o.visits;
        self.events += o.events;
    }

    pub(crate) fn get(&self, by: SortBy) -> u64 {
        match by {
            SortBy::Pageviews => self.pageviews,
            SortBy::Visits => self.visits,
            SortBy::Events => self.events,
        }
    }
}

/// Totals of one hour (or, summed, of a range).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub pageviews: u64,
    pub visits: u64,
    pub visitors: u64,
    pub bounces: u64,
    pub dwell_ms_sum: u64,
    pub dwell_pageviews: u64,
    pub downloads: u64,
    pub outbound: u64,
    pub searches: u64,
}

impl Totals {
    const FIELDS: usize = 9;

    fn as_array(&self) -> [u64; Self::FIELDS] {
        [
            self.pageviews,
            self.visits,
            self.visitors,
            self.bounces,
            self.dwell_ms_sum,
            self.dwell_pageviews,
            self.downloads,
            self.outbound,
            self.searches,
        ]
    }

    fn from_array(a: [u64; Self::FIELDS]) -> Totals {
        Totals {
            pageviews: a[0],
            visits: a[1],
            visitors: a[2],
            bounces: a[3],
            dwell_ms_sum: a[4],
            dwell_pageviews: a[5],
            downloads: a[6],
            outbound: a[7],
            searches: a[8],
        }
    }

    pub fn add(&mut self, o: &Totals) {
        let mut a = self.as_array();
        for (x, y) in a.iter_mut().zip(o.as_array()) {
            *x += y;
        }
        *self = Totals::from_array(a);
    }
}

// ------------------------------------------------------------ encodings

fn encode_u64s(vals: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(vals.len() * 2);
    for &v in vals {
        put_varint(&mut out, v);
    }
    out
}

fn decode_u64s<const N: usize>(bytes: &[u8], what: &'static str) -> Result<[u64; N], StoreError> {
    let mut r = Reader::new(bytes, what);
    let mut a = [0u64; N];
    for x in a.iter_mut() {
        *x = r.varint()?;
    }
    r.finish()?;
    Ok(a)
}

pub(crate) fn encode_totals(t: &Totals) -> Vec<u8> {
    encode_u64s(&t.as_array())
}

pub(crate) fn decode_totals(bytes: &[u8]) -> Result<Totals, StoreError> {
    decode_u64s::<{ Totals::FIELDS }>(bytes, "hourly totals").map(Totals::from_array)
}

pub(crate) fn encode_counters(c: &Counters) -> Vec<u8> {
    encode_u64s(&[c.pageviews, c.visits, c.events])
}

pub(crate) fn decode_counters(bytes: &[u8]) -> Result<Counters, StoreError> {
    let [pageviews, visits, events] = decode_u64s::<3>(bytes, "dimension counters")?;
    Ok(Counters {
        pageviews,
        visits,
        events,
    })
}

/// What the writer remembers about a visitor's current visit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct VisitState {
    pub start_ts: i64,
    pub last_ts: i64,
    pub pageviews: u32,
    pub entry: String,
    pub exit: String,
    pub referrer: String,
    pub referrer_type: u8,
    pub search_engine: String,
    pub utm_source: String,
    pub utm_medium: String,
    pub utm_campaign: String,
}

const VISIT_STATE_VERSION: u8 = 1;

impl VisitState {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.entry.len() + self.exit.len());
        out.push(VISIT_STATE_VERSION);
        put_ivarint(&mut out, self.start_ts);
        put_ivarint(&mut out, self.last_ts);
        put_varint(&mut out, u64::from(self.pageviews));
        out.push(self.referrer_type);
        for s in [
            &self.entry,
            &self.exit,
            &self.referrer,
            &self.search_engine,
            &self.utm_source,
            &self.utm_medium,
            &self.utm_campaign,
        ] {
            put_str(&mut out, s);
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<VisitState, StoreError> {
        let mut r = Reader::new(bytes, "visit state");
        if r.u8()? != VISIT_STATE_VERSION {
            return Err(r.err("unknown version"));
        }
        let start_ts = r.ivarint()?;
        let last_ts = r.ivarint()?;
        let pageviews = r.u32()?;
        let referrer_type = r.u8()?;
        let s = VisitState {
            start_ts,
            last_ts,
            pageviews,
            referrer_type,
            entry: r.string()?,
            exit: r.string()?,
            referrer: r.string()?,
            search_engine: r.string()?,
            utm_source: r.string()?,
            utm_medium: r.string()?,
            utm_campaign: r.string()?,
        };
        r.finish()?;
        Ok(s)
    }
}

/// The value of the `referrer` dimension: the referrer's host, or its URL
/// when no host can be cut out.
pub fn referrer_value(url: &str) -> &str {
    let rest = match url.split_once("://") {
        Some((_, rest)) => rest,
        None => return url,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = &rest[..end];
    if host.is_empty() {
        url
    } else {
        host
    }
}

// ------------------------------------------------------------ batch update

/// Signed changes to roll-up rows, gathered over a batch and applied once.
#[derive(Default)]
pub(crate) struct Deltas {
    hourly: HashMap<(String, i64), [i64; Totals::FIELDS]>,
    dims: HashMap<(String, Dimension, i32, String), [i64; 3]>,
}

#[derive(Clone, Copy)]
enum T {
    Pageviews = 0,
    Visits = 1,
    Visitors = 2,
    Bounces = 3,
    DwellSum = 4,
    DwellPageviews = 5,
    Downloads = 6,
    Outbound = 7,
    Searches = 8,
}

#[derive(Clone, Copy)]
enum C {
    Pageviews = 0,
    Visits = 1,
    Events = 2,
}

impl Deltas {
    fn total(&mut self, site: &str, hour: i64, field: T, by: i64) {
        self.hourly.entry((site.to_owned(), hour)).or_default()[field as usize] += by;
    }

    fn dim(&mut self, site: &str, dim: Dimension, day: i32, value: &str, field: C, by: i64) {
        if value.is_empty() {
            return;
        }
        self.dims
            .entry((site.to_owned(), dim, day, value.to_owned()))
            .or_default()[field as usize] += by;
    }

    /// Adds the deltas to the stored rows (clamping at zero, which only a
    /// lost state table could make necessary).
    pub(crate) fn apply(self, txn: &WriteTransaction) -> Result<(), StoreError> {
        let mut hourly = txn.open_table(HOURLY)?;
        for ((site, hour), d) in self.hourly {
            let key: HourKey = (&site, hour);
            let old = match hourly.get(key)? {
                Some(v) => decode_totals(v.value())?,
                None => Totals::default(),
            };
            let mut a = old.as_array();
            for (x, dx) in a.iter_mut().zip(d) {
                *x = x.saturating_add_signed(dx);
            }
            hourly.insert(key, encode_totals(&Totals::from_array(a)).as_slice())?;
        }
        let mut dims = txn.open_table(DIMS)?;
        for ((site, dim, day, value), d) in self.dims {
            let key: DimKey = (&site, dim as u8, day, &value);
            let old = match dims.get(key)? {
                Some(v) => decode_counters(v.value())?,
                None => Counters::default(),
            };
            let new = Counters {
                pageviews: old
                    .pageviews
                    .saturating_add_signed(d[C::Pageviews as usize]),
                visits: old.visits.saturating_add_signed(d[C::Visits as usize]),
                events: old.events.saturating_add_signed(d[C::Events as usize]),
            };
            if new == Counters::default() {
                dims.remove(key)?;
            } else {
                dims.insert(key, encode_counters(&new).as_slice())?;
            }
        }
        Ok(())
    }
}

/// Applies one batch of events: raw rows, state and roll-ups, all in `txn`.
pub(crate) struct BatchApplier<'a> {
    txn: &'a WriteTransaction,
    timezones: &'a HashMap<String, Tz>,
    existing: HashSet<String>,
    deltas: Deltas,
}

struct DayTables<'t> {
    events: Table<'t, schema::EventKey<'static>, &'static [u8]>,
    seen: Table<'t, VisitorKey<'static>, ()>,
    visits: Table<'t, VisitorKey<'static>, &'static [u8]>,
    dwell: Table<'t, VisitorKey<'static>, u32>,
    prev_visits: Option<Table<'t, VisitorKey<'static>, &'static [u8]>>,
    prev_dwell: Option<Table<'t, VisitorKey<'static>, u32>>,
}

impl<'a> BatchApplier<'a> {
    pub(crate) fn new(
        txn: &'a WriteTransaction,
        timezones: &'a HashMap<String, Tz>,
    ) -> Result<Self, StoreError> {
        use redb::TableHandle;
        let existing = txn
            .list_tables()?
            .map(|t| t.name().to_owned())
            .collect::<HashSet<_>>();
        Ok(BatchApplier {
            txn,
            timezones,
            existing,
            deltas: Deltas::default(),
        })
    }

    fn local_day(&self, site: &str, ts_ms: i64) -> i32 {
        let tz = self.timezones.get(site).copied().unwrap_or(Tz::UTC);
        match tz.timestamp_millis_opt(ts_ms).single() {
            Some(t) => schema::day_number(t.date_naive()),
            None => schema::day_number(schema::utc_day(ts_ms)),
        }
    }

    /// Writes `events` (any order; they are processed in time order) with
    /// keys `(site, ts, seq)` drawing sequence numbers from `next_seq`.
    pub(crate) fn apply(
        mut self,
        events: &mut [(&Event, u32)],
        next_seq: &mut u32,
    ) -> Result<(), StoreError> {
        for (_, seq) in events.iter_mut() {
            *seq = *next_seq;
            *next_seq = next_seq.wrapping_add(1);
        }
        events.sort_by_key(|(e, _)| e.ts_ms);
        let mut i = 0;
        while i < events.len() {
            let day = schema::utc_day(events[i].0.ts_ms);
            let mut j = i;
            while j < events.len() && schema::utc_day(events[j].0.ts_ms) == day {
                j += 1;
            }
            let mut tables = self.open_day(day)?;
            for &(e, seq) in &events[i..j] {
                self.apply_one(&mut tables, e, seq)?;
            }
            i = j;
        }
        self.deltas.apply(self.txn)
    }

    fn open_day(&mut self, day: NaiveDate) -> Result<DayTables<'a>, StoreError> {
        let prev = day.pred_opt();
        let txn = self.txn;
        let open_prev = |prefix: &str| prev.map(|p| schema::day_table_name(prefix, p));
        let prev_visits_name = open_prev(schema::VISITS_PREFIX);
        let prev_dwell_name = open_prev(schema::DWELL_PREFIX);
        let t = DayTables {
            events: txn.open_table(schema::events_table(&schema::day_table_name(
                schema::EVENTS_PREFIX,
                day,
            )))?,
            seen: txn.open_table(schema::seen_table(&schema::day_table_name(
                schema::SEEN_PREFIX,
                day,
            )))?,
            visits: txn.open_table(schema::visits_table(&schema::day_table_name(
                schema::VISITS_PREFIX,
                day,
            )))?,
            dwell: txn.open_table(schema::dwell_table(&schema::day_table_name(
                schema::DWELL_PREFIX,
                day,
            )))?,
            prev_visits: match prev_visits_name {
                Some(n) if self.existing.contains(&n) => {
                    Some(txn.open_table(schema::visits_table(&n))?)
                }
                _ => None,
            },
            prev_dwell: match prev_dwell_name {
                Some(n) if self.existing.contains(&n) => {
                    Some(txn.open_table(schema::dwell_table(&n))?)
                }
                _ => None,
            },
        };
        for p in schema::DAY_PREFIXES {
            self.existing.insert(schema::day_table_name(p, day));
        }
        Ok(t)
    }

    fn apply_one(&mut self, t: &mut DayTables<'a>, e: &Event, seq: u32) -> Result<(), StoreError> {
        let site = e.site.as_str();
        t.events
            .insert((site, e.ts_ms, seq), encode_event(e).as_slice())?;
        let hour = schema::hour_of(e.ts_ms);
        let local = self.local_day(site, e.ts_ms);
        let vkey: VisitorKey = (site, e.visitor);

        if t.seen.get(vkey)?.is_none() {
            t.seen.insert(vkey, ())?;
            self.deltas.total(site, hour, T::Visitors, 1);
        }

        // ---- visit state
        let mut state = match t.visits.get(vkey)? {
            Some(v) => Some(VisitState::decode(v.value())?),
            None => match &t.prev_visits {
                Some(prev) => match prev.get(vkey)? {
                    Some(v) => Some(VisitState::decode(v.value())?),
                    None => None,
                },
                None => None,
            },
        };
        let live = matches!(&state, Some(s) if e.ts_ms - s.last_ts < VISIT_TIMEOUT_MS);
        if !live {
            state = None;
        }
        if state.is_none() && e.kind != EventKind::Ping {
            let s = VisitState {
                start_ts: e.ts_ms,
                last_ts: e.ts_ms,
                pageviews: 0,
                entry: String::new(),
                exit: String::new(),
                referrer: if e.referrer.url.is_empty() {
                    String::new()
                } else {
                    referrer_value(&e.referrer.url).to_owned()
                },
                referrer_type: e.referrer.kind as u8,
                search_engine: if e.referrer.kind == ReferrerType::Search {
                    e.referrer.name.clone()
                } else {
                    String::new()
                },
                utm_source: e.campaign.source.clone(),
                utm_medium: e.campaign.medium.clone(),
                utm_campaign: e.campaign.campaign.clone(),
            };
            self.deltas.total(site, hour, T::Visits, 1);
            self.deltas.total(site, hour, T::Bounces, 1);
            self.visit_dims(site, local, &s, e, C::Visits);
            state = Some(s);
        }

        if let Some(s) = state.as_mut() {
            s.last_ts = s.last_ts.max(e.ts_ms);
            if e.kind == EventKind::PageView {
                s.pageviews = s.pageviews.saturating_add(1);
                let start_hour = schema::hour_of(s.start_ts);
                let start_local = self.local_day(site, s.start_ts);
                if s.pageviews == 1 {
                    s.entry = e.url.clone();
                    self.deltas.dim(
                        site,
                        Dimension::EntryPage,
                        start_local,
                        &e.url,
                        C::Visits,
                        1,
                    );
                }
                if s.pageviews == 2 {
                    self.deltas.total(site, start_hour, T::Bounces, -1);
                }
                if s.exit != e.url {
                    let old = std::mem::replace(&mut s.exit, e.url.clone());
                    self.deltas
                        .dim(site, Dimension::ExitPage, start_local, &old, C::Visits, -1);
                    self.deltas
                        .dim(site, Dimension::ExitPage, start_local, &e.url, C::Visits, 1);
                }
                let s = s.clone();
                self.visit_dims(site, local, &s, e, C::Pageviews);
                self.deltas
                    .dim(site, Dimension::EntryPage, local, &s.entry, C::Pageviews, 1);
            }
            t.visits.insert(vkey, s.encode().as_slice())?;
        }

        // ---- per kind
        match e.kind {
            EventKind::PageView => {
                self.deltas.total(site, hour, T::Pageviews, 1);
                self.deltas
                    .dim(site, Dimension::Page, local, &e.url, C::Pageviews, 1);
                self.deltas
                    .dim(site, Dimension::Title, local, &e.title, C::Pageviews, 1);
            }
            EventKind::Ping => {
                if e.pageview_id != 0 && e.engaged_ms > 0 {
                    let dkey: VisitorKey = (site, e.pageview_id);
                    let here = t.dwell.get(dkey)?.map(|v| v.value());
                    let prev = match (here, &t.prev_dwell) {
                        (Some(v), _) => Some(v),
                        (None, Some(p)) => p.get(dkey)?.map(|v| v.value()),
                        (None, None) => None,
                    };
                    let before = prev.unwrap_or(0);
                    if let (None, Some(v)) = (here, prev) {
                        // carry the maximum into today's table, so that a
                        // page view pinged across days keeps its history
                        t.dwell.insert(dkey, v)?;
                    }
                    if e.engaged_ms > before {
                        let inc = i64::from(e.engaged_ms - before);
                        self.deltas.total(site, hour, T::DwellSum, inc);
                        if prev.is_none() {
                            self.deltas.total(site, hour, T::DwellPageviews, 1);
                        }
                        t.dwell.insert(dkey, e.engaged_ms)?;
                    }
                }
            }
            EventKind::Download => {
                self.deltas.total(site, hour, T::Downloads, 1);
                self.deltas
                    .dim(site, Dimension::Download, local, &e.target, C::Events, 1);
            }
            EventKind::Outbound => {
                self.deltas.total(site, hour, T::Outbound, 1);
                self.deltas
                    .dim(site, Dimension::Outbound, local, &e.target, C::Events, 1);
            }
            EventKind::Search => {
                self.deltas.total(site, hour, T::Searches, 1);
                self.deltas.dim(
                    site,
                    Dimension::SearchTerm,
                    local,
                    &e.search_term,
                    C::Events,
                    1,
                );
            }
        }
        Ok(())
    }

    /// Counts one visit or one page view against the visit-level
    /// dimensions (referrer and campaign from the visit, device from the
    /// event: the same user agent made the same visitor hash).
    fn visit_dims(&mut self, site: &str, day: i32, s: &VisitState, e: &Event, field: C) {
        let d = &e.device;
        let ref_type = ReferrerType::from_u8(s.referrer_type).unwrap_or_default();
        let os_version = joined(&d.os, &d.os_version);
        let browser_version = joined(&d.browser, &d.browser_version);
        let rows: [(Dimension, &str); 12] = [
            (Dimension::Referrer, &s.referrer),
            (Dimension::ReferrerType, ref_type.as_str()),
            (Dimension::SearchEngine, &s.search_engine),
            (Dimension::UtmSource, &s.utm_source),
            (Dimension::UtmMedium, &s.utm_medium),
            (Dimension::UtmCampaign, &s.utm_campaign),
            (Dimension::DeviceType, d.device_type.as_str()),
            (Dimension::Brand, &d.brand),
            (Dimension::Model, &d.model),
            (Dimension::Os, &d.os),
            (Dimension::OsVersion, &os_version),
            (Dimension::Browser, &d.browser),
        ];
        for (dim, v) in rows {
            self.deltas.dim(site, dim, day, v, field, 1);
        }
        self.deltas.dim(
            site,
            Dimension::BrowserVersion,
            day,
            &browser_version,
            field,
            1,
        );
        self.deltas
            .dim(site, Dimension::Engine, day, &d.engine, field, 1);
        for (bit, name) in plugins::NAMES {
            if e.plugins & bit != 0 {
                self.deltas
                    .dim(site, Dimension::Plugin, day, name, field, 1);
            }
        }
    }
}

/// `"{a} {b}"`, or empty when `b` is empty (a version without its product
/// is not worth a row; a product without a version still is, under its own
/// dimension).
fn joined(a: &str, b: &str) -> String {
    if b.is_empty() {
        String::new()
    } else if a.is_empty() {
        b.to_owned()
    } else {
        format!("{a} {b}")
    }
}

/// Whole hours whose start lies in `[from_ms, to_ms)`.
pub(crate) fn hour_range(from_ms: i64, to_ms: i64) -> (i64, i64) {
    let ceil = |ms: i64| -(-ms).div_euclid(MS_PER_HOUR);
    (ceil(from_ms), ceil(to_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimension_names_round_trip() {
        for (i, d) in Dimension::ALL.iter().enumerate() {
            assert_eq!(*d as usize, i);
            assert_eq!(Dimension::from_u8(i as u8), Some(*d));
            assert_eq!(d.as_str().parse::<Dimension>(), Ok(*d));
        }
        assert!("nope".parse::<Dimension>().is_err());
        assert_eq!(Dimension::from_u8(22), None);
        let names: HashSet<_> = Dimension::ALL.iter().map(|d| d.as_str()).collect();
        assert_eq!(names.len(), Dimension::ALL.len());
    }

    #[test]
    fn visit_state_round_trips_and_rejects_garbage() {
        let s = VisitState {
            start_ts: 1_700_000_000_000,
            last_ts: 1_700_000_100_000,
            pageviews: 3,
            entry: "https://a/ä".into(),
            exit: "https://a/b".into(),
            referrer: "google.de".into(),
            referrer_type: 2,
            search_engine: "Google".into(),
            utm_source: "x".into(),
            utm_medium: String::new(),
            utm_campaign: "c".into(),
        };
        let b = s.encode();
        assert_eq!(VisitState::decode(&b).unwrap(), s);
        for n in 0..b.len() {
            assert!(VisitState::decode(&b[..n]).is_err());
        }
    }

    #[test]
    fn totals_and_counters_round_trip() {
        let t = Totals {
            pageviews: 1,
            visits: 2,
            visitors: 3,
            bounces: 0,
            dwell_ms_sum: u64::MAX,
            dwell_pageviews: 5,
            downloads: 6,
            outbound: 7,
            searches: 8,
        };
        assert_eq!(decode_totals(&encode_totals(&t)).unwrap(), t);
        let c = Counters {
            pageviews: 9,
            visits: 0,
            events: 300,
        };
        assert_eq!(decode_counters(&encode_counters(&c)).unwrap(), c);
        assert!(decode_counters(&[1, 2]).is_err());
        assert!(decode_totals(&[0xff]).is_err());
    }

    #[test]
    fn referrer_value_takes_the_host() {
        assert_eq!(
            referrer_value("https://www.google.de/search"),
            "www.google.de"
        );
        assert_eq!(referrer_value("https://t.co"), "t.co");
        assert_eq!(referrer_value("android-app://x"), "x");
        assert_eq!(referrer_value("weird"), "weird");
        assert_eq!(referrer_value("file:///x"), "file:///x");
    }

    #[test]
    fn hour_range_takes_whole_hours_starting_inside() {
        assert_eq!(hour_range(0, MS_PER_HOUR), (0, 1));
        assert_eq!(hour_range(1, MS_PER_HOUR + 1), (1, 2));
        assert_eq!(hour_range(-MS_PER_HOUR, 0), (-1, 0));
    }
}
