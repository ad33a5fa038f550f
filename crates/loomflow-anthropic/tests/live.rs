//! Live smoke test against the real API. Runs only when `ANTHROPIC_API_KEY`
//! is set (the network is needed too); otherwise it prints why it skipped.
//! The default suite runs against the fake provider instead.

use loomflow_anthropic::AnthropicModel;

#[tokio::test]
async fn live_agent_with_a_tool_and_structured_output() {
    loomflow_testkit::live::agent_smoke_test("ANTHROPIC_API_KEY", || {
        AnthropicModel::new("claude-haiku-4-5")
    })
    .await;
}
