//! Writing one batch of events inside the writer's transaction: intern
//! their strings, run them through the per-day state machine
//! ([`super::state`]), append them to their day's block, and hand back the
//! resulting roll-up changes (resolved to roll-up value ids), which the
//! writer holds until it folds them ([`super::open_rollups`]). The same
//! state machine replays, at start-up, the events a crash left unfolded
//! ([`WriterState::recover`]).
//!
//! [`WriterState`] is everything the writer thread keeps in memory between
//! batches (day states, dictionary caches). It holds only what is already
//! committed plus the batch in progress, so whenever a batch fails the
//! writer throws it away, and after a maintenance command (`super::commands`)
//! it forgets what that command changed; either is rebuilt from the file on
//! demand.

use super::ids::{DayNumber, DimValueId, StringId};
use std::collections::{HashMap, HashSet};

use chrono::TimeZone;
use chrono_tz::Tz;
use redb::{ReadableTable, Table, TableHandle, WriteTransaction};

use crate::model::{plugins, Event};

use super::codec::{
    campaign_key, device_key, props_key, referrer_key, text_key, BlockPlace, CustomRef, Interned,
};
use super::dict::{resolve_raw, DimInterner, DimTables, RawInterner, RawTables};
use super::open_rollups::RollupDelta;
use super::rollup::{
    add_signed, campaign_values, device_values, referrer_values, Dimension, CAMPAIGN_DIMS,
    DEVICE_DIMS, REFERRER_DIMS,
};
use super::schema::{
    self, BlockKey, DAY_COUNTS, DIM_VALUES, DIM_VALUE_IDS, META, META_NEXT_DIM_VALUE,
    META_NEXT_STRING, STRINGS, STRING_IDS,
};
use super::state::{CounterField, DayState, Group, InternedEvent, Sink, TotalField};

const _: () = assert!(CounterField::Pageviews as usize == 0 && CounterField::Events as usize == 2);
use super::StoreError;

/// Day states kept in memory beyond the two newest days of each site.
const MAX_DAYS_IN_MEMORY: usize = 8;

/// Dimension values a raw dictionary entry stands for.
#[derive(Clone, Copy, Debug)]
enum Derived {
    Text(DimValueId),
    Referrer([DimValueId; 3]),
    Campaign([DimValueId; 3]),
    Device([DimValueId; 8]),
}

/// Maps timestamps to a time zone's day numbers, remembering the last
/// quarter hour it converted: every UTC offset in use is a multiple of 15
/// minutes, so all of a quarter hour falls on one local day, and events
/// come in time order, so one conversion serves many of them.
pub(crate) struct LocalDays {
    tz: Tz,
    last: std::cell::Cell<(i64, DayNumber)>,
}

const QUARTER_HOUR_MS: i64 = 15 * 60 * 1000;

impl LocalDays {
    pub(crate) fn new(tz: Tz) -> Self {
        LocalDays {
            tz,
            last: std::cell::Cell::new((i64::MIN, DayNumber::default())),
        }
    }

    pub(crate) fn day(&self, ts_ms: i64) -> DayNumber {
        let slot = ts_ms.div_euclid(QUARTER_HOUR_MS);
        let (s, d) = self.last.get();
        if s == slot {
            return d;
        }
        let d = local_day(self.tz, ts_ms);
        self.last.set((slot, d));
        d
    }
}

/// The local day number of `ts_ms` in `tz`.
pub(crate) fn local_day(tz: Tz, ts_ms: i64) -> DayNumber {
    match tz.timestamp_millis_opt(ts_ms).single() {
        Some(t) => DayNumber::of(t.date_naive()),
        None => DayNumber::of(schema::utc_day(ts_ms)),
    }
}

/// What a batch leaves for the next fold: its roll-up changes and the
/// day counts they bring the roll-ups to.
pub(crate) struct BatchRollups {
    pub delta: RollupDelta,
    pub counts: Vec<(DayNumber, String, u64)>,
}

/// Roll-up changes of one batch, keyed by raw dictionary ids.
#[derive(Default)]
struct Deltas {
    hourly: HashMap<(u16, i64), [i64; 9]>,
    dims: HashMap<(u16, Group, DayNumber, u32), [i64; 3]>,
}

struct SiteSink<'a> {
    site: u16,
    deltas: &'a mut Deltas,
}

