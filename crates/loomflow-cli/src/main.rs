//! The `loomflow` command-line tool.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use loomflow::config::AgentConfig;
use loomflow::{Agent, AgentBuilder, EventKind, ModelChunk, PromptCache, RunRequest};

mod audit;
mod journal;
mod mcp;
mod memory;
mod queue;
mod workflow;

/// Run loomflow agents and workflows from the command line.
#[derive(Debug, Parser)]
#[command(name = "loomflow", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an agent on a prompt (`run PROMPT`), or a workflow file on an
    /// input (`run FILE.toml INPUT`).
    Run(Box<RunArgs>),
    /// Print a workflow file's graph.
    Graph(GraphArgs),
    /// Send a signal to a parked run (an approval waiting for a person).
    Signal(journal::SignalArgs),
    /// Inspect or prune the journal of durable runs.
    #[command(subcommand)]
    Journal(journal::JournalCommand),
    /// Show, export or erase what long-term memory holds about a user.
    #[command(subcommand)]
    Memory(memory::MemoryCommand),
    /// Queue a run in Postgres for a worker to execute.
    Submit(queue::SubmitArgs),
    /// Execute queued runs (run any number, on any number of machines).
    Worker(queue::WorkerArgs),
    /// Show a queued run: its status and result, optionally its events.
    Status(queue::StatusArgs),
    /// Verify or show an audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Serve an agent or a workflow as an MCP server.
    #[command(subcommand)]
    Mcp(mcp::McpCommand),
    /// Print the version.
    Version,
}

