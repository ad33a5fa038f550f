#!/usr/bin/env bash
# Installs redis-server 8 (with Vector Sets, which the Redis memory uses for
# vector recall) into /usr/local/bin. Bookworm's Redis is 7.0 and trixie's
# binary package needs a newer libc, so this builds trixie's source package
# (Redis 8.0.2 with Debian's security patches), about two minutes on two
# cores. Idempotent: a second run finds the binary and returns.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix="${LOOMFLOW_REDIS_PREFIX:-/usr/local}"
if "$prefix/bin/redis-server" --version 2>/dev/null | grep -Eq 'v=(8|9|[1-9][0-9])\.'; then
  exit 0
fi
echo "building redis-server 8 (trixie source) into $prefix/bin"
if ! command -v make >/dev/null || ! command -v dpkg-source >/dev/null || ! command -v gcc >/dev/null; then
  install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential dpkg-dev >/dev/null; }
  install || { apt-get update -qq && install; }
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$here/trixie-source.sh" redis "$work"
cd "$work"
dpkg-source -q -x redis_*.dsc redis-src >/dev/null
cd redis-src
# Vendored dependencies only: no TLS, no systemd, libc malloc.
log="$work/build.log"
if ! { make -j"$(nproc)" MALLOC=libc BUILD_TLS=no USE_SYSTEMD=no && make install PREFIX="$prefix"; } >"$log" 2>&1; then
  tail -40 "$log" >&2
  exit 1
fi
"$prefix/bin/redis-server" --version
