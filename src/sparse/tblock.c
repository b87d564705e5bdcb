/* tblock: tile-shared block-sparse attention (see include/sattn/tblock.h, docs/tblock.md).
 *
 * The kernels are flash.c's, on the tile-shared selection: src/nn/flash_tile.h's packing,
 * 6 x 16 register-blocked products and softmax passes, with the tile width ldt a parameter.
 * A query tile of b queries (tile i) against a kept key block of b keys (block j) is one
 * flash tile pair; only the tile's own block (j = i, first key = first query) is causal and
 * takes the diagonal mask and the skipped upper blocks.
 *
 * Tile shapes for b queries / keys: score tiles S^T (keys x ldt), ldt = b rounded up to 6
 * then to 16, so it covers both the 16-column blocks of S^T (ni = nq rounded to 16 queries)
 * and the 6-row blocks of the query accumulators (nr = nq rounded to 6). At b = 64 S^T is
 * computed on 64 query columns, not flash's 80 (64 rounded to 6, then to 16): accumulator
 * row r reads only column r of P^T (dS^T), so rows past nq, which are never stored, may read
 * stale columns [ni, nr). Keys are computed in 6-row blocks (nj = nk rounded to 6); the rows
 * past nk are ignored (the softmax and every product over keys take nk terms). */
#include "sattn/tblock.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/flash_tile.h"
#include "sattn/sparse.h"

int tblock_sel_init(tblock_sel *s, int B, int H, int T, int b, int n, sattn_err *e) {
    memset(s, 0, sizeof *s);
    if (B < 1 || H < 1 || T < 1 || b < 1 || n < 1)
        return err_set(e, "tblock: B=%d H=%d T=%d b=%d n=%d: expected all >= 1", B, H, T, b, n);
    s->B = B, s->H = H, s->T = T, s->b = b, s->ntiles = (T + b - 1) / b;
    s->n = ft_imin(n, s->ntiles);
    size_t tiles = (size_t)B * H * s->ntiles;
    s->blocks = xmalloc(tiles * s->n * sizeof(int));
    s->count = xmalloc(tiles * sizeof(int));
    return 0;
}

void tblock_sel_free(tblock_sel *s) {
    free(s->blocks), free(s->count);
    memset(s, 0, sizeof *s);
}

double tblock_pairs(const tblock_sel *s) {
    double pairs = 0;
    for (size_t bh = 0; bh < (size_t)s->B * s->H; bh++)
        for (int i = 0; i < s->ntiles; i++) {
            double nq = ft_imin(s->b, s->T - i * s->b), c = s->count[bh * s->ntiles + i];
            pairs += nq * (c - 1) * s->b + nq * (nq + 1) / 2;
        }
    return pairs;
}

/* ------------------------------------------------------------------ selection */

/* mean[c] = (1/n) sum_{r<n} x[r ld + c], c < w: a block's mean key or a tile's pooled query
 * (all heads at once: w = C). */
static void row_mean(float *mean, const float *x, size_t ld, int n, int w) {
    memset(mean, 0, (size_t)w * sizeof(float));
    for (int r = 0; r < n; r++) fk_add(mean, x + (size_t)r * ld, w, 1.0f);
    for (int c = 0; c < w; c++) mean[c] /= (float)n;
}

static void sort_ints(int *x, int n) {
    for (int a = 1; a < n; a++)
        for (int c = a; c > 0 && x[c - 1] > x[c]; c--) {
            int t = x[c];
            x[c] = x[c - 1], x[c - 1] = t;
        }
}

/* One (batch row, head): qbar, kbar the complete tiles' pooled queries and blocks' mean keys
 * (rows of stride C). row: ntiles floats, sc and ix: n. Tile i >= 1 scores blocks j < i by
 * qbar_{i-1} . kbar_j (all complete: block j ends at (j + 1) b <= i b < T), keeps the top n-1
 * (selector_topk: ties to the earlier block), sorts them and appends i. The previous tile's
 * pooled query, not tile i's own: tile i's own queries after t carry tokens after t, and a
 * selection that depends on them leaks the future into query t's output (measured: a model
 * trained so lost 0.26 % of loss when evaluated on prefixes). */
