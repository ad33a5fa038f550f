//! [`Workflow`]: running the graph.

use std::collections::{BTreeMap, VecDeque};
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use futures_util::future::Either;
use futures_util::stream::{FuturesUnordered, StreamExt};
use loomflow_core::audit::{AuditLog, AuditRecord, append_redacted};
use loomflow_core::context::{Ambient, Metadata};
use loomflow_core::error::IdError;
use loomflow_core::id::new_id;
use loomflow_core::job::{Job, JobError, JobRun};
use loomflow_core::journal::{self, Durable, OpenMode, Scope};
use loomflow_core::step::StepScope;
use loomflow_core::telemetry;
use loomflow_core::{EventKind, EventSink, RunContext, RunId, SessionId, UserId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument;

use crate::error::WorkflowError;
use crate::graph::{Bits, Graph, Out, Settings, Start, To, WorkflowBuilder};
use crate::node::{BoxError, InputMismatch, Node, NodeContext, NodeName, NodeOutcome};
use crate::stream::WorkflowStream;

/// A developer-controlled graph of nodes (async fns, sync fns, Agents,
/// Workflows), validated when built. Cheap to clone and share across tasks;
/// every run has its own state.
#[derive(Clone)]
pub struct Workflow {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub name: String,
    /// The name again, shared with the nodes' step scopes.
    pub shared_name: Arc<str>,
    pub graph: Graph,
    pub settings: Settings,
}

impl std::fmt::Debug for Workflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workflow")
            .field("name", &self.inner.name)
            .field("nodes", &self.inner.graph.names)
            .finish_non_exhaustive()
    }
}

impl Workflow {
    /// Starts building a workflow called `name`.
    pub fn builder(name: impl Into<String>) -> WorkflowBuilder {
        WorkflowBuilder::new(name)
    }

    pub(crate) fn from_parts(name: String, graph: Graph, settings: Settings) -> Self {
        Self {
            inner: Arc::new(Inner {
                shared_name: name.as_str().into(),
                name,
                graph,
                settings,
            }),
        }
    }

    /// This workflow with every run journaled to `journal` (what
    /// [`WorkflowBuilder::journal`](crate::WorkflowBuilder::journal) sets),
    /// for a workflow loaded from a file. The graph is shared, not rebuilt.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use loomflow_core::InMemoryJournal;
    /// use loomflow_workflow::Workflow;
    ///
    /// let wf = Workflow::from_toml(
    ///     "start = \"a\"\n[agents.echo]\nmodel = \"echo\"\n\
    ///      [[nodes]]\nname = \"a\"\nagent = \"echo\"\n[[edges]]\nfrom = \"a\"\nto = \"END\"\n",
    ///     "flow.toml",
    ///     std::path::Path::new("."),
    /// ).unwrap();
    /// let durable = wf.with_journal(Arc::new(InMemoryJournal::new()));
    /// assert_eq!(durable.name(), "flow");
    /// ```
    pub fn with_journal(&self, journal: Arc<dyn loomflow_core::Journal>) -> Workflow {
        let mut settings = self.inner.settings.clone();
        settings.journal = Some(journal);
        Self::from_parts(self.inner.name.clone(), self.inner.graph.clone(), settings)
    }

    /// A copy of this workflow whose Agents without a memory of their own
    /// use `memory` (see [`WorkflowBuilder::memory`](crate::WorkflowBuilder::memory)).
    pub fn with_memory(&self, memory: Arc<dyn loomflow_core::memory::Memory>) -> Workflow {
        let mut settings = self.inner.settings.clone();
        settings.memory = Some(memory);
        Self::from_parts(self.inner.name.clone(), self.inner.graph.clone(), settings)
    }

    /// The memory a declarative file's `memory` key names, for the caller
    /// to open (`loomflow::open_memory`) and attach with
    /// [`with_memory`](Self::with_memory); `loomflow run` does both.
    pub fn memory_spec(&self) -> Option<&loomflow_core::memory::MemorySpec> {
        self.inner.settings.memory_spec.as_ref()
    }

