//! Serving an agent or a workflow as an MCP server (feature `server`): any
//! MCP client (an IDE, another agent) calls its run as a tool, over stdio or
//! Streamable HTTP.
//!
//! - The run is one tool, named after the agent or workflow: `prompt` (an
//!   agent; a workflow takes `input`, any JSON) and an optional `session`
//!   to continue. It answers with the run's output; the whole result (ids,
//!   turns, tokens, interruption) is its structured content.
//! - The agent's own tools can be offered next to it
//!   ([`McpService::reexport_tools`]): those that are not destructive.
//!   Destructive ones stay behind the agent's permission gate, reachable
//!   only through a run.
//! - **Who is calling** comes from the connection, never from an argument:
//!   over stdio, the user the server was started for
//!   ([`McpService::serve_stdio`]); over HTTP, the bearer token each request
//!   carries ([`HttpAuth::Bearer`]), or the anonymous bucket when the server
//!   is open ([`HttpAuth::Open`]). Memory, journal, budget and audit log are
//!   partitioned by that user, as for any run.

#![allow(deprecated)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures_util::StreamExt as _;
use loomflow_core::id::UserId;
use loomflow_core::{Agent, Event, EventKind, RunContext, ToolDef};
use loomflow_workflow::Workflow;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData,
    Implementation, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
    ProgressToken, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ServerHandler, ServiceExt};
use serde_json::{Map, Value, json};

/// Why serving stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The MCP handshake or the transport failed.
    #[error("MCP serving failed: {0}")]
    Mcp(String),
    /// The HTTP listener failed.
    #[error("MCP over HTTP failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What is served.
#[derive(Clone)]
enum Target {
    Agent(Agent),
    Workflow(Workflow),
}

/// An agent or a workflow, ready to be served over MCP (see the
/// [module docs](self)).
///
/// ```no_run
/// use loomflow_core::{Agent, UserId};
/// use loomflow_mcp::serve::{HttpAuth, McpService};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let agent = Agent::builder().name("helper").model("echo").build()?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8808").await?;
/// let tokens = [("s3cret-token".to_owned(), UserId::try_from("alice")?)];
/// McpService::agent(agent)
///     .serve_http(listener, HttpAuth::bearer(tokens), std::future::pending())
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct McpService {
    target: Target,
    tool: String,
    description: String,
    reexport: bool,
    /// `Host` values HTTP requests may carry, besides loopback's.
    hosts: Vec<String>,
    /// Plain JSON answers, no sessions.
    json: bool,
}

impl std::fmt::Debug for McpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpService")
            .field("tool", &self.tool)
            .field("reexport", &self.reexport)
            .finish_non_exhaustive()
    }
}

/// Who may call over HTTP, and as which user.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum HttpAuth {
    /// Anyone; every call runs as the anonymous user. For loopback use.
    Open,
    /// Each request carries `Authorization: Bearer <token>`; the token names
    /// the user. A request without a known token is refused (401).
    Bearer(Arc<HashMap<String, UserId>>),
}

impl HttpAuth {
    /// Bearer tokens and the user each one is.
    pub fn bearer(tokens: impl IntoIterator<Item = (String, UserId)>) -> Self {
        Self::Bearer(Arc::new(tokens.into_iter().collect()))
    }
}

/// The name of a tool any provider accepts: `[A-Za-z0-9_-]{1,64}`.
fn valid_tool_name(name: &str) -> String {
    match crate::names::valid(name) {
        empty if empty.is_empty() => "run".to_owned(),
        valid => valid,
    }
}

impl McpService {
    /// Serves `agent`: its run is the tool named after it (`agent` when it
    /// has no name).
    pub fn agent(agent: Agent) -> Self {
        let name = agent.name().unwrap_or("agent").to_owned();
        Self {
            tool: valid_tool_name(&name),
            description: format!(
                "Asks the loomflow agent `{name}`: give it a `prompt`; it answers with its reply. \
                 Pass the `session` from an earlier answer to continue that conversation."
            ),
            target: Target::Agent(agent),
            reexport: false,
            hosts: Vec::new(),
            json: false,
        }
    }

