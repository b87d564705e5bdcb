/* tblock_kernels.cu: tile-shared block-sparse attention on the GPU, the counterpart of
 * src/sparse/tblock.c (include/sattn/tblock.h; docs/cuda.md "tblock kernels").
 *
 * Shapes (as the CPU's): qkv (B,T,3C), out (B,T,C), lse (B,H,T), head dim d = C/H <= 128,
 * blocks and queries tiles of b: tile i = queries [ib, min((i+1)b, T)), block j = keys
 * [jb, min((j+1)b, T)), ntiles = ceil(T/b). A selection is blocks (B,H,ntiles,n) (ascending,
 * the tile's own block last, -1 after count) and count (B,H,ntiles). The attention kernels
 * work on 64-row sub-tiles of a tile or block (nsub = ceil(b/64) of them; b = 64 is one), so
 * any b works; b < 64 leaves rows of each 64-row tile idle.
 *
 * Same source for nvcc and the CPU emulation (g++ -DSA_EMU). */
#include "sa_dev.h"

#include <float.h>
#include <string.h>

#ifndef _Noreturn
#define _Noreturn [[noreturn]] /* core.h is C11 */
#endif
#include "sattn/cuda_attn.h"

#define LOG2E 1.4426950408889634f
#define LN2 0.69314718055994531f
#define TB_SEL_THREADS 128

/* ------------------------------------------------------------- selection ---- */

/* Pooled queries and mean keys of the complete tiles / blocks i < nm = ntiles - 1 (the
 * only ones the causal selection reads), all heads at once; block (i, bb), thread per column:
 *   qbar[bb][i][c] = (sum_{r<b} q_{ib+r}[c]) / b,   kbar[bb][i][c] = (sum_{r<b} k_{ib+r}[c]) / b,
 * summed in row order and divided once, as tblock.c's row_mean (the same float bits). */
__global__ void __launch_bounds__(128) k_tb_means(float *qbar, float *kbar, const float *qkv, int T, int C,
                                                  int b, int nm) {
    const int i = blockIdx.x, bb = blockIdx.y;
    const size_t ld = (size_t)3 * C;
    const float *x = qkv + ((size_t)bb * T + (size_t)i * b) * ld;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float q = 0.0f, k = 0.0f;
        for (int r = 0; r < b; r++) q += x[(size_t)r * ld + c], k += x[(size_t)r * ld + C + c];
        qbar[((size_t)bb * nm + i) * C + c] = q / (float)b;
        kbar[((size_t)bb * nm + i) * C + c] = k / (float)b;
    }
}

/* Max over the block of v (a (key << 32 | ~j) candidate; 0 = none), every thread gets it.
 * wbest: 4 slots of this round's buffer (rounds alternate buffers, so one barrier a round). */
static __device__ __forceinline__ unsigned long long tb_block_max(unsigned long long v, unsigned long long *wbest,
                                                                  int tid) {
    for (int o = 16; o; o >>= 1) {
        unsigned long long w = __shfl_xor_sync(FULL, v, o);
        v = w > v ? w : v;
    }
    if ((tid & 31) == 0) wbest[tid >> 5] = v;
    __syncthreads();
    v = wbest[0];
    for (int w = 1; w < TB_SEL_THREADS / 32; w++) v = wbest[w] > v ? wbest[w] : v;
    return v;
}

/* kept[0..) = the j < len with key[j] == 0 (the taken ones), ascending; returns how many.
 * Chunks of 128 columns: a ballot per warp and the warps' counts in shared memory. */
static __device__ int tb_compact(int *kept, const unsigned *key, int len, unsigned *wcnt, int tid) {
    const int lane = tid & 31, warp = tid >> 5;
    int base_out = 0;
    for (int base = 0; base < len; base += TB_SEL_THREADS) {
        const int j = base + tid, flag = j < len && key[j] == 0u;
        const unsigned bal = __ballot_sync(FULL, flag);
        __syncthreads(); /* the previous chunk's counts are read */
        if (lane == 0) wcnt[warp] = __popc(bal);
        __syncthreads();
        int pre = base_out, tot = 0;
        for (int w = 0; w < TB_SEL_THREADS / 32; w++) pre += w < warp ? wcnt[w] : 0, tot += wcnt[w];
        if (flag) kept[pre + __popc(bal & ((1u << lane) - 1u))] = j;
        base_out += tot;
    }
    return base_out;
}

