//! [`Worker`]: claims runs from the [`RunQueue`] and executes them.
//!
//! A worker claims runs with `FOR UPDATE SKIP LOCKED` (so any number of
//! workers on any number of machines share one queue without stepping on
//! each other) and holds each under a lease that it renews every third of
//! the lease. A worker that dies stops renewing; once the lease runs out
//! another worker claims the run and executes it again with the same run
//! id, session and input, so a job on a durable journal resumes where the
//! dead worker stopped. A worker that finds it lost a lease (the run was
//! cancelled or another worker took it over) stops the run, and its stale
//! result is discarded: only the lease holder can finish a run.

use loomflow_core::redact::Redacted;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use loomflow_core::job::{Job, JobError, JobRun};
use loomflow_core::{Event, EventKind, EventSink, RunId, SessionId, UserId};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::queue::{QueueError, RunQueue, backend};

/// Events a running run buffers before it stores them.
const EVENT_BATCH: usize = 256;
/// How often a running run stores its buffered events.
const EVENT_FLUSH: Duration = Duration::from_millis(250);
/// Finished runs stored in one transaction, at most.
const COMMIT_BATCH: usize = 512;

/// Builds a [`Worker`]: register jobs by name, then tune.
#[must_use = "a builder does nothing until build() is called"]
pub struct WorkerBuilder {
    queue: RunQueue,
    jobs: HashMap<String, Arc<dyn Job>>,
    id: Option<String>,
    concurrency: usize,
    lease: Duration,
    poll: Duration,
    chunk_events: bool,
}

impl std::fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("jobs", &self.jobs.keys().collect::<Vec<_>>())
            .field("concurrency", &self.concurrency)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl WorkerBuilder {
    /// Registers `job` under `name`: the worker claims only runs of the jobs
    /// it has.
    pub fn job(mut self, name: impl Into<String>, job: impl Job) -> Self {
        self.jobs.insert(name.into(), Arc::new(job));
        self
    }

    /// Registers a shared job under `name`.
    pub fn job_arc(mut self, name: impl Into<String>, job: Arc<dyn Job>) -> Self {
        self.jobs.insert(name.into(), job);
        self
    }

    /// The worker's id, stored with the runs it holds (default:
    /// `host:pid:random`). Must be unique among live workers.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// How many runs execute at once (default 64: runs mostly wait on the
    /// model, and claims and commits are batched across them).
    pub fn concurrency(mut self, runs: usize) -> Self {
        self.concurrency = runs.max(1);
        self
    }

    /// How long a claim holds without renewal (default 30 s, at least
    /// 300 ms). A dead worker's runs wait this long before another worker
    /// takes them over; the worker renews every third of it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(300));
        self
    }

    /// How often an idle worker looks for new runs (default 200 ms).
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll.max(Duration::from_millis(1));
        self
    }

    /// Also store `model_chunk` events (every streamed token) with the run.
    /// Off by default: they dwarf the other events.
    pub fn chunk_events(mut self, store: bool) -> Self {
        self.chunk_events = store;
        self
    }

    /// The worker, or an error when no job is registered.
    pub fn build(self) -> Result<Worker, QueueError> {
        if self.jobs.is_empty() {
            return Err(QueueError::Input(
                "a worker needs at least one job: call .job(name, agent_or_workflow)".into(),
            ));
        }
        let mut names: Vec<String> = self.jobs.keys().cloned().collect();
        names.sort();
        Ok(Worker {
            queue: self.queue,
            jobs: self.jobs,
            names,
            id: self.id.unwrap_or_else(default_worker_id),
            concurrency: self.concurrency,
            lease: self.lease,
            poll: self.poll,
            chunk_events: self.chunk_events,
        })
    }
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    let tail = RunId::generate();
    let tail = tail.as_str();
    format!(
        "{host}:{}:{}",
        std::process::id(),
        &tail[tail.len().saturating_sub(6)..]
    )
}

/// What a worker did, returned when it shuts down.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Runs it finished successfully.
    pub succeeded: u64,
    /// Runs whose job returned an error (or panicked).
    pub failed: u64,
    /// Runs it stopped because it lost their lease (cancelled, or taken
    /// over after the worker stalled).
    pub lost: u64,
}

