/* attnbench: measured wall time of ONE attention layer (the attention only, no
 * projections), batch 1, H = C/64 heads of head dim d = 64, random q, k, v from a
 * seeded generator (docs/bench.md). Issue 4, item 4.
 *
 * Variants, each in two phases:
 *   prefill (T queries, causal)              decode (one query, KV cache of T keys)
 *   dense-naive   attention_forward (nn.h)   -
 *   dense-flash   flash_attention_forward    attention_decode_step (flash.h)
 *   index+softmax selector_select +          sparse_decode_index (sparse_decode.h): the
 *                 headfn_forward per head      indexer scores all T cached keys for the
 *                 (parallel over heads)        one query, top-k, gathered softmax
 *   block+softmax the same                   sparse_decode_block: scores the T/b block
 *                                              summaries, top n-1 + the local block,
 *                                              gathered softmax
 *   tblock+softmax tblock_select +          -
 *                 tblock_forward (tblock.h): selection shared by a query tile of b,
 *                 the kept blocks as flash tiles (one row per (C, T): b and n from
 *                 the config, --tblock-b/--tblock-n, not from k; its k column = b n)
 *   lindex+softmax lindex_select (lindex.h:  -
 *                 one shared indexer for the layer, r 32, J 1, bf16 scores where
 *                 the CPU has them) + headfn_forward per head over that selection;
 *                 only with --variants (not in the default grid); no counts
 * The sparse specs are costmodel.h's standard ones at k (cm_standard_variants):
 * index r = 16, J = 4 (random selector parameters: selection quality does not matter
 * for time); block b = 16, n = k/16 for k >= 32 (b = k/2, n = 2 below).
 * In decode the block summaries and the indexer's projected keys k~ belong to the
 * cache (a real cache updates them once per token), so they are built outside the
 * timed region.
 *
 * Method: one warm-up call, then the median of `runs` runs; a run repeats the call
 * enough times to last >= 5 ms (so microsecond decode steps time well) and reports
 * the time per call. /proc/pressure/cpu "some avg10" is read before each row (-1 when
 * the file is missing). A row is skipped when its buffers exceed max_bytes or when
 * its time, predicted from the same series' previous T scaled by costmodel's FLOPs,
 * exceeds max_run_s (a series' first row: costmodel's FLOPs at 100 GFLOP/s dense,
 * 5 GFLOP/s sparse, about what this machine's kernels reach).
 *
 * The rows are benchres.h's bench_row (the CSV is written and read there). The grid
 * driver (ab_grid_run, src/analysis/benchgrid.c) is shared with the GPU: a backend
 * gives the setup, run and teardown of a row and the timer; the CPU's is ab_run's
 * (src/analysis/attnbench.c), the GPU's sa_cuda_bench's (cuda_bench.h). */
#ifndef SATTN_ATTNBENCH_H
#define SATTN_ATTNBENCH_H

#include <stdint.h>
#include <stdio.h>

#include "sattn/benchres.h"
#include "sattn/core.h"
#include "sattn/costmodel.h"
#include "sattn/sparse.h"

typedef enum { AB_NAIVE = 0, AB_FLASH = 1, AB_INDEX = 2, AB_BLOCK = 3, AB_TBLOCK = 4, AB_LINDEX = 5, AB_NVAR = 6 } ab_variant;

/* The phases are benchres.h's BENCH_PREFILL, BENCH_DECODE and BENCH_BACKWARD. backward:
 * d qkv from d out for the prefill of T (the forward runs once, untimed, first): naive
 * attention_backward, flash_attention_backward, and for the sparse variants
 * headfn_backward over the forward's selection (the selector is discrete and has no
 * backward; tblock_backward over the forward's tile selection). Its GFLOP/s count 4
 * products a causal pair (dense) or a selected key (sparse, the forward's own counts);
 * no analytic T* (-1).
 * tblock's FLOPs in every phase are its useful work, counted as flash's is (4 hs FLOPs a
 * pair forward, 8 backward, over the unmasked (query, key) pairs of the selection,
 * tblock_pairs): the tile selection it also runs (pooled queries, mean keys and their
 * scores: about 1/b of the attention's multiply-adds) is timed but not counted in its
 * GFLOP/s; its analytic T* is costmodel.h's tile=1 block spec (selection per tile). */

#define AB_MAX_LIST 32

typedef struct {
    int dims[AB_MAX_LIST], ndims;
    int seqs[AB_MAX_LIST], nseqs;
    int ks[AB_MAX_LIST], nks;
    unsigned variants;  /* bit v set: run variant v */
    unsigned phases;    /* bit p set: run phase p (BENCH_PREFILL, BENCH_DECODE, BENCH_BACKWARD) */
    int runs;           /* timed runs per row (median) */
    double max_run_s;   /* skip a row predicted to take longer per call */
    double max_bytes;   /* skip a row whose buffers exceed this */
    uint64_t seed;
    int tblock_b, tblock_n; /* tblock's block size and blocks kept per tile (64, 8) */
} ab_config;

typedef struct {
    ab_variant v;
    int phase, C, k;
    int measured;   /* smallest measured T from which the variant beats dense-flash at
                     * every larger measured T (speedup > 1), or -1 when the largest
                     * measured T does not win: report.md's and crossover.h's T* */
    int analytic;   /* cm_crossover (FLOPs, projections included), or -1 */
} ab_cross;

