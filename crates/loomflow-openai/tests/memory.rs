//! Long-term memory with OpenAI embeddings, end to end against the fake
//! provider: an agent's runs recall and store episodes in a SQLite file
//! through `OpenAiEmbedder`, a fresh handle on the file recalls by meaning
//! (no shared word), and a batch is embedded in one request.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use loomflow_core::memory::{Episode, Memory, Recall};
use loomflow_core::{Agent, Embedder, UserId};
use loomflow_openai::{OpenAiEmbedder, OpenAiModel};
use loomflow_sqlite::SqliteMemory;
use loomflow_testkit::fake_provider::{FakeProvider, openai};

const CHAT: &str = "gpt-4.1-mini";
const EMBED: &str = "text-embedding-3-small";

fn embedder(fake: &FakeProvider) -> Arc<dyn Embedder> {
    Arc::new(
        OpenAiEmbedder::builder(EMBED)
            .dimensions(4)
            .api_key("sk-test-key")
            .base_url(format!("{}/v1", fake.url()))
            .build()
            .unwrap(),
    )
}

fn agent(fake: &FakeProvider, memory: Arc<dyn Memory>) -> Agent {
    let model = OpenAiModel::builder(CHAT)
        .api_key("sk-test-key")
        .base_url(format!("{}/v1", fake.url()))
        .build()
        .unwrap();
    Agent::builder()
        .instructions("You are helpful.")
        .model(model)
        .memory(memory)
        .auto_extract(false)
        .build()
        .unwrap()
}

fn embedding(vector: [f32; 4]) -> loomflow_testkit::fake_provider::Reply {
    openai::embeddings(EMBED, &[vector.to_vec()], &[0], 5)
}

#[tokio::test]
async fn an_agent_recalls_by_meaning_through_openai_embeddings_in_a_sqlite_file() {
    let fake = FakeProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");

    // First run: the recall embeds the input, the model answers, the
    // episode is embedded and stored.
    let memory = SqliteMemory::open(&path)
        .unwrap()
        .with_embedder(embedder(&fake));
    fake.push(embedding([1.0, 0.0, 0.0, 0.0]));
    fake.push(openai::text(CHAT, &["Bees in Porto, lovely."], (20, 0, 5)));
    fake.push(embedding([0.0, 1.0, 0.0, 0.0]));
    let first = agent(&fake, Arc::new(memory))
        .run("I keep three beehives on my roof in Porto.")
        .user("ada")
        .session("s1")
        .await
        .unwrap();
    assert_eq!(first.output, "Bees in Porto, lovely.");

    // Second run, from a fresh handle on the file and in another session:
    // the question shares no word with the episode, its vector is close.
    let memory = SqliteMemory::open(&path)
        .unwrap()
        .with_embedder(embedder(&fake));
    fake.push(embedding([0.0, 0.9, 0.1, 0.0]));
    fake.push(openai::text(CHAT, &["Your bees are fine."], (40, 0, 5)));
    fake.push(embedding([0.0, 0.8, 0.2, 0.0]));
    let memory: Arc<dyn Memory> = Arc::new(memory);
    agent(&fake, memory.clone())
        .run("How are the insects doing?")
        .user("ada")
        .session("s2")
        .await
        .unwrap();

    let requests = fake.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v1/embeddings",
            "/v1/chat/completions",
            "/v1/embeddings",
            "/v1/embeddings",
            "/v1/chat/completions",
            "/v1/embeddings",
        ]
    );
    let inputs: Vec<&serde_json::Value> = [0, 2, 3, 5].map(|i| &requests[i].body["input"]).to_vec();
    assert_eq!(
        inputs,
        [
            &serde_json::json!(["I keep three beehives on my roof in Porto."]),
            &serde_json::json!([
                "I keep three beehives on my roof in Porto.\nBees in Porto, lovely."
            ]),
            &serde_json::json!(["How are the insects doing?"]),
            &serde_json::json!(["How are the insects doing?\nYour bees are fine."]),
        ]
    );
    assert_eq!(requests[0].body["model"], EMBED);
    assert_eq!(requests[0].body["dimensions"], 4);
    let seeded = requests[4].body["messages"].to_string();
    assert!(
        seeded.contains("Relevant past episodes:")
            && seeded.contains("I keep three beehives on my roof in Porto."),
        "the second run is seeded with the first by meaning: {seeded}"
    );

    // Another user recalls nothing with the same vector.
    fake.push(embedding([0.0, 1.0, 0.0, 0.0]));
    let eve = UserId::new("eve").unwrap();
    assert!(
        memory
            .recall(&eve, &Recall::new("beehives"))
            .await
            .unwrap()
            .is_empty()
    );

    // A batch is one embeddings request with every text, in order.
    let ada = UserId::new("ada").unwrap();
    let batch = vec![
        Episode::new("I switched to decaf", "Noted."),
        Episode::new("My sister lives in Oslo", "Nice."),
        Episode::new("I run on Sundays", "Good habit."),
    ];
    fake.push(openai::embeddings(
        EMBED,
        &[
            vec![0.0, 0.0, 1.0, 0.0],
            vec![0.0, 0.0, 0.0, 1.0],
            vec![0.5, 0.0, 0.0, 0.5],
        ],
        &[2, 0, 1],
        12,
    ));
    let before = fake.requests().len();
    memory.remember_many(&ada, batch).await.unwrap();
    let requests = fake.requests();
    assert_eq!(requests.len(), before + 1);
    assert_eq!(
        requests[before].body["input"],
        serde_json::json!([
            "I switched to decaf\nNoted.",
            "My sister lives in Oslo\nNice.",
            "I run on Sundays\nGood habit."
        ])
    );
    // The vectors were stored by their `index`, not their order on the wire:
    // a query along the second one finds the Oslo episode by vector alone.
    fake.push(embedding([0.0, 0.0, 0.0, 1.0]));
    let hits = memory
        .recall(&ada, &Recall::new("family abroad").alpha(1.0).limit(1))
        .await
        .unwrap();
    assert_eq!(hits[0].input, "My sister lives in Oslo");
    assert_eq!(memory.profile(&ada).await.unwrap().episode_count, 5);
}
