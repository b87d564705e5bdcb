/* attnbench: measured time of one attention layer per variant on the CPU (see
 * attnbench.h): the CPU backend of the grid driver (benchgrid.c), and the instrumented
 * counts of what a row runs. */
#include "sattn/attnbench.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/flash.h"
#include "sattn/lindex.h"
#include "sattn/nn.h"
#include "sattn/rng.h"
#include "sattn/sparse_decode.h"
#include "sattn/tblock.h"

#define HEAD_DIM 64

double ab_cpu_pressure(void) {
    FILE *f = fopen("/proc/pressure/cpu", "r");
    if (!f) return -1.0;
    double v = -1.0;
    if (fscanf(f, "some avg10=%lf", &v) != 1) v = -1.0;
    fclose(f);
    return v;
}

/* ---- the grid ---- */

/* One (C, T) configuration's random inputs: qkv (T, 3C) for prefill; for decode the
 * caches kc, vc (T, C) hold the same k, v and q is the last row's query. */
typedef struct {
    int C, H, T, d;
    float *qkv, *out, *lse, *kc, *vc, *q;
    float *dqkv, *dout; /* backward: the gradient out (T, 3C) and the one in (T, C) */
} bench_data;

static void data_make(bench_data *b, int C, int T, uint64_t seed) {
    b->C = C, b->H = C / HEAD_DIM, b->T = T, b->d = HEAD_DIM;
    size_t tc = (size_t)T * C;
    b->qkv = xmalloc_aligned(3 * tc * sizeof(float));
    b->out = xmalloc_aligned(tc * sizeof(float));
    b->lse = xmalloc_aligned((size_t)b->H * T * sizeof(float));
    b->kc = xmalloc_aligned(tc * sizeof(float));
    b->vc = xmalloc_aligned(tc * sizeof(float));
    ab_random_qkv(b->qkv, C, T, seed);
    for (int t = 0; t < T; t++) {
        memcpy(b->kc + (size_t)t * C, b->qkv + (size_t)t * 3 * C + C, (size_t)C * sizeof(float));
        memcpy(b->vc + (size_t)t * C, b->qkv + (size_t)t * 3 * C + 2 * C, (size_t)C * sizeof(float));
    }
    b->q = b->qkv + (size_t)(T - 1) * 3 * C;
    b->dqkv = NULL, b->dout = NULL;
}

/* The backward's gradient buffers, made only when a backward row runs. */
static void data_grads(bench_data *b, uint64_t seed) {
    if (b->dout) return;
    size_t tc = (size_t)b->T * b->C;
    b->dqkv = xcalloc(3 * tc, sizeof(float));
    b->dout = xmalloc_aligned(tc * sizeof(float));
    rng_t r;
    rng_seed(&r, seed ^ 0x9e3779b97f4a7c15ULL);
    for (size_t i = 0; i < tc; i++) b->dout[i] = rng_uniform(&r) - 0.5f;
}

static void data_free(bench_data *b) {
    free(b->qkv), free(b->out), free(b->lse), free(b->kc), free(b->vc), free(b->dqkv), free(b->dout);
    memset(b, 0, sizeof *b);
}

/* What one timed call needs: the data plus the sparse head's state. */
typedef struct bench_ctx {
    const bench_data *in;
    float *att;                 /* naive: (H, T, T) */
    head_spec spec;
    int kmax;
    size_t np, nwork;           /* params and scratch floats per head (decode) or thread */
    float *params, *score, *cache, *work, *side; /* side: block summaries or indexer keys */
    float *fparams;             /* mlp head function parameters (np_fn per head), or NULL */
    float *bscratch;            /* backward scratch: naive attention_scratch, flash scratch */
    int *idx, *count;
    size_t side_per_head, np_fn, ncache;
    tblock_sel *tsel;           /* tblock: the tile selection (made by each prefill call) */
    float *tscratch;            /* tblock backward scratch */
    op_count *cnt;              /* NULL when timing */
    void (*fn)(const struct bench_ctx *b); /* what a timed call runs */
    ab_variant v;
    lindex_dims ld;             /* lindex: the layer's indexer (params: its layer layout) */
} bench_ctx;

typedef void (*bench_fn)(const bench_ctx *b);

