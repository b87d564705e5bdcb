/* Tests of nn.h.
 *
 * Suite "ref_fd": the double reference (tests/ref.c) backward passes against central
 *   finite differences of its own forward passes, for the loss L = sum(out * R) with
 *   random R. In double with eps = 1e-5 the truncation error is O(eps^2 f''') ~ 1e-10 and the
 *   rounding error O(1e-16 |L| / eps) ~ 1e-10, so a relative tolerance of 1e-6 is loose for a
 *   right gradient yet catches any wrong term (those are O(1) relative).
 * Suite "nn": every float kernel against the double reference on random inputs of awkward
 *   sizes (odd N, head sizes 3/5/7/10, Vp > V, T across the attention tile size), forward and
 *   backward, plus: backward accumulates (+=), outputs are fully overwritten (buffers start as
 *   NaN), the attention probabilities are exactly zero above the diagonal, T = 1, and extreme
 *   inputs. Tolerance: float32 has unit roundoff u = 6e-8; a dot product of K terms has a
 *   forward error bound of ~K u sum|a_i b_i| (typically sqrt(K) u); with K <= 4C ~ 100 and
 *   O(1) values this is ~1e-6 relative to the tensor's scale, and the transcendental functions
 *   (expf, tanhf) add a few ulp. So max|fast - ref| / max|ref| <= 1e-4 leaves ~100x headroom
 *   for legitimate float error while any real bug (a wrong index, a missing term, a wrong
 *   scale) shows up as an O(1e-2..1) relative error. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref.h"
#include "sattn/nn.h"
#include "sattn/rng.h"
#include "../src/nn/fastmath.h" /* internal to src/nn: its helpers are tested directly */

#define FD_EPS 1e-5
#define FD_TOL 1e-6
#define FAST_TOL 1e-4

/* ------------------------------------------------------------------ helpers */

static double dot_dd(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

typedef double (*loss_fn)(void *ctx);

/* Central differences of f() w.r.t. each x[i] (perturbed in place and restored). */
static double *fd_grad(double *x, size_t n, loss_fn f, void *ctx) {
    double *g = ref_dalloc(n);
    for (size_t i = 0; i < n; i++) {
        double save = x[i];
        x[i] = save + FD_EPS;
        double lp = f(ctx);
        x[i] = save - FD_EPS;
        double lm = f(ctx);
        x[i] = save;
        g[i] = (lp - lm) / (2 * FD_EPS);
    }
    return g;
}

/* Checks that (g_after - g_before) matches finite differences of f w.r.t. x. */
static void check_fd(const char *what, double *x, size_t n, const double *g_before,
                     const double *g_after, loss_fn f, void *ctx) {
    double *fd = fd_grad(x, n, f, ctx);
    double *an = ref_dalloc(n);
    for (size_t i = 0; i < n; i++) an[i] = g_after[i] - g_before[i];
    double err = ref_rel_err_dd(an, fd, n);
    cr_assert(ref_max_abs(fd, n) > 0 || ref_max_abs(an, n) == 0, "%s: degenerate check", what);
    cr_assert(err <= FD_TOL, "%s: reference gradient vs finite differences: rel err %.3g > %.1g",
              what, err, FD_TOL);
    free(fd);
    free(an);
}

/* Random double array with float-representable values (scale * N(0,1)). */
static double *rand_d(size_t n, float scale, rng_t *r) {
    float *f = ref_falloc(n);
    ref_fill_normal(f, n, scale, r);
    double *d = ref_f2d(f, n);
    free(f);
    return d;
}

static double *copy_d(const double *x, size_t n) {
    double *d = ref_dalloc(n);
    memcpy(d, x, n * sizeof(double));
    return d;
}

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

static float *copy_f(const float *x, size_t n) {
    float *f = ref_falloc(n);
    memcpy(f, x, n * sizeof(float));
    return f;
}

/* fast (float) vs reference (double): max|a-b| / max|b| <= tol */
static void check_close(const char *what, const float *a, const double *b, size_t n, double tol) {
    double e = ref_rel_err(a, b, n);
    size_t i = ref_argmax_err(a, b, n);
#ifdef REF_VERBOSE /* -DREF_VERBOSE: print every error, to see the headroom */
    fprintf(stderr, "%-70s %.2e (tol %.0e)\n", what, e, tol);
#endif
    cr_assert(e <= tol, "%s: rel err %.3g > %.1g (worst at [%zu]: fast %.9g, ref %.9g, n=%zu)",
              what, e, tol, i, (double)a[i], b[i], n);
}

/* Accumulation: a backward run on buffers pre-filled with P must give P + (the result of
 * the same run on zeroed buffers), up to float rounding of the sum. A kernel that
 * overwrites (=) instead of accumulating (+=) is off by |P| ~ 1. */
static void check_accum(const char *what, const float *from_p, const float *p,
                        const float *from_zero, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double want = (double)p[i] + from_zero[i];
        double d = fabs(from_p[i] - want);
        if (d != d) d = INFINITY;
        if (d > num) num = d;
        if (fabs(want) > den) den = fabs(want);
    }
    double e = num / (den > 0 ? den : 1);
    cr_assert(e <= 1e-5, "%s: backward does not accumulate (+=): rel err %.3g", what, e);
}

static int *rand_tokens(size_t n, int V, rng_t *r) {
    int *t = malloc(n * sizeof(int));
    for (size_t i = 0; i < n; i++) t[i] = (int)rng_below(r, (uint32_t)V);
    return t;
}

/* ================================================================== reference vs FD */

typedef struct {
    const int *inp;
    double *wte, *wpe, *R, *out;
    int B, T, C;
} enc_ctx;

static double enc_loss(void *p) {
    enc_ctx *c = p;
    ref_encoder_forward(c->out, c->inp, c->wte, c->wpe, c->B, c->T, c->C);
    return dot_dd(c->out, c->R, (size_t)c->B * c->T * c->C);
}

Test(ref_fd, encoder) {
    rng_t r;
    rng_seed(&r, 1);
    int B = 2, T = 5, C = 6, V = 4, maxT = 7;
    int *inp = rand_tokens((size_t)B * T, V, &r);
    size_t nout = (size_t)B * T * C;
    enc_ctx c = {inp, rand_d((size_t)V * C, 1, &r), rand_d((size_t)maxT * C, 1, &r),
                 rand_d(nout, 1, &r), ref_dalloc(nout), B, T, C};
    double *dwte0 = rand_d((size_t)V * C, 1, &r), *dwpe0 = rand_d((size_t)maxT * C, 1, &r);
    double *dwte = copy_d(dwte0, (size_t)V * C), *dwpe = copy_d(dwpe0, (size_t)maxT * C);
    ref_encoder_backward(dwte, dwpe, c.R, inp, B, T, C);
    check_fd("encoder dwte", c.wte, (size_t)V * C, dwte0, dwte, enc_loss, &c);
    check_fd("encoder dwpe", c.wpe, (size_t)maxT * C, dwpe0, dwpe, enc_loss, &c);
    free(inp), free(c.wte), free(c.wpe), free(c.R), free(c.out);
    free(dwte0), free(dwpe0), free(dwte), free(dwpe);
}

typedef struct {
    double *inp, *w, *b, *R, *out;
    int N, C;
} ln_ctx;

