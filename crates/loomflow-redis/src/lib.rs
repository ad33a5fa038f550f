//! Redis storage for loomflow: [`RedisMemory`], long-term memory in hashes
//! and sorted sets.
//!
//! Every key of one user starts with `lf:mem:{<namespace>:<user>}` (both
//! parts escaped, so no user id can reach into another's keys, and the
//! braces keep a user's keys in one cluster slot):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `…:ep:<id>` | hash | one episode (input, output, session, time, tools, its words) |
//! | `…:eps` | sorted set | episode ids by time |
//! | `…:sess:<session>` | sorted set | a session's episode ids by time |
//! | `…:sessions` | sorted set | sessions by last activity |
//! | `…:idx` | hash | per episode: word count, time, session (recall filters) |
//! | `…:term:<word>` | hash | episode id → how often the word occurs (BM25 postings) |
//! | `…:stats` | hash | episode count and total word count (BM25) |
//! | `…:vec` | vector set | embeddings, with time and session as attributes |
//! | `…:emb` | hash | embeddings, when the server has no Vector Sets |
//! | `…:facts`, `…:blocks` | hash | facts and working blocks as JSON |
//!
//! Vector recall runs on the server through Redis Vector Sets (`VSIM`, with
//! an unbounded `FILTER-EF` so a filter never shortens the answer) where the server
//! has them (Redis 8, or the `vectorset` module), and on the client over
//! the user's stored embeddings otherwise; [`MemoryProfile::vector_search`]
//! and a log line say which. A namespace keeps the mode it started with.

use loomflow_core::redact::Redacted;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use loomflow_core::journal::redact_url;
use loomflow_core::memory::text::{self, term_counts};
use loomflow_core::memory::{
    Episode, EpisodeMatch, EpisodeTools, Fact, FactQuery, Forget, Forgotten, HashEmbedder, Memory,
    MemoryBlock, MemoryError, MemoryExport, MemoryProfile, Recall, UserLocks, check_block_name,
    embed_episodes, embed_text, fuse_matches, last_of_each_id, plan_supersession, rank_facts,
    recall_candidates, sample_facts,
};
use loomflow_core::{Embedder, SessionId, UserId};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Pipeline, Script};
use tokio::sync::OnceCell;

const BACKEND: &str = "redis";
/// How long a user's write lock lives if its holder dies.
const LOCK_TTL: Duration = Duration::from_secs(30);
/// How long a writer waits for the user's lock.
const LOCK_WAIT: Duration = Duration::from_secs(30);
/// Search breadth of the vector set (`VSIM … EF`).
const EF_SEARCH: usize = 64;

/// How a namespace keeps and searches its vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vectors {
    /// In a Redis vector set per user, searched by `VSIM`.
    Sets,
    /// In a hash per user, scored by this process.
    Client,
}

impl Vectors {
    fn name(self) -> &'static str {
        match self {
            Self::Sets => "vector-sets",
            Self::Client => "client",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Sets => "redis vector sets (VSIM, unbounded filtered walk)",
            Self::Client => {
                "client-side cosine over stored embeddings (no Vector Sets on the server)"
            }
        }
    }
}

/// Long-term [`Memory`] in Redis.
///
/// [`RedisMemory::new`] only checks the URL: the first operation connects,
/// finds out whether the server has Vector Sets, and fails with
/// [`MemoryError::Unreachable`] naming the URL, password redacted, when the
/// server cannot be reached.
///
/// ```no_run
/// use loomflow_core::memory::{Episode, Memory, Recall};
/// use loomflow_core::UserId;
/// use loomflow_redis::RedisMemory;
///
/// # async fn demo() -> Result<(), loomflow_core::memory::MemoryError> {
/// let memory = RedisMemory::new("redis://:secret@cache:6379/0")?;
/// let alice = UserId::new("alice").unwrap();
/// memory.remember(&alice, Episode::new("Book me a flight to Lisbon", "Booked.")).await?;
/// let hits = memory.recall(&alice, &Recall::new("Lisbon flight")).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisMemory {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisMemory")
            .field("url", &self.inner.url)
            .field("namespace", &self.inner.namespace)
            .field("embedder", &self.inner.embedder.name())
            .finish_non_exhaustive()
    }
}

struct Inner {
    client: redis::Client,
    /// The URL with its password redacted, for messages.
    url: String,
    /// Shared by handles derived from one `new`.
    conn: Arc<OnceCell<ConnectionManager>>,
    namespace: String,
    embedder: Arc<dyn Embedder>,
    /// This handle's mode, once the namespace's record is checked.
    mode: OnceCell<Vectors>,
    /// Writers in this process queue here before taking the user's lock in
    /// Redis, so they wait in line instead of polling the server.
    local_locks: UserLocks,
}

fn db_error(e: redis::RedisError) -> MemoryError {
    MemoryError::backend(BACKEND, e)
}

/// Escapes a key part so that `:`, `{`, `}` and `%` in it cannot be read
/// as structure.
fn escape(out: &mut String, part: &str) {
    for c in part.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
}

