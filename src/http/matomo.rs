//! Matomo HTTP Tracking API routes: `GET`/`POST` `/matomo.php` and
//! `/piwik.php`, single requests (query string and/or form body) and bulk
//! requests (`{"requests": [...]}`).
//!
//! Answers as Matomo does: a 1x1 GIF, or 204 with `send_image=0`; bulk
//! requests get `{"status":"success","tracked":N,"invalid":M}`. Opted-out
//! hits get the same answers. The opt-out decision
//! (`crate::privacy::optout`) comes before the parameters are parsed.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::client::optout_signals;
use super::error::ApiError;
use super::ingest::{gif_response, hit_opted_out, meta, read_ingest_body, store_hits, submit};
use super::rate_limit::{admit, charge, Measure};
use super::AppState;
use crate::ingest::matomo::{is_bulk, parse_bulk, parse_request, MatomoRequest};
use crate::ingest::{site_ref, Processed, Reject};
use crate::model::Event;
use crate::privacy::OptOutSignals;

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

async fn single(
    state: &AppState,
    req: &HttpRequest,
    signals: &OptOutSignals,
    params: &str,
) -> Result<HttpResponse, ApiError> {
    check_len(state, params)?;
    let request = parse_request(params, &state.config)?;
    charge(state, req, Measure::Events, 1)?;
    match request {
        MatomoRequest::Ignored => count("ignored", 1),
        MatomoRequest::Hit(hit) if hit_opted_out(state, signals, &hit.site) => count("optout", 1),
        MatomoRequest::Hit(hit) => store_hits(state, req, vec![*hit]).await?,
    }
    Ok(answer(params))
}

/// `GET /matomo.php`
pub async fn get(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    admit(&state, &req)?;
    let query = req.query_string();
    let signals = optout_signals(&req, &state.config.privacy.optout_cookie);
    if signals.drops_request(&state.config.sites, || {
        site_ref::matomo_sites(query.as_bytes(), &state.config)
    }) {
        count("optout", 1);
        return Ok(answer(query));
    }
    single(&state, &req, &signals, query).await
}

fn check_len(state: &AppState, params: &str) -> Result<(), ApiError> {
    let max = state.config.server.max_field_bytes.as_u64() as usize * 8;
    if params.len() > max {
        return Err(Reject::TooLong {
            field: "query string",
            max,
        }
        .into());
    }
    Ok(())
}

/// Query string and form body as one parameter string.
fn join_params(query: &str, body: &str) -> String {
    match (query.is_empty(), body.trim().is_empty()) {
        (_, true) => query.to_string(),
        (true, false) => body.trim().to_string(),
        (false, false) => format!("{query}&{}", body.trim()),
    }
}

/// `POST /matomo.php`: form parameters (added to the query string's) or a
/// bulk JSON body. The body is read (within `server.max_body_bytes`)
/// before the opt-out decision because it names the site and shapes the
/// answer (`send_image`, the number of bulk requests); it is parsed only
/// after that decision.
pub async fn post(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    admit(&state, &req)?;
    let query = req.query_string();
    let signals = optout_signals(&req, &state.config.privacy.optout_cookie);
    let body = read_ingest_body(&state, &req, payload).await?;
    if is_bulk(&body) {
        if signals.drops_request(&state.config.sites, || {
            site_ref::bulk_sites(&body, &state.config)
        }) {
            let n = site_ref::bulk_request_count(&body);
            count("optout", n);
            return Ok(bulk_answer(n, &[]));
        }
        let requests = parse_bulk(&body, state.config.server.max_batch_events)?;
        // every request of the bulk is an event to the limit
        charge(&state, &req, Measure::Events, requests.len())?;
        return bulk(&state, &req, &signals, requests).await;
    }
    // the opt-out decision reads the same parameters the parser will
    let params = join_params(query, &String::from_utf8_lossy(&body));
    if signals.drops_request(&state.config.sites, || {
        site_ref::matomo_sites(params.as_bytes(), &state.config)
    }) {
        count("optout", 1);
        return Ok(answer(&params));
    }
    std::str::from_utf8(&body)
        .map_err(|_| ApiError::BadRequest("form body is not UTF-8".into()))?;
    single(&state, &req, &signals, &params).await
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

/// Each request is checked on its own, once: invalid ones are counted and
/// skipped (as Matomo does), the events of the valid ones are stored
/// together.
async fn bulk(
    state: &AppState,
    req: &HttpRequest,
    signals: &OptOutSignals,
    requests: Vec<String>,
) -> Result<HttpResponse, ApiError> {
    let meta = meta(state, req)?;
    let now = crate::clock::now();
    let mut tracked = 0;
    let mut invalid = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    for (i, params) in requests.iter().enumerate() {
        if params.len() > state.config.server.max_field_bytes.as_u64() as usize * 8 {
            invalid.push(i);
            continue;
        }
        match parse_request(params, &state.config) {
            Err(_) => invalid.push(i),
            Ok(MatomoRequest::Ignored) => {
                count("ignored", 1);
                tracked += 1;
            }
            Ok(MatomoRequest::Hit(hit)) if hit_opted_out(state, signals, &hit.site) => {
                count("optout", 1);
                tracked += 1;
            }
            Ok(MatomoRequest::Hit(hit)) => match state.pipeline.process(*hit, &meta, now) {
                Ok(Processed::Events(e)) => {
                    events.extend(e);
                    tracked += 1;
                }
                Ok(Processed::Bot) => {
                    count("bot", 1);
                    tracked += 1;
                }
                Ok(Processed::ReferrerSpam) => {
                    count("referrer_spam", 1);
                    tracked += 1;
                }
                Ok(Processed::UndeclaredEvent) => {
                    count("undeclared_event", 1);
                    tracked += 1;
                }
                Err(_) => invalid.push(i),
            },
        }
    }
    if !invalid.is_empty() {
        count("rejected", invalid.len());
    }
    submit(state, events).await?;
    Ok(bulk_answer(tracked, &invalid))
}
