/* attn.cu: the CUDA kernels of include/sattn/cuda_attn.h and their host wrappers.
 * Design, kernel by kernel, and the parity rule: docs/cuda.md. Kept C-like: the only
 * C++ used is templates over the padded head dim DM (64 or 128) and the mode. The
 * same source compiles for the GPU (nvcc) and for the CPU emulation (g++ -DSA_EMU). */
#include "sa_dev.h"

#include <float.h>
#include <math.h>
#include <string.h>

#ifndef _Noreturn
#define _Noreturn [[noreturn]] /* core.h is C11 */
#endif
#include "sattn/cuda_attn.h"

/* ------------------------------------------------------------- dense flash ---- */

/* One block: a tile of 64 queries of one (b, h), 128 threads (sa_dev.h's tile convention):
 *   S = (Q log2(e)/sqrt(d)) K^T per 64 x 64 key tile, causal mask, online softmax in base 2,
 *   O = sum_tiles P V / L,  lse = (m + log2 L) ln 2.
 * Shared: Q (pre-scaled), K, V tiles [64][DM+4] and P [64][68]; key tiles are visited up to
 * the diagonal only, longest query tiles first. */
template <int DM>
__global__ void __launch_bounds__(128) k_flash_fwd(float *out, float *lse, const float *qkv, int T,
                                                   int C, int H, float qscale) {
    SA_DYN_SMEM(smraw);
    const int DP = DM + 4;
    float *Qs = (float *)smraw, *Ks = Qs + FL_T * DP, *Vs = Ks + FL_T * DP, *Ps = Vs + FL_T * DP;
    const int d = C / H, nqt = (T + FL_T - 1) / FL_T;
    const int qt = nqt - 1 - (int)blockIdx.x, h = blockIdx.y, b = blockIdx.z; /* longest first */
    const int q0 = qt * FL_T, tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
    const size_t ld = (size_t)3 * C;
    const float *base = qkv + (size_t)b * T * ld + (size_t)h * d;
    tl_load<DM>(Qs, base, ld, q0, T, d, qscale, tid);
    fl_state<DM> f;
    fl_init<DM>(f);
    for (int kt = 0; kt <= qt; kt++) {
        const int k0 = kt * FL_T;
        __syncthreads(); /* the previous tile's K, V, P are no longer read */
        tl_load<DM>(Ks, base + C, ld, k0, T, d, 1.0f, tid);
        tl_load<DM>(Vs, base + 2 * C, ld, k0, T, d, 1.0f, tid);
        __syncthreads();
        float s[8][4];
        tl_dot<DM>(s, Qs, Ks, ty, tx);
        fl_softmax<DM>(f, s, Ps, q0, k0, T, ty, tx);
        __syncthreads();
        tl_acc<DM>(f.acc, Ps, Vs, ty, tx);
    }
    fl_store<DM>(f, out + (size_t)b * T * C + (size_t)h * d, C, lse + ((size_t)b * H + h) * T, q0, T, d, ty, tx);
}

/* ------------------------------------------------------------ dense decode ---- */

/* The end of the split kernels (k_decode_split, k_gather_softmax_split), after a
 * __syncthreads: the block's 4 warp states (wm[w] and wl[w] warp w's max and sum, wacc +
 * w * DM its accumulator) merged under the block's max into the block's partial
 * pp = [M, L, acc(d)], which k_decode_merge combines over the splits. */
template <int DM>
__device__ __forceinline__ void block_partial(float *pp, const float *wm, const float *wl, const float *wacc,
                                              int d, int tid) {
    float M = NEG_INF;
    for (int w = 0; w < 4; w++) M = fmaxf(M, wm[w]);
    for (int c = tid; c < d; c += 128) {
        float o = 0.0f;
        for (int w = 0; w < 4; w++)
            if (wm[w] != NEG_INF) o += expf(wm[w] - M) * wacc[w * DM + c];
        pp[2 + c] = o;
    }
    if (tid == 0) {
        float Ls = 0.0f;
        for (int w = 0; w < 4; w++)
            if (wm[w] != NEG_INF) Ls += expf(wm[w] - M) * wl[w];
        pp[0] = M, pp[1] = Ls;
    }
}

/* Split-K: block (split, h) takes keys [split*512, +512), 4 warps taking 32-key
 * subtiles in turn. A warp stages its 32 K rows in shared memory (coalesced), each
 * lane scores one key, the warp keeps one online-softmax state (m, l) and each lane
 * accumulates the output dims lane + 32e, reading V rows coalesced. The block merges
 * its warps into part = [m, l, acc(d)]; k_decode_merge merges the splits.
 * (long: the warp loop and the block merge share registers and shared memory.) */
#define DEC_CHUNK 512
template <int DM>
__global__ void __launch_bounds__(128) k_decode_split(float *part, const float *q, const float *kc,
                                                      const float *vc, int T, int C, int H, float scale) {
    SA_DYN_SMEM(smraw);
    const int KP = DM + 1, NE = DM / 32;
    const int d = C / H, h = blockIdx.y, split = blockIdx.x, nsplit = gridDim.x;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    float *Kt = (float *)smraw + warp * 32 * KP;
    float *wm = (float *)smraw + 4 * 32 * KP, *wl = wm + 4, *wacc = wl + 4;
    const int s_begin = split * DEC_CHUNK, s_end = min(T, s_begin + DEC_CHUNK);
    const float *kh = kc + (size_t)h * d, *vh = vc + (size_t)h * d;
    float qr[DM], acc[NE], m = NEG_INF, lp = 0.0f;
    for (int i = 0; i < DM; i++) qr[i] = i < d ? q[(size_t)h * d + i] * scale : 0.0f;
    for (int e = 0; e < NE; e++) acc[e] = 0.0f;
    for (int s0 = s_begin + warp * 32; s0 < s_end; s0 += 128) {
        for (int r = 0; r < 32; r++) {
            int t = s0 + r;
            for (int e = 0; e < NE; e++) {
                int c = lane + 32 * e;
                Kt[r * KP + c] = (t < s_end && c < d) ? kh[(size_t)t * C + c] : 0.0f;
            }
        }
        __syncwarp();
        float sc = 0.0f;
        for (int i = 0; i < DM; i++) sc = fmaf(qr[i], Kt[lane * KP + i], sc);
        if (s0 + lane >= s_end) sc = NEG_INF;
        const float mnew = fmaxf(m, warp_max<32>(sc)); /* finite: lane 0's key exists */
        const float alpha = expf(m - mnew), p = expf(sc - mnew);
        lp = lp * alpha + p;
        m = mnew;
        for (int e = 0; e < NE; e++) acc[e] *= alpha;
        for (int j = 0; j < 32; j++) {
            const float pj = __shfl_sync(FULL, p, j);
            const int t = s0 + j;
            if (t >= s_end) continue;
            for (int e = 0; e < NE; e++) {
                int c = lane + 32 * e;
                if (c < d) acc[e] = fmaf(pj, vh[(size_t)t * C + c], acc[e]);
            }
        }
        __syncwarp();
    }
    const float L = warp_sum<32>(lp);
    if (lane == 0) wm[warp] = m, wl[warp] = L;
    for (int e = 0; e < NE; e++) wacc[warp * DM + lane + 32 * e] = acc[e];
    __syncthreads();
    block_partial<DM>(part + ((size_t)h * nsplit + split) * (d + 2), wm, wl, wacc, d, tid);
}

