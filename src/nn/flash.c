/* flash: tiled causal attention with the online softmax (no T x T buffer), its
 * FlashAttention-2 backward, and a KV-cache decode step. See include/sattn/flash.h.
 *
 * Tile products go through nn_sgemm (oneDNN, serial inside the OpenMP region). Measured
 * against `#pragma omp simd` dot-product loops on the same tiles (S_ij = q_i.k_j as a simd
 * reduction over hs, then acc_i += p_ij v_j vectorised over hs), forward only, T = 1024,
 * hs = 64, H = 8, B = 1, 2 threads, OMP_WAIT_POLICY=passive, median of 5, shared machine:
 *   sgemm tiles 64x64: 32 ms, simd loops: 238 ms (same run);
 *   sgemm tiles 128x256: 38 and 50 ms, simd loops: 361 and 466 ms (two runs, busier machine)
 * so the tiles use sgemm, 7-10x faster (docs/flash.md has the commands). */
#include "sattn/flash.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fastmath.h"
#include "sattn/core.h"
#include "sattn/nn.h"

/* Br query rows x Bc keys per tile (a 128 x 256 score tile is 128 KiB, L2-resident, and
 * the per-tile sgemm calls are big enough to amortise their overhead). Bc is a multiple of
 * Br and tiles start at multiples of their size, so a key tile never starts past the first
 * row of a query tile that visits it. A query tile [q0, q0+nq) visits the keys [k0, k0+nk)
 * with k0 < q0 + nq and nk clipped to q0 + nq - k0: nothing wholly above the diagonal is
 * computed, and only the last key tile of each query tile needs the causal mask.
 * Tile sizes measured at T = 1024, hs = 64, H = 8, B = 1, 2 threads: flash time / nn.h's
 * naive attention time in the same run, forward and backward separately (range over 3
 * interleaved repetitions, shared machine):
 *   Br x Bc   64x64   64x128  64x256  128x128  128x256
 *   forward   1.16-1.26  0.82-0.96  0.86-0.98  0.88-1.08  0.82-0.84
 *   backward  0.98-1.33  1.04-1.30  1.11-1.19  0.92-1.13  1.06-1.08 */
enum { FL_BR = FLASH_BR, FL_BC = FLASH_BC, DEC_CHUNK = FLASH_DEC_CHUNK };

static int imin(int a, int b) { return a < b ? a : b; }

/* ------------------------------------------------------------------ forward */

/* Online softmax, one row of a score tile. s[0..nk) are the scaled scores q_t.k_{k0+j},
 * of which the first nv (keys <= t) are valid. With m, l the running max and sum:
 *   m' = max(m, max_j s_j);  p_j = exp(s_j - m') (0 if masked);  l' = l e^{m-m'} + sum_j p_j;
 *   acc *= e^{m-m'}  (the caller then adds P V).  s is overwritten by p. */
static void online_softmax_row(float *s, int nv, int nk, float *m, float *l, float *acc, int hs) {
    float mx = row_max(s, nv, *m), sum = exp_sum(s, s, nv, mx);
    for (int j = nv < 0 ? 0 : nv; j < nk; j++) s[j] = 0.0f;
    if (nv <= 0) return;
    float alpha = *m == -INFINITY ? 0.0f : fast_expf(*m - mx);
#pragma omp simd
    for (int d = 0; d < hs; d++) acc[d] *= alpha;
    *l = *l * alpha + sum;
    *m = mx;
}

/* One (b, h) query tile [q0, q0+nq): q, o, lse point at the head's row 0. For each key
 * tile [k0, k0+nk) with k0 < q0+nq:  S = scale Q_tile K_tile^T;  online softmax rows;
 * acc += P V_tile.  Finally o_t = acc_t / l_t and lse_t = m_t + log l_t. */
