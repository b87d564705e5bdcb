/* Tests of lindex.h: the shared (per-layer) indexer.
 *
 * Against a plain double-precision reference of lindex.h's formulas on random inputs of
 * awkward sizes (T 1, 5, 37, 70, 131: not multiples of the 4-row groups or the 16/32-key
 * blocks; H 3 x hs 5 = C 15; rank 7 (odd: a padded bf16 pair) with J 2, and the default
 * r 32, J 1; k 16 > t + 1 on the early rows), both score paths:
 *   lindex/scores_*   float32 scores within 1e-5 of the row scale; bf16 scores within the
 *                     documented bound sum_j |w_j| 2^-7 sum_i |qt_ji kt_i| (+ 1e-6 scale).
 *   lindex/select_*   structure (keys <= t, distinct, count = min(k, t+1), scores descending,
 *                     equal to the kernel's own score of that key); the kept set is the exact
 *                     top-k of the kernel's own scores with ties to the earlier key; and a
 *                     top-k of the double scores up to near-ties (a kept key may rank below a
 *                     dropped one only by less than their two error bounds).
 *   lindex/ties_*     all scores equal (Wq = 0): keys 0..k-1 in order, both paths.
 *   lindex/dynamic_k  tau: the smallest m >= kmin whose softmax mass reaches tau.
 *   lindex/layout_*   gather/scatter round trip; per-head slots = selector_param_count.
 *   lindex/target_*   the heads' summed attention against double, dense and on a key subset.
 *   lindex/grad_*     lindex_kl_grad against central differences (eps 1e-5) of a double
 *                     loss, on dense rows and on selected keys; coordinates whose +-eps
 *                     flips a ReLU in the reference are skipped (counted, must be rare). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref.h"
#include "sattn/lindex.h"

/* ------------------------------------------------------------------ helpers */

static head_spec spec_shared(int k, int r, int J) {
    head_spec s = head_spec_default();
    s.sel = SEL_INDEX, s.fn = HFN_SOFTMAX, s.k = k, s.rank = r, s.iheads = J, s.shared = 1;
    return s;
}

typedef struct {
    lindex_dims d;
    int T, ld;
    float *qkv, *w;
} case_t;

static case_t case_make(int T, int H, int hs, int r, int J, uint64_t seed) {
    case_t c;
    rng_t g;
    rng_seed(&g, seed);
    head_spec s = spec_shared(16, r, J);
    c.d = lindex_dims_of(&s, H, hs);
    c.T = T, c.ld = 3 * c.d.C;
    c.qkv = ref_falloc((size_t)T * c.ld);
    ref_fill_normal(c.qkv, (size_t)T * c.ld, 1.0f, &g);
    c.w = ref_falloc(lindex_param_count(&c.d));
    lindex_init(&c.d, c.w, &g);
    /* w_j of both signs, some near 0: the relu weights matter */
    size_t pw = ((size_t)J * r + r) * c.d.C;
    for (int j = 0; j < J; j++) c.w[pw + (size_t)J * c.d.C + j] = 0.5f + 0.3f * rng_normal(&g);
    return c;
}

static void case_free(case_t *c) { free(c->qkv), free(c->w); }

/* Reference projections in double: qt (T, J r) (scaled by 1/sqrt r), kt (T, r), w (T, J). */
typedef struct {
    double *qt, *kt, *wt;
} ref_proj;

static ref_proj ref_project(const case_t *c) {
    const lindex_dims *d = &c->d;
    int J = d->J, r = d->r, C = d->C, T = c->T;
    const float *Wq = c->w, *Wk = Wq + (size_t)J * r * C, *Ww = Wk + (size_t)r * C, *bw = Ww + (size_t)J * C;
    ref_proj p = {ref_dalloc((size_t)T * J * r), ref_dalloc((size_t)T * r), ref_dalloc((size_t)T * J)};
    for (int t = 0; t < T; t++) {
        const float *q = c->qkv + (size_t)t * c->ld, *k = q + C;
        for (int m = 0; m < J * r; m++) {
            double a = 0;
            for (int i = 0; i < C; i++) a += (double)Wq[(size_t)m * C + i] * q[i];
            p.qt[(size_t)t * J * r + m] = a / sqrt((double)r);
        }
        for (int m = 0; m < r; m++) {
            double a = 0;
            for (int i = 0; i < C; i++) a += (double)Wk[(size_t)m * C + i] * k[i];
            p.kt[(size_t)t * r + m] = a;
        }
        for (int j = 0; j < J; j++) {
            double a = bw[j];
            for (int i = 0; i < C; i++) a += (double)Ww[(size_t)j * C + i] * q[i];
            p.wt[(size_t)t * J + j] = a;
        }
    }
    return p;
}

