/* flash: tiled causal attention with the online softmax (no T x T buffer), its
 * FlashAttention-2 backward, and a KV-cache decode step. See include/sattn/flash.h.
 *
 * The tile products are register-blocked micro-kernels (flash_kern.h: 6 x 16 blocks, AVX2 +
 * FMA through GCC vector extensions, a portable lowering elsewhere) on packed tiles:
 *   Qt, dOt  (hs x Br)  queries contiguous, scaled Q (scale = 1/sqrt(hs) folded in);
 *   Kp, Vp   (Bc x hsp) keys by rows, head dims padded with zeros to hsp (a multiple of 16);
 *   Qn, dOn  (Br x hsp) the same for the queries;
 *   St, dPt  (Bc x Br)  scores transposed: row j = key, queries contiguous, so the softmax
 *                       statistics of 8 queries are one vector (max, exp, sums vectorise).
 * So S^T = Kp Qt (fk_nt) and every other product is fk_acc with the right strides (the
 * packing, tile products and softmax passes live in flash_tile.h, shared with the tile-shared
 * block-sparse kernels of src/sparse/tblock.c; here the tile width is FL_T). Padding
 * rows and columns are zeros and padded queries get lse = +inf in the backward, so they add
 * exact zeros; padded keys sit above the diagonal and are masked.
 * Measured before (nn_sgemm per tile, 128 x 256 tiles) and after: docs/flash.md. */
#include "sattn/flash.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fastmath.h"
#include "flash_tile.h"
#include "sattn/core.h"
#include "sattn/nn.h"

/* Square tiles (Br = Bc), a multiple of both the 6-row and the 16-column block, so a tile is
 * whole micro-blocks and a key tile never starts past the first row of a query tile that sees
 * it: only the diagonal tile needs the causal mask. 96 keeps a tile's working set (K, V 24 KiB,
 * S^T 36 KiB at hs = 64) in L2 and the diagonal's masked half small (docs/flash.md has the
 * sizes measured). */
enum { FL_T = FLASH_BR, DEC_CHUNK = FLASH_DEC_CHUNK };
_Static_assert(FLASH_BR == FLASH_BC && FLASH_BR % 48 == 0, "flash tiles: square, whole 6 x 16 blocks");

/* ------------------------------------------------------------------ forward */

/* A thread's forward buffers. Kp, Vp hold the packed K and V of one head, (b, h) = head, rows
 * [0, npacked): consecutive tasks of a thread are mostly query tiles of the same head (the tasks
 * go out in order), so each head's keys are packed about once per thread instead of once per
 * query tile (at T = 4096 that copy, from rows 3C floats apart, was an eighth of the time). */
typedef struct {
    float *Qt, *Kp, *Vp, *St, *O, *m, *l, *alpha;
    int hs, hsp, ldp;
    long head;
    int npacked;
} fwd_buf;

static fwd_buf fwd_buf_make(int hs, int T) {
    fwd_buf b = {.hs = hs, .hsp = ft_round_up(hs, FK_NR), .ldp = ft_row_stride(hs), .head = -1};
    size_t t = FL_T, tp = (size_t)ft_round_up(T, FL_T), n = t * hs + 2 * tp * b.ldp + t * t + t * b.ldp + 3 * t;
    b.Qt = xmalloc_aligned(n * sizeof(float));
    b.Kp = b.Qt + t * hs, b.Vp = b.Kp + tp * b.ldp, b.St = b.Vp + tp * b.ldp, b.O = b.St + t * t;
    b.m = b.O + t * b.ldp, b.l = b.m + t, b.alpha = b.l + t;
    return b;
}

/* Packs the keys and values of head `head` (k, v: its row 0, row stride ld) up to row `upto`
 * (rows past T: zeros), unless packed already. */