/// The session as it appears in a vector-set attribute and filter: hex, so
/// no quote or backslash in a session id can change the filter.
fn session_tag(session: Option<&str>) -> String {
    let Some(session) = session else {
        return String::new();
    };
    let mut out = String::with_capacity(1 + 2 * session.len());
    out.push('s');
    for b in session.bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::UNIX_EPOCH)
}

fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bytes_vector(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// One user's keys.
struct Keys {
    prefix: String,
}

impl Keys {
    fn new(namespace: &str, user: &UserId) -> Self {
        let mut prefix = String::from("lf:mem:{");
        escape(&mut prefix, namespace);
        prefix.push(':');
        escape(&mut prefix, user.storage_key());
        prefix.push('}');
        Self { prefix }
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.prefix)
    }

    fn episode(&self, id: &str) -> String {
        format!("{}:ep:{id}", self.prefix)
    }

    fn session(&self, session: &str) -> String {
        format!("{}:sess:{session}", self.prefix)
    }

    fn term(&self, word: &str) -> String {
        format!("{}:term:{word}", self.prefix)
    }
}

/// What the `idx` hash keeps per episode: word count, time, session tag.
struct IndexEntry {
    len: u32,
    at: i64,
    session: String,
}

impl IndexEntry {
    fn encode(&self) -> String {
        format!("{} {} {}", self.len, self.at, self.session)
    }

    fn decode(raw: &str) -> Option<Self> {
        let mut parts = raw.splitn(3, ' ');
        Some(Self {
            len: parts.next()?.parse().ok()?,
            at: parts.next()?.parse().ok()?,
            session: parts.next().unwrap_or_default().to_owned(),
        })
    }
}

/// The recall filters as the stored fields see them.
struct Filters {
    range: Option<(i64, i64)>,
    skip: Option<String>,
}

impl Filters {
    fn of(query: &Recall) -> Self {
        Self {
            range: query.time_range.map(|(a, b)| (micros(a), micros(b))),
            skip: query
                .exclude_session
                .as_ref()
                .map(|s| session_tag(Some(s.as_str()))),
        }
    }

    fn admits(&self, e: &IndexEntry) -> bool {
        self.range.is_none_or(|(a, b)| a <= e.at && e.at < b)
            && self.skip.as_ref().is_none_or(|s| &e.session != s)
    }

    /// The same filter as a `VSIM … FILTER` expression, if any.
    fn expression(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some((a, b)) = self.range {
            parts.push(format!(".t >= {a} and .t < {b}"));
        }
        if let Some(s) = &self.skip {
            parts.push(format!(".s != \"{s}\""));
        }
        (!parts.is_empty()).then(|| parts.join(" and "))
    }
}

/// Releases a lock only if it still holds our token.
const UNLOCK: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

