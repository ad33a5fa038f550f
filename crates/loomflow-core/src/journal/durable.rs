//! The journaled run in progress: its frame (journal, scope, epoch, key
//! prefix, the steps recorded before a crash), step replay and recording,
//! signals, and checkpoints.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Journal, JournalError, RunRecord, Scope};
use crate::id::{RunId, SessionId, UserId};
use crate::message::{Message, Usage};

tokio::task_local! {
    static FRAME: Frame;
}

/// The journaled run this code is part of.
#[derive(Clone)]
pub(crate) struct Frame {
    journal: Arc<dyn Journal>,
    scope: Arc<Scope>,
    epoch: u64,
    prefix: Arc<str>,
    /// Steps recorded before this process took the run over (empty for a
    /// fresh epoch, so a fresh run never reads the journal).
    recorded: Arc<HashMap<String, String>>,
    /// Numbers the runs nested directly in this frame.
    nested: Arc<AtomicU32>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("scope", &self.scope)
            .field("epoch", &self.epoch)
            .field("prefix", &self.prefix)
            .field("recorded", &self.recorded.len())
            .finish_non_exhaustive()
    }
}

impl Frame {
    /// The frame of the journaled run in progress, if any.
    pub(crate) fn current() -> Option<Frame> {
        FRAME.try_with(Clone::clone).ok()
    }

    /// Runs `fut` inside this frame.
    pub(crate) fn scope<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        FRAME.scope(self, fut)
    }

    /// The full key of step `name` with input fingerprint `fp`.
    pub(crate) fn key(&self, name: &str, fp: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + name.len() + 1 + fp.len());
        key.push_str(&self.prefix);
        key.push_str(name);
        key.push('@');
        key.push_str(fp);
        key
    }

    /// The frame for code running inside step `key` (a tool, a node).
    pub(crate) fn child(&self, key: &str) -> Frame {
        Frame {
            prefix: Arc::from(format!("{key}/")),
            nested: Arc::new(AtomicU32::new(0)),
            ..self.clone()
        }
    }

    /// The frame for a run (an Agent, a Workflow) nested in this one.
    pub(crate) fn nested_run(&self) -> Frame {
        let n = self.nested.fetch_add(1, Ordering::Relaxed);
        Frame {
            prefix: Arc::from(format!("{}{n}:", self.prefix)),
            nested: Arc::new(AtomicU32::new(0)),
            ..self.clone()
        }
    }

    /// The recorded value of `key`, decoded, if the step ran before.
    pub(crate) fn replay<T: DeserializeOwned>(&self, key: &str) -> Option<Result<T, JournalError>> {
        let text = self.recorded.get(key)?;
        Some(self.decode(key, text))
    }

    fn decode<T: DeserializeOwned>(&self, key: &str, text: &str) -> Result<T, JournalError> {
        serde_json::from_str(text).map_err(|e| JournalError::Corrupt {
            user: self.scope.user.clone(),
            session: self.scope.session.clone(),
            step: key.to_owned(),
            message: e.to_string(),
        })
    }

    /// Records `value` as step `key`.
    pub(crate) async fn record<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), JournalError> {
        let text = serde_json::to_string(value).map_err(|e| {
            JournalError::backend(
                self.journal.backend(),
                format!("step `{key}`'s value does not serialise to JSON: {e}"),
            )
        })?;
        self.journal
            .record(&self.scope, self.epoch, key, &text)
            .await
    }

    /// The idempotency key of step `key`: stable when the step re-executes
    /// after a crash (same user, session, epoch and step), different for
    /// every other step of every other run.
    fn idempotency_source(&self, key: String) -> KeySource {
        KeySource::Journaled {
            scope: self.scope.clone(),
            epoch: self.epoch,
            step: key,
        }
    }
}

