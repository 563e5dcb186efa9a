//! The two string dictionaries: one for raw events, one for roll-ups.
//!
//! Raw events refer to their strings (URL, title, referrer, campaign,
//! device classification, download target, search term) by number. Each
//! entry of the raw dictionary carries an upper bound on the receipt time
//! of every event that uses it (the end of the hour of its latest use), so
//! the retention sweeper can delete exactly the entries that no surviving
//! event can use: those whose bound is at or before the cutoff. A search
//! term typed once is therefore gone at most an hour after its event.
//!
//! Roll-ups (counts that live as long as the roll-up retention says, less
//! their free text, which goes with the raw data) number their dimension
//! values in a dictionary of their own; a value goes once no roll-up row
//! uses it.
//!
//! The writer thread owns [`RawInterner`] and [`DimInterner`]: they cache
//! lookups in memory and write new entries in the writer's transaction;
//! the reverse index rows of new entries (text -> id, which only the
//! writer reads) wait in memory for the next fold ([`index_new_entries`]).
//! Readers resolve numbers with [`resolve_raw`] and [`resolve_dim`].

use std::collections::HashMap;

use redb::{ReadableTable, Table, WriteTransaction};

use super::codec::{decode_interned, put_ivarint, Interned, Reader};
use super::ids::{DimValueId, StringId};
use super::schema::{hour_of, MS_PER_HOUR};
use super::schema::{
    DIM_VALUES, DIM_VALUE_IDS, META, META_DIM_VALUE_IDS_FROM, META_NEXT_DIM_VALUE,
    META_NEXT_STRING, META_STRING_IDS_FROM, STRINGS, STRING_IDS,
};
use super::StoreError;

/// Most entries a writer-side cache holds before it starts over.
pub(crate) const CACHE_LIMIT: usize = 200_000;

/// The bound recorded for a use at `ts_ms`: the end of its UTC hour.
pub fn bound_for(ts_ms: i64) -> i64 {
    hour_of(ts_ms).saturating_add(1).saturating_mul(MS_PER_HOUR)
}

/// Splits a stored raw-dictionary value into (bound, tagged bytes).
pub fn split_raw_value(v: &[u8]) -> Result<(i64, &[u8]), StoreError> {
    let mut r = Reader::new(v, "dictionary entry");
    let bound = r.ivarint()?;
    Ok((bound, r.rest()))
}

fn raw_value(bound: i64, key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(10 + key.len());
    put_ivarint(&mut v, bound);
    v.extend_from_slice(key);
    v
}

/// Writer-side interning into the raw dictionary.
/// The next id of a dictionary (ids start at 1, are never reused), and
/// whether it moved since it was last persisted.
#[derive(Default)]
struct IdSeq {
    next: u32,
    dirty: bool,
}

impl IdSeq {
    fn new(next: u32) -> Self {
        IdSeq {
            next: next.max(1),
            dirty: false,
        }
    }

    /// Hands out the next id; `what` names the dictionary in the error.
    fn alloc(&mut self, what: &str) -> Result<u32, StoreError> {
        let id = self.next;
        self.next = id
            .checked_add(1)
            .ok_or_else(|| StoreError::Decode(format!("{what} ids exhausted")))?;
        self.dirty = true;
        Ok(id)
    }

    /// The next id to persist, if it changed since the last call.
    fn take(&mut self) -> Option<u32> {
        std::mem::take(&mut self.dirty).then_some(self.next)
    }
}

#[derive(Default)]
pub(crate) struct RawInterner {
    /// tagged bytes -> (id, bound as stored)
    cache: HashMap<Vec<u8>, (StringId, i64)>,
    /// Entries made since `string_ids` was last brought up to date (at a
    /// fold): tagged bytes -> id. Their index rows are not written yet.
    unindexed: HashMap<Vec<u8>, StringId>,
    ids: IdSeq,
}

/// The raw dictionary's tables, open in the writer's transaction.
pub(crate) struct RawTables<'t> {
    pub strings: Table<'t, StringId, &'static [u8]>,
    pub ids: Table<'t, &'static [u8], StringId>,
}

impl RawInterner {
    pub(crate) fn new(next_id: u32) -> Self {
        RawInterner {
            cache: HashMap::new(),
            unindexed: HashMap::new(),
            ids: IdSeq::new(next_id),
        }
    }

    /// True when entries wait for their `string_ids` rows.
    pub(crate) fn has_unindexed(&self) -> bool {
        !self.unindexed.is_empty()
    }

    /// The index rows of every entry were written ([`index_new_entries`]
    /// committed).
    pub(crate) fn indexed(&mut self) {
        self.unindexed.clear();
    }

