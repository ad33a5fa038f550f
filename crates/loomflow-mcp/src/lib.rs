//! MCP for loomflow: [`McpRegistry`] connects to any number of MCP servers
//! and offers their tools to an agent as one [`ToolHost`].
//!
//! - Servers run as child processes over stdio or are reached over
//!   Streamable HTTP ([`McpServerSpec`]). They are connected in parallel.
//!   One that fails to start is listed as unavailable with its error
//!   ([`McpRegistry::status`]) and tried again by [`McpRegistry::refresh`];
//!   the others work meanwhile.
//! - A tool name unique across servers stays bare; names that collide become
//!   `server__tool`. Both forms resolve when called.
//! - `destructiveHint` maps to loomflow's destructive flag (unless
//!   `readOnlyHint` says otherwise), so the permission gate asks before a
//!   destructive MCP tool.
//! - A server's `tools/list_changed` re-lists its tools (the next turn sees
//!   them; [`McpRegistry::watch`] tells what changed).
//! - Resources and prompts: [`list_resources`](McpRegistry::list_resources),
//!   [`read_resource`](McpRegistry::read_resource),
//!   [`list_prompts`](McpRegistry::list_prompts),
//!   [`get_prompt`](McpRegistry::get_prompt), in loomflow's content parts
//!   (text, images; other binary content as a line naming its type and size).
//! - Progress a server reports during a call is a `tool_progress` event on
//!   the run's stream. A server's sampling requests are answered by a
//!   loomflow model when one is configured
//!   ([`McpRegistryBuilder::sampling`], or `sampling_model` in a spec).
//! - Every call has a timeout; a server that dies mid-call is a
//!   [`ToolError::Unavailable`] (the next call restarts it), one that hangs
//!   is a [`ToolError::Timeout`]: never a hung run. Children are stopped
//!   when the registry is dropped.
//!
//! Built on the official Rust SDK (`rmcp`), which stays an implementation
//! detail behind a small internal trait: nothing of it appears in this
//! crate's API.

mod content;
mod names;
mod rmcp_session;
#[cfg(feature = "server")]
pub mod serve;
mod session;
mod spec;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use loomflow_core::error::{ConfigError, ToolError};
use loomflow_core::journal::CallContext;
use loomflow_core::message::{Message, ToolDef};
use loomflow_core::model::Model;
use loomflow_core::redact::redact;
use loomflow_core::tool::ToolHost;
use serde_json::{Map, Value};
use tokio::sync::{Mutex, broadcast};

pub use content::{McpPrompt, McpResource, PromptArgument, ResourceBody, ResourceContent};
pub use spec::{McpServerSpec, McpTransport};

use session::{Hooks, RemoteTool, Session, SessionError};

/// What went wrong with a registry or one of its requests. (A server that
/// fails to start is not an error: [`McpRegistry::status`] lists it.)
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// Two servers share a name.
    #[error(
        "two MCP servers are named `{0}`; give each a unique name (it qualifies colliding tool names)"
    )]
    DuplicateServer(String),
    /// A spec names a sampling model that does not resolve.
    #[error("MCP server `{server}`: sampling_model: {error}")]
    SamplingModel {
        /// The server.
        server: String,
        /// Why the model does not resolve.
        error: ConfigError,
    },
    /// No server has this name.
    #[error("no MCP server is named `{server}`; the servers are: {}", .known.join(", "))]
    UnknownServer {
        /// The name asked for.
        server: String,
        /// The servers there are.
        known: Vec<String>,
    },
    /// The server is not connected.
    #[error("MCP server `{server}` is unavailable: {reason}")]
    Unavailable {
        /// The server.
        server: String,
        /// Why.
        reason: String,
    },
    /// The server did not answer in time.
    #[error("MCP server `{server}` did not answer within {:.1}s", .timeout.as_secs_f64())]
    Timeout {
        /// The server.
        server: String,
        /// How long it was given.
        timeout: Duration,
    },
    /// The server answered with an error.
    #[error("MCP server `{server}`: {message}")]
    Server {
        /// The server.
        server: String,
        /// What it said.
        message: String,
    },
    /// No connected server could read this URI.
    #[error("no MCP server has a resource `{uri}`{}; `list_resources()` shows the URIs there are", if .tried.is_empty() { String::new() } else { format!(" (tried {})", .tried.join(", ")) })]
    UnknownResource {
        /// The URI.
        uri: String,
        /// The servers asked.
        tried: Vec<String>,
    },
    /// More than one server lists this URI.
    #[error("servers {} all list `{uri}`; say which with `read_resource(uri, Some(server))`", .servers.join(", "))]
    AmbiguousResource {
        /// The URI.
        uri: String,
        /// The servers listing it.
        servers: Vec<String>,
    },
    /// No server offers a prompt of this name.
    #[error("no one MCP prompt is named `{name}`; the prompts are: {} (one that several servers offer is named `server.prompt`)", .available.join(", "))]
    UnknownPrompt {
        /// The name asked for.
        name: String,
        /// The prompts there are (`server.prompt` where a name is on several servers).
        available: Vec<String>,
    },
}

