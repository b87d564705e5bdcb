/* costmodel: analytic cost of one attention layer (formulas in sattn/costmodel.h). */
#include "sattn/costmodel.h"

#include <stdio.h>
#include <string.h>

#include "sattn/flash.h"
#include "sattn/nn.h"

#define F32 4.0

cm_shape cm_shape_make(int C, int H, int T) { return (cm_shape){C, H, T, 64, 0}; }

/* ---- projections ---- */

/* 2*T*C*3C (qkv) + 2*T*C*C (output); one query when decoding. */
double cm_proj_flops(const cm_shape *s) {
    double T = s->decode ? 1 : s->T, C = s->C;
    return 2 * T * C * 3 * C + 2 * T * C * C;
}

/* Read x, W_qkv, write qkv; read y, W_o, write the output: 4*(6TC + 4C^2). */
static double proj_bytes(const cm_shape *s) {
    double T = s->decode ? 1 : s->T, C = s->C;
    return F32 * (6 * T * C + 4 * C * C);
}

/* ---- key counts ---- */

/* Query t's keys kept and complete blocks before its own block (block selector). */
static void block_row(const head_spec *p, int t, double *keys, double *nb) {
    int n = t / p->block, kept = n < p->nblocks - 1 ? n : p->nblocks - 1;
    *keys = (double)(t % p->block) + 1 + (double)p->block * kept;
    *nb = n;
}

/* sum_t |S_t| and sum_t nb(t) over the queries of the shape (prefill: t = 0..T-1;
 * decode: t = T-1). */
static void key_sums(const cm_shape *s, const head_spec *p, double *keys, double *nbs) {
    int t0 = s->decode ? s->T - 1 : 0;
    *keys = 0, *nbs = 0;
    if (p->sel != SEL_BLOCK) {
        double k = selector_kmax(p, s->T), T = s->T; /* k <= T */
        /* decode: min(k, T) = k; prefill: sum_t min(k, t+1) */
        *keys = s->decode ? k : k * (k + 1) / 2 + (T - k) * k;
        return;
    }
    for (int t = t0; t < s->T; t++) {
        double kk, nb;
        block_row(p, t, &kk, &nb);
        *keys += kk, *nbs += nb;
    }
}

/* ---- attention FLOPs per head ---- */

/* tile=1 (tblock.h): the selection is made once per tile of b queries, not per query. Over
 * nt = ceil(T/b) tiles: the mean keys d T and the previous tiles' pooled queries d T, and tile
 * i's scores of its i earlier blocks (2 d i) and their top-(n-1) (i). With cmp=1 (tcmp.h) the
 * compressed branch too: the mean values d T, per query of tile i its i pooled blocks (4 d i:
 * scores and values) and its gate (2 d). |S_t| is per-query block's (the same keys). */
static double tile_selector_flops(const head_spec *p, double d, int T) {
    double t = T, sel = 2 * d * t, cmp = p->cmp ? d * t : 0;
    for (int i = 0; (double)i * p->block < t; i++) {
        double nq = t - (double)i * p->block < p->block ? t - (double)i * p->block : p->block;
        sel += 2 * d * i + i;
        if (p->cmp) cmp += nq * (4 * d * i + 2 * d);
    }
    return sel + cmp;
}

/* One decode step at T-1 of a tile layer: its tile's selection shared by the tile's b steps
 * (charged 1/b each, with the new block's and tile's means: 2d), and with cmp the step's
 * pooled blocks (4 d i), its gate (2 d) and the new block's mean value (d / b). */
static double tile_decode_flops(const head_spec *p, double d, int T) {
    double i = (double)((T - 1) / p->block), b = p->block;
    double sel = (2 * d * i + i + 2 * d) / b;
    return sel + (p->cmp ? 4 * d * i + 2 * d + d / b : 0);
}

/* Selector FLOPs of the prefill of T queries (the formulas in costmodel.h); *keys gets
 * sum_t |S_t|. */
