//! The Chat Completions adapter against a fake provider speaking the official
//! wire format: text, parallel tool calls, structured output on both paths,
//! usage and cost, and each failure class.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use futures_util::StreamExt;
use loomflow_core::model::{ModelChunk, ModelRequest};
use loomflow_core::tokens::CountMethod;
use loomflow_core::{Agent, Effort, Message, Model, ModelError, PromptCache, ToolCall};
use loomflow_model::model::retry::Retrying;
use loomflow_openai::{Gateway, OpenAiModel};
use loomflow_testkit::fake_provider::{FakeProvider, Reply, openai};
use loomflow_testkit::weather;
use loomflow_testkit::{quick_retries, stream_chunks};
use serde_json::json;

const MODEL: &str = "gpt-4.1-mini";

fn model(fake: &FakeProvider) -> OpenAiModel {
    OpenAiModel::builder(MODEL)
        .api_key("sk-test-key")
        .base_url(format!("{}/v1", fake.url()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn streamed_text_with_usage_and_cost() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(openai::text(
        MODEL,
        &["Hel", "lo ", "there"],
        (1000, 20, 200),
    ));
    let m = model(&fake);
    let got = stream_chunks(
        &m,
        ModelRequest::new(&[Message::system("Be brief."), Message::user("hi")]),
    )
    .await;
    let got: Vec<ModelChunk> = got.into_iter().map(Result::unwrap).collect();
    let texts: Vec<&str> = got
        .iter()
        .filter_map(|c| match c {
            ModelChunk::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["Hel", "lo ", "there"]);
    let Some(ModelChunk::Finish {
        finish_reason,
        usage,
    }) = got.last()
    else {
        panic!("last chunk must be Finish: {got:?}")
    };
    assert_eq!(*finish_reason, loomflow_core::model::FinishReason::Stop);
    // prompt_tokens includes the cached ones; ours are separate buckets.
    assert_eq!(
        (
            usage.input_tokens,
            usage.cached_input_tokens,
            usage.output_tokens
        ),
        (800, 200, 20)
    );
    // gpt-4.1-mini: $0.40 in, $0.10 cached, $1.60 out per million.
    let expected = (800.0 * 0.40 + 200.0 * 0.10 + 20.0 * 1.60) / 1e6;
    assert!(
        (usage.cost_usd - expected).abs() < 1e-12,
        "{}",
        usage.cost_usd
    );

    let req = &fake.requests()[0];
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(req.authorization.as_deref(), Some("Bearer sk-test-key"));
    assert_eq!(
        req.body,
        json!({
            "model": MODEL,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hi"}
            ],
            "stream": true,
            "stream_options": {"include_usage": true}
        })
    );
}

#[tokio::test]
async fn agent_runs_parallel_streamed_tool_calls() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(openai::tool_calls(
        MODEL,
        &[
            ("call_a", "weather", json!({"city": "Paris"})),
            ("call_b", "weather", json!({"city": "Oslo"})),
        ],
        (50, 10, 0),
    ));
    fake.push(openai::text(MODEL, &["Both sunny."], (80, 5, 0)));
    let agent = Agent::builder()
        .instructions("You report weather.")
        .model(model(&fake))
        .tool(weather)
        .build()
        .unwrap();
    let result = agent.run("Paris and Oslo?").await.unwrap();
    assert_eq!(result.output, "Both sunny.");
    assert_eq!(result.turns, 2);
    assert_eq!(result.tokens_in, 130);
    assert!(result.cost_usd > 0.0);

    let second = &fake.requests()[1].body;
    insta::assert_json_snapshot!("tool_turn_request", second);
    let messages = second["messages"].as_array().unwrap();
    assert_eq!(
        messages[2],
        json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}
            ]
        })
    );
    assert_eq!(
        messages[3],
        json!({"role": "tool", "content": "sunny in Paris", "tool_call_id": "call_a"})
    );
    assert_eq!(
        messages[4],
        json!({"role": "tool", "content": "sunny in Oslo", "tool_call_id": "call_b"})
    );
    assert_eq!(
        second["tools"],
        json!([{"type": "function", "function": {
            "name": "weather",
            "description": "Look up the weather.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": false
            }
        }}])
    );
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema, PartialEq)]
struct Forecast {
    city: String,
    temp_c: f64,
    note: Option<String>,
}