static double ln_loss(void *p) {
    ln_ctx *c = p;
    ref_layernorm_forward(c->out, NULL, NULL, c->inp, c->w, c->b, c->N, c->C);
    return dot_dd(c->out, c->R, (size_t)c->N * c->C);
}

Test(ref_fd, layernorm) {
    rng_t r;
    rng_seed(&r, 2);
    int N = 5, C = 7;
    size_t n = (size_t)N * C;
    ln_ctx c = {rand_d(n, 2, &r), rand_d((size_t)C, 1, &r), rand_d((size_t)C, 1, &r),
                rand_d(n, 1, &r), ref_dalloc(n), N, C};
    for (size_t i = 0; i < n; i++) c.inp[i] += 0.5; /* a non-zero mean */
    double *di0 = rand_d(n, 1, &r), *dw0 = rand_d((size_t)C, 1, &r), *db0 = rand_d((size_t)C, 1, &r);
    double *di = copy_d(di0, n), *dw = copy_d(dw0, (size_t)C), *db = copy_d(db0, (size_t)C);
    ref_layernorm_backward(di, dw, db, c.R, c.inp, c.w, N, C);
    check_fd("layernorm dinp", c.inp, n, di0, di, ln_loss, &c);
    check_fd("layernorm dw", c.w, (size_t)C, dw0, dw, ln_loss, &c);
    check_fd("layernorm db", c.b, (size_t)C, db0, db, ln_loss, &c);
    /* the statistics it reports */
    double mean[5], rstd[5];
    ref_layernorm_forward(c.out, mean, rstd, c.inp, c.w, c.b, N, C);
    for (int i = 0; i < N; i++) {
        double m = 0, v = 0;
        for (int j = 0; j < C; j++) m += c.inp[i * C + j] / C;
        for (int j = 0; j < C; j++) v += (c.inp[i * C + j] - m) * (c.inp[i * C + j] - m) / C;
        cr_assert(fabs(mean[i] - m) < 1e-12 && fabs(rstd[i] - 1 / sqrt(v + 1e-5)) < 1e-9);
    }
    free(c.inp), free(c.w), free(c.b), free(c.R), free(c.out);
    free(di0), free(dw0), free(db0), free(di), free(dw), free(db);
}

typedef struct {
    double *inp, *w, *bias, *R, *out;
    int N, C, OC;
} mm_ctx;

static double mm_loss(void *p) {
    mm_ctx *c = p;
    ref_matmul_forward(c->out, c->inp, c->w, c->bias, c->N, c->C, c->OC);
    return dot_dd(c->out, c->R, (size_t)c->N * c->OC);
}

Test(ref_fd, matmul) {
    rng_t r;
    rng_seed(&r, 3);
    int N = 5, C = 6, OC = 7;
    size_t ni = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    mm_ctx c = {rand_d(ni, 1, &r), rand_d(nw, 1, &r), rand_d((size_t)OC, 1, &r),
                rand_d(no, 1, &r), ref_dalloc(no), N, C, OC};
    double *di0 = rand_d(ni, 1, &r), *dw0 = rand_d(nw, 1, &r), *db0 = rand_d((size_t)OC, 1, &r);
    double *di = copy_d(di0, ni), *dw = copy_d(dw0, nw), *db = copy_d(db0, (size_t)OC);
    ref_matmul_backward(di, dw, db, c.R, c.inp, c.w, N, C, OC);
    check_fd("matmul dinp", c.inp, ni, di0, di, mm_loss, &c);
    check_fd("matmul dw", c.w, nw, dw0, dw, mm_loss, &c);
    check_fd("matmul dbias", c.bias, (size_t)OC, db0, db, mm_loss, &c);
    /* and the forward against ref_gemm, an independent formulation */
    double *o2 = ref_dalloc(no);
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OC; o++) o2[i * OC + o] = c.bias[o];
    ref_gemm(0, 1, N, OC, C, 1.0, c.inp, C, c.w, C, 1.0, o2, OC);
    mm_loss(&c);
    cr_assert(ref_rel_err_dd(c.out, o2, no) < 1e-14);
    free(c.inp), free(c.w), free(c.bias), free(c.R), free(c.out), free(o2);
    free(di0), free(dw0), free(db0), free(di), free(dw), free(db);
}

Test(ref_fd, gemm) {
    /* ref_gemm vs a literal sum for each transpose combination and leading dimensions */
    rng_t r;
    rng_seed(&r, 33);
    int M = 3, N = 4, K = 5, pad = 2;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
            double *A = rand_d((size_t)(ta ? K : M) * lda, 1, &r);
            double *Bm = rand_d((size_t)(tb ? N : K) * ldb, 1, &r);
            double *Cm = rand_d((size_t)M * ldc, 1, &r), *C0 = copy_d(Cm, (size_t)M * ldc);
            ref_gemm(ta, tb, M, N, K, 0.5, A, lda, Bm, ldb, 2.0, Cm, ldc);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double s = 0;
                    for (int k = 0; k < K; k++) {
                        double a = ta ? A[k * lda + i] : A[i * lda + k]; /* A^T stored (K,M) */
                        double b = tb ? Bm[j * ldb + k] : Bm[k * ldb + j];
                        s += a * b;
                    }
                    cr_assert(fabs(Cm[i * ldc + j] - (0.5 * s + 2.0 * C0[i * ldc + j])) < 1e-12);
                }
            free(A), free(Bm), free(Cm), free(C0);
        }
}

typedef struct {
    double *qkv, *R, *out;
    int B, T, C, H;
} att_ctx;

static double att_loss(void *p) {
    att_ctx *c = p;
    ref_attention_forward(c->out, NULL, c->qkv, c->B, c->T, c->C, c->H);
    return dot_dd(c->out, c->R, (size_t)c->B * c->T * c->C);
}

Test(ref_fd, attention) {
    rng_t r;
    rng_seed(&r, 4);
    int shapes[][4] = {{2, 5, 6, 2}, {1, 4, 9, 3}, {2, 1, 4, 2}};
    for (int k = 0; k < 3; k++) {
        int B = shapes[k][0], T = shapes[k][1], C = shapes[k][2], H = shapes[k][3];
        size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
        att_ctx c = {rand_d(nq, 1, &r), rand_d(no, 1, &r), ref_dalloc(no), B, T, C, H};
        double *d0 = rand_d(nq, 1, &r), *d = copy_d(d0, nq);
        ref_attention_backward(d, c.R, c.qkv, B, T, C, H);
        char what[64];
        snprintf(what, sizeof what, "attention dqkv B=%d T=%d C=%d H=%d", B, T, C, H);
        check_fd(what, c.qkv, nq, d0, d, att_loss, &c);
        free(c.qkv);
        free(c.R);
        free(c.out);
        free(d0);
        free(d);
    }
}

