#!/usr/bin/env bash
# scripts/gpu-check.sh — the one-shot GPU check (docs/cuda.md, "Running the GPU check"), about
# 7 minutes at most on an H200 (a time budget, GPU_CHECK_BUDGET seconds, default 420).
#
# The CALLER first runs, on the dev machine (which has this project's libraries):
#     make cuda-portable          # build-cuda-portable/: sattn, cuda-parity, lib/libgomp.so.1
# and carries build-cuda-portable to the GPU machine (the device tool's carry list). The GPU
# machine has nvcc and PyTorch but no oneDNN/OpenBLAS, so nothing is built there: the script
# runs the carried binaries with build-cuda-portable/lib on LD_LIBRARY_PATH.
#
# Steps, each under `timeout` and within the budget (a failed or timed-out step is reported and
# the later steps still run):
#   1. device: nvidia-smi, the binaries' libraries
#   2. parity: build-cuda-portable/cuda-parity (every kernel vs the CPU, tblock included)
#   3. timing: sattn bench --device cuda, C 512 (8 heads of d 64), batch 1, one T at a time
#      (GPU_CHECK_SEQS, default 4096,16384,65536): dense-flash, index+softmax (k 2048, r 16,
#      J 1), block+softmax (k 2048: b 16, n 128) at prefill and decode; tblock+softmax (b 64,
#      n 8) at prefill and backward; median of 5
#   4. racecheck: compute-sanitizer --tool racecheck on cuda-parity --quick --tblock (the new
#      kernels), then on all of --quick, each when the tool exists and the budget leaves 130 s
#      (skipped with a note otherwise)
#   5. PyTorch SDPA (fp32, and bf16 flash as an outside line) on the same shapes via
#      scripts/sdpa_ref.py; skipped with a note if torch is missing
#   6. the summary
# What it leaves in $OUT (default build-cuda/gpu-out): TWO files, gpu-summary.txt (device,
# parity, racecheck, the tables) and gpu-check.tar.gz (every log and CSV), rewritten after
# each step, so a run cut short still returns what it had. The work files live in
# $GPU_CHECK_WORK (default a fresh mktemp -d).
# Exit status: 0 when parity passed, 1 otherwise (77: no GPU).
# Knobs: GPU_CHECK_SEQS, GPU_CHECK_K (2048), GPU_CHECK_J (1), GPU_CHECK_BUDGET (420),
# GPU_CHECK_TB (64,8: tblock's b,n), GPU_CHECK_HEAVY=1 (adds the standard indexer J = 4 at
# T 16384: optional, it is the slowest row); for testing: GPU_CHECK_BIN=build-emu (another
# build, e.g. the CPU emulation), GPU_CHECK_PARITY_ARGS (e.g. "--quick --tblock"),
# GPU_CHECK_TABLE_ONLY=1 (only the summary, from the CSVs in $GPU_CHECK_WORK).
set -euo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${OUT:-build-cuda/gpu-out}
WORK=${GPU_CHECK_WORK:-$(mktemp -d)}
mkdir -p "$OUTDIR" "$WORK"
LOG="$WORK/gpu-check.log"
[ -n "${GPU_CHECK_TABLE_ONLY:-}" ] || : >"$LOG"
exec > >(tee -a "$LOG") 2>&1
SEQS=${GPU_CHECK_SEQS:-4096,16384,65536}
K=${GPU_CHECK_K:-2048}
J=${GPU_CHECK_J:-1}
BUDGET=${GPU_CHECK_BUDGET:-420}
IFS=, read -r TB_B TB_N <<<"${GPU_CHECK_TB:-64,8}"
BIN=${GPU_CHECK_BIN:-build-cuda-portable}
T0=$(date +%s)
elapsed() { echo $(($(date +%s) - T0)); }
left() { echo $((BUDGET - $(elapsed))); }
say() { printf '\n== [%3ss] %s\n' "$(elapsed)" "$*"; }
# run_step SECONDS CMD...: the command under timeout, cut to what the budget leaves; returns
# its status (124: timed out)
run_step() {
    local t=$1 rc=0
    shift
    [ "$t" -gt "$(left)" ] && t=$(left)
    [ "$t" -lt 5 ] && { echo "gpu-check: no time left for: $*"; return 124; }
    timeout --kill-after=5 "$t" "$@" || rc=$?
    [ "$rc" = 124 ] && echo "gpu-check: timed out after ${t}s: $*"
    return "$rc"
}
# bundle: every work file into $OUT/gpu-check.tar.gz (atomically), after each step
bundle() { tar -czf "$OUTDIR/.gpu-check.tar.gz" -C "$WORK" . && mv -f "$OUTDIR/.gpu-check.tar.gz" "$OUTDIR/gpu-check.tar.gz"; }

PARITY=${GPU_CHECK_PARITY:-0}
RACE="not run"
if [ -z "${GPU_CHECK_TABLE_ONLY:-}" ]; then

say "device"
run_step 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "gpu-check: nvidia-smi not available"
if [ ! -x "$BIN/cuda-parity" ] || [ ! -x "$BIN/sattn" ]; then
    echo "gpu-check: FAILED: no $BIN/cuda-parity and $BIN/sattn: run make cuda-portable on the dev machine and carry build-cuda-portable"
    bundle
    exit 1
fi
[ -d "$BIN/lib" ] && export LD_LIBRARY_PATH="$PWD/$BIN/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if ldd "$BIN/cuda-parity" | grep "not found"; then echo "gpu-check: libraries missing (above)"; fi
echo "gpu-check: using $BIN/"

