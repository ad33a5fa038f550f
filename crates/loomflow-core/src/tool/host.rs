use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use super::{Tool, ToolHost};
use crate::error::ToolError;
use crate::message::ToolDef;

#[derive(Default)]
struct Index {
    tools: Vec<Arc<dyn Tool>>,
    defs: Arc<[ToolDef]>,
    by_name: HashMap<String, usize>,
}

impl Index {
    fn build(tools: Vec<Arc<dyn Tool>>) -> Self {
        let defs: Arc<[ToolDef]> = tools.iter().map(|t| t.definition().clone()).collect();
        let by_name = defs
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.clone(), i))
            .collect();
        Self {
            tools,
            defs,
            by_name,
        }
    }
}

/// Tools that run in this process. Registering or removing a tool swaps an
/// immutable index, so listing and calling never wait on a writer.
///
/// Registering a tool whose name is taken replaces the old one.
#[derive(Clone, Default)]
pub struct InProcessToolHost {
    index: Arc<RwLock<Arc<Index>>>,
}

impl std::fmt::Debug for InProcessToolHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessToolHost")
            .field("tools", &self.names())
            .finish()
    }
}

impl InProcessToolHost {
    /// A host serving `tools`.
    pub fn new(tools: impl IntoIterator<Item = Arc<dyn Tool>>) -> Self {
        let host = Self::default();
        for t in tools {
            host.register(t);
        }
        host
    }

    fn snapshot(&self) -> Arc<Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Adds (or replaces, by name) a tool.
    pub fn register(&self, tool: Arc<dyn Tool>) {
        let mut guard = self.index.write().unwrap_or_else(|e| e.into_inner());
        let name = tool.definition().name.clone();
        let mut tools: Vec<_> = guard
            .tools
            .iter()
            .filter(|t| t.definition().name != name)
            .cloned()
            .collect();
        tools.push(tool);
        *guard = Arc::new(Index::build(tools));
    }

    /// Removes a tool; true if it was there.
    pub fn unregister(&self, name: &str) -> bool {
        let mut guard = self.index.write().unwrap_or_else(|e| e.into_inner());
        if !guard.by_name.contains_key(name) {
            return false;
        }
        let tools = guard
            .tools
            .iter()
            .filter(|t| t.definition().name != name)
            .cloned()
            .collect();
        *guard = Arc::new(Index::build(tools));
        true
    }

    /// The tool called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        let index = self.snapshot();
        index
            .by_name
            .get(name)
            .and_then(|&i| index.tools.get(i).cloned())
    }

    /// Tool names in registration order.
    pub fn names(&self) -> Vec<String> {
        self.snapshot()
            .defs
            .iter()
            .map(|d| d.name.clone())
            .collect()
    }
}

#[async_trait]
impl ToolHost for InProcessToolHost {
    async fn list_tools(&self) -> Result<Arc<[ToolDef]>, ToolError> {
        Ok(self.snapshot().defs.clone())
    }

    fn tools_at_hand(&self) -> Option<Arc<[ToolDef]>> {
        Some(self.snapshot().defs.clone())
    }

    async fn call(
        &self,
        name: &str,
        args: &serde_json::Value,
        _call_id: &str,
    ) -> Result<serde_json::Value, ToolError> {
        let tool = {
            let index = self.snapshot();
            match index
                .by_name
                .get(name)
                .and_then(|&i| index.tools.get(i).cloned())
            {
                Some(tool) => tool,
                None => {
                    return Err(ToolError::NotFound {
                        tool: name.to_owned(),
                        available: index.defs.iter().map(|d| d.name.clone()).collect(),
                    });
                }
            }
        };
        tool.call(args).await
    }
}
