//! Fuzzes the client-address reader (`privacy::anonymised_client`): a
//! `Forwarded` header on the first line, `X-Forwarded-For` on the second.
//! Checks: no panic; the address returned is always truncated to the masks;
//! headers from a peer that is not a trusted proxy are ignored.
//!
//! The check itself is `fuzz_checks::forwarded` in tests/fuzz_checks/mod.rs,
//! which tests/fuzz_replay.rs also runs over this target's corpus on stable.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::forwarded(data));
