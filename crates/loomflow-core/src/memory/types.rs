//! The values the [`Memory`](super::Memory) port stores and returns.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{SessionId, UserId};
use crate::message::Message;

use super::fact::{Fact, InvalidFact};

/// One run's raw exchange: what the user said, what the agent answered, and
/// (optionally) the tool calls in between.
///
/// ```
/// use loomflow_core::memory::Episode;
/// let ep = Episode::new("Where do I live?", "In Paris.").session("s1".try_into().unwrap());
/// assert!(ep.id.starts_with("ep_"));
/// assert_eq!(ep.session.as_ref().map(|s| s.as_str()), Some("s1"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// `ep_` followed by a ULID.
    pub id: String,
    /// The session it belongs to; `None` for a run outside any session.
    pub session: Option<SessionId>,
    /// When the run happened.
    pub occurred_at: DateTime<Utc>,
    /// The user's input.
    pub input: String,
    /// The agent's answer.
    pub output: String,
    /// Names of the tools the run called, in call order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<String>,
    /// The run's assistant tool-call and tool-result messages, kept when the
    /// agent persists tool transcripts; replayed by
    /// [`session_messages`](super::Memory::session_messages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_transcript: Vec<Message>,
}

impl Episode {
    /// An episode that happened now, outside any session.
    pub fn new(input: impl Into<String>, output: impl Into<String>) -> Self {
        Self {
            id: format!("ep_{}", ulid::Ulid::new()),
            session: None,
            occurred_at: Utc::now(),
            input: input.into(),
            output: output.into(),
            tool_calls: Vec::new(),
            tool_transcript: Vec::new(),
        }
    }

    /// The same episode, in `session`.
    pub fn session(mut self, session: SessionId) -> Self {
        self.session = Some(session);
        self
    }

    /// The same episode, dated `at`.
    pub fn occurred_at(mut self, at: DateTime<Utc>) -> Self {
        self.occurred_at = at;
        self
    }

    /// The text recall indexes: the input, then the output.
    pub fn text(&self) -> String {
        let mut text = String::with_capacity(self.input.len() + self.output.len() + 1);
        text.push_str(&self.input);
        text.push('\n');
        text.push_str(&self.output);
        text
    }
}

/// The tool-related parts of an [`Episode`] (its tool call names and
/// transcript), as storage backends keep them in one JSON field.
///
/// ```
/// use loomflow_core::memory::{Episode, EpisodeTools};
/// let mut ep = Episode::new("What's the weather?", "Sunny.");
/// ep.tool_calls.push("weather".into());
/// let json = serde_json::to_string(&EpisodeTools::from(&ep)).unwrap();
/// assert_eq!(json, r#"{"tool_calls":["weather"]}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpisodeTools {
    /// [`Episode::tool_calls`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<String>,
    /// [`Episode::tool_transcript`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_transcript: Vec<Message>,
}

impl From<&Episode> for EpisodeTools {
    fn from(episode: &Episode) -> Self {
        Self {
            tool_calls: episode.tool_calls.clone(),
            tool_transcript: episode.tool_transcript.clone(),
        }
    }
}

/// A named piece of text pinned into every prompt of the user's runs, in
/// `pinned_order` (e.g. `persona`, `preferences`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryBlock {
    /// The block's name, unique per user.
    pub name: String,
    /// Its text.
    pub content: String,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Where it sits among the user's blocks: the order of first creation.
    pub pinned_order: u32,
}

impl MemoryBlock {
    /// The block `name` after writing `text` at `now`, given the user's
    /// current `blocks`: replaced (or, with `append`, added on a new line)
    /// if it exists, else a new block pinned after the others. Backends that
    /// read the blocks, then store the result, share this rule.
    ///
    /// ```
    /// use chrono::Utc;
    /// use loomflow_core::memory::MemoryBlock;
    /// let now = Utc::now();
    /// let first = MemoryBlock::written(&[], "persona", "terse", false, now);
    /// assert_eq!(first.pinned_order, 0);
    /// let more = MemoryBlock::written(&[first], "persona", "kind", true, now);
    /// assert_eq!(more.content, "terse\nkind");
    /// ```
    pub fn written(
        blocks: &[MemoryBlock],
        name: &str,
        text: &str,
        append: bool,
        now: DateTime<Utc>,
    ) -> MemoryBlock {
        match blocks.iter().find(|b| b.name == name) {
            Some(b) => MemoryBlock {
                content: if append && !b.content.is_empty() {
                    format!("{}\n{text}", b.content)
                } else {
                    text.to_owned()
                },
                updated_at: now,
                ..b.clone()
            },
            None => MemoryBlock {
                name: name.to_owned(),
                content: text.to_owned(),
                updated_at: now,
                pinned_order: blocks.iter().map(|b| b.pinned_order + 1).max().unwrap_or(0),
            },
        }
    }
}

