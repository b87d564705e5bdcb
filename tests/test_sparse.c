/* Tests of sparse.h: selectors (pos, index, block), dynamic k, head functions (softmax, mlp).
 *
 * Everything is checked against independent double-precision re-implementations of the
 * formulas in the header comments of src/sparse/selector.c and src/sparse/headfn.c, on
 * random inputs of awkward sizes: hs 5/8/12, T 1/7/33/70 (across 64), q/k/v as column
 * slices of a (T, 3C) qkv buffer (ld = 3C > hs, a head other than 0), k not dividing T,
 * T not a multiple of the block size. Head specs are built by hand from a zeroed struct.
 *
 * Suites:
 *   sparse/select_*   causality and structure of every selector (indices <= t, distinct,
 *                     1 <= count <= min(kmax, t+1), scores descending); fixed k: the selected
 *                     SET is a top-k of the double scores; block: local block + whole earlier
 *                     blocks, the top nblocks-1 by the double block score; ties go to the
 *                     earlier key (crafted exact ties).
 *   sparse/dynamic_k  count[t] = the smallest m >= k_min whose softmax mass reaches tau (<= k),
 *                     brute force in double.
 *   sparse/softmax_*  the softmax head with all keys selected equals dense causal attention
 *                     (tests/ref.c); with a subset, softmax restricted to the subset.
 *   sparse/grad_*     float analytic gradients (selector_grad, headfn_backward) against central
 *                     finite differences (eps 1e-5) of the double references; the double loss
 *                     against the float loss.
 *   sparse/accum_*    selector_grad and headfn_backward accumulate (+=).
 *   sparse/dense_*    dense heads have no parameters.
 *
 * Tolerances. Float scores / outputs vs double: max|f - d| <= 1e-5 .. 1e-4 of the row's or
 * tensor's scale (float32 u = 6e-8; sums of at most ~100 O(1) terms). Where a selection is
 * compared with a double top-k, near ties (double scores within that tolerance of each other
 * across the cut) are accepted either way; the index selector's ReLUs make EXACT ties (score 0)
 * common, so this is needed. FD in double with eps 1e-5: truncation ~1e-10, rounding ~1e-11
 * relative; the float analytic gradient carries ~1e-6 relative error, so norm-wise 1e-3 and
 * per element 1e-3 (|fd_i| + 1e-2 max|fd|) are loose for a right gradient and tight for a
 * wrong term. ReLU kinks: a coordinate whose +-eps perturbation flips any ReLU in the double
 * reference is skipped (counted; must be rare). */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref.h"
#include "sattn/rng.h"
#include "sattn/sparse.h"

#define FD_EPS 1e-5
#define GRAD_TOL 1e-3

/* ------------------------------------------------------------------ helpers */

/* Every field set explicitly, from a zeroed struct (head_spec_default is not used). */
static head_spec spec_make(sel_kind sel, hfn_kind fn, int k, int k_min, float tau, int rank,
                           int iheads, int block, int nblocks, int bounds, int hidden, int mlp_q,
                           int mlp_logits) {
    head_spec s;
    memset(&s, 0, sizeof s);
    s.sel = sel;
    s.fn = fn;
    s.k = k;
    s.k_min = k_min;
    s.tau = tau;
    s.rank = rank;
    s.iheads = iheads;
    s.block = block;
    s.nblocks = nblocks;
    s.bounds = bounds;
    s.hidden = hidden;
    s.mlp_q = mlp_q;
    s.mlp_logits = mlp_logits;
    return s;
}

static head_spec spec_index(int k, int k_min, float tau, int rank, int iheads) {
    return spec_make(SEL_INDEX, HFN_SOFTMAX, k, k_min, tau, rank, iheads, 4, 2, 0, 8, 1, 1);
}
static head_spec spec_pos(int k, int k_min, float tau, int hidden) {
    return spec_make(SEL_POS, HFN_SOFTMAX, k, k_min, tau, 4, 2, 4, 2, 0, hidden, 1, 1);
}
static head_spec spec_block(int block, int nblocks, int bounds) {
    return spec_make(SEL_BLOCK, HFN_SOFTMAX, 8, 1, 0.0f, 4, 2, block, nblocks, bounds, 8, 1, 1);
}

static float *falloc_fill(size_t n, float v) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    cr_assert(p);
    for (size_t i = 0; i < n; i++) p[i] = v;
    return p;
}

static float *rand_f(size_t n, float scale, rng_t *r) {
    float *f = ref_falloc(n);
    ref_fill_normal(f, n, scale, r);
    return f;
}

/* A (T, 3C) qkv buffer, C = H hs, all random; the head under test is hd: q, k, v are its
 * columns, ld = 3C. qd is a double copy with the same layout. */
typedef struct {
    int T, hs, H, hd, C, ld;
    float *qkv;
    double *qkvd;
    const float *q, *k, *v;
    double *qd, *kd, *vd;
} qkv_buf;

static qkv_buf qkv_make(int T, int hs, int H, int hd, float scale, rng_t *r) {
    qkv_buf b;
    b.T = T, b.hs = hs, b.H = H, b.hd = hd, b.C = H * hs, b.ld = 3 * b.C;
    b.qkv = rand_f((size_t)T * b.ld, scale, r);
    b.qkvd = ref_f2d(b.qkv, (size_t)T * b.ld);
    b.q = b.qkv + hd * hs, b.k = b.qkv + b.C + hd * hs, b.v = b.qkv + 2 * b.C + hd * hs;
    b.qd = b.qkvd + hd * hs, b.kd = b.qkvd + b.C + hd * hs, b.vd = b.qkvd + 2 * b.C + hd * hs;
    return b;
}

static void qkv_free(qkv_buf *b) {
    free(b->qkv);
    free(b->qkvd);
}

/* One selection: buffers sized exactly as the API says (so ASan in `make check` catches
 * overruns), pre-filled with garbage (so unwritten entries show). */
typedef struct {
    int T, kmax;
    int *idx, *count;
    float *score;
} sel_out;

static sel_out run_select(const head_spec *s, const float *params, int max_seq, const qkv_buf *b) {
    sel_out o;
    o.T = b->T;
    o.kmax = selector_kmax(s, b->T);
    cr_assert(o.kmax >= 1 && o.kmax <= b->T, "selector_kmax = %d for T = %d", o.kmax, b->T);
    size_t n = (size_t)b->T * o.kmax, nw = selector_work_floats(s, b->hs, b->T);
    o.idx = malloc(n * sizeof(int));
    o.count = malloc((size_t)b->T * sizeof(int));
    o.score = falloc_fill(n, NAN);
    for (size_t i = 0; i < n; i++) o.idx[i] = -7;
    for (int t = 0; t < b->T; t++) o.count[t] = -7;
    float *work = falloc_fill(nw, NAN);
    selector_select(s, params, b->hs, max_seq, b->q, b->k, b->ld, b->T, o.idx, o.score, o.count,
                    work);
    free(work);
    return o;
}

static void sel_free(sel_out *o) {
    free(o->idx);
    free(o->count);
    free(o->score);
}

/* Causality and structure common to every selector. */
static void check_structure(const char *what, const sel_out *o) {
    for (int t = 0; t < o->T; t++) {
        const int *ix = o->idx + (size_t)t * o->kmax;
        const float *sc = o->score + (size_t)t * o->kmax;
        int c = o->count[t], lim = o->kmax < t + 1 ? o->kmax : t + 1;
        cr_assert(c >= 1 && c <= lim, "%s: count[%d] = %d, expected 1..%d", what, t, c, lim);
        for (int j = 0; j < c; j++) {
            cr_assert(ix[j] >= 0 && ix[j] <= t, "%s: t=%d idx[%d] = %d is not causal", what, t, j,
                      ix[j]);
            cr_assert(!isnan(sc[j]), "%s: t=%d score[%d] is NaN", what, t, j);
            for (int i = 0; i < j; i++)
                cr_assert(ix[i] != ix[j], "%s: t=%d key %d selected twice", what, t, ix[j]);
            if (j) cr_assert(sc[j] <= sc[j - 1], "%s: t=%d scores not descending at %d (%g > %g)",
                             what, t, j, (double)sc[j], (double)sc[j - 1]);
        }
    }
}

/* Random causal P: row t = softmax of random logits over s <= t; NaN above the diagonal and in
 * the row padding (ldp > T), which the API says is not read. */
static float *rand_causal_P(int T, int ldp, float scale, rng_t *r) {
    float *P = falloc_fill((size_t)T * ldp, NAN);
    for (int t = 0; t < T; t++) {
        double z = 0, e[128];
        cr_assert(t < 128);
        for (int s = 0; s <= t; s++) z += (e[s] = exp(scale * rng_normal(r)));
        for (int s = 0; s <= t; s++) P[(size_t)t * ldp + s] = (float)(e[s] / z);
    }
    return P;
}

/* ------------------------------------------------------------------ double references */

