/* finetune: recovery fine-tuning of the hybrid model. The model with its sparse
 * heads swapped in is trained end to end on the language-modelling loss: gradients
 * flow through the selected keys' attention logits (softmax heads) and through the
 * head functions (mlp heads, whose parameters are trained too) into every model
 * parameter. The selection itself is discrete: the selectors keep their parameters
 * and are re-run on the drifting q, k at every step. */
#ifndef SATTN_FINETUNE_H
#define SATTN_FINETUNE_H

#include "sattn/hybrid.h"
#include "sattn/lindex.h"
#include "sattn/sparse.h"
#include "sattn/train.h"

/* Sparse heads trained together with the model by train_run (as its train_extra): the
 * hybrid hook, the heads' gradients and their AdamW moments. `finetune` (finetune_run) and
 * native sparse training (`train --attn sparse:PLAN`) both train through this one path.
 *
 * What learns: the model's parameters through the selected keys (softmax heads: their
 * logits and values; mlp heads: their inputs), and the mlp head functions' own
 * parameters (AdamW beta (0.9, 0.99), no weight decay, the model's lr and clip factor).
 * Selection is discrete, so the selectors' parameters (index, pos) get no gradient from
 * the LM loss: they keep their initialisation (distilled, or from the seed in a native
 * run) and are re-run on the drifting q, k at every step. block has no parameters.
 *
 * Shared indexers (index+softmax with shared=1, lindex.h) do learn, DSA's way, from their
 * own loss and with their own AdamW moments (lindex_trainer): at every step, after the
 * model's backward, KL from the layer's attention (heads summed and renormalised) to the
 * indexer's softmax on `indexer_rows` sampled query rows per sequence, over every key s <= t
 * during the dense warm-up and over the selected keys in the sparse phase. Their input (the
 * model's q, k) is detached: no gradient from this loss reaches the model, and the LM loss
 * sends none to the indexer. The run's learning rate schedule, no clipping (its own loss).
 *
 * Dense warm-up: steps before dense_warmup run every head dense (the hook detached, the
 * model on its dense kernel); from it on the sparse heads. With an all-sparse plan the
 * sparse phase runs GPT_ATTN_HOOK (no T x T buffer); a plan with a dense head keeps
 * naive attention for it. */
typedef struct {
    sparse_heads *sh;
    hybrid hy;
    float *mom;       /* AdamW moments of the heads' parameters: m, then v (hy.n_params each) */
    int dense_warmup; /* the first step (0-based) that runs the sparse heads */
    int dense_attn;   /* the model's cfg.attn while dense (as the caller set it) */
    int sparse_attn;  /* ... and with the sparse heads: GPT_ATTN_HOOK if all-sparse, else naive */
    train_extra extra;
    lindex_trainer lt;  /* the shared indexers (none: lindex_trainer_any is 0) */
    gpt_model *m;       /* the model of the current step (begin_step), for its q, k */
    int step;           /* its 0-based step */
    uint64_t seed;      /* the sampled rows' seed (with the step) */
    double indexer_kl;  /* the last step's mean KL per sampled row over the shared layers */
    dist_ctx *dist;     /* data parallel: the shared indexers' gradients are averaged over the
                         * ranks (each rank's rows are its own); NULL: one process */
} sparse_train;

/* Query rows per sequence the shared indexers train on (sparse_train_init). */
enum { SPARSE_TRAIN_INDEXER_ROWS = 64 };

/* Binds sh to m (not yet attached: begin_step or sparse_train_use does that). m->cfg.attn
 * is taken as the dense phase's kernel. */
void sparse_train_init(sparse_train *s, sparse_heads *sh, const gpt_model *m, int dense_warmup);
/* Runs m with the sparse heads (on != 0) or dense. */
void sparse_train_use(sparse_train *s, gpt_model *m, int on);
/* Detaches from m (restoring the dense kernel) and frees. */
void sparse_train_free(sparse_train *s, gpt_model *m);

/* Runs tc->steps steps (from st->step) on train batches; the AdamW state of the model
 * lives in m (as in train_run), the heads' in an internal buffer. *last_loss (if
 * non-NULL) gets the last step's training loss. Divergence as in train_run (the
 * gradient norm covers the heads' gradients, and their updates are checked too):
 * -1 with e ("diverged at step N: ..."), and neither m nor sh is to be saved. Else 0. */
int finetune_run(gpt_model *m, sparse_heads *sh, train_state *st, const dataset *d,
                 const train_config *tc, train_progress_fn fn, void *user, float *last_loss,
                 sattn_err *e);

#endif
