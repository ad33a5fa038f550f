//! [`SqliteJournal`]: the durable-run journal in one SQLite file.
//!
//! A call runs on the caller's thread when the connection is free and
//! nothing is queued ahead of it: an operation is a few microseconds of
//! SQLite work, and a round trip to another thread costs more than that (on
//! a VM a thread wake-up alone is tens of microseconds). Otherwise (the
//! connection is busy, or another process holds the file's write lock) the
//! call is queued to the writer thread, which runs everything queued in one
//! transaction and commits once: concurrent runs share a commit, and no
//! runtime thread ever waits for the file.
//!
//! The writer thread also commits what is not committed on the spot: a
//! batched journal's writes, at most [`BATCH_WINDOW`] after the first of
//! them, and a synced journal's writes, at once (a synced commit never runs
//! on a runtime thread). It checkpoints the WAL on its own connection, so
//! that no caller's commit pays for a checkpoint. The file is in WAL mode.

use loomflow_core::redact::Redacted;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use loomflow_core::journal::{
    CheckpointRecord, Journal, JournalError, Prune, Pruned, RunRecord, Scope, StepRecord,
};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::busy::is_busy;

const BACKEND: &str = "sqlite";

/// How long a batched journal's first uncommitted write waits for company
/// before the writer thread commits it.
pub const BATCH_WINDOW: Duration = Duration::from_millis(1);

/// How long a call on the caller's thread waits for another process's write
/// lock before it is queued to the writer thread instead.
const INLINE_LOCK_WAIT: Duration = Duration::from_millis(1);

/// How long the writer thread waits for another process's write lock.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Commits between two WAL checkpoints (a commit is a few pages).
const CHECKPOINT_EVERY: u32 = 256;

/// The most operations the writer thread runs in one transaction.
const MAX_BATCH: usize = 512;

/// How each journal write reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// A step is recorded once its transaction is committed and synced
    /// (`synchronous = FULL`): a step the run saw recorded survives a power
    /// cut. Concurrent steps share commits: the writer thread syncs every
    /// write waiting at once.
    ///
    /// In every mode, starting and finishing a run do not wait for a commit
    /// of their own: they are committed with the run's next step, or by the
    /// writer thread within `BATCH_WINDOW` (1 ms). The write lock held meanwhile
    /// keeps other processes off the run; a run whose start is lost in a
    /// crash has no steps either, and one whose finish is lost is replayed
    /// from its recorded steps and finished by the next request.
    #[default]
    Full,
    /// A step is recorded once its transaction is committed to the WAL
    /// (`synchronous = NORMAL`), without waiting for the disk: a step the
    /// run saw recorded survives the process being killed (SIGKILL, OOM,
    /// a panic), but a power cut or kernel crash can lose the last commits,
    /// whose steps then run again on resume. The usual choice for a
    /// service: a crashed process is the common failure. A lone write
    /// commits on the caller's thread; concurrent ones share commits.
    Committed,
    /// A step is written and the run goes on; the writer thread commits
    /// within `BATCH_WINDOW` everything written since the last commit,
    /// in one transaction (`synchronous = NORMAL`). A crash can lose the
    /// last window's steps, which then run again on resume (runs are
    /// at-least-once either way; tools use their idempotency key).
    /// A commit that fails reaches the run as the error of its next
    /// batched call. Checkpoints and signals are committed before their
    /// call returns, and [`flush`](loomflow_core::journal::Journal::flush)
    /// commits everything written.
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

impl Op {
    /// What the operation needs from the transaction it runs in.
    fn need(&self, durability: Durability) -> Need {
        match self {
            Op::LastRun(..) | Op::Runs(..) | Op::Steps(..) => Need::Read,
            Op::Checkpoints(..) | Op::Checkpoint(..) => Need::Read,
            // Neither needs its own commit: the write lock, held until the
            // next commit, already keeps other processes off the run; a run
            // whose start is lost has no steps either, and one whose finish
            // is lost is replayed from its steps and finished again.
            Op::StartRun(..) | Op::FinishRun(..) => Need::Write,
            Op::Record { .. } if durability == Durability::Batched => Need::Write,
            _ => Need::Commit,
        }
    }

