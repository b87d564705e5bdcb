/* benchgrid: the benchmark grid's configuration, names and driver, shared by the CPU
 * (attnbench.c) and GPU (src/cuda/cuda_bench.c) backends, and the crossovers of its
 * rows (attnbench.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/attnbench.h"
#include "sattn/crossover.h"
#include "sattn/rng.h"

#define MIN_RUN_S 0.005 /* a run repeats the call until it lasts this long */

static const char *const NAMES[AB_NVAR] = {"dense-naive", "dense-flash", "index+softmax",
                                           "block+softmax", "tblock+softmax", "lindex+softmax"};

const char *ab_variant_name(ab_variant v) { return NAMES[v]; }

int ab_variant_parse(const char *s) {
    static const char *const SHORT[AB_NVAR] = {"naive", "flash", "index", "block", "tblock", "lindex"};
    for (int v = 0; v < AB_NVAR; v++)
        if (!strcmp(s, NAMES[v]) || !strcmp(s, SHORT[v])) return v;
    return -1;
}

/* tblock as costmodel.h's tile=1 block spec (its selection per tile, per-query block's keys). */
static cm_variant tblock_variant(int b, int n) {
    head_spec s = head_spec_default();
    s.sel = SEL_BLOCK, s.fn = HFN_SOFTMAX, s.block = b, s.nblocks = n, s.tile = 1;
    return cm_sparse(&s);
}

cm_variant ab_variant_at(ab_variant v, int k) {
    if (v == AB_NAIVE) return cm_dense(CM_NAIVE);
    if (v == AB_FLASH) return cm_dense(CM_FLASH);
    if (v == AB_TBLOCK) return tblock_variant(64, k / 64 > 1 ? k / 64 : 1);
    if (v == AB_LINDEX) { /* the shared indexer at its plan defaults (r 32, j 1) */
        head_spec s = head_spec_default();
        s.sel = SEL_INDEX, s.fn = HFN_SOFTMAX, s.k = k, s.rank = 32, s.iheads = 1, s.shared = 1;
        return cm_sparse(&s);
    }
    cm_variant all[8];
    cm_standard_variants(k, all);
    return all[v == AB_INDEX ? 4 : 6];
}

cm_variant ab_variant_cfg(const ab_config *cfg, ab_variant v, int k) {
    return v == AB_TBLOCK ? tblock_variant(cfg->tblock_b, cfg->tblock_n) : ab_variant_at(v, k);
}

static void set_list(int *dst, int *n, const int *src, int m) {
    memcpy(dst, src, (size_t)m * sizeof(int));
    *n = m;
}

ab_config ab_config_default(int quick) {
    static const int dims[] = {128, 256, 512, 1024}, qdims[] = {256, 512};
    static const int seqs[] = {64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768};
    static const int qseqs[] = {256, 1024, 4096}, ks[] = {8, 16, 32, 64, 128, 256};
    static const int qks[] = {32};
    ab_config c;
    memset(&c, 0, sizeof c);
    if (quick) {
        set_list(c.dims, &c.ndims, qdims, 2);
        set_list(c.seqs, &c.nseqs, qseqs, 3);
        set_list(c.ks, &c.nks, qks, 1);
    } else {
        set_list(c.dims, &c.ndims, dims, 4);
        set_list(c.seqs, &c.nseqs, seqs, 10);
        set_list(c.ks, &c.nks, ks, 6);
    }
    c.variants = ((1u << AB_NVAR) - 1) & ~(1u << AB_LINDEX); /* lindex: on request (--variants) */
    c.phases = quick ? (1u << BENCH_PREFILL) | (1u << BENCH_DECODE) : (1u << BENCH_NPHASE) - 1;
    c.runs = quick ? 3 : 5;
    c.max_run_s = 2.0;
    c.max_bytes = 2.0 * 1024 * 1024 * 1024;
    c.seed = 1234;
    c.tblock_b = 64, c.tblock_n = 8;
    return c;
}

void ab_random_qkv(float *qkv, int C, int T, uint64_t seed) {
    rng_t r;
    rng_seed(&r, seed ^ ((uint64_t)C << 32) ^ (uint64_t)T);
    /* uniform with unit variance: cheap to draw for 10^8 floats, and time does not
     * depend on the distribution */
    for (size_t i = 0; i < (size_t)3 * T * C; i++) qkv[i] = 3.4641016f * (rng_uniform(&r) - 0.5f);
}

/* ---- the driver ---- */

/* `warmups` untimed calls, one timed warm-up call, then the median over runs of the
 * time per call, each run repeating the call until it lasts >= MIN_RUN_S. */
