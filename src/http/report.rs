//! Reporting routes under `/api/v1`: thin handlers that check the token,
//! take the query string parsed into typed parameters
//! ([`super::report_params`]), call [`crate::report::query`] on a blocking
//! thread and answer JSON (typed answers, [`super::report_answers`]) or
//! CSV (`Accept: text/csv` or `?format=csv`). Each handler's
//! `#[utoipa::path]` describes it in the generated OpenAPI document
//! ([`super::openapi`]).
//! With `compare=previous` (or `compare=year`), summary, time series and
//! breakdowns run the same query over the previous period (or the same
//! days a year earlier) too and line the answers up with
//! [`crate::report::compare`].

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Serialize;

use super::auth::{authenticate, authorize_site, Principal};
use super::error::ApiError;
use super::openapi::{
    BadRequest, InternalError, SiteReportFailures, TooManyTokenAttempts, Unauthorized, OPENAPI_PATH,
};
use super::report_answers::{
    Breakdown, BreakdownComparison, Funnel, Goals, Realtime, ReportHead, Row, SiteEntry, Sites,
    Summary, SummaryComparison, Timeseries, TimeseriesComparison,
};
use super::report_params::{
    breakdown_kind, BreakdownPath, Compare, CompareParams, FilterParams, FormatParams,
    FunnelParams, IntervalParams, PageParams, ParamGroup, RangeParams, ReportQuery, ReportRoute,
    SitePath,
};
use super::AppState;
use crate::config::SiteConfig;
use crate::report::goals::{funnel_report, goals_report};
use crate::report::{compare, csv, query, DayRange, Interval, ReportError, Source, SummaryNumbers};
use crate::storage::StorageError;

const SITES: &str = "/api/v1/sites";
const SUMMARY: &str = "/api/v1/sites/{site}/summary";
const TIMESERIES: &str = "/api/v1/sites/{site}/timeseries";
const BREAKDOWN: &str = "/api/v1/sites/{site}/breakdown/{dimension}";
const REALTIME: &str = "/api/v1/sites/{site}/realtime";
const GOALS: &str = "/api/v1/sites/{site}/goals";
const FUNNEL: &str = "/api/v1/sites/{site}/funnel";

/// The parameter groups of each route, the same as its `#[utoipa::path]`
/// lists (`tests/openapi.rs` sends every route each parameter it does not
/// list and expects a 400).
mod reads {
    use super::ParamGroup::{Compare, Filter, Format, Funnel, Interval, Page, Range};
    use super::ReportRoute;

    pub const SITES: ReportRoute = ReportRoute {
        what: "the site list",
        reads: &[Format],
    };
    pub const SUMMARY: ReportRoute = ReportRoute {
        what: "the summary",
        reads: &[Range, Compare, Filter, Format],
    };
    pub const TIMESERIES: ReportRoute = ReportRoute {
        what: "the time series",
        reads: &[Range, Compare, Interval, Filter, Format],
    };
    pub const BREAKDOWN: ReportRoute = ReportRoute {
        what: "breakdowns",
        reads: &[Range, Compare, Page, Filter, Format],
    };
    pub const REALTIME: ReportRoute = ReportRoute {
        what: "realtime (it always covers the last 30 minutes)",
        reads: &[Filter, Format],
    };
    pub const GOALS: ReportRoute = ReportRoute {
        what: "goals",
        reads: &[Range, Filter, Format],
    };
    pub const FUNNEL: ReportRoute = ReportRoute {
        what: "funnels",
        reads: &[Funnel, Range, Filter, Format],
    };
}

/// Every route registered by [`routes`] (the OpenAPI test checks that each
/// appears in the document).
pub const ROUTES: [&str; 8] = [
    OPENAPI_PATH,
    SITES,
    SUMMARY,
    TIMESERIES,
    BREAKDOWN,
    REALTIME,
    GOALS,
    FUNNEL,
];