static void fwd_pack_kv(fwd_buf *b, long head, const float *k, const float *v, size_t ld, int T, int upto) {
    if (b->head != head) b->head = head, b->npacked = 0;
    if (upto <= b->npacked) return;
    int r0 = b->npacked, n = ft_imin(upto, T) - r0;
    ft_pack_rows(b->Kp + (size_t)r0 * b->ldp, b->ldp, upto - r0, k + r0 * ld, ld, n, b->hs, 1.0f);
    ft_pack_rows(b->Vp + (size_t)r0 * b->ldp, b->ldp, upto - r0, v + r0 * ld, ld, n, b->hs, 1.0f);
    b->npacked = upto;
}

/* One (b, h) query tile [q0, q0+nq): q, o, lse point at the head's row 0. For each key tile
 * [k0, k0+nk) with k0 < q0+nq:  S^T = K_tile (scale Q_tile)^T;  online softmax per query;
 * O = alpha O + P V_tile.  Finally o_t = O_t / l_t and lse_t = m_t + log l_t. */
static void flash_fwd_tile(float *o, float *lse, const float *q, int q0, int nq, int C, fwd_buf *b, op_count *cnt) {
    size_t ld = (size_t)3 * C;
    int hs = b->hs, hsp = b->hsp, ldp = b->ldp, nr = ft_round_up(nq, FK_MR), ni = ft_round_up(nr, FK_NR);
    ft_pack_cols(b->Qt, FL_T, q + q0 * ld, ld, nq, hs, 1.0f / sqrtf((float)hs));
    memset(b->O, 0, sizeof(float) * FL_T * ldp);
    for (int i = 0; i < FL_T; i++) b->m[i] = -INFINITY, b->l[i] = 0.0f;
    for (int k0 = 0; k0 < q0 + nq; k0 += FL_T) {
        int nk = ft_imin(FL_T, q0 + nq - k0), nj = ft_round_up(nk, FK_MR);
        const float *Kp = b->Kp + (size_t)k0 * ldp, *Vp = b->Vp + (size_t)k0 * ldp;
        int diag = k0 == q0;
        ft_count_tile(cnt, ft_tile_nt(b->St, FL_T, Kp, ldp, b->Qt, hs, nj, ni, diag, -INFINITY, nk, nq), nq, nk, hs, 0);
        if (diag) ft_mask_diag(b->St, FL_T, nj, ni, k0, q0);
        ft_online_softmax(b->St, FL_T, b->m, b->l, b->alpha, nj, ni);
        ft_count_tile(cnt, ft_tile_acc(b->O, ldp, hsp, nr, b->alpha, b->St, 1, FL_T, Vp, nk, diag, nq, hs), nq, hs, nk, 1);
    }
    for (int i = 0; i < nq; i++) {
        float inv = 1.0f / b->l[i], *orow = o + (size_t)(q0 + i) * C;
        for (int d = 0; d < hs; d++) orow[d] = b->O[(size_t)i * ldp + d] * inv;
        lse[q0 + i] = b->m[i] + logf(b->l[i]);
    }
}

/* Parallel over (b, h, query tile), dynamic: later tiles see more keys. Each thread owns its
 * tile buffers. */
void flash_attention_forward(float *out, float *lse, const float *qkv, int B, int T, int C, int H) {
    flash_attention_forward_counted(out, lse, qkv, B, T, C, H, NULL);
}

void flash_attention_forward_counted(float *out, float *lse, const float *qkv, int B, int T, int C,
                                     int H, op_count *cnt) {
    int hs = C / H, ntiles = (T + FL_T - 1) / FL_T;
#pragma omp parallel
    {
        fwd_buf b = fwd_buf_make(hs, T);
#pragma omp for collapse(3) schedule(dynamic)
        for (int bb = 0; bb < B; bb++)
            for (int h = 0; h < H; h++)
                for (int t = ntiles - 1; t >= 0; t--) { /* the largest tiles first */
                    int q0 = t * FL_T, nq = ft_imin(FL_T, T - q0);
                    const float *q = qkv + (size_t)bb * T * 3 * C + h * hs;
                    /* packed, even where no padding is needed: read in place, rows 3C floats
                     * apart fall into two L1 sets at C = 512 and the products run at half speed */
                    fwd_pack_kv(&b, (long)bb * H + h, q + C, q + 2 * C, (size_t)3 * C, T, q0 + ft_round_up(nq, FK_MR));
                    flash_fwd_tile(out + (size_t)bb * T * C + h * hs, lse + ((size_t)bb * H + h) * T, q, q0, nq, C,
                                   &b, cnt);
                }
        free(b.Qt);
    }
}