__global__ void __launch_bounds__(128) k_decode_merge(float *out, const float *part, int nsplit, int d) {
    const int h = blockIdx.x;
    const float *ph = part + (size_t)h * nsplit * (d + 2);
    float M = NEG_INF;
    for (int s = 0; s < nsplit; s++) M = fmaxf(M, ph[(size_t)s * (d + 2)]);
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float o = 0.0f, L = 0.0f;
        for (int s = 0; s < nsplit; s++) {
            const float *p = ph + (size_t)s * (d + 2);
            float w = expf(p[0] - M);
            o += w * p[2 + c], L += w * p[1];
        }
        out[(size_t)h * d + c] = o / L;
    }
}

static size_t decode_smem(int DM) { return (size_t)(4 * 32 * (DM + 1) + 8 + 4 * DM) * sizeof(float); }

/* ------------------------------------------------------- selector: projections ---- */

/* out[h][e] for e = row * nout + o:  x_row . W[o] (+ bias[o]), row-major W (nout, d) at
 * params + h*np + w_off; x rows at x + h*d + row*ldx. */
__global__ void __launch_bounds__(256) k_proj(float *out, size_t out_head, int nout, const float *x,
                                              int ldx, int nrows, int d, const float *params,
                                              size_t np, size_t w_off, long b_off) {
    const int h = blockIdx.y;
    const size_t e = (size_t)blockIdx.x * 256 + threadIdx.x;
    if (e >= (size_t)nrows * nout) return;
    const int row = (int)(e / nout), o = (int)(e % nout);
    const float *xr = x + (size_t)h * d + (size_t)row * ldx, *w = params + h * np + w_off + (size_t)o * d;
    float acc = 0.0f;
    for (int i = 0; i < d; i++) acc = fmaf(xr[i], w[i], acc);
    if (b_off >= 0) acc += params[h * np + (size_t)b_off + o];
    out[h * out_head + e] = acc;
}

/* Block summaries of the nb complete blocks of b keys: mean key (m += k / b in key
 * order, exactly the CPU's arithmetic) or [lo | hi]; sum (H, nb, 2d). */
__global__ void __launch_bounds__(128) k_summaries(float *sum, const float *k, int ldk, int d, int nb,
                                                   int b, int bounds) {
    const int j = blockIdx.x, h = blockIdx.y;
    const float *kh = k + (size_t)h * d;
    float *o = sum + ((size_t)h * nb + j) * 2 * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float m = bounds ? INFINITY : 0.0f, hi = NEG_INF;
        for (int u = j * b; u < (j + 1) * b; u++) {
            float x = kh[(size_t)u * ldk + i];
            if (bounds) m = x < m ? x : m, hi = x > hi ? x : hi;
            else m += x / (float)b;
        }
        o[i] = m, o[d + i] = hi;
    }
}

/* ------------------------------------------------- selector: score tiles (prefill) ---- */

/* A 64 x 64 tile of selector scores for query rows row0 + i (position = row), columns
 * c (keys for index, complete blocks for block), 256 threads, thread (ty, tx) owning rows
 * ty*4 .. +3 and columns tx + 16j:
 *   INDEX  S = sum_j w_j relu(qt_j . kt_c / sqrt(r))   (A = qt, B = kt, W = w)
 *   BMEAN  S = q . mean_c                               (A = q rows, B = summaries)
 *   BBOUND S = sum_i max(q_i lo_ci, q_i hi_ci)
 * Columns past a row's causal length are computed for whole tiles but never read;
 * tiles wholly past the longest row are skipped. S (H, nrows_alloc, ldS).
 * (long: three scoring modes share the tile loads; split, each would reload them.) */
enum { SC_INDEX = 0, SC_BMEAN = 1, SC_BBOUND = 2 };
#define SC_KC 32
template <int MODE>
__global__ void __launch_bounds__(256) k_scores(float *S, int ldS, size_t s_head, int nrows, int row0,
                                                int ncols, const float *A, int lda, size_t a_head,
                                                const float *W, size_t w_head, const float *B, int ldb,
                                                size_t b_head, int inner, int J, float inv, int bsz) {
    __shared__ float As[64][SC_KC + 1], Bs[64][SC_KC + 1], B2s[64][SC_KC + 1], Ws[64][8];
    const int h = blockIdx.z, i0 = blockIdx.y * 64, c0 = blockIdx.x * 64;
    const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
    const int last = row0 + min(i0 + 63, nrows - 1);
    const int maxlen = MODE == SC_INDEX ? last + 1 : last / bsz;
    if (c0 >= maxlen) return; /* uniform: the whole block leaves before any barrier */
    const float *Ah = A + h * a_head, *Bh = B + h * b_head;
    float acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
    if (MODE == SC_INDEX) {
        /* r <= 16: half the padded width (the dropped terms were +0 products: same sums) */
        const int kc = inner <= SC_KC / 2 ? SC_KC / 2 : SC_KC;
        for (int e = tid; e < 64 * kc; e += 256) {
            int rr = e / kc, cc = e % kc, col = c0 + rr;
            Bs[rr][cc] = (col < ncols && cc < inner) ? Bh[(size_t)col * ldb + cc] : 0.0f;
        }
        for (int e = tid; e < 64 * 8; e += 256) {
            int rr = e / 8, j = e % 8, row = i0 + rr;
            Ws[rr][j] = (row < nrows && j < J) ? W[h * w_head + (size_t)(row0 + row) * J + j] : 0.0f;
        }
        for (int j = 0; j < J; j++) {
            __syncthreads();
            for (int e = tid; e < 64 * kc; e += 256) {
                int rr = e / kc, cc = e % kc, row = i0 + rr;
                As[rr][cc] = (row < nrows && cc < inner) ? Ah[(size_t)(row0 + row) * lda + j * inner + cc] : 0.0f;
            }
            __syncthreads();
            for (int i = 0; i < 4; i++)
                for (int jj = 0; jj < 4; jj++) {
                    float dot = 0.0f;
                    for (int cc = 0; cc < SC_KC / 2; cc++) dot = fmaf(As[ty * 4 + i][cc], Bs[tx + 16 * jj][cc], dot);
                    if (kc == SC_KC)
                        for (int cc = SC_KC / 2; cc < SC_KC; cc++) dot = fmaf(As[ty * 4 + i][cc], Bs[tx + 16 * jj][cc], dot);
                    float a = dot * inv;
                    acc[i][jj] += Ws[ty * 4 + i][j] * (a > 0.0f ? a : 0.0f);
                }
        }
    } else {
        for (int c = 0; c < inner; c += SC_KC) {
            __syncthreads();
            for (int e = tid; e < 64 * SC_KC; e += 256) {
                int rr = e / SC_KC, cc = e % SC_KC, row = i0 + rr, col = c0 + rr, dim = c + cc;
                As[rr][cc] = (row < nrows && dim < inner) ? Ah[(size_t)(row0 + row) * lda + dim] : 0.0f;
                Bs[rr][cc] = (col < ncols && dim < inner) ? Bh[(size_t)col * ldb + dim] : 0.0f;
                if (MODE == SC_BBOUND)
                    B2s[rr][cc] = (col < ncols && dim < inner) ? Bh[(size_t)col * ldb + inner + dim] : 0.0f;
            }
            __syncthreads();
            for (int i = 0; i < 4; i++)
                for (int jj = 0; jj < 4; jj++) {
                    float a = acc[i][jj];
                    for (int cc = 0; cc < SC_KC; cc++) {
                        float qv = As[ty * 4 + i][cc];
                        if (MODE == SC_BMEAN) a = fmaf(qv, Bs[tx + 16 * jj][cc], a);
                        else a += fmaxf(qv * Bs[tx + 16 * jj][cc], qv * B2s[tx + 16 * jj][cc]);
                    }
                    acc[i][jj] = a;
                }
        }
    }
    for (int i = 0; i < 4; i++) {
        int row = i0 + ty * 4 + i;
        if (row >= nrows) continue;
        for (int jj = 0; jj < 4; jj++) {
            int col = c0 + tx + 16 * jj;
            if (col < ncols) S[h * s_head + (size_t)row * ldS + col] = acc[i][jj];
        }
    }
}

