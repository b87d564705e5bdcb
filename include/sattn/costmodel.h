/* costmodel: analytic FLOPs, bytes moved and peak activation memory of ONE attention
 * layer (docs/costmodel.md). d_model C, H heads, head dim d = C/H, sequence T, batch 1,
 * float32 (4 bytes), 2 FLOPs per multiply-add.
 *
 * Modes: prefill (T queries t = 0..T-1, keys s <= t) and decode (one query at position
 * T-1 against a KV cache of T keys).
 *
 * Projections (qkv and output), per layer:
 *   prefill FLOPs  2*T*C*3C + 2*T*C*C = 8*T*C^2          decode: T = 1
 *   bytes          4*(read x TC + W 3C^2 + write qkv 3TC + read y TC + Wo C^2 + write TC)
 * Attention FLOPs of ONE head, prefill (head_attention_flops; the planner, autoplan.h,
 * and the report use it too), over one sequence of T queries (t = 0..T-1, keys s <= t),
 * 2 FLOPs per multiply-add, d = head dim, P = T(T+1)/2 causal pairs,
 * |S_t| = keys the selector keeps for query t, kmax = selector_kmax(s, T):
 *   dense:    q.k scores and p.v sums over s <= t            2 * 2 * d * P
 *   selector
 *     index:  projections (Wq, Wk, Ww) per position          2 * (J*r*d + r*d + J*d) * T
 *             indexer scores per pair, + J for the weighting (2*J*r + J) * P
 *             top-k, 1 per candidate key                     P
 *             |S_t| = min(kmax, t+1)
 *     pos:    MLP per query; its output layer spans all T    2 * (hidden*d + hidden*T) * T
 *             positions, so it is quadratic in T
 *             top-k, 1 per candidate key                     P
 *             |S_t| = min(kmax, t+1)
 *     block:  summaries (mean key; bounds: min and max)      d*T   (bounds: 2*d*T)
 *             scores of the nb(t) = floor(t/b) complete      sum_t 2*d*nb(t)   (bounds: 2*2*d*nb(t))
 *             blocks before t's own block
 *             top-(n-1) of them, 1 per candidate block       sum_t nb(t)
 *             |S_t| = (t mod b) + 1 + b * min(n-1, nb(t))    (own block up to t, n-1 whole blocks)
 *     block, tile=1 (tblock.h: one selection per tile of b queries; the same |S_t|):
 *             mean keys and the tiles' pooled queries        2*d*T
 *             tile i scores its i earlier blocks, top-(n-1)  sum_i (2*d*i + i)
 *             with cmp=1 (tcmp.h): mean values d*T, per query of tile i its i pooled
 *             blocks and its gate                            sum_t (4*d*i + 2*d)
 *             decode: the tile's selection shared by its b steps ((2*d*i + i + 2*d) / b)
 *             and with cmp 4*d*i + 2*d + d/b
 *   head function
 *     softmax: q.k and p.v over S_t                          sum_t 2 * 2 * d * |S_t|
 *     mlp:    per query, input D = kmax*d + d*[q] + kmax*[logits] (zero-padded to kmax)
 *                                                            2 * (hidden*D + d*hidden) * T
 *             the selected logits q.k (with logits=1)        sum_t 2 * d * |S_t|
 * With dynamic k (tau > 0) |S_t| is its upper bound min(kmax, t+1).
 * A shared indexer (index with shared=1, lindex.h: one per layer, C-wide projections) is
 * charged per head as 1/H of the layer's: the projection term as written (H heads x d =
 * C), the pair terms (2Jr + J + 1) P divided by H (decode: (2Jr + J + 1) T / H). Softmax
 * exponentials, normalisations and activation functions are not counted (they are
 * O(pairs) or O(hidden) with a small constant for every variant alike).
 * Decode: the same per-query terms for query T-1:
 *   dense 4dT; index 2(Jrd+rd+Jd) + (2Jr+J+1)T; pos 2(hd+hT) + T;
 *   block w*d (its block's summary) + w*2d*nb + nb, nb = floor((T-1)/b), w = 1 (+1 bounds);
 *   softmax 4d|S|; mlp 2(hD + dh) + 2d|S|*[logits].
 * Attention bytes per head (floats x 4):
 *   naive  q,k,v read 3Td, out written Td, the T x T scores written and read 2T^2
 *   flash  q read Td, out written Td, K and V re-read per query tile of Br rows:
 *          2d * sum_i min(T, (i+1)Br), i = 0..ceil(T/Br)-1
 *   sparse q read Td, out written Td, selected k and v rows 2d*sum_t|S_t|
 *          (mlp: v rows, and k rows with logits), the selection written and read
 *          2*sum_t|S_t| (index and score), plus the selector's own traffic:
 *          index: read k and q 2Td, write q~,k~,w (Jr+r+J)T, read k~ per query
 *          tile like flash: r * sum_i min(T, (i+1)Br) (decode: r*T)
 *          pos:   logits row written and read 2P
 *          block: read K Td, write summaries w*d*nb(T), read them once per query
 *          tile: w*d*sum_i floor((min(T, (i+1)Br) - 1)/b) (decode: w*d*nb(T-1))
 * Peak activation memory of the layer (bytes): qkv 3TC + out TC (decode: KV cache
 * 2TC + q, out 2C) plus the variant's scratch:
 *   naive  H*T^2 (every head's probabilities, as a training forward keeps them;
 *          decode: H*T scores)
 *   flash  H*2T row statistics (m, l) + one min(Br,T)^2 tile (decode: H*2)
 *   sparse H*(2*T*kmax + T) selection buffers (decode: T = 1 row) + the selector's
 *          scratch per head (index (Jr+r+J)T + T score row; pos hidden + T;
 *          block w*d*nb + nb) + mlp input and hidden (D + hidden). */
