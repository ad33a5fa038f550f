//! Durable runs: a journaled agent whose tool needs a person's approval.
//! The run parks until a signal arrives (from this process here; from
//! `loomflow signal SESSION NAME PAYLOAD` or another process in production),
//! then every step is in the journal, and resuming the session replays the
//! finished run without calling the model or the tool again.
//!
//! cargo run -p loomflow-examples --example durable

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use loomflow::journal::{CallContext, Journal, Scope, wait_for_signal};
use loomflow::prelude::*;
use loomflow::sqlite::SqliteJournal;
use loomflow::tool::{ApprovalDecision, ApprovalHandler, PermissionDecision, Permissions};
use loomflow::{SessionId, ToolCall, UserId};
use serde_json::json;

/// Refund an order.
///
/// # Arguments
/// * `order` - The order id.
#[tool(destructive)]
async fn refund(order: String) -> String {
    // A real payment API takes this as its idempotency key, so a refund
    // retried after a crash is made once.
    let key = CallContext::current()
        .map(|c| c.idempotency_key())
        .unwrap_or_default();
    format!("refunded {order} (idempotency key {key})")
}

/// Asks a person about destructive calls; waits for their signal.
struct AskAPerson;

#[async_trait]
impl Permissions for AskAPerson {
    async fn check(&self, call: &ToolCall, _user: &UserId) -> PermissionDecision {
        match call.destructive {
            true => PermissionDecision::Ask(Some("refunds need a person".into())),
            false => PermissionDecision::Allow,
        }
    }
}

#[async_trait]
impl ApprovalHandler for AskAPerson {
    async fn approve(&self, call: &ToolCall, _reason: Option<&str>) -> ApprovalDecision {
        println!("[parked]    waiting for signal approve:{}", call.id);
        match wait_for_signal(&format!("approve:{}", call.id), None).await {
            Ok(answer) if answer == json!("yes") => ApprovalDecision::Allow,
            _ => ApprovalDecision::Deny(Some("not approved".into())),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let journal = Arc::new(SqliteJournal::open(dir.path().join("journal.db"))?);
    let agent = Agent::builder()
        .instructions("You are a support agent.")
        .model(ScriptedModel::new([
            ScriptedTurn::tool_call("refund", json!({"order": "A-17"})),
            ScriptedTurn::text("Order A-17 is refunded."),
        ]))
        .tool(refund)
        .permissions(AskAPerson)
        .approval_handler(AskAPerson)
        .journal(journal.clone())
        .checkpoints(20)
        .build()?;

    let run = tokio::spawn(
        agent
            .run("Refund order A-17")
            .user("alice")
            .session("ticket-9")
            .into_future(),
    );

    // A person answers: find the parked call in the journal and signal it.
    let (alice, session) = (UserId::new("alice")?, SessionId::new("ticket-9")?);
    let scope = Scope::new(alice.clone(), session.clone());
    let call_id = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Some(step) = journal.steps(&scope, None).await?.first() {
            let reply: serde_json::Value = serde_json::from_str(&step.value)?;
            break reply["tool_calls"][0]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
        }
    };
    agent
        .signal(
            &alice,
            &session,
            &format!("approve:{call_id}"),
            json!("yes"),
        )
        .await?;
    let result = run.await??;
    println!("[completed] {}", result.output);

    for step in journal.steps(&scope, None).await? {
        println!("[journal]   {}", step.key);
    }
    let replayed = agent.resume("ticket-9").user("alice").await?;
    println!(
        "[resumed]   {} (replayed from the journal)",
        replayed.output
    );
    let checkpoints = agent.checkpoints(&alice, &session, 10).await?;
    println!("[checkpoints] {}", checkpoints.len());
    Ok(())
}
