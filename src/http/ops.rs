//! Operations routes: liveness and Prometheus metrics (admin token only:
//! the counters tell how busy each site is and which limits were hit).

use actix_web::{web, HttpRequest, HttpResponse};

use super::auth::authorize_admin;
use super::error::ApiError;
use super::AppState;

/// `GET /healthz`: the process answers and the store writer is running.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    if state.storage.is_accepting() {
        HttpResponse::Ok().content_type("text/plain").body("ok")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("store writer stopped")
    }
}

/// `GET /metrics` on the metrics-only listener (`server.metrics_listen`):
/// no token, the address itself is the protection.
pub async fn metrics_without_token(
    handle: web::Data<metrics_exporter_prometheus::PrometheusHandle>,
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .insert_header(("Cache-Control", "no-store"))
        .body(handle.render())
}

/// `GET /metrics`: Prometheus text format, for the admin token
/// (`Authorization: Bearer`, as Prometheus' `authorization` setting
/// sends it). Holds counts only, never an address, URL or user agent.
pub async fn metrics(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authorize_admin(&req, &state.config)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .insert_header(("Cache-Control", "no-store"))
        .body(state.metrics.render()))
}
