/* lindex: one lightning indexer per layer, shared by the layer's heads (index heads with
 * shared=1; DeepSeek's DSA indexer at this project's scale). docs/indexer.md.
 *
 * Notation: a layer of H heads of dim hs, C = H hs; q_t, k_s are the layer's C-wide rows
 * (every head's q and k side by side: the qkv buffer's first and second C columns, ld 3C).
 * Rank r, J indexer heads:
 *   qt_j(t) = Wq_j q_t / sqrt(r)  (r)     kt(s) = Wk k_s  (r)     w_j(t) = Ww_j . q_t + bw_j
 *   score(t, s) = sum_j w_j(t) relu(qt_j(t) . kt(s))                      for s <= t
 * The layer keeps each query's top k keys by score (ties to the earlier key; dynamic k with
 * tau as the per-head index does), and every head of the layer runs its exact float32
 * softmax over that one set. Cost per query-key pair: J r multiply-adds (defaults r 32,
 * J 1: 32) against H hs = C for the heads' q.k alone.
 *
 * Parameters, layer layout (lindex_param_count floats):
 *   Wq (J r, C) | Wk (r, C) | Ww (J, C) | bw (J)
 * They live in the heads' selector slots (sparse.h's index layout at hs, so the heads file
 * holds them unchanged): head h holds columns h hs .. (h+1) hs of Wq, Wk and Ww; bw is the
 * sum of the heads' biases (lindex_scatter keeps it in head 0's, zero in the others').
 *
 * Precision: the projections are float32 GEMMs. The score dot products qt . kt run in bf16
 * (qt and kt rounded to nearest even, products summed in float32 by AVX512-BF16's
 * vdpbf16ps) when the CPU has it, else in float32. A bf16 score differs from the exact one
 * by at most about  sum_j |w_j| 2^-7 sum_i |qt_ji kt_i|  (each operand rounded by <= 2^-9
 * relative, plus float32 sums), so the kept set differs from the exact one only among keys
 * whose exact scores lie that close (near-ties). */
#ifndef SATTN_LINDEX_H
#define SATTN_LINDEX_H

#include <stddef.h>
#include <stdint.h>

#include "sattn/core.h"
#include "sattn/rng.h"
#include "sattn/dist.h"
#include "sattn/sparse.h"

typedef enum { LINDEX_AUTO = 0, LINDEX_F32 = 1, LINDEX_BF16 = 2 } lindex_prec;

/* 1 when this CPU runs AVX512-BF16 (vdpbf16ps). */
int lindex_cpu_bf16(void);
/* The precision that runs: AUTO is bf16 where the CPU has it, else float32, unless the
 * environment sets SATTN_INDEXER_PREC=f32 or bf16; bf16 on a CPU without it runs float32. */
lindex_prec lindex_resolve(lindex_prec p);
const char *lindex_prec_name(lindex_prec p);

typedef struct {
    int H, hs, C, r, J;
} lindex_dims;

lindex_dims lindex_dims_of(const head_spec *s, int H, int hs);
size_t lindex_param_count(const lindex_dims *d);
/* Layer l's parameters from its heads' selector slots into w (layer layout), and back. */
void lindex_gather(const sparse_heads *sh, int l, float *w);
void lindex_scatter(sparse_heads *sh, int l, const float *w);
/* Wq, Wk ~ N(0, 1/C) (qt, kt start at the scale of one head's q, k), Ww ~ N(0, 0.02^2),
 * bw = 1 (w_j > 0: the relu keeps the largest dot products). */
void lindex_init(const lindex_dims *d, float *w, rng_t *rng);
/* Re-initialises every shared layer of sh in layer layout (sparse_heads_create calls it). */
void lindex_init_heads(sparse_heads *sh, rng_t *rng);

/* Scratch floats of lindex_select / lindex_scores for sequences of length T. */
size_t lindex_work_floats(const lindex_dims *d, int T);
/* Selection of one sequence into idx/score/count (sparse.h's layout, kmax =
 * selector_kmax(s, T)): the top k (dynamic k with s->tau) of score(t, .) over s <= t.
 * Query rows run in groups of 4 against the keys up to the group's last query (the masked
 * triangle is skipped to within 32 keys). cnt (may be NULL) counts the score MACs. */
