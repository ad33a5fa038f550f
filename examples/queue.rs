//! Scale-out: runs submitted to a Postgres queue, executed by two workers
//! (here in one process; in production, one or more per machine), with each
//! run's result and events read back by run id.
//!
//! cargo run -p loomflow-examples --example queue [-- postgres://…]
//!
//! Without a URL (or `LOOMFLOW_PG`), it starts a throwaway local Postgres
//! (the binaries `scripts/test` installs).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use loomflow::postgres::{NewRun, PostgresJournal, RunQueue, Worker};
use loomflow::{Agent, UserId};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let given = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("LOOMFLOW_PG").ok());
    let local = given
        .is_none()
        .then(loomflow_testkit::postgres::TempPostgres::start);
    let url = given.unwrap_or_else(|| local.as_ref().unwrap().url());

    // Two workers, each with the jobs it can run, journaled to the database.
    let journal = Arc::new(PostgresJournal::connect(&url).await?);
    let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut workers = Vec::new();
    for id in ["worker-a", "worker-b"] {
        let agent = Agent::builder()
            .model("echo")
            .journal(journal.clone())
            .build()?;
        let worker = Worker::builder(RunQueue::connect(&url).await?)
            .job("support", agent)
            .id(id)
            .poll_interval(Duration::from_millis(20))
            .build()?;
        let mut stopped = stop.subscribe();
        workers.push(tokio::spawn(worker.run_until(async move {
            stopped.recv().await.ok();
        })));
    }

    // Submit six runs for two users, then read them back by run id.
    let queue = RunQueue::connect(&url).await?;
    let asks = [
        ("alice", "Where is my order?"),
        ("bob", "Cancel my subscription"),
        ("alice", "And the invoice?"),
        ("bob", "Thanks"),
        ("alice", "Change my address"),
        ("bob", "Bye"),
    ];
    let ids = queue
        .submit_all(asks.iter().map(|(user, text)| {
            NewRun::new("support", *text)
                .user(*user)
                .session(format!("{user}-chat"))
        }))
        .await?;
    for (id, (user, _)) in ids.iter().zip(asks) {
        let user = UserId::new(user)?;
        let run = queue.wait(&user, id, Duration::from_secs(30)).await?;
        let kinds: Vec<String> = queue
            .events(&user, id, 0)
            .await?
            .iter()
            .map(|e| e.event.kind_name().to_owned())
            .collect();
        println!(
            "{id} {:<5} {:<9} by {:<8} {:<36} events: {}",
            user.to_string(),
            run.status.as_str(),
            run.worker.as_deref().unwrap_or("-"),
            run.result.as_ref().unwrap()["output"]
                .as_str()
                .unwrap_or(""),
            kinds.join(" → ")
        );
    }
    // Another tenant cannot read alice's run, even with its id.
    assert!(queue.get(&UserId::new("bob")?, &ids[0]).await?.is_none());

    stop.send(()).ok();
    for w in workers {
        println!("{:?}", w.await??);
    }
    Ok(())
}
