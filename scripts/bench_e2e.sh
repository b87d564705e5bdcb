#!/usr/bin/env bash
# Issue 12's end-to-end speed numbers (docs/native_sparse.md, "End-to-end speed"): the
# long-context model (L4 H4 C256, RoPE, random weights and tokens), batch 1, 2 threads,
# dense flash against every head block+softmax:b=64,n=8,tile=1:
#   1. a whole training step at T = 4096 and 16384 (bench-train --plan; interleaved, medians);
#   2. the whole model's prefill at T = 16384 and its decode step at 32K context
#      (bench-generate --plan; the cache's decode step, per token);
#   3. where each step's time goes (selection, head function, rest), and a report.
# Run it on a quiet machine: about 5-6 minutes at 2 threads (a busy one doubles it).
# Usage: scripts/bench_e2e.sh [OUT_DIR]   (default bench-e2e; SATTN=build/sattn, RUNS=3)
# A smoke test of the script itself (seconds, numbers meaningless):
#   DIM=32 B=8 N=2 TRAIN_T=64,256 PREFILL_T=256 DECODE_T=512 RUNS=1 scripts/bench_e2e.sh /tmp/e2e
set -euo pipefail
out=${1:-bench-e2e}
sattn=${SATTN:-build/sattn}
runs=${RUNS:-3}
dim=${DIM:-256}
train_t=${TRAIN_T:-4096,16384}
prefill_t=${PREFILL_T:-16384}
decode_t=${DECODE_T:-32768}
plan="all:block+softmax:b=${B:-64},n=${N:-8},tile=1"
label="all:block+softmax:b=${B:-64}_n=${N:-8}_tile=1"
mkdir -p "$out"
echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null || echo '?'); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "# load $(cut -d' ' -f1-3 /proc/loadavg); cpu pressure $(awk '/some/ {print $2}' /proc/pressure/cpu 2>/dev/null || echo '?')"

# 1. training step: ~2 min (T = 16384: 1 warm-up + RUNS steps of ~20 s dense, ~3 s sparse)
"$sattn" bench-train --plan "$plan" --layers 4 --heads 4 --dim "$dim" --batch 1 --seqs "$train_t" \
  --runs "$runs" --warmup 1 --threads 2 --csv "$out/train_phases.csv" --json-out "$out/train.json"

# 2. prefill and decode: ~3 min (the dense prefill at 32768 runs once: over 20 s it is not repeated)
"$sattn" bench-generate --plan "$plan" --layers 4 --heads 4 --dim "$dim" --contexts "$prefill_t,$decode_t" \
  --runs "$runs" --steps 16 --recompute-max 0 --max-gib 8 --threads 2 \
  --csv "$out/generate.csv" --phases-csv "$out/generate_phases.csv"

# 3. the ratios, against the targets
awk -F, -v p="gen-$label" -v tp="$prefill_t" -v td="$decode_t" '
  FNR == 1 { next }
  $2 == "prefill" && $5 == tp { if ($1 == "gen-dense") dp = $7; if ($1 == p) sp = $7 }
  $2 == "decode" && $5 == td { if ($1 == "gen-dense") dd = $7; if ($1 == p) sd = $7 }
  END {
    if (sp > 0) printf "prefill T=%d: dense-flash %.3f s, tile %.3f s: x%.2f (target >= 5 at 16384)\n", tp, dp, sp, dp / sp
    else printf "prefill T=%d: a row is missing (see the notes above)\n", tp
    if (sd > 0) printf "decode at T=%d: dense %.3f ms, tile %.3f ms per token: x%.2f (target >= 10 at 32K)\n", td, dd * 1e3, sd * 1e3, dd / sd
    else printf "decode at T=%d: a row is missing (see the notes above)\n", td
  }' "$out/generate.csv"
awk -F, -v p="train-$label" -v ts="$train_t" '
  FNR == 1 { next }
  { t[$1 "," $6] = $7 }
  END {
    n = split(ts, T, ",")
    for (i = 1; i <= n; i++) {
      d = t["train-flash," T[i]]; s = t[p "," T[i]]
      if (s > 0) printf "train step T=%d: dense-flash %.3f s, tile %.3f s: x%.2f (targets: >= 1.5 at 4096, >= 3 at 16384)\n", T[i], d, s, d / s
    }
  }' "$out/train_phases.csv"

"$sattn" report --out "$out/report" --generate "$out/generate.csv" --phases "$out/generate_phases.csv" \
  --phases "$out/train_phases.csv" --dim "$dim" --heads 4 --k 512 >/dev/null
echo "report: $out/report/report.md (section \"Where a step's time goes\")"
