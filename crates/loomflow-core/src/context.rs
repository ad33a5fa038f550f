//! [`RunContext`]: who and what a run is, readable from anywhere inside it.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::id::{RunId, SessionId, UserId};

/// Free-form metadata attached to a run.
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// The identity of the run in progress.
///
/// The agent installs it as a tokio task-local for the whole run, so tools,
/// memory, budget and audit read it with [`RunContext::current`] instead of
/// taking it as a parameter. Sub-agents called from a tool inherit its user.
/// Cloning is cheap (reference counts only).
///
/// ```
/// use loomflow_core::{RunContext, UserId};
///
/// # tokio_test_block(async {
/// let ctx = RunContext::new(UserId::new("alice").unwrap());
/// let seen = ctx
///     .clone()
///     .scope(async { RunContext::current().map(|c| c.user_id) })
///     .await;
/// assert_eq!(seen, Some(ctx.user_id));
/// assert!(RunContext::current().is_none());
/// # });
/// # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunContext {
    /// The tenant.
    pub user_id: UserId,
    /// The conversation.
    pub session_id: SessionId,
    /// This run.
    pub run_id: RunId,
    /// Caller-supplied metadata.
    pub metadata: Arc<Metadata>,
}

tokio::task_local! {
    static CURRENT: RunContext;
}

thread_local! {
    // Set while a synchronous tool runs on a blocking thread, where task-locals
    // are not visible.
    static BLOCKING: RefCell<Option<RunContext>> = const { RefCell::new(None) };
}

impl RunContext {
    /// A context for `user_id` with a fresh session and run id.
    pub fn new(user_id: UserId) -> Self {
        Self {
            user_id,
            session_id: SessionId::generate(),
            run_id: RunId::generate(),
            metadata: Arc::default(),
        }
    }

    /// The context of the run this code is part of, or `None` outside a run.
    pub fn current() -> Option<RunContext> {
        CURRENT
            .try_with(Clone::clone)
            .ok()
            .or_else(|| BLOCKING.with(|c| c.borrow().clone()))
    }

    /// Runs `fut` with `self` installed as the current context.
    ///
    /// A plain function rather than an `async fn`, so the returned future
    /// holds `fut` once instead of once as an argument and once inside.
    pub fn scope<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, fut)
    }

    /// Runs the blocking closure `f` with `self` as the current context (for
    /// code on `spawn_blocking` threads, where task-locals are not visible).
    pub fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        struct Reset(Option<RunContext>);
        impl Drop for Reset {
            fn drop(&mut self) {
                let prev = self.0.take();
                BLOCKING.with(|c| *c.borrow_mut() = prev);
            }
        }
        let prev = BLOCKING.with(|c| c.borrow_mut().replace(self));
        let _reset = Reset(prev);
        f()
    }
}

/// Runs the blocking closure `f` on tokio's blocking pool with the current
/// [`RunContext`], [`CallContext`](crate::journal::CallContext), `tracing`
/// span and telemetry visible to it (task-locals do not cross to blocking
/// threads by themselves). Sync tools
/// and sync workflow nodes run this way.
///
/// ```
/// use loomflow_core::{RunContext, UserId, context};
///
/// # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
/// let ctx = RunContext::new(UserId::new("alice").unwrap());
/// let user = ctx
///     .scope(async { context::spawn_blocking(|| RunContext::current().map(|c| c.user_id)).await })
///     .await
///     .unwrap();
/// assert_eq!(user.unwrap().as_str(), Some("alice"));
/// # });
/// ```
pub fn spawn_blocking<R, F>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let run = RunContext::current();
    let call = crate::journal::CallContext::current();
    // The span and telemetry too, so spans and events the closure makes
    // nest under the tool or node that runs it.
    let f = crate::telemetry::carry_blocking(f);
    tokio::task::spawn_blocking(move || {
        let with_call = move || match call {
            Some(call) => call.sync_scope(f),
            None => f(),
        };
        match run {
            Some(run) => run.sync_scope(with_call),
            None => with_call(),
        }
    })
}

