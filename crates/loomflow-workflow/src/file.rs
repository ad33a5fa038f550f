//! Declarative workflow files (TOML): agents, nodes, edges and routers that
//! route on the previous output.
//!
//! ```toml
//! name = "triage"
//! start = "classify"
//!
//! [agents.classifier]            # inline: the keys of an agent config file
//! instructions = "Answer with one word: billing or tech."
//! model = "echo"
//!
//! [agents.billing]
//! config = "agents/billing.toml"  # or a path, relative to this file
//!
//! [[nodes]]
//! name = "classify"
//! agent = "classifier"
//!
//! [[nodes]]
//! name = "billing"
//! agent = "billing"
//!
//! [[routers]]
//! from = "classify"
//! default = "END"
//! routes = [
//!   { label = "billing", to = "billing" },   # exact, after trim + lower-case
//!   { contains = "refund", to = "billing" },  # substring, case-insensitive
//!   { regex = "^tech", to = "tech" },         # a regular expression
//! ]
//!
//! [[edges]]
//! from = "billing"
//! to = "END"
//! ```
//!
//! A node is an `agent` (from `[agents]`) or a nested `workflow` file. Errors
//! name the file and, wherever it can be told, the line and the key.
//!
//! A top-level `memory = "sqlite:./bot.db"` (any
//! [`MemorySpec`] string or table) gives
//! every agent a long-term memory; the loader checks it and the caller opens
//! it ([`Workflow::memory_spec`], [`Workflow::with_memory`]; `loomflow run`
//! does). Agents inside a workflow file take no `memory` key of their own.
//!
//! Likewise a top-level `audit_log = { path = "./audit.jsonl", secret_env =
//! "AUDIT_KEY" }` (any [`AuditSpec`](loomflow_core::audit::AuditSpec): a
//! file, `sqlite:` or `postgres://`) records every step and the runs of the
//! agents inside in one signed chain ([`Workflow::audit_spec`],
//! [`Workflow::with_audit_log`]); agents and nested files take none of
//! their own.
//!
//! An agent's `[[agents.<name>.mcp]]` servers (the `[[mcp]]` tables of an
//! agent config) give it their tools. Connecting is asynchronous, so the
//! loader leaves the agent a [`DeferredToolHost`] and lists it in
//! [`Workflow::mcp_servers`]; the caller connects them
//! (`loomflow::connect_workflow_mcp`; `loomflow run` and `loomflow mcp
//! serve` do).
//!
//! A top-level `telemetry = "console" | "file:./spans.jsonl" | "otel"`
//! records the run's spans and metrics, the agents' included, in one trace
//! ([`Workflow::telemetry_spec`], [`Workflow::with_telemetry`]; the caller
//! opens it, `loomflow run` does).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use loomflow_core::config::AgentConfig;
use loomflow_core::error::closest;
use loomflow_core::memory::MemorySpec;
use loomflow_core::tool::DeferredToolHost;
use serde::Deserialize;
use toml::Spanned;

