//! Watches every response for `Set-Cookie`, so the audit view can say what
//! the running server did rather than what it is meant to do.
//!
//! The one response allowed to set a cookie is the opt-out form
//! (`POST /optout`), and only the configured opt-out cookie. Anything else
//! is counted, logged (route and cookie name, never a value) and reported
//! by `GET /api/v1/audit` as unexpected. Only responses that carry a
//! `Set-Cookie` header do any work here, so ingest pays one header lookup.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest};

/// Routes and cookie names kept for the audit view, at most.
const KEEP: usize = 32;

/// Counts responses that set a cookie they should not.
#[derive(Debug)]
pub struct CookieWatch {
    optout_cookie: String,
    unexpected: AtomicU64,
    seen: Mutex<BTreeSet<String>>,
}

impl CookieWatch {
    /// A watch allowing only `optout_cookie` on `POST /optout`.
    pub fn new(optout_cookie: &str) -> CookieWatch {
        CookieWatch {
            optout_cookie: optout_cookie.to_string(),
            unexpected: AtomicU64::new(0),
            seen: Mutex::new(BTreeSet::new()),
        }
    }

    /// Looks at one response's headers.
    pub fn observe(&self, req: &HttpRequest, headers: &header::HeaderMap) {
        let optout_form = req.method() == Method::POST && req.path() == "/optout";
        for value in headers.get_all(header::SET_COOKIE) {
            let name = value
                .to_str()
                .ok()
                .and_then(|v| v.split_once('='))
                .map(|(n, _)| n.trim().to_string())
                .unwrap_or_else(|| "?".into());
            if optout_form && name == self.optout_cookie {
                continue;
            }
            self.unexpected.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("sparsam_unexpected_set_cookie_total").increment(1);
            // The route pattern, not the path: no query, no ids.
            let route = req.match_pattern().unwrap_or_else(|| "(unmatched)".into());
            tracing::error!(route = %route, cookie = %name, "a response set an unexpected cookie");
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.len() < KEEP {
                seen.insert(format!("{} {route}: {name}", req.method()));
            }
        }
    }

    /// Responses since start-up that set a cookie other than the opt-out
    /// cookie on the opt-out form.
    pub fn unexpected(&self) -> u64 {
        self.unexpected.load(Ordering::Relaxed)
    }

    /// `METHOD route: cookie` of those responses (the first few).
    pub fn seen(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter().cloned().collect()
    }
}

/// The middleware (`middleware::from_fn(watch_responses)`): hands every
/// response that carries `Set-Cookie` to the app's `web::Data<CookieWatch>`.
pub async fn watch_responses(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let res = next.call(req).await?;
    if res.headers().contains_key(header::SET_COOKIE) {
        if let Some(watch) = res.request().app_data::<web::Data<CookieWatch>>() {
            watch.observe(res.request(), res.headers());
        }
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test, App, HttpResponse};
    use std::sync::Arc;

    #[actix_web::test]
    async fn counts_every_cookie_but_the_optout_form_s_own() {
        let watch = Arc::new(CookieWatch::new("optout"));
        let app = test::init_service(
            App::new()
                .app_data(web::Data::from(watch.clone()))
                .wrap(actix_web::middleware::from_fn(watch_responses))
                .route(
                    "/optout",
                    web::post().to(|| async {
                        HttpResponse::Ok()
                            .insert_header((header::SET_COOKIE, "optout=1; Max-Age=9"))
                            .finish()
                    }),
                )
                .route(
                    "/optout",
                    web::get().to(|| async {
                        HttpResponse::Ok()
                            .insert_header((header::SET_COOKIE, "optout=1"))
                            .finish()
                    }),
                )
                .route(
                    "/p/{id}",
                    web::get().to(|| async {
                        HttpResponse::Ok()
                            .append_header((header::SET_COOKIE, "uid=1"))
                            .append_header((header::SET_COOKIE, "optout=1"))
                            .finish()
                    }),
                ),
        )
        .await;
        let call = |req: test::TestRequest| test::call_service(&app, req.to_request());
        call(test::TestRequest::post().uri("/optout")).await;
        assert_eq!(watch.unexpected(), 0);
        call(test::TestRequest::get().uri("/optout")).await;
        call(test::TestRequest::get().uri("/p/123?x=1")).await;
        assert_eq!(watch.unexpected(), 3);
        assert_eq!(
            watch.seen(),
            vec![
                "GET /optout: optout".to_string(),
                "GET /p/{id}: optout".to_string(),
                "GET /p/{id}: uid".to_string(),
            ]
        );
    }
}
