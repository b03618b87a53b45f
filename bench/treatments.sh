#!/usr/bin/env bash
# Evaluation time of inference-time treatments of one trained run, side by side: every round is one
# `extrap eval` process over all the rows, in an order rotated from round to round (so warm-up and
# machine noise fall on every row alike). Prints a markdown table of median seconds and the ratio to
# the baseline row measured in the same rounds.
# Usage: bench/treatments.sh RUN TREATMENTS_JSON ROWS [ROUNDS] [LENGTH] [TOKENS] [PRECISION]
#   ROWS: comma-separated treatment names, baseline included (e.g. baseline,ReRoPE-w/4,DCA)
#   defaults: 4 rounds, length 8192, 16384 tokens per row, the run's precision
set -euo pipefail
cd "$(dirname "$0")/.."
run=$1 treatments=$2 rows=$3 rounds=${4:-4} length=${5:-8192} tokens=${6:-16384} precision=${7:-}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
IFS=',' read -r -a names <<<"$rows"
for round in $(seq 0 $((rounds - 1))); do
  order=("${names[@]:round % ${#names[@]}}" "${names[@]:0:round % ${#names[@]}}")
  only=$(IFS=','; echo "${order[*]}")
  build/extrap eval --run "$run" --lengths "$length" --max-tokens "$tokens" --treatments "$treatments" \
    --only "$only" ${precision:+--precision "$precision"} --out "$out/$round.json" >/dev/null 2>&1
  echo "round $((round + 1)): $only" >&2
done
python3 - "$out" "$rounds" "$rows" <<'PY'
import json, statistics, sys
out, rounds, names = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
seconds = {n: [] for n in names}
for r in range(rounds):
    for row in json.load(open(f"{out}/{r}.json"))["results"]:
        seconds[row["treatment"]].append(row["seconds"])
base = statistics.median(seconds[names[0]])
print("| treatment | median s | rounds (s) | vs " + names[0] + " |")
print("|---|---:|---|---:|")
for n in names:
    m = statistics.median(seconds[n])
    print(f"| {n} | {m:.2f} | {' / '.join(f'{s:.2f}' for s in seconds[n])} | {m / base:.2f}x |")
PY