impl RedisMemory {
    /// A memory at `url` (`redis://[:password@]host:port/db`, `rediss://`
    /// for TLS is refused: this build has no TLS), embedding with the
    /// [`HashEmbedder`]. Nothing connects yet; a malformed URL is a
    /// [`MemoryError::Config`].
    pub fn new(url: &str) -> Result<Self, MemoryError> {
        let redacted = redact_url(url);
        let client = redis::Client::open(url).map_err(|e| {
            MemoryError::Config(format!(
                "`{redacted}` is not a usable Redis URL ({}); write redis://[:password@]host:port/db",
                e.to_string().replace(url, &redacted)
            ))
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                url: redacted,
                conn: Arc::new(OnceCell::new()),
                namespace: String::new(),
                embedder: Arc::new(HashEmbedder::default()),
                mode: OnceCell::new(),
                local_locks: UserLocks::default(),
            }),
        })
    }

    /// [`RedisMemory::new`], then connects now, so a wrong URL fails here
    /// rather than on first use.
    pub async fn connect(url: &str) -> Result<Self, MemoryError> {
        let memory = Self::new(url)?;
        memory.mode().await?;
        Ok(memory)
    }

    /// The same memory embedding with `embedder`. A namespace keeps the
    /// embedder's size from its first use; another size later is a
    /// [`MemoryError::Dimensions`].
    pub fn with_embedder(self, embedder: Arc<dyn Embedder>) -> Self {
        self.derive(|inner| inner.embedder = embedder)
    }

    /// The same server seen through namespace `namespace`: two namespaces
    /// share nothing.
    pub fn with_namespace(self, namespace: impl Into<String>) -> Self {
        let namespace = namespace.into();
        self.derive(|inner| inner.namespace = namespace)
    }

    fn derive(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Inner {
            client: self.inner.client.clone(),
            url: self.inner.url.clone(),
            conn: self.inner.conn.clone(),
            namespace: self.inner.namespace.clone(),
            embedder: self.inner.embedder.clone(),
            mode: OnceCell::new(),
            local_locks: self.inner.local_locks.clone(),
        };
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// A connection (made on first use).
    async fn conn(&self) -> Result<ConnectionManager, MemoryError> {
        let inner = &self.inner;
        inner
            .conn
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(5)))
                    .set_response_timeout(Some(Duration::from_secs(60)))
                    .set_number_of_retries(2);
                ConnectionManager::new_with_config(inner.client.clone(), config)
                    .await
                    .map_err(|e| MemoryError::Unreachable {
                        backend: BACKEND.to_owned(),
                        url: inner.url.clone(),
                        message: e.to_string(),
                    })
            })
            .await
            .cloned()
    }

    /// The namespace's vector mode: recorded on first use (with the
    /// embedder's name and size), checked against this handle afterwards.
    async fn mode(&self) -> Result<Vectors, MemoryError> {
        self.inner
            .mode
            .get_or_try_init(|| async {
                let mut conn = self.conn().await?;
                let mut meta = String::from("lf:mem:meta:");
                escape(&mut meta, &self.inner.namespace);
                let info: redis::Value = redis::cmd("COMMAND")
                    .arg("INFO")
                    .arg("VADD")
                    .query_async(&mut conn)
                    .await
                    .map_err(db_error)?;
                let has_sets = matches!(&info, redis::Value::Array(items)
                    if items.first().is_some_and(|i| !matches!(i, redis::Value::Nil)));
                let offered = if has_sets {
                    Vectors::Sets
                } else {
                    Vectors::Client
                };
                let dims = self.inner.embedder.dimensions();
                let (name, stored, mode): (String, usize, String) = redis::pipe()
                    .hset_nx(&meta, "embedder", self.inner.embedder.name())
                    .ignore()
                    .hset_nx(&meta, "dimensions", dims)
                    .ignore()
                    .hset_nx(&meta, "vectors", offered.name())
                    .ignore()
                    .cmd("HMGET")
                    .arg(&meta)
                    .arg(&["embedder", "dimensions", "vectors"])
                    .query_async::<((String, usize, String),)>(&mut conn)
                    .await
                    .map_err(db_error)?
                    .0;
                if stored != dims {
                    return Err(MemoryError::Dimensions {
                        store: format!(
                            "{} (namespace `{}`, embedder `{name}`)",
                            self.inner.url, self.inner.namespace
                        ),
                        stored,
                        embedder: self.inner.embedder.name().to_owned(),
                        made: dims,
                    });
                }
                let mode = if mode == Vectors::Sets.name() {
                    if !has_sets {
                        return Err(MemoryError::backend(
                            BACKEND,
                            format!(
                                "namespace `{}` keeps its vectors in Redis Vector Sets, but the \
                                 server at {} has no VADD command; use Redis 8 or load the \
                                 vectorset module",
                                self.inner.namespace, self.inner.url
                            ),
                        ));
                    }
                    Vectors::Sets
                } else {
                    Vectors::Client
                };
                tracing::info!(
                    url = %Redacted(&self.inner.url),
                    namespace = %self.inner.namespace,
                    vector_search = mode.describe(),
                    "redis memory ready"
                );
                Ok(mode)
            })
            .await
            .copied()
    }

    /// The store as embedding errors name it.
    fn store_name(&self) -> String {
        format!("{} (namespace `{}`)", self.inner.url, self.inner.namespace)
    }

    async fn embed(&self, text: &str) -> Result<Vec<f32>, MemoryError> {
        embed_text(self.inner.embedder.as_ref(), &self.store_name(), text).await
    }

    /// Runs `f` holding the user's write lock (a key with a random token
    /// and a time-to-live, released only by its holder).
    async fn locked<R>(
        &self,
        keys: &Keys,
        f: impl AsyncFnOnce(&mut ConnectionManager) -> Result<R, MemoryError>,
    ) -> Result<R, MemoryError> {
        let _local = self.inner.local_locks.lock(&keys.prefix).await;
        let mut conn = self.conn().await?;
        let lock = keys.key("lock");
        let token = ulid::Ulid::new().to_string();
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        let mut pause = Duration::from_millis(2);
        loop {
            let got: Option<String> = redis::cmd("SET")
                .arg(&lock)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(LOCK_TTL.as_millis() as u64)
                .query_async(&mut conn)
                .await
                .map_err(db_error)?;
            if got.is_some() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(MemoryError::backend(
                    BACKEND,
                    format!(
                        "the write lock {lock} stayed taken for {LOCK_WAIT:?}: another writer \
                         holds it, or died holding it (it expires {LOCK_TTL:?} after it was \
                         taken); retry the write"
                    ),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        let result = f(&mut conn).await;
        let released: Result<i64, _> = Script::new(UNLOCK)
            .key(&lock)
            .arg(&token)
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = released {
            tracing::warn!(lock = %lock, error = %Redacted(&e), "could not release a memory write lock; it expires by itself");
        }
        result
    }
}

/// An episode's stored fields.
fn read_episode(
    user: &UserId,
    id: &str,
    mut fields: HashMap<String, String>,
) -> Result<Episode, MemoryError> {
    let corrupt = |message: String| MemoryError::Corrupt {
        backend: BACKEND.to_owned(),
        user: user.clone(),
        what: format!("episode {id}"),
        message,
    };
    let mut take = |name: &str| {
        fields
            .remove(name)
            .ok_or_else(|| corrupt(format!("field `{name}` is missing")))
    };
    let at: i64 = take("t")?
        .parse()
        .map_err(|e| corrupt(format!("field `t`: {e}")))?;
    let tools: EpisodeTools = serde_json::from_str(&take("tools")?)
        .map_err(|e| corrupt(format!("field `tools`: {e}")))?;
    let input = take("input")?;
    let output = take("output")?;
    let session = fields
        .remove("session")
        .map(SessionId::new)
        .transpose()
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(Episode {
        id: id.to_owned(),
        session,
        occurred_at: from_micros(at),
        input,
        output,
        tool_calls: tools.tool_calls,
        tool_transcript: tools.tool_transcript,
    })
}

fn decode_json<T: serde::de::DeserializeOwned>(
    user: &UserId,
    what: &str,
    raw: &str,
) -> Result<T, MemoryError> {
    serde_json::from_str(raw).map_err(|e| MemoryError::Corrupt {
        backend: BACKEND.to_owned(),
        user: user.clone(),
        what: what.to_owned(),
        message: e.to_string(),
    })
}

fn encode_json<T: serde::Serialize>(value: &T) -> Result<String, MemoryError> {
    serde_json::to_string(value).map_err(|e| MemoryError::backend(BACKEND, e))
}

impl RedisMemory {
    /// Loads the episodes `ids` (missing ones skipped), in the given order.
    async fn load_episodes(
        &self,
        conn: &mut ConnectionManager,
        keys: &Keys,
        user: &UserId,
        ids: &[String],
    ) -> Result<Vec<Episode>, MemoryError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(keys.episode(id));
        }
        let rows: Vec<HashMap<String, String>> = pipe.query_async(conn).await.map_err(db_error)?;
        ids.iter()
            .zip(rows)
            .filter(|(_, fields)| !fields.is_empty())
            .map(|(id, fields)| read_episode(user, id, fields))
            .collect()
    }

    /// Queues the removal of stored episode `id` (its `fields` as read)
    /// onto `pipe`, statistics included.
    fn unindex(
        &self,
        pipe: &mut Pipeline,
        keys: &Keys,
        mode: Vectors,
        id: &str,
        fields: &HashMap<String, String>,
    ) {
        for word in fields
            .get("terms")
            .map(String::as_str)
            .unwrap_or("")
            .split(' ')
        {
            if !word.is_empty() {
                pipe.hdel(keys.term(word), id).ignore();
            }
        }
        if let Some(s) = fields.get("session") {
            pipe.zrem(keys.session(s), id).ignore();
        }
        match mode {
            Vectors::Sets => {
                pipe.cmd("VREM").arg(keys.key("vec")).arg(id).ignore();
            }
            Vectors::Client => {
                pipe.hdel(keys.key("emb"), id).ignore();
            }
        }
        pipe.hdel(keys.key("idx"), id).ignore();
        pipe.zrem(keys.key("eps"), id).ignore();
        pipe.del(keys.episode(id)).ignore();
        let len: i64 = fields.get("len").and_then(|l| l.parse().ok()).unwrap_or(0);
        pipe.hincr(keys.key("stats"), "episodes", -1).ignore();
        pipe.hincr(keys.key("stats"), "total_len", -len).ignore();
    }

    /// Drops sessions left without episodes from the `sessions` set.
    async fn prune_sessions(
        &self,
        conn: &mut ConnectionManager,
        keys: &Keys,
        sessions: &HashSet<String>,
    ) -> Result<(), MemoryError> {
        for s in sessions {
            let left: u64 = conn.zcard(keys.session(s)).await.map_err(db_error)?;
            if left == 0 {
                let _: i64 = conn.zrem(keys.key("sessions"), s).await.map_err(db_error)?;
            }
        }
        Ok(())
    }

    async fn facts(
        &self,
        conn: &mut ConnectionManager,
        keys: &Keys,
        user: &UserId,
    ) -> Result<Vec<Fact>, MemoryError> {
        let raw: HashMap<String, String> =
            conn.hgetall(keys.key("facts")).await.map_err(db_error)?;
        raw.iter()
            .map(|(id, json)| decode_json(user, &format!("fact {id}"), json))
            .collect()
    }

    async fn blocks(
        &self,
        conn: &mut ConnectionManager,
        keys: &Keys,
        user: &UserId,
    ) -> Result<Vec<MemoryBlock>, MemoryError> {
        let raw: HashMap<String, String> =
            conn.hgetall(keys.key("blocks")).await.map_err(db_error)?;
        let mut blocks = raw
            .iter()
            .map(|(name, json)| decode_json(user, &format!("block {name}"), json))
            .collect::<Result<Vec<MemoryBlock>, _>>()?;
        blocks.sort_by(|a, b| {
            a.pinned_order
                .cmp(&b.pinned_order)
                .then(a.name.cmp(&b.name))
        });
        Ok(blocks)
    }

    async fn write_block(
        &self,
        user: &UserId,
        name: &str,
        text: &str,
        append: bool,
    ) -> Result<MemoryBlock, MemoryError> {
        check_block_name(name)?;
        self.mode().await?;
        let keys = Keys::new(&self.inner.namespace, user);
        self.locked(&keys, async |conn| {
            let blocks = self.blocks(conn, &keys, user).await?;
            let now = from_micros(micros(Utc::now()));
            let block = MemoryBlock::written(&blocks, name, text, append, now);
            let _: i64 = conn
                .hset(keys.key("blocks"), name, encode_json(&block)?)
                .await
                .map_err(db_error)?;
            Ok(block)
        })
        .await
    }

    /// The vector candidates: (episode id, cosine similarity), best first.
    async fn vector_hits(
        &self,
        conn: &mut ConnectionManager,
        keys: &Keys,
        mode: Vectors,
        vector: &[f32],
        filters: &Filters,
        n: usize,
    ) -> Result<Vec<(String, f32)>, MemoryError> {
        let mut hits: Vec<(String, f32)> = match mode {
            Vectors::Sets => {
                let mut cmd = redis::cmd("VSIM");
                cmd.arg(keys.key("vec"))
                    .arg("FP32")
                    .arg(vector_bytes(vector))
                    .arg("WITHSCORES")
                    .arg("COUNT")
                    .arg(n)
                    .arg("EF")
                    .arg(EF_SEARCH.max(n));
                if let Some(expr) = filters.expression() {
                    // The server stops a filtered walk after FILTER-EF
                    // nodes (default COUNT * 100; 0 is refused before Redis
                    // 8.2): the largest it takes lets it go as far as
                    // needed to fill COUNT.
                    cmd.arg("FILTER").arg(expr).arg("FILTER-EF").arg(u32::MAX);
                }
                let reply: Vec<(String, f64)> = cmd.query_async(conn).await.map_err(db_error)?;
                // VSIM scores (1 + cos) / 2.
                reply
                    .into_iter()
                    .map(|(id, s)| (id, (2.0 * s - 1.0) as f32))
                    .collect()
            }
            Vectors::Client => {
                let (vectors, index): (HashMap<String, Vec<u8>>, HashMap<String, String>) =
                    redis::pipe()
                        .hgetall(keys.key("emb"))
                        .hgetall(keys.key("idx"))
                        .query_async(conn)
                        .await
                        .map_err(db_error)?;
                let mut scored: Vec<(String, f32)> = vectors
                    .into_iter()
                    .filter(|(id, _)| {
                        index
                            .get(id)
                            .and_then(|raw| IndexEntry::decode(raw))
                            .is_some_and(|e| filters.admits(&e))
                    })
                    .map(|(id, blob)| {
                        let sim = text::cosine(vector, &bytes_vector(&blob));
                        (id, sim)
                    })
                    .collect();
                scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                scored.truncate(n);
                scored
            }
        };
        hits.retain(|(_, sim)| *sim > 0.0);
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(hits)
    }

    /// The keyword candidates: (episode id, BM25), best first.
    async fn keyword_hits(
        &self,
        conn: &mut ConnectionManager,
        keys: &Keys,
        query: &str,
        filters: &Filters,
        n: usize,
    ) -> Result<Vec<(String, f32)>, MemoryError> {
        let mut words = text::tokens(query);
        words.sort_unstable();
        words.dedup();
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET")
            .arg(keys.key("stats"))
            .arg(&["episodes", "total_len"]);
        for w in &words {
            pipe.hgetall(keys.term(w));
        }
        let mut reply: Vec<redis::Value> = pipe.query_async(conn).await.map_err(db_error)?;
        if reply.is_empty() {
            return Ok(Vec::new());
        }
        let postings: Vec<HashMap<String, u32>> = reply
            .split_off(1)
            .into_iter()
            .map(|v| redis::from_redis_value(v).map_err(|e| MemoryError::backend(BACKEND, e)))
            .collect::<Result<_, _>>()?;
        let (episodes, total_len): (Option<f64>, Option<f64>) =
            redis::from_redis_value(reply.remove(0))
                .map_err(|e| MemoryError::backend(BACKEND, e))?;
        let docs = episodes.unwrap_or(0.0);
        if docs <= 0.0 {
            return Ok(Vec::new());
        }
        let avg_len = (total_len.unwrap_or(0.0) / docs).max(1.0);
        let candidates: Vec<&String> = {
            let mut c: Vec<&String> = postings.iter().flat_map(|p| p.keys()).collect();
            c.sort_unstable();
            c.dedup();
            c
        };
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let entries: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(keys.key("idx"))
            .arg(&candidates)
            .query_async(conn)
            .await
            .map_err(db_error)?;
        let admitted: HashMap<&str, u32> = candidates
            .iter()
            .zip(entries)
            .filter_map(|(id, raw)| {
                let e = IndexEntry::decode(raw.as_deref()?)?;
                filters.admits(&e).then_some((id.as_str(), e.len))
            })
            .collect();
        let mut scores: HashMap<&str, f64> = HashMap::new();
        for list in &postings {
            let idf = text::bm25_idf(docs, list.len() as f64);
            for (id, tf) in list {
                if let Some(len) = admitted.get(id.as_str()) {
                    let s = text::bm25_weight(idf, f64::from(*tf), f64::from(*len), avg_len);
                    *scores.entry(id.as_str()).or_default() += s;
                }
            }
        }
        let mut hits: Vec<(String, f32)> = scores
            .into_iter()
            .map(|(id, s)| (id.to_owned(), s as f32))
            .collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        hits.truncate(n);
        Ok(hits)
    }
}

