/* hybrid_decode: sparse heads decoding from incremental state (hybrid_decode.h). */
#include "sattn/hybrid_decode.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/flash.h"
#include "sattn/sparse_decode.h"
#include "sattn/tblock.h"

static void hdec_decode(void *ctx, int layer, float *out, const float *q, const float *kc, const float *vc, int T);
static void hdec_prefilled(void *ctx, int layer, const float *q, int ldq, const float *kc, const float *vc, int T);
static int hdec_stale(void *ctx, int T);

/* Floats of one head's incremental state for a cache of cap rows. */
static size_t side_floats(const head_spec *s, int hs, int cap) {
    if (s->sel == SEL_BLOCK) return ((size_t)cap / (size_t)s->block + 1) * 2 * (size_t)hs;
    if (s->sel == SEL_INDEX) return (size_t)cap * (size_t)s->rank;
    return 0;
}

/* Scratch of one step at the longest window: the selection's work, then the head
 * function's cache (softmax weights, or the mlp's input and hidden rows). */
static size_t step_floats(const head_spec *s, int hs, int cap, int max_seq) {
    size_t w = s->sel == SEL_BLOCK   ? sparse_decode_block_work(s, cap)
               : s->sel == SEL_INDEX ? sparse_decode_index_work(s, cap)
                                     : sparse_decode_pos_work(s, cap);
    int km = selector_kmax(s, s->fn == HFN_MLP && max_seq > cap ? max_seq : cap);
    return w + headfn_cache_floats(s, hs, km, 1);
}

/* A tile layer's state for a cache of cap rows (hdec_tile; spec: its heads' b and n). */
static void tile_init(hdec_tile *st, const sparse_heads *sh, int l, int C, int H, int cap) {
    const head_spec *s = &sh->h[(size_t)l * sh->heads].spec;
    size_t nb = (size_t)cap / (size_t)s->block + 1;
    st->b = s->block, st->n = s->nblocks, st->tile = -1;
    st->q = xmalloc_aligned(((size_t)cap * C + nb * C + C + nb + (size_t)st->n + (s->cmp ? nb * C : 0)) * sizeof(float));
    st->kbar = st->q + (size_t)cap * C;
    st->scratch = st->kbar + nb * C;
    st->vbar = s->cmp ? st->scratch + C + nb + st->n : NULL;
    st->gate = s->cmp ? xmalloc((size_t)H * sizeof *st->gate) : NULL;
    for (int h = 0; s->cmp && h < H; h++) {
        const sparse_head *sp = &sh->h[(size_t)l * sh->heads + h];
        st->gate[h] = sp->params + sp->n_sel;
    }
    st->kept = xmalloc(((size_t)H * st->n + H + st->n) * sizeof(int));
    st->count = st->kept + (size_t)H * st->n, st->ix = st->count + H;
}

static void tile_free(hdec_tile *st) {
    free(st->q), free(st->kept), free(st->gate);
    memset(st, 0, sizeof *st);
}

void hdec_init(hdec *d, const hybrid *hy, int cap) {
    const sparse_heads *sh = hy->sh;
    int n = sh->layers * sh->heads;
    memset(d, 0, sizeof *d);
    d->hy = hy, d->cap = cap, d->max_seq = sh->max_seq;
    d->off_side = xcalloc((size_t)n, sizeof(size_t));
    d->nside = xcalloc((size_t)n, sizeof(int));
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        const head_spec *s = &sh->h[i].spec;
        d->off_side[i] = total;
        if (s->sel == SEL_DENSE || s->tile) continue; /* tile heads: the layer's hdec_tile */
        total += side_floats(s, sh->hs, cap);
        size_t w = step_floats(s, sh->hs, cap, sh->max_seq);
        d->work_per_thread = w > d->work_per_thread ? w : d->work_per_thread;
        int km = selector_kmax(s, cap);
        d->kmax_cap = km > d->kmax_cap ? km : d->kmax_cap;
    }
    d->tile = xcalloc((size_t)sh->layers, sizeof *d->tile);
    for (int l = 0; l < sh->layers; l++) {
        if (!hy->tile_layer[l]) continue;
        tile_init(&d->tile[l], sh, l, hy->C, hy->H, cap);
        size_t w = sparse_decode_tile_work(d->tile[l].b, d->tile[l].n);
        d->work_per_thread = w > d->work_per_thread ? w : d->work_per_thread;
    }
    int nt = omp_get_max_threads();
    d->side = xmalloc_aligned((total + 1) * sizeof(float));
    d->work = xmalloc_aligned(((size_t)nt * d->work_per_thread + 1) * sizeof(float));
    d->idx = xmalloc(((size_t)nt * (size_t)d->kmax_cap + 1) * sizeof(int));
    d->hook = (gen_decode_hook){hdec_decode, hdec_prefilled, hdec_stale, d};
}

