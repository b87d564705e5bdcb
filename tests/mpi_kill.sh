#!/usr/bin/env bash
# A rank killed mid-run (tests/test_mpi.c): starts a 2-rank training job that writes a
# checkpoint every 5 steps, waits for the first one, kills rank 1 with SIGKILL, and prints
# "mpirun exit N after S s" (mpirun itself names the rank that died: no -q here). Fails (exit 1) when mpirun is still running 60 s later.
# usage: tests/mpi_kill.sh SATTN DATA CKPT
set -u
bin=$1 data=$2 ck=$3
mpirun -np 2 --oversubscribe --allow-run-as-root "$bin" train --data "$data" --layers 2 --heads 2 --dim 64 \
    --seq 32 --batch 8 --steps 100000 --save-every 5 --threads 1 --out "$ck" &
job=$!
for _ in $(seq 600); do [ -f "$ck" ] && break; sleep 0.1; done
[ -f "$ck" ] || { echo "no checkpoint after 60 s"; kill -9 $job; exit 1; }
victim=""
for p in $(pgrep -P $job); do
    tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && victim=$p
done
[ -n "$victim" ] || { echo "rank 1 not found among mpirun's children"; kill -9 $job; exit 1; }
t0=$(date +%s)
kill -9 "$victim"
for _ in $(seq 600); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
if kill -0 $job 2>/dev/null; then echo "mpirun still running 60 s after the kill"; kill -9 $job; exit 1; fi
wait $job
echo "mpirun exit $? after $(( $(date +%s) - t0 )) s"
