//! The effort dial: how hard a reasoning model thinks before it answers.
//!
//! One scale for every provider. Adapters translate it: OpenAI's
//! `reasoning_effort` (clamped to what each family accepts), Anthropic's
//! adaptive thinking with `output_config.effort` or a thinking budget. A
//! level a model does not accept is clamped to the nearest one it does; a
//! model with no effort at all drops it with one warning per (model, level),
//! or fails the call when the request says
//! [`strict_effort`](crate::ModelRequest::strict_effort).

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, ModelError, closest};

/// How much a model reasons, lowest first.
///
/// ```
/// use loomflow_model::Effort;
///
/// let e: Effort = "high".parse().unwrap();
/// assert_eq!(e, Effort::High);
/// assert_eq!(e.clamp_to(&[Effort::Low, Effort::Medium]), Effort::Medium);
/// assert_eq!(Effort::Minimal.clamp_to(&[Effort::Low, Effort::High]), Effort::Low);
/// let err = "hgih".parse::<Effort>().unwrap_err().to_string();
/// assert!(err.contains("did you mean \"high\""), "{err}");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effort {
    /// As little reasoning as the model allows.
    Minimal,
    /// Light reasoning.
    Low,
    /// The usual default.
    Medium,
    /// Careful reasoning.
    High,
    /// More than high, where offered.
    Xhigh,
    /// The most the model offers.
    Max,
}

impl Effort {
    /// Every level, lowest first.
    pub const ALL: [Effort; 6] = [
        Effort::Minimal,
        Effort::Low,
        Effort::Medium,
        Effort::High,
        Effort::Xhigh,
        Effort::Max,
    ];

    /// The level's wire name (`"xhigh"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Effort::Minimal => "minimal",
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
            Effort::Xhigh => "xhigh",
            Effort::Max => "max",
        }
    }

    /// The highest of `allowed` not above `self`, or the lowest of
    /// `allowed` when all are above it. `allowed` must not be empty (an
    /// empty list returns `self`).
    pub fn clamp_to(self, allowed: &[Effort]) -> Effort {
        allowed
            .iter()
            .copied()
            .filter(|l| *l <= self)
            .max()
            .or_else(|| allowed.iter().copied().min())
            .unwrap_or(self)
    }
}

impl fmt::Display for Effort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Effort {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Effort::ALL
            .into_iter()
            .find(|e| e.as_str() == wanted)
            .ok_or_else(|| {
                let names = Effort::ALL.map(Effort::as_str);
                let hint = closest(&wanted, names)
                    .map(|c| format!(" (did you mean {c:?}?)"))
                    .unwrap_or_default();
                ConfigError::invalid(
                    "effort",
                    format!(
                        "unknown effort {s:?}; expected one of {}{hint}",
                        names.join(", ")
                    ),
                )
            })
    }
}

/// What an adapter does when a model has no effort setting: with `strict`,
/// an [`InvalidRequest`](ModelError::InvalidRequest) naming the model; else
/// one `tracing` warning per (model, level) and the level is dropped.
pub fn effort_unsupported(
    model: &str,
    effort: Effort,
    strict: bool,
    reason: &str,
) -> Result<(), ModelError> {
    if strict {
        return Err(ModelError::InvalidRequest {
            message: format!(
                "model {model:?} does not support effort {effort}: {reason}; drop the effort setting or turn strict_effort off to ignore it with a warning"
            ),
        });
    }
    // A handful of (model, level) pairs per process: a linear scan, and no
    // allocation on the calls after the first.
    static WARNED: Mutex<Vec<(String, Effort)>> = Mutex::new(Vec::new());
    let first = WARNED
        .lock()
        .map(|mut warned| {
            let seen = warned.iter().any(|(m, e)| m == model && *e == effort);
            if !seen {
                warned.push((model.to_owned(), effort));
            }
            !seen
        })
        .unwrap_or(false);
    if first {
        tracing::warn!(
            model,
            effort = effort.as_str(),
            "model does not support effort ({reason}); the setting is dropped for this model"
        );
    }
    Ok(())
}

/// Prompt caching for a request: which cache lifetime to write and, for
/// providers that route by it, a cache key.
///
/// Anthropic gets up to four `cache_control` breakpoints (the message tail,
/// the last tool, the last system blocks); OpenAI caches automatically and
/// routes by [`key`](Self::key) (`prompt_cache_key`).
///
/// ```
/// use loomflow_model::{PromptCache, pricing::CacheTtl};
/// let cache = PromptCache::new().ttl(CacheTtl::OneHour).key("tenant-42");
/// assert_eq!(cache.key.as_deref(), Some("tenant-42"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PromptCache {
    /// How long a written cache entry lives (Anthropic bills 1.25× input for
    /// five minutes, 2× for an hour).
    pub ttl: crate::pricing::CacheTtl,
    /// A routing key for providers that take one.
    pub key: Option<String>,
}

impl PromptCache {
    /// Caching on, five-minute entries, no key.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the cache lifetime.
    pub fn ttl(mut self, ttl: crate::pricing::CacheTtl) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the routing key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_effort_names_the_model_and_the_fix() {
        let err = effort_unsupported("claude-3-haiku", Effort::High, true, "no thinking")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"claude-3-haiku\" does not support effort high"),
            "{err}"
        );
        assert!(err.contains("strict_effort"), "{err}");
        assert!(effort_unsupported("claude-3-haiku", Effort::High, false, "x").is_ok());
    }

    #[test]
    fn levels_order_and_parse_case_insensitively() {
        assert!(Effort::Minimal < Effort::Max);
        assert_eq!(" XHigh ".parse::<Effort>().unwrap(), Effort::Xhigh);
        assert_eq!(serde_json::to_string(&Effort::Xhigh).unwrap(), "\"xhigh\"");
    }
}
