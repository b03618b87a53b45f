#!/usr/bin/env bash
# A real one-node Slurm cluster: installs Debian's slurm-wlm and munge when missing, starts munged,
# slurmctld and slurmd with private state under a temporary directory (the node sized from nproc and
# the free memory, no cgroups), submits a 4-run sweep of tiny models (2 configs x 2 seeds) as one job
# array with `extrap sweep submit`, waits for it and its report job, checks every result, the status
# and the report (seeds aggregated), checks that a re-submission finds nothing to do, and shuts the
# cluster down on exit. Runs as root or through sudo (the daemons need it).
# Usage: tests/slurm_test.sh EXTRAP_BINARY
set -uo pipefail
extrap=$(realpath "${1:?usage: slurm_test.sh EXTRAP_BINARY}")
source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"
source "$(dirname "${BASH_SOURCE[0]}")/tiny_configs.sh"
sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "slurm_test: installing slurm-wlm and munge"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null ||
    fail "apt-get install slurm-wlm munge"
fi
[ "$(id -u)" -eq 0 ] || exec "${sudo_cmd[@]}" env PATH="$PATH" "$0" "$extrap"

work=$(mktemp -d /tmp/extrap_slurm.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  [ -n "${SLURM_CONF:-}" ] && scancel --full --quiet --name extrap-tiny 2>/dev/null
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
started=$(date +%s)

# munged with its own key and socket (munge insists on private directories and key).
mkdir -p "$work/munge" && chmod 700 "$work/munge"
dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 2>/dev/null && chmod 400 "$work/munge/munge.key"
munged --foreground --force --key-file "$work/munge/munge.key" --socket "$work/munge/munge.socket" \
  --pid-file "$work/munge/munged.pid" --log-file "$work/munge/munged.log" --seed-file "$work/munge/munged.seed" \
  >"$work/munge/munged.out" 2>&1 &
pids+=($!)

host=$(hostname -s)
cpus=$(nproc)
memory=$(( $(awk '/MemAvailable/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))  # MiB: 80% of what is free
port=$(( 20000 + RANDOM % 20000 ))
mkdir -p "$work/state" "$work/spool" "$work/log"
cat > "$work/slurm.conf" <<CONF
ClusterName=extraptest
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$work/munge/munge.socket
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=600
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$work/slurm.conf
for _ in $(seq 1 50); do [ -S "$work/munge/munge.socket" ] && break; sleep 0.1; done
slurmctld -D -f "$SLURM_CONF" >"$work/log/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" -N "$host" >"$work/log/slurmd.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && break; sleep 1; done
[ "$(sinfo -h -o %T 2>/dev/null)" = idle ] || fail "the node did not come up: $(tail -5 "$work"/log/*.log)"
echo "slurm_test: one-node cluster up ($cpus CPUs, $memory MiB) after $(( $(date +%s) - started )) s"

# A tiny dataset, two configs, two seeds each.
cd "$work"
tiny_configs "$extrap" 30
cat > tiny.json <<JSON
{"configs": ["rope.json", "alibi.json"], "seeds": [1, 2], "runs": "runs",
 "eval": {"lengths": [32, 64], "max_tokens": 256},
 "slurm": {"partition": "test", "time": "0:10:00", "cpus_per_task": 1}}
JSON
"$extrap" sweep submit tiny.json > submit.out 2>&1 || fail "sweep submit: $(cat submit.out)"
cat submit.out
array=$(sed -n 's/^submitted job array \([0-9]*\) .*/\1/p' submit.out)
report=$(sed -n 's/.* and report job \([0-9]*\) .*/\1/p' submit.out)
[ -n "$array" ] && [ -n "$report" ] || fail "no job ids in: $(cat submit.out)"
expect="jobs of this sweep are still queued or running" expect_error "$extrap" sweep submit tiny.json
for _ in $(seq 1 300); do [ -z "$(squeue -h -j "$array,$report" 2>/dev/null)" ] && break; sleep 1; done
[ -z "$(squeue -h -j "$array,$report")" ] || fail "jobs still queued after 300 s: $(squeue)"
echo "slurm_test: the array and the report job finished $(( $(date +%s) - started )) s after the start"

for run in rope_seed=1 rope_seed=2 alibi_seed=1 alibi_seed=2; do
  [ -f "runs/$run/DONE" ] || fail "$run: not trained; log: $(cat "runs/.sweep/logs/$run.log")"
  grep -q '"complete": true' "runs/$run/results/eval.json" || fail "$run: no complete results"
  grep -q "Slurm job ${array}_" "runs/.sweep/logs/$run.log" || fail "$run: its log does not name the array task"
  grep -q "== $run: trained and evaluated" "runs/.sweep/logs/$run.log" || fail "$run: log: $(cat "runs/.sweep/logs/$run.log")"
done
"$extrap" sweep status tiny.json | tail -1 | grep -qx "4 runs: 4 evaluated" || fail "status: $("$extrap" sweep status tiny.json)"
cat runs/.sweep/report.txt
grep -q "4 runs: 4 evaluated" runs/.sweep/report.txt || fail "report job: no status"
grep -Eq '^rope +rope +1,2 +32 +[0-9.]+ ± [0-9.]+ +[0-9.]+ ± [0-9.]+$' runs/.sweep/report.txt || fail "report job: no rope line over seeds 1,2"
grep -Eq '^alibi +alibi +1,2 +32 +[0-9.]+ ± [0-9.]+' runs/.sweep/report.txt || fail "report job: no alibi line over seeds 1,2"
"$extrap" sweep submit tiny.json | grep -q "is evaluated; nothing to submit" || fail "a re-submission found work"

# Data parallel through srun: one run trained and evaluated by 2 tasks of one array task
# (parallel_per_task), equal to the 1-process run of the same config and seed.
cat > ddp.json <<JSON
{"configs": ["rope.json"], "seeds": [1], "runs": "runs-ddp",
 "eval": {"lengths": [32, 64], "max_tokens": 256},
 "slurm": {"partition": "test", "time": "0:10:00", "cpus_per_task": 1, "parallel_per_task": 2}}
JSON
"$extrap" sweep submit ddp.json > submit-ddp.out 2>&1 || fail "sweep submit (ddp): $(cat submit-ddp.out)"
ddp_jobs=$(sed -n 's/^submitted job array \([0-9]*\) .* and report job \([0-9]*\) .*/\1,\2/p' submit-ddp.out)
[ -n "$ddp_jobs" ] || fail "no job ids in: $(cat submit-ddp.out)"
for _ in $(seq 1 300); do [ -z "$(squeue -h -j "$ddp_jobs" 2>/dev/null)" ] && break; sleep 1; done
ddp_run=runs-ddp/rope_seed=1
[ -f "$ddp_run/DONE" ] || fail "srun data-parallel run not trained; log: $(cat runs-ddp/.sweep/logs/rope_seed=1.log)"
grep -q '"launcher": "slurm"' "$ddp_run/run.json" && grep -q '"world_size": 2' "$ddp_run/run.json" ||
  fail "the srun run was not trained by 2 Slurm tasks: $(cat "$ddp_run/run.json")"
grep -q '"world_size": 2' "$ddp_run/results/eval.json" || fail "the srun evaluation did not run on 2 tasks"
python3 - runs/rope_seed=1 "$ddp_run" <<'PY' || fail "the srun data-parallel run differs from the 1-process run"
import json, sys
a, b = ([json.loads(l) for l in open(d + "/metrics.jsonl") if l.strip()] for d in sys.argv[1:3])
assert len(a) == len(b)
for x, y in zip(a, b):
    for k in ("loss", "val_loss"):
        if k in x: assert abs(x[k] - y[k]) <= 1e-5 * abs(x[k]), (x["step"], k, x[k], y[k])
PY
echo "slurm_test: data-parallel run under srun (2 tasks) matches the 1-process run"
echo "slurm_test: passed in $(( $(date +%s) - started )) s"