    /// Answers the operation with `error` without running it.
    fn fail(self, error: JournalError, deferred: &Mutex<Option<JournalError>>) {
        fn send<T>(reply: Reply<T>, e: JournalError) {
            let _ = reply.send(Err(e));
        }
        match self {
            Op::LastRun(_, r) => send(r, error),
            Op::StartRun(_, _, r) => send(r, error),
            Op::Runs(_, r) => send(r, error),
            Op::Steps(_, _, r) => send(r, error),
            Op::PutCheckpoint(_, _, _, r) => send(r, error),
            Op::Checkpoints(_, _, r) => send(r, error),
            Op::Checkpoint(_, _, r) => send(r, error),
            Op::SendSignal(_, _, _, r) => send(r, error),
            Op::TakeSignal(_, _, _, _, r) => send(r, error),
            Op::Prune(_, r) => send(r, error),
            Op::Flush(r) => send(r, error),
            Op::FinishRun(_, _, Some(r)) | Op::Record { reply: Some(r), .. } => send(r, error),
            Op::FinishRun(_, _, None) | Op::Record { reply: None, .. } => {
                lock(deferred).get_or_insert(error);
            }
        }
    }
}

/// What an operation needs from the transaction it runs in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Nothing: it reads (and sees what this connection wrote, committed
    /// or not).
    Read,
    /// The write lock; the writer thread commits it later.
    Write,
    /// A commit before it is answered.
    Commit,
}

/// Where an operation runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// On the caller's (runtime) thread: must not wait long.
    Caller,
    /// On the writer thread: may wait for locks and the disk.
    WriterThread,
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
///
/// Dropping the last clone commits whatever is still uncommitted and stops
/// the writer thread.
#[derive(Clone)]
pub struct SqliteJournal {
    handle: Arc<Handle>,
}

/// Owned by the clones of one journal; stops the writer thread when the
/// last one goes.
struct Handle {
    shared: Arc<Shared>,
    /// `None` only while dropping.
    queue: Option<mpsc::Sender<Msg>>,
    path: PathBuf,
    thread: Option<thread::JoinHandle<()>>,
}

/// What the writer thread receives.
enum Msg {
    /// An operation to run.
    Op(Op),
    /// Something was written on a caller's thread that the writer commits
    /// (a batched write's window, a synced write).
    Wake,
}

struct Shared {
    writer: Mutex<Writer>,
    /// Operations sent to the writer thread and not run yet. A caller runs
    /// its operation on its own thread only when this is zero, so that it
    /// never overtakes one queued before it.
    queued: AtomicUsize,
    durability: Durability,
    /// The first failure of a batched write nobody waited for; reported by
    /// the next batched call, `finish_run` or `flush`.
    deferred: Mutex<Option<JournalError>>,
}

struct Writer {
    conn: Connection,
    /// A transaction is open (and holds the file's write lock).
    open: bool,
    /// When the open transaction's first batched write was made.
    opened_at: Option<Instant>,
    /// Answers to give once the open transaction is committed.
    waiting: Vec<Answer>,
    /// Commits since the last checkpoint.
    commits: u32,
}

impl Writer {
    fn begin(&mut self, place: Place) -> rusqlite::Result<()> {
        if self.open {
            return Ok(());
        }
        match place {
            Place::Caller => self.conn.execute_batch("BEGIN IMMEDIATE")?,
            Place::WriterThread => {
                self.conn.busy_timeout(LOCK_TIMEOUT)?;
                let r = self.conn.execute_batch("BEGIN IMMEDIATE");
                self.conn.busy_timeout(INLINE_LOCK_WAIT)?;
                r?;
            }
        }
        self.open = true;
        Ok(())
    }

