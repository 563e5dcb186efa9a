//! The embedded store: raw events in day partitions, roll-ups, and the
//! queries the reporting side needs, on one redb file.
//!
//! [`Store`] opens the file (checking the schema version so an incompatible
//! file is refused, never misread) and answers queries in short read
//! transactions. Every write to events, dictionaries and roll-ups goes
//! through the single [`Writer`] thread: batches of events (group commit)
//! and maintenance (the retention sweeper's deletions, sealing, vacuum)
//! arrive there as commands ([`commands`]), so the thread that keeps the
//! writer's memory is the one that changes the file, and it forgets what it
//! changed itself. See [`schema`] for the layout, [`codec`] for the block
//! format, [`rollup`] for what the counters mean; the rest of the program
//! reaches all of it through [`crate::storage`].

mod apply;
mod audit_log;
pub mod codec;
mod commands;
pub(crate) mod conversions;
pub mod dict;
pub mod ids;
mod open_rollups;
mod reopen;
pub mod replay;
pub mod rollup;
pub mod scan;
pub mod schema;
mod seal;
mod state;
pub mod sweep;
mod vacuum;
mod visits;
pub mod writer;

use self::ids::{DayNumber, DimValueId, StringId};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use chrono::NaiveDate;
use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableHandle,
};
use rustc_hash::FxHashMap;

pub use codec::{Block, Col, Cols, CustomRef, Interned, RawEvent, StoredEvent};
pub use rollup::{Counters, Dimension, SortBy, Totals, UnknownDimension};
pub use sweep::{ExpiryPlan, RollupExpiry};
pub use vacuum::{remove_leftover_copy, VacuumReport};
pub use writer::{Ack, SubmitError, WriteError, Writer, WriterHandle, WriterOptions};

use schema::{
    DAY_COUNTS, DIMS_OPEN, DIMS_SEALED, DIM_VALUES, HOURLY, META, META_SCHEMA_VERSION,
    SCHEMA_VERSION, SCHEMA_VERSION_V2, SCHEMA_VERSION_V3,
};

/// Errors at the store's boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] redb::Error),
    #[error("{}", schema_version_message(*found, *expected))]
    SchemaVersion { found: u32, expected: u32 },
    #[error("file holds tables but no sparsam schema version; refusing to open it")]
    NotAStore,
    #[error("corrupt stored value: {0}")]
    Decode(String),
    #[error("write batch failed: {0}")]
    Batch(#[source] Arc<StoreError>),
    #[error("could not start the store writer thread: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("store writer thread panicked")]
    WriterPanicked,
    /// The database is being reopened after an I/O failure (see `reopen`).
    #[error("store is unavailable while it is reopened after an I/O error")]
    Unavailable,
    /// The writer thread has stopped and takes no more commands.
    #[error("store writer is closed")]
    WriterClosed,
    /// Something the code itself guarantees did not hold (a bug).
    #[error("internal invariant broken: {0}")]
    Invariant(&'static str),
    /// Raw events replayed from another engine could not be read
    /// (`transient`: the other engine cannot be reached for now).
    #[error("reading raw events to replay: {message}")]
    Replay { message: String, transient: bool },
}

/// Why a file with another schema version is refused, and what to do.
/// There is no automatic migration: a release that changes the layout bumps
/// [`SCHEMA_VERSION`] and must ship its own migration if it wants to read
/// older files; until then, refusing is the only way never to misread one.
fn schema_version_message(found: u32, expected: u32) -> String {
    if found < expected {
        format!(
            "store schema version {found} found, older than version {expected} that this \
             build reads; refusing to open it, and there is no automatic migration: keep \
             running the sparsam release that wrote it, or move the file aside so that a \
             new store is created"
        )
    } else {
        format!(
            "store schema version {found} found, newer than version {expected} that this \
             build reads (written by a newer sparsam); refusing to open it: upgrade sparsam, \
             or point data_dir to another store"
        )
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// Settings for opening the store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// redb page cache in bytes (redb's own default is 1 GiB).
    pub cache_size: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_size: 64 * 1024 * 1024,
        }
    }
}

/// Totals over a time range, plus the average dwell per visit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub pageviews: u64,
    pub visits: u64,
    /// Sum of daily unique visitors (days cannot be linked).
    pub visitors: u64,
    pub bounces: u64,
    pub dwell_ms_sum: u64,
    pub dwell_pageviews: u64,
    /// `dwell_ms_sum / visits`, 0 without visits.
    pub avg_dwell_ms: u64,
    pub downloads: u64,
    pub outbound: u64,
    pub searches: u64,
}

