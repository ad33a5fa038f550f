//! A process-wide telemetry: runs without their own are recorded there (its
//! own test binary, since a process has one global subscriber).

#![allow(clippy::unwrap_used, clippy::panic)]

use loomflow::prelude::*;
use loomflow::telemetry::{InMemorySink, Telemetry};

#[tokio::test]
async fn install_global_records_runs_without_their_own_telemetry() {
    let global = InMemorySink::new();
    let telemetry = Telemetry::builder().sink(global.clone()).build();
    telemetry.install_global().unwrap();

    let plain = Agent::builder().model("echo").build().unwrap();
    plain.run("hi").user("ada").await.unwrap();
    let runs = global.named("loom.run");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].attributes.str("loom.user_id"), Some("ada"));

    // An agent with its own telemetry records there, not globally.
    let (own, mine) = Telemetry::in_memory();
    let traced = Agent::builder()
        .model("echo")
        .telemetry(own)
        .build()
        .unwrap();
    traced.run("hi").await.unwrap();
    assert_eq!(mine.named("loom.run").len(), 1);
    assert_eq!(global.named("loom.run").len(), 1);

    // A second global install is refused, with what to do instead.
    let err = Telemetry::console()
        .install_global()
        .unwrap_err()
        .to_string();
    assert!(err.contains("already installed"), "{err}");
    assert!(err.contains("AgentBuilder::telemetry"), "{err}");
}