/// What [`recall`](super::Memory::recall) looks for.
///
/// ```
/// use loomflow_core::memory::Recall;
/// let q = Recall::new("trip to Rome").limit(3).alpha(0.7);
/// assert_eq!(q.limit, 3);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Recall {
    /// The text to match.
    pub text: String,
    /// At most this many episodes (default 5).
    pub limit: usize,
    /// The weight of vector similarity against BM25 in the fused rank,
    /// 0.0 (keywords only) to 1.0 (vectors only); default 0.5.
    pub alpha: f32,
    /// Only episodes that occurred in `[from, to)`.
    pub time_range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Leave this session's episodes out (a run recalling "past" episodes
    /// already has its own session's turns).
    pub exclude_session: Option<SessionId>,
}

impl Recall {
    /// The five best matches for `text`, vectors and keywords weighted equally.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            limit: 5,
            alpha: 0.5,
            time_range: None,
            exclude_session: None,
        }
    }

    /// At most `limit` episodes.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// The vector weight, clamped to 0.0..=1.0.
    pub fn alpha(mut self, alpha: f32) -> Self {
        self.alpha = if alpha.is_nan() {
            0.5
        } else {
            alpha.clamp(0.0, 1.0)
        };
        self
    }

    /// Only episodes that occurred in `[from, to)`.
    pub fn between(mut self, from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        self.time_range = Some((from, to));
        self
    }

    /// Without `session`'s episodes.
    pub fn excluding_session(mut self, session: SessionId) -> Self {
        self.exclude_session = Some(session);
        self
    }

    /// Whether an episode passes the time and session filters.
    pub fn admits(&self, episode: &Episode) -> bool {
        self.time_range
            .is_none_or(|(from, to)| from <= episode.occurred_at && episode.occurred_at < to)
            && self
                .exclude_session
                .as_ref()
                .is_none_or(|s| episode.session.as_ref() != Some(s))
    }
}

/// One recalled episode with how it scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeMatch {
    /// The episode.
    pub episode: Episode,
    /// The fused score (reciprocal-rank fusion of the two ranks below);
    /// higher is better.
    pub score: f32,
    /// Cosine similarity to the query, when the episode was among the
    /// vector candidates.
    pub vector_score: Option<f32>,
    /// BM25 score, when the episode matched a query keyword.
    pub bm25_score: Option<f32>,
}

/// Which facts [`query_facts`](super::Memory::query_facts) returns. Every
/// filter given must match (subject and object compare exactly, the
/// predicate after canonicalisation).
///
/// ```
/// use loomflow_core::memory::FactQuery;
/// let q = FactQuery::new().subject("alice").predicate("Lives In");
/// assert_eq!(q.predicate.as_deref(), Some("Lives In"));
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FactQuery {
    /// Facts about this subject.
    pub subject: Option<String>,
    /// With this predicate (canonicalised before matching).
    pub predicate: Option<String>,
    /// With this object.
    pub object: Option<String>,
    /// Holding at this time.
    pub valid_at: Option<DateTime<Utc>>,
    /// At most this many (default 10), newest `valid_from` first.
    pub limit: usize,
}

impl FactQuery {
    /// All facts, at most ten.
    pub fn new() -> Self {
        Self {
            limit: 10,
            ..Self::default()
        }
    }

    /// About `subject`.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// With `predicate`.
    pub fn predicate(mut self, predicate: impl Into<String>) -> Self {
        self.predicate = Some(predicate.into());
        self
    }

    /// With `object`.
    pub fn object(mut self, object: impl Into<String>) -> Self {
        self.object = Some(object.into());
        self
    }

