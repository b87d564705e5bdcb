/* report_impl: what the parts of `sattn report` share (src/analysis only; the API is
 * include/sattn/report.h):
 *   report.c           the driver: the inputs read first (benchres.h's bench CSV,
 *                      eval_json.h's eval JSONs), eval_relative_flops, report_write
 *   report_gnuplot.c   the gnuplot driver: the program found, scripts written with every
 *                      text quoted inert, gnuplot run inside the report folder
 *   report_dir.c       the atomic output folder: written beside the target, renamed into
 *                      place, an earlier report replaced whole
 *   report_sections.c  the sections of report.md: analytic, measured, quality
 *   report_generate.c  the generation section (bench-generate's CSV)
 *   report_tasks.c     the retrieval-task section (task JSONs: heat maps, tables)
 *   report_curves.c    the training-curve section (train --log-csv files) */
#ifndef SATTN_REPORT_IMPL_H
#define SATTN_REPORT_IMPL_H

#include <limits.h>

#include "sattn/report.h"
#include "sattn/trainlog.h"

#define REPORT_NAME_LEN 96

typedef struct {
    const report_config *c;
    char gnuplot[PATH_MAX];
    char dir[PATH_MAX]; /* the temporary folder the whole report is written into */
    sbuf md;            /* report.md */
    int plots;          /* PNGs written */
} report_ctx;

/* ---- report_gnuplot.c ---- */

/* The gnuplot program (a path, or a name looked up in PATH) as an absolute path into
 * buf; -1 if none. */
int rp_find_gnuplot(const char *prog, char *buf, size_t n);
/* b written atomically as NAME in the report folder. */
int rp_write_file(const report_ctx *r, const char *name, const sbuf *b, sattn_err *e);
/* s as a gnuplot single-quoted string, inert whatever it holds. */
void rp_gp_str(sbuf *g, const char *s);
/* The script's first lines: terminal, output NAME.png, title, axes; logscale "x" or
 * "xy" or NULL; yfmt: the y tick format, or NULL. */
void rp_plot_begin(sbuf *g, const char *name, const char *title, const char *xlabel, const char *ylabel,
                   const char *logscale, const char *yfmt);
/* Writes NAME.gp and runs gnuplot on it, which writes NAME.png. */
int rp_plot_render(report_ctx *r, const char *name, const sbuf *g, sattn_err *e);
/* A variant's gnuplot line style; its name without the spec's options (legends). */
void rp_style_of(const char *name, char *buf, size_t n);
void rp_short_name(const char *name, char *buf, size_t n);

/* ---- report_dir.c ---- */

/* out without trailing slashes into buf, refused where it cannot be renamed into place. */
int rp_target_of(const char *out, char *buf, size_t n, sattn_err *e);
/* Whether target exists, and if so that it holds nothing but report files. */
int rp_check_target(const char *target, int *exists, sattn_err *e);
/* A new empty folder "target.tmp.PID" into buf (killed reports' folders removed first). */
int rp_make_temp_dir(const char *target, char *buf, size_t n, sattn_err *e);
/* The finished folder tmp moved to target (an earlier report there replaced whole). */
int rp_install_dir(const char *tmp, const char *target, int exists, sattn_err *e);
/* Removes dir and its regular files (all, or only report files). */
int rp_remove_dir(const char *dir, int only_report_files);

/* ---- report_sections.c ---- */

int rp_analytic_section(report_ctx *r, sattn_err *e);
int rp_bench_section(report_ctx *r, const bench_table *t, sattn_err *e);
int rp_eval_section(report_ctx *r, const eval_file *f, int n, sattn_err *e);

/* ---- report_generate.c ---- */

int rp_generate_section(report_ctx *r, const bench_table *t, sattn_err *e);

/* ---- report_tasks.c ---- */

/* The retrieval tasks: a length x depth heat map and table per task JSON. */
int rp_task_section(report_ctx *r, const task_file *f, int n, sattn_err *e);

/* ---- report_curves.c ---- */

/* Loss vs tokens of every log in one plot, and their final validation losses (n >= 1). */
int rp_curves_section(report_ctx *r, const trainlog *logs, const char *const *labels, const char *const *paths, int n,
                      sattn_err *e);

/* ---- report.c ---- */

/* A head spec's text ("index+softmax:k=16") parsed as the plan "all:<text>". */
int rp_spec_of(const char *text, head_spec *s, sattn_err *e);

#endif
