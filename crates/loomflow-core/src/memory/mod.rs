//! Long-term memory: what a user's runs leave behind for later runs.
//!
//! The [`Memory`] port stores, per user:
//!
//! - **working blocks** ([`MemoryBlock`]): named texts pinned into every
//!   prompt, in order (`persona`, `preferences`);
//! - **episodes** ([`Episode`]): each run's input and answer, recalled by
//!   hybrid search (vector similarity and BM25 fused by reciprocal rank,
//!   [`Memory::recall_scored`]) and replayed as a session's history
//!   ([`Memory::session_messages`]), so the same session id in a fresh
//!   process continues the conversation;
//! - **facts** ([`Fact`]): bi-temporal (subject, predicate, object) triples;
//!   a new value of a (subject, predicate) closes the old one by valid time
//!   ([`plan_supersession`]), whatever order they arrive in.
//!
//! Every method takes the [`UserId`]: one tenant can never read, recall or
//! erase another's memory. [`Memory::profile`], [`Memory::export`] and
//! [`Memory::forget`] serve data-protection requests.
//!
//! ```
//! use loomflow_core::memory::{Episode, InMemoryMemory, Memory, Recall};
//! use loomflow_core::UserId;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let memory = InMemoryMemory::new();
//! let alice = UserId::new("alice").unwrap();
//! memory.remember(&alice, Episode::new("I'm planning a trip to Rome", "Noted: Rome in May.")).await.unwrap();
//! let hits = memory.recall(&alice, &Recall::new("Rome trip")).await.unwrap();
//! assert_eq!(hits[0].output, "Noted: Rome in May.");
//! // Bob shares nothing with Alice.
//! let bob = UserId::new("bob").unwrap();
//! assert!(memory.recall(&bob, &Recall::new("Rome trip")).await.unwrap().is_empty());
//! # });
//! ```

mod ann;
mod consolidate;
pub mod extraction;
mod fact;
mod hash_embed;
mod in_memory;
mod spec;
pub mod text;
mod types;
mod user_locks;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::id::{SessionId, UserId};
use crate::message::{Message, Role};

pub use ann::{Hnsw, UnreadableLinks};
pub use consolidate::{Consolidator, DEFAULT_EXTRACTION_PROMPT, parse_facts};
pub use extraction::{Extractor, drain_all, stop_extractions};
pub use fact::{
    Fact, InvalidFact, Supersession, canonical_predicate, plan_supersession, supersede_and_push,
};
pub use hash_embed::HashEmbedder;
pub use in_memory::{InMemoryMemory, fuse_matches, recall_candidates, sample_facts};
pub use spec::{EmbedderSpec, MemoryBackend, MemorySpec};
pub use types::{
    Episode, EpisodeMatch, EpisodeTools, FactQuery, Forget, Forgotten, MemoryBlock, MemoryError,
    MemoryExport, MemoryProfile, Recall,
};
pub use user_locks::UserLocks;