/// Defaults a surrounding run (a workflow) offers the agents inside it that
/// did not set their own. Explicit always wins: a per-call setting, then the
/// agent's own, then the ambient one.
///
/// ```
/// use std::sync::Arc;
/// use loomflow_core::context::Ambient;
/// use loomflow_core::memory::InMemoryMemory;
/// use loomflow_core::Tone;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let ambient = Ambient::default()
///     .response_tone(Tone::new("executive"))
///     .memory(Arc::new(InMemoryMemory::new()));
/// let (tone, memory) = ambient.scope(async { (Ambient::current_tone(), Ambient::current_memory()) }).await;
/// assert_eq!(tone.unwrap().as_str(), "executive");
/// assert_eq!(memory.unwrap().backend(), "inmemory");
/// assert!(Ambient::current_tone().is_none());
/// # });
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Ambient {
    /// The response tone for agents without one.
    pub response_tone: Option<crate::tone::Tone>,
    /// The long-term memory for agents without one.
    pub memory: Option<Arc<dyn crate::memory::Memory>>,
    /// Whether agents using the ambient memory recall facts from it and
    /// extract facts into it (`None`: yes). It travels with `memory`: a
    /// scope that sets a memory sets this too.
    pub memory_facts: Option<bool>,
    /// The audit log for agents (and nested workflows) without one.
    pub audit_log: Option<Arc<dyn crate::audit::AuditLog>>,
}

tokio::task_local! {
    static AMBIENT: Ambient;
}

impl Ambient {
    /// Ambient defaults with a response tone.
    pub fn with_response_tone(tone: Option<crate::tone::Tone>) -> Self {
        Self {
            response_tone: tone,
            memory: None,
            memory_facts: None,
            audit_log: None,
        }
    }

    /// Sets the response tone.
    pub fn response_tone(mut self, tone: impl Into<crate::tone::Tone>) -> Self {
        self.response_tone = Some(tone.into());
        self
    }

    /// Sets the memory.
    pub fn memory(mut self, memory: Arc<dyn crate::memory::Memory>) -> Self {
        self.memory = Some(memory);
        self
    }

    /// Sets the audit log.
    pub fn audit_log(mut self, log: Arc<dyn crate::audit::AuditLog>) -> Self {
        self.audit_log = Some(log);
        self
    }

    /// Whether agents using the ambient memory recall and extract facts
    /// (a memory spec's `with_facts`; default true).
    pub fn memory_facts(mut self, facts: bool) -> Self {
        self.memory_facts = Some(facts);
        self
    }

    /// Runs `fut` with `self` as the ambient defaults. Settings left `None`
    /// fall back to the defaults of an enclosing scope.
    pub fn scope<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        let merged = match AMBIENT.try_with(Clone::clone) {
            Ok(outer) => {
                let (memory, memory_facts) = match self.memory {
                    Some(m) => (Some(m), self.memory_facts),
                    None => (outer.memory, self.memory_facts.or(outer.memory_facts)),
                };
                Ambient {
                    response_tone: self.response_tone.or(outer.response_tone),
                    memory,
                    memory_facts,
                    audit_log: self.audit_log.or(outer.audit_log),
                }
            }
            Err(_) => self,
        };
        AMBIENT.scope(merged, fut)
    }

    /// The ambient response tone, if a surrounding scope set one.
    pub fn current_tone() -> Option<crate::tone::Tone> {
        AMBIENT.try_with(|a| a.response_tone.clone()).ok().flatten()
    }

    /// The ambient memory, if a surrounding scope set one.
    pub fn current_memory() -> Option<Arc<dyn crate::memory::Memory>> {
        AMBIENT.try_with(|a| a.memory.clone()).ok().flatten()
    }

    /// The ambient audit log, if a surrounding scope set one.
    pub fn current_audit_log() -> Option<Arc<dyn crate::audit::AuditLog>> {
        AMBIENT.try_with(|a| a.audit_log.clone()).ok().flatten()
    }

    /// Whether agents using the ambient memory recall and extract facts
    /// (true unless a surrounding scope said otherwise).
    pub fn current_memory_facts() -> bool {
        AMBIENT
            .try_with(|a| a.memory_facts)
            .ok()
            .flatten()
            .unwrap_or(true)
    }
}
