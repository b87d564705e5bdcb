/* report: `sattn report` — report.md plus PNG plots drawn by gnuplot (docs/report.md).
 *
 * Inputs:
 *   - the analytic cost model (costmodel.h), always: attention FLOPs, peak memory and
 *     the FLOP ratio against dense-flash vs T at (C, H, k), with each variant's T*;
 *   - optionally a benchmark CSV (`sattn bench`), header exactly
 *       variant,phase,C,H,T,k,median_s,gflops,speedup_vs_flash,peak_bytes,cpu_pressure_avg10
 *     phase is "prefill", "decode" or "backward": measured time and speedup vs T, and the measured
 *     crossover beside the analytic one;
 *   - optionally eval JSONs (`sattn eval --json`): quality (loss ratio) vs attention FLOPs
 *     of the plan relative to dense (heads not listed are dense), and a per-head rel_err
 *     heat map per file.
 * The whole report is written into a temporary folder beside the output directory and
 * renamed into place only when everything succeeded (report_write). */
#ifndef SATTN_REPORT_H
#define SATTN_REPORT_H

#include "sattn/core.h"

#define REPORT_NAME_LEN 96

typedef struct {
    char variant[REPORT_NAME_LEN];
    int decode; /* phase: 0 prefill, 1 decode, 2 backward */
    int C, H, T, k;
    double median_s, gflops, speedup_vs_flash, peak_bytes, cpu_pressure;
} bench_row;

typedef struct {
    int n;
    bench_row *rows;
} bench_table;

/* Reads a bench CSV (header above, then one row per line; empty lines skipped). Errors
 * are one line naming "path:line" and the column: a wrong or missing header column, a
 * row with too few or too many fields, a field that is not a finite decimal number or
 * is outside its column's range (times > 0, sizes and rates bounded; -1 where bench
 * writes it for "not available"), an unknown phase, a variant name with a byte other
 * than letters, digits and + - _ . : = (names reach gnuplot), a NUL byte, more than
 * 2^18 rows or 64 MiB. */
int bench_csv_read(const char *path, bench_table *t, sattn_err *e);
void bench_table_free(bench_table *t);

typedef struct {
    int layer, head;
    char spec[REPORT_NAME_LEN];
    double top1, hit, recall, mass, keys, rel_err;
} eval_head;

typedef struct {
    char name[REPORT_NAME_LEN]; /* the file's base name without ".json" */
    int n_heads;                /* the sparse heads (dense heads are not listed) */
    eval_head *heads;
    double loss_dense, loss_hybrid, loss_ratio, logit_rel_err;
} eval_file;

/* Reads the JSON `sattn eval --json` prints. Unknown fields are skipped; heads,
 * loss_dense, loss_hybrid and loss_ratio are required. Errors name "path:line" and the
 * field: nesting deeper than 32 levels, a number that is not JSON's (NaN, Infinity,
 * hex) or not finite, a metric outside its range (fractions in 0..1, errors >= 0,
 * losses > 0), a string longer than its field or with a control byte, a NUL byte, a
 * file over 64 MiB. */
int eval_json_read(const char *path, eval_file *f, sattn_err *e);
void eval_file_free(eval_file *f);

/* The evaluated model: L layers, H heads, d_model C, context T. */
typedef struct {
    int L, H, C, T;
} report_model;

/* Attention FLOPs of f's plan over one sequence of m->T, relative to all-dense
 * (head_attention_flops, autoplan.h); heads f does not list count as dense. Errors:
 * a spec that does not parse, a head outside the model, a head listed twice. */
int eval_relative_flops(const eval_file *f, const report_model *m, double *rel, sattn_err *e);

typedef struct {
    const char *out_dir;
    const char *gnuplot;  /* the gnuplot program: a path, or a name looked up in PATH */
    int C, H, k;          /* analytic plots and the bench filter */
    const char *bench;    /* NULL: no benchmark section */
    const char **evals;   /* n_evals eval JSON paths */
    int n_evals;
    report_model model;   /* for the eval section */
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