/* ---------------------------------------------------- selector: decode scores ---- */

/* The indexer's scores of one query (position T-1) against all T cached keys; each
 * block recomputes qt = Wq q and w = Ww q + bw in shared memory (J(r+1) dot products). */
__global__ void __launch_bounds__(256) k_index_decode_scores(float *S, const float *q, const float *kt,
                                                             const float *params, size_t np, int T,
                                                             int d, int J, int r, float inv) {
    __shared__ float qs[128], qt[256], ws[8];
    const int h = blockIdx.y, tid = threadIdx.x;
    for (int i = tid; i < d; i += 256) qs[i] = q[(size_t)h * d + i];
    __syncthreads();
    const float *Wq = params + h * np, *Ww = Wq + (size_t)(J + 1) * r * d, *bw = Ww + (size_t)J * d;
    for (int o = tid; o < J * r + J; o += 256) {
        const float *w = o < J * r ? Wq + (size_t)o * d : Ww + (size_t)(o - J * r) * d;
        float acc = 0.0f;
        for (int i = 0; i < d; i++) acc = fmaf(w[i], qs[i], acc);
        if (o < J * r) qt[o] = acc;
        else ws[o - J * r] = acc + bw[o - J * r];
    }
    __syncthreads();
    const int s = blockIdx.x * 256 + tid;
    if (s >= T) return;
    const float *kr = kt + ((size_t)h * T + s) * r;
    float sc = 0.0f;
    for (int j = 0; j < J; j++) {
        float a = 0.0f;
        for (int e = 0; e < r; e++) a = fmaf(qt[j * r + e], kr[e], a);
        a *= inv;
        sc += ws[j] * (a > 0.0f ? a : 0.0f);
    }
    S[(size_t)h * T + s] = sc;
}

/* The block scores of one query against its `local` complete blocks before its own. */
__global__ void __launch_bounds__(256) k_block_decode_scores(float *S, int ldS, const float *q,
                                                             const float *sum, int nb, int local, int d,
                                                             int bounds) {
    __shared__ float qs[128];
    const int h = blockIdx.y, tid = threadIdx.x;
    for (int i = tid; i < d; i += 256) qs[i] = q[(size_t)h * d + i];
    __syncthreads();
    const int j = blockIdx.x * 256 + tid;
    if (j >= local) return;
    const float *m = sum + ((size_t)h * nb + j) * 2 * d;
    float acc = 0.0f;
    for (int i = 0; i < d; i++) {
        if (!bounds) acc = fmaf(qs[i], m[i], acc);
        else acc += fmaxf(qs[i] * m[i], qs[i] * m[d + i]);
    }
    S[(size_t)h * ldS + j] = acc;
}

/* --------------------------------------------------------------- top-k ---- */

/* One block (512 threads) per score row: the kk = min(k, len) largest of row[0..len),
 * ties to the earlier column, listed in descending score — selector.c's topk_row.
 * No full sort of the row: a radix select over the order-preserving uint keys (three
 * histogram passes of 11, 11, 10 bits over the row) finds the kk-th largest key theta;
 * one more pass collects the keys above theta and, scanning in column order, the
 * earliest of those equal to theta; then a bitonic sort of the kk winners on
 * (~key << 32 | column) in shared memory gives the CPU's order.
 * INDEX: len = pos + 1, the row is the selection; or, with cols (the decode's second stage),
 * the row is clen candidates whose columns are cols[s] (S, cols: the first stage's scores
 * and columns, in column order among equal keys, so scan order is column order and the tie
 * rule holds). CHUNK (the decode's first stage): row r is the chunk of the one score row
 * at columns [r bsz, r bsz + len), len = min(bsz, clen - r bsz); its top k with columns
 * r bsz + s, written as INDEX writes a row (nq = the chunks). BLOCK: len = pos / b complete
 * blocks before the query's own, kk = min(nblocks - 1, len); the selection is the local
 * block (keys floor(pos/b)*b .. pos, score FLT_MAX) then the chosen blocks' keys, up to kmax.
 * (long: the radix passes, the collection and the sort share one shared-memory layout.) */
