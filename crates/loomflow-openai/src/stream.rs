//! Turns a Chat Completions SSE body into [`ModelChunk`]s: text deltas as they
//! arrive, tool calls assembled per `index` (several in parallel in one turn)
//! and emitted whole when the turn finishes, then one `Finish` with the usage
//! from the final chunk and its cost.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use loomflow_model::http::HttpBody;
use loomflow_model::model::FinishReason;
use loomflow_model::pricing::{Rates, cost_usd};
use loomflow_model::sse::{
    ChunkResult, ReplyProtocol, SseChunkStream, SseEvent, Step, malformed_event,
};
use loomflow_model::{ModelChunk, ModelError, ToolCall, Usage};

use crate::wire::Chunk;

/// A tool call being assembled from its deltas.
#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    args: String,
}

/// What the stream has seen so far of the turn.
pub(crate) struct Turn {
    model: Arc<str>,
    rates: Option<Rates>,
    calls: Vec<PartialCall>,
    finish: Option<FinishReason>,
    usage: Usage,
}

impl Turn {
    /// Applies one SSE `data` payload.
    fn apply(&mut self, data: &str, out: &mut VecDeque<ChunkResult>) -> Step {
        if data == "[DONE]" {
            return Step::Complete;
        }
        let chunk: Chunk<'_> = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(e) => {
                out.push_back(Err(malformed_event("chunk", data, &e)));
                return Step::Failed;
            }
        };
        if chunk.error.is_some() {
            out.push_back(Err(ModelError::from_stream_error(data)));
            return Step::Failed;
        }
        for choice in chunk.choices {
            let delta = choice.delta;
            if let Some(text) = delta.reasoning_content.filter(|t| !t.is_empty()) {
                out.push_back(Ok(ModelChunk::Thinking {
                    text: text.into_owned(),
                    signature: None,
                }));
            }
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                out.push_back(Ok(ModelChunk::Text {
                    text: text.into_owned(),
                }));
            }
            if let Some(text) = delta.refusal.filter(|t| !t.is_empty()) {
                out.push_back(Ok(ModelChunk::Text {
                    text: text.into_owned(),
                }));
            }
            for call in delta.tool_calls.into_iter().flatten() {
                if self.calls.len() <= call.index {
                    self.calls.resize_with(call.index + 1, PartialCall::default);
                }
                let slot = &mut self.calls[call.index];
                if let Some(id) = call.id {
                    slot.id.push_str(&id);
                }
                if let Some(f) = call.function {
                    if let Some(name) = f.name {
                        slot.name.push_str(&name);
                    }
                    if let Some(args) = f.arguments {
                        slot.args.push_str(&args);
                    }
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(match &*reason {
                    "tool_calls" | "function_call" => FinishReason::ToolUse,
                    "length" => FinishReason::Length,
                    "content_filter" => FinishReason::ContentFilter,
                    _ => FinishReason::Stop,
                });
            }
        }
        if let Some(u) = chunk.usage {
            let details = u.prompt_tokens_details.unwrap_or_default();
            self.usage.input_tokens = u
                .prompt_tokens
                .saturating_sub(details.cached_tokens + details.cache_write_tokens);
            self.usage.cached_input_tokens = details.cached_tokens;
            self.usage.cache_write_tokens = details.cache_write_tokens;
            self.usage.output_tokens = u.completion_tokens;
        }
        Step::More
    }

    /// Emits the assembled tool calls and the finish chunk.
    fn finish(&mut self, out: &mut VecDeque<ChunkResult>) {
        let calls = std::mem::take(&mut self.calls);
        let any_calls = calls.iter().any(|c| !c.name.is_empty());
        for call in calls.into_iter().filter(|c| !c.name.is_empty()) {
            out.push_back(Ok(ModelChunk::ToolCall {
                tool_call: ToolCall::streamed(call.id, call.name, call.args),
            }));
        }
        let mut usage = self.usage;
        usage.cost_usd = cost_usd(&self.model, &usage, self.rates);
        let finish_reason = FinishReason::settle(self.finish.take(), any_calls);
        out.push_back(Ok(ModelChunk::Finish {
            finish_reason,
            usage,
        }));
    }
}

/// The chunk stream of one Chat Completions call.
pub(crate) type ChatStream = SseChunkStream<Bytes, reqwest::Error, Turn>;

/// Streams a Chat Completions body.
pub(crate) fn chat_stream(body: HttpBody, model: Arc<str>, rates: Option<Rates>) -> ChatStream {
    SseChunkStream::new(
        body,
        Turn {
            model,
            rates,
            calls: Vec::new(),
            finish: None,
            usage: Usage::default(),
        },
    )
}

impl ReplyProtocol for Turn {
    fn event(&mut self, event: SseEvent<'_>, out: &mut VecDeque<ChunkResult>) -> Step {
        self.apply(event.data, out)
    }

    fn finish(&mut self, out: &mut VecDeque<ChunkResult>) {
        Turn::finish(self, out);
    }

    /// Some gateways omit `[DONE]` after the chunk with the finish reason.
    fn can_end(&self) -> bool {
        self.finish.is_some()
    }
}
