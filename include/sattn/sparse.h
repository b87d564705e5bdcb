/* sparse: what replaces one attention head — a causal top-k key selector plus a
 * head function over the selected keys — and the per-model set of such heads.
 *
 * Notation (DESIGN.md): one head of one layer, one sequence of T positions, head
 * dim d = hs. q_t, k_s, v_s are rows of the model's qkv buffer (leading dimension
 * ld = 3C). The selector picks S_t within {0..t} (never a key after t), |S_t| <= kmax,
 * listed in descending selector score; the head function maps (q_t, S_t) to o_t.
 *
 * Selection buffers for one sequence: idx (T, kmax) int, score (T, kmax) float,
 * count (T) int; row t holds count[t] valid entries. */
#ifndef SATTN_SPARSE_H
#define SATTN_SPARSE_H

#include <stddef.h>

#include "sattn/core.h"
#include "sattn/rng.h"

typedef enum { SEL_DENSE = 0, SEL_POS = 1, SEL_INDEX = 2, SEL_BLOCK = 3 } sel_kind;
typedef enum { HFN_SOFTMAX = 0, HFN_MLP = 1 } hfn_kind;

typedef struct {
    sel_kind sel; /* SEL_DENSE: the head stays full attention */
    hfn_kind fn;
    int k;        /* keys per query (pos, index); with tau > 0 the maximum */
    int k_min;    /* dynamic k: the minimum */
    float tau;    /* dynamic k: smallest k whose selector mass reaches tau; 0 = fixed k */
    int rank;     /* index: rank r of the low-rank projections */
    int iheads;   /* index: indexer heads J */
    int block;    /* block: keys per block b */
    int nblocks;  /* block: blocks kept per query, the query's own (local) block included */
    int bounds;   /* block: 1 = score blocks by per-dimension min/max bounds, 0 = by mean key */
    int tile;     /* block+softmax: 1 = the b queries of a tile share one selection, chosen by
                   * the tile's pooled query (tblock.h); the whole layer then runs as tblock,
                   * so every head of a layer with tile=1 must be the same spec (sparse_tile_check) */
    int cmp;      /* block+softmax with tile=1: 1 = NSA's compressed branch too (tcmp.h: the pooled
                   * earlier blocks attended densely, mixed in by a learned per-head gate) */
    int shared;   /* index+softmax: 1 = one indexer per layer, shared by all its heads (lindex.h):
                   * every head of the layer then has the same spec and selection
                   * (sparse_shared_check); 0 = each head its own indexer */
    int hidden;   /* pos and mlp: hidden width */
    int mlp_q;    /* mlp: feed q_t as well */
    int mlp_logits; /* mlp: feed the selected keys' attention logits q.k/sqrt(d) as well */
} head_spec;

/* Defaults: k 16, k_min 1, tau 0, rank 16, iheads 4, block 16, nblocks 4, bounds 0, tile 0, cmp 0,
 * shared 0, hidden 128, mlp_q 1, mlp_logits 1; sel = SEL_DENSE, fn = HFN_SOFTMAX. (A plan
 * entry with shared=1 defaults to r 32, j 1 instead: plans.md.) */
head_spec head_spec_default(void);
/* Checks ranges (k >= 1, k_min <= k, 0 <= tau <= 1, ...); errors name the field. */
int head_spec_check(const head_spec *s, sattn_err *e);
/* Tile-shared layers (tile=1): every head of a layer with a tile=1 head must be
 * block+softmax with tile=1 and the same b and n, since tblock selects and attends for all
 * heads of a layer at once. specs: layers*heads entries; errors name the head. */
int sparse_tile_check(const head_spec *specs, int layers, int heads, sattn_err *e);
/* 1 when layer l's heads run as one tblock layer (every head tile=1, checked as above). */
int sparse_tile_layer(const head_spec *specs, int l, int heads);
/* Shared indexers (shared=1): every head of a layer with a shared=1 head must carry the same
 * spec (one indexer, one selection per layer). specs: layers*heads; errors name the heads. */