    /// Commits the open transaction. The outcome answers everyone who
    /// waited for it; give it once the connection is unlocked, so that a
    /// caller woken by it does not find the connection still held.
    fn commit(&mut self, deferred: &Mutex<Option<JournalError>>) -> Commit {
        if !self.open {
            return Commit::default();
        }
        self.open = false;
        self.opened_at = None;
        self.commits = self.commits.saturating_add(1);
        let failed = match self.conn.execute_batch("COMMIT") {
            Ok(()) => None,
            Err(e) => {
                // The transaction's writes are lost: whoever waits hears
                // why, and so does the next call for the writes nobody
                // waited for.
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                tracing::error!(error = %Redacted(&e), "journal commit failed");
                let message = format!("commit failed: {e}");
                defer(deferred, || message.clone());
                Some(message)
            }
        };
        Commit {
            failed,
            waiting: std::mem::take(&mut self.waiting),
        }
    }
}

/// The outcome of a commit, and who waited for it.
#[derive(Default)]
struct Commit {
    failed: Option<String>,
    waiting: Vec<Answer>,
}

impl Commit {
    fn answer_waiting(self) -> Option<String> {
        for answer in self.waiting {
            answer(self.failed.as_deref());
        }
        self.failed
    }
}

impl std::fmt::Debug for SqliteJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteJournal")
            .field("path", &self.handle.path)
            .field("durability", &self.handle.shared.durability)
            .finish_non_exhaustive()
    }
}

