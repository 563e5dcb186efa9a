//! Roll-ups kept in ClickHouse for days whose raw events are gone, so
//! reports reach back as far as `retention.rollup_days` says, as they do
//! on the embedded store.
//!
//! ClickHouse holds raw events for `retention.raw_days`; the embedded
//! store keeps its roll-ups (hourly totals, per-dimension counters per
//! site-local day) longer. Before the sweep deletes any raw rows of a UTC
//! day, it replays the day (with the day before, whose state carries over
//! midnight) into its [`DayRollups`], takes the free text out of them as
//! the embedded sweep does for expired days ([`without_free_text`]), and
//! writes them into the `rollups` table (`schema.rs`, version 4), one
//! write per (site, UTC day). Reports then take a day's roll-ups from
//! there whenever they are stored, and replay the raw rows otherwise.
//!
//! What a row holds: the UTC day it was replayed from (the partition),
//! the site, the write's `version` and `rows` (how many rows that write
//! has), and either an hour's totals (`kind` 0, `hour`, `counts` in
//! [`Totals`] order) or one dimension value's counters on a site-local
//! day (`kind` 1, `dimension`, `local_day`, `value`, `counts`: page views,
//! visits, events). Never a visitor hash, a page-view id, an address or
//! free text.
//!
//! Idempotent per (site, day) by a version column: every write carries a
//! fresh `version` and its row count, a reader takes the newest write
//! whose rows are all there, and the sweep skips a (site, day) that
//! already has a complete write. So a sweep that crashed between writing
//! and dropping writes nothing again, two collectors sweeping at once at
//! worst write the same roll-ups twice of which one is read, and a write
//! cut short is never read.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::store::replay::{DayRollups, DimSums};
use crate::store::rollup::{without_free_text, Dimension, FREE_TEXT_DIMS};
use crate::store::sweep::FreeTextExpiry;
use crate::store::Totals;

/// The columns of the `rollups` table.
pub const COLUMNS: &str = "
    day Date,
    site String,
    version UInt64,
    rows UInt64,
    kind UInt8,
    hour Int64,
    dimension String,
    local_day Int32,
    value String,
    counts Array(Int64)";

/// `kind` of a row of hourly totals.
const HOURLY: u8 = 0;
/// `kind` of a row of a dimension value's counters.
const DIMENSION: u8 = 1;

/// One row of the `rollups` table, as written and read (`JSONEachRow`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Row {
    pub day: String,
    pub site: String,
    pub version: u64,
    pub rows: u64,
    pub kind: u8,
    pub hour: i64,
    pub dimension: String,
    pub local_day: i32,
    pub value: String,
    pub counts: Vec<i64>,
}

/// Why stored rows could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("roll-up row from ClickHouse: {0}")]
    Row(String),
}

/// `rollups` with the free text of the site-local days `expired` says
/// taken out, as the embedded sweep takes it out of days past
/// `retention.raw_days`: each value of a free-text dimension cut to what
/// [`without_free_text`] leaves (counters merged there) or left out.
/// Returns the roll-ups and what was cut.
pub fn cut_free_text(
    rollups: &DayRollups,
    expired: impl Fn(i32) -> bool,
) -> (DayRollups, FreeTextExpiry) {
    let mut cut = FreeTextExpiry::default();
    let mut dims = DimSums::default();
    for (dim, local_day, value, counts) in &rollups.dims {
        let kept = match without_free_text(*dim, value) {
            Some(rest) if FREE_TEXT_DIMS.contains(dim) && expired(*local_day) => {
                cut.rows_expired += 1;
                *cut.by_dimension.entry(*dim).or_default() += 1;
                rest
            }
            _ => value.as_str(),
        };
        if kept.is_empty() {
            continue;
        }
        let x = dims.entry((*dim, *local_day, kept.to_owned())).or_default();
        for (x, dx) in x.iter_mut().zip(counts) {
            *x += dx;
        }
    }
    (DayRollups::from_sums(rollups.hourly.clone(), dims), cut)
}

/// True when some value of a free-text dimension on a site-local day
/// `expired` says still carries free text.
pub fn holds_free_text(rollups: &DayRollups, expired: impl Fn(i32) -> bool) -> bool {
    rollups.dims.iter().any(|(dim, local_day, value, _)| {
        FREE_TEXT_DIMS.contains(dim)
            && expired(*local_day)
            && without_free_text(*dim, value).is_some()
    })
}

/// The rows of one write of `site`'s roll-ups of UTC day `day`.
pub fn to_rows(site: &str, day: NaiveDate, version: u64, rollups: &DayRollups) -> Vec<Row> {
    let rows = (rollups.hourly.len() + rollups.dims.len()) as u64;
    let day_text = day.format("%Y-%m-%d").to_string();
    let hourly = rollups.hourly.iter().map(|(hour, totals)| Row {
        day: day_text.clone(),
        site: site.to_owned(),
        version,
        rows,
        kind: HOURLY,
        hour: *hour,
        dimension: String::new(),
        local_day: 0,
        value: String::new(),
        counts: totals.to_vec(),
    });
    let dims = rollups
        .dims
        .iter()
        .map(|(dim, local_day, value, counts)| Row {
            day: day_text.clone(),
            site: site.to_owned(),
            version,
            rows,
            kind: DIMENSION,
            hour: 0,
            dimension: dim.as_str().to_owned(),
            local_day: *local_day,
            value: value.clone(),
            counts: counts.to_vec(),
        });
    hourly.chain(dims).collect()
}