int sparse_shared_check(const head_spec *specs, int layers, int heads, sattn_err *e);
/* 1 when layer l's heads share one indexer (its head 0 has shared=1; checked as above). */
int sparse_shared_layer(const head_spec *specs, int l, int heads);
/* Short text form, e.g. "index+softmax:k=16,r=16,j=4" or "dense" (for tables and plans). */
void head_spec_format(const head_spec *s, char *buf, size_t n);

/* ---- selectors ---- */

/* Entries per query row: k for pos/index, nblocks*block for block (capped at T). */
int selector_kmax(const head_spec *s, int T);
/* Trainable parameters (0 for block). max_seq sizes pos's output layer. */
size_t selector_param_count(const head_spec *s, int hs, int max_seq);
void selector_init(const head_spec *s, int hs, int max_seq, float *params, rng_t *rng);
/* Scratch floats selector_select / selector_grad need for sequences of length T. */
size_t selector_work_floats(const head_spec *s, int hs, int T);
/* Scratch floats selector_select alone needs (<= selector_work_floats): the index
 * selector streams its scores over query tiles, O(T) per head, not O(J T^2). */
size_t selector_select_work_floats(const head_spec *s, int hs, int T);
/* Fills idx/score/count (see top) for t = 0..T-1. Strictly causal. */
void selector_select(const head_spec *s, const float *params, int hs, int max_seq,
                     const float *q, const float *k, int ld, int T, int *idx, float *score,
                     int *count, float *work);
/* The same, adding its matrix products to cnt (core.h; a SATTN_COUNT build). */
void selector_select_counted(const head_spec *s, const float *params, int hs, int max_seq,
                             const float *q, const float *k, int ld, int T, int *idx,
                             float *score, int *count, float *work, op_count *cnt);
/* The k best of row[0..n) (k capped at n) into sc, ix, best first: a higher score, or an
 * equal score and an earlier key (ties go to the earlier key). Returns the count. */
int selector_topk(const float *row, int n, int k, float *sc, int *ix);
/* Dynamic k (tau > 0): the smallest m in [k_min, count] whose share of softmax(row[0..n))
 * mass, taken over sc[0..count) (the top scores, best first), reaches tau; else count.
 * What selector_select keeps per row, for the decode steps (sparse_decode.h). */
int selector_dynamic_k(const head_spec *s, const float *row, int n, const float *sc, int count);
/* The block selector's summaries of the nb complete blocks of keys k (row u at k + u*ld):
 * per block 2*hs floats at sum + j*2*hs, the mean key (first hs), or with bounds the
 * per-dimension [lo | hi]; and a query's score against one block's summary m: q . mean,
 * or the upper bound sum_i max(q_i lo_i, q_i hi_i) of q . k over the block. Shared with
 * the decode step (sparse_decode.h). */
void selector_block_summaries(const head_spec *s, int hs, const float *k, int ld, int nb, float *sum);
float selector_block_score(const head_spec *s, const float *q, const float *m, int hs);
/* Queries per tile of the index selector's streamed scores (index: keys [0, t0+n) of
 * the tile [t0, t0+n)) and of the block selector's score GEMM. costmodel.h's
 * executed-MAC count follows the same tiles. */
enum { INDEX_QTILE = 64, BLOCK_QTILE = 256 };
/* Distillation loss of one sequence against the teacher's attention P (row t at
 * P + t*ldp, entries s <= t), and its gradient accumulated into dparams:
 *   index: sum_t KL(P_t || softmax_{s<=t} score_t)
 *   pos:   sum_t -log softmax_{s<=t}(logits_t)[argmax_s P_t]
 * (block has no parameters: returns 0). */
