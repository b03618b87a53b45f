#!/usr/bin/env bash
# Release build into build/ (tests included unless EXTRAP_BUILD_TESTS=OFF).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DEXTRAP_BUILD_TESTS="${EXTRAP_BUILD_TESTS:-ON}" >/dev/null
cmake --build build -j"$(nproc)" ${EXTRAP_BUILD_TARGET:+--target "$EXTRAP_BUILD_TARGET"}