/// The request body inserting `rows`.
pub fn body(rows: &[Row]) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows {
        // a row of strings and numbers always serialises
        if let Ok(line) = serde_json::to_vec(row) {
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
    }
    out
}

/// Reads the rows of a `JSONEachRow` answer and keeps, per UTC day, the
/// newest write whose rows are all there, as [`DayRollups`].
pub fn newest_complete(answer: &str) -> Result<HashMap<NaiveDate, DayRollups>, HistoryError> {
    // per day, per version: its rows
    let mut writes: HashMap<NaiveDate, HashMap<u64, Vec<Row>>> = HashMap::new();
    for line in answer.lines().filter(|l| !l.is_empty()) {
        let row: Row = serde_json::from_str(line).map_err(|e| HistoryError::Row(e.to_string()))?;
        let day = NaiveDate::parse_from_str(&row.day, "%Y-%m-%d")
            .map_err(|_| HistoryError::Row(format!("day {:?}", row.day)))?;
        writes
            .entry(day)
            .or_default()
            .entry(row.version)
            .or_default()
            .push(row);
    }
    let mut out = HashMap::new();
    for (day, versions) in writes {
        let newest = versions
            .into_iter()
            .filter(|(_, rows)| rows.first().is_some_and(|r| r.rows == rows.len() as u64))
            .max_by_key(|(version, _)| *version);
        if let Some((_, rows)) = newest {
            out.insert(day, from_rows(rows)?);
        }
    }
    Ok(out)
}

/// One write's rows as the roll-ups they hold.
fn from_rows(rows: Vec<Row>) -> Result<DayRollups, HistoryError> {
    let mut rollups = DayRollups::default();
    for row in rows {
        match row.kind {
            HOURLY => {
                let totals: [i64; Totals::FIELDS] = row
                    .counts
                    .try_into()
                    .map_err(|c| HistoryError::Row(format!("hourly counts {c:?}")))?;
                rollups.hourly.push((row.hour, totals));
            }
            DIMENSION => {
                let dim: Dimension = row
                    .dimension
                    .parse()
                    .map_err(|e| HistoryError::Row(format!("{e}")))?;
                let counts: [i64; 3] = row
                    .counts
                    .try_into()
                    .map_err(|c| HistoryError::Row(format!("dimension counts {c:?}")))?;
                rollups.dims.push((dim, row.local_day, row.value, counts));
            }
            other => return Err(HistoryError::Row(format!("kind {other}"))),
        }
    }
    rollups.hourly.sort_unstable_by_key(|(h, _)| *h);
    rollups.dims.sort_unstable();
    Ok(rollups)
}

/// The names of the free-text dimensions, as an SQL list.
pub fn free_text_dimension_list() -> String {
    FREE_TEXT_DIMS
        .iter()
        .map(|d| format!("'{}'", d.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DayRollups {
        let mut rollups = DayRollups {
            hourly: vec![(490_000, [1, 2, 3, 4, 5, 6, 7, 8, 9])],
            dims: vec![
                (
                    Dimension::Page,
                    20_000,
                    "https://a.example/x?q=secret".into(),
                    [2, 1, 0],
                ),
                (
                    Dimension::Page,
                    20_000,
                    "https://a.example/x".into(),
                    [1, 1, 0],
                ),
                (Dimension::SearchTerm, 20_000, "my name".into(), [0, 0, 4]),
                (Dimension::Browser, 20_000, "Firefox".into(), [3, 2, 0]),
                (
                    Dimension::Referrer,
                    20_000,
                    "news.example".into(),
                    [1, 1, 0],
                ),
                (
                    Dimension::Referrer,
                    20_000,
                    "https://news.example/p?id=1".into(),
                    [1, 1, 0],
                ),
            ],
        };
        rollups.dims.sort_unstable();
        rollups
    }

    #[test]
    fn free_text_is_cut_and_merged_as_the_embedded_sweep_does() {
        let (kept, none) = cut_free_text(&sample(), |_| false);
        assert_eq!((kept, none.rows_expired), (sample(), 0));
        assert!(holds_free_text(&sample(), |_| true));
        let (cut, n) = cut_free_text(&sample(), |day| day == 20_000);
        assert!(!holds_free_text(&cut, |_| true));
        assert_eq!(n.rows_expired, 3);
        assert_eq!(n.by_dimension[&Dimension::SearchTerm], 1);
        let mut want: Vec<(Dimension, i32, String, [i64; 3])> = vec![
            (
                Dimension::Page,
                20_000,
                "https://a.example/x".into(),
                [3, 2, 0],
            ),
            (
                Dimension::Referrer,
                20_000,
                "news.example".into(),
                [1, 1, 0],
            ),
            (Dimension::Browser, 20_000, "Firefox".into(), [3, 2, 0]),
        ];
        want.sort();
        assert_eq!(cut.dims, want);
        assert_eq!(cut.hourly, sample().hourly);
    }

    #[test]
    fn the_newest_complete_write_is_read() {
        let day = NaiveDate::from_ymd_opt(2025, 1, 2).unwrap();
        let (cut, _) = cut_free_text(&sample(), |_| true);
        let old = to_rows("s", day, 1, &sample());
        let new = to_rows("s", day, 2, &cut);
        // a third write cut short: one row missing
        let mut short = to_rows("s", day, 3, &sample());
        short.pop();
        let text = String::from_utf8(body(&[old, new, short].concat())).unwrap();
        let read = newest_complete(&text).unwrap();
        assert_eq!(read.get(&day), Some(&cut));
    }
}