/// How a tool on offer changed ([`McpRegistry::watch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ToolChange {
    /// It is new.
    Added,
    /// It is gone.
    Removed,
    /// Its description, schema or hints changed (or the name it is offered
    /// under, after a collision appeared or went away).
    Updated,
}

/// A change to the tools on offer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ToolEvent {
    /// What happened.
    pub change: ToolChange,
    /// The server.
    pub server: String,
    /// The tool's name on that server.
    pub tool: String,
}

/// One configured server and its connection.
struct Server {
    spec: McpServerSpec,
    sampler: Option<Arc<dyn Model>>,
    /// Held while connecting, so one connection is made at a time.
    session: Mutex<Option<Arc<dyn Session>>>,
    error: RwLock<Option<String>>,
    /// Its tools as last listed.
    tools: RwLock<Arc<[RemoteTool]>>,
    /// It said its tools changed since they were listed.
    stale: AtomicBool,
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

struct Inner {
    servers: Vec<Server>,
    index: RwLock<Arc<Index>>,
    call_timeout: Duration,
    /// How many tool-list changes servers have announced.
    announced: AtomicU64,
    /// How many of those the index reflects.
    indexed: AtomicU64,
    /// Held while re-listing changed servers.
    relisting: Mutex<()>,
    /// `shutdown` ran: connect nothing again.
    shut: AtomicBool,
    changes: broadcast::Sender<ToolEvent>,
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
///
/// Cloning is cheap: clones share the connections.
#[derive(Clone)]
pub struct McpRegistry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for McpRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpRegistry")
            .field(
                "servers",
                &self
                    .inner
                    .servers
                    .iter()
                    .map(|s| &s.spec.name)
                    .collect::<Vec<_>>(),
            )
            .field("call_timeout", &self.inner.call_timeout)
            .finish_non_exhaustive()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// Settings for an [`McpRegistry`]; [`connect`](Self::connect) makes it.
///
/// ```no_run
/// use std::time::Duration;
/// use loomflow_mcp::{McpRegistry, McpServerSpec};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = McpRegistry::builder()
///     .server(McpServerSpec::stdio("fs", "npx", ["-y", "@modelcontextprotocol/server-filesystem", "."]))
///     .call_timeout(Duration::from_secs(30))
///     .sampling(loomflow_core::model::resolve_model("echo")?)
///     .connect()
///     .await?;
/// # let _ = registry; Ok(()) }
/// ```
#[derive(Default)]
#[must_use]
pub struct McpRegistryBuilder {
    specs: Vec<McpServerSpec>,
    call_timeout: Option<Duration>,
    sampler: Option<Arc<dyn Model>>,
}

impl std::fmt::Debug for McpRegistryBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpRegistryBuilder")
            .field("specs", &self.specs)
            .field("call_timeout", &self.call_timeout)
            .field("sampling", &self.sampler.as_ref().map(|m| m.name()))
            .finish()
    }
}

impl McpRegistryBuilder {
    /// Adds a server.
    pub fn server(mut self, spec: McpServerSpec) -> Self {
        self.specs.push(spec);
        self
    }

    /// Adds servers.
    pub fn servers(mut self, specs: impl IntoIterator<Item = McpServerSpec>) -> Self {
        self.specs.extend(specs);
        self
    }

