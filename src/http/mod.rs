//! The HTTP surface: actix routes that translate requests into calls and
//! results into responses. No analytics logic lives here.

pub mod audit;
pub mod auth;
pub mod client;
pub mod compress;
pub mod cookie_watch;
pub mod dashboard;
pub mod demo;
pub mod error;
pub mod ingest;
pub mod lang;
pub mod matomo;
pub mod openapi;
pub mod ops;
pub mod optout;
pub mod privacy_notice;
pub mod rate_limit;
pub mod report;
pub mod report_answers;
pub mod report_params;
pub mod tracker;

use std::sync::Arc;

use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpResponse};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;
use crate::ingest::Pipeline;
use crate::privacy::ClientAddrPolicy;
use crate::retention::SweepGate;
use crate::storage::Storage;

/// Everything a request handler may use.
pub struct AppState {
    pub config: Arc<Config>,
    pub pipeline: Pipeline,
    /// The store, behind its boundary: writes and reads.
    pub storage: Arc<dyn Storage>,
    pub addr_policy: ClientAddrPolicy,
    pub metrics: PrometheusHandle,
    /// Per-prefix limit on ingest requests; `None` when switched off.
    pub rate_limit: Option<rate_limit::PrefixLimiter>,
    /// Shared with the scheduled sweeper: one sweep at a time.
    pub sweep_gate: Arc<SweepGate>,
    /// Wrong tokens per address prefix (`auth.max_failed_tokens_per_minute`).
    pub failed_tokens: auth::FailedTokens,
    /// Per-site, per-day bounds on new strings and events.
    pub day_limits: crate::ingest::day_limits::DayLimits,
}

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(tracker::routes).configure(matomo::routes);
    cfg.route("/p.gif", web::get().to(ingest::pixel))
        .service(
            web::resource("/api/event")
                .route(web::post().to(ingest::beacon))
                .route(web::method(actix_web::http::Method::OPTIONS).to(ingest::preflight)),
        )
        .route("/optout", web::get().to(optout::show))
        .route("/optout", web::post().to(optout::change))
        .route("/privacy", web::get().to(privacy_notice::show))
        .route("/healthz", web::get().to(ops::healthz))
        .route("/metrics", web::get().to(ops::metrics))
        .configure(report::routes)
        .configure(dashboard::routes)
        .configure(audit::configure)
        .default_service(web::to(not_found));
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({"error": "no such route"}))
}

/// Headers every response carries.
pub fn default_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
}
