/* generate: autoregressive generation with a KV cache (issue 11 item 3; docs/generate.md).
 *
 * A generation state holds, per layer l, the keys and values of every cached position:
 * kc, vc (L, cap, C), row t of layer l being position t of the window (cap = max_seq),
 * allocated once. Two ways to fill it:
 *   prefill: the window's tokens run as one batched forward (gpt_forward with B = 1: the
 *     model's naive or flash attention, and m->attn's sparse heads when a hybrid is
 *     attached), then each layer's k, v rows are copied out of acts.qkv;
 *   decode: one new token at position n: embedding (+ its position), per layer
 *     LayerNorm, qkv as matrix-vector products, k, v appended as row n, the one query's
 *     attention against rows 0..n (flash.h's attention_decode_step, or the decode hook),
 *     projection, MLP; final LayerNorm, logits, probabilities. O(L (12 C^2 + 2 n C)) per
 *     token, against the recompute's O(L (12 C^2 n + n^2 C)).
 *
 * Sampling (gen_sample) draws exactly as sample_tokens always did (gen_sample_token:
 * temperature, greedy at 0, one rng_uniform per token when temperature > 0), so the cached
 * and the recomputed generator give the same tokens wherever their probabilities agree.
 *
 * Full context: learned positions cannot slide (every cached row would change position),
 * so when the window (prompt + generated) would exceed max_seq the window restarts with
 * its last gen_keep(max_seq) = max(1, max_seq / 2) tokens, which are re-prefilled (one
 * batched forward every max_seq / 2 tokens: amortised O(max_seq) attention per token,
 * like a decode step). A prompt longer than max_seq starts the same way. The recompute
 * reference (sample_tokens_recompute, train.h) follows the same windows, so both see the
 * same tokens at the same positions. */
#ifndef SATTN_GENERATE_H
#define SATTN_GENERATE_H

#include "sattn/model.h"
#include "sattn/rng.h"

/* How a layer's attention decodes, when not dense (the model knows nothing about sparse
 * heads: src/sparse/hybrid_decode.c fills this, as hybrid.c fills gpt_attn_hook).
 *   decode: out (C) for the newest query q (C, position T-1) against the layer's cache
 *     rows 0..T-1 (kc, vc with row stride C; row T-1 is the new token's own k, v).
 *   prefilled: a prefill has just filled rows 0..T-1 of layer `layer` (rebuild any
 *     incremental state from them); q: the prefill's queries of the layer (row t at q + t ldq,
 *     as the attention saw them: rotated with RoPE), which the cache does not hold (a
 *     tile-shared layer's selection pools them); NULL after a rewind (gen_rewind), where
 *     rows 0..T-1 are what the hook was given before.
 *   stale (may be NULL): called before a decode step that would bring the window to T
 *     tokens; nonzero when what is cached is not what the model computes at length T
 *     (hybrid by length crossing its threshold): the generator then re-prefills the
 *     window instead of decoding. */
typedef struct {
    void (*decode)(void *ctx, int layer, float *out, const float *q, const float *kc, const float *vc, int T);
    void (*prefilled)(void *ctx, int layer, const float *q, int ldq, const float *kc, const float *vc, int T);
    int (*stale)(void *ctx, int T);
    void *ctx;
} gen_decode_hook;

typedef struct {
    long prefills, decodes;   /* calls */
    long prefill_tokens;      /* tokens run through prefills */
    double prefill_s, decode_s; /* wall time in each */
} gen_stats;

typedef struct {
    gpt_model *m;
    const gen_decode_hook *hook; /* NULL: dense decode (attention_decode_step) */
    int cap;                     /* positions the cache holds: m->cfg.max_seq */
    int n;                       /* positions cached now */
    int threads;                 /* the caller's thread count during a decode step (it runs its
                                  * small row operations on one) */
    float *kc, *vc;              /* (L, cap, C) */
    float *mem;                  /* one block: the caches, then one token's activations */
    float *x, *ln, *qkv, *atty, *proj, *fch, *lnf, *logits, *probs, *stat;
    gen_stats st;
} gen_state;

/* The cache for m (cap = max_seq) and one token's activations, allocated once. With a hook,
 * m->attn (if set) must be the prefill side of the same sparse heads. */
void gen_init(gen_state *g, gpt_model *m, const gen_decode_hook *hook);
void gen_free(gen_state *g);
/* Bytes gen_init allocates (caches and one token's activations), before allocating. */
double gen_mem_bytes(const gpt_config *c);

/* Empties the cache and runs tokens[0..n) (1 <= n <= cap) at positions 0..n-1 as one
 * batched forward. Returns the next token's probabilities (Vp floats; logits in
 * g->logits), valid until the next call. */
const float *gen_prefill(gen_state *g, const int *tokens, int n);
/* Appends token at position g->n (< cap) and returns the next token's probabilities. */
const float *gen_decode(gen_state *g, int token);

/* Forgets positions n.. (1 <= n <= g->n): the next decode appends at position n; the hook
 * (prefilled) rebuilds its state from rows 0..n-1. Also makes a cache filled under one hook
 * (or none) usable by another (set g->hook first), as the benchmark does. */
void gen_rewind(gen_state *g, int n);

/* The full-context rule (top): tokens kept when the window restarts, and the start of the
 * window for predicting the token after ctx[0..len) given the current start. */
int gen_keep(int max_seq);
int gen_window_start(int start, int len, int max_seq);

/* A token from probabilities p (V real tokens): argmax (first on ties) at temperature 0;
 * else drawn from p^(1/temperature) renormalised (= softmax(logits / temperature)) with
 * one rng_uniform. */
int gen_sample_token(const float *p, int V, float temperature, rng_t *rng);

/* Appends n tokens to ctx (holding *len >= 1 tokens, capacity *len + n) with the cache:
 * one prefill of the first window, then a decode step per token (a re-prefill where the
 * window restarts or the hook calls the cache stale). */
void gen_sample(gen_state *g, int *ctx, int *len, int n, float temperature, rng_t *rng);

#endif
