//! genai's chat stream as our chunks, and genai's errors as classified
//! [`ModelError`]s.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;
use genai::chat::{ChatStream, ChatStreamEvent, ContentPart as GPart, StopReason, StreamEnd};
use loomflow_model::error::parse_retry_after;
use loomflow_model::model::FinishReason;
use loomflow_model::pricing::{Rates, cost_usd};
use loomflow_model::{ModelChunk, ModelError, ToolCall, Usage};

type ChunkResult = Result<ModelChunk, ModelError>;

/// Our chunks from a genai stream: text and reasoning as they arrive, each
/// thought signature as a signed (empty) thinking chunk, the turn's tool
/// calls whole from the stream's end, then `Finish` with priced usage. A
/// stream that ends without the provider saying why (a dropped connection
/// the adapter closed quietly) is a transient error, not a short answer.
/// `model` is the provider's own id, which the price table knows.
pub(crate) fn events(
    inner: ChatStream,
    model: Arc<str>,
    rates: Option<Rates>,
) -> impl Stream<Item = ChunkResult> + Send {
    Events {
        inner,
        model,
        rates,
        pending: VecDeque::new(),
        done: false,
    }
}

struct Events {
    inner: ChatStream,
    model: Arc<str>,
    rates: Option<Rates>,
    pending: VecDeque<ChunkResult>,
    done: bool,
}

impl Stream for Events {
    type Item = ChunkResult;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(chunk) = this.pending.pop_front() {
                return Poll::Ready(Some(chunk));
            }
            if this.done {
                return Poll::Ready(None);
            }
            let event = match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(ended_early())));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(classify(e))));
                }
                Poll::Ready(Some(Ok(event))) => event,
            };
            match event {
                ChatStreamEvent::Chunk(c) if !c.content.is_empty() => {
                    return Poll::Ready(Some(Ok(ModelChunk::Text { text: c.content })));
                }
                ChatStreamEvent::ReasoningChunk(c) if !c.content.is_empty() => {
                    return Poll::Ready(Some(Ok(ModelChunk::Thinking {
                        text: c.content,
                        signature: None,
                    })));
                }
                ChatStreamEvent::ThoughtSignatureChunk(c) => {
                    return Poll::Ready(Some(Ok(ModelChunk::Thinking {
                        text: String::new(),
                        signature: Some(c.content),
                    })));
                }
                ChatStreamEvent::End(end) => {
                    this.done = true;
                    this.finish(end);
                }
                // Calls are taken whole from the end; start and heartbeats
                // carry nothing.
                _ => {}
            }
        }
    }
}

impl Events {
    fn finish(&mut self, end: StreamEnd) {
        let Some(reason) = end.captured_stop_reason else {
            self.pending.push_back(Err(ended_early()));
            return;
        };
        let calls: Vec<ToolCall> = end
            .captured_content
            .map(|content| {
                content
                    .into_parts()
                    .into_iter()
                    .filter_map(|part| match part {
                        GPart::ToolCall(call) => Some(ToolCall {
                            id: call.call_id,
                            tool: call.fn_name,
                            args: match call.fn_arguments {
                                serde_json::Value::Null => serde_json::json!({}),
                                args => args,
                            },
                            destructive: false,
                        }),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let made_calls = !calls.is_empty();
        self.pending.extend(
            calls
                .into_iter()
                .map(|tool_call| Ok(ModelChunk::ToolCall { tool_call })),
        );
        let mut usage = usage_of(end.captured_usage);
        usage.cost_usd = cost_usd(&self.model, &usage, self.rates);
        self.pending.push_back(Ok(ModelChunk::Finish {
            finish_reason: FinishReason::settle(Some(finish_reason(&reason)), made_calls),
            usage,
        }));
    }
}

fn ended_early() -> ModelError {
    ModelError::Transient {
        message: "the stream ended before the provider said the reply was complete".into(),
        retry_after: None,
    }
}

fn finish_reason(reason: &StopReason) -> FinishReason {
    match reason {
        StopReason::MaxTokens(_) => FinishReason::Length,
        StopReason::ToolCall(_) => FinishReason::ToolUse,
        StopReason::ContentFilter(_) => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// genai reports prompt tokens including the cached ones (OpenAI's
/// convention); ours are split.
fn usage_of(usage: Option<genai::chat::Usage>) -> Usage {
    let Some(u) = usage else {
        return Usage::default();
    };
    let count = |n: Option<i32>| u64::try_from(n.unwrap_or(0)).unwrap_or(0);
    let (cached, written) = u.prompt_tokens_details.as_ref().map_or((0, 0), |d| {
        (count(d.cached_tokens), count(d.cache_creation_tokens))
    });
    Usage {
        input_tokens: count(u.prompt_tokens).saturating_sub(cached + written),
        cached_input_tokens: cached,
        cache_write_tokens: written,
        output_tokens: count(u.completion_tokens),
        cost_usd: 0.0,
    }
}

/// A genai error as our taxonomy: an HTTP status with its retry hint and
/// body through [`ModelError::from_http`]; an error the provider sent
/// inside the stream through [`ModelError::from_stream_error`]; a broken or
/// unparseable stream and an unreachable server as transient; requests the
/// adapter cannot express as invalid; missing credentials as
/// authentication errors.
pub(crate) fn classify(error: genai::Error) -> ModelError {
    use genai::Error as E;

    // Errors inside an open stream wrap the HTTP error genai built.
    if let E::WebStream {
        error: inner,
        cause,
        ..
    } = &error
    {
        return match inner.downcast_ref::<genai::Error>() {
            Some(http) if http.status().is_some() => from_status(http),
            _ => ModelError::Transient {
                message: format!("the stream broke: {cause}"),
                retry_after: None,
            },
        };
    }
    if error.status().is_some() {
        return from_status(&error);
    }
    let message = error.to_string();
    match error {
        E::ChatResponse { body, .. } => ModelError::from_stream_error(&body.to_string()),
        E::StreamParse { .. } => ModelError::Transient {
            message: format!("a stream event did not parse: {message}"),
            retry_after: None,
        },
        E::WebModelCall { .. } | E::WebAdapterCall { .. } => ModelError::Transient {
            message,
            retry_after: None,
        },
        E::RequiresApiKey { .. } | E::NoAuthResolver { .. } | E::NoAuthData { .. } => {
            ModelError::Authentication { message }
        }
        E::ChatReqHasNoMessages { .. }
        | E::LastChatMessageIsNotUser { .. }
        | E::MessageRoleNotSupported { .. }
        | E::MessageContentTypeNotSupported { .. }
        | E::JsonModeWithoutInstruction
        | E::AdapterNotSupported { .. } => ModelError::InvalidRequest { message },
        _ => ModelError::other(message),
    }
}

fn from_status(error: &genai::Error) -> ModelError {
    let status = error.status().map_or(0, |s| s.as_u16());
    let header = |name: &str| {
        error
            .headers()
            .and_then(|h| h.get(name))
            .and_then(|v| v.to_str().ok())
    };
    let retry_after = parse_retry_after(header("retry-after-ms"), header("retry-after"));
    let body = match error {
        genai::Error::HttpError { body, .. } => body.as_str(),
        genai::Error::WebModelCall { webc_error, .. }
        | genai::Error::WebAdapterCall { webc_error, .. } => match webc_error {
            genai::webc::Error::ResponseFailedStatus { body, .. } => body.as_str(),
            _ => "",
        },
        _ => "",
    };
    ModelError::from_http(status, retry_after, body)
}