Test(ref_fd, attention_semantics) {
    /* T = 2, one head, hs = 1, by hand: out_0 = v_0; out_1 = softmax(q1 k0, q1 k1) . (v0, v1) */
    double qkv[] = {/* t=0: q k v */ 0.3, 0.7, -1.0, /* t=1 */ 2.0, 0.2, 5.0};
    double out[2], att[4];
    ref_attention_forward(out, att, qkv, 1, 2, 1, 1);
    double s0 = 2.0 * 0.7, s1 = 2.0 * 0.2, p0 = exp(s0) / (exp(s0) + exp(s1));
    cr_assert(fabs(out[0] - (-1.0)) < 1e-15);
    cr_assert(fabs(out[1] - (p0 * -1.0 + (1 - p0) * 5.0)) < 1e-14);
    cr_assert(att[0] == 1.0 && att[1] == 0.0 && fabs(att[2] - p0) < 1e-15);
    /* head h reads columns h*hs.. of q, k and v, and scale is 1/sqrt(hs) */
    rng_t r;
    rng_seed(&r, 44);
    int B = 1, T = 3, C = 4, H = 2, hs = 2;
    double *q = rand_d((size_t)T * 3 * C, 1, &r), o[12], a[18];
    ref_attention_forward(o, a, q, B, T, C, H);
    int t = 2, h = 1;
    double sc[3], mx = -1e300, sum = 0;
    for (int s = 0; s <= t; s++) {
        sc[s] = 0;
        for (int i = 0; i < hs; i++) sc[s] += q[t * 12 + h * hs + i] * q[s * 12 + C + h * hs + i];
        sc[s] /= sqrt(2.0);
        mx = fmax(mx, sc[s]);
    }
    for (int s = 0; s <= t; s++) sum += exp(sc[s] - mx);
    for (int i = 0; i < hs; i++) {
        double want = 0;
        for (int s = 0; s <= t; s++) want += exp(sc[s] - mx) / sum * q[s * 12 + 2 * C + h * hs + i];
        cr_assert(fabs(o[t * C + h * hs + i] - want) < 1e-14);
    }
    free(q);
}

typedef struct {
    double *inp, *R, *out;
    size_t n;
} ew_ctx;

static double gelu_loss(void *p) {
    ew_ctx *c = p;
    ref_gelu_forward(c->out, c->inp, c->n);
    return dot_dd(c->out, c->R, c->n);
}

Test(ref_fd, gelu) {
    rng_t r;
    rng_seed(&r, 5);
    size_t n = 64;
    ew_ctx c = {rand_d(n, 2.5, &r), rand_d(n, 1, &r), ref_dalloc(n), n};
    double *d0 = rand_d(n, 1, &r), *d = copy_d(d0, n);
    ref_gelu_backward(d, c.inp, c.R, n);
    check_fd("gelu dinp", c.inp, n, d0, d, gelu_loss, &c);
    /* the formula itself: gelu(0) = 0, gelu(1) from the tanh approximation by hand */
    cr_assert(ref_gelu(0.0) == 0.0);
    cr_assert(fabs(ref_gelu(1.0) - 0.8411919906082768) < 1e-15);
    cr_assert(fabs(ref_gelu(-3.0) - -0.0036373920817729943) < 1e-15);
    free(c.inp), free(c.R), free(c.out), free(d0), free(d);
}

typedef struct {
    double *a, *b, *R, *out;
    size_t n;
} res_ctx;

static double res_loss(void *p) {
    res_ctx *c = p;
    ref_residual_forward(c->out, c->a, c->b, c->n);
    return dot_dd(c->out, c->R, c->n);
}

Test(ref_fd, residual) {
    rng_t r;
    rng_seed(&r, 6);
    size_t n = 23;
    res_ctx c = {rand_d(n, 1, &r), rand_d(n, 1, &r), rand_d(n, 1, &r), ref_dalloc(n), n};
    double *da0 = rand_d(n, 1, &r), *db0 = rand_d(n, 1, &r);
    double *da = copy_d(da0, n), *db = copy_d(db0, n);
    ref_residual_backward(da, db, c.R, n);
    check_fd("residual da", c.a, n, da0, da, res_loss, &c);
    check_fd("residual db", c.b, n, db0, db, res_loss, &c);
    free(c.a), free(c.b), free(c.R), free(c.out), free(da0), free(db0), free(da), free(db);
}

typedef struct {
    double *logits, *probs, *losses, dloss;
    const int *targets;
    int N, V, Vp;
} ce_ctx;

static double ce_loss(void *p) {
    ce_ctx *c = p;
    ref_crossentropy_softmax_forward(c->probs, c->losses, c->logits, c->targets, c->N, c->V, c->Vp);
    double s = 0;
    for (int i = 0; i < c->N; i++) s += c->losses[i];
    return s * c->dloss;
}

Test(ref_fd, crossentropy) {
    rng_t r;
    rng_seed(&r, 7);
    int N = 4, V = 9, Vp = 12;
    size_t n = (size_t)N * Vp;
    int *tg = rand_tokens((size_t)N, V, &r);
    ce_ctx c = {rand_d(n, 2, &r), ref_dalloc(n), ref_dalloc((size_t)N), 0.37, tg, N, V, Vp};
    ce_loss(&c);
    double *d0 = rand_d(n, 1, &r), *d = copy_d(d0, n);
    ref_crossentropy_softmax_backward(d, c.probs, tg, c.dloss, N, V, Vp);
    check_fd("crossentropy dlogits", c.logits, n, d0, d, ce_loss, &c);
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int j = 0; j < V; j++) s += c.probs[i * Vp + j];
        cr_assert(fabs(s - 1) < 1e-14);
        for (int j = V; j < Vp; j++) cr_assert(c.probs[i * Vp + j] == 0.0 && d[i * Vp + j] == d0[i * Vp + j]);
        cr_assert(fabs(c.losses[i] + log(c.probs[i * Vp + tg[i]])) < 1e-12);
    }
    free(tg), free(c.logits), free(c.probs), free(c.losses), free(d0), free(d);
}

Test(ref_fd, adamw_and_schedule) {
    /* step 1 by hand: mhat = g, vhat = g^2, so p -= lr (g / (|g| + eps) + wd p) */
    double p[3] = {1.0, -2.0, 0.5}, g[3] = {0.3, -4.0, 0.0}, m[3] = {0}, v[3] = {0};
    double lr = 0.1, eps = 1e-8, wd = 0.1;
    ref_adamw_update(p, g, m, v, 3, lr, 0.9, 0.95, eps, wd, 1, 1);
    double want[3] = {1.0 - lr * (0.3 / (0.3 + eps) + wd * 1.0),
                      -2.0 - lr * (-4.0 / (4.0 + eps) + wd * -2.0), 0.5 - lr * (wd * 0.5)};
    for (int i = 0; i < 3; i++) cr_assert(fabs(p[i] - want[i]) < 1e-15, "adamw step 1 [%d]", i);
    cr_assert(fabs(m[1] - 0.1 * -4.0) < 1e-15 && fabs(v[1] - 0.05 * 16.0) < 1e-15);
    /* schedule: ramp, peak at warmup, midpoint of the cosine, floor */
    cr_assert(fabs(ref_lr_schedule(0, 110, 10, 1.0, 0.1) - 1.0 / 11) < 1e-15);
    cr_assert(fabs(ref_lr_schedule(9, 110, 10, 1.0, 0.1) - 10.0 / 11) < 1e-15);
    cr_assert(fabs(ref_lr_schedule(10, 110, 10, 1.0, 0.1) - 1.0) < 1e-15);
    cr_assert(fabs(ref_lr_schedule(60, 110, 10, 1.0, 0.1) - 0.55) < 1e-15);
    cr_assert(fabs(ref_lr_schedule(110, 110, 10, 1.0, 0.1) - 0.1) < 1e-15);
    cr_assert(fabs(ref_lr_schedule(500, 110, 10, 1.0, 0.1) - 0.1) < 1e-15);
}