static uint64_t sig_mix(uint64_t h, int on) {
    return (h ^ (uint64_t)(on != 0)) * 0x100000001b3ULL + 0x9e3779b97f4a7c15ULL;
}

static double dot_d(const double *a, const double *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* index: score(t, s) = sum_j w_j(t) relu(qt_j . kt_s / sqrt(r)) for s <= t (S row stride T),
 * qt_j = Wq_j q_t, kt_s = Wk k_s, w_j(t) = Ww_j . q_t + bw_j;
 * params Wq (J*r, d) | Wk (r, d) | Ww (J, d) | bw (J). sig: the ReLU on/off pattern. */
static void dref_index_scores(const head_spec *s, const double *prm, int d, const double *q,
                              const double *k, int ld, int T, double *S, uint64_t *sig) {
    int J = s->iheads, r = s->rank;
    const double *Wq = prm, *Wk = Wq + (size_t)J * r * d, *Ww = Wk + (size_t)r * d,
                 *bw = Ww + (size_t)J * d;
    double *kt = ref_dalloc((size_t)T * r), *qt = ref_dalloc((size_t)J * r), *w = ref_dalloc(J);
    uint64_t h = 1;
    for (int u = 0; u < T; u++)
        for (int i = 0; i < r; i++) kt[u * r + i] = dot_d(Wk + (size_t)i * d, k + (size_t)u * ld, d);
    for (int t = 0; t < T; t++) {
        const double *qr = q + (size_t)t * ld;
        for (int i = 0; i < J * r; i++) qt[i] = dot_d(Wq + (size_t)i * d, qr, d);
        for (int j = 0; j < J; j++) w[j] = dot_d(Ww + (size_t)j * d, qr, d) + bw[j];
        for (int u = 0; u < T; u++) {
            double acc = 0;
            if (u <= t)
                for (int j = 0; j < J; j++) {
                    double a = dot_d(qt + j * r, kt + u * r, r) / sqrt((double)r);
                    h = sig_mix(h, a > 0);
                    acc += w[j] * (a > 0 ? a : 0);
                }
            S[(size_t)t * T + u] = acc;
        }
    }
    if (sig) *sig = h;
    free(kt), free(qt), free(w);
}

/* pos: logits_t = W2 relu(W1 q_t + b1) + b2; W1 (hidden, d) | b1 | W2 (max_seq, hidden) | b2. */
static void dref_pos_scores(const head_spec *s, const double *prm, int d, int max_seq,
                            const double *q, int ld, int T, double *S, uint64_t *sig) {
    int hd = s->hidden;
    const double *W1 = prm, *b1 = W1 + (size_t)hd * d, *W2 = b1 + hd, *b2 = W2 + (size_t)max_seq * hd;
    double *H = ref_dalloc(hd);
    uint64_t h = 1;
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < hd; i++) {
            double x = dot_d(W1 + (size_t)i * d, q + (size_t)t * ld, d) + b1[i];
            h = sig_mix(h, x > 0);
            H[i] = x > 0 ? x : 0;
        }
        for (int u = 0; u < T; u++) S[(size_t)t * T + u] = dot_d(W2 + (size_t)u * hd, H, hd) + b2[u];
    }
    if (sig) *sig = h;
    free(H);
}

/* sum_t KL(P_t || softmax_{s<=t} S_t) */
static double dref_kl(const double *S, const float *P, int ldp, int T) {
    double loss = 0;
    for (int t = 0; t < T; t++) {
        const double *row = S + (size_t)t * T;
        double mx = -INFINITY, z = 0;
        for (int u = 0; u <= t; u++) mx = fmax(mx, row[u]);
        for (int u = 0; u <= t; u++) z += exp(row[u] - mx);
        double logz = log(z) + mx;
        for (int u = 0; u <= t; u++) {
            double p = P[(size_t)t * ldp + u];
            if (p > 0) loss += p * (log(p) - (row[u] - logz));
        }
    }
    return loss;
}

/* sum_t -log softmax_{s<=t}(S_t)[argmax_{s<=t} P_t] */
static double dref_ce(const double *S, const float *P, int ldp, int T) {
    double loss = 0;
    for (int t = 0; t < T; t++) {
        const double *row = S + (size_t)t * T;
        const float *p = P + (size_t)t * ldp;
        int tg = 0;
        double mx = -INFINITY, z = 0;
        for (int u = 0; u <= t; u++) {
            if (p[u] > p[tg]) tg = u;
            mx = fmax(mx, row[u]);
        }
        for (int u = 0; u <= t; u++) z += exp(row[u] - mx);
        loss += log(z) + mx - row[tg];
    }
    return loss;
}

/* block: scores of the complete blocks j < nb for query t (double), by q . mean key or
 * sum_i max(q_i lo_i, q_i hi_i). */
static double dref_block_score(const head_spec *s, const double *qt, const double *k, int ld,
                               int hs, int j) {
    int b = s->block;
    double acc = 0;
    for (int i = 0; i < hs; i++) {
        double lo = INFINITY, hi = -INFINITY, mean = 0;
        for (int u = j * b; u < (j + 1) * b; u++) {
            double x = k[(size_t)u * ld + i];
            lo = fmin(lo, x), hi = fmax(hi, x), mean += x / b;
        }
        acc += s->bounds ? fmax(qt[i] * lo, qt[i] * hi) : qt[i] * mean;
    }
    return acc;
}

/* softmax head: out (T, hs) */
static void dref_softmax_head(int hs, int kmax, const double *q, const double *k,
                              const double *v, int ld, int T, const int *idx, const int *count,
                              double *out) {
    double l[512];
    for (int t = 0; t < T; t++) {
        const int *ix = idx + (size_t)t * kmax;
        int c = count[t];
        cr_assert(c <= 512);
        double mx = -INFINITY, z = 0;
        for (int j = 0; j < c; j++) {
            l[j] = dot_d(q + (size_t)t * ld, k + (size_t)ix[j] * ld, hs) / sqrt((double)hs);
            mx = fmax(mx, l[j]);
        }
        for (int j = 0; j < c; j++) z += (l[j] = exp(l[j] - mx));
        for (int i = 0; i < hs; i++) {
            double o = 0;
            for (int j = 0; j < c; j++) o += l[j] / z * v[(size_t)ix[j] * ld + i];
            out[(size_t)t * hs + i] = o;
        }
    }
}

static int mlp_D(const head_spec *s, int hs, int kmax) {
    return kmax * hs + (s->mlp_q ? hs : 0) + (s->mlp_logits ? kmax : 0);
}

/* mlp head: x_t = [v slots (0 past count) | q_t | logits (0 past count)],
 * o_t = W2 gelu(W1 x_t + b1) + b2; W1 (hidden, D) | b1 | W2 (hs, hidden) | b2. */
static void dref_mlp_head(const head_spec *s, const double *prm, int hs, int kmax,
                          const double *q, const double *k, const double *v, int ld, int T,
                          const int *idx, const int *count, double *out) {
    int D = mlp_D(s, hs, kmax), hd = s->hidden;
    const double *W1 = prm, *b1 = W1 + (size_t)hd * D, *W2 = b1 + hd, *b2 = W2 + (size_t)hs * hd;
    double *x = ref_dalloc(D), *g = ref_dalloc(hd);
    for (int t = 0; t < T; t++) {
        const int *ix = idx + (size_t)t * kmax;
        const double *qt = q + (size_t)t * ld;
        for (int i = 0; i < D; i++) x[i] = 0;
        for (int j = 0; j < count[t]; j++)
            for (int i = 0; i < hs; i++) x[j * hs + i] = v[(size_t)ix[j] * ld + i];
        int o = kmax * hs;
        if (s->mlp_q) {
            for (int i = 0; i < hs; i++) x[o + i] = qt[i];
            o += hs;
        }
        if (s->mlp_logits)
            for (int j = 0; j < count[t]; j++)
                x[o + j] = dot_d(qt, k + (size_t)ix[j] * ld, hs) / sqrt((double)hs);
        for (int i = 0; i < hd; i++) g[i] = ref_gelu(dot_d(W1 + (size_t)i * D, x, D) + b1[i]);
        for (int i = 0; i < hs; i++) out[(size_t)t * hs + i] = dot_d(W2 + (size_t)i * hd, g, hd) + b2[i];
    }
    free(x), free(g);
}

/* ------------------------------------------------------------------ finite differences */

typedef double (*loss_fn)(void *ctx, uint64_t *sig);

/* Central differences of f w.r.t. x[off[i]]; coordinates whose perturbation changes the
 * kink signature are marked in skip and get fd = NAN. Returns the number skipped. */