    /// How long one tool call may take before it fails (and is cancelled
    /// on the server). Default 120 s.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = Some(timeout);
        self
    }

    /// Answers servers' sampling requests with `model` (servers whose spec
    /// names a `sampling_model` use that one). Without a model the client
    /// does not offer sampling, and servers do not ask.
    pub fn sampling(mut self, model: Arc<dyn Model>) -> Self {
        self.sampler = Some(model);
        self
    }

    /// Connects to every server at once and lists their tools. Fails only
    /// on a configuration error (two servers with one name, a sampling
    /// model that does not resolve); a server that cannot start is listed
    /// as unavailable (see [`McpRegistry::status`]).
    pub async fn connect(self) -> Result<McpRegistry, McpError> {
        let mut servers = Vec::with_capacity(self.specs.len());
        for (i, spec) in self.specs.iter().enumerate() {
            if self.specs[..i].iter().any(|s| s.name == spec.name) {
                return Err(McpError::DuplicateServer(spec.name.clone()));
            }
        }
        for spec in self.specs {
            let sampler = match &spec.sampling_model {
                Some(name) => Some(loomflow_core::model::resolve_model(name).map_err(|error| {
                    McpError::SamplingModel {
                        server: spec.name.clone(),
                        error,
                    }
                })?),
                None => self.sampler.clone(),
            };
            servers.push(Server {
                spec,
                sampler,
                session: Mutex::new(None),
                error: RwLock::new(None),
                tools: RwLock::new(Arc::from([])),
                stale: AtomicBool::new(false),
            });
        }
        let registry = McpRegistry {
            inner: Arc::new(Inner {
                servers,
                index: RwLock::new(Arc::default()),
                call_timeout: self.call_timeout.unwrap_or(Duration::from_secs(120)),
                announced: AtomicU64::new(0),
                indexed: AtomicU64::new(0),
                relisting: Mutex::new(()),
                shut: AtomicBool::new(false),
                changes: broadcast::channel(64).0,
            }),
        };
        registry.refresh().await;
        Ok(registry)
    }
}

impl McpRegistry {
    /// Settings: servers, call timeout, sampling model.
    pub fn builder() -> McpRegistryBuilder {
        McpRegistryBuilder::default()
    }

    /// Connects to every server at once with the default settings (see
    /// [`McpRegistryBuilder::connect`]).
    pub async fn connect(specs: impl IntoIterator<Item = McpServerSpec>) -> Result<Self, McpError> {
        Self::builder().servers(specs).connect().await
    }

    /// Connects the servers that are not connected (in parallel) and lists
    /// every server's tools again.
    pub async fn refresh(&self) {
        let inner = &self.inner;
        let _relisting = inner.relisting.lock().await;
        let announced = inner.announced.load(Ordering::Acquire);
        let listing = (0..inner.servers.len()).map(|i| async move {
            if inner.session(i).await.is_ok() {
                inner.list_tools_of(i).await;
            }
        });
        futures_util::future::join_all(listing).await;
        inner.rebuild_index();
        inner.indexed.fetch_max(announced, Ordering::AcqRel);
    }

    /// Tells what changes in the tools on offer: a server that says its
    /// list changed is listed again, and each tool added, removed or
    /// changed is one [`ToolEvent`].
    pub fn watch(&self) -> broadcast::Receiver<ToolEvent> {
        self.inner.changes.subscribe()
    }

    /// Every server: connected or why not, and how many tools it offers.
    pub fn status(&self) -> Vec<ServerStatus> {
        self.inner
            .servers
            .iter()
            .map(|s| ServerStatus {
                name: s.spec.name.clone(),
                error: read(&s.error).clone(),
                tools: read(&s.tools).len(),
            })
            .collect()
    }

    /// Every resource the connected servers list. A server that lists none
    /// (or fails to) adds nothing.
    pub async fn list_resources(&self) -> Vec<McpResource> {
        self.gather_from_servers(|s| async move { s.resources().await })
            .await
    }

