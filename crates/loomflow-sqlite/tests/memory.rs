//! The SQLite memory: the shared contract, a file shared by two handles
//! (as by two processes), and continuity across reopening the file.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use loomflow::memory::{Episode, Fact, FactQuery, HashEmbedder, Memory, MemoryError, Recall};
use loomflow::{SessionId, UserId};
use loomflow_sqlite::SqliteMemory;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_memory_passes_the_memory_contract() {
    let dir = tempfile::tempdir().unwrap();
    let memory = SqliteMemory::open(dir.path().join("memory.db")).unwrap();
    loomflow_testkit::memory_contract::run_all(Arc::new(memory)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_database_passes_the_memory_contract() {
    let memory = SqliteMemory::open_in_memory().unwrap();
    loomflow_testkit::memory_contract::run_all(Arc::new(memory)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_handle_sees_the_first_ones_writes_in_recall() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = SqliteMemory::open(&path).unwrap();
    let b = SqliteMemory::open(&path).unwrap();
    let u = UserId::new("shared").unwrap();
    a.remember(&u, Episode::new("The wifi password is on the fridge", "ok"))
        .await
        .unwrap();
    // b builds its index now...
    let hits = b.recall(&u, &Recall::new("wifi password")).await.unwrap();
    assert_eq!(hits.len(), 1);
    // ...then a writes again and forgets the first: b must not serve stale rows.
    a.remember(&u, Episode::new("The wifi router is in the hall", "ok"))
        .await
        .unwrap();
    let hits = b.recall(&u, &Recall::new("wifi")).await.unwrap();
    assert_eq!(hits.len(), 2, "{hits:#?}");
    a.forget(&loomflow::memory::Forget::user(u.clone()))
        .await
        .unwrap();
    a.remember(&u, Episode::new("New flat, new fridge", "ok"))
        .await
        .unwrap();
    let hits = b
        .recall(&u, &Recall::new("wifi password fridge"))
        .await
        .unwrap();
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!(hits[0].input, "New flat, new fridge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_the_file_keeps_sessions_facts_and_recall() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bot.db");
    let u = UserId::new("alice").unwrap();
    let s = SessionId::new("chat-1").unwrap();
    {
        let m = SqliteMemory::open(&path).unwrap();
        m.remember(
            &u,
            Episode::new("My name is Alice", "Hi Alice!").session(s.clone()),
        )
        .await
        .unwrap();
        m.append_fact(&u, Fact::new("user", "name is", "Alice").unwrap())
            .await
            .unwrap();
    }
    let m = SqliteMemory::open(&path).unwrap();
    let history = m.session_messages(&u, &s, 10).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].text_content(), "Hi Alice!");
    let facts = m
        .query_facts(&u, &FactQuery::new().predicate("NameIs"))
        .await
        .unwrap();
    assert_eq!(facts[0].object, "Alice");
    assert_eq!(m.recall(&u, &Recall::new("name")).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_share_nothing_and_a_different_embedder_dimension_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("multi.db");
    let u = UserId::new("alice").unwrap();
    let support = SqliteMemory::open(&path).unwrap().with_namespace("support");
    let sales = SqliteMemory::open(&path).unwrap().with_namespace("sales");
    support
        .remember(
            &u,
            Episode::new("Printer jams on page two", "Try the rear tray."),
        )
        .await
        .unwrap();
    assert!(
        sales
            .recall(&u, &Recall::new("printer"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(sales.profile(&u).await.unwrap().episode_count, 0);

    let small = SqliteMemory::open(&path)
        .unwrap()
        .with_namespace("support")
        .with_embedder(Arc::new(HashEmbedder::new(64)));
    let err = small
        .remember(&u, Episode::new("x", "y"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            MemoryError::Dimensions {
                stored: 384,
                made: 64,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("use the embedder the store was built with"),
        "{err}"
    );
    // Nothing stored was lost.
    assert_eq!(support.profile(&u).await.unwrap().episode_count, 1);
}

/// Set in the re-executed test binary: the database file.
const CHILD_DB: &str = "LOOMFLOW_MEMORY_CHILD_DB";
/// Set in the re-executed test binary: the prompt.
const CHILD_PROMPT: &str = "LOOMFLOW_MEMORY_CHILD_PROMPT";

/// The child: one agent run on the SQLite memory, printing what the model
/// was sent. A no-op in a normal test run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_child() {
    let (Ok(db), Ok(prompt)) = (std::env::var(CHILD_DB), std::env::var(CHILD_PROMPT)) else {
        return;
    };
    let memory = Arc::new(SqliteMemory::open(&db).unwrap());
    let alice = UserId::new("alice").unwrap();
    if prompt.starts_with("My name") {
        memory
            .append_fact(&alice, Fact::new("user", "NameIs", "Alice").unwrap())
            .await
            .unwrap();
    }
    let model = loomflow_testkit::RecordingModel::new(loomflow::EchoModel::new());
    let agent = loomflow::Agent::builder()
        .instructions("Be brief.")
        .model(model.clone())
        .memory(memory)
        .build()
        .unwrap();
    agent
        .run(prompt)
        .user("alice")
        .session("chat")
        .await
        .unwrap();
    let sent: Vec<(String, String)> = model.calls()[0]
        .messages
        .iter()
        .map(|m| (format!("{:?}", m.role), m.text_content()))
        .collect();
    println!("SENT {}", serde_json::to_string(&sent).unwrap());
}

fn child(db: &std::path::Path, prompt: &str) -> Vec<(String, String)> {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "memory_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_DB, db)
        .env(CHILD_PROMPT, prompt)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("SENT ").map(|(_, json)| json))
        .unwrap_or_else(|| panic!("no SENT line in {stdout}"));
    serde_json::from_str(line).unwrap()
}

#[test]
fn a_fresh_process_continues_the_session_and_recalls_facts_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bot.db");
    // The first process stores a fact, then runs: no history yet.
    let first = child(&db, "My name is Alice");
    assert_eq!(
        first.len(),
        3,
        "instructions, the fact, the prompt: {first:?}"
    );
    let second = child(&db, "What is my name?");
    let texts: Vec<(&str, &str)> = second
        .iter()
        .map(|(r, t)| (r.as_str(), t.as_str()))
        .collect();
    assert_eq!(texts[0], ("System", "Be brief."));
    assert_eq!(texts[1].0, "System");
    assert!(
        texts[1]
            .1
            .starts_with("Known facts:\n- user name_is Alice (since "),
        "{:?}",
        texts[1]
    );
    assert_eq!(
        &texts[2..],
        [
            ("User", "My name is Alice"),
            ("Assistant", "Echo: My name is Alice"),
            ("User", "What is my name?")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloned_in_memory_handle_can_take_another_namespace() {
    let base = SqliteMemory::open_in_memory().unwrap();
    let kept = base.clone();
    let other = base.with_namespace("other");
    let u = UserId::new("alice").unwrap();
    other
        .remember(&u, Episode::new("only in other", "ok"))
        .await
        .unwrap();
    assert_eq!(other.profile(&u).await.unwrap().episode_count, 1);
    assert_eq!(
        kept.profile(&u).await.unwrap().episode_count,
        0,
        "namespaces share nothing"
    );
}
