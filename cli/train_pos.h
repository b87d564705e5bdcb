/* train_pos: the position flags of `sattn train` (--pos, --rope-base, --rope-scale,
 * --init-from, --rope-extend) and context extension; docs/rope.md. */
#ifndef SATTN_CLI_TRAIN_POS_H
#define SATTN_CLI_TRAIN_POS_H

#include "cli.h"

#include "opts.h"

/* train's option table entries for positions: --pos, --rope-base, --rope-scale, --init-from,
 * --rope-extend (a macro so that they sit in the command's one table). */
#define TRAIN_POS_OPTIONS(a)                                                                      \
    opt_enum("pos", &(a)->cfg.pos, TRAIN_POS_NAMES, TRAIN_POS_VALUES,                             \
             "positions: learned (GPT-2's wpe; the only kind llm.c's format holds)\n"            \
             "or rope (rotary, on q and k; runs past the training context)"),                    \
    opt_float("rope-base", &(a)->rope_base, 0, 1, 1e12, "X", "RoPE base (with --pos rope)"),    \
    opt_float("rope-scale", &(a)->rope_scale, 0, 1, 1e6, "X",                                    \
              "RoPE position interpolation factor: position t is rotated as t*X\n"               \
              "(with --pos rope; with --init-from it replaces --rope-extend's factor)"),          \
    opt_str("init-from", &(a)->init_from, "PATH",                                               \
            "start from a sattn or llm.c checkpoint's weights (model shape from it;\n"           \
            "fresh AdamW and schedule); --seq may exceed its context for a RoPE model"),         \
    opt_enum("rope-extend", &(a)->rope_extend, TRAIN_EXTEND_NAMES, TRAIN_EXTEND_VALUES,          \
             "with --init-from at a longer --seq than the checkpoint's context T0:\n"            \
             "ntk (default: base times (T/T0)^(hs/(hs-2)), NTK-aware), pi (rope\n"              \
             "scale times T0/T, position interpolation) or none (extrapolation)")
extern const char *const TRAIN_POS_NAMES[], *const TRAIN_EXTEND_NAMES[];
extern const int TRAIN_POS_VALUES[], TRAIN_EXTEND_VALUES[];

/* After parsing table o (n entries): records which position flags were given, then the
 * checks that need no file: one-line error and 1, or 0. */
int train_pos_check_flags(train_args *a, const opt_spec *o, int n, const char *cmd);
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
