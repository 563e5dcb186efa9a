//! Gzip for the static files sparsam serves (the tracker script and the
//! dashboard's assets).
//!
//! Each file is compressed once, at the best level, and kept; a request
//! that accepts gzip gets those bytes with `Content-Encoding: gzip`, any
//! other gets the file as it is. This is done here rather than with actix's
//! `Compress` middleware so the work is not repeated per request, so each
//! encoding carries an ETag of its own (a strong ETag names one exact byte
//! sequence), and so ingest answers and the pixel are never touched.

use std::io::Write;

use actix_web::http::header::{AcceptEncoding, Encoding, Header};
use actix_web::HttpRequest;

/// `data` gzipped at the best level.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = gz.write_all(data);
    gz.finish().unwrap_or_default()
}

/// True when the request's `Accept-Encoding` prefers gzip to the file as
/// it is. A missing or unreadable header means no.
pub fn accepts_gzip(req: &HttpRequest) -> bool {
    if !req.headers().contains_key(AcceptEncoding::name()) {
        return false;
    }
    match AcceptEncoding::parse(req) {
        Ok(accept) => {
            accept.negotiate([Encoding::gzip(), Encoding::identity()].iter())
                == Some(Encoding::gzip())
        }
        Err(_) => false,
    }
}

/// The ETag of the gzipped form of a file whose plain ETag is `etag`
/// (`"abc"` → `"abc-gz"`).
pub fn gzip_etag(etag: &str) -> String {
    format!("{}-gz\"", etag.trim_end_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn accepts(value: Option<&str>) -> bool {
        let mut req = TestRequest::default();
        if let Some(v) = value {
            req = req.insert_header(("accept-encoding", v));
        }
        accepts_gzip(&req.to_http_request())
    }

    #[test]
    fn negotiation() {
        assert!(accepts(Some("gzip, deflate, br, zstd")));
        assert!(accepts(Some("br;q=1, gzip;q=0.5")));
        assert!(!accepts(None));
        assert!(!accepts(Some("identity")));
        assert!(!accepts(Some("gzip;q=0")));
        assert!(!accepts(Some("br")));
        assert!(!accepts(Some("garbage;;q=x")));
    }

    #[test]
    fn gzip_round_trips_and_etags_differ() {
        let data = b"hello hello hello hello".repeat(10);
        let gz = gzip(&data);
        assert!(gz.len() < data.len());
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(gzip_etag("\"abc\""), "\"abc-gz\"");
    }
}
