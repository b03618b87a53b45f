#!/usr/bin/env bash
# Regenerates README.md's scheme table from the registry (`extrap schemes --markdown`), between the
# two marker lines. tests/readme_test.sh fails when the committed table differs from the generator.
# Usage: scripts/update_readme.sh [EXTRAP_BINARY] [--check]
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-build/extrap}
readme=README.md
begin='<!-- extrap schemes --markdown: begin -->'
end='<!-- extrap schemes --markdown: end -->'
grep -qxF "$begin" "$readme" && grep -qxF "$end" "$readme" || { echo "$readme: scheme table markers missing" >&2; exit 2; }
table=$("$binary" schemes --markdown)
updated=$(awk -v begin="$begin" -v end="$end" -v table="$table" '
  $0 == begin { print; print table; skipping = 1; next }
  $0 == end { skipping = 0 }
  !skipping { print }' "$readme")
if [ "${2:-}" = "--check" ]; then
  if [ "$updated" != "$(cat "$readme")" ]; then
    echo "$readme: the scheme table differs from '$binary schemes --markdown'; run scripts/update_readme.sh" >&2
    diff <(echo "$updated") "$readme" >&2 || true
    exit 1
  fi
  exit 0
fi
printf '%s\n' "$updated" > "$readme"