/* ================================================================== fast float kernels vs reference */

Test(nn, sgemm) {
    rng_t r;
    rng_seed(&r, 100);
    int shapes[][3] = {{13, 37, 20}, {1, 7, 3}, {37, 1, 45}, {67, 29, 130}};
    for (int k = 0; k < 4; k++) {
        int M = shapes[k][0], N = shapes[k][1], K = shapes[k][2];
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int bi = 0; bi < 2; bi++) {
                    float beta = bi ? 1.3f : 0.0f, alpha = 0.7f;
                    int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
                    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb;
                    size_t nc = (size_t)M * ldc;
                    float *A = rand_f(na, 1, &r), *Bm = rand_f(nb, 1, &r);
                    /* beta = 0: C must not be read (NaN there must not leak) */
                    float *Cm = bi ? rand_f(nc, 1, &r) : nan_f(nc);
                    double *Ad = ref_f2d(A, na), *Bd = ref_f2d(Bm, nb), *Cd = ref_f2d(Cm, nc);
                    nn_sgemm(ta, tb, M, N, K, alpha, A, lda, Bm, ldb, beta, Cm, ldc);
                    ref_gemm(ta, tb, M, N, K, alpha, Ad, lda, Bd, ldb, beta, Cd, ldc);
                    /* only the M x N block: compare row by row, padding must be untouched */
                    float *cf = ref_falloc((size_t)M * N);
                    double *cd = ref_dalloc((size_t)M * N);
                    for (int i = 0; i < M; i++) {
                        for (int j = 0; j < N; j++) {
                            cf[i * N + j] = Cm[(size_t)i * ldc + j];
                            cd[i * N + j] = Cd[(size_t)i * ldc + j];
                        }
                        for (int j = N; j < ldc; j++)
                            cr_assert(bi ? Cm[(size_t)i * ldc + j] == (float)Cd[(size_t)i * ldc + j]
                                         : isnan(Cm[(size_t)i * ldc + j]),
                                      "sgemm wrote outside the M x N block");
                    }
                    char what[96];
                    snprintf(what, sizeof what, "sgemm M=%d N=%d K=%d ta=%d tb=%d beta=%g", M, N,
                             K, ta, tb, beta);
                    check_close(what, cf, cd, (size_t)M * N, FAST_TOL);
                    free(A), free(Bm), free(Cm), free(Ad), free(Bd), free(Cd), free(cf), free(cd);
                }
    }
}

Test(nn, encoder) {
    rng_t r;
    rng_seed(&r, 101);
    int B = 3, T = 13, C = 20, V = 5, maxT = 16; /* V = 5: many repeated tokens */
    size_t no = (size_t)B * T * C, nte = (size_t)V * C, npe = (size_t)maxT * C;
    int *inp = rand_tokens((size_t)B * T, V, &r);
    float *wte = rand_f(nte, 1, &r), *wpe = rand_f(npe, 1, &r), *out = nan_f(no);
    double *wted = ref_f2d(wte, nte), *wped = ref_f2d(wpe, npe), *outd = ref_dalloc(no);
    encoder_forward(out, inp, wte, wpe, B, T, C);
    ref_encoder_forward(outd, inp, wted, wped, B, T, C);
    /* one float add per element: exactly the correctly rounded double sum */
    for (size_t i = 0; i < no; i++)
        cr_assert(out[i] == (float)outd[i], "encoder_forward [%zu]: %.9g, want %.9g", i, out[i], outd[i]);

    float *dout = rand_f(no, 1, &r);
    double *doutd = ref_f2d(dout, no), *dwted = ref_dalloc(nte), *dwped = ref_dalloc(npe);
    float *dwte = ref_falloc(nte), *dwpe = ref_falloc(npe);
    encoder_backward(dwte, dwpe, dout, inp, B, T, C);
    ref_encoder_backward(dwted, dwped, doutd, inp, B, T, C);
    check_close("encoder_backward dwte", dwte, dwted, nte, FAST_TOL);
    check_close("encoder_backward dwpe", dwpe, dwped, npe, FAST_TOL);
    for (size_t i = (size_t)T * C; i < npe; i++) cr_assert(dwpe[i] == 0.0f, "dwpe row >= T touched");
    float *P1 = rand_f(nte, 1, &r), *P2 = rand_f(npe, 1, &r);
    float *a1 = copy_f(P1, nte), *a2 = copy_f(P2, npe);
    encoder_backward(a1, a2, dout, inp, B, T, C);
    check_accum("encoder_backward dwte", a1, P1, dwte, nte);
    check_accum("encoder_backward dwpe", a2, P2, dwpe, npe);
    free(inp), free(wte), free(wpe), free(out), free(wted), free(wped), free(outd), free(dout);
    free(doutd), free(dwted), free(dwped), free(dwte), free(dwpe), free(P1), free(P2), free(a1), free(a2);
}

/* One layernorm case: forward (out, mean, rstd) and backward (dinp, dw, db) vs the reference. */
static void layernorm_case(int N, int C, const float *inp, double tol, rng_t *r, const char *tag) {
    size_t n = (size_t)N * C;
    float *w = rand_f((size_t)C, 1, r), *b = rand_f((size_t)C, 1, r);
    for (int c = 0; c < C; c++) w[c] += 1.0f;
    float *out = nan_f(n), *mean = nan_f((size_t)N), *rstd = nan_f((size_t)N);
    double *inpd = ref_f2d(inp, n), *wd = ref_f2d(w, (size_t)C), *bd = ref_f2d(b, (size_t)C);
    double *outd = ref_dalloc(n), *meand = ref_dalloc((size_t)N), *rstdd = ref_dalloc((size_t)N);
    layernorm_forward(out, mean, rstd, inp, w, b, N, C);
    ref_layernorm_forward(outd, meand, rstdd, inpd, wd, bd, N, C);
    char what[128];
    snprintf(what, sizeof what, "layernorm_forward %s N=%d C=%d: out", tag, N, C);
    check_close(what, out, outd, n, tol);
    /* mean and rstd per row, relative to that row's own scale */
    for (int i = 0; i < N; i++) {
        double sd = 1.0 / rstdd[i];
        cr_assert(fabs(mean[i] - meand[i]) <= tol * fmax(sd, 1e-3 * fabs(meand[i])) + 1e-30,
                  "layernorm %s mean row %d: fast %.9g ref %.9g", tag, i, mean[i], meand[i]);
        cr_assert(fabs(rstd[i] - rstdd[i]) <= tol * rstdd[i], "layernorm %s rstd row %d: fast %.9g ref %.9g",
                  tag, i, rstd[i], rstdd[i]);
    }

    float *dout = rand_f(n, 1, r);
    double *doutd = ref_f2d(dout, n);
    float *di = ref_falloc(n), *dw = ref_falloc((size_t)C), *db = ref_falloc((size_t)C);
    double *did = ref_dalloc(n), *dwd = ref_dalloc((size_t)C), *dbd = ref_dalloc((size_t)C);
    layernorm_backward(di, dw, db, dout, inp, w, mean, rstd, N, C);
    ref_layernorm_backward(did, dwd, dbd, doutd, inpd, wd, N, C);
    snprintf(what, sizeof what, "layernorm_backward %s N=%d C=%d: dinp", tag, N, C);
    check_close(what, di, did, n, tol);
    snprintf(what, sizeof what, "layernorm_backward %s N=%d C=%d: dw", tag, N, C);
    check_close(what, dw, dwd, (size_t)C, tol);
    snprintf(what, sizeof what, "layernorm_backward %s N=%d C=%d: db", tag, N, C);
    check_close(what, db, dbd, (size_t)C, tol);

    float *P0 = rand_f(n, 1, r), *P1 = rand_f((size_t)C, 1, r), *P2 = rand_f((size_t)C, 1, r);
    float *a0 = copy_f(P0, n), *a1 = copy_f(P1, (size_t)C), *a2 = copy_f(P2, (size_t)C);
    layernorm_backward(a0, a1, a2, dout, inp, w, mean, rstd, N, C);
    check_accum("layernorm_backward dinp", a0, P0, di, n);
    check_accum("layernorm_backward dw", a1, P1, dw, (size_t)C);
    check_accum("layernorm_backward db", a2, P2, db, (size_t)C);
    free(w), free(b), free(out), free(mean), free(rstd), free(inpd), free(wd), free(bd);
    free(outd), free(meand), free(rstdd), free(dout), free(doutd), free(di), free(dw), free(db);
    free(did), free(dwd), free(dbd), free(P0), free(P1), free(P2), free(a0), free(a1), free(a2);
}

