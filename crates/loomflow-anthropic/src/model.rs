//! [`AnthropicModel`]: the Messages API adapter.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use loomflow_model::effort::effort_unsupported;
use loomflow_model::http::{client_or_default, open_stream, receive_json};
use loomflow_model::model::{ChunkStream, ModelCapabilities, ModelRequest};
use loomflow_model::pricing::{CacheTtl, Rates, canonical_model_name};
use loomflow_model::secrets::{Endpoint, Secrets};
use loomflow_model::tokens::{CountMethod, TokenCount};
use loomflow_model::{
    ConfigError, ContentPart, Effort, Image, Message, Model, ModelError, OutputSchema, PromptCache,
    Role,
};
use serde_json::{Value, json};

use crate::effort::{Regime, regime, thinking_for};
use crate::schema::{has_json_outputs, json_output_schema};
use crate::stream::{OUTPUT_TOOL, messages_stream};
use crate::wire::{
    CacheControl, CountTokensRequest, ImageSource, MessagesRequest, OutputConfig, ReqBlock, System,
    TextBlock, Thinking, TokensCount, ToolChoice, WireMessage, WireTool,
};

/// The API version every request names.
pub const API_VERSION: &str = "2023-06-01";

/// `max_tokens` when neither the builder nor the request sets one (the
/// Messages API requires it).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// With a thinking budget, `max_tokens` must exceed it; the visible answer
/// keeps at least this much room.
const THINKING_HEADROOM: u32 = 4096;

const ENDPOINT: Endpoint<'static> = Endpoint::new(
    "Anthropic",
    Some("ANTHROPIC_API_KEY"),
    Some("ANTHROPIC_BASE_URL"),
    "https://api.anthropic.com",
);

const OUTPUT_TOOL_DESCRIPTION: &str = "Emit the final response. The arguments must be a JSON object matching the schema; this is your only way to return a result for this turn.";

struct Inner {
    model: Arc<str>,
    regime: Option<Regime>,
    json_outputs: bool,
    base_url: String,
    api_key: String,
    max_tokens: u32,
    effort: Option<Effort>,
    prompt_cache: Option<PromptCache>,
    rates: Option<Rates>,
    timeout: Duration,
    client: reqwest::Client,
    url: String,
    count_url: String,
}

