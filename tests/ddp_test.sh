#!/usr/bin/env bash
# Data parallelism through the real binary on LibTorch's c10d (Gloo), 2 CPU processes x 1 thread:
# torchrun training matches one process (losses and weights to 1e-5), resumes bit-identically
# under the same world size and on another one, stops every rank on one rank's signal with one
# checkpoint, fails within the collective timeout when a rank dies or hangs, refuses bad launcher
# environments in one line, evaluates into one results file equal to a single-process one, and
# benches its scaling. Usage: ddp_test.sh EXTRAP_BINARY
set -uo pipefail
extrap=$(realpath "$1")
work=$(mktemp -d)
pids=()
trap 'kill -9 "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"
command -v torchrun >/dev/null || fail "torchrun not found (scripts/setup.sh installs python3-torch)"
python=/usr/bin/python3

free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# torchrun with a static rendezvous on a free port (so parallel tests never share one). Debian's
# torchrun 1.13 under Python 3.11 needs --redirects/--tee other than 0 (its default "0" parses to
# None there); 2 keeps stdout as it is and copies stderr to the console.
# torchrun_for N sets torchrun_cmd; launch N ARGS... runs it.
torchrun_for() {
  torchrun_cmd=(torchrun --nnodes 1 --node_rank 0 --nproc_per_node "$1" --rdzv_backend static --master_addr 127.0.0.1
                --master_port "$(free_port)" --redirects 2 --tee 2 --log_dir "$work/torchrun-logs" --no_python "$extrap")
}
launch() {
  torchrun_for "$1"; shift
  "${torchrun_cmd[@]}" "$@"
}

mkdir -p "$work/corpus"
for i in $(seq 1 16); do
  for j in $(seq 1 30); do echo "Document $i line $j: the quick brown fox $((i * j)) jumps over the lazy dog."; done > "$work/corpus/doc$i.txt"
done
"$extrap" data --corpus text --input "$work/corpus" --out "$work/data" >/dev/null 2>&1 || fail "data"
cat > "$work/tiny.json" <<JSON
{"name": "tiny", "seed": 11,
 "model": {"d_model": 32, "n_layers": 2, "n_heads": 2, "d_mlp": 64, "dropout": 0.0},
 "position": {"scheme": "alibi"},
 "data": {"dataset": "$work/data", "train_length": 32},
 "train": {"batch_size": 8, "steps": 8, "lr": 0.003, "warmup_steps": 2, "log_interval": 1, "eval_interval": 4,
           "eval_tokens": 1024, "checkpoint_interval": 4}}
JSON

# Losses (relative) and every weight (absolute) of two runs to a tolerance (safetensors read by hand).
compare_runs() {
  "$python" - "$@" <<'PY' || fail "runs $1 and $2 differ"
import json, struct, sys
import torch
a, b, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
def metrics(run):
    return [json.loads(l) for l in open(run + "/metrics.jsonl") if l.strip()]
def tensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n]); body = data[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__": continue
        lo, hi = info["data_offsets"]
        out[name] = torch.frombuffer(bytearray(body[lo:hi]), dtype=torch.float32).double()
    return out
ma, mb = metrics(a), metrics(b)
assert len(ma) == len(mb), (len(ma), len(mb))
for x, y in zip(ma, mb):
    for key in ("loss", "val_loss", "grad_norm"):
        if key in x:
            assert abs(x[key] - y[key]) <= tol * abs(x[key]), (x["step"], key, x[key], y[key])
ta, tb = tensors(a + "/checkpoints/step_00000008/model.safetensors"), tensors(b + "/checkpoints/step_00000008/model.safetensors")
assert ta.keys() == tb.keys()
# Weights to an absolute tolerance: the key bias's gradient is zero up to rounding (softmax ignores
# a constant per query), and AdamW scales that noise up to steps of the learning rate's size.
for name in ta:
    assert (ta[name] - tb[name]).abs().max().item() <= tol, (name, (ta[name] - tb[name]).abs().max().item())
PY
}

# One process, then the same config on two: the same global batch, split between the ranks.
"$extrap" train --config "$work/tiny.json" --out "$work/one" --threads 1 >/dev/null 2>&1 || fail "1-process train"
launch 2 train --config "$work/tiny.json" --out "$work/two" --threads 1 >"$work/two.out" 2>&1 || fail "torchrun train: $(tail -5 "$work/two.out")"
compare_runs "$work/one" "$work/two" 1e-5
grep -q '"world_size": 2' "$work/two/run.json" || fail "run.json does not record world_size 2"
[ "$(ls "$work/two/checkpoints")" = "$(printf 'step_00000004\nstep_00000008')" ] || fail "checkpoints: $(ls "$work/two/checkpoints")"
[ "$(grep -c '"loss"' "$work/two/metrics.jsonl")" -eq 8 ] || fail "metrics written more than once per step"