static void flash_fwd_tile(float *o, float *lse, const float *q, int q0, int nq, int C, int hs,
                           float *S, float *acc, float *m, float *l, op_count *cnt) {
    const float *k = q + C, *v = q + 2 * C;
    size_t ld = (size_t)3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    for (int i = 0; i < nq; i++) m[i] = -INFINITY, l[i] = 0.0f;
    memset(acc, 0, (size_t)nq * hs * sizeof(float));
    for (int k0 = 0; k0 < q0 + nq; k0 += FL_BC) {
        int nk = imin(FL_BC, q0 + nq - k0);
        nn_sgemm(0, 1, nq, nk, hs, scale, q + q0 * ld, (int)ld, k + k0 * ld, (int)ld, 0.0f, S, FL_BC);
        op_count_gemm(cnt, nq, nk, hs, 0);
        for (int i = 0; i < nq; i++)
            online_softmax_row(S + (size_t)i * FL_BC, imin(nk, q0 + i - k0 + 1), nk, &m[i], &l[i],
                               acc + (size_t)i * hs, hs);
        nn_sgemm(0, 0, nq, hs, nk, 1.0f, S, FL_BC, v + k0 * ld, (int)ld, 1.0f, acc, hs);
        op_count_gemm(cnt, nq, hs, nk, 1);
    }
    for (int i = 0; i < nq; i++) {
        float inv = 1.0f / l[i], *orow = o + (size_t)(q0 + i) * C;
        for (int d = 0; d < hs; d++) orow[d] = acc[(size_t)i * hs + d] * inv;
        lse[q0 + i] = m[i] + logf(l[i]);
    }
}

/* Parallel over (b, h, query tile), dynamic: later tiles see more keys. Each thread owns
 * its tile buffers (S: Br x Bc, acc: Br x hs, m, l: Br). */
void flash_attention_forward(float *out, float *lse, const float *qkv, int B, int T, int C, int H) {
    flash_attention_forward_counted(out, lse, qkv, B, T, C, H, NULL);
}

void flash_attention_forward_counted(float *out, float *lse, const float *qkv, int B, int T, int C,
                                     int H, op_count *cnt) {
    int hs = C / H, ntiles = (T + FL_BR - 1) / FL_BR;
#pragma omp parallel
    {
        float *S = xmalloc(sizeof(float) * ((size_t)FL_BR * FL_BC + (size_t)FL_BR * hs + 2 * FL_BR));
        float *acc = S + (size_t)FL_BR * FL_BC, *m = acc + (size_t)FL_BR * hs, *l = m + FL_BR;
#pragma omp for collapse(3) schedule(dynamic)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int t = 0; t < ntiles; t++) {
                    int q0 = t * FL_BR;
                    flash_fwd_tile(out + (size_t)b * T * C + h * hs, lse + ((size_t)b * H + h) * T,
                                   qkv + (size_t)b * T * 3 * C + h * hs, q0, imin(FL_BR, T - q0), C,
                                   hs, S, acc, m, l, cnt);
                }
        free(S);
    }
}

/* ----------------------------------------------------------------- backward */

/* How the backward is split, and why (issue 11: at B = 1 and 4 heads, 2 threads must both be
 * busy, and the result must not depend on the thread count).
 * dK_j and dV_j (key tile j) are sums over the query tiles that see j; dQ_i is a sum over the
 * key tiles that i sees. Splitting over query tiles would make dK/dV partial per query tile
 * (T/Br partials of T x hs each: O(T^2) memory); splitting over single key tiles would do the
 * same to dQ. So the split is key-tile-major in FLASH_BWD_GROUPS fixed groups: task (b, h, g)
 * owns the key tiles j = g, g + G, g + 2G, ... (round robin: tile j costs ~ T - j Bc, so the
 * groups get about equal work) and writes their dK_j, dV_j straight into dqkv, since nobody
 * else touches them. Its dQ contributions go to its own partial buffer dQ_g (B, T, C); at the
 * end dQ += dQ_0 + dQ_1 + ... in that fixed order. G = min(key tiles, FLASH_BWD_GROUPS) depends
 * only on T, never on the threads: the numbers are the same for any thread count, and the extra
 * memory is G B T C floats, linear in T. Each S, dP tile is computed once, as before (5 sgemms
 * per tile; a separate dQ pass would need 7). */
size_t flash_scratch_floats(int B, int T, int C, int H) {
    return (size_t)B * T * ((size_t)H + (size_t)FLASH_BWD_GROUPS * C);
}

/* Task (b, h, g): key tiles j = g, g+G, ... of one head. For each, for each query tile i that
 * sees it (q0 + nq > k0):
 *   P = exp(scale Q_i K_j^T - lse_i) (0 above the diagonal)
 *   dV_j += P^T dO_i;   dP = dO_i V_j^T;   dS = P * (dP - D_i)
 *   dQ_g,i += scale dS K_j;   dK_j += scale dS^T Q_i
 * dq points at the head's dQ columns of dqkv (row stride 3C), dqp at its columns of dQ_g
 * (row stride C); rows t >= g Bc of dQ_g are zeroed here first. */
