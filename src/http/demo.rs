//! The demo site: the pages of `demo/` (a small fictional library with a
//! PDF, a search form, a single-page app and a pixel-only page), served on
//! a port of their own when `[demo] listen` is configured, so that
//! `cargo run --release` alone lets a newcomer click around and watch the
//! counts.
//!
//! The files are embedded in the binary (like the dashboard), so the demo
//! works from any working directory and never reads the file system: no
//! path from a request reaches a disk. The pages name the collector as
//! `127.0.0.1:8080`; that is replaced with the address the collector really
//! listens on. The demo port differs from the collector's, so pages and
//! collector are cross-origin, as on a real site.
//!
//! HTML pages carry what a real site adds for the pixel to receive device
//! model and OS version (see docs/protocols.md): `Accept-CH` for
//! `Sec-CH-UA-Model` and `Sec-CH-UA-Platform-Version`, and a
//! `Permissions-Policy` that delegates both hints to the collector's origin.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "demo/"]
struct Pages;

/// The name the pages use for the collector.
const PLACEHOLDER: &str = "127.0.0.1:8080";

/// One rendered file of the demo site.
struct Page {
    content_type: &'static str,
    body: Vec<u8>,
}

/// The demo site's files with the collector's address filled in.
struct Site {
    pages: HashMap<String, Page>,
    collector_origin: String,
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("pdf") => "application/pdf",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// `host:port` a browser on this machine uses for the collector (an
/// unspecified listen address is reached on loopback).
pub fn collector_host(collector: SocketAddr) -> String {
    let ip = match collector.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, collector.port()).to_string()
}

impl Site {
    fn render(collector: SocketAddr) -> Site {
        let host = collector_host(collector);
        let pages = Pages::iter()
            .filter(|name| name != "README.md")
            .filter_map(|name| {
                let file = Pages::get(&name)?;
                let content_type = content_type(&name);
                let body = if content_type.starts_with("text/html") {
                    String::from_utf8_lossy(&file.data)
                        .replace(PLACEHOLDER, &host)
                        .into_bytes()
                } else {
                    file.data.into_owned()
                };
                Some((name.to_string(), Page { content_type, body }))
            })
            .collect();
        Site {
            pages,
            collector_origin: format!("http://{host}"),
        }
    }
}

async fn serve(site: web::Data<Arc<Site>>, req: HttpRequest) -> HttpResponse {
    let path = req.path().trim_start_matches('/');
    let name = if path.is_empty() || path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path.to_string()
    };
    let Some(page) = site.pages.get(&name) else {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found");
    };
    let mut res = HttpResponse::Ok();
    res.content_type(page.content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if page.content_type.starts_with("text/html") {
        let origin = &site.collector_origin;
        res.insert_header(("Accept-CH", "Sec-CH-UA-Model, Sec-CH-UA-Platform-Version"))
            .insert_header((
                "Permissions-Policy",
                format!(
                    "ch-ua-model=(self \"{origin}\"), ch-ua-platform-version=(self \"{origin}\")"
                ),
            ));
    }
    res.body(page.body.clone())
}

/// Binds the demo site on `listen` for a collector reachable at
/// `collector`; returns the running server and the bound address.
pub fn start(listen: SocketAddr, collector: SocketAddr) -> std::io::Result<(Server, SocketAddr)> {
    let site = web::Data::new(Arc::new(Site::render(collector)));
    let listener = TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(site.clone())
            .default_service(web::get().to(serve))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok((server, addr))
}

/// The URL a newcomer opens for the demo site bound at `addr`: by the name
/// `localhost`, so the pages' origin differs from the collector's even
/// when both are on 127.0.0.1.
pub fn browse_url(addr: SocketAddr) -> String {
    match addr.ip() {
        ip if ip.is_loopback() || ip.is_unspecified() => {
            format!("http://localhost:{}/", addr.port())
        }
        _ => format!("http://{addr}/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_name_the_real_collector() {
        let site = Site::render("0.0.0.0:9123".parse().unwrap());
        let index = String::from_utf8(site.pages["index.html"].body.clone()).unwrap();
        assert!(index.contains("http://127.0.0.1:9123/t.js"), "{index}");
        assert!(!index.contains(PLACEHOLDER));
        assert!(site.pages.contains_key("files/benutzungsordnung.pdf"));
        assert!(!site.pages.contains_key("README.md"));
        assert_eq!(
            browse_url("127.0.0.1:8000".parse().unwrap()),
            "http://localhost:8000/"
        );
    }
}
