//! # loomflow-workflow
//!
//! The developer-controlled graph, peer of the [`Agent`](loomflow_core::Agent):
//! nodes are async fns, sync fns ([`blocking`]), Agents, other Workflows or
//! any [`Node`]; edges fan out, routers branch, several in-edges make an
//! AND-join, cycles run under caps.
//!
//! Three ways to build one: plain async fns composed by hand, the sugar
//! constructors ([`Workflow::chain`], [`Workflow::route`],
//! [`Workflow::parallel`]), and the explicit [`WorkflowBuilder`].

mod error;
pub mod file;
mod graph;
mod node;
mod render;
mod router;
mod stream;
mod sugar;
mod tool;
mod workflow;

pub use error::WorkflowError;
pub use graph::WorkflowBuilder;
pub use node::{
    Blocking, BoxError, InputMismatch, IntoNode, IntoNodeResult, Json, Node, NodeContext, NodeName,
    NodeOutcome, Step, blocking, input_as,
};
pub use router::{Classifier, Router};
pub use stream::WorkflowStream;
pub use sugar::Parallel;
pub use tool::WorkflowTool;
pub use workflow::{Workflow, WorkflowRequest, WorkflowResult};

/// The entry of the graph, as an edge source: `add_edge(START, "first")`.
pub const START: &str = "__start__";

/// The exit of the graph, as an edge or route target: `add_edge("last", END)`.
pub const END: &str = "__end__";
