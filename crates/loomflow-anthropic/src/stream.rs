//! Turns a Messages API event stream into [`ModelChunk`]s: text and thinking
//! deltas as they arrive, each thinking block closed with its signature (so
//! the agent can replay it), tool calls assembled from `input_json_delta`s and
//! emitted when their block stops, then one `Finish` with the usage (cache
//! reads and writes included) and its cost.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use loomflow_model::http::HttpBody;
use loomflow_model::model::FinishReason;
use loomflow_model::pricing::{CacheTtl, Rates, cost_usd_with_ttl};
use loomflow_model::sse::{
    ChunkResult, ReplyProtocol, SseChunkStream, SseEvent, Step, malformed_event,
};
use loomflow_model::{ModelChunk, ModelError, ToolCall, Usage};
use serde_json::Value;

use crate::wire::{Event, WireUsage};

/// The synthetic tool that carries structured output on models without
/// JSON outputs; its input is the answer, emitted as text.
pub(crate) const OUTPUT_TOOL: &str = "__output__";

/// A block being assembled.
enum Open {
    Text,
    Thinking,
    Tool {
        id: String,
        name: String,
        json: String,
    },
}

/// What the stream has seen of the reply.
pub(crate) struct Reply {
    model: Arc<str>,
    rates: Option<Rates>,
    ttl: CacheTtl,
    /// Open blocks by index (the API streams one at a time; indexes grow).
    open: Vec<(usize, Open)>,
    stop: Option<FinishReason>,
    usage: WireUsage,
    calls: usize,
    output_via_tool: bool,
}

/// The chunk stream of one Messages call.
pub(crate) type MessagesStream = SseChunkStream<Bytes, reqwest::Error, Reply>;

/// Streams a Messages body.
pub(crate) fn messages_stream(
    body: HttpBody,
    model: Arc<str>,
    rates: Option<Rates>,
    ttl: CacheTtl,
) -> MessagesStream {
    SseChunkStream::new(
        body,
        Reply {
            model,
            rates,
            ttl,
            open: Vec::new(),
            stop: None,
            usage: WireUsage::default(),
            calls: 0,
            output_via_tool: false,
        },
    )
}

fn merge(into: &mut WireUsage, from: WireUsage) {
    // `message_delta` counts are cumulative: they replace, never add.
    into.input_tokens = from.input_tokens.or(into.input_tokens);
    into.output_tokens = from.output_tokens.or(into.output_tokens);
    into.cache_read_input_tokens = from
        .cache_read_input_tokens
        .or(into.cache_read_input_tokens);
    into.cache_creation_input_tokens = from
        .cache_creation_input_tokens
        .or(into.cache_creation_input_tokens);
}

impl Reply {
    fn take_open(&mut self, index: usize) -> Option<Open> {
        let at = self.open.iter().position(|(i, _)| *i == index)?;
        Some(self.open.swap_remove(at).1)
    }

    fn open_mut(&mut self, index: usize) -> Option<&mut Open> {
        self.open
            .iter_mut()
            .find(|(i, _)| *i == index)
            .map(|(_, o)| o)
    }

    fn close(&mut self, open: Open, out: &mut VecDeque<ChunkResult>) {
        let Open::Tool { id, name, json } = open else {
            return;
        };
        let call = ToolCall::streamed(id, name, json);
        if call.tool == OUTPUT_TOOL {
            self.output_via_tool = true;
            let text = match call.args {
                Value::String(s) => s,
                other => other.to_string(),
            };
            out.push_back(Ok(ModelChunk::Text { text }));
            return;
        }
        self.calls += 1;
        out.push_back(Ok(ModelChunk::ToolCall { tool_call: call }));
    }
}

