//! How many short journaled runs one worker executes per second from the
//! Postgres queue.
//!
//! cargo bench -p loomflow-bench --bench queue_throughput -- [RUNS] [CONCURRENCY]
//!
//! A local Postgres from the testkit with durable settings (fsync on,
//! `synchronous_commit = on`). RUNS runs (default 5000) of an echo agent
//! journaled to the same Postgres are queued first; then one worker with
//! CONCURRENCY runs in flight (default 64) drains the queue. A run is: claim
//! (batched), open the run's epoch in the journal, one journaled model call,
//! finish the epoch, store the result and the run's events (batched). Prints
//! one `RESULT {json}` line with the drain time and runs per second.
//! `JOURNAL=memory` journals in memory instead: the queue's own cost.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use loomflow::postgres::{NewRun, PostgresJournal, RunQueue, RunStatus, Worker};
use loomflow::{Agent, Journal};
use loomflow_testkit::postgres::TempPostgres;

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let runs = arg(0, 5000);
    let concurrency = arg(1, 64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pg = TempPostgres::start_durable();
    let url = pg.url();
    rt.block_on(async {
        let journal: Arc<dyn Journal> = if std::env::var("JOURNAL").as_deref() == Ok("memory") {
            Arc::new(loomflow::InMemoryJournal::new())
        } else {
            Arc::new(PostgresJournal::connect(&url).await.unwrap())
        };
        let queue = RunQueue::connect_with(&url, 8).await.unwrap();
        for chunk in (0..runs).collect::<Vec<_>>().chunks(1000) {
            queue
                .submit_all(chunk.iter().map(|n| {
                    NewRun::new("echo", format!("request {n}")).user(format!("user{}", n % 50))
                }))
                .await
                .unwrap();
        }
        let agent = Agent::builder()
            .model("echo")
            .journal(journal)
            .build()
            .unwrap();
        let worker = Worker::builder(queue.clone())
            .job("echo", agent)
            .concurrency(concurrency)
            .poll_interval(Duration::from_millis(5))
            .build()
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let start = Instant::now();
        let running = tokio::spawn(worker.run_until(async {
            stopped.await.ok();
        }));
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let counts = queue.counts().await.unwrap();
            let done: u64 = counts
                .iter()
                .filter(|(s, _)| s.is_finished())
                .map(|(_, n)| n)
                .sum();
            if done as usize >= runs {
                break;
            }
        }
        let elapsed = start.elapsed();
        stop.send(()).unwrap();
        let report = running.await.unwrap().unwrap();
        assert_eq!(report.succeeded as usize, runs, "{report:?}");
        let counts = queue.counts().await.unwrap();
        assert_eq!(counts, [(RunStatus::Succeeded, runs as u64)]);
        println!(
            "RESULT {}",
            serde_json::json!({
                "runs": runs,
                "concurrency": concurrency,
                "drain_ms": elapsed.as_millis(),
                "runs_per_sec": (runs as f64 / elapsed.as_secs_f64()).round(),
            })
        );
    });
}
