#!/usr/bin/env bash
# End-to-end through the real binary: bad input gives one line, exit status 2 and leaves runs
# untouched; a tiny corpus is prepared, trained, interrupted with SIGINT, resumed, evaluated and
# reported. Usage: cli_test.sh EXTRAP_BINARY
set -uo pipefail
extrap=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"

mkdir -p "$work/corpus"
for i in $(seq 1 24); do
  for j in $(seq 1 40); do echo "Document $i line $j: the quick brown fox $((i * j)) jumps over the lazy dog."; done > "$work/corpus/doc$i.txt"
done
"$extrap" data --corpus text --input "$work/corpus" --out "$work/data" >/dev/null 2>&1 || fail "data"

# JSON Lines (blank lines skipped, documents named file:line) and a source tree (recursive, by
# relative path); a bad line, a bad extension or a reader flag for another reader writes nothing.
for i in $(seq 1 12); do printf '{"id": %s, "text": "Document %s: caf\\u00e9 \\"quoted\\""}\n\n' "$i" "$i"; done > "$work/docs.jsonl"
"$extrap" data --corpus jsonl --input "$work/docs.jsonl" --out "$work/jsonl" >/dev/null 2>&1 || fail "data --corpus jsonl"
grep -q $'\tdocs.jsonl:3$' "$work/jsonl/documents.tsv" || fail "jsonl document names: $(head -3 "$work/jsonl/documents.tsv")"
mkdir -p "$work/tree/lib"
for i in $(seq 1 8); do printf 'int f%s(void) { return %s; }\n' "$i" "$i" > "$work/tree/f$i.c"; done
echo '#define LIB 1' > "$work/tree/lib/lib.h"; echo 'not code' > "$work/tree/README.txt"
"$extrap" data --corpus code --input "$work/tree" --extensions .h,.c --out "$work/code" >/dev/null 2>&1 || fail "data --corpus code"
[ "$(tail -n +2 "$work/code/documents.tsv" | wc -l)" -eq 9 ] || fail "code documents: $(cat "$work/code/documents.tsv")"
grep -q $'\tlib/lib.h$' "$work/code/documents.tsv" || fail "code document names"
printf '{"text": "fine"}\n{"text": ""}\n' > "$work/bad.jsonl"
expect="bad.jsonl:2: field \"text\" is an empty string" expect_error "$extrap" data --corpus jsonl --input "$work/bad.jsonl" --out "$work/refused"
expect='docs.jsonl:1: no "body" field (choose one with --text-field)' expect_error "$extrap" data --corpus jsonl --input "$work/docs.jsonl" --text-field body --out "$work/refused"
expect="--text-field applies only to --corpus jsonl" expect_error "$extrap" data --corpus text --input "$work/corpus" --text-field body --out "$work/refused"
expect="--extensions applies only to --corpus code" expect_error "$extrap" data --corpus jsonl --input "$work/docs.jsonl" --extensions .c --out "$work/refused"
expect='extension "c": expected a dot and a suffix' expect_error "$extrap" data --corpus code --input "$work/tree" --extensions .h,c --out "$work/refused"
expect="no files with the extensions .py found" expect_error "$extrap" data --corpus code --input "$work/tree" --extensions .py --out "$work/refused"
expect="--text-field does not apply to --task datasets" expect_error "$extrap" data --task copy --text-field body --out "$work/refused"
[ ! -e "$work/refused" ] || fail "a refused extrap data wrote its output"

cat > "$work/tiny.json" <<JSON
{"model": {"d_model": 32, "n_layers": 2, "n_heads": 2},
 "position": {"scheme": "rope"},
 "data": {"dataset": "$work/data", "train_length": 32},
 "train": {"batch_size": 4, "steps": 400, "warmup_steps": 2, "log_interval": 1, "eval_interval": 100,
           "eval_tokens": 256, "checkpoint_interval": 1000}}
JSON

expect="config file not found" expect_error "$extrap" train --config "$work/missing.json"
echo '{"model": {"d_modle": 3}}' > "$work/typo.json"
expect="model.d_modle: unknown key" expect_error "$extrap" train --config "$work/typo.json"
expect="model.d_model" expect_error "$extrap" train --config "$work/tiny.json" --set model.d_model=33
expect="data.train_length" expect_error "$extrap" train --config "$work/tiny.json" --set data.train_length=-4
expect="dataset directory not found" expect_error "$extrap" train --config "$work/tiny.json" --set data.dataset=/nonexistent
expect="not a run directory" expect_error "$extrap" eval --run "$work/nothing" --lengths 32

