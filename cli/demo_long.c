/* sattn demo --preset long (docs/long.md): a byte-level long-context model end to end.
 *
 *   1. stages (long_stages): a fresh RoPE model (flash attention) trained at T = 128 with a
 *      passkey mix, where retrieval (a copy circuit) is learned cheaply; then --init-from
 *      at T/4 and at T (context extension, train_pos.c), trained on with the mix;
 *   2. the validation loss of each stage, the passkey grid (T/4, T/2, T x 10 depths,
 *      teacher-forced exact match = greedy exact match, taskeval.h) and the generation
 *      speed with the KV cache against the recompute (genbench.h) at T/4, T/2 and T.
 * Everything goes through the same code as `sattn train`, `sattn task` and `sattn
 * bench-generate`; the numbers are printed and written to DIR/metrics.json. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "sattn/genbench.h"
#include "sattn/heads.h"
#include "sattn/hybrid.h"
#include "sattn/plan.h"
#include "sattn/taskeval.h"

#define LONG_DEPTHS 10
#define LONG_GEN_STEPS 8
/* The passkey grid's lengths and the generation contexts: T/4, T/2 and T. */
#define NLEN 3
#define NGEN NLEN
static void long_lengths(int T, int out[NLEN]) {
    out[0] = T / 4, out[1] = T / 2, out[2] = T;
}
/* The training stages (docs/long.md has the runs that chose them): retrieval is learned at
 * T = 128, where a step is cheap and a sample is mostly needle and cue (the copy circuit
 * forms after 450-750 steps of batch 32), with a fifth of the rows KJV text. Then the
 * context grows to T/8, T/2 and T (about 4096 tokens per step: batch 4096/T'), each stage
 * --init-from the last with plain RoPE extrapolation (no base scaling: the model learns the
 * new distances instead, and keeps the high frequencies its previous-token heads use), on
 * passkey samples only: with KJV rows in the batch the 5 answer digits of a row are drowned
 * by the corpus loss and the circuit is lost at T = 512 (measured: 17 % with passkey:0.8,
 * 100 % with passkey:1.0). */
#define NSTAGE 4
typedef struct {
    int seq, batch, steps, warmup;
    float lr, min_lr; /* the peak and the cosine's end */
    const char *mix;
} long_stage;

static void long_stages(const demo_long_args *a, long_stage st[NSTAGE]) {
    int e = a->extend_steps, s1 = a->seq / 8 > 128 ? a->seq / 8 : 128;
    st[0] = (long_stage){128, 32, a->steps, 100, 1e-3f, 1e-4f, "passkey:0.8"};
    st[1] = (long_stage){s1, 4096 / s1, e + e / 2, 0, 1e-3f, 1e-4f, "passkey:1"};
    st[2] = (long_stage){a->seq / 2, 4096 / (a->seq / 2), e, 0, 1e-3f, 1e-4f, "passkey:1"};
    st[3] = (long_stage){a->seq, 4096 / a->seq, e, 0, 5e-4f, 5e-5f, "passkey:1"};
    for (int i = 0; i < NSTAGE; i++) {
        if (st[i].batch < 1) st[i].batch = 1;
        if (i) st[i].warmup = st[i].steps / 10; /* stage 1: 100, as in the measured runs */
        if (st[i].warmup > st[i].steps) st[i].warmup = st[i].steps;
        if (st[i].warmup < 1) st[i].warmup = 1;
    }
}

/* The train args of one stage: L2 H4 C128, RoPE, flash (or natively sparse with --plan, the
 * heads written to heads); from init's weights after the first. */
static int stage_args(const demo_long_args *a, const long_stage *s, train_args *t, const char *out,
                      const char *heads, const char *log, const char *init) {
    *t = train_args_default();
    t->data = a->data, t->out = out, t->init_from = init, t->log_csv = log;
    if (a->plan) t->sparse_plan = a->plan, t->heads_out = heads;
    t->data_fmt = a->data_fmt;
    t->seed = a->seed, t->threads = a->threads;
    t->cfg.layers = 2;
    t->cfg.attn = GPT_ATTN_FLASH;
    t->cfg.pos = GPT_POS_ROPE;
    t->rope_extend = TRAIN_EXTEND_NONE;
    t->tc.seq = s->seq, t->tc.batch = s->batch, t->tc.steps = s->steps, t->tc.lr = s->lr;
    t->tc.min_lr = s->min_lr, t->tc.warmup = s->warmup;
    t->tc.eval_every = 0;
    t->no_summary = 1;
    sattn_err e;
    if (task_mix_parse(s->mix, &t->mix, &e)) return cli_fail("demo", "%s", e.msg);
    return 0;
}

