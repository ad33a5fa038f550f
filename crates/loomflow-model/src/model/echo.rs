use async_trait::async_trait;

use super::{ChunkStream, Completion, FinishReason, Model, ModelChunk, ModelRequest, word_chunks};
use crate::error::ModelError;
use crate::message::{ContentPart, Message, Role, Usage};
use crate::tokens::{CountMethod, TokenCount};

/// A model that answers with a prefix plus the last user message. For trying
/// the full loop without a key or a network.
///
/// Usage is synthetic: one input token per whitespace-separated word of the
/// transcript, one output token per word of the reply.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use loomflow_model::model::{EchoModel, Model, ModelRequest};
/// use loomflow_model::Message;
///
/// let msgs = [Message::user("hello there")];
/// let out = EchoModel::new().complete(ModelRequest::new(&msgs)).await.unwrap();
/// assert_eq!(out.text, "Echo: hello there");
/// assert_eq!(out.usage.output_tokens, 3);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct EchoModel {
    prefix: String,
    cost_per_token: f64,
}

impl Default for EchoModel {
    fn default() -> Self {
        Self::new()
    }
}

impl EchoModel {
    /// An echo model with the prefix `"Echo: "`.
    pub fn new() -> Self {
        Self {
            prefix: "Echo: ".into(),
            cost_per_token: 0.0,
        }
    }

    /// Replaces the prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Charges `cost` dollars per synthetic token.
    pub fn with_cost_per_token(mut self, cost: f64) -> Self {
        self.cost_per_token = cost;
        self
    }

    fn reply(&self, messages: &[Message]) -> (String, Usage) {
        let last_user = messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(Message::text_content)
            .unwrap_or_default();
        let text = format!("{}{}", self.prefix, last_user);
        let input_tokens = input_tokens(messages);
        let output_tokens = (text.split_whitespace().count() as u64).max(1);
        let usage = Usage {
            input_tokens,
            output_tokens,
            cost_usd: (input_tokens + output_tokens) as f64 * self.cost_per_token,
            ..Usage::default()
        };
        (text, usage)
    }
}

/// The echo model's synthetic input usage: whitespace-separated words.
fn input_tokens(messages: &[Message]) -> u64 {
    messages
        .iter()
        .flat_map(|m| &m.content)
        .map(|part| match part {
            ContentPart::Text { text } => text.split_whitespace().count() as u64,
            _ => 0,
        })
        .sum()
}

#[async_trait]
impl Model for EchoModel {
    fn name(&self) -> &str {
        "echo"
    }

    async fn stream(&self, request: ModelRequest<'_>) -> Result<ChunkStream, ModelError> {
        let (text, usage) = self.reply(request.messages);
        let mut chunks: Vec<Result<ModelChunk, ModelError>> = word_chunks(&text)
            .map(|w| Ok(ModelChunk::Text { text: w.to_owned() }))
            .collect();
        chunks.push(Ok(ModelChunk::Finish {
            finish_reason: FinishReason::Stop,
            usage,
        }));
        Ok(Box::pin(futures_util::stream::iter(chunks)))
    }

    async fn complete(&self, request: ModelRequest<'_>) -> Result<Completion, ModelError> {
        let (text, usage) = self.reply(request.messages);
        Ok(Completion {
            text,
            tool_calls: Vec::new(),
            usage,
            finish_reason: FinishReason::Stop,
            reasoning: Vec::new(),
        })
    }

    /// Exactly the input usage a call would report (its synthetic word
    /// count), so it is the echo model's own count.
    async fn count_tokens(&self, request: ModelRequest<'_>) -> Result<TokenCount, ModelError> {
        Ok(TokenCount::new(
            input_tokens(request.messages),
            CountMethod::Provider,
        ))
    }
}
