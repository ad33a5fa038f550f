//! The registry against servers on the official Python SDK (PyPI):
//! `mcp-server-git` and `mcp-server-time`, and a small server whose tools
//! change while connected (`tests/fixtures/changing_tools.py`): the next turn
//! offers the new tool, and watchers are told.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use loomflow::prelude::*;
use loomflow::tool::ToolHost;
use loomflow_mcp::{McpRegistry, McpServerSpec, ToolChange};
use loomflow_testkit::{RecordingModel, mcp_python, mcp_server};
use serde_json::json;

fn changing() -> McpServerSpec {
    McpServerSpec::stdio(
        "changing",
        mcp_python().display().to_string(),
        [concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/changing_tools.py"
        )],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_time_and_a_server_whose_tools_change() {
    let repo = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(repo.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(repo.path().join("notes.txt"), "first\n").unwrap();
    git(&["add", "notes.txt"]);
    git(&["commit", "-q", "-m", "first note"]);
    std::fs::write(repo.path().join("draft.txt"), "wip\n").unwrap();
    let repo_path = repo.path().display().to_string();

    let registry = McpRegistry::connect([
        McpServerSpec::stdio(
            "git",
            mcp_server("mcp-server-git").display().to_string(),
            ["--repository", repo_path.as_str()],
        ),
        McpServerSpec::stdio(
            "time",
            mcp_server("mcp-server-time").display().to_string(),
            ["--local-timezone", "UTC"],
        ),
        changing(),
    ])
    .await
    .unwrap();
    assert!(
        registry.status().iter().all(|s| s.error.is_none()),
        "{:?}",
        registry.status()
    );
    let mut changes = registry.watch();

    let model = RecordingModel::new(ScriptedModel::new([
        ScriptedTurn::tool_call("git_status", json!({"repo_path": repo_path}))
            .and_tool_call("git_log", json!({"repo_path": repo_path, "max_count": 5}))
            .and_tool_call(
                "convert_time",
                json!({"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}),
            )
            .and_tool_call("unlock", json!({})),
        ScriptedTurn::tool_call("vault", json!({"code": "1234"})),
        ScriptedTurn::tool_call("lock", json!({})),
        ScriptedTurn::text("done"),
    ]));
    let agent = Agent::builder()
        .model(model.clone())
        .tool_host(registry.clone())
        .build()
        .unwrap();
    assert_eq!(agent.run("go").await.unwrap().output, "done");

    let calls = model.calls();
    let texts = calls[1].tool_texts();
    assert!(texts[0].contains("draft.txt"), "git status: {}", texts[0]);
    assert!(texts[1].contains("first note"), "git log: {}", texts[1]);
    assert!(
        texts[2].contains("Asia/Tokyo") && texts[2].contains("21:00"),
        "time: {}",
        texts[2]
    );
    assert!(texts[3].contains("unlocked"), "{}", texts[3]);
    // The tool the server added after `unlock` is offered from the next turn
    // on, and called; after `lock` it is gone again.
    let offers = |i: usize| calls[i].tools.iter().any(|t| t.name == "vault");
    assert!(!offers(0));
    assert!(offers(1));
    assert!(!offers(3));
    assert_eq!(
        calls[2].tool_texts()[4],
        r#"{"result":"vault opened with 1234"}"#
    );

    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(10), changes.recv())
            .await
            .expect("two changes")
            .unwrap();
        seen.push((event.change, event.server, event.tool));
    }
    assert_eq!(
        seen,
        [
            (ToolChange::Added, "changing".to_owned(), "vault".to_owned()),
            (
                ToolChange::Removed,
                "changing".to_owned(),
                "vault".to_owned()
            ),
        ]
    );
    let defs = registry.list_tools().await.unwrap();
    assert!(!defs.iter().any(|d| d.name == "vault"));
    // git's hints: status reads, reset changes the repository.
    let def = |n: &str| defs.iter().find(|d| d.name == n).unwrap().clone();
    assert!(!def("git_status").destructive);
    assert!(def("git_reset").destructive);
}
