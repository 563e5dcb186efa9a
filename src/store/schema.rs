//! Table definitions and key layout of the redb file.
//!
//! Raw events, the only personal-ish data, live in one table per UTC day,
//! so that the retention sweeper deletes a whole day by deleting its table:
//!
//! | table              | key                         | value |
//! | ------------------ | --------------------------- | ----- |
//! | `events_YYYYMMDD`  | (site, block: u32)          | an event block ([`super::codec`]) |
//! | `events_YYYYMMDD`  | (site, [`super::codec::TAIL_PIECE`] \| block << 11 \| first index) | a tail piece: the events one commit added to the block still filling, itself encoded as a block |
//!
//! Blocks of one (site, day) are numbered from 0 in the order they were
//! written; each holds up to [`super::codec::BLOCK_MAX_EVENTS`] events in
//! the order the writer processed them (time order, batch by batch). The
//! block still filling is stored as tail pieces, one per commit that added
//! to it (after a whole value under its own number when a release before
//! pieces or a sweep wrote part of it whole); once it fills it is written
//! whole and its pieces deleted. Pieces sort after every whole block, so
//! reading a site's values in key order reads its events in order.
//!
//! Strings of raw events are interned in a dictionary that expires with
//! the events: every entry carries an upper bound on the receipt time of
//! the events that use it, and the sweeper deletes entries whose bound is
//! past the retention cutoff.
//!
//! | table             | key                 | value |
//! | ----------------- | ------------------- | ----- |
//! | `strings`         | id: u32 (from 1)    | bound (ivarint ms) + tagged bytes |
//! | `string_ids`      | tagged bytes        | id: u32 (entries newer than the last fold: see below) |
//! | `day_counts`      | (day: i32, site)    | events: u64 |
//! | `rollup_folded`   | (day: i32, site)    | events the roll-ups include: u64 |
//!
//! Aggregates hold no addresses or visitor values and have their own
//! retention, except for free text in dimension values (search terms, URL
//! queries), which the sweep cuts with the raw events (`sweep.rs`). Their
//! dimension values are interned in a dictionary of their own:
//!
//! | table             | key                                        | value |
//! | ----------------- | ------------------------------------------ | ----- |
//! | `meta`            | name                                       | u32   |
//! | `hourly`          | (site, hour: i64 hours since the epoch)    | totals (varints) |
//! | `dims_open`       | (site, dimension: u8, local day: i32, value id: u32) | counters |
//! | `dims_sealed`     | (site, dimension: u8, local day: i32)      | all values of that day, packed |
//! | `dim_values`      | value id: u32 (from 1)                     | string |
//! | `dim_value_ids`   | string                                     | value id |
//! | `audit`           | see `retention::audit`                     | |
//!
//! The writer counts into `dims_open`, one row per value; once a site's
//! local day is over it *seals* the day: all of its rows for a dimension
//! become one packed value in `dims_sealed`. A 90-day report then reads 90
//! packed values per dimension instead of hundreds of thousands of rows.
//! Rows that arrive for a sealed day later (log import) stay in
//! `dims_open` until the next sealing; readers add both.
//!
//! The reverse indexes `string_ids` and `dim_value_ids` serve only the
//! writer's interning: a commit writes a new entry to `strings` (or
//! `dim_values`), which is all a reader needs, and the writer keeps it in
//! memory until the next fold writes the index rows of every entry since
//! `meta.string_ids_from` (`dim_value_ids_from`) at once. Index rows land
//! on random pages, so one per new entry and commit cost a page each.
//! After a crash the writer indexes the entries past those marks when it
//! starts (`super::dict::index_new_entries`).
//!
//! Batches do not write `hourly` and `dims_open` themselves: the writer
//! holds their changes in memory and folds them in at a bounded cadence,
//! recording in `rollup_folded` how far each day's events are included;
//! events past that are replayed at start-up (`super::open_rollups`).
//! Days are numbered from 1970-01-01: UTC days for partitions, the site's
//! local days for dimension roll-ups.

use chrono::{Datelike, NaiveDate};
use redb::TableDefinition;

pub use super::ids::{DayNumber, DimValueId, StringId};

