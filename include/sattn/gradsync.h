/* gradsync: the gradient all-reduce and optimizer step of data-parallel training
 * (docs/mpi.md), over dist.h's ranks.
 *
 * Every rank runs the forward and backward of its slice of the global batch: its
 * gradient is that of its own mean loss over n_r scored targets. The global loss is the
 * mean over all n = sum_r n_r targets, so the global gradient is
 *     g = sum_r (n_r / n) g_r,
 * which gradsync_reduce forms: each rank scales by its weight n_r / n, then a sum over
 * ranks. (With every target scored and equal slices the weight is 1/N.)
 *
 * zero 0: MPI_Allreduce of the whole gradient; every rank then holds g and takes the
 *         same AdamW step on all parameters (moments replicated).
 * zero 1 (ZeRO-1): reduce-scatter, so rank r holds only its shard of g (a contiguous
 *         1/N of the flat parameter vector); it keeps the AdamW moments of that shard
 *         alone (2/N of the moments' memory), updates its shard of the parameters, and an
 *         all-gather gives every rank the whole new parameter vector. The bytes moved are
 *         those of one all-reduce (reduce-scatter + all-gather is how rings all-reduce).
 * The clip norm is global in both: the sum of squares of the (reduced) gradient, each
 * shard's part summed over ranks. Parameters beside the model's (train_extra: sparse
 * heads) are small and always all-reduced whole and updated on every rank.
 *
 * One rank (dist size 1) is the plain single-process step, bit for bit. */
#ifndef SATTN_GRADSYNC_H
#define SATTN_GRADSYNC_H

#include "sattn/dist.h"
#include "sattn/model.h"
#include "sattn/nn.h"

typedef struct gradsync {
    dist_ctx *dist;
    int zero;          /* 0 or 1 */
    size_t *off, *cnt; /* the ranks' shards of the parameter vector */
    float *g, *m, *v;  /* zero 1: this rank's reduced gradient shard and its AdamW moments */
    int has_moments;   /* zero 1: m, v hold state (from the first step, or from a checkpoint) */
} gradsync;

/* Binds to m (its num_params). zero 1: when m already holds AdamW moments (a resumed
 * checkpoint, saved unsharded) this rank keeps its shard of them and m's full copies are
 * freed. */
void gradsync_init(gradsync *gs, dist_ctx *d, int zero, gpt_model *m);
void gradsync_free(gradsync *gs);

/* This rank's weight n_r / n for n_r scored targets (the global count by a sum over ranks). */
double gradsync_weight(gradsync *gs, int n_targets);

/* Scales this rank's gradients (m's, and the n_extra floats at extra) by weight and sums
 * them over ranks (zero 1: m's into this rank's shard only). Returns the global L2 norm
 * of the model's gradient (zero 0 and one rank: gpt_grad_norm). */
float gradsync_reduce(gradsync *gs, gpt_model *m, double weight, float *extra, size_t n_extra);

/* AdamW step t at lr on grad_scale * the reduced gradient (gpt_update's rule). Returns
 * -1, or the first tensor left non-finite on any rank (the same answer on every rank). */
int gradsync_update(gradsync *gs, gpt_model *m, float lr, const adamw_config *opt, int t, float grad_scale);

/* For a checkpoint (unsharded): on rank 0, m->m_mem and m->v_mem get the full moments
 * (every rank must call it; zero 0: nothing to do); gradsync_release frees them again. */
void gradsync_gather_moments(gradsync *gs, gpt_model *m);
void gradsync_release_moments(gradsync *gs, gpt_model *m);

/* Payload bytes one step all-reduces: 4 x (the model's parameters + n_extra). */
double gradsync_bytes_per_step(const gpt_model *m, size_t n_extra);

#endif
