//! The retention routes for data protection officers and operators (admin
//! token only): `GET /api/v1/audit`, the audit view, and
//! `POST /api/v1/sweep`, which runs one retention sweep now while the
//! server keeps running. The view and the sweep themselves live in
//! `retention`; a sweep here goes through the same gate as the scheduled
//! ones, so it never overlaps another.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;

use super::auth::authorize_admin;
use super::cookie_watch::CookieWatch;
use super::error::ApiError;
use super::AppState;
use crate::retention::SweepError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/audit", web::get().to(audit))
        .route("/api/v1/sweep", web::post().to(sweep));
}

async fn audit(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize_admin(&req, &state.config)?;
    let (store, config) = (state.storage.clone(), state.config.clone());
    let mut view =
        web::block(move || crate::retention::audit::audit_view(&*store, &config, Utc::now()))
            .await
            .map_err(|_| ApiError::Internal)?
            .map_err(|e| {
                tracing::error!(error = %e, "audit view failed");
                ApiError::Internal
            })?;
    // The same watch the response middleware fills; without one (not
    // wired), the view says "not observed" rather than zero.
    if let Some(watch) = req.app_data::<web::Data<CookieWatch>>() {
        view.cookies.observed(watch.unexpected(), watch.seen());
    }
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(view))
}

/// `dry_run` from the query string; anything else is refused, so a typo
/// cannot turn an intended dry run into a real sweep.
fn dry_run(query: &str) -> Result<bool, ApiError> {
    let mut dry = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "dry_run" if dry.is_none() => {
                dry = Some(match v.as_ref() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(ApiError::BadRequest(
                            "`dry_run` must be true or false".into(),
                        ))
                    }
                })
            }
            "dry_run" => {
                return Err(ApiError::BadRequest("`dry_run` is given twice".into()));
            }
            _ => {
                return Err(ApiError::BadRequest(
                    "unknown parameter; the only parameter is `dry_run=true|false`".into(),
                ))
            }
        }
    }
    Ok(dry.unwrap_or(false))
}

/// The most a sweep request's body may hold (it should hold nothing).
const MAX_SWEEP_BODY: usize = 1024;

/// `POST /api/v1/sweep[?dry_run=true]`. The token is checked before a byte
/// of the body is read, so a caller without it cannot make the server
/// wait for or buffer anything.
async fn sweep(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    authorize_admin(&req, &state.config)?;
    let dry = dry_run(req.query_string())?;
    let body = super::ingest::read_body(&state, payload, MAX_SWEEP_BODY).await?;
    if !body.is_empty() {
        return Err(ApiError::BadRequest(
            "send no body; `dry_run` goes in the query string".into(),
        ));
    }
    let (store, config, gate) = (
        state.storage.clone(),
        state.config.clone(),
        state.sweep_gate.clone(),
    );
    let report = web::block(move || gate.sweep(&*store, &config, dry))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|e| match e {
            SweepError::Cancelled => ApiError::Busy,
            e => {
                tracing::error!(error = %e, "sweep requested over HTTP failed");
                ApiError::Internal
            }
        })?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(report))
}