enum { TK_INDEX = 0, TK_BLOCK = 1, TK_CHUNK = 2 };
#define TK_THREADS 512
#define TK_SORTCAP 4096
template <int MODE>
__global__ void __launch_bounds__(TK_THREADS) k_topk(const float *S, int ldS, size_t s_head, int row0,
                                                     int pos0, int k, int bsz, int kmax, int nq,
                                                     int *idx, float *score, int *count, const int *cols,
                                                     int clen) {
    __shared__ unsigned hist[2048];
    __shared__ unsigned long long sel[TK_SORTCAP];
    __shared__ unsigned sh_bin, sh_above, sh_gt, sh_eqbase, sh_chunk;
    __shared__ unsigned wcnt[TK_THREADS / 32], wpre[TK_THREADS / 32];
    const int h = blockIdx.y, r = blockIdx.x, qi = row0 + r, pos = pos0 + qi;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int len = MODE == TK_CHUNK ? min(bsz, clen - r * bsz) : MODE == TK_BLOCK ? pos / bsz : cols ? clen : pos + 1;
    const int kk = min(k, len), coff = MODE == TK_CHUNK ? r * bsz : 0;
    const float *row = S + h * s_head + (size_t)r * ldS;
    const int *crow = cols ? cols + h * s_head + (size_t)r * ldS : NULL;
#define TK_COL(s) ((unsigned)(crow ? crow[s] : (s) + coff)) /* a row entry's column */
    if (kk > 0) {
        if (kk < len) {
            unsigned prefix = 0, mask = 0, rem = (unsigned)kk;
            for (int pass = 0; pass < 3; pass++) {
                const int shift = pass == 0 ? 21 : pass == 1 ? 10 : 0;
                const unsigned bmask = pass == 2 ? 0x3ffu : 0x7ffu;
                for (int e = tid; e < 2048; e += TK_THREADS) hist[e] = 0;
                __syncthreads();
                /* warp-aggregated: lanes with the same bin add once (scores of similar size
                 * share the top bits, so plain shared atomics would serialise) */
                for (int base = 0; base < len; base += TK_THREADS) {
                    const int s = base + tid;
                    const unsigned key = s < len ? f2key(row[s]) : 0u;
                    const int act = s < len && (key & mask) == prefix;
                    const unsigned bin = act ? (key >> shift) & bmask : 0xffffffffu;
                    const unsigned peers = __match_any_sync(FULL, bin);
                    if (act && lane == __ffs(peers) - 1) atomicAdd(&hist[bin], (unsigned)__popc(peers));
                }
                __syncthreads();
                if (warp == 0) { /* lane L sums bins 2047-64L down to 1984-64L; scan from the top */
                    unsigned cnt = 0; /* rotated start: the 32 lanes read 32 different banks */
                    for (int bb = 0; bb < 64; bb++) cnt += hist[2047 - 64 * lane - ((bb + lane) & 63)];
                    unsigned incl = cnt;
                    for (int o = 1; o < 32; o <<= 1) {
                        unsigned v = __shfl_up_sync(FULL, incl, o);
                        if (lane >= o) incl += v;
                    }
                    unsigned c = incl - cnt;
                    if (c < rem && rem <= incl) {
                        for (int bb = 0; bb < 64; bb++) {
                            unsigned hb = hist[2047 - 64 * lane - bb];
                            if (c + hb >= rem) {
                                sh_bin = (unsigned)(2047 - 64 * lane - bb), sh_above = c;
                                break;
                            }
                            c += hb;
                        }
                    }
                }
                __syncthreads();
                prefix |= sh_bin << shift;
                mask |= bmask << shift;
                rem -= sh_above;
                __syncthreads();
            }
            const unsigned theta = prefix, need = rem, ngt = (unsigned)kk - rem;
            if (tid == 0) sh_gt = 0, sh_eqbase = 0;
            __syncthreads();
            for (int base = 0; base < len; base += TK_THREADS) {
                const int s = base + tid;
                const unsigned key = s < len ? f2key(row[s]) : 0u;
                if (s < len && key > theta) {
                    unsigned slot = atomicAdd(&sh_gt, 1u);
                    sel[slot] = ((unsigned long long)(~key) << 32) | TK_COL(s);
                }
                const int flag = s < len && key == theta;
                const unsigned bal = __ballot_sync(FULL, flag);
                if (lane == 0) wcnt[warp] = __popc(bal);
                __syncthreads();
                if (tid == 0) {
                    unsigned run = 0;
                    for (int w = 0; w < TK_THREADS / 32; w++) wpre[w] = run, run += wcnt[w];
                    sh_chunk = run;
                }
                __syncthreads();
                if (flag) {
                    unsigned p = sh_eqbase + wpre[warp] + __popc(bal & ((1u << lane) - 1u));
                    if (p < need) sel[ngt + p] = ((unsigned long long)(~key) << 32) | TK_COL(s);
                }
                __syncthreads();
                if (tid == 0) sh_eqbase += sh_chunk;
            }
        } else {
            for (int s = tid; s < len; s += TK_THREADS)
                sel[s] = ((unsigned long long)(~f2key(row[s])) << 32) | TK_COL(s);
        }
        int P = 1;
        while (P < kk) P <<= 1;
        for (int e = kk + tid; e < P; e += TK_THREADS) sel[e] = ~0ull;
        __syncthreads();
        for (int kb = 2; kb <= P; kb <<= 1)
            for (int j = kb >> 1; j > 0; j >>= 1) {
                for (int i = tid; i < P; i += TK_THREADS) {
                    int ixj = i ^ j;
                    if (ixj > i) {
                        unsigned long long a = sel[i], bv = sel[ixj];
                        if ((a > bv) == ((i & kb) == 0)) sel[i] = bv, sel[ixj] = a;
                    }
                }
                __syncthreads();
            }
    }
    const size_t o = ((size_t)h * nq + qi) * kmax;
#undef TK_COL
    if (MODE != TK_BLOCK) {
        for (int j = tid; j < kmax; j += TK_THREADS) {
            if (j < kk) {
                unsigned long long c = sel[j];
                idx[o + j] = (int)(c & 0xffffffffu);
                score[o + j] = key2f(~(unsigned)(c >> 32));
            } else {
                idx[o + j] = -1, score[o + j] = 0.0f;
            }
        }
        if (tid == 0) count[(size_t)h * nq + qi] = kk;
    } else {
        const int local = pos / bsz, nl = pos - local * bsz + 1;
        const int cnt = min(kmax, nl + kk * bsz);
        for (int e = tid; e < kmax; e += TK_THREADS) {
            if (e < nl) {
                idx[o + e] = local * bsz + e, score[o + e] = FLT_MAX;
            } else if (e < cnt) {
                unsigned long long c = sel[(e - nl) / bsz];
                idx[o + e] = (int)(c & 0xffffffffu) * bsz + (e - nl) % bsz;
                score[o + e] = key2f(~(unsigned)(c >> 32));
            } else {
                idx[o + e] = -1, score[o + e] = 0.0f;
            }
        }
        if (tid == 0) count[(size_t)h * nq + qi] = cnt;
    }
}

static_assert(TK_SORTCAP == SA_TOPK_MAX, "sa_dev.h's SA_TOPK_MAX is k_topk's sort capacity");

void sa_topk_rows(sa_cuda *c, const float *S, int ldS, int row0, int n, int k, int kmax, int nq, int *idx,
                  float *score, int *count) {
    SA_LAUNCH(k_topk<TK_INDEX>, dim3(n, 1), TK_THREADS, 0, c->st, S, ldS, (size_t)0, row0, 0, k, 1, kmax, nq, idx,
              score, count, (const int *)NULL, 0);
    CK_LAUNCH();
}

/* ------------------------------------------------------- head: gathered softmax ---- */

/* The two steps of a gathered softmax row that k_gather_softmax and k_gather_softmax_split
 * share. gs_row_init: the query, scaled, in registers (zero past d), and the accumulator
 * zeroed. gs_row_key: one selected key, online: dot = q.k, then m, l and acc rescaled by
 * alpha = e^{m - m'} and p v added (p = e^{dot - m'}). vec4_k / vec4_v: key / value rows
 * read as float4 (d % 4 == 0, rows 16-byte aligned). */
template <int DM>
__device__ __forceinline__ void gs_row_init(float *qr, float *acc, const float *qh, int d, float scale) {
    for (int i = 0; i < DM; i++) qr[i] = i < d ? qh[i] * scale : 0.0f, acc[i] = 0.0f;
}

template <int DM>
__device__ __forceinline__ void gs_row_key(const float *qr, const float *kr, const float *vr, int d, int vec4_k,
                                           int vec4_v, float &m, float &l, float *acc) {
    float dot = 0.0f;
    if (vec4_k) {
        for (int i = 0; i < DM; i += 4)
            if (i < d) {
                float4 x = ld4(kr + i);
                dot = fmaf(qr[i], x.x, fmaf(qr[i + 1], x.y, fmaf(qr[i + 2], x.z, fmaf(qr[i + 3], x.w, dot))));
            }
    } else {
        for (int i = 0; i < DM; i++)
            if (i < d) dot = fmaf(qr[i], kr[i], dot);
    }
    const float mnew = fmaxf(m, dot), alpha = expf(m - mnew), p = expf(dot - mnew);
    l = l * alpha + p;
    m = mnew;
    if (vec4_v) {
        for (int i = 0; i < DM; i += 4)
            if (i < d) {
                float4 x = ld4(vr + i);
                acc[i] = fmaf(p, x.x, acc[i] * alpha), acc[i + 1] = fmaf(p, x.y, acc[i + 1] * alpha);
                acc[i + 2] = fmaf(p, x.z, acc[i + 2] * alpha), acc[i + 3] = fmaf(p, x.w, acc[i + 3] * alpha);
            }
    } else {
        for (int i = 0; i < DM; i++)
            if (i < d) acc[i] = fmaf(p, vr[i], acc[i] * alpha);
    }
}

