/* cuda-parity, the tile-shared block kernels (src/cuda/tblock_kernels.cu) against the CPU's tblock
 * (include/sattn/tblock.h), by parity.c's rule:
 *  - selection, per (batch row, head, tile): count = min(n, i+1), the own block last, the
 *    others ascending, distinct and earlier, -1 after count; the kept blocks a top-(n-1) of
 *    the exact (double) causal scores qbar_{i-1} . kbar_j within tol (the smallest kept score
 *    >= the largest dropped one - 2 tol), and the same SET as the exact top-(n-1) (ties to
 *    the earlier block) unless the (n-1)-th and n-th exact scores are within 2 tol (a near
 *    tie: counted, not failed; an exact tie, from identical mean keys, must go to the earlier
 *    block); tol = 1e-4 max(1, max |score| of the row). And the same list as the CPU's
 *    tblock_select (the causal selection: tile i scores earlier blocks with the PREVIOUS
 *    tile's pooled query), except at such a near tie.
 *  - forward (out, lse) and backward (dq, dk, dv separately, each relative to the largest
 *    element of the whole gradient: at T = 1 dq and dk are exactly 0, a softmax over one key,
 *    and both sides hold rounding noise; the gradient is what the call adds to a random
 *    dqkv) vs tblock_forward / tblock_backward on the SAME selection (the
 *    CPU's, uploaded: the kernels take any selection), rel <= 1e-4, outputs
 *    poisoned before the call; with n >= ntiles also vs flash_attention_forward (dense);
 *  - the backward run twice gives the same bits (deterministic). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parity.h"
#include "sattn/core.h"
#include "sattn/flash.h"
#include "sattn/tblock.h"

typedef struct {
    int B, T, C, H, b, n, nt, nr; /* nr: the row stride, min(n, nt) */
} tb_shape;

/* Exact causal scores of tile i (i >= 1) of (bb, h): ex[j] = qbar_{i-1} . kbar_j, j < i, in
 * double. */
static void ref_scores(const tb_shape *s, const float *qkv, int bb, int h, int i, double *ex) {
    int d = s->C / s->H, ld = 3 * s->C;
    const float *x = qkv + (size_t)bb * s->T * ld + (size_t)h * d;
    double *qb = xcalloc((size_t)d, sizeof(double));
    for (int r = (i - 1) * s->b; r < i * s->b; r++)
        for (int e = 0; e < d; e++) qb[e] += x[(size_t)r * ld + e] / (double)s->b;
    for (int j = 0; j < i; j++) {
        double acc = 0;
        for (int e = 0; e < d; e++) {
            double kb = 0;
            for (int r = j * s->b; r < (j + 1) * s->b; r++) kb += x[(size_t)r * ld + s->C + e];
            acc += qb[e] * kb / s->b;
        }
        ex[j] = acc;
    }
    free(qb);
}

/* The exact top-m of ex[0..i) (higher first, ties to the earlier), as flags in pick. */
static void ref_pick(const double *ex, int i, int m, unsigned char *pick) {
    memset(pick, 0, (size_t)i + 1);
    for (int r = 0; r < m; r++) {
        int best = -1;
        for (int j = 0; j < i; j++)
            if (!pick[j] && (best < 0 || ex[j] > ex[best])) best = j;
        pick[best] = 1;
    }
}

/* One tile row: 0 exact, 1 near-tie, -1 failure (why). g: the GPU's nr entries, gc its count;
 * cpu: the CPU's (tblock_select). */
