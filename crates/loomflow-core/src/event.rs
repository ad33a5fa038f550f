//! [`Event`]: what a run reports while it runs.
//!
//! Events serialise exactly like the reference framework's:
//! `{"kind": "tool_call", "session_id": "sess_…", "at": "…", "payload": {"call": {…}}}`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::SessionId;
use crate::message::{ToolCall, ToolResult};
use crate::model::ModelChunk;

/// One event of a run, stamped with its session and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// What happened, with its payload.
    #[serde(flatten)]
    pub kind: EventKind,
    /// The session of the run that emitted it.
    pub session_id: SessionId,
    /// When it was emitted.
    pub at: DateTime<Utc>,
}

impl Event {
    /// Stamps `kind` with `session_id` and the current time.
    pub fn new(session_id: SessionId, kind: EventKind) -> Self {
        Self {
            kind,
            session_id,
            at: Utc::now(),
        }
    }

    /// The event's kind name, as serialised (`"model_chunk"`, …).
    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }
}

/// The kinds of [`Event`] and their payloads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// The run began.
    Started {
        /// The input.
        prompt: String,
    },
    /// A piece of the model's streamed reply.
    ModelChunk {
        /// The chunk.
        chunk: ModelChunk,
    },
    /// A tool is about to be called (after the gate stamped it).
    ToolCall {
        /// The call.
        call: ToolCall,
    },
    /// A tool call finished, failed or was denied.
    ToolResult {
        /// The result.
        result: ToolResult,
    },
    /// Spend crossed the soft-warning threshold.
    BudgetWarning {
        /// The budget's status.
        status: serde_json::Value,
    },
    /// Spend hit a cap; the run stops.
    BudgetExceeded {
        /// The budget's status.
        status: serde_json::Value,
    },
    /// The run failed.
    Error {
        /// The error's type name (`"ModelError"`, …).
        #[serde(rename = "type")]
        error_type: String,
        /// The message.
        message: String,
    },
    /// The run finished; `result` is the serialised run result.
    Completed {
        /// The run result as JSON.
        result: serde_json::Value,
    },
    /// An architecture-specific event (`react.steering_injected`, `plan.created`, …).
    ArchitectureEvent {
        /// Dotted event name.
        name: String,
        /// Event data, flattened next to `name`.
        #[serde(flatten)]
        data: serde_json::Map<String, serde_json::Value>,
    },
    /// A workflow run began.
    WorkflowStarted {
        /// The workflow's name.
        workflow: String,
        /// Its input.
        input: serde_json::Value,
    },
    /// A workflow node began.
    WorkflowStepStarted {
        /// The node.
        node: String,
        /// Its input.
        input: serde_json::Value,
    },
    /// A workflow node finished.
    WorkflowStepCompleted {
        /// The node.
        node: String,
        /// Its output.
        output: serde_json::Value,
    },
    /// A workflow node failed.
    WorkflowStepFailed {
        /// The node.
        node: String,
        /// The error.
        error: String,
    },
    /// A workflow run finished.
    WorkflowCompleted {
        /// The final output.
        output: serde_json::Value,
        /// True when a cap or an interrupted node stopped it.
        interrupted: bool,
        /// Why it stopped early.
        interruption_reason: Option<String>,
    },
}

impl EventKind {
    /// The serialised kind name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Started { .. } => "started",
            Self::ModelChunk { .. } => "model_chunk",
            Self::ToolCall { .. } => "tool_call",
            Self::ToolResult { .. } => "tool_result",
            Self::BudgetWarning { .. } => "budget_warning",
            Self::BudgetExceeded { .. } => "budget_exceeded",
            Self::Error { .. } => "error",
            Self::Completed { .. } => "completed",
            Self::ArchitectureEvent { .. } => "architecture_event",
            Self::WorkflowStarted { .. } => "workflow_started",
            Self::WorkflowStepStarted { .. } => "workflow_step_started",
            Self::WorkflowStepCompleted { .. } => "workflow_step_completed",
            Self::WorkflowStepFailed { .. } => "workflow_step_failed",
            Self::WorkflowCompleted { .. } => "workflow_completed",
        }
    }
}