/// Executes queued runs. See the crate docs.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use loomflow_postgres::{PostgresJournal, RunQueue, Worker};
///
/// let url = "postgres://app@db.internal/loomflow";
/// let journal = Arc::new(PostgresJournal::connect(url).await?);
/// let agent = loomflow_core::Agent::builder().model("echo").journal(journal).build()?;
/// let worker = Worker::builder(RunQueue::connect(url).await?)
///     .job("support", agent)
///     .concurrency(32)
///     .build()?;
/// // Any future: Ctrl-C, SIGTERM, a deploy hook. Runs in flight finish first.
/// let shutdown = async { tokio::time::sleep(std::time::Duration::from_secs(3600)).await };
/// let report = worker.run_until(shutdown).await?;
/// println!("{report:?}");
/// # Ok(()) }
/// ```
pub struct Worker {
    queue: RunQueue,
    jobs: HashMap<String, Arc<dyn Job>>,
    names: Vec<String>,
    id: String,
    concurrency: usize,
    lease: Duration,
    poll: Duration,
    chunk_events: bool,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id)
            .field("jobs", &self.names)
            .field("concurrency", &self.concurrency)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// A run this worker claimed.
struct Claimed {
    run_id: String,
    job: String,
    user: String,
    session: String,
    input: String,
    attempt: i32,
    event_seq: i64,
}

/// What a run task sends the committer.
enum Commit {
    /// Events of a run still going.
    Events {
        run_id: String,
        attempt: i32,
        events: Vec<(i64, String)>,
    },
    /// A finished run (its last events included); answered with whether the
    /// worker still held the lease.
    Finish {
        run_id: String,
        attempt: i32,
        events: Vec<(i64, String)>,
        outcome: Result<String, String>,
        done: oneshot::Sender<bool>,
    },
}

enum Ended {
    Succeeded,
    Failed,
    Lost,
}

impl Worker {
    /// A builder for a worker on `queue`.
    pub fn builder(queue: RunQueue) -> WorkerBuilder {
        WorkerBuilder {
            queue,
            jobs: HashMap::new(),
            id: None,
            concurrency: 64,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(200),
            chunk_events: false,
        }
    }

    /// The worker's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs until the process ends.
    pub async fn run(self) -> Result<WorkerReport, QueueError> {
        self.run_until(std::future::pending()).await
    }

