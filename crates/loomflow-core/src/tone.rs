//! Response tone: a preset or free text appended to the system prompt.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// The seven tone presets and their directives.
pub const PRESETS: [(&str, &str); 7] = [
    (
        "casual",
        "Respond in a warm, conversational tone. Use plain language and contractions; avoid jargon and stiff phrasing.",
    ),
    (
        "professional",
        "Respond in a neutral, polished, professional tone. Be clear and structured; avoid slang and overly casual phrasing.",
    ),
    (
        "technical",
        "Respond in a precise technical tone. Use exact terminology; show reasoning step by step; favor specificity over generality.",
    ),
    (
        "legal",
        "Respond in a formal legal tone. Use precise legal terminology; qualify claims explicitly; avoid casual or persuasive language.",
    ),
    (
        "finance",
        "Respond in an analytical financial tone. Use numbers, percentages, and timeframes; distinguish known data from estimates; cite figures when possible.",
    ),
    (
        "executive",
        "Respond as an executive briefing: lead with the headline / decision, then 3-5 bullets of supporting detail. Concise; action-oriented.",
    ),
    (
        "academic",
        "Respond in a formal academic tone. Use measured, hedged language where uncertainty exists; structure claims with supporting evidence; avoid colloquialisms.",
    ),
];

/// How the agent should phrase its answer: a preset name (case-insensitive)
/// or any free text, which passes through verbatim.
///
/// ```
/// use loomflow_core::Tone;
/// assert!(Tone::new("Legal").directive().starts_with("Respond in a formal legal tone."));
/// assert_eq!(Tone::new("warm but precise").directive(), "warm but precise");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tone(String);

impl Tone {
    /// A tone from a preset name or free text.
    pub fn new(spec: impl Into<String>) -> Self {
        Self(spec.into())
    }

    /// The directive sent to the model.
    pub fn directive(&self) -> Cow<'_, str> {
        let spec = self.0.trim();
        PRESETS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(spec))
            .map_or(Cow::Borrowed(spec), |(_, d)| Cow::Borrowed(*d))
    }

    /// The tone as given (preset name or free text).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for a blank tone, which adds nothing.
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }

    /// The suffix appended to the system prompt, or nothing for a blank tone.
    pub fn prompt_suffix(&self) -> Option<String> {
        (!self.is_empty()).then(|| format!("\n\n---\nResponse style: {}", self.directive()))
    }
}

impl From<&str> for Tone {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for Tone {
    fn from(s: String) -> Self {
        Self(s)
    }
}
