#!/usr/bin/env bash
# Regenerates fuzz/corpus/<reader>/ (`make fuzz-seeds`): the valid seeds come from sattn's
# own writers (BUILD/fuzz-gen-seeds, fuzz/gen_seeds.c; `sattn eval --json` for eval_json),
# the invalid ones ("bad-*") are cut from them here. Run from the repository root:
#   bash fuzz/make_seeds.sh [BUILD]      (BUILD: the gcc build dir, default build)
set -euo pipefail
BUILD=${1:-build}
C=fuzz/corpus
READERS="ckpt tokens shard heads plan bench_csv eval_json safetensors"
for r in $READERS; do
    rm -rf "$C/$r"
    mkdir -p "$C/$r"
done
ev=$(mktemp -d)
trap 'rm -rf "$ev"' EXIT
"$BUILD/fuzz-gen-seeds" "$C" "$ev"

# eval JSON, written by the CLI itself
for h in index mlp; do
    OMP_NUM_THREADS=1 "$BUILD/sattn" eval --model "$ev/model.ckpt" --heads "$ev/heads_$h.sparse" \
        --data "$ev/text.txt" --split train --json > "$C/eval_json/eval-$h.json"
done

# invalid seeds: truncations, the wrong format, edge cases of each text format
cut_to() { head -c "$2" "$1" > "$3"; }
cut_to "$C/ckpt/sattn-L1H1C8V16T8.bin" 100 "$C/ckpt/bad-truncated-header.bin"
cut_to "$C/ckpt/llmc-L1H1C8V16T8.bin" 1500 "$C/ckpt/bad-truncated-payload.bin"
cp "$C/tokens/llmc-big-id-8.bin" "$C/ckpt/bad-token-file.bin"
printf 'hello, world\n' > "$C/tokens/text.txt"
cut_to "$C/tokens/llmc-64.bin" 600 "$C/tokens/bad-magic-short.bin"
cut_to "$C/tokens/llmc-64.bin" 1030 "$C/tokens/bad-odd-size.bin"
cut_to "$C/heads/index-softmax-L1H2C8T8.sparse" 300 "$C/heads/bad-truncated.sparse"
cut_to "$C/shard/L1H1C8T8-k4.shard" 400 "$C/shard/bad-truncated.shard"
printf '\x00all:index+softmax:b=4' > "$C/plan/bad-option.txt"
printf '\x05L9H0:dense;L0H0:index+softmax:k=0;;' > "$C/plan/bad-range.txt"
printf '\x00\n# only a comment\n' > "$C/plan/bad-empty.txt"
head -n 1 "$C/bench_csv/bench.csv" > "$C/bench_csv/bad-header-only.csv"
{ head -n 1 "$C/bench_csv/bench.csv"; printf "x');system('id');#,prefill,256,4,256,32,1e-4,1,1,1,0\r\n"; } \
    > "$C/bench_csv/quote-variant.csv"
{ head -n 1 "$C/bench_csv/bench.csv"; printf 'index+softmax,sideways,256,4,256,32,nan,1,1,1,0\n'; } \
    > "$C/bench_csv/bad-phase-nan.csv"
printf '{"heads": [], "loss_dense": 1, "loss_hybrid": 1.5, "loss_ratio": 1.5, "x": [[[[{"a": [1, "\\u00e9\\n"]}]]]]}' \
    > "$C/eval_json/nested-skip.json"
printf '{"heads": [{"layer": 0, "head": 0, "spec": "index+softmax:k=4"}], "loss_dense": 1}' \
    > "$C/eval_json/bad-missing-field.json"
# safetensors as Hugging Face's GPT2LMHeadModel saves it (tests/hf_writer.py: "transformer."
# names, U8 mask buffers, the tied lm_head), and broken ones
mkdir -p "$ev/py"
python3 tests/hf_writer.py "$C/ckpt/llmc-L1H1C8V16T8.bin" "$ev/py" F16 - --n-head-meta
cp "$ev/py/model.safetensors" "$C/safetensors/python-gpt2lmhead-L1H1C8V16T8-F16.safetensors"
S=$C/safetensors/sattn-L1H1C8V16T8-F32.safetensors
cut_to "$S" 700 "$C/safetensors/bad-truncated.safetensors"
{ printf '\xff\xff\x00\x00\x00\x00\x00\x00'; tail -c +9 "$S"; } > "$C/safetensors/bad-header-length.safetensors"
printf '\x18\0\0\0\0\0\0\0{"a":{"dtype":"F32",   }' > "$C/safetensors/bad-json.safetensors"
for r in $READERS; do
    echo "fuzz-seeds: $r: $(ls "$C/$r" | wc -l) files, $(du -cb "$C/$r"/* | tail -1 | cut -f1) bytes"
done
