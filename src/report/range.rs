//! Date ranges for reports: calendar days in the site's time zone, turned
//! into the UTC instants the store works with.

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RangeError {
    #[error("`{0}` must be a date like 2026-11-23")]
    BadDate(&'static str),
    #[error("`from` must not be after `to`")]
    Reversed,
    #[error("the range may span at most {0} days")]
    TooLong(i64),
    #[error("dates must lie between the years 1 and 9999")]
    OutOfRange,
    #[error("unknown period; use today, yesterday, 7d, 30d, 90d, month, year or from/to dates")]
    BadPeriod,
}

/// A named range of days ending today (or yesterday alone).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub enum Period {
    #[default]
    #[serde(rename = "today")]
    Today,
    #[serde(rename = "yesterday")]
    Yesterday,
    #[serde(rename = "7d")]
    Last7Days,
    #[serde(rename = "30d")]
    Last30Days,
    #[serde(rename = "90d")]
    Last90Days,
    /// From the first of this month.
    #[serde(rename = "month")]
    Month,
    /// From the first of January.
    #[serde(rename = "year")]
    Year,
}

impl Period {
    /// The first and last day of the period when it is `today`.
    fn days(self, today: NaiveDate) -> (NaiveDate, NaiveDate) {
        match self {
            Period::Today => (today, today),
            Period::Yesterday => (today - Duration::days(1), today - Duration::days(1)),
            Period::Last7Days => (today - Duration::days(6), today),
            Period::Last30Days => (today - Duration::days(29), today),
            Period::Last90Days => (today - Duration::days(89), today),
            Period::Month => (today.with_day(1).unwrap_or(today), today),
            Period::Year => (today.with_ordinal(1).unwrap_or(today), today),
        }
    }
}

impl std::str::FromStr for Period {
    type Err = RangeError;

    fn from_str(s: &str) -> Result<Period, RangeError> {
        Ok(match s {
            "today" => Period::Today,
            "yesterday" => Period::Yesterday,
            "7d" => Period::Last7Days,
            "30d" => Period::Last30Days,
            "90d" => Period::Last90Days,
            "month" => Period::Month,
            "year" => Period::Year,
            _ => return Err(RangeError::BadPeriod),
        })
    }
}

/// Parses a `YYYY-MM-DD` day given as parameter `name`.
pub fn parse_day(s: &str, name: &'static str) -> Result<NaiveDate, RangeError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| RangeError::BadDate(name))
}

/// An inclusive range of local days and its UTC bounds `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub start_utc: DateTime<Utc>,
    pub end_utc: DateTime<Utc>,
}

const MAX_DAYS: i64 = 3660;

fn local_midnight(tz: &Tz, day: NaiveDate) -> DateTime<Utc> {
    let naive = day.and_hms_opt(0, 0, 0).expect("midnight exists");
    // A day that begins inside a DST gap starts at the first valid instant.
    tz.from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
        })
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(|| naive.and_utc())
}

impl DayRange {
    pub fn new(tz: &Tz, from: NaiveDate, to: NaiveDate) -> Result<DayRange, RangeError> {
        if from > to {
            return Err(RangeError::Reversed);
        }
        if (to - from).num_days() >= MAX_DAYS {
            return Err(RangeError::TooLong(MAX_DAYS));
        }
        let bounds = (
            NaiveDate::from_ymd_opt(1, 1, 1),
            NaiveDate::from_ymd_opt(9999, 12, 31),
        );
        if let (Some(first), Some(last)) = bounds {
            if from < first || to > last {
                return Err(RangeError::OutOfRange);
            }
        }
        let after = to.succ_opt().ok_or(RangeError::OutOfRange)?;
        Ok(DayRange {
            from,
            to,
            start_utc: local_midnight(tz, from),
            end_utc: local_midnight(tz, after),
        })
    }

    /// The range `from`/`to` dates name (either may be left out: `to`
    /// defaults to today, `from` to `to`), or else `period`, relative to
    /// `now` in `tz`.
    pub fn resolve(
        tz: &Tz,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        period: Period,
        now: DateTime<Utc>,
    ) -> Result<DayRange, RangeError> {
        let today = now.with_timezone(tz).date_naive();
        if from.is_some() || to.is_some() {
            let t = to.unwrap_or(today);
            return DayRange::new(tz, from.unwrap_or(t), t);
        }
        let (f, t) = period.days(today);
        DayRange::new(tz, f, t)
    }

    /// Parses `from`/`to` dates, or a `period` shortcut, relative to `now`
    /// (the period is only read when no date is given).
    pub fn parse(
        tz: &Tz,
        from: Option<&str>,
        to: Option<&str>,
        period: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<DayRange, RangeError> {
        let date = |s: Option<&str>, name: &'static str| -> Result<Option<NaiveDate>, RangeError> {
            s.filter(|s| !s.is_empty())
                .map(|s| parse_day(s, name))
                .transpose()
        };
        let (f, t) = (date(from, "from")?, date(to, "to")?);
        let period = if f.is_some() || t.is_some() {
            Period::Today
        } else {
            period.map_or(Ok(Period::Today), str::parse)?
        };
        DayRange::resolve(tz, f, t, period, now)
    }

