//! Secrets never reach the logs: a retried model error carrying a key and a
//! registered secret is logged redacted, and a provider's resolved key is
//! masked by value whatever its shape.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use loomflow_model::model::retry::{Jitter, RetryPolicy, Retrying};
use loomflow_model::model::{ChunkStream, Model, ModelRequest};
use loomflow_model::redact::{redact, register_secret};
use loomflow_model::secrets::{Endpoint, StaticSecrets};
use loomflow_model::{Message, ModelError};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records every event's fields as `name=value` lines.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = String::new();
        event.record(&mut Fields(&mut line));
        self.0.lock().unwrap().push(line);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Fails with a provider error whose body echoes secrets.
struct Leaky;

#[async_trait]
impl Model for Leaky {
    fn name(&self) -> &str {
        "leaky"
    }
    async fn stream(&self, _: ModelRequest<'_>) -> Result<ChunkStream, ModelError> {
        Err(ModelError::from_http(
            503,
            None,
            r#"{"error": {"message": "upstream rejected sk-proj-abcdefghijklmnop0123 and opaque-internal-7f3e9a", "type": "server_error"}}"#,
        ))
    }
}

#[tokio::test(start_paused = true)]
async fn retried_errors_are_logged_without_their_secrets() {
    assert!(register_secret("opaque-internal-7f3e9a"));
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let model = Retrying::new(
        Leaky,
        RetryPolicy {
            max_attempts: 2,
            initial_delay: Duration::from_millis(10),
            jitter: Jitter::None,
            ..RetryPolicy::default()
        },
    );
    let messages = [Message::user("hi")];
    let err = model
        .complete(ModelRequest::new(&messages))
        .await
        .unwrap_err();
    // The error itself is the caller's to redact; the log line is ours.
    assert!(err.to_string().contains("opaque-internal-7f3e9a"));
    let lines = capture.0.lock().unwrap().clone();
    let retry = lines
        .iter()
        .find(|l| l.contains("retrying"))
        .unwrap_or_else(|| panic!("no retry warning in {lines:?}"));
    assert!(
        retry.contains("upstream rejected [REDACTED] and [REDACTED]"),
        "{retry}"
    );
    assert!(
        !retry.contains("abcdefghijklmnop") && !retry.contains("7f3e9a"),
        "{retry}"
    );
}

#[test]
fn resolved_keys_and_a_stores_own_values_are_masked_by_value() {
    // A key with no known shape, from a store.
    let store = StaticSecrets::from([("ACME_API_KEY", "plainkey-0042-zz")]);
    let endpoint = Endpoint::new("Acme", Some("ACME_API_KEY"), None, "https://api.acme.test");
    let before = redact("auth failed for plainkey-0042-zz").into_owned();
    let key = endpoint.resolve_key("acme-1", None, Some(&store)).unwrap();
    assert_eq!(key.as_deref(), Some("plainkey-0042-zz"));
    assert_eq!(before, "auth failed for plainkey-0042-zz");
    assert_eq!(
        redact("auth failed for plainkey-0042-zz"),
        "auth failed for [REDACTED]"
    );

    // The store masks its own values even before anyone resolved them.
    use loomflow_model::secrets::Secrets;
    let vault = StaticSecrets::from([("DB_PASSWORD", "correct-horse-battery"), ("N", "short")]);
    assert_eq!(
        vault.redact("login correct-horse-battery; short stays; sk-abcdefghijklmnopqrstu"),
        "login [REDACTED]; short stays; [REDACTED]"
    );
}