static int check_tile(const tb_shape *s, const int *g, int gc, const int *cpu, int i, const double *ex, char *why,
                      size_t nw) {
    int want = i + 1 < s->n ? i + 1 : s->n, m = want - 1;
    if (gc != want) return snprintf(why, nw, "count %d, want %d", gc, want), -1;
    if (g[m] != i) return snprintf(why, nw, "last kept %d, not the own block %d", g[m], i), -1;
    for (int a = 0; a < m; a++)
        if (g[a] < 0 || g[a] >= i || (a && g[a] <= g[a - 1]))
            return snprintf(why, nw, "entry %d = %d: not ascending earlier blocks", a, g[a]), -1;
    for (int a = want; a < s->nr; a++)
        if (g[a] != -1) return snprintf(why, nw, "entry %d after count = %d, not -1", a, g[a]), -1;
    if (m == i) return memcmp(g, cpu, (size_t)want * sizeof(int)) ? (snprintf(why, nw, "not the CPU's list"), -1) : 0;
    double scale = 1, lo = INFINITY, hi = -INFINITY;
    unsigned char *kept = xcalloc((size_t)i + 1, 1), *ref = xcalloc((size_t)i + 1, 1);
    for (int j = 0; j < i; j++) scale = fabs(ex[j]) > scale ? fabs(ex[j]) : scale;
    for (int a = 0; a < m; a++) kept[g[a]] = 1;
    for (int j = 0; j < i; j++) {
        if (kept[j]) lo = ex[j] < lo ? ex[j] : lo;
        else hi = ex[j] > hi ? ex[j] : hi;
    }
    double tol = TOL * scale;
    int rc = 0;
    if (m > 0 && lo < hi - 2 * tol) rc = -1, snprintf(why, nw, "kept score %.7g below a dropped %.7g", lo, hi);
    ref_pick(ex, i, m, ref);
    double kth = INFINITY, next = -INFINITY; /* the exact m-th and (m+1)-th scores */
    for (int j = 0; j < i; j++) {
        if (ref[j]) kth = ex[j] < kth ? ex[j] : kth;
        else next = ex[j] > next ? ex[j] : next;
    }
    /* an exact tie comes from identical mean keys, whose float scores are identical too:
     * there the rule (the earlier block) must hold */
    int clear = kth - next > 2 * tol || kth == next;
    if (!rc && memcmp(kept, ref, (size_t)i)) {
        rc = clear ? -1 : 1;
        if (rc < 0) snprintf(why, nw, "a different set than the exact top, gap %.3g at the (n-1)-th score", kth - next);
    }
    if (!rc && memcmp(g, cpu, (size_t)want * sizeof(int))) {
        rc = clear ? -1 : 1;
        if (rc < 0) snprintf(why, nw, "not the CPU's list, gap %.3g at the (n-1)-th score", kth - next);
    }
    free(kept), free(ref);
    return rc;
}

/* The GPU selection (blocks, count as downloaded) against the causal definition and the CPU's. */
static void check_select(ctx *c, const tb_shape *s, const float *qkv, const int *gb, const int *gcnt,
                         const tblock_sel *sel) {
    int exact = 0, near = 0, bad = 0;
    char first[256] = "", why[200];
    double *ex = xmalloc(((size_t)s->nt + 1) * sizeof(double));
    for (int bb = 0; bb < s->B; bb++)
        for (int h = 0; h < s->H; h++)
            for (int i = 0; i < s->nt; i++) {
                size_t t = ((size_t)bb * s->H + h) * s->nt + i;
                if (i > 0) ref_scores(s, qkv, bb, h, i, ex);
                int rc = check_tile(s, gb + t * s->nr, gcnt[t], sel->blocks + t * s->nr, i, ex, why, sizeof why);
                exact += rc == 0, near += rc == 1;
                if (rc < 0 && !bad++) snprintf(first, sizeof first, "b %d head %d tile %d: %s", bb, h, i, why);
            }
    char name[160];
    snprintf(name, sizeof name, "tblock select B=%d T=%d C=%d H=%d b=%d n=%d", s->B, s->T, s->C, s->H, s->b, s->n);
    c->checks++, c->near_rows += near, c->rows += exact + near + bad;
    if (bad) c->fails++;
    printf("%-4s %-58s rows %d exact, %d near-tie%s%s\n", bad ? "FAIL" : "ok", name, exact, near,
           bad ? "; first failure: " : "", first);
    free(ex);
}

/* The gradient a call added to a random dqkv, split into its q, k, v thirds (each (B T, C)). */
static void grad_parts(const float *after, const float *before, size_t rows, int C, float *parts) {
    for (size_t r = 0; r < rows; r++)
        for (int p = 0; p < 3; p++)
            for (int e = 0; e < C; e++)
                parts[(size_t)p * rows * C + r * C + e] = after[r * 3 * C + (size_t)p * C + e] - before[r * 3 * C + (size_t)p * C + e];
}

/* Device buffers of one case. */
typedef struct {
    float *qkv, *out, *lse, *dqkv, *dout;
    int *blocks, *count;
} tb_dev;

static void run_select(ctx *c, const tb_shape *s, const float *qkv, const tblock_sel *sel, const tb_dev *dv) {
    size_t ntl = (size_t)s->B * s->H * s->nt, nb = ntl * s->nr;
    int *junk = xmalloc((nb + 1) * sizeof(int)), *gb = xmalloc((nb + 1) * sizeof(int)), *gc = xmalloc(ntl * sizeof(int));
    memset(junk, 0x5A, (nb + 1) * sizeof(int)); /* not -1: the entries after count must be written */
    sa_cuda_upload(c->g, dv->blocks, junk, nb * sizeof(int));
    sa_cuda_upload(c->g, dv->count, junk, ntl * sizeof(int));
    sa_cuda_tblock_select(c->g, dv->qkv, s->B, s->T, s->C, s->H, s->b, s->n, dv->blocks, dv->count);
    sa_cuda_download(c->g, gb, dv->blocks, nb * sizeof(int));
    sa_cuda_download(c->g, gc, dv->count, ntl * sizeof(int));
    check_select(c, s, qkv, gb, gc, sel);
    free(junk), free(gb), free(gc);
}

