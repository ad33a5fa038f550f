//! Shared test support for loomflow's crates: models that record what they
//! were asked, event collectors, and (as later adapters arrive) throwaway
//! services on loopback ports.

pub mod audit_contract;
pub mod chroma;
pub mod crash;
pub mod fake_provider;
pub mod journal_contract;
pub mod live;
pub mod memory_contract;
pub mod minilm;
pub mod otlp;
pub mod postgres;
pub mod redis;
pub mod server;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::StreamExt;
use loomflow::model::{ChunkStream, Completion, ModelCapabilities, ModelRequest};
use loomflow::{Event, Message, Model, ModelError, ToolDef};

/// What a [`RecordingModel`] saw in one call.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedCall {
    /// The transcript.
    pub messages: Vec<Message>,
    /// The tools offered.
    pub tools: Vec<ToolDef>,
    /// The native output schema, if one was requested.
    pub output_schema: Option<serde_json::Value>,
}

impl RecordedCall {
    /// The text of every tool-result message in the transcript, in order.
    pub fn tool_texts(&self) -> Vec<String> {
        self.messages
            .iter()
            .filter(|m| m.role == loomflow::Role::Tool)
            .map(Message::text_content)
            .collect()
    }
}

/// Wraps a model and records every request it gets.
#[derive(Clone)]
pub struct RecordingModel {
    inner: Arc<dyn Model>,
    calls: Arc<Mutex<Vec<RecordedCall>>>,
    capabilities: ModelCapabilities,
}

impl RecordingModel {
    /// Records calls made to `inner`.
    pub fn new(inner: impl Model) -> Self {
        Self {
            inner: Arc::new(inner),
            calls: Arc::default(),
            capabilities: ModelCapabilities::default(),
        }
    }

    /// Reports native structured-output support (to exercise the native path).
    pub fn with_native_structured_output(mut self) -> Self {
        self.capabilities = self.capabilities.with_native_structured_output(true);
        self
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record(&self, request: &ModelRequest<'_>) {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(RecordedCall {
                messages: request.messages.to_vec(),
                tools: request.tools.to_vec(),
                output_schema: request.output_schema.map(|s| s.schema().clone()),
            });
    }
}

#[async_trait]
impl Model for RecordingModel {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> ModelCapabilities {
        self.capabilities
    }

    async fn stream(&self, request: ModelRequest<'_>) -> Result<ChunkStream, ModelError> {
        self.record(&request);
        self.inner.stream(request).await
    }

    async fn complete(&self, request: ModelRequest<'_>) -> Result<Completion, ModelError> {
        self.record(&request);
        self.inner.complete(request).await
    }
}

// The tool the provider tests offer the model. Its doc comment is the
// description the model reads (and the request snapshots record).
/// Look up the weather.
#[loomflow::tool]
pub async fn weather(city: String) -> String {
    format!("sunny in {city}")
}

/// The weather tool's definition written out by hand (`{"city": string}`,
/// required), for tests that send tool definitions without running them.
pub fn weather_def() -> ToolDef {
    ToolDef {
        name: "weather".into(),
        description: "Look up the weather.".into(),
        input_schema: serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        server: None,
        destructive: false,
        ends_turn: false,
    }
}

/// A retry policy for tests: `attempts` tries, 1 ms apart, no jitter, a 1 s
/// cap (a server hint above it ends the retries, as in production).
pub fn quick_retries(attempts: u32) -> loomflow::model::retry::RetryPolicy {
    loomflow::model::retry::RetryPolicy {
        max_attempts: attempts,
        initial_delay: std::time::Duration::from_millis(1),
        max_delay: std::time::Duration::from_secs(1),
        multiplier: 2.0,
        jitter: loomflow::model::retry::Jitter::None,
    }
}

/// Streams `request` from `model` and collects every chunk, errors
/// included; failing to open the stream is the one error.
pub async fn stream_chunks(
    model: &dyn Model,
    request: ModelRequest<'_>,
) -> Vec<Result<loomflow::ModelChunk, ModelError>> {
    match model.stream(request).await {
        Ok(s) => s.collect().await,
        Err(e) => vec![Err(e)],
    }
}

/// Drains an event stream (an agent's or a workflow's) into a vector.
pub async fn collect_events(
    mut stream: impl futures_util::Stream<Item = Event> + Unpin,
) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(e) = stream.next().await {
        out.push(e);
    }
    out
}

