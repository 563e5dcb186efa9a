//! Fuzzes `/api/event` with Plausible detection
//! (`ingest::plausible::parse_event_body`, `is_plausible`).
//! Checks: no panic; a body that is not a Plausible event gets exactly the
//! beacon parser's answer; a Plausible event gives at most one hit, for a
//! configured site, with a target exactly for downloads and outbound clicks.
//!
//! The check itself is `fuzz_checks::plausible` in tests/fuzz_checks/mod.rs,
//! which tests/fuzz_replay.rs also runs over this target's corpus on stable.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::plausible(data));
