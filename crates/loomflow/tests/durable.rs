//! Durable runs on the in-memory journal: exact step keys, resume without
//! re-executing, epochs, tenancy, corruption, checkpoints, signals,
//! idempotency keys, and workflows. The SQLite and Postgres crates repeat
//! the crash tests with real processes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use loomflow::journal::{
    CallContext, CheckpointRef, InMemoryJournal, Journal, JournalError, Scope, wait_for_signal,
};
use loomflow::model::{ChunkStream, Completion, ModelRequest};
use loomflow::prelude::*;
use loomflow::tool::{ApprovalDecision, ApprovalHandler, PermissionDecision, Permissions};
use loomflow::{Error, ModelError, SessionId, ToolCall, UserId};
use loomflow_testkit::ToolLoopModel;
use serde_json::json;

/// A tool that counts its executions and reports its idempotency key.
#[derive(Clone)]
struct Counter {
    def: Arc<loomflow::ToolDef>,
    runs: Arc<AtomicUsize>,
    keys: Arc<Mutex<Vec<String>>>,
}

impl Default for Counter {
    fn default() -> Self {
        Self {
            def: Arc::new(loomflow::ToolDef {
                name: "bump".into(),
                description: "Counts.".into(),
                input_schema: json!({"type": "object", "properties": {"n": {"type": "integer"}}}),
                server: None,
                destructive: false,
                ends_turn: false,
            }),
            runs: Arc::default(),
            keys: Arc::default(),
        }
    }
}

#[async_trait]
impl loomflow::Tool for Counter {
    fn definition(&self) -> &loomflow::ToolDef {
        &self.def
    }

    async fn call(
        &self,
        args: &serde_json::Value,
    ) -> Result<serde_json::Value, loomflow::ToolError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let cx = CallContext::current().expect("a tool call has a CallContext");
        self.keys.lock().unwrap().push(cx.idempotency_key());
        Ok(json!(format!("bumped {}", args["n"])))
    }
}

/// Fails the first time it is asked for its `fail_at`-th reply, then
/// delegates.
struct FailOnce {
    inner: ToolLoopModel,
    fail_at: usize,
    seen: AtomicUsize,
}

#[async_trait]
impl Model for FailOnce {
    fn name(&self) -> &str {
        "fail-once"
    }
    async fn stream(&self, r: ModelRequest<'_>) -> Result<ChunkStream, ModelError> {
        self.inner.stream(r).await
    }
    async fn complete(&self, r: ModelRequest<'_>) -> Result<Completion, ModelError> {
        if self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            return Err(ModelError::other("provider went away"));
        }
        self.inner.complete(r).await
    }
}

fn alice() -> UserId {
    UserId::new("alice").unwrap()
}

fn scope(user: &str, session: &str) -> Scope {
    Scope::new(UserId::new(user).unwrap(), SessionId::new(session).unwrap())
}

