/* sparse_decode: one decode step of a sparse head on the CPU — the query at position
 * T-1 against a KV cache of T keys, for the index and block selectors with the softmax
 * head function. `sattn bench` times them (attnbench.h) and the CUDA decode kernels
 * are checked against them (cuda_attn.h, tests/cuda/parity.c).
 *
 * One head: q (d), cached keys and values at k + s*ld, v + s*ld for s = 0..T-1, the
 * newest being T-1. The "side" state belongs to the cache (a real cache updates it once
 * per token, so the bench builds it untimed): the block summaries, or the indexer's
 * projected keys. Output o (d); idx (kmax) gets the selected keys in the order the
 * prefill selector (selector_select) lists them for its last query; the functions
 * return their count. The head function is softmax whatever s->fn says. */
#ifndef SATTN_SPARSE_DECODE_H
#define SATTN_SPARSE_DECODE_H

#include <stddef.h>

#include "sattn/core.h"
#include "sattn/sparse.h"

/* block: the summaries of the nb = floor(T/b) complete blocks, per block 2*d floats
 * (mean key, or [lo | hi] with bounds): selector_block_summaries. */
void sparse_decode_block_side(const head_spec *s, int d, const float *k, int ld, int T, float *sum);
/* work: 3*(T/b + 1) + kmax floats (scores, top-k and its order, softmax weights). */
size_t sparse_decode_block_work(const head_spec *s, int T);
/* Scores the T/b block summaries, keeps the top n-1 and the local block, softmax over
 * their keys. */
int sparse_decode_block(const head_spec *s, int d, const float *q, const float *k, const float *v, int ld,
                        int T, const float *sum, float *o, int *idx, float *work);

/* index: kt (T, r) = k Wk^T, the indexer's projected keys. */
void sparse_decode_index_side(const head_spec *s, const float *params, int d, const float *k, int ld, int T,
                              float *kt);
/* work: J*r + J + 3*T + 2*k floats. */
size_t sparse_decode_index_work(const head_spec *s, int T);
/* Scores all T cached keys for the one query (selector.c's formula), top-k, softmax. */
int sparse_decode_index(const head_spec *s, const float *params, int d, const float *q, const float *k,
                        const float *v, int ld, int T, const float *kt, float *o, int *idx, float *work);

/* Selection only: what the two steps above select (into idx, returning the count),
 * before their softmax; hybrid_decode.h runs any head function on it. Same work sizes;
 * cnt may be NULL. The index step keeps selector_select's dynamic k when tau > 0. */
int sparse_decode_block_select(const head_spec *s, int d, const float *q, int T, const float *sum, int *idx,
                               float *work, op_count *cnt);
int sparse_decode_index_select(const head_spec *s, const float *params, int d, const float *q, int T,
                               const float *kt, int *idx, float *work, op_count *cnt);

/* pos: the query's logits over positions 0..T-1 (selector.c's pos formula), top-k.
 * work: hidden + T + k floats. */
size_t sparse_decode_pos_work(const head_spec *s, int T);
int sparse_decode_pos_select(const head_spec *s, const float *params, int d, int max_seq, const float *q, int T,
                             int *idx, float *work);

/* tile (tile=1, tblock.h's selection): the query at t = T-1 (tile i = t / b) against the c
 * blocks its tile kept (kept ascending, the last = i, from tblock_select_tile): every key of
 * the c-1 earlier blocks and the own block's keys i b .. t. Exact float32 softmax over them;
 * each block's b cached rows (stride ld) are read in order by two one-row products (scores,
 * then P V). work: sparse_decode_tile_work(b, c) floats. */
size_t sparse_decode_tile_work(int b, int c);
void sparse_decode_tile(int d, const float *q, const float *k, const float *v, int ld, int T, int b,
                        const int *kept, int c, float *o, float *work);

/* The same two steps, adding their matrix products to cnt (core.h; a SATTN_COUNT build). */
int sparse_decode_block_counted(const head_spec *s, int d, const float *q, const float *k, const float *v,
                                int ld, int T, const float *sum, float *o, int *idx, float *work, op_count *cnt);
int sparse_decode_index_counted(const head_spec *s, const float *params, int d, const float *q,
                                const float *k, const float *v, int ld, int T, const float *kt, float *o,
                                int *idx, float *work, op_count *cnt);

#endif
