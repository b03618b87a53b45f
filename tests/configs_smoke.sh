#!/usr/bin/env bash
# Every shipped config (configs/*.json) trains for a few steps on a generated corpus, shrunk to a
# tiny model, and evaluates beyond its training length under two protocols; every RoPE-family run is
# also evaluated under every shipped treatment file that fits it (configs/eval/*.json).
# Usage: configs_smoke.sh EXTRAP_BINARY SOURCE_DIR
set -uo pipefail
extrap=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$work/corpus"
for i in $(seq 1 12); do
  for j in $(seq 1 30); do echo "Document $i line $j: the quick brown fox $((i * j)) jumps over the lazy dog."; done > "$work/corpus/doc$i.txt"
done
"$extrap" data --corpus text --input "$work/corpus" --out "$work/data" >/dev/null 2>&1 || fail "data"

tiny=(--set data.dataset="$work/data" data.train_length=32 model.d_model=32 model.n_heads=2 model.d_mlp=64
      train.steps=3 train.batch_size=2 train.warmup_steps=1 train.eval_interval=3 train.eval_tokens=64
      train.checkpoint_interval=3 train.log_interval=1)
count=0
for config in "$src"/configs/*.json; do
  name=$(basename "$config" .json)
  [ "$name" = base ] && continue
  run="$work/runs/$name"
  "$extrap" train --config "$config" --out "$run" --threads 1 "${tiny[@]}" >"$work/$name.train.log" 2>&1 ||
    fail "$name: train: $(tail -2 "$work/$name.train.log")"
  [ -f "$run/DONE" ] || fail "$name: no DONE marker"
  "$extrap" eval --run "$run" --lengths 32,96 --max-tokens 192 --protocol nonoverlap,repeated --threads 1 \
    >"$work/$name.eval.log" 2>&1 || fail "$name: eval: $(tail -2 "$work/$name.eval.log")"
  python3 - "$run/results/eval.json" "$name" <<'PY' || fail "$name: results"
import json, math, sys
doc = json.load(open(sys.argv[1]))
rows = doc["results"]
assert len(rows) == 4, len(rows)
for row in rows:
    if sys.argv[2] == "learned" and row["length"] > 32:  # a table of 32 positions cannot run 96
        assert row["status"] == "unsupported", row
        continue
    assert row["status"] == "ok", row
    assert math.isfinite(row["nll"]) and row["tokens"] > 0, row
PY
  count=$((count + 1))
done
[ "$count" -ge 20 ] || fail "only $count configs found"

# Every row of a treated evaluation is ok, finite and complete; each preset's treatments all ran.
check_treated() {  # RESULTS PRESET
  python3 - "$1" "$2" <<'PY' || fail "treated results $1"
import json, math, sys
doc = json.load(open(sys.argv[1]))
preset = json.load(open(sys.argv[2]))
assert doc["complete"] is True
names = {t["name"] for t in preset["treatments"]}
assert names <= {t["name"] for t in doc["treatments"]}, names
for row in doc["results"]:
    assert row["status"] == "ok" and math.isfinite(row["nll"]) and row["tokens"] > 0, row
PY
}
# Treatments: every preset on a RoPE run; the HWFA2 switch on both HWFA2 runs; InvLeaky → RoPE on its run.
for preset in su_table rope_scaling rerope windows; do
  "$extrap" eval --run "$work/runs/rope" --lengths 32,96 --max-tokens 192 --threads 1 --out "$work/$preset.json" \
    --treatments "$src/configs/eval/$preset.json" >"$work/$preset.log" 2>&1 || fail "treatments $preset: $(tail -2 "$work/$preset.log")"
  check_treated "$work/$preset.json" "$src/configs/eval/$preset.json"
done
for run in hwfa2 hwfa2_f2; do
  "$extrap" eval --run "$work/runs/$run" --lengths 96 --max-tokens 192 --threads 1 --out "$work/$run.json" \
    --treatments "$src/configs/eval/hwfa2.json" >"$work/$run.log" 2>&1 || fail "$run treatments: $(tail -2 "$work/$run.log")"
  check_treated "$work/$run.json" "$src/configs/eval/hwfa2.json"
done
"$extrap" eval --run "$work/runs/invleaky_rerope" --lengths 96 --max-tokens 192 --threads 1 --no-baseline \
  --out "$work/invleaky.json" --treatments "$src/configs/eval/invleaky.json" >"$work/invleaky.log" 2>&1 ||
  fail "invleaky treatments: $(tail -2 "$work/invleaky.log")"
check_treated "$work/invleaky.json" "$src/configs/eval/invleaky.json"
# A RoPE treatment on an ALiBi run is refused with one line.
out=$("$extrap" eval --run "$work/runs/alibi" --lengths 96 --treatments "$src/configs/eval/rope_scaling.json" 2>&1 >/dev/null); status=$?
[ "$status" -eq 2 ] || fail "RoPE treatment on ALiBi: exit $status"
printf '%s' "$out" | grep -q 'treatment "PI".position.scaling: not a parameter of alibi' || fail "RoPE treatment on ALiBi: $out"
echo "smoke: $count configs trained and evaluated; treatments evaluated"
