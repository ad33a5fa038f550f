//! Redaction of keys and tokens: what the agent applies to audit payloads,
//! error messages and events, and tool errors before the model sees them.
//!
//! The patterns are anchored on well-known key shapes (the reference's, and
//! more), so ordinary prose is left alone; a false positive is preferred to
//! a leaked key. Variable names and schemes are kept (`OPENAI_API_KEY=
//! [REDACTED]`, `Bearer [REDACTED]`), so a redacted log still says what was
//! sent.
//!
//! Secrets with no recognisable shape (an internal token, a database
//! password) are masked by value once [`register_secret`] has been told
//! them; provider adapters register the keys they resolve. [`Redacted`]
//! wraps any `Display` for a log field: `error = %Redacted(&e)`.
//!
//! ```
//! use loomflow_model::redact::redact;
//!
//! let line = "calling with Authorization: Bearer abcdefghijklmnop0123 and sk-proj-0123456789abcdefXYZ";
//! assert_eq!(
//!     redact(line),
//!     "calling with Authorization: Bearer [REDACTED] and [REDACTED]"
//! );
//! assert_eq!(redact("nothing secret here"), "nothing secret here");
//! ```

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, RwLock};

use regex::{Regex, RegexSet};

/// `(pattern, replacement)`, applied in order.
const PATTERNS: &[(&str, &str)] = &[
    // PEM private keys, whole blocks.
    (
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
        "[REDACTED PRIVATE KEY]",
    ),
    // Anthropic, OpenAI (sk-, sk-proj-, …).
    (r"sk-ant-[A-Za-z0-9_-]{16,}", "[REDACTED]"),
    (r"sk-[A-Za-z0-9_-]{16,}", "[REDACTED]"),
    // Stripe secret and restricted keys.
    (r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}", "[REDACTED]"),
    // AWS access key ids (long-lived and session).
    (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", "[REDACTED]"),
    // GitHub tokens: classic PATs, OAuth, user-to-server, server-to-server,
    // refresh, fine-grained PATs.
    (r"\bgh[pousr]_[A-Za-z0-9]{36,}\b", "[REDACTED]"),
    (r"\bgithub_pat_[A-Za-z0-9_]{22,}", "[REDACTED]"),
    // GitLab, Hugging Face, npm.
    (r"\bglpat-[A-Za-z0-9_-]{20,}", "[REDACTED]"),
    (r"\bhf_[A-Za-z0-9]{30,}\b", "[REDACTED]"),
    (r"\bnpm_[A-Za-z0-9]{36,}\b", "[REDACTED]"),
    // Slack.
    (r"\bxox[abeprs]-[A-Za-z0-9-]{10,}", "[REDACTED]"),
    // Google API keys.
    (r"\bAIza[0-9A-Za-z_-]{35}\b", "[REDACTED]"),
    // JSON Web Tokens.
    (
        r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        "[REDACTED]",
    ),
    // Authorization headers (the scheme is kept).
    (
        r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{16,}",
        "$1 [REDACTED]",
    ),
    // Passwords in URLs: scheme://user:password@host.
    (
        r"\b([a-z][a-z0-9+.-]*://[^\s:/@]+:)[^\s@/]{3,}@",
        "${1}[REDACTED]@",
    ),
    // Env-style assignments: FOO_API_KEY=…, BAR_TOKEN=…, BAZ_SECRET=….
    (
        r#"\b([A-Za-z][A-Za-z0-9_]*(?:_API_KEY|_TOKEN|_SECRET|_PASSWORD))(\s*=\s*)['"]?[^\s'"]{8,}['"]?"#,
        "${1}${2}[REDACTED]",
    ),
    // JSON, YAML or query fields named like secrets: "password": "…",
    // api_key: …, client_secret=….
    (
        r#"(?i)(["']?\b(?:api[_-]?key|secret|password|passwd|access[_-]?token|refresh[_-]?token|client[_-]?secret|private[_-]?key)["']?\s*[:=]\s*)"[^"]+""#,
        r#"${1}"[REDACTED]""#,
    ),
    (
        r#"(?i)(["']?\b(?:api[_-]?key|secret|password|passwd|access[_-]?token|refresh[_-]?token|client[_-]?secret|private[_-]?key)["']?\s*[:=]\s*)'[^']+'"#,
        "${1}'[REDACTED]'",
    ),
    (
        r#"(?i)(\b(?:api[_-]?key|secret|password|passwd|access[_-]?token|refresh[_-]?token|client[_-]?secret|private[_-]?key)\s*[:=]\s*)[^\s"',}&]{6,}"#,
        "${1}[REDACTED]",
    ),
];

struct Redactor {
    any: RegexSet,
    each: Vec<(Regex, &'static str)>,
}

static REDACTOR: LazyLock<Option<Redactor>> = LazyLock::new(|| {
    let any = RegexSet::new(PATTERNS.iter().map(|(p, _)| *p)).ok()?;
    let each = PATTERNS
        .iter()
        .map(|(p, r)| Regex::new(p).ok().map(|re| (re, *r)))
        .collect::<Option<Vec<_>>>()?;
    Some(Redactor { any, each })
});

/// Values shorter than this are not registered: they would mask ordinary
/// words.
pub const MIN_SECRET_LEN: usize = 8;

/// How many registered values are kept; the oldest go first.
const MAX_KNOWN: usize = 256;

/// Registered secret values and one matcher for all of them.
#[derive(Default)]
struct Known {
    values: VecDeque<String>,
    matcher: Option<Regex>,
}

static ANY_KNOWN: AtomicBool = AtomicBool::new(false);
static KNOWN: LazyLock<RwLock<Known>> = LazyLock::new(Default::default);

/// Masks `value` wherever this process redacts from now on (logs, audit
/// payloads, error messages, events), whatever its shape. Returns false
/// when the value is shorter than [`MIN_SECRET_LEN`] characters and so not
/// registered. The most recent 256 values are kept.
///
/// ```
/// use loomflow_model::redact::{redact, register_secret};
///
/// assert_eq!(redact("db password is Tr0ub4dor&3x"), "db password is Tr0ub4dor&3x");
/// assert!(register_secret("Tr0ub4dor&3x"));
/// assert_eq!(redact("db password is Tr0ub4dor&3x"), "db password is [REDACTED]");
/// assert!(!register_secret("short"));
/// ```
pub fn register_secret(value: &str) -> bool {
    let value = value.trim();
    if value.chars().count() < MIN_SECRET_LEN {
        return false;
    }
    let Ok(mut known) = KNOWN.write() else {
        return false;
    };
    if known.values.iter().any(|v| v == value) {
        return true;
    }
    if known.values.len() == MAX_KNOWN {
        known.values.pop_front();
    }
    known.values.push_back(value.to_owned());
    // Longest first, so a value containing another is masked whole.
    let mut sorted: Vec<&String> = known.values.iter().collect();
    sorted.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let alternation = sorted
        .iter()
        .map(|v| regex::escape(v))
        .collect::<Vec<_>>()
        .join("|");
    known.matcher = Regex::new(&alternation).ok();
    ANY_KNOWN.store(true, Ordering::Release);
    true
}

/// `text` with registered values masked; borrowed when there are none in it.
fn redact_known(text: &str) -> Cow<'_, str> {
    if !ANY_KNOWN.load(Ordering::Acquire) {
        return Cow::Borrowed(text);
    }
    let Ok(known) = KNOWN.read() else {
        return Cow::Borrowed(text);
    };
    match &known.matcher {
        Some(re) => match re.replace_all(text, "[REDACTED]") {
            Cow::Owned(s) => Cow::Owned(s),
            Cow::Borrowed(_) => Cow::Borrowed(text),
        },
        None => Cow::Borrowed(text),
    }
}

/// `text` with keys and tokens replaced by `[REDACTED]`: the registered
/// values, then the known key shapes. Borrowed when there is nothing to
/// redact.
pub fn redact(text: &str) -> Cow<'_, str> {
    match redact_known(text) {
        Cow::Borrowed(text) => redact_shapes(text),
        Cow::Owned(masked) => Cow::Owned(redact_shapes(&masked).into_owned()),
    }
}

