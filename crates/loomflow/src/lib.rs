//! # loomflow
//!
//! A Rust framework for LLM agents and workflows that go to production.
//!
//! An [`Agent`] hands the loop to the model: tools, structured output,
//! streaming, a pluggable loop [`Architecture`]. A [`Workflow`] keeps the
//! developer in charge of the graph: nodes are async fns, Agents or other
//! Workflows; edges, routers, cycles with caps, parallel fan-out. Either
//! nests inside the other. Everything a run touches is partitioned by a
//! typed [`UserId`].
//!
//! ```
//! use loomflow::prelude::*;
//! use serde_json::json;
//!
//! /// Look up the current weather for a city.
//! ///
//! /// # Arguments
//! /// * `city` - The city to look up.
//! #[tool]
//! async fn get_weather(city: String) -> String {
//!     format!("Sunny, 22°C in {city}.")
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let agent = Agent::builder()
//!     .instructions("You are a weather assistant.")
//!     .model(ScriptedModel::new([
//!         ScriptedTurn::tool_call("get_weather", json!({"city": "Paris"})),
//!         ScriptedTurn::text("It is sunny in Paris."),
//!     ]))
//!     .tool(get_weather)
//!     .build()?;
//!
//! let result = agent.run("Weather in Paris?").user("alice").await?;
//! assert_eq!(result.output, "It is sunny in Paris.");
//! assert_eq!(result.turns, 2);
//! # Ok::<(), loomflow::Error>(())
//! # }).unwrap();
//! ```

pub use loomflow_core::*;
pub use loomflow_macros::{step, tool};

/// OTLP export of spans and metrics (see [`loomflow_otel`]).
#[cfg(feature = "otel")]
pub mod otel {
    pub use loomflow_otel::*;
}

/// MCP servers' tools as an agent's (see [`loomflow_mcp`]).
#[cfg(feature = "mcp")]
pub mod mcp {
    pub use loomflow_mcp::*;
}

/// Workflows: the developer-controlled graph (see [`Workflow`]).
pub mod workflow {
    pub use loomflow_workflow::*;
}
pub use loomflow_workflow::{END, START, Step, Workflow, WorkflowError, WorkflowResult};

/// OpenAI Chat Completions and OpenAI-compatible gateways (feature `openai`).
#[cfg(feature = "openai")]
pub mod openai {
    pub use loomflow_openai::*;
}
/// Anthropic's Messages API, Claude (feature `anthropic`).
#[cfg(feature = "anthropic")]
pub mod anthropic {
    pub use loomflow_anthropic::*;
}
/// The long tail of providers over genai: Gemini, Vertex AI, Bedrock,
/// Mistral, Cohere, Groq, Together AI, Ollama, Azure OpenAI (feature `genai`).
#[cfg(feature = "genai")]
pub mod genai {
    pub use loomflow_genai::*;
}

/// SQLite storage, the embedded default: the durable-run journal
/// (feature `sqlite`).
#[cfg(feature = "sqlite")]
pub mod sqlite {
    pub use loomflow_sqlite::*;
}

/// Postgres storage: the shared journal, the run queue and long-term memory
/// on pgvector (feature `postgres`).
#[cfg(feature = "postgres")]
pub mod postgres {
    pub use loomflow_postgres::*;
}

/// Chroma storage: long-term memory on a Chroma server (feature `chroma`).
#[cfg(feature = "chroma")]
pub mod chroma {
    pub use loomflow_chroma::*;
}

/// The local sentence embedder: all-MiniLM-L6-v2 in pure Rust, offline
/// (feature `minilm`).
#[cfg(feature = "minilm")]
pub mod minilm {
    pub use loomflow_minilm::*;
}

/// Redis storage: long-term memory (feature `redis`).
#[cfg(feature = "redis")]
pub mod redis {
    pub use loomflow_redis::*;
}

