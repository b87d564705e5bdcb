/* sattn bench: measured time of one attention layer per variant, prefill and decode,
 * with the measured crossover beside the analytic one (sattn/attnbench.h, docs/bench.md). */
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "sattn/attnbench.h"
#include "sattn/cuda_attn.h"
#include "sattn/cuda_bench.h"

static const char BENCH_HELP[] =
    "usage: sattn bench [--quick] [--dims 128,256,512,1024] [--seqs 64,128,...,32768]\n"
    "                   [--ks 8,16,32,64,128,256] [--variants naive,flash,index,block]\n"
    "                   [--phases prefill,decode,backward] [--runs N] [--threads N]\n"
    "                   [--max-run SEC] [--max-gib G] [--seed S] [--csv PATH] [--json]\n"
    "                   [--device cpu|cuda] [--index-rank R] [--index-heads J]\n"
    "Wall time of ONE attention layer (attention only, batch 1, H = C/64 heads of dim 64,\n"
    "random q, k, v): prefill (T queries), one decode step (KV cache of T keys) and the\n"
    "prefill's backward (d qkv from d out; the sparse heads' selection has no backward),\n"
    "for dense-naive, dense-flash, index+softmax and block+softmax at each k. One warm-up,\n"
    "then the median of --runs runs (default 5); CPU pressure (/proc/pressure/cpu some\n"
    "avg10, -1 if missing) is logged per row. Rows predicted to take more than --max-run\n"
    "seconds per call (default 2), or needing more than --max-gib GiB of buffers (default 2),\n"
    "are skipped.\n"
    "  --quick   C {256,512}, T {256,1024,4096}, k {32}, prefill and decode, 3 runs (lists\n"
    "            given override it)\n"
    "  --csv     write the rows to PATH: variant,phase,C,H,T,k,median_s,gflops,\n"
    "            speedup_vs_flash,peak_bytes,cpu_pressure_avg10 (-1: not available)\n"
    "  --json    one JSON object {\"rows\": [...], \"crossovers\": [...]} instead of the table\n"
    "Then the measured crossover T* per (variant, phase, C, k): the smallest measured T\n"
    "from which the variant is faster than dense-flash at every larger measured T (-1:\n"
    "none), beside costmodel's analytic T* (total FLOPs; -1 for backward: no model).\n"
    "  --device cuda  the grid's prefill and decode on the GPU (needs a `make cuda` build,\n"
    "            build-cuda/sattn): dense-flash, index+softmax, block+softmax as CUDA\n"
    "            kernels, rows named <variant>-cuda, speedups against dense-flash-cuda\n"
    "            (docs/cuda.md); --index-rank R, --index-heads J: the indexer timed (16, 4)\n";

enum { B_QUICK = 256, B_DIMS, B_SEQS, B_KS, B_VARIANTS, B_RUNS, B_THREADS, B_MAXRUN, B_SEED,
       B_CSV, B_JSON, B_HELP, B_PHASES, B_DEVICE, B_IRANK, B_IHEADS, B_MAXGIB };
static const struct option BENCH_OPTS[] = {
    {"quick", 0, 0, B_QUICK},     {"dims", 1, 0, B_DIMS},     {"seqs", 1, 0, B_SEQS},
    {"ks", 1, 0, B_KS},           {"variants", 1, 0, B_VARIANTS}, {"runs", 1, 0, B_RUNS},
    {"threads", 1, 0, B_THREADS}, {"max-run", 1, 0, B_MAXRUN}, {"seed", 1, 0, B_SEED},
    {"csv", 1, 0, B_CSV},         {"json", 0, 0, B_JSON},     {"help", 0, 0, B_HELP},
    {"device", 1, 0, B_DEVICE},   {"index-rank", 1, 0, B_IRANK}, {"index-heads", 1, 0, B_IHEADS},
    {"phases", 1, 0, B_PHASES},   {"max-gib", 1, 0, B_MAXGIB}, {0, 0, 0, 0}};

typedef struct {
    ab_config cfg;
    const char *dims, *seqs, *ks, *variants, *csv, *phases;
    int quick, runs, threads, json;
    int cuda, index_rank, index_heads; /* --device cuda; 0: the standard indexer */
    float max_run, max_gib;
    uint64_t seed;
    int seed_given;
} bench_args;

/* A comma-separated list of integers in [lo, hi] (at most AB_MAX_LIST, no repeats). */
static int parse_list(const char *flag, const char *text, long lo, long hi, int *out, int *n) {
    char buf[512], *save = NULL;
    if (strlen(text) >= sizeof buf) return cli_fail("bench", "--%s: list too long", flag);
    strcpy(buf, text);
    *n = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n == AB_MAX_LIST) return cli_fail("bench", "--%s: at most %d values", flag, AB_MAX_LIST);
        if (arg_int("bench", flag, tok, lo, hi, &out[*n])) return 1;
        for (int i = 0; i < *n; i++)
            if (out[i] == out[*n]) return cli_fail("bench", "--%s: %d given twice", flag, out[i]);
        (*n)++;
    }
    if (!*n) return cli_fail("bench", "--%s: expected a comma-separated list, got '%s'", flag, text);
    return 0;
}

