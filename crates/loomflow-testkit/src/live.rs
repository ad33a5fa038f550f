//! The live smoke test every provider crate runs against its real API.

use loomflow::model::registry::IntoModel;
use loomflow::{Agent, ConfigError};

/// Adds two integers.
#[loomflow::tool]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct Sum {
    total: i64,
}

/// Runs an agent with a tool and structured output against the real API
/// when `key_var` is set (the network is needed too), asserting the tool
/// was called, the typed answer is right and usage was priced. Without the
/// key it says on stderr why it skipped and returns. `model` builds the
/// model once the key is known to be there.
///
/// # Panics
/// When the live run fails: this is a test helper.
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub async fn agent_smoke_test<M: IntoModel>(
    key_var: &str,
    model: impl FnOnce() -> Result<M, ConfigError>,
) {
    if std::env::var_os(key_var).is_none() {
        // Straight to stderr: the test harness captures eprintln!.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "skipped: {key_var} is not set, so the live smoke test against the real API did not run"
        );
        return;
    }
    let agent = Agent::builder()
        .instructions("Use the add tool for arithmetic, then answer.")
        .model(model().expect("model from the environment"))
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
