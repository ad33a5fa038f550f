//! [`SqliteAuditLog`]: the signed, hash-chained audit log in a SQLite file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use loomflow_core::audit::{
    AuditEntry, AuditError, AuditLog, AuditQuery, AuditRecord, AuditRow, AuditSecret,
    DEFAULT_LOG_NAME, GENESIS_HASH, Verification, readable_entries, verify_stored,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// How long an append waits for another connection's (or process's) write
/// lock before it fails.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS loomflow_audit (
    log TEXT NOT NULL,
    seq INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    session_id TEXT NOT NULL,
    user_id TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    payload TEXT NOT NULL,
    signature TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    PRIMARY KEY (log, seq)
);
";

const COLUMNS: &str = AuditRow::COLUMNS;

/// An audit log in a SQLite file (table `loomflow_audit`; the file can be
/// the journal's).
///
/// One file holds several logs told apart by name
/// ([`open_log`](Self::open_log); `"main"` by default), each with its own
/// seq and chain.
/// An append runs in a `BEGIN IMMEDIATE` transaction: it takes the file's
/// write lock before reading the chain's tail, so connections in any number
/// of processes append without repeating a seq or forking the chain.
/// Commits are in WAL mode with `synchronous = NORMAL`: an entry survives
/// the process being killed, not a power cut (the recorded head reports
/// lost entries).
///
/// ```
/// use loomflow_core::audit::{AuditLog, AuditQuery, AuditRecord, AuditSecret};
/// use loomflow_core::UserId;
/// use loomflow_sqlite::SqliteAuditLog;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let log = SqliteAuditLog::open(dir.path().join("audit.db"), AuditSecret::new("k3y")).unwrap();
/// let bob = UserId::new("bob").unwrap();
/// log.append(AuditRecord::new(&bob, "s1", "model", "tool_call").with("tool", "search")).await.unwrap();
/// let calls = log.query(&AuditQuery::all().action("tool_call")).await.unwrap();
/// assert_eq!(calls[0].payload["tool"], "search");
/// assert!(log.verify(None).await.unwrap().ok);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct SqliteAuditLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    log: String,
    secret: AuditSecret,
    conn: Mutex<Connection>,
}

impl SqliteAuditLog {
    /// Opens (creating it if needed) the audit table in the file at `path`,
    /// writing the log named `"main"`.
    pub fn open(path: impl AsRef<Path>, secret: AuditSecret) -> Result<Self, AuditError> {
        Self::open_log(path, DEFAULT_LOG_NAME, secret)
    }

    /// Opens the log named `log` in the file at `path` (a new log per
    /// signing key is how keys are rotated).
    pub fn open_log(
        path: impl AsRef<Path>,
        log: impl Into<String>,
        secret: AuditSecret,
    ) -> Result<Self, AuditError> {
        let path = path.as_ref().to_path_buf();
        let location = path.display().to_string();
        let at = |e: rusqlite::Error| AuditError::storage(&location, e);
        let conn = Connection::open(&path).map_err(at)?;
        conn.busy_timeout(LOCK_TIMEOUT).map_err(at)?;
        crate::busy::patiently(LOCK_TIMEOUT, || {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(SCHEMA)?;
            conn.execute_batch(AuditRow::INDEXES)
        })
        .map_err(at)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                log: log.into(),
                secret,
                conn: Mutex::new(conn),
            }),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The log's name.
    pub fn log_name(&self) -> &str {
        &self.inner.log
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner, &mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, AuditError> {
        let inner = self.inner.clone();
        let location = self.inner.path.display().to_string();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&inner, &mut conn)
        })
        .await
        .map_err(|e| AuditError::storage(&location, e))?
        .map_err(|e| AuditError::storage(&location, e))
    }

    /// Every row of the log in seq order, decoded (or what is wrong).
    fn rows(
        conn: &Connection,
        log: &str,
        query: &AuditQuery,
    ) -> Result<Vec<Result<AuditEntry, loomflow_core::audit::AuditProblem>>, rusqlite::Error> {
        let mut sql = format!("SELECT {COLUMNS} FROM loomflow_audit WHERE log = ?1");
        let mut args: Vec<Option<String>> = vec![Some(log.to_owned())];
        if let Some(session) = &query.session_id {
            args.push(Some(session.clone()));
            sql.push_str(&format!(" AND session_id = ?{}", args.len()));
        }
        if let Some(action) = &query.action {
            args.push(Some(action.clone()));
            sql.push_str(&format!(" AND action = ?{}", args.len()));
        }
        if let Some(user) = &query.user_id {
            match user.as_str() {
                Some(id) => {
                    args.push(Some(id.to_owned()));
                    sql.push_str(&format!(" AND user_id = ?{}", args.len()));
                }
                None => sql.push_str(" AND user_id IS NULL"),
            }
        }
        sql.push_str(" ORDER BY seq");
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok(AuditRow {
                seq: r.get(0)?,
                timestamp: r.get(1)?,
                session_id: r.get(2)?,
                user_id: r.get(3)?,
                actor: r.get(4)?,
                action: r.get(5)?,
                payload: r.get(6)?,
                signature: r.get(7)?,
                prev_hash: r.get(8)?,
            })
        })?;
        rows.map(|row| row.map(AuditRow::into_entry)).collect()
    }
}

#[async_trait]
impl AuditLog for SqliteAuditLog {
    async fn append(&self, record: AuditRecord) -> Result<AuditEntry, AuditError> {
        self.blocking(move |inner, conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let tail: Option<(i64, String)> = tx
                .prepare_cached(
                    "SELECT seq, signature FROM loomflow_audit WHERE log = ?1 \
                     ORDER BY seq DESC LIMIT 1",
                )?
                .query_row(params![inner.log], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let (seq, prev) = match tail {
                Some((seq, head)) => (u64::try_from(seq).unwrap_or(0) + 1, head),
                None => (1, GENESIS_HASH.to_owned()),
            };
            let entry = inner.secret.seal(record, seq, prev);
            let row = AuditRow::from_entry(&entry);
            tx.prepare_cached(&format!(
                "INSERT INTO loomflow_audit (log, {COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ))?
            .execute(params![
                inner.log,
                row.seq,
                row.timestamp,
                row.session_id,
                row.user_id,
                row.actor,
                row.action,
                row.payload,
                row.signature,
                row.prev_hash
            ])?;
            tx.commit()?;
            Ok(entry)
        })
        .await
    }

    async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, AuditError> {
        let query = query.clone();
        let rows = self
            .blocking(move |inner, conn| Self::rows(conn, &inner.log, &query))
            .await?;
        Ok(readable_entries(
            rows,
            &format!("{} (log {})", self.inner.path.display(), self.inner.log),
        ))
    }

    async fn verify(&self, expected_head: Option<&str>) -> Result<Verification, AuditError> {
        let rows = self
            .blocking(move |inner, conn| Self::rows(conn, &inner.log, &AuditQuery::all()))
            .await?;
        Ok(verify_stored(rows, &self.inner.secret, expected_head))
    }
}