/// Step keys without their fingerprints, in recording order.
async fn step_names(j: &dyn Journal, s: &Scope, epoch: Option<u64>) -> Vec<String> {
    j.steps(s, epoch)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            r.key
                .split('/')
                .map(|part| part.split('@').next().unwrap().to_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect()
}

#[tokio::test]
async fn every_model_call_and_tool_dispatch_is_a_fingerprinted_step() {
    let journal = Arc::new(InMemoryJournal::new());
    let tool = Counter::default();
    let agent = Agent::builder()
        .model(ToolLoopModel::new("bump", 2))
        .tool(tool.clone())
        .journal(journal.clone())
        .build()
        .unwrap();
    let r = agent.run("go").user("alice").session("s1").await.unwrap();
    assert_eq!(r.output, "done: bumped 0 | bumped 1");
    let s = scope("alice", "s1");
    assert_eq!(
        step_names(journal.as_ref(), &s, Some(1)).await,
        [
            "model_call_1",
            "tool_call_1_0",
            "model_call_2",
            "tool_call_2_0",
            "model_call_3"
        ]
    );
    for step in journal.steps(&s, None).await.unwrap() {
        let (_, fp) = step.key.split_once('@').unwrap();
        assert_eq!(fp.len(), 16, "{}", step.key);
        assert!(fp.chars().all(|c| c.is_ascii_hexdigit()));
        serde_json::from_str::<serde_json::Value>(&step.value).unwrap();
    }
    let run = journal.last_run(&s).await.unwrap().unwrap();
    assert_eq!(run.epoch, 1);
    assert!(run.finished_at.is_some());
}

#[tokio::test]
async fn a_failed_run_resumes_without_re_executing_recorded_steps() {
    let journal = Arc::new(InMemoryJournal::new());
    let tool = Counter::default();
    let inner = ToolLoopModel::new("bump", 3);
    let model = Arc::new(FailOnce {
        inner: inner.clone(),
        fail_at: 3,
        seen: AtomicUsize::new(0),
    });
    let agent = Agent::builder()
        .model(model as Arc<dyn Model>)
        .tool(tool.clone())
        .journal(journal.clone())
        .build()
        .unwrap();
    let err = agent
        .run("go")
        .user("alice")
        .session("s1")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Model(_)), "{err}");
    assert_eq!(tool.runs.load(Ordering::SeqCst), 2);
    assert_eq!(inner.made.load(Ordering::SeqCst), 2);
    let keys_before = tool.keys.lock().unwrap().clone();

    // The same session and input continue the unfinished epoch.
    let r = agent.run("go").user("alice").session("s1").await.unwrap();
    assert_eq!(r.output, "done: bumped 0 | bumped 1 | bumped 2");
    assert_eq!(r.turns, 4);
    assert_eq!(r.tokens_in, 40, "replayed turns still count toward usage");
    assert_eq!(
        tool.runs.load(Ordering::SeqCst),
        3,
        "tools 1 and 2 replayed"
    );
    assert_eq!(
        inner.made.load(Ordering::SeqCst),
        4,
        "calls 1 and 2 replayed"
    );
    assert_eq!(journal.runs(&scope("alice", "s1")).await.unwrap().len(), 1);

    // Idempotency keys are distinct per call.
    let keys = tool.keys.lock().unwrap().clone();
    assert_eq!(&keys[..2], &keys_before[..]);
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|k| k.starts_with("idem_") && k.len() == 37));
    assert_ne!(keys[0], keys[1]);
}

#[tokio::test]
async fn a_finished_run_is_not_replayed_into_the_next_request() {
    let journal = Arc::new(InMemoryJournal::new());
    let model = ToolLoopModel::new("bump", 0);
    let agent = Agent::builder()
        .model(model.clone())
        .journal(journal.clone())
        .build()
        .unwrap();
    for _ in 0..2 {
        agent.run("same").user("alice").session("s").await.unwrap();
    }
    assert_eq!(model.made.load(Ordering::SeqCst), 2);
    let runs = journal.runs(&scope("alice", "s")).await.unwrap();
    assert_eq!(runs.iter().map(|r| r.epoch).collect::<Vec<_>>(), [1, 2]);

    // resume() replays the last run, finished or not, from its recorded input.
    let again = agent.resume("s").user("alice").await.unwrap();
    assert_eq!(again.output, "done: ");
    assert_eq!(model.made.load(Ordering::SeqCst), 2, "nothing re-executed");

    let err = agent.resume("nope").user("alice").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "nothing to resume: session `nope` has no journaled run for user alice; start one with agent.run(input).session(…)"
    );
}

#[tokio::test]
async fn two_users_with_one_session_id_never_share_steps() {
    let journal = Arc::new(InMemoryJournal::new());
    let tool = Counter::default();
    let model = Arc::new(FailOnce {
        inner: ToolLoopModel::new("bump", 1),
        fail_at: 2,
        seen: AtomicUsize::new(0),
    });
    let agent = Agent::builder()
        .model(model as Arc<dyn Model>)
        .tool(tool.clone())
        .journal(journal.clone())
        .checkpoints(5)
        .build()
        .unwrap();
    // Alice's run fails after her tool ran: her epoch stays open.
    agent
        .run("go")
        .user("alice")
        .session("shared")
        .await
        .unwrap_err();
    assert_eq!(tool.runs.load(Ordering::SeqCst), 1);
    // Bob, same session id and input: nothing of Alice's is replayed.
    agent.run("go").user("bob").session("shared").await.unwrap();
    assert_eq!(tool.runs.load(Ordering::SeqCst), 2, "bob's tool ran");
    let bob_keys = tool.keys.lock().unwrap().clone();
    assert_ne!(bob_keys[0], bob_keys[1], "idempotency keys are per user");
    let (a, b) = (scope("alice", "shared"), scope("bob", "shared"));
    assert_eq!(step_names(journal.as_ref(), &a, None).await.len(), 2);
    assert_eq!(step_names(journal.as_ref(), &b, None).await.len(), 3);
    let bob_ckpts = agent
        .checkpoints(&UserId::new("bob").unwrap(), &b.session, 10)
        .await
        .unwrap();
    let alice_ckpts = agent.checkpoints(&alice(), &a.session, 10).await.unwrap();
    assert_eq!(bob_ckpts.len(), 2);
    assert_eq!(alice_ckpts.len(), 1);
    assert!(
        bob_ckpts
            .iter()
            .all(|c| !alice_ckpts.iter().any(|a| a.id == c.id))
    );
}

