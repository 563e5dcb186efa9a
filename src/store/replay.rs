//! Raw events kept outside the redb file (the ClickHouse backend keeps
//! them as rows with their strings in them, and no roll-ups) answered by
//! the very code that answers the embedded store's reports.
//!
//! Each UTC day of a site's events is replayed, in the order the writer
//! would have taken them, through the writer's own per-day state
//! ([`DayState::step`]: visitor and page-view numbering, server-timed
//! pings, the visit engine) with the strings interned into a dictionary
//! held in memory. That yields, per day:
//! - the [`DayEvents`] a redb scan would have read (the same visitor
//!   numbers, the same resolved engaged times), which the filtered scan
//!   and the goal counts run over unchanged ([`DaySource`]);
//! - the roll-up changes the writer would have committed ([`RollupTally`]),
//!   from which hourly totals and ranked breakdowns are summed exactly as
//!   the roll-up tables hold them.
//!
//! Roll-ups are replayed per UTC day ([`DayRollups`]): the changes that
//! stepping day D's events adds, with the day before's state rebuilt from
//! that day's own events alone (as the embedded writer rebuilds it after a
//! restart). So a day's roll-ups depend on the rows of D - 1 and D only,
//! never on where a report's range starts, and a caller may keep them
//! ([`RollupCache`]) for as long as those two days' rows do not change.
//!
//! So visits, bounces and dwell, filters, goals and funnels mean the same
//! on both engines by construction rather than by a second implementation
//! in SQL. A roll-up row can change after its own day (a second page view
//! after midnight ends the bounce of a visit started before it; a visit's
//! exit page moves with its last page view), so a replay for a range
//! starts one UTC day early (the state the writer carried over midnight)
//! and runs one day past its end.

use super::ids::{DayNumber, StringId};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use chrono_tz::Tz;
use rustc_hash::FxHashMap;

use crate::goals::CustomEvent;
use crate::model::{plugins, Campaign, Device, EventKind, Referrer};

use super::apply::LocalDays;
use super::codec::{
    campaign_key, decode_interned, device_key, props_key, referrer_key, text_key, CustomRef,
    Interned,
};
use super::rollup::{
    campaign_values, device_values, hour_range, referrer_values, CAMPAIGN_DIMS, DEVICE_DIMS,
    REFERRER_DIMS,
};
use super::schema;
use super::state::{CounterField, DayState, Group, InternedEvent, Sink, TotalField};
use super::{Cols, Counters, DayEvents, Dimension, Ranked, Resolver, StoreError, Totals};

/// One stored event as a replay needs it: what the embedded store keeps
/// of an event, minus the address.
#[derive(Clone, Debug)]
pub struct ReplayEvent {
    pub ts_ms: i64,
    pub kind: EventKind,
    pub visitor: u64,
    pub pageview_id: u64,
    pub url: String,
    pub title: String,
    pub referrer: Referrer,
    pub campaign: Campaign,
    pub target: String,
    pub search_term: String,
    pub search_results: Option<u32>,
    pub engaged_ms: u32,
    pub device: Device,
    pub plugins: u16,
    pub custom: Option<CustomEvent>,
}

/// Where the raw-event reads (filtered scan, goal counts) take their days
/// from: a redb snapshot, or a replay.
pub(crate) trait DaySource: Send {
    /// Names the dictionary ids of the days this source hands out.
    fn resolver(&self) -> Result<Resolver, StoreError>;

    /// Calls `f` with the events of `site` in `[from_ms, to_ms)`, one UTC
    /// day at a time, oldest first.
    fn scan_days(
        &mut self,
        site: &str,
        from_ms: i64,
        to_ms: i64,
        cols: Cols,
        f: &mut dyn FnMut(DayEvents) -> Result<ControlFlow<()>, StoreError>,
    ) -> Result<(), StoreError>;
}

impl DaySource for super::Snapshot {
    fn resolver(&self) -> Result<Resolver, StoreError> {
        super::Snapshot::resolver(self)
    }

