//! Fuzzes the script beacon body parser (`ingest::beacon::parse_beacon`):
//! one event, an array, or `{"events": [...]}` as JSON bytes.
//! Checks: no panic; 1..=max events, each with a URL; numbers in range; client
//! hints within their caps; round trip: the parsed hits written back as a
//! beacon body parse to the same hits; refusals are short 4xx reasons.
//!
//! The check itself is `fuzz_checks::beacon` in tests/fuzz_checks/mod.rs,
//! which tests/fuzz_replay.rs also runs over this target's corpus on stable.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::beacon(data));
