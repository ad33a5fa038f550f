//! Background fact extraction after runs, and how `forget` stops it.
//!
//! An [`Extractor`] runs a [`Consolidator`] on each stored episode in a
//! task of its own, so a run's result never waits for the extraction call.
//! Such a task must not write facts back after the user's data was erased
//! (LoomFlow 0.20 did): every backend's [`Memory::forget`] first calls
//! [`stop_extractions`], which cancels the matching extractions in this
//! process and waits for any fact write already under way, so the erase
//! runs after it and removes what it wrote.

use crate::redact::Redacted;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::{Consolidator, Episode, Forget, Memory};
use crate::id::{SessionId, UserId};

/// Extractions that have not finished, process-wide, so that `forget` on
/// any store can stop those of the data it erases.
static PENDING: Mutex<Vec<Registered>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
static DEFAULT_ON_NOTICE: Once = Once::new();
/// Woken whenever an extraction ends.
static ANY_ENDED: Notify = Notify::const_new();

struct Registered {
    id: u64,
    user: UserId,
    session: Option<SessionId>,
    occurred_at: DateTime<Utc>,
    control: Arc<Control>,
}

impl Registered {
    fn erased_by(&self, forget: &Forget) -> bool {
        self.user == forget.user
            && forget
                .session
                .as_ref()
                .is_none_or(|s| self.session.as_ref() == Some(s))
            && forget.before.is_none_or(|b| self.occurred_at < b)
    }
}

#[derive(Default)]
struct Control {
    cancelled: AtomicBool,
    wake: Notify,
    /// Held while facts are written; `stop_extractions` takes it to wait
    /// for a write under way.
    writing: tokio::sync::Mutex<()>,
}

impl Control {
    fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
}

fn pending() -> std::sync::MutexGuard<'static, Vec<Registered>> {
    // A panic while holding this lock cannot leave the list inconsistent
    // (pushes and removals only), so a poisoned lock is still usable.
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stops this process's background extractions of what `forget` erases:
/// the user's (and, when set, only the session's, only before the time).
/// Extractions still waiting on the model are dropped; one already writing
/// facts is waited for, so an erase that follows also removes what it
/// wrote. Every backend calls this at the start of
/// [`Memory::forget`]; a custom backend should too.
///
/// A `forget` run by another process (the CLI) cannot reach this
/// process's tasks: an extraction that finishes after it still writes its
/// facts. Drain or stop the serving process first for a guaranteed erase.
pub async fn stop_extractions(forget: &Forget) {
    let stopped: Vec<Arc<Control>> = pending()
        .iter()
        .filter(|r| r.erased_by(forget))
        .map(|r| Arc::clone(&r.control))
        .collect();
    for control in &stopped {
        control.cancelled.store(true, Ordering::Release);
        control.wake.notify_waiters();
    }
    for control in stopped {
        drop(control.writing.lock().await);
    }
}

/// Waits up to `timeout` for every background extraction in this process
/// (all agents', including those inside workflows) and returns how many had
/// not finished. A process calls it before exiting; `loomflow run` does.
pub async fn drain_all(timeout: Duration) -> usize {
    let all_done = async {
        loop {
            let ended = ANY_ENDED.notified();
            if pending().is_empty() {
                return;
            }
            ended.await;
        }
    };
    let _ = tokio::time::timeout(timeout, all_done).await;
    pending().len()
}

/// Extracts facts from stored episodes in the background (see the
/// [module docs](self)). Cheap to clone; clones share their pending work.
///
/// Agents build one when auto extraction is on
/// ([`AgentBuilder::auto_extract`](crate::agent::AgentBuilder::auto_extract));
/// [`Agent::drain`](crate::Agent::drain) waits for its work.
#[derive(Clone, Debug)]
pub struct Extractor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    consolidator: Consolidator,
    auto_picked: bool,
    pending: AtomicUsize,
    idle: Notify,
}

impl Extractor {
    /// Extraction with `consolidator`.
    pub fn new(consolidator: Consolidator) -> Self {
        Self::with_notice(consolidator, false)
    }