    /// What `list` gives for each connected server, in server order (a
    /// server that fails to answer adds nothing).
    async fn gather_from_servers<T, F, Fut>(&self, list: F) -> Vec<T>
    where
        F: Fn(Arc<dyn Session>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<T>, SessionError>>,
    {
        let inner = &self.inner;
        let list = &list;
        let listed = (0..inner.servers.len()).map(|i| async move {
            match inner.connected(i).await {
                Some(session) => list(session).await.unwrap_or_default(),
                None => Vec::new(),
            }
        });
        futures_util::future::join_all(listed)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Reads the resource at `uri` from `server`, or, with `None`, from the
    /// server that lists it (asking each server in turn when none lists it:
    /// a URI from a resource template is listed nowhere).
    pub async fn read_resource(
        &self,
        uri: &str,
        server: Option<&str>,
    ) -> Result<Vec<ResourceContent>, McpError> {
        let inner = &self.inner;
        if let Some(name) = server {
            return self.read_from(inner.server_index(name)?, uri).await;
        }
        let listing: Vec<String> = self
            .list_resources()
            .await
            .into_iter()
            .filter(|r| r.uri == uri)
            .map(|r| r.server)
            .collect();
        match listing.as_slice() {
            [one] => self.read_from(inner.server_index(one)?, uri).await,
            [] => {
                let mut tried = Vec::new();
                for (i, server) in inner.servers.iter().enumerate() {
                    let Some(session) = inner.connected(i).await else {
                        continue;
                    };
                    if let Ok(contents) = session.read_resource(uri).await {
                        return Ok(contents);
                    }
                    tried.push(server.spec.name.clone());
                }
                Err(McpError::UnknownResource {
                    uri: uri.to_owned(),
                    tried,
                })
            }
            _ => Err(McpError::AmbiguousResource {
                uri: uri.to_owned(),
                servers: listing,
            }),
        }
    }

    /// Reads the resource at `uri` from server `i`.
    async fn read_from(&self, i: usize, uri: &str) -> Result<Vec<ResourceContent>, McpError> {
        let session = self.inner.session(i).await?;
        session
            .read_resource(uri)
            .await
            .map_err(|e| self.inner.request_error(i, e))
    }

    /// Every prompt the connected servers offer.
    pub async fn list_prompts(&self) -> Vec<McpPrompt> {
        self.gather_from_servers(|s| async move { s.prompts().await })
            .await
    }

    /// Renders prompt `name` (bare when one server offers it, else
    /// `server.prompt`) with `args`, as messages to give a model.
    pub async fn get_prompt<K, V>(
        &self,
        name: &str,
        args: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Vec<Message>, McpError>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let inner = &self.inner;
        let prompts = self.list_prompts().await;
        let owners: Vec<&McpPrompt> = match name.split_once('.') {
            Some((server, prompt)) if inner.server_index(server).is_ok() => prompts
                .iter()
                .filter(|p| p.server == server && p.name == prompt)
                .collect(),
            _ => prompts.iter().filter(|p| p.name == name).collect(),
        };
        let [prompt] = owners.as_slice() else {
            let mut count: HashMap<&str, usize> = HashMap::new();
            for p in &prompts {
                *count.entry(p.name.as_str()).or_default() += 1;
            }
            return Err(McpError::UnknownPrompt {
                name: name.to_owned(),
                available: prompts
                    .iter()
                    .map(|p| match count[p.name.as_str()] {
                        1 => p.name.clone(),
                        _ => format!("{}.{}", p.server, p.name),
                    })
                    .collect(),
            });
        };
        let i = inner.server_index(&prompt.server)?;
        let session = inner.session(i).await?;
        let args: Map<String, Value> = args
            .into_iter()
            .map(|(k, v)| (k.into(), Value::String(v.into())))
            .collect();
        session
            .prompt(&prompt.name, args)
            .await
            .map_err(|e| inner.request_error(i, e))
    }

    /// Stops every server's process. The registry stays stopped: calls and
    /// listings fail with the server unavailable, and `refresh` connects
    /// nothing. (Dropping the last clone of a registry stops them too.)
    pub async fn shutdown(&self) {
        self.inner.shut.store(true, Ordering::Release);
        for server in &self.inner.servers {
            let session = server.session.lock().await.take();
            if let Some(session) = session {
                session.close().await;
            }
            *write(&server.error) = Some("shut down".into());
        }
    }
}

impl Inner {
    /// The session of server `i`, connecting it first when it has none.
    async fn session(self: &Arc<Self>, i: usize) -> Result<Arc<dyn Session>, McpError> {
        let server = &self.servers[i];
        let mut slot = server.session.lock().await;
        if let Some(session) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(session.clone());
        }
        if self.shut.load(Ordering::Acquire) {
            return Err(McpError::Unavailable {
                server: server.spec.name.clone(),
                reason: "the registry was shut down".into(),
            });
        }
        let weak = Arc::downgrade(self);
        let hooks = Hooks {
            on_tools_changed: Arc::new(move || tools_changed(&weak, i)),
            sampler: server.sampler.clone(),
        };
        match rmcp_session::connect(&server.spec, hooks).await {
            Ok(session) => {
                let session: Arc<dyn Session> = Arc::new(session);
                *slot = Some(session.clone());
                *write(&server.error) = None;
                Ok(session)
            }
            Err(message) => {
                tracing::warn!(server = %server.spec.name, error = %message, "MCP server unavailable");
                *slot = None;
                *write(&server.error) = Some(message.clone());
                Err(McpError::Unavailable {
                    server: server.spec.name.clone(),
                    reason: message,
                })
            }
        }
    }

    /// The session of server `i` if it is connected (never connects).
    async fn connected(&self, i: usize) -> Option<Arc<dyn Session>> {
        self.servers[i]
            .session
            .lock()
            .await
            .clone()
            .filter(|s| !s.is_closed())
    }

    fn server_index(&self, name: &str) -> Result<usize, McpError> {
        self.servers
            .iter()
            .position(|s| s.spec.name == name)
            .ok_or_else(|| McpError::UnknownServer {
                server: name.to_owned(),
                known: self.servers.iter().map(|s| s.spec.name.clone()).collect(),
            })
    }

    /// Lists server `i`'s tools into its slot.
    async fn list_tools_of(&self, i: usize) {
        let server = &self.servers[i];
        let Some(session) = self.connected(i).await else {
            return;
        };
        server.stale.store(false, Ordering::Release);
        match session.tools().await {
            Ok(tools) => *write(&server.tools) = tools.into(),
            Err(e) => {
                *write(&server.error) =
                    Some(redact(&format!("listing tools failed: {e}")).into_owned());
            }
        }
    }

    /// True when a server announced a change the index does not reflect.
    fn behind(&self) -> bool {
        self.indexed.load(Ordering::Acquire) < self.announced.load(Ordering::Acquire)
    }

    /// Lists the changed servers' tools again and re-indexes.
    async fn relist_stale(&self) {
        if !self.behind() {
            return;
        }
        let _relisting = self.relisting.lock().await;
        let announced = self.announced.load(Ordering::Acquire);
        if self.indexed.load(Ordering::Acquire) >= announced {
            return;
        }
        let listing = self
            .servers
            .iter()
            .enumerate()
            .filter(|(_, s)| s.stale.load(Ordering::Acquire))
            .map(|(i, _)| self.list_tools_of(i));
        futures_util::future::join_all(listing).await;
        self.rebuild_index();
        self.indexed.fetch_max(announced, Ordering::AcqRel);
    }

    /// Builds the name index from every server's tools, and tells watchers
    /// what changed.
    fn rebuild_index(&self) {
        let listed: Vec<Arc<[RemoteTool]>> = self
            .servers
            .iter()
            .map(|s| read(&s.tools).clone())
            .collect();
        let exposed = names::expose(
            listed
                .iter()
                .enumerate()
                .flat_map(|(s, tools)| tools.iter().map(move |t| (s, t.name.as_str()))),
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
            let route = Route {
                server,
                tool: tool.name.clone(),
            };
            routes.insert(qualified, route.clone());
            routes.entry(name.clone()).or_insert(route);
            defs.push(ToolDef {
                name,
                description: tool.description.clone(),
                input_schema: Value::Object(tool.input_schema.clone()),
                server: Some(self.servers[server].spec.name.clone()),
                destructive: tool.destructive,
                ends_turn: false,
            });
        }
        let index = Arc::new(Index {
            defs: defs.into(),
            routes,
        });
        let old = std::mem::replace(&mut *write(&self.index), index.clone());
        if self.changes.receiver_count() > 0 {
            for event in diff(&old, &index) {
                let _ = self.changes.send(event);
            }
        }
    }

    /// Turns a failed request into an error, marking the server gone when
    /// its connection is.
    fn request_error(&self, i: usize, e: SessionError) -> McpError {
        let server = &self.servers[i];
        let name = server.spec.name.clone();
        match e {
            SessionError::Closed => {
                let reason = "the connection closed (the server exited or ended the session); \
                              the next request reconnects"
                    .to_owned();
                self.lost(i, &reason);
                McpError::Unavailable {
                    server: name,
                    reason,
                }
            }
            SessionError::Timeout => McpError::Timeout {
                server: name,
                timeout: self.call_timeout,
            },
            SessionError::Failed(message) => McpError::Server {
                server: name,
                message: redact(&message).into_owned(),
            },
        }
    }

    /// Server `i` lost its connection: say why. (The closed session is
    /// replaced by the next request that needs one.)
    fn lost(&self, i: usize, reason: &str) {
        let server = &self.servers[i];
        *write(&server.error) = Some(reason.to_owned());
        tracing::warn!(server = %server.spec.name, %reason, "MCP server lost");
    }
}

/// The hook a session calls when its server's tools change: mark the
/// server stale and list its tools again in the background (a run's next
/// turn waits for it, see `list_tools`).
fn tools_changed(weak: &Weak<Inner>, i: usize) {
    let Some(inner) = weak.upgrade() else { return };
    inner.servers[i].stale.store(true, Ordering::Release);
    inner.announced.fetch_add(1, Ordering::AcqRel);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move { inner.relist_stale().await });
    }
}

