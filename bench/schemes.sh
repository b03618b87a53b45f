#!/usr/bin/env bash
# Training-step and eval time of every scheme and attention variant on the `extrap bench` reference
# model (d_model 256, 4 layers, T = 256, batch 16), measured in alternating rounds so every variant
# sees the same machine noise. Prints a markdown table of medians and ratios to RoPE.
# Usage: bench/schemes.sh [ROUNDS] [EVAL_LENGTH] [NAMES]    (run on a quiet machine: other processes
# make OpenMP spin and distort every number). NAMES: an extended regular expression; only the
# variants whose names match run, with rope always first (e.g. 'rerope|self_extend|string|dual').
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
eval_length=${2:-8192}
names=${3:-}
variants=(
  "rope|"
  "nope|position.scheme=nope"
  "learned|position.scheme=learned position.max_positions=$eval_length"
  "sinusoidal|position.scheme=sinusoidal"
  "alibi|position.scheme=alibi"
  "t5|position.scheme=t5"
  "kerple-log|position.scheme=kerple"
  "kerple-power|position.scheme=kerple position.variant=power"
  "sandwich|position.scheme=sandwich"
  "fire|position.scheme=fire"
  "dpb|position.scheme=dpb"
  "xpos|position.scheme=xpos"
  "rope-partial|position.rotary_dims=32"
  "rope+qk-bias|model.bias=false attention.qk_bias=true"
  "rerope-w64 (two-pass)|position.scheme=rerope position.window=64"
  "invleaky-w64-k1/16|position.scheme=rerope position.window=64 position.leaky_factor=0.0625"
  "self_extend-G4-w64 (two-pass)|position.scheme=self_extend position.group_size=4 position.window=64"
  "string (two-pass)|position.scheme=string"
  "dual_chunk (three-pass)|position.scheme=dual_chunk"
  "window-64|attention.window=64"
  "window-64+4sinks|attention.window=64 attention.sinks=4"
  "logn|attention.logn=train"
  "kna|attention.qk_norm=key"
  "cosa|attention.qk_norm=cosine"
  "random-positions|position_sampling.train=random"
  "sink-logit|attention.sink_logit=true"
  "output-gate-head|attention.output_gate=head"
  "output-gate-elementwise|attention.output_gate=elementwise"
  "ssmax|attention.ssmax=true"
)
if [ -n "$names" ]; then
  selected=("${variants[0]}")
  for v in "${variants[@]:1}"; do
    if grep -qE -- "$names" <<<"${v%%|*}"; then selected+=("$v"); fi
  done
  variants=("${selected[@]}")
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for round in $(seq "$rounds"); do
  for i in "${!variants[@]}"; do
    IFS='|' read -r name sets <<<"${variants[$i]}"
    # shellcheck disable=SC2086
    build/extrap bench --steps 5 --warmup 2 --eval-length "$eval_length" --json "$out/$i.$round.json" \
      ${sets:+--set $sets} >/dev/null
    echo "round $round: $name" >&2
  done
done
python3 - "$out" "$rounds" "${variants[@]}" <<'PY'
import json, statistics, sys
out, rounds, variants = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = []
for i, v in enumerate(variants):
    name = v.split("|")[0]
    docs = [json.load(open(f"{out}/{i}.{r}.json")) for r in range(1, rounds + 1)]
    step = statistics.median(d["train"]["step_ms"] for d in docs)
    ev = statistics.median(d["eval"]["seconds"] for d in docs)
    rss = max(d["eval"]["peak_rss_mib"] for d in docs)
    rows.append((name, step, ev, rss))
base_step, base_eval = rows[0][1], rows[0][2]
length = json.load(open(f"{out}/0.1.json"))["eval"]["length"]
print(f"| variant | train step (ms) | vs RoPE | eval {length} tokens (s) | vs RoPE | peak RSS (MiB) |")
print("|---|---:|---:|---:|---:|---:|")
for name, step, ev, rss in rows:
    print(f"| {name} | {step:.0f} | {step / base_step:.2f} | {ev:.2f} | {ev / base_eval:.2f} | {rss:.0f} |")
PY
