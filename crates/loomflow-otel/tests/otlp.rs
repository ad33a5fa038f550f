//! OTLP export end to end: an agent run with two parallel tool calls and a
//! workflow with a fan-out, exported over HTTP/protobuf and over gRPC to a
//! real OTLP receiver (the official protocol definitions), then checked:
//! GenAI names and kinds, parent links, attributes, metrics, and no prompt
//! text.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use loomflow::prelude::*;
use loomflow_otel::{Otlp, Protocol};
use loomflow_testkit::otlp::{OtlpReceiver, ReceivedSpan, Transport};
use loomflow_testkit::usage;
use serde_json::json;

const PROMPT: &str = "Plan the secret heist for Friday";

/// Look up the weather.
///
/// # Arguments
/// * `city` - The city.
#[tool]
async fn get_weather(city: String) -> String {
    format!("Sunny in {city}")
}

/// What time is it.
#[tool]
fn get_time() -> String {
    "noon".into()
}

fn by_id(spans: &[ReceivedSpan]) -> BTreeMap<&str, &ReceivedSpan> {
    spans.iter().map(|s| (s.span_id.as_str(), s)).collect()
}

fn children<'a>(spans: &'a [ReceivedSpan], parent: &ReceivedSpan) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.parent_span_id == parent.span_id)
        .collect()
}