    /// Runs until `shutdown` completes, then stops claiming, lets the runs
    /// in flight finish (renewing their leases) and returns what it did.
    /// Dropping the future instead abandons the runs in flight: their
    /// leases run out and other workers take them over.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<WorkerReport, QueueError> {
        let (commit_tx, commit_rx) = mpsc::channel(COMMIT_BATCH * 2);
        let committer = tokio::spawn(committer(self.queue.clone(), self.id.clone(), commit_rx));
        let result = self.main_loop(shutdown, commit_tx).await;
        // The run tasks are gone, so the channel closes and the committer
        // ends once it has stored what it was sent.
        let _ = committer.await;
        result
    }

    async fn main_loop(
        &self,
        shutdown: impl Future<Output = ()>,
        commit_tx: mpsc::Sender<Commit>,
    ) -> Result<WorkerReport, QueueError> {
        tokio::pin!(shutdown);
        let mut report = WorkerReport::default();
        let mut tasks: JoinSet<(String, Ended)> = JoinSet::new();
        // task → run, to release a run whose task died without answering.
        let mut task_runs: HashMap<tokio::task::Id, String> = HashMap::new();
        // run id → (attempt, cancel switch)
        let mut held: HashMap<String, (i32, Option<oneshot::Sender<()>>)> = HashMap::new();
        let renew_every = self.lease / 3;
        let mut next_renew = Instant::now() + renew_every;
        let mut last_renewed = Instant::now();
        let mut stopping = false;
        let mut queue_busy = true;
        let mut next_poll = Instant::now();
        let refill = (self.concurrency / 4).max(1);
        tracing::info!(worker = %self.id, jobs = ?self.names, "worker started");
        loop {
            let free = self.concurrency.saturating_sub(held.len());
            // While the queue has work, claim in batches of at least
            // `refill` runs (one claim round trip serves many runs); when it
            // ran dry, look again every poll interval.
            let claim_now = match queue_busy {
                true => free >= refill || held.is_empty(),
                false => free > 0 && Instant::now() >= next_poll,
            };
            if !stopping && claim_now {
                match self.claim(free).await {
                    Ok(claimed) => {
                        queue_busy = claimed.len() == free;
                        for run in claimed {
                            let (cancel_tx, cancel_rx) = oneshot::channel();
                            held.insert(run.run_id.clone(), (run.attempt, Some(cancel_tx)));
                            let run_id = run.run_id.clone();
                            let task =
                                self.spawn_run(&mut tasks, run, cancel_rx, commit_tx.clone());
                            task_runs.insert(task, run_id);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(worker = %self.id, error = %Redacted(&e), "claiming runs failed; retrying");
                        queue_busy = false;
                    }
                }
                next_poll = Instant::now() + self.poll;
            }
            if stopping && held.is_empty() {
                break;
            }
            let wake = match stopping || queue_busy {
                true => next_renew,
                false => next_renew.min(next_poll),
            };
            tokio::select! {
                () = &mut shutdown, if !stopping => {
                    tracing::info!(worker = %self.id, in_flight = held.len(), "worker stopping");
                    stopping = true;
                }
                Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    // Runs finish in groups (one commit answers many): take
                    // every finished one before deciding what to claim.
                    let mut joined = Some(joined);
                    while let Some(result) = joined.take().or_else(|| tasks.try_join_next_with_id()) {
                        match result {
                            Ok((task, (run_id, ended))) => {
                                task_runs.remove(&task);
                                held.remove(&run_id);
                                match ended {
                                    Ended::Succeeded => report.succeeded += 1,
                                    Ended::Failed => report.failed += 1,
                                    Ended::Lost => report.lost += 1,
                                }
                            }
                            Err(e) => {
                                // Stop renewing its lease: another worker
                                // takes the run over once it runs out.
                                if let Some(run_id) = task_runs.remove(&e.id()) {
                                    held.remove(&run_id);
                                    tracing::error!(worker = %self.id, run = %run_id, error = %Redacted(&e),
                                        "a run task died; releasing its lease");
                                }
                                report.lost += 1;
                            }
                        }
                    }
                }
                () = tokio::time::sleep_until(wake.into()) => {}
            }
            if Instant::now() >= next_renew && !held.is_empty() {
                match self.renew(&held).await {
                    Ok(kept) => {
                        last_renewed = Instant::now();
                        let lost: Vec<String> = held
                            .keys()
                            .filter(|id| !kept.contains(*id))
                            .cloned()
                            .collect();
                        for run_id in lost {
                            tracing::warn!(worker = %self.id, run = %run_id, "lease lost; stopping the run");
                            if let Some(cancel) = held.get_mut(&run_id).and_then(|(_, c)| c.take())
                            {
                                let _ = cancel.send(());
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(worker = %self.id, error = %Redacted(&e), "renewing leases failed");
                        if last_renewed.elapsed() >= self.lease {
                            // Other workers may own these runs by now.
                            for cancel in held.values_mut().filter_map(|(_, c)| c.take()) {
                                let _ = cancel.send(());
                            }
                        }
                    }
                }
                next_renew = Instant::now() + renew_every;
            } else if held.is_empty() {
                next_renew = Instant::now() + renew_every;
                last_renewed = Instant::now();
            }
        }
        tracing::info!(worker = %self.id, ?report, "worker stopped");
        Ok(report)
    }

    fn spawn_run(
        &self,
        tasks: &mut JoinSet<(String, Ended)>,
        run: Claimed,
        cancel: oneshot::Receiver<()>,
        commit_tx: mpsc::Sender<Commit>,
    ) -> tokio::task::Id {
        let job = self.jobs.get(&run.job).cloned();
        let chunk_events = self.chunk_events;
        tasks
            .spawn(async move {
                let run_id = run.run_id.clone();
                let ended = execute(job, run, cancel, commit_tx, chunk_events).await;
                (run_id, ended)
            })
            .id()
    }

    async fn claim(&self, max: usize) -> Result<Vec<Claimed>, QueueError> {
        let c = self.queue.conn().await?;
        let st = c
            .prepare_cached(
                "WITH abandoned AS (
                    UPDATE loomflow_runs SET status = 'failed', finished_at = now(), lease_until = NULL,
                        error = json_build_object('kind', 'AbandonedRun', 'message',
                            'no worker finished the run in ' || attempts
                            || ' attempts (each worker stopped renewing its lease)')::text
                    WHERE status = 'running' AND lease_until < now()
                      AND attempts >= max_attempts AND job = ANY($2)
                ),
                picked AS (
                    SELECT r.seq FROM loomflow_runs r
                    WHERE r.status IN ('queued', 'running') AND r.job = ANY($2)
                      AND (r.status = 'queued' OR (r.lease_until < now() AND r.attempts < r.max_attempts))
                      AND NOT EXISTS (
                          SELECT 1 FROM loomflow_runs o
                          WHERE o.user_key = r.user_key AND o.session_id = r.session_id
                            AND o.seq < r.seq AND o.status IN ('queued', 'running'))
                    ORDER BY r.seq LIMIT $3
                    FOR UPDATE SKIP LOCKED
                )
                UPDATE loomflow_runs r SET status = 'running', worker = $1,
                    lease_until = now() + $4::BIGINT * interval '1 millisecond',
                    attempts = r.attempts + 1, started_at = COALESCE(r.started_at, now())
                FROM picked WHERE r.seq = picked.seq
                RETURNING r.run_id, r.job, r.user_key, r.session_id, r.input, r.attempts,
                    (SELECT COALESCE(max(e.seq), 0) FROM loomflow_run_events e WHERE e.run_id = r.run_id)",
            )
            .await
            .map_err(backend)?;
        let rows = c
            .query(
                &st,
                &[
                    &self.id,
                    &self.names,
                    &i64::try_from(max).unwrap_or(i64::MAX),
                    &millis(self.lease),
                ],
            )
            .await
            .map_err(backend)?;
        let claimed: Vec<Claimed> = rows
            .iter()
            .map(|row| Claimed {
                run_id: row.get(0),
                job: row.get(1),
                user: row.get(2),
                session: row.get(3),
                input: row.get(4),
                attempt: row.get(5),
                event_seq: row.get(6),
            })
            .collect();
        for run in claimed.iter().filter(|r| r.attempt > 1) {
            tracing::info!(worker = %self.id, run = %run.run_id, attempt = run.attempt,
                "took over a run whose lease ran out");
        }
        Ok(claimed)
    }

    async fn renew(
        &self,
        held: &HashMap<String, (i32, Option<oneshot::Sender<()>>)>,
    ) -> Result<HashSet<String>, QueueError> {
        let (ids, attempts): (Vec<&str>, Vec<i32>) =
            held.iter().map(|(id, (a, _))| (id.as_str(), *a)).unzip();
        let c = self.queue.conn().await?;
        let rows = c
            .query(
                "UPDATE loomflow_runs r SET lease_until = now() + $4::BIGINT * interval '1 millisecond'
                 FROM unnest($2::text[], $3::int[]) AS h(run_id, attempt)
                 WHERE r.run_id = h.run_id AND r.attempts = h.attempt
                   AND r.worker = $1 AND r.status = 'running'
                 RETURNING r.run_id",
                &[&self.id, &ids, &attempts, &millis(self.lease)],
            )
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Runs one claimed run to its end: executes the job, streams its events to
/// the committer, and finishes the run unless the lease was lost.
async fn execute(
    job: Option<Arc<dyn Job>>,
    run: Claimed,
    mut cancel: oneshot::Receiver<()>,
    commit_tx: mpsc::Sender<Commit>,
    chunk_events: bool,
) -> Ended {
    let Claimed {
        run_id,
        job: job_name,
        user,
        session,
        input,
        attempt,
        mut event_seq,
    } = run;
    let prepared = prepare(job, &job_name, &run_id, &user, &session, &input);
    let (job, run_id_typed, user, session, input) = match prepared {
        Ok(p) => p,
        Err(e) => return finish(&commit_tx, run_id, attempt, Vec::new(), Err(e)).await,
    };
    let (tx, mut rx) = mpsc::channel::<Event>(EVENT_BATCH);
    let job_run = JobRun {
        input,
        user,
        session,
        run_id: run_id_typed,
        events: EventSink::new(tx),
    };
    let work = AssertUnwindSafe(async move { job.run(job_run).await }).catch_unwind();
    tokio::pin!(work);
    let mut buffer: Vec<(i64, String)> = Vec::new();
    let mut last_flush = Instant::now();
    let mut keep = |event: Event, buffer: &mut Vec<(i64, String)>| {
        if !chunk_events && matches!(event.kind, EventKind::ModelChunk { .. }) {
            return;
        }
        if let Ok(text) = serde_json::to_string(&event) {
            event_seq += 1;
            buffer.push((event_seq, text));
        }
    };
    let outcome = loop {
        tokio::select! {
            biased;
            _ = &mut cancel => {
                // Lost the lease: drop the job (cancelling it) and its result.
                return Ended::Lost;
            }
            out = &mut work => break out,
            Some(event) = rx.recv() => {
                keep(event, &mut buffer);
                if buffer.len() < EVENT_BATCH {
                    continue;
                }
            }
            // Buffered events become readable within EVENT_FLUSH even while
            // the run waits on a slow model call.
            () = tokio::time::sleep_until((last_flush + EVENT_FLUSH).into()), if !buffer.is_empty() => {}
        }
        if last_flush.elapsed() >= EVENT_FLUSH || buffer.len() >= EVENT_BATCH {
            let events = std::mem::take(&mut buffer);
            last_flush = Instant::now();
            let _ = commit_tx
                .send(Commit::Events {
                    run_id: run_id.clone(),
                    attempt,
                    events,
                })
                .await;
        }
    };
    while let Ok(event) = rx.try_recv() {
        keep(event, &mut buffer);
    }
    let outcome = match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the job panicked".into());
            Err(JobError::new("Panic", message))
        }
    };
    finish(&commit_tx, run_id, attempt, buffer, outcome).await
}

