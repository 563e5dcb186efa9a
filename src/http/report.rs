//! Reporting routes under `/api/v1`: thin handlers that check the token,
//! parse the query string, call [`crate::report::query`] on a blocking
//! thread and answer JSON or CSV (`Accept: text/csv` or `?format=csv`).
//! With `compare=previous` (or `compare=year`), summary, time series and
//! breakdowns run the same query over the previous period (or the same
//! days a year earlier) too and line the answers up with
//! [`crate::report::compare`].

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde_json::json;

use super::auth::{authenticate, authorize_site, Principal};
use super::error::ApiError;
use super::AppState;
use crate::config::SiteConfig;
use crate::report::filter::{dimension_names, MAX_FILTERS};
use crate::report::goals::{funnel_report, goals_report};
use crate::report::query::BreakdownKind;
use crate::report::{
    compare, csv, query, DayRange, Filter, Interval, ReportError, Source, SummaryNumbers,
};
use crate::storage::StorageError;

/// The OpenAPI document describing these routes.
pub const OPENAPI: &str = include_str!("../../assets/openapi.json");

const OPENAPI_PATH: &str = "/api/v1/openapi.json";
const SITES: &str = "/api/v1/sites";
const SUMMARY: &str = "/api/v1/sites/{site}/summary";
const TIMESERIES: &str = "/api/v1/sites/{site}/timeseries";
const BREAKDOWN: &str = "/api/v1/sites/{site}/breakdown/{dimension}";
const REALTIME: &str = "/api/v1/sites/{site}/realtime";
const GOALS: &str = "/api/v1/sites/{site}/goals";
const FUNNEL: &str = "/api/v1/sites/{site}/funnel";

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
    cfg.route(OPENAPI_PATH, web::get().to(openapi))
        .route(SITES, web::get().to(sites))
        .route(SUMMARY, web::get().to(summary))
        .route(TIMESERIES, web::get().to(timeseries))
        .route(BREAKDOWN, web::get().to(breakdown))
        .route(REALTIME, web::get().to(realtime))
        .route(GOALS, web::get().to(goals))
        .route(FUNNEL, web::get().to(funnel));
}

/// `GET /api/v1/openapi.json`
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 1000;

/// What `compare` asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Compare {
    #[default]
    None,
    /// The equally long period just before the range.
    Previous,
    /// The equally long period one year earlier.
    Year,
}

/// Query-string parameters every report understands.
#[derive(Default)]
struct Params {
    from: Option<String>,
    to: Option<String>,
    period: Option<String>,
    compare: Compare,
    interval: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
    csv: bool,
    filters: Vec<Filter>,
    /// The funnel a funnel report is about.
    name: Option<String>,
}

const KNOWN: &str = "from, to, period, compare, interval, limit, offset, format, filter, name";