/* ----------------------------------------------------------------- backward */

/* How the backward is split, and why (issue 11: at B = 1 and 4 heads, 2 threads must both be
 * busy, and the result must not depend on the thread count).
 * dK_j and dV_j (key tile j) are sums over the query tiles that see j; dQ_i is a sum over the
 * key tiles that i sees. Splitting over query tiles would make dK/dV partial per query tile
 * (T/Br partials of T x hs each: O(T^2) memory); splitting over single key tiles would do the
 * same to dQ. So the split is key-tile-major in FLASH_BWD_GROUPS fixed groups: task (b, h, g)
 * owns key tiles dealt out as 0 1 2 3 3 2 1 0 0 1 2 ... (tile j costs ~ T - j Bc, so the snake
 * order gives the groups about equal work; group g's first tile is g). It accumulates their dK,
 * dV in its own buffers and adds them into dqkv at the end, since nobody else touches them. Its
 * dQ contributions go to its own partial buffer dQ_g (B, T, C), rows t >= g Bc; at the end
 * dQ += dQ_0 + dQ_1 + ... in that fixed order. G (bwd_groups) depends only on B, H and T,
 * never on the threads: the numbers are the same for any thread count, and the extra memory
 * is at most FLASH_BWD_GROUPS B T C floats, linear in T. Within a task the query tiles are the
 * outer loop, so each is packed once; each S, dP tile is computed once (5 products a pair).
 * G is only as large as parallelism needs: at least 8 tasks (B H G >= 8, so 2 threads stay busy
 * with dynamic scheduling), at most FLASH_BWD_GROUPS and the key tiles. With G = 1 (B H >= 8) a
 * task owns the whole head: dQ goes straight into dqkv, no partials, no reduction, and each
 * query tile is packed once instead of G times (at T = 1024, C = 512, H = 8 about 8 % of the
 * backward). */
size_t flash_scratch_floats(int B, int T, int C, int H) {
    return (size_t)B * T * ((size_t)H + (size_t)FLASH_BWD_GROUPS * C);
}

static int bwd_groups(int B, int H, int T) {
    int nkt = (T + FL_T - 1) / FL_T, bh = B * H, want = bh >= 8 ? 1 : (8 + bh - 1) / bh;
    return ft_imin(want, ft_imin(nkt, FLASH_BWD_GROUPS));
}

/* Group of key tile j among G (the snake order above). */
static int bwd_group(int j, int G) {
    int r = j % (2 * G);
    return r < G ? r : 2 * G - 1 - r;
}

typedef struct {
    float *Kp, *Vp, *dK, *dV;           /* the owned key tiles, FL_T x hsp each, in order */
    float *Qt, *dOt, *Qn, *dOn, *dQ;    /* the current query tile */
    float *St, *dPt, *L, *D;            /* scores, dP; lse and D of the query tile */
    int hs, hsp, ldp, maxown;
} bwd_buf;

static bwd_buf bwd_buf_make(int hs, int T, int G) {
    bwd_buf b = {.hs = hs, .hsp = ft_round_up(hs, FK_NR), .ldp = ft_row_stride(hs)};
    int nkt = (T + FL_T - 1) / FL_T;
    b.maxown = (nkt + G - 1) / G + 1;
    size_t t = FL_T, own = (size_t)b.maxown * t * b.ldp;
    size_t n = 4 * own + 2 * t * hs + 3 * t * b.ldp + 2 * t * t + 2 * t;
    b.Kp = xmalloc_aligned(n * sizeof(float));
    b.Vp = b.Kp + own, b.dK = b.Vp + own, b.dV = b.dK + own;
    b.Qt = b.dV + own, b.dOt = b.Qt + t * hs, b.Qn = b.dOt + t * hs, b.dOn = b.Qn + t * b.ldp;
    b.dQ = b.dOn + t * b.ldp, b.St = b.dQ + t * b.ldp, b.dPt = b.St + t * t, b.L = b.dPt + t * t;
    b.D = b.L + t;
    return b;
}

