//! [`SqliteJournal`]: the durable-run journal in one SQLite file.
//!
//! One writer thread owns the connection. Calls queue operations to it; it
//! runs everything queued in one transaction and commits once (group
//! commit), so concurrent runs share a commit instead of each paying for
//! one. The file is in WAL mode.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use loomflow_core::journal::{
    CheckpointRecord, Journal, JournalError, Prune, Pruned, RunRecord, Scope, StepRecord,
};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

const BACKEND: &str = "sqlite";

/// How each journal write reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// A step is recorded once its transaction is committed and synced
    /// (`synchronous = FULL`): a step the run saw recorded survives a power
    /// cut. Concurrent steps share commits.
    #[default]
    Full,
    /// A step is recorded once its transaction is committed to the WAL
    /// (`synchronous = NORMAL`), without waiting for the disk: a step the
    /// run saw recorded survives the process being killed (SIGKILL, OOM,
    /// a panic), but a power cut or kernel crash can lose the last commits,
    /// whose steps then run again on resume. Concurrent steps share
    /// commits. The usual choice for a service: a crashed process is the
    /// common failure.
    Committed,
    /// A step is queued and the run goes on; the writer commits whatever is
    /// queued in one transaction (`synchronous = NORMAL`). A crash can lose
    /// the last few steps, which then run again on resume (runs are
    /// at-least-once either way; tools use their idempotency key).
    /// Finishing a run is queued too. Starting a run and reading the last
    /// one are answered as soon as the writer has applied them under its
    /// write lock (which is what keeps two processes off one run), without
    /// waiting for the commit; checkpoints and signals wait for it, and
    /// [`flush`](loomflow_core::journal::Journal::flush) waits for
    /// everything queued.
    Batched,
}

type Reply<T> = oneshot::Sender<Result<T, JournalError>>;

enum Op {
    LastRun(Scope, Reply<Option<RunRecord>>),
    StartRun(Scope, RunRecord, Reply<()>),
    /// Without a reply (a batched journal), a failure is deferred.
    FinishRun(Scope, u64, Option<Reply<()>>),
    Runs(Scope, Reply<Vec<RunRecord>>),
    Steps(Scope, Option<u64>, Reply<Vec<StepRecord>>),
    Record {
        scope: Scope,
        epoch: u64,
        key: String,
        value: String,
        reply: Option<Reply<()>>,
    },
    PutCheckpoint(Scope, CheckpointRecord, usize, Reply<()>),
    Checkpoints(Scope, usize, Reply<Vec<CheckpointRecord>>),
    Checkpoint(Scope, Option<String>, Reply<Option<CheckpointRecord>>),
    SendSignal(Scope, String, String, Reply<()>),
    TakeSignal(Scope, String, u64, String, Reply<Option<String>>),
    Prune(Prune, Reply<Pruned>),
    Flush(Reply<()>),
}

/// The journal in a SQLite file: the embedded default.
///
/// ```
/// use std::sync::Arc;
/// use loomflow_core::Agent;
/// use loomflow_sqlite::SqliteJournal;
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let journal = SqliteJournal::open(dir.path().join("journal.db")).unwrap();
/// let agent = Agent::builder().model("echo").journal(Arc::new(journal)).build().unwrap();
/// let r = agent.run("hi").user("alice").session("s1").await.unwrap();
/// assert_eq!(r.output, "Echo: hi");
/// # });
/// ```
#[derive(Clone)]
pub struct SqliteJournal {
    tx: mpsc::Sender<Op>,
    path: Arc<PathBuf>,
    durability: Durability,
    /// The first failure of a batched write nobody waited for; reported by
    /// the next `finish_run` or `flush`.
    deferred: Arc<Mutex<Option<JournalError>>>,
}

impl std::fmt::Debug for SqliteJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteJournal")
            .field("path", &self.path)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

fn backend_error(e: impl std::fmt::Display) -> JournalError {
    JournalError::backend(BACKEND, e)
}