/// Queues the writes that store `episode` (whose old version, if any, the
/// caller has already unindexed): its hash, its places in the time and
/// session orders, its keyword postings, the statistics and its vector.
fn queue_episode(
    pipe: &mut Pipeline,
    keys: &Keys,
    mode: Vectors,
    episode: &Episode,
    text: &str,
    vector: &[f32],
) -> Result<(), MemoryError> {
    let (counts, len) = term_counts(text);
    let tools = encode_json(&EpisodeTools::from(episode))?;
    let at = micros(episode.occurred_at);
    let session = episode.session.as_ref().map(SessionId::as_str);
    let tag = session_tag(session);
    let words: Vec<&str> = counts.iter().map(|(w, _)| w.as_str()).collect();
    let mut fields: Vec<(&str, String)> = vec![
        ("t", at.to_string()),
        ("input", episode.input.clone()),
        ("output", episode.output.clone()),
        ("tools", tools),
        ("terms", words.join(" ")),
        ("len", len.to_string()),
    ];
    if let Some(s) = session {
        fields.push(("session", s.to_owned()));
    }
    pipe.hset_multiple(keys.episode(&episode.id), &fields)
        .ignore();
    pipe.zadd(keys.key("eps"), &episode.id, at).ignore();
    if let Some(s) = session {
        pipe.zadd(keys.session(s), &episode.id, at).ignore();
        pipe.cmd("ZADD")
            .arg(keys.key("sessions"))
            .arg("GT")
            .arg(at)
            .arg(s)
            .ignore();
    }
    let entry = IndexEntry {
        len,
        at,
        session: tag.clone(),
    };
    pipe.hset(keys.key("idx"), &episode.id, entry.encode())
        .ignore();
    for (word, tf) in &counts {
        pipe.hset(keys.term(word), &episode.id, *tf).ignore();
    }
    pipe.hincr(keys.key("stats"), "episodes", 1).ignore();
    pipe.hincr(keys.key("stats"), "total_len", i64::from(len))
        .ignore();
    match mode {
        Vectors::Sets => {
            let attributes = serde_json::json!({ "t": at, "s": tag }).to_string();
            pipe.cmd("VADD")
                .arg(keys.key("vec"))
                .arg("FP32")
                .arg(vector_bytes(vector))
                .arg(&episode.id)
                .arg("SETATTR")
                .arg(attributes)
                .ignore();
        }
        Vectors::Client => {
            pipe.hset(keys.key("emb"), &episode.id, vector_bytes(vector))
                .ignore();
        }
    }
    Ok(())
}

