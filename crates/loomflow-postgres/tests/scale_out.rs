//! Scale-out on a real Postgres: three worker processes drain 200 queued
//! agent runs; one worker is killed with SIGKILL mid-way. Every run
//! completes, no step's side effect happens twice, and the survivors take
//! the dead worker's runs over once its leases run out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use loomflow::journal::CallContext;
use loomflow::prelude::*;
use loomflow_postgres::{NewRun, PostgresJournal, RunQueue, RunStatus, Worker};
use loomflow_testkit::ToolLoopModel;
use loomflow_testkit::postgres::TempPostgres;
use serde_json::{Value, json};

const CHILD: &str = "LOOMFLOW_QUEUE_WORKER";
const URL: &str = "LOOMFLOW_QUEUE_PG";
const DIR: &str = "LOOMFLOW_QUEUE_DIR";
const LEASE: Duration = Duration::from_secs(2);
const RUNS: usize = 200;
const STEPS: usize = 2;

/// A tool whose side effect is idempotent by the step's idempotency key: it
/// creates `effects/<key>` once, and logs every execution (a re-execution
/// included) to `executions.log` as `<key> <worker> <session>`.
struct Effect {
    def: loomflow::ToolDef,
    dir: PathBuf,
    worker: String,
}

fn effect(dir: &Path, worker: &str) -> String {
    let key = CallContext::current().unwrap().idempotency_key();
    let session = RunContext::current().unwrap().session_id;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("executions.log"))
        .unwrap();
    // One short write with O_APPEND: lines from several processes never mix.
    log.write_all(format!("{key} {worker} {session}\n").as_bytes())
        .unwrap();
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join("effects").join(&key))
    {
        Ok(mut f) => f.write_all(session.as_str().as_bytes()).unwrap(),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => panic!("{e}"),
    }
    std::thread::sleep(Duration::from_millis(25));
    session.to_string()
}

#[async_trait]
impl loomflow::Tool for Effect {
    fn definition(&self) -> &loomflow::ToolDef {
        &self.def
    }

    async fn call(&self, args: &Value) -> Result<Value, loomflow::ToolError> {
        let n = args["n"].as_u64().unwrap_or_default();
        let (dir, worker) = (self.dir.clone(), self.worker.clone());
        let session = loomflow::context::spawn_blocking(move || effect(&dir, &worker))
            .await
            .map_err(|e| loomflow::ToolError::failed(e.to_string()))?;
        Ok(json!(format!("{session}#{n}")))
    }
}

/// The re-executed worker process (a no-op otherwise): runs a worker with
/// the `work` job until it is killed.
#[tokio::test(flavor = "multi_thread")]
async fn worker_child() {
    let Ok(id) = std::env::var(CHILD) else {
        return;
    };
    let url = std::env::var(URL).unwrap();
    let dir = PathBuf::from(std::env::var(DIR).unwrap());
    let journal = Arc::new(PostgresJournal::connect(&url).await.unwrap());
    let agent = Agent::builder()
        .model(ToolLoopModel::new("effect", STEPS))
        .tool(Effect {
            def: loomflow::ToolDef {
                name: "effect".into(),
                description: "Makes an idempotent side effect.".into(),
                input_schema: json!({"type": "object", "properties": {"n": {"type": "integer"}}}),
                server: None,
                destructive: false,
                ends_turn: false,
            },
            dir,
            worker: id.clone(),
        })
        .journal(journal)
        .build()
        .unwrap();
    let worker = Worker::builder(RunQueue::connect(&url).await.unwrap())
        .job("work", agent)
        .id(id)
        .concurrency(8)
        .lease(LEASE)
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    worker.run().await.unwrap();
    unreachable!("a worker runs until it is killed");
}