static void select_head(const tblock_sel *s, int bh, const float *qbar, const float *kbar, int C, int hs,
                        float *row, float *sc, int *ix) {
    int nt = s->ntiles;
    for (int i = 0; i < nt; i++) {
        int *kept = s->blocks + ((size_t)bh * nt + i) * s->n;
        const float *q = qbar + (size_t)(i > 0 ? i - 1 : 0) * C;
        for (int j = 0; j < i; j++) {
            const float *k = kbar + (size_t)j * C;
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int d = 0; d < hs; d++) dot += q[d] * k[d];
            row[j] = dot;
        }
        int c = selector_topk(row, i, s->n - 1, sc, ix);
        sort_ints(ix, c);
        for (int a = 0; a < s->n; a++) kept[a] = a < c ? ix[a] : a == c ? i : -1;
        s->count[(size_t)bh * nt + i] = c + 1;
    }
}

/* The means first, per (batch row, tile), all heads at once, so the rows are read in order
 * (per head, rows 3C floats apart: at T = 16384 that read, and the scalar scores, were 8 % of
 * the forward); then the scores and the top-k per (batch row, head). */
void tblock_select(tblock_sel *s, const float *qkv, int C) {
    int hs = C / s->H, nt = s->ntiles, b = s->b;
    size_t ld = (size_t)3 * C, per = (size_t)nt * C;
    float *qbar = xmalloc(2 * (size_t)s->B * per * sizeof(float)), *kbar = qbar + (size_t)s->B * per;
#pragma omp parallel
    {
        float *row = xmalloc(((size_t)nt + s->n) * sizeof(float));
        int *ix = xmalloc((size_t)s->n * sizeof(int));
#pragma omp for collapse(2) schedule(static)
        for (int bb = 0; bb < s->B; bb++)
            for (int i = 0; i < nt; i++) {
                const float *x = qkv + ((size_t)bb * s->T + (size_t)i * b) * ld;
                if (i + 1 == nt) continue; /* the last tile's queries and keys score nothing */
                row_mean(qbar + bb * per + (size_t)i * C, x, ld, b, C);
                row_mean(kbar + bb * per + (size_t)i * C, x + C, ld, b, C);
            }
#pragma omp for schedule(dynamic)
        for (int bh = 0; bh < s->B * s->H; bh++) {
            size_t o = (size_t)(bh / s->H) * per + (size_t)(bh % s->H) * hs;
            select_head(s, bh, qbar + o, kbar + o, C, hs, row, row + nt, ix);
        }
        free(row), free(ix);
    }
    free(qbar);
}

/* ------------------------------------------------------------------ shared shapes */

/* The tile geometry shared by forward and backward: hs, hsp (hs rounded to 16), ldp (packed
 * row stride), ldt (score tile width), rows (the most key or query rows of a tile: b rounded
 * to 6), scale = 1/sqrt(hs). */
typedef struct {
    int hs, hsp, ldp, ldt, rows, b, T, C;
    float scale;
} tb_geom;

static tb_geom geom_of(const tblock_sel *s, int C) {
    tb_geom g = {.hs = C / s->H, .b = s->b, .T = s->T, .C = C};
    g.hsp = ft_round_up(g.hs, FK_NR), g.ldp = ft_row_stride(g.hs);
    g.rows = ft_round_up(s->b, FK_MR), g.ldt = ft_round_up(g.rows, FK_NR);
    g.scale = 1.0f / sqrtf((float)g.hs);
    return g;
}

/* Queries nq of tile i, and its accumulator rows nr and score columns ni. */
typedef struct {
    int q0, nq, nr, ni;
} tb_tile;

static tb_tile tile_of(const tb_geom *g, int i) {
    tb_tile t = {i * g->b, ft_imin(g->b, g->T - i * g->b), 0, 0};
    t.nr = ft_round_up(t.nq, FK_MR), t.ni = ft_round_up(t.nq, FK_NR);
    return t;
}

/* ------------------------------------------------------------------ forward */

/* A thread's forward buffers. Kp, Vp: the packed keys and values of one head (`head` = b H +
 * h), block j packed on first use (packed[j]); consecutive tasks of a thread are mostly tiles
 * of the same head, so its blocks are packed about once per thread. Rows past T stay zero. */