#[async_trait]
impl Memory for RedisMemory {
    fn backend(&self) -> &str {
        BACKEND
    }

    async fn working(&self, user: &UserId) -> Result<Vec<MemoryBlock>, MemoryError> {
        self.mode().await?;
        let mut conn = self.conn().await?;
        let keys = Keys::new(&self.inner.namespace, user);
        self.blocks(&mut conn, &keys, user).await
    }

    async fn update_block(
        &self,
        user: &UserId,
        name: &str,
        content: &str,
    ) -> Result<MemoryBlock, MemoryError> {
        self.write_block(user, name, content, false).await
    }

    async fn append_block(
        &self,
        user: &UserId,
        name: &str,
        text: &str,
    ) -> Result<MemoryBlock, MemoryError> {
        self.write_block(user, name, text, true).await
    }

    async fn remember_many(
        &self,
        user: &UserId,
        episodes: Vec<Episode>,
    ) -> Result<Vec<String>, MemoryError> {
        let ids: Vec<String> = episodes.iter().map(|e| e.id.clone()).collect();
        // A repeated id keeps its last episode, as one `remember` after
        // another would.
        let episodes = last_of_each_id(episodes);
        if episodes.is_empty() {
            return Ok(ids);
        }
        let mode = self.mode().await?;
        let (texts, vectors) =
            embed_episodes(self.inner.embedder.as_ref(), &self.store_name(), &episodes).await?;
        let keys = Keys::new(&self.inner.namespace, user);
        self.locked(&keys, async |conn| {
            let mut reads = redis::pipe();
            for episode in &episodes {
                reads.hgetall(keys.episode(&episode.id));
            }
            let olds: Vec<HashMap<String, String>> =
                reads.query_async(conn).await.map_err(db_error)?;
            let mut pipe = redis::pipe();
            pipe.atomic();
            let mut left_sessions = HashSet::new();
            for (((episode, text), vector), old) in
                episodes.iter().zip(&texts).zip(&vectors).zip(&olds)
            {
                if !old.is_empty() {
                    self.unindex(&mut pipe, &keys, mode, &episode.id, old);
                }
                let session = episode.session.as_ref().map(SessionId::as_str);
                if let Some(old_session) =
                    old.get("session").filter(|s| Some(s.as_str()) != session)
                {
                    left_sessions.insert(old_session.clone());
                }
                queue_episode(&mut pipe, &keys, mode, episode, text, vector)?;
            }
            let () = pipe.query_async(conn).await.map_err(db_error)?;
            if !left_sessions.is_empty() {
                self.prune_sessions(conn, &keys, &left_sessions).await?;
            }
            Ok(())
        })
        .await?;
        Ok(ids)
    }

