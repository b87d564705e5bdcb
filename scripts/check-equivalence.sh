#!/usr/bin/env bash
# "Behaviour unchanged" baselines (issue 10): prints into OUTDIR the numbers that a refactor
# must not change, with every timing-dependent field removed, so that
#     diff -r docs/data/equivalence OUTDIR
# is empty when nothing changed. Builds nothing; runs the binaries it is given.
#
# usage: scripts/check-equivalence.sh [SATTN_BIN [COUNT_BIN [OUTDIR]]]
#   SATTN_BIN  the normal build (default build/sattn: make build/sattn)
#   COUNT_BIN  the instrumented build (default build-count/sattn: make count)
#   OUTDIR     where the files go (default equivalence-out; created, files overwritten)
# then: diff -r docs/data/equivalence OUTDIR   (the baseline of the commit before issue 10)
#
# What it compares (all at 2 OpenMP threads: sattn's reductions are deterministic for a
# given thread count, not across thread counts; float results also depend on -march=native,
# so compare on the same machine kind):
#   eval.json, eval-dense-below.json, eval-crossover.json
#       `sattn eval --json` of a tiny model (L2 H2 C16 T32, 200 steps) and heads distilled
#       for three kinds of sparse head (50 steps) on 30,000 bytes of generated text (made
#       here by awk, no corpus needed): all heads sparse, --dense-below 32 (the split's short
#       last window runs dense), and --crossover-from a fixed bench CSV (bench-fixed.csv,
#       written here, no timing), which goes through the bench CSV reader and crossover.
#   bench.json
#       `sattn bench --json --seed 1` on a small grid, one row per line, timing fields
#       removed: median_s, gflops, speedup_vs_flash, cpu_pressure_avg10, pct_peak, peak_gflops and the
#       crossovers' measured_T are times or derived from times. What stays is the grid
#       (which rows exist, in which order), peak_bytes, and the analytic crossover T*.
#       bench prints no FLOP column of its own (gflops = FLOPs / median time), so:
#   count.json
#       the counted FLOPs: `build-count/sattn count --json` (the instrumented kernels'
#       own multiply-adds and bytes, beside the cost model's) for every prefill and decode
#       row of the same grid. These run the very kernels `sattn bench` times (ab_count
#       drives the bench's run functions), so a moved kernel that does different work
#       shows here exactly; count has no backward.
#   flops-sweep.txt, flops-sweep-csv.sample, flops-sweep-csv.sha256
#       `sattn flops --sweep` (the table), and of `sattn flops --sweep --csv` (461 KB, every
#       number of the sweep) every 16th line plus the sha256 and line count of the whole.
#   demo-seed.json
#       `sattn demo --preset seed --json` (about half a minute to two minutes on 2 cores),
#       with its times removed (tokens_per_s, wall_s, distill_s, eval_s); its files are
#       named relative to the temporary directory it runs in.
set -euo pipefail

SATTN=${1:-build/sattn}
COUNT=${2:-build-count/sattn}
OUT=${3:-equivalence-out}
for b in "$SATTN" "$COUNT"; do
    [ -x "$b" ] || { echo "check-equivalence: $b is not an executable (make build/sattn count)" >&2; exit 2; }
done
SATTN=$(realpath "$SATTN")
COUNT=$(realpath "$COUNT")
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
TMP=$(mktemp -d /tmp/sattn-equiv-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive
TH=(--threads 2)

# One JSON object per line: the rows of {"rows": [{...}, {...}], ...} split at "}, {".
split_rows() { sed -e 's/}, {/},\n{/g' -e 's/\[{/[\n{/g' -e 's/}\]/}\n]/g'; }
# Removes the fields named in $@ ("key": number or string) from every line.
drop_fields() {
    local e=()
    for k in "$@"; do e+=(-e "s/, \"$k\": (\"[^\"]*\"|[-+0-9.eEnaifNAIF]+)//g"
                          -e "s/\{\"$k\": (\"[^\"]*\"|[-+0-9.eEnaifNAIF]+), /{/g"); done
    sed -E "${e[@]}"
}

# ------------------------------------------------------------------ eval (tiny model)
# 30,000 bytes of English-like text: words from a fixed list picked by a Park-Miller
# generator (exact in awk's doubles), a newline after about one word in nine.
awk 'BEGIN {
    split("the king and queen of a fair night shall speak to my lord what is love thou art good sir", w, " ");
    s = 12345; n = 0; out = "";
    while (n < 30000) {
        s = (s * 16807) % 2147483647; t = w[1 + s % 20];
        s = (s * 16807) % 2147483647; sep = (s % 9 == 0) ? "\n" : " ";
        out = out t sep; n += length(t) + 1;
    }
    printf "%s", substr(out, 1, 30000);
}' > "$TMP/d.txt"
SHAPE=(--layers 2 --heads 2 --dim 16 --seq 32 --batch 8)
PLAN='L0:index+softmax:k=8; L1H0:block+softmax:b=8,n=2; L1H1:index+mlp:k=4,hidden=16'
"$SATTN" train --data "$TMP/d.txt" --out "$TMP/m.ckpt" "${SHAPE[@]}" "${TH[@]}" --steps 200 \
    --lr 3e-3 --warmup 5 --seed 11 > /dev/null 2> "$TMP/train.err" || { cat "$TMP/train.err" >&2; exit 1; }
