use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use futures_util::future::Either;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Agent, EventStream};
use crate::architecture::{AgentSession, Emitter, RunDeps, StepName};
use crate::context::Ambient;
use crate::context::{Metadata, RunContext};
use crate::effort::Effort;
use crate::error::{Error, IdError, OutputValidationError, Result};
use crate::event::{EventKind, EventSink};
use crate::governance::{ActiveRun, Payload, RunBudget};
use crate::guardrails::Stage;
use crate::id::{RunId, SessionId, UserId};
use crate::journal::{
    Checkpoint, CheckpointRef, Durable, Frame, JournalError, OpenMode, Scope, load_checkpoint,
    store_checkpoint,
};
use crate::message::{Image, Message};
use crate::output::{OutputSchema, strip_json_fences};
use crate::telemetry::{self, spans};
use crate::tone::Tone;
use tracing::Instrument;

/// The outcome of a run.
///
/// `T` is the structured-output type: `serde_json::Value` by default, your
/// type after [`RunRequest::output`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult<T = serde_json::Value> {
    /// The session (pass it back to continue the conversation).
    pub session_id: SessionId,
    /// This run.
    pub run_id: RunId,
    /// The tenant (`null` for the anonymous bucket).
    pub user_id: UserId,
    /// The final answer text.
    pub output: String,
    /// The validated structured output, when a schema was set.
    pub parsed: Option<T>,
    /// Model turns taken.
    pub turns: u32,
    /// Uncached input tokens.
    pub tokens_in: u64,
    /// Input tokens read from the prompt cache.
    pub cached_tokens_in: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_tokens: u64,
    /// Output tokens.
    pub tokens_out: u64,
    /// Cost in US dollars.
    pub cost_usd: f64,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
    /// True when it stopped early with a partial result.
    pub interrupted: bool,
    /// Why (`max_turns_exceeded`, `budget:max_tokens`, …).
    pub interruption_reason: Option<String>,
    /// Workspace notes the answer cites (filled once a workspace is attached).
    pub cited_slugs: Vec<String>,
}

impl<T> RunResult<T> {
    /// All tokens, input and output.
    pub fn total_tokens(&self) -> u64 {
        self.tokens_in + self.cached_tokens_in + self.cache_write_tokens + self.tokens_out
    }

    /// Wall-clock duration.
    pub fn duration(&self) -> Duration {
        (self.finished_at - self.started_at)
            .to_std()
            .unwrap_or_default()
    }

    fn map_parsed<U>(self, f: impl FnOnce(T) -> Result<U>) -> Result<RunResult<U>> {
        Ok(RunResult {
            parsed: self.parsed.map(f).transpose()?,
            session_id: self.session_id,
            run_id: self.run_id,
            user_id: self.user_id,
            output: self.output,
            turns: self.turns,
            tokens_in: self.tokens_in,
            cached_tokens_in: self.cached_tokens_in,
            cache_write_tokens: self.cache_write_tokens,
            tokens_out: self.tokens_out,
            cost_usd: self.cost_usd,
            started_at: self.started_at,
            finished_at: self.finished_at,
            interrupted: self.interrupted,
            interruption_reason: self.interruption_reason,
            cited_slugs: self.cited_slugs,
        })
    }
}

/// A run about to start. Set per-call options, then `.await` it (or call
/// [`RunRequest::stream`]).
///
/// ```
/// use loomflow_core::Agent;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let agent = Agent::builder().model("echo").build().unwrap();
/// let r = agent
///     .run("hi")
///     .user("alice")
///     .session("support-42")
///     .metadata("channel", "web")
///     .tone("casual")
///     .await
///     .unwrap();
/// assert_eq!(r.session_id.as_str(), "support-42");
/// assert_eq!(r.user_id.as_str(), Some("alice"));
/// # });
/// ```
#[must_use = "a run does nothing until it is awaited or streamed"]
pub struct RunRequest<T = serde_json::Value> {
    pub(crate) agent: Agent,
    pub(crate) input: String,
    images: Vec<Image>,
    user: Option<std::result::Result<UserId, IdError>>,
    session: Option<std::result::Result<SessionId, IdError>>,
    metadata: Metadata,
    tone: Option<Tone>,
    effort: Option<Effort>,
    output: Option<OutputSchema>,
    retries: Option<u32>,
    sink: Option<EventSink>,
    durable: DurableChoice,
    run_id: Option<RunId>,
    _out: PhantomData<fn() -> T>,
}

