//! Per-prefix rate limits for the ingest routes, by requests, by events
//! and by bytes. Requests are keyed by the shortened client address
//! (`AnonIp`), the same prefix that is stored, so the limiter never holds a
//! full address; a flood from one network cannot crowd out everyone
//! else's hits. A bulk request of 100 events costs 100 events, and every
//! byte of query string and body counts, so batching cannot get around
//! the limit. Keyed GCRA limiters from `governor`, one per measure; idle
//! keys are dropped every few thousand checks so memory stays bounded.

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

/// What a request is charged in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    Requests,
    Events,
    Bytes,
}

impl Measure {
    fn label(self) -> &'static str {
        match self {
            Measure::Requests => "requests",
            Measure::Events => "events",
            Measure::Bytes => "bytes",
        }
    }
}

/// One keyed limiter and its idle-key sweeping.
struct Bucket {
    limiter: DefaultKeyedRateLimiter<AnonIp>,
    checks: AtomicU64,
}

impl Bucket {
    fn new(per_minute: u32, burst: u32) -> Option<Bucket> {
        let per_minute = NonZeroU32::new(per_minute)?;
        let burst = NonZeroU32::new(burst).unwrap_or(per_minute);
        Some(Bucket {
            limiter: RateLimiter::dashmap(Quota::per_minute(per_minute).allow_burst(burst)),
            checks: AtomicU64::new(0),
        })
    }

    fn check(&self, prefix: &AnonIp, cost: u32, clock: &DefaultClock) -> Result<(), Duration> {
        let Some(cost) = NonZeroU32::new(cost) else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        match self.limiter.check_key_n(prefix, cost) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(clock.now())),
            // more than the burst at once: the config keeps bursts at least
            // as large as one request may be, so this is a cost beyond
            // those limits; a minute's wait is the honest answer
            Err(_) => Err(Duration::from_secs(60)),
        }
    }
}

pub struct PrefixLimiter {
    requests: Option<Bucket>,
    events: Option<Bucket>,
    bytes: Option<Bucket>,
    clock: DefaultClock,
}

impl PrefixLimiter {
    /// The limiter the config asks for, or `None` when every limit is
    /// switched off.
    pub fn from_config(server: &ServerConfig) -> Option<PrefixLimiter> {
        let limiter = PrefixLimiter {
            requests: Bucket::new(server.rate_limit_per_minute, server.rate_limit_burst),
            events: Bucket::new(
                server.rate_limit_events_per_minute,
                server.rate_limit_events_burst,
            ),
            // Validation keeps both within `u32` (`MAX_RATE_LIMIT_BYTES`).
            bytes: Bucket::new(
                u32::try_from(server.rate_limit_bytes_per_minute.as_u64()).unwrap_or(u32::MAX),
                u32::try_from(server.rate_limit_bytes_burst.as_u64()).unwrap_or(u32::MAX),
            ),
            clock: DefaultClock::default(),
        };
        (limiter.requests.is_some() || limiter.events.is_some() || limiter.bytes.is_some())
            .then_some(limiter)
    }

    /// `Ok` when `prefix` may spend `cost` of `measure`; otherwise how long
    /// it has to wait.
    pub fn check(&self, prefix: &AnonIp, measure: Measure, cost: u32) -> Result<(), Duration> {
        let bucket = match measure {
            Measure::Requests => &self.requests,
            Measure::Events => &self.events,
            Measure::Bytes => &self.bytes,
        };
        match bucket {
            Some(b) => b.check(prefix, cost, &self.clock),
            None => Ok(()),
        }
    }

    /// Prefixes currently tracked by the request limit.
    pub fn tracked(&self) -> usize {
        self.requests.as_ref().map_or(0, |b| b.limiter.len())
    }
}

/// Seconds for `Retry-After`: at least one, rounded up.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

