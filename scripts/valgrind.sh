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
# native sparse training (docs/native_sparse.md): warm-up, stop, resume, reload with --heads
plan='sparse:L0H0:index+softmax:k=4; L0H1:block+softmax:b=4,n=2'
vg train --data "$tmp/d.txt" --out "$tmp/s.ckpt" "${tiny[@]}" --steps 4 --stop-at 2 --attn "$plan" \
   --dense-warmup 1 --heads-out "$tmp/s.heads" > /dev/null 2>&1
vg train --data "$tmp/d.txt" --out "$tmp/s.ckpt" "${tiny[@]}" --steps 4 --resume "$tmp/s.ckpt" --attn "$plan" \
   --dense-warmup 1 --heads-out "$tmp/s.heads" > /dev/null 2>&1
vg loss --model "$tmp/s.ckpt" --heads "$tmp/s.heads" --data "$tmp/d.txt" > /dev/null
# tile-shared selection as the model's attention (tile=1: tblock forward and backward per layer)
vg train --data "$tmp/d.txt" --out "$tmp/t.ckpt" "${tiny[@]}" --steps 2 --pos rope \
   --attn 'sparse:all:block+softmax:b=6,n=2,tile=1' --heads-out "$tmp/t.heads" > /dev/null 2>&1
vg loss --model "$tmp/t.ckpt" --heads "$tmp/t.heads" --data "$tmp/d.txt" > /dev/null
# ... and its KV-cache decode (tile steps across tile boundaries, a window restart at 16), the
# end-to-end benchmarks with their per-phase split
vg sample --model "$tmp/t.ckpt" --heads "$tmp/t.heads" --prompt "Hi there" --tokens 20 > /dev/null
vg bench-generate --layers 1 --heads 2 --dim 16 --contexts 13,24 --runs 2 --steps 5 --recompute-max 0 \
   --plan 'all:block+softmax:b=6,n=2,tile=1' --phases-csv "$tmp/gp.csv" --threads 2 > /dev/null
vg bench-train --plan 'all:block+softmax:b=6,n=2,tile=1' --layers 1 --heads 2 --dim 16 --seqs 20 --runs 2 \
   --csv "$tmp/tp.csv" --threads 2 > /dev/null
# long context (docs/long.md): RoPE + flash with the task mix, context extension, the KV
# cache (dense and with sparse heads), the passkey grid, bench-generate
rope=(--layers 1 --heads 2 --dim 16 --batch 2 --threads 2 --pos rope)
vg train --data "$tmp/d.txt" --out "$tmp/r.ckpt" "${rope[@]}" --seq 128 --steps 2 --attn flash \
   --mix passkey:0.5,mqar:0.25 --mix-loss answers --mix-length varied > /dev/null 2>&1
vg train --data "$tmp/d.txt" --out "$tmp/r2.ckpt" --init-from "$tmp/r.ckpt" --seq 256 --batch 1 --steps 1 \
   --threads 2 --attn flash --rope-extend ntk > /dev/null 2>&1
vg sample --model "$tmp/r2.ckpt" --prompt "Hi" --tokens 8 --seq 300 > /dev/null
vg sample --model "$tmp/s.ckpt" --heads "$tmp/s.heads" --prompt "Hi" --tokens 8 > /dev/null
vg task --model "$tmp/r2.ckpt" --task passkey --lengths 128,256 --depths 2 --samples 1 --threads 2 > /dev/null
vg bench-generate --model "$tmp/r2.ckpt" --contexts 64,128 --runs 1 --steps 2 --threads 2 > /dev/null
vg bench --dims 64 --seqs 37 --ks 8,32 --runs 1 --threads 2 --csv "$tmp/b.csv" > /dev/null
# tblock over several tiles (b = 16 and 7: partial blocks, kept earlier blocks, 2 backward groups)
vg bench --dims 128 --seqs 150 --variants tblock --tblock-b 16 --tblock-n 3 --phases prefill,backward \
   --runs 1 --threads 2 > /dev/null
vg bench --dims 64 --seqs 100 --variants tblock --tblock-b 7 --tblock-n 4 --phases prefill,backward \
   --runs 1 --threads 2 > /dev/null
# models in and out of Hugging Face's formats (docs/safetensors.md), GPT-2 tokens (docs/tokenizer.md)
vg convert --in "$tmp/m2.ckpt" --out "$tmp/hf/" > /dev/null
vg convert --in "$tmp/hf" --out "$tmp/m.safetensors" --dtype bf16 > /dev/null
vg loss --model "$tmp/m.safetensors" --data "$tmp/d.txt" > /dev/null
vg convert --in "$tmp/hf/model.safetensors" --out "$tmp/back.bin" > /dev/null
if [ -f data/gpt2/encoder.json ]; then
  vg tokenize --in "$tmp/d.txt" --out "$tmp/d.tokens" > /dev/null 2>&1
fi
echo "valgrind: train, resume, llm.c format, loss, sample, bad file, native sparse train/resume/loss," \
     "RoPE + flash + task mix, extension, KV-cache sample (dense, sparse, tile), task, bench-generate (tile)," \
     "bench-train --plan, bench, tblock, convert (HF folder, safetensors bf16, llm.c), tokenize: clean"
