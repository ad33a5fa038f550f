//! Workflow behaviour users rely on: validation, scheduling, caps, events,
//! composition with Agents, sugar and rendering.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use loomflow::prelude::*;
use loomflow::workflow::{Json, NodeOutcome, Parallel, WorkflowError};
use loomflow_testkit::{RecordingModel, collect_events, event_trace};
use serde_json::{Value, json};

fn err_text(r: Result<Workflow, WorkflowError>) -> String {
    r.expect_err("expected a build error").to_string()
}

async fn id(x: Value) -> Value {
    x
}

#[test]
fn the_graph_is_validated_with_errors_that_name_the_nodes() {
    let unknown = Workflow::builder("wf")
        .add_node("a", id)
        .set_start("a")
        .add_edge("a", "b")
        .build();
    assert_eq!(
        err_text(unknown),
        "workflow `wf`: `a -> b` names unknown node `b`; add_node(\"b\", …) first or fix the name"
    );

    let router_beside = Workflow::builder("wf")
        .add_node("a", id)
        .add_node("b", id)
        .set_start("a")
        .add_edge("a", "b")
        .add_router("a", Router::text(|s: &str| s.to_owned()).route("x", END))
        .add_edge("b", END)
        .build();
    assert_eq!(
        err_text(router_beside),
        "workflow `wf`: node `a` has a router and other outgoing edges; a router must be the only way out of its source"
    );

    let no_end = Workflow::builder("wf")
        .add_node("a", id)
        .add_node("b", id)
        .add_node("c", id)
        .set_start("a")
        .add_edge("a", "b")
        .add_edge("b", "a")
        .add_edge("c", END)
        .build();
    assert_eq!(
        err_text(no_end),
        "workflow `wf`: no path to END from `a`, `b`; add an edge to END (or a route to a node that reaches it)"
    );

    let twice = Workflow::builder("wf")
        .add_node("a", id)
        .add_node("b", id)
        .set_start("a")
        .add_edge(START, "b")
        .add_edge("a", END)
        .add_edge("b", END)
        .build();
    assert_eq!(
        err_text(twice),
        "workflow `wf`: the start is set twice (`a`, then `b`); set it once"
    );

    let no_start = Workflow::builder("wf")
        .add_node("a", id)
        .add_edge("a", END)
        .build();
    assert!(err_text(no_start).contains("has no start node"));

    let dup = Workflow::builder("wf")
        .add_node("a", id)
        .add_node("a", id)
        .build();
    assert!(matches!(dup, Err(WorkflowError::DuplicateNode { node, .. }) if node == "a"));

    let reserved = Workflow::builder("wf").add_node(END, id).build();
    assert!(matches!(reserved, Err(WorkflowError::ReservedName { .. })));

    let route_unknown = Workflow::builder("wf")
        .add_node("a", id)
        .set_start("a")
        .add_router(
            "a",
            Router::text(|s: &str| s.to_owned())
                .route("x", "nowhere")
                .default_route(END),
        )
        .build();
    assert!(err_text(route_unknown).contains("`a -> nowhere` names unknown node `nowhere`"));
}

#[tokio::test]
async fn a_value_the_next_node_cannot_take_is_an_error_naming_both_nodes() {
    async fn count(_: String) -> i64 {
        3
    }
    async fn shout(s: String) -> String {
        s.to_uppercase()
    }
    let wf = Workflow::chain([Step::of(count), Step::of(shout)])
        .build()
        .unwrap();
    let err = wf.run("x").await.unwrap_err();
    assert!(
        matches!(&err, WorkflowError::InputMismatch { from, to, .. } if from == &["count"] && to == "shout")
    );
    assert_eq!(
        err.to_string(),
        "workflow `chain`: node `shout` cannot take the output of `count` as `alloc::string::String`: invalid type: integer `3`, expected a string"
    );
    // The workflow's own input goes through the same check.
    let err = wf.run(42).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("node `count` cannot take the output of `START`")
    );
}

