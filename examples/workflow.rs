//! A workflow with an Agent node, streamed: classify a ticket with a plain
//! async fn, route it, let a (scripted) agent answer, and print every event
//! with the node it came from.
//!
//! cargo run -p loomflow-examples --example workflow

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use loomflow::prelude::*;
use loomflow::workflow::WorkflowError;

async fn classify(ticket: String) -> String {
    if ticket.to_lowercase().contains("invoice") {
        "billing".into()
    } else {
        "tech".into()
    }
}

async fn tech(ticket: String) -> String {
    format!("Opened a tech ticket for: {ticket}")
}

#[tokio::main]
async fn main() -> Result<(), WorkflowError> {
    let billing = Agent::builder()
        .name("billing")
        .instructions("You resolve billing questions.")
        .model(ScriptedModel::new([ScriptedTurn::text(
            "Refund issued for the duplicate charge.",
        )]))
        .build()
        .expect("agent");

    let wf = Workflow::route(
        Step::of(classify),
        [("billing", Step::of(billing)), ("tech", Step::of(tech))],
        None,
    )
    .name("support")
    .build()?;
    println!("{}\n", wf.to_mermaid());

    let mut events = wf.run("My invoice charged me twice").user("alice").stream();
    while let Some(event) = events.next().await {
        let node = event.node.as_deref().unwrap_or("-");
        println!("[{node:>14}] {}", event.kind_name());
    }
    let result = events.result().await?;
    println!("\nvisited: {:?}\noutput: {}", result.visited, result.output);
    Ok(())
}