    /// Holding at `at`.
    pub fn valid_at(mut self, at: DateTime<Utc>) -> Self {
        self.valid_at = Some(at);
        self
    }

    /// At most `limit`.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Whether `fact` passes every filter. `predicate` must already be
    /// canonical (see [`FactQuery::canonical`]).
    pub fn admits(&self, fact: &Fact) -> bool {
        self.subject.as_ref().is_none_or(|s| &fact.subject == s)
            && self.predicate.as_ref().is_none_or(|p| &fact.predicate == p)
            && self.object.as_ref().is_none_or(|o| &fact.object == o)
            && self.valid_at.is_none_or(|at| fact.holds_at(at))
    }

    /// The facts of `facts` this query selects: those it admits (cloned),
    /// newest `valid_from` first (ties by id), at most `limit`. `self` must
    /// be canonical.
    pub fn select<'a>(&self, facts: impl IntoIterator<Item = &'a Fact>) -> Vec<Fact> {
        let mut selected: Vec<Fact> = facts
            .into_iter()
            .filter(|f| self.admits(f))
            .cloned()
            .collect();
        selected.sort_by(|a, b| b.valid_from.cmp(&a.valid_from).then(a.id.cmp(&b.id)));
        selected.truncate(self.limit);
        selected
    }

    /// The same query with its predicate canonicalised.
    pub fn canonical(mut self) -> Result<Self, InvalidFact> {
        if let Some(p) = &self.predicate {
            self.predicate = Some(super::canonical_predicate(p)?);
        }
        Ok(self)
    }
}

/// What [`forget`](super::Memory::forget) erases: one user's data, narrowed
/// by every filter given (the filters AND).
///
/// - Episodes: those in `session` (if given) that occurred before `before`
///   (if given).
/// - Facts: with `session`, those sourced only from erased episodes; with
///   `before`, those recorded before it.
/// - Working blocks: only without `session`; with `before`, those last
///   updated before it.
///
/// There is no "everyone": a `Forget` always names one user (the anonymous
/// bucket is [`UserId::anonymous`], never a wildcard).
///
/// ```
/// use loomflow_core::{UserId, memory::Forget};
/// let everything_of_alice = Forget::user(UserId::new("alice").unwrap());
/// let one_session = Forget::user(UserId::new("alice").unwrap()).session("s1".try_into().unwrap());
/// assert!(everything_of_alice.is_whole_user());
/// assert!(!one_session.is_whole_user());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Forget {
    /// Whose data.
    pub user: UserId,
    /// Only this session's episodes (and facts drawn only from them).
    pub session: Option<SessionId>,
    /// Only what is older than this.
    pub before: Option<DateTime<Utc>>,
}

impl Forget {
    /// Everything `user` has: episodes, facts, session history, blocks.
    pub fn user(user: UserId) -> Self {
        Self {
            user,
            session: None,
            before: None,
        }
    }

    /// Only `session`.
    pub fn session(mut self, session: SessionId) -> Self {
        self.session = Some(session);
        self
    }

    /// Only what is older than `at`.
    pub fn before(mut self, at: DateTime<Utc>) -> Self {
        self.before = Some(at);
        self
    }

    /// True when no filter narrows it: the user's whole memory goes.
    pub fn is_whole_user(&self) -> bool {
        self.session.is_none() && self.before.is_none()
    }

    /// Whether an episode is erased.
    pub fn erases_episode(&self, episode: &Episode) -> bool {
        self.session
            .as_ref()
            .is_none_or(|s| episode.session.as_ref() == Some(s))
            && self.before.is_none_or(|b| episode.occurred_at < b)
    }

    /// Whether a fact is erased, given the ids of the episodes erased.
    pub fn erases_fact(&self, fact: &Fact, erased_episodes: &[&str]) -> bool {
        let by_session = self.session.is_none()
            || (!fact.sources.is_empty()
                && fact
                    .sources
                    .iter()
                    .all(|s| erased_episodes.contains(&s.as_str())));
        by_session && self.before.is_none_or(|b| fact.recorded_at < b)
    }

