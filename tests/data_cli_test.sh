#!/usr/bin/env bash
# End to end through the real binary on generated fixtures: a SentencePiece dataset, a JSONL file
# under a given SentencePiece model, llm.c shards
# (versions 1 and 7) and nanoGPT .bin files are prepared, trained on, evaluated (bits per byte,
# probes re-encoded by the tokenizer) and reported; bad shards and options give one line and exit 2
# with nothing written. Usage: data_cli_test.sh EXTRAP_BINARY
set -uo pipefail
extrap=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"

# 24 documents of made-up words (300 of them, two or three syllables), enough for BPE to learn merges.
python3 - "$work/corpus" <<'PY'
import os, random, sys
syllables = "ka lo mi sen tu ra vel do pi ner sha qu bo te gi".split()
words = ["".join(random.Random(w).choice(syllables) for _ in range(2 + w % 2)) for w in range(300)]
os.makedirs(sys.argv[1])
for d in range(24):
    rng = random.Random(1000 + d)
    lines = [" ".join(rng.choice(words) for _ in range(9)) + ", number %d." % rng.randrange(10000) for _ in range(60)]
    open(os.path.join(sys.argv[1], "doc%02d.txt" % d), "w").write("\n".join(lines) + "\n")
PY

train_eval() {  # NAME DATASET VOCAB: a few steps of training, then an evaluation at 2x
  cat > "$work/$1.json" <<JSON
{"model": {"d_model": 32, "n_layers": 2, "n_heads": 2, "vocab_size": $3},
 "position": {"scheme": "rope"},
 "data": {"dataset": "$2", "train_length": 32},
 "train": {"batch_size": 4, "steps": 20, "warmup_steps": 2, "log_interval": 10, "eval_interval": 10,
           "eval_tokens": 128, "checkpoint_interval": 1000}}
JSON
  "$extrap" train --config "$work/$1.json" --out "$work/runs/$1" --threads 1 >"$work/$1.log" 2>&1 || fail "train $1: $(tail -2 "$work/$1.log")"
  "$extrap" eval --run "$work/runs/$1" --lengths 32,64 --max-tokens 256 --threads 1 >"$work/$1.eval.log" 2>&1 ||
    fail "eval $1: $(tail -2 "$work/$1.eval.log")"
}

# (a) SentencePiece: trained on the train split, stored and recorded; bits per byte from piece lengths.
"$extrap" data --corpus text --input "$work/corpus" --out "$work/sp" --tokenizer sentencepiece --vocab-size 160 \
  >/dev/null 2>&1 || fail "data --tokenizer sentencepiece"
[ -f "$work/sp/tokenizer.model" ] || fail "no tokenizer.model"
grep -q '"type": "sentencepiece"' "$work/sp/metadata.json" || fail "tokenizer not recorded"
train_eval sp "$work/sp" 160
expect="model.vocab_size 100 is smaller than the vocabulary of $work/sp (160 ids)" \
  expect_error "$extrap" train --config "$work/sp.json" --set model.vocab_size=100 --out "$work/runs/sp_small"
[ ! -e "$work/runs/sp_small" ] || fail "a refused train wrote its run directory"
grep -q '"bits_per_byte": null' "$work/runs/sp/results/eval.json" && fail "sp: bits per byte missing"
"$extrap" eval --run "$work/runs/sp" --lengths 256 --protocol passkey --depths 0.5 --trials 2 --out "$work/sp_passkey.json" \
  --threads 1 >/dev/null 2>&1 || fail "passkey under sentencepiece"
grep -q '"prompt_bytes"' "$work/sp_passkey.json" || fail "passkey prompts not re-encoded"

# Bytes on the same corpus: bits per byte compare; per-token perplexity does not.
"$extrap" data --corpus text --input "$work/corpus" --out "$work/bytes" >/dev/null 2>&1 || fail "data bytes"
train_eval bytes "$work/bytes" 257
"$extrap" report --metric bpb "$work/runs/bytes/results/eval.json" "$work/runs/sp/results/eval.json" >"$work/report.txt" 2>&1 ||
  fail "report --metric bpb across tokenizers: $(cat "$work/report.txt")"
grep -q "not comparable" "$work/report.txt" && fail "same text under two tokenizers flagged as other data"
expect="use --metric bpb" expect_error "$extrap" report "$work/runs/bytes/results/eval.json" "$work/runs/sp/results/eval.json"
expect="differs from the one the run was trained with" \
  expect_error "$extrap" eval --run "$work/runs/sp" --data "$work/bytes" --lengths 32

# (d) JSON Lines, one document per line, tokenized by a SentencePiece model given as a file.
python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
with open(f"{work}/corpus.jsonl", "w") as out:
    for name in sorted(os.listdir(f"{work}/corpus")):
        out.write(json.dumps({"id": name, "body": open(f"{work}/corpus/{name}").read()}) + "\n")