    /// Serves `workflow`: its run is the tool named after it.
    pub fn workflow(workflow: Workflow) -> Self {
        let name = workflow.name().to_owned();
        Self {
            tool: valid_tool_name(&name),
            description: format!(
                "Runs the loomflow workflow `{name}` on `input` (any JSON) and answers with its \
                 output. Pass the `session` from an earlier answer to continue it."
            ),
            target: Target::Workflow(workflow),
            reexport: false,
            hosts: Vec::new(),
            json: false,
        }
    }

    /// Names the run tool `name` instead.
    pub fn tool_name(mut self, name: &str) -> Self {
        self.tool = valid_tool_name(name);
        self
    }

    /// Describes the run tool with `description` instead.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Offers the agent's tools that are not destructive next to its run
    /// (a workflow has none of its own).
    pub fn reexport_tools(mut self, on: bool) -> Self {
        self.reexport = on;
        self
    }

    /// Accepts HTTP requests addressed to `hosts` (`mcp.example.com`,
    /// `10.0.0.5:8808`) besides loopback. Requests for any other `Host` are
    /// refused, which guards a local server against DNS rebinding.
    pub fn allow_hosts(mut self, hosts: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.hosts.extend(hosts.into_iter().map(Into::into));
        self
    }

    /// Over HTTP, answers each request with plain JSON and keeps no
    /// session (stateless), instead of event streams in a session; a call
    /// that reports progress still streams.
    pub fn json_responses(mut self, on: bool) -> Self {
        self.json = on;
        self
    }

    /// Serves one client on stdin/stdout until it hangs up. Every call runs
    /// as `user` (whoever started this process).
    pub async fn serve_stdio(self, user: UserId) -> Result<(), ServeError> {
        let handler = Handler {
            service: Arc::new(self),
            user: Some(user),
        };
        let running = handler
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| ServeError::Mcp(e.to_string()))?;
        running
            .waiting()
            .await
            .map_err(|e| ServeError::Mcp(e.to_string()))?;
        Ok(())
    }

    /// Serves MCP's Streamable HTTP transport at `/mcp` on `listener`
    /// until `shutdown` completes. Each request is authenticated by `auth`.
    pub async fn serve_http(
        self,
        listener: tokio::net::TcpListener,
        auth: HttpAuth,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        axum::serve(listener, self.router(auth))
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }

    /// The HTTP routes (`/mcp`), to mount in an axum app of your own.
    pub fn router(self, auth: HttpAuth) -> axum::Router {
        use rmcp::transport::streamable_http_server::{
            StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
        };
        let mut config = StreamableHttpServerConfig::default();
        if !self.hosts.is_empty() {
            let mut hosts = config.allowed_hosts.clone();
            hosts.extend(self.hosts.iter().cloned());
            config = config.with_allowed_hosts(hosts);
        }
        if self.json {
            config.legacy_session_mode = false;
            config.json_response = true;
        }
        let service = Arc::new(self);
        let mcp = StreamableHttpService::new(
            move || {
                Ok(Handler {
                    service: service.clone(),
                    user: None,
                })
            },
            Arc::new(LocalSessionManager::default()),
            config,
        );
        axum::Router::new()
            .route_service("/mcp", mcp)
            .layer(axum::middleware::from_fn(move |request, next| {
                authenticate(auth.clone(), request, next)
            }))
    }
}

