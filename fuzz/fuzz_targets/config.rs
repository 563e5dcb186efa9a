//! Fuzzes configuration parsing and validation (`config::Config::parse`).
//! Checks: no panic or hang; an accepted config satisfies every documented
//! bound, and what later code derives from it (listen address, proxies, sweep
//! schedule and its next/previous run, retention arithmetic, site lookups)
//! cannot fail.
//!
//! The check itself is `fuzz_checks::config` in tests/fuzz_checks/mod.rs,
//! which tests/fuzz_replay.rs also runs over this target's corpus on stable.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::config(data));
