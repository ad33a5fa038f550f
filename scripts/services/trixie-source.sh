#!/usr/bin/env bash
# Downloads the Debian trixie *source* package named $1 into directory $2,
# through a private APT configuration: the machine's own sources (bookworm)
# are never touched and nothing is installed from trixie. Used for servers
# whose bookworm builds lack what the tests need (pgvector, Redis 8 with
# Vector Sets); the sources are built against bookworm's libraries.
set -euo pipefail
package="$1"
dest="$2"
conf_dir="${LOOMFLOW_TRIXIE_APT:-$HOME/.cache/loomflow-apt-trixie}"
mkdir -p "$conf_dir"/{lists/partial,cache/archives/partial,etc/preferences.d} "$dest"
cat >"$conf_dir/etc/sources.list" <<'EOF'
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
EOF
cat >"$conf_dir/apt.conf" <<EOF
Dir::Etc::SourceList "$conf_dir/etc/sources.list";
Dir::Etc::SourceParts "/nonexistent";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "$conf_dir/etc/preferences.d";
Dir::State::Lists "$conf_dir/lists";
Dir::Cache "$conf_dir/cache";
Dir::State::status "/var/lib/dpkg/status";
EOF
export APT_CONFIG="$conf_dir/apt.conf"
if ! ls "$conf_dir"/lists/*Sources* >/dev/null 2>&1; then
  apt-get update -qq -o APT::Sandbox::User=root
fi
cd "$dest"
# `apt-get source` runs as the _apt user when it can; a root-owned folder
# makes it warn, so download as root explicitly.
apt-get source -qq --download-only -o APT::Sandbox::User=root "$package"