/* One block (128 threads) per (tile i, batch row and head bh); the causal MoBA selection:
 *   tile 0 keeps block 0; tile i >= 1 scores each block j < i with
 *   score_j = qbar_{i-1} . kbar_j (the previous tile's pooled query: no query of tile i or
 *   later enters its selection), keeps the top min(n-1, i) (higher score first, equal scores
 *   to the earlier block) and its own block i.
 * Written ascending with i last, -1 after count = min(n, i+1); n is the row stride. Scores
 * (warp per block j, lanes over the head's dims) go to shared memory as f2key keys; then
 * n-1 rounds of a block arg-max on (key, -j) mark the winners (key 0), which a ballot scan
 * writes in ascending order. Dynamic shared memory: ntiles keys. */
__global__ void __launch_bounds__(TB_SEL_THREADS) k_tb_select(int *blocks, int *count, const float *qbar,
                                                              const float *kbar, int C, int H, int ntiles, int n) {
    SA_DYN_SMEM(smraw);
    __shared__ unsigned long long wbest[2][TB_SEL_THREADS / 32];
    __shared__ unsigned wcnt[TB_SEL_THREADS / 32];
    unsigned *key = (unsigned *)smraw;
    const int i = blockIdx.x, bh = blockIdx.y, bb = bh / H, h = bh % H, d = C / H, nm = ntiles - 1;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const size_t tile = (size_t)bh * ntiles + i;
    int *kept = blocks + tile * n;
    const int nsel = min(n - 1, i);
    int c = nsel;
    if (nsel == i) { /* every earlier block (and i = 0) */
        for (int e = tid; e < i; e += TB_SEL_THREADS) kept[e] = e;
    } else if (nsel > 0) {
        const float *q = qbar + ((size_t)bb * nm + i - 1) * C + (size_t)h * d;
        for (int j = warp; j < i; j += TB_SEL_THREADS / 32) {
            const float *k = kbar + ((size_t)bb * nm + j) * C + (size_t)h * d;
            float s = 0.0f;
            for (int e = lane; e < d; e += 32) s = fmaf(q[e], k[e], s);
            s = warp_sum<32>(s);
            if (lane == 0) key[j] = f2key(s);
        }
        __syncthreads();
        for (int r = 0; r < nsel; r++) {
            unsigned long long best = 0;
            for (int j = tid; j < i; j += TB_SEL_THREADS) {
                unsigned long long v = key[j] ? ((unsigned long long)key[j] << 32) | (0xffffffffu - (unsigned)j) : 0ull;
                best = v > best ? v : best;
            }
            best = tb_block_max(best, wbest[r & 1], tid);
            const int jw = (int)(0xffffffffu - (unsigned)(best & 0xffffffffu));
            if (jw % TB_SEL_THREADS == tid) key[jw] = 0u; /* only its owner scans key[jw] */
        }
        __syncthreads();
        c = tb_compact(kept, key, i, wcnt, tid);
    }
    for (int e = c + tid; e < n; e += TB_SEL_THREADS) kept[e] = e == c ? i : -1;
    if (tid == 0) count[tile] = c + 1;
}

/* --------------------------------------------------------------- forward ---- */

/* One block per (64-row sub-tile u of query tile i, head h, batch row bb), 128 threads
 * (sa_dev.h's tiles), later tiles first. For each kept block j (in the selection's order),
 * each 64-key sub-tile [k0, kend) of it that starts at or before the sub-tile's last query:
 *   S = (Q log2(e)/sqrt(d)) K^T, masked where key > query or key >= kend,
 *   online softmax (m, l, acc) in base 2, O += P V;
 * then out = O / L, lse = (m + log2 L) ln 2 — flash's k_flash_fwd over the kept blocks. */
