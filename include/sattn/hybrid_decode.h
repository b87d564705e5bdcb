/* hybrid_decode: the sparse heads' side of KV-cache generation: the decode hook
 * (generate.h's gen_decode_hook) of a hybrid model (hybrid.h), so that a sparse head
 * decodes one token from its own incremental state instead of a recompute.
 *
 * Per sparse head (layer l, head h) the state lives beside the generator's cache (rows
 * of the layer's kc, vc; head h's columns h*hs .. h*hs+hs-1):
 *   block: the summaries (mean key, or [lo | hi] bounds) of the complete blocks, one
 *          more each time a block of b keys fills (selector_block_summaries);
 *   index: the indexer's projected keys kt (cap, r) = k Wk^T, one row appended per token
 *          (sparse_decode_index_side);
 *   pos:   nothing (its logits depend on positions only).
 *   tile:  (a tile-shared layer, tile=1: tblock.h's selection, made per tile of b queries)
 *          per layer: the window's queries (q is not in the KV cache; the next tile's
 *          selection pools the current tile's, and a rewind may go back to any row), the
 *          complete blocks' mean keys kbar_j (one more each time a block fills), and the
 *          current tile's kept blocks per head. A step at t (tile i = t / b) makes the
 *          forward's choice: at the tile's first query (or the first step after a prefill
 *          or rewind) qbar_{i-1} . kbar_j for j < i with tblock.h's own functions (the same
 *          arithmetic), top n-1 plus block i, kept for the tile's b steps; then per head
 *          sparse_decode_tile over the kept blocks' keys and the own block's keys <= t.
 *          The prefill hands the hook its queries (gen_decode_hook.prefilled); a rewind
 *          keeps the ones it was given, so a cache another hook filled cannot be rewound
 *          into a tile layer's hook (an error naming the layer).
 * A decode step then runs sparse_decode.h's selection for the one query (the same
 * kernels `sattn bench --phases decode` times: block scores over T/b summaries, or the
 * indexer's row over T projected keys, top-k) and the head function (softmax, or the
 * mlp head) on the selected cached keys and values. Dense heads of the layer run
 * flash.h's decode step for their heads only (attention_decode_step_skip).
 *
 * Hybrid by length (--dense-below D): the decision is taken per token on the current
 * window length T, as the recompute takes it per forward: T < D decodes every head dense
 * (exactly the dense decode), T >= D the sparse heads. A cache made in one mode is not
 * what the other computes (every cached row's k, v would differ), so when T crosses D
 * the hook calls the cache stale and the generator re-prefills the window once in the
 * new mode (a prefill of D tokens, once per crossing); the output then equals the
 * recompute's. The sparse state is rebuilt at every prefill in sparse mode and caught up
 * lazily otherwise.
 *
 * An mlp head function's input width is the selector's kmax at the heads' max_seq (the
 * width its parameters were made for) at every window length, in hybrid.c and here, so
 * windows shorter than k decode exactly like the recompute too. */
#ifndef SATTN_HYBRID_DECODE_H
#define SATTN_HYBRID_DECODE_H

#include "sattn/generate.h"
#include "sattn/hybrid.h"

/* A tile layer's decode state (top). */
typedef struct {
    float *q;          /* (cap, C): the window's queries, rows 0 .. nq-1 valid */
    float *kbar;       /* (cap / b + 1, C): mean keys of blocks 0 .. nk-1 */
    float *vbar;       /* with cmp (tcmp.h): mean values of the same blocks; else NULL */
    const float **gate; /* with cmp: per head its gate parameters (hs + 1) */
    float *scratch;    /* qbar (C), then the scores (cap / b + 1) and top-k values (n) */
    int *kept, *count; /* (H, n) and (H): tile `tile`'s kept blocks per head */
    int *ix;           /* top-k positions (n) */
    int nq, nk, tile;  /* tile: whose selection kept holds, -1: none yet */
    int b, n;
} hdec_tile;

typedef struct {
    const hybrid *hy;
    int cap, max_seq;
    gen_decode_hook hook;
    size_t *off_side;      /* per (l, h): offset of its state in side */
    int *nside;            /* per (l, h): blocks summarised (block) or rows projected (index) */
    float *side;
    float *work;           /* per thread: selection scratch, then the head function's cache */
    size_t work_per_thread;
    int *idx;              /* per thread: kmax */
    int kmax_cap;
    int mode;              /* 1: the cache was made with the sparse heads (T >= dense_below) */
    long steps_dense, steps_sparse; /* layer decode steps all dense by length / with sparse heads */
    hdec_tile *tile;       /* per layer; zero for a layer that is not tile-shared */
    hybrid_timers tm;      /* the decode steps' selection and attention (hybrid.h), since init */
} hdec;

/* The decode side of hy (its heads, skip table and dense_below, read at every step) for a
 * cache of cap positions (the model's max_seq). */
void hdec_init(hdec *d, const hybrid *hy, int cap);
void hdec_free(hdec *d);

#endif
