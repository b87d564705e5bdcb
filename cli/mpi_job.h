/* The checks of a data-parallel job (docs/mpi.md) shared by train, distill and finetune:
 * what must divide, what every rank must have, and that the ranks run the same build on
 * the same model. Errors are printed once, by rank 0 (the other ranks' output is
 * captured: dist_quiet). */
#ifndef SATTN_CLI_MPI_JOB_H
#define SATTN_CLI_MPI_JOB_H

#include "sattn/ckpt.h"
#include "sattn/data.h"
#include "sattn/dist.h"
#include "sattn/model.h"

/* --batch is the global batch: a multiple of the ranks. Same answer on every rank. */
int job_check_batch(const dist_ctx *d, const char *cmd, int batch);
/* Each rank scores a shard of the validation windows (eval_split_loss_dist): at least one
 * window of T per rank in the first max_tokens (0: all) tokens. Same answer on every rank. */
int job_check_windows(const dist_ctx *d, const char *cmd, const char *path, const dataset *ds, int T,
                      size_t max_tokens, const char *what);
/* Collective, after every rank's setup: the ranks' builds (checkpoint and heads format
 * versions) and their models (weights, optimizer step and sampler state) agree. 0 or 1
 * (rank 0 printed why; `source` names where the model came from, e.g. "--resume a.bin"). */
int job_check_same(dist_ctx *d, const char *cmd, const gpt_model *m, const train_state *st, const char *source);

#endif
