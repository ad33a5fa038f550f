//! Telemetry: the live span tree of a real run on stderr, the same spans in
//! a JSONL file, and (with `OTEL_EXPORTER_OTLP_ENDPOINT` set) exported over
//! OTLP to any OpenTelemetry backend.
//!
//! cargo run -p loomflow-examples --example telemetry
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 cargo run -p loomflow-examples --example telemetry

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use loomflow::prelude::*;
use loomflow::telemetry::{ConsoleSink, JsonlSink, Telemetry};
use loomflow::{Usage, otel::Otlp};
use serde_json::json;

/// Look up the current weather for a city.
///
/// # Arguments
/// * `city` - The city.
#[tool]
async fn get_weather(city: String) -> String {
    // A weather API's round trip.
    tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    format!("Sunny, 22°C in {city}.")
}

/// The local time in a city.
///
/// # Arguments
/// * `city` - The city.
#[tool]
fn local_time(city: String) -> String {
    format!("It is 14:05 in {city}.")
}

fn usage(input: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        ..Usage::default()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("spans.jsonl");

    // The console tree and a JSONL file, fed by one layer (same span ids).
    let mut builder = Telemetry::builder()
        .sink(ConsoleSink::stderr())
        .sink(JsonlSink::create(&file)?);
    // OTLP export when a collector is configured the standard way.
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        builder = Otlp::from_env()?.attach(builder);
    }
    let telemetry = builder.build();

    let agent = Agent::builder()
        .name("travel-assistant")
        .instructions("Answer briefly.")
        .model(ScriptedModel::new([
            // Two tools in one turn: they run concurrently, as sibling spans.
            ScriptedTurn::tool_call("get_weather", json!({"city": "Lisbon"}))
                .and_tool_call("local_time", json!({"city": "Lisbon"}))
                .with_usage(usage(412, 38)),
            ScriptedTurn::text("Sunny and 22°C; it is 14:05 in Lisbon.").with_usage(usage(530, 17)),
        ]))
        .tool(get_weather)
        .tool(local_time)
        .telemetry(telemetry.clone())
        .build()?;

    let result = agent
        .run("Weather and time in Lisbon?")
        .user("alice")
        .session("trip-42")
        .await?;
    println!("{}", result.output);
    telemetry.flushed().await;

    // The same spans, one JSON object per line (query them with jq).
    let lines = std::fs::read_to_string(&file)?;
    let spans: Vec<serde_json::Value> = lines
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let tools: Vec<&str> = spans
        .iter()
        .filter(|s| s["name"] == "loom.tool")
        .map(|s| s["attributes"]["gen_ai.tool.name"].as_str().unwrap())
        .collect();
    println!(
        "{} lines in {} (tools: {})",
        spans.len(),
        file.display(),
        tools.join(", ")
    );
    assert_eq!(tools.len(), 2);
    Ok(())
}