/// Displays the wrapped value with keys and tokens redacted, for log and
/// span fields: `tracing::warn!(error = %Redacted(&e), "…")`. The value is
/// only formatted when the field is recorded.
///
/// ```
/// use loomflow_model::redact::Redacted;
///
/// let e = "connect to postgres://app:hunter22@db/x failed";
/// assert_eq!(Redacted(e).to_string(), "connect to postgres://app:[REDACTED]@db/x failed");
/// ```
#[derive(Clone, Copy)]
pub struct Redacted<T>(pub T);

impl<T: fmt::Display> fmt::Display for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0.to_string()))
    }
}

impl<T: fmt::Debug> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&format!("{:?}", self.0)))
    }
}

fn redact_shapes(text: &str) -> Cow<'_, str> {
    let Some(r) = REDACTOR.as_ref() else {
        // The patterns are constants compiled in tests; were one ever
        // rejected, hide the text rather than risk a key.
        return Cow::Borrowed("[REDACTED: redaction unavailable]");
    };
    let hits = r.any.matches(text);
    if !hits.matched_any() {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_owned();
    for (i, (re, with)) in r.each.iter().enumerate() {
        if hits.matched(i)
            && let Cow::Owned(replaced) = re.replace_all(&out, *with)
        {
            out = replaced;
        }
    }
    Cow::Owned(out)
}

