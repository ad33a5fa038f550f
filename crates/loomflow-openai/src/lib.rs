//! OpenAI Chat Completions for loomflow, and any OpenAI-compatible gateway.
//!
//! [`OpenAiModel`] streams over SSE, assembles tool calls per index (several
//! in parallel per turn), reads usage (cached tokens included) from the final
//! chunk and prices it, sends `max_completion_tokens` to the reasoning
//! families, `reasoning_effort`, `prompt_cache_key`, images, and native
//! structured output (`response_format` json_schema, strict, with the schema
//! rewritten to what strict mode accepts). HTTP failures come back as
//! classified [`ModelError`](loomflow_model::ModelError)s, so
//! [`Retrying`] and
//! [`Fallback`](loomflow_model::model::fallback::Fallback) know what to do.
//!
//! [`OpenAiBuilder::responses_api`] switches a model to the Responses API
//! (`POST /responses`): input items, function calls streamed through
//! `response.function_call_arguments.*` and taken whole from
//! `response.output_item.done`, reasoning summaries as thinking text, usage
//! from `response.completed`, `store: false`.
//!
//! [`OpenAiEmbedder`] serves the embeddings endpoint (OpenAI or any
//! compatible server) behind the [`Embedder`](loomflow_model::Embedder) port.
//!
//! With the `openai` feature of `loomflow`, model strings resolve with no
//! setup: `gpt-*`, `o1`, `o1-*`, `o3`, `o3-*`, `o4-*`, `chat-latest` (OpenAI,
//! `OPENAI_API_KEY`) and `deepseek-*` (DeepSeek, `DEEPSEEK_API_KEY`, never the
//! OpenAI key) and `litellm/<model>` (a LiteLLM proxy at `LITELLM_BASE_URL`,
//! `LITELLM_API_KEY`, the prefix stripped). Each resolved model retries transient failures with the
//! default [`RetryPolicy`].

mod count;
mod embed;
mod gateway;
mod model;
mod responses;
mod stream;
pub mod strict;
mod wire;

use std::sync::Arc;

pub use embed::{OpenAiEmbedder, OpenAiEmbedderBuilder};
pub use gateway::{Gateway, GatewaySpec};
use loomflow_model::Model;
use loomflow_model::model::registry::{ModelPattern, Registration};
use loomflow_model::model::retry::{RetryPolicy, Retrying};
pub use model::{OpenAiBuilder, OpenAiModel};

fn resolved(model: OpenAiModel) -> Arc<dyn Model> {
    Arc::new(Retrying::new(model, RetryPolicy::default()))
}

/// The model strings this crate answers to, for the registry.
pub fn registrations() -> Vec<Registration> {
    let openai = |spec: &str| OpenAiModel::new(spec).map(resolved);
    let deepseek = |spec: &str| {
        OpenAiModel::builder(spec)
            .gateway(Gateway::DeepSeek)
            .build()
            .map(resolved)
    };
    let mut all: Vec<Registration> = ["gpt-", "o1-", "o3-", "o4-"]
        .into_iter()
        .map(|p| Registration::new(ModelPattern::Prefix(p.into()), openai))
        .collect();
    all.extend(
        ["o1", "o3", "chat-latest"]
            .into_iter()
            .map(|e| Registration::new(ModelPattern::Exact(e.into()), openai)),
    );
    all.push(Registration::new(
        ModelPattern::Prefix("deepseek-".into()),
        deepseek,
    ));
    // `litellm/<model>`: a LiteLLM proxy, the prefix stripped.
    all.push(Registration::new(
        ModelPattern::Prefix("litellm/".into()),
        |spec: &str| {
            let model = spec.strip_prefix("litellm/").unwrap_or(spec);
            OpenAiModel::builder(model)
                .gateway(Gateway::LiteLlm)
                .build()
                .map(resolved)
        },
    ));
    all
}
