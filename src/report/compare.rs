//! Comparison with the previous period (`compare=previous`) for time series
//! and breakdowns. The previous period is the equally long run of days just
//! before the range ([`DayRange::previous`]); its numbers come from the same
//! report queries run over that range. This module only lines them up with
//! the current answer, so it needs no store access and is tested on plain
//! data:
//!
//! - **Time series**: bucket `i` of the comparison covers the same stretch
//!   of the previous period as bucket `i` covers of the current one, so the
//!   two series have the same length and the comparison buckets add up to
//!   the previous period's totals. Day, week and month buckets are built
//!   from the previous period's days shifted by the period's length (a
//!   partial first week compares with an equally long stretch, not with a
//!   whole week). Hour buckets pair the `i`-th hour of each period; when a
//!   daylight-saving change makes the previous period an hour longer, its
//!   extra hour is added to the last bucket, and when it is an hour shorter
//!   the last bucket compares with nothing (zeros).
//! - **Breakdowns**: each listed value gets its counters in the previous
//!   period (zeros when it did not occur) and the relative change of the
//!   ranking metric.

use chrono::{Datelike, Duration, NaiveDate};
use chrono_tz::Tz;
use serde::Serialize;

use super::query::{Breakdown, Bucket, Interval};
use super::range::DayRange;

/// True when `d` starts a new bucket of `interval` (the range's first day
/// always does).
fn starts_bucket(interval: Interval, d: NaiveDate) -> bool {
    match interval {
        Interval::Hour | Interval::Day => true,
        Interval::Week => d.weekday().num_days_from_monday() == 0,
        Interval::Month => d.day() == 1,
    }
}

/// The comparison series for `current_len` current buckets of `interval`
/// over `range`.
///
/// `previous_fine` is the previous period's series at the finest step the
/// alignment needs: hourly buckets for [`Interval::Hour`], daily buckets
/// (one per day of `previous`, oldest first) otherwise. Each returned
/// bucket's `start` is where its stretch of the previous period begins.
pub fn align_buckets(
    tz: &Tz,
    range: &DayRange,
    previous: &DayRange,
    interval: Interval,
    current_len: usize,
    previous_fine: &[Bucket],
) -> Vec<Bucket> {
    let period_end = previous.end_utc.with_timezone(tz).to_rfc3339();
    let mut out: Vec<Bucket> = Vec::with_capacity(current_len);
    if interval == Interval::Hour {
        for i in 0..current_len {
            let mut b = match previous_fine.get(i) {
                Some(p) => p.clone(),
                None => Bucket::empty(period_end.clone()),
            };
            if i + 1 == current_len {
                for extra in previous_fine.iter().skip(current_len) {
                    b.add(extra);
                }
            }
            out.push(b);
        }
        return out;
    }
    let mut d = range.from;
    for p in previous_fine {
        if d > range.to {
            break;
        }
        if out.is_empty() || starts_bucket(interval, d) {
            out.push(Bucket::empty(p.start.clone()));
        }
        if let Some(b) = out.last_mut() {
            b.add(p);
        }
        d += Duration::days(1);
    }
    // Both periods have the same number of days, so this only pads if the
    // previous series were shorter than its range.
    while out.len() < current_len {
        out.push(Bucket::empty(period_end.clone()));
    }
    out
}

/// Present with compare=previous or compare=year: this value's counters
/// in the compared period (zeros when it did not occur there).
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PreviousRow {
    pub pageviews: u64,
    pub visits: u64,
    pub events: u64,
    /// The value's part of the compared period's metric total, 0..=1.
    #[schema(minimum = 0, maximum = 1)]
    pub share: f64,
}

/// What [`compare_rows`] adds to one current row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RowComparison {
    pub previous: PreviousRow,
    /// `(now - before) / before` of the ranking metric; `None` when the
    /// value had no count in the previous period.
    pub change: Option<f64>,
}

fn metric_of(metric: &str, pageviews: u64, visits: u64, events: u64) -> u64 {
    match metric {
        "visits" => visits,
        "events" => events,
        _ => pageviews,
    }
}

