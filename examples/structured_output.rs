//! Structured output into a Rust type, with one schema-correction retry.
//!
//! cargo run -p loomflow-examples --example structured_output

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use loomflow::prelude::*;
use serde::Deserialize;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct WeatherReport {
    city: String,
    temp_c: f64,
    conditions: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The first answer misses a field; the agent sends the validation error
    // back and the second answer parses.
    let agent = Agent::builder()
        .instructions("Extract weather facts.")
        .model(ScriptedModel::new([
            ScriptedTurn::text(r#"{"city": "Tokyo", "temp_c": 22}"#),
            ScriptedTurn::text(
                "```json\n{\"city\": \"Tokyo\", \"temp_c\": 22, \"conditions\": \"sunny\"}\n```",
            ),
        ]))
        .build()?;
    let result = agent
        .run("Weather in Tokyo: sunny, 22°C.")
        .output::<WeatherReport>()
        .await?;
    let report = result.parsed.ok_or("no structured output")?;
    println!(
        "{} is {} at {}°C",
        report.city, report.conditions, report.temp_c
    );
    Ok(())
}
