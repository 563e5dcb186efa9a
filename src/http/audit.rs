//! The retention routes for data protection officers and operators (admin
//! token only): `GET /api/v1/audit`, the audit view, and
//! `POST /api/v1/sweep`, which runs one retention sweep now while the
//! server keeps running. The view and the sweep themselves live in
//! `retention`; a sweep here goes through the same gate as the scheduled
//! ones, so it never overlaps another.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use utoipa::IntoParams;

use super::auth::authorize_admin;
use super::cookie_watch::CookieWatch;
use super::error::{blocking, ApiError};
use super::openapi::{
    AdminOnly, BadRequest, Forbidden, InternalError, SlowBody, TooManyTokenAttempts, Unauthorized,
};
use super::report_answers::ErrorBody;
use super::AppState;
use crate::retention::audit::AuditView;
use crate::retention::{SweepError, SweepReport};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/audit", web::get().to(audit))
        .route("/api/v1/sweep", web::post().to(sweep));
}

/// Audit view for data protection officers (admin token only): retention in force, address masks, cookies, raw event ages, sweeps, verification
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    responses(
        (status = 200, description = "Audit view", body = AuditView),
        (status = 401, response = Unauthorized),
        (status = 403, response = AdminOnly),
        (status = 429, response = TooManyTokenAttempts),
        (status = 500, response = InternalError),
    )
)]
pub async fn audit(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize_admin(&req, &state.config)?;
    let (store, config) = (state.storage.clone(), state.config.clone());
    let mut view =
        blocking(move || crate::retention::audit::audit_view(&*store, &config, Utc::now()))
            .await?
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

/// The parameters of a sweep request.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SweepParams {
    /// `true` (or `1`) reports what would be deleted and deletes nothing;
    /// default `false`. Any other parameter is refused.
    #[param(default = false)]
    pub dry_run: Option<bool>,
}

impl SweepParams {
    /// Parses the query string; anything but one `dry_run` is refused, so
    /// a typo cannot turn an intended dry run into a real sweep.
    fn parse(query: &str) -> Result<SweepParams, ApiError> {
        let mut p = SweepParams::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "dry_run" if p.dry_run.is_none() => {
                    p.dry_run = Some(match v.as_ref() {
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
        Ok(p)
    }
}

/// The most a sweep request's body may hold (it should hold nothing).
const MAX_SWEEP_BODY: usize = 1024;

/// Run one retention sweep now (admin token only)
///
/// Runs through the same code as the scheduled sweeps and after any sweep
/// in progress; a real sweep is recorded in the audit log, a dry run only
/// reads. No request body.
//
// The token is checked before a byte of the body is read, so a caller
// without it cannot make the server wait for or buffer anything.
#[utoipa::path(
    post,
    path = "/api/v1/sweep",
    params(SweepParams),
    responses(
        (status = 200, description = "What the sweep deleted (or would delete)",
         body = SweepReport),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 408, response = SlowBody),
        (status = 429, response = TooManyTokenAttempts),
        (status = 500, response = InternalError),
        (status = 503, description = "The server is shutting down; the sweep stopped after \
            its current step or did not start", body = ErrorBody),
    )
)]
pub async fn sweep(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    authorize_admin(&req, &state.config)?;
    let dry = SweepParams::parse(req.query_string())?
        .dry_run
        .unwrap_or(false);
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
    let report = blocking(move || gate.sweep(&*store, &config, dry))
        .await?
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
