//! The [`Architecture`] port: what drives one agent loop.
//!
//! [`ReAct`] is the default. Write your own by implementing the trait: it gets
//! the session (transcript, turn count, usage) and the run's dependencies
//! (model, tools, gate, event emitter) and loops until it has an answer.

mod guarded_stream;
mod react;

use crate::redact::Redacted;
use crate::telemetry::{self, spans};
use std::future::Future;
use std::sync::Arc;
use tracing::Instrument;

use async_trait::async_trait;

pub use react::ReAct;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::context::RunContext;
use crate::effort::{Effort, PromptCache};
use crate::error::Result;
use crate::event::{EventKind, EventSink};
use crate::governance::{Governance, Payload, RunBudget};
use crate::guardrails::Stage;
use crate::id::SessionId;
use crate::journal::{CallContext, Checkpoint, Frame, fingerprint};
use crate::message::{ContentPart, Message, ToolCall, ToolDef, ToolResult, Usage};
use crate::model::{Completion, Model, ModelChunk, ModelRequest};
use crate::output::OutputSchema;
use crate::tool::{ToolGate, ToolHost};

/// The name of a journaled step, built only when the run is journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepName<'a> {
    /// `model_call_{turn}`.
    ModelCall(u32),
    /// `tool_call_{turn}_{slot}`.
    ToolCall(u32, usize),
    /// An architecture's own step (`plan_planner`, `rewoo_step_3`, …).
    Named(&'a str),
}

impl StepName<'_> {
    /// The name as a string, allocated once at its final size (`to_string`
    /// grows the buffer digit by digit).
    pub fn to_key(&self) -> String {
        use std::fmt::Write;
        let mut key = String::with_capacity(match self {
            Self::Named(name) => name.len(),
            _ => 24,
        });
        // Writing to a String cannot fail.
        let _ = write!(key, "{self}");
        key
    }
}

impl std::fmt::Display for StepName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ModelCall(turn) => write!(f, "model_call_{turn}"),
            Self::ToolCall(turn, slot) => write!(f, "tool_call_{turn}_{slot}"),
            Self::Named(name) => f.write_str(name),
        }
    }
}

/// What a journaled tool step records: the result, and the arguments when
/// an approver edited them (so a replayed transcript is the one that ran).
#[derive(Serialize, Deserialize)]
struct ToolStep {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    args: Option<serde_json::Value>,
    result: ToolResult,
}

/// The chunks a replayed completion is streamed as.
fn replay_chunks(c: &Completion) -> Vec<ModelChunk> {
    let mut chunks = Vec::with_capacity(c.reasoning.len() + c.tool_calls.len() + 2);
    for part in &c.reasoning {
        match part {
            ContentPart::Thinking { text, signature } => chunks.push(ModelChunk::Thinking {
                text: text.clone(),
                signature: signature.clone(),
            }),
            ContentPart::RedactedThinking { data } => {
                chunks.push(ModelChunk::RedactedThinking { data: data.clone() })
            }
            _ => {}
        }
    }
    if !c.text.is_empty() {
        chunks.push(ModelChunk::Text {
            text: c.text.clone(),
        });
    }
    for call in &c.tool_calls {
        chunks.push(ModelChunk::ToolCall {
            tool_call: call.clone(),
        });
    }
    chunks.push(ModelChunk::Finish {
        finish_reason: c.finish_reason.clone(),
        usage: c.usage,
    });
    chunks
}

/// The mutable state of one agent run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AgentSession {
    /// The session.
    pub id: SessionId,
    /// The system prompt for this run (instructions plus schema and tone
    /// directives).
    pub instructions: String,
    /// The transcript.
    pub messages: Vec<Message>,
    /// Model turns taken.
    pub turns: u32,
    /// The latest answer text.
    pub output: String,
    /// Usage summed over every model call.
    pub usage: Usage,
    /// True when the loop stopped early (turn cap, budget, …).
    pub interrupted: bool,
    /// Why it stopped early (`max_turns_exceeded`, `budget:max_tokens`, …).
    pub interruption_reason: Option<String>,
    /// True when an `ends_turn` tool ended the loop.
    pub ended_by_tool: bool,
}

