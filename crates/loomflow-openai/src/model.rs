//! [`OpenAiModel`]: the Chat Completions (and Responses) adapter, for OpenAI
//! itself and any OpenAI-compatible gateway.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use loomflow_model::effort::effort_unsupported;
use loomflow_model::http::{client_or_default, open_stream, receive_json};
use loomflow_model::model::{ChunkStream, ModelCapabilities, ModelRequest};
use loomflow_model::pricing::{Rates, canonical_model_name};
use loomflow_model::secrets::{Endpoint, Secrets};
use loomflow_model::tokens::{CountMethod, TokenCount, estimate};
use loomflow_model::{ConfigError, Effort, Model, ModelError, OutputSchema};
use serde_json::json;

use crate::count::{InputTokens, with_tokenizer};
use crate::gateway::Gateway;
use crate::responses::{
    FunctionTool, InputTokensRequest, Reasoning, ResponsesRequest, TextConfig, responses_stream,
    to_input,
};
use crate::stream::chat_stream;
use crate::strict::{strict_compatible, to_strict};
use crate::wire::{ChatRequest, StreamOptions, WireMessage, WireTool};

/// Families that take `max_completion_tokens` (and reasoning effort) instead
/// of `max_tokens`.
const REASONING_FAMILIES: &[&str] = &["o1", "o3", "o4", "gpt-5", "gpt-6"];

fn is_reasoning_family(model: &str) -> bool {
    let m = canonical_model_name(model);
    REASONING_FAMILIES
        .iter()
        .any(|f| m == *f || m.starts_with(&format!("{f}-")) || m.starts_with(&format!("{f}.")))
}

use Effort::{High, Low, Max, Medium, Minimal, Xhigh};

/// The `reasoning_effort` levels each family accepts (OpenAI's model pages),
/// matched by longest prefix so dated snapshots land.
const EFFORT_LEVELS: &[(&str, &[Effort])] = &[
    ("o1", &[Low, Medium, High]),
    ("o3", &[Low, Medium, High]),
    ("o4", &[Low, Medium, High]),
    ("gpt-5", &[Minimal, Low, Medium, High]),
    ("gpt-5.1", &[Low, Medium, High]),
    ("gpt-5.2", &[Low, Medium, High, Xhigh]),
    ("gpt-5.3", &[Low, Medium, High, Xhigh]),
    ("gpt-5.4", &[Low, Medium, High, Xhigh]),
    ("gpt-5.5", &[Low, Medium, High, Xhigh]),
    ("gpt-5.6", &[Low, Medium, High, Xhigh, Max]),
    ("gpt-6", &[Low, Medium, High, Xhigh, Max]),
];

/// The effort levels `model` accepts, if it has a `reasoning_effort`.
fn effort_levels(model: &str) -> Option<&'static [Effort]> {
    let m = canonical_model_name(model).to_ascii_lowercase();
    EFFORT_LEVELS
        .iter()
        .filter(|(prefix, _)| m.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, levels)| *levels)
}

/// Which OpenAI wire API a model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    ChatCompletions,
    Responses,
}

struct Inner {
    model: Arc<str>,
    api: Api,
    /// `max_completion_tokens` instead of `max_tokens` (decided once, at build).
    reasoning: bool,
    /// The `reasoning_effort` levels the model accepts (none: no effort).
    effort_levels: Option<&'static [Effort]>,
    base_url: String,
    api_key: Option<String>,
    gateway: Gateway,
    capabilities: ModelCapabilities,
    effort: Option<Effort>,
    prompt_cache_key: Option<String>,
    rates: Option<Rates>,
    timeout: Duration,
    client: reqwest::Client,
    url: String,
}