#[tokio::test]
async fn an_unreadable_step_is_a_typed_error_naming_session_and_step() {
    let journal = Arc::new(InMemoryJournal::new());
    let model = Arc::new(FailOnce {
        inner: ToolLoopModel::new("bump", 1),
        fail_at: 2,
        seen: AtomicUsize::new(0),
    });
    let tool = Counter::default();
    let agent = Agent::builder()
        .model(model as Arc<dyn Model>)
        .tool(tool.clone())
        .journal(journal.clone())
        .build()
        .unwrap();
    agent
        .run("go")
        .user("alice")
        .session("s")
        .await
        .unwrap_err();
    // Corrupt the recorded tool step in place.
    let s = scope("alice", "s");
    let steps = journal.steps(&s, Some(1)).await.unwrap();
    let tool_key = steps[1].key.clone();
    assert!(tool_key.starts_with("tool_call_1_0@"));
    let broken = InMemoryJournal::new();
    broken
        .start_run(&s, &journal.runs(&s).await.unwrap()[0])
        .await
        .unwrap();
    broken
        .record(&s, 1, &steps[0].key, &steps[0].value)
        .await
        .unwrap();
    broken
        .record(&s, 1, &tool_key, "{\"result\": ")
        .await
        .unwrap();
    let agent = Agent::builder()
        .model(ToolLoopModel::new("bump", 1))
        .tool(tool.clone())
        .journal(Arc::new(broken))
        .build()
        .unwrap();
    let err = agent
        .run("go")
        .user("alice")
        .session("s")
        .await
        .unwrap_err();
    match &err {
        Error::Journal(JournalError::Corrupt { session, step, .. }) => {
            assert_eq!(session.as_str(), "s");
            assert_eq!(step, &tool_key);
        }
        other => panic!("expected a corrupt-journal error, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("of session `s` (user alice) is unreadable")
    );
    assert_eq!(
        tool.runs.load(Ordering::SeqCst),
        1,
        "not silently re-executed"
    );
}

#[tokio::test]
async fn checkpoints_resume_the_latest_and_fork_from_an_older_one() {
    let journal = Arc::new(InMemoryJournal::new());
    let model = ToolLoopModel::new("bump", 2);
    let agent = Agent::builder()
        .model(model.clone())
        .tool(Counter::default())
        .journal(journal.clone())
        .checkpoints(10)
        .build()
        .unwrap();
    let first = agent.run("go").user("alice").session("c").await.unwrap();
    let list = agent
        .checkpoints(&alice(), &first.session_id, 10)
        .await
        .unwrap();
    assert_eq!(list.iter().map(|c| c.turn).collect::<Vec<_>>(), [3, 2, 1]);
    assert!(list.iter().all(|c| c.id.starts_with("ckpt_")));

    // Latest: the same session, the transcript restored, the turn count and
    // usage carried on.
    let on = agent
        .resume("c")
        .user("alice")
        .from_checkpoint(CheckpointRef::Latest)
        .input("and then?")
        .await
        .unwrap();
    assert_eq!(on.session_id.as_str(), "c");
    assert_eq!(on.turns, 4);
    assert_eq!(on.tokens_in, 40);
    assert_eq!(on.output, "done: bumped 0 | bumped 1");

    // Older: a new session, the original left alone.
    let oldest = list.last().unwrap().id.clone();
    let fork = agent
        .resume("c")
        .user("alice")
        .from_checkpoint(CheckpointRef::Id(oldest))
        .await
        .unwrap();
    assert_ne!(fork.session_id.as_str(), "c");
    assert_eq!(fork.output, "done: bumped 0 | bumped 1");
    assert_eq!(fork.turns, 3, "from turn 1, two more turns");
    let forked = agent
        .checkpoints(&alice(), &fork.session_id, 10)
        .await
        .unwrap();
    assert_eq!(
        forked.last().unwrap().turn,
        1,
        "the fork starts from the copy"
    );
    let original = agent
        .checkpoints(&alice(), &first.session_id, 10)
        .await
        .unwrap();
    assert_eq!(original.len(), 4, "three from the run, one from the resume");

    let err = agent
        .resume("c")
        .user("bob")
        .from_checkpoint(CheckpointRef::Latest)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Journal(JournalError::CheckpointNotFound { .. })),
        "bob cannot resume alice's checkpoint: {err:?}"
    );
}

