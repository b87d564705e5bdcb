/* spec: head_spec defaults, range checks and text form, and the per-model set
 * of sparse heads (allocation and initialisation of their parameters).
 *
 * The text form is the one plans use (sattn/plan.h): "dense" or
 * "SEL+FN:opt=value,...", listing only the options that matter to that
 * selector and head function, so plan_parse reads back exactly what was shown. */
#include "sattn/sparse.h"

#include "sattn/lindex.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BLOCK_KEYS (1 << 24)

head_spec head_spec_default(void) {
    return (head_spec){.sel = SEL_DENSE, .fn = HFN_SOFTMAX, .k = 16, .k_min = 1, .tau = 0.0f,
                       .rank = 16, .iheads = 4, .block = 16, .nblocks = 4, .bounds = 0, .tile = 0,
                       .cmp = 0, .shared = 0, .hidden = 128, .mlp_q = 1, .mlp_logits = 1};
}

/* One integer field against [lo, hi]; the name is the plan option and what it means. */
static int check_int(int v, int lo, int hi, const char *name, sattn_err *e) {
    if (v < lo || v > hi) return err_set(e, "%s = %d out of range, expected %d..%d", name, v, lo, hi);
    return 0;
}

static int check_sizes(const head_spec *s, sattn_err *e) {
    if (check_int(s->k, 1, 65536, "k (keys per query)", e)) return -1;
    if (s->k_min < 1 || s->k_min > s->k)
        return err_set(e, "kmin (dynamic-k minimum) = %d out of range, expected 1..%d (k)",
                       s->k_min, s->k);
    /* Written so that NaN fails too. */
    if (!(s->tau >= 0.0f && s->tau <= 1.0f))
        return err_set(e, "tau (dynamic-k mass) = %g out of range, expected 0..1", (double)s->tau);
    if (check_int(s->rank, 1, 1024, "r (index rank)", e)) return -1;
    if (check_int(s->iheads, 1, 64, "j (indexer heads)", e)) return -1;
    if (check_int(s->block, 1, 65536, "b (keys per block)", e)) return -1;
    if (check_int(s->nblocks, 1, 65536, "n (blocks per query)", e)) return -1;
    if (check_int(s->hidden, 1, 65536, "hidden (MLP width)", e)) return -1;
    return 0;
}

static int check_flags(const head_spec *s, sattn_err *e) {
    if (check_int(s->bounds, 0, 1, "bounds (block min/max scoring)", e)) return -1;
    if (check_int(s->tile, 0, 1, "tile (tile-shared block selection)", e)) return -1;
    if (check_int(s->cmp, 0, 1, "cmp (compressed branch)", e)) return -1;
    if (check_int(s->shared, 0, 1, "shared (one indexer per layer)", e)) return -1;
    if (check_int(s->mlp_q, 0, 1, "q (mlp input q)", e)) return -1;
    if (check_int(s->mlp_logits, 0, 1, "logits (mlp input logits)", e)) return -1;
    return 0;
}

int head_spec_check(const head_spec *s, sattn_err *e) {
    if ((int)s->sel < SEL_DENSE || (int)s->sel > SEL_BLOCK)
        return err_set(e, "selector %d unknown, expected 0..3 (dense, pos, index, block)",
                       (int)s->sel);
    if (s->sel == SEL_DENSE) return 0;
    if ((int)s->fn != HFN_SOFTMAX && (int)s->fn != HFN_MLP)
        return err_set(e, "head function %d unknown, expected 0..1 (softmax, mlp)", (int)s->fn);
    if (check_sizes(s, e) || check_flags(s, e)) return -1;
    /* The block selector keeps whole blocks: there is no per-key mass to cut at tau. */
    if (s->sel == SEL_BLOCK && s->tau > 0.0f)
        return err_set(e, "tau = %g with the block selector, expected 0 (dynamic k applies to "
                          "pos and index)", (double)s->tau);
    /* tblock implements MoBA's mean-key scores and a softmax over the kept blocks only. */
    if (s->tile && (s->sel != SEL_BLOCK || s->fn != HFN_SOFTMAX || s->bounds))
        return err_set(e, "tile = 1 with %s, expected it only with block+softmax and bounds=0 "
                          "(tile-shared mean-key selection)",
                       s->sel != SEL_BLOCK ? "a non-block selector"
                       : s->fn != HFN_SOFTMAX ? "the mlp head function" : "bounds=1");
    /* the compressed branch is a part of the tile layer (tcmp.h) */
    if (s->cmp && !s->tile)
        return err_set(e, "cmp = 1 without tile = 1, expected the compressed branch only in a tile-shared "
                          "block layer (block+softmax:...,tile=1,cmp=1)");
    /* lindex.h: the shared indexer runs the exact softmax over the layer's one selection */
    if (s->shared && (s->sel != SEL_INDEX || s->fn != HFN_SOFTMAX))
        return err_set(e, "shared = 1 with %s, expected it only with index+softmax (one indexer "
                          "per layer)", s->sel != SEL_INDEX ? "a non-index selector" : "the mlp head function");
    /* selector_kmax multiplies them in an int. */
    if (s->sel == SEL_BLOCK && (long long)s->block * s->nblocks > MAX_BLOCK_KEYS)
        return err_set(e, "b*n = %d*%d keys per query, expected at most %d", s->block,
                       s->nblocks, MAX_BLOCK_KEYS);
    return 0;
}

