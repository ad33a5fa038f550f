//! Durable runs: the [`Journal`] port, and how agents and workflows use it.
//!
//! A journaled run records every step (each model call, each tool dispatch,
//! each workflow node) under its user-scoped session. When the same session
//! runs again after a crash, recorded steps return their results without
//! executing again, so the run picks up where it stopped.
//!
//! - **Keys.** A step is stored under ([`Scope`] = user + session, run epoch,
//!   step key). The key is the reference's step name with a fingerprint of
//!   the step's input: `model_call_2@3f9a…`, `tool_call_2_0@…`,
//!   `node:draft#1@…`. A step whose input changed does not replay.
//!   Steps of a nested run (an Agent inside a workflow node or a tool) are
//!   namespaced by the step that encloses them: `node:draft#1@…/0:model_call_1@…`.
//! - **Epochs.** Each run of a session opens an epoch. A run that finished is
//!   never replayed into the next request; a run that did not finish (a
//!   crash, an error) is resumed when the same input comes back, or with
//!   [`Agent::resume`](crate::Agent::resume).
//! - **Tenancy.** The scope is (user, session): two users with the same
//!   session id never see each other's steps, checkpoints or signals.
//! - **At least once.** A step that was executing when the process died runs
//!   again. Tools make external side effects idempotent with
//!   [`CallContext::idempotency_key`], stable across the re-execution.
//!
//! Backends: [`InMemoryJournal`] (here), `loomflow-sqlite` (the embedded
//! default) and `loomflow-postgres` (shared by workers on many machines).
//!
//! ```
//! use std::sync::Arc;
//! use loomflow_core::journal::{InMemoryJournal, Journal};
//! use loomflow_core::Agent;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let journal = Arc::new(InMemoryJournal::new());
//! let agent = Agent::builder().model("echo").journal(journal.clone()).build().unwrap();
//! agent.run("hi").user("alice").session("s1").await.unwrap();
//!
//! let scope = loomflow_core::journal::Scope::new("alice".try_into().unwrap(), "s1".try_into().unwrap());
//! let steps = journal.steps(&scope, None).await.unwrap();
//! assert!(steps[0].key.starts_with("model_call_1@"));
//! # });
//! ```

mod durable;
mod memory;
mod spec;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{SessionId, UserId};

pub use durable::{
    CallContext, Checkpoint, CheckpointRef, Durable, OpenMode, active, fingerprint, step,
    wait_for_signal,
};
pub(crate) use durable::{Frame, load_checkpoint, put_checkpoint, send_signal, store_checkpoint};
pub use memory::InMemoryJournal;
pub use spec::{DEFAULT_SQLITE_PATH, RuntimeSpec, redact_url};

/// Whose session a journal entry belongs to. Every journal call takes one, so
/// no backend can be asked for another tenant's steps.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scope {
    /// The tenant.
    pub user: UserId,
    /// The session.
    pub session: SessionId,
}

impl Scope {
    /// The scope of `session` for `user`.
    pub fn new(user: UserId, session: SessionId) -> Self {
        Self { user, session }
    }
}

/// One run (epoch) of a session, as the journal records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The epoch: 1 for the session's first run, then 2, 3, …
    pub epoch: u64,
    /// The run's input, as JSON text.
    pub input: String,
    /// The input's fingerprint (a re-run with the same input resumes an
    /// unfinished epoch; a different input starts a new one).
    pub fingerprint: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished (`None`: still running, or crashed).
    pub finished_at: Option<DateTime<Utc>>,
}

/// One recorded step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The run epoch it belongs to.
    pub epoch: u64,
    /// The step key (`model_call_1@…`).
    pub key: String,
    /// Its result, as JSON text.
    pub value: String,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
}

/// A checkpoint as stored: an id, the turn it was taken after, and the
/// payload (a [`Checkpoint`] as JSON text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointRecord {
    /// `ckpt_…`.
    pub id: String,
    /// The turn it was taken after.
    pub turn: u32,
    /// When.
    pub created_at: DateTime<Utc>,
    /// The [`Checkpoint`] as JSON text.
    pub payload: String,
}

/// What [`Journal::prune`] deletes. At least one filter is required.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prune {
    /// Delete runs (with their steps), checkpoints and signals older than
    /// this. A run's age is its finish time, or its start time if it never
    /// finished.
    pub older_than: Option<DateTime<Utc>>,
    /// Only this session.
    pub scope: Option<Scope>,
}

/// How much [`Journal::prune`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pruned {
    /// Runs (epochs).
    pub runs: u64,
    /// Steps.
    pub steps: u64,
    /// Checkpoints.
    pub checkpoints: u64,
    /// Unconsumed signals.
    pub signals: u64,
}

