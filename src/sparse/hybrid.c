/* hybrid: sparse heads inside the model's forward and backward (see hybrid.h). */
#include "sattn/hybrid.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static void hybrid_forward(void *ctx, int layer, float *out, float *att, const float *qkv, int B, int T);
static void hybrid_backward(void *ctx, int layer, float *dqkv, float *scratch, const float *dout,
                            const float *qkv, const float *att, int B, int T);

/* The shared-indexer layers and their layer-layout parameter buffer. */
static void shared_init(hybrid *hy, const head_spec *specs) {
    const sparse_heads *sh = hy->sh;
    size_t n = 0;
    hy->shared_layer = xcalloc((size_t)sh->layers, 1);
    hy->lix_off = xcalloc((size_t)sh->layers, sizeof(size_t));
    for (int l = 0; l < sh->layers; l++) {
        hy->lix_off[l] = n;
        if (!sparse_shared_layer(specs, l, sh->heads)) continue;
        hy->shared_layer[l] = 1;
        lindex_dims d = lindex_dims_of(&specs[(size_t)l * sh->heads], sh->heads, sh->hs);
        n += lindex_param_count(&d);
    }
    hy->lix_w = xmalloc((n + 1) * sizeof(float));
}

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
    if (sparse_tile_check(specs, sh->layers, sh->heads, &err) ||
        sparse_shared_check(specs, sh->layers, sh->heads, &err))
        die_at(__FILE__, __LINE__, "hybrid_init: %s", err.msg);
    shared_init(hy, specs);
    hy->cmp_layer = xcalloc((size_t)sh->layers, 1);
    for (int l = 0; l < sh->layers; l++) {
        hy->tile_layer[l] = (unsigned char)sparse_tile_layer(specs, l, sh->heads);
        hy->cmp_layer[l] = hy->tile_layer[l] && specs[(size_t)l * sh->heads].cmp; /* the layer's heads agree */
    }
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
static int slot_width(const hybrid *hy, const head_spec *s, int T) { return headfn_slot_width(s, T, hy->sh->max_seq); }

/* The head whose buffers hold head i's selection: head 0 of a shared-indexer layer (one
 * selection for the layer), else i itself. Its selection buffers come first in its ints
 * and floats, the cache after them (layout, bufs_of). */
static int sel_owner(const hybrid *hy, int i) {
    int H = hy->sh->heads;
    return hy->shared_layer && hy->shared_layer[i / H] ? i / H * H : i;
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
        int kmax = slot_width(hy, s, T), owns = sel_owner(hy, i) == i;
        ni += owns ? (size_t)B * T * kmax + (size_t)B * T : 0;
        nf += (owns ? (size_t)B * T * kmax : 0) + (size_t)B * headfn_cache_floats(s, sh->hs, kmax, T);
        size_t w = s->shared ? lindex_work_floats(&(lindex_dims){sh->heads, sh->hs, sh->heads * sh->hs,
                                                                 s->rank, s->iheads}, T)
                             : selector_work_floats(s, sh->hs, T);
        work = w > work ? w : work;
    }
    *ni_out = ni, *nf_out = nf, *work_out = work;
}

/* The tile layers' buffers at (B, T): per tile layer its selection (B H ntiles (n + 1) ints),
 * the lse of every layer (L B H T floats, when any layer is a tile layer), and one backward scratch (the largest layer's): linear in T. */
static void tile_sizes(const hybrid *hy, int B, int T, size_t *ints, size_t *floats, size_t *scratch) {
    const sparse_heads *sh = hy->sh;
    *ints = *floats = *scratch = 0;
    size_t cmp = 0;
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
        if (!hy->cmp_layer[l]) continue;
        size_t cs = tcmp_scratch_floats(B, T, hy->C, hy->H, s->block) + (size_t)B * T * hy->C;
        cmp = cs > cmp ? cs : cmp;
    }
    if (cmp) *floats += (size_t)sh->layers * tcmp_cache_floats(B, T, hy->C, hy->H) + cmp;
}

