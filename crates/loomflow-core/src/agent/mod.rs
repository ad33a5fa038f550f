//! [`Agent`]: the LLM drives the loop.
//!
//! ```
//! use loomflow_core::Agent;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let agent = Agent::builder()
//!     .instructions("You are a helpful assistant.")
//!     .model("echo")
//!     .build()
//!     .unwrap();
//! let result = agent.run("Tell me a joke.").user("alice").await.unwrap();
//! assert_eq!(result.output, "Echo: Tell me a joke.");
//! # });
//! ```

mod builder;
mod memory;
mod run;
mod stream;

use std::sync::Arc;
use std::time::Duration;

pub use builder::{AgentBuilder, IntoModel};
pub use memory::MemoryOptions;
pub use run::{RunRequest, RunResult};
pub use stream::EventStream;

use crate::architecture::Architecture;
use crate::effort::{Effort, PromptCache};
use crate::error::ConfigError;
use crate::id::{SessionId, UserId};
use crate::journal::{CheckpointRecord, Journal, JournalError, Scope};
use crate::model::Model;
use crate::output::OutputSchema;
use crate::tone::Tone;
use crate::tool::{InProcessToolHost, Tool, ToolGate, ToolHost};

pub(crate) struct AgentInner {
    pub(crate) name: Option<String>,
    pub(crate) instructions: String,
    pub(crate) model: Arc<dyn Model>,
    pub(crate) tools: Arc<dyn ToolHost>,
    pub(crate) in_process: Option<InProcessToolHost>,
    pub(crate) gate: ToolGate,
    pub(crate) architecture: Arc<dyn Architecture>,
    pub(crate) max_turns: u32,
    pub(crate) timeout: Option<Duration>,
    pub(crate) output_schema: Option<OutputSchema>,
    pub(crate) output_retries: u32,
    pub(crate) tone: Option<Tone>,
    pub(crate) event_buffer: usize,
    pub(crate) settings: ModelSettings,
    pub(crate) journal: Option<Arc<dyn Journal>>,
    pub(crate) checkpoints: Option<usize>,
    pub(crate) memory: Option<Arc<dyn crate::memory::Memory>>,
    pub(crate) memory_options: MemoryOptions,
    pub(crate) extractor: Option<crate::memory::Extractor>,
    pub(crate) governance: crate::governance::Governance,
    pub(crate) telemetry: Option<crate::telemetry::Telemetry>,
}

/// Per-call model settings an agent applies to every request.
#[derive(Debug, Clone, Default)]
pub(crate) struct ModelSettings {
    pub(crate) effort: Option<Effort>,
    pub(crate) strict_effort: bool,
    pub(crate) prompt_cache: Option<PromptCache>,
    pub(crate) temperature: Option<f32>,
    pub(crate) max_tokens: Option<u32>,
}

/// An LLM agent: instructions, a model, tools and a loop architecture.
///
/// Build one with [`Agent::builder`]. An `Agent` is cheap to clone (one
/// reference count) and can serve any number of concurrent runs, for any
/// number of users.
#[derive(Clone)]
pub struct Agent {
    pub(crate) inner: Arc<AgentInner>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("name", &self.inner.name)
            .field("model", &self.inner.model.name())
            .field("architecture", &self.inner.architecture.name())
            .field("max_turns", &self.inner.max_turns)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Starts building an agent.
    pub fn builder() -> AgentBuilder {
        AgentBuilder::default()
    }

    /// Starts a run on `input`. Set per-call options on the returned request,
    /// then `.await` it, or call `.stream()` on it for events.
    pub fn run(&self, input: impl Into<String>) -> RunRequest {
        RunRequest::new(self.clone(), input.into())
    }

    /// The background fact extractor, when auto extraction is on (see
    /// [`AgentBuilder::auto_extract`]).
    pub fn extractor(&self) -> Option<&crate::memory::Extractor> {
        self.inner.extractor.as_ref()
    }

    /// Waits up to `timeout` for this agent's background work (fact
    /// extraction) to finish and returns how much had not. Call it before
    /// the process exits, so facts from the last runs are not lost.
    ///
    /// ```
    /// use std::time::Duration;
    /// use loomflow_core::Agent;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let agent = Agent::builder().model("echo").build().unwrap();
    /// assert_eq!(agent.drain(Duration::from_secs(30)).await, 0);
    /// # });
    /// ```
    pub async fn drain(&self, timeout: Duration) -> usize {
        match &self.inner.extractor {
            Some(extractor) => extractor.drain(timeout).await,
            None => 0,
        }
    }

