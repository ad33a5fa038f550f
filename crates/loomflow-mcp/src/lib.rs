//! MCP for loomflow: [`McpRegistry`] connects to any number of MCP servers
//! and offers their tools to an agent as one [`ToolHost`].
//!
//! - Servers run as child processes over stdio or are reached over
//!   Streamable HTTP ([`McpServerSpec`]). They are connected in parallel. One that fails to start is listed as
//!   unavailable with its error ([`McpRegistry::status`]) and tried again by
//!   [`McpRegistry::refresh`]; the others work meanwhile.
//! - A tool name unique across servers stays bare; names that collide become
//!   `server__tool`. Both forms resolve when called.
//! - `destructiveHint` maps to loomflow's destructive flag (unless
//!   `readOnlyHint` says otherwise), so the permission gate asks before a
//!   destructive MCP tool.
//! - Every call has a timeout; a server that dies or hangs mid-call is a
//!   typed tool error, never a hung run. Children are stopped when the
//!   registry is dropped.
//!
//! Built on the official Rust SDK (`rmcp`), which stays an implementation
//! detail: nothing of it appears in this crate's API.

mod names;
mod spec;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use loomflow_core::error::ToolError;
use loomflow_core::message::ToolDef;
use loomflow_core::redact::redact;
use loomflow_core::tool::ToolHost;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;
use tokio::sync::Mutex;

pub use spec::{McpServerSpec, McpTransport};

/// A registry that cannot be set up. (A server that fails to start is not
/// an error: it is listed as unavailable by [`McpRegistry::status`].)
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// Two servers share a name.
    #[error(
        "two MCP servers are named `{0}`; give each a unique name (it qualifies colliding tool names)"
    )]
    DuplicateServer(String),
}

type Client = RunningService<RoleClient, ()>;

/// One configured server and its connection.
struct Server {
    spec: McpServerSpec,
    client: Mutex<Option<Arc<Client>>>,
    error: RwLock<Option<String>>,
}

/// Where a tool name leads.
#[derive(Debug, Clone)]
struct Route {
    server: usize,
    tool: String,
}

#[derive(Default)]
struct Index {
    defs: Arc<[ToolDef]>,
    routes: HashMap<String, Route>,
}

/// A server as [`McpRegistry::status`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStatus {
    /// Its name.
    pub name: String,
    /// `None` when connected; why not otherwise.
    pub error: Option<String>,
    /// How many of its tools are on offer.
    pub tools: usize,
}

/// Many MCP servers' tools as one [`ToolHost`] (see the [crate docs](crate)).
///
/// ```no_run
/// use loomflow_core::Agent;
/// use loomflow_mcp::{McpRegistry, McpServerSpec};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = McpRegistry::connect([
///     McpServerSpec::stdio("git", "uvx", ["mcp-server-git", "--repository", "."]),
///     McpServerSpec::stdio("fs", "npx", ["-y", "@modelcontextprotocol/server-filesystem", "."]),
/// ])
/// .await?;
/// let agent = Agent::builder().model("echo").tool_host(registry).build()?;
/// # let _ = agent; Ok(()) }
/// ```
pub struct McpRegistry {
    servers: Vec<Server>,
    index: RwLock<Arc<Index>>,
    call_timeout: Duration,
}