/// The previous-period counters and change for each row of `current`,
/// looked up by value in `previous` (a breakdown of the same dimension
/// over the previous period with every row, not only one page).
pub fn compare_rows(current: &Breakdown, previous: &Breakdown) -> Vec<RowComparison> {
    let before: std::collections::HashMap<&str, &super::query::Row> = previous
        .rows
        .iter()
        .map(|r| (r.value.as_str(), r))
        .collect();
    let metric = current.metric;
    current
        .rows
        .iter()
        .map(|r| {
            let prev = before
                .get(r.value.as_str())
                .map(|p| PreviousRow {
                    pageviews: p.pageviews,
                    visits: p.visits,
                    events: p.events,
                    share: p.share,
                })
                .unwrap_or_default();
            let now = metric_of(metric, r.pageviews, r.visits, r.events);
            let then = metric_of(metric, prev.pageviews, prev.visits, prev.events);
            let change = (then > 0).then(|| (now as f64 - then as f64) / then as f64);
            RowComparison {
                previous: prev,
                change,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::query::Row;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn bucket(start: &str, visits: u64) -> Bucket {
        Bucket {
            visits,
            pageviews: 2 * visits,
            ..Bucket::empty(start.to_string())
        }
    }

    #[test]
    fn days_pair_one_to_one() {
        let tz = chrono_tz::UTC;
        let r = DayRange::new(&tz, day("2026-11-10"), day("2026-11-12")).unwrap();
        let p = r.previous(&tz).unwrap();
        let fine = vec![bucket("a", 1), bucket("b", 2), bucket("c", 3)];
        let out = align_buckets(&tz, &r, &p, Interval::Day, 3, &fine);
        assert_eq!(out, fine);
    }

    #[test]
    fn weeks_compare_equally_long_stretches() {
        let tz = chrono_tz::UTC;
        // Wed 2026-11-11 .. Tue 2026-11-24: buckets Mon 9th (5 days),
        // Mon 16th (7 days), Mon 23rd (2 days).
        let r = DayRange::new(&tz, day("2026-11-11"), day("2026-11-24")).unwrap();
        let p = r.previous(&tz).unwrap();
        assert_eq!(p.from, day("2026-10-28"));
        let fine: Vec<Bucket> = (0..14).map(|i| bucket(&format!("d{i}"), i + 1)).collect();
        let out = align_buckets(&tz, &r, &p, Interval::Week, 3, &fine);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].start, "d0");
        assert_eq!(out[0].visits, 1 + 2 + 3 + 4 + 5);
        assert_eq!(out[1].start, "d5");
        assert_eq!(out[1].visits, (6..=12).sum::<u64>());
        assert_eq!(out[2].start, "d12");
        assert_eq!(out[2].visits, 13 + 14);
        let total: u64 = out.iter().map(|b| b.pageviews).sum();
        assert_eq!(total, fine.iter().map(|b| b.pageviews).sum::<u64>());
    }

    #[test]
    fn months_follow_the_current_month_starts() {
        let tz = chrono_tz::UTC;
        let r = DayRange::new(&tz, day("2026-10-30"), day("2026-11-02")).unwrap();
        let p = r.previous(&tz).unwrap();
        let fine: Vec<Bucket> = (0..4).map(|i| bucket(&format!("d{i}"), 1)).collect();
        let out = align_buckets(&tz, &r, &p, Interval::Month, 2, &fine);
        assert_eq!(out.iter().map(|b| b.visits).collect::<Vec<_>>(), vec![2, 2]);
    }

    #[test]
    fn hours_across_daylight_saving_keep_every_count() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let r = DayRange::new(&tz, day("2026-10-26"), day("2026-10-26")).unwrap();
        let p = r.previous(&tz).unwrap();
        // 2026-10-25 has 25 hours in Berlin.
        let fine: Vec<Bucket> = (0..25).map(|i| bucket(&format!("h{i}"), 1)).collect();
        let out = align_buckets(&tz, &r, &p, Interval::Hour, 24, &fine);
        assert_eq!(out.len(), 24);
        assert_eq!(out[23].visits, 2);
        assert_eq!(out.iter().map(|b| b.visits).sum::<u64>(), 25);
        // The other way round: the last current hour has no counterpart.
        let out = align_buckets(&tz, &r, &p, Interval::Hour, 25, &fine[..24]);
        assert_eq!(out.len(), 25);
        assert_eq!(out[24].visits, 0);
        assert_eq!(out[24].start, "2026-10-26T00:00:00+01:00");
    }

    fn row(value: &str, pageviews: u64, share: f64) -> Row {
        Row {
            value: value.into(),
            pageviews,
            visits: 0,
            events: 0,
            share,
        }
    }

    #[test]
    fn rows_get_previous_counters_and_change() {
        let b = |rows| Breakdown {
            dimension: "page",
            metric: "pageviews",
            total: 0,
            total_rows: 0,
            rows,
        };
        let now = b(vec![row("/a", 6, 0.6), row("/b", 4, 0.4)]);
        let before = b(vec![row("/c", 1, 0.2), row("/a", 4, 0.8)]);
        let c = compare_rows(&now, &before);
        assert_eq!(c[0].previous.pageviews, 4);
        assert_eq!(c[0].previous.share, 0.8);
        assert_eq!(c[0].change, Some(0.5));
        assert_eq!(c[1].previous, PreviousRow::default());
        assert_eq!(c[1].change, None);
    }
}