/* One warp per (query, head): lane j takes the selected keys j, j+32, ..., keeps its
 * own online softmax (m, l, acc(DM)), then the warp merges the 32 states. q is held
 * scaled in registers; K and V rows are read straight from the qkv / cache buffer
 * (float4 when d % 4 == 0 and the strides allow). */
template <int DM>
__global__ void __launch_bounds__(128) k_gather_softmax(float *out, int ldo, const float *q, int ldq,
                                                        const float *k, const float *v, int ldk, int d,
                                                        int nq, int kmax, const int *idx,
                                                        const int *count, float scale, int vec4) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, h = blockIdx.y;
    const int qi = blockIdx.x * 4 + warp;
    if (qi >= nq) return; /* whole warps only; no block barriers in this kernel */
    const float *qh = q + (size_t)h * d + (size_t)qi * ldq;
    const float *kh = k + (size_t)h * d, *vh = v + (size_t)h * d;
    float qr[DM], acc[DM], m = NEG_INF, l = 0.0f;
    gs_row_init<DM>(qr, acc, qh, d, scale);
    const int c = count[(size_t)h * nq + qi];
    const int *ix = idx + ((size_t)h * nq + qi) * kmax;
    for (int j = lane; j < c; j += 32) {
        const size_t s = (size_t)ix[j];
        gs_row_key<DM>(qr, kh + s * ldk, vh + s * ldk, d, vec4, vec4, m, l, acc);
    }
    const float M = warp_max<32>(m), f = m == NEG_INF ? 0.0f : expf(m - M);
    const float L = warp_sum<32>(l * f);
    for (int i = 0; i < DM; i++) {
        float a = warp_sum<32>(acc[i] * f);
        if ((i & 31) == lane && i < d) out[(size_t)qi * ldo + (size_t)h * d + i] = a / L;
    }
}

/* Decode (one query): the selection split over blocks of 256 entries (4 warps of 64), so
 * a k = 2048 selection keeps 8 blocks per head busy instead of one warp; each block
 * writes a partial [m, l, acc(d)] and k_decode_merge combines them. */
#define GS_CHUNK 256
template <int DM>
__global__ void __launch_bounds__(128) k_gather_softmax_split(float *part, const float *q, const float *k,
                                                              const float *v, int ldk, int d, int kmax,
                                                              const int *idx, const int *count, float scale,
                                                              int vec4) {
    __shared__ float wm[4], wl[4], wacc[4][DM];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, h = blockIdx.y, split = blockIdx.x;
    const int nsplit = gridDim.x, tid = threadIdx.x;
    const float *qh = q + (size_t)h * d, *kh = k + (size_t)h * d, *vh = v + (size_t)h * d;
    float qr[DM], acc[DM], m = NEG_INF, l = 0.0f;
    gs_row_init<DM>(qr, acc, qh, d, scale);
    const int c = count[h];
    const int *ix = idx + (size_t)h * kmax;
    const int j0 = split * GS_CHUNK + warp * 64, j1 = min(c, j0 + 64);
    for (int j = j0 + lane; j < j1; j += 32) {
        const size_t s = (size_t)ix[j];
        gs_row_key<DM>(qr, kh + s * ldk, vh + s * ldk, d, vec4, 0, m, l, acc); /* v read scalar here */
    }
    const float M = warp_max<32>(m), f = m == NEG_INF ? 0.0f : expf(m - M);
    const float L = warp_sum<32>(l * f);
    if (lane == 0) wm[warp] = M, wl[warp] = L;
    for (int i = 0; i < DM; i++) {
        float a = warp_sum<32>(acc[i] * f);
        if ((i & 31) == lane) wacc[warp][i] = a;
    }
    __syncthreads();
    block_partial<DM>(part + ((size_t)h * nsplit + split) * (d + 2), wm, wl, &wacc[0][0], d, tid);
}

/* ----------------------------------------------------------- head: mlp ---- */

/* A block (128 threads) per 16 queries of one head: the logits q.k_j/sqrt(d) into shared
 * memory, then H = W1 x + b1 with x gathered 32 columns at a time straight from the
 * value rows / q / logits (x never exists in global memory), thread t owning hidden
 * units t and t + 128 for all 16 queries; GELU (tanh form, as nn.c); o = W2 g + b2.
 * (long: both layers run out of one shared-memory tile of hidden units.) */
#define MLP_Q 16
__global__ void __launch_bounds__(128) k_mlp(float *out, int ldo, const float *q, int ldq, const float *k,
                                             const float *v, int ldk, int d, int nq, int kmax,
                                             const int *idx, const int *count, const float *params,
                                             size_t np, int hidden, int use_q, int use_logits,
                                             float scale) {
    SA_DYN_SMEM(smraw);
    float *Ls = (float *)smraw, *Gs = Ls + MLP_Q * kmax, *Xs = Gs + MLP_Q * hidden;
    const int h = blockIdx.y, q0 = blockIdx.x * MLP_Q, tid = threadIdx.x;
    const int D = kmax * d + (use_q ? d : 0) + (use_logits ? kmax : 0);
    const float *W1 = params + h * np, *b1 = W1 + (size_t)hidden * D, *W2 = b1 + hidden,
                *b2 = W2 + (size_t)d * hidden;
    const float *qh = q + (size_t)h * d, *kh = k + (size_t)h * d, *vh = v + (size_t)h * d;
    for (int e = tid; e < MLP_Q * kmax; e += 128) {
        int qq = e / kmax, j = e % kmax, qi = q0 + qq;
        float val = 0.0f;
        if (use_logits && qi < nq && j < count[(size_t)h * nq + qi]) {
            const float *kr = kh + (size_t)idx[((size_t)h * nq + qi) * kmax + j] * ldk, *qr = qh + (size_t)qi * ldq;
            for (int i = 0; i < d; i++) val = fmaf(qr[i], kr[i], val);
            val *= scale;
        }
        Ls[e] = val;
    }
    float acc[2][MLP_Q];
    for (int u = 0; u < 2; u++) {
        int hh = tid + 128 * u;
        for (int qq = 0; qq < MLP_Q; qq++) acc[u][qq] = hh < hidden ? b1[hh] : 0.0f;
    }
    for (int e0 = 0; e0 < D; e0 += 32) {
        __syncthreads();
        for (int e = tid; e < MLP_Q * 32; e += 128) {
            int qq = e / 32, ee = e0 + e % 32, qi = q0 + qq;
            float x = 0.0f;
            if (qi < nq && ee < D) {
                if (ee < kmax * d) {
                    int j = ee / d, i = ee % d;
                    if (j < count[(size_t)h * nq + qi])
                        x = vh[(size_t)idx[((size_t)h * nq + qi) * kmax + j] * ldk + i];
                } else if (use_q && ee < kmax * d + d) {
                    x = qh[(size_t)qi * ldq + ee - kmax * d];
                } else {
                    x = Ls[qq * kmax + ee - kmax * d - (use_q ? d : 0)];
                }
            }
            Xs[qq * 33 + e % 32] = x;
        }
        __syncthreads();
        for (int u = 0; u < 2; u++) {
            int hh = tid + 128 * u;
            if (hh >= hidden) continue;
            const float *w = W1 + (size_t)hh * D + e0;
            for (int ee = 0; ee < 32 && e0 + ee < D; ee++) {
                float wv = w[ee];
                for (int qq = 0; qq < MLP_Q; qq++) acc[u][qq] = fmaf(wv, Xs[qq * 33 + ee], acc[u][qq]);
            }
        }
    }
    for (int u = 0; u < 2; u++) {
        int hh = tid + 128 * u;
        if (hh >= hidden) continue;
        for (int qq = 0; qq < MLP_Q; qq++) {
            float x = acc[u][qq], t = 0.7978845608028654f * (x + 0.044715f * x * x * x);
            float th = 1.0f - 2.0f / (1.0f + expf(2.0f * t));
            Gs[qq * hidden + hh] = 0.5f * x * (1.0f + th);
        }
    }
    __syncthreads();
    for (int e = tid; e < MLP_Q * d; e += 128) {
        int qq = e / d, i = e % d, qi = q0 + qq;
        if (qi >= nq) continue;
        float o = b2[i];
        const float *w = W2 + (size_t)i * hidden;
        for (int hh = 0; hh < hidden; hh++) o = fmaf(w[hh], Gs[qq * hidden + hh], o);
        out[(size_t)qi * ldo + (size_t)h * d + i] = o;
    }
}