#[tokio::test(start_paused = true)]
async fn fan_out_runs_concurrently_and_the_join_gets_outputs_in_edge_order() {
    fn branch(
        ms: u64,
        tag: &'static str,
    ) -> impl Fn(Value) -> std::pin::Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync + 'static
    {
        move |_| {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                tag.to_owned()
            })
        }
    }
    async fn join(parts: Vec<String>) -> String {
        parts.join(",")
    }
    let wf = Workflow::builder("fan")
        .add_node("src", id)
        .add_node("slow", branch(30, "slow"))
        .add_node("fast", branch(10, "fast"))
        .add_node("mid", branch(20, "mid"))
        .add_node("join", join)
        .set_start("src")
        .add_edge("src", "slow")
        .add_edge("src", "fast")
        .add_edge("src", "mid")
        .add_edge("slow", "join")
        .add_edge("fast", "join")
        .add_edge("mid", "join")
        .add_edge("join", END)
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let r = wf.run("go").await.unwrap();
    // Concurrent: the slowest branch sets the pace, not the sum.
    assert_eq!(started.elapsed(), Duration::from_millis(30));
    assert_eq!(r.output, "slow,fast,mid");
    assert_eq!(r.visited, ["src", "fast", "mid", "slow", "join"]);
    assert_eq!(r.per_step["join"], "slow,fast,mid");
}

fn refine_loop(max_visits: u32) -> Workflow {
    // A -> B -> classify -> (C | D | END) -> B; C and D loop back to B.
    async fn draft(_: Value) -> i64 {
        0
    }
    async fn improve(n: i64) -> i64 {
        n + 1
    }
    async fn judge(n: i64) -> i64 {
        n
    }
    async fn tweak(n: i64) -> i64 {
        n
    }
    Workflow::builder("refine")
        .add_node("A", draft)
        .add_node("B", improve)
        .add_node("classify", judge)
        .add_node("C", tweak)
        .add_node("D", tweak)
        .set_start("A")
        .add_edge("A", "B")
        .add_edge("B", "classify")
        .add_router(
            "classify",
            Router::new(|v: &Value| match v.as_i64().unwrap_or(0) {
                n if n >= 3 => "done",
                1 => "c",
                _ => "d",
            })
            .route("c", "C")
            .route("d", "D")
            .route("done", END),
        )
        .add_edge("C", "B")
        .add_edge("D", "B")
        .max_visits_per_node(max_visits)
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_refinement_loop_runs_until_the_router_picks_end() {
    let r = refine_loop(25).run(Value::Null).await.unwrap();
    assert_eq!(
        r.visited,
        [
            "A", "B", "classify", "C", "B", "classify", "D", "B", "classify"
        ]
    );
    assert_eq!(r.output, 3);
    assert_eq!(r.per_step["B"], 3);
    assert_eq!(r.per_step["C"], 1);
}

#[tokio::test]
async fn caps_end_the_run_with_an_error_naming_the_node() {
    let err = refine_loop(2).run(Value::Null).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "workflow `refine` re-entered `B` more than max_visits_per_node=2 times; the router controlling the loop probably never picks the way out"
    );

    async fn again(n: i64) -> i64 {
        n + 1
    }
    let wf = Workflow::builder("spin")
        .add_node("inc", again)
        .set_start("inc")
        .add_router(
            "inc",
            Router::new(|v: &Value| {
                if v.as_i64() < Some(1000) {
                    "again"
                } else {
                    "done"
                }
            })
            .route("again", "inc")
            .route("done", END),
        )
        .max_steps(10)
        .max_visits_per_node(1000)
        .build()
        .unwrap();
    let err = wf.run(0).await.unwrap_err();
    assert!(matches!(&err, WorkflowError::MaxSteps { node, max: 10, .. } if node == "inc"));
}

#[derive(Debug, thiserror::Error)]
#[error("the ledger is locked")]
struct LedgerLocked;

