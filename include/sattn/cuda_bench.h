/* cuda_bench: `sattn bench --device cuda` (src/cuda/cuda_bench.c, docs/cuda.md) —
 * attnbench's grid on the GPU, the GPU backend of its grid driver (attnbench.h):
 * dense-flash (sa_cuda_flash_forward; decode sa_cuda_decode_dense), index+softmax and
 * block+softmax at costmodel's standard specs (index with rank index_rank and
 * index_heads indexer heads) through sa_cuda_sparse_forward and sa_cuda_decode_sparse
 * (cuda_attn.h), and tblock+softmax (b, n from cfg->tblock_b, tblock_n): prefill =
 * sa_cuda_tblock_select + sa_cuda_tblock_forward, backward = sa_cuda_tblock_backward
 * over a selection made untimed (its GFLOP/s: useful work, as attnbench.h counts the
 * CPU's tblock rows). Same method as ab_run (median of cfg->runs, each run >= 5 ms),
 * timed with cudaEvents after two warm-up calls; the decode side state is built untimed;
 * backward rows for tblock only (no other backward on the GPU, so their x_flash is -1);
 * rows predicted to exceed cfg->max_run_s skipped. Compiled in every build; without
 * -DSATTN_CUDA it only reports "built without CUDA". */
#ifndef SATTN_CUDA_BENCH_H
#define SATTN_CUDA_BENCH_H

#include <stddef.h>

#include "sattn/attnbench.h"
#include "sattn/benchres.h"
#include "sattn/core.h"

/* Rows are named "<variant>-cuda" (index with a non-default rank or J:
 * "index+softmax-cuda-rR-jJ"; no commas or colons, so bench_csv_read reads the CSV
 * back and the report labels its plots), speedup_vs_flash is against dense-flash-cuda,
 * cpu_pressure is -1. on_row sees NULL once the device is open, then each row; device
 * gets the GPU's name. -1 with e when there is no GPU or no CUDA build. The rows are
 * written with bench_csv_write (benchres.h). */
int sa_cuda_bench(const ab_config *cfg, int index_rank, int index_heads, bench_row **rows, int *nrows,
                  void (*on_row)(const bench_row *r, void *ctx), void *ctx, char *device, size_t ndevice,
                  sattn_err *e);

#endif
