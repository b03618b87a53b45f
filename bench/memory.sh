#!/usr/bin/env bash
# Training memory and step time of the bench model (d_model 256, 4 layers, MLP 1024) at a fixed
# 16,384 tokens per batch and growing length, each length in its own process (peak RSS is a process
# maximum); then evaluation forwards at long lengths. Prints one line per measurement.
# Usage: bench/memory.sh [PRECISION] [TRAIN_LENGTHS] [EVAL_LENGTHS]
#   defaults: fp32, 256,1024,4096,16384, 32768,65536
set -euo pipefail
cd "$(dirname "$0")/.."
precision=${1:-fp32}
train_lengths=${2:-256,1024,4096,16384}
eval_lengths=${3:-32768,65536}
json=$(mktemp)
trap 'rm -f "$json"' EXIT
field() { python3 -c "import json,sys; d=json.load(open('$json')); print(eval(sys.argv[1]))" "$1"; }
for length in ${train_lengths//,/ }; do
  batch=$((16384 / length)); [ "$batch" -ge 1 ] || batch=1
  build/extrap bench --precision "$precision" --set data.train_length="$length" --batch "$batch" --steps 2 --warmup 1 \
    --eval-length 0 --json "$json" > /dev/null
  echo "train T=$length B=$batch: $(field "round(d['train']['step_ms'])") ms/step," \
       "peak RSS $(field "round(d['train']['peak_rss_mib'])") MiB"
done
for length in ${eval_lengths//,/ }; do
  build/extrap bench --precision "$precision" --steps 0 --eval-length "$length" --json "$json" > /dev/null
  echo "eval T=$length: $(field "round(d['eval']['tokens_per_s'])") tokens/s," \
       "peak RSS $(field "round(d['eval']['peak_rss_mib'])") MiB"
done
