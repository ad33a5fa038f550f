//! [`PostgresJournal`]: the durable-run journal in Postgres, shared by every
//! process that connects to the database.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use loomflow_core::journal::{
    CheckpointRecord, Journal, JournalError, Prune, Pruned, RunRecord, Scope, StepRecord,
    redact_url,
};
use tokio_postgres::NoTls;

pub(crate) const BACKEND: &str = "postgres";

pub(crate) fn pg_error(e: impl std::fmt::Display) -> JournalError {
    JournalError::backend(BACKEND, e)
}

/// What a driver error says, with the server's message and SQLSTATE when
/// the server sent one (the driver's own text is only "db error").
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let detail = db.detail().map(|d| format!(" ({d})")).unwrap_or_default();
            format!("{} [{}]{detail}", db.message(), db.code().code())
        }
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

pub(crate) fn db_error(e: tokio_postgres::Error) -> JournalError {
    pg_error(describe(&e))
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS loomflow_journal_runs (
    user_key TEXT NOT NULL,
    session_id TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    input TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    PRIMARY KEY (user_key, session_id, epoch)
);
CREATE TABLE IF NOT EXISTS loomflow_journal_steps (
    id BIGSERIAL PRIMARY KEY,
    user_key TEXT NOT NULL,
    session_id TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    step_key TEXT NOT NULL,
    value TEXT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (user_key, session_id, epoch, step_key)
);
CREATE TABLE IF NOT EXISTS loomflow_journal_checkpoints (
    id BIGSERIAL PRIMARY KEY,
    user_key TEXT NOT NULL,
    session_id TEXT NOT NULL,
    checkpoint_id TEXT NOT NULL,
    turn INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    payload TEXT NOT NULL,
    UNIQUE (user_key, session_id, checkpoint_id)
);
CREATE TABLE IF NOT EXISTS loomflow_journal_signals (
    user_key TEXT NOT NULL,
    session_id TEXT NOT NULL,
    name TEXT NOT NULL,
    payload TEXT NOT NULL,
    sent_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_key, session_id, name)
);
";

/// Connects a pool to `url` (password redacted in errors).
pub(crate) fn pool(url: &str, max_size: usize) -> Result<Pool, JournalError> {
    let config = tokio_postgres::Config::from_str(url).map_err(|e| {
        pg_error(format!(
            "`{}` is not a valid Postgres URL: {e}",
            redact_url(url)
        ))
    })?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(pg_error)
}

/// A connection from `pool`, or an error naming the (redacted) URL.
pub(crate) async fn client(
    pool: &Pool,
    url: &str,
) -> Result<deadpool_postgres::Object, JournalError> {
    pool.get()
        .await
        .map_err(|e| pg_error(format!("cannot connect to {}: {e}", redact_url(url))))
}

/// Runs `sql` under a transaction-scoped advisory lock, so processes
/// starting together do not race on `CREATE TABLE IF NOT EXISTS`.
pub(crate) async fn migrate(pool: &Pool, url: &str, sql: &str) -> Result<(), JournalError> {
    let mut conn = client(pool, url).await?;
    let tx = conn.transaction().await.map_err(db_error)?;
    tx.execute("SELECT pg_advisory_xact_lock(7431965502)", &[])
        .await
        .map_err(db_error)?;
    tx.batch_execute(sql).await.map_err(db_error)?;
    tx.commit().await.map_err(db_error)
}

/// The journal in Postgres: every process connected to the database shares
/// it, which is what lets a worker on another machine resume a run.
///
/// ```no_run
/// # async fn demo() -> Result<(), loomflow_core::JournalError> {
/// use std::sync::Arc;
/// use loomflow_postgres::PostgresJournal;
///
/// let journal = PostgresJournal::connect("postgres://app@db.internal/loomflow").await?;
/// let agent = loomflow_core::Agent::builder()
///     .model("echo")
///     .journal(Arc::new(journal))
///     .build()
///     .unwrap();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresJournal {
    pool: Pool,
    url: String,
}

impl std::fmt::Debug for PostgresJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresJournal")
            .field("url", &redact_url(&self.url))
            .finish_non_exhaustive()
    }
}

fn epoch_i64(epoch: u64) -> i64 {
    i64::try_from(epoch).unwrap_or(i64::MAX)
}

fn run_row(row: &tokio_postgres::Row) -> RunRecord {
    RunRecord {
        epoch: u64::try_from(row.get::<_, i64>(0)).unwrap_or_default(),
        input: row.get(1),
        fingerprint: row.get(2),
        started_at: row.get(3),
        finished_at: row.get(4),
    }
}

fn checkpoint_row(row: &tokio_postgres::Row) -> CheckpointRecord {
    CheckpointRecord {
        id: row.get(0),
        turn: u32::try_from(row.get::<_, i32>(1)).unwrap_or_default(),
        created_at: row.get(2),
        payload: row.get(3),
    }
}

impl PostgresJournal {
    /// Connects to `url` (a pool of up to 16 connections) and creates the
    /// tables if they are missing.
    pub async fn connect(url: &str) -> Result<Self, JournalError> {
        Self::connect_with(url, 16).await
    }

