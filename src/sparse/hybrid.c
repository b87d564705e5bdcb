/* hybrid: sparse heads inside the model's forward and backward (see hybrid.h). */
#include "sattn/hybrid.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static void hybrid_forward(void *ctx, int layer, float *out, float *att, const float *qkv, int B, int T);
static void hybrid_backward(void *ctx, int layer, float *dqkv, float *scratch, const float *dout,
                            const float *qkv, const float *att, int B, int T);

void hybrid_init(hybrid *hy, const sparse_heads *sh, int C, int H) {
    memset(hy, 0, sizeof *hy);
    hy->sh = sh;
    hy->C = C;
    hy->H = H;
    int n = sh->layers * sh->heads;
    hy->off_i = xcalloc((size_t)n, sizeof(size_t));
    hy->off_f = xcalloc((size_t)n, sizeof(size_t));
    hy->off_p = xcalloc((size_t)n, sizeof(size_t));
    hy->skip = xcalloc((size_t)n, 1);
    hy->dense_in_layer = xcalloc((size_t)sh->layers, 1);
    hy->tile_layer = xcalloc((size_t)sh->layers, 1);
    hy->tsel = xcalloc((size_t)sh->layers, sizeof *hy->tsel);
    hy->tout = xcalloc((size_t)sh->layers, sizeof *hy->tout);
    head_spec *specs = xmalloc((size_t)n * sizeof *specs);
    for (int i = 0; i < n; i++) specs[i] = sh->h[i].spec;
    /* plans and heads files are checked on the way in: a mixed tile layer here is a bug */
    sattn_err err;
    if (sparse_tile_check(specs, sh->layers, sh->heads, &err))
        die_at(__FILE__, __LINE__, "hybrid_init: %s", err.msg);
    for (int l = 0; l < sh->layers; l++) hy->tile_layer[l] = (unsigned char)sparse_tile_layer(specs, l, sh->heads);
    free(specs);
    for (int i = 0; i < n; i++) {
        hy->skip[i] = sh->h[i].spec.sel != SEL_DENSE;
        if (!hy->skip[i]) hy->dense_in_layer[i / sh->heads] = 1;
        hy->off_p[i] = hy->n_params;
        hy->n_params += sh->h[i].n_sel + sh->h[i].n_fn;
    }
    hy->hook = (gpt_attn_hook){hybrid_forward, hybrid_backward, hy};
}

/* Slots per query row of head s in a window of T: the selector's kmax for T, except for
 * an mlp head function, whose input layout (and so its parameters) was made for the
 * width at the heads' max_seq: there a shorter window keeps that width and leaves the
 * slots past count empty, so a query's output does not depend on the window length. */
static int slot_width(const hybrid *hy, const head_spec *s, int T) {
    return s->fn == HFN_MLP ? selector_kmax(s, hy->sh->max_seq) : selector_kmax(s, T);
}

/* Spreads rows of width kt (as the selector wrote them) to width K >= kt, from the last
 * row back so that no row is overwritten before it moves. */
static void widen_rows(int *idx, float *score, int T, int kt, int K) {
    if (kt == K) return;
    for (int t = T - 1; t >= 0; t--) {
        memmove(idx + (size_t)t * K, idx + (size_t)t * kt, (size_t)kt * sizeof *idx);
        memmove(score + (size_t)t * K, score + (size_t)t * kt, (size_t)kt * sizeof *score);
    }
}

/* The buffer layout at batch shape (B, T): per head the offsets into ints and floats (when
 * off_i, off_f are given), and the totals (ints, floats, per-thread selector scratch). */
static void layout(const hybrid *hy, int B, int T, size_t *off_i, size_t *off_f, size_t *ni_out,
                   size_t *nf_out, size_t *work_out) {
    const sparse_heads *sh = hy->sh;
    size_t ni = 0, nf = 0, work = 0;
    for (int i = 0; i < sh->layers * sh->heads; i++) {
        const head_spec *s = &sh->h[i].spec;
        if (off_i) off_i[i] = ni, off_f[i] = nf;
        if (s->sel == SEL_DENSE || s->tile) continue; /* tile heads: the layer's tblock buffers */
        int kmax = slot_width(hy, s, T);
        ni += (size_t)B * T * kmax + (size_t)B * T;
        nf += (size_t)B * T * kmax + (size_t)B * headfn_cache_floats(s, sh->hs, kmax, T);
        size_t w = selector_work_floats(s, sh->hs, T);
        work = w > work ? w : work;
    }
    *ni_out = ni, *nf_out = nf, *work_out = work;
}