type Prepared = (Arc<dyn Job>, RunId, UserId, SessionId, Value);

fn prepare(
    job: Option<Arc<dyn Job>>,
    job_name: &str,
    run_id: &str,
    user: &str,
    session: &str,
    input: &str,
) -> Result<Prepared, JobError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        JobError::new(
            "CorruptRun",
            format!("the queued run's {what} is unreadable: {e}"),
        )
    };
    let job = job.ok_or_else(|| {
        JobError::new("UnknownJob", format!("this worker has no job `{job_name}`"))
    })?;
    Ok((
        job,
        RunId::new(run_id).map_err(|e| bad("run id", &e))?,
        UserId::from_storage_key(user).map_err(|e| bad("user", &e))?,
        SessionId::new(session).map_err(|e| bad("session", &e))?,
        serde_json::from_str(input).map_err(|e| bad("input", &e))?,
    ))
}

async fn finish(
    commit_tx: &mpsc::Sender<Commit>,
    run_id: String,
    attempt: i32,
    events: Vec<(i64, String)>,
    outcome: Result<Value, JobError>,
) -> Ended {
    let failed = outcome.is_err();
    let outcome = match outcome {
        Ok(value) => Ok(value.to_string()),
        Err(e) => Err(serde_json::to_string(&e).unwrap_or_default()),
    };
    let (done, answer) = oneshot::channel();
    let sent = commit_tx
        .send(Commit::Finish {
            run_id,
            attempt,
            events,
            outcome,
            done,
        })
        .await;
    match (sent.is_ok() && answer.await.unwrap_or(false), failed) {
        (false, _) => Ended::Lost,
        (true, true) => Ended::Failed,
        (true, false) => Ended::Succeeded,
    }
}

