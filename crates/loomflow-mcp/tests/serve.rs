//! An agent served over Streamable HTTP (feature `server`) and reached by
//! the registry, in one process: the caller is the bearer token's user, the
//! served run's tool calls and its tools' progress reach the calling run as
//! `tool_progress` events, and destructive tools are not re-exported.

#![allow(clippy::unwrap_used, clippy::panic)]

use loomflow::journal::CallContext;
use loomflow::prelude::*;
use loomflow::tool::ToolHost;
use loomflow_mcp::serve::{HttpAuth, McpService};
use loomflow_mcp::{McpRegistry, McpServerSpec};
use loomflow_testkit::{collect_events, event_trace};
use serde_json::json;

/// Counts to `n`, telling how far it has come.
///
/// # Arguments
/// * `n` - How far.
#[tool]
async fn count(n: u32) -> u32 {
    for i in 1..=n {
        if let Some(call) = CallContext::current() {
            call.progress(f64::from(i), Some(f64::from(n)), Some(format!("at {i}")))
                .await;
        }
    }
    n
}

/// Forgets everything.
#[tool(destructive)]
async fn forget_all() -> String {
    "forgotten".into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_agent_reports_progress_and_runs_as_the_tokens_user() {
    let served = Agent::builder()
        .name("counter")
        .model(ScriptedModel::new([
            ScriptedTurn::tool_call("count", json!({"n": 2})),
            ScriptedTurn::text("counted"),
        ]))
        .tool(count)
        .tool(forget_all)
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let tokens = [("tok-ann".to_owned(), UserId::try_from("ann").unwrap())];
    tokio::spawn(McpService::agent(served).reexport_tools(true).serve_http(
        listener,
        HttpAuth::bearer(tokens),
        std::future::pending(),
    ));

    // A wrong token is refused at the door: the server is unavailable.
    let refused = McpRegistry::connect([
        McpServerSpec::http("remote", &url).header("Authorization", "Bearer nope")
    ])
    .await
    .unwrap();
    assert_eq!(
        refused.status()[0].error.as_deref(),
        Some(format!(
            "the MCP handshake with {url} failed: the server wants authorization (HTTP 401); \
             check the `headers` (Authorization) of this server"
        ))
        .as_deref()
    );

    let registry = McpRegistry::connect([
        McpServerSpec::http("remote", &url).header("Authorization", "Bearer tok-ann")
    ])
    .await
    .unwrap();
    let names: Vec<String> = registry
        .list_tools()
        .await
        .unwrap()
        .iter()
        .map(|d| d.name.clone())
        .collect();
    assert_eq!(names, ["counter", "count"]);

    let agent = Agent::builder()
        .model(ScriptedModel::new([
            ScriptedTurn::tool_call("counter", json!({"prompt": "count please", "user": "eve"})),
            ScriptedTurn::text("done"),
        ]))
        .tool_host(registry)
        .build()
        .unwrap();
    let events = collect_events(agent.run("go").stream()).await;
    let progress: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ToolProgress { tool, message, .. } => {
                Some(format!("{tool}: {}", message.clone().unwrap_or_default()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        progress,
        [
            "counter: calling count",
            "counter: count 1/2: at 1",
            "counter: count 2/2: at 2"
        ]
    );
    let trace: Vec<String> = event_trace(&events)
        .into_iter()
        .filter(|k| !k.starts_with("model_chunk"))
        .collect();
    assert_eq!(
        trace,
        [
            "started",
            "tool_call:counter",
            "tool_progress:1.0/null",
            "tool_progress:2.0/null",
            "tool_progress:3.0/null",
            "tool_result",
            "completed"
        ]
    );
    let result = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::ToolResult { result } => Some(result.output.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(result["output"], "counted");
    // Who runs is the token's user, whatever the arguments say.
    assert_eq!(result["user_id"], "ann");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_responses_and_allowed_hosts() {
    let served = Agent::builder()
        .name("echoer")
        .model("echo")
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(
        McpService::agent(served)
            .json_responses(true)
            .allow_hosts(["mcp.test"])
            .serve_http(listener, HttpAuth::Open, std::future::pending()),
    );
    let registry = McpRegistry::connect([McpServerSpec::http(
        "json",
        format!("http://127.0.0.1:{port}/mcp"),
    )])
    .await
    .unwrap();
    let out = registry
        .call("echoer", &json!({"prompt": "plain json"}), "c1")
        .await
        .unwrap();
    assert_eq!(out["output"], "Echo: plain json");
    assert_eq!(
        out["user_id"],
        serde_json::to_value(UserId::anonymous()).unwrap()
    );

    // A `Host` that is neither loopback nor allowed is refused; an allowed
    // one gets a plain JSON answer.
    let post = |host: &str| {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
        write!(
            stream,
            "POST /mcp HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let evil = post("evil.example");
    assert!(evil.starts_with("HTTP/1.1 403"), "{evil}");
    let allowed = post("mcp.test");
    assert!(allowed.starts_with("HTTP/1.1 200"), "{allowed}");
    assert!(
        allowed
            .to_lowercase()
            .contains("content-type: application/json"),
        "{allowed}"
    );
}