static void run_naive(const bench_ctx *b) {
    const bench_data *d = b->in;
    attention_forward_counted(d->out, b->att, d->qkv, 1, d->T, d->C, d->H, b->cnt);
}

static void run_flash(const bench_ctx *b) {
    const bench_data *d = b->in;
    flash_attention_forward_counted(d->out, d->lse, d->qkv, 1, d->T, d->C, d->H, b->cnt);
}

static void run_flash_decode(const bench_ctx *b) {
    const bench_data *d = b->in;
    attention_decode_step_counted(d->out, d->q, d->kc, d->vc, d->T, d->C, d->H, b->cnt);
}

/* Head h's share of a sparse prefill's state (forward and backward): its q in qkv (k and
 * v follow at +C and +2C), head-function parameters (NULL: none), selection and its
 * scores (T x kmax), counts (T) and head-function cache. */
typedef struct {
    const float *q, *fp;
    int *idx, *count;
    float *score, *cache;
} head_state;

static head_state head_state_of(const bench_ctx *b, int h) {
    const bench_data *d = b->in;
    size_t tk = (size_t)d->T * b->kmax, hs = b->v == AB_LINDEX ? 0 : (size_t)h; /* lindex: one selection */
    return (head_state){d->qkv + (size_t)h * d->d, b->fparams ? b->fparams + h * b->np_fn : NULL,
                        b->idx + hs * tk, b->count + hs * d->T, b->score + hs * tk,
                        b->cache + h * b->ncache};
}

/* Runs one(b, h, head h's state) for every head h, in parallel. */
static void over_heads(const bench_ctx *b, void (*one)(const bench_ctx *, int, const head_state *)) {
#pragma omp parallel for schedule(dynamic)
    for (int h = 0; h < b->in->H; h++) {
        head_state s = head_state_of(b, h);
        one(b, h, &s);
    }
}

/* As hybrid.c runs a sparse head: selector then head function. */
static void prefill_head(const bench_ctx *b, int h, const head_state *s) {
    const bench_data *d = b->in;
    int C = d->C, T = d->T, hs = d->d;
    float *w = b->work + (size_t)omp_get_thread_num() * b->nwork;
    selector_select_counted(&b->spec, b->params + h * b->np, hs, T, s->q, s->q + C, 3 * C, T, s->idx,
                            s->score, s->count, w, b->cnt);
    headfn_forward_counted(&b->spec, s->fp, hs, b->kmax, s->q, s->q + C, s->q + 2 * C, 3 * C, T, s->idx,
                           s->count, d->out + (size_t)h * hs, C, s->cache, b->cnt);
}

static void run_sparse_prefill(const bench_ctx *b) { over_heads(b, prefill_head); }

/* lindex: the layer's one selection (lindex_select runs its row groups in parallel),
 * then every head's softmax over it, as hybrid.c's shared layers run. */
static void lindex_head(const bench_ctx *b, int h, const head_state *s) {
    const bench_data *d = b->in;
    int C = d->C, hs = d->d;
    headfn_forward(&b->spec, NULL, hs, b->kmax, s->q, s->q + C, s->q + 2 * C, 3 * C, d->T, s->idx, s->count,
                   d->out + (size_t)h * hs, C, s->cache);
}

static void run_lindex(const bench_ctx *b) {
    const bench_data *d = b->in;
    lindex_select(&b->spec, &b->ld, b->params, d->qkv, d->qkv + d->C, 3 * d->C, d->T, b->idx, b->score, b->count,
                  b->work, LINDEX_AUTO, NULL);
    over_heads(b, lindex_head);
}

/* Threads only pay off above some work per call (as attention_decode_step decides). */
static int decode_parallel(const bench_ctx *b) {
    const bench_data *d = b->in;
    size_t per_head = b->spec.sel == SEL_BLOCK ? (size_t)d->T / b->spec.block * d->d
                                               : (size_t)d->T * b->spec.iheads * b->spec.rank;
    return per_head * d->H > 32768;
}

