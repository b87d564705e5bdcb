/* sattn bench-train: training throughput on the standard configs (also bench-gemm's). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "opts.h"
#include "sattn/genbench.h"
#include "sattn/plan.h"
#include "sattn/trainbench.h"

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
    "llm.c's train_gpt2.c measured on the same kind of machine (2 threads).\n"
    "With --plan PLAN: one whole training step of a random RoPE model (--layers, --heads, --dim,\n"
    "--vocab, --batch) at each --seqs T, dense flash against the model with PLAN as its\n"
    "attention (sparse from step 0, as `sattn train --attn sparse:PLAN`), --runs timed steps\n"
    "each, interleaved (dense, sparse, dense, ...) after --warmup untimed ones; the medians,\n"
    "their ratio, and where the sparse step's time goes (selection, head function forward and\n"
    "backward, rest of the model).",
    NULL};

typedef struct {
    int use[BENCH_NCONFIGS], runs, per_run, threads;
    const char *json_out, *plan, *csv;
    float max_gib;
    trb_config trb;
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

/* Flags of one mode given in the other: one-line error naming the first. */
static int mode_flags(const opt_spec *o, int n, const char *const *names, const char *why) {
    for (int i = 0; names[i]; i++)
        if (opts_seen(o, n, names[i])) return cli_fail("bench-train", "--%s: %s", names[i], why);
    return 0;
}

static int bt_parse(bt_args *a, int argc, char **argv) {
    trb_config *t = &a->trb;
    opt_spec o[] = {
        opt_call("configs", a, parse_configs, "LIST",
                 "comma-separated, of B: L4 H4 C256 T256 B4 V256, C: L6 H8 C512 T512 B4\n"
                 "V256, 124M: L12 H12 C768 T64 B4 V50257 (default all three)"),
        opt_int("runs", &a->runs, 1, TRB_MAX_RUNS, "N", "timed runs (--plan: timed steps per variant); the median is reported"),
        opt_int("steps-per-run", &a->per_run, 1, 1000, "N", "training steps per timed run"),
        opt_str("plan", &a->plan, "PLAN", "a sparse plan (text or file): dense flash vs this plan, a step at each --seqs"),
        opt_int("layers", &t->L, 1, 64, "L", "--plan: layers (default 4)"),
        opt_int("heads", &t->H, 1, 64, "H", "--plan: heads (default 4)"),
        opt_int("dim", &t->C, 8, 4096, "C", "--plan: d_model, a multiple of --heads (default 256)"),
        opt_int("vocab", &t->V, 2, 65536, "V", "--plan: vocabulary (default 256, bytes)"),
        opt_int("batch", &t->B, 1, 1024, "B", "--plan: batch rows (default 1)"),
        opt_list("seqs", t->seqs, &t->n_seqs, TRB_MAX_SEQS, 1, 1 << 20, "LIST", "--plan: contexts T (default 4096,16384)"),
        opt_int("warmup", &t->warmup, 0, 100, "N", "--plan: untimed steps per variant first (default 1)"),
        opt_float("max-gib", &a->max_gib, 0.0, 1, 4096.0, "G", "--plan: skip a T whose two models need more GiB (default 16)"),
        cli_opt_seed(&t->seed, "--plan: seed of the model, heads and tokens"),
        cli_opt_threads(&a->threads),
        opt_str("csv", &a->csv, "PATH", "--plan: write the rows to PATH (phases CSV: docs/native_sparse.md)"),
        opt_str("json-out", &a->json_out, "PATH", "also write the results as one JSON object to PATH"),
    };
    int r = cli_parse(&BENCH_TRAIN, o, CLI_N(o), argc, argv), n = CLI_N(o);
    if (r) return r;
    static const char *const PLAN_ONLY[] = {"layers", "heads", "dim", "vocab", "batch", "seqs", "warmup", "max-gib",
                                            "seed", "csv", NULL};
    static const char *const CONFIG_ONLY[] = {"configs", "steps-per-run", NULL};
    if (!a->plan) return mode_flags(o, n, PLAN_ONLY, "applies with --plan PLAN only");
    if (mode_flags(o, n, CONFIG_ONLY, "applies to the standard configs, not with --plan")) return -1;
    if (t->C % t->H) return cli_fail("bench-train", "--dim %d is not a multiple of --heads %d", t->C, t->H);
    return 0;
}

