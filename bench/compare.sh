#!/usr/bin/env bash
# Side-by-side training speed: extrap's reference model against the nanoGPT-style Python step
# (shared/bench/nanogpt_step.py) on the same Debian LibTorch build, alternating ROUNDS times so
# both see the same machine noise. Prints each round and the ratio of the medians.
# Usage: bench/compare.sh [ROUNDS] [THREADS] [PRECISION]   (fp32 or bf16; needs python3-torch:
#        scripts/setup.sh python3-torch)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
threads=${2:-$(nproc)}
precision=${3:-fp32}
reference=${NANOGPT_STEP:-../shared/bench/nanogpt_step.py}
[ -f "$reference" ] || { echo "compare.sh: $reference not found (set NANOGPT_STEP)" >&2; exit 2; }
ours=() theirs=()
for round in $(seq "$rounds"); do
  a=$(build/extrap bench --threads "$threads" --precision "$precision" --steps 10 --json /tmp/extrap-bench.json | sed -n 2p)
  ours+=("$(python3 -c 'import json;print(json.load(open("/tmp/extrap-bench.json"))["train"]["tokens_per_s"])')")
  b=$(/usr/bin/python3 "$reference" "$threads" --dtype "$precision")
  theirs+=("$(echo "$b" | sed -n 's/.*tokens\/s=\([0-9.]*\).*/\1/p')")
  echo "round $round | extrap: $a"
  echo "round $round | python: $b"
done
python3 - "${ours[*]}" "${theirs[*]}" <<'PY'
import statistics, sys
ours = [float(x) for x in sys.argv[1].split()]
theirs = [float(x) for x in sys.argv[2].split()]
mo, mt = statistics.median(ours), statistics.median(theirs)
ratios = [a / b for a, b in zip(ours, theirs)]
print(f"median tokens/s: extrap {mo:.0f}, python reference {mt:.0f}; ratio {mo / mt:.3f} "
      f"(per-round ratios {min(ratios):.3f}..{max(ratios):.3f})")
PY