fn idempotency_key(user: &UserId, session: &SessionId, run: &str, key: &str) -> String {
    let mut h = Sha256::new();
    for part in [user.storage_key(), session.as_str(), run, key] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(5 + 32);
    out.push_str("idem_");
    push_hex(&mut out, &digest[..16]);
    out
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The fingerprint of a step's input: the first 16 hex digits of the SHA-256
/// of its JSON. Hashed as it serialises, without building the JSON text.
///
/// ```
/// use loomflow_core::journal::fingerprint;
/// assert_eq!(fingerprint(&("lookup", 1)), fingerprint(&("lookup", 1)));
/// assert_ne!(fingerprint(&("lookup", 1)), fingerprint(&("lookup", 2)));
/// assert_eq!(fingerprint(&"x").len(), 16);
/// ```
pub fn fingerprint<T: Serialize + ?Sized>(input: &T) -> String {
    let mut h = Sha256::new();
    // Serialising plain data into a hasher cannot fail; a value that does
    // fail (a map with non-string keys) still gets a fingerprint of what
    // was written before the error.
    let _ = serde_json::to_writer(HashWriter(&mut h), input);
    let digest = h.finalize();
    let mut out = String::with_capacity(16);
    push_hex(&mut out, &digest[..8]);
    out
}

/// True inside a journaled run (where [`step`] records and replays).
pub fn active() -> bool {
    FRAME.try_with(|_| ()).is_ok()
}

/// Runs `run` as the journaled step `name` of the run in progress.
///
/// Inside a journaled run, a step recorded with the same name and input
/// returns its recorded value without running; otherwise it runs and its
/// value is recorded. Errors are not recorded (the step runs again on
/// resume). Runs nested in the step (an Agent called from it) are journaled
/// under it. While it runs, [`CallContext::current`] gives the step's
/// idempotency key (the call id and tool are the step's name). Outside a
/// journaled run, `run` simply runs.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use loomflow_core::journal::{self, JournalError};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let calls = AtomicU32::new(0);
/// let v: Result<u32, JournalError> = journal::step("fetch", &"https://example.org", || async {
///     Ok(calls.fetch_add(1, Ordering::Relaxed) + 41 + 1)
/// })
/// .await;
/// assert_eq!(v.unwrap(), 42);
/// # });
/// ```
pub async fn step<T, E, F, Fut>(
    name: &str,
    input: &(impl Serialize + ?Sized),
    run: F,
) -> Result<T, E>
where
    T: Serialize + DeserializeOwned,
    E: From<JournalError>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let Some(frame) = Frame::current() else {
        return run().await;
    };
    let key = frame.key(name, &fingerprint(input));
    if let Some(recorded) = frame.replay::<T>(&key) {
        return recorded.map_err(E::from);
    }
    let cx = CallContext {
        call_id: name.to_owned(),
        tool: name.to_owned(),
        step: Some(key.clone()),
        key: frame.idempotency_source(key.clone()),
        events: None,
    };
    let value = frame.child(&key).scope(cx.scope(run())).await?;
    frame.record(&key, &value).await?;
    Ok(value)
}

/// What a tool call (or a journaled [`step`], a workflow node) knows about
/// itself, beside the [`RunContext`](crate::RunContext).
///
/// ```
/// use loomflow_core::journal::CallContext;
/// // Outside a tool call there is none.
/// assert!(CallContext::current().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The model's call id.
    pub call_id: String,
    /// The tool.
    pub tool: String,
    /// The journal step (`tool_call_2_0@…`), when the run is journaled.
    pub step: Option<String>,
    /// What the idempotency key is derived from; the key itself is hashed
    /// only when a tool asks for it.
    key: KeySource,
    /// The run's event stream, when someone consumes it.
    events: Option<crate::architecture::Emitter>,
}

/// Two contexts are equal when they describe the same call (where its
/// events go does not matter).
impl PartialEq for CallContext {
    fn eq(&self, other: &Self) -> bool {
        self.call_id == other.call_id
            && self.tool == other.tool
            && self.step == other.step
            && self.key == other.key
    }
}

impl Eq for CallContext {}

