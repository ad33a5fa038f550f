//! MCP both ways, offline: an agent with a tool is served over MCP's
//! Streamable HTTP transport (on loopback, with a bearer token naming the
//! caller), and a second agent reaches it through an `McpRegistry`, as it
//! would reach any MCP server. What the served agent does (its tool calls,
//! its tool's progress) arrives as `tool_progress` events.
//!
//! cargo run -p loomflow-examples --example mcp

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use loomflow::ToolHost;
use loomflow::journal::CallContext;
use loomflow::mcp::serve::{HttpAuth, McpService};
use loomflow::mcp::{McpRegistry, McpServerSpec};
use loomflow::prelude::*;
use serde_json::json;

/// Count the words of a text, slowly.
///
/// # Arguments
/// * `text` - The text.
#[tool]
async fn count_words(text: String) -> usize {
    let words = text.split_whitespace().count();
    for done in 1..=words {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if let Some(call) = CallContext::current() {
            call.progress(done as f64, Some(words as f64), None).await;
        }
    }
    words
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The served agent: it calls its tool, then answers.
    let counter = Agent::builder()
        .name("counter")
        .instructions("Count words.")
        .model(ScriptedModel::new([
            ScriptedTurn::tool_call("count_words", json!({"text": "the quick brown fox"})),
            ScriptedTurn::text("That is 4 words."),
        ]))
        .tool(count_words)
        .build()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/mcp", listener.local_addr()?);
    let tokens = [("t0k-demo".to_owned(), UserId::try_from("demo-user")?)];
    tokio::spawn(McpService::agent(counter).reexport_tools(true).serve_http(
        listener,
        HttpAuth::bearer(tokens),
        std::future::pending(),
    ));

    // The client side: any MCP server's tools, here the served agent's run
    // (`counter`) and its re-exported tool (`count_words`).
    let registry = McpRegistry::connect([
        McpServerSpec::http("words", &url).header("Authorization", "Bearer t0k-demo")
    ])
    .await?;
    for def in registry.list_tools().await?.iter() {
        println!("offered: {} (destructive: {})", def.name, def.destructive);
    }
    let agent = Agent::builder()
        .model(ScriptedModel::new([
            ScriptedTurn::tool_call("counter", json!({"prompt": "How many words?"}))
                .and_tool_call("count_words", json!({"text": "one two three"})),
            ScriptedTurn::text("Both answered."),
        ]))
        .tool_host(registry)
        .build()?;
    let mut events = agent.run("ask the remote agent").stream();
    while let Some(event) = events.next().await {
        match &event.kind {
            EventKind::ToolCall { call } => println!("→ {}({})", call.tool, call.args),
            EventKind::ToolProgress {
                tool,
                progress,
                message,
                ..
            } => println!(
                "  … {tool} #{progress}: {}",
                message.as_deref().unwrap_or("")
            ),
            EventKind::ToolResult { result } => println!("← {}", result.to_model_text()),
            EventKind::Completed { result } => println!("[completed] {}", result["output"]),
            _ => {}
        }
    }
    Ok(())
}
