//! The registry against the official MCP reference servers (npm), over
//! stdio and Streamable HTTP: three servers at once (two of them the same,
//! so names collide), one that cannot start, an agent calling their tools,
//! the gate denying a destructive one, and a call that runs past its
//! timeout.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use loomflow::permissions::StandardPermissions;
use loomflow::prelude::*;
use loomflow::tool::ToolHost;
use loomflow_mcp::{McpRegistry, McpServerSpec};
use loomflow_testkit::{RecordingModel, mcp_server};
use serde_json::json;

mod common;
use common::everything;

fn memory(file: &std::path::Path) -> McpServerSpec {
    McpServerSpec::stdio(
        "mem",
        mcp_server("mcp-server-memory").display().to_string(),
        Vec::<String>::new(),
    )
    .env("MEMORY_FILE_PATH", file.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_uses_tools_from_three_servers_through_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let registry = McpRegistry::connect([
        everything("a"),
        everything("b"),
        memory(&dir.path().join("memory.json")),
        McpServerSpec::stdio("broken", "/nonexistent/mcp-server", Vec::<String>::new()),
    ])
    .await
    .unwrap();

    // The broken one is listed with why; the others are up.
    let status = registry.status();
    let broken = status.iter().find(|s| s.name == "broken").unwrap();
    assert!(
        broken
            .error
            .as_deref()
            .unwrap()
            .contains("cannot start `/nonexistent/mcp-server`"),
        "{broken:?}"
    );
    for up in status.iter().filter(|s| s.name != "broken") {
        assert_eq!(up.error, None, "{up:?}");
        assert!(up.tools > 0, "{up:?}");
    }

    // Names: `echo` is on a and b, so both are qualified; memory's are bare.
    let defs = registry.list_tools().await.unwrap();
    let def = |n: &str| {
        defs.iter()
            .find(|d| d.name == n)
            .unwrap_or_else(|| panic!("no {n}"))
    };
    assert_eq!(def("a__echo").server.as_deref(), Some("a"));
    assert_eq!(def("b__echo").server.as_deref(), Some("b"));
    assert!(!defs.iter().any(|d| d.name == "echo"));
    assert!(!def("a__echo").destructive, "readOnlyHint");
    assert!(def("delete_entities").destructive, "destructiveHint");
    assert!(!def("create_entities").destructive);
    assert!(def("a__echo").input_schema["properties"]["message"].is_object());

    let model = RecordingModel::new(ScriptedModel::new([
        ScriptedTurn::tool_call("a__echo", json!({"message": "hello"}))
            .and_tool_call("b__get-sum", json!({"a": 2, "b": 40}))
            .and_tool_call(
                "create_entities",
                json!({"entities": [{"name": "Ada", "entityType": "person", "observations": ["writes code"]}]}),
            ),
        ScriptedTurn::tool_call("read_graph", json!({}))
            .and_tool_call("delete_entities", json!({"entityNames": ["Ada"]})),
        ScriptedTurn::text("done"),
    ]));
    let agent = Agent::builder()
        .model(model.clone())
        .tool_host(registry.clone())
        .permissions(StandardPermissions::new())
        .build()
        .unwrap();
    let r = agent.run("use the tools").await.unwrap();
    assert_eq!(r.output, "done");

    let calls = model.calls();
    let first = calls[1].tool_texts();
    assert!(first[0].contains("hello"), "{first:?}");
    assert!(first[1].contains("42"), "{first:?}");
    assert!(first[2].contains("Ada"), "{first:?}");
    let second = &calls[2].tool_texts()[3..];
    assert!(
        second[0].contains("Ada") && second[0].contains("writes code"),
        "{second:?}"
    );
    // The destructive tool asked; with no approver the gate said no.
    assert_eq!(second[1], "DENIED: approval required; no approver");
    // The qualified form of a bare name resolves too (for a direct call;
    // the gate treats a name it was not offered as destructive).
    let graph = registry
        .call("mem__read_graph", &json!({}), "c1")
        .await
        .unwrap();
    assert!(graph.to_string().contains("Ada"), "not deleted: {graph}");

    // An unknown tool names the ones there are.
    let err = registry
        .call("ech", &json!({}), "c2")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("unknown tool `ech`; available tools: "),
        "{err}"
    );
    assert!(err.contains("a__echo"), "{err}");
    registry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_runs_too_long_is_a_timeout_error() {
    let registry = McpRegistry::builder()
        .server(everything("slow"))
        .call_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = registry
        .call(
            "trigger-long-running-operation",
            &json!({"duration": 30, "steps": 3}),
            "c1",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, loomflow::ToolError::Timeout { .. }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // The server still answers afterwards.
    let echoed = registry
        .call("echo", &json!({"message": "still here"}), "c2")
        .await
        .unwrap();
    assert!(echoed.to_string().contains("still here"), "{echoed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamable_http_server_and_a_stdio_one_serve_one_agent() {
    use loomflow_testkit::server::{ChildServer, free_port};
    let port = free_port();
    let mut command = std::process::Command::new(mcp_server("mcp-server-everything"));
    command.arg("streamableHttp").env("PORT", port.to_string());
    let _web = ChildServer::start(
        "server-everything (streamableHttp)",
        command,
        port,
        tempfile::tempdir().unwrap(),
        Duration::from_secs(30),
        |port| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
    let registry = McpRegistry::connect([
        McpServerSpec::http("web", format!("http://127.0.0.1:{port}/mcp"))
            .header("x-test", "loomflow"),
        everything("local"),
    ])
    .await
    .unwrap();
    assert!(
        registry.status().iter().all(|s| s.error.is_none()),
        "{:?}",
        registry.status()
    );

    let model = RecordingModel::new(ScriptedModel::new([
        ScriptedTurn::tool_call("web__echo", json!({"message": "over http"}))
            .and_tool_call("local__echo", json!({"message": "over stdio"}))
            .and_tool_call("web__get-sum", json!({"a": 1, "b": 2})),
        ScriptedTurn::text("done"),
    ]));
    let agent = Agent::builder()
        .model(model.clone())
        .tool_host(registry)
        .build()
        .unwrap();
    assert_eq!(agent.run("go").await.unwrap().output, "done");
    let texts = model.calls()[1].tool_texts();
    assert_eq!(
        texts,
        [
            "Echo: over http",
            "Echo: over stdio",
            "The sum of 1 and 2 is 3."
        ]
    );
}

#[tokio::test]
async fn two_servers_with_one_name_are_refused() {
    let err = McpRegistry::connect([
        McpServerSpec::stdio("x", "/nonexistent/a", Vec::<String>::new()),
        McpServerSpec::stdio("x", "/nonexistent/b", Vec::<String>::new()),
    ])
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "two MCP servers are named `x`; give each a unique name (it qualifies colliding tool names)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_filesystem_server_reads_lists_and_asks_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::write(root.join("notes.txt"), "hello files").unwrap();
    std::fs::write(root.join("dot.png"), b"\x89PNG\r\n\x1a\n").unwrap();
    let at = |name: &str| root.join(name).display().to_string();
    let registry = McpRegistry::connect([McpServerSpec::stdio(
        "fs",
        mcp_server("mcp-server-filesystem").display().to_string(),
        [root.display().to_string()],
    )])
    .await
    .unwrap();
    let defs = registry.list_tools().await.unwrap();
    let destructive = |n: &str| defs.iter().find(|d| d.name == n).unwrap().destructive;
    assert!(!destructive("read_text_file"));
    assert!(!destructive("create_directory"));
    assert!(destructive("write_file"));

    let model = RecordingModel::new(ScriptedModel::new([
        ScriptedTurn::tool_call("read_text_file", json!({"path": at("notes.txt")}))
            .and_tool_call("list_directory", json!({"path": at("")}))
            .and_tool_call("read_media_file", json!({"path": at("dot.png")}))
            .and_tool_call(
                "write_file",
                json!({"path": at("new.txt"), "content": "unwanted"}),
            ),
        ScriptedTurn::text("done"),
    ]));
    let agent = Agent::builder()
        .model(model.clone())
        .tool_host(registry)
        .permissions(StandardPermissions::new())
        .build()
        .unwrap();
    assert_eq!(agent.run("look around").await.unwrap().output, "done");
    let texts = model.calls()[1].tool_texts();
    assert!(texts[0].contains("hello files"), "{texts:?}");
    assert!(
        texts[1].contains("[FILE] notes.txt") && texts[1].contains("[FILE] dot.png"),
        "{texts:?}"
    );
    assert!(texts[2].contains("[image image/png, 8 bytes]"), "{texts:?}");
    assert_eq!(texts[3], "DENIED: approval required; no approver");
    assert!(!root.join("new.txt").exists());
}