impl Sink for SiteSink<'_> {
    fn total(&mut self, hour: i64, field: TotalField, by: i64) {
        self.deltas.hourly.entry((self.site, hour)).or_default()[field as usize] += by;
    }

    fn dim(&mut self, group: Group, local_day: DayNumber, raw: u32, field: CounterField, by: i64) {
        if raw == 0 {
            return;
        }
        self.deltas
            .dims
            .entry((self.site, group, local_day, raw))
            .or_default()[field as usize] += by;
    }
}

/// The day tables of one batch: opened once each, and which of them
/// existed before the batch (listed only when a day state has to be built,
/// rare once today and yesterday are in memory).
struct DayTables<'txn> {
    txn: &'txn WriteTransaction,
    open: HashMap<DayNumber, Table<'txn, BlockKey<'static>, &'static [u8]>>,
    listed: Option<HashSet<String>>,
}

impl<'txn> DayTables<'txn> {
    fn new(txn: &'txn WriteTransaction) -> Self {
        DayTables {
            txn,
            open: HashMap::new(),
            listed: None,
        }
    }

    /// True when the table of UTC day `day` holds (or held before this
    /// batch) events.
    fn existed(&mut self, day: DayNumber) -> Result<bool, StoreError> {
        if self.open.contains_key(&day) {
            return Ok(true);
        }
        if self.listed.is_none() {
            self.listed = Some(
                self.txn
                    .list_tables()?
                    .map(|t| t.name().to_owned())
                    .collect(),
            );
        }
        let name = schema::day_table_name(schema::EVENTS_PREFIX, day.date());
        Ok(self.listed.as_ref().is_some_and(|l| l.contains(&name)))
    }

    /// The table of UTC day `day`, opened (created) on first use.
    fn open(
        &mut self,
        day: DayNumber,
    ) -> Result<&mut Table<'txn, BlockKey<'static>, &'static [u8]>, StoreError> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.open.entry(day) {
            let name = schema::day_table_name(schema::EVENTS_PREFIX, day.date());
            slot.insert(self.txn.open_table(schema::events_table(&name))?);
        }
        self.open
            .get_mut(&day)
            .ok_or(StoreError::Invariant("day table opened above"))
    }
}

/// The writer thread's memory. See the module comment.
#[derive(Default)]
pub(crate) struct WriterState {
    ready: bool,
    days: HashMap<(u16, DayNumber), DayState>,
    tick: u64,
    sites: Vec<String>,
    site_ids: HashMap<String, u16>,
    raw: RawInterner,
    dims: DimInterner,
    derived: HashMap<StringId, Derived>,
    /// While unused roll-up values are being deleted: the values written
    /// into roll-up rows since the deletion's snapshot (kept by it).
    used_values: Option<HashSet<DimValueId>>,
}

impl WriterState {
    /// Forgets everything; it is rebuilt from the file when needed.
    pub(crate) fn reset(&mut self) {
        // what a deletion in progress must keep is not rebuilt from the file
        let used_values = self.used_values.take();
        *self = WriterState::default();
        self.used_values = used_values;
    }

    /// Forgets the states of UTC day `day` (dropped or rewritten); the
    /// other days, today's among them, stay.
    pub(crate) fn forget_day(&mut self, day: DayNumber) {
        self.days.retain(|(_, d), _| *d != day);
    }

    /// Forgets cached dictionary string ids (some were deleted).
    pub(crate) fn forget_strings(&mut self) {
        self.raw.forget_cached();
        // raw id -> value ids: the raw side may be gone
        self.derived.clear();
    }

    /// Forgets the cached ids of the dictionary strings `gone` (deleted).
    pub(crate) fn forget_deleted_strings(&mut self, gone: &[(StringId, Vec<u8>)]) {
        self.raw
            .forget_keys(gone.iter().map(|(_, key)| key.as_slice()));
        for (id, _) in gone {
            self.derived.remove(id);
        }
    }

    /// Forgets the roll-up values `gone` (deleted): their cached ids and
    /// every cached derivation that leads to one of them.
    pub(crate) fn forget_deleted_rollup_values(&mut self, gone: &[(DimValueId, String)]) {
        if gone.is_empty() {
            return;
        }
        self.dims
            .forget_values(gone.iter().map(|(_, v)| v.as_str()));
        let ids: HashSet<DimValueId> = gone.iter().map(|(id, _)| *id).collect();
        self.derived.retain(|_, d| {
            let leads_to: &[DimValueId] = match d {
                Derived::Text(id) => std::slice::from_ref(id),
                Derived::Referrer(v) | Derived::Campaign(v) => v,
                Derived::Device(v) => v,
            };
            !leads_to.iter().any(|id| ids.contains(id))
        });
    }

