#!/usr/bin/env bash
# How sattn's training speed depends on OpenMP's wait policy, quiet and with one other
# busy process on the machine (issue 9 item 14; results in docs/reliability.md).
# Each round runs every policy once, quiet and loaded, interleaved, so drift of a shared
# machine hits all of them alike; prints tokens/s per run and the medians.
# Usage: scripts/bench-wait-policy.sh [ROUNDS] [CONFIG]   (default 3 rounds of config B)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
CFG=${2:-B}
BIN=${SATTN_BIN:-build/sattn}
# name=environment; "sattn-default" runs with nothing set (what a user gets)
POLICIES=("sattn-default=" "active=OMP_WAIT_POLICY=active" "libgomp-spin=GOMP_SPINCOUNT=300000"
          "spin-10k=GOMP_SPINCOUNT=10000" "spin-1k=GOMP_SPINCOUNT=1000"
          "passive=OMP_WAIT_POLICY=passive" "1-thread=OMP_NUM_THREADS=1")
declare -A runs
one() { # policy-env load
    local envs=$1 load=$2 pid=""
    [ "$load" = loaded ] && { sh -c 'while :; do :; done' & pid=$!; }
    local tps
    local js; js=$(mktemp)
    env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_NUM_THREADS=2 $envs "$BIN" bench-train \
        --configs "$CFG" --runs 3 --json-out "$js" >/dev/null 2>&1 || true
    tps=$(grep -o '"tokens_per_s": [0-9.]*' "$js" | head -1 | awk '{print $2}')
    rm -f "$js"
    [ -n "$pid" ] && kill "$pid" && wait "$pid" 2>/dev/null || true
    echo "${tps:-0}"
}
for r in $(seq "$ROUNDS"); do
  for p in "${POLICIES[@]}"; do
    name=${p%%=*}; envs=${p#*=}
    for load in quiet loaded; do
      v=$(one "$envs" $load)
      runs[$name/$load]="${runs[$name/$load]:-} $v"
      echo "round $r $name $load $v"
    done
  done
done
echo "policy quiet_median loaded_median loaded/quiet runs_quiet runs_loaded"
for p in "${POLICIES[@]}"; do
  name=${p%%=*}
  q=$(echo ${runs[$name/quiet]} | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}')
  l=$(echo ${runs[$name/loaded]} | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}')
  echo "$name $q $l $(awk -v q=$q -v l=$l 'BEGIN{printf "%.2f", q>0?l/q:0}') [${runs[$name/quiet]} ] [${runs[$name/loaded]} ]"
done
