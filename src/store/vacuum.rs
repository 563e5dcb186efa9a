//! Rewriting the store into a fresh file, so deleted data is gone from the
//! disk file and not only from the tables.
//!
//! redb deletes by marking pages free; the old bytes stay in the file until
//! the space is reused, and a page that lost entries can keep their bytes
//! in its unused tail. After a retention sweep, expired URLs, search terms
//! and shortened addresses could therefore still be read from the raw
//! file. [`Store::vacuum`] copies every table, entry by entry, into a new
//! file (whose pages hold nothing else), syncs it, and renames it over the
//! old one.
//!
//! Ingest goes on while it copies: the copy ([`Store::vacuum_copy`]) runs
//! on the caller's thread and reads a snapshot, and the writer keeps
//! committing to the old file. Only for the catch-up does the vacuum take
//! the store for itself: [`Store::vacuum_swap`] runs on the writer thread
//! (a command, so no batch is in flight; batches queue meanwhile), takes
//! the database handle exclusively (readers wait), copies what changed
//! since the snapshot and swaps the files. The catch-up compares the
//! snapshot with the current state table by table; for event blocks it
//! compares only each (day, site)'s values from the snapshot's last block
//! on (that block's whole value and every tail piece), because the writer
//! only appends pieces and blocks, writes the block that fills whole and
//! deletes its pieces (old blocks change only in a sweep, and a vacuum runs after its sweep,
//! never beside one). So the wait is about the size of the dictionaries
//! and roll-ups plus the changes, not of the events. The new file holds
//! the same data, so the writer's memory stays valid. Like the store file
//! itself, the new file is readable by its owner only.

use std::path::Path;

use std::cmp::Ordering;

use redb::{
    Database, Key, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableHandle,
    Value, WriteTransaction,
};

use super::codec::BlockPlace;
use super::schema::{self, AUDIT, DAY_COUNTS, DIMS_OPEN, DIMS_SEALED, DIM_VALUES, DIM_VALUE_IDS};
use super::schema::{HOURLY, META, ROLLUP_FOLDED, STRINGS, STRING_IDS};
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

/// The tables a store has besides the event partitions.
const NAMED_TABLES: [&str; 11] = [
    "meta",
    "strings",
    "string_ids",
    "day_counts",
    "rollup_folded",
    "hourly",
    "dims_open",
    "dims_sealed",
    "dim_values",
    "dim_value_ids",
    "audit",
];

/// Refuses tables this build does not know, so nothing is silently left
/// behind.
fn check_known(r: &ReadTransaction) -> Result<(), StoreError> {
    for t in r.list_tables()? {
        let name = t.name();
        if !NAMED_TABLES.contains(&name)
            && schema::parse_day_table(schema::EVENTS_PREFIX, name).is_none()
        {
            return Err(StoreError::Decode(format!(
                "table {name:?} is unknown to this build; refusing to vacuum"
            )));
        }
    }
    Ok(())
}

/// Copies every table of snapshot `r` into `w`.
fn copy_all(r: &ReadTransaction, w: &WriteTransaction) -> Result<(), StoreError> {
    check_known(r)?;
    for t in r.list_tables()? {
        let name = t.name().to_owned();
        match name.as_str() {
            "meta" => copy_table(r, w, META)?,
            "strings" => copy_table(r, w, STRINGS)?,
            "string_ids" => copy_table(r, w, STRING_IDS)?,
            "day_counts" => copy_table(r, w, DAY_COUNTS)?,
            "rollup_folded" => copy_table(r, w, ROLLUP_FOLDED)?,
            "hourly" => copy_table(r, w, HOURLY)?,
            "dims_open" => copy_table(r, w, DIMS_OPEN)?,
            "dims_sealed" => copy_table(r, w, DIMS_SEALED)?,
            "dim_values" => copy_table(r, w, DIM_VALUES)?,
            "dim_value_ids" => copy_table(r, w, DIM_VALUE_IDS)?,
            "audit" => copy_table(r, w, AUDIT)?,
            n => copy_table(r, w, schema::events_table(n))?,
        }
    }
    Ok(())
}