void hdec_free(hdec *d) {
    if (d->tile)
        for (int l = 0; l < d->hy->sh->layers; l++) tile_free(&d->tile[l]);
    free(d->tile);
    free(d->off_side), free(d->nside), free(d->side), free(d->work), free(d->idx);
    memset(d, 0, sizeof *d);
}

/* Whether the window of T tokens runs the sparse heads (hybrid by length). */
static int sparse_at(const hdec *d, int T) { return T >= d->hy->dense_below; }

/* Brings head i's state up to the T cached keys k (its columns, row stride ld). */
static void side_update(hdec *d, int i, const float *k, int ld, int T) {
    const sparse_head *sp = &d->hy->sh->h[i];
    const head_spec *s = &sp->spec;
    int hs = d->hy->sh->hs, have = d->nside[i];
    float *side = d->side + d->off_side[i];
    if (s->sel == SEL_BLOCK && have < T / s->block) {
        selector_block_summaries(s, hs, k + (size_t)have * s->block * ld, ld, T / s->block - have,
                                 side + (size_t)have * 2 * hs);
        d->nside[i] = T / s->block;
    } else if (s->sel == SEL_INDEX && have < T) {
        sparse_decode_index_side(s, sp->params, hs, k + (size_t)have * ld, ld, T - have,
                                 side + (size_t)have * s->rank);
        d->nside[i] = T;
    }
}

/* Sparse head i's output o (hs) for the query q against the layer's cache (rows 0..T-1):
 * the selection from its state, then its head function on the selected rows. */
static void head_step(hdec *d, int i, float *o, const float *q, const float *k, const float *v, int ld, int T,
                      float *w, int *idx, double *sel_s, double *fn_s) {
    double t0 = time_now();
    const sparse_head *sp = &d->hy->sh->h[i];
    const head_spec *s = &sp->spec;
    int hs = d->hy->sh->hs, c;
    const float *side = d->side + d->off_side[i];
    size_t wsel;
    if (s->sel == SEL_BLOCK) {
        c = sparse_decode_block_select(s, hs, q, T, side, idx, w, NULL);
        wsel = sparse_decode_block_work(s, T);
    } else if (s->sel == SEL_INDEX) {
        c = sparse_decode_index_select(s, sp->params, hs, q, T, side, idx, w, NULL);
        wsel = sparse_decode_index_work(s, T);
    } else {
        c = sparse_decode_pos_select(s, sp->params, hs, d->max_seq, q, T, idx, w);
        wsel = sparse_decode_pos_work(s, T);
    }
    /* softmax: over the c selected keys, as sparse_decode's steps (kmax = c); mlp: the
     * input width it was trained with (hybrid.c's slot width at the heads' max_seq) */
    int kmax = s->fn == HFN_MLP ? selector_kmax(s, d->hy->sh->max_seq) : c;
    double t1 = time_now();
    headfn_forward(s, sp->params + sp->n_sel, hs, kmax, q, k, v, ld, 1, idx, &c, o, hs, w + wsel);
    *sel_s += t1 - t0, *fn_s += time_now() - t1;
}

/* Tile i's kept blocks per head, as tblock_select chooses them: blocks 0 .. i-1 summarised
 * (kbar_j = the mean of cached key rows j b .. j b + b - 1), qbar = the mean of the queries
 * (i-1) b .. i b - 1, then tblock_select_tile per head on its hs columns. */
static void tile_choose(hdec_tile *st, const float *kc, const float *vc, int C, int H, int i) {
    int hs = C / H, b = st->b;
    for (; st->nk < i; st->nk++) {
        tblock_mean_rows(st->kbar + (size_t)st->nk * C, kc + (size_t)st->nk * b * C, (size_t)C, b, C);
        if (st->vbar) tblock_mean_rows(st->vbar + (size_t)st->nk * C, vc + (size_t)st->nk * b * C, (size_t)C, b, C);
    }
    float *qbar = st->scratch, *row = qbar + C, *sc = row + i + 1;
    if (i > 0) tblock_mean_rows(qbar, st->q + (size_t)(i - 1) * b * C, (size_t)C, b, C);
    for (int h = 0; h < H; h++)
        st->count[h] = tblock_select_tile(st->kept + (size_t)h * st->n, i, st->n, qbar + h * hs, st->kbar + h * hs,
                                          (size_t)C, hs, row, sc, st->ix);
    st->tile = i;
}

/* A tile layer's step at t = T-1: the query kept as row t, the tile's selection when it
 * starts (or after a prefill or rewind), then each head over its kept blocks. */
