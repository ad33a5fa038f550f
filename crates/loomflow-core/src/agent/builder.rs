use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use super::memory::MemoryOptions;
use super::{Agent, AgentInner};
use crate::architecture::{Architecture, ReAct};
use crate::effort::{Effort, PromptCache};
use crate::error::ConfigError;
use crate::journal::Journal;
use crate::memory::{Consolidator, Extractor, Memory};
use crate::model::Model;
pub use crate::model::registry::IntoModel;
use crate::model::registry::{ensure_providers, known_models};
use crate::output::OutputSchema;
use crate::tone::Tone;

use super::ModelSettings;
use crate::audit::AuditLog;
use crate::budget::{BudgetConfig, StandardBudget};
use crate::rate_limit::RateLimiter;
use crate::tool::{
    AfterToolHook, ApprovalHandler, BeforeToolHook, GateConfig, InProcessToolHost, Permissions,
    Tool, ToolGate, ToolHost,
};

/// Builds an [`Agent`]. Only the model is required.
///
/// ```
/// use std::time::Duration;
/// use loomflow_core::Agent;
///
/// let agent = Agent::builder()
///     .name("assistant")
///     .instructions("Be brief.")
///     .model("echo")
///     .max_turns(8)
///     .timeout(Duration::from_secs(30))
///     .tone("professional")
///     .build()
///     .unwrap();
/// assert_eq!(agent.name(), Some("assistant"));
///
/// let err = Agent::builder().instructions("x").build().unwrap_err();
/// assert!(err.to_string().starts_with("no model configured"));
/// ```
pub struct AgentBuilder {
    name: Option<String>,
    instructions: String,
    model: Option<Result<Arc<dyn Model>, ConfigError>>,
    tools: Vec<Arc<dyn Tool>>,
    tool_host: Option<Arc<dyn ToolHost>>,
    gate: ToolGate,
    gate_config: GateConfig,
    architecture: Arc<dyn Architecture>,
    max_turns: u32,
    timeout: Option<Duration>,
    output_schema: Option<OutputSchema>,
    output_retries: u32,
    tone: Option<Tone>,
    event_buffer: usize,
    settings: ModelSettings,
    journal: Option<Arc<dyn Journal>>,
    checkpoints: Option<usize>,
    memory: Option<Arc<dyn Memory>>,
    memory_options: MemoryOptions,
    auto_extract: Option<bool>,
    consolidator: Option<Consolidator>,
    governance: crate::governance::Governance,
    telemetry: Option<crate::telemetry::Telemetry>,
}

impl Default for AgentBuilder {
    fn default() -> Self {
        Self {
            name: None,
            instructions: String::new(),
            model: None,
            tools: Vec::new(),
            tool_host: None,
            gate: ToolGate::default(),
            gate_config: GateConfig::default(),
            architecture: Arc::new(ReAct::new()),
            max_turns: 50,
            timeout: None,
            output_schema: None,
            output_retries: 1,
            tone: None,
            event_buffer: 128,
            settings: ModelSettings::default(),
            journal: None,
            checkpoints: None,
            memory: None,
            memory_options: MemoryOptions::default(),
            auto_extract: None,
            consolidator: None,
            governance: Default::default(),
            telemetry: None,
        }
    }
}

impl AgentBuilder {
    /// The system prompt.
    pub fn instructions(mut self, instructions: impl Into<String>) -> Self {
        self.instructions = instructions.into();
        self
    }

    /// The model: a model string, a model value or an `Arc<dyn Model>`.
    pub fn model(mut self, model: impl IntoModel) -> Self {
        ensure_providers();
        self.model = Some(model.into_model());
        self
    }

    /// Adds an in-process tool.
    pub fn tool(mut self, tool: impl Tool) -> Self {
        self.tools.push(Arc::new(tool));
        self
    }

    /// Adds in-process tools.
    pub fn tools(mut self, tools: impl IntoIterator<Item = Arc<dyn Tool>>) -> Self {
        self.tools.extend(tools);
        self
    }

    /// Uses a custom tool host (an MCP registry, a sandbox, …) instead of
    /// in-process tools. Combining it with [`Self::tool`] is a build error:
    /// register those tools on the host instead.
    pub fn tool_host(mut self, host: impl ToolHost) -> Self {
        self.tool_host = Some(Arc::new(host));
        self
    }

    /// The most model turns per run (default 50). Hitting it interrupts the run
    /// with `max_turns_exceeded`.
    pub fn max_turns(mut self, max_turns: u32) -> Self {
        self.max_turns = max_turns;
        self
    }

