#!/usr/bin/env bash
# (b) across concurrency levels: how the wall time over the 200 ms latency
# floor grows with the number of runs in flight, for the loomflow agent and
# its two floors (bare tokio sleeps, the hand-rolled loop). The variants run
# interleaved (agent, loop, bare, agent, …) so that the VM's drift over the
# minutes lands on all three alike.
#
#   bash bench/sweep.sh                      # N = 1000 2500 5000 10000 20000
#   NS="2500 10000" REPS=9 bash bench/sweep.sh
#
# Prints, per N and variant: the cold round (the first, as `wall_ms`) and the
# warm rounds (`later_rounds_wall_ms`), each as median (min–max) over the
# repetitions, the warm median's excess over the floor (the cold one's with
# ROUNDS=1), and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
NS=${NS:-"1000 2500 5000 10000 20000"}
REPS=${REPS:-5}
ROUNDS=${ROUNDS:-3}
LATENCY_MS=${LATENCY_MS:-50}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/loomflow-target}"

cargo build -q --release -p loomflow-bench --bin concurrent_runs
bin="$CARGO_TARGET_DIR/release/concurrent_runs"
out=$(mktemp)
trap 'rm -f "$out"' EXIT

for n in $NS; do
  for _ in $(seq "$REPS"); do
    for variant in agent loop bare; do
      case $variant in
        agent) launch=(env -u RAW_FLOOR) ;;
        loop) launch=(env RAW_FLOOR=loop) ;;
        bare) launch=(env RAW_FLOOR=bare) ;;
      esac
      line=$("${launch[@]}" ROUNDS="$ROUNDS" "$bin" "$n" "$LATENCY_MS" | grep '^RESULT ')
      echo "$variant ${line#RESULT }" >> "$out"
    done
  done
  echo "N=$n done" >&2
done

python3 - "$out" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    variant, record = line.split(" ", 1)
    r = json.loads(record)
    rows.setdefault((r["runs"], variant), []).append(r)
def span(xs):
    return f"{statistics.median(xs):.0f} ({min(xs):.0f}–{max(xs):.0f})"
warm_any = any(r["later_rounds_wall_ms"] for rs in rows.values() for r in rs)
over_label = "warm over floor" if warm_any else "cold over floor"
print(f"| runs | variant | cold round, ms | warm rounds, ms | {over_label} | peak RSS |")
print("|---:|---|---:|---:|---:|---:|")
for (n, variant) in sorted(rows, key=lambda k: (k[0], ["agent", "loop", "bare"].index(k[1]))):
    rs = rows[(n, variant)]
    cold = [r["wall_ms"] for r in rs]
    warm = [w for r in rs for w in r["later_rounds_wall_ms"]]
    floor = rs[0]["floor_ms"]
    # With ROUNDS=1 there are no warm rounds: the excess is the cold one's.
    over = (statistics.median(warm or cold) / floor - 1) * 100
    rss = statistics.median(r["peak_rss_mb"] for r in rs)
    warm_cell = span(warm) if warm else "–"
    print(f"| {n:,} | {variant} | {span(cold)} | {warm_cell} | {over:.1f} % | {rss:.0f} MB |")
PY
