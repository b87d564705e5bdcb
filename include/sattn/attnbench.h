/* attnbench: measured wall time of ONE attention layer (the attention only, no
 * projections), batch 1, H = C/64 heads of head dim d = 64, random q, k, v from a
 * seeded generator (docs/bench.md). Issue 4, item 4.
 *
 * Variants, each in two phases:
 *   prefill (T queries, causal)              decode (one query, KV cache of T keys)
 *   dense-naive   attention_forward (nn.h)   -
 *   dense-flash   flash_attention_forward    attention_decode_step (flash.h)
 *   index+softmax selector_select +          ab_index_decode: the indexer scores all T
 *                 headfn_forward per head      cached keys for the one query, top-k,
 *                 (parallel over heads)        gathered softmax
 *   block+softmax the same                   ab_block_decode: scores the T/b block
 *                                              summaries, top n-1 + the local block,
 *                                              gathered softmax
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
 * 5 GFLOP/s sparse, about what this machine's kernels reach). */
#ifndef SATTN_ATTNBENCH_H
#define SATTN_ATTNBENCH_H

#include <stdint.h>
#include <stdio.h>

#include "sattn/core.h"
#include "sattn/sparse.h"

typedef enum { AB_NAIVE = 0, AB_FLASH = 1, AB_INDEX = 2, AB_BLOCK = 3, AB_NVAR = 4 } ab_variant;

/* Phases. backward: d qkv from d out for the prefill of T (the forward runs once,
 * untimed, first): naive attention_backward, flash_attention_backward, and for the
 * sparse variants headfn_backward over the forward's selection (the selector is
 * discrete and has no backward). Its GFLOP/s count 4 products a causal pair (dense) or
 * a selected key (sparse, the forward's own counts); no analytic T* (-1). */
enum { AB_PREFILL = 0, AB_DECODE = 1, AB_BACKWARD = 2, AB_NPHASE = 3 };

#define AB_MAX_LIST 32

typedef struct {
    int dims[AB_MAX_LIST], ndims;
    int seqs[AB_MAX_LIST], nseqs;
    int ks[AB_MAX_LIST], nks;
    unsigned variants;  /* bit v set: run variant v */
    unsigned phases;    /* bit p set: run phase p (AB_PREFILL, AB_DECODE, AB_BACKWARD) */
    int runs;           /* timed runs per row (median) */
    double max_run_s;   /* skip a row predicted to take longer per call */
    double max_bytes;   /* skip a row whose buffers exceed this */
    uint64_t seed;
} ab_config;

typedef struct {
    ab_variant v;
    int decode;                 /* the phase: AB_PREFILL, AB_DECODE or AB_BACKWARD */
    int C, H, T, k;             /* k = 0 for the dense variants */
    double median_s, gflops;    /* gflops: costmodel's attention FLOPs / median */
    double speedup;             /* dense-flash's median at (phase, C, T) / ours; -1: none */
    double peak_bytes;          /* costmodel's peak activation memory */
    double pressure;            /* /proc/pressure/cpu some avg10 before the row; -1: none */
} ab_row;

typedef struct {
    ab_variant v;
    int decode, C, k;
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

/* "dense-naive", "dense-flash", "index+softmax", "block+softmax". */
const char *ab_variant_name(ab_variant v);
/* Accepts the names above and the short forms naive, flash, index, block; -1 if none. */
int ab_variant_parse(const char *s);
/* "prefill", "decode", "backward"; ab_phase_parse: their phase, or -1. */
const char *ab_phase_name(int phase);
int ab_phase_parse(const char *s);

/* Runs the grid (C outer, then T, then phase, then variant: dense-flash first, so
 * every later row of the group has its speedup). on_row (may be NULL) sees each row
 * as it is made, e.g. to print progress. *rows (malloc'd) and *nrows get them all. */
void ab_run(const ab_config *cfg, ab_row **rows, int *nrows,
            void (*on_row)(const ab_row *r, void *ctx), void *ctx);

/* Measured and analytic crossovers per (sparse variant, phase, C, k) present in rows,
 * into out (capacity cap); returns the count. */
int ab_crossovers(const ab_row *rows, int n, ab_cross *out, int cap);

/* Instrumented counts: runs ONE call of what a row of the grid times, variant v at
 * (phase, C, T), with random inputs, and adds the matrix products it executes to cnt
 * (core.h: only a SATTN_COUNT build counts; others leave cnt untouched). Sparse
 * variants run spec (any selector and head function for prefill; index or block with
 * softmax for decode), or the standard spec at k when spec is NULL. -1 and a message
 * for a combination the grid does not run. */
/* Bytes ab_count allocates for the same arguments (the shared inputs and what the
 * variant adds), for a memory check before running it. */
double ab_count_bytes(ab_variant v, int decode, int C, int T, int k, const head_spec *spec);
int ab_count(ab_variant v, int decode, int C, int T, int k, const head_spec *spec, uint64_t seed,
             op_count *cnt, sattn_err *e);

/* The CSV header line (with '\n') and one row (with '\n') into buf. */
const char *ab_csv_header(void);
void ab_csv_row(const ab_row *r, char *buf, size_t n);
/* The same with the variant column given (GPU rows name their own variants). */
void ab_csv_row_named(const char *name, const ab_row *r, char *buf, size_t n);
/* Header and rows written atomically to path. */
int ab_csv_write(const char *path, const ab_row *rows, int n, sattn_err *e);
/* Header and n lines, line(i, ctx, ...) writing the i-th (with '\n'), atomically to path. */
int ab_csv_write_with(const char *path, int n, void (*line)(int i, const void *ctx, char *buf, size_t len),
                      const void *ctx, sattn_err *e);

/* /proc/pressure/cpu "some avg10", or -1 when it cannot be read. */
double ab_cpu_pressure(void);

/* ---- single-query decode paths (exported for the tests) ----
 * One head: q (d), cached keys/values at k + s*ld, v + s*ld for s = 0..T-1, the
 * newest being T-1. Output o (d); idx (kmax) gets the selected keys in the order the
 * prefill selector lists them for its last query; returns their count. */

/* Block summaries of the nb = floor(T/b) complete blocks: per block 2*d floats (mean
 * key, or [lo | hi] with bounds), the same values selector_select computes. */
void ab_block_summaries(const head_spec *s, int d, const float *k, int ld, int T, float *sum);
/* work: T/b + 1 floats + T/b + 1 ints' worth (2*(T/b + 1) floats) + kmax floats. */
size_t ab_block_decode_work(const head_spec *s, int T);
int ab_block_decode(const head_spec *s, int d, const float *q, const float *k, const float *v,
                    int ld, int T, const float *sum, float *o, int *idx, float *work);

/* kt (T, r) = k Wk^T: the indexer's projected keys, kept with the cache. */
void ab_index_keys(const head_spec *s, const float *params, int d, const float *k, int ld, int T,
                   float *kt);
/* work: J*r + J + 2*T + kmax floats. */
size_t ab_index_decode_work(const head_spec *s, int T);
int ab_index_decode(const head_spec *s, const float *params, int d, const float *q,
                    const float *k, const float *v, int ld, int T, const float *kt, float *o,
                    int *idx, float *work);

#endif
