#!/usr/bin/env bash
# One self-contained check for a machine with a GPU, a PyTorch install with CUDA and CMake, but no
# internet and none of the Debian -dev packages. Two steps:
#   scripts/gpu_check.sh --prepare   here (Debian, after scripts/setup.sh): copies the headers of
#                                    CLI11, nlohmann/json, spdlog and fmt, GoogleTest's sources and
#                                    shared/bench/nanogpt_step.py into third_party/ (git-ignored), so
#                                    that the repository tree alone carries everything
#   scripts/gpu_check.sh             there: builds extrap against that PyTorch's LibTorch, runs the
#                                    tests, then times GPT-2-small-class training (d_model 768, 12
#                                    layers, 12 heads, T = 1024, bf16) with RoPE and ALiBi in
#                                    `extrap bench`, and the nanoGPT-style Python step with --sdpa,
#                                    without and with --compile, side by side; tokens/s and MFU.
# Without CUDA it stops after build and tests. Figures go to stdout and to $OUT (default
# build-gpu/gpu_check) as JSON. PYTHON (default python3) is the interpreter with torch;
# EXTRAP_CMAKE_ARGS adds CMake options (e.g. -DBLA_VENDOR=... to pick or skip a CBLAS).
set -euo pipefail
cd "$(dirname "$0")/.."
third_party=$PWD/third_party
if [ "${1:-}" = --prepare ]; then
  rm -rf "$third_party"
  mkdir -p "$third_party/include"
  for header in CLI nlohmann spdlog fmt; do cp -r "/usr/include/$header" "$third_party/include/"; done
  cp -r /usr/src/googletest "$third_party/googletest"
  cp "${NANOGPT_STEP:-../shared/bench/nanogpt_step.py}" "$third_party/nanogpt_step.py"
  echo "gpu_check: prepared $third_party ($(du -sh "$third_party" | cut -f1))"
  exit 0
fi
[ -d "$third_party/include" ] || { echo "gpu_check: $third_party is missing: run scripts/gpu_check.sh --prepare first" >&2; exit 2; }
python=${PYTHON:-python3}
out=${OUT:-build-gpu/gpu_check}
start=$SECONDS
prefix=$("$python" -c "import torch; print(torch.utils.cmake_prefix_path)")
cuda=$("$python" -c "import torch; print(int(torch.cuda.is_available()))")
echo "== PyTorch $("$python" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)') at $prefix"
generator=(); command -v ninja >/dev/null && generator=(-G Ninja)
mkdir -p build-gpu
cmake "${generator[@]}" -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  -DEXTRAP_THIRD_PARTY_DIR="$third_party" ${EXTRAP_CMAKE_ARGS:-} > build-gpu/configure.log ||
  { tail -40 build-gpu/configure.log; exit 1; }
cmake --build build-gpu -j"$(nproc)" > build-gpu/build.log || { tail -40 build-gpu/build.log; exit 1; }
echo "== built in $((SECONDS - start)) s; running the tests"
(cd build-gpu && ctest -j"$(nproc)" --timeout 300 --output-on-failure > ctest.log 2>&1) || { tail -60 build-gpu/ctest.log; exit 1; }
tail -3 build-gpu/ctest.log
if [ "$cuda" != 1 ]; then
  echo "== no CUDA device: build and tests only ($((SECONDS - start)) s)"
  exit 0
fi
mkdir -p "$out"
gpt2=(--set model.d_model=768 --set model.n_layers=12 --set model.n_heads=12 --set model.d_mlp=3072
      --set model.vocab_size=50304 --set data.train_length=1024 --batch 16 --steps 10 --warmup 3 --eval-length 0)
for scheme in rope alibi; do
  build-gpu/extrap bench --device cuda --precision bf16 --set position.scheme=$scheme "${gpt2[@]}" \
    --json "$out/extrap_$scheme.json" | tail -2
done
for compile in "" --compile; do
  "$python" "$third_party/nanogpt_step.py" --device cuda --dtype bf16 --d 768 --layers 12 --heads 12 --T 1024 \
    --vocab 50304 --sdpa $compile | tail -1 | tee "$out/python${compile:+_compile}.txt"
done
# MFU against the GPU's dense bf16 peak (H100/H200 SXM: 989 TFLOP/s), with the benches' FLOP counts.
"$python" - "$out" <<'PY'
import json, re, sys, torch
out = sys.argv[1]
name = torch.cuda.get_device_name()
peak = 989e12 if re.search(r"H100|H200", name) else None
rows = []
for scheme in ("rope", "alibi"):
    r = json.load(open(f"{out}/extrap_{scheme}.json"))["train"]
    rows.append((f"extrap {scheme}", r["tokens_per_s"], r["gflops"] * 1e9))
for tag in ("python", "python_compile"):
    line = open(f"{out}/{tag}.txt").read()
    rows.append((tag.replace("_", " --") + " --sdpa", float(re.search(r"tokens/s=([0-9.]+)", line).group(1)),
                 float(re.search(r"GFLOP/s=([0-9.]+)", line).group(1)) * 1e9))
print(f"== {name}; MFU against {'989 TFLOP/s bf16' if peak else 'no known peak'}")
for label, tokens, flops in rows:
    print(f"{label:28s} {tokens:10.0f} tokens/s  {flops / 1e12:7.1f} TFLOP/s" + (f"  MFU {100 * flops / peak:5.1f}%" if peak else ""))
json.dump({"gpu": name, "rows": rows}, open(f"{out}/summary.json", "w"), indent=1)
PY
echo "== gpu_check done in $((SECONDS - start)) s"
