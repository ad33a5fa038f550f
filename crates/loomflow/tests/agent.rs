//! Agent runs end to end: events, ReAct semantics, context, errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use loomflow::prelude::*;
use loomflow::{ConfigError, Role, ToolResult};
use loomflow_testkit::{RecordingModel, collect_events, event_trace};
use serde_json::json;

/// Look something up.
#[tool]
async fn lookup(q: String) -> String {
    format!("result for {q}")
}

/// Report who is asking.
#[tool]
async fn whoami() -> serde_json::Value {
    let ctx = RunContext::current().expect("inside a run");
    json!({
        "user": ctx.user_id,
        "session": ctx.session_id,
        "run": ctx.run_id,
        "channel": ctx.metadata.get("channel"),
    })
}

/// Finish the task.
#[tool(ends_turn)]
async fn finish(summary: String) -> String {
    summary
}

fn scripted(turns: impl IntoIterator<Item = ScriptedTurn>) -> ScriptedModel {
    ScriptedModel::new(turns)
}

#[tokio::test]
async fn streamed_events_follow_the_reference_order_and_wire_format() {
    let agent = Agent::builder()
        .instructions("x")
        .model(scripted([
            ScriptedTurn::tool_call("lookup", json!({"q": "a"})),
            ScriptedTurn::text("done ok"),
        ]))
        .tool(lookup)
        .build()
        .unwrap();
    let events = collect_events(agent.run("hi").user("alice").stream()).await;
    assert_eq!(
        event_trace(&events),
        [
            "started",
            "model_chunk:tool_call",
            "model_chunk:finish",
            "tool_call:lookup",
            "tool_result",
            "model_chunk:text",
            "model_chunk:text",
            "model_chunk:finish",
            "completed"
        ]
    );
    let session = events[0].session_id.clone();
    assert!(events.iter().all(|e| e.session_id == session));

    let json: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    assert_eq!(json[0]["kind"], "started");
    assert_eq!(json[0]["payload"], json!({"prompt": "hi"}));
    let call = &json[3]["payload"]["call"];
    assert_eq!(call["tool"], "lookup");
    assert_eq!(call["args"], json!({"q": "a"}));
    assert_eq!(call["destructive"], false);
    assert!(call["id"].as_str().unwrap().starts_with("tcall_"));
    let result = &json[4]["payload"]["result"];
    assert_eq!(result["call_id"], call["id"]);
    assert_eq!(result["ok"], true);
    assert_eq!(result["output"], "result for a");
    assert_eq!(result["denied"], false);
    assert_eq!(
        json[5]["payload"]["chunk"],
        json!({"kind": "text", "text": "done"})
    );
    assert_eq!(
        json[6]["payload"]["chunk"],
        json!({"kind": "text", "text": " ok"})
    );
    assert_eq!(json[7]["payload"]["chunk"]["finish_reason"], "stop");
    let done = &json[8]["payload"]["result"];
    assert_eq!(done["output"], "done ok");
    assert_eq!(done["turns"], 2);
    assert_eq!(done["user_id"], "alice");
    assert_eq!(done["interrupted"], false);
    assert_eq!(done["session_id"], session.as_str());
    for key in [
        "tokens_in",
        "cached_tokens_in",
        "cache_write_tokens",
        "tokens_out",
        "cost_usd",
        "started_at",
        "finished_at",
        "run_id",
        "parsed",
        "interruption_reason",
        "cited_slugs",
    ] {
        assert!(done.get(key).is_some(), "completed result lacks {key}");
    }
    // Events round-trip through serde.
    let back: Event = serde_json::from_value(json[3].clone()).unwrap();
    assert_eq!(back, events[3]);
}

