//! The Responses API (`POST /responses`), the second OpenAI wire format: the
//! request (input items borrowed from the transcript) and the streamed
//! events (`response.output_text.delta`, `response.function_call_arguments.*`,
//! `response.output_item.done`, reasoning summaries, `response.completed`).
//!
//! Reasoning items stream as thinking text; they are not replayed (requests
//! are `store: false` and function calls go back by `call_id` only, which
//! the API accepts without the reasoning item).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use loomflow_model::http::HttpBody;
use loomflow_model::model::FinishReason;
use loomflow_model::pricing::{Rates, cost_usd};
use loomflow_model::sse::{
    ChunkResult, ReplyProtocol, SseChunkStream, SseEvent, Step, malformed_event,
};
use loomflow_model::{
    ContentPart, Image, Message, ModelChunk, ModelError, Role, ToolCall, ToolDef, Usage,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /responses` body.
#[derive(Serialize)]
pub(crate) struct ResponsesRequest<'a> {
    pub model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    pub input: Vec<InputItem<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<FunctionTool<'a>>,
    pub stream: bool,
    pub store: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Reasoning>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<TextConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<&'a str>,
}

/// `POST /responses/input_tokens` body: what a response request sends that
/// costs input tokens (no sampling, output or storage settings).
#[derive(Serialize)]
pub(crate) struct InputTokensRequest<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instructions: Option<String>,
    input: Vec<InputItem<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<FunctionTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<Reasoning>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<TextConfig>,
}

impl<'a> From<ResponsesRequest<'a>> for InputTokensRequest<'a> {
    fn from(request: ResponsesRequest<'a>) -> Self {
        Self {
            model: request.model,
            instructions: request.instructions,
            input: request.input,
            tools: request.tools,
            reasoning: request.reasoning,
            text: request.text,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct Reasoning {
    pub effort: &'static str,
    pub summary: &'static str,
}

#[derive(Serialize)]
pub(crate) struct TextConfig {
    pub format: Value,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum InputItem<'a> {
    Message {
        role: &'static str,
        content: Vec<InputPart<'a>>,
    },
    FunctionCall {
        call_id: &'a str,
        name: &'a str,
        arguments: String,
    },
    FunctionCallOutput {
        call_id: &'a str,
        output: &'a str,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum InputPart<'a> {
    InputText {
        text: &'a str,
    },
    InputImage {
        image_url: Cow<'a, str>,
        detail: &'static str,
    },
    OutputText {
        text: &'a str,
    },
}

#[derive(Serialize)]
pub(crate) struct FunctionTool<'a> {
    r#type: &'static str,
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    parameters: &'a Value,
    strict: bool,
}

impl<'a> FunctionTool<'a> {
    pub(crate) fn from_def(d: &'a ToolDef) -> Self {
        Self {
            r#type: "function",
            name: &d.name,
            description: &d.description,
            parameters: &d.input_schema,
            strict: false,
        }
    }
}

/// The system messages (as `instructions`) and the input items.
pub(crate) fn to_input(messages: &[Message]) -> (Option<String>, Vec<InputItem<'_>>) {
    let mut instructions: Option<String> = None;
    let mut items = Vec::with_capacity(messages.len());
    for m in messages {
        let texts = || {
            m.content.iter().filter_map(|p| match p {
                ContentPart::Text { text } => Some(text.as_str()),
                _ => None,
            })
        };
        match m.role {
            Role::System => {
                for text in texts() {
                    match &mut instructions {
                        Some(all) => {
                            all.push_str("\n\n");
                            all.push_str(text);
                        }
                        None => instructions = Some(text.to_owned()),
                    }
                }
            }
            Role::User => {
                let content: Vec<InputPart<'_>> = m
                    .content
                    .iter()
                    .filter_map(|p| match p {
                        ContentPart::Text { text } => Some(InputPart::InputText { text }),
                        ContentPart::Image { image } => Some(InputPart::InputImage {
                            image_url: match image {
                                Image::Url { url } => Cow::Borrowed(url.as_str()),
                                Image::Base64 { media_type, data } => {
                                    Cow::Owned(format!("data:{media_type};base64,{data}"))
                                }
                            },
                            detail: "auto",
                        }),
                        _ => None,
                    })
                    .collect();
                if !content.is_empty() {
                    items.push(InputItem::Message {
                        role: "user",
                        content,
                    });
                }
            }
            Role::Assistant => {
                let content: Vec<InputPart<'_>> = texts()
                    .filter(|t| !t.is_empty())
                    .map(|text| InputPart::OutputText { text })
                    .collect();
                if !content.is_empty() {
                    items.push(InputItem::Message {
                        role: "assistant",
                        content,
                    });
                }
                items.extend(m.tool_calls.iter().map(|c| InputItem::FunctionCall {
                    call_id: &c.id,
                    name: &c.tool,
                    arguments: c.args.to_string(),
                }));
            }
            Role::Tool => items.push(InputItem::FunctionCallOutput {
                call_id: m.tool_call_id.as_deref().unwrap_or_default(),
                output: texts().next().unwrap_or_default(),
            }),
        }
    }
    (instructions, items)
}

/// One streamed event, by `type`.
#[derive(Deserialize)]
#[serde(tag = "type")]
enum Event<'a> {
    #[serde(
        rename = "response.output_text.delta",
        alias = "response.refusal.delta"
    )]
    TextDelta {
        #[serde(borrow)]
        delta: Cow<'a, str>,
    },
    #[serde(
        rename = "response.reasoning_summary_text.delta",
        alias = "response.reasoning_text.delta"
    )]
    ReasoningDelta {
        #[serde(borrow)]
        delta: Cow<'a, str>,
    },
    #[serde(rename = "response.output_item.added")]
    ItemAdded { output_index: usize, item: Item },
    #[serde(rename = "response.function_call_arguments.delta")]
    ArgumentsDelta {
        output_index: usize,
        #[serde(borrow)]
        delta: Cow<'a, str>,
    },
    #[serde(rename = "response.output_item.done")]
    ItemDone { output_index: usize, item: Item },
    #[serde(rename = "response.completed", alias = "response.incomplete")]
    Finished { response: FinalResponse },
    #[serde(rename = "response.failed")]
    Failed { response: FailedResponse },
    #[serde(rename = "error")]
    Error,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Item {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct FinalResponse {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    incomplete_details: Option<IncompleteDetails>,
    #[serde(default)]
    usage: Option<ResponseUsage>,
}

#[derive(Deserialize)]
struct IncompleteDetails {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct FailedResponse {
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize, Default)]
struct ResponseUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<InputDetails>,
}

#[derive(Deserialize, Default)]
struct InputDetails {
    #[serde(default)]
    cached_tokens: u64,
    #[serde(default)]
    cache_write_tokens: u64,
}

/// A function call being streamed, by output index.
struct PendingCall {
    index: usize,
    call_id: String,
    name: String,
    arguments: String,
}

/// What the stream has seen of the response.
pub(crate) struct ResponseReply {
    model: Arc<str>,
    rates: Option<Rates>,
    pending: Vec<PendingCall>,
    calls: usize,
    finish: Option<FinishReason>,
    usage: Usage,
}

/// The chunk stream of one Responses call.
pub(crate) type ResponsesStream = SseChunkStream<Bytes, reqwest::Error, ResponseReply>;

/// Streams a Responses body.
pub(crate) fn responses_stream(
    body: HttpBody,
    model: Arc<str>,
    rates: Option<Rates>,
) -> ResponsesStream {
    SseChunkStream::new(
        body,
        ResponseReply {
            model,
            rates,
            pending: Vec::new(),
            calls: 0,
            finish: None,
            usage: Usage::default(),
        },
    )
}

impl ResponseReply {
    fn emit_call(&mut self, call: PendingCall, out: &mut VecDeque<ChunkResult>) {
        self.calls += 1;
        out.push_back(Ok(ModelChunk::ToolCall {
            tool_call: ToolCall::streamed(call.call_id, call.name, call.arguments),
        }));
    }
}

impl ReplyProtocol for ResponseReply {
    fn event(&mut self, event: SseEvent<'_>, out: &mut VecDeque<ChunkResult>) -> Step {
        let parsed: Event<'_> = match serde_json::from_str(event.data) {
            Ok(e) => e,
            Err(e) => {
                out.push_back(Err(malformed_event("event", event.data, &e)));
                return Step::Failed;
            }
        };
        match parsed {
            Event::TextDelta { delta } if !delta.is_empty() => {
                out.push_back(Ok(ModelChunk::Text {
                    text: delta.into_owned(),
                }));
            }
            Event::ReasoningDelta { delta } if !delta.is_empty() => {
                out.push_back(Ok(ModelChunk::Thinking {
                    text: delta.into_owned(),
                    signature: None,
                }));
            }
            Event::ItemAdded { output_index, item } if item.kind == "function_call" => {
                self.pending.push(PendingCall {
                    index: output_index,
                    call_id: item.call_id.unwrap_or_default(),
                    name: item.name.unwrap_or_default(),
                    arguments: item.arguments.unwrap_or_default(),
                });
            }
            Event::ArgumentsDelta {
                output_index,
                delta,
            } => {
                if let Some(p) = self.pending.iter_mut().find(|p| p.index == output_index) {
                    p.arguments.push_str(&delta);
                }
            }
            Event::ItemDone { output_index, item } if item.kind == "function_call" => {
                let mut call = match self.pending.iter().position(|p| p.index == output_index) {
                    Some(at) => self.pending.swap_remove(at),
                    None => PendingCall {
                        index: output_index,
                        call_id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                    },
                };
                // The finished item is authoritative.
                if let Some(id) = item.call_id {
                    call.call_id = id;
                }
                if let Some(name) = item.name {
                    call.name = name;
                }
                if let Some(args) = item.arguments {
                    call.arguments = args;
                }
                self.emit_call(call, out);
            }
            Event::Finished { response } => {
                if let Some(u) = response.usage {
                    let details = u.input_tokens_details.unwrap_or_default();
                    self.usage.input_tokens = u
                        .input_tokens
                        .saturating_sub(details.cached_tokens + details.cache_write_tokens);
                    self.usage.cached_input_tokens = details.cached_tokens;
                    self.usage.cache_write_tokens = details.cache_write_tokens;
                    self.usage.output_tokens = u.output_tokens;
                }
                let reason = response.incomplete_details.and_then(|d| d.reason);
                self.finish = Some(match (response.status.as_deref(), reason.as_deref()) {
                    (Some("incomplete"), Some("content_filter")) => FinishReason::ContentFilter,
                    (Some("incomplete"), _) => FinishReason::Length,
                    _ => FinishReason::Stop,
                });
                return Step::Complete;
            }
            Event::Failed { response } => {
                let body = serde_json::json!({"error": response.error}).to_string();
                out.push_back(Err(ModelError::from_stream_error(&body)));
                return Step::Failed;
            }
            Event::Error => {
                out.push_back(Err(ModelError::from_stream_error(event.data)));
                return Step::Failed;
            }
            _ => {}
        }
        Step::More
    }

    fn finish(&mut self, out: &mut VecDeque<ChunkResult>) {
        // Calls whose item never finished (a cut the server still closed).
        for call in std::mem::take(&mut self.pending) {
            self.emit_call(call, out);
        }
        let mut usage = self.usage;
        usage.cost_usd = cost_usd(&self.model, &usage, self.rates);
        let finish_reason = FinishReason::settle(self.finish.take(), self.calls > 0);
        out.push_back(Ok(ModelChunk::Finish {
            finish_reason,
            usage,
        }));
    }

    /// `response.completed` is the only end of a whole reply.
    fn can_end(&self) -> bool {
        false
    }
}
