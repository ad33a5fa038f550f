//! Governance end to end: the gate on every path into a tool, approvals,
//! failing hooks, budgets (per run, and per user under 100 concurrent runs,
//! for tokens and for cost),
//! the rate limiter and the audit trail of a run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use loomflow::audit::{AuditLog, AuditQuery, AuditSecret, FileAuditLog, InMemoryAuditLog};
use loomflow::budget::{BudgetConfig, StandardBudget};
use loomflow::permissions::{Mode, StandardPermissions};
use loomflow::prelude::*;
use loomflow::rate_limit::{RateLimitMode, RateLimiter};
use loomflow::tool::{
    AfterToolHook, ApprovalDecision, ApprovalHandler, BeforeToolHook, HookDecision,
};
use loomflow::{Error, Role, ToolCall, ToolResult, Usage};
use loomflow_testkit::{RecordingModel, collect_events, event_trace};
use serde_json::json;

static TOUCHED: AtomicUsize = AtomicUsize::new(0);

/// Touch a file.
#[tool(destructive)]
async fn touch(path: String) -> String {
    TOUCHED.fetch_add(1, Ordering::SeqCst);
    format!("touched {path}")
}

/// Write a file.
#[tool(destructive)]
async fn write(path: String) -> String {
    format!("wrote {path}")
}

/// Look something up.
#[tool]
async fn lookup(q: String) -> String {
    format!("result for {q}")
}

fn turn_usage(input: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        ..Usage::default()
    }
}

fn tool_texts(model: &RecordingModel) -> Vec<String> {
    model
        .calls()
        .pop()
        .unwrap()
        .messages
        .iter()
        .filter(|m| m.role == Role::Tool)
        .map(|m| m.text_content())
        .collect()
}

/// Agent turns, a workflow called as a tool, and a sub-agent inside that
/// workflow: each reaches `touch` only through a gate. With every policy
/// denying, nothing runs; with every policy allowing (the control), each
/// path does run, so the test would see a way around.
#[tokio::test]
async fn every_path_into_a_tool_passes_a_gate() {
    let inner_agent = |policy: StandardPermissions| {
        Agent::builder()
            .name("inner")
            .model(ScriptedModel::new([
                ScriptedTurn::tool_call("touch", json!({"path": "/inner"})),
                ScriptedTurn::text("inner done"),
            ]))
            .tool(touch)
            .permissions(policy)
            .build()
            .unwrap()
    };
    let outer = |policy: StandardPermissions, wf: &Workflow| {
        Agent::builder()
            .model(ScriptedModel::new([
                ScriptedTurn::tool_call("touch", json!({"path": "/outer"}))
                    .and_tool_call("wf", json!({"input": "go"})),
                ScriptedTurn::text("done"),
            ]))
            .tool(touch)
            .tool(wf.as_tool().destructive(true))
            .permissions(policy)
            .build()
            .unwrap()
    };
    let deny_all = || StandardPermissions::new().allow(Vec::<String>::new());
    let allow_all = || StandardPermissions::new().mode(Mode::Bypass);

    TOUCHED.store(0, Ordering::SeqCst);
    let wf = Workflow::builder("wf")
        .add_node("inner", inner_agent(deny_all()))
        .add_edge(START, "inner")
        .add_edge("inner", END)
        .build()
        .unwrap();
    outer(deny_all(), &wf).run("go").await.unwrap();
    // The workflow run directly: its sub-agent's gate still holds.
    wf.run("go").await.unwrap();
    assert_eq!(TOUCHED.load(Ordering::SeqCst), 0);

    let wf = Workflow::builder("wf")
        .add_node("inner", inner_agent(allow_all()))
        .add_edge(START, "inner")
        .add_edge("inner", END)
        .build()
        .unwrap();
    outer(allow_all(), &wf).run("go").await.unwrap();
    assert_eq!(
        TOUCHED.load(Ordering::SeqCst),
        2,
        "the control: the outer call and the sub-agent's call both ran"
    );
}

