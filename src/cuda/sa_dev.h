/* sa_dev: what the .cu files share beyond sa_cuda.h — the context, its scratch buffer, warp
 * reductions, the order-preserving float keys, and the steps of the flash-style kernels
 * (k_flash_fwd in attn.cu, the tblock kernels in tblock_kernels.cu) on 64 x 64 tiles in shared memory.
 *
 * Tile convention (128 threads): a tile holds 64 rows of DM floats (DM = the head dim padded
 * to 64 or 128, zeros past d) at stride DP = DM + 4 (rows 16-byte aligned for float4 loads,
 * and spread over the banks). Thread tid = (ty, tx) = (tid / 16, tid % 16) owns rows
 * ty*8 .. ty*8+7; of a 64 x 64 product tile the columns tx + 16j (j < 4); of a 64 x DM
 * accumulator the dims 64mm + 4tx .. +3 (mm < DM / 64), i.e. acc[8][DM / 16]. A 64 x 64
 * probability tile P sits at stride FL_PS = 68. */
#ifndef SATTN_SA_DEV_H
#define SATTN_SA_DEV_H

#include "sa_cuda.h"

#include <math.h>
#include <stddef.h>

#define FULL 0xffffffffu
#define NEG_INF (-INFINITY)
#define FL_T 64
#define FL_PS 68

struct sa_cuda {
    cudaStream_t st;
    cudaEvent_t e0, e1;
    char name[256];
    int smem_optin;
    void *scratch;     /* grow-only device scratch, carved per call */
    size_t scratch_n;
    size_t chunk_bytes; /* budget for a chunk of selector score rows */
};

/* The context's scratch, grown (never shrunk) to at least bytes; its contents are not kept
 * across a growth. attn.cu. */
void *sa_scratch(sa_cuda *c, size_t bytes);
/* The tblock kernels' opt-in dynamic shared memory (tblock_kernels.cu; sa_cuda_open calls it). */
void sa_tblock_attrs(void);
/* k_topk<TK_INDEX> (attn.cu) on n score rows of one sequence: row r (at S + r ldS) is
 * query row0 + r over keys 0 .. row0 + r; its top min(k, row0 + r + 1) into idx/score
 * (nq, kmax) and count (nq), the CPU's order (descending, ties to the earlier key), -1
 * past count. k <= SA_TOPK_MAX. The shared indexer's ranking (lindex_kernels.cu). */
#define SA_TOPK_MAX 4096
void sa_topk_rows(sa_cuda *c, const float *S, int ldS, int row0, int n, int k, int kmax, int nq, int *idx,
                  float *score, int *count);

/* Max / sum of v over each group of W lanes (W = 16 or 32), butterfly: every lane of the
 * group gets the result. */
template <int W>
__device__ __forceinline__ float warp_max(float v) {
    for (int o = W / 2; o; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL, v, o));
    return v;
}
template <int W>
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = W / 2; o; o >>= 1) v += __shfl_xor_sync(FULL, v, o);
    return v;
}
static __device__ __forceinline__ float4 ld4(const float *p) { return *(const float4 *)p; }

/* Order-preserving float -> uint (larger float, larger key); -0 is folded onto +0 so
 * that the two zeros tie, as they do under the CPU's float comparison. Every finite
 * float's key is > 0 (0 is free as a marker). */
