//! Live smoke test against the real API. Runs only when `ANTHROPIC_API_KEY` is set
//! (the network is needed too); otherwise it prints why it skipped. The
//! default suite runs against the fake provider instead.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use loomflow_anthropic::AnthropicModel;
use loomflow_core::Agent;

/// Adds two integers.
#[loomflow_macros::tool(crate = "loomflow_core")]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct Sum {
    total: i64,
}

#[tokio::test]
async fn live_agent_with_a_tool_and_structured_output() {
    if std::env::var_os("ANTHROPIC_API_KEY").is_none() {
        // Straight to stderr: the test harness captures eprintln!.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "skipped: ANTHROPIC_API_KEY is not set, so the live smoke test against the real API did not run"
        );
        return;
    }
    let model = AnthropicModel::new("claude-haiku-4-5").expect("model from the environment");
    let agent = Agent::builder()
        .instructions("Use the add tool for arithmetic, then answer.")
        .model(model)
        .tool(add)
        .build()
        .unwrap();
    let r = agent
        .run("What is 1234 + 4321? Use the tool.")
        .output::<Sum>()
        .await
        .unwrap();
    assert_eq!(r.parsed.unwrap().total, 5555);
    assert!(r.turns >= 2, "the tool was called");
    assert!(r.tokens_in > 0 && r.cost_usd > 0.0);
}
