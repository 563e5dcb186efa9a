//! The tracker script as served by a running collector: headers, ETag
//! revalidation, download extensions and per-site DNT/GPC settings from
//! the config, gzip, and its size budget as sent; gzip for the dashboard.

mod collector;

use std::io::Read;

use collector::Collector;
use reqwest::blocking::Client;
use reqwest::StatusCode;

/// Gzipped size budget of `t.js`, in bytes (stated in README and
/// docs/tracker.md).
const GZIP_BUDGET: usize = 1536;

fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

#[test]
fn script_is_served_cached_and_configured() {
    let c = Collector::start(
        r#"download_extensions = ["pdf", "docx", "odt"]
honour_dnt = true
honour_gpc = false

[[sites]]
id = "second"
hostnames = ["second.example"]
"#,
    );
    let client = Client::new();
    let res = client.get(c.url("/t.js")).send().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(h["cache-control"], "public, max-age=3600");
    assert_eq!(h["vary"], "Accept-Encoding");
    assert!(h.get("content-encoding").is_none(), "no gzip unless asked");
    let etag = h["etag"].to_str().unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.len() > 10,
        "strong etag: {etag}"
    );
    let body = res.bytes().unwrap();
    let text = std::str::from_utf8(&body).unwrap();
    // Both sites' download extensions (the second site has the defaults).
    assert!(
        text.contains(
            r"/\.(7z|csv|doc|docx|epub|gz|mp3|mp4|odp|ods|odt|pdf|ppt|pptx|rar|rtf|txt|xls|xlsx|zip)$/i"
        ),
        "configured extensions are served"
    );
    // Per-site DNT (1) / GPC (2) settings: demo honours DNT only, the
    // second site GPC only (its default).
    assert!(
        text.contains(r#"{"demo":1,"second":2}[site]"#),
        "site flags: {}",
        &text[..400.min(text.len())]
    );
    assert!(!text.contains("__EXT__") && !text.contains("__SITES__"));
    for banned in ["localStorage", "sessionStorage", "canvas", "screen."] {
        assert!(!text.contains(banned), "script must not use {banned}");
    }

    let again = client
        .get(c.url("/t.js"))
        .header("If-None-Match", &etag)
        .send()
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert!(again.bytes().unwrap().is_empty());

    let stale = client
        .get(c.url("/t.js"))
        .header("If-None-Match", "\"something-else\"")
        .send()
        .unwrap();
    assert_eq!(stale.status(), StatusCode::OK);

    // The gzipped representation: same script, its own ETag.
    let gz = client
        .get(c.url("/t.js"))
        .header("Accept-Encoding", "gzip, deflate, br")
        .send()
        .unwrap();
    assert_eq!(gz.status(), StatusCode::OK);
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let gz_etag = gz.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(gz_etag, etag);
    assert_eq!(gunzip(&gz.bytes().unwrap()), body);
    let again = client
        .get(c.url("/t.js"))
        .header("Accept-Encoding", "gzip")
        .header("If-None-Match", &gz_etag)
        .send()
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
}

#[test]
fn etag_changes_with_the_dnt_gpc_config() {
    let etag = |extra: &str| {
        let c = Collector::start(extra);
        let res = Client::new().get(c.url("/t.js")).send().unwrap();
        res.headers()["etag"].to_str().unwrap().to_string()
    };
    assert_ne!(etag("honour_gpc = true"), etag("honour_gpc = false"));
}

/// The bytes a browser receives for `/t.js` with the default config: the
/// response to `Accept-Encoding: gzip`, measured as sent.
#[test]
fn script_as_sent_fits_the_budget() {
    let c = Collector::start("");
    let res = Client::new()
        .get(c.url("/t.js"))
        .header("Accept-Encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let sent = res.bytes().unwrap();
    let plain = gunzip(&sent);
    eprintln!(
        "t.js: {} bytes, {} bytes sent gzipped",
        plain.len(),
        sent.len()
    );
    assert!(
        sent.len() < GZIP_BUDGET,
        "t.js is {} bytes gzipped, budget {GZIP_BUDGET}",
        sent.len()
    );
}

#[test]
fn dashboard_assets_are_sent_gzipped() {
    let c = Collector::start("");
    let client = Client::new();
    for path in ["/dashboard", "/dashboard/app.js", "/dashboard/style.css"] {
        let plain = client.get(c.url(path)).send().unwrap();
        assert!(plain.headers().get("content-encoding").is_none(), "{path}");
        let plain = plain.bytes().unwrap();
        let gz = client
            .get(c.url(path))
            .header("Accept-Encoding", "gzip")
            .send()
            .unwrap();
        assert_eq!(gz.headers()["content-encoding"], "gzip", "{path}");
        assert_eq!(gz.headers()["vary"], "Accept-Encoding", "{path}");
        let gz = gz.bytes().unwrap();
        assert!(gz.len() < plain.len(), "{path}");
        assert_eq!(gunzip(&gz), plain, "{path}");
    }
    // The pixel is left alone.
    let gif = client
        .get(c.url("/p.gif?site=demo&url=http%3A%2F%2Flocalhost%2F"))
        .header("Accept-Encoding", "gzip")
        .header(
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
        )
        .send()
        .unwrap();
    assert!(gif.headers().get("content-encoding").is_none());
    assert_eq!(gif.bytes().unwrap().len(), 43);
}