    /// Forgets the cached ids (some may have been deleted); the next
    /// lookups read the tables.
    pub(crate) fn forget_cached(&mut self) {
        self.cache.clear();
    }

    /// Forgets the cached ids of these keys (their entries were deleted).
    pub(crate) fn forget_keys<'k>(&mut self, keys: impl IntoIterator<Item = &'k [u8]>) {
        for key in keys {
            self.cache.remove(key);
            self.unindexed.remove(key);
        }
    }

    /// The id of `key` (tagged bytes), creating the entry if needed, and
    /// making sure its bound covers a use at `ts_ms`.
    pub(crate) fn intern(
        &mut self,
        t: &mut RawTables<'_>,
        key: Vec<u8>,
        ts_ms: i64,
    ) -> Result<StringId, StoreError> {
        let need = bound_for(ts_ms);
        if let Some(&(id, bound)) = self.cache.get(&key) {
            if bound >= need {
                return Ok(id);
            }
        }
        let cached = self.cache.get(&key).copied();
        let known = match cached {
            Some((id, _)) => Some(id),
            None => match self.unindexed.get(&key) {
                Some(&id) => Some(id),
                None => t.ids.get(key.as_slice())?.map(|v| v.value()),
            },
        };
        let existing = match cached {
            Some((id, bound)) => Some((id, bound)),
            None => match known {
                Some(id) => {
                    let bound = match t.strings.get(id)? {
                        Some(v) => split_raw_value(v.value())?.0,
                        None => {
                            return Err(StoreError::Decode(format!(
                                "dictionary id {id} has no entry"
                            )))
                        }
                    };
                    Some((id, bound))
                }
                None => None,
            },
        };
        let id = match existing {
            Some((id, bound)) if bound >= need => {
                self.remember(key, id, bound);
                return Ok(id);
            }
            Some((id, _)) => id,
            None => {
                // the index row waits for the next fold
                let id = StringId::from_stored(self.ids.alloc("dictionary")?);
                self.unindexed.insert(key.clone(), id);
                id
            }
        };
        t.strings.insert(id, raw_value(need, &key).as_slice())?;
        self.remember(key, id, need);
        Ok(id)
    }

    fn remember(&mut self, key: Vec<u8>, id: StringId, bound: i64) {
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.clear();
        }
        self.cache.insert(key, (id, bound));
    }
}

/// Writes the reverse index rows (`string_ids`, `dim_value_ids`) of every
/// dictionary entry made since the marks in `meta`, and brings the
/// dictionaries' next ids in `meta` up to the entries (a commit writes its
/// new entries, not the next id), in `txn`. The writer runs it in every
/// fold and when it (re)starts, so what a crash or a failed batch kept
/// only in memory is written from the entries themselves. A file without
/// the marks (written when every entry got its row at once) gets them
/// here. Returns the index rows written.
pub(crate) fn index_new_entries(txn: &WriteTransaction) -> Result<u64, StoreError> {
    let mut meta = txn.open_table(META)?;
    let mut written = 0u64;
    let strings = txn.open_table(STRINGS)?;
    let values = txn.open_table(DIM_VALUES)?;
    // ids are never handed out twice: past the highest entry, and past
    // what meta recorded (the highest entries may have been deleted)
    let next_after = |recorded: Option<u32>, last: Option<u32>| {
        recorded
            .unwrap_or(1)
            .max(last.map_or(1, |l| l.saturating_add(1)))
    };
    let recorded_raw = meta.get(META_NEXT_STRING)?.map(|v| v.value());
    let next_raw = next_after(
        recorded_raw,
        strings.last()?.map(|(k, _)| k.value().stored()),
    );
    let recorded_dim = meta.get(META_NEXT_DIM_VALUE)?.map(|v| v.value());
    let next_dim = next_after(
        recorded_dim,
        values.last()?.map(|(k, _)| k.value().stored()),
    );
    if recorded_raw != Some(next_raw) {
        meta.insert(META_NEXT_STRING, next_raw)?;
    }
    if recorded_dim != Some(next_dim) {
        meta.insert(META_NEXT_DIM_VALUE, next_dim)?;
    }

    let from_raw = meta.get(META_STRING_IDS_FROM)?.map(|v| v.value());
    if let Some(from) = from_raw.filter(|&f| f < next_raw) {
        let mut ids = txn.open_table(STRING_IDS)?;
        for row in strings.range(StringId::from_stored(from)..)? {
            let (id, v) = row?;
            ids.insert(split_raw_value(v.value())?.1, id.value())?;
            written += 1;
        }
    }
    if from_raw != Some(next_raw) {
        meta.insert(META_STRING_IDS_FROM, next_raw)?;
    }
    let from_dim = meta.get(META_DIM_VALUE_IDS_FROM)?.map(|v| v.value());
    if let Some(from) = from_dim.filter(|&f| f < next_dim) {
        let mut ids = txn.open_table(DIM_VALUE_IDS)?;
        for row in values.range(DimValueId::from_stored(from)..)? {
            let (id, v) = row?;
            ids.insert(v.value(), id.value())?;
            written += 1;
        }
    }
    if from_dim != Some(next_dim) {
        meta.insert(META_DIM_VALUE_IDS_FROM, next_dim)?;
    }
    Ok(written)
}

