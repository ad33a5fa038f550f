//! Permission policies for the tool gate: [`Mode`], [`StandardPermissions`],
//! [`PerUserPermissions`], and the reference's config strings
//! ([`PermissionsSpec`]).
//!
//! The gate asks the policy about every call after the before-tool hooks
//! and before the approval handler (see [`ToolGate`](crate::tool::ToolGate)).
//! A policy answers allow, deny or ask; ask goes to the approval handler,
//! and with no handler it is a deny.
//!
//! ```
//! use loomflow_core::permissions::{Mode, StandardPermissions};
//! use loomflow_core::tool::{PermissionDecision, Permissions};
//! use loomflow_core::{ToolCall, UserId};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let policy = StandardPermissions::new()
//!     .mode(Mode::AcceptEdits)
//!     .deny(["drop_table"]);
//! let mut call = ToolCall::new("bash", serde_json::json!({"cmd": "ls"}));
//! call.destructive = true;
//! let alice = UserId::new("alice").unwrap();
//! // acceptEdits approves file edits only: bash still asks.
//! assert!(matches!(policy.check(&call, &alice).await, PermissionDecision::Ask(_)));
//! # });
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::id::UserId;
use crate::message::ToolCall;
use crate::tool::{AllowAll, PermissionDecision, Permissions};

/// How much a [`StandardPermissions`] policy lets through without asking.
/// The names match the Claude Agent SDK's (and the reference's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// Allow non-destructive tools; ask before destructive ones.
    #[default]
    #[serde(rename = "default")]
    Default,
    /// Also approve the file-edit tools (`write` and `edit` unless
    /// [`StandardPermissions::edit_tools`] names others) without asking;
    /// every other destructive tool, `bash` included, still asks.
    #[serde(rename = "acceptEdits")]
    AcceptEdits,
    /// Allow everything the allow and deny lists let through (CI and
    /// sandboxes only).
    #[serde(rename = "bypassPermissions")]
    Bypass,
}

impl Mode {
    /// The reference's name: `default`, `acceptEdits`, `bypassPermissions`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::AcceptEdits => "acceptEdits",
            Self::Bypass => "bypassPermissions",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = ConfigError;

    /// Accepts the reference's names and their snake- and kebab-case
    /// spellings, in any case.
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "default" => Ok(Self::Default),
            "acceptedits" | "accept_edits" => Ok(Self::AcceptEdits),
            "bypasspermissions" | "bypass_permissions" | "bypass" => Ok(Self::Bypass),
            _ => Err(ConfigError::invalid(
                "permission mode",
                format!(
                    "unknown permission mode `{s}`: use \"default\", \"acceptEdits\" or \"bypassPermissions\""
                ),
            )),
        }
    }
}

/// The standard policy: a mode plus allow and deny lists.
///
/// Decision order, first match wins:
/// 1. the tool is on the deny list → deny;
/// 2. an allow list is set and the tool is not on it → deny;
/// 3. [`Mode::Bypass`] → allow;
/// 4. [`Mode::AcceptEdits`] and the tool is an edit tool → allow;
/// 5. the call is destructive → ask;
/// 6. otherwise → allow.
///
/// The lists win over the mode, and the deny list over the allow list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandardPermissions {
    mode: Mode,
    allowed: Option<HashSet<String>>,
    denied: HashSet<String>,
    edit_tools: HashSet<String>,
}

impl Default for StandardPermissions {
    fn default() -> Self {
        Self {
            mode: Mode::Default,
            allowed: None,
            denied: HashSet::new(),
            edit_tools: ["write", "edit"].into_iter().map(String::from).collect(),
        }
    }
}

impl StandardPermissions {
    /// Default mode, no lists: destructive calls ask, the rest run.
    pub fn new() -> Self {
        Self::default()
    }

    /// The reference's `strict()`: the default mode with no overrides.
    pub fn strict() -> Self {
        Self::default()
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Only these tools may run (adds to an allow list already set).
    pub fn allow<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed
            .get_or_insert_with(HashSet::new)
            .extend(tools.into_iter().map(Into::into));
        self
    }

