#!/usr/bin/env bash
# Side by side: the agent scenarios (a) and (b) and the three workflow
# scenarios on loomflow (Rust) and on the Python peers, which this script
# installs in a virtualenv (LoomFlow 0.20, LangGraph), all in one run.
#
#   bash bench/compare/run.sh                    # everything
#   ONLY=workflow bash bench/compare/run.sh      # or ONLY=agent, ONLY=journal
#   N=2000 RUNS=300 WF_RUNS=200 bash bench/compare/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ONLY=${ONLY:-all}
N=${N:-10000}
RUNS=${RUNS:-1000}
WF_RUNS=${WF_RUNS:-300}
LATENCY_MS=${LATENCY_MS:-50}
VENV=${VENV:-$HOME/.cache/loomflow-bench-venv}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/loomflow-target}"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q "loomflow==0.20.0" "langgraph" "langchain-core"

out=$(mktemp)
trap 'rm -f "$out" "$out".*' EXIT

# Median of one divan bench, in µs, as a RESULT line.
divan_median() { # <divan output file> <bench name> <scenario> <steps per run>
  python3 - "$@" <<'PY'
import json, re, sys
path, name, scenario, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
unit = r"([\d.]+)\s*(ns|µs|us|ms)"
m = re.search(re.escape(name) + r"\s+" + r"\s*│\s*".join([unit] * 3), open(path).read())
scale = {"ns": 1e-3, "µs": 1, "us": 1, "ms": 1e3}
us = float(m.group(5)) * scale[m.group(6)]  # the median column
print("RESULT " + json.dumps({"fw": "rust", "scenario": scenario, "us_per_run": us,
                              "us_per_step": us / steps}))
PY
}

if [ "$ONLY" = all ] || [ "$ONLY" = agent ]; then
  echo "== rust: (a) sequential runs (divan)"
  cargo bench -q -p loomflow-bench --bench agent_overhead -- run_shared_agent 2>&1 | tee "$out.agent"
  divan_median "$out.agent" run_shared_agent seq 1 >> "$out"
  echo "== rust: (b) $N concurrent runs"
  cargo run -q --release -p loomflow-bench --bin concurrent_runs -- "$N" "$LATENCY_MS" | tee -a "$out"
  echo "== rust: (b) the same runs through a hand-rolled loop, no framework (the floor)"
  RAW_FLOOR=loop cargo run -q --release -p loomflow-bench --bin concurrent_runs -- "$N" "$LATENCY_MS" | tee -a "$out"
  for fw in loomflow langgraph; do
    echo "== python $fw: (a) and (b)"
    "$VENV/bin/python" bench/compare/peers.py "$fw" seq --runs "$RUNS" | tee -a "$out"
    "$VENV/bin/python" bench/compare/peers.py "$fw" conc --n "$N" --latency "$(python3 -c "print($LATENCY_MS/1000)")" | tee -a "$out"
  done
fi

if [ "$ONLY" = all ] || [ "$ONLY" = journal ]; then
  echo "== rust: journal cost per step (divan; 4 model calls + 3 tool calls = 7 steps per run)"
  cargo bench -q -p loomflow-bench --bench journal_overhead -- no_journal sqlite 2>&1 | tee "$out.journal"
  divan_median "$out.journal" no_journal journal_plain 7 >> "$out"
  divan_median "$out.journal" sqlite_durable_commits journal_full 7 >> "$out"
  divan_median "$out.journal" sqlite_wal_commits journal_wal 7 >> "$out"
  divan_median "$out.journal" sqlite_batched_commits journal_batched 7 >> "$out"
  echo "== python loomflow: SqliteRuntime journal"
  "$VENV/bin/python" bench/compare/peers_journal.py --runs "${JOURNAL_RUNS:-300}" | tee -a "$out"
fi

