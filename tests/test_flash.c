/* Tests of flash.h: the tiled (online-softmax) causal attention against nn.h's naive
 * attention, which tests/test_nn.c checks against the double reference.
 *
 * Sizes: B = 2, H = 3, T in {1, 7, 63, 64, 65, 127, 128, 130, 256, 257, 300} (not multiples of
 * the tiles), hs in {5, 12, 64}; and (issue 11, the register-blocked kernels: 96-row tiles, 6 x 16
 * blocks, head dims padded to 16) T in {1, 5, 95, 96, 97, 191, 193, 290} x hs in {16, 32, 64, 80}
 * with B H = 1 < threads, B = 2, H = 2, and B H >= 8 (one backward group per head). Tolerances, as
 * max|flash - naive| / max|naive|: forward 1e-5, backward 1e-4. Both compute the same
 * sums in float with ~1e-7 relative rounding per term, in a different order (the online
 * softmax rescales by e^{m - m'}, a few ulp each), so legitimate differences are ~1e-6;
 * a wrong mask, scale or missing rescale is O(1e-2..1).
 * Also: outputs start as NaN (an unwritten element fails); backward accumulates (+=)
 * and takes NaN-filled scratch; lse equals the log-sum-exp of the scaled logits in double;
 * one decode step with a KV cache equals the last row of the full forward; and the API
 * holds no (T,T) buffer (checked on the scratch size: the forward takes none at all). */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref.h"
#include "sattn/flash.h"
#include "sattn/nn.h"
#include "sattn/rng.h"
#include "../src/nn/flash_kern.h" /* internal to src/nn: its vector exp is tested directly */

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

/* max|a - b| / max|b| in double (NaN anywhere in a gives infinity) */
static double rel_err_ff(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d != d) d = INFINITY;
        if (d > num) num = d;
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return num / (den > 0 ? den : 1);
}

static void check_ff(const char *what, int T, int hs, const float *a, const float *b, size_t n,
                     double tol) {
    double e = rel_err_ff(a, b, n);
    cr_assert(e <= tol, "%s T=%d hs=%d: rel err %.3g > %.1g", what, T, hs, e, tol);
}

/* lse[b,h,t] against log sum_{s<=t} exp(q_t.k_s / sqrt(hs)) in double. */
static void check_lse(const float *lse, const float *qkv, int B, int T, int C, int H) {
    int hs = C / H;
    double worst = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                double *z = ref_dalloc((size_t)t + 1), mx = -INFINITY, sum = 0;
                for (int s = 0; s <= t; s++) {
                    const float *k = qkv + ((size_t)b * T + s) * 3 * C + C + h * hs;
                    double d = 0;
                    for (int i = 0; i < hs; i++) d += (double)q[i] * k[i];
                    z[s] = d / sqrt((double)hs);
                    mx = z[s] > mx ? z[s] : mx;
                }
                for (int s = 0; s <= t; s++) sum += exp(z[s] - mx);
                double want = mx + log(sum), got = lse[((size_t)b * H + h) * T + t];
                double e = fabs(got - want) / (1 + fabs(want));
                if (!(e <= worst)) worst = e; /* NaN propagates */
                free(z);
            }
    cr_assert(worst <= 1e-5, "lse T=%d hs=%d: rel err %.3g vs double log-sum-exp", T, hs, worst);
}

