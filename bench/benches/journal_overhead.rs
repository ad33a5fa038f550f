//! The journal's cost per step: the agent run of `agent_overhead` (four
//! model calls, three tool calls: seven journaled steps, plus opening and
//! finishing the run) with no journal, in memory, on SQLite (WAL, durable
//! commits and batched commits) and on Postgres (a local server with fsync
//! on). Each run uses a fresh session, so nothing is replayed. Also, on
//! SQLite, 200 such runs at once (wall time for all of them).
//!
//! cargo bench -p loomflow-bench --bench journal_overhead
//!
//! Per-step overhead = (journaled run - plain run) / 7.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use loomflow::journal::Journal;
use loomflow::postgres::PostgresJournal;
use loomflow::sqlite::{Durability, SqliteJournal};
use loomflow::{Agent, InMemoryJournal};
use loomflow_bench::bench_agent_with;
use loomflow_testkit::postgres::TempPostgres;

fn main() {
    divan::main();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

static SESSION: AtomicU64 = AtomicU64::new(0);

fn bench_runs(bencher: divan::Bencher, rt: &tokio::runtime::Runtime, agent: &Agent) {
    bencher.bench_local(|| {
        rt.block_on(async {
            let n = SESSION.fetch_add(1, Ordering::Relaxed);
            let r = agent
                .run("prompt")
                .session(format!("bench-{n}"))
                .await
                .unwrap();
            assert_eq!(r.turns, 4);
        })
    });
}

#[divan::bench(sample_count = 50)]
fn no_journal(bencher: divan::Bencher) {
    let rt = runtime();
    bench_runs(bencher, &rt, &bench_agent_with(None));
}

#[divan::bench(sample_count = 50)]
fn in_memory(bencher: divan::Bencher) {
    let rt = runtime();
    bench_runs(
        bencher,
        &rt,
        &bench_agent_with(Some(Arc::new(InMemoryJournal::new()))),
    );
}

fn sqlite(bencher: divan::Bencher, durability: Durability) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let j: Arc<dyn Journal> =
        Arc::new(SqliteJournal::open_with(dir.path().join("j.db"), durability).unwrap());
    bench_runs(bencher, &rt, &bench_agent_with(Some(j)));
}

#[divan::bench(sample_count = 50)]
fn sqlite_durable_commits(bencher: divan::Bencher) {
    sqlite(bencher, Durability::Full);
}

#[divan::bench(sample_count = 50)]
fn sqlite_wal_commits(bencher: divan::Bencher) {
    sqlite(bencher, Durability::Committed);
}

#[divan::bench(sample_count = 50)]
fn sqlite_batched_commits(bencher: divan::Bencher) {
    sqlite(bencher, Durability::Batched);
}

/// Under load: 200 runs at once on the 2-worker runtime (wall time for all
/// of them), with each SQLite durability.
#[divan::bench(sample_count = 20, args = ["full", "committed", "batched"])]
fn sqlite_200_concurrent(bencher: divan::Bencher, mode: &str) {
    let durability = match mode {
        "full" => Durability::Full,
        "committed" => Durability::Committed,
        _ => Durability::Batched,
    };
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let j: Arc<dyn Journal> =
        Arc::new(SqliteJournal::open_with(dir.path().join("j.db"), durability).unwrap());
    let agent = bench_agent_with(Some(j));
    bencher.bench_local(|| {
        rt.block_on(async {
            let tasks: Vec<_> = (0..200)
                .map(|_| {
                    let agent = agent.clone();
                    let n = SESSION.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(
                        async move { agent.run("prompt").session(format!("bench-{n}")).await },
                    )
                })
                .collect();
            for t in tasks {
                assert_eq!(t.await.unwrap().unwrap().turns, 4);
            }
        })
    });
}

#[divan::bench(sample_count = 50)]
fn postgres(bencher: divan::Bencher) {
    let pg = TempPostgres::start_durable();
    let rt = runtime();
    let j: Arc<dyn Journal> = Arc::new(rt.block_on(PostgresJournal::connect(&pg.url())).unwrap());
    bench_runs(bencher, &rt, &bench_agent_with(Some(j)));
}