    /// Starts (afresh) or stops noting the roll-up values written into rows.
    pub(crate) fn track_rollup_values(&mut self, on: bool) {
        self.used_values = on.then(HashSet::new);
    }

    /// Notes roll-up values written into rows outside a batch.
    pub(crate) fn note_rollup_values_used(&mut self, ids: impl IntoIterator<Item = DimValueId>) {
        if let Some(used) = &mut self.used_values {
            used.extend(ids);
        }
    }

    /// The roll-up values written into rows since tracking started.
    pub(crate) fn rollup_values_used_since(&self) -> &HashSet<DimValueId> {
        static NONE: std::sync::OnceLock<HashSet<DimValueId>> = std::sync::OnceLock::new();
        self.used_values
            .as_ref()
            .unwrap_or_else(|| NONE.get_or_init(HashSet::new))
    }

    /// Gives `values` roll-up value ids (existing or new) in one durable
    /// transaction of their own, through the same interner as batches so
    /// that no id is handed out twice.
    pub(crate) fn intern_rollup_values(
        &mut self,
        store: &super::Store,
        values: &[String],
    ) -> Result<Vec<DimValueId>, StoreError> {
        let db = store.db()?;
        let mut txn = db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        self.init(&txn)?;
        let mut ids = Vec::with_capacity(values.len());
        {
            let mut dim_t = DimTables {
                values: txn.open_table(DIM_VALUES)?,
                ids: txn.open_table(DIM_VALUE_IDS)?,
            };
            for value in values {
                ids.push(self.dims.intern(&mut dim_t, value)?);
            }
            if let Some(n) = self.dims.take_next() {
                txn.open_table(META)?.insert(META_NEXT_DIM_VALUE, n)?;
            }
        }
        // the steps after this one look the new values up by their text
        super::dict::index_new_entries(&txn)?;
        txn.commit()?;
        self.indexed();
        Ok(ids)
    }

    /// Forgets cached roll-up value ids (some were deleted, or maintenance
    /// handed out new ones) and reads the dictionaries' next free ids again
    /// before the next batch, so no id is handed out twice.
    pub(crate) fn forget_rollup_values(&mut self) {
        self.dims.forget_cached();
        self.forget_strings();
        self.ready = false;
    }

    fn init(&mut self, txn: &WriteTransaction) -> Result<(), StoreError> {
        if self.ready {
            return Ok(());
        }
        // index rows (and next ids) a crash or a failed batch left in
        // memory only
        let indexed = super::dict::index_new_entries(txn)?;
        if indexed > 0 {
            tracing::info!(
                entries = indexed,
                "dictionary index rows of entries made since the last fold written"
            );
        }
        let meta = txn.open_table(META)?;
        let get =
            |k: &str| -> Result<u32, StoreError> { Ok(meta.get(k)?.map_or(1, |v| v.value())) };
        self.raw = RawInterner::new(get(META_NEXT_STRING)?);
        self.dims = DimInterner::new(get(META_NEXT_DIM_VALUE)?);
        self.ready = true;
        Ok(())
    }

    /// True when dictionary entries wait for their index rows (written by
    /// the next fold, [`super::dict::index_new_entries`]).
    pub(crate) fn has_unindexed(&self) -> bool {
        self.raw.has_unindexed() || self.dims.has_unindexed()
    }

    /// A fold wrote the index rows of every dictionary entry.
    pub(crate) fn indexed(&mut self) {
        self.raw.indexed();
        self.dims.indexed();
    }

    fn site_id(&mut self, site: &str) -> Result<u16, StoreError> {
        if let Some(&id) = self.site_ids.get(site) {
            return Ok(id);
        }
        let id = u16::try_from(self.sites.len())
            .map_err(|_| StoreError::Decode("more than 65,535 sites in one writer".into()))?;
        self.sites.push(site.to_owned());
        self.site_ids.insert(site.to_owned(), id);
        Ok(id)
    }