    /// Like [`connect`](Self::connect), with a pool of up to `max_size`
    /// connections.
    pub async fn connect_with(url: &str, max_size: usize) -> Result<Self, JournalError> {
        let pool = pool(url, max_size)?;
        migrate(&pool, url, SCHEMA).await?;
        Ok(Self {
            pool,
            url: url.to_owned(),
        })
    }

    /// The journal over an existing pool (tables must exist: see
    /// [`connect`](Self::connect)).
    pub fn from_pool(pool: Pool, url: &str) -> Self {
        Self {
            pool,
            url: url.to_owned(),
        }
    }

    pub(crate) async fn conn(&self) -> Result<deadpool_postgres::Object, JournalError> {
        client(&self.pool, &self.url).await
    }
}

#[async_trait]
impl Journal for PostgresJournal {
    fn backend(&self) -> &str {
        BACKEND
    }

    async fn last_run(&self, scope: &Scope) -> Result<Option<RunRecord>, JournalError> {
        let c = self.conn().await?;
        let st = c
            .prepare_cached(
                "SELECT epoch, input, fingerprint, started_at, finished_at FROM loomflow_journal_runs
                 WHERE user_key = $1 AND session_id = $2 ORDER BY epoch DESC LIMIT 1",
            )
            .await
            .map_err(db_error)?;
        let row = c
            .query_opt(&st, &[&scope.user.storage_key(), &scope.session.as_str()])
            .await
            .map_err(db_error)?;
        Ok(row.as_ref().map(run_row))
    }