#[tokio::test]
async fn structured_output_goes_native_on_openai() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(openai::text(
        MODEL,
        &["{\"city\": \"Oslo\", ", "\"temp_c\": 3.5, \"note\": null}"],
        (10, 5, 0),
    ));
    let agent = Agent::builder()
        .instructions("Forecast.")
        .model(model(&fake))
        .build()
        .unwrap();
    let result = agent.run("Oslo").output::<Forecast>().await.unwrap();
    assert_eq!(
        result.parsed.unwrap(),
        Forecast {
            city: "Oslo".into(),
            temp_c: 3.5,
            note: None
        }
    );
    let body = &fake.requests()[0].body;
    insta::assert_json_snapshot!("native_output_request", body);
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "Forecast."})
    );
    assert_eq!(
        body["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "Forecast", "strict": true, "schema": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "temp_c": {"type": "number"},
                "note": {"type": ["string", "null"]}
            },
            "required": ["city", "temp_c", "note"],
            "additionalProperties": false
        }}})
    );
}

#[tokio::test]
async fn gateway_without_native_output_takes_the_prompt_path() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(openai::text(
        "deepseek-chat",
        &["```json\n{\"city\": \"Oslo\", \"temp_c\": 1}\n```"],
        (10, 5, 0),
    ));
    let m = OpenAiModel::builder("deepseek-chat")
        .gateway(Gateway::DeepSeek)
        .api_key("ds-key")
        .base_url(fake.url())
        .build()
        .unwrap();
    let agent = Agent::builder()
        .instructions("Forecast.")
        .model(m)
        .build()
        .unwrap();
    let result = agent.run("Oslo").output::<Forecast>().await.unwrap();
    assert_eq!(result.parsed.unwrap().temp_c, 1.0);
    let req = &fake.requests()[0];
    assert_eq!(req.path, "/chat/completions");
    assert!(req.body.get("response_format").is_none(), "{}", req.body);
    let system = req.body["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("STRUCTURED OUTPUT REQUIRED"), "{system}");
}

