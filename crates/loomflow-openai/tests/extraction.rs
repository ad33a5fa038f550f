//! Background fact extraction with a remote model: on by default, one
//! extraction call per stored run over the official wire format, facts
//! stored under the run's user and recalled by the next run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use loomflow_core::memory::{DEFAULT_EXTRACTION_PROMPT, FactQuery, InMemoryMemory, Memory};
use loomflow_core::{Agent, UserId};
use loomflow_openai::OpenAiModel;
use loomflow_testkit::fake_provider::{FakeProvider, openai};

const MODEL: &str = "gpt-4.1-mini";

#[tokio::test]
async fn a_remote_model_extracts_facts_after_each_run_by_default() {
    let fake = FakeProvider::start().await.unwrap();
    let model = OpenAiModel::builder(MODEL)
        .api_key("sk-test-key")
        .base_url(format!("{}/v1", fake.url()))
        .build()
        .unwrap();
    let memory = Arc::new(InMemoryMemory::new());
    let agent = Agent::builder()
        .instructions("You are helpful.")
        .model(model)
        .memory(memory.clone())
        .build()
        .unwrap();
    assert!(
        agent.extractor().is_some(),
        "on by default for a remote model"
    );

    fake.push(openai::text(
        MODEL,
        &["Nice to meet ", "you, Ada."],
        (30, 0, 6),
    ));
    fake.push(openai::text(
        MODEL,
        &[
            r#"[{"subject": "user", "predicate": "name is", "#,
            r#""object": "Ada", "confidence": 0.95}]"#,
        ],
        (120, 0, 20),
    ));
    let result = agent
        .run("Hi, I'm Ada.")
        .user("ada")
        .session("s1")
        .await
        .unwrap();
    assert_eq!(result.output, "Nice to meet you, Ada.");
    assert_eq!(agent.drain(Duration::from_secs(10)).await, 0);

    let ada = UserId::new("ada").unwrap();
    let facts = memory.query_facts(&ada, &FactQuery::new()).await.unwrap();
    let got: Vec<(&str, &str, &str, f32)> = facts
        .iter()
        .map(|f| {
            (
                f.subject.as_str(),
                f.predicate.as_str(),
                f.object.as_str(),
                f.confidence,
            )
        })
        .collect();
    assert_eq!(got, [("user", "name_is", "Ada", 0.95)]);
    let episode = &memory.export(&ada).await.unwrap().episodes[0];
    assert_eq!(facts[0].sources, std::slice::from_ref(&episode.id));

    // The extraction call: the episode under the extraction prompt, no tools.
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    let body = &requests[1].body;
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][0]["content"], DEFAULT_EXTRACTION_PROMPT);
    let episode_text = body["messages"][1]["content"].as_str().unwrap();
    assert!(
        episode_text.ends_with("USER: Hi, I'm Ada.\nASSISTANT: Nice to meet you, Ada.\n"),
        "{episode_text}"
    );
    assert!(body.get("tools").is_none(), "{body}");

    // The next run, in another session, is told the fact.
    fake.push(openai::text(MODEL, &["You are Ada."], (40, 0, 3)));
    fake.push(openai::text(MODEL, &["[]"], (60, 0, 1)));
    agent
        .run("What's my name?")
        .user("ada")
        .session("s2")
        .await
        .unwrap();
    assert_eq!(agent.drain(Duration::from_secs(10)).await, 0);
    let seeded = fake.requests()[2].body["messages"].to_string();
    assert!(
        seeded.contains("Known facts:\\n- user name_is Ada"),
        "{seeded}"
    );
    // An empty extraction adds nothing; another user sees nothing.
    assert_eq!(
        memory
            .query_facts(&ada, &FactQuery::new())
            .await
            .unwrap()
            .len(),
        1
    );
    let eve = UserId::new("eve").unwrap();
    assert!(
        memory
            .query_facts(&eve, &FactQuery::new())
            .await
            .unwrap()
            .is_empty()
    );
}