/// Asks for every call, parking the run until a person answers.
struct ParkUntilSignalled;

#[async_trait]
impl Permissions for ParkUntilSignalled {
    async fn check(&self, _call: &ToolCall, _user: &UserId) -> PermissionDecision {
        PermissionDecision::Ask(Some("needs a person".into()))
    }
}

#[async_trait]
impl ApprovalHandler for ParkUntilSignalled {
    async fn approve(&self, call: &ToolCall, _reason: Option<&str>) -> ApprovalDecision {
        match wait_for_signal(&format!("approve:{}", call.id), None).await {
            Ok(answer) if answer["approved"] == true => ApprovalDecision::Allow,
            Ok(_) => ApprovalDecision::Deny(Some("a person said no".into())),
            Err(e) => ApprovalDecision::Deny(Some(e.to_string())),
        }
    }
}

#[tokio::test]
async fn an_approval_parks_the_run_until_a_signal_across_a_restart() {
    let journal: Arc<dyn Journal> = Arc::new(InMemoryJournal::new());
    let tool = Counter::default();
    let build = || {
        Agent::builder()
            .model(ToolLoopModel::new("bump", 1))
            .tool(tool.clone())
            .permissions(ParkUntilSignalled)
            .approval_handler(ParkUntilSignalled)
            .journal(journal.clone())
            .build()
            .unwrap()
    };
    // The first "process" parks, and is stopped while parked.
    let parked = build().run("go").user("alice").session("hitl");
    let stopped = tokio::time::timeout(Duration::from_millis(300), parked).await;
    assert!(stopped.is_err(), "the run waits for a person");
    assert_eq!(tool.runs.load(Ordering::SeqCst), 0);

    // The answer arrives while no run is waiting.
    let s = scope("alice", "hitl");
    let steps = journal.steps(&s, Some(1)).await.unwrap();
    let call: Completion = serde_json::from_str(&steps[0].value).unwrap();
    let name = format!("approve:{}", call.tool_calls[0].id);
    let agent = build();
    agent
        .signal(&alice(), &s.session, &name, json!({"approved": true}))
        .await
        .unwrap();

    // A new "process" resumes, finds the answer, and finishes.
    let r = agent.resume("hitl").user("alice").await.unwrap();
    assert_eq!(r.output, "done: bumped 0");
    assert_eq!(tool.runs.load(Ordering::SeqCst), 1);
    let names = step_names(journal.as_ref(), &s, Some(1)).await;
    // The approval ran inside the tool's step, so its answer is journaled
    // under it.
    assert_eq!(
        names,
        [
            "model_call_1".to_owned(),
            format!("tool_call_1_0/signal:{name}"),
            "tool_call_1_0".to_owned(),
            "model_call_2".to_owned()
        ]
    );
}

#[tokio::test]
async fn a_live_signal_wakes_a_parked_run() {
    let journal: Arc<dyn Journal> = Arc::new(InMemoryJournal::new());
    let agent = Agent::builder()
        .model(ToolLoopModel::new("bump", 1))
        .tool(Counter::default())
        .permissions(ParkUntilSignalled)
        .approval_handler(ParkUntilSignalled)
        .journal(journal.clone())
        .build()
        .unwrap();
    let run = tokio::spawn(agent.run("go").user("alice").session("live").into_future());
    let s = scope("alice", "live");
    let name = loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if let Some(step) = journal.steps(&s, Some(1)).await.unwrap().first() {
            let c: Completion = serde_json::from_str(&step.value).unwrap();
            break format!("approve:{}", c.tool_calls[0].id);
        }
    };
    agent
        .signal(&alice(), &s.session, &name, json!({"approved": false}))
        .await
        .unwrap();
    let r = run.await.unwrap().unwrap();
    assert_eq!(r.output, "done: DENIED: a person said no");
}

#[tokio::test]
async fn waiting_for_a_signal_outside_a_journaled_run_is_a_typed_error() {
    let err = wait_for_signal("x", Some(Duration::from_millis(1)))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "wait_for_signal needs a journal: build the agent or workflow with .journal(…)"
    );
}

