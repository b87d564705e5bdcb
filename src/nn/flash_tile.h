/* Packed tiles, tile products and softmax passes of the flash kernels (internal to sattn:
 * src/nn/flash.c, and the tile-shared block-sparse kernels of src/sparse/tblock.c).
 *
 * Layouts (flash.c's, with the tile width a parameter ldt instead of flash's fixed 96):
 *   Qt, dOt  (hs x ldt)   queries contiguous (the query tile transposed), scale folded in;
 *   Kp, Vp   (rows x ldp) keys by rows, head dims padded with zeros to a multiple of 16;
 *   Qn, dOn  (rows x ldp) the same for queries;
 *   St, dPt  (keys x ldt) scores transposed: row j = key, queries contiguous, so the
 *                         softmax statistics of 8 queries are one vector.
 * So S^T = Kp Qt (ft_tile_nt) and every other product is ft_tile_acc with the right
 * strides. On a diagonal tile (its first key = its first query, k0 = q0) the work wholly
 * above the diagonal is skipped and the rest masked (ft_mask_diag). All static inline:
 * each including file gets its own copy, no ABI is crossed (see flash_kern.h). */
#ifndef SATTN_NN_FLASH_TILE_H
#define SATTN_NN_FLASH_TILE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "flash_kern.h"
#include "sattn/core.h"

static inline int ft_imin(int a, int b) { return a < b ? a : b; }
static inline int ft_round_up(int a, int m) { return (a + m - 1) / m * m; }

/* Row stride of the packed (rows x hs) tiles: hs rounded up to 16 floats (whole 64-byte lines),
 * plus 16 when that is an even number of lines. A stride of 2^k lines maps a tile's rows onto a
 * few L1 sets (hs = 64: 16 of the 64 sets) where they evict each other; an odd number of lines
 * spreads them over all sets. */
static inline int ft_row_stride(int hs) {
    int w = ft_round_up(hs, FK_NR);
    return (w / FK_NR) % 2 ? w : w + FK_NR;
}

/* dst (rows x ldd) = mul * src rows (stride lds), n of them, hs columns; zero padding up to
 * rows and ldd columns. */
static inline void ft_pack_rows(float *dst, int ldd, int rows, const float *src, size_t lds, int n, int hs,
                                float mul) {
    for (int j = 0; j < rows; j++) {
        float *d = dst + (size_t)j * ldd;
        if (j < n) fk_copy(d, src + (size_t)j * lds, hs, mul);
        else memset(d, 0, (size_t)hs * sizeof(float));
        memset(d + hs, 0, (size_t)(ldd - hs) * sizeof(float));
    }
}

/* dst (hs x ldt) = mul * src^T: dst[d][i] = mul src[i][d] for i < n, zero for n <= i < ldt.
 * 8 x 8 blocks in registers, the edges one by one. */
static inline void ft_pack_cols(float *dst, int ldt, const float *src, size_t lds, int n, int hs, float mul) {
    int n8 = n / FK_W * FK_W, h8 = hs / FK_W * FK_W;
    for (int d = 0; d < hs; d++) memset(dst + (size_t)d * ldt + n8, 0, (size_t)(ldt - n8) * sizeof(float));
    for (int i = 0; i < n8; i += FK_W)
        for (int d = 0; d < h8; d += FK_W)
            fk_transpose8(dst + (size_t)d * ldt + i, (size_t)ldt, src + (size_t)i * lds + d, lds, mul);
    for (int i = 0; i < n; i++)
        for (int d = i < n8 ? h8 : 0; d < hs; d++) dst[(size_t)d * ldt + i] = mul * src[(size_t)i * lds + d];
}

/* C (nj x ni, row stride ldt) = X Yt: X (nj x hs, rows ldx), Yt (hs x ldt); nj a multiple
 * of 6, ni of 16. diag (the diagonal tile, key j vs query i): 6 x 16 blocks wholly above the
 * diagonal (j0 > i0 + 15) are not computed but set to fill. Returns the multiply-adds done on
 * real rows and columns (nk keys, nq queries): what the SATTN_COUNT build counts. */
static inline uint64_t ft_tile_nt(float *C, int ldt, const float *X, int ldx, const float *Yt, int hs, int nj,
                                  int ni, int diag, float fill, int nk, int nq) {
    uint64_t macs = 0;
    for (int i = 0; i < ni; i += FK_NR)
        for (int j = 0; j < nj; j += FK_MR) {
            float *c = C + (size_t)j * ldt + i;
            if (diag && j > i + FK_NR - 1) {
                for (int r = 0; r < FK_MR; r++)
                    for (int q = 0; q < FK_NR; q++) c[(size_t)r * ldt + q] = fill;
                continue;
            }
            fk_nt(c, ldt, X + (size_t)j * ldx, ldx, Yt + i, ldt, hs);
            if (j < nk && i < nq) macs += (uint64_t)ft_imin(FK_MR, nk - j) * ft_imin(FK_NR, nq - i) * hs;
        }
    return macs;
}

