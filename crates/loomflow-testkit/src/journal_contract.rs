#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The contract every [`Journal`] backend passes: the same assertions for the
//! in-memory, SQLite and Postgres journals, tenant isolation included.
//!
//! Call `run` from a backend's tests with a fresh, empty journal.

use std::sync::Arc;

use loomflow::journal::{CheckpointRecord, Journal, JournalError, Prune, RunRecord, Scope};
use loomflow::{SessionId, UserId};

fn scope(user: &str, session: &str) -> Scope {
    let user = if user.is_empty() {
        UserId::anonymous()
    } else {
        UserId::new(user).unwrap()
    };
    Scope::new(user, SessionId::new(session).unwrap())
}

fn run(epoch: u64, input: &str) -> RunRecord {
    RunRecord {
        epoch,
        input: input.into(),
        fingerprint: loomflow::journal::fingerprint(input),
        started_at: chrono::Utc::now(),
        finished_at: None,
    }
}

fn checkpoint(id: &str, turn: u32) -> CheckpointRecord {
    CheckpointRecord {
        id: id.into(),
        turn,
        created_at: chrono::Utc::now(),
        payload: format!("{{\"turn\":{turn}}}"),
    }
}

/// Runs every contract check on `journal`, which must be empty.
pub async fn run_all(journal: Arc<dyn Journal>) {
    runs_and_epochs(journal.as_ref()).await;
    steps_first_record_wins(journal.as_ref()).await;
    users_with_the_same_session_are_isolated(journal.as_ref()).await;
    checkpoints_keep_the_newest(journal.as_ref()).await;
    signals_are_taken_once_into_the_journal(journal.as_ref()).await;
    prune_by_session_and_age(journal.as_ref()).await;
    concurrent_runs_all_land(journal).await;
}

