//! Report queries over the store boundary ([`Storage`]): summary, time
//! series, breakdowns and the realtime counter. Without filters they read
//! the roll-ups (hourly totals, per-day dimension counters), so a 90-day
//! report costs a few thousand small reads however busy the site is. With
//! filters they ask for a scan of the raw events of the range
//! ([`Storage::filtered`]); raw events exist only for the retention
//! period, so filtered reports cannot reach further back.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::filter::Filter;
use super::range::DayRange;
use crate::storage::{
    Counters, Counting, Dimension, FilteredAnswer, FilteredQuery, SortBy, Storage, StorageError,
    Totals,
};

/// Which data answered a report. rollup: answered from roll-ups
/// (unfiltered); raw: from a scan of raw events (filtered), which only
/// exist for the retention period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Roll-ups (unfiltered reports).
    Rollup,
    /// A scan of raw events (filtered reports, realtime).
    Raw,
}

/// Errors of report queries.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StorageError),
    /// The request cannot be answered as asked (the client's to change).
    #[error("{0}")]
    Invalid(String),
    /// A broken invariant between the report code and the store.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Asks the store a filtered question.
fn filtered(
    store: &dyn Storage,
    site: &str,
    (from_ms, to_ms): (i64, i64),
    filters: &[Filter],
    counting: Counting,
) -> Result<FilteredAnswer, ReportError> {
    Ok(store.filtered(&FilteredQuery {
        site,
        from_ms,
        to_ms,
        filters,
        counting,
    })?)
}

fn other_shape(counting: Counting, answer: &FilteredAnswer) -> ReportError {
    ReportError::Internal(format!(
        "the store answered a {counting:?} query with {}",
        match answer {
            FilteredAnswer::Hourly(_) => "hourly totals",
            FilteredAnswer::Rows(_) => "rows",
            FilteredAnswer::Live { .. } => "live counts",
        }
    ))
}

/// Rows of a filtered breakdown (or of no-result searches).
fn filtered_rows(
    store: &dyn Storage,
    site: &str,
    range: (i64, i64),
    filters: &[Filter],
    counting: Counting,
) -> Result<std::collections::HashMap<String, Counters>, ReportError> {
    match filtered(store, site, range, filters, counting)? {
        FilteredAnswer::Rows(rows) => Ok(rows),
        other => Err(other_shape(counting, &other)),
    }
}

/// Time-series bucket size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    Hour,
    Day,
    Week,
    Month,
}

impl std::str::FromStr for Interval {
    type Err = ReportError;

    fn from_str(s: &str) -> Result<Interval, ReportError> {
        Ok(match s {
            "hour" => Interval::Hour,
            "day" => Interval::Day,
            "week" => Interval::Week,
            "month" => Interval::Month,
            _ => {
                return Err(ReportError::Invalid(
                    "unknown interval; use hour, day, week or month".into(),
                ))
            }
        })
    }
}

/// Most days an hourly series may span.
pub const MAX_HOURLY_DAYS: i64 = 93;

/// Headline numbers of a range.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SummaryNumbers {
    pub pageviews: u64,
    pub visits: u64,
    pub visitors: u64,
    pub views_per_visit: f64,
    pub bounce_rate: f64,
    pub avg_dwell_seconds: f64,
    pub downloads: u64,
    pub outbound: u64,
    pub searches: u64,
}

impl From<&Totals> for SummaryNumbers {
    fn from(t: &Totals) -> Self {
        let visits = t.visits as f64;
        let per_visit = |x: f64| if visits > 0.0 { x / visits } else { 0.0 };
        SummaryNumbers {
            pageviews: t.pageviews,
            visits: t.visits,
            visitors: t.visitors,
            views_per_visit: per_visit(t.pageviews as f64),
            bounce_rate: per_visit(t.bounces as f64),
            avg_dwell_seconds: per_visit(t.dwell_ms_sum as f64) / 1000.0,
            downloads: t.downloads,
            outbound: t.outbound,
            searches: t.searches,
        }
    }
}

/// One time-series bucket.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Bucket {
    /// Bucket start in the site's time zone (RFC 3339).
    #[schema(format = DateTime)]
    pub start: String,
    pub pageviews: u64,
    pub visits: u64,
    pub visitors: u64,
    pub bounces: u64,
    pub downloads: u64,
    pub outbound: u64,
    pub searches: u64,
}

/// One breakdown row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    pub value: String,
    pub pageviews: u64,
    pub visits: u64,
    pub events: u64,
    /// This row's part of the ranking metric's total, 0..=1.
    pub share: f64,
}