say "parity: $BIN/cuda-parity (every kernel vs the CPU, tolerance 1e-4, outputs poisoned)"
PARITY=0
# shellcheck disable=SC2086 # (testing) GPU_CHECK_PARITY_ARGS, e.g. "--quick --tblock"
run_step 120 "$BIN/cuda-parity" ${GPU_CHECK_PARITY_ARGS:-} >"$WORK/parity.txt" 2>&1 || PARITY=$?
grep -v "^ok " "$WORK/parity.txt" || true
echo "gpu-check: parity exit status $PARITY ($(grep -c '^ok ' "$WORK/parity.txt" || true) checks ok)"
bundle
if [ "$PARITY" = 77 ]; then
    echo "gpu-check: no CUDA device visible: nothing to time"
    exit 77
fi

say "timing: sattn bench --device cuda (C 512, k $K, index J $J, tblock b $TB_B n $TB_N), one T at a time"
bench_at() { # T CSV VARIANTS PHASES [extra args]: one bench call; its printed rows if killed early
    local T=$1 csv=$2 vars=$3 phases=$4
    shift 4
    run_step 90 "$BIN/sattn" bench --device cuda --dims 512 --seqs "$T" --ks "$K" --variants "$vars" --phases "$phases" \
        --runs 5 --max-run 30 --tblock-b "$TB_B" --tblock-n "$TB_N" --csv "$csv" "$@" \
        > >(tee "${csv%.csv}.txt") || echo "gpu-check: bench at T=$T failed (status $?)"
    sleep 1 # let tee finish
    if [ ! -s "$csv" ]; then
        awk '$1 ~ /-cuda/ && NF == 10 { printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,0,-1\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }' \
            "${csv%.csv}.txt" >"$csv" || true
    fi
}
IFS=, read -ra TS <<<"$SEQS"
for T in "${TS[@]}"; do
    if [ "$(left)" -lt 150 ]; then
        echo "gpu-check: time budget: skipping T=$T"
        continue
    fi
    bench_at "$T" "$WORK/cuda-$T.csv" flash,index,block,tblock prefill,decode,backward --index-heads "$J"
    bundle
done
if [ -n "${GPU_CHECK_HEAVY:-}" ] && [ "$(left)" -gt 150 ]; then
    bench_at 16384 "$WORK/heavy-16384.csv" index prefill,decode --index-heads 4
    bundle
fi

say "racecheck: compute-sanitizer --tool racecheck on cuda-parity --quick (tblock first)"
SAN=$(command -v compute-sanitizer || true)
for f in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
    [ -z "$SAN" ] && [ -x "$f" ] && SAN=$f
done
# race_pass NAME ARGS...: one racecheck pass of cuda-parity into racecheck-NAME.txt; its verdict
race_pass() {
    local name=$1 rc=0
    shift
    run_step $(($(left) - 70)) "$SAN" --tool racecheck --error-exitcode 3 --print-limit 20 "$BIN/cuda-parity" "$@" \
        >"$WORK/racecheck-$name.txt" 2>&1 || rc=$?
    tail -3 "$WORK/racecheck-$name.txt" >&2
    local sum
    sum=$(grep -m1 'RACECHECK SUMMARY' "$WORK/racecheck-$name.txt" | sed 's/^=* *//' || true)
    case $rc in
    0) echo "$name clean ($sum)" ;;
    3) echo "$name HAZARDS ($sum; racecheck-$name.txt)" ;;
    124) echo "$name incomplete: timed out" ;;
    *) echo "$name failed (status $rc; racecheck-$name.txt)" ;;
    esac
}
if [ -z "$SAN" ]; then
    RACE="skipped: compute-sanitizer not found"
elif [ "$(left)" -lt 130 ]; then
    RACE="skipped: time budget ($(left)s left)"
else
    RACE=$(race_pass tblock --quick --tblock | tail -1)
    if [ "$(left)" -ge 130 ]; then RACE="$RACE; $(race_pass quick --quick | tail -1)"
    else RACE="$RACE; the rest of --quick skipped: time budget"; fi
fi
echo "gpu-check: racecheck: $RACE"
bundle

say "reference: PyTorch scaled_dot_product_attention"
if [ "$(left)" -gt 20 ]; then
    run_step 60 env PYTHONUNBUFFERED=1 python3 scripts/sdpa_ref.py --dim 512 --seqs "$SEQS" --runs 5 \
        --budget 40 --csv "$WORK/sdpa.csv" || echo "gpu-check: SDPA reference unavailable or incomplete (status $?)"
else
    echo "gpu-check: time budget: SDPA reference skipped"
fi

fi # GPU_CHECK_TABLE_ONLY

say "summary"
DEVNAME=$(grep -h "^device: " "$LOG" | head -1 | sed 's/^device: //' || true)
cat "$WORK"/cuda-*.csv "$WORK"/sdpa.csv 2>/dev/null | grep -v "^variant," >"$WORK/all.csv" || true
{
    echo "GPU check on ${DEVNAME:-unknown GPU}, $(date -u '+%Y-%m-%d %H:%M UTC'), $(elapsed) s"
    echo "parity: exit $PARITY; $(tail -1 "$WORK/parity.txt" 2>/dev/null || echo 'no parity output')"
    grep "^FAIL" "$WORK/parity.txt" 2>/dev/null | head -20 || true
    echo "racecheck: $RACE"
    echo
    awk -F, -v k="$K" -v j="$J" -f scripts/gpu-table.awk "$WORK/all.csv"
} >"$WORK/gpu-summary.txt"
cat "$WORK/gpu-summary.txt"
cp "$WORK/gpu-summary.txt" "$OUTDIR/gpu-summary.txt"
bundle
echo "gpu-check: done in $(elapsed)s; $OUTDIR/gpu-summary.txt and gpu-check.tar.gz (logs, CSVs)"
[ "$PARITY" = 0 ]