/// How a run meets the journal: a plain run, a resume of the last run, or a
/// resume from a checkpoint.
#[derive(Debug, Clone, Default)]
struct DurableChoice {
    resume_last: bool,
    checkpoint: Option<CheckpointRef>,
}

impl RunRequest {
    pub(crate) fn new(agent: Agent, input: String) -> Self {
        Self {
            agent,
            input,
            images: Vec::new(),
            user: None,
            session: None,
            metadata: Metadata::new(),
            tone: None,
            effort: None,
            output: None,
            retries: None,
            sink: None,
            durable: DurableChoice::default(),
            run_id: None,
            _out: PhantomData,
        }
    }
}

impl<T> RunRequest<T> {
    /// The tenant. Validated when the run starts; a malformed id fails the run
    /// with [`Error::Id`]. Without it, a run inside another run inherits that
    /// run's user, and a top-level run uses the anonymous bucket.
    pub fn user<U>(mut self, user: U) -> Self
    where
        U: TryInto<UserId>,
        U::Error: Into<IdError>,
    {
        self.user = Some(user.try_into().map_err(Into::into));
        self
    }

    /// The session to continue (default: a fresh `sess_…`).
    pub fn session<S>(mut self, session: S) -> Self
    where
        S: TryInto<SessionId>,
        S::Error: Into<IdError>,
    {
        self.session = Some(session.try_into().map_err(Into::into));
        self
    }

    /// Adds a metadata entry, visible as [`RunContext::metadata`].
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Attaches an image to the input message.
    pub fn image(mut self, image: Image) -> Self {
        self.images.push(image);
        self
    }

    /// The tone for this run (over the agent's default).
    pub fn tone(mut self, tone: impl Into<Tone>) -> Self {
        self.tone = Some(tone.into());
        self
    }

    /// The reasoning effort for this run (over the agent's default).
    pub fn effort(mut self, effort: Effort) -> Self {
        self.effort = Some(effort);
        self
    }

    /// Schema-correction retries for this run (over the agent's default).
    pub fn output_validation_retries(mut self, retries: u32) -> Self {
        self.retries = Some(retries);
        self
    }

    /// The input text (for [`Agent::resume`] from a checkpoint; a plain run
    /// takes it in [`Agent::run`]).
    pub fn input(mut self, input: impl Into<String>) -> Self {
        self.input = input.into();
        self
    }

    /// Continues from a checkpoint of the session (see
    /// [`AgentBuilder::checkpoints`](super::AgentBuilder::checkpoints)): its
    /// messages, turn count and usage are restored and the run goes on with
    /// [`input`](Self::input), or `"Continue the interrupted task."`.
    /// [`CheckpointRef::Latest`] continues the session; an older checkpoint
    /// forks into a new session (the result's `session_id`), leaving the
    /// original untouched.
    pub fn from_checkpoint(mut self, checkpoint: CheckpointRef) -> Self {
        self.durable.checkpoint = Some(checkpoint);
        self
    }

    pub(crate) fn resume_last(mut self) -> Self {
        self.durable.resume_last = true;
        self
    }

