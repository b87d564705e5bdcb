/* tcmp: NSA's compressed branch for tile-shared block-sparse layers (tblock.h): every query
 * also attends densely to the earlier blocks pooled into one key and one value each, and a
 * learned per-head gate mixes that in. Through it the mean keys that score the blocks for
 * selection receive gradient from the language-modelling loss (selection itself is discrete).
 *
 * Layouts as tblock.h: qkv (B,T,3C), H heads of hs = C/H, out (B,T,C); blocks of b keys,
 * tiles of b queries. Per (batch row, head):
 *   Kbar_j = (1/b) sum_{s in block j} k_s,  Vbar_j = (1/b) sum_{s in block j} v_s,
 *   for the complete blocks j < floor(T/b);
 *   query t of tile i = floor(t/b) attends to the blocks j < i (all complete, all before t):
 *     c_t = sum_{j<i} softmax_j(q_t . Kbar_j / sqrt(hs)) Vbar_j   (c_t = 0 in tile 0),
 *     g_t = sigmoid(w_h . q_t + u_h)  (w_h: hs floats, u_h: 1, per head: hs + 1 parameters),
 *     out_t += g_t c_t.
 * Every query of a tile sees the same compressed blocks, so the scores of a tile are one
 * (b x hs) (hs x i) product, like the tile's selected blocks. The own block is left to the
 * selected branch (always kept, causal). Initialised w = 0, u = 0: g = 1/2. */
#ifndef SATTN_TCMP_H
#define SATTN_TCMP_H

#include <stddef.h>

/* Parameters per head: the gate's w_h (hs) and u_h. */
static inline size_t tcmp_param_count(int hs) { return (size_t)hs + 1; }
/* w = 0 and u = 0 (g = 1/2 everywhere at the start). */
void tcmp_init(float *params, int hs);

/* What the forward keeps for the backward, in floats: c (B,T,C), lse and g (B,H,T). */
size_t tcmp_cache_floats(int B, int T, int C, int H);

/* out += g_t c_t (formulas above). params: H blocks of hs + 1 (head h's at params[h]).
 * cache: tcmp_cache_floats. Parallel over (batch row, head, tile). */
void tcmp_forward(float *out, float *cache, const float *qkv, int B, int T, int C, int H, int b,
                  const float *const *params);

/* Scratch floats the backward needs: per (batch row, head) the pooled keys and values and
 * their gradients, and its partial gate gradient: B H (4 floor(T/b) hs + hs + 1). */
size_t tcmp_scratch_floats(int B, int T, int C, int H, int b);

/* Given dout (B,T,C), the gradient of the loss with respect to the layer's output: dqkv +=
 * the compressed branch's gradient into q (scores and gate), k and v (through the means);
 * dparams[h] += the gate's gradient (may be NULL: no parameter gradient). Parallel over
 * (batch row, head); each task sums its own in a fixed order: the same bits for any
 * thread count. */
void tcmp_backward(float *dqkv, float *const *dparams, const float *dout, const float *qkv, const float *cache,
                   int B, int T, int C, int H, int b, const float *const *params, float *scratch);

#endif