/// Opens the memory a [`MemorySpec`](memory::MemorySpec) names, with its
/// embedder: in this process, a SQLite file (its folder is created;
/// feature `sqlite`) or Postgres with pgvector (feature `postgres`; it
/// connects on first use), Redis (feature `redis`) or a Chroma server
/// (feature `chroma`), both lazy too. A backend whose feature is off is a
/// [`ConfigError`] that names the feature.
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let memory = loomflow::open_memory(&"inmemory".parse().unwrap()).await.unwrap();
/// assert_eq!(memory.backend(), "inmemory");
/// # });
/// ```
pub async fn open_memory(
    spec: &memory::MemorySpec,
) -> Result<std::sync::Arc<dyn memory::Memory>, ConfigError> {
    use memory::MemoryBackend;
    let embedder = open_embedder(&spec.embedder()?)?;
    match &spec.backend {
        MemoryBackend::InMemory => Ok(std::sync::Arc::new(memory::InMemoryMemory::with_embedder(
            embedder,
        ))),
        #[cfg(feature = "sqlite")]
        MemoryBackend::Sqlite(path) => {
            let opened = if path.as_os_str() == ":memory:" {
                loomflow_sqlite::SqliteMemory::open_in_memory()
            } else {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        ConfigError::invalid(
                            "memory",
                            format!("cannot create the memory folder `{}`: {e}", dir.display()),
                        )
                    })?;
                }
                loomflow_sqlite::SqliteMemory::open(path)
            };
            let mut m = opened
                .map_err(|e| ConfigError::invalid("memory", e.to_string()))?
                .with_embedder(embedder);
            if let Some(ns) = &spec.namespace {
                m = m.with_namespace(ns.clone());
            }
            Ok(std::sync::Arc::new(m))
        }
        #[cfg(feature = "postgres")]
        MemoryBackend::Postgres(url) => {
            // Lazy: nothing connects until the first operation, which names
            // the URL (password redacted) if the server cannot be reached.
            let mut m = loomflow_postgres::PostgresMemory::new(url)
                .map_err(|e| ConfigError::invalid("memory", e.to_string()))?
                .with_embedder(embedder);
            if let Some(ns) = &spec.namespace {
                m = m.with_namespace(ns.clone());
            }
            Ok(std::sync::Arc::new(m))
        }
        #[cfg(feature = "redis")]
        MemoryBackend::Redis(url) => {
            // Lazy, like Postgres.
            let mut m = loomflow_redis::RedisMemory::new(url)
                .map_err(|e| ConfigError::invalid("memory", e.to_string()))?
                .with_embedder(embedder);
            if let Some(ns) = &spec.namespace {
                m = m.with_namespace(ns.clone());
            }
            Ok(std::sync::Arc::new(m))
        }
        #[cfg(feature = "chroma")]
        MemoryBackend::Chroma(url) => {
            let url = url.as_deref().unwrap_or(loomflow_chroma::DEFAULT_URL);
            let mut m = loomflow_chroma::ChromaMemory::new(url)
                .map_err(|e| ConfigError::invalid("memory", e.to_string()))?
                .with_embedder(embedder);
            if let Some(ns) = &spec.namespace {
                m = m.with_namespace(ns.clone());
            }
            Ok(std::sync::Arc::new(m))
        }
        #[allow(unreachable_patterns)]
        other => Err(ConfigError::invalid(
            "memory",
            match other {
                MemoryBackend::Sqlite(_) => {
                    format!("`{spec}` needs the loomflow crate's `sqlite` feature")
                }
                MemoryBackend::Postgres(_) => {
                    format!("`{spec}` needs the loomflow crate's `postgres` feature")
                }
                MemoryBackend::Redis(_) => {
                    format!("`{spec}` needs the loomflow crate's `redis` feature")
                }
                _ => format!("`{spec}` needs the loomflow crate's `chroma` feature"),
            },
        )),
    }
}

/// The embedder an [`EmbedderSpec`](memory::EmbedderSpec) names.
pub fn open_embedder(
    spec: &memory::EmbedderSpec,
) -> Result<std::sync::Arc<dyn Embedder>, ConfigError> {
    use memory::EmbedderSpec;
    match spec {
        EmbedderSpec::Hash(n) => Ok(std::sync::Arc::new(memory::HashEmbedder::new(*n))),
        #[cfg(feature = "openai")]
        EmbedderSpec::OpenAi(model) => Ok(std::sync::Arc::new(
            loomflow_openai::OpenAiEmbedder::builder(model.clone()).build()?,
        )),
        #[cfg(feature = "minilm")]
        EmbedderSpec::Local(dir) => match loomflow_minilm::MiniLmEmbedder::open(dir) {
            Ok(embedder) => Ok(std::sync::Arc::new(embedder)),
            Err(e) => Err(ConfigError::invalid("memory.embedder", e.to_string())),
        },
        #[allow(unreachable_patterns)]
        other => Err(ConfigError::invalid(
            "memory.embedder",
            match other {
                EmbedderSpec::OpenAi(_) => {
                    "the OpenAI embedder needs the loomflow crate's `openai` feature".to_owned()
                }
                _ => "the local MiniLM embedder needs the loomflow crate's `minilm` feature"
                    .to_owned(),
            },
        )),
    }
}