#[tokio::test]
async fn run_result_sums_usage_and_reports_timing() {
    let usage = loomflow::Usage {
        input_tokens: 10,
        cached_input_tokens: 3,
        cache_write_tokens: 2,
        output_tokens: 5,
        cost_usd: 0.25,
    };
    let agent = Agent::builder()
        .model(scripted([
            ScriptedTurn::tool_call("lookup", json!({"q": "a"})).with_usage(usage),
            ScriptedTurn::text("ok").with_usage(usage),
        ]))
        .tool(lookup)
        .build()
        .unwrap();
    let r = agent.run("hi").await.unwrap();
    assert_eq!(
        (
            r.tokens_in,
            r.cached_tokens_in,
            r.cache_write_tokens,
            r.tokens_out
        ),
        (20, 6, 4, 10)
    );
    assert_eq!(r.total_tokens(), 40);
    assert!((r.cost_usd - 0.5).abs() < 1e-9);
    assert!(r.finished_at >= r.started_at);
    assert!(r.user_id.is_anonymous());
    assert!(r.run_id.as_str().starts_with("run_"));
    assert!(r.session_id.as_str().starts_with("sess_"));
}

#[tokio::test]
async fn tools_see_the_run_context_and_sub_agents_inherit_the_user() {
    let inner = Agent::builder()
        .model(scripted([
            ScriptedTurn::tool_call("whoami", json!({})),
            ScriptedTurn::text("inner done"),
        ]))
        .tool(whoami)
        .build()
        .unwrap();

    /// Ask the specialist.
    #[tool]
    async fn ask_specialist() -> String {
        let agent = SPECIALIST.lock().unwrap().clone().unwrap();
        let r = agent.run("help").await.unwrap();
        assert_eq!(
            r.user_id.as_str(),
            Some("alice"),
            "sub-agent inherits the user"
        );
        r.output
    }
    static SPECIALIST: std::sync::Mutex<Option<Agent>> = std::sync::Mutex::new(None);
    *SPECIALIST.lock().unwrap() = Some(inner.clone());

    let model = RecordingModel::new(scripted([
        ScriptedTurn::tool_call("whoami", json!({})).and_tool_call("ask_specialist", json!({})),
        ScriptedTurn::text("all done"),
    ]));
    let outer = Agent::builder()
        .model(model.clone())
        .tool(whoami)
        .tool(ask_specialist)
        .build()
        .unwrap();
    let r = outer
        .run("go")
        .user("alice")
        .session("s-1")
        .metadata("channel", "web")
        .await
        .unwrap();
    assert_eq!(r.output, "all done");
    let transcript = model.calls().pop().unwrap().messages;
    let tool_msgs: Vec<_> = transcript.iter().filter(|m| m.role == Role::Tool).collect();
    let who: serde_json::Value = serde_json::from_str(&tool_msgs[0].text_content()).unwrap();
    assert_eq!(who["user"], "alice");
    assert_eq!(who["session"], "s-1");
    assert_eq!(who["run"], r.run_id.as_str());
    assert_eq!(who["channel"], "web");
    assert_eq!(tool_msgs[1].text_content(), "inner done");
    assert!(RunContext::current().is_none());
}

#[tokio::test]
async fn tool_calls_of_one_turn_run_concurrently_and_keep_call_order() {
    static BARRIER: std::sync::LazyLock<tokio::sync::Barrier> =
        std::sync::LazyLock::new(|| tokio::sync::Barrier::new(3));
    /// Wait for the other calls.
    #[tool]
    async fn rendezvous(id: u32) -> String {
        // Later calls finish first.
        tokio::time::sleep(Duration::from_millis(30 - 10 * u64::from(id))).await;
        BARRIER.wait().await;
        format!("r{id}")
    }
    let model = RecordingModel::new(scripted([
        ScriptedTurn::tool_call("rendezvous", json!({"id": 0}))
            .and_tool_call("rendezvous", json!({"id": 1}))
            .and_tool_call("rendezvous", json!({"id": 2})),
        ScriptedTurn::text("met"),
    ]));
    let agent = Agent::builder()
        .model(model.clone())
        .tool(rendezvous)
        .build()
        .unwrap();
    // Sequential dispatch would wait on the barrier forever.
    let r = tokio::time::timeout(Duration::from_secs(5), agent.run("go"))
        .await
        .expect("calls ran concurrently")
        .unwrap();
    assert_eq!(r.output, "met");
    let msgs = model.calls().pop().unwrap().messages;
    let assistant = msgs.iter().find(|m| !m.tool_calls.is_empty()).unwrap();
    let results: Vec<_> = msgs.iter().filter(|m| m.role == Role::Tool).collect();
    assert_eq!(
        results.iter().map(|m| m.text_content()).collect::<Vec<_>>(),
        ["r0", "r1", "r2"]
    );
    for (call, result) in assistant.tool_calls.iter().zip(&results) {
        assert_eq!(result.tool_call_id.as_deref(), Some(call.id.as_str()));
    }
}

