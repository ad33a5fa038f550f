//! The spans and metric points the agent and the workflow emit. Every
//! constructor is cheap when nothing listens: `tracing` skips a disabled
//! span's fields entirely.

use tracing::Span;
use tracing::field::Empty;

use super::semconv::GenAiName;
use crate::context::RunContext;

/// Records a metric point: an event under [`METRIC_TARGET`]
/// (super::semconv::METRIC_TARGET) with the metric's name, its value and
/// its attributes.
macro_rules! metric {
    ($name:expr, $value:expr $(, $($field:tt)+)?) => {
        ::tracing::event!(
            target: "loom.metric",
            ::tracing::Level::INFO,
            loom.metric = $name,
            loom.value = $value
            $(, $($field)+)?
        )
    };
}
pub(crate) use metric;

/// False until a `tracing` dispatcher has been set anywhere in the process
/// (a [`Telemetry`](super::Telemetry) in use, or a global subscriber): then
/// no span or metric point can be recorded, and the agent skips making them.
/// One relaxed atomic load.
#[inline(always)]
pub(crate) fn active() -> bool {
    tracing::dispatcher::has_been_set()
}

/// True when some subscriber records metric points (so timing them is
/// worth a clock read).
pub(crate) fn metrics_enabled() -> bool {
    active() && tracing::enabled!(target: "loom.metric", tracing::Level::INFO)
}

/// `span` when it or the metrics are recorded by something, else `None`
/// (so a caller keeps nothing of it across an await).
pub(crate) fn observed(span: impl FnOnce() -> Span) -> Option<Span> {
    if !active() {
        return None;
    }
    let span = span();
    (!span.is_disabled() || metrics_enabled()).then_some(span)
}

/// `loom.run`, exported as `invoke_agent <agent>`.
/// (The user, session and run ids are recorded by [`record_context`] once
/// the run has them.)
/// `user` is asked only when something records the span.
pub(crate) fn run(
    agent: Option<&str>,
    model: &str,
    architecture: &str,
    max_turns: u32,
    user: impl FnOnce() -> Option<crate::id::UserId>,
) -> Span {
    tracing::info_span!(
        target: "loomflow",
        "loom.run",
        otel.name = %GenAiName { operation: "invoke_agent", subject: agent.unwrap_or("") },
        loom.span.name = "loom.run",
        gen_ai.operation.name = "invoke_agent",
        gen_ai.agent.name = agent,
        gen_ai.request.model = model,
        gen_ai.provider.name = super::semconv::provider_name(model),
        gen_ai.conversation.id = Empty,
        loom.user_id = user().as_ref().and_then(crate::id::UserId::as_str),
        loom.session_id = Empty,
        loom.run_id = Empty,
        loom.architecture = architecture,
        loom.max_turns = i64::from(max_turns),
        loom.input = Empty,
        loom.turns = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.usage.cache_read.input_tokens = Empty,
        gen_ai.usage.cache_creation.input_tokens = Empty,
        loom.cost_usd = Empty,
        loom.interrupted = Empty,
        loom.interruption_reason = Empty,
        loom.output = Empty,
        error.type = Empty,
        loom.error = Empty,
    )
}

/// Records a run's session and run ids on its span (the user is known
/// when the span opens).
pub(crate) fn record_context(span: &Span, ctx: &RunContext) {
    span.record("gen_ai.conversation.id", ctx.session_id.as_str());
    span.record("loom.session_id", ctx.session_id.as_str());
    span.record("loom.run_id", ctx.run_id.as_str());
}

/// `loom.turn`: one model call and the tools it asked for. Public so a
/// custom [`Architecture`](crate::Architecture) can mark its turns the
/// way ReAct does.
pub fn turn(turn: u32) -> Span {
    tracing::info_span!(target: "loomflow", "loom.turn", loom.turn = i64::from(turn))
}

macro_rules! model_span {
    ($name:literal, $model:expr, $turn:expr, $tools:expr) => {
        tracing::info_span!(
            target: "loomflow",
            $name,
            otel.name = %GenAiName { operation: "chat", subject: $model },
            otel.kind = "client",
            loom.span.name = $name,
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = super::semconv::provider_name($model),
            gen_ai.request.model = $model,
            loom.turn = $turn,
            loom.tool_count = $tools,
            gen_ai.input.messages = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            gen_ai.usage.cache_read.input_tokens = Empty,
            gen_ai.usage.cache_creation.input_tokens = Empty,
            gen_ai.response.finish_reasons = Empty,
            loom.cost_usd = Empty,
            gen_ai.output.messages = Empty,
            error.type = Empty,
            loom.error = Empty,
        )
    };
}