# Interrupt a run with SIGINT: it must checkpoint and exit 130; --resume then finishes it.
"$extrap" train --config "$work/tiny.json" --out "$work/run" --threads 1 >"$work/train.log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do grep -q "step     20/" "$work/train.log" 2>/dev/null && break; sleep 0.1; done
kill -INT "$pid"; wait "$pid"; status=$?
[ "$status" -eq 130 ] || fail "interrupted train exited $status, expected 130"
ls "$work/run/checkpoints" | grep -q '^step_' || fail "no checkpoint after SIGINT"
[ ! -f "$work/run/DONE" ] || fail "DONE written for an interrupted run"

before=$(cat "$work/run/config.json")
expect="use --resume" expect_error "$extrap" train --config "$work/tiny.json" --out "$work/run"
[ "$before" = "$(cat "$work/run/config.json")" ] || fail "refused train modified the run"

"$extrap" train --config "$work/tiny.json" --out "$work/run" --resume --threads 1 >"$work/resume.log" 2>&1 || fail "resume: $(tail -3 "$work/resume.log")"
[ -f "$work/run/DONE" ] || fail "resumed run did not finish"

"$extrap" eval --run "$work/run" --lengths 32,64 --max-tokens 256 --threads 1 >/dev/null 2>&1 || fail "eval"
grep -q '"schema": "extrap.eval/3"' "$work/run/results/eval.json" || fail "results schema"
"$extrap" report "$work/run" --format csv | grep -q '^run,scheme,train,32,64$' || fail "report csv header"

# Several protocols in one call: one column per (length, protocol) in the report.
"$extrap" eval --run "$work/run" --lengths 32,64 --max-tokens 256 --protocol nonoverlap,repeated \
  --out "$work/multi.json" --threads 1 >/dev/null 2>&1 || fail "eval --protocol nonoverlap,repeated"
"$extrap" report "$work/multi.json" --format csv --metric acc --part copy |
  grep -q '^run,scheme,train,32 nonoverlap,32 repeated,64 nonoverlap,64 repeated$' || fail "report protocol columns"
results_before=$(cat "$work/run/results/eval.json")
expect='"bogus" is not a protocol' expect_error "$extrap" eval --run "$work/run" --lengths 32 --protocol nonoverlap,bogus
expect="--stride 64 is not in" expect_error "$extrap" eval --run "$work/run" --lengths 32,64 --protocol sliding --stride 64
expect="--stride 0 is not in" expect_error "$extrap" eval --run "$work/run" --lengths 32 --protocol sliding --stride 0
expect="--stride applies only to --protocol sliding" expect_error "$extrap" eval --run "$work/run" --lengths 32 --stride 8
expect="is long enough for length 4096" expect_error "$extrap" eval --run "$work/run" --lengths 32,4096 --protocol suffix
expect="missing.json: treatments file not found" expect_error "$extrap" eval --run "$work/run" --lengths 32 --treatments "$work/missing.json"
echo '{"name": "bad", "position": {"scaling": "ntk"}}' > "$work/bad_treatment.json"
expect='treatment "bad": position.scaling: "ntk" is not one of none, pi' expect_error "$extrap" eval --run "$work/run" --lengths 32 --treatments "$work/bad_treatment.json"
echo '{"treatments": [{"name": "PI", "position": {"scaling": "pi"}}, {"name": "PI"}]}' > "$work/twice.json"
expect='duplicate treatment name "PI"' expect_error "$extrap" eval --run "$work/run" --lengths 32 --treatments "$work/twice.json"
expect="--lengths: 64 is given twice" expect_error "$extrap" eval --run "$work/run" --lengths 32,64,64
expect='--lengths: "" is not a positive integer' expect_error "$extrap" eval --run "$work/run" --lengths 32,
expect="is a directory, expected a file path" expect_error "$extrap" eval --run "$work/run" --lengths 32 --out "$work/run"
echo '{"name": "qkb", "attention": {"qk_bias": true}}' > "$work/qk_treatment.json"
expect='treatment "qkb".attention.qk_bias: unknown key' expect_error "$extrap" eval --run "$work/run" --lengths 32 --treatments "$work/qk_treatment.json"
expect='--precision: "fp16" is not one of fp32, bf16' expect_error "$extrap" eval --run "$work/run" --lengths 32 --precision fp16
[ "$results_before" = "$(cat "$work/run/results/eval.json")" ] || fail "a refused eval rewrote the results"
expect='--precision: "fp16" is not one of fp32, bf16' expect_error "$extrap" train --config "$work/tiny.json" --out "$work/other" --precision fp16
expect='train.precision: "fp16" is not one of fp32, bf16' expect_error "$extrap" train --config "$work/tiny.json" --out "$work/other" --set train.precision=fp16
[ ! -e "$work/other" ] || fail "a refused train created its run directory"
expect='--precision: "x" is not one of fp32, bf16' expect_error "$extrap" bench --steps 1 --precision x
expect="differs from $work/run/config.json at /train/precision" expect_error "$extrap" train --out "$work/run" --resume --precision bf16
if ! command -v nvidia-smi >/dev/null; then
  expect="--device cuda: this LibTorch build or machine has no CUDA device" expect_error "$extrap" eval --run "$work/run" --lengths 32 --device cuda