    /// A copy of this workflow that audits its steps in `log` and lends it
    /// to the Agents and nested workflows without one (see
    /// [`WorkflowBuilder::audit_log`](crate::WorkflowBuilder::audit_log)).
    pub fn with_audit_log(&self, log: Arc<dyn loomflow_core::audit::AuditLog>) -> Workflow {
        let mut settings = self.inner.settings.clone();
        settings.audit = Some(log);
        Self::from_parts(self.inner.name.clone(), self.inner.graph.clone(), settings)
    }

    /// The audit log a declarative file's `audit_log` key names, for the
    /// caller to open (`loomflow::open_audit_log`) and attach with
    /// [`with_audit_log`](Self::with_audit_log); `loomflow run` does both.
    pub fn audit_spec(&self) -> Option<&loomflow_core::audit::AuditSpec> {
        self.inner.settings.audit_spec.as_ref()
    }

    /// A copy of this workflow recorded in `telemetry` (see
    /// [`WorkflowBuilder::telemetry`](crate::WorkflowBuilder::telemetry)).
    pub fn with_telemetry(&self, telemetry: loomflow_core::telemetry::Telemetry) -> Workflow {
        let mut settings = self.inner.settings.clone();
        settings.telemetry = Some(telemetry);
        Self::from_parts(self.inner.name.clone(), self.inner.graph.clone(), settings)
    }

    /// A declarative file's agents with `[[mcp]]` servers, for the caller
    /// to connect (`loomflow::connect_workflow_mcp`; `loomflow run` does).
    pub fn mcp_servers(&self) -> &[crate::file::AgentMcp] {
        &self.inner.settings.mcp
    }

    /// The telemetry a declarative file's `telemetry` key names, for the
    /// caller to open (`loomflow::open_telemetry`) and attach with
    /// [`with_telemetry`](Self::with_telemetry); `loomflow run` does both.
    pub fn telemetry_spec(&self) -> Option<&loomflow_core::telemetry::TelemetrySpec> {
        self.inner.settings.telemetry_spec.as_ref()
    }

    /// The workflow's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Node names in declaration order.
    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.inner.graph.names.iter().map(NodeName::as_str)
    }

    /// A run on `input` (anything `Serialize`). Set per-run options, then
    /// `.await` it or call [`WorkflowRequest::stream`].
    pub fn run(&self, input: impl Serialize) -> WorkflowRequest {
        let input = serde_json::to_value(input).map_err(|e| e.to_string());
        WorkflowRequest::new(self.clone(), input)
    }

    /// Streams a run's events (sugar for `workflow.run(input).stream()`).
    pub fn stream(&self, input: impl Serialize) -> WorkflowStream {
        self.run(input).stream()
    }

    pub(crate) fn run_value(&self, input: Value) -> WorkflowRequest {
        WorkflowRequest::new(self.clone(), Ok(input))
    }
}

/// A nested workflow runs in the live run's user, session and metadata,
/// forwarding its events (attributed to this node) when streamed. An
/// interrupted nested workflow interrupts this one.
#[async_trait]
impl Node for Workflow {
    async fn run(&self, input: Value, cx: NodeContext<'_>) -> Result<NodeOutcome, BoxError> {
        let mut request = self.run_value(input).in_live_context();
        if let Some(sink) = cx.events() {
            request = request.events_to(sink);
        }
        let result = request.await?;
        Ok(match result.interruption_reason {
            Some(reason) if result.interrupted => NodeOutcome::Interrupted {
                output: result.output,
                reason,
            },
            _ => NodeOutcome::Done(result.output),
        })
    }

    fn default_name(&self) -> Option<String> {
        Some(self.inner.name.clone())
    }
}

/// A workflow is a queue job: the input is the workflow's input, the output
/// is the [`WorkflowResult`] as JSON.
#[async_trait]
impl Job for Workflow {
    async fn run(&self, run: JobRun) -> Result<Value, JobError> {
        let result = self
            .run_value(run.input)
            .user(run.user)
            .session(run.session)
            .run_id(run.run_id)
            .events_to(run.events)
            .await
            .map_err(|e| JobError::new(e.type_name(), e.to_string()))?;
        serde_json::to_value(result).map_err(|e| JobError::new("SerializationError", e.to_string()))
    }
}

