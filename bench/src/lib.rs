//! Shared fixtures for the benchmarks: the reference's "stateless scripted"
//! model (one `lookup` call per turn until the transcript holds three tool
//! results, then an answer), the `lookup` tool, and the same run written by
//! hand without the framework ([`hand_rolled_run`]), the floor (b) is
//! measured against.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use loomflow::model::{ChunkStream, Completion, FinishReason, ModelChunk, ModelRequest};
use loomflow::{Agent, Model, ModelError, Role, ToolCall, Usage};

/// Tool calls per run before the final answer.
pub const N_TOOLS: usize = 3;

/// The benchmark agent's instructions (its system prompt).
const INSTRUCTIONS: &str = "You are a benchmark agent.";

/// Look something up.
#[loomflow::tool]
pub async fn lookup(q: String) -> String {
    format!("result for {q}")
}

/// When the slept model calls started: per call index (0 = a run's first
/// call), the earliest and the latest start, in nanoseconds since `EPOCH`.
/// The concurrency bench reads them to show where a batch spends its time
/// over the latency floor. Each thread keeps its own record (the threads
/// would otherwise contend for one cache line on every model call, which
/// the bench would count as the framework's time); a batch's figures are
/// taken across them.
type Starts = [(AtomicU64, AtomicU64); N_TOOLS + 1];

fn no_starts() -> Starts {
    std::array::from_fn(|_| (AtomicU64::new(u64::MAX), AtomicU64::new(0)))
}

static THREAD_STARTS: Mutex<Vec<Arc<Starts>>> = Mutex::new(Vec::new());

thread_local! {
    static STARTS: Arc<Starts> = {
        let mine = Arc::new(no_starts());
        THREAD_STARTS.lock().unwrap().push(Arc::clone(&mine));
        mine
    };
}

static EPOCH: OnceLock<Instant> = OnceLock::new();

fn note_call_start(index: usize) {
    let at = EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64;
    STARTS.with(|starts| {
        if let Some((first, last)) = starts.get(index) {
            // Only this thread writes its record.
            if at < first.load(Ordering::Relaxed) {
                first.store(at, Ordering::Relaxed);
            }
            if at > last.load(Ordering::Relaxed) {
                last.store(at, Ordering::Relaxed);
            }
        }
    });
}

/// For each model call index (0 = a run's first call), when the first and the
/// last run started that call, in milliseconds after `since`; resets the
/// record for the next batch.
pub fn take_call_starts(since: Instant) -> Vec<[f64; 2]> {
    let epoch = *EPOCH.get_or_init(Instant::now);
    let offset = since.saturating_duration_since(epoch);
    let ms = |ns: u64| {
        Duration::from_nanos(ns)
            .saturating_sub(offset)
            .as_secs_f64()
            * 1e3
    };
    let threads = THREAD_STARTS.lock().unwrap();
    (0..=N_TOOLS)
        .map(|index| {
            let (mut first, mut last) = (u64::MAX, 0);
            for starts in threads.iter() {
                first = first.min(starts[index].0.swap(u64::MAX, Ordering::Relaxed));
                last = last.max(starts[index].1.swap(0, Ordering::Relaxed));
            }
            [ms(first), ms(last)]
        })
        .collect()
}

/// Decides its turn from the transcript, so one instance serves any number of
/// concurrent runs. Optional latency simulates the network.
#[derive(Debug, Clone, Default)]
pub struct StatelessScripted {
    /// Sleep per call.
    pub latency: Option<Duration>,
}

impl StatelessScripted {
    fn turn(request: &ModelRequest<'_>) -> Completion {
        let k = tool_results(request);
        if k < N_TOOLS {
            Completion {
                text: String::new(),
                tool_calls: vec![ToolCall {
                    id: format!("call_{k}"),
                    tool: "lookup".into(),
                    args: serde_json::json!({"q": format!("q{k}")}),
                    destructive: false,
                }],
                usage: Usage {
                    input_tokens: 10,
                    output_tokens: 5,
                    ..Usage::default()
                },
                finish_reason: FinishReason::ToolUse,
                reasoning: Vec::new(),
            }
        } else {
            Completion {
                text: "final answer".into(),
                tool_calls: Vec::new(),
                usage: Usage {
                    input_tokens: 10,
                    output_tokens: 2,
                    ..Usage::default()
                },
                finish_reason: FinishReason::Stop,
                reasoning: Vec::new(),
            }
        }
    }
}

fn tool_results(request: &ModelRequest<'_>) -> usize {
    request
        .messages
        .iter()
        .filter(|m| m.role == Role::Tool)
        .count()
}

#[async_trait]
impl Model for StatelessScripted {
    fn name(&self) -> &str {
        "stateless-scripted"
    }