fn open_in<K: Key + 'static, V: Value + 'static>(
    r: &ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, StoreError> {
    match r.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Makes table `def` in `w` (a copy of it in snapshot `then`) equal to
/// its state in `now`, by one ordered pass over both. Returns how many
/// entries it wrote or removed.
fn sync_table<K: Key + 'static, V: Value + 'static>(
    then: &ReadTransaction,
    now: &ReadTransaction,
    w: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<u64, StoreError> {
    let (Some(a), Some(b)) = (open_in(then, def)?, open_in(now, def)?) else {
        return match open_in(now, def)? {
            Some(b) => {
                let mut dst = w.open_table(def)?;
                let mut n = 0;
                for row in b.iter()? {
                    let (k, v) = row?;
                    dst.insert(k.value(), v.value())?;
                    n += 1;
                }
                Ok(n)
            }
            None => Ok(u64::from(w.delete_table(def)?)),
        };
    };
    let mut dst = w.open_table(def)?;
    let mut changes = 0u64;
    let mut ia = a.iter()?;
    let mut ib = b.iter()?;
    let mut x = ia.next().transpose()?;
    let mut y = ib.next().transpose()?;
    loop {
        let order = match (&x, &y) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((ka, _)), Some((kb, _))) => K::compare(
                K::as_bytes(&ka.value()).as_ref(),
                K::as_bytes(&kb.value()).as_ref(),
            ),
        };
        match order {
            Ordering::Less => {
                if let Some((ka, _)) = &x {
                    dst.remove(ka.value())?;
                    changes += 1;
                }
                x = ia.next().transpose()?;
            }
            Ordering::Greater => {
                if let Some((kb, vb)) = &y {
                    dst.insert(kb.value(), vb.value())?;
                    changes += 1;
                }
                y = ib.next().transpose()?;
            }
            Ordering::Equal => {
                if let (Some((_, va)), Some((kb, vb))) = (&x, &y) {
                    if V::as_bytes(&va.value()).as_ref() != V::as_bytes(&vb.value()).as_ref() {
                        dst.insert(kb.value(), vb.value())?;
                        changes += 1;
                    }
                }
                x = ia.next().transpose()?;
                y = ib.next().transpose()?;
            }
        }
    }
    Ok(changes)
}

/// Like [`sync_table`] for one event partition, but per site only from
/// the snapshot's last block on (see the module comment).
fn sync_events(
    then: &ReadTransaction,
    now: &ReadTransaction,
    w: &WriteTransaction,
    name: &str,
) -> Result<u64, StoreError> {
    let def = schema::events_table(name);
    let (Some(a), Some(b)) = (open_in(then, def)?, open_in(now, def)?) else {
        return sync_table(then, now, w, def);
    };
    let mut dst = w.open_table(def)?;
    let mut changes = 0u64;
    let mut sites: Vec<String> = Vec::new();
    for t in [&a, &b] {
        let mut next = t.first()?.map(|(k, _)| k.value().0.to_owned());
        while let Some(site) = next {
            next = t
                .range::<schema::BlockKey>((
                    std::ops::Bound::Excluded((site.as_str(), u32::MAX)),
                    std::ops::Bound::Unbounded,
                ))?
                .next()
                .transpose()?
                .map(|(k, _)| k.value().0.to_owned());
            if !sites.contains(&site) {
                sites.push(site);
            }
        }
    }
    for site in &sites {
        let s = site.as_str();
        // the block the snapshot ended in: its whole value, if any, sorts
        // before its pieces, and blocks that filled since come after it
        let from = a
            .range::<schema::BlockKey>((s, 0)..=(s, u32::MAX))?
            .next_back()
            .transpose()?
            .map_or(0, |(k, _)| BlockPlace::of_key(k.value().1).block);
        let mut stale: Vec<u32> = Vec::new();
        for row in a.range::<schema::BlockKey>((s, from)..=(s, u32::MAX))? {
            stale.push(row?.0.value().1);
        }
        for row in b.range::<schema::BlockKey>((s, from)..=(s, u32::MAX))? {
            let (k, v) = row?;
            let no = k.value().1;
            stale.retain(|x| *x != no);
            dst.insert((s, no), v.value())?;
            changes += 1;
        }
        for no in stale {
            dst.remove((s, no))?;
            changes += 1;
        }
    }
    Ok(changes)
}

/// Brings `w` (a copy of snapshot `then`) up to `now`. Returns how many
/// entries it wrote or removed.
fn catch_up(
    then: &ReadTransaction,
    now: &ReadTransaction,
    w: &WriteTransaction,
) -> Result<u64, StoreError> {
    check_known(now)?;
    let mut n = 0;
    n += sync_table(then, now, w, META)?;
    n += sync_table(then, now, w, STRINGS)?;
    n += sync_table(then, now, w, STRING_IDS)?;
    n += sync_table(then, now, w, DAY_COUNTS)?;
    n += sync_table(then, now, w, ROLLUP_FOLDED)?;
    n += sync_table(then, now, w, HOURLY)?;
    n += sync_table(then, now, w, DIMS_OPEN)?;
    n += sync_table(then, now, w, DIMS_SEALED)?;
    n += sync_table(then, now, w, DIM_VALUES)?;
    n += sync_table(then, now, w, DIM_VALUE_IDS)?;
    n += sync_table(then, now, w, AUDIT)?;
    let mut days: Vec<String> = Vec::new();
    for r in [then, now] {
        for t in r.list_tables()? {
            let name = t.name().to_owned();
            if schema::parse_day_table(schema::EVENTS_PREFIX, &name).is_some()
                && !days.contains(&name)
            {
                days.push(name);
            }
        }
    }
    for name in &days {
        n += sync_events(then, now, w, name)?;
    }
    Ok(n)
}

fn sync_dir(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

/// A vacuum's copy of a snapshot, waiting for its catch-up and swap.
pub(crate) struct VacuumCopy {
    /// The new file, holding the snapshot's data.
    new: Database,
    /// The snapshot it was copied from, held until the catch-up.
    then: ReadTransaction,
    tmp: std::path::PathBuf,
    bytes_before: u64,
    copy_ms: u64,
}

/// Creates `path` empty, readable and writable by its owner only (Unix),
/// before redb initialises it: it will hold what the store file holds.
fn private_file(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

impl Store {
    /// The bulk of a vacuum: copies a snapshot of every table into a new
    /// file. Runs on the caller's thread while the writer goes on.
    pub(crate) fn vacuum_copy(&self) -> Result<VacuumCopy, StoreError> {
        let path = self.path.clone();
        let tmp = copy_path(&path);
        let bytes_before = std::fs::metadata(&path).map_err(io)?.len();
        let _ = std::fs::remove_file(&tmp);
        private_file(&tmp)?;
        let new = Database::builder()
            .set_cache_size(self.opts.cache_size)
            .create(&tmp)?;
        let started = std::time::Instant::now();
        let then = self.db()?.begin_read()?;
        let copied = (|| {
            let mut w = new.begin_write()?;
            w.set_durability(redb::Durability::None)?;
            copy_all(&then, &w)?;
            w.commit()?;
            Ok::<(), StoreError>(())
        })();
        if let Err(e) = copied {
            drop(new);
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(VacuumCopy {
            new,
            then,
            tmp,
            bytes_before,
            copy_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// The end of a vacuum: brings `copy` up to date and renames it over
    /// the store file. Only the writer calls this (a command), so no write
    /// is in flight.
    pub(crate) fn vacuum_swap(&self, copy: VacuumCopy) -> Result<VacuumReport, StoreError> {
        let VacuumCopy {
            new,
            then,
            tmp,
            bytes_before,
            copy_ms,
        } = copy;
        let path = self.path.clone();
        // Nobody may hold the handle (a write in flight would be lost).
        let mut slot = match self.take_exclusive(true) {
            Ok(slot) => slot,
            Err(e) => {
                drop(new);
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let held = std::time::Instant::now();
        let Some(old) = slot.take() else {
            drop(new);
            let _ = std::fs::remove_file(&tmp);
            return Err(StoreError::Unavailable);
        };
        let caught_up = (|| {
            let now = old.begin_read()?;
            let mut w = new.begin_write()?;
            w.set_durability(redb::Durability::Immediate)?;
            let n = catch_up(&then, &now, &w)?;
            w.commit()?;
            Ok::<u64, StoreError>(n)
        })();
        drop(then);
        let changes = match caught_up {
            Ok(n) => n,
            Err(e) => {
                drop(new);
                let _ = std::fs::remove_file(&tmp);
                *slot = Some(old);
                return Err(e);
            }
        };
        // The new handle stays open across the rename (it keeps its file),
        // so nobody waits for the file to be opened again; the old one is
        // closed once the store is released.
        if let Err(e) = std::fs::rename(&tmp, &path).map_err(io) {
            drop(new);
            let _ = std::fs::remove_file(&tmp);
            *slot = Some(old);
            return Err(e);
        }
        // the rename is durable before the writer commits to the new file
        let synced = sync_dir(&path);
        *slot = Some(std::sync::Arc::new(new));
        drop(slot);
        let held_ms = held.elapsed().as_millis() as u64;
        drop(old);
        synced?;
        tracing::info!(
            copy_ms,
            caught_up_entries = changes,
            store_held_ms = held_ms,
            "store file rewritten"
        );
        Ok(VacuumReport {
            bytes_before,
            bytes_after: std::fs::metadata(&path).map_err(io)?.len(),
        })
    }
}

/// Where a vacuum writes its copy of the store at `store_path`.
fn copy_path(store_path: &Path) -> std::path::PathBuf {
    store_path.with_extension("redb.vacuum")
}

/// Removes the copy an interrupted vacuum left beside the store (killed
/// mid-copy, or failed before the swap): it is a full copy of the store as
/// it was, so it would keep swept events and free text past their time
/// where neither the sweep nor the audit looks. Returns whether one was
/// there. Called at start-up, before the store opens.
pub fn remove_leftover_copy(store_path: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(copy_path(store_path)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;
    use std::sync::Arc;

    use super::*;
    use crate::store::codec::{BLOCK_MAX_EVENTS, TAIL_PIECE};
    use crate::store::{test_event, StoreOptions, Writer, WriterOptions};

    /// Keys of the events table of day 0 (1970-01-01) of site `s`.
    fn keys(store: &Store) -> Vec<u32> {
        let txn = store.db().unwrap().begin_read().unwrap();
        let name = schema::day_table_name(schema::EVENTS_PREFIX, schema::epoch());
        let t = txn.open_table(schema::events_table(&name)).unwrap();
        t.range::<schema::BlockKey>(("s", 0)..=("s", u32::MAX))
            .unwrap()
            .map(|r| r.unwrap().0.value().1)
            .collect()
    }

    /// The snapshot a vacuum copies ends in tail pieces of a block that
    /// fills before the catch-up: the new file holds that block whole,
    /// none of its pieces, and the pieces of the next block, so every
    /// event is there once and in order.
    #[test]
    fn a_block_that_fills_during_the_copy_is_caught_up_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let store = Arc::new(Store::open(&path, &StoreOptions::default()).unwrap());
        let writer = Writer::spawn(store.clone(), WriterOptions::default()).unwrap();
        let write = |from: usize, to: usize| {
            let events: Vec<_> = (from..to)
                .map(|i| test_event("s", 1_000 + i as i64, (i % 37) as u64))
                .collect();
            for batch in events.chunks(100) {
                let rx = writer.submit(batch.to_vec()).unwrap();
                rx.blocking_recv().unwrap().unwrap();
            }
        };
        let before = BLOCK_MAX_EVENTS - 24;
        write(0, before);
        assert!(keys(&store).iter().all(|k| k & TAIL_PIECE != 0));
        let copy = store.vacuum_copy().unwrap();
        write(before, before + 100);
        writer.shutdown_blocking().unwrap();
        store.vacuum_swap(copy).unwrap();

        let k = keys(&store);
        assert_eq!(k[0], 0, "the filled block is whole: {k:x?}");
        assert!(
            k[1..].iter().all(|&k| {
                let place = BlockPlace::of_key(k);
                place.piece && place.block == 1
            }),
            "only pieces of the next block follow: {k:x?}"
        );
        let mut seen = Vec::new();
        store
            .scan_events("s", 0, i64::MAX / 2, |e| {
                seen.push(e.ts_ms);
                ControlFlow::Continue(())
            })
            .unwrap();
        let want: Vec<i64> = (0..before + 100).map(|i| 1_000 + i as i64).collect();
        assert_eq!(seen, want);
    }
}