/// `loom.model.stream` (streamed) or `loom.model.complete`, exported as
/// `chat <model>` (kind client).
pub(crate) fn model(streamed: bool, model: &str, turn: Option<u32>, tools: usize) -> Span {
    match streamed {
        // Whole numbers as i64: exporters send u64 as text.
        true => model_span!(
            "loom.model.stream",
            model,
            turn.map(i64::from),
            count(tools)
        ),
        false => model_span!(
            "loom.model.complete",
            model,
            turn.map(i64::from),
            count(tools)
        ),
    }
}

/// `loom.tool`, exported as `execute_tool <tool>`.
pub(crate) fn tool(tool: &str, call_id: &str, turn: u32) -> Span {
    tracing::info_span!(
        target: "loomflow",
        "loom.tool",
        otel.name = %GenAiName { operation: "execute_tool", subject: tool },
        loom.span.name = "loom.tool",
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = tool,
        gen_ai.tool.call.id = call_id,
        gen_ai.tool.type = "function",
        loom.turn = i64::from(turn),
        gen_ai.tool.call.arguments = Empty,
        loom.tool.destructive = Empty,
        loom.permission = Empty,
        loom.permission.reason = Empty,
        loom.approval = Empty,
        loom.approval.edited = Empty,
        loom.replayed = Empty,
        gen_ai.tool.call.result = Empty,
        error.type = Empty,
        loom.error = Empty,
    )
}

/// `loom.workflow`: a workflow run.
pub fn workflow(name: &str, ctx: &RunContext) -> Span {
    tracing::info_span!(
        target: "loomflow",
        "loom.workflow",
        loom.workflow.name = name,
        loom.user_id = ctx.user_id.as_str(),
        loom.session_id = ctx.session_id.as_str(),
        loom.run_id = ctx.run_id.as_str(),
        loom.interrupted = Empty,
        loom.interruption_reason = Empty,
        error.type = Empty,
        loom.error = Empty,
    )
}

/// `loom.workflow.step` for a node (`loom.workflow.kind = "node"`, with its
/// visit count).
pub fn workflow_node(workflow: &str, node: &str, visit: u32) -> Span {
    tracing::info_span!(
        target: "loomflow",
        "loom.workflow.step",
        loom.workflow.name = workflow,
        loom.workflow.node = node,
        loom.workflow.step = node,
        loom.workflow.kind = "node",
        loom.workflow.visit = i64::from(visit),
        error.type = Empty,
        loom.error = Empty,
    )
}

/// `loom.workflow.step` for a `#[step]` function inside a node
/// (`loom.workflow.kind = "step"`).
pub fn workflow_step(workflow: &str, node: &str, step: &str) -> Span {
    tracing::info_span!(
        target: "loomflow",
        "loom.workflow.step",
        loom.workflow.name = workflow,
        loom.workflow.node = node,
        loom.workflow.step = step,
        loom.workflow.kind = "step",
        error.type = Empty,
        loom.error = Empty,
    )
}

/// A count as an `i64` attribute (exporters send `u64` values as text).
pub(crate) fn count<N: TryInto<i64>>(n: N) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// Records token counts on a run or model span (`gen_ai.usage.*`; the
/// input count includes cache reads and writes, as the conventions say).
pub(crate) fn record_usage(span: &Span, u: &crate::message::Usage) {
    span.record(
        "gen_ai.usage.input_tokens",
        count(u.input_tokens + u.cached_input_tokens + u.cache_write_tokens),
    );
    span.record("gen_ai.usage.output_tokens", count(u.output_tokens));
    if u.cached_input_tokens > 0 {
        span.record(
            "gen_ai.usage.cache_read.input_tokens",
            count(u.cached_input_tokens),
        );
    }
    if u.cache_write_tokens > 0 {
        span.record(
            "gen_ai.usage.cache_creation.input_tokens",
            count(u.cache_write_tokens),
        );
    }
    span.record("loom.cost_usd", u.cost_usd);
}

/// Records a failure on `span`: `error.type` (a short type name) and
/// `loom.error` (the message, redacted). The message is formatted only when
/// the span is recorded.
pub fn record_error(span: &Span, error_type: &str, message: &dyn std::fmt::Display) {
    if span.is_disabled() {
        return;
    }
    span.record("error.type", error_type);
    span.record(
        "loom.error",
        crate::redact::redact(&message.to_string()).as_ref(),
    );
}
