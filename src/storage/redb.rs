//! The embedded redb engine behind the [`Storage`] boundary: one file, one
//! writer thread (`crate::store::writer`) that owns every write, and
//! concurrent read transactions for reports.
//!
//! This adapter only translates: domain calls into the engine's calls, and
//! the engine's errors into [`StorageError`] by who can act on them (an I/O
//! failure, e.g. a full disk, is transient; a value that does not decode or
//! a broken invariant is internal).

use crate::store::ids::DayNumber;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;

use crate::model::Event;
use crate::store::{
    Cols, Store, StoreError, StoreOptions, SubmitError, Writer, WriterHandle, WriterOptions,
};

use super::{
    Dimension, ExpiryPlan, FilteredAnswer, FilteredQuery, FreeTextExpiry, FreeTextRowFact,
    FreeTextVetted, PendingAck, Ranked, RollupExpiry, Storage, StorageError, StoredEventFact,
    Totals, VacuumReport,
};

impl From<StoreError> for StorageError {
    fn from(e: StoreError) -> Self {
        if matches!(e, StoreError::WriterClosed) {
            StorageError::Closed
        } else if let StoreError::Replay {
            message,
            transient: true,
        } = &e
        {
            StorageError::Unavailable(message.clone())
        } else if e.is_io() {
            StorageError::Unavailable(e.to_string())
        } else {
            StorageError::Internal(e.to_string())
        }
    }
}

impl From<SubmitError> for StorageError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::QueueFull => StorageError::Busy,
            SubmitError::Closed => StorageError::Closed,
        }
    }
}

/// The redb store and its writer thread.
pub struct RedbStorage {
    store: Arc<Store>,
    writer: WriterHandle,
}

impl RedbStorage {
    /// Opens (or creates) the store file at `path` and starts its writer.
    /// Fails with the engine's own error so that callers can tell a file
    /// held by another process ([`StoreError::is_locked`]) from a broken one.
    pub fn open(
        path: impl AsRef<Path>,
        store_options: &StoreOptions,
        writer_options: WriterOptions,
    ) -> Result<RedbStorage, StoreError> {
        let store = Arc::new(Store::open(path, store_options)?);
        Self::with_store(store, writer_options)
    }

    /// Starts a writer over an open store.
    pub fn with_store(
        store: Arc<Store>,
        writer_options: WriterOptions,
    ) -> Result<RedbStorage, StoreError> {
        let writer = Writer::spawn(store.clone(), writer_options)?;
        Ok(RedbStorage { store, writer })
    }

    /// The engine itself, for engine-level tools and tests (block
    /// statistics, raw scans). The rest of the program uses [`Storage`].
    pub fn engine(&self) -> &Arc<Store> {
        &self.store
    }

    /// The writer thread's handle.
    pub fn writer(&self) -> &WriterHandle {
        &self.writer
    }
}

impl Drop for RedbStorage {
    fn drop(&mut self) {
        // commit what is queued before the file closes
        if let Err(e) = self.writer.shutdown_blocking() {
            tracing::error!(error = %e, "store writer did not stop cleanly");
        }
    }
}

impl Storage for RedbStorage {
    fn submit(&self, events: Vec<Event>) -> Result<PendingAck, StorageError> {
        Ok(self.writer.submit(events)?)
    }

    fn is_accepting(&self) -> bool {
        self.writer.is_running()
    }

    fn drop_day(&self, day: NaiveDate) -> Result<u64, StorageError> {
        Ok(self.writer.drop_day(day)?)
    }

    fn trim_day(&self, day: NaiveDate, cutoff_ms: i64) -> Result<u64, StorageError> {
        Ok(self.writer.trim_day(day, cutoff_ms)?)
    }

    fn expire_strings(&self, cutoff_ms: i64) -> Result<u64, StorageError> {
        Ok(self.writer.expire_strings(cutoff_ms)?)
    }

    fn expire_rollups(&self, cutoff_ms: i64, dry_run: bool) -> Result<RollupExpiry, StorageError> {
        if dry_run {
            // counting only reads
            Ok(self.store.expire_rollups(cutoff_ms, true)?)
        } else {
            Ok(self.writer.expire_rollups(cutoff_ms)?)
        }
    }

    fn expire_free_text(
        &self,
        day: DayNumber,
        sites: BTreeSet<String>,
        keep: HashMap<String, HashSet<String>>,
        vetted: Option<FreeTextVetted>,
        dry_run: bool,
    ) -> Result<FreeTextExpiry, StorageError> {
        Ok(self
            .writer
            .expire_free_text(day, sites, keep, vetted, dry_run)?)
    }

    fn set_free_text_vetted(&self, vetted: FreeTextVetted) -> Result<(), StorageError> {
        Ok(self.writer.set_free_text_vetted(vetted)?)
    }

    fn delete_unused_rollup_values(&self) -> Result<u64, StorageError> {
        Ok(self.writer.delete_unused_rollup_values()?)
    }

    fn vacuum(&self) -> Result<VacuumReport, StorageError> {
        Ok(self.writer.vacuum(&self.store)?)
    }

    fn close(&self) -> Result<(), StorageError> {
        Ok(self.writer.shutdown_blocking()?)
    }