static task_grid passkey_grid(const int lens[NLEN], int samples, uint64_t seed) {
    return (task_grid){.kind = TASK_PASSKEY, .lengths = lens, .n_lengths = NLEN, .n_depths = LONG_DEPTHS,
                       .samples = samples, .batch = 4, .seed = seed};
}

/* The passkey grid on m at lengths lens x LONG_DEPTHS; cells into c (NLEN * depths). */
static double long_passkey(gpt_model *m, const int lens[NLEN], int samples, uint64_t seed, task_cell *c) {
    task_grid g = passkey_grid(lens, samples, seed);
    taskeval_grid(m, &g, c);
    long right = 0, all = 0;
    for (int i = 0; i < NLEN * LONG_DEPTHS; i++) right += c[i].correct, all += c[i].answers;
    return all ? (double)right / (double)all : 0;
}

static void print_grid(const int lens[NLEN], const task_cell *c, const char *attn) {
    printf("passkey accuracy (keys right / samples), RoPE + %s, greedy exact match\n%8s", attn, "T \\ d");
    for (int d = 0; d < LONG_DEPTHS; d++) printf(" %5.2f", c[d].depth);
    printf("   mean\n");
    for (int l = 0; l < NLEN; l++) {
        long r = 0, n = 0;
        printf("%8d", lens[l]);
        for (int d = 0; d < LONG_DEPTHS; d++) {
            const task_cell *x = &c[l * LONG_DEPTHS + d];
            printf(" %5.2f", x->accuracy);
            r += x->correct, n += x->answers;
        }
        printf("  %5.3f\n", n ? (double)r / (double)n : 0);
    }
}

static void gen_row(const bench_row *r, void *user) {
    (void)user;
    fprintf(stderr, "  %-20s %-8s T=%-5d %.3f ms\n", r->variant, r->phase == BENCH_PREFILL ? "prefill" : "decode",
            r->T, r->median_s * 1e3);
}

/* Prefill s and decode s/token of variant at each context (-1 where none was measured). */
static void gen_times(const bench_row *rows, int n, const char *variant, const int lens[NLEN], double dec[NGEN],
                      double pre[NGEN]) {
    for (int i = 0; i < NGEN; i++) {
        dec[i] = gb_decode_at(rows, n, variant, lens[i]);
        pre[i] = -1;
        for (int j = 0; j < n; j++)
            if (rows[j].T == lens[i] && rows[j].phase == BENCH_PREFILL && !strcmp(rows[j].variant, variant))
                pre[i] = rows[j].median_s;
    }
}

/* Decode ms/token with the cache and with the recompute at contexts lens, dense; with pl (a
 * natively sparse model's heads) also the sparse heads' prefill and decode (sdec, spre). */
static void long_generate(gpt_model *m, const gb_plan *pl, const int lens[NLEN], uint64_t seed, double dec[NGEN],
                          double rec[NGEN], double pre[NGEN], double sdec[NGEN], double spre[NGEN]) {
    gb_config c = {.n_contexts = NGEN, .runs = 3, .steps = LONG_GEN_STEPS, .recompute_max = lens[NGEN - 1],
                   .prefill_repeat_s = 0.5, .max_bytes = 8e9, .seed = seed};
    for (int i = 0; i < NGEN; i++) c.contexts[i] = lens[i];
    sattn_err e;
    if (gpt_set_context(m, lens[NGEN - 1] + LONG_GEN_STEPS, &e)) die_at(__FILE__, __LINE__, "%s", e.msg);
    gb_sink sink = {gen_row, NULL, NULL};
    bench_row *rows;
    int n;
    gb_run(m, pl, pl ? 1 : 0, &c, &sink, &rows, &n);
    gen_times(rows, n, "gen-dense", lens, dec, pre);
    for (int i = 0; i < NGEN; i++) rec[i] = gb_decode_at(rows, n, "gen-recompute-flash", lens[i]);
    char v[BENCH_NAME_LEN];
    snprintf(v, sizeof v, "gen-%s", pl ? pl->label : "");
    gen_times(rows, n, v, lens, sdec, spre);
    free(rows);
}

typedef struct {
    int lens[NLEN]; /* the grid's lengths and the generation contexts */
    long_stage st[NSTAGE];
    train_result tr[NSTAGE];
    task_cell cells[NLEN * LONG_DEPTHS];
    double passkey, dec[NGEN], rec[NGEN], pre[NGEN], wall_s;
    double sdec[NGEN], spre[NGEN]; /* --plan: the sparse heads' decode and prefill (-1: none) */
} long_result;

