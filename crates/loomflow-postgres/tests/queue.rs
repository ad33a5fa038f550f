//! The run queue's API on a real Postgres: results and events by run id and
//! tenant, failures, cancellation, abandoned runs and graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use loomflow::job::{JobError, JobRun, job_fn};
use loomflow::prelude::*;
use loomflow_postgres::{PostgresJournal, QueueError, RunQueue, RunStatus, Worker};
use loomflow_testkit::postgres::TempPostgres;
use serde_json::json;
use tokio::sync::oneshot;

fn user(id: &str) -> UserId {
    UserId::new(id).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_queue_runs_jobs_and_keeps_results_events_and_tenants_apart() {
    let pg = TempPostgres::start();
    let url = pg.url();
    let queue = RunQueue::connect(&url).await.unwrap();
    let journal = Arc::new(PostgresJournal::connect(&url).await.unwrap());
    let agent = Agent::builder()
        .model("echo")
        .journal(journal)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let worker = Worker::builder(queue.clone())
        .job("echo", agent)
        .job(
            "fail",
            job_fn(|run: JobRun| async move {
                Err(JobError::new(
                    "InputError",
                    format!("cannot use {}", run.input),
                ))
            }),
        )
        .job(
            "panic",
            job_fn(|_run: JobRun| async move {
                if true {
                    panic!("the job blew up");
                }
                Ok(json!(null))
            }),
        )
        .job(
            "count",
            job_fn(move |run: JobRun| {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    Ok(json!({"user": run.user.as_str(), "session": run.session.as_str()}))
                }
            }),
        )
        .poll_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async {
        stopped.await.ok();
    }));

    let alice = user("alice");
    let id = queue
        .submit("echo", "hello queue")
        .user("alice")
        .session("chat-1")
        .await
        .unwrap();
    let done = queue
        .wait(&alice, &id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(done.attempts, 1);
    let result = done.result.as_ref().unwrap();
    assert_eq!(result["output"], json!("Echo: hello queue"));
    assert_eq!(result["run_id"], json!(id.as_str()));
    assert_eq!(result["session_id"], json!("chat-1"));
    let kinds: Vec<&str> = queue
        .events(&alice, &id, 0)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event.kind_name())
        .collect::<Vec<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        kinds,
        ["started", "completed"],
        "model chunks are not stored by default"
    );
    let events = queue.events(&alice, &id, 1).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].seq, 2);

    // Another tenant sees nothing of it, not even with the run id.
    let bob = user("bob");
    assert!(queue.get(&bob, &id).await.unwrap().is_none());
    assert!(queue.events(&bob, &id, 0).await.unwrap().is_empty());
    assert!(!queue.cancel(&bob, &id).await.unwrap());
    let err = queue
        .wait(&bob, &id, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, QueueError::NotFound { .. }), "{err}");

    // A job error and a panic fail the run with the error stored.
    let id = queue.submit("fail", 7).user("alice").await.unwrap();
    let failed = queue
        .wait(&alice, &id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    let error = failed.error.unwrap();
    assert_eq!(
        (error.kind.as_str(), error.message.as_str()),
        ("InputError", "cannot use 7")
    );
    let id = queue.submit("panic", 0).await.unwrap();
    let anon = UserId::anonymous();
    let failed = queue
        .wait(&anon, &id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.error.unwrap().kind, "Panic");
    assert_eq!(failed.user_id, anon);

    // A job no worker has stays queued; cancelling it means it never runs.
    let orphan = queue
        .submit("nobody-runs-this", 1)
        .user("alice")
        .await
        .unwrap();
    let err = queue
        .wait(&alice, &orphan, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is still queued after"), "{err}");
    assert!(queue.cancel(&alice, &orphan).await.unwrap());
    assert_eq!(
        queue.get(&alice, &orphan).await.unwrap().unwrap().status,
        RunStatus::Cancelled
    );

    // Runs of one session execute in submission order, one at a time.
    let ids = queue
        .submit_all((0..5).map(|n| {
            loomflow_postgres::NewRun::new("count", n)
                .user("carol")
                .session("ordered")
        }))
        .await
        .unwrap();
    let carol = user("carol");
    for id in &ids {
        queue
            .wait(&carol, id, Duration::from_secs(30))
            .await
            .unwrap();
    }
    let runs = queue
        .session_runs(&carol, &SessionId::new("ordered").unwrap())
        .await
        .unwrap();
    assert_eq!(
        runs.iter().map(|r| &r.run_id).collect::<Vec<_>>(),
        ids.iter().collect::<Vec<_>>()
    );
    for pair in runs.windows(2) {
        assert!(pair[1].started_at.unwrap() >= pair[0].finished_at.unwrap());
    }
    assert_eq!(
        runs[0].result,
        Some(json!({"user": "carol", "session": "ordered"}))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 5);

    // Bad submissions are refused with a reason.
    let err = queue.submit("", 1).await.unwrap_err();
    assert!(err.to_string().contains("needs a job name"), "{err}");
    let err = queue.submit("echo", 1).user("has space").await.unwrap_err();
    assert!(err.to_string().contains("user id"), "{err}");

    stop.send(()).unwrap();
    let report = running.await.unwrap().unwrap();
    assert_eq!((report.succeeded, report.failed, report.lost), (6, 2, 0));
    let counts = queue.counts().await.unwrap();
    assert_eq!(
        counts,
        [
            (RunStatus::Cancelled, 1),
            (RunStatus::Failed, 2),
            (RunStatus::Succeeded, 6)
        ]
    );
}

/// A job that blocks until its gate opens, reporting when it started.
fn gated(
    started: Arc<tokio::sync::Notify>,
    gate: Arc<tokio::sync::Notify>,
) -> impl loomflow::job::Job {
    job_fn(move |run: JobRun| {
        let (started, gate) = (started.clone(), gate.clone());
        async move {
            run.events
                .send(&run.session, || EventKind::Started {
                    prompt: run.input.to_string(),
                })
                .await;
            started.notify_one();
            gate.notified().await;
            Ok(json!("opened"))
        }
    })
}

/// A worker with only the gated job, a short lease and a fast poll.
fn gated_worker(
    queue: &RunQueue,
    started: &Arc<tokio::sync::Notify>,
    gate: &Arc<tokio::sync::Notify>,
    lease: Duration,
) -> Worker {
    Worker::builder(queue.clone())
        .job("gated", gated(started.clone(), gate.clone()))
        .lease(lease)
        .poll_interval(Duration::from_millis(20))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn leases_cancel_abandon_and_drain() {
    let pg = TempPostgres::start();
    let queue = RunQueue::connect(&pg.url()).await.unwrap();
    let alice = user("alice");
    let lease = Duration::from_millis(600);
    let started = Arc::new(tokio::sync::Notify::new());
    let gate = Arc::new(tokio::sync::Notify::new());

    // Cancelling a running run stops it at the worker's next renewal; its
    // result is never stored.
    let worker = gated_worker(&queue, &started, &gate, lease);
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(worker.run_until(async {
        stopped.await.ok();
    }));
    let id = queue.submit("gated", 1).user("alice").await.unwrap();
    started.notified().await;
    assert_eq!(
        queue.get(&alice, &id).await.unwrap().unwrap().status,
        RunStatus::Running
    );
    assert!(queue.cancel(&alice, &id).await.unwrap());
    tokio::time::sleep(lease).await;

    // Shutting down lets the run in flight finish first.
    let id2 = queue.submit("gated", 2).user("alice").await.unwrap();
    started.notified().await;
    // Its events are readable while it runs (stored within a quarter second).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let live = queue.events(&alice, &id2, 0).await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(
        live[0].event.kind,
        EventKind::Started { prompt: "2".into() }
    );
    assert_eq!(
        queue.get(&alice, &id2).await.unwrap().unwrap().status,
        RunStatus::Running
    );
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !running.is_finished(),
        "a stopping worker waits for its runs"
    );
    gate.notify_one();
    let report = running.await.unwrap().unwrap();
    assert_eq!((report.succeeded, report.failed, report.lost), (1, 0, 1));
    let cancelled = queue.get(&alice, &id).await.unwrap().unwrap();
    assert_eq!(
        (cancelled.status, cancelled.result),
        (RunStatus::Cancelled, None)
    );
    let done = queue.get(&alice, &id2).await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.result),
        (RunStatus::Succeeded, Some(json!("opened")))
    );

    // A worker dropped mid-run (a crash, as far as the queue can tell) holds
    // the run until its lease runs out; with one attempt allowed, the next
    // worker fails it as abandoned instead of running it again.
    let id3 = queue
        .submit("gated", 3)
        .user("alice")
        .max_attempts(1)
        .await
        .unwrap();
    let doomed = gated_worker(&queue, &started, &gate, lease);
    let crashed = tokio::spawn(doomed.run());
    started.notified().await;
    crashed.abort();
    let _ = crashed.await;
    let next = gated_worker(&queue, &started, &gate, lease);
    let next = tokio::spawn(next.run());
    let abandoned = queue
        .wait(&alice, &id3, Duration::from_secs(30))
        .await
        .unwrap();
    next.abort();
    assert_eq!(abandoned.status, RunStatus::Failed);
    assert_eq!(abandoned.attempts, 1);
    let error = abandoned.error.unwrap();
    assert_eq!(error.kind, "AbandonedRun");
    assert!(error.message.contains("in 1 attempts"), "{}", error.message);
}