/* The default grid: C {128,256,512,1024}, T {64..32768}, k {8,16,32,64,128,256}, all variants
 * and phases,
 * 5 runs, 2 s, 2 GiB. quick: C {256,512}, T {256,1024,4096}, k {32}, prefill and decode,
 * 3 runs. */
ab_config ab_config_default(int quick);

/* "dense-naive", "dense-flash", "index+softmax", "block+softmax", "tblock+softmax",
 * "lindex+softmax". */
const char *ab_variant_name(ab_variant v);
/* Accepts the names above and the short forms naive, flash, index, block, tblock, lindex;
 * -1 if none. */
int ab_variant_parse(const char *s);
/* What variant v runs at k: cm_dense, or costmodel.h's standard spec at k for index and
 * block (cm_standard_variants), so the analytic numbers describe exactly what runs. For
 * tblock (k = b n) the per-query block spec with b = 64, n = k / 64 (at least 1): the same
 * keys per query, which is what costmodel.h can describe (its selection is per query). */
cm_variant ab_variant_at(ab_variant v, int k);
/* The same with tblock's b and n from cfg (the spec its grid rows run). */
cm_variant ab_variant_cfg(const ab_config *cfg, ab_variant v, int k);

/* Runs the grid on the CPU (C outer, then T, then phase, then variant: dense-flash
 * first, so every later row of the group has its speedup). on_row (may be NULL) sees
 * each row as it is made, e.g. to print progress. *rows (malloc'd) and *nrows get them
 * all; rows are named after their variant (ab_variant_name). */
void ab_run(const ab_config *cfg, bench_row **rows, int *nrows,
            void (*on_row)(const bench_row *r, void *ctx), void *ctx);

/* ---- the grid driver and its backends ----
 * Per C, per T (ascending): data_make (the random inputs), then per phase and variant
 * and k: costmodel's cost at the row's spec, the time predicted from the series'
 * previous row (or its first row's FLOPs at first_flops[dense or sparse]; a backward
 * costs 3x its forward then), a skip when above max_run_s, setup (NULL: skipped, e.g.
 * for memory), pressure (if any), `warmups` untimed runs, a timed warm-up run that sizes
 * the repetitions (a run of >= 5 ms, at most max_reps calls), the median over cfg->runs
 * runs of the time per call, the row's FLOPs, teardown; data_free. */
typedef struct {
    const char *suffix;       /* added to the variant names, e.g. "-cuda" */
    unsigned variants;        /* the variants (bits) and phases (bits) the backend runs */
    unsigned phases;
    int index_rank, index_heads; /* 0: the standard indexer; else that rank and J, and the
                                  * index rows are named "...-rR-jJ" when they differ */
    double first_flops[2];    /* FLOP/s assumed for a series' first row: dense, sparse */
    int warmups, max_reps;
    void *ctx;                /* the backend's own state, passed to every call */
    void *(*data_make)(void *ctx, int C, int T, const ab_config *cfg);
    void (*data_free)(void *ctx, void *data);
    /* The state of one row (variant v in phase at its spec cv), or NULL to skip it;
     * *extra_bytes: memory beyond costmodel's peak it allocates (added to peak_bytes). */
    void *(*setup)(void *ctx, void *data, ab_variant v, int phase, const cm_variant *cv, const ab_config *cfg,
                   double *extra_bytes);
    void (*run)(void *row);
    double (*backward_flops)(void *row); /* a backward row's FLOPs (NULL: no backward) */
    double (*prefill_flops)(void *row);  /* a prefill row's FLOPs when the backend counts
                                          * them itself (NULL, or < 0: costmodel's) */
    void (*teardown)(void *row);
    void (*timer_start)(void *ctx);
    double (*timer_stop)(void *ctx);     /* seconds since timer_start */
    double (*pressure)(void);            /* the row's cpu_pressure; NULL: -1 */
} ab_backend;

void ab_grid_run(const ab_config *cfg, const ab_backend *be, bench_row **rows, int *nrows,
                 void (*on_row)(const bench_row *r, void *ctx), void *ctx);

/* The grid's random inputs at (C, T): qkv (T, 3C) uniform with unit variance from seed,
 * the same on every backend. */
void ab_random_qkv(float *qkv, int C, int T, uint64_t seed);

/* Measured and analytic crossovers per (sparse variant, phase, C, k) present in rows
 * (named by ab_variant_name; other names are left out), into out (capacity cap);
 * returns the count. */
int ab_crossovers(const bench_row *rows, int n, ab_cross *out, int cap);

/* Instrumented counts: runs ONE call of what a row of the grid times, variant v at
 * (phase, C, T), with random inputs, and adds the matrix products it executes to cnt
 * (core.h: only a SATTN_COUNT build counts; others leave cnt untouched). Sparse
 * variants run spec (any selector and head function for prefill; index or block with
 * softmax for decode), or the standard spec at k when spec is NULL. -1 and a message
 * for a combination the grid does not run. */
/* Bytes ab_count allocates for the same arguments (the shared inputs and what the
 * variant adds), for a memory check before running it. */
double ab_count_bytes(ab_variant v, int phase, int C, int T, int k, const head_spec *spec);
int ab_count(ab_variant v, int phase, int C, int T, int k, const head_spec *spec, uint64_t seed,
             op_count *cnt, sattn_err *e);

/* /proc/pressure/cpu "some avg10", or -1 when it cannot be read. */
double ab_cpu_pressure(void);

#endif
