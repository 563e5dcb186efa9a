//! Fuzzes URL stripping and referrer classification of hostile strings
//! (`privacy::strip_url`, `enrich::referrer::classify`, `truncate`,
//! `campaign_from_params`).
//! Checks: no panic; a stripped URL is absolute http(s) without credentials or
//! fragment and keeps only allow-listed parameters (exactly those reported);
//! stripping is idempotent; a classified referrer keeps no query; truncate
//! cuts on a char boundary within its limit.
//!
//! The check itself is `fuzz_checks::url` in tests/fuzz_checks/mod.rs,
//! which tests/fuzz_replay.rs also runs over this target's corpus on stable.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::url(data));