static double time_median(const ab_backend *be, void *row, int runs) {
    for (int i = 0; i < be->warmups; i++) be->run(row);
    be->timer_start(be->ctx);
    be->run(row);
    double warm = be->timer_stop(be->ctx);
    int reps = warm >= MIN_RUN_S ? 1 : (int)ceil(MIN_RUN_S / (warm > 1e-7 ? warm : 1e-7));
    if (reps > be->max_reps) reps = be->max_reps;
    double *ts = xmalloc((size_t)runs * sizeof(double));
    for (int i = 0; i < runs; i++) {
        be->timer_start(be->ctx);
        for (int j = 0; j < reps; j++) be->run(row);
        ts[i] = be->timer_stop(be->ctx) / reps;
    }
    double m = median_sort(ts, runs);
    free(ts);
    return m;
}

/* The previous measured point of a series (variant, phase, C, k): T = 0 if none. */
typedef struct {
    int T;
    double med, flops;
} series;

/* One row's place in the grid. */
typedef struct {
    const ab_config *cfg;
    const ab_backend *be;
    void *data;
    int C, H, T, phase;
} grid_pos;

/* The spec variant v runs at k on this backend, and the row's name. */
static cm_variant row_variant(const grid_pos *g, ab_variant v, int k, char *name, size_t n) {
    const ab_backend *be = g->be;
    cm_variant cv = ab_variant_cfg(g->cfg, v, k);
    snprintf(name, n, "%s%s", ab_variant_name(v), be->suffix);
    if (v == AB_INDEX && be->index_rank && (cv.spec.rank != be->index_rank || cv.spec.iheads != be->index_heads)) {
        cv.spec.rank = be->index_rank, cv.spec.iheads = be->index_heads;
        cv = cm_sparse(&cv.spec);
        snprintf(name, n, "%s%s-r%d-j%d", ab_variant_name(v), be->suffix, be->index_rank, be->index_heads);
    }
    return cv;
}

/* Measures one row into r; 0 when it is skipped (predicted time, or the backend's setup). */
static int measure_row(const grid_pos *g, ab_variant v, int k, series *st, bench_row *r) {
    const ab_backend *be = g->be;
    char name[BENCH_NAME_LEN];
    cm_variant cv = row_variant(g, v, k, name, sizeof name);
    cm_shape sh = cm_shape_make(g->C, g->H, g->T);
    sh.decode = g->phase == BENCH_DECODE;
    cm_cost cost;
    cm_cost_of(&sh, &cv, &cost);
    int back = g->phase == BENCH_BACKWARD;
    /* a series' first row has no previous time: assume about what the backend's kernels
     * reach; a backward is about twice its forward's work, and as much again for the
     * untimed forward */
    double rate = be->first_flops[v <= AB_FLASH || v == AB_TBLOCK ? 0 : 1]; /* tblock: flash's tiles */
    double predicted = st->T ? st->med * cost.attn_flops / st->flops : (back ? 3 : 1) * cost.attn_flops / rate;
    if (predicted > g->cfg->max_run_s) return 0;
    double extra = 0;
    void *row = be->setup(be->ctx, g->data, v, g->phase, &cv, g->cfg, &extra);
    if (!row) return 0;
    double p = be->pressure ? be->pressure() : -1.0;
    double med = time_median(be, row, g->cfg->runs);
    double flops = back && be->backward_flops ? be->backward_flops(row) : cost.attn_flops;
    double own = !back && be->prefill_flops ? be->prefill_flops(row) : -1.0;
    if (own >= 0) flops = own;
    be->teardown(row);
    *st = (series){g->T, med, cost.attn_flops};
    memset(r, 0, sizeof *r);
    snprintf(r->variant, sizeof r->variant, "%s", name);
    r->phase = g->phase, r->C = g->C, r->H = g->H, r->T = g->T, r->k = v >= AB_INDEX ? k : 0;
    if (v == AB_TBLOCK) r->k = cv.spec.block * cv.spec.nblocks;
    r->median_s = med, r->gflops = flops / med / 1e9, r->speedup_vs_flash = -1.0;
    /* tblock: qkv, out and lse, plus what its setup reports (costmodel's peak would be the
     * per-query selection's T x kmax buffers, which tblock does not have) */
    double base = v == AB_TBLOCK ? 4.0 * (4.0 * g->T * g->C + (double)g->H * g->T) : cost.peak_bytes;
    r->peak_bytes = base + extra, r->cpu_pressure = p, r->pct_peak = -1.0;
    return 1;
}

typedef struct {
    bench_row *rows;
    int n, cap;
} row_list;

static void push_row(row_list *l, const bench_row *r) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->rows = xrealloc(l->rows, (size_t)l->cap * sizeof *l->rows);
    }
    l->rows[l->n++] = *r;
}

