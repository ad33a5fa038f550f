//! [`GenaiModel`]: a long-tail provider behind the [`Model`] port, over the
//! genai client.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use genai::chat::{ChatOptions, ChatRequest, ChatResponseFormat, JsonSpec, ReasoningEffort};
use genai::resolver::{AuthData, Endpoint as GenaiEndpoint};
use genai::{ModelIden, ServiceTarget};
use loomflow_model::effort::effort_unsupported;
use loomflow_model::model::{ChunkStream, ModelCapabilities, ModelRequest};
use loomflow_model::pricing::Rates;
use loomflow_model::secrets::{Endpoint, Secrets};
use loomflow_model::{ConfigError, Effort, Model, ModelError};

use crate::convert::{to_genai_messages, to_genai_tools};
use crate::route::{self, Route};
use crate::stream::{classify, events};

struct Inner {
    /// The model string as given (`gemini/gemini-2.5-flash`).
    name: Arc<str>,
    /// The provider's own id (`gemini-2.5-flash`).
    provider_model: Arc<str>,
    route: &'static Route,
    capabilities: ModelCapabilities,
    effort: Option<Effort>,
    rates: Option<Rates>,
    client: genai::Client,
}

/// A model from the long tail (Gemini, Vertex AI, AWS Bedrock, Mistral,
/// Cohere, Groq, Together AI, Ollama, Azure OpenAI), named by the
/// reference's model strings and spoken through genai's adapter for the
/// provider's own protocol.
///
/// Streams text, reasoning and tool calls (several per turn); keeps
/// Gemini's thought signatures on the assistant message and sends them back
/// with the next turn's calls; native structured output (a response schema)
/// on Gemini, the prompt path elsewhere; [`Effort`] as Gemini's thinking
/// budget; usage with cached tokens, priced from the built-in table. HTTP
/// and in-stream failures come back as classified [`ModelError`]s, so
/// [`Retrying`](loomflow_model::model::retry::Retrying) and
/// [`Fallback`](loomflow_model::model::fallback::Fallback) behave as with the
/// first-party adapters.
///
/// The key comes from [`api_key`](GenaiBuilder::api_key), else the
/// [`Secrets`] store, else the provider's variable (`GEMINI_API_KEY`,
/// `MISTRAL_API_KEY`, …); the base URL from
/// [`base_url`](GenaiBuilder::base_url), else the store or environment
/// (`GEMINI_BASE_URL`, …), else the provider's public endpoint.
///
/// ```
/// use loomflow_genai::GenaiModel;
/// use loomflow_model::Model;
///
/// let model = GenaiModel::builder("gemini/gemini-2.5-flash")
///     .api_key("test-key")
///     .build()
///     .unwrap();
/// assert_eq!(model.name(), "gemini/gemini-2.5-flash");
/// assert!(model.capabilities().native_structured_output);
///
/// let err = GenaiModel::builder("replicate/meta/llama-3").build().unwrap_err();
/// assert!(err.to_string().contains("litellm/"), "{err}");
/// ```
#[derive(Clone)]
pub struct GenaiModel {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GenaiModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenaiModel")
            .field("model", &self.inner.name)
            .field("provider", &self.inner.route.provider)
            .finish_non_exhaustive()
    }
}

/// Builds a [`GenaiModel`].
#[must_use]
pub struct GenaiBuilder {
    model: String,
    api_key: Option<String>,
    base_url: Option<String>,
    secrets: Option<Arc<dyn Secrets>>,
    effort: Option<Effort>,
    rates: Option<Rates>,
    timeout: Duration,
    client: Option<reqwest::Client>,
}

impl GenaiModel {
    /// A builder for `model`, a reference model string (`gemini/…`,
    /// `mistral-…`, `command-…`, `bedrock/…`, `vertex_ai/…`,
    /// `together_ai/…`, `groq/…`, `ollama/…`, `azure/…`).
    pub fn builder(model: impl Into<String>) -> GenaiBuilder {
        GenaiBuilder {
            model: model.into(),
            api_key: None,
            base_url: None,
            secrets: None,
            effort: None,
            rates: None,
            timeout: Duration::from_secs(600),
            client: None,
        }
    }

