/* genbench: `sattn bench-generate` (docs/generate.md): prefill time and decode time per
 * token of a whole model with the KV cache (generate.h), dense and with sparse heads
 * (hybrid_decode.h), against the recompute baseline (one full forward per token, what
 * `sattn sample` did before the cache), at a list of contexts.
 *
 * A plan's prefill runs the hybrid's forward: GPT_ATTN_HOOK when every head is sparse (a
 * tile=1 plan's whole layers through tblock; memory linear in T), naive attention otherwise
 * (its dense heads need the T x T buffer). Its decode rows run hybrid_decode.h's steps on
 * the cache that prefill left (a tile plan's decode needs its queries: it is never decoded
 * from the dense variant's cache).
 *
 * Rows are benchres.h's bench rows (so the CSV reader, the crossover tools and the report
 * read them), with these meanings:
 *   variant  "gen-dense" (the model's attention for the prefill, flash.h's decode step),
 *            "gen-<label>" per sparse plan or heads file (label: its text, with every byte
 *            outside letters, digits and + - _ . : = made '_'), "gen-recompute-naive" and
 *            "gen-recompute-flash" (one gpt_forward of T tokens with that attention);
 *   phase    prefill (the whole prefill of T tokens) or decode (one token; recompute rows
 *            are decode rows: the cost of one generated token);
 *   C, H, T  the model's width and heads, the context; k: the largest kmax of the plan's
 *            sparse heads at T (0 dense);
 *   median_s the median over runs (decode: over runs x steps single-token steps at
 *            contexts T+1 .. T+steps; prefill: over the runs whose prefill was repeated,
 *            one where a prefill takes more than prefill_repeat_s);
 *   gflops   dense-equivalent model FLOPs / median_s (prefill and recompute:
 *            T gpt_flops_per_token(T); decode: L (24 C^2 + 4 C T) + 2 C Vp);
 *   speedup_vs_flash  -1 (the speedups against the recompute are gb_speedup's);
 *   peak_bytes  the estimate: parameters + the KV cache at T (+ the forward's activations
 *            for prefill and recompute rows);
 *   cpu_pressure  /proc/pressure/cpu some avg10 before the row (-1: not available). */
#ifndef SATTN_GENBENCH_H
#define SATTN_GENBENCH_H

#include <stdint.h>

#include "sattn/benchres.h"
#include "sattn/model.h"
#include "sattn/phasetime.h"
#include "sattn/sparse.h"

#define GB_MAX_CONTEXTS 32
#define GB_MAX_PLANS 8

typedef struct {
    int contexts[GB_MAX_CONTEXTS];
    int n_contexts;
    int runs;          /* medians of this many runs (>= 1) */
    int steps;         /* decode steps timed per run (>= 1); the model needs max_seq >= T + steps */
    int recompute_max; /* recompute rows at contexts up to this (0: none) */
    double prefill_repeat_s; /* a prefill is repeated per run only while one takes at most this
                                (else later runs rewind the cache: gen_rewind) */
    double max_bytes;  /* rows whose estimated memory is above this are skipped (a note says so) */
    uint64_t seed;     /* the random tokens */
} gb_config;

typedef struct {
    char label[BENCH_NAME_LEN - 8]; /* sanitised (see top) */
    const sparse_heads *sh;
} gb_plan;

/* A variant label from any text: bytes outside the CSV's name alphabet become '_', cut
 * to fit. */
void gb_label(const char *text, char *buf, size_t n);

/* Called with each row as it is measured, and with a one-line note for each row skipped. */
typedef struct {
    void (*row)(const bench_row *r, void *user);
    void (*note)(const char *msg, void *user);
    void *user;
} gb_sink;

/* Runs the grid on m (contexts in order; at each, every variant in turn, so a busy machine
 * hits them alike). m->cfg.attn is the dense variant's prefill attention and is restored
 * at the end. *rows (malloc'd) gets *n rows. */
void gb_run(gpt_model *m, const gb_plan *plans, int n_plans, const gb_config *c, const gb_sink *sink,
            bench_row **rows, int *n);

/* gb_run, also calling phase (with sink->user) with each row's split (phasetime.h): where
 * the median prefill and decode step spent their time (selection, head function, the rest
 * of the model; dense rows: total only). */
void gb_run_phases(gpt_model *m, const gb_plan *plans, int n_plans, const gb_config *c, const gb_sink *sink,
                   void (*phase)(const phase_row *r, void *user), bench_row **rows, int *n);

/* Least-squares line median_s = a + b T over variant's decode rows: b (seconds per context
 * token), a, and the number of rows; 0 if at least two, else -1. */
int gb_fit(const bench_row *rows, int n, const char *variant, double *a, double *b, int *count);
/* The decode median of variant at T, or -1 when there is no such row. */
double gb_decode_at(const bench_row *rows, int n, const char *variant, int T);

#endif
