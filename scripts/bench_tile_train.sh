#!/usr/bin/env bash
# End-to-end training step of the long-context model (L4 H4 C256, RoPE, batch 1, 2 threads):
# dense flash vs every head tile-shared block-sparse (tile=1), rounds interleaved
# (docs/native_sparse.md, "End-to-end speed"). Usage: scripts/bench_tile_train.sh DATA [ROUNDS]
# A step's time: train prints the cumulative tok/s after each step; steps 2..N take
# (N T / rate_N - T / rate_1) / (N - 1) (step 1 faults in fresh memory). Peak RSS: /usr/bin/time.
set -euo pipefail
data=$1
rounds=${2:-3}
sattn=${SATTN:-build/sattn}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
plan='sparse:all:block+softmax:b=64,n=8,tile=1'
one() { # T steps label attn-args...
  local T=$1 N=$2 label=$3
  shift 3
  local load pres
  load=$(cut -d' ' -f1 /proc/loadavg)
  pres=$(awk '/some/ {print $2}' /proc/pressure/cpu 2>/dev/null || echo "?")
  /usr/bin/time -f "rss_kb %M" "$sattn" train --data "$data" --out "$tmp/m.ckpt" --layers 4 --heads 4 --dim 256 \
    --seq "$T" --batch 1 --pos rope --threads 2 --steps "$N" --eval-every 0 --seed 1 "$@" > "$tmp/log" 2>&1
  awk -v T="$T" -v N="$N" -v label="$label" -v load="$load" -v pres="$pres" '
    /^step / { for (i = 1; i <= NF; i++) if ($(i) == "tok/s") r[++k] = $(i - 1) }
    /^rss_kb/ { rss = $2 }
    END { ms = (N * T / r[k] - T / r[1]) / (N - 1) * 1000; steps = "";
          for (i = 2; i <= k; i++) steps = steps sprintf(" %.0f", (i * T / r[i] - (i - 1) * T / r[i - 1]) * 1000);
          printf "T=%d %-6s ms/step %8.0f  peak_rss_MiB %6.0f  load %s %s  steps 2..N:%s\n", T, label, ms, rss / 1024,
                 load, pres, steps }' "$tmp/log"
}
seqs=${SEQS:-16384 4096}
for r in $(seq "$rounds"); do
  echo "# round $r $(date -u +%H:%M:%S)"
  for T in $seqs; do
    if [ "$T" -ge 16384 ]; then n=3; else n=4; fi
    one "$T" "$n" flash --attn flash
    one "$T" "$n" tile --attn "$plan" --heads-out "$tmp/h"
  done
done