impl SqliteJournal {
    /// Opens (creating if needed) the journal at `path` with
    /// [`Durability::Full`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, JournalError> {
        Self::open_with(path, Durability::Full)
    }

    /// Opens the journal at `path` with the given durability.
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Self, JournalError> {
        let path = path.as_ref().to_path_buf();
        let conn = Connection::open(&path)
            .map_err(|e| backend_error(format!("cannot open `{}`: {e}", path.display())))?;
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Committed | Durability::Batched => "NORMAL",
        };
        // Wait for other processes opening the same file (switching to WAL
        // and creating the tables take a write lock) instead of failing.
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| backend_error(format!("cannot configure `{}`: {e}", path.display())))?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync};"
        ))
        .map_err(|e| backend_error(format!("cannot configure `{}`: {e}", path.display())))?;
        migrate(&conn).map_err(|e| {
            backend_error(format!(
                "cannot create the tables in `{}`: {e}",
                path.display()
            ))
        })?;
        let deferred = Arc::new(Mutex::new(None));
        let (tx, rx) = mpsc::channel();
        let writer_deferred = deferred.clone();
        thread::Builder::new()
            .name("loomflow-sqlite-journal".into())
            .spawn(move || writer(conn, rx, writer_deferred, durability))
            .map_err(backend_error)?;
        Ok(Self {
            tx,
            path: Arc::new(path),
            durability,
            deferred,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn ask<T>(&self, op: impl FnOnce(Reply<T>) -> Op) -> Result<T, JournalError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(op(reply)).map_err(|_| writer_gone())?;
        rx.await.map_err(|_| writer_gone())?
    }

    fn take_deferred(&self) -> Result<(), JournalError> {
        let mut slot = self
            .deferred
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match slot.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS journal_runs (
            user_key TEXT NOT NULL,
            session_id TEXT NOT NULL,
            epoch INTEGER NOT NULL,
            input TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            started_at INTEGER NOT NULL,
            finished_at INTEGER,
            PRIMARY KEY (user_key, session_id, epoch)
        );
        CREATE TABLE IF NOT EXISTS journal_steps (
            user_key TEXT NOT NULL,
            session_id TEXT NOT NULL,
            epoch INTEGER NOT NULL,
            step_key TEXT NOT NULL,
            value TEXT NOT NULL,
            recorded_at INTEGER NOT NULL,
            UNIQUE (user_key, session_id, epoch, step_key)
        );
        CREATE TABLE IF NOT EXISTS journal_checkpoints (
            user_key TEXT NOT NULL,
            session_id TEXT NOT NULL,
            checkpoint_id TEXT NOT NULL,
            turn INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            payload TEXT NOT NULL,
            UNIQUE (user_key, session_id, checkpoint_id)
        );
        CREATE INDEX IF NOT EXISTS journal_checkpoints_session
            ON journal_checkpoints (user_key, session_id);
        CREATE TABLE IF NOT EXISTS journal_signals (
            user_key TEXT NOT NULL,
            session_id TEXT NOT NULL,
            name TEXT NOT NULL,
            payload TEXT NOT NULL,
            sent_at INTEGER NOT NULL,
            PRIMARY KEY (user_key, session_id, name)
        );
        PRAGMA user_version = 1;",
    )
}

/// The error of a call made after the writer thread ended.
fn writer_gone() -> JournalError {
    backend_error("the journal's writer thread has stopped")
}