static int fd_grad(double *x, const size_t *off, size_t n, loss_fn f, void *ctx, double *fd) {
    uint64_t s0, sp, sm;
    f(ctx, &s0);
    int nskip = 0;
    for (size_t i = 0; i < n; i++) {
        double save = x[off[i]];
        x[off[i]] = save + FD_EPS;
        double lp = f(ctx, &sp);
        x[off[i]] = save - FD_EPS;
        double lm = f(ctx, &sm);
        x[off[i]] = save;
        if (sp != s0 || sm != s0) fd[i] = NAN, nskip++;
        else fd[i] = (lp - lm) / (2 * FD_EPS);
    }
    return nskip;
}

static size_t *iota(size_t n) {
    size_t *o = malloc(n * sizeof(size_t));
    for (size_t i = 0; i < n; i++) o[i] = i;
    return o;
}

/* Analytic (float) vs FD (double; NaN = skipped): norm-wise and per element. want_zero: the
 * gradient is identically zero by construction (e.g. one key: softmax(l) = 1 whatever q). */
static void check_grad(const char *what, const float *an, const double *fd, size_t n,
                       int want_zero) {
    double num = 0, den = 0, mx = 0;
    size_t used = 0;
    if (want_zero) {
        for (size_t i = 0; i < n; i++)
            cr_assert(fabs(an[i]) <= 1e-7 && fabs(fd[i]) <= 1e-9,
                      "%s: [%zu] should be 0: analytic %.9g, FD %.9g", what, i, (double)an[i], fd[i]);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        cr_assert(isfinite(an[i]), "%s: analytic gradient [%zu] not finite", what, i);
        if (isnan(fd[i])) continue;
        used++;
        num += (an[i] - fd[i]) * (an[i] - fd[i]);
        den += fd[i] * fd[i];
        mx = fmax(mx, fabs(fd[i]));
    }
    cr_assert(used > 0 && den > 0, "%s: degenerate check (%zu coordinates, |fd| = %g)", what,
              used, sqrt(den));
    double e = sqrt(num / den);
#ifdef REF_VERBOSE
    fprintf(stderr, "%-50s n=%zu norm rel err %.2e\n", what, used, e);
#endif
    cr_assert(e <= GRAD_TOL, "%s: gradient vs FD: norm-wise rel err %.3g > %g", what, e, GRAD_TOL);
    for (size_t i = 0; i < n; i++) {
        if (isnan(fd[i])) continue;
        double tol = GRAD_TOL * (fabs(fd[i]) + 1e-2 * mx);
        cr_assert(fabs(an[i] - fd[i]) <= tol, "%s: [%zu] analytic %.9g vs FD %.9g", what, i,
                  (double)an[i], fd[i]);
    }
}

static void check_loss(const char *what, double fl, double dl) {
#ifdef REF_VERBOSE
    fprintf(stderr, "%-50s loss float %.9g double %.9g\n", what, fl, dl);
#endif
    cr_assert(fabs(fl - dl) <= 1e-5 * fmax(1.0, fabs(dl)), "%s: float loss %.9g vs double %.9g",
              what, fl, dl);
}

/* ================================================================== selectors */

/* Checks that row t's selection (c entries of ix) is a valid top-c of the double scores
 * dsc[0..t], up to tol; and that the reported float scores match. Returns 1 if the row had a
 * near tie across the cut (so only the relaxed check applied). */
static int check_topk_row(const char *what, int t, const int *ix, const float *sc, int c,
                          const double *dsc, double tol) {
    unsigned char in[128] = {0};
    cr_assert(t < 128);
    double minin = INFINITY, maxout = -INFINITY;
    for (int j = 0; j < c; j++) {
        in[ix[j]] = 1;
        minin = fmin(minin, dsc[ix[j]]);
        cr_assert(fabs(sc[j] - dsc[ix[j]]) <= tol, "%s: t=%d score of key %d: %.9g vs double %.9g",
                  what, t, ix[j], (double)sc[j], dsc[ix[j]]);
    }
    for (int u = 0; u <= t; u++)
        if (!in[u]) maxout = fmax(maxout, dsc[u]);
    cr_assert(minin >= maxout - tol,
              "%s: t=%d selection is not a top-%d: a selected key scores %.9g, an unselected one "
              "%.9g", what, t, c, minin, maxout);
    return maxout > -INFINITY && minin < maxout + tol;
}

/* Fixed k (tau 0) index and pos: count = min(k, t+1) and a top-k of the double scores. */
static void check_fixed_k(const char *what, const sel_out *o, int k, const double *S, int *near) {
    for (int t = 0; t < o->T; t++) {
        int want = k < t + 1 ? k : t + 1;
        cr_assert(o->count[t] == want, "%s: count[%d] = %d, expected min(k, t+1) = %d", what, t,
                  o->count[t], want);
        const double *row = S + (size_t)t * o->T;
        double scale = 0;
        for (int u = 0; u <= t; u++) scale = fmax(scale, fabs(row[u]));
        *near += check_topk_row(what, t, o->idx + (size_t)t * o->kmax,
                                o->score + (size_t)t * o->kmax, o->count[t], row,
                                1e-5 * (1 + scale));
    }
}

static const int Ts[] = {1, 7, 33, 70};
static const int HSs[] = {5, 8, 12};

Test(sparse, select_index_fixed_k) {
    rng_t r;
    rng_seed(&r, 11);
    int rows = 0, near = 0;
    for (int a = 0; a < 4; a++)
        for (int h = 0; h < 3; h++)
            for (int kk = 0; kk < 3; kk++) {
                int T = Ts[a], hs = HSs[h], k = (int[]){1, 5, 9}[kk];
                int rank = (int[]){3, 4, 8}[h], J = (int[]){2, 3, 4}[h];
                head_spec s = spec_index(k, 1, 0.0f, rank, J);
                qkv_buf b = qkv_make(T, hs, 3, 1, 1.0f, &r);
                size_t np = selector_param_count(&s, hs, T);
                cr_assert(np == (size_t)J * rank * hs + (size_t)rank * hs + (size_t)J * hs + J);
                float *prm = ref_falloc(np);
                selector_init(&s, hs, T, prm, &r);
                for (size_t i = 0; i < np; i++) cr_assert(isfinite(prm[i]));
                for (int j = 0; j < J; j++)
                    cr_assert(prm[np - J + j] == 1.0f, "index init: bw[%d] = %g", j, (double)prm[np - J + j]);
                if (kk == 2) ref_fill_normal(prm, np, 0.7f, &r); /* also arbitrary weights */
                char what[96];
                snprintf(what, sizeof what, "index T=%d hs=%d k=%d r=%d J=%d", T, hs, k, rank, J);
                sel_out o = run_select(&s, prm, T, &b);
                check_structure(what, &o);
                double *pd = ref_f2d(prm, np), *S = ref_dalloc((size_t)T * T);
                dref_index_scores(&s, pd, hs, b.qd, b.kd, b.ld, T, S, NULL);
                check_fixed_k(what, &o, k, S, &near);
                rows += T;
                sel_free(&o), qkv_free(&b), free(prm), free(pd), free(S);
            }
#ifdef REF_VERBOSE
    fprintf(stderr, "index fixed k: %d rows, %d with a (near) tie across the cut\n", rows, near);
#endif
    cr_assert(near < rows / 2, "too many near ties (%d of %d rows): the check is vacuous", near, rows);
}

Test(sparse, select_pos_fixed_k) {
    rng_t r;
    rng_seed(&r, 12);
    for (int a = 0; a < 4; a++)
        for (int h = 0; h < 3; h++)
            for (int kk = 0; kk < 3; kk++) {
                int T = Ts[a], hs = HSs[h], k = (int[]){1, 5, 9}[kk], hidden = 6 + h, max_seq = T + 5;
                head_spec s = spec_pos(k, 1, 0.0f, hidden);
                qkv_buf b = qkv_make(T, hs, 2, 1, 1.0f, &r);
                size_t np = selector_param_count(&s, hs, max_seq);
                cr_assert(np == (size_t)hidden * hs + hidden + (size_t)max_seq * hidden + max_seq);
                float *prm = ref_falloc(np);
                selector_init(&s, hs, max_seq, prm, &r);
                for (size_t i = 0; i < np; i++) cr_assert(isfinite(prm[i]));
                if (kk == 2) ref_fill_normal(prm, np, 0.7f, &r);
                char what[96];
                snprintf(what, sizeof what, "pos T=%d hs=%d k=%d hidden=%d", T, hs, k, hidden);
                sel_out o = run_select(&s, prm, max_seq, &b);
                check_structure(what, &o);
                double *pd = ref_f2d(prm, np), *S = ref_dalloc((size_t)T * T);
                dref_pos_scores(&s, pd, hs, max_seq, b.qd, b.ld, T, S, NULL);
                int near = 0;
                check_fixed_k(what, &o, k, S, &near);
                cr_assert(near <= 2, "%s: %d near ties (random floats)", what, near);
                sel_free(&o), qkv_free(&b), free(prm), free(pd), free(S);
            }
}