    async fn start_run(&self, scope: &Scope, run: &RunRecord) -> Result<(), JournalError> {
        let c = self.conn().await?;
        let st = c
            .prepare_cached(
                "INSERT INTO loomflow_journal_runs
                 (user_key, session_id, epoch, input, fingerprint, started_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(db_error)?;
        let n = c
            .execute(
                &st,
                &[
                    &scope.user.storage_key(),
                    &scope.session.as_str(),
                    &epoch_i64(run.epoch),
                    &run.input,
                    &run.fingerprint,
                    &run.started_at,
                ],
            )
            .await
            .map_err(db_error)?;
        if n == 0 {
            return Err(JournalError::Busy {
                user: scope.user.clone(),
                session: scope.session.clone(),
                epoch: run.epoch,
            });
        }
        Ok(())
    }

    async fn finish_run(&self, scope: &Scope, epoch: u64) -> Result<(), JournalError> {
        let c = self.conn().await?;
        let st = c
            .prepare_cached(
                "UPDATE loomflow_journal_runs SET finished_at = now()
                 WHERE user_key = $1 AND session_id = $2 AND epoch = $3",
            )
            .await
            .map_err(db_error)?;
        c.execute(
            &st,
            &[
                &scope.user.storage_key(),
                &scope.session.as_str(),
                &epoch_i64(epoch),
            ],
        )
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn runs(&self, scope: &Scope) -> Result<Vec<RunRecord>, JournalError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT epoch, input, fingerprint, started_at, finished_at FROM loomflow_journal_runs
                 WHERE user_key = $1 AND session_id = $2 ORDER BY epoch",
                &[&scope.user.storage_key(), &scope.session.as_str()],
            )
            .await
            .map_err(db_error)?;
        Ok(rows.iter().map(run_row).collect())
    }

    async fn steps(
        &self,
        scope: &Scope,
        epoch: Option<u64>,
    ) -> Result<Vec<StepRecord>, JournalError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT epoch, step_key, value, recorded_at FROM loomflow_journal_steps
                 WHERE user_key = $1 AND session_id = $2 AND ($3::BIGINT IS NULL OR epoch = $3)
                 ORDER BY id",
                &[
                    &scope.user.storage_key(),
                    &scope.session.as_str(),
                    &epoch.map(epoch_i64),
                ],
            )
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|row| StepRecord {
                epoch: u64::try_from(row.get::<_, i64>(0)).unwrap_or_default(),
                key: row.get(1),
                value: row.get(2),
                recorded_at: row.get(3),
            })
            .collect())
    }

    async fn record(
        &self,
        scope: &Scope,
        epoch: u64,
        key: &str,
        value: &str,
    ) -> Result<(), JournalError> {
        let c = self.conn().await?;
        let st = c
            .prepare_cached(
                "INSERT INTO loomflow_journal_steps (user_key, session_id, epoch, step_key, value)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(db_error)?;
        c.execute(
            &st,
            &[
                &scope.user.storage_key(),
                &scope.session.as_str(),
                &epoch_i64(epoch),
                &key,
                &value,
            ],
        )
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn put_checkpoint(
        &self,
        scope: &Scope,
        checkpoint: &CheckpointRecord,
        keep: usize,
    ) -> Result<(), JournalError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db_error)?;
        let turn = i32::try_from(checkpoint.turn).unwrap_or(i32::MAX);
        tx.execute(
            "INSERT INTO loomflow_journal_checkpoints
             (user_key, session_id, checkpoint_id, turn, created_at, payload)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (user_key, session_id, checkpoint_id)
             DO UPDATE SET turn = EXCLUDED.turn, payload = EXCLUDED.payload",
            &[
                &scope.user.storage_key(),
                &scope.session.as_str(),
                &checkpoint.id,
                &turn,
                &checkpoint.created_at,
                &checkpoint.payload,
            ],
        )
        .await
        .map_err(db_error)?;
        tx.execute(
            "DELETE FROM loomflow_journal_checkpoints WHERE user_key = $1 AND session_id = $2
             AND id NOT IN (SELECT id FROM loomflow_journal_checkpoints
                 WHERE user_key = $1 AND session_id = $2 ORDER BY id DESC LIMIT $3)",
            &[
                &scope.user.storage_key(),
                &scope.session.as_str(),
                &i64::try_from(keep).unwrap_or(i64::MAX),
            ],
        )
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn checkpoints(
        &self,
        scope: &Scope,
        limit: usize,
    ) -> Result<Vec<CheckpointRecord>, JournalError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT checkpoint_id, turn, created_at, '' FROM loomflow_journal_checkpoints
                 WHERE user_key = $1 AND session_id = $2 ORDER BY id DESC LIMIT $3",
                &[
                    &scope.user.storage_key(),
                    &scope.session.as_str(),
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(db_error)?;
        Ok(rows.iter().map(checkpoint_row).collect())
    }

    async fn checkpoint(
        &self,
        scope: &Scope,
        id: Option<&str>,
    ) -> Result<Option<CheckpointRecord>, JournalError> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                "SELECT checkpoint_id, turn, created_at, payload FROM loomflow_journal_checkpoints
                 WHERE user_key = $1 AND session_id = $2 AND ($3::TEXT IS NULL OR checkpoint_id = $3)
                 ORDER BY id DESC LIMIT 1",
                &[&scope.user.storage_key(), &scope.session.as_str(), &id],
            )
            .await
            .map_err(db_error)?;
        Ok(row.as_ref().map(checkpoint_row))
    }

    async fn send_signal(
        &self,
        scope: &Scope,
        name: &str,
        payload: &str,
    ) -> Result<(), JournalError> {
        let c = self.conn().await?;
        c.execute(
            "INSERT INTO loomflow_journal_signals (user_key, session_id, name, payload)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_key, session_id, name)
             DO UPDATE SET payload = EXCLUDED.payload, sent_at = now()",
            &[
                &scope.user.storage_key(),
                &scope.session.as_str(),
                &name,
                &payload,
            ],
        )
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn take_signal(
        &self,
        scope: &Scope,
        name: &str,
        epoch: u64,
        key: &str,
    ) -> Result<Option<String>, JournalError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db_error)?;
        let row = tx
            .query_opt(
                "DELETE FROM loomflow_journal_signals
                 WHERE user_key = $1 AND session_id = $2 AND name = $3 RETURNING payload",
                &[&scope.user.storage_key(), &scope.session.as_str(), &name],
            )
            .await
            .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let payload: String = row.get(0);
        tx.execute(
            "INSERT INTO loomflow_journal_steps (user_key, session_id, epoch, step_key, value)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[
                &scope.user.storage_key(),
                &scope.session.as_str(),
                &epoch_i64(epoch),
                &key,
                &payload,
            ],
        )
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(payload))
    }

    async fn prune(&self, prune: &Prune) -> Result<Pruned, JournalError> {
        if prune.older_than.is_none() && prune.scope.is_none() {
            return Err(JournalError::UnboundedPrune);
        }
        let cut: Option<DateTime<Utc>> = prune.older_than;
        let (user, session) = match &prune.scope {
            Some(s) => (Some(s.user.storage_key()), Some(s.session.as_str())),
            None => (None, None),
        };
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db_error)?;
        let scope_filter = "($2::TEXT IS NULL OR (user_key = $2 AND session_id = $3))";
        let old_runs = format!(
            "SELECT user_key, session_id, epoch FROM loomflow_journal_runs WHERE {scope_filter}
             AND ($1::TIMESTAMPTZ IS NULL OR COALESCE(finished_at, started_at) < $1)"
        );
        let mut counts = [0u64; 4];
        let statements = [
            format!(
                "DELETE FROM loomflow_journal_steps WHERE (user_key, session_id, epoch) IN ({old_runs})"
            ),
            format!(
                "DELETE FROM loomflow_journal_runs WHERE (user_key, session_id, epoch) IN ({old_runs})"
            ),
            format!(
                "DELETE FROM loomflow_journal_checkpoints WHERE {scope_filter}
                 AND ($1::TIMESTAMPTZ IS NULL OR created_at < $1)"
            ),
            format!(
                "DELETE FROM loomflow_journal_signals WHERE {scope_filter}
                 AND ($1::TIMESTAMPTZ IS NULL OR sent_at < $1)"
            ),
        ];
        for (n, sql) in counts.iter_mut().zip(&statements) {
            *n = tx
                .execute(sql, &[&cut, &user, &session])
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(Pruned {
            steps: counts[0],
            runs: counts[1],
            checkpoints: counts[2],
            signals: counts[3],
        })
    }
}
