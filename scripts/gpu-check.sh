#!/usr/bin/env bash
# scripts/gpu-check.sh — issue 5's GPU check in one run (docs/cuda.md), under 5 minutes:
#   1. build: make cuda (or, where that cannot build — the device machine has nvcc and
#      PyTorch but not this project's Debian libraries — the carried build-cuda-portable/
#      from `make cuda-portable`)
#   2. parity: every kernel against the CPU implementation (build-*/cuda-parity)
#   3. timing: sattn bench --device cuda, C 512 (8 heads of d 64), batch 1, T 4K/16K/64K,
#      dense-flash vs index+softmax (k 2048, r 16, J 1) and block+softmax (k 2048: b 16,
#      n 128), prefill and one decode step; median of 5 runs, cudaEvent timing after warm-up
#   4. PyTorch's scaled_dot_product_attention on the same shapes (fp32, and bf16 flash as
#      an outside line) via scripts/sdpa_ref.py; skipped with a message if torch is missing
#   5. one short table, printed and written to $OUT (default build-cuda/gpu-out)
# Every step runs under `timeout`; a failed or timed-out step is reported and the later
# steps still run. Exit status: 0 when the parity tests passed, 1 otherwise (77: no GPU).
# Knobs: GPU_CHECK_SEQS (4096,16384,65536), GPU_CHECK_K (2048), GPU_CHECK_J (1);
# for testing: GPU_CHECK_TABLE_ONLY=1 only rebuilds the table from the CSVs in $OUT;
# GPU_CHECK_BIN=build-emu uses that build (e.g. the CPU emulation) instead of building.
set -euo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${OUT:-build-cuda/gpu-out}
mkdir -p "$OUTDIR"
LOG="$OUTDIR/gpu-check.log"
: >"$LOG"
exec > >(tee -a "$LOG") 2>&1
SEQS=${GPU_CHECK_SEQS:-4096,16384,65536}
K=${GPU_CHECK_K:-2048}
J=${GPU_CHECK_J:-1}
T0=$(date +%s)
elapsed() { echo $(($(date +%s) - T0)); }
say() { printf '\n== [%3ss] %s\n' "$(elapsed)" "$*"; }
# run_step SECONDS CMD...: the command under timeout; returns its status (124: timed out)
run_step() {
    local t=$1 rc=0
    shift
    timeout --kill-after=5 "$t" "$@" || rc=$?
    [ "$rc" = 124 ] && echo "gpu-check: timed out after ${t}s: $*"
    return "$rc"
}

PARITY=${GPU_CHECK_PARITY:-0}
if [ -n "${GPU_CHECK_TABLE_ONLY:-}" ]; then # (testing) only the table, from CSVs already in $OUTDIR
    : "${PARITY:=0}"
else

