#!/usr/bin/env bash
# Installs the pgvector extension into the machine's Postgres. Bookworm has
# no pgvector package, so this builds trixie's source package (pgvector
# 0.8.0) against the installed server's headers. Idempotent: a second run
# finds vector.control and returns.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pg_config="$(ls /usr/lib/postgresql/*/bin/pg_config 2>/dev/null | sort -V | tail -1 || true)"
if [ -z "$pg_config" ]; then
  echo "pgvector.sh: no Postgres server found under /usr/lib/postgresql" >&2
  exit 1
fi
share="$("$pg_config" --sharedir)"
if [ -f "$share/extension/vector.control" ]; then
  exit 0
fi
major="$("$pg_config" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')"
echo "building pgvector for Postgres $major (trixie source)"
if ! dpkg -s "postgresql-server-dev-$major" >/dev/null 2>&1 || ! command -v make >/dev/null; then
  # The dev package pins the server's exact version (it may upgrade it).
  install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-server-dev-$major" build-essential >/dev/null; }
  install || { apt-get update -qq && install; }
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$here/trixie-source.sh" pgvector "$work"
tar -xzf "$work"/pgvector_*.orig.tar.gz -C "$work"
cd "$work"/pgvector-*/
# OPTFLAGS="" builds a portable library (no -march=native).
make -s OPTFLAGS="" PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" >/dev/null
make -s install PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" >/dev/null
test -f "$share/extension/vector.control"
echo "pgvector installed into Postgres $major"
