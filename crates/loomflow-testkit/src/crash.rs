//! Crash-and-resume scenarios with real processes.
//!
//! A backend's test file has one `#[tokio::test] fn crash_child()` that calls
//! [`child_main`] (a no-op unless the test binary was re-executed as the
//! child), and tests that call [`kill_and_resume`]. The child runs an agent
//! (four tool calls) or a workflow (four nodes) whose every step appends a
//! line to a side-effect file, keyed by its idempotency key. The parent
//! SIGKILLs the child after the second line, starts a new child on the same
//! journal and session, and checks that every side effect happened exactly
//! once and the output equals an uninterrupted run's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use loomflow::journal::{CallContext, Journal};
use loomflow::prelude::*;
use serde_json::{Value, json};

use crate::ToolLoopModel;

const CHILD: &str = "LOOMFLOW_CRASH_CHILD";
const SIDE: &str = "LOOMFLOW_CRASH_SIDE";

/// Which scenario the child runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// An agent making four tool calls, one per turn.
    Agent,
    /// A workflow of four nodes in a chain.
    Workflow,
}

impl Scenario {
    fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Workflow => "workflow",
        }
    }
}

/// Appends `"<key> <what>"` to the side-effect file unless a line with `key`
/// is there already (the idempotent side effect), then lingers so the parent
/// can kill the process mid-run.
fn side_effect(path: &Path, what: &str) {
    let key = CallContext::current()
        .expect("a journaled step has a CallContext")
        .idempotency_key();
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    if !existing.lines().any(|l| l.starts_with(&format!("{key} "))) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        writeln!(f, "{key} {what}").unwrap();
        f.sync_all().unwrap();
    }
    std::thread::sleep(Duration::from_millis(150));
}

struct Append {
    def: loomflow::ToolDef,
    side: PathBuf,
}

#[async_trait]
impl loomflow::Tool for Append {
    fn definition(&self) -> &loomflow::ToolDef {
        &self.def
    }

    async fn call(&self, args: &Value) -> Result<Value, loomflow::ToolError> {
        let n = args["n"].as_u64().unwrap_or_default();
        let side = self.side.clone();
        // Blocking file work off the async threads, with the call's context.
        loomflow::context::spawn_blocking(move || side_effect(&side, &format!("tool {n}")))
            .await
            .map_err(|e| loomflow::ToolError::failed(e.to_string()))?;
        Ok(json!(format!("appended {n}")))
    }
}

/// Runs `scenario` on `journal` as user `crash`, session `s1`, and returns
/// its output as JSON.
pub async fn run_scenario(scenario: Scenario, journal: Arc<dyn Journal>, side: &Path) -> Value {
    match scenario {
        Scenario::Agent => {
            let agent = Agent::builder()
                .model(ToolLoopModel::new("append", 4))
                .tool(Append {
                    def: loomflow::ToolDef {
                        name: "append".into(),
                        description: "Appends a line.".into(),
                        input_schema: json!({"type": "object", "properties": {"n": {"type": "integer"}}}),
                        server: None,
                        destructive: false,
                        ends_turn: false,
                    },
                    side: side.to_path_buf(),
                })
                .journal(journal)
                .build()
                .unwrap();
            let r = agent.run("go").user("crash").session("s1").await.unwrap();
            json!({"output": r.output, "turns": r.turns, "tokens_in": r.tokens_in})
        }
        Scenario::Workflow => {
            let mut b = Workflow::builder("crash");
            let names = ["a", "b", "c", "d"];
            for name in names {
                let side = side.to_path_buf();
                b = b.add_node(name, move |s: String| {
                    let side = side.clone();
                    async move {
                        let what = format!("node {name}");
                        loomflow::context::spawn_blocking(move || side_effect(&side, &what))
                            .await
                            .unwrap();
                        format!("{s}>{name}")
                    }
                });
            }
            let wf = b
                .add_edge(START, "a")
                .add_edge("a", "b")
                .add_edge("b", "c")
                .add_edge("c", "d")
                .add_edge("d", END)
                .journal(journal)
                .build()
                .unwrap();
            let r = wf.run("go").user("crash").session("s1").await.unwrap();
            json!({"output": r.output, "visited": r.visited})
        }
    }
}

/// In the re-executed child: runs the scenario named in the environment on
/// the journal `open` returns, prints its output, and exits. Elsewhere: does
/// nothing.
pub async fn child_main<F, Fut>(open: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Journal>>,
{
    let Ok(which) = std::env::var(CHILD) else {
        return;
    };
    let scenario = match which.as_str() {
        "agent" => Scenario::Agent,
        "workflow" => Scenario::Workflow,
        other => panic!("unknown crash scenario {other}"),
    };
    let side = PathBuf::from(std::env::var(SIDE).unwrap());
    let journal = open().await;
    let out = run_scenario(scenario, journal.clone(), &side).await;
    journal.flush().await.unwrap();
    println!("CRASH-CHILD-OUTPUT {out}");
    std::process::exit(0);
}

fn child(scenario: Scenario, side: &Path, env: &[(&str, String)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD, scenario.as_str())
        .env(SIDE, side)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn output_of(out: &std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("CRASH-CHILD-OUTPUT ").map(|(_, json)| json))
        .unwrap_or_else(|| {
            panic!(
                "the child printed no output\nstdout:\n{stdout}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    serde_json::from_str(line).unwrap()
}

/// Runs `scenario` in a child process on the journal the child opens from
/// `env`, kills it with SIGKILL after the second side effect, resumes it in
/// a new child, and checks exactly-once side effects and the final output
/// against `uninterrupted` (the same scenario run to completion on a fresh
/// journal, which the caller provides).
pub fn kill_and_resume(
    scenario: Scenario,
    dir: &Path,
    env: &[(&str, String)],
    uninterrupted: &Value,
) {
    let side = dir.join(format!("{}-side-effects.txt", scenario.as_str()));
    let mut first = child(scenario, &side, env).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lines = std::fs::read_to_string(&side)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if lines >= 2 {
            break;
        }
        if let Some(status) = first.try_wait().unwrap() {
            let out = first.wait_with_output().unwrap();
            panic!(
                "the child exited ({status}) before its second side effect\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(Instant::now() < deadline, "the child made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGKILL: no destructors, no flush, no goodbye.
    first.kill().unwrap();
    let status = first.wait().unwrap();
    assert!(!status.success(), "the child was killed mid-run");
    let lines_at_kill = std::fs::read_to_string(&side).unwrap().lines().count();
    assert!(
        lines_at_kill < 4,
        "killed before the end ({lines_at_kill} side effects)"
    );

    let resumed = child(scenario, &side, env).output().unwrap();
    assert!(
        resumed.status.success(),
        "the resumed child failed\nstderr:\n{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(&output_of(&resumed), uninterrupted);

    let text = std::fs::read_to_string(&side).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let whats: Vec<&str> = lines.iter().map(|l| l.split_once(' ').unwrap().1).collect();
    let expected: Vec<String> = match scenario {
        Scenario::Agent => (0..4).map(|n| format!("tool {n}")).collect(),
        Scenario::Workflow => ["a", "b", "c", "d"]
            .iter()
            .map(|n| format!("node {n}"))
            .collect(),
    };
    assert_eq!(whats, expected, "every side effect exactly once, in order");
    let mut keys: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    keys.dedup();
    assert_eq!(keys.len(), 4, "one idempotency key per step");
}