/* Exact ties: pos with W1 = W2 = 0 scores key s by b2[s] exactly. The documented rule
 * ("ties go to the earlier key", listed in descending score): row t = keys 0..t sorted by
 * (score descending, index ascending), the first min(k, t+1). */
Test(sparse, select_ties_earlier_key) {
    rng_t r;
    rng_seed(&r, 13);
    int T = 33, hs = 5, hidden = 3, max_seq = 40;
    for (int kk = 0; kk < 4; kk++) {
        int k = (int[]){1, 3, 4, 7}[kk];
        head_spec s = spec_pos(k, 1, 0.0f, hidden);
        qkv_buf b = qkv_make(T, hs, 1, 0, 1.0f, &r);
        size_t np = selector_param_count(&s, hs, max_seq);
        float *prm = ref_falloc(np), *b2 = prm + np - max_seq;
        for (int u = 0; u < max_seq; u++) b2[u] = (float)rng_below(&r, 3);
        sel_out o = run_select(&s, prm, max_seq, &b);
        check_structure("ties", &o);
        for (int t = 0; t < T; t++) {
            int want[64], n = 0;
            for (int v = 2; v >= 0; v--)
                for (int u = 0; u <= t; u++)
                    if (b2[u] == (float)v) want[n++] = u;
            int c = k < t + 1 ? k : t + 1;
            cr_assert(o.count[t] == c);
            for (int j = 0; j < c; j++) {
                cr_assert(o.idx[(size_t)t * o.kmax + j] == want[j],
                          "ties k=%d t=%d: entry %d is key %d (score %g), expected key %d (score %g)",
                          k, t, j, o.idx[(size_t)t * o.kmax + j],
                          (double)o.score[(size_t)t * o.kmax + j], want[j], (double)b2[want[j]]);
                cr_assert(o.score[(size_t)t * o.kmax + j] == b2[want[j]]);
            }
        }
        sel_free(&o), qkv_free(&b), free(prm);
    }
}

/* Block: the local block's keys floor(t/b)*b..t first, then whole complete earlier blocks,
 * min(nblocks-1, local) of them, a top set by the independently computed block score. */
Test(sparse, select_block) {
    rng_t r;
    rng_seed(&r, 14);
    int checked_rows = 0;
    for (int a = 0; a < 4; a++)
        for (int h = 0; h < 3; h++)
            for (int bb = 0; bb < 3; bb++)
                for (int nn = 0; nn < 3; nn++)
                    for (int bounds = 0; bounds <= 1; bounds++) {
                        int T = Ts[a], hs = HSs[h], blk = (int[]){3, 4, 5}[bb], nbl = (int[]){1, 2, 4}[nn];
                        head_spec s = spec_block(blk, nbl, bounds);
                        cr_assert(selector_param_count(&s, hs, T) == 0);
                        qkv_buf b = qkv_make(T, hs, 2, 1, 1.0f, &r);
                        char what[96];
                        snprintf(what, sizeof what, "block T=%d hs=%d b=%d n=%d bounds=%d", T, hs,
                                 blk, nbl, bounds);
                        sel_out o = run_select(&s, NULL, T, &b);
                        int kmax = nbl * blk < T ? nbl * blk : T;
                        cr_assert(o.kmax == kmax, "%s: kmax %d, expected %d", what, o.kmax, kmax);
                        check_structure(what, &o);
                        for (int t = 0; t < T; t++) {
                            const int *ix = o.idx + (size_t)t * kmax;
                            const float *sc = o.score + (size_t)t * kmax;
                            const double *qt = b.qd + (size_t)t * b.ld;
                            int local = t / blk, L = t - local * blk + 1;
                            int nsel = nbl - 1 < local ? nbl - 1 : local;
                            cr_assert(o.count[t] == L + nsel * blk, "%s: count[%d] = %d, expected %d",
                                      what, t, o.count[t], L + nsel * blk);
                            /* local block first (as a set) */
                            unsigned char seen[128] = {0};
                            for (int j = 0; j < L; j++) {
                                cr_assert(ix[j] >= local * blk && ix[j] <= t && !seen[ix[j]],
                                          "%s: t=%d entry %d = key %d is not from the local block",
                                          what, t, j, ix[j]);
                                seen[ix[j]] = 1;
                            }
                            /* then whole blocks */
                            double bs[128], minin = INFINITY, maxout = -INFINITY, scale = 0;
                            unsigned char chosen[128] = {0};
                            for (int j = 0; j < local; j++) {
                                bs[j] = dref_block_score(&s, qt, b.kd, b.ld, hs, j);
                                scale = fmax(scale, fabs(bs[j]));
                            }
                            double tol = 1e-5 * (1 + scale);
                            for (int m = 0; m < nsel; m++) {
                                int first = ix[L + m * blk], j = first / blk;
                                cr_assert(j < local && !chosen[j], "%s: t=%d chunk %d: block %d", what, t, m, j);
                                chosen[j] = 1;
                                for (int u = 0; u < blk; u++) {
                                    int e = L + m * blk + u;
                                    cr_assert(ix[e] / blk == j, "%s: t=%d chunk %d is not one whole block",
                                              what, t, m);
                                    cr_assert(!seen[ix[e]]);
                                    seen[ix[e]] = 1;
                                    cr_assert(fabs(sc[e] - bs[j]) <= tol,
                                              "%s: t=%d block %d score %.9g vs double %.9g", what, t, j,
                                              (double)sc[e], bs[j]);
                                }
                                minin = fmin(minin, bs[j]);
                            }
                            for (int j = 0; j < local; j++)
                                if (!chosen[j]) maxout = fmax(maxout, bs[j]);
                            cr_assert(minin >= maxout - tol,
                                      "%s: t=%d blocks are not the top %d: chosen %.9g < unchosen %.9g",
                                      what, t, nsel, minin, maxout);
                            checked_rows++;
                        }
                        sel_free(&o), qkv_free(&b);
                    }
    cr_assert(checked_rows > 1000);
}

/* ================================================================== dynamic k */

/* Brute force: sort the double scores of keys 0..t descending, softmax mass over all s <= t;
 * m* = the smallest m in [k_min, t+1] with mass(top m) >= tau; count = min(m*, k, t+1).
 * Rows where some mass in the decision range lies within 1e-5 of tau are skipped (float vs
 * double rounding could go either way there). */
static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void check_dynamic(const char *what, const head_spec *s, const sel_out *o,
                          const sel_out *fixed, const double *S, int *skipped, int *inner) {
    double srt[128];
    for (int t = 0; t < o->T; t++) {
        const double *row = S + (size_t)t * o->T;
        for (int u = 0; u <= t; u++) srt[u] = row[u];
        qsort(srt, (size_t)t + 1, sizeof(double), cmp_desc);
        double z = 0, acc = 0;
        for (int u = 0; u <= t; u++) z += exp(srt[u] - srt[0]);
        int lim = s->k < t + 1 ? s->k : t + 1, want = lim, skip = 0;
        for (int m = 1; m <= t + 1; m++) {
            acc += exp(srt[m - 1] - srt[0]) / z;
            if (m < s->k_min || m > lim) continue;
            if (fabs(acc - (double)s->tau) < 1e-5) skip = 1;
            if (acc >= (double)s->tau) {
                want = m;
                break;
            }
        }
        if (skip) {
            (*skipped)++;
            continue;
        }
        if (want > s->k_min && want < lim) (*inner)++;
        cr_assert(o->count[t] == want, "%s: count[%d] = %d, brute force %d (k=%d k_min=%d tau=%g)",
                  what, t, o->count[t], want, s->k, s->k_min, (double)s->tau);
        /* the same keys, in the same order, as the fixed-k selection's first count[t] */
        for (int j = 0; j < o->count[t]; j++) {
            cr_assert(o->idx[(size_t)t * o->kmax + j] == fixed->idx[(size_t)t * fixed->kmax + j],
                      "%s: t=%d entry %d differs from fixed k", what, t, j);
            cr_assert(o->score[(size_t)t * o->kmax + j] == fixed->score[(size_t)t * fixed->kmax + j]);
        }
    }
}

