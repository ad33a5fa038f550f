//! Steps: any async function made visible inside a workflow.
//!
//! `#[step]` (from the `loomflow` crate) wraps a function body in [`run`],
//! or [`run_fallible`] when it returns a `Result`. Inside a running workflow
//! node the call gets a `loom.workflow.step` span (`loom.workflow.name`,
//! `loom.workflow.node`, `loom.workflow.step` = the function's name,
//! `loom.workflow.kind = "step"`, and `error.type` on failure) and `step_started` /
//! `step_completed` / `step_failed` audit entries (`{workflow, node, step}`,
//! the redacted error on failure) in the workflow's audit log, under the
//! run's user and session. Outside a workflow it runs the body as is.
//!
//! ```
//! use loomflow_core::step;
//!
//! async fn lookup(id: u32) -> Result<String, std::num::ParseIntError> {
//!     step::run_fallible("lookup", async move { "7".parse::<u32>().map(|n| format!("{}", n + id)) })
//!         .await
//! }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! // Outside a workflow: just the function.
//! assert_eq!(lookup(1).await.unwrap(), "8");
//! assert!(step::StepScope::current().is_none());
//! # });
//! ```

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use tracing::Instrument;

use crate::audit::{AuditLog, AuditRecord, append_redacted};
use crate::context::{Ambient, RunContext};

tokio::task_local! {
    static SCOPE: StepScope;
}

/// The workflow node a future runs in. Workflows install it around each
/// node; steps read it.
#[derive(Debug, Clone)]
pub struct StepScope {
    workflow: Arc<str>,
    node: Arc<str>,
}

impl StepScope {
    /// Node `node` of workflow `workflow`.
    pub fn new(workflow: Arc<str>, node: Arc<str>) -> Self {
        Self { workflow, node }
    }

    /// Runs `fut` inside this node.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        SCOPE.scope(self, fut).await
    }

    /// The node the current task runs in, if any.
    pub fn current() -> Option<StepScope> {
        SCOPE.try_with(Clone::clone).ok()
    }

    /// The workflow's name.
    pub fn workflow(&self) -> &str {
        &self.workflow
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        &self.node
    }
}

/// A step seen from inside a workflow: its span and where it is audited.
struct Observed {
    name: &'static str,
    scope: StepScope,
    audit: Option<(Arc<dyn AuditLog>, RunContext)>,
}

impl Observed {
    fn enter(name: &'static str) -> Option<(Self, tracing::Span)> {
        let scope = StepScope::current()?;
        // The run context is cloned only when there is a log to write to.
        let audit = Ambient::current_audit_log()
            .and_then(|log| RunContext::current().map(|ctx| (log, ctx)));
        let span = crate::telemetry::workflow_step(scope.workflow(), scope.node(), name);
        Some((Self { name, scope, audit }, span))
    }

    async fn audit(&self, action: &str, error: Option<String>) {
        let Some((log, ctx)) = &self.audit else {
            return;
        };
        let mut record = AuditRecord::new(&ctx.user_id, ctx.session_id.as_str(), "system", action)
            .with("workflow", self.scope.workflow())
            .with("node", self.scope.node())
            .with("step", self.name);
        if let Some(error) = error {
            record = record.with("error", error);
        }
        append_redacted(log.as_ref(), record).await;
    }
}

/// Runs `fut` as step `name` (see the [module docs](self)).
pub async fn run<F: Future>(name: &'static str, fut: F) -> F::Output {
    let Some((step, span)) = Observed::enter(name) else {
        return fut.await;
    };
    async move {
        step.audit("step_started", None).await;
        let out = fut.await;
        step.audit("step_completed", None).await;
        out
    }
    .instrument(span)
    .await
}

/// Runs `fut` as step `name`; an `Err` is recorded as `step_failed` with
/// its message (redacted) and returned unchanged.
pub async fn run_fallible<F, T, E>(name: &'static str, fut: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    E: Display,
{
    let Some((step, span)) = Observed::enter(name) else {
        return fut.await;
    };
    async move {
        step.audit("step_started", None).await;
        let out = fut.await;
        match &out {
            Ok(_) => step.audit("step_completed", None).await,
            Err(e) => {
                let message = e.to_string();
                crate::telemetry::record_error(&tracing::Span::current(), "step_failed", &message);
                step.audit("step_failed", Some(message)).await
            }
        }
        out
    }
    .instrument(span)
    .await
}