#[tokio::test]
async fn bad_arguments_and_unknown_tools_go_back_to_the_model() {
    let model = RecordingModel::new(scripted([
        ScriptedTurn::tool_call("lookup", json!({"query": "a"})).and_tool_call("nope", json!({})),
        ScriptedTurn::tool_call("lookup", json!({"q": 8})),
        ScriptedTurn::text("recovered"),
    ]));
    let agent = Agent::builder()
        .model(model.clone())
        .tool(lookup)
        .build()
        .unwrap();
    let r = agent.run("go").await.unwrap();
    assert_eq!(r.output, "recovered");
    let calls = model.calls();
    let texts = |i: usize| -> Vec<String> { calls[i].tool_texts() };
    assert_eq!(
        texts(1),
        [
            "ERROR: invalid arguments for tool `lookup`: unknown field `query`, expected `q`",
            "ERROR: unknown tool `nope`; available tools: lookup",
        ]
    );
    // A number where a string is expected is an error too (no silent coercion to string).
    assert_eq!(
        texts(2)[2],
        "ERROR: invalid arguments for tool `lookup`: `q`: invalid type: integer `8`, expected a string"
    );
}

#[tokio::test]
async fn ends_turn_tools_stop_the_loop() {
    let model = scripted([
        ScriptedTurn::tool_call("finish", json!({"summary": "all set"})),
        ScriptedTurn::text("never reached"),
    ]);
    let agent = Agent::builder()
        .model(model.clone())
        .tool(finish)
        .build()
        .unwrap();
    let r = agent.run("go").await.unwrap();
    assert_eq!(r.turns, 1);
    assert!(!r.interrupted);
    assert_eq!(model.remaining(), 1);
}

#[tokio::test]
async fn max_turns_interrupts_cleanly_with_a_partial_result() {
    let model = scripted((0..5).map(|i| {
        let mut t = ScriptedTurn::tool_call("lookup", json!({"q": i.to_string()}));
        t.text = format!("thinking {i}");
        t
    }));
    let agent = Agent::builder()
        .model(model)
        .tool(lookup)
        .max_turns(3)
        .build()
        .unwrap();
    let events = collect_events(agent.run("go").stream()).await;
    let last = serde_json::to_value(events.last().unwrap()).unwrap();
    assert_eq!(last["kind"], "completed");
    let r = &last["payload"]["result"];
    assert_eq!(r["interrupted"], true);
    assert_eq!(r["interruption_reason"], "max_turns_exceeded");
    assert_eq!(r["turns"], 3);
    assert_eq!(r["output"], "thinking 2");
}