static void run_sparse_decode(const bench_ctx *b) {
    const bench_data *d = b->in;
    int C = d->C, hs = d->d;
#pragma omp parallel for schedule(static) if (decode_parallel(b))
    for (int h = 0; h < d->H; h++) {
        size_t o = (size_t)h * hs;
        const float *side = b->side + h * b->side_per_head;
        float *w = b->work + h * b->nwork, *out = d->out + o;
        int *idx = b->idx + h * b->kmax;
        if (b->spec.sel == SEL_BLOCK)
            sparse_decode_block_counted(&b->spec, hs, d->q + o, d->kc + o, d->vc + o, C, d->T, side, out, idx,
                                        w, b->cnt);
        else
            sparse_decode_index_counted(&b->spec, b->params + h * b->np, hs, d->q + o, d->kc + o, d->vc + o,
                                        C, d->T, side, out, idx, w, b->cnt);
    }
}

/* tblock: the tile selection, then the forward over it (all heads in one call). */
static void run_tblock(const bench_ctx *b) {
    const bench_data *d = b->in;
    tblock_select(b->tsel, d->qkv, d->C);
    tblock_forward(d->out, d->lse, d->qkv, d->C, b->tsel);
}

/* ---- backward (the forward ran once, untimed, in measure_row) ----
 * dense: d qkv from d out through the stored probabilities (naive) or the log-sum-exp
 * (flash, recomputing P tile by tile); sparse: the head function's backward over the
 * forward's selection (selection is discrete: the selector has no backward). dqkv
 * accumulates over the repeated calls, which does not change the work. */
static void run_naive_backward(const bench_ctx *b) {
    const bench_data *d = b->in;
    attention_backward(d->dqkv, b->bscratch, d->dout, d->qkv, b->att, 1, d->T, d->C, d->H);
}

static void run_flash_backward(const bench_ctx *b) {
    const bench_data *d = b->in;
    flash_attention_backward(d->dqkv, d->dout, d->qkv, d->out, d->lse, 1, d->T, d->C, d->H, b->bscratch);
}

static void backward_head(const bench_ctx *b, int h, const head_state *s) {
    const bench_data *d = b->in;
    int C = d->C, T = d->T, hs = d->d;
    float *dq = d->dqkv + (size_t)h * hs;
    headfn_backward(&b->spec, s->fp, NULL, hs, b->kmax, s->q, s->q + C, s->q + 2 * C, 3 * C, dq, dq + C,
                    dq + 2 * C, T, s->idx, s->count, d->dout + (size_t)h * hs, C, s->cache);
}

static void run_sparse_backward(const bench_ctx *b) { over_heads(b, backward_head); }

static void run_tblock_backward(const bench_ctx *b) {
    const bench_data *d = b->in;
    tblock_backward(d->dqkv, d->dout, d->qkv, d->out, d->lse, d->C, b->tsel, b->tscratch);
}

/* Backward FLOPs (2 a multiply-add): dense 4 products a causal pair (dP, dQ, dK, dV),
 * twice the forward's 2; softmax heads 4 d-long products a selected key, the counts
 * being the forward's own (sum_t count_t). */
static double backward_flops(const bench_ctx *b, ab_variant v) {
    const bench_data *d = b->in;
    double T = d->T;
    if (v <= AB_FLASH) return d->H * 8.0 * d->d * T * (T + 1) / 2;
    if (v == AB_TBLOCK) return 8.0 * d->d * tblock_pairs(b->tsel);
    double keys = 0;
    size_t n = (size_t)(v == AB_LINDEX ? 1 : d->H) * d->T; /* lindex: one selection, every head */
    for (size_t i = 0; i < n; i++) keys += b->count[i];
    return 8.0 * d->d * keys * (v == AB_LINDEX ? d->H : 1);
}

/* tblock's own buffers: the selection (ints), per thread the forward's packed K and V of a
 * head (2 (T + b) rows of 80 floats at d = 64) or the backward's K, V, dK, dV of its blocks
 * (4 of them), and the backward's scratch (at most T (H + 4 C), tblock.h). */
static double tblock_bytes(const bench_data *d, const head_spec *s, int back) {
    double H = d->H, T = d->T, rows = T + s->block, th = omp_get_max_threads();
    double sel = H * (T / s->block + 1) * (s->nblocks + 1);
    return 4.0 * (sel + th * (back ? 4 : 2) * rows * 80 + (back ? T * (H + (d->H < 8 ? 4.0 * d->C : 0)) : 0));
}