static size_t mlp_smem(int kmax, int hidden) { return (size_t)(MLP_Q * kmax + MLP_Q * hidden + MLP_Q * 33) * sizeof(float); }

/* ================================================================ host side ==== */

void *sa_scratch(sa_cuda *c, size_t bytes) {
    if (bytes > c->scratch_n) {
        CK(cudaStreamSynchronize(c->st));
        if (c->scratch) CK(cudaFree(c->scratch));
        c->scratch_n = bytes + bytes / 4;
        CK(cudaMalloc(&c->scratch, c->scratch_n));
    }
    return c->scratch;
}

static size_t up256(size_t n) { return (n + 63) / 64 * 64; } /* floats, 256-byte aligned */

extern "C" int sa_cuda_built(void) { return 1; }

extern "C" int sa_cuda_open(sa_cuda **out, sattn_err *e) {
    int n = 0;
    cudaError_t r = cudaGetDeviceCount(&n);
    if (r != cudaSuccess) return err_set(e, "no usable CUDA device: cudaGetDeviceCount: %s", cudaGetErrorString(r));
    if (n == 0) return err_set(e, "no CUDA device (cudaGetDeviceCount returned 0)");
    sa_cuda *c = (sa_cuda *)calloc(1, sizeof *c);
    CK(cudaSetDevice(0));
    cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, 0));
    snprintf(c->name, sizeof c->name, "%s", p.name);
    CK(cudaDeviceGetAttribute(&c->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0));
    CK(cudaStreamCreate(&c->st));
    CK(cudaEventCreate(&c->e0));
    CK(cudaEventCreate(&c->e1));
    c->chunk_bytes = (size_t)256 << 20;
    CK(cudaFuncSetAttribute(k_flash_fwd<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)flash_smem(64)));
    CK(cudaFuncSetAttribute(k_flash_fwd<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)flash_smem(128)));
    CK(cudaFuncSetAttribute(k_decode_split<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)decode_smem(64)));
    CK(cudaFuncSetAttribute(k_decode_split<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)decode_smem(128)));
    CK(cudaFuncSetAttribute(k_mlp, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)mlp_smem(256, 256)));
    sa_tblock_attrs();
    *out = c;
    return 0;
}

extern "C" void sa_cuda_close(sa_cuda *c) {
    if (!c) return;
    CK(cudaStreamSynchronize(c->st));
    if (c->scratch) CK(cudaFree(c->scratch));
    CK(cudaEventDestroy(c->e0));
    CK(cudaEventDestroy(c->e1));
    CK(cudaStreamDestroy(c->st));
    free(c);
}

extern "C" const char *sa_cuda_name(const sa_cuda *c) { return c->name; }

extern "C" void *sa_cuda_alloc(sa_cuda *c, size_t bytes) {
    (void)c;
    void *p = NULL;
    CK(cudaMalloc(&p, bytes ? bytes : 4));
    return p;
}
extern "C" void sa_cuda_free(sa_cuda *c, void *p) {
    if (!p) return;
    CK(cudaStreamSynchronize(c->st));
    CK(cudaFree(p));
}
extern "C" void sa_cuda_upload(sa_cuda *c, void *dst, const void *src, size_t bytes) {
    CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->st));
    CK(cudaStreamSynchronize(c->st)); /* src may be freed right after */
}
extern "C" void sa_cuda_download(sa_cuda *c, void *dst, const void *src, size_t bytes) {
    CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->st));
    CK(cudaStreamSynchronize(c->st));
}
extern "C" void sa_cuda_poison(sa_cuda *c, void *dst, size_t bytes) {
    CK(cudaMemsetAsync(dst, 0xFF, bytes, c->st));
}
extern "C" void sa_cuda_sync(sa_cuda *c) { CK(cudaStreamSynchronize(c->st)); }
extern "C" void sa_cuda_timer_start(sa_cuda *c) { CK(cudaEventRecord(c->e0, c->st)); }
extern "C" double sa_cuda_timer_stop(sa_cuda *c) {
    float ms = 0.0f;
    CK(cudaEventRecord(c->e1, c->st));
    CK(cudaEventSynchronize(c->e1));
    CK(cudaEventElapsedTime(&ms, c->e0, c->e1));
    return ms;
}

extern "C" int sa_cuda_check_spec(const head_spec *s, int d, int T, sattn_err *e) {
    if (d < 1 || d > 128) return err_set(e, "cuda: head dim %d, the kernels take 1..128", d);
    if (s->sel != SEL_INDEX && s->sel != SEL_BLOCK)
        return err_set(e, "cuda: only the index and block selectors are implemented");
    if (s->tau > 0.0f) return err_set(e, "cuda: dynamic k (tau > 0) is not implemented");
    if (s->sel == SEL_INDEX) {
        if (s->k > TK_SORTCAP) return err_set(e, "cuda: index k %d > %d", s->k, TK_SORTCAP);
        if (s->rank > 32 || s->iheads > 8 || s->rank * s->iheads > 256)
            return err_set(e, "cuda: index needs r <= 32, J <= 8, r*J <= 256 (got r %d, J %d)", s->rank, s->iheads);
    } else if (s->nblocks - 1 > TK_SORTCAP) {
        return err_set(e, "cuda: block n - 1 = %d > %d", s->nblocks - 1, TK_SORTCAP);
    }
    if (s->fn == HFN_MLP) {
        int kmax = selector_kmax(s, T);
        if (s->hidden > 256 || kmax > 256)
            return err_set(e, "cuda: mlp needs hidden <= 256 and kmax <= 256 (got %d, %d)", s->hidden, kmax);
    }
    return 0;
}

static void check_spec(const head_spec *s, int d, int T) {
    sattn_err e;
    if (sa_cuda_check_spec(s, d, T, &e)) die_at(__FILE__, __LINE__, "%s", e.msg);
}

/* ---- dense ---- */

