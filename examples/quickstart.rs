//! The main job: an agent with two tools, run offline on a scripted model, its
//! events streamed to the terminal as they happen.
//!
//! cargo run -p loomflow-examples --example quickstart

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use loomflow::prelude::*;
use serde_json::json;

/// Look up the current weather for a city.
///
/// # Arguments
/// * `city` - The city, e.g. "Paris".
#[tool]
async fn get_weather(city: String) -> String {
    format!("Sunny, 22°C in {city}.")
}

/// Convert Celsius to Fahrenheit.
///
/// # Arguments
/// * `celsius` - The temperature in °C.
#[tool]
fn to_fahrenheit(celsius: f64) -> f64 {
    celsius * 9.0 / 5.0 + 32.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A scripted model plays the part of the LLM, so this runs with no key and
    // no network. Swap in `.model("gpt-4.1-mini")` once a provider is enabled.
    let model = ScriptedModel::new([
        ScriptedTurn::tool_call("get_weather", json!({"city": "Paris"}))
            .and_tool_call("to_fahrenheit", json!({"celsius": "22"})),
        ScriptedTurn::text("It is sunny in Paris: 22°C, which is 71.6°F."),
    ]);
    let agent = Agent::builder()
        .name("weather")
        .instructions("You are a weather assistant.")
        .model(model)
        .tool(get_weather)
        .tool(to_fahrenheit)
        // Every model call and tool call is journaled to .loomflow/journal.db,
        // the embedded default: a run that crashes resumes where it stopped
        // (`loomflow journal show SESSION --user alice` lists the steps).
        .journal(loomflow::open_journal(&"sqlite".parse()?).await?)
        .build()?;

    let mut events = agent
        .run("What's the weather in Paris?")
        .user("alice")
        .stream();
    while let Some(event) = events.next().await {
        match &event.kind {
            EventKind::ModelChunk { chunk } => match chunk {
                loomflow::ModelChunk::Text { text } => println!("[model_chunk] text {text:?}"),
                loomflow::ModelChunk::ToolCall { tool_call } => {
                    println!("[model_chunk] tool_call {}", tool_call.tool)
                }
                loomflow::ModelChunk::Finish { finish_reason, .. } => {
                    println!("[model_chunk] finish {finish_reason:?}")
                }
                loomflow::ModelChunk::Thinking { .. } => println!("[model_chunk] thinking"),
                _ => {}
            },
            EventKind::ToolCall { call } => println!("[tool_call]   {}({})", call.tool, call.args),
            EventKind::ToolResult { result } => {
                println!("[tool_result] {}", result.to_model_text())
            }
            EventKind::Completed { result } => println!(
                "[completed]   {} (turns: {}, user: {})",
                result["output"], result["turns"], result["user_id"]
            ),
            other => println!("[{}]", other.name()),
        }
    }
    Ok(())
}
