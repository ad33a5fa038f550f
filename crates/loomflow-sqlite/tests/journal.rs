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

fn scope(user: &str, session: &str) -> Scope {
    Scope::new(user.try_into().unwrap(), session.try_into().unwrap())
}

fn run_record(epoch: u64) -> loomflow::journal::RunRecord {
    loomflow::journal::RunRecord {
        epoch,
        input: "null".into(),
        fingerprint: loomflow::journal::fingerprint("null"),
        started_at: chrono::Utc::now(),
        finished_at: None,
    }
}

/// Another process holding the file's write lock makes a call wait (on the
/// writer thread) until it lets go; the runtime's only thread keeps
/// running other tasks meanwhile, and nothing is lost.
#[tokio::test(flavor = "current_thread")]
async fn a_call_waits_for_another_writer_without_stalling_the_runtime() {
    for durability in [Durability::Full, Durability::Committed, Durability::Batched] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let journal = SqliteJournal::open_with(&path, durability).unwrap();
        let s = scope("alice", "locked");
        journal.start_run(&s, &run_record(1)).await.unwrap();
        journal.flush().await.unwrap();

        // "Another process": its own connection, holding the write lock.
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let other_path = path.clone();
        let other = std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(other_path).unwrap();
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            locked_tx.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
            conn.execute_batch("COMMIT").unwrap();
        });
        locked_rx.recv().unwrap();

        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        journal.record(&s, 1, "step", "[1]").await.unwrap();
        journal.finish_run(&s, 1).await.unwrap();
        journal.flush().await.unwrap();
        other.join().unwrap();
        ticker.abort();
        let ticks = ticks.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            ticks >= 10,
            "{durability:?}: the runtime thread was blocked while the file was locked ({ticks} ticks)"
        );
        let steps = journal.steps(&s, Some(1)).await.unwrap();
        assert_eq!(steps.len(), 1, "{durability:?}");
        assert_eq!(steps[0].value, "[1]");
        assert!(
            journal
                .last_run(&s)
                .await
                .unwrap()
                .unwrap()
                .finished_at
                .is_some()
        );
    }
}

/// Two journals on one file (as two processes would have) run agents at
/// once; each sees the other's runs and nothing is lost or refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_journals_share_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let a = Arc::new(SqliteJournal::open_with(&path, Durability::Batched).unwrap());
    let b = Arc::new(SqliteJournal::open_with(&path, Durability::Committed).unwrap());
    let mut tasks = Vec::new();
    for (name, journal) in [("a", a.clone()), ("b", b.clone())] {
        let agent = Agent::builder()
            .model(loomflow_testkit::ToolLoopModel::new("missing", 2))
            .journal(journal)
            .build()
            .unwrap();
        for i in 0..40 {
            let agent = agent.clone();
            tasks.push(tokio::spawn(async move {
                agent
                    .run("go")
                    .user("alice")
                    .session(format!("{name}-{i}"))
                    .await
                    .unwrap()
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    a.flush().await.unwrap();
    for name in ["a", "b"] {
        for i in 0..40 {
            let s = scope("alice", &format!("{name}-{i}"));
            // Read through the other journal: the writes are in the file.
            let other = if name == "a" { &b } else { &a };
            let run = other.last_run(&s).await.unwrap().unwrap();
            assert!(run.finished_at.is_some(), "{name}-{i} finished");
            let steps = other.steps(&s, Some(run.epoch)).await.unwrap();
            assert_eq!(
                steps.len(),
                5,
                "{name}-{i}: three model calls, two tool calls"
            );
        }
    }
}

/// A batched journal's uncommitted writes are committed when its last
/// clone is dropped: a reopened file has them.
#[tokio::test(flavor = "multi_thread")]
async fn dropping_a_batched_journal_commits_its_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let journal = SqliteJournal::open_with(&path, Durability::Batched).unwrap();
    let s = scope("alice", "dropped");
    journal.start_run(&s, &run_record(1)).await.unwrap();
    for i in 0..50 {
        journal
            .record(&s, 1, &format!("step_{i}"), "null")
            .await
            .unwrap();
    }
    journal.finish_run(&s, 1).await.unwrap();
    drop(journal);
    let conn = rusqlite_connection(&path);
    let steps: i64 = conn
        .query_row("SELECT count(*) FROM journal_steps", [], |r| r.get(0))
        .unwrap();
    let finished: Option<i64> = conn
        .query_row("SELECT finished_at FROM journal_runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(steps, 50);
    assert!(finished.is_some());
}