/* The tile layers' buffers at (B, T): per tile layer its selection (B H ntiles (n + 1) ints),
 * the lse of every layer (L B H T floats, when any layer is a tile layer), and one backward scratch (the largest layer's): linear in T. */
static void tile_sizes(const hybrid *hy, int B, int T, size_t *ints, size_t *floats, size_t *scratch) {
    const sparse_heads *sh = hy->sh;
    *ints = *floats = *scratch = 0;
    for (int l = 0; l < sh->layers; l++) {
        if (!hy->tile_layer[l]) continue;
        const head_spec *s = &sh->h[(size_t)l * sh->heads].spec;
        size_t nt = ((size_t)T + s->block - 1) / s->block;
        size_t n = (size_t)s->nblocks < nt ? (size_t)s->nblocks : nt;
        *ints += (size_t)B * hy->H * nt * (n + 1);
        *floats = (size_t)sh->layers * B * hy->H * T; /* lse indexed by layer (hybrid_size) */
        tblock_sel probe = {B, hy->H, T, s->block, (int)n, (int)nt, NULL, NULL};
        size_t sc = tblock_scratch_floats(&probe, hy->C);
        if (sc > *scratch) *scratch = sc;
    }
}

double hybrid_mem_bytes(const hybrid *hy, int B, int T, int threads) {
    size_t ni, nf, work, ti, tf, ts;
    layout(hy, B, T, NULL, NULL, &ni, &nf, &work);
    tile_sizes(hy, B, T, &ti, &tf, &ts);
    return (double)(ni + ti + 1) * sizeof(int) + (double)(nf + tf + ts + 1) * sizeof(float) +
           ((double)threads * work + 1) * sizeof(float) + (double)(hy->n_params + 1) * 3 * sizeof(float);
}

int hybrid_all_sparse(const sparse_heads *sh) {
    for (int i = 0; i < sh->layers * sh->heads; i++)
        if (sh->h[i].spec.sel == SEL_DENSE) return 0;
    return 1;
}

/* Lays out selection and cache buffers for batch shape (B, T). */
static void hybrid_size(hybrid *hy, int B, int T) {
    if (hy->ints && hy->B == B && hy->T == T) return;
    size_t ni, nf, work;
    layout(hy, B, T, hy->off_i, hy->off_f, &ni, &nf, &work);
    free(hy->ints), free(hy->floats), free(hy->work);
    hy->ints = xmalloc((ni + 1) * sizeof(int));
    hy->floats = xmalloc_aligned((nf + 1) * sizeof(float));
    hy->work_per_thread = work;
    hy->work = xmalloc_aligned(((size_t)omp_get_max_threads() * work + 1) * sizeof(float));
    hy->B = B, hy->T = T;
    const sparse_heads *sh = hy->sh;
    free(hy->tlse), free(hy->tscratch);
    hy->tlse = hy->tscratch = NULL;
    size_t ti, tf, ts;
    tile_sizes(hy, B, T, &ti, &tf, &ts);
    if (!tf) return;
    hy->tlse = xmalloc_aligned(((size_t)sh->layers * B * hy->H * T + 1) * sizeof(float));
    hy->tscratch = xmalloc_aligned((ts + 1) * sizeof(float));
    for (int l = 0; l < sh->layers; l++) {
        if (!hy->tile_layer[l]) continue;
        const head_spec *s = &sh->h[(size_t)l * sh->heads].spec;
        tblock_sel_free(&hy->tsel[l]);
        sattn_err e;
        if (tblock_sel_init(&hy->tsel[l], B, hy->H, T, s->block, s->nblocks, &e))
            die_at(__FILE__, __LINE__, "hybrid: layer %d: %s", l, e.msg);
    }
}