/// A Claude model over the Messages API.
///
/// Streams text, thinking and tool-use blocks (several tool calls per turn);
/// keeps each thinking block's signature so the next turn replays it;
/// structured output through JSON outputs (`output_config.format`) on the
/// models that have it, else a forced synthetic `__output__` tool whose input
/// comes back as the answer text; [`Effort`] as adaptive thinking with
/// `output_config.effort` or a thinking budget, per model; [`PromptCache`] as
/// up to four `cache_control` breakpoints (message tail, last tool, last
/// system blocks). Usage reports cache reads and writes, priced with the
/// cache lifetime.
///
/// The key comes from [`api_key`](AnthropicBuilder::api_key), else the
/// [`Secrets`] store, else `ANTHROPIC_API_KEY`; the base URL from
/// [`base_url`](AnthropicBuilder::base_url), else `ANTHROPIC_BASE_URL`, else
/// `https://api.anthropic.com`. Keys never appear in `Debug` output.
///
/// ```
/// use loomflow_anthropic::AnthropicModel;
/// use loomflow_model::Model;
///
/// let model = AnthropicModel::builder("claude-haiku-4-5")
///     .api_key("sk-ant-test")
///     .build()
///     .unwrap();
/// assert_eq!(model.name(), "claude-haiku-4-5");
/// assert!(model.capabilities().prompt_caching);
/// assert!(!format!("{model:?}").contains("sk-ant-test"));
/// ```
#[derive(Clone)]
pub struct AnthropicModel {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AnthropicModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnthropicModel")
            .field("model", &self.inner.model)
            .field("base_url", &self.inner.base_url)
            .field("api_key", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// Builds an [`AnthropicModel`].
#[must_use]
pub struct AnthropicBuilder {
    model: String,
    api_key: Option<String>,
    base_url: Option<String>,
    secrets: Option<Arc<dyn Secrets>>,
    max_tokens: u32,
    effort: Option<Effort>,
    prompt_cache: Option<PromptCache>,
    rates: Option<Rates>,
    timeout: Duration,
    client: Option<reqwest::Client>,
}

impl AnthropicModel {
    /// A POST to `url` with the key, version and content type set.
    fn post(&self, url: &str) -> reqwest::RequestBuilder {
        let inner = &*self.inner;
        inner
            .client
            .post(url)
            .timeout(inner.timeout)
            .header("x-api-key", &inner.api_key)
            .header("anthropic-version", API_VERSION)
            .header("content-type", "application/json")
    }

    /// A builder for `model`.
    pub fn builder(model: impl Into<String>) -> AnthropicBuilder {
        AnthropicBuilder {
            model: model.into(),
            api_key: None,
            base_url: None,
            secrets: None,
            max_tokens: DEFAULT_MAX_TOKENS,
            effort: None,
            prompt_cache: None,
            rates: None,
            timeout: Duration::from_secs(600),
            client: None,
        }
    }

    /// `model` with the key and base URL from the environment.
    pub fn new(model: impl Into<String>) -> Result<Self, ConfigError> {
        Self::builder(model).build()
    }

    fn body<'a>(&'a self, request: &ModelRequest<'a>) -> Result<MessagesRequest<'a>, ModelError> {
        let inner = &*self.inner;

        let mut output_config = OutputConfig::default();
        let thinking = match request.effort.or(inner.effort) {
            None => None,
            Some(effort) => match inner.regime {
                Some(regime) => {
                    let (thinking, level) = thinking_for(regime, effort);
                    output_config.effort = level;
                    Some(thinking)
                }
                None => {
                    effort_unsupported(
                        &inner.model,
                        effort,
                        request.strict_effort,
                        "this Claude model has neither effort nor extended thinking",
                    )?;
                    None
                }
            },
        };
        let mut max_tokens = request.max_tokens.unwrap_or(inner.max_tokens);
        if let Some(Thinking::Enabled { budget_tokens }) = thinking {
            max_tokens = max_tokens.max(budget_tokens + THINKING_HEADROOM);
        }

        let (system_parts, mut messages) = to_wire_messages(request.messages, thinking.is_some());
        let mut tools: Vec<WireTool<'a>> = request
            .tools
            .iter()
            .map(|t| WireTool {
                name: &t.name,
                description: &t.description,
                input_schema: std::borrow::Cow::Borrowed(&t.input_schema),
                cache_control: None,
            })
            .collect();

        let mut tool_choice = None;
        if let Some(schema) = request.output_schema {
            match json_output_schema(schema.schema()).filter(|_| inner.json_outputs) {
                Some(subset) => {
                    output_config.format = Some(json!({"type": "json_schema", "schema": subset}));
                }
                None => {
                    // A forced tool cannot be combined with thinking: then the
                    // model is only offered it.
                    tool_choice = match (thinking.is_some(), tools.is_empty()) {
                        (true, _) => None,
                        (false, true) => Some(ToolChoice::Tool { name: OUTPUT_TOOL }),
                        (false, false) => Some(ToolChoice::Any),
                    };
                    tools.push(WireTool {
                        name: OUTPUT_TOOL,
                        description: OUTPUT_TOOL_DESCRIPTION,
                        input_schema: std::borrow::Cow::Borrowed(schema.schema()),
                        cache_control: None,
                    });
                }
            }
        }

        let cache = request.prompt_cache.or(inner.prompt_cache.as_ref());
        let system = match cache {
            Some(cache) => {
                let control = cache_control(cache);
                let tail = mark_tail(&mut messages, control);
                if let Some(last) = tools.last_mut() {
                    last.cache_control = Some(control);
                }
                let reserved = usize::from(!tools.is_empty()) + usize::from(tail);
                let marked = 3.min(4 - reserved).min(system_parts.len());
                let first_marked = system_parts.len() - marked;
                (!system_parts.is_empty()).then(|| {
                    System::Blocks(
                        system_parts
                            .iter()
                            .enumerate()
                            .map(|(i, text)| TextBlock {
                                r#type: "text",
                                text,
                                cache_control: (i >= first_marked).then_some(control),
                            })
                            .collect(),
                    )
                })
            }
            None => (!system_parts.is_empty()).then(|| System::Text(system_parts.join("\n\n"))),
        };

        Ok(MessagesRequest {
            model: &inner.model,
            max_tokens,
            system,
            messages,
            tools,
            tool_choice,
            thinking,
            output_config,
            // Thinking only runs at the default temperature.
            temperature: request.temperature.filter(|_| thinking.is_none()),
            stream: true,
        })
    }
}

fn cache_control(cache: &PromptCache) -> CacheControl {
    CacheControl {
        r#type: "ephemeral",
        ttl: match cache.ttl {
            CacheTtl::OneHour => Some("1h"),
            _ => None,
        },
    }
}

/// Marks the last block of the final message, caching the whole
/// conversation prefix. False when that block cannot carry a marker.
fn mark_tail(messages: &mut [WireMessage<'_>], control: CacheControl) -> bool {
    messages
        .last_mut()
        .and_then(|m| m.content.last_mut())
        .is_some_and(|b| b.mark(control))
}

/// The system prompt's parts and the conversation in the API's shape:
/// tool results travel in user messages, consecutive messages of one role
/// merge, reasoning blocks are replayed only when `replay` (thinking is on
/// for this request; the API rejects them otherwise).
fn to_wire_messages(messages: &[Message], replay: bool) -> (Vec<&str>, Vec<WireMessage<'_>>) {
    let mut system = Vec::new();
    let mut out: Vec<WireMessage<'_>> = Vec::with_capacity(messages.len());
    for m in messages {
        match m.role {
            Role::System => system.extend(m.content.iter().filter_map(|p| match p {
                ContentPart::Text { text } if !text.is_empty() => Some(text.as_str()),
                _ => None,
            })),
            Role::User => {
                let blocks = m.content.iter().filter_map(user_block).collect();
                push(&mut out, "user", blocks);
            }
            Role::Assistant => {
                let mut blocks = Vec::with_capacity(m.content.len() + m.tool_calls.len());
                for part in &m.content {
                    match part {
                        ContentPart::Thinking {
                            text,
                            signature: Some(signature),
                        } if replay => blocks.push(ReqBlock::Thinking {
                            thinking: text,
                            signature,
                        }),
                        ContentPart::RedactedThinking { data } if replay => {
                            blocks.push(ReqBlock::RedactedThinking { data });
                        }
                        ContentPart::Text { text } if !text.is_empty() => {
                            blocks.push(ReqBlock::Text {
                                text,
                                cache_control: None,
                            });
                        }
                        _ => {}
                    }
                }
                blocks.extend(m.tool_calls.iter().map(|c| ReqBlock::ToolUse {
                    id: &c.id,
                    name: &c.tool,
                    input: &c.args,
                    cache_control: None,
                }));
                push(&mut out, "assistant", blocks);
            }
            Role::Tool => {
                let text = m
                    .content
                    .iter()
                    .find_map(|p| match p {
                        ContentPart::Text { text } => Some(text.as_str()),
                        _ => None,
                    })
                    .unwrap_or_default();
                let block = ReqBlock::ToolResult {
                    tool_use_id: m.tool_call_id.as_deref().unwrap_or_default(),
                    content: text,
                    cache_control: None,
                };
                push(&mut out, "user", vec![block]);
            }
        }
    }
    (system, out)
}

/// Appends `blocks` to the last message when it has the same role (the API
/// wants roles to alternate), else as a new message.
fn push<'a>(out: &mut Vec<WireMessage<'a>>, role: &'static str, blocks: Vec<ReqBlock<'a>>) {
    if blocks.is_empty() {
        return;
    }
    match out.last_mut() {
        Some(last) if last.role == role => last.content.extend(blocks),
        _ => out.push(WireMessage {
            role,
            content: blocks,
        }),
    }
}

fn user_block(part: &ContentPart) -> Option<ReqBlock<'_>> {
    match part {
        ContentPart::Text { text } if !text.is_empty() => Some(ReqBlock::Text {
            text,
            cache_control: None,
        }),
        ContentPart::Image { image } => Some(ReqBlock::Image {
            source: match image {
                Image::Base64 { media_type, data } => ImageSource::Base64 { media_type, data },
                Image::Url { url } => match parse_data_url(url) {
                    Some((media_type, data)) => ImageSource::Base64 { media_type, data },
                    None => ImageSource::Url { url },
                },
            },
            cache_control: None,
        }),
        _ => None,
    }
}

/// `data:<type>;base64,<data>` → (`type`, `data`).
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}

