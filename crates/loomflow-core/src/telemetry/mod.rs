//! Observability: loomflow's spans and metrics, on `tracing`, and the sinks
//! that record them.
//!
//! # What is emitted
//!
//! Spans (each a `tracing` span under target `loomflow`; exporters name
//! them by the GenAI semantic conventions and keep the loomflow name as
//! `loom.span.name`):
//!
//! | span | exported as | attributes |
//! |---|---|---|
//! | `loom.run` | `invoke_agent <agent>` | `gen_ai.agent.name`, `gen_ai.request.model`, `gen_ai.provider.name`, `gen_ai.conversation.id`, `loom.user_id`, `loom.session_id`, `loom.run_id`, `loom.architecture`; at the end `loom.turns`, `gen_ai.usage.*`, `loom.cost_usd`, `loom.interrupted`, `error.type` |
//! | `loom.turn` | `loom.turn` | `loom.turn` |
//! | `loom.model.stream`, `loom.model.complete` | `chat <model>` (client) | `gen_ai.request.model`, `gen_ai.provider.name`, `loom.turn`, `loom.tool_count`; at the end `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`, `gen_ai.usage.cache_read.input_tokens`, `gen_ai.response.finish_reasons`, `loom.cost_usd` |
//! | `loom.tool` | `execute_tool <tool>` | `gen_ai.tool.name`, `gen_ai.tool.call.id`, `loom.turn`, `loom.tool.destructive`, `loom.permission`, `loom.permission.reason`, `loom.approval`, `loom.approval.edited`, `loom.replayed`, `error.type` (`permission_denied`, `timeout`, `tool_error`) |
//! | `loom.workflow` | `loom.workflow` | `loom.workflow.name`, `loom.user_id`, `loom.session_id`, `loom.run_id` |
//! | `loom.workflow.step` | `loom.workflow.step` | `loom.workflow.name`, `loom.workflow.node`, `loom.workflow.step`, `loom.workflow.kind` (`node` or `step`), `loom.workflow.visit` |
//!
//! A span's parent is the span that was current where its work was
//! created: tool calls of one turn are siblings under `loom.turn`, a
//! sub-agent's `loom.run` sits under the `loom.tool` or workflow node that
//! ran it, also when the work runs on another task.
//!
//! Metrics (events under target `loom.metric`; see [`INSTRUMENTS`]):
//! `loom.tokens.input`, `loom.tokens.output`, `loom.cost.usd`,
//! `loom.tool.duration_ms`, `loom.session.duration_ms`,
//! `loom.budget.exceeded`, and the GenAI conventions'
//! `gen_ai.client.operation.duration` and `gen_ai.client.token.usage`.
//! No metric carries a session or run id.
//!
//! Prompts, outputs and tool arguments are left out unless content capture
//! is on ([`TelemetryBuilder::capture_content`], or
//! `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`); secrets are
//! redacted either way.
//!
//! # Where it goes
//!
//! A [`Telemetry`] is a set of [`Sink`]s (and, through
//! `loomflow-otel`, an OTLP exporter) behind one `tracing` dispatcher.
//! Attach it to an agent or a workflow
//! ([`AgentBuilder::telemetry`](crate::AgentBuilder::telemetry)), so only
//! their runs are recorded, or
//! install it for the whole process with [`Telemetry::install_global`].
//! Since everything is plain `tracing`, a subscriber you already have
//! (`tracing-opentelemetry`, `fmt`) sees the spans too.
//!
//! ```
//! use loomflow_core::Agent;
//! use loomflow_core::telemetry::{ConsoleSink, InMemorySink, Telemetry};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let spans = InMemorySink::new();
//! let telemetry = Telemetry::builder()
//!     .sink(ConsoleSink::to_writer(std::io::sink()))
//!     .sink(spans.clone())
//!     .build();
//! let agent = Agent::builder().model("echo").telemetry(telemetry).build().unwrap();
//! agent.run("hi").user("alice").await.unwrap();
//! let run = &spans.named("loom.run")[0];
//! assert_eq!(run.attributes.str("loom.user_id"), Some("alice"));
//! assert!(spans.metric_total("loom.tokens.output") > 0.0);
//! # });
//! ```
//!
//! Until a `tracing` dispatcher exists somewhere in the process, no span is
//! made at all (one atomic load per span site): 0.7 % of an agent run, see
//! `bench/README.md`.