template <int DM>
__global__ void __launch_bounds__(128) k_tblock_fwd(float *out, float *lse, const float *qkv, int T, int C, int H,
                                                    int b, int n, int nsub, const int *blocks, const int *count,
                                                    float qscale) {
    SA_DYN_SMEM(smraw);
    const int DP = DM + 4;
    float *Qs = (float *)smraw, *Ks = Qs + FL_T * DP, *Vs = Ks + FL_T * DP, *Ps = Vs + FL_T * DP;
    const int d = C / H, ntiles = (T + b - 1) / b, x = ntiles * nsub - 1 - (int)blockIdx.x;
    const int i = x / nsub, h = blockIdx.y, bb = blockIdx.z, tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
    const int q0 = i * b + (x % nsub) * FL_T, qend = min(min(i * b + b, T), q0 + FL_T);
    if (q0 >= qend) return; /* a sub-tile past a partial last tile: the whole block leaves */
    const size_t ld = (size_t)3 * C, tile = ((size_t)bb * H + h) * ntiles + i;
    const float *base = qkv + (size_t)bb * T * ld + (size_t)h * d;
    tl_load<DM>(Qs, base, ld, q0, qend, d, qscale, tid);
    fl_state<DM> f;
    fl_init<DM>(f);
    const int *kept = blocks + tile * n, c = count[tile];
    for (int a = 0; a < c; a++) {
        const int j = kept[a], bend = min(j * b + b, T);
        for (int k0 = j * b; k0 < bend && k0 < qend; k0 += FL_T) {
            const int kend = min(bend, k0 + FL_T);
            __syncthreads(); /* the previous sub-tile's K, V, P are no longer read */
            tl_load<DM>(Ks, base + C, ld, k0, kend, d, 1.0f, tid);
            tl_load<DM>(Vs, base + 2 * C, ld, k0, kend, d, 1.0f, tid);
            __syncthreads();
            float s[8][4];
            tl_dot<DM>(s, Qs, Ks, ty, tx);
            fl_softmax<DM>(f, s, Ps, q0, k0, kend, ty, tx);
            __syncthreads();
            tl_acc<DM>(f.acc, Ps, Vs, ty, tx);
        }
    }
    fl_store<DM>(f, out + (size_t)bb * T * C + (size_t)h * d, C, lse + ((size_t)bb * H + h) * T, q0, qend, d, ty,
                 tx);
}

/* -------------------------------------------------------------- backward ---- */

/* D[bb][h][t] = dO_t . O_t over the head's d dims: one warp per (row, head). */
__global__ void __launch_bounds__(128) k_tb_dot(float *D, const float *dout, const float *out, int B, int T, int C,
                                                int H) {
    const size_t w = (size_t)blockIdx.x * 4 + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31, d = C / H;
    if (w >= (size_t)B * T * H) return; /* whole warps only; no block barriers here */
    const size_t bt = w / H;
    const int h = (int)(w % H);
    const float *x = dout + bt * C + (size_t)h * d, *y = out + bt * C + (size_t)h * d;
    float s = 0.0f;
    for (int e = lane; e < d; e += 32) s = fmaf(x[e], y[e], s);
    s = warp_sum<32>(s);
    if (lane == 0) D[((bt / T) * H + h) * T + bt % T] = s;
}

/* Is block j among tile's kept blocks? (the same answer for every thread) */
static __device__ __forceinline__ int tb_keeps(const int *kept, int c, int j) {
    int hit = 0;
    for (int a = 0; a < c; a++) hit |= kept[a] == j;
    return hit;
}

/* The (key sub-tile, query sub-tile) step of k_tblock_bwd_kv, keys as rows: with Ks, Vs the
 * keys [k0, kend), Qs (pre-scaled by log2(e)/sqrt(d)) and dOs the queries [q0, qend), Ls =
 * lse log2(e) and Ds = D of those queries,
 *   P^T = 2^(K Qs^T - Ls) (0 where key > query or out of range),  dP^T = V dO^T,
 *   dS^T = P^T (dP^T - D);  dV += P^T dO,  dK += dS^T Qs. */