/* Forward on the CPU's selection sel (uploaded): out and lse vs tblock_forward (and flash when
 * dense). cout, clse get the CPU's. */
static void run_forward(ctx *c, const tb_shape *s, const float *qkv, const tblock_sel *sel, const tb_dev *dv,
                        float *cout, float *clse) {
    size_t no = (size_t)s->B * s->T * s->C, nl = (size_t)s->B * s->H * s->T;
    size_t ntl = (size_t)s->B * s->H * s->nt;
    float *go = xmalloc(no * 4), *gl = xmalloc(nl * 4);
    char name[160];
    tblock_forward(cout, clse, qkv, s->C, sel);
    sa_cuda_upload(c->g, dv->blocks, sel->blocks, ntl * s->nr * sizeof(int));
    sa_cuda_upload(c->g, dv->count, sel->count, ntl * sizeof(int));
    sa_cuda_poison(c->g, dv->out, no * 4), sa_cuda_poison(c->g, dv->lse, nl * 4);
    sa_cuda_tblock_forward(c->g, dv->out, dv->lse, dv->qkv, s->B, s->T, s->C, s->H, s->b, s->n, dv->blocks, dv->count);
    sa_cuda_download(c->g, go, dv->out, no * 4), sa_cuda_download(c->g, gl, dv->lse, nl * 4);
    snprintf(name, sizeof name, "tblock forward out B=%d T=%d C=%d H=%d b=%d n=%d", s->B, s->T, s->C, s->H, s->b, s->n);
    check_close(c, name, go, cout, no);
    snprintf(name, sizeof name, "tblock forward lse (d=%d)", s->C / s->H);
    check_close(c, name, gl, clse, nl);
    if (s->n >= s->nt) { /* every block kept: dense causal attention */
        float *fo = xmalloc(no * 4), *fl = xmalloc(nl * 4);
        flash_attention_forward(fo, fl, qkv, s->B, s->T, s->C, s->H);
        snprintf(name, sizeof name, "tblock forward n >= ntiles vs dense flash (out)");
        check_close(c, name, go, fo, no);
        free(fo), free(fl);
    }
    free(go), free(gl);
}

/* Backward from the CPU's out and lse on the same selection (already on the device). */
static void run_backward(ctx *c, const tb_shape *s, const float *qkv, const tblock_sel *sel, const tb_dev *dv,
                         const float *cout, const float *clse) {
    size_t rows = (size_t)s->B * s->T, nq = rows * 3 * s->C, no = rows * s->C, nl = (size_t)s->B * s->H * s->T;
    float *init = xmalloc(nq * 4), *dout = xmalloc(no * 4), *cpu = xmalloc(nq * 4), *gpu = xmalloc(nq * 4);
    float *gpu2 = xmalloc(nq * 4), *pc = xmalloc(nq * 4), *pg = xmalloc(nq * 4);
    float *scratch = xmalloc((tblock_scratch_floats(sel, s->C) + 1) * 4);
    fill(init, nq, &c->rng), fill(dout, no, &c->rng);
    memcpy(cpu, init, nq * 4);
    tblock_backward(cpu, dout, qkv, cout, clse, s->C, sel, scratch);
    sa_cuda_upload(c->g, dv->out, cout, no * 4), sa_cuda_upload(c->g, dv->lse, clse, nl * 4);
    sa_cuda_upload(c->g, dv->dout, dout, no * 4);
    for (int rep = 0; rep < 2; rep++) {
        sa_cuda_upload(c->g, dv->dqkv, init, nq * 4);
        sa_cuda_tblock_backward(c->g, dv->dqkv, dv->dout, dv->qkv, dv->out, dv->lse, s->B, s->T, s->C, s->H, s->b, s->n,
                                dv->blocks, dv->count);
        sa_cuda_download(c->g, rep ? gpu2 : gpu, dv->dqkv, nq * 4);
    }
    grad_parts(cpu, init, rows, s->C, pc), grad_parts(gpu, init, rows, s->C, pg);
    static const char *part[3] = {"dq", "dk", "dv"};
    char name[160];
    double scale = 0; /* the whole gradient's largest element */
    for (size_t i = 0; i < nq; i++) scale = fabs(pc[i]) > scale ? fabs(pc[i]) : scale;
    for (int p = 0; p < 3; p++) {
        snprintf(name, sizeof name, "tblock backward %s B=%d T=%d C=%d H=%d b=%d n=%d", part[p], s->B, s->T, s->C, s->H,
                 s->b, s->n);
        check_close_scaled(c, name, pg + (size_t)p * no, pc + (size_t)p * no, no, scale);
    }
    report(c, "tblock backward run twice: the same bits", memcmp(gpu, gpu2, nq * 4) ? 1.0 : 0.0, 0);
    free(init), free(dout), free(cpu), free(gpu), free(gpu2), free(pc), free(pg), free(scratch);
}

