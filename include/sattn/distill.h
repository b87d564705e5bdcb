/* distill: trains every sparse head's selector and head function against the
 * teacher, online: each step runs the dense teacher on a fresh batch and uses its
 * attention probabilities P, head inputs q, k, v and head outputs o on the fly, so
 * memory does not grow with the amount of data.
 *   selector (index): mean_t KL(P_t || softmax(score_t));  (pos): CE to argmax P_t
 *   head function (mlp): mean_t ||o_t - mlp(selection_t)||^2 on the selector's OWN
 *   predicted selection (not the teacher's), so it learns what it will see. */
#ifndef SATTN_DISTILL_H
#define SATTN_DISTILL_H

#include <stdint.h>

#include "sattn/data.h"
#include "sattn/dist.h"
#include "sattn/model.h"
#include "sattn/sparse.h"

typedef struct {
    int steps, batch, seq, warmup;
    float lr, min_lr;
    uint64_t seed;
    /* Data parallel (docs/mpi.md): NULL for one process. Else `batch` is the global batch, a
     * multiple of the ranks; rank r runs the teacher on rows r*b .. r*b+b-1 (b = batch /
     * ranks) of the batch one process draws, and the heads' gradients and losses are
     * averaged over the ranks before every (replicated) AdamW step. */
    dist_ctx *dist;
} distill_config;

distill_config distill_config_default(void);

typedef struct {
    int step, steps;
    double sel_loss; /* mean per query over the sparse heads with a trained selector */
    double fn_loss;  /* mean squared error per query over mlp heads (0 if none) */
    double tokens_per_s, eta_s;
} distill_progress;

typedef void (*distill_progress_fn)(const distill_progress *p, void *user);

/* Trains the parameters of every non-dense head of sh in place. Divergence: a head whose
 * loss or gradient is not finite is not updated, and the run stops after that step (also
 * when a head's update leaves a non-finite parameter) with -1 and e naming the first such
 * head ("diverged at step 7: head L0H1: loss nan (gradient norm inf)"); sh is then not to
 * be saved. Else 0. */
int distill_run(gpt_model *teacher, sparse_heads *sh, const dataset *d, const distill_config *dc,
                distill_progress_fn fn, void *user, sattn_err *e);

#endif
