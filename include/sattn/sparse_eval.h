/* sparse_eval: how well sparse heads stand in for the teacher's.
 *
 * Per head, in isolation on the teacher's own activations (each head sees the
 * dense model's q, k, v), averaged over all queries of the evaluated windows:
 *   top1    selector's best key == teacher's argmax key (block: the argmax lies in
 *           the local block or the best-scored other block)
 *   hit     teacher's argmax key is in S_t
 *   recall  |S_t ∩ teacher's top-|S_t| keys| / |S_t|      (recall@k with k = |S_t|)
 *   mass    sum_{s in S_t} P_t(s)                          (teacher mass captured)
 *   keys    mean |S_t|
 *   rel_err sqrt(sum_t ||o_t - ô_t||^2 / sum_t ||o_t||^2)  (head output error)
 * Whole model, all sparse heads at once (errors compound through the layers):
 *   logit_rel_err sqrt(sum ||z - ẑ||^2 / sum ||z||^2) over the logits of the windows,
 *   and the loss over the WHOLE split, dense and hybrid. */
#ifndef SATTN_SPARSE_EVAL_H
#define SATTN_SPARSE_EVAL_H

#include "sattn/data.h"
#include "sattn/hybrid.h"
#include "sattn/model.h"
#include "sattn/sparse.h"

typedef struct {
    int layer, head;
    double top1, hit, recall, mass, keys, rel_err;
} head_metrics;

typedef struct {
    int n_heads;         /* sparse heads, in (layer, head) order */
    head_metrics *heads;
    double median_rel_err, mean_recall, mean_mass, mean_top1;
    double logit_rel_err;
    double loss_dense, loss_hybrid;
    size_t tokens, windows;
    long fwd_dense, fwd_sparse; /* hybrid layer forwards run all-dense by length / sparse */
} sparse_eval_result;

/* windows: how many non-overlapping windows of the model's T from the start of the
 * split feed the per-head and logit metrics (0 = all); the losses always use the
 * whole split. */
void sparse_eval(gpt_model *m, const sparse_heads *sh, const dataset *d, data_split split,
                 int windows, int batch, sparse_eval_result *r);
/* The same with hybrid by length (hybrid.h): the hybrid forwards (logit error,
 * loss_hybrid) run every head dense for windows shorter than dense_below (0: never).
 * The per-head metrics are always the sparse heads' own. */
void sparse_eval_len(gpt_model *m, const sparse_heads *sh, const dataset *d, data_split split,
                     int windows, int batch, int dense_below, sparse_eval_result *r);
void sparse_eval_free(sparse_eval_result *r);

#endif