#[tokio::test]
async fn effort_is_clamped_per_family_and_the_cache_key_comes_from_the_request() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(openai::text("gpt-5-mini", &["ok"], (10, 1, 0)));
    let m = OpenAiModel::builder("gpt-5-mini")
        .api_key("sk-test-key")
        .base_url(format!("{}/v1", fake.url()))
        .prompt_cache_key("builder-default")
        .build()
        .unwrap();
    let cache = PromptCache::new().key("tenant-7");
    // A reasoning turn replayed from Anthropic keeps only its text here.
    let earlier = Message::assistant("before", Vec::new()).with_reasoning(vec![
        loomflow_core::ContentPart::Thinking {
            text: "hidden".into(),
            signature: Some("sig".into()),
        },
    ]);
    let messages = [Message::user("a"), earlier, Message::user("b")];
    let request = ModelRequest::new(&messages)
        .with_effort(Some(Effort::Xhigh))
        .with_max_tokens(Some(100))
        .with_prompt_cache(Some(&cache));
    let got: Vec<_> = m.stream(request).await.unwrap().collect().await;
    assert!(got.iter().all(Result::is_ok), "{got:?}");
    let body = &fake.requests()[0].body;
    insta::assert_json_snapshot!("reasoning_family_request", body);
    // gpt-5 takes minimal..high: xhigh clamps to high.
    assert_eq!(body["reasoning_effort"], "high");
    assert_eq!(body["max_completion_tokens"], 100);
    assert!(body.get("max_tokens").is_none());
    assert_eq!(body["prompt_cache_key"], "tenant-7");
    assert_eq!(
        body["messages"][1],
        json!({"role": "assistant", "content": "before"})
    );

    // gpt-4.1 has no reasoning effort: strict refuses before sending.
    let mut strict = ModelRequest::new(&messages).with_effort(Some(Effort::Low));
    strict.strict_effort = true;
    let err = model(&fake).stream(strict).await.err().unwrap();
    assert!(matches!(err, ModelError::InvalidRequest { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("\"gpt-4.1-mini\" does not support effort low"),
        "{err}"
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn rate_limit_honours_retry_after_then_succeeds() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(openai::error_with_retry_after_ms(
        429,
        "requests",
        "Rate limit reached",
        20,
    ));
    fake.push(openai::text(MODEL, &["ok"], (1, 1, 0)));
    let m = Retrying::new(model(&fake), quick_retries(3));
    let got = stream_chunks(&m, ModelRequest::new(&[Message::user("hi")])).await;
    assert!(got.iter().all(Result::is_ok), "{got:?}");
    assert_eq!(fake.requests().len(), 2);

    // A hint longer than the policy's cap ends the retries.
    fake.push(openai::error_with_retry_after_ms(
        429,
        "requests",
        "Slow down",
        5_000,
    ));
    let got = stream_chunks(&m, ModelRequest::new(&[Message::user("hi")])).await;
    match &got[..] {
        [
            Err(ModelError::RateLimited {
                retry_after,
                message,
            }),
        ] => {
            assert_eq!(*retry_after, Some(Duration::from_secs(5)));
            assert_eq!(message, "HTTP 429: Slow down");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn server_error_then_success_is_retried() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(openai::error(
        500,
        "server_error",
        None,
        "The server had an error",
    ));
    fake.push(openai::text(MODEL, &["recovered"], (1, 1, 0)));
    let m = Retrying::new(model(&fake), quick_retries(3));
    let got = stream_chunks(&m, ModelRequest::new(&[Message::user("hi")])).await;
    assert!(
        matches!(&got[0], Ok(ModelChunk::Text { text }) if text == "recovered"),
        "{got:?}"
    );
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn permanent_failures_are_not_retried() {
    let fake = FakeProvider::start().await.unwrap();
    let m = Retrying::new(model(&fake), quick_retries(5));

    fake.push(openai::error(
        401,
        "invalid_request_error",
        Some("invalid_api_key"),
        "Incorrect API key provided",
    ));
    let got = stream_chunks(&m, ModelRequest::new(&[Message::user("hi")])).await;
    assert!(
        matches!(&got[..], [Err(ModelError::Authentication { message })] if message == "HTTP 401: Incorrect API key provided"),
        "{got:?}"
    );
    assert_eq!(fake.requests().len(), 1);

    fake.push(openai::error(
        429,
        "insufficient_quota",
        Some("insufficient_quota"),
        "You exceeded your current quota",
    ));
    let got = stream_chunks(&m, ModelRequest::new(&[Message::user("hi")])).await;
    assert!(
        matches!(&got[..], [Err(ModelError::Permanent { .. })]),
        "{got:?}"
    );
    assert_eq!(fake.requests().len(), 2);

    fake.push(openai::error(
        400,
        "invalid_request_error",
        None,
        "Invalid 'messages'",
    ));
    let got = stream_chunks(&m, ModelRequest::new(&[Message::user("hi")])).await;
    assert!(
        matches!(&got[..], [Err(ModelError::InvalidRequest { .. })]),
        "{got:?}"
    );
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn in_stream_error_after_text_surfaces_and_is_not_retried() {
    let fake = FakeProvider::start().await.unwrap();
    let mut events = openai::text_events(MODEL, &["partial "], (1, 1, 0));
    events.truncate(2);
    events.push(json!({"error": {"message": "The server is overloaded", "type": "server_error", "param": null, "code": null}}).to_string());
    fake.push(Reply::Sse {
        events,
        cut_after: None,
    });
    let m = Retrying::new(model(&fake), quick_retries(3));
    let got = stream_chunks(&m, ModelRequest::new(&[Message::user("hi")])).await;
    assert!(
        matches!(&got[0], Ok(ModelChunk::Text { text }) if text == "partial "),
        "{got:?}"
    );
    match &got[1] {
        Err(e @ ModelError::Transient { message, .. }) => {
            assert!(e.is_retryable());
            assert_eq!(message, "in-stream server_error: The server is overloaded");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(got.len(), 2);
    assert_eq!(
        fake.requests().len(),
        1,
        "text had reached the caller: no retry"
    );
}

#[tokio::test]
async fn malformed_chunk_and_cut_connection_are_transient_errors() {
    let fake = FakeProvider::start().await.unwrap();
    let m = model(&fake);

    fake.push(Reply::RawSse(
        "data: {\"id\": \"chatcmpl-1\", \"choices\": [{\"delta\": {\"content\": \"x\"\n\n".into(),
    ));
    let got = stream_chunks(&m, ModelRequest::new(&[Message::user("hi")])).await;
    match &got[..] {
        [Err(ModelError::Transient { message, .. })] => {
            assert!(message.starts_with("malformed stream chunk"), "{message}")
        }
        other => panic!("{other:?}"),
    }

    let events = openai::text_events(MODEL, &["one ", "two ", "three"], (1, 1, 0));
    fake.push(Reply::Sse {
        events,
        cut_after: Some(3),
    });
    let got = stream_chunks(&m, ModelRequest::new(&[Message::user("hi")])).await;
    let texts: Vec<_> = got
        .iter()
        .filter_map(|c| match c {
            Ok(ModelChunk::Text { text }) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["one ", "two "]);
    assert!(
        matches!(got.last(), Some(Err(e @ ModelError::Transient { .. })) if e.to_string().contains("mid-stream") || e.to_string().contains("closed before")),
        "{got:?}"
    );

    // A cut before any output is retried like any transient failure.
    let events = openai::text_events(MODEL, &["whole"], (1, 1, 0));
    fake.push(Reply::Sse {
        events: events.clone(),
        cut_after: Some(1),
    });
    fake.push(Reply::Sse {
        events,
        cut_after: None,
    });
    let got = stream_chunks(
        &Retrying::new(m, quick_retries(2)),
        ModelRequest::new(&[Message::user("hi")]),
    )
    .await;
    assert!(
        matches!(&got[0], Ok(ModelChunk::Text { text }) if text == "whole"),
        "{got:?}"
    );
}

#[tokio::test]
async fn unparseable_tool_arguments_reach_the_tool_check_not_a_crash() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(openai::tool_calls(
        MODEL,
        &[("call_x", "weather", json!("not json {"))],
        (1, 1, 0),
    ));
    let m = model(&fake);
    let got = stream_chunks(&m, ModelRequest::new(&[Message::user("hi")])).await;
    let call: Vec<&ToolCall> = got
        .iter()
        .filter_map(|c| match c {
            Ok(ModelChunk::ToolCall { tool_call }) => Some(tool_call),
            _ => None,
        })
        .collect();
    assert_eq!(call.len(), 1);
    assert_eq!(call[0].args, json!("not json {"));
}

#[test]
fn keys_come_from_secrets_then_the_environment() {
    use loomflow_model::secrets::StaticSecrets;
    // A variable no environment here sets: the error names it.
    let err = OpenAiModel::builder("llama-3")
        .gateway(Gateway::LiteLlm)
        .secrets(StaticSecrets::default())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("set LITELLM_API_KEY"), "{err}");
    // The secrets store is asked first.
    let ok = OpenAiModel::builder("llama-3")
        .gateway(Gateway::LiteLlm)
        .secrets(StaticSecrets::from([("LITELLM_API_KEY", "sk-from-vault")]))
        .build();
    assert!(ok.is_ok());
}

#[tokio::test]
async fn count_tokens_is_local_with_tiktoken_and_an_estimate_on_other_gateways() {
    let fake = FakeProvider::start().await.unwrap();
    // "hello world" is two o200k tokens; Chat framing adds 3 per message and
    // 3 priming the reply.
    let messages = [Message::user("hello world")];
    let count = model(&fake)
        .count_tokens(ModelRequest::new(&messages))
        .await
        .unwrap();
    assert_eq!(count.input_tokens, 3 + 2 + 3);
    assert_eq!(count.to_string(), "8 tokens (tokenizer o200k_base)");
    assert!(!count.is_exact());

    // DeepSeek's tokenizer is not OpenAI's: a labelled estimate.
    let deepseek = OpenAiModel::builder("deepseek-chat")
        .gateway(Gateway::DeepSeek)
        .api_key("ds-key")
        .base_url(fake.url())
        .build()
        .unwrap();
    let count = deepseek
        .count_tokens(ModelRequest::new(&messages))
        .await
        .unwrap();
    assert_eq!(count.method, CountMethod::Estimate);
    assert_eq!(count.input_tokens, 3, "11 chars / 4, rounded up");
    assert!(
        fake.requests().is_empty(),
        "neither count calls the network"
    );
}