    async fn stream(&self, request: ModelRequest<'_>) -> Result<ChunkStream, ModelError> {
        if let Some(d) = self.latency {
            tokio::time::sleep(d).await;
        }
        let c = Self::turn(&request);
        let mut chunks = Vec::new();
        if !c.text.is_empty() {
            chunks.push(Ok(ModelChunk::Text { text: c.text }));
        }
        chunks.extend(
            c.tool_calls
                .into_iter()
                .map(|tool_call| Ok(ModelChunk::ToolCall { tool_call })),
        );
        chunks.push(Ok(ModelChunk::Finish {
            finish_reason: c.finish_reason,
            usage: c.usage,
        }));
        Ok(Box::pin(futures_util::stream::iter(chunks)))
    }

    async fn complete(&self, request: ModelRequest<'_>) -> Result<Completion, ModelError> {
        if let Some(d) = self.latency {
            note_call_start(tool_results(&request));
            tokio::time::sleep(d).await;
        }
        Ok(Self::turn(&request))
    }
}

/// The benchmark agent.
pub fn bench_agent(latency: Option<Duration>) -> Agent {
    builder(latency)
        .build()
        .unwrap_or_else(|e| panic!("benchmark agent: {e}"))
}

/// The benchmark agent (no latency), journaling to `journal` when given.
pub fn bench_agent_with(journal: Option<std::sync::Arc<dyn loomflow::Journal>>) -> Agent {
    let mut b = builder(None);
    if let Some(j) = journal {
        b = b.journal(j);
    }
    b.build().unwrap_or_else(|e| panic!("benchmark agent: {e}"))
}

/// The benchmark agent (no latency), recording to `telemetry`.
pub fn bench_agent_traced(telemetry: loomflow::telemetry::Telemetry) -> Agent {
    builder(None)
        .telemetry(telemetry)
        .build()
        .unwrap_or_else(|e| panic!("benchmark agent: {e}"))
}

fn builder(latency: Option<Duration>) -> loomflow::AgentBuilder {
    Agent::builder()
        .instructions(INSTRUCTIONS)
        .model(StatelessScripted { latency })
        .tool(lookup)
}

/// A current-thread runtime with I/O and timers, what every bench drives
/// its futures on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
}

/// A transcript entry of [`hand_rolled_run`]: what a minimal hand-written
/// loop keeps, with owned strings and JSON arguments as a provider sends them.
#[derive(Debug)]
struct RawMessage {
    role: Role,
    content: String,
    tool_calls: Vec<RawToolCall>,
    tool_call_id: Option<String>,
}

#[derive(Debug)]
struct RawToolCall {
    id: String,
    name: String,
    args: serde_json::Value,
}

impl RawMessage {
    /// A message with text only.
    fn text(role: Role, content: String) -> Self {
        Self {
            role,
            content,
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// The benchmark model without the framework: sleeps, then one `lookup`
/// call per turn until the transcript holds three tool results.
async fn raw_model(messages: &[RawMessage], latency: Duration) -> RawMessage {
    // Results that answer a call, as a provider pairs them by id.
    let k = messages
        .iter()
        .filter(|m| m.role == Role::Tool && m.tool_call_id.is_some())
        .count();
    note_call_start(k);
    tokio::time::sleep(latency).await;
    if k < N_TOOLS {
        RawMessage {
            tool_calls: vec![RawToolCall {
                id: format!("call_{k}"),
                name: "lookup".into(),
                args: serde_json::json!({"q": format!("q{k}")}),
            }],
            ..RawMessage::text(Role::Assistant, String::new())
        }
    } else {
        RawMessage::text(Role::Assistant, "final answer".into())
    }
}

async fn raw_lookup(q: &str) -> String {
    format!("result for {q}")
}

/// One run of a hand-rolled agent loop doing the bench agent's work (the
/// Python peers' `raw` loop in Rust): a `Vec` transcript, the model, each
/// tool call looked up by name with its argument read from JSON, its result
/// appended. No events, gate, ids or context. Returns the answer and the
/// turns taken.
pub async fn hand_rolled_run(prompt: String, latency: Duration) -> (String, u32) {
    // System, user, three tool rounds and the answer, without regrowing.
    let mut messages = Vec::with_capacity(3 + 2 * N_TOOLS);
    messages.push(RawMessage::text(Role::System, INSTRUCTIONS.to_owned()));
    messages.push(RawMessage::text(Role::User, prompt));
    let mut turns = 0;
    loop {
        turns += 1;
        let reply = raw_model(&messages, latency).await;
        if reply.tool_calls.is_empty() {
            let answer = reply.content.clone();
            messages.push(reply);
            return (answer, turns);
        }
        let mut results = Vec::with_capacity(reply.tool_calls.len());
        for call in &reply.tool_calls {
            let q = call.args.get("q").and_then(|q| q.as_str());
            let content = match (call.name.as_str(), q) {
                ("lookup", Some(q)) => raw_lookup(q).await,
                (name, _) => format!("bad call to {name}"),
            };
            results.push(RawMessage {
                tool_call_id: Some(call.id.clone()),
                ..RawMessage::text(Role::Tool, content)
            });
        }
        messages.push(reply);
        messages.extend(results);
    }
}