/* Views of one head: q (row stride 3C; k, v at +C, +2C), dout (stride C), lse and D (stride 1). */
typedef struct {
    const float *q, *dout, *lse, *D;
    float *dq, *dqp; /* the head's dQ columns of dqkv (stride 3C), of dQ_g (stride C) */
    int T, C;
} bwd_head;

/* Packs query tile [q0, q0+nq): scale Q^T, dO^T, and Q, dO padded to hsp columns; lse (+inf past nq, so P = 0 there) and D (0 past nq); zeroes its dQ. */
static void bwd_pack_query(bwd_buf *b, const bwd_head *hd, int q0, int nq) {
    size_t ld = (size_t)3 * hd->C;
    float scale = 1.0f / sqrtf((float)b->hs);
    const float *Q = hd->q + q0 * ld, *dO = hd->dout + (size_t)q0 * hd->C;
    ft_pack_cols(b->Qt, FL_T, Q, ld, nq, b->hs, scale);
    ft_pack_cols(b->dOt, FL_T, dO, hd->C, nq, b->hs, 1.0f);
    ft_pack_rows(b->Qn, b->ldp, nq, Q, ld, nq, b->hs, 1.0f); /* packed: see flash_fwd_tile */
    ft_pack_rows(b->dOn, b->ldp, nq, dO, hd->C, nq, b->hs, 1.0f);
    for (int i = 0; i < FL_T; i++) {
        b->L[i] = i < nq ? hd->lse[q0 + i] : INFINITY;
        b->D[i] = i < nq ? hd->D[q0 + i] : 0.0f;
    }
    memset(b->dQ, 0, sizeof(float) * FL_T * b->ldp);
}

/* One tile pair: owned key tile o (keys [k0, k0+nk)) against the packed query tile [q0, q0+nq):
 *   S^T = K (scale Q)^T;  dP^T = V dO^T;  P = exp(S - lse) (0 above the diagonal);
 *   dS = P (dP - D);  dV += P^T dO;  dK += dS^T Q;  dQ += dS K   (dK, dQ scaled when stored). */
static void bwd_pair(bwd_buf *b, int o, int k0, int nk, int q0, int nq) {
    int hs = b->hs, hsp = b->hsp, ldp = b->ldp, nj = ft_round_up(nk, FK_MR), ni = ft_round_up(ft_round_up(nq, FK_MR), FK_NR);
    size_t off = (size_t)o * FL_T * ldp;
    int diag = k0 == q0;
    ft_tile_nt(b->St, FL_T, b->Kp + off, ldp, b->Qt, hs, nj, ni, diag, -INFINITY, nk, nq);
    ft_tile_nt(b->dPt, FL_T, b->Vp + off, ldp, b->dOt, hs, nj, ni, diag, 0.0f, nk, nq);
    if (diag) ft_mask_diag(b->St, FL_T, nj, ni, k0, q0);
    ft_bwd_softmax(b->St, b->dPt, FL_T, b->L, b->D, nj, ni);
    ft_tile_acc(b->dV + off, ldp, hsp, nj, NULL, b->St, FL_T, 1, b->dOn, nq, 2 * diag, nk, hs);
    ft_tile_acc(b->dK + off, ldp, hsp, nj, NULL, b->dPt, FL_T, 1, b->Qn, nq, 2 * diag, nk, hs);
    ft_tile_acc(b->dQ, ldp, hsp, ft_round_up(nq, FK_MR), NULL, b->dPt, 1, FL_T, b->Kp + off, nk, diag, nq, hs);
}

/* Task (b, h, g): packs its key tiles, then for each query tile from tile g on, the pairs with
 * the owned key tiles it sees; stores scale dQ into dQ_g, then adds dK, dV into dqkv. */
