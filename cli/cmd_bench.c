/* sattn bench: measured time of one attention layer per variant, prefill and decode,
 * with the measured crossover beside the analytic one (sattn/attnbench.h, docs/bench.md). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "opts.h"
#include "sattn/attnbench.h"
#include "sattn/cuda_attn.h"
#include "sattn/cuda_bench.h"
#include "sattn/peak.h"

static const cli_cmd BENCH = {
    "bench", NULL,
    "Wall time of ONE attention layer (attention only, batch 1, H = C/64 heads of dim 64,\n"
    "random q, k, v): prefill (T queries), one decode step (KV cache of T keys) and the\n"
    "prefill's backward (d qkv from d out; the sparse heads' selection has no backward),\n"
    "for dense-naive, dense-flash, index+softmax and block+softmax at each k, and\n"
    "tblock+softmax (selection shared by a query tile; one row per C and T at --tblock-b,\n"
    "--tblock-n, its k column b*n; no decode; its FLOPs the unmasked pairs' products, as\n"
    "flash's; docs/tblock.md). One warm-up, then the median of --runs runs; CPU\n"
    "pressure (/proc/pressure/cpu some avg10, -1 if missing) is logged per row. Rows\n"
    "predicted to take more than --max-run seconds per call, or needing more than\n"
    "--max-gib GiB of buffers, are skipped.",
    "Then the measured crossover T* per (variant, phase, C, k): the smallest measured T\n"
    "from which the variant is faster than dense-flash at every larger measured T (-1:\n"
    "none), beside costmodel's analytic T* (total FLOPs; -1 for backward: no model).\n"
    "Before the rows, the FP32 peak at the same thread count (register-only FMA chains,\n"
    "median of 5 runs); pct_peak = GFLOP/s as a percentage of it."};

typedef struct {
    ab_config cfg;
    ab_config lists; /* --dims, --seqs, --ks, --variants, --phases as given (0: not given) */
    const char *csv;
    int quick, runs, threads, json, peak_only;
    int cuda, index_rank, index_heads; /* --device cuda; 0: the standard indexer */
    int tblock_b, tblock_n;            /* 0: the defaults (64, 8) */
    float max_run, max_gib;
    uint64_t seed;
} bench_args;

/* A comma-separated list of names into a bit mask (o->target, an unsigned); parse maps a
 * name to its bit (-1: unknown); expected says what the names may be. */
static int parse_names(const opt_spec *o, const char *text, int (*parse)(const char *),
                       const char *expected, sattn_err *e) {
    char buf[512], *save = NULL;
    unsigned *mask = o->target;
    if (strlen(text) >= sizeof buf) return err_set(e, "--%s: list too long", o->name);
    strcpy(buf, text);
    *mask = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int v = parse(tok);
        if (v < 0) return err_set(e, "--%s: expected %s, got '%s'", o->name, expected, tok);
        *mask |= 1u << v;
    }
    if (!*mask) return err_set(e, "--%s: expected a comma-separated list, got '%s'", o->name, text);
    return 0;
}

static int parse_variants(const opt_spec *o, const char *text, sattn_err *e) {
    return parse_names(o, text, ab_variant_parse, "naive, flash, index, block or tblock", e);
}

static int parse_phases(const opt_spec *o, const char *text, sattn_err *e) {
    return parse_names(o, text, bench_phase_parse, "prefill, decode or backward", e);
}

static const char *const DEVICES[] = {"cpu", "cuda", NULL};

