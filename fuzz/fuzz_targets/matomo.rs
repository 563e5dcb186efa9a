//! Fuzzes the Matomo tracking API: one request's parameters
//! (`ingest::matomo::parse_request`, `idsite_param`) or, when the input starts
//! with `{`, a bulk body (`is_bulk`, `parse_bulk`, then each request).
//! Checks: no panic; at most max bulk requests; a recorded hit is for a
//! configured site and the DNT/GPC check (`idsite_param`) looks up that same
//! site; downloads/links carry a target, searches a term; short 4xx reasons.
//!
//! The check itself is `fuzz_checks::matomo` in tests/fuzz_checks/mod.rs,
//! which tests/fuzz_replay.rs also runs over this target's corpus on stable.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::matomo(data));
