//! The tool gate: the one path every tool call takes, in a fixed order:
//! destructive flag → before-tool hooks → permissions → approval → execute →
//! after-tool hooks.
//!
//! The defaults allow everything; the governance layer plugs policies in here
//! without reshaping the agent loop.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use futures_util::FutureExt;

use super::ToolHost;
use crate::bounded::{BoundedMap, Bounds};
use crate::id::UserId;
use crate::message::{ToolCall, ToolDef, ToolResult};

/// What a permission policy says about a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionDecision {
    /// Run it.
    Allow,
    /// Refuse, with a reason the model sees.
    Deny(String),
    /// Ask the approval handler (no handler means deny).
    Ask(Option<String>),
}

/// A permission policy, consulted for every call.
#[async_trait]
pub trait Permissions: Send + Sync + 'static {
    /// Decides on `call` for `user`.
    async fn check(&self, call: &ToolCall, user: &UserId) -> PermissionDecision;

    /// True if this policy allows everything, so the gate can skip it.
    fn allows_everything(&self) -> bool {
        false
    }
}

/// The default policy: allow every call.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

#[async_trait]
impl Permissions for AllowAll {
    async fn check(&self, _call: &ToolCall, _user: &UserId) -> PermissionDecision {
        PermissionDecision::Allow
    }

    fn allows_everything(&self) -> bool {
        true
    }
}

/// What a before-tool hook says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookDecision {
    /// Go on to the next stage.
    Continue,
    /// Refuse the call.
    Deny(String),
}

/// Runs before every call; the first deny wins. A hook can only deny (an
/// ask is the policy's to make). A hook that panics or runs past the gate's
/// hook timeout denies the call.
#[async_trait]
pub trait BeforeToolHook: Send + Sync + 'static {
    /// Inspects `call`.
    async fn before_tool(&self, call: &ToolCall) -> HookDecision;
}

/// Runs after every executed call and may rewrite its result. A hook that
/// panics or runs past the gate's hook timeout withholds the result: the
/// model sees a denial, never output a failed hook may have meant to redact.
#[async_trait]
pub trait AfterToolHook: Send + Sync + 'static {
    /// Inspects or rewrites `result`.
    async fn after_tool(&self, call: &ToolCall, result: &mut ToolResult);
}

/// An approval handler's answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ApprovalDecision {
    /// Run it.
    Allow,
    /// Refuse it, with an optional reason.
    Deny(Option<String>),
    /// Run it with these arguments instead (audited as `tool_call_edited`).
    Edit(serde_json::Value),
    /// Run it, and allow this tool for this user from now on without asking.
    RememberAllow,
    /// Refuse it, and refuse this tool for this user from now on.
    RememberDeny(Option<String>),
}

/// Answers the gate's "ask" (a person, a policy service, a parked run).
/// A handler that panics denies the call.
#[async_trait]
pub trait ApprovalHandler: Send + Sync + 'static {
    /// Decides on `call`; `reason` is why the policy asked.
    async fn approve(&self, call: &ToolCall, reason: Option<&str>) -> ApprovalDecision;
}

/// Limits applied to every executed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateConfig {
    /// A call running longer fails with a timeout error (default 120 s).
    pub tool_timeout: Duration,
    /// Longer results are cut, with a `…[truncated N chars]` marker, before the
    /// model sees them (default 50,000 characters).
    pub max_result_chars: usize,
    /// A before- or after-tool hook running longer denies (default 5 s).
    pub hook_timeout: Duration,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            tool_timeout: Duration::from_secs(120),
            max_result_chars: 50_000,
            hook_timeout: Duration::from_secs(5),
        }
    }
}

/// Remembered approval answers, per (user, tool), bounded.
#[derive(Debug)]
struct ApprovalMemory(std::sync::Mutex<BoundedMap<(UserId, String), Remembered>>);

#[derive(Debug, Clone)]
enum Remembered {
    Allow,
    Deny(Option<String>),
}

impl ApprovalMemory {
    fn recall(&self, user: &UserId, tool: &str) -> Option<Remembered> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get_mut(&(user.clone(), tool.to_owned()), Instant::now())
            .cloned()
    }

    fn remember(&self, user: &UserId, tool: &str, answer: Remembered) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.insert((user.clone(), tool.to_owned()), answer, Instant::now());
    }
}

/// The one gate every tool call passes.
#[derive(Clone)]
pub struct ToolGate {
    permissions: Arc<dyn Permissions>,
    before: Vec<Arc<dyn BeforeToolHook>>,
    after: Vec<Arc<dyn AfterToolHook>>,
    approval: Option<Arc<dyn ApprovalHandler>>,
    remembered: Arc<ApprovalMemory>,
    config: GateConfig,
}

