/* cuda-parity, the shared indexer's bf16 kernels (src/cuda/lindex_kernels.cu) against the CPU's
 * (include/sattn/lindex.h), by parity.c's rule with bf16's rounding made explicit.
 *
 * Reference (double, computed here): qt, kt from double projections, rounded to float then
 * to bf16 (nearest even), as both sides do; score = sum_j w_j relu(qt_j . kt). The two sides
 * compute the float projections in different orders, so a projection lying within float
 * rounding of a bf16 midpoint may round either way: such an operand is "ambiguous", with
 * dev = the gap between its two possible bf16 values (one bf16 ulp, 2^-8 relative), else
 * dev = 0. Per pair (t, s):
 *   tol(t, s) = TOL max(1, max_s |ref(t, .)|) + sum_j |w_j| sum_i (dq_i |kt_i| + |qt_i| dk_i + dq_i dk_i)
 * (relu is 1-Lipschitz). Checks:
 *  - scores: every GPU score(t, s), s <= t, within tol(t, s) of the reference (reported as
 *    TOL max |gpu - ref| / tol: ok when <= TOL); the output is poisoned first;
 *  - selection, per row t: count = min(k, t + 1), -1 past it; keys causal and distinct; each
 *    GPU score within tol of its key's reference; the order descending, equal scores to the
 *    earlier key; a correct top-k up to tolerance (min over kept of ref + tol >= max over
 *    dropped of ref - tol); and the same list as the CPU's lindex_select at LINDEX_BF16
 *    where this CPU runs bf16 (AVX512-BF16), except where each differing entry's two keys
 *    have references within their summed tolerances (a near tie: counted, not failed). On
 *    a CPU without bf16 the CPU path is float32, so only the reference is compared. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parity.h"
#include "sattn/core.h"
#include "sattn/lindex.h"

typedef struct {
    int T, C, r, J, k, wild; /* wild: Ww ~ N(0, 1/C)-ish, so w_j may be negative */
} lx_shape;

/* Reference operands: q (T, J r), k (T, r) bf16 values with their dev; W (T, J). */
typedef struct {
    double *qb, *qd, *kb, *kd, *W;
} lx_ref;

static double bf16_of(double x) {
    float f = (float)x;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u = ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16) << 16;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* v = scale (x . wr) over C: its bf16 value, and dev where float rounding (bounded by 1e-5
 * of the sum of |terms|) may cross a bf16 midpoint. */
static void round_op(const float *x, const float *wr, int C, double scale, double *b, double *dev) {
    double v = 0, mag = 0;
    for (int i = 0; i < C; i++) v += (double)x[i] * wr[i], mag += fabs((double)x[i] * wr[i]);
    v *= scale, mag *= scale;
    double e = 1e-5 * mag + 1e-30, lo = bf16_of(v - e), hi = bf16_of(v + e);
    *b = bf16_of(v), *dev = hi - lo;
}

static lx_ref ref_make(const lx_shape *s, const float *w, const float *qkv) {
    int T = s->T, C = s->C, r = s->r, J = s->J, ld = 3 * C;
    const float *Wk = w + (size_t)J * r * C, *Ww = Wk + (size_t)r * C, *bw = Ww + (size_t)J * C;
    lx_ref R;
    R.qb = xmalloc((size_t)T * J * r * sizeof(double)), R.qd = xmalloc((size_t)T * J * r * sizeof(double));
    R.kb = xmalloc((size_t)T * r * sizeof(double)), R.kd = xmalloc((size_t)T * r * sizeof(double));
    R.W = xmalloc((size_t)T * J * sizeof(double));
    for (int t = 0; t < T; t++) {
        const float *q = qkv + (size_t)t * ld, *k = q + C;
        for (int o = 0; o < J * r; o++)
            round_op(q, w + (size_t)o * C, C, 1.0 / sqrt((double)r), R.qb + (size_t)t * J * r + o,
                     R.qd + (size_t)t * J * r + o);
        for (int o = 0; o < r; o++) round_op(k, Wk + (size_t)o * C, C, 1.0, R.kb + (size_t)t * r + o, R.kd + (size_t)t * r + o);
        for (int j = 0; j < J; j++) {
            double v = bw[j];
            for (int i = 0; i < C; i++) v += (double)q[i] * Ww[(size_t)j * C + i];
            R.W[(size_t)t * J + j] = v;
        }
    }
    return R;
}

