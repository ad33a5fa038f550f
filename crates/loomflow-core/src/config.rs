//! Agent configuration files (TOML), with the reference's `from_config` keys.
//!
//! ```toml
//! name = "support"
//! instructions = "You are a support agent."
//! max_turns = 10
//! timeout = 30            # seconds
//! response_tone = "professional"
//! effort = "high"         # minimal, low, medium, high, xhigh, max
//! prompt_caching = true   # or { ttl = "1h", key = "tenant-7" }
//!
//! [model]                 # or: model = "echo"
//! name = "scripted"
//! [[model.turns]]
//! tool_calls = [{ name = "lookup", args = { q = "refund policy" } }]
//! [[model.turns]]
//! text = "Refunds take 5 days."
//! ```
//!
//! Unknown keys are an error naming the file, the key and the closest valid
//! key. Later subsystems (memory, runtime, budget, …) add their keys here.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::agent::{Agent, AgentBuilder};
use crate::architecture::ReAct;
use crate::effort::PromptCache;
use crate::error::{ConfigError, closest};
use crate::model::{EchoModel, Model, ScriptedModel, ScriptedTurn, resolve_model};

const TOP_KEYS: &[&str] = &[
    "instructions",
    "model",
    "name",
    "max_turns",
    "timeout",
    "response_tone",
    "architecture",
    "output_validation_retries",
    "tool_timeout",
    "tool_result_max_chars",
    "effort",
    "strict_effort",
    "prompt_caching",
    "runtime",
    "memory",
    "auto_extract",
    "permissions",
    "budget",
    "audit_log",
    "telemetry",
    "guardrails",
    "rate_limit",
    "hook_timeout",
    "mcp",
];
/// The keys of an `[[mcp]]` server (loomflow-mcp's `McpServerSpec`).
const MCP_KEYS: &[&str] = &[
    "name",
    "transport",
    "command",
    "args",
    "env",
    "url",
    "headers",
    "description",
    "sampling_model",
];
const PROMPT_CACHING_KEYS: &[&str] = &["ttl", "key"];
const MODEL_KEYS: &[&str] = &["name", "model", "turns", "prefix"];
const TURN_KEYS: &[&str] = &["text", "tool_calls", "usage"];
const CALL_KEYS: &[&str] = &["name", "args"];
const USAGE_KEYS: &[&str] = &[
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "cost_usd",
];
const ARCHITECTURES: &[&str] = &["react"];

/// The model section: a model string, or a table.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    /// `model = "echo"`.
    Name(String),
    /// `[model]` with `name` (or `model`), and `turns` for the scripted model.
    Table {
        /// The model string (`"scripted"`, `"echo"`, `"gpt-4.1-mini"`, …).
        name: String,
        /// Turns for `name = "scripted"`.
        turns: Vec<ScriptedTurn>,
        /// Reply prefix for `name = "echo"`.
        prefix: Option<String>,
    },
}

#[derive(Deserialize)]
struct ModelTable {
    #[serde(alias = "model")]
    name: String,
    #[serde(default)]
    turns: Vec<ScriptedTurn>,
    #[serde(default)]
    prefix: Option<String>,
}

impl<'de> Deserialize<'de> for ModelConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match toml::Value::deserialize(d)? {
            toml::Value::String(name) => Ok(Self::Name(name)),
            table @ toml::Value::Table(_) => {
                let t = ModelTable::deserialize(table)
                    .map_err(|e| D::Error::custom(format!("in [model]: {}", e.message())))?;
                Ok(Self::Table {
                    name: t.name,
                    turns: t.turns,
                    prefix: t.prefix,
                })
            }
            other => Err(D::Error::custom(format!(
                "`model` must be a model string such as \"echo\" or a [model] table, not a {}",
                other.type_str()
            ))),
        }
    }
}