typedef struct {
    float *Qt, *Kp, *Vp, *St, *O, *m, *l, *alpha;
    unsigned char *packed;
    long head;
} fwd_buf;

static fwd_buf fwd_buf_make(const tb_geom *g, int ntiles) {
    fwd_buf f = {.head = -1};
    size_t t = (size_t)g->ldt, r = (size_t)g->rows, kv = ((size_t)ntiles * g->b + FK_MR) * g->ldp;
    size_t n = (size_t)g->hs * t + 2 * kv + r * t + r * g->ldp + 3 * t;
    f.Qt = xmalloc_aligned(n * sizeof(float));
    memset(f.Qt, 0, n * sizeof(float));
    f.Kp = f.Qt + (size_t)g->hs * t, f.Vp = f.Kp + kv, f.St = f.Vp + kv, f.O = f.St + r * t;
    f.m = f.O + r * g->ldp, f.l = f.m + t, f.alpha = f.l + t;
    f.packed = xcalloc((size_t)ntiles, 1);
    return f;
}

/* A head's views: q its row 0 in qkv (k, v at +C, +2C; stride 3C), o in out (stride C), lse
 * (stride 1), its kept blocks per tile (kept + i n, count[i] of them). */
typedef struct {
    const float *q;
    float *o, *lse;
    const int *kept, *count;
    long id;
} fwd_head;

static void fwd_pack_block(fwd_buf *f, const tb_geom *g, const fwd_head *hd, int j, int ntiles) {
    if (f->head != hd->id) f->head = hd->id, memset(f->packed, 0, (size_t)ntiles);
    if (f->packed[j]) return;
    size_t ld = (size_t)3 * g->C, off = (size_t)j * g->b * g->ldp;
    int n = ft_imin(g->b, g->T - j * g->b);
    const float *k = hd->q + g->C + (size_t)j * g->b * ld;
    ft_pack_rows(f->Kp + off, g->ldp, n, k, ld, n, g->hs, 1.0f);
    ft_pack_rows(f->Vp + off, g->ldp, n, k + g->C, ld, n, g->hs, 1.0f);
    f->packed[j] = 1;
}

/* Tile i of one head over its kept blocks j (ascending), keys [j b, j b + nk):
 *   S^T = K_j (scale Q_i)^T (the own block j = i masked causally);
 *   m' = max(m, max S), P = exp(S - m'), l' = l e^{m - m'} + sum P, O = e^{m - m'} O + P V_j;
 * finally o_t = O_t / l_t, lse_t = m_t + log l_t. */
static void fwd_tile(fwd_buf *f, const tb_geom *g, const fwd_head *hd, int i, int n, int ntiles) {
    size_t ld = (size_t)3 * g->C;
    int ldt = g->ldt, ldp = g->ldp, hs = g->hs;
    tb_tile t = tile_of(g, i);
    ft_pack_cols(f->Qt, ldt, hd->q + (size_t)t.q0 * ld, ld, t.nq, hs, g->scale);
    memset(f->O, 0, sizeof(float) * (size_t)t.nr * ldp);
    for (int c = 0; c < ldt; c++) f->m[c] = -INFINITY, f->l[c] = 0.0f, f->alpha[c] = 0.0f;
    const int *kept = hd->kept + (size_t)i * n;
    for (int a = 0; a < hd->count[i]; a++) {
        int j = kept[a], diag = j == i, k0 = j * g->b, nk = diag ? t.nq : g->b, nj = ft_round_up(nk, FK_MR);
        fwd_pack_block(f, g, hd, j, ntiles);
        const float *Kp = f->Kp + (size_t)k0 * ldp, *Vp = f->Vp + (size_t)k0 * ldp;
        ft_tile_nt(f->St, ldt, Kp, ldp, f->Qt, hs, nj, t.ni, diag, -INFINITY, nk, t.nq);
        if (diag) ft_mask_diag(f->St, ldt, nj, t.ni, k0, t.q0);
        ft_online_softmax(f->St, ldt, f->m, f->l, f->alpha, nk, t.ni);
        ft_tile_acc(f->O, ldp, g->hsp, t.nr, f->alpha, f->St, 1, ldt, Vp, nk, diag, t.nq, hs);
    }
    for (int r = 0; r < t.nq; r++) {
        float inv = 1.0f / f->l[r], *orow = hd->o + (size_t)(t.q0 + r) * g->C;
        for (int d = 0; d < hs; d++) orow[d] = f->O[(size_t)r * ldp + d] * inv;
        hd->lse[t.q0 + r] = f->m[r] + logf(f->l[r]);
    }
}

