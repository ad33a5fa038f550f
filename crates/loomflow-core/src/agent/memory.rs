//! How an agent reads its memory before a run and writes to it after.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::context::RunContext;
use crate::error::Result;
use crate::journal::{self, CallContext};
use crate::memory::{Episode, Extractor, Memory, Recall};
use crate::message::{Message, Role};

/// How an agent uses its [`Memory`]: what the first turn is seeded with,
/// and what each run leaves behind.
///
/// ```
/// use loomflow_core::agent::MemoryOptions;
/// let options = MemoryOptions::default().token_budget(800).persist_tool_transcripts(true);
/// assert_eq!(options.facts, 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryOptions {
    /// Roughly how many tokens (4 characters each) the recalled facts and
    /// episodes may take in the first prompt; the most relevant go first.
    /// Working blocks and the session's own history are not counted.
    pub token_budget: usize,
    /// At most this many known facts (holding now) are recalled.
    pub facts: usize,
    /// At most this many past episodes (from other sessions) are recalled.
    pub episodes: usize,
    /// The session's last this-many turns are replayed as chat history.
    pub session_turns: usize,
    /// Keep each run's tool calls and results with its episode, so a
    /// rehydrated session shows them.
    pub persist_tool_transcripts: bool,
    /// Each persisted tool message is cut to this many bytes.
    pub transcript_max_bytes: usize,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        Self {
            token_budget: 1500,
            facts: 5,
            episodes: 3,
            session_turns: 10,
            persist_tool_transcripts: false,
            transcript_max_bytes: 4096,
        }
    }
}

impl MemoryOptions {
    /// Sets [`token_budget`](Self::token_budget).
    pub fn token_budget(mut self, tokens: usize) -> Self {
        self.token_budget = tokens;
        self
    }

    /// Sets [`facts`](Self::facts).
    pub fn facts(mut self, n: usize) -> Self {
        self.facts = n;
        self
    }

    /// Sets [`episodes`](Self::episodes).
    pub fn episodes(mut self, n: usize) -> Self {
        self.episodes = n;
        self
    }

    /// Sets [`session_turns`](Self::session_turns).
    pub fn session_turns(mut self, n: usize) -> Self {
        self.session_turns = n;
        self
    }

    /// Sets [`persist_tool_transcripts`](Self::persist_tool_transcripts).
    pub fn persist_tool_transcripts(mut self, on: bool) -> Self {
        self.persist_tool_transcripts = on;
        self
    }
}

/// What seeding read from memory, recorded as the run's `recall_memory`
/// journal step so a resumed run sees the same prompt.
#[derive(Serialize, Deserialize)]
struct Seed {
    messages: Vec<Message>,
}

