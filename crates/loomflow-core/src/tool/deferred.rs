//! A tool host that is connected after the agent is built.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use serde_json::Value;

use super::ToolHost;
use crate::error::ToolError;
use crate::message::ToolDef;

/// A tool host filled in after the agent using it was built: a declarative
/// workflow file builds its agents as it loads, but connecting an agent's
/// MCP servers is asynchronous, so the loader gives the agent one of these
/// and the caller [`fill`](Self::fill)s it (`loomflow::connect_workflow_mcp`
/// does). Clones share the slot. Until it is filled, a run that lists
/// tools fails with a message saying what to call.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use loomflow_core::tool::{DeferredToolHost, InProcessToolHost, ToolHost};
///
/// let deferred = DeferredToolHost::new("agents.coder.mcp");
/// let err = deferred.list_tools().await.unwrap_err();
/// assert!(err.to_string().contains("agents.coder.mcp"));
/// deferred.fill(Arc::new(InProcessToolHost::default())).unwrap();
/// assert!(deferred.list_tools().await.unwrap().is_empty());
/// # });
/// ```
#[derive(Clone)]
pub struct DeferredToolHost {
    what: Arc<str>,
    host: Arc<OnceLock<Arc<dyn ToolHost>>>,
}

impl std::fmt::Debug for DeferredToolHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredToolHost")
            .field("what", &self.what)
            .field("filled", &self.is_filled())
            .finish()
    }
}

impl DeferredToolHost {
    /// An empty slot for `what` (named in the error a run gets before it
    /// is filled, such as `agents.coder.mcp`).
    pub fn new(what: impl Into<Arc<str>>) -> Self {
        Self {
            what: what.into(),
            host: Arc::default(),
        }
    }

    /// What the slot is for.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Puts `host` in the slot. A slot is filled once; filling it again is
    /// an error (the first host stays).
    pub fn fill(&self, host: Arc<dyn ToolHost>) -> Result<(), ToolError> {
        self.host.set(host).map_err(|_| {
            ToolError::failed(format!("the tools of {} are already connected", self.what))
        })
    }

    /// True once [`fill`](Self::fill)ed.
    pub fn is_filled(&self) -> bool {
        self.host.get().is_some()
    }

    fn host(&self) -> Result<&Arc<dyn ToolHost>, ToolError> {
        self.host.get().ok_or_else(|| ToolError::Unavailable {
            tool: self.what.to_string(),
            reason: format!(
                "the MCP servers of {} were never connected; call \
                 `loomflow::connect_workflow_mcp(&workflow).await` after loading the file \
                 (`loomflow run` does)",
                self.what
            ),
        })
    }
}

#[async_trait]
impl ToolHost for DeferredToolHost {
    async fn list_tools(&self) -> Result<Arc<[ToolDef]>, ToolError> {
        self.host()?.list_tools().await
    }

    fn tools_at_hand(&self) -> Option<Arc<[ToolDef]>> {
        self.host.get().and_then(|h| h.tools_at_hand())
    }

    async fn call(&self, name: &str, args: &Value, call_id: &str) -> Result<Value, ToolError> {
        self.host()?.call(name, args, call_id).await
    }
}
