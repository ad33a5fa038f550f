//! What an agent's runs answer to besides the tool gate: the budget, the
//! rate limiter and the audit log, and the per-run state they keep.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::audit::{AuditLog, AuditRecord};
use crate::budget::{Admitted, Blocked, RunSpend, Spend, StandardBudget};
use crate::context::RunContext;
use crate::error::{Error, Result};
use crate::message::Usage;
use crate::rate_limit::RateLimiter;

/// An agent's governance parts (all optional).
#[derive(Clone, Default)]
pub(crate) struct Governance {
    pub(crate) budget: Option<StandardBudget>,
    pub(crate) limiter: Option<RateLimiter>,
    pub(crate) audit: Option<Arc<dyn AuditLog>>,
    pub(crate) guardrails: crate::guardrails::Guardrails,
}

impl Governance {
    /// These parts, with the ambient audit log (a surrounding workflow's)
    /// when the agent has none of its own.
    pub(crate) fn with_ambient(&self) -> std::borrow::Cow<'_, Self> {
        if self.audit.is_some() {
            return std::borrow::Cow::Borrowed(self);
        }
        match crate::context::Ambient::current_audit_log() {
            Some(log) => std::borrow::Cow::Owned(Self {
                audit: Some(log),
                ..self.clone()
            }),
            None => std::borrow::Cow::Borrowed(self),
        }
    }

    /// Appends an audit entry, if there is a log, redacting secrets from the
    /// payload. A failed append is logged and the run goes on: the audit
    /// log records the run, it does not gate it.
    pub(crate) async fn audit(
        &self,
        user: &crate::id::UserId,
        session: &str,
        actor: &str,
        action: &str,
        payload: Payload,
    ) {
        let Some(log) = &self.audit else {
            return;
        };
        let record = AuditRecord {
            user_id: user.clone(),
            session_id: session.to_owned(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            payload,
        };
        crate::audit::append_redacted(log.as_ref(), record).await;
    }

    /// [`audit`](Self::audit) for the run `ctx`.
    pub(crate) async fn audit_in(
        &self,
        ctx: &RunContext,
        actor: &str,
        action: &str,
        payload: Payload,
    ) {
        self.audit(
            &ctx.user_id,
            ctx.session_id.as_str(),
            actor,
            action,
            payload,
        )
        .await;
    }

    /// True when entries should carry full transcripts.
    pub(crate) fn full_transcripts(&self) -> bool {
        self.audit.as_ref().is_some_and(|l| l.full_transcripts())
    }

    /// Reports what a stage's guardrails did: a `guardrail.triggered`
    /// event per guard that acted, a `guardrail_blocked` audit entry for a
    /// block.
    pub(crate) async fn report_guardrails(
        &self,
        ctx: &RunContext,
        emitter: &crate::architecture::Emitter,
        outcome: &crate::guardrails::Outcome,
    ) {
        for t in &outcome.triggered {
            emitter
                .architecture_event("guardrail.triggered", || {
                    let mut data = serde_json::Map::new();
                    data.insert("guard".into(), t.guard.clone().into());
                    data.insert("stage".into(), t.stage.as_str().into());
                    data.insert("action".into(), t.action.into());
                    data.insert("reason".into(), t.reason.clone().into());
                    data
                })
                .await;
        }
        if let Some((guard, reason)) = &outcome.blocked {
            tracing::info!(guard = %guard, user = %ctx.user_id, "guardrail blocked");
            if self.audit.is_some() {
                let stage = outcome.triggered.last().map_or("", |t| t.stage.as_str());
                let mut p = Payload::new();
                p.insert("stage".into(), stage.into());
                p.insert("guard".into(), guard.clone().into());
                p.insert("reason".into(), reason.clone().into());
                self.audit_in(ctx, "system", "guardrail_blocked", p).await;
            }
        }
    }

    /// True when model calls must pass the rate limiter or the budget.
    pub(crate) fn gates_model_calls(&self) -> bool {
        self.budget.is_some() || self.limiter.is_some()
    }
}

/// An audit payload.
pub(crate) type Payload = serde_json::Map<String, serde_json::Value>;

/// One run's side of the budget: what it spent, since when, which soft
/// warnings it has already sent.
#[derive(Debug)]
pub(crate) struct RunBudget {
    spend: Mutex<(Spend, HashSet<&'static str>)>,
    started: Instant,
}

impl RunBudget {
    pub(crate) fn new() -> Self {
        Self {
            spend: Mutex::new((Spend::default(), HashSet::new())),
            started: Instant::now(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Spend, HashSet<&'static str>)> {
        self.spend.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Before a model call: the rate limiter's token, then the budget's
    /// admission. `Ok((admission, new warnings))`, or the run's
    /// interruption (`Error::Interrupted("budget:<cap>")`, with what was
    /// blocked) or a rate-limit error.
    pub(crate) async fn before_call(
        &self,
        gov: &Governance,
        ctx: &RunContext,
    ) -> Result<(Option<Admitted>, Vec<crate::budget::Warning>), (Error, Option<Blocked>)> {
        if let Some(limiter) = &gov.limiter {
            limiter
                .acquire(&ctx.user_id)
                .await
                .map_err(|e| (Error::RateLimited(e), None))?;
        }
        let Some(budget) = &gov.budget else {
            return Ok((None, Vec::new()));
        };
        let run = RunSpend {
            spend: self.lock().0,
            started: self.started,
        };
        match budget.admit(&ctx.user_id, &run).await {
            Ok(mut admitted) => {
                let fresh = {
                    let mut state = self.lock();
                    std::mem::take(&mut admitted.warnings)
                        .into_iter()
                        .filter(|w| state.1.insert(w.cap))
                        .collect()
                };
                Ok((Some(admitted), fresh))
            }
            Err(blocked) => Err((
                Error::Interrupted(format!("budget:{}", blocked.cap)),
                Some(blocked),
            )),
        }
    }

    /// After a model call: adds `usage` to the run and settles the
    /// admission.
    pub(crate) fn after_call(&self, admitted: Option<Admitted>, usage: &Usage) {
        {
            let mut state = self.lock();
            state.0.tokens_in +=
                usage.input_tokens + usage.cached_input_tokens + usage.cache_write_tokens;
            state.0.tokens_out += usage.output_tokens;
            state.0.cost_usd += usage.cost_usd;
        }
        if let Some(a) = admitted {
            a.settle(usage);
        }
    }
}

/// Counts a run toward its user's wall clock while alive.
pub(crate) struct ActiveRun<'a> {
    budget: Option<&'a StandardBudget>,
    user: &'a crate::id::UserId,
}

impl<'a> ActiveRun<'a> {
    pub(crate) fn start(budget: Option<&'a StandardBudget>, user: &'a crate::id::UserId) -> Self {
        if let Some(b) = budget {
            b.run_started(user);
        }
        Self { budget, user }
    }
}

impl Drop for ActiveRun<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.budget {
            b.run_finished(self.user);
        }
    }
}
