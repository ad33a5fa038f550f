//! The dispatch table: which model strings this crate answers to, and for
//! each, the genai adapter, the key variable, the base-URL variable and what
//! the provider supports natively.

use genai::adapter::AdapterKind;

/// How a model string reaches its provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The reference's model-string prefix (`gemini/`, `mistral-`, …).
    pub prefix: &'static str,
    /// Whether the prefix is part of the provider's own model id
    /// (`mistral-large-latest`) or only routes (`gemini/` is stripped).
    pub keep_prefix: bool,
    /// The provider, for messages.
    pub provider: &'static str,
    /// The genai adapter that speaks the provider's protocol.
    pub adapter: AdapterKind,
    /// The key's variable (`None`: the server takes no key, a local Ollama).
    pub key_var: Option<&'static str>,
    /// The base URL's variable.
    pub base_url_var: &'static str,
    /// Whether a base URL must be configured (Azure: the resource's URL).
    /// Otherwise an unset base URL leaves the provider's public endpoint,
    /// which the adapter knows (Vertex and Bedrock build theirs from
    /// `VERTEX_PROJECT_ID`/`VERTEX_LOCATION` and `AWS_REGION`).
    pub base_url_required: bool,
    /// Native structured output (a response schema) that the adapter sends
    /// and the provider enforces; elsewhere the agent's prompt path applies.
    pub native_output: bool,
    /// Whether [`Effort`](loomflow_model::Effort) maps to a thinking budget.
    pub effort: bool,
}

const fn route(
    prefix: &'static str,
    keep_prefix: bool,
    provider: &'static str,
    adapter: AdapterKind,
    key_var: Option<&'static str>,
    base_url_var: &'static str,
) -> Route {
    Route {
        prefix,
        keep_prefix,
        provider,
        adapter,
        key_var,
        base_url_var,
        base_url_required: false,
        native_output: false,
        effort: false,
    }
}

const fn gemini(mut r: Route) -> Route {
    r.native_output = true;
    r.effort = true;
    r
}

/// Every route, in the order the reference's dispatch table lists them.
pub const ROUTES: &[Route] = &[
    route(
        "mistral-",
        true,
        "Mistral",
        AdapterKind::Mistral,
        Some("MISTRAL_API_KEY"),
        "MISTRAL_BASE_URL",
    ),
    route(
        "command-",
        true,
        "Cohere",
        AdapterKind::Cohere,
        Some("COHERE_API_KEY"),
        "COHERE_BASE_URL",
    ),
    route(
        "bedrock/",
        false,
        "AWS Bedrock",
        AdapterKind::BedrockApi,
        Some("BEDROCK_API_KEY"),
        "BEDROCK_BASE_URL",
    ),
    gemini(route(
        "vertex_ai/",
        false,
        "Vertex AI",
        AdapterKind::Vertex,
        Some("VERTEX_API_KEY"),
        "VERTEX_BASE_URL",
    )),
    route(
        "together_ai/",
        false,
        "Together AI",
        AdapterKind::Together,
        Some("TOGETHER_API_KEY"),
        "TOGETHER_BASE_URL",
    ),
    route(
        "ollama/",
        false,
        "Ollama",
        AdapterKind::Ollama,
        None,
        "OLLAMA_BASE_URL",
    ),
    gemini(route(
        "gemini/",
        false,
        "Gemini",
        AdapterKind::Gemini,
        Some("GEMINI_API_KEY"),
        "GEMINI_BASE_URL",
    )),
    route(
        "groq/",
        false,
        "Groq",
        AdapterKind::Groq,
        Some("GROQ_API_KEY"),
        "GROQ_BASE_URL",
    ),
    // Azure OpenAI's v1 API is the OpenAI wire format at the resource's
    // `https://<resource>.openai.azure.com/openai/v1`; there is no default.
    Route {
        base_url_required: true,
        ..route(
            "azure/",
            false,
            "Azure OpenAI",
            AdapterKind::OpenAI,
            Some("AZURE_OPENAI_API_KEY"),
            "AZURE_OPENAI_BASE_URL",
        )
    },
];

/// Prefixes the reference dispatches that no maintained Rust client
/// speaks, each with what to use instead.
pub const UNSUPPORTED: &[(&str, &str)] = &[(
    "replicate/",
    "Replicate's prediction API has no adapter in genai; serve the model behind an OpenAI-compatible server (vLLM, a LiteLLM proxy) and use `litellm/<model>` or `OpenAiModel::builder(..).gateway(..)`",
)];

/// The route for `model`, and the provider's own model id.
pub fn find(model: &str) -> Option<(&'static Route, &str)> {
    ROUTES.iter().find_map(|r| {
        let rest = model.strip_prefix(r.prefix)?;
        (!rest.is_empty()).then_some((r, if r.keep_prefix { model } else { rest }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_strings_route_to_their_adapter() {
        fn id(m: &str) -> Option<(AdapterKind, &str)> {
            find(m).map(|(r, id)| (r.adapter, id))
        }
        assert_eq!(
            id("gemini/gemini-2.5-flash"),
            Some((AdapterKind::Gemini, "gemini-2.5-flash"))
        );
        assert_eq!(
            id("mistral-large-latest"),
            Some((AdapterKind::Mistral, "mistral-large-latest"))
        );
        assert_eq!(
            id("command-r-plus"),
            Some((AdapterKind::Cohere, "command-r-plus"))
        );
        assert_eq!(
            id("together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo"),
            Some((
                AdapterKind::Together,
                "meta-llama/Llama-3.3-70B-Instruct-Turbo"
            ))
        );
        assert_eq!(
            id("ollama/llama3.2"),
            Some((AdapterKind::Ollama, "llama3.2"))
        );
        assert_eq!(id("gemini/"), None, "an empty model id routes nowhere");
        assert_eq!(id("gpt-4.1"), None);
    }
}