impl From<Totals> for Summary {
    fn from(t: Totals) -> Self {
        Summary {
            pageviews: t.pageviews,
            visits: t.visits,
            visitors: t.visitors,
            bounces: t.bounces,
            dwell_ms_sum: t.dwell_ms_sum,
            dwell_pageviews: t.dwell_pageviews,
            avg_dwell_ms: t.dwell_ms_sum.checked_div(t.visits).unwrap_or(0),
            downloads: t.downloads,
            outbound: t.outbound,
            searches: t.searches,
        }
    }
}

/// One page of a ranked dimension, with what the whole list adds up to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ranked {
    /// `(value, counters)`, by the dimension's metric descending, ties by
    /// value ascending.
    pub rows: Vec<(String, Counters)>,
    /// Number of values with any count in the range.
    pub total_rows: usize,
    /// Sum of the ranking metric over all values.
    pub total: u64,
}

/// The raw events of one site and UTC day that a [`Snapshot::scan_days`]
/// visited, with what is needed to link them across days.
#[derive(Clone, Debug, Default)]
pub struct DayEvents {
    pub day: NaiveDate,
    /// Events of the day inside the scanned range, in the order the writer
    /// processed them (time order, except for imports of older data).
    pub events: Vec<RawEvent>,
    /// Position of each event within the day (see [`StoredEvent::seq`]).
    pub seqs: Vec<u32>,
    /// Full visitor hash of each visitor number of the day (when the
    /// visitor column was scanned).
    pub visitor_hashes: Vec<u64>,
    /// Page-view id of each page-view number of the day (when scanned).
    pub pageview_ids: Vec<u64>,
    /// Address table per event (when the address column was scanned).
    pub ips: Vec<Vec<u8>>,
}

/// A consistent view of the store for reading raw events: every scan and
/// every string lookup through it sees the same committed state.
pub struct Snapshot {
    txn: ReadTransaction,
}

/// Resolves raw dictionary ids within a [`Snapshot`] (or of a replay's
/// dictionary in memory, see [`replay`]), with a cache.
pub struct Resolver {
    strings: Option<ReadOnlyTable<StringId, &'static [u8]>>,
    memory: Option<replay::SharedDict>,
    cache: FxHashMap<StringId, Interned>,
}

impl Resolver {
    /// A resolver of the ids a replay hands out (the replay may still be
    /// adding entries while this resolver names earlier ones).
    pub(crate) fn in_memory(dict: replay::SharedDict) -> Resolver {
        Resolver {
            strings: None,
            memory: Some(dict),
            cache: FxHashMap::default(),
        }
    }

    /// The dictionary entry `id` (which must be non-zero).
    pub fn get(&mut self, id: StringId) -> Result<&Interned, StoreError> {
        if let (false, Some(memory)) = (self.cache.contains_key(&id), &self.memory) {
            let entry = memory
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entries
                .get(id.index().wrapping_sub(1))
                .cloned()
                .ok_or_else(|| {
                    StoreError::Decode(format!("replayed dictionary has no entry {id}"))
                })?;
            self.cache.insert(id, entry);
        }
        if !self.cache.contains_key(&id) {
            let t = self.strings.as_ref().ok_or_else(|| {
                StoreError::Decode(format!(
                    "event refers to dictionary entry {id}, but there is no dictionary"
                ))
            })?;
            let v = dict::resolve_raw(t, id)?;
            if self.cache.len() >= 500_000 {
                self.cache.clear();
            }
            self.cache.insert(id, v);
        }
        self.cache
            .get(&id)
            .ok_or_else(|| StoreError::Decode("resolver cache".into()))
    }

    /// Entry `id` as the kind `pick` accepts (0 = the empty value).
    fn typed<T: Clone + Default>(
        &mut self,
        id: StringId,
        want: &str,
        pick: impl Fn(&Interned) -> Option<&T>,
    ) -> Result<T, StoreError> {
        if id.is_none() {
            return Ok(T::default());
        }
        pick(self.get(id)?)
            .cloned()
            .ok_or_else(|| kind_error(id, want))
    }

    /// The text of a plain-string id (0 = empty).
    pub fn text(&mut self, id: StringId) -> Result<String, StoreError> {
        self.typed(id, "text", |i| match i {
            Interned::Text(s) => Some(s),
            _ => None,
        })
    }

    pub fn device(&mut self, id: StringId) -> Result<crate::model::Device, StoreError> {
        self.typed(id, "device", |i| match i {
            Interned::Device(d) => Some(d),
            _ => None,
        })
    }