    /// Sends this run's events into `sink` (another run's stream, attributed
    /// to the sink's node) while it runs to completion. This is how a
    /// workflow streams the events of an Agent node; [`stream`](Self::stream)
    /// replaces it with the stream's own channel.
    pub fn events_to(mut self, sink: EventSink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Runs under this run id instead of a fresh one: a queue that runs a
    /// submitted run (and runs it again after a crash) keeps one id for it.
    pub fn run_id(mut self, run_id: RunId) -> Self {
        self.run_id = Some(run_id);
        self
    }

    /// Requires the final answer to parse as `U`; the result's `parsed` is a `U`.
    pub fn output<U: DeserializeOwned + JsonSchema>(self) -> RunRequest<U> {
        RunRequest {
            agent: self.agent,
            input: self.input,
            images: self.images,
            user: self.user,
            session: self.session,
            metadata: self.metadata,
            tone: self.tone,
            effort: self.effort,
            output: Some(OutputSchema::of::<U>()),
            retries: self.retries,
            sink: self.sink,
            durable: self.durable,
            run_id: self.run_id,
            _out: PhantomData,
        }
    }

    /// Runs with events streamed through a bounded channel. The run starts on
    /// the first poll; dropping the stream cancels it.
    pub fn stream(self) -> EventStream<T>
    where
        T: DeserializeOwned + Send + 'static,
    {
        EventStream::new(self.erase())
    }

    fn erase(self) -> RunRequest {
        RunRequest {
            agent: self.agent,
            input: self.input,
            images: self.images,
            user: self.user,
            session: self.session,
            metadata: self.metadata,
            tone: self.tone,
            effort: self.effort,
            output: self.output,
            retries: self.retries,
            sink: self.sink,
            durable: self.durable,
            run_id: self.run_id,
            _out: PhantomData,
        }
    }
}

pub(crate) fn typed<T: DeserializeOwned>(result: RunResult) -> Result<RunResult<T>> {
    result.map_parsed(|v| {
        serde_json::from_value(v)
            .map_err(|e| Error::Internal(format!("validated output failed to convert: {e}")))
    })
}

impl<T: DeserializeOwned + Send + 'static> IntoFuture for RunRequest<T> {
    type Output = Result<RunResult<T>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        let mut request = self.erase();
        let sink = request.sink.take();
        // A combinator, not an `async` block awaiting the run: that would
        // hold the run's future twice (its capture and its awaitee), and
        // this box is most of an in-flight run's memory.
        Box::pin(request.execute(sink).map(|r| r.and_then(typed)))
    }
}

impl RunRequest {
    /// Runs to completion, sending events to `tx` when given, recorded by
    /// the agent's telemetry or the one in scope.
    pub(crate) fn execute(
        self,
        sink: Option<EventSink>,
    ) -> impl Future<Output = Result<RunResult>> + Send {
        // The agent's own telemetry records the whole run, setup included:
        // its span is made under that telemetry, and the run polled in it.
        let inner = &self.agent.inner;
        // The common case, nothing recording anywhere: the run's own
        // future, no wrapper (it is what each in-flight run holds).
        if inner.telemetry.is_none() && !spans::active() {
            return Either::Left(self.execute_here(sink, tracing::Span::none()));
        }
        // The run's user as the run will resolve it (see execute_here).
        let user = || match &self.user {
            Some(Ok(u)) => Some(u.clone()),
            Some(Err(_)) => None,
            None => RunContext::current().map(|c| c.user_id),
        };
        let open = || {
            spans::run(
                inner.name.as_deref(),
                inner.model.name(),
                inner.architecture.name(),
                inner.max_turns,
                user,
            )
        };
        let span = match &inner.telemetry {
            Some(t) => tracing::dispatcher::with_default(t.dispatch(), open),
            None => open(),
        };
        let telemetry = inner.telemetry.clone();
        let run = match span.is_disabled() {
            true => Either::Left(self.execute_here(sink, span)),
            false => {
                let recorded = span.clone();
                Either::Right(self.execute_here(sink, recorded).instrument(span))
            }
        };
        // Boxed: observed runs are the rarer path.
        Either::Right(Box::pin(async move {
            match telemetry {
                Some(telemetry) => telemetry.scope(run).await,
                None => run.await,
            }
        }))
    }

    /// The run itself, its failures recorded on `span`.
    ///
    /// Two futures in sequence, sharing their space: the setup (ids, the
    /// journal, the checkpoint to restore), then the run holding only what
    /// its loop uses. One `async` block for both would keep every setup
    /// local beside the loop for the run's whole life (a local that lives
    /// across two awaits gets its own slot), and this future is what each
    /// in-flight run holds and what is copied into its box.
    fn execute_here(
        self,
        sink: Option<EventSink>,
        span: tracing::Span,
    ) -> impl Future<Output = Result<RunResult>> + Send {
        self.prepare(sink, span).then(|prepared| match prepared {
            Ok(run) => Either::Left(run.drive()),
            Err(e) => Either::Right(std::future::ready(Err(e))),
        })
    }

    /// Settles who, where and from what the run starts; a failure here is
    /// recorded and emitted before it is returned.
    async fn prepare(self, sink: Option<EventSink>, span: tracing::Span) -> Result<Prepared> {
        let started_at = Utc::now();
        let inner = self.agent.inner;
        let mut session_id = match self.session {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                return setup_failed(&span, sink, SessionId::generate(), e.into()).await;
            }
            None => SessionId::generate(),
        };
        let user_id = match self.user {
            Some(Ok(u)) => u,
            Some(Err(e)) => return setup_failed(&span, sink, session_id, e.into()).await,
            None => RunContext::current().map(|c| c.user_id).unwrap_or_default(),
        };
        let mut message = Message::user(self.input);
        for image in self.images {
            message = message.with_image(image);
        }