/* Buffers of sparse head i (= l*H + h) for batch row b. */
typedef struct {
    int kmax, *idx, *count;
    float *score, *cache;
} head_bufs;

static head_bufs bufs_of(const hybrid *hy, int i, int b) {
    const head_spec *s = &hy->sh->h[i].spec;
    int T = hy->T, kmax = slot_width(hy, s, T);
    size_t cache = headfn_cache_floats(s, hy->sh->hs, kmax, T);
    int *ib = hy->ints + hy->off_i[i];
    float *fb = hy->floats + hy->off_f[i];
    head_bufs r = {kmax, ib + (size_t)b * T * kmax, ib + (size_t)hy->B * T * kmax + (size_t)b * T,
                   fb + (size_t)b * T * kmax, fb + (size_t)hy->B * T * kmax + (size_t)b * cache};
    return r;
}

const int *hybrid_idx(const hybrid *hy, int l, int h, int b, int *kmax, const int **count) {
    if (hy->tile_layer[l])
        die_at(__FILE__, __LINE__, "hybrid_idx: layer %d is tile-shared (tile=1): its selection is "
                                   "per tile (hy->tsel), not per query", l);
    head_bufs r = bufs_of(hy, l * hy->H + h, b);
    *kmax = r.kmax;
    *count = r.count;
    return r.idx;
}

void hybrid_timers_split(hybrid_timers *tm, double wall, double sel, double fn) {
    if (sel + fn <= 0.0) return;
    tm->select_s += wall * sel / (sel + fn);
    tm->head_s += wall * fn / (sel + fn);
}

/* Hybrid by length: a sequence shorter than the threshold runs every head dense. */
static int dense_by_length(const hybrid *hy, int T) { return T < hy->dense_below; }

static void hybrid_forward(void *ctx, int layer, float *out, float *att, const float *qkv, int B, int T) {
    hybrid *hy = ctx;
    const sparse_heads *sh = hy->sh;
    int C = hy->C, H = hy->H, hs = sh->hs;
    if (!att && (dense_by_length(hy, T) || hy->dense_in_layer[layer]))
        die_at(__FILE__, __LINE__, "hybrid: layer %d has dense heads to run but the model has no T x T "
                                   "buffer (GPT_ATTN_HOOK is for all-sparse plans at every length)", layer);
    if (dense_by_length(hy, T)) {
        /* the very call the dense model makes, so the numbers are bitwise the dense
         * model's; no sparse buffers are sized */
        attention_forward(out, att, qkv, B, T, C, H);
        hy->fwd_dense++;
        return;
    }
    hy->fwd_sparse++;
    hybrid_size(hy, B, T);
    if (hy->tile_layer[layer]) {
        /* all heads at once, flash's shapes: out (B,T,C), lse (B,H,T) kept for the backward */
        tblock_sel *s = &hy->tsel[layer];
        double t0 = time_now();
        tblock_select(s, qkv, C);
        double t1 = time_now();
        tblock_forward(out, hy->tlse + (size_t)layer * B * H * T, qkv, C, s);
        hy->tm.select_s += t1 - t0, hy->tm.head_s += time_now() - t1;
        hy->tout[layer] = out;
        return;
    }
    if (hy->dense_in_layer[layer]) attention_forward_skip(out, att, qkv, B, T, C, H, hy->skip + layer * H);
    double sel = 0.0, fn = 0.0, w0 = time_now(); /* thread-seconds, to split the wall time */
#pragma omp parallel for collapse(2) schedule(dynamic) reduction(+ : sel, fn)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int i = layer * H + h;
            if (!hy->skip[i]) continue;
            const sparse_head *sp = &sh->h[i];
            head_bufs r = bufs_of(hy, i, b);
            const float *q = qkv + (size_t)b * T * 3 * C + h * hs;
            float *w = hy->work + (size_t)omp_get_thread_num() * hy->work_per_thread;
            double t0 = time_now();
            selector_select(&sp->spec, sp->params, hs, sh->max_seq, q, q + C, 3 * C, T, r.idx,
                            r.score, r.count, w);
            widen_rows(r.idx, r.score, T, selector_kmax(&sp->spec, T), r.kmax);
            double t1 = time_now();
            headfn_forward(&sp->spec, sp->params + sp->n_sel, hs, r.kmax, q, q + C, q + 2 * C,
                           3 * C, T, r.idx, r.count, out + (size_t)b * T * C + h * hs, C, r.cache);
            sel += t1 - t0, fn += time_now() - t1;
        }
    hybrid_timers_split(&hy->tm, time_now() - w0, sel, fn);
}

