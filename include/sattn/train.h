/* train: the training loop, whole-split evaluation and sampling, over model + data. */
#ifndef SATTN_TRAIN_H
#define SATTN_TRAIN_H

#include <stdint.h>

#include "sattn/ckpt.h"
#include "sattn/data.h"
#include "sattn/model.h"
#include "sattn/task.h"

struct train_extra;
struct gradsync;

typedef struct {
    int batch, seq, steps, warmup;
    float lr, min_lr, clip;
    adamw_config opt;
    int eval_every;  /* validation loss every N steps (0: only at the end) */
    int eval_tokens; /* tokens of the validation split used by the periodic estimate */
    int stop_at;     /* stop after this step (0: at `steps`); the schedule still spans `steps` */
    const task_mix *mix; /* task samples mixed into each batch (task_mix_batch); NULL: corpus only */
    const struct train_extra *extra; /* parameters trained beside the model's; NULL: none */
    /* Data parallel (gradsync.h, docs/mpi.md): NULL for one process. Else `batch` is the
     * global batch, a multiple of the ranks; rank r draws rows r*b .. r*b+b-1 (b = batch /
     * ranks) of the batch one process would draw (task_mix_batch_rows), gradients are
     * averaged over the ranks' scored targets, and the loss and norm are global. */
    struct gradsync *sync;
} train_config;

/* Parameters that live outside the model but train in the same loop, on the same loss:
 * the sparse heads of `train --attn sparse:PLAN` and `finetune` (finetune.h's
 * sparse_train). The loop stays one: the gradient norm (and so clipping and the
 * divergence checks) covers both sets, and both take the same AdamW step. */
typedef struct train_extra {
    void *ctx;
    /* Before the forward of 0-based step `step`: lets the extra switch what the model runs
     * (the dense warm-up ends at a step). NULL: nothing to do. */
    void (*begin_step)(void *ctx, gpt_model *m, int step);
    void (*zero_grad)(void *ctx);
    double (*grad_sumsq)(void *ctx);
    /* AdamW step t at lr on scale * grads: -1, or 0 with `what` naming the part left
     * non-finite ("the parameters of head L0H1"). */
    int (*update)(void *ctx, float lr, int t, float scale, char *what, size_t n);
    /* The gradient the extra's parameters got from the loss (one block of *n floats), for
     * the ranks' all-reduce; NULL: none. */
    float *(*grads)(void *ctx, size_t *n);
} train_extra;

/* nanoGPT-like defaults: lr 1e-3 -> 1e-4, warmup 100, wd 0.1, betas (0.9, 0.99), clip 1. */
train_config train_config_default(void);

typedef struct {
    int step, steps;     /* steps done, total */
    float loss, lr, grad_norm;
    double tokens_per_s; /* over the run so far */
    double eta_s;
    float val_loss;      /* < 0 when not evaluated at this step */
} train_progress;

typedef void (*train_progress_fn)(const train_progress *p, void *user);

/* Runs optimizer steps st->step .. tc->steps-1 (or up to tc->stop_at) on random
 * batches drawn with st->rng; fn (if non-NULL) is called after every step.
 * Continuing from a saved (model, state) gives bitwise the same result as not stopping.
 * *last_loss (if non-NULL) gets the training loss of the last step (NAN if no step ran):
 * m->mean_loss may since have been overwritten by a periodic validation forward.
 * Divergence: the run stops at the first step whose training loss or gradient norm is
 * not finite (before its update), whose update leaves a non-finite parameter or AdamW
 * moment, or whose periodic validation loss is not finite; it returns -1 with e saying
 * so (train_diverged), st->step counting only the steps before (fn is not called for
 * that step). The model is then not to be saved. Else 0. */
int train_run(gpt_model *m, train_state *st, const dataset *d, const train_config *tc,
              train_progress_fn fn, void *user, float *last_loss, sattn_err *e);

/* Whether a step may update the parameters: its loss and gradient norm are finite. */
int train_step_finite(float loss, float grad_norm);

/* The divergence error for 1-based step `step`, into e; returns -1:
 *   "diverged at step 15: loss nan (gradient norm inf)" (who, if non-NULL, before
 *   "loss": "head L0H1: loss nan ..."), or with bad (what the update left non-finite):
 *   "diverged at step 15: the update left qkvw non-finite (loss 7.1, gradient norm 3.2e+12)". */
int train_diverged(sattn_err *e, int step, const char *who, float loss, float grad_norm, const char *bad);

/* Mean next-token loss over a split (or its first max_tokens if > 0), in
 * non-overlapping windows of T (the last may be shorter), batched B windows at a
 * time, so every token after the first is predicted exactly once. Returns nats;
 * *tokens gets the number of predictions. */
double eval_split_loss(gpt_model *m, const dataset *d, data_split s, int T, int B,
                       size_t max_tokens, size_t *tokens);
/* The same over the ranks of a data-parallel job (NULL or one rank: eval_split_loss): rank
 * r scores a contiguous 1/N of the full windows (the last rank also the short tail), B at a
 * time, and the sums meet in an all-reduce. Every rank gets the loss. */
double eval_split_loss_dist(gpt_model *m, const dataset *d, data_split s, int T, int B, size_t max_tokens,
                            size_t *tokens, struct gradsync *sync);
/* The number of windows of T tokens eval_split_loss scores whole (for the check that every
 * rank gets one). */
size_t eval_split_windows(const dataset *d, data_split s, int T, size_t max_tokens);

/* Appends n tokens to ctx (which holds *len tokens, capacity *len + n), sampling each
 * from softmax(logits / temperature) over the current window of at most max_seq tokens
 * (generate.h's full-context rule); temperature 0 takes the argmax. Runs on the KV
 * cache (gen_sample); a model with m->attn set (a hybrid without its decode hook) runs
 * the recompute. */
void sample_tokens(gpt_model *m, int *ctx, int *len, int n, float temperature, rng_t *rng);
/* The same by recomputing the whole window for every token (the reference for tests and
 * `sattn bench-generate`'s baseline): same windows, same draws. */
void sample_tokens_recompute(gpt_model *m, int *ctx, int *len, int n, float temperature, rng_t *rng);

#endif