        // Meet the journal: restore a checkpoint (forking when it is not
        // the newest), then join or open the session's run epoch.
        let mut restore = None;
        if let Some(which) = self.durable.checkpoint {
            let restored = Box::pin(restore_checkpoint(&inner, &user_id, &session_id, which));
            match restored.await {
                Ok((checkpoint, session)) => {
                    session_id = session;
                    restore = Some(Box::new(checkpoint));
                }
                Err(e) => return setup_failed(&span, sink, session_id, e.into()).await,
            }
            if message.text_content().is_empty() {
                message = Message::user("Continue the interrupted task.");
            }
        }
        let mode = if self.durable.resume_last && restore.is_none() {
            if inner.journal.is_none() && crate::journal::Frame::current().is_none() {
                let e = JournalError::NoJournal { what: "resume" };
                return setup_failed(&span, sink, session_id, e.into()).await;
            }
            OpenMode::ResumeLast
        } else if let Some(run_id) = &self.run_id {
            OpenMode::Keyed(run_id.clone())
        } else {
            OpenMode::Run
        };
        let resuming = mode == OpenMode::ResumeLast;
        // Without a journal here or around, there is nothing to meet (and
        // no future to hold for it).
        let durable = if inner.journal.is_none() && Frame::current().is_none() {
            None
        } else {
            let input_json = match inner.journal.is_some() || resuming {
                true => serde_json::to_string(&message).ok(),
                false => None,
            };
            let entered = Box::pin(Durable::enter(
                inner.journal.as_ref(),
                || Scope::new(user_id.clone(), session_id.clone()),
                input_json.as_deref(),
                mode,
            ))
            .await;
            match entered {
                Ok(d) => d,
                Err(e) => return setup_failed(&span, sink, session_id, e.into()).await,
            }
        };
        if resuming && let Some(recorded) = durable.as_ref().and_then(|d| d.input.as_deref()) {
            message = match serde_json::from_str(recorded) {
                Ok(m) => m,
                Err(e) => {
                    let e = JournalError::Corrupt {
                        user: user_id,
                        session: session_id.clone(),
                        step: "run input".into(),
                        message: e.to_string(),
                    };
                    return setup_failed(&span, sink, session_id, e.into()).await;
                }
            };
        }
        let ctx = RunContext {
            user_id,
            session_id: session_id.clone(),
            run_id: self.run_id.unwrap_or_else(RunId::generate),
            metadata: Arc::new(self.metadata),
        };
        let schema = self.output.or_else(|| inner.output_schema.clone());
        let tone = self
            .tone
            .or_else(|| inner.tone.clone())
            .or_else(Ambient::current_tone);
        Ok(Prepared {
            retries: self.retries.unwrap_or(inner.output_retries),
            effort: self.effort.or(inner.settings.effort),
            emitter: Emitter::new(session_id, sink),
            inner,
            ctx,
            message,
            restore,
            durable,
            schema,
            tone,
            started_at,
            span,
        })
    }
}

/// A run ready to start: everything [`Prepared::drive`] holds while the
/// loop runs.
struct Prepared {
    inner: Arc<super::AgentInner>,
    ctx: RunContext,
    emitter: Emitter,
    message: Message,
    /// Boxed: rare, and large beside the rest.
    restore: Option<Box<Checkpoint>>,
    durable: Option<Durable>,
    schema: Option<OutputSchema>,
    tone: Option<Tone>,
    effort: Option<Effort>,
    retries: u32,
    started_at: DateTime<Utc>,
    span: tracing::Span,
}