/// A parsed agent configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AgentConfig {
    /// The system prompt.
    #[serde(default)]
    pub instructions: String,
    /// The model.
    pub model: Option<ModelConfig>,
    /// The agent's name.
    pub name: Option<String>,
    /// Turn cap.
    pub max_turns: Option<u32>,
    /// Run timeout in seconds.
    pub timeout: Option<f64>,
    /// Tone preset or free text.
    pub response_tone: Option<String>,
    /// Loop architecture (`"react"`).
    pub architecture: Option<String>,
    /// Schema-correction retries.
    pub output_validation_retries: Option<u32>,
    /// Per-call tool timeout in seconds.
    pub tool_timeout: Option<f64>,
    /// Tool result cap in characters.
    pub tool_result_max_chars: Option<usize>,
    /// Reasoning effort (`"minimal"` … `"max"`).
    pub effort: Option<String>,
    /// Fail calls whose model cannot honour the effort.
    pub strict_effort: Option<bool>,
    /// `true`, or `{ ttl = "5m" | "1h", key = "…" }`.
    pub prompt_caching: Option<PromptCachingConfig>,
    /// Where runs are journaled: `"memory"`, `"sqlite"`, `"sqlite:<path>"`
    /// or `"postgres://…"` (see [`RuntimeSpec`](crate::journal::RuntimeSpec)).
    /// Checked here; opened by the caller (`loomflow::open_journal`), since
    /// the backends live in their own crates.
    pub runtime: Option<String>,
    /// Where long-term memory lives: a string such as `"sqlite:./bot.db"`
    /// or a table `{ backend, path | url, namespace, embedder, with_facts }`
    /// (see [`MemorySpec`](crate::memory::MemorySpec)). Checked here;
    /// opened by the caller (`loomflow::open_memory`).
    pub memory: Option<toml::Value>,
    /// Background fact extraction after each run (default: on for remote
    /// models; see [`AgentBuilder::auto_extract`]).
    pub auto_extract: Option<bool>,
    /// `"allow_all"`, `"strict"`, `"accept_edits"`, `"bypass"` or a table
    /// `{ mode, allowed_tools, denied_tools, edit_tools }`.
    pub permissions: Option<crate::permissions::PermissionsSpec>,
    /// Spending caps: `{ max_tokens, max_input_tokens, max_output_tokens,
    /// max_cost_usd, max_wall_clock_minutes, soft_warning_at, per_user_… }`.
    pub budget: Option<toml::Table>,
    /// The audit log (see [`AuditSpec`](crate::audit::AuditSpec)).
    pub audit_log: Option<toml::Value>,
    /// Where spans and metrics go: `"none"`, `"console"`,
    /// `"file:./spans.jsonl"` or `"otel"` (see
    /// [`TelemetrySpec`](crate::telemetry::TelemetrySpec)). `"otel"` is
    /// opened by the caller (`loomflow::open_telemetry`).
    pub telemetry: Option<String>,
    /// Guardrails in order: names (`"pii"`, `"injection"`) and tables
    /// (see [`GuardrailSpec`](crate::guardrails::GuardrailSpec)).
    pub guardrails: Option<toml::Value>,
    /// `{ rate = 2.0, burst = 5, mode = "throttle" | "reject" }`: model calls
    /// per second per user.
    pub rate_limit: Option<RateLimitConfig>,
    /// Seconds a tool hook may take before it denies (default 5).
    pub hook_timeout: Option<f64>,
    /// MCP servers whose tools the agent gets: `[[mcp]]` tables with
    /// `name`, `transport = "stdio" | "http"`, `command`, `args`, `env`,
    /// `url`, `headers`, `description`, `sampling_model`. Checked here;
    /// connected by the caller (`loomflow::open_mcp`, feature `mcp`), since
    /// connecting is asynchronous. Take it out of the config
    /// (`config.mcp.take()`) before [`into_builder`](Self::into_builder).
    pub mcp: Option<toml::Value>,
}

