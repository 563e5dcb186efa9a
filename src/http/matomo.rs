//! Matomo HTTP Tracking API routes: `GET`/`POST` `/matomo.php` and
//! `/piwik.php`, single requests (query string and/or form body) and bulk
//! requests (`{"requests": [...]}`).
//!
//! Answers as Matomo does: a 1x1 GIF, or 204 with `send_image=0`; bulk
//! requests get `{"status":"success","tracked":N,"invalid":M}`. Opted-out
//! hits get the same answers. The opt-out cookie is checked first, on
//! headers alone; DNT/GPC next, per site; then the parameters are parsed.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;

use super::client::{optout_signals, request_meta};
use super::error::ApiError;
use super::ingest::{gif_response, read_body, store_hits};
use super::rate_limit::admit;
use super::AppState;
use crate::ingest::matomo::{idsite_param, is_bulk, parse_bulk, parse_request, MatomoRequest};
use crate::ingest::{Hit, Reject};

/// Registers `/matomo.php` and `/piwik.php`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    for path in ["/matomo.php", "/piwik.php"] {
        cfg.service(
            web::resource(path)
                .route(web::get().to(get))
                .route(web::post().to(post)),
        );
    }
}

fn count(outcome: &'static str, n: usize) {
    metrics::counter!("sparsam_hits_total", "outcome" => outcome).increment(n as u64);
}

/// GIF, or 204 when the request says `send_image=0`.
fn answer(params: &str) -> HttpResponse {
    let no_image = form_urlencoded::parse(params.as_bytes())
        .any(|(k, v)| k == "send_image" && v.trim() == "0");
    if no_image {
        HttpResponse::NoContent()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
            .finish()
    } else {
        gif_response()
    }
}

/// DNT / GPC for the site a request names (by `idsite`).
fn dropped_by_signals(state: &AppState, req: &HttpRequest, params: &str) -> bool {
    let signals = optout_signals(req, &state.config.privacy.optout_cookie);
    match idsite_param(params).and_then(|id| state.config.site_by_matomo_id(id)) {
        Some(site) => signals.opted_out(site.honour_dnt, site.honour_gpc),
        None => signals.cookie,
    }
}

fn cookie_opt_out(state: &AppState, req: &HttpRequest) -> bool {
    optout_signals(req, &state.config.privacy.optout_cookie).cookie
}

async fn single(
    state: &AppState,
    req: &HttpRequest,
    params: &str,
) -> Result<HttpResponse, ApiError> {
    if dropped_by_signals(state, req, params) {
        count("optout", 1);
        return Ok(answer(params));
    }
    match parse_request(params, &state.config)? {
        MatomoRequest::Ignored => count("ignored", 1),
        MatomoRequest::Hit(hit) => store_hits(state, req, vec![*hit]).await?,
    }
    Ok(answer(params))
}

/// `GET /matomo.php`
pub async fn get(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    admit(&state, &req)?;
    let query = req.query_string().to_string();
    if cookie_opt_out(&state, &req) {
        count("optout", 1);
        return Ok(answer(&query));
    }
    check_len(&state, &query)?;
    single(&state, &req, &query).await
}

fn check_len(state: &AppState, params: &str) -> Result<(), ApiError> {
    let max = state.config.server.max_field_bytes * 8;
    if params.len() > max {
        return Err(Reject::TooLong {
            field: "query string",
            max,
        }
        .into());
    }
    Ok(())
}

/// `POST /matomo.php`: form parameters (added to the query string's) or a
/// bulk JSON body.
pub async fn post(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    admit(&state, &req)?;
    let query = req.query_string().to_string();
    let opted_out = cookie_opt_out(&state, &req);
    let body = read_body(payload, state.config.server.max_body_bytes).await?;
    if is_bulk(&body) {
        let requests = parse_bulk(&body, state.config.server.max_batch_events)?;
        if opted_out {
            count("optout", requests.len());
            return Ok(bulk_answer(requests.len(), &[]));
        }
        return bulk(&state, &req, requests).await;
    }
    let body = std::str::from_utf8(&body)
        .map_err(|_| ApiError::BadRequest("form body is not UTF-8".into()))?;
    let params = match (query.is_empty(), body.trim().is_empty()) {
        (_, true) => query,
        (true, false) => body.trim().to_string(),
        (false, false) => format!("{query}&{}", body.trim()),
    };
    if opted_out {
        count("optout", 1);
        return Ok(answer(&params));
    }
    check_len(&state, &params)?;
    single(&state, &req, &params).await
}

fn bulk_answer(tracked: usize, invalid: &[usize]) -> HttpResponse {
    let mut body = serde_json::json!({
        "status": "success",
        "tracked": tracked,
        "invalid": invalid.len(),
    });
    if !invalid.is_empty() {
        body["invalid_indices"] = serde_json::json!(invalid);
    }
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(body)
}

/// Each request is checked on its own: invalid ones are counted and
/// skipped (as Matomo does), the valid ones are stored together.
async fn bulk(
    state: &AppState,
    req: &HttpRequest,
    requests: Vec<String>,
) -> Result<HttpResponse, ApiError> {
    let meta = request_meta(req, &state.addr_policy)
        .ok_or_else(|| ApiError::BadRequest("client address unavailable".into()))?;
    let now = Utc::now();
    let mut tracked = 0;
    let mut invalid = Vec::new();
    let mut hits: Vec<Hit> = Vec::new();
    for (i, params) in requests.iter().enumerate() {
        if params.len() > state.config.server.max_field_bytes * 8 {
            invalid.push(i);
            continue;
        }
        if dropped_by_signals(state, req, params) {
            count("optout", 1);
            tracked += 1;
            continue;
        }
        match parse_request(params, &state.config) {
            Err(_) => invalid.push(i),
            Ok(MatomoRequest::Ignored) => {
                count("ignored", 1);
                tracked += 1;
            }
            // Validate through the pipeline so one bad request does not
            // refuse the whole batch.
            Ok(MatomoRequest::Hit(hit)) => match state.pipeline.process((*hit).clone(), &meta, now)
            {
                Ok(_) => hits.push(*hit),
                Err(_) => invalid.push(i),
            },
        }
    }
    if !invalid.is_empty() {
        count("rejected", invalid.len());
    }
    if !hits.is_empty() {
        tracked += hits.len();
        store_hits(state, req, hits).await?;
    }
    Ok(bulk_answer(tracked, &invalid))
}