impl Prepared {
    /// Runs the loop, then finishes the run's epoch, records and emits the
    /// outcome. The rare steps (journal, audit, events) are boxed while they
    /// run so that they do not size the future every run holds.
    #[allow(clippy::manual_async_fn)]
    fn drive(self) -> impl Future<Output = Result<RunResult>> + Send {
        // Taken apart out here: inside the block, the whole and its parts
        // would each take space.
        let Prepared {
            inner,
            ctx,
            emitter,
            message,
            restore,
            durable,
            schema,
            tone,
            effort,
            retries,
            started_at,
            span,
        } = self;
        async move {
            let content =
                !span.is_disabled() && telemetry::captures_content(inner.telemetry.as_ref());
            if !span.is_disabled() {
                spans::record_context(&span, &ctx);
                if content {
                    span.record(
                        "loom.input",
                        crate::redact::redact(&message.text_content()).as_ref(),
                    );
                }
            }
            if emitter.is_active() {
                Box::pin(emitter.emit(|| EventKind::Started {
                    prompt: message.text_content(),
                }))
                .await;
            }
            let gov = inner.governance.with_ambient();
            let gov = gov.as_ref();
            let frame = durable.as_ref().map(|d| d.frame().clone());
            let choices = RunChoices {
                schema: schema.as_ref(),
                tone: tone.as_ref(),
                effort,
                retries,
                frame: frame.clone(),
                checkpoints: inner
                    .checkpoints
                    .filter(|_| durable.as_ref().is_some_and(Durable::owns_epoch)),
                restore,
                governance: gov,
                capture_content: content,
            };
            // One future for the body whichever wrappers apply (`Either`, not
            // an `await` per branch, which would lay the body out twice).
            let body = ctx
                .clone()
                .scope(run_loop(&inner, &ctx, &emitter, message, choices));
            let body = match frame {
                Some(frame) => Either::Left(frame.scope(body)),
                None => Either::Right(body),
            };
            let outcome = match inner.timeout {
                Some(limit) => Either::Left(
                    tokio::time::timeout(limit, body)
                        .map(move |r| r.unwrap_or(Err(Error::RunTimeout(limit)))),
                ),
                None => Either::Right(body),
            };
            let mut outcome = outcome.await;
            if outcome.is_ok()
                && let Some(durable) = durable
                && let Err(e) = Box::pin(durable.finish()).await
            {
                outcome = Err(e.into());
            }
            let finished = match outcome {
                Ok(session) => session,
                Err(e) => return Box::pin(run_failed(&span, &emitter, gov, &ctx, e)).await,
            };
            let result = RunResult {
                session_id: ctx.session_id,
                run_id: ctx.run_id,
                user_id: ctx.user_id,
                output: finished.output,
                parsed: finished.parsed,
                turns: finished.turns,
                tokens_in: finished.usage.input_tokens,
                cached_tokens_in: finished.usage.cached_input_tokens,
                cache_write_tokens: finished.usage.cache_write_tokens,
                tokens_out: finished.usage.output_tokens,
                cost_usd: finished.usage.cost_usd,
                started_at,
                finished_at: Utc::now(),
                interrupted: finished.interrupted,
                interruption_reason: finished.interruption_reason,
                cited_slugs: Vec::new(),
            };
            record_result(&span, &result, inner.name.as_deref(), content);
            if gov.audit.is_some() || emitter.is_active() {
                Box::pin(completed(&emitter, gov, &result)).await;
            }
            Ok(result)
        }
    }
}

/// Audits and emits a completed run.
async fn completed(emitter: &Emitter, gov: &crate::governance::Governance, result: &RunResult) {
    if gov.audit.is_some() {
        let mut p = Payload::new();
        p.insert("turns".into(), result.turns.into());
        p.insert("interrupted".into(), result.interrupted.into());
        p.insert(
            "interruption_reason".into(),
            result.interruption_reason.clone().into(),
        );
        p.insert("tokens_in".into(), result.tokens_in.into());
        p.insert("tokens_out".into(), result.tokens_out.into());
        p.insert("cost_usd".into(), result.cost_usd.into());
        p.insert(
            "elapsed_ms".into(),
            (result.duration().as_secs_f64() * 1000.0).into(),
        );
        if gov.full_transcripts() {
            p.insert("output".into(), result.output.clone().into());
            if let Some(parsed) = &result.parsed {
                p.insert("parsed".into(), parsed.clone());
            }
        }
        gov.audit(
            &result.user_id,
            result.session_id.as_str(),
            "system",
            "run_completed",
            p,
        )
        .await;
    }
    emitter
        .emit(|| EventKind::Completed {
            result: serde_json::to_value(result).unwrap_or_default(),
        })
        .await;
}

