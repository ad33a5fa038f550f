//! The errors the model port speaks: configuration mistakes, malformed ids
//! and classified model failures. Every error says what was wrong and how to
//! fix it.

use std::time::Duration;

/// A malformed user, session or run id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The id was the empty string.
    #[error(
        "{kind} is empty: pass a non-empty id, or use UserId::anonymous() for the anonymous bucket"
    )]
    Empty {
        /// Which id (`"user id"`, `"session id"`, …).
        kind: &'static str,
    },
    /// The id exceeded the 256-byte limit.
    #[error("{kind} is {len} bytes long; the limit is 256 bytes")]
    TooLong {
        /// Which id.
        kind: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The id held whitespace or a control character.
    #[error(
        "{kind} {value:?} contains {ch:?}; ids may not contain whitespace or control characters"
    )]
    InvalidChar {
        /// Which id.
        kind: &'static str,
        /// The offending id, escaped.
        value: String,
        /// The first offending character.
        ch: char,
    },
    /// The id started with the reserved `~`.
    #[error(
        "{kind} {value:?} starts with '~', which is reserved for built-in buckets such as the anonymous user"
    )]
    Reserved {
        /// Which id.
        kind: &'static str,
        /// The offending id.
        value: String,
    },
}

impl From<std::convert::Infallible> for IdError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// A configuration mistake, caught before anything runs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No model was configured.
    #[error("no model configured: set one with `.model(...)`, `model = ...` in the config file or `--model` on the CLI; valid choices are {}", .valid.join(", "))]
    MissingModel {
        /// Model strings and prefixes that resolve.
        valid: Vec<String>,
    },
    /// A model string matched no registered model or prefix.
    #[error("unknown model {name:?}: valid choices are {}{}", .valid.join(", "), did_you_mean(.suggestion))]
    UnknownModel {
        /// What was asked for.
        name: String,
        /// Model strings and prefixes that resolve.
        valid: Vec<String>,
        /// The closest valid choice, if any is close.
        suggestion: Option<String>,
    },
    /// A config file held a key that does not exist.
    #[error("{file}: unknown key `{key}`{}", did_you_mean(.suggestion))]
    UnknownKey {
        /// The file (or `<dict>` for in-memory config).
        file: String,
        /// The dotted key path.
        key: String,
        /// The closest valid key, if any is close.
        suggestion: Option<String>,
    },
    /// A config file could not be read or parsed.
    #[error("{file}: {message}")]
    File {
        /// The file.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// A value was out of range or inconsistent.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The setting.
        field: String,
        /// What was wrong and how to fix it.
        message: String,
    },
    /// An id was malformed.
    #[error(transparent)]
    Id(#[from] IdError),
}

fn did_you_mean(s: &Option<String>) -> String {
    match s {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}

impl ConfigError {
    /// Shorthand for [`ConfigError::Invalid`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The closest of `candidates` to `input`, if it is close enough to suggest.
pub fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(input, c), c))
        .filter(|(score, _)| *score >= 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_owned())
}

/// A failed model call, classified so callers can decide whether to retry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A transient failure (timeouts, 5xx, overload): retrying may succeed.
    #[error("transient model error: {message}")]
    Transient {
        /// The provider's message.
        message: String,
        /// A server hint for when to retry.
        retry_after: Option<Duration>,
    },
    /// The provider rate-limited the request (HTTP 429).
    #[error("rate limited by the model provider: {message}")]
    RateLimited {
        /// The provider's message.
        message: String,
        /// A server hint for when to retry.
        retry_after: Option<Duration>,
    },
    /// A permanent failure (quota exhausted, model gone): do not retry.
    #[error("permanent model error: {message}")]
    Permanent {
        /// The provider's message.
        message: String,
    },
    /// The credentials were missing or rejected.
    #[error("model authentication failed: {message}")]
    Authentication {
        /// The provider's message.
        message: String,
    },
    /// The provider rejected the request as malformed.
    #[error("invalid model request: {message}")]
    InvalidRequest {
        /// The provider's message.
        message: String,
    },
    /// The provider's content filter blocked the request or the response.
    #[error("blocked by the provider's content filter: {message}")]
    ContentFilter {
        /// The provider's message.
        message: String,
    },
    /// Anything that fits no other class.
    #[error("model error: {message}")]
    Other {
        /// What happened.
        message: String,
    },
}

impl ModelError {
    /// True for errors a retry may cure (transient and rate-limited).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient { .. } | Self::RateLimited { .. })
    }

    /// The server's retry hint, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Transient { retry_after, .. } | Self::RateLimited { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// Shorthand for [`ModelError::Other`].
    pub fn other(message: impl Into<String>) -> Self {
        Self::Other {
            message: message.into(),
        }
    }
}