static const char *sel_name(sel_kind k) {
    switch (k) {
    case SEL_POS: return "pos";
    case SEL_INDEX: return "index";
    case SEL_BLOCK: return "block";
    default: return "dense";
    }
}

/* The shortest decimal that reads back as the same float, so plans round-trip exactly. */
static void format_float(float x, char *buf, size_t n) {
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)x);
        if (strtof(buf, NULL) == x) return;
    }
}

/* Appends to buf at *len, never past n (vsnprintf truncates; *len saturates at n). */
__attribute__((format(printf, 4, 5)))
static void append(char *buf, size_t n, size_t *len, const char *fmt, ...) {
    if (*len >= n) return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *len, n - *len, fmt, ap);
    va_end(ap);
    if (w > 0) *len = *len + (size_t)w < n ? *len + (size_t)w : n;
}

void head_spec_format(const head_spec *s, char *buf, size_t n) {
    if (!n) return;
    buf[0] = '\0';
    size_t len = 0;
    if (s->sel == SEL_DENSE) {
        append(buf, n, &len, "dense");
        return;
    }
    append(buf, n, &len, "%s+%s:", sel_name(s->sel), s->fn == HFN_MLP ? "mlp" : "softmax");
    if (s->sel == SEL_BLOCK) {
        append(buf, n, &len, "b=%d,n=%d", s->block, s->nblocks);
        if (s->bounds) append(buf, n, &len, ",bounds=1");
        if (s->tile) append(buf, n, &len, ",tile=1");
        if (s->cmp) append(buf, n, &len, ",cmp=1");
    } else {
        append(buf, n, &len, "k=%d", s->k);
        if (s->sel == SEL_INDEX) append(buf, n, &len, ",r=%d,j=%d", s->rank, s->iheads);
        if (s->shared) append(buf, n, &len, ",shared=1");
    }
    if (s->sel == SEL_POS || s->fn == HFN_MLP) append(buf, n, &len, ",hidden=%d", s->hidden);
    /* The mlp input flags default to on: only a switched-off one is worth showing. */
    if (s->fn == HFN_MLP && !s->mlp_q) append(buf, n, &len, ",q=0");
    if (s->fn == HFN_MLP && !s->mlp_logits) append(buf, n, &len, ",logits=0");
    if (s->tau > 0.0f) {
        char t[32];
        format_float(s->tau, t, sizeof t);
        append(buf, n, &len, ",tau=%s,kmin=%d", t, s->k_min);
    }
}

int sparse_tile_layer(const head_spec *specs, int l, int heads) {
    for (int h = 0; h < heads; h++)
        if (!specs[(size_t)l * heads + h].tile) return 0;
    return 1;
}

int sparse_tile_check(const head_spec *specs, int layers, int heads, sattn_err *e) {
    for (int l = 0; l < layers; l++) {
        const head_spec *row = specs + (size_t)l * heads;
        int first = -1;
        for (int h = 0; h < heads && first < 0; h++)
            if (row[h].tile) first = h;
        if (first < 0) continue;
        for (int h = 0; h < heads; h++) {
            const head_spec *s = &row[h];
            if (s->sel == SEL_BLOCK && s->fn == HFN_SOFTMAX && s->tile &&
                s->block == row[first].block && s->nblocks == row[first].nblocks && s->cmp == row[first].cmp)
                continue;
            char a[192], b[192];
            head_spec_format(&row[first], a, sizeof a);
            head_spec_format(s, b, sizeof b);
            return err_set(e, "head L%dH%d is %s but L%dH%d is %s: tile=1 runs a whole layer at "
                              "once, expected every head of layer %d to be %s",
                           l, h, b, l, first, a, l, a);
        }
    }
    return 0;
}

int sparse_shared_layer(const head_spec *specs, int l, int heads) {
    return heads > 0 && specs[(size_t)l * heads].shared;
}

