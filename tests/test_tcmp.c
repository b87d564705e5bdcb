/* The compressed branch (tcmp.h) against a plain double-precision implementation of its
 * formula on random inputs of awkward sizes (T not a multiple of b, a partial last tile,
 * B = 2, 3 heads): the forward's output, and the backward's gradients of every q, k, v
 * entry and gate parameter against central differences of the double reference (the loss
 * is sum dout . out for a random dout). Also: tile 0 gets nothing, the backward is the same
 * bits for 1 and 2 threads. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/rng.h"
#include "sattn/tcmp.h"

typedef struct {
    int B, T, C, H, b;
} shape;

static float *rnd(size_t n, float scale, rng_t *r) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = scale * (2.0f * rng_uniform(r) - 1.0f);
    return x;
}

/* sum over (bb, t, h) of dout_t . g_t c_t, in double, from qkv and params as doubles. */
static double ref_loss(const shape *s, const double *qkv, const double *par, const float *dout, double *out) {
    int hs = s->C / s->H, nb = s->T / s->b;
    double L = 0, sc = 1.0 / sqrt((double)hs);
    size_t ld = 3 * (size_t)s->C;
    for (int bb = 0; bb < s->B; bb++)
        for (int h = 0; h < s->H; h++)
            for (int t = 0; t < s->T; t++) {
                const double *q = qkv + ((size_t)bb * s->T + t) * ld + h * hs, *w = par + h * (hs + 1);
                int i = t / s->b < nb ? t / s->b : nb;
                double sj[64], m = -INFINITY, z = 0, c[64] = {0}, gz = w[hs];
                for (int j = 0; j < i; j++) {
                    double kb[64] = {0};
                    for (int u = j * s->b; u < (j + 1) * s->b; u++)
                        for (int d = 0; d < hs; d++) kb[d] += qkv[((size_t)bb * s->T + u) * ld + s->C + h * hs + d] / s->b;
                    sj[j] = 0;
                    for (int d = 0; d < hs; d++) sj[j] += q[d] * kb[d] * sc;
                    m = sj[j] > m ? sj[j] : m;
                }
                for (int j = 0; j < i; j++) z += exp(sj[j] - m);
                for (int j = 0; j < i; j++)
                    for (int u = j * s->b; u < (j + 1) * s->b; u++)
                        for (int d = 0; d < hs; d++)
                            c[d] += exp(sj[j] - m) / z * qkv[((size_t)bb * s->T + u) * ld + 2 * s->C + h * hs + d] / s->b;
                for (int d = 0; d < hs; d++) gz += w[d] * q[d];
                double g = 1 / (1 + exp(-gz));
                for (int d = 0; d < hs; d++) {
                    double o = g * c[d];
                    if (out) out[((size_t)bb * s->T + t) * s->C + h * hs + d] = o;
                    L += dout[((size_t)bb * s->T + t) * s->C + h * hs + d] * o;
                }
            }
    return L;
}

typedef struct {
    shape s;
    float *qkv, *par, *dout, *cache;
    const float *pp[8];
    int hs;
} fx;

static void fx_make(fx *f, shape s, unsigned seed) {
    rng_t r;
    rng_seed(&r, seed);
    f->s = s, f->hs = s.C / s.H;
    f->qkv = rnd((size_t)s.B * s.T * 3 * s.C, 1.5f, &r);
    f->par = rnd((size_t)s.H * (f->hs + 1), 0.5f, &r);
    f->dout = rnd((size_t)s.B * s.T * s.C, 1.0f, &r);
    f->cache = calloc(tcmp_cache_floats(s.B, s.T, s.C, s.H), sizeof(float));
    for (int h = 0; h < s.H; h++) f->pp[h] = f->par + (size_t)h * (f->hs + 1);
}

static void fx_free(fx *f) { free(f->qkv), free(f->par), free(f->dout), free(f->cache); }

static double *to_double(const float *x, size_t n) {
    double *y = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}

static void check_forward(shape s, unsigned seed) {
    fx f;
    fx_make(&f, s, seed);
    size_t no = (size_t)s.B * s.T * s.C, nq = no * 3;
    float *out = calloc(no, sizeof(float));
    for (size_t i = 0; i < no; i++) out[i] = 0.25f; /* out += : a base that must stay */
    tcmp_forward(out, f.cache, f.qkv, s.B, s.T, s.C, s.H, s.b, f.pp);
    double *q = to_double(f.qkv, nq), *p = to_double(f.par, (size_t)s.H * (f.hs + 1)), *ref = calloc(no, sizeof(double));
    ref_loss(&s, q, p, f.dout, ref);
    for (size_t i = 0; i < no; i++) {
        int t = (int)(i / s.C % s.T);
        cr_assert(fabs(out[i] - 0.25 - ref[i]) <= 1e-5 * (1 + fabs(ref[i])), "T %d b %d: out[%zu] %.8g, ref %.8g", s.T,
                  s.b, i, out[i] - 0.25, ref[i]);
        if (t < s.b) cr_assert_eq(out[i], 0.25f, "tile 0 gets nothing");
    }
    free(out), free(q), free(p), free(ref);
    fx_free(&f);
}