static fwd_head fwd_head_of(const tblock_sel *s, const tb_geom *g, float *out, float *lse, const float *qkv,
                            int bb, int h) {
    size_t bh = (size_t)bb * s->H + h;
    fwd_head hd = {qkv + (size_t)bb * s->T * 3 * g->C + (size_t)h * g->hs,
                   out + (size_t)bb * s->T * g->C + (size_t)h * g->hs, lse + bh * s->T,
                   s->blocks + bh * s->ntiles * s->n, s->count + bh * s->ntiles, (long)bh};
    return hd;
}

void tblock_forward(float *out, float *lse, const float *qkv, int C, const tblock_sel *s) {
    tb_geom g = geom_of(s, C);
#pragma omp parallel
    {
        fwd_buf f = fwd_buf_make(&g, s->ntiles);
#pragma omp for collapse(3) schedule(dynamic)
        for (int bb = 0; bb < s->B; bb++)
            for (int h = 0; h < s->H; h++)
                for (int i = 0; i < s->ntiles; i++) {
                    fwd_head hd = fwd_head_of(s, &g, out, lse, qkv, bb, h);
                    fwd_tile(&f, &g, &hd, i, s->n, s->ntiles);
                }
        free(f.Qt), free(f.packed);
    }
}

/* ------------------------------------------------------------------ backward */

/* How the backward is split (deterministic, no atomics; B = 1 and 4 heads keep 2 threads
 * busy), as flash.c's: dK_j, dV_j are sums over the tiles that kept block j, dQ_i a sum over
 * the blocks tile i kept. Task (b, h, g) owns a group g of the head's key blocks: it packs
 * their K, V once and keeps their dK, dV in its own buffers (nobody else touches them), and
 * walks the tiles in order, packing each tile that kept one of its blocks once and computing
 * each such pair once (5 products). Its dQ goes to its own partial dQ_g (B, T, C) (zeros for
 * tiles it does not touch); at the end dQ += dQ_0 + dQ_1 + ... in that fixed order. With
 * G = 1 (B H >= 8) a task owns the whole head and adds dQ into dqkv directly: no partials.
 * G depends only on B, H and the tiles, and the blocks go to groups by their work (the
 * tiles that kept them, largest first, each to the least loaded group, ties to the lower
 * index): for a given selection the numbers are the same for any thread count.
 * Packing a query tile once per task instead of once per pair (a first version's tasks per
 * key block, with a dQ partial per kept pair: B T n C floats) took the backward at T = 16384,
 * C = 512 from about 23 to about 30 GFLOP/s (one thread, CPU time, busy machine). */

static int bwd_groups(const tblock_sel *s) {
    int bh = s->B * s->H, want = bh >= 8 ? 1 : (8 + bh - 1) / bh;
    return ft_imin(want, ft_imin(s->ntiles, TBLOCK_BWD_GROUPS));
}

size_t tblock_scratch_floats(const tblock_sel *s, int C) {
    int G = bwd_groups(s);
    return (size_t)s->B * s->T * ((size_t)s->H + (G > 1 ? (size_t)G * C : 0));
}

typedef struct {
    int w, j;
} blk_work;

/* Largest work first, then the lower block. */
static int blk_cmp(const void *a, const void *b) {
    const blk_work *x = a, *y = b;
    return x->w != y->w ? (x->w < y->w) - (x->w > y->w) : (x->j > y->j) - (x->j < y->j);
}

/* grp[j] (j < ntiles) = the group of block j in head bh: by work, largest first, each to
 * the least loaded group (ties: the lower group). */
static void assign_groups(const tblock_sel *s, int bh, int G, int *grp, blk_work *bw) {
    int nt = s->ntiles;
    long load[TBLOCK_BWD_GROUPS] = {0};
    for (int j = 0; j < nt; j++) bw[j] = (blk_work){0, j};
    for (int i = 0; i < nt; i++)
        for (int a = 0; a < s->count[(size_t)bh * nt + i]; a++) bw[s->blocks[((size_t)bh * nt + i) * s->n + a]].w++;
    qsort(bw, (size_t)nt, sizeof *bw, blk_cmp);
    for (int x = 0; x < nt; x++) {
        int best = 0;
        for (int g = 1; g < G; g++) best = load[g] < load[best] ? g : best;
        grp[bw[x].j] = best, load[best] += bw[x].w;
    }
}