#[derive(Debug, clap::Args)]
struct GraphArgs {
    /// The workflow file (TOML).
    file: PathBuf,
    /// Diagram format.
    #[arg(long, short, value_enum, default_value_t = GraphFormat::Mermaid)]
    format: GraphFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum GraphFormat {
    /// A Mermaid flowchart (renders on GitHub).
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The prompt, or a workflow file when INPUT follows.
    prompt: String,
    /// The workflow's input (makes the first argument a workflow file).
    input: Option<String>,
    /// Agent config file (TOML).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Model string (overrides the config), e.g. "echo".
    #[arg(long, short)]
    model: Option<String>,
    /// Instructions (overrides the config).
    #[arg(long, short)]
    instructions: Option<String>,
    /// User id the run belongs to.
    #[arg(long, short)]
    user: Option<String>,
    /// Session id to continue.
    #[arg(long, short)]
    session: Option<String>,
    /// Response tone: a preset (casual, professional, technical, legal,
    /// finance, executive, academic) or free text.
    #[arg(long, short)]
    tone: Option<String>,
    /// Reasoning effort for this run: minimal, low, medium, high, xhigh or
    /// max (clamped to what the model accepts).
    #[arg(long)]
    effort: Option<String>,
    /// Fail instead of dropping an effort the model cannot honour.
    #[arg(long)]
    strict_effort: bool,
    /// Turn prompt caching on, optionally with its lifetime (5m or 1h).
    #[arg(long, value_name = "TTL", num_args = 0..=1, default_missing_value = "5m")]
    prompt_caching: Option<String>,
    /// Print text as it arrives and tool calls as they happen.
    #[arg(long)]
    stream: bool,
    /// Print JSON: the final result as one object, or with --stream one event
    /// per line.
    #[arg(long)]
    json: bool,
    /// Where the run is journaled: memory, sqlite, sqlite:PATH or
    /// postgres://… (default: the config's `runtime`, else
    /// sqlite:.loomflow/journal.db). Re-running a crashed session with the
    /// same prompt resumes it.
    #[arg(long, value_name = "SPEC")]
    runtime: Option<String>,
    /// Long-term memory for the agent (or the workflow's agents): inmemory,
    /// sqlite:PATH, … (default: the config's or workflow file's `memory`,
    /// else none). The run is seeded from the user's memory and stored in
    /// it; with a remote model, facts are extracted in the background and
    /// the command waits up to 30 s for them before it exits.
    #[arg(long, value_name = "SPEC")]
    memory: Option<String>,
    /// Print the run's span tree on stderr as it happens (besides the
    /// config's or workflow file's `telemetry`, if any).
    #[arg(long)]
    trace: bool,
}

impl RunArgs {
    /// The arguments of a run of the agent config (or workflow file) `file`
    /// with nothing overridden, for commands that build the agent the way
    /// `run` does.
    pub(crate) fn for_file(
        file: &std::path::Path,
        runtime: Option<String>,
        memory: Option<String>,
    ) -> Self {
        Self {
            prompt: String::new(),
            input: None,
            config: Some(file.to_owned()),
            model: None,
            instructions: None,
            user: None,
            session: None,
            tone: None,
            effort: None,
            strict_effort: false,
            prompt_caching: None,
            stream: false,
            json: false,
            runtime,
            memory,
            trace: false,
        }
    }
}

/// The telemetry a run records to: the console tree with `--trace`, plus
/// what the config names (`telemetry = "console" | "file:…" | "otel"`).
pub(crate) fn telemetry(
    trace: bool,
    spec: Option<&loomflow::telemetry::TelemetrySpec>,
) -> Result<Option<loomflow::telemetry::Telemetry>, String> {
    use loomflow::telemetry::{ConsoleSink, Telemetry, TelemetrySpec};
    let mut builder = Telemetry::builder();
    let mut any = false;
    if trace {
        builder = builder.sink(ConsoleSink::stderr());
        any = true;
    }
    match spec {
        // --trace already prints the tree.
        Some(TelemetrySpec::Console) if trace => {}
        Some(TelemetrySpec::None) | None => {}
        Some(spec) => {
            builder = loomflow::attach_telemetry(spec, builder).map_err(|e| e.to_string())?;
            any = true;
        }
    }
    Ok(any.then(|| builder.build()))
}

fn builder(
    args: &RunArgs,
    config: Option<AgentConfig>,
) -> Result<AgentBuilder, loomflow::ConfigError> {
    let mut b = match config {
        Some(config) => config.into_builder()?,
        None => Agent::builder(),
    };
    if let Some(m) = &args.model {
        b = b.model(m.as_str());
    }
    if let Some(i) = &args.instructions {
        b = b.instructions(i.clone());
    }
    if args.strict_effort {
        b = b.strict_effort(true);
    }
    if let Some(ttl) = &args.prompt_caching {
        b = b.prompt_caching(PromptCache::new().ttl(ttl.parse()?));
    }
    Ok(b)
}

fn request(agent: &Agent, args: &RunArgs) -> Result<RunRequest, loomflow::ConfigError> {
    let mut r = agent.run(args.prompt.clone());
    if let Some(e) = &args.effort {
        r = r.effort(e.parse()?);
    }
    if let Some(u) = &args.user {
        r = r.user(u.as_str());
    }
    if let Some(s) = &args.session {
        r = r.session(s.as_str());
    }
    if let Some(t) = &args.tone {
        r = r.tone(t.as_str());
    }
    Ok(r)
}

/// Prints a finished run: the whole result as JSON, or its output text (and
/// the interruption reason on stderr).
pub(crate) fn print_result(
    out: &mut impl Write,
    json: bool,
    result: &impl serde::Serialize,
    output: &str,
    interruption_reason: Option<&str>,
) -> Result<(), String> {
    if json {
        let json = serde_json::to_string(result).map_err(|e| e.to_string())?;
        let _ = writeln!(out, "{json}");
    } else {
        let _ = writeln!(out, "{output}");
        if let Some(reason) = interruption_reason {
            eprintln!("(interrupted: {reason})");
        }
    }
    Ok(())
}

async fn run(args: RunArgs) -> Result<(), String> {
    if let Some(input) = &args.input {
        return workflow::run(&args, PathBuf::from(&args.prompt), input.clone()).await;
    }
    let (agent, telemetry) = prepare_agent(&args).await?;
    let outcome = run_agent(&agent, &args).await;
    drain_background().await;
    if let Some(t) = &telemetry {
        t.flushed().await;
    }
    outcome
}

/// The agent `args` describe, with everything its config names opened: the
/// journal, memory, audit log, telemetry and MCP servers.
pub(crate) async fn prepare_agent(
    args: &RunArgs,
) -> Result<(Agent, Option<loomflow::telemetry::Telemetry>), String> {
    let mut config = match &args.config {
        Some(path) => Some(AgentConfig::from_file(path).map_err(|e| e.to_string())?),
        None => None,
    };
    // The audit log is opened here, whatever its backend (the config's own
    // builder opens files only).
    let audit = match config.as_mut() {
        Some(c) => {
            let spec = c.audit_spec().map_err(|e| e.to_string())?;
            c.audit_log = None;
            spec
        }
        None => None,
    };
    // Telemetry too (OTLP export lives outside the config's builder).
    let telemetry = match config.as_mut() {
        Some(c) => {
            let spec = c.telemetry_spec().map_err(|e| e.to_string())?;
            c.telemetry = None;
            telemetry(args.trace, spec.as_ref())?
        }
        None => telemetry(args.trace, None)?,
    };
    // MCP servers are connected here (the builder cannot: connecting is
    // asynchronous).
    let mcp_servers = config.as_mut().and_then(|c| c.mcp.take());
    let configured = match &config {
        Some(c) => c.runtime_spec().map_err(|e| e.to_string())?,
        None => None,
    };
    let spec = journal::spec(args.runtime.as_deref(), configured)?;
    let journal = loomflow::open_journal(&spec)
        .await
        .map_err(|e| e.to_string())?;
    let configured = match &config {
        Some(c) => c.memory_spec().map_err(|e| e.to_string())?,
        None => None,
    };
    let mut b = builder(args, config)
        .map_err(|e| e.to_string())?
        .journal(journal);
    if let Some(spec) = audit {
        let log = loomflow::open_audit_log(&spec)
            .await
            .map_err(|e| e.to_string())?;
        b = b.audit_log_arc(log);
    }
    if let Some((spec, memory)) = open_memory(args.memory.as_deref(), configured).await? {
        b = b.memory(memory);
        if !spec.with_facts {
            b = b
                .memory_options(loomflow::agent::MemoryOptions::default().facts(0))
                .auto_extract(false);
        }
    }
    if let Some(t) = &telemetry {
        b = b.telemetry(t.clone());
    }
    if let Some(servers) = &mcp_servers {
        let registry = loomflow::open_mcp(servers).await.map_err(|e| {
            let file = args
                .config
                .as_deref()
                .unwrap_or(std::path::Path::new("config"));
            format!("{}: {e}", file.display())
        })?;
        warn_unavailable("", &registry);
        b = b.tool_host(registry);
    }
    let agent = b.build().map_err(|e| e.to_string())?;
    Ok((agent, telemetry))
}

/// Warns on stderr about each of `registry`'s servers that could not start
/// (`whose` prefixes the line, as `agents.coder: `).
pub(crate) fn warn_unavailable(whose: &str, registry: &loomflow::mcp::McpRegistry) {
    for server in registry.status() {
        if let Some(error) = &server.error {
            eprintln!(
                "warning: {whose}MCP server `{}` is unavailable: {error}",
                server.name
            );
        }
    }
}

/// The memory `--memory` names, else the configured one, opened.
pub(crate) async fn open_memory(
    flag: Option<&str>,
    configured: Option<loomflow::memory::MemorySpec>,
) -> Result<
    Option<(
        loomflow::memory::MemorySpec,
        Arc<dyn loomflow::memory::Memory>,
    )>,
    String,
> {
    let spec = match flag {
        Some(flag) => Some(
            flag.parse()
                .map_err(|e: loomflow::ConfigError| e.to_string())?,
        ),
        None => configured,
    };
    let Some(spec) = spec else {
        return Ok(None);
    };
    let memory = loomflow::open_memory(&spec)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some((spec, memory)))
}

