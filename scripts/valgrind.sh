#!/usr/bin/env bash
# Runs the CLI's main paths (train, resume, loss, sample, llm.c format, a bad file, and
# one attention-layer bench over every variant and phase) under valgrind memcheck on a
# tiny model. Valgrind 3.19 cannot decode AVX-512, so
# this uses an AVX2 build (build-vg/); oneDNN then picks its AVX2 kernels itself.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s BUILD=build-vg OPT="-O1 -g -march=x86-64-v3" build-vg/sattn
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -c 20000 "${1:-README.md}" > "$tmp/d.txt"
# sattn re-executes itself to set OpenMP's wait policy when none is set; under valgrind
# that exec would leave valgrind, so the policy is set here.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
vg() { valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite,possible \
       --suppressions=scripts/valgrind.supp build-vg/sattn "$@"; }
tiny=(--layers 1 --heads 2 --dim 16 --seq 16 --batch 2 --threads 2)
vg train --data "$tmp/d.txt" --out "$tmp/m.ckpt" "${tiny[@]}" --steps 4 --stop-at 2 > /dev/null 2>&1
vg train --data "$tmp/d.txt" --out "$tmp/m2.ckpt" "${tiny[@]}" --steps 4 --resume "$tmp/m.ckpt" > /dev/null 2>&1
vg train --data "$tmp/d.txt" --out "$tmp/m.bin" "${tiny[@]}" --steps 2 --format llmc > /dev/null 2>&1
vg loss --model "$tmp/m2.ckpt" --data "$tmp/d.txt" > /dev/null
vg loss --model "$tmp/m.bin" --data "$tmp/d.txt" --split train --json > /dev/null
vg sample --model "$tmp/m2.ckpt" --prompt "Hi" --tokens 8 > /dev/null
if vg loss --model "$tmp/d.txt" --data "$tmp/d.txt" 2> "$tmp/err"; then
  echo "valgrind: expected a bad-checkpoint error" >&2; exit 1
fi
grep -q "not a checkpoint" "$tmp/err"
vg bench --dims 64 --seqs 37 --ks 8,32 --runs 1 --threads 2 --csv "$tmp/b.csv" > /dev/null
# tblock over several tiles (b = 16 and 7: partial blocks, kept earlier blocks, 2 backward groups)
vg bench --dims 128 --seqs 150 --variants tblock --tblock-b 16 --tblock-n 3 --phases prefill,backward \
   --runs 1 --threads 2 > /dev/null
vg bench --dims 64 --seqs 100 --variants tblock --tblock-b 7 --tblock-n 4 --phases prefill,backward \
   --runs 1 --threads 2 > /dev/null
echo "valgrind: train, resume, llm.c format, loss, sample, bad file, bench: clean"