use crate::error::WorkflowError;
use crate::router::Router;
use crate::{END, START, Workflow};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    name: Option<String>,
    start: Option<Spanned<String>>,
    max_steps: Option<u32>,
    max_visits_per_node: Option<u32>,
    max_concurrency: Option<usize>,
    response_tone: Option<String>,
    memory: Option<Spanned<toml::Value>>,
    audit_log: Option<Spanned<toml::Value>>,
    telemetry: Option<Spanned<String>>,
    #[serde(default)]
    agents: BTreeMap<String, Spanned<toml::Table>>,
    #[serde(default)]
    nodes: Vec<Spanned<NodeSpec>>,
    #[serde(default)]
    edges: Vec<EdgeSpec>,
    #[serde(default)]
    routers: Vec<RouterSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeSpec {
    name: Spanned<String>,
    agent: Option<Spanned<String>>,
    workflow: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EdgeSpec {
    from: Spanned<String>,
    to: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouterSpec {
    from: Spanned<String>,
    #[serde(default)]
    routes: Vec<Spanned<RouteSpec>>,
    default: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSpec {
    label: Option<String>,
    contains: Option<String>,
    regex: Option<String>,
    to: Spanned<String>,
}

/// One routing rule, tried in order.
enum Rule {
    Label(String),
    Contains(String),
    Regex(regex::Regex),
}

impl Rule {
    fn key(&self) -> String {
        match self {
            Rule::Label(l) => l.clone(),
            Rule::Contains(c) => format!("contains:{c}"),
            Rule::Regex(r) => format!("regex:{}", r.as_str()),
        }
    }

    fn matches(&self, text: &str) -> bool {
        match self {
            Rule::Label(l) => text.trim().to_lowercase() == *l,
            Rule::Contains(c) => text.to_lowercase().contains(c.as_str()),
            Rule::Regex(r) => r.is_match(text),
        }
    }
}

struct Source<'a> {
    file: String,
    text: &'a str,
}

impl Source<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn err(&self, span: Option<Range<usize>>, message: impl Into<String>) -> WorkflowError {
        WorkflowError::File {
            file: self.file.clone(),
            line: span.map(|s| self.line(s)),
            message: message.into(),
        }
    }
}

fn target(name: &str) -> &str {
    match name {
        "END" => END,
        "START" => START,
        other => other,
    }
}

const NODE_KEYS: &[&str] = &["name", "agent", "workflow"];

impl Workflow {
    /// Loads a declarative workflow file (see the [`file`](crate::file)
    /// module for the format). Agent config paths and nested workflow paths
    /// are relative to the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Workflow, WorkflowError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| WorkflowError::File {
            file: path.display().to_string(),
            line: None,
            message: format!("cannot read the file: {e}"),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_toml(&text, &path.display().to_string(), &base)
    }

    /// Parses workflow TOML; `file` names it in errors and `base` is the
    /// directory relative paths start from.
    pub fn from_toml(text: &str, file: &str, base: &Path) -> Result<Workflow, WorkflowError> {
        let src = Source {
            file: file.to_owned(),
            text,
        };
        let spec: FileSpec = toml::from_str(text).map_err(|e| {
            let mut message = e.message().trim().to_owned();
            if let Some(field) = message
                .strip_prefix("unknown field `")
                .and_then(|m| m.split('`').next())
                && let Some(expected) = message.split("expected ").nth(1)
            {
                let valid: Vec<&str> = expected
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .filter(|w| !w.is_empty() && *w != "one" && *w != "of" && *w != "or")
                    .collect();
                message = match closest(field, valid.iter().copied()) {
                    Some(s) => format!("unknown key `{field}` (did you mean `{s}`?)"),
                    None => format!("unknown key `{field}`; valid keys: {}", valid.join(", ")),
                };
            }
            src.err(e.span(), message)
        })?;

        let name = spec
            .name
            .clone()
            .or_else(|| {
                Path::new(file)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "workflow".into());
        let mut b = Workflow::builder(name);
        if let Some(n) = spec.max_steps {
            b = b.max_steps(n);
        }
        if let Some(n) = spec.max_visits_per_node {
            b = b.max_visits_per_node(n);
        }
        if let Some(n) = spec.max_concurrency {
            b = b.max_concurrency(n);
        }
        if let Some(t) = &spec.response_tone {
            b = b.response_tone(t.as_str());
        }
        let memory_spec = match &spec.memory {
            None => None,
            Some(value) => {
                let parsed = match value.get_ref() {
                    toml::Value::String(s) => s.parse::<MemorySpec>(),
                    toml::Value::Table(t) => MemorySpec::from_table(t),
                    other => {
                        return Err(src.err(
                            Some(value.span()),
                            format!(
                                "memory: expected a string such as \"sqlite:./bot.db\" or a table, not a {}",
                                other.type_str()
                            ),
                        ));
                    }
                };
                Some(parsed.map_err(|e| src.err(Some(value.span()), format!("memory: {e}")))?)
            }
        };
        let audit_spec = match &spec.audit_log {
            None => None,
            Some(value) => Some(
                loomflow_core::audit::AuditSpec::try_from(value.get_ref().clone())
                    .map_err(|e| src.err(Some(value.span()), format!("audit_log: {e}")))?,
            ),
        };
        let telemetry_spec = match &spec.telemetry {
            None => None,
            Some(value) => Some(
                value
                    .get_ref()
                    .parse::<loomflow_core::telemetry::TelemetrySpec>()
                    .map_err(|e| src.err(Some(value.span()), e.to_string()))?,
            ),
        };

        let mut mcp = Vec::new();
        for node in &spec.nodes {
            let span = node.span();
            let node = node.get_ref();
            let name = node.name.get_ref();
            match (&node.agent, &node.workflow) {
                (Some(agent), None) => {
                    let Some(table) = spec.agents.get(agent.get_ref()) else {
                        let known: Vec<&str> = spec.agents.keys().map(String::as_str).collect();
                        let hint = match closest(agent.get_ref(), known.iter().copied()) {
                            Some(s) => format!(" (did you mean `{s}`?)"),
                            None if known.is_empty() => " (declare it under [agents])".to_owned(),
                            None => format!("; declared agents: {}", known.join(", ")),
                        };
                        return Err(src.err(
                            Some(agent.span()),
                            format!(
                                "nodes.{name}.agent: unknown agent `{}`{hint}",
                                agent.get_ref()
                            ),
                        ));
                    };
                    let built = agent_from(&src, base, agent.get_ref(), table, &mut mcp)?;
                    b = b.add_node(name.clone(), built);
                }
                (None, Some(path)) => {
                    let nested = Workflow::from_file(base.join(path.get_ref())).map_err(|e| {
                        src.err(Some(path.span()), format!("nodes.{name}.workflow: {e}"))
                    })?;
                    if nested.memory_spec().is_some() {
                        return Err(src.err(
                            Some(path.span()),
                            format!(
                                "nodes.{name}.workflow: `{}` sets `memory`, which only the top-level \
                                 workflow file may set (it reaches the nested agents); move it there",
                                path.get_ref()
                            ),
                        ));
                    }
                    if nested.audit_spec().is_some() {
                        return Err(src.err(
                            Some(path.span()),
                            format!(
                                "nodes.{name}.workflow: `{}` sets `audit_log`, which only the top-level \
                                 workflow file may set (its chain holds the nested steps); move it there",
                                path.get_ref()
                            ),
                        ));
                    }
                    if nested.telemetry_spec().is_some() {
                        return Err(src.err(
                            Some(path.span()),
                            format!(
                                "nodes.{name}.workflow: `{}` sets `telemetry`, which only the top-level \
                                 workflow file may set (its trace holds the nested steps); move it there",
                                path.get_ref()
                            ),
                        ));
                    }
                    mcp.extend(nested.mcp_servers().iter().map(|m| AgentMcp {
                        agent: format!("{name}/{}", m.agent),
                        ..m.clone()
                    }));
                    b = b.add_node(name.clone(), nested);
                }
                _ => {
                    return Err(src.err(
                        Some(span),
                        format!(
                            "nodes.{name}: set exactly one of `agent` or `workflow` (valid keys: {})",
                            NODE_KEYS.join(", ")
                        ),
                    ));
                }
            }
        }

        if let Some(start) = &spec.start {
            b = b.set_start(target(start.get_ref()));
        }
        for edge in &spec.edges {
            let (from, to) = (edge.from.get_ref(), edge.to.get_ref());
            b = b.add_edge(target(from), target(to));
        }
        for router in &spec.routers {
            // Each rule's key doubles as its route key (and diagram label).
            let mut matchers: Vec<(Rule, String)> = Vec::new();
            let mut routes: Vec<(String, String)> = Vec::new();
            for route in &router.routes {
                let r = route.get_ref();
                let rule = match (&r.label, &r.contains, &r.regex) {
                    (Some(l), None, None) => Rule::Label(l.trim().to_lowercase()),
                    (None, Some(c), None) => Rule::Contains(c.to_lowercase()),
                    (None, None, Some(re)) => Rule::Regex(regex::Regex::new(re).map_err(|e| {
                        src.err(
                            Some(route.span()),
                            format!("routers.{}.routes.regex: {e}", router.from.get_ref()),
                        )
                    })?),
                    _ => {
                        return Err(src.err(
                            Some(route.span()),
                            format!(
                                "routers.{}.routes: a route needs exactly one of `label`, `contains` or `regex`, and `to`",
                                router.from.get_ref()
                            ),
                        ));
                    }
                };
                let key = rule.key();
                routes.push((key.clone(), target(r.to.get_ref()).to_owned()));
                matchers.push((rule, key));
            }
            let mut compiled = Router::text(move |text: &str| {
                matchers
                    .iter()
                    .find(|(rule, _)| rule.matches(text))
                    .map(|(_, key)| key.clone())
                    .unwrap_or_else(|| text.trim().to_lowercase())
            });
            for (key, to) in &routes {
                compiled = compiled.route(key.clone(), to);
            }
            if let Some(d) = &router.default {
                compiled = compiled.default_route(target(d.get_ref()));
            }
            b = b.add_router(target(router.from.get_ref()), compiled);
        }

        let built = b.build().map_err(|e| {
            // Point at the line of a node the error names, when there is one.
            let line = match &e {
                WorkflowError::UnknownNode { node, .. } => mention(&spec, node),
                WorkflowError::RouterBesideEdges { source_node, .. } => mention(&spec, source_node),
                WorkflowError::NoPathToEnd { nodes, .. } => {
                    nodes.first().and_then(|n| mention(&spec, n))
                }
                WorkflowError::DuplicateNode { node, .. } => spec
                    .nodes
                    .iter()
                    .filter(|x| x.get_ref().name.get_ref() == node)
                    .nth(1)
                    .map(|x| x.get_ref().name.span()),
                _ => None,
            };
            match e {
                WorkflowError::File { .. } => e,
                other => src.err(line, other.to_string()),
            }
        })?;
        if memory_spec.is_none()
            && audit_spec.is_none()
            && telemetry_spec.is_none()
            && mcp.is_empty()
        {
            return Ok(built);
        }
        let mut settings = built.inner.settings.clone();
        if let Some(memory) = memory_spec {
            settings.memory_facts = memory.with_facts;
            settings.memory_spec = Some(memory);
        }
        settings.audit_spec = audit_spec;
        settings.telemetry_spec = telemetry_spec;
        settings.mcp = mcp;
        Ok(Workflow::from_parts(
            built.inner.name.clone(),
            built.inner.graph.clone(),
            settings,
        ))
    }
}

/// The span of the first place `node` is named as an edge/router endpoint or
/// declared.
fn mention(spec: &FileSpec, node: &str) -> Option<Range<usize>> {
    for e in &spec.edges {
        for s in [&e.from, &e.to] {
            if s.get_ref() == node {
                return Some(s.span());
            }
        }
    }
    for r in &spec.routers {
        if r.from.get_ref() == node {
            return Some(r.from.span());
        }
        for route in &r.routes {
            if route.get_ref().to.get_ref() == node {
                return Some(route.get_ref().to.span());
            }
        }
        if let Some(d) = &r.default
            && d.get_ref() == node
        {
            return Some(d.span());
        }
    }
    if let Some(s) = &spec.start
        && s.get_ref() == node
    {
        return Some(s.span());
    }
    spec.nodes
        .iter()
        .find(|x| x.get_ref().name.get_ref() == node)
        .map(|x| x.get_ref().name.span())
}

/// An agent of a workflow file with `[[mcp]]` servers: the caller connects
/// them and fills the agent's tool host (`loomflow::connect_workflow_mcp`
/// does both; `loomflow run` calls it).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AgentMcp {
    /// The agent's key (`coder`; `node/coder` inside a nested workflow).
    pub agent: String,
    /// Its `mcp` key: the `[[mcp]]` tables.
    pub servers: toml::Value,
    /// Its tool host, to fill with the connected servers.
    pub host: DeferredToolHost,
}