    /// Brings the roll-up tables up to the stored events after a crash:
    /// the events of each (UTC day, site) past its watermark (committed,
    /// not folded when the process died) are replayed through the visit
    /// engine, from the day's blocks, and what they add is written with
    /// new watermarks in one durable transaction. Returns the events
    /// replayed. Runs on the writer thread before the first batch.
    pub(crate) fn recover(
        &mut self,
        store: &super::Store,
        opts: &super::WriterOptions,
    ) -> Result<u64, StoreError> {
        let db = store.db()?;
        let mut txn = db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        self.init(&txn)?;
        let todo = super::open_rollups::unfolded_days(&txn)?;
        let mut replayed = 0u64;
        let mut deltas = Deltas::default();
        let mut marks = super::open_rollups::Watermarks::new();
        {
            let mut tables = DayTables::new(&txn);
            for (day, site_name, folded, count) in &todo {
                let site = self.site_id(site_name)?;
                let tz = opts
                    .site_timezones
                    .get(site_name)
                    .copied()
                    .unwrap_or(Tz::UTC);
                let days = LocalDays::new(tz);
                let local = |ts: i64| days.day(ts);
                // the day before, whole, for visits across midnight
                let prev = if tables.existed(day.previous())? {
                    let t = tables.open(day.previous())?;
                    Some(DayState::load(
                        &*t,
                        site_name,
                        None,
                        &local,
                        opts.max_engaged_ms,
                    )?)
                } else {
                    None
                };
                if !tables.existed(*day)? {
                    continue;
                }
                let t = tables.open(*day)?;
                DayState::replay(
                    &*t,
                    site_name,
                    prev.as_ref(),
                    &local,
                    opts.max_engaged_ms,
                    (
                        *folded,
                        &mut SiteSink {
                            site,
                            deltas: &mut deltas,
                        },
                    ),
                )?;
                replayed += count - folded;
                marks.insert((*day, site_name.clone()), *count);
            }
        }
        if todo.is_empty() {
            // nothing to replay; a store from before watermarks got them
            txn.commit()?;
            return Ok(0);
        }
        let delta = {
            let raw_t = RawTables {
                strings: txn.open_table(STRINGS)?,
                ids: txn.open_table(STRING_IDS)?,
            };
            let mut dim_t = DimTables {
                values: txn.open_table(DIM_VALUES)?,
                ids: txn.open_table(DIM_VALUE_IDS)?,
            };
            self.resolve_deltas(deltas, &raw_t, &mut dim_t)?
        };
        delta.write(&txn)?;
        super::open_rollups::write_watermarks(&txn, &marks)?;
        if let Some(n) = self.dims.take_next() {
            txn.open_table(META)?.insert(META_NEXT_DIM_VALUE, n)?;
        }
        txn.commit()?;
        Ok(replayed)
    }

    /// Rebuilds the states of yesterday and today (UTC) for every
    /// configured site ahead of the first batch, so that the first hits
    /// after a start do not wait for it.
    pub(crate) fn preload(
        &mut self,
        snap: &super::Snapshot,
        opts: &super::WriterOptions,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.reset();
        let today = DayNumber::of(schema::utc_day(now_ms));
        let mut sites: Vec<&String> = opts.site_timezones.keys().collect();
        sites.sort();
        for site in sites {
            let id = self.site_id(site)?;
            let tz = opts.site_timezones.get(site).copied().unwrap_or(Tz::UTC);
            let days = LocalDays::new(tz);
            let local = |ts: i64| days.day(ts);
            for d in [today.previous(), today] {
                let name = schema::day_table_name(schema::EVENTS_PREFIX, d.date());
                let Some(t) = super::open_optional(&snap.txn, schema::events_table(&name))? else {
                    continue;
                };
                let prev = if d == today {
                    self.days.get(&(id, d.previous()))
                } else {
                    None
                };
                let st = DayState::load(&t, site, prev, &local, opts.max_engaged_ms)?;
                self.days.insert((id, d), st);
            }
        }
        Ok(())
    }