    /// Wall-clock limit for a whole run; expiry is [`Error::RunTimeout`](crate::Error::RunTimeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// A name for telemetry, workflow nodes and logs.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Every run's final answer must parse as `T` (per-call
    /// [`RunRequest::output`](super::RunRequest::output) overrides it).
    pub fn output<T: DeserializeOwned + JsonSchema>(self) -> Self {
        self.output_schema(OutputSchema::of::<T>())
    }

    /// Like [`Self::output`], with a prepared schema.
    pub fn output_schema(mut self, schema: OutputSchema) -> Self {
        self.output_schema = Some(schema);
        self
    }

    /// How many times a schema-invalid answer is sent back for correction
    /// (default 1).
    pub fn output_validation_retries(mut self, retries: u32) -> Self {
        self.output_retries = retries;
        self
    }

    /// The default response tone: a preset or free text.
    pub fn tone(mut self, tone: impl Into<Tone>) -> Self {
        self.tone = Some(tone.into());
        self
    }

    /// How hard the model reasons (per run:
    /// [`RunRequest::effort`](super::RunRequest::effort)). Adapters clamp it
    /// to what the model accepts; a model with no effort setting drops it
    /// with one warning, unless [`strict_effort`](Self::strict_effort) is on.
    pub fn effort(mut self, effort: Effort) -> Self {
        self.settings.effort = Some(effort);
        self
    }

    /// Fail a model call instead of dropping an effort the model cannot
    /// honour.
    pub fn strict_effort(mut self, strict: bool) -> Self {
        self.settings.strict_effort = strict;
        self
    }

    /// Turns prompt caching on: cache breakpoints on Anthropic, the routing
    /// key on OpenAI. Cached and cache-write tokens show in the usage.
    pub fn prompt_caching(mut self, cache: PromptCache) -> Self {
        self.settings.prompt_cache = Some(cache);
        self
    }

    /// Sampling temperature for every model call.
    pub fn temperature(mut self, temperature: f32) -> Self {
        self.settings.temperature = Some(temperature);
        self
    }

