//! The Postgres journal on a real server: the shared contract, and an agent
//! and a workflow killed with SIGKILL and resumed by a new process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use loomflow::journal::Journal;
use loomflow_postgres::PostgresJournal;
use loomflow_testkit::crash::{self, Scenario};
use loomflow_testkit::postgres::TempPostgres;

const URL: &str = "LOOMFLOW_CRASH_PG";

/// The re-executed child of the crash tests (a no-op otherwise).
#[tokio::test(flavor = "multi_thread")]
async fn crash_child() {
    crash::child_main(|| async {
        let url = std::env::var(URL).unwrap();
        Arc::new(PostgresJournal::connect(&url).await.unwrap()) as Arc<dyn Journal>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_contract_holds() {
    let pg = TempPostgres::start();
    let j = PostgresJournal::connect(&pg.url()).await.unwrap();
    loomflow_testkit::journal_contract::run_all(Arc::new(j)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_url_names_the_server_without_the_password() {
    let err = PostgresJournal::connect("postgres://app:hunter2@127.0.0.1:1/x")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot connect to postgres://app:***@127.0.0.1:1/x"),
        "{err}"
    );
    assert!(!err.contains("hunter2"));
}

async fn killed_and_resumed(scenario: Scenario) {
    let pg = TempPostgres::start();
    let clean = pg.database("clean");
    let dir = tempfile::tempdir().unwrap();
    let expected = crash::run_scenario(
        scenario,
        Arc::new(PostgresJournal::connect(&clean).await.unwrap()),
        &dir.path().join("clean-side.txt"),
    )
    .await;
    let env = [(URL, pg.url())];
    let d = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || crash::kill_and_resume(scenario, &d, &env, &expected))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_killed_mid_run_resumes_in_a_new_process() {
    killed_and_resumed(Scenario::Agent).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workflow_killed_mid_graph_resumes_in_a_new_process() {
    killed_and_resumed(Scenario::Workflow).await;
}
