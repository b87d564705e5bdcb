/* cuda_bench: `sattn bench --device cuda` — attnbench's grid timed on the GPU, the
 * GPU backend of the grid driver (include/sattn/cuda_bench.h, docs/cuda.md). Compiled
 * in every build; without -DSATTN_CUDA sa_cuda_bench only reports "built without CUDA". */
#include "sattn/cuda_bench.h"

#include <stdlib.h>
#include <string.h>

#include "sattn/cuda_attn.h"
#include "sattn/rng.h"

#ifndef SATTN_CUDA
int sa_cuda_bench(const ab_config *cfg, int index_rank, int index_heads, bench_row **rows, int *nrows,
                  void (*on_row)(const bench_row *r, void *ctx), void *ctx, char *device, size_t ndevice,
                  sattn_err *e) {
    (void)cfg, (void)index_rank, (void)index_heads, (void)on_row, (void)ctx, (void)device, (void)ndevice;
    *rows = NULL, *nrows = 0;
    sa_cuda *c;
    return sa_cuda_open(&c, e);
}
#else

/* One (C, T) configuration's inputs on the device: qkv (T, 3C), the caches kc, vc
 * (T, C) holding the same k, v, and q the last row's query. */
typedef struct {
    sa_cuda *g;
    int C, H, T;
    float *qkv, *out, *lse, *q, *kc, *vc;
} gdata;

/* What a timed call needs (device pointers): the data plus the sparse head's state; tblock:
 * its selection (blocks, count), and for backward dqkv and dout; pairs its attended (query,
 * key) pairs (tblock_pairs, from the selection's counts). */
typedef struct {
    const gdata *in;
    ab_variant v;
    int decode, back;
    head_spec spec;
    float *sp, *side, *score, *dqkv, *dout;
    int *idx, *count, *blocks;
    double pairs;
} grow;

static void *gpu_data_make(void *ctx, int C, int T, const ab_config *cfg) {
    gdata *b = xcalloc(1, sizeof *b);
    sa_cuda *g = ctx;
    size_t tc = (size_t)T * C;
    float *h_qkv = xmalloc(3 * tc * sizeof(float)), *h_kv = xmalloc(tc * sizeof(float));
    ab_random_qkv(h_qkv, C, T, cfg->seed);
    b->g = g, b->C = C, b->H = C / 64, b->T = T;
    b->qkv = sa_cuda_alloc(g, 3 * tc * sizeof(float));
    b->out = sa_cuda_alloc(g, tc * sizeof(float));
    b->lse = sa_cuda_alloc(g, (size_t)b->H * T * sizeof(float));
    b->kc = sa_cuda_alloc(g, tc * sizeof(float));
    b->vc = sa_cuda_alloc(g, tc * sizeof(float));
    b->q = sa_cuda_alloc(g, (size_t)C * sizeof(float));
    sa_cuda_upload(g, b->qkv, h_qkv, 3 * tc * sizeof(float));
    for (int part = 1; part <= 2; part++) { /* the caches hold the same k, v */
        for (int t = 0; t < T; t++)
            memcpy(h_kv + (size_t)t * C, h_qkv + (size_t)t * 3 * C + part * C, (size_t)C * sizeof(float));
        sa_cuda_upload(g, part == 1 ? b->kc : b->vc, h_kv, tc * sizeof(float));
    }
    sa_cuda_upload(g, b->q, h_qkv + (size_t)(T - 1) * 3 * C, (size_t)C * sizeof(float));
    free(h_qkv), free(h_kv);
    return b;
}

static void gpu_data_free(void *ctx, void *data) {
    gdata *b = data;
    sa_cuda *g = b->g;
    sa_cuda_free(g, b->qkv), sa_cuda_free(g, b->out), sa_cuda_free(g, b->lse);
    sa_cuda_free(g, b->kc), sa_cuda_free(g, b->vc), sa_cuda_free(g, b->q);
    free(b);
}

/* The sparse head's state on the device: random selector parameters (as the CPU's), the
 * selection buffers, and for decode the cache-side state (built here, untimed). 0, or
 * -1 when the row is skipped. */
