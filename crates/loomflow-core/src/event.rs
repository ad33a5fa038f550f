//! [`Event`]: what a run reports while it runs.
//!
//! Events serialise exactly like the reference framework's:
//! `{"kind": "tool_call", "session_id": "sess_…", "at": "…", "payload": {"call": {…}}}`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

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
    /// The workflow node whose run emitted it, as a `/`-separated path from
    /// the outermost workflow (`"triage"`, `"research/summarise"`). Absent for
    /// the events of the top-level run itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Arc<str>>,
}

impl Event {
    /// Stamps `kind` with `session_id` and the current time.
    pub fn new(session_id: SessionId, kind: EventKind) -> Self {
        Self {
            kind,
            session_id,
            at: Utc::now(),
            node: None,
        }
    }

    /// The event's kind name, as serialised (`"model_chunk"`, …).
    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }
}

/// Where a run sends its events: a bounded channel, and the workflow node
/// the events are attributed to. A run that forwards its events into another
/// run's stream (an Agent as a workflow node) gets a [`nested`](Self::nested)
/// sink.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: mpsc::Sender<Event>,
    node: Option<Arc<str>>,
}

impl EventSink {
    /// A sink sending to `tx`, unattributed.
    pub fn new(tx: mpsc::Sender<Event>) -> Self {
        Self { tx, node: None }
    }

    /// The node path events are attributed to.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// A sink into the same channel for events of node `node`, nested under
    /// this sink's node.
    pub fn nested(&self, node: &str) -> Self {
        let path: Arc<str> = match &self.node {
            Some(parent) => format!("{parent}/{node}").into(),
            None => node.into(),
        };
        Self {
            tx: self.tx.clone(),
            node: Some(path),
        }
    }

    /// Sends the event built by `make`, waiting while the channel is full
    /// (backpressure). The event is built only once there is room, and not
    /// at all when the receiver is gone (the stream was dropped).
    pub async fn send(&self, session_id: &SessionId, make: impl FnOnce() -> EventKind) {
        if let Ok(permit) = self.tx.reserve().await {
            permit.send(Event {
                kind: make(),
                session_id: session_id.clone(),
                at: Utc::now(),
                node: self.node.clone(),
            });
        }
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
    /// A running tool reported how far it has come (an MCP server's
    /// progress notification, or [`CallContext::progress`](crate::journal::CallContext::progress)).
    ToolProgress {
        /// The call's id.
        call_id: String,
        /// The tool.
        tool: String,
        /// How far it has come.
        progress: f64,
        /// What `progress` counts up to, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total: Option<f64>,
        /// What it is doing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
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
        /// The workflow's name.
        workflow: String,
        /// The node.
        node: String,
    },
    /// A workflow node finished (or came back interrupted).
    WorkflowStepCompleted {
        /// The workflow's name.
        workflow: String,
        /// The node.
        node: String,
        /// Its output (the partial output when interrupted).
        output: serde_json::Value,
        /// True when the node (an Agent or Workflow) was interrupted.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        interrupted: bool,
        /// Why the node was interrupted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interruption_reason: Option<String>,
    },
    /// A workflow node failed.
    WorkflowStepFailed {
        /// The workflow's name.
        workflow: String,
        /// The node.
        node: String,
        /// The error.
        error: String,
    },
    /// A workflow run finished.
    WorkflowCompleted {
        /// The workflow's name.
        workflow: String,
        /// The final output.
        output: serde_json::Value,
        /// True when an interrupted node stopped it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        interrupted: bool,
        /// `"<node>:<reason>"` when interrupted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interruption_reason: Option<String>,
    },
}

impl EventKind {
    /// A `tool_progress` event as one line, `tool 2/4: message` (`None`
    /// for every other kind).
    ///
    /// ```
    /// use loomflow_core::EventKind;
    /// let e = EventKind::ToolProgress {
    ///     call_id: "c1".into(),
    ///     tool: "crawl".into(),
    ///     progress: 2.0,
    ///     total: Some(4.0),
    ///     message: Some("page 2".into()),
    /// };
    /// assert_eq!(e.progress_line().as_deref(), Some("crawl 2/4: page 2"));
    /// ```
    pub fn progress_line(&self) -> Option<String> {
        let Self::ToolProgress {
            tool,
            progress,
            total,
            message,
            ..
        } = self
        else {
            return None;
        };
        let mut line = format!("{tool} {progress}");
        if let Some(total) = total {
            line.push_str(&format!("/{total}"));
        }
        if let Some(message) = message {
            line.push_str(": ");
            line.push_str(message);
        }
        Some(line)
    }

    /// The serialised kind name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Started { .. } => "started",
            Self::ModelChunk { .. } => "model_chunk",
            Self::ToolCall { .. } => "tool_call",
            Self::ToolResult { .. } => "tool_result",
            Self::ToolProgress { .. } => "tool_progress",
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