/// Opens the journal a [`RuntimeSpec`](journal::RuntimeSpec) names:
/// in memory, a SQLite file (its folder is created; feature `sqlite`), or a
/// Postgres database (feature `postgres`). A backend whose feature is off is
/// a [`ConfigError`] that says which feature to turn on.
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let journal = loomflow::open_journal(&"memory".parse().unwrap()).await.unwrap();
/// assert_eq!(journal.backend(), "memory");
/// # });
/// ```
pub async fn open_journal(
    spec: &journal::RuntimeSpec,
) -> Result<std::sync::Arc<dyn journal::Journal>, ConfigError> {
    use journal::RuntimeSpec;
    match spec {
        RuntimeSpec::Memory => Ok(std::sync::Arc::new(journal::InMemoryJournal::new())),
        #[cfg(feature = "sqlite")]
        RuntimeSpec::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    ConfigError::invalid(
                        "runtime",
                        format!("cannot create the journal folder `{}`: {e}", dir.display()),
                    )
                })?;
            }
            let j = loomflow_sqlite::SqliteJournal::open(path)
                .map_err(|e| ConfigError::invalid("runtime", e.to_string()))?;
            Ok(std::sync::Arc::new(j))
        }
        #[cfg(feature = "postgres")]
        RuntimeSpec::Postgres(url) => {
            let j = loomflow_postgres::PostgresJournal::connect(url)
                .await
                .map_err(|e| ConfigError::invalid("runtime", e.to_string()))?;
            Ok(std::sync::Arc::new(j))
        }
        #[allow(unreachable_patterns)]
        other => Err(ConfigError::invalid(
            "runtime",
            format!(
                "`{other}` needs the loomflow crate's `{}` feature",
                match other {
                    RuntimeSpec::Postgres(_) => "postgres",
                    _ => "sqlite",
                }
            ),
        )),
    }
}

/// Opens the audit log an [`AuditSpec`](audit::AuditSpec) names, signed
/// with the key in its `secret_env` variable: a JSONL file, a SQLite file
/// (its folder is created; feature `sqlite`) or a Postgres database
/// (feature `postgres`; it connects and creates the table now). A backend
/// whose feature is off is a [`ConfigError`] that names the feature.
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let spec = loomflow::audit::AuditSpec::new(
///     loomflow::audit::AuditBackend::File(dir.path().join("audit.jsonl")),
/// );
/// let log = loomflow::open_audit_log(&spec).await.unwrap();
/// assert!(log.verify(None).await.unwrap().ok);
/// # });
/// ```
pub async fn open_audit_log(
    spec: &audit::AuditSpec,
) -> Result<std::sync::Arc<dyn audit::AuditLog>, ConfigError> {
    use audit::AuditBackend;
    match &spec.backend {
        AuditBackend::File(_) => spec.open(),
        #[cfg(feature = "sqlite")]
        AuditBackend::Sqlite(path) => {
            let secret = spec.secret()?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    ConfigError::invalid(
                        "audit_log",
                        format!("cannot create the audit folder `{}`: {e}", dir.display()),
                    )
                })?;
            }
            let log = loomflow_sqlite::SqliteAuditLog::open_log(path, spec.log_name(), secret)
                .map_err(|e| ConfigError::invalid("audit_log", e.to_string()))?;
            Ok(spec.wrap(log))
        }
        #[cfg(feature = "postgres")]
        AuditBackend::Postgres(url) => {
            let secret = spec.secret()?;
            let log =
                loomflow_postgres::PostgresAuditLog::connect_log(url, spec.log_name(), secret)
                    .await
                    .map_err(|e| ConfigError::invalid("audit_log", e.to_string()))?;
            Ok(spec.wrap(log))
        }
        #[allow(unreachable_patterns)]
        other => Err(ConfigError::invalid(
            "audit_log",
            format!(
                "`{other}` needs the loomflow crate's `{}` feature",
                match other {
                    AuditBackend::Postgres(_) => "postgres",
                    _ => "sqlite",
                }
            ),
        )),
    }
}

/// Opens the telemetry a [`TelemetrySpec`](telemetry::TelemetrySpec) names:
/// the console tree, a JSONL file, or OTLP export configured by the
/// standard `OTEL_EXPORTER_OTLP_*` variables (feature `otel`; inside a
/// tokio runtime for gRPC). `none` gives `Ok(None)`. A backend whose
/// feature is off is a [`ConfigError`] that names the feature.
///
/// ```
/// let spec: loomflow::telemetry::TelemetrySpec = "console".parse().unwrap();
/// assert!(loomflow::open_telemetry(&spec).unwrap().is_some());
/// ```
pub fn open_telemetry(
    spec: &telemetry::TelemetrySpec,
) -> Result<Option<telemetry::Telemetry>, ConfigError> {
    if *spec == telemetry::TelemetrySpec::None {
        return Ok(None);
    }
    attach_telemetry(spec, telemetry::Telemetry::builder()).map(|b| Some(b.build()))
}