static double selector_flops(const head_spec *p, double d, int T, double *keys) {
    cm_shape s = cm_shape_make(0, 1, T);
    double t = T, P = t * (t + 1) / 2, cands;
    key_sums(&s, p, keys, &cands);
    if (p->sel == SEL_BLOCK && p->tile) return tile_selector_flops(p, d, T);
    if (p->sel == SEL_BLOCK) {
        double w = p->bounds ? 2 : 1;
        return w * d * t + w * 2 * d * cands + cands;
    }
    if (p->sel == SEL_INDEX) {
        double J = p->iheads, r = p->rank;
        return 2 * (J * r * d + r * d + J * d) * t + (2 * J * r + J) * P + P;
    }
    double h = p->hidden; /* SEL_POS */
    return 2 * (h * d + h * t) * t + P;
}

/* Head function FLOPs of `queries` queries selecting `keys` keys in all. */
static double headfn_flops(const head_spec *p, double d, int T, double keys, double queries) {
    if (p->fn == HFN_SOFTMAX) return 2 * 2 * d * keys;
    double kmax = selector_kmax(p, T), h = p->hidden;
    double D = kmax * d + (p->mlp_q ? d : 0) + (p->mlp_logits ? kmax : 0);
    return 2 * (h * D + d * h) * queries + (p->mlp_logits ? 2 * d * keys : 0);
}

double head_attention_flops(const head_spec *s, int d, int T) {
    double t = T;
    if (s->sel == SEL_DENSE) return 2 * 2 * (double)d * t * (t + 1) / 2;
    double keys;
    double sel = selector_flops(s, d, T, &keys);
    return sel + headfn_flops(s, d, T, keys, T);
}

/* One decode step: the per-query terms of head_attention_flops for query T-1. */
static double decode_flops(const cm_shape *s, const cm_variant *v, double d) {
    double T = s->T;
    if (v->kind != CM_SPARSE) return 4 * d * T;
    const head_spec *p = &v->spec;
    double keys, nb, sel;
    key_sums(s, p, &keys, &nb);
    if (p->sel == SEL_INDEX) {
        double J = p->iheads, r = p->rank;
        sel = 2 * (J * r * d + r * d + J * d) + (2 * J * r + J + 1) * T;
    } else if (p->sel == SEL_POS) {
        sel = 2 * (p->hidden * d + p->hidden * T) + T;
    } else if (p->tile) {
        sel = tile_decode_flops(p, d, s->T);
    } else {
        double w = p->bounds ? 2 : 1;
        sel = w * d + w * 2 * d * nb + nb;
    }
    return sel + headfn_flops(p, d, s->T, keys, 1);
}

/* shared=1 (lindex.h): one indexer per layer. Its C-wide projections cost what H heads'
 * d-wide ones do, but its per-pair scores (2Jr + J) and top-k (1) run once per layer, not
 * per head: each head carries 1/H of them. The per-head formula's excess, per head. */
static double shared_excess(const cm_shape *s, const head_spec *p) {
    if (!p->shared) return 0.0;
    double T = s->T, pairs = s->decode ? T : T * (T + 1) / 2, J = p->iheads, r = p->rank;
    return (1.0 - 1.0 / s->H) * (2 * J * r + J + 1) * pairs;
}

static double attn_flops_head(const cm_shape *s, const cm_variant *v, int d) {
    double shared = v->kind == CM_SPARSE ? shared_excess(s, &v->spec) : 0.0;
    if (s->decode) return decode_flops(s, v, d) - shared;
    head_spec dense = {.sel = SEL_DENSE};
    return head_attention_flops(v->kind == CM_SPARSE ? &v->spec : &dense, d, s->T) - shared;
}

/* ---- attention bytes per head (in floats) ---- */

/* 2d * sum over query tiles of the keys up to the tile's end (decode: one query). */
static double flash_kv_reads(double T, double d, int Br, int decode) {
    if (decode) return 2 * d * T;
    double sum = 0;
    for (double end = Br; end < T + Br; end += Br) sum += end < T ? end : T;
    return 2 * d * sum;
}

