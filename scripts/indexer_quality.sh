#!/usr/bin/env bash
# Shared bf16 indexer (lindex, shared=1) against the per-head float32 indexer: recall of the
# dense attention, mass captured and validation loss, post-hoc (distill) and DSA-style
# (dense warm-up, then sparse). docs/indexer.md "Numbers". Quality only, not timing.
# usage: scripts/indexer_quality.sh CORPUS OUTDIR [native]
set -euo pipefail
D=$1; O=$2; NATIVE=${3:-}
S=${SATTN:-build/sattn}
mkdir -p "$O"
COMMON="--layers 2 --heads 4 --dim 128 --seq 256 --batch 8 --lr 1e-3 --min-lr 1e-4 --warmup 60 --seed 1337 --threads 2 --eval-every 0 --json"
PH='all:index+softmax:k=32'            # per-head: r 16, j 4 (64 MACs a pair per head)
SH='all:index+softmax:k=32,shared=1'   # shared:   r 32, j 1 (32 MACs a pair per layer)
[ -f "$O/dense.ckpt" ] || $S train --data "$D" $COMMON --steps 600 --out "$O/dense.ckpt" > "$O/dense.json"
for v in ph sh; do
  P=$PH; [ $v = sh ] && P=$SH
  [ -f "$O/$v.heads" ] || $S distill --model "$O/dense.ckpt" --data "$D" --plan "$P" --steps 300 --threads 2 --out "$O/$v.heads" > /dev/null
  $S eval --model "$O/dense.ckpt" --heads "$O/$v.heads" --data "$D" --windows 64 --threads 2 --json > "$O/eval_$v.json"
done
# the same shared heads with float32 scores (precision alone)
SATTN_INDEXER_PREC=f32 $S eval --model "$O/dense.ckpt" --heads "$O/sh.heads" --data "$D" --windows 64 --threads 2 --json > "$O/eval_sh_f32.json"
[ -z "$NATIVE" ] && exit 0
# DSA-style: 300 dense steps (the shared indexer trains by KL), then 300 sparse
for v in ph sh; do
  P=$PH; [ $v = sh ] && P=$SH
  $S train --data "$D" $COMMON --steps 600 --attn "sparse:$P" --dense-warmup 300 --heads-out "$O/nat_$v.heads" \
      --out "$O/nat_$v.ckpt" > "$O/nat_$v.json"
  $S eval --model "$O/nat_$v.ckpt" --heads "$O/nat_$v.heads" --data "$D" --windows 64 --threads 2 --json > "$O/eval_nat_$v.json"
done
