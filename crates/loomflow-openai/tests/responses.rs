//! The Responses API adapter against the fake provider: streamed text with
//! usage, an agent with parallel function calls and a reasoning summary,
//! native structured output, an incomplete response, an in-stream error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures_util::StreamExt;
use loomflow_core::model::{FinishReason, ModelChunk, ModelRequest};
use loomflow_core::{Agent, Effort, Message, Model, ModelError};
use loomflow_openai::OpenAiModel;
use loomflow_testkit::fake_provider::openai_responses::{self, Item};
use loomflow_testkit::fake_provider::{FakeProvider, Reply};
use loomflow_testkit::{weather, weather_def};
use serde_json::json;

const MODEL: &str = "gpt-5-mini";

fn model(fake: &FakeProvider) -> OpenAiModel {
    OpenAiModel::builder(MODEL)
        .responses_api()
        .api_key("sk-test-key")
        .base_url(format!("{}/v1", fake.url()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn agent_with_reasoning_and_parallel_function_calls() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(openai_responses::reply(
        MODEL,
        &[
            Item::Reasoning(vec!["Two cities, ".into(), "two calls.".into()]),
            Item::call("call_a", "weather", json!({"city": "Paris"})),
            Item::call("call_b", "weather", json!({"city": "Oslo"})),
        ],
        (60, 20, 0, 0),
    ));
    fake.push(openai_responses::reply(
        MODEL,
        &[Item::text(&["Both ", "sunny."])],
        (100, 4, 64, 16),
    ));
    let agent = Agent::builder()
        .instructions("You report weather.")
        .model(model(&fake))
        .effort(Effort::Low)
        .tool(weather)
        .build()
        .unwrap();
    let mut events = agent.run("Paris and Oslo?").stream();
    let mut thinking = String::new();
    while let Some(e) = events.next().await {
        if let loomflow_core::EventKind::ModelChunk {
            chunk: ModelChunk::Thinking { text, .. },
        } = e.kind
        {
            thinking.push_str(&text);
        }
    }
    let r = events.result().await.unwrap();
    assert_eq!(thinking, "Two cities, two calls.");
    assert_eq!(r.output, "Both sunny.");
    assert_eq!(r.turns, 2);
    // Cache reads and writes are their own buckets: 160 in, 64 of them read
    // from the cache and 16 written to it.
    assert_eq!(
        (
            r.tokens_in,
            r.cached_tokens_in,
            r.cache_write_tokens,
            r.tokens_out
        ),
        (80, 64, 16, 24)
    );

    let requests = fake.requests();
    assert_eq!(requests[0].path, "/v1/responses");
    assert_eq!(
        requests[0].body["reasoning"],
        json!({"effort": "low", "summary": "auto"})
    );
    let second = &requests[1].body;
    insta::assert_json_snapshot!("responses_tool_turn_request", second);
    assert_eq!(
        second["input"][1],
        json!({"type": "function_call", "call_id": "call_a", "name": "weather", "arguments": "{\"city\":\"Paris\"}"})
    );
    assert_eq!(
        second["input"][4],
        json!({"type": "function_call_output", "call_id": "call_b", "output": "sunny in Oslo"})
    );
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
struct Forecast {
    city: String,
    temp_c: f64,
}

#[tokio::test]
async fn structured_output_goes_in_text_format() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(openai_responses::reply(
        MODEL,
        &[Item::text(&["{\"city\":\"Oslo\",", "\"temp_c\":2.5}"])],
        (10, 5, 0, 0),
    ));
    let agent = Agent::builder().model(model(&fake)).build().unwrap();
    let r = agent.run("Oslo").output::<Forecast>().await.unwrap();
    assert_eq!(r.parsed.unwrap().temp_c, 2.5);
    let body = &fake.requests()[0].body;
    assert_eq!(body["text"]["format"]["type"], "json_schema");
    assert_eq!(body["text"]["format"]["strict"], true);
    assert!(
        body.get("instructions").is_none(),
        "no prompt directive on the native path"
    );
}

#[tokio::test]
async fn an_incomplete_response_finishes_with_length() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(Reply::Sse {
        events: openai_responses::events(
            MODEL,
            &[Item::text(&["Once upon"])],
            "incomplete",
            (5, 16, 0, 0),
        ),
        cut_after: None,
    });
    let messages = [Message::user("story")];
    let got: Vec<_> = model(&fake)
        .stream(ModelRequest::new(&messages).with_max_tokens(Some(16)))
        .await
        .unwrap()
        .collect()
        .await;
    let Some(Ok(ModelChunk::Finish {
        finish_reason,
        usage,
    })) = got.last()
    else {
        panic!("{got:?}")
    };
    assert_eq!(*finish_reason, FinishReason::Length);
    assert_eq!(usage.output_tokens, 16);
    assert_eq!(fake.requests()[0].body["max_output_tokens"], 16);
}

#[tokio::test]
async fn an_error_event_mid_stream_and_a_cut_are_transient() {
    let fake = FakeProvider::start().await.unwrap();
    let mut events = openai_responses::events(
        MODEL,
        &[Item::text(&["partial"])],
        "completed",
        (1, 1, 0, 0),
    );
    events.truncate(4); // created, item added, part added, one delta
    events.push(openai_responses::error_event(
        "server_error",
        "The server had an error",
    ));
    fake.push(Reply::Sse {
        events,
        cut_after: None,
    });
    let messages = [Message::user("hi")];
    let m = model(&fake);
    let got: Vec<_> = m
        .stream(ModelRequest::new(&messages))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(
        got[0].as_ref().unwrap(),
        &ModelChunk::Text {
            text: "partial".into()
        }
    );
    let err = got[1].as_ref().unwrap_err();
    assert!(err.is_retryable(), "{err}");

    // Text streamed but no response.completed: the reply is not whole.
    let events = openai_responses::events(MODEL, &[Item::text(&["a"])], "completed", (1, 1, 0, 0));
    let n = events.len();
    fake.push(Reply::Sse {
        events,
        cut_after: Some(n - 1),
    });
    let got: Vec<_> = m
        .stream(ModelRequest::new(&messages))
        .await
        .unwrap()
        .collect()
        .await;
    assert!(
        matches!(got.last(), Some(Err(ModelError::Transient { .. }))),
        "{got:?}"
    );
}

#[tokio::test]
async fn count_tokens_uses_the_input_tokens_endpoint() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(openai_responses::input_tokens(321));
    let messages = [
        Message::system("Be brief."),
        Message::user("Weather in Paris?"),
    ];
    let tools = [weather_def()];
    let count = model(&fake)
        .count_tokens(
            ModelRequest::new(&messages)
                .with_tools(&tools)
                .with_effort(Some(Effort::Low))
                .with_max_tokens(Some(50)),
        )
        .await
        .unwrap();
    assert_eq!(count.input_tokens, 321);
    assert!(count.is_exact());
    let req = &fake.requests()[0];
    assert_eq!(req.path, "/v1/responses/input_tokens");
    assert_eq!(req.authorization.as_deref(), Some("Bearer sk-test-key"));
    // No stream, store, max_output_tokens: the endpoint takes none of them.
    insta::assert_json_snapshot!("responses_count_tokens_request", req.body);
}