typedef struct {
    float *Kp, *Vp, *dK, *dV;         /* the owned key blocks, rows x ldp each, in order */
    float *Qt, *dOt, *Qn, *dOn, *dQ; /* the current query tile */
    float *St, *dPt, *L, *D;          /* scores, dP (rows x ldt); lse, D of the query tile */
    int *slot;                        /* per block: its place among the owned ones, or -1 */
} bwd_buf;

static bwd_buf bwd_buf_make(const tb_geom *g, int maxown, int ntiles) {
    bwd_buf w;
    size_t r = (size_t)g->rows, t = (size_t)g->ldt, p = r * g->ldp, own = (size_t)maxown * p;
    size_t n = 4 * own + 3 * p + 2 * (size_t)g->hs * t + 2 * r * t + 2 * t;
    w.Kp = xmalloc_aligned(n * sizeof(float));
    memset(w.Kp, 0, n * sizeof(float)); /* the never-stored rows past nq read stale, finite values */
    w.Vp = w.Kp + own, w.dK = w.Vp + own, w.dV = w.dK + own, w.Qn = w.dV + own, w.dOn = w.Qn + p, w.dQ = w.dOn + p;
    w.Qt = w.dQ + p, w.dOt = w.Qt + (size_t)g->hs * t, w.St = w.dOt + (size_t)g->hs * t, w.dPt = w.St + r * t;
    w.L = w.dPt + r * t, w.D = w.L + t;
    w.slot = xmalloc((size_t)ntiles * sizeof(int));
    return w;
}

/* One head's views for the backward: q (row 0 of qkv; stride 3C), dout (stride C), lse, D
 * (stride 1), its dQ columns of dqkv (stride 3C) and of dQ_g (stride C; NULL when G = 1), its
 * kept blocks per tile and the group of each block. */
typedef struct {
    const float *q, *dout, *lse, *D;
    float *dq, *dqp;
    const int *kept, *count, *grp;
} bwd_head;

/* Packs query tile t: scale Q^T, dO^T, and Q, dO by rows; lse (+inf past nq: P = 0 there), D
 * (0 past nq); zeroes dQ. */
static void bwd_pack_query(bwd_buf *w, const tb_geom *g, const bwd_head *hd, const tb_tile *t) {
    size_t ld = (size_t)3 * g->C;
    const float *Q = hd->q + (size_t)t->q0 * ld, *dO = hd->dout + (size_t)t->q0 * g->C;
    ft_pack_cols(w->Qt, g->ldt, Q, ld, t->nq, g->hs, g->scale);
    ft_pack_cols(w->dOt, g->ldt, dO, (size_t)g->C, t->nq, g->hs, 1.0f);
    ft_pack_rows(w->Qn, g->ldp, t->nr, Q, ld, t->nq, g->hs, 1.0f);
    ft_pack_rows(w->dOn, g->ldp, t->nr, dO, (size_t)g->C, t->nq, g->hs, 1.0f);
    for (int c = 0; c < g->ldt; c++) {
        w->L[c] = c < t->nq ? hd->lse[t->q0 + c] : INFINITY;
        w->D[c] = c < t->nq ? hd->D[t->q0 + c] : 0.0f;
    }
    memset(w->dQ, 0, sizeof(float) * (size_t)t->nr * g->ldp);
}

/* One pair: owned block o (keys [k0, k0 + nk)) against query tile t:
 *   S^T = K (scale Q)^T;  dP^T = V dO^T;  P = exp(S - lse) (0 above the diagonal);
 *   dS = P (dP - D);  dV += P^T dO;  dK += dS^T Q;  dQ += dS K   (dK, dQ scaled when stored). */