# Resume under the same world size: bit-identical to the uninterrupted run.
cp -r "$work/two" "$work/resumed"
rm -rf "$work/resumed/DONE" "$work/resumed/checkpoints/step_00000008"
launch 2 train --out "$work/resumed" --resume --threads 1 >"$work/resumed.out" 2>&1 || fail "torchrun resume: $(tail -5 "$work/resumed.out")"
for f in model.safetensors optimizer.safetensors; do
  cmp -s "$work/two/checkpoints/step_00000008/$f" "$work/resumed/checkpoints/step_00000008/$f" || fail "$f differs after a 2-process resume"
done
# On one process: the same global batch, said so in the log.
cp -r "$work/resumed" "$work/regrouped"
rm -rf "$work/regrouped/DONE" "$work/regrouped/checkpoints/step_00000008"
"$extrap" train --out "$work/regrouped" --resume --threads 1 >/dev/null 2>&1 || fail "1-process resume of a 2-process run"
grep -q "resuming on 1 processes (the checkpoint was written by 2)" "$work/regrouped/train.log" || fail "no world-size note in the log"
compare_runs "$work/two" "$work/regrouped" 1e-5

# srun's variables (set by hand here; tests/slurm_test.sh runs the real srun): the same training.
port=$(free_port)
for rank in 0 1; do
  env SLURM_STEP_ID=0 SLURM_JOB_ID=77 SLURM_PROCID=$rank SLURM_NTASKS=2 SLURM_LOCALID=$rank \
    SLURM_JOB_NODELIST=localhost MASTER_PORT="$port" \
    "$extrap" train --config "$work/tiny.json" --out "$work/srun" --threads 1 >"$work/srun.rank$rank" 2>&1 &
  pids+=($!)
done
wait "${pids[@]}" || fail "training under srun's variables: $(tail -3 "$work/srun.rank0")"
grep -q '"launcher": "slurm"' "$work/srun/run.json" || fail "run.json does not record the slurm launcher"
compare_runs "$work/one" "$work/srun" 1e-5

# Bad launcher environments and a batch the processes cannot share: one line, exit 2, nothing written.
expect="does not divide evenly over 3 processes" expect_error env RANK=0 WORLD_SIZE=3 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 \
  "$extrap" train --config "$work/tiny.json" --out "$work/refused"
expect="launcher environment: RANK=2 is not below WORLD_SIZE=2" expect_error env RANK=2 WORLD_SIZE=2 \
  "$extrap" train --config "$work/tiny.json" --out "$work/refused"
expect="launcher environment: RANK is set but WORLD_SIZE is not set" expect_error env RANK=0 \
  "$extrap" train --config "$work/tiny.json" --out "$work/refused"
expect="launcher environment: WORLD_SIZE > 1 but MASTER_ADDR is not set" expect_error env RANK=1 WORLD_SIZE=2 \
  "$extrap" train --config "$work/tiny.json" --out "$work/refused"
expect="launcher environment: SLURM_PROCID=x is not an integer" expect_error env SLURM_STEP_ID=0 SLURM_NTASKS=2 SLURM_PROCID=x \
  "$extrap" train --config "$work/tiny.json" --out "$work/refused"
closed=$(free_port)
expect="cannot reach the master 127.0.0.1:$closed" expect_error env RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 \
  MASTER_PORT="$closed" "$extrap" train --config "$work/tiny.json" --out "$work/refused" --collective-timeout 2
[ ! -e "$work/refused" ] || fail "a refused run wrote its directory"

# Two processes started by hand, as a launcher would; returns after both have started.
start_pair() {
  local out=$1 port; port=$(free_port); shift
  pids=()
  for rank in 0 1; do
    env RANK=$rank WORLD_SIZE=2 LOCAL_RANK=$rank MASTER_ADDR=127.0.0.1 MASTER_PORT="$port" \
      "$extrap" train --config "$work/long.json" --out "$out" --threads 1 "$@" >"$out.rank$rank" 2>&1 &
    pids+=($!)
  done
}
wait_for_checkpoint() {
  for _ in $(seq 1 300); do compgen -G "$1/checkpoints/step_*/state.json" >/dev/null && return 0; sleep 0.1; done
  fail "no checkpoint in $1"
}
sed 's/"steps": 8/"steps": 100000/' "$work/tiny.json" > "$work/long.json"

# A signal to one rank stops both after the step, with one checkpoint; --resume continues.
start_pair "$work/signal"
wait_for_checkpoint "$work/signal"
kill -TERM "${pids[1]}"
wait "${pids[0]}"; status0=$?
wait "${pids[1]}"; status1=$?
[ "$status0" -eq 143 ] && [ "$status1" -eq 143 ] || fail "exit statuses after SIGTERM to rank 1: $status0 $status1"
grep -q "signal 15 received by another process: checkpoint at step" "$work/signal/train.log" || fail "rank 0 log: $(tail -3 "$work/signal/train.log")"
last=$(ls "$work/signal/checkpoints" | tail -1)
[ -f "$work/signal/checkpoints/$last/state.json" ] || fail "the stop checkpoint $last is incomplete"