static void flash_bwd_group(bwd_buf *b, const bwd_head *hd, int g, int G) {
    size_t ld = (size_t)3 * hd->C;
    int T = hd->T, hs = b->hs, ldp = b->ldp, nkt = (T + FL_T - 1) / FL_T, nown = 0;
    float scale = 1.0f / sqrtf((float)hs);
    for (int j = g; j < nkt; j++) {
        if (bwd_group(j, G) != g) continue;
        size_t off = (size_t)nown++ * FL_T * ldp;
        int k0 = j * FL_T, nk = ft_imin(FL_T, T - k0);
        ft_pack_rows(b->Kp + off, ldp, FL_T, hd->q + hd->C + k0 * ld, ld, nk, hs, 1.0f);
        ft_pack_rows(b->Vp + off, ldp, FL_T, hd->q + 2 * hd->C + k0 * ld, ld, nk, hs, 1.0f);
    }
    memset(b->dK, 0, sizeof(float) * nown * FL_T * ldp);
    memset(b->dV, 0, sizeof(float) * nown * FL_T * ldp);
    for (int qt = g; qt < nkt; qt++) {
        int q0 = qt * FL_T, nq = ft_imin(FL_T, T - q0);
        bwd_pack_query(b, hd, q0, nq);
        for (int j = g, o = 0; j <= qt; j++)
            if (bwd_group(j, G) == g) bwd_pair(b, o++, j * FL_T, ft_imin(FL_T, T - j * FL_T), q0, nq);
        for (int i = 0; i < nq; i++) {
            const float *src = b->dQ + (size_t)i * ldp;
            if (G == 1) fk_add(hd->dq + (q0 + i) * ld, src, hs, scale); /* the only writer of these rows */
            else fk_copy(hd->dqp + (size_t)(q0 + i) * hd->C, src, hs, scale);
        }
    }
    for (int j = g, o = 0; j < nkt; j++) {
        if (bwd_group(j, G) != g) continue;
        size_t off = (size_t)o++ * FL_T * ldp;
        for (int i = 0, k0 = j * FL_T; i < ft_imin(FL_T, T - k0); i++) {
            fk_add(hd->dq + (k0 + i) * ld + hd->C, b->dK + off + (size_t)i * ldp, hs, scale);
            fk_add(hd->dq + (k0 + i) * ld + 2 * hd->C, b->dV + off + (size_t)i * ldp, hs, 1.0f);
        }
    }
}

/* dQ += dQ_0 + dQ_1 + ... (fixed order), parallel over rows. */
static void bwd_reduce_dq(float *dqkv, const float *dqp, int B, int T, int C, int G) {
    size_t gstride = (size_t)B * T * C;
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *dst = dqkv + ((size_t)b * T + t) * 3 * C;
            const float *p0 = dqp + ((size_t)b * T + t) * C;
            int ng = ft_imin(G, t / FL_T + 1), c = 0; /* dQ_g has rows t >= g Bc only */
            for (; c + FK_W <= C; c += FK_W) {
                fv8 sum = fv_load(p0 + c);
                for (int g = 1; g < ng; g++) sum += fv_load(p0 + g * gstride + c);
                fv_store(dst + c, fv_load(dst + c) + sum);
            }
            for (; c < C; c++) {
                float sum = p0[c];
                for (int g = 1; g < ng; g++) sum += p0[g * gstride + c];
                dst[c] += sum;
            }
        }
}

/* D per (b, h); then the (b, h, key-tile group) tasks (see above); then the fixed-order dQ
 * reduction. Each thread owns its tile buffers. */
void flash_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                              const float *lse, int B, int T, int C, int H, float *scratch) {
    int hs = C / H, G = bwd_groups(B, H, T);
    float *Dall = scratch, *dqp = scratch + (size_t)B * H * T;
    size_t gstride = (size_t)B * T * C;
#pragma omp parallel
    {
        bwd_buf buf = bwd_buf_make(hs, T, G);
        ft_bwd_dot(Dall, dout, out, B, T, C, H);
#pragma omp for collapse(3) schedule(dynamic)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int g = 0; g < G; g++) {
                    size_t bh = (size_t)b * H + h, row = (size_t)b * T * 3 * C + h * hs;
                    size_t orow = (size_t)b * T * C + h * hs;
                    bwd_head hd = {qkv + row, dout + orow, lse + bh * T, Dall + bh * T, dqkv + row,
                                   dqp + g * gstride + orow, T, C};
                    flash_bwd_group(&buf, &hd, g, G);
                }
        if (G > 1) bwd_reduce_dq(dqkv, dqp, B, T, C, G);
        free(buf.Kp);
    }
}

