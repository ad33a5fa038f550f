//! [`InMemoryMemory`]: the process-local [`Memory`], bounded per user.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use loomflow_model::Embedder;

use crate::id::{SessionId, UserId};

use super::ann::Hnsw;
use super::text::{Bm25Index, fuse};
use super::{
    Episode, EpisodeMatch, Fact, FactQuery, Forget, Forgotten, HashEmbedder, Memory, MemoryBlock,
    MemoryError, MemoryExport, MemoryProfile, Recall, check_block_name, rank_facts,
    supersede_and_push,
};

const BACKEND: &str = "inmemory";

/// Search breadth of the vector index (HNSW `ef`).
const EF_SEARCH: usize = 64;

/// A [`Memory`] held in this process: per-user HNSW vector index and BM25
/// keyword index over episodes, facts with valid-time supersession, and
/// working blocks. Nothing survives the process; use the SQLite memory for
/// that.
///
/// All of a user's state (episodes, facts, blocks) is bounded together: at
/// most `max_users` users are kept (default 100 000; at the cap the least
/// recently used are dropped), and a user untouched for `idle_ttl`
/// (default 24 h) is dropped. The reference bounded only working blocks.
///
/// ```
/// use std::time::Duration;
/// use loomflow_core::memory::InMemoryMemory;
/// let memory = InMemoryMemory::new().max_users(10_000).idle_ttl(Duration::from_secs(3600));
/// # let _ = memory;
/// ```
pub struct InMemoryMemory {
    embedder: Arc<dyn Embedder>,
    users: Mutex<HashMap<UserId, Slot>>,
    max_users: usize,
    idle_ttl: Duration,
    clock: Instant,
    created: AtomicU64,
    ticks: AtomicU64,
}

impl std::fmt::Debug for InMemoryMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryMemory")
            .field("embedder", &self.embedder.name())
            .field("max_users", &self.max_users)
            .field("idle_ttl", &self.idle_ttl)
            .finish_non_exhaustive()
    }
}

/// One user's entry: the state and when it was last touched.
struct Slot {
    state: Arc<RwLock<UserState>>,
    /// Milliseconds since the memory was made (for the idle TTL).
    last_used_ms: AtomicU64,
    /// The memory-wide access count at the last touch (for LRU order;
    /// unlike a clock it never ties).
    last_tick: AtomicU64,
}

impl Slot {
    fn touch(&self, now_ms: u64, tick: u64) {
        self.last_used_ms.store(now_ms, Ordering::Relaxed);
        self.last_tick.store(tick, Ordering::Relaxed);
    }
}

/// Everything one user has.
struct UserState {
    /// Episodes by slot (the index's node id); `None` once removed.
    episodes: Vec<Option<Episode>>,
    slots: HashMap<String, u32>,
    sessions: HashMap<SessionId, Vec<u32>>,
    keywords: Bm25Index,
    vectors: Hnsw,
    facts: Vec<Fact>,
    blocks: Vec<MemoryBlock>,
}

impl UserState {
    fn new(dim: usize) -> Self {
        Self {
            episodes: Vec::new(),
            slots: HashMap::new(),
            sessions: HashMap::new(),
            keywords: Bm25Index::default(),
            vectors: Hnsw::new(dim),
            facts: Vec::new(),
            blocks: Vec::new(),
        }
    }

    fn live_episodes(&self) -> impl Iterator<Item = &Episode> {
        self.episodes.iter().flatten()
    }

    fn insert(&mut self, episode: Episode, vector: &[f32]) {
        if let Some(&old) = self.slots.get(&episode.id) {
            self.remove(old);
        }
        let slot = self.vectors.insert(vector);
        self.keywords.insert(slot, &episode.text());
        if let Some(s) = &episode.session {
            self.sessions.entry(s.clone()).or_default().push(slot);
        }
        self.slots.insert(episode.id.clone(), slot);
        debug_assert_eq!(slot as usize, self.episodes.len());
        self.episodes.push(Some(episode));
    }

