/* Tests of tblock.h: tile-shared block-sparse attention.
 *
 * The reference is plain dense causal attention in double with the selection's mask (query t
 * of tile i sees key s iff s <= t and block(s) is kept by tile i), written here in the most
 * direct loop form; its own gradient is checked against central finite differences. The
 * kernels run on random inputs of awkward sizes (T not a multiple of b, T < b, T = 1; b = 64,
 * and b in {7, 16, 100}: not multiples of the 6 x 16 micro-blocks), n = 1 (the own block only),
 * n = 2, 3, 8 and n >= the tiles (then it is dense causal attention: also compared with
 * flash.h), hs in {16, 24, 64}, B = 2, H = 3. Tolerances as tests/test_flash.c's, max |a - b| /
 * max |b|: forward 1e-5 (float sums in another order: ~1e-6; a wrong mask is O(1e-2..1)),
 * backward 1e-4. Outputs and scratch start as NaN; the backward accumulates. The selection is
 * checked for its invariants (the own block always kept and last, nothing after the tile,
 * ascending, count min(n, i + 1)), for ties (to the earlier block) and against a double
 * top-(n-1) of the MoBA scores. The backward (and forward) are bit-identical for 1, 2 and 3
 * threads. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref.h"
#include "sattn/flash.h"
#include "sattn/rng.h"
#include "sattn/tblock.h"

#define FWD_TOL 1e-5
#define BWD_TOL 1e-4

static float *rand_f(size_t n, float scale, rng_t *r) {
    float *f = ref_falloc(n);
    ref_fill_normal(f, n, scale, r);
    return f;
}

static float *nan_f(size_t n) {
    float *f = ref_falloc(n);
    ref_fill_value(f, n, NAN);
    return f;
}

/* max|a - b| / max|b| (NaN anywhere gives infinity). */
static double rel_err_ff(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d != d) return INFINITY;
        if (d > num) num = d;
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return num / (den > 0 ? den : 1);
}

static tblock_sel sel_make(int B, int H, int T, int b, int n) {
    tblock_sel s;
    sattn_err e;
    cr_assert_eq(tblock_sel_init(&s, B, H, T, b, n, &e), 0, "%s", e.msg);
    return s;
}

/* ---- the double reference ---- */

/* Whether query t may see key u in (bb, h): u <= t and block(u) kept by tile(t). */
static int allowed(const tblock_sel *s, int bb, int h, int t, int u) {
    if (u > t) return 0;
    int i = t / s->b, j = u / s->b;
    const int *kept = tblock_sel_tile(s, bb, h, i);
    for (int a = 0; a < s->count[((size_t)bb * s->H + h) * s->ntiles + i]; a++)
        if (kept[a] == j) return 1;
    return 0;
}

/* p[u] = softmax over the allowed keys u of scale q_t . k_u (0 elsewhere); returns the lse. */
static double ref_probs(double *p, const double *qkv, const tblock_sel *s, int bb, int h, int t, int C) {
    int T = s->T, hs = C / s->H;
    const double *q = qkv + ((size_t)bb * T + t) * 3 * C + h * hs;
    double mx = -INFINITY, sum = 0;
    for (int u = 0; u < T; u++) {
        p[u] = -INFINITY;
        if (!allowed(s, bb, h, t, u)) continue;
        const double *k = qkv + ((size_t)bb * T + u) * 3 * C + C + h * hs;
        double d = 0;
        for (int c = 0; c < hs; c++) d += q[c] * k[c];
        p[u] = d / sqrt((double)hs);
        mx = p[u] > mx ? p[u] : mx;
    }
    for (int u = 0; u < T; u++) sum += p[u] == -INFINITY ? 0 : exp(p[u] - mx);
    for (int u = 0; u < T; u++) p[u] = p[u] == -INFINITY ? 0 : exp(p[u] - mx) / sum;
    return mx + log(sum);
}

