//! Request facts the pipeline needs: the truncated client address, the
//! user agent, client hints and opt-out signals.
//!
//! This is where actix's peer address is read, and it is handed straight to
//! [`anonymised_client`], which returns only the truncated form, or to
//! [`secure_context`], which returns only a yes/no.

use actix_web::http::header::HeaderMap;
use actix_web::HttpRequest;

use crate::enrich::client_hints::ClientHints;
use crate::ingest::RequestMeta;
use crate::privacy::{anonymised_client, secure_context, AnonIp, ClientAddrPolicy, OptOutSignals};

/// All values of a header joined with `,` (forwarding headers may repeat).
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The truncated client address. With [`is_secure_context`], the only
/// caller of `peer_addr()` in the code base.
pub fn client_addr(req: &HttpRequest, policy: &ClientAddrPolicy) -> Option<AnonIp> {
    // Only the header the trusted proxy writes; see `anonymised_client`.
    let header = policy.client_ip_header.address_header();
    anonymised_client(
        req.peer_addr().map(|a| a.ip()),
        joined(req.headers(), header).as_deref(),
        policy,
    )
}

/// Whether the browser reached us over HTTPS (said by a trusted proxy) or
/// on a loopback address; see [`secure_context`].
pub fn is_secure_context(req: &HttpRequest, policy: &ClientAddrPolicy) -> bool {
    let h = req.headers();
    secure_context(
        req.peer_addr().map(|a| a.ip()),
        header(h, "host").or_else(|| req.uri().authority().map(|a| a.as_str())),
        joined(h, policy.client_ip_header.proto_header()).as_deref(),
        policy,
    )
}

pub fn request_meta(req: &HttpRequest, policy: &ClientAddrPolicy) -> Option<RequestMeta> {
    let h = req.headers();
    Some(RequestMeta {
        anon_ip: client_addr(req, policy)?,
        user_agent: header(h, "user-agent").unwrap_or_default().to_string(),
        header_hints: ClientHints::from_headers(h.iter().filter_map(|(k, v)| {
            let name = k.as_str();
            if name.starts_with("sec-ch-ua") {
                v.to_str().ok().map(|v| (name, v))
            } else {
                None
            }
        })),
    })
}

pub fn optout_signals(req: &HttpRequest, cookie_name: &str) -> OptOutSignals {
    let h = req.headers();
    OptOutSignals::from_headers(
        joined(h, "cookie").map(|c| c.replace(',', ";")).as_deref(),
        cookie_name,
        header(h, "dnt"),
        header(h, "sec-gpc"),
    )
}

pub fn referer(req: &HttpRequest) -> Option<&str> {
    header(req.headers(), "referer")
}
