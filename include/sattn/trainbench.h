/* trainbench: `sattn bench-train --plan` (docs/native_sparse.md, "End-to-end speed"): the
 * time of one whole training step (forward, backward, gradient clip, AdamW) of a random RoPE
 * model on random tokens, dense flash attention against the same model with a sparse plan
 * as its attention (the hybrid hook: GPT_ATTN_HOOK when every head is sparse, so a tile=1
 * plan runs whole layers through tblock with memory linear in T; naive attention otherwise).
 *
 * At each T: both models are built from the same seed (same parameters and tokens), each
 * takes `warmup` untimed steps (the first steps fault in fresh memory), then `runs` timed
 * steps alternate dense, sparse, dense, ... so that a busy machine slows both alike; the
 * medians are reported, and the sparse step's split (phasetime.h: selection, head function
 * forward and backward, the rest of the model) is that of its median step. A plan's heads
 * with parameters (index, pos, mlp) get their gradients computed, not applied: the AdamW
 * of a few thousand parameters is not what is timed. */
#ifndef SATTN_TRAINBENCH_H
#define SATTN_TRAINBENCH_H

#include <stdint.h>

#include "sattn/phasetime.h"
#include "sattn/sparse.h"

#define TRB_MAX_SEQS 16
#define TRB_MAX_RUNS 64

typedef struct {
    int L, H, C, V, B;
    int seqs[TRB_MAX_SEQS], n_seqs;
    int runs, warmup;   /* timed steps per variant (1..TRB_MAX_RUNS), untimed steps first */
    uint64_t seed;
    double max_bytes;   /* a T whose two models need more (the estimate) is skipped */
} trb_config;

typedef struct {
    int T;
    phase_row dense, sparse;             /* stage train; the dense row has no split */
    double dense_s[TRB_MAX_RUNS], sparse_s[TRB_MAX_RUNS]; /* each timed step, in order */
    int runs;
    double bytes;                        /* the estimate for both models */
} trb_result;

/* Bytes both models need at T (parameters, gradients, AdamW moments, activations, the
 * hybrid's buffers). */
double trb_bytes(const trb_config *c, const head_spec *specs, int T);

/* Runs c's grid for the plan specs (L*H, checked by plan_parse) labelled label (variant
 * "train-LABEL"; the dense one "train-flash"). done is called per T; note with a one-line
 * message per skipped T. */
void trb_run(const trb_config *c, const head_spec *specs, const char *label,
             void (*done)(const trb_result *r, void *user), void (*note)(const char *msg, void *user), void *user);

#endif
