/* attnbench: measured time of one attention layer per variant (see attnbench.h). */
#include "sattn/attnbench.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/costmodel.h"
#include "sattn/crossover.h"
#include "sattn/flash.h"
#include "sattn/nn.h"
#include "sattn/rng.h"

#define HEAD_DIM 64
#define MIN_RUN_S 0.005 /* a run repeats the call until it lasts this long */
#define FIRST_DENSE_FLOPS 100e9
#define FIRST_SPARSE_FLOPS 5e9

static const char *const NAMES[AB_NVAR] = {"dense-naive", "dense-flash", "index+softmax",
                                           "block+softmax"};

const char *ab_variant_name(ab_variant v) { return NAMES[v]; }

const char *ab_phase_name(int phase) {
    static const char *const P[AB_NPHASE] = {"prefill", "decode", "backward"};
    return phase >= 0 && phase < AB_NPHASE ? P[phase] : "?";
}

int ab_phase_parse(const char *s) {
    for (int p = 0; p < AB_NPHASE; p++)
        if (!strcmp(s, ab_phase_name(p))) return p;
    return -1;
}

int ab_variant_parse(const char *s) {
    static const char *const SHORT[AB_NVAR] = {"naive", "flash", "index", "block"};
    for (int v = 0; v < AB_NVAR; v++)
        if (!strcmp(s, NAMES[v]) || !strcmp(s, SHORT[v])) return v;
    return -1;
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
    c.variants = (1u << AB_NVAR) - 1;
    c.phases = quick ? (1u << AB_PREFILL) | (1u << AB_DECODE) : (1u << AB_NPHASE) - 1;
    c.runs = quick ? 3 : 5;
    c.max_run_s = 2.0;
    c.max_bytes = 2.0 * 1024 * 1024 * 1024;
    c.seed = 1234;
    return c;
}

double ab_cpu_pressure(void) {
    FILE *f = fopen("/proc/pressure/cpu", "r");
    if (!f) return -1.0;
    double v = -1.0;
    if (fscanf(f, "some avg10=%lf", &v) != 1) v = -1.0;
    fclose(f);
    return v;
}

/* ---- single-query decode paths ---- */

static float dotf(const float *a, const float *b, int n) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}

/* o = sum_j softmax_j(q . k_{idx_j} / sqrt(d)) v_{idx_j}; a: c floats of scratch.
 * Counted as headfn.c's softmax counts one query: 2 c d multiply-adds. */
static void gathered_softmax(int d, const float *q, const float *k, const float *v, int ld,
                             const int *idx, int c, float *o, float *a, op_count *cnt) {
    float sc = 1.0f / sqrtf((float)d), mx = -INFINITY, z = 0.0f;
    for (int j = 0; j < c; j++) a[j] = dotf(q, k + (size_t)idx[j] * ld, d) * sc;
    for (int j = 0; j < c; j++) mx = a[j] > mx ? a[j] : mx;
    for (int j = 0; j < c; j++) z += (a[j] = expf(a[j] - mx));
    memset(o, 0, (size_t)d * sizeof(float));
    for (int j = 0; j < c; j++) {
        const float *vr = v + (size_t)idx[j] * ld;
        float w = a[j] / z;
        vec_axpy(o, w, vr, d);
    }
    op_count_add(cnt, 2 * (uint64_t)c * d, 4 * (2 * (uint64_t)c * d + 2 * (uint64_t)d));
}

void ab_block_summaries(const head_spec *s, int d, const float *k, int ld, int T, float *sum) {
    int b = s->block, nb = T / b;
    for (int j = 0; j < nb; j++) {
        float *m = sum + (size_t)j * 2 * d, *hi = m + d;
        for (int i = 0; i < d; i++) m[i] = s->bounds ? INFINITY : 0.0f, hi[i] = -INFINITY;
        for (int u = j * b; u < (j + 1) * b; u++) {
            const float *kr = k + (size_t)u * ld;
            for (int i = 0; i < d; i++) {
                if (s->bounds) m[i] = kr[i] < m[i] ? kr[i] : m[i], hi[i] = kr[i] > hi[i] ? kr[i] : hi[i];
                else m[i] += kr[i] / (float)b;
            }
        }
    }
}

