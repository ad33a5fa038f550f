//! The Messages adapter against a fake provider speaking the official wire
//! format: streamed text with cache tokens, an agent with parallel streamed
//! tool calls and thinking replayed on the next turn, structured output on
//! both native paths, effort, cache breakpoints, and each failure class.
//! Request bodies are snapshotted (insta) so a change to what we send shows
//! in review.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures_util::StreamExt;
use loomflow_anthropic::AnthropicModel;
use loomflow_core::model::{FinishReason, ModelChunk, ModelRequest};
use loomflow_core::{Agent, ContentPart, Effort, Message, Model, ModelError, PromptCache};
use loomflow_model::model::retry::Retrying;
use loomflow_model::pricing::CacheTtl;
use loomflow_testkit::fake_provider::anthropic::{self, Block};
use loomflow_testkit::fake_provider::{FakeProvider, Reply};
use loomflow_testkit::{quick_retries, stream_chunks};
use loomflow_testkit::{weather, weather_def};
use serde_json::json;

const HAIKU: &str = "claude-haiku-4-5";

fn model_named(fake: &FakeProvider, name: &str) -> AnthropicModel {
    AnthropicModel::builder(name)
        .api_key("sk-ant-test-key")
        .base_url(fake.url())
        .build()
        .unwrap()
}

#[tokio::test]
async fn streamed_text_with_cache_tokens_and_cost() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(anthropic::text(HAIKU, &["Hel", "lo"], (100, 12, 2000, 500)));
    let m = model_named(&fake, HAIKU);
    let messages = [Message::system("Be brief."), Message::user("hi")];
    let got: Vec<ModelChunk> = stream_chunks(&m, ModelRequest::new(&messages))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        got[..2],
        [
            ModelChunk::Text { text: "Hel".into() },
            ModelChunk::Text { text: "lo".into() }
        ]
    );
    let ModelChunk::Finish {
        finish_reason,
        usage,
    } = &got[2]
    else {
        panic!("{got:?}")
    };
    assert_eq!(*finish_reason, FinishReason::Stop);
    assert_eq!(
        (
            usage.input_tokens,
            usage.output_tokens,
            usage.cached_input_tokens,
            usage.cache_write_tokens
        ),
        (100, 12, 2000, 500)
    );
    // claude-haiku-4-5: $1 in, $5 out; reads 0.1×, five-minute writes 1.25×.
    let expected = (100.0 * 1.0 + 12.0 * 5.0 + 2000.0 * 0.1 + 500.0 * 1.25) / 1e6;
    assert!(
        (usage.cost_usd - expected).abs() < 1e-12,
        "{}",
        usage.cost_usd
    );

    let req = &fake.requests()[0];
    assert_eq!(req.path, "/v1/messages");
    assert_eq!(req.header("x-api-key"), Some("sk-ant-test-key"));
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(req.authorization, None);
    insta::assert_json_snapshot!("plain_text_request", req.body);
}