/// Resolves the caller: the user a bearer token names goes into the
/// request's extensions (where the handler finds it); an unknown or
/// missing token is a 401.
async fn authenticate(
    auth: HttpAuth,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let user = match &auth {
        HttpAuth::Open => UserId::anonymous(),
        HttpAuth::Bearer(tokens) => {
            let token = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            match token.and_then(|t| tokens.get(t.trim())) {
                Some(user) => user.clone(),
                None => {
                    return (
                        http::StatusCode::UNAUTHORIZED,
                        [(http::header::WWW_AUTHENTICATE, "Bearer")],
                        "a known bearer token is required (Authorization: Bearer <token>)",
                    )
                        .into_response();
                }
            }
        }
    };
    request.extensions_mut().insert(Caller(user));
    next.run(request).await
}

/// The authenticated user of an HTTP request.
#[derive(Debug, Clone)]
struct Caller(UserId);

/// One client's view of the service.
#[derive(Clone)]
struct Handler {
    service: Arc<McpService>,
    /// The user of a stdio server; HTTP requests carry theirs.
    user: Option<UserId>,
}

impl Handler {
    fn caller(&self, context: &RequestContext<RoleServer>) -> Result<UserId, ErrorData> {
        if let Some(user) = &self.user {
            return Ok(user.clone());
        }
        context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>())
            .map(|c| c.0.clone())
            .ok_or_else(|| ErrorData::invalid_request("the caller is not authenticated", None))
    }

    fn run_tool(&self) -> Tool {
        let schema = match &self.service.target {
            Target::Agent(_) => json!({
                "type": "object",
                "properties": {
                    "prompt": {"type": "string", "description": "What to ask."},
                    "session": {"type": "string", "description": "A session id from an earlier answer, to continue it."}
                },
                "required": ["prompt"]
            }),
            Target::Workflow(_) => json!({
                "type": "object",
                "properties": {
                    "input": {"description": "The workflow's input (any JSON)."},
                    "session": {"type": "string", "description": "A session id from an earlier answer, to continue it."}
                },
                "required": ["input"]
            }),
        };
        let schema = schema.as_object().cloned().unwrap_or_default();
        Tool::new(
            self.service.tool.clone(),
            self.service.description.clone(),
            Arc::new(schema),
        )
        .annotate(ToolAnnotations::new().destructive(false).open_world(true))
    }

    /// The agent's tools offered next to its run.
    async fn reexported(&self) -> Vec<ToolDef> {
        match (&self.service.target, self.service.reexport) {
            (Target::Agent(agent), true) => agent
                .tool_host()
                .list_tools()
                .await
                .map(|defs| {
                    defs.iter()
                        .filter(|d| !d.destructive && d.name != self.service.tool)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    async fn run(
        &self,
        user: UserId,
        args: Map<String, Value>,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let session = match args.get("session") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return CallToolResult::error(vec![ContentBlock::text(format!(
                    "`session` must be a string, not {other}"
                ))]);
            }
        };
        // A client that asked for progress hears of each tool call and each
        // tool's own progress; a cancelled request stops the run.
        let progress = context
            .meta
            .get_progress_token()
            .map(|token| Progress::new(token, context.peer.clone()));
        // An agent's and a workflow's requests and streams are different
        // types with the same shape: start `$run` with the user and session,
        // plainly or following its events for the client.
        macro_rules! drive {
            ($run:expr) => {{
                let mut run = $run.user(user);
                if let Some(s) = session {
                    run = run.session(s);
                }
                match progress {
                    None => run.await,
                    Some(mut progress) => {
                        let mut events = run.stream();
                        progress.follow(&mut events).await;
                        events.result().await
                    }
                }
                .map_err(|e| e.to_string())
            }};
        }
        let run = async {
            match &self.service.target {
                Target::Agent(agent) => {
                    let Some(prompt) = args.get("prompt").and_then(Value::as_str) else {
                        return Err("`prompt` (a string) is required".to_owned());
                    };
                    drive!(agent.run(prompt)).map(|r| (r.output.clone(), to_json(&r)))
                }
                Target::Workflow(workflow) => {
                    let Some(input) = args.get("input") else {
                        return Err("`input` is required".to_owned());
                    };
                    drive!(workflow.run(input.clone())).map(|r| {
                        let text = match &r.output {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (text, to_json(&r))
                    })
                }
            }
        };
        let outcome = tokio::select! {
            outcome = run => outcome,
            () = context.ct.cancelled() => Err("cancelled by the client".to_owned()),
        };
        match outcome {
            Ok((text, mut result)) => {
                if let Value::Object(r) = &mut result {
                    // The transcript stays on the server.
                    r.remove("messages");
                }
                let mut out = CallToolResult::success(vec![ContentBlock::text(text)]);
                out.structured_content = Some(result);
                out
            }
            Err(e) => CallToolResult::error(vec![ContentBlock::text(
                loomflow_core::redact::redact(&e).into_owned(),
            )]),
        }
    }
}

/// A run's result as JSON, for the structured content.
fn to_json(result: &impl serde::Serialize) -> Value {
    serde_json::to_value(result).unwrap_or(Value::Null)
}

/// Progress notifications to a client that asked for them.
struct Progress {
    token: ProgressToken,
    peer: rmcp::Peer<RoleServer>,
    sent: f64,
}

impl Progress {
    fn new(token: ProgressToken, peer: rmcp::Peer<RoleServer>) -> Self {
        Self {
            token,
            peer,
            sent: 0.0,
        }
    }

    /// Tells the client what a run's `events` say, until they end.
    async fn follow(&mut self, events: &mut (impl futures_util::Stream<Item = Event> + Unpin)) {
        while let Some(event) = events.next().await {
            self.tell(&event.kind).await;
        }
    }

    /// Tells the client about a tool call or a tool's progress.
    async fn tell(&mut self, event: &EventKind) {
        let message = match event {
            EventKind::ToolCall { call } => format!("calling {}", call.tool),
            kind @ EventKind::ToolProgress { .. } => match kind.progress_line() {
                Some(line) => line,
                None => return,
            },
            EventKind::WorkflowStepStarted { node, .. } => format!("step {node}"),
            _ => return,
        };
        self.sent += 1.0;
        let params =
            ProgressNotificationParam::new(self.token.clone(), self.sent).with_message(message);
        // A client that went away is the cancellation path's business.
        let _ = self.peer.notify_progress(params).await;
    }
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                format!("loomflow-{}", self.service.tool),
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(self.service.description.clone())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools = vec![self.run_tool()];
        for def in self.reexported().await {
            let Value::Object(schema) = def.input_schema else {
                continue;
            };
            tools.push(
                Tool::new(def.name, def.description, Arc::new(schema))
                    .annotate(ToolAnnotations::new().destructive(false)),
            );
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let user = self.caller(&context)?;
        let args = request.arguments.unwrap_or_default();
        if request.name == self.service.tool {
            return Ok(CallToolResponse::Complete(
                self.run(user, args, &context).await,
            ));
        }
        let Some(def) = self
            .reexported()
            .await
            .into_iter()
            .find(|d| d.name == request.name)
        else {
            return Err(ErrorData::invalid_params(
                format!("no tool `{}` here", request.name),
                None,
            ));
        };
        let Target::Agent(agent) = &self.service.target else {
            return Err(ErrorData::invalid_params(
                format!("no tool `{}` here", request.name),
                None,
            ));
        };
        let host = agent.tool_host().clone();
        let call_id = format!("mcp_{}", loomflow_core::RunId::generate().as_str());
        let call = async move { host.call(&def.name, &Value::Object(args), &call_id).await };
        let result = RunContext::new(user).scope(call).await;
        Ok(CallToolResponse::Complete(match result {
            Ok(Value::String(s)) => CallToolResult::success(vec![ContentBlock::text(s)]),
            Ok(other) => {
                let mut out = CallToolResult::success(vec![ContentBlock::text(other.to_string())]);
                out.structured_content = other.is_object().then_some(other);
                out
            }
            Err(e) => CallToolResult::error(vec![ContentBlock::text(
                loomflow_core::redact::redact(&e.to_string()).into_owned(),
            )]),
        }))
    }
}