static void tile_decode(hdec *d, int layer, float *out, const float *q, const float *kc, const float *vc, int T) {
    hdec_tile *st = &d->tile[layer];
    int C = d->hy->C, H = d->hy->H, hs = C / H, i = (T - 1) / st->b;
    memcpy(st->q + (size_t)(T - 1) * C, q, (size_t)C * sizeof(float));
    st->nq = T;
    double t0 = time_now();
    if (st->tile != i) tile_choose(st, kc, vc, C, H, i);
    double t1 = time_now();
    /* a team only for long rows: waking one costs more than n b hs = 32K multiply-adds a head
     * (generate.c's DECODE_THREADED_MACS) */
#pragma omp parallel for schedule(static) if ((size_t)H * st->n * st->b * hs >= (1u << 21))
    for (int h = 0; h < H; h++)
        sparse_decode_tile(hs, q + h * hs, kc + h * hs, vc + h * hs, C, T, st->b, st->kept + (size_t)h * st->n,
                           st->count[h], out + h * hs, d->work + (size_t)omp_get_thread_num() * d->work_per_thread);
    /* NSA's compressed branch (cmp=1): the pooled blocks before tile i, gated (tcmp.h) */
    for (int h = 0; st->vbar && h < H; h++)
        tcmp_decode(out + h * hs, q + h * hs, st->kbar + h * hs, st->vbar + h * hs, (size_t)C, i, hs, st->gate[h],
                    st->scratch + C);
    d->tm.select_s += t1 - t0, d->tm.head_s += time_now() - t1;
}

static void hdec_decode(void *ctx, int layer, float *out, const float *q, const float *kc, const float *vc, int T) {
    hdec *d = ctx;
    const hybrid *hy = d->hy;
    int C = hy->C, H = hy->H, hs = hy->sh->hs;
    hdec_tile *st = &d->tile[layer];
    if (!sparse_at(d, T)) {
        if (st->q) memcpy(st->q + (size_t)(T - 1) * C, q, (size_t)C * sizeof(float)), st->nq = T;
        attention_decode_step(out, q, kc, vc, T, C, H);
        d->steps_dense++;
        return;
    }
    d->steps_sparse++;
    if (st->q) {
        tile_decode(d, layer, out, q, kc, vc, T);
        return;
    }
    const unsigned char *skip = hy->skip + (size_t)layer * H;
    attention_decode_step_skip(out, q, kc, vc, T, C, H, skip, NULL);
    int nsparse = 0;
    for (int h = 0; h < H; h++) nsparse += skip[h];
    double sel = 0.0, fn = 0.0, w0 = time_now(); /* thread-seconds, to split the wall time */
#pragma omp parallel for schedule(dynamic) if ((size_t)nsparse * T * hs > 32768) reduction(+ : sel, fn)
    for (int h = 0; h < H; h++) {
        if (!skip[h]) continue;
        int i = layer * H + h, t = omp_get_thread_num();
        double t0 = time_now();
        side_update(d, i, kc + h * hs, C, T);
        sel += time_now() - t0;
        head_step(d, i, out + h * hs, q + h * hs, kc + h * hs, vc + h * hs, C, T,
                  d->work + (size_t)t * d->work_per_thread, d->idx + (size_t)t * d->kmax_cap, &sel, &fn);
    }
    hybrid_timers_split(&d->tm, time_now() - w0, sel, fn);
}

/* A tile layer after a prefill (its queries q, row stride ldq) or a rewind (q NULL: the
 * rows kept before). The mean keys are recomputed lazily from the cache, the selection at
 * the next step. */
static void tile_prefilled(hdec_tile *st, int layer, const float *q, int ldq, int C, int T) {
    if (q)
        for (int t = 0; t < T; t++) memcpy(st->q + (size_t)t * C, q + (size_t)t * ldq, (size_t)C * sizeof(float));
    else if (st->nq < T)
        die_at(__FILE__, __LINE__, "hybrid decode: layer %d is tile-shared (tile=1): a rewind to %d positions "
                                   "needs their queries, and this hook was given %d (prefill with it first)",
               layer, T, st->nq);
    st->nq = T, st->nk = 0, st->tile = -1;
}

static void hdec_prefilled(void *ctx, int layer, const float *q, int ldq, const float *kc, const float *vc, int T) {
    hdec *d = ctx;
    const hybrid *hy = d->hy;
    int H = hy->H, hs = hy->sh->hs;
    d->mode = sparse_at(d, T);
    if (d->tile[layer].q) {
        tile_prefilled(&d->tile[layer], layer, q, ldq, hy->C, T);
        return;
    }
    for (int h = 0; h < H; h++) {
        int i = layer * H + h;
        d->nside[i] = 0;
        if (hy->skip[i] && d->mode) side_update(d, i, kc + h * hs, hy->C, T);
    }
}

static int hdec_stale(void *ctx, int T) {
    const hdec *d = ctx;
    return sparse_at(d, T) != d->mode;
}