/* out (B,T,C), lse (B,H,T) (may be NULL) of the masked attention, in double. */
static void ref_forward(double *out, double *lse, const double *qkv, const tblock_sel *s, int C) {
    int T = s->T, hs = C / s->H;
    double *p = ref_dalloc((size_t)T);
    for (int bb = 0; bb < s->B; bb++)
        for (int h = 0; h < s->H; h++)
            for (int t = 0; t < T; t++) {
                double l = ref_probs(p, qkv, s, bb, h, t, C), *o = out + ((size_t)bb * T + t) * C + h * hs;
                if (lse) lse[((size_t)bb * s->H + h) * T + t] = l;
                for (int c = 0; c < hs; c++) o[c] = 0;
                for (int u = 0; u < T; u++)
                    for (int c = 0; c < hs && p[u] != 0; c++) o[c] += p[u] * qkv[((size_t)bb * T + u) * 3 * C + 2 * C + h * hs + c];
            }
    free(p);
}

/* dqkv += the gradient of sum dout . out (the selection fixed):
 *   dv_u += p_u do_t;  dp_u = do_t . v_u;  ds_u = p_u (dp_u - sum_w p_w dp_w);
 *   dq_t += scale sum_u ds_u k_u;  dk_u += scale ds_u q_t. */
static void ref_backward(double *dqkv, const double *dout, const double *qkv, const tblock_sel *s, int C) {
    int T = s->T, hs = C / s->H;
    double scale = 1.0 / sqrt((double)hs), *p = ref_dalloc((size_t)T), *dp = ref_dalloc((size_t)T);
    for (int bb = 0; bb < s->B; bb++)
        for (int h = 0; h < s->H; h++)
            for (int t = 0; t < T; t++) {
                ref_probs(p, qkv, s, bb, h, t, C);
                const double *dot = dout + ((size_t)bb * T + t) * C + h * hs;
                size_t rt = ((size_t)bb * T + t) * 3 * C + h * hs;
                double pdp = 0;
                for (int u = 0; u < T; u++) {
                    size_t ru = ((size_t)bb * T + u) * 3 * C + h * hs;
                    dp[u] = 0;
                    if (p[u] == 0) continue; /* masked (or underflowed: adds zeros either way) */
                    for (int c = 0; c < hs; c++) dp[u] += dot[c] * qkv[ru + 2 * C + c], dqkv[ru + 2 * C + c] += p[u] * dot[c];
                    pdp += p[u] * dp[u];
                }
                for (int u = 0; u < T; u++) {
                    if (p[u] == 0) continue;
                    size_t ru = ((size_t)bb * T + u) * 3 * C + h * hs;
                    double ds = p[u] * (dp[u] - pdp) * scale;
                    for (int c = 0; c < hs; c++) dqkv[rt + c] += ds * qkv[ru + C + c], dqkv[ru + C + c] += ds * qkv[rt + c];
                }
            }
    free(p), free(dp);
}

/* ---- the reference's own gradient ---- */

static double ref_loss(const double *qkv, const double *dout, const tblock_sel *s, int C) {
    size_t no = (size_t)s->B * s->T * C;
    double *out = ref_dalloc(no), l = 0;
    ref_forward(out, NULL, qkv, s, C);
    for (size_t i = 0; i < no; i++) l += out[i] * dout[i];
    free(out);
    return l;
}

/* Central differences (h = 1e-5) of loss = sum dout . out on every qkv entry, the selection
 * held fixed, against ref_backward: max error 1e-7 relative to max |gradient|. */
