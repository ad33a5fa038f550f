//! (a) Agent run overhead: three tool calls then an answer, runs in sequence.
//!
//! cargo bench -p loomflow-bench --bench agent_overhead

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures_util::StreamExt;
use loomflow::{Agent, ScriptedModel, ScriptedTurn};
use loomflow_bench::runtime;
use loomflow_bench::{bench_agent, lookup};

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

fn main() {
    divan::main();
}

/// `agent.run(prompt).await`: one shared agent, stateless scripted model.
#[divan::bench]
fn run_shared_agent(bencher: divan::Bencher) {
    let rt = runtime();
    let agent = bench_agent(None);
    bencher.bench_local(|| {
        rt.block_on(async {
            let r = agent.run("prompt").await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(r.turns, 4);
        })
    });
}

/// `agent.stream(prompt)`: the same run with every event delivered to a consumer.
#[divan::bench]
fn stream_shared_agent(bencher: divan::Bencher) {
    let rt = runtime();
    let agent = bench_agent(None);
    bencher.bench_local(|| {
        rt.block_on(async {
            let mut events = agent.stream("prompt");
            let mut n = 0;
            while events.next().await.is_some() {
                n += 1;
            }
            assert_eq!(n, 16);
        })
    });
}

/// The reference's stock-scripted variant: a fresh agent and ScriptedModel per run.
#[divan::bench]
fn run_fresh_scripted_agent(bencher: divan::Bencher) {
    let rt = runtime();
    bencher.bench_local(|| {
        rt.block_on(async {
            let turns = (0..3)
                .map(|k| {
                    ScriptedTurn::tool_call("lookup", serde_json::json!({"q": format!("q{k}")}))
                })
                .chain([ScriptedTurn::text("final answer")]);
            let agent = Agent::builder()
                .instructions("You are a benchmark agent.")
                .model(ScriptedModel::new(turns))
                .tool(lookup)
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
            let r = agent.run("prompt").await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(r.turns, 4);
        })
    });
}
