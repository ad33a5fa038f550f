//! Fact extraction and workflow memory: after each run the agent's model is
//! asked, in the background, for the run's (subject, predicate, object)
//! facts; the next runs are told them. A workflow's memory reaches the
//! agents inside it.
//!
//! Offline: a scripted model plays both the assistant and the extractor
//! (a remote model, such as `gpt-4.1-mini`, extracts by default; local ones
//! only when asked, as here).
//!
//! cargo run -p loomflow-examples --example fact_extraction

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use loomflow::memory::{FactQuery, Forget, InMemoryMemory, Memory};
use loomflow::{Agent, ScriptedModel, ScriptedTurn, Step, UserId, Workflow};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let memory = Arc::new(InMemoryMemory::new());
    let model = ScriptedModel::new([
        // The run's answer…
        ScriptedTurn::text("Welcome to Lyon, Ada!"),
        // …then the background extraction call's reply.
        ScriptedTurn::text(
            r#"[{"subject": "Ada", "predicate": "lives in", "object": "Lyon", "confidence": 0.9}]"#,
        ),
    ]);
    let agent = Agent::builder()
        .model(model)
        .memory(memory.clone())
        .auto_extract(true)
        .build()?;

    let ada = UserId::new("ada")?;
    let r = agent.run("I just moved to Lyon").user("ada").await?;
    println!("run 1: {}", r.output);
    // The result did not wait for the extraction; wait for it now (a
    // process does this before it exits).
    let left = agent.drain(Duration::from_secs(10)).await;
    assert_eq!(left, 0);
    for f in memory.query_facts(&ada, &FactQuery::new()).await? {
        println!(
            "fact: {} {} {} (confidence {}, from {:?})",
            f.subject, f.predicate, f.object, f.confidence, f.sources
        );
    }

    // A workflow's memory reaches the agents inside it that have none.
    let shared = Arc::new(InMemoryMemory::new());
    let helper = Agent::builder().model("echo").build()?;
    let wf = Workflow::chain([Step::named("answer", helper)])
        .memory(shared.clone())
        .build()?;
    wf.run("remember the milk")
        .user("ada")
        .session("chores")
        .await?;
    let kept = shared.export(&ada).await?;
    println!(
        "the workflow's memory holds {} episode(s): {:?}",
        kept.episodes.len(),
        kept.episodes.iter().map(|e| &e.input).collect::<Vec<_>>()
    );

    // Erasing a user stops their pending extractions too.
    let gone = memory.forget(&Forget::user(ada.clone())).await?;
    println!("forget ada: {gone:?}");
    Ok(())
}