/// Waits for background fact extraction before the process exits.
pub(crate) async fn drain_background() {
    let left = loomflow::memory::drain_all(std::time::Duration::from_secs(30)).await;
    if left > 0 {
        eprintln!("warning: {left} background fact extraction(s) did not finish within 30 s");
    }
}

async fn run_agent(agent: &Agent, args: &RunArgs) -> Result<(), String> {
    let request = request(agent, args).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    if !args.stream {
        let result = request.await.map_err(|e| e.to_string())?;
        let reason = result.interruption_reason.as_deref();
        return print_result(&mut out, args.json, &result, &result.output, reason);
    }

    let mut events = request.stream();
    let mut failure = None;
    while let Some(event) = events.next().await {
        if args.json {
            let json = serde_json::to_string(&event).map_err(|e| e.to_string())?;
            let _ = writeln!(out, "{json}");
            if let EventKind::Error { message, .. } = &event.kind {
                failure = Some(message.clone());
            }
            continue;
        }
        match &event.kind {
            EventKind::ModelChunk {
                chunk: ModelChunk::Text { text },
            } => {
                let _ = write!(out, "{text}");
                let _ = out.flush();
            }
            EventKind::ToolCall { call } => {
                let _ = writeln!(out, "\n→ {}({})", call.tool, call.args);
            }
            kind @ EventKind::ToolProgress { .. } => {
                if let Some(line) = kind.progress_line() {
                    let _ = writeln!(out, "  … {line}");
                }
            }
            EventKind::ToolResult { result } => {
                let text = result.to_model_text();
                let short: String = text.chars().take(200).collect();
                let ellipsis = if short.len() < text.len() { "…" } else { "" };
                let _ = writeln!(out, "← {short}{ellipsis}");
            }
            EventKind::Completed { result } => {
                let _ = writeln!(out);
                if let Some(reason) = result["interruption_reason"].as_str() {
                    eprintln!("(interrupted: {reason})");
                }
            }
            EventKind::Error { message, .. } => failure = Some(message.clone()),
            _ => {}
        }
    }
    match failure {
        Some(message) => Err(message),
        None => Ok(()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("loomflow {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Graph(args) => match loomflow::Workflow::from_file(&args.file) {
            Ok(wf) => {
                match args.format {
                    GraphFormat::Mermaid => println!("{}", wf.to_mermaid()),
                    GraphFormat::Dot => println!("{}", wf.to_dot()),
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => block_on(run(*args)),
        Command::Signal(args) => block_on(journal::signal(args)),
        Command::Journal(command) => block_on(journal::journal(command)),
        Command::Memory(command) => block_on(memory::memory(command)),
        Command::Submit(args) => block_on(queue::submit(args)),
        Command::Worker(args) => block_on(queue::worker(args)),
        Command::Status(args) => block_on(queue::status(args)),
        Command::Audit(command) => block_on(audit::audit(command)),
        Command::Mcp(command) => block_on(mcp::mcp(command)),
    }
}

fn block_on(fut: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