/// The inputs of a call's idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeySource {
    /// A step of a journaled run: stable across its re-execution.
    Journaled {
        scope: Arc<Scope>,
        epoch: u64,
        step: String,
    },
    /// Tool call `slot` of turn `turn` of a run without a journal: unique
    /// to the run and the call. The step's name is spelled out only when a
    /// tool asks for its key.
    Run {
        user: UserId,
        session: SessionId,
        run: RunId,
        turn: u32,
        slot: usize,
    },
}

tokio::task_local! {
    static CALL: CallContext;
}

thread_local! {
    static BLOCKING_CALL: std::cell::RefCell<Option<CallContext>> = const { std::cell::RefCell::new(None) };
}

impl CallContext {
    /// A key for making the call's external side effects idempotent: the
    /// same when this call re-executes after a crash (a journaled run
    /// resumed), different for every other call. Pass it to a payment API's
    /// idempotency header, or store it beside what the tool wrote.
    ///
    /// `idem_` and 32 hex digits (a SHA-256 prefix of the user, session,
    /// run epoch and step), computed on each call of this method.
    pub fn idempotency_key(&self) -> String {
        match &self.key {
            KeySource::Journaled { scope, epoch, step } => {
                idempotency_key(&scope.user, &scope.session, &epoch.to_string(), step)
            }
            KeySource::Run {
                user,
                session,
                run,
                turn,
                slot,
            } => {
                let step = crate::architecture::StepName::ToolCall(*turn, *slot).to_key();
                idempotency_key(user, session, run.as_str(), &step)
            }
        }
    }

    /// The tool call this code is part of, or `None` outside a tool call.
    pub fn current() -> Option<CallContext> {
        CALL.try_with(Clone::clone)
            .ok()
            .or_else(|| BLOCKING_CALL.with(|c| c.borrow().clone()))
    }

    /// Runs `fut` as part of this call.
    pub fn scope<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        CALL.scope(self, fut)
    }

    /// Runs the blocking closure `f` as part of this call (for sync tools on
    /// `spawn_blocking` threads, where task-locals are not visible).
    pub fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        struct Reset(Option<CallContext>);
        impl Drop for Reset {
            fn drop(&mut self) {
                let prev = self.0.take();
                BLOCKING_CALL.with(|c| *c.borrow_mut() = prev);
            }
        }
        let prev = BLOCKING_CALL.with(|c| c.borrow_mut().replace(self));
        let _reset = Reset(prev);
        f()
    }

    /// Reports how far the call has come, as a `tool_progress` event on
    /// the run's stream (nothing happens when no one consumes the stream).
    /// `total` is the amount `progress` counts up to, when known. Long
    /// tools call it as they go; MCP servers' progress notifications arrive
    /// this way.
    ///
    /// ```
    /// use loomflow_core::journal::CallContext;
    ///
    /// async fn crawl(pages: u32) {
    ///     for page in 1..=pages {
    ///         // … fetch the page …
    ///         if let Some(call) = CallContext::current() {
    ///             call.progress(page.into(), Some(pages.into()), None).await;
    ///         }
    ///     }
    /// }
    /// ```
    pub async fn progress(&self, progress: f64, total: Option<f64>, message: Option<String>) {
        if let Some(events) = &self.events {
            events
                .emit(|| crate::event::EventKind::ToolProgress {
                    call_id: self.call_id.clone(),
                    tool: self.tool.clone(),
                    progress,
                    total,
                    message,
                })
                .await;
        }
    }

    /// True when [`progress`](Self::progress) reaches someone: the run's
    /// events are being consumed.
    pub fn reports_progress(&self) -> bool {
        self.events.is_some()
    }

    /// The context for call `call_id` of `tool`, tool call `slot` of turn
    /// `turn` of `run`: the journal step `step` of `frame` when the run is
    /// journaled. Reports progress to `events` when they are consumed.
    pub(crate) fn for_call(
        call_id: &str,
        tool: &str,
        (turn, slot): (u32, usize),
        run: &crate::RunContext,
        journaled: Option<(&Frame, String)>,
        events: &crate::architecture::Emitter,
    ) -> Self {
        let (key, step) = match journaled {
            Some((frame, step)) => (frame.idempotency_source(step.clone()), Some(step)),
            None => (
                KeySource::Run {
                    user: run.user_id.clone(),
                    session: run.session_id.clone(),
                    run: run.run_id.clone(),
                    turn,
                    slot,
                },
                None,
            ),
        };
        Self {
            call_id: call_id.to_owned(),
            tool: tool.to_owned(),
            step,
            key,
            events: events.is_active().then(|| events.clone()),
        }
    }
}