/* O (rows x hsp, row stride ldp) = rs O + A Z over the terms [k_lo(r), k_hi(r)) of each 6-row
 * block r: A(r, k) = A[r ars + k acs], Z (rows x hsp, row stride ldp); hsp a multiple of 16; rs
 * (per row) NULL: no scaling. Off the diagonal every block sums over [0, n). On the diagonal
 * tile the terms that are exact zeros (masked probabilities) are skipped: diag = 1, rows are
 * queries and terms keys: keys [0, min(n, r + 6)); diag = 2, rows are keys and terms queries:
 * queries [r, n). Returns the multiply-adds on the real rows (< nreal) and hs columns. */
static inline uint64_t ft_tile_acc(float *O, int ldp, int hsp, int rows, const float *rs, const float *A, int ars,
                                   int acs, const float *Z, int n, int diag, int nreal, int hs) {
    uint64_t macs = 0;
    for (int r = 0; r < rows; r += FK_MR) {
        int lo = diag == 2 ? r : 0, hi = diag == 1 ? ft_imin(n, r + FK_MR) : n;
        if (hi <= lo && !rs) continue;
        hi = hi > lo ? hi : lo;
        for (int c = 0; c < hsp; c += FK_NR)
            fk_acc(O + (size_t)r * ldp + c, ldp, rs ? rs + r : NULL, A + (size_t)r * ars + (size_t)lo * acs, ars,
                   acs, Z + (size_t)lo * ldp + c, ldp, hi - lo);
        if (r < nreal) macs += (uint64_t)ft_imin(FK_MR, nreal - r) * hs * (hi - lo);
    }
    return macs;
}

/* The counted build's record of one tile product (M x K)(K x N) that did macs multiply-adds
 * (bytes as op_count_gemm counts them). */
static inline void ft_count_tile(op_count *cnt, uint64_t macs, int M, int N, int K, int acc) {
    uint64_t m = (uint64_t)M, n = (uint64_t)N, k = (uint64_t)K;
    op_count_add(cnt, macs, 4 * (m * k + k * n + m * n * (acc ? 2 : 1)));
}

/* A diagonal tile (key k0 + j, query q0 + i, k0 <= q0): St[j][i] = -inf where key > query. */
static inline void ft_mask_diag(float *St, int ldt, int nj, int ni, int k0, int q0) {
    for (int j = 0; j < nj; j++)
        for (int i = 0; i < ni && q0 + i < k0 + j; i++) St[(size_t)j * ldt + i] = -INFINITY;
}

/* Online softmax over one score tile St (nj keys x ni queries, masked entries -inf; ni a
 * multiple of 8), 8 queries at a time. With m, l the running max and sum of each query:
 *   m' = max(m, max_j S_j);  P_j = exp(S_j - m');  l' = l e^{m-m'} + sum_j P_j;  alpha = e^{m-m'}
 * St is overwritten by P; the caller scales its accumulator rows by alpha, then adds P V. */
static inline void ft_online_softmax(float *St, int ldt, float *ml, float *l, float *alpha, int nj, int ni) {
    for (int i = 0; i < ni; i += FK_W) {
        fv8 m = fv_load(ml + i), mx = m, sum = fv_set1(0.0f);
        for (int j = 0; j < nj; j++) mx = fv_max(mx, fv_load(St + (size_t)j * ldt + i));
        for (int j = 0; j < nj; j++) {
            float *s = St + (size_t)j * ldt + i;
            fv8 p = fv_exp(fv_load(s) - mx);
            fv_store(s, p);
            sum += p;
        }
        fv8 a = fv_exp(m - mx); /* m = -inf on the first tile: alpha = 0 */
        fv_store(l + i, fv_load(l + i) * a + sum);
        fv_store(ml + i, mx);
        fv_store(alpha + i, a);
    }
}

/* The backward's P = exp(S - lse) and dS = P (dP - D) over nj keys x ni queries (8 queries a
 * vector; L, D per query): St becomes P, dPt becomes dS. */
static inline void ft_bwd_softmax(float *St, float *dPt, int ldt, const float *L, const float *D, int nj, int ni) {
    for (int i = 0; i < ni; i += FK_W) {
        fv8 Lv = fv_load(L + i), Dv = fv_load(D + i);
        for (int j = 0; j < nj; j++) {
            float *s = St + (size_t)j * ldt + i, *dp = dPt + (size_t)j * ldt + i;
            fv8 p = fv_exp(fv_load(s) - Lv);
            fv_store(s, p);
            fv_store(dp, p * (fv_load(dp) - Dv));
        }
    }
}

/* D_t = dO_t . O_t for every (b, h, t) into Dall (B, H, T): the backward's row term
 * (FlashAttention-2). An orphaned `omp for`: call it inside a parallel region. */
static inline void ft_bwd_dot(float *Dall, const float *dout, const float *out, int B, int T, int C, int H) {
    int hs = C / H;
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            float *Dv = Dall + ((size_t)b * H + h) * T;
            for (int t = 0; t < T; t++) {
                const float *x = dout + ((size_t)b * T + t) * C + h * hs;
                const float *y = out + ((size_t)b * T + t) * C + h * hs;
                float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                for (int d = 0; d < hs; d++) dot += x[d] * y[d];
                Dv[t] = dot;
            }
        }
}

#endif