fi
# bf16 evaluation of the fp32 run: recorded in the results, close to the fp32 numbers.
"$extrap" eval --run "$work/run" --lengths 32 --max-tokens 256 --precision bf16 --out "$work/bf16.json" --threads 1 \
  >/dev/null 2>&1 || fail "eval --precision bf16"
grep -q '"precision": "bf16"' "$work/bf16.json" || fail "bf16 results do not record their precision"
grep -q '"precision": "fp32"' "$work/run/results/eval.json" || fail "fp32 results do not record their precision"
expect="expected table, markdown or csv" expect_error "$extrap" report "$work/run" --format html
expect="--layout wide: expected runs, su or probe" expect_error "$extrap" report "$work/run" --layout wide

# Retrieval probes: rows beside the LM protocols in one document, a depth x length grid in the report.
"$extrap" eval --run "$work/run" --lengths 300,400 --max-tokens 256 --protocol nonoverlap,passkey,mqar --depths 0,1 \
  --trials 2 --out "$work/probe.json" --threads 1 >/dev/null 2>&1 || fail "eval --protocol passkey,mqar"
grid=$("$extrap" report "$work/probe.json" --layout probe --format csv)
[ "$(printf '%s\n' "$grid" | cut -d, -f3,4 | tr '\n' ' ')" = "probe,depth passkey,0.00 passkey,1.00 passkey,all passkey,control mqar,all mqar,control " ] \
  || fail "probe grid lines: $grid"
[ "$(printf '%s\n' "$grid" | head -1)" = "run,treatment,probe,depth,300,400" ] || fail "probe grid header: $grid"
"$extrap" report "$work/probe.json" --format csv | head -1 | grep -q '^run,scheme,train,300 nonoverlap,300 passkey,300 mqar,' \
  || fail "probe columns in the runs layout"
expect="--layout probe: no probe rows" expect_error "$extrap" report "$work/run" --layout probe
expect="--metric ppl: the probe layout shows em, acc, logprob or greedy" expect_error "$extrap" report "$work/probe.json" --layout probe --metric ppl
expect='"passky" is not a protocol (expected nonoverlap, sliding, suffix or repeated, a probe: passkey' expect_error "$extrap" eval --run "$work/run" --lengths 300 --protocol passky
expect="--protocol: passkey is given twice" expect_error "$extrap" eval --run "$work/run" --lengths 300 --protocol passkey,passkey
expect="--depths: 1.5 is outside" expect_error "$extrap" eval --run "$work/run" --lengths 300 --protocol passkey --depths 0,1.5
expect='--depths: "x" is not a number' expect_error "$extrap" eval --run "$work/run" --lengths 300 --protocol passkey --depths 0,x
expect="--lengths 64: too short for the passkey probe" expect_error "$extrap" eval --run "$work/run" --lengths 64,300 --protocol passkey
expect="--depths applies only to the probes" expect_error "$extrap" eval --run "$work/run" --lengths 32 --depths 0.5
expect="--haystack sky: expected fixed or natural" expect_error "$extrap" eval --run "$work/run" --lengths 300 --protocol passkey --haystack sky
[ "$results_before" = "$(cat "$work/run/results/eval.json")" ] || fail "a refused probe eval rewrote the results"

