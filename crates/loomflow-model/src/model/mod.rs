//! The [`Model`] port: anything that turns messages into a streamed reply.
//!
//! Models stream first: [`Model::stream`] yields [`ModelChunk`]s, and
//! [`Model::complete`] folds them (adapters may override it with a cheaper
//! non-streaming call). Provider crates implement this trait and register their
//! model-string patterns (see [`registry`]).

mod echo;
pub mod fallback;
pub mod registry;
pub mod retry;
mod scripted;

use std::pin::Pin;

use async_trait::async_trait;
use futures_core::Stream;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

pub use echo::EchoModel;
pub use scripted::{ScriptedModel, ScriptedTurn};

use crate::effort::{Effort, PromptCache};
use crate::error::ModelError;
use crate::message::{ContentPart, Message, ToolCall, ToolDef, Usage};
use crate::output::OutputSchema;
use crate::tokens::TokenCount;

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FinishReason {
    /// A natural end.
    Stop,
    /// It asked for tool calls.
    ToolUse,
    /// It hit the output-token limit.
    Length,
    /// The provider's filter cut it off.
    ContentFilter,
}

impl FinishReason {
    /// The reason to report for a reply, from what the provider said and
    /// whether the reply carried tool calls: calls make it
    /// [`ToolUse`](Self::ToolUse) even when the provider said `stop` (some
    /// gateways do), and a `tool_use` with no call left to run (Anthropic's
    /// output tool, calls without a name) is a [`Stop`](Self::Stop).
    ///
    /// ```
    /// use loomflow_model::FinishReason;
    /// assert_eq!(FinishReason::settle(Some(FinishReason::Stop), true), FinishReason::ToolUse);
    /// assert_eq!(FinishReason::settle(Some(FinishReason::ToolUse), false), FinishReason::Stop);
    /// assert_eq!(FinishReason::settle(Some(FinishReason::Length), true), FinishReason::Length);
    /// assert_eq!(FinishReason::settle(None, false), FinishReason::Stop);
    /// ```
    pub fn settle(reported: Option<FinishReason>, made_calls: bool) -> FinishReason {
        match reported {
            Some(FinishReason::Stop) | None if made_calls => FinishReason::ToolUse,
            Some(FinishReason::ToolUse) if !made_calls => FinishReason::Stop,
            Some(r) => r,
            None => FinishReason::Stop,
        }
    }
}

/// One piece of a streamed reply. Serialises with a `kind` tag
/// (`{"kind": "text", "text": "…"}`), like the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ModelChunk {
    /// Visible text.
    Text {
        /// The text delta.
        text: String,
    },
    /// Reasoning text, where the provider exposes it. A chunk with a
    /// `signature` closes the current reasoning block (Anthropic signs each
    /// block; the signature is needed to replay it on the next turn).
    Thinking {
        /// The reasoning delta.
        text: String,
        /// The block's signature, on its last chunk.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// A reasoning block the provider returned encrypted.
    RedactedThinking {
        /// The opaque payload, replayed verbatim.
        data: String,
    },
    /// A complete tool call.
    ToolCall {
        /// The call.
        tool_call: ToolCall,
    },
    /// The end of the reply, with its usage.
    Finish {
        /// Why it stopped.
        finish_reason: FinishReason,
        /// Tokens and cost of this call.
        usage: Usage,
    },
}

/// A boxed stream of chunks, as returned by [`Model::stream`].
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<ModelChunk, ModelError>> + Send>>;

/// What a model can do natively; the agent adapts to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelCapabilities {
    /// The provider constrains decoding to a JSON Schema, so no prompt
    /// directive is needed for structured output.
    pub native_structured_output: bool,
    /// The provider supports prompt caching.
    pub prompt_caching: bool,
    /// The provider honours an effort / reasoning level.
    pub effort: bool,
}

impl ModelCapabilities {
    /// No native capabilities (usable in `const` tables).
    pub const fn none() -> Self {
        Self {
            native_structured_output: false,
            prompt_caching: false,
            effort: false,
        }
    }

    /// Sets [`Self::native_structured_output`].
    pub fn with_native_structured_output(mut self, on: bool) -> Self {
        self.native_structured_output = on;
        self
    }
}