#[tokio::test]
async fn approvals_remember_per_user_and_tool_and_edit_arguments() {
    struct Approver(Arc<AtomicUsize>);
    #[async_trait]
    impl ApprovalHandler for Approver {
        async fn approve(&self, call: &ToolCall, _reason: Option<&str>) -> ApprovalDecision {
            self.0.fetch_add(1, Ordering::SeqCst);
            let user = RunContext::current().unwrap().user_id;
            match (user.as_str(), call.args["path"].as_str()) {
                (Some("alice"), Some("/edit-me")) => {
                    ApprovalDecision::Edit(json!({"path": "/tmp/safe"}))
                }
                (Some("alice"), _) => ApprovalDecision::RememberAllow,
                _ => ApprovalDecision::RememberDeny(Some("no writes for bob".into())),
            }
        }
    }
    let asked = Arc::new(AtomicUsize::new(0));
    let model = RecordingModel::new(ScriptedModel::new([
        // alice
        ScriptedTurn::tool_call("write", json!({"path": "/edit-me"})),
        ScriptedTurn::tool_call("write", json!({"path": "/a"})),
        ScriptedTurn::tool_call("write", json!({"path": "/b"})),
        ScriptedTurn::text("done"),
        // bob
        ScriptedTurn::tool_call("write", json!({"path": "/c"})),
        ScriptedTurn::tool_call("write", json!({"path": "/d"})),
        ScriptedTurn::text("done"),
    ]));
    let agent = Agent::builder()
        .model(model.clone())
        .tool(write)
        .permissions(StandardPermissions::new())
        .approval_handler(Approver(asked.clone()))
        .build()
        .unwrap();
    agent.run("go").user("alice").await.unwrap();
    assert_eq!(
        tool_texts(&model),
        ["wrote /tmp/safe", "wrote /a", "wrote /b"],
        "an edit runs the edited call; remember-allow stops the asking"
    );
    assert_eq!(asked.load(Ordering::SeqCst), 2);
    agent.run("go").user("bob").await.unwrap();
    assert_eq!(
        tool_texts(&model),
        ["DENIED: no writes for bob", "DENIED: no writes for bob"]
    );
    assert_eq!(
        asked.load(Ordering::SeqCst),
        3,
        "alice's remembered allow does not answer for bob; bob's deny is remembered"
    );
}

