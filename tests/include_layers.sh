#!/usr/bin/env bash
# Checks that every #include "folder/..." in src/ points down the layers (or stays in its folder):
#   cli -> bench, sweep, eval -> train -> parallel -> runtime -> model -> config -> position, data, report -> common
# A folder may include only folders of a lower rank, so no two folders can include each other.
# Usage: tests/include_layers.sh SRC_DIR
set -euo pipefail
src=${1:?usage: include_layers.sh SRC_DIR}
declare -A rank=([common]=0 [position]=1 [data]=1 [report]=1 [config]=2 [model]=3 [runtime]=4 [parallel]=5 [train]=6 [eval]=7 [bench]=7 [sweep]=7 [cli]=8)
status=0
while IFS= read -r line; do
  file=${line%%:*}
  included=$(sed -n 's/^#include "\([a-z_]*\)\/.*"/\1/p' <<<"${line#*:}")
  [ -n "$included" ] || continue
  relative=${file#"$src"/}
  folder=${relative%%/*}
  [ "$folder" != "$relative" ] || continue  # main.cpp sits above every folder
  [ "$included" != "$folder" ] || continue
  if [ -z "${rank[$folder]:-}" ] || [ -z "${rank[$included]:-}" ]; then
    echo "$relative: folder '$folder' or '$included' has no layer in tests/include_layers.sh" >&2
    status=1
  elif [ "${rank[$included]}" -ge "${rank[$folder]}" ]; then
    echo "$relative includes $included/: it points up or sideways ($folder is layer ${rank[$folder]}, $included ${rank[$included]})" >&2
    status=1
  fi
done < <(grep -rn --include='*.h' --include='*.cpp' '^#include "' "$src" | sed 's/:[0-9]*:/:/')
[ "$status" -eq 0 ] && echo "includes point down the layers: cli > bench, sweep, eval > train > parallel > runtime > model > config > position, data, report > common"
exit "$status"
