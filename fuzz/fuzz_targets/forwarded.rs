//! Fuzzes the client-address reader (`privacy::anonymised_client`): the
//! input is the value of the configured proxy header, read as each kind
//! (`X-Forwarded-For`, `Forwarded`, `X-Real-IP`). Checks: no panic; the
//! address returned is always truncated to the masks; headers from a peer
//! that is not a trusted proxy are ignored; an address a trusted proxy
//! appends wins over whatever the client wrote.
//!
//! The check itself is `fuzz_checks::forwarded` in tests/fuzz_checks/mod.rs,
//! which tests/fuzz_replay.rs also runs over this target's corpus on stable.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod fuzz_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_checks::forwarded(data));