    /// `model` with its key and base URL from the environment.
    pub fn new(model: impl Into<String>) -> Result<Self, ConfigError> {
        Self::builder(model).build()
    }

    /// The provider's name (`"Gemini"`).
    pub fn provider(&self) -> &'static str {
        self.inner.route.provider
    }

    fn options(&self, request: &ModelRequest<'_>) -> Result<ChatOptions, ModelError> {
        let inner = &*self.inner;
        let mut options = ChatOptions::default()
            .with_capture_usage(true)
            .with_capture_tool_calls(true);
        if let Some(t) = request.temperature {
            options = options.with_temperature(f64::from(t));
        }
        if let Some(max) = request.max_tokens {
            options = options.with_max_tokens(max);
        }
        if let Some(schema) = request
            .output_schema
            .filter(|_| inner.capabilities.native_structured_output)
        {
            options = options.with_response_format(ChatResponseFormat::JsonSpec(JsonSpec::new(
                schema.wire_name(),
                schema.schema().clone(),
            )));
        }
        if let Some(effort) = request.effort.or(inner.effort) {
            if inner.capabilities.effort {
                options = options.with_reasoning_effort(reasoning_effort(effort));
            } else {
                effort_unsupported(
                    &inner.name,
                    effort,
                    request.strict_effort,
                    "this provider's adapter has no effort setting",
                )?;
            }
        }
        Ok(options)
    }
}

/// genai's levels: `minimal` is only a legacy GPT-5 level there, so it
/// goes as `low`.
fn reasoning_effort(effort: Effort) -> ReasoningEffort {
    match effort {
        Effort::Minimal | Effort::Low => ReasoningEffort::Low,
        Effort::Medium => ReasoningEffort::Medium,
        Effort::High => ReasoningEffort::High,
        Effort::Xhigh => ReasoningEffort::XHigh,
        Effort::Max => ReasoningEffort::Max,
    }
}

impl GenaiBuilder {
    loomflow_model::connection_setters!(
        base_url: "The base URL (else the store or the provider's `…_BASE_URL` variable, else the public endpoint).",
        timeout: "The whole-request timeout (default 600 s). Ignored when a [`client`](Self::client) is given: set it on that client.",
    );

    /// The default effort, where the provider has one (a request's own
    /// effort wins).
    pub fn effort(mut self, effort: Effort) -> Self {
        self.effort = Some(effort);
        self
    }

    /// Prices for this model, overriding the built-in table.
    pub fn price(mut self, rates: Rates) -> Self {
        self.rates = Some(rates);
        self
    }

    /// Resolves the route, key and base URL and builds the model. An
    /// unknown model string, a missing key or base URL is a
    /// [`ConfigError`] that says what to set.
    pub fn build(self) -> Result<GenaiModel, ConfigError> {
        if let Some((prefix, instead)) = route::UNSUPPORTED
            .iter()
            .find(|(p, _)| self.model.starts_with(p))
        {
            return Err(ConfigError::invalid(
                "model",
                format!(
                    "{:?}: {prefix} models are not supported: {instead}",
                    self.model
                ),
            ));
        }
        let Some((route, provider_model)) = route::find(&self.model) else {
            let prefixes: Vec<&str> = route::ROUTES.iter().map(|r| r.prefix).collect();
            return Err(ConfigError::invalid(
                "model",
                format!(
                    "{:?} names no long-tail provider: use one of the prefixes {} followed by the provider's model id",
                    self.model,
                    prefixes.join(", ")
                ),
            ));
        };
        let endpoint = Endpoint::new(route.provider, route.key_var, Some(route.base_url_var), "");
        let secrets = self.secrets.as_deref();
        let key = endpoint.resolve_key(&self.model, self.api_key, secrets)?;
        let base_url = endpoint.resolve_base_url(self.base_url, secrets)?;
        if route.base_url_required && base_url.is_none() {
            return Err(ConfigError::invalid(
                "base url",
                format!(
                    "{} model {:?} needs its resource's endpoint: set {} (e.g. https://<resource>.openai.azure.com/openai/v1) or pass .base_url(...)",
                    route.provider, self.model, route.base_url_var
                ),
            ));
        }

        let http = match self.client {
            Some(c) => c,
            None => reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(30))
                .timeout(self.timeout)
                .build()
                .map_err(|e| ConfigError::invalid("http client", e.to_string()))?,
        };
        // genai joins paths onto the base URL, so it ends with `/`.
        let endpoint = base_url.map(|url| GenaiEndpoint::from_owned(format!("{url}/")));
        let auth = key.map(AuthData::from_single);
        let client = genai::Client::builder()
            .with_reqwest(http)
            .with_service_target_resolver_fn(move |target: ServiceTarget| {
                let ServiceTarget {
                    endpoint: default_endpoint,
                    auth: default_auth,
                    model,
                } = target;
                Ok(ServiceTarget {
                    endpoint: endpoint.clone().unwrap_or(default_endpoint),
                    auth: auth.clone().unwrap_or(default_auth),
                    model,
                })
            })
            .build()
            .map_err(|e| ConfigError::invalid("genai client", e.to_string()))?;