    /// These tools never run.
    pub fn deny<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.denied.extend(tools.into_iter().map(Into::into));
        self
    }

    /// The file-edit tools [`Mode::AcceptEdits`] approves (replaces the
    /// default `write` and `edit`).
    pub fn edit_tools<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.edit_tools = tools.into_iter().map(Into::into).collect();
        self
    }

    /// The decision, without the async trait (the gate's fast path).
    pub fn decide(&self, call: &ToolCall) -> PermissionDecision {
        if self.denied.contains(&call.tool) {
            return PermissionDecision::Deny(format!("{}: denied by policy", call.tool));
        }
        if let Some(allowed) = &self.allowed
            && !allowed.contains(&call.tool)
        {
            return PermissionDecision::Deny(format!("{}: not in allow-list", call.tool));
        }
        match self.mode {
            Mode::Bypass => return PermissionDecision::Allow,
            Mode::AcceptEdits if self.edit_tools.contains(&call.tool) => {
                return PermissionDecision::Allow;
            }
            _ => {}
        }
        if call.destructive {
            return PermissionDecision::Ask(Some(format!(
                "{}: destructive call requires approval",
                call.tool
            )));
        }
        PermissionDecision::Allow
    }
}

#[async_trait]
impl Permissions for StandardPermissions {
    async fn check(&self, call: &ToolCall, _user: &UserId) -> PermissionDecision {
        self.decide(call)
    }
}

/// A policy per tenant, and a default for everyone else (the anonymous
/// bucket included). The user is the run's, from its
/// [`RunContext`](crate::RunContext), never a tool argument.
///
/// ```
/// use loomflow_core::permissions::{Mode, PerUserPermissions, StandardPermissions};
/// use loomflow_core::UserId;
///
/// let policy = PerUserPermissions::new(StandardPermissions::new().deny(["bash"]))
///     .user(UserId::new("admin").unwrap(), StandardPermissions::new().mode(Mode::Bypass));
/// ```
#[derive(Clone)]
pub struct PerUserPermissions {
    policies: HashMap<UserId, Arc<dyn Permissions>>,
    default: Arc<dyn Permissions>,
}

impl std::fmt::Debug for PerUserPermissions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerUserPermissions")
            .field("users", &self.policies.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl PerUserPermissions {
    /// Every user gets `default` until [`user`](Self::user) says otherwise.
    pub fn new(default: impl Permissions) -> Self {
        Self {
            policies: HashMap::new(),
            default: Arc::new(default),
        }
    }

    /// `user` gets `policy` instead of the default.
    pub fn user(mut self, user: UserId, policy: impl Permissions) -> Self {
        self.policies.insert(user, Arc::new(policy));
        self
    }

    /// The policy `user` gets.
    pub fn policy_for(&self, user: &UserId) -> &Arc<dyn Permissions> {
        self.policies.get(user).unwrap_or(&self.default)
    }
}

#[async_trait]
impl Permissions for PerUserPermissions {
    async fn check(&self, call: &ToolCall, user: &UserId) -> PermissionDecision {
        self.policy_for(user).check(call, user).await
    }
}

/// The `permissions` key of an agent config: one of the reference's strings
/// (`"allow_all"`, `"strict"`, `"accept_edits"`, `"bypass"`) or a table
/// `{ backend = "standard", mode, allowed_tools, denied_tools, edit_tools }`.
///
/// ```
/// use loomflow_core::permissions::PermissionsSpec;
/// let spec: PermissionsSpec = "accept_edits".parse().unwrap();
/// let policy = spec.build();
/// assert!(!policy.allows_everything());
/// let err = "lenient".parse::<PermissionsSpec>().unwrap_err().to_string();
/// assert!(err.contains("'allow_all', 'strict', 'accept_edits' or 'bypass'"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionsSpec {
    /// `"allow_all"`: every call runs.
    AllowAll,
    /// A [`StandardPermissions`] policy.
    Standard(StandardPermissions),
}

impl PermissionsSpec {
    /// The policy.
    pub fn build(&self) -> Arc<dyn Permissions> {
        match self {
            Self::AllowAll => Arc::new(AllowAll),
            Self::Standard(p) => Arc::new(p.clone()),
        }
    }
}

