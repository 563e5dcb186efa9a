//! The embedded store: raw events partitioned by UTC day, roll-ups, and the
//! queries the reporting side needs, on one redb file.
//!
//! [`Store`] opens the file (checking the schema version so an incompatible
//! file is refused, never misread) and answers queries in short read
//! transactions. All writes go through the single [`Writer`] thread, which
//! commits batches (group commit); the one exception is
//! [`Store::drop_partition`], used by the retention sweeper, which takes
//! redb's write lock between two batches. See [`schema`] for the key layout
//! and [`rollup`] for what the counters mean.

pub mod codec;
mod reopen;
pub mod rollup;
pub mod schema;
pub mod sweep;
pub mod writer;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use chrono::NaiveDate;
use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableHandle,
};

pub use codec::{decode_event, encode_event, StoredEvent};
pub use rollup::{Counters, Dimension, SortBy, Totals, UnknownDimension};
pub use sweep::{ExpiryPlan, RollupExpiry};
pub use writer::{Ack, SubmitError, WriteError, Writer, WriterHandle, WriterOptions};

use schema::{EventKey, DIMS, HOURLY, META, META_SCHEMA_VERSION, SCHEMA_VERSION};

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

/// The redb-backed store. Share it in an `Arc`; reads are concurrent.
pub struct Store {
    /// The open database. redb fails every later operation of a `Database`
    /// after one failed write (e.g. disk full), so the writer replaces it
    /// through [`Store::reopen`]; `None` only while that has not succeeded.
    db: RwLock<Option<Arc<Database>>>,
    path: PathBuf,
    opts: StoreOptions,
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

    fn day_tables(txn: &ReadTransaction, prefix: &str) -> Result<Vec<NaiveDate>, StoreError> {
        let mut days: Vec<NaiveDate> = txn
            .list_tables()?
            .filter_map(|t| schema::parse_day_table(prefix, t.name()))
            .collect();
        days.sort_unstable();
        Ok(days)
    }

    /// UTC days that have a raw event partition, oldest first.
    pub fn partitions(&self) -> Result<Vec<NaiveDate>, StoreError> {
        let txn = self.db()?.begin_read()?;
        Self::day_tables(&txn, schema::EVENTS_PREFIX)
    }