/// The outcome of a workflow run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowResult {
    /// The session the run used.
    pub session_id: SessionId,
    /// This run.
    pub run_id: RunId,
    /// The tenant.
    pub user_id: UserId,
    /// The output of the terminal node (the deepest one that ended a path,
    /// then the one declared last); the last completed value when
    /// interrupted; the input when no node ran.
    pub output: Value,
    /// Nodes in the order they completed, repeats included.
    pub visited: Vec<NodeName>,
    /// The last value each node produced.
    pub per_step: BTreeMap<NodeName, Value>,
    /// True when an Agent or Workflow node came back interrupted.
    pub interrupted: bool,
    /// `"<node>:<reason>"` when interrupted.
    pub interruption_reason: Option<String>,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
}

impl WorkflowResult {
    /// The output as `T`.
    pub fn output_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.output)
    }
}

/// A workflow run about to start. `.await` it, or [`stream`](Self::stream) it.
///
/// ```
/// use loomflow_workflow::Workflow;
///
/// async fn shout(s: String) -> String { s.to_uppercase() }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let wf = Workflow::chain([loomflow_workflow::Step::of(shout)]).build().unwrap();
/// let r = wf.run("hi").user("alice").session("conv-1").metadata("channel", "web").await.unwrap();
/// assert_eq!(r.output, "HI");
/// assert_eq!(r.session_id.as_str(), "conv-1");
/// # });
/// ```
#[must_use = "a run does nothing until it is awaited or streamed"]
pub struct WorkflowRequest {
    pub(crate) workflow: Workflow,
    input: Result<Value, String>,
    user: Option<Result<UserId, IdError>>,
    session: Option<Result<SessionId, IdError>>,
    metadata: Metadata,
    sink: Option<EventSink>,
    run_id: Option<RunId>,
}

impl std::fmt::Debug for WorkflowRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowRequest")
            .field("workflow", &self.workflow.inner.name)
            .finish_non_exhaustive()
    }
}

impl WorkflowRequest {
    fn new(workflow: Workflow, input: Result<Value, String>) -> Self {
        Self {
            workflow,
            input,
            user: None,
            session: None,
            metadata: Metadata::new(),
            sink: None,
            run_id: None,
        }
    }

    /// The tenant (validated when the run starts). Without it, a run inside
    /// another run inherits that run's user; a top-level run is anonymous.
    pub fn user<U>(mut self, user: U) -> Self
    where
        U: TryInto<UserId>,
        U::Error: Into<IdError>,
    {
        self.user = Some(user.try_into().map_err(Into::into));
        self
    }

    /// The session (default: a fresh `wf_session_…`).
    pub fn session<S>(mut self, session: S) -> Self
    where
        S: TryInto<SessionId>,
        S::Error: Into<IdError>,
    {
        self.session = Some(session.try_into().map_err(Into::into));
        self
    }

