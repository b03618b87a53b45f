#!/usr/bin/env bash
# Synthetic tasks end to end through the real binary: `extrap data --task`, training on the loss
# mask, `extrap eval` (task protocol by default) and `extrap report`; bad input gives one line and
# exit status 2 and writes nothing; every shipped task config (configs/tasks/) trains a few steps.
# Usage: task_cli_test.sh EXTRAP_BINARY SOURCE_DIR
set -uo pipefail
extrap=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"

data="$work/copy"
expect="unknown task 'sorting'" expect_error "$extrap" data --task sorting --out "$data"
expect="--train-lengths 9:3: expected A:B" expect_error "$extrap" data --task copy --train-lengths 9:3 --out "$data"
expect="--test-lengths 1:2: no copy example" expect_error "$extrap" data --task copy --test-lengths 1:2 --out "$data"
expect="--param width: not a parameter of task copy" expect_error "$extrap" data --task copy --param width=3 --out "$data"
expect="--corpus does not apply to --task" expect_error "$extrap" data --task copy --corpus text --out "$data"
expect="--train-lengths applies only with --task" expect_error "$extrap" data --corpus text --input "$work" --train-lengths 3:9 --out "$data"
[ ! -e "$data" ] || fail "a refused data command wrote $data"

"$extrap" data --task copy --param vocab=8 --train-lengths 5:15 --test-lengths 5:31 --train-examples 400 \
  --val-examples 40 --test-examples 60 --seed 3 --out "$data" --show 2 >"$work/show.txt" 2>&1 || fail "data: $(cat "$work/show.txt")"
grep -q '^test 1 (n=[0-9]*, [0-9]* tokens): [a-h]*|\[[a-h]*\]$' "$work/show.txt" || fail "--show: $(cat "$work/show.txt")"
grep -q '"format": "extrap.dataset/2"' "$data/metadata.json" || fail "format"
[ "$(stat -c %s "$data/test.mask")" -eq "$(( $(stat -c %s "$data/test.bin") / 2 ))" ] || fail "mask size"

cat > "$work/task.json" <<JSON
{"model": {"d_model": 32, "n_layers": 2, "n_heads": 2},
 "position": {"scheme": "alibi"},
 "data": {"dataset": "$data", "train_length": 16},
 "train": {"batch_size": 8, "steps": 12, "warmup_steps": 2, "log_interval": 4, "eval_interval": 6,
           "checkpoint_interval": 6}}
JSON
expect="data.train_length 12 is shorter than the longest training example" \
  expect_error "$extrap" train --config "$work/task.json" --set data.train_length=12 --out "$work/short"
expect="learned positions cover only 20 positions, but the test examples" \
  expect_error "$extrap" train --config "$work/task.json" --set position.scheme=learned position.max_positions=20 --out "$work/learned"
[ ! -e "$work/short" ] && [ ! -e "$work/learned" ] || fail "a refused train wrote a run directory"

"$extrap" train --config "$work/task.json" --out "$work/run" --threads 1 >"$work/train.log" 2>&1 || fail "train: $(tail -3 "$work/train.log")"
grep -q '"val_loss"' "$work/run/metrics.jsonl" || fail "no validation loss"

expect="scores text, evaluate it with --protocol task" expect_error "$extrap" eval --run "$work/run" --protocol nonoverlap
expect="task is evaluated alone" expect_error "$extrap" eval --run "$work/run" --protocol task,nonoverlap
expect="must ascend" expect_error "$extrap" eval --run "$work/run" --lengths 20,10
[ ! -e "$work/run/results" ] || fail "a refused eval wrote results"
"$extrap" eval --run "$work/run" --lengths 15,23,31 --threads 1 >"$work/eval.txt" 2>&1 || fail "eval: $(tail -3 "$work/eval.txt")"
grep -q '"protocol": "task"' "$work/run/results/eval.json" || fail "task rows"
"$extrap" report "$work/run" --format csv >"$work/report.csv" || fail "report"
head -1 "$work/report.csv" | grep -q '^run,scheme,train,15,23,31$' || fail "report header: $(cat "$work/report.csv")"
sed -n 2p "$work/report.csv" | grep -q '^task,alibi,[0-9]*-[0-9]*,[0-9.]*%,[0-9.]*%,[0-9.]*%$' || fail "report row: $(cat "$work/report.csv")"
"$extrap" report "$work/run" --metric nll --format csv | sed -n 2p | grep -q '^task,alibi,[0-9-]*,[0-9.]*,' || fail "report --metric nll"

# A text corpus refuses the task protocol.
mkdir -p "$work/corpus"
for i in $(seq 1 12); do printf 'document %s: the quick brown fox jumps over the lazy dog. %.0s' "$i" $(seq 1 30) > "$work/corpus/d$i.txt"; done
"$extrap" data --corpus text --input "$work/corpus" --out "$work/text" >/dev/null 2>&1 || fail "text data"
grep -q '"format": "extrap.dataset/1"' "$work/text/metadata.json" || fail "a text corpus is still format /1"
sed -e "s|$data|$work/text|" -e 's|"steps": 12|"steps": 2|' "$work/task.json" > "$work/text.json"
"$extrap" train --config "$work/text.json" --out "$work/text_run" --threads 1 >/dev/null 2>&1 || fail "text train"
expect="--protocol task needs a synthetic-task dataset" expect_error "$extrap" eval --run "$work/text_run" --protocol task --lengths 16
# Every shipped task config trains and evaluates, shrunk to a tiny model on this dataset.
count=0
for config in "$src"/configs/tasks/*.json; do
  name=$(basename "$config" .json)
  [ "$name" = base ] && continue
  "$extrap" train --config "$config" --out "$work/configs/$name" --threads 1 --set data.dataset="$data" \
    data.train_length=16 model.d_model=32 model.n_heads=2 model.n_layers=2 model.d_mlp=64 train.steps=2 \
    train.batch_size=2 train.warmup_steps=1 train.eval_interval=2 train.checkpoint_interval=2 train.log_interval=1 \
    >"$work/$name.log" 2>&1 || fail "$name: train: $(tail -2 "$work/$name.log")"
  "$extrap" eval --run "$work/configs/$name" --threads 1 >>"$work/$name.log" 2>&1 || fail "$name: eval: $(tail -2 "$work/$name.log")"
  count=$((count + 1))
done
[ "$count" -ge 4 ] || fail "only $count task configs found"
echo "task CLI: ok"