impl AgentSession {
    /// A fresh session with `instructions` as its system prompt.
    pub fn new(id: SessionId, instructions: String) -> Self {
        Self {
            id,
            instructions,
            messages: Vec::new(),
            turns: 0,
            output: String::new(),
            usage: Usage::default(),
            interrupted: false,
            interruption_reason: None,
            ended_by_tool: false,
        }
    }

    /// Marks the run interrupted for `reason`.
    pub fn interrupt(&mut self, reason: impl Into<String>) {
        self.interrupted = true;
        self.interruption_reason = Some(reason.into());
    }
}

/// Sends a run's events to its stream, if anyone is listening. With no
/// listener, events are never built.
#[derive(Debug, Clone)]
pub struct Emitter {
    session_id: SessionId,
    sink: Option<EventSink>,
}

impl Emitter {
    /// An emitter for `session_id` sending to `sink` (or nowhere).
    pub fn new(session_id: SessionId, sink: Option<EventSink>) -> Self {
        Self { session_id, sink }
    }

    /// True when someone consumes events.
    pub fn is_active(&self) -> bool {
        self.sink.is_some()
    }

    /// Emits the event built by `make`. Waits while the consumer's buffer is
    /// full (backpressure); does nothing without a consumer.
    pub async fn emit(&self, make: impl FnOnce() -> EventKind) {
        if let Some(sink) = &self.sink {
            // The sink waits for room first and builds the event after, so
            // no event is held across the await. A closed receiver means the
            // stream was dropped and the run is being cancelled.
            sink.send(&self.session_id, make).await;
        }
    }

    /// Emits an `architecture_event` named `name` with `data`.
    pub async fn architecture_event(
        &self,
        name: &str,
        data: impl FnOnce() -> serde_json::Map<String, serde_json::Value>,
    ) {
        self.emit(|| EventKind::ArchitectureEvent {
            name: name.to_owned(),
            data: data(),
        })
        .await;
    }
}

/// Everything an architecture needs for one run.
#[non_exhaustive]
pub struct RunDeps<'a> {
    /// The model.
    pub model: &'a Arc<dyn Model>,
    /// The tools. Private: the only way an architecture runs a tool is
    /// [`RunDeps::run_tool`], through the gate.
    pub(crate) tools: &'a Arc<dyn ToolHost>,
    /// The gate every tool call goes through.
    pub gate: &'a ToolGate,
    /// The turn cap.
    pub max_turns: u32,
    /// Structured output to request natively (set only when the model supports
    /// it).
    pub native_output: Option<&'a OutputSchema>,
    /// Event sink.
    pub emitter: &'a Emitter,
    /// Who and what this run is.
    pub context: &'a RunContext,
    /// Reasoning effort for this run's model calls.
    pub effort: Option<Effort>,
    /// Fail a call whose model cannot honour the effort.
    pub strict_effort: bool,
    /// Prompt caching for this run's model calls.
    pub prompt_cache: Option<&'a PromptCache>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Output-token cap per model call.
    pub max_tokens: Option<u32>,
    /// The journaled run this is part of.
    pub(crate) frame: Option<Frame>,
    /// Budget, rate limit and audit log.
    pub(crate) governance: &'a Governance,
    /// This run's side of the budget.
    pub(crate) run_budget: &'a RunBudget,
    /// Checkpoints to keep per session, when the agent takes them.
    pub(crate) checkpoints: Option<usize>,
    /// Record prompts, outputs and tool arguments on spans.
    pub(crate) capture_content: bool,
}

impl<'a> RunDeps<'a> {
    /// A model request over `messages` with this run's settings: native
    /// output schema, effort, prompt caching, temperature and token cap.
    /// Architectures add the tools they offer.
    pub fn request<'m>(&'m self, messages: &'m [Message]) -> ModelRequest<'m>
    where
        'a: 'm,
    {
        let mut request = ModelRequest::new(messages)
            .with_output_schema(self.native_output)
            .with_effort(self.effort)
            .with_prompt_cache(self.prompt_cache)
            .with_temperature(self.temperature)
            .with_max_tokens(self.max_tokens);
        request.strict_effort = self.strict_effort;
        request
    }

