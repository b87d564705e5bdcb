/* phasetime: where a whole-model step's time goes (issue 12, the per-phase picture):
 * `sattn bench-train --plan` and `sattn bench-generate` write one row per (variant, stage,
 * T) into their --phases-csv, and `sattn report --phases CSV` draws them.
 *
 * A row splits one step's median time into the sparse attention's selection (tblock_select
 * or the per-head selectors; in a decode step the selection state's upkeep and the choice),
 * its head function's forward (tblock_forward, headfn_forward; the decode step's attention)
 * and backward (training only), and the rest of the model (projections, MLP, norms, logits,
 * dense heads, the optimizer): the hybrid's and the decoder's accumulating timers
 * (hybrid.h's hybrid_timers) read around the step. The split is that of the run (or decode
 * step) whose total is the median (the mean of the two middle ones for an even count).
 * Dense rows have no split: their select_s, head_s and head_bwd_s are -1 (rest_s = total_s).
 *
 * The CSV: the header line
 *   variant,stage,L,H,C,T,total_s,select_s,head_s,head_bwd_s,rest_s
 * then one row per line; stage is "prefill", "decode" or "train". Read back with the bench
 * CSV's rules: one-line errors naming path:line and the column. */
#ifndef SATTN_PHASETIME_H
#define SATTN_PHASETIME_H

#include "sattn/benchres.h"
#include "sattn/core.h"

enum { PT_PREFILL = 0, PT_DECODE = 1, PT_TRAIN = 2, PT_NSTAGE = 3 };

typedef struct {
    char variant[BENCH_NAME_LEN];
    int stage;
    int L, H, C, T;
    double total_s, select_s, head_s, head_bwd_s, rest_s; /* -1: not measured */
} phase_row;

typedef struct {
    int n;
    phase_row *rows;
} phase_table;

/* "prefill", "decode", "train" ("?" outside); pt_stage_parse: the stage, or -1. */
const char *pt_stage_name(int stage);
int pt_stage_parse(const char *s);

/* The row's split of n samples: tot[i] a run's (or step's) total, sel/fwd/bwd[i] its timers'
 * increments (bwd may be NULL). Sorts nothing in place. rest_s = total_s - the parts. */
void pt_split(phase_row *r, const double *tot, const double *sel, const double *fwd, const double *bwd, int n);
/* A dense row: total only. */
void pt_dense(phase_row *r, const double *tot, int n);

/* The row as one CSV line (with '\n') or one JSON object (no newline). */
void pt_csv_line(const phase_row *r, char *buf, size_t n);
void pt_json_object(const phase_row *r, char *buf, size_t n);
/* One line for a terminal: "variant stage T total ms = select x% + head y% + bwd z% + rest w%". */
void pt_text_line(const phase_row *r, char *buf, size_t n);
int pt_csv_write(const char *path, const phase_row *rows, int n, sattn_err *e);
int pt_csv_read(const char *path, phase_table *t, sattn_err *e);
void pt_table_free(phase_table *t);

#endif