/* Block summaries a tile of Br queries reads: those complete before its last query's
 * block, floor((end-1)/b), summed over the tiles (shared by the tile, like flash's K). */
static double tile_blocks(int T, int b, int Br) {
    double sum = 0;
    for (long end = Br; end < (long)T + Br; end += Br) sum += (double)(((end < T ? end : T) - 1) / b);
    return sum;
}

static double selector_floats(const cm_shape *s, const head_spec *p, double d, double nbs) {
    double Q = s->decode ? 1 : s->T, T = s->T;
    double P = s->decode ? T : T * (T + 1) / 2; /* candidate keys over the queries */
    if (p->sel == SEL_INDEX) { /* k~ re-read per query tile, as flash re-reads K */
        double J = p->iheads, r = p->rank;
        return 2 * Q * d + (J * r + r + J) * Q + flash_kv_reads(T, r / 2, s->Br, s->decode);
    }
    if (p->sel == SEL_POS) return 2 * P;
    double w = p->bounds ? 2 : 1, nbT = (double)((s->T - 1) / p->block);
    double reads = s->decode ? nbs : tile_blocks(s->T, p->block, s->Br);
    return Q * d + w * d * (s->decode ? 1 : nbT) + w * d * reads;
}

static double attn_floats_head(const cm_shape *s, const cm_variant *v, double d) {
    double T = s->T, Q = s->decode ? 1 : T;
    if (v->kind == CM_NAIVE) return 2 * Q * d + 2 * T * d + 2 * Q * T; /* q,out; k,v; scores w+r */
    if (v->kind == CM_FLASH) return 2 * Q * d + flash_kv_reads(T, d, s->Br, s->decode);
    const head_spec *p = &v->spec;
    double keys, nbs;
    key_sums(s, p, &keys, &nbs);
    double rows = p->fn == HFN_MLP && !p->mlp_logits ? 1 : 2;
    return 2 * Q * d + rows * d * keys + 2 * keys + selector_floats(s, p, d, nbs);
}

/* ---- peak memory (floats) ---- */

static double scratch_floats(const cm_shape *s, const cm_variant *v, double d) {
    double T = s->T, Q = s->decode ? 1 : T, H = s->H;
    if (v->kind == CM_NAIVE) return H * Q * T;
    double br = s->Br < s->T ? s->Br : s->T; /* one score tile, Br x Br (at most T x T) */
    if (v->kind == CM_FLASH) return H * 2 * Q + (s->decode ? 0 : br * br);
    const head_spec *p = &v->spec;
    double kmax = selector_kmax(p, s->T), sel;
    if (p->sel == SEL_INDEX) sel = (p->iheads * p->rank + p->rank + p->iheads) * Q + T;
    else if (p->sel == SEL_POS) sel = p->hidden + T;
    else {
        double nb = (double)((s->T - 1) / p->block) + 1;
        sel = (p->bounds ? 2 : 1) * d * nb + nb;
    }
    double fn = p->fn == HFN_MLP ? kmax * d + d + kmax + p->hidden : 0;
    return H * ((2 * kmax + 1) * Q + sel + fn);
}

static double peak_floats(const cm_shape *s, const cm_variant *v, double d) {
    double T = s->T, C = s->C;
    double act = s->decode ? 2 * T * C + 2 * C : 4 * T * C;
    return act + scratch_floats(s, v, d);
}

void cm_cost_of(const cm_shape *s, const cm_variant *v, cm_cost *o) {
    int d = s->C / s->H;
    o->proj_flops = cm_proj_flops(s);
    o->attn_flops = s->H * attn_flops_head(s, v, d);
    o->flops = o->proj_flops + o->attn_flops;
    o->proj_bytes = proj_bytes(s);
    o->attn_bytes = F32 * s->H * attn_floats_head(s, v, d);
    o->bytes = o->proj_bytes + o->attn_bytes;
    o->peak_bytes = F32 * peak_floats(s, v, d);
}

/* ---- variants ---- */