/// A journal operation that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The storage backend failed (I/O, connection, constraint).
    #[error("journal backend `{backend}` failed: {message}")]
    Backend {
        /// `memory`, `sqlite`, `postgres`.
        backend: String,
        /// What happened.
        message: String,
    },
    /// A stored entry does not decode.
    #[error(
        "journal entry `{step}` of session `{session}` (user {user}) is unreadable: {message}; \
         delete the session's journal with `loomflow journal prune --session {session}` or repair the row"
    )]
    Corrupt {
        /// The tenant.
        user: UserId,
        /// The session.
        session: SessionId,
        /// The step key (or `run`, `checkpoint:<id>`).
        step: String,
        /// The decoder's message.
        message: String,
    },
    /// Another process started this session's run first.
    #[error(
        "session `{session}` (user {user}) is already running epoch {epoch} elsewhere; \
         wait for that run to finish, or resume it there"
    )]
    Busy {
        /// The tenant.
        user: UserId,
        /// The session.
        session: SessionId,
        /// The epoch it holds.
        epoch: u64,
    },
    /// [`Agent::resume`](crate::Agent::resume) on a session with no run.
    #[error(
        "nothing to resume: session `{session}` has no journaled run for user {user}; \
         start one with agent.run(input).session(…)"
    )]
    NothingToResume {
        /// The tenant.
        user: UserId,
        /// The session.
        session: SessionId,
    },
    /// A checkpoint id that the session does not have.
    #[error(
        "checkpoint `{id}` not found in session `{session}` (user {user}); \
         list the session's checkpoints with agent.checkpoints(…)"
    )]
    CheckpointNotFound {
        /// The tenant.
        user: UserId,
        /// The session.
        session: SessionId,
        /// The id asked for (`latest` when there is none at all).
        id: String,
    },
    /// [`wait_for_signal`] gave up.
    #[error("no signal `{name}` arrived for session `{session}` within {:.1}s", .waited.as_secs_f64())]
    SignalTimeout {
        /// The session.
        session: SessionId,
        /// The signal.
        name: String,
        /// How long it waited.
        waited: std::time::Duration,
    },
    /// A prune with no filter.
    #[error(
        "prune needs a filter (an age, a session, or both); refusing to delete every journal entry"
    )]
    UnboundedPrune,
    /// A durable operation outside a journaled run or on an agent without a journal.
    #[error("{what} needs a journal: build the agent or workflow with .journal(…)")]
    NoJournal {
        /// The operation.
        what: &'static str,
    },
}

impl JournalError {
    /// A backend failure.
    pub fn backend(backend: &str, message: impl std::fmt::Display) -> Self {
        Self::Backend {
            backend: backend.to_owned(),
            message: message.to_string(),
        }
    }
}

/// The storage port for durable runs. Values are JSON text, stored as is; the
/// framework encodes and decodes them, so a row that does not decode surfaces
/// as [`JournalError::Corrupt`] naming the session and step.
///
/// Every method takes the [`Scope`]. Implementations must keep scopes apart
/// (the shared contract suite in `loomflow-testkit` checks it).
#[async_trait]
pub trait Journal: Send + Sync + 'static {
    /// The backend's name (`memory`, `sqlite`, `postgres`).
    fn backend(&self) -> &str;

    /// The session's latest run, if any.
    async fn last_run(&self, scope: &Scope) -> Result<Option<RunRecord>, JournalError>;

    /// Records the start of `run`. Fails with [`JournalError::Busy`] when
    /// the epoch already exists (another process started it).
    async fn start_run(&self, scope: &Scope, run: &RunRecord) -> Result<(), JournalError>;

    /// Marks epoch `epoch` finished.
    async fn finish_run(&self, scope: &Scope, epoch: u64) -> Result<(), JournalError>;

    /// Every run of the session, oldest first.
    async fn runs(&self, scope: &Scope) -> Result<Vec<RunRecord>, JournalError>;

    /// The steps of one epoch (or of every epoch), in recording order.
    async fn steps(
        &self,
        scope: &Scope,
        epoch: Option<u64>,
    ) -> Result<Vec<StepRecord>, JournalError>;

    /// Records a step. The first record of a key wins; recording it again is
    /// not an error.
    async fn record(
        &self,
        scope: &Scope,
        epoch: u64,
        key: &str,
        value: &str,
    ) -> Result<(), JournalError>;

    /// Stores a checkpoint, keeping the newest `keep` of the session.
    async fn put_checkpoint(
        &self,
        scope: &Scope,
        checkpoint: &CheckpointRecord,
        keep: usize,
    ) -> Result<(), JournalError>;

    /// The session's checkpoints, newest first, without payloads.
    async fn checkpoints(
        &self,
        scope: &Scope,
        limit: usize,
    ) -> Result<Vec<CheckpointRecord>, JournalError>;

    /// One checkpoint by id, or the newest when `id` is `None`.
    async fn checkpoint(
        &self,
        scope: &Scope,
        id: Option<&str>,
    ) -> Result<Option<CheckpointRecord>, JournalError>;

    /// Leaves signal `name` with `payload` (JSON text) for the session.
    /// A second signal of the same name before it is taken replaces it.
    async fn send_signal(
        &self,
        scope: &Scope,
        name: &str,
        payload: &str,
    ) -> Result<(), JournalError>;

    /// Takes signal `name` if it has arrived, recording its payload as step
    /// `key` of `epoch` in the same transaction, so a crash cannot lose it.
    async fn take_signal(
        &self,
        scope: &Scope,
        name: &str,
        epoch: u64,
        key: &str,
    ) -> Result<Option<String>, JournalError>;

    /// Deletes what `prune` selects.
    async fn prune(&self, prune: &Prune) -> Result<Pruned, JournalError>;

    /// Waits until every record so far is durable (a no-op for backends that
    /// commit each call).
    async fn flush(&self) -> Result<(), JournalError> {
        Ok(())
    }
}

impl std::fmt::Debug for dyn Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Journal({})", self.backend())
    }
}