static int sparse_setup(grow *r, const ab_config *cfg, const char *name) {
    const gdata *b = r->in;
    sa_cuda *g = b->g;
    int d = 64, T = b->T, H = b->H;
    sattn_err e;
    if (sa_cuda_check_spec(&r->spec, d, T, &e)) {
        fprintf(stderr, "sattn bench: skipping %s: %s\n", name, e.msg);
        return -1;
    }
    int kmax = selector_kmax(&r->spec, T);
    double sel_bytes = (double)H * T * kmax * 8.0;
    if (!r->decode && sel_bytes > cfg->max_bytes * 8) return -1; /* GPU memory is larger */
    size_t np = selector_param_count(&r->spec, d, T);
    float *h_sp = xmalloc((np * H + 1) * sizeof(float));
    rng_t pr;
    rng_seed(&pr, cfg->seed + (uint64_t)T);
    for (int h = 0; h < H; h++) selector_init(&r->spec, d, T, h_sp + h * np, &pr);
    r->sp = sa_cuda_alloc(g, (np * H + 1) * sizeof(float));
    sa_cuda_upload(g, r->sp, h_sp, (np * H + 1) * sizeof(float));
    free(h_sp);
    size_t nsel = r->decode ? (size_t)H * kmax : (size_t)H * T * kmax;
    r->idx = sa_cuda_alloc(g, nsel * sizeof(int));
    r->score = sa_cuda_alloc(g, nsel * sizeof(float));
    r->count = sa_cuda_alloc(g, (size_t)H * (r->decode ? 1 : T) * sizeof(int));
    if (r->decode) {
        r->side = sa_cuda_alloc(g, sa_cuda_side_floats(&r->spec, T, b->C, H) * sizeof(float));
        sa_cuda_decode_side(g, &r->spec, r->sp, b->kc, T, b->C, H, r->side);
    }
    return 0;
}

/* tblock's pairs from the selection's counts (tblock_pairs' formula): per tile of nq
 * queries keeping c blocks, nq (c - 1) b + nq (nq + 1) / 2. */
static double tblock_pairs_of(const int *count, int H, int T, int b) {
    int nt = (T + b - 1) / b;
    double pairs = 0;
    for (int i = 0; i < H * nt; i++) {
        double nq = T - (i % nt) * b < b ? T - (i % nt) * b : b;
        pairs += nq * (count[i] - 1) * b + nq * (nq + 1) / 2;
    }
    return pairs;
}

/* tblock: the selection (b = spec.block, n = spec.nblocks) made once here for its pairs and
 * for the backward, which also gets the forward's out and lse (untimed) and random dout. */
static void tblock_setup(grow *r, const ab_config *cfg, double *extra_bytes) {
    const gdata *in = r->in;
    sa_cuda *g = in->g;
    int T = in->T, C = in->C, H = in->H, b = r->spec.block, n = r->spec.nblocks;
    int nt = (T + b - 1) / b, nr = sa_cuda_tblock_n(T, b, n);
    r->blocks = sa_cuda_alloc(g, (size_t)H * nt * nr * sizeof(int));
    r->count = sa_cuda_alloc(g, (size_t)H * nt * sizeof(int));
    sa_cuda_tblock_select(g, in->qkv, 1, T, C, H, b, n, r->blocks, r->count);
    int *cnt = xmalloc((size_t)H * nt * sizeof(int));
    sa_cuda_download(g, cnt, r->count, (size_t)H * nt * sizeof(int));
    r->pairs = tblock_pairs_of(cnt, H, T, b);
    free(cnt);
    *extra_bytes = 4.0 * H * nt * (nr + 1);
    if (!r->back) return;
    size_t tc = (size_t)T * C;
    float *h = xmalloc(tc * sizeof(float));
    rng_t rg;
    rng_seed(&rg, cfg->seed + 7);
    for (size_t i = 0; i < tc; i++) h[i] = rng_uniform(&rg) - 0.5f;
    r->dout = sa_cuda_alloc(g, tc * sizeof(float));
    r->dqkv = sa_cuda_alloc(g, 3 * tc * sizeof(float));
    sa_cuda_upload(g, r->dout, h, tc * sizeof(float));
    float *zero = xcalloc(3 * tc, sizeof(float)); /* dqkv accumulates: start finite */
    sa_cuda_upload(g, r->dqkv, zero, 3 * tc * sizeof(float));
    sa_cuda_tblock_forward(g, in->out, in->lse, in->qkv, 1, T, C, H, b, n, r->blocks, r->count);
    free(h), free(zero);
    *extra_bytes += 4.0 * 4 * tc;
}

static void *gpu_setup(void *ctx, void *data, ab_variant v, int phase, const cm_variant *cv, const ab_config *cfg,
                       double *extra_bytes) {
    grow *r = xcalloc(1, sizeof *r);
    r->in = data, r->v = v, r->decode = phase == BENCH_DECODE, r->back = phase == BENCH_BACKWARD, r->spec = cv->spec;
    *extra_bytes = 0;
    if (r->back && v != AB_TBLOCK) return free(r), NULL; /* the only GPU backward */
    if (v == AB_TBLOCK) {
        sattn_err e;
        if (sa_cuda_tblock_check(1, r->in->T, r->in->C, r->in->H, cv->spec.block, cv->spec.nblocks, &e)) {
            fprintf(stderr, "sattn bench: skipping %s: %s\n", cv->name, e.msg);
            return free(r), NULL;
        }
        tblock_setup(r, cfg, extra_bytes);
    } else if (v != AB_FLASH && sparse_setup(r, cfg, cv->name)) {
        return free(r), NULL;
    }
    return r;
}