cm_variant cm_dense(cm_kind kind) {
    cm_variant v = {.kind = kind, .spec = {.sel = SEL_DENSE}};
    snprintf(v.name, sizeof v.name, "%s", kind == CM_NAIVE ? "dense-naive" : "dense-flash");
    return v;
}

cm_variant cm_sparse(const head_spec *spec) {
    cm_variant v = {.kind = CM_SPARSE, .spec = *spec};
    head_spec_format(spec, v.name, sizeof v.name);
    return v;
}

int cm_standard_variants(int k, cm_variant *out) {
    static const sel_kind sels[3] = {SEL_POS, SEL_INDEX, SEL_BLOCK};
    int n = 0;
    out[n++] = cm_dense(CM_NAIVE);
    out[n++] = cm_dense(CM_FLASH);
    for (int i = 0; i < 3; i++)
        for (int f = 0; f < 2; f++) {
            head_spec p = head_spec_default();
            p.sel = sels[i], p.fn = f ? HFN_MLP : HFN_SOFTMAX, p.k = k;
            p.block = k >= 32 ? 16 : (k >= 2 ? k / 2 : 1);
            p.nblocks = k / p.block;
            out[n++] = cm_sparse(&p);
        }
    return n;
}

/* ---- crossover ---- */

static int cheaper(const cm_shape *s, const cm_variant *v, int T) {
    cm_shape t = *s;
    t.T = T;
    cm_variant dense = cm_dense(CM_FLASH);
    cm_cost a, b;
    cm_cost_of(&t, v, &a);
    cm_cost_of(&t, &dense, &b);
    return a.flops < b.flops;
}

int cm_crossover(const cm_shape *s, const cm_variant *v, int t_max) {
    if (cheaper(s, v, 1)) return 1;
    long lo = 1, hi = 2; /* lo is not cheaper */
    while (hi <= t_max && !cheaper(s, v, (int)hi)) lo = hi, hi *= 2;
    if (hi > t_max) {
        if (lo == t_max || !cheaper(s, v, t_max)) return -1;
        hi = t_max;
    }
    while (hi - lo > 1) { /* lo not cheaper, hi cheaper */
        long mid = lo + (hi - lo) / 2;
        if (cheaper(s, v, (int)mid)) hi = mid;
        else lo = mid;
    }
    return (int)hi;
}

/* ---- multiply-adds as sattn's kernels execute them ---- */

/* sum over query tiles [t0, t0+n) of n * (t0+n): the query-key pairs a causal kernel
 * with row tiles of `tile` computes (the diagonal tiles' masked halves included). */
static double tiled_pairs(int T, int tile) {
    double sum = 0;
    for (int t0 = 0; t0 < T; t0 += tile) {
        int n = T - t0 < tile ? T - t0 : tile;
        sum += (double)n * (t0 + n);
    }
    return sum;
}

static int cm_min(int a, int b) { return a < b ? a : b; }

/* Query-key pairs (multiply-adds / d) of the flash forward as flash.c runs it, S = Q K^T and
 * P V together: per query tile [q0, q0+n) of FLASH_BR rows, n q0 pairs per product off the
 * diagonal; on the diagonal tile S^T in FLASH_MR x FLASH_NR blocks (keys j0 x queries i0,
 * skipped when j0 > i0 + NR - 1; real rows and columns counted) and P V per 6-query block r0
 * over the keys below min(n, r0 + MR). */
static double flash_fwd_pairs(int T) {
    double sum = 0;
    for (int q0 = 0; q0 < T; q0 += FLASH_BR) {
        int n = cm_min(FLASH_BR, T - q0), nj = (n + FLASH_MR - 1) / FLASH_MR * FLASH_MR;
        int ni = (nj + FLASH_NR - 1) / FLASH_NR * FLASH_NR;
        sum += 2.0 * n * q0;
        for (int i0 = 0; i0 < ni && i0 < n; i0 += FLASH_NR)
            for (int j0 = 0; j0 < nj && j0 < n && j0 <= i0 + FLASH_NR - 1; j0 += FLASH_MR)
                sum += (double)cm_min(FLASH_MR, n - j0) * cm_min(FLASH_NR, n - i0);
        for (int r0 = 0; r0 < n; r0 += FLASH_MR) sum += (double)cm_min(FLASH_MR, n - r0) * cm_min(n, r0 + FLASH_MR);
    }
    return sum;
}

