//! The reporting API's parameters, parsed once at the edge into typed
//! values: the query string of every report route becomes a
//! [`ReportQuery`] before a handler looks at it, so a handler never sees a
//! string it still has to check. A bad value answers 400 with a message
//! that names the parameter and says how to fix it (never echoing what was
//! sent); an unknown parameter is refused rather than ignored, and so is
//! a known one on a route that does not read it (`limit` on the summary),
//! so a client never believes a parameter took effect when it did not.
//!
//! The parameter groups double as the OpenAPI description of the routes
//! ([`IntoParams`]): each route lists the groups it reads, in its
//! `#[utoipa::path]` and in its [`ReportRoute`], and the document is
//! generated from the same fields the parser fills (a unit test below ties
//! each group's parameter names to the parser; `tests/openapi.rs` sends
//! every route the parameters it does not list).

use actix_web::http::header;
use actix_web::HttpRequest;
use chrono::NaiveDate;
use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use crate::report::filter::{dimension_names, MAX_FILTERS};
use crate::report::query::{BreakdownKind, SEARCH_NO_RESULTS};
use crate::report::range::{parse_day, Period};
use crate::report::{Filter, Interval};
use crate::store::Dimension;

/// The site a report is about (a path segment).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SitePath {
    /// Site id from the configuration
    pub site: String,
}

/// The site and dimension of a breakdown (path segments).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct BreakdownPath {
    /// Site id from the configuration
    pub site: String,
    /// Dimension. `search_no_results` lists site-search terms whose
    /// searches reported zero results (from raw events only, for pages
    /// that send a result count).
    #[param(schema_with = breakdown_dimension_schema)]
    pub dimension: String,
}

/// Every name `/breakdown/{dimension}` takes, in the order the code lists
/// the dimensions.
pub fn breakdown_dimension_names() -> Vec<&'static str> {
    Dimension::ALL
        .iter()
        .map(|d| d.as_str())
        .chain([SEARCH_NO_RESULTS])
        .collect()
}

/// The schema of a breakdown dimension: a string, one of
/// [`breakdown_dimension_names`].
pub fn breakdown_dimension_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(breakdown_dimension_names()))
        .build()
        .into()
}

/// The parsed dimension of a breakdown path.
pub fn breakdown_kind(name: &str) -> Result<BreakdownKind, ApiError> {
    BreakdownKind::parse(name).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "unknown dimension; valid dimensions: {}, {SEARCH_NO_RESULTS}",
            dimension_names()
        ))
    })
}

/// The days a report covers.
#[derive(Clone, Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeParams {
    /// First local day, YYYY-MM-DD (with `to`; overrides `period`)
    pub from: Option<NaiveDate>,
    /// Last local day, YYYY-MM-DD (default today)
    pub to: Option<NaiveDate>,
    /// Shortcut when no dates are given (default today)
    #[param(inline)]
    pub period: Option<Period>,
}

/// What `compare` asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// The equally long period just before the range.
    Previous,
    /// The equally long period one year earlier.
    Year,
    /// No comparison.
    #[default]
    None,
}

/// A second period to line the report up with.
#[derive(Clone, Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompareParams {
    /// `previous` adds the equally long period just before the range as
    /// `compare` (summary: its numbers; timeseries: its buckets lined up
    /// with the current ones; breakdown: each row's counters in it and the
    /// change). `year` adds the equally long period beginning on the same
    /// date a year earlier (29 February: the 28th) the same way. `none` or
    /// leaving it out: no comparison. Any other value is a 400.
    #[param(inline)]
    pub compare: Option<Compare>,
}

impl CompareParams {
    /// What was asked for (`none` when nothing was).
    pub fn get(&self) -> Compare {
        self.compare.unwrap_or_default()
    }
}

/// The bucket size of a time series.
#[derive(Clone, Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IntervalParams {
    /// Bucket size; default hour for ranges of up to 2 days, else day.
    /// Hourly series span at most 93 days.
    #[param(inline)]
    pub interval: Option<Interval>,
}

/// Rows per page when `limit` is left out.
pub const DEFAULT_LIMIT: usize = 10;
/// Most rows per page.
pub const MAX_LIMIT: usize = 1000;
/// Most rows that may be skipped.
pub const MAX_OFFSET: usize = 1_000_000;

/// A page of a breakdown.
#[derive(Clone, Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Rows per page (default 10)
    #[param(minimum = 0, maximum = 1000)]
    pub limit: Option<usize>,
    /// Rows to skip
    #[param(minimum = 0, maximum = 1000000)]
    pub offset: Option<usize>,
}