    fn remove(&mut self, slot: u32) -> Option<Episode> {
        let episode = self.episodes.get_mut(slot as usize)?.take()?;
        self.vectors.remove(slot);
        self.keywords.remove(slot, &episode.text());
        self.slots.remove(&episode.id);
        if let Some(s) = &episode.session
            && let Some(list) = self.sessions.get_mut(s)
        {
            list.retain(|x| *x != slot);
            if list.is_empty() {
                self.sessions.remove(s);
            }
        }
        Some(episode)
    }

    /// Rebuilds the indexes without tombstones once they outnumber the
    /// live episodes.
    fn compact_if_sparse(&mut self) {
        let removed = self.vectors.removed();
        if removed < 64 || removed < self.slots.len() {
            return;
        }
        let dim = self.vectors.dim();
        let old_vectors = std::mem::replace(&mut self.vectors, Hnsw::new(dim));
        let old = std::mem::take(&mut self.episodes);
        self.slots.clear();
        self.sessions.clear();
        self.keywords = Bm25Index::default();
        for (slot, episode) in old.into_iter().enumerate() {
            if let Some(episode) = episode {
                let v = old_vectors.vector_of(slot as u32).to_vec();
                self.insert(episode, &v);
            }
        }
    }
}

impl InMemoryMemory {
    /// An empty memory with the [`HashEmbedder`].
    pub fn new() -> Self {
        Self::with_embedder(Arc::new(HashEmbedder::default()))
    }

    /// An empty memory embedding with `embedder`.
    pub fn with_embedder(embedder: Arc<dyn Embedder>) -> Self {
        Self {
            embedder,
            users: Mutex::new(HashMap::new()),
            max_users: 100_000,
            idle_ttl: Duration::from_secs(86_400),
            clock: Instant::now(),
            created: AtomicU64::new(0),
            ticks: AtomicU64::new(0),
        }
    }

    /// Keeps at most `max` users (at least 1).
    pub fn max_users(mut self, max: usize) -> Self {
        self.max_users = max.max(1);
        self
    }

    /// Drops a user untouched for `ttl`.
    pub fn idle_ttl(mut self, ttl: Duration) -> Self {
        self.idle_ttl = ttl;
        self
    }

    /// How many users it holds now.
    pub fn user_count(&self) -> usize {
        self.lock_users().len()
    }