/// The `rate_limit` key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Model calls per second, per user, on average.
    #[serde(alias = "rps")]
    pub rate: f64,
    /// Calls allowed at once after a quiet spell (default 1).
    #[serde(default = "one")]
    pub burst: u32,
    /// `"throttle"` (wait; the default) or `"reject"` (fail the run).
    #[serde(default)]
    pub mode: Option<String>,
}

fn one() -> u32 {
    1
}

impl AgentConfig {
    /// The `memory` key, parsed.
    pub fn memory_spec(&self) -> Result<Option<crate::memory::MemorySpec>, ConfigError> {
        match &self.memory {
            None => Ok(None),
            Some(toml::Value::String(s)) => s.parse().map(Some),
            Some(toml::Value::Table(t)) => crate::memory::MemorySpec::from_table(t).map(Some),
            Some(other) => Err(ConfigError::invalid(
                "memory",
                format!(
                    "`memory` must be a string such as \"sqlite:./bot.db\" or a table, not a {}",
                    other.type_str()
                ),
            )),
        }
    }

    /// The `budget` key, parsed (`max_wall_clock_minutes`, the reference's
    /// key, and `max_wall_clock` in seconds both work).
    pub fn budget_config(&self) -> Result<Option<crate::budget::BudgetConfig>, ConfigError> {
        let Some(table) = &self.budget else {
            return Ok(None);
        };
        let mut table = table.clone();
        for (minutes, seconds) in [
            ("max_wall_clock_minutes", "max_wall_clock"),
            ("per_user_max_wall_clock_minutes", "per_user_max_wall_clock"),
        ] {
            if let Some(m) = table.remove(minutes) {
                let m = m
                    .as_float()
                    .or(m.as_integer().map(|i| i as f64))
                    .ok_or_else(|| {
                        ConfigError::invalid(
                            format!("budget.{minutes}"),
                            "must be a number of minutes",
                        )
                    })?;
                table.insert(seconds.into(), toml::Value::Float(m * 60.0));
            }
        }
        let config = crate::budget::BudgetConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::invalid("budget", e.message().to_owned()))?;
        config.validate()?;
        Ok(Some(config))
    }

    /// The `audit_log` key, parsed.
    pub fn audit_spec(&self) -> Result<Option<crate::audit::AuditSpec>, ConfigError> {
        self.audit_log.clone().map(TryInto::try_into).transpose()
    }

    /// The `telemetry` key, parsed.
    pub fn telemetry_spec(&self) -> Result<Option<crate::telemetry::TelemetrySpec>, ConfigError> {
        self.telemetry.as_deref().map(str::parse).transpose()
    }

    /// The `guardrails` key, parsed (empty when absent).
    pub fn guardrail_specs(&self) -> Result<Vec<crate::guardrails::GuardrailSpec>, ConfigError> {
        self.guardrails
            .as_ref()
            .map(crate::guardrails::GuardrailSpec::parse_all)
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// The `runtime` key, parsed.
    pub fn runtime_spec(&self) -> Result<Option<crate::journal::RuntimeSpec>, ConfigError> {
        self.runtime.as_deref().map(str::parse).transpose()
    }
}

/// The `prompt_caching` key: on/off, or a table with the cache lifetime and
/// routing key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum PromptCachingConfig {
    /// `prompt_caching = true` (five-minute entries, no key).
    On(bool),
    /// `prompt_caching = { ttl = "1h", key = "tenant-7" }`.
    Table {
        /// `"5m"` (default) or `"1h"`.
        ttl: Option<String>,
        /// A routing key for providers that take one.
        key: Option<String>,
    },
}

fn check_keys(
    file: &str,
    prefix: &str,
    table: &toml::Table,
    allowed: &[&str],
) -> Result<(), ConfigError> {
    for key in table.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(ConfigError::UnknownKey {
                file: file.to_owned(),
                key: format!("{prefix}{key}"),
                suggestion: closest(key, allowed.iter().copied()),
            });
        }
    }
    Ok(())
}

