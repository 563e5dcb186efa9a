//! Fuzzes the whole ingest pipeline (`ingest::Pipeline::process`) fed with
//! hits parsed from the input: a user agent on the first line, then a pixel
//! query, a `?`-prefixed Matomo request, or a JSON beacon/Plausible body.
//! Checks: no panic; every stored event is for a configured site and allowed
//! host, its URL has no credentials, fragment or unlisted parameter, text
//! fields are within max_field_bytes, the address is truncated, downloads and
//! outbound clicks have a target, pings a page-view id; bots are never stored;
//! a search-results page gives exactly a page view and a search.
//!
//! The check itself is `fuzz_checks::pipeline` in tests/fuzz_checks/mod.rs,
//! which tests/fuzz_replay.rs also runs over this target's corpus on stable.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::pipeline(data));
