//! The long-tail adapter against the fake provider: Gemini's own protocol
//! (streamed text with cached tokens, an agent with parallel calls whose
//! thought signature goes back on the next turn, native structured output,
//! each failure class) and an OpenAI-compatible provider (Together) through the
//! same adapter. Request bodies are snapshotted (insta).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use loomflow_core::model::{FinishReason, ModelChunk, ModelRequest};
use loomflow_core::{Agent, Effort, Message, Model, ModelError};
use loomflow_genai::GenaiModel;
use loomflow_model::model::retry::Retrying;
use loomflow_testkit::fake_provider::gemini::{self, Part};
use loomflow_testkit::fake_provider::{FakeProvider, Reply, openai};
use loomflow_testkit::weather;
use loomflow_testkit::{quick_retries, stream_chunks};
use serde_json::json;

const FLASH: &str = "gemini-2.5-flash";

fn gemini_model(fake: &FakeProvider) -> GenaiModel {
    GenaiModel::builder(format!("gemini/{FLASH}"))
        .api_key("gm-test-key")
        .base_url(format!("{}/v1beta", fake.url()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn gemini_streams_text_with_cached_tokens_and_cost() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(gemini::reply(
        FLASH,
        &[Part::text(&["Hel", "lo!"])],
        (1000, 3, 400, 0),
    ));
    let model = gemini_model(&fake);
    let out = stream_chunks(
        &model,
        ModelRequest::new(&[Message::system("Be brief."), Message::user("hi")]),
    )
    .await;
    let texts: Vec<&str> = out
        .iter()
        .filter_map(|c| match c {
            Ok(ModelChunk::Text { text }) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["Hel", "lo!"]);
    let Some(Ok(ModelChunk::Finish {
        finish_reason,
        usage,
    })) = out.last()
    else {
        panic!("no finish: {out:?}")
    };
    assert_eq!(*finish_reason, FinishReason::Stop);
    assert_eq!(
        (
            usage.input_tokens,
            usage.cached_input_tokens,
            usage.output_tokens
        ),
        (600, 400, 3)
    );
    // 600 × $0.30 + 400 × $0.03 + 3 × $2.50 per million.
    let expected = (600.0 * 0.30 + 400.0 * 0.03 + 3.0 * 2.50) / 1e6;
    assert!(
        (usage.cost_usd - expected).abs() < 1e-12,
        "{}",
        usage.cost_usd
    );

    let req = &fake.requests()[0];
    assert_eq!(
        req.path,
        format!("/v1beta/models/{FLASH}:streamGenerateContent")
    );
    assert_eq!(req.header("x-goog-api-key"), Some("gm-test-key"));
    insta::assert_json_snapshot!("gemini_text_request", req.body);
}

#[tokio::test]
async fn gemini_agent_runs_parallel_calls_and_sends_the_thought_signature_back() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(gemini::reply(
        FLASH,
        &[
            Part::Thought("Two cities, two calls.".into()),
            Part::calls(
                &[
                    ("weather", json!({"city": "Paris"})),
                    ("weather", json!({"city": "Oslo"})),
                ],
                Some("c2lnbmF0dXJlLTE="),
            ),
        ],
        (50, 10, 0, 30),
    ));
    fake.push(gemini::reply(
        FLASH,
        &[Part::text(&["Both ", "sunny."])],
        (90, 4, 0, 0),
    ));
    let agent = Agent::builder()
        .instructions("You report weather.")
        .model(gemini_model(&fake))
        .effort(Effort::Low)
        .tool(weather)
        .build()
        .unwrap();
    let result = agent.run("Paris and Oslo?").await.unwrap();
    assert_eq!(result.output, "Both sunny.");
    assert_eq!(result.tokens_out, 10 + 30 + 4, "thoughts count as output");

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0].body;
    assert!(
        first["generationConfig"]["thinkingConfig"].is_object(),
        "effort goes as a thinking budget: {first}"
    );
    let second = &requests[1].body;
    let model_turn = &second["contents"][1];
    assert_eq!(model_turn["role"], "model");
    assert_eq!(model_turn["parts"][0]["functionCall"]["name"], "weather");
    assert_eq!(
        model_turn["parts"][0]["thoughtSignature"],
        "c2lnbmF0dXJlLTE="
    );
    assert_eq!(
        model_turn["parts"][1]["functionCall"]["args"]["city"],
        "Oslo"
    );
    let answers = &second["contents"][2]["parts"];
    assert_eq!(answers[0]["functionResponse"]["name"], "weather");
    insta::assert_json_snapshot!("gemini_tool_turn_request", second);
}

#[derive(Debug, PartialEq, serde::Deserialize, schemars::JsonSchema)]
struct Forecast {
    city: String,
    temp_c: f64,
}

#[tokio::test]
async fn gemini_structured_output_is_native() {
    let fake = FakeProvider::start().await.unwrap();
    fake.push(gemini::reply(
        FLASH,
        &[Part::text(&["{\"city\": \"Oslo\", ", "\"temp_c\": -2.5}"])],
        (20, 9, 0, 0),
    ));
    let agent = Agent::builder()
        .instructions("Forecast.")
        .model(gemini_model(&fake))
        .build()
        .unwrap();
    let result = agent.run("Oslo").output::<Forecast>().await.unwrap();
    assert_eq!(
        result.parsed.unwrap(),
        Forecast {
            city: "Oslo".into(),
            temp_c: -2.5
        }
    );
    let body = &fake.requests()[0].body;
    assert_eq!(
        body["generationConfig"]["responseMimeType"],
        "application/json"
    );
    let system = body["systemInstruction"].to_string();
    assert!(!system.contains("STRUCTURED OUTPUT REQUIRED"), "{system}");
    insta::assert_json_snapshot!("gemini_structured_output_request", body);
}

#[tokio::test]
async fn gemini_rate_limit_is_retried_with_the_hint_and_auth_errors_are_not() {
    let fake = FakeProvider::start().await.unwrap();
    let limited = match gemini::error(
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for requests per minute.",
    ) {
        Reply::Json { status, body, .. } => Reply::Json {
            status,
            headers: vec![("retry-after".into(), "0".into())],
            body,
        },
        other => other,
    };
    fake.push(limited);
    fake.push(gemini::reply(FLASH, &[Part::text(&["ok"])], (5, 1, 0, 0)));
    let model = Retrying::new(gemini_model(&fake), quick_retries(3));
    let out = stream_chunks(&model, ModelRequest::new(&[Message::user("hi")])).await;
    assert!(out.iter().all(Result::is_ok), "{out:?}");
    assert_eq!(fake.requests().len(), 2);

    // Without the retry layer the classification is visible.
    fake.push(gemini::error(
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for requests per minute.",
    ));
    let out = stream_chunks(
        &gemini_model(&fake),
        ModelRequest::new(&[Message::user("hi")]),
    )
    .await;
    assert!(
        matches!(&out[..], [Err(ModelError::RateLimited { message, .. })] if message.contains("Quota exceeded")),
        "{out:?}"
    );

    for (status, kind) in [(401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED")] {
        fake.push(gemini::error(
            status,
            kind,
            "API key not valid. Please pass a valid API key.",
        ));
        let before = fake.requests().len();
        let out = stream_chunks(&model, ModelRequest::new(&[Message::user("hi")])).await;
        assert!(
            matches!(&out[..], [Err(ModelError::Authentication { message })] if message.contains("API key not valid")),
            "{out:?}"
        );
        assert_eq!(
            fake.requests().len(),
            before + 1,
            "auth errors are not retried"
        );
    }

    fake.push(gemini::error(
        400,
        "INVALID_ARGUMENT",
        "Request contains an invalid argument.",
    ));
    let out = stream_chunks(&model, ModelRequest::new(&[Message::user("hi")])).await;
    assert!(
        matches!(&out[..], [Err(ModelError::InvalidRequest { .. })]),
        "{out:?}"
    );

    fake.push(gemini::error(
        503,
        "UNAVAILABLE",
        "The model is overloaded.",
    ));
    fake.push(gemini::reply(FLASH, &[Part::text(&["back"])], (5, 1, 0, 0)));
    let out = stream_chunks(&model, ModelRequest::new(&[Message::user("hi")])).await;
    assert!(
        matches!(&out[0], Ok(ModelChunk::Text { text }) if text == "back"),
        "a 503 is retried: {out:?}"
    );
}

#[tokio::test]
async fn gemini_broken_streams_are_transient_errors() {
    let fake = FakeProvider::start().await.unwrap();
    let model = gemini_model(&fake);

    // The connection drops after the first event.
    fake.push(Reply::Sse {
        events: gemini::events(FLASH, &[Part::text(&["Hel", "lo"])], "STOP", (5, 2, 0, 0)),
        cut_after: Some(1),
    });
    let out = stream_chunks(&model, ModelRequest::new(&[Message::user("hi")])).await;
    assert!(
        matches!(&out[0], Ok(ModelChunk::Text { text }) if text == "Hel"),
        "{out:?}"
    );
    assert!(
        matches!(out.last(), Some(Err(e)) if e.is_retryable()),
        "a cut is transient: {out:?}"
    );

    // A chunk that is not JSON.
    fake.push(Reply::RawSse("data: {\"candidates\": [\n\n".into()));
    let out = stream_chunks(&model, ModelRequest::new(&[Message::user("hi")])).await;
    assert!(
        matches!(out.last(), Some(Err(e)) if e.is_retryable()),
        "a malformed chunk is transient: {out:?}"
    );

    // The server overloads mid-stream.
    let events = vec![
        gemini::event(FLASH, json!([{"text": "Partial"}]), None, (5, 0, 0, 0)),
        json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}).to_string(),
    ];
    fake.push(Reply::Sse {
        events,
        cut_after: None,
    });
    let out = stream_chunks(&model, ModelRequest::new(&[Message::user("hi")])).await;
    assert!(matches!(&out[0], Ok(ModelChunk::Text { .. })), "{out:?}");
    assert!(
        matches!(out.last(), Some(Err(ModelError::Transient { message, .. })) if message.contains("overloaded")),
        "{out:?}"
    );
}

