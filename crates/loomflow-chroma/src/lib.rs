//! Chroma storage for loomflow: [`ChromaMemory`], long-term memory in a
//! Chroma server over its HTTP v2 API.
//!
//! A namespace is two collections: `…-episodes` (cosine HNSW over the
//! embeddings we compute: Chroma never embeds) and `…-records` (facts,
//! working blocks and per-user statistics as JSON documents). Every record
//! carries its user's storage key in the `user` metadata field, and every
//! request either filters on it or names record ids that begin with it, so
//! one tenant never reads another's records.
//!
//! An episode's document is the list of its words as the shared tokenizer
//! yields them (` rome trip plan `), so keyword recall asks Chroma for the
//! user's episodes containing a query word (`$contains " word "`) and
//! ranks them by BM25 here, with the same constants as every backend.
//!
//! Chroma has no transactions: writes that read first (fact supersession,
//! block order, statistics) are serialised per user within this process.
//! Run one writing process per namespace, or accept that two processes
//! writing for the same user at the same instant may race.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use loomflow_core::journal::redact_url;
use loomflow_core::memory::text;
use loomflow_core::memory::{
    Episode, EpisodeMatch, EpisodeTools, Fact, FactQuery, Forget, Forgotten, HashEmbedder, Memory,
    MemoryBlock, MemoryError, MemoryExport, MemoryProfile, Recall, UserLocks, check_block_name,
    embed_episodes, embed_text, fuse_matches, last_of_each_id, plan_supersession, rank_facts,
    recall_candidates, sample_facts,
};
use loomflow_core::{Embedder, SessionId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

const BACKEND: &str = "chroma";
/// Episodes per upsert in [`ChromaMemory::remember_many`] (the server's
/// own limit is tens of thousands; this keeps one request near 2 MB with
/// 384-float vectors).
const WRITE_BATCH: usize = 500;
/// Where `"chroma"` without a URL points.
pub const DEFAULT_URL: &str = "http://localhost:8000";

/// Long-term [`Memory`] in a Chroma server.
///
/// [`ChromaMemory::new`] only checks the URL: the first operation creates
/// the namespace's collections (or finds them) and fails with
/// [`MemoryError::Unreachable`] naming the URL when the server cannot be
/// reached.
///
/// ```no_run
/// use loomflow_core::memory::{Episode, Memory, Recall};
/// use loomflow_core::UserId;
/// use loomflow_chroma::ChromaMemory;
///
/// # async fn demo() -> Result<(), loomflow_core::memory::MemoryError> {
/// let memory = ChromaMemory::new("http://localhost:8000")?;
/// let alice = UserId::new("alice").unwrap();
/// memory.remember(&alice, Episode::new("Book me a flight to Lisbon", "Booked.")).await?;
/// let hits = memory.recall(&alice, &Recall::new("Lisbon flight")).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ChromaMemory {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ChromaMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChromaMemory")
            .field("url", &self.inner.url)
            .field("namespace", &self.inner.namespace)
            .field("embedder", &self.inner.embedder.name())
            .finish_non_exhaustive()
    }
}

struct Inner {
    http: reqwest::Client,
    /// `<url>/api/v2/tenants/<tenant>/databases/<database>`.
    base: String,
    /// The URL with its password redacted, for messages.
    url: String,
    namespace: String,
    embedder: Arc<dyn Embedder>,
    collections: OnceCell<Collections>,
    locks: UserLocks,
}

/// The namespace's collection ids.
#[derive(Debug, Clone)]
struct Collections {
    episodes: String,
    records: String,
}

/// Per-user statistics for BM25.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stats {
    episodes: i64,
    total_len: i64,
}

/// A collection name Chroma accepts (3–512 of `[a-zA-Z0-9._-]`, starting
/// and ending alphanumeric) that no other namespace maps to.
fn collection_name(namespace: &str, kind: &str) -> String {
    let readable: String = namespace
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(40)
        .collect();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in namespace.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("lf-mem-{readable}-{hash:016x}-{kind}")
}