#[tokio::test]
async fn agent_runs_parallel_tool_calls_and_replays_signed_thinking() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(anthropic::reply(
        HAIKU,
        &[
            Block::thinking(&["Two cities, ", "two calls."], "sig-EqQBCkgIARABGAIi"),
            Block::Redacted("cmVkYWN0ZWQ=".into()),
            Block::text(&["Checking both."]),
            Block::tool_use("toolu_01A", "weather", json!({"city": "Paris"})),
            Block::tool_use("toolu_01B", "weather", json!({"city": "Oslo"})),
        ],
        "tool_use",
        (50, 30, 0, 0),
    ));
    fake.push(anthropic::text(HAIKU, &["Both sunny."], (90, 5, 0, 0)));
    let agent = Agent::builder()
        .instructions("You report weather.")
        .model(model_named(&fake, HAIKU))
        .effort(Effort::Low)
        .tool(weather)
        .build()
        .unwrap();
    let mut events = agent.run("Paris and Oslo?").stream();
    let mut thinking = String::new();
    while let Some(event) = events.next().await {
        if let loomflow_core::EventKind::ModelChunk {
            chunk: ModelChunk::Thinking { text, .. },
        } = event.kind
        {
            thinking.push_str(&text);
        }
    }
    let result = events.result().await.unwrap();
    assert_eq!(thinking, "Two cities, two calls.");
    assert_eq!(result.output, "Both sunny.");
    assert_eq!(result.turns, 2);
    assert_eq!((result.tokens_in, result.tokens_out), (140, 35));

    let requests = fake.requests();
    let first = &requests[0].body;
    // Haiku 4.5 thinks with a budget: low → 2048, max_tokens raised above it.
    assert_eq!(
        first["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(first["max_tokens"], 2048 + 4096);
    // The assistant turn comes back with its thinking first, signature intact,
    // and both tool results travel in one user message, in call order.
    insta::assert_json_snapshot!("tool_turn_replay_request", requests[1].body);
    let replay = &requests[1].body["messages"][1];
    assert_eq!(replay["role"], "assistant");
    assert_eq!(
        replay["content"][0],
        json!({"type": "thinking", "thinking": "Two cities, two calls.", "signature": "sig-EqQBCkgIARABGAIi"})
    );
    assert_eq!(
        replay["content"][1],
        json!({"type": "redacted_thinking", "data": "cmVkYWN0ZWQ="})
    );
    let results = &requests[1].body["messages"][2];
    assert_eq!(results["content"][0]["tool_use_id"], "toolu_01A");
    assert_eq!(results["content"][1]["content"], "sunny in Oslo");
}

#[tokio::test]
async fn thinking_is_not_replayed_when_this_request_does_not_think() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(anthropic::text(HAIKU, &["ok"], (5, 1, 0, 0)));
    let m = model_named(&fake, HAIKU);
    let assistant =
        Message::assistant("earlier", Vec::new()).with_reasoning(vec![ContentPart::Thinking {
            text: "hmm".into(),
            signature: Some("sig".into()),
        }]);
    let messages = [Message::user("a"), assistant, Message::user("b")];
    let got = stream_chunks(&m, ModelRequest::new(&messages)).await;
    assert!(got.iter().all(Result::is_ok), "{got:?}");
    assert_eq!(
        fake.requests()[0].body["messages"][1],
        json!({"role": "assistant", "content": [{"type": "text", "text": "earlier"}]})
    );
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
struct Forecast {
    city: String,
    /// Degrees Celsius.
    temp_c: i32,
}

#[tokio::test]
async fn structured_output_through_json_outputs() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(anthropic::text(
        HAIKU,
        &["{\"city\": \"Oslo\", ", "\"temp_c\": 4}"],
        (30, 9, 0, 0),
    ));
    let agent = Agent::builder()
        .model(model_named(&fake, HAIKU))
        .build()
        .unwrap();
    let r = agent.run("Oslo?").output::<Forecast>().await.unwrap();
    assert_eq!(r.parsed.unwrap().temp_c, 4);
    let body = &fake.requests()[0].body;
    assert_eq!(body["output_config"]["format"]["type"], "json_schema");
    assert!(body.get("tools").is_none() && body.get("tool_choice").is_none());
    // No prompt directive: the schema went to the provider.
    assert!(body.get("system").is_none(), "{body}");
    insta::assert_json_snapshot!("json_outputs_request", body);
}

#[tokio::test]
async fn structured_output_through_a_forced_tool_on_older_models() {
    let fake = FakeProvider::start().await.unwrap();
    let old = "claude-3-5-haiku-20241022";
    fake.push(anthropic::reply(
        old,
        &[Block::tool_use(
            "toolu_out",
            "__output__",
            json!({"city": "Oslo", "temp_c": -2}),
        )],
        "tool_use",
        (40, 15, 0, 0),
    ));
    let agent = Agent::builder()
        .model(model_named(&fake, old))
        .build()
        .unwrap();
    let r = agent.run("Oslo?").output::<Forecast>().await.unwrap();
    assert_eq!(r.parsed.unwrap().temp_c, -2);
    assert_eq!(
        r.turns, 1,
        "the output tool is the answer, not a call to run"
    );
    let body = &fake.requests()[0].body;
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": "__output__"})
    );
    assert_eq!(body["tools"][0]["name"], "__output__");
    assert!(body.get("output_config").is_none());
}