template <int DM>
__device__ __forceinline__ void tb_kv_step(float dk[8][DM / 16], float dv[8][DM / 16], const float *Ks,
                                           const float *Vs, const float *Qs, const float *dOs, float *Ps, float *dSs,
                                           const float *Ls, const float *Ds, int k0, int kend, int q0, int qend,
                                           int ty, int tx) {
    float s[8][4], dp[8][4];
    tl_dot<DM>(s, Ks, Qs, ty, tx);
    tl_dot<DM>(dp, Vs, dOs, ty, tx);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++) {
            const int key = k0 + ty * 8 + i, col = tx + 16 * j, q = q0 + col;
            const float p = key < kend && q < qend && key <= q ? exp2f(s[i][j] - Ls[col]) : 0.0f;
            Ps[(ty * 8 + i) * FL_PS + col] = p;
            dSs[(ty * 8 + i) * FL_PS + col] = p * (dp[i][j] - Ds[col]);
        }
    __syncthreads();
    tl_acc<DM>(dv, Ps, dOs, ty, tx);
    tl_acc<DM>(dk, dSs, Qs, ty, tx);
}

/* dK, dV of one 64-key sub-tile [k0, kend) of block j, one block per (sub-tile, h, bb), 128
 * threads, keys as the thread's rows. Walks the tiles i >= j that kept j, ascending, and
 * their query sub-tiles that reach k0 (tb_kv_step each), then
 *   dqkv[key][C + h d + e] += ln2 dK (Qs carried log2(e)/sqrt(d): dK = dS^T Q / sqrt(d)),
 *   dqkv[key][2C + h d + e] += dV.
 * Each dK, dV element has one owner and a fixed order: deterministic, no atomics. */
template <int DM>
__global__ void __launch_bounds__(128) k_tblock_bwd_kv(float *dqkv, const float *dout, const float *qkv,
                                                       const float *lse, const float *D, int T, int C, int H, int b,
                                                       int n, int nsub, const int *blocks, const int *count,
                                                       float qscale) {
    SA_DYN_SMEM(smraw);
    const int DP = DM + 4;
    float *Ks = (float *)smraw, *Vs = Ks + FL_T * DP, *Qs = Vs + FL_T * DP, *dOs = Qs + FL_T * DP;
    float *Ps = dOs + FL_T * DP, *dSs = Ps + FL_T * FL_PS, *Ls = dSs + FL_T * FL_PS, *Ds = Ls + FL_T;
    const int d = C / H, ntiles = (T + b - 1) / b, j = blockIdx.x / nsub, h = blockIdx.y, bb = blockIdx.z;
    const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
    const int k0 = j * b + (blockIdx.x % nsub) * FL_T, kend = min(min(j * b + b, T), k0 + FL_T);
    if (k0 >= kend) return;
    const size_t ld = (size_t)3 * C, bh = (size_t)bb * H + h;
    const float *base = qkv + (size_t)bb * T * ld + (size_t)h * d, *dob = dout + (size_t)bb * T * C + (size_t)h * d;
    tl_load<DM>(Ks, base + C, ld, k0, kend, d, 1.0f, tid);
    tl_load<DM>(Vs, base + 2 * C, ld, k0, kend, d, 1.0f, tid);
    float dk[8][DM / 16], dv[8][DM / 16];
    for (int i = 0; i < 8; i++)
        for (int a = 0; a < DM / 16; a++) dk[i][a] = 0.0f, dv[i][a] = 0.0f;
    for (int i = j; i < ntiles; i++) {
        if (!tb_keeps(blocks + (bh * ntiles + i) * n, count[bh * ntiles + i], j)) continue;
        const int tend = min(i * b + b, T);
        for (int q0 = i * b; q0 < tend; q0 += FL_T) {
            const int qend = min(tend, q0 + FL_T);
            if (qend <= k0) continue; /* every query before every key (own block only) */
            __syncthreads(); /* the previous step's tiles are no longer read */
            tl_load<DM>(Qs, base, ld, q0, qend, d, qscale, tid);
            tl_load<DM>(dOs, dob, (size_t)C, q0, qend, d, 1.0f, tid);
            for (int r = tid; r < FL_T; r += 128) {
                Ls[r] = q0 + r < qend ? lse[bh * T + q0 + r] * LOG2E : INFINITY;
                Ds[r] = q0 + r < qend ? D[bh * T + q0 + r] : 0.0f;
            }
            __syncthreads();
            tb_kv_step<DM>(dk, dv, Ks, Vs, Qs, dOs, Ps, dSs, Ls, Ds, k0, kend, q0, qend, ty, tx);
        }
    }
    for (int i = 0; i < 8; i++) {
        const int key = k0 + ty * 8 + i;
        if (key >= kend) continue;
        float *row = dqkv + ((size_t)bb * T + key) * ld + (size_t)h * d;
        for (int mm = 0; mm < DM / 64; mm++)
            for (int e = 0; e < 4; e++) {
                const int dim = mm * 64 + tx * 4 + e;
                if (dim < d) row[C + dim] += dk[i][mm * 4 + e] * LN2, row[2 * C + dim] += dv[i][mm * 4 + e];
            }
    }
}