    /// Adds a metadata entry, visible to every node as
    /// [`RunContext::metadata`].
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Runs in the session and metadata of the run this code is part of (a
    /// nested run); the user is inherited in any case.
    pub(crate) fn in_live_context(mut self) -> Self {
        if let Some(ctx) = RunContext::current() {
            self.session = Some(Ok(ctx.session_id));
            self.metadata = Arc::unwrap_or_clone(ctx.metadata);
        }
        self
    }

    /// Runs under this run id instead of a fresh one (a queued run keeps
    /// its id when a worker runs it again after a crash).
    pub fn run_id(mut self, run_id: RunId) -> Self {
        self.run_id = Some(run_id);
        self
    }

    /// Sends the run's events into `sink` (another run's stream).
    pub fn events_to(mut self, sink: EventSink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Runs with events streamed through a bounded channel; the run starts
    /// on the first poll and dropping the stream cancels it.
    pub fn stream(self) -> WorkflowStream {
        WorkflowStream::new(self)
    }

    pub(crate) fn event_buffer(&self) -> usize {
        self.workflow.inner.settings.event_buffer
    }

    pub(crate) fn execute(
        self,
        sink: Option<EventSink>,
    ) -> impl Future<Output = Result<WorkflowResult, WorkflowError>> + Send {
        // The workflow's own telemetry records the whole run.
        match self.workflow.inner.settings.telemetry.clone() {
            Some(telemetry) => Either::Left(telemetry.scope(self.execute_here(sink))),
            None => Either::Right(self.execute_here(sink)),
        }
    }

    async fn execute_here(self, sink: Option<EventSink>) -> Result<WorkflowResult, WorkflowError> {
        let started_at = Utc::now();
        let inner = self.workflow.inner.clone();
        let session_id = match self.session {
            Some(s) => s?,
            None => SessionId::new(new_id("wf_session"))?,
        };
        let user_id = match self.user {
            Some(u) => u?,
            None => RunContext::current().map(|c| c.user_id).unwrap_or_default(),
        };
        let input = match self.input {
            Ok(v) => v,
            Err(message) => {
                return Err(WorkflowError::InputMismatch {
                    workflow: inner.name.clone(),
                    from: vec!["the caller".into()],
                    to: "START".into(),
                    expected: "a value that serialises to JSON",
                    message,
                });
            }
        };
        let ctx = RunContext {
            user_id,
            session_id,
            run_id: self.run_id.clone().unwrap_or_else(RunId::generate),
            metadata: Arc::new(self.metadata),
        };
        let span = telemetry::workflow(&inner.name, &ctx);
        let recorded = span.clone();
        let outcome = async move {
            let durable = Durable::enter(
                inner.settings.journal.as_ref(),
                || Scope::new(ctx.user_id.clone(), ctx.session_id.clone()),
                Some(&input.to_string()),
                match &self.run_id {
                    Some(run_id) => OpenMode::Keyed(run_id.clone()),
                    None => OpenMode::Run,
                },
            )
            .await
            .map_err(|source| WorkflowError::Journal {
                workflow: inner.name.clone(),
                source,
            });
            let durable = match durable {
                Ok(d) => d,
                Err(e) => {
                    if let Some(sink) = &sink {
                        sink.send(&ctx.session_id, || EventKind::Error {
                            error_type: e.type_name().to_owned(),
                            message: e.to_string(),
                        })
                        .await;
                    }
                    return Err(e);
                }
            };
            if let Some(sink) = &sink {
                sink.send(&ctx.session_id, || EventKind::WorkflowStarted {
                    workflow: inner.name.clone(),
                    input: input.clone(),
                })
                .await;
            }
            // Route handlers read the run's original input; kept only when asked.
            let shared_input = inner.settings.needs_input.then(|| input.clone());
            // The workflow's own log, else a surrounding run's.
            let audit = inner
                .settings
                .audit
                .clone()
                .or_else(Ambient::current_audit_log);
            let body = Scheduler::new(
                &inner,
                sink.as_ref(),
                &ctx,
                shared_input.as_ref(),
                audit.as_deref(),
            )
            .run(input);
            let body = ctx.clone().scope(body);
            let body = async {
                match &durable {
                    Some(d) => d.run_in(body).await,
                    None => body.await,
                }
            };
            let settings = &inner.settings;
            let mut outcome = if settings.response_tone.is_some()
                || settings.memory.is_some()
                || settings.audit.is_some()
            {
                let mut ambient = Ambient::default();
                ambient.response_tone.clone_from(&settings.response_tone);
                ambient.memory.clone_from(&settings.memory);
                ambient.audit_log.clone_from(&settings.audit);
                if settings.memory.is_some() {
                    ambient.memory_facts = Some(settings.memory_facts);
                }
                ambient.scope(body).await
            } else {
                body.await
            };
            if outcome.is_ok()
                && let Some(d) = durable
                && let Err(source) = d.finish().await
            {
                outcome = Err(WorkflowError::Journal {
                    workflow: inner.name.clone(),
                    source,
                });
            }
            match outcome {
                Ok(done) => {
                    if let Some(sink) = &sink {
                        sink.send(&ctx.session_id, || EventKind::WorkflowCompleted {
                            workflow: inner.name.clone(),
                            output: done.output.clone(),
                            interrupted: done.interruption_reason.is_some(),
                            interruption_reason: done.interruption_reason.clone(),
                        })
                        .await;
                    }
                    Ok(WorkflowResult {
                        session_id: ctx.session_id,
                        run_id: ctx.run_id,
                        user_id: ctx.user_id,
                        output: done.output,
                        visited: done.visited,
                        per_step: done.per_step,
                        interrupted: done.interruption_reason.is_some(),
                        interruption_reason: done.interruption_reason,
                        started_at,
                        finished_at: Utc::now(),
                    })
                }
                Err(e) => {
                    if let Some(sink) = &sink {
                        sink.send(&ctx.session_id, || EventKind::Error {
                            error_type: e.type_name().to_owned(),
                            message: e.to_string(),
                        })
                        .await;
                    }
                    Err(e)
                }
            }
        }
        .instrument(span)
        .await;
        if !recorded.is_disabled() {
            match &outcome {
                Ok(done) => {
                    recorded.record("loom.interrupted", done.interrupted);
                    if let Some(reason) = &done.interruption_reason {
                        recorded.record("loom.interruption_reason", reason.as_str());
                    }
                }
                Err(e) => telemetry::record_error(&recorded, e.type_name(), e),
            }
        }
        outcome
    }
}

impl IntoFuture for WorkflowRequest {
    type Output = Result<WorkflowResult, WorkflowError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(mut self) -> Self::IntoFuture {
        let sink = self.sink.take();
        Box::pin(self.execute(sink))
    }
}

/// Runs a node; in a journaled run, as step `node:<name>#<visit>` (a
/// recorded node returns its recorded outcome without running).
async fn run_node(
    node: &dyn Node,
    name: &NodeName,
    scope: StepScope,
    visit: u32,
    input: Value,
    cx: NodeContext<'_>,
) -> Result<NodeOutcome, BoxError> {
    // `#[step]` functions called by the node see which node they run in.
    let outcome = if !journal::active() {
        scope.scope(node.run(input, cx)).await
    } else {
        let step = format!("node:{}#{visit}", name.as_str());
        let fingerprinted = input.clone();
        scope
            .scope(journal::step(&step, &fingerprinted, || node.run(input, cx)))
            .await
    };
    if let Err(e) = &outcome {
        telemetry::record_error(&tracing::Span::current(), "node_failed", e);
    }
    outcome
}

/// Who delivered a node's input (`None` is the workflow's input).
enum Sources {
    One(Option<usize>),
    Many(Vec<Option<usize>>),
}

struct Delivery {
    decl: u32,
    arrival: u64,
    from: Option<usize>,
    value: Value,
}

struct Finished {
    output: Value,
    visited: Vec<NodeName>,
    per_step: BTreeMap<NodeName, Value>,
    interruption_reason: Option<String>,
}

type Completion = (usize, Sources, Result<NodeOutcome, BoxError>);

/// One run's scheduling state. Nodes run as futures polled by the run's own
/// task: concurrent without spawning, and cancelled by dropping them.
struct Scheduler<'a> {
    wf: &'a Inner,
    sink: Option<&'a EventSink>,
    session: &'a SessionId,
    user: &'a UserId,
    audit: Option<&'a dyn AuditLog>,
    input: Value,
    shared_input: Option<&'a Value>,
    steps: u32,
    visits: Vec<u32>,
    pending: Vec<Vec<Delivery>>,
    pending_bits: Bits,
    active: Vec<u32>,
    active_bits: Bits,
    blocked: Bits,
    arrival: u64,
    per_step: Vec<Option<Value>>,
    visited: Vec<NodeName>,
    ended: Vec<usize>,
    last: Option<usize>,
    queue: VecDeque<(usize, u32, Value, Sources)>,
    scratch: Vec<usize>,
}

impl<'a> Scheduler<'a> {
    fn new(
        wf: &'a Inner,
        sink: Option<&'a EventSink>,
        ctx: &'a RunContext,
        shared_input: Option<&'a Value>,
        audit: Option<&'a dyn AuditLog>,
    ) -> Self {
        let n = wf.graph.nodes.len();
        Self {
            wf,
            sink,
            session: &ctx.session_id,
            user: &ctx.user_id,
            audit,
            input: Value::Null,
            shared_input,
            steps: 0,
            visits: vec![0; n],
            pending: (0..n).map(|_| Vec::new()).collect(),
            pending_bits: Bits::new(n),
            active: vec![0; n],
            active_bits: Bits::new(n),
            blocked: Bits::new(n),
            arrival: 0,
            per_step: vec![None; n],
            visited: Vec::new(),
            ended: Vec::new(),
            last: None,
            queue: VecDeque::new(),
            scratch: Vec::new(),
        }
    }