static void flash_case(int B, int T, int hs, int H, float qscale, rng_t *r) {
    int C = hs * H;
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = (size_t)B * H * T * T;
    size_t nl = (size_t)B * H * T;
    float *qkv = rand_f(nq, qscale, r), *out = nan_f(no), *lse = nan_f(nl);
    float *nout = ref_falloc(no), *att = ref_falloc(na);
    flash_attention_forward(out, lse, qkv, B, T, C, H);
    attention_forward(nout, att, qkv, B, T, C, H);
    check_ff("flash forward out", T, hs, out, nout, no, FWD_TOL);
    check_lse(lse, qkv, B, T, C, H);

    float *dout = rand_f(no, 1, r), *dq = ref_falloc(nq), *ndq = ref_falloc(nq);
    float *scratch = nan_f(flash_scratch_floats(B, T, C, H));
    float *nscratch = ref_falloc(attention_scratch_floats(B, T, H));
    flash_attention_backward(dq, dout, qkv, out, lse, B, T, C, H, scratch);
    attention_backward(ndq, nscratch, dout, qkv, att, B, T, C, H);
    check_ff("flash backward dqkv", T, hs, dq, ndq, nq, BWD_TOL);
    /* q, k, v parts separately, so a small part cannot hide behind a large one */
    float *pf = ref_falloc(no), *pn = ref_falloc(no);
    for (int part = 0; part < 3; part++) {
        for (size_t i = 0; i < (size_t)B * T; i++)
            for (int c = 0; c < C; c++) {
                pf[i * C + c] = dq[i * 3 * C + part * C + c];
                pn[i * C + c] = ndq[i * 3 * C + part * C + c];
            }
        char what[64];
        snprintf(what, sizeof what, "flash backward d%c", "qkv"[part]);
        check_ff(what, T, hs, pf, pn, no, BWD_TOL);
    }
    /* accumulates: from P it gives P + (the result from zero); scratch left dirty is fine */
    float *P = rand_f(nq, 1, r), *acc = ref_falloc(nq), *want = ref_falloc(nq);
    memcpy(acc, P, nq * sizeof(float));
    for (size_t i = 0; i < nq; i++) want[i] = P[i] + dq[i];
    flash_attention_backward(acc, dout, qkv, out, lse, B, T, C, H, scratch);
    check_ff("flash backward accumulates", T, hs, acc, want, nq, 1e-5);
    free(qkv), free(out), free(lse), free(nout), free(att), free(dout), free(dq), free(ndq);
    free(scratch), free(nscratch), free(pf), free(pn), free(P), free(acc), free(want);
}

static const int TS[] = {1, 7, 63, 64, 65, 127, 128, 130, 256, 257, 300};
static const int HSS[] = {5, 12, 64};

Test(flash, forward_backward_equal_naive) {
    rng_t r;
    rng_seed(&r, 401);
    for (int i = 0; i < 11; i++)
        for (int j = 0; j < 3; j++) flash_case(2, TS[i], HSS[j], 3, 1.0f, &r);
}

/* peaked softmax (scores of tens): the running max must rescale the accumulator */
Test(flash, peaked_scores) {
    rng_t r;
    rng_seed(&r, 402);
    flash_case(2, 130, 12, 3, 4.0f, &r);
    flash_case(1, 200, 64, 2, 3.0f, &r);
}

/* Decode: the last position's query against the whole sequence's keys/values laid out as a
 * (T, C) KV cache equals row T-1 of the full causal forward. */
static void decode_case(int T, int hs, int H, rng_t *r) {
    int C = hs * H;
    size_t nq = (size_t)T * 3 * C, no = (size_t)T * C;
    float *qkv = rand_f(nq, 1.0f, r), *full = ref_falloc(no), *lse = ref_falloc((size_t)H * T);
    float *kc = ref_falloc(no), *vc = ref_falloc(no), *out = nan_f((size_t)C);
    for (int t = 0; t < T; t++) {
        memcpy(kc + (size_t)t * C, qkv + (size_t)t * 3 * C + C, (size_t)C * sizeof(float));
        memcpy(vc + (size_t)t * C, qkv + (size_t)t * 3 * C + 2 * C, (size_t)C * sizeof(float));
    }
    flash_attention_forward(full, lse, qkv, 1, T, C, H);
    attention_decode_step(out, qkv + (size_t)(T - 1) * 3 * C, kc, vc, T, C, H);
    check_ff("decode step vs last forward row", T, hs, out, full + (size_t)(T - 1) * C, (size_t)C,
             FWD_TOL);
    free(qkv), free(full), free(lse), free(kc), free(vc), free(out);
}

