//! The long tail of model providers for loomflow, over the
//! [genai](https://docs.rs/genai) multi-provider client (the way the
//! reference reaches them through LiteLLM).
//!
//! [`GenaiModel`] answers to the reference's model strings and speaks each
//! provider's own protocol through genai's adapter for it:
//!
//! | model string | provider | key variable |
//! |---|---|---|
//! | `gemini/<model>` | Gemini API | `GEMINI_API_KEY` |
//! | `vertex_ai/<model>` | Vertex AI (`VERTEX_PROJECT_ID`, `VERTEX_LOCATION`) | `VERTEX_API_KEY` |
//! | `bedrock/<model>` | AWS Bedrock Converse (`AWS_REGION`) | `BEDROCK_API_KEY` |
//! | `mistral-<model>` | Mistral | `MISTRAL_API_KEY` |
//! | `command-<model>` | Cohere | `COHERE_API_KEY` |
//! | `together_ai/<model>` | Together AI | `TOGETHER_API_KEY` |
//! | `groq/<model>` | Groq | `GROQ_API_KEY` |
//! | `ollama/<model>` | Ollama (local) | none |
//! | `azure/<deployment>` | Azure OpenAI v1 (`AZURE_OPENAI_BASE_URL` required) | `AZURE_OPENAI_API_KEY` |
//!
//! Each provider's base URL can be moved with `<PROVIDER>_BASE_URL`
//! (`GEMINI_BASE_URL`, …) or [`GenaiBuilder::base_url`]. `replicate/…` is
//! refused with a [`ConfigError`](loomflow_model::ConfigError) that says
//! what to use instead, and `litellm/…` is served by `loomflow-openai`'s
//! LiteLLM gateway.
//!
//! With the `genai` feature of `loomflow`, these strings resolve with no
//! setup, each model wrapped in the default
//! [`RetryPolicy`].

mod convert;
mod model;
pub mod route;
mod stream;

use std::sync::Arc;

use loomflow_model::Model;
use loomflow_model::model::registry::{ModelPattern, Registration};
use loomflow_model::model::retry::{RetryPolicy, Retrying};
pub use model::{GenaiBuilder, GenaiModel};

/// The model strings this crate answers to, for the registry: every
/// [`route::ROUTES`] prefix, and the refused ones (so they fail with the
/// reason instead of "unknown model").
pub fn registrations() -> Vec<Registration> {
    let build = |spec: &str| {
        GenaiModel::new(spec)
            .map(|m| Arc::new(Retrying::new(m, RetryPolicy::default())) as Arc<dyn Model>)
    };
    route::ROUTES
        .iter()
        .map(|r| r.prefix)
        .chain(route::UNSUPPORTED.iter().map(|(p, _)| *p))
        .map(|prefix| Registration::new(ModelPattern::Prefix(prefix.into()), build))
        .collect()
}
