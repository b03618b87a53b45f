#!/usr/bin/env bash
# The main job: install, build, fetch and prepare the Brown corpus, train a small sweep of position
# schemes at length 128 and evaluate each at 128, 512, 2048 and 8192 tokens, then print the table.
# Re-running skips finished work. About 10 minutes on a 2-core machine (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
EXTRAP_BUILD_TESTS=OFF EXTRAP_BUILD_TARGET=extrap scripts/build.sh
scripts/fetch_corpus.sh brown
[ -f data/prepared/brown/metadata.json ] || build/extrap data --corpus brown --input data/raw/brown --out data/prepared/brown
scripts/sweep.sh --runs runs/demo --lengths 128,512,2048,8192 --max-tokens 16384 \
  configs/nope.json configs/sinusoidal.json configs/learned.json configs/rope.json configs/alibi.json
echo
build/extrap report --metric bpb runs/demo/{nope,sinusoidal,learned,rope,alibi}