/// How a run meets its session's journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenMode {
    /// A run: resume the last epoch if it did not finish and had the same
    /// input, else start a new one.
    Run,
    /// [`Agent::resume`](crate::Agent::resume): reopen the last epoch,
    /// finished or not, with its recorded input.
    ResumeLast,
    /// A run under a caller-chosen run id (a queued run): reopen the last
    /// epoch if it was this run id with the same input, finished or not
    /// (a finished one replays its recorded result, executing nothing),
    /// else start a new one.
    Keyed(RunId),
}

/// In-process exclusion: one outermost run per (user, session) at a time.
static ACTIVE: LazyLock<Mutex<HashMap<Scope, Weak<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Mutex::default);

async fn lock_scope(scope: &Scope) -> tokio::sync::OwnedMutexGuard<()> {
    let lock = {
        let mut active = ACTIVE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match active.get(scope).and_then(Weak::upgrade) {
            Some(lock) => lock,
            None => {
                active.retain(|_, w| w.strong_count() > 0);
                let lock = Arc::new(tokio::sync::Mutex::new(()));
                active.insert(scope.clone(), Arc::downgrade(&lock));
                lock
            }
        }
    };
    lock.lock_owned().await
}

/// A journaled run in progress: the outermost one owns its epoch; a nested
/// one borrows its parent's. Agents and workflows open one per run; a
/// custom runner (a new primitive) does the same:
///
/// ```
/// use std::sync::Arc;
/// use loomflow_core::journal::{self, Durable, InMemoryJournal, Journal, OpenMode, Scope};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let j: Arc<dyn Journal> = Arc::new(InMemoryJournal::new());
/// let scope = || Scope::new("alice".try_into().unwrap(), "s1".try_into().unwrap());
/// let run = Durable::enter(Some(&j), scope, Some("\"go\""), OpenMode::Run).await.unwrap().unwrap();
/// let v: Result<u32, journal::JournalError> =
///     run.run_in(journal::step("one", &(), || async { Ok(1) })).await;
/// assert_eq!(v.unwrap(), 1);
/// run.finish().await.unwrap();
/// assert_eq!(j.steps(&scope(), None).await.unwrap().len(), 1);
/// # });
/// ```
pub struct Durable {
    frame: Frame,
    owner: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// The input the epoch was started with (JSON text; `None` for a
    /// nested run).
    pub input: Option<String>,
}

