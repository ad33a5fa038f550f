//! The Architecture trait is public: a user-written loop runs behind Agent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use loomflow::architecture::StepName;
use loomflow::model::ModelRequest;
use loomflow::prelude::*;
use loomflow::{AgentSession, Message, RunDeps};
use loomflow_testkit::{collect_events, event_trace};

/// Calls the model twice: a draft, then a revision, and emits an event between.
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
        session.messages.push(input);
        for step in ["draft", "revise"] {
            session.turns += 1;
            let c = deps
                .call_model(StepName::Named(step), ModelRequest::new(&session.messages))
                .await?;
            session.usage += c.usage;
            deps.emitter
                .architecture_event("dtr.step", || {
                    let mut m = serde_json::Map::new();
                    m.insert("step".into(), step.into());
                    m.insert("text".into(), c.text.clone().into());
                    m
                })
                .await;
            session.output = c.text.clone();
            session.messages.push(Message::assistant(c.text, vec![]));
            session.messages.push(Message::user("Improve it."));
        }
        Ok(())
    }
}

#[tokio::test]
async fn custom_architectures_run_behind_the_agent() {
    let agent = Agent::builder()
        .model(ScriptedModel::new([
            ScriptedTurn::text("v1"),
            ScriptedTurn::text("v2"),
        ]))
        .architecture(DraftThenRevise)
        .build()
        .unwrap();
    assert_eq!(agent.architecture(), "draft-then-revise");
    let events = collect_events(agent.stream("write")).await;
    assert_eq!(
        event_trace(&events),
        [
            "started",
            "model_chunk:text",
            "model_chunk:finish",
            "architecture_event",
            "model_chunk:text",
            "model_chunk:finish",
            "architecture_event",
            "completed"
        ]
    );
    let ev = serde_json::to_value(&events[3]).unwrap();
    assert_eq!(
        ev["payload"],
        serde_json::json!({"name": "dtr.step", "step": "draft", "text": "v1"})
    );
    let r = agent.run("write").await.unwrap();
    assert_eq!(
        (r.output.as_str(), r.turns),
        ("", 2),
        "the script is shared and now exhausted"
    );
}
