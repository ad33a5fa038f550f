#!/usr/bin/env bash
# The official MCP reference servers, for loomflow-mcp's tests, installed
# once under $LOOMFLOW_MCP_DIR (default ~/.cache/loomflow-mcp), pinned:
# - npm: server-everything, server-memory, server-filesystem (node_modules/.bin);
# - PyPI, in $dir/venv: mcp-server-git, mcp-server-time, and the official
#   Python SDK `mcp` (a server whose tools change, and the client that
#   exercises `loomflow mcp serve`).
# The testkit finds them there.
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

# mcp-server-git drives the git command line.
if ! command -v git >/dev/null 2>&1; then
  install_git() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq git >/dev/null; }
  install_git || { apt-get update -qq && install_git; }
fi
py_want="mcp==2.3.0 mcp-server-git==2026.10.19 mcp-server-time==2026.10.19"
py_stamp="$dir/.installed-pypi"
if [ "$(cat "$py_stamp" 2>/dev/null)" != "$py_want" ] || ! [ -x "$dir/venv/bin/python" ]; then
  [ -x "$dir/venv/bin/python" ] || python3 -m venv "$dir/venv"
  "$dir/venv/bin/python" -m pip install -q --disable-pip-version-check $py_want
  echo "$py_want" > "$py_stamp"
fi
