//! `loomflow mcp serve FILE.toml`: an agent or a workflow as an MCP server.

use std::path::PathBuf;

use loomflow::UserId;
use loomflow::mcp::serve::{HttpAuth, McpService};

use crate::RunArgs;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum McpCommand {
    /// Serve an agent config or a workflow file as an MCP server: its run
    /// is a tool any MCP client (an IDE, another agent) can call. Over stdio
    /// by default; over Streamable HTTP at `/mcp` with --http.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// An agent config or a workflow file (TOML; a file with `nodes` is a
    /// workflow).
    file: PathBuf,
    /// Serve Streamable HTTP on this address (`127.0.0.1:8808`) instead of
    /// stdio.
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// Over stdio: the user every call runs as (default: the anonymous
    /// bucket). Over HTTP each request's token says who it is.
    #[arg(long, short)]
    user: Option<String>,
    /// Over HTTP: the environment variable holding `TOKEN=USER` pairs,
    /// comma-separated. Each request must carry one of the tokens
    /// (`Authorization: Bearer TOKEN`) and runs as its user. Required for
    /// an address other than loopback.
    #[arg(long, value_name = "VAR")]
    tokens_env: Option<String>,
    /// Over HTTP: also accept requests for this `Host` (`mcp.example.com`,
    /// `10.0.0.5:8808`); loopback names always work. Needed when clients
    /// reach the server by another name; others are refused (DNS
    /// rebinding).
    #[arg(long, value_name = "HOST")]
    allow_host: Vec<String>,
    /// Over HTTP: answer with plain JSON and keep no sessions.
    #[arg(long)]
    json_responses: bool,
    /// Offer the agent's tools that are not destructive next to its run.
    #[arg(long)]
    reexport_tools: bool,
    /// Where runs are journaled (as for `run`).
    #[arg(long, value_name = "SPEC")]
    runtime: Option<String>,
    /// Long-term memory (as for `run`).
    #[arg(long, value_name = "SPEC")]
    memory: Option<String>,
}

pub(crate) async fn mcp(command: McpCommand) -> Result<(), String> {
    match command {
        McpCommand::Serve(args) => serve(args).await,
    }
}

/// True when the TOML file is a workflow (it has `nodes`).
fn is_workflow(file: &std::path::Path) -> Result<bool, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(table.contains_key("nodes"))
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let run_args = RunArgs::for_file(&args.file, args.runtime.clone(), args.memory.clone());
    let (service, telemetry) = if is_workflow(&args.file)? {
        let (wf, telemetry) = crate::workflow::prepare(&run_args, &args.file).await?;
        (McpService::workflow(wf), telemetry)
    } else {
        let (agent, telemetry) = crate::prepare_agent(&run_args).await?;
        (McpService::agent(agent), telemetry)
    };
    let service = service
        .reexport_tools(args.reexport_tools)
        .allow_hosts(args.allow_host.iter().cloned())
        .json_responses(args.json_responses);
    if args.http.is_none() && (!args.allow_host.is_empty() || args.json_responses) {
        return Err("--allow-host and --json-responses are for --http".into());
    }
    let outcome = match &args.http {
        None => {
            if args.tokens_env.is_some() {
                return Err("--tokens-env is for --http; over stdio, --user says who calls".into());
            }
            let user = match &args.user {
                Some(u) => UserId::try_from(u.as_str()).map_err(|e| e.to_string())?,
                None => UserId::anonymous(),
            };
            service.serve_stdio(user).await.map_err(|e| e.to_string())
        }
        Some(addr) => serve_http(service, addr, &args).await,
    };
    crate::drain_background().await;
    if let Some(t) = &telemetry {
        t.flushed().await;
    }
    outcome
}

async fn serve_http(service: McpService, addr: &str, args: &ServeArgs) -> Result<(), String> {
    if args.user.is_some() {
        return Err(
            "--user is for stdio; over HTTP each request's bearer token names its user (--tokens-env)"
                .into(),
        );
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let auth = match &args.tokens_env {
        Some(var) => HttpAuth::bearer(tokens(var)?),
        None if local.ip().is_loopback() => HttpAuth::Open,
        None => {
            return Err(format!(
                "{local} is reachable from other machines: give --tokens-env so each caller is \
                 authenticated (or listen on 127.0.0.1)"
            ));
        }
    };
    eprintln!("serving MCP on http://{local}/mcp");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    service
        .serve_http(listener, auth, shutdown)
        .await
        .map_err(|e| e.to_string())
}

/// The `TOKEN=USER,…` pairs in the environment variable `var`.
fn tokens(var: &str) -> Result<Vec<(String, UserId)>, String> {
    let value = std::env::var(var).map_err(|_| format!("--tokens-env: ${var} is not set"))?;
    let mut out = Vec::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((token, user)) = pair.split_once('=') else {
            return Err(format!(
                "--tokens-env: ${var} holds `TOKEN=USER` pairs, comma-separated"
            ));
        };
        let user =
            UserId::try_from(user.trim()).map_err(|e| format!("--tokens-env: ${var}: {e}"))?;
        out.push((token.trim().to_owned(), user));
    }
    if out.is_empty() {
        return Err(format!("--tokens-env: ${var} holds no tokens"));
    }
    Ok(out)
}
