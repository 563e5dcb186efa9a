//! Rewriting the store into a fresh file, so deleted data is gone from the
//! disk file and not only from the tables.
//!
//! redb deletes by marking pages free; the old bytes stay in the file until
//! the space is reused, and a page that lost entries can keep their bytes
//! in its unused tail. After a retention sweep, expired URLs, search terms
//! and shortened addresses could therefore still be read from the raw
//! file. [`Store::vacuum`] copies every table, entry by entry, into a new
//! file (whose pages hold nothing else), syncs it, and renames it over the
//! old one. It runs on the writer thread (a command), so batches wait in
//! the queue meanwhile (nothing is refused unless it fills up) and readers
//! wait for the new handle; the copy is linear in the live data.

use std::path::Path;

use redb::{Database, Key, ReadableDatabase, ReadableTable, TableDefinition, TableHandle, Value};

use super::schema::{self, AUDIT, DAY_COUNTS, DIMS_OPEN, DIMS_SEALED, DIM_VALUES, DIM_VALUE_IDS};
use super::schema::{HOURLY, META, STRINGS, STRING_IDS};
use super::{Store, StoreError};

/// Sizes of the file before and after a vacuum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VacuumReport {
    pub bytes_before: u64,
    pub bytes_after: u64,
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Db(redb::Error::Io(e))
}

fn copy_table<K: Key + 'static, V: Value + 'static>(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<(), StoreError> {
    let src = from.open_table(def)?;
    let mut dst = to.open_table(def)?;
    for row in src.iter()? {
        let (k, v) = row?;
        dst.insert(k.value(), v.value())?;
    }
    Ok(())
}

/// Copies every table of `old` into `new`; refuses tables it does not know,
/// so nothing is silently left behind.
fn copy_all(old: &Database, new: &Database) -> Result<(), StoreError> {
    let r = old.begin_read()?;
    let mut w = new.begin_write()?;
    w.set_durability(redb::Durability::Immediate)?;
    for t in r.list_tables()? {
        let name = t.name().to_owned();
        match name.as_str() {
            "meta" => copy_table(&r, &w, META)?,
            "strings" => copy_table(&r, &w, STRINGS)?,
            "string_ids" => copy_table(&r, &w, STRING_IDS)?,
            "day_counts" => copy_table(&r, &w, DAY_COUNTS)?,
            "hourly" => copy_table(&r, &w, HOURLY)?,
            "dims_open" => copy_table(&r, &w, DIMS_OPEN)?,
            "dims_sealed" => copy_table(&r, &w, DIMS_SEALED)?,
            "dim_values" => copy_table(&r, &w, DIM_VALUES)?,
            "dim_value_ids" => copy_table(&r, &w, DIM_VALUE_IDS)?,
            "audit" => copy_table(&r, &w, AUDIT)?,
            n if schema::parse_day_table(schema::EVENTS_PREFIX, n).is_some() => {
                copy_table(&r, &w, schema::events_table(n))?
            }
            other => {
                return Err(StoreError::Decode(format!(
                    "table {other:?} is unknown to this build; refusing to vacuum"
                )))
            }
        }
    }
    w.commit()?;
    Ok(())
}

fn sync_dir(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

impl Store {
    /// Rewrites the store into a fresh file (see the module comment). Only
    /// the writer calls this (a command), so no write is in flight.
    pub(crate) fn vacuum(&self) -> Result<VacuumReport, StoreError> {
        let path = self.path.clone();
        let tmp = path.with_extension("redb.vacuum");
        let bytes_before = std::fs::metadata(&path).map_err(io)?.len();
        // Nobody may hold the handle (a write in flight would be lost).
        let mut slot = self.take_exclusive(true)?;
        let Some(old) = slot.take() else {
            return Err(StoreError::Unavailable);
        };
        let result = (|| {
            let _ = std::fs::remove_file(&tmp);
            let new = Database::builder()
                .set_cache_size(self.opts.cache_size)
                .create(&tmp)?;
            copy_all(&old, &new)?;
            drop(new);
            Ok::<(), StoreError>(())
        })();
        drop(old);
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            *slot = Some(std::sync::Arc::new(Self::open_database(&path, &self.opts)?));
            return Err(e);
        }
        std::fs::rename(&tmp, &path).map_err(io)?;
        sync_dir(&path)?;
        *slot = Some(std::sync::Arc::new(Self::open_database(&path, &self.opts)?));
        drop(slot);
        Ok(VacuumReport {
            bytes_before,
            bytes_after: std::fs::metadata(&path).map_err(io)?.len(),
        })
    }
}