mod console;
mod jsonl;
mod layer;
mod memory;
mod record;
mod semconv;
pub(crate) mod spans;
mod spec;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::Dispatch;
use tracing::instrument::WithSubscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::Registry;

pub use console::ConsoleSink;
pub use jsonl::JsonlSink;
pub use layer::{LoomMetrics, LoomSpans, LoomSpansAndMetrics, Sink, SinkLayer};
pub use memory::InMemorySink;
pub use record::{
    AttrValue, Attributes, InstrumentKind, MetricRecord, SpanId, SpanRecord, SpanStart, SpanStatus,
    TraceId,
};
pub use semconv::*;
pub use spans::{record_error, turn, workflow, workflow_node, workflow_step};
pub use spec::TelemetrySpec;

/// A layer an exporter adds to a [`Telemetry`] (see `loomflow-otel`).
pub type BoxLayer = Box<dyn Layer<Registry> + Send + Sync>;

tokio::task_local! {
    static CONTENT: bool;
}

static GLOBAL_CONTENT: AtomicBool = AtomicBool::new(false);

/// Whether the runs recorded by `own` (or, without one, by the telemetry
/// in scope) record prompts, outputs and tool arguments.
pub(crate) fn captures_content(own: Option<&Telemetry>) -> bool {
    match own {
        Some(t) => t.content,
        None => CONTENT
            .try_with(|c| *c)
            .unwrap_or_else(|_| GLOBAL_CONTENT.load(Ordering::Relaxed)),
    }
}

/// `fut` carrying the current span, the telemetry in scope and its content
/// setting, for a task about to be spawned (a spawned task starts with
/// none of them).
pub fn carry<F: Future>(fut: F) -> impl Future<Output = F::Output> + use<F> {
    use tracing::Instrument;
    let content = CONTENT.try_with(|c| *c).ok();
    let fut = fut.in_current_span().with_current_subscriber();
    match content {
        Some(c) => futures_util::future::Either::Left(CONTENT.scope(c, fut)),
        None => futures_util::future::Either::Right(fut),
    }
}

/// `f` carrying the current span and the telemetry in scope, for a closure
/// about to run on a blocking thread.
pub fn carry_blocking<R>(f: impl FnOnce() -> R) -> impl FnOnce() -> R {
    let span = tracing::Span::current();
    let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
    move || tracing::dispatcher::with_default(&dispatch, || span.in_scope(f))
}