/* dQ of one 64-query sub-tile [q0, qend) of tile i, one block per (sub-tile, h, bb), 128
 * threads, queries as the thread's rows: for each kept block's key sub-tiles (the forward's
 * walk), with Qs pre-scaled by log2(e)/sqrt(d) and L = lse log2(e), D per row:
 *   P = 2^(Qs K^T - L) (masked as the forward),  dP = dO V^T,  dS = P (dP - D),  dQ += dS K;
 * then dqkv[q][h d + e] += dQ / sqrt(d). One owner per element, the selection's order. */
template <int DM>
__global__ void __launch_bounds__(128) k_tblock_bwd_q(float *dqkv, const float *dout, const float *qkv,
                                                      const float *lse, const float *D, int T, int C, int H, int b,
                                                      int n, int nsub, const int *blocks, const int *count,
                                                      float qscale) {
    SA_DYN_SMEM(smraw);
    const int DP = DM + 4;
    float *Qs = (float *)smraw, *dOs = Qs + FL_T * DP, *Ks = dOs + FL_T * DP, *Vs = Ks + FL_T * DP;
    float *dSs = Vs + FL_T * DP;
    const int d = C / H, ntiles = (T + b - 1) / b, x = ntiles * nsub - 1 - (int)blockIdx.x;
    const int i = x / nsub, h = blockIdx.y, bb = blockIdx.z, tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
    const int q0 = i * b + (x % nsub) * FL_T, qend = min(min(i * b + b, T), q0 + FL_T);
    if (q0 >= qend) return;
    const size_t ld = (size_t)3 * C, bh = (size_t)bb * H + h;
    const float *base = qkv + (size_t)bb * T * ld + (size_t)h * d;
    tl_load<DM>(Qs, base, ld, q0, qend, d, qscale, tid);
    tl_load<DM>(dOs, dout + (size_t)bb * T * C + (size_t)h * d, (size_t)C, q0, qend, d, 1.0f, tid);
    float L[8], Dr[8], dq[8][DM / 16];
    for (int r = 0; r < 8; r++) {
        const int q = q0 + ty * 8 + r;
        L[r] = q < qend ? lse[bh * T + q] * LOG2E : INFINITY, Dr[r] = q < qend ? D[bh * T + q] : 0.0f;
        for (int a = 0; a < DM / 16; a++) dq[r][a] = 0.0f;
    }
    const int *kept = blocks + (bh * ntiles + i) * n, c = count[bh * ntiles + i];
    for (int a = 0; a < c; a++) {
        const int j = kept[a], bend = min(j * b + b, T);
        for (int k0 = j * b; k0 < bend && k0 < qend; k0 += FL_T) {
            const int kend = min(bend, k0 + FL_T);
            __syncthreads();
            tl_load<DM>(Ks, base + C, ld, k0, kend, d, 1.0f, tid);
            tl_load<DM>(Vs, base + 2 * C, ld, k0, kend, d, 1.0f, tid);
            __syncthreads();
            float s[8][4], dp[8][4];
            tl_dot<DM>(s, Qs, Ks, ty, tx);
            tl_dot<DM>(dp, dOs, Vs, ty, tx);
            for (int r = 0; r < 8; r++)
                for (int jj = 0; jj < 4; jj++) {
                    const int q = q0 + ty * 8 + r, key = k0 + tx + 16 * jj;
                    const float p = key < kend && key <= q && q < qend ? exp2f(s[r][jj] - L[r]) : 0.0f;
                    dSs[(ty * 8 + r) * FL_PS + tx + 16 * jj] = p * (dp[r][jj] - Dr[r]);
                }
            __syncthreads();
            tl_acc<DM>(dq, dSs, Ks, ty, tx);
        }
    }
    const float inv = LN2 * qscale; /* 1/sqrt(d) */
    for (int r = 0; r < 8; r++) {
        const int q = q0 + ty * 8 + r;
        if (q >= qend) continue;
        float *row = dqkv + ((size_t)bb * T + q) * ld + (size_t)h * d;
        for (int mm = 0; mm < DM / 64; mm++)
            for (int e = 0; e < 4; e++) {
                const int dim = mm * 64 + tx * 4 + e;
                if (dim < d) row[dim] += dq[r][mm * 4 + e] * inv;
            }
    }
}

