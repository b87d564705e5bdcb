#!/usr/bin/env bash
# Writes the default corpus: the King James Bible from Debian's bible-kjv, one
# verse per line with the verse references ("Ge1:1 ") stripped. Atomic.
set -euo pipefail
out=${1:-data/kjv.txt}
command -v bible >/dev/null || { echo "corpus: 'bible' not found: run scripts/deps.sh (package bible-kjv)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
bible -f "Gen1:1-Rev22:21" | sed -E 's/^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ //' > "$tmp"
n=$(wc -c < "$tmp")
[ "$n" -gt 3500000 ] || { echo "corpus: $out came out at $n bytes, expected about 4.1 MB" >&2; exit 1; }
mv "$tmp" "$out"
trap - EXIT
echo "corpus: wrote $out ($n bytes)"
