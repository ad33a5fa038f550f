//! Anthropic's Messages API (Claude) for loomflow.
//!
//! [`AnthropicModel`] streams text, thinking and tool-use blocks over SSE
//! (`input_json_delta` accumulated per block, several tool calls per turn),
//! keeps signed thinking blocks on the assistant message so the next turn
//! replays them, asks for structured output through JSON outputs or a forced
//! synthetic tool, maps [`Effort`](loomflow_model::Effort) to adaptive
//! thinking or a thinking budget per model, places up to four
//! `cache_control` breakpoints for [`PromptCache`](loomflow_model::PromptCache)
//! and reports cached and cache-write tokens with their cost. HTTP and
//! in-stream failures (`overloaded_error`, `rate_limit_error`, …) come back
//! as classified [`ModelError`](loomflow_model::ModelError)s for the retry
//! and fallback layers.
//!
//! With the `anthropic` feature of `loomflow`, `claude-*` model strings
//! resolve with no setup (key from `ANTHROPIC_API_KEY`), each wrapped in the
//! default [`RetryPolicy`].

mod effort;
mod model;
mod schema;
mod stream;
mod wire;

use std::sync::Arc;

use loomflow_model::Model;
use loomflow_model::model::registry::{ModelPattern, Registration};
use loomflow_model::model::retry::{RetryPolicy, Retrying};
pub use model::{API_VERSION, AnthropicBuilder, AnthropicModel, DEFAULT_MAX_TOKENS};
pub use schema::json_output_schema;

/// The model strings this crate answers to, for the registry: `claude-*`.
pub fn registrations() -> Vec<Registration> {
    vec![Registration::new(
        ModelPattern::Prefix("claude-".into()),
        |spec: &str| {
            AnthropicModel::new(spec)
                .map(|m| Arc::new(Retrying::new(m, RetryPolicy::default())) as Arc<dyn Model>)
        },
    )]
}
