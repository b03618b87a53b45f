#!/usr/bin/env bash
# Bytes vs subword tokens (docs/results.md, "Bytes or a 4K SentencePiece vocabulary"): RoPE and
# ALiBi trained on Brown at 256 tokens, once on bytes and once on a 4,096-piece SentencePiece BPE
# vocabulary trained on Brown's train split, with the same model body (d_model 128, 2 heads of 64,
# 4 layers) and the same training tokens (500 steps x 16 x 256). Each is evaluated in bits per byte
# (comparable across tokenizers) at 1x, 4x and 16x its training length in tokens.
# Re-running skips finished work; an interrupted run resumes from its last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
EXTRAP_BUILD_TESTS=OFF EXTRAP_BUILD_TARGET=extrap scripts/build.sh
scripts/fetch_corpus.sh brown
[ -f data/prepared/brown/metadata.json ] || build/extrap data --corpus brown --input data/raw/brown --out data/prepared/brown
[ -f data/prepared/brown_sp4k/metadata.json ] ||
  build/extrap data --corpus brown --input data/raw/brown --out data/prepared/brown_sp4k --tokenizer sentencepiece --vocab-size 4096
runs=runs/tokenizers models=(rope_bytes alibi_bytes rope_sp4k alibi_sp4k)
mkdir -p "$runs"
for m in "${models[@]}"; do
  dir=$runs/$m
  if [ ! -f "$dir/DONE" ]; then
    resume=(); [ -f "$dir/config.json" ] && resume=(--resume)
    echo "== $m: training (log: $dir.train.log)"
    build/extrap train --config "configs/tokenizers/$m.json" --out "$dir" "${resume[@]}" > "$dir.train.log" 2>&1
  fi
  if [ ! -f "$dir/results/lengths.json" ] || [ "$dir/results/lengths.json" -ot "$dir/DONE" ]; then
    echo "== $m: bits per byte at 256, 1024 and 4096 tokens"
    build/extrap eval --run "$dir" --lengths 256,1024,4096 --max-tokens 65536 --split test \
      --out "$dir/results/lengths.json" > /dev/null
  fi
done
echo; echo "== bits per byte on Brown's test split, by window length in tokens of each run's tokenizer"
build/extrap report --metric bpb "$runs"/*/results/lengths.json