async fn export_and_check(protocol: Protocol) {
    let receiver = OtlpReceiver::start().await;
    let (endpoint, transport) = match protocol {
        Protocol::Grpc => (receiver.grpc_endpoint(), Transport::Grpc),
        _ => (receiver.http_endpoint(), Transport::Http),
    };
    let otlp = Otlp::builder()
        .endpoint(endpoint)
        .protocol(protocol)
        .service_name("otlp-test")
        .header("x-api-key", "k-123")
        .build()
        .unwrap();
    let telemetry = otlp.telemetry();

    let agent = Agent::builder()
        .name("assistant")
        .model(ScriptedModel::new([
            ScriptedTurn::tool_call("get_weather", json!({"city": "Paris"}))
                .and_tool_call("get_time", json!({}))
                .with_usage(usage(100, 20, 0.001)),
            ScriptedTurn::text("Sunny at noon.").with_usage(usage(150, 5, 0.001)),
        ]))
        .tool(get_weather)
        .tool(get_time)
        .telemetry(telemetry.clone())
        .build()
        .unwrap();
    let r = agent
        .run(PROMPT)
        .user("alice")
        .session("s-otlp")
        .await
        .unwrap();
    assert_eq!(r.output, "Sunny at noon.");

    let wf = loomflow_testkit::fan_out_workflow(telemetry.clone());
    wf.run(PROMPT).user("bob").await.unwrap();

    // The batch processor exports on flush; flush blocks, so off the runtime.
    let flushing = telemetry.clone();
    tokio::task::spawn_blocking(move || flushing.flush())
        .await
        .unwrap();
    let spans = receiver
        .wait_for_spans(Duration::from_secs(20), |s| s.len() >= 15)
        .await;
    assert!(spans.iter().all(|s| s.transport == transport));
    assert_eq!(
        spans.len(),
        15,
        "{:#?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let ids = by_id(&spans);

    // The agent: invoke_agent → two turns; the first holds the chat call
    // and both tools, side by side.
    let run = spans
        .iter()
        .find(|s| s.name == "invoke_agent assistant")
        .unwrap();
    assert_eq!(run.parent_span_id, "");
    assert_eq!(run.attr("loom.span.name"), Some("loom.run"));
    assert_eq!(run.attr("gen_ai.operation.name"), Some("invoke_agent"));
    assert_eq!(run.attr("gen_ai.agent.name"), Some("assistant"));
    assert_eq!(run.attr("loom.user_id"), Some("alice"));
    assert_eq!(run.attr("gen_ai.conversation.id"), Some("s-otlp"));
    assert_eq!(run.attributes["gen_ai.usage.input_tokens"], json!(250));
    assert_eq!(run.attributes["gen_ai.usage.output_tokens"], json!(25));
    assert_eq!(run.resource["service.name"], json!("otlp-test"));
    let turns = children(&spans, run);
    assert_eq!(turns.len(), 2);
    assert!(turns.iter().all(|t| t.name == "loom.turn"));
    let turn1 = turns
        .iter()
        .find(|t| t.attributes["loom.turn"] == json!(1))
        .unwrap();
    let mut first: Vec<&str> = children(&spans, turn1)
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    first.sort_unstable();
    assert_eq!(
        first,
        [
            "chat scripted",
            "execute_tool get_time",
            "execute_tool get_weather"
        ]
    );
    let chat = spans.iter().find(|s| s.name == "chat scripted").unwrap();
    assert_eq!(chat.kind, 3, "chat spans are CLIENT spans");
    assert_eq!(chat.attr("loom.span.name"), Some("loom.model.complete"));
    assert_eq!(chat.attr("gen_ai.request.model"), Some("scripted"));
    assert_eq!(chat.attributes["gen_ai.usage.input_tokens"], json!(100));
    let tool = spans
        .iter()
        .find(|s| s.name == "execute_tool get_weather")
        .unwrap();
    assert_eq!(tool.kind, 1);
    assert_eq!(tool.attr("loom.span.name"), Some("loom.tool"));
    assert_eq!(tool.attr("gen_ai.tool.name"), Some("get_weather"));
    assert!(tool.attr("gen_ai.tool.call.id").is_some());
    // No code locations, thread ids or tracing levels: only what we set.
    assert!(
        tool.attributes
            .keys()
            .all(|k| k.starts_with("gen_ai.") || k.starts_with("loom.")),
        "{:?}",
        tool.attributes
    );
    // Every agent span shares the run's trace.
    for s in spans.iter().filter(|s| s.trace_id == run.trace_id) {
        let mut at = s;
        while !at.parent_span_id.is_empty() {
            at = ids[at.parent_span_id.as_str()];
        }
        assert_eq!(at.span_id, run.span_id);
    }

    // The workflow: loom.workflow → four node steps; the Agent node's run
    // under its node.
    let root = spans.iter().find(|s| s.name == "loom.workflow").unwrap();
    assert_eq!(root.attr("loom.workflow.name"), Some("fan"));
    let nodes = children(&spans, root);
    let mut names: Vec<&str> = nodes
        .iter()
        .map(|n| n.attr("loom.workflow.node").unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["join", "left", "right", "split"]);
    assert!(nodes.iter().all(|n| n.name == "loom.workflow.step"));
    let left = nodes
        .iter()
        .find(|n| n.attr("loom.workflow.node") == Some("left"))
        .unwrap();
    let inner = children(&spans, left);
    assert_eq!(inner.len(), 1);
    assert_eq!(inner[0].name, "invoke_agent writer");
    assert_eq!(inner[0].attr("loom.user_id"), Some("bob"));
    assert_eq!(inner[0].trace_id, root.trace_id);

    // No prompt or answer text left the process.
    let everything = format!("{spans:?}");
    for secret in ["secret heist", "Sunny at noon", "Paris", "a poem"] {
        assert!(!everything.contains(secret), "{secret:?} was exported");
    }

    // Metrics: counters and histograms, the GenAI histogram with the
    // conventions' buckets, and never a session or run id.
    let points = receiver.points();
    assert!(points.iter().all(|p| p.transport == transport));
    let tokens: f64 = points
        .iter()
        .filter(|p| p.name == "loom.tokens.output")
        .map(|p| p.value)
        .sum();
    assert_eq!(tokens, 25.0);
    let duration = points
        .iter()
        .find(|p| p.name == "gen_ai.client.operation.duration")
        .unwrap();
    assert_eq!(duration.kind, "histogram");
    assert_eq!(duration.unit, "s");
    assert_eq!(duration.bounds.first(), Some(&0.01));
    assert_eq!(
        duration.attributes["gen_ai.request.model"],
        json!("scripted")
    );
    let tool_ms = points
        .iter()
        .find(|p| p.name == "loom.tool.duration_ms")
        .unwrap();
    assert_eq!(tool_ms.unit, "ms");
    for p in &points {
        for (key, value) in &p.attributes {
            assert!(!key.contains("session") && !key.contains("run_id") && !key.contains("user"));
            assert!(value != &json!("s-otlp") && value != &json!(r.run_id.as_str()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_an_otlp_receiver_over_http() {
    export_and_check(Protocol::HttpProtobuf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_an_otlp_receiver_over_grpc() {
    export_and_check(Protocol::Grpc).await;
}

#[test]
fn a_bad_protocol_or_a_missing_runtime_is_a_clear_error() {
    let err = "http/json".parse::<Protocol>().unwrap_err().to_string();
    assert!(err.contains("\"http/json\" is not supported"), "{err}");
    assert!(err.contains("OTEL_EXPORTER_OTLP_PROTOCOL"), "{err}");
    let err = Otlp::builder()
        .protocol(Protocol::Grpc)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs a tokio runtime"), "{err}");
}
