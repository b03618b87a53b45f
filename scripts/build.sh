#!/usr/bin/env bash
# Release build into build/ with Ninja (tests included unless EXTRAP_BUILD_TESTS=OFF). Ninja recompiles
# only what changed, also when a source file is added or removed. A build/ configured with another
# generator is reconfigured from scratch: CMake cannot switch the generator of an existing cache.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f build/CMakeCache.txt ] && ! grep -qx 'CMAKE_GENERATOR:INTERNAL=Ninja' build/CMakeCache.txt; then
  echo "build: build/ was configured with another generator; reconfiguring it for Ninja" >&2
  rm -rf build/CMakeCache.txt build/CMakeFiles
fi
cmake -G Ninja -S . -B build -DCMAKE_BUILD_TYPE=Release -DEXTRAP_BUILD_TESTS="${EXTRAP_BUILD_TESTS:-ON}" >/dev/null
cmake --build build -j"$(nproc)" ${EXTRAP_BUILD_TARGET:+--target "$EXTRAP_BUILD_TARGET"}
