//! The roll-ups of closed UTC days, replayed once and kept in the
//! collector's memory, so a report over 90 days replays only the days
//! whose raw rows changed since, plus today.
//!
//! Why this is only a cache, however many collectors write: a day's
//! roll-ups ([`DayRollups`]) are a function of the raw rows of the day and
//! of the day before (`store::replay`). Each kept day carries the
//! [`Fingerprint`]s of exactly the rows it was replayed from, computed
//! from the rows as they were read. Before a report, one query asks
//! ClickHouse for the fingerprints of every day of its range as they are
//! now (`count()`, `sum(seq)`, `sum(batch)` per day, one `GROUP BY`); a
//! kept day answers only when both of its fingerprints are equal to the
//! current ones. A late event, an import or a migration adds a row (a new
//! insert id, a new receipt number), the sweep removes rows: either way
//! the day's fingerprint moves and the day is replayed again. Rows of a
//! closed day do not change otherwise.
//!
//! What it holds is what the embedded store's roll-up tables hold for the
//! same days: hourly totals and per-dimension counters per value and
//! site-local day. No visitor hash, no page-view id, no event. Free text
//! (see `store::rollup::FREE_TEXT_DIMS`) is held only for days the
//! embedded store would still hold it for: no day is kept that dates a
//! counter before the UTC day of `now - retention.raw_days`
//! ([`ReportCache::forget_before`] runs at every report and at every
//! sweep, and nothing older is taken in), and a day the sweep drops is
//! forgotten at once.
//!
//! Bounded: `clickhouse.report_cache_mb` (default 128 MiB, 0 = off) caps
//! the bytes held; past it the least recently used days go first, but
//! never one the report in progress has used: a report over more days than
//! fit keeps the days that fit rather than evicting each day before the
//! next report reaches it. Only days before today (UTC) are kept: today's
//! rows change all the time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;

use crate::store::ids::DayNumber;
use crate::store::replay::DayRollups;

/// What ClickHouse can tell cheaply about a day's rows of one site, and
/// what changes when they change: how many there are and the wrapping sums
/// of their receipt numbers (`seq`) and insert ids (`batch`, random per
/// insert). Computed by ClickHouse for the rows as they are, and by the
/// collector for the rows it read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    pub rows: u64,
    pub seq_sum: u64,
    pub batch_sum: u64,
}

impl Fingerprint {
    /// Adds one row.
    pub fn add(&mut self, seq: u64, batch: u64) {
        self.rows += 1;
        self.seq_sum = self.seq_sum.wrapping_add(seq);
        self.batch_sum = self.batch_sum.wrapping_add(batch);
    }
}

/// A kept day is valid for these rows: the day before's and its own.
pub type DayKey = (Fingerprint, Fingerprint);

struct Entry {
    key: DayKey,
    rollups: Arc<DayRollups>,
    bytes: usize,
    last_use: u64,
}

#[derive(Default)]
struct Held {
    days: HashMap<(String, NaiveDate), Entry>,
    bytes: usize,
    tick: u64,
}

/// Closed days' roll-ups of every site, shared by a collector's reports.
pub struct ReportCache {
    limit_bytes: usize,
    held: Mutex<Held>,
}

