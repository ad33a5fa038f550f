//! Retries with exponential backoff: [`RetryPolicy`] and the [`Retrying`]
//! layer that applies it to any [`Model`].

use crate::redact::Redacted;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;

use super::{ChunkStream, Completion, Model, ModelCapabilities, ModelRequest};
use crate::error::ModelError;
use crate::output::OutputSchema;
use crate::tokens::TokenCount;

/// How the backoff delay is randomised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// No randomness: the exact exponential delay.
    None,
    /// "Full jitter": uniform between zero and the exponential delay (the
    /// default; spreads a thundering herd best).
    Full,
    /// Up to this fraction (0–1) taken off the exponential delay at random.
    Ratio(f64),
}

/// When and how often to retry a failed model call.
///
/// Only retryable errors ([`ModelError::is_retryable`]: transient and
/// rate-limited) are retried. A server's `Retry-After` hint is a floor for the
/// next delay. **A hint longer than [`max_delay`](Self::max_delay) ends the
/// retries** and returns the error: waiting longer than the cap would break
/// the latency bound the caller set, and retrying sooner than the server asked
/// would fail again. Raise `max_delay` to honour long hints.
///
/// ```
/// use std::time::Duration;
/// use loomflow_model::model::retry::{Jitter, RetryPolicy};
///
/// let policy = RetryPolicy::default();
/// assert_eq!(policy.max_attempts, 3);
/// let exact = RetryPolicy { jitter: Jitter::None, ..policy };
/// assert_eq!(exact.delay(1, None), Some(Duration::from_secs(1)));
/// assert_eq!(exact.delay(2, None), Some(Duration::from_secs(2)));
/// // The hint is a floor …
/// assert_eq!(exact.delay(1, Some(Duration::from_secs(5))), Some(Duration::from_secs(5)));
/// // … and one beyond the cap ends the retries.
/// assert_eq!(exact.delay(1, Some(Duration::from_secs(90))), None);
/// assert!(!RetryPolicy::disabled().is_enabled());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = no retries).
    pub max_attempts: u32,
    /// The delay before the first retry.
    pub initial_delay: Duration,
    /// The longest delay between attempts.
    pub max_delay: Duration,
    /// The factor the delay grows by per retry.
    pub multiplier: f64,
    /// Randomisation of each delay.
    pub jitter: Jitter,
}

impl Default for RetryPolicy {
    /// 3 attempts, 1 s initial delay doubling up to 30 s, full jitter (the
    /// reference's default for network adapters).
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: Jitter::Full,
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub fn disabled() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// 6 attempts, 0.5 s initial delay, capped at 60 s.
    pub fn aggressive() -> Self {
        Self {
            max_attempts: 6,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            ..Self::default()
        }
    }

    /// Whether the policy retries at all (two attempts or more).
    pub fn is_enabled(&self) -> bool {
        self.max_attempts >= 2
    }

    /// The delay before retry number `retry` (1 for the first retry), with
    /// the server's `hint` as a floor; `None` when the hint exceeds
    /// [`max_delay`](Self::max_delay) and retrying should stop.
    pub fn delay(&self, retry: u32, hint: Option<Duration>) -> Option<Duration> {
        if hint.is_some_and(|h| h > self.max_delay) {
            return None;
        }
        let exp = self
            .multiplier
            .max(1.0)
            .powi(retry.saturating_sub(1) as i32);
        let base = (self.initial_delay.as_secs_f64() * exp).min(self.max_delay.as_secs_f64());
        let jittered = match self.jitter {
            Jitter::None => base,
            Jitter::Full => base * rand::random::<f64>(),
            Jitter::Ratio(r) => base * (1.0 - r.clamp(0.0, 1.0) * rand::random::<f64>()),
        };
        let delay = Duration::from_secs_f64(jittered.max(0.0));
        Some(hint.map_or(delay, |h| delay.max(h)))
    }

    /// Runs `op` until it succeeds, fails with an error that is not
    /// retryable, runs out of attempts, or the server asks for a wait past
    /// [`max_delay`](Self::max_delay); each retry is logged with `what`.
    pub async fn run<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, ModelError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ModelError>>,
    {
        let mut attempt = 1;
        loop {
            let err = match op().await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            if !err.is_retryable() || attempt >= self.max_attempts {
                return Err(err);
            }
            let Some(delay) = self.delay(attempt, err.retry_after()) else {
                return Err(err);
            };
            tracing::warn!(
                what,
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %Redacted(&err),
                "call failed; retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// A model that retries its inner model's failed calls under a
/// [`RetryPolicy`]. A stream is retried only before its first chunk: once
/// text has reached the caller, an error is returned as it is.
///
/// ```
/// use loomflow_model::model::{EchoModel, Model};
/// use loomflow_model::model::retry::{RetryPolicy, Retrying};
///
/// let model = Retrying::new(EchoModel::new(), RetryPolicy::aggressive());
/// assert_eq!(model.name(), "echo");
/// ```
#[derive(Clone)]
pub struct Retrying {
    inner: Arc<dyn Model>,
    policy: RetryPolicy,
}

impl Retrying {
    /// Wraps `model`.
    pub fn new(model: impl Model, policy: RetryPolicy) -> Self {
        Self::from_arc(Arc::new(model), policy)
    }

    /// Wraps a shared model.
    pub fn from_arc(model: Arc<dyn Model>, policy: RetryPolicy) -> Self {
        Self {
            inner: model,
            policy,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

impl std::fmt::Debug for Retrying {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retrying")
            .field("model", &self.inner.name())
            .field("policy", &self.policy)
            .finish()
    }
}

/// Opens `model`'s stream and waits for its first item, so a failure before
/// any output can be retried or failed over. The returned stream yields that
/// first item again.
pub(crate) async fn open_stream(
    model: &dyn Model,
    request: ModelRequest<'_>,
) -> Result<ChunkStream, ModelError> {
    let mut stream = model.stream(request).await?;
    match stream.next().await {
        None => Ok(Box::pin(futures_util::stream::empty())),
        Some(Err(e)) => Err(e),
        Some(Ok(first)) => Ok(Box::pin(
            futures_util::stream::once(async move { Ok(first) }).chain(stream),
        )),
    }
}

#[async_trait]
impl Model for Retrying {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }

    fn capabilities(&self) -> ModelCapabilities {
        self.inner.capabilities()
    }

    fn native_output_for(&self, schema: &OutputSchema) -> bool {
        self.inner.native_output_for(schema)
    }

    async fn stream(&self, request: ModelRequest<'_>) -> Result<ChunkStream, ModelError> {
        let model = &*self.inner;
        self.policy
            .run(model.name(), || open_stream(model, request))
            .await
    }

    async fn complete(&self, request: ModelRequest<'_>) -> Result<Completion, ModelError> {
        let model = &*self.inner;
        self.policy
            .run(model.name(), || model.complete(request))
            .await
    }

    async fn count_tokens(&self, request: ModelRequest<'_>) -> Result<TokenCount, ModelError> {
        let model = &*self.inner;
        self.policy
            .run(model.name(), || model.count_tokens(request))
            .await
    }
}
