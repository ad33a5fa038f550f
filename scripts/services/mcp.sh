#!/usr/bin/env bash
# The official MCP reference servers (npm), for loomflow-mcp's tests:
# installed once under $LOOMFLOW_MCP_DIR (default ~/.cache/loomflow-mcp),
# pinned. The testkit finds them in node_modules/.bin.
set -euo pipefail
dir="${LOOMFLOW_MCP_DIR:-$HOME/.cache/loomflow-mcp}"
mkdir -p "$dir"
if ! command -v npm >/dev/null 2>&1; then
  install_node() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
  install_node || { apt-get update -qq && install_node; }
fi
want="@modelcontextprotocol/server-everything@2026.8.31 @modelcontextprotocol/server-memory@2026.8.31 @modelcontextprotocol/server-filesystem@2026.8.31"
stamp="$dir/.installed"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error $want >/dev/null)
  echo "$want" > "$stamp"
fi
