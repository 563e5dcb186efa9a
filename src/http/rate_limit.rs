//! Per-prefix rate limit for the ingest routes. Requests are keyed by the
//! shortened client address (`AnonIp`), the same prefix that is stored, so
//! the limiter never holds a full address; a flood from one network cannot
//! crowd out everyone else's hits. Keyed GCRA limiter from `governor`;
//! idle keys are dropped every few thousand checks so memory stays bounded.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use actix_web::HttpRequest;

use super::client::client_addr;
use super::error::ApiError;
use super::AppState;
use crate::config::ServerConfig;
use crate::privacy::AnonIp;

/// How many checks pass between two sweeps of idle keys.
const SWEEP_EVERY: u64 = 4096;

pub struct PrefixLimiter {
    limiter: DefaultKeyedRateLimiter<AnonIp>,
    clock: DefaultClock,
    checks: AtomicU64,
}

impl PrefixLimiter {
    /// The limiter the config asks for, or `None` when it is switched off.
    pub fn from_config(server: &ServerConfig) -> Option<PrefixLimiter> {
        let per_minute = NonZeroU32::new(server.rate_limit_per_minute)?;
        let burst = NonZeroU32::new(server.rate_limit_burst).unwrap_or(per_minute);
        Some(PrefixLimiter {
            limiter: RateLimiter::dashmap(Quota::per_minute(per_minute).allow_burst(burst)),
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        })
    }

    /// `Ok` when `prefix` may send another request; otherwise how long it
    /// has to wait.
    pub fn check(&self, prefix: &AnonIp) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(prefix)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Prefixes currently tracked.
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

/// Seconds for `Retry-After`: at least one, rounded up.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

/// Admits an ingest request or refuses it with 429. Requests whose client
/// address is unknown are left to the handler (it refuses them anyway).
pub fn admit(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    let Some(limiter) = &state.rate_limit else {
        return Ok(());
    };
    let Some(prefix) = client_addr(req, &state.addr_policy) else {
        return Ok(());
    };
    limiter.check(&prefix).map_err(|wait| {
        metrics::counter!("sparsam_hits_total", "outcome" => "rate_limited").increment(1);
        ApiError::RateLimited(retry_after_secs(wait))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::IpMasks;

    fn limiter(per_minute: u32, burst: u32) -> Option<PrefixLimiter> {
        PrefixLimiter::from_config(&ServerConfig {
            rate_limit_per_minute: per_minute,
            rate_limit_burst: burst,
            ..ServerConfig::default()
        })
    }

    fn prefix(addr: &str) -> AnonIp {
        AnonIp::truncate(addr.parse().unwrap(), &IpMasks::DEFAULT)
    }

    #[test]
    fn zero_switches_the_limit_off() {
        assert!(limiter(0, 10).is_none());
    }

    #[test]
    fn burst_then_refusal_per_prefix_only() {
        let l = limiter(1, 3).unwrap();
        let a = prefix("203.0.113.7");
        for _ in 0..3 {
            assert!(l.check(&a).is_ok());
        }
        let wait = l.check(&a).unwrap_err();
        assert!(wait > Duration::ZERO);
        // Same /16 prefix: the same bucket. Another prefix: its own.
        assert!(l.check(&prefix("203.0.99.1")).is_err());
        assert!(l.check(&prefix("198.51.100.1")).is_ok());
        assert_eq!(l.tracked(), 2);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(100)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2500)), 3);
    }
}