fn backend_error(e: impl std::fmt::Display) -> JournalError {
    JournalError::backend(BACKEND, e)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn open_connection(path: &Path, sync: &str) -> Result<Connection, JournalError> {
    let conn = Connection::open(path)
        .map_err(|e| backend_error(format!("cannot open `{}`: {e}", path.display())))?;
    // Wait for other processes opening the same file (switching to WAL
    // and creating the tables take a write lock) instead of failing.
    conn.busy_timeout(LOCK_TIMEOUT)
        .map_err(|e| backend_error(format!("cannot configure `{}`: {e}", path.display())))?;
    crate::busy::patiently(LOCK_TIMEOUT, || {
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync};"
        ))
    })
    .map_err(|e| backend_error(format!("cannot configure `{}`: {e}", path.display())))?;
    Ok(conn)
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
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Committed | Durability::Batched => "NORMAL",
        };
        let conn = open_connection(&path, sync)?;
        crate::busy::patiently(LOCK_TIMEOUT, || migrate(&conn)).map_err(|e| {
            backend_error(format!(
                "cannot create the tables in `{}`: {e}",
                path.display()
            ))
        })?;
        // The writer thread checkpoints; no caller's commit does.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0")
            .and_then(|()| conn.busy_timeout(INLINE_LOCK_WAIT))
            .map_err(|e| backend_error(format!("cannot configure `{}`: {e}", path.display())))?;
        let checkpointer = open_connection(&path, sync)?;
        let shared = Arc::new(Shared {
            writer: Mutex::new(Writer {
                conn,
                open: false,
                opened_at: None,
                waiting: Vec::new(),
                commits: 0,
            }),
            queued: AtomicUsize::new(0),
            durability,
            deferred: Mutex::new(None),
        });
        let (queue, rx) = mpsc::channel();
        let for_writer = shared.clone();
        let thread = thread::Builder::new()
            .name("loomflow-sqlite-journal".into())
            .spawn(move || writer(&for_writer, &rx, &checkpointer))
            .map_err(backend_error)?;
        Ok(Self {
            handle: Arc::new(Handle {
                shared,
                queue: Some(queue),
                path,
                thread: Some(thread),
            }),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.handle.path
    }

    async fn ask<T>(&self, op: impl FnOnce(Reply<T>) -> Op) -> Result<T, JournalError> {
        let (reply, rx) = oneshot::channel();
        self.submit(op(reply));
        rx.await.map_err(|_| writer_gone())?
    }

    /// Runs `op` on this thread if the connection is free and nothing is
    /// queued; queues it to the writer thread otherwise. The answer goes to
    /// the op's reply.
    fn submit(&self, op: Op) {
        let shared = &self.handle.shared;
        let writer = match shared.writer.try_lock() {
            Ok(writer) => Some(writer),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        let op = match writer {
            Some(writer) if shared.queued.load(Ordering::Acquire) == 0 => {
                match shared.run_here(writer, op) {
                    Ok(wake_writer) => {
                        if wake_writer {
                            // Only fails once the thread is gone, and then
                            // the journal's clones are gone too.
                            let _ = self.handle.send(Msg::Wake);
                        }
                        return;
                    }
                    Err(op) => op,
                }
            }
            _ => op,
        };
        shared.queued.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::SendError(Msg::Op(op))) = self.handle.send(Msg::Op(op)) {
            shared.queued.fetch_sub(1, Ordering::AcqRel);
            op.fail(writer_gone(), &shared.deferred);
        }
    }

    fn take_deferred(&self) -> Result<(), JournalError> {
        match lock(&self.handle.shared.deferred).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Handle {
    fn send(&self, msg: Msg) -> Result<(), mpsc::SendError<Msg>> {
        match &self.queue {
            Some(queue) => queue.send(msg),
            None => Err(mpsc::SendError(msg)),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // The writer thread commits what is left, checkpoints and ends once
        // the queue is closed; waiting for it means a reopened file sees
        // everything this journal wrote.
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    /// Runs `op` on the caller's thread with the connection locked, then
    /// unlocks it. Says whether the writer thread has a commit to make; gives
    /// the op back if another process holds the file's write lock.
    fn run_here(&self, mut writer: MutexGuard<'_, Writer>, op: Op) -> Result<bool, Op> {
        let need = op.need(self.durability);
        if need != Need::Read {
            if let Err(e) = writer.begin(Place::Caller) {
                if is_busy(&e) {
                    return Err(op);
                }
                drop(writer);
                op.fail(
                    backend_error(format!("cannot start a transaction: {e}")),
                    &self.deferred,
                );
                return Ok(false);
            }
        }
        let answer = apply(&writer.conn, op, &self.deferred);
        let wake_writer = match need {
            Need::Read => {
                drop(writer);
                answer(None);
                false
            }
            Need::Write => {
                let first = writer.opened_at.is_none();
                if first {
                    writer.opened_at = Some(Instant::now());
                }
                drop(writer);
                answer(None);
                first
            }
            // A synced commit is the writer thread's: here it would stall a
            // runtime thread, and there one sync serves every write waiting.
            Need::Commit if self.durability == Durability::Full => {
                writer.waiting.push(answer);
                true
            }
            Need::Commit => {
                let commit = writer.commit(&self.deferred);
                let checkpoint_due = writer.commits >= CHECKPOINT_EVERY;
                drop(writer);
                let failed = commit.answer_waiting();
                answer(failed.as_deref());
                checkpoint_due
            }
        };
        Ok(wake_writer)
    }
}

/// The writer thread: runs queued operations in batches, one transaction
/// per batch, commits once per batch (and answers the operations waiting
/// for it after the commit); commits what callers wrote on their own
/// threads when their window is over (batched) or at once (synced); and
/// checkpoints the WAL every [`CHECKPOINT_EVERY`] commits.
fn writer(shared: &Shared, rx: &mpsc::Receiver<Msg>, checkpointer: &Connection) {
    let mut batch: Vec<Op> = Vec::with_capacity(64);
    let mut deadline: Option<Instant> = None;
    loop {
        let first = match deadline {
            Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(msg) => Some(msg),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(msg) => Some(msg),
                Err(mpsc::RecvError) => break,
            },
        };
        if let Some(Msg::Op(op)) = first {
            batch.push(op);
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Msg::Op(op)) => batch.push(op),
                Ok(Msg::Wake) => {}
                Err(_) => break,
            }
        }
        let ran = !batch.is_empty();
        let mut writer = lock(&shared.writer);
        for op in batch.drain(..) {
            run_queued(shared, &mut writer, op);
            shared.queued.fetch_sub(1, Ordering::AcqRel);
        }
        let due = ran
            || !writer.waiting.is_empty()
            || writer
                .opened_at
                .is_some_and(|t| t.elapsed() >= BATCH_WINDOW);
        let commit = if due {
            writer.commit(&shared.deferred)
        } else {
            Commit::default()
        };
        deadline = writer.opened_at.map(|t| t + BATCH_WINDOW);
        let checkpoint = writer.commits >= CHECKPOINT_EVERY;
        if checkpoint {
            writer.commits = 0;
        }
        drop(writer);
        commit.answer_waiting();
        if checkpoint {
            run_checkpoint(checkpointer);
        }
    }
    // The journal is dropped: commit what is left.
    let mut writer = lock(&shared.writer);
    let commit = writer.commit(&shared.deferred);
    let checkpoint = writer.commits > 0;
    drop(writer);
    commit.answer_waiting();
    if checkpoint {
        run_checkpoint(checkpointer);
    }
}

/// Runs one queued operation in the writer thread's transaction. Reads and
/// batched writes are answered at once; the rest once the batch commits.
fn run_queued(shared: &Shared, writer: &mut Writer, op: Op) {
    let need = op.need(shared.durability);
    if need != Need::Read {
        if let Err(e) = writer.begin(Place::WriterThread) {
            op.fail(
                backend_error(format!("cannot start a transaction: {e}")),
                &shared.deferred,
            );
            return;
        }
    }
    let answer = apply(&writer.conn, op, &shared.deferred);
    match need {
        Need::Read | Need::Write => answer(None),
        Need::Commit => writer.waiting.push(answer),
    }
}

/// Copies what it can of the WAL into the database without waiting for
/// anyone (PASSIVE).
fn run_checkpoint(checkpointer: &Connection) {
    if let Err(e) = checkpointer.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
        tracing::warn!(error = %Redacted(&e), "journal checkpoint failed");
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

/// The error of a call whose operation was dropped unanswered (the writer
/// thread is gone).
fn writer_gone() -> JournalError {
    backend_error("the journal's writer thread has stopped")
}

/// Keeps the first failure nobody waited for, for the next call that
/// reports deferred failures (`finish_run`, `flush`, a batched `record`).
fn defer(deferred: &Mutex<Option<JournalError>>, message: impl FnOnce() -> String) {
    lock(deferred).get_or_insert_with(|| backend_error(message()));
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
    tx: &Connection,
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

fn apply(tx: &Connection, op: Op, deferred: &Mutex<Option<JournalError>>) -> Answer {
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
            let earlier = lock(deferred).take();
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
            let earlier = lock(deferred).take();
            answer_with(reply, earlier.map_or(Ok(()), Err))
        }
    }
}

fn prune_in(tx: &Connection, prune: &Prune) -> Result<Pruned, JournalError> {
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
        if self.handle.shared.durability != Durability::Batched {
            return self
                .ask(|r| Op::FinishRun(scope.clone(), epoch, Some(r)))
                .await;
        }
        // Batched: queued behind the run's steps like they are. A failed
        // earlier commit is reported now; if the process dies before this
        // commits, the next request with the same input replays the
        // recorded steps and finishes the run then.
        self.take_deferred()?;
        self.submit(Op::FinishRun(scope.clone(), epoch, None));
        Ok(())
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
        match self.handle.shared.durability {
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
                self.submit(Op::Record {
                    scope: scope.clone(),
                    epoch,
                    key: key.to_owned(),
                    value: value.to_owned(),
                    reply: None,
                });
                Ok(())
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