/// A model served over the Chat Completions API, or over the Responses API
/// with [`responses_api`](OpenAiBuilder::responses_api).
///
/// Cheap to clone (one `Arc`). The key comes from
/// [`api_key`](OpenAiBuilder::api_key), else the [`Secrets`] store, else the
/// environment (`OPENAI_API_KEY`, or the gateway's variable); the base URL
/// from [`base_url`](OpenAiBuilder::base_url), else `OPENAI_BASE_URL` (for
/// OpenAI itself), else the provider's default. Keys never appear in `Debug`
/// output or logs.
///
/// ```
/// use loomflow_openai::OpenAiModel;
/// use loomflow_model::Model;
///
/// let model = OpenAiModel::builder("gpt-4.1-mini")
///     .api_key("sk-test")
///     .base_url("http://127.0.0.1:9/v1")
///     .build()
///     .unwrap();
/// assert_eq!(model.name(), "gpt-4.1-mini");
/// assert!(model.capabilities().native_structured_output);
/// assert!(!format!("{model:?}").contains("sk-test"));
/// ```
#[derive(Clone)]
pub struct OpenAiModel {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OpenAiModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiModel")
            .field("model", &self.inner.model)
            .field("base_url", &self.inner.base_url)
            .field("gateway", &self.inner.gateway)
            .field("api", &self.inner.api)
            .field(
                "api_key",
                &self.inner.api_key.as_ref().map(|_| "[REDACTED]"),
            )
            .finish_non_exhaustive()
    }
}

/// Builds an [`OpenAiModel`].
#[must_use]
pub struct OpenAiBuilder {
    model: String,
    api: Api,
    gateway: Gateway,
    api_key: Option<String>,
    base_url: Option<String>,
    secrets: Option<Arc<dyn Secrets>>,
    effort: Option<Effort>,
    prompt_cache_key: Option<String>,
    rates: Option<Rates>,
    timeout: Duration,
    client: Option<reqwest::Client>,
    capabilities: Option<ModelCapabilities>,
}

impl OpenAiModel {
    /// A builder for `model` on OpenAI.
    pub fn builder(model: impl Into<String>) -> OpenAiBuilder {
        OpenAiBuilder {
            model: model.into(),
            api: Api::ChatCompletions,
            gateway: Gateway::OpenAi,
            api_key: None,
            base_url: None,
            secrets: None,
            effort: None,
            prompt_cache_key: None,
            rates: None,
            timeout: Duration::from_secs(600),
            client: None,
            capabilities: None,
        }
    }

    /// `model` on OpenAI with the key and base URL from the environment.
    pub fn new(model: impl Into<String>) -> Result<Self, ConfigError> {
        Self::builder(model).build()
    }

    /// The model id sent on the wire.
    pub fn model_id(&self) -> &str {
        &self.inner.model
    }

    /// The gateway it talks to.
    pub fn gateway(&self) -> Gateway {
        self.inner.gateway
    }

    /// The `reasoning_effort` to send: the request's effort (else the
    /// builder's) clamped to the family's levels; dropped with a warning (or
    /// an error under `strict_effort`) for a model without one.
    fn effort_for(&self, request: &ModelRequest<'_>) -> Result<Option<Effort>, ModelError> {
        let inner = &*self.inner;
        let Some(effort) = request.effort.or(inner.effort) else {
            return Ok(None);
        };
        match inner.effort_levels.filter(|_| inner.capabilities.effort) {
            Some(levels) => Ok(Some(effort.clamp_to(levels))),
            None => {
                effort_unsupported(
                    &inner.model,
                    effort,
                    request.strict_effort,
                    "Chat Completions takes reasoning_effort only on the o-series, GPT-5.x and GPT-6.x families",
                )?;
                Ok(None)
            }
        }
    }