/* q . mean key, or the bound sum_i max(q_i lo_i, q_i hi_i): the selector's formula. */
static float block_score(const head_spec *s, const float *q, const float *m, int d) {
    float acc = 0.0f;
    for (int i = 0; i < d; i++) {
        if (!s->bounds) acc += q[i] * m[i];
        else {
            float a = q[i] * m[i], c = q[i] * m[d + i];
            acc += a > c ? a : c;
        }
    }
    return acc;
}

size_t ab_block_decode_work(const head_spec *s, int T) {
    return 3 * ((size_t)T / (size_t)s->block + 1) + (size_t)selector_kmax(s, T);
}

static int block_decode(const head_spec *s, int d, const float *q, const float *k, const float *v,
                        int ld, int T, const float *sum, float *o, int *idx, float *work,
                        op_count *cnt) {
    int b = s->block, t = T - 1, local = t / b, kmax = selector_kmax(s, T), c = 0;
    float *bsc = work, *top = bsc + local + 1, *a = top + local + 1;
    int *order = (int *)(a + kmax); /* ints live in the float scratch: same size */
    for (int u = local * b; u <= t; u++) idx[c++] = u;
    for (int j = 0; j < local; j++) bsc[j] = block_score(s, q, sum + (size_t)j * 2 * d, d);
    uint64_t w = s->bounds ? 2 : 1;
    op_count_add(cnt, w * d * local, 4 * ((uint64_t)d + w * d * local));
    int n = selector_topk(bsc, local, s->nblocks - 1, top, order);
    for (int j = 0; j < n; j++)
        for (int u = order[j] * b; u < (order[j] + 1) * b && c < kmax; u++) idx[c++] = u;
    gathered_softmax(d, q, k, v, ld, idx, c, o, a, cnt);
    return c;
}

int ab_block_decode(const head_spec *s, int d, const float *q, const float *k, const float *v,
                    int ld, int T, const float *sum, float *o, int *idx, float *work) {
    return block_decode(s, d, q, k, v, ld, T, sum, o, idx, work, NULL);
}

void ab_index_keys(const head_spec *s, const float *params, int d, const float *k, int ld, int T,
                   float *kt) {
    const float *Wk = params + (size_t)s->iheads * s->rank * d;
    nn_sgemm(0, 1, T, s->rank, d, 1.0f, k, ld, Wk, d, 0.0f, kt, s->rank);
}

size_t ab_index_decode_work(const head_spec *s, int T) {
    return (size_t)s->iheads * s->rank + (size_t)s->iheads + 3 * (size_t)T + 2 * (size_t)s->k;
}

/* The indexer's score row for the one query, as index_scores in selector.c computes
 * row T-1: S_u = sum_j w_j relu(qt_j . kt_u / sqrt(r)). */
static void index_row(const head_spec *s, const float *params, int d, const float *q, int T,
                      const float *kt, float *qt, float *w, float *arow, float *S, op_count *cnt) {
    int J = s->iheads, r = s->rank;
    const float *Wq = params, *Ww = Wq + (size_t)(J + 1) * r * d, *bw = Ww + (size_t)J * d;
    nn_sgemm(0, 1, 1, J * r, d, 1.0f, q, d, Wq, d, 0.0f, qt, J * r);
    nn_sgemm(0, 1, 1, J, d, 1.0f, q, d, Ww, d, 0.0f, w, J);
    op_count_gemm(cnt, 1, J * r, d, 0);
    op_count_gemm(cnt, 1, J, d, 0);
    memset(S, 0, (size_t)T * sizeof(float));
    for (int j = 0; j < J; j++) {
        float wj = w[j] + bw[j];
        nn_sgemm(0, 1, 1, T, r, 1.0f / sqrtf((float)r), qt + j * r, J * r, kt, r, 0.0f, arow, T);
        op_count_gemm(cnt, 1, T, r, 0);
        vec_relu_axpy(S, wj, arow, T);
    }
}

static int index_decode(const head_spec *s, const float *params, int d, const float *q,
                        const float *k, const float *v, int ld, int T, const float *kt, float *o,
                        int *idx, float *work, op_count *cnt) {
    int J = s->iheads, r = s->rank;
    float *qt = work, *w = qt + J * r, *arow = w + J, *S = arow + T, *top = S + T;
    float *a = top + s->k;
    index_row(s, params, d, q, T, kt, qt, w, arow, S, cnt);
    int c = selector_topk(S, T, s->k, top, idx);
    gathered_softmax(d, q, k, v, ld, idx, c, o, a, cnt);
    return c;
}

