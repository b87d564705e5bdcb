/* sattn report: report.md and PNG plots (gnuplot) from the analytic cost model, a bench
 * CSV and eval JSONs (sattn/report.h, docs/report.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "opts.h"
#include "sattn/report.h"

static const cli_cmd REPORT = {
    "report", NULL,
    "Writes DIR/report.md and PNG plots drawn by gnuplot (pngcairo; install gnuplot-nox); always\n"
    "analytic attention FLOPs, peak memory and FLOP speedup vs T at --dim, --heads and --k, with\n"
    "each variant's crossover T*; retrieval heat maps from --task files.",
    "The report is written into DIR.tmp.PID and renamed to DIR when complete: a failure\n"
    "leaves nothing. An existing DIR is replaced whole if it holds only an earlier report\n"
    "(report.md, *.png, *.gp, gnuplot.log); any other file in it is an error.\n"
    "The gnuplot program is $SATTN_GNUPLOT if set, else gnuplot from PATH."};

#define MAX_EVALS 64

static int parse_shape(const opt_spec *o, const char *s, sattn_err *e) {
    report_model *m = o->target;
    char tail;
    if (sscanf(s, "%d,%d,%d,%d%c", &m->L, &m->H, &m->C, &m->T, &tail) != 4 || m->L < 1 || m->H < 1 ||
        m->C < 1 || m->T < 1 || m->L > 4096 || m->H > 4096 || m->C > 1 << 16 || m->T > 1 << 20)
        return err_set(e, "--model-shape: expected L,H,C,T (four positive integers), got '%s'", s);
    if (m->C % m->H)
        return err_set(e, "--model-shape: d_model %d is not a multiple of heads %d", m->C, m->H);
    return 0;
}

/* --eval, repeatable: one more file. */
static int add_eval(const opt_spec *o, const char *s, sattn_err *e) {
    report_config *c = o->target;
    if (c->n_evals == MAX_EVALS) return err_set(e, "--eval: at most %d files", MAX_EVALS);
    c->evals[c->n_evals++] = s;
    return 0;
}

/* --task, repeatable: one more task JSON. */
static int add_task(const opt_spec *o, const char *s, sattn_err *e) {
    report_config *c = o->target;
    if (c->n_tasks == MAX_EVALS) return err_set(e, "--task: at most %d files", MAX_EVALS);
    c->tasks[c->n_tasks++] = s;
    return 0;
}

/* --train-log, repeatable: one more training log. */
static int add_train_log(const opt_spec *o, const char *s, sattn_err *e) {
    report_config *c = o->target;
    if (c->n_train_logs == MAX_EVALS) return err_set(e, "--train-log: at most %d files", MAX_EVALS);
    if (!*s) return err_set(e, "--train-log: expected [LABEL=]CSV, got ''");
    c->train_logs[c->n_train_logs++] = s;
    return 0;
}

static int report_parse(report_config *c, int argc, char **argv) {
    opt_spec o[] = {
        opt_required(opt_str("out", &c->out_dir, "DIR", "the report's directory")),
        opt_str("bench", &c->bench, "CSV",
                "`sattn bench` output: measured time and speedup vs T (prefill, decode) and\n"
                "the measured crossover beside the analytic one (rows at C and k)"),
        opt_str("generate", &c->generate, "CSV",
                "`sattn bench-generate --csv` output: decode time per token and prefill time vs\n"
                "context, KV cache vs recompute, the fitted line per variant"),
        opt_call("eval", c, add_eval, "JSON",
                 "`sattn eval --json` output (repeatable): loss ratio vs attention FLOPs of the\n"
                 "plan (Pareto), and a per-head error heat map per file; needs --model-shape"),
        opt_call("task", c, add_task, "JSON",
                 "`sattn task --json` output (repeatable): a length x depth heat map of\n"
                 "retrieval accuracy and a table per file"),
        opt_call("train-log", c, add_train_log, "[LABEL=]CSV",
                 "`sattn train --log-csv` output (repeatable): loss vs tokens of every run in one\n"
                 "plot (e.g. dense=d.csv sparse=s.csv), and their final validation losses"),
        opt_call("model-shape", &c->model, parse_shape, "L,H,C,T", "the evaluated model: layers, heads, d_model, context"),
        opt_int("dim", &c->C, 1, 1 << 16, "C", "d_model of the analytic plots"),
        opt_int("heads", &c->H, 1, 1 << 12, "H", "heads of the analytic plots"),
        opt_int("k", &c->k, 1, 1 << 16, "K", "keys per query of the analytic plots"),
    };
    int r = cli_parse(&REPORT, o, CLI_N(o), argc, argv);
    if (r) return r;
    if (c->C % c->H) return cli_fail("report", "--dim %d is not a multiple of --heads %d", c->C, c->H);
    if (c->n_evals && !opts_seen(o, CLI_N(o), "model-shape"))
        return cli_fail("report", "--eval needs --model-shape L,H,C,T (the evaluated model's layers, "
                                  "heads, d_model and context)");
    return 0;
}

int cmd_report(int argc, char **argv) {
    const char *evals[MAX_EVALS], *tasks[MAX_EVALS], *logs[MAX_EVALS];
    report_config c = {.C = 512, .H = 8, .k = 32, .evals = evals, .tasks = tasks, .train_logs = logs,
                       .gnuplot = getenv("SATTN_GNUPLOT")};
    int r = report_parse(&c, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    sattn_err e;
    if (report_write(&c, &e)) return cli_fail("report", "%s", e.msg);
    printf("wrote %s/report.md\n", c.out_dir);
    return 0;
}