    fn body<'a>(&'a self, request: &ModelRequest<'a>) -> Result<ChatRequest<'a>, ModelError> {
        let inner = &*self.inner;
        let reasoning = inner.reasoning;
        let response_format = request.output_schema.and_then(|schema| {
            self.native_output_for(schema).then(|| {
                json!({
                    "type": "json_schema",
                    "json_schema": {
                        "name": schema.wire_name(),
                        "schema": to_strict(schema.schema()),
                        "strict": true,
                    }
                })
            })
        });
        let reasoning_effort = self.effort_for(request)?.map(Effort::as_str);
        let prompt_cache_key = self.cache_key(request);
        Ok(ChatRequest {
            model: &inner.model,
            messages: request
                .messages
                .iter()
                .map(WireMessage::from_message)
                .collect(),
            tools: request.tools.iter().map(WireTool::from_def).collect(),
            stream: true,
            stream_options: StreamOptions {
                include_usage: true,
            },
            temperature: request.temperature,
            max_tokens: request.max_tokens.filter(|_| !reasoning),
            max_completion_tokens: request.max_tokens.filter(|_| reasoning),
            response_format,
            reasoning_effort,
            prompt_cache_key,
        })
    }
}

impl OpenAiModel {
    fn responses_body<'a>(
        &'a self,
        request: &ModelRequest<'a>,
    ) -> Result<ResponsesRequest<'a>, ModelError> {
        let inner = &*self.inner;
        let text = request.output_schema.and_then(|schema| {
            self.native_output_for(schema).then(|| TextConfig {
                format: json!({
                    "type": "json_schema",
                    "name": schema.wire_name(),
                    "schema": to_strict(schema.schema()),
                    "strict": true,
                }),
            })
        });
        let reasoning = self.effort_for(request)?.map(|e| Reasoning {
            effort: e.as_str(),
            summary: "auto",
        });
        let (instructions, input) = to_input(request.messages);
        Ok(ResponsesRequest {
            model: &inner.model,
            instructions,
            input,
            tools: request.tools.iter().map(FunctionTool::from_def).collect(),
            stream: true,
            store: false,
            max_output_tokens: request.max_tokens,
            temperature: request.temperature,
            reasoning,
            text,
            prompt_cache_key: self.cache_key(request),
        })
    }

    fn cache_key<'a>(&'a self, request: &ModelRequest<'a>) -> Option<&'a str> {
        let inner = &*self.inner;
        request
            .prompt_cache
            .and_then(|c| c.key.as_deref())
            .or(inner.prompt_cache_key.as_deref())
            .filter(|_| inner.capabilities.prompt_caching)
    }
}

impl OpenAiBuilder {
    loomflow_model::connection_setters!(
        base_url: "The base URL, up to and including `/v1`.",
        timeout: "The whole-request timeout (default 600 s, the official SDK's).",
    );

    /// Speaks the Responses API (`POST /responses`: input items, function
    /// calls by `call_id`, reasoning summaries streamed as thinking,
    /// `store: false`) instead of Chat Completions.
    pub fn responses_api(mut self) -> Self {
        self.api = Api::Responses;
        self
    }

    /// Talks to `gateway` instead of OpenAI: its base URL, key variable and
    /// capabilities.
    pub fn gateway(mut self, gateway: Gateway) -> Self {
        self.gateway = gateway;
        self
    }

    /// The default effort for the reasoning families, sent as
    /// `reasoning_effort` clamped to the levels the family accepts (a
    /// request's own effort wins).
    pub fn effort(mut self, effort: Effort) -> Self {
        self.effort = Some(effort);
        self
    }

    /// `prompt_cache_key`: requests sharing it are routed to the same cache
    /// (a request's [`PromptCache::key`](loomflow_model::PromptCache) wins).
    pub fn prompt_cache_key(mut self, key: impl Into<String>) -> Self {
        self.prompt_cache_key = Some(key.into());
        self
    }

    /// Prices for this model, overriding the built-in table (negotiated
    /// rates, models the table does not know).
    pub fn price(mut self, rates: Rates) -> Self {
        self.rates = Some(rates);
        self
    }

    /// Overrides the gateway's capability table for this model.
    pub fn capabilities(mut self, capabilities: ModelCapabilities) -> Self {
        self.capabilities = Some(capabilities);
        self
    }