#[tokio::test]
async fn failing_or_slow_hooks_and_approvers_deny() {
    struct Slow;
    #[async_trait]
    impl BeforeToolHook for Slow {
        async fn before_tool(&self, call: &ToolCall) -> HookDecision {
            if call.args["q"] == "slow" {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            HookDecision::Continue
        }
    }
    struct Panicky;
    #[async_trait]
    impl BeforeToolHook for Panicky {
        async fn before_tool(&self, call: &ToolCall) -> HookDecision {
            if call.args["q"] == "boom" {
                panic!("hook bug");
            }
            HookDecision::Continue
        }
    }
    struct BrokenRedactor;
    #[async_trait]
    impl AfterToolHook for BrokenRedactor {
        async fn after_tool(&self, call: &ToolCall, _result: &mut ToolResult) {
            if call.args["q"] == "secret" {
                panic!("redactor bug");
            }
        }
    }
    struct PanickingApprover;
    #[async_trait]
    impl ApprovalHandler for PanickingApprover {
        async fn approve(&self, _call: &ToolCall, _reason: Option<&str>) -> ApprovalDecision {
            panic!("approver bug")
        }
    }
    let model = RecordingModel::new(ScriptedModel::new([
        ScriptedTurn::tool_call("lookup", json!({"q": "slow"}))
            .and_tool_call("lookup", json!({"q": "boom"}))
            .and_tool_call("lookup", json!({"q": "secret"}))
            .and_tool_call("write", json!({"path": "/x"}))
            .and_tool_call("lookup", json!({"q": "fine"})),
        ScriptedTurn::text("done"),
    ]));
    let agent = Agent::builder()
        .model(model.clone())
        .tool(lookup)
        .tool(write)
        .before_tool(Slow)
        .before_tool(Panicky)
        .after_tool(BrokenRedactor)
        .permissions(StandardPermissions::new())
        .approval_handler(PanickingApprover)
        .hook_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    agent.run("go").await.unwrap();
    assert_eq!(
        tool_texts(&model),
        [
            "DENIED: before-tool hook timed out after 50ms",
            "DENIED: before-tool hook failed",
            "DENIED: after-tool hook panicked; the result was withheld",
            "DENIED: approval handler failed",
            "result for fine",
        ]
    );
}

#[tokio::test]
async fn a_run_over_its_token_cap_stops_cleanly_after_a_warning() {
    let turn = |q: &str| {
        ScriptedTurn::tool_call("lookup", json!({ "q": q })).with_usage(turn_usage(30, 10))
    };
    let agent = Agent::builder()
        .model(ScriptedModel::new([
            turn("a"),
            turn("b"),
            turn("c"),
            turn("d"),
            ScriptedTurn::text("never reached"),
        ]))
        .tool(lookup)
        .budget(BudgetConfig {
            max_tokens: Some(100),
            ..BudgetConfig::default()
        })
        .build()
        .unwrap();
    let events = collect_events(agent.run("go").stream()).await;
    let kinds: Vec<String> = event_trace(&events)
        .into_iter()
        .filter(|k| !k.starts_with("model_chunk"))
        .collect();
    assert_eq!(
        kinds,
        [
            "started",
            "tool_call:lookup",
            "tool_result",
            "tool_call:lookup",
            "tool_result",
            "budget_warning",
            "tool_call:lookup",
            "tool_result",
            "budget_exceeded",
            "completed",
        ]
    );
    let json = |e: &Event| serde_json::to_value(e).unwrap();
    let warning = json(
        events
            .iter()
            .find(|e| e.kind_name() == "budget_warning")
            .unwrap(),
    );
    assert_eq!(warning["payload"]["status"]["warning"], "tokens at 80%");
    let exceeded = json(
        events
            .iter()
            .find(|e| e.kind_name() == "budget_exceeded")
            .unwrap(),
    );
    assert_eq!(exceeded["payload"]["status"]["reason"], "max_tokens");
    let completed = json(events.last().unwrap());
    let result = &completed["payload"]["result"];
    assert_eq!(result["interrupted"], true);
    assert_eq!(result["interruption_reason"], "budget:max_tokens");
    assert_eq!(result["turns"], 3, "the partial result keeps its turns");
    assert_eq!(result["tokens_in"], 90);
    assert_eq!(result["tokens_out"], 30);
}

/// A model that takes a moment to answer, so concurrent runs interleave.
struct Slow(ScriptedModel);

#[async_trait]
impl loomflow::Model for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    async fn stream(
        &self,
        request: loomflow::model::ModelRequest<'_>,
    ) -> Result<loomflow::model::ChunkStream, loomflow::ModelError> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.0.stream(request).await
    }
    async fn complete(
        &self,
        request: loomflow::model::ModelRequest<'_>,
    ) -> Result<loomflow::model::Completion, loomflow::ModelError> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.0.complete(request).await
    }
}

