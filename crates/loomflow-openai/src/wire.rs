//! The Chat Completions wire format: the request we send (borrowing the
//! transcript, never copying it) and the stream chunks we read.

use std::borrow::Cow;

use loomflow_model::{ContentPart, Image, Message, Role, ToolDef};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /chat/completions` body.
#[derive(Serialize)]
pub(crate) struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<WireTool<'a>>,
    pub stream: bool,
    pub stream_options: StreamOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<&'a str>,
}

#[derive(Serialize)]
pub(crate) struct StreamOptions {
    pub include_usage: bool,
}

#[derive(Serialize)]
pub(crate) struct WireMessage<'a> {
    role: &'static str,
    content: WireContent<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum WireContent<'a> {
    Null(()),
    Text(&'a str),
    Parts(Vec<WirePart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WirePart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: ImageUrl<'a> },
}

#[derive(Serialize)]
struct ImageUrl<'a> {
    url: Cow<'a, str>,
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    r#type: &'static str,
    function: WireFunctionCall<'a>,
}

#[derive(Serialize)]
struct WireFunctionCall<'a> {
    name: &'a str,
    /// A JSON string, as the API wants.
    arguments: String,
}

#[derive(Serialize)]
pub(crate) struct WireTool<'a> {
    r#type: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

impl<'a> WireMessage<'a> {
    pub(crate) fn from_message(m: &'a Message) -> Self {
        let role = match m.role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        };
        // Reasoning parts are Anthropic's to replay; Chat Completions
        // takes only text and images back.
        let mut visible = m
            .content
            .iter()
            .filter(|p| matches!(p, ContentPart::Text { .. } | ContentPart::Image { .. }));
        let content = match (visible.next(), visible.next()) {
            (None, _) if m.role == Role::Assistant => WireContent::Null(()),
            (None, _) => WireContent::Text(""),
            (Some(ContentPart::Text { text }), None) => WireContent::Text(text),
            _ => WireContent::Parts(m.content.iter().filter_map(WirePart::from_part).collect()),
        };
        Self {
            role,
            content,
            tool_calls: m
                .tool_calls
                .iter()
                .map(|c| WireToolCall {
                    id: &c.id,
                    r#type: "function",
                    function: WireFunctionCall {
                        name: &c.tool,
                        arguments: c.args.to_string(),
                    },
                })
                .collect(),
            tool_call_id: m.tool_call_id.as_deref(),
        }
    }
}

impl<'a> WirePart<'a> {
    fn from_part(p: &'a ContentPart) -> Option<Self> {
        Some(match p {
            ContentPart::Text { text } => WirePart::Text { text },
            ContentPart::Image { image } => WirePart::ImageUrl {
                image_url: ImageUrl {
                    url: match image {
                        Image::Url { url } => Cow::Borrowed(url),
                        Image::Base64 { media_type, data } => {
                            Cow::Owned(format!("data:{media_type};base64,{data}"))
                        }
                    },
                },
            },
            ContentPart::Thinking { .. } | ContentPart::RedactedThinking { .. } => return None,
        })
    }
}

impl<'a> WireTool<'a> {
    pub(crate) fn from_def(d: &'a ToolDef) -> Self {
        Self {
            r#type: "function",
            function: WireFunction {
                name: &d.name,
                description: &d.description,
                parameters: &d.input_schema,
            },
        }
    }
}

/// One `chat.completion.chunk` (or an in-stream `{"error": …}`).
#[derive(Deserialize)]
pub(crate) struct Chunk<'a> {
    #[serde(default, borrow)]
    pub choices: Vec<Choice<'a>>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
    #[serde(default)]
    pub error: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
pub(crate) struct Choice<'a> {
    #[serde(default, borrow)]
    pub delta: Delta<'a>,
    #[serde(default, borrow)]
    pub finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
pub(crate) struct Delta<'a> {
    #[serde(default, borrow)]
    pub content: Option<Cow<'a, str>>,
    /// DeepSeek and some gateways stream reasoning here.
    #[serde(default, borrow)]
    pub reasoning_content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub refusal: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub tool_calls: Option<Vec<DeltaToolCall<'a>>>,
}

#[derive(Deserialize)]
pub(crate) struct DeltaToolCall<'a> {
    #[serde(default)]
    pub index: usize,
    #[serde(default, borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub function: Option<DeltaFunction<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct DeltaFunction<'a> {
    #[serde(default, borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub arguments: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default, Clone, Copy)]
pub(crate) struct WireUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize, Default, Clone, Copy)]
pub(crate) struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: u64,
    /// Tokens written to the prompt cache (billed on some families).
    #[serde(default)]
    pub cache_write_tokens: u64,
}