fn check_all_keys(file: &str, prefix: &str, root: &toml::Table) -> Result<(), ConfigError> {
    check_keys(file, prefix, root, TOP_KEYS)?;
    if let Some(toml::Value::Array(servers)) = root.get("mcp") {
        for (i, server) in servers.iter().enumerate() {
            if let Some(server) = server.as_table() {
                check_keys(file, &format!("{prefix}mcp[{i}]."), server, MCP_KEYS)?;
            }
        }
    }
    if let Some(toml::Value::Table(cache)) = root.get("prompt_caching") {
        check_keys(
            file,
            &format!("{prefix}prompt_caching."),
            cache,
            PROMPT_CACHING_KEYS,
        )?;
    }
    let Some(toml::Value::Table(model)) = root.get("model") else {
        return Ok(());
    };
    check_keys(file, &format!("{prefix}model."), model, MODEL_KEYS)?;
    let Some(toml::Value::Array(turns)) = model.get("turns") else {
        return Ok(());
    };
    for (i, turn) in turns.iter().enumerate() {
        let Some(turn) = turn.as_table() else {
            continue;
        };
        let at = format!("{prefix}model.turns[{i}].");
        check_keys(file, &at, turn, TURN_KEYS)?;
        if let Some(toml::Value::Table(usage)) = turn.get("usage") {
            check_keys(file, &format!("{at}usage."), usage, USAGE_KEYS)?;
        }
        if let Some(toml::Value::Array(calls)) = turn.get("tool_calls") {
            for (j, call) in calls.iter().enumerate() {
                if let Some(call) = call.as_table() {
                    check_keys(file, &format!("{at}tool_calls[{j}]."), call, CALL_KEYS)?;
                }
            }
        }
    }
    Ok(())
}

fn seconds(field: &str, secs: f64) -> Result<Duration, ConfigError> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            ConfigError::invalid(field, format!("{secs} is not a positive number of seconds"))
        })
}