extern "C" void sa_cuda_flash_forward(sa_cuda *c, float *out, float *lse, const float *qkv, int B, int T,
                                      int C, int H) {
    const int d = C / H;
    if (d > 128) die_at(__FILE__, __LINE__, "cuda flash: head dim %d > 128", d);
    if (T <= 0) return;
    dim3 grid((T + FL_T - 1) / FL_T, H, B);
    const float qscale = 1.4426950408889634f / sqrtf((float)d);
    if (d <= 64) SA_LAUNCH(k_flash_fwd<64>, grid, 128, flash_smem(64), c->st, out, lse, qkv, T, C, H, qscale);
    else SA_LAUNCH(k_flash_fwd<128>, grid, 128, flash_smem(128), c->st, out, lse, qkv, T, C, H, qscale);
    CK_LAUNCH();
}

extern "C" void sa_cuda_decode_dense(sa_cuda *c, float *out, const float *q, const float *kc,
                                     const float *vc, int T, int C, int H) {
    const int d = C / H, nsplit = (T + DEC_CHUNK - 1) / DEC_CHUNK;
    if (d > 128) die_at(__FILE__, __LINE__, "cuda decode: head dim %d > 128", d);
    float *part = (float *)sa_scratch(c, (size_t)H * nsplit * (d + 2) * sizeof(float));
    const float scale = 1.0f / sqrtf((float)d);
    dim3 grid(nsplit, H);
    if (d <= 64) SA_LAUNCH(k_decode_split<64>, grid, 128, decode_smem(64), c->st, part, q, kc, vc, T, C, H, scale);
    else SA_LAUNCH(k_decode_split<128>, grid, 128, decode_smem(128), c->st, part, q, kc, vc, T, C, H, scale);
    CK_LAUNCH();
    SA_LAUNCH(k_decode_merge, H, 128, 0, c->st, out, part, nsplit, d);
    CK_LAUNCH();
}

/* ---- sparse ---- */

/* The head function over a selection of nq queries; q rows at q + i*ldq, keys and
 * values at k, v + s*ldk (all + h*d per head); out rows at out + i*ldo (+ h*d). */
static int gs_splits(int kmax) { return (kmax + GS_CHUNK - 1) / GS_CHUNK; }

/* part: NULL, or (decode, nq == 1) H * gs_splits(kmax) * (d + 2) floats for the split softmax. */
static void headfn_run(sa_cuda *c, const head_spec *s, const float *fn_params, const float *q, int ldq,
                       const float *k, const float *v, int ldk, int d, int H, int nq, int kmax,
                       const int *idx, const int *count, float *out, int ldo, float *part) {
    const float scale = 1.0f / sqrtf((float)d);
    if (s->fn == HFN_MLP) {
        size_t np = headfn_param_count(s, d, kmax);
        dim3 grid((nq + MLP_Q - 1) / MLP_Q, H);
        SA_LAUNCH(k_mlp, grid, 128, mlp_smem(kmax, s->hidden), c->st, out, ldo, q, ldq, k, v, ldk, d, nq,
                  kmax, idx, count, fn_params, np, s->hidden, s->mlp_q, s->mlp_logits, scale);
    } else {
        /* float4 loads need 16-byte aligned rows: d, the stride and the head offsets % 4 */
        int vec4 = d % 4 == 0 && ldk % 4 == 0 && ((size_t)k % 16) == 0 && ((size_t)v % 16) == 0;
        dim3 grid((nq + 3) / 4, H);
        if (part && nq == 1) {
            dim3 sg(gs_splits(kmax), H);
            if (d <= 64)
                SA_LAUNCH(k_gather_softmax_split<64>, sg, 128, 0, c->st, part, q, k, v, ldk, d, kmax, idx, count,
                          scale, vec4);
            else
                SA_LAUNCH(k_gather_softmax_split<128>, sg, 128, 0, c->st, part, q, k, v, ldk, d, kmax, idx, count,
                          scale, vec4);
            CK_LAUNCH();
            SA_LAUNCH(k_decode_merge, H, 128, 0, c->st, out, part, gs_splits(kmax), d);
        } else if (d <= 64)
            SA_LAUNCH(k_gather_softmax<64>, grid, 128, 0, c->st, out, ldo, q, ldq, k, v, ldk, d, nq, kmax, idx,
                      count, scale, vec4);
        else
            SA_LAUNCH(k_gather_softmax<128>, grid, 128, 0, c->st, out, ldo, q, ldq, k, v, ldk, d, nq, kmax, idx,
                      count, scale, vec4);
    }
    CK_LAUNCH();
}

/* Selection for one sparse head on the device: scores (index, block mean or bounds), then
 * the radix top-k, per query tile. (long: the launch sequence per selector mode reads
 * best in one place; each branch is a few launches.) */
extern "C" void sa_cuda_select(sa_cuda *c, const head_spec *s, const float *sp, const float *qkv, int T,
                               int C, int H, int *idx, float *score, int *count) {
    const int d = C / H, kmax = selector_kmax(s, T), ld = 3 * C;
    check_spec(s, d, T);
    if (T <= 0) return;
    const size_t np = selector_param_count(s, d, T);
    const int J = s->iheads, r = s->rank, b = s->block;
    float *buf, *qt = NULL, *kt = NULL, *w = NULL, *sum = NULL;
    int ldS;
    size_t side;
    if (s->sel == SEL_INDEX) {
        side = up256((size_t)H * T * J * r) + up256((size_t)H * T * r) + up256((size_t)H * T * J);
        ldS = T;
    } else {
        side = up256((size_t)H * (T / b) * 2 * d);
        ldS = T / b > 0 ? T / b : 1;
    }
    long nr = (long)(c->chunk_bytes / sizeof(float) / ((size_t)H * ldS));
    if (nr < 1) nr = 1;
    if (nr > T) nr = T;
    if (nr > 64) nr -= nr % 64;
    buf = (float *)sa_scratch(c, (side + (size_t)H * nr * ldS) * sizeof(float));
    float *S = buf + side;
    if (s->sel == SEL_INDEX) {
        qt = buf, kt = qt + up256((size_t)H * T * J * r), w = kt + up256((size_t)H * T * r);
        SA_LAUNCH(k_proj, dim3(((size_t)T * J * r + 255) / 256, H), 256, 0, c->st, qt, (size_t)T * J * r, J * r,
                  qkv, ld, T, d, sp, np, (size_t)0, -1L);
        CK_LAUNCH();
        SA_LAUNCH(k_proj, dim3(((size_t)T * r + 255) / 256, H), 256, 0, c->st, kt, (size_t)T * r, r, qkv + C, ld,
                  T, d, sp, np, (size_t)J * r * d, -1L);
        CK_LAUNCH();
        SA_LAUNCH(k_proj, dim3(((size_t)T * J + 255) / 256, H), 256, 0, c->st, w, (size_t)T * J, J, qkv, ld, T,
                  d, sp, np, (size_t)(J * r + r) * d, (long)((J * r + r + J) * d));
        CK_LAUNCH();
    } else if (T / b > 0) {
        sum = buf;
        SA_LAUNCH(k_summaries, dim3(T / b, H), 128, 0, c->st, sum, qkv + C, ld, d, T / b, b, s->bounds);
        CK_LAUNCH();
    }
    const float inv = 1.0f / sqrtf((float)r);
    for (int i0 = 0; i0 < T; i0 += (int)nr) {
        const int n = (int)(T - i0 < nr ? T - i0 : nr);
        const int maxlen = s->sel == SEL_INDEX ? i0 + n : (i0 + n - 1) / b;
        if (maxlen > 0) {
            dim3 grid((maxlen + 63) / 64, (n + 63) / 64, H);
            size_t s_head = (size_t)nr * ldS;
            if (s->sel == SEL_INDEX)
                SA_LAUNCH(k_scores<SC_INDEX>, grid, 256, 0, c->st, S, ldS, s_head, n, i0, maxlen, qt, J * r,
                          (size_t)T * J * r, w, (size_t)T * J, kt, r, (size_t)T * r, r, J, inv, b);
            else if (!s->bounds)
                SA_LAUNCH(k_scores<SC_BMEAN>, grid, 256, 0, c->st, S, ldS, s_head, n, i0, maxlen, qkv, ld,
                          (size_t)d, (const float *)NULL, (size_t)0, sum, 2 * d, (size_t)(T / b) * 2 * d, d, 1,
                          inv, b);
            else
                SA_LAUNCH(k_scores<SC_BBOUND>, grid, 256, 0, c->st, S, ldS, s_head, n, i0, maxlen, qkv, ld,
                          (size_t)d, (const float *)NULL, (size_t)0, sum, 2 * d, (size_t)(T / b) * 2 * d, d, 1,
                          inv, b);
            CK_LAUNCH();
        }
        dim3 tg(n, H);
        if (s->sel == SEL_INDEX)
            SA_LAUNCH(k_topk<TK_INDEX>, tg, TK_THREADS, 0, c->st, S, ldS, (size_t)nr * ldS, i0, 0, s->k, b,
                      kmax, T, idx, score, count, (const int *)NULL, 0);
        else
            SA_LAUNCH(k_topk<TK_BLOCK>, tg, TK_THREADS, 0, c->st, S, ldS, (size_t)nr * ldS, i0, 0,
                      s->nblocks - 1, b, kmax, T, idx, score, count, (const int *)NULL, 0);
        CK_LAUNCH();
    }
}