/// Applies the input guards and audits the run's start. The input guards
/// run before anything records the input, so the audit log, the model and
/// the memory see the guarded text. `Some` when a guard blocked the run.
async fn admit_input(
    inner: &super::AgentInner,
    ctx: &RunContext,
    emitter: &Emitter,
    gov: &crate::governance::Governance,
    input: &mut Message,
) -> Option<Finished> {
    let guarded = match gov.guardrails.is_empty_for(Stage::Input) {
        true => None,
        false => Some(
            gov.guardrails
                .apply(Stage::Input, input.text_content())
                .await,
        ),
    };
    if gov.audit.is_some() {
        let prompt = match &guarded {
            Some(outcome) => outcome.text.clone(),
            None => input.text_content(),
        };
        let mut p = Payload::new();
        p.insert(
            "prompt".into(),
            match gov.full_transcripts() {
                true => prompt,
                false => prompt.chars().take(500).collect::<String>(),
            }
            .into(),
        );
        p.insert("model".into(), inner.model.name().into());
        p.insert("max_turns".into(), inner.max_turns.into());
        p.insert("architecture".into(), inner.architecture.name().into());
        gov.audit_in(ctx, "user", "run_started", p).await;
    }
    if let Some(outcome) = guarded {
        gov.report_guardrails(ctx, emitter, &outcome).await;
        if let Some((guard, _)) = outcome.blocked {
            return Some(Finished {
                output: String::new(),
                parsed: None,
                turns: 0,
                usage: Default::default(),
                interrupted: true,
                interruption_reason: Some(format!("guardrail:{guard}")),
            });
        }
        if !outcome.triggered.is_empty() {
            input
                .content
                .retain(|p| !matches!(p, crate::message::ContentPart::Text { .. }));
            input
                .content
                .insert(0, crate::message::ContentPart::Text { text: outcome.text });
        }
    }
    None
}

/// Records, audits and emits a run that failed after it started.
async fn run_failed(
    span: &tracing::Span,
    emitter: &Emitter,
    gov: &crate::governance::Governance,
    ctx: &RunContext,
    e: Error,
) -> Result<RunResult> {
    spans::record_error(span, e.type_name(), &e);
    if gov.audit.is_some() {
        let mut p = Payload::new();
        p.insert("error_type".into(), e.type_name().into());
        p.insert("message".into(), e.to_string().into());
        gov.audit_in(ctx, "system", "run_failed", p).await;
    }
    emit_error(emitter, &e).await;
    Err(e)
}

/// Records a finished run on its span (turns, tokens, cost, interruption,
/// the output when content is captured) and its duration metric.
fn record_result(span: &tracing::Span, result: &RunResult, agent: Option<&str>, content: bool) {
    if !spans::active() {
        return;
    }
    let elapsed_ms = result.duration().as_secs_f64() * 1000.0;
    spans::metric!(
        telemetry::SESSION_DURATION_MS,
        elapsed_ms,
        gen_ai.agent.name = agent,
        loom.interrupted = result.interrupted
    );
    if span.is_disabled() {
        return;
    }
    span.record("loom.turns", i64::from(result.turns));
    spans::record_usage(
        span,
        &crate::message::Usage {
            input_tokens: result.tokens_in,
            cached_input_tokens: result.cached_tokens_in,
            cache_write_tokens: result.cache_write_tokens,
            output_tokens: result.tokens_out,
            cost_usd: result.cost_usd,
        },
    );
    span.record("loom.interrupted", result.interrupted);
    if let Some(reason) = &result.interruption_reason {
        span.record("loom.interruption_reason", reason.as_str());
    }
    if content {
        span.record(
            "loom.output",
            crate::redact::redact(&result.output).as_ref(),
        );
    }
}

