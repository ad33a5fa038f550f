//! [`RunQueue`]: runs submitted to Postgres for any number of workers to
//! execute, with their status, result and events readable by run id.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use loomflow_core::job::JobError;
use loomflow_core::journal::redact_url;
use loomflow_core::{Event, IdError, RunId, SessionId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::journal::{client, migrate, pool};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS loomflow_runs (
    seq BIGSERIAL PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    job TEXT NOT NULL,
    user_key TEXT NOT NULL,
    session_id TEXT NOT NULL,
    input TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    worker TEXT,
    lease_until TIMESTAMPTZ,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    result TEXT,
    error TEXT,
    submitted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS loomflow_runs_active ON loomflow_runs (seq)
    WHERE status IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS loomflow_runs_session ON loomflow_runs (user_key, session_id, seq)
    WHERE status IN ('queued', 'running');
CREATE TABLE IF NOT EXISTS loomflow_run_events (
    run_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    attempt INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
";

/// Everything that can go wrong with the run queue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The database failed or could not be reached (the URL's password is
    /// redacted).
    #[error("run queue (postgres): {0}")]
    Backend(String),
    /// A stored row could not be read back.
    #[error("run queue: run {run_id} has an unreadable {what}: {message}")]
    Corrupt {
        /// The run.
        run_id: String,
        /// Which column.
        what: &'static str,
        /// The decoding error.
        message: String,
    },
    /// A submitted input is not valid JSON, or an id is malformed.
    #[error("run queue: {0}")]
    Input(String),
    /// [`RunQueue::wait`] gave up before the run finished.
    #[error("run queue: run {run_id} is still {status} after {waited:?}")]
    WaitTimeout {
        /// The run.
        run_id: RunId,
        /// Its status when the wait gave up.
        status: RunStatus,
        /// How long the wait lasted.
        waited: Duration,
    },
    /// No run with this id belongs to this user.
    #[error("run queue: no run {run_id} for user {user}")]
    NotFound {
        /// The tenant asked for.
        user: UserId,
        /// The run asked for.
        run_id: RunId,
    },
}

impl From<IdError> for QueueError {
    fn from(e: IdError) -> Self {
        Self::Input(e.to_string())
    }
}

impl From<loomflow_core::JournalError> for QueueError {
    fn from(e: loomflow_core::JournalError) -> Self {
        match e {
            loomflow_core::JournalError::Backend { message, .. } => Self::Backend(message),
            other => Self::Backend(other.to_string()),
        }
    }
}

pub(crate) fn backend(e: tokio_postgres::Error) -> QueueError {
    QueueError::Backend(crate::journal::describe(&e))
}

/// Where a queued run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for a worker.
    Queued,
    /// Claimed by a worker that holds its lease.
    Running,
    /// Finished; the result is stored.
    Succeeded,
    /// The job returned an error, or workers died on it `max_attempts`
    /// times.
    Failed,
    /// Cancelled with [`RunQueue::cancel`].
    Cancelled,
}

impl RunStatus {
    /// The status as stored (`"queued"`, `"running"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// True once the run will not change any more.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            other => return Err(format!("unknown run status `{other}`")),
        })
    }
}

/// A run in the queue, as [`RunQueue::get`] reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedRun {
    /// Its id.
    pub run_id: RunId,
    /// The job it runs.
    pub job: String,
    /// The tenant it was submitted for.
    pub user_id: UserId,
    /// Its session.
    pub session_id: SessionId,
    /// The submitted input.
    pub input: Value,
    /// Where it is.
    pub status: RunStatus,
    /// How many times a worker claimed it (more than one after a worker
    /// died holding it).
    pub attempts: u32,
    /// The worker holding it, or the one that finished it.
    pub worker: Option<String>,
    /// The job's output, once it succeeded.
    pub result: Option<Value>,
    /// Why it failed.
    pub error: Option<JobError>,
    /// When it was submitted.
    pub submitted_at: DateTime<Utc>,
    /// When a worker first claimed it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// One stored event of a queued run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Its position in the run's events (1, 2, …; continues across
    /// attempts).
    pub seq: u64,
    /// The attempt that emitted it.
    pub attempt: u32,
    /// The event.
    pub event: Event,
}

