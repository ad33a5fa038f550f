//! [`PostgresMemory`]: long-term memory in Postgres, vectors in pgvector.
//!
//! Episodes, facts and working blocks live in tables keyed by (namespace,
//! user). Recall is two ranked queries the server answers, fused by
//! reciprocal rank here:
//!
//! - **vectors**: cosine distance through a pgvector HNSW index (one partial
//!   index per embedding size), with `hnsw.iterative_scan = relaxed_order`
//!   so a filtered query (one user, a time range, a session left out) still
//!   returns its full `LIMIT`;
//! - **keywords**: BM25 computed in SQL over a `tsvector` of the words the
//!   shared tokenizer finds (a GIN index selects the matching rows; the
//!   user's document count and total length are kept per user), so every
//!   backend scores keywords alike.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use loomflow_core::journal::redact_url;
use loomflow_core::memory::text::{BM25_B, BM25_K1, term_counts, tokens};
use loomflow_core::memory::{
    Episode, EpisodeMatch, EpisodeTools, Fact, FactQuery, Forget, Forgotten, HashEmbedder, Memory,
    MemoryBlock, MemoryError, MemoryExport, MemoryProfile, Recall, check_block_name,
    embed_episodes, embed_text, fuse_matches, plan_supersession, rank_facts, recall_candidates,
};
use loomflow_core::{Embedder, SessionId, UserId};
use pgvector::Vector;
use tokio::sync::OnceCell;
use tokio_postgres::types::FromSql;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{NoTls, Row};

use crate::journal::describe;

const BACKEND: &str = "postgres";
/// Search breadth of the HNSW index (`hnsw.ef_search`).
const EF_SEARCH: usize = 64;
/// Connections per pool unless [`PostgresMemory::with_max_connections`]
/// says otherwise.
const DEFAULT_MAX_CONNECTIONS: usize = 16;
/// The advisory lock that serialises schema creation across processes.
const SCHEMA_LOCK: i64 = 7_431_965_503;
/// pgvector indexes `vector` up to this size and `halfvec` up to twice it.
const HNSW_MAX_DIMS: usize = 2000;
/// The longest word a `tsvector` holds (Postgres refuses longer lexemes).
const MAX_LEXEME_BYTES: usize = 2046;
/// A `tsvector` stays well under Postgres's 1 MiB limit.
const MAX_TSVECTOR_BYTES: usize = 512 * 1024;
/// Positions kept per word (Postgres keeps at most 256).
const MAX_POSITIONS: u32 = 256;

type Param = Box<dyn ToSql + Sync + Send>;

/// Long-term [`Memory`] in Postgres with pgvector: the shared store when
/// several processes or machines serve the same users.
///
/// [`PostgresMemory::new`] only checks the URL: the first operation
/// connects, creates the tables (and the `vector` extension) if needed, and
/// fails with [`MemoryError::Unreachable`] naming the URL, password
/// redacted, when the server cannot be reached.
///
/// ```no_run
/// use loomflow_core::memory::{Episode, Memory, Recall};
/// use loomflow_core::UserId;
/// use loomflow_postgres::PostgresMemory;
///
/// # async fn demo() -> Result<(), loomflow_core::memory::MemoryError> {
/// let memory = PostgresMemory::new("postgres://bot:secret@db:5432/bot")?;
/// let alice = UserId::new("alice").unwrap();
/// memory.remember(&alice, Episode::new("Book me a flight to Lisbon", "Booked.")).await?;
/// let hits = memory.recall(&alice, &Recall::new("Lisbon flight")).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresMemory {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PostgresMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresMemory")
            .field("url", &self.inner.url)
            .field("namespace", &self.inner.namespace)
            .field("embedder", &self.inner.embedder.name())
            .finish_non_exhaustive()
    }
}

struct Inner {
    pool: Pool,
    /// The URL with its password redacted, for messages.
    url: String,
    /// Shared by every handle on the same pool: the tables exist.
    schema: Arc<OnceCell<()>>,
    namespace: String,
    embedder: Arc<dyn Embedder>,
    /// This handle's embedder matches the namespace's and its index exists.
    ready: OnceCell<()>,
}

/// How vectors of one size are stored, indexed and compared.
struct VectorColumn {
    /// The indexed expression (`embedding::vector(384)`).
    expr: String,
    /// The query vector (parameter `$3`) in the same type.
    param: String,
    /// Whether an HNSW index exists for this size.
    indexed: bool,
}

impl VectorColumn {
    fn for_dims(dims: usize) -> Self {
        if dims <= HNSW_MAX_DIMS {
            Self {
                expr: format!("embedding::vector({dims})"),
                param: format!("$3::vector({dims})"),
                indexed: true,
            }
        } else if dims <= 2 * HNSW_MAX_DIMS {
            Self {
                expr: format!("embedding::halfvec({dims})"),
                param: format!("($3::vector)::halfvec({dims})"),
                indexed: true,
            }
        } else {
            Self {
                expr: "embedding".to_owned(),
                param: "$3::vector".to_owned(),
                indexed: false,
            }
        }
    }