Test(flash, decode_equals_last_row) {
    rng_t r;
    rng_seed(&r, 403);
    int ts[] = {1, 7, 63, 64, 65, 130, 257, 600};
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 3; j++) decode_case(ts[i], HSS[j], 3, &r);
}

/* No (T,T) buffer: the forward takes only out and lse (B,H,T); the backward's scratch is
 * D (B,H,T) plus FLASH_BWD_GROUPS partial dQ (B,T,C): at T = 4096 under 1/10 of the (B,H,T,T)
 * probabilities nn.h's attention keeps, and growing exactly linearly in T. */
Test(flash, no_tt_buffer) {
    size_t B = 1, H = 8, T = 4096, C = 512;
    size_t s = flash_scratch_floats((int)B, (int)T, (int)C, (int)H);
    cr_assert(s <= B * T * (H + FLASH_BWD_GROUPS * C), "scratch %zu floats", s);
    cr_assert(s * 10 < B * H * T * T, "scratch %zu floats is not O(T)", s);
    size_t s2 = flash_scratch_floats((int)B, (int)(2 * T), (int)C, (int)H);
    cr_assert(s2 - s == B * T * (H + FLASH_BWD_GROUPS * C), "scratch grows by %zu floats from T to 2T", s2 - s);
}

/* More key tiles than backward groups (T = 1100: 5 key tiles, 4 groups, so group 0 owns tiles
 * 0 and 4), H = 3, B = 1. */
Test(flash, backward_more_key_tiles_than_groups) {
    rng_t r;
    rng_seed(&r, 404);
    flash_case(1, 1100, 8, 3, 1.0f, &r);
    flash_case(2, 1025, 5, 1, 1.0f, &r);
}

/* The backward is parallel over (b, h, key-tile group) with a fixed-order dQ reduction: the
 * same input gives bit-identical gradients with 1, 2 and 3 threads. */
Test(flash, backward_deterministic_across_threads) {
    rng_t r;
    rng_seed(&r, 405);
    int B = 1, T = 777, H = 4, hs = 8, C = H * hs;
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
    float *qkv = rand_f(nq, 1.0f, &r), *dout = rand_f(no, 1.0f, &r), *out = ref_falloc(no);
    float *lse = ref_falloc((size_t)B * H * T);
    float *scratch = nan_f(flash_scratch_floats(B, T, C, H));
    float *d[3];
    flash_attention_forward(out, lse, qkv, B, T, C, H);
    int saved = omp_get_max_threads();
    for (int i = 0; i < 3; i++) {
        omp_set_num_threads(i + 1);
        d[i] = ref_falloc(nq);
        memset(d[i], 0, nq * sizeof(float));
        flash_attention_backward(d[i], dout, qkv, out, lse, B, T, C, H, scratch);
    }
    omp_set_num_threads(saved);
    cr_assert(memcmp(d[0], d[1], nq * sizeof(float)) == 0, "1 and 2 threads differ");
    cr_assert(memcmp(d[0], d[2], nq * sizeof(float)) == 0, "1 and 3 threads differ");
    free(qkv), free(dout), free(out), free(lse), free(scratch), free(d[0]), free(d[1]), free(d[2]);
}

/* Issue 11: around the 96-row tiles and the 6 x 16 register blocks, at the head dims of real
 * models (16 .. 80: multiples of the 8-float vector, 80 not of the 16-column block), with one
 * (b, h) only (fewer than the threads) and with B = 2, H = 2. */
Test(flash, kernel_blocks_awkward_sizes) {
    rng_t r;
    rng_seed(&r, 406);
    static const int ts[] = {1, 5, 95, 96, 97, 191, 193, 290}, hss[] = {16, 32, 64, 80};
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++) flash_case(1, ts[i], hss[j], 1, 1.0f, &r);
    for (int j = 0; j < 4; j++) flash_case(2, 200, hss[j], 2, 2.0f, &r);
    flash_case(2, 290, 16, 4, 1.0f, &r); /* B H = 8: one backward group per head, dQ in place */
    flash_case(1, 97, 32, 9, 1.0f, &r);
}