/// 100 runs of `user` at once under `budget`, each calling the model up to
/// six times, every call costing `usage`.
async fn hundred_concurrent_runs(
    budget: &StandardBudget,
    usage: Usage,
    user: &str,
) -> Vec<RunResult> {
    let turns = (0..600).map(|i| {
        ScriptedTurn::tool_call("lookup", json!({ "q": i.to_string() })).with_usage(usage)
    });
    let agent = Agent::builder()
        .model(Slow(ScriptedModel::new(turns)))
        .tool(lookup)
        .max_turns(6)
        .shared_budget(budget.clone())
        .build()
        .unwrap();
    let runs = (0..100).map(|_| {
        let (agent, user) = (agent.clone(), user.to_owned());
        tokio::spawn(async move { agent.run("go").user(user.as_str()).await.unwrap() })
    });
    futures_util::future::join_all(runs)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

fn stopped_by(results: &[RunResult], reason: &str) -> usize {
    results
        .iter()
        .filter(|r| r.interruption_reason.as_deref() == Some(reason))
        .count()
}

/// 100 runs of one user at once against a per-user cap: the user overspends
/// by no more than one model call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_never_overspends_by_more_than_a_step_under_concurrency() {
    const STEP: u64 = 40;
    const CAP: u64 = 1_000;
    let budget = StandardBudget::new(BudgetConfig {
        per_user_max_tokens: Some(CAP),
        ..BudgetConfig::default()
    });
    let results = hundred_concurrent_runs(&budget, turn_usage(30, 10), "carol").await;
    let spent: u64 = results.iter().map(|r| r.tokens_in + r.tokens_out).sum();
    let carol = UserId::new("carol").unwrap();
    assert_eq!(budget.usage_for(&carol).spend.tokens_total(), spent);
    assert!(
        (CAP..=CAP + STEP).contains(&spent),
        "spent {spent} against a cap of {CAP}"
    );
    let stopped = stopped_by(&results, "budget:per_user_max_tokens");
    assert!(stopped >= 75, "{stopped} runs stopped by the cap");
    // Another user is untouched by carol's spend.
    assert_eq!(
        budget
            .usage_for(&UserId::new("dave").unwrap())
            .spend
            .tokens_total(),
        0
    );
}

/// The same race against a per-user cost cap: the user overspends by no
/// more than one model call's cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_never_overspends_a_cost_cap_by_more_than_a_step_under_concurrency() {
    const STEP: f64 = 0.03;
    const CAP: f64 = 0.75;
    let budget = StandardBudget::new(BudgetConfig {
        per_user_max_cost_usd: Some(CAP),
        ..BudgetConfig::default()
    });
    let usage = Usage {
        cost_usd: STEP,
        ..turn_usage(30, 10)
    };
    let results = hundred_concurrent_runs(&budget, usage, "frank").await;
    let spent: f64 = results.iter().map(|r| r.cost_usd).sum();
    let frank = UserId::new("frank").unwrap();
    assert!((budget.usage_for(&frank).spend.cost_usd - spent).abs() < 1e-9);
    assert!(
        (CAP - 1e-9..=CAP + STEP + 1e-9).contains(&spent),
        "spent ${spent} against a cap of ${CAP}"
    );
    let stopped = stopped_by(&results, "budget:per_user_max_cost_usd");
    assert!(stopped >= 75, "{stopped} runs stopped by the cap");
}

#[tokio::test]
async fn the_rate_limiter_rejects_with_a_retry_hint() {
    let agent = Agent::builder()
        .model(ScriptedModel::new([
            ScriptedTurn::tool_call("lookup", json!({"q": "x"})),
            ScriptedTurn::text("done"),
        ]))
        .tool(lookup)
        .rate_limit(
            RateLimiter::new(0.01, 1)
                .unwrap()
                .mode(RateLimitMode::Reject),
        )
        .build()
        .unwrap();
    let err = agent.run("go").user("erin").await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("rate limit reached for user erin: retry in "),
        "{err}"
    );
    let Error::RateLimited(limited) = err else {
        panic!("a rate-limit error expected")
    };
    assert!(
        (Duration::from_secs(99)..=Duration::from_secs(100)).contains(&limited.retry_after),
        "{limited:?}"
    );
}