    /// The tools on offer this turn (the host's list, without a boxed
    /// future when the host has it at hand).
    pub async fn tool_defs(&self) -> Result<Arc<[ToolDef]>> {
        match self.tools.tools_at_hand() {
            Some(defs) => Ok(defs),
            None => Ok(self.tools.list_tools().await?),
        }
    }

    /// One model call, journaled as step `step` when the run is: a replayed
    /// step returns its recorded completion (streamed as chunks to a
    /// listener) without calling the model. Streamed (one `model_chunk`
    /// event per chunk) when someone listens, a plain `complete()` otherwise.
    pub async fn call_model(
        &self,
        step: StepName<'_>,
        request: ModelRequest<'_>,
    ) -> Result<Completion> {
        let Some(frame) = &self.frame else {
            return self.call_model_now(step, request).await;
        };
        let key = frame.key(
            &step.to_key(),
            &fingerprint(&(request.messages, request.tools)),
        );
        if let Some(recorded) = frame.replay::<Completion>(&key) {
            let completion = recorded?;
            if self.emitter.is_active() {
                // Boxed: replaying is rare, and inline it would size every
                // model call's future.
                Box::pin(self.replay_chunks(&completion)).await;
            }
            return Ok(completion);
        }
        let completion = self.call_model_now(step, request).await?;
        frame.record(&key, &completion).await?;
        Ok(completion)
    }