/* Bytes a row allocates beyond the shared data, to skip what does not fit. */
static double row_bytes(const bench_data *d, ab_variant v, int phase, const head_spec *s) {
    double H = d->H, T = d->T;
    int decode = phase == BENCH_DECODE;
    if (v == AB_NAIVE) return 4.0 * H * T * T;
    if (v == AB_FLASH) return 0.0;
    if (v == AB_TBLOCK) return tblock_bytes(d, s, phase == BENCH_BACKWARD);
    if (v == AB_LINDEX) {
        lindex_dims ld = lindex_dims_of(s, d->H, d->d);
        return 4.0 * (lindex_work_floats(&ld, d->T) + 3.0 * T * selector_kmax(s, d->T) + H * 4.0 * T);
    }
    double kmax = selector_kmax(s, d->T);
    if (decode) return 4.0 * H * (T * (s->rank + 3) + 2.0 * T / s->block * d->d);
    return 4.0 * (omp_get_max_threads() * (double)selector_select_work_floats(s, d->d, d->T) +
                  3.0 * H * T * kmax);
}

static void ctx_sparse(bench_ctx *b, int decode, uint64_t seed) {
    const bench_data *d = b->in;
    int H = d->H, T = d->T, hs = d->d;
    const head_spec *s = &b->spec;
    b->kmax = selector_kmax(s, T);
    b->np = selector_param_count(s, hs, T);
    b->params = xmalloc_aligned((b->np * H + 1) * sizeof(float));
    rng_t r;
    rng_seed(&r, seed);
    for (int h = 0; h < H; h++) selector_init(s, hs, T, b->params + h * b->np, &r);
    size_t tk = decode ? (size_t)b->kmax : (size_t)T * b->kmax;
    b->idx = xmalloc((tk * H + 1) * sizeof(int));
    if (!decode) {
        b->score = xmalloc_aligned(tk * H * sizeof(float));
        b->ncache = headfn_cache_floats(s, hs, b->kmax, T);
        b->cache = xmalloc_aligned(b->ncache * H * sizeof(float));
        b->count = xmalloc((size_t)T * H * sizeof(int));
        if (s->fn == HFN_MLP) {
            b->np_fn = headfn_param_count(s, hs, b->kmax);
            b->fparams = xmalloc_aligned(b->np_fn * H * sizeof(float));
            for (int h = 0; h < H; h++) headfn_init(s, hs, b->kmax, b->fparams + h * b->np_fn, &r);
        }
        b->nwork = selector_select_work_floats(s, hs, T);
        b->work = xmalloc_aligned((b->nwork * omp_get_max_threads() + 1) * sizeof(float));
        return;
    }
    /* decode: the cache-side state (summaries, projected keys) is built here, untimed */
    int block = s->sel == SEL_BLOCK;
    b->nwork = block ? sparse_decode_block_work(s, T) : sparse_decode_index_work(s, T);
    b->work = xmalloc_aligned((b->nwork * H + 1) * sizeof(float));
    b->side_per_head = block ? (size_t)2 * (T / s->block + 1) * hs : (size_t)T * s->rank;
    b->side = xmalloc_aligned(b->side_per_head * H * sizeof(float));
    for (int h = 0; h < H; h++) {
        float *side = b->side + h * b->side_per_head;
        if (block) sparse_decode_block_side(s, hs, d->kc + (size_t)h * hs, d->C, T, side);
        else sparse_decode_index_side(s, b->params + h * b->np, hs, d->kc + (size_t)h * hs, d->C, T, side);
    }
}

/* lindex: the layer's parameters, one selection (T x kmax), every head's softmax cache. */
static void ctx_lindex(bench_ctx *b, uint64_t seed) {
    const bench_data *d = b->in;
    int T = d->T;
    b->ld = lindex_dims_of(&b->spec, d->H, d->d);
    b->kmax = selector_kmax(&b->spec, T);
    b->params = xmalloc_aligned(lindex_param_count(&b->ld) * sizeof(float));
    rng_t r;
    rng_seed(&r, seed);
    lindex_init(&b->ld, b->params, &r);
    b->idx = xmalloc(((size_t)T * b->kmax + 1) * sizeof(int));
    b->score = xmalloc_aligned(((size_t)T * b->kmax + 1) * sizeof(float));
    b->count = xmalloc(((size_t)T + 1) * sizeof(int));
    b->ncache = headfn_cache_floats(&b->spec, d->d, b->kmax, T);
    b->cache = xmalloc_aligned((b->ncache * d->H + 1) * sizeof(float));
    b->work = xmalloc_aligned((lindex_work_floats(&b->ld, T) + 1) * sizeof(float));
}