/* tcmp's scratch then o_sel, for the largest cmp layer at (B, T) (0: none). */
static size_t cmp_scratch(const hybrid *hy, int B, int T) {
    size_t m = 0;
    for (int l = 0; l < hy->sh->layers; l++) {
        if (!hy->cmp_layer[l]) continue;
        size_t cs = tcmp_scratch_floats(B, T, hy->C, hy->H, hy->sh->h[(size_t)l * hy->sh->heads].spec.block) +
                    (size_t)B * T * hy->C;
        m = cs > m ? cs : m;
    }
    return m;
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
    free(hy->tlse), free(hy->tscratch), free(hy->tcache), free(hy->cscratch);
    hy->tlse = hy->tscratch = hy->tcache = hy->cscratch = NULL;
    size_t ti, tf, ts;
    tile_sizes(hy, B, T, &ti, &tf, &ts);
    if (!tf) return;
    hy->tlse = xmalloc_aligned(((size_t)sh->layers * B * hy->H * T + 1) * sizeof(float));
    hy->tscratch = xmalloc_aligned((ts + 1) * sizeof(float));
    size_t cs = cmp_scratch(hy, B, T);
    if (cs) {
        hy->tcache = xmalloc_aligned(((size_t)sh->layers * tcmp_cache_floats(B, T, hy->C, hy->H) + 1) * sizeof(float));
        hy->cscratch = xmalloc_aligned((cs + 1) * sizeof(float));
    }
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
    int o = sel_owner(hy, i);
    int *ib = hy->ints + hy->off_i[o];
    float *fb = hy->floats + hy->off_f[o], *cb = hy->floats + hy->off_f[i];
    size_t sel_f = o == i ? (size_t)hy->B * T * kmax : 0; /* i's own selection floats */
    head_bufs r = {kmax, ib + (size_t)b * T * kmax, ib + (size_t)hy->B * T * kmax + (size_t)b * T,
                   fb + (size_t)b * T * kmax, cb + sel_f + (size_t)b * cache};
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

/* Layer l's compressed-branch gate parameters per head, and where their gradients go (dp
 * NULL when the parameters do not train). Arrays of H pointers, malloc'd. */
static const float **cmp_params(const hybrid *hy, int l, float ***dp) {
    const sparse_heads *sh = hy->sh;
    const float **pp = xmalloc((size_t)hy->H * sizeof *pp);
    *dp = hy->dparams ? xmalloc((size_t)hy->H * sizeof **dp) : NULL;
    for (int h = 0; h < hy->H; h++) {
        size_t i = (size_t)l * hy->H + h;
        pp[h] = sh->h[i].params + sh->h[i].n_sel;
        if (*dp) (*dp)[h] = hy->dparams + hy->off_p[i] + sh->h[i].n_sel;
    }
    return pp;
}

static float *cmp_cache(const hybrid *hy, int l) {
    return hy->tcache + (size_t)l * tcmp_cache_floats(hy->B, hy->T, hy->C, hy->H);
}

/* A tile layer's forward: tblock over all heads (out (B,T,C), lse (B,H,T) kept for the
 * backward), then with cmp out += g c. */
static void tile_forward(hybrid *hy, int layer, float *out, const float *qkv, int B, int T) {
    tblock_sel *s = &hy->tsel[layer];
    double t0 = time_now();
    tblock_select(s, qkv, hy->C);
    double t1 = time_now();
    tblock_forward(out, hy->tlse + (size_t)layer * B * hy->H * T, qkv, hy->C, s);
    hy->tout[layer] = out;
    if (hy->cmp_layer[layer]) {
        float **dp;
        const float **pp = cmp_params(hy, layer, &dp);
        tcmp_forward(out, cmp_cache(hy, layer), qkv, B, T, hy->C, hy->H, s->b, pp);
        free(pp), free(dp);
    }
    hy->tm.select_s += t1 - t0, hy->tm.head_s += time_now() - t1;
}

/* Its backward: tcmp's (into dqkv and the gates' gradients) on the layer's dout, then
 * tblock's with o_sel = out - g c, the selected branch's own output. */
static void tile_backward(hybrid *hy, int layer, float *dqkv, const float *dout, const float *qkv, int B, int T) {
    const float *osel = hy->tout[layer];
    if (hy->cmp_layer[layer]) {
        float **dp;
        const float **pp = cmp_params(hy, layer, &dp);
        float *c = cmp_cache(hy, layer), *o = hy->cscratch + tcmp_scratch_floats(B, T, hy->C, hy->H, hy->tsel[layer].b);
        tcmp_backward(dqkv, dp, dout, qkv, c, B, T, hy->C, hy->H, hy->tsel[layer].b, pp, hy->cscratch);
        tcmp_remove(o, hy->tout[layer], c, B, T, hy->C, hy->H);
        osel = o;
        free(pp), free(dp);
    }
    tblock_backward(dqkv, dout, qkv, osel, hy->tlse + (size_t)layer * B * hy->H * T, hy->C, &hy->tsel[layer],
                    hy->tscratch);
}

void hybrid_timers_split(hybrid_timers *tm, double wall, double sel, double fn) {
    if (sel + fn <= 0.0) return;
    tm->select_s += wall * sel / (sel + fn);
    tm->head_s += wall * fn / (sel + fn);
}

/* Hybrid by length: a sequence shorter than the threshold runs every head dense. */
static int dense_by_length(const hybrid *hy, int T) { return T < hy->dense_below; }

/* A shared-indexer layer: one lindex_select per batch row on the layer's C-wide q, k (into
 * head 0's buffers), then every head's exact softmax over that selection. */
static void shared_forward(hybrid *hy, int layer, float *out, const float *qkv, int B, int T) {
    const sparse_heads *sh = hy->sh;
    int C = hy->C, H = hy->H, hs = sh->hs;
    const head_spec *s = &sh->h[(size_t)layer * H].spec;
    lindex_dims d = lindex_dims_of(s, H, hs);
    float *w = hy->lix_w + hy->lix_off[layer];
    lindex_gather(sh, layer, w);
#pragma omp parallel for schedule(dynamic)
    for (int b = 0; b < B; b++) {
        head_bufs r = bufs_of(hy, layer * H, b);
        const float *q = qkv + (size_t)b * T * 3 * C;
        float *wk = hy->work + (size_t)omp_get_thread_num() * hy->work_per_thread;
        lindex_select(s, &d, w, q, q + C, 3 * C, T, r.idx, r.score, r.count, wk, hy->lix_prec, NULL);
    }
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const sparse_head *sp = &sh->h[(size_t)layer * H + h];
            head_bufs r = bufs_of(hy, layer * H + h, b);
            const float *q = qkv + (size_t)b * T * 3 * C + h * hs;
            headfn_forward(&sp->spec, sp->params + sp->n_sel, hs, r.kmax, q, q + C, q + 2 * C, 3 * C, T,
                           r.idx, r.count, out + (size_t)b * T * C + h * hs, C, r.cache);
        }
}

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
        tile_forward(hy, layer, out, qkv, B, T);
        return;
    }
    if (hy->shared_layer[layer]) {
        shared_forward(hy, layer, out, qkv, B, T);
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
            selector_widen_rows(r.idx, r.score, T, selector_kmax(&sp->spec, T), r.kmax);
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
        tile_backward(hy, layer, dqkv, dout, qkv, B, T);
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

int hybrid_decode_check(const sparse_heads *sh, sattn_err *e) {
    for (int i = 0; i < sh->layers * sh->heads; i++) {
        if (sh->h[i].spec.shared)
            return err_set(e, "head L%dH%d has shared=1 (one indexer per layer): cached decoding is "
                              "not implemented for it yet; expected a plan without shared=1 to sample",
                           i / sh->heads, i % sh->heads);
    }
    return 0;
}

void hybrid_free(hybrid *hy) {
    if (hy->tsel)
        for (int l = 0; l < hy->sh->layers; l++) tblock_sel_free(&hy->tsel[l]);
    free(hy->shared_layer), free(hy->lix_w), free(hy->lix_off);
    free(hy->tile_layer), free(hy->tsel), free(hy->tout), free(hy->tlse), free(hy->tscratch);
    free(hy->cmp_layer), free(hy->tcache), free(hy->cscratch);
    free(hy->off_i), free(hy->off_f), free(hy->off_p), free(hy->skip), free(hy->dense_in_layer);
    free(hy->ints), free(hy->floats), free(hy->work), free(hy->dparams);
    memset(hy, 0, sizeof *hy);
}
