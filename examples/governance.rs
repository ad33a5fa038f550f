//! Governance end to end, offline: a shell tool in the OS sandbox, a
//! permission policy, a budget and a signed audit log that is verified at
//! the end.
//!
//! cargo run -p loomflow-examples --example governance

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use loomflow::ToolCall;
use loomflow::audit::{AuditLog, AuditQuery, AuditSecret, FileAuditLog};
use loomflow::budget::BudgetConfig;
use loomflow::permissions::StandardPermissions;
use loomflow::prelude::*;
use loomflow::sandbox::{ProcessSandbox, SandboxedShell};
use loomflow::tool::{ApprovalDecision, ApprovalHandler};
use serde_json::json;

/// Stands in for a human: approves shell commands (a real approver would
/// ask someone, and can remember the answer per user and tool).
struct Operator;

#[async_trait::async_trait]
impl ApprovalHandler for Operator {
    async fn approve(&self, call: &ToolCall, reason: Option<&str>) -> ApprovalDecision {
        println!("approve {}? ({}) yes", call.args, reason.unwrap_or("asked"));
        ApprovalDecision::Allow
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let workspace = dir.path().join("workspace");
    std::fs::create_dir_all(&workspace)?;

    // The model (scripted here) first works in its workspace, then tries to
    // read a file outside it.
    let model = ScriptedModel::new([
        ScriptedTurn::tool_call("bash", json!({"command": "echo draft > notes.txt && ls"})),
        ScriptedTurn::tool_call("bash", json!({"command": "cat /etc/shadow"})),
        ScriptedTurn::text("Done: notes.txt written; /etc/shadow is out of reach."),
    ]);
    let sandbox = ProcessSandbox::new()
        .writable(&workspace)?
        .current_dir(&workspace)?;
    println!("sandbox: {}", sandbox.isolation()?);

    let log = std::sync::Arc::new(FileAuditLog::open(
        dir.path().join("audit.jsonl"),
        AuditSecret::new("example-key: keep yours in a secret store"),
    )?);
    let agent = Agent::builder()
        .instructions("You are a careful operator.")
        .model(model)
        .tool(SandboxedShell::new(sandbox.clone()))
        // Only `bash`; it is destructive, so the gate asks the approver.
        .permissions(StandardPermissions::new().allow(["bash"]))
        .approval_handler(Operator)
        .budget(BudgetConfig {
            max_tokens: Some(20_000),
            ..Default::default()
        })
        .audit_log_arc(log.clone())
        .build()?;

    let result = agent.run("Tidy the workspace.").user("alice").await?;
    println!("output: {}", result.output);

    for entry in log.query(&AuditQuery::all().action("tool_result")).await? {
        println!(
            "audited {} #{}: {}",
            entry.action,
            entry.seq,
            json!(entry.payload)
        );
    }
    // What the second command met, run directly:
    let refused = sandbox.run("/bin/sh", ["-c", "cat /etc/shadow"]).await?;
    println!(
        "cat /etc/shadow: exit {:?}, {}",
        refused.exit_code,
        refused.stderr.trim()
    );
    let check = log.verify(None).await?;
    println!(
        "audit log: {} entries, chain {}",
        check.entries,
        if check.ok { "intact" } else { "TAMPERED" }
    );
    Ok(())
}