    fn name(&self, node: usize) -> &'a str {
        self.wf.graph.names[node].as_str()
    }

    async fn run(mut self, input: Value) -> Result<Finished, WorkflowError> {
        let wf: &'a Inner = self.wf;
        let graph = &wf.graph;
        let first = match &graph.start {
            Start::Node(n) => Some(*n),
            Start::Router {
                router,
                routes,
                default,
            } => {
                let key = router.classifier.classify(&input).await.map_err(|source| {
                    WorkflowError::Classifier {
                        workflow: self.wf.name.clone(),
                        source_node: "START".into(),
                        source,
                    }
                })?;
                match routes.get(&key).copied().or(*default) {
                    Some(target) => target,
                    None => return Err(self.no_route("START", key, router)),
                }
            }
        };
        let Some(first) = first else {
            return Ok(self.finish(Some(input), None));
        };
        self.input = input.clone();
        self.deliver(first, 0, None, input);
        self.fire_ready(0)?;

        let mut running: FuturesUnordered<_> = FuturesUnordered::new();
        let max = self.wf.settings.max_concurrency;
        loop {
            // Start what has a slot; run a lone node inline (no task node).
            let mut inline = None;
            while running.len() < max {
                let Some((node, visit, input, sources)) = self.queue.pop_front() else {
                    break;
                };
                self.step_started(node).await;
                let cx = self.context(node);
                let name = &graph.names[node];
                let scope = StepScope::new(self.wf.shared_name.clone(), name.shared());
                let span = telemetry::workflow_node(&self.wf.name, name.as_str(), visit);
                let fut = run_node(graph.nodes[node].as_ref(), name, scope, visit, input, cx)
                    .instrument(span);
                if running.is_empty() && self.queue.is_empty() {
                    inline = Some((node, sources, fut));
                    break;
                }
                running.push(fut.map(move |r| (node, sources, r)));
            }
            let done: Completion = match inline {
                Some((node, sources, fut)) => (node, sources, fut.await),
                None => match running.next().await {
                    Some(done) => done,
                    None => break,
                },
            };
            if let Some((reason, output)) = self.complete(done).await? {
                return Ok(self.finish(Some(output), Some(reason)));
            }
            self.fire_ready(running.len())?;
        }
        Ok(self.finish(None, None))
    }