    /// Runs one tool call through the gate, as step `tool_call_{turn}_{slot}`
    /// of a journaled run: stamps it, emits `tool_call`, executes it (or
    /// replays its recorded result; an approver's edit of the arguments is
    /// replayed too), emits `tool_result`. The tool reads its
    /// [`CallContext`] (idempotency key included) while it runs.
    ///
    /// When something records telemetry, the call runs (boxed) inside its
    /// `loom.tool` span; otherwise nothing of a span is made or kept.
    pub fn run_tool<'s>(
        &'s self,
        defs: &'s [ToolDef],
        call: &'s mut ToolCall,
        turn: u32,
        slot: usize,
    ) -> impl Future<Output = Result<ToolResult>> + Send + 's {
        self.run_tool_here(defs, call, turn, slot, false)
    }

    /// [`run_tool`](Self::run_tool) inside its span, with its duration
    /// metric and outcome recorded.
    async fn run_tool_observed(
        &self,
        defs: &[ToolDef],
        call: &mut ToolCall,
        turn: u32,
        slot: usize,
        span: tracing::Span,
    ) -> Result<ToolResult> {
        let clock = std::time::Instant::now();
        let outcome = self
            .run_tool_here(defs, call, turn, slot, true)
            .instrument(span.clone())
            .await;
        let elapsed_ms = clock.elapsed().as_secs_f64() * 1000.0;
        if let Ok(result) = &outcome {
            spans::metric!(
                telemetry::TOOL_DURATION_MS,
                elapsed_ms,
                gen_ai.tool.name = call.tool.as_str(),
                loom.ok = result.ok,
                loom.denied = result.denied
            );
            if !span.is_disabled() {
                span.record("loom.tool.destructive", call.destructive);
                if let Some(error_type) = tool_error_type(result) {
                    let message = result
                        .error
                        .as_deref()
                        .or(result.reason.as_deref())
                        .unwrap_or_default();
                    spans::record_error(&span, error_type, &message);
                }
                if self.capture_content {
                    span.record(
                        "gen_ai.tool.call.result",
                        crate::redact::redact(&result.output.to_string()).as_ref(),
                    );
                }
            }
        }
        outcome
    }

    async fn run_tool_here(
        &self,
        defs: &[ToolDef],
        call: &mut ToolCall,
        turn: u32,
        slot: usize,
        observed: bool,
    ) -> Result<ToolResult> {
        // Unless this is already the observed call, see whether anything
        // records it: then it runs again, boxed, inside its span (nothing
        // of a span is kept in an unobserved call's future).
        if !observed && let Some(span) = spans::observed(|| spans::tool(&call.tool, &call.id, turn))
        {
            return Box::pin(self.run_tool_observed(defs, call, turn, slot, span)).await;
        }
        self.gate.stamp(call, defs);
        if observed && self.capture_content {
            tracing::Span::current().record(
                "gen_ai.tool.call.arguments",
                crate::redact::redact(&call.args.to_string()).as_ref(),
            );
        }
        let result = match &self.frame {
            None => {
                self.emitter
                    .emit(|| EventKind::ToolCall { call: call.clone() })
                    .await;
                let audited = self.governance.audit.is_some();
                let proposed = audited.then(|| call.args.clone());
                if audited {
                    Box::pin(self.audit_call(call, turn)).await;
                }
                let cx = CallContext::for_call(
                    &call.id,
                    &call.tool,
                    (turn, slot),
                    self.context,
                    None,
                    self.emitter,
                );
                let result = cx
                    .scope(
                        self.gate
                            .execute(self.tools.as_ref(), call, &self.context.user_id),
                    )
                    .await;
                if audited {
                    Box::pin(self.audit_result(call, proposed.as_ref(), &result, turn)).await;
                }
                result
            }
            // Boxed: a journaled call's steps (replay, record, the step's
            // keys) would otherwise size every tool call's future.
            Some(frame) => {
                Box::pin(self.run_tool_journaled(frame, call, turn, slot, observed)).await?
            }
        };
        let result = if result.ok && !self.governance.guardrails.is_empty_for(Stage::ToolResult) {
            // Boxed: guardrails are optional; inline they would size every
            // tool call's future.
            Box::pin(self.guard_result(result)).await
        } else {
            result
        };
        self.emitter
            .emit(|| EventKind::ToolResult {
                result: result.clone(),
            })
            .await;
        Ok(result)
    }

    /// A tool call of a journaled run: its recorded result (and an
    /// approver's recorded edit of the arguments) when it ran before, else
    /// run and recorded as step `tool_call_{turn}_{slot}`.
    async fn run_tool_journaled(
        &self,
        frame: &Frame,
        call: &mut ToolCall,
        turn: u32,
        slot: usize,
        observed: bool,
    ) -> Result<ToolResult> {
        let step = StepName::ToolCall(turn, slot).to_key();
        let key = frame.key(&step, &fingerprint(&(&call.tool, &call.args)));
        let result = match frame.replay::<ToolStep>(&key) {
            Some(recorded) => {
                let recorded = recorded?;
                if observed {
                    tracing::Span::current().record("loom.replayed", true);
                }
                if let Some(args) = recorded.args {
                    call.args = args;
                }
                self.emitter
                    .emit(|| EventKind::ToolCall { call: call.clone() })
                    .await;
                recorded.result
            }
            None => {
                self.emitter
                    .emit(|| EventKind::ToolCall { call: call.clone() })
                    .await;
                let proposed = call.args.clone();
                self.audit_call(call, turn).await;
                let cx = CallContext::for_call(
                    &call.id,
                    &call.tool,
                    (turn, slot),
                    self.context,
                    Some((frame, key.clone())),
                    self.emitter,
                );
                let run = self
                    .gate
                    .execute(self.tools.as_ref(), call, &self.context.user_id);
                let result = frame.child(&key).scope(cx.scope(run)).await;
                self.audit_result(call, Some(&proposed), &result, turn)
                    .await;
                let step = ToolStep {
                    args: (call.args != proposed).then(|| call.args.clone()),
                    result,
                };
                frame.record(&key, &step).await?;
                step.result
            }
        };
        Ok(result)
    }

    /// A successful result through the tool-result guardrails: blocked, it
    /// becomes a denial; annotated, its text is replaced.
    async fn guard_result(&self, mut result: ToolResult) -> ToolResult {
        let text = match &result.output {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let outcome = self
            .governance
            .guardrails
            .apply(Stage::ToolResult, text)
            .await;
        self.governance
            .report_guardrails(self.context, self.emitter, &outcome)
            .await;
        if let Some((guard, reason)) = outcome.blocked {
            return ToolResult::denied(
                &result.call_id,
                format!("blocked by guardrail {guard}: {reason}"),
            );
        }
        if !outcome.triggered.is_empty() {
            result.output = serde_json::Value::String(outcome.text);
        }
        result
    }

    /// Audits a call about to pass the gate (`tool_call`, actor `model`).
    async fn audit_call(&self, call: &ToolCall, turn: u32) {
        if self.governance.audit.is_none() {
            return;
        }
        let mut p = Payload::new();
        p.insert("tool".into(), call.tool.clone().into());
        p.insert("call_id".into(), call.id.clone().into());
        p.insert("args".into(), call.args.clone());
        p.insert("destructive".into(), call.destructive.into());
        p.insert("turn".into(), turn.into());
        self.governance
            .audit_in(self.context, "model", "tool_call", p)
            .await;
    }

    /// Audits an approver's edit (`tool_call_edited`) and the result
    /// (`tool_result`: summary fields, the body with full transcripts).
    /// `proposed` is the model's arguments, compared with what ran.
    async fn audit_result(
        &self,
        call: &ToolCall,
        proposed: Option<&serde_json::Value>,
        result: &ToolResult,
        turn: u32,
    ) {
        let (Some(proposed), true) = (proposed, self.governance.audit.is_some()) else {
            return;
        };
        if *proposed != call.args {
            let mut p = Payload::new();
            p.insert("tool".into(), call.tool.clone().into());
            p.insert("call_id".into(), call.id.clone().into());
            p.insert("args".into(), call.args.clone());
            p.insert("original_args".into(), proposed.clone());
            p.insert("turn".into(), turn.into());
            self.governance
                .audit_in(self.context, "user", "tool_call_edited", p)
                .await;
        }
        let mut p = Payload::new();
        p.insert("tool".into(), call.tool.clone().into());
        p.insert("call_id".into(), result.call_id.clone().into());
        p.insert("ok".into(), result.ok.into());
        p.insert("denied".into(), result.denied.into());
        p.insert("error".into(), result.error.clone().into());
        p.insert("reason".into(), result.reason.clone().into());
        p.insert("turn".into(), turn.into());
        if self.governance.full_transcripts() {
            p.insert("output".into(), result.output.clone());
            p.insert("duration_ms".into(), result.duration_ms.into());
        }
        self.governance
            .audit_in(self.context, "system", "tool_result", p)
            .await;
    }

    /// Stores a checkpoint of `session` (its messages, turn and usage) when
    /// the agent takes them and the run is journaled. A failure is logged,
    /// not raised: a missed checkpoint must not fail the run.
    pub async fn checkpoint(&self, session: &AgentSession) {
        let (Some(frame), Some(keep)) = (&self.frame, self.checkpoints) else {
            return;
        };
        // Boxed: most runs take no checkpoints, and the store's future
        // would otherwise size every turn of every architecture.
        Box::pin(store_checkpoint(frame, keep, session)).await;
    }

    async fn replay_chunks(&self, completion: &Completion) {
        let mut guarded = guarded_stream::GuardedChunks::new(&self.governance.guardrails);
        for chunk in replay_chunks(completion) {
            match &mut guarded {
                Some(g) => g.forward(&chunk, self.emitter).await,
                None => self.emitter.emit(|| EventKind::ModelChunk { chunk }).await,
            }
        }
        if let Some(g) = &mut guarded {
            g.finish(self.emitter).await;
        }
    }

    async fn call_model_now(
        &self,
        step: StepName<'_>,
        request: ModelRequest<'_>,
    ) -> Result<Completion> {
        // As for tool calls: nothing of a span kept when nothing records it,
        // boxed when something does.
        let span = || {
            let turn = match step {
                StepName::ModelCall(turn) => Some(turn),
                _ => None,
            };
            spans::model(
                self.emitter.is_active(),
                self.model.name(),
                turn,
                request.tools.len(),
            )
        };
        if let Some(span) = spans::observed(span) {
            return Box::pin(self.call_model_observed(request, span)).await;
        }
        // `call_model_gated`, written out: awaiting it here would add a
        // future layer to every unobserved model call.
        if !self.governance.gates_model_calls() {
            return self.call_model_plain(request).await;
        }
        // Boxed: governance is optional and its wait would otherwise size
        // every model call's future.
        Box::pin(self.call_model_governed(request)).await
    }

    /// A model call inside its span: usage and finish reason recorded on
    /// it, and the token, cost and duration metrics.
    async fn call_model_observed(
        &self,
        request: ModelRequest<'_>,
        span: tracing::Span,
    ) -> Result<Completion> {
        if self.capture_content && !span.is_disabled() {
            let messages = serde_json::to_string(request.messages).unwrap_or_default();
            span.record(
                "gen_ai.input.messages",
                crate::redact::redact(&messages).as_ref(),
            );
        }
        let clock = std::time::Instant::now();
        let outcome = self
            .call_model_gated(request)
            .instrument(span.clone())
            .await;
        let seconds = clock.elapsed().as_secs_f64();
        let model = self.model.name();
        let provider = telemetry::provider_name(model);
        let error_type = outcome.as_ref().err().map(|e| e.type_name());
        spans::metric!(
            telemetry::CLIENT_OPERATION_DURATION,
            seconds,
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = provider,
            gen_ai.request.model = model,
            error.type = error_type
        );
        match &outcome {
            Ok(c) => {
                let u = &c.usage;
                let input = u.input_tokens + u.cached_input_tokens + u.cache_write_tokens;
                spans::metric!(
                    telemetry::TOKENS_INPUT,
                    u.input_tokens,
                    gen_ai.request.model = model
                );
                spans::metric!(
                    telemetry::TOKENS_OUTPUT,
                    u.output_tokens,
                    gen_ai.request.model = model
                );
                if u.cost_usd > 0.0 {
                    spans::metric!(
                        telemetry::COST_USD,
                        u.cost_usd,
                        gen_ai.request.model = model
                    );
                }
                for (kind, tokens) in [("input", input), ("output", u.output_tokens)] {
                    spans::metric!(
                        telemetry::CLIENT_TOKEN_USAGE,
                        tokens,
                        gen_ai.operation.name = "chat",
                        gen_ai.provider.name = provider,
                        gen_ai.request.model = model,
                        gen_ai.token.type = kind
                    );
                }
                if !span.is_disabled() {
                    spans::record_usage(&span, u);
                    span.record(
                        "gen_ai.response.finish_reasons",
                        finish_reason(&c.finish_reason),
                    );
                    if self.capture_content {
                        let output = serde_json::json!({
                            "text": c.text,
                            "tool_calls": c.tool_calls,
                        });
                        span.record(
                            "gen_ai.output.messages",
                            crate::redact::redact(&output.to_string()).as_ref(),
                        );
                    }
                }
            }
            Err(e) => spans::record_error(&span, e.type_name(), e),
        }
        outcome
    }

    async fn call_model_gated(&self, request: ModelRequest<'_>) -> Result<Completion> {
        if !self.governance.gates_model_calls() {
            return self.call_model_plain(request).await;
        }
        // Boxed: governance is optional and its wait would otherwise size
        // every model call's future.
        Box::pin(self.call_model_governed(request)).await
    }

    /// A model call under the rate limiter and the budget: refused calls
    /// end the run (`budget:<cap>`, with a `budget_exceeded` event), soft
    /// warnings become `budget_warning` events, and the call's usage is
    /// charged when it returns.
    async fn call_model_governed(&self, request: ModelRequest<'_>) -> Result<Completion> {
        let admitted = match self
            .run_budget
            .before_call(self.governance, self.context)
            .await
        {
            Ok((admitted, warnings)) => {
                for w in warnings {
                    self.emitter
                        .emit(|| EventKind::BudgetWarning {
                            status: serde_json::json!({"cap": w.cap, "warning": w.message}),
                        })
                        .await;
                }
                admitted
            }
            Err((error, blocked)) => {
                if let Some(b) = blocked {
                    tracing::info!(cap = b.cap, user = %self.context.user_id, "budget exceeded");
                    spans::metric!(telemetry::BUDGET_EXCEEDED, 1u64, loom.budget.cap = b.cap);
                    self.emitter
                        .emit(|| EventKind::BudgetExceeded {
                            status: serde_json::json!({
                                "reason": b.cap, "limit": b.limit, "spent": b.spent,
                            }),
                        })
                        .await;
                }
                return Err(error);
            }
        };
        let completion = self.call_model_plain(request).await?;
        self.run_budget.after_call(admitted, &completion.usage);
        Ok(completion)
    }

    async fn call_model_plain(&self, request: ModelRequest<'_>) -> Result<Completion> {
        if !self.emitter.is_active() {
            return Ok(self.model.complete(request).await?);
        }
        // Boxed: inline, the streaming loop would size every model call's
        // future (and so every in-flight run) even when nobody listens.
        Box::pin(self.stream_model(request)).await
    }

    async fn stream_model(&self, request: ModelRequest<'_>) -> Result<Completion> {
        let mut stream = self.model.stream(request).await?;
        let mut out = Completion::default();
        // Output guardrails see streamed text before the caller does; the
        // completion keeps the raw reply (the run guards its final answer).
        let mut guarded = guarded_stream::GuardedChunks::new(&self.governance.guardrails);
        use futures_util::StreamExt;
        while let Some(chunk) = stream.next().await {
            let chunk: ModelChunk = chunk?;
            match &mut guarded {
                Some(g) => g.forward(&chunk, self.emitter).await,
                None => {
                    self.emitter
                        .emit(|| EventKind::ModelChunk {
                            chunk: chunk.clone(),
                        })
                        .await
                }
            }
            out.absorb(chunk);
        }
        if let Some(g) = &mut guarded {
            g.finish(self.emitter).await;
        }
        Ok(out)
    }
}