    fn index_sql(&self, dims: usize) -> Option<String> {
        let ops = if dims <= HNSW_MAX_DIMS {
            "vector_cosine_ops"
        } else {
            "halfvec_cosine_ops"
        };
        self.indexed.then(|| {
            format!(
                "CREATE INDEX IF NOT EXISTS loomflow_memory_episodes_hnsw_{dims}
                 ON loomflow_memory_episodes USING hnsw (({}) {ops})
                 WITH (m = 16, ef_construction = 64) WHERE dims = {dims}",
                self.expr
            )
        })
    }
}

const SCHEMA: &str = "
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS loomflow_memory_meta (
    ns TEXT PRIMARY KEY,
    embedder TEXT NOT NULL,
    dimensions INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS loomflow_memory_users (
    ns TEXT NOT NULL,
    user_key TEXT NOT NULL,
    episodes BIGINT NOT NULL,
    total_len BIGINT NOT NULL,
    PRIMARY KEY (ns, user_key)
);
CREATE TABLE IF NOT EXISTS loomflow_memory_episodes (
    seq BIGSERIAL PRIMARY KEY,
    ns TEXT NOT NULL,
    user_key TEXT NOT NULL,
    id TEXT NOT NULL,
    session TEXT,
    occurred_at TIMESTAMPTZ NOT NULL,
    input TEXT NOT NULL,
    output TEXT NOT NULL,
    tools JSONB NOT NULL,
    dims INTEGER NOT NULL,
    embedding vector NOT NULL,
    terms tsvector NOT NULL,
    len INTEGER NOT NULL,
    UNIQUE (ns, user_key, id)
);
CREATE INDEX IF NOT EXISTS loomflow_memory_episodes_session
    ON loomflow_memory_episodes (ns, user_key, session, occurred_at);
CREATE INDEX IF NOT EXISTS loomflow_memory_episodes_terms
    ON loomflow_memory_episodes USING gin (terms);
CREATE TABLE IF NOT EXISTS loomflow_memory_facts (
    ns TEXT NOT NULL,
    user_key TEXT NOT NULL,
    id TEXT NOT NULL,
    subject TEXT NOT NULL,
    predicate TEXT NOT NULL,
    object TEXT NOT NULL,
    confidence REAL NOT NULL,
    valid_from TIMESTAMPTZ NOT NULL,
    valid_until TIMESTAMPTZ,
    recorded_at TIMESTAMPTZ NOT NULL,
    sources JSONB NOT NULL,
    PRIMARY KEY (ns, user_key, id)
);
CREATE INDEX IF NOT EXISTS loomflow_memory_facts_sp
    ON loomflow_memory_facts (ns, user_key, subject, predicate);
CREATE TABLE IF NOT EXISTS loomflow_memory_blocks (
    ns TEXT NOT NULL,
    user_key TEXT NOT NULL,
    name TEXT NOT NULL,
    content TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    pinned_order INTEGER NOT NULL,
    PRIMARY KEY (ns, user_key, name)
);
";

fn db_error(e: tokio_postgres::Error) -> MemoryError {
    MemoryError::backend(BACKEND, describe(&e))
}

/// Quotes `word` as a `tsvector`/`tsquery` lexeme (taken verbatim: no
/// parser, no stemming; the shared tokenizer already normalised it).
fn push_lexeme(out: &mut String, word: &str) {
    out.push('\'');
    for c in word.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
}

/// The `tsvector` of `text`: each word with as many positions as it occurs
/// (so the server can read term frequencies), and the word count.
fn terms_of(text: &str) -> (String, i32) {
    let (counts, len) = term_counts(text);
    let mut out = String::new();
    for (word, tf) in counts {
        if word.len() > MAX_LEXEME_BYTES || out.len() > MAX_TSVECTOR_BYTES {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        push_lexeme(&mut out, &word);
        out.push(':');
        for p in 1..=tf.min(MAX_POSITIONS) {
            if p > 1 {
                out.push(',');
            }
            out.push_str(&p.to_string());
        }
    }
    (out, len.min(i32::MAX as u32) as i32)
}

/// The distinct words of `query` as an OR `tsquery`, and as a list.
fn keyword_query(query: &str) -> Option<(String, Vec<String>)> {
    let mut words = tokens(query);
    words.retain(|w| w.len() <= MAX_LEXEME_BYTES);
    words.sort_unstable();
    words.dedup();
    if words.is_empty() {
        return None;
    }
    let mut q = String::new();
    for w in &words {
        if !q.is_empty() {
            q.push_str(" | ");
        }
        push_lexeme(&mut q, w);
    }
    Some((q, words))
}

impl PostgresMemory {
    /// A memory at `url` (`postgres://user:password@host:port/db`), embedding
    /// with the [`HashEmbedder`]. Nothing connects yet; a malformed URL is a
    /// [`MemoryError::Config`].
    pub fn new(url: &str) -> Result<Self, MemoryError> {
        Self::with_pool_size(url, DEFAULT_MAX_CONNECTIONS)
    }

    /// [`PostgresMemory::new`], then connects and creates the tables now,
    /// so a wrong URL fails here rather than on first use.
    pub async fn connect(url: &str) -> Result<Self, MemoryError> {
        let memory = Self::new(url)?;
        memory.ready().await?;
        Ok(memory)
    }

    /// A memory at `url` holding at most `max` connections.
    pub fn with_pool_size(url: &str, max: usize) -> Result<Self, MemoryError> {
        let redacted = redact_url(url);
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            MemoryError::Config(format!(
                "`{redacted}` is not a valid Postgres URL ({e}); \
                 write postgres://user:password@host:port/database"
            ))
        })?;
        // Filtered vector queries keep walking the index until they have
        // their LIMIT (pgvector 0.8's iterative scan).
        let mut options = config.get_options().unwrap_or_default().to_owned();
        options.push_str(&format!(
            " -c hnsw.iterative_scan=relaxed_order -c hnsw.ef_search={EF_SEARCH}"
        ));
        config.options(options.trim_start());
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| MemoryError::Config(format!("cannot pool `{redacted}`: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                url: redacted,
                schema: Arc::new(OnceCell::new()),
                namespace: String::new(),
                embedder: Arc::new(HashEmbedder::default()),
                ready: OnceCell::new(),
            }),
        })
    }

    /// The same memory embedding with `embedder`. A namespace keeps the
    /// embedder's name and size from its first use; another size later is
    /// a [`MemoryError::Dimensions`].
    pub fn with_embedder(self, embedder: Arc<dyn Embedder>) -> Self {
        self.derive(|inner| inner.embedder = embedder)
    }

    /// The same database seen through namespace `namespace`: two
    /// namespaces share nothing (for several bots in one database).
    pub fn with_namespace(self, namespace: impl Into<String>) -> Self {
        let namespace = namespace.into();
        self.derive(|inner| inner.namespace = namespace)
    }

    fn derive(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Inner {
            pool: self.inner.pool.clone(),
            url: self.inner.url.clone(),
            schema: self.inner.schema.clone(),
            namespace: self.inner.namespace.clone(),
            embedder: self.inner.embedder.clone(),
            ready: OnceCell::new(),
        };
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Connects (if not yet), creates what is missing and checks the
    /// embedder against the namespace.
    pub async fn ready(&self) -> Result<(), MemoryError> {
        self.inner
            .ready
            .get_or_try_init(|| self.inner.setup())
            .await
            .map(|_| ())
    }

    async fn client(&self) -> Result<Object, MemoryError> {
        self.ready().await?;
        self.inner.connection().await
    }

    /// The store as embedding errors name it.
    fn store_name(&self) -> String {
        format!("{} (namespace `{}`)", self.inner.url, self.inner.namespace)
    }

    async fn embed(&self, text: &str) -> Result<Vec<f32>, MemoryError> {
        embed_text(self.inner.embedder.as_ref(), &self.store_name(), text).await
    }
}