    /// Writes `events` (any order; processed in time order) in `txn`:
    /// each event's strings interned, its day's state stepped (roll-up
    /// changes collected in [`Deltas`]) and the event appended to the
    /// day's tail block; then each tail's new events (a tail piece) and
    /// the day counts written. The
    /// roll-up changes are returned, not written: once `txn` commits they
    /// go to [`super::open_rollups::OpenRollups`] until the next fold.
    pub(crate) fn apply_batch(
        &mut self,
        txn: &WriteTransaction,
        mut events: Vec<&Event>,
        opts: &super::WriterOptions,
    ) -> Result<BatchRollups, StoreError> {
        self.init(txn)?;
        let mut raw_t = RawTables {
            strings: txn.open_table(STRINGS)?,
            ids: txn.open_table(STRING_IDS)?,
        };
        events.sort_by_key(|e| e.ts_ms);

        let mut deltas = Deltas::default();
        let mut local_days: HashMap<&'static str, LocalDays> = HashMap::new();
        let mut tables = DayTables::new(txn);
        let mut touched: Vec<(u16, DayNumber)> = Vec::new();
        for e in events {
            let site = self.site_id(&e.site)?;
            let day = DayNumber::of(schema::utc_day(e.ts_ms));
            let tz = opts.site_timezones.get(&e.site).copied().unwrap_or(Tz::UTC);
            let days = local_days
                .entry(tz.name())
                .or_insert_with(|| LocalDays::new(tz));
            let local = |ts: i64| days.day(ts);
            self.ensure_day_states(
                &mut tables,
                (site, &e.site),
                day,
                &local,
                opts.max_engaged_ms,
            )?;
            let input = self.intern(&mut raw_t, e)?;
            let custom = self.intern_custom(&mut raw_t, e)?;
            let mut cur = self
                .days
                .remove(&(site, day))
                .ok_or(StoreError::Invariant("day state made above"))?;
            let prev = self.days.get(&(site, day.previous()));
            let step = cur.step(
                prev,
                &input,
                &local,
                opts.max_engaged_ms,
                &mut SiteSink {
                    site,
                    deltas: &mut deltas,
                },
            );
            let raw = input.stored(&step, e.search_results, custom);
            let full = cur.push(&raw, &step, &input, &e.anon_ip.to_bytes());
            self.days.insert((site, day), cur);
            if let Some(full) = full {
                let t = tables.open(day)?;
                t.insert((e.site.as_str(), full.no), full.block.encode().as_slice())?;
                for first_index in full.pieces {
                    if let Some(key) = BlockPlace::piece_key(full.no, first_index) {
                        t.remove((e.site.as_str(), key))?;
                    }
                }
            }
            touched.push((site, day));
        }
        let counts = self.write_tails_and_counts(txn, &mut tables, touched)?;
        drop(tables);

        // ---- roll-ups: resolved to value ids (new values interned now,
        // with the batch), written by the next fold
        let mut dim_t = DimTables {
            values: txn.open_table(DIM_VALUES)?,
            ids: txn.open_table(DIM_VALUE_IDS)?,
        };
        let delta = self.resolve_deltas(deltas, &raw_t, &mut dim_t)?;
        drop(raw_t);
        drop(dim_t);
        // the dictionaries' next ids are not written here: the new
        // entries themselves say how far the ids went, and the next fold
        // (or start) records it (`super::dict::index_new_entries`)
        self.evict();
        Ok(BatchRollups { delta, counts })
    }

    /// Makes sure the states of `day` and of the day before (for visits
    /// across midnight) of `site` are in memory, rebuilding them from
    /// their blocks when the day has any.
    fn ensure_day_states(
        &mut self,
        tables: &mut DayTables<'_>,
        (site, site_name): (u16, &str),
        day: DayNumber,
        local: &dyn Fn(i64) -> DayNumber,
        max_engaged_ms: u32,
    ) -> Result<(), StoreError> {
        self.tick += 1;
        for d in [day.previous(), day] {
            if let Some(st) = self.days.get_mut(&(site, d)) {
                st.last_use = self.tick;
                continue;
            }
            let present = tables.existed(d)?;
            if d != day && !present {
                continue;
            }
            let t = tables.open(d)?;
            let mut state = if present {
                let started = std::time::Instant::now();
                let prev = if d == day {
                    self.days.get(&(site, d.previous()))
                } else {
                    None
                };
                let st = DayState::load(&*t, site_name, prev, local, max_engaged_ms)?;
                tracing::debug!(
                    site = %site_name,
                    day = %d.date(),
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "writer state of a day rebuilt from its blocks"
                );
                st
            } else {
                DayState::empty()
            };
            state.last_use = self.tick;
            self.days.insert((site, d), state);
        }
        tables.open(day)?;
        Ok(())
    }