impl Default for ToolGate {
    fn default() -> Self {
        Self {
            permissions: Arc::new(AllowAll),
            before: Vec::new(),
            after: Vec::new(),
            approval: None,
            remembered: Arc::new(ApprovalMemory(std::sync::Mutex::new(BoundedMap::new(
                Bounds::default(),
            )))),
            config: GateConfig::default(),
        }
    }
}

impl std::fmt::Debug for ToolGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolGate")
            .field("before_hooks", &self.before.len())
            .field("after_hooks", &self.after.len())
            .field("approval_handler", &self.approval.is_some())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ToolGate {
    /// Replaces the permission policy.
    pub fn with_permissions(mut self, p: Arc<dyn Permissions>) -> Self {
        self.permissions = p;
        self
    }

    /// Adds a before-tool hook.
    pub fn with_before_hook(mut self, h: Arc<dyn BeforeToolHook>) -> Self {
        self.before.push(h);
        self
    }

    /// Adds an after-tool hook.
    pub fn with_after_hook(mut self, h: Arc<dyn AfterToolHook>) -> Self {
        self.after.push(h);
        self
    }

    /// Sets the approval handler.
    pub fn with_approval_handler(mut self, h: Arc<dyn ApprovalHandler>) -> Self {
        self.approval = Some(h);
        self
    }

    /// Replaces the limits.
    pub fn with_config(mut self, config: GateConfig) -> Self {
        self.config = config;
        self
    }

    /// The limits in force.
    pub fn config(&self) -> GateConfig {
        self.config
    }

    /// Stage 1: stamps `call.destructive` from the tool's definition. A tool
    /// missing from `defs` is treated as destructive (fail closed).
    pub fn stamp(&self, call: &mut ToolCall, defs: &[ToolDef]) {
        call.destructive = defs
            .iter()
            .find(|d| d.name == call.tool)
            .is_none_or(|d| d.destructive);
    }

    /// Runs a stamped call through hooks, permissions and approval, executes it
    /// on `host` under the timeout, and runs the after-tool hooks. Never
    /// fails: every problem becomes a failed or denied [`ToolResult`].
    pub async fn execute(
        &self,
        host: &dyn ToolHost,
        call: &mut ToolCall,
        user: &UserId,
    ) -> ToolResult {
        if let Some(denied) = self.admit(call, user).await {
            return denied;
        }
        let mut result = self.run(host, call).await;
        for hook in &self.after {
            let run = AssertUnwindSafe(hook.after_tool(call, &mut result)).catch_unwind();
            let failure = match tokio::time::timeout(self.config.hook_timeout, run).await {
                Ok(Ok(())) => continue,
                Ok(Err(_panic)) => "panicked".to_owned(),
                Err(_) => format!("timed out after {:?}", self.config.hook_timeout),
            };
            tracing::warn!(tool = %call.tool, "after-tool hook {failure}; result withheld");
            return ToolResult::denied(
                &call.id,
                format!("after-tool hook {failure}; the result was withheld"),
            );
        }
        result
    }

    /// Hooks, permissions and approval: `None` to run the call, or the
    /// denial. An approver's edit rewrites `call.args`.
    async fn admit(&self, call: &mut ToolCall, user: &UserId) -> Option<ToolResult> {
        for hook in &self.before {
            let run = AssertUnwindSafe(hook.before_tool(call)).catch_unwind();
            match tokio::time::timeout(self.config.hook_timeout, run).await {
                Ok(Ok(HookDecision::Continue)) => {}
                Ok(Ok(HookDecision::Deny(reason))) => {
                    decided("deny", Some(&format!("before-tool hook: {reason}")));
                    return Some(ToolResult::denied(&call.id, reason));
                }
                Ok(Err(_panic)) => {
                    decided("deny", Some("before-tool hook failed"));
                    return Some(ToolResult::denied(&call.id, "before-tool hook failed"));
                }
                Err(_) => {
                    let reason = format!(
                        "before-tool hook timed out after {:?}",
                        self.config.hook_timeout
                    );
                    decided("deny", Some(&reason));
                    return Some(ToolResult::denied(&call.id, reason));
                }
            }
        }
        if self.permissions.allows_everything() {
            return None;
        }
        let check = AssertUnwindSafe(self.permissions.check(call, user)).catch_unwind();
        let reason = match check.await {
            Ok(PermissionDecision::Allow) => {
                decided("allow", None);
                return None;
            }
            Ok(PermissionDecision::Deny(reason)) => {
                decided("deny", Some(&reason));
                return Some(ToolResult::denied(&call.id, reason));
            }
            Err(_panic) => {
                decided("deny", Some("permission policy failed"));
                return Some(ToolResult::denied(&call.id, "permission policy failed"));
            }
            Ok(PermissionDecision::Ask(reason)) => {
                decided("ask", reason.as_deref());
                reason
            }
        };
        match self.remembered.recall(user, &call.tool) {
            Some(Remembered::Allow) => {
                approved("approved", false);
                return None;
            }
            Some(Remembered::Deny(reason)) => {
                approved("declined", false);
                return Some(ToolResult::denied(
                    &call.id,
                    reason.unwrap_or_else(|| "denied by approver (remembered)".into()),
                ));
            }
            None => {}
        }
        let Some(handler) = &self.approval else {
            approved("declined", false);
            return Some(ToolResult::denied(
                &call.id,
                "approval required; no approver",
            ));
        };
        let asked = AssertUnwindSafe(handler.approve(call, reason.as_deref())).catch_unwind();
        match asked.await {
            Ok(ApprovalDecision::Allow) => {
                approved("approved", false);
                None
            }
            Ok(ApprovalDecision::RememberAllow) => {
                approved("approved", false);
                self.remembered
                    .remember(user, &call.tool, Remembered::Allow);
                None
            }
            Ok(ApprovalDecision::Edit(args)) => {
                approved("approved", true);
                call.args = args;
                None
            }
            Ok(ApprovalDecision::Deny(reason)) => {
                approved("declined", false);
                Some(ToolResult::denied(
                    &call.id,
                    reason.unwrap_or_else(|| "denied by approver".into()),
                ))
            }
            Ok(ApprovalDecision::RememberDeny(reason)) => {
                approved("declined", false);
                self.remembered
                    .remember(user, &call.tool, Remembered::Deny(reason.clone()));
                Some(ToolResult::denied(
                    &call.id,
                    reason.unwrap_or_else(|| "denied by approver".into()),
                ))
            }
            Err(_panic) => {
                approved("declined", false);
                Some(ToolResult::denied(&call.id, "approval handler failed"))
            }
        }
    }

    /// Executes an admitted call under the timeout.
    async fn run(&self, host: &dyn ToolHost, call: &ToolCall) -> ToolResult {
        let started_at = Utc::now();
        let clock = tokio::time::Instant::now();
        let mut run = std::pin::pin!(
            AssertUnwindSafe(host.call(&call.tool, &call.args, &call.id)).catch_unwind()
        );
        // Most in-process tools finish on their first poll: the timer is
        // armed only when the call waits (no timer entry, and no clone of
        // the runtime's handle, for a call that returns at once). The
        // deadline still counts from the clock read above.
        let first = std::future::poll_fn(|cx| Poll::Ready(run.as_mut().poll(cx))).await;
        let outcome = match first {
            Poll::Ready(done) => Ok(done),
            Poll::Pending => {
                // Clamped so a huge timeout cannot overflow the instant.
                const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
                let deadline = clock + self.config.tool_timeout.min(CENTURY);
                tokio::time::timeout_at(deadline, run).await
            }
        };
        let finished: Result<serde_json::Value, String> = match outcome {
            Ok(Ok(Ok(output))) => Ok(output),
            // A tool's error may quote a key it was given; the model never
            // sees one.
            Ok(Ok(Err(err))) => Err(crate::redact::redact(&err.to_string()).into_owned()),
            Ok(Err(_panic)) => Err(format!("tool `{}` panicked", call.tool)),
            Err(_elapsed) => Err(crate::error::ToolError::Timeout {
                tool: call.tool.clone(),
                timeout: self.config.tool_timeout,
            }
            .to_string()),
        };
        // Built here rather than by `ToolResult::success`/`failure`, which
        // read the clock for a start this call already has.
        let (output, error) = match finished {
            Ok(output) => (output, None),
            Err(error) => (serde_json::Value::Null, Some(error)),
        };
        ToolResult {
            call_id: call.id.clone(),
            ok: error.is_none(),
            output,
            error,
            denied: false,
            reason: None,
            duration_ms: Some(clock.elapsed().as_secs_f64() * 1000.0),
            started_at,
        }
    }

    /// The text the model sees for `result`, cut to the result-size cap.
    pub fn model_text(&self, result: ToolResult) -> String {
        truncate_chars(result.into_model_text(), self.config.max_result_chars)
    }
}

/// Records the permission decision on the current `loom.tool` span.
fn decided(decision: &str, reason: Option<&str>) {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    span.record("loom.permission", decision);
    if let Some(reason) = reason {
        span.record("loom.permission.reason", reason);
    }
}

/// Records the approval answer on the current `loom.tool` span.
fn approved(answer: &str, edited: bool) {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    span.record("loom.approval", answer);
    if edited {
        span.record("loom.approval.edited", true);
    }
}

/// Cuts `text` to `max` characters, appending `\n…[truncated N chars]`.
pub(crate) fn truncate_chars(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let Some((cut, _)) = text.char_indices().nth(max) else {
        return text;
    };
    let dropped = text[cut..].chars().count();
    text.truncate(cut);
    text.push_str(&format!("\n…[truncated {dropped} chars]"));
    text
}

#[cfg(test)]
mod tests {
    use super::truncate_chars;

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate_chars("héllo".into(), 10), "héllo");
        assert_eq!(
            truncate_chars("héllo".into(), 2),
            "hé\n…[truncated 3 chars]"
        );
    }
}