static void ref_proj_free(ref_proj *p) { free(p->qt), free(p->kt), free(p->wt); }

/* score(t, s) in double, and the bf16 error bound sum_j |w_j| 2^-7 sum_i |qt_ji kt_i|. */
static double ref_score(const case_t *c, const ref_proj *p, int t, int s, double *bound) {
    int J = c->d.J, r = c->d.r;
    double sc = 0, b = 0;
    for (int j = 0; j < J; j++) {
        double a = 0, m = 0;
        for (int x = 0; x < r; x++) {
            double prod = p->qt[((size_t)t * J + j) * r + x] * p->kt[(size_t)s * r + x];
            a += prod, m += fabs(prod);
        }
        double w = p->wt[(size_t)t * J + j];
        sc += w * (a > 0 ? a : 0);
        b += fabs(w) * m;
    }
    if (bound) *bound = b * ldexp(1.0, -7);
    return sc;
}

/* The row's scale: max over s <= t of the bound's sum (for float tolerances). */
static double row_scale(const case_t *c, const ref_proj *p, int t) {
    double m = 1e-30, b;
    for (int s = 0; s <= t; s++) {
        ref_score(c, p, t, s, &b);
        m = fmax(m, b * 128.0);
    }
    return m;
}

static float *kernel_scores(const case_t *c, lindex_prec prec) {
    float *S = ref_falloc((size_t)c->T * c->T);
    float *work = ref_falloc(lindex_work_floats(&c->d, c->T));
    lindex_scores(&c->d, c->w, c->qkv, c->qkv + c->d.C, c->ld, c->T, S, work, prec);
    free(work);
    return S;
}

static int have_bf16(void) {
    if (lindex_cpu_bf16()) return 1;
    fprintf(stderr, "lindex: this CPU has no AVX512-BF16: the bf16 path is not tested here\n");
    return 0;
}

/* ------------------------------------------------------------------ scores */

static void check_scores(lindex_prec prec, int T, int H, int hs, int r, int J, uint64_t seed) {
    case_t c = case_make(T, H, hs, r, J, seed);
    ref_proj p = ref_project(&c);
    float *S = kernel_scores(&c, prec);
    double worst = 0;
    for (int t = 0; t < T; t++) {
        double scale = row_scale(&c, &p, t);
        for (int s = 0; s <= t; s++) {
            double b, ref = ref_score(&c, &p, t, s, &b);
            double tol = prec == LINDEX_BF16 ? b + 1e-6 * scale : 1e-5 * scale;
            double err = fabs(S[(size_t)t * T + s] - ref);
            worst = fmax(worst, err / tol);
            cr_assert_leq(err, tol, "%s T=%d r=%d J=%d: score(%d,%d) = %.9g, double %.9g (tol %.3g)",
                          lindex_prec_name(prec), T, r, J, t, s, S[(size_t)t * T + s], ref, tol);
        }
    }
    free(S);
    ref_proj_free(&p);
    case_free(&c);
}

Test(lindex, scores_f32_match_double) {
    int Ts[] = {1, 5, 37, 70, 131};
    for (int i = 0; i < 5; i++) {
        check_scores(LINDEX_F32, Ts[i], 3, 5, 7, 2, 100 + i);
        check_scores(LINDEX_F32, Ts[i], 4, 8, 32, 1, 200 + i);
    }
}

Test(lindex, scores_bf16_within_bound) {
    if (!have_bf16()) return;
    int Ts[] = {1, 5, 37, 70, 131};
    for (int i = 0; i < 5; i++) {
        check_scores(LINDEX_BF16, Ts[i], 3, 5, 7, 2, 300 + i);
        check_scores(LINDEX_BF16, Ts[i], 4, 8, 32, 1, 400 + i);
    }
}