fn spawn_worker(id: &str, url: &str, dir: &Path) -> Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "worker_child", "--nocapture", "--test-threads=1"])
        .env(CHILD, id)
        .env(URL, url)
        .env(DIR, dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn executions(dir: &Path) -> Vec<(String, String, String)> {
    std::fs::read_to_string(dir.join("executions.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut parts = l.split(' ');
            let mut next = || parts.next().unwrap().to_owned();
            (next(), next(), next())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_workers_drain_the_queue_and_survive_a_killed_one() {
    let pg = TempPostgres::start();
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("effects")).unwrap();
    let queue = RunQueue::connect(&url).await.unwrap();
    // Two runs per session (they must run one after the other); each
    // session id is used by both tenants, whose sessions are unrelated.
    let runs: Vec<(UserId, SessionId)> = (0..RUNS)
        .map(|n| {
            let user = UserId::new(["alice", "bob"][(n / 2) % 2]).unwrap();
            (user, SessionId::new(format!("s{}", n / 4)).unwrap())
        })
        .collect();
    let ids = queue
        .submit_all(runs.iter().enumerate().map(|(n, (user, session))| {
            NewRun::new("work", format!("task {n}"))
                .user(user.clone())
                .session(session.clone())
        }))
        .await
        .unwrap();
    assert_eq!(ids.len(), RUNS);

    let mut workers: BTreeMap<&str, Child> = ["w1", "w2", "w3"]
        .into_iter()
        .map(|id| (id, spawn_worker(id, &url, dir.path())))
        .collect();

    // Kill w1 once it has done real work and the queue is well under way.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = executions(dir.path());
        let by_w1 = done.iter().filter(|(_, w, _)| w == "w1").count();
        if by_w1 >= 10 && done.len() >= RUNS * STEPS / 4 {
            break;
        }
        for (id, child) in &mut workers {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                panic!("worker {id} exited early ({status}):\n{err}");
            }
        }
        assert!(Instant::now() < deadline, "the workers made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut w1 = workers.remove("w1").unwrap();
    w1.kill().unwrap();
    w1.wait().unwrap();
    let killed_at = chrono::Utc::now();
    let held_by_w1: Vec<_> = {
        let mut held = Vec::new();
        for (id, (user, _)) in ids.iter().zip(&runs) {
            let run = queue.get(user, id).await.unwrap().unwrap();
            if run.status == RunStatus::Running && run.worker.as_deref() == Some("w1") {
                held.push(id.clone());
            }
        }
        held
    };
    assert!(!held_by_w1.is_empty(), "w1 died holding runs");

    let mut finished = Vec::new();
    for (id, (user, _)) in ids.iter().zip(&runs) {
        finished.push(
            queue
                .wait(user, id, Duration::from_secs(120))
                .await
                .unwrap(),
        );
    }
    for (_, mut child) in workers {
        child.kill().unwrap();
        child.wait().unwrap();
    }

    // Every run completed, for its own tenant and session, with the output
    // an uninterrupted run gives.
    for (run, (user, session)) in finished.iter().zip(&runs) {
        assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
        let result = run.result.as_ref().unwrap();
        assert_eq!(result["session_id"], json!(session.as_str()));
        assert_eq!(result["user_id"], json!(user.as_str()));
        assert_eq!(result["run_id"], json!(run.run_id.as_str()));
        assert_eq!(
            result["output"],
            json!(format!("done: {session}#0 | {session}#1"))
        );
    }

    // The dead worker's runs were taken over by the survivors, after its
    // leases ran out, and finished there.
    for id in &held_by_w1 {
        let run = finished.iter().find(|r| &r.run_id == id).unwrap();
        assert_eq!(run.attempts, 2, "{run:?}");
        assert!(
            matches!(run.worker.as_deref(), Some("w2" | "w3")),
            "{run:?}"
        );
        let events = queue.events(&run.user_id, id, 0).await.unwrap();
        let second: Vec<_> = events.iter().filter(|e| e.attempt == 2).collect();
        // The last renewal was at most a third of the lease before the kill.
        let earliest = killed_at + chrono::Duration::from_std(LEASE * 2 / 3).unwrap()
            - chrono::Duration::milliseconds(100);
        assert!(
            second[0].event.at >= earliest,
            "taken over only after the lease ({} vs kill at {killed_at})",
            second[0].event.at
        );
        assert_eq!(second.last().unwrap().event.kind_name(), "completed");
    }
    assert!(
        finished
            .iter()
            .all(|r| r.worker.as_deref() != Some("w1") || r.attempts == 1)
    );

    // Runs of one session ran one after the other, in submission order.
    for pair in finished.chunks(2) {
        assert_eq!(
            (&pair[0].user_id, &pair[0].session_id),
            (&pair[1].user_id, &pair[1].session_id)
        );
        assert!(
            pair[1].started_at.unwrap() >= pair[0].finished_at.unwrap(),
            "{pair:?}"
        );
    }

    // Every step's side effect exists exactly once; a step executed twice
    // only when it was in flight in the killed worker (and its idempotency
    // key kept the side effect single).
    let effects = std::fs::read_dir(dir.path().join("effects"))
        .unwrap()
        .count();
    assert_eq!(effects, RUNS * STEPS);
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    for (key, worker, _) in executions(dir.path()) {
        by_key.entry(key).or_default().push(worker);
    }
    assert_eq!(by_key.len(), RUNS * STEPS);
    let mut repeated = 0;
    for (key, workers) in &by_key {
        match workers.as_slice() {
            [_] => {}
            [first, second] if first == "w1" && second != "w1" => repeated += 1,
            other => panic!("step {key} executed by {other:?}"),
        }
    }
    assert!(
        repeated <= held_by_w1.len(),
        "at most one in-flight step per run the dead worker held ({repeated} > {})",
        held_by_w1.len()
    );
}
