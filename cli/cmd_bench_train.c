/* sattn bench-train and bench-gemm: throughput on standard shapes. */
#include <cblas.h>
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"

typedef struct {
    const char *name;
    int L, H, C, T, B, V;
    double llmc_tok_s; /* llm.c train_gpt2.c on this kind of machine, 2 threads, quiet */
} bench_cfg;

static const bench_cfg CONFIGS[] = {{"B", 4, 4, 256, 256, 4, 256, 1782},
                                    {"C", 6, 8, 512, 512, 4, 256, 286},
                                    {"124M", 12, 12, 768, 64, 4, 50257, 82}};
enum { NCONFIGS = sizeof CONFIGS / sizeof CONFIGS[0] };

/* One full training step (forward, backward, clip, AdamW) on random tokens. */
static void bench_step(gpt_model *m, const int *in, const int *tg, int B, int T, int t) {
    adamw_config opt = {0.9f, 0.99f, 1e-8f, 0.1f};
    gpt_forward(m, in, tg, B, T);
    gpt_zero_grad(m);
    gpt_backward(m);
    gpt_update(m, 1e-4f, &opt, t, gpt_clip_scale(gpt_grad_norm(m), 1.0f));
}

/* Median tokens/s over `runs` timed runs of `per_run` steps, after a warm-up of at
 * least 3 steps and 5 seconds: on this VM the first steps fault in fresh memory
 * and run up to 2x slower, which is not the steady state a training run sees. */
static double bench_config(const bench_cfg *b, int runs, int per_run, double *out_runs) {
    gpt_config c = {b->T, b->V, gpt_padded_vocab(b->V), b->L, b->H, b->C};
    gpt_model m;
    gpt_create(&m, &c);
    rng_t rng;
    rng_seed(&rng, 42);
    gpt_init_random(&m, &rng);
    int n = b->B * b->T, *in = xmalloc((size_t)(n + 1) * sizeof(int)), t = 1;
    for (int i = 0; i <= n; i++) in[i] = (int)rng_below(&rng, (uint32_t)b->V);
    double w0 = time_now();
    while (t <= 3 || (time_now() - w0 < 5.0 && t <= 50)) bench_step(&m, in, in + 1, b->B, b->T, t++);
    for (int r = 0; r < runs; r++) {
        double t0 = time_now();
        for (int s = 0; s < per_run; s++) bench_step(&m, in, in + 1, b->B, b->T, t++);
        out_runs[r] = (double)n * per_run / (time_now() - t0);
    }
    double tmp[64];
    memcpy(tmp, out_runs, (size_t)runs * sizeof(double));
    free(in);
    gpt_free(&m);
    return median_sort(tmp, runs);
}

static const char BT_HELP[] =
    "usage: sattn bench-train [--configs B,C,124M] [--runs N] [--steps-per-run N] [--threads N] [--json-out PATH]\n"
    "Training throughput (forward+backward+AdamW) on random tokens: median tokens/s of N runs\n"
    "(default 5) after a warm-up (>= 3 steps and >= 5 s), achieved GFLOP/s (3x forward FLOPs), and the ratio to\n"
    "llm.c's train_gpt2.c measured on the same kind of machine (2 threads).\n"
    "  B: L4 H4 C256 T256 B4 V256   C: L6 H8 C512 T512 B4 V256   124M: L12 H12 C768 T64 B4 V50257\n";

enum { BT_CONFIGS = 256, BT_RUNS, BT_PER, BT_THREADS, BT_JSON, BT_HELPOPT };
static const struct option BT_OPTS[] = {
    {"configs", 1, 0, BT_CONFIGS}, {"runs", 1, 0, BT_RUNS},     {"steps-per-run", 1, 0, BT_PER},
    {"threads", 1, 0, BT_THREADS}, {"json-out", 1, 0, BT_JSON}, {"help", 0, 0, BT_HELPOPT},
    {0, 0, 0, 0}};

typedef struct {
    int use[NCONFIGS], runs, per_run, threads;
    const char *json_out;
} bt_args;

/* A comma-separated list of config names; an empty list or an empty item ('', ',', 'B,,C')
 * is an error, not a run that measures nothing. */
static int parse_configs(bt_args *a, const char *s) {
    memset(a->use, 0, sizeof a->use);
    for (const char *p = s;; p++) {
        size_t len = strcspn(p, ",");
        int found = 0;
        for (int i = 0; i < NCONFIGS; i++)
            if (len == strlen(CONFIGS[i].name) && !strncmp(p, CONFIGS[i].name, len)) a->use[i] = found = 1;
        if (!found && len == 0)
            return cli_fail("bench-train", "--configs: expected a comma-separated list of B, C, 124M, got '%s'", s);
        if (!found)
            return cli_fail("bench-train", "--configs: unknown config '%.*s' (expected B, C, 124M)", (int)len, p);
        p += len;
        if (!*p) return 0;
    }
}

static int bt_parse(bt_args *a, int argc, char **argv) {
    int c, bad = 0;
    optind = 1;
    opterr = 0;
    while (!bad && (c = getopt_long(argc, argv, ":", BT_OPTS, NULL)) != -1) {
        switch (c) {
        case BT_HELPOPT: fputs(BT_HELP, stdout); return 2;
        case BT_CONFIGS: bad = parse_configs(a, optarg); break;
        case BT_RUNS: bad = arg_int("bench-train", "runs", optarg, 1, 64, &a->runs); break;
        case BT_PER: bad = arg_int("bench-train", "steps-per-run", optarg, 1, 1000, &a->per_run); break;
        case BT_THREADS: bad = arg_int("bench-train", "threads", optarg, 1, 1024, &a->threads); break;
        case BT_JSON: a->json_out = optarg; break;
        default: return cli_usage_error("bench-train", c, argc, argv);
        }
    }
    if (bad) return 1;
    if (optind < argc) return cli_usage_error("bench-train", 0, argc, argv);
    return 0;
}

