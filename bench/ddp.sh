#!/usr/bin/env bash
# Data-parallel scaling on this machine: the bench model (d_model 256, 4 layers, T = 256) trained
# by N processes x 1 thread under torchrun (Gloo), each with `--batch` windows per step, against
# one process with 1 thread and one with N threads at the same total batch, alternating ROUNDS
# times. extrap bench itself reports the scaling efficiency (tokens/s per process together / rank 0
# alone). Prints every round and the medians. Usage: bench/ddp.sh [ROUNDS] [N] [BATCH] [PRECISION]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
n=${2:-2}
batch=${3:-8}
precision=${4:-fp32}
json=$(mktemp)
trap 'rm -f "$json"' EXIT
tokens() { python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(r["train"]["tokens_per_s"])' "$json"; }
common=(--steps 6 --warmup 2 --eval-length 0 --precision "$precision" --json "$json")
ddp=() one_thread=() all_threads=() efficiency=()
for round in $(seq "$rounds"); do
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  torchrun --nnodes 1 --node_rank 0 --nproc_per_node "$n" --rdzv_backend static --master_addr 127.0.0.1 \
    --master_port "$port" --redirects 2 --tee 2 --log_dir "$(mktemp -d)" --no_python build/extrap bench \
    --batch "$batch" --threads 1 "${common[@]}" >/dev/null 2>&1
  read -r total eff < <(python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))["data_parallel"]; print(d["tokens_per_s_total"], d["scaling_efficiency"])' "$json")
  ddp+=("$total"); efficiency+=("$eff")
  build/extrap bench --batch "$batch" --threads 1 "${common[@]}" >/dev/null; one_thread+=("$(tokens)")
  build/extrap bench --batch $((batch * n)) --threads "$n" "${common[@]}" >/dev/null; all_threads+=("$(tokens)")
  echo "round $round | $n x 1 thread (torchrun): ${total%.*} tokens/s in all, efficiency $eff | 1 process x 1 thread: ${one_thread[-1]%.*} | 1 process x $n threads: ${all_threads[-1]%.*}"
done
python3 - "$n" "${ddp[*]}" "${one_thread[*]}" "${all_threads[*]}" "${efficiency[*]}" <<'PY'
import statistics, sys
n = int(sys.argv[1])
ddp, one, many, eff = ([float(x) for x in a.split()] for a in sys.argv[2:6])
m = statistics.median
print(f"median tokens/s: {n} processes x 1 thread {m(ddp):.0f}, 1 process x 1 thread {m(one):.0f}, "
      f"1 process x {n} threads {m(many):.0f}; speed-up over 1 thread {m(ddp) / m(one):.2f}x "
      f"(against {n} threads in one process {m(ddp) / m(many):.2f}x); bench's scaling efficiency {m(eff):.2f}")
PY