impl std::fmt::Debug for McpRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpRegistry")
            .field(
                "servers",
                &self
                    .servers
                    .iter()
                    .map(|s| &s.spec.name)
                    .collect::<Vec<_>>(),
            )
            .field("call_timeout", &self.call_timeout)
            .finish_non_exhaustive()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl McpRegistry {
    /// Connects to every server at once and lists their tools. Fails only
    /// on a configuration error (two servers with one name); a server that
    /// cannot start is listed as unavailable (see [`status`](Self::status)).
    pub async fn connect(specs: impl IntoIterator<Item = McpServerSpec>) -> Result<Self, McpError> {
        let specs: Vec<McpServerSpec> = specs.into_iter().collect();
        for (i, spec) in specs.iter().enumerate() {
            if specs[..i].iter().any(|s| s.name == spec.name) {
                return Err(McpError::DuplicateServer(spec.name.clone()));
            }
        }
        let registry = Self {
            servers: specs
                .into_iter()
                .map(|spec| Server {
                    spec,
                    client: Mutex::new(None),
                    error: RwLock::new(None),
                })
                .collect(),
            index: RwLock::new(Arc::default()),
            call_timeout: Duration::from_secs(120),
        };
        registry.refresh().await;
        Ok(registry)
    }

    /// How long one tool call may take before it fails (default 120 s).
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Connects the servers that are not connected (in parallel) and lists
    /// every connected server's tools again.
    pub async fn refresh(&self) {
        let connecting = self.servers.iter().map(|server| async move {
            let mut client = server.client.lock().await;
            if client.is_none() {
                match start(&server.spec).await {
                    Ok(c) => {
                        *client = Some(Arc::new(c));
                        *write(&server.error) = None;
                    }
                    Err(message) => {
                        tracing::warn!(server = %server.spec.name, error = %message, "MCP server unavailable");
                        *write(&server.error) = Some(message);
                    }
                }
            }
            let Some(c) = client.clone() else {
                return Vec::new();
            };
            drop(client);
            match c.peer().list_all_tools().await {
                Ok(tools) => tools,
                Err(e) => {
                    *write(&server.error) =
                        Some(redact(&format!("listing tools failed: {e}")).into_owned());
                    Vec::new()
                }
            }
        });
        let listed = futures_util::future::join_all(connecting).await;
        *write(&self.index) = Arc::new(self.build_index(listed));
    }

    fn build_index(&self, listed: Vec<Vec<rmcp::model::Tool>>) -> Index {
        let exposed = names::expose(
            listed
                .iter()
                .enumerate()
                .flat_map(|(s, tools)| tools.iter().map(move |t| (s, t.name.as_ref()))),
            |s| self.servers[s].spec.name.as_str(),
        );
        let mut defs = Vec::new();
        let mut routes = HashMap::new();
        for ((server, tool), (name, qualified)) in listed
            .iter()
            .enumerate()
            .flat_map(|(s, tools)| tools.iter().map(move |t| (s, t)))
            .zip(exposed)
        {
            let hints = tool.annotations.as_ref();
            let read_only = hints.and_then(|a| a.read_only_hint) == Some(true);
            // The MCP default for destructiveHint is true; a read-only tool
            // is not destructive whatever it says.
            let destructive = !read_only && hints.and_then(|a| a.destructive_hint).unwrap_or(true);
            let route = Route {
                server,
                tool: tool.name.to_string(),
            };
            routes.insert(qualified.clone(), route.clone());
            routes.entry(name.clone()).or_insert(route);
            defs.push(ToolDef {
                name,
                description: tool.description.as_deref().unwrap_or_default().to_owned(),
                input_schema: Value::Object((*tool.input_schema).clone()),
                server: Some(self.servers[server].spec.name.clone()),
                destructive,
                ends_turn: false,
            });
        }
        Index {
            defs: defs.into(),
            routes,
        }
    }

    /// Every server: connected or why not, and how many tools it offers.
    pub fn status(&self) -> Vec<ServerStatus> {
        let index = read(&self.index).clone();
        self.servers
            .iter()
            .map(|s| ServerStatus {
                name: s.spec.name.clone(),
                error: read(&s.error).clone(),
                tools: index
                    .defs
                    .iter()
                    .filter(|d| d.server.as_deref() == Some(s.spec.name.as_str()))
                    .count(),
            })
            .collect()
    }

    /// Stops every server's process.
    pub async fn shutdown(&self) {
        for server in &self.servers {
            let client = server.client.lock().await.take();
            if let Some(client) = client.and_then(|c| Arc::try_unwrap(c).ok()) {
                let _ = client.cancel().await;
            }
        }
    }
}

