//! Table definitions and key layout of the redb file.
//!
//! Raw, personal-ish data lives in tables named per UTC day, so that the
//! retention sweeper can delete a whole day by deleting its tables, which is
//! exact and does not touch anything else:
//!
//! | table              | key                                   | value |
//! | ------------------ | ------------------------------------- | ----- |
//! | `events_YYYYMMDD`  | (site, ts_ms: i64, seq: u32)          | [`encode_event`](super::codec::encode_event) bytes |
//! | `seen_YYYYMMDD`    | (site, visitor: u64)                  | `()`  — visitors already counted that day |
//! | `visits_YYYYMMDD`  | (site, visitor: u64)                  | visit state bytes (see `rollup`) |
//! | `dwell_YYYYMMDD`   | (site, pageview_id: u64)              | max engaged ms reported (u32) |
//!
//! Aggregates, which hold no personal data and are kept on their own
//! retention, are not partitioned:
//!
//! | table     | key                                              | value |
//! | --------- | ------------------------------------------------ | ----- |
//! | `meta`    | name (`schema_version`, `next_seq`)              | u32   |
//! | `hourly`  | (site, hour: i64 hours since the epoch, UTC)     | totals (varints) |
//! | `dims`    | (site, dimension: u8, local day: i32, value)     | counters (varints) |
//!
//! redb compares tuple keys element by element, so events sort by site, then
//! time, then sequence, and a report over one site and a time range reads
//! one contiguous key range per day table. `dims` puts the dimension before
//! the date so that a "top values of one dimension over a date range" query
//! is one contiguous range too. The local day is days since 1970-01-01 in the
//! site's time zone.

use chrono::{Datelike, NaiveDate};
use redb::TableDefinition;

/// Bumped whenever the layout or an encoding changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

pub const META: TableDefinition<&str, u32> = TableDefinition::new("meta");
pub const META_SCHEMA_VERSION: &str = "schema_version";
pub const META_NEXT_SEQ: &str = "next_seq";

pub type EventKey<'a> = (&'a str, i64, u32);
pub type VisitorKey<'a> = (&'a str, u64);
pub type HourKey<'a> = (&'a str, i64);
pub type DimKey<'a> = (&'a str, u8, i32, &'a str);

pub const HOURLY: TableDefinition<HourKey<'static>, &[u8]> = TableDefinition::new("hourly");
pub const DIMS: TableDefinition<DimKey<'static>, &[u8]> = TableDefinition::new("dims");

/// Prefixes of the per-day tables; the sweeper deletes all four together.
pub const EVENTS_PREFIX: &str = "events_";
pub const SEEN_PREFIX: &str = "seen_";
pub const VISITS_PREFIX: &str = "visits_";
pub const DWELL_PREFIX: &str = "dwell_";
pub const DAY_PREFIXES: [&str; 4] = [EVENTS_PREFIX, SEEN_PREFIX, VISITS_PREFIX, DWELL_PREFIX];

pub const MS_PER_HOUR: i64 = 3_600_000;
pub const MS_PER_DAY: i64 = 86_400_000;

/// Name of a per-day table, e.g. `events_20261105`.
pub fn day_table_name(prefix: &str, day: NaiveDate) -> String {
    format!(
        "{prefix}{:04}{:02}{:02}",
        day.year(),
        day.month(),
        day.day()
    )
}

/// Parses the day out of a per-day table name with the given prefix.
pub fn parse_day_table(prefix: &str, name: &str) -> Option<NaiveDate> {
    let digits = name.strip_prefix(prefix)?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
}

pub fn events_table(name: &str) -> TableDefinition<'_, EventKey<'static>, &'static [u8]> {
    TableDefinition::new(name)
}

pub fn seen_table(name: &str) -> TableDefinition<'_, VisitorKey<'static>, ()> {
    TableDefinition::new(name)
}

pub fn visits_table(name: &str) -> TableDefinition<'_, VisitorKey<'static>, &'static [u8]> {
    TableDefinition::new(name)
}

pub fn dwell_table(name: &str) -> TableDefinition<'_, VisitorKey<'static>, u32> {
    TableDefinition::new(name)
}

/// The UTC day of a millisecond timestamp.
pub fn utc_day(ts_ms: i64) -> NaiveDate {
    let days = ts_ms.div_euclid(MS_PER_DAY);
    epoch()
        .checked_add_signed(chrono::TimeDelta::days(days))
        .unwrap_or(if days < 0 {
            NaiveDate::MIN
        } else {
            NaiveDate::MAX
        })
}

/// Hours since the epoch of a millisecond timestamp (floor).
pub fn hour_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(MS_PER_HOUR)
}

pub fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(NaiveDate::MIN)
}

/// Days since 1970-01-01, as stored in `dims` keys.
pub fn day_number(day: NaiveDate) -> i32 {
    let n = (day - epoch()).num_days();
    i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX })
}

/// Milliseconds since the epoch at 00:00 UTC of `day`.
pub fn day_start_ms(day: NaiveDate) -> i64 {
    i64::from(day_number(day)) * MS_PER_DAY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_table_names_round_trip() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 5).unwrap();
        let n = day_table_name(EVENTS_PREFIX, d);
        assert_eq!(n, "events_20261105");
        assert_eq!(parse_day_table(EVENTS_PREFIX, &n), Some(d));
        assert_eq!(parse_day_table(SEEN_PREFIX, &n), None);
        assert_eq!(parse_day_table(EVENTS_PREFIX, "events_2026110"), None);
        assert_eq!(parse_day_table(EVENTS_PREFIX, "events_20261340"), None);
    }

    #[test]
    fn day_and_hour_arithmetic() {
        assert_eq!(utc_day(0), epoch());
        assert_eq!(utc_day(-1), NaiveDate::from_ymd_opt(1969, 12, 31).unwrap());
        assert_eq!(hour_of(-1), -1);
        assert_eq!(hour_of(MS_PER_HOUR), 1);
        let d = NaiveDate::from_ymd_opt(2026, 11, 5).unwrap();
        assert_eq!(utc_day(day_start_ms(d)), d);
        assert_eq!(utc_day(day_start_ms(d) - 1), d.pred_opt().unwrap());
    }
}