#[tokio::test(start_paused = true)]
async fn a_failing_node_cancels_its_siblings_and_its_original_error_comes_back() {
    static SIBLING_FINISHED: AtomicBool = AtomicBool::new(false);
    async fn fails(_: Value) -> Result<String, LedgerLocked> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Err(LedgerLocked)
    }
    async fn slow(_: Value) -> String {
        tokio::time::sleep(Duration::from_secs(10)).await;
        SIBLING_FINISHED.store(true, Ordering::SeqCst);
        "late".into()
    }
    let wf = Workflow::builder("books")
        .add_node("src", id)
        .add_node("post", fails)
        .add_node("report", slow)
        .set_start("src")
        .add_edge("src", "post")
        .add_edge("src", "report")
        .add_edge("post", END)
        .add_edge("report", END)
        .build()
        .unwrap();
    let mut stream = wf.stream("x");
    let events = collect_events(&mut stream).await;
    let err = stream.result().await.unwrap_err();
    match &err {
        WorkflowError::NodeFailed { node, source, .. } => {
            assert_eq!(node, "post");
            assert!(source.downcast_ref::<LedgerLocked>().is_some());
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        event_trace(&events),
        [
            "workflow_started",
            "workflow_step_started:src",
            "workflow_step_completed:src",
            "workflow_step_started:post",
            "workflow_step_started:report",
            "workflow_step_failed:post",
            "error",
        ]
    );
    let failed = serde_json::to_value(&events[5]).unwrap();
    assert_eq!(
        failed["payload"],
        json!({"workflow": "books", "node": "post", "error": "the ledger is locked"})
    );
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        !SIBLING_FINISHED.load(Ordering::SeqCst),
        "the sibling was not cancelled"
    );
}

#[tokio::test]
async fn an_interrupted_agent_node_stops_the_run() {
    #[tool]
    async fn lookup(q: String) -> String {
        q
    }
    static DOWNSTREAM: AtomicBool = AtomicBool::new(false);
    async fn after(_: Value) -> String {
        DOWNSTREAM.store(true, Ordering::SeqCst);
        "after".into()
    }
    async fn prepare(s: String) -> String {
        format!("prepared {s}")
    }
    let agent = Agent::builder()
        .name("researcher")
        .model(ScriptedModel::new([
            ScriptedTurn::tool_call("lookup", json!({"q": "a"})),
            ScriptedTurn::tool_call("lookup", json!({"q": "b"})),
        ]))
        .tool(lookup)
        .max_turns(1)
        .build()
        .unwrap();
    let wf = Workflow::chain([Step::of(prepare), Step::of(agent), Step::of(after)])
        .build()
        .unwrap();
    let r = wf.run("topic").await.unwrap();
    assert!(r.interrupted);
    assert_eq!(
        r.interruption_reason.as_deref(),
        Some("researcher:max_turns_exceeded")
    );
    assert_eq!(r.visited, ["prepare", "researcher"]);
    assert_eq!(r.output, "prepared topic");
    assert!(!DOWNSTREAM.load(Ordering::SeqCst));
}

#[tokio::test]
async fn streams_nest_agent_and_workflow_events_under_their_node() {
    async fn prepare(s: String) -> String {
        format!("about {s}")
    }
    let agent = Agent::builder()
        .name("writer")
        .model("echo")
        .build()
        .unwrap();
    let inner = Workflow::chain([Step::of(agent)])
        .name("inner")
        .build()
        .unwrap();
    let wf = Workflow::chain([Step::of(prepare), Step::named("draft", inner)])
        .name("outer")
        .build()
        .unwrap();
    let mut stream = wf.run("cats").session("conv-9").stream();
    let events = collect_events(&mut stream).await;
    let result = stream.result().await.unwrap();
    assert_eq!(result.output, "Echo: about cats");
    let trace = event_trace(&events);
    assert_eq!(
        trace,
        [
            "workflow_started",
            "workflow_step_started:prepare",
            "workflow_step_completed:prepare",
            "workflow_step_started:draft",
            "draft| workflow_started",
            "draft| workflow_step_started:writer",
            "draft/writer| started",
            "draft/writer| model_chunk:text",
            "draft/writer| model_chunk:text",
            "draft/writer| model_chunk:text",
            "draft/writer| model_chunk:finish",
            "draft/writer| completed",
            "draft| workflow_step_completed:writer",
            "draft| workflow_completed",
            "workflow_step_completed:draft",
            "workflow_completed",
        ]
    );
    // Every event, nested ones included, carries the workflow's session.
    assert!(events.iter().all(|e| e.session_id.as_str() == "conv-9"));
    let completed = serde_json::to_value(events.last().unwrap()).unwrap();
    assert_eq!(
        completed["payload"],
        json!({"workflow": "outer", "output": "Echo: about cats"})
    );
    assert_eq!(
        serde_json::to_value(&events[6]).unwrap()["node"],
        "draft/writer"
    );
}