impl Params {
    fn parse(req: &HttpRequest) -> Result<Params, ApiError> {
        let mut p = Params::default();
        let mut format = None;
        for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
            let v = v.into_owned();
            match k.as_ref() {
                "from" => p.from = Some(v),
                "to" => p.to = Some(v),
                "period" => p.period = Some(v),
                "compare" => {
                    p.compare = match v.as_str() {
                        "" | "none" => Compare::None,
                        "previous" => Compare::Previous,
                        "year" => Compare::Year,
                        _ => {
                            return Err(ApiError::BadRequest(
                                "unknown compare value; use compare=previous (the equally \
                                 long period just before), compare=year (the same days a year \
                                 earlier) or compare=none"
                                    .into(),
                            ))
                        }
                    }
                }
                "interval" => p.interval = Some(v),
                "limit" => p.limit = Some(v),
                "offset" => p.offset = Some(v),
                "format" => format = Some(v),
                "name" => p.name = Some(v),
                "filter" => {
                    if p.filters.len() >= MAX_FILTERS {
                        return Err(ApiError::BadRequest(format!(
                            "at most {MAX_FILTERS} filters may be combined"
                        )));
                    }
                    p.filters.push(
                        v.parse::<Filter>()
                            .map_err(|e| ApiError::BadRequest(e.to_string()))?,
                    );
                }
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "unknown query parameter; known parameters: {KNOWN}"
                    )))
                }
            }
        }
        p.csv = match format.as_deref() {
            Some("csv") => true,
            Some("json") => false,
            Some(_) => {
                return Err(ApiError::BadRequest(
                    "unknown format; use format=json or format=csv".into(),
                ))
            }
            None => req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/csv")),
        };
        Ok(p)
    }

    fn range(&self, site: &SiteConfig) -> Result<DayRange, ApiError> {
        DayRange::parse(
            &site.tz(),
            self.from.as_deref(),
            self.to.as_deref(),
            self.period.as_deref(),
            Utc::now(),
        )
        .map_err(|e| ApiError::BadRequest(e.to_string()))
    }

    /// The period to compare with, when `compare` asked for one.
    fn previous(&self, site: &SiteConfig, range: &DayRange) -> Result<Option<DayRange>, ApiError> {
        let (compared, name) = match self.compare {
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

    /// Refuses `compare` on reports that have no period.
    fn no_compare(&self, what: &str) -> Result<(), ApiError> {
        let name = match self.compare {
            Compare::None => return Ok(()),
            Compare::Previous => "previous",
            Compare::Year => "year",
        };
        Err(ApiError::BadRequest(format!(
            "compare={name} does not apply to {what}; leave the parameter out \
             (it works on summary, timeseries and breakdown)"
        )))
    }

    fn number(
        v: &Option<String>,
        name: &str,
        default: usize,
        max: usize,
    ) -> Result<usize, ApiError> {
        match v {
            None => Ok(default),
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("`{name}` must be a whole number from 0 to {max}"))
                }),
        }
    }

    fn filters_json(&self) -> serde_json::Value {
        json!(self
            .filters
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>())
    }
}

