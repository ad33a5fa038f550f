use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{CheckpointRecord, Journal, JournalError, Prune, Pruned, RunRecord, Scope, StepRecord};

/// A journal in this process's memory: resumable within the process (a
/// failed run, a parked approval, checkpoints), gone when it exits. Use
/// `loomflow-sqlite` or `loomflow-postgres` to survive a restart.
#[derive(Debug, Default)]
pub struct InMemoryJournal {
    sessions: Mutex<HashMap<Scope, Session>>,
}

#[derive(Debug, Default)]
struct Session {
    runs: Vec<RunRecord>,
    steps: Vec<StepRecord>,
    keys: HashSet<(u64, String)>,
    checkpoints: Vec<CheckpointRecord>,
    signals: HashMap<String, (String, DateTime<Utc>)>,
}

impl Session {
    fn record(&mut self, epoch: u64, key: &str, value: &str) {
        if self.keys.insert((epoch, key.to_owned())) {
            self.steps.push(StepRecord {
                epoch,
                key: key.to_owned(),
                value: value.to_owned(),
                recorded_at: Utc::now(),
            });
        }
    }
}

impl InMemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, scope: &Scope, f: impl FnOnce(&mut Session) -> R) -> R {
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(sessions.entry(scope.clone()).or_default())
    }

    fn read<R>(&self, scope: &Scope, f: impl FnOnce(&Session) -> R) -> Option<R> {
        let sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sessions.get(scope).map(f)
    }
}

#[async_trait]
impl Journal for InMemoryJournal {
    fn backend(&self) -> &str {
        "memory"
    }

    async fn last_run(&self, scope: &Scope) -> Result<Option<RunRecord>, JournalError> {
        Ok(self.read(scope, |s| s.runs.last().cloned()).flatten())
    }

    async fn start_run(&self, scope: &Scope, run: &RunRecord) -> Result<(), JournalError> {
        self.with(scope, |s| {
            if s.runs.iter().any(|r| r.epoch == run.epoch) {
                return Err(JournalError::Busy {
                    user: scope.user.clone(),
                    session: scope.session.clone(),
                    epoch: run.epoch,
                });
            }
            s.runs.push(run.clone());
            Ok(())
        })
    }

    async fn finish_run(&self, scope: &Scope, epoch: u64) -> Result<(), JournalError> {
        self.with(scope, |s| {
            if let Some(run) = s.runs.iter_mut().find(|r| r.epoch == epoch) {
                run.finished_at = Some(Utc::now());
            }
        });
        Ok(())
    }

    async fn runs(&self, scope: &Scope) -> Result<Vec<RunRecord>, JournalError> {
        Ok(self.read(scope, |s| s.runs.clone()).unwrap_or_default())
    }

    async fn steps(
        &self,
        scope: &Scope,
        epoch: Option<u64>,
    ) -> Result<Vec<StepRecord>, JournalError> {
        Ok(self
            .read(scope, |s| {
                s.steps
                    .iter()
                    .filter(|r| epoch.is_none_or(|e| r.epoch == e))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn record(
        &self,
        scope: &Scope,
        epoch: u64,
        key: &str,
        value: &str,
    ) -> Result<(), JournalError> {
        self.with(scope, |s| s.record(epoch, key, value));
        Ok(())
    }

    async fn put_checkpoint(
        &self,
        scope: &Scope,
        checkpoint: &CheckpointRecord,
        keep: usize,
    ) -> Result<(), JournalError> {
        self.with(scope, |s| {
            s.checkpoints.push(checkpoint.clone());
            let excess = s.checkpoints.len().saturating_sub(keep);
            s.checkpoints.drain(..excess);
        });
        Ok(())
    }

    async fn checkpoints(
        &self,
        scope: &Scope,
        limit: usize,
    ) -> Result<Vec<CheckpointRecord>, JournalError> {
        Ok(self
            .read(scope, |s| {
                s.checkpoints
                    .iter()
                    .rev()
                    .take(limit)
                    .map(|c| CheckpointRecord {
                        payload: String::new(),
                        ..c.clone()
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn checkpoint(
        &self,
        scope: &Scope,
        id: Option<&str>,
    ) -> Result<Option<CheckpointRecord>, JournalError> {
        Ok(self
            .read(scope, |s| match id {
                Some(id) => s.checkpoints.iter().find(|c| c.id == id).cloned(),
                None => s.checkpoints.last().cloned(),
            })
            .flatten())
    }

    async fn send_signal(
        &self,
        scope: &Scope,
        name: &str,
        payload: &str,
    ) -> Result<(), JournalError> {
        self.with(scope, |s| {
            s.signals
                .insert(name.to_owned(), (payload.to_owned(), Utc::now()))
        });
        Ok(())
    }

    async fn take_signal(
        &self,
        scope: &Scope,
        name: &str,
        epoch: u64,
        key: &str,
    ) -> Result<Option<String>, JournalError> {
        // A waiter polls this; looking must not create an empty session.
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(s) = sessions.get_mut(scope) else {
            return Ok(None);
        };
        Ok(s.signals.remove(name).map(|(payload, _)| {
            s.record(epoch, key, &payload);
            payload
        }))
    }

    async fn prune(&self, prune: &Prune) -> Result<Pruned, JournalError> {
        if prune.older_than.is_none() && prune.scope.is_none() {
            return Err(JournalError::UnboundedPrune);
        }
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut pruned = Pruned::default();
        for (scope, s) in sessions.iter_mut() {
            if prune.scope.as_ref().is_some_and(|p| p != scope) {
                continue;
            }
            let old = |t: DateTime<Utc>| prune.older_than.is_none_or(|cut| t < cut);
            let gone: HashSet<u64> = s
                .runs
                .iter()
                .filter(|r| old(r.finished_at.unwrap_or(r.started_at)))
                .map(|r| r.epoch)
                .collect();
            pruned.runs += gone.len() as u64;
            s.runs.retain(|r| !gone.contains(&r.epoch));
            let before = s.steps.len();
            s.steps.retain(|r| !gone.contains(&r.epoch));
            pruned.steps += (before - s.steps.len()) as u64;
            s.keys.retain(|(e, _)| !gone.contains(e));
            let before = s.checkpoints.len();
            s.checkpoints.retain(|c| !old(c.created_at));
            pruned.checkpoints += (before - s.checkpoints.len()) as u64;
            let before = s.signals.len();
            s.signals.retain(|_, (_, at)| !old(*at));
            pruned.signals += (before - s.signals.len()) as u64;
        }
        sessions.retain(|_, s| {
            !(s.runs.is_empty() && s.checkpoints.is_empty() && s.signals.is_empty())
        });
        Ok(pruned)
    }
}