static int bench_scan(bench_args *a, int argc, char **argv) {
    ab_config *l = &a->lists;
    opt_spec o[] = {
        opt_flag("quick", &a->quick,
                 "C {256,512}, T {256,1024,4096}, k {32}, prefill and decode, 3 runs (lists\n"
                 "given override it)"),
        opt_list("dims", l->dims, &l->ndims, AB_MAX_LIST, 64, 8192, "LIST", "d_model values, multiples of 64 (default 128,256,512,1024)"),
        opt_list("seqs", l->seqs, &l->nseqs, AB_MAX_LIST, 1, 1 << 20, "LIST", "sequence lengths (default 64,128,...,32768)"),
        opt_list("ks", l->ks, &l->nks, AB_MAX_LIST, 1, 4096, "LIST", "keys per query (default 8,16,32,64,128,256)"),
        opt_call("variants", &l->variants, parse_variants, "LIST", "of naive, flash, index, block, tblock, lindex (default all but lindex)"),
        opt_int("tblock-b", &a->tblock_b, 1, 4096, "B", "tblock: keys per block = queries per tile (default 64)"),
        opt_int("tblock-n", &a->tblock_n, 1, 1 << 20, "N", "tblock: blocks kept per tile, its own included (default 8)"),
        opt_call("phases", &l->phases, parse_phases, "LIST", "of prefill, decode, backward (default all)"),
        opt_int("runs", &a->runs, 1, 1000, "N", "timed runs per row (default 5; --quick 3)"),
        cli_opt_threads(&a->threads),
        opt_float("max-run", &a->max_run, 0.0, 1, 3600.0, "SEC", "skip rows predicted to take longer per call"),
        opt_float("max-gib", &a->max_gib, 0.0, 1, 4096.0, "G", "skip rows needing more GiB of buffers"),
        cli_opt_seed(&a->seed, "seed of the random inputs"),
        opt_str("csv", &a->csv, "PATH",
                "write the rows to PATH: variant,phase,C,H,T,k,median_s,gflops,\n"
                "speedup_vs_flash,peak_bytes,cpu_pressure_avg10,pct_peak (-1: not available)"),
        cli_opt_json(&a->json, "one JSON object {\"rows\": [...], \"crossovers\": [...], \"peak_gflops\": X}\n"
                               "instead of the table"),
        opt_flag("peak", &a->peak_only, "only measure and print the FP32 peak (with --json: one JSON object)"),
        opt_enum("device", &a->cuda, DEVICES, NULL,
                 "cuda: the grid on the GPU (needs a `make cuda` build, build-cuda/sattn):\n"
                 "dense-flash, index+softmax, block+softmax (prefill, decode) and\n"
                 "tblock+softmax (prefill, backward) as CUDA kernels, rows named\n"
                 "<variant>-cuda, speedups against dense-flash-cuda (docs/cuda.md);\n"
                 "default cpu"),
        opt_int("index-rank", &a->index_rank, 1, 32, "R", "--device cuda: the indexer's rank (default 16)"),
        opt_int("index-heads", &a->index_heads, 1, 8, "J", "--device cuda: the indexer's heads (default 4)"),
    };
    return cli_parse(&BENCH, o, CLI_N(o), argc, argv);
}

/* Flags over the (quick or full) grid. */
static int bench_parse(bench_args *a, int argc, char **argv) {
    int r = bench_scan(a, argc, argv);
    if (r) return r;
    ab_config *c = &a->cfg, *l = &a->lists;
    *c = ab_config_default(a->quick);
    if (l->ndims) memcpy(c->dims, l->dims, sizeof c->dims), c->ndims = l->ndims;
    for (int i = 0; i < c->ndims; i++)
        if (c->dims[i] % 64)
            return cli_fail("bench", "--dims: %d is not a multiple of 64 (the head dim)", c->dims[i]);
    if (l->nseqs) memcpy(c->seqs, l->seqs, sizeof c->seqs), c->nseqs = l->nseqs;
    if (l->nks) memcpy(c->ks, l->ks, sizeof c->ks), c->nks = l->nks;
    if (l->variants) c->variants = l->variants;
    if (l->phases) c->phases = l->phases;
    if (a->runs) c->runs = a->runs;
    if (a->tblock_b) c->tblock_b = a->tblock_b;
    if (a->tblock_n) c->tblock_n = a->tblock_n;
    c->max_run_s = a->max_run;
    c->max_bytes = a->max_gib * 1024.0 * 1024.0 * 1024.0;
    c->seed = a->seed;
    if (!a->cuda && (a->index_rank || a->index_heads))
        return cli_fail("bench", "--index-rank and --index-heads go with --device cuda");
    if (a->cuda && a->json) return cli_fail("bench", "--json is not available with --device cuda (use --csv)");
    return 0;
}