/* Parallel over heads, serial over batch rows: each head's parameter gradient is
 * then summed in a fixed order without races. */
static void hybrid_backward(void *ctx, int layer, float *dqkv, float *scratch, const float *dout,
                            const float *qkv, const float *att, int B, int T) {
    hybrid *hy = ctx;
    const sparse_heads *sh = hy->sh;
    int C = hy->C, H = hy->H, hs = sh->hs;
    if (dense_by_length(hy, T)) { /* the forward ran every head dense (same T) */
        attention_backward(dqkv, scratch, dout, qkv, att, B, T, C, H);
        return;
    }
    if (hy->tile_layer[layer]) {
        /* the forward of this layer at this (B, T) ran just before (the model's order) */
        if (!hy->tout[layer] || hy->B != B || hy->T != T)
            die_at(__FILE__, __LINE__, "hybrid: layer %d backward without its tile forward at B=%d T=%d",
                   layer, B, T);
        double t0 = time_now();
        tblock_backward(dqkv, dout, qkv, hy->tout[layer], hy->tlse + (size_t)layer * B * H * T, C,
                        &hy->tsel[layer], hy->tscratch);
        hy->tm.head_bwd_s += time_now() - t0;
        return;
    }
    if (hy->dense_in_layer[layer])
        attention_backward_skip(dqkv, scratch, dout, qkv, att, B, T, C, H, hy->skip + layer * H);
    double t0 = time_now();
#pragma omp parallel for schedule(dynamic)
    for (int h = 0; h < H; h++) {
        int i = layer * H + h;
        if (!hy->skip[i]) continue;
        const sparse_head *sp = &sh->h[i];
        float *dp = hy->dparams ? hy->dparams + hy->off_p[i] + sp->n_sel : NULL;
        for (int b = 0; b < B; b++) {
            head_bufs r = bufs_of(hy, i, b);
            size_t row = (size_t)b * T * 3 * C + h * hs;
            const float *q = qkv + row;
            float *dq = dqkv + row;
            headfn_backward(&sp->spec, sp->params + sp->n_sel, dp, hs, r.kmax, q, q + C, q + 2 * C,
                            3 * C, dq, dq + C, dq + 2 * C, T, r.idx, r.count,
                            dout + (size_t)b * T * C + h * hs, C, r.cache);
        }
    }
    hy->tm.head_bwd_s += time_now() - t0;
}

void hybrid_attach(hybrid *hy, gpt_model *m) { m->attn = &hy->hook; }

void hybrid_detach(gpt_model *m) { m->attn = NULL; }

void hybrid_enable_param_grads(hybrid *hy) {
    if (!hy->dparams) hy->dparams = xcalloc(hy->n_params + 1, sizeof(float));
}

void hybrid_set_dense_below(hybrid *hy, int dense_below) {
    hy->dense_below = dense_below > 0 ? dense_below : 0;
}

void hybrid_free(hybrid *hy) {
    if (hy->tsel)
        for (int l = 0; l < hy->sh->layers; l++) tblock_sel_free(&hy->tsel[l]);
    free(hy->tile_layer), free(hy->tsel), free(hy->tout), free(hy->tlse), free(hy->tscratch);
    free(hy->off_i), free(hy->off_f), free(hy->off_p), free(hy->skip), free(hy->dense_in_layer);
    free(hy->ints), free(hy->floats), free(hy->work), free(hy->dparams);
    memset(hy, 0, sizeof *hy);
}