#[tokio::test]
async fn nodes_and_nested_agents_see_the_live_run_context() {
    #[tool]
    async fn whoami() -> String {
        let ctx = RunContext::current().unwrap();
        format!(
            "{}@{} via {}",
            ctx.user_id.as_str().unwrap_or("-"),
            ctx.session_id,
            ctx.metadata["channel"]
        )
    }
    async fn check(s: String) -> String {
        let ctx = RunContext::current().unwrap();
        format!("{s} [{}]", ctx.user_id.as_str().unwrap_or("-"))
    }
    let model = RecordingModel::new(ScriptedModel::new([
        ScriptedTurn::tool_call("whoami", json!({})),
        ScriptedTurn::text("done"),
    ]));
    let agent = Agent::builder()
        .name("agent")
        .model(model.clone())
        .tool(whoami)
        .build()
        .unwrap();
    let wf = Workflow::chain([Step::of(agent), Step::of(check)])
        .build()
        .unwrap();
    let r = wf
        .run("hi")
        .user("alice")
        .session("s-1")
        .metadata("channel", "web")
        .await
        .unwrap();
    assert_eq!(r.output, "done [alice]");
    assert_eq!(r.user_id.as_str(), Some("alice"));
    assert_eq!(model.calls()[1].tool_texts(), ["alice@s-1 via \"web\""]);
}

#[tokio::test]
async fn a_workflow_is_a_tool_an_agent_calls_through_its_gate() {
    async fn shout(s: String) -> String {
        let user = RunContext::current().unwrap().user_id;
        format!(
            "{} (for {})",
            s.to_uppercase(),
            user.as_str().unwrap_or("-")
        )
    }
    let wf = Workflow::chain([Step::of(shout)])
        .name("shouter")
        .build()
        .unwrap();
    let model = RecordingModel::new(ScriptedModel::new([
        ScriptedTurn::tool_call("shouter", json!({"input": "hello"})),
        ScriptedTurn::tool_call("loud", json!({"input": "again"})),
        ScriptedTurn::text("ok"),
    ]));

    struct NoLoud;
    #[async_trait::async_trait]
    impl loomflow::tool::Permissions for NoLoud {
        async fn check(
            &self,
            call: &loomflow::ToolCall,
            _: &UserId,
        ) -> loomflow::tool::PermissionDecision {
            if call.tool == "loud" {
                loomflow::tool::PermissionDecision::Deny("not that one".into())
            } else {
                loomflow::tool::PermissionDecision::Allow
            }
        }
    }
    let agent = Agent::builder()
        .model(model.clone())
        .tool(wf.as_tool())
        .tool(wf.as_tool().name("loud"))
        .permissions(NoLoud)
        .build()
        .unwrap();
    agent.run("go").user("bob").await.unwrap();
    assert_eq!(
        model.calls().pop().unwrap().tool_texts(),
        ["HELLO (for bob)", "DENIED: not that one"]
    );
}

#[tokio::test]
async fn a_workflow_tone_reaches_agents_without_their_own() {
    let plain = RecordingModel::new(EchoModel::default());
    let toned = RecordingModel::new(EchoModel::default());
    let a = Agent::builder()
        .name("a")
        .instructions("A.")
        .model(plain.clone())
        .build()
        .unwrap();
    let b = Agent::builder()
        .name("b")
        .instructions("B.")
        .model(toned.clone())
        .tone("casual")
        .build()
        .unwrap();
    let wf = Workflow::chain([Step::of(a), Step::of(b)])
        .response_tone("executive")
        .build()
        .unwrap();
    wf.run("hi").await.unwrap();
    let system = |m: &RecordingModel| m.calls()[0].messages[0].text_content();
    assert!(system(&plain).ends_with(&format!(
        "Response style: {}",
        Tone::new("executive").directive()
    )));
    assert!(system(&toned).ends_with(&format!(
        "Response style: {}",
        Tone::new("casual").directive()
    )));
    // Outside the workflow the ambient tone is gone.
    let a2 = Agent::builder()
        .instructions("A.")
        .model(plain.clone())
        .build()
        .unwrap();
    a2.run("x").await.unwrap();
    assert_eq!(
        plain.calls().last().unwrap().messages[0].text_content(),
        "A."
    );
}

