//! OpenAI-compatible gateways: where each lives, which key variable it reads
//! and what it supports. A gateway that lacks native structured output gets
//! the prompt path (directive + validate + retry) instead of a request it
//! would reject.

use loomflow_model::model::ModelCapabilities;

/// A provider speaking the Chat Completions API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Gateway {
    /// OpenAI itself.
    OpenAi,
    /// DeepSeek (`https://api.deepseek.com`, `DEEPSEEK_API_KEY`).
    DeepSeek,
    /// Groq (`GROQ_API_KEY`).
    Groq,
    /// OpenRouter (`OPENROUTER_API_KEY`).
    OpenRouter,
    /// Together AI (`TOGETHER_API_KEY`).
    Together,
    /// A local Ollama server (no key).
    Ollama,
    /// A vLLM server (`VLLM_API_KEY` if it wants one; base URL required).
    Vllm,
    /// A LiteLLM proxy (`LITELLM_API_KEY`; base URL required).
    LiteLlm,
}

/// Where a gateway lives and what it can do.
#[derive(Debug, Clone, Copy)]
pub struct GatewaySpec {
    /// Human name, for error messages.
    pub label: &'static str,
    /// Default base URL (through `/v1`).
    pub base_url: &'static str,
    /// Environment variable overriding the base URL.
    pub base_url_var: Option<&'static str>,
    /// Environment variable holding the key; `None` when none is needed.
    pub key_var: Option<&'static str>,
    /// What requests may use.
    pub capabilities: ModelCapabilities,
}

const fn caps(native: bool, caching: bool, effort: bool) -> ModelCapabilities {
    let mut c = ModelCapabilities::none();
    c.native_structured_output = native;
    c.prompt_caching = caching;
    c.effort = effort;
    c
}

impl Gateway {
    /// The gateway's capability table entry.
    ///
    /// ```
    /// use loomflow_openai::Gateway;
    /// assert!(Gateway::OpenAi.spec().capabilities.native_structured_output);
    /// assert!(!Gateway::DeepSeek.spec().capabilities.native_structured_output);
    /// assert_eq!(Gateway::DeepSeek.spec().key_var, Some("DEEPSEEK_API_KEY"));
    /// ```
    pub const fn spec(self) -> GatewaySpec {
        match self {
            Self::OpenAi => GatewaySpec {
                label: "OpenAI",
                base_url: "https://api.openai.com/v1",
                base_url_var: Some("OPENAI_BASE_URL"),
                key_var: Some("OPENAI_API_KEY"),
                capabilities: caps(true, true, true),
            },
            Self::DeepSeek => GatewaySpec {
                label: "DeepSeek",
                base_url: "https://api.deepseek.com",
                base_url_var: Some("DEEPSEEK_BASE_URL"),
                key_var: Some("DEEPSEEK_API_KEY"),
                // JSON mode only (no json_schema); caching is automatic.
                capabilities: caps(false, false, false),
            },
            Self::Groq => GatewaySpec {
                label: "Groq",
                base_url: "https://api.groq.com/openai/v1",
                base_url_var: Some("GROQ_BASE_URL"),
                key_var: Some("GROQ_API_KEY"),
                capabilities: caps(false, false, false),
            },
            Self::OpenRouter => GatewaySpec {
                label: "OpenRouter",
                base_url: "https://openrouter.ai/api/v1",
                base_url_var: Some("OPENROUTER_BASE_URL"),
                key_var: Some("OPENROUTER_API_KEY"),
                // Depends on the routed model; the prompt path always works.
                capabilities: caps(false, false, false),
            },
            Self::Together => GatewaySpec {
                label: "Together AI",
                base_url: "https://api.together.xyz/v1",
                base_url_var: Some("TOGETHER_BASE_URL"),
                key_var: Some("TOGETHER_API_KEY"),
                capabilities: caps(false, false, false),
            },
            Self::Ollama => GatewaySpec {
                label: "Ollama",
                base_url: "http://127.0.0.1:11434/v1",
                base_url_var: Some("OLLAMA_BASE_URL"),
                key_var: None,
                capabilities: caps(false, false, false),
            },
            Self::Vllm => GatewaySpec {
                label: "vLLM",
                base_url: "http://127.0.0.1:8000/v1",
                base_url_var: Some("VLLM_BASE_URL"),
                key_var: None,
                capabilities: caps(false, false, false),
            },
            Self::LiteLlm => GatewaySpec {
                label: "LiteLLM proxy",
                base_url: "http://127.0.0.1:4000/v1",
                base_url_var: Some("LITELLM_BASE_URL"),
                key_var: Some("LITELLM_API_KEY"),
                capabilities: caps(false, false, false),
            },
        }
    }
}
