#!/usr/bin/env bash
# The synthetic-task study (docs/results.md, "Length generalization on copy"): generate the copy
# task (2..10 letters in training, up to 40 at test), train NoPE, RoPE, ALiBi and RoPE with
# randomized positions on its answers only, evaluate exact match per length bin and print the
# tables. Re-running skips finished work (the dataset is regenerated: it is deterministic).
# Environment: EXTRAP_THREADS (default 1: on a 2-core machine shared with other work, two
# LibTorch threads per process were several times slower than one).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
EXTRAP_BUILD_TESTS=OFF EXTRAP_BUILD_TARGET=extrap scripts/build.sh
data=data/prepared/tasks/copy
build/extrap data --task copy --train-lengths 5:21 --test-lengths 5:81 --train-examples 20000 --val-examples 500 \
  --test-examples 2000 --seed 1 --out "$data" --show 2
configs=(configs/tasks/copy_nope.json configs/tasks/copy_rope.json configs/tasks/copy_alibi.json
         configs/tasks/copy_rope_random.json)
runs=()
for config in "${configs[@]}"; do runs+=("runs/tasks/$(basename "$config" .json)"); done
# Bins by upper end: 5..21 tokens is the training range (2..10 letters); then 11-12, 13-15, 16-20,
# 21-30 and 31-40 letters.
# sweep.sh ends with the exact-match table.
EXTRAP_THREADS=${EXTRAP_THREADS:-1} scripts/sweep.sh --runs runs/tasks --protocol task --lengths 21,25,31,41,61,81 \
  "${configs[@]}"
echo
echo "== answer-token accuracy per length bin"
build/extrap report --metric acc "${runs[@]}"
echo
build/extrap plot "${runs[@]}" --out runs/tasks/figures