#[tokio::test]
async fn route_sends_the_original_input_to_the_handler_per_run() {
    async fn classify(q: String) -> String {
        if q.contains("invoice") {
            " billing\n".into()
        } else {
            "tech".into()
        }
    }
    async fn billing(q: String) -> String {
        format!("billing got: {q}")
    }
    async fn tech(q: String) -> String {
        format!("tech got: {q}")
    }
    async fn fallback(q: String) -> String {
        format!("fallback got: {q}")
    }
    let wf = Workflow::route(
        Step::of(classify),
        [("billing", Step::of(billing)), ("tech", Step::of(tech))],
        None,
    )
    .build()
    .unwrap();
    let (a, b) = tokio::join!(wf.run("my invoice"), wf.run("my router"));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.visited, ["classify", "route_billing"]);
    assert_eq!(a.output, "billing got: my invoice");
    assert_eq!(b.visited, ["classify", "route_tech"]);
    assert_eq!(b.output, "tech got: my router");

    async fn other(_: String) -> String {
        "sales".into()
    }
    let no_default = Workflow::route(Step::of(other), [("tech", Step::of(tech))], None)
        .build()
        .unwrap();
    let err = no_default.run("x").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "workflow `route`: the router on `classify` produced key \"sales\", which matches no route (tech) and there is no default"
    );
    let with_default = Workflow::route(
        Step::of(other),
        [("tech", Step::of(tech))],
        Some(Step::of(fallback)),
    )
    .build()
    .unwrap();
    let r = with_default.run("hello").await.unwrap();
    assert_eq!(r.visited, ["classify", "route_default"]);
    assert_eq!(r.output, "fallback got: hello");
}

#[tokio::test(start_paused = true)]
async fn parallel_merges_in_step_order_caps_concurrency_and_can_collect_errors() {
    static RUNNING: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);
    fn branch(
        k: i64,
    ) -> impl Fn(i64) -> std::pin::Pin<Box<dyn Future<Output = i64> + Send>> + Send + Sync + 'static
    {
        move |x| {
            Box::pin(async move {
                let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
                PEAK.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10 * (5 - k as u64))).await;
                RUNNING.fetch_sub(1, Ordering::SeqCst);
                x * k
            })
        }
    }
    let wf = Workflow::parallel((1..=4).map(|k| Step::named(format!("b{k}"), branch(k))))
        .merge(|xs: Vec<i64>| Json(xs))
        .max_concurrency(2)
        .build()
        .unwrap();
    let r = wf.run(10).await.unwrap();
    assert_eq!(r.output, json!([10, 20, 30, 40]));
    assert_eq!(r.visited, ["fan_out"]);
    assert_eq!(PEAK.load(Ordering::SeqCst), 2);

    async fn ok(x: i64) -> i64 {
        x
    }
    async fn bad(_: i64) -> Result<i64, LedgerLocked> {
        Err(LedgerLocked)
    }
    let collect: Parallel = Workflow::parallel([Step::of(ok), Step::of(bad), Step::of(ok)]);
    let wf = collect
        .collect_errors(
            |results: Vec<Result<Value, loomflow::workflow::BoxError>>| {
                results
                    .iter()
                    .map(|r| match r {
                        Ok(v) => v.to_string(),
                        Err(e) => format!("error: {e}"),
                    })
                    .collect::<Vec<_>>()
                    .join(" | ")
            },
        )
        .build()
        .unwrap();
    assert_eq!(
        wf.run(7).await.unwrap().output,
        "7 | error: the ledger is locked | 7"
    );

    let strict = Workflow::parallel([Step::of(ok), Step::of(bad)])
        .build()
        .unwrap();
    let err = strict.run(1).await.unwrap_err();
    assert!(matches!(&err, WorkflowError::NodeFailed { node, .. } if node == "fan_out"));
}

#[tokio::test]
async fn graph_level_max_concurrency_caps_running_nodes() {
    static RUNNING: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);
    async fn work(x: Value) -> Value {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        PEAK.fetch_max(now, Ordering::SeqCst);
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        x
    }
    let mut b = Workflow::builder("wide")
        .add_node("src", id)
        .set_start("src")
        .max_concurrency(3);
    for i in 0..10 {
        let name = format!("w{i}");
        b = b
            .add_node(name.clone(), work)
            .add_edge("src", &name)
            .add_edge(&name, END);
    }
    let r = b.build().unwrap().run(1).await.unwrap();
    assert_eq!(r.visited.len(), 11);
    assert_eq!(PEAK.load(Ordering::SeqCst), 3);
}

