//! How an MCP server is reached.

use std::collections::BTreeMap;

use loomflow_core::error::ConfigError;
use serde::Deserialize;

/// How a server is reached.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "transport", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum McpTransport {
    /// A child process speaking MCP on stdin/stdout.
    Stdio {
        /// The program.
        command: String,
        /// Its arguments.
        #[serde(default)]
        args: Vec<String>,
        /// Variables added to its environment.
        #[serde(default)]
        env: BTreeMap<String, String>,
    },
    /// A server reached over MCP's Streamable HTTP transport (a session,
    /// JSON or SSE responses).
    Http {
        /// The endpoint (`https://host/mcp`).
        url: String,
        /// Headers sent with every request (an API key).
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
}

/// One MCP server: a name (it qualifies colliding tool names) and how to
/// reach it. In TOML: `name = "git", transport = "stdio", command = "uvx",
/// args = ["mcp-server-git"], env = { … }`, or `name = "docs",
/// transport = "http", url = "https://…/mcp", headers = { … }`.
///
/// ```
/// use loomflow_mcp::McpServerSpec;
///
/// let spec: McpServerSpec = toml::from_str(
///     r#"
///     name = "fs"
///     transport = "stdio"
///     command = "npx"
///     args = ["-y", "@modelcontextprotocol/server-filesystem", "."]
///     "#,
/// )
/// .unwrap();
/// assert_eq!(spec, McpServerSpec::stdio("fs", "npx", ["-y", "@modelcontextprotocol/server-filesystem", "."]));
///
/// let spec: McpServerSpec = toml::from_str(
///     r#"
///     name = "docs"
///     transport = "http"
///     url = "https://mcp.example.com/mcp"
///     headers = { authorization = "Bearer t0ken" }
///     "#,
/// )
/// .unwrap();
/// assert_eq!(
///     spec,
///     McpServerSpec::http("docs", "https://mcp.example.com/mcp").header("authorization", "Bearer t0ken"),
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct McpServerSpec {
    /// Its name.
    pub name: String,
    /// What it is for (for people reading the config).
    #[serde(default)]
    pub description: Option<String>,
    /// The loomflow model (`"openai:gpt-4o-mini"`) that answers this
    /// server's sampling requests, instead of the registry's.
    #[serde(default)]
    pub sampling_model: Option<String>,
    /// How it is reached.
    #[serde(flatten)]
    pub transport: McpTransport,
}

impl McpServerSpec {
    /// A server run as `command args…`, speaking MCP on stdio.
    pub fn stdio<I, S>(name: impl Into<String>, command: impl Into<String>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            name: name.into(),
            description: None,
            sampling_model: None,
            transport: McpTransport::Stdio {
                command: command.into(),
                args: args.into_iter().map(Into::into).collect(),
                env: BTreeMap::new(),
            },
        }
    }

    /// A server reached over Streamable HTTP at `url`.
    pub fn http(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: None,
            sampling_model: None,
            transport: McpTransport::Http {
                url: url.into(),
                headers: BTreeMap::new(),
            },
        }
    }

    /// Adds an environment variable (a stdio server; an HTTP one has none).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        if let McpTransport::Stdio { env, .. } = &mut self.transport {
            env.insert(key.into(), value.into());
        }
        self
    }

    /// The servers of a config file's `mcp` key: an array of `[[mcp]]`
    /// tables. An entry that does not describe a server is a
    /// [`ConfigError`] naming it (`mcp[1]`) and what is wrong.
    ///
    /// ```
    /// use loomflow_mcp::McpServerSpec;
    ///
    /// let config: toml::Table = toml::from_str(
    ///     r#"
    ///     [[mcp]]
    ///     name = "git"
    ///     transport = "stdio"
    ///     command = "uvx"
    ///     args = ["mcp-server-git"]
    ///
    ///     [[mcp]]
    ///     name = "docs"
    ///     transport = "http"
    ///     "#,
    /// )
    /// .unwrap();
    /// let err = McpServerSpec::list_from_toml(&config["mcp"]).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid mcp[1]: missing field `url`");
    /// ```
    pub fn list_from_toml(value: &toml::Value) -> Result<Vec<Self>, ConfigError> {
        let Some(servers) = value.as_array() else {
            return Err(ConfigError::invalid(
                "mcp",
                format!(
                    "`mcp` is a list of servers, each an [[mcp]] table, not a {}",
                    value.type_str()
                ),
            ));
        };
        servers
            .iter()
            .enumerate()
            .map(|(i, server)| {
                Self::deserialize(server.clone())
                    .map_err(|e| ConfigError::invalid(format!("mcp[{i}]"), e.message().to_owned()))
            })
            .collect()
    }

    /// Says what the server is for.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Answers this server's sampling requests with the model `model`
    /// names (resolved when the registry connects).
    pub fn sampling_model(mut self, model: impl Into<String>) -> Self {
        self.sampling_model = Some(model.into());
        self
    }

    /// Adds a header sent with every request (an HTTP server; a stdio one
    /// has none).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let McpTransport::Http { headers, .. } = &mut self.transport {
            headers.insert(name.into(), value.into());
        }
        self
    }
}
