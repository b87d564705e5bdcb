/* Vectorisable exp and tanh for the nn kernels (internal to src/nn).
 *
 * glibc's scalar expf/tanhf took 40% of a training step (perf), and GCC will not
 * call libmvec without -ffast-math, so these are written as straight-line float
 * code that `#pragma omp simd` loops vectorise. fast_expf is Cephes' expf:
 * range reduction x = n ln2 + r with |r| <= ln2/2 (n rounded to nearest) (ln2 split in two for exactness),
 * a degree-6 polynomial for e^r, then the exponent bits; relative error ~2e-7. */
#ifndef SATTN_NN_FASTMATH_H
#define SATTN_NN_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#pragma omp declare simd notinbranch
static inline float fast_expf(float x) {
    x = x > 88.0f ? 88.0f : x;
    x = x < -87.0f ? -87.0f : x; /* keeps 2^n a normal float; e^-87 ~ 1.6e-38 */
    /* round to nearest by the 1.5*2^23 trick: plain float ops, so it vectorises */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r -= n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* tanh u = 1 - 2 / (1 + e^{2u}): saturates cleanly to +-1; absolute error ~1e-7. */
#pragma omp declare simd notinbranch
static inline float fast_tanhf(float u) { return 1.0f - 2.0f / (1.0f + fast_expf(2.0f * u)); }

#endif