static void gpu_run(void *row) {
    const grow *r = row;
    const gdata *b = r->in;
    if (r->v == AB_TBLOCK) { /* prefill: selection + forward; backward over the setup's selection */
        int bs = r->spec.block, n = r->spec.nblocks;
        if (r->back)
            sa_cuda_tblock_backward(b->g, r->dqkv, r->dout, b->qkv, b->out, b->lse, 1, b->T, b->C, b->H, bs, n,
                                    r->blocks, r->count);
        else {
            sa_cuda_tblock_select(b->g, b->qkv, 1, b->T, b->C, b->H, bs, n, r->blocks, r->count);
            sa_cuda_tblock_forward(b->g, b->out, b->lse, b->qkv, 1, b->T, b->C, b->H, bs, n, r->blocks, r->count);
        }
    } else if (r->v == AB_FLASH) {
        if (r->decode) sa_cuda_decode_dense(b->g, b->out, b->q, b->kc, b->vc, b->T, b->C, b->H);
        else sa_cuda_flash_forward(b->g, b->out, b->lse, b->qkv, 1, b->T, b->C, b->H);
    } else if (r->decode) {
        sa_cuda_decode_sparse(b->g, &r->spec, r->sp, NULL, b->q, b->kc, b->vc, b->T, b->C, b->H, r->side, b->out,
                              r->idx, r->score, r->count);
    } else {
        sa_cuda_sparse_forward(b->g, &r->spec, r->sp, NULL, b->qkv, b->T, b->C, b->H, r->idx, r->score, r->count,
                               b->out);
    }
}

/* tblock's useful work, counted as flash's (attnbench.h): 4 d FLOPs a pair forward, 8 backward. */
static double gpu_prefill_flops(void *row) {
    const grow *r = row;
    return r->v == AB_TBLOCK ? 4.0 * 64 * r->pairs : -1.0;
}
static double gpu_backward_flops(void *row) { return 8.0 * 64 * ((const grow *)row)->pairs; }

static void gpu_teardown(void *row) {
    grow *r = row;
    sa_cuda *g = r->in->g;
    if (r->v == AB_TBLOCK) {
        sa_cuda_free(g, r->blocks), sa_cuda_free(g, r->count), sa_cuda_free(g, r->dqkv), sa_cuda_free(g, r->dout);
    } else if (r->v != AB_FLASH) {
        sa_cuda_free(g, r->sp), sa_cuda_free(g, r->idx), sa_cuda_free(g, r->score);
        sa_cuda_free(g, r->count), sa_cuda_free(g, r->side);
    }
    free(r);
}

static void gpu_timer_start(void *ctx) { sa_cuda_timer_start(ctx); }

static double gpu_timer_stop(void *ctx) { return sa_cuda_timer_stop(ctx) / 1e3; }

int sa_cuda_bench(const ab_config *cfg, int index_rank, int index_heads, bench_row **rows, int *nrows,
                  void (*on_row)(const bench_row *r, void *ctx), void *ctx, char *device, size_t ndevice,
                  sattn_err *e) {
    sa_cuda *g;
    *rows = NULL, *nrows = 0;
    if (sa_cuda_open(&g, e)) return -1;
    if (on_row) on_row(NULL, ctx); /* the device is open */
    snprintf(device, ndevice, "%s", sa_cuda_name(g));
    /* a series' first row: assume 5 TFLOP/s dense, 0.5 sparse */
    ab_backend be = {.suffix = "-cuda",
                     .variants = (1u << AB_FLASH) | (1u << AB_INDEX) | (1u << AB_BLOCK) | (1u << AB_TBLOCK),
                     .phases = (1u << BENCH_PREFILL) | (1u << BENCH_DECODE) | (1u << BENCH_BACKWARD),
                     .index_rank = index_rank, .backward_flops = gpu_backward_flops,
                     .prefill_flops = gpu_prefill_flops,
                     .index_heads = index_heads, .first_flops = {5e12, 5e11}, .warmups = 1, .max_reps = 10000,
                     .ctx = g, .data_make = gpu_data_make, .data_free = gpu_data_free, .setup = gpu_setup,
                     .run = gpu_run, .teardown = gpu_teardown, .timer_start = gpu_timer_start,
                     .timer_stop = gpu_timer_stop};
    ab_grid_run(cfg, &be, rows, nrows, on_row, ctx);
    sa_cuda_close(g);
    return 0;
}
#endif