extern "C" void sa_cuda_headfn(sa_cuda *c, const head_spec *s, const float *fp, const float *qkv, int T,
                               int C, int H, const int *idx, const int *count, float *out) {
    const int d = C / H;
    check_spec(s, d, T);
    if (T <= 0) return;
    headfn_run(c, s, fp, qkv, 3 * C, qkv + C, qkv + 2 * C, 3 * C, d, H, T, selector_kmax(s, T), idx, count,
               out, C, NULL);
}

extern "C" void sa_cuda_sparse_forward(sa_cuda *c, const head_spec *s, const float *sp, const float *fp,
                                       const float *qkv, int T, int C, int H, int *idx, float *score,
                                       int *count, float *out) {
    sa_cuda_select(c, s, sp, qkv, T, C, H, idx, score, count);
    sa_cuda_headfn(c, s, fp, qkv, T, C, H, idx, count, out);
}

extern "C" size_t sa_cuda_side_floats(const head_spec *s, int T, int C, int H) {
    const int d = C / H;
    if (s->sel == SEL_BLOCK) return (size_t)H * (T / s->block) * 2 * d + 1;
    return (size_t)H * T * s->rank + 1;
}

extern "C" void sa_cuda_decode_side(sa_cuda *c, const head_spec *s, const float *sp, const float *kc, int T,
                                    int C, int H, float *side) {
    const int d = C / H;
    check_spec(s, d, T);
    if (s->sel == SEL_BLOCK) {
        if (T / s->block > 0)
            SA_LAUNCH(k_summaries, dim3(T / s->block, H), 128, 0, c->st, side, kc, C, d, T / s->block, s->block,
                      s->bounds);
    } else {
        const int r = s->rank;
        SA_LAUNCH(k_proj, dim3(((size_t)T * r + 255) / 256, H), 256, 0, c->st, side, (size_t)T * r, r, kc, C, T,
                  d, sp, selector_param_count(s, d, T), (size_t)s->iheads * r * d, -1L);
    }
    CK_LAUNCH();
}

/* The index decode's top-k chunk: the row of T scores goes to the first stage in chunks of
 * this many columns when T is larger (one block per chunk and head instead of one per head:
 * at T = 64K and k = 64, 128 chunks; the second stage then scans 128 k candidates, not T). */
static int decode_chunk(int k) { return 4 * k > 512 ? 4 * k : 512; }

extern "C" void sa_cuda_decode_sparse(sa_cuda *c, const head_spec *s, const float *sp, const float *fp,
                                      const float *q, const float *kc, const float *vc, int T, int C, int H,
                                      const float *side, float *out, int *idx, float *score, int *count) {
    const int d = C / H, kmax = selector_kmax(s, T);
    check_spec(s, d, T);
    const size_t npart = up256((size_t)H * gs_splits(kmax) * (d + 2));
    float *part;
    if (s->sel == SEL_INDEX) {
        const int ch = decode_chunk(s->k), nch = (T + ch - 1) / ch;
        const size_t ncand = up256((size_t)H * nch * s->k);
        float *S = (float *)sa_scratch(c, (npart + (size_t)H * T + 2 * ncand + up256((size_t)H * nch)) * sizeof(float));
        part = S + (size_t)H * T;
        SA_LAUNCH(k_index_decode_scores, dim3((T + 255) / 256, H), 256, 0, c->st, S, q, side, sp,
                  selector_param_count(s, d, T), T, d, s->iheads, s->rank, 1.0f / sqrtf((float)s->rank));
        CK_LAUNCH();
        if (nch == 1) {
            SA_LAUNCH(k_topk<TK_INDEX>, dim3(1, H), TK_THREADS, 0, c->st, S, T, (size_t)T, 0, T - 1, s->k,
                      s->block, kmax, 1, idx, score, count, (const int *)NULL, 0);
        } else { /* two stages: each chunk's top k (nch blocks a head), then the top k of those */
            float *cs = part + npart;
            int *ci = (int *)(cs + ncand), *cc = ci + ncand;
            const int len2 = (nch - 1) * s->k + min(s->k, T - (nch - 1) * ch);
            SA_LAUNCH(k_topk<TK_CHUNK>, dim3(nch, H), TK_THREADS, 0, c->st, S, ch, (size_t)T, 0, 0, s->k, ch, s->k,
                      nch, ci, cs, cc, (const int *)NULL, T);
            CK_LAUNCH();
            SA_LAUNCH(k_topk<TK_INDEX>, dim3(1, H), TK_THREADS, 0, c->st, cs, nch * s->k, (size_t)nch * s->k, 0,
                      T - 1, s->k, s->block, kmax, 1, idx, score, count, (const int *)ci, len2);
        }
    } else {
        const int b = s->block, nb = T / b, local = (T - 1) / b, ldS = local > 0 ? local : 1;
        float *S = (float *)sa_scratch(c, (npart + (size_t)H * ldS) * sizeof(float));
        part = S + (size_t)H * ldS;
        if (local > 0) {
            SA_LAUNCH(k_block_decode_scores, dim3((local + 255) / 256, H), 256, 0, c->st, S, ldS, q, side, nb,
                      local, d, s->bounds);
            CK_LAUNCH();
        }
        SA_LAUNCH(k_topk<TK_BLOCK>, dim3(1, H), TK_THREADS, 0, c->st, S, ldS, (size_t)ldS, 0, T - 1,
                  s->nblocks - 1, b, kmax, 1, idx, score, count, (const int *)NULL, 0);
    }
    CK_LAUNCH();
    headfn_run(c, s, fp, q, C, kc, vc, C, d, H, 1, kmax, idx, count, out, C, part);
}
