//! How an MCP server is reached.

use std::collections::BTreeMap;

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
}

/// One MCP server: a name (it qualifies colliding tool names) and how to
/// reach it. In TOML: `[[mcp]] name = "git", transport = "stdio",
/// command = "uvx", args = ["mcp-server-git"], env = { … }`.
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
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct McpServerSpec {
    /// Its name.
    pub name: String,
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
            transport: McpTransport::Stdio {
                command: command.into(),
                args: args.into_iter().map(Into::into).collect(),
                env: BTreeMap::new(),
            },
        }
    }

    /// Adds an environment variable for a stdio server.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let McpTransport::Stdio { env, .. } = &mut self.transport;
        env.insert(key.into(), value.into());
        self
    }
}
