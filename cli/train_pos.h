/* train_pos: the position flags of `sattn train` (--pos, --rope-base, --rope-scale,
 * --init-from, --rope-extend) and context extension; docs/rope.md. */
#ifndef SATTN_CLI_TRAIN_POS_H
#define SATTN_CLI_TRAIN_POS_H

#include "cli.h"

/* The checks that need no file: one-line error and 1, or 0. */
int train_pos_check_flags(const train_args *a, const char *cmd);
/* A fresh model's position fields from the flags (learned: base and scale 0). */
void train_pos_fresh(const train_args *a, gpt_config *c);
/* --resume: the position flags given must agree with the checkpoint's model m (its
 * positions win, as its shape does), and llm.c's format cannot take a RoPE model.
 * 0, or 1 after a one-line error (m is left to the caller). */
int train_pos_resumed(const train_args *a, const char *cmd, const gpt_model *m);
/* --init-from: loads the weights into m (no AdamW moments: a fresh optimizer), checks the
 * flags and the data against it, and continues at --seq: past the checkpoint's context a
 * RoPE model is extended by --rope-extend (or --rope-scale), a learned one is refused.
 * st gets a fresh start (step 0, the sampler seeded from --seed). 0, or 1 after a one-line
 * error with nothing allocated. */
int train_init_from(const train_args *a, const dataset *d, const char *cmd, gpt_model *m,
                    train_state *st);

#endif
