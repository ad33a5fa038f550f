//! [`SqliteMemory`]: long-term memory in one SQLite file.
//!
//! Rows are the truth: episodes (with their embeddings), facts and working
//! blocks live in tables keyed by (namespace, user). Recall runs on an
//! in-process index per user (HNSW over the stored embeddings, BM25 over
//! the text), built from the table on the user's first recall and kept up
//! to date by this process's writes. A version number per user, bumped in
//! the same transaction as every write, tells a process when another one
//! changed the user's episodes, so its index is rebuilt rather than served
//! stale.

use loomflow_core::redact::Redacted;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use loomflow_core::memory::text::Bm25Index;
use loomflow_core::memory::{
    Episode, EpisodeMatch, EpisodeTools, Fact, FactQuery, Forget, Forgotten, HashEmbedder, Hnsw,
    Memory, MemoryBlock, MemoryError, MemoryExport, MemoryProfile, Recall, check_block_name,
    embed_episodes, embed_text, fuse_matches, plan_supersession, rank_facts, recall_candidates,
};
use loomflow_core::{Embedder, SessionId, UserId};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

const BACKEND: &str = "sqlite";
/// Search breadth of the vector index (HNSW `ef`).
const EF_SEARCH: usize = 64;
/// Users whose recall index stays in memory at once.
const MAX_CACHED_USERS: usize = 1024;
/// A user's vector graph is saved in the file (table `memory_ann`) from
/// this many episodes on; smaller indexes rebuild in well under a second.
const SAVE_FROM: usize = 2_000;
/// A saved graph missing more than this share of its nodes' rows (erased
/// or replaced since) is rebuilt instead of reopened.
const MAX_STALE_SHARE: f64 = 0.1;

/// Long-term [`Memory`] in one SQLite file (WAL), the embedded default.
///
/// ```
/// use loomflow_core::memory::{Episode, Memory, Recall};
/// use loomflow_core::UserId;
/// use loomflow_sqlite::SqliteMemory;
///
/// # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let memory = SqliteMemory::open(dir.path().join("bot.db")).unwrap();
/// let alice = UserId::new("alice").unwrap();
/// memory.remember(&alice, Episode::new("Book me a flight to Lisbon", "Booked.")).await.unwrap();
/// let hits = memory.recall(&alice, &Recall::new("Lisbon flight")).await.unwrap();
/// assert_eq!(hits[0].input, "Book me a flight to Lisbon");
/// # });
/// ```
#[derive(Clone)]
pub struct SqliteMemory {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteMemory")
            .field("path", &self.inner.path)
            .field("namespace", &self.inner.namespace)
            .field("embedder", &self.inner.embedder.name())
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// Shared by every handle derived from one `open` (another namespace
    /// or embedder on the same database).
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    namespace: String,
    embedder: Arc<dyn Embedder>,
    indexes: Mutex<IndexCache>,
}

#[derive(Default)]
struct IndexCache {
    users: HashMap<UserId, (u64, Arc<RwLock<UserIndex>>)>,
    tick: u64,
}

/// One user's recall index, as of `version`.
struct UserIndex {
    version: i64,
    vectors: Hnsw,
    keywords: Bm25Index,
    /// Per slot (the index's node id): the row, its time and session; `None`
    /// once removed.
    slots: Vec<Option<SlotMeta>>,
    by_seq: HashMap<i64, u32>,
    /// Writes applied since the graph was last saved in the file (or
    /// since it was built, if it never was).
    unsaved: usize,
}

struct SlotMeta {
    seq: i64,
    occurred_at: i64,
    session: Option<SessionId>,
    /// The indexed text, kept to unindex it.
    text: String,
}

impl UserIndex {
    fn new(dim: usize, version: i64) -> Self {
        Self {
            version,
            vectors: Hnsw::new(dim),
            keywords: Bm25Index::default(),
            slots: Vec::new(),
            by_seq: HashMap::new(),
            unsaved: 0,
        }
    }

    /// Live episodes.
    fn live(&self) -> usize {
        self.by_seq.len()
    }

    /// True when the graph should be (re)saved: large enough to be worth
    /// it, and a quarter of it written since the last save.
    fn save_due(&self) -> bool {
        self.live() >= SAVE_FROM && self.unsaved >= SAVE_FROM.max(self.live() / 4)
    }

    fn insert(&mut self, meta: SlotMeta, vector: &[f32]) {
        self.unsaved += 1;
        let slot = self.vectors.insert(vector);
        self.keywords.insert(slot, &meta.text);
        self.by_seq.insert(meta.seq, slot);
        self.slots.push(Some(meta));
    }

    fn remove_seq(&mut self, seq: i64) {
        if let Some(slot) = self.by_seq.remove(&seq)
            && let Some(meta) = self.slots.get_mut(slot as usize).and_then(Option::take)
        {
            self.vectors.remove(slot);
            self.keywords.remove(slot, &meta.text);
            self.unsaved += 1;
        }
    }
}

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::UNIX_EPOCH)
}

fn db_error(e: impl std::fmt::Display) -> MemoryError {
    MemoryError::backend(BACKEND, e)
}

fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bytes_vector(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS memory_meta (
    ns TEXT PRIMARY KEY,
    embedder TEXT NOT NULL,
    dimensions INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS memory_users (
    ns TEXT NOT NULL,
    user_key TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (ns, user_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS memory_episodes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ns TEXT NOT NULL,
    user_key TEXT NOT NULL,
    id TEXT NOT NULL,
    session TEXT,
    occurred_at INTEGER NOT NULL,
    input TEXT NOT NULL,
    output TEXT NOT NULL,
    extra TEXT NOT NULL,
    embedding BLOB NOT NULL,
    UNIQUE (ns, user_key, id)
);
CREATE INDEX IF NOT EXISTS memory_episodes_session
    ON memory_episodes (ns, user_key, session, occurred_at);
CREATE INDEX IF NOT EXISTS memory_episodes_time
    ON memory_episodes (ns, user_key, occurred_at);
CREATE TABLE IF NOT EXISTS memory_facts (
    ns TEXT NOT NULL,
    user_key TEXT NOT NULL,
    id TEXT NOT NULL,
    subject TEXT NOT NULL,
    predicate TEXT NOT NULL,
    object TEXT NOT NULL,
    confidence REAL NOT NULL,
    valid_from INTEGER NOT NULL,
    valid_until INTEGER,
    recorded_at INTEGER NOT NULL,
    sources TEXT NOT NULL,
    PRIMARY KEY (ns, user_key, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS memory_facts_sp
    ON memory_facts (ns, user_key, subject, predicate);
CREATE TABLE IF NOT EXISTS memory_ann (
    ns TEXT NOT NULL,
    user_key TEXT NOT NULL,
    dimensions INTEGER NOT NULL,
    seqs BLOB NOT NULL,
    links BLOB NOT NULL,
    PRIMARY KEY (ns, user_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS memory_blocks (
    ns TEXT NOT NULL,
    user_key TEXT NOT NULL,
    name TEXT NOT NULL,
    content TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    pinned_order INTEGER NOT NULL,
    PRIMARY KEY (ns, user_key, name)
) WITHOUT ROWID;
";

impl SqliteMemory {
    /// Opens (creating if needed) the memory in the SQLite file at `path`,
    /// embedding with the [`HashEmbedder`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, MemoryError> {
        let path = path.as_ref();
        let conn = Connection::open(path)
            .map_err(|e| db_error(format!("cannot open `{}`: {e}", path.display())))?;
        Self::init(conn, path.to_path_buf())
    }

    /// A memory in a private in-memory database (gone when dropped).
    pub fn open_in_memory() -> Result<Self, MemoryError> {
        let conn = Connection::open_in_memory().map_err(db_error)?;
        Self::init(conn, PathBuf::from(":memory:"))
    }

    fn init(conn: Connection, path: PathBuf) -> Result<Self, MemoryError> {
        let configure = |conn: &Connection| -> rusqlite::Result<()> {
            let wait = std::time::Duration::from_secs(10);
            conn.busy_timeout(wait)?;
            crate::busy::patiently(wait, || {
                conn.execute_batch(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )?;
                conn.execute_batch(SCHEMA)
            })
        };
        configure(&conn)
            .map_err(|e| db_error(format!("cannot set up `{}`: {e}", path.display())))?;
        Ok(Self {
            inner: Arc::new(Inner {
                conn: Arc::new(Mutex::new(conn)),
                path,
                namespace: String::new(),
                embedder: Arc::new(HashEmbedder::default()),
                indexes: Mutex::new(IndexCache::default()),
            }),
        })
    }

    /// The same memory embedding with `embedder`. A file keeps the
    /// embedder's name and dimension on its first write; a different
    /// dimension later is a [`MemoryError::Dimensions`].
    pub fn with_embedder(self, embedder: Arc<dyn Embedder>) -> Self {
        self.rebuild(|inner| inner.embedder = embedder)
    }

    /// The same file seen through namespace `namespace`: two namespaces
    /// share nothing (for several bots in one file).
    pub fn with_namespace(self, namespace: impl Into<String>) -> Self {
        let namespace = namespace.into();
        self.rebuild(|inner| inner.namespace = namespace)
    }

    /// A handle on the same connection with `change` applied and an index
    /// cache of its own (a cached index belongs to one namespace and
    /// embedder).
    fn rebuild(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Inner {
            conn: self.inner.conn.clone(),
            path: self.inner.path.clone(),
            namespace: self.inner.namespace.clone(),
            embedder: self.inner.embedder.clone(),
            indexes: Mutex::new(IndexCache::default()),
        };
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    async fn embed(&self, text: &str) -> Result<Vec<f32>, MemoryError> {
        let store = self.inner.path.display().to_string();
        embed_text(self.inner.embedder.as_ref(), &store, text).await
    }

    /// Runs `f` with the connection on a blocking thread.
    async fn with_conn<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner, &mut Connection) -> Result<R, MemoryError> + Send + 'static,
    ) -> Result<R, MemoryError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = lock(&inner.conn);
            f(&inner, &mut conn)
        })
        .await
        .map_err(|e| db_error(format!("a memory task failed: {e}")))?
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Inner {
    fn ns(&self) -> &str {
        &self.namespace
    }

    /// Records the embedder on the first write; refuses another dimension.
    fn check_embedder(&self, tx: &Transaction<'_>) -> Result<(), MemoryError> {
        let stored: Option<(String, i64)> = tx
            .query_row(
                "SELECT embedder, dimensions FROM memory_meta WHERE ns = ?1",
                [self.ns()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db_error)?;
        let dims = self.embedder.dimensions();
        match stored {
            None => {
                tx.execute(
                    "INSERT INTO memory_meta (ns, embedder, dimensions) VALUES (?1, ?2, ?3)",
                    params![self.ns(), self.embedder.name(), dims as i64],
                )
                .map_err(db_error)?;
                Ok(())
            }
            Some((_, d)) if d as usize == dims => Ok(()),
            Some((name, d)) => Err(MemoryError::Dimensions {
                store: format!("{} (embedder `{name}`)", self.path.display()),
                stored: d as usize,
                embedder: self.embedder.name().to_owned(),
                made: dims,
            }),
        }
    }

    fn version(&self, conn: &Connection, user: &UserId) -> Result<i64, MemoryError> {
        conn.query_row(
            "SELECT version FROM memory_users WHERE ns = ?1 AND user_key = ?2",
            params![self.ns(), user.storage_key()],
            |r| r.get(0),
        )
        .optional()
        .map(|v| v.unwrap_or(0))
        .map_err(db_error)
    }

    /// Bumps the user's version; returns (old, new).
    fn bump(&self, tx: &Transaction<'_>, user: &UserId) -> Result<(i64, i64), MemoryError> {
        let old = self.version(tx, user)?;
        tx.execute(
            "INSERT INTO memory_users (ns, user_key, version) VALUES (?1, ?2, ?3)
             ON CONFLICT (ns, user_key) DO UPDATE SET version = excluded.version",
            params![self.ns(), user.storage_key(), old + 1],
        )
        .map_err(db_error)?;
        Ok((old, old + 1))
    }

    /// The user's index as of the stored version, rebuilt if stale.
    fn index(
        &self,
        conn: &Connection,
        user: &UserId,
    ) -> Result<Arc<RwLock<UserIndex>>, MemoryError> {
        let version = self.version(conn, user)?;
        {
            let mut cache = lock(&self.indexes);
            cache.tick += 1;
            let tick = cache.tick;
            if let Some((t, index)) = cache.users.get_mut(user)
                && index.read().map(|i| i.version == version).unwrap_or(false)
            {
                *t = tick;
                return Ok(index.clone());
            }
        }
        let mut index = match self.reopen_saved(conn, user, version)? {
            Some(index) => index,
            None => {
                let mut index = UserIndex::new(self.embedder.dimensions(), version);
                self.each_row(conn, user, |meta, blob| {
                    index.insert(meta, &bytes_vector(blob));
                    Ok(())
                })?;
                tracing::debug!(
                    user = %user, episodes = index.live(), "built the recall index from the rows"
                );
                index
            }
        };
        if index.save_due() {
            self.save_graph(conn, user, &mut index);
        }
        let index = Arc::new(RwLock::new(index));
        let mut cache = lock(&self.indexes);
        cache.tick += 1;
        let tick = cache.tick;
        if cache.users.len() >= MAX_CACHED_USERS
            && let Some(oldest) = cache
                .users
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(u, _)| u.clone())
        {
            cache.users.remove(&oldest);
        }
        cache.users.insert(user.clone(), (tick, index.clone()));
        Ok(index)
    }

    /// Calls `f` with every episode row of the user (its slot metadata and
    /// embedding bytes), in `seq` order.
    fn each_row(
        &self,
        conn: &Connection,
        user: &UserId,
        mut f: impl FnMut(SlotMeta, &[u8]) -> Result<(), MemoryError>,
    ) -> Result<(), MemoryError> {
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, session, occurred_at, input, output, embedding FROM memory_episodes
                 WHERE ns = ?1 AND user_key = ?2 ORDER BY seq",
            )
            .map_err(db_error)?;
        let mut rows = stmt
            .query(params![self.ns(), user.storage_key()])
            .map_err(db_error)?;
        while let Some(row) = rows.next().map_err(db_error)? {
            let seq: i64 = row.get(0).map_err(db_error)?;
            let session: Option<String> = row.get(1).map_err(db_error)?;
            let session = session
                .map(SessionId::new)
                .transpose()
                .map_err(|e| corrupt(user, format!("episode #{seq}"), e))?;
            let input: String = row.get(3).map_err(db_error)?;
            let output: String = row.get(4).map_err(db_error)?;
            let meta = SlotMeta {
                seq,
                occurred_at: row.get(2).map_err(db_error)?,
                session,
                text: format!("{input}\n{output}"),
            };
            let blob = row
                .get_ref(5)
                .map_err(db_error)?
                .as_blob()
                .map_err(db_error)?;
            f(meta, blob)?;
        }
        Ok(())
    }

    /// The user's index from the graph saved in the file and the rows:
    /// the saved links over the rows' vectors, rows written since inserted,
    /// nodes whose rows are gone tombstoned. `None` when nothing usable is
    /// saved (none, another dimension, a damaged blob, rows it does not
    /// account for, or too many of its nodes gone): then the caller
    /// rebuilds.
    fn reopen_saved(
        &self,
        conn: &Connection,
        user: &UserId,
        version: i64,
    ) -> Result<Option<UserIndex>, MemoryError> {
        let dim = self.embedder.dimensions();
        let saved: Option<(i64, Vec<u8>, Vec<u8>)> = conn
            .prepare_cached(
                "SELECT dimensions, seqs, links FROM memory_ann WHERE ns = ?1 AND user_key = ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![self.ns(), user.storage_key()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
            })
            .map_err(db_error)?;
        let Some((dims, seqs, links)) = saved else {
            return Ok(None);
        };
        let refuse = |why: &str| {
            tracing::warn!(
                user = %user, path = %self.path.display(), "the saved recall graph is not used ({why}); rebuilding it"
            );
            Ok(None)
        };
        if dims as usize != dim || seqs.len() % 8 != 0 {
            return refuse("it was saved for another embedding size");
        }
        // Node i's row; -1 for a node removed before the save.
        let seqs: Vec<i64> = seqs
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        let n = seqs.len();
        let max_seq = seqs.iter().copied().max().unwrap_or(-1);
        let node_of: HashMap<i64, u32> = seqs
            .iter()
            .enumerate()
            .filter(|(_, s)| **s >= 0)
            .map(|(node, s)| (*s, node as u32))
            .collect();
        let mut vectors = vec![0.0f32; n * dim];
        let mut slots: Vec<Option<SlotMeta>> = (0..n).map(|_| None).collect();
        let mut later: Vec<(SlotMeta, Vec<f32>)> = Vec::new();
        let mut unknown = false;
        self.each_row(conn, user, |meta, blob| {
            match node_of.get(&meta.seq) {
                Some(&node) if blob.len() == dim * 4 => {
                    let at = node as usize * dim;
                    for (x, b) in vectors[at..at + dim].iter_mut().zip(blob.chunks_exact(4)) {
                        *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    }
                    slots[node as usize] = Some(meta);
                }
                None if meta.seq > max_seq => later.push((meta, bytes_vector(blob))),
                _ => unknown = true,
            }
            Ok(())
        })?;
        if unknown {
            return refuse("rows it does not account for");
        }
        let gone = slots.iter().filter(|s| s.is_none()).count();
        if gone as f64 > n as f64 * MAX_STALE_SHARE {
            return refuse("too many of its episodes were erased or replaced since");
        }
        let mut graph = match Hnsw::from_links(&links, vectors) {
            Ok(graph) => graph,
            Err(e) => return refuse(&e.to_string()),
        };
        let mut index = UserIndex::new(dim, version);
        for (node, slot) in slots.iter().enumerate() {
            match slot {
                Some(meta) => {
                    index.keywords.insert(node as u32, &meta.text);
                    index.by_seq.insert(meta.seq, node as u32);
                }
                None => graph.remove(node as u32),
            }
        }
        index.vectors = graph;
        index.slots = slots;
        let added = later.len();
        for (meta, vector) in later {
            index.insert(meta, &vector);
        }
        index.unsaved += gone;
        tracing::debug!(
            user = %user, nodes = n, added, gone, "reopened the saved recall graph"
        );
        Ok(Some(index))
    }

    /// Saves the user's vector graph in the file (a failure is logged: the
    /// graph is a cache of the rows, rebuilt when missing).
    fn save_graph(&self, conn: &Connection, user: &UserId, index: &mut UserIndex) {
        let seqs: Vec<u8> = index
            .slots
            .iter()
            .flat_map(|s| s.as_ref().map_or(-1, |m| m.seq).to_le_bytes())
            .collect();
        let saved = conn.execute(
            "INSERT INTO memory_ann (ns, user_key, dimensions, seqs, links) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (ns, user_key) DO UPDATE SET
                dimensions = excluded.dimensions, seqs = excluded.seqs, links = excluded.links",
            params![
                self.ns(),
                user.storage_key(),
                index.vectors.dim() as i64,
                seqs,
                index.vectors.save_links()
            ],
        );
        match saved {
            Ok(_) => index.unsaved = 0,
            Err(e) => tracing::warn!(
                user = %user, path = %self.path.display(), error = %Redacted(&e),
                "could not save the recall graph; the next process rebuilds it"
            ),
        }
    }

    /// Saves the user's cached graph if enough was written since its last
    /// save (see [`UserIndex::save_due`]).
    fn save_graph_if_due(&self, conn: &Connection, user: &UserId) {
        let Some(index) = lock(&self.indexes).users.get(user).map(|(_, i)| i.clone()) else {
            return;
        };
        let mut index = index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if index.save_due() {
            self.save_graph(conn, user, &mut index);
        }
    }

    /// Applies this process's own write to the cached index when the index
    /// was current just before it; otherwise drops it (rebuilt on demand).
    fn after_write(
        &self,
        user: &UserId,
        (old, new): (i64, i64),
        apply: impl FnOnce(&mut UserIndex),
    ) {
        let mut cache = lock(&self.indexes);
        let Some((_, index)) = cache.users.get(user) else {
            return;
        };
        let mut index = index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if index.version == old {
            apply(&mut index);
            index.version = new;
        } else {
            drop(index);
            cache.users.remove(user);
        }
    }

    fn read_episode(&self, user: &UserId, row: &rusqlite::Row<'_>) -> Result<Episode, MemoryError> {
        // Columns: id, session, occurred_at, input, output, extra.
        let id: String = row.get(0).map_err(db_error)?;
        let session: Option<String> = row.get(1).map_err(db_error)?;
        let session = session
            .map(SessionId::new)
            .transpose()
            .map_err(|e| corrupt(user, format!("episode {id}"), e))?;
        let extra: String = row.get(5).map_err(db_error)?;
        let extra: EpisodeTools =
            serde_json::from_str(&extra).map_err(|e| corrupt(user, format!("episode {id}"), e))?;
        Ok(Episode {
            session,
            occurred_at: from_micros(row.get(2).map_err(db_error)?),
            input: row.get(3).map_err(db_error)?,
            output: row.get(4).map_err(db_error)?,
            tool_calls: extra.tool_calls,
            tool_transcript: extra.tool_transcript,
            id,
        })
    }

    /// The user's episodes matching `filter` (SQL after `WHERE`, with the
    /// namespace and user key bound as ?1 and ?2), with their row numbers.
    fn episodes_where(
        &self,
        conn: &Connection,
        user: &UserId,
        filter: &str,
        extra: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<(i64, Episode)>, MemoryError> {
        let sql = format!(
            "SELECT id, session, occurred_at, input, output, extra, seq FROM memory_episodes
             WHERE {filter}"
        );
        self.rows(conn, user, &sql, extra, |row| {
            let seq: i64 = row.get(6).map_err(db_error)?;
            Ok((seq, self.read_episode(user, row)?))
        })
    }

    /// Runs `sql` with the namespace and user key bound as ?1 and ?2 and
    /// `extra` after them, reading each row with `read`.
    fn rows<T>(
        &self,
        conn: &Connection,
        user: &UserId,
        sql: &str,
        extra: &[&dyn rusqlite::ToSql],
        mut read: impl FnMut(&rusqlite::Row<'_>) -> Result<T, MemoryError>,
    ) -> Result<Vec<T>, MemoryError> {
        let mut stmt = conn.prepare_cached(sql).map_err(db_error)?;
        let key = user.storage_key();
        let mut args: Vec<&dyn rusqlite::ToSql> = vec![&self.namespace, &key];
        args.extend_from_slice(extra);
        let mut rows = stmt.query(args.as_slice()).map_err(db_error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(db_error)? {
            out.push(read(row)?);
        }
        Ok(out)
    }

    fn facts_where(
        &self,
        conn: &Connection,
        user: &UserId,
        filter: &str,
        extra: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Fact>, MemoryError> {
        let sql = format!(
            "SELECT id, subject, predicate, object, confidence, valid_from, valid_until,
                    recorded_at, sources
             FROM memory_facts WHERE ns = ?1 AND user_key = ?2 {filter}"
        );
        self.rows(conn, user, &sql, extra, |row| {
            let id: String = row.get(0).map_err(db_error)?;
            let sources: String = row.get(8).map_err(db_error)?;
            let sources: Vec<String> = serde_json::from_str(&sources)
                .map_err(|e| corrupt(user, format!("fact {id}"), e))?;
            let until: Option<i64> = row.get(6).map_err(db_error)?;
            Ok(Fact {
                subject: row.get(1).map_err(db_error)?,
                predicate: row.get(2).map_err(db_error)?,
                object: row.get(3).map_err(db_error)?,
                confidence: row.get::<_, f64>(4).map_err(db_error)? as f32,
                valid_from: from_micros(row.get(5).map_err(db_error)?),
                valid_until: until.map(from_micros),
                recorded_at: from_micros(row.get(7).map_err(db_error)?),
                sources,
                id,
            })
        })
    }

    fn blocks(&self, conn: &Connection, user: &UserId) -> Result<Vec<MemoryBlock>, MemoryError> {
        let mut stmt = conn
            .prepare_cached(
                "SELECT name, content, updated_at, pinned_order FROM memory_blocks
                 WHERE ns = ?1 AND user_key = ?2 ORDER BY pinned_order, name",
            )
            .map_err(db_error)?;
        let rows = stmt
            .query_map(params![self.ns(), user.storage_key()], read_block)
            .map_err(db_error)?;
        rows.collect::<Result<_, _>>().map_err(db_error)
    }

    fn write_block(
        &self,
        conn: &mut Connection,
        user: &UserId,
        name: &str,
        text: &str,
        append: bool,
    ) -> Result<MemoryBlock, MemoryError> {
        let tx = conn.transaction().map_err(db_error)?;
        let key = user.storage_key();
        let now = micros(Utc::now());
        let current: Option<String> = tx
            .query_row(
                "SELECT content FROM memory_blocks WHERE ns = ?1 AND user_key = ?2 AND name = ?3",
                params![self.ns(), key, name],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_error)?;
        match current {
            Some(content) => {
                let content = match (append, content.is_empty()) {
                    (true, false) => format!("{content}\n{text}"),
                    (true, true) | (false, _) => text.to_owned(),
                };
                tx.execute(
                    "UPDATE memory_blocks SET content = ?4, updated_at = ?5
                     WHERE ns = ?1 AND user_key = ?2 AND name = ?3",
                    params![self.ns(), key, name, content, now],
                )
                .map_err(db_error)?;
            }
            None => {
                tx.execute(
                    "INSERT INTO memory_blocks (ns, user_key, name, content, updated_at, pinned_order)
                     VALUES (?1, ?2, ?3, ?4, ?5, (SELECT COALESCE(MAX(pinned_order) + 1, 0)
                        FROM memory_blocks WHERE ns = ?1 AND user_key = ?2))",
                    params![self.ns(), key, name, text, now],
                )
                .map_err(db_error)?;
            }
        }
        let block = tx
            .query_row(
                "SELECT name, content, updated_at, pinned_order FROM memory_blocks
                 WHERE ns = ?1 AND user_key = ?2 AND name = ?3",
                params![self.ns(), key, name],
                read_block,
            )
            .map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        Ok(block)
    }
}

/// A block from `SELECT name, content, updated_at, pinned_order`.
fn read_block(r: &rusqlite::Row<'_>) -> rusqlite::Result<MemoryBlock> {
    Ok(MemoryBlock {
        name: r.get(0)?,
        content: r.get(1)?,
        updated_at: from_micros(r.get(2)?),
        pinned_order: r.get::<_, i64>(3)? as u32,
    })
}

fn corrupt(user: &UserId, what: String, e: impl std::fmt::Display) -> MemoryError {
    MemoryError::Corrupt {
        backend: BACKEND.to_owned(),
        user: user.clone(),
        what,
        message: e.to_string(),
    }
}

fn insert_fact(tx: &Transaction<'_>, ns: &str, user: &UserId, f: &Fact) -> Result<(), MemoryError> {
    let sources = serde_json::to_string(&f.sources).map_err(db_error)?;
    tx.execute(
        "INSERT INTO memory_facts (ns, user_key, id, subject, predicate, object, confidence,
            valid_from, valid_until, recorded_at, sources)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            ns,
            user.storage_key(),
            f.id,
            f.subject,
            f.predicate,
            f.object,
            f64::from(f.confidence),
            micros(f.valid_from),
            f.valid_until.map(micros),
            micros(f.recorded_at),
            sources
        ],
    )
    .map_err(db_error)?;
    Ok(())
}

#[async_trait]
impl Memory for SqliteMemory {
    fn backend(&self) -> &str {
        BACKEND
    }

    async fn working(&self, user: &UserId) -> Result<Vec<MemoryBlock>, MemoryError> {
        let user = user.clone();
        self.with_conn(move |inner, conn| inner.blocks(conn, &user))
            .await
    }

    async fn update_block(
        &self,
        user: &UserId,
        name: &str,
        content: &str,
    ) -> Result<MemoryBlock, MemoryError> {
        check_block_name(name)?;
        let (user, name, content) = (user.clone(), name.to_owned(), content.to_owned());
        self.with_conn(move |inner, conn| inner.write_block(conn, &user, &name, &content, false))
            .await
    }

    async fn append_block(
        &self,
        user: &UserId,
        name: &str,
        text: &str,
    ) -> Result<MemoryBlock, MemoryError> {
        check_block_name(name)?;
        let (user, name, text) = (user.clone(), name.to_owned(), text.to_owned());
        self.with_conn(move |inner, conn| inner.write_block(conn, &user, &name, &text, true))
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
        let store = self.inner.path.display().to_string();
        let (texts, vectors) =
            embed_episodes(self.inner.embedder.as_ref(), &store, &episodes).await?;
        let user = user.clone();
        self.with_conn(move |inner, conn| {
            let tx = conn.transaction().map_err(db_error)?;
            inner.check_embedder(&tx)?;
            let key = user.storage_key();
            // Per episode: the seq it replaced, if any, and its new seq.
            let mut written = Vec::with_capacity(episodes.len());
            {
                let mut delete = tx
                    .prepare_cached(
                        "DELETE FROM memory_episodes WHERE ns = ?1 AND user_key = ?2 AND id = ?3
                         RETURNING seq",
                    )
                    .map_err(db_error)?;
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO memory_episodes
                            (ns, user_key, id, session, occurred_at, input, output, extra, embedding)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING seq",
                    )
                    .map_err(db_error)?;
                for (episode, vector) in episodes.iter().zip(&vectors) {
                    let extra =
                        serde_json::to_string(&EpisodeTools::from(episode)).map_err(db_error)?;
                    let replaced: Option<i64> = delete
                        .query_row(params![inner.ns(), key, episode.id], |r| r.get(0))
                        .optional()
                        .map_err(db_error)?;
                    let seq: i64 = insert
                        .query_row(
                            params![
                                inner.ns(),
                                key,
                                episode.id,
                                episode.session.as_ref().map(SessionId::as_str),
                                micros(episode.occurred_at),
                                episode.input,
                                episode.output,
                                extra,
                                vector_bytes(vector)
                            ],
                            |r| r.get(0),
                        )
                        .map_err(db_error)?;
                    written.push((replaced, seq));
                }
            }
            let versions = inner.bump(&tx, &user)?;
            tx.commit().map_err(db_error)?;
            inner.after_write(&user, versions, |index| {
                for (((replaced, seq), episode), (text, vector)) in
                    written.iter().zip(&episodes).zip(texts.into_iter().zip(&vectors))
                {
                    if let Some(old) = replaced {
                        index.remove_seq(*old);
                    }
                    index.insert(
                        SlotMeta {
                            seq: *seq,
                            occurred_at: micros(episode.occurred_at),
                            session: episode.session.clone(),
                            text,
                        },
                        vector,
                    );
                }
            });
            inner.save_graph_if_due(conn, &user);
            Ok(episodes.into_iter().map(|e| e.id).collect())
        })
        .await
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
            Some(self.embed(&query.text).await?)
        } else {
            None
        };
        let (user, query) = (user.clone(), query.clone());
        self.with_conn(move |inner, conn| {
            let index = inner.index(conn, &user)?;
            let index = index
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = recall_candidates(query.limit);
            let range = query.time_range.map(|(a, b)| (micros(a), micros(b)));
            let admit = |slot: u32| {
                index
                    .slots
                    .get(slot as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|m| {
                        range.is_none_or(|(a, b)| a <= m.occurred_at && m.occurred_at < b)
                            && query
                                .exclude_session
                                .as_ref()
                                .is_none_or(|s| m.session.as_ref() != Some(s))
                    })
            };
            let seq = |slot: u32| {
                index
                    .slots
                    .get(slot as usize)
                    .and_then(Option::as_ref)
                    .map_or(-1, |m| m.seq)
            };
            let by_vector: Vec<(i64, f32)> = match &vector {
                Some(v) => index
                    .vectors
                    .search(v, n, EF_SEARCH.max(n), admit)
                    .into_iter()
                    .filter(|(_, sim)| *sim > 0.0)
                    .map(|(slot, s)| (seq(slot), s))
                    .collect(),
                None => Vec::new(),
            };
            let by_keyword: Vec<(i64, f32)> = if query.alpha < 1.0 {
                index
                    .keywords
                    .search(&query.text, n, admit)
                    .into_iter()
                    .map(|(slot, s)| (seq(slot), s))
                    .collect()
            } else {
                Vec::new()
            };
            drop(index);
            // Load only the candidates, in one cached statement (the ids go
            // in as one JSON array). `+` keeps SQLite on the primary key
            // instead of scanning the user's rows through an index.
            let mut wanted: Vec<i64> = by_vector.iter().chain(&by_keyword).map(|h| h.0).collect();
            wanted.sort_unstable();
            wanted.dedup();
            let list = serde_json::to_string(&wanted).map_err(db_error)?;
            let mut loaded: HashMap<i64, Episode> = inner
                .episodes_where(
                    conn,
                    &user,
                    "seq IN (SELECT value FROM json_each(?3)) AND +ns = ?1 AND +user_key = ?2",
                    &[&list],
                )?
                .into_iter()
                .collect();
            Ok(fuse_matches(&by_vector, &by_keyword, &query, |seq| {
                loaded.remove(seq)
            }))
        })
        .await
    }

    async fn session_episodes(
        &self,
        user: &UserId,
        session: &SessionId,
        limit: usize,
    ) -> Result<Vec<Episode>, MemoryError> {
        let (user, session) = (user.clone(), session.as_str().to_owned());
        self.with_conn(move |inner, conn| {
            let limit = limit.min(i64::MAX as usize) as i64;
            let mut eps = inner.episodes_where(
                conn,
                &user,
                "ns = ?1 AND user_key = ?2 AND session = ?3 ORDER BY occurred_at DESC, id DESC LIMIT ?4",
                &[&session, &limit],
            )?;
            eps.reverse();
            Ok(eps.into_iter().map(|(_, e)| e).collect())
        })
        .await
    }

    async fn append_fact(&self, user: &UserId, fact: Fact) -> Result<Fact, MemoryError> {
        let mut fact = fact.validated()?;
        let user = user.clone();
        self.with_conn(move |inner, conn| {
            let tx = conn.transaction().map_err(db_error)?;
            tx.execute(
                "DELETE FROM memory_facts WHERE ns = ?1 AND user_key = ?2 AND id = ?3",
                params![inner.ns(), user.storage_key(), fact.id],
            )
            .map_err(db_error)?;
            let same = inner.facts_where(
                &tx,
                &user,
                "AND subject = ?3 AND predicate = ?4",
                &[&fact.subject, &fact.predicate],
            )?;
            let plan = plan_supersession(&same, &fact);
            for (id, until) in &plan.close {
                tx.execute(
                    "UPDATE memory_facts SET valid_until = ?4 WHERE ns = ?1 AND user_key = ?2 AND id = ?3",
                    params![inner.ns(), user.storage_key(), id, micros(*until)],
                )
                .map_err(db_error)?;
            }
            if let Some(until) = plan.new_valid_until {
                fact.valid_until = Some(until);
            }
            insert_fact(&tx, inner.ns(), &user, &fact)?;
            tx.commit().map_err(db_error)?;
            Ok(fact)
        })
        .await
    }

    async fn query_facts(
        &self,
        user: &UserId,
        query: &FactQuery,
    ) -> Result<Vec<Fact>, MemoryError> {
        let query = query.clone().canonical()?;
        let user = user.clone();
        self.with_conn(move |inner, conn| {
            let mut filter = String::new();
            let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
            for (column, value) in [
                ("subject", &query.subject),
                ("predicate", &query.predicate),
                ("object", &query.object),
            ] {
                if let Some(v) = value {
                    args.push(Box::new(v.clone()));
                    filter.push_str(&format!(" AND {column} = ?{}", args.len() + 2));
                }
            }
            if let Some(at) = query.valid_at {
                args.push(Box::new(micros(at)));
                let n = args.len() + 2;
                filter.push_str(&format!(
                    " AND valid_from <= ?{n} AND (valid_until IS NULL OR valid_until > ?{n})"
                ));
            }
            args.push(Box::new(query.limit.min(i64::MAX as usize) as i64));
            filter.push_str(&format!(
                " ORDER BY valid_from DESC, id LIMIT ?{}",
                args.len() + 2
            ));
            let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|b| b.as_ref()).collect();
            inner.facts_where(conn, &user, &filter, &refs)
        })
        .await
    }

    async fn recall_facts(
        &self,
        user: &UserId,
        text: &str,
        limit: usize,
        valid_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Fact>, MemoryError> {
        let (user, text) = (user.clone(), text.to_owned());
        self.with_conn(move |inner, conn| {
            let facts = match valid_at {
                Some(at) => inner.facts_where(
                    conn,
                    &user,
                    "AND valid_from <= ?3 AND (valid_until IS NULL OR valid_until > ?3)",
                    &[&micros(at)],
                )?,
                None => inner.facts_where(conn, &user, "", &[])?,
            };
            Ok(rank_facts(facts, &text, limit))
        })
        .await
    }

    async fn profile(&self, user: &UserId) -> Result<MemoryProfile, MemoryError> {
        let user = user.clone();
        self.with_conn(move |inner, conn| {
            let key = user.storage_key();
            let count = |table: &str| -> Result<u64, MemoryError> {
                conn.query_row(
                    &format!("SELECT COUNT(*) FROM {table} WHERE ns = ?1 AND user_key = ?2"),
                    params![inner.ns(), key],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n as u64)
                .map_err(db_error)
            };
            let last_seen: Option<i64> = conn
                .query_row(
                    "SELECT MAX(occurred_at) FROM memory_episodes WHERE ns = ?1 AND user_key = ?2",
                    params![inner.ns(), key],
                    |r| r.get(0),
                )
                .map_err(db_error)?;
            let mut stmt = conn
                .prepare_cached(
                    "SELECT session, MAX(occurred_at) AS last FROM memory_episodes
                     WHERE ns = ?1 AND user_key = ?2 AND session IS NOT NULL
                     GROUP BY session ORDER BY last DESC, session LIMIT 10",
                )
                .map_err(db_error)?;
            let sessions: Vec<String> = stmt
                .query_map(params![inner.ns(), key], |r| r.get(0))
                .map_err(db_error)?
                .collect::<Result<_, _>>()
                .map_err(db_error)?;
            let recent_sessions = sessions
                .into_iter()
                .map(SessionId::new)
                .collect::<Result<_, _>>()
                .map_err(|e| corrupt(&user, "session id".into(), e))?;
            let now = micros(Utc::now());
            let sample_facts = inner.facts_where(
                conn,
                &user,
                "AND valid_from <= ?3 AND (valid_until IS NULL OR valid_until > ?3)
                 ORDER BY valid_from DESC, id LIMIT 10",
                &[&now],
            )?;
            Ok(MemoryProfile {
                episode_count: count("memory_episodes")?,
                fact_count: count("memory_facts")?,
                block_count: count("memory_blocks")?,
                last_seen: last_seen.map(from_micros),
                recent_sessions,
                sample_facts,
                backend: BACKEND.to_owned(),
                vector_search: "hnsw (in process, over stored embeddings)".to_owned(),
                user,
            })
        })
        .await
    }

    async fn forget(&self, forget: &Forget) -> Result<Forgotten, MemoryError> {
        // No background extraction may write the erased data back.
        loomflow_core::memory::stop_extractions(forget).await;
        let forget = forget.clone();
        self.with_conn(move |inner, conn| {
            let user = &forget.user;
            let key = user.storage_key();
            let tx = conn.transaction().map_err(db_error)?;
            let mut filter = String::new();
            let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
            if let Some(s) = &forget.session {
                args.push(Box::new(s.as_str().to_owned()));
                filter.push_str(&format!(" AND session = ?{}", args.len() + 2));
            }
            if let Some(b) = forget.before {
                args.push(Box::new(micros(b)));
                filter.push_str(&format!(" AND occurred_at < ?{}", args.len() + 2));
            }
            let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|b| b.as_ref()).collect();
            let doomed = inner.episodes_where(
                &tx,
                user,
                &format!("ns = ?1 AND user_key = ?2{filter}"),
                &refs,
            )?;
            for (seq, _) in &doomed {
                tx.execute(
                    "DELETE FROM memory_episodes WHERE ns = ?1 AND user_key = ?2 AND seq = ?3",
                    params![inner.ns(), key, seq],
                )
                .map_err(db_error)?;
            }
            let erased: Vec<&str> = doomed.iter().map(|(_, e)| e.id.as_str()).collect();
            let facts = inner.facts_where(&tx, user, "", &[])?;
            let mut fact_count = 0;
            for f in facts.iter().filter(|f| forget.erases_fact(f, &erased)) {
                fact_count += tx
                    .execute(
                        "DELETE FROM memory_facts WHERE ns = ?1 AND user_key = ?2 AND id = ?3",
                        params![inner.ns(), key, f.id],
                    )
                    .map_err(db_error)? as u64;
            }
            let mut block_count = 0;
            for b in inner.blocks(&tx, user)? {
                if forget.erases_block(&b) {
                    block_count += tx
                        .execute(
                            "DELETE FROM memory_blocks WHERE ns = ?1 AND user_key = ?2 AND name = ?3",
                            params![inner.ns(), key, b.name],
                        )
                        .map_err(db_error)? as u64;
                }
            }
            if !doomed.is_empty() {
                // The saved graph is derived from the erased vectors.
                tx.execute(
                    "DELETE FROM memory_ann WHERE ns = ?1 AND user_key = ?2",
                    params![inner.ns(), key],
                )
                .map_err(db_error)?;
            }
            // The version row stays (and only grows) even when the whole
            // user goes, so no other process's index can match by chance.
            inner.bump(&tx, user)?;
            tx.commit().map_err(db_error)?;
            lock(&inner.indexes).users.remove(user);
            Ok(Forgotten {
                episodes: doomed.len() as u64,
                facts: fact_count,
                blocks: block_count,
            })
        })
        .await
    }

    async fn export(&self, user: &UserId) -> Result<MemoryExport, MemoryError> {
        let user = user.clone();
        self.with_conn(move |inner, conn| {
            let episodes = inner
                .episodes_where(
                    conn,
                    &user,
                    "ns = ?1 AND user_key = ?2 ORDER BY occurred_at, id",
                    &[],
                )?
                .into_iter()
                .map(|(_, e)| e)
                .collect();
            let facts = inner.facts_where(conn, &user, "ORDER BY valid_from, id", &[])?;
            let blocks = inner.blocks(conn, &user)?;
            Ok(MemoryExport {
                user,
                episodes,
                facts,
                blocks,
                exported_at: Utc::now(),
            })
        })
        .await
    }
}
