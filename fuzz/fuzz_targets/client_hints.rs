//! Fuzzes client-hint parsing (`enrich::client_hints::ClientHints::from_headers`
//! on `name: value` lines, and `from_json` on the whole input).
//! Checks: no panic; at most MAX_BRANDS brands / form factors, every value at
//! most MAX_VALUE_LEN bytes; GREASE and blank brands dropped, no blank value
//! kept as Some; the JSON form round-trips.
//!
//! The check itself is `fuzz_checks::client_hints` in tests/fuzz_checks/mod.rs,
//! which tests/fuzz_replay.rs also runs over this target's corpus on stable.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::client_hints(data));