#[tokio::test]
async fn forced_output_tool_beside_real_tools_is_required_not_named() {
    let fake = FakeProvider::start().await.unwrap();
    let old = "claude-3-5-haiku-20241022";
    fake.push(anthropic::reply(
        old,
        &[Block::tool_use(
            "toolu_out",
            "__output__",
            json!({"city": "Rome", "temp_c": 20}),
        )],
        "tool_use",
        (40, 15, 0, 0),
    ));
    let agent = Agent::builder()
        .model(model_named(&fake, old))
        .tool(weather)
        .build()
        .unwrap();
    let r = agent.run("Rome?").output::<Forecast>().await.unwrap();
    assert_eq!(r.parsed.unwrap().city, "Rome");
    let body = &fake.requests()[0].body;
    assert_eq!(body["tool_choice"], json!({"type": "any"}));
    let names: Vec<&str> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["weather", "__output__"]);
}

#[tokio::test]
async fn effort_maps_to_adaptive_thinking_or_a_budget_or_is_refused() {
    let fake = FakeProvider::start().await.unwrap();
    let messages = [Message::user("think")];

    // Adaptive models clamp: Sonnet 4.6 has no xhigh.
    fake.push(anthropic::text("claude-sonnet-4-6", &["ok"], (5, 1, 0, 0)));
    let sonnet = model_named(&fake, "claude-sonnet-4-6");
    let mut req = ModelRequest::new(&messages).with_effort(Some(Effort::Xhigh));
    req.temperature = Some(0.2);
    assert!(stream_chunks(&sonnet, req).await.iter().all(Result::is_ok));
    let body = &fake.requests()[0].body;
    assert_eq!(body["thinking"], json!({"type": "adaptive"}));
    assert_eq!(body["output_config"], json!({"effort": "high"}));
    assert!(
        body.get("temperature").is_none(),
        "thinking runs at the default temperature"
    );

    // A model without thinking: strict refuses before any request is sent…
    let old = model_named(&fake, "claude-3-haiku-20240307");
    let mut strict = ModelRequest::new(&messages).with_effort(Some(Effort::High));
    strict.strict_effort = true;
    let err = old.stream(strict).await.err().unwrap();
    assert!(matches!(err, ModelError::InvalidRequest { .. }), "{err}");
    assert!(
        err.to_string().contains("does not support effort high"),
        "{err}"
    );
    assert_eq!(fake.requests().len(), 1);
    // …and the default drops it.
    fake.push(anthropic::text(
        "claude-3-haiku-20240307",
        &["ok"],
        (5, 1, 0, 0),
    ));
    let lax = ModelRequest::new(&messages).with_effort(Some(Effort::High));
    assert!(stream_chunks(&old, lax).await.iter().all(Result::is_ok));
    let body = &fake.requests()[1].body;
    assert!(body.get("thinking").is_none() && body.get("output_config").is_none());
}

