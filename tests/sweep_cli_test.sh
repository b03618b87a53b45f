#!/usr/bin/env bash
# `extrap sweep` through the real binary: bad sweep files give one line, exit 2 and write nothing;
# a 2 configs x 2 seeds sweep of tiny models runs here two at a time, is reported with seeds
# aggregated and skipped when run again; an interrupted run resumes; a failing evaluation is listed
# with its log and redone alone once the sweep file is fixed. Usage: sweep_cli_test.sh EXTRAP_BINARY
set -uo pipefail
extrap=$(realpath "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"
source "$(dirname "${BASH_SOURCE[0]}")/tiny_configs.sh"
cd "$work"

tiny_configs "$extrap" 20
sweep() { echo "{\"configs\": [\"rope.json\", \"alibi.json\"], \"runs\": \"runs\", \"threads\": 1, $1}" > "$2"; }

sweep '"seeds": [1], "seed": 2' typo.json
expect="typo.json: seed: unknown key (known here: name, runs, configs" expect_error "$extrap" sweep plan typo.json
sweep '"grid": {"position.base": []}' empty.json
expect="empty.json: grid.position.base: is empty: a grid key needs at least one value" expect_error "$extrap" sweep run empty.json
echo '{"configs": ["rope.json", "gone.json"], "runs": "runs"}' > absent.json
expect="absent.json: run gone: $work/gone.json: config file not found" expect_error "$extrap" sweep run absent.json
sweep '"set": ["model.d_model=33"]' badset.json
expect="badset.json: run rope: --set model.d_model=33: model.d_model: 33 is not divisible" expect_error "$extrap" sweep run badset.json
sweep '"eval": {"protocols": ["nonoverlap", "bogus"]}' protocol.json
expect='protocol.json: eval.protocols: --protocol: "bogus" is not a protocol' expect_error "$extrap" sweep run protocol.json
expect="nowhere.json: sweep file not found" expect_error "$extrap" sweep status nowhere.json
sweep '"seeds": [1, 2], "eval": {"lengths": [32, 64], "max_tokens": 256}' tiny.json
expect="sbatch not found on PATH" expect_error env PATH=/nonexistent "$extrap" sweep submit tiny.json
[ ! -e runs ] || fail "a refused sweep wrote $(find runs)"

"$extrap" sweep plan tiny.json > plan.out || fail "plan"
[ "$(sed -n '4,7p' plan.out | awk '{print $1}' | tr '\n' ' ')" = "rope_seed=1 rope_seed=2 alibi_seed=1 alibi_seed=2 " ] ||
  fail "plan: $(cat plan.out)"
[ ! -e runs ] || fail "plan wrote $(find runs)"

"$extrap" sweep run tiny.json --jobs 2 > run.out 2>&1 || fail "sweep run: $(cat run.out)"
grep -Eq '^rope +rope +1,2 +32 +[0-9.]+ ± [0-9.]+ +[0-9.]+ ± [0-9.]+$' run.out || fail "no aggregated rope line: $(cat run.out)"
"$extrap" sweep status tiny.json | tail -1 | grep -qx "4 runs: 4 evaluated" || fail "status after the run"
"$extrap" sweep run tiny.json > again.out 2>&1 || fail "second run"
[ "$(grep -c ': evaluated (skipping)' again.out)" -eq 4 ] || fail "the second run redid work: $(cat again.out)"
"$extrap" report runs/rope_seed=1 runs/rope_seed=2 --format csv | grep -q '^run,scheme,seeds,train,32,64$' || fail "report csv"
mkdir -p runs/unfinished && echo '{}' > runs/unfinished/config.json
"$extrap" report runs/rope_seed=1 runs/unfinished | grep -qx "missing: runs/unfinished: training not finished (no DONE)" ||
  fail "report of a run without results"

# Interrupted like Ctrl-C (the whole process group): the run resumes from its checkpoint.
sweep '"set": ["train.steps=2000"], "seeds": [3], "eval": {"lengths": [32], "max_tokens": 256}' long.json
setsid "$extrap" sweep run long.json > long.out 2>&1 &
pid=$!
for _ in $(seq 1 300); do grep -q "step     30/" runs/.sweep/logs/rope_seed=3.log 2>/dev/null && break; sleep 0.1; done
kill -INT -- "-$pid"; wait "$pid"; status=$?
[ "$status" -eq 130 ] || fail "interrupted sweep exited $status: $(cat long.out)"
"$extrap" sweep status long.json | grep -q "^rope_seed=3  *interrupted  *train exited 130" || fail "status: $("$extrap" sweep status long.json)"
grep -q "^alibi_seed=3 *missing" <("$extrap" sweep status long.json) || fail "alibi_seed=3 started after the interrupt"
expect="long.json: no run of this sweep has results yet" expect_error "$extrap" report --sweep long.json

# An evaluation that fails is listed with its log; fixing the sweep file redoes only the evaluation.
sweep '"seeds": [1], "eval": {"lengths": [32, 4096], "protocols": ["suffix"]}' suffix.json
"$extrap" sweep run suffix.json > suffix.out 2>&1; status=$?
[ "$status" -eq 1 ] || fail "a failing sweep exited $status"
grep -q "2 of 2 runs failed: rope_seed=1 (exit 2, log runs/.sweep/logs/rope_seed=1.log)" suffix.out || fail "$(cat suffix.out)"
grep -q "no test document is long enough for length 4096" suffix.out || fail "the failure's log tail: $(cat suffix.out)"
"$extrap" sweep status suffix.json | grep -q "^rope_seed=1  *failed  *eval exited 2; log runs/.sweep/logs/rope_seed=1.log" ||
  fail "status of a failure"
sweep '"seeds": [1], "eval": {"lengths": [32, 64], "protocols": ["suffix"]}' suffix.json
"$extrap" sweep run suffix.json > fixed.out 2>&1 || fail "fixed sweep: $(cat fixed.out)"
[ "$(grep -c '^+ .* train ' runs/.sweep/logs/rope_seed=1.log)" -eq 1 ] || fail "the fixed sweep trained again"
echo "sweep_cli_test: passed"