#[tokio::test]
async fn tool_timeout_and_result_cap_are_configurable() {
    /// Never returns in time.
    #[tool]
    async fn slow() -> String {
        tokio::time::sleep(Duration::from_secs(30)).await;
        "late".into()
    }
    /// Returns a lot.
    #[tool]
    async fn big() -> String {
        "x".repeat(100)
    }
    let model = RecordingModel::new(scripted([
        ScriptedTurn::tool_call("slow", json!({})).and_tool_call("big", json!({})),
        ScriptedTurn::text("ok"),
    ]));
    let agent = Agent::builder()
        .model(model.clone())
        .tool(slow)
        .tool(big)
        .tool_timeout(Duration::from_millis(200))
        .tool_result_max_chars(45)
        .build()
        .unwrap();
    let r = agent.run("go").await.unwrap();
    assert_eq!(r.output, "ok");
    let texts: Vec<_> = model.calls()[1].tool_texts();
    assert_eq!(
        texts,
        [
            "ERROR: tool `slow` timed out after 0.2s".to_owned(),
            format!("{}\n…[truncated 55 chars]", "x".repeat(45))
        ]
    );
}

#[tokio::test]
async fn run_timeout_is_a_typed_error() {
    /// Hangs.
    #[tool]
    async fn hang() -> String {
        tokio::time::sleep(Duration::from_secs(30)).await;
        String::new()
    }
    let agent = Agent::builder()
        .model(scripted([ScriptedTurn::tool_call("hang", json!({}))]))
        .tool(hang)
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let err = agent.run("go").await.unwrap_err();
    assert_eq!(err, Error::RunTimeout(Duration::from_millis(100)));
    assert!(err.to_string().starts_with("run timed out after 0.1s"));
    assert!(err.is_retryable());
}

#[tokio::test]
async fn malformed_ids_fail_the_run_with_an_error_event() {
    let agent = Agent::builder().model("echo").build().unwrap();
    let err = agent.run("hi").user("").await.unwrap_err();
    assert!(matches!(
        err,
        Error::Id(loomflow::IdError::Empty { kind: "user id" })
    ));
    let events = collect_events(agent.run("hi").session("has space").stream()).await;
    assert_eq!(event_trace(&events), ["error"]);
    let json = serde_json::to_value(&events[0]).unwrap();
    assert_eq!(json["payload"]["type"], "IdError");
    assert_eq!(
        json["payload"]["message"],
        "session id \"has space\" contains ' '; ids may not contain whitespace or control characters"
    );
}

#[test]
fn missing_or_unknown_models_are_config_errors_listing_choices() {
    let err = Agent::builder().instructions("x").build().unwrap_err();
    assert!(
        matches!(&err, ConfigError::MissingModel { valid } if valid.contains(&"echo".to_owned()))
    );
    assert_eq!(
        err.to_string(),
        format!(
            "no model configured: set one with `.model(...)`, `model = ...` in the config file or `--model` on the CLI; valid choices are {}",
            loomflow::model::registry::known_models().join(", ")
        )
    );
    let err = Agent::builder().model("gtp-4").build().unwrap_err();
    assert!(
        matches!(err, ConfigError::UnknownModel { ref name, .. } if name == "gtp-4"),
        "{err}"
    );
    assert!(Agent::builder().model("echo").max_turns(0).build().is_err());
    let err = Agent::builder()
        .model("echo")
        .tool(lookup)
        .tool_host(loomflow::InProcessToolHost::default())
        .build()
        .unwrap_err();
    assert!(err.to_string().starts_with("invalid tools: an agent takes either in-process tools (.tool) or a tool host (.tool_host), not both"), "{err}");
    assert!(
        Agent::builder()
            .model("echo")
            .timeout(Duration::ZERO)
            .build()
            .is_err()
    );
}

#[tokio::test]
async fn tone_presets_and_free_text_reach_the_system_prompt_per_call_first() {
    let model = RecordingModel::new(EchoModel::new());
    let agent = Agent::builder()
        .instructions("Base.")
        .model(model.clone())
        .tone("legal")
        .build()
        .unwrap();
    agent.run("a").await.unwrap();
    agent.run("b").tone("warm but precise").await.unwrap();
    agent.run("c").tone("EXECUTIVE").await.unwrap();
    let systems: Vec<_> = model
        .calls()
        .iter()
        .map(|c| c.messages[0].text_content())
        .collect();
    assert_eq!(
        systems[0],
        format!(
            "Base.\n\n---\nResponse style: {}",
            loomflow::tone::PRESETS[3].1
        )
    );
    assert_eq!(systems[1], "Base.\n\n---\nResponse style: warm but precise");
    assert!(systems[2].ends_with("Response style: Respond as an executive briefing: lead with the headline / decision, then 3-5 bullets of supporting detail. Concise; action-oriented."));
}

