#!/usr/bin/env bash
# `make fuzz` (fuzz/README.md): for each reader X given,
#   1. replays every file of fuzz/regress/X/ and fuzz/corpus/X/ (each in full, whatever
#      its size) through build-fuzz/fuzz_X;
#   2. fuzzes it for SECONDS, starting from both (new inputs go to build-fuzz/work/X/, not
#      into the repository), with a per-input timeout (a hang is a failure) and a memory cap;
#   3. prints one summary line with the executions run.
# Exits non-zero if any reader crashed, hung, leaked or got a sanitizer report; the input
# that did it is saved as build-fuzz/crash/X/<kind>-<sha1> (copy it to fuzz/regress/X/).
#   bash fuzz/run.sh SECONDS READER...
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:?usage: run.sh SECONDS READER...}
shift
B=build-fuzz
# -max_len per format: about twice its largest valid seed
declare -A MAXLEN=([ckpt]=16384 [tokens]=4096 [shard]=4096 [heads]=2048 [plan]=1024 [safetensors]=16384
                   [bench_csv]=2048 [eval_json]=4096 [task_json]=4096 [trainlog]=2048 [phases]=2048
                   [bpe_vocab]=4096 [bpe_encode]=4096)
TIMEOUT=${FUZZ_TIMEOUT:-10} # seconds per input
RSS=${FUZZ_RSS_MB:-2048}
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
fail=0
summary=()
total=0
for r in "$@"; do
    bin=$B/fuzz_$r
    log=$B/log/$r.log
    mkdir -p "$B/log" "$B/work/$r" "$B/crash/$r" "fuzz/regress/$r"
    : > "$log"
    common=(-timeout="$TIMEOUT" -rss_limit_mb="$RSS" -malloc_limit_mb="$RSS"
            -artifact_prefix="$B/crash/$r/")
    [ -f "fuzz/dict/$r.dict" ] && common+=(-dict="fuzz/dict/$r.dict")
    nreg=$(find "fuzz/regress/$r" -type f ! -name '.*' | wc -l)
    nseed=$(find "fuzz/corpus/$r" -type f ! -name '.*' | wc -l)
    # 1. replay (files, not directories: libFuzzer runs each once and in full)
    mapfile -t files < <(find "fuzz/regress/$r" "fuzz/corpus/$r" -type f ! -name '.*' | sort)
    if [ ${#files[@]} -gt 0 ] && ! "$bin" "${common[@]}" "${files[@]}" >> "$log" 2>&1; then
        summary+=("fuzz: $r: FAILED replaying fuzz/regress/$r + fuzz/corpus/$r ($nreg + $nseed files); see $log")
        fail=1
        continue
    fi
    # 2. fuzz
    rc=0
    "$bin" "${common[@]}" -max_len="${MAXLEN[$r]:-4096}" -max_total_time="$SECONDS_EACH" \
        -print_final_stats=1 "$B/work/$r" "fuzz/corpus/$r" "fuzz/regress/$r" >> "$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    execs=${execs:-0}
    total=$((total + execs))
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    if [ "$rc" != 0 ]; then
        art=$(grep -oE "(Test unit written to|artifact_prefix.*) [^ ]+" "$log" | tail -1 | awk '{print $NF}')
        why=$(grep -m1 -oE "ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer): [a-z-]+[^(]*|runtime error: .*|fuzz oracle failed.*|ALARM: .*" "$log" | head -1)
        summary+=("fuzz: $r: FAILED after $execs executions (exit $rc): ${why:-see $log}; input: ${art:-none}")
        fail=1
    else
        summary+=("fuzz: $r: ok, $execs executions in ${SECONDS_EACH} s, coverage ${cov:-?}, $nseed seeds + $nreg regression inputs replayed")
    fi
done
printf '%s\n' "${summary[@]}"
if [ "$fail" != 0 ]; then
    echo "fuzz: FAILED (logs in $B/log/, inputs in $B/crash/; reproduce with $B/fuzz_READER INPUT)"
    exit 1
fi
echo "fuzz: all $# readers ok, $total executions"