impl PageParams {
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT)
    }

    pub fn offset(&self) -> usize {
        self.offset.unwrap_or(0)
    }
}

/// Filters on raw events.
#[derive(Clone, Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FilterParams {
    /// Repeatable, combined with AND: `DIMENSION==VALUE` (equals),
    /// `DIMENSION=~TEXT` (contains, case-insensitive), `DIMENSION!=VALUE`
    /// (not equal). Filtered reports scan raw events.
    #[param(value_type = Option<Vec<String>>, style = Form, explode)]
    pub filter: Vec<Filter>,
}

impl FilterParams {
    /// The filters as they are written in URLs, for the answer.
    pub fn written(&self) -> Vec<String> {
        self.filter.iter().map(ToString::to_string).collect()
    }
}

/// The funnel a funnel report is about.
#[derive(Clone, Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FunnelParams {
    /// The funnel's name as declared; without it the site's first funnel.
    pub name: Option<String>,
}

/// What a table is answered as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Json,
    Csv,
}

/// The answer's format.
#[derive(Clone, Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FormatParams {
    /// `csv` for CSV (same as `Accept: text/csv`)
    #[param(inline)]
    pub format: Option<Format>,
}

/// A group of query parameters that routes read together; each is one of
/// the `IntoParams` types above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamGroup {
    Range,
    Compare,
    Interval,
    Page,
    Filter,
    Funnel,
    Format,
}

impl ParamGroup {
    /// The group a query parameter belongs to, `None` for a name no route
    /// reads.
    fn of(name: &str) -> Option<ParamGroup> {
        Some(match name {
            "from" | "to" | "period" => ParamGroup::Range,
            "compare" => ParamGroup::Compare,
            "interval" => ParamGroup::Interval,
            "limit" | "offset" => ParamGroup::Page,
            "filter" => ParamGroup::Filter,
            "name" => ParamGroup::Funnel,
            "format" => ParamGroup::Format,
            _ => return None,
        })
    }
}

/// What a report route is called in messages and which parameter groups it
/// reads (the same groups its `#[utoipa::path]` lists).
#[derive(Clone, Copy, Debug)]
pub struct ReportRoute {
    pub what: &'static str,
    pub reads: &'static [ParamGroup],
}

