//! Reporting routes under `/api/v1`.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Deserialize;

use super::auth::authorize_site;
use super::error::ApiError;
use super::AppState;
use crate::report::DayRange;

#[derive(Deserialize)]
pub struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
    period: Option<String>,
}

/// `GET /api/v1/sites/{site}/summary?from=YYYY-MM-DD&to=YYYY-MM-DD`
pub async fn summary(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<RangeQuery>,
) -> Result<HttpResponse, ApiError> {
    let site_id = path.into_inner();
    authorize_site(&req, &state.config, &site_id)?;
    let site = state.config.site(&site_id).ok_or(ApiError::NotFound)?;
    let tz = site.tz();
    let range = DayRange::parse(
        &tz,
        q.from.as_deref(),
        q.to.as_deref(),
        q.period.as_deref(),
        Utc::now(),
    )
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let store = state.store.clone();
    let (start, end) = (
        range.start_utc.timestamp_millis(),
        range.end_utc.timestamp_millis(),
    );
    let sid = site_id.clone();
    let s = web::block(move || store.summary(&sid, start, end))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|e| {
            tracing::error!(error = %e, "summary query failed");
            ApiError::Internal
        })?;
    let visits = s.visits.max(0) as f64;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "site": site_id,
        "from": range.from.to_string(),
        "to": range.to.to_string(),
        "timezone": site.timezone,
        "pageviews": s.pageviews,
        "visits": s.visits,
        "visitors": s.visitors,
        "views_per_visit": if visits > 0.0 { s.pageviews as f64 / visits } else { 0.0 },
        "bounce_rate": if visits > 0.0 { s.bounces as f64 / visits } else { 0.0 },
        "avg_dwell_seconds": if visits > 0.0 { s.dwell_ms_sum as f64 / visits / 1000.0 } else { 0.0 },
        "downloads": s.downloads,
        "outbound": s.outbound,
        "searches": s.searches,
    })))
}