/* ------------------------------------------------------------------ selection */

typedef struct {
    int kmax, *idx, *count;
    float *score;
} sel_t;

static sel_t run_select(const case_t *c, const head_spec *s, lindex_prec prec) {
    sel_t o;
    o.kmax = selector_kmax(s, c->T);
    o.idx = malloc((size_t)c->T * o.kmax * sizeof(int));
    o.count = malloc((size_t)c->T * sizeof(int));
    o.score = ref_falloc((size_t)c->T * o.kmax);
    float *work = ref_falloc(lindex_work_floats(&c->d, c->T));
    lindex_select(s, &c->d, c->w, c->qkv, c->qkv + c->d.C, c->ld, c->T, o.idx, o.score, o.count, work, prec, NULL);
    free(work);
    return o;
}

static void sel_free(sel_t *o) { free(o->idx), free(o->count), free(o->score); }

/* Structure, and the exact top-k of the kernel's own scores S (ties to the earlier key). */
static void check_own_topk(const sel_t *o, const float *S, int T, int k, int fixed) {
    char *in = malloc((size_t)T);
    for (int t = 0; t < T; t++) {
        int c = o->count[t];
        const int *ix = o->idx + (size_t)t * o->kmax;
        const float *sc = o->score + (size_t)t * o->kmax;
        if (fixed) cr_assert_eq(c, k < t + 1 ? k : t + 1, "t=%d: count %d", t, c);
        memset(in, 0, (size_t)T);
        float lo = INFINITY;
        int lo_key = -1;
        for (int j = 0; j < c; j++) {
            cr_assert(ix[j] >= 0 && ix[j] <= t && !in[ix[j]], "t=%d: bad or repeated key %d", t, ix[j]);
            in[ix[j]] = 1;
            cr_assert_eq(sc[j], S[(size_t)t * T + ix[j]], "t=%d: listed score differs from the kernel's", t);
            if (j) cr_assert(sc[j] < sc[j - 1] || (sc[j] == sc[j - 1] && ix[j] > ix[j - 1]), "t=%d: order", t);
            if (sc[j] < lo || (sc[j] == lo && ix[j] > lo_key)) lo = sc[j], lo_key = ix[j];
        }
        if (!fixed) continue;
        for (int u = 0; u <= t; u++) {
            if (in[u]) continue;
            float su = S[(size_t)t * T + u];
            cr_assert(su < lo || (su == lo && u > lo_key), "t=%d: dropped key %d (%.9g) ranks above kept %d (%.9g)",
                      t, u, su, lo_key, lo);
        }
    }
    free(in);
}

/* Against the double scores: a kept key s and a dropped key u <= t may be out of order only
 * by less than their error bounds (near-ties); returns the rows whose set differs. */
static int check_near_ties(const case_t *c, const sel_t *o, lindex_prec prec) {
    ref_proj p = ref_project(c);
    int T = c->T, differ = 0;
    char *in = malloc((size_t)T);
    double *ref = ref_dalloc((size_t)T), *tol = ref_dalloc((size_t)T);
    for (int t = 0; t < T; t++) {
        double scale = row_scale(c, &p, t);
        for (int s = 0; s <= t; s++) {
            double b;
            ref[s] = ref_score(c, &p, t, s, &b);
            tol[s] = prec == LINDEX_BF16 ? b + 1e-6 * scale : 1e-5 * scale;
        }
        memset(in, 0, (size_t)T);
        for (int j = 0; j < o->count[t]; j++) in[o->idx[(size_t)t * o->kmax + j]] = 1;
        int bad = 0;
        for (int s = 0; s <= t; s++)
            for (int u = 0; u <= t; u++)
                if (in[s] && !in[u] && ref[u] > ref[s]) {
                    cr_assert_leq(ref[u] - ref[s], tol[u] + tol[s], "t=%d: kept %d (%.9g) below dropped %d (%.9g)",
                                  t, s, ref[s], u, ref[u]);
                    bad = 1;
                }
        differ += bad;
    }
    free(in), free(ref), free(tol);
    ref_proj_free(&p);
    return differ;
}