    /// Interns the strings of `e` (0 for empty ones): the event as the
    /// day state sees it.
    fn intern(
        &mut self,
        raw_t: &mut RawTables<'_>,
        e: &Event,
    ) -> Result<InternedEvent, StoreError> {
        let ts = e.ts_ms;
        let mut intern = |key: Vec<u8>| self.raw.intern(raw_t, key, ts);
        let text = |s: &str, intern: &mut dyn FnMut(Vec<u8>) -> Result<StringId, StoreError>| {
            if s.is_empty() {
                Ok(StringId::NONE)
            } else {
                intern(text_key(s))
            }
        };
        Ok(InternedEvent {
            ts_ms: e.ts_ms,
            kind: e.kind,
            visitor_hash: e.visitor,
            pageview_id: e.pageview_id,
            url: text(&e.url, &mut intern)?,
            title: text(&e.title, &mut intern)?,
            referrer: intern(referrer_key(&e.referrer))?,
            campaign: if e.campaign == Default::default() {
                StringId::NONE
            } else {
                intern(campaign_key(&e.campaign))?
            },
            target: text(&e.target, &mut intern)?,
            search_term: text(&e.search_term, &mut intern)?,
            engaged_ms: e.engaged_ms,
            device: intern(device_key(&e.device))?,
            plugins: e.plugins,
        })
    }

    /// Interns a custom event's name and properties (zero for other
    /// kinds): dictionary entries that expire with their last use like
    /// every other visitor text.
    fn intern_custom(
        &mut self,
        raw_t: &mut RawTables<'_>,
        e: &Event,
    ) -> Result<CustomRef, StoreError> {
        let Some(custom) = &e.custom else {
            return Ok(CustomRef::default());
        };
        Ok(CustomRef {
            name: self.raw.intern(raw_t, text_key(&custom.name), e.ts_ms)?,
            props: if custom.props.is_empty() {
                StringId::NONE
            } else {
                self.raw.intern(raw_t, props_key(&custom.props), e.ts_ms)?
            },
            revenue_cents: custom.revenue_cents,
        })
    }

    /// Writes the events each day `touched` got since its last write (a
    /// tail piece) and its event count.
    /// Returns the new count of each (UTC day, site) that got events.
    fn write_tails_and_counts(
        &mut self,
        txn: &WriteTransaction,
        tables: &mut DayTables<'_>,
        mut touched: Vec<(u16, DayNumber)>,
    ) -> Result<Vec<(DayNumber, String, u64)>, StoreError> {
        touched.sort_unstable();
        touched.dedup();
        let mut out = Vec::with_capacity(touched.len());
        let mut counts = txn.open_table(DAY_COUNTS)?;
        for key in &touched {
            let site = &self.sites[usize::from(key.0)];
            let Some(st) = self.days.get_mut(key) else {
                continue;
            };
            if !st.fresh.is_empty() {
                // only the events this batch added, as a piece of the
                // block still filling (a block number too large for a
                // piece's key is written whole, as blocks were before)
                let first_index = u32::try_from(st.tail_stored()).unwrap_or(u32::MAX);
                let t = tables.open(key.1)?;
                match BlockPlace::piece_key(st.tail_no, first_index) {
                    Some(piece) => {
                        t.insert((site.as_str(), piece), st.fresh.encode().as_slice())?;
                        st.fresh_stored(Some(first_index));
                    }
                    None => {
                        t.insert((site.as_str(), st.tail_no), st.tail.encode().as_slice())?;
                        st.fresh_stored(None);
                    }
                }
            }
            if st.added > 0 {
                let k = (key.1, site.as_str());
                let old = counts.get(k)?.map_or(0, |v| v.value());
                counts.insert(k, old + st.added)?;
                out.push((key.1, site.clone(), old + st.added));
                st.added = 0;
            }
        }
        Ok(out)
    }

    /// Drops day states that are neither among the newest two days of
    /// their site nor recently used, to bound memory.
    fn evict(&mut self) {
        if self.days.len() <= MAX_DAYS_IN_MEMORY {
            return;
        }
        let mut newest: HashMap<u16, DayNumber> = HashMap::new();
        for &(s, d) in self.days.keys() {
            let n = newest.entry(s).or_insert(d);
            *n = (*n).max(d);
        }
        let mut keys: Vec<((u16, DayNumber), u64)> = self
            .days
            .iter()
            .filter(|((s, d), _)| *d < newest[s].previous())
            .map(|(k, st)| (*k, st.last_use))
            .collect();
        keys.sort_by_key(|(_, t)| *t);
        let excess = self.days.len().saturating_sub(MAX_DAYS_IN_MEMORY);
        for (k, _) in keys.into_iter().take(excess) {
            self.days.remove(&k);
        }
    }