/// A record id that no other user's (or kind's) record can have.
fn record_id(user: &UserId, kind: &str, name: &str) -> String {
    let key = user.storage_key();
    format!("{}:{key}:{kind}:{name}", key.len())
}

/// The document of an episode: its words, space-separated and padded, so
/// `$contains " word "` matches whole words only.
fn word_document(text: &str) -> (String, usize) {
    let mut doc = String::from(" ");
    let mut len = 0;
    text::for_each_token(text, |w| {
        doc.push_str(w);
        doc.push(' ');
        len += 1;
    });
    (doc, len)
}

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::UNIX_EPOCH)
}

/// `{"$and": conditions}`, or the one condition alone (Chroma wants two or
/// more under `$and`).
fn all_of(mut conditions: Vec<Value>) -> Value {
    if conditions.len() == 1 {
        conditions.remove(0)
    } else {
        json!({ "$and": conditions })
    }
}

/// `{"$or": conditions}`, or the one condition alone.
fn any_of(mut conditions: Vec<Value>) -> Value {
    if conditions.len() == 1 {
        conditions.remove(0)
    } else {
        json!({ "$or": conditions })
    }
}

/// The rows of a `get` answer.
#[derive(Debug, Default, Deserialize)]
struct GetReply {
    ids: Vec<String>,
    #[serde(default)]
    documents: Option<Vec<Option<String>>>,
    #[serde(default)]
    metadatas: Option<Vec<Option<Map<String, Value>>>>,
}

/// The rows of a `query` answer (one query).
#[derive(Debug, Default, Deserialize)]
struct QueryReply {
    ids: Vec<Vec<String>>,
    #[serde(default)]
    distances: Option<Vec<Vec<Option<f32>>>>,
}