/* Trains the stages; stage i writes DIR/stage<i>.ckpt, its loss curve .csv (and .heads with
 * --plan), the last DIR/model.ckpt (model.csv, model.heads). */
static int long_train(const demo_long_args *a, const char *model, long_result *r) {
    char prev[4096] = "", out[4096], heads[4096], log[4096];
    long_stages(a, r->st);
    for (int i = 0; i < NSTAGE; i++) {
        const long_stage *s = &r->st[i];
        if (i + 1 < NSTAGE) snprintf(out, sizeof out, "%s/stage%d.ckpt", a->out_dir, i + 1);
        else snprintf(out, sizeof out, "%s", model);
        snprintf(heads, sizeof heads, "%.*s.heads", (int)strlen(out) - 5, out); /* x.ckpt -> x.heads */
        snprintf(log, sizeof log, "%.*s.csv", (int)strlen(out) - 5, out);     /* the loss curve */
        fprintf(stderr, "demo --preset long: stage %d/%d: T=%d, batch %d, %d steps, mix %s%s\n", i + 1, NSTAGE,
                s->seq, s->batch, s->steps, s->mix, i ? " (context extended, RoPE extrapolated)" : "");
        train_args t;
        if (stage_args(a, s, &t, out, heads, log, i ? prev : NULL) || train_execute_result(&t, "demo", &r->tr[i]))
            return 1;
        snprintf(prev, sizeof prev, "%s", out);
    }
    return 0;
}

static int long_metrics(const demo_long_args *a, const char *path, const long_result *r, const gpt_config *c) {
    sbuf j = {0};
    sb_printf(&j, "{\"preset\": \"long\", \"model\": {\"layers\": %d, \"heads\": %d, \"channels\": %d, "
              "\"seq\": %d, \"pos\": \"rope\", \"rope_base\": %g, \"rope_scale\": %g, \"attn\": ",
              c->layers, c->heads, c->channels, a->seq, (double)c->rope_base, (double)c->rope_scale);
    sb_json_str(&j, a->plan ? "sparse" : "flash");
    if (a->plan) sb_printf(&j, ", \"plan\": "), sb_json_str(&j, a->plan);
    sb_printf(&j, "}");
    sb_printf(&j, ", \"stages\": [");
    for (int i = 0; i < NSTAGE; i++)
        sb_printf(&j, "%s{\"seq\": %d, \"batch\": %d, \"steps\": %d, \"mix\": \"%s\", \"val_loss\": %.6f, "
                  "\"tokens_per_s\": %.1f, \"wall_s\": %.1f}", i ? ", " : "", r->st[i].seq, r->st[i].batch,
                  r->st[i].steps, r->st[i].mix, r->tr[i].val_loss, r->tr[i].tokens_per_s, r->tr[i].wall_s);
    sb_printf(&j, "]");
    sb_printf(&j, ", \"passkey\": {\"accuracy\": %.4f, \"cells\": [", r->passkey);
    for (int i = 0; i < NLEN * LONG_DEPTHS; i++)
        sb_printf(&j, "%s{\"length\": %d, \"depth\": %.4f, \"samples\": %d, \"correct\": %ld}", i ? ", " : "",
                  r->cells[i].length, r->cells[i].depth, r->cells[i].samples, r->cells[i].correct);
    sb_printf(&j, "]}, \"generate\": [");
    for (int i = 0; i < NGEN; i++)
        sb_printf(&j, "%s{\"context\": %d, \"prefill_s\": %.6g, \"decode_ms\": %.6g, \"recompute_ms\": %.6g, "
                  "\"sparse_prefill_s\": %.6g, \"sparse_decode_ms\": %.6g}", i ? ", " : "", r->lens[i], r->pre[i],
                  r->dec[i] * 1e3, r->rec[i] * 1e3, r->spre[i], r->sdec[i] > 0 ? r->sdec[i] * 1e3 : -1);
    sb_printf(&j, "], \"wall_s\": %.1f}\n", r->wall_s);
    afile f;
    sattn_err e;
    int rc = afile_open(&f, path, &e) || afile_write(&f, j.s, j.n, &e) || afile_commit(&f, &e);
    if (a->json) fputs(j.s, stdout);
    sb_free(&j);
    return rc ? cli_fail("demo", "%s", e.msg) : 0;
}

