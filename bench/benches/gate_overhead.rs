//! The governance layer's cost per tool call: the gate with nothing in it,
//! with a full policy and two hooks, plus the two audit entries a call
//! writes (in memory), and one append to a JSONL audit file.
//!
//! cargo bench -p loomflow-bench --bench gate_overhead

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use async_trait::async_trait;
use loomflow::audit::{AuditLog, AuditRecord, AuditSecret, FileAuditLog, InMemoryAuditLog};
use loomflow::permissions::StandardPermissions;
use loomflow::tool::{BeforeToolHook, HookDecision, Tool, ToolGate};
use loomflow::{InProcessToolHost, ToolCall, UserId};
use loomflow_bench::lookup;
use loomflow_bench::runtime;
use serde_json::json;

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

fn main() {
    divan::main();
}

struct Allow;

#[async_trait]
impl BeforeToolHook for Allow {
    async fn before_tool(&self, call: &ToolCall) -> HookDecision {
        if call.tool.is_empty() {
            HookDecision::Deny("nameless".into())
        } else {
            HookDecision::Continue
        }
    }
}

fn host() -> InProcessToolHost {
    InProcessToolHost::new([Arc::new(lookup) as Arc<dyn Tool>])
}

fn call() -> ToolCall {
    ToolCall::new("lookup", json!({"q": "refund policy"}))
}

/// No policy, no hooks: the tool call alone (and the gate's timeout).
#[divan::bench]
fn no_gate(bencher: divan::Bencher) {
    let rt = runtime();
    let (host, gate, user) = (host(), ToolGate::default(), UserId::new("u").unwrap());
    bencher.bench_local(|| {
        rt.block_on(async {
            let mut c = call();
            assert!(gate.execute(&host, &mut c, &user).await.ok);
        })
    });
}

/// A standard policy with allow and deny lists, two before-tool hooks, and
/// the `tool_call` and `tool_result` entries written to an in-memory log.
#[divan::bench]
fn full_gate_with_audit(bencher: divan::Bencher) {
    let rt = runtime();
    let host = host();
    let gate = ToolGate::default()
        .with_permissions(Arc::new(
            StandardPermissions::new()
                .allow(["lookup", "write", "edit"])
                .deny(["bash"]),
        ))
        .with_before_hook(Arc::new(Allow))
        .with_before_hook(Arc::new(Allow));
    let log = InMemoryAuditLog::new(AuditSecret::new("bench-key"));
    let user = UserId::new("u").unwrap();
    bencher.bench_local(|| {
        rt.block_on(async {
            let mut c = call();
            log.append(
                AuditRecord::new(&user, "s", "model", "tool_call")
                    .with("tool", c.tool.clone())
                    .with("args", c.args.clone()),
            )
            .await
            .unwrap();
            let r = gate.execute(&host, &mut c, &user).await;
            log.append(
                AuditRecord::new(&user, "s", "system", "tool_result")
                    .with("tool", c.tool.clone())
                    .with("ok", r.ok),
            )
            .await
            .unwrap();
            assert!(r.ok);
        })
    });
}

/// One signed entry appended to a JSONL file (flock, write).
#[divan::bench]
fn audit_append_to_file(bencher: divan::Bencher) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = FileAuditLog::open(dir.path().join("audit.jsonl"), AuditSecret::new("k")).unwrap();
    let user = UserId::new("u").unwrap();
    bencher.bench_local(|| {
        rt.block_on(async {
            log.append(
                AuditRecord::new(&user, "s", "model", "tool_call")
                    .with("tool", "lookup")
                    .with("args", json!({"q": "refund policy"})),
            )
            .await
            .unwrap();
        })
    });
}
