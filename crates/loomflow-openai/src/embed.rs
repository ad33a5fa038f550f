//! [`OpenAiEmbedder`]: the embeddings endpoint, for OpenAI and compatible
//! servers.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use loomflow_model::http::{client_or_default, receive_json};
use loomflow_model::model::retry::RetryPolicy;
use loomflow_model::secrets::{Endpoint, Secrets};
use loomflow_model::{ConfigError, Embedder, ModelError};
use serde::{Deserialize, Serialize};

use crate::gateway::Gateway;

/// The most inputs one request may carry.
const MAX_BATCH: usize = 2048;

/// Native sizes of OpenAI's embedding models.
fn native_dimensions(model: &str) -> Option<usize> {
    match model {
        "text-embedding-3-small" | "text-embedding-ada-002" => Some(1536),
        "text-embedding-3-large" => Some(3072),
        _ => None,
    }
}

/// Embeddings over `POST {base}/embeddings`.
///
/// Batches up to 2048 texts per request, keeps the order by each vector's
/// `index`, checks every vector's length, and retries transient failures
/// under its [`RetryPolicy`] (the default one unless set). Keys and base URL
/// resolve like [`OpenAiModel`](crate::OpenAiModel)'s.
///
/// ```
/// use loomflow_openai::OpenAiEmbedder;
/// use loomflow_model::Embedder;
///
/// let e = OpenAiEmbedder::builder("text-embedding-3-small")
///     .dimensions(256)
///     .api_key("sk-test")
///     .build()
///     .unwrap();
/// assert_eq!((e.name(), e.dimensions()), ("text-embedding-3-small", 256));
/// ```
#[derive(Clone)]
pub struct OpenAiEmbedder {
    inner: Arc<Inner>,
}

struct Inner {
    model: String,
    dimensions: usize,
    /// Sent only when asked for a size other than the model's own.
    request_dimensions: Option<usize>,
    url: String,
    base_url: String,
    api_key: Option<String>,
    retry: RetryPolicy,
    timeout: Duration,
    client: reqwest::Client,
}

impl std::fmt::Debug for OpenAiEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiEmbedder")
            .field("model", &self.inner.model)
            .field("dimensions", &self.inner.dimensions)
            .field("base_url", &self.inner.base_url)
            .finish_non_exhaustive()
    }
}

/// Builds an [`OpenAiEmbedder`].
#[must_use]
pub struct OpenAiEmbedderBuilder {
    model: String,
    dimensions: Option<usize>,
    gateway: Gateway,
    api_key: Option<String>,
    base_url: Option<String>,
    secrets: Option<Arc<dyn Secrets>>,
    retry: RetryPolicy,
    timeout: Duration,
    client: Option<reqwest::Client>,
}

impl OpenAiEmbedder {
    /// A builder for the embedding model `model`.
    pub fn builder(model: impl Into<String>) -> OpenAiEmbedderBuilder {
        OpenAiEmbedderBuilder {
            model: model.into(),
            dimensions: None,
            gateway: Gateway::OpenAi,
            api_key: None,
            base_url: None,
            secrets: None,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(60),
            client: None,
        }
    }

    async fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        let inner = &*self.inner;
        let body = serde_json::to_vec(&EmbeddingRequest {
            model: &inner.model,
            input: texts,
            encoding_format: "float",
            dimensions: inner.request_dimensions,
        })
        .map(bytes::Bytes::from)
        .map_err(|e| ModelError::other(format!("could not encode the request: {e}")))?;
        let mut reply: EmbeddingResponse = inner
            .retry
            .run(&inner.model, || {
                let mut http = inner
                    .client
                    .post(&inner.url)
                    .timeout(inner.timeout)
                    .header("content-type", "application/json")
                    // A reference count, not a copy, per attempt.
                    .body(body.clone());
                if let Some(key) = &inner.api_key {
                    http = http.bearer_auth(key);
                }
                receive_json(http, &inner.base_url, "the embeddings response")
            })
            .await?;
        if reply.data.len() != texts.len() {
            return Err(ModelError::other(format!(
                "asked for {} embeddings, got {}",
                texts.len(),
                reply.data.len()
            )));
        }
        reply.data.sort_unstable_by_key(|d| d.index);
        let mut out = Vec::with_capacity(texts.len());
        for (i, item) in reply.data.into_iter().enumerate() {
            if item.index != i || item.embedding.len() != inner.dimensions {
                return Err(ModelError::other(format!(
                    "embedding {} has index {} and {} dimensions; expected index {i} and {} dimensions (set .dimensions(n) to the model's size)",
                    i,
                    item.index,
                    item.embedding.len(),
                    inner.dimensions
                )));
            }
            out.push(item.embedding);
        }
        Ok(out)
    }
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn name(&self) -> &str {
        &self.inner.model
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions
    }

    async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(MAX_BATCH) {
            out.extend(self.embed_batch(batch).await?);
        }
        Ok(out)
    }
}

impl OpenAiEmbedderBuilder {
    loomflow_model::connection_setters!(
        base_url: "The base URL, up to and including `/v1`.",
        timeout: "The per-request timeout (default 60 s).",
    );

    /// The vector size. Needed for models this crate does not know; for
    /// `text-embedding-3-*` a smaller size is sent as `dimensions` and the
    /// server shortens the vectors.
    pub fn dimensions(mut self, dimensions: usize) -> Self {
        self.dimensions = Some(dimensions);
        self
    }

    /// An OpenAI-compatible server instead of OpenAI.
    pub fn gateway(mut self, gateway: Gateway) -> Self {
        self.gateway = gateway;
        self
    }

    /// How transient failures are retried (default [`RetryPolicy::default`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Resolves the key, base URL and size. A missing key names its
    /// variable; an unknown model without [`dimensions`](Self::dimensions)
    /// is a [`ConfigError`] asking for it.
    pub fn build(self) -> Result<OpenAiEmbedder, ConfigError> {
        let spec = self.gateway.spec();
        let endpoint = Endpoint::new(spec.label, spec.key_var, spec.base_url_var, spec.base_url);
        let (api_key, base_url) = endpoint.resolve(
            &self.model,
            self.api_key,
            self.base_url,
            self.secrets.as_deref(),
        )?;
        let native = native_dimensions(&self.model);
        let dimensions = match (self.dimensions, native) {
            (Some(0), _) => {
                return Err(ConfigError::invalid(
                    "dimensions",
                    "an embedding needs at least one dimension",
                ));
            }
            (Some(d), _) | (None, Some(d)) => d,
            (None, None) => {
                return Err(ConfigError::invalid(
                    "dimensions",
                    format!(
                        "the size of embedding model {:?} is unknown; set it with .dimensions(n)",
                        self.model
                    ),
                ));
            }
        };
        let client = client_or_default(self.client)?;
        Ok(OpenAiEmbedder {
            inner: Arc::new(Inner {
                request_dimensions: (native != Some(dimensions)).then_some(dimensions),
                url: format!("{base_url}/embeddings"),
                model: self.model,
                dimensions,
                base_url,
                api_key,
                retry: self.retry,
                timeout: self.timeout,
                client,
            }),
        })
    }
}

#[derive(Serialize)]
struct EmbeddingRequest<'a> {
    model: &'a str,
    input: &'a [&'a str],
    encoding_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<usize>,
}

#[derive(Deserialize)]
struct EmbeddingResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    index: usize,
    embedding: Vec<f32>,
}