/// A page of a breakdown.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Breakdown {
    pub dimension: &'static str,
    /// The counter rows are ranked by (`pageviews`, `visits` or `events`).
    pub metric: &'static str,
    /// Sum of the metric over all rows (not only this page).
    pub total: u64,
    pub total_rows: usize,
    pub rows: Vec<Row>,
}

fn hourly(
    store: &dyn Storage,
    site: &str,
    range: &DayRange,
    filters: &[Filter],
) -> Result<(Vec<(i64, Totals)>, Source), ReportError> {
    let (a, b) = (
        range.start_utc.timestamp_millis(),
        range.end_utc.timestamp_millis(),
    );
    if filters.is_empty() {
        return Ok((store.hourly_totals(site, a, b)?, Source::Rollup));
    }
    match filtered(store, site, (a, b), filters, Counting::Hourly)? {
        FilteredAnswer::Hourly(hours) => Ok((hours, Source::Raw)),
        other => Err(other_shape(Counting::Hourly, &other)),
    }
}

/// Totals over `range`.
pub fn summary(
    store: &dyn Storage,
    site: &str,
    range: &DayRange,
    filters: &[Filter],
) -> Result<(Totals, Source), ReportError> {
    let (hours, source) = hourly(store, site, range, filters)?;
    let mut t = Totals::default();
    for (_, h) in &hours {
        t.add(h);
    }
    Ok((t, source))
}

fn bucket_day(interval: Interval, d: NaiveDate) -> NaiveDate {
    match interval {
        Interval::Week => d - Duration::days(i64::from(d.weekday().num_days_from_monday())),
        Interval::Month => d.with_day(1).unwrap_or(d),
        Interval::Hour | Interval::Day => d,
    }
}

fn local_start(tz: &Tz, d: NaiveDate) -> String {
    let naive = d.and_hms_opt(0, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| naive.and_utc().to_rfc3339())
}

fn add_totals(b: &mut Bucket, t: &Totals) {
    b.pageviews += t.pageviews;
    b.visits += t.visits;
    b.visitors += t.visitors;
    b.bounces += t.bounces;
    b.downloads += t.downloads;
    b.outbound += t.outbound;
    b.searches += t.searches;
}

impl Bucket {
    /// A bucket starting at `start` with nothing counted.
    pub(crate) fn empty(start: String) -> Bucket {
        Bucket {
            start,
            ..Bucket::default()
        }
    }

    /// Adds `o`'s counts (not its start).
    pub(crate) fn add(&mut self, o: &Bucket) {
        self.pageviews += o.pageviews;
        self.visits += o.visits;
        self.visitors += o.visitors;
        self.bounces += o.bounces;
        self.downloads += o.downloads;
        self.outbound += o.outbound;
        self.searches += o.searches;
    }
}

/// Buckets covering `range` in the site's time zone, empty ones as zeros.
/// Hours are UTC hours labelled in local time (exact for whole-hour
/// offsets); days, weeks (Monday first) and months are local.
pub fn timeseries(
    store: &dyn Storage,
    site: &str,
    tz: &Tz,
    range: &DayRange,
    interval: Interval,
    filters: &[Filter],
) -> Result<(Vec<Bucket>, Source), ReportError> {
    if interval == Interval::Hour && range.days() > MAX_HOURLY_DAYS {
        return Err(ReportError::Invalid(format!(
            "interval=hour covers at most {MAX_HOURLY_DAYS} days; use interval=day for longer ranges"
        )));
    }
    let (hours, source) = hourly(store, site, range, filters)?;
    if interval == Interval::Hour {
        let first = range.start_utc.timestamp_millis().div_euclid(3_600_000);
        let last = range.end_utc.timestamp_millis().div_euclid(3_600_000);
        let mut out: Vec<Bucket> = (first..last)
            .map(|h| {
                let t: DateTime<Utc> = DateTime::from_timestamp(h * 3600, 0).unwrap_or_default();
                Bucket::empty(t.with_timezone(tz).to_rfc3339())
            })
            .collect();
        for (h, t) in &hours {
            if let Some(b) = usize::try_from(h - first).ok().and_then(|i| out.get_mut(i)) {
                add_totals(b, t);
            }
        }
        return Ok((out, source));
    }
    let mut buckets: BTreeMap<NaiveDate, Bucket> = BTreeMap::new();
    let mut d = range.from;
    while d <= range.to {
        let k = bucket_day(interval, d);
        buckets
            .entry(k)
            .or_insert_with(|| Bucket::empty(local_start(tz, k)));
        d += Duration::days(1);
    }
    for (h, t) in &hours {
        let Some(at) = DateTime::from_timestamp(h * 3600, 0) else {
            continue;
        };
        let k = bucket_day(interval, at.with_timezone(tz).date_naive());
        if let Some(b) = buckets.get_mut(&k) {
            add_totals(b, t);
        }
    }
    Ok((buckets.into_values().collect(), source))
}

