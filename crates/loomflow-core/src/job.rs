//! [`Job`]: work a queue worker runs by name.
//!
//! A worker (for example `loomflow_postgres::Worker`) claims a submitted run,
//! looks its job up by name and calls [`Job::run`] with the run's input,
//! tenant, session and run id. An [`Agent`] is a job, and so is a
//! `loomflow_workflow::Workflow`; [`job_fn`] makes one from an async
//! closure.
//!
//! A job that a crashed worker left half-done runs again on another worker
//! with the same session and input, so a job built on a durable journal
//! (an Agent or Workflow with `.journal(…)`) resumes where it stopped
//! instead of starting over.

use std::future::Future;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::Agent;
use crate::event::EventSink;
use crate::id::{RunId, SessionId, UserId};

/// One run of a job, as a worker hands it over.
#[derive(Debug, Clone)]
pub struct JobRun {
    /// The submitted input.
    pub input: Value,
    /// The tenant the run was submitted for.
    pub user: UserId,
    /// Its session (the journal's scope together with the user).
    pub session: SessionId,
    /// The queue's id for the run, kept across re-runs.
    pub run_id: RunId,
    /// Where the run's events go (the worker stores them by run id).
    pub events: EventSink,
}

/// Why a job failed: the error's type name and its message, as stored with
/// the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct JobError {
    /// The error's type name (`ModelError`, `NodeError`, …).
    pub kind: String,
    /// What went wrong.
    pub message: String,
}

impl JobError {
    /// An error of type `kind`.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

impl From<crate::error::Error> for JobError {
    fn from(e: crate::error::Error) -> Self {
        Self::new(e.type_name(), e.to_string())
    }
}

/// Work a worker can run by name.
///
/// Implemented for [`Agent`] (input: a string prompt, or any JSON value,
/// which becomes its text; output: the [`RunResult`](crate::RunResult) as
/// JSON) and for `loomflow_workflow::Workflow`.
#[async_trait]
pub trait Job: Send + Sync + 'static {
    /// Runs once and returns the output to store with the run.
    async fn run(&self, run: JobRun) -> Result<Value, JobError>;
}

#[async_trait]
impl Job for Agent {
    async fn run(&self, run: JobRun) -> Result<Value, JobError> {
        let prompt = match run.input {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let result = Agent::run(self, prompt)
            .user(run.user)
            .session(run.session)
            .run_id(run.run_id)
            .events_to(run.events)
            .await?;
        serde_json::to_value(result).map_err(|e| JobError::new("SerializationError", e.to_string()))
    }
}

/// A job from an async closure.
///
/// ```
/// use loomflow_core::job::{job_fn, Job, JobError, JobRun};
///
/// let double = job_fn(|run: JobRun| async move {
///     let n = run.input.as_i64().ok_or_else(|| JobError::new("InputError", "expected a number"))?;
///     Ok(serde_json::json!(n * 2))
/// });
/// # let _: &dyn Job = &double;
/// ```
pub fn job_fn<F, Fut>(f: F) -> JobFn<F>
where
    F: Fn(JobRun) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, JobError>> + Send + 'static,
{
    JobFn(f)
}

/// The [`Job`] [`job_fn`] returns.
#[derive(Debug, Clone)]
pub struct JobFn<F>(F);

#[async_trait]
impl<F, Fut> Job for JobFn<F>
where
    F: Fn(JobRun) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, JobError>> + Send + 'static,
{
    async fn run(&self, run: JobRun) -> Result<Value, JobError> {
        (self.0)(run).await
    }
}
