//! The wall clock that stamps hits and rotates the visitor salt.
//!
//! Always the system clock in a release build. A debug build (what
//! `cargo test` runs) can be given a simulated clock for tests that must
//! cross a UTC midnight without waiting for one: the environment variable
//! [`SIMULATED_CLOCK_ENV`] names a file holding an RFC 3339 time, read at
//! every call, so a test moves the clock by rewriting the file.
//!
//! It cannot be switched on by accident in production: the code that
//! reads the variable is compiled only with `debug_assertions` (a release
//! build ignores the variable and says so in its log), and even then the
//! server refuses it unless `server.listen` is a loopback address.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Names the file a debug build reads the simulated time from.
pub const SIMULATED_CLOCK_ENV: &str = "SPARSAM_SIMULATED_CLOCK_FILE";

static SIMULATED: OnceLock<PathBuf> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    #[error(
        "{SIMULATED_CLOCK_ENV} is set, but a simulated clock is for tests on a loopback \
         address only; `server.listen` is not one"
    )]
    NotLoopback,
    #[error("{SIMULATED_CLOCK_ENV}: {0}")]
    Unreadable(String),
}

/// Reads [`SIMULATED_CLOCK_ENV`] once at start-up; `Ok(true)` when a
/// simulated clock is now in use.
pub fn install_from_env(listen_is_loopback: bool) -> Result<bool, ClockError> {
    let Some(path) = std::env::var_os(SIMULATED_CLOCK_ENV) else {
        return Ok(false);
    };
    if !cfg!(debug_assertions) {
        tracing::warn!("{SIMULATED_CLOCK_ENV} is ignored: this is a release build");
        return Ok(false);
    }
    if !listen_is_loopback {
        return Err(ClockError::NotLoopback);
    }
    let path = PathBuf::from(path);
    read_simulated(&path).map_err(ClockError::Unreadable)?;
    let _ = SIMULATED.set(path);
    tracing::warn!("simulated clock in use (a test set {SIMULATED_CLOCK_ENV})");
    Ok(true)
}

fn read_simulated(path: &std::path::Path) -> Result<DateTime<Utc>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{}: not an RFC 3339 time: {e}", path.display()))
}

/// The current time.
pub fn now() -> DateTime<Utc> {
    #[cfg(debug_assertions)]
    if let Some(path) = SIMULATED.get() {
        // A test replaces the file by renaming a new one over it; should a
        // read still fail, the last time read stands (it was checked at
        // start-up).
        static LAST: std::sync::Mutex<Option<DateTime<Utc>>> = std::sync::Mutex::new(None);
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(t) = read_simulated(path) {
            *last = Some(t);
        }
        return last.unwrap_or_else(Utc::now);
    }
    Utc::now()
}

/// How long the salt rotation sleeps after a check at `now`: until just
/// after the next UTC midnight, at most a minute; a simulated clock is
/// checked every few milliseconds, because it jumps.
pub fn until_next_check(now: DateTime<Utc>) -> Duration {
    if SIMULATED.get().is_some() {
        return Duration::from_millis(20);
    }
    crate::privacy::visitor::until_next_check(now)
}
