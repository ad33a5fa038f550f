#!/usr/bin/env bash
# Side by side: the two agent scenarios on loomflow (Rust) and on the Python
# peers, which this script installs in a virtualenv (LoomFlow 0.20, LangGraph).
#
#   bash bench/compare/run.sh            # N=10000 concurrent runs, 1000 sequential
#   N=2000 RUNS=300 bash bench/compare/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-10000}
RUNS=${RUNS:-1000}
LATENCY_MS=${LATENCY_MS:-50}
VENV=${VENV:-$HOME/.cache/loomflow-bench-venv}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/loomflow-target}"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q "loomflow==0.20.0" "langgraph" "langchain-core"

out=$(mktemp)
echo "== rust: (a) sequential runs (divan)"
cargo bench -q -p loomflow-bench --bench agent_overhead -- run_shared_agent 2>&1 | tee "$out.divan"
rust_seq_us=$(python3 - "$out.divan" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"run_shared_agent\s+([\d.]+)\s*(ns|µs|us|ms)\s*│\s*([\d.]+)\s*(ns|µs|us|ms)\s*│\s*([\d.]+)\s*(ns|µs|us|ms)", text)
scale = {"ns": 1e-3, "µs": 1, "us": 1, "ms": 1e3}
print(float(m.group(5)) * scale[m.group(6)])  # median column
PY
)
echo "== rust: (b) $N concurrent runs"
cargo run -q --release -p loomflow-bench --bin concurrent_runs -- "$N" "$LATENCY_MS" | tee -a "$out"
for fw in loomflow langgraph; do
  echo "== python $fw: (a) and (b)"
  "$VENV/bin/python" bench/compare/peers.py "$fw" seq --runs "$RUNS" | tee -a "$out"
  "$VENV/bin/python" bench/compare/peers.py "$fw" conc --n "$N" --latency "$(python3 -c "print($LATENCY_MS/1000)")" | tee -a "$out"
done

python3 - "$out" "$rust_seq_us" <<'PY'
import json, sys
recs = [json.loads(l.split(" ", 1)[1]) for l in open(sys.argv[1]) if l.startswith("RESULT ")]
rust_seq = float(sys.argv[2])
rust_conc = next(r for r in recs if r.get("bench") == "concurrent_runs")
print()
print(f"{'scenario':<34}{'loomflow (Rust)':>18}{'LoomFlow 0.20':>16}{'LangGraph':>14}{'vs LoomFlow':>13}{'vs LangGraph':>14}")
def peer(fw, sc):
    return next(r for r in recs if r.get("fw") == fw and r.get("scenario") == sc)
lf, lg = peer("loomflow", "seq"), peer("langgraph", "seq")
print(f"{'(a) µs per run (3 tools + answer)':<34}{rust_seq:>18.1f}{lf['us_per_run']:>16.1f}{lg['us_per_run']:>14.1f}"
      f"{lf['us_per_run']/rust_seq:>12.0f}×{lg['us_per_run']/rust_seq:>13.0f}×")
lf, lg = peer("loomflow", "conc"), peer("langgraph", "conc")
n = rust_conc["runs"]
print(f"{f'(b) wall ms, {n} runs':<34}{rust_conc['wall_ms']:>18.0f}{lf['wall_ms']:>16.0f}{lg['wall_ms']:>14.0f}"
      f"{lf['wall_ms']/rust_conc['wall_ms']:>12.1f}×{lg['wall_ms']/rust_conc['wall_ms']:>13.1f}×")
print(f"{'(b) over the latency floor':<34}{rust_conc['over_floor_pct']:>17.0f}%{lf['over_floor_pct']:>15.0f}%{lg['over_floor_pct']:>13.0f}%")
print(f"{'(b) peak RSS MB':<34}{rust_conc['peak_rss_mb']:>18.0f}{lf['peak_rss_mb']:>16.0f}{lg['peak_rss_mb']:>14.0f}"
      f"{lf['peak_rss_mb']/rust_conc['peak_rss_mb']:>12.1f}×{lg['peak_rss_mb']/rust_conc['peak_rss_mb']:>13.1f}×")
PY