fn tokens(text: &str) -> usize {
    text.len().div_ceil(4)
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary (`str::floor_char_boundary` is newer than our MSRV).
fn clip(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Appends `heading` and as many of `lines` as `budget` (in tokens) allows
/// to `out` (the heading only if a line fits); stops at the first line
/// that does not fit.
fn pack(out: &mut String, heading: &str, lines: impl Iterator<Item = String>, budget: &mut usize) {
    let mut started = false;
    for line in lines {
        let cost = tokens(&line) + if started { 0 } else { tokens(heading) };
        if cost > *budget {
            return;
        }
        *budget -= cost;
        if !started {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(heading);
            started = true;
        }
        out.push('\n');
        out.push_str(&line);
    }
}

/// The messages that go between the system instructions and the user's
/// input on a run's first turn: one system message per working block
/// (`<name>…</name>`), one system message of recalled facts and episodes
/// (most relevant first, within the token budget; no facts unless
/// `with_facts`), then the session's history.
pub(crate) async fn seed(
    memory: &dyn Memory,
    options: &MemoryOptions,
    with_facts: bool,
    ctx: &RunContext,
    input: &str,
) -> Result<Vec<Message>> {
    let work = || async {
        let user = &ctx.user_id;
        let blocks = memory.working(user).await?;
        let facts = match if with_facts { options.facts } else { 0 } {
            0 => Vec::new(),
            n => {
                memory
                    .recall_facts(user, input, n, Some(chrono::Utc::now()))
                    .await?
            }
        };
        let episodes = match options.episodes {
            0 => Vec::new(),
            n => {
                let query = Recall::new(input)
                    .limit(n)
                    .excluding_session(ctx.session_id.clone());
                memory.recall(user, &query).await?
            }
        };
        let history = match options.session_turns {
            0 => Vec::new(),
            n => memory.session_messages(user, &ctx.session_id, n).await?,
        };

        let mut messages = Vec::with_capacity(blocks.len() + 1 + history.len());
        for b in blocks {
            messages.push(Message::system(format!(
                "<{name}>\n{content}\n</{name}>",
                name = b.name,
                content = b.content
            )));
        }
        let mut budget = options.token_budget;
        let mut recalled = String::new();
        let facts = facts.iter().map(|f| {
            let since = f.valid_from.format("%Y-%m-%d");
            format!(
                "- {} {} {} (since {since})",
                f.subject, f.predicate, f.object
            )
        });
        pack(&mut recalled, "Known facts:", facts, &mut budget);
        let episodes = episodes.iter().map(|e| {
            format!(
                "- {}: User: {} | Assistant: {}",
                e.occurred_at.format("%Y-%m-%d"),
                clip(&e.input, 600),
                clip(&e.output, 600)
            )
        });
        pack(
            &mut recalled,
            "Relevant past episodes:",
            episodes,
            &mut budget,
        );
        if !recalled.is_empty() {
            messages.push(Message::system(recalled));
        }
        messages.extend(history);
        Ok::<_, crate::Error>(Seed { messages })
    };
    let seed = journal::step("recall_memory", input, work).await?;
    Ok(seed.messages)
}

/// Stores the run as an episode, as the journal step
/// `persist_episode_{turns}`: replayed (not written twice) when a run is
/// resumed, and with an id derived from the step's idempotency key, so a
/// write cut short by a crash is replaced, not duplicated, when it runs
/// again. With an `extractor`, the stored episode's facts are then
/// extracted in the background (only when the step runs, not when it is
/// replayed).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn persist(
    memory: &Arc<dyn Memory>,
    extractor: Option<&Extractor>,
    options: &MemoryOptions,
    ctx: &RunContext,
    input: &str,
    output: &str,
    transcript: &[Message],
    turns: u32,
) -> Result<()> {
    let mut episode = Episode::new(input, output).session(ctx.session_id.clone());
    for m in transcript {
        for call in &m.tool_calls {
            episode.tool_calls.push(call.tool.clone());
        }
    }
    if options.persist_tool_transcripts {
        episode.tool_transcript = transcript
            .iter()
            .filter(|m| m.role == Role::Tool || !m.tool_calls.is_empty())
            .map(|m| {
                let mut m = m.clone();
                for part in &mut m.content {
                    if let crate::message::ContentPart::Text { text } = part {
                        let keep = clip(text, options.transcript_max_bytes).len();
                        text.truncate(keep);
                    }
                }
                m
            })
            .collect();
    }
    let name = format!("persist_episode_{turns}");
    let fingerprint_input = (input, output);
    journal::step(&name, &fingerprint_input, || async {
        if let Some(cx) = CallContext::current() {
            episode.id = format!("ep_{}", journal::fingerprint(&cx.idempotency_key()));
        }
        let Some(extractor) = extractor else {
            return Ok::<_, crate::Error>(memory.remember(&ctx.user_id, episode).await?);
        };
        // Claimed before the write, so a `forget` racing it cancels it.
        let claim = extractor.claim(&ctx.user_id, &episode);
        // The extraction reads the exchange only, not the tool transcript.
        let mut exchange = Episode {
            id: String::new(),
            session: episode.session.clone(),
            occurred_at: episode.occurred_at,
            input: episode.input.clone(),
            output: episode.output.clone(),
            tool_calls: Vec::new(),
            tool_transcript: Vec::new(),
        };
        let id = memory.remember(&ctx.user_id, episode).await?;
        exchange.id.clone_from(&id);
        extractor.spawn(claim, Arc::clone(memory), ctx.user_id.clone(), exchange);
        Ok(id)
    })
    .await?;
    Ok(())
}