    fn scan_days(
        &mut self,
        site: &str,
        from_ms: i64,
        to_ms: i64,
        cols: Cols,
        f: &mut dyn FnMut(DayEvents) -> Result<ControlFlow<()>, StoreError>,
    ) -> Result<(), StoreError> {
        super::Snapshot::scan_days(self, site, from_ms, to_ms, cols, f)
    }
}

/// A dictionary built while replaying: ids from 1 in order of first use,
/// entries decoded from the same keys the redb dictionary stores.
#[derive(Default)]
pub(crate) struct MemoryDict {
    ids: HashMap<Vec<u8>, StringId>,
    pub(crate) entries: Vec<Interned>,
}

impl MemoryDict {
    fn intern(&mut self, key: Vec<u8>) -> Result<StringId, StoreError> {
        if let Some(&id) = self.ids.get(&key) {
            return Ok(id);
        }
        let entry = decode_interned(&key)?;
        self.entries.push(entry);
        let id = u32::try_from(self.entries.len())
            .map(StringId::from_stored)
            .map_err(|_| StoreError::Decode("too many distinct values in one replay".into()))?;
        self.ids.insert(key, id);
        Ok(id)
    }
}

pub(crate) type SharedDict = Arc<Mutex<MemoryDict>>;

/// Fetches the events of one site and UTC day, in stored order (receipt
/// time, then the order they were received in).
pub type FetchDay<'a> = dyn FnMut(NaiveDate) -> Result<Vec<ReplayEvent>, StoreError> + Send + 'a;

/// What one UTC day's events add to the roll-ups, in the terms the
/// roll-up tables hold them: hourly totals and per-dimension counters of
/// site-local days, values as strings. Nothing else: no visitor hashes,
/// no page-view ids, no events. A change can be dated before the day
/// itself (a bounce that ends after midnight, an exit page that moves).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DayRollups {
    /// Hour (since the epoch) and the change of its totals, in
    /// [`Totals`] order; an hour that some event touched is listed even
    /// when its changes cancel out (the embedded store keeps its row).
    pub hourly: Vec<(i64, [i64; Totals::FIELDS])>,
    /// Dimension, site-local day number, value and the change of its
    /// counters (page views, visits, events); no empty values and no
    /// changes that cancel out.
    pub dims: Vec<(Dimension, i32, String, [i64; 3])>,
}

/// Counter changes summed by (dimension, site-local day, value).
pub type DimSums = FxHashMap<(Dimension, i32, String), [i64; 3]>;

impl DayRollups {
    /// Roll-ups from hourly totals and summed dimension changes: changes
    /// that cancel out are left out, the rest sorted.
    pub fn from_sums(hourly: Vec<(i64, [i64; Totals::FIELDS])>, sums: DimSums) -> DayRollups {
        let mut dims: Vec<(Dimension, i32, String, [i64; 3])> = sums
            .into_iter()
            .filter(|(_, c)| *c != [0; 3])
            .map(|((dim, day, value), c)| (dim, day, value, c))
            .collect();
        dims.sort_unstable();
        DayRollups { hourly, dims }
    }

    /// Roughly the bytes these roll-ups take in memory.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.hourly.len() * std::mem::size_of::<(i64, [i64; Totals::FIELDS])>()
            + self
                .dims
                .iter()
                .map(|(_, _, v, _)| {
                    std::mem::size_of::<(Dimension, i32, String, [i64; 3])>() + v.len()
                })
                .sum::<usize>()
    }

    /// The earliest site-local day (day number) a counter is dated on.
    pub fn earliest_local_day(&self) -> Option<i32> {
        self.dims.iter().map(|(_, d, _, _)| *d).min()
    }
}

/// Keeps the roll-ups of replayed days between replays. `get` answers
/// only for a day whose rows (and the day before's) are still the ones
/// the kept roll-ups were replayed from; deciding that is the cache's job.
pub trait RollupCache: Send {
    /// The roll-ups of UTC day `day`, when held for its rows as they are.
    fn get(&mut self, day: NaiveDate) -> Option<Arc<DayRollups>>;
    /// The roll-ups of `day` just replayed, from the rows just fetched.
    fn put(&mut self, day: NaiveDate, rollups: &Arc<DayRollups>);
}

