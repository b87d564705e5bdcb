#!/usr/bin/env bash
# End-to-end training step of the long-context model (L4 H4 C256, RoPE, batch 1, 2 threads):
# dense flash vs every head tile-shared block-sparse (tile=1), steps interleaved, medians
# (docs/native_sparse.md, "End-to-end speed"). Usage: scripts/bench_tile_train.sh [RUNS]
# (SEQS="16384 4096" by default; SATTN=build/sattn). Now one call of `sattn bench-train --plan`
# (random tokens, a step timed by the clock around forward + backward + AdamW, the split of
# the sparse step printed); the first version of this script (until commit 5e06454) ran
# `sattn train` on a text file per row and derived ms/step from its cumulative tok/s: the
# quiet-set table in docs/native_sparse.md was measured with it. scripts/bench_e2e.sh runs this
# and the prefill/decode numbers together.
set -euo pipefail
runs=${1:-3}
sattn=${SATTN:-build/sattn}
seqs=$(echo "${SEQS:-4096 16384}" | tr ' ' ',')
exec "$sattn" bench-train --plan 'all:block+softmax:b=64,n=8,tile=1' --layers 4 --heads 4 --dim 256 --batch 1 \
  --seqs "$seqs" --runs "$runs" --warmup 1 --threads 2
