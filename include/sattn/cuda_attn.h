/* cuda_attn: CUDA kernels for one attention layer on an NVIDIA GPU — dense flash
 * attention, the index and block selectors with top-k, the softmax and mlp head
 * functions over the gathered keys, and one decode step against a KV cache for each
 * (docs/cuda.md). Built only by `make cuda` (or `make cuda-emu`, the CPU emulation);
 * in a normal build only sa_cuda_built() and sa_cuda_open()'s "built without CUDA"
 * error exist, so callers compile everywhere.
 *
 * Semantics are the CPU's, layout for layout: qkv (B,T,3C) with head h in columns
 * h*d .. h*d+d-1 of each third, d = C/H (d <= 128); out (B,T,C); caches kc, vc (T,C);
 * the selector and head-function parameters of head h at params + h*np (np:
 * selector_param_count, headfn_param_count), exactly as src/sparse lays them out.
 * Selections are (H, nq, kmax) int idx and float score, (H, nq) int count, each row in
 * selector_select's order (descending score, ties to the earlier key; block: the local
 * block first). Dynamic k (tau > 0), pos selectors and the per-query selectors' backward
 * passes are not implemented (sa_cuda_check_spec says so); the tile-shared block attention
 * (tblock) has a forward and a backward.
 *
 * All pointers passed to the kernels are DEVICE pointers (sa_cuda_alloc). Every call
 * is asynchronous on the context's stream; sa_cuda_sync waits. No global mutable
 * state: everything lives in the sa_cuda context. A CUDA error anywhere aborts with
 * the file, line and CUDA's message (the kernels are not meant to fail softly).
 * `sattn bench --device cuda` is cuda_bench.h (it sits above analysis; this header
 * depends on core and sparse only). */
#ifndef SATTN_CUDA_ATTN_H
#define SATTN_CUDA_ATTN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" { /* core.h and sparse.h are C headers without their own guards */
#endif

#include "sattn/core.h"
#include "sattn/sparse.h"

typedef struct sa_cuda sa_cuda;

/* 1 when this binary was built with the CUDA kernels (make cuda / cuda-emu), else 0. */
int sa_cuda_built(void);
/* Opens device 0. -1 with a one-line message in e when built without CUDA ("built
 * without CUDA: run make cuda"), when cudaGetDeviceCount fails or finds no device. */
int sa_cuda_open(sa_cuda **ctx, sattn_err *e);
void sa_cuda_close(sa_cuda *ctx);
/* "NVIDIA H200" etc. */
const char *sa_cuda_name(const sa_cuda *ctx);

/* ---- memory (aborts on failure) ---- */
void *sa_cuda_alloc(sa_cuda *ctx, size_t bytes);
void sa_cuda_free(sa_cuda *ctx, void *p);
void sa_cuda_upload(sa_cuda *ctx, void *dst, const void *src, size_t bytes);
void sa_cuda_download(sa_cuda *ctx, void *dst, const void *src, size_t bytes); /* synchronous */
/* Every byte 0xFF: a NaN in every float, -1 in every int (the parity tests' poison). */
void sa_cuda_poison(sa_cuda *ctx, void *dst, size_t bytes);
void sa_cuda_sync(sa_cuda *ctx);

/* ---- timing: cudaEvents on the context's stream ---- */
void sa_cuda_timer_start(sa_cuda *ctx);
/* Milliseconds since sa_cuda_timer_start (waits for the stream). */
double sa_cuda_timer_stop(sa_cuda *ctx);

/* 0 if the GPU path implements spec at head dim d (index or block selector, softmax
 * or mlp head, fixed k, d <= 128, limits on k and hidden); else -1 and why in e. */
int sa_cuda_check_spec(const head_spec *s, int d, int T, sattn_err *e);

/* ---- dense ---- */
/* flash_attention_forward on the GPU: out (B,T,C), lse (B,H,T). */
void sa_cuda_flash_forward(sa_cuda *ctx, float *out, float *lse, const float *qkv, int B, int T, int C,
                           int H);
/* attention_decode_step: q (C), kc, vc (T,C) -> out (C); split-K over the cache. */
void sa_cuda_decode_dense(sa_cuda *ctx, float *out, const float *q, const float *kc, const float *vc,
                          int T, int C, int H);

/* ---- sparse prefill (batch 1: qkv (T,3C)) ---- */
/* selector_select for every head: idx, score (H,T,kmax), count (H,T), kmax = selector_kmax. */
void sa_cuda_select(sa_cuda *ctx, const head_spec *s, const float *sel_params, const float *qkv,
                    int T, int C, int H, int *idx, float *score, int *count);
/* headfn_forward for every head from a selection: out (T,C). fn_params: NULL for softmax. */
void sa_cuda_headfn(sa_cuda *ctx, const head_spec *s, const float *fn_params, const float *qkv,
                    int T, int C, int H, const int *idx, const int *count, float *out);
/* Both: the whole sparse layer. */
void sa_cuda_sparse_forward(sa_cuda *ctx, const head_spec *s, const float *sel_params,
                            const float *fn_params, const float *qkv, int T, int C, int H, int *idx,
                            float *score, int *count, float *out);