PY
"$extrap" data --corpus jsonl --input "$work/corpus.jsonl" --text-field body --out "$work/jsonl" \
  --tokenizer sentencepiece --tokenizer-model "$work/sp/tokenizer.model" >/dev/null 2>&1 || fail "data --corpus jsonl"
cmp -s "$work/jsonl/tokenizer.model" "$work/sp/tokenizer.model" || fail "jsonl: the given model was not used"
train_eval jsonl "$work/jsonl" 160

# (b) llm.c shards, uint16 (version 1) and uint32 (version 7), and (c) nanoGPT .bin files.
python3 - "$work" <<'PY'
import struct, sys
work = sys.argv[1]
def stream(docs, first):
    out = []
    for d in range(docs):
        out.append(999)  # the end-of-text token before each document, as llm.c writes it
        out += [(first + 7 * d + t) % 900 for t in range(20 + d % 30)]
    return out
def llmc(path, tokens, version):
    magic, fmt = (20240520, "H") if version == 1 else (20240801, "I")
    header = [magic, version, len(tokens)] + [0] * 253
    with open(path, "wb") as f:
        f.write(struct.pack("<256i", *header) + struct.pack("<%d%s" % (len(tokens), fmt), *tokens))
import os
for v in (1, 7):
    os.makedirs(f"{work}/llmc{v}", exist_ok=True)
    llmc(f"{work}/llmc{v}/tiny_train_000001.bin", stream(120, 0), v)
    llmc(f"{work}/llmc{v}/tiny_train_000002.bin", stream(80, 300), v)
    llmc(f"{work}/llmc{v}/tiny_val_000000.bin", stream(40, 600), v)
os.makedirs(f"{work}/nano", exist_ok=True)
for split, n in (("train", 200), ("val", 40)):
    tokens = stream(n, 0)
    open(f"{work}/nano/{split}.bin", "wb").write(struct.pack("<%dH" % len(tokens), *tokens))
PY
for v in 1 7; do
  "$extrap" data --corpus llmc --input "$work/llmc$v" --out "$work/llmc$v.data" --vocab-size 1000 --end-of-text 999 \
    >/dev/null 2>&1 || fail "data --corpus llmc (version $v)"
  train_eval "llmc$v" "$work/llmc$v.data" 1000
  grep -q '"bits_per_byte": null' "$work/runs/llmc$v/results/eval.json" || fail "llmc: bits per byte without a vocabulary"
done
expect="carry no vocabulary" expect_error "$extrap" data --corpus nanogpt --input "$work/nano" --out "$work/nano.data"
echo '{"vocab_size": 1000, "end_of_text": 999}' > "$work/nano/meta.json"
"$extrap" data --corpus nanogpt --input "$work/nano" --out "$work/nano.data" >/dev/null 2>&1 || fail "data --corpus nanogpt"
train_eval nano "$work/nano.data" 1000
expect="probes build their prompts as text" \
  expect_error "$extrap" eval --run "$work/runs/nano" --lengths 64 --protocol passkey --trials 1 --depths 0.5

# Bad shards and options: one line naming the file and value, nothing written.
printf 'garbage' > "$work/llmc1/tiny_train_000003.bin"
expect="tiny_train_000003.bin: 7 bytes, shorter than llm.c's 1024-byte header" \
  expect_error "$extrap" data --corpus llmc --input "$work/llmc1" --out "$work/bad" --vocab-size 1000 --end-of-text 999
rm "$work/llmc1/tiny_train_000003.bin"
expect="token 0 is 999, outside the vocabulary of 500" \
  expect_error "$extrap" data --corpus llmc --input "$work/llmc1" --out "$work/bad" --vocab-size 500 --end-of-text 10
expect="--end-of-text 1000 must be below --vocab-size 1000" \
  expect_error "$extrap" data --corpus llmc --input "$work/llmc1" --out "$work/bad" --vocab-size 1000 --end-of-text 1000
expect="--tokenizer does not apply to token shards" \
  expect_error "$extrap" data --corpus llmc --input "$work/llmc1" --out "$work/bad" --tokenizer sentencepiece
expect="--end-of-text applies only to --corpus llmc or nanogpt" \
  expect_error "$extrap" data --corpus text --input "$work/corpus" --out "$work/bad" --end-of-text 3
expect="need --tokenizer sentencepiece" expect_error "$extrap" data --corpus text --input "$work/corpus" --out "$work/bad" --vocab-size 160
expect="--tokenizer bytes: expected byte or sentencepiece" \
  expect_error "$extrap" data --corpus text --input "$work/corpus" --out "$work/bad" --tokenizer bytes
[ ! -e "$work/bad" ] || fail "a refused extrap data wrote $work/bad"
echo "data_cli_test: ok"
