/* cuda_bench: `sattn bench --device cuda` — attnbench's grid timed on the GPU
 * (include/sattn/cuda_attn.h, docs/cuda.md). Compiled in every build; without
 * -DSATTN_CUDA sa_cuda_bench only reports "built without CUDA". */
#include "sattn/cuda_attn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/costmodel.h"
#include "sattn/rng.h"

const char *sa_cuda_bench_csv_row(const sa_cuda_row *r, char *buf, size_t n) {
    ab_csv_row_named(r->name, &r->row, buf, n);
    return buf;
}

static void cuda_line(int i, const void *ctx, char *buf, size_t len) {
    sa_cuda_bench_csv_row((const sa_cuda_row *)ctx + i, buf, len);
}

int sa_cuda_bench_csv_write(const char *path, const sa_cuda_row *rows, int n, sattn_err *e) {
    return ab_csv_write_with(path, n, cuda_line, rows, e);
}

#ifndef SATTN_CUDA
int sa_cuda_bench(const ab_config *cfg, int index_rank, int index_heads, sa_cuda_row **rows, int *nrows,
                  void (*on_row)(const sa_cuda_row *r, void *ctx), void *ctx, char *device, size_t ndevice,
                  sattn_err *e) {
    (void)cfg, (void)index_rank, (void)index_heads, (void)on_row, (void)ctx, (void)device, (void)ndevice;
    *rows = NULL, *nrows = 0;
    sa_cuda *c;
    return sa_cuda_open(&c, e);
}
#else

#define MIN_RUN_MS 5.0

/* What a timed call needs (device pointers). */
typedef struct {
    sa_cuda *g;
    int C, H, T, decode;
    head_spec spec;
    float *qkv, *out, *lse, *q, *kc, *vc, *sp, *side, *score;
    int *idx, *count;
} gctx;

static void call(const gctx *b, int v) {
    if (v == AB_FLASH) {
        if (b->decode) sa_cuda_decode_dense(b->g, b->out, b->q, b->kc, b->vc, b->T, b->C, b->H);
        else sa_cuda_flash_forward(b->g, b->out, b->lse, b->qkv, 1, b->T, b->C, b->H);
    } else if (b->decode) {
        sa_cuda_decode_sparse(b->g, &b->spec, b->sp, NULL, b->q, b->kc, b->vc, b->T, b->C, b->H, b->side, b->out,
                              b->idx, b->score, b->count);
    } else {
        sa_cuda_sparse_forward(b->g, &b->spec, b->sp, NULL, b->qkv, b->T, b->C, b->H, b->idx, b->score, b->count,
                               b->out);
    }
}

/* Two warm-up calls, then the median over runs of the time per call, each run
 * repeating the call until it lasts >= 5 ms (cudaEvents around the run). */
static double time_median(const gctx *b, int v, int runs) {
    call(b, v);
    sa_cuda_timer_start(b->g);
    call(b, v);
    double warm = sa_cuda_timer_stop(b->g);
    int reps = warm >= MIN_RUN_MS ? 1 : (int)ceil(MIN_RUN_MS / (warm > 1e-4 ? warm : 1e-4));
    if (reps > 10000) reps = 10000;
    double *ts = xmalloc((size_t)runs * sizeof(double));
    for (int i = 0; i < runs; i++) {
        sa_cuda_timer_start(b->g);
        for (int j = 0; j < reps; j++) call(b, v);
        ts[i] = sa_cuda_timer_stop(b->g) / reps / 1e3;
    }
    double m = median_sort(ts, runs);
    free(ts);
    return m;
}

static cm_variant variant_at(int v, int k, int rank, int iheads) {
    if (v == AB_FLASH) return cm_dense(CM_FLASH);
    cm_variant all[8];
    cm_standard_variants(k, all);
    cm_variant cv = all[v == AB_INDEX ? 4 : 6];
    if (v == AB_INDEX && (cv.spec.rank != rank || cv.spec.iheads != iheads)) {
        cv.spec.rank = rank, cv.spec.iheads = iheads;
        cv = cm_sparse(&cv.spec);
    }
    return cv;
}

