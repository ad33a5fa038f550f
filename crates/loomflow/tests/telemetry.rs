//! Telemetry: the spans and metrics of real runs, as the sinks record them.
//! An agent with two parallel tool calls and a sub-agent on another task,
//! a denied destructive tool, content capture, a workflow fan-out, the
//! console tree, and the JSONL file read back with `jq`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use loomflow::RunContext;
use loomflow::budget::BudgetConfig;
use loomflow::permissions::StandardPermissions;
use loomflow::prelude::*;
use loomflow::telemetry::{
    ConsoleSink, InMemorySink, JsonlSink, SpanRecord, SpanStatus, Telemetry,
};
use loomflow_testkit::usage;
use serde_json::json;

const PROMPT: &str = "Plan the secret heist for Friday";

/// Look up the weather.
///
/// # Arguments
/// * `city` - The city.
#[tool]
async fn get_weather(city: String) -> String {
    format!("Sunny in {city}")
}

/// What time is it (sync: runs on a blocking thread).
#[tool]
fn get_time() -> String {
    "noon".into()
}

/// Asks a specialist (a sub-agent run on a spawned task).
///
/// # Arguments
/// * `question` - The question.
#[tool]
async fn ask_expert(question: String) -> String {
    let expert = Agent::builder()
        .name("expert")
        .model(ScriptedModel::new([ScriptedTurn::text("42")]))
        .build()
        .unwrap();
    // A spawned task starts with nothing: the run context is carried
    // explicitly, and `carry` brings the tool's span and telemetry along.
    let ctx = RunContext::current().unwrap();
    let run = loomflow::telemetry::carry(ctx.scope(async move { expert.run(question).await }));
    tokio::spawn(run).await.unwrap().unwrap().output
}

/// Deletes everything.
#[tool(destructive)]
async fn wipe() -> String {
    "wiped".into()
}

fn weather_agent(telemetry: Telemetry) -> Agent {
    Agent::builder()
        .name("assistant")
        .instructions("Be brief.")
        .model(ScriptedModel::new([
            ScriptedTurn::tool_call("get_weather", json!({"city": "Paris"}))
                .and_tool_call("get_time", json!({}))
                .and_tool_call("ask_expert", json!({"question": "meaning of life?"}))
                .with_usage(usage(120, 30, 0.002)),
            ScriptedTurn::text("Sunny, noon, and 42.").with_usage(usage(200, 8, 0.001)),
        ]))
        .tool(get_weather)
        .tool(get_time)
        .tool(ask_expert)
        .telemetry(telemetry)
        .build()
        .unwrap()
}

fn only(spans: &InMemorySink, name: &str) -> SpanRecord {
    let mut found = spans.named(name);
    assert_eq!(found.len(), 1, "one {name}: {found:#?}");
    found.pop().unwrap()
}

