//! Ingest routes: the pixel and the script beacon. They translate requests
//! into hits, ask the pipeline, hand events to the store writer and answer
//! once the events are durable.
//!
//! Opted-out and bot hits get exactly the answer a stored hit gets, so a
//! page cannot tell whether its visitor was counted. The opt-out decision
//! (`crate::privacy::optout`) comes before the query or body is parsed.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use super::client::{optout_signals, referer, request_meta};
use super::error::ApiError;
use super::rate_limit::{admit, charge, Measure};
use super::AppState;
use crate::ingest::{pixel, plausible, site_ref, Hit, Processed, Reject, RequestMeta};
use crate::model::Event;
use crate::privacy::{ClientAddrPolicy, OptOutSignals};
use crate::storage::StorageError;

/// A transparent 1x1 GIF.
pub const PIXEL_GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

pub fn gif_response() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/gif")
        .insert_header((header::CACHE_CONTROL, "no-store, max-age=0"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(PIXEL_GIF)
}

pub fn accepted_response() -> HttpResponse {
    HttpResponse::Accepted()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body("ok")
}

fn count(outcome: &'static str, n: usize) {
    metrics::counter!("sparsam_hits_total", "outcome" => outcome).increment(n as u64);
}

/// Is a parsed hit for `site_id` dropped by the opt-out signals? The
/// safety net after parsing; the decision that counts comes before it.
pub fn hit_opted_out(state: &AppState, signals: &OptOutSignals, site_id: &str) -> bool {
    if !(signals.dnt || signals.gpc) {
        // only the cookie can decide, whatever the site says
        return signals.cookie;
    }
    match state.config.site(site_id) {
        Some(site) => signals.opted_out(site.honour_dnt, site.honour_gpc),
        None => signals.cookie,
    }
}

/// Runs hits through the pipeline: their events, or the first refusal.
/// Bots and referrer spam are counted in a metric and yield no events.
pub fn process_hits(
    state: &AppState,
    meta: &RequestMeta,
    hits: Vec<Hit>,
) -> Result<Vec<Event>, ApiError> {
    let now = crate::clock::now();
    let mut events: Vec<Event> = Vec::with_capacity(hits.len());
    let mut bots = 0;
    let mut spam = 0;
    let mut undeclared = 0;
    for hit in hits {
        match state.pipeline.process(hit, meta, now) {
            Ok(Processed::Events(e)) => events.extend(e),
            Ok(Processed::Bot) => bots += 1,
            Ok(Processed::ReferrerSpam) => spam += 1,
            Ok(Processed::UndeclaredEvent) => undeclared += 1,
            Err(e) => {
                count("rejected", 1);
                return Err(e.into());
            }
        }
    }
    if bots > 0 {
        count("bot", bots);
    }
    if spam > 0 {
        count("referrer_spam", spam);
    }
    if undeclared > 0 {
        count("undeclared_event", undeclared);
    }
    Ok(events)
}

/// The request facts the pipeline needs (shortened address, user agent,
/// header client hints).
pub fn meta(state: &AppState, req: &HttpRequest) -> Result<RequestMeta, ApiError> {
    meta_by(req, &state.addr_policy)
}

/// [`meta`] under `policy`. Without a peer address (the listener gave
/// none) the fault is the server's, not the client's: 500, logged.
fn meta_by(req: &HttpRequest, policy: &ClientAddrPolicy) -> Result<RequestMeta, ApiError> {
    request_meta(req, policy).ok_or_else(|| {
        tracing::error!("the listener gave no peer address for a request");
        ApiError::Internal
    })
}

/// Hands events to the store and waits until they are durable. A full
/// queue is 503 with `Retry-After` (nothing of the batch is stored), and so
/// is a write the disk refused; a failure inside the store is 500.
pub async fn submit(state: &AppState, mut events: Vec<Event>) -> Result<(), ApiError> {
    // past the site's bounds for the day: answered alike, counted, dropped
    state.day_limits.apply(&mut events);
    if events.is_empty() {
        return Ok(());
    }
    let n = events.len();
    let ack = state.storage.submit(events).map_err(|e| match e {
        StorageError::Busy => {
            count("busy", n);
            ApiError::Busy
        }
        StorageError::Closed => ApiError::Busy,
        e => {
            tracing::error!(error = %e, "store refused a batch");
            count("store_failed", n);
            ApiError::Internal
        }
    })?;
    let outcome = ack
        .await
        .unwrap_or_else(|_| Err(StorageError::Internal("the writer went away".into())));
    match outcome {
        Ok(()) => {
            count("stored", n);
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, "store commit failed");
            count("store_failed", n);
            Err(if e.is_transient() {
                ApiError::StoreFailed
            } else {
                ApiError::Internal
            })
        }
    }
}