/// A run to submit (see [`RunQueue::submit`] and
/// [`RunQueue::submit_all`]).
#[derive(Debug, Clone)]
pub struct NewRun {
    job: String,
    input: Result<Value, String>,
    user: Result<UserId, String>,
    session: Result<SessionId, String>,
    max_attempts: u32,
}

impl NewRun {
    /// A run of `job` on `input`, for the anonymous user, in a fresh
    /// session, tried by at most 3 workers.
    pub fn new(job: impl Into<String>, input: impl Serialize) -> Self {
        Self {
            job: job.into(),
            input: serde_json::to_value(input).map_err(|e| e.to_string()),
            user: Ok(UserId::anonymous()),
            session: Ok(SessionId::generate()),
            max_attempts: 3,
        }
    }

    /// The tenant the run belongs to.
    pub fn user<U>(mut self, user: U) -> Self
    where
        U: TryInto<UserId>,
        U::Error: Into<IdError>,
    {
        self.user = user.try_into().map_err(|e| e.into().to_string());
        self
    }

    /// The session (runs of one session execute one at a time, in
    /// submission order).
    pub fn session<S>(mut self, session: S) -> Self
    where
        S: TryInto<SessionId>,
        S::Error: Into<IdError>,
    {
        self.session = session.try_into().map_err(|e| e.into().to_string());
        self
    }

    /// How many workers may claim the run before it is failed as abandoned
    /// (a worker that dies holding it uses up one attempt). At least 1.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    fn validate(self) -> Result<ValidRun, QueueError> {
        let input = self.input.map_err(|e| {
            QueueError::Input(format!(
                "the input of a `{}` run does not serialise to JSON: {e}",
                self.job
            ))
        })?;
        if self.job.is_empty() {
            return Err(QueueError::Input(
                "a run needs a job name (the name a worker registered the job under)".into(),
            ));
        }
        Ok(ValidRun {
            job: self.job,
            input: input.to_string(),
            user: self.user.map_err(QueueError::Input)?,
            session: self.session.map_err(QueueError::Input)?,
            max_attempts: i32::try_from(self.max_attempts).unwrap_or(i32::MAX),
            run_id: RunId::generate(),
        })
    }
}

struct ValidRun {
    job: String,
    input: String,
    user: UserId,
    session: SessionId,
    max_attempts: i32,
    run_id: RunId,
}

/// The run queue in Postgres. Submit runs from anywhere; [`Worker`]s on any
/// number of machines claim and execute them.
///
/// [`Worker`]: crate::Worker
///
/// ```no_run
/// # async fn demo() -> Result<(), loomflow_postgres::QueueError> {
/// use loomflow_postgres::RunQueue;
///
/// let queue = RunQueue::connect("postgres://app@db.internal/loomflow").await?;
/// let run = queue.submit("support", "Where is my order?").user("alice").await?;
/// let done = queue.wait(&"alice".try_into()?, &run, std::time::Duration::from_secs(60)).await?;
/// println!("{:?}: {:?}", done.status, done.result);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RunQueue {
    pub(crate) pool: Pool,
    url: String,
}

impl std::fmt::Debug for RunQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunQueue")
            .field("url", &redact_url(&self.url))
            .finish_non_exhaustive()
    }
}

fn queued_run(row: &tokio_postgres::Row) -> Result<QueuedRun, QueueError> {
    let run_id: String = row.get("run_id");
    let corrupt = |what: &'static str, message: String| QueueError::Corrupt {
        run_id: run_id.clone(),
        what,
        message,
    };
    let json = |what: &'static str, text: Option<String>| -> Result<Option<Value>, QueueError> {
        text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(what, e.to_string())))
            .transpose()
    };
    let error = row
        .get::<_, Option<String>>("error")
        .map(|t| serde_json::from_str::<JobError>(&t).map_err(|e| corrupt("error", e.to_string())))
        .transpose()?;
    Ok(QueuedRun {
        run_id: RunId::new(&run_id).map_err(|e| corrupt("run id", e.to_string()))?,
        job: row.get("job"),
        user_id: UserId::from_storage_key(row.get("user_key"))
            .map_err(|e| corrupt("user", e.to_string()))?,
        session_id: SessionId::new(row.get::<_, &str>("session_id"))
            .map_err(|e| corrupt("session", e.to_string()))?,
        input: json("input", Some(row.get("input")))?.unwrap_or(Value::Null),
        status: row
            .get::<_, &str>("status")
            .parse()
            .map_err(|e: String| corrupt("status", e))?,
        attempts: u32::try_from(row.get::<_, i32>("attempts")).unwrap_or_default(),
        worker: row.get("worker"),
        result: json("result", row.get("result"))?,
        error,
        submitted_at: row.get("submitted_at"),
        started_at: row.get("started_at"),
        finished_at: row.get("finished_at"),
    })
}