static void long_print(const demo_long_args *a, const long_result *r, const char *model) {
    printf("demo --preset long: %s (L2 H4 C128, RoPE, %s%s; %.1f min in all)\n", model,
           a->plan ? "natively sparse: " : "flash", a->plan ? a->plan : "", r->wall_s / 60);
    for (int i = 0; i < NSTAGE; i++)
        printf("  stage %d: T=%d, %d steps, mix %s: validation loss %.4f at T=%d (%.0f tok/s, %.0f s)\n", i + 1,
               r->st[i].seq, r->st[i].steps, r->st[i].mix, r->tr[i].val_loss, r->st[i].seq,
               r->tr[i].tokens_per_s, r->tr[i].wall_s);
    print_grid(r->lens, r->cells, a->plan ? "its sparse heads" : "flash");
    printf("generation (dense KV cache vs one flash forward per token):\n");
    for (int i = 0; i < NGEN; i++)
        printf("  context %5d: prefill %.3f s, decode %.2f ms/token, recompute %.1f ms/token (%.0fx)\n",
               r->lens[i], r->pre[i], r->dec[i] * 1e3, r->rec[i] * 1e3,
               r->dec[i] > 0 && r->rec[i] > 0 ? r->rec[i] / r->dec[i] : 0);
    for (int i = 0; i < NGEN && a->plan; i++)
        if (r->sdec[i] > 0)
            printf("  context %5d, sparse heads: prefill %.3f s (%.1fx dense), decode %.2f ms/token (%.1fx)\n",
                   r->lens[i], r->spre[i], r->spre[i] > 0 ? r->pre[i] / r->spre[i] : 0, r->sdec[i] * 1e3,
                   r->dec[i] / r->sdec[i]);
}

/* The natively sparse model (--plan): the passkey grid with its heads (the hybrid hook), and
 * generation dense vs with its heads where they can decode (hybrid_decode_check). */
static int long_sparse_eval(const demo_long_args *a, gpt_model *m, long_result *r) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.heads", a->out_dir);
    sparse_heads sh;
    sattn_err e;
    if (heads_load(path, &sh, &m->cfg, &e)) return cli_fail("demo", "%s", e.msg);
    hybrid hy;
    hybrid_init(&hy, &sh, m->cfg.channels, m->cfg.heads);
    m->cfg.attn = hybrid_all_sparse(&sh) ? GPT_ATTN_HOOK : GPT_ATTN_NAIVE;
    hybrid_attach(&hy, m);
    r->passkey = long_passkey(m, r->lens, a->task_samples, a->seed, r->cells);
    hybrid_detach(m);
    hybrid_free(&hy);
    m->cfg.attn = GPT_ATTN_FLASH;
    gb_plan pl = {.sh = &sh};
    gb_label(a->plan, pl.label, sizeof pl.label);
    int dec = hybrid_decode_check(&sh, &e) == 0;
    if (!dec) fprintf(stderr, "demo --preset long: generation with the sparse heads skipped: %s\n", e.msg);
    long_generate(m, dec ? &pl : NULL, r->lens, a->seed, r->dec, r->rec, r->pre, r->sdec, r->spre);
    sparse_heads_free(&sh);
    return 0;
}

int demo_long(const demo_long_args *a) {
    double t0 = time_now();
    char model[4096], metrics[4096];
    snprintf(model, sizeof model, "%s/model.ckpt", a->out_dir);
    snprintf(metrics, sizeof metrics, "%s/metrics.json", a->out_dir);
    sattn_err e;
    head_spec specs[2 * 4]; /* the preset's L2 H4: a bad plan is one line, before anything is made */
    if (a->plan && plan_load(a->plan, 2, 4, specs, &e)) return cli_fail("demo", "--plan: %s", e.msg);
    if (demo_make_dirs(a->out_dir)) return 1;
    long_result *r = xcalloc(1, sizeof *r);
    long_lengths(a->seq, r->lens);
    task_grid g = passkey_grid(r->lens, a->task_samples, a->seed);
    if (taskeval_check(&g, a->seq, &e)) return free(r), cli_fail("demo", "--seq %d: %s", a->seq, e.msg);
    if (long_train(a, model, r)) return free(r), 1;
    gpt_model m;
    if (cli_load_model("demo", model, &m)) return free(r), 1;
    m.cfg.attn = GPT_ATTN_FLASH;
    fprintf(stderr, "demo --preset long: passkey grid (%d samples per cell) and generation speed\n",
            a->task_samples);
    if (a->plan) {
        if (long_sparse_eval(a, &m, r)) return gpt_free(&m), free(r), 1;
    } else {
        r->passkey = long_passkey(&m, r->lens, a->task_samples, a->seed, r->cells);
        long_generate(&m, NULL, r->lens, a->seed, r->dec, r->rec, r->pre, r->sdec, r->spre);
    }
    r->wall_s = time_now() - t0;
    int rc = long_metrics(a, metrics, r, &m.cfg);
    if (!rc && !a->json) long_print(a, r, model);
    gpt_free(&m);
    free(r);
    return rc;
}