    fn derive(
        &mut self,
        raw_t: &RawTables<'_>,
        dim_t: &mut DimTables<'_>,
        raw: StringId,
    ) -> Result<Derived, StoreError> {
        if let Some(d) = self.derived.get(&raw) {
            return Ok(*d);
        }
        let mut i = |s: &str| self.dims.intern(dim_t, s);
        let d = match resolve_raw(&raw_t.strings, raw)? {
            Interned::Text(s) => Derived::Text(i(&s)?),
            Interned::Referrer(r) => {
                let [a, b, c] = referrer_values(&r);
                Derived::Referrer([i(a)?, i(b)?, i(c)?])
            }
            Interned::Campaign(c) => {
                let [a, b, c] = campaign_values(&c);
                Derived::Campaign([i(a)?, i(b)?, i(c)?])
            }
            Interned::Device(d) => {
                let v = device_values(&d);
                let mut ids = [DimValueId::NONE; 8];
                for (id, s) in ids.iter_mut().zip(&v) {
                    *id = i(s)?;
                }
                Derived::Device(ids)
            }
            Interned::Props(_) => {
                return Err(StoreError::Invariant(
                    "custom-event properties have no roll-up",
                ))
            }
        };
        if self.derived.len() >= super::dict::CACHE_LIMIT {
            self.derived.clear();
        }
        self.derived.insert(raw, d);
        Ok(d)
    }

