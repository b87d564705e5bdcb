#!/usr/bin/env bash
# Where should --attn flash become the default? (issue 11 item 1.) Times `sattn train` steps with
# --attn naive and --attn flash at T = 256 ... 4096 (L4 H4 C256, batch 1, a few steps each),
# interleaved (naive, flash, then flash, naive, ...), and prints the medians and the smallest
# measured T from which flash is faster at that T and at every larger measured T.
#
# usage: scripts/bench-attn-default.sh [SATTN_BIN]        (default build/sattn; run from anywhere)
# env:   SEQS="256 512 1024 2048 4096"   the lengths
#        REPS=3                          runs per (T, kernel); the median is reported
#        STEPS=5                         training steps per run (the first is not timed)
#        THREADS=2                       OpenMP threads
#        DATA=PATH                       corpus (default ../shared/data/tinyshakespeare.txt, else
#                                        data/kjv.txt); its first 12 (max T + 1) bytes are used, so
#                                        that the validation split (the last 10 %) holds one window
#                                        of the largest T and the final validation pass is short
#        CSV=PATH                        also write T,kernel,rep,ms_per_step rows to PATH
# What is timed: the steady step. `train` prints, after each step s, the tokens per second over
# steps 1..s; so time(s) = s T / rate(s), and a run's ms/step is (time(STEPS) - time(1)) /
# (STEPS - 1): the first step (allocation, first touch) and the final validation pass are left
# out. The machine should be quiet: the lead sets the default from this script's output.
set -euo pipefail
cd "$(dirname "$0")/.."

SATTN=${1:-build/sattn}
SEQS=${SEQS:-256 512 1024 2048 4096}
REPS=${REPS:-3}
STEPS=${STEPS:-5}
THREADS=${THREADS:-2}
[ -x "$SATTN" ] || { echo "bench-attn-default: $SATTN is not an executable (make build/sattn)" >&2; exit 2; }
[ "$STEPS" -ge 2 ] || { echo "bench-attn-default: STEPS must be at least 2, got $STEPS" >&2; exit 2; }
DATA=${DATA:-}
if [ -z "$DATA" ]; then
    for d in ../shared/data/tinyshakespeare.txt data/kjv.txt; do [ -f "$d" ] && { DATA=$d; break; }; done
fi
[ -n "$DATA" ] && [ -f "$DATA" ] || { echo "bench-attn-default: no corpus: set DATA=PATH (or bash scripts/corpus.sh)" >&2; exit 2; }

TMP=$(mktemp -d /tmp/sattn-attn-default-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
maxT=$(printf "%s\n" $SEQS | sort -n | tail -1)
head -c $((12 * (maxT + 1))) "$DATA" > "$TMP/d.txt"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
: > "$TMP/rows"

# One run: prints its steady ms/step.
run() { # T kernel
    "$SATTN" train --data "$TMP/d.txt" --out "$TMP/m.ckpt" --layers 4 --heads 4 --dim 256 --seq "$1" \
        --batch 1 --steps "$STEPS" --warmup 1 --eval-every 0 --attn "$2" --threads "$THREADS" \
        2> "$TMP/err" > /dev/null || { cat "$TMP/err" >&2; exit 1; }
    tr '\r' '\n' < "$TMP/err" | awk -v T="$1" -v N="$STEPS" '
        /^step [0-9]+\/[0-9]+ \|/ { split($2, a, "/"); s = a[1] + 0
            for (i = 1; i <= NF; i++) if ($(i) == "tok/s") r[s] = $(i - 1) + 0 }
        END { if (!(1 in r) || !(N in r) || r[1] <= 0 || r[N] <= 0) { print "no step lines" > "/dev/stderr"; exit 1 }
              printf "%.3f\n", 1000 * (N * T / r[N] - T / r[1]) / (N - 1) }'
}

echo "sattn train, L4 H4 C256, batch 1, $STEPS steps (first untimed), $REPS interleaved runs, $THREADS threads, $DATA"
for T in $SEQS; do
    for ((r = 1; r <= REPS; r++)); do
        if ((r % 2)); then order="naive flash"; else order="flash naive"; fi
        for k in $order; do
            ms=$(run "$T" "$k")
            echo "$T $k $r $ms" >> "$TMP/rows"
        done
    done
done

[ -n "${CSV:-}" ] && { echo "T,kernel,rep,ms_per_step"; tr ' ' ',' < "$TMP/rows"; } > "$CSV"
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf "%6s %14s %14s %12s\n" T naive_ms/step flash_ms/step naive/flash
from=-1
for T in $SEQS; do
    n=$(awk -v T="$T" '$1 == T && $2 == "naive" { print $4 }' "$TMP/rows" | median)
    f=$(awk -v T="$T" '$1 == T && $2 == "flash" { print $4 }' "$TMP/rows" | median)
    ratio=$(awk -v n="$n" -v f="$f" 'BEGIN { printf "%.3f", n / f }')
    printf "%6d %14.2f %14.2f %12s\n" "$T" "$n" "$f" "$ratio"
    if awk -v x="$ratio" 'BEGIN { exit !(x > 1) }'; then [ "$from" -lt 0 ] && from=$T; else from=-1; fi
done
if [ "$from" -lt 0 ]; then echo "flash is not faster at the largest measured T: keep naive"
else echo "flash is faster from T = $from on (at it and every larger measured T)"; fi