/* ctx: the measured peak (GFLOP/s, a double). */
static void print_row(const bench_row *r, void *ctx) {
    double peak = *(const double *)ctx;
    printf("%-14s %-8s %5d %3d %6d %4d %12.3e %9.2f %8.3f %10.1f %6.2f %6.1f\n", r->variant,
           bench_phase_name(r->phase), r->C, r->H, r->T, r->k, r->median_s, r->gflops,
           r->speedup_vs_flash, r->peak_bytes / 1e6, r->cpu_pressure, 100.0 * r->gflops / peak);
    fflush(stdout);
}

static void print_peak(const peak_result *p, int json) {
    if (json)
        printf("{\"peak_gflops\": %.2f, \"peak_gflops_max\": %.2f, \"threads\": %d, \"isa\": \"%s\", "
               "\"lanes\": %d, \"chains\": %d, \"runs\": %d}\n", p->gflops, p->gflops_max, p->threads, p->isa,
               p->lanes, p->chains, p->runs);
    else
        printf("FP32 peak: %.1f GFLOP/s (median of %d; best %.1f), %d threads, register-only FMA probe: %s, "
               "%d lanes x %d chains\n", p->gflops, p->runs, p->gflops_max, p->threads, p->isa, p->lanes, p->chains);
}

static void print_cross_text(const ab_cross *x, int n) {
    printf("\ncrossover T* (smallest T faster than dense-flash at it and every larger T; -1: none)\n");
    printf("%-14s %-7s %5s %4s %10s %10s\n", "variant", "phase", "C", "k", "measured", "analytic");
    for (int i = 0; i < n; i++)
        printf("%-14s %-7s %5d %4d %10d %10d\n", ab_variant_name(x[i].v),
               bench_phase_name(x[i].phase), x[i].C, x[i].k, x[i].measured, x[i].analytic);
}

static void print_json(const bench_row *rows, int n, const ab_cross *x, int nx, double peak) {
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
    printf("], \"peak_gflops\": %.2f}\n", peak);
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

int cmd_bench(int argc, char **argv) {
    bench_args a;
    memset(&a, 0, sizeof a);
    ab_config grid = ab_config_default(0); /* the defaults --help shows */
    a.max_run = (float)grid.max_run_s, a.max_gib = (float)(grid.max_bytes / (1024.0 * 1024.0 * 1024.0));
    a.seed = grid.seed;
    int r = bench_parse(&a, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    if (a.cuda) {
        if (cli_check_out("bench", "--csv", a.csv)) return 1;
        return bench_cuda(&a);
    }
    if (a.threads) omp_set_num_threads(a.threads);
    if (cli_check_out("bench", "--csv", a.csv)) return 1; /* now, not after minutes of timing */
    peak_result pk = peak_measure(5);
    if (a.peak_only) return print_peak(&pk, a.json), 0;
    sattn_err e;
    if (!a.json) {
        print_peak(&pk, 0);
        printf("threads %d, median of %d runs; time per call; x_flash = dense-flash time / ours\n",
               omp_get_max_threads(), a.cfg.runs);
        printf("%-14s %-7s %5s %3s %6s %4s %12s %9s %8s %10s %6s %6s\n", "variant", "phase", "C", "H", "T",
               "k", "median_s", "GFLOP/s", "x_flash", "peak_MB", "psi10", "%peak");
    }
    bench_row *rows;
    int n;
    ab_run(&a.cfg, &rows, &n, a.json ? NULL : print_row, &pk.gflops);
    for (int i = 0; i < n; i++) rows[i].pct_peak = 100.0 * rows[i].gflops / pk.gflops;
    int cap = 2 * AB_MAX_LIST * AB_MAX_LIST * 2, nx;
    ab_cross *x = xmalloc((size_t)cap * sizeof *x);
    nx = ab_crossovers(rows, n, x, cap);
    if (a.json) print_json(rows, n, x, nx, pk.gflops);
    else print_cross_text(x, nx);
    int rc = 0;
    if (a.csv && bench_csv_write(a.csv, rows, n, &e)) rc = cli_fail("bench", "%s", e.msg);
    free(rows);
    free(x);
    return rc;
}
