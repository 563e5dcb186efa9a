//! Fuzzes device detection (`enrich::device::DeviceDetector::detect`): a user
//! agent on the first line, `Sec-CH-UA-*` header lines after it.
//! Checks: no panic or hang; cached and uncached detection agree; bots are
//! typed Bot with no brand/model, non-bots never; every field bounded; bytes
//! past MAX_UA_LEN of a long user agent change nothing.
//!
//! The check itself is `fuzz_checks::device` in tests/fuzz_checks/mod.rs,
//! which tests/fuzz_replay.rs also runs over this target's corpus on stable.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::device(data));