    pub fn referrer(&mut self, id: StringId) -> Result<crate::model::Referrer, StoreError> {
        self.typed(id, "referrer", |i| match i {
            Interned::Referrer(r) => Some(r),
            _ => None,
        })
    }

    pub fn campaign(&mut self, id: StringId) -> Result<crate::model::Campaign, StoreError> {
        self.typed(id, "campaign", |i| match i {
            Interned::Campaign(c) => Some(c),
            _ => None,
        })
    }

    /// A custom event's properties (0 = none).
    pub fn props(&mut self, id: StringId) -> Result<Vec<(String, String)>, StoreError> {
        self.typed(id, "properties", |i| match i {
            Interned::Props(p) => Some(p),
            _ => None,
        })
    }
}

fn kind_error(id: StringId, want: &str) -> StoreError {
    StoreError::Decode(format!("dictionary entry {id} is not a {want}"))
}

fn open_optional<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    def: redb::TableDefinition<K, V>,
) -> Result<Option<ReadOnlyTable<K, V>>, StoreError> {
    match txn.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn day_tables(txn: &ReadTransaction) -> Result<Vec<NaiveDate>, StoreError> {
    let mut days: Vec<NaiveDate> = txn
        .list_tables()?
        .filter_map(|t| schema::parse_day_table(schema::EVENTS_PREFIX, t.name()))
        .collect();
    days.sort_unstable();
    Ok(days)
}

impl Snapshot {
    /// UTC days that have a raw event partition, oldest first.
    pub fn partitions(&self) -> Result<Vec<NaiveDate>, StoreError> {
        day_tables(&self.txn)
    }

    /// A string resolver over this snapshot.
    pub fn resolver(&self) -> Result<Resolver, StoreError> {
        Ok(Resolver {
            strings: open_optional(&self.txn, schema::STRINGS)?,
            memory: None,
            cache: FxHashMap::default(),
        })
    }

    /// Sites with events in partition `day`.
    pub fn sites_of(&self, day: NaiveDate) -> Result<Vec<String>, StoreError> {
        let name = schema::day_table_name(schema::EVENTS_PREFIX, day);
        let Some(t) = open_optional(&self.txn, schema::events_table(&name))? else {
            return Ok(Vec::new());
        };
        let mut out: Vec<String> = Vec::new();
        let mut next = t.first()?.map(|(k, _)| k.value().0.to_owned());
        while let Some(site) = next {
            next = match t
                .range::<schema::BlockKey>((
                    std::ops::Bound::Excluded((site.as_str(), u32::MAX)),
                    std::ops::Bound::Unbounded,
                ))?
                .next()
            {
                Some(r) => Some(r?.0.value().0.to_owned()),
                None => None,
            };
            out.push(site);
        }
        Ok(out)
    }

    /// Calls `f` with every stored block and tail piece of every
    /// partition and site (partition day, site, its key: see
    /// [`codec::BlockPlace::of_key`], the value decoded with `cols` or why
    /// it did not decode), for checks that must see every byte and go on
    /// past a bad block.
    pub fn for_each_block(
        &self,
        cols: Cols,
        mut f: impl FnMut(NaiveDate, &str, u32, Result<Block, StoreError>),
    ) -> Result<(), StoreError> {
        for day in day_tables(&self.txn)? {
            let name = schema::day_table_name(schema::EVENTS_PREFIX, day);
            let t = self.txn.open_table(schema::events_table(&name))?;
            for row in t.iter()? {
                let (k, v) = row?;
                let (site, no) = k.value();
                f(day, site, no, codec::decode_block(v.value(), cols));
            }
        }
        Ok(())
    }

    /// Number of stored blocks (each tail piece counting as one), events
    /// in them, and their encoded bytes (what the raw events take before
    /// redb's page overhead).
    pub fn block_stats(&self) -> Result<(u64, u64, u64), StoreError> {
        let (mut blocks, mut events, mut bytes) = (0u64, 0u64, 0u64);
        for day in day_tables(&self.txn)? {
            let name = schema::day_table_name(schema::EVENTS_PREFIX, day);
            let t = self.txn.open_table(schema::events_table(&name))?;
            for row in t.iter()? {
                let (_, v) = row?;
                blocks += 1;
                events += codec::block_len(v.value())? as u64;
                bytes += v.value().len() as u64;
            }
        }
        Ok((blocks, events, bytes))
    }

    /// Calls `f` with the bound of every raw dictionary entry (an upper
    /// bound on the receipt time of the events that use it).
    pub fn for_each_string_bound(
        &self,
        mut f: impl FnMut(StringId, i64),
    ) -> Result<(), StoreError> {
        if let Some(t) = open_optional(&self.txn, schema::STRINGS)? {
            for row in t.iter()? {
                let (k, v) = row?;
                f(k.value(), dict::split_raw_value(v.value())?.0);
            }
        }
        Ok(())
    }

    /// Calls `f` with the raw events of `site` in `[from_ms, to_ms)`, one
    /// UTC day at a time, oldest day first, decoding only `cols` (plus
    /// time and kind). Visitor hashes and page-view ids are collected from
    /// the whole day, so they link across the range's edges.
    pub fn scan_days(
        &self,
        site: &str,
        from_ms: i64,
        to_ms: i64,
        cols: Cols,
        mut f: impl FnMut(DayEvents) -> Result<ControlFlow<()>, StoreError>,
    ) -> Result<(), StoreError> {
        for day in self.days_between(from_ms, to_ms)? {
            if f(self.scan_day(site, day, from_ms, to_ms, cols)?)?.is_break() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// UTC days with a raw event partition that `[from_ms, to_ms)`
    /// touches, oldest first.
    pub fn days_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<NaiveDate>, StoreError> {
        if from_ms >= to_ms {
            return Ok(Vec::new());
        }
        let first = schema::utc_day(from_ms);
        let last = schema::utc_day(to_ms - 1);
        let mut days = day_tables(&self.txn)?;
        days.retain(|d| *d >= first && *d <= last);
        Ok(days)
    }

    /// The raw events of `site` in partition `day` that fall in
    /// `[from_ms, to_ms)`, decoded as [`Snapshot::scan_days`] does. Days
    /// are independent of each other, so several threads may each decode
    /// their own.
    pub fn scan_day(
        &self,
        site: &str,
        day: NaiveDate,
        from_ms: i64,
        to_ms: i64,
        cols: Cols,
    ) -> Result<DayEvents, StoreError> {
        let name = schema::day_table_name(schema::EVENTS_PREFIX, day);
        let t = self.txn.open_table(schema::events_table(&name))?;
        let mut out = DayEvents {
            day,
            ..DayEvents::default()
        };
        // Without addresses, every block is decoded straight into the
        // day's vectors (addresses are indexes into a table per block).
        let with_addresses = cols.has(Col::Ip) || cols.has(Col::Ips);
        for row in t.range::<schema::BlockKey>((site, 0)..=(site, u32::MAX))? {
            let (k, v) = row?;
            let place = codec::BlockPlace::of_key(k.value().1);
            let no = place.block;
            let base = place.first_seq();
            if !with_addresses {
                let start = out.events.len();
                let (hashes_before, ids_before) =
                    (out.visitor_hashes.len(), out.pageview_ids.len());
                let (first_visitor, first_pageview) = codec::decode_events_into(
                    v.value(),
                    cols,
                    &mut out.events,
                    &mut out.visitor_hashes,
                    &mut out.pageview_ids,
                )?;
                if cols.has(Col::Visitor) && first_visitor as usize != hashes_before {
                    return Err(StoreError::Decode(format!(
                        "event block {no} of {name} does not continue the visitor numbering"
                    )));
                }
                if cols.has(Col::Pageview) && first_pageview as usize != ids_before {
                    return Err(StoreError::Decode(format!(
                        "event block {no} of {name} does not continue the page-view numbering"
                    )));
                }
                // keep the events inside the range, in place
                let mut kept = start;
                for i in start..out.events.len() {
                    let e = out.events[i];
                    if e.ts_ms >= from_ms && e.ts_ms < to_ms {
                        out.events[kept] = e;
                        out.seqs.push(base.wrapping_add((i - start) as u32));
                        kept += 1;
                    }
                }
                out.events.truncate(kept);
                continue;
            }
            let block = codec::decode_block(v.value(), cols)?;
            if cols.has(Col::Visitor) {
                if block.first_visitor as usize != out.visitor_hashes.len() {
                    return Err(StoreError::Decode(format!(
                        "event block {no} of {name} does not continue the visitor numbering"
                    )));
                }
                out.visitor_hashes.extend_from_slice(&block.new_visitors);
            }
            if cols.has(Col::Pageview) {
                if block.first_pageview as usize != out.pageview_ids.len() {
                    return Err(StoreError::Decode(format!(
                        "event block {no} of {name} does not continue the page-view numbering"
                    )));
                }
                out.pageview_ids.extend_from_slice(&block.new_pageviews);
            }
            for (i, e) in block.events.iter().enumerate() {
                if e.ts_ms >= from_ms && e.ts_ms < to_ms {
                    if cols.has(Col::Ip) {
                        out.ips.push(block.ips[usize::from(e.ip)].clone());
                    }
                    out.events.push(*e);
                    out.seqs.push(base.wrapping_add(i as u32));
                }
            }
        }
        Ok(out)
    }
}

/// Blocks (up to 1,024 events each) deleted per transaction when a day
/// partition is dropped.
pub const BLOCKS_PER_SWEEP_TXN: usize = 32;

/// The redb-backed store. Share it in an `Arc`; reads are concurrent.
pub struct Store {
    /// The open database. redb fails every later operation of a `Database`
    /// after one failed write (e.g. disk full), so the writer replaces it
    /// through [`Store::reopen`]; `None` only while that has not succeeded.
    db: RwLock<Option<Arc<Database>>>,
    path: PathBuf,
    opts: StoreOptions,
    /// Committed roll-up changes the writer has not folded into the
    /// tables yet; readers add them (see [`open_rollups`]).
    open_rollups: open_rollups::OpenRollups,
}

impl Store {
    /// Opens (or creates) the store at `path` and checks its schema version.
    pub fn open(path: impl AsRef<Path>, opts: &StoreOptions) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let db = Self::open_database(&path, opts)?;
        let store = Store {
            db: RwLock::new(Some(Arc::new(db))),
            path,
            opts: opts.clone(),
            open_rollups: open_rollups::OpenRollups::default(),
        };
        store.check_schema()?;
        Ok(store)
    }

    fn open_database(path: &Path, opts: &StoreOptions) -> Result<Database, StoreError> {
        Ok(Database::builder()
            .set_cache_size(opts.cache_size)
            .create(path)?)
    }

    /// The current database handle (cheap clone of an `Arc`).
    pub(crate) fn db(&self) -> Result<Arc<Database>, StoreError> {
        self.db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or(StoreError::Unavailable)
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        let txn = self.db()?.begin_write()?;
        let found = {
            let any_tables = txn.list_tables()?.next().is_some();
            let mut meta = txn.open_table(META)?;
            let found = meta.get(META_SCHEMA_VERSION)?.map(|v| v.value());
            match found {
                Some(v) => Some(v),
                None if any_tables => return Err(StoreError::NotAStore),
                None => {
                    meta.insert(META_SCHEMA_VERSION, SCHEMA_VERSION)?;
                    None
                }
            }
        };
        match found {
            Some(SCHEMA_VERSION_V2 | SCHEMA_VERSION_V3) => {
                // version 2 differs only in blocks without the custom-event
                // columns, version 3 only in having no tail pieces, both of
                // which this build still reads: stamp the file with the
                // version that may now hold pieces and blocks of both kinds
                txn.open_table(META)?
                    .insert(META_SCHEMA_VERSION, SCHEMA_VERSION)?;
                txn.commit()?;
                Ok(())
            }
            Some(v) if v != SCHEMA_VERSION => Err(StoreError::SchemaVersion {
                found: v,
                expected: SCHEMA_VERSION,
            }),
            Some(_) => Ok(()), // dropping the unchanged transaction aborts it
            None => {
                txn.commit()?;
                Ok(())
            }
        }
    }

    /// The underlying database, for maintenance (stats, compaction). Writing
    /// through it bypasses the writer and its roll-ups: don't, except in
    /// tests (holding a write transaction is how tests stall the writer).
    /// Fails with [`StoreError::Unavailable`] while the database is being
    /// reopened after an I/O error.
    pub fn database(&self) -> Result<Arc<Database>, StoreError> {
        self.db()
    }

    /// A consistent read view for scanning raw events.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        Ok(Snapshot {
            txn: self.db()?.begin_read()?,
        })
    }

    /// UTC days that have a raw event partition, oldest first.
    pub fn partitions(&self) -> Result<Vec<NaiveDate>, StoreError> {
        self.snapshot()?.partitions()
    }

    /// Events per partition, oldest first.
    pub fn partition_stats(&self) -> Result<Vec<(NaiveDate, u64)>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let days = day_tables(&txn)?;
        let mut counts: HashMap<DayNumber, u64> = HashMap::new();
        if let Some(t) = open_optional(&txn, DAY_COUNTS)? {
            for row in t.iter()? {
                let (k, v) = row?;
                *counts.entry(k.value().0).or_default() += v.value();
            }
        }
        Ok(days
            .into_iter()
            .map(|d| (d, counts.get(&DayNumber::of(d)).copied().unwrap_or(0)))
            .collect())
    }

    /// Number of raw events stored.
    pub fn event_count(&self) -> Result<u64, StoreError> {
        Ok(self.partition_stats()?.iter().map(|(_, n)| n).sum())
    }

    /// Deletes up to [`BLOCKS_PER_SWEEP_TXN`] blocks of the raw events of
    /// UTC day `day` in one durable transaction, taking their events off
    /// the day's count; roll-ups stay. Returns how many events went and
    /// whether the day is gone. Only the writer calls this (a
    /// [`commands`] step), with batches between two calls, so ingest waits
    /// for one chunk at most (milliseconds), not for the whole day. A crash
    /// in between leaves a smaller, consistent day that the next sweep drops.
    pub(crate) fn drop_partition_chunk(&self, day: NaiveDate) -> Result<(u64, bool), StoreError> {
        let name = schema::day_table_name(schema::EVENTS_PREFIX, day);
        let n = DayNumber::of(day);
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        let exists = txn.list_tables()?.any(|t| t.name() == name);
        let mut removed: Vec<(String, u64)> = Vec::new();
        let mut done = true;
        if exists {
            let mut t = txn.open_table(schema::events_table(&name))?;
            let keys: Vec<(String, u32, u64)> = t
                .iter()?
                .take(BLOCKS_PER_SWEEP_TXN)
                .map(|r| {
                    let (k, v) = r?;
                    let (site, no) = k.value();
                    Ok((site.to_owned(), no, codec::block_len(v.value())? as u64))
                })
                .collect::<Result<_, StoreError>>()?;
            for (site, no, len) in &keys {
                t.remove((site.as_str(), *no))?;
                match removed.iter_mut().find(|(s, _)| s == site) {
                    Some((_, m)) => *m += len,
                    None => removed.push((site.clone(), *len)),
                }
            }
            done = t.len()? == 0;
        }
        let mut any = !removed.is_empty();
        {
            let mut counts = txn.open_table(DAY_COUNTS)?;
            if done {
                // the day is gone: no count may outlive it
                let keys: Vec<String> = counts
                    .range::<schema::DayCountKey>((n, "")..(n.next(), ""))?
                    .map(|r| r.map(|(k, _)| k.value().1.to_owned()))
                    .collect::<Result<_, _>>()?;
                for s in &keys {
                    counts.remove((n, s.as_str()))?;
                    open_rollups::set_watermark(&txn, n, s, None)?;
                    any = true;
                }
            } else {
                // the writer folded the roll-ups before this step: they
                // include every event the day keeps
                for (site, m) in &removed {
                    let old = counts.get((n, site.as_str()))?.map_or(0, |v| v.value());
                    let kept = old.saturating_sub(*m);
                    counts.insert((n, site.as_str()), kept)?;
                    open_rollups::set_watermark(&txn, n, site, Some(kept))?;
                }
            }
        }
        if done && exists {
            txn.delete_table(redb::TableDefinition::<(), ()>::new(&name))?;
            any = true;
        }
        if any {
            txn.commit()?;
        }
        Ok((removed.iter().map(|(_, m)| m).sum::<u64>(), done))
    }

    /// Timestamp of the oldest raw event, if any.
    pub fn oldest_event_ts(&self) -> Result<Option<i64>, StoreError> {
        let snap = self.snapshot()?;
        for day in snap.partitions()? {
            let mut oldest: Option<i64> = None;
            for site in snap.sites_of(day)? {
                snap.scan_days(&site, i64::MIN, i64::MAX, Cols::NONE, |d| {
                    if d.day == day {
                        for e in &d.events {
                            oldest = Some(oldest.map_or(e.ts_ms, |o| o.min(e.ts_ms)));
                        }
                        return Ok(ControlFlow::Break(()));
                    }
                    Ok(ControlFlow::Continue(()))
                })?;
            }
            if oldest.is_some() {
                return Ok(oldest);
            }
        }
        Ok(None)
    }

    /// Calls `f` with every raw event of `site` in `[from_ms, to_ms)`, in
    /// time order (then position), until it returns `Break`. Reads only
    /// the partitions needed.
    pub fn scan_events(
        &self,
        site: &str,
        from_ms: i64,
        to_ms: i64,
        mut f: impl FnMut(StoredEvent) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let snap = self.snapshot()?;
        let mut res = snap.resolver()?;
        snap.scan_days(site, from_ms, to_ms, Cols::ALL, |d| {
            let mut order: Vec<usize> = (0..d.events.len()).collect();
            order.sort_by_key(|&i| (d.events[i].ts_ms, d.seqs[i]));
            for i in order {
                let e = &d.events[i];
                let stored = StoredEvent {
                    site: site.to_owned(),
                    ts_ms: e.ts_ms,
                    seq: d.seqs[i],
                    kind: e.kind,
                    visitor: d
                        .visitor_hashes
                        .get(e.visitor as usize)
                        .copied()
                        .unwrap_or(0),
                    pageview_id: match e.pageview {
                        0 => 0,
                        n => d.pageview_ids.get(n as usize - 1).copied().unwrap_or(0),
                    },
                    url: res.text(e.url)?,
                    title: res.text(e.title)?,
                    referrer: res.referrer(e.referrer)?,
                    campaign: res.campaign(e.campaign)?,
                    target: res.text(e.target)?,
                    search_term: res.text(e.search_term)?,
                    search_results: match e.search_results {
                        0 => None,
                        n => Some(u32::try_from(n - 1).unwrap_or(u32::MAX)),
                    },
                    engaged_ms: e.engaged_ms,
                    device: res.device(e.device)?,
                    plugins: e.plugins,
                    anon_ip: crate::privacy::StoredIp::decode(&d.ips[i]).ok_or_else(|| {
                        StoreError::Decode("event block: bad address bytes".into())
                    })?,
                    custom: match e.kind {
                        crate::model::EventKind::Custom => Some(crate::goals::CustomEvent {
                            name: res.text(e.custom.name)?,
                            props: res.props(e.custom.props)?,
                            revenue_cents: e.custom.revenue_cents,
                        }),
                        _ => None,
                    },
                };
                if f(stored).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
            Ok(ControlFlow::Continue(()))
        })
    }

    /// Hourly totals of `site` for the hours starting in `[from_ms, to_ms)`,
    /// oldest first; hours without data are left out.
    pub fn timeseries_hours(
        &self,
        site: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, Totals)>, StoreError> {
        let (from_h, to_h) = rollup::hour_range(from_ms, to_ms);
        let mut out = Vec::new();
        if from_h >= to_h {
            return Ok(out);
        }
        let (txn, held) = {
            // the read transaction and the held changes as of one moment
            let held = self.open_rollups.read();
            let txn = self.db()?.begin_read()?;
            (txn, open_rollups::held_hours(&held, site, from_h, to_h))
        };
        let mut rows: std::collections::BTreeMap<i64, Totals> = Default::default();
        if let Some(t) = open_optional(&txn, HOURLY)? {
            for row in t.range((site, from_h)..(site, to_h))? {
                let (k, v) = row?;
                rows.insert(k.value().1, rollup::decode_totals(v.value())?);
            }
        }
        // as the fold will: the change applied to the stored totals
        for (hour, delta) in held {
            let t = rows.entry(hour).or_default();
            *t = open_rollups::add_hour(*t, &delta);
        }
        out.extend(rows);
        Ok(out)
    }

    /// Totals of `site` over the hours starting in `[from_ms, to_ms)`.
    /// Whole-hour bounds give exact results in any whole-hour time zone.
    pub fn summary(&self, site: &str, from_ms: i64, to_ms: i64) -> Result<Summary, StoreError> {
        let mut t = Totals::default();
        for (_, h) in self.timeseries_hours(site, from_ms, to_ms)? {
            t.add(&h);
        }
        Ok(t.into())
    }

    /// Counters of every value of `dim` for `site` over the site-local days
    /// `from..=to`, by roll-up value id, read inside `txn`.
    fn dim_counts(
        txn: &ReadTransaction,
        site: &str,
        dim: Dimension,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<FxHashMap<DimValueId, [i64; 3]>, StoreError> {
        let mut by_value: FxHashMap<DimValueId, [i64; 3]> = FxHashMap::default();
        if from > to {
            return Ok(by_value);
        }
        let d = dim as u8;
        let (a, b) = (DayNumber::of(from), DayNumber::of(to));
        if let Some(t) = open_optional(txn, DIMS_SEALED)? {
            for row in t.range::<schema::SealedKey>((site, d, a)..=(site, d, b))? {
                let (_, v) = row?;
                rollup::for_each_sealed(v.value(), |id, c| {
                    let x = by_value.entry(id).or_default();
                    x[0] = x[0].saturating_add_unsigned(c.pageviews);
                    x[1] = x[1].saturating_add_unsigned(c.visits);
                    x[2] = x[2].saturating_add_unsigned(c.events);
                })?;
            }
        }
        if let Some(t) = open_optional(txn, DIMS_OPEN)? {
            for row in t.range::<schema::DimKey>(
                (site, d, a, DimValueId::NONE)..=(site, d, b, DimValueId::MAX),
            )? {
                let (k, v) = row?;
                let c = rollup::decode_signed(v.value())?;
                rollup::add_signed(by_value.entry(k.value().3).or_default(), c);
            }
        }
        Ok(by_value)
    }

    /// Values of `dim` for `site` over the site-local days `from..=to`,
    /// ranked by [`Dimension::sort_by`] (descending, ties by value), then
    /// `offset` skipped and at most `limit` returned, with the number of
    /// values and the metric's total over all of them. Only the strings of
    /// the rows that can make the page are looked up.
    pub fn ranked(
        &self,
        site: &str,
        dim: Dimension,
        from: NaiveDate,
        to: NaiveDate,
        limit: usize,
        offset: usize,
    ) -> Result<Ranked, StoreError> {
        let (txn, held) = {
            // the read transaction and the held changes as of one moment
            let held = self.open_rollups.read();
            let txn = self.db()?.begin_read()?;
            let (a, b) = (DayNumber::of(from), DayNumber::of(to));
            (txn, open_rollups::held_dims(&held, site, dim, a, b))
        };
        let mut by_value = Self::dim_counts(&txn, site, dim, from, to)?;
        for (id, c) in held {
            rollup::add_signed(by_value.entry(id).or_default(), c);
        }
        let by = dim.sort_by();
        let mut rows: Vec<(DimValueId, Counters)> = by_value
            .into_iter()
            .map(|(id, c)| (id, Counters::from_signed(c)))
            .filter(|(_, c)| *c != Counters::default())
            .collect();
        let total_rows = rows.len();
        let total = rows.iter().map(|(_, c)| c.get(by)).sum();
        let want = offset.saturating_add(limit).min(total_rows);
        if want == 0 {
            return Ok(Ranked {
                rows: Vec::new(),
                total_rows,
                total,
            });
        }
        // Everything ranked at or above the metric of the last wanted row
        // can make the page; only those need their strings (for ties).
        rows.sort_unstable_by_key(|(_, c)| std::cmp::Reverse(c.get(by)));
        let cut = rows[want - 1].1.get(by);
        let candidates = rows.partition_point(|(_, c)| c.get(by) >= cut);
        rows.truncate(candidates);
        let values = open_optional(&txn, DIM_VALUES)?
            .ok_or_else(|| StoreError::Decode("roll-ups without a value dictionary".into()))?;
        let mut named: Vec<(String, Counters)> = Vec::with_capacity(rows.len());
        for (id, c) in rows {
            named.push((dict::resolve_dim(&values, id)?, c));
        }
        named.sort_by(|a, b| b.1.get(by).cmp(&a.1.get(by)).then_with(|| a.0.cmp(&b.0)));
        Ok(Ranked {
            rows: named.into_iter().skip(offset).take(limit).collect(),
            total_rows,
            total,
        })
    }

    /// The rows of [`Store::ranked`] alone.
    pub fn top(
        &self,
        site: &str,
        dim: Dimension,
        from: NaiveDate,
        to: NaiveDate,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<(String, Counters)>, StoreError> {
        Ok(self.ranked(site, dim, from, to, limit, offset)?.rows)
    }
}

#[cfg(test)]
pub(crate) fn test_event(site: &str, ts_ms: i64, visitor: u64) -> crate::model::Event {
    use crate::model::*;
    use crate::privacy::{AnonIp, IpMasks};
    Event {
        site: site.into(),
        ts_ms,
        kind: EventKind::PageView,
        visitor,
        pageview_id: 0,
        url: "https://example.org/".into(),
        title: "Home".into(),
        referrer: Referrer::default(),
        campaign: Campaign::default(),
        target: String::new(),
        search_term: String::new(),
        search_results: None,
        engaged_ms: 0,
        device: Device::default(),
        plugins: 0,
        anon_ip: AnonIp::truncate(
            "10.1.2.3".parse().unwrap_or([0, 0, 0, 0].into()),
            &IpMasks::DEFAULT,
        ),
        custom: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_file_gets_version_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("db");
        drop(Store::open(&p, &StoreOptions::default()).unwrap());
        let s = Store::open(&p, &StoreOptions::default()).unwrap();
        let txn = s.db().unwrap().begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        assert_eq!(
            meta.get(META_SCHEMA_VERSION).unwrap().unwrap().value(),
            SCHEMA_VERSION
        );
    }

    #[test]
    fn foreign_file_without_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("db");
        {
            let db = Database::create(&p).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(redb::TableDefinition::<u64, u64>::new("other"))
                .unwrap()
                .insert(1, 2)
                .unwrap();
            txn.commit().unwrap();
        }
        let err = Store::open(&p, &StoreOptions::default()).err().unwrap();
        assert!(matches!(err, StoreError::NotAStore), "{err}");
    }
}