if [ "$ONLY" = all ] || [ "$ONLY" = workflow ]; then
  echo "== rust: workflow scenarios (divan)"
  cargo bench -q -p loomflow-bench --bench workflow_overhead 2>&1 | tee "$out.wf"
  divan_median "$out.wf" chain_10 chain 10 >> "$out"
  divan_median "$out.wf" cycle_150_steps cycle 150 >> "$out"
  divan_median "$out.wf" fanout_100 fanout 102 >> "$out"
  for fw in loomflow langgraph; do
    for scenario in chain cycle fanout; do
      echo "== python $fw: workflow $scenario"
      "$VENV/bin/python" bench/compare/peers_workflow.py "$fw" "$scenario" --runs "$WF_RUNS" | tee -a "$out"
    done
  done
fi

python3 - "$out" <<'PY'
import json, sys
recs = [json.loads(l.split(" ", 1)[1]) for l in open(sys.argv[1]) if l.startswith("RESULT ")]
def rec(fw, scenario):
    return next((r for r in recs if r.get("fw") == fw and r.get("scenario") == scenario), None)
if any(rec("rust", k) for k in ("seq", "chain", "cycle", "fanout")):
    print()
    print(f"{'scenario':<36}{'loomflow (Rust)':>16}{'LoomFlow 0.20':>15}{'LangGraph':>12}{'vs LoomFlow':>13}{'vs LangGraph':>14}")
def row(label, key, rust, lf, lg, fmt=".1f", ratio=True):
    line = f"{label:<36}{rust[key]:>16{fmt}}{lf[key]:>15{fmt}}{lg[key]:>12{fmt}}"
    if ratio:
        line += f"{lf[key] / rust[key]:>12.0f}×{lg[key] / rust[key]:>13.0f}×"
    print(line)
if rec("rust", "seq"):
    row("(a) µs per run (3 tools + answer)", "us_per_run",
        rec("rust", "seq"), rec("loomflow", "seq"), rec("langgraph", "seq"))
    runs = [r for r in recs if r.get("bench") == "concurrent_runs"]
    rust = next(r for r in runs if not r.get("floor"))
    loop = next((r for r in runs if r.get("floor") == "loop"), None)
    lf, lg = rec("loomflow", "conc"), rec("langgraph", "conc")
    row(f"(b) wall ms, {rust['runs']} runs", "wall_ms", rust, lf, lg, ".0f")
    row("(b) % over the latency floor", "over_floor_pct", rust, lf, lg, ".0f", ratio=False)
    row("(b) peak RSS MB", "peak_rss_mb", rust, lf, lg, ".0f")
    if loop:
        print(f"(b) hand-rolled Rust loop, no framework: {loop['wall_ms']:.0f} ms "
              f"({loop['over_floor_pct']:.0f} % over the floor), {loop['peak_rss_mb']:.0f} MB")
plain, lf = rec("rust", "journal_plain"), rec("loomflow", "journal")
if plain and lf:
    print()
    print(f"{'journal (SQLite, WAL)':<44}{'loomflow (Rust)':>16}{'LoomFlow 0.20':>15}{'ratio':>8}")
    print(f"{'µs per run, no journal':<44}{plain['us_per_run']:>16.1f}{lf['us_per_run_plain']:>15.1f}")
    lf_added = lf["us_per_run_sqlite"] - lf["us_per_run_plain"]
    for key, label in [("journal_full", "synced (Full)"), ("journal_wal", "WAL commits (Committed)"),
                       ("journal_batched", "batched (Batched)")]:
        r = rec("rust", key)
        if r:
            added = r["us_per_run"] - plain["us_per_run"]
            print(f"{'µs added per run, ' + label:<44}{added:>16.1f}{lf_added:>15.1f}{lf_added / added:>7.1f}×")
            print(f"{'µs added per step, ' + label:<44}{added / 7:>16.1f}{lf['us_per_step_sqlite']:>15.1f}")
    print(f"(a run is 7 steps; LoomFlow writes {lf['journal_rows_per_run']:.0f} journal rows per run)")
for scenario, label in [("chain", "workflow chain, µs per step"),
                        ("cycle", "workflow cycle, µs per step"),
                        ("fanout", "workflow fan-out, µs per step")]:
    if rec("rust", scenario):
        row(label, "us_per_step", rec("rust", scenario), rec("loomflow", scenario),
            rec("langgraph", scenario), ".2f")
PY