/// Runs hits through the pipeline and waits until their events are durable.
pub async fn store_hits(
    state: &AppState,
    req: &HttpRequest,
    hits: Vec<Hit>,
) -> Result<(), ApiError> {
    let meta = meta(state, req)?;
    let events = process_hits(state, &meta, hits)?;
    submit(state, events).await
}

/// `GET /p.gif`
pub async fn pixel(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    admit(&state, &req)?;
    let signals = optout_signals(&req, &state.config.privacy.optout_cookie);
    let query = req.query_string();
    if signals.drops_request(&state.config.sites, || {
        site_ref::pixel_sites(query, &state.config)
    }) {
        count("optout", 1);
        return Ok(gif_response());
    }
    if query.len() > state.config.server.max_field_bytes.as_u64() as usize * 4 {
        return Err(Reject::TooLong {
            field: "query string",
            max: state.config.server.max_field_bytes.as_u64() as usize * 4,
        }
        .into());
    }
    let hit = pixel::parse_pixel(query, referer(&req))?;
    charge(&state, &req, Measure::Events, 1)?;
    if hit_opted_out(&state, &signals, &hit.site) {
        count("optout", 1);
        return Ok(gif_response());
    }
    store_hits(&state, &req, vec![hit]).await?;
    Ok(gif_response())
}

/// Reads a request body up to `limit` bytes, refusing more with 413; the
/// whole body must arrive within `server.client_timeout_secs` (408
/// otherwise, so a client trickling its body cannot hold a worker).
pub async fn read_body(
    state: &AppState,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let deadline = state.config.server.client_timeout;
    let read = async {
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|_| ApiError::BadRequest("request body could not be read".into()))?;
            if body.len() + chunk.len() > limit {
                return Err(Reject::TooLong {
                    field: "body",
                    max: limit,
                }
                .into());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    match tokio::time::timeout(deadline, read).await {
        Ok(body) => body,
        Err(_) => {
            metrics::counter!("sparsam_slow_bodies_total").increment(1);
            Err(ApiError::SlowBody(
                state.config.server.client_timeout.as_secs(),
            ))
        }
    }
}

/// Reads an ingest body (see [`read_body`]) and charges its bytes to the
/// sender's rate limit.
pub async fn read_ingest_body(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<web::BytesMut, ApiError> {
    let body = read_body(
        state,
        payload,
        state.config.server.max_body_bytes.as_u64() as usize,
    )
    .await?;
    charge(state, req, Measure::Bytes, body.len())?;
    Ok(body)
}

/// `POST /api/event`
pub async fn beacon(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    admit(&state, &req)?;
    let signals = optout_signals(&req, &state.config.privacy.optout_cookie);
    // The body is received (within the size limit, as for everyone, so the
    // connection is handled alike) but not looked at before the opt-out
    // decision, which reads at most the site names in it.
    let body = read_ingest_body(&state, &req, payload).await?;
    if signals.drops_request(&state.config.sites, || {
        site_ref::beacon_sites(&body, &state.config)
    }) {
        count("optout", 1);
        return Ok(accepted_response());
    }
    let hits =
        plausible::parse_event_body(&body, state.config.server.max_batch_events, &state.config)?;
    charge(&state, &req, Measure::Events, hits.len())?;
    let before = hits.len();
    let hits: Vec<Hit> = hits
        .into_iter()
        .filter(|h| !hit_opted_out(&state, &signals, &h.site))
        .collect();
    if hits.len() < before {
        count("optout", before - hits.len());
    }
    if !hits.is_empty() {
        store_hits(&state, &req, hits).await?;
    }
    Ok(accepted_response())
}

/// `OPTIONS /api/event`: CORS preflight for clients that send JSON with
/// `Content-Type: application/json` (the tracker itself avoids it).
pub async fn preflight() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "POST, OPTIONS"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, "content-type"))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"))
        .finish()
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError;

    use super::*;

    #[test]
    fn a_request_without_a_peer_address_is_the_servers_fault() {
        // actix's test request carries no peer address, as a listener that
        // gives none would
        let req = actix_web::test::TestRequest::default().to_http_request();
        let err = meta_by(&req, &ClientAddrPolicy::default()).unwrap_err();
        assert_eq!(err.status_code().as_u16(), 500, "{err}");
    }
}