/// `error.type` for a tool call that did not succeed.
fn tool_error_type(result: &ToolResult) -> Option<&'static str> {
    if result.ok {
        None
    } else if result.denied {
        Some("permission_denied")
    } else if result
        .error
        .as_deref()
        .is_some_and(|e| e.contains("timed out"))
    {
        Some("timeout")
    } else {
        Some("tool_error")
    }
}

/// `gen_ai.response.finish_reasons`' value for `reason`.
fn finish_reason(reason: &crate::model::FinishReason) -> &'static str {
    use crate::model::FinishReason;
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::ToolUse => "tool_calls",
        FinishReason::Length => "length",
        FinishReason::ContentFilter => "content_filter",
        _ => "other",
    }
}

/// Drives one agent loop. Setup and teardown (context, `started`/`completed`
/// events, structured-output validation) belong to the agent; an architecture
/// only runs the loop and emits in-run events.
///
/// A re-invocation on a session with messages is a new user turn.
#[async_trait]
pub trait Architecture: Send + Sync + 'static {
    /// The architecture's name (`"react"`).
    fn name(&self) -> &str;

    /// Runs the loop for the user message `input` (text and images) until an
    /// answer, an interruption or an error.
    async fn run(
        &self,
        session: &mut AgentSession,
        deps: &RunDeps<'_>,
        input: Message,
    ) -> Result<()>;
}

/// Stores a checkpoint of `session` in `frame`'s journal, keeping the newest
/// `keep`; a failure is logged.
async fn store_checkpoint(frame: &Frame, keep: usize, session: &AgentSession) {
    let checkpoint = Checkpoint {
        id: crate::id::new_id("ckpt"),
        session_id: session.id.clone(),
        turn: session.turns,
        messages: session.messages.clone(),
        usage: session.usage,
        created_at: Utc::now(),
    };
    if let Err(e) = crate::journal::put_checkpoint(frame, &checkpoint, keep).await {
        tracing::warn!(session = %session.id, error = %Redacted(&e), "checkpoint failed");
    }
}
