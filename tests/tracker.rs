//! The tracker script as served by a running collector: headers, ETag
//! revalidation, download extensions from the config, and its size budget.

mod collector;

use std::io::Write;

use collector::Collector;
use reqwest::blocking::Client;
use reqwest::StatusCode;

/// Gzipped size budget of `t.js`, in bytes (stated in docs/tracker.md).
const GZIP_BUDGET: usize = 1536;

fn gzipped_len(body: &[u8]) -> usize {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(body).expect("gzip");
    gz.finish().expect("gzip").len()
}

#[test]
fn script_is_served_cached_and_small() {
    let c = Collector::start(r#"download_extensions = ["pdf", "docx", "odt"]"#);
    let client = Client::new();
    let res = client.get(c.url("/t.js")).send().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(h["cache-control"], "public, max-age=3600");
    let etag = h["etag"].to_str().unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.len() > 10,
        "strong etag: {etag}"
    );
    let body = res.bytes().unwrap();
    let text = std::str::from_utf8(&body).unwrap();
    assert!(
        text.contains(r"/\.(docx|odt|pdf)$/i"),
        "configured extensions are served"
    );
    assert!(!text.contains("__EXT__"));
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

    let size = gzipped_len(&body);
    eprintln!("t.js: {} bytes, {size} bytes gzipped", body.len());
    assert!(
        size < GZIP_BUDGET,
        "t.js is {size} bytes gzipped, budget {GZIP_BUDGET}"
    );
}

#[test]
fn script_with_default_extensions_fits_the_budget() {
    let config = sparsam::Config::parse(
        r#"
[[sites]]
id = "demo"
hostnames = ["localhost"]
"#,
    )
    .unwrap();
    let script = sparsam::http::tracker::for_config(&config);
    let size = gzipped_len(script.body.as_bytes());
    eprintln!("t.js (default extensions): {size} bytes gzipped");
    assert!(
        size < GZIP_BUDGET,
        "t.js is {size} bytes gzipped, budget {GZIP_BUDGET}"
    );
}