/// The kind names of `events`, with the payload detail tests usually assert
/// on: the chunk kind for `model_chunk`, the tool for `tool_call`, the node
/// for `workflow_step_*`, `progress/total` for `tool_progress`; events attributed to a workflow node are prefixed
/// with its path (`"billing| started"`).
pub fn event_trace(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let json = serde_json::to_value(e).unwrap_or_default();
            let payload = &json["payload"];
            let kind = match e.kind_name() {
                "workflow_step_started" | "workflow_step_completed" | "workflow_step_failed" => {
                    format!(
                        "{}:{}",
                        e.kind_name(),
                        payload["node"].as_str().unwrap_or("?")
                    )
                }
                "model_chunk" => format!(
                    "model_chunk:{}",
                    payload["chunk"]["kind"].as_str().unwrap_or("?")
                ),
                "tool_call" => format!(
                    "tool_call:{}",
                    payload["call"]["tool"].as_str().unwrap_or("?")
                ),
                "tool_progress" => format!(
                    "tool_progress:{}/{}",
                    payload["progress"],
                    payload.get("total").unwrap_or(&serde_json::Value::Null)
                ),
                other => other.to_owned(),
            };
            match &e.node {
                Some(node) => format!("{node}| {kind}"),
                None => kind,
            }
        })
        .collect()
}

/// A deterministic tool-calling model that keeps no state: with `k` tool
/// results in the transcript it calls `tool` with `{"n": k}`, until `calls`
/// results are in; then it answers `done: <result 0> | <result 1> | …`. Every
/// process gives the same reply to the same transcript, which is what a
/// crash-and-resume test needs (the Python peer bench uses the same shape).
/// Each reply costs 10 input and 5 output tokens.
#[derive(Debug, Clone)]
pub struct ToolLoopModel {
    tool: String,
    calls: usize,
    /// Model calls made (replayed ones are not counted).
    pub made: Arc<std::sync::atomic::AtomicUsize>,
}

impl ToolLoopModel {
    /// Calls `tool` `calls` times, one call per turn, then answers.
    pub fn new(tool: impl Into<String>, calls: usize) -> Self {
        Self {
            tool: tool.into(),
            calls,
            made: Arc::default(),
        }
    }

    fn reply(&self, request: &ModelRequest<'_>) -> Completion {
        self.made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let results: Vec<String> = request
            .messages
            .iter()
            .filter(|m| m.role == loomflow::Role::Tool)
            .map(Message::text_content)
            .collect();
        let usage = loomflow::Usage {
            input_tokens: 10,
            output_tokens: 5,
            ..Default::default()
        };
        if results.len() < self.calls {
            let call = loomflow::ToolCall::new(
                self.tool.clone(),
                serde_json::json!({ "n": results.len() }),
            );
            Completion {
                tool_calls: vec![call],
                usage,
                finish_reason: loomflow::model::FinishReason::ToolUse,
                ..Completion::default()
            }
        } else {
            Completion {
                text: format!("done: {}", results.join(" | ")),
                usage,
                ..Completion::default()
            }
        }
    }
}

#[async_trait]
impl Model for ToolLoopModel {
    fn name(&self) -> &str {
        "tool-loop"
    }

    async fn stream(&self, request: ModelRequest<'_>) -> Result<ChunkStream, ModelError> {
        let c = self.reply(&request);
        let mut chunks = Vec::new();
        if !c.text.is_empty() {
            chunks.push(Ok(loomflow::ModelChunk::Text { text: c.text }));
        }
        for tool_call in c.tool_calls {
            chunks.push(Ok(loomflow::ModelChunk::ToolCall { tool_call }));
        }
        chunks.push(Ok(loomflow::ModelChunk::Finish {
            finish_reason: c.finish_reason,
            usage: c.usage,
        }));
        Ok(Box::pin(futures_util::stream::iter(chunks)))
    }

    async fn complete(&self, request: ModelRequest<'_>) -> Result<Completion, ModelError> {
        Ok(self.reply(&request))
    }
}

/// A model that holds every call until [`open`](Self::open), then answers
/// each with the same text: puts a background call (fact extraction) at a
/// known point, so a test can act while it is in flight.
#[derive(Clone)]
pub struct GatedModel {
    reply: Arc<str>,
    open: Arc<tokio::sync::watch::Sender<bool>>,
    started: Arc<tokio::sync::watch::Sender<usize>>,
}

