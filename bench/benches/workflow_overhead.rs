//! Workflow engine overhead, the reference's three scenarios: a 10-node
//! chain, a 3-node refine cycle visited 50 times (150 steps), and a
//! 100-branch fan-out into one AND-join (102 steps). Trivial node bodies, so
//! the figures are the engine's cost.
//!
//! cargo bench -p loomflow-bench --bench workflow_overhead

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use loomflow::END;
use loomflow::workflow::{Router, Step, Workflow};
use loomflow_bench::runtime;
use serde_json::Value;

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

fn main() {
    divan::main();
}

const CHAIN_LEN: usize = 10;
const LAPS: i64 = 50;
const FANOUT: usize = 100;

async fn inc(x: i64) -> i64 {
    x + 1
}

async fn same(x: i64) -> i64 {
    x
}

fn chain() -> Workflow {
    Workflow::chain((0..CHAIN_LEN).map(|i| Step::named(format!("n{i}"), inc)))
        .build()
        .unwrap()
}

fn cycle() -> Workflow {
    Workflow::builder("refine")
        .add_node("draft", same)
        .add_node("critique", same)
        .add_node("refine", inc)
        .set_start("draft")
        .add_edge("draft", "critique")
        .add_edge("critique", "refine")
        .add_router(
            "refine",
            Router::new(|v: &Value| {
                if v.as_i64() < Some(LAPS) {
                    "again"
                } else {
                    "done"
                }
            })
            .route("again", "draft")
            .route("done", END),
        )
        .max_steps(10_000)
        .max_visits_per_node(10_000)
        .build()
        .unwrap()
}

fn fanout() -> Workflow {
    async fn join(xs: Vec<i64>) -> i64 {
        xs.iter().sum()
    }
    let mut b = Workflow::builder("fan")
        .add_node("src", same)
        .add_node("join", join)
        .set_start("src")
        .max_steps(10_000)
        .max_concurrency(FANOUT);
    for i in 0..FANOUT {
        let name = format!("b{i}");
        let k = i as i64;
        b = b
            .add_node(name.clone(), move |x: i64| async move { x + k })
            .add_edge("src", &name)
            .add_edge(&name, "join");
    }
    b.add_edge("join", END).build().unwrap()
}

/// 10 nodes in a line: divide by 10 for the per-step cost.
#[divan::bench]
fn chain_10(bencher: divan::Bencher) {
    let rt = runtime();
    let wf = chain();
    bencher.bench_local(|| {
        rt.block_on(async {
            let r = wf.run(0).await.unwrap();
            assert_eq!(r.output, CHAIN_LEN as i64);
        })
    });
}

/// 3 nodes × 50 laps = 150 steps: divide by 150.
#[divan::bench]
fn cycle_150_steps(bencher: divan::Bencher) {
    let rt = runtime();
    let wf = cycle();
    bencher.bench_local(|| {
        rt.block_on(async {
            let r = wf.run(0).await.unwrap();
            assert_eq!(r.output, LAPS);
        })
    });
}

/// src → 100 branches → join: divide by 100 for the per-branch cost.
#[divan::bench]
fn fanout_100(bencher: divan::Bencher) {
    let rt = runtime();
    let wf = fanout();
    bencher.bench_local(|| {
        rt.block_on(async {
            let r = wf.run(0).await.unwrap();
            assert_eq!(r.output, (0..FANOUT as i64).sum::<i64>());
        })
    });
}