void lindex_select(const head_spec *s, const lindex_dims *d, const float *w, const float *q,
                   const float *k, int ld, int T, int *idx, float *score, int *count, float *work,
                   lindex_prec p, op_count *cnt);
/* The scores alone: S (T x T, row t valid on s <= t), the same numbers lindex_select ranks. */
void lindex_scores(const lindex_dims *d, const float *w, const float *q, const float *k, int ld,
                   int T, float *S, float *work, lindex_prec p);

/* ---- training (DSA: KL to the heads' attention; docs/indexer.md) ---- */

/* Query rows with their key lists and targets: row i is query t[i], over keys 0..t[i]
 * (keys == NULL) or keys + i ldk, nkeys[i] of them; its target P + i ldp over the same
 * keys in the same order (summing to 1). */
typedef struct {
    int n;
    const int *t;
    const int *keys, *nkeys;
    int ldk;
    const float *P;
    int ldp;
} lindex_rows;

/* The layer's attention, heads summed and renormalised, on the rows' keys:
 *   P_i(s) = (1/H) sum_h softmax_{s in keys_i}(q^h_t . k^h_s / sqrt(hs))
 * (keys 0..t: the dense attention; a selection: each head's softmax over it, which is what
 * the softmax head function computes). Writes rw->P (cast away: the caller's buffer). */
void lindex_target(const lindex_dims *d, const float *q, const float *k, int ld, const lindex_rows *rw,
                   float *P);
/* sum_i KL(P_i || softmax(score(t_i, keys_i))) in float32 scores (double sums), and its
 * gradient added into g (layer layout). q, k are inputs only: no gradient flows to them. */
size_t lindex_grad_work_floats(const lindex_dims *d, int T);
double lindex_kl_grad(const lindex_dims *d, const float *w, float *g, const float *q, const float *k,
                      int ld, int T, const lindex_rows *rw, float *work);

/* The shared indexers of a model trained with their own AdamW state (beta 0.9, 0.99, no
 * weight decay), in layer layout: distill (dense targets on every row) and sparse_train
 * (DSA: dense targets on sampled rows during the warm-up, then the selected keys). */
typedef struct {
    int layers, rows;     /* rows: query rows sampled per sequence (0: all) */
    unsigned char *on;    /* per layer: a shared layer */
    lindex_dims *dims;    /* per layer */
    size_t *off, n;       /* per layer: offset into w, g, m, v; total */
    float *w, *g, *m, *v;
    int T;                /* the scratch below is sized for this length */
    float **work, **P;    /* per layer */
    int **t, **keys, **nkeys;
    double *loss;         /* per layer: the last grad call's mean KL per row */
} lindex_trainer;

void lindex_trainer_init(lindex_trainer *lt, const sparse_heads *sh, int rows);
/* Data parallel: the gradient and *loss (the last grad call's) become their means over the
 * ranks, every rank having scored the same number of rows. d NULL or one rank: nothing. */
void lindex_trainer_mean_ranks(lindex_trainer *lt, dist_ctx *d, double *loss);
void lindex_trainer_free(lindex_trainer *lt);
int lindex_trainer_any(const lindex_trainer *lt);
/* The selection the model ran for (layer l, batch row b): idx rows of kmax, count; NULL:
 * the dense phase (targets on keys 0..t). */
typedef const int *(*lindex_sel_fn)(void *ctx, int l, int b, int *kmax, const int **count);
/* Gradients (g, overwritten) of the mean KL per row over a batch of the layers'
 * activations qkv (L, B, T, 3C), rows drawn from seed (stratified, one per stratum).
 * Returns the mean KL per row over the shared layers. */
double lindex_trainer_grad(lindex_trainer *lt, const sparse_heads *sh, const float *qkv, int B, int T,
                           lindex_sel_fn sel, void *ctx, uint64_t seed);
/* AdamW step t at lr on g, then writes the parameters back to sh's heads. -1, or the first
 * layer whose update left a non-finite parameter or moment. */
int lindex_trainer_update(lindex_trainer *lt, sparse_heads *sh, float lr, int t);

#endif