impl ChromaMemory {
    /// A memory on the Chroma server at `url` (`http://host:8000`), in the
    /// default tenant and database, embedding with the [`HashEmbedder`].
    /// Nothing connects yet; a URL that is not http(s) is a
    /// [`MemoryError::Config`].
    pub fn new(url: &str) -> Result<Self, MemoryError> {
        let redacted = redact_url(url);
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            MemoryError::Config(format!(
                "`{redacted}` is not a Chroma server URL ({e}); write http://host:8000 \
                 (a local folder needs a server: `chroma run --path <dir>`)"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(MemoryError::Config(format!(
                "`{redacted}` is not a Chroma server URL; write http://host:8000"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| MemoryError::Config(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base: format!(
                    "{}/api/v2/tenants/default_tenant/databases/default_database",
                    url.trim_end_matches('/')
                ),
                url: redacted,
                namespace: String::new(),
                embedder: Arc::new(HashEmbedder::default()),
                collections: OnceCell::new(),
                locks: UserLocks::default(),
            }),
        })
    }

    /// [`ChromaMemory::new`], then creates (or finds) the collections now.
    pub async fn connect(url: &str) -> Result<Self, MemoryError> {
        let memory = Self::new(url)?;
        memory.collections().await?;
        Ok(memory)
    }

    /// The same memory embedding with `embedder`. A namespace keeps the
    /// embedder's size from its first use; another size later is a
    /// [`MemoryError::Dimensions`].
    pub fn with_embedder(self, embedder: Arc<dyn Embedder>) -> Self {
        self.derive(|inner| inner.embedder = embedder)
    }

    /// The same server seen through namespace `namespace` (its own
    /// collections): two namespaces share nothing.
    pub fn with_namespace(self, namespace: impl Into<String>) -> Self {
        let namespace = namespace.into();
        self.derive(|inner| inner.namespace = namespace)
    }

    fn derive(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Inner {
            http: self.inner.http.clone(),
            base: self.inner.base.clone(),
            url: self.inner.url.clone(),
            namespace: self.inner.namespace.clone(),
            embedder: self.inner.embedder.clone(),
            collections: OnceCell::new(),
            locks: self.inner.locks.clone(),
        };
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// POSTs `body` to `<base><path>` and decodes the answer.
    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, MemoryError> {
        let url = format!("{}{path}", self.inner.base);
        let response = self
            .inner
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() || e.is_timeout() {
                    MemoryError::Unreachable {
                        backend: BACKEND.to_owned(),
                        url: self.inner.url.clone(),
                        message: e.to_string(),
                    }
                } else {
                    MemoryError::backend(BACKEND, format!("POST {path}: {e}"))
                }
            })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| MemoryError::backend(BACKEND, format!("POST {path}: {e}")))?;
        if !status.is_success() {
            return Err(MemoryError::backend(
                BACKEND,
                format!(
                    "POST {path} answered {status}: {}",
                    String::from_utf8_lossy(&bytes)
                ),
            ));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            MemoryError::backend(BACKEND, format!("POST {path}: unexpected answer ({e})"))
        })
    }

    /// The namespace's collections, created on first use; checks the
    /// embedder's size against the one the namespace started with.
    async fn collections(&self) -> Result<Collections, MemoryError> {
        self.inner
            .collections
            .get_or_try_init(|| async {
                let dims = self.inner.embedder.dimensions();
                let ns = &self.inner.namespace;
                let episodes: Value = self
                    .post(
                        "/collections",
                        &json!({
                            "name": collection_name(ns, "episodes"),
                            "get_or_create": true,
                            "configuration": { "hnsw": { "space": "cosine" } },
                            "metadata": {
                                "loomflow_namespace": ns,
                                "loomflow_embedder": self.inner.embedder.name(),
                                "loomflow_dimensions": dims,
                            },
                        }),
                    )
                    .await?;
                let stored = episodes["metadata"]["loomflow_dimensions"].as_u64();
                if let Some(stored) = stored.filter(|d| *d as usize != dims) {
                    return Err(MemoryError::Dimensions {
                        store: format!(
                            "{} (namespace `{ns}`, embedder `{}`)",
                            self.inner.url,
                            episodes["metadata"]["loomflow_embedder"]
                                .as_str()
                                .unwrap_or("?")
                        ),
                        stored: stored as usize,
                        embedder: self.inner.embedder.name().to_owned(),
                        made: dims,
                    });
                }
                let records: Value = self
                    .post(
                        "/collections",
                        &json!({
                            "name": collection_name(ns, "records"),
                            "get_or_create": true,
                            "metadata": { "loomflow_namespace": ns },
                        }),
                    )
                    .await?;
                let id = |v: &Value| {
                    v["id"].as_str().map(str::to_owned).ok_or_else(|| {
                        MemoryError::backend(BACKEND, format!("a collection without an id: {v}"))
                    })
                };
                Ok(Collections {
                    episodes: id(&episodes)?,
                    records: id(&records)?,
                })
            })
            .await
            .cloned()
    }

    async fn get(&self, collection: &str, body: Value) -> Result<GetReply, MemoryError> {
        self.post(&format!("/collections/{collection}/get"), &body)
            .await
    }

    async fn upsert(&self, collection: &str, body: Value) -> Result<(), MemoryError> {
        let _: Value = self
            .post(&format!("/collections/{collection}/upsert"), &body)
            .await?;
        Ok(())
    }

    async fn delete_ids(&self, collection: &str, ids: &[String]) -> Result<(), MemoryError> {
        for chunk in ids.chunks(1000) {
            let _: Value = self
                .post(
                    &format!("/collections/{collection}/delete"),
                    &json!({ "ids": chunk }),
                )
                .await?;
        }
        Ok(())
    }

    /// The store as embedding errors name it.
    fn store_name(&self) -> String {
        format!("{} (namespace `{}`)", self.inner.url, self.inner.namespace)
    }

    async fn embed(&self, text: &str) -> Result<Vec<f32>, MemoryError> {
        embed_text(self.inner.embedder.as_ref(), &self.store_name(), text).await
    }

    /// The user's records of `kind` (JSON documents).
    async fn records<T: serde::de::DeserializeOwned>(
        &self,
        c: &Collections,
        user: &UserId,
        kind: &str,
    ) -> Result<Vec<T>, MemoryError> {
        let reply = self
            .get(
                &c.records,
                json!({
                    "where": { "$and": [{ "user": user.storage_key() }, { "kind": kind }] },
                    "include": ["documents"],
                }),
            )
            .await?;
        let documents = reply.documents.unwrap_or_default();
        reply
            .ids
            .iter()
            .zip(documents)
            .map(|(id, doc)| {
                serde_json::from_str(doc.as_deref().unwrap_or("null")).map_err(|e| {
                    MemoryError::Corrupt {
                        backend: BACKEND.to_owned(),
                        user: user.clone(),
                        what: format!("{kind} record {id}"),
                        message: e.to_string(),
                    }
                })
            })
            .collect()
    }

    /// Stores `(name, value)` records of `kind` for the user.
    async fn put_records<T: Serialize>(
        &self,
        c: &Collections,
        user: &UserId,
        kind: &str,
        items: &[(&str, &T)],
    ) -> Result<(), MemoryError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(items.len());
        let mut documents = Vec::with_capacity(items.len());
        for (name, value) in items {
            ids.push(record_id(user, kind, name));
            documents
                .push(serde_json::to_string(value).map_err(|e| MemoryError::backend(BACKEND, e))?);
        }
        let n = ids.len();
        self.upsert(
            &c.records,
            json!({
                "ids": ids,
                "embeddings": vec![[1.0f32]; n],
                "documents": documents,
                "metadatas": vec![json!({ "user": user.storage_key(), "kind": kind }); n],
            }),
        )
        .await
    }

    async fn stats(&self, c: &Collections, user: &UserId) -> Result<Stats, MemoryError> {
        Ok(self
            .records::<Stats>(c, user, "stats")
            .await?
            .pop()
            .unwrap_or_default())
    }

    async fn add_stats(
        &self,
        c: &Collections,
        user: &UserId,
        episodes: i64,
        len: i64,
    ) -> Result<(), MemoryError> {
        let mut stats = self.stats(c, user).await?;
        stats.episodes = (stats.episodes + episodes).max(0);
        stats.total_len = (stats.total_len + len).max(0);
        self.put_records(c, user, "stats", &[("all", &stats)]).await
    }

    /// Episodes from `get` rows (metadatas included), keyed by record id.
    fn episodes_of(
        &self,
        user: &UserId,
        reply: GetReply,
    ) -> Result<Vec<(String, Episode)>, MemoryError> {
        let metadatas = reply.metadatas.unwrap_or_default();
        reply
            .ids
            .into_iter()
            .zip(metadatas)
            .map(|(id, m)| {
                let episode = read_episode(user, &id, m.unwrap_or_default())?;
                Ok((id, episode))
            })
            .collect()
    }

    /// Every episode of the user, oldest first.
    async fn all_episodes(
        &self,
        c: &Collections,
        user: &UserId,
    ) -> Result<Vec<Episode>, MemoryError> {
        let reply = self
            .get(
                &c.episodes,
                json!({ "where": { "user": user.storage_key() }, "include": ["metadatas"] }),
            )
            .await?;
        let mut episodes: Vec<Episode> = self
            .episodes_of(user, reply)?
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        episodes.sort_by(|a, b| {
            a.occurred_at
                .cmp(&b.occurred_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(episodes)
    }

    async fn write_block(
        &self,
        user: &UserId,
        name: &str,
        text: &str,
        append: bool,
    ) -> Result<MemoryBlock, MemoryError> {
        check_block_name(name)?;
        let c = self.collections().await?;
        let _writer = self.inner.locks.lock(user.storage_key()).await;
        let blocks: Vec<MemoryBlock> = self.records(&c, user, "block").await?;
        let now = from_micros(micros(Utc::now()));
        let block = MemoryBlock::written(&blocks, name, text, append, now);
        self.put_records(&c, user, "block", &[(name, &block)])
            .await?;
        Ok(block)
    }
}

/// An episode from its metadata.
fn read_episode(user: &UserId, id: &str, m: Map<String, Value>) -> Result<Episode, MemoryError> {
    let corrupt = |message: String| MemoryError::Corrupt {
        backend: BACKEND.to_owned(),
        user: user.clone(),
        what: format!("episode record {id}"),
        message,
    };
    let text = |name: &str| {
        m.get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| corrupt(format!("metadata `{name}` is missing")))
    };
    let tools: EpisodeTools =
        serde_json::from_str(&text("tools")?).map_err(|e| corrupt(format!("`tools`: {e}")))?;
    let session = text("session")?;
    let session = (!session.is_empty())
        .then(|| SessionId::new(session))
        .transpose()
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(Episode {
        id: text("eid")?,
        session,
        occurred_at: from_micros(
            m.get("t")
                .and_then(Value::as_i64)
                .ok_or_else(|| corrupt("metadata `t` is missing".into()))?,
        ),
        input: text("input")?,
        output: text("output")?,
        tool_calls: tools.tool_calls,
        tool_transcript: tools.tool_transcript,
    })
}

/// The metadata filter for a user's episodes under `query`'s filters.
fn episode_filter(user: &UserId, query: &Recall) -> Value {
    let mut conditions = vec![json!({ "user": user.storage_key() })];
    if let Some((from, to)) = query.time_range {
        conditions.push(json!({ "t": { "$gte": micros(from) } }));
        conditions.push(json!({ "t": { "$lt": micros(to) } }));
    }
    if let Some(s) = &query.exclude_session {
        conditions.push(json!({ "session": { "$ne": s.as_str() } }));
    }
    all_of(conditions)
}

/// Ranks the episodes `reply` holds (every episode of the user containing
/// a query word) by BM25 over `words` (sorted), keeping those `query`'s
/// filters admit; the best `n`, best first. Document frequencies count all
/// the user's episodes, before the filters, as the other backends do.
fn bm25(
    words: &[String],
    reply: GetReply,
    stats: &Stats,
    query: &Recall,
    n: usize,
) -> Vec<(String, f32)> {
    let documents = reply.documents.unwrap_or_default();
    let metadatas = reply.metadatas.unwrap_or_default();
    let docs = (stats.episodes as f64).max(reply.ids.len() as f64);
    if docs <= 0.0 {
        return Vec::new();
    }
    let avg_len = if stats.episodes > 0 {
        (stats.total_len as f64 / stats.episodes as f64).max(1.0)
    } else {
        1.0
    };
    let mut tfs: Vec<HashMap<&str, u32>> = Vec::with_capacity(reply.ids.len());
    let mut lens = Vec::with_capacity(reply.ids.len());
    let mut df: HashMap<&str, f64> = HashMap::new();
    for doc in &documents {
        let mut counts: HashMap<&str, u32> = HashMap::new();
        let mut len = 0u32;
        for w in doc
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|w| !w.is_empty())
        {
            len += 1;
            if let Ok(i) = words.binary_search_by(|q| q.as_str().cmp(w)) {
                *counts.entry(words[i].as_str()).or_default() += 1;
            }
        }
        for w in counts.keys() {
            *df.entry(w).or_default() += 1.0;
        }
        tfs.push(counts);
        lens.push(len);
    }
    let (from, to) = query
        .time_range
        .map_or((i64::MIN, i64::MAX), |(a, b)| (micros(a), micros(b)));
    let mut hits: Vec<(String, f32)> = Vec::new();
    for (i, id) in reply.ids.iter().enumerate() {
        let admitted = metadatas.get(i).and_then(Option::as_ref).is_some_and(|m| {
            let at = m.get("t").and_then(Value::as_i64).unwrap_or(0);
            let session = m.get("session").and_then(Value::as_str).unwrap_or("");
            from <= at
                && at < to
                && query
                    .exclude_session
                    .as_ref()
                    .is_none_or(|s| s.as_str() != session)
        });
        let Some(counts) = tfs.get(i).filter(|_| admitted) else {
            continue;
        };
        let len = f64::from(lens[i]);
        let score: f64 = counts
            .iter()
            .map(|(w, tf)| {
                let idf = text::bm25_idf(docs, df.get(w).copied().unwrap_or(1.0));
                text::bm25_weight(idf, f64::from(*tf), len, avg_len)
            })
            .sum();
        if score > 0.0 {
            hits.push((id.clone(), score as f32));
        }
    }
    hits.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    hits.truncate(n);
    hits
}

