//! What a client does beyond calling tools, against the official reference
//! server (`@modelcontextprotocol/server-everything`, npm): sampling answered
//! by a loomflow model, resources and prompts, image content, progress as
//! events, and a server killed in the middle of a call.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use loomflow::prelude::*;
use loomflow::tool::ToolHost;
use loomflow::{ContentPart, Role};
use loomflow_mcp::{McpError, McpRegistry, McpServerSpec, ResourceBody};
use loomflow_testkit::{RecordingModel, collect_events, event_trace, mcp_server};
use serde_json::json;

mod common;
use common::everything;

/// Waits until the registry offers `tool` (a server registers some tools
/// after the handshake and says so with `tools/list_changed`).
async fn offered(registry: &McpRegistry, tool: &str) -> loomflow::ToolDef {
    for _ in 0..100 {
        let defs = registry.list_tools().await.unwrap();
        if let Some(def) = defs.iter().find(|d| d.name == tool) {
            return def.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{tool} never offered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampling_request_is_answered_by_the_configured_model() {
    let sampler = RecordingModel::new(EchoModel::new().with_prefix("sampled by loomflow: "));
    let registry = McpRegistry::builder()
        .server(everything("ev"))
        .sampling(Arc::new(sampler.clone()))
        .connect()
        .await
        .unwrap();
    // Offered only to clients that can sample.
    offered(&registry, "trigger-sampling-request").await;

    let model = RecordingModel::new(ScriptedModel::new([
        ScriptedTurn::tool_call(
            "trigger-sampling-request",
            json!({"prompt": "what is 2+2?", "maxTokens": 50}),
        ),
        ScriptedTurn::text("done"),
    ]));
    let agent = Agent::builder()
        .model(model.clone())
        .tool_host(registry.clone())
        .build()
        .unwrap();
    assert_eq!(agent.run("sample").await.unwrap().output, "done");

    // The server's request reached our model as a system prompt and a
    // user message, with its token cap.
    let sampled = sampler.calls();
    assert_eq!(sampled.len(), 1);
    let texts: Vec<(Role, String)> = sampled[0]
        .messages
        .iter()
        .map(|m| (m.role, m.text_content()))
        .collect();
    assert_eq!(
        texts,
        [
            (Role::System, "You are a helpful test server.".to_owned()),
            (
                Role::User,
                "Resource trigger-sampling-request context: what is 2+2?".to_owned()
            ),
        ]
    );
    // Our model's answer went back to the server, which returned it.
    let result = &model.calls()[1].tool_texts()[0];
    assert!(result.starts_with("LLM sampling result:"), "{result}");
    let answer: serde_json::Value =
        serde_json::from_str(result.trim_start_matches("LLM sampling result:").trim()).unwrap();
    assert_eq!(answer["role"], "assistant");
    assert_eq!(
        answer["content"]["text"],
        "sampled by loomflow: Resource trigger-sampling-request context: what is 2+2?"
    );
    assert_eq!(answer["model"], "echo");
    assert_eq!(answer["stopReason"], "endTurn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_sampling_model_the_client_does_not_offer_sampling() {
    let registry = McpRegistry::connect([everything("ev")]).await.unwrap();
    // Give a late registration time to arrive; the server keeps the tool to
    // clients that can sample.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let defs = registry.list_tools().await.unwrap();
    assert!(defs.iter().any(|d| d.name == "echo"));
    assert!(!defs.iter().any(|d| d.name == "trigger-sampling-request"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_prompts_and_images_in_loomflow_terms() {
    let registry = McpRegistry::connect([everything("a"), everything("b")])
        .await
        .unwrap();

    // Listed resources, from both servers.
    let resources = registry.list_resources().await;
    let doc = "demo://resource/static/document/architecture.md";
    let listing: Vec<&str> = resources
        .iter()
        .filter(|r| r.uri == doc)
        .map(|r| r.server.as_str())
        .collect();
    assert_eq!(listing, ["a", "b"]);
    // Both list it: which one must be said.
    let err = registry.read_resource(doc, None).await.unwrap_err();
    assert!(
        matches!(&err, McpError::AmbiguousResource { servers, .. } if servers == &["a", "b"]),
        "{err}"
    );
    let read = registry.read_resource(doc, Some("b")).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].mime_type.as_deref(), Some("text/markdown"));
    assert!(read[0].text().unwrap().contains("Everything"), "{read:?}");

    // A URI from a template is listed nowhere; the servers are asked. A
    // blob comes back as bytes, and as a line naming it for a model.
    let blob = registry
        .read_resource("demo://resource/dynamic/blob/7", None)
        .await
        .unwrap();
    assert!(matches!(blob[0].body, ResourceBody::Blob { .. }));
    let bytes = String::from_utf8(blob[0].bytes().unwrap()).unwrap();
    assert!(
        bytes.starts_with("Resource 7: This is a base64 blob"),
        "{bytes}"
    );
    let ContentPart::Text { text } = blob[0].to_content_part() else {
        panic!("a text/plain blob is not an image")
    };
    assert!(
        text.starts_with("[binary text/plain, ")
            && text.ends_with(" bytes: demo://resource/dynamic/blob/7]"),
        "{text}"
    );
    let err = registry
        .read_resource("demo://nowhere", Some("c"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no MCP server is named `c`; the servers are: a, b"
    );

    // Prompts: on both servers, so named `server.prompt`.
    let prompts = registry.list_prompts().await;
    let args = prompts
        .iter()
        .find(|p| p.server == "a" && p.name == "args-prompt")
        .unwrap();
    assert_eq!(
        args.arguments
            .iter()
            .map(|a| (a.name.as_str(), a.required))
            .collect::<Vec<_>>(),
        [("city", true), ("state", false)]
    );
    let err = registry
        .get_prompt("args-prompt", [("city", "Paris")])
        .await
        .unwrap_err();
    let McpError::UnknownPrompt { available, .. } = &err else {
        panic!("{err}")
    };
    assert!(available.contains(&"a.args-prompt".to_owned()), "{err}");
    let messages = registry
        .get_prompt("a.args-prompt", [("city", "Paris"), ("state", "Texas")])
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].role, Role::User);
    assert_eq!(
        messages[0].text_content(),
        "What's weather in Paris, Texas?"
    );

    // A tool's image reaches the model as a line saying what it is.
    let image = registry
        .call("a__get-tiny-image", &json!({}), "c1")
        .await
        .unwrap();
    let lines: Vec<&str> = image.as_str().unwrap().lines().collect();
    assert_eq!(lines.len(), 3, "{image}");
    assert_eq!(lines[0], "Here's the image you requested:");
    assert!(
        lines[1].starts_with("[image image/png, ") && lines[1].ends_with(" bytes]"),
        "{image}"
    );
    // Structured content is the output as it is.
    let structured = registry
        .call(
            "b__get-structured-content",
            &json!({"location": "Chicago"}),
            "c2",
        )
        .await
        .unwrap();
    assert!(structured["temperature"].is_number(), "{structured}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_notifications_are_events_on_the_run_stream() {
    let registry = McpRegistry::connect([everything("ev")]).await.unwrap();
    let agent = Agent::builder()
        .model(ScriptedModel::new([
            ScriptedTurn::tool_call(
                "trigger-long-running-operation",
                json!({"duration": 0.4, "steps": 4}),
            ),
            ScriptedTurn::text("done"),
        ]))
        .tool_host(registry)
        .build()
        .unwrap();
    let events = collect_events(agent.run("go").stream()).await;
    let trace: Vec<String> = event_trace(&events)
        .into_iter()
        .filter(|k| !k.starts_with("model_chunk"))
        .collect();
    assert_eq!(
        trace,
        [
            "started",
            "tool_call:trigger-long-running-operation",
            "tool_progress:1.0/4.0",
            "tool_progress:2.0/4.0",
            "tool_progress:3.0/4.0",
            "tool_progress:4.0/4.0",
            "tool_result",
            "completed"
        ]
    );
    let call_id = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::ToolCall { call } => Some(call.id.clone()),
            _ => None,
        })
        .unwrap();
    let progress: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ToolProgress {
                call_id,
                tool,
                progress,
                total,
                message,
            } => Some((
                call_id.as_str(),
                tool.as_str(),
                *progress,
                *total,
                message.clone(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        progress,
        (1..=4)
            .map(|i| (
                call_id.as_str(),
                "trigger-long-running-operation",
                f64::from(i),
                Some(4.0),
                None
            ))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_call_is_an_unavailable_tool_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let spec = traced_everything("fragile", &pid_file);
    let registry = McpRegistry::connect([spec]).await.unwrap();
    let pid = std::fs::read_to_string(&pid_file).unwrap();

    let calling = {
        let registry = registry.clone();
        tokio::spawn(async move {
            registry
                .call(
                    "trigger-long-running-operation",
                    &json!({"duration": 60, "steps": 2}),
                    "c1",
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!calling.is_finished());
    let killed = std::process::Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());

    let err = tokio::time::timeout(Duration::from_secs(10), calling)
        .await
        .expect("the call ended when the server died")
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, loomflow::ToolError::Unavailable { tool, .. } if tool == "trigger-long-running-operation"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "tool `trigger-long-running-operation` is unavailable: MCP server `fragile`: the connection closed (the server exited or ended the session); the next request reconnects"
    );
    let status = registry.status();
    assert!(status[0].error.is_some(), "{status:?}");

    // The next call starts the server again.
    let echoed = registry
        .call("echo", &json!({"message": "back"}), "c2")
        .await
        .unwrap();
    assert_eq!(echoed, "Echo: back");
    let new_pid = std::fs::read_to_string(&pid_file).unwrap();
    assert_ne!(new_pid, pid);
    assert_eq!(registry.status()[0].error, None);
}

/// A server run through `sh`, which writes its pid to `pid_file` and then
/// becomes the server (exec), so the pid is the server's.
fn traced_everything(name: &str, pid_file: &std::path::Path) -> McpServerSpec {
    McpServerSpec::stdio(
        name,
        "sh",
        [
            "-c".to_owned(),
            format!(
                "echo $$ > '{}'; exec '{}' stdio",
                pid_file.display(),
                mcp_server("mcp-server-everything").display()
            ),
        ],
    )
}

/// True while process `pid` exists (and is not a zombie).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
        .is_ok_and(|stat| !stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z')))
}

async fn gone(pid: &str) -> bool {
    for _ in 0..100 {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_stop_on_shutdown_and_when_the_registry_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));

    let registry = McpRegistry::connect([traced_everything("ev", &first)])
        .await
        .unwrap();
    let pid = std::fs::read_to_string(&first).unwrap();
    assert!(alive(&pid));
    registry.shutdown().await;
    assert!(gone(&pid).await, "server {pid} outlived shutdown");
    // Shut down stays shut: nothing is started again.
    let err = registry
        .call("echo", &json!({"message": "hi"}), "c1")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "tool `echo` is unavailable: MCP server `ev` is unavailable: the registry was shut down"
    );
    registry.refresh().await;
    assert_eq!(std::fs::read_to_string(&first).unwrap(), pid);

    let registry = McpRegistry::connect([traced_everything("ev", &second)])
        .await
        .unwrap();
    let pid = std::fs::read_to_string(&second).unwrap();
    let clone = registry.clone();
    drop(registry);
    assert!(alive(&pid), "a clone still holds it");
    drop(clone);
    assert!(gone(&pid).await, "server {pid} outlived its registry");
}