/* tblock's selection buffers at the row's b and n (the spec's block and nblocks). */
static void ctx_tblock(bench_ctx *b) {
    const bench_data *d = b->in;
    b->tsel = xmalloc(sizeof *b->tsel);
    if (tblock_sel_init(b->tsel, 1, d->H, d->T, b->spec.block, b->spec.nblocks, NULL))
        die_at(__FILE__, __LINE__, "tblock: b=%d n=%d", b->spec.block, b->spec.nblocks);
}

static void ctx_free(bench_ctx *b) {
    free(b->att), free(b->params), free(b->score), free(b->cache), free(b->work), free(b->side);
    free(b->fparams), free(b->bscratch), free(b->tscratch);
    if (b->tsel) tblock_sel_free(b->tsel);
    free(b->tsel);
    free(b->idx), free(b->count);
}

static bench_fn fn_of(ab_variant v, int phase) {
    static const bench_fn FN[BENCH_NPHASE][5] = {
        {run_naive, run_flash, run_sparse_prefill, run_tblock, run_lindex},
        {run_naive, run_flash_decode, run_sparse_decode, NULL, NULL}, /* no naive, tblock or lindex decode */
        {run_naive_backward, run_flash_backward, run_sparse_backward, run_tblock_backward, run_sparse_backward}};
    return FN[phase][v == AB_NAIVE ? 0 : v == AB_FLASH ? 1 : v == AB_TBLOCK ? 3 : v == AB_LINDEX ? 4 : 2];
}

/* Backward rows: the forward once (untimed) for what the backward reads, plus the
 * variant's backward scratch; returns that scratch's floats. */
static size_t backward_setup(bench_ctx *b, ab_variant v) {
    const bench_data *d = b->in;
    size_t n = v == AB_NAIVE ? attention_scratch_floats(1, d->T, d->H)
             : v == AB_FLASH ? flash_scratch_floats(1, d->T, d->C, d->H) : 0;
    if (n) b->bscratch = xmalloc_aligned(n * sizeof(float));
    fn_of(v, BENCH_PREFILL)(b);
    if (v == AB_TBLOCK) /* its bytes are tblock_bytes' */
        b->tscratch = xmalloc_aligned(tblock_scratch_floats(b->tsel, d->C) * sizeof(float));
    return n;
}

/* ---- the CPU backend of the grid driver ---- */

static void *cpu_data_make(void *ctx, int C, int T, const ab_config *cfg) {
    bench_data *d = xmalloc(sizeof *d);
    data_make(d, C, T, cfg->seed);
    if (cfg->phases & (1u << BENCH_BACKWARD)) data_grads(d, cfg->seed);
    return d;
}

static void cpu_data_free(void *ctx, void *data) {
    data_free(data);
    free(data);
}

/* A row's state; NULL when its buffers (and the backward's gradients) exceed max_bytes. */
static void *cpu_setup(void *ctx, void *data, ab_variant v, int phase, const cm_variant *cv, const ab_config *cfg,
                       double *extra_bytes) {
    const bench_data *d = data;
    int back = phase == BENCH_BACKWARD;
    double extra = back ? 4.0 * 4 * d->T * d->C : 0; /* dqkv and dout */
    double own = row_bytes(d, v, phase, &cv->spec);
    if (own + extra > cfg->max_bytes) return NULL;
    bench_ctx *b = xcalloc(1, sizeof *b);
    b->in = d, b->spec = cv->spec, b->v = v, b->fn = fn_of(v, phase);
    if (v == AB_NAIVE) b->att = xmalloc_aligned((size_t)d->H * d->T * d->T * sizeof(float));
    if (v == AB_INDEX || v == AB_BLOCK) ctx_sparse(b, phase == BENCH_DECODE, cfg->seed + (uint64_t)d->T);
    if (v == AB_TBLOCK) ctx_tblock(b);
    if (v == AB_LINDEX) ctx_lindex(b, cfg->seed + (uint64_t)d->T);
    if (back) extra += 4.0 * backward_setup(b, v);
    if (v == AB_TBLOCK) extra += own; /* costmodel's peak has none of it (measure_row) */
    *extra_bytes = extra;
    return b;
}

static void cpu_run(void *row) {
    const bench_ctx *b = row;
    b->fn(b);
}