static void bwd_pair(bwd_buf *w, const tb_geom *g, int o, int k0, int nk, const tb_tile *t) {
    int ldt = g->ldt, ldp = g->ldp, hs = g->hs, hsp = g->hsp, nj = ft_round_up(nk, FK_MR), diag = k0 == t->q0;
    size_t off = (size_t)o * g->rows * ldp;
    ft_tile_nt(w->St, ldt, w->Kp + off, ldp, w->Qt, hs, nj, t->ni, diag, -INFINITY, nk, t->nq);
    ft_tile_nt(w->dPt, ldt, w->Vp + off, ldp, w->dOt, hs, nj, t->ni, diag, 0.0f, nk, t->nq);
    if (diag) ft_mask_diag(w->St, ldt, nj, t->ni, k0, t->q0);
    ft_bwd_softmax(w->St, w->dPt, ldt, w->L, w->D, nj, t->ni);
    ft_tile_acc(w->dV + off, ldp, hsp, nj, NULL, w->St, ldt, 1, w->dOn, t->nq, 2 * diag, nk, hs);
    ft_tile_acc(w->dK + off, ldp, hsp, nj, NULL, w->dPt, ldt, 1, w->Qn, t->nq, 2 * diag, nk, hs);
    ft_tile_acc(w->dQ, ldp, hsp, t->nr, NULL, w->dPt, 1, ldt, w->Kp + off, nk, diag, t->nq, hs);
}

/* Packs the K, V rows of the blocks of group gi into their slots; returns how many. */
static int bwd_pack_owned(bwd_buf *w, const tb_geom *g, const bwd_head *hd, int gi, int nt) {
    size_t ld = (size_t)3 * g->C;
    int nown = 0;
    for (int j = 0; j < nt; j++) {
        w->slot[j] = hd->grp[j] == gi ? nown++ : -1;
        if (w->slot[j] < 0) continue;
        size_t off = (size_t)w->slot[j] * g->rows * g->ldp;
        int k0 = j * g->b, nk = ft_imin(g->b, g->T - k0);
        ft_pack_rows(w->Kp + off, g->ldp, g->rows, hd->q + g->C + (size_t)k0 * ld, ld, nk, g->hs, 1.0f);
        ft_pack_rows(w->Vp + off, g->ldp, g->rows, hd->q + 2 * g->C + (size_t)k0 * ld, ld, nk, g->hs, 1.0f);
    }
    memset(w->dK, 0, sizeof(float) * (size_t)nown * g->rows * g->ldp);
    memset(w->dV, 0, sizeof(float) * (size_t)nown * g->rows * g->ldp);
    return nown;
}

/* Tile i's pairs with the owned blocks, in the tile's (ascending) order; then its scale dQ
 * into dqkv (G = 1: this task is the only writer of those rows) or into dQ_g (zeros when the
 * tile kept none of the owned blocks). */
static void bwd_tile(bwd_buf *w, const tb_geom *g, const bwd_head *hd, int i, int n) {
    const int *kept = hd->kept + (size_t)i * n;
    int c = hd->count[i], any = 0;
    tb_tile t = tile_of(g, i);
    for (int a = 0; a < c; a++) any |= w->slot[kept[a]] >= 0;
    if (!any) {
        for (int r = 0; hd->dqp && r < t.nq; r++) memset(hd->dqp + (size_t)(t.q0 + r) * g->C, 0, sizeof(float) * g->hs);
        return;
    }
    bwd_pack_query(w, g, hd, &t);
    for (int a = 0; a < c; a++) {
        int j = kept[a];
        if (w->slot[j] >= 0) bwd_pair(w, g, w->slot[j], j * g->b, ft_imin(g->b, g->T - j * g->b), &t);
    }
    for (int r = 0; r < t.nq; r++) {
        const float *src = w->dQ + (size_t)r * g->ldp;
        if (!hd->dqp) fk_add(hd->dq + (size_t)(t.q0 + r) * 3 * g->C, src, g->hs, g->scale);
        else fk_copy(hd->dqp + (size_t)(t.q0 + r) * g->C, src, g->hs, g->scale);
    }
}

/* Task (b, h, gi): packs its blocks, walks the tiles, then adds scale dK and dV of its blocks
 * into dqkv. */
