/* Register-blocked micro-kernels for the flash tiles (internal to src/nn/flash.c).
 *
 * One 8-float vector type, written with GCC vector extensions: on x86 with AVX2 + FMA (and on
 * AVX-512 machines, which have both) every operation is one ymm instruction and the FMA is
 * _mm256_fmadd_ps; elsewhere GCC lowers the same code to what the target has (SSE pairs,
 * NEON, scalars) and the FMA is a multiply then an add. 16 ymm registers bound the blocks:
 * 6 rows x 16 columns = 12 accumulators + 2 loaded vectors + 1 broadcast.
 *
 * The two tile products, in the layouts flash.c packs (queries contiguous in S^T, head dims
 * contiguous in V, K, Q, dO, O):
 *   fk_nt:  C[r][c] = sum_{d<n} X[r][d] Yt[d][c]            r < 6, c < 16   (S^T = K Q^T)
 *           X is broadcast one scalar at a time, Yt is read as two vectors per d.
 *   fk_acc: O[r][c] += sum_{k<n} A(r, k) Z[k][c]             r < 6, c < 16   (O += P V, ...)
 *           A(r, k) = A[r * ars + k * acs]: the scalar operand, read with any strides, so the
 *           same kernel takes P^T as P (ars = 1) or as P^T (acs = 1).
 * Both keep their 12 accumulators in registers over the whole reduction (no spills: checked
 * with objdump at -O2, GCC 12). */
#ifndef SATTN_NN_FLASH_KERN_H
#define SATTN_NN_FLASH_KERN_H

#include <stdint.h>
#include <string.h>

#include "fastmath.h"
#include "sattn/flash.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

/* Without AVX (a generic x86-64 build) GCC warns, at every definition and call, that 32-byte
 * vector arguments change the ABI (and prints one note per file). Every function here is static
 * inline, internal to the file that includes this header (flash.c, tests/test_flash.c), so no ABI
 * is crossed: the warning is off for the rest of that file. */
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float fv8 __attribute__((vector_size(32)));
typedef int32_t iv8 __attribute__((vector_size(32)));
enum { FK_W = 8, FK_MR = FLASH_MR, FK_NR = FLASH_NR };
_Static_assert(FK_MR == 6 && FK_NR == 2 * FK_W, "the kernels below are written for 6 x 16 blocks");