int ab_index_decode(const head_spec *s, const float *params, int d, const float *q,
                    const float *k, const float *v, int ld, int T, const float *kt, float *o,
                    int *idx, float *work) {
    return index_decode(s, params, d, q, k, v, ld, T, kt, o, idx, work, NULL);
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
    rng_t r;
    rng_seed(&r, seed ^ ((uint64_t)C << 32) ^ (uint64_t)T);
    /* uniform with unit variance: cheap to draw for 10^8 floats, and time does not
     * depend on the distribution */
    for (size_t i = 0; i < 3 * tc; i++) b->qkv[i] = 3.4641016f * (rng_uniform(&r) - 0.5f);
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
typedef struct {
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
    op_count *cnt;              /* NULL when timing */
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

/* As hybrid.c runs a sparse head: selector then head function, parallel over heads. */
static void run_sparse_prefill(const bench_ctx *b) {
    const bench_data *d = b->in;
    int C = d->C, T = d->T, hs = d->d;
    size_t tk = (size_t)T * b->kmax;
#pragma omp parallel for schedule(dynamic)
    for (int h = 0; h < d->H; h++) {
        const float *q = d->qkv + (size_t)h * hs;
        float *w = b->work + (size_t)omp_get_thread_num() * b->nwork;
        const float *fp = b->fparams ? b->fparams + h * b->np_fn : NULL;
        selector_select_counted(&b->spec, b->params + h * b->np, hs, T, q, q + C, 3 * C, T,
                                b->idx + h * tk, b->score + h * tk, b->count + (size_t)h * T, w,
                                b->cnt);
        headfn_forward_counted(&b->spec, fp, hs, b->kmax, q, q + C, q + 2 * C, 3 * C, T,
                               b->idx + h * tk, b->count + (size_t)h * T, d->out + (size_t)h * hs, C,
                               b->cache + h * b->ncache, b->cnt);
    }
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
            block_decode(&b->spec, hs, d->q + o, d->kc + o, d->vc + o, C, d->T, side, out, idx, w,
                         b->cnt);
        else
            index_decode(&b->spec, b->params + h * b->np, hs, d->q + o, d->kc + o, d->vc + o, C,
                         d->T, side, out, idx, w, b->cnt);
    }
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

static void run_sparse_backward(const bench_ctx *b) {
    const bench_data *d = b->in;
    int C = d->C, T = d->T, hs = d->d;
    size_t tk = (size_t)T * b->kmax;
#pragma omp parallel for schedule(dynamic)
    for (int h = 0; h < d->H; h++) {
        const float *q = d->qkv + (size_t)h * hs;
        float *dq = d->dqkv + (size_t)h * hs;
        const float *fp = b->fparams ? b->fparams + h * b->np_fn : NULL;
        headfn_backward(&b->spec, fp, NULL, hs, b->kmax, q, q + C, q + 2 * C, 3 * C, dq, dq + C,
                        dq + 2 * C, T, b->idx + h * tk, b->count + (size_t)h * T,
                        d->dout + (size_t)h * hs, C, b->cache + h * b->ncache);
    }
}

/* Backward FLOPs (2 a multiply-add): dense 4 products a causal pair (dP, dQ, dK, dV),
 * twice the forward's 2; softmax heads 4 d-long products a selected key, the counts
 * being the forward's own (sum_t count_t). */
static double backward_flops(const bench_ctx *b, ab_variant v) {
    const bench_data *d = b->in;
    double T = d->T;
    if (v <= AB_FLASH) return d->H * 8.0 * d->d * T * (T + 1) / 2;
    double keys = 0;
    for (size_t i = 0; i < (size_t)d->H * d->T; i++) keys += b->count[i];
    return 8.0 * d->d * keys;
}

/* The standard spec at k for index or block (costmodel.h's, so the analytic numbers
 * describe exactly what runs). */
static cm_variant variant_at(ab_variant v, int k) {
    if (v == AB_NAIVE) return cm_dense(CM_NAIVE);
    if (v == AB_FLASH) return cm_dense(CM_FLASH);
    cm_variant all[8];
    cm_standard_variants(k, all);
    return all[v == AB_INDEX ? 4 : 6];
}

/* Bytes a row allocates beyond the shared data, to skip what does not fit. */
static double row_bytes(const bench_data *d, ab_variant v, int decode, const head_spec *s) {
    double H = d->H, T = d->T;
    if (v == AB_NAIVE) return 4.0 * H * T * T;
    if (v == AB_FLASH) return 0.0;
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
    b->nwork = block ? ab_block_decode_work(s, T) : ab_index_decode_work(s, T);
    b->work = xmalloc_aligned((b->nwork * H + 1) * sizeof(float));
    b->side_per_head = block ? (size_t)2 * (T / s->block + 1) * hs : (size_t)T * s->rank;
    b->side = xmalloc_aligned(b->side_per_head * H * sizeof(float));
    for (int h = 0; h < H; h++) {
        float *side = b->side + h * b->side_per_head;
        if (block) ab_block_summaries(s, hs, d->kc + (size_t)h * hs, d->C, T, side);
        else ab_index_keys(s, b->params + h * b->np, hs, d->kc + (size_t)h * hs, d->C, T, side);
    }
}

static void ctx_free(bench_ctx *b) {
    free(b->att), free(b->params), free(b->score), free(b->cache), free(b->work), free(b->side);
    free(b->fparams), free(b->bscratch);
    free(b->idx), free(b->count);
}

/* One warm-up call, then the median over runs of the time per call. */
static double time_median(bench_fn fn, const bench_ctx *b, int runs) {
    double t0 = time_now();
    fn(b);
    double warm = time_now() - t0;
    int reps = warm >= MIN_RUN_S ? 1 : (int)ceil(MIN_RUN_S / (warm > 1e-7 ? warm : 1e-7));
    if (reps > 100000) reps = 100000;
    double *ts = xmalloc((size_t)runs * sizeof(double));
    for (int i = 0; i < runs; i++) {
        t0 = time_now();
        for (int j = 0; j < reps; j++) fn(b);
        ts[i] = (time_now() - t0) / reps;
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

static bench_fn fn_of(ab_variant v, int phase) {
    static const bench_fn FN[AB_NPHASE][3] = {
        {run_naive, run_flash, run_sparse_prefill},
        {run_naive, run_flash_decode, run_sparse_decode}, /* no naive decode: never asked */
        {run_naive_backward, run_flash_backward, run_sparse_backward}};
    return FN[phase][v == AB_NAIVE ? 0 : v == AB_FLASH ? 1 : 2];
}

/* Backward rows: the forward once (untimed) for what the backward reads, plus the
 * variant's backward scratch; returns that scratch's floats. */
static size_t backward_setup(bench_ctx *b, ab_variant v) {
    const bench_data *d = b->in;
    size_t n = v == AB_NAIVE ? attention_scratch_floats(1, d->T, d->H)
             : v == AB_FLASH ? flash_scratch_floats(1, d->T, d->C, d->H) : 0;
    if (n) b->bscratch = xmalloc_aligned(n * sizeof(float));
    fn_of(v, AB_PREFILL)(b);
    return n;
}

/* Measures one row into r; 0 when it is skipped (memory or predicted time). */
static int measure_row(const ab_config *cfg, const bench_data *d, ab_variant v, int phase, int k,
                     series *st, ab_row *r) {
    cm_variant cv = variant_at(v, k);
    cm_shape sh = cm_shape_make(d->C, d->H, d->T);
    sh.decode = phase == AB_DECODE;
    cm_cost cost;
    cm_cost_of(&sh, &cv, &cost);
    int back = phase == AB_BACKWARD;
    double extra = back ? 4.0 * 4 * d->T * d->C : 0; /* dqkv and dout */
    if (row_bytes(d, v, phase == AB_DECODE, &cv.spec) + extra > cfg->max_bytes) return 0;
    /* a series' first row has no previous time: assume about what this machine's
     * kernels reach (sgemm-bound dense, scalar-loop selectors); a backward is about
     * twice its forward's work, and as much again for the untimed forward */
    double rate = v <= AB_FLASH ? FIRST_DENSE_FLOPS : FIRST_SPARSE_FLOPS;
    double predicted = st->T ? st->med * cost.attn_flops / st->flops : (back ? 3 : 1) * cost.attn_flops / rate;
    if (predicted > cfg->max_run_s) return 0;
    bench_ctx b;
    memset(&b, 0, sizeof b);
    b.in = d;
    b.spec = cv.spec;
    if (v == AB_NAIVE) b.att = xmalloc_aligned((size_t)d->H * d->T * d->T * sizeof(float));
    if (v >= AB_INDEX) ctx_sparse(&b, phase == AB_DECODE, cfg->seed + (uint64_t)d->T);
    if (back) extra += 4.0 * backward_setup(&b, v);
    double p = ab_cpu_pressure();
    double med = time_median(fn_of(v, phase), &b, cfg->runs);
    double flops = back ? backward_flops(&b, v) : cost.attn_flops;
    ctx_free(&b);
    *st = (series){d->T, med, cost.attn_flops};
    *r = (ab_row){v, phase, d->C, d->H, d->T, v >= AB_INDEX ? k : 0, med,
                  flops / med / 1e9, -1.0, cost.peak_bytes + extra, p};
    return 1;
}

double ab_count_bytes(ab_variant v, int decode, int C, int T, int k, const head_spec *spec) {
    head_spec hs = spec ? *spec : variant_at(v, k).spec;
    bench_data d;
    memset(&d, 0, sizeof d);
    d.C = C, d.H = C / HEAD_DIM, d.T = T, d.d = HEAD_DIM;
    double tc = (double)T * C, shared = 4.0 * (6.0 * tc + (double)d.H * T);
    return shared + row_bytes(&d, v, decode, &hs);
}

int ab_count(ab_variant v, int decode, int C, int T, int k, const head_spec *spec, uint64_t seed,
             op_count *cnt, sattn_err *e) {
    head_spec hs = spec ? *spec : variant_at(v, k).spec;
    if (C < HEAD_DIM || C % HEAD_DIM || T < 1)
        return err_set(e, "C=%d, T=%d: expected C a positive multiple of %d and T >= 1", C, T, HEAD_DIM);
    if (decode == AB_BACKWARD) return err_set(e, "counts cover prefill and decode, not backward");
    if (decode && v == AB_NAIVE) return err_set(e, "dense-naive has no decode step (use dense-flash)");
    if (decode && v >= AB_INDEX && (hs.fn != HFN_SOFTMAX || (hs.sel != SEL_INDEX && hs.sel != SEL_BLOCK)))
        return err_set(e, "decode runs index or block with softmax only, not %s", variant_at(v, k).name);
    if (v >= AB_INDEX && hs.sel == SEL_DENSE) return err_set(e, "a sparse variant needs a sparse head spec");
    bench_data d;
    data_make(&d, C, T, seed);
    bench_ctx b;
    memset(&b, 0, sizeof b);
    b.in = &d, b.spec = hs, b.cnt = cnt;
    if (v == AB_NAIVE) b.att = xmalloc_aligned((size_t)d.H * T * T * sizeof(float));
    if (v >= AB_INDEX) ctx_sparse(&b, decode, seed + (uint64_t)T);
    fn_of(v, decode)(&b);
    ctx_free(&b);
    data_free(&d);
    return 0;
}

typedef struct {
    ab_row *rows;
    int n, cap;
} row_list;

static void push_row(row_list *l, const ab_row *r) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->rows = xrealloc(l->rows, (size_t)l->cap * sizeof *l->rows);
    }
    l->rows[l->n++] = *r;
}

/* One phase at one (C, T): dense-flash first, so the others get their speedup. */
static void run_group(const ab_config *cfg, const bench_data *d, int phase,
                      series st[AB_NVAR][AB_MAX_LIST], row_list *out,
                      void (*on_row)(const ab_row *, void *), void *ctx) {
    static const ab_variant ORDER[AB_NVAR] = {AB_FLASH, AB_NAIVE, AB_INDEX, AB_BLOCK};
    double flash = -1.0;
    for (int i = 0; i < AB_NVAR; i++) {
        ab_variant v = ORDER[i];
        if (!(cfg->variants & (1u << v)) || (phase == AB_DECODE && v == AB_NAIVE)) continue;
        int nk = v >= AB_INDEX ? cfg->nks : 1;
        for (int ki = 0; ki < nk; ki++) {
            ab_row r;
            if (!measure_row(cfg, d, v, phase, cfg->ks[ki], &st[v][ki], &r)) continue;
            if (v == AB_FLASH) flash = r.median_s;
            r.speedup = flash > 0 ? flash / r.median_s : -1.0;
            push_row(out, &r);
            if (on_row) on_row(&r, ctx);
        }
    }
}

void ab_run(const ab_config *cfg, ab_row **rows, int *nrows,
            void (*on_row)(const ab_row *r, void *ctx), void *ctx) {
    int seqs[AB_MAX_LIST];
    memcpy(seqs, cfg->seqs, (size_t)cfg->nseqs * sizeof(int));
    /* ascending T: each series predicts its next row's time from the previous one */
    qsort(seqs, (size_t)cfg->nseqs, sizeof(int), cmp_int_asc);
    row_list out = {0};
    for (int ci = 0; ci < cfg->ndims; ci++) {
        series st[AB_NPHASE][AB_NVAR][AB_MAX_LIST];
        memset(st, 0, sizeof st);
        for (int ti = 0; ti < cfg->nseqs; ti++) {
            bench_data d;
            data_make(&d, cfg->dims[ci], seqs[ti], cfg->seed);
            if (cfg->phases & (1u << AB_BACKWARD)) data_grads(&d, cfg->seed);
            for (int ph = 0; ph < AB_NPHASE; ph++)
                if (cfg->phases & (1u << ph)) run_group(cfg, &d, ph, st[ph], &out, on_row, ctx);
            data_free(&d);
        }
    }
    *rows = out.rows;
    *nrows = out.n;
}

/* The series of row r among out[0..m), or m. */
static int series_of(const ab_cross *out, int m, const ab_row *r) {
    int j = 0;
    while (j < m && !(out[j].v == r->v && out[j].decode == r->decode && out[j].C == r->C && out[j].k == r->k)) j++;
    return j;
}

/* Per series: costmodel's T* (none for backward: the selector does not run backward)
 * and xover_series_T over the series' rows. */
int ab_crossovers(const ab_row *rows, int n, ab_cross *out, int cap) {
    int m = 0, *T = xmalloc(((size_t)n + 1) * sizeof(int));
    double *sp = xmalloc(((size_t)n + 1) * sizeof(double));
    for (int i = 0; i < n; i++) {
        const ab_row *r = &rows[i];
        if (r->v < AB_INDEX || series_of(out, m, r) < m || m == cap) continue;
        cm_shape sh = cm_shape_make(r->C, r->H, r->T);
        sh.decode = r->decode == AB_DECODE;
        cm_variant cv = variant_at(r->v, r->k);
        int an = r->decode == AB_BACKWARD ? -1 : cm_crossover(&sh, &cv, 1 << 20), ns = 0;
        out[m] = (ab_cross){r->v, r->decode, r->C, r->k, -1, an};
        for (int j = i; j < n; j++)
            if (series_of(out + m, 1, &rows[j]) == 0) T[ns] = rows[j].T, sp[ns++] = rows[j].speedup;
        out[m++].measured = xover_series_T(T, sp, ns);
    }
    free(T), free(sp);
    return m;
}

/* ---- CSV ---- */

const char *ab_csv_header(void) {
    return "variant,phase,C,H,T,k,median_s,gflops,speedup_vs_flash,peak_bytes,cpu_pressure_avg10\n";
}

void ab_csv_row_named(const char *name, const ab_row *r, char *buf, size_t n) {
    snprintf(buf, n, "%s,%s,%d,%d,%d,%d,%.6e,%.4f,%.4f,%.0f,%.2f\n", name, ab_phase_name(r->decode), r->C,
             r->H, r->T, r->k, r->median_s, r->gflops, r->speedup, r->peak_bytes, r->pressure);
}

void ab_csv_row(const ab_row *r, char *buf, size_t n) { ab_csv_row_named(ab_variant_name(r->v), r, buf, n); }

int ab_csv_write_with(const char *path, int n, void (*line)(int i, const void *ctx, char *buf, size_t len),
                      const void *ctx, sattn_err *e) {
    afile a;
    if (afile_open(&a, path, e)) return -1;
    const char *h = ab_csv_header();
    if (afile_write(&a, h, strlen(h), e)) return afile_abort(&a), -1;
    for (int i = 0; i < n; i++) {
        char buf[256];
        line(i, ctx, buf, sizeof buf);
        if (afile_write(&a, buf, strlen(buf), e)) return afile_abort(&a), -1;
    }
    return afile_commit(&a, e);
}

static void row_line(int i, const void *ctx, char *buf, size_t len) {
    ab_csv_row((const ab_row *)ctx + i, buf, len);
}

int ab_csv_write(const char *path, const ab_row *rows, int n, sattn_err *e) {
    return ab_csv_write_with(path, n, row_line, rows, e);
}
