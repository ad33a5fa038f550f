use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;

use super::{Tool, ToolHost};
use crate::error::ToolError;
use crate::message::ToolDef;

/// One immutable generation of the host's tools.
#[derive(Default)]
struct Index {
    /// In registration order (the order the model sees them in).
    tools: Vec<Arc<dyn Tool>>,
    defs: Arc<[ToolDef]>,
    /// Positions in `tools`, sorted by name: a lookup is a binary search
    /// over names, with no hashing.
    by_name: Box<[usize]>,
}

impl Index {
    fn build(tools: Vec<Arc<dyn Tool>>) -> Self {
        let defs: Arc<[ToolDef]> = tools.iter().map(|t| t.definition().clone()).collect();
        let mut by_name: Box<[usize]> = (0..defs.len()).collect();
        by_name.sort_unstable_by(|&a, &b| defs[a].name.cmp(&defs[b].name));
        Self {
            tools,
            defs,
            by_name,
        }
    }

    fn find(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        let at = self
            .by_name
            .binary_search_by(|&i| self.defs[i].name.as_str().cmp(name))
            .ok()?;
        self.tools.get(self.by_name[at])
    }

    /// The index without `name`.
    fn without(&self, name: &str) -> Vec<Arc<dyn Tool>> {
        self.tools
            .iter()
            .filter(|t| t.definition().name != name)
            .cloned()
            .collect()
    }
}

/// Tools that run in this process. Registering or removing a tool swaps an
/// immutable index, so listing and calling never wait on a writer. Reading
/// the index takes no lock and leaves its reference count alone; a call
/// still clones the tool it runs, and a listing the list it returns.
///
/// Registering a tool whose name is taken replaces the old one.
#[derive(Clone, Default)]
pub struct InProcessToolHost {
    index: Arc<ArcSwap<Index>>,
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

    /// Adds (or replaces, by name) a tool.
    pub fn register(&self, tool: Arc<dyn Tool>) {
        let name = tool.definition().name.clone();
        self.index.rcu(|current| {
            let mut tools = current.without(&name);
            tools.push(tool.clone());
            Arc::new(Index::build(tools))
        });
    }

    /// Removes a tool; true if it was there.
    pub fn unregister(&self, name: &str) -> bool {
        let mut removed = false;
        self.index.rcu(|current| {
            removed = current.find(name).is_some();
            if removed {
                Arc::new(Index::build(current.without(name)))
            } else {
                Arc::clone(current)
            }
        });
        removed
    }

    /// The tool called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.index.load().find(name).cloned()
    }

    /// Tool names in registration order.
    pub fn names(&self) -> Vec<String> {
        self.index
            .load()
            .defs
            .iter()
            .map(|d| d.name.clone())
            .collect()
    }
}

#[async_trait]
impl ToolHost for InProcessToolHost {
    async fn list_tools(&self) -> Result<Arc<[ToolDef]>, ToolError> {
        Ok(self.index.load().defs.clone())
    }

    fn tools_at_hand(&self) -> Option<Arc<[ToolDef]>> {
        Some(self.index.load().defs.clone())
    }

    async fn call(
        &self,
        name: &str,
        args: &serde_json::Value,
        _call_id: &str,
    ) -> Result<serde_json::Value, ToolError> {
        let tool = {
            let index = self.index.load();
            match index.find(name).cloned() {
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