Test(tcmp, forward_matches_double_reference) {
    check_forward((shape){2, 37, 24, 3, 5}, 1);
    check_forward((shape){2, 37, 24, 3, 8}, 2);
    check_forward((shape){1, 40, 16, 2, 8}, 3); /* T a multiple of b */
    check_forward((shape){1, 7, 16, 2, 8}, 4);  /* one partial tile: nothing at all */
}

/* Central difference of the double reference at x[i] (x double copy of the inputs). */
static double fd(const shape *s, double *q, double *p, double *x, size_t i, const float *dout) {
    double h = 1e-5 * (1 + fabs(x[i])), keep = x[i];
    x[i] = keep + h;
    double up = ref_loss(s, q, p, dout, NULL);
    x[i] = keep - h;
    double dn = ref_loss(s, q, p, dout, NULL);
    x[i] = keep;
    return (up - dn) / (2 * h);
}

static void check_backward(shape s, unsigned seed) {
    fx f;
    fx_make(&f, s, seed);
    size_t no = (size_t)s.B * s.T * s.C, nq = no * 3, np = (size_t)s.H * (f.hs + 1);
    float *out = calloc(no, sizeof(float)), *dqkv = calloc(nq, sizeof(float)), *dpar = calloc(np, sizeof(float));
    float *scratch = malloc(tcmp_scratch_floats(s.B, s.T, s.C, s.H, s.b) * sizeof(float) + 4);
    float *dp[8];
    for (int h = 0; h < s.H; h++) dp[h] = dpar + (size_t)h * (f.hs + 1);
    tcmp_forward(out, f.cache, f.qkv, s.B, s.T, s.C, s.H, s.b, f.pp);
    tcmp_backward(dqkv, dp, f.dout, f.qkv, f.cache, s.B, s.T, s.C, s.H, s.b, f.pp, scratch);
    double *q = to_double(f.qkv, nq), *p = to_double(f.par, np), gmax = 0, worst = 0;
    for (size_t i = 0; i < nq; i += 1 + i % 3) { /* most entries: q, k and v columns of every head */
        double want = fd(&s, q, p, q, i, f.dout);
        gmax = fabs(want) > gmax ? fabs(want) : gmax;
        worst = fabs(want - dqkv[i]) > worst ? fabs(want - dqkv[i]) : worst;
    }
    for (size_t i = 0; i < np; i++) {
        double want = fd(&s, q, p, p, i, f.dout);
        cr_assert(fabs(want - dpar[i]) <= 1e-4 * (1 + fabs(want)), "dparam %zu: %.8g, fd %.8g", i, dpar[i], want);
    }
    cr_assert(gmax > 0.01 && worst <= 1e-4 * gmax, "T %d b %d: dqkv off by %g (max %g)", s.T, s.b, worst, gmax);
    free(out), free(dqkv), free(dpar), free(scratch), free(q), free(p);
    fx_free(&f);
}

Test(tcmp, backward_matches_finite_differences, .timeout = 120) {
    check_backward((shape){2, 37, 24, 3, 5}, 11);
    check_backward((shape){1, 29, 16, 2, 4}, 12);
}

Test(tcmp, backward_same_bits_any_threads) {
    shape s = {2, 70, 32, 4, 8};
    fx f;
    fx_make(&f, s, 21);
    size_t no = (size_t)s.B * s.T * s.C, nq = no * 3, np = (size_t)s.H * (f.hs + 1);
    float *res[2][2];
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(k + 1);
        float *out = calloc(no, sizeof(float)), *dpar = calloc(np, sizeof(float)), *dp[8];
        float *scratch = malloc(tcmp_scratch_floats(s.B, s.T, s.C, s.H, s.b) * sizeof(float));
        res[k][0] = calloc(nq, sizeof(float)), res[k][1] = dpar;
        for (int h = 0; h < s.H; h++) dp[h] = dpar + (size_t)h * (f.hs + 1);
        tcmp_forward(out, f.cache, f.qkv, s.B, s.T, s.C, s.H, s.b, f.pp);
        tcmp_backward(res[k][0], dp, f.dout, f.qkv, f.cache, s.B, s.T, s.C, s.H, s.b, f.pp, scratch);
        free(out), free(scratch);
    }
    omp_set_num_threads(2);
    cr_assert(!memcmp(res[0][0], res[1][0], nq * sizeof(float)) && !memcmp(res[0][1], res[1][1], np * sizeof(float)));
    for (int k = 0; k < 2; k++) free(res[k][0]), free(res[k][1]);
    fx_free(&f);
}
