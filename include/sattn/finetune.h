/* finetune: recovery fine-tuning of the hybrid model. The model with its sparse
 * heads swapped in is trained end to end on the language-modelling loss: gradients
 * flow through the selected keys' attention logits (softmax heads) and through the
 * head functions (mlp heads, whose parameters are trained too) into every model
 * parameter. The selection itself is discrete: the selectors keep their parameters
 * and are re-run on the drifting q, k at every step. */
#ifndef SATTN_FINETUNE_H
#define SATTN_FINETUNE_H

#include "sattn/sparse.h"
#include "sattn/train.h"

/* Runs tc->steps steps (from st->step) on train batches; the AdamW state of the model
 * lives in m (as in train_run), the heads' in an internal buffer. *last_loss (if
 * non-NULL) gets the last step's training loss. Divergence as in train_run (the
 * gradient norm covers the heads' gradients, and their updates are checked too):
 * -1 with e ("diverged at step N: ..."), and neither m nor sh is to be saved. Else 0. */
int finetune_run(gpt_model *m, sparse_heads *sh, train_state *st, const dataset *d,
                 const train_config *tc, train_progress_fn fn, void *user, float *last_loss,
                 sattn_err *e);

#endif