Test(sparse, dynamic_k) {
    rng_t r;
    rng_seed(&r, 21);
    int rows = 0, skipped = 0, inner = 0;
    for (int sel = 0; sel < 2; sel++)
        for (int a = 0; a < 4; a++)
            for (int h = 0; h < 3; h++)
                for (int ti = 0; ti < 2; ti++)
                    for (int kk = 0; kk < 2; kk++) {
                        int T = Ts[a], hs = HSs[h], k = (int[]){5, 9}[kk], max_seq = T + 3;
                        float tau = ti ? 0.9f : 0.5f;
                        head_spec s = sel ? spec_pos(k, 2, tau, 7) : spec_index(k, 2, tau, 4, 3);
                        head_spec f = s;
                        f.tau = 0.0f, f.k_min = 1;
                        qkv_buf b = qkv_make(T, hs, 2, 0, 1.0f, &r);
                        size_t np = selector_param_count(&s, hs, max_seq);
                        float *prm = rand_f(np, 1.2f, &r); /* peaked enough for a varying k */
                        char what[96];
                        snprintf(what, sizeof what, "%s dynamic T=%d hs=%d k=%d tau=%g",
                                 sel ? "pos" : "index", T, hs, k, (double)tau);
                        sel_out o = run_select(&s, prm, max_seq, &b), fo = run_select(&f, prm, max_seq, &b);
                        check_structure(what, &o);
                        double *pd = ref_f2d(prm, np), *S = ref_dalloc((size_t)T * T);
                        if (sel) dref_pos_scores(&s, pd, hs, max_seq, b.qd, b.ld, T, S, NULL);
                        else dref_index_scores(&s, pd, hs, b.qd, b.kd, b.ld, T, S, NULL);
                        check_dynamic(what, &s, &o, &fo, S, &skipped, &inner);
                        rows += T;
                        sel_free(&o), sel_free(&fo), qkv_free(&b), free(prm), free(pd), free(S);
                    }
#ifdef REF_VERBOSE
    fprintf(stderr, "dynamic k: %d rows, %d skipped (mass within 1e-5 of tau), %d with k_min < count < k\n",
            rows, skipped, inner);
#endif
    cr_assert(skipped * 20 < rows, "skipped %d of %d rows", skipped, rows);
    cr_assert(inner * 10 > rows, "only %d of %d rows had k_min < count < k: vacuous", inner, rows);
}

/* ================================================================== softmax head */

/* Index with k = T selects every key: the softmax head is dense causal attention. Output
 * written into the head's slice of a (T, C) buffer (ldo = C); other columns untouched. */
Test(sparse, softmax_all_keys_is_dense) {
    rng_t r;
    rng_seed(&r, 31);
    for (int a = 0; a < 4; a++)
        for (int h = 0; h < 3; h++) {
            int T = Ts[a], hs = HSs[h], H = 3, hd = 2;
            head_spec s = spec_index(T, 1, 0.0f, 4, 2);
            qkv_buf b = qkv_make(T, hs, H, hd, 1.5f, &r);
            size_t np = selector_param_count(&s, hs, T);
            float *prm = rand_f(np, 1.0f, &r);
            sel_out o = run_select(&s, prm, T, &b);
            cr_assert(o.kmax == T);
            for (int t = 0; t < T; t++) cr_assert(o.count[t] == t + 1);
            cr_assert(headfn_param_count(&s, hs, o.kmax) == 0);
            int C = b.C;
            float *out = falloc_fill((size_t)T * C, NAN);
            float *cache = falloc_fill(headfn_cache_floats(&s, hs, o.kmax, T), NAN);
            headfn_forward(&s, NULL, hs, o.kmax, b.q, b.k, b.v, b.ld, T, o.idx, o.count,
                           out + hd * hs, C, cache);
            double *ref = ref_dalloc((size_t)T * C);
            ref_attention_forward(ref, NULL, b.qkvd, 1, T, C, H);
            double num = 0, den = 0;
            for (int t = 0; t < T; t++)
                for (int c = 0; c < C; c++) {
                    float x = out[(size_t)t * C + c];
                    if (c / hs != hd) {
                        cr_assert(isnan(x), "T=%d hs=%d: wrote outside the head's columns", T, hs);
                        continue;
                    }
                    num = fmax(num, fabs(x - ref[(size_t)t * C + c]));
                    den = fmax(den, fabs(ref[(size_t)t * C + c]));
                }
            cr_assert(num <= 1e-5 * den, "T=%d hs=%d: softmax head vs dense attention rel err %.3g",
                      T, hs, num / den);
            sel_free(&o), qkv_free(&b), free(prm), free(out), free(cache), free(ref);
        }
}

/* With a proper subset (index fixed k, index dynamic k, block): softmax over the subset only. */
Test(sparse, softmax_subset) {
    rng_t r;
    rng_seed(&r, 32);
    for (int a = 1; a < 4; a++)
        for (int h = 0; h < 3; h++)
            for (int v = 0; v < 3; v++) {
                int T = Ts[a], hs = HSs[h], ldo = hs + 3;
                head_spec s = v == 0   ? spec_index(5, 1, 0.0f, 4, 2)
                              : v == 1 ? spec_index(9, 2, 0.9f, 4, 2)
                                       : spec_block(4, 2, 1);
                qkv_buf b = qkv_make(T, hs, 2, 1, 1.5f, &r);
                size_t np = selector_param_count(&s, hs, T);
                float *prm = rand_f(np, 1.0f, &r);
                sel_out o = run_select(&s, prm, T, &b);
                float *out = falloc_fill((size_t)T * ldo, NAN);
                float *cache = falloc_fill(headfn_cache_floats(&s, hs, o.kmax, T), NAN);
                headfn_forward(&s, NULL, hs, o.kmax, b.q, b.k, b.v, b.ld, T, o.idx, o.count, out,
                               ldo, cache);
                double *ref = ref_dalloc((size_t)T * hs);
                dref_softmax_head(hs, o.kmax, b.qd, b.kd, b.vd, b.ld, T, o.idx, o.count, ref);
                float *packed = ref_falloc((size_t)T * hs);
                for (int t = 0; t < T; t++)
                    for (int c = 0; c < ldo; c++) {
                        float x = out[(size_t)t * ldo + c];
                        if (c >= hs) cr_assert(isnan(x), "wrote into the ldo padding");
                        else packed[(size_t)t * hs + c] = x;
                    }
                double e = ref_rel_err(packed, ref, (size_t)T * hs);
                cr_assert(e <= 1e-5, "T=%d hs=%d variant %d: softmax over subset rel err %.3g", T, hs, v, e);
                sel_free(&o), qkv_free(&b), free(prm), free(out), free(cache), free(ref), free(packed);
            }
}

/* ================================================================== gradients */

/* index KL w.r.t. params */
typedef struct {
    const head_spec *s;
    double *prm;
    const double *q, *k;
    const float *P;
    int hs, ld, T, ldp;
    double *S;
} idx_ctx;

static double idx_loss(void *p, uint64_t *sig) {
    idx_ctx *c = p;
    dref_index_scores(c->s, c->prm, c->hs, c->q, c->k, c->ld, c->T, c->S, sig);
    return dref_kl(c->S, c->P, c->ldp, c->T);
}

Test(sparse, grad_index_kl) {
    rng_t r;
    rng_seed(&r, 41);
    int cfg[][4] = {{9, 5, 3, 2}, {13, 8, 4, 3}, {7, 12, 2, 1}}; /* T, hs, rank, J */
    for (int ci = 0; ci < 3; ci++) {
        int T = cfg[ci][0], hs = cfg[ci][1], ldp = T + 3;
        head_spec s = spec_index(4, 1, 0.0f, cfg[ci][2], cfg[ci][3]);
        qkv_buf b = qkv_make(T, hs, 2, 1, 1.0f, &r);
        size_t np = selector_param_count(&s, hs, T);
        float *prm = rand_f(np, 0.8f, &r), *dp = ref_falloc(np);
        float *P = rand_causal_P(T, ldp, 1.5f, &r);
        float *work = falloc_fill(selector_work_floats(&s, hs, T), NAN);
        double fl = selector_grad(&s, prm, dp, hs, T, b.q, b.k, b.ld, T, P, ldp, work);
        idx_ctx c = {&s, ref_f2d(prm, np), b.qd, b.kd, P, hs, b.ld, T, ldp, ref_dalloc((size_t)T * T)};
        char what[96];
        snprintf(what, sizeof what, "index KL T=%d hs=%d r=%d J=%d", T, hs, s.rank, s.iheads);
        check_loss(what, fl, idx_loss(&c, NULL));
        double *fd = ref_dalloc(np);
        size_t *off = iota(np);
        int nskip = fd_grad(c.prm, off, np, idx_loss, &c, fd);
#ifdef REF_VERBOSE
        fprintf(stderr, "%-50s %d of %zu FD coordinates skipped (ReLU kink)\n", what, nskip, np);
#endif
        cr_assert(nskip * 20 <= (int)np, "%s: %d of %zu coordinates at a ReLU kink", what, nskip, np);
        check_grad(what, dp, fd, np, 0);
        free(prm), free(dp), free(P), free(work), free(c.prm), free(c.S), free(fd), free(off);
        qkv_free(&b);
    }
}

/* pos CE w.r.t. params */
typedef struct {
    const head_spec *s;
    double *prm;
    const double *q;
    const float *P;
    int hs, max_seq, ld, T, ldp;
    double *S;
} pos_ctx;

static double pos_loss(void *p, uint64_t *sig) {
    pos_ctx *c = p;
    dref_pos_scores(c->s, c->prm, c->hs, c->max_seq, c->q, c->ld, c->T, c->S, sig);
    return dref_ce(c->S, c->P, c->ldp, c->T);
}

