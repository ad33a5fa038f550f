//! The tool gate: the one path every tool call takes, in a fixed order:
//! destructive flag → before-tool hooks → permissions → approval → execute →
//! after-tool hooks.
//!
//! The defaults allow everything; the governance layer plugs policies in here
//! without reshaping the agent loop.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use futures_util::FutureExt;

use super::ToolHost;
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

/// Runs before every call; the first deny wins.
#[async_trait]
pub trait BeforeToolHook: Send + Sync + 'static {
    /// Inspects `call`.
    async fn before_tool(&self, call: &ToolCall) -> HookDecision;
}

/// Runs after every executed call and may rewrite its result.
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
    /// Run it with these arguments instead.
    Edit(serde_json::Value),
}

/// Answers the gate's "ask" (a person, a policy service, a parked run).
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
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            tool_timeout: Duration::from_secs(120),
            max_result_chars: 50_000,
        }
    }
}

/// The one gate every tool call passes.
#[derive(Clone)]
pub struct ToolGate {
    permissions: Arc<dyn Permissions>,
    before: Vec<Arc<dyn BeforeToolHook>>,
    after: Vec<Arc<dyn AfterToolHook>>,
    approval: Option<Arc<dyn ApprovalHandler>>,
    config: GateConfig,
}

impl Default for ToolGate {
    fn default() -> Self {
        Self {
            permissions: Arc::new(AllowAll),
            before: Vec::new(),
            after: Vec::new(),
            approval: None,
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
        for hook in &self.before {
            if let HookDecision::Deny(reason) = hook.before_tool(call).await {
                return ToolResult::denied(&call.id, reason);
            }
        }
        if !self.permissions.allows_everything() {
            match self.permissions.check(call, user).await {
                PermissionDecision::Allow => {}
                PermissionDecision::Deny(reason) => return ToolResult::denied(&call.id, reason),
                PermissionDecision::Ask(reason) => match &self.approval {
                    None => {
                        return ToolResult::denied(&call.id, "approval required; no approver");
                    }
                    Some(handler) => match handler.approve(call, reason.as_deref()).await {
                        ApprovalDecision::Allow => {}
                        ApprovalDecision::Deny(reason) => {
                            return ToolResult::denied(
                                &call.id,
                                reason.unwrap_or_else(|| "denied by approver".into()),
                            );
                        }
                        ApprovalDecision::Edit(args) => call.args = args,
                    },
                },
            }
        }

        let started_at = Utc::now();
        let clock = tokio::time::Instant::now();
        let run = AssertUnwindSafe(host.call(&call.tool, &call.args, &call.id)).catch_unwind();
        // The deadline from the clock already read (one clock read fewer per
        // call than `timeout`).
        // Clamped so a huge timeout cannot overflow the instant.
        const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
        let deadline = clock + self.config.tool_timeout.min(CENTURY);
        let mut result = match tokio::time::timeout_at(deadline, run).await {
            Ok(Ok(Ok(output))) => ToolResult::success(&call.id, output),
            Ok(Ok(Err(err))) => ToolResult::failure(&call.id, err.to_string()),
            Ok(Err(_panic)) => {
                ToolResult::failure(&call.id, format!("tool `{}` panicked", call.tool))
            }
            Err(_elapsed) => ToolResult::failure(
                &call.id,
                crate::error::ToolError::Timeout {
                    tool: call.tool.clone(),
                    timeout: self.config.tool_timeout,
                }
                .to_string(),
            ),
        };
        result.started_at = started_at;
        result.duration_ms = Some(clock.elapsed().as_secs_f64() * 1000.0);
        for hook in &self.after {
            hook.after_tool(call, &mut result).await;
        }
        result
    }

    /// The text the model sees for `result`, cut to the result-size cap.
    pub fn model_text(&self, result: ToolResult) -> String {
        truncate_chars(result.into_model_text(), self.config.max_result_chars)
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