static inline fv8 fv_load(const float *p) {
    fv8 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void fv_store(float *p, fv8 v) { memcpy(p, &v, sizeof v); }
static inline fv8 fv_set1(float x) { return (fv8){x, x, x, x, x, x, x, x}; }
static inline fv8 fv_fma(fv8 a, fv8 b, fv8 c) {
#if defined(__AVX2__) && defined(__FMA__)
    return (fv8)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    return a * b + c;
#endif
}
/* m ? a : b per lane (m: all ones or zero per lane, as comparisons give). */
static inline fv8 fv_sel(iv8 m, fv8 a, fv8 b) { return (fv8)((m & (iv8)a) | (~m & (iv8)b)); }
/* a > b ? a : b and a < b ? a : b lane by lane: a NaN a gives b, as fast_expf's clamps do. */
#if defined(__AVX2__)
/* maxps / minps return the second operand when the comparison is false (NaN included): the
 * same as the selects below, in one instruction. */
static inline fv8 fv_max(fv8 a, fv8 b) { return (fv8)_mm256_max_ps((__m256)a, (__m256)b); }
static inline fv8 fv_min(fv8 a, fv8 b) { return (fv8)_mm256_min_ps((__m256)a, (__m256)b); }
#else
static inline fv8 fv_max(fv8 a, fv8 b) { return fv_sel(a > b, a, b); }
static inline fv8 fv_min(fv8 a, fv8 b) { return fv_sel(a < b, a, b); }
#endif

/* e^x on 8 lanes for the softmax tiles: fast_expf's method (fastmath.h: x = n ln2 + r, the same
 * degree-6 polynomial) with FMAs, and 2^n built in one step, valid for n <= 127, so the clamp is
 * [FAST_EXP_LO, 88]: exact enough for softmax arguments, which are <= 0 up to rounding (s - max,
 * s - lse). Below FAST_EXP_LO (-inf included: the masked scores) the result is exactly 0, NaN
 * gives NaN. About 22 vector operations where fast_expf's exact op order needs ~40; the relative
 * error stays ~2e-7 (tests/test_flash.c). */
static inline fv8 fv_exp(fv8 x) {
    fv8 xc = fv_min(x, fv_set1(88.0f));
    xc = fv_max(xc, fv_set1(FAST_EXP_LO));
    fv8 n = fv_fma(xc, fv_set1(1.44269504088896341f), fv_set1(12582912.0f)) - 12582912.0f;
    fv8 r = fv_fma(n, fv_set1(-0.693359375f), xc);
    r = fv_fma(n, fv_set1(2.12194440e-4f), r);
    fv8 p = fv_set1(1.9875691500e-4f);
    p = fv_fma(p, r, fv_set1(1.3981999507e-3f));
    p = fv_fma(p, r, fv_set1(8.3334519073e-3f));
    p = fv_fma(p, r, fv_set1(4.1665795894e-2f));
    p = fv_fma(p, r, fv_set1(1.6666665459e-1f));
    p = fv_fma(p, r, fv_set1(5.0000001201e-1f));
    p = fv_fma(p, r * r, r + 1.0f);
    iv8 e = (__builtin_convertvector(n, iv8) + 127) << 23;
    fv8 y = p * (fv8)e;
    y = (fv8)(~(x < fv_set1(FAST_EXP_LO)) & (iv8)y);
    return fv_sel(x == x, y, x);
}

/* dst[0..n) = mul * src[0..n): 8 lanes at a time, then the rest. */
static inline void fk_copy(float *restrict dst, const float *restrict src, int n, float mul) {
    int c = 0;
    for (; c + FK_W <= n; c += FK_W) fv_store(dst + c, fv_load(src + c) * mul);
    for (; c < n; c++) dst[c] = src[c] * mul;
}

/* dst[0..n) += mul * src[0..n). */
static inline void fk_add(float *restrict dst, const float *restrict src, int n, float mul) {
    int c = 0;
    for (; c + FK_W <= n; c += FK_W) fv_store(dst + c, fv_load(dst + c) + fv_load(src + c) * mul);
    for (; c < n; c++) dst[c] += src[c] * mul;
}

/* dst[d ldd + i] = mul * src[i lds + d] for i < 8, d < 8: one 8 x 8 block transposed in
 * registers (unpack, shuffle, then 128-bit lane swaps: 24 shuffles for 64 elements). */
/* GCC's __builtin_shuffle takes a mask vector, clang's __builtin_shufflevector constant
 * indices (the clang fuzz build compiles this file too): one macro per pattern. */
#ifdef __clang__
#define FK_SHUF(a, b, i0, i1, i2, i3, i4, i5, i6, i7) __builtin_shufflevector(a, b, i0, i1, i2, i3, i4, i5, i6, i7)
#else
#define FK_SHUF(a, b, i0, i1, i2, i3, i4, i5, i6, i7) __builtin_shuffle(a, b, (iv8){i0, i1, i2, i3, i4, i5, i6, i7})
#endif
static inline void fk_transpose8(float *restrict dst, size_t ldd, const float *restrict src, size_t lds, float mul) {
    fv8 r[8], t[8], u[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) r[i] = fv_load(src + i * lds) * mul;
#pragma GCC unroll 4
    for (int i = 0; i < 8; i += 2) {
        t[i] = FK_SHUF(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[i + 1] = FK_SHUF(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
#pragma GCC unroll 2
    for (int i = 0; i < 8; i += 4) {
        u[i] = FK_SHUF(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
        u[i + 1] = FK_SHUF(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        u[i + 2] = FK_SHUF(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
        u[i + 3] = FK_SHUF(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
    }
#pragma GCC unroll 4
    for (int d = 0; d < 4; d++) {
        fv_store(dst + d * ldd, FK_SHUF(u[d], u[d + 4], 0, 1, 2, 3, 8, 9, 10, 11));
        fv_store(dst + (d + 4) * ldd, FK_SHUF(u[d], u[d + 4], 4, 5, 6, 7, 12, 13, 14, 15));
    }
}

/* C[r][c] = sum_{d<n} X[r ldx + d] Yt[d ldy + c], r < 6, c < 16, stored at C + r ldc + c. */
static inline void fk_nt(float *restrict C, int ldc, const float *restrict X, int ldx,
                         const float *restrict Yt, int ldy, int n) {
    fv8 c[FK_MR][2];
#pragma GCC unroll 6
    for (int r = 0; r < FK_MR; r++) c[r][0] = c[r][1] = fv_set1(0.0f);
    for (int d = 0; d < n; d++) {
        fv8 y0 = fv_load(Yt + (size_t)d * ldy), y1 = fv_load(Yt + (size_t)d * ldy + FK_W);
#pragma GCC unroll 6
        for (int r = 0; r < FK_MR; r++) {
            fv8 x = fv_set1(X[(size_t)r * ldx + d]);
            c[r][0] = fv_fma(x, y0, c[r][0]);
            c[r][1] = fv_fma(x, y1, c[r][1]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < FK_MR; r++) {
        fv_store(C + (size_t)r * ldc, c[r][0]);
        fv_store(C + (size_t)r * ldc + FK_W, c[r][1]);
    }
}

/* O[r][c] = rs[r] O[r][c] + sum_{k<n} A[r ars + k acs] Z[k ldz + c], r < 6, c < 16, O at
 * O + r ldo + c; rs NULL: no scaling (the forward's online-softmax rescale rides along). */
static inline void fk_acc(float *restrict O, int ldo, const float *restrict rs, const float *restrict A, int ars,
                          int acs, const float *restrict Z, int ldz, int n) {
    fv8 c[FK_MR][2];
#pragma GCC unroll 6
    for (int r = 0; r < FK_MR; r++) {
        c[r][0] = fv_load(O + (size_t)r * ldo);
        c[r][1] = fv_load(O + (size_t)r * ldo + FK_W);
    }
    if (rs)
#pragma GCC unroll 6
        for (int r = 0; r < FK_MR; r++) c[r][0] *= rs[r], c[r][1] *= rs[r];
    for (int k = 0; k < n; k++) {
        fv8 z0 = fv_load(Z + (size_t)k * ldz), z1 = fv_load(Z + (size_t)k * ldz + FK_W);
        const float *a = A + (size_t)k * acs;
#pragma GCC unroll 6
        for (int r = 0; r < FK_MR; r++) {
            fv8 x = fv_set1(a[(size_t)r * ars]);
            c[r][0] = fv_fma(x, z0, c[r][0]);
            c[r][1] = fv_fma(x, z1, c[r][1]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < FK_MR; r++) {
        fv_store(O + (size_t)r * ldo, c[r][0]);
        fv_store(O + (size_t)r * ldo + FK_W, c[r][1]);
    }
}

#endif