impl Inner {
    async fn connection(&self) -> Result<Object, MemoryError> {
        self.pool.get().await.map_err(|e| {
            let message = match &e {
                deadpool_postgres::PoolError::Backend(e) => describe(e),
                other => other.to_string(),
            };
            MemoryError::Unreachable {
                backend: BACKEND.to_owned(),
                url: self.url.clone(),
                message,
            }
        })
    }

    async fn setup(&self) -> Result<(), MemoryError> {
        let mut conn = self.connection().await?;
        self.schema
            .get_or_try_init(|| async {
                let tx = conn.transaction().await.map_err(db_error)?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
                    .await
                    .map_err(db_error)?;
                tx.batch_execute(SCHEMA).await.map_err(|e| {
                    let message = describe(&e);
                    if message.contains("extension \"vector\"") {
                        MemoryError::backend(
                            BACKEND,
                            format!(
                                "{message}; the server needs the pgvector extension \
                                 (install it, e.g. `apt-get install postgresql-<major>-pgvector`, \
                                 or have an administrator run `CREATE EXTENSION vector`)"
                            ),
                        )
                    } else {
                        db_error(e)
                    }
                })?;
                tx.commit().await.map_err(db_error)
            })
            .await?;
        let dims = self.embedder.dimensions();
        let tx = conn.transaction().await.map_err(db_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await
            .map_err(db_error)?;
        tx.execute(
            "INSERT INTO loomflow_memory_meta (ns, embedder, dimensions) VALUES ($1, $2, $3)
             ON CONFLICT (ns) DO NOTHING",
            &[&self.namespace, &self.embedder.name(), &(dims as i32)],
        )
        .await
        .map_err(db_error)?;
        let row = tx
            .query_one(
                "SELECT embedder, dimensions FROM loomflow_memory_meta WHERE ns = $1",
                &[&self.namespace],
            )
            .await
            .map_err(db_error)?;
        let (name, stored): (String, i32) = (row.get(0), row.get(1));
        if stored as usize != dims {
            return Err(MemoryError::Dimensions {
                store: format!(
                    "{} (namespace `{}`, embedder `{name}`)",
                    self.url, self.namespace
                ),
                stored: stored as usize,
                embedder: self.embedder.name().to_owned(),
                made: dims,
            });
        }
        if let Some(sql) = VectorColumn::for_dims(dims).index_sql(dims) {
            tx.batch_execute(&sql).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }
}

fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, MemoryError> {
    row.try_get(i).map_err(db_error)
}

fn corrupt(user: &UserId, what: String, e: impl std::fmt::Display) -> MemoryError {
    MemoryError::Corrupt {
        backend: BACKEND.to_owned(),
        user: user.clone(),
        what,
        message: e.to_string(),
    }
}

/// The columns [`read_episode`] reads, in order.
const EPISODE_COLUMNS: &str = "id, session, occurred_at, input, output, tools, seq";

fn read_episode(user: &UserId, row: &Row) -> Result<(i64, Episode), MemoryError> {
    let id: String = get(row, 0)?;
    let session: Option<String> = get(row, 1)?;
    let session = session
        .map(SessionId::new)
        .transpose()
        .map_err(|e| corrupt(user, format!("episode {id}"), e))?;
    let tools: Json<EpisodeTools> = row
        .try_get(5)
        .map_err(|e| corrupt(user, format!("episode {id}"), describe(&e)))?;
    let episode = Episode {
        session,
        occurred_at: get(row, 2)?,
        input: get(row, 3)?,
        output: get(row, 4)?,
        tool_calls: tools.0.tool_calls,
        tool_transcript: tools.0.tool_transcript,
        id,
    };
    Ok((get(row, 6)?, episode))
}

/// The columns [`read_fact`] reads, in order.
const FACT_COLUMNS: &str =
    "id, subject, predicate, object, confidence, valid_from, valid_until, recorded_at, sources";

fn read_fact(user: &UserId, row: &Row) -> Result<Fact, MemoryError> {
    let id: String = get(row, 0)?;
    let sources: Json<Vec<String>> = row
        .try_get(8)
        .map_err(|e| corrupt(user, format!("fact {id}"), describe(&e)))?;
    Ok(Fact {
        subject: get(row, 1)?,
        predicate: get(row, 2)?,
        object: get(row, 3)?,
        confidence: get(row, 4)?,
        valid_from: get(row, 5)?,
        valid_until: get(row, 6)?,
        recorded_at: get(row, 7)?,
        sources: sources.0,
        id,
    })
}

/// The columns [`read_block`] reads, in order.
const BLOCK_COLUMNS: &str = "name, content, updated_at, pinned_order";

fn read_block(row: &Row) -> Result<MemoryBlock, MemoryError> {
    Ok(MemoryBlock {
        name: get(row, 0)?,
        content: get(row, 1)?,
        updated_at: get(row, 2)?,
        pinned_order: get::<i32>(row, 3)?.max(0) as u32,
    })
}

/// Binds the namespace and user key as `$1` and `$2`, then `extra`.
fn bind<'a>(
    ns: &'a String,
    key: &'a &'a str,
    extra: &'a [&'a (dyn ToSql + Sync)],
) -> Vec<&'a (dyn ToSql + Sync)> {
    let mut args: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(2 + extra.len());
    args.push(ns);
    args.push(key);
    args.extend_from_slice(extra);
    args
}

