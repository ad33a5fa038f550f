//! Picking a provider by model string, counting a request's tokens before
//! sending it, and running an agent on it.
//!
//! Offline (the echo model):
//!   cargo run -p loomflow-examples --example providers
//! Against a provider, with its key in the environment:
//!   OPENAI_API_KEY=… cargo run -p loomflow-examples --example providers -- gpt-4.1-mini
//!   ANTHROPIC_API_KEY=… cargo run -p loomflow-examples --example providers -- claude-haiku-4-5
//!   GEMINI_API_KEY=… cargo run -p loomflow-examples --example providers -- gemini/gemini-2.5-flash

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use loomflow::model::{ModelRequest, resolve_model};
use loomflow::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "echo".into());
    // A missing key is a ConfigError that names the variable to set.
    let model = resolve_model(&name)?;

    let messages = [
        Message::system("Answer in one sentence."),
        Message::user("Why is the sky blue?"),
    ];
    let count = model.count_tokens(ModelRequest::new(&messages)).await?;
    println!("{name}: the question costs {count}");

    let agent = Agent::builder()
        .instructions("Answer in one sentence.")
        .model(model)
        .build()?;
    let result = agent.run("Why is the sky blue?").await?;
    println!("{}", result.output);
    println!(
        "{} tokens in, {} out, ${:.6}",
        result.tokens_in, result.tokens_out, result.cost_usd
    );
    Ok(())
}
