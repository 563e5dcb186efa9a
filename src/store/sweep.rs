//! Deleting expired data, in short transactions, for the retention sweeper.
//!
//! The rule is exact: every raw event with `ts_ms < cutoff` goes. Day
//! partitions that end at or before the cutoff are dropped whole (events
//! and the day's visitor, visit and dwell state, one transaction per day);
//! the one partition the cutoff falls into is trimmed key by key. Each step
//! is its own durable transaction, so the writer (which needs redb's single
//! write lock too) waits at most for one step, never for a whole sweep, and
//! a crash between steps leaves a consistent file that the next sweep
//! finishes. Roll-ups are trimmed by their own cutoff.

use chrono::NaiveDate;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableHandle};

use super::schema::{self, DIMS, HOURLY};
use super::{Store, StoreError};

/// What deleting everything before a cutoff involves (or involved).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExpiryPlan {
    /// Partitions entirely before the cutoff, with their event counts.
    pub whole: Vec<(NaiveDate, u64)>,
    /// The partition the cutoff falls into, with the number of its events
    /// older than the cutoff (only when that number is not zero).
    pub boundary: Option<(NaiveDate, u64)>,
}

impl ExpiryPlan {
    pub fn events(&self) -> u64 {
        self.whole.iter().map(|(_, n)| n).sum::<u64>() + self.boundary.map_or(0, |(_, n)| n)
    }
}

/// Roll-up rows older than a cutoff.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RollupExpiry {
    pub hourly_rows: u64,
    pub dim_rows: u64,
}

impl Store {
    /// Which partitions and events are older than `cutoff_ms` (read only).
    pub fn expiry_plan(&self, cutoff_ms: i64) -> Result<ExpiryPlan, StoreError> {
        let txn = self.db()?.begin_read()?;
        let boundary_day = schema::utc_day(cutoff_ms);
        let mut plan = ExpiryPlan::default();
        for day in Self::day_tables(&txn, schema::EVENTS_PREFIX)? {
            if day > boundary_day {
                break;
            }
            let name = schema::day_table_name(schema::EVENTS_PREFIX, day);
            let t = txn.open_table(schema::events_table(&name))?;
            if day < boundary_day {
                plan.whole.push((day, t.len()?));
            } else {
                let mut n = 0u64;
                for row in t.iter()? {
                    let (k, _) = row?;
                    if k.value().1 < cutoff_ms {
                        n += 1;
                    }
                }
                if n > 0 {
                    plan.boundary = Some((day, n));
                }
            }
        }
        // Day-state tables without an events table (e.g. only pings whose
        // page view expired) also count as whole partitions to drop.
        let mut extra: Vec<NaiveDate> = Vec::new();
        for prefix in &schema::DAY_PREFIXES[1..] {
            for day in Self::day_tables(&txn, prefix)? {
                if day < boundary_day
                    && !plan.whole.iter().any(|(d, _)| *d == day)
                    && !extra.contains(&day)
                {
                    extra.push(day);
                }
            }
        }
        plan.whole.extend(extra.into_iter().map(|d| (d, 0)));
        plan.whole.sort_unstable();
        Ok(plan)
    }

    /// Deletes the events of partition `day` older than `cutoff_ms`, in one
    /// durable transaction. Returns how many were deleted.
    pub fn trim_partition(&self, day: NaiveDate, cutoff_ms: i64) -> Result<u64, StoreError> {
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        let name = schema::day_table_name(schema::EVENTS_PREFIX, day);
        if !txn.list_tables()?.any(|t| t.name() == name) {
            return Ok(0);
        }
        let deleted = {
            let mut t = txn.open_table(schema::events_table(&name))?;
            let before = t.len()?;
            t.retain(|k, _| k.1 >= cutoff_ms)?;
            before - t.len()?
        };
        if deleted > 0 {
            txn.commit()?;
        }
        Ok(deleted)
    }

    /// Counts (`dry_run`) or deletes roll-up rows older than `cutoff_ms`:
    /// hourly rows of hours that start before it and daily dimension rows
    /// of site-local days before its UTC day.
    pub fn expire_rollups(
        &self,
        cutoff_ms: i64,
        dry_run: bool,
    ) -> Result<RollupExpiry, StoreError> {
        let cut_hour = schema::hour_of(cutoff_ms);
        let cut_day = schema::day_number(schema::utc_day(cutoff_ms));
        let mut out = RollupExpiry::default();
        if dry_run {
            let txn = self.db()?.begin_read()?;
            match txn.open_table(HOURLY) {
                Ok(t) => {
                    for row in t.iter()? {
                        out.hourly_rows += u64::from(row?.0.value().1 < cut_hour);
                    }
                }
                Err(redb::TableError::TableDoesNotExist(_)) => {}
                Err(e) => return Err(e.into()),
            }
            match txn.open_table(DIMS) {
                Ok(t) => {
                    for row in t.iter()? {
                        out.dim_rows += u64::from(row?.0.value().2 < cut_day);
                    }
                }
                Err(redb::TableError::TableDoesNotExist(_)) => {}
                Err(e) => return Err(e.into()),
            }
            return Ok(out);
        }
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        {
            let mut t = txn.open_table(HOURLY)?;
            let before = t.len()?;
            t.retain(|k, _| k.1 >= cut_hour)?;
            out.hourly_rows = before - t.len()?;
        }
        {
            let mut t = txn.open_table(DIMS)?;
            let before = t.len()?;
            t.retain(|k, _| k.2 >= cut_day)?;
            out.dim_rows = before - t.len()?;
        }
        txn.commit()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{test_event, StoreOptions, Writer, WriterOptions};
    use std::sync::Arc;

    #[test]
    fn plan_drop_and_trim_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path().join("db"), &StoreOptions::default()).unwrap());
        let w = Writer::spawn(store.clone(), WriterOptions::default()).unwrap();
        let day = schema::MS_PER_DAY;
        let base = 20_000 * day;
        let evs = vec![
            test_event("a", base + 100, 1),
            test_event("a", base + day + 10, 2),
            test_event("b", base + day + 20, 3),
            test_event("a", base + day + 30, 4),
            test_event("a", base + 2 * day, 5),
        ];
        w.submit(evs).unwrap().blocking_recv().unwrap().unwrap();
        w.shutdown_blocking().unwrap();
        let cutoff = base + day + 30;
        let plan = store.expiry_plan(cutoff).unwrap();
        assert_eq!(plan.whole, vec![(schema::utc_day(base), 1)]);
        assert_eq!(plan.boundary, Some((schema::utc_day(cutoff), 2)));
        assert_eq!(plan.events(), 3);
        assert_eq!(store.drop_partition(schema::utc_day(base)).unwrap(), 1);
        assert_eq!(
            store
                .trim_partition(schema::utc_day(cutoff), cutoff)
                .unwrap(),
            2
        );
        assert_eq!(store.event_count().unwrap(), 2);
        assert_eq!(store.oldest_event_ts().unwrap(), Some(cutoff));
        assert_eq!(store.expiry_plan(cutoff).unwrap(), ExpiryPlan::default());
        let r = store.expire_rollups(cutoff, true).unwrap();
        assert!(r.hourly_rows > 0);
        assert_eq!(store.expire_rollups(cutoff, false).unwrap(), r);
        assert_eq!(
            store.expire_rollups(cutoff, true).unwrap(),
            RollupExpiry::default()
        );
    }
}