    fn context(&self, node: usize) -> NodeContext<'a> {
        let wf: &'a Inner = self.wf;
        NodeContext {
            workflow: &wf.name,
            node: self.name(node),
            sink: self.sink,
            input: self.shared_input,
        }
    }

    fn last_value(&self) -> Value {
        match self.last.and_then(|i| self.per_step[i].as_ref()) {
            Some(v) => v.clone(),
            None => self.input.clone(),
        }
    }

    /// The output and per-node values. `output` overrides the pick among
    /// the nodes that ended a path.
    fn finish(mut self, output: Option<Value>, reason: Option<String>) -> Finished {
        let output = output.unwrap_or_else(|| {
            let graph = &self.wf.graph;
            let pick = self
                .ended
                .iter()
                .copied()
                .max_by_key(|&i| (graph.rank[i], i));
            match pick.or(self.last) {
                Some(i) => self.per_step[i].clone().unwrap_or(Value::Null),
                None => std::mem::take(&mut self.input),
            }
        });
        let per_step = self
            .per_step
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (self.wf.graph.names[i].clone(), v)))
            .collect();
        Finished {
            output,
            visited: self.visited,
            per_step,
            interruption_reason: reason,
        }
    }

    fn deliver(&mut self, node: usize, decl: u32, from: Option<usize>, value: Value) {
        self.arrival += 1;
        self.pending[node].push(Delivery {
            decl,
            arrival: self.arrival,
            from,
            value,
        });
        self.pending_bits.set(node);
    }

    /// Fires every node whose inputs are complete: it has a delivery, is not
    /// running, and nothing running or holding input can still reach it.
    /// With nothing in flight and only mutually blocking joins left, the
    /// first pending node fires (declaration order).
    fn fire_ready(&mut self, running: usize) -> Result<(), WorkflowError> {
        if self.pending_bits.is_empty() {
            return Ok(());
        }
        let wf: &'a Inner = self.wf;
        let graph = &wf.graph;
        self.blocked.reset();
        for b in self.active_bits.iter().chain(self.pending_bits.iter()) {
            self.blocked.union(&graph.reach[b]);
        }
        let mut ready = std::mem::take(&mut self.scratch);
        ready.clear();
        ready.extend(
            self.pending_bits
                .iter()
                .filter(|&d| !self.active_bits.get(d) && !self.blocked.get(d)),
        );
        if ready.is_empty() && running == 0 && self.queue.is_empty() {
            ready.extend(self.pending_bits.iter().take(1));
        }
        let result = ready.iter().try_for_each(|&d| self.fire(d));
        self.scratch = ready;
        result
    }

    fn fire(&mut self, node: usize) -> Result<(), WorkflowError> {
        let settings = &self.wf.settings;
        self.steps += 1;
        if self.steps > settings.max_steps {
            return Err(WorkflowError::MaxSteps {
                workflow: self.wf.name.clone(),
                node: self.name(node).to_owned(),
                max: settings.max_steps,
            });
        }
        self.visits[node] += 1;
        if self.visits[node] > settings.max_visits_per_node {
            return Err(WorkflowError::MaxVisits {
                workflow: self.wf.name.clone(),
                node: self.name(node).to_owned(),
                max: settings.max_visits_per_node,
            });
        }
        let mut buf = std::mem::take(&mut self.pending[node]);
        self.pending_bits.clear(node);
        let (input, sources) = if buf.len() == 1 {
            let d = buf.pop().map(|d| (d.value, Sources::One(d.from)));
            d.unwrap_or((Value::Null, Sources::Many(Vec::new())))
        } else {
            buf.sort_by_key(|d| (d.decl, d.arrival));
            let from = buf.iter().map(|d| d.from).collect();
            (
                Value::Array(buf.drain(..).map(|d| d.value).collect()),
                Sources::Many(from),
            )
        };
        // Keep the buffer's allocation for the node's next visit.
        self.pending[node] = buf;
        self.active[node] += 1;
        self.active_bits.set(node);
        self.queue
            .push_back((node, self.visits[node], input, sources));
        Ok(())
    }

    /// Handles a finished node. When it was interrupted, returns the run's
    /// interruption reason and output (the last value completed before it).
    async fn complete(
        &mut self,
        (node, sources, result): Completion,
    ) -> Result<Option<(String, Value)>, WorkflowError> {
        self.active[node] -= 1;
        if self.active[node] == 0 {
            self.active_bits.clear(node);
        }
        let name = self.wf.graph.names[node].clone();
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(e) => {
                let err = self.node_error(node, sources, e);
                if self.audit.is_some() {
                    let error = match &err {
                        WorkflowError::NodeFailed { source, .. } => source.to_string(),
                        other => other.to_string(),
                    };
                    self.audit(node, "step_failed", |r| r.with("error", error))
                        .await;
                }
                if let Some(sink) = self.sink {
                    sink.send(self.session, || EventKind::WorkflowStepFailed {
                        workflow: self.wf.name.clone(),
                        node: name.to_string(),
                        error: match &err {
                            WorkflowError::NodeFailed { source, .. } => source.to_string(),
                            other => other.to_string(),
                        },
                    })
                    .await;
                }
                return Err(err);
            }
        };
        match outcome {
            NodeOutcome::Interrupted { output, reason } => {
                if let Some(log) = self.audit {
                    let full = log.full_transcripts().then(|| output.clone());
                    self.audit(node, "step_completed", |r| {
                        let r = r
                            .with("interrupted", true)
                            .with("interruption_reason", reason.clone());
                        match full {
                            Some(output) => r.with("output", output),
                            None => r,
                        }
                    })
                    .await;
                }
                if let Some(sink) = self.sink {
                    sink.send(self.session, || EventKind::WorkflowStepCompleted {
                        workflow: self.wf.name.clone(),
                        node: name.to_string(),
                        output: output.clone(),
                        interrupted: true,
                        interruption_reason: Some(reason.clone()),
                    })
                    .await;
                }
                let before = self.last_value();
                self.visited.push(name.clone());
                self.per_step[node] = Some(output);
                Ok(Some((format!("{name}:{reason}"), before)))
            }
            NodeOutcome::Done(value) => {
                if let Some(log) = self.audit {
                    let full = log.full_transcripts().then(|| value.clone());
                    self.audit(node, "step_completed", |r| {
                        let r = r.with("interrupted", false);
                        match full {
                            Some(output) => r.with("output", output),
                            None => r,
                        }
                    })
                    .await;
                }
                if let Some(sink) = self.sink {
                    sink.send(self.session, || EventKind::WorkflowStepCompleted {
                        workflow: self.wf.name.clone(),
                        node: name.to_string(),
                        output: value.clone(),
                        interrupted: false,
                        interruption_reason: None,
                    })
                    .await;
                }
                self.visited.push(name);
                self.route(node, &value).await?;
                self.per_step[node] = Some(value);
                self.last = Some(node);
                Ok(None)
            }
        }
    }

    /// Delivers `value` along the out-edges `node` takes.
    async fn route(&mut self, node: usize, value: &Value) -> Result<(), WorkflowError> {
        let wf: &'a Inner = self.wf;
        let graph = &wf.graph;
        let mut taken = false;
        match &graph.out[node] {
            Out::Edges(targets) => {
                for t in targets {
                    if let To::Node { node: dst, decl } = *t {
                        self.deliver(dst, decl, Some(node), value.clone());
                        taken = true;
                    }
                }
            }
            Out::Router {
                router,
                routes,
                default,
            } => {
                let key = router.classifier.classify(value).await.map_err(|source| {
                    WorkflowError::Classifier {
                        workflow: self.wf.name.clone(),
                        source_node: self.name(node).to_owned(),
                        source,
                    }
                })?;
                match routes.get(&key).copied().or(*default) {
                    Some(To::Node { node: dst, decl }) => {
                        self.deliver(dst, decl, Some(node), value.clone());
                        taken = true;
                    }
                    Some(To::End) => {}
                    None => return Err(self.no_route(self.name(node), key, router)),
                }
            }
        }
        if taken {
            self.ended.clear();
        } else {
            self.ended.retain(|&n| n != node);
            self.ended.push(node);
        }
        Ok(())
    }

    fn no_route(&self, source: &str, key: String, router: &crate::Router) -> WorkflowError {
        WorkflowError::NoRoute {
            workflow: self.wf.name.clone(),
            source_node: source.to_owned(),
            key,
            routes: router.routes.iter().map(|(k, _)| k.clone()).collect(),
        }
    }

    fn node_error(&self, node: usize, sources: Sources, e: BoxError) -> WorkflowError {
        match e.downcast::<InputMismatch>() {
            Ok(mismatch) => {
                let label = |s: Option<usize>| match s {
                    Some(i) => self.name(i).to_owned(),
                    None => "START".to_owned(),
                };
                let from = match sources {
                    Sources::One(s) => vec![label(s)],
                    Sources::Many(v) => v.into_iter().map(label).collect(),
                };
                WorkflowError::InputMismatch {
                    workflow: self.wf.name.clone(),
                    from,
                    to: self.name(node).to_owned(),
                    expected: mismatch.expected,
                    message: mismatch.message,
                }
            }
            Err(source) => WorkflowError::NodeFailed {
                workflow: self.wf.name.clone(),
                node: self.name(node).to_owned(),
                source,
            },
        }
    }

    /// Appends a step entry (`{"workflow", "step"}` and what `with` adds)
    /// under the run's user and session.
    async fn audit(
        &self,
        node: usize,
        action: &str,
        with: impl FnOnce(AuditRecord) -> AuditRecord,
    ) {
        let Some(log) = self.audit else {
            return;
        };
        let record = AuditRecord::new(self.user, self.session.as_str(), "system", action)
            .with("workflow", self.wf.name.as_str())
            .with("step", self.name(node));
        append_redacted(log, with(record)).await;
    }

    async fn step_started(&self, node: usize) {
        self.audit(node, "step_started", |r| r).await;
        if let Some(sink) = self.sink {
            sink.send(self.session, || EventKind::WorkflowStepStarted {
                workflow: self.wf.name.clone(),
                node: self.name(node).to_owned(),
            })
            .await;
        }
    }
}
