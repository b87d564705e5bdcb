/* sattn report: report.md and PNG plots (gnuplot) from the analytic cost model, a bench
 * CSV and eval JSONs (sattn/report.h, docs/report.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "sattn/report.h"

static const char REPORT_HELP[] =
    "usage: sattn report --out DIR [--bench CSV] [--eval JSON ...] [--model-shape L,H,C,T]\n"
    "                    [--dim C] [--heads H] [--k K]\n"
    "Writes DIR/report.md and PNG plots drawn by gnuplot (pngcairo; install gnuplot-nox):\n"
    "  always       analytic attention FLOPs, peak memory and FLOP speedup vs T at --dim C\n"
    "               (default 512), --heads H (8), --k K (32), with each variant's crossover T*\n"
    "  --bench CSV  `sattn bench` output: measured time and speedup vs T (prefill, decode) and\n"
    "               the measured crossover beside the analytic one (rows at C and k)\n"
    "  --eval JSON  `sattn eval --json` output (repeatable): loss ratio vs attention FLOPs of the\n"
    "               plan (Pareto), and a per-head error heat map per file; needs --model-shape\n"
    "  --model-shape L,H,C,T  the evaluated model: layers, heads, d_model, context\n"
    "The report is written into DIR.tmp.PID and renamed to DIR when complete: a failure\n"
    "leaves nothing. An existing DIR is replaced whole if it holds only an earlier report\n"
    "(report.md, *.png, *.gp, gnuplot.log); any other file in it is an error.\n"
    "The gnuplot program is $SATTN_GNUPLOT if set, else gnuplot from PATH.\n";

enum { R_OUT = 256, R_BENCH, R_EVAL, R_SHAPE, R_DIM, R_HEADS, R_K, R_HELP };
static const struct option REPORT_OPTS[] = {
    {"out", 1, 0, R_OUT},   {"bench", 1, 0, R_BENCH}, {"eval", 1, 0, R_EVAL},
    {"model-shape", 1, 0, R_SHAPE}, {"dim", 1, 0, R_DIM}, {"heads", 1, 0, R_HEADS},
    {"k", 1, 0, R_K},       {"help", 0, 0, R_HELP},   {0, 0, 0, 0}};

#define MAX_EVALS 64

static int parse_shape(const char *s, report_model *m) {
    char tail;
    if (sscanf(s, "%d,%d,%d,%d%c", &m->L, &m->H, &m->C, &m->T, &tail) != 4 || m->L < 1 || m->H < 1 ||
        m->C < 1 || m->T < 1 || m->L > 4096 || m->H > 4096 || m->C > 1 << 16 || m->T > 1 << 20)
        return cli_fail("report", "--model-shape: expected L,H,C,T (four positive integers), got '%s'", s);
    if (m->C % m->H)
        return cli_fail("report", "--model-shape: d_model %d is not a multiple of heads %d", m->C, m->H);
    return 0;
}

static int report_parse(report_config *c, const char **evals, int argc, char **argv) {
    int ch, bad = 0, shape = 0;
    optind = 1;
    opterr = 0;
    while (!bad && (ch = getopt_long(argc, argv, ":", REPORT_OPTS, NULL)) != -1) {
        switch (ch) {
        case R_HELP: fputs(REPORT_HELP, stdout); return 2;
        case R_OUT: c->out_dir = optarg; break;
        case R_BENCH: c->bench = optarg; break;
        case R_EVAL:
            if (c->n_evals == MAX_EVALS) return cli_fail("report", "--eval: at most %d files", MAX_EVALS);
            evals[c->n_evals++] = optarg;
            break;
        case R_SHAPE: bad = parse_shape(optarg, &c->model), shape = 1; break;
        case R_DIM: bad = arg_int("report", "dim", optarg, 1, 1 << 16, &c->C); break;
        case R_HEADS: bad = arg_int("report", "heads", optarg, 1, 1 << 12, &c->H); break;
        case R_K: bad = arg_int("report", "k", optarg, 1, 1 << 16, &c->k); break;
        default: return cli_usage_error("report", ch, argc, argv);
        }
    }
    if (bad) return 1;
    if (optind < argc) return cli_usage_error("report", 0, argc, argv);
    if (!c->out_dir) return cli_fail("report", "--out DIR is required");
    if (c->C % c->H) return cli_fail("report", "--dim %d is not a multiple of --heads %d", c->C, c->H);
    if (c->n_evals && !shape)
        return cli_fail("report", "--eval needs --model-shape L,H,C,T (the evaluated model's layers, "
                                  "heads, d_model and context)");
    return 0;
}

int cmd_report(int argc, char **argv) {
    const char *evals[MAX_EVALS];
    report_config c = {.C = 512, .H = 8, .k = 32, .evals = evals, .gnuplot = getenv("SATTN_GNUPLOT")};
    int r = report_parse(&c, evals, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    sattn_err e;
    if (report_write(&c, &e)) return cli_fail("report", "%s", e.msg);
    printf("wrote %s/report.md\n", c.out_dir);
    return 0;
}