/* One phase at one (C, T): dense-flash first, so the others get their speedup. */
static void run_group(const grid_pos *g, series st[AB_NVAR][AB_MAX_LIST], row_list *out,
                      void (*on_row)(const bench_row *, void *), void *ctx) {
    static const ab_variant ORDER[AB_NVAR] = {AB_FLASH, AB_NAIVE, AB_INDEX, AB_BLOCK, AB_TBLOCK, AB_LINDEX};
    const ab_config *cfg = g->cfg;
    double flash = -1.0;
    for (int i = 0; i < AB_NVAR; i++) {
        ab_variant v = ORDER[i];
        unsigned vars = cfg->variants & g->be->variants;
        if (!(vars & (1u << v)) || (g->phase == BENCH_DECODE && (v == AB_NAIVE || v == AB_TBLOCK || v == AB_LINDEX)))
            continue;
        int nk = v == AB_INDEX || v == AB_BLOCK || v == AB_LINDEX ? cfg->nks : 1; /* tblock: b, n from cfg */
        for (int ki = 0; ki < nk; ki++) {
            bench_row r;
            if (!measure_row(g, v, cfg->ks[ki], &st[v][ki], &r)) continue;
            if (v == AB_FLASH) flash = r.median_s;
            r.speedup_vs_flash = flash > 0 ? flash / r.median_s : -1.0;
            push_row(out, &r);
            if (on_row) on_row(&r, ctx);
        }
    }
}

void ab_grid_run(const ab_config *cfg, const ab_backend *be, bench_row **rows, int *nrows,
                 void (*on_row)(const bench_row *r, void *ctx), void *ctx) {
    int seqs[AB_MAX_LIST];
    memcpy(seqs, cfg->seqs, (size_t)cfg->nseqs * sizeof(int));
    /* ascending T: each series predicts its next row's time from the previous one */
    qsort(seqs, (size_t)cfg->nseqs, sizeof(int), cmp_int_asc);
    row_list out = {0};
    unsigned phases = cfg->phases & be->phases;
    for (int ci = 0; ci < cfg->ndims; ci++) {
        series st[BENCH_NPHASE][AB_NVAR][AB_MAX_LIST];
        memset(st, 0, sizeof st);
        for (int ti = 0; ti < cfg->nseqs; ti++) {
            grid_pos g = {cfg, be, NULL, cfg->dims[ci], cfg->dims[ci] / 64, seqs[ti], 0};
            g.data = be->data_make(be->ctx, g.C, g.T, cfg);
            for (g.phase = 0; g.phase < BENCH_NPHASE; g.phase++)
                if (phases & (1u << g.phase)) run_group(&g, st[g.phase], &out, on_row, ctx);
            be->data_free(be->ctx, g.data);
        }
    }
    *rows = out.rows;
    *nrows = out.n;
}

/* ---- crossovers ---- */

/* The series of row r (variant v) among out[0..m), or m. */
static int series_of(const ab_cross *out, int m, ab_variant v, const bench_row *r) {
    int j = 0;
    while (j < m && !(out[j].v == v && out[j].phase == r->phase && out[j].C == r->C && out[j].k == r->k)) j++;
    return j;
}

/* Per series: costmodel's T* (none for backward: the selector does not run backward)
 * and xover_series_T over the series' rows. */
int ab_crossovers(const bench_row *rows, int n, ab_cross *out, int cap) {
    int m = 0, *T = xmalloc(((size_t)n + 1) * sizeof(int));
    double *sp = xmalloc(((size_t)n + 1) * sizeof(double));
    for (int i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        int v = ab_variant_parse(r->variant);
        if (v < AB_INDEX || series_of(out, m, (ab_variant)v, r) < m || m == cap) continue;
        cm_shape sh = cm_shape_make(r->C, r->H, r->T);
        sh.decode = r->phase == BENCH_DECODE;
        cm_variant cv = ab_variant_at((ab_variant)v, r->k);
        int model = r->phase != BENCH_BACKWARD;
        int an = model ? cm_crossover(&sh, &cv, 1 << 20) : -1, ns = 0;
        out[m] = (ab_cross){(ab_variant)v, r->phase, r->C, r->k, -1, an};
        for (int j = i; j < n; j++)
            if (ab_variant_parse(rows[j].variant) == v && series_of(out + m, 1, (ab_variant)v, &rows[j]) == 0)
                T[ns] = rows[j].T, sp[ns++] = rows[j].speedup_vs_flash;
        out[m++].measured = xover_series_T(T, sp, ns);
    }
    free(T), free(sp);
    return m;
}
