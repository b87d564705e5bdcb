/* lindex_kernels.cu: the shared (per-layer) lightning indexer on the GPU with bf16 score
 * operands, the counterpart of src/sparse/lindex.c's bf16 path (include/sattn/lindex.h;
 * docs/cuda.md "Shared indexer").
 *
 * Notation as lindex.h: q_t, k_s the layer's C-wide rows (at ld), rank r, J indexer heads,
 * parameters in layer layout  Wq (J r, C) | Wk (r, C) | Ww (J, C) | bw (J).
 *   qt_j(t) = bf16(Wq_j q_t / sqrt(r))   kt(s) = bf16(Wk k_s)   w_j(t) = Ww_j . q_t + bw_j
 *   score(t, s) = sum_j w_j(t) relu(qt_j(t) . kt(s))                         for s <= t
 * bf16(x) rounds the float projection to nearest even (the CPU's bf16_rne); the dot products
 * multiply bf16 operands (exact in float) and sum in float, like vdpbf16ps. w stays float.
 * Selection: the top k of row t over s <= t (ties to the earlier key) by attn.cu's k_topk.
 *
 * Same source for nvcc and the CPU emulation (g++ -DSA_EMU). */
#include "sa_dev.h"

#include <string.h>

#ifndef _Noreturn
#define _Noreturn [[noreturn]] /* core.h is C11 */
#endif
#include "sattn/cuda_attn.h"