typedef struct {
    sa_cuda_row *rows;
    int n, cap;
} row_list;

static void push(row_list *l, const sa_cuda_row *r) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->rows = xrealloc(l->rows, (size_t)l->cap * sizeof *l->rows);
    }
    l->rows[l->n++] = *r;
}

typedef struct {
    int T;
    double med, flops;
} series;

int sa_cuda_bench(const ab_config *cfg, int index_rank, int index_heads, sa_cuda_row **rows, int *nrows,
                  void (*on_row)(const sa_cuda_row *r, void *ctx), void *ctx, char *device, size_t ndevice,
                  sattn_err *e) {
    sa_cuda *g;
    *rows = NULL, *nrows = 0;
    if (sa_cuda_open(&g, e)) return -1;
    if (on_row) on_row(NULL, ctx); /* the device is open */
    snprintf(device, ndevice, "%s", sa_cuda_name(g));
    int seqs[AB_MAX_LIST];
    memcpy(seqs, cfg->seqs, (size_t)cfg->nseqs * sizeof(int));
    qsort(seqs, (size_t)cfg->nseqs, sizeof(int), cmp_int_asc);
    row_list out = {0};
    static const int ORDER[3] = {AB_FLASH, AB_INDEX, AB_BLOCK};
    for (int ci = 0; ci < cfg->ndims; ci++) {
        int C = cfg->dims[ci], H = C / 64, d = 64;
        series st[2][AB_NVAR][AB_MAX_LIST];
        memset(st, 0, sizeof st);
        for (int ti = 0; ti < cfg->nseqs; ti++) {
            int T = seqs[ti];
            size_t tc = (size_t)T * C;
            float *h_qkv = xmalloc(3 * tc * sizeof(float)), *h_kv = xmalloc(tc * sizeof(float));
            rng_t r;
            rng_seed(&r, cfg->seed ^ ((uint64_t)C << 32) ^ (uint64_t)T);
            for (size_t i = 0; i < 3 * tc; i++) h_qkv[i] = 3.4641016f * (rng_uniform(&r) - 0.5f);
            gctx b;
            memset(&b, 0, sizeof b);
            b.g = g, b.C = C, b.H = H, b.T = T;
            b.qkv = sa_cuda_alloc(g, 3 * tc * sizeof(float));
            b.out = sa_cuda_alloc(g, tc * sizeof(float));
            b.lse = sa_cuda_alloc(g, (size_t)H * T * sizeof(float));
            b.kc = sa_cuda_alloc(g, tc * sizeof(float));
            b.vc = sa_cuda_alloc(g, tc * sizeof(float));
            b.q = sa_cuda_alloc(g, (size_t)C * sizeof(float));
            sa_cuda_upload(g, b.qkv, h_qkv, 3 * tc * sizeof(float));
            for (int part = 1; part <= 2; part++) { /* the caches hold the same k, v */
                for (int t = 0; t < T; t++)
                    memcpy(h_kv + (size_t)t * C, h_qkv + (size_t)t * 3 * C + part * C, (size_t)C * sizeof(float));
                sa_cuda_upload(g, part == 1 ? b.kc : b.vc, h_kv, tc * sizeof(float));
            }
            sa_cuda_upload(g, b.q, h_qkv + (size_t)(T - 1) * 3 * C, (size_t)C * sizeof(float));
            for (int decode = 0; decode < 2; decode++) { /* AB_PREFILL, AB_DECODE; no backward on the GPU */
                if (cfg->phases && !(cfg->phases & (1u << decode))) continue;
                double flash = -1.0;
                b.decode = decode;
                for (int oi = 0; oi < 3; oi++) {
                    int v = ORDER[oi];
                    if (!(cfg->variants & (1u << v))) continue;
                    int nk = v == AB_FLASH ? 1 : cfg->nks;
                    for (int ki = 0; ki < nk; ki++) {
                        int k = cfg->ks[ki];
                        cm_variant cv = variant_at(v, k, index_rank, index_heads);
                        cm_shape sh = cm_shape_make(C, H, T);
                        sh.decode = decode;
                        cm_cost cost;
                        cm_cost_of(&sh, &cv, &cost);
                        series *s = &st[decode][v][ki];
                        /* first row of a series: assume 5 TFLOP/s dense, 0.5 sparse */
                        double predicted = s->T ? s->med * cost.attn_flops / s->flops
                                                : cost.attn_flops / (v == AB_FLASH ? 5e12 : 5e11);
                        if (predicted > cfg->max_run_s) continue;
                        sa_cuda_row row;
                        memset(&row, 0, sizeof row);
                        if (v != AB_FLASH) {
                            b.spec = cv.spec;
                            if (sa_cuda_check_spec(&b.spec, d, T, e)) {
                                fprintf(stderr, "sattn bench: skipping %s: %s\n", cv.name, e->msg);
                                continue;
                            }
                            int kmax = selector_kmax(&b.spec, T);
                            double sel_bytes = (double)H * T * kmax * 8.0;
                            if (!decode && sel_bytes > cfg->max_bytes * 8) continue; /* GPU memory is larger */
                            size_t np = selector_param_count(&b.spec, d, T);
                            float *h_sp = xmalloc((np * H + 1) * sizeof(float));
                            rng_t pr;
                            rng_seed(&pr, cfg->seed + (uint64_t)T);
                            for (int h = 0; h < H; h++) selector_init(&b.spec, d, T, h_sp + h * np, &pr);
                            b.sp = sa_cuda_alloc(g, (np * H + 1) * sizeof(float));
                            sa_cuda_upload(g, b.sp, h_sp, (np * H + 1) * sizeof(float));
                            free(h_sp);
                            size_t nsel = decode ? (size_t)H * kmax : (size_t)H * T * kmax;
                            b.idx = sa_cuda_alloc(g, nsel * sizeof(int));
                            b.score = sa_cuda_alloc(g, nsel * sizeof(float));
                            b.count = sa_cuda_alloc(g, (size_t)H * (decode ? 1 : T) * sizeof(int));
                            if (decode) {
                                b.side = sa_cuda_alloc(g, sa_cuda_side_floats(&b.spec, T, C, H) * sizeof(float));
                                sa_cuda_decode_side(g, &b.spec, b.sp, b.kc, T, C, H, b.side); /* untimed */
                            }
                        }
                        double med = time_median(&b, v, cfg->runs);
                        if (v != AB_FLASH) {
                            sa_cuda_free(g, b.sp), sa_cuda_free(g, b.idx), sa_cuda_free(g, b.score);
                            sa_cuda_free(g, b.count), sa_cuda_free(g, b.side);
                            b.sp = b.side = b.score = NULL, b.idx = b.count = NULL;
                        }
                        *s = (series){T, med, cost.attn_flops};
                        if (v == AB_FLASH) flash = med;
                        const char *base = v == AB_FLASH ? "dense-flash" : v == AB_INDEX ? "index+softmax" : "block+softmax";
                        if (v == AB_INDEX && (index_rank != 16 || index_heads != 4))
                            snprintf(row.name, sizeof row.name, "%s-cuda-r%d-j%d", base, index_rank, index_heads);
                        else
                            snprintf(row.name, sizeof row.name, "%s-cuda", base);
                        row.row = (ab_row){(ab_variant)v, decode, C, H, T, v == AB_FLASH ? 0 : k, med,
                                           cost.attn_flops / med / 1e9, flash > 0 ? flash / med : -1.0,
                                           cost.peak_bytes, -1.0};
                        push(&out, &row);
                        if (on_row) on_row(&row, ctx);
                    }
                }
            }
            sa_cuda_free(g, b.qkv), sa_cuda_free(g, b.out), sa_cuda_free(g, b.lse);
            sa_cuda_free(g, b.kc), sa_cuda_free(g, b.vc), sa_cuda_free(g, b.q);
            free(h_qkv), free(h_kv);
        }
    }
    sa_cuda_close(g);
    *rows = out.rows, *nrows = out.n;
    return 0;
}
#endif