# SIGTERM to the launcher (a background job of a script ignores SIGINT): torchrun passes it on, every rank
# checkpoints, and --resume continues from that checkpoint.
torchrun_for 2  # run here, not in a function's subshell, so that $! is torchrun itself
"${torchrun_cmd[@]}" train --config "$work/long.json" --out "$work/launcher" --threads 1 >"$work/launcher.out" 2>&1 &
launcher=$!
wait_for_checkpoint "$work/launcher"
kill -TERM "$launcher"
wait "$launcher" && fail "torchrun exited 0 after SIGTERM"
grep -q "received: checkpoint at step" "$work/launcher/train.log" || fail "no stop checkpoint: $(tail -3 "$work/launcher/train.log")"
[ ! -e "$work/launcher/DONE" ] || fail "an interrupted run is marked DONE"
stopped_at=$(ls "$work/launcher/checkpoints" | tail -1)
torchrun_for 2
"${torchrun_cmd[@]}" train --out "$work/launcher" --resume --threads 1 >"$work/launcher2.out" 2>&1 &
launcher=$!
for _ in $(seq 1 300); do grep -q "resuming" "$work/launcher/train.log" && break; sleep 0.1; done
kill -TERM "$launcher"; wait "$launcher"
grep -q "resuming $work/launcher from step $((10#${stopped_at#step_}))" "$work/launcher/train.log" ||
  fail "the resumed run did not start from $stopped_at: $(grep resuming "$work/launcher/train.log")"
# A rank killed with -9, or hung: the other fails within the collective timeout, exit 1, and
# leaves no half-written checkpoint behind.
for how in KILL STOP; do
  start_pair "$work/dead$how" --collective-timeout 5
  wait_for_checkpoint "$work/dead$how"
  kill -"$how" "${pids[1]}"
  start=$(date +%s)
  wait "${pids[0]}"; status=$?
  elapsed=$(( $(date +%s) - start ))
  kill -9 "${pids[1]}" 2>/dev/null
  [ "$status" -eq 1 ] || fail "rank 0 after SIG$how to rank 1: exit $status, expected 1: $(tail -2 "$work/dead$how.rank0")"
  [ "$elapsed" -le 30 ] || fail "rank 0 took $elapsed s to fail after SIG$how to rank 1"
  grep -q "failed on rank 0 of 2" "$work/dead$how.rank0" || fail "rank 0's message: $(tail -2 "$work/dead$how.rank0")"
  for checkpoint in "$work/dead$how"/checkpoints/step_*; do
    [ -f "$checkpoint/state.json" ] || fail "half-written checkpoint $checkpoint"
  done
done

# Evaluation sharded over two processes: one results file, equal to one process's.
eval_args=(--lengths 256,320 --max-tokens 2048 --protocol nonoverlap,sliding,passkey --stride 16 --trials 3 --depths 0,0.5
           --greedy --treatments "$EXTRAP_SOURCE_DIR/configs/eval/windows.json" --threads 1)
"$extrap" eval --run "$work/one" --out "$work/eval1.json" "${eval_args[@]}" >/dev/null 2>&1 || fail "1-process eval"
launch 2 eval --run "$work/one" --out "$work/eval2.json" "${eval_args[@]}" >"$work/eval2.out" 2>&1 || fail "torchrun eval: $(tail -5 "$work/eval2.out")"
[ "$(grep -c "length" "$work/eval2.out")" -gt 0 ] || fail "rank 0 printed no report"
"$python" - "$work/eval1.json" "$work/eval2.json" <<'PY' || fail "2-process eval differs from 1-process eval"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
skip = {"seconds", "tokens_per_s", "peak_rss_mib", "created", "world_size", "threads"}
def walk(x, y, path):
    if isinstance(x, dict):
        assert set(x) - skip == set(y) - skip, path
        for k in x:
            if k not in skip: walk(x[k], y[k], path + "." + k)
    elif isinstance(x, list):
        assert len(x) == len(y), path
        for i, (u, v) in enumerate(zip(x, y)): walk(u, v, f"{path}[{i}]")
    elif isinstance(x, float) and not isinstance(x, bool):
        assert abs(x - y) <= 1e-6 * max(1.0, abs(x)), (path, x, y)
    else:
        assert x == y, (path, x, y)
walk(a, b, "")
assert len(a["results"]) > 10 and a["complete"] and b["complete"]
PY

# The bench under torchrun: tokens/s per process and the scaling efficiency.
launch 2 bench --steps 2 --warmup 1 --batch 4 --eval-length 0 --threads 1 >"$work/bench.out" 2>&1 || fail "torchrun bench: $(tail -5 "$work/bench.out")"
grep -q "data parallel: 2 processes (gloo)" "$work/bench.out" || fail "bench output: $(cat "$work/bench.out")"
[ "$(grep -c "^train:" "$work/bench.out")" -eq 1 ] || fail "more than rank 0 reported"
echo "data parallel: all checks passed"