/// One model call's inputs. Borrowed, so the agent does not copy its transcript
/// per call.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ModelRequest<'a> {
    /// The conversation so far.
    pub messages: &'a [Message],
    /// The tools the model may call.
    pub tools: &'a [ToolDef],
    /// Structured output, when the adapter reports native support.
    pub output_schema: Option<&'a OutputSchema>,
    /// Sampling temperature, if set.
    pub temperature: Option<f32>,
    /// Output-token cap, if set.
    pub max_tokens: Option<u32>,
    /// How hard to reason, for models that can; adapters clamp it to what
    /// the model accepts.
    pub effort: Option<Effort>,
    /// Fail the call instead of dropping an effort the model cannot honour.
    pub strict_effort: bool,
    /// Prompt caching, where the provider supports it.
    pub prompt_cache: Option<&'a PromptCache>,
}

impl<'a> ModelRequest<'a> {
    /// A request over `messages` with no tools.
    pub fn new(messages: &'a [Message]) -> Self {
        Self {
            messages,
            tools: &[],
            output_schema: None,
            temperature: None,
            max_tokens: None,
            effort: None,
            strict_effort: false,
            prompt_cache: None,
        }
    }

    /// Offers `tools` to the model.
    pub fn with_tools(mut self, tools: &'a [ToolDef]) -> Self {
        self.tools = tools;
        self
    }

    /// Asks for native structured output.
    pub fn with_output_schema(mut self, schema: Option<&'a OutputSchema>) -> Self {
        self.output_schema = schema;
        self
    }

    /// Sets the reasoning effort.
    pub fn with_effort(mut self, effort: Option<Effort>) -> Self {
        self.effort = effort;
        self
    }

    /// Turns prompt caching on (or off with `None`).
    pub fn with_prompt_cache(mut self, cache: Option<&'a PromptCache>) -> Self {
        self.prompt_cache = cache;
        self
    }

    /// Caps the output tokens.
    pub fn with_max_tokens(mut self, max_tokens: Option<u32>) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    /// Sets the sampling temperature.
    pub fn with_temperature(mut self, temperature: Option<f32>) -> Self {
        self.temperature = temperature;
        self
    }
}

/// A whole reply, folded from its chunks. Serialisable, so a journal can
/// record it and return it on replay without calling the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Completion {
    /// All text.
    pub text: String,
    /// All tool calls, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Tokens and cost.
    pub usage: Usage,
    /// Why it stopped.
    pub finish_reason: FinishReason,
    /// The reasoning blocks ([`ContentPart::Thinking`], one per block, with
    /// its signature where the provider signs them, and
    /// [`ContentPart::RedactedThinking`]), kept on the assistant message so
    /// adapters can replay what their provider requires.
    pub reasoning: Vec<ContentPart>,
}

impl Default for Completion {
    /// Nothing yet: no text, no calls, no usage, `Stop`.
    fn default() -> Self {
        Self {
            text: String::new(),
            tool_calls: Vec::new(),
            usage: Usage::default(),
            finish_reason: FinishReason::Stop,
            reasoning: Vec::new(),
        }
    }
}

impl Completion {
    /// Folds a chunk stream into a completion.
    pub async fn collect(mut stream: ChunkStream) -> Result<Self, ModelError> {
        let mut out = Completion::default();
        while let Some(chunk) = stream.next().await {
            out.absorb(chunk?);
        }
        Ok(out)
    }

    /// Adds one chunk to the completion.
    pub fn absorb(&mut self, chunk: ModelChunk) {
        match chunk {
            ModelChunk::Text { text } => self.text.push_str(&text),
            ModelChunk::Thinking { text, signature } => {
                // An unsigned block at the end is still open.
                match self.reasoning.last_mut() {
                    Some(ContentPart::Thinking {
                        text: open,
                        signature: open_sig @ None,
                    }) => {
                        open.push_str(&text);
                        *open_sig = signature;
                    }
                    _ => self
                        .reasoning
                        .push(ContentPart::Thinking { text, signature }),
                }
            }
            ModelChunk::RedactedThinking { data } => {
                self.reasoning.push(ContentPart::RedactedThinking { data });
            }
            ModelChunk::ToolCall { tool_call } => self.tool_calls.push(tool_call),
            ModelChunk::Finish {
                finish_reason,
                usage,
            } => {
                self.finish_reason = finish_reason;
                self.usage += usage;
            }
        }
    }
}

