//! Fuzzes the tracking pixel's query parser (`ingest::pixel::parse_pixel`,
//! `site_param`, `ingest::query::strict_pairs`). Input: the query string, then
//! an optional `Referer` after the first newline.
//! Checks: no panic; a query that is not UTF-8 after percent-decoding is
//! refused, never altered; a parsed hit has a site and a URL (the last `site` /
//! `url` wins, `url` falls back to the Referer); no decoded field is longer
//! than the query; the opt-out decision (`site_param`) reads the same site the
//! hit is counted for; refusals are short 4xx reasons.
//!
//! The check itself is `fuzz_checks::pixel` in tests/fuzz_checks/mod.rs,
//! which tests/fuzz_replay.rs also runs over this target's corpus on stable.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::pixel(data));