Test(sparse, grad_pos_ce) {
    rng_t r;
    rng_seed(&r, 42);
    int cfg[][3] = {{9, 5, 6}, {12, 8, 5}, {1, 12, 4}}; /* T, hs, hidden */
    for (int ci = 0; ci < 3; ci++) {
        int T = cfg[ci][0], hs = cfg[ci][1], max_seq = T + 4, ldp = T + 1;
        head_spec s = spec_pos(3, 1, 0.0f, cfg[ci][2]);
        qkv_buf b = qkv_make(T, hs, 2, 0, 1.0f, &r);
        size_t np = selector_param_count(&s, hs, max_seq);
        float *prm = rand_f(np, 0.8f, &r), *dp = ref_falloc(np);
        float *P = rand_causal_P(T, ldp, 1.5f, &r);
        float *work = falloc_fill(selector_work_floats(&s, hs, T), NAN);
        double fl = selector_grad(&s, prm, dp, hs, max_seq, b.q, b.k, b.ld, T, P, ldp, work);
        pos_ctx c = {&s, ref_f2d(prm, np), b.qd, P, hs, max_seq, b.ld, T, ldp, ref_dalloc((size_t)T * T)};
        char what[96];
        snprintf(what, sizeof what, "pos CE T=%d hs=%d hidden=%d", T, hs, s.hidden);
        check_loss(what, fl, pos_loss(&c, NULL));
        double *fd = ref_dalloc(np);
        size_t *off = iota(np);
        int nskip = fd_grad(c.prm, off, np, pos_loss, &c, fd);
#ifdef REF_VERBOSE
        fprintf(stderr, "%-50s %d of %zu FD coordinates skipped (ReLU kink)\n", what, nskip, np);
#endif
        cr_assert(nskip * 20 <= (int)np, "%s: %d of %zu coordinates at a ReLU kink", what, nskip, np);
        check_grad(what, dp, fd, np, T == 1); /* T = 1: one key, the loss is 0 */
        /* positions >= T of W2 and b2 get exactly nothing */
        int hd = s.hidden;
        const float *dW2 = dp + (size_t)hd * hs + hd, *db2 = dW2 + (size_t)max_seq * hd;
        for (int u = T; u < max_seq; u++) {
            cr_assert(db2[u] == 0.0f);
            for (int i = 0; i < hd; i++) cr_assert(dW2[(size_t)u * hd + i] == 0.0f);
        }
        free(prm), free(dp), free(P), free(work), free(c.prm), free(c.S), free(fd), free(off);
        qkv_free(&b);
    }
}

/* A random causal selection: row t gets a random count in [1, min(kmax, t+1)] of distinct keys
 * <= t in random order (head functions take any selection). */
static sel_out rand_selection(int T, int kmax, rng_t *r) {
    sel_out o;
    o.T = T, o.kmax = kmax;
    o.idx = malloc((size_t)T * kmax * sizeof(int));
    o.count = malloc((size_t)T * sizeof(int));
    o.score = ref_falloc((size_t)T * kmax);
    for (size_t i = 0; i < (size_t)T * kmax; i++) o.idx[i] = -7;
    for (int t = 0; t < T; t++) {
        int perm[128], lim = kmax < t + 1 ? kmax : t + 1;
        for (int u = 0; u <= t; u++) perm[u] = u;
        for (int u = t; u > 0; u--) {
            int j = (int)rng_below(r, (uint32_t)u + 1), x = perm[u];
            perm[u] = perm[j], perm[j] = x;
        }
        o.count[t] = t % 4 == 3 ? lim : 1 + (int)rng_below(r, (uint32_t)lim);
        for (int j = 0; j < o.count[t]; j++) o.idx[(size_t)t * kmax + j] = perm[j];
    }
    return o;
}

/* head function loss sum(out * R) w.r.t. qkv entries and params */
typedef struct {
    const head_spec *s;
    double *prm, *qkvd, *out;
    const double *R;
    const sel_out *o;
    int hs, ld, T, C, hd;
} hfn_ctx;

static double hfn_loss(void *p, uint64_t *sig) {
    hfn_ctx *c = p;
    const double *q = c->qkvd + c->hd * c->hs, *k = q + c->C, *v = k + c->C;
    if (c->s->fn == HFN_MLP)
        dref_mlp_head(c->s, c->prm, c->hs, c->o->kmax, q, k, v, c->ld, c->T, c->o->idx, c->o->count, c->out);
    else
        dref_softmax_head(c->hs, c->o->kmax, q, k, v, c->ld, c->T, c->o->idx, c->o->count, c->out);
    if (sig) *sig = 0;
    double L = 0;
    for (size_t i = 0; i < (size_t)c->T * c->hs; i++) L += c->out[i] * c->R[i];
    return L;
}

/* Runs forward + backward (float) and checks the output, dq/dk/dv and dparams against FD
 * of the double reference. */
static void check_headfn(const char *what, const head_spec *s, int T, int hs, int kmax, rng_t *r) {
    int H = 2, hd = 1, ldo = hs + 2;
    qkv_buf b = qkv_make(T, hs, H, hd, 1.0f, r);
    sel_out o = rand_selection(T, kmax, r);
    size_t np = headfn_param_count(s, hs, kmax);
    if (s->fn == HFN_MLP) {
        size_t D = (size_t)mlp_D(s, hs, kmax);
        cr_assert(np == s->hidden * D + s->hidden + (size_t)hs * s->hidden + hs, "%s: param count", what);
    } else {
        cr_assert(np == 0, "%s: softmax head has parameters", what);
    }
    float *prm = rand_f(np, 0.4f, r), *dp = ref_falloc(np);
    if (np) {
        headfn_init(s, hs, kmax, prm, r);
        for (size_t i = 0; i < np; i++) cr_assert(isfinite(prm[i]));
        ref_fill_normal(prm, np, 0.4f, r); /* non-zero biases too */
    }
    float *out = falloc_fill((size_t)T * ldo, NAN);
    float *cache = falloc_fill(headfn_cache_floats(s, hs, kmax, T), NAN);
    headfn_forward(s, prm, hs, kmax, b.q, b.k, b.v, b.ld, T, o.idx, o.count, out, ldo, cache);
    /* dout = R in the ldo layout, NaN in the padding (must not be read) */
    float *Rf = falloc_fill((size_t)T * ldo, NAN);
    double *R = ref_dalloc((size_t)T * hs);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < hs; i++) R[(size_t)t * hs + i] = Rf[(size_t)t * ldo + i] = rng_normal(r);
    float *dqkv = ref_falloc((size_t)T * b.ld);
    headfn_backward(s, prm, dp, hs, kmax, b.q, b.k, b.v, b.ld, dqkv + hd * hs, dqkv + b.C + hd * hs,
                    dqkv + 2 * b.C + hd * hs, T, o.idx, o.count, Rf, ldo, cache);
    hfn_ctx c = {s, ref_f2d(prm, np), b.qkvd, ref_dalloc((size_t)T * hs), R, &o, hs, b.ld, T, b.C, hd};
    /* forward: output and loss */
    double L = hfn_loss(&c, NULL), Lf = 0;
    float *packed = ref_falloc((size_t)T * hs);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < ldo; i++) {
            float x = out[(size_t)t * ldo + i];
            if (i >= hs) {
                cr_assert(isnan(x), "%s: wrote into the ldo padding", what);
                continue;
            }
            packed[(size_t)t * hs + i] = x;
            Lf += (double)x * R[(size_t)t * hs + i];
        }
    double e = ref_rel_err(packed, c.out, (size_t)T * hs);
    cr_assert(e <= 1e-5, "%s: forward vs double rel err %.3g", what, e);
    check_loss(what, Lf, L);
    /* dq, dk, dv: FD over the head's columns; all other columns must stay exactly 0 */
    size_t nx = (size_t)3 * T * hs, *off = malloc(nx * sizeof(size_t));
    float *an = ref_falloc(nx);
    for (int part = 0, n = 0; part < 3; part++)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < hs; i++, n++) {
                off[n] = (size_t)t * b.ld + part * b.C + hd * hs + i;
                an[n] = dqkv[off[n]];
            }
    for (size_t i = 0; i < (size_t)T * b.ld; i++) {
        int col = (int)(i % b.ld) % b.C;
        if (col / hs != hd) cr_assert(dqkv[i] == 0.0f, "%s: gradient outside the head's columns", what);
    }
    double *fd = ref_dalloc(nx);
    fd_grad(b.qkvd, off, nx, hfn_loss, &c, fd);
    char w2[128];
    /* dq is 0 when q only enters through a softmax over one key each (T = 1), or not at all */
    int one_key = 1;
    for (int t = 0; t < T; t++) one_key &= o.count[t] == 1;
    int dq_zero = s->fn == HFN_MLP ? !s->mlp_q && !s->mlp_logits : one_key;
    snprintf(w2, sizeof w2, "%s dq", what);
    check_grad(w2, an, fd, (size_t)T * hs, dq_zero);
    snprintf(w2, sizeof w2, "%s dv", what);
    check_grad(w2, an + 2 * T * hs, fd + 2 * T * hs, (size_t)T * hs, 0);
    if (s->fn == HFN_MLP && !s->mlp_logits) {
        for (int i = 0; i < T * hs; i++)
            cr_assert(an[T * hs + i] == 0.0f && fd[T * hs + i] == 0.0, "%s: dk without logits", what);
    } else {
        snprintf(w2, sizeof w2, "%s dk", what);
        check_grad(w2, an + T * hs, fd + T * hs, (size_t)T * hs, s->fn == HFN_SOFTMAX && one_key);
    }
    if (np) {
        double *fdp = ref_dalloc(np);
        size_t *offp = iota(np);
        fd_grad(c.prm, offp, np, hfn_loss, &c, fdp);
        snprintf(w2, sizeof w2, "%s dparams", what);
        check_grad(w2, dp, fdp, np, 0);
        free(fdp), free(offp);
    }
    free(prm), free(dp), free(out), free(cache), free(Rf), free(R), free(dqkv), free(c.prm);
    free(c.out), free(packed), free(off), free(an), free(fd);
    sel_free(&o), qkv_free(&b);
}

