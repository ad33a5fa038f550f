//! [`WorkflowError`]: everything that can go wrong building or running a
//! workflow, each naming the nodes involved.

use loomflow_core::error::IdError;

use crate::node::BoxError;

/// A workflow failed to build or to run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkflowError {
    /// The run's journal failed (opening or closing the run).
    #[error("workflow `{workflow}`: {source}")]
    Journal {
        /// The workflow.
        workflow: String,
        /// What the journal said.
        source: loomflow_core::JournalError,
    },
    /// Two nodes share a name.
    #[error(
        "workflow `{workflow}`: node `{node}` is already registered; node names must be unique"
    )]
    DuplicateNode {
        /// The workflow.
        workflow: String,
        /// The node.
        node: String,
    },
    /// A node name is empty or reserved.
    #[error(
        "workflow `{workflow}`: `{node}` cannot name a node (names must be non-empty and `__start__` / `__end__` are reserved)"
    )]
    ReservedName {
        /// The workflow.
        workflow: String,
        /// The name.
        node: String,
    },
    /// An edge, route or start names a node that was never added.
    #[error(
        "workflow `{workflow}`: {edge} names unknown node `{node}`; add_node(\"{node}\", …) first or fix the name"
    )]
    UnknownNode {
        /// The workflow.
        workflow: String,
        /// The edge, as `source -> target`.
        edge: String,
        /// The unknown node.
        node: String,
    },
    /// An edge that cannot exist (`END` as a source, `START` as a target).
    #[error("workflow `{workflow}`: {message}")]
    InvalidEdge {
        /// The workflow.
        workflow: String,
        /// What was wrong.
        message: String,
    },
    /// A router shares its source with other edges or another router.
    #[error(
        "workflow `{workflow}`: node `{source_node}` has a router and other outgoing edges; a router must be the only way out of its source"
    )]
    RouterBesideEdges {
        /// The workflow.
        workflow: String,
        /// The source node (`START` for the entry).
        source_node: String,
    },
    /// No entry point.
    #[error(
        "workflow `{workflow}` has no start node; call set_start(name), add_edge(START, name) or add_router(START, …)"
    )]
    NoStart {
        /// The workflow.
        workflow: String,
    },
    /// The entry point was set twice.
    #[error(
        "workflow `{workflow}`: the start is set twice (`{first}`, then `{second}`); set it once"
    )]
    StartSetTwice {
        /// The workflow.
        workflow: String,
        /// The first start.
        first: String,
        /// The second.
        second: String,
    },
    /// Nodes from which END cannot be reached.
    #[error(
        "workflow `{workflow}`: no path to END from {}; add an edge to END (or a route to a node that reaches it)",
        .nodes.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
    )]
    NoPathToEnd {
        /// The workflow.
        workflow: String,
        /// The nodes, in declaration order.
        nodes: Vec<String>,
    },
    /// A sugar constructor was given nothing to build.
    #[error("{what} needs at least one step")]
    Empty {
        /// The constructor (`chain`, `route`, `parallel`).
        what: &'static str,
    },
    /// The run took more steps than `max_steps`.
    #[error(
        "workflow `{workflow}` exceeded max_steps={max} at node `{node}`; raise the cap or fix the routing that keeps re-entering nodes"
    )]
    MaxSteps {
        /// The workflow.
        workflow: String,
        /// The node about to run.
        node: String,
        /// The cap.
        max: u32,
    },
    /// A node was entered more than `max_visits_per_node` times.
    #[error(
        "workflow `{workflow}` re-entered `{node}` more than max_visits_per_node={max} times; the router controlling the loop probably never picks the way out"
    )]
    MaxVisits {
        /// The workflow.
        workflow: String,
        /// The node.
        node: String,
        /// The cap.
        max: u32,
    },
    /// A router's key matched no route and there is no default.
    #[error(
        "workflow `{workflow}`: the router on `{source_node}` produced key {key:?}, which matches no route ({}) and there is no default",
        .routes.join(", ")
    )]
    NoRoute {
        /// The workflow.
        workflow: String,
        /// The router's source (`START` for the entry).
        source_node: String,
        /// The key.
        key: String,
        /// The valid keys.
        routes: Vec<String>,
    },
    /// A router's classifier failed.
    #[error("workflow `{workflow}`: the router on `{source_node}` failed: {source}")]
    Classifier {
        /// The workflow.
        workflow: String,
        /// The router's source.
        source_node: String,
        /// The classifier's error.
        source: BoxError,
    },
    /// A value could not be converted to the next node's input type.
    #[error(
        "workflow `{workflow}`: node `{to}` cannot take the output of {} as `{expected}`: {message}",
        .from.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(" + ")
    )]
    InputMismatch {
        /// The workflow.
        workflow: String,
        /// The node(s) whose output was delivered (`START` for the input).
        from: Vec<String>,
        /// The receiving node.
        to: String,
        /// The type it expects.
        expected: &'static str,
        /// What serde said.
        message: String,
    },
    /// A node returned an error; `source` is the node's original error
    /// (downcast it to get your type back).
    #[error("workflow `{workflow}`: node `{node}` failed: {source}")]
    NodeFailed {
        /// The workflow.
        workflow: String,
        /// The node.
        node: String,
        /// The node's error.
        source: BoxError,
    },
    /// A malformed user or session id.
    #[error(transparent)]
    Id(#[from] IdError),
    /// The run was cancelled (its stream dropped, its task aborted).
    #[error("workflow run cancelled")]
    Cancelled,
    /// A declarative workflow file is wrong.
    #[error("{file}{}: {message}", .line.map(|l| format!(":{l}")).unwrap_or_default())]
    File {
        /// The file.
        file: String,
        /// The line, when known.
        line: Option<usize>,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A bug or a broken invariant.
    #[error("internal error: {0}")]
    Internal(String),
}

impl WorkflowError {
    /// The error's type name, as reported in `error` events.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::NodeFailed { .. } => "NodeError",
            Self::MaxSteps { .. } | Self::MaxVisits { .. } | Self::NoRoute { .. } => "RuntimeError",
            Self::Classifier { .. } => "RouterError",
            Self::InputMismatch { .. } => "InputError",
            Self::Id(_) => "IdError",
            Self::Journal { .. } => "RuntimeJournalError",
            Self::Cancelled => "Cancelled",
            Self::Internal(_) => "InternalError",
            _ => "ConfigError",
        }
    }
}