#[tokio::test]
async fn images_reach_the_model() {
    let model = RecordingModel::new(EchoModel::new());
    let agent = Agent::builder().model(model.clone()).build().unwrap();
    let image = loomflow::Image::Url {
        url: "https://example.com/cat.png".into(),
    };
    let r = agent
        .run("what is this?")
        .image(image.clone())
        .await
        .unwrap();
    assert_eq!(r.output, "Echo: what is this?");
    let user = &model.calls()[0].messages[0];
    assert_eq!(user.role, Role::User);
    assert_eq!(user.content[1], loomflow::ContentPart::Image { image });
}

#[tokio::test]
async fn a_slow_consumer_slows_the_run_and_dropping_the_stream_cancels_it() {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    /// Counts calls.
    #[tool]
    async fn tick() -> u64 {
        CALLS.fetch_add(1, Ordering::SeqCst) as u64
    }
    let turns = (0..6)
        .map(|_| ScriptedTurn::tool_call("tick", json!({})))
        .chain([ScriptedTurn::text("end")]);
    let agent = Agent::builder()
        .model(scripted(turns))
        .tool(tick)
        .event_buffer(1)
        .build()
        .unwrap();
    let mut stream = agent.stream("go");
    assert_eq!(stream.next().await.unwrap().kind_name(), "started");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // With one buffered event and nobody reading, the run is parked on a send.
    assert!(
        CALLS.load(Ordering::SeqCst) <= 1,
        "run raced ahead of its consumer"
    );
    let mut rest = 0;
    while stream.next().await.is_some() {
        rest += 1;
    }
    assert_eq!(CALLS.load(Ordering::SeqCst), 6);
    assert!(rest > 6);

    // Cancellation: a tool holding a guard is dropped when the stream is.
    struct Guard(Arc<AtomicUsize>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    static DROPPED: std::sync::OnceLock<Arc<AtomicUsize>> = std::sync::OnceLock::new();
    let dropped = DROPPED.get_or_init(Arc::default).clone();
    /// Holds a guard forever.
    #[tool]
    async fn forever() -> String {
        let _guard = Guard(DROPPED.get().unwrap().clone());
        std::future::pending::<()>().await;
        String::new()
    }
    let agent = Agent::builder()
        .model(scripted([ScriptedTurn::tool_call("forever", json!({}))]))
        .tool(forever)
        .build()
        .unwrap();
    let mut stream = agent.stream("go");
    while let Some(e) = stream.next().await {
        if e.kind_name() == "tool_call" {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
    drop(stream);
    for _ in 0..100 {
        if dropped.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the run's task was not cancelled"
    );
}

#[tokio::test]
async fn stream_result_returns_the_typed_outcome() {
    let agent = Agent::builder().model("echo").build().unwrap();
    let stream = agent.run("hello").user("bob").stream();
    let r = stream.result().await.unwrap();
    assert_eq!(r.output, "Echo: hello");
    assert_eq!(r.user_id.as_str(), Some("bob"));
}

#[tokio::test]
async fn resume_without_a_journal_says_what_is_missing() {
    let agent = Agent::builder().model("echo").build().unwrap();
    let first = agent.run("one").await.unwrap();
    let err = agent.resume(first.session_id.clone()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "resume needs a journal: build the agent or workflow with .journal(…)"
    );
}

#[tokio::test]
async fn the_gate_runs_hooks_permissions_and_approval_in_order() {
    use async_trait::async_trait;
    use loomflow::tool::{
        AfterToolHook, ApprovalDecision, ApprovalHandler, BeforeToolHook, HookDecision,
        PermissionDecision, Permissions,
    };
    use loomflow::{ToolCall, UserId};
    use std::sync::Mutex;

    type Log = Arc<Mutex<Vec<String>>>;
    struct Before(Log);
    #[async_trait]
    impl BeforeToolHook for Before {
        async fn before_tool(&self, call: &ToolCall) -> HookDecision {
            self.0
                .lock()
                .unwrap()
                .push(format!("before:{}:{}", call.tool, call.destructive));
            if call.args["q"] == "blocked" {
                HookDecision::Deny("blocked by hook".into())
            } else {
                HookDecision::Continue
            }
        }
    }
    struct Policy(Log);
    #[async_trait]
    impl Permissions for Policy {
        async fn check(&self, call: &ToolCall, user: &UserId) -> PermissionDecision {
            self.0.lock().unwrap().push(format!("permissions:{}", user));
            match call.args["q"].as_str() {
                Some("ask") | Some("edit") => PermissionDecision::Ask(Some("sensitive".into())),
                Some("deny") => PermissionDecision::Deny("policy says no".into()),
                _ => PermissionDecision::Allow,
            }
        }
    }
    struct Approver(Log);
    #[async_trait]
    impl ApprovalHandler for Approver {
        async fn approve(&self, call: &ToolCall, reason: Option<&str>) -> ApprovalDecision {
            self.0
                .lock()
                .unwrap()
                .push(format!("approve:{}", reason.unwrap_or("")));
            if call.args["q"] == "edit" {
                ApprovalDecision::Edit(json!({"q": "edited"}))
            } else {
                ApprovalDecision::Deny(None)
            }
        }
    }
    struct After(Log);
    #[async_trait]
    impl AfterToolHook for After {
        async fn after_tool(&self, call: &ToolCall, result: &mut ToolResult) {
            self.0
                .lock()
                .unwrap()
                .push(format!("after:{}", call.args["q"].as_str().unwrap_or("")));
            if let serde_json::Value::String(s) = &mut result.output {
                s.push_str(" (checked)");
            }
        }
    }

    let log: Log = Arc::default();
    let model = RecordingModel::new(scripted([
        ScriptedTurn::tool_call("lookup", json!({"q": "blocked"})),
        ScriptedTurn::tool_call("lookup", json!({"q": "deny"})),
        ScriptedTurn::tool_call("lookup", json!({"q": "ask"})),
        ScriptedTurn::tool_call("lookup", json!({"q": "edit"})),
        ScriptedTurn::tool_call("lookup", json!({"q": "fine"})),
        ScriptedTurn::text("done"),
    ]));
    let agent = Agent::builder()
        .model(model.clone())
        .tool(lookup)
        .before_tool(Before(log.clone()))
        .permissions(Policy(log.clone()))
        .approval_handler(Approver(log.clone()))
        .after_tool(After(log.clone()))
        .build()
        .unwrap();
    agent.run("go").user("dave").await.unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "before:lookup:false",
            "before:lookup:false",
            "permissions:dave",
            "before:lookup:false",
            "permissions:dave",
            "approve:sensitive",
            "before:lookup:false",
            "permissions:dave",
            "approve:sensitive",
            "after:edited",
            "before:lookup:false",
            "permissions:dave",
            "after:fine",
        ]
    );
    let last_call = model.calls().pop().unwrap();
    // The transcript records each call as dispatched: stamped, and with the
    // arguments the approver substituted.
    let dispatched: Vec<_> = last_call
        .messages
        .iter()
        .flat_map(|m| &m.tool_calls)
        .map(|c| (c.args["q"].as_str().unwrap().to_owned(), c.destructive))
        .collect();
    assert_eq!(dispatched[3], ("edited".to_owned(), false));
    let texts = last_call.tool_texts();
    assert_eq!(
        texts,
        [
            "DENIED: blocked by hook",
            "DENIED: policy says no",
            "DENIED: denied by approver",
            "result for edited (checked)",
            "result for fine (checked)",
        ]
    );

    // Ask without an approval handler is deny.
    let agent = Agent::builder()
        .model(scripted([
            ScriptedTurn::tool_call("lookup", json!({"q": "ask"})),
            ScriptedTurn::text("x"),
        ]))
        .tool(lookup)
        .permissions(Policy(Arc::default()))
        .build()
        .unwrap();
    let events = collect_events(agent.stream("go")).await;
    let result = events
        .iter()
        .find(|e| e.kind_name() == "tool_result")
        .unwrap();
    let json = serde_json::to_value(result).unwrap();
    assert_eq!(json["payload"]["result"]["denied"], true);
    assert_eq!(
        json["payload"]["result"]["reason"],
        "approval required; no approver"
    );
}

#[tokio::test]
async fn destructive_flag_is_stamped_from_the_definition_and_fails_closed() {
    /// Delete a file.
    #[tool(destructive)]
    async fn delete(path: String) -> String {
        format!("deleted {path}")
    }
    let agent = Agent::builder()
        .model(scripted([
            ScriptedTurn::tool_call("delete", json!({"path": "/tmp/x"}))
                .and_tool_call("ghost", json!({}))
                .and_tool_call("lookup", json!({"q": "a"})),
            ScriptedTurn::text("ok"),
        ]))
        .tool(delete)
        .tool(lookup)
        .build()
        .unwrap();
    let events = collect_events(agent.stream("go")).await;
    let flags: Vec<(String, bool)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ToolCall { call } => Some((call.tool.clone(), call.destructive)),
            _ => None,
        })
        .collect();
    assert_eq!(
        flags,
        [
            ("delete".into(), true),
            ("ghost".into(), true),
            ("lookup".into(), false)
        ]
    );
}