static void check_select(lindex_prec prec) {
    int Ts[] = {1, 5, 37, 70, 131}, differ = 0, rows = 0;
    for (int i = 0; i < 5; i++)
        for (int v = 0; v < 2; v++) {
            case_t c = v ? case_make(Ts[i], 4, 8, 32, 1, 500 + i) : case_make(Ts[i], 3, 5, 7, 2, 600 + i);
            head_spec s = spec_shared(16, c.d.r, c.d.J);
            sel_t o = run_select(&c, &s, prec);
            float *S = kernel_scores(&c, prec);
            check_own_topk(&o, S, c.T, 16, 1);
            differ += check_near_ties(&c, &o, prec);
            rows += c.T;
            free(S);
            sel_free(&o);
            case_free(&c);
        }
    fprintf(stderr, "lindex %s: %d of %d rows kept a near-tie other than the double top-16\n",
            lindex_prec_name(prec), differ, rows);
}

Test(lindex, select_f32_topk) { check_select(LINDEX_F32); }

Test(lindex, select_bf16_topk_up_to_near_ties) {
    if (have_bf16()) check_select(LINDEX_BF16);
}

/* Wq = 0: every dot product is 0, every score 0: keys 0..k-1 in order, on both paths. */
Test(lindex, ties_go_to_the_earlier_key) {
    for (int bf = 0; bf < 2; bf++) {
        if (bf && !have_bf16()) continue;
        case_t c = case_make(70, 3, 5, 7, 2, 700);
        memset(c.w, 0, (size_t)c.d.J * c.d.r * c.d.C * sizeof(float));
        head_spec s = spec_shared(16, 7, 2);
        sel_t o = run_select(&c, &s, bf ? LINDEX_BF16 : LINDEX_F32);
        for (int t = 0; t < c.T; t++)
            for (int j = 0; j < o.count[t]; j++) cr_assert_eq(o.idx[(size_t)t * o.kmax + j], j, "t=%d j=%d", t, j);
        sel_free(&o);
        case_free(&c);
    }
}

Test(lindex, dynamic_k) {
    case_t c = case_make(70, 3, 5, 7, 2, 800);
    head_spec s = spec_shared(16, 7, 2);
    s.tau = 0.6f, s.k_min = 3;
    float *S = kernel_scores(&c, LINDEX_F32);
    sel_t o = run_select(&c, &s, LINDEX_F32);
    check_own_topk(&o, S, c.T, 16, 0);
    for (int t = 0; t < c.T; t++) {
        const float *row = S + (size_t)t * c.T;
        double mx = -INFINITY, z = 0, acc = 0;
        for (int u = 0; u <= t; u++) mx = fmax(mx, row[u]);
        for (int u = 0; u <= t; u++) z += exp(row[u] - mx);
        int full = t + 1 < 16 ? t + 1 : 16, want = full;
        for (int m = 0; m < full; m++) {
            acc += exp(o.score[(size_t)t * o.kmax + m] - mx) / z;
            if (m + 1 >= 3 && acc >= 0.6) {
                want = m + 1;
                break;
            }
        }
        cr_assert_eq(o.count[t], want, "t=%d", t);
    }
    free(S);
    sel_free(&o);
    case_free(&c);
}

/* ------------------------------------------------------------------ layout */

Test(lindex, layout_gather_scatter_round_trip) {
    int L = 2, H = 3, hs = 5;
    head_spec specs[6];
    for (int i = 0; i < 6; i++) specs[i] = i < 3 ? head_spec_default() : spec_shared(8, 7, 2);
    sparse_heads sh;
    rng_t g;
    rng_seed(&g, 9);
    sparse_heads_create(&sh, L, H, hs, 32, specs, &g);
    lindex_dims d = lindex_dims_of(&specs[3], H, hs);
    for (int h = 0; h < H; h++)
        cr_assert_eq(sh.h[3 + h].n_sel, selector_param_count(&specs[3], hs, 32));
    size_t n = lindex_param_count(&d);
    float *w = ref_falloc(n), *w2 = ref_falloc(n);
    ref_fill_normal(w, n, 1.0f, &g);
    lindex_scatter(&sh, 1, w);
    lindex_gather(&sh, 1, w2);
    cr_assert_eq(memcmp(w, w2, n * sizeof(float)), 0);
    cr_assert_eq(sh.h[4].params[sh.h[4].n_sel - 1], 0.0f, "bias kept in head 0 only");
    /* init: bw = 1, Wq at the scale 1/sqrt(C) */
    lindex_init_heads(&sh, &g);
    lindex_gather(&sh, 1, w2);
    cr_assert_eq(w2[n - 1], 1.0f);
    free(w), free(w2);
    sparse_heads_free(&sh);
}