/* A comma-separated list of names into a bit mask; parse maps a name to its bit (-1:
 * unknown); expected says what the names may be. */
static int parse_names(const char *flag, const char *text, int (*parse)(const char *),
                       const char *expected, unsigned *mask) {
    char buf[512], *save = NULL;
    if (strlen(text) >= sizeof buf) return cli_fail("bench", "--%s: list too long", flag);
    strcpy(buf, text);
    *mask = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int v = parse(tok);
        if (v < 0) return cli_fail("bench", "--%s: expected %s, got '%s'", flag, expected, tok);
        *mask |= 1u << v;
    }
    if (!*mask) return cli_fail("bench", "--%s: expected a comma-separated list, got '%s'", flag, text);
    return 0;
}

static int bench_getopt(bench_args *a, int argc, char **argv) {
    int c, bad = 0;
    optind = 1;
    opterr = 0;
    while (!bad && (c = getopt_long(argc, argv, ":", BENCH_OPTS, NULL)) != -1) {
        switch (c) {
        case B_HELP: fputs(BENCH_HELP, stdout); return 2;
        case B_QUICK: a->quick = 1; break;
        case B_DIMS: a->dims = optarg; break;
        case B_SEQS: a->seqs = optarg; break;
        case B_KS: a->ks = optarg; break;
        case B_VARIANTS: a->variants = optarg; break;
        case B_PHASES: a->phases = optarg; break;
        case B_CSV: a->csv = optarg; break;
        case B_JSON: a->json = 1; break;
        case B_RUNS: bad = arg_int("bench", "runs", optarg, 1, 1000, &a->runs); break;
        case B_THREADS: bad = arg_int("bench", "threads", optarg, 1, 1024, &a->threads); break;
        case B_MAXRUN: bad = arg_float("bench", "max-run", optarg, 0.0, 1, 3600.0, &a->max_run); break;
        case B_MAXGIB: bad = arg_float("bench", "max-gib", optarg, 0.0, 1, 4096.0, &a->max_gib); break;
        case B_SEED: bad = arg_u64("bench", "seed", optarg, &a->seed), a->seed_given = 1; break;
        case B_DEVICE:
            if (!strcmp(optarg, "cuda")) a->cuda = 1;
            else if (!strcmp(optarg, "cpu")) a->cuda = 0;
            else bad = cli_fail("bench", "--device: expected cpu or cuda, got '%s'", optarg);
            break;
        case B_IRANK: bad = arg_int("bench", "index-rank", optarg, 1, 32, &a->index_rank); break;
        case B_IHEADS: bad = arg_int("bench", "index-heads", optarg, 1, 8, &a->index_heads); break;
        default: return cli_usage_error("bench", c, argc, argv);
        }
    }
    if (bad) return 1;
    if (optind < argc) return cli_usage_error("bench", 0, argc, argv);
    return 0;
}

/* Flags over the (quick or full) defaults. */
static int bench_parse(bench_args *a, int argc, char **argv) {
    int r = bench_getopt(a, argc, argv);
    if (r) return r;
    ab_config *c = &a->cfg;
    *c = ab_config_default(a->quick);
    if (a->dims && parse_list("dims", a->dims, 64, 8192, c->dims, &c->ndims)) return 1;
    for (int i = 0; i < c->ndims; i++)
        if (c->dims[i] % 64)
            return cli_fail("bench", "--dims: %d is not a multiple of 64 (the head dim)", c->dims[i]);
    if (a->seqs && parse_list("seqs", a->seqs, 1, 1 << 20, c->seqs, &c->nseqs)) return 1;
    if (a->ks && parse_list("ks", a->ks, 1, 4096, c->ks, &c->nks)) return 1;
    if (a->variants && parse_names("variants", a->variants, ab_variant_parse, "naive, flash, index or block",
                                   &c->variants))
        return 1;
    if (a->phases && parse_names("phases", a->phases, bench_phase_parse, "prefill, decode or backward", &c->phases))
        return 1;
    if (a->runs) c->runs = a->runs;
    if (a->max_run > 0) c->max_run_s = a->max_run;
    if (a->max_gib > 0) c->max_bytes = a->max_gib * 1024.0 * 1024.0 * 1024.0;
    if (a->seed_given) c->seed = a->seed;
    if (!a->cuda && (a->index_rank || a->index_heads))
        return cli_fail("bench", "--index-rank and --index-heads go with --device cuda");
    if (a->cuda && a->json) return cli_fail("bench", "--json is not available with --device cuda (use --csv)");
    return 0;
}