impl AgentConfig {
    /// Parses TOML text; `file` names the source in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Self, ConfigError> {
        let root: toml::Table = toml::from_str(text).map_err(|e| ConfigError::File {
            file: file.to_owned(),
            message: e.message().to_owned(),
        })?;
        Self::from_table(root, file, "")
    }

    /// Reads an agent configuration from a TOML table embedded in another
    /// file (a workflow's `[agents.<name>]`); `key_prefix` (such as
    /// `"agents.triage."`) is prepended to key paths in errors.
    pub fn from_table(
        table: toml::Table,
        file: &str,
        key_prefix: &str,
    ) -> Result<Self, ConfigError> {
        check_all_keys(file, key_prefix, &table)?;
        let config =
            AgentConfig::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::File {
                file: file.to_owned(),
                message: format!("{key_prefix}{}", e.message()),
            })?;
        config.runtime_spec().map_err(|e| ConfigError::File {
            file: file.to_owned(),
            message: format!("{key_prefix}{e}"),
        })?;
        config.memory_spec().map_err(|e| ConfigError::File {
            file: file.to_owned(),
            message: format!("{key_prefix}{e}"),
        })?;
        let in_file = |e: ConfigError| ConfigError::File {
            file: file.to_owned(),
            message: format!("{key_prefix}{e}"),
        };
        config.budget_config().map_err(in_file)?;
        config.audit_spec().map_err(in_file)?;
        config.telemetry_spec().map_err(in_file)?;
        config.guardrail_specs().map_err(in_file)?;
        Ok(config)
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            file: file.clone(),
            message: format!("cannot read the file: {e}"),
        })?;
        Self::from_toml(&text, &file)
    }

    fn model(&self) -> Option<Result<Arc<dyn Model>, ConfigError>> {
        let model = self.model.as_ref()?;
        Some(match model {
            ModelConfig::Name(name) if name == "scripted" => Err(ConfigError::invalid(
                "model",
                "the scripted model needs turns: use a [model] table with name = \"scripted\" and [[model.turns]] entries",
            )),
            ModelConfig::Name(name) => resolve_model(name),
            ModelConfig::Table {
                name,
                turns,
                prefix,
            } => match name.as_str() {
                "scripted" => {
                    Ok(Arc::new(ScriptedModel::new(turns.iter().cloned())) as Arc<dyn Model>)
                }
                _ if !turns.is_empty() => Err(ConfigError::invalid(
                    "model.turns",
                    format!("turns are only for name = \"scripted\", not {name:?}"),
                )),
                "echo" => {
                    let echo = match prefix {
                        Some(p) => EchoModel::new().with_prefix(p.clone()),
                        None => EchoModel::new(),
                    };
                    Ok(Arc::new(echo) as Arc<dyn Model>)
                }
                _ if prefix.is_some() => Err(ConfigError::invalid(
                    "model.prefix",
                    format!("prefix is only for name = \"echo\", not {name:?}"),
                )),
                other => resolve_model(other),
            },
        })
    }

    /// A builder holding this configuration; add tools and build.
    pub fn into_builder(self) -> Result<AgentBuilder, ConfigError> {
        if self.mcp.is_some() {
            return Err(ConfigError::invalid(
                "mcp",
                "MCP servers are connected asynchronously, so the builder cannot open them: take                  them out with `config.mcp.take()` and pass them to `loomflow::open_mcp(&servers).await`                  (feature `mcp`), then give the registry to `tool_host` (`loomflow run` does this)",
            ));
        }
        let budget = self.budget_config()?;
        let audit = self.audit_spec()?;
        let telemetry = self.telemetry_spec()?;
        let guardrails = self.guardrail_specs()?;
        let mut b = Agent::builder().instructions(self.instructions.clone());
        for spec in &guardrails {
            b = b.guardrail_arc(spec.build()?);
        }
        if let Some(model) = self.model() {
            b = b.model(model?);
        }
        if let Some(name) = self.name {
            b = b.name(name);
        }
        if let Some(n) = self.max_turns {
            b = b.max_turns(n);
        }
        if let Some(t) = self.timeout {
            b = b.timeout(seconds("timeout", t)?);
        }
        if let Some(t) = self.response_tone {
            b = b.tone(t);
        }
        if let Some(arch) = self.architecture {
            match arch.as_str() {
                "react" => b = b.architecture(ReAct::new()),
                other => {
                    return Err(ConfigError::invalid(
                        "architecture",
                        format!(
                            "unknown architecture {other:?}; valid choices are {}",
                            ARCHITECTURES.join(", ")
                        ),
                    ));
                }
            }
        }
        if let Some(n) = self.output_validation_retries {
            b = b.output_validation_retries(n);
        }
        if let Some(t) = self.tool_timeout {
            b = b.tool_timeout(seconds("tool_timeout", t)?);
        }
        if let Some(n) = self.tool_result_max_chars {
            b = b.tool_result_max_chars(n);
        }
        if let Some(e) = self.effort {
            b = b.effort(e.parse()?);
        }
        if let Some(strict) = self.strict_effort {
            b = b.strict_effort(strict);
        }
        if let Some(on) = self.auto_extract {
            b = b.auto_extract(on);
        }
        if let Some(p) = &self.permissions {
            b = b.permissions_arc(p.build());
        }
        if let Some(budget) = budget {
            b = b.budget(budget);
        }
        if let Some(audit) = audit {
            b = b.audit_log_arc(audit.open()?);
        }
        if let Some(spec) = telemetry
            && let Some(telemetry) = spec.build()?
        {
            b = b.telemetry(telemetry);
        }
        if let Some(t) = self.hook_timeout {
            b = b.hook_timeout(seconds("hook_timeout", t)?);
        }
        if let Some(r) = &self.rate_limit {
            let mut limiter = crate::rate_limit::RateLimiter::new(r.rate, r.burst)?;
            match r.mode.as_deref() {
                None | Some("throttle") => {}
                Some("reject") => limiter = limiter.mode(crate::rate_limit::RateLimitMode::Reject),
                Some(other) => {
                    return Err(ConfigError::invalid(
                        "rate_limit.mode",
                        format!("unknown mode {other:?}: use \"throttle\" or \"reject\""),
                    ));
                }
            }
            b = b.rate_limit(limiter);
        }
        match self.prompt_caching {
            None | Some(PromptCachingConfig::On(false)) => {}
            Some(PromptCachingConfig::On(true)) => b = b.prompt_caching(PromptCache::new()),
            Some(PromptCachingConfig::Table { ttl, key }) => {
                let mut cache = PromptCache::new();
                if let Some(ttl) = ttl {
                    cache = cache.ttl(ttl.parse()?);
                }
                if let Some(key) = key {
                    cache = cache.key(key);
                }
                b = b.prompt_caching(cache);
            }
        }
        Ok(b)
    }
}