impl std::str::FromStr for PermissionsSpec {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let low = s.trim().to_ascii_lowercase().replace('-', "_");
        match low.as_str() {
            "allow_all" | "allowall" => Ok(Self::AllowAll),
            "strict" => Ok(Self::Standard(StandardPermissions::strict())),
            "accept_edits" | "acceptedits" => Ok(Self::Standard(
                StandardPermissions::new().mode(Mode::AcceptEdits),
            )),
            "bypass" | "bypass_permissions" | "bypasspermissions" => Ok(Self::Standard(
                StandardPermissions::new().mode(Mode::Bypass),
            )),
            _ => Err(ConfigError::invalid(
                "permissions",
                format!(
                    "unknown permissions `{s}`: use 'allow_all', 'strict', 'accept_edits' or 'bypass', \
                     or a table {{ mode = \"default\", allowed_tools = [...], denied_tools = [...] }}"
                ),
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecTable {
    #[serde(default, alias = "type", alias = "name")]
    backend: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    allowed_tools: Option<Vec<String>>,
    #[serde(default)]
    denied_tools: Vec<String>,
    #[serde(default)]
    edit_tools: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for PermissionsSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Table(toml::Value),
        }
        match Raw::deserialize(d)? {
            Raw::Name(name) => name.parse().map_err(|e: ConfigError| D::Error::custom(e)),
            Raw::Table(value) => {
                let t = SpecTable::deserialize(value).map_err(|e| {
                    D::Error::custom(format!(
                        "in [permissions]: {} (keys: backend, mode, allowed_tools, denied_tools, edit_tools)",
                        e.message()
                    ))
                })?;
                match t.backend.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    None | Some("standard") => {}
                    Some("allow_all" | "allowall" | "allow-all") => return Ok(Self::AllowAll),
                    Some(other) => {
                        return Err(D::Error::custom(format!(
                            "in [permissions]: unknown backend `{other}`: use \"standard\" or \"allow_all\""
                        )));
                    }
                }
                let mut p = StandardPermissions::new();
                if let Some(mode) = t.mode {
                    p = p.mode(mode.parse().map_err(|e: ConfigError| D::Error::custom(e))?);
                }
                if let Some(allowed) = t.allowed_tools {
                    p.allowed = Some(allowed.into_iter().collect());
                }
                p = p.deny(t.denied_tools);
                if let Some(edit) = t.edit_tools {
                    p = p.edit_tools(edit);
                }
                Ok(Self::Standard(p))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(tool: &str, destructive: bool) -> ToolCall {
        let mut c = ToolCall::new(tool, json!({}));
        c.destructive = destructive;
        c
    }

    #[test]
    fn the_standard_order_holds() {
        let p = StandardPermissions::new()
            .allow(["read", "write", "bash", "rm"])
            .deny(["rm"]);
        // Deny list over allow list.
        assert_eq!(
            p.decide(&call("rm", false)),
            PermissionDecision::Deny("rm: denied by policy".into())
        );
        assert_eq!(
            p.decide(&call("curl", false)),
            PermissionDecision::Deny("curl: not in allow-list".into())
        );
        assert_eq!(p.decide(&call("read", false)), PermissionDecision::Allow);
        assert!(matches!(
            p.decide(&call("write", true)),
            PermissionDecision::Ask(_)
        ));
        let edits = p.clone().mode(Mode::AcceptEdits);
        assert_eq!(
            edits.decide(&call("write", true)),
            PermissionDecision::Allow
        );
        assert!(matches!(
            edits.decide(&call("bash", true)),
            PermissionDecision::Ask(_)
        ));
        let bypass = p.mode(Mode::Bypass);
        assert_eq!(
            bypass.decide(&call("bash", true)),
            PermissionDecision::Allow
        );
        // Bypass does not lift the lists.
        assert!(matches!(
            bypass.decide(&call("rm", true)),
            PermissionDecision::Deny(_)
        ));
        assert!(matches!(
            bypass.decide(&call("curl", true)),
            PermissionDecision::Deny(_)
        ));
    }

    #[test]
    fn config_tables_and_strings_parse() {
        #[derive(Deserialize)]
        struct C {
            permissions: PermissionsSpec,
        }
        let c: C = toml::from_str(
            r#"permissions = { mode = "acceptEdits", denied_tools = ["bash"], allowed_tools = ["write", "bash"] }"#,
        )
        .unwrap();
        let PermissionsSpec::Standard(p) = c.permissions else {
            panic!("standard expected")
        };
        assert_eq!(p.mode, Mode::AcceptEdits);
        assert!(p.denied.contains("bash"));
        let c: C = toml::from_str(r#"permissions = "Bypass""#).unwrap();
        assert_eq!(
            c.permissions,
            PermissionsSpec::Standard(StandardPermissions::new().mode(Mode::Bypass))
        );
        let err = toml::from_str::<C>(r#"permissions = { mode = "yolo" }"#)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown permission mode `yolo`"), "{err}");
        let err = toml::from_str::<C>(r#"permissions = { denied = ["x"] }"#)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown field `denied`"), "{err}");
    }
}
