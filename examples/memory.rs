//! Long-term memory: an agent that remembers each user across sessions and
//! processes, in one SQLite file. Working blocks, facts and past episodes seed
//! the first prompt; each run becomes an episode; the GDPR operations show,
//! export and erase what is kept.
//!
//! cargo run -p loomflow-examples --example memory

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use loomflow::Agent;
use loomflow::memory::{Fact, Forget, Memory, Recall};
use loomflow::sqlite::SqliteMemory;
use loomflow::{Role, UserId};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let memory = Arc::new(SqliteMemory::open(dir.path().join("bot.db"))?);
    let alice = UserId::new("alice")?;

    // What every run of alice's should know, and a fact about her.
    memory
        .update_block(&alice, "persona", "Keep answers short.")
        .await?;
    memory
        .append_fact(
            &alice,
            Fact::new("alice", "lives in", "Lyon")?.source("signup form"),
        )
        .await?;

    let agent = Agent::builder()
        .instructions("You are a travel assistant.")
        .model("echo")
        .memory(memory.clone())
        .build()?;
    agent
        .run("I want to visit Kyoto in April")
        .user("alice")
        .session("trip")
        .await?;
    agent
        .run("Find me a ryokan")
        .user("alice")
        .session("trip")
        .await?;

    // A new session: the first prompt now carries the persona block, the
    // fact and the Kyoto episodes (recalled from session `trip`).
    let r = agent
        .run("Any ideas for my holiday?")
        .user("alice")
        .session("later")
        .await?;
    println!("a new session answers: {}", r.output);

    let seed = memory
        .session_messages(&alice, &loomflow::SessionId::new("trip")?, 10)
        .await?;
    println!("session `trip` as history ({} messages):", seed.len());
    for m in &seed {
        let who = if m.role == Role::User {
            "user"
        } else {
            "assistant"
        };
        println!("  {who}: {}", m.text_content());
    }

    let hits = memory
        .recall_scored(&alice, &Recall::new("Kyoto ryokan").limit(2))
        .await?;
    println!("recall \"Kyoto ryokan\":");
    for h in &hits {
        println!(
            "  {:.4} (vector {:?}, bm25 {:?}) {}",
            h.score, h.vector_score, h.bm25_score, h.episode.input
        );
    }

    let profile = memory.profile(&alice).await?;
    println!(
        "profile: {} episodes, {} facts, {} blocks, sessions {:?}",
        profile.episode_count,
        profile.fact_count,
        profile.block_count,
        profile
            .recent_sessions
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
    );
    let gone = memory.forget(&Forget::user(alice.clone())).await?;
    println!("forget alice: {gone:?}");
    assert_eq!(memory.profile(&alice).await?.episode_count, 0);
    Ok(())
}