/* Forward and backward with 1 and 2 threads: bit-identical, at B H = 1 (the work is split over
 * query tiles and key-tile groups, not heads only) and at B = 1, H = 4. */
static void threads_case(int B, int H, int T, int hs, rng_t *r) {
    int C = H * hs;
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, nl = (size_t)B * H * T;
    float *qkv = rand_f(nq, 1.0f, r), *dout = rand_f(no, 1.0f, r);
    float *scratch = nan_f(flash_scratch_floats(B, T, C, H));
    float *out[2], *lse[2], *d[2];
    int saved = omp_get_max_threads();
    for (int i = 0; i < 2; i++) {
        omp_set_num_threads(i + 1);
        out[i] = nan_f(no), lse[i] = nan_f(nl), d[i] = ref_falloc(nq);
        memset(d[i], 0, nq * sizeof(float));
        flash_attention_forward(out[i], lse[i], qkv, B, T, C, H);
        flash_attention_backward(d[i], dout, qkv, out[i], lse[i], B, T, C, H, scratch);
    }
    omp_set_num_threads(saved);
    cr_assert(memcmp(out[0], out[1], no * sizeof(float)) == 0, "forward: 1 and 2 threads differ (B %d H %d)", B, H);
    cr_assert(memcmp(lse[0], lse[1], nl * sizeof(float)) == 0, "lse: 1 and 2 threads differ (B %d H %d)", B, H);
    cr_assert(memcmp(d[0], d[1], nq * sizeof(float)) == 0, "backward: 1 and 2 threads differ (B %d H %d)", B, H);
    free(qkv), free(dout), free(scratch);
    for (int i = 0; i < 2; i++) free(out[i]), free(lse[i]), free(d[i]);
}

Test(flash, forward_backward_bit_identical_1_and_2_threads) {
    rng_t r;
    rng_seed(&r, 407);
    threads_case(1, 1, 700, 80, &r);
    threads_case(1, 4, 500, 64, &r);
    threads_case(2, 4, 300, 32, &r); /* B H = 8: G = 1 */
}

/* The 8-lane exp of the softmax tiles: within 4e-7 relative of exp in double over the range a
 * softmax feeds it (and up to 88), within 1e-6 of fast_expf; exactly 0 below FAST_EXP_LO and at
 * -inf, exactly 1 at 0, NaN for NaN. */
Test(flash, vector_exp) {
    float xs[4096];
    int n = 0;
    for (int i = 0; i < 3500; i++) xs[n++] = -87.0f + 0.05f * (float)i + 1e-3f * (float)(i % 7);
    while (n % FK_W) xs[n++] = 0.5f;
    for (int i = 0; i < n; i += FK_W) {
        float y[FK_W];
        fv_store(y, fv_exp(fv_load(xs + i)));
        for (int l = 0; l < FK_W; l++) {
            double want = exp((double)xs[i + l]);
            cr_assert(fabs(y[l] - want) <= 4e-7 * want, "exp(%.9g): %.9g, want %.9g", xs[i + l], y[l], want);
            cr_assert(fabs(y[l] - fast_expf(xs[i + l])) <= 1e-6 * want, "exp(%.9g) vs fast_expf", xs[i + l]);
        }
    }
    float sp[FK_W] = {0.0f, -0.0f, -INFINITY, NAN, -87.4f, -1e30f, -100.0f, FAST_EXP_LO}, y[FK_W];
    fv_store(y, fv_exp(fv_load(sp)));
    cr_assert(y[0] == 1.0f && y[1] == 1.0f, "exp(0) = %.9g, exp(-0) = %.9g", y[0], y[1]);
    for (int l = 2; l < 7; l++)
        if (l == 3) cr_assert(isnan(y[l]), "exp(NaN) = %g", y[l]);
        else cr_assert(y[l] == 0.0f, "exp(%g) = %g, want 0", sp[l], y[l]);
    cr_assert(y[7] > 0 && y[7] < 2e-38f, "exp(FAST_EXP_LO) = %g", y[7]);
}