/// Registers the reporting routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(OPENAPI_PATH, web::get().to(super::openapi::openapi))
        .route(SITES, web::get().to(sites))
        .route(SUMMARY, web::get().to(summary))
        .route(TIMESERIES, web::get().to(timeseries))
        .route(BREAKDOWN, web::get().to(breakdown))
        .route(REALTIME, web::get().to(realtime))
        .route(GOALS, web::get().to(goals))
        .route(FUNNEL, web::get().to(funnel));
}

/// The range a query names in the site's time zone.
fn range(site: &SiteConfig, q: &ReportQuery) -> Result<DayRange, ApiError> {
    let r = &q.range;
    DayRange::resolve(
        &site.tz(),
        r.from,
        r.to,
        r.period.unwrap_or_default(),
        Utc::now(),
    )
    .map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// The period to compare with, when `compare` asked for one.
fn compared_range(
    site: &SiteConfig,
    q: &ReportQuery,
    range: &DayRange,
) -> Result<Option<DayRange>, ApiError> {
    let (compared, name) = match q.compare.get() {
        Compare::None => return Ok(None),
        Compare::Previous => (range.previous(&site.tz()), "the previous period"),
        Compare::Year => (
            range.year_before(&site.tz()),
            "the same period a year earlier",
        ),
    };
    compared
        .map(Some)
        .map_err(|e| ApiError::BadRequest(format!("{name}: {e}")))
}

fn report_error(e: ReportError) -> ApiError {
    match e {
        ReportError::Invalid(m) | ReportError::Store(StorageError::Rejected(m)) => {
            ApiError::BadRequest(m)
        }
        // Only while the store reopens after a failed write (disk full):
        // a retry soon succeeds, so say so instead of 500.
        ReportError::Store(e) if e.is_transient() => {
            tracing::warn!(error = %e, "report query met a store that is not available");
            ApiError::StoreUnavailable
        }
        ReportError::Store(e) => {
            tracing::error!(error = %e, "report query failed");
            ApiError::Internal
        }
        ReportError::Internal(why) => {
            tracing::error!(error = %why, "report query failed");
            ApiError::Internal
        }
    }
}

async fn run<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ReportError> + Send + 'static,
) -> Result<T, ApiError> {
    super::error::blocking(f).await?.map_err(report_error)
}

/// Checks the token and finds the site and the parameters.
fn prepare<'a>(
    state: &'a AppState,
    req: &HttpRequest,
    site_id: &str,
    route: &ReportRoute,
) -> Result<(&'a SiteConfig, ReportQuery), ApiError> {
    authorize_site(req, &state.config, site_id)?;
    let site = state.config.site(site_id).ok_or(ApiError::NotFound)?;
    Ok((site, ReportQuery::parse(req, route)?))
}

/// What every report over a range of days says about itself.
fn head(site_id: &str, site: &SiteConfig, range: &DayRange, q: &ReportQuery) -> ReportHead {
    ReportHead {
        site: site_id.to_owned(),
        from: range.from,
        to: range.to,
        timezone: site.timezone.name().to_owned(),
        filters: q.filters.written(),
    }
}

fn csv_response(name: &str, body: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}.csv\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// A JSON answer. It passes through [`serde_json::Value`] so that its
/// keys come out sorted, as they always have.
fn json_response(answer: &impl Serialize) -> Result<HttpResponse, ApiError> {
    let v = serde_json::to_value(answer).map_err(|e| {
        tracing::error!(error = %e, "an answer did not serialize");
        ApiError::Internal
    })?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(v))
}

fn summary_fields(n: &SummaryNumbers) -> Vec<String> {
    vec![
        n.visits.to_string(),
        n.visitors.to_string(),
        n.pageviews.to_string(),
        format!("{:.4}", n.views_per_visit),
        format!("{:.4}", n.bounce_rate),
        format!("{:.1}", n.avg_dwell_seconds),
        n.downloads.to_string(),
        n.outbound.to_string(),
        n.searches.to_string(),
    ]
}

const SUMMARY_HEADER: [&str; 9] = [
    "visits",
    "visitors",
    "pageviews",
    "views_per_visit",
    "bounce_rate",
    "avg_dwell_seconds",
    "downloads",
    "outbound",
    "searches",
];

