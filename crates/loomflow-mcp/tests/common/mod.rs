//! Support shared by the MCP test files.

use loomflow_mcp::McpServerSpec;
use loomflow_testkit::mcp_server;

/// The official reference server (`@modelcontextprotocol/server-everything`)
/// over stdio, named `name`.
pub fn everything(name: &str) -> McpServerSpec {
    McpServerSpec::stdio(
        name,
        mcp_server("mcp-server-everything").display().to_string(),
        ["stdio"],
    )
}