#[tokio::test]
async fn a_run_leaves_a_signed_redacted_audit_trail() {
    struct EditIt;
    #[async_trait]
    impl ApprovalHandler for EditIt {
        async fn approve(&self, _call: &ToolCall, _reason: Option<&str>) -> ApprovalDecision {
            ApprovalDecision::Edit(json!({"path": "/tmp/safe"}))
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = FileAuditLog::open(&path, AuditSecret::new("audit-key")).unwrap();
    let agent = Agent::builder()
        .model(ScriptedModel::new([
            ScriptedTurn::tool_call("lookup", json!({"q": "key sk-live0123456789abcdefgh"})),
            ScriptedTurn::tool_call("write", json!({"path": "/etc/passwd"})),
            ScriptedTurn::text("done"),
        ]))
        .tool(lookup)
        .tool(write)
        .permissions(StandardPermissions::new())
        .approval_handler(EditIt)
        .audit_log(log.clone())
        .build()
        .unwrap();
    let r = agent
        .run("hello")
        .user("alice")
        .session("s-9")
        .await
        .unwrap();
    let entries = log.query(&AuditQuery::all().session("s-9")).await.unwrap();
    let trail: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str()))
        .collect();
    assert_eq!(
        trail,
        [
            ("user", "run_started"),
            ("model", "tool_call"),
            ("system", "tool_result"),
            ("model", "tool_call"),
            ("user", "tool_call_edited"),
            ("system", "tool_result"),
            ("system", "run_completed"),
        ]
    );
    assert!(entries.iter().all(|e| e.user_id == r.user_id));
    assert_eq!(entries[1].payload["args"]["q"], "key [REDACTED]");
    let edited = &entries[4].payload;
    assert_eq!(edited["original_args"]["path"], "/etc/passwd");
    assert_eq!(edited["args"]["path"], "/tmp/safe");
    assert_eq!(entries[0].payload["prompt"], "hello");
    assert_eq!(entries[6].payload["turns"], 3);
    assert!(
        entries[6].payload.get("output").is_none(),
        "summaries only by default"
    );
    let v = log.verify(None).await.unwrap();
    assert!(v.ok, "{:?}", v.problems);
    assert_eq!(v.entries, 7);
    // Another tenant's query sees none of it.
    let other = log
        .query(&AuditQuery::all().user(&UserId::new("mallory").unwrap()))
        .await
        .unwrap();
    assert!(other.is_empty());
}