/// Sites the token may read
#[utoipa::path(
    get,
    path = "/api/v1/sites",
    params(FormatParams),
    responses(
        (status = 200, description = "Sites", content(
            (Sites = "application/json"), (String = "text/csv"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 429, response = TooManyTokenAttempts),
        (status = 500, response = InternalError),
    )
)]
pub async fn sites(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let p = authenticate(&req, &state.config)?;
    let q = ReportQuery::parse(&req, &reads::SITES)?;
    let list: Vec<&SiteConfig> = state
        .config
        .sites
        .iter()
        .filter(|s| match &p {
            Principal::Admin => true,
            Principal::Site(id) => *id == s.id,
        })
        .collect();
    if q.csv() {
        let rows = list
            .iter()
            .map(|s| vec![s.id.clone(), s.name.clone(), s.timezone.name().to_string()]);
        return Ok(csv_response(
            "sites",
            csv::table(&["id", "name", "timezone"], rows),
        ));
    }
    let sites = list
        .iter()
        .map(|s| SiteEntry {
            id: s.id.clone(),
            name: s.name.clone(),
            timezone: s.timezone.name().to_owned(),
            // Hosts as people read them (the config holds them in ASCII).
            hostnames: s
                .hostnames
                .iter()
                .map(|h| crate::privacy::url_strip::unicode_domain(h))
                .collect(),
            goals: s.goals.iter().map(|g| g.name.clone()).collect(),
            funnels: s.funnels.iter().map(|f| f.name.clone()).collect(),
        })
        .collect();
    json_response(&Sites { sites })
}

/// Headline numbers
#[utoipa::path(
    get,
    path = "/api/v1/sites/{site}/summary",
    params(SitePath, RangeParams, CompareParams, FilterParams, FormatParams),
    responses(
        (status = 200, description = "Summary", content(
            (Summary = "application/json"), (String = "text/csv"))),
        SiteReportFailures,
    )
)]
pub async fn summary(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let site_id = path.into_inner();
    let (site, q) = prepare(&state, &req, &site_id, &reads::SUMMARY)?;
    let range = range(site, &q)?;
    let compare = compared_range(site, &q, &range)?;
    let (store, sid, filters, r, c) = (
        state.storage.clone(),
        site_id.clone(),
        q.filters.filter.clone(),
        range.clone(),
        compare.clone(),
    );
    let (now, prev, source) = run(move || {
        let (now, source) = query::summary(&*store, &sid, &r, &filters)?;
        let prev = match c {
            Some(c) => Some(query::summary(&*store, &sid, &c, &filters)?.0),
            None => None,
        };
        Ok((now, prev, source))
    })
    .await?;
    let n = SummaryNumbers::from(&now);
    let prev = prev.map(|t| SummaryNumbers::from(&t));
    if q.csv() {
        let mut header = vec!["period", "from", "to"];
        header.extend(SUMMARY_HEADER);
        let mut rows = vec![];
        let mut row = vec![
            "current".to_string(),
            range.from.to_string(),
            range.to.to_string(),
        ];
        row.extend(summary_fields(&n));
        rows.push(row);
        if let (Some(pn), Some(c)) = (&prev, &compare) {
            let mut row = vec!["previous".to_string(), c.from.to_string(), c.to.to_string()];
            row.extend(summary_fields(pn));
            rows.push(row);
        }
        return Ok(csv_response("summary", csv::table(&header, rows)));
    }
    let compared = match (&prev, &compare) {
        (Some(pn), Some(c)) => Some(SummaryComparison::new(c.from, c.to, pn)),
        _ => None,
    };
    json_response(&Summary::new(
        head(&site_id, site, &range, &q),
        source,
        &n,
        compared,
    ))
}

const BUCKET_HEADER: [&str; 8] = [
    "start",
    "visits",
    "visitors",
    "pageviews",
    "bounces",
    "downloads",
    "outbound",
    "searches",
];