/// Charges an ingest request `cost` of `measure` or refuses it with 429.
/// Requests whose client address is unknown are left to the handler (it
/// refuses them anyway).
pub fn charge(
    state: &AppState,
    req: &HttpRequest,
    measure: Measure,
    cost: usize,
) -> Result<(), ApiError> {
    let Some(limiter) = &state.rate_limit else {
        return Ok(());
    };
    let Some(prefix) = client_addr(req, &state.addr_policy) else {
        return Ok(());
    };
    let cost = u32::try_from(cost).unwrap_or(u32::MAX);
    limiter.check(&prefix, measure, cost).map_err(|wait| {
        metrics::counter!("sparsam_hits_total", "outcome" => "rate_limited").increment(1);
        metrics::counter!("sparsam_rate_limited_total", "by" => measure.label()).increment(1);
        ApiError::RateLimited(retry_after_secs(wait))
    })
}

/// Admits an ingest request by the request count and its query string's
/// bytes, before anything else is read.
pub fn admit(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    charge(state, req, Measure::Requests, 1)?;
    charge(state, req, Measure::Bytes, req.query_string().len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::IpMasks;

    fn limiter(per_minute: u32, burst: u32) -> Option<PrefixLimiter> {
        PrefixLimiter::from_config(&ServerConfig {
            rate_limit_per_minute: per_minute,
            rate_limit_burst: burst,
            rate_limit_events_per_minute: 0,
            rate_limit_bytes_per_minute: bytesize::ByteSize::b(0),
            ..ServerConfig::default()
        })
    }

    fn prefix(addr: &str) -> AnonIp {
        AnonIp::truncate(addr.parse().unwrap(), &IpMasks::DEFAULT)
    }

    #[test]
    fn zero_switches_the_limit_off() {
        assert!(limiter(0, 10).is_none());
        let events_only = PrefixLimiter::from_config(&ServerConfig {
            rate_limit_per_minute: 0,
            rate_limit_bytes_per_minute: bytesize::ByteSize::b(0),
            ..ServerConfig::default()
        })
        .unwrap();
        for _ in 0..10_000 {
            assert!(events_only
                .check(&prefix("1.2.3.4"), Measure::Requests, 1)
                .is_ok());
        }
    }

    #[test]
    fn burst_then_refusal_per_prefix_only() {
        let l = limiter(1, 3).unwrap();
        let a = prefix("203.0.113.7");
        for _ in 0..3 {
            assert!(l.check(&a, Measure::Requests, 1).is_ok());
        }
        let wait = l.check(&a, Measure::Requests, 1).unwrap_err();
        assert!(wait > Duration::ZERO);
        // Same /16 prefix: the same bucket. Another prefix: its own.
        assert!(l
            .check(&prefix("203.0.99.1"), Measure::Requests, 1)
            .is_err());
        assert!(l
            .check(&prefix("198.51.100.1"), Measure::Requests, 1)
            .is_ok());
        assert_eq!(l.tracked(), 2);
    }

    #[test]
    fn events_and_bytes_are_charged_by_their_count() {
        let l = PrefixLimiter::from_config(&ServerConfig {
            rate_limit_per_minute: 0,
            rate_limit_events_per_minute: 1,
            rate_limit_events_burst: 150,
            rate_limit_bytes_per_minute: bytesize::ByteSize::b(1),
            rate_limit_bytes_burst: bytesize::ByteSize::b(1000),
            ..ServerConfig::default()
        })
        .unwrap();
        let a = prefix("203.0.113.7");
        assert!(l.check(&a, Measure::Events, 100).is_ok());
        // 50 left of the burst: one more bulk of 100 is refused whole, a
        // request of 50 still fits
        assert!(l.check(&a, Measure::Events, 100).is_err());
        assert!(l.check(&a, Measure::Events, 50).is_ok());
        assert!(l.check(&a, Measure::Events, 1).is_err());
        assert!(l.check(&a, Measure::Bytes, 999).is_ok());
        assert!(l.check(&a, Measure::Bytes, 2).is_err());
        // more than the whole burst at once: refused with a minute's wait
        let b = prefix("198.51.100.1");
        assert_eq!(
            l.check(&b, Measure::Events, 151),
            Err(Duration::from_secs(60))
        );
        assert!(l.check(&b, Measure::Events, 0).is_ok(), "nothing to charge");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(100)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2500)), 3);
    }
}