/// Adds what `spec` names to `builder` (so it can sit beside other sinks,
/// as `loomflow run --trace` puts the console next to a configured
/// exporter). See [`open_telemetry`].
pub fn attach_telemetry(
    spec: &telemetry::TelemetrySpec,
    builder: telemetry::TelemetryBuilder,
) -> Result<telemetry::TelemetryBuilder, ConfigError> {
    match spec {
        #[cfg(feature = "otel")]
        telemetry::TelemetrySpec::Otel => {
            let otlp = loomflow_otel::Otlp::from_env()
                .map_err(|e| ConfigError::invalid("telemetry", e.to_string()))?;
            Ok(otlp.attach(builder))
        }
        #[cfg(not(feature = "otel"))]
        telemetry::TelemetrySpec::Otel => Err(ConfigError::invalid(
            "telemetry",
            "\"otel\" needs the loomflow crate's `otel` feature",
        )),
        other => other.attach(builder),
    }
}

/// Connects the MCP servers of a config file's `mcp` key (`[[mcp]]`
/// tables, [`AgentConfig::mcp`](config::AgentConfig::mcp)) and gives their
/// registry, to pass to [`AgentBuilder::tool_host`](agent::AgentBuilder::tool_host).
/// A server that cannot start is not an error: the registry lists it as
/// unavailable ([`McpRegistry::status`](mcp::McpRegistry::status)) and the
/// others work. A malformed entry, two servers with one name or a sampling
/// model that does not resolve is a [`ConfigError`].
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let mut config = loomflow::config::AgentConfig::from_file("agent.toml")?;
/// let servers = config.mcp.take();
/// let mut builder = config.into_builder()?;
/// if let Some(servers) = servers {
///     builder = builder.tool_host(loomflow::open_mcp(&servers).await?);
/// }
/// let agent = builder.build()?;
/// # let _ = agent; Ok(()) }
/// ```
#[cfg(feature = "mcp")]
pub async fn open_mcp(servers: &toml::Value) -> Result<mcp::McpRegistry, ConfigError> {
    let specs = mcp::McpServerSpec::list_from_toml(servers)?;
    mcp::McpRegistry::connect(specs)
        .await
        .map_err(|e| ConfigError::invalid("mcp", e.to_string()))
}

/// Connects the `[[mcp]]` servers of a workflow file's agents
/// ([`Workflow::mcp_servers`](loomflow_workflow::Workflow::mcp_servers)) and
/// gives each agent its registry; returns the registries, with the agent
/// each belongs to (to check [`status`](mcp::McpRegistry::status)). Until
/// this runs, those agents' runs fail saying to call it.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let workflow = loomflow::Workflow::from_file("support.toml")?;
/// for (agent, registry) in loomflow::connect_workflow_mcp(&workflow).await? {
///     for server in registry.status() {
///         if let Some(error) = server.error {
///             eprintln!("{agent}: MCP server `{}` is unavailable: {error}", server.name);
///         }
///     }
/// }
/// # Ok(()) }
/// ```
#[cfg(feature = "mcp")]
pub async fn connect_workflow_mcp(
    workflow: &loomflow_workflow::Workflow,
) -> Result<Vec<(String, mcp::McpRegistry)>, ConfigError> {
    let mut connected = Vec::new();
    for agent in workflow.mcp_servers() {
        if agent.host.is_filled() {
            continue;
        }
        let registry = open_mcp(&agent.servers).await.map_err(|e| {
            ConfigError::invalid(format!("agents.{}.mcp", agent.agent), e.to_string())
        })?;
        agent
            .host
            .fill(std::sync::Arc::new(registry.clone()))
            .map_err(|e| {
                ConfigError::invalid(format!("agents.{}.mcp", agent.agent), e.to_string())
            })?;
        connected.push((agent.agent.clone(), registry));
    }
    Ok(connected)
}

/// The names most programs need.
pub mod prelude {
    pub use futures_util::StreamExt;
    pub use loomflow_core::{
        Agent, Architecture, EchoModel, Error, Event, EventKind, Image, Message, Model,
        OutputSchema, ReAct, Result, RunContext, RunResult, ScriptedModel, ScriptedTurn, SessionId,
        Tone, Tool, ToolError, UserId, tool,
    };
    pub use loomflow_macros::{step, tool};
    pub use loomflow_workflow::{END, Router, START, Step, Workflow, blocking};
}

/// The README's examples, compiled and run as doc tests (they use the
/// OpenAI, SQLite and Postgres adapters, OTLP export and MCP, so only when
/// those are built, as the workspace's test run builds them).
#[doc = include_str!("../../../README.md")]
#[cfg(all(
    doctest,
    feature = "openai",
    feature = "sqlite",
    feature = "postgres",
    feature = "otel",
    feature = "mcp"
))]
pub struct ReadmeDoctests;