static void bwd_group(bwd_buf *w, const tb_geom *g, const bwd_head *hd, int gi, int nt, int n) {
    size_t ld = (size_t)3 * g->C;
    bwd_pack_owned(w, g, hd, gi, nt);
    for (int i = 0; i < nt; i++) bwd_tile(w, g, hd, i, n);
    for (int j = 0; j < nt; j++) {
        if (w->slot[j] < 0) continue;
        size_t off = (size_t)w->slot[j] * g->rows * g->ldp;
        for (int r = 0, k0 = j * g->b; r < ft_imin(g->b, g->T - k0); r++) {
            fk_add(hd->dq + (size_t)(k0 + r) * ld + g->C, w->dK + off + (size_t)r * g->ldp, g->hs, g->scale);
            fk_add(hd->dq + (size_t)(k0 + r) * ld + 2 * g->C, w->dV + off + (size_t)r * g->ldp, g->hs, 1.0f);
        }
    }
}

/* dQ += dQ_0 + dQ_1 + ... (fixed order), parallel over rows. */
static void bwd_reduce_dq(float *dqkv, const float *dqp, int B, int T, int C, int G) {
    size_t gstride = (size_t)B * T * C;
#pragma omp for schedule(static)
    for (long bt = 0; bt < (long)B * T; bt++) {
        float *dst = dqkv + (size_t)bt * 3 * C;
        for (int g = 0; g < G; g++) fk_add(dst, dqp + g * gstride + (size_t)bt * C, C, 1.0f);
    }
}

static bwd_head bwd_head_of(const tblock_sel *s, const tb_geom *g, float *dqkv, const float *dout,
                            const float *qkv, const float *lse, float *scratch, const int *grp, int bb, int h,
                            int gi, int G) {
    size_t bh = (size_t)bb * s->H + h, row = (size_t)bb * s->T * 3 * g->C + (size_t)h * g->hs;
    size_t orow = (size_t)bb * s->T * g->C + (size_t)h * g->hs, gstride = (size_t)s->B * s->T * g->C;
    float *dqp = G > 1 ? scratch + (size_t)s->B * s->H * s->T + gi * gstride + orow : NULL;
    bwd_head hd = {qkv + row, dout + orow, lse + bh * s->T, scratch + bh * s->T, dqkv + row, dqp,
                   s->blocks + bh * s->ntiles * s->n, s->count + bh * s->ntiles, grp + bh * s->ntiles};
    return hd;
}

/* The most blocks one task owns (its buffers' size). */
static int max_owned(const int *grp, size_t nbh, int nt, int G) {
    int most = 0;
    for (size_t bh = 0; bh < nbh; bh++)
        for (int g = 0; g < G; g++) {
            int c = 0;
            for (int j = 0; j < nt; j++) c += grp[bh * nt + j] == g;
            most = c > most ? c : most;
        }
    return most;
}

/* Block groups per (b, h) (see above), then in parallel: D per (b, h); the (b, h, group)
 * tasks; the fixed-order dQ reduction. Each thread owns its tile buffers. */
void tblock_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                     const float *lse, int C, const tblock_sel *s, float *scratch) {
    tb_geom g = geom_of(s, C);
    int B = s->B, H = s->H, nt = s->ntiles, G = bwd_groups(s);
    int *grp = xmalloc((size_t)B * H * nt * sizeof(int));
    blk_work *bw = xmalloc((size_t)nt * sizeof *bw);
    for (int bh = 0; bh < B * H; bh++) assign_groups(s, bh, G, grp + (size_t)bh * nt, bw);
    free(bw);
    int maxown = max_owned(grp, (size_t)B * H, nt, G);
#pragma omp parallel
    {
        bwd_buf w = bwd_buf_make(&g, maxown, nt);
        ft_bwd_dot(scratch, dout, out, B, s->T, C, H);
#pragma omp for collapse(3) schedule(dynamic)
        for (int bb = 0; bb < B; bb++)
            for (int h = 0; h < H; h++)
                for (int gi = 0; gi < G; gi++) {
                    bwd_head hd = bwd_head_of(s, &g, dqkv, dout, qkv, lse, scratch, grp, bb, h, gi, G);
                    bwd_group(&w, &g, &hd, gi, nt, s->n);
                }
        if (G > 1) bwd_reduce_dq(dqkv, scratch + (size_t)B * H * s->T, B, s->T, C, G);
        free(w.Kp), free(w.slot);
    }
    free(grp);
}