static void ref_free(lx_ref *R) { free(R->qb), free(R->qd), free(R->kb), free(R->kd), free(R->W); }

/* Row t: ref[s] and tol[s] for s <= t. */
static void ref_row(const lx_shape *s, const lx_ref *R, int t, double *ref, double *tol) {
    int r = s->r, J = s->J;
    double scale = 1;
    for (int u = 0; u <= t; u++) {
        const double *kb = R->kb + (size_t)u * r, *kd = R->kd + (size_t)u * r;
        double sc = 0, dv = 0;
        for (int j = 0; j < J; j++) {
            const double *qb = R->qb + ((size_t)t * J + j) * r, *qd = R->qd + ((size_t)t * J + j) * r;
            double dot = 0, dev = 0, wj = R->W[(size_t)t * J + j];
            for (int i = 0; i < r; i++)
                dot += qb[i] * kb[i], dev += qd[i] * fabs(kb[i]) + fabs(qb[i]) * kd[i] + qd[i] * kd[i];
            sc += wj * (dot > 0 ? dot : 0), dv += fabs(wj) * dev;
        }
        ref[u] = sc, tol[u] = dv;
        scale = fabs(sc) > scale ? fabs(sc) : scale;
    }
    for (int u = 0; u <= t; u++) tol[u] += TOL * scale;
}

/* The score kernel over all causal pairs: TOL max |gpu - ref| / tol. */
static void check_scores(ctx *c, const lx_shape *s, const lx_ref *R, const float *w_d, const float *qkv_d,
                         const char *name) {
    int T = s->T;
    float *S_d = sa_cuda_alloc(c->g, (size_t)T * T * sizeof(float)), *S = xmalloc((size_t)T * T * sizeof(float));
    sa_cuda_poison(c->g, S_d, (size_t)T * T * sizeof(float));
    sa_cuda_lindex_scores(c->g, w_d, qkv_d, qkv_d + s->C, 3 * s->C, T, s->C, s->r, s->J, S_d);
    sa_cuda_download(c->g, S, S_d, (size_t)T * T * sizeof(float));
    double *ref = xmalloc((size_t)T * sizeof(double)), *tol = xmalloc((size_t)T * sizeof(double)), worst = 0;
    int nan = 0;
    for (int t = 0; t < T; t++) {
        ref_row(s, R, t, ref, tol);
        for (int u = 0; u <= t; u++) {
            float g = S[(size_t)t * T + u];
            if (g != g) nan = 1;
            else worst = fmax(worst, fabs(g - ref[u]) / tol[u]);
        }
    }
    char what[160];
    snprintf(what, sizeof what, "lindex scores %s (err/tol)", name);
    report(c, what, TOL * worst, nan);
    free(ref), free(tol), free(S), sa_cuda_free(c->g, S_d);
}