    /// `auto_picked`: turned on by default rather than asked for; the
    /// first extraction logs (once per process) that it costs a model call.
    pub(crate) fn with_notice(consolidator: Consolidator, auto_picked: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                consolidator,
                auto_picked,
                pending: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        }
    }

    /// The consolidator that extracts.
    pub fn consolidator(&self) -> &Consolidator {
        &self.inner.consolidator
    }

    /// How many extractions are claimed or running.
    pub fn pending(&self) -> usize {
        self.inner.pending.load(Ordering::Acquire)
    }

    /// Claims the extraction of `episode` before it is stored, so that a
    /// `forget` between the store and [`spawn`](Self::spawn) already
    /// cancels it. Dropping the claim unspawned releases it.
    pub fn claim(&self, user: &UserId, episode: &Episode) -> Claim {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let control = Arc::new(Control::default());
        self.inner.pending.fetch_add(1, Ordering::AcqRel);
        pending().push(Registered {
            id,
            user: user.clone(),
            session: episode.session.clone(),
            occurred_at: episode.occurred_at,
            control: Arc::clone(&control),
        });
        Claim {
            id,
            control,
            owner: Arc::clone(&self.inner),
        }
    }

    /// Extracts `episode`'s facts into `memory` in a task of its own, under
    /// `claim`. Model and store errors are logged, never returned: the run
    /// that stored the episode has already finished. Outside a tokio
    /// runtime there is nowhere to run it: it is skipped with a warning.
    pub fn spawn(&self, claim: Claim, memory: Arc<dyn Memory>, user: UserId, episode: Episode) {
        if self.inner.auto_picked {
            DEFAULT_ON_NOTICE.call_once(|| {
                tracing::info!(
                    "background fact extraction is on by default for remote models: each stored \
                     episode costs one extraction call; turn it off with .auto_extract(false), or \
                     on explicitly with .auto_extract(true) to silence this notice"
                );
            });
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                episode = %episode.id,
                "no tokio runtime to extract facts on; extraction skipped"
            );
            return;
        };
        let consolidator = self.inner.consolidator.clone();
        runtime.spawn(crate::telemetry::carry(async move {
            // Released (and `drain` told) however the task ends.
            let claim = claim;
            let control = &claim.control;
            let woken = control.wake.notified();
            if control.cancelled() {
                return;
            }
            let extracted = tokio::select! {
                extracted = consolidator.extract(&episode) => extracted,
                () = woken => return,
            };
            let facts = match extracted {
                Ok(facts) => facts,
                Err(error) => {
                    tracing::warn!(episode = %episode.id, error = %Redacted(&error), "fact extraction failed");
                    return;
                }
            };
            let _writing = control.writing.lock().await;
            if control.cancelled() {
                return;
            }
            let found = facts.len();
            for fact in facts {
                if let Err(error) = memory.append_fact(&user, fact).await {
                    tracing::warn!(episode = %episode.id, error = %Redacted(&error), "storing an extracted fact failed");
                    break;
                }
            }
            tracing::debug!(episode = %episode.id, facts = found, "facts extracted");
        }));
    }

    /// Waits up to `timeout` for every claimed and running extraction to
    /// finish, and returns how many had not (they keep running; a runtime
    /// that shuts down drops them). Call before a process exits.
    pub async fn drain(&self, timeout: Duration) -> usize {
        let all_done = async {
            loop {
                let idle = self.inner.idle.notified();
                if self.pending() == 0 {
                    return;
                }
                idle.await;
            }
        };
        let _ = tokio::time::timeout(timeout, all_done).await;
        self.pending()
    }
}

/// A claimed extraction (see [`Extractor::claim`]): registered so that
/// `forget` can cancel it; released when dropped.
#[derive(Debug)]
pub struct Claim {
    id: u64,
    control: Arc<Control>,
    owner: Arc<Inner>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("cancelled", &self.cancelled())
            .finish_non_exhaustive()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        pending().retain(|r| r.id != self.id);
        self.owner.pending.fetch_sub(1, Ordering::AcqRel);
        self.owner.idle.notify_waiters();
        ANY_ENDED.notify_waiters();
    }
}