fn agent_from(
    src: &Source<'_>,
    base: &Path,
    name: &str,
    table: &Spanned<toml::Table>,
    mcp: &mut Vec<AgentMcp>,
) -> Result<loomflow_core::Agent, WorkflowError> {
    let span = table.span();
    let t = table.get_ref().clone();
    let config = match t.get("config") {
        Some(toml::Value::String(path)) if t.len() == 1 => {
            let full: PathBuf = base.join(path);
            AgentConfig::from_file(&full)
        }
        Some(toml::Value::String(_)) => {
            return Err(src.err(
                Some(span),
                format!("agents.{name}: `config` loads the agent from a file and cannot be combined with other keys"),
            ));
        }
        Some(_) => {
            return Err(src.err(Some(span), format!("agents.{name}.config: expected a file path string")));
        }
        None => AgentConfig::from_table(t, &src.file, &format!("agents.{name}.")),
    }
    .map_err(|e| src.err(Some(span.clone()), e.to_string()))?;
    if config.memory.is_some() {
        return Err(src.err(
            Some(span),
            format!(
                "agents.{name}.memory: in a workflow file, memory is set once at the top level \
                 (`memory = \"sqlite:./bot.db\"`) and reaches every agent; move it there"
            ),
        ));
    }
    if config.audit_log.is_some() {
        return Err(src.err(
            Some(span),
            format!(
                "agents.{name}.audit_log: in a workflow file, the audit log is set once at the top \
                 level (`audit_log = {{ path = \"./audit.jsonl\", secret_env = \"AUDIT_KEY\" }}`) and \
                 records every agent; move it there"
            ),
        ));
    }
    if config.telemetry.is_some() {
        return Err(src.err(
            Some(span),
            format!(
                "agents.{name}.telemetry: in a workflow file, telemetry is set once at the top \
                 level (`telemetry = \"console\"`) and records every agent in one trace; move it there"
            ),
        ));
    }
    // MCP servers connect asynchronously: the agent gets a slot the caller
    // fills (`Workflow::mcp_servers`).
    let mut config = config;
    let servers = config.mcp.take();
    // An agent without a name of its own is named after its key.
    let named = config.name.is_some();
    let mut builder = config
        .into_builder()
        .map_err(|e| src.err(Some(span.clone()), format!("agents.{name}: {e}")))?;
    if let Some(servers) = servers {
        let host = DeferredToolHost::new(format!("agents.{name}.mcp"));
        builder = builder.tool_host(host.clone());
        mcp.push(AgentMcp {
            agent: name.to_owned(),
            servers,
            host,
        });
    }
    if !named {
        builder = builder.name(name);
    }
    builder
        .build()
        .map_err(|e| src.err(Some(span), format!("agents.{name}: {e}")))
}