/* Block scoring as block_scores_tile runs it: per BLOCK_QTILE tile, its rows against
 * the blocks before the tile's last query's own block (mean: one GEMM), or per query
 * its own complete blocks (bounds: a loop, 2d a pair). */
static double block_score_macs(const head_spec *p, int T, double d) {
    double sum = 0;
    if (p->bounds) {
        for (int t = 0; t < T; t++) sum += 2 * d * (t / p->block);
        return sum;
    }
    int nb = T / p->block;
    for (int t0 = 0; t0 < T; t0 += BLOCK_QTILE) {
        int n = T - t0 < BLOCK_QTILE ? T - t0 : BLOCK_QTILE, nbt = (t0 + n - 1) / p->block;
        sum += (double)n * (nbt < nb ? nbt : nb) * d;
    }
    return sum;
}

static double headfn_macs(const head_spec *p, double d, int T, double keys) {
    if (p->fn == HFN_SOFTMAX) return 2 * d * keys;
    double kmax = selector_kmax(p, T), h = p->hidden;
    double D = kmax * d + (p->mlp_q ? d : 0) + (p->mlp_logits ? kmax : 0);
    return T * (h * D + d * h) + (p->mlp_logits ? d * keys : 0);
}

static double sparse_prefill_macs(const cm_shape *s, const head_spec *p, double d) {
    double keys, nbs, T = s->T, sel;
    key_sums(s, p, &keys, &nbs);
    if (p->sel == SEL_INDEX) {
        double J = p->iheads, r = p->rank;
        sel = T * (J * r + r + J) * d + J * r * tiled_pairs(s->T, INDEX_QTILE);
    } else if (p->sel == SEL_POS) {
        sel = T * p->hidden * d + T * T * p->hidden;
    } else {
        sel = block_score_macs(p, s->T, d);
    }
    return sel + headfn_macs(p, d, s->T, keys);
}

/* One decode step (attnbench's ab_index_decode / ab_block_decode): the cache-side
 * state (projected keys, block summaries) is kept with the cache, not recomputed. */
static double sparse_decode_macs(const cm_shape *s, const head_spec *p, double d) {
    double keys, nbs, T = s->T;
    key_sums(s, p, &keys, &nbs);
    if (p->sel == SEL_INDEX) {
        double J = p->iheads, r = p->rank;
        return J * r * d + J * d + J * r * T + 2 * d * keys;
    }
    return (p->bounds ? 2 : 1) * d * nbs + 2 * d * keys;
}

double cm_kernel_macs(const cm_shape *s, const cm_variant *v) {
    double d = (double)s->C / s->H, per;
    if (v->kind == CM_SPARSE && v->spec.tau > 0.0f) return -1; /* data-dependent key counts */
    if (v->kind == CM_SPARSE && v->spec.shared) return -1;      /* lindex's own tiles: not modelled */
    if (s->decode) {
        if (v->kind == CM_NAIVE) return -1;
        if (v->kind == CM_FLASH) per = 2 * d * s->T;
        else if (v->spec.fn != HFN_SOFTMAX || v->spec.sel == SEL_POS) return -1;
        else per = sparse_decode_macs(s, &v->spec, d);
    } else if (v->kind == CM_NAIVE) {
        per = 2 * d * tiled_pairs(s->T, ATT_TILE);
    } else if (v->kind == CM_FLASH) {
        per = d * flash_fwd_pairs(s->T);
    } else {
        per = sparse_prefill_macs(s, &v->spec, d);
    }
    return s->H * per;
}

/* ---- the original project's formula (our reconstruction) ---- */

double cm_original_sparse(int d, int T, int k, int hidden) {
    return (double)T * hidden * d + (double)T * k * d * 2;
}

double cm_original_dense(int d, int T) { return 2.0 * 2 * (double)T * T * d; }
