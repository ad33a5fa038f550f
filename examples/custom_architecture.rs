//! A user-written loop architecture behind the same Agent API.
//!
//! cargo run -p loomflow-examples --example custom_architecture

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use loomflow::architecture::StepName;
use loomflow::model::ModelRequest;
use loomflow::prelude::*;
use loomflow::{AgentSession, RunDeps};

/// Drafts an answer, then asks the model to improve it once.
struct DraftThenRevise;

#[async_trait]
impl Architecture for DraftThenRevise {
    fn name(&self) -> &str {
        "draft-then-revise"
    }

    async fn run(
        &self,
        session: &mut AgentSession,
        deps: &RunDeps<'_>,
        input: Message,
    ) -> loomflow::Result<()> {
        session
            .messages
            .push(Message::system(session.instructions.clone()));
        session.messages.push(input);
        for _ in 0..2 {
            session.turns += 1;
            let reply = deps
                // The step name journals the call when the agent has a journal.
                .call_model(
                    StepName::ModelCall(session.turns),
                    ModelRequest::new(&session.messages),
                )
                .await?;
            session.usage += reply.usage;
            session.output = reply.text.clone();
            session
                .messages
                .push(Message::assistant(reply.text, Vec::new()));
            session.messages.push(Message::user("Make it better."));
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let agent = Agent::builder()
        .instructions("Write a haiku.")
        .model(ScriptedModel::new([
            ScriptedTurn::text("Rust compiles slowly"),
            ScriptedTurn::text(
                "Borrow checker hums / lifetimes fold like paper cranes / the build finishes",
            ),
        ]))
        .architecture(DraftThenRevise)
        .build()?;
    let result = agent.run("About Rust.").await?;
    println!("{} (after {} turns)", result.output, result.turns);
    Ok(())
}