static int write_json(const char *path, const char *text) {
    afile f;
    sattn_err e;
    if (afile_open(&f, path, &e) || afile_write(&f, text, strlen(text), &e) || afile_commit(&f, &e))
        return cli_fail("bench-train", "--json-out %s", e.msg);
    return 0;
}

int cmd_bench_train(int argc, char **argv) {
    bt_args a = {.use = {1, 1, 1}, .runs = 5, .per_run = 2};
    int r = bt_parse(&a, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    if (a.threads) omp_set_num_threads(a.threads);
    char json[8192];
    size_t jl = (size_t)snprintf(json, sizeof json, "{\"threads\": %d, \"runs\": %d, \"configs\": [",
                                 omp_get_max_threads(), a.runs);
    const char *wp = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
    printf("threads %d, median of %d runs x %d steps, OpenMP wait policy %s%s%s\n",
           omp_get_max_threads(), a.runs, a.per_run, wp ? wp : "(runtime default)",
           spin ? ", GOMP_SPINCOUNT " : "", spin ? spin : "");
    printf("%-5s %10s %9s %12s %8s   runs (tok/s)\n", "cfg", "tok/s", "GFLOP/s", "llm.c tok/s", "ratio");
    for (int i = 0; i < NCONFIGS; i++) {
        if (!a.use[i]) continue;
        const bench_cfg *b = &CONFIGS[i];
        double runs[64], tps = bench_config(b, a.runs, a.per_run, runs);
        gpt_config c = {b->T, b->V, gpt_padded_vocab(b->V), b->L, b->H, b->C};
        double gf = 3.0 * gpt_flops_per_token(&c, b->T) * tps / 1e9;
        printf("%-5s %10.0f %9.1f %12.0f %7.2fx  ", b->name, tps, gf, b->llmc_tok_s, tps / b->llmc_tok_s);
        for (int k = 0; k < a.runs; k++) printf(" %.0f", runs[k]);
        printf("\n");
        fflush(stdout);
        jl += (size_t)snprintf(json + jl, sizeof json - jl,
                               "%s{\"config\": \"%s\", \"tokens_per_s\": %.1f, \"gflops\": %.2f, "
                               "\"llmc_tokens_per_s\": %.0f, \"ratio\": %.3f}",
                               jl > 40 && json[jl - 1] == '}' ? ", " : "", b->name, tps, gf,
                               b->llmc_tok_s, tps / b->llmc_tok_s);
    }
    snprintf(json + jl, sizeof json - jl, "]}\n");
    return a.json_out ? write_json(a.json_out, json) : 0;
}

/* ---- bench-gemm ---- */

/* out(M,N) = A(M,K) W(N,K)^T as in matmul_forward: the GFLOP/s of each library. */
static double time_gemm(int lib, int M, int N, int K, const float *A, const float *W, float *out,
                        int runs) {
    double t[64];
    for (int r = 0; r < runs + 1; r++) {
        double t0 = time_now();
        if (lib == 0) nn_sgemm(0, 1, M, N, K, 1.0f, A, K, W, K, 0.0f, out, N);
        else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, W, K, 0.0f, out, N);
        if (r > 0) t[r - 1] = time_now() - t0; /* first call warms up */
    }
    return 2.0 * M * N * K / median_sort(t, runs) / 1e9;
}

int cmd_bench_gemm(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--help")) {
        puts("usage: sattn bench-gemm\nGFLOP/s of oneDNN and OpenBLAS sgemm (median of 7) on the\n"
             "forward matrix products of the bench-train configs (M = B*T rows).");
        return 0;
    }
    if (argc > 1) return cli_fail("bench-gemm", "unexpected argument '%s'", argv[1]);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("threads %d, OPENBLAS_CORETYPE=%s\n", omp_get_max_threads(), ct ? ct : "(unset)");
    printf("%-5s %-8s %6s %6s %6s %10s %10s\n", "cfg", "gemm", "M", "N", "K", "oneDNN", "OpenBLAS");
    for (int i = 0; i < NCONFIGS; i++) {
        const bench_cfg *b = &CONFIGS[i];
        int M = b->B * b->T, C = b->C, Vp = gpt_padded_vocab(b->V);
        struct { const char *name; int N, K; } g[] = {
            {"qkv", 3 * C, C}, {"attproj", C, C}, {"fc", 4 * C, C}, {"fcproj", C, 4 * C}, {"head", Vp, C}};
        for (size_t j = 0; j < sizeof g / sizeof g[0]; j++) {
            float *A = xmalloc((size_t)M * g[j].K * 4), *W = xmalloc((size_t)g[j].N * g[j].K * 4);
            float *O = xmalloc((size_t)M * g[j].N * 4);
            for (size_t k = 0; k < (size_t)M * g[j].K; k++) A[k] = (float)(k % 7) * 0.1f;
            for (size_t k = 0; k < (size_t)g[j].N * g[j].K; k++) W[k] = (float)(k % 5) * 0.1f;
            double d = time_gemm(0, M, g[j].N, g[j].K, A, W, O, 7);
            double o = time_gemm(1, M, g[j].N, g[j].K, A, W, O, 7);
            printf("%-5s %-8s %6d %6d %6d %10.1f %10.1f\n", b->name, g[j].name, M, g[j].N, g[j].K, d, o);
            free(A);
            free(W);
            free(O);
        }
    }
    return 0;
}