Test(tblock, reference_gradient_finite_differences) {
    rng_t r;
    rng_seed(&r, 701);
    int B = 2, H = 2, hs = 3, C = H * hs, T = 11;
    tblock_sel s = sel_make(B, H, T, 3, 2);
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
    float *qf = rand_f(nq, 1.0f, &r), *df = rand_f(no, 1.0f, &r);
    tblock_select(&s, qf, C);
    double *qkv = ref_f2d(qf, nq), *dout = ref_f2d(df, no), *g = ref_dalloc(nq), *fd = ref_dalloc(nq);
    ref_backward(g, dout, qkv, &s, C);
    for (size_t i = 0; i < nq; i++) {
        double x = qkv[i], e = 1e-5;
        qkv[i] = x + e;
        double lp = ref_loss(qkv, dout, &s, C);
        qkv[i] = x - e;
        double lm = ref_loss(qkv, dout, &s, C);
        qkv[i] = x;
        fd[i] = (lp - lm) / (2 * e);
    }
    double err = ref_rel_err_dd(g, fd, nq);
    cr_assert(err < 1e-7, "reference gradient vs finite differences: rel err %.3g", err);
    cr_assert_gt(ref_max_abs(g, nq), 0.1, "the gradient is not trivially zero");
    tblock_sel_free(&s);
    free(qf), free(df), free(qkv), free(dout), free(g), free(fd);
}

/* ---- forward and backward against the reference ---- */

static void check_fd(const char *what, const tblock_sel *s, int hs, const float *a, const double *b, size_t n,
                     double tol) {
    double e = ref_rel_err(a, b, n);
    cr_assert(e <= tol, "%s B=%d H=%d T=%d hs=%d b=%d n=%d: rel err %.3g > %.1g", what, s->B, s->H, s->T, hs, s->b,
              s->n, e, tol);
}

/* dq, dk, dv parts of a (B,T,3C) gradient separately, so a small part cannot hide behind a
 * large one. */
static void check_parts(const tblock_sel *s, int C, const float *got, const double *want) {
    size_t rows = (size_t)s->B * s->T, no = rows * C;
    float *pf = ref_falloc(no);
    double *pd = ref_dalloc(no);
    for (int part = 0; part < 3; part++) {
        for (size_t i = 0; i < rows; i++)
            for (int c = 0; c < C; c++) pf[i * C + c] = got[i * 3 * C + part * C + c], pd[i * C + c] = want[i * 3 * C + part * C + c];
        char what[32];
        snprintf(what, sizeof what, "backward d%c", "qkv"[part]);
        check_fd(what, s, C / s->H, pf, pd, no, BWD_TOL);
    }
    free(pf), free(pd);
}

/* Forward (out, lse from NaN) and backward (into NaN-filled scratch; dqkv accumulates onto a
 * random P) of one case against the double reference. */
static void tblock_case(int B, int H, int T, int hs, int b, int n, float qscale, rng_t *r) {
    int C = H * hs;
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, nl = (size_t)B * H * T;
    tblock_sel s = sel_make(B, H, T, b, n);
    float *qkv = rand_f(nq, qscale, r), *out = nan_f(no), *lse = nan_f(nl), *dout = rand_f(no, 1.0f, r);
    tblock_select(&s, qkv, C);
    tblock_forward(out, lse, qkv, C, &s);
    double *dq = ref_f2d(qkv, nq), *dd = ref_f2d(dout, no), *rout = ref_dalloc(no), *rlse = ref_dalloc(nl);
    ref_forward(rout, rlse, dq, &s, C);
    check_fd("forward out", &s, hs, out, rout, no, FWD_TOL);
    check_fd("forward lse", &s, hs, lse, rlse, nl, FWD_TOL);

    float *P = rand_f(nq, 1.0f, r), *g = ref_falloc(nq), *scratch = nan_f(tblock_scratch_floats(&s, C));
    memcpy(g, P, nq * sizeof(float));
    double *rg = ref_dalloc(nq);
    tblock_backward(g, dout, qkv, out, lse, C, &s, scratch);
    ref_backward(rg, dd, dq, &s, C);
    for (size_t i = 0; i < nq; i++) g[i] -= P[i]; /* what it added */
    check_parts(&s, C, g, rg);
    tblock_sel_free(&s);
    free(qkv), free(out), free(lse), free(dout), free(dq), free(dd), free(rout), free(rlse), free(P), free(g);
    free(scratch), free(rg);
}

static const int HSS[] = {16, 24, 64};

/* b = 64 (the default) at T not a multiple of it, T < b and T = 1, with n from the own block
 * alone to more than the tiles; then n = 8 of 10 and 12 tiles. */