impl Inner {
    /// The user's episodes matching `filter` (SQL after `WHERE`, with the
    /// namespace and user key bound as `$1` and `$2`), with their row ids.
    async fn episodes_where(
        &self,
        client: &impl GenericClient,
        user: &UserId,
        filter: &str,
        extra: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<(i64, Episode)>, MemoryError> {
        let sql = format!("SELECT {EPISODE_COLUMNS} FROM loomflow_memory_episodes WHERE {filter}");
        let key = user.storage_key();
        let stmt = client.prepare_cached(&sql).await.map_err(db_error)?;
        let rows = client
            .query(&stmt, &bind(&self.namespace, &key, extra))
            .await
            .map_err(db_error)?;
        rows.iter().map(|r| read_episode(user, r)).collect()
    }

    /// The user's facts, `filter` appended after the user's condition.
    async fn facts_where(
        &self,
        client: &impl GenericClient,
        user: &UserId,
        filter: &str,
        extra: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Fact>, MemoryError> {
        let sql = format!(
            "SELECT {FACT_COLUMNS} FROM loomflow_memory_facts WHERE ns = $1 AND user_key = $2 {filter}"
        );
        let key = user.storage_key();
        let stmt = client.prepare_cached(&sql).await.map_err(db_error)?;
        let rows = client
            .query(&stmt, &bind(&self.namespace, &key, extra))
            .await
            .map_err(db_error)?;
        rows.iter().map(|r| read_fact(user, r)).collect()
    }

    async fn blocks(
        &self,
        client: &impl GenericClient,
        user: &UserId,
    ) -> Result<Vec<MemoryBlock>, MemoryError> {
        let key = user.storage_key();
        let rows = client
            .query(
                &format!(
                    "SELECT {BLOCK_COLUMNS} FROM loomflow_memory_blocks
                     WHERE ns = $1 AND user_key = $2 ORDER BY pinned_order, name"
                ),
                &[&self.namespace, &key],
            )
            .await
            .map_err(db_error)?;
        rows.iter().map(read_block).collect()
    }

    /// Serialises this transaction with every other write for the user.
    async fn lock_user(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        user: &UserId,
    ) -> Result<(), MemoryError> {
        let key = user.storage_key();
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(31) || $2, 7431))",
            &[&self.namespace, &key],
        )
        .await
        .map_err(db_error)?;
        Ok(())
    }

    /// Adds `episodes` and `len` to the user's BM25 statistics.
    async fn add_stats(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        user: &UserId,
        episodes: i64,
        len: i64,
    ) -> Result<(), MemoryError> {
        let key = user.storage_key();
        tx.execute(
            "INSERT INTO loomflow_memory_users AS u (ns, user_key, episodes, total_len)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (ns, user_key) DO UPDATE
             SET episodes = u.episodes + excluded.episodes, total_len = u.total_len + excluded.total_len",
            &[&self.namespace, &key, &episodes, &len],
        )
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn write_block(
        &self,
        conn: &mut Object,
        user: &UserId,
        name: &str,
        text: &str,
        append: bool,
    ) -> Result<MemoryBlock, MemoryError> {
        let tx = conn.transaction().await.map_err(db_error)?;
        self.lock_user(&tx, user).await?;
        let key = user.storage_key();
        let content = if append {
            "CASE WHEN b.content = '' THEN excluded.content ELSE b.content || chr(10) || excluded.content END"
        } else {
            "excluded.content"
        };
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO loomflow_memory_blocks AS b
                        (ns, user_key, name, content, updated_at, pinned_order)
                     VALUES ($1, $2, $3, $4, now(), (SELECT COALESCE(MAX(pinned_order) + 1, 0)
                        FROM loomflow_memory_blocks WHERE ns = $1 AND user_key = $2))
                     ON CONFLICT (ns, user_key, name) DO UPDATE
                     SET content = {content}, updated_at = excluded.updated_at
                     RETURNING {BLOCK_COLUMNS}"
                ),
                &[&self.namespace, &key, &name, &text],
            )
            .await
            .map_err(db_error)?;
        let block = read_block(&row)?;
        tx.commit().await.map_err(db_error)?;
        Ok(block)
    }
}

