//! `#[step]`: an async function called inside a workflow node gets a
//! `loom.workflow.step` span and audit entries; outside one it is just the
//! function.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use loomflow::audit::{AuditLog, AuditQuery, AuditSecret, InMemoryAuditLog};
use loomflow::prelude::*;
use loomflow::telemetry::Telemetry;

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
    let (telemetry, spans) = Telemetry::in_memory();
    let log = Arc::new(InMemoryAuditLog::new(AuditSecret::new("step-key")));
    let wf = Workflow::builder("billing")
        .add_node("handle", handle)
        .set_start("handle")
        .add_edge("handle", END)
        .audit_log_arc(log.clone())
        .telemetry(telemetry.clone())
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
    // The node's span, and one per step under it, in the order they ran.
    let node = &spans.named("loom.workflow.step")[2];
    assert_eq!(node.attributes.str("loom.workflow.kind"), Some("node"));
    let steps: Vec<String> = spans
        .children_of(node)
        .iter()
        .map(|s| {
            let a = &s.attributes;
            format!(
                "{} {}/{}/{} {}",
                s.name,
                a.str("loom.workflow.name").unwrap(),
                a.str("loom.workflow.node").unwrap(),
                a.str("loom.workflow.step").unwrap(),
                a.str("loom.workflow.kind").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            "loom.workflow.step billing/handle/fetch step",
            "loom.workflow.step billing/handle/shout step",
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
    // The failed step's span says so, redacted too.
    let failed = spans
        .named("loom.workflow.step")
        .into_iter()
        .find(|s| {
            s.attributes
                .str("loom.error")
                .is_some_and(|e| e.starts_with("no invoice 0"))
        })
        .unwrap();
    assert_eq!(failed.attributes.str("loom.workflow.step"), Some("fetch"));
    assert_eq!(failed.attributes.str("error.type"), Some("step_failed"));
    assert_eq!(
        failed.attributes.str("loom.error"),
        Some("no invoice 0 (asked with [REDACTED])")
    );
    assert!(log.verify(None).await.unwrap().ok);

    // Outside a workflow: the plain function, no span, no entry.
    spans.clear();
    let before = log.query(&AuditQuery::all()).await.unwrap().len();
    telemetry
        .scope(async {
            assert_eq!(fetch(1).await.unwrap(), "invoice 6");
            assert_eq!(loud("x".into()).await, "X");
            assert!(fetch(0).await.is_err());
        })
        .await;
    assert!(spans.spans().is_empty());
    assert_eq!(log.query(&AuditQuery::all()).await.unwrap().len(), before);
}
