//! Fuzzes the access-log line parser of `sparsam import`
//! (`import::combined::parse_line`).
//! Checks: no panic; the address returned is always truncated to the masks
//! (the full one never leaves the parser); status 100-599; `-` fields are
//! None; round trip: a parsed line written back in combined format parses to
//! the same line.
//!
//! The check itself is `fuzz_checks::log_line` in tests/fuzz_checks/mod.rs,
//! which tests/fuzz_replay.rs also runs over this target's corpus on stable.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::log_line(data));
