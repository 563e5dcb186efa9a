//! `GET /api/v1/audit`: the audit view for data protection officers
//! (admin token only). The view itself is built in `retention::audit`.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;

use super::auth::authorize_admin;
use super::error::ApiError;
use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/audit", web::get().to(audit));
}

async fn audit(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize_admin(&req, &state.config)?;
    let (store, config) = (state.store.clone(), state.config.clone());
    let view = web::block(move || crate::retention::audit::audit_view(&store, &config, Utc::now()))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|e| {
            tracing::error!(error = %e, "audit view failed");
            ApiError::Internal
        })?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(view))
}