#ifdef SA_EMU
/* The emulation has no cuda_bf16.h: bf16 as its 16 bits, rounded as the CPU rounds. */
typedef unsigned short lix_bf16;
static __device__ __forceinline__ lix_bf16 lix_round(float x) {
    unsigned u = __float_as_uint(x);
    return (lix_bf16)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
static __device__ __forceinline__ float lix_float(lix_bf16 b) { return __uint_as_float((unsigned)b << 16); }
#else
#include <cuda_bf16.h>
typedef __nv_bfloat16 lix_bf16;
static __device__ __forceinline__ lix_bf16 lix_round(float x) { return __float2bfloat16_rn(x); }
static __device__ __forceinline__ float lix_float(lix_bf16 b) { return __bfloat162float(b); }
#endif

#define LIX_RMAX 32 /* the rank staged in shared memory (sa_cuda_lindex_check) */
#define LIX_JMAX 8

/* One thread per (row t, output o), o over J r + r + J:
 *   o < J r:        Qb[t][o]       = bf16(inv (q_t . Wq[o]))        (inv = 1/sqrt(r))
 *   o < J r + r:    Kb[t][o - J r] = bf16(k_t . Wk[o - J r])
 *   else:           Wt[t][j]       = q_t . Ww[j] + bw[j]
 * Sums in float, in column order (the CPU's are sgemm's: the same up to rounding). */
__global__ void __launch_bounds__(256) k_lix_proj(lix_bf16 *Qb, lix_bf16 *Kb, float *Wt, const float *w,
                                                  const float *q, const float *k, int ld, int T, int C, int r,
                                                  int J, float inv) {
    const int no = J * r + r + J;
    const size_t e = (size_t)blockIdx.x * 256 + threadIdx.x;
    if (e >= (size_t)T * no) return;
    const int t = (int)(e / no), o = (int)(e % no);
    const int isk = o >= J * r && o < J * r + r;
    const float *x = (isk ? k : q) + (size_t)t * ld, *wr = w + (size_t)o * C;
    float acc = 0.0f;
    for (int i = 0; i < C; i++) acc = fmaf(x[i], wr[i], acc);
    if (o < J * r) Qb[(size_t)t * J * r + o] = lix_round(acc * inv);
    else if (isk) Kb[(size_t)t * r + (o - J * r)] = lix_round(acc);
    else Wt[(size_t)t * J + (o - J * r - r)] = acc + w[(size_t)no * C + (o - J * r - r)];
}

/* Rows [r0, r0+64) of a bf16 (T, ld) matrix at column c0, r columns, as floats into a
 * [64][LIX_RMAX + 1] tile (zero past T and past r; +1: rows on different banks). */
static __device__ __forceinline__ void lix_load(float (*dst)[LIX_RMAX + 1], const lix_bf16 *src, int ld, int c0,
                                                int r0, int T, int r, int tid) {
    for (int e = tid; e < 64 * LIX_RMAX; e += 256) {
        const int i = e / LIX_RMAX, c = e % LIX_RMAX, t = r0 + i;
        dst[i][c] = t < T && c < r ? lix_float(src[(size_t)t * ld + c0 + c]) : 0.0f;
    }
}

/* A 64 x 64 tile of score rows: queries i0 + 64 by .. (of the n rows from i0), keys
 * 64 bx ..; S row (t - i0) at S + (t - i0) ldS, written on s <= t only. Tiles wholly above
 * the diagonal exit. Thread (ty, tx) = (tid / 16, tid % 16) owns queries 4 ty .. 4 ty + 3
 * and keys tx + 16 c (c < 4). Per indexer head j: the dot tile, then
 *   acc += w_j(t) relu(dot)     (j in order, as the CPU's vec_relu_axpy) */
__global__ void __launch_bounds__(256) k_lix_scores(float *S, int ldS, int i0, int n, const lix_bf16 *Qb,
                                                    const lix_bf16 *Kb, const float *Wt, int T, int r, int J) {
    __shared__ float qs[64][LIX_RMAX + 1], ks[64][LIX_RMAX + 1];
    const int q0 = i0 + blockIdx.y * 64, s0 = blockIdx.x * 64, qend = min(i0 + n, q0 + 64);
    if (s0 > qend - 1) return;
    const int tid = threadIdx.x, ty = tid / 16, tx = tid % 16;
    float acc[4][4] = {{0.0f}};
    lix_load(ks, Kb, r, 0, s0, T, r, tid);
    for (int j = 0; j < J; j++) {
        __syncthreads(); /* the previous head's qs reads are done */
        lix_load(qs, Qb, J * r, j * r, q0, qend, r, tid);
        __syncthreads();
        float dot[4][4] = {{0.0f}};
        for (int i = 0; i < r; i++)
            for (int a = 0; a < 4; a++)
                for (int c = 0; c < 4; c++) dot[a][c] = fmaf(qs[4 * ty + a][i], ks[tx + 16 * c][i], dot[a][c]);
        for (int a = 0; a < 4; a++) {
            const int t = q0 + 4 * ty + a;
            const float wj = t < qend ? Wt[(size_t)t * J + j] : 0.0f;
            for (int c = 0; c < 4; c++) acc[a][c] += wj * fmaxf(dot[a][c], 0.0f);
        }
    }
    for (int a = 0; a < 4; a++) {
        const int t = q0 + 4 * ty + a;
        for (int c = 0; c < 4; c++) {
            const int s = s0 + tx + 16 * c;
            if (t < qend && s <= t) S[(size_t)(t - i0) * ldS + s] = acc[a][c];
        }
    }
}

extern "C" int sa_cuda_lindex_check(int C, int r, int J, int k, sattn_err *e) {
    if (C < 1) return err_set(e, "cuda lindex: C = %d", C);
    if (r < 1 || r > LIX_RMAX) return err_set(e, "cuda lindex: rank %d, the kernels take 1..%d", r, LIX_RMAX);
    if (J < 1 || J > LIX_JMAX) return err_set(e, "cuda lindex: %d indexer heads, the kernels take 1..%d", J, LIX_JMAX);
    if (k < 1 || k > SA_TOPK_MAX) return err_set(e, "cuda lindex: k %d, the kernels take 1..%d", k, SA_TOPK_MAX);
    return 0;
}

static void lix_check(int C, int r, int J, int k) {
    sattn_err e;
    if (sa_cuda_lindex_check(C, r, J, k, &e)) die_at(__FILE__, __LINE__, "%s", e.msg);
}

/* The device buffers of one sequence: Qb (T, J r), Kb (T, r) bf16, Wt (T, J) float, carved
 * from base (256-byte aligned parts). Returns the bytes used. */
typedef struct {
    lix_bf16 *Qb, *Kb;
    float *Wt;
} lix_side;

static size_t up256b(size_t bytes) { return (bytes + 255) / 256 * 256; }

static size_t lix_side_bytes(int T, int r, int J) {
    return up256b((size_t)T * J * r * sizeof(lix_bf16)) + up256b((size_t)T * r * sizeof(lix_bf16)) +
           up256b((size_t)T * J * sizeof(float));
}

static lix_side lix_project(sa_cuda *c, void *base, const float *w, const float *q, const float *k, int ld, int T,
                            int C, int r, int J) {
    lix_side sd;
    char *p = (char *)base;
    sd.Qb = (lix_bf16 *)p, p += up256b((size_t)T * J * r * sizeof(lix_bf16));
    sd.Kb = (lix_bf16 *)p, p += up256b((size_t)T * r * sizeof(lix_bf16));
    sd.Wt = (float *)p;
    const size_t ne = (size_t)T * (J * r + r + J);
    SA_LAUNCH(k_lix_proj, dim3((unsigned)((ne + 255) / 256)), 256, 0, c->st, sd.Qb, sd.Kb, sd.Wt, w, q, k, ld, T, C,
              r, J, 1.0f / sqrtf((float)r));
    CK_LAUNCH();
    return sd;
}

/* Score rows [i0, i0 + n) into S (row t - i0 at S + (t - i0) ldS), keys up to the last row. */
static void lix_scores_rows(sa_cuda *c, const lix_side *sd, float *S, int ldS, int i0, int n, int T, int r, int J) {
    const int keys = i0 + n;
    SA_LAUNCH(k_lix_scores, dim3((keys + 63) / 64, (n + 63) / 64), 256, 0, c->st, S, ldS, i0, n,
              (const lix_bf16 *)sd->Qb, (const lix_bf16 *)sd->Kb, (const float *)sd->Wt, T, r, J);
    CK_LAUNCH();
}

extern "C" void sa_cuda_lindex_scores(sa_cuda *c, const float *w, const float *q, const float *k, int ld, int T,
                                      int C, int r, int J, float *S) {
    lix_check(C, r, J, 1);
    if (T <= 0) return;
    lix_side sd = lix_project(c, sa_scratch(c, lix_side_bytes(T, r, J)), w, q, k, ld, T, C, r, J);
    lix_scores_rows(c, &sd, S, T, 0, T, T, r, J);
}

/* Chunks of score rows (at most the context's chunk budget, a multiple of 64 rows), each
 * scored then ranked: memory O(chunk), not O(T^2). */
extern "C" void sa_cuda_lindex_select(sa_cuda *c, const float *w, const float *q, const float *k, int ld, int T,
                                      int C, int r, int J, int topk, int *idx, float *score, int *count) {
    lix_check(C, r, J, topk);
    if (T <= 0) return;
    const int kmax = topk < T ? topk : T;
    long nr = (long)(c->chunk_bytes / sizeof(float) / (size_t)T);
    if (nr < 1) nr = 1;
    if (nr > T) nr = T;
    if (nr > 64) nr -= nr % 64;
    const size_t side = lix_side_bytes(T, r, J);
    char *base = (char *)sa_scratch(c, side + (size_t)nr * T * sizeof(float));
    lix_side sd = lix_project(c, base, w, q, k, ld, T, C, r, J);
    float *S = (float *)(base + side);
    for (int i0 = 0; i0 < T; i0 += (int)nr) {
        const int n = (int)(T - i0 < nr ? T - i0 : nr);
        lix_scores_rows(c, &sd, S, T, i0, n, T, r, J);
        sa_topk_rows(c, S, T, i0, n, topk, kmax, T, idx, score, count);
    }
}