    /// Streams a run's events (sugar for `agent.run(input).stream()`).
    pub fn stream(&self, input: impl Into<String>) -> EventStream {
        self.run(input).stream()
    }

    /// Resumes `session`'s last run from the journal: the recorded input
    /// runs again and every recorded step returns its result without
    /// executing, so a run that crashed finishes where it stopped (one that
    /// finished returns the same result). Set the user with `.user(…)`.
    ///
    /// With [`from_checkpoint`](RunRequest::from_checkpoint) it continues
    /// from a checkpoint instead, with [`input`](RunRequest::input) or
    /// `"Continue the interrupted task."`.
    ///
    /// Fails with [`JournalError::NothingToResume`] when the session has no
    /// run, and [`JournalError::NoJournal`] without a journal.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use loomflow_core::{Agent, InMemoryJournal};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let agent = Agent::builder().model("echo").journal(Arc::new(InMemoryJournal::new())).build().unwrap();
    /// let first = agent.run("hello").user("alice").session("s1").await.unwrap();
    /// let again = agent.resume("s1").user("alice").await.unwrap();
    /// assert_eq!(again.output, first.output);
    /// # });
    /// ```
    pub fn resume<S>(&self, session: S) -> RunRequest
    where
        S: TryInto<SessionId>,
        S::Error: Into<crate::error::IdError>,
    {
        self.run(String::new()).session(session).resume_last()
    }

    /// Leaves signal `name` with `payload` for `user`'s `session`: a run
    /// parked in [`wait_for_signal`](crate::journal::wait_for_signal) on it
    /// (in this process or, through a shared journal, in another) continues.
    pub async fn signal(
        &self,
        user: &UserId,
        session: &SessionId,
        name: &str,
        payload: serde_json::Value,
    ) -> Result<(), JournalError> {
        let journal = self.journal_or("signal")?;
        let scope = Scope::new(user.clone(), session.clone());
        crate::journal::send_signal(journal.as_ref(), &scope, name, &payload).await
    }

    /// `user`'s checkpoints of `session`, newest first (ids, turns and
    /// times; payloads are loaded when resuming).
    pub async fn checkpoints(
        &self,
        user: &UserId,
        session: &SessionId,
        limit: usize,
    ) -> Result<Vec<CheckpointRecord>, JournalError> {
        let journal = self.journal_or("checkpoints")?;
        let scope = Scope::new(user.clone(), session.clone());
        journal.checkpoints(&scope, limit).await
    }

    /// The agent's journal, if it has one.
    pub fn journal(&self) -> Option<&Arc<dyn Journal>> {
        self.inner.journal.as_ref()
    }

    fn journal_or(&self, what: &'static str) -> Result<&Arc<dyn Journal>, JournalError> {
        self.inner
            .journal
            .as_ref()
            .ok_or(JournalError::NoJournal { what })
    }

    /// The agent's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// The instructions (system prompt) as configured.
    pub fn instructions(&self) -> &str {
        &self.inner.instructions
    }

    /// The model.
    pub fn model(&self) -> &Arc<dyn Model> {
        &self.inner.model
    }

    /// The architecture's name.
    pub fn architecture(&self) -> &str {
        self.inner.architecture.name()
    }

    /// The tool host.
    pub fn tool_host(&self) -> &Arc<dyn ToolHost> {
        &self.inner.tools
    }

    /// Adds a tool to a running agent (visible from the next turn on).
    /// Only agents built with in-process tools can change them.
    pub fn add_tool(&self, tool: impl Tool) -> Result<(), ConfigError> {
        self.in_process()?.register(Arc::new(tool));
        Ok(())
    }

    /// Removes a tool; `Ok(true)` if it was there.
    pub fn remove_tool(&self, name: &str) -> Result<bool, ConfigError> {
        Ok(self.in_process()?.unregister(name))
    }

    fn in_process(&self) -> Result<&InProcessToolHost, ConfigError> {
        self.inner.in_process.as_ref().ok_or_else(|| {
            ConfigError::invalid(
                "tools",
                "this agent uses a custom tool host; add or remove tools on that host instead",
            )
        })
    }
}
