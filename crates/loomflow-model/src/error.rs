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

/// Provider error codes that mean "do not retry" even when the status says
/// otherwise (OpenAI answers an exhausted quota with 429).
const PERMANENT_CODES: &[&str] = &[
    "insufficient_quota",
    "billing_hard_limit_reached",
    "account_deactivated",
];

/// Provider error codes for a content-filter refusal.
const FILTER_CODES: &[&str] = &["content_filter", "content_policy_violation"];

/// Provider error types that mean an overloaded or failing server.
const TRANSIENT_TYPES: &[&str] = &[
    "overloaded_error",
    "api_error",
    "server_error",
    "timeout_error",
    "service_unavailable",
    // Google's status names (Gemini, Vertex).
    "UNAVAILABLE",
    "INTERNAL",
    "DEADLINE_EXCEEDED",
];

/// The `type`, `code` and `message` of a provider error body, in the OpenAI
/// shape (`{"error": {"message", "type", "code"}}`), the Anthropic one
/// (`{"type": "error", "error": {"type", "message"}}`) or Google's
/// (`{"error": {"code": 503, "message", "status": "UNAVAILABLE"}}`, whose
/// `status` stands in for the type).
fn error_fields(body: &str) -> (String, String, String) {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let err = value.get("error").unwrap_or(&value);
    let field = |k: &str| {
        err.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let message = match field("message") {
        m if m.is_empty() => {
            let trimmed = body.trim();
            let cut = trimmed
                .char_indices()
                .nth(300)
                .map_or(trimmed.len(), |(i, _)| i);
            trimmed[..cut].to_owned()
        }
        m => m,
    };
    let kind = match field("type") {
        t if t.is_empty() => field("status"),
        t => t,
    };
    (kind, field("code"), message)
}

impl ModelError {
    /// Classifies an HTTP error response from a provider: 401/403 →
    /// [`Authentication`](Self::Authentication); 429 →
    /// [`RateLimited`](Self::RateLimited) unless the body says the quota is
    /// exhausted (`insufficient_quota` → [`Permanent`](Self::Permanent));
    /// 408, 409, 5xx and 529 → [`Transient`](Self::Transient); a content-filter
    /// code → [`ContentFilter`](Self::ContentFilter); 400, 404, 413 and 422 →
    /// [`InvalidRequest`](Self::InvalidRequest); anything else permanent. The
    /// message names the status and carries the provider's own message.
    ///
    /// ```
    /// use loomflow_model::ModelError;
    /// let quota = r#"{"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}}"#;
    /// assert!(matches!(ModelError::from_http(429, None, quota), ModelError::Permanent { .. }));
    /// assert!(ModelError::from_http(503, None, "upstream down").is_retryable());
    /// ```
    pub fn from_http(status: u16, retry_after: Option<Duration>, body: &str) -> Self {
        let (kind, code, detail) = error_fields(body);
        let message = format!("HTTP {status}: {detail}");
        let has = |list: &[&str]| list.contains(&kind.as_str()) || list.contains(&code.as_str());
        if has(PERMANENT_CODES) {
            return Self::Permanent { message };
        }
        if has(FILTER_CODES) {
            return Self::ContentFilter { message };
        }
        match status {
            401 | 403 => Self::Authentication { message },
            429 => Self::RateLimited {
                message,
                retry_after,
            },
            408 | 409 | 500..=599 => Self::Transient {
                message,
                retry_after,
            },
            400 | 404 | 413 | 422 => Self::InvalidRequest { message },
            _ => Self::Permanent { message },
        }
    }

    /// Classifies an error the provider sent inside an open stream (an SSE
    /// `error` event): overload, rate-limit and server errors are transient,
    /// the rest follow the same codes as [`ModelError::from_http`].
    ///
    /// ```
    /// use loomflow_model::ModelError;
    /// let e = ModelError::from_stream_error(r#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#);
    /// assert!(e.is_retryable());
    /// assert_eq!(e.to_string(), "transient model error: in-stream overloaded_error: Overloaded");
    /// ```
    pub fn from_stream_error(body: &str) -> Self {
        let (kind, code, detail) = error_fields(body);
        let label = if kind.is_empty() { &code } else { &kind };
        let message = format!("in-stream {label}: {detail}");
        let has = |list: &[&str]| list.contains(&kind.as_str()) || list.contains(&code.as_str());
        if has(PERMANENT_CODES) {
            Self::Permanent { message }
        } else if has(FILTER_CODES) {
            Self::ContentFilter { message }
        } else if kind == "rate_limit_error"
            || kind == "RESOURCE_EXHAUSTED"
            || code == "rate_limit_exceeded"
        {
            Self::RateLimited {
                message,
                retry_after: None,
            }
        } else if has(TRANSIENT_TYPES) {
            Self::Transient {
                message,
                retry_after: None,
            }
        } else if matches!(
            kind.as_str(),
            "authentication_error" | "permission_error" | "UNAUTHENTICATED" | "PERMISSION_DENIED"
        ) {
            Self::Authentication { message }
        } else if kind == "invalid_request_error" || kind == "INVALID_ARGUMENT" {
            Self::InvalidRequest { message }
        } else {
            Self::Other { message }
        }
    }
}

/// The server's retry hint from the `retry-after-ms` header (milliseconds,
/// preferred) or `Retry-After` (seconds, or an HTTP date).
///
/// ```
/// use std::time::Duration;
/// use loomflow_model::error::parse_retry_after;
/// assert_eq!(parse_retry_after(Some("1500"), Some("9")), Some(Duration::from_millis(1500)));
/// assert_eq!(parse_retry_after(None, Some("2")), Some(Duration::from_secs(2)));
/// assert_eq!(parse_retry_after(None, Some("soon")), None);
/// ```
pub fn parse_retry_after(ms: Option<&str>, seconds: Option<&str>) -> Option<Duration> {
    let finite = |v: f64| (v.is_finite() && v >= 0.0).then_some(v);
    if let Some(ms) = ms
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(finite)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let raw = seconds?.trim();
    if let Some(s) = raw.parse::<f64>().ok().and_then(finite) {
        return Some(Duration::from_secs_f64(s));
    }
    let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or_default())
}
