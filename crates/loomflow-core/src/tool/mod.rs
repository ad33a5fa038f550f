//! Tools: the [`Tool`] trait, the [`ToolHost`] that serves a set of them, and
//! the argument handling the `#[tool]` macro relies on.

mod args;
mod deferred;
mod gate;
mod host;

use std::sync::Arc;

use async_trait::async_trait;

pub use args::{coerce_args, parse_args, tool_schema};
pub use deferred::DeferredToolHost;
pub use gate::{
    AfterToolHook, AllowAll, ApprovalDecision, ApprovalHandler, BeforeToolHook, GateConfig,
    HookDecision, PermissionDecision, Permissions, ToolGate,
};
pub use host::InProcessToolHost;

use crate::error::ToolError;
use crate::message::ToolDef;

/// A named callable with a JSON Schema for its arguments.
///
/// Write tools with the `#[tool]` attribute; implement the trait by hand for
/// tools whose schema is only known at run time.
///
/// ```
/// use async_trait::async_trait;
/// use loomflow_core::tool::Tool;
/// use loomflow_core::{ToolDef, ToolError};
/// use serde_json::{json, Value};
///
/// struct Now { def: ToolDef }
///
/// #[async_trait]
/// impl Tool for Now {
///     fn definition(&self) -> &ToolDef { &self.def }
///     async fn call(&self, _args: &Value) -> Result<Value, ToolError> {
///         Ok(json!("2026-11-21T12:00:00Z"))
///     }
/// }
/// ```
#[async_trait]
pub trait Tool: Send + Sync + 'static {
    /// Name, description, argument schema and flags.
    fn definition(&self) -> &ToolDef;

    /// Runs the tool. `args` is what the model sent; validate it and return a
    /// [`ToolError::InvalidArguments`] that says what was wrong, so the model
    /// can correct itself. The arguments are borrowed: the call record keeps
    /// them for the transcript, and most tools only read them
    /// ([`parse_args`] copies only what needs coercing).
    async fn call(&self, args: &serde_json::Value) -> Result<serde_json::Value, ToolError>;
}

/// A set of tools the agent can list and call: in-process, an MCP registry, a
/// sandbox wrapping another host, …
#[async_trait]
pub trait ToolHost: Send + Sync + 'static {
    /// The tools on offer. Cheap to call once per turn.
    async fn list_tools(&self) -> Result<Arc<[ToolDef]>, ToolError>;

    /// The tools on offer when the host holds them in memory, without
    /// waiting (an in-process registry does); `None`, the default, sends
    /// callers to [`list_tools`](Self::list_tools). The agent loop asks this
    /// first every turn, which keeps a boxed future off its hot path.
    fn tools_at_hand(&self) -> Option<Arc<[ToolDef]>> {
        None
    }

    /// Calls `name` with `args`. `call_id` identifies the call (for
    /// idempotency keys and logs).
    async fn call(
        &self,
        name: &str,
        args: &serde_json::Value,
        call_id: &str,
    ) -> Result<serde_json::Value, ToolError>;
}
