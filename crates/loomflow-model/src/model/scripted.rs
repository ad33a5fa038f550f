use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{ChunkStream, Completion, FinishReason, Model, ModelChunk, ModelRequest, word_chunks};
use crate::error::ModelError;
use crate::message::{ToolCall, Usage};

/// One scripted reply: text and/or tool calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedTurn {
    /// The reply's text.
    #[serde(default)]
    pub text: String,
    /// Tool calls to request.
    #[serde(default)]
    pub tool_calls: Vec<ScriptedCall>,
    /// The usage to report.
    #[serde(default)]
    pub usage: Usage,
}

/// A scripted tool call; it gets a fresh `tcall_…` id each time it is played.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedCall {
    /// The tool's name.
    pub name: String,
    /// Its arguments.
    #[serde(default = "empty_object")]
    pub args: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

impl ScriptedTurn {
    /// A turn that replies with `text`.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }

    /// A turn that calls `tool` with `args`.
    pub fn tool_call(tool: impl Into<String>, args: serde_json::Value) -> Self {
        Self::default().and_tool_call(tool, args)
    }

    /// Adds another tool call to this turn.
    pub fn and_tool_call(mut self, tool: impl Into<String>, args: serde_json::Value) -> Self {
        self.tool_calls.push(ScriptedCall {
            name: tool.into(),
            args,
        });
        self
    }

    /// Sets the usage this turn reports.
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = usage;
        self
    }

    fn calls(&self) -> Vec<ToolCall> {
        self.tool_calls
            .iter()
            .map(|c| ToolCall::new(c.name.clone(), c.args.clone()))
            .collect()
    }
}

/// A model that plays back a fixed list of turns, one per call, shared across
/// every run that uses it. When the script is exhausted it answers with empty
/// text. Clones share the same position.
///
/// ```
/// use loomflow_model::model::{ScriptedModel, ScriptedTurn};
/// use serde_json::json;
///
/// let model = ScriptedModel::new([
///     ScriptedTurn::tool_call("lookup", json!({"q": "rust"})),
///     ScriptedTurn::text("Rust is a language."),
/// ]);
/// assert_eq!(model.remaining(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct ScriptedModel {
    turns: Arc<[ScriptedTurn]>,
    next: Arc<AtomicUsize>,
}

impl ScriptedModel {
    /// A model that plays `turns` in order.
    pub fn new(turns: impl IntoIterator<Item = ScriptedTurn>) -> Self {
        Self {
            turns: turns.into_iter().collect(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Turns not yet played.
    pub fn remaining(&self) -> usize {
        self.turns
            .len()
            .saturating_sub(self.next.load(Ordering::Acquire))
    }

    fn take(&self) -> Option<&ScriptedTurn> {
        let i = self.next.fetch_add(1, Ordering::AcqRel);
        self.turns.get(i)
    }
}

fn finish_for(calls: &[ToolCall]) -> FinishReason {
    if calls.is_empty() {
        FinishReason::Stop
    } else {
        FinishReason::ToolUse
    }
}

#[async_trait]
impl Model for ScriptedModel {
    fn name(&self) -> &str {
        "scripted"
    }

    async fn stream(&self, _request: ModelRequest<'_>) -> Result<ChunkStream, ModelError> {
        let mut chunks = Vec::new();
        let (calls, usage) = match self.take() {
            Some(turn) => {
                chunks.extend(
                    word_chunks(&turn.text).map(|w| Ok(ModelChunk::Text { text: w.to_owned() })),
                );
                (turn.calls(), turn.usage)
            }
            None => (Vec::new(), Usage::default()),
        };
        let finish_reason = finish_for(&calls);
        chunks.extend(
            calls
                .into_iter()
                .map(|tool_call| Ok(ModelChunk::ToolCall { tool_call })),
        );
        chunks.push(Ok(ModelChunk::Finish {
            finish_reason,
            usage,
        }));
        Ok(Box::pin(futures_util::stream::iter(chunks)))
    }

    async fn complete(&self, _request: ModelRequest<'_>) -> Result<Completion, ModelError> {
        Ok(match self.take() {
            Some(turn) => {
                let tool_calls = turn.calls();
                Completion {
                    text: turn.text.clone(),
                    finish_reason: finish_for(&tool_calls),
                    tool_calls,
                    usage: turn.usage,
                    reasoning: Vec::new(),
                }
            }
            None => Completion::default(),
        })
    }
}