fn bucket_fields(b: &query::Bucket) -> Vec<String> {
    vec![
        b.start.clone(),
        b.visits.to_string(),
        b.visitors.to_string(),
        b.pageviews.to_string(),
        b.bounces.to_string(),
        b.downloads.to_string(),
        b.outbound.to_string(),
        b.searches.to_string(),
    ]
}

/// Counts per hour, day, week or month in the site's time zone; empty buckets are zeros
#[utoipa::path(
    get,
    path = "/api/v1/sites/{site}/timeseries",
    params(SitePath, RangeParams, CompareParams, IntervalParams, FilterParams, FormatParams),
    responses(
        (status = 200, description = "Buckets", content(
            (Timeseries = "application/json"), (String = "text/csv"))),
        SiteReportFailures,
    )
)]
pub async fn timeseries(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let site_id = path.into_inner();
    let (site, q) = prepare(&state, &req, &site_id, &reads::TIMESERIES)?;
    let range = range(site, &q)?;
    let previous = compared_range(site, &q, &range)?;
    let interval = q.interval.interval.unwrap_or(if range.days() <= 2 {
        Interval::Hour
    } else {
        Interval::Day
    });
    let (store, sid, filters, r, tz, prev) = (
        state.storage.clone(),
        site_id.clone(),
        q.filters.filter.clone(),
        range.clone(),
        site.tz(),
        previous.clone(),
    );
    let (buckets, source, compared) = run(move || {
        let (buckets, source) = query::timeseries(&*store, &sid, &tz, &r, interval, &filters)?;
        let compared = match prev {
            Some(pr) => {
                // Hourly series pair hours; everything else is rebuilt
                // from the previous period's days.
                let step = if interval == Interval::Hour {
                    Interval::Hour
                } else {
                    Interval::Day
                };
                let (fine, _) = query::timeseries(&*store, &sid, &tz, &pr, step, &filters)?;
                Some(compare::align_buckets(
                    &tz,
                    &r,
                    &pr,
                    interval,
                    buckets.len(),
                    &fine,
                ))
            }
            None => None,
        };
        Ok((buckets, source, compared))
    })
    .await?;
    if q.csv() {
        let mut header: Vec<String> = BUCKET_HEADER.iter().map(|h| h.to_string()).collect();
        if compared.is_some() {
            header.extend(BUCKET_HEADER.iter().map(|h| format!("previous_{h}")));
        }
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        let rows = buckets.iter().enumerate().map(|(i, b)| {
            let mut row = bucket_fields(b);
            if let Some(c) = compared.as_ref().and_then(|c| c.get(i)) {
                row.extend(bucket_fields(c));
            }
            row
        });
        return Ok(csv_response("timeseries", csv::table(&header, rows)));
    }
    let compare = match (&previous, compared) {
        (Some(pr), Some(c)) => Some(TimeseriesComparison {
            from: pr.from,
            to: pr.to,
            buckets: c,
        }),
        _ => None,
    };
    let head = head(&site_id, site, &range, &q);
    json_response(&Timeseries {
        site: head.site,
        from: head.from,
        to: head.to,
        timezone: head.timezone,
        filters: head.filters,
        source,
        interval,
        buckets,
        compare,
    })
}

