//! Names: loomflow's span names, the GenAI semantic-convention names they
//! are exported under, and the metric instruments.

use std::fmt;

use super::record::InstrumentKind;

/// The target every loomflow span is created under.
pub const TARGET: &str = "loomflow";
/// The target of the events that carry metric points.
pub const METRIC_TARGET: &str = "loom.metric";

/// An agent run.
pub const RUN: &str = "loom.run";
/// One turn of an agent loop (a model call and the tools it asked for).
pub const TURN: &str = "loom.turn";
/// A streamed model call.
pub const MODEL_STREAM: &str = "loom.model.stream";
/// A model call answered whole.
pub const MODEL_COMPLETE: &str = "loom.model.complete";
/// A tool call, through the gate.
pub const TOOL: &str = "loom.tool";
/// A workflow run.
pub const WORKFLOW: &str = "loom.workflow";
/// A workflow node, or a `#[step]` function inside one.
pub const WORKFLOW_STEP: &str = "loom.workflow.step";

/// Every span name loomflow creates.
pub const SPAN_NAMES: &[&str] = &[
    RUN,
    TURN,
    MODEL_STREAM,
    MODEL_COMPLETE,
    TOOL,
    WORKFLOW,
    WORKFLOW_STEP,
];

/// Counter: uncached input tokens per model call (`gen_ai.request.model`).
pub const TOKENS_INPUT: &str = "loom.tokens.input";
/// Counter: output tokens per model call (`gen_ai.request.model`).
pub const TOKENS_OUTPUT: &str = "loom.tokens.output";
/// Counter: US dollars per model call (`gen_ai.request.model`).
pub const COST_USD: &str = "loom.cost.usd";
/// Histogram: a tool call's time in ms (`gen_ai.tool.name`, `loom.ok`,
/// `loom.denied`).
pub const TOOL_DURATION_MS: &str = "loom.tool.duration_ms";
/// Histogram: a run's time in ms (`gen_ai.agent.name`, `loom.interrupted`).
pub const SESSION_DURATION_MS: &str = "loom.session.duration_ms";
/// Counter: runs stopped by a budget cap (`loom.budget.cap`).
pub const BUDGET_EXCEEDED: &str = "loom.budget.exceeded";
/// Histogram (s): a model call's time, GenAI semantic conventions.
pub const CLIENT_OPERATION_DURATION: &str = "gen_ai.client.operation.duration";
/// Histogram ({token}): tokens per model call by `gen_ai.token.type`
/// (`input`, `output`), GenAI semantic conventions.
pub const CLIENT_TOKEN_USAGE: &str = "gen_ai.client.token.usage";

/// The GenAI conventions' advisory buckets for operation durations (s).
pub const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// The GenAI conventions' advisory buckets for token counts.
pub const TOKEN_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// How a metric is exported.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Instrument {
    /// Its name.
    pub name: &'static str,
    /// Counter or histogram.
    pub kind: InstrumentKind,
    /// Its unit.
    pub unit: &'static str,
    /// A one-line description.
    pub description: &'static str,
    /// Advisory bucket boundaries for a histogram.
    pub buckets: Option<&'static [f64]>,
}

const fn instrument(
    name: &'static str,
    kind: InstrumentKind,
    unit: &'static str,
    description: &'static str,
    buckets: Option<&'static [f64]>,
) -> Instrument {
    Instrument {
        name,
        kind,
        unit,
        description,
        buckets,
    }
}

/// Every metric loomflow records.
pub const INSTRUMENTS: &[Instrument] = &[
    instrument(
        TOKENS_INPUT,
        InstrumentKind::Counter,
        "{token}",
        "Uncached input tokens sent to models",
        None,
    ),
    instrument(
        TOKENS_OUTPUT,
        InstrumentKind::Counter,
        "{token}",
        "Output tokens received from models",
        None,
    ),
    instrument(
        COST_USD,
        InstrumentKind::Counter,
        "USD",
        "Model spend in US dollars",
        None,
    ),
    instrument(
        TOOL_DURATION_MS,
        InstrumentKind::Histogram,
        "ms",
        "Tool call duration, gate included",
        None,
    ),
    instrument(
        SESSION_DURATION_MS,
        InstrumentKind::Histogram,
        "ms",
        "Agent run duration",
        None,
    ),
    instrument(
        BUDGET_EXCEEDED,
        InstrumentKind::Counter,
        "",
        "Runs stopped by a budget cap",
        None,
    ),
    instrument(
        CLIENT_OPERATION_DURATION,
        InstrumentKind::Histogram,
        "s",
        "GenAI operation duration",
        Some(DURATION_BUCKETS),
    ),
    instrument(
        CLIENT_TOKEN_USAGE,
        InstrumentKind::Histogram,
        "{token}",
        "Measures number of input and output tokens used",
        Some(TOKEN_BUCKETS),
    ),
];

/// The instrument for metric `name`: loomflow's table, else a counter with
/// no unit (a `_ms` suffix makes a histogram in ms).
pub fn instrument_for(name: &str) -> Instrument {
    if let Some(known) = INSTRUMENTS.iter().find(|i| i.name == name) {
        return *known;
    }
    match name.ends_with("_ms") {
        true => instrument("", InstrumentKind::Histogram, "ms", "", None),
        false => instrument("", InstrumentKind::Counter, "", "", None),
    }
}

/// `gen_ai.provider.name` for a model string, by the conventions'
/// well-known values (`_OTHER` when the name does not say).
pub fn provider_name(model: &str) -> &'static str {
    const BY_PREFIX: &[(&str, &str)] = &[
        ("anthropic/", "anthropic"),
        ("openai/", "openai"),
        ("azure/", "azure.ai.openai"),
        ("bedrock/", "aws.bedrock"),
        ("gemini/", "gcp.gemini"),
        ("vertex_ai/", "gcp.vertex_ai"),
        ("mistral/", "mistral_ai"),
        ("groq/", "groq"),
        ("claude", "anthropic"),
        ("gpt", "openai"),
        ("chatgpt", "openai"),
        ("o1", "openai"),
        ("o3", "openai"),
        ("o4", "openai"),
        ("gemini", "gcp.gemini"),
        ("mistral", "mistral_ai"),
        ("command", "cohere"),
        ("deepseek", "deepseek"),
        ("grok", "x_ai"),
        ("sonar", "perplexity"),
    ];
    BY_PREFIX
        .iter()
        .find(|(prefix, _)| model.starts_with(prefix))
        .map_or("_OTHER", |(_, provider)| provider)
}

/// A span's exported name under the GenAI conventions: an operation and
/// what it acts on (`chat gpt-4.1`, `execute_tool search`,
/// `invoke_agent support`). Formatted only by an exporter that asks.
#[derive(Debug, Clone, Copy)]
pub struct GenAiName<'a> {
    /// `chat`, `execute_tool`, `invoke_agent`.
    pub operation: &'static str,
    /// The model, tool or agent (omitted when empty).
    pub subject: &'a str,
}

impl fmt::Display for GenAiName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.subject.is_empty() {
            true => f.write_str(self.operation),
            false => write!(f, "{} {}", self.operation, self.subject),
        }
    }
}