/// Where a tool on offer comes from: its server and its name there (the
/// name it is offered under can change when a collision comes or goes).
fn origin<'a>(index: &'a Index, def: &ToolDef) -> Option<(usize, &'a str)> {
    let route = index.routes.get(&def.name)?;
    Some((route.server, route.tool.as_str()))
}

/// An index's tools by origin.
fn by_origin(index: &Index) -> HashMap<(usize, &str), &ToolDef> {
    index
        .defs
        .iter()
        .filter_map(|d| Some((origin(index, d)?, d)))
        .collect()
}

/// What changed between two indexes, tool by tool, in index order.
fn diff(old: &Index, new: &Index) -> Vec<ToolEvent> {
    let (before, after) = (by_origin(old), by_origin(new));
    let event = |change, (_, tool): (usize, &str), def: &ToolDef| ToolEvent {
        change,
        server: def.server.clone().unwrap_or_default(),
        tool: tool.to_owned(),
    };
    let mut events = Vec::new();
    for def in new.defs.iter() {
        let Some(from) = origin(new, def) else {
            continue;
        };
        match before.get(&from) {
            None => events.push(event(ToolChange::Added, from, def)),
            Some(prev) if *prev != def => events.push(event(ToolChange::Updated, from, def)),
            Some(_) => {}
        }
    }
    for def in old.defs.iter() {
        let Some(from) = origin(old, def) else {
            continue;
        };
        if !after.contains_key(&from) {
            events.push(event(ToolChange::Removed, from, def));
        }
    }
    events
}