Test(sparse, grad_softmax_head) {
    rng_t r;
    rng_seed(&r, 43);
    int cfg[][3] = {{9, 5, 4}, {12, 8, 12}, {7, 12, 3}, {1, 5, 1}}; /* T, hs, kmax */
    for (int ci = 0; ci < 4; ci++) {
        head_spec s = spec_index(cfg[ci][2], 1, 0.0f, 4, 2);
        char what[96];
        snprintf(what, sizeof what, "softmax head T=%d hs=%d kmax=%d", cfg[ci][0], cfg[ci][1], cfg[ci][2]);
        check_headfn(what, &s, cfg[ci][0], cfg[ci][1], cfg[ci][2], &r);
    }
}

Test(sparse, grad_mlp_head) {
    rng_t r;
    rng_seed(&r, 44);
    int cfg[][4] = {{9, 5, 4, 6}, {8, 8, 3, 5}, {6, 12, 6, 4}}; /* T, hs, kmax, hidden */
    for (int ci = 0; ci < 3; ci++)
        for (int flags = 0; flags < 4; flags++) {
            int mq = flags & 1, ml = flags >> 1;
            head_spec s = spec_make(SEL_INDEX, HFN_MLP, cfg[ci][2], 1, 0.0f, 4, 2, 4, 2, 0,
                                    cfg[ci][3], mq, ml);
            char what[96];
            snprintf(what, sizeof what, "mlp head T=%d hs=%d kmax=%d hidden=%d q=%d logits=%d",
                     cfg[ci][0], cfg[ci][1], cfg[ci][2], cfg[ci][3], mq, ml);
            check_headfn(what, &s, cfg[ci][0], cfg[ci][1], cfg[ci][2], &r);
        }
}

/* ================================================================== accumulation */

/* from_p (run on buffers pre-filled with p) == p + from_zero; and running twice from zero
 * gives twice one run. */
static void check_accum(const char *what, const float *from_p, const float *p, const float *from_zero,
                        const float *twice, size_t n) {
    double num = 0, den = 0, num2 = 0, den2 = 0;
    for (size_t i = 0; i < n; i++) {
        double want = (double)p[i] + from_zero[i];
        num = fmax(num, fabs(from_p[i] - want)), den = fmax(den, fabs(want));
        num2 = fmax(num2, fabs(twice[i] - 2.0 * from_zero[i])), den2 = fmax(den2, fabs(2.0 * from_zero[i]));
    }
    cr_assert(den2 > 0, "%s: zero gradient", what);
    cr_assert(num <= 1e-6 * den, "%s: does not accumulate onto existing values (%.3g)", what, num / den);
    cr_assert(num2 <= 1e-6 * den2, "%s: two runs are not twice one run (%.3g)", what, num2 / den2);
}

Test(sparse, accum_selector_grad) {
    rng_t r;
    rng_seed(&r, 51);
    int T = 11, hs = 8, max_seq = 14, ldp = T;
    for (int v = 0; v < 2; v++) {
        head_spec s = v ? spec_pos(3, 1, 0.0f, 6) : spec_index(3, 1, 0.0f, 4, 3);
        qkv_buf b = qkv_make(T, hs, 2, 1, 1.0f, &r);
        size_t np = selector_param_count(&s, hs, max_seq);
        float *prm = rand_f(np, 0.8f, &r), *P = rand_causal_P(T, ldp, 1.0f, &r);
        float *work = falloc_fill(selector_work_floats(&s, hs, T), NAN);
        float *g0 = ref_falloc(np), *g2 = ref_falloc(np), *pre = rand_f(np, 1.0f, &r), *gp = ref_falloc(np);
        memcpy(gp, pre, np * sizeof(float));
        double l0 = selector_grad(&s, prm, g0, hs, max_seq, b.q, b.k, b.ld, T, P, ldp, work);
        double l1 = selector_grad(&s, prm, g2, hs, max_seq, b.q, b.k, b.ld, T, P, ldp, work);
        double l2 = selector_grad(&s, prm, g2, hs, max_seq, b.q, b.k, b.ld, T, P, ldp, work);
        selector_grad(&s, prm, gp, hs, max_seq, b.q, b.k, b.ld, T, P, ldp, work);
        cr_assert(l0 == l1 && l1 == l2, "selector_grad loss not deterministic");
        check_accum(v ? "pos selector_grad" : "index selector_grad", gp, pre, g0, g2, np);
        free(prm), free(P), free(work), free(g0), free(g2), free(pre), free(gp);
        qkv_free(&b);
    }
    /* block: no parameters, loss 0, dparams untouched */
    head_spec s = spec_block(4, 2, 0);
    qkv_buf b = qkv_make(T, hs, 1, 0, 1.0f, &r);
    float dummy = 3.0f, *P = rand_causal_P(T, ldp, 1.0f, &r);
    float *work = falloc_fill(selector_work_floats(&s, hs, T), NAN);
    cr_assert(selector_grad(&s, NULL, &dummy, hs, T, b.q, b.k, b.ld, T, P, ldp, work) == 0.0);
    cr_assert(dummy == 3.0f);
    free(P), free(work), qkv_free(&b);
}

Test(sparse, accum_headfn_backward) {
    rng_t r;
    rng_seed(&r, 52);
    int T = 10, hs = 5, kmax = 4;
    for (int v = 0; v < 2; v++) {
        head_spec s = v ? spec_make(SEL_INDEX, HFN_MLP, kmax, 1, 0.0f, 4, 2, 4, 2, 0, 6, 1, 1)
                        : spec_index(kmax, 1, 0.0f, 4, 2);
        const char *nm = v ? "mlp" : "softmax";
        qkv_buf b = qkv_make(T, hs, 2, 1, 1.0f, &r);
        sel_out o = rand_selection(T, kmax, &r);
        size_t np = headfn_param_count(&s, hs, kmax), nq = (size_t)T * b.ld;
        float *prm = rand_f(np, 0.5f, &r);
        float *out = ref_falloc((size_t)T * hs), *cache = falloc_fill(headfn_cache_floats(&s, hs, kmax, T), NAN);
        headfn_forward(&s, prm, hs, kmax, b.q, b.k, b.v, b.ld, T, o.idx, o.count, out, hs, cache);
        float *dout = rand_f((size_t)T * hs, 1.0f, &r);
        float *p0 = ref_falloc(np), *p2 = ref_falloc(np), *pre = rand_f(np, 1.0f, &r), *pp = ref_falloc(np);
        float *x0 = ref_falloc(nq), *x2 = ref_falloc(nq), *xpre = rand_f(nq, 1.0f, &r), *xp = ref_falloc(nq);
        memcpy(pp, pre, np * sizeof(float)), memcpy(xp, xpre, nq * sizeof(float));
        float *bufs[4][2] = {{p0, x0}, {p2, x2}, {p2, x2}, {pp, xp}};
        for (int run = 0; run < 4; run++) {
            float *dp = bufs[run][0], *dx = bufs[run][1];
            headfn_backward(&s, prm, np ? dp : NULL, hs, kmax, b.q, b.k, b.v, b.ld, dx + hs,
                            dx + b.C + hs, dx + 2 * b.C + hs, T, o.idx, o.count, dout, hs, cache);
        }
        char what[64];
        snprintf(what, sizeof what, "%s headfn_backward dqkv", nm);
        check_accum(what, xp, xpre, x0, x2, nq);
        if (np) {
            snprintf(what, sizeof what, "%s headfn_backward dparams", nm);
            check_accum(what, pp, pre, p0, p2, np);
            /* NULL outputs: dparams alone, and dq/dk/dv alone, give the same values */
            float *pa = ref_falloc(np), *xa = ref_falloc(nq);
            headfn_backward(&s, prm, pa, hs, kmax, b.q, b.k, b.v, b.ld, NULL, NULL, NULL, T, o.idx,
                            o.count, dout, hs, cache);
            headfn_backward(&s, prm, NULL, hs, kmax, b.q, b.k, b.v, b.ld, xa + hs, xa + b.C + hs,
                            xa + 2 * b.C + hs, T, o.idx, o.count, dout, hs, cache);
            cr_assert(memcmp(pa, p0, np * sizeof(float)) == 0, "%s: dparams depends on dq/dk/dv being NULL", nm);
            cr_assert(memcmp(xa, x0, nq * sizeof(float)) == 0, "%s: dqkv depends on dparams being NULL", nm);
            free(pa), free(xa);
        }
        free(prm), free(out), free(cache), free(dout), free(p0), free(p2), free(pre), free(pp);
        free(x0), free(x2), free(xpre), free(xp);
        sel_free(&o), qkv_free(&b);
    }
}