fn report_error(e: ReportError) -> ApiError {
    match e {
        ReportError::Invalid(m) | ReportError::Store(StorageError::Rejected(m)) => {
            ApiError::BadRequest(m)
        }
        // Only while the store reopens after a failed write (disk full):
        // a retry soon succeeds, so say so instead of 500.
        ReportError::Store(e) if e.is_transient() => ApiError::StoreUnavailable,
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
    web::block(f)
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(report_error)
}

/// Checks the token and finds the site and the parameters.
fn prepare<'a>(
    state: &'a AppState,
    req: &HttpRequest,
    site_id: &str,
) -> Result<(&'a SiteConfig, Params), ApiError> {
    authorize_site(req, &state.config, site_id)?;
    let site = state.config.site(site_id).ok_or(ApiError::NotFound)?;
    Ok((site, Params::parse(req)?))
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

fn json_response(v: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(v)
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

/// `GET /api/v1/sites` — the sites the token may read.
pub async fn sites(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let p = authenticate(&req, &state.config)?;
    let params = Params::parse(&req)?;
    params.no_compare("the site list")?;
    let list: Vec<&SiteConfig> = state
        .config
        .sites
        .iter()
        .filter(|s| match &p {
            Principal::Admin => true,
            Principal::Site(id) => *id == s.id,
        })
        .collect();
    if params.csv {
        let rows = list
            .iter()
            .map(|s| vec![s.id.clone(), s.name.clone(), s.timezone.name().to_string()]);
        return Ok(csv_response(
            "sites",
            csv::table(&["id", "name", "timezone"], rows),
        ));
    }
    let sites: Vec<_> = list
        .iter()
        .map(|s| {
            // Hosts as people read them (the config holds them in ASCII).
            let hostnames: Vec<String> = s
                .hostnames
                .iter()
                .map(|h| crate::privacy::url_strip::unicode_domain(h))
                .collect();
            let goals: Vec<&str> = s.goals.iter().map(|g| g.name.as_str()).collect();
            let funnels: Vec<&str> = s.funnels.iter().map(|f| f.name.as_str()).collect();
            json!({"id": s.id, "name": s.name, "timezone": s.timezone.name(), "hostnames": hostnames,
                   "goals": goals, "funnels": funnels})
        })
        .collect();
    Ok(json_response(json!({ "sites": sites })))
}

/// `GET /api/v1/sites/{site}/summary`
pub async fn summary(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let site_id = path.into_inner();
    let (site, p) = prepare(&state, &req, &site_id)?;
    let range = p.range(site)?;
    let compare = p.previous(site, &range)?;
    let (store, sid, filters, r, c) = (
        state.storage.clone(),
        site_id.clone(),
        p.filters.clone(),
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
    if p.csv {
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
    let mut body = json!({
        "site": site_id,
        "from": range.from.to_string(),
        "to": range.to.to_string(),
        "timezone": site.timezone.name(),
        "filters": p.filters_json(),
        "source": source,
    });
    if let (Some(obj), Ok(serde_json::Value::Object(nums))) =
        (body.as_object_mut(), serde_json::to_value(&n))
    {
        obj.extend(nums);
        if let (Some(pn), Some(c)) = (&prev, &compare) {
            let mut cmp = json!({"from": c.from.to_string(), "to": c.to.to_string()});
            if let (Some(co), Ok(serde_json::Value::Object(pnums))) =
                (cmp.as_object_mut(), serde_json::to_value(pn))
            {
                co.extend(pnums);
            }
            obj.insert("compare".into(), cmp);
        }
    }
    Ok(json_response(body))
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

/// `GET /api/v1/sites/{site}/timeseries?interval=hour|day|week|month`
pub async fn timeseries(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let site_id = path.into_inner();
    let (site, p) = prepare(&state, &req, &site_id)?;
    let range = p.range(site)?;
    let previous = p.previous(site, &range)?;
    let interval = match p.interval.as_deref() {
        None => {
            if range.days() <= 2 {
                Interval::Hour
            } else {
                Interval::Day
            }
        }
        Some(s) => Interval::parse(s).map_err(report_error)?,
    };
    let (store, sid, filters, r, tz, prev) = (
        state.storage.clone(),
        site_id.clone(),
        p.filters.clone(),
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
    if p.csv {
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
    let mut body = json!({
        "site": site_id,
        "from": range.from.to_string(),
        "to": range.to.to_string(),
        "timezone": site.timezone.name(),
        "interval": interval,
        "filters": p.filters_json(),
        "source": source,
        "buckets": buckets,
    });
    if let (Some(obj), Some(pr), Some(c)) = (body.as_object_mut(), &previous, &compared) {
        obj.insert(
            "compare".into(),
            json!({"from": pr.from.to_string(), "to": pr.to.to_string(), "buckets": c}),
        );
    }
    Ok(json_response(body))
}

/// `GET /api/v1/sites/{site}/breakdown/{dimension}?limit=&offset=`
pub async fn breakdown(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (site_id, dim_name) = path.into_inner();
    let (site, p) = prepare(&state, &req, &site_id)?;
    let dim = BreakdownKind::parse(&dim_name).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "unknown dimension; valid dimensions: {}, {}",
            dimension_names(),
            query::SEARCH_NO_RESULTS
        ))
    })?;
    let range = p.range(site)?;
    let previous = p.previous(site, &range)?;
    let limit = Params::number(&p.limit, "limit", DEFAULT_LIMIT, MAX_LIMIT)?;
    let offset = Params::number(&p.offset, "offset", 0, 1_000_000)?;
    let (store, sid, filters, r, prev) = (
        state.storage.clone(),
        site_id.clone(),
        p.filters.clone(),
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
    if p.csv {
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
    let rows: Vec<serde_json::Value> = b
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut v = json!(r);
            if let (Some(o), Some(c)) =
                (v.as_object_mut(), compared.as_ref().and_then(|c| c.get(i)))
            {
                o.insert("previous".into(), json!(c.previous));
                o.insert("change".into(), json!(c.change));
            }
            v
        })
        .collect();
    let mut body = json!({
        "site": site_id,
        "from": range.from.to_string(),
        "to": range.to.to_string(),
        "timezone": site.timezone.name(),
        "dimension": b.dimension,
        "metric": b.metric,
        "total": b.total,
        "total_rows": b.total_rows,
        "limit": limit,
        "offset": offset,
        "filters": p.filters_json(),
        "source": source,
        "rows": rows,
    });
    if let (Some(obj), Some(pr), Some(pb)) = (body.as_object_mut(), &previous, &before) {
        obj.insert(
            "compare".into(),
            json!({
                "from": pr.from.to_string(),
                "to": pr.to.to_string(),
                "total": pb.total,
                "total_rows": pb.total_rows,
            }),
        );
    }
    Ok(json_response(body))
}

/// `GET /api/v1/sites/{site}/realtime` — last 30 minutes, from raw events.
pub async fn realtime(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let site_id = path.into_inner();
    let (_, p) = prepare(&state, &req, &site_id)?;
    p.no_compare("realtime (it always covers the last 30 minutes)")?;
    let now = Utc::now();
    let (store, sid, filters) = (state.storage.clone(), site_id.clone(), p.filters.clone());
    let (visitors, pageviews) = run(move || query::realtime(&*store, &sid, now, &filters)).await?;
    if p.csv {
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
    Ok(json_response(json!({
        "site": site_id,
        "as_of": now.to_rfc3339(),
        "minutes": query::REALTIME_MINUTES,
        "visitors": visitors,
        "pageviews": pageviews,
        "filters": p.filters_json(),
        "source": Source::Raw,
    })))
}

/// `GET /api/v1/sites/{site}/goals` — every declared goal: conversions
/// (visits that reached it), visitors, conversion rate, revenue.
pub async fn goals(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let site_id = path.into_inner();
    let (site, p) = prepare(&state, &req, &site_id)?;
    p.no_compare("goals")?;
    let range = p.range(site)?;
    let (store, site_cfg, filters, r) = (
        state.storage.clone(),
        site.clone(),
        p.filters.clone(),
        range.clone(),
    );
    let report = run(move || goals_report(&*store, &site_cfg, &r, &filters)).await?;
    if p.csv {
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
    Ok(json_response(json!({
        "site": site_id,
        "from": range.from.to_string(),
        "to": range.to.to_string(),
        "timezone": site.timezone.name(),
        "filters": p.filters_json(),
        "source": Source::Raw,
        "visits": report.visits,
        "rows": report.rows,
    })))
}

/// `GET /api/v1/sites/{site}/funnel?name=` — visits that reached each step
/// of a declared funnel (without `name` the site's first) in order within
/// the visit, and the drop-off.
pub async fn funnel(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let site_id = path.into_inner();
    let (site, p) = prepare(&state, &req, &site_id)?;
    p.no_compare("funnels")?;
    let name = p.name.clone().filter(|n| !n.is_empty());
    let range = p.range(site)?;
    let (store, site_cfg, filters, r) = (
        state.storage.clone(),
        site.clone(),
        p.filters.clone(),
        range.clone(),
    );
    let report =
        run(move || funnel_report(&*store, &site_cfg, name.as_deref(), &r, &filters)).await?;
    if p.csv {
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
    Ok(json_response(json!({
        "site": site_id,
        "from": range.from.to_string(),
        "to": range.to.to_string(),
        "timezone": site.timezone.name(),
        "filters": p.filters_json(),
        "source": Source::Raw,
        "funnel": report.funnel,
        "visits": report.visits,
        "entered": report.entered,
        "completed": report.completed,
        "completion_rate": report.completion_rate,
        "steps": report.steps,
    })))
}