#[tokio::test]
async fn prompt_caching_places_four_breakpoints_and_prices_the_hour() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(anthropic::text(HAIKU, &["ok"], (10, 2, 0, 4000)));
    let m = model_named(&fake, HAIKU);
    let tools = [weather_def()];
    let messages = [
        Message::system("Stable instructions."),
        Message::system("Recalled memory."),
        Message::system("Per-turn context."),
        Message::user("hi"),
    ];
    let cache = PromptCache::new().ttl(CacheTtl::OneHour);
    let req = ModelRequest::new(&messages)
        .with_tools(&tools)
        .with_prompt_cache(Some(&cache));
    let got = stream_chunks(&m, req).await;
    let Some(Ok(ModelChunk::Finish { usage, .. })) = got.last() else {
        panic!("{got:?}")
    };
    // One-hour writes bill 2× input.
    let expected = (10.0 * 1.0 + 2.0 * 5.0 + 4000.0 * 2.0) / 1e6;
    assert!(
        (usage.cost_usd - expected).abs() < 1e-12,
        "{}",
        usage.cost_usd
    );
    let body = &fake.requests()[0].body;
    insta::assert_json_snapshot!("prompt_cache_request", body);
    let marks = body.to_string().matches("\"cache_control\"").count();
    assert_eq!(marks, 4, "{body}");
    // Tail + tools take two; the last two system blocks get the rest.
    assert!(body["system"][0].get("cache_control").is_none());
    assert_eq!(
        body["system"][2]["cache_control"],
        json!({"type": "ephemeral", "ttl": "1h"})
    );
}

#[tokio::test]
async fn rate_limit_and_overload_are_retried_with_the_server_hint() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(anthropic::error_with_retry_after(
        429,
        "rate_limit_error",
        "slow down",
        0,
    ));
    fake.push(anthropic::error(529, "overloaded_error", "Overloaded"));
    fake.push(anthropic::text(HAIKU, &["fine"], (5, 1, 0, 0)));
    let m = Retrying::new(model_named(&fake, HAIKU), quick_retries(3));
    let messages = [Message::user("hi")];
    let got = stream_chunks(&m, ModelRequest::new(&messages)).await;
    assert_eq!(
        got[0].as_ref().unwrap(),
        &ModelChunk::Text {
            text: "fine".into()
        }
    );
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn auth_and_invalid_request_errors_are_not_retried() {
    let fake = FakeProvider::start().await.unwrap();
    let m = Retrying::new(model_named(&fake, HAIKU), quick_retries(3));
    let messages = [Message::user("hi")];

    fake.push(anthropic::error(
        401,
        "authentication_error",
        "invalid x-api-key",
    ));
    let got = stream_chunks(&m, ModelRequest::new(&messages)).await;
    let err = got[0].as_ref().unwrap_err();
    assert!(matches!(err, ModelError::Authentication { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "model authentication failed: HTTP 401: invalid x-api-key"
    );

    fake.push(anthropic::error(
        400,
        "invalid_request_error",
        "max_tokens: field required",
    ));
    let got = stream_chunks(&m, ModelRequest::new(&messages)).await;
    assert!(
        matches!(got[0], Err(ModelError::InvalidRequest { .. })),
        "{got:?}"
    );
    assert_eq!(fake.requests().len(), 2, "neither was retried");
}

#[tokio::test]
async fn overload_mid_stream_after_output_surfaces_as_transient() {
    let fake = FakeProvider::start().await.unwrap();
    let mut events = anthropic::events(
        HAIKU,
        &[Block::text(&["partial"])],
        "end_turn",
        (5, 1, 0, 0),
    );
    events.truncate(5); // start, ping, block start, one delta
    events.push(anthropic::error_event("overloaded_error", "Overloaded"));
    fake.push(Reply::Sse {
        events,
        cut_after: None,
    });
    let m = Retrying::new(model_named(&fake, HAIKU), quick_retries(3));
    let messages = [Message::user("hi")];
    let got = stream_chunks(&m, ModelRequest::new(&messages)).await;
    assert_eq!(
        got[0].as_ref().unwrap(),
        &ModelChunk::Text {
            text: "partial".into()
        }
    );
    let err = got[1].as_ref().unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(
        err.to_string(),
        "transient model error: in-stream overloaded_error: Overloaded"
    );
    assert_eq!(got.len(), 2);
    assert_eq!(
        fake.requests().len(),
        1,
        "no retry once output has been streamed"
    );
}

#[tokio::test]
async fn malformed_event_and_a_cut_connection_are_transient() {
    let fake = FakeProvider::start().await.unwrap();
    let messages = [Message::user("hi")];
    let m = model_named(&fake, HAIKU);

    fake.push(Reply::RawSse(format!(
        "{}\n\nevent: content_block_start\ndata: {{\"type\": \"content_block_start\", \"index\": \n\n",
        anthropic::message_start(HAIKU, (1, 1, 0, 0))
    )));
    let got = stream_chunks(&m, ModelRequest::new(&messages)).await;
    let err = got[0].as_ref().unwrap_err();
    assert!(
        err.is_retryable() && err.to_string().contains("malformed stream event"),
        "{err}"
    );

    let events = anthropic::events(HAIKU, &[Block::text(&["a", "b"])], "end_turn", (1, 1, 0, 0));
    fake.push(Reply::Sse {
        events,
        cut_after: Some(5),
    });
    let got = stream_chunks(&m, ModelRequest::new(&messages)).await;
    assert_eq!(
        got[0].as_ref().unwrap(),
        &ModelChunk::Text { text: "a".into() }
    );
    let err = got.last().unwrap().as_ref().unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn images_go_as_base64_or_url_sources() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(anthropic::text(HAIKU, &["a cat"], (5, 1, 0, 0)));
    let m = model_named(&fake, HAIKU);
    let messages = [Message::user("what is this?")
        .with_image(loomflow_core::Image::Url {
            url: "data:image/png;base64,iVBORw0KGgo=".into(),
        })
        .with_image(loomflow_core::Image::Url {
            url: "https://example.com/cat.jpg".into(),
        })];
    assert!(
        stream_chunks(&m, ModelRequest::new(&messages))
            .await
            .iter()
            .all(Result::is_ok)
    );
    let content = &fake.requests()[0].body["messages"][0]["content"];
    assert_eq!(
        content[1],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}})
    );
    assert_eq!(
        content[2],
        json!({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}})
    );
}