/// Keeps the first failure nobody waited for, for the next call that
/// reports deferred failures (`finish_run`, `flush`, a batched `record`).
fn defer(deferred: &Mutex<Option<JournalError>>, message: impl FnOnce() -> String) {
    deferred
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get_or_insert_with(|| backend_error(message()));
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

fn epoch_i64(epoch: u64) -> i64 {
    i64::try_from(epoch).unwrap_or(i64::MAX)
}

/// The writer thread: runs queued operations in batches, one transaction
/// (and one commit) per batch, and answers after the commit.
fn writer(
    mut conn: Connection,
    rx: mpsc::Receiver<Op>,
    deferred: Arc<Mutex<Option<JournalError>>>,
    durability: Durability,
) {
    let mut batch: Vec<Op> = Vec::with_capacity(64);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let mut answers: Vec<Answer> = Vec::with_capacity(batch.len());
        let outcome = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for op in batch.drain(..) {
                // A batched journal answers reads and run starts as soon as
                // they are applied: the write lock this transaction holds
                // already excludes other processes, and a commit that fails
                // later reaches the run through the deferred error.
                let early = durability == Durability::Batched
                    && matches!(op, Op::LastRun(..) | Op::StartRun(..));
                let answer = apply(&tx, op, &deferred);
                if early {
                    answer(None);
                } else {
                    answers.push(answer);
                }
            }
            tx.commit()
        })();
        let failed = outcome.err().map(|e| {
            // The batch is lost: every waiting caller hears why, and so
            // does the next flush for the records nobody waited for.
            tracing::error!(error = %e, "journal commit failed");
            let message = format!("commit failed: {e}");
            defer(&deferred, || message.clone());
            message
        });
        for answer in answers.drain(..) {
            answer(failed.as_deref());
        }
    }
}

/// Replies to one operation once its batch's commit is known (`Some` holds
/// the commit's failure, which overrides the operation's own result).
type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

/// Sends `result` once the batch is committed (or the commit's failure).
fn answer<T: Send + 'static>(reply: Reply<T>, result: rusqlite::Result<T>) -> Answer {
    answer_with(reply, result.map_err(backend_error))
}

fn answer_with<T: Send + 'static>(reply: Reply<T>, result: Result<T, JournalError>) -> Answer {
    Box::new(move |commit_failed| {
        let result = match commit_failed {
            Some(message) => Err(backend_error(message)),
            None => result,
        };
        let _ = reply.send(result);
    })
}

fn run_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        epoch: u64::try_from(row.get::<_, i64>(0)?).unwrap_or_default(),
        input: row.get(1)?,
        fingerprint: row.get(2)?,
        started_at: from_micros(row.get(3)?),
        finished_at: row.get::<_, Option<i64>>(4)?.map(from_micros),
    })
}

fn checkpoint_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CheckpointRecord> {
    Ok(CheckpointRecord {
        id: row.get(0)?,
        turn: u32::try_from(row.get::<_, i64>(1)?).unwrap_or_default(),
        created_at: from_micros(row.get(2)?),
        payload: row.get(3)?,
    })
}

fn record(
    tx: &rusqlite::Transaction<'_>,
    scope: &Scope,
    epoch: u64,
    key: &str,
    value: &str,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO journal_steps (user_key, session_id, epoch, step_key, value, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        scope.user.storage_key(),
        scope.session.as_str(),
        epoch_i64(epoch),
        key,
        value,
        micros(Utc::now())
    ])?;
    Ok(())
}