static int write_json(const char *path, const char *text) {
    afile f;
    sattn_err e;
    if (afile_open(&f, path, &e) || afile_write(&f, text, strlen(text), &e) || afile_commit(&f, &e))
        return cli_fail("bench-train", "--json-out %s", e.msg);
    return 0;
}

/* ---- --plan: dense flash vs the plan, a whole step ---- */

typedef struct {
    phase_row *rows;
    int n;
    sbuf json;
} bt_plan_out;

static void plan_done(const trb_result *r, void *user) {
    bt_plan_out *o = user;
    const phase_row *d = &r->dense, *s = &r->sparse;
    printf("T %6d  dense-flash %9.1f ms  sparse %9.1f ms  speedup x%.2f  (%.2f GB)\n", r->T, d->total_s * 1e3,
           s->total_s * 1e3, d->total_s / s->total_s, r->bytes / 1e9);
    printf("          runs (ms, in order):");
    for (int k = 0; k < r->runs; k++) printf(" %.0f/%.0f", r->dense_s[k] * 1e3, r->sparse_s[k] * 1e3);
    char line[256];
    pt_text_line(s, line, sizeof line);
    printf("\n          %s\n", line);
    fflush(stdout);
    o->rows = xrealloc(o->rows, (size_t)(o->n + 2) * sizeof *o->rows);
    o->rows[o->n++] = *d, o->rows[o->n++] = *s;
    char a[512], b[512];
    pt_json_object(d, a, sizeof a), pt_json_object(s, b, sizeof b);
    sb_printf(&o->json, "%s{\"T\": %d, \"speedup\": %.4f, \"dense\": %s, \"sparse\": %s}", o->n > 2 ? ", " : "", r->T,
              d->total_s / s->total_s, a, b);
}

static void plan_note(const char *msg, void *user) {
    (void)user;
    fprintf(stderr, "note: %s\n", msg);
}

static int write_json(const char *path, const char *text);

static int run_plan(bt_args *a) {
    trb_config *t = &a->trb;
    head_spec *specs = xmalloc((size_t)t->L * t->H * sizeof *specs);
    sattn_err e;
    if (plan_load(a->plan, t->L, t->H, specs, &e)) return free(specs), cli_fail("bench-train", "--plan: %s", e.msg);
    t->runs = a->runs, t->max_bytes = a->max_gib * 1024.0 * 1024.0 * 1024.0;
    char label[BENCH_NAME_LEN - 8];
    gb_label(a->plan, label, sizeof label);
    printf("model L%d H%d C%d V%d RoPE, batch %d, threads %d; per T %d warm-up + %d timed steps per variant, "
           "interleaved; medians\n", t->L, t->H, t->C, t->V, t->B, omp_get_max_threads(), t->warmup, t->runs);
    bt_plan_out o = {0};
    sb_printf(&o.json, "{\"threads\": %d, \"plan\": \"%s\", \"L\": %d, \"H\": %d, \"C\": %d, \"B\": %d, \"runs\": %d, "
              "\"rows\": [", omp_get_max_threads(), label, t->L, t->H, t->C, t->B, t->runs);
    trb_run(t, specs, label, plan_done, plan_note, &o);
    sb_printf(&o.json, "]}\n");
    int rc = 0;
    if (a->csv && pt_csv_write(a->csv, o.rows, o.n, &e)) rc = cli_fail("bench-train", "--csv: %s", e.msg);
    if (!rc && a->json_out) rc = write_json(a->json_out, o.json.s ? o.json.s : "");
    free(o.rows), free(o.json.s), free(specs);
    return rc;
}

int cmd_bench_train(int argc, char **argv) {
    bt_args a = {.use = {1, 1, 1}, .runs = 5, .per_run = 2, .max_gib = 16.0f,
                 .trb = {.L = 4, .H = 4, .C = 256, .V = 256, .B = 1, .seqs = {4096, 16384}, .n_seqs = 2, .warmup = 1,
                         .seed = 1}};
    int r = bt_parse(&a, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    if (a.threads) omp_set_num_threads(a.threads);
    if (a.plan) {
        if (cli_check_out("bench-train", "--csv", a.csv) || cli_check_out("bench-train", "--json-out", a.json_out)) return 1;
        return run_plan(&a);
    }
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