/* ================================================================== dense guard */

Test(sparse, dense_has_no_params) {
    for (int fn = 0; fn < 2; fn++) {
        head_spec s = spec_make(SEL_DENSE, (hfn_kind)fn, 16, 1, 0.0f, 16, 4, 16, 4, 0, 128, 1, 1);
        for (int h = 0; h < 3; h++) {
            cr_assert(selector_param_count(&s, HSs[h], 64) == 0, "dense selector has parameters");
            cr_assert(headfn_param_count(&s, HSs[h], 16) == 0, "dense head function has parameters");
        }
    }
    head_spec blk = spec_block(4, 3, 1);
    cr_assert(selector_param_count(&blk, 8, 64) == 0);
    cr_assert(headfn_param_count(&blk, 8, 12) == 0); /* softmax: none */
}

/* ================================================================== extreme scale */

/* Logits and selector scores in the hundreds: exp overflows unless the maximum is subtracted.
 * Everything stays finite and matches the double references. */
Test(sparse, extreme_scale) {
    rng_t r;
    rng_seed(&r, 61);
    int T = 33, hs = 8, ldp = T;
    qkv_buf b = qkv_make(T, hs, 2, 1, 12.0f, &r); /* q.k/sqrt(8) ~ 12*12*8/2.8 ~ 400 */
    /* softmax head over an index selection */
    head_spec s = spec_index(9, 2, 0.9f, 4, 2);
    size_t np = selector_param_count(&s, hs, T);
    float *prm = rand_f(np, 1.0f, &r); /* index scores ~ 1e2..1e3 */
    sel_out o = run_select(&s, prm, T, &b);
    check_structure("extreme index", &o);
    float *out = falloc_fill((size_t)T * hs, NAN), *cache = falloc_fill(headfn_cache_floats(&s, hs, o.kmax, T), NAN);
    headfn_forward(&s, NULL, hs, o.kmax, b.q, b.k, b.v, b.ld, T, o.idx, o.count, out, hs, cache);
    double *ref = ref_dalloc((size_t)T * hs);
    dref_softmax_head(hs, o.kmax, b.qd, b.kd, b.vd, b.ld, T, o.idx, o.count, ref);
    double e = ref_rel_err(out, ref, (size_t)T * hs);
    cr_assert(e <= 1e-4, "softmax head with logits ~1e2: rel err %.3g", e);
    /* the KL loss and its gradient stay finite; the loss matches the double reference */
    float *P = rand_causal_P(T, ldp, 1.0f, &r), *dp = ref_falloc(np);
    float *work = falloc_fill(selector_work_floats(&s, hs, T), NAN);
    double fl = selector_grad(&s, prm, dp, hs, T, b.q, b.k, b.ld, T, P, ldp, work);
    double *pd = ref_f2d(prm, np), *S = ref_dalloc((size_t)T * T);
    dref_index_scores(&s, pd, hs, b.qd, b.kd, b.ld, T, S, NULL);
    double mxs = 0;
    for (size_t i = 0; i < (size_t)T * T; i++) mxs = fmax(mxs, fabs(S[i]));
    cr_assert(mxs > 100, "scores not extreme enough (%g)", mxs);
    double dl = dref_kl(S, P, ldp, T);
    cr_assert(isfinite(fl) && fabs(fl - dl) <= 1e-4 * fabs(dl), "KL loss %.9g vs double %.9g", fl, dl);
    for (size_t i = 0; i < np; i++) cr_assert(isfinite(dp[i]), "KL gradient [%zu] not finite", i);
    sel_free(&o), qkv_free(&b), free(prm), free(out), free(cache), free(ref), free(P), free(dp);
    free(work), free(pd), free(S);
}

/* selector_topk against a brute-force reference: for each rank, the best entry not yet
 * taken (higher score, then earlier key). Rows with many ties (scores from 4 values),
 * -inf entries, k = 1, k = n, k > n, and n not a multiple of anything. */
Test(sparse, topk_matches_brute_force) {
    rng_t r;
    rng_seed(&r, 99);
    static const int ns[] = {1, 2, 7, 63, 64, 65, 300, 1031};
    static const int ks[] = {1, 2, 5, 16, 32, 100, 2000};
    float *row = malloc(1031 * sizeof(float)), *sc = malloc(2000 * sizeof(float));
    int *ix = malloc(2000 * sizeof(int)), *taken = malloc(1031 * sizeof(int));
    for (int mode = 0; mode < 3; mode++)
        for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
            for (size_t b = 0; b < sizeof ks / sizeof *ks; b++) {
                int n = ns[a], k = ks[b];
                for (int i = 0; i < n; i++) {
                    float u = rng_uniform(&r);
                    row[i] = mode == 0 ? u : mode == 1 ? (float)(int)(4 * u) : (u < 0.3f ? -INFINITY : u);
                }
                int c = selector_topk(row, n, k, sc, ix);
                cr_assert_eq(c, k < n ? k : n);
                memset(taken, 0, (size_t)n * sizeof(int));
                for (int j = 0; j < c; j++) {
                    int best = -1;
                    for (int i = 0; i < n; i++)
                        if (!taken[i] && (best < 0 || row[i] > row[best])) best = i;
                    taken[best] = 1;
                    cr_assert_eq(ix[j], best, "mode %d n %d k %d rank %d: %d, expected %d", mode, n, k, j, ix[j], best);
                    cr_assert(sc[j] == row[best] || (isinf(sc[j]) && isinf(row[best])));
                }
            }
    free(row), free(sc), free(ix), free(taken);
}

/* distill and eval run a head through head_scratch (head_scratch_select): in a window shorter
 * than the heads' max_seq an mlp head must still read its input at the width its parameters
 * were made for (max_seq's kmax). The head is causal, so its outputs at t < 9 in a window of 9
 * equal those in a window of max_seq = 32; reading 9-wide rows (what head_scratch did) breaks
 * that. */
Test(sparse, mlp_head_short_window_keeps_param_width) {
    rng_t r;
    rng_seed(&r, 77);
    int hs = 8, max_seq = 32, ld = 3 * hs;
    static const char *const specs[] = {"block", "index"};
    for (int k = 0; k < 2; k++) {
        head_spec s = head_spec_default();
        s.sel = k ? SEL_INDEX : SEL_BLOCK, s.fn = HFN_MLP, s.block = 4, s.nblocks = 4, s.k = 16, s.hidden = 16;
        sparse_heads sh;
        sparse_heads_create(&sh, 1, 1, hs, max_seq, &s, &r);
        const sparse_head *sp = &sh.h[0];
        float *qkv = malloc((size_t)max_seq * ld * sizeof(float));
        for (int i = 0; i < max_seq * ld; i++) qkv[i] = rng_normal(&r);
        float out[2][32 * 8];
        for (int w = 0; w < 2; w++) {
            int T = w ? 9 : max_seq;
            head_scratch hsr;
            head_scratch_init(&hsr, &sp->spec, hs, T, max_seq);
            cr_assert_eq(hsr.kmax, selector_kmax(&sp->spec, max_seq), "%s: slot width", specs[k]);
            head_scratch_select(&hsr, &sp->spec, sp->params, hs, max_seq, qkv, qkv + hs, ld, T);
            headfn_forward(&sp->spec, sp->params + sp->n_sel, hs, hsr.kmax, qkv, qkv + hs, qkv + 2 * hs, ld, T,
                           hsr.idx, hsr.count, out[w], hs, hsr.cache);
            head_scratch_free(&hsr);
        }
        for (int i = 0; i < 9 * hs; i++)
            cr_assert(fabsf(out[0][i] - out[1][i]) <= 1e-5f * (1 + fabsf(out[0][i])), "%s: t %d: %g vs %g", specs[k],
                      i / hs, out[1][i], out[0][i]);
        free(qkv);
        sparse_heads_free(&sh);
    }
}