impl ReplyProtocol for Reply {
    fn event(&mut self, event: SseEvent<'_>, out: &mut VecDeque<ChunkResult>) -> Step {
        if event.event == "error" {
            out.push_back(Err(ModelError::from_stream_error(event.data)));
            return Step::Failed;
        }
        let parsed: Event<'_> = match serde_json::from_str(event.data) {
            Ok(e) => e,
            Err(e) => {
                out.push_back(Err(malformed_event("event", event.data, &e)));
                return Step::Failed;
            }
        };
        match &*parsed.kind {
            "message_start" => {
                if let Some(u) = parsed.message.and_then(|m| m.usage) {
                    merge(&mut self.usage, u);
                }
            }
            "content_block_start" => {
                let Some(block) = parsed.content_block else {
                    return Step::More;
                };
                let index = parsed.index;
                match &*block.kind {
                    "text" => {
                        if let Some(text) = block.text.filter(|t| !t.is_empty()) {
                            out.push_back(Ok(ModelChunk::Text {
                                text: text.into_owned(),
                            }));
                        }
                        self.open.push((index, Open::Text));
                    }
                    "thinking" => {
                        if let Some(text) = block.thinking.filter(|t| !t.is_empty()) {
                            out.push_back(Ok(ModelChunk::Thinking {
                                text: text.into_owned(),
                                signature: None,
                            }));
                        }
                        self.open.push((index, Open::Thinking));
                    }
                    "redacted_thinking" => {
                        out.push_back(Ok(ModelChunk::RedactedThinking {
                            data: block.data.map(Cow::into_owned).unwrap_or_default(),
                        }));
                    }
                    "tool_use" => self.open.push((
                        index,
                        Open::Tool {
                            id: block.id.map(Cow::into_owned).unwrap_or_default(),
                            name: block.name.map(Cow::into_owned).unwrap_or_default(),
                            json: String::new(),
                        },
                    )),
                    // Block types added after this adapter was written.
                    _ => {}
                }
            }
            "content_block_delta" => {
                let Some(delta) = parsed.delta else {
                    return Step::More;
                };
                match delta.kind {
                    Some("text_delta") => {
                        if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
                            out.push_back(Ok(ModelChunk::Text {
                                text: text.into_owned(),
                            }));
                        }
                    }
                    Some("thinking_delta") => {
                        if let Some(text) = delta.thinking.filter(|t| !t.is_empty()) {
                            out.push_back(Ok(ModelChunk::Thinking {
                                text: text.into_owned(),
                                signature: None,
                            }));
                        }
                    }
                    Some("signature_delta") => {
                        out.push_back(Ok(ModelChunk::Thinking {
                            text: String::new(),
                            signature: Some(
                                delta.signature.map(Cow::into_owned).unwrap_or_default(),
                            ),
                        }));
                    }
                    Some("input_json_delta") => {
                        if let (Some(Open::Tool { json, .. }), Some(part)) =
                            (self.open_mut(parsed.index), delta.partial_json)
                        {
                            json.push_str(&part);
                        }
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let Some(open) = self.take_open(parsed.index) {
                    self.close(open, out);
                }
            }
            "message_delta" => {
                if let Some(u) = parsed.usage {
                    merge(&mut self.usage, u);
                }
                if let Some(reason) = parsed.delta.and_then(|d| d.stop_reason) {
                    self.stop = Some(match &*reason {
                        "tool_use" => FinishReason::ToolUse,
                        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
                        "refusal" => FinishReason::ContentFilter,
                        _ => FinishReason::Stop,
                    });
                }
            }
            "message_stop" => return Step::Complete,
            "error" => {
                out.push_back(Err(ModelError::from_stream_error(event.data)));
                return Step::Failed;
            }
            // `ping`, and event types added later, as the API's versioning
            // policy asks.
            _ => {}
        }
        Step::More
    }

    fn finish(&mut self, out: &mut VecDeque<ChunkResult>) {
        // Blocks the server never stopped (a reply cut short but marked
        // complete) still count.
        for (_, open) in std::mem::take(&mut self.open) {
            self.close(open, out);
        }
        let u = self.usage;
        let mut usage = Usage {
            input_tokens: u.input_tokens.unwrap_or(0),
            cached_input_tokens: u.cache_read_input_tokens.unwrap_or(0),
            cache_write_tokens: u.cache_creation_input_tokens.unwrap_or(0),
            output_tokens: u.output_tokens.unwrap_or(0),
            cost_usd: 0.0,
        };
        usage.cost_usd = cost_usd_with_ttl(&self.model, &usage, self.rates, self.ttl);
        // The forced output tool is the answer, not a call to run.
        let finish_reason = FinishReason::settle(self.stop.take(), self.calls > 0);
        out.push_back(Ok(ModelChunk::Finish {
            finish_reason,
            usage,
        }));
    }

    fn can_end(&self) -> bool {
        self.stop.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn body(sse: &str) -> HttpBody {
        let chunks: Vec<reqwest::Result<Bytes>> = sse
            .as_bytes()
            .chunks(7)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Box::pin(futures_util::stream::iter(chunks))
    }

    async fn collect(sse: &str) -> Vec<ChunkResult> {
        messages_stream(
            body(sse),
            Arc::from("claude-haiku-4-5"),
            None,
            CacheTtl::FiveMinutes,
        )
        .collect()
        .await
    }

    #[tokio::test]
    async fn events_of_unknown_type_and_pings_are_skipped() {
        let sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"x\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n\
event: ping\ndata: {\"type\": \"ping\"}\n\n\
event: something_new\ndata: {\"type\":\"something_new\",\"x\":1}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":2}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let chunks: Vec<ModelChunk> = collect(sse).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(chunks[0], ModelChunk::Text { text: "hi".into() });
        let ModelChunk::Finish {
            finish_reason,
            usage,
        } = &chunks[1]
        else {
            panic!("{chunks:?}")
        };
        assert_eq!(*finish_reason, FinishReason::Stop);
        assert_eq!((usage.input_tokens, usage.output_tokens), (3, 2));
    }
}
