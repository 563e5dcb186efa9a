//! `GET /t.js`: the tracker script, embedded in the binary.
//!
//! The source is `assets/t.js`, hand-written with no build step. Two
//! placeholders are filled from the config when the script is served:
//! `__EXT__` becomes the download extensions of the configured sites, so
//! the page knows which same-host links are downloads (the collector still
//! classifies every link target by the site's own list), and `__SITES__`
//! becomes a map from site id to its DNT/GPC settings (bit 1: honour DNT,
//! bit 2: honour GPC), so a page of a site that honours them sends nothing
//! at all when the browser says so.
//!
//! Served with a strong ETag (hash of the rendered script; the config is
//! part of it), `If-None-Match` → 304, an hour of public caching, and
//! gzipped (compressed once, see [`super::compress`]) when the client
//! accepts it.

use std::sync::{Arc, Mutex};

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::compress::{accepts_gzip, gzip, gzip_etag};
use super::AppState;
use crate::config::Config;

/// The script source as written.
pub const SOURCE: &str = include_str!("../../assets/t.js");

/// The script as served, with its ETag, and its gzipped form.
#[derive(Debug, PartialEq, Eq)]
pub struct Script {
    pub body: String,
    pub etag: String,
    pub gzipped: Vec<u8>,
}

/// What the script is told about one site.
#[derive(Clone, Copy, Debug)]
pub struct SiteFlags<'a> {
    pub id: &'a str,
    pub honour_dnt: bool,
    pub honour_gpc: bool,
}

/// Renders the script for a set of download extensions and sites.
/// Extensions are reduced to ASCII letters and digits, site ids to
/// letters, digits, `-` and `_` (as the config demands), so nothing from
/// the config can change the script beyond the lists themselves.
pub fn render<'a>(
    extensions: impl Iterator<Item = &'a str>,
    sites: impl Iterator<Item = SiteFlags<'a>>,
) -> Script {
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
    let flags: Vec<String> = sites
        .filter_map(|s| {
            let id: String =
                s.id.chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
                    .collect();
            let bits = u8::from(s.honour_dnt) | (u8::from(s.honour_gpc) << 1);
            (!id.is_empty() && bits != 0).then(|| format!("\"{id}\":{bits}"))
        })
        .collect();
    let body = SOURCE
        .replace("__EXT__", &list)
        .replace("__SITES__", &format!("{{{}}}", flags.join(",")));
    let hash = blake3::hash(body.as_bytes());
    let etag = format!("\"{}\"", &hash.to_hex()[..32]);
    let gzipped = gzip(body.as_bytes());
    Script {
        body,
        etag,
        gzipped,
    }
}

/// The script for this config: every site's download extensions and
/// DNT/GPC settings.
pub fn for_config(config: &Config) -> Script {
    render(
        config
            .sites
            .iter()
            .flat_map(|s| s.download_extensions.iter().map(String::as_str)),
        config.sites.iter().map(|s| SiteFlags {
            id: &s.id,
            honour_dnt: s.honour_dnt,
            honour_gpc: s.honour_gpc,
        }),
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
pub fn not_modified(req: &HttpRequest, etag: &str) -> bool {
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
    let gz = accepts_gzip(&req);
    let etag = if gz {
        gzip_etag(&script.etag)
    } else {
        script.etag.clone()
    };
    let fresh = not_modified(&req, &etag);
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::VARY, "Accept-Encoding"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"));
    if fresh {
        return res.finish();
    }
    res.content_type("text/javascript; charset=utf-8");
    if gz {
        res.insert_header((header::CONTENT_ENCODING, "gzip"))
            .body(script.gzipped.clone())
    } else {
        res.body(script.body.clone())
    }
}

/// Registers `/t.js`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/t.js", web::get().to(script));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(id: &str, honour_dnt: bool, honour_gpc: bool) -> SiteFlags<'_> {
        SiteFlags {
            id,
            honour_dnt,
            honour_gpc,
        }
    }

    #[test]
    fn extensions_are_sanitised_and_deduplicated() {
        let s = render(
            ["PDF", ".zip", "pdf", "x\"y;alert(1)", ""].into_iter(),
            std::iter::empty(),
        );
        assert!(s.body.contains(r"/\.(pdf|xyalert1|zip)$/i"));
        assert!(!s.body.contains("__EXT__"));
        assert!(s.etag.starts_with('"') && s.etag.ends_with('"'));
        assert_ne!(s.etag, render(["pdf"].into_iter(), std::iter::empty()).etag);
        let none = render(std::iter::empty(), std::iter::empty());
        assert!(none.body.contains(r"/\.((?!))$/i"));
    }

    #[test]
    fn site_flags_are_rendered_and_change_the_etag() {
        let s = render(
            ["pdf"].into_iter(),
            [
                flags("demo", true, true),
                flags("gpc-only", false, true),
                flags("none", false, false),
                flags("x\"};alert(1)//", true, false),
            ]
            .into_iter(),
        );
        assert!(
            s.body.contains(r#"{"demo":3,"gpc-only":2,"xalert1":1}"#),
            "{}",
            s.body
        );
        assert!(!s.body.contains("__SITES__"));
        let other = render(
            ["pdf"].into_iter(),
            [flags("demo", false, true)].into_iter(),
        );
        assert_ne!(s.etag, other.etag);
        let empty = render(["pdf"].into_iter(), std::iter::empty());
        assert!(empty.body.contains("{}["), "{}", empty.body);
    }
}