impl AgentBuilder {
    /// A builder configured from a TOML file; add tools, then build.
    ///
    /// ```
    /// use loomflow_core::AgentBuilder;
    ///
    /// let dir = std::env::temp_dir().join(format!("loomflow-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("agent.toml");
    /// std::fs::write(&path, "instructions = \"Hi.\"\nmodel = \"echo\"\nmax_tunrs = 3\n").unwrap();
    /// let err = AgentBuilder::from_config(&path).err().unwrap();
    /// assert!(err.to_string().ends_with("agent.toml: unknown key `max_tunrs` (did you mean `max_turns`?)"));
    /// ```
    pub fn from_config(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        AgentConfig::from_file(path)?.into_builder()
    }
}

impl Agent {
    /// Builds an agent from a TOML file (no in-process tools; use
    /// [`AgentBuilder::from_config`] to add some).
    pub fn from_config(path: impl AsRef<Path>) -> Result<Agent, ConfigError> {
        AgentBuilder::from_config(path)?.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effort_and_prompt_caching_keys() {
        let cfg = AgentConfig::from_toml(
            "model = \"echo\"\neffort = \"high\"\nprompt_caching = { ttl = \"1h\", key = \"t7\" }\n",
            "a.toml",
        )
        .unwrap();
        assert_eq!(cfg.effort.as_deref(), Some("high"));
        assert!(cfg.clone().into_builder().is_ok());
        let typo = AgentConfig::from_toml("effort = \"hgih\"", "b.toml")
            .unwrap()
            .into_builder()
            .err()
            .unwrap()
            .to_string();
        assert!(typo.contains("did you mean \"high\""), "{typo}");
        let ttl = AgentConfig::from_toml("prompt_caching = { ttl = \"2h\" }", "c.toml")
            .unwrap()
            .into_builder()
            .err()
            .unwrap()
            .to_string();
        assert!(ttl.contains("unknown cache lifetime \"2h\""), "{ttl}");
        let key = AgentConfig::from_toml("prompt_caching = { tll = \"1h\" }", "d.toml")
            .unwrap_err()
            .to_string();
        assert!(
            key.ends_with("d.toml: unknown key `prompt_caching.tll` (did you mean `ttl`?)"),
            "{key}"
        );
    }

    #[test]
    fn auto_extract_overrides_the_models_default() {
        let build = |text: &str| {
            AgentConfig::from_toml(text, "x.toml")
                .unwrap()
                .into_builder()
                .unwrap()
                .build()
                .unwrap()
        };
        assert!(build("model = \"echo\"\n").extractor().is_none());
        let on = build("model = \"echo\"\nauto_extract = true\n");
        assert_eq!(
            on.extractor().unwrap().consolidator().model().name(),
            "echo"
        );
        let err = AgentConfig::from_toml("auto_extrct = true", "y.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean `auto_extract`"), "{err}");
    }