fn apply(
    tx: &rusqlite::Transaction<'_>,
    op: Op,
    deferred: &Arc<Mutex<Option<JournalError>>>,
) -> Answer {
    match op {
        Op::LastRun(scope, reply) => {
            let r = tx
                .prepare_cached(
                    "SELECT epoch, input, fingerprint, started_at, finished_at FROM journal_runs
                     WHERE user_key = ?1 AND session_id = ?2 ORDER BY epoch DESC LIMIT 1",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![scope.user.storage_key(), scope.session.as_str()],
                        run_row,
                    )
                    .optional()
                });
            answer(reply, r)
        }
        Op::StartRun(scope, run, reply) => {
            let r = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO journal_runs
                     (user_key, session_id, epoch, input, fingerprint, started_at, finished_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        scope.user.storage_key(),
                        scope.session.as_str(),
                        epoch_i64(run.epoch),
                        run.input,
                        run.fingerprint,
                        micros(run.started_at)
                    ])
                });
            let r = match r {
                Ok(0) => Err(JournalError::Busy {
                    user: scope.user.clone(),
                    session: scope.session.clone(),
                    epoch: run.epoch,
                }),
                Ok(_) => Ok(()),
                Err(e) => Err(backend_error(e)),
            };
            answer_with(reply, r)
        }
        Op::FinishRun(scope, epoch, reply) => {
            let r = tx
                .prepare_cached(
                    "UPDATE journal_runs SET finished_at = ?4
                     WHERE user_key = ?1 AND session_id = ?2 AND epoch = ?3",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        scope.user.storage_key(),
                        scope.session.as_str(),
                        epoch_i64(epoch),
                        micros(Utc::now())
                    ])
                });
            let Some(reply) = reply else {
                if let Err(e) = r {
                    defer(deferred, || format!("finishing the run: {e}"));
                }
                return Box::new(|_| {});
            };
            // A batched record that failed earlier surfaces here, before
            // the run is reported finished.
            let earlier = deferred
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            match earlier {
                Some(e) => answer_with(reply, Err(e)),
                None => answer(reply, r.map(drop)),
            }
        }
        Op::Runs(scope, reply) => {
            let r = tx
                .prepare_cached(
                    "SELECT epoch, input, fingerprint, started_at, finished_at FROM journal_runs
                     WHERE user_key = ?1 AND session_id = ?2 ORDER BY epoch",
                )
                .and_then(|mut s| {
                    s.query_map(
                        params![scope.user.storage_key(), scope.session.as_str()],
                        run_row,
                    )?
                    .collect()
                });
            answer(reply, r)
        }
        Op::Steps(scope, epoch, reply) => {
            let r = tx
                .prepare_cached(
                    "SELECT epoch, step_key, value, recorded_at FROM journal_steps
                     WHERE user_key = ?1 AND session_id = ?2 AND (?3 IS NULL OR epoch = ?3)
                     ORDER BY rowid",
                )
                .and_then(|mut s| {
                    s.query_map(
                        params![
                            scope.user.storage_key(),
                            scope.session.as_str(),
                            epoch.map(epoch_i64)
                        ],
                        |row| {
                            Ok(StepRecord {
                                epoch: u64::try_from(row.get::<_, i64>(0)?).unwrap_or_default(),
                                key: row.get(1)?,
                                value: row.get(2)?,
                                recorded_at: from_micros(row.get(3)?),
                            })
                        },
                    )?
                    .collect()
                });
            answer(reply, r)
        }
        Op::Record {
            scope,
            epoch,
            key,
            value,
            reply,
        } => {
            let r = record(tx, &scope, epoch, &key, &value);
            match reply {
                Some(reply) => answer(reply, r),
                None => {
                    if let Err(e) = r {
                        defer(deferred, || format!("recording `{key}`: {e}"));
                    }
                    Box::new(|_| {})
                }
            }
        }
        Op::PutCheckpoint(scope, c, keep, reply) => {
            let r = (|| {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO journal_checkpoints
                     (user_key, session_id, checkpoint_id, turn, created_at, payload)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    scope.user.storage_key(),
                    scope.session.as_str(),
                    c.id,
                    c.turn,
                    micros(c.created_at),
                    c.payload
                ])?;
                tx.prepare_cached(
                    "DELETE FROM journal_checkpoints WHERE user_key = ?1 AND session_id = ?2
                     AND rowid NOT IN (SELECT rowid FROM journal_checkpoints
                         WHERE user_key = ?1 AND session_id = ?2 ORDER BY rowid DESC LIMIT ?3)",
                )?
                .execute(params![
                    scope.user.storage_key(),
                    scope.session.as_str(),
                    i64::try_from(keep).unwrap_or(i64::MAX)
                ])?;
                Ok(())
            })();
            answer(reply, r)
        }
        Op::Checkpoints(scope, limit, reply) => {
            let r = tx
                .prepare_cached(
                    "SELECT checkpoint_id, turn, created_at, '' FROM journal_checkpoints
                     WHERE user_key = ?1 AND session_id = ?2 ORDER BY rowid DESC LIMIT ?3",
                )
                .and_then(|mut s| {
                    s.query_map(
                        params![
                            scope.user.storage_key(),
                            scope.session.as_str(),
                            i64::try_from(limit).unwrap_or(i64::MAX)
                        ],
                        checkpoint_row,
                    )?
                    .collect()
                });
            answer(reply, r)
        }
        Op::Checkpoint(scope, id, reply) => {
            let r = tx
                .prepare_cached(
                    "SELECT checkpoint_id, turn, created_at, payload FROM journal_checkpoints
                     WHERE user_key = ?1 AND session_id = ?2 AND (?3 IS NULL OR checkpoint_id = ?3)
                     ORDER BY rowid DESC LIMIT 1",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![scope.user.storage_key(), scope.session.as_str(), id],
                        checkpoint_row,
                    )
                    .optional()
                });
            answer(reply, r)
        }
        Op::SendSignal(scope, name, payload, reply) => {
            let r = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO journal_signals (user_key, session_id, name, payload, sent_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        scope.user.storage_key(),
                        scope.session.as_str(),
                        name,
                        payload,
                        micros(Utc::now())
                    ])
                });
            answer(reply, r.map(drop))
        }
        Op::TakeSignal(scope, name, epoch, key, reply) => {
            let r = (|| {
                let payload: Option<String> = tx
                    .prepare_cached(
                        "DELETE FROM journal_signals WHERE user_key = ?1 AND session_id = ?2 AND name = ?3
                         RETURNING payload",
                    )?
                    .query_row(
                        params![scope.user.storage_key(), scope.session.as_str(), name],
                        |row| row.get(0),
                    )
                    .optional()?;
                if let Some(payload) = &payload {
                    record(tx, &scope, epoch, &key, payload)?;
                }
                Ok(payload)
            })();
            answer(reply, r)
        }
        Op::Prune(prune, reply) => answer_with(reply, prune_in(tx, &prune)),
        Op::Flush(reply) => {
            let earlier = deferred
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            answer_with(reply, earlier.map_or(Ok(()), Err))
        }
    }
}

