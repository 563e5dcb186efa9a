//! Operations routes: liveness and Prometheus metrics.

use actix_web::{web, HttpResponse};

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

/// `GET /metrics`: Prometheus text format. Holds counts only, never an
/// address, URL or user agent.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
