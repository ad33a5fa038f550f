//! The `loomflow` binary, run as a user would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn loomflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loomflow"))
        .args(args)
        .current_dir(workspace_root())
        .output()
        .expect("the loomflow binary runs")
}

/// Runs the binary with `key` in `LOOMFLOW_TEST_AUDIT_KEY` (the audit
/// tests' `secret_env`).
fn loomflow_with_audit_key(args: &[&str], key: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loomflow"))
        .args(args)
        .env("LOOMFLOW_TEST_AUDIT_KEY", key)
        .output()
        .expect("the loomflow binary runs")
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn version_prints_the_crate_version() {
    let o = loomflow(&["version"]);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o),
        format!("loomflow {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn run_with_a_scripted_config_prints_the_result_as_json() {
    let o = loomflow(&[
        "run",
        "Hi",
        "--config",
        "examples/agents/scripted.toml",
        "--json",
        "--user",
        "alice",
        "--session",
        "s1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(r["output"], "Hello there! Nice to meet you.");
    assert_eq!(r["user_id"], "alice");
    assert_eq!(r["session_id"], "s1");
    assert_eq!(r["tokens_in"], 12);
    assert_eq!(r["tokens_out"], 7);
    assert_eq!(r["turns"], 1);
}

#[test]
fn stream_prints_text_as_it_arrives_and_json_stream_prints_events() {
    let o = loomflow(&["run", "Hi", "-c", "examples/agents/echo.toml", "--stream"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "Echo: Hi\n");

    let o = loomflow(&["run", "Hi", "--model", "echo", "--stream", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let kinds: Vec<String> = stdout(&o)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "started",
            "model_chunk",
            "model_chunk",
            "model_chunk",
            "completed"
        ]
    );
}

#[test]
fn flags_override_the_config() {
    let o = loomflow(&[
        "run",
        "Hi",
        "-c",
        "examples/agents/scripted.toml",
        "--model",
        "echo",
        "--tone",
        "legal",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "Echo: Hi\n");
}

#[test]
fn effort_and_prompt_caching_flags_are_checked() {
    let o = loomflow(&[
        "run",
        "Hi",
        "--model",
        "echo",
        "--effort",
        "low",
        "--prompt-caching",
        "1h",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "Echo: Hi\n");
    let o = loomflow(&["run", "Hi", "--model", "echo", "--prompt-caching"]);
    assert!(
        o.status.success(),
        "a bare --prompt-caching means 5m: {}",
        stderr(&o)
    );

    let o = loomflow(&["run", "Hi", "--model", "echo", "--effort", "hgih"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: invalid effort: unknown effort \"hgih\"; expected one of minimal, low, medium, high, xhigh, max (did you mean \"high\"?)\n"
    );
    let o = loomflow(&["run", "Hi", "--model", "echo", "--prompt-caching", "2h"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(r#"valid choices are "5m", "1h""#),
        "{}",
        stderr(&o)
    );
}

#[test]
fn errors_are_reported_with_a_nonzero_exit() {
    let o = loomflow(&["run", "Hi"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: no model configured"),
        "{}",
        stderr(&o)
    );

    let dir = std::env::temp_dir().join(format!("loomflow-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "model = \"echo\"\ninstructoins = \"x\"\n").unwrap();
    let o = loomflow(&["run", "Hi", "-c", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "error: {}: unknown key `instructoins` (did you mean `instructions`?)\n",
            bad.display()
        )
    );

    let o = loomflow(&["run", "Hi", "--model", "ehco"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with("error: unknown model \"ehco\": valid choices are "),
        "{err}"
    );
    // The CLI has the OpenAI provider on: its model strings are listed.
    assert!(err.contains("gpt-*") && err.contains("deepseek-*"), "{err}");
    assert!(err.ends_with("(did you mean `echo`?)\n"), "{err}");

    // A provider model without its key names the variable to set.
    let o = Command::new(env!("CARGO_BIN_EXE_loomflow"))
        .args(["run", "Hi", "--model", "gpt-4.1-mini"])
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("set OPENAI_API_KEY"), "{}", stderr(&o));

    let o = loomflow(&["run", "Hi", "--model", "echo", "--user", "bad user"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("user id \"bad user\" contains ' '"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn run_a_workflow_file_streams_steps_and_reports_visited() {
    let o = loomflow(&[
        "run",
        "examples/triage.toml",
        "My invoice charged me twice",
        "--json",
        "--user",
        "alice",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(r["visited"], serde_json::json!(["classify", "billing"]));
    assert_eq!(r["user_id"], "alice");
    assert!(
        r["output"]
            .as_str()
            .unwrap()
            .contains("refunded the duplicate payment")
    );

    let o = loomflow(&["run", "examples/triage.toml", "hello", "--stream"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let steps: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with('▶') || l.starts_with('✓') || l.starts_with("visited"))
        .collect();
    assert_eq!(
        steps,
        [
            "▶ classify",
            "✓ classify",
            "▶ billing",
            "✓ billing",
            "visited: classify → billing"
        ]
    );

    let o = loomflow(&["run", "examples/triage.toml", "hello", "--stream", "--json"]);
    let kinds: Vec<String> = stdout(&o)
        .lines()
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            format!(
                "{}{}",
                e["node"]
                    .as_str()
                    .map(|n| format!("{n}|"))
                    .unwrap_or_default(),
                e["kind"].as_str().unwrap()
            )
        })
        .filter(|k| !k.ends_with("model_chunk"))
        .collect();
    assert_eq!(
        kinds,
        [
            "workflow_started",
            "workflow_step_started",
            "classify|started",
            "classify|completed",
            "workflow_step_completed",
            "workflow_step_started",
            "billing|started",
            "billing|completed",
            "workflow_step_completed",
            "workflow_completed",
        ]
    );
}

#[test]
fn graph_prints_mermaid_and_dot() {
    let o = loomflow(&["graph", "examples/triage.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = stdout(&o);
    assert!(m.starts_with("flowchart TD\n"));
    assert!(m.contains("n_classify -->|billing| n_billing"));
    assert!(m.contains("n_classify -.->|default| n_tech"));
    let o = loomflow(&["graph", "examples/triage.toml", "--format", "dot"]);
    assert!(stdout(&o).starts_with("digraph \"triage\" {"));
}

#[test]
fn workflow_file_errors_name_the_file_line_and_key() {
    let dir = std::env::temp_dir().join(format!("loomflow-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "typo.toml",
            "name = \"t\"\nstart = \"a\"\n\n[[nodes]]\nname = \"a\"\nagnet = \"x\"\n",
            "typo.toml:6: unknown key `agnet` (did you mean `agent`?)",
        ),
        (
            "agent.toml",
            "start = \"a\"\n[agents.helper]\nmodel = \"echo\"\n[[nodes]]\nname = \"a\"\nagent = \"helpr\"\n[[edges]]\nfrom = \"a\"\nto = \"END\"\n",
            "agent.toml:6: nodes.a.agent: unknown agent `helpr` (did you mean `helper`?)",
        ),
        (
            "edge.toml",
            "start = \"a\"\n[agents.h]\nmodel = \"echo\"\n[[nodes]]\nname = \"a\"\nagent = \"h\"\n[[edges]]\nfrom = \"a\"\nto = \"b\"\n",
            "edge.toml:9: workflow `edge`: `a -> b` names unknown node `b`",
        ),
        (
            "inline.toml",
            "start = \"a\"\n[agents.h]\nmodle = \"echo\"\n[[nodes]]\nname = \"a\"\nagent = \"h\"\n[[edges]]\nfrom = \"a\"\nto = \"END\"\n",
            "inline.toml:2: ",
        ),
        (
            "agent-memory.toml",
            "start = \"a\"\n[agents.h]\nmodel = \"echo\"\nmemory = \"inmemory\"\n[[nodes]]\nname = \"a\"\nagent = \"h\"\n[[edges]]\nfrom = \"a\"\nto = \"END\"\n",
            "agent-memory.toml:2: agents.h.memory: in a workflow file, memory is set once at the top level",
        ),
        (
            "bad-memory.toml",
            "start = \"a\"\nmemory = \"mongo://x\"\n[agents.h]\nmodel = \"echo\"\n[[nodes]]\nname = \"a\"\nagent = \"h\"\n[[edges]]\nfrom = \"a\"\nto = \"END\"\n",
            "bad-memory.toml:2: memory: ",
        ),
        (
            "agent-audit.toml",
            "start = \"a\"\n[agents.h]\nmodel = \"echo\"\naudit_log = \"./a.jsonl\"\n[[nodes]]\nname = \"a\"\nagent = \"h\"\n[[edges]]\nfrom = \"a\"\nto = \"END\"\n",
            "agent-audit.toml:2: agents.h.audit_log: in a workflow file, the audit log is set once at the top level",
        ),
        (
            "agent-telemetry.toml",
            "start = \"a\"\n[agents.h]\nmodel = \"echo\"\ntelemetry = \"console\"\n[[nodes]]\nname = \"a\"\nagent = \"h\"\n[[edges]]\nfrom = \"a\"\nto = \"END\"\n",
            "agent-telemetry.toml:2: agents.h.telemetry: in a workflow file, telemetry is set once at the top level",
        ),
        (
            "bad-telemetry.toml",
            "start = \"a\"\ntelemetry = \"consol\"\n[agents.h]\nmodel = \"echo\"\n[[nodes]]\nname = \"a\"\nagent = \"h\"\n[[edges]]\nfrom = \"a\"\nto = \"END\"\n",
            "bad-telemetry.toml:2: invalid telemetry: unknown telemetry \"consol\" (did you mean \"console\"?)",
        ),
        (
            "bad-audit.toml",
            "start = \"a\"\naudit_log = { path = \"./a.jsonl\", log = \"q4\" }\n[agents.h]\nmodel = \"echo\"\n[[nodes]]\nname = \"a\"\nagent = \"h\"\n[[edges]]\nfrom = \"a\"\nto = \"END\"\n",
            "bad-audit.toml:2: audit_log: ",
        ),
    ];
    for (file, text, expected) in cases {
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        let o = loomflow(&["run", path.to_str().unwrap(), "hi"]);
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(err.contains(expected), "{file}: {err}");
        if file == "inline.toml" {
            assert!(
                err.contains("unknown key `agents.h.modle` (did you mean `model`?)"),
                "{err}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_workflow_files_memory_reaches_its_agents_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.db");
    let file = dir.path().join("remembering.toml");
    std::fs::write(
        &file,
        format!(
            "start = \"answer\"\nmemory = {{ backend = \"sqlite\", path = {:?} }}\n\
             [agents.helper]\nmodel = \"echo\"\n\
             [[nodes]]\nname = \"answer\"\nagent = \"helper\"\n\
             [[edges]]\nfrom = \"answer\"\nto = \"END\"\n",
            db.display().to_string()
        ),
    )
    .unwrap();
    let journal = format!("sqlite:{}", dir.path().join("journal.db").display());
    for prompt in ["my name is Ada", "what is my name"] {
        let args = [
            "run",
            file.to_str().unwrap(),
            prompt,
            "--user",
            "ada",
            "--session",
            "s1",
            "--runtime",
            &journal,
        ];
        let o = loomflow(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let mem = format!("sqlite:{}", db.display());
    let o = loomflow(&["memory", "export", "--memory", &mem, "--user", "ada"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let export: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let inputs: Vec<&str> = export["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["input"].as_str().unwrap())
        .collect();
    assert_eq!(inputs, ["my name is Ada", "what is my name"]);
    let outputs: Vec<&str> = export["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["output"].as_str().unwrap())
        .collect();
    assert_eq!(outputs, ["Echo: my name is Ada", "Echo: what is my name"]);
}

#[test]
fn a_workflow_files_audit_log_chains_its_steps_and_agent_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let file = dir.path().join("audited.toml");
    std::fs::write(
        &file,
        format!(
            "start = \"draft\"\n\
             audit_log = {{ path = \"sqlite:{}\", secret_env = \"LOOMFLOW_TEST_AUDIT_KEY\" }}\n\
             [agents.writer]\nmodel = \"echo\"\n\
             [[nodes]]\nname = \"draft\"\nagent = \"writer\"\n\
             [[nodes]]\nname = \"polish\"\nagent = \"writer\"\n\
             [[edges]]\nfrom = \"draft\"\nto = \"polish\"\n\
             [[edges]]\nfrom = \"polish\"\nto = \"END\"\n",
            db.display()
        ),
    )
    .unwrap();
    let key = "0123456789abcdef-workflow-key";
    let cli = |args: &[&str]| loomflow_with_audit_key(args, key);
    let journal = format!("sqlite:{}", dir.path().join("journal.db").display());
    let o = cli(&[
        "run",
        file.to_str().unwrap(),
        "hi",
        "--user",
        "ada",
        "--runtime",
        &journal,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let location = format!("sqlite:{}", db.display());
    let o = cli(&[
        "audit",
        "verify",
        &location,
        "--secret-env",
        "LOOMFLOW_TEST_AUDIT_KEY",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("ok: 8 entries"), "{}", stdout(&o));
    let o = cli(&["audit", "show", &location]);
    assert!(o.status.success(), "{}", stderr(&o));
    let entries: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let trail: Vec<String> = entries
        .iter()
        .map(|e| {
            let step = e["payload"]["step"].as_str().unwrap_or("");
            format!(
                "{}{}{step}",
                e["action"].as_str().unwrap(),
                if step.is_empty() { "" } else { ":" }
            )
        })
        .collect();
    assert_eq!(
        trail,
        [
            "step_started:draft",
            "run_started",
            "run_completed",
            "step_completed:draft",
            "step_started:polish",
            "run_started",
            "run_completed",
            "step_completed:polish",
        ]
    );
    assert!(entries.iter().all(|e| e["user_id"] == "ada"));
}

#[test]
fn runs_are_journaled_and_the_journal_commands_show_signal_and_prune() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("sqlite:{}", dir.path().join("j.db").display());
    let at = ["--runtime", spec.as_str(), "--user", "ops"];
    let o = loomflow(&[
        "run",
        "hello",
        "--model",
        "echo",
        "--session",
        "s1",
        at[0],
        at[1],
        at[2],
        at[3],
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "Echo: hello\n");

    let o = loomflow(&["journal", "show", "s1", at[0], at[1], at[2], at[3]]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("run 1 (started "), "{text}");
    assert!(text.contains(", finished "), "{text}");
    assert!(text.contains("\n  model_call_1@"), "{text}");

    // Another user's view of the same session is empty.
    let o = loomflow(&["journal", "show", "s1", at[0], at[1], "--json"]);
    assert_eq!(stdout(&o), "{\"runs\":[],\"steps\":[]}\n");

    let o = loomflow(&[
        "signal",
        "s1",
        "approve",
        "{\"ok\":true}",
        at[0],
        at[1],
        at[2],
        at[3],
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "signal `approve` sent to session s1\n");

    let o = loomflow(&["journal", "prune", at[0], at[1]]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("prune needs a filter"),
        "{}",
        stderr(&o)
    );
    let o = loomflow(&["journal", "prune", "--older-than", "7 days", at[0], at[1]]);
    assert!(
        stderr(&o).contains("write a number and a unit"),
        "{}",
        stderr(&o)
    );
    let o = loomflow(&[
        "journal",
        "prune",
        "--session",
        "s1",
        at[0],
        at[1],
        at[2],
        at[3],
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "pruned 1 runs, 1 steps, 0 checkpoints, 1 signals\n"
    );
    let o = loomflow(&["journal", "show", "s1", at[0], at[1], at[2], at[3]]);
    assert_eq!(stdout(&o), "no journaled runs for session s1\n");

    let o = loomflow(&["run", "hi", "--model", "echo", "--runtime", "redis://x"]);
    assert!(
        stderr(&o).contains("unknown runtime \"redis://x\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn submit_worker_and_status_share_a_postgres_queue() {
    let pg = loomflow_testkit::postgres::TempPostgres::start();
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("greeter.toml");
    std::fs::write(&config, "model = \"echo\"\n").unwrap();

    // Misuse is refused with a reason.
    let o = loomflow(&["submit", "greet", "hi", "--runtime", "sqlite"]);
    assert!(
        stderr(&o).contains("the run queue lives in Postgres"),
        "{}",
        stderr(&o)
    );
    let o = loomflow(&["worker", "--runtime", &url]);
    assert!(stderr(&o).contains("at least one job"), "{}", stderr(&o));
    let o = loomflow(&["worker", "--runtime", &url, "--agent", "greet"]);
    assert!(
        stderr(&o).contains("write --agent NAME=FILE.toml"),
        "{}",
        stderr(&o)
    );

    // Queued before any worker exists.
    let o = loomflow(&[
        "submit",
        "greet",
        "hello",
        "--runtime",
        &url,
        "--user",
        "alice",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run_id = stdout(&o).trim().to_owned();
    assert!(run_id.starts_with("run_"), "{run_id}");

    let agent = format!("greet={}", config.display());
    let mut worker = Command::new(env!("CARGO_BIN_EXE_loomflow"))
        .args([
            "worker",
            "--runtime",
            &url,
            "--lease",
            "5s",
            "--id",
            "cli-w1",
        ])
        .args([
            "--agent",
            &agent,
            "--workflow",
            "triage=examples/triage.toml",
        ])
        .current_dir(workspace_root())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    let o = loomflow(&[
        "submit",
        "triage",
        "My invoice charged me twice",
        "--runtime",
        &url,
        "--user",
        "bob",
        "--wait",
        "60s",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("refunded the duplicate payment"),
        "{}",
        stdout(&o)
    );

    let o = loomflow(&[
        "status",
        &run_id,
        "--runtime",
        &url,
        "--user",
        "alice",
        "--events",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    let kinds: Vec<String> = lines[..lines.len() - 1]
        .iter()
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            e["event"]["kind"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(kinds, ["started", "completed"]);
    assert_eq!(lines.last().unwrap(), &"Echo: hello");
    assert!(
        stderr(&o).contains(": succeeded (1 attempt(s), worker cli-w1)"),
        "{}",
        stderr(&o)
    );

    // Another user cannot read it.
    let o = loomflow(&["status", &run_id, "--runtime", &url, "--user", "bob"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no run run_"), "{}", stderr(&o));

    // SIGTERM stops the worker cleanly, with a report.
    let term = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = worker.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(worker.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    assert!(
        err.contains("worker stopped: 2 succeeded, 0 failed, 0 lost"),
        "{err}"
    );
}

#[test]
fn memory_carries_a_session_across_processes_and_the_memory_commands_serve_gdpr_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mem = format!("sqlite:{}", dir.path().join("mem.db").display());
    let journal = format!("sqlite:{}", dir.path().join("journal.db").display());
    let run = |prompt: &str, user: &str, session: &str| {
        let o = loomflow(&[
            "run",
            prompt,
            "--model",
            "echo",
            "--json",
            "--user",
            user,
            "--session",
            session,
            "--memory",
            &mem,
            "--runtime",
            &journal,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let r: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        r["tokens_in"].as_u64().unwrap()
    };
    // The echo model counts one input token per word of the transcript it
    // is sent: a second process continuing s1 sends the first turn too.
    let first = run("my name is Alice", "alice", "s1");
    let continued = run("what is my name", "alice", "s1");
    let fresh = run("what is my name", "alice", "s9");
    let other_user = run("what is my name", "bob", "s1");
    assert_eq!(first, 4);
    assert_eq!(other_user, 4, "bob's s1 is not alice's s1");
    // The first turn (4 + 5 words), then the new prompt.
    assert_eq!(continued, 4 + 5 + 4, "history replayed");
    // Another session of alice's recalls s1's turns as past episodes.
    assert!(fresh > 4, "s9 recalls s1 as past episodes: {fresh}");

    let o = loomflow(&["memory", "profile", "--memory", &mem, "--user", "alice"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(p["episode_count"], 3);
    assert_eq!(p["recent_sessions"], serde_json::json!(["s9", "s1"]));
    assert_eq!(p["backend"], "sqlite");

    let o = loomflow(&["memory", "export", "--memory", &mem, "--user", "alice"]);
    let e: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(e["episodes"][0]["input"], "my name is Alice");
    assert_eq!(e["episodes"][0]["output"], "Echo: my name is Alice");

    let o = loomflow(&[
        "memory",
        "forget",
        "--memory",
        &mem,
        "--user",
        "alice",
        "--session",
        "s1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let f: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(f["erased"]["episodes"], 2);
    let o = loomflow(&[
        "memory", "forget", "--memory", &mem, "--user", "alice", "--before", "1d",
    ]);
    let f: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(f["total"], 0, "nothing is a day old");
    let o = loomflow(&["memory", "forget", "--memory", &mem, "--user", "alice"]);
    let f: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(f["erased"]["episodes"], 1);
    let o = loomflow(&["memory", "profile", "--memory", &mem, "--user", "bob"]);
    let p: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(p["episode_count"], 1, "bob keeps his");

    let o = loomflow(&[
        "memory", "forget", "--memory", &mem, "--user", "alice", "--before", "soon",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("neither an RFC 3339 time"),
        "{}",
        stderr(&o)
    );
    let o = loomflow(&["memory", "profile", "--memory", "mongo://x"]);
    assert!(stderr(&o).contains("valid choices are"), "{}", stderr(&o));
}

#[test]
fn a_configured_audit_log_records_runs_and_audit_verify_catches_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"
instructions = "You are terse."
permissions = "strict"
budget = {{ max_tokens = 10000, max_wall_clock_minutes = 5 }}
audit_log = {{ path = "{}", secret_env = "LOOMFLOW_TEST_AUDIT_KEY" }}

[model]
name = "scripted"
[[model.turns]]
text = "Hello."
"#,
            log.display()
        ),
    )
    .unwrap();
    let cli = |args: &[&str]| loomflow_with_audit_key(args, "0123456789abcdef-test-key");
    let config = config.to_str().unwrap();
    let file = log.to_str().unwrap();
    let o = cli(&["run", "Hi", "--config", config, "--user", "alice"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli(&[
        "audit",
        "verify",
        file,
        "--secret-env",
        "LOOMFLOW_TEST_AUDIT_KEY",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("ok: 2 entries, head "), "{out}");
    let head = out.trim().rsplit(' ').next().unwrap().to_owned();

    let o = cli(&[
        "audit",
        "show",
        file,
        "--user",
        "alice",
        "--action",
        "run_started",
    ]);
    let shown: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(shown["payload"]["prompt"], "Hi");
    assert_eq!(shown["actor"], "user");

    // The wrong key, an edited entry, a cut tail: each fails with the first
    // bad entry named.
    let o = loomflow_with_audit_key(
        &[
            "audit",
            "verify",
            file,
            "--secret-env",
            "LOOMFLOW_TEST_AUDIT_KEY",
        ],
        "another key",
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("tampered: line 1 (seq 1): signature does not match"),
        "{}",
        stderr(&o)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, text.replace("\"turns\":1", "\"turns\":7")).unwrap();
    let o = cli(&[
        "audit",
        "verify",
        file,
        "--secret-env",
        "LOOMFLOW_TEST_AUDIT_KEY",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("line 2 (seq 2): signature does not match the entry's content"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&log, text.lines().next().unwrap().to_owned() + "\n").unwrap();
    let o = cli(&[
        "audit",
        "verify",
        file,
        "--secret-env",
        "LOOMFLOW_TEST_AUDIT_KEY",
        "--expected-head",
        &head,
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("the expected head is not in the log"),
        "{}",
        stderr(&o)
    );

    // A key written into the config file is refused.
    std::fs::write(
        dir.path().join("bad.toml"),
        "instructions = \"x\"\nmodel = \"echo\"\naudit_log = { path = \"a.jsonl\", secret = \"hunter2\" }\n",
    )
    .unwrap();
    let o = cli(&[
        "run",
        "Hi",
        "--config",
        dir.path().join("bad.toml").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("name that variable with secret_env"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_audit_log_in_sqlite_is_written_by_runs_and_checked_by_audit_verify() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("logs/audit.db");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"
instructions = "You are terse."
audit_log = {{ path = "sqlite:{}", log = "2026-q4", secret_env = "LOOMFLOW_TEST_AUDIT_KEY" }}

[model]
name = "scripted"
[[model.turns]]
text = "Hello."
"#,
            db.display()
        ),
    )
    .unwrap();
    let cli = loomflow_with_audit_key;
    let key = "0123456789abcdef-test-key";
    let o = cli(
        &[
            "run",
            "Hi",
            "--config",
            config.to_str().unwrap(),
            "-u",
            "bob",
        ],
        key,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let location = format!("sqlite:{}", db.display());
    let verify = [
        "audit",
        "verify",
        &location,
        "--log",
        "2026-q4",
        "--secret-env",
        "LOOMFLOW_TEST_AUDIT_KEY",
    ];
    let o = cli(&verify, key);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("ok: 2 entries, head "),
        "{}",
        stdout(&o)
    );

    let o = cli(
        &[
            "audit",
            "show",
            &location,
            "--log",
            "2026-q4",
            "--action",
            "run_completed",
        ],
        key,
    );
    let shown: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(shown["user_id"], "bob");
    assert_eq!(shown["seq"], 2);

    // Another log in the same file is empty; the wrong key fails at seq 1.
    let o = cli(
        &[
            "audit",
            "verify",
            &location,
            "--secret-env",
            "LOOMFLOW_TEST_AUDIT_KEY",
        ],
        key,
    );
    assert!(stdout(&o).starts_with("ok: 0 entries"), "{}", stdout(&o));
    let o = cli(&verify, "another key");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("tampered: seq 1: signature does not match"),
        "{}",
        stderr(&o)
    );
    let o = cli(
        &[
            "audit",
            "verify",
            "sqlite:/nonexistent/a.db",
            "--secret-env",
            "LOOMFLOW_TEST_AUDIT_KEY",
        ],
        key,
    );
    assert!(
        stderr(&o).contains("/nonexistent/a.db: no such file"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn trace_prints_the_span_tree_on_stderr_and_keeps_stdout_clean() {
    let o = loomflow(&[
        "run",
        "hi",
        "--model",
        "echo",
        "--runtime",
        "memory",
        "--user",
        "alice",
        "--trace",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "Echo: hi");
    let err = stderr(&o);
    let tree: Vec<&str> = err
        .lines()
        .map(|l| l.split("  ").find(|p| !p.is_empty()).unwrap_or(""))
        .filter(|l| l.contains("loom."))
        .collect();
    assert_eq!(
        tree,
        [
            "▸ loom.run",
            "▸ loom.turn",
            "▸ loom.model.complete",
            "✓ loom.model.complete",
            "✓ loom.turn",
            "✓ loom.run",
        ],
        "{err}"
    );
    assert!(
        err.starts_with("▸ loom.run  model=echo user=alice"),
        "{err}"
    );
}

#[test]
fn a_config_or_workflow_file_sends_spans_to_a_jsonl_file() {
    let dir = tempfile::tempdir().unwrap();
    let spans = dir.path().join("spans.jsonl");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "model = \"echo\"\nname = \"helper\"\ntelemetry = \"file:{}\"\n",
            spans.display()
        ),
    )
    .unwrap();
    let o = loomflow(&[
        "run",
        "hi",
        "--config",
        config.to_str().unwrap(),
        "--runtime",
        "memory",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&spans).unwrap();
    let runs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["name"] == "loom.run")
        .collect();
    assert_eq!(runs.len(), 1, "{text}");
    assert_eq!(runs[0]["attributes"]["gen_ai.agent.name"], "helper");

    let flow = dir.path().join("flow.toml");
    let wf_spans = dir.path().join("wf.jsonl");
    std::fs::write(
        &flow,
        format!(
            "name = \"flow\"\nstart = \"a\"\ntelemetry = \"file:{}\"\n[agents.h]\nmodel = \"echo\"\n[[nodes]]\nname = \"a\"\nagent = \"h\"\n[[edges]]\nfrom = \"a\"\nto = \"END\"\n",
            wf_spans.display()
        ),
    )
    .unwrap();
    let o = loomflow(&[
        "run",
        flow.to_str().unwrap(),
        "hello",
        "--runtime",
        "memory",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let names: Vec<String> = std::fs::read_to_string(&wf_spans)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "span")
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "loom.model.complete",
            "loom.turn",
            "loom.run",
            "loom.workflow.step",
            "loom.workflow"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_otel_exports_where_the_otel_variables_say() {
    let receiver = loomflow_testkit::otlp::OtlpReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "model = \"echo\"\nname = \"exported\"\ntelemetry = \"otel\"\n",
    )
    .unwrap();
    for (protocol, endpoint) in [
        ("grpc", receiver.grpc_endpoint().to_owned()),
        ("http/protobuf", receiver.http_endpoint().to_owned()),
    ] {
        let config = config.clone();
        let o = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_loomflow"))
                .args(["run", "hi", "--runtime", "memory", "--config"])
                .arg(&config)
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
                .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
                .env("OTEL_SERVICE_NAME", format!("cli-{protocol}"))
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(o.status.success(), "{protocol}: {}", stderr(&o));
        let service = format!("cli-{protocol}");
        let spans = receiver
            .wait_for_spans(std::time::Duration::from_secs(20), |s| {
                s.iter()
                    .any(|s| s.resource.get("service.name") == Some(&serde_json::json!(service)))
            })
            .await;
        let run = spans
            .iter()
            .find(|s| {
                s.resource["service.name"] == serde_json::json!(service)
                    && s.name == "invoke_agent exported"
            })
            .unwrap_or_else(|| panic!("{protocol}: {spans:#?}"));
        assert_eq!(run.attr("loom.span.name"), Some("loom.run"));
    }
}

#[test]
fn a_configs_mcp_servers_give_the_agent_their_tools() {
    let dir = tempfile::tempdir().unwrap();
    let everything = loomflow_testkit::mcp_server("mcp-server-everything");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"
instructions = "Use the tools."

[model]
name = "scripted"

[[model.turns]]
tool_calls = [
  {{ name = "echo", args = {{ message = "hi from mcp" }} }},
  {{ name = "trigger-long-running-operation", args = {{ duration = 0.2, steps = 2 }} }},
]

[[model.turns]]
text = "done"

[[mcp]]
name = "ev"
description = "the reference server"
transport = "stdio"
command = "{}"
args = ["stdio"]

[[mcp]]
name = "gone"
transport = "stdio"
command = "/nonexistent/mcp-server"
"#,
            everything.display()
        ),
    )
    .unwrap();
    let o = loomflow(&["run", "go", "-c", config.to_str().unwrap(), "--stream"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines,
        [
            r#"→ echo({"message":"hi from mcp"})"#,
            r#"→ trigger-long-running-operation({"duration":0.2,"steps":2})"#,
            "← Echo: hi from mcp",
            "  … trigger-long-running-operation 1/2",
            "  … trigger-long-running-operation 2/2",
            "← Long running operation completed. Duration: 0.2 seconds, Steps: 2.",
            "done",
        ],
        "{out}"
    );
    assert!(
        stderr(&o).contains(
            "warning: MCP server `gone` is unavailable: cannot start `/nonexistent/mcp-server`"
        ),
        "{}",
        stderr(&o)
    );

    // A misspelt key is named, with the file and the key it should be.
    std::fs::write(
        &config,
        "instructions = \"x\"\nmodel = \"echo\"\n[[mcp]]\nnmae = \"ev\"\ntransport = \"stdio\"\ncommand = \"x\"\n",
    )
    .unwrap();
    let o = loomflow(&["run", "go", "-c", config.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("mcp[0].nmae") && err.contains("`name`"),
        "{err}"
    );
}

/// An agent config with a name, the echo model and the memory reference
/// server's tools, in `dir`.
fn served_agent(dir: &std::path::Path) -> PathBuf {
    let config = dir.join("helper.toml");
    std::fs::write(
        &config,
        format!(
            r#"
name = "helper"
instructions = "Be brief."
model = "echo"

[[mcp]]
name = "mem"
transport = "stdio"
command = "{}"
env = {{ MEMORY_FILE_PATH = "{}" }}
"#,
            loomflow_testkit::mcp_server("mcp-server-memory").display(),
            dir.join("memory.json").display()
        ),
    )
    .unwrap();
    config
}

/// Runs the official Python SDK's client (tests/fixtures/mcp_client.py)
/// with `args` and gives what it saw.
fn python_client(args: &[&str]) -> serde_json::Value {
    let o = Command::new(loomflow_testkit::mcp_python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/mcp_client.py"
        ))
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the MCP client failed: {}\n{}",
        stderr(&o),
        stdout(&o)
    );
    serde_json::from_str(stdout(&o).trim()).unwrap()
}

/// What every client sees of the served `helper`, calling as `user`.
fn check_served(seen: &serde_json::Value, user: &str) {
    assert_eq!(seen["server"], "loomflow-helper");
    let tools: Vec<&str> = seen["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tools.contains(&"helper"), "{tools:?}");
    // Re-exported: the memory server's tools that change nothing…
    assert!(tools.contains(&"read_graph"), "{tools:?}");
    // …and not the destructive ones, which stay behind the agent's gate.
    assert!(!tools.contains(&"delete_entities"), "{tools:?}");

    let first = &seen["first"];
    assert_eq!(first["is_error"], false);
    assert_eq!(first["text"], serde_json::json!(["Echo: hello there"]));
    assert_eq!(first["structured"]["user_id"], user);
    assert!(first["structured"].get("messages").is_none());
    // The second call continues the session, and a `user` argument changes
    // nothing: who calls comes from the connection.
    let second = &seen["second"];
    assert_eq!(second["text"], serde_json::json!(["Echo: again"]));
    assert_eq!(second["structured"]["user_id"], user);
    assert_eq!(
        second["structured"]["session_id"],
        first["structured"]["session_id"]
    );
    assert_eq!(seen["missing_prompt"]["is_error"], true);
    assert_eq!(
        seen["missing_prompt"]["text"],
        serde_json::json!(["`prompt` (a string) is required"])
    );
    assert_eq!(seen["read_graph"]["is_error"], false);
    let refused = seen["delete_entities"].as_str().unwrap();
    assert!(
        refused.contains("no tool `delete_entities` here"),
        "{refused}"
    );
}

#[test]
fn mcp_serve_over_stdio_answers_the_official_python_client() {
    let dir = tempfile::tempdir().unwrap();
    let config = served_agent(dir.path());
    let seen = python_client(&[
        "helper",
        "stdio",
        env!("CARGO_BIN_EXE_loomflow"),
        "mcp",
        "serve",
        config.to_str().unwrap(),
        "--user",
        "carol",
        "--reexport-tools",
        "--runtime",
        "memory",
    ]);
    check_served(&seen, "carol");
}

#[test]
fn mcp_serve_over_http_takes_the_user_from_the_bearer_token() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let config = served_agent(dir.path());
    let port = loomflow_testkit::server::free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_loomflow"));
    command
        .args([
            "mcp",
            "serve",
            config.to_str().unwrap(),
            "--http",
            &format!("127.0.0.1:{port}"),
            "--tokens-env",
            "LOOMFLOW_TEST_MCP_TOKENS",
            "--reexport-tools",
            "--runtime",
            "memory",
        ])
        .env("LOOMFLOW_TEST_MCP_TOKENS", "t-alice=alice, t-bob=bob");
    let _server = loomflow_testkit::server::ChildServer::start(
        "loomflow mcp serve --http",
        command,
        port,
        tempfile::tempdir().unwrap(),
        std::time::Duration::from_secs(60),
        |port| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
    let url = format!("http://127.0.0.1:{port}/mcp");
    check_served(
        &python_client(&["helper", "http", &url, "t-alice"]),
        "alice",
    );
    check_served(&python_client(&["helper", "http", &url, "t-bob"]), "bob");

    // Without a known token, nothing gets through.
    for auth in ["", "Authorization: Bearer t-mallory\r\n"] {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        write!(
            stream,
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 401"), "{auth:?}: {response}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_workflow_is_a_tool_for_loomflows_own_mcp_client() {
    use loomflow::mcp::{McpRegistry, McpServerSpec};
    use loomflow::tool::ToolHost;
    let dir = tempfile::tempdir().unwrap();
    let triage = workspace_root().join("examples/triage.toml");
    let registry = McpRegistry::connect([McpServerSpec::stdio(
        "support",
        env!("CARGO_BIN_EXE_loomflow"),
        [
            "mcp",
            "serve",
            triage.to_str().unwrap(),
            "--runtime",
            &format!("sqlite:{}", dir.path().join("journal.db").display()),
        ],
    )])
    .await
    .unwrap();
    assert_eq!(registry.status()[0].error, None, "{:?}", registry.status());
    let defs = registry.list_tools().await.unwrap();
    let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["triage"]);
    assert!(!defs[0].destructive);
    assert_eq!(
        defs[0].input_schema["required"],
        serde_json::json!(["input"])
    );
    let out = registry
        .call(
            "triage",
            &serde_json::json!({"input": "My invoice charged me twice"}),
            "c1",
        )
        .await
        .unwrap();
    assert_eq!(
        out["output"],
        "I'm sorry about the double charge. I've refunded the duplicate payment; it will show within 3-5 business days."
    );
    assert_eq!(out["visited"], serde_json::json!(["classify", "billing"]));
    assert_eq!(
        out["user_id"],
        serde_json::to_value(loomflow::UserId::anonymous()).unwrap()
    );
}

/// A workflow file whose one agent has the reference server as `[[mcp]]`.
fn mcp_workflow_file(dir: &std::path::Path) -> PathBuf {
    let everything = loomflow_testkit::mcp_server("mcp-server-everything");
    let file = dir.join("flow.toml");
    std::fs::write(
        &file,
        format!(
            r#"
name = "flow"
start = "helper"

[agents.helper]
instructions = "Use the tools."
model = {{ name = "scripted", turns = [
  {{ tool_calls = [{{ name = "get-sum", args = {{ a = 20, b = 22 }} }}] }},
  {{ text = "the sum is 42" }},
] }}

[[agents.helper.mcp]]
name = "ev"
transport = "stdio"
command = "{}"
args = ["stdio"]

[[nodes]]
name = "helper"
agent = "helper"

[[edges]]
from = "helper"
to = "END"
"#,
            everything.display()
        ),
    )
    .unwrap();
    file
}

#[test]
fn a_workflow_files_agents_get_their_mcp_servers() {
    let dir = tempfile::tempdir().unwrap();
    let file = mcp_workflow_file(dir.path());
    let o = loomflow(&[
        "run",
        file.to_str().unwrap(),
        "add",
        "--stream",
        "--runtime",
        "memory",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(r#"→ get-sum({"a":20,"b":22})"#), "{out}");
    assert!(out.contains("the sum is 42"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_files_mcp_servers_are_connected_by_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let wf = loomflow::Workflow::from_file(mcp_workflow_file(dir.path())).unwrap();
    assert_eq!(wf.mcp_servers().len(), 1);
    assert_eq!(wf.mcp_servers()[0].agent, "helper");
    // Not connected: the agent's run says what to call.
    let err = wf.run("add").await.unwrap_err().to_string();
    assert!(
        err.contains("the MCP servers of agents.helper.mcp were never connected")
            && err.contains("loomflow::connect_workflow_mcp"),
        "{err}"
    );
    let connected = loomflow::connect_workflow_mcp(&wf).await.unwrap();
    assert_eq!(connected.len(), 1);
    assert_eq!(connected[0].1.status()[0].error, None);
    let out = wf.run("add").await.unwrap();
    assert_eq!(out.output, "the sum is 42");
}