/* ------------------------------------------------------------------ training */

/* Rows T-1..0 over keys 0..t (keys NULL) or over their last min(t+1, 6) keys. */
typedef struct {
    int n, *t, *keys, *nkeys;
    float *P;
    lindex_rows rw;
} rows_t;

static rows_t rows_make(int T, int subset) {
    rows_t r;
    r.n = T;
    r.t = malloc((size_t)T * sizeof(int));
    r.keys = malloc((size_t)T * T * sizeof(int));
    r.nkeys = malloc((size_t)T * sizeof(int));
    r.P = ref_falloc((size_t)T * T);
    for (int i = 0; i < T; i++) {
        r.t[i] = T - 1 - i; /* any order */
        int t = r.t[i], n = t + 1 < 6 ? t + 1 : 6;
        r.nkeys[i] = n;
        for (int u = 0; u < n; u++) r.keys[(size_t)i * T + u] = t - u; /* the query's own key first */
    }
    r.rw = (lindex_rows){r.n, r.t, subset ? r.keys : NULL, subset ? r.nkeys : NULL, T, r.P, T};
    return r;
}

static void rows_free(rows_t *r) { free(r->t), free(r->keys), free(r->nkeys), free(r->P); }

/* The loss in double from w (float values read as double, perturbed coordinate pi by de). */
static double ref_loss(const case_t *c, const lindex_rows *rw, size_t pi, double de, unsigned *pattern) {
    const lindex_dims *d = &c->d;
    int J = d->J, r = d->r, C = d->C;
    size_t n = lindex_param_count(d);
    double *w = ref_f2d(c->w, n);
    w[pi] += de;
    const double *Wq = w, *Wk = Wq + (size_t)J * r * C, *Ww = Wk + (size_t)r * C, *bw = Ww + (size_t)J * C;
    double loss = 0, *sc = ref_dalloc((size_t)c->T), *qt = ref_dalloc((size_t)J * r), *kt = ref_dalloc((size_t)r);
    *pattern = 0;
    for (int i = 0; i < rw->n; i++) {
        int t = rw->t[i], nk = rw->keys ? rw->nkeys[i] : t + 1;
        const float *q = c->qkv + (size_t)t * c->ld;
        for (int m = 0; m < J * r; m++) {
            qt[m] = 0;
            for (int x = 0; x < C; x++) qt[m] += Wq[(size_t)m * C + x] * q[x];
            qt[m] /= sqrt((double)r);
        }
        double mx = -INFINITY;
        for (int u = 0; u < nk; u++) {
            int s = rw->keys ? rw->keys[(size_t)i * rw->ldk + u] : u;
            const float *k = c->qkv + (size_t)s * c->ld + C;
            for (int m = 0; m < r; m++) {
                kt[m] = 0;
                for (int x = 0; x < C; x++) kt[m] += Wk[(size_t)m * C + x] * k[x];
            }
            sc[u] = 0;
            for (int j = 0; j < J; j++) {
                double a = 0, wj = bw[j];
                for (int x = 0; x < C; x++) wj += Ww[(size_t)j * C + x] * q[x];
                for (int x = 0; x < r; x++) a += qt[j * r + x] * kt[x];
                *pattern = *pattern * 31u + (a > 0);
                sc[u] += wj * (a > 0 ? a : 0);
            }
            mx = fmax(mx, sc[u]);
        }
        double z = 0;
        for (int u = 0; u < nk; u++) z += exp(sc[u] - mx);
        for (int u = 0; u < nk; u++) {
            double p = rw->P[(size_t)i * rw->ldp + u];
            if (p > 0) loss += p * (log(p) - (sc[u] - mx - log(z)));
        }
    }
    free(w), free(sc), free(qt), free(kt);
    return loss;
}