/// Redacts every string inside `value`, in place (object keys included).
pub fn redact_value(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            if let Cow::Owned(r) = redact(s) {
                *s = r;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_value),
        serde_json::Value::Object(map) => {
            let secret_key = map.keys().any(|k| matches!(redact(k), Cow::Owned(_)));
            if secret_key {
                let old = std::mem::take(map);
                for (k, v) in old {
                    map.insert(redact(&k).into_owned(), v);
                }
            }
            for (key, v) in map.iter_mut() {
                if is_secret_name(key)
                    && let serde_json::Value::String(s) = v
                    && !s.is_empty()
                {
                    *s = "[REDACTED]".to_owned();
                } else {
                    redact_value(v);
                }
            }
        }
        _ => {}
    }
}

/// Field names whose string values are secrets whatever they look like.
fn is_secret_name(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace('-', "_");
    matches!(
        k.as_str(),
        "api_key"
            | "apikey"
            | "password"
            | "passwd"
            | "secret"
            | "client_secret"
            | "access_token"
            | "refresh_token"
            | "private_key"
            | "authorization"
    ) || k.ends_with("_api_key")
        || k.ends_with("_secret")
        || k.ends_with("_password")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles_and_bites() {
        assert!(REDACTOR.is_some());
        let cases = [
            ("key sk-ant-api03-abcdefghijklmnop_x", "key [REDACTED]"),
            ("AKIAIOSFODNN7EXAMPLE!", "[REDACTED]!"),
            ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "[REDACTED]"),
            ("github_pat_11ABCDEFG0123456789_abcdefXYZ", "[REDACTED]"),
            ("xoxb-1234567890-abcdef", "[REDACTED]"),
            ("AIzaSyA-abcdefghijklmnopqrstuvwxyz01234", "[REDACTED]"),
            ("sk_live_abcdefghijklmnop1234", "[REDACTED]"),
            (
                "tok eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                "tok [REDACTED]",
            ),
            ("OPENAI_API_KEY=abc123def456", "OPENAI_API_KEY=[REDACTED]"),
            (
                "postgres://app:hunter22@db:5432/x",
                "postgres://app:[REDACTED]@db:5432/x",
            ),
            (
                r#"{"password": "correct horse"}"#,
                r#"{"password": "[REDACTED]"}"#,
            ),
            (
                "db?user=a&password=hunter22&x=1",
                "db?user=a&password=[REDACTED]&x=1",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
                "[REDACTED PRIVATE KEY]",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
        // Prose is left alone.
        for prose in [
            "the token is short-lived",
            "ask the sk team",
            "Bearer of bad news",
        ] {
            assert!(matches!(redact(prose), Cow::Borrowed(_)), "{prose}");
        }
    }

    #[test]
    fn values_are_redacted_by_shape_and_by_field_name() {
        let mut v = serde_json::json!({
            "query": "use sk-abcdefghijklmnopqrstu",
            "db_password": "x1",
            "nested": [{"api_key": "short"}],
            "n": 3,
        });
        redact_value(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "query": "use [REDACTED]",
                "db_password": "[REDACTED]",
                "nested": [{"api_key": "[REDACTED]"}],
                "n": 3,
            })
        );
    }
}