#[tokio::test]
async fn workflow_nodes_are_steps_and_nested_agents_journal_under_them() {
    let journal = Arc::new(InMemoryJournal::new());
    let tool = Counter::default();
    let agent = Agent::builder()
        .name("worker")
        .model(ToolLoopModel::new("bump", 1))
        .tool(tool.clone())
        .build()
        .unwrap();
    let fails = Arc::new(AtomicUsize::new(0));
    let upper_runs = Arc::new(AtomicUsize::new(0));
    let (f, u) = (fails.clone(), upper_runs.clone());
    let wf = Workflow::builder("pipeline")
        .add_node("upper", move |s: String| {
            let u = u.clone();
            async move {
                u.fetch_add(1, Ordering::SeqCst);
                s.to_uppercase()
            }
        })
        .add_node("agent", agent)
        .add_node("check", move |s: String| {
            let f = f.clone();
            async move {
                if f.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err::<String, _>("flaky".to_owned())
                } else {
                    Ok(format!("checked {s}"))
                }
            }
        })
        .add_edge(START, "upper")
        .add_edge("upper", "agent")
        .add_edge("agent", "check")
        .add_edge("check", END)
        .journal(journal.clone())
        .build()
        .unwrap();
    wf.run("go").user("alice").session("w").await.unwrap_err();
    let r = wf.run("go").user("alice").session("w").await.unwrap();
    assert_eq!(r.output, json!("checked done: bumped 0"));
    assert_eq!(upper_runs.load(Ordering::SeqCst), 1, "upper replayed");
    assert_eq!(tool.runs.load(Ordering::SeqCst), 1, "the agent replayed");
    assert_eq!(
        step_names(journal.as_ref(), &scope("alice", "w"), Some(1)).await,
        [
            "node:upper#1",
            "node:agent#1/0:model_call_1",
            "node:agent#1/0:tool_call_1_0",
            "node:agent#1/0:model_call_2",
            "node:agent#1",
            "node:check#1"
        ]
    );
}

#[tokio::test]
async fn the_in_memory_journal_passes_the_contract() {
    loomflow_testkit::journal_contract::run_all(Arc::new(InMemoryJournal::new())).await;
}

/// Records each call's idempotency key four ways: read in the call, read
/// from its context after the context moved to another task (outside the
/// call), read by blocking code the call runs, and read inside a run the
/// call starts (as an agent used as a tool does).
#[derive(Clone, Default)]
struct KeyProbe {
    keys: Arc<Mutex<Vec<[String; 4]>>>,
}

#[async_trait]
impl loomflow::Tool for KeyProbe {
    fn definition(&self) -> &loomflow::ToolDef {
        static DEF: std::sync::OnceLock<loomflow::ToolDef> = std::sync::OnceLock::new();
        DEF.get_or_init(|| loomflow::ToolDef {
            name: "bump".into(),
            description: "Reports its key.".into(),
            input_schema: json!({"type": "object", "properties": {"n": {"type": "integer"}}}),
            server: None,
            destructive: false,
            ends_turn: false,
        })
    }

    async fn call(
        &self,
        _args: &serde_json::Value,
    ) -> Result<serde_json::Value, loomflow::ToolError> {
        let cx = CallContext::current().expect("a tool call has a CallContext");
        let here = cx.idempotency_key();
        let moved = tokio::spawn(async move { cx.idempotency_key() })
            .await
            .unwrap();
        let blocking = loomflow::context::spawn_blocking(|| {
            CallContext::current()
                .expect("blocking code of a call sees its CallContext")
                .idempotency_key()
        })
        .await
        .unwrap();
        let nested = loomflow::RunContext::new(UserId::new("someone-else").unwrap())
            .scope(async { CallContext::current().unwrap().idempotency_key() })
            .await;
        self.keys
            .lock()
            .unwrap()
            .push([here, moved, blocking, nested]);
        Ok(json!("ok"))
    }
}

#[tokio::test]
async fn without_a_journal_each_call_has_its_own_stable_idempotency_key() {
    let probe = KeyProbe::default();
    let agent = Agent::builder()
        .model(ToolLoopModel::new("bump", 2))
        .tool(probe.clone())
        .build()
        .unwrap();
    for user in ["alice", "alice", "bob"] {
        agent.run("go").user(user).session("s1").await.unwrap();
    }
    let keys = probe.keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 6, "two calls per run, three runs");
    for [here, moved, blocking, nested] in &keys {
        assert!(here.starts_with("idem_") && here.len() == 37, "{here}");
        assert_eq!(moved, here, "a context taken out of its call keeps its key");
        assert_eq!(
            blocking, here,
            "blocking code of the call sees the same key"
        );
        assert_eq!(nested, here, "a run inside the call sees the call's key");
    }
    let distinct: std::collections::HashSet<_> = keys.iter().map(|k| &k[0]).collect();
    assert_eq!(
        distinct.len(),
        6,
        "distinct per call, per run (same user and session) and per user"
    );
}