/// Bumped whenever the layout or an encoding changes incompatibly.
/// Version 3 added custom-event columns to event blocks (block version 3);
/// version 4 added tail pieces (keys with [`super::codec::TAIL_PIECE`]
/// set), which a version 3 reader would take for blocks out of order.
/// Version 2 and 3 files are upgraded in place on open (their blocks are
/// read as they are; a block still filling, stored whole, gets pieces
/// after it), and older sparsam releases refuse a version 4 file by name.
pub const SCHEMA_VERSION: u32 = 4;

/// The schema before custom events; opened and stamped as version 4.
pub const SCHEMA_VERSION_V2: u32 = 2;

/// The schema before tail pieces; opened and stamped as version 4.
pub const SCHEMA_VERSION_V3: u32 = 3;

pub const META: TableDefinition<&str, u32> = TableDefinition::new("meta");
pub const META_SCHEMA_VERSION: &str = "schema_version";
pub const META_NEXT_STRING: &str = "next_string_id";
pub const META_NEXT_DIM_VALUE: &str = "next_dim_value_id";
/// Set once `rollup_folded` holds the watermarks of every day (a store
/// written before roll-ups were folded gets them at its day counts).
pub const META_ROLLUP_WATERMARKS: &str = "rollup_watermarks";
/// Every raw dictionary entry with an id below this has its `string_ids`
/// row; those at or past it get theirs at the next fold (or when the
/// writer starts), see `super::dict::index_new_entries`.
pub const META_STRING_IDS_FROM: &str = "string_ids_from";
/// Likewise for `dim_values` and `dim_value_ids`.
pub const META_DIM_VALUE_IDS_FROM: &str = "dim_value_ids_from";

pub type BlockKey<'a> = (&'a str, u32);
pub type HourKey<'a> = (&'a str, i64);
pub type DimKey<'a> = (&'a str, u8, DayNumber, DimValueId);
pub type SealedKey<'a> = (&'a str, u8, DayNumber);
pub type DayCountKey<'a> = (DayNumber, &'a str);

pub const STRINGS: TableDefinition<StringId, &[u8]> = TableDefinition::new("strings");
pub const STRING_IDS: TableDefinition<&[u8], StringId> = TableDefinition::new("string_ids");
pub const DAY_COUNTS: TableDefinition<DayCountKey<'static>, u64> =
    TableDefinition::new("day_counts");
/// Per (UTC day, site): how many of the day's events, in block order, the
/// roll-up tables include (see `super::open_rollups`).
pub const ROLLUP_FOLDED: TableDefinition<DayCountKey<'static>, u64> =
    TableDefinition::new("rollup_folded");
pub const HOURLY: TableDefinition<HourKey<'static>, &[u8]> = TableDefinition::new("hourly");
pub const DIMS_OPEN: TableDefinition<DimKey<'static>, &[u8]> = TableDefinition::new("dims_open");
pub const DIMS_SEALED: TableDefinition<SealedKey<'static>, &[u8]> =
    TableDefinition::new("dims_sealed");
pub const DIM_VALUES: TableDefinition<DimValueId, &str> = TableDefinition::new("dim_values");
pub const DIM_VALUE_IDS: TableDefinition<&str, DimValueId> = TableDefinition::new("dim_value_ids");
/// The audit log (see `retention::audit`): id -> JSON record.
pub const AUDIT: TableDefinition<u64, &str> = TableDefinition::new("audit");

/// Prefix of the per-day event tables.
pub const EVENTS_PREFIX: &str = "events_";

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

pub fn events_table(name: &str) -> TableDefinition<'_, BlockKey<'static>, &'static [u8]> {
    TableDefinition::new(name)
}

/// The UTC day of a millisecond timestamp.
pub fn utc_day(ts_ms: i64) -> NaiveDate {
    let days = ts_ms.div_euclid(MS_PER_DAY);
    chrono::TimeDelta::try_days(days)
        .and_then(|d| epoch().checked_add_signed(d))
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

/// Milliseconds since the epoch at 00:00 UTC of `day`.
pub fn day_start_ms(day: NaiveDate) -> i64 {
    DayNumber::of(day).start_ms()
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
        assert_eq!(parse_day_table("seen_", &n), None);
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
        assert_eq!(utc_day(i64::MIN), NaiveDate::MIN);
        assert_eq!(utc_day(i64::MAX), NaiveDate::MAX);
    }
}
