//! The reporting API's JSON answers as types. Each route builds one of
//! these and serializes it; the OpenAPI document describes the same types
//! ([`ToSchema`]), so the description cannot drift from what is sent.
//!
//! Answers are sent with their keys in alphabetical order (they pass
//! through [`serde_json::Value`], whose maps are sorted), as they always
//! were; the field order here is the order that reads best.

use chrono::NaiveDate;
use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::ToSchema;

use super::report_params::breakdown_dimension_schema;
use crate::report::compare::PreviousRow;
use crate::report::goals::{FunnelStepRow, GoalRow};
use crate::report::query::{self, Bucket, Interval, Source, SummaryNumbers};

/// An error: what went wrong and how to fix it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: String,
}

/// One site the token may read.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteEntry {
    pub id: String,
    pub name: String,
    pub timezone: String,
    /// Hostnames whose pages are counted for the site, internationalised
    /// names in Unicode; `*.example.org` allows subdomains
    pub hostnames: Vec<String>,
    /// Names of the goals the site declares (see /goals)
    pub goals: Vec<String>,
    /// Names of the funnels the site declares (see /funnel?name=)
    pub funnels: Vec<String>,
}

/// The sites the token may read.
#[derive(Debug, Serialize, ToSchema)]
pub struct Sites {
    pub sites: Vec<SiteEntry>,
}

/// What every report over a range of days says about itself.
#[derive(Debug)]
pub struct ReportHead {
    pub site: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub timezone: String,
    pub filters: Vec<String>,
}

/// Headline numbers of a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct Summary {
    pub site: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub timezone: String,
    pub filters: Vec<String>,
    pub source: Source,
    pub visits: u64,
    pub visitors: u64,
    pub pageviews: u64,
    pub downloads: u64,
    pub outbound: u64,
    pub searches: u64,
    pub views_per_visit: f64,
    pub bounce_rate: f64,
    pub avg_dwell_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub compare: Option<SummaryComparison>,
}

impl Summary {
    pub fn new(
        head: ReportHead,
        source: Source,
        n: &SummaryNumbers,
        compare: Option<SummaryComparison>,
    ) -> Summary {
        Summary {
            site: head.site,
            from: head.from,
            to: head.to,
            timezone: head.timezone,
            filters: head.filters,
            source,
            visits: n.visits,
            visitors: n.visitors,
            pageviews: n.pageviews,
            downloads: n.downloads,
            outbound: n.outbound,
            searches: n.searches,
            views_per_visit: n.views_per_visit,
            bounce_rate: n.bounce_rate,
            avg_dwell_seconds: n.avg_dwell_seconds,
            compare,
        }
    }
}

/// Present with compare=previous or compare=year: the compared period and
/// its numbers.
#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryComparison {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub visits: u64,
    pub visitors: u64,
    pub pageviews: u64,
    pub downloads: u64,
    pub outbound: u64,
    pub searches: u64,
    pub views_per_visit: f64,
    pub bounce_rate: f64,
    pub avg_dwell_seconds: f64,
}

impl SummaryComparison {
    pub fn new(from: NaiveDate, to: NaiveDate, n: &SummaryNumbers) -> SummaryComparison {
        SummaryComparison {
            from,
            to,
            visits: n.visits,
            visitors: n.visitors,
            pageviews: n.pageviews,
            downloads: n.downloads,
            outbound: n.outbound,
            searches: n.searches,
            views_per_visit: n.views_per_visit,
            bounce_rate: n.bounce_rate,
            avg_dwell_seconds: n.avg_dwell_seconds,
        }
    }
}

/// Counts per hour, day, week or month in the site's time zone.
#[derive(Debug, Serialize, ToSchema)]
pub struct Timeseries {
    pub site: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub timezone: String,
    pub filters: Vec<String>,
    pub source: Source,
    pub interval: Interval,
    pub buckets: Vec<Bucket>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub compare: Option<TimeseriesComparison>,
}

/// Present with compare=previous or compare=year: the compared period and
/// its buckets, one per current bucket. Bucket i covers the same stretch
/// of the compared period as bucket i of the current one (day, week and
/// month buckets: the same days shifted back to the compared period; hour
/// buckets: the i-th hour, an hour left over by a daylight-saving change
/// added to the last bucket). `start` is where that stretch begins.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimeseriesComparison {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub buckets: Vec<Bucket>,
}

/// The counter breakdown rows are ranked by.
fn metric_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["pageviews", "visits", "events"]))
        .build()
        .into()
}

/// Values of a dimension with counts and shares, sorted by the
/// dimension's metric, one page of them.
#[derive(Debug, Serialize, ToSchema)]
pub struct Breakdown {
    pub site: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub timezone: String,
    pub filters: Vec<String>,
    pub source: Source,
    #[schema(schema_with = breakdown_dimension_schema)]
    pub dimension: &'static str,
    #[schema(schema_with = metric_schema)]
    pub metric: &'static str,
    /// Sum of the metric over all rows (not only this page).
    pub total: u64,
    pub total_rows: usize,
    pub limit: usize,
    pub offset: usize,
    pub rows: Vec<Row>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub compare: Option<BreakdownComparison>,
}

/// One value of a breakdown.
#[derive(Debug, Serialize, ToSchema)]
pub struct Row {
    pub value: String,
    pub pageviews: u64,
    pub visits: u64,
    pub events: u64,
    /// This row's part of the ranking metric's total, 0..=1.
    #[schema(minimum = 0, maximum = 1)]
    pub share: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub previous: Option<PreviousRow>,
    /// Present with compare=previous or compare=year: (now - before) /
    /// before of the ranking metric; null when the value had no count in
    /// the compared period
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub change: Option<Option<f64>>,
}

impl Row {
    pub fn new(r: &query::Row) -> Row {
        Row {
            value: r.value.clone(),
            pageviews: r.pageviews,
            visits: r.visits,
            events: r.events,
            share: r.share,
            previous: None,
            change: None,
        }
    }
}

/// Present with compare=previous or compare=year: the compared period and
/// its totals over all rows.
#[derive(Debug, Serialize, ToSchema)]
pub struct BreakdownComparison {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub total: u64,
    pub total_rows: usize,
}

/// Visitors and page views in the last 30 minutes (raw events).
#[derive(Debug, Serialize, ToSchema)]
pub struct Realtime {
    pub site: String,
    #[schema(format = DateTime)]
    pub as_of: String,
    #[schema(minimum = 1)]
    pub minutes: i64,
    pub visitors: u64,
    pub pageviews: u64,
    pub filters: Vec<String>,
    pub source: Source,
}

/// Every goal the site declares, over the visits of the range that pass
/// the filters.
#[derive(Debug, Serialize, ToSchema)]
pub struct Goals {
    pub site: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub timezone: String,
    pub filters: Vec<String>,
    pub source: Source,
    /// Visits of the range that pass the filters.
    pub visits: u64,
    pub rows: Vec<GoalRow>,
}

/// A declared funnel's steps over the visits of the range that pass the
/// filters.
#[derive(Debug, Serialize, ToSchema)]
pub struct Funnel {
    pub site: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub timezone: String,
    pub filters: Vec<String>,
    pub source: Source,
    /// The funnel's name; null when the site declares no funnel (then
    /// steps is empty).
    #[schema(required = true)]
    pub funnel: Option<String>,
    /// Visits of the range that pass the filters.
    pub visits: u64,
    /// Visits that reached the first step.
    pub entered: u64,
    /// Visits that reached the last step.
    pub completed: u64,
    /// completed / entered (0 when none entered).
    pub completion_rate: f64,
    pub steps: Vec<FunnelStepRow>,
}
