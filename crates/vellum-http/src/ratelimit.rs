//! Per-API-key rate limiting, off unless configured. A token bucket per key: it holds up to
//! `requests` tokens and refills at `requests / window`, so a key may burst to the full budget
//! and then sustain the configured rate. (WorkOS's own limit is 6,000 requests per 60 s.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use vellum_core::ApiKeyId;

use crate::AppState;
use crate::auth::Authenticated;
use crate::error::ApiError;

/// A request budget: `requests` per `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window (and the burst size).
    pub requests: u32,
    /// The window.
    pub window: Duration,
}

impl RateLimit {
    /// Parses `REQUESTS/SECONDS`, e.g. `6000/60`.
    pub fn parse(text: &str) -> Option<Self> {
        let (requests, seconds) = text.split_once('/')?;
        let requests: u32 = requests.trim().parse().ok().filter(|requests| *requests > 0)?;
        let seconds: u64 = seconds
            .trim()
            .trim_end_matches('s')
            .parse()
            .ok()
            .filter(|seconds| *seconds > 0)?;
        Some(Self {
            requests,
            window: Duration::from_secs(seconds),
        })
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

/// The buckets of every key seen.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<ApiKeyId, Bucket>>,
}

impl RateLimiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`, or says how long until one is available.
    fn take(&self, key: ApiKeyId, now: Instant) -> Result<(), Duration> {
        let capacity = f64::from(self.limit.requests);
        let per_second = capacity / self.limit.window.as_secs_f64();
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: capacity,
            refilled_at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.refilled_at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

/// A fixed budget per credential that is not an API key (a portal session, a viewer token):
/// these are many, so the table of buckets is bounded, and full buckets (credentials idle long
/// enough to have their whole budget back) are the first forgotten.
#[derive(Debug)]
pub(crate) struct CredentialLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// The most credentials a [`CredentialLimiter`] remembers at once.
const MAX_CREDENTIALS: usize = 50_000;

impl CredentialLimiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`, or answers the 429 to give.
    pub(crate) fn take(&self, key: &str, now: Instant) -> Result<(), ApiError> {
        let capacity = f64::from(self.limit.requests);
        let per_second = capacity / self.limit.window.as_secs_f64();
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_CREDENTIALS && !buckets.contains_key(key) {
            buckets.retain(|_, bucket| {
                bucket.tokens + now.saturating_duration_since(bucket.refilled_at).as_secs_f64() * per_second < capacity
            });
            if buckets.len() >= MAX_CREDENTIALS {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: capacity,
            refilled_at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.refilled_at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / per_second;
            Err(ApiError::RateLimited {
                retry_after_seconds: wait.ceil().max(1.0) as u64,
            })
        }
    }
}

/// Refuses requests over the authenticated key's budget with 429 and `Retry-After`.
pub(crate) async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    if let (Some(limiter), Some(Authenticated(key))) =
        (&state.rate_limiter, request.extensions().get::<Authenticated>())
        && let Err(wait) = limiter.take(key.id, Instant::now())
    {
        return Err(ApiError::RateLimited {
            retry_after_seconds: wait.as_secs_f64().ceil().max(1.0) as u64,
        });
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_budgets() {
        assert_eq!(
            RateLimit::parse("6000/60"),
            Some(RateLimit {
                requests: 6000,
                window: Duration::from_secs(60)
            })
        );
        assert_eq!(
            RateLimit::parse("5/1s"),
            Some(RateLimit {
                requests: 5,
                window: Duration::from_secs(1)
            })
        );
        for bad in ["", "10", "0/60", "10/0", "x/60", "10/y"] {
            assert_eq!(RateLimit::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn bursts_then_refills_per_key() {
        let limiter = RateLimiter::new(RateLimit {
            requests: 3,
            window: Duration::from_secs(3),
        });
        let key = ApiKeyId::from_ulid(ulid::Ulid::from_parts(1, 1));
        let other = ApiKeyId::from_ulid(ulid::Ulid::from_parts(1, 2));
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(key, start).is_ok());
        }
        let wait = limiter.take(key, start).unwrap_err();
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-6, "{wait:?}");
        assert!(limiter.take(other, start).is_ok(), "keys have their own buckets");
        assert!(
            limiter.take(key, start + Duration::from_millis(1001)).is_ok(),
            "one token back after a second"
        );
        assert!(limiter.take(key, start + Duration::from_millis(1002)).is_err());
    }
}