/// A user-partitioned long-term memory. See the [module docs](self).
///
/// Backends: [`InMemoryMemory`] here, `loomflow-sqlite`'s `SqliteMemory`
/// (the embedded default), `loomflow-postgres`'s `PostgresMemory`,
/// `loomflow-redis`'s `RedisMemory` and `loomflow-chroma`'s `ChromaMemory`;
/// all pass `loomflow_testkit::memory_contract`.
#[async_trait]
pub trait Memory: Send + Sync + 'static {
    /// The backend's name (`inmemory`, `sqlite`, …).
    fn backend(&self) -> &str;

    /// The user's working blocks, in pinned order.
    async fn working(&self, user: &UserId) -> Result<Vec<MemoryBlock>, MemoryError>;

    /// Sets block `name` to `content`, creating it (pinned after the
    /// user's other blocks) if needed.
    async fn update_block(
        &self,
        user: &UserId,
        name: &str,
        content: &str,
    ) -> Result<MemoryBlock, MemoryError>;

    /// Appends `text` to block `name` on a new line, creating the block if
    /// needed.
    async fn append_block(
        &self,
        user: &UserId,
        name: &str,
        text: &str,
    ) -> Result<MemoryBlock, MemoryError>;

    /// Stores an episode and returns its id. Storing the same id again
    /// replaces the episode. By default, a
    /// [`remember_many`](Self::remember_many) of one.
    async fn remember(&self, user: &UserId, episode: Episode) -> Result<String, MemoryError> {
        single_id(
            self.remember_many(user, vec![episode]).await?,
            self.backend(),
        )
    }

    /// Stores several episodes of one user and returns their ids, in
    /// order: the same as [`remember`](Self::remember) for each in turn
    /// (a repeated id keeps the last), but the backends embed the texts in
    /// one embedder call and write them in one transaction or round trip,
    /// which is what a bulk import needs. The SQL backends and the
    /// in-memory one store all or none; on an error from Redis or Chroma
    /// a part of the batch may be stored, and storing it again is safe.
    ///
    /// ```
    /// use loomflow_core::memory::{Episode, InMemoryMemory, Memory, Recall};
    /// use loomflow_core::UserId;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let memory = InMemoryMemory::new();
    /// let alice = UserId::new("alice").unwrap();
    /// let ids = memory
    ///     .remember_many(&alice, vec![
    ///         Episode::new("My cat is called Miso", "A fine name."),
    ///         Episode::new("I moved to Lisbon", "Welcome to Lisbon!"),
    ///     ])
    ///     .await
    ///     .unwrap();
    /// assert_eq!(ids.len(), 2);
    /// let hits = memory.recall(&alice, &Recall::new("Lisbon")).await.unwrap();
    /// assert_eq!(hits[0].id, ids[1]);
    /// # });
    /// ```
    async fn remember_many(
        &self,
        user: &UserId,
        episodes: Vec<Episode>,
    ) -> Result<Vec<String>, MemoryError> {
        let mut ids = Vec::with_capacity(episodes.len());
        for episode in episodes {
            ids.push(self.remember(user, episode).await?);
        }
        Ok(ids)
    }

    /// The episodes best matching `query`, best first, with their scores:
    /// the vector ranking and the BM25 ranking fused by reciprocal rank
    /// (weights `alpha` and `1 - alpha`).
    async fn recall_scored(
        &self,
        user: &UserId,
        query: &Recall,
    ) -> Result<Vec<EpisodeMatch>, MemoryError>;

    /// The episodes best matching `query`, best first.
    async fn recall(&self, user: &UserId, query: &Recall) -> Result<Vec<Episode>, MemoryError> {
        Ok(self
            .recall_scored(user, query)
            .await?
            .into_iter()
            .map(|m| m.episode)
            .collect())
    }

    /// The last `limit` episodes of `session`, oldest first.
    async fn session_episodes(
        &self,
        user: &UserId,
        session: &SessionId,
        limit: usize,
    ) -> Result<Vec<Episode>, MemoryError>;

    /// The last `turns` turns of `session` as chat history, oldest first:
    /// per episode the user's input, then (if it was persisted) its tool
    /// transcript, then the answer.
    async fn session_messages(
        &self,
        user: &UserId,
        session: &SessionId,
        turns: usize,
    ) -> Result<Vec<Message>, MemoryError> {
        let episodes = self.session_episodes(user, session, turns).await?;
        Ok(episodes_to_messages(&episodes))
    }

    /// Stores `fact` for the user, applying valid-time supersession to the
    /// user's facts with the same subject and predicate. Returns the fact
    /// as stored (its `valid_until` is set when a later fact already
    /// supersedes it).
    async fn append_fact(&self, user: &UserId, fact: Fact) -> Result<Fact, MemoryError>;

    /// The user's facts passing every filter of `query`, newest
    /// `valid_from` first.
    async fn query_facts(&self, user: &UserId, query: &FactQuery)
    -> Result<Vec<Fact>, MemoryError>;

    /// The user's facts most relevant to `text` (shared words between the
    /// text and "subject predicate object"), holding at `valid_at` when
    /// given, best first. An empty text returns the newest facts.
    async fn recall_facts(
        &self,
        user: &UserId,
        text: &str,
        limit: usize,
        valid_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Fact>, MemoryError>;

    /// A summary of what is stored about the user.
    async fn profile(&self, user: &UserId) -> Result<MemoryProfile, MemoryError>;

    /// Erases what `forget` selects (see [`Forget`]) and says how much.
    /// Implementations start with [`stop_extractions`], so that no
    /// background extraction writes the erased data back.
    async fn forget(&self, forget: &Forget) -> Result<Forgotten, MemoryError>;

    /// Everything stored about the user.
    async fn export(&self, user: &UserId) -> Result<MemoryExport, MemoryError>;
}

impl std::fmt::Debug for dyn Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Memory({})", self.backend())
    }
}

/// Episodes as chat history (see [`Memory::session_messages`]).
pub fn episodes_to_messages(episodes: &[Episode]) -> Vec<Message> {
    let mut out = Vec::with_capacity(episodes.len() * 2);
    for ep in episodes {
        out.push(Message::text(Role::User, ep.input.clone()));
        out.extend(ep.tool_transcript.iter().cloned());
        out.push(Message::text(Role::Assistant, ep.output.clone()));
    }
    out
}