Test(nn, layernorm) {
    rng_t r;
    rng_seed(&r, 102);
    int shapes[][2] = {{39, 20}, {37, 24}, {1, 67}, {111, 130}, {5, 1}};
    for (int k = 0; k < 5; k++) {
        int N = shapes[k][0], C = shapes[k][1];
        float *inp = rand_f((size_t)N * C, 1.5f, &r);
        for (size_t i = 0; i < (size_t)N * C; i++) inp[i] += 0.3f;
        layernorm_case(N, C, inp, FAST_TOL, &r, "N(0.3,1.5)");
        free(inp);
    }
}

Test(nn, layernorm_extreme) {
    /* Large |x| (scale 1e3: LayerNorm is scale invariant, so the same accuracy is due), a
     * large common offset (300 + N(0,1): a one-pass E[x^2] - E[x]^2 variance would lose
     * ~4 digits here), and constant rows (variance 0: rstd = 1/sqrt(eps), out = b). */
    rng_t r;
    rng_seed(&r, 103);
    int N = 13, C = 24;
    size_t n = (size_t)N * C;
    float *inp = rand_f(n, 1e3f, &r);
    layernorm_case(N, C, inp, FAST_TOL, &r, "scale 1e3");
    ref_fill_normal(inp, n, 1.0f, &r);
    for (size_t i = 0; i < n; i++) inp[i] += 300.0f;
    layernorm_case(N, C, inp, FAST_TOL, &r, "offset 300");
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) inp[i * C + c] = (float)(i - 6) * 0.25f;
    layernorm_case(N, C, inp, FAST_TOL, &r, "constant rows");
    free(inp);
}

static void matmul_case(int N, int C, int OC, int with_bias, rng_t *r) {
    size_t ni = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    float *inp = rand_f(ni, 1, r), *w = rand_f(nw, 1, r), *bias = with_bias ? rand_f((size_t)OC, 1, r) : NULL;
    float *out = nan_f(no);
    double *inpd = ref_f2d(inp, ni), *wd = ref_f2d(w, nw), *biasd = with_bias ? ref_f2d(bias, (size_t)OC) : NULL;
    double *outd = ref_dalloc(no);
    matmul_forward(out, inp, w, bias, N, C, OC);
    ref_matmul_forward(outd, inpd, wd, biasd, N, C, OC);
    char what[128];
    snprintf(what, sizeof what, "matmul_forward N=%d C=%d OC=%d bias=%d", N, C, OC, with_bias);
    check_close(what, out, outd, no, FAST_TOL);

    float *dout = rand_f(no, 1, r);
    double *doutd = ref_f2d(dout, no);
    float *di = ref_falloc(ni), *dw = ref_falloc(nw), *db = with_bias ? ref_falloc((size_t)OC) : NULL;
    double *did = ref_dalloc(ni), *dwd = ref_dalloc(nw), *dbd = with_bias ? ref_dalloc((size_t)OC) : NULL;
    matmul_backward(di, dw, db, dout, inp, w, N, C, OC);
    ref_matmul_backward(did, dwd, dbd, doutd, inpd, wd, N, C, OC);
    snprintf(what, sizeof what, "matmul_backward N=%d C=%d OC=%d bias=%d: dinp", N, C, OC, with_bias);
    check_close(what, di, did, ni, FAST_TOL);
    snprintf(what, sizeof what, "matmul_backward N=%d C=%d OC=%d bias=%d: dw", N, C, OC, with_bias);
    check_close(what, dw, dwd, nw, FAST_TOL);
    if (with_bias) {
        snprintf(what, sizeof what, "matmul_backward N=%d C=%d OC=%d: dbias", N, C, OC);
        check_close(what, db, dbd, (size_t)OC, FAST_TOL);
    }
    float *P0 = rand_f(ni, 1, r), *P1 = rand_f(nw, 1, r), *P2 = rand_f((size_t)OC, 1, r);
    float *a0 = copy_f(P0, ni), *a1 = copy_f(P1, nw), *a2 = copy_f(P2, (size_t)OC);
    matmul_backward(a0, a1, with_bias ? a2 : NULL, dout, inp, w, N, C, OC);
    check_accum("matmul_backward dinp", a0, P0, di, ni);
    check_accum("matmul_backward dw", a1, P1, dw, nw);
    if (with_bias) check_accum("matmul_backward dbias", a2, P2, db, (size_t)OC);
    free(inp), free(w), free(bias), free(out), free(inpd), free(wd), free(biasd), free(outd);
    free(dout), free(doutd), free(di), free(dw), free(db), free(did), free(dwd), free(dbd);
    free(P0), free(P1), free(P2), free(a0), free(a1), free(a2);
}

Test(nn, matmul) {
    rng_t r;
    rng_seed(&r, 104);
    /* qkv (3C), fc (4C), fcproj (4C -> C), logits-like (OC = Vp), N = 1, C = 1 */
    int shapes[][3] = {{39, 20, 60}, {39, 20, 80}, {111, 24, 72}, {37, 80, 20},
                       {39, 20, 72}, {1, 20, 60}, {7, 1, 5},    {200, 67, 130}};
    for (int k = 0; k < 8; k++)
        for (int wb = 0; wb < 2; wb++) matmul_case(shapes[k][0], shapes[k][1], shapes[k][2], wb, &r);
}