static void check_grad(int subset, uint64_t seed) {
    case_t c = case_make(13, 3, 5, 7, 2, seed);
    rng_t g;
    rng_seed(&g, seed + 1);
    rows_t r = rows_make(c.T, subset);
    /* random targets (normalised) rather than the attention: any P must work */
    for (int i = 0; i < r.n; i++) {
        int nk = subset ? r.nkeys[i] : r.t[i] + 1;
        double z = 0;
        for (int u = 0; u < nk; u++) z += (r.P[(size_t)i * c.T + u] = rng_uniform(&g) + 0.05f);
        for (int u = 0; u < nk; u++) r.P[(size_t)i * c.T + u] = (float)(r.P[(size_t)i * c.T + u] / z);
    }
    size_t n = lindex_param_count(&c.d);
    float *G = ref_falloc(n), *work = ref_falloc(lindex_grad_work_floats(&c.d, c.T));
    double loss = lindex_kl_grad(&c.d, c.w, G, c.qkv, c.qkv + c.d.C, c.ld, c.T, &r.rw, work);
    unsigned p0, pp, pm;
    double ref = ref_loss(&c, &r.rw, 0, 0.0, &p0);
    cr_assert_leq(fabs(loss - ref), 1e-4 * fabs(ref) + 1e-6, "loss %.9g, double %.9g", loss, ref);
    double gmax = 0, *fd = ref_dalloc(n);
    int skipped = 0;
    for (size_t i = 0; i < n; i++) {
        fd[i] = (ref_loss(&c, &r.rw, i, 1e-5, &pp) - ref_loss(&c, &r.rw, i, -1e-5, &pm)) / 2e-5;
        if (pp != p0 || pm != p0) fd[i] = NAN, skipped++;
        else gmax = fmax(gmax, fabs(fd[i]));
    }
    for (size_t i = 0; i < n; i++) {
        if (isnan(fd[i])) continue;
        cr_assert_leq(fabs(G[i] - fd[i]), 1e-3 * (fabs(fd[i]) + 1e-2 * gmax),
                      "subset=%d coordinate %zu: grad %.9g, fd %.9g", subset, i, G[i], fd[i]);
    }
    cr_assert_leq(skipped, (int)(n / 20), "%d of %zu coordinates at a ReLU kink", skipped, n);
    free(G), free(work), free(fd);
    rows_free(&r);
    case_free(&c);
}

Test(lindex, grad_dense_rows_matches_fd, .timeout = 120) { check_grad(0, 900); }
Test(lindex, grad_selected_keys_matches_fd, .timeout = 120) { check_grad(1, 901); }

/* The target: each head's softmax over the row's keys, averaged over the heads. */
Test(lindex, target_is_mean_head_attention) {
    case_t c = case_make(37, 3, 5, 7, 2, 1000);
    for (int subset = 0; subset < 2; subset++) {
        rows_t r = rows_make(c.T, subset);
        lindex_target(&c.d, c.qkv, c.qkv + c.d.C, c.ld, &r.rw, r.P);
        for (int i = 0; i < r.n; i++) {
            int t = r.t[i], nk = subset ? r.nkeys[i] : t + 1;
            double *want = ref_dalloc((size_t)nk), sum = 0;
            for (int h = 0; h < c.d.H; h++) {
                double z = 0, *e = ref_dalloc((size_t)nk);
                for (int u = 0; u < nk; u++) {
                    int s = subset ? r.keys[(size_t)i * c.T + u] : u;
                    double a = 0;
                    for (int x = 0; x < c.d.hs; x++)
                        a += (double)c.qkv[(size_t)t * c.ld + h * c.d.hs + x] * c.qkv[(size_t)s * c.ld + c.d.C + h * c.d.hs + x];
                    z += (e[u] = exp(a / sqrt((double)c.d.hs)));
                }
                for (int u = 0; u < nk; u++) want[u] += e[u] / z / c.d.H;
                free(e);
            }
            for (int u = 0; u < nk; u++) {
                cr_assert_leq(fabs(r.P[(size_t)i * c.T + u] - want[u]), 1e-6, "row %d key %d", i, u);
                sum += r.P[(size_t)i * c.T + u];
            }
            cr_assert_leq(fabs(sum - 1.0), 1e-5);
            free(want);
        }
        rows_free(&r);
    }
    case_free(&c);
}
