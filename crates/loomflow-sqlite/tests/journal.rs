//! The SQLite journal: the shared contract in every durability mode, a run
//! killed with SIGKILL and resumed by a new process (agent and workflow,
//! with synced commits; an agent with WAL commits), and an unreadable row.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use loomflow::journal::{Journal, Scope};
use loomflow::prelude::*;
use loomflow::{Error, JournalError};
use loomflow_sqlite::{Durability, SqliteJournal};
use loomflow_testkit::crash::{self, Scenario};

const DB: &str = "LOOMFLOW_CRASH_SQLITE";
const MODE: &str = "LOOMFLOW_CRASH_SQLITE_MODE";

/// The re-executed child of the crash tests (a no-op otherwise).
#[tokio::test(flavor = "multi_thread")]
async fn crash_child() {
    crash::child_main(|| async {
        let mode = match std::env::var(MODE).as_deref() {
            Ok("committed") => Durability::Committed,
            _ => Durability::Full,
        };
        let path = std::env::var(DB).unwrap();
        Arc::new(SqliteJournal::open_with(path, mode).unwrap()) as Arc<dyn Journal>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_contract_holds_with_full_durability() {
    let dir = tempfile::tempdir().unwrap();
    let j = SqliteJournal::open(dir.path().join("j.db")).unwrap();
    loomflow_testkit::journal_contract::run_all(Arc::new(j)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_contract_holds_with_wal_commits() {
    let dir = tempfile::tempdir().unwrap();
    let j = SqliteJournal::open_with(dir.path().join("j.db"), Durability::Committed).unwrap();
    loomflow_testkit::journal_contract::run_all(Arc::new(j)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_contract_holds_with_batched_commits() {
    let dir = tempfile::tempdir().unwrap();
    let j = SqliteJournal::open_with(dir.path().join("j.db"), Durability::Batched).unwrap();
    loomflow_testkit::journal_contract::run_all(Arc::new(j)).await;
}

/// Runs `scenario` to completion on a fresh file, then kills and resumes it
/// in child processes on another.
async fn killed_and_resumed(scenario: Scenario, mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let clean = Arc::new(SqliteJournal::open(dir.path().join("clean.db")).unwrap());
    let expected = crash::run_scenario(scenario, clean, &dir.path().join("clean-side.txt")).await;
    let env = [
        (DB, dir.path().join("j.db").display().to_string()),
        (MODE, mode.to_owned()),
    ];
    let d = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || crash::kill_and_resume(scenario, &d, &env, &expected))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_killed_mid_run_resumes_in_a_new_process() {
    killed_and_resumed(Scenario::Agent, "full").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wal_commits_survive_the_process_being_killed() {
    killed_and_resumed(Scenario::Agent, "committed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workflow_killed_mid_graph_resumes_in_a_new_process() {
    killed_and_resumed(Scenario::Workflow, "full").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_with_unreadable_json_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let journal = Arc::new(SqliteJournal::open(&path).unwrap());
    let agent = Agent::builder()
        .model(loomflow_testkit::ToolLoopModel::new("missing", 0))
        .journal(journal.clone())
        .build()
        .unwrap();
    // A run that crashed after its first model call: epoch open, one step.
    let scope = Scope::new("mallory".try_into().unwrap(), "s".try_into().unwrap());
    agent.run("go").user("mallory").session("s").await.unwrap();
    let run = journal.last_run(&scope).await.unwrap().unwrap();
    let key = journal.steps(&scope, Some(1)).await.unwrap()[0].key.clone();
    drop(agent);
    drop(journal);
    // Reopen the run and damage the row behind the journal's back.
    let conn = rusqlite_connection(&path);
    conn.execute("UPDATE journal_runs SET finished_at = NULL", [])
        .unwrap();
    conn.execute("UPDATE journal_steps SET value = '{\"text\": tru'", [])
        .unwrap();
    drop(conn);

    let journal = Arc::new(SqliteJournal::open(&path).unwrap());
    let agent = Agent::builder()
        .model(loomflow_testkit::ToolLoopModel::new("missing", 0))
        .journal(journal.clone())
        .build()
        .unwrap();
    let err = agent
        .run("go")
        .user("mallory")
        .session("s")
        .await
        .unwrap_err();
    match &err {
        Error::Journal(JournalError::Corrupt {
            session,
            step,
            user,
            ..
        }) => {
            assert_eq!(session.as_str(), "s");
            assert_eq!(user.as_str(), Some("mallory"));
            assert_eq!(step, &key);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Nothing stored was lost: the row is still there for repair.
    let steps = journal.steps(&scope, Some(run.epoch)).await.unwrap();
    assert_eq!(steps[0].value, "{\"text\": tru");
}

fn rusqlite_connection(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}