static void flash_bwd_group(float *dq, float *dqp, const float *dout, const float *q,
                            const float *lse, const float *Dv, int T, int C, int hs, int g, int G,
                            float *S, float *dP) {
    const float *k = q + C, *v = q + 2 * C;
    float *dk = dq + C, *dv = dq + 2 * C;
    size_t ld = (size_t)3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    for (int t = g * FL_BC; t < T; t++) memset(dqp + (size_t)t * C, 0, (size_t)hs * sizeof(float));
    for (int k0 = g * FL_BC; k0 < T; k0 += G * FL_BC) {
        int nk = imin(FL_BC, T - k0);
        for (int q0 = k0 / FL_BR * FL_BR; q0 < T; q0 += FL_BR) {
            int nq = imin(FL_BR, T - q0), nke = imin(nk, q0 + nq - k0);
            const float *dO = dout + (size_t)q0 * C, *Q = q + q0 * ld;
            nn_sgemm(0, 1, nq, nke, hs, scale, Q, (int)ld, k + k0 * ld, (int)ld, 0.0f, S, FL_BC);
            nn_sgemm(0, 1, nq, nke, hs, 1.0f, dO, C, v + k0 * ld, (int)ld, 0.0f, dP, FL_BC);
            for (int i = 0; i < nq; i++) {
                float *p = S + (size_t)i * FL_BC, *dp = dP + (size_t)i * FL_BC;
                float L = lse[q0 + i], Dt = Dv[q0 + i];
                int nv = imin(nke, q0 + i - k0 + 1);
#pragma omp simd
                for (int j = 0; j < nke; j++) {
                    float pj = j < nv ? fast_expf(p[j] - L) : 0.0f;
                    p[j] = pj;
                    dp[j] = pj * (dp[j] - Dt);
                }
            }
            nn_sgemm(1, 0, nke, hs, nq, 1.0f, S, FL_BC, dO, C, 1.0f, dv + k0 * ld, (int)ld);
            nn_sgemm(0, 0, nq, hs, nke, scale, dP, FL_BC, k + k0 * ld, (int)ld, 1.0f, dqp + (size_t)q0 * C, C);
            nn_sgemm(1, 0, nke, hs, nq, scale, dP, FL_BC, Q, (int)ld, 1.0f, dk + k0 * ld, (int)ld);
        }
    }
}

/* D_t = dO_t . O_t per (b, h); then the (b, h, key-tile group) tasks (see above); then the
 * fixed-order dQ reduction, parallel over rows. Each thread owns its S and dP tiles. */
void flash_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                              const float *lse, int B, int T, int C, int H, float *scratch) {
    int hs = C / H, nkt = (T + FL_BC - 1) / FL_BC, G = imin(nkt, FLASH_BWD_GROUPS);
    float *Dall = scratch, *dqp = scratch + (size_t)B * H * T;
    size_t gstride = (size_t)B * T * C;
#pragma omp parallel
    {
        float *S = xmalloc(sizeof(float) * 2 * (size_t)FL_BR * FL_BC), *dP = S + (size_t)FL_BR * FL_BC;
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
#pragma omp for collapse(3) schedule(dynamic)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int g = 0; g < G; g++) {
                    size_t bh = (size_t)b * H + h, row = (size_t)b * T * 3 * C + h * hs;
                    size_t orow = (size_t)b * T * C + h * hs;
                    flash_bwd_group(dqkv + row, dqp + g * gstride + orow, dout + orow, qkv + row,
                                    lse + bh * T, Dall + bh * T, T, C, hs, g, G, S, dP);
                }
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                float *dst = dqkv + ((size_t)b * T + t) * 3 * C;
                const float *p0 = dqp + ((size_t)b * T + t) * C;
                int ng = imin(G, t / FL_BC + 1); /* dQ_g has rows t >= g Bc only */
                for (int c = 0; c < C; c++) {
                    float sum = p0[c];
                    for (int g = 1; g < ng; g++) sum += p0[g * gstride + c];
                    dst[c] += sum;
                }
            }
        free(S);
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
                             vcache + h * hs, c * DEC_CHUNK, imin(T, (c + 1) * DEC_CHUNK), C, hs, cnt);
    for (int h = 0; h < H; h++)
        if (!skip || !skip[h]) decode_merge(out + h * hs, parts + (size_t)h * nch * stride, nch, hs);
    free(parts);
}
