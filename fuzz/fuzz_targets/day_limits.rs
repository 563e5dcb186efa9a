//! Fuzzes the per-site, per-day bounds on new strings and events
//! (`ingest::day_limits::DayLimits`). Checks: no panic; whatever values
//! arrive, the values kept as sent never exceed the string bound per site
//! and day, kept events never exceed the event bound, a replaced URL keeps
//! its origin, and the events kept are the first ones, in order.
//!
//! The check itself is `fuzz_checks::day_limits` in
//! tests/fuzz_checks/mod.rs, which tests/fuzz_replay.rs also runs over this
//! target's corpus on stable.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::day_limits(data));