static size_t bwd_kv_smem(int DM) {
    return (size_t)(4 * FL_T * (DM + 4) + 2 * FL_T * FL_PS + 2 * FL_T) * sizeof(float);
}
static size_t bwd_q_smem(int DM) { return (size_t)(4 * FL_T * (DM + 4) + FL_T * FL_PS) * sizeof(float); }

/* ================================================================ host side ==== */

/* The opt-in shared memory of the kernels above (called by sa_cuda_open). */
void sa_tblock_attrs(void) {
    CK(cudaFuncSetAttribute(k_tblock_fwd<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)flash_smem(64)));
    CK(cudaFuncSetAttribute(k_tblock_fwd<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)flash_smem(128)));
    CK(cudaFuncSetAttribute(k_tblock_bwd_kv<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bwd_kv_smem(64)));
    CK(cudaFuncSetAttribute(k_tblock_bwd_kv<128>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                            (int)bwd_kv_smem(128)));
    CK(cudaFuncSetAttribute(k_tblock_bwd_q<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bwd_q_smem(64)));
    CK(cudaFuncSetAttribute(k_tblock_bwd_q<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bwd_q_smem(128)));
}

extern "C" int sa_cuda_tblock_check(int B, int T, int C, int H, int b, int n, sattn_err *e) {
    if (B < 1 || T < 1 || H < 1 || b < 1 || n < 1 || C % H)
        return err_set(e, "cuda tblock: B=%d T=%d C=%d H=%d b=%d n=%d: expected all >= 1 and H | C", B, T, C, H, b, n);
    if (C / H > 128) return err_set(e, "cuda tblock: head dim %d > 128", C / H);
    if ((T + b - 1) / b > SA_TBLOCK_MAX_TILES)
        return err_set(e, "cuda tblock: %d tiles > %d (the selection keeps a tile's scores in shared memory)",
                       (T + b - 1) / b, SA_TBLOCK_MAX_TILES);
    return 0;
}

static void check(int B, int T, int C, int H, int b, int n) {
    sattn_err e;
    if (sa_cuda_tblock_check(B, T, C, H, b, n, &e)) die_at(__FILE__, __LINE__, "%s", e.msg);
}

extern "C" int sa_cuda_tblock_n(int T, int b, int n) {
    const int nt = (T + b - 1) / b;
    return n < nt ? n : nt;
}