static void print_row(const bench_row *r, void *ctx) {
    (void)ctx;
    printf("%-14s %-8s %5d %3d %6d %4d %12.3e %9.2f %8.3f %10.1f %6.2f\n", r->variant,
           bench_phase_name(r->phase), r->C, r->H, r->T, r->k, r->median_s, r->gflops,
           r->speedup_vs_flash, r->peak_bytes / 1e6, r->cpu_pressure);
    fflush(stdout);
}

static void print_cross_text(const ab_cross *x, int n) {
    printf("\ncrossover T* (smallest T faster than dense-flash at it and every larger T; -1: none)\n");
    printf("%-14s %-7s %5s %4s %10s %10s\n", "variant", "phase", "C", "k", "measured", "analytic");
    for (int i = 0; i < n; i++)
        printf("%-14s %-7s %5d %4d %10d %10d\n", ab_variant_name(x[i].v),
               bench_phase_name(x[i].phase), x[i].C, x[i].k, x[i].measured, x[i].analytic);
}

static void print_json(const bench_row *rows, int n, const ab_cross *x, int nx) {
    printf("{\"rows\": [");
    for (int i = 0; i < n; i++) {
        char obj[640];
        bench_json_object(&rows[i], obj, sizeof obj);
        printf("%s%s", i ? ", " : "", obj);
    }
    printf("], \"crossovers\": [");
    for (int i = 0; i < nx; i++)
        printf("%s{\"variant\": \"%s\", \"phase\": \"%s\", \"C\": %d, \"k\": %d, \"measured_T\": %d, "
               "\"analytic_T\": %d}", i ? ", " : "", ab_variant_name(x[i].v),
               bench_phase_name(x[i].phase), x[i].C, x[i].k, x[i].measured, x[i].analytic);
    printf("]}\n");
}

static void print_cuda_row(const bench_row *r, void *ctx) {
    (void)ctx;
    if (!r) return;
    printf("%-25s %-7s %5d %3d %6d %4d %12.3e %9.2f %8.3f %10.1f\n", r->variant, bench_phase_name(r->phase),
           r->C, r->H, r->T, r->k, r->median_s, r->gflops, r->speedup_vs_flash, r->peak_bytes / 1e6);
    fflush(stdout);
}

/* --device cuda: the grid on the GPU (a `make cuda` build; elsewhere a one-line error). */
static int bench_cuda(const bench_args *a) {
    sattn_err e;
    if (!sa_cuda_built())
        return cli_fail("bench", "--device cuda: built without CUDA: run make cuda (needs nvcc) and use build-cuda/sattn");
    bench_row *rows;
    int n;
    char dev[256] = "";
    printf("device cuda, median of %d runs; time per call; x_flash = dense-flash-cuda time / ours\n", a->cfg.runs);
    printf("%-25s %-7s %5s %3s %6s %4s %12s %9s %8s %10s\n", "variant", "phase", "C", "H", "T", "k", "median_s",
           "GFLOP/s", "x_flash", "peak_MB");
    if (sa_cuda_bench(&a->cfg, a->index_rank ? a->index_rank : 16, a->index_heads ? a->index_heads : 4, &rows, &n,
                      print_cuda_row, NULL, dev, sizeof dev, &e))
        return cli_fail("bench", "--device cuda: %s", e.msg);
    printf("device: %s\n", dev);
    int rc = 0;
    if (a->csv && bench_csv_write(a->csv, rows, n, &e)) rc = cli_fail("bench", "%s", e.msg);
    free(rows);
    return rc;
}

int cmd_bench_attn(int argc, char **argv) {
    bench_args a;
    memset(&a, 0, sizeof a);
    int r = bench_parse(&a, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    if (a.cuda) {
        if (cli_check_out("bench", "--csv", a.csv)) return 1;
        return bench_cuda(&a);
    }
    if (a.threads) omp_set_num_threads(a.threads);
    if (cli_check_out("bench", "--csv", a.csv)) return 1; /* now, not after minutes of timing */
    sattn_err e;
    if (!a.json) {
        printf("threads %d, median of %d runs; time per call; x_flash = dense-flash time / ours\n",
               omp_get_max_threads(), a.cfg.runs);
        printf("%-14s %-7s %5s %3s %6s %4s %12s %9s %8s %10s %6s\n", "variant", "phase", "C", "H", "T",
               "k", "median_s", "GFLOP/s", "x_flash", "peak_MB", "psi10");
    }
    bench_row *rows;
    int n;
    ab_run(&a.cfg, &rows, &n, a.json ? NULL : print_row, NULL);
    int cap = 2 * AB_MAX_LIST * AB_MAX_LIST * 2, nx;
    ab_cross *x = xmalloc((size_t)cap * sizeof *x);
    nx = ab_crossovers(rows, n, x, cap);
    if (a.json) print_json(rows, n, x, nx);
    else print_cross_text(x, nx);
    int rc = 0;
    if (a.csv && bench_csv_write(a.csv, rows, n, &e)) rc = cli_fail("bench", "%s", e.msg);
    free(rows);
    free(x);
    return rc;
}