#[test]
fn missing_key_names_the_variable() {
    let err = AnthropicModel::builder("claude-haiku-4-5")
        .secrets(loomflow_model::secrets::StaticSecrets::default())
        .base_url("http://127.0.0.1:9")
        .build();
    // The test machine has no ANTHROPIC_API_KEY; if one is set, the builder
    // rightly succeeds and there is nothing to check.
    if std::env::var_os("ANTHROPIC_API_KEY").is_none() {
        let err = err.unwrap_err().to_string();
        assert!(err.contains("set ANTHROPIC_API_KEY"), "{err}");
    }
}

#[tokio::test]
async fn count_tokens_asks_the_provider_with_the_request_as_it_would_be_sent() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(anthropic::error(529, "overloaded_error", "Overloaded"))
        .push(anthropic::token_count(1234));
    let model = Retrying::new(model_named(&fake, HAIKU), quick_retries(2));
    let messages = [
        Message::system("Be brief."),
        Message::user("Weather in Paris?"),
    ];
    let tools = [weather_def()];
    let cache = PromptCache::new();
    let count = model
        .count_tokens(
            ModelRequest::new(&messages)
                .with_tools(&tools)
                .with_prompt_cache(Some(&cache))
                .with_max_tokens(Some(100)),
        )
        .await
        .unwrap();
    assert_eq!(count.input_tokens, 1234);
    assert!(count.is_exact(), "{count}");

    let requests = fake.requests();
    assert_eq!(requests.len(), 2, "the overload was retried once");
    let req = &requests[1];
    assert_eq!(req.path, "/v1/messages/count_tokens");
    assert_eq!(req.header("x-api-key"), Some("sk-ant-test-key"));
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    // No max_tokens, stream or temperature: the count endpoint takes none.
    insta::assert_json_snapshot!("count_tokens_request", req.body);

    fake.push(anthropic::error(
        400,
        "invalid_request_error",
        "messages: at least one message is required",
    ));
    let err = model
        .count_tokens(ModelRequest::new(&[]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ModelError::InvalidRequest { message } if message.contains("at least one message")),
        "{err:?}"
    );
}