    #[test]
    fn unknown_keys_name_file_key_and_closest_key() {
        let err = AgentConfig::from_toml(
            "model = \"echo\"\n[[model.turns]]\ntext = \"x\"\n",
            "a.toml",
        )
        .unwrap_err();
        // `model` is a string, so `[[model.turns]]` cannot extend it.
        assert!(
            matches!(&err, ConfigError::File { file, .. } if file == "a.toml"),
            "{err}"
        );
        let err = AgentConfig::from_toml(
            "[model]\nname = \"scripted\"\n[[model.turns]]\ntext = \"x\"\ntool_calls = [{ name = \"a\", arg = {} }]\n",
            "b.toml",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "b.toml: unknown key `model.turns[0].tool_calls[0].arg` (did you mean `args`?)"
        );
        let err = AgentConfig::from_toml("modle = \"echo\"", "c.toml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "c.toml: unknown key `modle` (did you mean `model`?)"
        );
        let err = AgentConfig::from_toml("zzz = 1", "d.toml").unwrap_err();
        assert_eq!(err.to_string(), "d.toml: unknown key `zzz`");
    }

    #[test]
    fn type_errors_name_the_file() {
        let err = AgentConfig::from_toml("max_turns = \"ten\"", "e.toml").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("e.toml: invalid type: string \"ten\""),
            "{err}"
        );
        let err = AgentConfig::from_toml("max_turns = ", "f.toml").unwrap_err();
        assert!(err.to_string().starts_with("f.toml: "), "{err}");
    }

    #[tokio::test]
    async fn guardrails_from_the_file_guard_runs() {
        let text = r#"
            guardrails = ["pii", { kind = "moderation", model = "echo", threshold = 0.5, stages = ["input"] }]
            [model]
            name = "scripted"
            [[model.turns]]
            text = "Reach me at jo@example.com"
        "#;
        let agent_from = |text: &str| {
            AgentConfig::from_toml(text, "g.toml")
                .unwrap()
                .into_builder()
                .unwrap()
                .build()
                .unwrap()
        };
        let agent = agent_from(text);
        // The echo judge gives no score, so the input is blocked (fails
        // closed): the moderation entry is wired in, at the input stage.
        let r = agent.run("hello").await.unwrap();
        assert_eq!(
            r.interruption_reason.as_deref(),
            Some("guardrail:moderation")
        );
        let text = text.replace(
            r#", { kind = "moderation", model = "echo", threshold = 0.5, stages = ["input"] }"#,
            "",
        );
        let r = agent_from(&text).run("hello").await.unwrap();
        assert_eq!(r.output, "Reach me at [REDACTED:email]");
        let err = AgentConfig::from_toml(r#"guardrails = ["pi"]"#, "h.toml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "h.toml: invalid guardrails[0].kind: unknown guardrail \"pi\" (did you mean \"pii\"?); valid kinds are pii, injection, regex, moderation"
        );
    }

    #[test]
    fn builds_scripted_and_echo_models() {
        let cfg = AgentConfig::from_toml(
            "instructions = \"x\"\ntimeout = 1.5\n[model]\nname = \"scripted\"\n[[model.turns]]\ntext = \"hello\"\n[[model.turns]]\ntool_calls = [{ name = \"t\", args = { a = 1 } }]\n",
            "g.toml",
        )
        .unwrap();
        assert_eq!(cfg.timeout, Some(1.5));
        let agent = cfg.into_builder().unwrap().build().unwrap();
        assert_eq!(agent.model().name(), "scripted");
        let err = AgentConfig::from_toml("model = \"scripted\"", "h.toml")
            .unwrap()
            .into_builder()
            .err()
            .unwrap();
        assert!(err.to_string().contains("needs turns"), "{err}");
        let err = AgentConfig::from_toml("model = \"echo\"\narchitecture = \"reactt\"", "i.toml")
            .unwrap()
            .into_builder()
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "invalid architecture: unknown architecture \"reactt\"; valid choices are react"
        );
    }
}