/// Content capture by default: `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`.
fn content_from_env() -> bool {
    std::env::var("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
        .is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Where a run's spans and metrics go: sinks and exporters behind one
/// `tracing` dispatcher. Cheap to clone. See the [module docs](self).
#[derive(Clone)]
pub struct Telemetry {
    dispatch: Dispatch,
    content: bool,
    flush: Arc<[Flush]>,
}

type Flush = Arc<dyn Fn() + Send + Sync>;

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("capture_content", &self.content)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Telemetry`].
#[derive(Default)]
pub struct TelemetryBuilder {
    sinks: Vec<Arc<dyn Sink>>,
    layers: Vec<BoxLayer>,
    content: Option<bool>,
    flush: Vec<Flush>,
}

impl std::fmt::Debug for TelemetryBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryBuilder")
            .field("sinks", &self.sinks.len())
            .field("layers", &self.layers.len())
            .field("capture_content", &self.content)
            .finish()
    }
}

impl TelemetryBuilder {
    /// Adds a sink. All sinks see the same span ids.
    pub fn sink(self, sink: impl Sink) -> Self {
        self.sink_arc(Arc::new(sink))
    }

    /// Adds a shared sink.
    pub fn sink_arc(mut self, sink: Arc<dyn Sink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Adds a subscriber layer (an exporter such as `loomflow-otel`'s).
    /// Filter it with [`LoomSpans`] unless it should see every span.
    pub fn layer(mut self, layer: BoxLayer) -> Self {
        self.layers.push(layer);
        self
    }

    /// Adds what [`Telemetry::flush`] runs (an exporter's force-flush).
    pub fn on_flush(mut self, flush: impl Fn() + Send + Sync + 'static) -> Self {
        self.flush.push(Arc::new(flush));
        self
    }

    /// Records prompts, outputs and tool arguments on spans (redacted).
    /// Off by default, or as `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`
    /// says.
    pub fn capture_content(mut self, on: bool) -> Self {
        self.content = Some(on);
        self
    }

    /// The telemetry.
    pub fn build(self) -> Telemetry {
        let mut flush = self.flush;
        for sink in &self.sinks {
            let sink = Arc::clone(sink);
            flush.push(Arc::new(move || sink.flush()));
        }
        let sinks = (!self.sinks.is_empty())
            .then(|| SinkLayer::new(self.sinks).with_filter(LoomSpansAndMetrics));
        // An empty list of layers would vote "never" on every callsite.
        let layers = (!self.layers.is_empty()).then_some(self.layers);
        let subscriber = Registry::default().with(layers).with(sinks);
        Telemetry {
            dispatch: Dispatch::new(subscriber),
            content: self.content.unwrap_or_else(content_from_env),
            flush: flush.into(),
        }
    }
}

impl Telemetry {
    /// Starts building one.
    pub fn builder() -> TelemetryBuilder {
        TelemetryBuilder::default()
    }

    /// The live tree on stderr.
    pub fn console() -> Self {
        Self::builder().sink(ConsoleSink::stderr()).build()
    }

    /// JSONL lines appended to `path`.
    pub fn jsonl(path: impl AsRef<std::path::Path>) -> std::io::Result<Self> {
        Ok(Self::builder().sink(JsonlSink::create(path)?).build())
    }

    /// Records into memory; returns the telemetry and the sink to read.
    pub fn in_memory() -> (Self, InMemorySink) {
        let sink = InMemorySink::new();
        (Self::builder().sink(sink.clone()).build(), sink)
    }

    /// Whether prompts, outputs and tool arguments are recorded.
    pub fn captures_content(&self) -> bool {
        self.content
    }

    /// The `tracing` dispatcher behind it.
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// Runs `fut` with this telemetry recording it (and everything it
    /// spawns through loomflow).
    pub fn scope<F: Future>(&self, fut: F) -> impl Future<Output = F::Output> + use<F> {
        CONTENT.scope(self.content, fut.with_subscriber(self.dispatch.clone()))
    }

    /// Makes this the process-wide default: every run without its own
    /// telemetry is recorded here, and so is any other `tracing` output.
    /// Fails if a global subscriber is already set.
    pub fn install_global(&self) -> Result<(), crate::error::ConfigError> {
        tracing::dispatcher::set_global_default(self.dispatch.clone()).map_err(|_| {
            crate::error::ConfigError::invalid(
                "telemetry",
                "a global tracing subscriber is already installed; attach the telemetry to the \
                 agent (AgentBuilder::telemetry) or add loomflow's SinkLayer to your subscriber",
            )
        })?;
        GLOBAL_CONTENT.store(self.content, Ordering::Relaxed);
        Ok(())
    }

    /// Writes out what sinks and exporters have buffered; returns when it
    /// is written. Call it before the process exits. It blocks the thread:
    /// from async code, use [`flushed`](Self::flushed).
    pub fn flush(&self) {
        for f in self.flush.iter() {
            f();
        }
    }

    /// [`flush`](Self::flush) on a blocking thread, for async code.
    pub async fn flushed(&self) {
        let this = self.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let _ = rt.spawn_blocking(move || this.flush()).await;
            }
            Err(_) => this.flush(),
        }
    }
}
