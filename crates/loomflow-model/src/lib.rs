//! The model port of loomflow and the vocabulary it speaks.
//!
//! Messages, tool calls and definitions, usage, output schemas, the
//! [`Model`] trait with its chunks and capabilities, the echo
//! and scripted models, and the errors all of these return. Provider crates
//! (`loomflow-openai`, `loomflow-anthropic`, …) depend on this crate alone;
//! `loomflow-core` re-exports everything here under the same paths and
//! registers the providers whose features are on, so `.model("gpt-4.1-mini")`
//! resolves without any setup call.

pub mod effort;
pub mod embed;
pub mod error;
#[cfg(feature = "http")]
pub mod http;
pub mod message;
pub mod model;
pub mod output;
pub mod pricing;
pub mod redact;
pub mod secrets;
pub mod sse;
pub mod tokens;

pub use effort::{Effort, PromptCache};
pub use embed::Embedder;
pub use error::{ConfigError, IdError, ModelError};
pub use message::{ContentPart, Image, Message, Role, ToolCall, ToolDef, ToolResult, Usage};
pub use model::{
    ChunkStream, Completion, EchoModel, FinishReason, Model, ModelCapabilities, ModelChunk,
    ModelRequest, ScriptedModel, ScriptedTurn,
};
pub use output::OutputSchema;
pub use tokens::{CountMethod, TokenCount};

/// A fresh id: `prefix`, an underscore and a ULID (`tcall_01J…`).
///
/// ```
/// let id = loomflow_model::new_id("tcall");
/// assert!(id.starts_with("tcall_") && id.len() == 6 + 26);
/// ```
pub fn new_id(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 27);
    out.push_str(prefix);
    out.push('_');
    let ulid = ulid::Ulid::new();
    let mut buf = [0u8; ulid::ULID_LEN];
    out.push_str(ulid.array_to_str(&mut buf));
    out
}
