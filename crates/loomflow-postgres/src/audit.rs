//! [`PostgresAuditLog`]: the signed, hash-chained audit log in Postgres.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_postgres::Pool;
use loomflow_core::audit::{
    AuditEntry, AuditError, AuditLog, AuditProblem, AuditQuery, AuditRecord, AuditRow, AuditSecret,
    DEFAULT_LOG_NAME, GENESIS_HASH, Verification, readable_entries, verify_stored,
};
use loomflow_core::journal::redact_url;
use tokio_postgres::types::ToSql;

use crate::journal::{client, describe, migrate, pool};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS loomflow_audit (
    log TEXT NOT NULL,
    seq BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
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

/// An audit log in Postgres (table `loomflow_audit`), shared by every
/// process connected to the database.
///
/// One database holds several logs told apart by name
/// ([`connect_log`](Self::connect_log); `"main"` by default), each with its
/// own seq and chain. An append takes a transaction-scoped advisory lock on
/// the log's name before it reads the chain's tail, so any number of
/// processes on any number of machines append without repeating a seq or
/// forking the chain. The payload is kept as the JSON text that was signed
/// (not `jsonb`, which would rewrite numbers).
///
/// ```no_run
/// # async fn demo() -> Result<(), loomflow_core::audit::AuditError> {
/// use loomflow_core::audit::{AuditLog, AuditRecord, AuditSecret};
/// use loomflow_postgres::PostgresAuditLog;
///
/// let secret = AuditSecret::from_env("AUDIT_KEY").unwrap();
/// let log = PostgresAuditLog::connect("postgres://app@db.internal/audit", secret).await?;
/// let alice = loomflow_core::UserId::new("alice").unwrap();
/// log.append(AuditRecord::new(&alice, "s1", "user", "run_started")).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresAuditLog {
    pool: Pool,
    /// The URL with its password masked, for messages.
    url: String,
    log: String,
    secret: AuditSecret,
}

impl PostgresAuditLog {
    /// Connects to `url`, creates the table if needed, and writes the log
    /// named `"main"`.
    pub async fn connect(url: &str, secret: AuditSecret) -> Result<Self, AuditError> {
        Self::connect_log(url, DEFAULT_LOG_NAME, secret).await
    }

    /// Connects to `url` and writes the log named `log` (a new log per
    /// signing key is how keys are rotated).
    pub async fn connect_log(
        url: &str,
        log: impl Into<String>,
        secret: AuditSecret,
    ) -> Result<Self, AuditError> {
        let redacted = redact_url(url);
        let storage = |e: loomflow_core::JournalError| AuditError::storage(&redacted, e);
        let pool = pool(url, 4).map_err(storage)?;
        let schema = format!("{SCHEMA}{}", AuditRow::INDEXES);
        migrate(&pool, url, &schema).await.map_err(storage)?;
        Ok(Self {
            pool,
            url: redacted,
            log: log.into(),
            secret,
        })
    }

    /// The log's name.
    pub fn log_name(&self) -> &str {
        &self.log
    }

    fn error(&self, e: impl std::fmt::Display) -> AuditError {
        AuditError::storage(&self.url, e)
    }

    fn db_error(&self, e: tokio_postgres::Error) -> AuditError {
        self.error(describe(&e))
    }

    async fn conn(&self) -> Result<deadpool_postgres::Object, AuditError> {
        client(&self.pool, &self.url)
            .await
            .map_err(|e| self.error(e))
    }

    async fn rows(
        &self,
        query: &AuditQuery,
    ) -> Result<Vec<Result<AuditEntry, AuditProblem>>, AuditError> {
        let mut sql = format!("SELECT {COLUMNS} FROM loomflow_audit WHERE log = $1");
        let mut args: Vec<&(dyn ToSql + Sync)> = vec![&self.log];
        if let Some(session) = &query.session_id {
            args.push(session);
            sql.push_str(&format!(" AND session_id = ${}", args.len()));
        }
        if let Some(action) = &query.action {
            args.push(action);
            sql.push_str(&format!(" AND action = ${}", args.len()));
        }
        let user;
        if let Some(u) = &query.user_id {
            match u.as_str() {
                Some(id) => {
                    user = id.to_owned();
                    args.push(&user);
                    sql.push_str(&format!(" AND user_id = ${}", args.len()));
                }
                None => sql.push_str(" AND user_id IS NULL"),
            }
        }
        sql.push_str(" ORDER BY seq");
        let conn = self.conn().await?;
        let rows = conn
            .query(&sql, &args)
            .await
            .map_err(|e| self.db_error(e))?;
        rows.iter()
            .map(|r| {
                let created_at: DateTime<Utc> = r.try_get(1).map_err(|e| self.db_error(e))?;
                let row = AuditRow {
                    seq: r.try_get(0).map_err(|e| self.db_error(e))?,
                    timestamp: created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                    session_id: r.try_get(2).map_err(|e| self.db_error(e))?,
                    user_id: r.try_get(3).map_err(|e| self.db_error(e))?,
                    actor: r.try_get(4).map_err(|e| self.db_error(e))?,
                    action: r.try_get(5).map_err(|e| self.db_error(e))?,
                    payload: r.try_get(6).map_err(|e| self.db_error(e))?,
                    signature: r.try_get(7).map_err(|e| self.db_error(e))?,
                    prev_hash: r.try_get(8).map_err(|e| self.db_error(e))?,
                };
                Ok(row.into_entry())
            })
            .collect()
    }
}

#[async_trait]
impl AuditLog for PostgresAuditLog {
    async fn append(&self, record: AuditRecord) -> Result<AuditEntry, AuditError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| self.db_error(e))?;
        // Appends to one log queue here, across every process; the lock
        // goes with the transaction.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('loomflow_audit:' || $1))",
            &[&self.log],
        )
        .await
        .map_err(|e| self.db_error(e))?;
        let tail = tx
            .query_opt(
                "SELECT seq, signature FROM loomflow_audit WHERE log = $1 \
                 ORDER BY seq DESC LIMIT 1",
                &[&self.log],
            )
            .await
            .map_err(|e| self.db_error(e))?;
        let (seq, prev) = match tail {
            Some(row) => {
                let seq: i64 = row.try_get(0).map_err(|e| self.db_error(e))?;
                let head: String = row.try_get(1).map_err(|e| self.db_error(e))?;
                (u64::try_from(seq).unwrap_or(0) + 1, head)
            }
            None => (1, GENESIS_HASH.to_owned()),
        };
        let entry = self.secret.seal(record, seq, prev);
        let row = AuditRow::from_entry(&entry);
        tx.execute(
            &format!(
                "INSERT INTO loomflow_audit (log, {COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ),
            &[
                &self.log,
                &row.seq,
                &entry.timestamp,
                &row.session_id,
                &row.user_id,
                &row.actor,
                &row.action,
                &row.payload,
                &row.signature,
                &row.prev_hash,
            ],
        )
        .await
        .map_err(|e| self.db_error(e))?;
        tx.commit().await.map_err(|e| self.db_error(e))?;
        Ok(entry)
    }

    async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, AuditError> {
        let rows = self.rows(query).await?;
        Ok(readable_entries(
            rows,
            &format!("{} (log {})", self.url, self.log),
        ))
    }

    async fn verify(&self, expected_head: Option<&str>) -> Result<Verification, AuditError> {
        let rows = self.rows(&AuditQuery::all()).await?;
        Ok(verify_stored(rows, &self.secret, expected_head))
    }
}