    fn hourly_totals(
        &self,
        site: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, Totals)>, StorageError> {
        Ok(self.store.timeseries_hours(site, from_ms, to_ms)?)
    }

    fn ranked(
        &self,
        site: &str,
        dim: Dimension,
        from: NaiveDate,
        to: NaiveDate,
        limit: usize,
        offset: usize,
    ) -> Result<Ranked, StorageError> {
        Ok(self.store.ranked(site, dim, from, to, limit, offset)?)
    }

    fn filtered(&self, query: &FilteredQuery<'_>) -> Result<FilteredAnswer, StorageError> {
        Ok(crate::store::scan::filtered(&self.store, query)?)
    }

    fn conversions(
        &self,
        query: &crate::storage::ConversionQuery<'_>,
    ) -> Result<crate::storage::Conversions, StorageError> {
        Ok(crate::store::conversions::conversions(&self.store, query)?)
    }

    fn days(&self) -> Result<Vec<(NaiveDate, u64)>, StorageError> {
        Ok(self.store.partition_stats()?)
    }

    fn oldest_event_ms(&self) -> Result<Option<i64>, StorageError> {
        Ok(self.store.oldest_event_ts()?)
    }

    fn expiry_plan(&self, cutoff_ms: i64) -> Result<ExpiryPlan, StorageError> {
        Ok(self.store.expiry_plan(cutoff_ms)?)
    }

    fn for_each_stored_event(
        &self,
        visit: &mut dyn FnMut(StoredEventFact),
    ) -> Result<(), StorageError> {
        use crate::store::codec::BlockPlace;
        use crate::store::schema::{day_table_name, EVENTS_PREFIX};
        let snap = self.store.snapshot()?;
        snap.for_each_block(
            Cols::NONE.with(crate::store::Col::Ip),
            |day, site, no, block| {
                let partition = day_table_name(EVENTS_PREFIX, day);
                let block = match block {
                    Ok(b) => b,
                    Err(e) => {
                        visit(StoredEventFact {
                            partition,
                            site: site.to_owned(),
                            seq: BlockPlace::of_key(no).first_seq(),
                            ts_ms: Err(format!("block does not decode: {e}")),
                            ip: None,
                        });
                        return;
                    }
                };
                for (i, e) in block.events.iter().enumerate() {
                    visit(StoredEventFact {
                        partition: partition.clone(),
                        site: site.to_owned(),
                        seq: BlockPlace::of_key(no).first_seq().wrapping_add(i as u32),
                        ts_ms: Ok(e.ts_ms),
                        ip: block
                            .ips
                            .get(usize::from(e.ip))
                            .and_then(|b| crate::privacy::StoredIp::decode(b)),
                    });
                }
            },
        )?;
        Ok(())
    }

    fn for_each_string_bound(&self, visit: &mut dyn FnMut(i64)) -> Result<(), StorageError> {
        Ok(self
            .store
            .snapshot()?
            .for_each_string_bound(|_, bound| visit(bound))?)
    }

    fn free_text_vetted(&self) -> Result<Option<FreeTextVetted>, StorageError> {
        Ok(self.store.free_text_vetted()?)
    }

    fn free_text_days(
        &self,
        from_day: Option<DayNumber>,
        before_day: DayNumber,
    ) -> Result<BTreeMap<DayNumber, BTreeSet<String>>, StorageError> {
        // Roll-up changes held in the writer's memory are not in a snapshot
        // yet: a day whose only free text is held would be passed over, and
        // its rows folded in after the day was recorded as vetted.
        self.writer.fold_held()?;
        Ok(self.store.free_text_days(from_day, before_day)?)
    }

    fn common_free_text(
        &self,
        site: &str,
        tz: chrono_tz::Tz,
        day: DayNumber,
        min_visitors: u32,
    ) -> Result<HashSet<String>, StorageError> {
        Ok(self.store.common_free_text(site, tz, day, min_visitors)?)
    }

    fn for_each_free_text_row(
        &self,
        visit: &mut dyn FnMut(FreeTextRowFact<'_>),
    ) -> Result<(), StorageError> {
        // the audit tells what is stored, held roll-up changes included
        self.writer.fold_held()?;
        Ok(self
            .store
            .for_each_free_text_row(|table, site, dimension, day| {
                visit(FreeTextRowFact {
                    table,
                    site,
                    dimension,
                    day,
                })
            })?)
    }

    fn oldest_rollup_day(&self) -> Result<Option<NaiveDate>, StorageError> {
        self.writer.fold_held()?;
        Ok(self
            .store
            .oldest_rollup_hour()?
            .map(|hour| crate::store::schema::utc_day(hour * crate::store::schema::MS_PER_HOUR)))
    }

    fn audit_records(&self) -> Result<Vec<(u64, String)>, StorageError> {
        Ok(self.store.audit_records()?)
    }

    fn audit_append(&self, json: &str) -> Result<u64, StorageError> {
        Ok(self.store.audit_append(json)?)
    }

    fn audit_replace(&self, id: u64, json: &str) -> Result<(), StorageError> {
        Ok(self.store.audit_replace(id, json)?)
    }
}
