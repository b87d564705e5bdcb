#!/usr/bin/env bash
# Issue 13's scaling numbers (docs/mpi.md, "Measured here"): the same training run as
#   1 rank x 2 threads    (sattn train --threads 2)
#   2 ranks x 1 thread    (mpirun -np 2 sattn train --threads 1, --zero 0 and --zero 1)
#   1 rank x 1 thread     (the per-core baseline)
# interleaved RUNS times, medians of the training tokens/s (the summary's tokens_per_s: every
# rank's tokens), and each configuration's ratio to 1 rank x 2 threads, plus the bytes
# all-reduced per step. Run it on a quiet machine: about 4 minutes with the defaults.
# Usage: scripts/bench_mpi.sh [DATA]   (default data/kjv.txt; SATTN=build/sattn, RUNS=5,
#        SHAPE="--layers 4 --heads 4 --dim 128 --seq 64 --batch 12", STEPS=200)
set -euo pipefail
data=${1:-data/kjv.txt}
sattn=${SATTN:-build/sattn}
runs=${RUNS:-5}
shape=${SHAPE:---layers 4 --heads 4 --dim 128 --seq 64 --batch 12}
steps=${STEPS:-200}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mpi="mpirun -np 2 --oversubscribe --allow-run-as-root -q -x OMP_WAIT_POLICY"
echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null || echo '?');$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "# load $(cut -d' ' -f1-3 /proc/loadavg); cpu pressure $(awk '/some/ {print $2}' /proc/pressure/cpu 2>/dev/null || echo '?')"
echo "# $sattn train --data $data $shape --steps $steps --eval-every 0 --json; $runs runs each, interleaved"
# tokens/s of one run: config name, then the command's prefix and threads
run() {
    local name=$1 threads=$2; shift 2
    "$@" "$sattn" train --data "$data" $shape --steps "$steps" --eval-every 0 --threads "$threads" \
        --out "$tmp/m.ckpt" --json "${extra[@]}" 2>/dev/null > "$tmp/out.json"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], d["tokens_per_s"], d.get("bytes_all_reduced_per_step", 0))' \
        "$tmp/out.json" "$name" >> "$tmp/rows"
}
for i in $(seq "$runs"); do
    extra=(); run "1x2" 2 env
    extra=(--zero 0); run "2x1_zero0" 1 $mpi
    extra=(--zero 1); run "2x1_zero1" 1 $mpi
    extra=(); run "1x1" 1 env
done
python3 - "$tmp/rows" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, tps, by = line.split()
    rows.setdefault(name, []).append((float(tps), float(by)))
base = statistics.median(t for t, _ in rows["1x2"])
print("| ranks x threads | tokens/s (median) | runs | vs 1 x 2 threads | bytes all-reduced per step |")
print("|---|---|---|---|---|")
for name in ["1x2", "2x1_zero0", "2x1_zero1", "1x1"]:
    v = [t for t, _ in rows[name]]
    med = statistics.median(v)
    print(f"| {name.replace('_', ' ')} | {med:.0f} | {', '.join(f'{x:.0f}' for x in v)} | {med / base:.3f} | {rows[name][0][1]:.0f} |")
PY
