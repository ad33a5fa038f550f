//! The #[tool] macro: schemas, docs, coercion, errors, sync tools.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use loomflow::InProcessToolHost;
use loomflow::prelude::*;
use loomflow::tool::ToolHost;
use loomflow_testkit::RecordingModel;
use serde_json::json;

/// Add two numbers.
///
/// Returns their sum.
///
/// # Arguments
/// * `a` - The first addend.
/// * `b` - The second addend,
///   which may wrap onto a second line.
#[tool]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Filter {
    /// Field to match.
    field: String,
    value: String,
}

/// Search records.
#[tool(name = "search_records", destructive, ends_turn)]
async fn search(
    query: String,
    limit: Option<u32>,
    filters: Vec<Filter>,
) -> Result<Vec<String>, ToolError> {
    if query.is_empty() {
        return Err(ToolError::failed("query must not be empty"));
    }
    Ok(filters
        .iter()
        .take(limit.unwrap_or(10) as usize)
        .map(|f| format!("{query}:{}={}", f.field, f.value))
        .collect())
}

#[test]
fn schema_and_description_come_from_the_signature_and_docs() {
    let def = add.definition();
    assert_eq!(def.name, "add");
    assert_eq!(def.description, "Add two numbers.\n\nReturns their sum.");
    assert!(!def.destructive && !def.ends_turn);
    assert_eq!(
        def.input_schema,
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "a": {"type": "integer", "format": "int64", "description": "The first addend."},
                "b": {"type": "integer", "format": "int64", "description": "The second addend, which may wrap onto a second line."}
            },
            "required": ["a", "b"]
        })
    );

    let def = search.definition();
    assert_eq!(def.name, "search_records");
    assert!(def.destructive && def.ends_turn);
    let schema = &def.input_schema;
    assert_eq!(schema["required"], json!(["query", "filters"]));
    assert_eq!(
        schema["properties"]["filters"]["items"]["$ref"],
        "#/$defs/Filter"
    );
    assert_eq!(
        schema["$defs"]["Filter"]["properties"]["field"]["description"],
        "Field to match."
    );
}

#[tokio::test]
async fn calls_coerce_lenient_arguments_and_report_bad_ones() {
    assert_eq!(
        Tool::call(&add, &json!({"a": "8", "b": 2})).await,
        Ok(json!(10))
    );
    assert_eq!(add::invoke(1, 2), 3);

    let err = Tool::call(&add, &json!({"a": "eight", "b": 2}))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid arguments for tool `add`: `a`: invalid type: string \"eight\", expected i64"
    );
    let err = Tool::call(&add, &json!({"a": 1})).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid arguments for tool `add`: missing field `b`"
    );

    let out = Tool::call(
        &search,
        &json!({"query": "q", "limit": "1", "filters": "[{\"field\":\"k\",\"value\":\"v\"},{\"field\":\"x\",\"value\":\"y\"}]"}),
    )
    .await;
    assert_eq!(out, Ok(json!(["q:k=v"])));
    let err = Tool::call(&search, &json!({"query": "", "filters": []}))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "query must not be empty");
}

#[tokio::test]
async fn in_process_host_lists_calls_and_reports_unknown_tools() {
    let host = InProcessToolHost::new([
        std::sync::Arc::new(add) as std::sync::Arc<dyn Tool>,
        std::sync::Arc::new(search),
    ]);
    let names: Vec<_> = host
        .list_tools()
        .await
        .unwrap()
        .iter()
        .map(|d| d.name.clone())
        .collect();
    assert_eq!(names, ["add", "search_records"]);
    assert_eq!(
        host.call("add", &json!({"a": 1, "b": 1}), "c1").await,
        Ok(json!(2))
    );
    let err = host.call("sub", &json!({}), "c2").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown tool `sub`; available tools: add, search_records"
    );
    assert!(host.unregister("add"));
    assert!(!host.unregister("add"));
    assert_eq!(host.names(), ["search_records"]);
}

/// Waits (blocking) for a message from `ping`.
#[tool]
fn blocking_wait() -> String {
    let rx = RX.lock().unwrap().take().unwrap();
    let user = RunContext::current().and_then(|c| c.user_id.as_str().map(str::to_owned));
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(msg) => format!("{msg} for {}", user.unwrap_or_default()),
        Err(_) => "timed out: the runtime was blocked".into(),
    }
}

/// Sends a message to `blocking_wait`.
#[tool]
async fn ping() -> String {
    tokio::time::sleep(Duration::from_millis(20)).await;
    TX.lock().unwrap().take().unwrap().send("pong").unwrap();
    "sent".into()
}

type Chan<T> = std::sync::Mutex<Option<T>>;
static TX: Chan<std::sync::mpsc::Sender<&'static str>> = std::sync::Mutex::new(None);
static RX: Chan<std::sync::mpsc::Receiver<&'static str>> = std::sync::Mutex::new(None);

// On a single-threaded runtime a sync tool that blocked the executor would
// starve `ping`, and `blocking_wait` would time out.
#[tokio::test(flavor = "current_thread")]
async fn sync_tools_run_off_the_async_threads_and_see_the_run_context() {
    let (tx, rx) = std::sync::mpsc::channel();
    *TX.lock().unwrap() = Some(tx);
    *RX.lock().unwrap() = Some(rx);
    let model = RecordingModel::new(ScriptedModel::new([
        ScriptedTurn::tool_call("blocking_wait", json!({})).and_tool_call("ping", json!({})),
        ScriptedTurn::text("done"),
    ]));
    let agent = Agent::builder()
        .model(model.clone())
        .tool(blocking_wait)
        .tool(ping)
        .build()
        .unwrap();
    let r = agent.run("go").user("carol").await.unwrap();
    assert_eq!(r.output, "done");
    let tool_texts = model.calls().pop().unwrap().tool_texts();
    // Results are appended in call order, whatever order they finished in.
    assert_eq!(tool_texts, ["pong for carol", "sent"]);
}
