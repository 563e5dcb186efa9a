//! Bearer-token access to reports: per-site read tokens and the admin
//! token, compared in constant time. Missing or unknown tokens get 401; a
//! valid token for another site gets 403.
//!
//! Wrong tokens are counted per shortened address prefix: after
//! `auth.max_failed_tokens_per_minute` of them in a minute, that prefix
//! gets 429 with `Retry-After` for every wrong (or missing) token until
//! the minute is over, so guessing a token costs a minute per few tries.
//! A right token is always let through: the prefix is shared (a /16), and
//! a neighbour's guesses must not lock the operator out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest};
use subtle::ConstantTimeEq;

use super::client::client_addr;
use super::error::ApiError;
use super::rate_limit::retry_after_secs;
use super::AppState;
use crate::config::Config;
use crate::privacy::AnonIp;

/// The window failed attempts are counted in.
const WINDOW: Duration = Duration::from_secs(60);
/// Prefixes tracked at most; past this, windows that are over are
/// dropped, and if that is not enough, all (memory stays bounded; a flood
/// from this many networks at once loses its count, not the service).
const MAX_TRACKED: usize = 100_000;

/// Failed token attempts per address prefix, in fixed one-minute windows.
/// Hand-written rather than a `governor` limiter because the check must
/// ask "is this prefix locked out?" after a token turned out wrong,
/// without spending anything, and `governor` offers no such look.
pub struct FailedTokens {
    max_per_window: u32,
    windows: Mutex<HashMap<AnonIp, Window>>,
}

struct Window {
    started: Instant,
    failures: u32,
}

impl FailedTokens {
    pub fn new(max_per_minute: u32) -> FailedTokens {
        FailedTokens {
            max_per_window: max_per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// How long `prefix` must wait, when it used up its failures.
    pub fn locked_out(&self, prefix: &AnonIp) -> Option<Duration> {
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let w = windows.get(prefix)?;
        let elapsed = w.started.elapsed();
        (elapsed < WINDOW && w.failures >= self.max_per_window).then(|| WINDOW - elapsed)
    }

    /// Counts one wrong token from `prefix`.
    pub fn failed(&self, prefix: AnonIp) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_TRACKED && !windows.contains_key(&prefix) {
            windows.retain(|_, w| w.started.elapsed() < WINDOW);
            if windows.len() >= MAX_TRACKED {
                windows.clear();
            }
        }
        let w = windows.entry(prefix).or_insert(Window {
            started: Instant::now(),
            failures: 0,
        });
        if w.started.elapsed() >= WINDOW {
            *w = Window {
                started: Instant::now(),
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }
}

/// Who a token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Admin,
    Site(String),
}

fn ct_eq(a: &str, b: &str) -> bool {
    // Compare digests so the comparison time does not depend on where the
    // strings differ nor on their lengths.
    let da = blake3::hash(a.as_bytes());
    let db = blake3::hash(b.as_bytes());
    da.as_bytes().ct_eq(db.as_bytes()).into()
}

/// Finds the token's owner. Every configured token is compared, match or
/// not, so timing does not reveal which one matched.
pub fn authenticate(req: &HttpRequest, config: &Config) -> Result<Principal, ApiError> {
    // the throttle lives in the app state; without one (a route mounted
    // elsewhere) tokens are only compared
    let throttle = req.app_data::<web::Data<AppState>>().and_then(|state| {
        client_addr(req, &state.addr_policy).map(|prefix| (state.clone(), prefix))
    });
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let found = token.and_then(|token| owner_of(token, config));
    if let Some(principal) = found {
        return Ok(principal);
    }
    // only a wrong or missing token is throttled
    if let Some((state, prefix)) = throttle {
        if let Some(wait) = state.failed_tokens.locked_out(&prefix) {
            metrics::counter!("sparsam_token_lockouts_total").increment(1);
            return Err(ApiError::RateLimited(retry_after_secs(wait)));
        }
        if token.is_some() {
            state.failed_tokens.failed(prefix);
        }
    }
    Err(ApiError::Unauthorized)
}

/// The owner of `token`, comparing every configured token.
fn owner_of(token: &str, config: &Config) -> Option<Principal> {
    let mut found = None;
    if !config.auth.admin_token.is_empty() && ct_eq(token, &config.auth.admin_token) {
        found = Some(Principal::Admin);
    }
    for site in &config.sites {
        for t in &site.tokens {
            if ct_eq(token, t) && found.is_none() {
                found = Some(Principal::Site(site.id.clone()));
            }
        }
    }
    found
}

/// Checks that the token may read `site`.
pub fn authorize_site(
    req: &HttpRequest,
    config: &Config,
    site: &str,
) -> Result<Principal, ApiError> {
    let p = authenticate(req, config)?;
    match &p {
        Principal::Admin => Ok(p),
        Principal::Site(s) if s == site => Ok(p),
        Principal::Site(_) => Err(ApiError::Forbidden),
    }
}

/// Checks for the admin token.
pub fn authorize_admin(req: &HttpRequest, config: &Config) -> Result<(), ApiError> {
    match authenticate(req, config)? {
        Principal::Admin => Ok(()),
        Principal::Site(_) => Err(ApiError::AdminOnly),
    }
}