Test(tblock, forward_backward_b64) {
    rng_t r;
    rng_seed(&r, 702);
    static const int TS[] = {1, 5, 63, 64, 65, 200};
    static const int NS[] = {1, 2, 3, 8};
    for (int ti = 0; ti < 6; ti++)
        for (int hi = 0; hi < 3; hi++)
            for (int ni = 0; ni < 4; ni++) tblock_case(2, 3, TS[ti], HSS[hi], 64, NS[ni], 1.0f, &r);
    tblock_case(2, 3, 600, 16, 64, 8, 1.0f, &r);
    tblock_case(2, 3, 750, 64, 64, 8, 1.0f, &r);
}

/* Block sizes that are no multiple of the 6-row or 16-column micro-blocks, or above flash's
 * 96-row tiles. */
Test(tblock, forward_backward_other_b) {
    rng_t r;
    rng_seed(&r, 703);
    static const int BS[] = {7, 16, 100};
    static const int TS[] = {1, 6, 33, 101, 250};
    for (int bi = 0; bi < 3; bi++)
        for (int ti = 0; ti < 5; ti++)
            for (int hi = 0; hi < 3; hi++) {
                tblock_case(2, 3, TS[ti], HSS[hi], BS[bi], 1, 1.0f, &r);
                tblock_case(2, 3, TS[ti], HSS[hi], BS[bi], 3, 1.0f, &r);
            }
}

/* Peaked softmax (scores of tens): the running max must rescale the accumulator across the
 * kept blocks. */
Test(tblock, peaked_scores) {
    rng_t r;
    rng_seed(&r, 704);
    tblock_case(2, 3, 300, 24, 64, 3, 4.0f, &r);
    tblock_case(2, 3, 130, 16, 16, 4, 3.0f, &r);
}

/* The backward's split over (b, h, group of key blocks) at every group count: B H = 1 (G = 4),
 * 2 (G = 4), 3 (G = 3), 8 and 9 (G = 1: a task owns the head, dQ straight into dqkv), and
 * fewer tiles than groups (T = 40, b = 16: 3 tiles). */
Test(tblock, backward_every_group_count) {
    rng_t r;
    rng_seed(&r, 709);
    static const int BH[][2] = {{1, 1}, {1, 2}, {1, 3}, {2, 4}, {3, 3}};
    for (int c = 0; c < 5; c++) {
        tblock_case(BH[c][0], BH[c][1], 300, 16, 16, 3, 1.0f, &r);
        tblock_case(BH[c][0], BH[c][1], 40, 24, 16, 2, 1.0f, &r);
    }
}

/* n >= the tiles keeps every block: dense causal attention, so flash.h's forward and backward
 * give the same numbers (tolerances as flash's against naive). */
static void dense_case(int B, int H, int T, int hs, int b, rng_t *r) {
    int C = H * hs;
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, nl = (size_t)B * H * T;
    tblock_sel s = sel_make(B, H, T, b, (T + b - 1) / b + 2);
    float *qkv = rand_f(nq, 1.0f, r), *out = nan_f(no), *lse = nan_f(nl), *fo = nan_f(no), *fl = nan_f(nl);
    tblock_select(&s, qkv, C);
    for (size_t i = 0; i < (size_t)B * H * s.ntiles; i++)
        cr_assert_eq(s.count[i], (int)(i % s.ntiles) + 1, "dense: tile %zu keeps %d blocks", i % s.ntiles, s.count[i]);
    tblock_forward(out, lse, qkv, C, &s);
    flash_attention_forward(fo, fl, qkv, B, T, C, H);
    cr_assert(rel_err_ff(out, fo, no) <= FWD_TOL, "dense T=%d hs=%d: out vs flash %.3g", T, hs, rel_err_ff(out, fo, no));
    cr_assert(rel_err_ff(lse, fl, nl) <= FWD_TOL, "dense T=%d hs=%d: lse vs flash", T, hs);
    float *dout = rand_f(no, 1.0f, r), *g = ref_falloc(nq), *fg = ref_falloc(nq);
    float *sc = nan_f(tblock_scratch_floats(&s, C)), *fsc = nan_f(flash_scratch_floats(B, T, C, H));
    tblock_backward(g, dout, qkv, out, lse, C, &s, sc);
    flash_attention_backward(fg, dout, qkv, fo, fl, B, T, C, H, fsc);
    cr_assert(rel_err_ff(g, fg, nq) <= BWD_TOL, "dense T=%d hs=%d: dqkv vs flash %.3g", T, hs, rel_err_ff(g, fg, nq));
    tblock_sel_free(&s);
    free(qkv), free(out), free(lse), free(fo), free(fl), free(dout), free(g), free(fg), free(sc), free(fsc);
}