impl Durable {
    /// Joins the journaled run in progress (as a nested run), or opens one
    /// on `journal` for `scope`, or returns `None` when neither applies.
    /// `input` is the run's input as JSON text. Runs of one (user, session)
    /// are serialised within the process; another process holding the
    /// same epoch makes this fail with [`JournalError::Busy`].
    pub async fn enter(
        journal: Option<&Arc<dyn Journal>>,
        scope: impl FnOnce() -> Scope,
        input: Option<&str>,
        mode: OpenMode,
    ) -> Result<Option<Durable>, JournalError> {
        if let Some(parent) = Frame::current() {
            return Ok(Some(Durable {
                frame: parent.nested_run(),
                owner: None,
                input: None,
            }));
        }
        let Some(journal) = journal else {
            return Ok(None);
        };
        let scope = scope();
        let guard = lock_scope(&scope).await;
        let last = journal.last_run(&scope).await?;
        let fp = match &mode {
            OpenMode::Keyed(run) => Some(fingerprint(&format!(
                "{}\n{}",
                run.as_str(),
                input.unwrap_or("null")
            ))),
            _ => input.map(fingerprint),
        };
        let reopen = match (&last, &mode) {
            (None, OpenMode::ResumeLast) => {
                return Err(JournalError::NothingToResume {
                    user: scope.user,
                    session: scope.session,
                });
            }
            (Some(last), OpenMode::ResumeLast) => Some(last.clone()),
            (Some(last), OpenMode::Run)
                if last.finished_at.is_none() && Some(&last.fingerprint) == fp.as_ref() =>
            {
                Some(last.clone())
            }
            (Some(last), OpenMode::Keyed(_)) if Some(&last.fingerprint) == fp.as_ref() => {
                Some(last.clone())
            }
            _ => None,
        };
        let (epoch, input, recorded) = match reopen {
            Some(run) => {
                let steps = journal.steps(&scope, Some(run.epoch)).await?;
                let recorded: HashMap<String, String> =
                    steps.into_iter().map(|s| (s.key, s.value)).collect();
                (run.epoch, run.input, recorded)
            }
            None => {
                let run = RunRecord {
                    epoch: last.map_or(1, |r| r.epoch + 1),
                    input: input.unwrap_or("null").to_owned(),
                    fingerprint: fp.unwrap_or_default(),
                    started_at: Utc::now(),
                    finished_at: None,
                };
                journal.start_run(&scope, &run).await?;
                (run.epoch, run.input, HashMap::new())
            }
        };
        Ok(Some(Durable {
            frame: Frame {
                journal: journal.clone(),
                scope: Arc::new(scope),
                epoch,
                prefix: Arc::from(""),
                recorded: Arc::new(recorded),
                nested: Arc::new(AtomicU32::new(0)),
            },
            owner: Some(guard),
            input: Some(input),
        }))
    }

    /// True for the outermost run, which owns the epoch (and takes the
    /// checkpoints).
    pub fn owns_epoch(&self) -> bool {
        self.owner.is_some()
    }

    /// The run's frame.
    pub(crate) fn frame(&self) -> &Frame {
        &self.frame
    }

    /// Runs `fut` as part of this run: its steps are journaled here.
    pub fn run_in<F: Future>(&self, fut: F) -> impl Future<Output = F::Output> {
        self.frame.clone().scope(fut)
    }

    /// Marks the run finished (the outermost run only), so the next request
    /// on the session starts a new epoch. Skip it when the run failed: the
    /// next request with the same input resumes it.
    pub async fn finish(self) -> Result<(), JournalError> {
        if self.owner.is_some() {
            self.frame
                .journal
                .finish_run(&self.frame.scope, self.frame.epoch)
                .await?;
        }
        Ok(())
    }
}

/// Wakes in-process waiters when a signal is sent from this process; waiters
/// also poll, for signals sent by other processes.
static SIGNALLED: LazyLock<tokio::sync::Notify> = LazyLock::new(tokio::sync::Notify::new);

/// How often [`wait_for_signal`] looks for a signal sent by another process.
const SIGNAL_POLL: Duration = Duration::from_millis(200);

/// Leaves signal `name` with `payload` for `scope`, and wakes a run of this
/// process parked on it. Other processes' runs see it on their next poll.
pub(crate) async fn send_signal(
    journal: &dyn Journal,
    scope: &Scope,
    name: &str,
    payload: &serde_json::Value,
) -> Result<(), JournalError> {
    journal
        .send_signal(scope, name, &payload.to_string())
        .await?;
    SIGNALLED.notify_waiters();
    Ok(())
}