fn prune_in(tx: &rusqlite::Transaction<'_>, prune: &Prune) -> Result<Pruned, JournalError> {
    if prune.older_than.is_none() && prune.scope.is_none() {
        return Err(JournalError::UnboundedPrune);
    }
    let cut = prune.older_than.map(micros);
    let (user, session) = match &prune.scope {
        Some(s) => (Some(s.user.storage_key()), Some(s.session.as_str())),
        None => (None, None),
    };
    let run = |sql: &str| -> Result<u64, JournalError> {
        let n = tx
            .execute(sql, params![cut, user, session])
            .map_err(backend_error)?;
        Ok(n as u64)
    };
    let scope_filter = "(?2 IS NULL OR (user_key = ?2 AND session_id = ?3))";
    let old_runs = format!(
        "SELECT user_key, session_id, epoch FROM journal_runs WHERE {scope_filter}
         AND (?1 IS NULL OR COALESCE(finished_at, started_at) < ?1)"
    );
    let steps = run(&format!(
        "DELETE FROM journal_steps WHERE (user_key, session_id, epoch) IN ({old_runs})"
    ))?;
    let runs = run(&format!(
        "DELETE FROM journal_runs WHERE (user_key, session_id, epoch) IN ({old_runs})"
    ))?;
    let checkpoints = run(&format!(
        "DELETE FROM journal_checkpoints WHERE {scope_filter} AND (?1 IS NULL OR created_at < ?1)"
    ))?;
    let signals = run(&format!(
        "DELETE FROM journal_signals WHERE {scope_filter} AND (?1 IS NULL OR sent_at < ?1)"
    ))?;
    Ok(Pruned {
        runs,
        steps,
        checkpoints,
        signals,
    })
}

