/* Vectorisable exp and tanh for the nn kernels (internal to src/nn).
 *
 * glibc's scalar expf/tanhf took 40% of a training step (perf), and GCC will not
 * call libmvec without -ffast-math, so these are written as straight-line float
 * code that `#pragma omp simd` loops vectorise. fast_expf is Cephes' expf:
 * range reduction x = n ln2 + r with |r| <= ln2/2 (n rounded to nearest) (ln2 split in two for exactness),
 * a degree-6 polynomial for e^r, then the exponent bits; relative error ~2e-7.
 *
 * Every input is defined (a checkpoint or a diverging run can feed NaN and inf here):
 * NaN gives NaN, e^+inf = +inf, e^-inf = 0, overflow gives +inf, and results that would
 * be subnormal are flushed to 0 (absolute error < FLT_MIN = 1.2e-38; x86 computes
 * subnormals with slow microcode assists and softmax has no use for them). Special
 * inputs are handled by selects after the polynomial, never by branches, so the loops
 * stay vectorised (GCC 12, -march=native with AVX-512: the same 13 loops of nn.c and 6
 * of flash.c as before; with AVX2 only, GCC vectorised none of the exp loops, before or
 * after); inside [-87, 88] (the range the old clamps let through) the result is bit for
 * bit what it was before these cases were handled. */
#ifndef SATTN_NN_FASTMATH_H
#define SATTN_NN_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* e^x overflows float from FAST_EXP_HI on (ln FLT_MAX = 88.72283906 lies just below it;
 * clamped there, the formula below gives +inf by itself), and is below FLT_MIN under
 * FAST_EXP_LO (the first float above ln FLT_MIN = -87.33654475). */
#define FAST_EXP_HI 88.72283935546875f
#define FAST_EXP_LO -87.33654022216797f

#pragma omp declare simd notinbranch
static inline float fast_expf(float x) {
    /* Clamped into [LO, HI] with NaN sent to HI (a NaN comparison is false), so n below
     * is an integer in [-126, 128] and its conversion to int is always defined. */
    float xc = x < FAST_EXP_HI ? x : FAST_EXP_HI;
    xc = xc > FAST_EXP_LO ? xc : FAST_EXP_LO;
    /* round to nearest by the 1.5*2^23 trick: plain float ops, so it vectorises */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r -= n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* 2^n as 2^h 2^(n-h) with h = floor((n+128)/2) - 64 in [-63, 64]: both factors are
     * normal floats for every n in [-126, 128] (2^128 alone is not), every shifted value
     * is positive (the shifts are defined), and p 2^h is exact, so the product rounds
     * once, as p 2^n would: +inf from x = HI on. */
    int32_t ni = (int32_t)n, u = (ni + 128) >> 1; /* h = u - 64 */
    int32_t b1 = (u + 63) << 23, b2 = (ni + 191 - u) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    float y = (p * s1) * s2;
    y = x < FAST_EXP_LO ? 0.0f : y; /* -inf included */
    return x == x ? y : x;          /* NaN in, the same NaN out */
}

/* tanh u = 1 - 2 / (1 + e^{2u}): saturates cleanly to +-1 (e^{2u} = inf or 0 at |u| = inf),
 * and NaN stays NaN; absolute error ~1e-7 (relative error is large near 0: 1 - 2/(1+e^2u)
 * cancels, which GELU, its only user, does not mind since it multiplies by x). */
#pragma omp declare simd notinbranch
static inline float fast_tanhf(float u) { return 1.0f - 2.0f / (1.0f + fast_expf(2.0f * u)); }

/* The two passes of a softmax row that every softmax here shares. Forced inline, so that
 * each caller's loops compile exactly as they did when each caller held its own copy (the
 * same vectorised max and sum, so the same float results). */

/* The larger of mx (a running max; -INFINITY for a row on its own) and max_j z[j], j < n. */
__attribute__((always_inline)) static inline float row_max(const float *z, int n, float mx) {
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < n; j++) mx = z[j] > mx ? z[j] : mx;
    return mx;
}

/* p[j] = e^{z[j] - mx} for j < n (p may be z); returns sum_j p[j]. */
__attribute__((always_inline)) static inline float exp_sum(float *p, const float *z, int n, float mx) {
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < n; j++) {
        p[j] = fast_expf(z[j] - mx);
        sum += p[j];
    }
    return sum;
}

#endif