    pub fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    /// The range of equal length just before this one (an error only when
    /// it would begin before the year 1).
    pub fn previous(&self, tz: &Tz) -> Result<DayRange, RangeError> {
        let len = Duration::days(self.days());
        match (
            self.from.checked_sub_signed(len),
            self.to.checked_sub_signed(len),
        ) {
            (Some(f), Some(t)) => DayRange::new(tz, f, t),
            _ => Err(RangeError::OutOfRange),
        }
    }

    /// The equally long range one year earlier: it begins on the same
    /// calendar date a year before (29 February begins on the 28th) and
    /// has as many days as this one, so time series line up bucket by
    /// bucket. An error only when it would begin before the year 1.
    pub fn year_before(&self, tz: &Tz) -> Result<DayRange, RangeError> {
        let from = self
            .from
            .checked_sub_months(Months::new(12))
            .ok_or(RangeError::OutOfRange)?;
        let to = from
            .checked_add_signed(Duration::days(self.days() - 1))
            .ok_or(RangeError::OutOfRange)?;
        DayRange::new(tz, from, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn berlin_day_bounds_in_utc() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2026, 7, 1).unwrap();
        let r = DayRange::new(&tz, d, d).unwrap();
        assert_eq!(r.start_utc.to_rfc3339(), "2026-06-30T22:00:00+00:00");
        assert_eq!(r.end_utc.to_rfc3339(), "2026-07-01T22:00:00+00:00");
    }

    #[test]
    fn periods_and_errors() {
        let tz = chrono_tz::UTC;
        let now = "2026-11-23T10:00:00Z".parse().unwrap();
        let r = DayRange::parse(&tz, None, None, Some("7d"), now).unwrap();
        assert_eq!(r.from.to_string(), "2026-11-17");
        assert_eq!(r.days(), 7);
        assert_eq!(r.previous(&tz).unwrap().to.to_string(), "2026-11-16");
        assert_eq!(
            DayRange::parse(&tz, Some("2026-13-01"), None, None, now),
            Err(RangeError::BadDate("from"))
        );
        assert_eq!(
            DayRange::parse(&tz, Some("2026-11-02"), Some("2026-11-01"), None, now),
            Err(RangeError::Reversed)
        );
        assert!(matches!(
            DayRange::parse(&tz, None, None, Some("forever"), now),
            Err(RangeError::BadPeriod)
        ));
    }

    #[test]
    fn the_year_before_is_equally_long_and_starts_on_the_same_date() {
        let tz = chrono_tz::UTC;
        let now = "2026-11-23T10:00:00Z".parse().unwrap();
        let r = DayRange::parse(&tz, None, None, Some("month"), now).unwrap();
        let y = r.year_before(&tz).unwrap();
        assert_eq!(
            (y.from.to_string(), y.to.to_string()),
            ("2025-11-01".into(), "2025-11-23".into())
        );
        // A range over 29 February: as long, starting a year earlier.
        let r = DayRange::parse(&tz, Some("2028-02-01"), Some("2028-03-31"), None, now).unwrap();
        let y = r.year_before(&tz).unwrap();
        assert_eq!(
            (y.from.to_string(), y.to.to_string()),
            ("2027-02-01".into(), "2027-04-01".into())
        );
        assert_eq!(y.days(), r.days());
        let leap = DayRange::parse(&tz, Some("2028-02-29"), Some("2028-02-29"), None, now).unwrap();
        assert_eq!(
            leap.year_before(&tz).unwrap().from.to_string(),
            "2027-02-28"
        );
        let first =
            DayRange::parse(&tz, Some("0001-06-01"), Some("0001-06-03"), None, now).unwrap();
        assert_eq!(first.year_before(&tz), Err(RangeError::OutOfRange));
    }

    #[test]
    fn extreme_dates_are_errors_not_panics() {
        let tz = chrono_tz::UTC;
        let now = "2026-11-23T10:00:00Z".parse().unwrap();
        for (from, to) in [
            ("+262142-12-30", "+262142-12-31"),
            ("-262143-01-01", "-262143-01-02"),
            ("0000-12-31", "0001-01-01"),
            ("9999-12-31", "10000-01-01"),
        ] {
            let r = DayRange::parse(&tz, Some(from), Some(to), None, now);
            assert!(
                matches!(r, Err(RangeError::OutOfRange) | Err(RangeError::BadDate(_))),
                "{from}..{to}: {r:?}"
            );
        }
        let first =
            DayRange::parse(&tz, Some("0001-01-01"), Some("0001-01-03"), None, now).unwrap();
        assert_eq!(first.previous(&tz), Err(RangeError::OutOfRange));
    }
}
