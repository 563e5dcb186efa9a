//! The operator dashboard at `/dashboard`: static files from
//! `assets/dashboard/`, embedded in the binary, served with a strict
//! Content-Security-Policy (no inline script or style, no third-party
//! origins, no framing). The page itself talks to `/api/v1` with a token.
//! Text files go out gzipped to clients that accept it (compressed once per
//! process, see [`super::compress`]).

use std::collections::HashMap;
use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use rust_embed::RustEmbed;

use super::compress::{accepts_gzip, gzip, gzip_etag};

#[derive(RustEmbed)]
#[folder = "assets/dashboard/"]
struct Assets;

/// The policy every dashboard response carries.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
form-action 'self'; object-src 'none'";

/// Registers `/dashboard` and its assets.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/dashboard", web::get().to(index))
        .route("/dashboard/", web::get().to(index))
        .route("/dashboard/{file:.*}", web::get().to(asset));
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// Gzipped forms of the embedded text files, made on first use.
fn gzipped(name: &str) -> Option<&'static [u8]> {
    static GZ: OnceLock<HashMap<String, Vec<u8>>> = OnceLock::new();
    GZ.get_or_init(|| {
        Assets::iter()
            .filter(|n| content_type(n).starts_with("text/") || n.ends_with(".svg"))
            .filter_map(|n| Assets::get(&n).map(|f| (n.to_string(), gzip(&f.data))))
            .collect()
    })
    .get(name)
    .map(Vec::as_slice)
}

fn serve(req: &HttpRequest, name: &str) -> HttpResponse {
    let mut res = match Assets::get(name) {
        Some(f) => {
            let mut r = HttpResponse::Ok();
            r.insert_header((header::CONTENT_TYPE, content_type(name)));
            r.insert_header((header::CACHE_CONTROL, "no-cache"));
            r.insert_header((header::VARY, "Accept-Encoding"));
            let etag = format!("\"{}\"", hex(&f.metadata.sha256_hash()[..8]));
            match gzipped(name).filter(|_| accepts_gzip(req)) {
                Some(gz) => {
                    r.insert_header((header::ETAG, gzip_etag(&etag)));
                    r.insert_header((header::CONTENT_ENCODING, "gzip"));
                    r.body(gz)
                }
                None => {
                    r.insert_header((header::ETAG, etag));
                    r.body(f.data.into_owned())
                }
            }
        }
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found"),
    };
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    res
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, "index.html")
}

async fn asset(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let name = path.into_inner();
    if name.is_empty() {
        return serve(&req, "index.html");
    }
    serve(&req, &name)
}
