/* autoplan: an automatic plan — replace the heads that lose the least validation
 * loss per attention FLOP saved, until a loss budget is spent (docs/autoplan.md).
 *
 * The FLOPs of a head are the cost model's head_attention_flops (costmodel.h).
 *
 * The planner:
 *   1. per candidate c: sparse heads for the plan "all:c", distilled jointly against
 *      the teacher (distill_run), so every head has a trained version of every candidate
 *      (candidates that save no FLOPs at T = max_seq are skipped: they cannot be chosen;
 *      candidates without parameters, block+softmax, need no distillation);
 *   2. baseline: the dense loss over the first W windows (of the model's T) of the
 *      validation split;
 *   3. per (head, candidate) whose FLOPs saved at T = max_seq are > 0: the loss with
 *      ONLY that head sparse; per head keep the candidate with the least delta/saved
 *      (among candidates that LOWER the loss, the one that saves the most FLOPs: the
 *      ratio would prefer the one that saves less);
 *   4. greedy, heads by delta/saved ascending: add the head, evaluate the combined
 *      hybrid loss; if (loss - baseline)/baseline > budget drop it again; go on to the
 *      next (a later head may still fit).
 * The final loss is the combined loss of the accepted heads, so it always satisfies
 * loss - baseline <= budget * baseline. */
#ifndef SATTN_AUTOPLAN_H
#define SATTN_AUTOPLAN_H

#include <stdint.h>

#include "sattn/core.h"
#include "sattn/costmodel.h"
#include "sattn/data.h"
#include "sattn/distill.h"
#include "sattn/model.h"
#include "sattn/sparse.h"

/* Parses ';'-separated candidate specs ("index+softmax:k=16;block+softmax:b=16,n=4"),
 * each checked as the plan "all:<candidate>"; empty items are skipped. Errors: a
 * candidate that does not parse, a dense candidate, no candidate at all. On success
 * *out (caller frees) holds *n >= 1 specs. */
int autoplan_parse_candidates(const char *text, head_spec **out, int *n, sattn_err *e);

typedef struct {
    const head_spec *candidates; /* n_candidates sparse specs */
    int n_candidates;
    distill_config dc;   /* distillation of each candidate (steps, batch, lr, seed) */
    int windows;         /* W: validation windows of the model's T (default 64; fewer if the split is short) */
    int eval_batch;      /* windows per forward of the loss evaluations (default 8) */
    double budget;       /* allowed relative loss increase, in (0, 1] (0.01 = +1%) */
    uint64_t seed;       /* initialisation of the sparse heads (dc.seed draws the distillation batches) */
} autoplan_config;

/* dc = distill_config_default(), windows 64, eval_batch 8, budget 0.01, seed 1337;
 * no candidates. */
autoplan_config autoplan_config_default(void);

typedef enum {
    AUTOPLAN_DISTILL,  /* cand, dp: a distillation step of candidate cand (if it has parameters) */
    AUTOPLAN_BASELINE, /* loss: the dense loss */
    AUTOPLAN_SKIP,     /* cand, saved: saves no FLOPs at T = max_seq: neither distilled nor evaluated */
    AUTOPLAN_SINGLE,   /* cand, saved, layer, head, loss, delta: that head alone sparse */
    AUTOPLAN_GREEDY    /* cand, layer, head, loss, delta (relative to baseline), accepted */
} autoplan_stage;

typedef struct {
    autoplan_stage stage;
    int cand;
    const distill_progress *dp;
    double saved; /* FLOPs per head and sequence of max_seq: dense minus the candidate */
    int layer, head;
    double loss, delta;
    int accepted;
} autoplan_event;

typedef void (*autoplan_fn)(const autoplan_event *ev, void *user);

/* Per (layer, head), index l * heads + h. */
typedef struct {
    int cand;          /* the candidate kept for this head (step 3); -1 if none saves FLOPs */
    double delta;      /* its loss alone minus the baseline */
    double saved;      /* its FLOPs saved vs dense, per sequence of max_seq */
    int tried;         /* the greedy pass evaluated it */
    double loss_tried; /* the combined loss when it was tried */
    int chosen;        /* in the final plan */
} autoplan_head;

typedef struct {
    int layers, heads, hs, T, windows; /* T = max_seq; windows actually evaluated */
    size_t tokens;                     /* predictions per loss evaluation */
    head_spec *specs;                  /* layers*heads: the plan (dense where not replaced) */
    autoplan_head *ph;                 /* layers*heads */
    int *order;                        /* greedy order: n_order head indices */
    int n_order;
    sparse_heads chosen;               /* the plan with the chosen heads' trained parameters */
    int replaced;
    double baseline, loss;             /* dense and plan loss over the windows */
    double flops_dense, flops_plan;    /* attention FLOPs per sequence of T, all heads */
    double wall_s;
} autoplan_result;

/* Runs the planner on teacher m (left with dense attention, m->attn = NULL) and data d.
 * Errors (nothing allocated in r): no candidates, a dense or invalid candidate, budget
 * outside (0, 1], windows or eval_batch < 1, a training or validation split shorter
 * than one window of T+1 tokens, data tokens outside the model's vocabulary, a candidate
 * whose distillation diverged (distill_run). */
int autoplan_run(gpt_model *m, const dataset *d, const autoplan_config *c, autoplan_result *r,
                 autoplan_fn fn, void *user, sattn_err *e);
void autoplan_free(autoplan_result *r);

#endif
