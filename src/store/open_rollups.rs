//! Roll-up changes the writer holds in memory between two folds.
//!
//! Writing the roll-ups of every batch into `hourly` and `dims_open` made
//! each commit rewrite the same hot rows (today's hours, the page-text
//! dimensions of the open day): a batch of ~50 events dirtied ~180 B-tree
//! pages, over 10 KiB written per event. So a batch commits only its raw
//! events (the blocks, the day counts and new dictionary entries), which
//! is all an acknowledgement needs to be durable; its roll-up changes are
//! added here, to [`OpenRollups`], once the commit succeeded. The writer
//! *folds* them into the tables at a bounded cadence (every
//! `rollup_fold_interval`, every `rollup_fold_events` events, when the
//! rows held here pass `rollup_max_rows`, before every maintenance step
//! and seal, and at shutdown), in one transaction that also records, per
//! (UTC day, site), how many of the day's events the tables now include
//! (`rollup_folded`, the watermark).
//!
//! A crash loses only this memory: at start-up the writer replays the
//! events of each (day, site) past its watermark through the visit engine
//! (`super::apply::WriterState::recover`) and folds what they add, so the
//! reports after a crash equal those before it.
//!
//! Readers of roll-ups ([`super::Store::timeseries_hours`],
//! [`super::Store::ranked`]) add what is held here to what they read from
//! the tables. A fold takes the lock for writing around its commit and
//! the clearing of what it folded, and a reader begins its read
//! transaction under the lock for reading, so every reader sees each
//! change exactly once: in the tables or here.

use super::ids::{DayNumber, DimValueId};
use std::collections::{BTreeMap, HashMap};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use redb::{ReadableTable, WriteTransaction};

use super::rollup::{add_signed, decode_signed, decode_totals, encode_signed, encode_totals};
use super::rollup::{Dimension, Totals};
use super::schema::{self, DimKey, HourKey, DIMS_OPEN, HOURLY, ROLLUP_FOLDED};
use super::StoreError;

/// Signed changes of one hour's totals, in [`Totals`] field order.
pub(crate) type HourDelta = [i64; Totals::FIELDS];

/// Roll-up changes of one site.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SiteDelta {
    /// Hour (since the epoch) -> totals change.
    pub hourly: BTreeMap<i64, HourDelta>,
    /// (dimension, local day, value id) -> counters change.
    pub dims: BTreeMap<(u8, DayNumber, DimValueId), [i64; 3]>,
}

/// Roll-up changes by site, in the tables' terms (roll-up value ids).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RollupDelta {
    pub sites: HashMap<String, SiteDelta>,
}

impl RollupDelta {
    /// The changes of `site`, made on first use.
    pub(crate) fn site(&mut self, site: &str) -> &mut SiteDelta {
        if !self.sites.contains_key(site) {
            self.sites.insert(site.to_owned(), SiteDelta::default());
        }
        self.sites
            .get_mut(site)
            .unwrap_or_else(|| unreachable!("inserted above"))
    }

    /// Adds `other` to these changes.
    pub(crate) fn merge(&mut self, other: RollupDelta) {
        for (site, d) in other.sites {
            let mine = self.site(&site);
            for (hour, h) in d.hourly {
                let x = mine.hourly.entry(hour).or_default();
                for (a, b) in x.iter_mut().zip(h) {
                    *a += b;
                }
            }
            for (key, c) in d.dims {
                let x = mine.dims.entry(key).or_default();
                add_signed(x, c);
            }
        }
    }