    /// Resolves the key and base URL and builds the model. A missing key is
    /// a [`ConfigError`] that names the variable to set.
    pub fn build(self) -> Result<OpenAiModel, ConfigError> {
        let spec = self.gateway.spec();
        let endpoint = Endpoint::new(spec.label, spec.key_var, spec.base_url_var, spec.base_url);
        let (api_key, base_url) = endpoint.resolve(
            &self.model,
            self.api_key,
            self.base_url,
            self.secrets.as_deref(),
        )?;
        let client = client_or_default(self.client)?;
        let capabilities = self.capabilities.unwrap_or(spec.capabilities);
        Ok(OpenAiModel {
            inner: Arc::new(Inner {
                url: match self.api {
                    Api::ChatCompletions => format!("{base_url}/chat/completions"),
                    Api::Responses => format!("{base_url}/responses"),
                },
                api: self.api,
                reasoning: is_reasoning_family(&self.model),
                effort_levels: effort_levels(&self.model),
                model: Arc::from(self.model),
                base_url,
                api_key,
                gateway: self.gateway,
                capabilities,
                effort: self.effort,
                prompt_cache_key: self.prompt_cache_key,
                rates: self.rates,
                timeout: self.timeout,
                client,
            }),
        })
    }
}

#[async_trait]
impl Model for OpenAiModel {
    fn name(&self) -> &str {
        &self.inner.model
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn capabilities(&self) -> ModelCapabilities {
        self.inner.capabilities
    }

    fn native_output_for(&self, schema: &OutputSchema) -> bool {
        self.inner.capabilities.native_structured_output && strict_compatible(schema.schema())
    }

    async fn stream(&self, request: ModelRequest<'_>) -> Result<ChunkStream, ModelError> {
        let inner = &*self.inner;
        let body = match inner.api {
            Api::ChatCompletions => serde_json::to_vec(&self.body(&request)?),
            Api::Responses => serde_json::to_vec(&self.responses_body(&request)?),
        }
        .map_err(|e| ModelError::other(format!("could not encode the request: {e}")))?;
        let mut http = inner
            .client
            .post(&inner.url)
            .timeout(inner.timeout)
            .header("content-type", "application/json")
            .header("accept", "text/event-stream")
            .body(body);
        if let Some(key) = &inner.api_key {
            http = http.bearer_auth(key);
        }
        let body = open_stream(http, &inner.base_url).await?;
        let model = inner.model.clone();
        Ok(match inner.api {
            Api::ChatCompletions => Box::pin(chat_stream(body, model, inner.rates)),
            Api::Responses => Box::pin(responses_stream(body, model, inner.rates)),
        })
    }

    /// On the Responses API at OpenAI: the provider's count
    /// (`POST /responses/input_tokens`, the request as it would be sent).
    /// Otherwise the model's tiktoken encoding with Chat Completions framing
    /// (feature `tiktoken`, on by default), else the `chars / 4` estimate
    /// (gateway models whose tokenizer is not OpenAI's).
    async fn count_tokens(&self, request: ModelRequest<'_>) -> Result<TokenCount, ModelError> {
        let inner = &*self.inner;
        if inner.api == Api::Responses && inner.gateway == Gateway::OpenAi {
            let body =
                serde_json::to_vec(&InputTokensRequest::from(self.responses_body(&request)?))
                    .map_err(|e| ModelError::other(format!("could not encode the request: {e}")))?;
            let mut http = inner
                .client
                .post(format!("{}/responses/input_tokens", inner.base_url))
                .timeout(inner.timeout)
                .header("content-type", "application/json")
                .body(body);
            if let Some(key) = &inner.api_key {
                http = http.bearer_auth(key);
            }
            let count: InputTokens =
                receive_json(http, &inner.base_url, "the input-token count").await?;
            return Ok(TokenCount::new(count.input_tokens, CountMethod::Provider));
        }
        Ok(with_tokenizer(&inner.model, &request).unwrap_or_else(|| estimate(&request)))
    }
}