static __device__ __forceinline__ unsigned f2key(float f) {
    if (f == 0.0f) f = 0.0f;
    unsigned u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
static __device__ __forceinline__ float key2f(unsigned k) {
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

/* dst[r][c] = scale * src[(r0 + r) ld + c] for r0 + r < rend and c < d, else 0 (r < 64,
 * c < DM): rows [r0, rend) of a head's columns into a tile. */
template <int DM>
__device__ __forceinline__ void tl_load(float *dst, const float *src, size_t ld, int r0, int rend, int d,
                                        float scale, int tid) {
    const int DP = DM + 4;
    for (int e = tid; e < FL_T * DM; e += 128) {
        int r = e / DM, c = e % DM, t = r0 + r;
        dst[r * DP + c] = (t < rend && c < d) ? src[(size_t)t * ld + c] * scale : 0.0f;
    }
}

/* s[i][j] = A_{ty*8+i} . B_{tx+16j} over DM dims (A, B tiles): one 64 x 64 block of A B^T. */
template <int DM>
__device__ __forceinline__ void tl_dot(float s[8][4], const float *A, const float *B, int ty, int tx) {
    const int DP = DM + 4;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++) s[i][j] = 0.0f;
    for (int c = 0; c < DM; c += 4) {
        float4 kb[4];
        for (int j = 0; j < 4; j++) kb[j] = ld4(B + (tx + 16 * j) * DP + c);
        for (int i = 0; i < 8; i++) {
            float4 qa = ld4(A + (ty * 8 + i) * DP + c);
            for (int j = 0; j < 4; j++)
                s[i][j] = fmaf(qa.x, kb[j].x, fmaf(qa.y, kb[j].y, fmaf(qa.z, kb[j].z, fmaf(qa.w, kb[j].w, s[i][j]))));
        }
    }
}

/* acc[i][4mm + e] += sum_{c < 64} P[ty*8+i][c] Y[c][64mm + 4tx + e]: a 64 x 64 P (stride
 * FL_PS) times a 64 x DM tile Y, into the thread's accumulator rows. */
template <int DM>
__device__ __forceinline__ void tl_acc(float acc[8][DM / 16], const float *P, const float *Y, int ty, int tx) {
    const int DP = DM + 4;
    for (int c = 0; c < FL_T; c += 4) {
        float4 pv[8];
        for (int i = 0; i < 8; i++) pv[i] = ld4(P + (ty * 8 + i) * FL_PS + c);
        for (int cc = 0; cc < 4; cc++)
            for (int mm = 0; mm < DM / 64; mm++) {
                float4 v = ld4(Y + (c + cc) * DP + mm * 64 + tx * 4);
                for (int i = 0; i < 8; i++) {
                    float p = cc == 0 ? pv[i].x : cc == 1 ? pv[i].y : cc == 2 ? pv[i].z : pv[i].w;
                    acc[i][mm * 4 + 0] = fmaf(p, v.x, acc[i][mm * 4 + 0]);
                    acc[i][mm * 4 + 1] = fmaf(p, v.y, acc[i][mm * 4 + 1]);
                    acc[i][mm * 4 + 2] = fmaf(p, v.z, acc[i][mm * 4 + 2]);
                    acc[i][mm * 4 + 3] = fmaf(p, v.w, acc[i][mm * 4 + 3]);
                }
            }
    }
}

/* The online-softmax state of the thread's 8 query rows: running max m and this thread's part
 * of the row sum l (base 2), and the output accumulator. */
template <int DM>
struct fl_state {
    float m[8], l[8], acc[8][DM / 16];
};

template <int DM>
__device__ __forceinline__ void fl_init(fl_state<DM> &f) {
    for (int i = 0; i < 8; i++) {
        f.m[i] = NEG_INF, f.l[i] = 0.0f;
        for (int a = 0; a < DM / 16; a++) f.acc[i][a] = 0.0f;
    }
}

/* One key tile's online-softmax step on the scores s (base 2, from tl_dot of the pre-scaled
 * queries): row = q0 + ty*8+i and column col = k0 + tx+16j are positions; a column past the
 * row (causal) or at or past kend is masked. Per row: m' = max(m, max_j s), alpha = 2^(m - m'),
 * P = 2^(s - m') into Ps, l = alpha l + sum P (this thread's columns), acc *= alpha. The row
 * max is reduced over the 16 lanes of the row; a row with nothing unmasked yet keeps m = -inf
 * and P = 0. */
template <int DM>
__device__ __forceinline__ void fl_softmax(fl_state<DM> &f, float s[8][4], float *Ps, int q0, int k0, int kend,
                                           int ty, int tx) {
    for (int i = 0; i < 8; i++) {
        const int row = q0 + ty * 8 + i;
        float mx = NEG_INF;
        for (int j = 0; j < 4; j++) {
            int col = k0 + tx + 16 * j;
            if (col > row || col >= kend) s[i][j] = NEG_INF;
            mx = fmaxf(mx, s[i][j]);
        }
        mx = warp_max<16>(mx);
        const float mnew = fmaxf(f.m[i], mx);
        const float alpha = mnew == NEG_INF ? 1.0f : exp2f(f.m[i] - mnew);
        float ps = 0.0f;
        for (int j = 0; j < 4; j++) {
            float p = mnew == NEG_INF ? 0.0f : exp2f(s[i][j] - mnew);
            Ps[(ty * 8 + i) * FL_PS + tx + 16 * j] = p;
            ps += p;
        }
        f.l[i] = f.l[i] * alpha + ps;
        f.m[i] = mnew;
        for (int a = 0; a < DM / 16; a++) f.acc[i][a] *= alpha;
    }
}

/* The end: rows q0 + ty*8+i < qend get o = acc / L (o: the head's out row 0, stride C) and
 * lse = (m + log2 L) ln 2 (natural log of the scaled logits; lse: the head's row), L the row
 * sum reduced over its 16 lanes. */
template <int DM>
__device__ __forceinline__ void fl_store(const fl_state<DM> &f, float *o, int C, float *lse, int q0, int qend,
                                         int d, int ty, int tx) {
    for (int i = 0; i < 8; i++) {
        const float L = warp_sum<16>(f.l[i]);
        const int row = q0 + ty * 8 + i;
        if (row >= qend) continue;
        const float inv = 1.0f / L;
        float *orow = o + (size_t)row * C;
        for (int mm = 0; mm < DM / 64; mm++)
            for (int e = 0; e < 4; e++) {
                int dim = mm * 64 + tx * 4 + e;
                if (dim < d) orow[dim] = f.acc[i][mm * 4 + e] * inv;
            }
        if (tx == 0) lse[row] = (f.m[i] + log2f(L)) * 0.69314718055994531f;
    }
}

/* Shared memory of the forward kernels: Q, K, V tiles and P. */
static inline size_t flash_smem(int DM) { return (size_t)(3 * FL_T * (DM + 4) + FL_T * FL_PS) * sizeof(float); }

#endif