/// Ranks `facts` for [`Memory::recall_facts`]: by the share of the query's
/// words found in "subject predicate object", ties and empty queries by
/// newest `valid_from`. Facts sharing no word with a non-empty query are
/// dropped. Backends without a server-side ranking use it.
pub fn rank_facts(mut facts: Vec<Fact>, text: &str, limit: usize) -> Vec<Fact> {
    let words = text::tokens(text);
    if words.is_empty() {
        facts.sort_by_key(|f| std::cmp::Reverse(f.valid_from));
        facts.truncate(limit);
        return facts;
    }
    let mut scored: Vec<(f32, Fact)> = facts
        .into_iter()
        .filter_map(|f| {
            let haystack = format!(
                "{} {} {}",
                f.subject,
                f.predicate.replace('_', " "),
                f.object
            );
            let s = text::word_overlap(&words, &haystack);
            (s > 0.0).then_some((s, f))
        })
        .collect();
    scored.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| b.1.valid_from.cmp(&a.1.valid_from))
    });
    scored.into_iter().take(limit).map(|(_, f)| f).collect()
}

/// Embeds one text with `embedder` for the memory `store` (a path, URL or
/// collection, named in errors): an embedder failure is a
/// [`MemoryError::Embedder`], a vector of the wrong length a
/// [`MemoryError::Dimensions`].
pub async fn embed_text(
    embedder: &dyn crate::Embedder,
    store: &str,
    text: &str,
) -> Result<Vec<f32>, MemoryError> {
    let mut vectors = embed_texts(embedder, store, &[text]).await?;
    Ok(vectors.pop().unwrap_or_default())
}

/// Embeds `texts` in one embedder call (see [`embed_text`] for the
/// errors); one vector per text, in order. A reply with a different
/// number of vectors is a [`MemoryError::Embedder`].
pub async fn embed_texts(
    embedder: &dyn crate::Embedder,
    store: &str,
    texts: &[&str],
) -> Result<Vec<Vec<f32>>, MemoryError> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let vectors = embedder
        .embed(texts)
        .await
        .map_err(|err| MemoryError::Embedder {
            embedder: embedder.name().to_owned(),
            message: err.to_string(),
        })?;
    if vectors.len() != texts.len() {
        return Err(MemoryError::Embedder {
            embedder: embedder.name().to_owned(),
            message: format!("asked for {} vectors, got {}", texts.len(), vectors.len()),
        });
    }
    if let Some(bad) = vectors.iter().find(|v| v.len() != embedder.dimensions()) {
        return Err(MemoryError::Dimensions {
            store: store.to_owned(),
            stored: embedder.dimensions(),
            embedder: embedder.name().to_owned(),
            made: bad.len(),
        });
    }
    Ok(vectors)
}

/// Each episode's text ([`Episode::text`]) and its vector, embedded in one
/// call (see [`embed_texts`] for the errors).
pub async fn embed_episodes(
    embedder: &dyn crate::Embedder,
    store: &str,
    episodes: &[Episode],
) -> Result<(Vec<String>, Vec<Vec<f32>>), MemoryError> {
    let texts: Vec<String> = episodes.iter().map(Episode::text).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = embed_texts(embedder, store, &refs).await?;
    Ok((texts, vectors))
}

/// The last episode of each id in `episodes`, in their order: what storing
/// them one after another leaves, for backends that write a batch at once.
///
/// ```
/// use loomflow_core::memory::{Episode, last_of_each_id};
/// let first = Episode::new("draft", "a");
/// let mut again = first.clone();
/// again.input = "final".into();
/// let other = Episode::new("other", "b");
/// let kept = last_of_each_id(vec![first, other.clone(), again]);
/// assert_eq!(kept.iter().map(|e| e.input.as_str()).collect::<Vec<_>>(), ["other", "final"]);
/// ```
pub fn last_of_each_id(episodes: Vec<Episode>) -> Vec<Episode> {
    let last: std::collections::HashMap<String, usize> = episodes
        .iter()
        .enumerate()
        .map(|(i, e)| (e.id.clone(), i))
        .collect();
    episodes
        .into_iter()
        .enumerate()
        .filter(|(i, e)| last.get(&e.id) == Some(i))
        .map(|(_, e)| e)
        .collect()
}

/// The one id a [`Memory::remember_many`] of one episode returns.
fn single_id(mut ids: Vec<String>, backend: &str) -> Result<String, MemoryError> {
    match (ids.pop(), ids.is_empty()) {
        (Some(id), true) => Ok(id),
        _ => Err(MemoryError::backend(
            backend,
            "storing one episode did not return exactly one id",
        )),
    }
}

/// Checks a working block's name: 1 to 64 characters, not blank.
pub fn check_block_name(name: &str) -> Result<(), MemoryError> {
    if name.trim().is_empty() || name.chars().count() > 64 {
        return Err(MemoryError::Invalid(format!(
            "a working block needs a name of 1 to 64 characters (e.g. `persona`); got `{}`",
            name.escape_debug()
        )));
    }
    Ok(())
}