/// Parks the journaled run in progress until signal `name` arrives for its
/// session, and returns the signal's payload. This is how an approval
/// handler waits for a person: the run can be parked across a process
/// restart (the resumed run parks again, or finds the signal that arrived
/// meanwhile), and once taken a signal is part of the journal, so a replay
/// returns the same payload.
///
/// A name is taken once per run: use one name per question (the tool call
/// id is a good suffix, `approve:call_1`). `timeout: None` waits forever.
///
/// Senders call [`Agent::signal`](crate::Agent::signal), or
/// `loomflow signal SESSION NAME PAYLOAD`.
pub async fn wait_for_signal(
    name: &str,
    timeout: Option<Duration>,
) -> Result<serde_json::Value, JournalError> {
    let frame = Frame::current().ok_or(JournalError::NoJournal {
        what: "wait_for_signal",
    })?;
    let mut key = String::with_capacity(frame.prefix.len() + 7 + name.len());
    key.push_str(&frame.prefix);
    key.push_str("signal:");
    key.push_str(name);
    if let Some(recorded) = frame.replay(&key) {
        return recorded;
    }
    let started = tokio::time::Instant::now();
    loop {
        let woken = SIGNALLED.notified();
        if let Some(text) = frame
            .journal
            .take_signal(&frame.scope, name, frame.epoch, &key)
            .await?
        {
            return frame.decode(&key, &text);
        }
        let mut wait = SIGNAL_POLL;
        if let Some(limit) = timeout {
            let left = limit.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(JournalError::SignalTimeout {
                    session: frame.scope.session.clone(),
                    name: name.to_owned(),
                    waited: limit,
                });
            }
            wait = wait.min(left);
        }
        let _ = tokio::time::timeout(wait, woken).await;
    }
}

/// An agent's state after a turn: enough to resume from there, or to fork a
/// new session from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// `ckpt_…`.
    pub id: String,
    /// The session it was taken in.
    pub session_id: SessionId,
    /// Turns taken when it was taken.
    pub turn: u32,
    /// The transcript.
    pub messages: Vec<Message>,
    /// Usage so far.
    pub usage: Usage,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Which checkpoint to resume from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointRef {
    /// The newest one: the run continues in the same session.
    Latest,
    /// This one; unless it is the newest, the run forks into a new session
    /// and the original is left as it was.
    Id(String),
}

/// Stores `checkpoint` in the frame's session, keeping the newest `keep`.
pub(crate) async fn put_checkpoint(
    frame: &Frame,
    checkpoint: &Checkpoint,
    keep: usize,
) -> Result<(), JournalError> {
    store_checkpoint(frame.journal.as_ref(), &frame.scope, checkpoint, keep).await
}

/// Stores `checkpoint` under `scope`, keeping the newest `keep`.
pub(crate) async fn store_checkpoint(
    journal: &dyn Journal,
    scope: &Scope,
    checkpoint: &Checkpoint,
    keep: usize,
) -> Result<(), JournalError> {
    let payload = serde_json::to_string(checkpoint)
        .map_err(|e| JournalError::backend(journal.backend(), e))?;
    let record = super::CheckpointRecord {
        id: checkpoint.id.clone(),
        turn: checkpoint.turn,
        created_at: checkpoint.created_at,
        payload,
    };
    journal.put_checkpoint(scope, &record, keep).await
}

/// Loads a checkpoint of `scope`: the newest, or `id`.
pub(crate) async fn load_checkpoint(
    journal: &dyn Journal,
    scope: &Scope,
    id: Option<&str>,
) -> Result<Checkpoint, JournalError> {
    let record =
        journal
            .checkpoint(scope, id)
            .await?
            .ok_or_else(|| JournalError::CheckpointNotFound {
                user: scope.user.clone(),
                session: scope.session.clone(),
                id: id.unwrap_or("latest").to_owned(),
            })?;
    serde_json::from_str(&record.payload).map_err(|e| JournalError::Corrupt {
        user: scope.user.clone(),
        session: scope.session.clone(),
        step: format!("checkpoint:{}", record.id),
        message: e.to_string(),
    })
}
