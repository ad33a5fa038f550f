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

    let o = loomflow(&["run", "Hi", "--model", "gpt-9000"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: unknown model \"gpt-9000\": valid choices are echo"),
        "{}",
        stderr(&o)
    );

    let o = loomflow(&["run", "Hi", "--model", "echo", "--user", "bad user"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("user id \"bad user\" contains ' '"),
        "{}",
        stderr(&o)
    );
}