/// Loads the checkpoint to continue from, and the session to continue in:
/// the same one for the newest checkpoint, a fresh one (holding a copy of the
/// checkpoint) for an older one.
async fn restore_checkpoint(
    inner: &super::AgentInner,
    user: &UserId,
    session: &SessionId,
    which: CheckpointRef,
) -> std::result::Result<(Checkpoint, SessionId), JournalError> {
    let journal = inner.journal.as_ref().ok_or(JournalError::NoJournal {
        what: "resume from a checkpoint",
    })?;
    let scope = Scope::new(user.clone(), session.clone());
    let id = match &which {
        CheckpointRef::Latest => None,
        CheckpointRef::Id(id) => Some(id.as_str()),
    };
    let mut checkpoint = load_checkpoint(journal.as_ref(), &scope, id).await?;
    let newest = match id {
        None => true,
        Some(id) => journal
            .checkpoint(&scope, None)
            .await?
            .is_some_and(|latest| latest.id == id),
    };
    if newest {
        return Ok((checkpoint, session.clone()));
    }
    let fork = SessionId::generate();
    checkpoint.session_id = fork.clone();
    let keep = inner.checkpoints.unwrap_or(20);
    let fork_scope = Scope::new(user.clone(), fork.clone());
    store_checkpoint(journal.as_ref(), &fork_scope, &checkpoint, keep).await?;
    Ok((checkpoint, fork))
}

async fn emit_error(emitter: &Emitter, e: &Error) {
    emitter
        .emit(|| EventKind::Error {
            error_type: e.type_name().to_owned(),
            message: crate::redact::redact(&e.to_string()).into_owned(),
        })
        .await;
}

/// Records and emits a run that failed before it started. Boxed: a rare
/// path whose future would otherwise size every run's setup.
fn setup_failed(
    span: &tracing::Span,
    sink: Option<EventSink>,
    session: SessionId,
    e: Error,
) -> Pin<Box<dyn Future<Output = Result<Prepared>> + Send + '_>> {
    Box::pin(async move {
        spans::record_error(span, e.type_name(), &e);
        emit_error(&Emitter::new(session, sink), &e).await;
        Err(e)
    })
}

struct Finished {
    output: String,
    parsed: Option<serde_json::Value>,
    turns: u32,
    usage: crate::message::Usage,
    interrupted: bool,
    interruption_reason: Option<String>,
}

/// What this run uses, after per-run settings override the agent's.
struct RunChoices<'a> {
    schema: Option<&'a OutputSchema>,
    tone: Option<&'a Tone>,
    effort: Option<Effort>,
    retries: u32,
    frame: Option<Frame>,
    checkpoints: Option<usize>,
    /// Boxed: rare, and large beside the rest.
    restore: Option<Box<Checkpoint>>,
    governance: &'a crate::governance::Governance,
    capture_content: bool,
}