#[async_trait]
impl ToolHost for McpRegistry {
    async fn list_tools(&self) -> Result<Arc<[ToolDef]>, ToolError> {
        self.inner.relist_stale().await;
        Ok(read(&self.inner.index).defs.clone())
    }

    fn tools_at_hand(&self) -> Option<Arc<[ToolDef]>> {
        // A server said its tools changed: list_tools waits for the new list.
        if self.inner.behind() {
            return None;
        }
        Some(read(&self.inner.index).defs.clone())
    }

    async fn call(&self, name: &str, args: &Value, _call_id: &str) -> Result<Value, ToolError> {
        let inner = &self.inner;
        let index = read(&inner.index).clone();
        let Some(route) = index.routes.get(name) else {
            return Err(ToolError::NotFound {
                tool: name.to_owned(),
                available: index.defs.iter().map(|d| d.name.clone()).collect(),
            });
        };
        let args = match args {
            Value::Object(map) => Some(map.clone()),
            Value::Null => None,
            other => {
                return Err(ToolError::InvalidArguments {
                    tool: name.to_owned(),
                    message: format!("MCP tools take an object of arguments, not {other}"),
                });
            }
        };
        let session = inner
            .session(route.server)
            .await
            .map_err(|e| ToolError::Unavailable {
                tool: name.to_owned(),
                reason: e.to_string(),
            })?;
        let call = CallContext::current();
        let outcome = session
            .call(&route.tool, args, inner.call_timeout, call.as_ref())
            .await;
        match outcome {
            Ok(out) if out.is_error => Err(ToolError::failed(match out.output {
                Value::String(s) => s,
                other => other.to_string(),
            })),
            Ok(out) => Ok(out.output),
            Err(SessionError::Timeout) => Err(ToolError::Timeout {
                tool: name.to_owned(),
                timeout: inner.call_timeout,
            }),
            Err(e) => Err(match inner.request_error(route.server, e) {
                McpError::Unavailable { server, reason } => ToolError::Unavailable {
                    tool: name.to_owned(),
                    reason: format!("MCP server `{server}`: {reason}"),
                },
                other => ToolError::failed(other.to_string()),
            }),
        }
    }
}