static double cpu_backward_flops(void *row) {
    const bench_ctx *b = row;
    return backward_flops(b, b->v);
}

/* tblock: 4 hs FLOPs per attended pair (S = Q K^T and O = P V over the unmasked pairs);
 * the others: costmodel's (-1). */
static double cpu_prefill_flops(void *row) {
    const bench_ctx *b = row;
    return b->v == AB_TBLOCK ? 4.0 * b->in->d * tblock_pairs(b->tsel) : -1.0;
}

static void cpu_teardown(void *row) {
    ctx_free(row);
    free(row);
}

static void cpu_timer_start(void *ctx) { *(double *)ctx = time_now(); }

static double cpu_timer_stop(void *ctx) { return time_now() - *(double *)ctx; }

void ab_run(const ab_config *cfg, bench_row **rows, int *nrows,
            void (*on_row)(const bench_row *r, void *ctx), void *ctx) {
    double t0 = 0;
    /* a series' first row: about what this machine's kernels reach (sgemm-bound dense,
     * scalar-loop selectors) */
    ab_backend be = {.suffix = "", .variants = (1u << AB_NVAR) - 1, .phases = (1u << BENCH_NPHASE) - 1,
                     .first_flops = {100e9, 5e9}, .warmups = 0, .max_reps = 100000, .ctx = &t0,
                     .data_make = cpu_data_make, .data_free = cpu_data_free, .setup = cpu_setup,
                     .run = cpu_run, .backward_flops = cpu_backward_flops, .prefill_flops = cpu_prefill_flops,
                     .teardown = cpu_teardown,
                     .timer_start = cpu_timer_start, .timer_stop = cpu_timer_stop, .pressure = ab_cpu_pressure};
    ab_grid_run(cfg, &be, rows, nrows, on_row, ctx);
}

/* ---- instrumented counts ---- */

double ab_count_bytes(ab_variant v, int phase, int C, int T, int k, const head_spec *spec) {
    head_spec hs = spec ? *spec : ab_variant_at(v, k).spec;
    bench_data d;
    memset(&d, 0, sizeof d);
    d.C = C, d.H = C / HEAD_DIM, d.T = T, d.d = HEAD_DIM;
    double tc = (double)T * C, shared = 4.0 * (6.0 * tc + (double)d.H * T);
    return shared + row_bytes(&d, v, phase, &hs);
}

int ab_count(ab_variant v, int phase, int C, int T, int k, const head_spec *spec, uint64_t seed,
             op_count *cnt, sattn_err *e) {
    head_spec hs = spec ? *spec : ab_variant_at(v, k).spec;
    if (C < HEAD_DIM || C % HEAD_DIM || T < 1)
        return err_set(e, "C=%d, T=%d: expected C a positive multiple of %d and T >= 1", C, T, HEAD_DIM);
    if (phase == BENCH_BACKWARD) return err_set(e, "counts cover prefill and decode, not backward");
    if (v == AB_TBLOCK) return err_set(e, "tblock+softmax has no instrumented counts (its FLOPs: tblock_pairs)");
    if (v == AB_LINDEX) return err_set(e, "lindex+softmax has no instrumented counts");
    if (phase == BENCH_DECODE && v == AB_NAIVE) return err_set(e, "dense-naive has no decode step (use dense-flash)");
    if (phase == BENCH_DECODE && v >= AB_INDEX && (hs.fn != HFN_SOFTMAX || (hs.sel != SEL_INDEX && hs.sel != SEL_BLOCK)))
        return err_set(e, "decode runs index or block with softmax only, not %s", ab_variant_at(v, k).name);
    if (v >= AB_INDEX && hs.sel == SEL_DENSE) return err_set(e, "a sparse variant needs a sparse head spec");
    bench_data d;
    data_make(&d, C, T, seed);
    bench_ctx b;
    memset(&b, 0, sizeof b);
    b.in = &d, b.spec = hs, b.cnt = cnt;
    if (v == AB_NAIVE) b.att = xmalloc_aligned((size_t)d.H * T * T * sizeof(float));
    if (v >= AB_INDEX) ctx_sparse(&b, phase == BENCH_DECODE, seed + (uint64_t)T);
    fn_of(v, phase)(&b);
    ctx_free(&b);
    data_free(&d);
    return 0;
}