#[tokio::test]
async fn guardrails_check_input_tool_results_and_output() {
    use loomflow::audit::InMemoryAuditLog;
    use loomflow::guardrails::{
        InjectionGuard, ModerationGuard, PiiGuard, RegexAction, RegexGuard,
    };

    let log = Arc::new(InMemoryAuditLog::new(AuditSecret::new("k")));
    let model = RecordingModel::new(ScriptedModel::new([
        ScriptedTurn::tool_call("lookup", json!({"q": "owner"})),
        ScriptedTurn::text("Call me at +14155552671."),
    ]));
    let agent = Agent::builder()
        .model(model.clone())
        .tool(lookup)
        .guardrail(PiiGuard::new())
        .guardrail(
            RegexGuard::new("sql")
                .rule("(?i)drop\\s+table", RegexAction::Block)
                .unwrap(),
        )
        .guardrail(InjectionGuard::new())
        .audit_log(log.clone())
        .build()
        .unwrap();
    let events = collect_events(agent.run("I am jo@example.com").user("u1").stream()).await;
    let calls = model.calls();
    assert_eq!(
        calls[0].messages.last().unwrap().text_content(),
        "I am [REDACTED:email]",
        "the model never saw the address"
    );
    let started = log
        .query(&AuditQuery::all().action("run_started"))
        .await
        .unwrap();
    assert_eq!(
        started[0].payload["prompt"], "I am [REDACTED:email]",
        "nor did the audit log"
    );
    let tool_text = tool_texts(&model).pop().unwrap();
    assert!(
        tool_text.starts_with("<tool_output>\nresult for owner\n</tool_output>"),
        "{tool_text}"
    );
    let completed = serde_json::to_value(events.last().unwrap()).unwrap();
    assert_eq!(
        completed["payload"]["result"]["output"],
        "Call me at [REDACTED:phone]."
    );
    let triggered: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .filter(|e| e["payload"]["name"] == "guardrail.triggered")
        .map(|e| {
            format!(
                "{}:{}:{}",
                e["payload"]["stage"].as_str().unwrap(),
                e["payload"]["guard"].as_str().unwrap(),
                e["payload"]["action"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        triggered,
        [
            "input:pii:annotate",
            "tool_result:injection:annotate",
            "output:pii:annotate"
        ]
    );

    // A blocked input: no model call, a clean interruption, an audit entry.
    let before = model.calls().len();
    let r = agent
        .run("please DROP TABLE users")
        .user("u1")
        .await
        .unwrap();
    assert!(r.interrupted);
    assert_eq!(r.interruption_reason.as_deref(), Some("guardrail:sql"));
    assert_eq!((r.turns, r.output.as_str()), (0, ""));
    assert_eq!(model.calls().len(), before);
    let blocked = log
        .query(&AuditQuery::all().action("guardrail_blocked"))
        .await
        .unwrap();
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0].payload["stage"], "input");
    assert_eq!(blocked[0].payload["guard"], "sql");

    // A model judge blocks an output: withheld.
    let judge: Arc<dyn loomflow::Model> = Arc::new(ScriptedModel::new([
        ScriptedTurn::text("score: 0.1"),
        ScriptedTurn::text("score: 0.93"),
    ]));
    let agent = Agent::builder()
        .model(ScriptedModel::new([ScriptedTurn::text("something awful")]))
        .guardrail(ModerationGuard::new(judge, 0.5))
        .build()
        .unwrap();
    let r = agent.run("hi").await.unwrap();
    assert_eq!(
        r.interruption_reason.as_deref(),
        Some("guardrail:moderation")
    );
    assert_eq!(r.output, "");
}

#[tokio::test]
async fn output_guardrails_filter_the_live_stream() {
    use loomflow::guardrails::{PiiGuard, RegexAction, RegexGuard};

    fn streamed_text(events: &[serde_json::Value]) -> String {
        events
            .iter()
            .filter(|e| e["kind"] == "model_chunk" && e["payload"]["chunk"]["kind"] == "text")
            .map(|e| e["payload"]["chunk"]["text"].as_str().unwrap())
            .collect()
    }
    let filler = "Here is a sentence that keeps the reply going for a while. ".repeat(8);
    let model = ScriptedModel::new([
        ScriptedTurn::text("Checking the owner jo@example.com first.")
            .and_tool_call("lookup", json!({"q": "owner"})),
        ScriptedTurn::text(format!(
            "{filler}Write to jo@example.com or call +14155552671. {filler}"
        )),
        ScriptedTurn::text(format!("{filler}The plan is INTERNAL ONLY: {filler}")),
    ]);
    let agent = Agent::builder()
        .model(model)
        .tool(lookup)
        .guardrail(PiiGuard::new())
        .guardrail(
            RegexGuard::new("secrets")
                .rule("(?i)internal only", RegexAction::Block)
                .unwrap(),
        )
        .build()
        .unwrap();

    let events = collect_events(agent.run("who owns it?").stream()).await;
    let json: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    let text = streamed_text(&json);
    assert_eq!(
        text,
        format!(
            "Checking the owner [REDACTED:email] first.{filler}Write to [REDACTED:email] \
             or call [REDACTED:phone]. {filler}"
        )
    );
    assert!(json.iter().all(|e| {
        let s = e.to_string();
        !s.contains("jo@example.com") && !s.contains("4155552671")
    }));
    // The held text of the first reply comes out before its tool call: the
    // chunk order is kept.
    let trace = event_trace(&events);
    let first_call = trace
        .iter()
        .position(|k| k == "model_chunk:tool_call")
        .unwrap();
    assert_eq!(trace[first_call - 1], "model_chunk:text");
    assert!(
        trace[..first_call]
            .iter()
            .filter(|k| *k == "model_chunk:text")
            .count()
            >= 1
    );
    // Text flows during the reply, not all at its end.
    assert!(trace.iter().filter(|k| *k == "model_chunk:text").count() > 3);

    // A block mid-reply stops the text; the run then ends on its own check.
    let events = collect_events(agent.run("and the plan?").stream()).await;
    let json: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    let text = streamed_text(&json);
    assert!(
        filler.starts_with(text.as_str()) && !text.is_empty(),
        "{text}"
    );
    let triggered: Vec<String> = json
        .iter()
        .filter(|e| e["payload"]["name"] == "guardrail.triggered")
        .map(|e| {
            let p = &e["payload"];
            format!(
                "{}:{}:{}:{}",
                p["guard"].as_str().unwrap(),
                p["action"].as_str().unwrap(),
                p["streamed"],
                p["part"]
            )
        })
        .collect();
    assert_eq!(
        triggered,
        ["secrets:block:true:\"text\"", "secrets:block:null:null"]
    );
    let r = &json.last().unwrap()["payload"]["result"];
    assert_eq!(r["interruption_reason"], "guardrail:secrets");
    assert_eq!(r["output"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jsonl_log_passes_the_audit_contract() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    loomflow_testkit::audit_contract::run_all(|name| {
        let path = root.join(format!("{name}.jsonl"));
        async move {
            Arc::new(FileAuditLog::open(path, AuditSecret::new("contract-key")).unwrap())
                as Arc<dyn AuditLog>
        }
    })
    .await;
}

#[derive(Debug, thiserror::Error)]
#[error("upstream refused key sk-proj-abcdefghijklmnopqrstuvwxyz0123456789")]
struct Refused;

#[tokio::test]
async fn a_workflow_audits_its_steps_and_lends_its_log_to_agents_and_nested_workflows() {
    async fn publish(_: String) -> Result<String, Refused> {
        Err(Refused)
    }
    async fn tidy(s: String) -> String {
        s.trim().to_owned()
    }
    let log = Arc::new(InMemoryAuditLog::new(AuditSecret::new("wf-key")));
    let own = Arc::new(InMemoryAuditLog::new(AuditSecret::new("own-key")));
    let writer = Agent::builder()
        .model(ScriptedModel::new([ScriptedTurn::text(" draft ")]))
        .build()
        .unwrap();
    // An agent with a log of its own keeps writing there.
    let reviewer = Agent::builder()
        .model(ScriptedModel::new([ScriptedTurn::text("ok")]))
        .audit_log_arc(own.clone())
        .build()
        .unwrap();
    let inner = Workflow::builder("inner")
        .add_node("tidy", tidy)
        .set_start("tidy")
        .add_edge("tidy", END)
        .build()
        .unwrap();
    let wf = Workflow::builder("pipeline")
        .add_node("write", writer)
        .add_node("polish", inner)
        .add_node("review", reviewer)
        .add_node("publish", publish)
        .set_start("write")
        .add_edge("write", "polish")
        .add_edge("polish", "review")
        .add_edge("review", "publish")
        .add_edge("publish", END)
        .audit_log_arc(log.clone())
        .build()
        .unwrap();
    let err = wf
        .run("go")
        .user("alice")
        .session("s-wf")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("publish"), "{err}");

    let entries = log.query(&AuditQuery::all()).await.unwrap();
    let trace: Vec<String> = entries
        .iter()
        .map(|e| {
            let step = e
                .payload
                .get("step")
                .and_then(|s| s.as_str())
                .unwrap_or("-");
            let wf = e
                .payload
                .get("workflow")
                .and_then(|s| s.as_str())
                .unwrap_or("-");
            format!("{} {wf}/{step}", e.action)
        })
        .collect();
    assert_eq!(
        trace,
        [
            "step_started pipeline/write",
            "run_started -/-",
            "run_completed -/-",
            "step_completed pipeline/write",
            "step_started pipeline/polish",
            "step_started inner/tidy",
            "step_completed inner/tidy",
            "step_completed pipeline/polish",
            "step_started pipeline/review",
            "step_completed pipeline/review",
            "step_started pipeline/publish",
            "step_failed pipeline/publish",
        ]
    );
    for e in &entries {
        assert_eq!(e.user_id.as_str(), Some("alice"));
        assert_eq!(e.session_id, "s-wf");
    }
    let failed = entries.last().unwrap();
    assert_eq!(failed.actor, "system");
    let error = failed.payload["error"].as_str().unwrap();
    assert!(error.starts_with("upstream refused key "), "{error}");
    assert!(
        !error.contains("abcdefghijklmnop"),
        "the key is redacted: {error}"
    );
    assert!(log.verify(None).await.unwrap().ok);

    let own_actions: Vec<String> = own
        .query(&AuditQuery::all())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(own_actions, ["run_started", "run_completed"]);
}