    /// Output-token cap for every model call.
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.settings.max_tokens = Some(max_tokens);
        self
    }

    /// The loop architecture (default [`ReAct`]).
    pub fn architecture(mut self, architecture: impl Architecture) -> Self {
        self.architecture = Arc::new(architecture);
        self
    }

    /// Like [`Self::architecture`], with a shared instance.
    pub fn architecture_arc(mut self, architecture: Arc<dyn Architecture>) -> Self {
        self.architecture = architecture;
        self
    }

    /// The permission policy (default: allow all).
    pub fn permissions(mut self, permissions: impl Permissions) -> Self {
        self.gate = self.gate.with_permissions(Arc::new(permissions));
        self
    }

    /// Like [`Self::permissions`], with a shared policy.
    pub fn permissions_arc(mut self, permissions: Arc<dyn Permissions>) -> Self {
        self.gate = self.gate.with_permissions(permissions);
        self
    }

    /// Adds a hook that runs before every tool call.
    pub fn before_tool(mut self, hook: impl BeforeToolHook) -> Self {
        self.gate = self.gate.with_before_hook(Arc::new(hook));
        self
    }

    /// Adds a hook that runs after every executed tool call.
    pub fn after_tool(mut self, hook: impl AfterToolHook) -> Self {
        self.gate = self.gate.with_after_hook(Arc::new(hook));
        self
    }

    /// The handler asked when a policy says "ask" (without one, ask is deny).
    pub fn approval_handler(mut self, handler: impl ApprovalHandler) -> Self {
        self.gate = self.gate.with_approval_handler(Arc::new(handler));
        self
    }

    /// A before- or after-tool hook running longer than this denies the
    /// call (default 5 s).
    pub fn hook_timeout(mut self, timeout: Duration) -> Self {
        self.gate_config.hook_timeout = timeout;
        self
    }

    /// Spending caps for this agent's runs (per run, and per user across
    /// runs). See [`crate::budget`].
    pub fn budget(self, config: BudgetConfig) -> Self {
        self.shared_budget(StandardBudget::new(config))
    }

    /// A budget shared with other agents (clones of one
    /// [`StandardBudget`] share per-user spend).
    pub fn shared_budget(mut self, budget: StandardBudget) -> Self {
        self.governance.budget = Some(budget);
        self
    }

    /// A per-user rate limit on model calls. See [`crate::rate_limit`].
    pub fn rate_limit(mut self, limiter: RateLimiter) -> Self {
        self.governance.limiter = Some(limiter);
        self
    }

    /// The audit log: `run_started`, `run_completed`, `tool_call`,
    /// `tool_result`, `tool_call_edited`, `guardrail_blocked` entries,
    /// signed and chained. See [`crate::audit`].
    pub fn audit_log(mut self, log: impl AuditLog) -> Self {
        self.governance.audit = Some(Arc::new(log));
        self
    }

    /// Adds a guardrail after the others (see [`crate::guardrails`]).
    pub fn guardrail(mut self, guard: impl crate::guardrails::Guardrail) -> Self {
        self.governance.guardrails = std::mem::take(&mut self.governance.guardrails).with(guard);
        self
    }

    /// Adds a shared guardrail after the others.
    pub fn guardrail_arc(
        mut self,
        guard: std::sync::Arc<dyn crate::guardrails::Guardrail>,
    ) -> Self {
        self.governance.guardrails =
            std::mem::take(&mut self.governance.guardrails).with_arc(guard);
        self
    }

    /// Replaces the guardrails.
    pub fn guardrails(mut self, guards: crate::guardrails::Guardrails) -> Self {
        self.governance.guardrails = guards;
        self
    }

    /// Like [`Self::audit_log`], with a shared log.
    pub fn audit_log_arc(mut self, log: Arc<dyn AuditLog>) -> Self {
        self.governance.audit = Some(log);
        self
    }

    /// Per-call tool timeout (default 120 s).
    pub fn tool_timeout(mut self, timeout: Duration) -> Self {
        self.gate_config.tool_timeout = timeout;
        self
    }

    /// Longest tool result the model sees, in characters (default 50,000).
    pub fn tool_result_max_chars(mut self, max: usize) -> Self {
        self.gate_config.max_result_chars = max;
        self
    }

    /// Events buffered for a stream consumer before the run waits (default 128).
    pub fn event_buffer(mut self, events: usize) -> Self {
        self.event_buffer = events;
        self
    }

    /// Journals every run: each model call and tool dispatch is a step
    /// recorded under the run's user and session, so a run that crashed
    /// resumes where it stopped (see [`journal`](crate::journal)).
    /// `loomflow-sqlite` is the embedded default; [`InMemoryJournal`](crate::InMemoryJournal)
    /// resumes within one process.
    pub fn journal(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Takes a checkpoint (messages, turn, usage) after every turn, keeping
    /// the newest `keep` per session (20 is a good default), so a run can
    /// be resumed or forked from any of them with
    /// [`RunRequest::from_checkpoint`](super::RunRequest::from_checkpoint).
    /// Needs a [`journal`](Self::journal).
    pub fn checkpoints(mut self, keep: usize) -> Self {
        self.checkpoints = Some(keep);
        self
    }

    /// Gives the agent a long-term [`Memory`]: each run's first prompt is
    /// seeded with the user's working blocks, known facts, relevant past
    /// episodes from other sessions and the session's own history, and
    /// each run is stored as an episode (the journal steps
    /// `recall_memory` and `persist_episode_{turns}`). Everything is read
    /// and written under the run's user.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use loomflow_core::{Agent, memory::InMemoryMemory};
    /// let agent = Agent::builder()
    ///     .model("echo")
    ///     .memory(Arc::new(InMemoryMemory::new()))
    ///     .build()
    ///     .unwrap();
    /// # let _ = agent;
    /// ```
    pub fn memory(mut self, memory: Arc<dyn Memory>) -> Self {
        self.memory = Some(memory);
        self
    }

    /// How the agent uses its memory (token budget, how much to recall,
    /// whether tool transcripts are kept).
    pub fn memory_options(mut self, options: MemoryOptions) -> Self {
        self.memory_options = options;
        self
    }

    /// Whether each stored run is followed by a background call that
    /// extracts (subject, predicate, object) facts from it into the memory
    /// (see [`Consolidator`]). The run's result never waits for it;
    /// [`Agent::drain`] does, before a process exits; `forget` cancels it
    /// for the erased data.
    ///
    /// Default: on for remote models ([`Model::is_remote`]: OpenAI,
    /// Anthropic, hosted providers), off for local, echo and scripted
    /// ones. The extraction runs on the agent's model unless
    /// [`consolidator`](Self::consolidator) names another. It applies to
    /// whichever memory the run uses, the agent's own or a surrounding
    /// workflow's.
    ///
    /// ```
    /// use loomflow_core::Agent;
    /// let agent = Agent::builder().model("echo").auto_extract(true).build().unwrap();
    /// assert!(agent.extractor().is_some());
    /// let agent = Agent::builder().model("echo").build().unwrap();
    /// assert!(agent.extractor().is_none());
    /// ```
    pub fn auto_extract(mut self, on: bool) -> Self {
        self.auto_extract = Some(on);
        self
    }

    /// Extracts facts with `consolidator` (another model, your own prompt,
    /// a cap per episode) and turns auto extraction on unless
    /// [`auto_extract(false)`](Self::auto_extract) says otherwise.
    pub fn consolidator(mut self, consolidator: Consolidator) -> Self {
        self.consolidator = Some(consolidator);
        self
    }

    /// Records this agent's runs (spans and metrics) in `telemetry`, its
    /// own sinks and exporters (see [`telemetry`](crate::telemetry)).
    /// Without it, runs go to the telemetry in scope: a surrounding
    /// workflow's or run's, else the global `tracing` subscriber.
    pub fn telemetry(mut self, telemetry: crate::telemetry::Telemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Checks the configuration and builds the agent.
    pub fn build(self) -> Result<Agent, ConfigError> {
        let model = match self.model {
            Some(m) => m?,
            None => {
                return Err(ConfigError::MissingModel {
                    valid: known_models(),
                });
            }
        };
        if self.max_turns == 0 {
            return Err(ConfigError::invalid("max_turns", "must be at least 1"));
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::invalid("timeout", "must be greater than zero"));
        }
        if self.gate_config.tool_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "tool_timeout",
                "must be greater than zero",
            ));
        }
        if self.gate_config.hook_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "hook_timeout",
                "must be greater than zero",
            ));
        }
        if let Some(b) = &self.governance.budget {
            b.config().validate()?;
        }
        if self.gate_config.max_result_chars == 0 {
            return Err(ConfigError::invalid(
                "tool_result_max_chars",
                "must be at least 1",
            ));
        }
        if self.event_buffer == 0 {
            return Err(ConfigError::invalid("event_buffer", "must be at least 1"));
        }
        match self.checkpoints {
            Some(0) => {
                return Err(ConfigError::invalid(
                    "checkpoints",
                    "must keep at least 1 checkpoint per session",
                ));
            }
            Some(_) if self.journal.is_none() => {
                return Err(ConfigError::invalid(
                    "checkpoints",
                    "checkpoints are stored in the journal: add .journal(...) (InMemoryJournal, SQLite or Postgres)",
                ));
            }
            _ => {}
        }
        if let Some(name) = &self.name
            && name.trim().is_empty()
        {
            return Err(ConfigError::invalid(
                "name",
                "must not be blank; leave it unset for an unnamed agent",
            ));
        }
        let (tools, in_process): (Arc<dyn ToolHost>, _) = match self.tool_host {
            Some(_) if !self.tools.is_empty() => {
                return Err(ConfigError::invalid(
                    "tools",
                    "an agent takes either in-process tools (.tool) or a tool host (.tool_host), not both; register the in-process tools on the host instead",
                ));
            }
            Some(host) => (host, None),
            None => {
                let host = InProcessToolHost::new(self.tools);
                (Arc::new(host.clone()), Some(host))
            }
        };
        let chosen = self
            .auto_extract
            .or(self.consolidator.as_ref().map(|_| true));
        let extractor = match chosen {
            Some(false) => None,
            Some(true) => Some(Extractor::new(
                self.consolidator
                    .unwrap_or_else(|| Consolidator::new(Arc::clone(&model))),
            )),
            None if model.is_remote() => Some(Extractor::with_notice(
                Consolidator::new(Arc::clone(&model)),
                true,
            )),
            None => None,
        };
        Ok(Agent {
            inner: Arc::new(AgentInner {
                name: self.name,
                instructions: self.instructions,
                model,
                tools,
                in_process,
                gate: self.gate.with_config(self.gate_config),
                architecture: self.architecture,
                max_turns: self.max_turns,
                timeout: self.timeout,
                output_schema: self.output_schema,
                output_retries: self.output_retries,
                tone: self.tone,
                event_buffer: self.event_buffer,
                settings: self.settings,
                journal: self.journal,
                checkpoints: self.checkpoints,
                memory: self.memory,
                memory_options: self.memory_options,
                extractor,
                governance: self.governance,
                telemetry: self.telemetry,
            }),
        })
    }
}