#[async_trait]
impl Memory for ChromaMemory {
    fn backend(&self) -> &str {
        BACKEND
    }

    async fn working(&self, user: &UserId) -> Result<Vec<MemoryBlock>, MemoryError> {
        let c = self.collections().await?;
        let mut blocks: Vec<MemoryBlock> = self.records(&c, user, "block").await?;
        blocks.sort_by(|a, b| {
            a.pinned_order
                .cmp(&b.pinned_order)
                .then(a.name.cmp(&b.name))
        });
        Ok(blocks)
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
        // Chroma refuses a batch with a repeated id; the last episode of an
        // id wins, as one `remember` after another would.
        let episodes = last_of_each_id(episodes);
        if episodes.is_empty() {
            return Ok(ids);
        }
        let c = self.collections().await?;
        let (texts, vectors) =
            embed_episodes(self.inner.embedder.as_ref(), &self.store_name(), &episodes).await?;
        let _writer = self.inner.locks.lock(user.storage_key()).await;
        for ((episodes, texts), vectors) in episodes
            .chunks(WRITE_BATCH)
            .zip(texts.chunks(WRITE_BATCH))
            .zip(vectors.chunks(WRITE_BATCH))
        {
            let record_ids: Vec<String> = episodes
                .iter()
                .map(|e| record_id(user, "ep", &e.id))
                .collect();
            let old = self
                .get(
                    &c.episodes,
                    json!({ "ids": record_ids, "include": ["metadatas"] }),
                )
                .await?;
            let old_lens: HashMap<String, i64> = old
                .ids
                .into_iter()
                .zip(old.metadatas.unwrap_or_default())
                .filter_map(|(id, m)| Some((id, m?.get("len")?.as_i64()?)))
                .collect();
            let (mut added, mut grown) = (0i64, 0i64);
            let mut documents = Vec::with_capacity(episodes.len());
            let mut metadatas = Vec::with_capacity(episodes.len());
            for ((episode, text), id) in episodes.iter().zip(texts).zip(&record_ids) {
                let (document, len) = word_document(text);
                let tools = serde_json::to_string(&EpisodeTools::from(episode))
                    .map_err(|e| MemoryError::backend(BACKEND, e))?;
                documents.push(document);
                metadatas.push(json!({
                    "user": user.storage_key(),
                    "eid": episode.id,
                    "session": episode.session.as_ref().map_or("", SessionId::as_str),
                    "t": micros(episode.occurred_at),
                    "input": episode.input,
                    "output": episode.output,
                    "tools": tools,
                    "len": len,
                }));
                let old_len = old_lens.get(id).copied();
                added += i64::from(old_len.is_none());
                grown += len as i64 - old_len.unwrap_or(0);
            }
            self.upsert(
                &c.episodes,
                json!({
                    "ids": record_ids,
                    "embeddings": vectors,
                    "documents": documents,
                    "metadatas": metadatas,
                }),
            )
            .await?;
            // Per chunk, so that the statistics match what is stored when a
            // later chunk fails.
            self.add_stats(&c, user, added, grown).await?;
        }
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
        let c = self.collections().await?;
        let n = recall_candidates(query.limit);
        let by_vector: Vec<(String, f32)> = if query.alpha > 0.0 {
            let vector = self.embed(&query.text).await?;
            let reply: QueryReply = self
                .post(
                    &format!("/collections/{}/query", c.episodes),
                    &json!({
                        "query_embeddings": [vector],
                        "n_results": n,
                        "where": episode_filter(user, query),
                        "include": ["distances"],
                    }),
                )
                .await?;
            let ids = reply.ids.into_iter().next().unwrap_or_default();
            let distances = reply
                .distances
                .and_then(|d| d.into_iter().next())
                .unwrap_or_default();
            let mut hits: Vec<(String, f32)> = ids
                .into_iter()
                .zip(distances)
                .filter_map(|(id, d)| Some((id, 1.0 - d?)))
                .filter(|(_, sim)| *sim > 0.0)
                .collect();
            hits.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            hits
        } else {
            Vec::new()
        };
        let mut words = text::tokens(&query.text);
        words.sort_unstable();
        words.dedup();
        let by_keyword: Vec<(String, f32)> = if query.alpha < 1.0 && !words.is_empty() {
            let reply = self
                .get(
                    &c.episodes,
                    json!({
                        "where": { "user": user.storage_key() },
                        "where_document": any_of(
                            words.iter().map(|w| json!({ "$contains": format!(" {w} ") })).collect()
                        ),
                        "include": ["documents", "metadatas"],
                    }),
                )
                .await?;
            let stats = self.stats(&c, user).await?;
            bm25(&words, reply, &stats, query, n)
        } else {
            Vec::new()
        };
        let mut wanted: Vec<&String> = by_vector.iter().chain(&by_keyword).map(|h| &h.0).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut loaded: HashMap<String, Episode> = if wanted.is_empty() {
            HashMap::new()
        } else {
            let reply = self
                .get(
                    &c.episodes,
                    json!({ "ids": wanted, "include": ["metadatas"] }),
                )
                .await?;
            self.episodes_of(user, reply)?.into_iter().collect()
        };
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
        let c = self.collections().await?;
        let reply = self
            .get(
                &c.episodes,
                json!({
                    "where": { "$and": [{ "user": user.storage_key() }, { "session": session.as_str() }] },
                    "include": ["metadatas"],
                }),
            )
            .await?;
        let mut episodes: Vec<Episode> = self
            .episodes_of(user, reply)?
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        episodes.sort_by(|a, b| {
            b.occurred_at
                .cmp(&a.occurred_at)
                .then_with(|| b.id.cmp(&a.id))
        });
        episodes.truncate(limit);
        episodes.reverse();
        Ok(episodes)
    }