/* Same spec = same text form (it lists every field that matters to an index+softmax head). */
int sparse_shared_check(const head_spec *specs, int layers, int heads, sattn_err *e) {
    for (int l = 0; l < layers; l++) {
        const head_spec *row = specs + (size_t)l * heads;
        int first = -1;
        for (int h = 0; h < heads && first < 0; h++)
            if (row[h].shared) first = h;
        if (first < 0) continue;
        char a[192], b[192];
        head_spec_format(&row[first], a, sizeof a);
        for (int h = 0; h < heads; h++) {
            head_spec_format(&row[h], b, sizeof b);
            if (!strcmp(a, b)) continue;
            return err_set(e, "head L%dH%d is %s but L%dH%d is %s: shared=1 gives layer %d one "
                              "indexer, expected every head of it to be %s", l, h, b, l, first, a, l, a);
        }
    }
    return 0;
}

/* ---- all heads of a model ---- */

void sparse_heads_create(sparse_heads *sh, int layers, int heads, int hs, int max_seq,
                         const head_spec *specs, rng_t *rng) {
    if (layers < 1 || heads < 1 || hs < 1 || max_seq < 1)
        die_at(__FILE__, __LINE__, "sparse_heads_create: bad shape %d x %d, hs %d, max_seq %d",
               layers, heads, hs, max_seq);
    sh->layers = layers;
    sh->heads = heads;
    sh->hs = hs;
    sh->max_seq = max_seq;
    size_t n = (size_t)layers * (size_t)heads;
    sh->h = xcalloc(n, sizeof *sh->h);
    for (size_t i = 0; i < n; i++) {
        sparse_head *p = &sh->h[i];
        p->spec = specs[i];
        if (specs[i].sel == SEL_DENSE) continue;
        /* Specs come from plans and files that were checked: a bad one here is a bug. */
        sattn_err err;
        if (head_spec_check(&specs[i], &err))
            die_at(__FILE__, __LINE__, "sparse_heads_create: head %zu: %s", i, err.msg);
        int kmax = selector_kmax(&specs[i], max_seq);
        p->n_sel = selector_param_count(&specs[i], hs, max_seq);
        p->n_fn = headfn_param_count(&specs[i], hs, kmax);
        p->params = xmalloc((p->n_sel + p->n_fn) * sizeof(float));
        selector_init(&specs[i], hs, max_seq, p->params, rng);
        headfn_init(&specs[i], hs, kmax, p->params + p->n_sel, rng);
    }
    /* a shared indexer is one layer-wide parameter set, initialised at the layer's width */
    lindex_init_heads(sh, rng);
}

void sparse_heads_free(sparse_heads *sh) {
    if (sh->h) {
        for (size_t i = 0; i < (size_t)sh->layers * (size_t)sh->heads; i++) free(sh->h[i].params);
        free(sh->h);
    }
    memset(sh, 0, sizeof *sh);
}

int sparse_heads_count(const sparse_heads *sh) {
    int n = 0;
    for (size_t i = 0; i < (size_t)sh->layers * (size_t)sh->heads; i++)
        n += sh->h[i].spec.sel != SEL_DENSE;
    return n;
}

int headfn_slot_width(const head_spec *s, int T, int max_seq) {
    return s->fn == HFN_MLP ? selector_kmax(s, max_seq) : selector_kmax(s, T);
}

void selector_widen_rows(int *idx, float *score, int T, int kt, int K) {
    if (kt == K) return;
    for (int t = T - 1; t >= 0; t--) { /* from the last row back: no row is overwritten before it moves */
        memmove(idx + (size_t)t * K, idx + (size_t)t * kt, (size_t)kt * sizeof *idx);
        memmove(score + (size_t)t * K, score + (size_t)t * kt, (size_t)kt * sizeof *score);
    }
}

void head_scratch_select(head_scratch *s, const head_spec *spec, const float *params, int hs, int max_seq,
                         const float *q, const float *k, int ld, int T) {
    selector_select(spec, params, hs, max_seq, q, k, ld, T, s->idx, s->score, s->count, s->work);
    selector_widen_rows(s->idx, s->score, T, selector_kmax(spec, T), s->kmax);
}

void head_scratch_init(head_scratch *s, const head_spec *spec, int hs, int T, int max_seq) {
    s->kmax = headfn_slot_width(spec, T, max_seq);
    s->work = xmalloc((selector_work_floats(spec, hs, T) + 1) * sizeof(float));
    s->score = xmalloc(((size_t)T * s->kmax + 1) * sizeof(float));
    s->cache = xmalloc((headfn_cache_floats(spec, hs, s->kmax, T) + 1) * sizeof(float));
    s->out = xmalloc(((size_t)T * hs + 1) * sizeof(float));
    s->idx = xmalloc(((size_t)T * s->kmax + 1) * sizeof(int));
    s->count = xmalloc(((size_t)T + 1) * sizeof(int));
}

void head_scratch_free(head_scratch *s) {
    free(s->work), free(s->score), free(s->cache), free(s->out), free(s->idx), free(s->count);
    memset(s, 0, sizeof *s);
}