say "device"
run_step 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "gpu-check: nvidia-smi not available"
NVCC=$(command -v nvcc || { [ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda/bin/nvcc; } || true)
[ -n "$NVCC" ] && "$NVCC" --version | tail -2 || echo "gpu-check: no nvcc here"

say "build: make cuda"
BIN=${GPU_CHECK_BIN:-} # (testing) a build directory to use instead, e.g. build-emu
if [ -n "$BIN" ]; then
    echo "gpu-check: using $BIN (GPU_CHECK_BIN)"
elif [ -n "$NVCC" ] && run_step 150 make -j"$(nproc)" cuda NVCC="$NVCC" >"$OUTDIR/build.log" 2>&1; then
    BIN=build-cuda
    echo "gpu-check: built build-cuda/"
else
    echo "gpu-check: make cuda failed here (last lines of $OUTDIR/build.log):"
    tail -5 "$OUTDIR/build.log" 2>/dev/null || true
    if [ -x build-cuda-portable/cuda-parity ] && [ -x build-cuda-portable/sattn ]; then
        BIN=build-cuda-portable
        echo "gpu-check: using the carried build-cuda-portable/ (make cuda-portable)"
        if ldd "$BIN/cuda-parity" | grep -q "not found"; then
            export LD_LIBRARY_PATH="$PWD/$BIN/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            ldd "$BIN/cuda-parity" | grep "not found" || true
        fi
    else
        echo "gpu-check: FAILED: no binaries: make cuda failed and build-cuda-portable/ was not carried"
        exit 1
    fi
fi

say "parity: $BIN/cuda-parity (every kernel vs the CPU, tolerance 1e-4, outputs poisoned)"
PARITY=0
run_step 90 "$BIN/cuda-parity" >"$OUTDIR/parity.txt" 2>&1 || PARITY=$?
grep -v "^ok " "$OUTDIR/parity.txt" || true
echo "gpu-check: parity exit status $PARITY ($(grep -c '^ok ' "$OUTDIR/parity.txt" || true) checks ok)"
if [ "$PARITY" = 77 ]; then
    echo "gpu-check: no CUDA device visible: nothing to time"
    exit 77
fi

say "timing: sattn bench --device cuda (C 512, k $K, index J $J), one T at a time"
IFS=, read -ra TS <<<"$SEQS"
for T in "${TS[@]}"; do
    if [ "$(elapsed)" -gt 230 ]; then
        echo "gpu-check: time budget: skipping T=$T"
        continue
    fi
    run_step 70 "$BIN/sattn" bench --device cuda --dims 512 --seqs "$T" --ks "$K" --variants flash,index,block \
        --phases prefill,decode --runs 5 --max-run 30 --index-heads "$J" --csv "$OUTDIR/cuda-$T.csv" \
        > >(tee "$OUTDIR/bench-$T.txt") || echo "gpu-check: bench at T=$T failed (status $?)"
    sleep 1 # let tee finish
    if [ ! -s "$OUTDIR/cuda-$T.csv" ]; then # killed before its CSV: the rows it printed
        awk '$1 ~ /-cuda/ && NF == 10 { printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,0,-1\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }' \
            "$OUTDIR/bench-$T.txt" >"$OUTDIR/cuda-$T.csv" || true
    fi
done

say "reference: PyTorch scaled_dot_product_attention"
if [ "$(elapsed)" -lt 260 ]; then
    run_step 60 env PYTHONUNBUFFERED=1 python3 scripts/sdpa_ref.py --dim 512 --seqs "$SEQS" --runs 5 \
        --budget 40 --csv "$OUTDIR/sdpa.csv" || echo "gpu-check: SDPA reference unavailable or incomplete (status $?)"
else
    echo "gpu-check: time budget: SDPA reference skipped"
fi

fi # GPU_CHECK_TABLE_ONLY

say "table"
DEVNAME=$(grep -h "^device: " "$LOG" | head -1 | sed 's/^device: //' || true)
cat "$OUTDIR"/cuda-*.csv "$OUTDIR"/sdpa.csv 2>/dev/null | grep -v "^variant," >"$OUTDIR/all.csv" || true
awk -F, -v dev="${DEVNAME:-unknown GPU}" -v k="$K" -v j="$J" -v parity="$PARITY" '
    { t[$1 SUBSEP $2 SUBSEP $5] = $7; T[$5] = 1 }
    function f(x) { return x == "" ? "-" : sprintf("%.3g", x * 1e3) }
    function r(a, b) { return (a == "" || b == "" || b == 0) ? "-" : sprintf("%.2f", a / b) }
    END {
        printf "GPU check on %s (parity exit %s): C 512, 8 heads of d 64, batch 1, float32; ms per call\n", dev, parity
        b = k >= 32 ? 16 : int(k / 2)
        printf "index+softmax: k %s, r 16, J %s; block+softmax: k %s (b %d, n %d)\n", k, j, k, b, k / b
        printf "| phase | T | dense-flash | index | block | SDPA fp32 | SDPA bf16 | flash/SDPA32 | SDPA32/index | SDPA32/block | dense/index | dense/block |\n"
        printf "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        n = 0; for (x in T) ts[++n] = x + 0
        for (i = 1; i <= n; i++) for (m = i + 1; m <= n; m++) if (ts[m] < ts[i]) { y = ts[i]; ts[i] = ts[m]; ts[m] = y }
        split("prefill decode", ph, " ")
        for (p = 1; p <= 2; p++) for (i = 1; i <= n; i++) {
            P = ph[p]; x = ts[i]
            fl = t["dense-flash-cuda" SUBSEP P SUBSEP x]
            ix = ""; for (key in t) { split(key, kk, SUBSEP); if (kk[1] ~ /^index\+softmax-cuda/ && kk[2] == P && kk[3] == x) ix = t[key] }
            bl = t["block+softmax-cuda" SUBSEP P SUBSEP x]
            s32 = t["sdpa-fp32-cuda" SUBSEP P SUBSEP x]; s16 = t["sdpa-bf16-cuda" SUBSEP P SUBSEP x]
            printf "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", P, x, f(fl), f(ix), f(bl), f(s32), f(s16),
                   r(fl, s32), r(s32, ix), r(s32, bl), r(fl, ix), r(fl, bl)
        }
        printf "Targets: flash/SDPA32 <= 2 at 16K; SDPA32/index and SDPA32/block > 1 from some T <= 16K and >= 4 at 64K;\n"
        printf "decode dense/sparse >= 5 at 64K. Ratios > 1 mean the second is faster.\n"
    }' "$OUTDIR/all.csv" | tee "$OUTDIR/gpu-table.md"
echo "gpu-check: done in $(elapsed)s; results in $OUTDIR/ (gpu-table.md, parity.txt, cuda-*.csv, sdpa.csv, gpu-check.log)"
[ "$PARITY" = 0 ]
