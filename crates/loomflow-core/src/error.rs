//! Typed errors. Every error says what was wrong and how to fix it.

use std::time::Duration;

pub use loomflow_model::error::{ConfigError, IdError, ModelError, closest};

/// A tool call that could not produce a result. The agent loop turns these into
/// `ERROR: …` tool messages so the model can correct itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The model's arguments did not match the tool's schema.
    #[error("invalid arguments for tool `{tool}`: {message}")]
    InvalidArguments {
        /// The tool.
        tool: String,
        /// What was wrong, field by field.
        message: String,
    },
    /// The model called a tool that does not exist.
    #[error("unknown tool `{tool}`; available tools: {}", .available.join(", "))]
    NotFound {
        /// What was called.
        tool: String,
        /// What exists.
        available: Vec<String>,
    },
    /// The tool ran past its timeout.
    #[error("tool `{tool}` timed out after {:.1}s", .timeout.as_secs_f64())]
    Timeout {
        /// The tool.
        tool: String,
        /// The limit.
        timeout: Duration,
    },
    /// A sandbox refused the call before it ran.
    #[error("sandbox refused `{tool}`: {reason}")]
    Refused {
        /// The tool.
        tool: String,
        /// What was refused and why.
        reason: String,
    },
    /// The tool's provider is gone: an MCP server that exited or dropped
    /// the connection mid-call. Reconnecting (an MCP registry's `refresh`)
    /// may bring it back.
    #[error("tool `{tool}` is unavailable: {reason}")]
    Unavailable {
        /// The tool.
        tool: String,
        /// What happened.
        reason: String,
    },
    /// The tool itself failed.
    #[error("{message}")]
    Failed {
        /// The tool's error message.
        message: String,
    },
}

impl ToolError {
    /// Shorthand for [`ToolError::Failed`]; use it to return an error from a tool.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into(),
        }
    }
}

/// Structured output that still failed validation after every retry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the model's output did not match the output schema after {attempts} attempt(s): {cause}")]
pub struct OutputValidationError {
    /// The model's last raw text.
    pub raw: String,
    /// The JSON Schema it had to match (shared with the agent's schema).
    pub schema: std::sync::Arc<serde_json::Value>,
    /// The last validation error.
    pub cause: String,
    /// How many attempts were made.
    pub attempts: u32,
}

/// Any error a run can end with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Misconfiguration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A model call failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Structured output failed validation.
    #[error(transparent)]
    OutputValidation(#[from] OutputValidationError),
    /// The run exceeded its wall-clock timeout.
    #[error("run timed out after {:.1}s; raise the agent's .timeout(...) or simplify the task", .0.as_secs_f64())]
    RunTimeout(Duration),
    /// A malformed id.
    #[error(transparent)]
    Id(#[from] IdError),
    /// A tool host failed outside any single call (listing its tools, …).
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// The journal failed, or an entry in it does not decode.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// The agent's memory failed (recalling before the run, or storing
    /// the episode after it).
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
    /// The run was cancelled.
    #[error("run cancelled")]
    Cancelled,
    /// A governance layer stopped the run (`budget:max_tokens`, …). The
    /// agent turns this into a clean interruption with a partial result;
    /// an architecture only passes it up.
    #[error("run interrupted: {0}")]
    Interrupted(String),
    /// The rate limiter refused a model call (reject mode).
    #[error(transparent)]
    RateLimited(#[from] crate::rate_limit::RateLimited),
    /// A broken invariant inside loomflow (please report it).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The short type name used in `error` events (`"ModelError"`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Config(_) => "ConfigError",
            Self::Model(_) => "ModelError",
            Self::OutputValidation(_) => "OutputValidationError",
            Self::RunTimeout(_) => "RunTimeout",
            Self::Id(_) => "IdError",
            Self::Tool(_) => "ToolError",
            Self::Journal(_) => "RuntimeJournalError",
            Self::Memory(_) => "MemoryStoreError",
            Self::Cancelled => "Cancelled",
            Self::Interrupted(_) => "Interrupted",
            Self::RateLimited(_) => "RateLimitExceeded",
            Self::Internal(_) => "InternalError",
        }
    }

    /// True if retrying the whole run may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Model(e) => e.is_retryable(),
            Self::RunTimeout(_) | Self::RateLimited(_) => true,
            Self::Journal(e) => matches!(
                e,
                crate::journal::JournalError::Backend { .. }
                    | crate::journal::JournalError::Busy { .. }
            ),
            Self::Memory(e) => matches!(
                e,
                crate::memory::MemoryError::Backend { .. }
                    | crate::memory::MemoryError::Unreachable { .. }
            ),
            _ => false,
        }
    }
}

/// `Result<T, loomflow_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