impl AnthropicBuilder {
    loomflow_model::connection_setters!(
        base_url: "The base URL, without `/v1` (default `https://api.anthropic.com`).",
        timeout: "The whole-request timeout (default 600 s, the official SDK's).",
    );

    /// `max_tokens` when a request sets none (default 4096).
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    /// The default effort (a request's own effort wins).
    pub fn effort(mut self, effort: Effort) -> Self {
        self.effort = Some(effort);
        self
    }

    /// Prompt caching for every request (a request's own setting wins).
    pub fn prompt_caching(mut self, cache: PromptCache) -> Self {
        self.prompt_cache = Some(cache);
        self
    }

    /// Prices for this model, overriding the built-in table.
    pub fn price(mut self, rates: Rates) -> Self {
        self.rates = Some(rates);
        self
    }

    /// Resolves the key and base URL and builds the model. A missing key is
    /// a [`ConfigError`] that names `ANTHROPIC_API_KEY`.
    pub fn build(self) -> Result<AnthropicModel, ConfigError> {
        let (api_key, base_url) = ENDPOINT.resolve(
            &self.model,
            self.api_key,
            self.base_url,
            self.secrets.as_deref(),
        )?;
        let client = client_or_default(self.client)?;
        let canonical = canonical_model_name(&self.model).to_ascii_lowercase();
        Ok(AnthropicModel {
            inner: Arc::new(Inner {
                regime: regime(&canonical),
                json_outputs: has_json_outputs(&canonical),
                url: format!("{base_url}/v1/messages"),
                count_url: format!("{base_url}/v1/messages/count_tokens"),
                model: Arc::from(self.model),
                base_url,
                api_key: api_key.unwrap_or_default(),
                max_tokens: self.max_tokens,
                effort: self.effort,
                prompt_cache: self.prompt_cache,
                rates: self.rates,
                timeout: self.timeout,
                client,
            }),
        })
    }
}

