//! A token-bucket rate limiter, per user: `rate` model calls per second on
//! average, bursts of up to `burst`. The agent takes a token before every
//! model call. In [`RateLimitMode::Throttle`] a call without a token waits
//! its turn; in [`RateLimitMode::Reject`] the run fails with
//! [`RateLimited`], which says how long to wait.
//!
//! ```
//! use loomflow_core::rate_limit::{RateLimitMode, RateLimiter};
//! use loomflow_core::UserId;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let limiter = RateLimiter::new(2.0, 1).unwrap().mode(RateLimitMode::Reject);
//! let u = UserId::new("u").unwrap();
//! assert!(limiter.acquire(&u).await.is_ok());
//! let err = limiter.acquire(&u).await.unwrap_err();
//! assert!(err.to_string().contains("rate limit"), "{err}");
//! // Another user has their own bucket.
//! assert!(limiter.acquire(&UserId::new("v").unwrap()).await.is_ok());
//! # });
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::bounded::{BoundedMap, Bounds};
use crate::error::ConfigError;
use crate::id::UserId;

/// What a call without a token does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RateLimitMode {
    /// Wait for a token (the default).
    #[default]
    Throttle,
    /// Fail with [`RateLimited`].
    Reject,
}

/// A call refused in [`RateLimitMode::Reject`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit reached for user {user}: retry in {:.2}s", .retry_after.as_secs_f64())]
pub struct RateLimited {
    /// The user (`anonymous` for the anonymous bucket).
    pub user: String,
    /// When a token will be there.
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The limiter. Cheap to clone; clones share the buckets.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    per_user: bool,
    mode: RateLimitMode,
    buckets: Arc<Mutex<BoundedMap<UserId, Bucket>>>,
}

impl RateLimiter {
    /// `rate` calls per second, bursts of `burst`, one bucket per user
    /// (bounded by [`Bounds::default`]), throttling.
    pub fn new(rate: f64, burst: u32) -> Result<Self, ConfigError> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(ConfigError::invalid(
                "rate_limit.rate",
                format!("{rate} is not a positive number of calls per second"),
            ));
        }
        if burst == 0 {
            return Err(ConfigError::invalid(
                "rate_limit.burst",
                "a burst of 0 would refuse every call; use 1 or more",
            ));
        }
        Ok(Self {
            rate,
            burst: f64::from(burst),
            per_user: true,
            mode: RateLimitMode::Throttle,
            buckets: Arc::new(Mutex::new(BoundedMap::new(Bounds::default()))),
        })
    }

    /// Throttle or reject.
    pub fn mode(mut self, mode: RateLimitMode) -> Self {
        self.mode = mode;
        self
    }

    /// One bucket shared by every user instead of one each.
    pub fn shared_bucket(mut self) -> Self {
        self.per_user = false;
        self
    }

    /// Bounds on the per-user buckets.
    pub fn bounds(mut self, bounds: Bounds) -> Self {
        self.buckets = Arc::new(Mutex::new(BoundedMap::new(bounds)));
        self
    }

    /// Takes a token for `user`: at once, after a wait (throttle), or an
    /// error (reject).
    pub async fn acquire(&self, user: &UserId) -> Result<(), RateLimited> {
        let wait = {
            let now = Instant::now();
            let key = if self.per_user {
                user.clone()
            } else {
                UserId::anonymous()
            };
            let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            let bucket = buckets.entry(&key, now.into_std(), || Bucket {
                tokens: self.burst,
                at: now,
            });
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
            bucket.at = now;
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                return Ok(());
            }
            let wait = Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate);
            match self.mode {
                RateLimitMode::Reject => {
                    return Err(RateLimited {
                        user: user.as_str().unwrap_or("anonymous").to_owned(),
                        retry_after: wait,
                    });
                }
                // Take the token now (the bucket goes negative), so waiters
                // are served in arrival order.
                RateLimitMode::Throttle => bucket.tokens -= 1.0,
            }
            wait
        };
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn throttling_spaces_calls_at_the_rate() {
        let limiter = RateLimiter::new(10.0, 2).unwrap();
        let u = UserId::new("u").unwrap();
        let start = Instant::now();
        for _ in 0..6 {
            limiter.acquire(&u).await.unwrap();
        }
        // Two from the burst, then four at 100 ms each.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_millis(410),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rejection_says_when_to_retry() {
        let limiter = RateLimiter::new(4.0, 1)
            .unwrap()
            .mode(RateLimitMode::Reject);
        let u = UserId::new("u").unwrap();
        limiter.acquire(&u).await.unwrap();
        let err = limiter.acquire(&u).await.unwrap_err();
        assert_eq!(err.retry_after, Duration::from_millis(250));
        tokio::time::advance(Duration::from_millis(250)).await;
        limiter.acquire(&u).await.unwrap();
        assert!(RateLimiter::new(0.0, 1).is_err());
    }
}