#ifndef SATTN_COSTMODEL_H
#define SATTN_COSTMODEL_H

#include "sattn/sparse.h"

typedef enum { CM_NAIVE = 0, CM_FLASH = 1, CM_SPARSE = 2 } cm_kind;

typedef struct {
    char name[96];  /* "dense-naive", "dense-flash" or the spec's text form */
    cm_kind kind;
    head_spec spec; /* CM_SPARSE only */
} cm_variant;

typedef struct {
    int C, H, T; /* T: queries (prefill) or cached keys (decode) */
    int Br;      /* flash query tile (default 64) */
    int decode;  /* 0 prefill, 1 one decode step */
} cm_shape;

typedef struct {
    double proj_flops, attn_flops, flops;       /* flops = proj + attn, per layer */
    double proj_bytes, attn_bytes, bytes;
    double peak_bytes;
} cm_cost;

/* {C, H, T, 64, 0}. */
cm_shape cm_shape_make(int C, int H, int T);
/* Attention FLOPs of one head with spec s (dense when s->sel == SEL_DENSE) for a
 * sequence of T queries, head dim d: the prefill formulas above. */
double head_attention_flops(const head_spec *s, int d, int T);
/* 2*T*C*3C + 2*T*C*C (T = 1 for decode). */
double cm_proj_flops(const cm_shape *s);
void cm_cost_of(const cm_shape *s, const cm_variant *v, cm_cost *out);

cm_variant cm_dense(cm_kind kind);
cm_variant cm_sparse(const head_spec *spec);
/* The standard list at k keys per query: dense-naive, dense-flash, pos+softmax, pos+mlp,
 * index+softmax, index+mlp, block+softmax, block+mlp (block: b*n = k, b = 16 for
 * k >= 32, else k/2). Returns the count (8); out holds at least 8. */
int cm_standard_variants(int k, cm_variant *out);

/* Smallest T in [1, t_max] with total FLOPs (projections included) of v below
 * dense's at shape s (s->T ignored), by doubling then bisection; -1 if none.
 * The result T* is cheaper and T*-1 is not. */
int cm_crossover(const cm_shape *s, const cm_variant *v, int t_max);

/* Multiply-adds of the matrix products sattn's own kernels execute for one layer's
 * attention (no projections), exactly: what a SATTN_COUNT build counts (tests assert
 * equality, docs/costmodel.md "Counted"). Unlike attn_flops (the useful work of any
 * causal kernel, 2 FLOPs a multiply-add) it follows the kernels' tiles: the diagonal
 * tiles' masked halves (naive rows of ATT_TILE, index selector rows of INDEX_QTILE; flash
 * tiles of FLASH_BR only where their FLASH_MR x FLASH_NR blocks straddle the diagonal) and
 * block scoring per BLOCK_QTILE tile are executed work; elementwise
 * terms (softmax, relu, sums of summaries) are not matrix products. Decode: the sparse
 * kernels of attnbench.h (index/block + softmax), whose cache-side keys or summaries are
 * kept with the cache. -1 where no kernel runs the combination (naive decode; pos or
 * mlp decode), the key count depends on the data (dynamic k), or the spec is a shared
 * indexer (lindex.h: its 4-row groups are not modelled here). */
double cm_kernel_macs(const cm_shape *s, const cm_variant *v);

/* Our reconstruction of the original project's formula, per head (docs/costmodel.md):
 *   sparse = T*hidden*d (pos selector as O(hidden*d) per query) + T*k*d*2 (MLP over k values)
 *   dense  = 2*2*T^2*d (naive attention). */
double cm_original_sparse(int d, int T, int k, int hidden);
double cm_original_dense(int d, int T);

#endif