impl ReportRoute {
    /// The names of the parameters this route reads, for messages.
    fn names(&self) -> String {
        KNOWN
            .split(", ")
            .filter(|n| ParamGroup::of(n).is_some_and(|g| self.reads.contains(&g)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Every parameter a report route reads, parsed from the query string.
/// A route gets only the groups it reads; any other parameter is refused.
#[derive(Clone, Debug, Default)]
pub struct ReportQuery {
    pub range: RangeParams,
    pub compare: CompareParams,
    pub interval: IntervalParams,
    pub page: PageParams,
    pub filters: FilterParams,
    pub funnel: FunnelParams,
    pub format: FormatParams,
    /// `Accept` asked for CSV (`format` wins when given).
    accepts_csv: bool,
}

const KNOWN: &str = "from, to, period, compare, interval, limit, offset, format, filter, name";

/// A known parameter sent to a route that does not read it. The name is
/// one of [`KNOWN`], so echoing it echoes nothing the client made up.
fn not_read_here(name: &str, route: &ReportRoute) -> ApiError {
    let reads = route.names();
    let hint = if name == "compare" {
        " (compare works on summary, timeseries and breakdown)"
    } else {
        ""
    };
    if reads.is_empty() {
        bad(format!(
            "`{name}` does not apply to {}, which takes no parameters{hint}; leave it out",
            route.what
        ))
    } else {
        bad(format!(
            "`{name}` does not apply to {}{hint}; leave it out (it reads: {reads})",
            route.what
        ))
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

/// A whole number from 0 to `max`, for parameter `name`.
fn count(v: &str, name: &str, max: usize) -> Result<usize, ApiError> {
    v.parse::<usize>()
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(|| bad(format!("`{name}` must be a whole number from 0 to {max}")))
}

/// An optional day: empty means not given.
fn day(v: &str, name: &'static str) -> Result<Option<NaiveDate>, ApiError> {
    if v.is_empty() {
        return Ok(None);
    }
    parse_day(v, name).map(Some).map_err(|e| bad(e.to_string()))
}

impl ReportQuery {
    /// Parses the request's query string (and `Accept`) for `route`.
    pub fn parse(req: &HttpRequest, route: &ReportRoute) -> Result<ReportQuery, ApiError> {
        let mut q = ReportQuery::default();
        for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
            match ParamGroup::of(&k) {
                None => {
                    return Err(bad(format!(
                        "unknown query parameter; known parameters: {KNOWN}"
                    )))
                }
                Some(group) if !route.reads.contains(&group) => {
                    return Err(not_read_here(&k, route));
                }
                Some(_) => q.take(&k, &v)?,
            }
        }
        q.accepts_csv = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv"));
        Ok(q)
    }

    /// Reads one `key=value` pair.
    fn take(&mut self, key: &str, v: &str) -> Result<(), ApiError> {
        match key {
            "from" => self.range.from = day(v, "from")?,
            "to" => self.range.to = day(v, "to")?,
            "period" => {
                self.range.period = Some(v.parse::<Period>().map_err(|e| bad(e.to_string()))?)
            }
            "compare" => {
                self.compare.compare = Some(match v {
                    "" | "none" => Compare::None,
                    "previous" => Compare::Previous,
                    "year" => Compare::Year,
                    _ => {
                        return Err(bad(
                            "unknown compare value; use compare=previous (the equally \
                             long period just before), compare=year (the same days a year \
                             earlier) or compare=none",
                        ))
                    }
                })
            }
            "interval" => {
                self.interval.interval =
                    Some(v.parse::<Interval>().map_err(|e| bad(e.to_string()))?)
            }
            "limit" => self.page.limit = Some(count(v, "limit", MAX_LIMIT)?),
            "offset" => self.page.offset = Some(count(v, "offset", MAX_OFFSET)?),
            "format" => {
                self.format.format = Some(match v {
                    "csv" => Format::Csv,
                    "json" => Format::Json,
                    _ => return Err(bad("unknown format; use format=json or format=csv")),
                })
            }
            "name" => self.funnel.name = Some(v.to_owned()).filter(|n| !n.is_empty()),
            "filter" => {
                if self.filters.filter.len() >= MAX_FILTERS {
                    return Err(bad(format!(
                        "at most {MAX_FILTERS} filters may be combined"
                    )));
                }
                self.filters
                    .filter
                    .push(v.parse::<Filter>().map_err(|e| bad(e.to_string()))?);
            }
            _ => {
                tracing::error!(
                    parameter = key,
                    "a parameter passed its group but has no parser"
                );
                return Err(ApiError::Internal);
            }
        }
        Ok(())
    }

    /// True when the answer is CSV: `format=csv`, or `Accept: text/csv`
    /// without `format`.
    pub fn csv(&self) -> bool {
        match self.format.format {
            Some(f) => f == Format::Csv,
            None => self.accepts_csv,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::path::Parameter;

    fn names(params: Vec<Parameter>) -> Vec<String> {
        params.into_iter().map(|p| p.name).collect()
    }

    /// The names the parser sorts into each group are exactly the names
    /// the group's OpenAPI description lists, and KNOWN lists them all.
    #[test]
    fn groups_match_their_openapi_parameters() {
        let groups = [
            (ParamGroup::Range, names(RangeParams::into_params(|| None))),
            (
                ParamGroup::Compare,
                names(CompareParams::into_params(|| None)),
            ),
            (
                ParamGroup::Interval,
                names(IntervalParams::into_params(|| None)),
            ),
            (ParamGroup::Page, names(PageParams::into_params(|| None))),
            (
                ParamGroup::Filter,
                names(FilterParams::into_params(|| None)),
            ),
            (
                ParamGroup::Funnel,
                names(FunnelParams::into_params(|| None)),
            ),
            (
                ParamGroup::Format,
                names(FormatParams::into_params(|| None)),
            ),
        ];
        let mut all = vec![];
        for (group, listed) in &groups {
            for name in listed {
                assert_eq!(ParamGroup::of(name), Some(*group), "{name}");
                all.push(name.clone());
            }
        }
        let mut known: Vec<String> = KNOWN.split(", ").map(str::to_owned).collect();
        known.sort();
        all.sort();
        assert_eq!(known, all, "KNOWN lists every documented parameter once");
        assert_eq!(ParamGroup::of("no_such_parameter"), None);
    }

    #[test]
    fn a_route_names_only_what_it_reads() {
        let route = ReportRoute {
            what: "the test",
            reads: &[ParamGroup::Page, ParamGroup::Format],
        };
        assert_eq!(route.names(), "limit, offset, format");
        let ApiError::BadRequest(m) = not_read_here("compare", &route) else {
            panic!("not a 400")
        };
        assert!(m.contains("`compare` does not apply to the test"), "{m}");
        assert!(m.contains("it reads: limit, offset, format"), "{m}");
    }
}
