//! The loomflow spine.
//!
//! Ids and the [`RunContext`], messages and [`Event`]s, typed errors, the
//! [`Model`] and [`Tool`] ports with in-process
//! defaults, the [`Agent`] and its default [`ReAct`]
//! architecture. Most users depend on the `loomflow` facade crate, which
//! re-exports all of this plus the `#[tool]` macro.

pub mod agent;
pub mod architecture;
pub mod audit;
pub mod bounded;
pub mod budget;
pub mod config;
pub mod context;
pub mod error;
/// The effort dial and prompt caching (from `loomflow-model`).
pub mod effort {
    pub use loomflow_model::effort::*;
}
pub mod event;
pub(crate) mod governance;
pub mod guardrails;
pub mod id;
pub mod job;
pub mod journal;
/// Messages, tool calls and definitions, usage (from `loomflow-model`).
pub mod message {
    pub use loomflow_model::message::*;
}
pub mod memory;
pub mod model;
/// Prices per million tokens and call costs (from `loomflow-model`).
pub mod pricing {
    pub use loomflow_model::pricing::*;
}
/// Where provider keys come from (from `loomflow-model`).
pub mod secrets {
    pub use loomflow_model::secrets::*;
}
/// Structured output schemas (from `loomflow-model`).
pub mod output {
    pub use loomflow_model::output::*;
}
pub mod permissions;
pub mod rate_limit;
/// Redaction of keys and tokens (from `loomflow-model`).
pub mod redact {
    pub use loomflow_model::redact::*;
}
pub mod sandbox;
pub mod step;
pub mod telemetry;
/// Counting a request's input tokens (from `loomflow-model`).
pub mod tokens {
    pub use loomflow_model::tokens::*;
}
pub mod tone;
pub mod tool;

pub use agent::{Agent, AgentBuilder, EventStream, RunRequest, RunResult};
pub use architecture::{AgentSession, Architecture, Emitter, ReAct, RunDeps};
pub use context::{Metadata, RunContext};
pub use effort::{Effort, PromptCache};
pub use error::{
    ConfigError, Error, IdError, ModelError, OutputValidationError, Result, ToolError,
};
pub use event::{Event, EventKind, EventSink};
pub use id::{RunId, SessionId, UserId};
pub use journal::{InMemoryJournal, Journal, JournalError};
pub use loomflow_model::Embedder;
pub use message::{ContentPart, Image, Message, Role, ToolCall, ToolDef, ToolResult, Usage};
pub use model::{EchoModel, Model, ModelChunk, ScriptedModel, ScriptedTurn};
pub use output::OutputSchema;
pub use tone::Tone;
pub use tool::{InProcessToolHost, Tool, ToolHost};

/// Support for the `#[tool]` macro. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use schemars;
    pub use serde;
    pub use serde_json;
    pub use tokio;

    pub use crate::context::{RunContext, spawn_blocking};
    pub use crate::error::ToolError;
    pub use crate::message::ToolDef;
    pub use crate::tool::{Tool, parse_args, tool_schema};

    /// Serialises a tool's return value.
    pub fn output_value<T: serde::Serialize>(value: T) -> Result<serde_json::Value, ToolError> {
        serde_json::to_value(value).map_err(|e| {
            ToolError::failed(format!(
                "the tool's result could not be serialised to JSON: {e}"
            ))
        })
    }
}