/// A language model.
///
/// Implement [`Model::stream`]; override [`Model::complete`] when the provider
/// has a cheaper non-streaming call. The trait is object safe and used as
/// `Arc<dyn Model>`.
///
/// ```
/// use async_trait::async_trait;
/// use loomflow_model::model::{ChunkStream, Model, ModelChunk, ModelRequest, FinishReason};
/// use loomflow_model::{ModelError, Usage};
///
/// struct Shouty;
///
/// #[async_trait]
/// impl Model for Shouty {
///     fn name(&self) -> &str { "shouty" }
///     async fn stream(&self, req: ModelRequest<'_>) -> Result<ChunkStream, ModelError> {
///         let last = req.messages.last().map(|m| m.text_content()).unwrap_or_default();
///         let chunks = vec![
///             Ok(ModelChunk::Text { text: last.to_uppercase() }),
///             Ok(ModelChunk::Finish { finish_reason: FinishReason::Stop, usage: Usage::default() }),
///         ];
///         Ok(Box::pin(futures_util::stream::iter(chunks)))
///     }
/// }
/// ```
#[async_trait]
pub trait Model: Send + Sync + 'static {
    /// The model's name (`"echo"`, `"gpt-4.1-mini"`, …).
    fn name(&self) -> &str;

    /// What the model supports natively.
    fn capabilities(&self) -> ModelCapabilities {
        ModelCapabilities::default()
    }

    /// Whether each call goes to a provider over the network (and is
    /// usually billed). Agents turn background fact extraction on by
    /// default only for such models; local and scripted models default to
    /// `false`.
    fn is_remote(&self) -> bool {
        false
    }

    /// Whether this model constrains its output to `schema` natively (the
    /// agent then sends the schema instead of a prompt directive). Defaults
    /// to [`ModelCapabilities::native_structured_output`]; adapters whose
    /// native mode accepts only some schemas (OpenAI's strict mode needs an
    /// object at the root) refine it.
    fn native_output_for(&self, schema: &OutputSchema) -> bool {
        let _ = schema;
        self.capabilities().native_structured_output
    }

    /// Streams the reply to `request`.
    async fn stream(&self, request: ModelRequest<'_>) -> Result<ChunkStream, ModelError>;

    /// The whole reply to `request`. Defaults to folding [`Model::stream`].
    async fn complete(&self, request: ModelRequest<'_>) -> Result<Completion, ModelError> {
        Completion::collect(self.stream(request).await?).await
    }

    /// How many input tokens `request` would use, and how that was counted.
    /// Defaults to the labelled `chars / 4` [`estimate`](crate::tokens::estimate);
    /// adapters answer with the provider's count endpoint or the model's
    /// tokenizer where there is one.
    async fn count_tokens(&self, request: ModelRequest<'_>) -> Result<TokenCount, ModelError> {
        Ok(crate::tokens::estimate(&request))
    }
}

/// Splits `text` the way the reference's fakes stream it: one chunk per
/// space-separated word, later words keeping their leading space.
pub(crate) fn word_chunks(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let bytes = text.as_bytes();
    std::iter::from_fn(move || {
        if start >= text.len() {
            return None;
        }
        let from = if start == 0 { 0 } else { start + 1 };
        let end = bytes[from.min(bytes.len())..]
            .iter()
            .position(|b| *b == b' ')
            .map_or(text.len(), |p| from + p);
        let piece = &text[start..end];
        start = end;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::word_chunks;

    #[test]
    fn words_keep_their_leading_space() {
        let v: Vec<_> = word_chunks("done ok now").collect();
        assert_eq!(v, ["done", " ok", " now"]);
        assert_eq!(word_chunks("one").collect::<Vec<_>>(), ["one"]);
        assert_eq!(word_chunks("").count(), 0);
        assert_eq!(word_chunks("a  b").collect::<String>(), "a  b");
    }
}