impl GatedModel {
    /// A closed gate in front of `reply`.
    pub fn new(reply: impl Into<String>) -> Self {
        Self {
            reply: Arc::from(reply.into()),
            open: Arc::new(tokio::sync::watch::Sender::new(false)),
            started: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    /// Lets every held and later call answer.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// How many calls have reached the gate.
    pub fn calls(&self) -> usize {
        *self.started.borrow()
    }

    /// Waits until `n` calls have reached the gate.
    pub async fn wait_for_calls(&self, n: usize) {
        let mut started = self.started.subscribe();
        let _ = started.wait_for(|&c| c >= n).await;
    }
}

#[async_trait]
impl Model for GatedModel {
    fn name(&self) -> &str {
        "gated"
    }

    async fn stream(&self, request: ModelRequest<'_>) -> Result<ChunkStream, ModelError> {
        let _ = request;
        let mut open = self.open.subscribe();
        self.started.send_modify(|c| *c += 1);
        let _ = open.wait_for(|&o| o).await;
        let chunks = vec![
            Ok(loomflow::model::ModelChunk::Text {
                text: self.reply.to_string(),
            }),
            Ok(loomflow::model::ModelChunk::Finish {
                finish_reason: loomflow::model::FinishReason::Stop,
                usage: loomflow::Usage::default(),
            }),
        ];
        Ok(Box::pin(futures_util::stream::iter(chunks)))
    }
}

/// A workflow with a fan-out, for the telemetry tests: `split` feeds an
/// Agent node `left` (the agent `writer`, answering "a poem") and a function
/// node `right` side by side, and `join` joins their outputs with `" | "`.
#[allow(clippy::panic)]
pub fn fan_out_workflow(telemetry: loomflow::telemetry::Telemetry) -> loomflow::Workflow {
    async fn split(v: serde_json::Value) -> serde_json::Value {
        v
    }
    async fn join(parts: Vec<String>) -> String {
        parts.join(" | ")
    }
    let writer = loomflow::Agent::builder()
        .name("writer")
        .model(loomflow::ScriptedModel::new([
            loomflow::ScriptedTurn::text("a poem"),
        ]))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    loomflow::Workflow::builder("fan")
        .add_node("split", split)
        .add_node("left", writer)
        .add_node("right", |v: serde_json::Value| async move {
            format!("right got {v}")
        })
        .add_node("join", join)
        .set_start("split")
        .add_edge("split", "left")
        .add_edge("split", "right")
        .add_edge("left", "join")
        .add_edge("right", "join")
        .add_edge("join", loomflow::workflow::END)
        .telemetry(telemetry)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Where `scripts/services/mcp.sh` installed the MCP reference servers
/// (`$LOOMFLOW_MCP_DIR`, default `~/.cache/loomflow-mcp`).
fn mcp_dir() -> std::path::PathBuf {
    std::env::var_os("LOOMFLOW_MCP_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache/loomflow-mcp"))
        })
        .unwrap_or_default()
}

/// The path of an MCP reference server's executable: an npm one
/// (`mcp-server-everything`, `mcp-server-memory`, `mcp-server-filesystem`)
/// or a PyPI one (`mcp-server-git`, `mcp-server-time`), as installed by
/// `scripts/services/mcp.sh`. Panics with the fix when it is missing: a
/// test never skips because a server is absent.
#[allow(clippy::panic)]
pub fn mcp_server(bin: &str) -> std::path::PathBuf {
    let dir = mcp_dir();
    let npm = dir.join("node_modules/.bin").join(bin);
    let pypi = dir.join("venv/bin").join(bin);
    match (npm.exists(), pypi.exists()) {
        (true, _) => npm,
        (false, true) => pypi,
        _ => panic!(
            "MCP reference server `{bin}` not found at {} or {}: run scripts/services/mcp.sh (scripts/test does)",
            npm.display(),
            pypi.display()
        ),
    }
}

/// The Python that has the official MCP SDK (`mcp`, PyPI), as installed by
/// `scripts/services/mcp.sh`: for test servers and clients written on it.
#[allow(clippy::panic)]
pub fn mcp_python() -> std::path::PathBuf {
    let python = mcp_dir().join("venv/bin/python");
    if !python.exists() {
        panic!(
            "the MCP Python SDK's venv is not at {}: run scripts/services/mcp.sh (scripts/test does)",
            python.display()
        );
    }
    python
}

/// Usage for a scripted turn: `input` uncached input tokens, `output`
/// output tokens, `cost` dollars.
pub fn usage(input: u64, output: u64, cost: f64) -> loomflow::Usage {
    loomflow::Usage {
        input_tokens: input,
        output_tokens: output,
        cost_usd: cost,
        ..loomflow::Usage::default()
    }
}