    fn lock_users(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Slot>> {
        // A panic while holding the map lock leaves the map itself intact.
        self.users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// The user's state if it exists (a read never creates a user).
    fn get(&self, user: &UserId) -> Option<Arc<RwLock<UserState>>> {
        let now = self.now_ms();
        let users = self.lock_users();
        let slot = users.get(user)?;
        if now.saturating_sub(slot.last_used_ms.load(Ordering::Relaxed))
            > self.idle_ttl.as_millis() as u64
        {
            // Expired: treat as gone; the next sweep frees it.
            return None;
        }
        slot.touch(now, self.ticks.fetch_add(1, Ordering::Relaxed));
        Some(slot.state.clone())
    }

    fn get_or_create(&self, user: &UserId) -> Arc<RwLock<UserState>> {
        let now = self.now_ms();
        let ttl = self.idle_ttl.as_millis() as u64;
        let mut users = self.lock_users();
        if let Some(slot) = users.get(user) {
            let idle = now.saturating_sub(slot.last_used_ms.load(Ordering::Relaxed));
            if idle <= ttl {
                slot.touch(now, self.ticks.fetch_add(1, Ordering::Relaxed));
                return slot.state.clone();
            }
            users.remove(user);
        }
        let created = self.created.fetch_add(1, Ordering::Relaxed);
        if users.len() >= self.max_users || created % 1024 == 1023 {
            users.retain(|_, s| now.saturating_sub(s.last_used_ms.load(Ordering::Relaxed)) <= ttl);
        }
        if users.len() >= self.max_users {
            // Drop the least recently used hundredth at once, so a full
            // memory does not scan the map on every new user.
            let drop = (self.max_users / 100).max(1).min(users.len());
            let mut ages: Vec<u64> = users
                .values()
                .map(|s| s.last_tick.load(Ordering::Relaxed))
                .collect();
            let (_, cut, _) = ages.select_nth_unstable(drop - 1);
            let cut = *cut;
            let mut left = drop;
            users.retain(|_, s| {
                if left > 0 && s.last_tick.load(Ordering::Relaxed) <= cut {
                    left -= 1;
                    false
                } else {
                    true
                }
            });
        }
        let state = Arc::new(RwLock::new(UserState::new(self.embedder.dimensions())));
        users.insert(
            user.clone(),
            Slot {
                state: state.clone(),
                last_used_ms: AtomicU64::new(now),
                last_tick: AtomicU64::new(self.ticks.fetch_add(1, Ordering::Relaxed)),
            },
        );
        state
    }

    /// Sets (or, with `append`, extends on a new line) block `name`,
    /// creating it after the user's other blocks.
    fn write_block(
        &self,
        user: &UserId,
        name: &str,
        text: &str,
        append: bool,
    ) -> Result<MemoryBlock, MemoryError> {
        check_block_name(name)?;
        let state = self.get_or_create(user);
        let mut s = write(&state);
        let next = s.blocks.len() as u32;
        let now = Utc::now();
        let block = match s.blocks.iter_mut().find(|b| b.name == name) {
            Some(b) => {
                if !append {
                    b.content.clear();
                } else if !b.content.is_empty() {
                    b.content.push('\n');
                }
                b.content.push_str(text);
                b.updated_at = now;
                b.clone()
            }
            None => {
                let b = MemoryBlock {
                    name: name.to_owned(),
                    content: text.to_owned(),
                    updated_at: now,
                    pinned_order: next,
                };
                s.blocks.push(b.clone());
                b
            }
        };
        Ok(block)
    }

    async fn embed(&self, text: &str) -> Result<Vec<f32>, MemoryError> {
        super::embed_text(self.embedder.as_ref(), BACKEND, text).await
    }
}

impl Default for InMemoryMemory {
    fn default() -> Self {
        Self::new()
    }
}

fn read(state: &RwLock<UserState>) -> std::sync::RwLockReadGuard<'_, UserState> {
    state
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write(state: &RwLock<UserState>) -> std::sync::RwLockWriteGuard<'_, UserState> {
    state
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How many candidates each ranking (vector, keyword) contributes to the
/// fusion for a recall of `limit` episodes.
pub fn recall_candidates(limit: usize) -> usize {
    (limit * 4).max(20)
}

#[async_trait]
impl Memory for InMemoryMemory {
    fn backend(&self) -> &str {
        BACKEND
    }

    async fn working(&self, user: &UserId) -> Result<Vec<MemoryBlock>, MemoryError> {
        Ok(self
            .get(user)
            .map(|s| read(&s).blocks.clone())
            .unwrap_or_default())
    }

    async fn update_block(
        &self,
        user: &UserId,
        name: &str,
        content: &str,
    ) -> Result<MemoryBlock, MemoryError> {
        self.write_block(user, name, content, false)
    }

    async fn append_block(
        &self,
        user: &UserId,
        name: &str,
        text: &str,
    ) -> Result<MemoryBlock, MemoryError> {
        self.write_block(user, name, text, true)
    }

    async fn remember(&self, user: &UserId, episode: Episode) -> Result<String, MemoryError> {
        let vector = self.embed(&episode.text()).await?;
        let id = episode.id.clone();
        let state = self.get_or_create(user);
        write(&state).insert(episode, &vector);
        Ok(id)
    }

    async fn remember_many(
        &self,
        user: &UserId,
        episodes: Vec<Episode>,
    ) -> Result<Vec<String>, MemoryError> {
        let (_, vectors) =
            super::embed_episodes(self.embedder.as_ref(), BACKEND, &episodes).await?;
        let ids = episodes.iter().map(|e| e.id.clone()).collect();
        let state = self.get_or_create(user);
        let mut state = write(&state);
        for (episode, vector) in episodes.into_iter().zip(&vectors) {
            state.insert(episode, vector);
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
        let Some(state) = self.get(user) else {
            return Ok(Vec::new());
        };
        let vector = if query.alpha > 0.0 {
            Some(self.embed(&query.text).await?)
        } else {
            None
        };
        let s = read(&state);
        let n = recall_candidates(query.limit);
        let admit = |slot: u32| {
            s.episodes
                .get(slot as usize)
                .and_then(Option::as_ref)
                .is_some_and(|e| query.admits(e))
        };
        let by_vector: Vec<(u32, f32)> = match &vector {
            Some(v) => s
                .vectors
                .search(v, n, EF_SEARCH.max(n), admit)
                .into_iter()
                .filter(|(_, sim)| *sim > 0.0)
                .collect(),
            None => Vec::new(),
        };
        let by_keyword = if query.alpha < 1.0 {
            s.keywords.search(&query.text, n, admit)
        } else {
            Vec::new()
        };
        Ok(fuse_matches(&by_vector, &by_keyword, query, |slot| {
            s.episodes.get(*slot as usize).and_then(Option::clone)
        }))
    }

    async fn session_episodes(
        &self,
        user: &UserId,
        session: &SessionId,
        limit: usize,
    ) -> Result<Vec<Episode>, MemoryError> {
        let Some(state) = self.get(user) else {
            return Ok(Vec::new());
        };
        let s = read(&state);
        let mut episodes: Vec<Episode> = s
            .sessions
            .get(session)
            .map(|slots| {
                slots
                    .iter()
                    .filter_map(|&slot| s.episodes.get(slot as usize).and_then(Option::clone))
                    .collect()
            })
            .unwrap_or_default();
        episodes.sort_by(|a, b| a.occurred_at.cmp(&b.occurred_at).then(a.id.cmp(&b.id)));
        let skip = episodes.len().saturating_sub(limit);
        episodes.drain(..skip);
        Ok(episodes)
    }

    async fn append_fact(&self, user: &UserId, fact: Fact) -> Result<Fact, MemoryError> {
        let fact = fact.validated()?;
        let state = self.get_or_create(user);
        let mut s = write(&state);
        let id = fact.id.clone();
        s.facts.retain(|f| f.id != id);
        Ok(supersede_and_push(&mut s.facts, fact))
    }

    async fn query_facts(
        &self,
        user: &UserId,
        query: &FactQuery,
    ) -> Result<Vec<Fact>, MemoryError> {
        let query = query.clone().canonical()?;
        let Some(state) = self.get(user) else {
            return Ok(Vec::new());
        };
        let s = read(&state);
        Ok(query.select(&s.facts))
    }

    async fn recall_facts(
        &self,
        user: &UserId,
        text: &str,
        limit: usize,
        valid_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Fact>, MemoryError> {
        let Some(state) = self.get(user) else {
            return Ok(Vec::new());
        };
        let facts: Vec<Fact> = read(&state)
            .facts
            .iter()
            .filter(|f| valid_at.is_none_or(|at| f.holds_at(at)))
            .cloned()
            .collect();
        Ok(rank_facts(facts, text, limit))
    }

    async fn profile(&self, user: &UserId) -> Result<MemoryProfile, MemoryError> {
        let mut profile = MemoryProfile {
            user: user.clone(),
            episode_count: 0,
            fact_count: 0,
            block_count: 0,
            last_seen: None,
            recent_sessions: Vec::new(),
            sample_facts: Vec::new(),
            backend: BACKEND.to_owned(),
            vector_search: "hnsw (in process)".to_owned(),
        };
        let Some(state) = self.get(user) else {
            return Ok(profile);
        };
        let s = read(&state);
        profile.episode_count = s.slots.len() as u64;
        profile.fact_count = s.facts.len() as u64;
        profile.block_count = s.blocks.len() as u64;
        profile.last_seen = s.live_episodes().map(|e| e.occurred_at).max();
        let mut sessions: Vec<(DateTime<Utc>, &SessionId)> = s
            .sessions
            .iter()
            .filter_map(|(id, slots)| {
                let last = slots
                    .iter()
                    .filter_map(|&x| s.episodes.get(x as usize).and_then(Option::as_ref))
                    .map(|e| e.occurred_at)
                    .max()?;
                Some((last, id))
            })
            .collect();
        sessions.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        profile.recent_sessions = sessions
            .into_iter()
            .take(10)
            .map(|(_, id)| id.clone())
            .collect();
        profile.sample_facts = sample_facts(&s.facts);
        Ok(profile)
    }

    async fn forget(&self, forget: &Forget) -> Result<Forgotten, MemoryError> {
        // No background extraction may write the erased data back.
        super::stop_extractions(forget).await;
        if forget.is_whole_user() {
            let removed = self.lock_users().remove(&forget.user);
            let Some(slot) = removed else {
                return Ok(Forgotten::default());
            };
            let s = read(&slot.state);
            return Ok(Forgotten {
                episodes: s.slots.len() as u64,
                facts: s.facts.len() as u64,
                blocks: s.blocks.len() as u64,
            });
        }
        let Some(state) = self.get(&forget.user) else {
            return Ok(Forgotten::default());
        };
        let mut s = write(&state);
        let doomed: Vec<u32> = s
            .episodes
            .iter()
            .enumerate()
            .filter(|(_, e)| e.as_ref().is_some_and(|e| forget.erases_episode(e)))
            .map(|(slot, _)| slot as u32)
            .collect();
        let erased: Vec<Episode> = doomed.iter().filter_map(|&slot| s.remove(slot)).collect();
        let erased_ids: Vec<&str> = erased.iter().map(|e| e.id.as_str()).collect();
        let facts_before = s.facts.len();
        s.facts.retain(|f| !forget.erases_fact(f, &erased_ids));
        let blocks_before = s.blocks.len();
        s.blocks.retain(|b| !forget.erases_block(b));
        for (i, b) in s.blocks.iter_mut().enumerate() {
            b.pinned_order = i as u32;
        }
        let out = Forgotten {
            episodes: erased.len() as u64,
            facts: (facts_before - s.facts.len()) as u64,
            blocks: (blocks_before - s.blocks.len()) as u64,
        };
        s.compact_if_sparse();
        Ok(out)
    }

    async fn export(&self, user: &UserId) -> Result<MemoryExport, MemoryError> {
        let mut export = MemoryExport {
            user: user.clone(),
            episodes: Vec::new(),
            facts: Vec::new(),
            blocks: Vec::new(),
            exported_at: Utc::now(),
        };
        let Some(state) = self.get(user) else {
            return Ok(export);
        };
        let s = read(&state);
        export.episodes = s.live_episodes().cloned().collect();
        export
            .episodes
            .sort_by(|a, b| a.occurred_at.cmp(&b.occurred_at).then(a.id.cmp(&b.id)));
        export.facts = s.facts.clone();
        export
            .facts
            .sort_by(|a, b| a.valid_from.cmp(&b.valid_from).then(a.id.cmp(&b.id)));
        export.blocks = s.blocks.clone();
        Ok(export)
    }
}

/// Up to ten facts holding now, newest `valid_from` first.
pub fn sample_facts(facts: &[Fact]) -> Vec<Fact> {
    let now = Utc::now();
    let mut holding: Vec<&Fact> = facts.iter().filter(|f| f.holds_at(now)).collect();
    holding.sort_by(|a, b| b.valid_from.cmp(&a.valid_from).then(a.id.cmp(&b.id)));
    holding.into_iter().take(10).cloned().collect()
}

/// Fuses a vector ranking and a keyword ranking of episode keys into the
/// `query.limit` best [`EpisodeMatch`]es; `load` fetches an episode by key.
/// Backends that rank in their own server call this with the two lists
/// they got back.
pub fn fuse_matches<K: Clone + Eq + std::hash::Hash>(
    by_vector: &[(K, f32)],
    by_keyword: &[(K, f32)],
    query: &Recall,
    mut load: impl FnMut(&K) -> Option<Episode>,
) -> Vec<EpisodeMatch> {
    let v: Vec<K> = by_vector.iter().map(|h| h.0.clone()).collect();
    let k: Vec<K> = by_keyword.iter().map(|h| h.0.clone()).collect();
    let find = |list: &[(K, f32)], key: &K| list.iter().find(|h| &h.0 == key).map(|h| h.1);
    fuse(&v, &k, query.alpha)
        .into_iter()
        .filter_map(|(key, score)| {
            Some(EpisodeMatch {
                episode: load(&key)?,
                score,
                vector_score: find(by_vector, &key),
                bm25_score: find(by_keyword, &key),
            })
        })
        .take(query.limit)
        .collect()
}
