#!/usr/bin/env bash
# The RoPE quality check of docs/rope.md: on each corpus, a small model (L2 H2 C64, T 256,
# B 4, flash attention) trained with learned positions and with RoPE, scored over the whole
# validation split at its training length and at 2x (RoPE: extrapolated, position
# interpolation and NTK-aware base, zero-shot; then each after a short --init-from
# fine-tune at 512). Prints one markdown table per corpus.
#   usage: scripts/rope-quality.sh [STEPS] [FT_STEPS] [OUTDIR]   (from the repo root)
# Needs build/sattn, data/kjv.txt (bash scripts/corpus.sh) and ../shared/data/tinyshakespeare.txt.
set -euo pipefail
STEPS=${1:-300}
FT=${2:-100}
OUT=${3:-data/rope-quality}
BIN=${SATTN_BIN:-build/sattn}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mkdir -p "$OUT"
SHAPE=(--layers 2 --heads 2 --dim 64 --batch 4 --lr 1e-3 --min-lr 1e-4 --warmup 30 --seed 1337
       --attn flash --eval-every 0)

loss() { # model data [flags...]: the whole validation split's loss, or n/a when refused
    local m=$1 d=$2
    shift 2
    "$BIN" loss --model "$m" --data "$d" --attn flash --json "$@" 2>/dev/null |
        sed -E 's/.*"loss": ([0-9.]+).*/\1/' || echo "n/a"
}

for corpus in kjv:data/kjv.txt shakespeare:../shared/data/tinyshakespeare.txt; do
    name=${corpus%%:*}
    data=${corpus#*:}
    for pos in learned rope; do
        "$BIN" train --data "$data" "${SHAPE[@]}" --seq 256 --steps "$STEPS" --pos "$pos" \
            --out "$OUT/$name-$pos.ckpt" --json 2>/dev/null > "$OUT/$name-$pos.json"
    done
    for pos in learned rope; do # the control: as many more steps, at 256
        "$BIN" train --data "$data" "${SHAPE[@]}" --seq 256 --steps "$FT" --warmup 10 \
            --init-from "$OUT/$name-$pos.ckpt" --out "$OUT/$name-$pos-256more.ckpt" >/dev/null 2>&1
    done
    for ext in pi ntk; do
        "$BIN" train --data "$data" "${SHAPE[@]}" --seq 512 --steps "$FT" --warmup 10 \
            --init-from "$OUT/$name-rope.ckpt" --rope-extend "$ext" \
            --out "$OUT/$name-rope-$ext-512.ckpt" --json 2>/dev/null > "$OUT/$name-rope-$ext-512.json"
    done
    ntk_base=$(awk 'BEGIN { printf "%.9g", 10000 * 2 ^ (32 / 30) }') # hs 32
    echo "### $name ($STEPS steps at T 256; fine-tunes: $FT steps at T 512)"
    echo
    echo "| model | val loss at T 256 | at T 512 |"
    echo "|---|---|---|"
    echo "| learned | $(loss "$OUT/$name-learned.ckpt" "$data") | $(loss "$OUT/$name-learned.ckpt" "$data" --seq 512) |"
    echo "| rope, extrapolated (scale 1) | $(loss "$OUT/$name-rope.ckpt" "$data") | $(loss "$OUT/$name-rope.ckpt" "$data" --seq 512) |"
    echo "| rope, interpolated (scale 0.5), zero-shot | | $(loss "$OUT/$name-rope.ckpt" "$data" --seq 512 --rope-scale 0.5) |"
    echo "| rope, NTK base $ntk_base, zero-shot | | $(loss "$OUT/$name-rope.ckpt" "$data" --seq 512 --rope-base "$ntk_base") |"
    echo "| learned, --init-from at 256 (control), $FT steps | $(loss "$OUT/$name-learned-256more.ckpt" "$data") | n/a |"
    echo "| rope, --init-from at 256 (control), $FT steps | $(loss "$OUT/$name-rope-256more.ckpt" "$data") | $(loss "$OUT/$name-rope-256more.ckpt" "$data" --seq 512) |"
    echo "| rope, --init-from --rope-extend pi, $FT steps at 512 | $(loss "$OUT/$name-rope-pi-512.ckpt" "$data" --seq 256) | $(loss "$OUT/$name-rope-pi-512.ckpt" "$data") |"
    echo "| rope, --init-from --rope-extend ntk, $FT steps at 512 | $(loss "$OUT/$name-rope-ntk-512.ckpt" "$data" --seq 256) | $(loss "$OUT/$name-rope-ntk-512.ckpt" "$data") |"
    echo
done