/* ties: every odd block's keys a copy of the block before (equal mean keys: exact ties). */
static void test_tblock(ctx *c, int B, int T, int C, int H, int b, int n, int ties) {
    tb_shape s = {B, T, C, H, b, n, (T + b - 1) / b, 0};
    s.nr = sa_cuda_tblock_n(T, b, n);
    sattn_err e;
    if (sa_cuda_tblock_check(B, T, C, H, b, n, &e)) {
        printf("FAIL tblock: %s\n", e.msg);
        c->checks++, c->fails++;
        return;
    }
    size_t rows = (size_t)B * T, nq = rows * 3 * C, no = rows * C, nl = (size_t)B * H * T;
    size_t ntl = (size_t)B * H * s.nt;
    float *qkv = xmalloc(nq * 4), *cout = xmalloc(no * 4), *clse = xmalloc(nl * 4);
    fill(qkv, nq, &c->rng);
    for (int bb = 0; ties && bb < B; bb++)
        for (int t = b; t < T; t++)
            if ((t / b) % 2)
                memcpy(qkv + ((size_t)bb * T + t) * 3 * C + C, qkv + ((size_t)bb * T + t - b) * 3 * C + C, (size_t)C * 4);
    tb_dev dv = {dup_dev(c, qkv, nq * 4), sa_cuda_alloc(c->g, no * 4), sa_cuda_alloc(c->g, nl * 4),
                 sa_cuda_alloc(c->g, nq * 4), sa_cuda_alloc(c->g, no * 4),
                 sa_cuda_alloc(c->g, ntl * s.nr * sizeof(int)), sa_cuda_alloc(c->g, ntl * sizeof(int))};
    tblock_sel sel;
    if (tblock_sel_init(&sel, B, H, T, b, n, &e)) die_at(__FILE__, __LINE__, "%s", e.msg);
    tblock_select(&sel, qkv, C);
    run_select(c, &s, qkv, &sel, &dv);
    run_forward(c, &s, qkv, &sel, &dv, cout, clse);
    run_backward(c, &s, qkv, &sel, &dv, cout, clse);
    tblock_sel_free(&sel);
    sa_cuda_free(c->g, dv.qkv), sa_cuda_free(c->g, dv.out), sa_cuda_free(c->g, dv.lse), sa_cuda_free(c->g, dv.dqkv);
    sa_cuda_free(c->g, dv.dout), sa_cuda_free(c->g, dv.blocks), sa_cuda_free(c->g, dv.count);
    free(qkv), free(cout), free(clse);
}

/* Awkward sizes: T not a multiple of b (a partial last tile), B = 2, several heads, d of 5, 40,
 * 64, 100 and 128, b below, at and above the kernels' 64-row tiles, n = 1, n < ntiles and
 * n >= ntiles (dense causal). */
void parity_tblock(ctx *c, int quick) {
    test_tblock(c, 1, 1, 64, 1, 64, 1, 0);
    test_tblock(c, 2, 200, 128, 2, 64, 2, 0);
    test_tblock(c, 1, 130, 80, 2, 16, 3, 0);
    test_tblock(c, 1, 45, 20, 4, 7, 3, 0);
    test_tblock(c, 2, 77, 256, 2, 64, 8, 0);
    test_tblock(c, 1, 230, 100, 1, 100, 2, 0);
    test_tblock(c, 1, 300, 64, 1, 16, 1, 0);
    test_tblock(c, 2, 520, 64, 1, 4, 5, 0);   /* 130 tiles: the selection's rounds and chunks */
    test_tblock(c, 1, 333, 64, 2, 8, 4, 1);   /* exact ties: the earlier block */
    if (quick) return;
    test_tblock(c, 2, 1000, 256, 4, 64, 4, 0);
    test_tblock(c, 1, 600, 128, 2, 64, 8, 0);
    test_tblock(c, 1, 700, 256, 2, 32, 30, 0);
    test_tblock(c, 1, 513, 64, 1, 64, 100, 0);
    test_tblock(c, 1, 600, 64, 1, 4, 40, 1);   /* 150 tiles, 39 rounds, exact ties */
}