    async fn append_fact(&self, user: &UserId, fact: Fact) -> Result<Fact, MemoryError> {
        let mut fact = fact.validated()?;
        let c = self.collections().await?;
        let _writer = self.inner.locks.lock(user.storage_key()).await;
        let same: Vec<Fact> = self
            .records::<Fact>(&c, user, "fact")
            .await?
            .into_iter()
            .filter(|f| {
                f.id != fact.id && f.subject == fact.subject && f.predicate == fact.predicate
            })
            .collect();
        let closed = plan_supersession(&same, &fact).apply(&same, &mut fact);
        let mut items: Vec<(&str, &Fact)> = closed.iter().map(|f| (f.id.as_str(), f)).collect();
        items.push((fact.id.as_str(), &fact));
        self.put_records(&c, user, "fact", &items).await?;
        Ok(fact)
    }

    async fn query_facts(
        &self,
        user: &UserId,
        query: &FactQuery,
    ) -> Result<Vec<Fact>, MemoryError> {
        let query = query.clone().canonical()?;
        let c = self.collections().await?;
        Ok(query.select(&self.records::<Fact>(&c, user, "fact").await?))
    }

    async fn recall_facts(
        &self,
        user: &UserId,
        text: &str,
        limit: usize,
        valid_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Fact>, MemoryError> {
        let c = self.collections().await?;
        let facts = self
            .records::<Fact>(&c, user, "fact")
            .await?
            .into_iter()
            .filter(|f| valid_at.is_none_or(|at| f.holds_at(at)))
            .collect();
        Ok(rank_facts(facts, text, limit))
    }

    async fn profile(&self, user: &UserId) -> Result<MemoryProfile, MemoryError> {
        let c = self.collections().await?;
        let episodes = self.all_episodes(&c, user).await?;
        let facts: Vec<Fact> = self.records(&c, user, "fact").await?;
        let blocks: Vec<MemoryBlock> = self.records(&c, user, "block").await?;
        let mut last_by_session: HashMap<&SessionId, DateTime<Utc>> = HashMap::new();
        for e in &episodes {
            if let Some(s) = &e.session {
                let last = last_by_session.entry(s).or_insert(e.occurred_at);
                *last = (*last).max(e.occurred_at);
            }
        }
        let mut sessions: Vec<(&SessionId, DateTime<Utc>)> = last_by_session.into_iter().collect();
        sessions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        Ok(MemoryProfile {
            user: user.clone(),
            episode_count: episodes.len() as u64,
            fact_count: facts.len() as u64,
            block_count: blocks.len() as u64,
            last_seen: episodes.iter().map(|e| e.occurred_at).max(),
            recent_sessions: sessions
                .into_iter()
                .take(10)
                .map(|(s, _)| s.clone())
                .collect(),
            sample_facts: sample_facts(&facts),
            backend: BACKEND.to_owned(),
            vector_search: "chroma hnsw (cosine; embeddings computed by loomflow)".to_owned(),
        })
    }

    async fn forget(&self, forget: &Forget) -> Result<Forgotten, MemoryError> {
        // No background extraction may write the erased data back.
        loomflow_core::memory::stop_extractions(forget).await;
        let c = self.collections().await?;
        let user = &forget.user;
        let _writer = self.inner.locks.lock(user.storage_key()).await;
        let doomed: Vec<Episode> = self
            .all_episodes(&c, user)
            .await?
            .into_iter()
            .filter(|e| forget.erases_episode(e))
            .collect();
        let ids: Vec<String> = doomed
            .iter()
            .map(|e| record_id(user, "ep", &e.id))
            .collect();
        let len: i64 = doomed
            .iter()
            .map(|e| word_document(&e.text()).1 as i64)
            .sum();
        self.delete_ids(&c.episodes, &ids).await?;
        if !ids.is_empty() {
            self.add_stats(&c, user, -(ids.len() as i64), -len).await?;
        }
        let erased: Vec<&str> = doomed.iter().map(|e| e.id.as_str()).collect();
        let facts: Vec<String> = self
            .records::<Fact>(&c, user, "fact")
            .await?
            .into_iter()
            .filter(|f| forget.erases_fact(f, &erased))
            .map(|f| record_id(user, "fact", &f.id))
            .collect();
        let blocks: Vec<String> = self
            .records::<MemoryBlock>(&c, user, "block")
            .await?
            .into_iter()
            .filter(|b| forget.erases_block(b))
            .map(|b| record_id(user, "block", &b.name))
            .collect();
        self.delete_ids(&c.records, &facts).await?;
        self.delete_ids(&c.records, &blocks).await?;
        if forget.is_whole_user() {
            self.delete_ids(&c.records, &[record_id(user, "stats", "all")])
                .await?;
        }
        Ok(Forgotten {
            episodes: ids.len() as u64,
            facts: facts.len() as u64,
            blocks: blocks.len() as u64,
        })
    }

    async fn export(&self, user: &UserId) -> Result<MemoryExport, MemoryError> {
        let c = self.collections().await?;
        let episodes = self.all_episodes(&c, user).await?;
        let mut facts: Vec<Fact> = self.records(&c, user, "fact").await?;
        facts.sort_by(|a, b| a.valid_from.cmp(&b.valid_from).then(a.id.cmp(&b.id)));
        let blocks = self.working(user).await?;
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
    fn names_and_ids_cannot_collide() {
        assert_ne!(
            collection_name("a-b", "episodes"),
            collection_name("ab", "episodes")
        );
        let name = collection_name("", "records");
        assert!(
            name.starts_with("lf-mem--") && name.ends_with("-records"),
            "{name}"
        );
        let a = record_id(&UserId::new("a:b").unwrap(), "fact", "c");
        let b = record_id(&UserId::new("a").unwrap(), "fact", "b:c");
        assert_ne!(a, b);
    }

    #[test]
    fn documents_pad_words_so_contains_matches_whole_words() {
        let (doc, len) = word_document("Rome trips, Romeo!");
        assert_eq!(doc, " rome trip romeo ");
        assert_eq!(len, 3);
        assert!(doc.contains(" rome ") && !doc.contains(" rom "));
    }
}