Test(tblock, dense_when_n_covers_all_blocks) {
    rng_t r;
    rng_seed(&r, 705);
    static const int TS[] = {1, 63, 65, 200, 333};
    for (int ti = 0; ti < 5; ti++)
        for (int hi = 0; hi < 3; hi++) dense_case(2, 3, TS[ti], HSS[hi], 64, &r);
    dense_case(2, 3, 97, 24, 7, &r);
}

/* ---- the selection ---- */

/* Invariants on every tile: count = min(n, i + 1); the blocks ascending, distinct, the last
 * the tile's own block i, none after the tile (so no key after a tile's last query is seen);
 * -1 after count. */
static void check_invariants(const tblock_sel *s) {
    for (int bb = 0; bb < s->B; bb++)
        for (int h = 0; h < s->H; h++)
            for (int i = 0; i < s->ntiles; i++) {
                const int *k = tblock_sel_tile(s, bb, h, i);
                int c = s->count[((size_t)bb * s->H + h) * s->ntiles + i];
                cr_assert_eq(c, i + 1 < s->n ? i + 1 : s->n, "tile %d keeps %d of n=%d", i, c, s->n);
                cr_assert_eq(k[c - 1], i, "tile %d: its own block is not kept last", i);
                for (int a = 0; a + 1 < c; a++) cr_assert(k[a] >= 0 && k[a] < k[a + 1], "tile %d: not ascending", i);
                for (int a = c; a < s->n; a++) cr_assert_eq(k[a], -1);
            }
}

/* MoBA scores in double, causal: tile i scores block j by qbar_{i-1} . kbar_j, the previous
 * tile's pooled query (tblock.h). */
static double ref_score(const float *qkv, const tblock_sel *s, int C, int bb, int h, int i, int j) {
    int hs = C / s->H, nq = s->b;
    double dot = 0;
    for (int c = 0; c < hs; c++) {
        double qm = 0, km = 0;
        for (int t = 0; t < nq; t++) qm += qkv[((size_t)bb * s->T + (i - 1) * s->b + t) * 3 * C + h * hs + c];
        for (int u = 0; u < s->b; u++) km += qkv[((size_t)bb * s->T + j * s->b + u) * 3 * C + C + h * hs + c];
        dot += qm / nq * km / s->b;
    }
    return dot;
}

/* The kept earlier blocks are a top-(n-1) of the double scores: no dropped block scores above
 * a kept one by more than float rounding (1e-5 of the scores' scale). */
static void check_topk(const tblock_sel *s, const float *qkv, int C) {
    for (int bb = 0; bb < s->B; bb++)
        for (int h = 0; h < s->H; h++)
            for (int i = 1; i < s->ntiles; i++) {
                const int *k = tblock_sel_tile(s, bb, h, i);
                int c = s->count[((size_t)bb * s->H + h) * s->ntiles + i];
                double lo = INFINITY, hi = -INFINITY, scale = 0;
                for (int j = 0; j < i; j++) {
                    double sc = ref_score(qkv, s, C, bb, h, i, j);
                    int kept = 0;
                    for (int a = 0; a + 1 < c; a++) kept |= k[a] == j;
                    if (kept) lo = sc < lo ? sc : lo;
                    else hi = sc > hi ? sc : hi;
                    scale = fabs(sc) > scale ? fabs(sc) : scale;
                }
                cr_assert(c == 1 || hi <= lo + 1e-5 * scale, "tile %d: a dropped block scores %.6g > kept %.6g", i, hi, lo);
            }
}

