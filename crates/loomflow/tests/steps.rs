//! `#[step]`: an async function called inside a workflow node gets a
//! `loom.workflow.step` span and audit entries; outside one it is just the
//! function.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use loomflow::audit::{AuditLog, AuditQuery, AuditSecret, InMemoryAuditLog};
use loomflow::prelude::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event as TracingEvent, Metadata, Subscriber};

#[derive(Debug)]
struct NotFound(String);

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no invoice {}", self.0)
    }
}

impl std::error::Error for NotFound {}

/// Looks an invoice up; `?` inside converts errors as in any function.
#[step]
async fn fetch(id: u32) -> Result<String, NotFound> {
    if id == 0 {
        return Err(NotFound(
            "0 (asked with sk-proj-abcdefghijklmnop0123)".into(),
        ));
    }
    let base: u32 = "5".parse().map_err(|_| NotFound("base".into()))?;
    Ok(format!("invoice {}", id + base))
}

#[step(name = "shout")]
async fn loud(text: String) -> String {
    text.to_uppercase()
}

async fn handle(id: u32) -> Result<String, NotFound> {
    let found = fetch(id).await?;
    Ok(loud(found).await)
}

/// Records the name and fields of every span opened.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<String>>>);

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
}

impl Subscriber for Spans {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut line = span.metadata().name().to_owned();
        span.record(&mut Fields(&mut line));
        let mut spans = self.0.lock().unwrap();
        spans.push(line);
        Id::from_u64(spans.len() as u64)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &TracingEvent<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn trail(entries: &[loomflow::audit::AuditEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            let get = |k: &str| e.payload.get(k).and_then(|v| v.as_str()).unwrap_or("-");
            format!(
                "{} {}/{}/{}",
                e.action,
                get("workflow"),
                get("node"),
                get("step")
            )
        })
        .collect()
}

#[tokio::test]
async fn steps_are_spanned_and_audited_inside_a_workflow_and_transparent_outside() {
    let spans = Spans::default();
    let _guard = tracing::subscriber::set_default(spans.clone());
    let log = Arc::new(InMemoryAuditLog::new(AuditSecret::new("step-key")));
    let wf = Workflow::builder("billing")
        .add_node("handle", handle)
        .set_start("handle")
        .add_edge("handle", END)
        .audit_log_arc(log.clone())
        .build()
        .unwrap();

    let r = wf.run(3).user("ada").session("s-1").await.unwrap();
    assert_eq!(r.output, "INVOICE 8");
    let entries = log.query(&AuditQuery::all()).await.unwrap();
    assert_eq!(
        trail(&entries),
        [
            "step_started billing/-/handle",
            "step_started billing/handle/fetch",
            "step_completed billing/handle/fetch",
            "step_started billing/handle/shout",
            "step_completed billing/handle/shout",
            "step_completed billing/-/handle",
        ]
    );
    for e in &entries {
        assert_eq!(
            (e.user_id.as_str(), e.session_id.as_str()),
            (Some("ada"), "s-1")
        );
    }
    let steps: Vec<String> = spans
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.starts_with("loom.workflow.step"))
        .cloned()
        .collect();
    assert_eq!(
        steps,
        [
            r#"loom.workflow.step step="fetch" workflow="billing" node="handle""#,
            r#"loom.workflow.step step="shout" workflow="billing" node="handle""#,
        ]
    );

    // A failing step: step_failed with the redacted error, then the node's.
    let err = wf.run(0).user("ada").session("s-2").await.unwrap_err();
    assert!(err.to_string().contains("handle"), "{err}");
    let entries = log.query(&AuditQuery::all().session("s-2")).await.unwrap();
    assert_eq!(
        trail(&entries),
        [
            "step_started billing/-/handle",
            "step_started billing/handle/fetch",
            "step_failed billing/handle/fetch",
            "step_failed billing/-/handle",
        ]
    );
    let error = entries[2].payload["error"].as_str().unwrap();
    assert_eq!(error, "no invoice 0 (asked with [REDACTED])");
    assert!(log.verify(None).await.unwrap().ok);

    // Outside a workflow: the plain function, no span, no entry.
    spans.0.lock().unwrap().clear();
    let before = log.query(&AuditQuery::all()).await.unwrap().len();
    assert_eq!(fetch(1).await.unwrap(), "invoice 6");
    assert_eq!(loud("x".into()).await, "X");
    assert!(fetch(0).await.is_err());
    assert!(spans.0.lock().unwrap().is_empty());
    assert_eq!(log.query(&AuditQuery::all()).await.unwrap().len(), before);
}