    async fn recall_scored(
        &self,
        user: &UserId,
        query: &Recall,
    ) -> Result<Vec<EpisodeMatch>, MemoryError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let mode = self.mode().await?;
        let vector = if query.alpha > 0.0 {
            Some(self.embed(&query.text).await?)
        } else {
            None
        };
        let mut conn = self.conn().await?;
        let keys = Keys::new(&self.inner.namespace, user);
        let filters = Filters::of(query);
        let n = recall_candidates(query.limit);
        let by_vector = match &vector {
            Some(v) => {
                self.vector_hits(&mut conn, &keys, mode, v, &filters, n)
                    .await?
            }
            None => Vec::new(),
        };
        let by_keyword = if query.alpha < 1.0 {
            self.keyword_hits(&mut conn, &keys, &query.text, &filters, n)
                .await?
        } else {
            Vec::new()
        };
        let mut wanted: Vec<String> = by_vector
            .iter()
            .chain(&by_keyword)
            .map(|h| h.0.clone())
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut loaded: HashMap<String, Episode> = self
            .load_episodes(&mut conn, &keys, user, &wanted)
            .await?
            .into_iter()
            .map(|e| (e.id.clone(), e))
            .collect();
        Ok(fuse_matches(&by_vector, &by_keyword, query, |id| {
            loaded.remove(id)
        }))
    }

    async fn session_episodes(
        &self,
        user: &UserId,
        session: &SessionId,
        limit: usize,
    ) -> Result<Vec<Episode>, MemoryError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.mode().await?;
        let mut conn = self.conn().await?;
        let keys = Keys::new(&self.inner.namespace, user);
        let mut ids: Vec<String> = conn
            .zrevrange(keys.session(session.as_str()), 0, limit as isize - 1)
            .await
            .map_err(db_error)?;
        ids.reverse();
        self.load_episodes(&mut conn, &keys, user, &ids).await
    }

    async fn append_fact(&self, user: &UserId, fact: Fact) -> Result<Fact, MemoryError> {
        let mut fact = fact.validated()?;
        self.mode().await?;
        let keys = Keys::new(&self.inner.namespace, user);
        self.locked(&keys, async |conn| {
            let same: Vec<Fact> = self
                .facts(conn, &keys, user)
                .await?
                .into_iter()
                .filter(|f| {
                    f.id != fact.id && f.subject == fact.subject && f.predicate == fact.predicate
                })
                .collect();
            let closed = plan_supersession(&same, &fact).apply(&same, &mut fact);
            let mut pipe = redis::pipe();
            pipe.atomic();
            for f in &closed {
                pipe.hset(keys.key("facts"), &f.id, encode_json(f)?)
                    .ignore();
            }
            pipe.hset(keys.key("facts"), &fact.id, encode_json(&fact)?)
                .ignore();
            let () = pipe.query_async(conn).await.map_err(db_error)?;
            Ok(())
        })
        .await?;
        Ok(fact)
    }

    async fn query_facts(
        &self,
        user: &UserId,
        query: &FactQuery,
    ) -> Result<Vec<Fact>, MemoryError> {
        let query = query.clone().canonical()?;
        self.mode().await?;
        let mut conn = self.conn().await?;
        let keys = Keys::new(&self.inner.namespace, user);
        Ok(query.select(&self.facts(&mut conn, &keys, user).await?))
    }

    async fn recall_facts(
        &self,
        user: &UserId,
        text: &str,
        limit: usize,
        valid_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Fact>, MemoryError> {
        self.mode().await?;
        let mut conn = self.conn().await?;
        let keys = Keys::new(&self.inner.namespace, user);
        let facts = self
            .facts(&mut conn, &keys, user)
            .await?
            .into_iter()
            .filter(|f| valid_at.is_none_or(|at| f.holds_at(at)))
            .collect();
        Ok(rank_facts(facts, text, limit))
    }

    async fn profile(&self, user: &UserId) -> Result<MemoryProfile, MemoryError> {
        let mode = self.mode().await?;
        let mut conn = self.conn().await?;
        let keys = Keys::new(&self.inner.namespace, user);
        let (episodes, facts, blocks, last, sessions): (
            u64,
            u64,
            u64,
            Vec<(String, i64)>,
            Vec<String>,
        ) = redis::pipe()
            .zcard(keys.key("eps"))
            .hlen(keys.key("facts"))
            .hlen(keys.key("blocks"))
            .zrange_withscores(keys.key("eps"), -1, -1)
            .zrevrange(keys.key("sessions"), 0, 9)
            .query_async(&mut conn)
            .await
            .map_err(db_error)?;
        let recent_sessions = sessions
            .into_iter()
            .map(SessionId::new)
            .collect::<Result<_, _>>()
            .map_err(|e| MemoryError::Corrupt {
                backend: BACKEND.to_owned(),
                user: user.clone(),
                what: "session id".to_owned(),
                message: e.to_string(),
            })?;
        let sample_facts = sample_facts(&self.facts(&mut conn, &keys, user).await?);
        Ok(MemoryProfile {
            user: user.clone(),
            episode_count: episodes,
            fact_count: facts,
            block_count: blocks,
            last_seen: last.first().map(|(_, at)| from_micros(*at)),
            recent_sessions,
            sample_facts,
            backend: BACKEND.to_owned(),
            vector_search: mode.describe().to_owned(),
        })
    }

    async fn forget(&self, forget: &Forget) -> Result<Forgotten, MemoryError> {
        // No background extraction may write the erased data back.
        loomflow_core::memory::stop_extractions(forget).await;
        let mode = self.mode().await?;
        let user = &forget.user;
        let keys = Keys::new(&self.inner.namespace, user);
        self.locked(&keys, async |conn| {
            let source = match &forget.session {
                Some(s) => keys.session(s.as_str()),
                None => keys.key("eps"),
            };
            let max = match forget.before {
                Some(b) => format!("({}", micros(b)),
                None => "+inf".to_owned(),
            };
            let ids: Vec<String> = conn
                .zrangebyscore(&source, "-inf", max)
                .await
                .map_err(db_error)?;
            let mut sessions = HashSet::new();
            for chunk in ids.chunks(256) {
                let mut read = redis::pipe();
                for id in chunk {
                    read.hgetall(keys.episode(id));
                }
                let rows: Vec<HashMap<String, String>> =
                    read.query_async(conn).await.map_err(db_error)?;
                let mut pipe = redis::pipe();
                pipe.atomic();
                for (id, fields) in chunk.iter().zip(&rows) {
                    if let Some(s) = fields.get("session") {
                        sessions.insert(s.clone());
                    }
                    self.unindex(&mut pipe, &keys, mode, id, fields);
                }
                let () = pipe.query_async(conn).await.map_err(db_error)?;
            }
            self.prune_sessions(conn, &keys, &sessions).await?;
            let erased: Vec<&str> = ids.iter().map(String::as_str).collect();
            let doomed_facts: Vec<String> = self
                .facts(conn, &keys, user)
                .await?
                .into_iter()
                .filter(|f| forget.erases_fact(f, &erased))
                .map(|f| f.id)
                .collect();
            let doomed_blocks: Vec<String> = self
                .blocks(conn, &keys, user)
                .await?
                .into_iter()
                .filter(|b| forget.erases_block(b))
                .map(|b| b.name)
                .collect();
            let mut pipe = redis::pipe();
            pipe.atomic();
            if !doomed_facts.is_empty() {
                pipe.hdel(keys.key("facts"), &doomed_facts).ignore();
            }
            if !doomed_blocks.is_empty() {
                pipe.hdel(keys.key("blocks"), &doomed_blocks).ignore();
            }
            if forget.is_whole_user() {
                // Nothing of the user is left: drop the bookkeeping too.
                pipe.del(&[
                    keys.key("stats"),
                    keys.key("sessions"),
                    keys.key("vec"),
                    keys.key("emb"),
                    keys.key("idx"),
                ])
                .ignore();
            }
            let () = pipe.query_async(conn).await.map_err(db_error)?;
            Ok(Forgotten {
                episodes: ids.len() as u64,
                facts: doomed_facts.len() as u64,
                blocks: doomed_blocks.len() as u64,
            })
        })
        .await
    }

    async fn export(&self, user: &UserId) -> Result<MemoryExport, MemoryError> {
        self.mode().await?;
        let mut conn = self.conn().await?;
        let keys = Keys::new(&self.inner.namespace, user);
        let ids: Vec<String> = conn
            .zrange(keys.key("eps"), 0, -1)
            .await
            .map_err(db_error)?;
        let episodes = self.load_episodes(&mut conn, &keys, user, &ids).await?;
        let mut facts = self.facts(&mut conn, &keys, user).await?;
        facts.sort_by(|a, b| a.valid_from.cmp(&b.valid_from).then(a.id.cmp(&b.id)));
        let blocks = self.blocks(&mut conn, &keys, user).await?;
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
    fn key_parts_cannot_collide() {
        let a = Keys::new("a", &UserId::new("b:c").unwrap());
        let b = Keys::new("a:b", &UserId::new("c").unwrap());
        assert_ne!(a.prefix, b.prefix);
        let pattern = Keys::new("", &UserId::new("user:*}{x%").unwrap());
        assert_eq!(pattern.prefix, "lf:mem:{:user%3A*%7D%7Bx%25}");
    }

    #[test]
    fn session_tags_are_hex_and_filters_quote_nothing_else() {
        assert_eq!(session_tag(Some("a\"b")), "s612262");
        assert_eq!(session_tag(None), "");
        let f = Filters {
            range: Some((1, 2)),
            skip: Some(session_tag(Some("x"))),
        };
        assert_eq!(
            f.expression().unwrap(),
            ".t >= 1 and .t < 2 and .s != \"s78\""
        );
    }
}