/// Spawns (or dials) a server and completes the MCP handshake.
async fn start(spec: &McpServerSpec) -> Result<Client, String> {
    match &spec.transport {
        McpTransport::Stdio { command, args, env } => {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(args).envs(env).kill_on_drop(true);
            let transport = rmcp::transport::TokioChildProcess::builder(cmd)
                .stderr(std::process::Stdio::null())
                .spawn()
                .map(|(t, _)| t)
                .map_err(|e| format!("cannot start `{command}`: {e}"))?;
            ().serve(transport)
                .await
                .map_err(|e| redact(&format!("the MCP handshake failed: {e}")).into_owned())
        }
        McpTransport::Http { url, headers } => {
            use rmcp::transport::StreamableHttpClientTransport;
            use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
            let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
            for (name, value) in headers {
                let header = http::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| format!("header name {name:?}: {e}"))?;
                let value = http::HeaderValue::from_str(value)
                    .map_err(|e| format!("header {name:?}: {e}"))?;
                config.custom_headers.insert(header, value);
            }
            let transport =
                StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
            ().serve(transport).await.map_err(|e| {
                redact(&format!("the MCP handshake with {url} failed: {e}")).into_owned()
            })
        }
    }
}

/// The text of a call's content blocks, or the blocks as JSON when there is
/// more than text; structured content wins when there is some.
fn output(result: CallToolResult) -> Value {
    if let Some(structured) = result.structured_content {
        return structured;
    }
    let texts: Option<Vec<&str>> = result
        .content
        .iter()
        .map(|c| c.as_text().map(|t| t.text.as_str()))
        .collect();
    match texts {
        Some(texts) => Value::String(texts.join("\n")),
        None => serde_json::to_value(&result.content).unwrap_or(Value::Null),
    }
}

#[async_trait]
impl ToolHost for McpRegistry {
    async fn list_tools(&self) -> Result<Arc<[ToolDef]>, ToolError> {
        Ok(read(&self.index).defs.clone())
    }

    fn tools_at_hand(&self) -> Option<Arc<[ToolDef]>> {
        Some(read(&self.index).defs.clone())
    }

    async fn call(&self, name: &str, args: &Value, _call_id: &str) -> Result<Value, ToolError> {
        let index = read(&self.index).clone();
        let Some(route) = index.routes.get(name) else {
            return Err(ToolError::NotFound {
                tool: name.to_owned(),
                available: index.defs.iter().map(|d| d.name.clone()).collect(),
            });
        };
        let server = &self.servers[route.server];
        let client = server.client.lock().await.clone();
        let Some(client) = client else {
            return Err(ToolError::failed(format!(
                "MCP server `{}` is unavailable: {}",
                server.spec.name,
                read(&server.error).as_deref().unwrap_or("not connected")
            )));
        };
        let mut params = CallToolRequestParams::new(route.tool.clone());
        params.arguments = match args {
            Value::Object(map) => Some(map.clone()),
            Value::Null => None,
            other => {
                return Err(ToolError::InvalidArguments {
                    tool: name.to_owned(),
                    message: format!("MCP tools take an object of arguments, not {other}"),
                });
            }
        };
        let call = client.peer().call_tool(params);
        let result = match tokio::time::timeout(self.call_timeout, call).await {
            Err(_) => {
                return Err(ToolError::Timeout {
                    tool: name.to_owned(),
                    timeout: self.call_timeout,
                });
            }
            Ok(Err(e)) => {
                return Err(ToolError::failed(redact(&format!(
                    "MCP server `{}` failed the call: {e}",
                    server.spec.name
                ))));
            }
            Ok(Ok(result)) => result,
        };
        if result.is_error == Some(true) {
            let message = match output(result) {
                Value::String(s) => s,
                other => other.to_string(),
            };
            return Err(ToolError::failed(message));
        }
        Ok(output(result))
    }
}