double selector_grad(const head_spec *s, const float *params, float *dparams, int hs, int max_seq,
                     const float *q, const float *k, int ld, int T, const float *P, int ldp,
                     float *work);

/* ---- head functions ---- */

size_t headfn_param_count(const head_spec *s, int hs, int kmax);
void headfn_init(const head_spec *s, int hs, int kmax, float *params, rng_t *rng);
/* Floats headfn_forward must keep for headfn_backward, per sequence of length T. */
size_t headfn_cache_floats(const head_spec *s, int hs, int kmax, int T);
/* o_t (row t at out + t*ldo) from the selection:
 *   softmax: o_t = sum_j a_j v_{idx_j}, a = softmax_j(q_t . k_{idx_j} / sqrt(d))
 *   mlp:     o_t = W2 gelu(W1 x_t + b1) + b2, x_t = [v_{idx_0} .. v_{idx_kmax-1} (zero past count),
 *            q_t (if mlp_q), logits q_t.k_{idx_j}/sqrt(d) (if mlp_logits, zero past count)] */
void headfn_forward(const head_spec *s, const float *params, int hs, int kmax, const float *q,
                    const float *k, const float *v, int ld, int T, const int *idx, const int *count,
                    float *out, int ldo, float *cache);
void headfn_forward_counted(const head_spec *s, const float *params, int hs, int kmax,
                            const float *q, const float *k, const float *v, int ld, int T,
                            const int *idx, const int *count, float *out, int ldo, float *cache,
                            op_count *cnt);
/* Accumulates dq, dk, dv (same layout as q, k, v; any may be NULL) and dparams
 * (may be NULL) from dout. Selection is discrete: no gradient flows to the selector. */
void headfn_backward(const head_spec *s, const float *params, float *dparams, int hs, int kmax,
                     const float *q, const float *k, const float *v, int ld, float *dq, float *dk,
                     float *dv, int T, const int *idx, const int *count, const float *dout,
                     int ldo, const float *cache);

/* Entries per query row a head function reads in a window of T: selector_kmax(s, T), except
 * for the mlp head function, whose input layout (so its parameters) was made for the width at
 * the heads' max_seq: a shorter window keeps that width and leaves the extra slots empty. */
int headfn_slot_width(const head_spec *s, int T, int max_seq);
/* Spreads rows of width kt (as selector_select wrote them) to width K >= kt, in place. */
void selector_widen_rows(int *idx, float *score, int T, int kt, int K);

/* ---- all heads of a model ---- */

typedef struct {
    head_spec spec;
    size_t n_sel, n_fn; /* params = [selector | head function] */
    float *params;      /* NULL for dense heads */
} sparse_head;

typedef struct {
    int layers, heads, hs, max_seq;
    sparse_head *h; /* layers * heads, index l * heads + h */
} sparse_heads;

/* Allocates heads for a model shape from specs (layers*heads entries) and initialises parameters. */
void sparse_heads_create(sparse_heads *sh, int layers, int heads, int hs, int max_seq,
                         const head_spec *specs, rng_t *rng);
void sparse_heads_free(sparse_heads *sh);
/* Number of heads that are not dense. */
int sparse_heads_count(const sparse_heads *sh);

/* Buffers to run one sparse head on one sequence of length T: selector scratch, the
 * selection (idx, score, count), the head function's cache and its output (T, hs). */
typedef struct {
    int kmax;
    float *work, *score, *cache, *out;
    int *idx, *count;
} head_scratch;

/* kmax is headfn_slot_width(spec, T, max_seq): an mlp head keeps its parameters' width. */
void head_scratch_init(head_scratch *s, const head_spec *spec, int hs, int T, int max_seq);
/* selector_select into s's idx, score, count, rows widened to s->kmax. */
void head_scratch_select(head_scratch *s, const head_spec *spec, const float *params, int hs, int max_seq,
                         const float *q, const float *k, int ld, int T);
void head_scratch_free(head_scratch *s);

#endif