/* One row: 0 the CPU's list, 1 a near tie, -1 failure (why). */
static int check_row(const lx_shape *s, int t, int kmax, const int *g, const float *gs, int gc, const int *ci,
                     int cmp_cpu, const double *ref, const double *tol, char *why, size_t nw) {
    int want = s->k < t + 1 ? s->k : t + 1;
    if (gc != want) return snprintf(why, nw, "count %d, want %d", gc, want), -1;
    for (int a = gc; a < kmax; a++)
        if (g[a] != -1) return snprintf(why, nw, "entry %d past count = %d, not -1", a, g[a]), -1;
    unsigned char *kept = xcalloc((size_t)t + 1, 1);
    int rc = 0;
    for (int a = 0; a < gc && !rc; a++) {
        int u = g[a];
        if (u < 0 || u > t || kept[u]) rc = -1, snprintf(why, nw, "entry %d = %d: not a distinct causal key", a, u);
        else if (fabs(gs[a] - ref[u]) > tol[u]) rc = -1, snprintf(why, nw, "key %d score %.7g, ref %.7g", u, gs[a], ref[u]);
        else if (a && !(gs[a - 1] > gs[a] || (gs[a - 1] == gs[a] && g[a - 1] < u)))
            rc = -1, snprintf(why, nw, "entry %d out of order", a);
        else kept[u] = 1;
    }
    double lo = INFINITY, hi = -INFINITY;
    for (int u = 0; u <= t && !rc; u++) {
        if (kept[u]) lo = fmin(lo, ref[u] + tol[u]);
        else hi = fmax(hi, ref[u] - tol[u]);
    }
    if (!rc && lo < hi) rc = -1, snprintf(why, nw, "a kept key's ref %.7g below a dropped one's %.7g", lo, hi);
    for (int a = 0; a < gc && !rc && cmp_cpu; a++)
        if (g[a] != ci[a]) {
            int u = g[a], v = ci[a];
            if (v < 0 || v > t || fabs(ref[u] - ref[v]) > tol[u] + tol[v])
                rc = -1, snprintf(why, nw, "entry %d: key %d, the CPU's %d, refs %.7g vs %.7g", a, u, v, ref[u],
                                  v >= 0 && v <= t ? ref[v] : NAN);
            else rc = 1;
        }
    free(kept);
    return rc;
}

static void check_select(ctx *c, const lx_shape *s, const lx_ref *R, const float *w, const float *qkv,
                         const float *w_d, const float *qkv_d, const char *name) {
    int T = s->T, C = s->C, kmax = s->k < T ? s->k : T;
    size_t n = (size_t)T * kmax;
    int *idx_d = sa_cuda_alloc(c->g, n * sizeof(int)), *cnt_d = sa_cuda_alloc(c->g, (size_t)T * sizeof(int));
    float *sc_d = sa_cuda_alloc(c->g, n * sizeof(float));
    sa_cuda_poison(c->g, idx_d, n * sizeof(int)), sa_cuda_poison(c->g, sc_d, n * sizeof(float));
    sa_cuda_poison(c->g, cnt_d, (size_t)T * sizeof(int));
    sa_cuda_lindex_select(c->g, w_d, qkv_d, qkv_d + C, 3 * C, T, C, s->r, s->J, s->k, idx_d, sc_d, cnt_d);
    int *g = xmalloc(n * sizeof(int)), *gc = xmalloc((size_t)T * sizeof(int));
    int *ci = xmalloc(n * sizeof(int)), *cc = xmalloc((size_t)T * sizeof(int));
    float *gs = xmalloc(n * sizeof(float)), *cs = xmalloc(n * sizeof(float));
    sa_cuda_download(c->g, g, idx_d, n * sizeof(int)), sa_cuda_download(c->g, gs, sc_d, n * sizeof(float));
    sa_cuda_download(c->g, gc, cnt_d, (size_t)T * sizeof(int));
    head_spec hs = head_spec_default();
    hs.sel = SEL_INDEX, hs.k = s->k, hs.rank = s->r, hs.iheads = s->J, hs.shared = 1, hs.tau = 0.0f;
    lindex_dims d = {1, C, C, s->r, s->J};
    float *work = xmalloc(lindex_work_floats(&d, T) * sizeof(float));
    int cmp_cpu = lindex_resolve(LINDEX_BF16) == LINDEX_BF16;
    lindex_select(&hs, &d, w, qkv, qkv + C, 3 * C, T, ci, cs, cc, work, LINDEX_BF16, NULL);
    double *ref = xmalloc((size_t)T * sizeof(double)), *tol = xmalloc((size_t)T * sizeof(double));
    int near = 0, bad = 0;
    char first[256] = "", why[200];
    for (int t = 0; t < T; t++) {
        ref_row(s, R, t, ref, tol);
        size_t o = (size_t)t * kmax;
        int rc = cmp_cpu && cc[t] != gc[t] ? (snprintf(why, sizeof why, "CPU count %d", cc[t]), -1)
                                           : check_row(s, t, kmax, g + o, gs + o, gc[t], ci + o, cmp_cpu, ref, tol, why, sizeof why);
        near += rc == 1;
        if (rc < 0 && !bad++) snprintf(first, sizeof first, "t=%d: %s", t, why);
    }
    c->rows += T, c->near_rows += near, c->checks++;
    if (bad) c->fails++;
    printf("  %-4s lindex select %s%s: %d rows, %d near-tie, %d bad%s%s\n", bad ? "FAIL" : "ok", name,
           cmp_cpu ? "" : " (CPU without bf16: reference only)", T, near, bad, bad ? "; first: " : "", first);
    free(ref), free(tol), free(work), free(g), free(gc), free(ci), free(cc), free(gs), free(cs);
    sa_cuda_free(c->g, idx_d), sa_cuda_free(c->g, cnt_d), sa_cuda_free(c->g, sc_d);
}