#[tokio::test]
async fn together_speaks_chat_completions_through_the_same_adapter() {
    const LLAMA: &str = "meta-llama/Llama-3.3-70B-Instruct-Turbo";
    let fake = FakeProvider::start().await.unwrap();
    fake.push(openai::tool_calls(
        LLAMA,
        &[
            ("call_1", "weather", json!({"city": "Paris"})),
            ("call_2", "weather", json!({"city": "Oslo"})),
        ],
        (40, 12, 0),
    ));
    fake.push(openai::text(LLAMA, &["Both ", "sunny."], (70, 3, 0)));
    let model = GenaiModel::builder(format!("together_ai/{LLAMA}"))
        .api_key("tg-test")
        .base_url(format!("{}/v1", fake.url()))
        .build()
        .unwrap();
    assert!(!model.capabilities().native_structured_output);
    let agent = Agent::builder()
        .instructions("You report weather.")
        .model(model)
        .tool(weather)
        .build()
        .unwrap();
    let result = agent.run("Paris and Oslo?").await.unwrap();
    assert_eq!(result.output, "Both sunny.");
    assert_eq!(result.tokens_in, 40 + 70);

    let requests = fake.requests();
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(requests[0].authorization.as_deref(), Some("Bearer tg-test"));
    let tool_turn = &requests[1].body;
    let calls = &tool_turn["messages"][2]["tool_calls"];
    assert_eq!(calls[1]["id"], "call_2");
    assert_eq!(tool_turn["messages"][4]["tool_call_id"], "call_2");
    insta::assert_json_snapshot!("together_tool_turn_request", tool_turn);
}

#[test]
fn reference_model_strings_resolve_through_the_registry() {
    use loomflow_model::model::registry::{add_builtin, resolve_model};
    add_builtin(loomflow_genai::registrations());

    let ollama = resolve_model("ollama/llama3.2").unwrap();
    assert_eq!(ollama.name(), "ollama/llama3.2");

    let err = resolve_model("replicate/meta/llama-3-70b")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("not supported") && err.contains("litellm/"),
        "{err}"
    );

    if std::env::var("GEMINI_API_KEY").is_err() {
        let err = resolve_model("gemini/gemini-2.5-flash")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("set GEMINI_API_KEY"), "{err}");
    }
}