extern "C" void sa_cuda_tblock_select(sa_cuda *c, const float *qkv, int B, int T, int C, int H, int b, int n,
                                      int *blocks, int *count) {
    check(B, T, C, H, b, n);
    const int nt = (T + b - 1) / b, nm = nt > 1 ? nt - 1 : 1;
    n = sa_cuda_tblock_n(T, b, n);
    float *qbar = (float *)sa_scratch(c, 2 * (size_t)B * nm * C * sizeof(float)), *kbar = qbar + (size_t)B * nm * C;
    if (nt > 1) {
        SA_LAUNCH(k_tb_means, dim3(nt - 1, B), 128, 0, c->st, qbar, kbar, qkv, T, C, b, nm);
        CK_LAUNCH();
    }
    SA_LAUNCH(k_tb_select, dim3(nt, B * H), TB_SEL_THREADS, (size_t)nt * sizeof(unsigned), c->st, blocks, count, qbar,
              kbar, C, H, nt, n);
    CK_LAUNCH();
}

extern "C" void sa_cuda_tblock_forward(sa_cuda *c, float *out, float *lse, const float *qkv, int B, int T, int C,
                                       int H, int b, int n, const int *blocks, const int *count) {
    check(B, T, C, H, b, n);
    const int d = C / H, nt = (T + b - 1) / b, nsub = (b + FL_T - 1) / FL_T;
    n = sa_cuda_tblock_n(T, b, n);
    const dim3 grid(nt * nsub, H, B);
    const float qscale = LOG2E / sqrtf((float)d);
    if (d <= 64)
        SA_LAUNCH(k_tblock_fwd<64>, grid, 128, flash_smem(64), c->st, out, lse, qkv, T, C, H, b, n, nsub, blocks, count,
                  qscale);
    else
        SA_LAUNCH(k_tblock_fwd<128>, grid, 128, flash_smem(128), c->st, out, lse, qkv, T, C, H, b, n, nsub, blocks,
                  count, qscale);
    CK_LAUNCH();
}

extern "C" void sa_cuda_tblock_backward(sa_cuda *c, float *dqkv, const float *dout, const float *qkv,
                                        const float *out, const float *lse, int B, int T, int C, int H, int b, int n,
                                        const int *blocks, const int *count) {
    check(B, T, C, H, b, n);
    const int d = C / H, nt = (T + b - 1) / b, nsub = (b + FL_T - 1) / FL_T;
    n = sa_cuda_tblock_n(T, b, n);
    float *D = (float *)sa_scratch(c, (size_t)B * H * T * sizeof(float));
    const size_t warps = (size_t)B * T * H;
    SA_LAUNCH(k_tb_dot, (unsigned)((warps + 3) / 4), 128, 0, c->st, D, dout, out, B, T, C, H);
    CK_LAUNCH();
    const dim3 grid(nt * nsub, H, B);
    const float qscale = LOG2E / sqrtf((float)d);
    if (d <= 64) {
        SA_LAUNCH(k_tblock_bwd_kv<64>, grid, 128, bwd_kv_smem(64), c->st, dqkv, dout, qkv, lse, D, T, C, H, b, n, nsub,
                  blocks, count, qscale);
        CK_LAUNCH();
        SA_LAUNCH(k_tblock_bwd_q<64>, grid, 128, bwd_q_smem(64), c->st, dqkv, dout, qkv, lse, D, T, C, H, b, n, nsub,
                  blocks, count, qscale);
    } else {
        SA_LAUNCH(k_tblock_bwd_kv<128>, grid, 128, bwd_kv_smem(128), c->st, dqkv, dout, qkv, lse, D, T, C, H, b, n,
                  nsub, blocks, count, qscale);
        CK_LAUNCH();
        SA_LAUNCH(k_tblock_bwd_q<128>, grid, 128, bwd_q_smem(128), c->st, dqkv, dout, qkv, lse, D, T, C, H, b, n,
                  nsub, blocks, count, qscale);
    }
    CK_LAUNCH();
}