/// Replays a site's days one after the other.
pub struct Replay<'a> {
    tz: Tz,
    max_engaged_ms: u32,
    fetch: Box<FetchDay<'a>>,
    dict: SharedDict,
    /// The previous replayed day's state (for visits and page views that
    /// run across midnight).
    prev: Option<(NaiveDate, DayState)>,
    /// The last days fetched, in receipt order: a day's roll-ups step the
    /// day before too, so each day is read once, not twice.
    fetched: Vec<(NaiveDate, Arc<Vec<ReplayEvent>>)>,
    cache: Option<Box<dyn RollupCache + 'a>>,
}

impl<'a> Replay<'a> {
    /// A replay of one site whose local days are in `tz`;
    /// `max_engaged_ms` is the writer's bound for server-timed pings.
    pub fn new(tz: Tz, max_engaged_ms: u32, fetch: Box<FetchDay<'a>>) -> Replay<'a> {
        Replay {
            tz,
            max_engaged_ms,
            fetch,
            dict: SharedDict::default(),
            prev: None,
            fetched: Vec::new(),
            cache: None,
        }
    }

    /// This replay, taking the roll-ups of days from `cache` when it holds
    /// them and handing it those it replays.
    pub fn with_cache(mut self, cache: Box<dyn RollupCache + 'a>) -> Replay<'a> {
        self.cache = Some(cache);
        self
    }

    /// The events of UTC day `day`, in the order the writer takes them.
    fn events(&mut self, day: NaiveDate) -> Result<Arc<Vec<ReplayEvent>>, StoreError> {
        if let Some((_, events)) = self.fetched.iter().find(|(d, _)| *d == day) {
            return Ok(events.clone());
        }
        let mut events = (self.fetch)(day)?;
        // the writer takes each batch in time order (a stable sort)
        events.sort_by_key(|e| e.ts_ms);
        let events = Arc::new(events);
        if self.fetched.len() >= 2 {
            self.fetched.remove(0);
        }
        self.fetched.push((day, events.clone()));
        Ok(events)
    }

    /// Steps the events of UTC day `day` through the day state, with the
    /// roll-up changes going to `sink`; returns the day's events that lie
    /// in `[from_ms, to_ms)` as a scan of the embedded store reads them.
    fn day(
        &mut self,
        day: NaiveDate,
        range: (i64, i64),
        sink: &mut dyn Sink,
    ) -> Result<DayEvents, StoreError> {
        let events = self.events(day)?;
        let prev = self
            .prev
            .take()
            .filter(|(d, _)| d.succ_opt() == Some(day))
            .map(|(_, st)| st);
        let (state, out) = self.step_day(day, &events, prev.as_ref(), range, sink)?;
        self.prev = Some((day, state));
        Ok(out)
    }

    /// Steps `events` (UTC day `day`'s) through a fresh day state that
    /// carries over midnight from `prev`.
    fn step_day(
        &self,
        day: NaiveDate,
        events: &[ReplayEvent],
        prev: Option<&DayState>,
        (from_ms, to_ms): (i64, i64),
        sink: &mut dyn Sink,
    ) -> Result<(DayState, DayEvents), StoreError> {
        let mut state = DayState::empty();
        let local_days = LocalDays::new(self.tz);
        let local = |ts: i64| local_days.day(ts);
        let mut out = DayEvents {
            day,
            ..DayEvents::default()
        };
        let mut dict = self.dict.lock().unwrap_or_else(|p| p.into_inner());
        for e in events {
            let input = intern_event(&mut dict, e)?;
            let custom = intern_custom(&mut dict, e)?;
            let step = state.step(prev, &input, &local, self.max_engaged_ms, sink);
            if step.new_visitor {
                out.visitor_hashes.push(e.visitor);
            }
            if step.new_pageview {
                out.pageview_ids.push(e.pageview_id);
            }
            if e.ts_ms >= from_ms && e.ts_ms < to_ms {
                out.seqs.push(out.events.len() as u32);
                out.events
                    .push(input.stored(&step, e.search_results, custom));
            }
        }
        drop(dict);
        Ok((state, out))
    }

    /// The roll-ups of UTC day `day`: its events stepped after the day
    /// before's, that day's state rebuilt from its own events alone. From
    /// the cache when it holds them; otherwise replayed and handed to it.
    pub fn day_rollups(&mut self, day: NaiveDate) -> Result<Arc<DayRollups>, StoreError> {
        if let Some(held) = self.cache.as_mut().and_then(|c| c.get(day)) {
            return Ok(held);
        }
        let prev = match day.pred_opt() {
            Some(before) => {
                let events = self.events(before)?;
                Some(self.step_day(before, &events, None, (0, 0), &mut Forget)?.0)
            }
            None => None,
        };
        let events = self.events(day)?;
        let mut tally = RollupTally::default();
        self.step_day(day, &events, prev.as_ref(), (0, 0), &mut tally)?;
        let rollups = Arc::new(self.resolve(tally)?);
        if let Some(cache) = self.cache.as_mut() {
            cache.put(day, &rollups);
        }
        Ok(rollups)
    }

    /// Names the values of a day's roll-up changes, as the writer expands
    /// them into the roll-up tables (`apply.rs`).
    fn resolve(&self, tally: RollupTally) -> Result<DayRollups, StoreError> {
        let mut hourly: Vec<(i64, [i64; Totals::FIELDS])> = tally.hourly.into_iter().collect();
        hourly.sort_unstable_by_key(|(h, _)| *h);
        let dict = self.dict.lock().unwrap_or_else(|p| p.into_inner());
        let mut dims = DimSums::default();
        for ((group, day, raw), c) in tally.dims {
            // a plugin change's "raw id" is the bit set itself
            let entry =
                match group {
                    Group::Plugins => None,
                    _ => Some(dict.entries.get(raw as usize - 1).ok_or_else(|| {
                        StoreError::Decode(format!("replayed value {raw} unknown"))
                    })?),
                };
            for (dim, value) in expand(group, raw, entry)? {
                if value.is_empty() {
                    continue;
                }
                let x = dims.entry((dim, day.stored(), value)).or_default();
                for (x, dx) in x.iter_mut().zip(c) {
                    *x += dx;
                }
            }
        }
        Ok(DayRollups::from_sums(hourly, dims))
    }

    /// The roll-ups of the UTC days from `first` to `last`.
    fn run_rollups(
        &mut self,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<Vec<Arc<DayRollups>>, StoreError> {
        let mut out = Vec::new();
        let mut day = first;
        while day <= last {
            out.push(self.day_rollups(day)?);
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        Ok(out)
    }

    /// Hourly totals of the hours starting in `[from_ms, to_ms)`, as the
    /// embedded store's roll-ups hold them.
    pub fn hourly_totals(
        &mut self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, Totals)>, StoreError> {
        let (from_h, to_h) = hour_range(from_ms, to_ms);
        if from_h >= to_h {
            return Ok(Vec::new());
        }
        let first = schema::utc_day(from_h * schema::MS_PER_HOUR);
        let last = schema::utc_day(to_h * schema::MS_PER_HOUR - 1);
        // a day's changes are dated on it or before it: the day after the
        // range can still end a bounce that started in it
        let mut hourly: FxHashMap<i64, [i64; Totals::FIELDS]> = FxHashMap::default();
        for day in self.run_rollups(first, succ(last))? {
            for (h, t) in &day.hourly {
                if (from_h..to_h).contains(h) {
                    let x = hourly.entry(*h).or_default();
                    for (x, dx) in x.iter_mut().zip(t) {
                        *x += dx;
                    }
                }
            }
        }
        let mut out: Vec<(i64, Totals)> = hourly
            .into_iter()
            .map(|(h, t)| {
                (
                    h,
                    Totals::from_array(t.map(|x| u64::try_from(x).unwrap_or(0))),
                )
            })
            .collect();
        out.sort_unstable_by_key(|(h, _)| *h);
        Ok(out)
    }

    /// Values of `dim` over the site-local days `from..=to`, ranked as
    /// [`super::Store::ranked`] ranks the roll-ups.
    pub fn ranked(
        &mut self,
        dim: Dimension,
        from: NaiveDate,
        to: NaiveDate,
        limit: usize,
        offset: usize,
    ) -> Result<Ranked, StoreError> {
        let mut values: FxHashMap<String, [i64; 3]> = FxHashMap::default();
        if from <= to {
            // the UTC days that hold the local days, with a day either side
            let first = pred(pred(from));
            let last = succ(succ(to));
            let (a, b) = (DayNumber::of(from).stored(), DayNumber::of(to).stored());
            for day in self.run_rollups(first, last)? {
                for (d, local, value, c) in &day.dims {
                    if *d != dim || *local < a || *local > b {
                        continue;
                    }
                    let x = values.entry(value.clone()).or_default();
                    for (x, dx) in x.iter_mut().zip(c) {
                        *x += dx;
                    }
                }
            }
        }
        let by = dim.sort_by();
        let mut rows: Vec<(String, Counters)> = values
            .into_iter()
            .map(|(v, c)| (v, Counters::from_signed(c)))
            .filter(|(_, c)| *c != Counters::default())
            .collect();
        let total_rows = rows.len();
        let total = rows.iter().map(|(_, c)| c.get(by)).sum();
        rows.sort_by(|a, b| b.1.get(by).cmp(&a.1.get(by)).then_with(|| a.0.cmp(&b.0)));
        Ok(Ranked {
            rows: rows.into_iter().skip(offset).take(limit).collect(),
            total_rows,
            total,
        })
    }

    /// This replay as a source of days for the filtered scan and the goal
    /// counts.
    pub(crate) fn into_source(self) -> ReplaySource<'a> {
        ReplaySource { replay: self }
    }
}

fn pred(d: NaiveDate) -> NaiveDate {
    d.pred_opt().unwrap_or(d)
}

fn succ(d: NaiveDate) -> NaiveDate {
    d.succ_opt().unwrap_or(d)
}

/// The dimension values a roll-up change about `raw` counts for, as the
/// writer expands it (`apply.rs`).
fn expand(
    group: Group,
    raw: u32,
    entry: Option<&Interned>,
) -> Result<Vec<(Dimension, String)>, StoreError> {
    let mismatch = || {
        StoreError::Decode(format!(
            "replayed value {raw} is not the kind of value its roll-up expects"
        ))
    };
    Ok(match (group, entry) {
        (Group::Plugins, _) => plugins::NAMES
            .iter()
            .filter(|(bit, _)| raw & u32::from(*bit) != 0)
            .map(|(_, n)| (Dimension::Plugin, (*n).to_owned()))
            .collect(),
        (Group::Text(dim), Some(Interned::Text(s))) => vec![(dim, s.clone())],
        (Group::Referrer, Some(Interned::Referrer(r))) => REFERRER_DIMS
            .iter()
            .zip(referrer_values(r))
            .map(|(d, v)| (*d, v.to_owned()))
            .collect(),
        (Group::Campaign, Some(Interned::Campaign(c))) => CAMPAIGN_DIMS
            .iter()
            .zip(campaign_values(c))
            .map(|(d, v)| (*d, v.to_owned()))
            .collect(),
        (Group::Device, Some(Interned::Device(d))) => {
            DEVICE_DIMS.iter().copied().zip(device_values(d)).collect()
        }
        _ => return Err(mismatch()),
    })
}

/// The interned form of `e`, as the writer makes it (`apply.rs`): empty
/// texts and an empty campaign are 0; a referrer and a device always have
/// an entry.
fn intern_event(dict: &mut MemoryDict, e: &ReplayEvent) -> Result<InternedEvent, StoreError> {
    let mut text = |s: &str| {
        if s.is_empty() {
            Ok(StringId::NONE)
        } else {
            dict.intern(text_key(s))
        }
    };
    let url = text(&e.url)?;
    let title = text(&e.title)?;
    let target = text(&e.target)?;
    let search_term = text(&e.search_term)?;
    Ok(InternedEvent {
        ts_ms: e.ts_ms,
        kind: e.kind,
        visitor_hash: e.visitor,
        pageview_id: e.pageview_id,
        url,
        title,
        referrer: dict.intern(referrer_key(&e.referrer))?,
        campaign: if e.campaign == Campaign::default() {
            StringId::NONE
        } else {
            dict.intern(campaign_key(&e.campaign))?
        },
        target,
        search_term,
        engaged_ms: e.engaged_ms,
        device: dict.intern(device_key(&e.device))?,
        plugins: e.plugins,
    })
}

fn intern_custom(dict: &mut MemoryDict, e: &ReplayEvent) -> Result<CustomRef, StoreError> {
    let Some(custom) = &e.custom else {
        return Ok(CustomRef::default());
    };
    Ok(CustomRef {
        name: dict.intern(text_key(&custom.name))?,
        props: if custom.props.is_empty() {
            StringId::NONE
        } else {
            dict.intern(props_key(&custom.props))?
        },
        revenue_cents: custom.revenue_cents,
    })
}

/// Collects roll-up changes as the writer's sink does (`apply.rs`).
#[derive(Default)]
pub(crate) struct RollupTally {
    hourly: FxHashMap<i64, [i64; Totals::FIELDS]>,
    dims: FxHashMap<(Group, DayNumber, u32), [i64; 3]>,
}

impl Sink for RollupTally {
    fn total(&mut self, hour: i64, field: TotalField, by: i64) {
        self.hourly.entry(hour).or_default()[field as usize] += by;
    }

    fn dim(&mut self, group: Group, local_day: DayNumber, raw: u32, field: CounterField, by: i64) {
        if raw == 0 {
            return;
        }
        self.dims.entry((group, local_day, raw)).or_default()[field as usize] += by;
    }
}

/// A sink that forgets (a scan needs only the days).
struct Forget;

impl Sink for Forget {
    fn total(&mut self, _: i64, _: TotalField, _: i64) {}
    fn dim(&mut self, _: Group, _: DayNumber, _: u32, _: CounterField, _: i64) {}
}

/// A [`Replay`] handing out days to the filtered scan and the goal counts.
pub(crate) struct ReplaySource<'a> {
    replay: Replay<'a>,
}

impl DaySource for ReplaySource<'_> {
    fn resolver(&self) -> Result<Resolver, StoreError> {
        Ok(Resolver::in_memory(self.replay.dict.clone()))
    }

    fn scan_days(
        &mut self,
        _site: &str,
        from_ms: i64,
        to_ms: i64,
        _cols: Cols,
        f: &mut dyn FnMut(DayEvents) -> Result<ControlFlow<()>, StoreError>,
    ) -> Result<(), StoreError> {
        if from_ms >= to_ms {
            return Ok(());
        }
        let first = schema::utc_day(from_ms);
        let last = schema::utc_day(to_ms - 1);
        // the day before only carries its state over midnight (server-
        // timed pings of a page view seen before it)
        if first > NaiveDate::MIN {
            self.replay.day(pred(first), (0, 0), &mut Forget)?;
        }
        let mut day = first;
        loop {
            let events = self.replay.day(day, (from_ms, to_ms), &mut Forget)?;
            if f(events)?.is_break() || day >= last {
                return Ok(());
            }
            day = succ(day);
        }
    }
}

/// Answers a filtered query from a replay (see [`super::scan::filtered`]).
pub fn filtered(
    replay: Replay<'_>,
    query: &crate::storage::FilteredQuery<'_>,
) -> Result<crate::storage::FilteredAnswer, StoreError> {
    super::scan::filtered_from(replay.into_source(), query)
}

/// Answers a goal query from a replay (see
/// [`super::conversions::conversions`]).
pub fn conversions(
    replay: Replay<'_>,
    query: &crate::storage::ConversionQuery<'_>,
) -> Result<crate::storage::Conversions, StoreError> {
    super::conversions::conversions_from(replay.into_source(), query)
}
