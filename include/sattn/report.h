/* report: `sattn report` — report.md plus PNG plots drawn by gnuplot (docs/report.md).
 *
 * Inputs:
 *   - the analytic cost model (costmodel.h), always: attention FLOPs, peak memory and
 *     the FLOP ratio against dense-flash vs T at (C, H, k), with each variant's T*;
 *   - optionally a benchmark CSV (`sattn bench`, read by benchres.h's bench_csv_read):
 *     measured time and speedup vs T per phase, and the measured crossover beside the
 *     analytic one;
 *   - optionally a generation CSV (`sattn bench-generate --csv`, bench rows named gen-...):
 *     decode time per token and prefill time vs context, cached vs recompute, the fitted
 *     line per variant (report_generate.c);
 *   - optionally eval JSONs (`sattn eval --json`, read by eval_json.h's eval_json_read):
 *     quality (loss ratio) vs attention FLOPs
 *     of the plan relative to dense (heads not listed are dense), and a per-head rel_err
 *     heat map per file;
 *   - optionally task JSONs (`sattn task --json`, read by eval_json.h's eval_json_task_read):
 *     a length x depth heat map of retrieval accuracy and a table per file;
 *   - optionally training logs (`sattn train --log-csv`, trainlog.h): loss vs tokens of
 *     each run in one plot (dense vs sparse training), and their final losses.
 * The whole report is written into a temporary folder beside the output directory and
 * renamed into place only when everything succeeded (report_write). */
#ifndef SATTN_REPORT_H
#define SATTN_REPORT_H

#include "sattn/benchres.h"
#include "sattn/core.h"
#include "sattn/eval_json.h"

/* The evaluated model: L layers, H heads, d_model C, context T. */
typedef struct {
    int L, H, C, T;
} report_model;

/* Attention FLOPs of f's plan over one sequence of m->T, relative to all-dense
 * (head_attention_flops, costmodel.h); heads f does not list count as dense. Errors:
 * a spec that does not parse, a head outside the model, a head listed twice. */
int eval_relative_flops(const eval_file *f, const report_model *m, double *rel, sattn_err *e);

typedef struct {
    const char *out_dir;
    const char *gnuplot;  /* the gnuplot program: a path, or a name looked up in PATH */
    int C, H, k;          /* analytic plots and the bench filter */
    const char *bench;    /* NULL: no benchmark section */
    const char *generate; /* `sattn bench-generate --csv` rows; NULL: no generation section */
    const char **evals;   /* n_evals eval JSON paths */
    int n_evals;
    report_model model;   /* for the eval section */
    const char **tasks;   /* n_tasks task JSON paths (`sattn task --json`) */
    int n_tasks;
    const char **train_logs; /* n_train_logs "LABEL=CSV" or "CSV" (label: the file name) */
    int n_train_logs;
} report_config;

/* Writes out_dir/report.md and the PNGs. Fails before writing anything if gnuplot is
 * not found or an input does not read. Everything is written into "out_dir.tmp.PID"
 * (gnuplot runs inside it, so no path appears in a script) and renamed to out_dir at
 * the end; on any failure that folder is removed and out_dir is as it was. An existing
 * out_dir is replaced whole (exchanged atomically, then the old one removed), but only
 * if it is empty or holds nothing but report files (report.md, gnuplot.log, *.png,
 * *.gp); anything else there is an error. */
int report_write(const report_config *c, sattn_err *e);

#endif