"$SATTN" distill --model "$TMP/m.ckpt" --data "$TMP/d.txt" --plan "$PLAN" --out "$TMP/m.heads" \
    --steps 50 --seed 1 "${TH[@]}" > /dev/null 2> "$TMP/distill.err" || { cat "$TMP/distill.err" >&2; exit 1; }
# A bench CSV with fixed (made-up) times, so the eval's threshold comes through the bench
# CSV reader and the crossover: index+softmax faster than dense-flash from T = 64 on,
# block+softmax from T = 16 on, index+mlp from 32 on (C 64: the nearest C and k are taken).
{
    echo "variant,phase,C,H,T,k,median_s,gflops,speedup_vs_flash,peak_bytes,cpu_pressure_avg10"
    for T in 16 32 64 128; do
        echo "dense-flash,prefill,64,1,$T,0,1.0e-3,1.0,1.0,1000,-1"
        if [ "$T" -ge 64 ]; then echo "index+softmax,prefill,64,1,$T,8,5.0e-4,2.0,2.0,1000,-1"
        else echo "index+softmax,prefill,64,1,$T,8,2.0e-3,0.5,0.5,1000,-1"; fi
        echo "block+softmax,prefill,64,1,$T,8,5.0e-4,2.0,2.0,1000,-1"
        if [ "$T" -ge 32 ]; then echo "index+mlp,prefill,64,1,$T,4,5.0e-4,2.0,2.0,1000,-1"
        else echo "index+mlp,prefill,64,1,$T,4,2.0e-3,0.5,0.5,1000,-1"; fi
    done
} > "$TMP/bench-fixed.csv"
cp "$TMP/bench-fixed.csv" "$OUT/bench-fixed.csv"
ev() { # file names in the output are printed relative to the temporary directory
    "$SATTN" eval --model "$TMP/m.ckpt" --heads "$TMP/m.heads" --data "$TMP/d.txt" "${TH[@]}" --json "$@" \
        2> "$TMP/eval.err" | sed "s|$TMP/||g" || { cat "$TMP/eval.err" >&2; exit 1; }
}
ev | drop_fields seconds > "$OUT/eval.json"
ev --dense-below 32 | drop_fields seconds > "$OUT/eval-dense-below.json"
ev --crossover-from "$TMP/bench-fixed.csv" | drop_fields seconds > "$OUT/eval-crossover.json"

# ------------------------------------------------------------------ bench (no times)
DIMS=128,256 SEQS=64,128,256 KS=8,32
"$SATTN" bench --json --seed 1 --dims $DIMS --seqs $SEQS --ks $KS --phases prefill,decode,backward \
    --runs 1 --max-run 1000 "${TH[@]}" 2> "$TMP/bench.err" \
    | split_rows | drop_fields median_s gflops speedup_vs_flash cpu_pressure_avg10 pct_peak peak_gflops measured_T \
    > "$OUT/bench.json" || { cat "$TMP/bench.err" >&2; exit 1; }

# ------------------------------------------------------------------ counted FLOPs
: > "$OUT/count.json"
for C in ${DIMS//,/ }; do
    for T in ${SEQS//,/ }; do
        "$COUNT" count --json --seed 1 --dim "$C" --seq "$T" --variant naive >> "$OUT/count.json"
        "$COUNT" count --json --seed 1 --dim "$C" --seq "$T" --variant flash >> "$OUT/count.json"
        "$COUNT" count --json --seed 1 --dim "$C" --seq "$T" --variant flash --decode >> "$OUT/count.json"
        for k in ${KS//,/ }; do
            for v in index block; do
                "$COUNT" count --json --seed 1 --dim "$C" --seq "$T" --k "$k" --variant $v >> "$OUT/count.json"
                "$COUNT" count --json --seed 1 --dim "$C" --seq "$T" --k "$k" --variant $v --decode \
                    >> "$OUT/count.json"
            done
        done
    done
done

# ------------------------------------------------------------------ flops --sweep
"$SATTN" flops --sweep > "$OUT/flops-sweep.txt"
"$SATTN" flops --sweep --csv > "$TMP/sweep.csv"
awk 'NR % 16 == 1' "$TMP/sweep.csv" > "$OUT/flops-sweep-csv.sample"
{ sha256sum < "$TMP/sweep.csv" | cut -d' ' -f1; wc -l < "$TMP/sweep.csv"; } > "$OUT/flops-sweep-csv.sha256"

# ------------------------------------------------------------------ demo --preset seed
(cd "$TMP" && "$SATTN" demo --preset seed --json --out-dir seed "${TH[@]}" 2> "$TMP/demo.err") \
    | sed -e 's/}, {/},\n{/g' | drop_fields tokens_per_s wall_s distill_s eval_s > "$OUT/demo-seed.json" || { cat "$TMP/demo.err" >&2; exit 1; }

echo "check-equivalence: wrote $(ls "$OUT" | wc -l) files to $OUT"
