//! The small trait the registry talks to. The MCP SDK lives behind it (in
//! `rmcp_session`), so an SDK major version changes one module, not the
//! registry.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use loomflow_core::journal::CallContext;
use loomflow_core::message::Message;
use loomflow_core::model::Model;
use serde_json::{Map, Value};

use crate::content::{McpPrompt, McpResource, ResourceContent};

/// A tool as a server lists it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RemoteTool {
    pub name: String,
    pub description: String,
    pub input_schema: Map<String, Value>,
    /// `destructiveHint` (MCP's default: true), unless `readOnlyHint`.
    pub destructive: bool,
}

/// What a finished call gave back, already in loomflow's terms.
#[derive(Debug)]
pub(crate) struct CallOutput {
    /// What the model reads.
    pub output: Value,
    /// The server flagged the result as an error (`isError`).
    pub is_error: bool,
}

/// Why a request to a server did not give an answer.
#[derive(Debug)]
pub(crate) enum SessionError {
    /// The connection is gone (the process exited, the HTTP session ended).
    Closed,
    /// No answer in time; the request was cancelled on the server.
    Timeout,
    /// The server answered with an error, or something else went wrong.
    Failed(String),
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Closed => f.write_str("the connection is closed"),
            Self::Timeout => f.write_str("no answer in time"),
            Self::Failed(message) => f.write_str(message),
        }
    }
}

/// What a session reports back to its registry, and answers servers with.
#[derive(Clone)]
pub(crate) struct Hooks {
    /// Called when the server says its tool list changed.
    pub on_tools_changed: Arc<dyn Fn() + Send + Sync>,
    /// Answers the server's sampling requests; without it the client does
    /// not offer sampling.
    pub sampler: Option<Arc<dyn Model>>,
}

/// One live connection to one server.
#[async_trait]
pub(crate) trait Session: Send + Sync {
    /// Every tool (all pages).
    async fn tools(&self) -> Result<Vec<RemoteTool>, SessionError>;

    /// Calls `tool`, giving up after `timeout`. Progress the server reports
    /// goes to `call` while it runs.
    async fn call(
        &self,
        tool: &str,
        args: Option<Map<String, Value>>,
        timeout: Duration,
        call: Option<&CallContext>,
    ) -> Result<CallOutput, SessionError>;

    /// Every resource (all pages).
    async fn resources(&self) -> Result<Vec<McpResource>, SessionError>;

    /// Reads the resource at `uri`.
    async fn read_resource(&self, uri: &str) -> Result<Vec<ResourceContent>, SessionError>;

    /// Every prompt (all pages).
    async fn prompts(&self) -> Result<Vec<McpPrompt>, SessionError>;

    /// Renders prompt `name` with `args`.
    async fn prompt(
        &self,
        name: &str,
        args: Map<String, Value>,
    ) -> Result<Vec<Message>, SessionError>;

    /// True once the connection is gone.
    fn is_closed(&self) -> bool;

    /// Ends the session (and its process).
    async fn close(&self);
}