#[tokio::test]
async fn agents_are_shared_across_tasks_and_tools_can_change_at_run_time() {
    let agent = Agent::builder().model("echo").build().unwrap();
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let agent = agent.clone();
            tokio::spawn(async move {
                agent
                    .run(format!("n{i}"))
                    .user(format!("u{i}").as_str())
                    .await
                    .unwrap()
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let r = h.await.unwrap();
        assert_eq!(r.output, format!("Echo: n{i}"));
        assert_eq!(r.user_id.as_str(), Some(format!("u{i}").as_str()));
    }
    agent.add_tool(lookup).unwrap();
    let names: Vec<_> = agent
        .tool_host()
        .list_tools()
        .await
        .unwrap()
        .iter()
        .map(|d| d.name.clone())
        .collect();
    assert_eq!(names, ["lookup"]);
    assert_eq!(agent.remove_tool("lookup"), Ok(true));
}

#[tokio::test]
async fn a_panicking_tool_becomes_an_error_result_not_a_dead_run() {
    /// Panics.
    #[tool]
    async fn boom_async() -> String {
        panic!("async boom")
    }
    /// Panics on the blocking pool.
    #[tool]
    fn boom_sync() -> String {
        panic!("sync boom")
    }
    let model = RecordingModel::new(scripted([
        ScriptedTurn::tool_call("boom_async", json!({})).and_tool_call("boom_sync", json!({})),
        ScriptedTurn::text("survived"),
    ]));
    let agent = Agent::builder()
        .model(model.clone())
        .tool(boom_async)
        .tool(boom_sync)
        .build()
        .unwrap();
    let r = agent.run("go").await.unwrap();
    assert_eq!(r.output, "survived");
    let texts: Vec<_> = model.calls()[1].tool_texts();
    assert_eq!(texts[0], "ERROR: tool `boom_async` panicked");
    assert!(
        texts[1].starts_with("ERROR: tool `boom_sync` panicked: "),
        "{}",
        texts[1]
    );
}
