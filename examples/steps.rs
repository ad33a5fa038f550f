//! `#[step]`: plain async functions called inside a workflow node get a
//! `loom.workflow.step` span and entries in the workflow's signed audit
//! log; called anywhere else they are just functions.
//!
//! cargo run -p loomflow-examples --example steps

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use loomflow::audit::{AuditLog, AuditQuery, AuditSecret, InMemoryAuditLog};
use loomflow::prelude::*;
use loomflow::workflow::WorkflowError;

#[derive(Debug)]
struct NoSuchOrder(u32);

impl std::fmt::Display for NoSuchOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no order {}", self.0)
    }
}

impl std::error::Error for NoSuchOrder {}

/// Finds an order; a failure is audited as `step_failed`.
#[step]
async fn find_order(id: u32) -> Result<String, NoSuchOrder> {
    match id {
        0 => Err(NoSuchOrder(id)),
        _ => Ok(format!("order {id}: 2 books")),
    }
}

#[step(name = "draft_reply")]
async fn reply(order: String) -> String {
    format!("Your {order} ship tomorrow.")
}

/// The workflow's only node: two steps in plain Rust control flow.
async fn answer(id: u32) -> Result<String, NoSuchOrder> {
    let order = find_order(id).await?;
    Ok(reply(order).await)
}

#[tokio::main]
async fn main() -> Result<(), WorkflowError> {
    let log = Arc::new(InMemoryAuditLog::new(AuditSecret::new(
        "example-key-use-an-env-var",
    )));
    let wf = Workflow::builder("orders")
        .add_node("answer", answer)
        .set_start("answer")
        .add_edge("answer", END)
        .audit_log_arc(log.clone())
        .build()?;

    let r = wf.run(7).user("alice").await?;
    println!("output: {}", r.output.as_str().unwrap_or_default());
    let failed = wf.run(0).user("alice").await;
    println!("failed: {}", failed.is_err());

    for e in log.query(&AuditQuery::all()).await.unwrap() {
        let field = |k: &str| e.payload.get(k).and_then(|v| v.as_str()).unwrap_or("");
        println!(
            "{:>2} {:<15} node={:<7} step={:<12} {}",
            e.seq,
            e.action,
            field("node"),
            field("step"),
            field("error")
        );
    }
    println!("chain ok: {}", log.verify(None).await.unwrap().ok);
    // Outside a workflow the step is the plain function.
    println!("direct call: {}", reply("order 9".into()).await);
    Ok(())
}