#[test]
fn sync_nodes_run_off_the_async_threads() {
    use std::sync::Mutex;
    static ORDER: Mutex<Vec<&str>> = Mutex::new(Vec::new());
    fn heavy(x: i64) -> i64 {
        std::thread::sleep(Duration::from_millis(300));
        ORDER.lock().unwrap().push("heavy");
        x
    }
    async fn light(x: i64) -> i64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        ORDER.lock().unwrap().push("light");
        x
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let wf = Workflow::parallel([Step::of(blocking(heavy)), Step::of(light)])
            .build()
            .unwrap();
        assert_eq!(wf.run(1).await.unwrap().output, json!([1, 1]));
    });
    // On the one async thread, `light` could only finish first if `heavy`
    // ran elsewhere.
    assert_eq!(*ORDER.lock().unwrap(), ["light", "heavy"]);
}

#[tokio::test]
async fn an_entry_router_can_skip_straight_to_end() {
    async fn handle(s: String) -> String {
        format!("handled {s}")
    }
    let wf = Workflow::builder("gate")
        .add_node("handle", handle)
        .add_router(
            START,
            Router::text(|s: &str| if s.is_empty() { "skip" } else { "go" })
                .route("go", "handle")
                .route("skip", END),
        )
        .add_edge("handle", END)
        .build()
        .unwrap();
    let skipped = wf.run("").await.unwrap();
    assert!(skipped.visited.is_empty());
    assert_eq!(skipped.output, "");
    assert_eq!(wf.run("x").await.unwrap().output, "handled x");
}

#[test]
fn graphs_render_as_mermaid_and_dot() {
    let wf = Workflow::builder("triage")
        .add_node("classify", id)
        .add_node("billing", id)
        .add_node("tech", id)
        .set_start("classify")
        .add_router(
            "classify",
            Router::text(|s: &str| s.to_owned())
                .route("billing", "billing")
                .route("tech", "tech")
                .default_route(END),
        )
        .add_edge("billing", END)
        .add_edge("tech", END)
        .build()
        .unwrap();
    assert_eq!(
        wf.to_mermaid(),
        "flowchart TD
    n_classify[\"classify\"]
    n_billing[\"billing\"]
    n_tech[\"tech\"]
    START([START]) --> n_classify
    n_classify -->|billing| n_billing
    n_classify -->|tech| n_tech
    n_classify -.->|default| END([END])
    n_billing --> END([END])
    n_tech --> END([END])"
    );
    assert_eq!(
        wf.to_dot(),
        "digraph \"triage\" {
    rankdir=TB;
    \"classify\" [shape=box, style=rounded];
    \"billing\" [shape=box, style=rounded];
    \"tech\" [shape=box, style=rounded];
    \"__start__\" [label=\"START\", shape=oval];
    \"__start__\" -> \"classify\";
    \"classify\" -> \"billing\" [label=\"billing\"];
    \"classify\" -> \"tech\" [label=\"tech\"];
    \"classify\" -> \"__end__\" [label=\"default\", style=dashed];
    \"billing\" -> \"__end__\";
    \"tech\" -> \"__end__\";
    \"__end__\" [label=\"END\", shape=oval];
}"
    );
}

#[tokio::test]
async fn custom_nodes_can_interrupt_and_results_convert_to_types() {
    struct Gatekeeper;
    #[async_trait::async_trait]
    impl loomflow::workflow::Node for Gatekeeper {
        async fn run(
            &self,
            input: Value,
            _cx: loomflow::workflow::NodeContext<'_>,
        ) -> Result<NodeOutcome, loomflow::workflow::BoxError> {
            Ok(NodeOutcome::Interrupted {
                output: input,
                reason: "needs_review".into(),
            })
        }
    }
    async fn pair(x: i64) -> Json<(i64, i64)> {
        Json((x, x + 1))
    }
    let wf = Workflow::chain([Step::of(pair)]).build().unwrap();
    let r = wf.run(4).await.unwrap();
    assert_eq!(r.output_as::<(i64, i64)>().unwrap(), (4, 5));

    let wf = Workflow::chain([Step::of(pair), Step::named("gate", Gatekeeper)])
        .build()
        .unwrap();
    let r = wf.run(1).await.unwrap();
    assert_eq!(r.interruption_reason.as_deref(), Some("gate:needs_review"));
    assert_eq!(r.output, json!([1, 2]));
    let _ = Arc::new(());
}