static void attention_case(int B, int T, int C, int H, float qscale, rng_t *r) {
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = (size_t)B * H * T * T;
    float *qkv = rand_f(nq, qscale, r), *out = nan_f(no), *att = nan_f(na);
    double *qkvd = ref_f2d(qkv, nq), *outd = ref_dalloc(no), *attd = ref_dalloc(na);
    attention_forward(out, att, qkv, B, T, C, H);
    ref_attention_forward(outd, attd, qkvd, B, T, C, H);
    char what[128];
    snprintf(what, sizeof what, "attention_forward B=%d T=%d C=%d H=%d qscale=%g: out", B, T, C, H, qscale);
    check_close(what, out, outd, no, FAST_TOL);
    snprintf(what, sizeof what, "attention_forward B=%d T=%d C=%d H=%d qscale=%g: att", B, T, C, H, qscale);
    check_close(what, att, attd, na, FAST_TOL);
    for (int bh = 0; bh < B * H; bh++)
        for (int t = 0; t < T; t++)
            for (int s = t + 1; s < T; s++)
                cr_assert(att[((size_t)bh * T + t) * T + s] == 0.0f,
                          "attention B=%d T=%d C=%d H=%d: att[bh=%d,t=%d,s=%d] = %g above the diagonal",
                          B, T, C, H, bh, t, s, att[((size_t)bh * T + t) * T + s]);

    float *dout = rand_f(no, 1, r), *scratch = nan_f(attention_scratch_floats(B, T, H));
    double *doutd = ref_f2d(dout, no), *dqd = ref_dalloc(nq);
    float *dq = ref_falloc(nq);
    attention_backward(dq, scratch, dout, qkv, att, B, T, C, H);
    ref_attention_backward(dqd, doutd, qkvd, B, T, C, H);
    snprintf(what, sizeof what, "attention_backward B=%d T=%d C=%d H=%d qscale=%g: dqkv", B, T, C, H, qscale);
    check_close(what, dq, dqd, nq, FAST_TOL);
    /* q, k and v parts separately, so a small part cannot hide behind a large one */
    for (int part = 0; part < 3; part++) {
        size_t np = (size_t)B * T * C;
        float *f = ref_falloc(np);
        double *d = ref_dalloc(np);
        for (size_t i = 0; i < (size_t)B * T; i++)
            for (int c = 0; c < C; c++) {
                f[i * C + c] = dq[i * 3 * C + part * C + c];
                d[i * C + c] = dqd[i * 3 * C + part * C + c];
            }
        snprintf(what, sizeof what, "attention_backward B=%d T=%d C=%d H=%d: d%c", B, T, C, H, "qkv"[part]);
        check_close(what, f, d, np, FAST_TOL);
        free(f), free(d);
    }
    /* accumulates; and a scratch buffer left dirty by the previous call is fine */
    float *P = rand_f(nq, 1, r), *a = copy_f(P, nq);
    attention_backward(a, scratch, dout, qkv, att, B, T, C, H);
    check_accum("attention_backward dqkv", a, P, dq, nq);
    free(qkv), free(out), free(att), free(qkvd), free(outd), free(attd), free(dout), free(scratch);
    free(doutd), free(dqd), free(dq), free(P), free(a);
}

Test(nn, attention) {
    rng_t r;
    rng_seed(&r, 105);
    /* head sizes 5, 8, 7, 10, 3, 4; T = 1, below, at and across the kernel's row tile */
    int shapes[][4] = {{3, 13, 20, 4}, {3, 37, 24, 3}, {2, 37, 21, 3}, {3, 13, 20, 2},
                       {2, 64, 18, 6}, {2, 67, 12, 3}, {1, 130, 20, 4}, {2, 1, 12, 3},
                       {1, 1, 20, 4}};
    for (int k = 0; k < 9; k++)
        attention_case(shapes[k][0], shapes[k][1], shapes[k][2], shapes[k][3], 1.0f, &r);
    /* peaked softmax (scores of tens): the max-subtraction must be there */
    attention_case(2, 37, 20, 2, 4.0f, &r);
}

Test(nn, gelu) {
    rng_t r;
    rng_seed(&r, 106);
    size_t n = 1003;
    float *x = rand_f(n, 2.0f, &r), *out = nan_f(n), *dout = rand_f(n, 1, &r), *di = ref_falloc(n);
    double *xd = ref_f2d(x, n), *outd = ref_dalloc(n), *doutd = ref_f2d(dout, n), *did = ref_dalloc(n);
    gelu_forward(out, x, n);
    ref_gelu_forward(outd, xd, n);
    check_close("gelu_forward n=1003", out, outd, n, FAST_TOL);
    gelu_backward(di, x, dout, n);
    ref_gelu_backward(did, xd, doutd, n);
    check_close("gelu_backward n=1003", di, did, n, FAST_TOL);
    float *P = rand_f(n, 1, &r), *a = copy_f(P, n);
    gelu_backward(a, x, dout, n);
    check_accum("gelu_backward", a, P, di, n);
    free(x), free(out), free(dout), free(di), free(xd), free(outd), free(doutd), free(did), free(P), free(a);
}

Test(nn, gelu_extreme) {
    /* Large |x|: gelu(x) -> x for x >> 0 and -> 0 for x << 0, gelu'(x) -> 1 and 0; no NaN/inf
     * (e.g. from cosh overflow or inf * 0). Checked per element, relative to max(1, |ref|). */
    float xs[] = {0.0f, 1e-4f, -1e-4f, 3.0f, -3.0f, 5.0f, -5.0f, 10.0f, -10.0f, 20.0f, -20.0f,
                  50.0f, -50.0f, 100.0f, -100.0f, 1e3f, -1e3f, 1e4f, -1e4f, 1e6f, -1e6f};
    size_t n = sizeof xs / sizeof xs[0];
    float out[32], di[32] = {0}, ones[32];
    double xd[32], outd[32], did[32] = {0}, onesd[32];
    for (size_t i = 0; i < n; i++) ones[i] = 1.0f, onesd[i] = 1.0, xd[i] = xs[i];
    gelu_forward(out, xs, n);
    gelu_backward(di, xs, ones, n);
    ref_gelu_forward(outd, xd, n);
    ref_gelu_backward(did, xd, onesd, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert(isfinite(out[i]) && fabs(out[i] - outd[i]) <= FAST_TOL * fmax(1, fabs(outd[i])),
                  "gelu(%g): fast %.9g ref %.9g", xs[i], out[i], outd[i]);
        cr_assert(isfinite(di[i]) && fabs(di[i] - did[i]) <= FAST_TOL * fmax(1, fabs(did[i])),
                  "gelu'(%g): fast %.9g ref %.9g", xs[i], di[i], did[i]);
    }
}

/* ------------------------------------------------------------ fastmath.h */

/* Inputs every helper must define (a NaN checkpoint or a diverging run feeds them):
 * NaN, +-inf, +-FLT_MAX, huge, the edges of e^x's float range (ln FLT_MAX = 88.7228,
 * ln FLT_MIN = -87.3365, and the floats either side), the subnormal range of e^x,
 * subnormal and zero inputs, and ordinary values. */
static const float SPECIAL[] = {NAN, -NAN, INFINITY, -INFINITY, FLT_MAX, -FLT_MAX, 1e30f, -1e30f,
                                1e20f, -1e20f, 1e6f, -1e6f, 89.0f, 88.72283935546875f,
                                88.72283172607422f, 88.5f, 88.0f, -87.0f, -87.33654022216797f,
                                -87.3365478515625f, -87.5f, -90.0f, -100.0f, -103.9f, -104.0f,
                                -110.0f, 1e-40f, -1e-40f, FLT_MIN, -FLT_MIN, 0.0f, -0.0f, 1e-4f,
                                -1e-4f, 0.5f, -0.5f, 1.0f, -1.0f, 3.0f, -3.0f, 20.0f, -20.0f};
