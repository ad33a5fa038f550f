//! [`Fallback`]: several models behind one, failing over on errors a
//! different provider may not have.

use crate::redact::Redacted;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use super::retry::open_stream;
use super::{ChunkStream, Completion, Model, ModelCapabilities, ModelRequest};
use crate::error::ModelError;
use crate::output::OutputSchema;
use crate::tokens::TokenCount;

/// Decides whether an error moves the call to the next model.
pub type FallOn = Arc<dyn Fn(&ModelError) -> bool + Send + Sync>;

/// The default failover rule: transient, rate-limited and plain permanent
/// errors (a quota exhausted, a model withdrawn) fail over; authentication,
/// invalid-request and content-filter errors never do (the next provider
/// would reject the same request, or the refusal is the answer), nor do
/// unclassified errors.
///
/// ```
/// use loomflow_model::ModelError;
/// use loomflow_model::model::fallback::default_fall_on;
/// assert!(default_fall_on(&ModelError::from_http(503, None, "")));
/// assert!(!default_fall_on(&ModelError::from_http(401, None, "")));
/// assert!(!default_fall_on(&ModelError::from_http(400, None, "")));
/// ```
pub fn default_fall_on(err: &ModelError) -> bool {
    matches!(
        err,
        ModelError::Transient { .. }
            | ModelError::RateLimited { .. }
            | ModelError::Permanent { .. }
    )
}

/// Tries each model in order until one answers. A stream fails over only
/// before its first chunk. The name is the primary's; the capabilities are
/// those every model shares, so a request shaped for the primary is one each
/// fallback can serve.
///
/// ```
/// use loomflow_model::model::{EchoModel, Model};
/// use loomflow_model::model::fallback::Fallback;
///
/// let model = Fallback::new([EchoModel::new(), EchoModel::new().with_prefix("backup: ")]);
/// assert_eq!(model.name(), "echo");
/// assert_eq!(model.last_served(), None);
/// ```
#[derive(Clone)]
pub struct Fallback {
    models: Arc<[Arc<dyn Model>]>,
    fall_on: FallOn,
    last: Arc<AtomicUsize>,
}

impl Fallback {
    /// Fails over across `models`, the first being the primary.
    pub fn new<M: Model>(models: impl IntoIterator<Item = M>) -> Self {
        Self::from_arcs(models.into_iter().map(|m| Arc::new(m) as Arc<dyn Model>))
    }

    /// Fails over across shared models.
    pub fn from_arcs(models: impl IntoIterator<Item = Arc<dyn Model>>) -> Self {
        Self {
            models: models.into_iter().collect(),
            fall_on: Arc::new(default_fall_on),
            last: Arc::new(AtomicUsize::new(usize::MAX)),
        }
    }

    /// Replaces the failover rule.
    pub fn fall_on(mut self, rule: impl Fn(&ModelError) -> bool + Send + Sync + 'static) -> Self {
        self.fall_on = Arc::new(rule);
        self
    }

    /// The name of the model that served the last successful call.
    pub fn last_served(&self) -> Option<&str> {
        self.models
            .get(self.last.load(Ordering::Relaxed))
            .map(|m| m.name())
    }

    fn give_up(&self, i: usize, err: &ModelError) -> bool {
        let last = i + 1 >= self.models.len();
        if !last && (self.fall_on)(err) {
            tracing::warn!(
                from = self.models[i].name(),
                to = self.models[i + 1].name(),
                error = %Redacted(&err),
                "model failed; falling over"
            );
            return false;
        }
        true
    }
}

impl std::fmt::Debug for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.models.iter().map(|m| m.name()).collect();
        f.debug_struct("Fallback").field("models", &names).finish()
    }
}

fn no_models() -> ModelError {
    ModelError::InvalidRequest {
        message: "Fallback has no models: pass at least one".into(),
    }
}

#[async_trait]
impl Model for Fallback {
    fn name(&self) -> &str {
        self.models.first().map_or("fallback", |m| m.name())
    }

    fn is_remote(&self) -> bool {
        self.models.iter().any(|m| m.is_remote())
    }

    fn capabilities(&self) -> ModelCapabilities {
        let mut caps = self
            .models
            .first()
            .map(|m| m.capabilities())
            .unwrap_or_default();
        for m in self.models.iter().skip(1) {
            let c = m.capabilities();
            caps.native_structured_output &= c.native_structured_output;
            caps.prompt_caching &= c.prompt_caching;
            caps.effort &= c.effort;
        }
        caps
    }

    fn native_output_for(&self, schema: &OutputSchema) -> bool {
        !self.models.is_empty() && self.models.iter().all(|m| m.native_output_for(schema))
    }

    async fn stream(&self, request: ModelRequest<'_>) -> Result<ChunkStream, ModelError> {
        for (i, model) in self.models.iter().enumerate() {
            match open_stream(&**model, request).await {
                Ok(stream) => {
                    self.last.store(i, Ordering::Relaxed);
                    return Ok(stream);
                }
                Err(err) if self.give_up(i, &err) => return Err(err),
                Err(_) => {}
            }
        }
        Err(no_models())
    }

    async fn complete(&self, request: ModelRequest<'_>) -> Result<Completion, ModelError> {
        for (i, model) in self.models.iter().enumerate() {
            match model.complete(request).await {
                Ok(c) => {
                    self.last.store(i, Ordering::Relaxed);
                    return Ok(c);
                }
                Err(err) if self.give_up(i, &err) => return Err(err),
                Err(_) => {}
            }
        }
        Err(no_models())
    }

    /// The count of the first model that can answer (the one that would
    /// serve the request), failing over on the same errors as a call.
    async fn count_tokens(&self, request: ModelRequest<'_>) -> Result<TokenCount, ModelError> {
        for (i, model) in self.models.iter().enumerate() {
            match model.count_tokens(request).await {
                Ok(count) => return Ok(count),
                Err(err) if self.give_up(i, &err) => return Err(err),
                Err(_) => {}
            }
        }
        Err(no_models())
    }
}