    /// Rows held (hours and dimension values), what memory grows with.
    pub(crate) fn rows(&self) -> usize {
        self.sites
            .values()
            .map(|s| s.hourly.len() + s.dims.len())
            .sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    /// Adds these changes to the `hourly` and `dims_open` rows in `txn`,
    /// as every batch once did itself: totals saturate at zero, a
    /// dimension row whose counters come back to zero is removed.
    pub(crate) fn write(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        let mut hourly = txn.open_table(HOURLY)?;
        for (site, d) in &self.sites {
            for (&hour, delta) in &d.hourly {
                let key: HourKey = (site.as_str(), hour);
                let old = match hourly.get(key)? {
                    Some(v) => decode_totals(v.value())?,
                    None => Totals::default(),
                };
                hourly.insert(key, encode_totals(&add_hour(old, delta)).as_slice())?;
            }
        }
        drop(hourly);
        let mut dims = txn.open_table(DIMS_OPEN)?;
        for (site, d) in &self.sites {
            for (&(dim, day, id), &c) in &d.dims {
                if c == [0; 3] {
                    continue;
                }
                let key: DimKey = (site.as_str(), dim, day, id);
                let mut new = match dims.get(key)? {
                    Some(v) => decode_signed(v.value())?,
                    None => [0; 3],
                };
                add_signed(&mut new, c);
                if new == [0; 3] {
                    dims.remove(key)?;
                } else {
                    dims.insert(key, encode_signed(new).as_slice())?;
                }
            }
        }
        Ok(())
    }
}

/// `old` totals with a signed change applied (saturating at zero).
pub(crate) fn add_hour(old: Totals, delta: &HourDelta) -> Totals {
    let mut a = old.as_array();
    for (x, dx) in a.iter_mut().zip(delta) {
        *x = x.saturating_add_signed(*dx);
    }
    Totals::from_array(a)
}

/// Events of one (UTC day, site) that the roll-up tables include once the
/// next fold commits: the day's event count after the last batch.
pub(crate) type Watermarks = HashMap<(DayNumber, String), u64>;

/// The committed roll-up changes not folded into the tables yet, shared
/// by the writer (which adds and folds) and the readers (which add them
/// to what the tables say). See the module comment.
#[derive(Default)]
pub(crate) struct OpenRollups {
    held: RwLock<Held>,
}

#[derive(Default)]
pub(crate) struct Held {
    pub delta: RollupDelta,
    /// Where each (UTC day, site) stands once `delta` is folded.
    pub watermarks: Watermarks,
    /// Events committed since the last fold.
    pub events: u64,
}

impl OpenRollups {
    /// Reads what is held (briefly: a fold waits for readers).
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Held> {
        self.held.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds the roll-up changes of a committed batch of `events` events,
    /// with the day counts it left. Only the writer thread calls this,
    /// after the commit and before it answers the batch.
    pub(crate) fn add(
        &self,
        delta: RollupDelta,
        counts: Vec<(DayNumber, String, u64)>,
        events: u64,
    ) {
        let mut held = self.held.write().unwrap_or_else(PoisonError::into_inner);
        held.delta.merge(delta);
        for (day, site, n) in counts {
            held.watermarks.insert((day, site), n);
        }
        held.events += events;
        metrics::gauge!("sparsam_store_unfolded_events").set(held.events as f64);
    }

    /// Events committed since the last fold, and rows held.
    pub(crate) fn pending(&self) -> (u64, usize) {
        let held = self.read();
        (held.events, held.delta.rows())
    }

    /// True when nothing waits for a fold.
    pub(crate) fn is_empty(&self) -> bool {
        let held = self.read();
        held.delta.is_empty() && held.watermarks.is_empty()
    }

    /// Folds everything held into the tables in one durable transaction
    /// of `db`, with the watermarks, and runs `also` in it (the writer
    /// writes the dictionaries' index rows there). Only the writer thread
    /// calls this (it alone adds, so nothing is added while the rows are
    /// written); readers wait only for the commit itself. On failure
    /// everything stays held, for the next attempt. Returns the events
    /// folded.
    pub(crate) fn fold(
        &self,
        db: &redb::Database,
        also: impl FnOnce(&WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let started = std::time::Instant::now();
        let mut txn = db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        let events = {
            let held = self.read();
            held.delta.write(&txn)?;
            write_watermarks(&txn, &held.watermarks)?;
            held.events
        };
        also(&txn)?;
        let mut held = self.held.write().unwrap_or_else(PoisonError::into_inner);
        txn.commit()?;
        *held = Held::default();
        drop(held);
        metrics::gauge!("sparsam_store_unfolded_events").set(0.0);
        metrics::counter!("sparsam_store_rollup_folds_total").increment(1);
        metrics::histogram!("sparsam_store_rollup_fold_seconds")
            .record(started.elapsed().as_secs_f64());
        Ok(events)
    }
}

/// Records the watermarks in `txn`.
pub(crate) fn write_watermarks(
    txn: &WriteTransaction,
    marks: &Watermarks,
) -> Result<(), StoreError> {
    let mut t = txn.open_table(ROLLUP_FOLDED)?;
    for ((day, site), n) in marks {
        t.insert((*day, site.as_str()), *n)?;
    }
    Ok(())
}

/// Sets the watermark of (`day`, `site`) to `count` (all of the day's
/// events folded) or removes it with the day. Maintenance that deletes
/// events calls this in its own transaction, after a fold, next to the
/// day count it changes.
pub(crate) fn set_watermark(
    txn: &WriteTransaction,
    day: DayNumber,
    site: &str,
    count: Option<u64>,
) -> Result<(), StoreError> {
    let mut t = txn.open_table(ROLLUP_FOLDED)?;
    match count {
        Some(n) => t.insert((day, site), n)?,
        None => t.remove((day, site))?,
    };
    Ok(())
}

/// The (UTC day, site) pairs whose events the roll-up tables do not all
/// include, with how many they do and how many there are. A store written
/// before watermarks existed (its roll-ups written with every batch) gets
/// a watermark at each day count first, in `txn`.
pub(crate) fn unfolded_days(
    txn: &WriteTransaction,
) -> Result<Vec<(DayNumber, String, u64, u64)>, StoreError> {
    let mut meta = txn.open_table(schema::META)?;
    let adopted = meta.get(schema::META_ROLLUP_WATERMARKS)?.is_some();
    let counts = txn.open_table(schema::DAY_COUNTS)?;
    let mut folded = txn.open_table(ROLLUP_FOLDED)?;
    let mut out = Vec::new();
    for row in counts.iter()? {
        let (k, v) = row?;
        let (day, site) = k.value();
        let n = v.value();
        if !adopted {
            folded.insert((day, site), n)?;
            continue;
        }
        let done = folded.get((day, site))?.map_or(0, |v| v.value());
        if n > done {
            out.push((day, site.to_owned(), done, n));
        }
    }
    if !adopted {
        meta.insert(schema::META_ROLLUP_WATERMARKS, 1)?;
    }
    Ok(out)
}

/// The held hourly changes of `site` for the hours in `[from_h, to_h)`.
pub(crate) fn held_hours(held: &Held, site: &str, from_h: i64, to_h: i64) -> Vec<(i64, HourDelta)> {
    match held.delta.sites.get(site) {
        Some(d) if from_h < to_h => d
            .hourly
            .range(from_h..to_h)
            .map(|(&h, &d)| (h, d))
            .collect(),
        _ => Vec::new(),
    }
}

/// The held dimension changes of `site` for `dim` over local days
/// `from..=to`: (value id, counters change).
pub(crate) fn held_dims(
    held: &Held,
    site: &str,
    dim: Dimension,
    from: DayNumber,
    to: DayNumber,
) -> Vec<(DimValueId, [i64; 3])> {
    let Some(d) = held.delta.sites.get(site) else {
        return Vec::new();
    };
    if from > to {
        return Vec::new();
    }
    let dim = dim as u8;
    d.dims
        .range((dim, from, DimValueId::NONE)..=(dim, to, DimValueId::MAX))
        .map(|(&(_, _, id), &c)| (id, c))
        .collect()
}
