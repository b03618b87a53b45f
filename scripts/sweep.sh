#!/usr/bin/env bash
# Trains and evaluates each config, skipping what is already finished, then prints the report: a
# shorthand for `extrap sweep run` (docs/sweeps.md) on a sweep file written from these options to
# RUNS/.sweep/sweep.sh.json. Safe to re-run after an interruption: unfinished runs resume from their
# latest checkpoint. Each run is RUNS/<config name>; its log RUNS/.sweep/logs/<config name>.log.
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
    --set) overrides+=("$2"); shift 2 ;;
    --protocol) protocol=$2; shift 2 ;;
    --treatments) treatments+=("$(realpath -m "$2")"); shift 2 ;;
    -*) echo "sweep.sh: unknown option $1" >&2; exit 2 ;;
    *) configs+=("$(realpath -m "$1")"); shift ;;
  esac
done
[ ${#configs[@]} -gt 0 ] || { echo "usage: scripts/sweep.sh [options] CONFIG..." >&2; exit 2; }
[[ "$lengths,$max_tokens" =~ ^[0-9,]+$ ]] || { echo "sweep.sh: --lengths and --max-tokens take integers" >&2; exit 2; }
threads=(); [ -z "${EXTRAP_THREADS:-}" ] || threads=(--threads "$EXTRAP_THREADS")

file=$runs/.sweep/sweep.sh.json
mkdir -p "$runs/.sweep"
# JSON strings from Python, which quotes them correctly whatever the paths and overrides hold.
/usr/bin/python3 - "$file" "$runs" "$lengths" "$max_tokens" "$protocol" "${#configs[@]}" "${configs[@]}" \
  "${#overrides[@]}" "${overrides[@]}" "${treatments[@]}" <<'PY'
import json, sys
file, runs, lengths, max_tokens, protocol, n, *rest = sys.argv[1:]
configs, rest = rest[:int(n)], rest[int(n):]
overrides, treatments = rest[1:1 + int(rest[0])], rest[1 + int(rest[0]):]
sweep = {"name": "sweep", "runs": runs, "configs": configs, "set": overrides,
         "eval": {"lengths": [int(length) for length in lengths.split(",") if length],
                  "max_tokens": int(max_tokens), "protocols": protocol.split(","), "treatments": treatments}}
open(file, "w").write(json.dumps(sweep, indent=2, ensure_ascii=False) + "\n")
PY
exec "$extrap" sweep run "$file" "${threads[@]}"