async fn runs_and_epochs(j: &dyn Journal) {
    let s = scope("alice", "runs");
    assert_eq!(j.last_run(&s).await.unwrap(), None);
    j.start_run(&s, &run(1, "\"a\"")).await.unwrap();
    let err = j.start_run(&s, &run(1, "\"a\"")).await.unwrap_err();
    assert!(
        matches!(err, JournalError::Busy { epoch: 1, .. }),
        "a second start of epoch 1 is Busy, got {err:?}"
    );
    let last = j.last_run(&s).await.unwrap().unwrap();
    assert_eq!((last.epoch, last.input.as_str()), (1, "\"a\""));
    assert!(last.finished_at.is_none());
    j.finish_run(&s, 1).await.unwrap();
    assert!(j.last_run(&s).await.unwrap().unwrap().finished_at.is_some());
    j.start_run(&s, &run(2, "\"b\"")).await.unwrap();
    let runs = j.runs(&s).await.unwrap();
    assert_eq!(runs.iter().map(|r| r.epoch).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(j.last_run(&s).await.unwrap().unwrap().epoch, 2);
}

async fn steps_first_record_wins(j: &dyn Journal) {
    let s = scope("alice", "steps");
    j.start_run(&s, &run(1, "null")).await.unwrap();
    j.record(&s, 1, "model_call_1@aa", "{\"text\":\"one\"}")
        .await
        .unwrap();
    j.record(&s, 1, "tool_call_1_0@bb", "[1,2]").await.unwrap();
    j.record(&s, 1, "model_call_1@aa", "{\"text\":\"again\"}")
        .await
        .unwrap();
    j.record(&s, 2, "model_call_1@aa", "\"epoch two\"")
        .await
        .unwrap();
    j.flush().await.unwrap();
    let one = j.steps(&s, Some(1)).await.unwrap();
    let keys: Vec<_> = one
        .iter()
        .map(|r| (r.key.as_str(), r.value.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("model_call_1@aa", "{\"text\":\"one\"}"),
            ("tool_call_1_0@bb", "[1,2]")
        ]
    );
    assert_eq!(j.steps(&s, None).await.unwrap().len(), 3);
    assert_eq!(
        j.steps(&s, Some(2)).await.unwrap()[0].value,
        "\"epoch two\""
    );
    // Values come back byte for byte, even ones that do not parse: decoding
    // is the framework's job, so it can name the bad row.
    j.record(&s, 1, "broken@cc", "{not json").await.unwrap();
    j.flush().await.unwrap();
    let broken = j.steps(&s, Some(1)).await.unwrap();
    assert_eq!(broken.last().unwrap().value, "{not json");
}

async fn users_with_the_same_session_are_isolated(j: &dyn Journal) {
    let alice = scope("alice", "shared");
    let bob = scope("bob", "shared");
    let anon = scope("", "shared");
    j.start_run(&alice, &run(1, "\"a\"")).await.unwrap();
    j.record(&alice, 1, "k@1", "\"alice's\"").await.unwrap();
    j.put_checkpoint(&alice, &checkpoint("ckpt_a", 1), 5)
        .await
        .unwrap();
    j.send_signal(&alice, "approve", "true").await.unwrap();
    j.flush().await.unwrap();
    for other in [&bob, &anon] {
        assert_eq!(j.last_run(other).await.unwrap(), None);
        assert!(j.runs(other).await.unwrap().is_empty());
        assert!(j.steps(other, None).await.unwrap().is_empty());
        assert!(j.checkpoints(other, 10).await.unwrap().is_empty());
        assert_eq!(j.checkpoint(other, None).await.unwrap(), None);
        assert_eq!(j.checkpoint(other, Some("ckpt_a")).await.unwrap(), None);
        assert_eq!(
            j.take_signal(other, "approve", 1, "signal:approve")
                .await
                .unwrap(),
            None
        );
    }
    // Bob's epoch 1 is his own.
    j.start_run(&bob, &run(1, "\"b\"")).await.unwrap();
    assert_eq!(j.last_run(&alice).await.unwrap().unwrap().input, "\"a\"");
    let pruned = j
        .prune(&Prune {
            older_than: None,
            scope: Some(bob.clone()),
        })
        .await
        .unwrap();
    assert_eq!(pruned.runs, 1);
    assert_eq!(j.steps(&alice, None).await.unwrap().len(), 1);
    assert_eq!(
        j.take_signal(&alice, "approve", 1, "signal:approve")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
}

async fn checkpoints_keep_the_newest(j: &dyn Journal) {
    let s = scope("carol", "ckpt");
    assert_eq!(j.checkpoint(&s, None).await.unwrap(), None);
    for turn in 1..=4 {
        j.put_checkpoint(&s, &checkpoint(&format!("ckpt_{turn}"), turn), 3)
            .await
            .unwrap();
    }
    j.flush().await.unwrap();
    let listed = j.checkpoints(&s, 10).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|c| (c.id.as_str(), c.turn)).collect();
    assert_eq!(ids, [("ckpt_4", 4), ("ckpt_3", 3), ("ckpt_2", 2)]);
    assert_eq!(j.checkpoints(&s, 1).await.unwrap().len(), 1);
    let latest = j.checkpoint(&s, None).await.unwrap().unwrap();
    assert_eq!(
        (latest.id.as_str(), latest.payload.as_str()),
        ("ckpt_4", "{\"turn\":4}")
    );
    let older = j.checkpoint(&s, Some("ckpt_2")).await.unwrap().unwrap();
    assert_eq!(older.payload, "{\"turn\":2}");
    assert_eq!(j.checkpoint(&s, Some("ckpt_1")).await.unwrap(), None);
}

async fn signals_are_taken_once_into_the_journal(j: &dyn Journal) {
    let s = scope("dave", "signals");
    j.start_run(&s, &run(1, "null")).await.unwrap();
    assert_eq!(j.take_signal(&s, "go", 1, "signal:go").await.unwrap(), None);
    j.send_signal(&s, "go", "{\"ok\":false}").await.unwrap();
    j.send_signal(&s, "go", "{\"ok\":true}").await.unwrap();
    j.send_signal(&s, "other", "1").await.unwrap();
    let got = j.take_signal(&s, "go", 1, "signal:go").await.unwrap();
    assert_eq!(
        got.as_deref(),
        Some("{\"ok\":true}"),
        "the newest signal wins"
    );
    assert_eq!(
        j.take_signal(&s, "go", 1, "signal:go#2").await.unwrap(),
        None,
        "a signal is taken once"
    );
    j.flush().await.unwrap();
    let steps = j.steps(&s, Some(1)).await.unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(
        (steps[0].key.as_str(), steps[0].value.as_str()),
        ("signal:go", "{\"ok\":true}")
    );
}

async fn prune_by_session_and_age(j: &dyn Journal) {
    assert_eq!(
        j.prune(&Prune::default()).await.unwrap_err(),
        JournalError::UnboundedPrune
    );
    let old = scope("erin", "old");
    let new = scope("erin", "new");
    j.start_run(&old, &run(1, "null")).await.unwrap();
    j.record(&old, 1, "a@1", "1").await.unwrap();
    j.record(&old, 1, "b@1", "2").await.unwrap();
    j.finish_run(&old, 1).await.unwrap();
    j.flush().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let cut = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    j.start_run(&new, &run(1, "null")).await.unwrap();
    j.record(&new, 1, "a@1", "1").await.unwrap();
    j.put_checkpoint(&new, &checkpoint("ckpt_new", 1), 5)
        .await
        .unwrap();
    j.flush().await.unwrap();
    let pruned = j
        .prune(&Prune {
            older_than: Some(cut),
            scope: None,
        })
        .await
        .unwrap();
    assert!(pruned.runs >= 1 && pruned.steps >= 2, "{pruned:?}");
    assert!(j.runs(&old).await.unwrap().is_empty());
    assert!(j.steps(&old, None).await.unwrap().is_empty());
    assert_eq!(j.runs(&new).await.unwrap().len(), 1);
    assert_eq!(j.steps(&new, None).await.unwrap().len(), 1);
    assert_eq!(j.checkpoints(&new, 5).await.unwrap().len(), 1);
}

/// 64 runs on as many tasks at once, each starting its epoch, recording
/// five steps and finishing: once flushed, every run and step is there, in
/// order, under its own session.
async fn concurrent_runs_all_land(j: Arc<dyn Journal>) {
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let j = j.clone();
            tokio::spawn(async move {
                let s = scope("carol", &format!("concurrent-{i}"));
                j.start_run(&s, &run(1, "null")).await.unwrap();
                for step in 0..5 {
                    let value = format!("[{i},{step}]");
                    j.record(&s, 1, &format!("step_{step}"), &value)
                        .await
                        .unwrap();
                    tokio::task::yield_now().await;
                }
                j.finish_run(&s, 1).await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    j.flush().await.unwrap();
    for i in 0..64 {
        let s = scope("carol", &format!("concurrent-{i}"));
        let steps = j.steps(&s, Some(1)).await.unwrap();
        let got: Vec<_> = steps
            .iter()
            .map(|r| (r.key.as_str(), r.value.as_str()))
            .collect();
        let want: Vec<_> = (0..5)
            .map(|step| (format!("step_{step}"), format!("[{i},{step}]")))
            .collect();
        let want: Vec<_> = want.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, want, "session concurrent-{i}");
        let last = j.last_run(&s).await.unwrap().unwrap();
        assert!(
            last.finished_at.is_some(),
            "session concurrent-{i} finished"
        );
    }
}
