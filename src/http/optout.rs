//! The opt-out page, `GET/POST /optout`: embeddable in a site's privacy
//! page (an iframe), German or English, and usable without JavaScript.
//!
//! `POST` with `action=optout` sets the opt-out cookie, the only cookie
//! sparsam ever sets; `action=optin` clears it. A post is accepted only
//! when its `Origin` (or, without one, its `Referer`) is this collector's
//! own origin, so a third-party page cannot opt a visitor in or out; a post
//! naming no origin at all is refused too (see [`check_same_origin`]).
//!
//! The cookie must travel with pixel and beacon requests that a site's
//! pages (another site, as far as the browser is concerned) send to the
//! collector. Browsers attach a cookie to such cross-site requests only
//! when it is `SameSite=None`, and accept `SameSite=None` only with
//! `Secure`, which in turn needs HTTPS (or a loopback address). So the
//! cookie is `SameSite=None; Secure` whenever the request came over HTTPS
//! (as a trusted proxy says) or from a browser on this machine, or always
//! with `privacy.optout_cookie_secure = "always"`; otherwise (plain HTTP)
//! it is `SameSite=Lax`, which still reaches a collector on the same site
//! (e.g. `stats.example.org` for `www.example.org`). Name and value never
//! come from the request.

use actix_web::cookie::{time::Duration, Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::client::{is_secure_context, optout_signals};
use super::error::ApiError;
use super::lang::{pick_lang, Lang};
use super::AppState;
use crate::config::{Config, CookieSecure};

#[derive(Deserialize)]
pub struct LangQuery {
    lang: Option<String>,
}

/// The largest opt-out form body accepted (two short fields).
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The posted form: `action` (`optout` or `optin`) and an optional `lang`.
#[derive(Default)]
pub struct OptOutForm {
    action: String,
    lang: Option<String>,
}

impl OptOutForm {
    /// Reads `application/x-www-form-urlencoded` fields; others are
    /// ignored, as a browser may send a submit button's name.
    fn parse(body: &[u8]) -> OptOutForm {
        let mut form = OptOutForm::default();
        for (name, value) in url::form_urlencoded::parse(body) {
            match name.as_ref() {
                "action" => form.action = value.into_owned(),
                "lang" => form.lang = Some(value.into_owned()),
                _ => {}
            }
        }
        form
    }
}

fn texts(lang: Lang, opted_out: bool) -> (&'static str, &'static str, &'static str, &'static str) {
    match (lang, opted_out) {
        (Lang::De, false) => (
            "Statistik-Erfassung",
            "Ihr Besuch wird anonym statistisch erfasst. IP-Adressen werden sofort gekürzt, es werden keine Cookies gespeichert. Sie können der Erfassung widersprechen; dafür wird ein Opt-out-Cookie in Ihrem Browser gesetzt.",
            "Nicht mehr erfassen",
            "optout",
        ),
        (Lang::De, true) => (
            "Statistik-Erfassung",
            "Sie haben widersprochen: Ihre Besuche werden nicht erfasst, solange das Opt-out-Cookie in diesem Browser gespeichert ist.",
            "Erfassung wieder erlauben",
            "optin",
        ),
        (Lang::En, false) => (
            "Visitor statistics",
            "Your visit is counted anonymously. IP addresses are shortened at once and no cookies are stored. You can object; an opt-out cookie will then be set in your browser.",
            "Stop counting my visits",
            "optout",
        ),
        (Lang::En, true) => (
            "Visitor statistics",
            "You have opted out: your visits are not counted while the opt-out cookie is stored in this browser.",
            "Allow counting again",
            "optin",
        ),
    }
}

/// `frame-ancestors` for the opt-out page: it is meant to be embedded by
/// the configured sites' own pages, and by no other origin (clickjacking).
fn frame_ancestors(config: &Config) -> String {
    let mut sources = vec!["'self'".to_string()];
    for host in config.sites.iter().flat_map(|s| &s.hostnames) {
        // Hostnames are validated at start-up; keep only characters a CSP
        // host source may hold so nothing can extend the header.
        let host: String = host
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '*' | ':' | '[' | ']'))
            .collect();
        if !host.is_empty() {
            sources.push(format!("https://{host}"));
            sources.push(format!("http://{host}"));
        }
    }
    sources.join(" ")
}

/// The page's fields; `templates/optout.html` escapes each of them.
#[derive(askama::Template)]
#[template(path = "optout.html")]
struct OptOutPage {
    lang_code: &'static str,
    title: &'static str,
    text: &'static str,
    state: &'static str,
    button: &'static str,
    /// The form's `action` value: what pressing the button asks for.
    action: &'static str,
    opted_out: bool,
}

fn page(config: &Config, lang: Lang, opted_out: bool) -> Result<HttpResponse, ApiError> {
    use askama::Template as _;
    let (title, text, button, action) = texts(lang, opted_out);
    let state = match (lang, opted_out) {
        (Lang::De, true) => "Status: widersprochen",
        (Lang::De, false) => "Status: Erfassung aktiv",
        (Lang::En, true) => "Status: opted out",
        (Lang::En, false) => "Status: counting",
    };
    let html = OptOutPage {
        lang_code: lang.code(),
        title,
        text,
        state,
        button,
        action,
        opted_out,
    }
    .render()
    .map_err(|e| {
        tracing::error!(error = %e, "opt-out page did not render");
        ApiError::Internal
    })?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            format!(
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors {}",
                frame_ancestors(config)
            ),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // Not "no-referrer": under that policy browsers send `Origin: null`
        // with the form's POST, which the origin check must refuse.
        // "same-origin" sends the origin to this page's own origin only.
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .body(html))
}

