//! (b) N concurrent runs of one agent whose model sleeps per call.
//!
//! `cargo run --release -p loomflow-bench --bin concurrent_runs -- [N] [LATENCY_MS]`
//!
//! Runs on mimalloc unless built with `--no-default-features` (system
//! allocator). `RAW_FLOOR=1` (or `bare`) measures bare tokio tasks sleeping
//! the same way; `RAW_FLOOR=loop` measures a hand-rolled agent loop (a `Vec`
//! transcript, JSON arguments, the same model and tool, no framework): the
//! floor for code that does a run's work, as the Python peers' `raw` loop is
//! theirs. Any other value is refused.
//! `ROUNDS=k` runs the batch k times in the same process (a warm heap, as a
//! long-running server has); `wall_ms` is always the first, cold round.
//!
//! Prints one `RESULT {json}` line: wall time, the latency floor
//! (4 calls × latency), overhead over the floor, throughput and peak RSS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use loomflow_bench::{N_TOOLS, bench_agent, hand_rolled_run, take_call_starts};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let latency_ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    // Unset or empty: the agent. Anything else must name a floor, so that a
    // typo (or `RAW_FLOOR=0`) is not silently measured as bare tokio. The
    // record names the floor one way (`bare`, `loop`) however it was asked
    // for.
    let floor_kind = match std::env::var("RAW_FLOOR").ok().filter(|k| !k.is_empty()) {
        None => None,
        Some(k) if k == "1" || k == "bare" => Some("bare"),
        Some(k) if k == "loop" => Some("loop"),
        Some(other) => {
            eprintln!(
                "RAW_FLOOR={other} is not a floor: use 1 (or bare) for bare tokio sleeps, \
                 loop for the hand-rolled loop, or leave it unset for the agent"
            );
            std::process::exit(2);
        }
    };
    let (raw, hand_rolled) = (floor_kind == Some("bare"), floor_kind == Some("loop"));
    let rss_before = peak_rss_kb();
    // The runs are spawned from a task on the runtime, as a server's handler
    // would, not from the thread blocked in `block_on`.
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let mut walls = Vec::new();
    let mut phases = Vec::new();
    let mut ok = 0;
    for _ in 0..rounds {
        let (wall, round_ok, round_phases) = runtime.block_on(async {
            tokio::spawn(async move {
                let agent = bench_agent(Some(Duration::from_millis(latency_ms)));
                let start = Instant::now();
                let handles: Vec<_> = (0..n)
                    .map(|i| {
                        let agent = agent.clone();
                        tokio::spawn(async move {
                            if raw {
                                for _ in 0..=N_TOOLS {
                                    tokio::time::sleep(Duration::from_millis(latency_ms)).await;
                                }
                                return Ok(N_TOOLS as u32 + 1);
                            }
                            if hand_rolled {
                                let latency = Duration::from_millis(latency_ms);
                                let (_answer, turns) =
                                    hand_rolled_run(format!("prompt {i}"), latency).await;
                                return Ok(turns);
                            }
                            agent
                                .run(format!("prompt {i}"))
                                .user(format!("user{}", i % 100).as_str())
                                .await
                                .map(|r| r.turns)
                        })
                    })
                    .collect();
                let mut ok = 0;
                for h in handles {
                    if let Ok(Ok(turns)) = h.await
                        && turns as usize == N_TOOLS + 1
                    {
                        ok += 1;
                    }
                }
                let phases = take_call_starts(start);
                (start.elapsed(), ok, phases)
            })
            .await
            .unwrap_or_else(|e| panic!("driver task: {e}"))
        });
        walls.push(wall.as_secs_f64() * 1e3);
        if phases.is_empty() {
            phases = round_phases;
        }
        ok = round_ok;
    }
    let wall = Duration::from_secs_f64(walls[0] / 1e3);
    let floor = Duration::from_millis(latency_ms * (N_TOOLS as u64 + 1));
    let record = serde_json::json!({
        "bench": "concurrent_runs",
        "runs": n,
        "ok": ok,
        "latency_ms": latency_ms,
        "wall_ms": wall.as_secs_f64() * 1e3,
        "floor_ms": floor.as_secs_f64() * 1e3,
        "over_floor_pct": (wall.as_secs_f64() / floor.as_secs_f64() - 1.0) * 100.0,
        "runs_per_s": n as f64 / wall.as_secs_f64(),
        "peak_rss_mb": peak_rss_kb() as f64 / 1024.0,
        "rss_before_mb": rss_before as f64 / 1024.0,
        "later_rounds_wall_ms": &walls[1..],
        // Per model call (a run's first, second, …): when the first and the
        // last run started it, in ms after the batch started.
        "call_starts_ms": phases,
        "allocator": if cfg!(feature = "mimalloc") { "mimalloc" } else { "system" },
        "floor": floor_kind,
    });
    println!("RESULT {record}");
    if ok != n {
        eprintln!("{} of {n} runs failed", n - ok);
        std::process::exit(1);
    }
}