/// Whether `schema` fits a tool's `input_schema` (an object at the root; a
/// union at the root goes the prompt path).
fn object_rooted(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("object")
        && schema.get("anyOf").is_none()
        && schema.get("oneOf").is_none()
}

#[async_trait]
impl Model for AnthropicModel {
    fn name(&self) -> &str {
        &self.inner.model
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn capabilities(&self) -> ModelCapabilities {
        let mut caps = ModelCapabilities::none().with_native_structured_output(true);
        caps.prompt_caching = true;
        caps.effort = self.inner.regime.is_some();
        caps
    }

    fn native_output_for(&self, schema: &OutputSchema) -> bool {
        object_rooted(schema.schema())
    }

    async fn stream(&self, request: ModelRequest<'_>) -> Result<ChunkStream, ModelError> {
        let inner = &*self.inner;
        let body = encode(&self.body(&request)?)?;
        let http = self
            .post(&inner.url)
            .header("accept", "text/event-stream")
            .body(body);
        let body = open_stream(http, &inner.base_url).await?;
        let ttl = request
            .prompt_cache
            .or(inner.prompt_cache.as_ref())
            .map_or(CacheTtl::FiveMinutes, |c| c.ttl);
        Ok(Box::pin(messages_stream(
            body,
            inner.model.clone(),
            inner.rates,
            ttl,
        )))
    }

    /// The provider's count (`POST /v1/messages/count_tokens`) of the
    /// request as it would be sent: system, tools, thinking and the output
    /// tool or format included.
    async fn count_tokens(&self, request: ModelRequest<'_>) -> Result<TokenCount, ModelError> {
        let inner = &*self.inner;
        let body = encode(&CountTokensRequest::from(self.body(&request)?))?;
        let http = self.post(&inner.count_url).body(body);
        let count: TokensCount = receive_json(http, &inner.base_url, "the token count").await?;
        Ok(TokenCount::new(count.input_tokens, CountMethod::Provider))
    }
}

fn encode(body: &impl serde::Serialize) -> Result<Vec<u8>, ModelError> {
    serde_json::to_vec(body)
        .map_err(|e| ModelError::other(format!("could not encode the request: {e}")))
}