/// The run's body: input guards and memory, the architecture's loop, then
/// output validation, output guards and memory.
///
/// A plain fn returning an `async` block, the choices taken apart before it
/// (inside, the whole and its parts would each take space), and every rare
/// step boxed while it runs: this future sits in every in-flight run.
#[allow(clippy::manual_async_fn)]
fn run_loop<'a>(
    inner: &'a super::AgentInner,
    ctx: &'a RunContext,
    emitter: &'a Emitter,
    input: Message,
    choices: RunChoices<'a>,
) -> impl Future<Output = Result<Finished>> + Send + 'a {
    let RunChoices {
        schema,
        tone,
        effort,
        retries,
        frame,
        checkpoints,
        restore,
        governance: gov,
        capture_content,
    } = choices;
    async move {
        let native = schema.is_some_and(|s| inner.model.native_output_for(s));
        let mut instructions = inner.instructions.clone();
        if let Some(schema) = schema
            && !native
        {
            instructions.push_str(&schema.directive());
        }
        if let Some(suffix) = tone.and_then(Tone::prompt_suffix) {
            instructions.push_str(&suffix);
        }
        let mut input = input;
        // The input guards run before anything records the input, so the
        // audit log, the model and the memory see the guarded text. Boxed:
        // most runs have neither, and this would size every run's future.
        if gov.audit.is_some() || !gov.guardrails.is_empty_for(Stage::Input) {
            let admitted = Box::pin(admit_input(inner, ctx, emitter, gov, &mut input));
            if let Some(blocked) = admitted.await {
                return Ok(blocked);
            }
        }
        let mut session = AgentSession::new(ctx.session_id.clone(), instructions);
        // The agent's own memory, else a surrounding workflow's.
        let (memory, facts) = match &inner.memory {
            Some(own) => (Some(own.clone()), true),
            None => (Ambient::current_memory(), Ambient::current_memory_facts()),
        };
        // A workflow memory without facts: none recalled, none extracted.
        let extractor = inner.extractor.as_ref().filter(|_| facts);
        let input_text = memory.as_ref().map(|_| input.text_content());
        if let Some(checkpoint) = restore {
            let checkpoint = *checkpoint;
            session.messages = checkpoint.messages;
            session.turns = checkpoint.turn;
            session.usage = checkpoint.usage;
        } else if let (Some(memory), Some(text)) = (&memory, &input_text) {
            // Boxed: memory is optional and its future would otherwise size
            // every run's.
            let seeded = Box::pin(super::memory::seed(
                memory.as_ref(),
                &inner.memory_options,
                facts,
                ctx,
                text,
            ))
            .await?;
            if !seeded.is_empty() {
                session.messages.reserve(seeded.len() + 8);
                if !session.instructions.is_empty() {
                    session
                        .messages
                        .push(Message::system(session.instructions.clone()));
                }
                session.messages.extend(seeded);
            }
        }
        // This run's own messages start after the seed and the input.
        let run_start = session.messages.len() + 1;
        let native_output = if native { schema } else { None };
        let run_budget = RunBudget::new();
        let _active = ActiveRun::start(gov.budget.as_ref(), &ctx.user_id);
        let deps = RunDeps {
            model: &inner.model,
            tools: &inner.tools,
            gate: &inner.gate,
            max_turns: inner.max_turns,
            native_output,
            emitter,
            context: ctx,
            effort,
            strict_effort: inner.settings.strict_effort,
            prompt_cache: inner.settings.prompt_cache.as_ref(),
            temperature: inner.settings.temperature,
            max_tokens: inner.settings.max_tokens,
            frame,
            checkpoints,
            governance: gov,
            run_budget: &run_budget,
            capture_content,
        };
        match inner.architecture.run(&mut session, &deps, input).await {
            Ok(()) => {}
            // A governance stop: a clean interruption with the partial result.
            Err(Error::Interrupted(reason)) => session.interrupt(reason),
            Err(e) => return Err(e),
        }

        let mut parsed = None;
        if let Some(schema) = schema
            && !session.interrupted
            && !session.ended_by_tool
        {
            let mut attempts = 0;
            loop {
                attempts += 1;
                match schema.validate(&session.output) {
                    Ok(value) => {
                        let clean = strip_json_fences(&session.output);
                        if clean.len() != session.output.len() {
                            session.output = clean.to_owned();
                        }
                        parsed = Some(value);
                        break;
                    }
                    Err(cause) if attempts <= retries => {
                        session
                            .messages
                            .push(Message::user(schema.retry_prompt(&cause)));
                        let request = deps.request(&session.messages);
                        let step = format!("output_retry_{attempts}");
                        // Boxed: a rare path that would otherwise size every
                        // run's future.
                        let call = deps.call_model(StepName::Named(&step), request);
                        let completion = Box::pin(call).await?;
                        session.usage += completion.usage;
                        session.output = completion.text;
                        session
                            .messages
                            .push(Message::assistant(session.output.clone(), Vec::new()));
                    }
                    Err(cause) => {
                        return Err(OutputValidationError {
                            raw: session.output,
                            schema: schema.shared_schema(),
                            cause,
                            attempts,
                        }
                        .into());
                    }
                }
            }
        }
        if !gov.guardrails.is_empty_for(Stage::Output) && !session.output.is_empty() {
            let outcome =
                Box::pin(gov.guardrails.apply(Stage::Output, session.output.clone())).await;
            Box::pin(gov.report_guardrails(ctx, emitter, &outcome)).await;
            if let Some((guard, _)) = outcome.blocked {
                // Withheld: the caller, the memory and the audit log never see it.
                session.output.clear();
                parsed = None;
                session.interrupt(format!("guardrail:{guard}"));
            } else if outcome.text != session.output {
                session.output = outcome.text;
                // The parsed value must not keep what the guards took out.
                parsed = schema.and_then(|s| s.validate(&session.output).ok());
            }
        }
        if let (Some(memory), Some(text)) = (&memory, &input_text) {
            let transcript = session.messages.get(run_start..).unwrap_or_default();
            Box::pin(super::memory::persist(
                memory,
                extractor,
                &inner.memory_options,
                ctx,
                text,
                &session.output,
                transcript,
                session.turns,
            ))
            .await?;
        }
        Ok(Finished {
            output: session.output,
            parsed,
            turns: session.turns,
            usage: session.usage,
            interrupted: session.interrupted,
            interruption_reason: session.interruption_reason,
        })
    }
}