/// `GET /optout`
pub async fn show(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<LangQuery>,
) -> Result<HttpResponse, ApiError> {
    let lang = pick_lang(q.lang.as_deref(), &req);
    let opted_out = optout_signals(&req, &state.config.privacy.optout_cookie).cookie;
    page(&state.config, lang, opted_out)
}

/// Why a `POST /optout` is refused: it does not come from this
/// collector's own page. Said to the client as is; it never echoes a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum CrossSite {
    #[error("the opt-out form must be sent from this collector's own opt-out page; this request came from another origin")]
    OtherOrigin,
    #[error("the opt-out form must be sent from this collector's own opt-out page; this request names no origin (neither an Origin nor a Referer header, or Origin: null)")]
    NoOrigin,
}

/// Checks that a `POST /optout` was sent by a page of this collector's own
/// origin: the opt-out page itself, also when another site embeds it in an
/// iframe (the form then still belongs to the collector's page, so the
/// browser sends the collector's origin). The `Origin` header decides when
/// present; otherwise the `Referer` (the page sends it to its own origin,
/// see `Referrer-Policy` above). Without either, or with `Origin: null`
/// (a sandboxed frame, a `no-referrer` page), the post is refused: a
/// browser form on another site can produce exactly those, and no cookie
/// ties a token to the visitor, so nothing else can tell them apart.
fn check_same_origin(req: &HttpRequest) -> Result<(), CrossSite> {
    let headers = req.headers();
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let claimed = match (text(header::ORIGIN), text(header::REFERER)) {
        (Some(origin), _) if origin.trim() == "null" => return Err(CrossSite::NoOrigin),
        (Some(origin), _) => origin,
        (None, Some(referer)) => referer,
        (None, None) => return Err(CrossSite::NoOrigin),
    };
    let own_host = req.connection_info().host().to_ascii_lowercase();
    match url::Url::parse(claimed.trim()) {
        Ok(url) if names_host(&url, &own_host) => Ok(()),
        _ => Err(CrossSite::OtherOrigin),
    }
}

/// Whether `url` (an origin or a page address) is on `own_host`, the host
/// and optional port this request was addressed to. A port the URL leaves
/// out is its scheme's default, so `https://s.example.org` is on
/// `s.example.org` and on `s.example.org:443`.
fn names_host(url: &url::Url, own_host: &str) -> bool {
    if !matches!(url.scheme(), "http" | "https") {
        return false;
    }
    let Some(host) = url.host_str() else {
        return false;
    };
    let (own_name, own_port) = match own_host.rsplit_once(':') {
        // `name:8080` and `[::1]:8080`, but not the bare `[::1]`.
        Some((name, port)) if !port.ends_with(']') => match port.parse::<u16>() {
            Ok(port) => (name, Some(port)),
            Err(_) => return false,
        },
        _ => (own_host, None),
    };
    host == own_name
        && match own_port {
            Some(port) => url.port_or_known_default() == Some(port),
            None => url.port().is_none(),
        }
}

/// The opt-out cookie with its attributes (before Max-Age or removal).
fn optout_cookie(name: &str, secure: bool) -> Cookie<'static> {
    Cookie::build(name.to_string(), "1")
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(if secure {
            SameSite::None
        } else {
            SameSite::Lax
        })
        .finish()
}

/// `POST /optout`
pub async fn change(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    if let Err(refusal) = check_same_origin(&req) {
        return Ok(HttpResponse::Forbidden()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({ "error": refusal.to_string() })));
    }
    // the shared reader: a body trickled in slower than
    // `server.client_timeout_secs` is cut with 408
    let body = super::ingest::read_body(&state, payload, MAX_FORM_BYTES).await?;
    let form = OptOutForm::parse(&body);
    let lang = pick_lang(form.lang.as_deref(), &req);
    let secure = match state.config.privacy.optout_cookie_secure {
        CookieSecure::Always => true,
        CookieSecure::Auto => is_secure_context(&req, &state.addr_policy),
    };
    let mut cookie = optout_cookie(&state.config.privacy.optout_cookie, secure);
    let opted_out = match form.action.as_str() {
        "optout" => {
            cookie.set_max_age(Duration::days(i64::from(
                state.config.privacy.optout_cookie_days,
            )));
            true
        }
        "optin" => {
            cookie.make_removal();
            false
        }
        _ => {
            return Err(ApiError::BadRequest(
                "action must be `optout` or `optin`".into(),
            ))
        }
    };
    let mut res = page(&state.config, lang, opted_out)?;
    res.add_cookie(&cookie).map_err(|e| {
        tracing::error!(error = %e, "the opt-out cookie could not be set");
        ApiError::Internal
    })?;
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(url: &str, own_host: &str) -> bool {
        names_host(&url::Url::parse(url).unwrap(), own_host)
    }

    #[test]
    fn origins_match_host_and_port() {
        assert!(on("https://stats.example.org", "stats.example.org"));
        assert!(on("https://stats.example.org", "stats.example.org:443"));
        assert!(on(
            "http://stats.example.org/optout?lang=de",
            "stats.example.org"
        ));
        assert!(on("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(on("http://[::1]:8080", "[::1]:8080"));
        assert!(on("http://[::1]", "[::1]"));
        assert!(!on("https://stats.example.org", "stats.example.org:8443"));
        assert!(!on("https://stats.example.org:8443", "stats.example.org"));
        assert!(!on("http://127.0.0.1:8081", "127.0.0.1:8080"));
        assert!(!on("https://evil.example", "stats.example.org"));
        assert!(!on(
            "https://stats.example.org.evil.example",
            "stats.example.org"
        ));
        assert!(!on("ftp://stats.example.org", "stats.example.org"));
        assert!(!on("https://stats.example.org", "stats.example.org:x"));
    }
}