#[async_trait]
impl Journal for SqliteJournal {
    fn backend(&self) -> &str {
        BACKEND
    }

    async fn last_run(&self, scope: &Scope) -> Result<Option<RunRecord>, JournalError> {
        self.ask(|r| Op::LastRun(scope.clone(), r)).await
    }

    async fn start_run(&self, scope: &Scope, run: &RunRecord) -> Result<(), JournalError> {
        self.ask(|r| Op::StartRun(scope.clone(), run.clone(), r))
            .await
    }

    async fn finish_run(&self, scope: &Scope, epoch: u64) -> Result<(), JournalError> {
        if self.durability != Durability::Batched {
            return self
                .ask(|r| Op::FinishRun(scope.clone(), epoch, Some(r)))
                .await;
        }
        // Batched: queued behind the run's steps like they are. A failed
        // earlier commit is reported now; if the process dies before this
        // commits, the next request with the same input replays the
        // recorded steps and finishes the run then.
        self.take_deferred()?;
        self.tx
            .send(Op::FinishRun(scope.clone(), epoch, None))
            .map_err(|_| writer_gone())
    }

    async fn runs(&self, scope: &Scope) -> Result<Vec<RunRecord>, JournalError> {
        self.ask(|r| Op::Runs(scope.clone(), r)).await
    }

    async fn steps(
        &self,
        scope: &Scope,
        epoch: Option<u64>,
    ) -> Result<Vec<StepRecord>, JournalError> {
        self.ask(|r| Op::Steps(scope.clone(), epoch, r)).await
    }

    async fn record(
        &self,
        scope: &Scope,
        epoch: u64,
        key: &str,
        value: &str,
    ) -> Result<(), JournalError> {
        match self.durability {
            Durability::Full | Durability::Committed => {
                self.ask(|reply| Op::Record {
                    scope: scope.clone(),
                    epoch,
                    key: key.to_owned(),
                    value: value.to_owned(),
                    reply: Some(reply),
                })
                .await
            }
            Durability::Batched => {
                self.take_deferred()?;
                self.tx
                    .send(Op::Record {
                        scope: scope.clone(),
                        epoch,
                        key: key.to_owned(),
                        value: value.to_owned(),
                        reply: None,
                    })
                    .map_err(|_| writer_gone())
            }
        }
    }

    async fn put_checkpoint(
        &self,
        scope: &Scope,
        checkpoint: &CheckpointRecord,
        keep: usize,
    ) -> Result<(), JournalError> {
        self.ask(|r| Op::PutCheckpoint(scope.clone(), checkpoint.clone(), keep, r))
            .await
    }

    async fn checkpoints(
        &self,
        scope: &Scope,
        limit: usize,
    ) -> Result<Vec<CheckpointRecord>, JournalError> {
        self.ask(|r| Op::Checkpoints(scope.clone(), limit, r)).await
    }

    async fn checkpoint(
        &self,
        scope: &Scope,
        id: Option<&str>,
    ) -> Result<Option<CheckpointRecord>, JournalError> {
        self.ask(|r| Op::Checkpoint(scope.clone(), id.map(str::to_owned), r))
            .await
    }

    async fn send_signal(
        &self,
        scope: &Scope,
        name: &str,
        payload: &str,
    ) -> Result<(), JournalError> {
        self.ask(|r| Op::SendSignal(scope.clone(), name.to_owned(), payload.to_owned(), r))
            .await
    }

    async fn take_signal(
        &self,
        scope: &Scope,
        name: &str,
        epoch: u64,
        key: &str,
    ) -> Result<Option<String>, JournalError> {
        self.ask(|r| Op::TakeSignal(scope.clone(), name.to_owned(), epoch, key.to_owned(), r))
            .await
    }

    async fn prune(&self, prune: &Prune) -> Result<Pruned, JournalError> {
        self.ask(|r| Op::Prune(prune.clone(), r)).await
    }

    async fn flush(&self) -> Result<(), JournalError> {
        self.ask(Op::Flush).await
    }
}