#define N_SPECIAL (sizeof SPECIAL / sizeof SPECIAL[0])

/* fast_expf against libm in double: NaN -> NaN; +inf where e^x exceeds FLT_MAX; where e^x
 * is below FLT_MIN (subnormal or 0 in float) flushed, so within FLT_MIN of it; elsewhere
 * relative error 3e-7 (Cephes' polynomial: ~1e-7 measured over [-87.3, 88.7] in steps of 1e-3). */
static void check_expf(float x, float y) {
    double ref = exp((double)x);
    if (isnan(x)) cr_assert(isnan(y), "fast_expf(nan) = %g, expected nan", y);
    else if (ref > FLT_MAX) cr_assert(y == INFINITY, "fast_expf(%.9g) = %g, expected inf", x, y);
    else if (ref < FLT_MIN)
        cr_assert(y >= 0.0f && fabs(y - ref) < FLT_MIN, "fast_expf(%.9g) = %g, libm %g", x, y, ref);
    else cr_assert(fabs(y - ref) <= 3e-7 * ref, "fast_expf(%.9g) = %.9g, libm %.9g", x, y, ref);
}

/* fast_tanhf: absolute error 3e-7 (measured 1.8e-7 over [-20, 20]), exactly +-1 at +-inf,
 * never beyond +-1, NaN -> NaN. */
static void check_tanhf(float u, float y) {
    double ref = tanh((double)u);
    if (isnan(u)) cr_assert(isnan(y), "fast_tanhf(nan) = %g, expected nan", y);
    else cr_assert(fabs(y - ref) <= 3e-7 && fabs(y) <= 1.0f, "fast_tanhf(%.9g) = %.9g, libm %.9g", u, y, ref);
    if (isinf(u)) cr_assert(y == (u > 0 ? 1.0f : -1.0f), "fast_tanhf(%g) = %.9g", u, y);
}

Test(fastmath, expf_special_and_range) {
    for (size_t i = 0; i < N_SPECIAL; i++) check_expf(SPECIAL[i], fast_expf(SPECIAL[i]));
    for (int i = -90 * 256; i <= 90 * 256; i++) check_expf((float)i / 256, fast_expf((float)i / 256));
    cr_assert(fast_expf(INFINITY) == INFINITY && fast_expf(-INFINITY) == 0.0f);
}

Test(fastmath, tanhf_special_and_range) {
    for (size_t i = 0; i < N_SPECIAL; i++) check_tanhf(SPECIAL[i], fast_tanhf(SPECIAL[i]));
    for (int i = -20 * 1024; i <= 20 * 1024; i++) check_tanhf((float)i / 1024, fast_tanhf((float)i / 1024));
}

/* The kernels call the vector variants (omp declare simd): they must agree with the scalar
 * ones bit for bit, special inputs included, in every lane position. */
Test(fastmath, simd_matches_scalar) {
    enum { N = 3 * N_SPECIAL };
    float x[N], e[N], t[N];
    for (size_t i = 0; i < N; i++) x[i] = SPECIAL[(i * 7) % N_SPECIAL];
#pragma omp simd
    for (size_t i = 0; i < N; i++) {
        e[i] = fast_expf(x[i]);
        t[i] = fast_tanhf(x[i]);
    }
    for (size_t i = 0; i < N; i++) {
        float es = fast_expf(x[i]), ts = fast_tanhf(x[i]);
        cr_assert(memcmp(&e[i], &es, 4) == 0 && memcmp(&t[i], &ts, 4) == 0,
                  "x = %g: simd exp %g tanh %g, scalar %g %g", x[i], e[i], t[i], es, ts);
    }
}

/* GELU on the special inputs: the double reference where it is finite (it is at every
 * finite x), the limits at +-inf (gelu: +inf and 0, gelu': 1 and 0; the formula itself
 * gives -inf * 0 = NaN there), NaN -> NaN. Relative to max(1, |ref|). */
Test(fastmath, gelu_nonfinite) {
    float out[N_SPECIAL], di[N_SPECIAL] = {0}, ones[N_SPECIAL];
    double xd[N_SPECIAL], outd[N_SPECIAL], did[N_SPECIAL] = {0}, onesd[N_SPECIAL];
    for (size_t i = 0; i < N_SPECIAL; i++) ones[i] = 1.0f, onesd[i] = 1.0, xd[i] = SPECIAL[i];
    gelu_forward(out, SPECIAL, N_SPECIAL);
    gelu_backward(di, SPECIAL, ones, N_SPECIAL);
    ref_gelu_forward(outd, xd, N_SPECIAL);
    ref_gelu_backward(did, xd, onesd, N_SPECIAL);
    for (size_t i = 0; i < N_SPECIAL; i++) {
        float x = SPECIAL[i];
        if (isnan(x)) {
            cr_assert(isnan(out[i]) && isnan(di[i]), "gelu(nan) = %g, gelu'(nan) = %g", out[i], di[i]);
            continue;
        }
        if (isinf(x)) outd[i] = x > 0 ? INFINITY : 0.0, did[i] = x > 0 ? 1.0 : 0.0;
        int same = outd[i] == out[i] || fabs(out[i] - outd[i]) <= FAST_TOL * fmax(1, fabs(outd[i]));
        cr_assert(same, "gelu(%g): fast %.9g ref %.9g", x, out[i], outd[i]);
        cr_assert(fabs(di[i] - did[i]) <= FAST_TOL * fmax(1, fabs(did[i])), "gelu'(%g): fast %.9g ref %.9g",
                  x, di[i], did[i]);
    }
}

/* Softmax + cross-entropy rows with a -inf logit (probability exactly 0, the loss of the
 * other targets unchanged), a huge finite one (1e30: a one-hot row, finite losses), and
 * a NaN or +inf one (NaN loss: the caller's divergence check sees it, nothing undefined). */
Test(fastmath, crossentropy_nonfinite) {
    enum { V = 5 };
    float logits[4 * V] = {0.5f, -INFINITY, 1.0f, -1.0f, 0.0f, 1e30f, 0.0f, 1.0f, -2.0f, 0.0f,
                           0.5f, NAN, 1.0f, -1.0f, 0.0f, 0.5f, INFINITY, 1.0f, -1.0f, 0.0f};
    int tg[4] = {2, 1, 2, 2};
    float probs[4 * V], losses[4];
    crossentropy_softmax_forward(probs, losses, logits, tg, 4, V, V);
    double z = exp(0.5) + exp(1.0) + exp(-1.0) + exp(0.0);
    cr_assert(probs[1] == 0.0f, "p(-inf logit) = %g, expected 0", probs[1]);
    cr_assert(fabs(losses[0] - (log(z) - 1.0)) < 1e-6, "loss %g, expected %g", losses[0], log(z) - 1.0);
    cr_assert(probs[V] == 1.0f && probs[V + 1] == 0.0f && losses[1] == 1e30f,
              "one-hot row: p %g %g, loss %g", probs[V], probs[V + 1], losses[1]);
    cr_assert(isnan(losses[2]) && isnan(losses[3]), "nan/inf logit: losses %g %g", losses[2], losses[3]);
}