fn names(spans: &[SpanRecord]) -> Vec<&'static str> {
    spans.iter().map(|s| s.name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_run_is_one_tree_with_genai_attributes_and_no_prompt_text() {
    let (telemetry, spans) = Telemetry::in_memory();
    let agent = weather_agent(telemetry);
    let r = agent
        .run(PROMPT)
        .user("alice")
        .session("s-trace")
        .await
        .unwrap();
    assert_eq!(r.output, "Sunny, noon, and 42.");

    // loom.run → two turns; turn 1 → the model call, then the three tools.
    let runs = spans.named("loom.run");
    let run = runs
        .iter()
        .find(|s| s.attributes.str("gen_ai.agent.name") == Some("assistant"))
        .unwrap();
    assert_eq!(run.parent_span_id, None);
    let turns = spans.children_of(run);
    assert_eq!(names(&turns), ["loom.turn", "loom.turn"]);
    assert_eq!(turns[0].attributes.i64("loom.turn"), Some(1));
    assert_eq!(turns[1].attributes.i64("loom.turn"), Some(2));
    let first = spans.children_of(&turns[0]);
    assert_eq!(
        names(&first),
        ["loom.model.complete", "loom.tool", "loom.tool", "loom.tool"]
    );
    let mut tools: Vec<&str> = first[1..]
        .iter()
        .map(|s| s.attributes.str("gen_ai.tool.name").unwrap())
        .collect();
    tools.sort_unstable();
    assert_eq!(tools, ["ask_expert", "get_time", "get_weather"]);
    assert_eq!(
        names(&spans.children_of(&turns[1])),
        ["loom.model.complete"]
    );

    // The sub-agent ran on another task, under the tool that ran it.
    let expert_tool = first
        .iter()
        .find(|s| s.attributes.str("gen_ai.tool.name") == Some("ask_expert"))
        .unwrap();
    let expert_run = spans.children_of(expert_tool);
    assert_eq!(names(&expert_run), ["loom.run"]);
    assert_eq!(
        expert_run[0].attributes.str("gen_ai.agent.name"),
        Some("expert")
    );
    // …and inherited the user.
    assert_eq!(expert_run[0].attributes.str("loom.user_id"), Some("alice"));
    // One trace for all of it.
    assert!(spans.spans().iter().all(|s| s.trace_id == run.trace_id));

    // What the run span says.
    let a = &run.attributes;
    assert_eq!(a.str("gen_ai.operation.name"), Some("invoke_agent"));
    assert_eq!(a.str("gen_ai.request.model"), Some("scripted"));
    assert_eq!(a.str("loom.user_id"), Some("alice"));
    assert_eq!(a.str("loom.session_id"), Some("s-trace"));
    assert_eq!(a.str("gen_ai.conversation.id"), Some("s-trace"));
    assert_eq!(a.str("loom.run_id"), Some(r.run_id.as_str()));
    assert_eq!(a.i64("loom.turns"), Some(2));
    assert_eq!(
        a.i64("gen_ai.usage.output_tokens"),
        Some(r.tokens_out as i64)
    );
    assert_eq!(a.i64("gen_ai.usage.input_tokens"), Some(r.tokens_in as i64));
    assert_eq!(
        a.get("loom.interrupted").and_then(|v| v.as_bool()),
        Some(false)
    );
    assert_eq!(run.status, SpanStatus::Ok);
    // Exporter-only fields stay out of the records.
    assert!(!a.contains("otel.name") && !a.contains("loom.span.name"));

    let model = &first[0];
    assert_eq!(model.attributes.str("gen_ai.operation.name"), Some("chat"));
    assert_eq!(model.attributes.str("gen_ai.provider.name"), Some("_OTHER"));
    assert_eq!(model.attributes.i64("loom.tool_count"), Some(3));
    assert_eq!(
        model.attributes.str("gen_ai.response.finish_reasons"),
        Some("tool_calls")
    );
    assert!(model.attributes.i64("gen_ai.usage.output_tokens").is_some());
    let weather = first
        .iter()
        .find(|s| s.attributes.str("gen_ai.tool.name") == Some("get_weather"))
        .unwrap();
    assert_eq!(
        weather.attributes.str("gen_ai.operation.name"),
        Some("execute_tool")
    );
    assert!(weather.attributes.str("gen_ai.tool.call.id").is_some());
    assert_eq!(
        weather
            .attributes
            .get("loom.tool.destructive")
            .and_then(|v| v.as_bool()),
        Some(false)
    );

    // No prompt, answer or tool argument text by default.
    let everything = serde_json::to_string(&spans.spans()).unwrap()
        + &serde_json::to_string(&spans.metrics()).unwrap();
    for secret in ["secret heist", "Sunny, noon", "Paris", "meaning of life"] {
        assert!(
            !everything.contains(secret),
            "{secret:?} leaked: {everything}"
        );
    }

    // Metrics: per model call and tool call, never a session or run id.
    let metrics = spans.metrics();
    let mut seen: Vec<&str> = metrics.iter().map(|m| m.name.as_ref()).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(
        seen,
        [
            "gen_ai.client.operation.duration",
            "gen_ai.client.token.usage",
            "loom.cost.usd",
            "loom.session.duration_ms",
            "loom.tokens.input",
            "loom.tokens.output",
            "loom.tool.duration_ms",
        ]
    );
    // The expert's scripted reply reports no usage.
    assert_eq!(r.tokens_out, 38);
    assert_eq!(spans.metric_total("loom.tokens.output") as u64, 38);
    assert_eq!(spans.metric_total("loom.tokens.input") as u64, 320);
    assert!((spans.metric_total("loom.cost.usd") - 0.003).abs() < 1e-9);
    assert_eq!(
        a.get("loom.cost_usd").and_then(|v| v.as_f64()),
        Some(r.cost_usd)
    );
    for m in &metrics {
        for (key, value) in m.attributes.iter() {
            assert!(
                !key.contains("session") && !key.contains("run_id") && !key.contains("user"),
                "{} carries {key}",
                m.name
            );
            let text = value.to_string();
            assert!(
                text != "s-trace" && text != r.run_id.as_str(),
                "{} carries {text}",
                m.name
            );
        }
    }
    let usage: Vec<_> = metrics
        .iter()
        .filter(|m| m.name == "gen_ai.client.token.usage")
        .map(|m| m.attributes.str("gen_ai.token.type").unwrap())
        .collect();
    assert_eq!(usage[..2], ["input", "output"]);
}

#[tokio::test]
async fn a_streamed_run_has_stream_spans_and_a_denied_tool_says_why() {
    let (telemetry, spans) = Telemetry::in_memory();
    let agent = Agent::builder()
        .model(ScriptedModel::new([
            ScriptedTurn::tool_call("wipe", json!({})),
            ScriptedTurn::text("I may not."),
        ]))
        .tool(wipe)
        .permissions(StandardPermissions::new())
        .telemetry(telemetry)
        .build()
        .unwrap();
    let mut events = agent.run("wipe it").stream();
    while events.next().await.is_some() {}

    let models = spans.named("loom.model.stream");
    assert_eq!(models.len(), 2, "{:#?}", spans.spans());
    assert!(spans.named("loom.model.complete").is_empty());
    let tool = only(&spans, "loom.tool");
    let a = &tool.attributes;
    assert_eq!(a.str("gen_ai.tool.name"), Some("wipe"));
    assert_eq!(
        a.get("loom.tool.destructive").and_then(|v| v.as_bool()),
        Some(true)
    );
    assert_eq!(a.str("loom.permission"), Some("ask"));
    assert_eq!(a.str("loom.approval"), Some("declined"));
    assert_eq!(a.str("error.type"), Some("permission_denied"));
    assert_eq!(tool.status, SpanStatus::Error);
    let denied = spans
        .metrics()
        .into_iter()
        .find(|m| m.name == "loom.tool.duration_ms")
        .unwrap();
    assert_eq!(
        denied
            .attributes
            .get("loom.denied")
            .and_then(|v| v.as_bool()),
        Some(true)
    );
}

#[tokio::test]
async fn content_capture_records_prompts_and_outputs_redacted() {
    let spans = InMemorySink::new();
    let telemetry = Telemetry::builder()
        .sink(spans.clone())
        .capture_content(true)
        .build();
    let agent = Agent::builder()
        .model(ScriptedModel::new([
            ScriptedTurn::tool_call("get_weather", json!({"city": "Paris"})),
            ScriptedTurn::text("Sunny."),
        ]))
        .tool(get_weather)
        .telemetry(telemetry)
        .build()
        .unwrap();
    let key = "sk-proj-abcdefghijklmnopqrstuvwx0123";
    agent.run(format!("{PROMPT}, key {key}")).await.unwrap();

    let run = only(&spans, "loom.run");
    let input = run.attributes.str("loom.input").unwrap();
    assert!(input.starts_with(PROMPT), "{input}");
    assert!(
        !input.contains(key) && input.contains("[REDACTED]"),
        "{input}"
    );
    assert_eq!(run.attributes.str("loom.output"), Some("Sunny."));
    let tool = only(&spans, "loom.tool");
    assert_eq!(
        tool.attributes.str("gen_ai.tool.call.arguments"),
        Some(r#"{"city":"Paris"}"#)
    );
    assert_eq!(
        tool.attributes.str("gen_ai.tool.call.result"),
        Some(r#""Sunny in Paris""#)
    );
    let model = &spans.named("loom.model.complete")[0];
    let sent = model.attributes.str("gen_ai.input.messages").unwrap();
    assert!(
        sent.contains("secret heist") && !sent.contains(key),
        "{sent}"
    );
    assert!(model.attributes.str("gen_ai.output.messages").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_fan_out_nests_nodes_and_their_agents() {
    let (telemetry, spans) = Telemetry::in_memory();
    let wf = loomflow_testkit::fan_out_workflow(telemetry);
    let r = wf.run("go").user("bob").session("wf-1").await.unwrap();
    assert_eq!(r.output, r#"a poem | right got "go""#);

    let root = only(&spans, "loom.workflow");
    assert_eq!(root.attributes.str("loom.workflow.name"), Some("fan"));
    assert_eq!(root.attributes.str("loom.user_id"), Some("bob"));
    assert_eq!(root.attributes.str("loom.session_id"), Some("wf-1"));
    let nodes = spans.children_of(&root);
    let mut node_names: Vec<&str> = nodes
        .iter()
        .map(|s| s.attributes.str("loom.workflow.node").unwrap())
        .collect();
    // split first, join last; the branches ran concurrently in between.
    assert_eq!((node_names[0], node_names[3]), ("split", "join"));
    node_names.sort_unstable();
    assert_eq!(node_names, ["join", "left", "right", "split"]);
    assert!(nodes.iter().all(|n| n.name == "loom.workflow.step"
        && n.attributes.str("loom.workflow.kind") == Some("node")
        && n.attributes.i64("loom.workflow.visit") == Some(1)));
    // The Agent node's run sits under its node, with the workflow's user.
    let left = nodes
        .iter()
        .find(|n| n.attributes.str("loom.workflow.node") == Some("left"))
        .unwrap();
    let inner = spans.children_of(left);
    assert_eq!(names(&inner), ["loom.run"]);
    assert_eq!(inner[0].attributes.str("gen_ai.agent.name"), Some("writer"));
    assert_eq!(inner[0].attributes.str("loom.user_id"), Some("bob"));
    assert!(spans.spans().iter().all(|s| s.trace_id == root.trace_id));
}

/// A writer the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_console_prints_a_live_tree() {
    let out = Captured::default();
    let telemetry = Telemetry::builder()
        .sink(ConsoleSink::to_writer(out.clone()))
        .build();
    let agent = Agent::builder()
        .name("assistant")
        .model(ScriptedModel::new([
            ScriptedTurn::tool_call("get_weather", json!({"city": "Oslo"}))
                .with_usage(usage(50, 10, 0.0)),
            ScriptedTurn::text("Sunny.").with_usage(usage(70, 2, 0.0)),
        ]))
        .tool(get_weather)
        .telemetry(telemetry)
        .build()
        .unwrap();
    agent.run("weather?").user("alice").await.unwrap();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    // The shape, with durations and token counts masked.
    let shape: Vec<String> = text
        .lines()
        .map(|l| {
            let indent = l.len() - l.trim_start().len();
            match l.trim_start().starts_with('▸') {
                true => l.to_owned(),
                false => l[..indent].to_owned() + l[indent..].split("  ").next().unwrap(),
            }
        })
        .collect();
    assert_eq!(
        shape,
        [
            "▸ loom.run  agent=assistant model=scripted user=alice",
            "  ▸ loom.turn  turn=1",
            "    ▸ loom.model.complete  model=scripted turn=1",
            "    ✓ loom.model.complete",
            "    ▸ loom.tool  tool=get_weather turn=1",
            "    ✓ loom.tool tool=get_weather",
            "  ✓ loom.turn",
            "  ▸ loom.turn  turn=2",
            "    ▸ loom.model.complete  model=scripted turn=2",
            "    ✓ loom.model.complete",
            "  ✓ loom.turn",
            "✓ loom.run",
        ],
        "{text}"
    );
    // What each span produced, when it ends.
    let model = text.lines().nth(3).unwrap();
    assert!(
        model.ends_with(" ms  input_tokens=50 output_tokens=10 cost_usd=0 finish=tool_calls"),
        "{model}"
    );
    let last = text.lines().last().unwrap();
    assert!(
        last.ends_with(" ms  turns=2 input_tokens=120 output_tokens=12 cost_usd=0"),
        "{last}"
    );
}

fn jq(filter: &str, file: &std::path::Path) -> String {
    let out = std::process::Command::new("jq")
        .args(["-c", filter])
        .arg(file)
        .output()
        .expect("jq is installed by scripts/test (Debian package jq)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jsonl_file_answers_jq_queries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces").join("spans.jsonl");
    let telemetry = Telemetry::builder()
        .sink(JsonlSink::create(&path).unwrap())
        .build();
    let agent = weather_agent(telemetry.clone());
    agent.run(PROMPT).user("carol").await.unwrap();
    telemetry.flush();

    // Every span is a line: the assistant's run, its 2 turns, 2 model calls
    // and 3 tools, and the expert's run, turn and model call.
    let lines = jq(r#"select(.kind == "span") | .name"#, &path);
    assert_eq!(lines.lines().count(), 11, "{lines}");
    // The tools, by name.
    let tools = jq(
        r#"select(.kind == "span" and .name == "loom.tool") | .attributes."gen_ai.tool.name""#,
        &path,
    );
    let mut tools: Vec<&str> = tools.lines().collect();
    tools.sort_unstable();
    assert_eq!(
        tools,
        [r#""ask_expert""#, r#""get_time""#, r#""get_weather""#]
    );
    // Each tool's parent is the first turn of the assistant's run.
    let parents = jq(
        r#"select(.kind == "span" and .name == "loom.tool") | .parent_span_id"#,
        &path,
    );
    let turn = jq(
        r#"select(.kind == "span" and .name == "loom.turn" and .attributes."loom.turn" == 1 and .depth == 1) | .span_id"#,
        &path,
    );
    assert!(
        parents.lines().all(|p| p == turn.trim()),
        "{parents} vs {turn}"
    );
    // One user's runs, as an operator would look them up.
    let carol = jq(
        r#"select(.kind == "span" and .attributes."loom.user_id" == "carol") | .name"#,
        &path,
    );
    assert_eq!(carol.lines().count(), 2, "{carol}");
    // Metrics are lines too.
    let metric = jq(
        r#"select(.kind == "metric" and .name == "loom.session.duration_ms") | .instrument"#,
        &path,
    );
    assert_eq!(metric.lines().next(), Some(r#""histogram""#));
}

#[tokio::test]
async fn a_budget_stop_is_counted_and_marks_the_run_interrupted() {
    let (telemetry, spans) = Telemetry::in_memory();
    let agent = Agent::builder()
        .model(ScriptedModel::new([
            ScriptedTurn::tool_call("get_weather", json!({"city": "Rome"}))
                .with_usage(usage(90, 20, 0.0)),
            ScriptedTurn::text("never reached"),
        ]))
        .tool(get_weather)
        .budget(BudgetConfig {
            max_tokens: Some(100),
            ..BudgetConfig::default()
        })
        .telemetry(telemetry)
        .build()
        .unwrap();
    let r = agent.run("go").await.unwrap();
    assert_eq!(r.interruption_reason.as_deref(), Some("budget:max_tokens"));

    let run = only(&spans, "loom.run");
    assert_eq!(
        run.attributes
            .get("loom.interrupted")
            .and_then(|v| v.as_bool()),
        Some(true)
    );
    assert_eq!(
        run.attributes.str("loom.interruption_reason"),
        Some("budget:max_tokens")
    );
    let stops: Vec<_> = spans
        .metrics()
        .into_iter()
        .filter(|m| m.name == "loom.budget.exceeded")
        .collect();
    assert_eq!(stops.len(), 1);
    assert_eq!(stops[0].value, 1.0);
    assert_eq!(
        stops[0].attributes.str("loom.budget.cap"),
        Some("max_tokens")
    );
    // The refused call's span says why.
    let refused = spans.named("loom.model.complete").pop().unwrap();
    assert_eq!(refused.status, SpanStatus::Error);
}