fn metric_name(by: SortBy) -> &'static str {
    match by {
        SortBy::Pageviews => "pageviews",
        SortBy::Visits => "visits",
        SortBy::Events => "events",
    }
}

/// What a breakdown lists: a roll-up [`Dimension`], or site-search terms
/// whose searches reported no results (known only from raw events, for
/// pages that report result counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakdownKind {
    Dim(Dimension),
    SearchNoResults,
}

/// Name of [`BreakdownKind::SearchNoResults`] in URLs.
pub const SEARCH_NO_RESULTS: &str = "search_no_results";

impl BreakdownKind {
    pub fn parse(s: &str) -> Option<BreakdownKind> {
        if s == SEARCH_NO_RESULTS {
            return Some(BreakdownKind::SearchNoResults);
        }
        s.parse().ok().map(BreakdownKind::Dim)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BreakdownKind::Dim(d) => d.as_str(),
            BreakdownKind::SearchNoResults => SEARCH_NO_RESULTS,
        }
    }
}

/// A stored device label as reports show it (Matomo's names; see
/// [`crate::enrich::device::report_label`]).
fn relabel(dim: Dimension, value: String) -> String {
    crate::enrich::device::report_label(dim.as_str(), &value).unwrap_or(value)
}

/// Values of `kind` ranked by the dimension's metric, with shares.
pub fn breakdown(
    store: &dyn Storage,
    site: &str,
    range: &DayRange,
    kind: BreakdownKind,
    filters: &[Filter],
    limit: usize,
    offset: usize,
) -> Result<(Breakdown, Source), ReportError> {
    let dim = match kind {
        BreakdownKind::Dim(d) => d,
        BreakdownKind::SearchNoResults => Dimension::SearchTerm,
    };
    let by = dim.sort_by();
    let (from_ms, to_ms) = (
        range.start_utc.timestamp_millis(),
        range.end_utc.timestamp_millis(),
    );
    // (the page of rows, the metric's total, the number of rows, source)
    let (page, total, total_rows, source) =
        if kind != BreakdownKind::SearchNoResults && filters.is_empty() {
            let r = store.ranked(site, dim, range.from, range.to, limit, offset)?;
            (r.rows, r.total, r.total_rows, Source::Rollup)
        } else {
            let counting = if kind == BreakdownKind::SearchNoResults {
                Counting::NoResultSearches
            } else {
                Counting::Breakdown(dim)
            };
            let mut all: Vec<(String, Counters)> =
                filtered_rows(store, site, (from_ms, to_ms), filters, counting)?
                    .into_iter()
                    .collect();
            all.sort_by(|a, b| b.1.get(by).cmp(&a.1.get(by)).then_with(|| a.0.cmp(&b.0)));
            let total: u64 = all.iter().map(|(_, c)| c.get(by)).sum();
            let total_rows = all.len();
            let page = all.into_iter().skip(offset).take(limit).collect();
            (page, total, total_rows, Source::Raw)
        };
    let rows = page
        .into_iter()
        .map(|(value, c)| (relabel(dim, value), c))
        .map(|(value, c)| Row {
            share: if total > 0 {
                c.get(by) as f64 / total as f64
            } else {
                0.0
            },
            value,
            pageviews: c.pageviews,
            visits: c.visits,
            events: c.events,
        })
        .collect();
    Ok((
        Breakdown {
            dimension: kind.as_str(),
            metric: metric_name(by),
            total,
            total_rows,
            rows,
        },
        source,
    ))
}

/// Window of the realtime counter.
pub const REALTIME_MINUTES: i64 = 30;

/// Distinct visitors and page views in the last 30 minutes before `now`.
pub fn realtime(
    store: &dyn Storage,
    site: &str,
    now: DateTime<Utc>,
    filters: &[Filter],
) -> Result<(u64, u64), ReportError> {
    let to = now.timestamp_millis() + 1;
    let from = to - REALTIME_MINUTES * 60_000;
    match filtered(store, site, (from, to), filters, Counting::Live)? {
        FilteredAnswer::Live {
            visitors,
            pageviews,
        } => Ok((visitors, pageviews)),
        other => Err(other_shape(Counting::Live, &other)),
    }
}