const RUN_COLUMNS: &str = "run_id, job, user_key, session_id, input, status, attempts, worker, \
     result, error, submitted_at, started_at, finished_at";

impl RunQueue {
    /// Connects to `url` (a pool of up to 16 connections) and creates the
    /// queue's tables if they are missing.
    pub async fn connect(url: &str) -> Result<Self, QueueError> {
        Self::connect_with(url, 16).await
    }

    /// Like [`connect`](Self::connect), with a pool of up to `max_size`
    /// connections (a worker uses one per concurrent database call).
    pub async fn connect_with(url: &str, max_size: usize) -> Result<Self, QueueError> {
        let pool = pool(url, max_size)?;
        migrate(&pool, url, SCHEMA).await?;
        Ok(Self {
            pool,
            url: url.to_owned(),
        })
    }

    pub(crate) async fn conn(&self) -> Result<deadpool_postgres::Object, QueueError> {
        Ok(client(&self.pool, &self.url).await?)
    }

    /// Submits a run of `job` (the name workers registered it under) on
    /// `input`. Set the user, session and attempts on the returned
    /// [`Submit`], then `.await` it for the run id.
    pub fn submit(&self, job: impl Into<String>, input: impl Serialize) -> Submit<'_> {
        Submit {
            queue: self,
            run: NewRun::new(job, input),
        }
    }

    /// Submits many runs in one round trip; returns their ids in order. All
    /// or none are queued.
    pub async fn submit_all(
        &self,
        runs: impl IntoIterator<Item = NewRun>,
    ) -> Result<Vec<RunId>, QueueError> {
        let runs = runs
            .into_iter()
            .map(NewRun::validate)
            .collect::<Result<Vec<_>, _>>()?;
        let mut cols: [Vec<&str>; 5] = Default::default();
        let mut attempts = Vec::with_capacity(runs.len());
        for r in &runs {
            cols[0].push(r.run_id.as_str());
            cols[1].push(&r.job);
            cols[2].push(r.user.storage_key());
            cols[3].push(r.session.as_str());
            cols[4].push(&r.input);
            attempts.push(r.max_attempts);
        }
        let c = self.conn().await?;
        c.execute(
            "INSERT INTO loomflow_runs (run_id, job, user_key, session_id, input, max_attempts)
             SELECT run_id, job, user_key, session_id, input, max_attempts
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[])
             WITH ORDINALITY AS r(run_id, job, user_key, session_id, input, max_attempts, n)
             ORDER BY n",
            &[&cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &attempts],
        )
        .await
        .map_err(backend)?;
        Ok(runs.into_iter().map(|r| r.run_id).collect())
    }

    /// The run `run_id` of `user`, or `None` when no such run belongs to
    /// that user.
    pub async fn get(
        &self,
        user: &UserId,
        run_id: &RunId,
    ) -> Result<Option<QueuedRun>, QueueError> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM loomflow_runs WHERE run_id = $1 AND user_key = $2"
                ),
                &[&run_id.as_str(), &user.storage_key()],
            )
            .await
            .map_err(backend)?;
        row.as_ref().map(queued_run).transpose()
    }

    /// The runs of `user` in `session`, oldest first.
    pub async fn session_runs(
        &self,
        user: &UserId,
        session: &SessionId,
    ) -> Result<Vec<QueuedRun>, QueueError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM loomflow_runs
                     WHERE user_key = $1 AND session_id = $2 ORDER BY seq"
                ),
                &[&user.storage_key(), &session.as_str()],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(queued_run).collect()
    }

    /// Waits until the run finishes (polling every 100 ms) and returns it.
    pub async fn wait(
        &self,
        user: &UserId,
        run_id: &RunId,
        timeout: Duration,
    ) -> Result<QueuedRun, QueueError> {
        let start = std::time::Instant::now();
        loop {
            let run = self
                .get(user, run_id)
                .await?
                .ok_or_else(|| QueueError::NotFound {
                    user: user.clone(),
                    run_id: run_id.clone(),
                })?;
            if run.status.is_finished() {
                return Ok(run);
            }
            if start.elapsed() >= timeout {
                return Err(QueueError::WaitTimeout {
                    run_id: run_id.clone(),
                    status: run.status,
                    waited: start.elapsed(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The stored events of the run after position `after` (0 for all),
    /// in order. Workers store events as the run goes (every quarter
    /// second or so) and the rest when it finishes.
    pub async fn events(
        &self,
        user: &UserId,
        run_id: &RunId,
        after: u64,
    ) -> Result<Vec<StoredEvent>, QueueError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT e.seq, e.attempt, e.event FROM loomflow_run_events e
                 JOIN loomflow_runs r ON r.run_id = e.run_id
                 WHERE e.run_id = $1 AND r.user_key = $2 AND e.seq > $3 ORDER BY e.seq",
                &[
                    &run_id.as_str(),
                    &user.storage_key(),
                    &i64::try_from(after).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let text: &str = row.get(2);
                Ok(StoredEvent {
                    seq: u64::try_from(row.get::<_, i64>(0)).unwrap_or_default(),
                    attempt: u32::try_from(row.get::<_, i32>(1)).unwrap_or_default(),
                    event: serde_json::from_str(text).map_err(|e| QueueError::Corrupt {
                        run_id: run_id.to_string(),
                        what: "event",
                        message: e.to_string(),
                    })?,
                })
            })
            .collect()
    }

    /// Cancels a queued or running run of `user`; returns false when it had
    /// already finished (or no such run belongs to the user). A running run
    /// stops when its worker next renews its lease.
    pub async fn cancel(&self, user: &UserId, run_id: &RunId) -> Result<bool, QueueError> {
        let c = self.conn().await?;
        let n = c
            .execute(
                "UPDATE loomflow_runs SET status = 'cancelled', finished_at = now(), lease_until = NULL
                 WHERE run_id = $1 AND user_key = $2 AND status IN ('queued', 'running')",
                &[&run_id.as_str(), &user.storage_key()],
            )
            .await
            .map_err(backend)?;
        Ok(n == 1)
    }

    /// How many runs are in each status (all users; for dashboards and
    /// tests).
    pub async fn counts(&self) -> Result<Vec<(RunStatus, u64)>, QueueError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT status, count(*) FROM loomflow_runs GROUP BY status ORDER BY status",
                &[],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let status: &str = row.get(0);
                Ok((
                    status.parse().map_err(|e: String| QueueError::Corrupt {
                        run_id: "(any)".into(),
                        what: "status",
                        message: e,
                    })?,
                    u64::try_from(row.get::<_, i64>(1)).unwrap_or_default(),
                ))
            })
            .collect()
    }
}

/// A submission about to be made: set options, then `.await` it for the
/// run id.
#[must_use = "nothing is submitted until it is awaited"]
#[derive(Debug)]
pub struct Submit<'q> {
    queue: &'q RunQueue,
    run: NewRun,
}

impl Submit<'_> {
    /// The tenant the run belongs to (default: anonymous).
    pub fn user<U>(mut self, user: U) -> Self
    where
        U: TryInto<UserId>,
        U::Error: Into<IdError>,
    {
        self.run = self.run.user(user);
        self
    }

    /// The session (default: a fresh one). Runs of one session execute one
    /// at a time, in submission order.
    pub fn session<S>(mut self, session: S) -> Self
    where
        S: TryInto<SessionId>,
        S::Error: Into<IdError>,
    {
        self.run = self.run.session(session);
        self
    }

    /// How many workers may claim the run before it is failed as abandoned
    /// (default 3).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.run = self.run.max_attempts(attempts);
        self
    }
}

impl<'q> IntoFuture for Submit<'q> {
    type Output = Result<RunId, QueueError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'q>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let mut ids = self.queue.submit_all([self.run]).await?;
            ids.pop()
                .ok_or_else(|| QueueError::Backend("the insert returned no run id".into()))
        })
    }
}