    /// Whether a working block is erased.
    pub fn erases_block(&self, block: &MemoryBlock) -> bool {
        self.session.is_none() && self.before.is_none_or(|b| block.updated_at < b)
    }
}

/// How much [`forget`](super::Memory::forget) erased.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forgotten {
    /// Episodes (each also leaves the session history).
    pub episodes: u64,
    /// Facts.
    pub facts: u64,
    /// Working blocks.
    pub blocks: u64,
}

impl Forgotten {
    /// Everything erased.
    pub fn total(&self) -> u64 {
        self.episodes + self.facts + self.blocks
    }
}

/// A summary of what memory holds about one user (a GDPR access request's
/// first answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryProfile {
    /// Whose.
    pub user: UserId,
    /// Stored episodes.
    pub episode_count: u64,
    /// Stored facts, superseded ones included.
    pub fact_count: u64,
    /// Working blocks.
    pub block_count: u64,
    /// When the newest episode occurred.
    pub last_seen: Option<DateTime<Utc>>,
    /// Up to ten sessions, most recent first.
    pub recent_sessions: Vec<SessionId>,
    /// Up to ten facts that hold now, newest first.
    pub sample_facts: Vec<Fact>,
    /// The backend (`inmemory`, `sqlite`, …).
    pub backend: String,
    /// How vector recall runs here, in words: e.g. `pgvector hnsw (cosine,
    /// hnsw.iterative_scan = relaxed_order)`, `redis vector sets (…)` or
    /// `client-side cosine over stored embeddings (…)`.
    pub vector_search: String,
}

/// Everything memory holds about one user (a GDPR portability request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryExport {
    /// Whose.
    pub user: UserId,
    /// Every episode, oldest first.
    pub episodes: Vec<Episode>,
    /// Every fact, superseded ones included, oldest `valid_from` first.
    pub facts: Vec<Fact>,
    /// Every working block, in pinned order.
    pub blocks: Vec<MemoryBlock>,
    /// When the export was taken.
    pub exported_at: DateTime<Utc>,
}

/// A memory operation that failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// The storage backend failed (I/O, query, constraint).
    #[error("memory backend `{backend}` failed: {message}")]
    Backend {
        /// `inmemory`, `sqlite`, `postgres`, `redis`, `chroma`.
        backend: String,
        /// What happened.
        message: String,
    },
    /// A network backend could not be reached.
    #[error(
        "memory backend `{backend}` at {url} is unreachable: {message}; \
         check that the server runs and the URL is right"
    )]
    Unreachable {
        /// The backend.
        backend: String,
        /// Its URL, password redacted.
        url: String,
        /// The connection error.
        message: String,
    },
    /// The embedder failed.
    #[error("embedder `{embedder}` failed: {message}")]
    Embedder {
        /// The embedder's name.
        embedder: String,
        /// Its error.
        message: String,
    },
    /// The store holds vectors of another size than the embedder makes.
    #[error(
        "memory store `{store}` holds {stored}-dimensional vectors but embedder `{embedder}` makes \
         {made}-dimensional ones; use the embedder the store was built with, or a new store"
    )]
    Dimensions {
        /// The store (path, namespace or collection).
        store: String,
        /// The stored vectors' size.
        stored: usize,
        /// The embedder.
        embedder: String,
        /// Its vectors' size.
        made: usize,
    },
    /// A fact was refused.
    #[error(transparent)]
    InvalidFact(#[from] InvalidFact),
    /// An argument was out of range (an empty block name, …).
    #[error("{0}")]
    Invalid(String),
    /// A stored row does not decode.
    #[error(
        "memory backend `{backend}` holds an unreadable {what} for user {user}: {message}; \
         export what is readable, then forget and re-import the user"
    )]
    Corrupt {
        /// The backend.
        backend: String,
        /// The user.
        user: UserId,
        /// `episode ep_…`, `fact fact_…`, `block …`.
        what: String,
        /// The decoder's message.
        message: String,
    },
    /// A memory configuration string or table is wrong.
    #[error("{0}")]
    Config(String),
}

impl MemoryError {
    /// A backend failure.
    pub fn backend(backend: &str, message: impl std::fmt::Display) -> Self {
        Self::Backend {
            backend: backend.to_owned(),
            message: message.to_string(),
        }
    }
}