/// Stores events and finished runs, many per transaction: whatever the run
/// tasks sent while the previous batch was being written.
async fn committer(queue: RunQueue, worker: String, mut rx: mpsc::Receiver<Commit>) {
    let mut batch = Vec::with_capacity(COMMIT_BATCH);
    while rx.recv_many(&mut batch, COMMIT_BATCH).await > 0 {
        let answers = match store(&queue, &worker, &batch).await {
            Ok(kept) => kept,
            Err(e) => {
                tracing::warn!(worker = %worker, error = %Redacted(&e), runs = batch.len(),
                    "storing finished runs failed; their leases will run out and they will run again");
                HashSet::new()
            }
        };
        for commit in batch.drain(..) {
            if let Commit::Finish { run_id, done, .. } = commit {
                let _ = done.send(answers.contains(&run_id));
            }
        }
    }
}

async fn store(
    queue: &RunQueue,
    worker: &str,
    batch: &[Commit],
) -> Result<HashSet<String>, QueueError> {
    let mut ev_run: Vec<&str> = Vec::new();
    let mut ev_seq: Vec<i64> = Vec::new();
    let mut ev_attempt: Vec<i32> = Vec::new();
    let mut ev_text: Vec<&str> = Vec::new();
    let mut fin_run: Vec<&str> = Vec::new();
    let mut fin_attempt: Vec<i32> = Vec::new();
    let mut fin_status: Vec<&str> = Vec::new();
    let mut fin_result: Vec<Option<&str>> = Vec::new();
    let mut fin_error: Vec<Option<&str>> = Vec::new();
    for commit in batch {
        let (run_id, attempt, events) = match commit {
            Commit::Events {
                run_id,
                attempt,
                events,
            } => (run_id, *attempt, events),
            Commit::Finish {
                run_id,
                attempt,
                events,
                outcome,
                ..
            } => {
                fin_run.push(run_id);
                fin_attempt.push(*attempt);
                match outcome {
                    Ok(result) => {
                        fin_status.push("succeeded");
                        fin_result.push(Some(result));
                        fin_error.push(None);
                    }
                    Err(error) => {
                        fin_status.push("failed");
                        fin_result.push(None);
                        fin_error.push(Some(error));
                    }
                }
                (run_id, *attempt, events)
            }
        };
        for (seq, text) in events {
            ev_run.push(run_id);
            ev_seq.push(*seq);
            ev_attempt.push(attempt);
            ev_text.push(text);
        }
    }
    let mut c = queue.conn().await?;
    let tx = c.transaction().await.map_err(backend)?;
    if !ev_run.is_empty() {
        // Only the lease holder's events are kept.
        tx.execute(
            "INSERT INTO loomflow_run_events (run_id, seq, attempt, event)
             SELECT e.run_id, e.seq, e.attempt, e.event
             FROM unnest($2::text[], $3::bigint[], $4::int[], $5::text[]) AS e(run_id, seq, attempt, event)
             JOIN loomflow_runs r ON r.run_id = e.run_id AND r.attempts = e.attempt
                 AND r.worker = $1 AND r.status = 'running'
             ON CONFLICT DO NOTHING",
            &[&worker, &ev_run, &ev_seq, &ev_attempt, &ev_text],
        )
        .await
        .map_err(backend)?;
    }
    let mut kept = HashSet::new();
    if !fin_run.is_empty() {
        let rows = tx
            .query(
                "UPDATE loomflow_runs r SET status = f.status, result = f.result, error = f.error,
                     finished_at = now(), lease_until = NULL
                 FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], $6::text[])
                     AS f(run_id, attempt, status, result, error)
                 WHERE r.run_id = f.run_id AND r.attempts = f.attempt
                   AND r.worker = $1 AND r.status = 'running'
                 RETURNING r.run_id",
                &[
                    &worker,
                    &fin_run,
                    &fin_attempt,
                    &fin_status,
                    &fin_result,
                    &fin_error,
                ],
            )
            .await
            .map_err(backend)?;
        kept = rows.iter().map(|r| r.get(0)).collect();
    }
    tx.commit().await.map_err(backend)?;
    Ok(kept)
}