/// Values of a dimension with counts and shares, sorted by the dimension's metric, paginated
#[utoipa::path(
    get,
    path = "/api/v1/sites/{site}/breakdown/{dimension}",
    params(BreakdownPath, RangeParams, CompareParams, PageParams, FilterParams, FormatParams),
    responses(
        (status = 200, description = "Rows", content(
            (Breakdown = "application/json"), (String = "text/csv"))),
        SiteReportFailures,
    )
)]
pub async fn breakdown(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (site_id, dim_name) = path.into_inner();
    let (site, q) = prepare(&state, &req, &site_id, &reads::BREAKDOWN)?;
    let dim = breakdown_kind(&dim_name)?;
    let range = range(site, &q)?;
    let previous = compared_range(site, &q, &range)?;
    let (limit, offset) = (q.page.limit(), q.page.offset());
    let (store, sid, filters, r, prev) = (
        state.storage.clone(),
        site_id.clone(),
        q.filters.filter.clone(),
        range.clone(),
        previous.clone(),
    );
    let (b, source, before) = run(move || {
        let (b, source) = query::breakdown(&*store, &sid, &r, dim, &filters, limit, offset)?;
        // Every row of the previous period: a value on this page may rank
        // anywhere there.
        let before = match prev {
            Some(pr) => Some(query::breakdown(&*store, &sid, &pr, dim, &filters, usize::MAX, 0)?.0),
            None => None,
        };
        Ok((b, source, before))
    })
    .await?;
    let compared = before.as_ref().map(|pb| compare::compare_rows(&b, pb));
    if q.csv() {
        let mut header = vec![dim.as_str(), "pageviews", "visits", "events", "share"];
        if compared.is_some() {
            header.extend([
                "previous_pageviews",
                "previous_visits",
                "previous_events",
                "previous_share",
                "change",
            ]);
        }
        let rows = b.rows.iter().enumerate().map(|(i, r)| {
            let mut row = vec![
                r.value.clone(),
                r.pageviews.to_string(),
                r.visits.to_string(),
                r.events.to_string(),
                format!("{:.4}", r.share),
            ];
            if let Some(c) = compared.as_ref().and_then(|c| c.get(i)) {
                row.extend([
                    c.previous.pageviews.to_string(),
                    c.previous.visits.to_string(),
                    c.previous.events.to_string(),
                    format!("{:.4}", c.previous.share),
                    c.change.map(|x| format!("{x:.4}")).unwrap_or_default(),
                ]);
            }
            row
        });
        return Ok(csv_response(dim.as_str(), csv::table(&header, rows)));
    }
    let rows = b
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut row = Row::new(r);
            if let Some(c) = compared.as_ref().and_then(|c| c.get(i)) {
                row.previous = Some(c.previous.clone());
                row.change = Some(c.change);
            }
            row
        })
        .collect();
    let compare = match (&previous, &before) {
        (Some(pr), Some(pb)) => Some(BreakdownComparison {
            from: pr.from,
            to: pr.to,
            total: pb.total,
            total_rows: pb.total_rows,
        }),
        _ => None,
    };
    let head = head(&site_id, site, &range, &q);
    json_response(&Breakdown {
        site: head.site,
        from: head.from,
        to: head.to,
        timezone: head.timezone,
        filters: head.filters,
        source,
        dimension: b.dimension,
        metric: b.metric,
        total: b.total,
        total_rows: b.total_rows,
        limit,
        offset,
        rows,
        compare,
    })
}

/// Visitors and page views in the last 30 minutes (raw events). `compare` is refused with 400: the window has no previous period.
#[utoipa::path(
    get,
    path = "/api/v1/sites/{site}/realtime",
    params(SitePath, FilterParams, FormatParams),
    responses(
        (status = 200, description = "Counts", content(
            (Realtime = "application/json"), (String = "text/csv"))),
        SiteReportFailures,
    )
)]
pub async fn realtime(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let site_id = path.into_inner();
    let (_, q) = prepare(&state, &req, &site_id, &reads::REALTIME)?;
    let now = Utc::now();
    let (store, sid, filters) = (
        state.storage.clone(),
        site_id.clone(),
        q.filters.filter.clone(),
    );
    let (visitors, pageviews) = run(move || query::realtime(&*store, &sid, now, &filters)).await?;
    if q.csv() {
        let rows = vec![vec![
            now.to_rfc3339(),
            query::REALTIME_MINUTES.to_string(),
            visitors.to_string(),
            pageviews.to_string(),
        ]];
        return Ok(csv_response(
            "realtime",
            csv::table(&["as_of", "minutes", "visitors", "pageviews"], rows),
        ));
    }
    json_response(&Realtime {
        site: site_id,
        as_of: now.to_rfc3339(),
        minutes: query::REALTIME_MINUTES,
        visitors,
        pageviews,
        filters: q.filters.written(),
        source: Source::Raw,
    })
}