#[async_trait]
impl Memory for PostgresMemory {
    fn backend(&self) -> &str {
        BACKEND
    }

    async fn working(&self, user: &UserId) -> Result<Vec<MemoryBlock>, MemoryError> {
        let conn = self.client().await?;
        self.inner.blocks(&conn, user).await
    }

    async fn update_block(
        &self,
        user: &UserId,
        name: &str,
        content: &str,
    ) -> Result<MemoryBlock, MemoryError> {
        check_block_name(name)?;
        let mut conn = self.client().await?;
        self.inner
            .write_block(&mut conn, user, name, content, false)
            .await
    }

    async fn append_block(
        &self,
        user: &UserId,
        name: &str,
        text: &str,
    ) -> Result<MemoryBlock, MemoryError> {
        check_block_name(name)?;
        let mut conn = self.client().await?;
        self.inner
            .write_block(&mut conn, user, name, text, true)
            .await
    }

    async fn remember_many(
        &self,
        user: &UserId,
        episodes: Vec<Episode>,
    ) -> Result<Vec<String>, MemoryError> {
        if episodes.is_empty() {
            return Ok(Vec::new());
        }
        let (texts, vectors) =
            embed_episodes(self.inner.embedder.as_ref(), &self.store_name(), &episodes).await?;
        let dims = self.inner.embedder.dimensions() as i32;
        let key = user.storage_key();
        let ns = &self.inner.namespace;
        let mut conn = self.client().await?;
        let tx = conn.transaction().await.map_err(db_error)?;
        self.inner.lock_user(&tx, user).await?;
        let delete = tx
            .prepare_cached(
                "DELETE FROM loomflow_memory_episodes WHERE ns = $1 AND user_key = $2 AND id = $3
                 RETURNING len",
            )
            .await
            .map_err(db_error)?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO loomflow_memory_episodes
                    (ns, user_key, id, session, occurred_at, input, output, tools, dims, embedding,
                     terms, len)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text::tsvector, $12)",
            )
            .await
            .map_err(db_error)?;
        let (mut added, mut grown) = (0i64, 0i64);
        for ((episode, text), vector) in episodes.iter().zip(&texts).zip(vectors) {
            let vector = Vector::from(vector);
            let (terms, len) = terms_of(text);
            let tools = Json(EpisodeTools::from(episode));
            let session = episode.session.as_ref().map(SessionId::as_str);
            let replaced = tx
                .query_opt(&delete, &[ns, &key, &episode.id])
                .await
                .map_err(db_error)?;
            let old_len: Option<i32> = replaced.as_ref().map(|r| get(r, 0)).transpose()?;
            tx.execute(
                &insert,
                &[
                    ns,
                    &key,
                    &episode.id,
                    &session,
                    &episode.occurred_at,
                    &episode.input,
                    &episode.output,
                    &tools,
                    &dims,
                    &vector,
                    &terms,
                    &len,
                ],
            )
            .await
            .map_err(db_error)?;
            added += i64::from(old_len.is_none());
            grown += i64::from(len) - i64::from(old_len.unwrap_or(0));
        }
        self.inner.add_stats(&tx, user, added, grown).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(episodes.into_iter().map(|e| e.id).collect())
    }

    async fn recall_scored(
        &self,
        user: &UserId,
        query: &Recall,
    ) -> Result<Vec<EpisodeMatch>, MemoryError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let vector = if query.alpha > 0.0 {
            Some(Vector::from(self.embed(&query.text).await?))
        } else {
            None
        };
        let keywords = if query.alpha < 1.0 {
            keyword_query(&query.text)
        } else {
            None
        };
        let n = recall_candidates(query.limit) as i64;
        let skip = query.exclude_session.as_ref().map(SessionId::as_str);
        let key = user.storage_key();
        let ns = &self.inner.namespace;
        let conn = self.client().await?;
        // $1 namespace, $2 user, $3 the query, $4 how many; then only the
        // filters present, so the planner sees what is really asked.
        let mut filters = String::new();
        let mut args: Vec<&(dyn ToSql + Sync)> = vec![ns, &key, &"", &n];
        if let Some((from, to)) = &query.time_range {
            args.extend([from as &(dyn ToSql + Sync), to]);
            filters.push_str(&format!(
                " AND occurred_at >= ${} AND occurred_at < ${}",
                args.len() - 1,
                args.len()
            ));
        }
        if let Some(session) = &skip {
            args.push(session);
            filters.push_str(&format!(" AND session IS DISTINCT FROM ${}", args.len()));
        }
        let by_vector: Vec<(i64, f32)> = match &vector {
            Some(v) => {
                let dims = self.inner.embedder.dimensions();
                let column = VectorColumn::for_dims(dims);
                let stmt = conn
                    .prepare_cached(&format!(
                        "SELECT seq, ({expr} <=> {param})::float4 FROM loomflow_memory_episodes
                         WHERE dims = {dims} AND ns = $1 AND user_key = $2{filters}
                         ORDER BY {expr} <=> {param} LIMIT $4",
                        expr = column.expr,
                        param = column.param,
                    ))
                    .await
                    .map_err(db_error)?;
                args[2] = v;
                let rows = conn.query(&stmt, &args).await.map_err(db_error)?;
                let mut hits = rows
                    .iter()
                    .map(|r| Ok((get::<i64>(r, 0)?, 1.0 - get::<f32>(r, 1)?)))
                    .collect::<Result<Vec<_>, MemoryError>>()?;
                // The iterative scan may return rows slightly out of order.
                hits.retain(|(_, sim)| *sim > 0.0);
                hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                hits
            }
            None => Vec::new(),
        };
        let by_keyword: Vec<(i64, f32)> = match &keywords {
            Some((tsquery, words)) => {
                let (k1, b) = (f64::from(BM25_K1), f64::from(BM25_B));
                let mut args = args.clone();
                args[2] = tsquery;
                args.extend([words as &(dyn ToSql + Sync), &k1, &b]);
                let (w, k, b_at) = (args.len() - 2, args.len() - 1, args.len());
                let stmt = conn
                    .prepare_cached(&format!(
                        "WITH stats AS (
                            SELECT episodes::float8 AS n,
                                   GREATEST(total_len::float8 / NULLIF(episodes, 0), 1) AS avgdl
                            FROM loomflow_memory_users WHERE ns = $1 AND user_key = $2),
                         hits AS (
                            SELECT seq, len, session, occurred_at, terms FROM loomflow_memory_episodes
                            WHERE ns = $1 AND user_key = $2 AND terms @@ $3::text::tsquery),
                         t AS (
                            SELECT h.seq, h.len, h.session, h.occurred_at, w.lexeme,
                                   COALESCE(array_length(w.positions, 1), 1)::float8 AS tf
                            FROM hits h, unnest(h.terms) w WHERE w.lexeme = ANY(${w}::text[])),
                         df AS (SELECT lexeme, count(*)::float8 AS df FROM t GROUP BY lexeme),
                         params AS (SELECT ${k}::float8 AS k1, ${b_at}::float8 AS b)
                         SELECT t.seq, SUM(
                                ln(1 + (stats.n - df.df + 0.5) / (df.df + 0.5)) * t.tf * (p.k1 + 1)
                                / (t.tf + p.k1 * (1 - p.b + p.b * t.len / stats.avgdl)))::float4 AS score
                         FROM t JOIN df USING (lexeme) CROSS JOIN stats CROSS JOIN params p
                         WHERE true{filters}
                         GROUP BY t.seq ORDER BY score DESC, t.seq LIMIT $4"
                    ))
                    .await
                    .map_err(db_error)?;
                let rows = conn.query(&stmt, &args).await.map_err(db_error)?;
                rows.iter()
                    .map(|r| Ok((get::<i64>(r, 0)?, get::<f32>(r, 1)?)))
                    .collect::<Result<_, MemoryError>>()?
            }
            None => Vec::new(),
        };
        let mut wanted: Vec<i64> = by_vector.iter().chain(&by_keyword).map(|h| h.0).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut loaded: std::collections::HashMap<i64, Episode> = self
            .inner
            .episodes_where(
                &conn,
                user,
                "seq = ANY($3) AND ns = $1 AND user_key = $2",
                &[&wanted],
            )
            .await?
            .into_iter()
            .collect();
        Ok(fuse_matches(&by_vector, &by_keyword, query, |seq| {
            loaded.remove(seq)
        }))
    }

    async fn session_episodes(
        &self,
        user: &UserId,
        session: &SessionId,
        limit: usize,
    ) -> Result<Vec<Episode>, MemoryError> {
        let conn = self.client().await?;
        let limit = limit.min(i64::MAX as usize) as i64;
        let mut eps = self
            .inner
            .episodes_where(
                &conn,
                user,
                "ns = $1 AND user_key = $2 AND session = $3
                 ORDER BY occurred_at DESC, id DESC LIMIT $4",
                &[&session.as_str(), &limit],
            )
            .await?;
        eps.reverse();
        Ok(eps.into_iter().map(|(_, e)| e).collect())
    }

    async fn append_fact(&self, user: &UserId, fact: Fact) -> Result<Fact, MemoryError> {
        let mut fact = fact.validated()?;
        let key = user.storage_key();
        let ns = &self.inner.namespace;
        let mut conn = self.client().await?;
        let tx = conn.transaction().await.map_err(db_error)?;
        self.inner.lock_user(&tx, user).await?;
        tx.execute(
            "DELETE FROM loomflow_memory_facts WHERE ns = $1 AND user_key = $2 AND id = $3",
            &[ns, &key, &fact.id],
        )
        .await
        .map_err(db_error)?;
        let same = self
            .inner
            .facts_where(
                &tx,
                user,
                "AND subject = $3 AND predicate = $4",
                &[&fact.subject, &fact.predicate],
            )
            .await?;
        let plan = plan_supersession(&same, &fact);
        for (id, until) in &plan.close {
            tx.execute(
                "UPDATE loomflow_memory_facts SET valid_until = $4
                 WHERE ns = $1 AND user_key = $2 AND id = $3",
                &[ns, &key, id, until],
            )
            .await
            .map_err(db_error)?;
        }
        if let Some(until) = plan.new_valid_until {
            fact.valid_until = Some(until);
        }
        tx.execute(
            &format!(
                "INSERT INTO loomflow_memory_facts (ns, user_key, {FACT_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ),
            &[
                ns,
                &key,
                &fact.id,
                &fact.subject,
                &fact.predicate,
                &fact.object,
                &fact.confidence,
                &fact.valid_from,
                &fact.valid_until,
                &fact.recorded_at,
                &Json(&fact.sources),
            ],
        )
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(fact)
    }

    async fn query_facts(
        &self,
        user: &UserId,
        query: &FactQuery,
    ) -> Result<Vec<Fact>, MemoryError> {
        let query = query.clone().canonical()?;
        let mut filter = String::new();
        let mut args: Vec<Param> = Vec::new();
        for (column, value) in [
            ("subject", &query.subject),
            ("predicate", &query.predicate),
            ("object", &query.object),
        ] {
            if let Some(v) = value {
                args.push(Box::new(v.clone()));
                filter.push_str(&format!(" AND {column} = ${}", args.len() + 2));
            }
        }
        if let Some(at) = query.valid_at {
            args.push(Box::new(at));
            let n = args.len() + 2;
            filter.push_str(&format!(
                " AND valid_from <= ${n} AND (valid_until IS NULL OR valid_until > ${n})"
            ));
        }
        args.push(Box::new(query.limit.min(i64::MAX as usize) as i64));
        filter.push_str(&format!(
            " ORDER BY valid_from DESC, id LIMIT ${}",
            args.len() + 2
        ));
        let refs: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let conn = self.client().await?;
        self.inner.facts_where(&conn, user, &filter, &refs).await
    }

    async fn recall_facts(
        &self,
        user: &UserId,
        text: &str,
        limit: usize,
        valid_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Fact>, MemoryError> {
        let conn = self.client().await?;
        let facts = self
            .inner
            .facts_where(
                &conn,
                user,
                "AND ($3::timestamptz IS NULL
                      OR (valid_from <= $3 AND (valid_until IS NULL OR valid_until > $3)))",
                &[&valid_at],
            )
            .await?;
        Ok(rank_facts(facts, text, limit))
    }

    async fn profile(&self, user: &UserId) -> Result<MemoryProfile, MemoryError> {
        let conn = self.client().await?;
        let key = user.storage_key();
        let ns = &self.inner.namespace;
        let row = conn
            .query_one(
                "SELECT
                    (SELECT COUNT(*) FROM loomflow_memory_episodes WHERE ns = $1 AND user_key = $2),
                    (SELECT COUNT(*) FROM loomflow_memory_facts WHERE ns = $1 AND user_key = $2),
                    (SELECT COUNT(*) FROM loomflow_memory_blocks WHERE ns = $1 AND user_key = $2),
                    (SELECT MAX(occurred_at) FROM loomflow_memory_episodes
                        WHERE ns = $1 AND user_key = $2),
                    current_setting('hnsw.iterative_scan', true)",
                &[ns, &key],
            )
            .await
            .map_err(db_error)?;
        let sessions = conn
            .query(
                "SELECT session, MAX(occurred_at) AS last FROM loomflow_memory_episodes
                 WHERE ns = $1 AND user_key = $2 AND session IS NOT NULL
                 GROUP BY session ORDER BY last DESC, session LIMIT 10",
                &[ns, &key],
            )
            .await
            .map_err(db_error)?;
        let recent_sessions = sessions
            .iter()
            .map(|r| {
                SessionId::new(get::<String>(r, 0)?)
                    .map_err(|e| corrupt(user, "session id".into(), e))
            })
            .collect::<Result<_, _>>()?;
        let sample_facts = self
            .inner
            .facts_where(
                &conn,
                user,
                "AND valid_from <= $3 AND (valid_until IS NULL OR valid_until > $3)
                 ORDER BY valid_from DESC, id LIMIT 10",
                &[&Utc::now()],
            )
            .await?;
        let dims = self.inner.embedder.dimensions();
        let vector_search = if VectorColumn::for_dims(dims).indexed {
            let scan: Option<String> = get(&row, 4)?;
            format!(
                "pgvector hnsw (cosine, hnsw.iterative_scan = {})",
                scan.as_deref().unwrap_or("unset")
            )
        } else {
            format!("pgvector exact scan ({dims} dimensions exceed the HNSW limit)")
        };
        Ok(MemoryProfile {
            episode_count: get::<i64>(&row, 0)? as u64,
            fact_count: get::<i64>(&row, 1)? as u64,
            block_count: get::<i64>(&row, 2)? as u64,
            last_seen: get(&row, 3)?,
            recent_sessions,
            sample_facts,
            backend: BACKEND.to_owned(),
            vector_search,
            user: user.clone(),
        })
    }

    async fn forget(&self, forget: &Forget) -> Result<Forgotten, MemoryError> {
        // No background extraction may write the erased data back.
        loomflow_core::memory::stop_extractions(forget).await;
        let user = &forget.user;
        let key = user.storage_key();
        let ns = &self.inner.namespace;
        let session = forget.session.as_ref().map(SessionId::as_str);
        let mut conn = self.client().await?;
        let tx = conn.transaction().await.map_err(db_error)?;
        self.inner.lock_user(&tx, user).await?;
        let erased = tx
            .query(
                "DELETE FROM loomflow_memory_episodes
                 WHERE ns = $1 AND user_key = $2
                   AND ($3::text IS NULL OR session = $3)
                   AND ($4::timestamptz IS NULL OR occurred_at < $4)
                 RETURNING id, len",
                &[ns, &key, &session, &forget.before],
            )
            .await
            .map_err(db_error)?;
        let mut ids = Vec::with_capacity(erased.len());
        let mut len = 0i64;
        for row in &erased {
            ids.push(get::<String>(row, 0)?);
            len += i64::from(get::<i32>(row, 1)?);
        }
        if !ids.is_empty() {
            self.inner
                .add_stats(&tx, user, -(ids.len() as i64), -len)
                .await?;
        }
        let erased_ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let facts = self.inner.facts_where(&tx, user, "", &[]).await?;
        let doomed: Vec<&str> = facts
            .iter()
            .filter(|f| forget.erases_fact(f, &erased_ids))
            .map(|f| f.id.as_str())
            .collect();
        let fact_count = tx
            .execute(
                "DELETE FROM loomflow_memory_facts WHERE ns = $1 AND user_key = $2 AND id = ANY($3)",
                &[ns, &key, &doomed],
            )
            .await
            .map_err(db_error)?;
        let blocks: Vec<String> = self
            .inner
            .blocks(&tx, user)
            .await?
            .into_iter()
            .filter(|b| forget.erases_block(b))
            .map(|b| b.name)
            .collect();
        let block_count = tx
            .execute(
                "DELETE FROM loomflow_memory_blocks WHERE ns = $1 AND user_key = $2 AND name = ANY($3)",
                &[ns, &key, &blocks],
            )
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(Forgotten {
            episodes: ids.len() as u64,
            facts: fact_count,
            blocks: block_count,
        })
    }

    async fn export(&self, user: &UserId) -> Result<MemoryExport, MemoryError> {
        let conn = self.client().await?;
        let episodes = self
            .inner
            .episodes_where(
                &conn,
                user,
                "ns = $1 AND user_key = $2 ORDER BY occurred_at, id",
                &[],
            )
            .await?
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        let facts = self
            .inner
            .facts_where(&conn, user, "ORDER BY valid_from, id", &[])
            .await?;
        let blocks = self.inner.blocks(&conn, user).await?;
        Ok(MemoryExport {
            user: user.clone(),
            episodes,
            facts,
            blocks,
            exported_at: Utc::now(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexemes_are_quoted_and_counted() {
        let (terms, len) = terms_of("O'Brien's cats chase cats");
        assert_eq!(terms, "'brien':1 'cat':1,2 'chase':1 'o':1 's':1");
        assert_eq!(len, 6);
        let mut q = String::new();
        push_lexeme(&mut q, r"it's\x");
        assert_eq!(q, r"'it''s\\x'");
    }
}
