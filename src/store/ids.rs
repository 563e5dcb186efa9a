//! The numbers the store hands out, each its own type so one cannot be
//! passed where another is meant: a raw-dictionary id is not a roll-up
//! value id, and a day number is not a count.
//!
//! Each type is stored exactly as the number it wraps: its redb encoding
//! and type name are the wrapped integer's, so tables keyed or valued by
//! these types read and write the same bytes as the plain integers did and
//! existing files open unchanged.

use std::cmp::Ordering;
use std::fmt;

use chrono::NaiveDate;
use redb::{Key, TypeName, Value};

use super::schema;

/// Implements redb's `Value` and `Key` for a newtype over an integer by
/// delegating to the integer's own (same bytes, same type name).
macro_rules! stored_as {
    ($name:ident, $int:ty) => {
        impl Value for $name {
            type SelfType<'a> = $name;
            type AsBytes<'a> = <$int as Value>::AsBytes<'a>;

            fn fixed_width() -> Option<usize> {
                <$int as Value>::fixed_width()
            }

            fn from_bytes<'a>(data: &'a [u8]) -> $name
            where
                Self: 'a,
            {
                $name(<$int as Value>::from_bytes(data))
            }

            fn as_bytes<'a, 'b: 'a>(value: &'a $name) -> Self::AsBytes<'a>
            where
                Self: 'b,
            {
                <$int as Value>::as_bytes(&value.0)
            }

            fn type_name() -> TypeName {
                <$int as Value>::type_name()
            }
        }

        impl Key for $name {
            fn compare(data1: &[u8], data2: &[u8]) -> Ordering {
                <$int as Key>::compare(data1, data2)
            }
        }
    };
}

/// An entry of the raw-event dictionary (`strings`): a URL, title,
/// referrer, campaign, device classification, search term or custom-event
/// name or properties. Ids start at 1 and are never reused; [`StringId::NONE`]
/// (0) stands for "nothing" in an event's column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StringId(u32);

impl StringId {
    /// No string: the column is empty.
    pub const NONE: StringId = StringId(0);

    /// The id stored as `n` (in a block column or a table).
    pub const fn from_stored(n: u32) -> StringId {
        StringId(n)
    }

    /// The number as stored.
    pub const fn stored(self) -> u32 {
        self.0
    }

    pub const fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The id as an index (for tables indexed by id).
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for StringId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

stored_as!(StringId, u32);

impl From<StringId> for u64 {
    /// The number as written into an event block's column.
    fn from(id: StringId) -> u64 {
        u64::from(id.0)
    }
}

/// A value of the roll-up dictionary (`dim_values`): a page, referrer
/// host, browser name... as counted in roll-ups. Ids start at 1;
/// [`DimValueId::NONE`] (0) is the empty value, never counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DimValueId(u32);

impl DimValueId {
    /// The empty value.
    pub const NONE: DimValueId = DimValueId(0);
    /// The highest id, for ranges over all values.
    pub const MAX: DimValueId = DimValueId(u32::MAX);

    /// The id stored as `n`.
    pub const fn from_stored(n: u32) -> DimValueId {
        DimValueId(n)
    }

    /// The number as stored.
    pub const fn stored(self) -> u32 {
        self.0
    }

    pub const fn is_none(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for DimValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

stored_as!(DimValueId, u32);

/// A day as stored in keys: days since 1970-01-01. A UTC day for raw
/// events and day counts, a site's local day for dimension roll-ups
/// (the table says which).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DayNumber(i32);

impl DayNumber {
    /// Lowest and highest day numbers, for ranges over all days.
    pub const MIN: DayNumber = DayNumber(i32::MIN);
    pub const MAX: DayNumber = DayNumber(i32::MAX);

    /// The number of `day` (saturating far outside chrono's range).
    pub fn of(day: NaiveDate) -> DayNumber {
        let n = (day - schema::epoch()).num_days();
        DayNumber(i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX }))
    }

    /// The day with this number (inverse of [`DayNumber::of`]).
    pub fn date(self) -> NaiveDate {
        chrono::TimeDelta::try_days(i64::from(self.0))
            .and_then(|d| schema::epoch().checked_add_signed(d))
            .unwrap_or(if self.0 < 0 {
                NaiveDate::MIN
            } else {
                NaiveDate::MAX
            })
    }

    /// The day number stored as `n`.
    pub const fn from_stored(n: i32) -> DayNumber {
        DayNumber(n)
    }

    /// The number as stored.
    pub const fn stored(self) -> i32 {
        self.0
    }

    /// The day after this one (saturating).
    pub const fn next(self) -> DayNumber {
        DayNumber(self.0.saturating_add(1))
    }

    /// The day before this one (saturating).
    pub const fn previous(self) -> DayNumber {
        DayNumber(self.0.saturating_sub(1))
    }

    /// This day moved by `days` (saturating).
    pub const fn plus(self, days: i32) -> DayNumber {
        DayNumber(self.0.saturating_add(days))
    }

    /// Days from `earlier` to this day.
    pub const fn days_since(self, earlier: DayNumber) -> i64 {
        self.0 as i64 - earlier.0 as i64
    }

    /// Milliseconds since the epoch at 00:00 UTC of this day.
    pub const fn start_ms(self) -> i64 {
        self.0 as i64 * schema::MS_PER_DAY
    }
}

impl fmt::Display for DayNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.date())
    }
}

stored_as!(DayNumber, i32);

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

    /// A table written with plain integers reads back through the
    /// newtypes and the other way round: the file format is unchanged.
    #[test]
    fn newtypes_read_and_write_the_integers_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("ids.redb")).unwrap();
        let plain: TableDefinition<(i32, u32), u32> = TableDefinition::new("t");
        let typed: TableDefinition<(DayNumber, StringId), DimValueId> = TableDefinition::new("t");
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(plain).unwrap();
            t.insert((-3, 7), 9).unwrap();
            t.insert((5, 1), 2).unwrap();
        }
        txn.commit().unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(typed).unwrap();
            let v = t
                .get((DayNumber::from_stored(-3), StringId::from_stored(7)))
                .unwrap()
                .unwrap()
                .value();
            assert_eq!(v, DimValueId::from_stored(9));
            t.insert(
                (DayNumber::from_stored(-4), StringId::from_stored(1)),
                DimValueId::from_stored(4),
            )
            .unwrap();
        }
        txn.commit().unwrap();
        let read = db.begin_read().unwrap();
        let t = read.open_table(plain).unwrap();
        let keys: Vec<(i32, u32)> = t.iter().unwrap().map(|e| e.unwrap().0.value()).collect();
        assert_eq!(keys, [(-4, 1), (-3, 7), (5, 1)], "ordered as the integers");
        assert_eq!(t.get((-4, 1)).unwrap().unwrap().value(), 4);
    }

    #[test]
    fn day_numbers_round_trip() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        assert_eq!(DayNumber::of(d).date(), d);
        assert_eq!(DayNumber::of(schema::epoch()), DayNumber::from_stored(0));
        assert_eq!(DayNumber::of(d).next().date(), d.succ_opt().unwrap());
        assert_eq!(DayNumber::MAX.next(), DayNumber::MAX);
        assert_eq!(DayNumber::of(d).to_string(), "2026-12-05");
    }
}
