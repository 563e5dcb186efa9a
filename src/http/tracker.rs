//! `GET /t.js`: the tracker script, embedded in the binary.
//!
//! The source is `assets/t.js`, hand-written with no build step. Its one
//! placeholder, `__EXT__`, becomes the download extensions of the
//! configured sites, so the page knows which same-host links are
//! downloads; the collector still classifies every link target by the
//! site's own list. Served with a strong ETag (hash of the rendered
//! script), `If-None-Match` → 304, and an hour of public caching.

use std::sync::{Arc, Mutex};

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::AppState;
use crate::config::Config;

/// The script source as written.
pub const SOURCE: &str = include_str!("../../assets/t.js");

/// The script as served, with its ETag.
#[derive(Debug, PartialEq, Eq)]
pub struct Script {
    pub body: String,
    pub etag: String,
}

/// Renders the script for a set of download extensions. Extensions are
/// reduced to ASCII letters and digits, so nothing from the config can
/// change the script beyond the list itself.
pub fn render<'a>(extensions: impl Iterator<Item = &'a str>) -> Script {
    let mut exts: Vec<String> = extensions
        .map(|e| {
            e.trim_start_matches('.')
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_ascii_lowercase()
        })
        .filter(|e| !e.is_empty())
        .collect();
    exts.sort();
    exts.dedup();
    // An empty alternation would match every dotted path; `(?!)` never matches.
    let list = if exts.is_empty() {
        "(?!)".to_string()
    } else {
        exts.join("|")
    };
    let body = SOURCE.replace("__EXT__", &list);
    let hash = blake3::hash(body.as_bytes());
    let etag = format!("\"{}\"", &hash.to_hex()[..32]);
    Script { body, etag }
}

/// The script for this config: every site's download extensions.
pub fn for_config(config: &Config) -> Script {
    render(
        config
            .sites
            .iter()
            .flat_map(|s| s.download_extensions.iter().map(String::as_str)),
    )
}

/// The last rendered script, so requests do not re-render and re-hash.
/// Keyed by the config's address: one process normally has one config.
static CACHE: Mutex<Option<(usize, Arc<Script>)>> = Mutex::new(None);

fn cached(config: &Arc<Config>) -> Arc<Script> {
    let key = Arc::as_ptr(config) as usize;
    let mut slot = match CACHE.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some((k, s)) = slot.as_ref() {
        if *k == key {
            return s.clone();
        }
    }
    let script = Arc::new(for_config(config));
    *slot = Some((key, script.clone()));
    script
}

/// True when an `If-None-Match` header names this ETag (or is `*`).
fn not_modified(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// `GET /t.js`
pub async fn script(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let script = cached(&state.config);
    let fresh = not_modified(&req, &script.etag);
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, script.etag.clone()))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"));
    if fresh {
        return res.finish();
    }
    res.content_type("text/javascript; charset=utf-8")
        .body(script.body.clone())
}

/// Registers `/t.js`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/t.js", web::get().to(script));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_sanitised_and_deduplicated() {
        let s = render(["PDF", ".zip", "pdf", "x\"y;alert(1)", ""].into_iter());
        assert!(s.body.contains(r"/\.(pdf|xyalert1|zip)$/i"));
        assert!(!s.body.contains("__EXT__"));
        assert!(s.etag.starts_with('"') && s.etag.ends_with('"'));
        assert_ne!(s.etag, render(["pdf"].into_iter()).etag);
        let none = render(std::iter::empty());
        assert!(none.body.contains(r"/\.((?!))$/i"));
    }
}