# Treatments: one line per treatment; the Su layout has natural and repeated columns per length.
echo '{"treatments": [{"name": "PI", "position": {"scaling": "pi"}}, {"name": "logn†", "attention": {"logn": "inference"}}]}' > "$work/treatments.json"
"$extrap" eval --run "$work/run" --lengths 32,64 --max-tokens 256 --protocol nonoverlap,repeated \
  --treatments "$work/treatments.json" --out "$work/treated.json" --threads 1 >/dev/null 2>&1 || fail "eval --treatments"
su=$("$extrap" report "$work/treated.json" --su --format csv)
[ "$(printf '%s\n' "$su" | head -1)" = "treatment,32 natural,32 repeated,64 natural,64 repeated" ] || fail "su header: $su"
[ "$(printf '%s\n' "$su" | cut -d, -f1 | tail -n +2 | tr '\n' ' ')" = "baseline PI logn† " ] || fail "su rows: $su"
"$extrap" report "$work/treated.json" --format csv | head -1 | grep -q '^run,scheme,treatment,train,32 nonoverlap,' || fail "report treatment column"
# Probes under treatments: a grid per treatment.
"$extrap" eval --run "$work/run" --lengths 300 --protocol passkey --depths 0.5 --trials 1 --treatments "$work/treatments.json" \
  --out "$work/treated_probe.json" --threads 1 >/dev/null 2>&1 || fail "eval --protocol passkey --treatments"
[ "$("$extrap" report "$work/treated_probe.json" --layout probe --format csv | cut -d, -f2 | awk '!seen[$0]++' | tr '\n' ' ')" = "treatment baseline PI logn† " ] \
  || fail "probe grids per treatment"
# --only picks rows of the treatment files by name, in its order.
"$extrap" eval --run "$work/run" --lengths 32 --max-tokens 256 --treatments "$work/treatments.json" --only 'logn†,baseline' \
  --out "$work/only.json" --threads 1 >/dev/null 2>&1 || fail "eval --only"
[ "$("$extrap" report "$work/only.json" --format csv | cut -d, -f3 | tail -n +2 | tr '\n' ' ')" = "logn† baseline " ] || fail "--only rows"
expect='--only: no treatment named "YaRN" (available: baseline, PI, logn†)' expect_error "$extrap" eval --run "$work/run" --lengths 32 --treatments "$work/treatments.json" --only YaRN
# A killed evaluation keeps every finished row in OUT.partial.json, marked incomplete, and leaves an
# earlier OUT untouched; report reads the partial file. (SIGTERM: a background job of a
# non-interactive shell ignores SIGINT; Ctrl-C at a terminal ends it the same way.)
cp "$work/only.json" "$work/interrupted.json"
before=$(cat "$work/interrupted.json")
printf '{"treatments": [%s]}' "$(for b in 11 12 13 14 15 16 17 18; do printf '{"name": "b%s", "position": {"scaling": "ntk_aware", "factor": %s}},' $b $b; done | sed 's/,$//')" > "$work/bases.json"
"$extrap" eval --run "$work/run" --split train --lengths 32,64,128,256 --max-tokens 65536 --threads 1 \
  --treatments "$work/bases.json" --out "$work/interrupted.json" >"$work/interrupted.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do [ -f "$work/interrupted.partial.json" ] && break; sleep 0.05; done
kill -TERM "$pid"; wait "$pid"; status=$?
[ "$status" -eq 143 ] || fail "interrupted eval exited $status, expected 143 (finished before the signal?)"
[ "$before" = "$(cat "$work/interrupted.json")" ] || fail "an interrupted eval touched the earlier results"
grep -q '"complete": false' "$work/interrupted.partial.json" || fail "partial results not marked incomplete"
report=$("$extrap" report "$work/interrupted.partial.json" 2>&1) || fail "report of partial results: $report"
printf '%s' "$report" | grep -q "the evaluation stopped after [1-9]" || fail "no incomplete warning: $report"
echo "cli_test: ok"