        let mut capabilities = ModelCapabilities::none();
        // Vertex serves Claude too, which takes the prompt path here.
        capabilities.native_structured_output = route.native_output
            && (route.adapter != genai::adapter::AdapterKind::Vertex
                || provider_model.starts_with("gemini"));
        capabilities.effort = route.effort && provider_model.starts_with("gemini");
        Ok(GenaiModel {
            inner: Arc::new(Inner {
                provider_model: Arc::from(provider_model),
                name: Arc::from(self.model.as_str()),
                route,
                capabilities,
                effort: self.effort,
                rates: self.rates,
                client,
            }),
        })
    }
}

#[async_trait]
impl Model for GenaiModel {
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// Hosted providers are remote; a keyless local server (Ollama) is not.
    fn is_remote(&self) -> bool {
        self.inner.route.key_var.is_some()
    }

    fn capabilities(&self) -> ModelCapabilities {
        self.inner.capabilities
    }

    async fn stream(&self, request: ModelRequest<'_>) -> Result<ChunkStream, ModelError> {
        let inner = &*self.inner;
        let options = self.options(&request)?;
        let mut chat = ChatRequest::new(to_genai_messages(request.messages));
        if !request.tools.is_empty() {
            chat = chat.with_tools(to_genai_tools(request.tools));
        }
        let model = ModelIden::new(inner.route.adapter, &*inner.provider_model);
        let response = inner
            .client
            .exec_chat_stream(model, chat, Some(&options))
            .await
            .map_err(classify)?;
        Ok(Box::pin(events(
            response.stream,
            inner.provider_model.clone(),
            inner.rates,
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_and_base_urls_say_what_to_set() {
        let err = GenaiModel::builder("mistral-large-latest")
            .secrets(loomflow_model::secrets::StaticSecrets::from([(
                "UNRELATED",
                "x",
            )]))
            .build();
        // The environment of the test run may hold a key; only check the
        // message when it does not.
        if std::env::var("MISTRAL_API_KEY").is_err() {
            let err = err.unwrap_err().to_string();
            assert!(err.contains("set MISTRAL_API_KEY"), "{err}");
        }
        if std::env::var("AZURE_OPENAI_BASE_URL").is_err() {
            let err = GenaiModel::builder("azure/my-deployment")
                .api_key("k")
                .build()
                .unwrap_err()
                .to_string();
            assert!(err.contains("set AZURE_OPENAI_BASE_URL"), "{err}");
        }
        let err = GenaiModel::builder("gemini/x")
            .api_key("k")
            .base_url("ftp://nope")
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an http(s) URL"), "{err}");
        let err = GenaiModel::builder("llama-3")
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("gemini/"), "{err}");
        // Ollama takes no key, and runs locally.
        let local = GenaiModel::builder("ollama/llama3.2").build().unwrap();
        assert!(!local.is_remote());
    }
}