/// Looks up raw dictionary entry `id`.
pub fn resolve_raw(
    strings: &impl ReadableTable<StringId, &'static [u8]>,
    id: StringId,
) -> Result<Interned, StoreError> {
    match strings.get(id)? {
        Some(v) => decode_interned(split_raw_value(v.value())?.1),
        None => Err(StoreError::Decode(format!(
            "event refers to dictionary entry {id}, which does not exist"
        ))),
    }
}

/// Writer-side interning into the roll-up dictionary.
#[derive(Default)]
pub(crate) struct DimInterner {
    cache: HashMap<Box<str>, DimValueId>,
    /// Values added since `dim_value_ids` was last brought up to date.
    unindexed: HashMap<Box<str>, DimValueId>,
    ids: IdSeq,
}

/// The roll-up dictionary's tables, open in the writer's transaction.
pub(crate) struct DimTables<'t> {
    pub values: Table<'t, DimValueId, &'static str>,
    pub ids: Table<'t, &'static str, DimValueId>,
}

impl DimInterner {
    pub(crate) fn new(next_id: u32) -> Self {
        DimInterner {
            cache: HashMap::new(),
            unindexed: HashMap::new(),
            ids: IdSeq::new(next_id),
        }
    }

    /// True when values wait for their `dim_value_ids` rows.
    pub(crate) fn has_unindexed(&self) -> bool {
        !self.unindexed.is_empty()
    }

    /// The index rows of every value were written.
    pub(crate) fn indexed(&mut self) {
        self.unindexed.clear();
    }

    /// The next id to hand out, if it changed since the last call.
    pub(crate) fn take_next(&mut self) -> Option<u32> {
        self.ids.take()
    }

    /// Forgets the cached ids (some may have been deleted).
    pub(crate) fn forget_cached(&mut self) {
        self.cache.clear();
    }

    /// Forgets the cached ids of these values (they were deleted).
    pub(crate) fn forget_values<'v>(&mut self, values: impl IntoIterator<Item = &'v str>) {
        for value in values {
            self.cache.remove(value);
            self.unindexed.remove(value);
        }
    }

    /// The id of dimension value `s`; none for the empty string (never
    /// counted).
    pub(crate) fn intern(
        &mut self,
        t: &mut DimTables<'_>,
        s: &str,
    ) -> Result<DimValueId, StoreError> {
        if s.is_empty() {
            return Ok(DimValueId::NONE);
        }
        if let Some(&id) = self.cache.get(s) {
            return Ok(id);
        }
        let found = match self.unindexed.get(s) {
            Some(&id) => Some(id),
            None => t.ids.get(s)?.map(|v| v.value()),
        };
        let id = match found {
            Some(id) => id,
            None => {
                // the index row waits for the next fold
                let id = DimValueId::from_stored(self.ids.alloc("dimension value")?);
                t.values.insert(id, s)?;
                self.unindexed.insert(s.into(), id);
                id
            }
        };
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.clear();
        }
        self.cache.insert(s.into(), id);
        Ok(id)
    }
}

/// Looks up roll-up dictionary entry `id`.
pub fn resolve_dim(
    values: &impl ReadableTable<DimValueId, &'static str>,
    id: DimValueId,
) -> Result<String, StoreError> {
    match values.get(id)? {
        Some(v) => Ok(v.value().to_owned()),
        None => Err(StoreError::Decode(format!(
            "roll-up refers to dimension value {id}, which does not exist"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_cover_the_whole_hour_of_use() {
        assert_eq!(bound_for(0), MS_PER_HOUR);
        assert_eq!(bound_for(MS_PER_HOUR - 1), MS_PER_HOUR);
        assert_eq!(bound_for(MS_PER_HOUR), 2 * MS_PER_HOUR);
        assert_eq!(bound_for(-1), 0);
        let v = raw_value(bound_for(5), b"\0abc");
        assert_eq!(split_raw_value(&v).unwrap(), (MS_PER_HOUR, &b"\0abc"[..]));
    }
}