    /// Events per partition, oldest first.
    pub fn partition_stats(&self) -> Result<Vec<(NaiveDate, u64)>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let mut out = Vec::new();
        for day in Self::day_tables(&txn, schema::EVENTS_PREFIX)? {
            let name = schema::day_table_name(schema::EVENTS_PREFIX, day);
            let t = txn.open_table(schema::events_table(&name))?;
            out.push((day, t.len()?));
        }
        Ok(out)
    }

    /// Number of raw events stored.
    pub fn event_count(&self) -> Result<u64, StoreError> {
        Ok(self.partition_stats()?.iter().map(|(_, n)| n).sum())
    }

    /// Deletes the raw events of UTC day `day` and the visit, visitor and
    /// dwell state kept for that day, in one durable transaction. Roll-ups
    /// stay. Returns how many events were deleted (0 if there were none).
    pub fn drop_partition(&self, day: NaiveDate) -> Result<u64, StoreError> {
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        let events_name = schema::day_table_name(schema::EVENTS_PREFIX, day);
        let exists = txn.list_tables()?.any(|t| t.name() == events_name);
        let deleted = if exists {
            txn.open_table(schema::events_table(&events_name))?.len()?
        } else {
            0
        };
        let mut any = false;
        for prefix in schema::DAY_PREFIXES {
            let name = schema::day_table_name(prefix, day);
            any |= txn.delete_table(redb::TableDefinition::<(), ()>::new(&name))?;
        }
        if any {
            txn.commit()?;
        }
        Ok(deleted)
    }

    /// Timestamp of the oldest raw event, if any.
    pub fn oldest_event_ts(&self) -> Result<Option<i64>, StoreError> {
        let txn = self.db()?.begin_read()?;
        for day in Self::day_tables(&txn, schema::EVENTS_PREFIX)? {
            let name = schema::day_table_name(schema::EVENTS_PREFIX, day);
            let t = txn.open_table(schema::events_table(&name))?;
            // Keys sort by site first: visit each site's first key by
            // skipping past the site's last possible key.
            let mut oldest: Option<i64> = None;
            let mut next = t.first()?.map(|(k, _)| {
                let (s, ts, _) = k.value();
                (s.to_owned(), ts)
            });
            while let Some((site, ts)) = next {
                oldest = Some(oldest.map_or(ts, |o| o.min(ts)));
                let after: EventKey = (&site, i64::MAX, u32::MAX);
                next = match t
                    .range::<EventKey>((
                        std::ops::Bound::Excluded(after),
                        std::ops::Bound::Unbounded,
                    ))?
                    .next()
                {
                    Some(r) => {
                        let (k, _) = r?;
                        let (s, ts, _) = k.value();
                        Some((s.to_owned(), ts))
                    }
                    None => None,
                };
            }
            if oldest.is_some() {
                return Ok(oldest);
            }
        }
        Ok(None)
    }

    /// Calls `f` with every raw event of `site` in `[from_ms, to_ms)`, in
    /// key order (time, then sequence), until it returns `Break`. Reads only
    /// the partitions and key ranges needed.
    pub fn scan_events(
        &self,
        site: &str,
        from_ms: i64,
        to_ms: i64,
        mut f: impl FnMut(StoredEvent) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        if from_ms >= to_ms {
            return Ok(());
        }
        let txn = self.db()?.begin_read()?;
        let first = schema::utc_day(from_ms);
        let last = schema::utc_day(to_ms - 1);
        for day in Self::day_tables(&txn, schema::EVENTS_PREFIX)? {
            if day < first || day > last {
                continue;
            }
            let name = schema::day_table_name(schema::EVENTS_PREFIX, day);
            let t = txn.open_table(schema::events_table(&name))?;
            let lo: EventKey = (site, from_ms, 0);
            let hi: EventKey = (site, to_ms, 0);
            for row in t.range(lo..hi)? {
                let (k, v) = row?;
                let (s, ts, seq) = k.value();
                let e = codec::decode_stored(s, ts, seq, v.value())?;
                if f(e).is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
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
        let txn = self.db()?.begin_read()?;
        let t = match txn.open_table(HOURLY) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        for row in t.range((site, from_h)..(site, to_h))? {
            let (k, v) = row?;
            out.push((k.value().1, rollup::decode_totals(v.value())?));
        }
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

    /// Values of `dim` for `site` over the site-local days `from..=to`,
    /// ranked by [`Dimension::sort_by`] (descending, ties by value), then
    /// `offset` skipped and at most `limit` returned.
    pub fn top(
        &self,
        site: &str,
        dim: Dimension,
        from: NaiveDate,
        to: NaiveDate,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<(String, Counters)>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        let txn = self.db()?.begin_read()?;
        let t = match txn.open_table(DIMS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let d = dim as u8;
        let lo: schema::DimKey = (site, d, schema::day_number(from), "");
        let hi: schema::DimKey = (site, d, schema::day_number(to).saturating_add(1), "");
        let mut acc: HashMap<String, Counters> = HashMap::new();
        for row in t.range(lo..hi)? {
            let (k, v) = row?;
            let c = rollup::decode_counters(v.value())?;
            let value = k.value().3;
            match acc.get_mut(value) {
                Some(x) => x.add(&c),
                None => {
                    acc.insert(value.to_owned(), c);
                }
            }
        }
        let by = dim.sort_by();
        let mut rows: Vec<(String, Counters)> = acc.into_iter().collect();
        rows.sort_by(|a, b| b.1.get(by).cmp(&a.1.get(by)).then_with(|| a.0.cmp(&b.0)));
        Ok(rows.into_iter().skip(offset).take(limit).collect())
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
