#!/usr/bin/env bash
# Trains and evaluates each config, skipping what is already finished, then prints the report.
# Safe to re-run after an interruption: unfinished runs resume from their latest checkpoint.
# Usage: scripts/sweep.sh [options] CONFIG...
#   --runs DIR          where run directories go (default runs)
#   --lengths L1,L2     eval lengths (default 512,2048,8192)
#   --max-tokens N      tokens scored at every length (default 16384)
#   --set key=value     config override applied to every run (repeatable)
#   --protocol P1,P2    eval protocols (default nonoverlap)
#   --treatments FILE   inference-time treatments evaluated besides the baseline (repeatable)
# Environment: EXTRAP (binary, default build/extrap), EXTRAP_THREADS (default: all cores).
set -euo pipefail
extrap=${EXTRAP:-build/extrap}
runs=runs lengths=512,2048,8192 max_tokens=16384 protocol=nonoverlap
overrides=() configs=() treatments=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --lengths) lengths=$2; shift 2 ;;
    --max-tokens) max_tokens=$2; shift 2 ;;
    --set) overrides+=(--set "$2"); shift 2 ;;
    --protocol) protocol=$2; shift 2 ;;
    --treatments) treatments+=("$2"); shift 2 ;;
    -*) echo "sweep.sh: unknown option $1" >&2; exit 2 ;;
    *) configs+=("$1"); shift ;;
  esac
done
[ ${#configs[@]} -gt 0 ] || { echo "usage: scripts/sweep.sh [options] CONFIG..." >&2; exit 2; }
threads=(); [ -z "${EXTRAP_THREADS:-}" ] || threads=(--threads "$EXTRAP_THREADS")

run_dirs=()
for config in "${configs[@]}"; do
  name=$(basename "$config" .json)
  dir="$runs/$name"
  run_dirs+=("$dir")
  if [ -f "$dir/DONE" ]; then
    echo "== $name: trained (skipping)"
  else
    resume=(); [ -f "$dir/config.json" ] && resume=(--resume)
    echo "== $name: training"
    "$extrap" train --config "$config" --out "$dir" "${resume[@]}" "${overrides[@]}" "${threads[@]}"
  fi
  # Skip evaluation only if its results exist and it ran after training finished, with the same
  # arguments and the same treatment file contents.
  stamp="$dir/results/sweep-eval.args"
  contents=""; [ ${#treatments[@]} -eq 0 ] || contents=$(cat "${treatments[@]}" 2>/dev/null | cksum || true)
  args="$lengths $max_tokens $protocol ${treatments[*]} $contents"
  if [ -f "$stamp" ] && [ -f "$dir/results/eval.json" ] && [ "$stamp" -nt "$dir/DONE" ] && [ "$(cat "$stamp")" = "$args" ]; then
    echo "== $name: evaluated (skipping)"
  else
    echo "== $name: evaluating at $lengths"
    treatment_args=(); [ ${#treatments[@]} -eq 0 ] || treatment_args=(--treatments "${treatments[@]}")
    "$extrap" eval --run "$dir" --lengths "$lengths" --max-tokens "$max_tokens" --protocol "$protocol" \
      "${treatment_args[@]}" "${threads[@]}" > /dev/null
    echo "$args" > "$stamp"
  fi
done
echo
"$extrap" report "${run_dirs[@]}"