static void test_lindex(ctx *c, lx_shape s) {
    size_t nw = ((size_t)s.J * s.r + s.r + s.J) * s.C + s.J, nx = (size_t)s.T * 3 * s.C;
    float *w = xmalloc(nw * sizeof(float)), *qkv = xmalloc(nx * sizeof(float));
    lindex_dims d = {1, s.C, s.C, s.r, s.J};
    lindex_init(&d, w, &c->rng);
    if (s.wild) {
        float *Ww = w + ((size_t)s.J * s.r + s.r) * s.C;
        fill(Ww, (size_t)s.J * s.C, &c->rng);
        for (size_t i = 0; i < (size_t)s.J * s.C; i++) Ww[i] /= sqrtf((float)s.C);
    }
    fill(qkv, nx, &c->rng);
    float *w_d = dup_dev(c, w, nw * sizeof(float)), *qkv_d = dup_dev(c, qkv, nx * sizeof(float));
    lx_ref R = ref_make(&s, w, qkv);
    char name[120];
    snprintf(name, sizeof name, "T=%d C=%d r=%d J=%d k=%d%s", s.T, s.C, s.r, s.J, s.k, s.wild ? " w+-" : "");
    check_scores(c, &s, &R, w_d, qkv_d, name);
    check_select(c, &s, &R, w, qkv, w_d, qkv_d, name);
    ref_free(&R), free(w), free(qkv), sa_cuda_free(c->g, w_d), sa_cuda_free(c->g, qkv_d);
}

/* Awkward sizes: T not a multiple of the 64-row tiles, k > t + 1 in the early rows (and
 * k >= T), odd and small ranks, J up to the limit 8, w_j of both signs. */
void parity_lindex(ctx *c, int quick) {
    printf("shared indexer, bf16 (lindex_kernels.cu)\n");
    const lx_shape qs[] = {{1, 16, 8, 1, 4, 0},     {45, 24, 16, 8, 45, 0},   {77, 40, 16, 2, 16, 1},
                           {130, 64, 32, 4, 64, 0}, {300, 100, 5, 1, 200, 1}, {200, 32, 1, 3, 7, 1}};
    const lx_shape fs[] = {{1000, 128, 16, 4, 256, 0}, {700, 64, 32, 1, 64, 1}, {513, 48, 31, 8, 600, 1}};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) test_lindex(c, qs[i]);
    if (!quick)
        for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) test_lindex(c, fs[i]);
}
