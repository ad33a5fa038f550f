//! The Messages API wire format: the request we send (borrowing the
//! transcript where it can) and the stream events we read.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1/messages` body.
#[derive(Serialize)]
pub(crate) struct MessagesRequest<'a> {
    pub model: &'a str,
    pub max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<System<'a>>,
    pub messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
    #[serde(skip_serializing_if = "OutputConfig::is_empty")]
    pub output_config: OutputConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    pub stream: bool,
}

/// `POST /v1/messages/count_tokens` body: what a message request sends
/// that costs input tokens (no output cap, sampling or streaming).
#[derive(Serialize)]
pub(crate) struct CountTokensRequest<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<System<'a>>,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<Thinking>,
    #[serde(skip_serializing_if = "OutputConfig::is_empty")]
    output_config: OutputConfig,
}

impl<'a> From<MessagesRequest<'a>> for CountTokensRequest<'a> {
    fn from(request: MessagesRequest<'a>) -> Self {
        Self {
            model: request.model,
            system: request.system,
            messages: request.messages,
            tools: request.tools,
            tool_choice: request.tool_choice,
            thinking: request.thinking,
            output_config: request.output_config,
        }
    }
}

/// The `count_tokens` reply.
#[derive(Deserialize)]
pub(crate) struct TokensCount {
    pub input_tokens: u64,
}

/// The system prompt: one string, or blocks when caching marks them.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum System<'a> {
    Text(String),
    Blocks(Vec<TextBlock<'a>>),
}

#[derive(Serialize)]
pub(crate) struct TextBlock<'a> {
    pub r#type: &'static str,
    pub text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
}

/// `{"type": "ephemeral"}` or `{"type": "ephemeral", "ttl": "1h"}`.
#[derive(Serialize, Clone, Copy)]
pub(crate) struct CacheControl {
    pub r#type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<&'static str>,
}

#[derive(Serialize)]
pub(crate) struct WireMessage<'a> {
    pub role: &'static str,
    pub content: Vec<ReqBlock<'a>>,
}

/// A content block of a request message.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ReqBlock<'a> {
    Text {
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    Image {
        source: ImageSource<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
}

impl ReqBlock<'_> {
    /// Marks the block as a cache breakpoint; thinking blocks cannot be
    /// marked (false).
    pub(crate) fn mark(&mut self, cache: CacheControl) -> bool {
        match self {
            ReqBlock::Text { cache_control, .. }
            | ReqBlock::Image { cache_control, .. }
            | ReqBlock::ToolUse { cache_control, .. }
            | ReqBlock::ToolResult { cache_control, .. } => {
                *cache_control = Some(cache);
                true
            }
            ReqBlock::Thinking { .. } | ReqBlock::RedactedThinking { .. } => false,
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ImageSource<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

#[derive(Serialize)]
pub(crate) struct WireTool<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub description: &'a str,
    pub input_schema: Cow<'a, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ToolChoice<'a> {
    Any,
    Tool { name: &'a str },
}

#[derive(Serialize, Clone, Copy)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Thinking {
    Adaptive,
    Enabled { budget_tokens: u32 },
}

#[derive(Serialize, Default)]
pub(crate) struct OutputConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effort: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<Value>,
}

impl OutputConfig {
    fn is_empty(&self) -> bool {
        self.effort.is_none() && self.format.is_none()
    }
}

/// One stream event's `data`, read flat: every event type's fields are
/// optional here, so parsing needs no buffering of the tagged content and
/// borrows every string from the event (no allocation per event).
#[derive(Deserialize)]
pub(crate) struct Event<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default)]
    pub index: usize,
    /// `message_start`.
    #[serde(default)]
    pub message: Option<StartMessage>,
    /// `content_block_start`.
    #[serde(default, borrow)]
    pub content_block: Option<Block<'a>>,
    /// `content_block_delta` and `message_delta`.
    #[serde(default, borrow)]
    pub delta: Option<Delta<'a>>,
    /// `message_delta`.
    #[serde(default)]
    pub usage: Option<WireUsage>,
}

#[derive(Deserialize)]
pub(crate) struct StartMessage {
    #[serde(default)]
    pub usage: Option<WireUsage>,
}

/// A started content block (`text`, `thinking`, `redacted_thinking`,
/// `tool_use`, or a type added later, which is skipped).
#[derive(Deserialize)]
pub(crate) struct Block<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default, borrow)]
    pub text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub thinking: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub data: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub name: Option<Cow<'a, str>>,
}

/// A block delta (`text_delta`, `input_json_delta`, `thinking_delta`,
/// `signature_delta`) or a message delta (`stop_reason`, no `type`).
#[derive(Deserialize)]
pub(crate) struct Delta<'a> {
    /// A type name never holds escapes, so it borrows (an `Option<Cow>`
    /// would copy).
    #[serde(rename = "type", default, borrow)]
    pub kind: Option<&'a str>,
    #[serde(default, borrow)]
    pub text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub partial_json: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub thinking: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub signature: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub stop_reason: Option<Cow<'a, str>>,
}

/// Token counts; `message_delta` repeats them cumulatively.
#[derive(Deserialize, Default, Clone, Copy)]
pub(crate) struct WireUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
}
