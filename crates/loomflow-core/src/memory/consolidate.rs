//! Fact extraction: one model call turns an episode into
//! (subject, predicate, object, confidence) facts.

use std::sync::Arc;

use serde_json::Value;

use super::{Episode, Fact};
use crate::error::ModelError;
use crate::message::Message;
use crate::model::{Completion, Model, ModelRequest};

/// The instructions the extraction call runs under unless
/// [`Consolidator::system_prompt`] replaces them.
pub const DEFAULT_EXTRACTION_PROMPT: &str = "\
You extract semantic facts from conversation episodes.

A fact is a stable claim about an entity, expressed as a triple of
(subject, predicate, object). Only extract claims that are likely to
remain true beyond this episode. Skip greetings, transient state,
small talk, and acknowledgements.

You will be shown a single episode. Return a JSON array of facts.
Each fact must have exactly these fields:

* \"subject\": the entity (e.g. \"user\", \"Alice\", \"Project Atlas\")
* \"predicate\": the relation (e.g. \"name_is\", \"lives_in\", \"prefers\")
* \"object\": the value (e.g. \"Alice\", \"Tokyo\", \"dark mode\")
* \"confidence\": a float between 0.0 and 1.0

Example output:
[{\"subject\": \"user\", \"predicate\": \"name_is\", \"object\": \"Alice\", \"confidence\": 0.95}]

Return ONLY the JSON array. No prose, no markdown, no code fences.
If there's nothing worth extracting, return an empty array: [].
";

/// Extracts facts from an episode with one model call.
///
/// The model sees the episode as `USER: …` / `ASSISTANT: …` and answers
/// with a JSON array of `{subject, predicate, object, confidence}`. Each
/// fact is valid from the episode's time and sourced from its id. A reply
/// that is not such an array yields no facts (extraction is best-effort);
/// items missing a field, or with a blank subject, object or predicate,
/// are skipped.
///
/// ```
/// use std::sync::Arc;
/// use loomflow_core::memory::{Consolidator, Episode};
/// use loomflow_core::{ScriptedModel, ScriptedTurn};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let reply = r#"[{"subject":"user","predicate":"Lives In","object":"Lyon","confidence":0.9}]"#;
/// let model = ScriptedModel::new([ScriptedTurn::text(reply)]);
/// let episode = Episode::new("I moved to Lyon last month", "Lyon is lovely.");
/// let facts = Consolidator::new(Arc::new(model)).extract(&episode).await.unwrap();
/// assert_eq!(facts[0].predicate, "lives_in");
/// assert_eq!(facts[0].sources, [episode.id.clone()]);
/// assert_eq!(facts[0].valid_from, episode.occurred_at);
/// # });
/// ```
#[derive(Clone)]
pub struct Consolidator {
    model: Arc<dyn Model>,
    system_prompt: Arc<str>,
    max_facts_per_episode: usize,
}

impl std::fmt::Debug for Consolidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consolidator")
            .field("model", &self.model.name())
            .field("max_facts_per_episode", &self.max_facts_per_episode)
            .finish_non_exhaustive()
    }
}

impl Consolidator {
    /// Extraction with `model`, the default prompt and at most 20 facts per
    /// episode.
    pub fn new(model: Arc<dyn Model>) -> Self {
        Self {
            model,
            system_prompt: Arc::from(DEFAULT_EXTRACTION_PROMPT),
            max_facts_per_episode: 20,
        }
    }

    /// Replaces the extraction instructions (your own ontology, language,
    /// predicates). The reply format stays a JSON array of facts.
    pub fn system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.system_prompt = Arc::from(prompt.into());
        self
    }

    /// Keeps at most `n` facts of each reply.
    pub fn max_facts_per_episode(mut self, n: usize) -> Self {
        self.max_facts_per_episode = n;
        self
    }

    /// The model that extracts.
    pub fn model(&self) -> &Arc<dyn Model> {
        &self.model
    }

    /// The facts in `episode`, by one call to the model. Only a failing
    /// model call is an error; a reply that cannot be read gives no facts.
    pub async fn extract(&self, episode: &Episode) -> Result<Vec<Fact>, ModelError> {
        let body = format!(
            "Episode (occurred at {}):\n\nUSER: {}\nASSISTANT: {}\n",
            episode.occurred_at.to_rfc3339(),
            episode.input,
            episode.output
        );
        let messages = [
            Message::system(self.system_prompt.to_string()),
            Message::user(body),
        ];
        let Completion { text, .. } = self.model.complete(ModelRequest::new(&messages)).await?;
        Ok(parse_facts(&text, episode, self.max_facts_per_episode))
    }
}

/// The facts in an extraction reply: a JSON array (code fences tolerated)
/// of objects with `subject`, `predicate` and `object` (strings, or numbers
/// and booleans written out) and an optional `confidence` (a number or a
/// numeric string; 1.0 when absent or unreadable; clamped to 0..=1).
pub fn parse_facts(reply: &str, episode: &Episode, max: usize) -> Vec<Fact> {
    let mut text = reply.trim();
    if let Some(fenced) = text.strip_prefix("```") {
        text = fenced.trim_end_matches('`');
        text = text.strip_prefix("json").unwrap_or(text).trim();
    }
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    let field = |item: &Value, key: &str| match item.get(key)? {
        Value::String(s) => Some(s.clone()),
        v @ (Value::Number(_) | Value::Bool(_)) => Some(v.to_string()),
        _ => None,
    };
    items
        .iter()
        .take(max)
        .filter_map(|item| {
            let subject = field(item, "subject")?;
            let predicate = field(item, "predicate")?;
            let object = field(item, "object")?;
            let confidence = match item.get("confidence") {
                Some(Value::Number(n)) => n.as_f64(),
                Some(Value::String(s)) => s.trim().parse().ok(),
                _ => None,
            }
            .unwrap_or(1.0);
            let fact = Fact::new(subject, &predicate, object).ok()?;
            Some(
                fact.confidence(confidence as f32)
                    .valid_from(episode.occurred_at)
                    .source(episode.id.clone()),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_leniently_and_never_fail() {
        let ep = Episode::new("hi", "hello");
        let facts = parse_facts(
            "```json\n[{\"subject\":\"user\",\"predicate\":\"NameIs\",\"object\":\"Ada\",\"confidence\":\"0.8\"},\
             {\"subject\":\"user\",\"predicate\":\"age\",\"object\":36,\"confidence\":7},\
             {\"subject\":\"user\",\"object\":\"no predicate\"},\
             {\"subject\":\" \",\"predicate\":\"x\",\"object\":\"blank subject\"},\
             \"not an object\"]\n```",
            &ep,
            20,
        );
        let got: Vec<(&str, &str, &str, f32)> = facts
            .iter()
            .map(|f| {
                (
                    f.subject.as_str(),
                    f.predicate.as_str(),
                    f.object.as_str(),
                    f.confidence,
                )
            })
            .collect();
        assert_eq!(
            got,
            [("user", "name_is", "Ada", 0.8), ("user", "age", "36", 1.0)]
        );
        assert!(facts.iter().all(|f| f.sources == [ep.id.clone()]));
        for junk in ["", "no facts here", "{\"subject\":\"a\"}", "[1, 2"] {
            assert!(parse_facts(junk, &ep, 20).is_empty(), "{junk}");
        }
        let many = format!(
            "[{}]",
            vec!["{\"subject\":\"s\",\"predicate\":\"p\",\"object\":\"o\"}"; 30].join(",")
        );
        assert_eq!(parse_facts(&many, &ep, 20).len(), 20);
    }
}
