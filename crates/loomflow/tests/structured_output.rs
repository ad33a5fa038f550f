//! Structured output: prompt directive, validation, retries, native path, enums.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use loomflow::Role;
use loomflow::prelude::*;
use loomflow_testkit::RecordingModel;
use serde::Deserialize;

#[derive(Debug, PartialEq, Deserialize, schemars::JsonSchema)]
struct Weather {
    city: String,
    temp_c: f64,
}

#[derive(Debug, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Lookup {
    Found {
        invoice_no: String,
        total_cents: u64,
    },
    NotFound {
        reason: String,
    },
}

#[tokio::test]
async fn valid_output_parses_into_the_type_with_fences_tolerated() {
    let model = RecordingModel::new(ScriptedModel::new([ScriptedTurn::text(
        "```json\n{\"city\": \"Tokyo\", \"temp_c\": 22.0}\n```",
    )]));
    let agent = Agent::builder()
        .instructions("Be precise.")
        .model(model.clone())
        .build()
        .unwrap();
    let r = agent
        .run("Weather in Tokyo: sunny, 22°C.")
        .output::<Weather>()
        .await
        .unwrap();
    assert_eq!(
        r.parsed,
        Some(Weather {
            city: "Tokyo".into(),
            temp_c: 22.0
        })
    );
    assert_eq!(r.output, "{\"city\": \"Tokyo\", \"temp_c\": 22.0}");
    let system = model.calls()[0].messages[0].text_content();
    assert!(
        system.starts_with("Be precise.\n\n---\n**STRUCTURED OUTPUT REQUIRED.**"),
        "{system}"
    );
    assert!(
        system.contains("\"temp_c\": {\n"),
        "schema is pretty-printed: {system}"
    );
    assert!(model.calls()[0].output_schema.is_none());
}

#[tokio::test]
async fn invalid_output_is_retried_with_the_validation_error() {
    let model = RecordingModel::new(ScriptedModel::new([
        ScriptedTurn::text("{\"city\": \"Oslo\"}"),
        ScriptedTurn::text("{\"city\": \"Oslo\", \"temp_c\": 3.5}"),
    ]));
    let agent = Agent::builder().model(model.clone()).build().unwrap();
    let r = agent
        .run("Oslo, 3.5 degrees")
        .output::<Weather>()
        .await
        .unwrap();
    assert_eq!(r.parsed.unwrap().temp_c, 3.5);
    assert_eq!(r.turns, 1);
    let retry = model.calls()[1].messages.clone();
    let feedback = retry.last().unwrap();
    assert_eq!(feedback.role, Role::User);
    let text = feedback.text_content();
    assert!(text.starts_with("Your previous response failed schema validation:\n- missing field `temp_c`\n\nReturn a corrected response"), "{text}");
    assert!(
        model.calls()[1].tools.is_empty(),
        "the retry is a plain call without tools"
    );
}

#[tokio::test]
async fn exhausted_retries_give_a_typed_error_holding_the_raw_text() {
    let agent = Agent::builder()
        .model(ScriptedModel::new([
            ScriptedTurn::text("sunny"),
            ScriptedTurn::text("still not json"),
            ScriptedTurn::text("nope"),
        ]))
        .output_validation_retries(2)
        .build()
        .unwrap();
    let err = agent.run("x").output::<Weather>().await.unwrap_err();
    let Error::OutputValidation(e) = err else {
        panic!("expected OutputValidation, got {err:?}")
    };
    assert_eq!(e.raw, "nope");
    assert_eq!(e.attempts, 3);
    assert!(
        e.cause.starts_with("not valid JSON: expected ident"),
        "{}",
        e.cause
    );
    assert_eq!(e.schema["properties"]["city"]["type"], "string");

    let agent = Agent::builder()
        .model(ScriptedModel::new([ScriptedTurn::text("no")]))
        .output_validation_retries(0)
        .build()
        .unwrap();
    let err = agent.run("x").output::<Weather>().await.unwrap_err();
    assert!(
        matches!(err, Error::OutputValidation(ref e) if e.attempts == 1),
        "{err}"
    );
}

#[tokio::test]
async fn enums_give_tagged_unions() {
    let agent = Agent::builder()
        .model(ScriptedModel::new([
            ScriptedTurn::text(r#"{"type": "not_found", "reason": "no such invoice"}"#),
            ScriptedTurn::text(r#"{"type": "found", "invoice_no": "A-1", "total_cents": 1250}"#),
        ]))
        .build()
        .unwrap();
    let a = agent.run("find A-0").output::<Lookup>().await.unwrap();
    assert_eq!(
        a.parsed,
        Some(Lookup::NotFound {
            reason: "no such invoice".into()
        })
    );
    let b = agent.run("find A-1").output::<Lookup>().await.unwrap();
    assert_eq!(
        b.parsed,
        Some(Lookup::Found {
            invoice_no: "A-1".into(),
            total_cents: 1250
        })
    );
}

#[tokio::test]
async fn agent_default_schema_applies_and_per_call_schema_wins() {
    let model = RecordingModel::new(ScriptedModel::new([
        ScriptedTurn::text(r#"{"city": "Rome", "temp_c": 30}"#),
        ScriptedTurn::text(r#"{"type": "not_found", "reason": "x"}"#),
    ]));
    let agent = Agent::builder()
        .model(model.clone())
        .output::<Weather>()
        .build()
        .unwrap();
    let r = agent.run("a").await.unwrap();
    assert_eq!(
        r.parsed,
        Some(serde_json::json!({"city": "Rome", "temp_c": 30}))
    );
    let r = agent.run("b").output::<Lookup>().await.unwrap();
    assert_eq!(r.parsed, Some(Lookup::NotFound { reason: "x".into() }));
    assert!(
        model.calls()[1].messages[0]
            .text_content()
            .contains("not_found")
    );
}

#[tokio::test]
async fn native_structured_output_skips_the_directive_and_sends_the_schema() {
    let model = RecordingModel::new(ScriptedModel::new([ScriptedTurn::text(
        r#"{"city": "Lima", "temp_c": 18}"#,
    )]))
    .with_native_structured_output();
    let agent = Agent::builder()
        .instructions("Extract.")
        .model(model.clone())
        .build()
        .unwrap();
    let r = agent.run("Lima 18C").output::<Weather>().await.unwrap();
    assert_eq!(r.parsed.unwrap().city, "Lima");
    let call = &model.calls()[0];
    assert_eq!(call.messages[0].text_content(), "Extract.");
    assert_eq!(
        call.output_schema.as_ref().unwrap()["properties"]["temp_c"]["type"],
        "number"
    );
}

#[tokio::test]
async fn interrupted_runs_skip_validation() {
    let agent = Agent::builder()
        .model(ScriptedModel::new([ScriptedTurn::tool_call(
            "missing",
            serde_json::json!({}),
        )]))
        .max_turns(1)
        .build()
        .unwrap();
    let r = agent.run("x").output::<Weather>().await.unwrap();
    assert!(r.interrupted);
    assert_eq!(r.parsed, None);
}