Test(tblock, select_invariants_and_topk) {
    rng_t r;
    rng_seed(&r, 706);
    static const int TS[] = {1, 5, 64, 65, 300, 1000};
    static const int NS[] = {1, 2, 4, 8, 100};
    for (int ti = 0; ti < 6; ti++)
        for (int ni = 0; ni < 5; ni++) {
            int B = 2, H = 3, hs = 16, C = H * hs, b = ti == 5 ? 64 : 16;
            tblock_sel s = sel_make(B, H, TS[ti], b, NS[ni]);
            float *qkv = rand_f((size_t)B * TS[ti] * 3 * C, 1.0f, &r);
            tblock_select(&s, qkv, C);
            check_invariants(&s);
            check_topk(&s, qkv, C);
            tblock_sel_free(&s);
            free(qkv);
        }
}

/* Ties go to the earlier block: with every key the same vector all blocks score the same, so
 * tile i keeps blocks 0 .. n-2 and i. And with two equal best blocks (1 and 3) and n = 2, the
 * tiles after both keep block 1. */
Test(tblock, select_ties_to_earlier_block) {
    int B = 1, H = 2, hs = 8, C = H * hs, T = 200, b = 16;
    float *qkv = ref_falloc((size_t)T * 3 * C);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) qkv[(size_t)t * 3 * C + c] = 1.0f, qkv[(size_t)t * 3 * C + C + c] = 0.5f;
    tblock_sel s = sel_make(B, H, T, b, 4);
    tblock_select(&s, qkv, C);
    check_invariants(&s);
    for (int h = 0; h < H; h++)
        for (int i = 3; i < s.ntiles; i++) {
            const int *k = tblock_sel_tile(&s, 0, h, i);
            cr_assert(k[0] == 0 && k[1] == 1 && k[2] == 2 && k[3] == i, "tile %d keeps %d %d %d %d", i, k[0], k[1], k[2], k[3]);
        }
    tblock_sel_free(&s);
    for (int u = 1 * b; u < 2 * b; u++) qkv[(size_t)u * 3 * C + C] = 9.0f; /* blocks 1 and 3: equal and best */
    for (int u = 3 * b; u < 4 * b; u++) qkv[(size_t)u * 3 * C + C] = 9.0f;
    s = sel_make(B, H, T, b, 2);
    tblock_select(&s, qkv, C);
    for (int i = 4; i < s.ntiles; i++) cr_assert_eq(tblock_sel_tile(&s, 0, 0, i)[0], 1, "tile %d", i);
    cr_assert_eq(tblock_sel_tile(&s, 0, 0, 2)[0], 1);
    tblock_sel_free(&s);
    free(qkv);
}

/* A strong block is picked by the tiles whose previous tile's pooled query points at it, and
 * ignored by those where it points away (the score is qbar . kbar, not |kbar|); a tile's own
 * queries do not count (causal). */
Test(tblock, select_follows_pooled_query) {
    int H = 1, hs = 4, C = hs, T = 128, b = 16;
    float *qkv = ref_falloc((size_t)T * 3 * C);
    for (int u = 2 * b; u < 3 * b; u++) qkv[(size_t)u * 3 * C + C] = 5.0f; /* block 2: k = 5 e_0 */
    for (int u = 0; u < T; u++) qkv[(size_t)u * 3 * C + C + 1] = 1.0f;    /* every key: + e_1 */
    for (int t = 3 * b; t < 4 * b; t++) qkv[(size_t)t * 3 * C] = 1.0f;   /* tile 4 scores with tile 3's: e_0 */
    for (int t = 5 * b; t < 6 * b; t++) qkv[(size_t)t * 3 * C] = -1.0f;  /* tile 6 with tile 5's: -e_0 */
    for (int t = 6 * b; t < 7 * b; t++) qkv[(size_t)t * 3 * C] = 1.0f;   /* tile 6's own points at block 2: ignored */
    for (int t = 0; t < T; t++) qkv[(size_t)t * 3 * C + 1] = 0.1f;
    tblock_sel s = sel_make(1, H, T, b, 2);
    tblock_select(&s, qkv, C);
    cr_assert_eq(tblock_sel_tile(&s, 0, 0, 4)[0], 2);
    cr_assert_eq(tblock_sel_tile(&s, 0, 0, 6)[0], 0, "tile 6 points away from block 2: ties to block 0");
    tblock_sel_free(&s);
    free(qkv);
}

