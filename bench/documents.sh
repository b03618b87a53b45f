#!/usr/bin/env bash
# Training-step time of packed documents told apart or not (data.reset_positions, data.mask_documents)
# on a tiny model (the demo's: d_model 128, 4 layers, 4 heads, RoPE), windows of documents of a few
# lengths, measured in alternating rounds so every variant sees the same machine noise. Prints a
# markdown table of median step times and their ratio to the same windows with both options off.
# Usage: bench/documents.sh [ROUNDS] [TRAIN_LENGTH] [BATCH] [DOCUMENT_LENGTHS]   (defaults: 5 128 32 "32 128 1024")
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
length=${2:-128}
batch=${3:-32}
read -r -a document_lengths <<<"${4:-32 128 1024}"
model="model.d_model=128 model.n_layers=4 model.n_heads=4 model.d_mlp=512 data.train_length=$length"
variants=(
  "off|"
  "reset|data.reset_positions=true"
  "mask|data.mask_documents=true"
  "reset+mask|data.reset_positions=true data.mask_documents=true"
)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for round in $(seq "$rounds"); do
  for n in "${document_lengths[@]}"; do
    for i in "${!variants[@]}"; do
      IFS='|' read -r name sets <<<"${variants[$i]}"
      # shellcheck disable=SC2086
      build/extrap bench --steps 10 --warmup 3 --eval-length 0 --batch "$batch" --document-length "$n" \
        --json "$out/$n.$i.$round.json" --set $model $sets >/dev/null
    done
    echo "round $round: documents of $n tokens" >&2
  done
done
python3 - "$out" "$rounds" "$length" "$batch" "${document_lengths[*]}" "${variants[@]}" <<'PY'
import json, statistics, sys
out, rounds, length, batch, lengths, variants = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5].split(), sys.argv[6:]
names = [v.split("|")[0] for v in variants]
print(f"T = {length}, batch {batch}: median train step (ms) over {rounds} rounds, ratio to off")
print()
print("| documents of | " + " | ".join(names) + " |")
print("|---:|" + "---:|" * len(names))
for n in lengths:
    steps = [statistics.median(json.load(open(f"{out}/{n}.{i}.{r}.json"))["train"]["step_ms"] for r in range(1, rounds + 1))
             for i in range(len(variants))]
    cells = [f"{steps[0]:.1f}"] + [f"{s:.1f} ({s / steps[0]:.3f})" for s in steps[1:]]
    print(f"| {n} tokens | " + " | ".join(cells) + " |")
PY
