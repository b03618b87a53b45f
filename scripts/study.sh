#!/usr/bin/env bash
# The extrapolation study of docs/results.md ("A study at 512 tokens"): three byte-level models of
# equal size (d_model 256, 4 heads of dimension 64, 4 layers, 3.2M parameters), RoPE, ALiBi and
# NoPE, trained at 512 tokens in bf16 on the Brown corpus (configs/study/), then for each: Su's
# natural and repeated table at 1x-16x the training length (with Su's treatments for RoPE), and the
# passkey grid to 8x. About 16 minutes of training per model on 2 cores, plus about 15 minutes of
# evaluation. Re-running skips finished work; an interrupted run resumes from its last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
EXTRAP_BUILD_TESTS=OFF EXTRAP_BUILD_TARGET=extrap scripts/build.sh
scripts/fetch_corpus.sh brown
[ -f data/prepared/brown/metadata.json ] || build/extrap data --corpus brown --input data/raw/brown --out data/prepared/brown
runs=runs/study schemes=(rope alibi nope)

for s in "${schemes[@]}"; do
  dir=$runs/$s
  if [ ! -f "$dir/DONE" ]; then
    resume=(); [ -f "$dir/config.json" ] && resume=(--resume)
    echo "== $s: training (log: $dir.train.log)"
    mkdir -p "$runs"
    build/extrap train --config "configs/study/$s.json" --out "$dir" "${resume[@]}" > "$dir.train.log" 2>&1
  fi
done

# Results are redone when the model or the treatments are newer than them.
stale() { [ ! -f "$1" ] || [ "$1" -ot "$2" ] || [ "$1" -ot "${3:-$2}" ]; }
for s in "${schemes[@]}"; do
  dir=$runs/$s
  treatments=(); [ "$s" = rope ] && treatments=(--treatments configs/eval/su_table.json)
  if stale "$dir/results/su_table.json" "$dir/DONE" configs/eval/su_table.json; then
    echo "== $s: Su's table (natural and repeated, 512 to 8192)"
    build/extrap eval --run "$dir" --lengths 512,2048,4096,8192 --max-tokens 8192 --protocol nonoverlap,repeated \
      "${treatments[@]}" --out "$dir/results/su_table.json" > /dev/null
  fi
  if stale "$dir/results/passkey.json" "$dir/DONE"; then
    echo "== $s: passkey grid (512 to 4096)"
    build/extrap eval --run "$dir" --lengths 512,1024,2048,4096 --protocol passkey --depths 0,0.25,0.5,0.75,1 \
      --trials 8 --out "$dir/results/passkey.json" > /dev/null
  fi
done

for s in "${schemes[@]}"; do
  echo; echo "== $s: Su's table (accuracy %; natural | repeated, copy half)"
  build/extrap report --su "$runs/$s/results/su_table.json"
done
echo
build/extrap report --layout probe "$runs"/{rope,alibi,nope}/results/passkey.json
echo
build/extrap plot "$runs"/{rope,alibi,nope} --out "$runs/figures"