/* tblock_pairs counts the reference mask's pairs. */
Test(tblock, pairs_count_the_mask) {
    rng_t r;
    rng_seed(&r, 707);
    int B = 2, H = 3, hs = 8, C = H * hs, T = 150, b = 16;
    float *qkv = rand_f((size_t)B * T * 3 * C, 1.0f, &r);
    tblock_sel s = sel_make(B, H, T, b, 3);
    tblock_select(&s, qkv, C);
    double want = 0;
    for (int bb = 0; bb < B; bb++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++)
                for (int u = 0; u < T; u++) want += allowed(&s, bb, h, t, u);
    cr_assert_float_eq(tblock_pairs(&s), want, 0.5);
    tblock_sel_free(&s);
    free(qkv);
}

Test(tblock, sel_init_rejects_bad_sizes) {
    tblock_sel s;
    sattn_err e;
    cr_assert_eq(tblock_sel_init(&s, 1, 1, 10, 0, 2, &e), -1);
    cr_assert(strstr(e.msg, "b=0"), "%s", e.msg);
    cr_assert_eq(tblock_sel_init(&s, 1, 1, 10, 4, 0, &e), -1);
    cr_assert_eq(tblock_sel_init(&s, 1, 1, 0, 4, 2, &e), -1);
    cr_assert_eq(tblock_sel_init(&s, 1, 1, 10, 4, 99, &e), 0);
    cr_assert_eq(s.n, 3, "n is capped at the tiles");
    tblock_sel_free(&s);
}

/* ---- determinism ---- */

/* Forward and backward with 1, 2 and 3 threads give the same bits: B = 1, H = 4 (the backward
 * splits each head into 2 groups of key blocks, whose dQ partials are reduced) and B = 2, H = 4
 * (a task per head). */
static void identical_case(int B, int H, rng_t *r);

Test(tblock, bit_identical_across_threads) {
    rng_t r;
    rng_seed(&r, 708);
    identical_case(1, 4, &r);
    identical_case(2, 4, &r);
}

static void identical_case(int B, int H, rng_t *r) {
    int hs = 24, C = H * hs, T = 777, b = 64;
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, nl = (size_t)B * H * T;
    float *qkv = rand_f(nq, 1.0f, r), *dout = rand_f(no, 1.0f, r), *ref[2] = {NULL, NULL};
    tblock_sel s = sel_make(B, H, T, b, 4);
    tblock_select(&s, qkv, C);
    int saved = omp_get_max_threads();
    for (int th = 1; th <= 3; th++) {
        omp_set_num_threads(th);
        float *out = nan_f(no), *lse = nan_f(nl), *g = ref_falloc(nq), *sc = nan_f(tblock_scratch_floats(&s, C));
        tblock_forward(out, lse, qkv, C, &s);
        tblock_backward(g, dout, qkv, out, lse, C, &s, sc);
        if (th == 1) {
            ref[0] = out, ref[1] = g;
        } else {
            cr_assert(!memcmp(out, ref[0], no * sizeof(float)), "forward differs with %d threads", th);
            cr_assert(!memcmp(g, ref[1], nq * sizeof(float)), "backward differs with %d threads", th);
            free(out), free(g);
        }
        free(lse), free(sc);
    }
    omp_set_num_threads(saved);
    tblock_sel_free(&s);
    free(qkv), free(dout), free(ref[0]), free(ref[1]);
}