impl ReportCache {
    /// A cache of at most `limit_bytes` (0: keeps nothing).
    pub fn new(limit_bytes: usize) -> ReportCache {
        ReportCache {
            limit_bytes,
            held: Mutex::new(Held::default()),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the start of a report: days it gets or puts from now on are
    /// not evicted for its own later days (see [`ReportCache::put`]).
    pub fn begin(&self) -> u64 {
        let mut held = self.held();
        held.tick += 1;
        held.tick
    }

    /// The roll-ups of `site`'s `day`, when kept for rows whose
    /// fingerprints are `key`. A day kept for other rows is forgotten.
    pub fn get(&self, site: &str, day: NaiveDate, key: DayKey) -> Option<Arc<DayRollups>> {
        let mut held = self.held();
        held.tick += 1;
        let tick = held.tick;
        let id = (site.to_owned(), day);
        let (found, stale) = match held.days.get_mut(&id) {
            Some(entry) if entry.key == key => {
                entry.last_use = tick;
                (Some(entry.rollups.clone()), false)
            }
            Some(_) => (None, true),
            None => (None, false),
        };
        if stale {
            remove(&mut held, &id);
        }
        metrics::counter!(if found.is_some() {
            "sparsam_clickhouse_report_cache_hits_total"
        } else {
            "sparsam_clickhouse_report_cache_misses_total"
        })
        .increment(1);
        report_usage(&held);
        found
    }

    /// Keeps the roll-ups of `site`'s `day`, replayed from rows whose
    /// fingerprints are `key`, unless they date a counter before
    /// `free_text_from` (the UTC day of `now - retention.raw_days`) or do
    /// not fit: room is made by evicting the least recently used days that
    /// the report begun at `report` (see [`ReportCache::begin`]) has not
    /// used. Returns whether they are kept.
    pub fn put(
        &self,
        site: &str,
        day: NaiveDate,
        key: DayKey,
        rollups: &Arc<DayRollups>,
        free_text_from: NaiveDate,
        report: u64,
    ) -> bool {
        let bytes = rollups.bytes() + site.len() + std::mem::size_of::<Entry>();
        if bytes > self.limit_bytes
            || day < free_text_from
            || rollups
                .earliest_local_day()
                .is_some_and(|d| d < DayNumber::of(free_text_from).stored())
        {
            return false;
        }
        let mut held = self.held();
        held.tick += 1;
        let id = (site.to_owned(), day);
        remove(&mut held, &id);
        while held.bytes + bytes > self.limit_bytes {
            let Some(oldest) = held
                .days
                .iter()
                .filter(|(_, e)| e.last_use < report)
                .min_by_key(|(_, e)| e.last_use)
                .map(|(id, _)| id.clone())
            else {
                // everything held serves the report in progress
                report_usage(&held);
                return false;
            };
            remove(&mut held, &oldest);
        }
        let last_use = held.tick;
        held.bytes += bytes;
        held.days.insert(
            id,
            Entry {
                key,
                rollups: rollups.clone(),
                bytes,
                last_use,
            },
        );
        report_usage(&held);
        true
    }

    /// Forgets every day before `day` (UTC) and every day that dates a
    /// counter before it: what the sweep deletes or takes free text out
    /// of, once `day` is the UTC day of its cutoff.
    pub fn forget_before(&self, day: NaiveDate) {
        let limit = DayNumber::of(day).stored();
        let mut held = self.held();
        let gone: Vec<(String, NaiveDate)> = held
            .days
            .iter()
            .filter(|((_, d), e)| {
                *d < day || e.rollups.earliest_local_day().is_some_and(|l| l < limit)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            remove(&mut held, id);
        }
        report_usage(&held);
    }

    /// Forgets `day` of every site, and the day after it (its roll-ups can
    /// hold values of visits that started on `day`).
    pub fn forget_day(&self, day: NaiveDate) {
        let next = day.succ_opt().unwrap_or(day);
        let mut held = self.held();
        let gone: Vec<(String, NaiveDate)> = held
            .days
            .keys()
            .filter(|(_, d)| *d == day || *d == next)
            .cloned()
            .collect();
        for id in &gone {
            remove(&mut held, id);
        }
        report_usage(&held);
    }

    /// Days and bytes held.
    pub fn usage(&self) -> (usize, usize) {
        let held = self.held();
        (held.days.len(), held.bytes)
    }

    /// The (site, day) pairs held, for checks.
    pub fn days(&self) -> Vec<(String, NaiveDate)> {
        let mut days: Vec<_> = self.held().days.keys().cloned().collect();
        days.sort();
        days
    }
}

fn remove(held: &mut Held, id: &(String, NaiveDate)) {
    if let Some(entry) = held.days.remove(id) {
        held.bytes -= entry.bytes;
    }
}

fn report_usage(held: &Held) {
    metrics::gauge!("sparsam_clickhouse_report_cache_days").set(held.days.len() as f64);
    metrics::gauge!("sparsam_clickhouse_report_cache_bytes").set(held.bytes as f64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Dimension;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// A day's roll-ups with a search term counted on `local` (a free-text
    /// value) and a page view in its first hour.
    fn rollups(day: NaiveDate, local: NaiveDate, term: &str) -> Arc<DayRollups> {
        let hour = day.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp() / 3600;
        Arc::new(DayRollups {
            hourly: vec![(hour, [1, 0, 0, 0, 0, 0, 0, 0, 1])],
            dims: vec![(
                Dimension::SearchTerm,
                DayNumber::of(local).stored(),
                term.to_owned(),
                [0, 0, 1],
            )],
        })
    }

    fn key(rows: u64) -> DayKey {
        (
            Fingerprint::default(),
            Fingerprint {
                rows,
                seq_sum: rows * 7,
                batch_sum: 99,
            },
        )
    }

    #[test]
    fn a_day_answers_only_for_the_rows_it_was_replayed_from() {
        let cache = ReportCache::new(1 << 20);
        let day = date("2026-11-20");
        let r = rollups(day, day, "shoes");
        assert!(cache.put("s", day, key(3), &r, date("2026-09-01"), 0));
        assert_eq!(cache.get("s", day, key(3)), Some(r));
        // one row more: the kept day is stale and forgotten
        assert_eq!(cache.get("s", day, key(4)), None);
        assert_eq!(cache.usage().0, 0);
        assert_eq!(cache.get("s", day, key(3)), None);
        // other sites' days are their own
        assert_eq!(cache.get("t", day, key(3)), None);
    }

    #[test]
    fn free_text_past_retention_is_neither_taken_nor_kept() {
        let cache = ReportCache::new(1 << 20);
        let (d1, d2, d3) = (date("2026-11-19"), date("2026-11-20"), date("2026-11-21"));
        // a day before the free-text limit is not taken in
        assert!(!cache.put("s", d1, key(1), &rollups(d1, d1, "a"), d2, 0));
        // nor a day after it that dates a counter before it (a site whose
        // local day starts the UTC day before)
        assert!(!cache.put("s", d2, key(1), &rollups(d2, d1, "b"), d2, 0));
        assert!(cache.put("s", d2, key(1), &rollups(d2, d2, "c"), d2, 0));
        assert!(cache.put("s", d3, key(1), &rollups(d3, d3, "d"), d2, 0));
        assert!(cache.put("t", d3, key(1), &rollups(d3, d2, "e"), d2, 0));
        // the sweep's cutoff moves on a day: what dates a counter before
        // it goes, whichever UTC day holds it
        cache.forget_before(d3);
        assert_eq!(cache.days(), vec![("s".to_owned(), d3)]);
        let (days, bytes) = cache.usage();
        assert_eq!(days, 1);
        assert!(bytes > 0);
    }

    #[test]
    fn a_dropped_day_goes_with_the_day_after_it() {
        let cache = ReportCache::new(1 << 20);
        let (d1, d2, d3) = (date("2026-11-19"), date("2026-11-20"), date("2026-11-21"));
        for d in [d1, d2, d3] {
            assert!(cache.put("s", d, key(1), &rollups(d, d, "x"), d1, 0));
        }
        cache.forget_day(d1);
        assert_eq!(cache.days(), vec![("s".to_owned(), d3)]);
    }

    #[test]
    fn the_bound_holds_and_the_least_recently_used_day_goes_first() {
        let day = date("2026-11-20");
        let big = |d: NaiveDate| rollups(d, d, &"x".repeat(1000));
        let size = big(day).bytes() + 1 + std::mem::size_of::<Entry>();
        let cache = ReportCache::new(size * 3);
        let days: Vec<NaiveDate> = (0..5).map(|n| day + chrono::Days::new(n)).collect();
        let first = cache.begin();
        for d in &days[..3] {
            assert!(cache.put("s", *d, key(1), &big(*d), day, first));
        }
        // a later report uses the first day: the second is now the least
        // recently used and makes room for the fourth
        let second = cache.begin();
        assert!(cache.get("s", days[0], key(1)).is_some());
        assert!(cache.put("s", days[3], key(1), &big(days[3]), day, second));
        assert_eq!(
            cache.days(),
            vec![
                ("s".to_owned(), days[0]),
                ("s".to_owned(), days[2]),
                ("s".to_owned(), days[3])
            ]
        );
        assert!(cache.usage().1 <= size * 3);
        // a fifth day of the same report: the third day is older than the
        // report and goes; then only days this report used are left
        assert!(cache.put("s", days[4], key(1), &big(days[4]), day, second));
        assert!(!cache.put("s", days[1], key(1), &big(days[1]), day, second));
        assert_eq!(cache.usage().0, 3);
        // a day larger than the whole bound is not kept; 0 keeps nothing
        assert!(!ReportCache::new(10).put("s", day, key(1), &big(day), day, 0));
        assert!(!ReportCache::new(0).put("s", day, key(1), &big(day), day, 0));
    }
}
