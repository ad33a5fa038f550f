//! The [`Model`] port: anything that turns messages into a streamed reply.
//!
//! The port and its types live in `loomflow-model` (re-exported here under the
//! same names); this module adds the process-wide [`registry`] that resolves
//! model strings, with every provider crate whose feature is on registered.

pub mod registry;

pub use loomflow_model::model::{
    ChunkStream, Completion, EchoModel, FinishReason, Model, ModelCapabilities, ModelChunk,
    ModelRequest, ScriptedModel, ScriptedTurn,
};
pub use loomflow_model::model::{fallback, retry};
pub use registry::{register_model, resolve_model};
