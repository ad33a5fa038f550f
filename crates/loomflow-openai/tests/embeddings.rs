//! The embeddings endpoint against the fake provider: order by index,
//! batching past 2048 inputs, retries, size checks, request snapshot.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use loomflow_model::model::retry::{Jitter, RetryPolicy};
use loomflow_model::{Embedder, ModelError};
use loomflow_openai::OpenAiEmbedder;
use loomflow_testkit::fake_provider::{FakeProvider, openai};

const MODEL: &str = "text-embedding-3-small";

fn embedder(fake: &FakeProvider, dims: usize) -> OpenAiEmbedder {
    OpenAiEmbedder::builder(MODEL)
        .dimensions(dims)
        .api_key("sk-test-key")
        .base_url(format!("{}/v1", fake.url()))
        .retry(RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_secs(1),
            multiplier: 2.0,
            jitter: Jitter::None,
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn vectors_come_back_in_input_order_after_a_retried_server_error() {
    let fake = FakeProvider::start().await.unwrap();
    let vectors = vec![
        vec![1.0, 0.0, 0.0],
        vec![0.0, 1.0, 0.0],
        vec![0.0, 0.0, 1.0],
    ];
    fake.push(openai::error(500, "server_error", None, "try again"));
    fake.push(openai::embeddings(MODEL, &vectors, &[2, 0, 1], 9));
    let e = embedder(&fake, 3);
    let got = e.embed(&["a", "b", "c"]).await.unwrap();
    assert_eq!(got, vectors);
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].path, "/v1/embeddings");
    assert_eq!(
        requests[1].authorization.as_deref(),
        Some("Bearer sk-test-key")
    );
    insta::assert_json_snapshot!("embeddings_request", requests[1].body);
}

#[tokio::test]
async fn more_than_one_batch_of_inputs_takes_several_requests() {
    let fake = FakeProvider::start().await.unwrap();
    let texts: Vec<String> = (0..2050).map(|i| format!("t{i}")).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let first: Vec<Vec<f32>> = (0..2048).map(|i| vec![i as f32]).collect();
    let second: Vec<Vec<f32>> = vec![vec![2048.0], vec![2049.0]];
    fake.push(openai::embeddings(
        MODEL,
        &first,
        &(0..2048).collect::<Vec<_>>(),
        1,
    ));
    fake.push(openai::embeddings(MODEL, &second, &[0, 1], 1));
    let got = embedder(&fake, 1).embed(&texts).await.unwrap();
    assert_eq!(got.len(), 2050);
    assert_eq!(got[2049], vec![2049.0]);
    let requests = fake.requests();
    assert_eq!(requests[0].body["input"].as_array().unwrap().len(), 2048);
    assert_eq!(
        requests[1].body["input"],
        serde_json::json!(["t2048", "t2049"])
    );
}

#[tokio::test]
async fn a_vector_of_the_wrong_size_or_a_bad_key_is_an_error() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(openai::embeddings(MODEL, &[vec![1.0, 2.0]], &[0], 1));
    let err = embedder(&fake, 3).embed(&["a"]).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("2 dimensions; expected index 0 and 3 dimensions"),
        "{err}"
    );

    fake.push(openai::error(
        401,
        "invalid_request_error",
        Some("invalid_api_key"),
        "Incorrect API key provided",
    ));
    let err = embedder(&fake, 3).embed(&["a"]).await.unwrap_err();
    assert!(matches!(err, ModelError::Authentication { .. }), "{err}");
    assert_eq!(fake.requests().len(), 2, "auth failures are not retried");
}

#[test]
fn unknown_models_need_their_size() {
    let err = OpenAiEmbedder::builder("my-embedder")
        .api_key("k")
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("set it with .dimensions(n)"), "{err}");
    let native = OpenAiEmbedder::builder("text-embedding-3-large")
        .api_key("k")
        .build()
        .unwrap();
    assert_eq!(native.dimensions(), 3072);
}
