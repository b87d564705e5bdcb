/* sattn bench-train: training throughput on the standard configs (also bench-gemm's). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "opts.h"

const bench_cfg BENCH_CONFIGS[BENCH_NCONFIGS] = {{"B", 4, 4, 256, 256, 4, 256, 1782},
                                                 {"C", 6, 8, 512, 512, 4, 256, 286},
                                                 {"124M", 12, 12, 768, 64, 4, 50257, 82}};

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
    gpt_config c = {b->T, b->V, gpt_padded_vocab(b->V), b->L, b->H, b->C, GPT_ATTN_NAIVE, GPT_POS_LEARNED, 0, 0};
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

static const cli_cmd BENCH_TRAIN = {
    "bench-train", NULL,
    "Training throughput (forward+backward+AdamW) on random tokens: median tokens/s of N runs\n"
    "after a warm-up (>= 3 steps and >= 5 s), achieved GFLOP/s (3x forward FLOPs), and the ratio to\n"
    "llm.c's train_gpt2.c measured on the same kind of machine (2 threads).",
    NULL};

typedef struct {
    int use[BENCH_NCONFIGS], runs, per_run, threads;
    const char *json_out;
} bt_args;

/* A comma-separated list of config names; an empty list or an empty item ('', ',', 'B,,C')
 * is an error, not a run that measures nothing. */
static int parse_configs(const opt_spec *o, const char *s, sattn_err *e) {
    bt_args *a = o->target;
    memset(a->use, 0, sizeof a->use);
    for (const char *p = s;; p++) {
        size_t len = strcspn(p, ",");
        int found = 0;
        for (int i = 0; i < BENCH_NCONFIGS; i++)
            if (len == strlen(BENCH_CONFIGS[i].name) && !strncmp(p, BENCH_CONFIGS[i].name, len)) a->use[i] = found = 1;
        if (!found && len == 0)
            return err_set(e, "--configs: expected a comma-separated list of B, C, 124M, got '%s'", s);
        if (!found) return err_set(e, "--configs: unknown config '%.*s' (expected B, C, 124M)", (int)len, p);
        p += len;
        if (!*p) return 0;
    }
}

static int bt_parse(bt_args *a, int argc, char **argv) {
    opt_spec o[] = {
        opt_call("configs", a, parse_configs, "LIST",
                 "comma-separated, of B: L4 H4 C256 T256 B4 V256, C: L6 H8 C512 T512 B4\n"
                 "V256, 124M: L12 H12 C768 T64 B4 V50257 (default all three)"),
        opt_int("runs", &a->runs, 1, 64, "N", "timed runs; the median is reported"),
        opt_int("steps-per-run", &a->per_run, 1, 1000, "N", "training steps per timed run"),
        cli_opt_threads(&a->threads),
        opt_str("json-out", &a->json_out, "PATH", "also write the results as one JSON object to PATH"),
    };
    return cli_parse(&BENCH_TRAIN, o, CLI_N(o), argc, argv);
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
    for (int i = 0; i < BENCH_NCONFIGS; i++) {
        if (!a.use[i]) continue;
        const bench_cfg *b = &BENCH_CONFIGS[i];
        double runs[64], tps = bench_config(b, a.runs, a.per_run, runs);
        gpt_config c = {b->T, b->V, gpt_padded_vocab(b->V), b->L, b->H, b->C, GPT_ATTN_NAIVE, GPT_POS_LEARNED, 0, 0};
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