/* ---- sparse decode (one query at position T-1 against caches of T keys) ---- */
/* The cache-side state, built once per token in a real cache (untimed in the bench):
 * side = block summaries (H, T/b, 2d) as sparse_decode_block_side, or the indexer's
 * projected keys (H, T, r) as sparse_decode_index_side (sparse_decode.h). */
size_t sa_cuda_side_floats(const head_spec *s, int T, int C, int H);
void sa_cuda_decode_side(sa_cuda *ctx, const head_spec *s, const float *sel_params, const float *kc,
                         int T, int C, int H, float *side);
/* sparse_decode_block / sparse_decode_index (+ the mlp head) for every head: out (C), idx (H,kmax),
 * score (H,kmax), count (H). */
void sa_cuda_decode_sparse(sa_cuda *ctx, const head_spec *s, const float *sel_params,
                           const float *fn_params, const float *q, const float *kc, const float *vc,
                           int T, int C, int H, const float *side, float *out, int *idx, float *score,
                           int *count);

/* ---- tile-shared block attention (tblock.h on the GPU; src/cuda/tblock_kernels.cu) ----
 * Shapes as tblock.h: qkv (B,T,3C), out (B,T,C), lse (B,H,T); blocks of b keys, tiles of b
 * queries, ntiles = ceil(T/b); a selection is blocks (B,H,ntiles,nr) and count (B,H,ntiles)
 * (device ints), nr = sa_cuda_tblock_n(T, b, n) = min(n, ntiles), tblock_sel's layout: a
 * tile's kept blocks ascending, its own block last, -1 after count. Every function below
 * takes the n asked for (>= 1) and strides by nr. d = C/H <= 128. */
enum { SA_TBLOCK_MAX_TILES = 12288 }; /* ntiles: one tile's scores fit 48 KB of shared memory */
/* 0 if the GPU runs these sizes; else -1 and why in e. */
int sa_cuda_tblock_check(int B, int T, int C, int H, int b, int n, sattn_err *e);
int sa_cuda_tblock_n(int T, int b, int n);
/* The CAUSAL tile selection: tile 0 keeps block 0; tile i >= 1 scores every block j < i by
 * qbar_{i-1} . kbar_j (qbar_{i-1} the mean query of the previous tile, kbar_j the mean key of
 * block j), keeps the top min(n-1, i) (higher first, ties to the earlier block) and block i. */
void sa_cuda_tblock_select(sa_cuda *ctx, const float *qkv, int B, int T, int C, int H, int b, int n,
                           int *blocks, int *count);
/* tblock_forward: query t of tile i attends causally to the keys of the blocks tile i kept:
 * out_t = sum softmax(q_t . k_s / sqrt(d)) v_s, lse_t = log sum exp(q_t . k_s / sqrt(d)). */
void sa_cuda_tblock_forward(sa_cuda *ctx, float *out, float *lse, const float *qkv, int B, int T, int C,
                            int H, int b, int n, const int *blocks, const int *count);
/* tblock_backward: dqkv (B,T,3C) += the gradient from dout (B,T,C), given the forward's out and
 * lse over the same selection (FlashAttention-2: P recomputed from lse). Deterministic (every
 * output element has one owning thread block and a fixed order; no atomics). Scratch: B H T
 * floats of the context's buffer. */
void sa_cuda_tblock_backward(sa_cuda *ctx, float *dqkv, const float *dout, const float *qkv,
                             const float *out, const float *lse, int B, int T, int C, int H, int b, int n,
                             const int *blocks, const int *count);

/* ---- the shared (per-layer) lightning indexer, bf16 operands (lindex.h's bf16 path on the GPU;
 * src/cuda/lindex_kernels.cu) ----
 * w: the layer's parameters in lindex.h's layer layout (lindex_param_count floats:
 * Wq (J r, C) | Wk (r, C) | Ww (J, C) | bw (J)); q, k: the layer's C-wide rows at stride ld
 * (qkv and qkv + C with ld = 3C). qt_j and kt are rounded to bf16 (nearest even), products
 * summed in float32:  score(t, s) = sum_j w_j(t) relu(qt_j(t) . kt(s)), s <= t.
 * Fixed k only (tau = 0). */
/* 0 if the GPU runs it: r <= 32, J <= 8, 1 <= k <= 4096; else -1 and why in e. */
int sa_cuda_lindex_check(int C, int r, int J, int k, sattn_err *e);
/* lindex_scores: S (T, T), row t written on s <= t only. Scratch: the context's. */
void sa_cuda_lindex_scores(sa_cuda *ctx, const float *w, const float *q, const float *k, int ld, int T, int C,
                           int r, int J, float *S);
/* lindex_select at tau = 0: idx, score (T, kmax), count (T), kmax = min(k, T); descending
 * score, ties to the earlier key, -1 (score 0) past count. */
void sa_cuda_lindex_select(sa_cuda *ctx, const float *w, const float *q, const float *k, int ld, int T, int C,
                           int r, int J, int topk, int *idx, float *score, int *count);

#ifdef __cplusplus
}
#endif

#endif