Test(nn, residual) {
    rng_t r;
    rng_seed(&r, 107);
    size_t n = 1003;
    float *a = rand_f(n, 1, &r), *b = rand_f(n, 1, &r), *out = nan_f(n), *dout = rand_f(n, 1, &r);
    residual_forward(out, a, b, n);
    for (size_t i = 0; i < n; i++) cr_assert(out[i] == a[i] + b[i]);
    float *Pa = rand_f(n, 1, &r), *Pb = rand_f(n, 1, &r), *da = copy_f(Pa, n), *db = copy_f(Pb, n);
    residual_backward(da, db, dout, n);
    for (size_t i = 0; i < n; i++) cr_assert(da[i] == Pa[i] + dout[i] && db[i] == Pb[i] + dout[i]);
    free(a), free(b), free(out), free(dout), free(Pa), free(Pb), free(da), free(db);
}

static void crossentropy_case(int N, int V, int Vp, float scale, rng_t *r) {
    size_t n = (size_t)N * Vp;
    float *logits = rand_f(n, scale, r), *probs = nan_f(n), *losses = nan_f((size_t)N);
    int *tg = rand_tokens((size_t)N, V, r);
    double *ld = ref_f2d(logits, n), *pd = ref_dalloc(n), *lossd = ref_dalloc((size_t)N);
    crossentropy_softmax_forward(probs, losses, logits, tg, N, V, Vp);
    ref_crossentropy_softmax_forward(pd, lossd, ld, tg, N, V, Vp);
    char what[128];
    snprintf(what, sizeof what, "crossentropy_forward N=%d V=%d Vp=%d scale=%g: probs", N, V, Vp, scale);
    check_close(what, probs, pd, n, FAST_TOL);
    snprintf(what, sizeof what, "crossentropy_forward N=%d V=%d Vp=%d scale=%g: losses", N, V, Vp, scale);
    check_close(what, losses, lossd, (size_t)N, FAST_TOL);
    for (int i = 0; i < N; i++) {
        cr_assert(isfinite(losses[i]), "%s: loss[%d] = %g", what, i, losses[i]);
        for (int j = V; j < Vp; j++)
            cr_assert(probs[(size_t)i * Vp + j] == 0.0f, "crossentropy: padding prob [%d,%d] = %g", i, j,
                      probs[(size_t)i * Vp + j]);
    }
    float dloss = 1.0f / N;
    float *P = rand_f(n, 1, r), *d = copy_f(P, n), *d0 = ref_falloc(n);
    double *dd = ref_dalloc(n);
    crossentropy_softmax_backward(d0, probs, tg, dloss, N, V, Vp);
    ref_crossentropy_softmax_backward(dd, pd, tg, (double)dloss, N, V, Vp);
    snprintf(what, sizeof what, "crossentropy_backward N=%d V=%d Vp=%d scale=%g", N, V, Vp, scale);
    check_close(what, d0, dd, n, FAST_TOL);
    crossentropy_softmax_backward(d, probs, tg, dloss, N, V, Vp);
    check_accum(what, d, P, d0, n);
    for (int i = 0; i < N; i++)
        for (int j = V; j < Vp; j++)
            cr_assert(d[(size_t)i * Vp + j] == P[(size_t)i * Vp + j], "crossentropy_backward touched padding");
    free(logits), free(probs), free(losses), free(tg), free(ld), free(pd), free(lossd), free(P), free(d);
    free(d0), free(dd);
}

Test(nn, crossentropy) {
    rng_t r;
    rng_seed(&r, 108);
    crossentropy_case(39, 67, 72, 1.0f, &r);
    crossentropy_case(1, 67, 72, 1.0f, &r);
    crossentropy_case(13, 23, 23, 2.0f, &r); /* Vp == V */
    crossentropy_case(13, 67, 128, 3.0f, &r);
    /* logits spread over ~+-100: exp of the gap underflows float, but the loss of an
     * unlikely target must stay finite and accurate */
    crossentropy_case(13, 67, 72, 30.0f, &r);
}

Test(nn, adamw) {
    rng_t r;
    rng_seed(&r, 109);
    size_t n = 1003;
    adamw_config cfg = {0.9f, 0.95f, 1e-8f, 0.1f};
    float lr = 1e-2f;
    int steps = 10;
    for (int decay = 0; decay < 2; decay++) {
        float *p = rand_f(n, 1, &r), *m = ref_falloc(n), *v = ref_falloc(n);
        double *pd = ref_f2d(p, n), *md = ref_dalloc(n), *vd = ref_dalloc(n);
        for (int t = 1; t <= steps; t++) {
            float *g = rand_f(n, 1, &r);
            for (size_t i = 0; i < 10; i++) g[i] *= 1e-7f; /* gradients below eps's scale */
            double *gd = ref_f2d(g, n);
            /* with decay, also the fused clip factor: the reference sees the scaled gradient */
            float gs = decay ? 0.37f : 1.0f;
            for (size_t i = 0; i < n; i++) gd[i] *= gs;
            adamw_update(p, g, m, v, n, lr, &cfg, decay, t, gs);
            ref_adamw_update(pd, gd, md, vd, n, lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay,
                             decay, t);
            free(g), free(gd);
        }
        /* p moves by up to lr per step; float rounding of p (|p| ~ 1) adds ~6e-8 per step.
         * Allow 0.1% of the total movement: a wrong bias correction or decay is O(lr). */
        double perr = 0;
        for (size_t i = 0; i < n; i++) perr = fmax(perr, fabs(p[i] - pd[i]));
        cr_assert(perr <= 1e-3 * lr * steps, "adamw decay=%d: max |p - ref| = %.3g after %d steps", decay,
                  perr, steps);
        check_close("adamw m", m, md, n, 1e-5);
        check_close("adamw v", v, vd, n, 1e-5);
        free(p), free(m), free(v), free(pd), free(md), free(vd);
    }
}

Test(nn, lr_schedule) {
    int total = 110, warmup = 10;
    float lr = 6e-4f, min_lr = 6e-5f;
    int steps[] = {0, 1, 5, 9, 10, 11, 35, 60, 100, 109, 110, 111, 1000};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        double want = ref_lr_schedule(steps[i], total, warmup, lr, min_lr);
        float got = lr_schedule(steps[i], total, warmup, lr, min_lr);
        cr_assert(fabs(got - want) <= 1e-6 * lr, "lr_schedule(step=%d): %.9g, want %.9g", steps[i], got, want);
    }
    /* no warmup, and total <= warmup */
    cr_assert(fabs(lr_schedule(0, 100, 0, lr, min_lr) - lr) <= 1e-6 * lr);
    cr_assert(fabs(lr_schedule(50, 100, 0, lr, min_lr) - ref_lr_schedule(50, 100, 0, lr, min_lr)) <= 1e-6 * lr);
    cr_assert(fabs(lr_schedule(5, 5, 5, lr, min_lr) - min_lr) <= 1e-6 * lr);
    /* monotone: up during warmup, down after */
    for (int s = 1; s < total + 3; s++) {
        float a = lr_schedule(s - 1, total, warmup, lr, min_lr), b = lr_schedule(s, total, warmup, lr, min_lr);
        cr_assert(s <= warmup ? b > a : b <= a, "lr_schedule not monotone at step %d", s);
    }
}