    /// Turns the changes of a batch (keyed by raw dictionary ids) into
    /// roll-up rows (keyed by roll-up value ids, new values interned in
    /// `dim_t`); what a fold later adds to `hourly` and `dims_open`.
    fn resolve_deltas(
        &mut self,
        deltas: Deltas,
        raw_t: &RawTables<'_>,
        dim_t: &mut DimTables<'_>,
    ) -> Result<RollupDelta, StoreError> {
        let mut out = RollupDelta::default();
        for ((site, hour), d) in deltas.hourly {
            let x = out
                .site(&self.sites[usize::from(site)])
                .hourly
                .entry(hour)
                .or_default();
            for (a, b) in x.iter_mut().zip(d) {
                *a += b;
            }
        }

        let mut rows: HashMap<(u16, Dimension, DayNumber, DimValueId), [i64; 3]> = HashMap::new();
        let mismatch = |raw: u32| {
            StoreError::Decode(format!(
                "dictionary entry {raw} is not the kind of value its roll-up expects"
            ))
        };
        for ((site, group, day, raw), d) in deltas.dims {
            let mut add = |dim: Dimension, id: DimValueId| {
                if !id.is_none() {
                    let r = rows.entry((site, dim, day, id)).or_default();
                    for (x, dx) in r.iter_mut().zip(d) {
                        *x += dx;
                    }
                }
            };
            match group {
                Group::Plugins => {
                    for (bit, name) in plugins::NAMES {
                        if raw & u32::from(bit) != 0 {
                            let id = self.dims.intern(dim_t, name)?;
                            add(Dimension::Plugin, id);
                        }
                    }
                }
                Group::Text(dim) => match self.derive(raw_t, dim_t, StringId::from_stored(raw))? {
                    Derived::Text(id) => add(dim, id),
                    _ => return Err(mismatch(raw)),
                },
                Group::Referrer => match self.derive(raw_t, dim_t, StringId::from_stored(raw))? {
                    Derived::Referrer(ids) => REFERRER_DIMS
                        .iter()
                        .zip(ids)
                        .for_each(|(d, id)| add(*d, id)),
                    _ => return Err(mismatch(raw)),
                },
                Group::Campaign => match self.derive(raw_t, dim_t, StringId::from_stored(raw))? {
                    Derived::Campaign(ids) => CAMPAIGN_DIMS
                        .iter()
                        .zip(ids)
                        .for_each(|(d, id)| add(*d, id)),
                    _ => return Err(mismatch(raw)),
                },
                Group::Device => match self.derive(raw_t, dim_t, StringId::from_stored(raw))? {
                    Derived::Device(ids) => {
                        DEVICE_DIMS.iter().zip(ids).for_each(|(d, id)| add(*d, id))
                    }
                    _ => return Err(mismatch(raw)),
                },
            }
        }
        for ((site, dim, day, id), d) in rows {
            if d == [0; 3] {
                continue;
            }
            if let Some(used) = &mut self.used_values {
                used.insert(id);
            }
            let x = out
                .site(&self.sites[usize::from(site)])
                .dims
                .entry((dim as u8, day, id))
                .or_default();
            add_signed(x, d);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{test_event, Store, StoreOptions, Writer, WriterOptions};
    use redb::{ReadableDatabase, ReadableTableMetadata};

    /// Commits `events` through `state` in one transaction.
    fn commit(store: &Store, state: &mut WriterState, events: &[Event]) {
        let db = store.db().unwrap();
        let txn = db.begin_write().unwrap();
        state
            .apply_batch(&txn, events.iter().collect(), &WriterOptions::default())
            .unwrap();
        txn.commit().unwrap();
    }

    /// (entries of `strings`, rows of `string_ids`, entries of
    /// `dim_values`, rows of `dim_value_ids`).
    fn dictionary_sizes(store: &Store) -> (u64, u64, u64, u64) {
        let txn = store.db().unwrap().begin_read().unwrap();
        (
            txn.open_table(STRINGS).unwrap().len().unwrap(),
            txn.open_table(STRING_IDS).unwrap().len().unwrap(),
            txn.open_table(DIM_VALUES).unwrap().len().unwrap(),
            txn.open_table(DIM_VALUE_IDS).unwrap().len().unwrap(),
        )
    }

    /// A commit writes new dictionary entries but not their index rows;
    /// a writer that starts after a crash (fresh memory) writes those rows
    /// from the entries before it interns anything, so a string seen
    /// again keeps its id instead of getting a second entry.
    #[test]
    fn index_rows_lost_with_memory_are_written_when_the_writer_starts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db"), &StoreOptions::default()).unwrap();
        let mut first = WriterState::default();
        commit(&store, &mut first, &[test_event("s", 5_000, 1)]);
        let (strings, string_ids, values, value_ids) = dictionary_sizes(&store);
        assert!(strings > 0 && values > 0);
        assert_eq!((string_ids, value_ids), (0, 0), "index rows wait");

        // the process died: its memory is gone
        let mut second = WriterState::default();
        commit(&store, &mut second, &[test_event("s", 6_000, 1)]);
        assert_eq!(
            dictionary_sizes(&store),
            (strings, strings, values, values),
            "same strings again: no new entry, every entry indexed"
        );
        // new strings after restarts without a fold get ids of their own:
        // the commits do not record the next id, the entries say it
        let with_url = |ts: i64, url: &str| {
            let mut e = test_event("s", ts, 1);
            e.url = url.into();
            e
        };
        commit(
            &store,
            &mut second,
            &[with_url(7_000, "https://example.org/a")],
        );
        let mut third = WriterState::default();
        commit(
            &store,
            &mut third,
            &[with_url(8_000, "https://example.org/b")],
        );
        let (s3, ids3, _, _) = dictionary_sizes(&store);
        assert_eq!((s3, ids3), (strings + 2, strings + 1));
        let mut urls = Vec::new();
        store
            .scan_events("s", 0, i64::MAX / 2, |e| {
                urls.push(e.url);
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
        let first = test_event("s", 0, 1).url;
        assert_eq!(
            urls,
            vec![
                first.clone(),
                first,
                "https://example.org/a".into(),
                "https://example.org/b".into()
            ]
        );
    }

    /// The fold writes the index rows of the entries made since the last
    /// one, and a writer that goes on interning finds them there.
    #[test]
    fn a_fold_writes_the_index_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(
            Store::open(dir.path().join("db"), &StoreOptions::default()).unwrap(),
        );
        let opts = WriterOptions {
            rollup_fold_interval: std::time::Duration::from_secs(3600),
            ..WriterOptions::default()
        };
        let writer = Writer::spawn(store.clone(), opts).unwrap();
        let write = |e| {
            let rx = writer.submit(vec![e]).unwrap();
            rx.blocking_recv().unwrap().unwrap();
        };
        write(test_event("s", 5_000, 1));
        let (strings, string_ids, values, value_ids) = dictionary_sizes(&store);
        assert_eq!((string_ids, value_ids), (0, 0), "index rows wait");
        writer.fold_held().unwrap();
        assert_eq!(dictionary_sizes(&store), (strings, strings, values, values));
        write(test_event("s", 6_000, 2));
        writer.shutdown_blocking().unwrap();
        assert_eq!(dictionary_sizes(&store), (strings, strings, values, values));
    }

    #[test]
    fn remembered_local_days_equal_direct_conversions() {
        // across a DST change in Berlin and Kathmandu's +05:45
        for tz in [
            chrono_tz::Europe::Berlin,
            chrono_tz::Asia::Kathmandu,
            Tz::UTC,
        ] {
            let days = LocalDays::new(tz);
            let start = 1_774_800_000_000i64; // 2026-03-29 around the change
            for i in 0..20_000 {
                let ts = start + i * 61_000;
                assert_eq!(days.day(ts), local_day(tz, ts), "{tz} {ts}");
            }
        }
    }
}