/// Every goal the site declares ([[sites.goals]])
///
/// Conversions (visits that reached the goal), distinct visitors,
/// conversion rate (conversions / visits) and revenue where amounts were
/// given, over the visits of the range that pass the filters (a visit
/// passes when any of its events does). Computed from raw events, so only
/// inside retention. `compare` is refused with 400.
#[utoipa::path(
    get,
    path = "/api/v1/sites/{site}/goals",
    params(SitePath, RangeParams, FilterParams, FormatParams),
    responses(
        (status = 200, description = "Goal rows", content(
            (Goals = "application/json"), (String = "text/csv"))),
        SiteReportFailures,
    )
)]
pub async fn goals(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let site_id = path.into_inner();
    let (site, q) = prepare(&state, &req, &site_id, &reads::GOALS)?;
    let range = range(site, &q)?;
    let (store, site_cfg, filters, r) = (
        state.storage.clone(),
        site.clone(),
        q.filters.filter.clone(),
        range.clone(),
    );
    let report = run(move || goals_report(&*store, &site_cfg, &r, &filters)).await?;
    if q.csv() {
        let rows = report.rows.iter().map(|g| {
            vec![
                g.goal.clone(),
                g.conversions.to_string(),
                g.visitors.to_string(),
                format!("{:.4}", g.conversion_rate),
                g.revenue.map(|r| format!("{r:.2}")).unwrap_or_default(),
            ]
        });
        return Ok(csv_response(
            "goals",
            csv::table(
                &[
                    "goal",
                    "conversions",
                    "visitors",
                    "conversion_rate",
                    "revenue",
                ],
                rows,
            ),
        ));
    }
    let head = head(&site_id, site, &range, &q);
    json_response(&Goals {
        site: head.site,
        from: head.from,
        to: head.to,
        timezone: head.timezone,
        filters: head.filters,
        source: Source::Raw,
        visits: report.visits,
        rows: report.rows,
    })
}

/// A declared funnel ([[sites.funnels]])
///
/// Per step the visits that reached it after every step before it within
/// the same visit, and the drop-off from the step before, over the visits
/// of the range that pass the filters (without `name` the site's first
/// funnel). Computed from raw events, so only inside retention. `compare`
/// is refused with 400.
#[utoipa::path(
    get,
    path = "/api/v1/sites/{site}/funnel",
    params(SitePath, FunnelParams, RangeParams, FilterParams, FormatParams),
    responses(
        (status = 200, description = "Funnel steps", content(
            (Funnel = "application/json"), (String = "text/csv"))),
        SiteReportFailures,
    )
)]
pub async fn funnel(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let site_id = path.into_inner();
    let (site, q) = prepare(&state, &req, &site_id, &reads::FUNNEL)?;
    let name = q.funnel.name.clone();
    let range = range(site, &q)?;
    let (store, site_cfg, filters, r) = (
        state.storage.clone(),
        site.clone(),
        q.filters.filter.clone(),
        range.clone(),
    );
    let report =
        run(move || funnel_report(&*store, &site_cfg, name.as_deref(), &r, &filters)).await?;
    if q.csv() {
        let rows = report.steps.iter().map(|s| {
            vec![
                s.step.clone(),
                s.visits.to_string(),
                s.dropoff.to_string(),
                format!("{:.4}", s.dropoff_rate),
            ]
        });
        return Ok(csv_response(
            "funnel",
            csv::table(&["step", "visits", "dropoff", "dropoff_rate"], rows),
        ));
    }
    let head = head(&site_id, site, &range, &q);
    json_response(&Funnel {
        site: head.site,
        from: head.from,
        to: head.to,
        timezone: head.timezone,
        filters: head.filters,
        source: Source::Raw,
        funnel: report.funnel,
        visits: report.visits,
        entered: report.entered,
        completed: report.completed,
        completion_rate: report.completion_rate,
        steps: report.steps,
    })
}