/* ------------------------------------------------------------------- decode */

/* One head, keys [j0, j1): s_j = scale q.k_j, m = max s, l = sum e^{s_j - m},
 * acc = sum e^{s_j - m} v_j.  part = [m, l, acc(hs)]. Both products are 1-row sgemms
 * (at T = 256, C = 512, H = 8: 33 us vs 55 us for simd dot-product loops; at T = 4096 both
 * ~1.6 ms, reading the 16 MiB cache at ~10 GB/s: memory-bound). */
static void decode_chunk(float *part, const float *q, const float *kc, const float *vc, int j0,
                         int j1, int C, int hs, op_count *cnt) {
    float s[DEC_CHUNK], scale = 1.0f / sqrtf((float)hs), mx = -INFINITY, sum = 0.0f;
    int n = j1 - j0;
    nn_sgemm(0, 1, 1, n, hs, scale, q, hs, kc + (size_t)j0 * C, C, 0.0f, s, n);
    op_count_gemm(cnt, 1, n, hs, 0);
    for (int j = 0; j < n; j++) mx = s[j] > mx ? s[j] : mx;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < n; j++) {
        s[j] = fast_expf(s[j] - mx);
        sum += s[j];
    }
    nn_sgemm(0, 0, 1, hs, n, 1.0f, s, n, vc + (size_t)j0 * C, C, 0.0f, part + 2, hs);
    op_count_gemm(cnt, 1, hs, n, 0);
    part[0] = mx, part[1] = sum;
}

/* Merge of chunk partials c: M = max m_c;  out = sum_c e^{m_c - M} acc_c / sum_c e^{m_c - M} l_c. */
static void decode_merge(float *o, const float *parts, int nch, int hs) {
    size_t stride = (size_t)hs + 2;
    float M = -INFINITY, L = 0.0f;
    for (int c = 0; c < nch; c++) M = parts[c * stride] > M ? parts[c * stride] : M;
    memset(o, 0, (size_t)hs * sizeof(float));
    for (int c = 0; c < nch; c++) {
        const float *p = parts + c * stride;
        float w = fast_expf(p[0] - M);
        L += w * p[1];
        for (int d = 0; d < hs; d++) o[d] += w * p[2 + d];
    }
    for (int d = 0; d < hs; d++) o[d] /= L;
}

void attention_decode_step(float *out, const float *q, const float *kcache, const float *vcache,
                           int T, int C, int H) {
    attention_decode_step_counted(out, q, kcache, vcache, T, C, H, NULL);
}

void attention_decode_step_counted(float *out, const float *q, const float *kcache,
                                   const float *vcache, int T, int C, int H, op_count *cnt) {
    attention_decode_step_skip(out, q, kcache, vcache, T, C, H, NULL, cnt);
}

void attention_decode_step_skip(float *out, const float *q, const float *kcache, const float *vcache,
                                int T, int C, int H, const unsigned char *skip, op_count *cnt) {
    int hs = C / H, nch = (T + DEC_CHUNK - 1) / DEC_CHUNK;
    size_t stride = (size_t)hs + 2;
    float *parts = xmalloc(sizeof(float) * (size_t)H * nch * stride);
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)H * T * hs > 32768)
    for (int h = 0; h < H; h++)
        for (int c = 0; c < nch; c++)
            if (!skip || !skip[h])
                decode_chunk(parts + ((size_t)h * nch + c) * stride, q + h * hs, kcache + h * hs,
                             vcache + h * hs, c * DEC_CHUNK, ft_imin(T, (c + 1) * DEC_CHUNK), C, hs, cnt);
    for (int h = 0; h < H; h++)
        if (!skip || !skip[h]) decode_merge(out + h * hs, parts + (size_t)h * nch * stride, nch, hs);
    free(parts);
}
