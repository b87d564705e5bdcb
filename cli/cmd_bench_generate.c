/* sattn bench-generate: prefill and decode time per token with the KV cache, dense and with
 * sparse heads, against the recompute (sattn/genbench.h, docs/generate.md). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "opts.h"
#include "sattn/genbench.h"
#include "sattn/heads.h"
#include "sattn/hybrid.h"
#include "sattn/plan.h"

static const cli_cmd BENCH_GEN = {
    "bench-generate", NULL,
    "Whole-model generation speed at each context T: the prefill of T tokens and one decode\n"
    "step (median over --runs x --steps steps at contexts T+1 .. T+steps) with the KV cache,\n"
    "dense (gen-dense) and with each --plan / --heads-file swapped in (gen-LABEL: sparse at\n"
    "every length), and the recompute baseline (one full forward of T tokens per token, what\n"
    "`sattn sample` did before the cache; naive and flash) at T <= --recompute-max. The model\n"
    "is --model, or a random RoPE model of shape --layers, --heads, --dim (max_seq = the largest\n"
    "context + --steps), so no training is needed.",
    "Then per variant the least-squares line decode time = a + b T, the recompute's time over\n"
    "the cache's at each T where both ran, and where the median prefill and decode step spent\n"
    "their time (sparse selection, head function, rest of the model; --phases-csv). A plan's\n"
    "prefill is the hybrid's forward: the hook alone when every head is sparse (tile=1 plans\n"
    "run whole layers through tblock, memory linear in T), else naive attention (the T x T\n"
    "softmax). A row needing more than --max-gib GiB (the estimate) is skipped with a note; a\n"
    "per-head plan's naive prefill may be skipped where its decode still runs on a dense flash\n"
    "prefill's cache."};

typedef struct {
    const char *model, *csv, *phases_csv;
    const char *plans[GB_MAX_PLANS], *files[GB_MAX_PLANS];
    int n_plans, n_files;
    int L, H, C, V, attn, threads, json;
    float max_gib;
    gb_config cfg;
} bg_args;

static int add_plan(const opt_spec *o, const char *s, sattn_err *e) {
    bg_args *a = o->target;
    if (a->n_plans + a->n_files == GB_MAX_PLANS) return err_set(e, "--plan: at most %d plans and heads files", GB_MAX_PLANS);
    a->plans[a->n_plans++] = s;
    return 0;
}

static int add_file(const opt_spec *o, const char *s, sattn_err *e) {
    bg_args *a = o->target;
    if (a->n_plans + a->n_files == GB_MAX_PLANS)
        return err_set(e, "--heads-file: at most %d plans and heads files", GB_MAX_PLANS);
    a->files[a->n_files++] = s;
    return 0;
}

static const char *const ATTNS[] = {"naive", "flash", NULL};

static int bg_parse(bg_args *a, int argc, char **argv) {
    gb_config *c = &a->cfg;
    opt_spec o[] = {
        opt_str("model", &a->model, "PATH", "the checkpoint (default: a random model of the shape below)"),
        opt_int("layers", &a->L, 1, 64, "L", "random model: layers (default 4)"),
        opt_int("heads", &a->H, 1, 64, "H", "random model: heads (default 4)"),
        opt_int("dim", &a->C, 8, 4096, "C", "random model: d_model, a multiple of --heads (default 256)"),
        opt_int("vocab", &a->V, 2, 65536, "V", "random model: vocabulary (default 256, bytes)"),
        opt_enum("attn", &a->attn, ATTNS, NULL, "the dense prefill's attention: naive or flash (default flash)"),
        opt_call("plan", a, add_plan, "PLAN", "a sparse plan (text or file) with freshly initialised heads (repeatable)"),
        opt_call("heads-file", a, add_file, "HEADS", "trained sparse heads for --model (repeatable)"),
        opt_list("contexts", c->contexts, &c->n_contexts, GB_MAX_CONTEXTS, 1, 1 << 20, "LIST",
                 "contexts T (default 1024,2048,4096,8192,16384,32768)"),
        opt_int("runs", &c->runs, 1, 1000, "N", "runs per row, the median is kept (default 3)"),
        opt_int("steps", &c->steps, 1, 4096, "N", "decode steps timed per run (default 8)"),
        opt_int("recompute-max", &c->recompute_max, 0, 1 << 20, "T", "recompute rows up to this context (default 4096; 0: none)"),
        opt_float("max-gib", &a->max_gib, 0.0, 1, 4096.0, "G", "skip rows needing more GiB (default 6)"),
        cli_opt_seed(&c->seed, "seed of the random model, heads and tokens"),
        cli_opt_threads(&a->threads),
        opt_str("csv", &a->csv, "PATH", "write the rows to PATH (bench CSV: docs/bench.md, docs/generate.md)"),
        opt_str("phases-csv", &a->phases_csv, "PATH",
                "write each row's split (selection, head function, rest) to PATH\n(phases CSV: docs/generate.md)"),
        cli_opt_json(&a->json, "one JSON object {\"rows\": [...], \"fits\": [...]} instead of the table"),
    };
    int r = cli_parse(&BENCH_GEN, o, CLI_N(o), argc, argv);
    if (r) return r;
    if (a->model && (opts_seen(o, CLI_N(o), "layers") || opts_seen(o, CLI_N(o), "heads") ||
                     opts_seen(o, CLI_N(o), "dim") || opts_seen(o, CLI_N(o), "vocab")))
        return cli_fail("bench-generate", "--model: the shape comes from the checkpoint; drop --layers/--heads/--dim/--vocab");
    if (a->n_files && !a->model)
        return cli_fail("bench-generate", "--heads-file %s: trained heads need their --model", a->files[0]);
    if (!a->model && a->C % a->H)
        return cli_fail("bench-generate", "--dim %d is not a multiple of --heads %d", a->C, a->H);
    return 0;
}

/* The model: loaded, or random with max_seq = the largest context + steps. */
static int bg_model(const bg_args *a, gpt_model *m) {
    if (a->model) {
        if (cli_load_model("bench-generate", a->model, m)) return 1;
        m->cfg.attn = a->attn;
        return 0;
    }
    int maxT = 0;
    for (int i = 0; i < a->cfg.n_contexts; i++) maxT = a->cfg.contexts[i] > maxT ? a->cfg.contexts[i] : maxT;
    /* RoPE, as the long-context models are: no position table to size, and the decode step
     * pays for its rotation */
    gpt_config c = {.max_seq = maxT + a->cfg.steps, .vocab = a->V, .padded_vocab = gpt_padded_vocab(a->V),
                    .layers = a->L, .heads = a->H, .channels = a->C, .attn = a->attn,
                    .pos = GPT_POS_ROPE, .rope_base = 10000.0f, .rope_scale = 1.0f};
    sattn_err e;
    if (gpt_config_check(&c, &e)) return cli_fail("bench-generate", "random model: %s", e.msg);
    rng_t r;
    rng_seed(&r, a->cfg.seed);
    gpt_create(m, &c);
    gpt_init_random(m, &r);
    return 0;
}

/* Plans (fresh heads) and heads files into sh[], labels into pl[]. Exit status. */
static int bg_heads(const bg_args *a, const gpt_model *m, sparse_heads *sh, gb_plan *pl, int *n) {
    const gpt_config *c = &m->cfg;
    sattn_err e;
    head_spec *specs = xmalloc((size_t)c->layers * c->heads * sizeof *specs);
    rng_t r;
    rng_seed(&r, a->cfg.seed + 1);
    *n = 0;
    int rc = 0;
    for (int i = 0; i < a->n_plans && !rc; i++) {
        if (plan_load(a->plans[i], c->layers, c->heads, specs, &e)) rc = cli_fail("bench-generate", "--plan: %s", e.msg);
        else {
            sparse_heads_create(&sh[*n], c->layers, c->heads, c->channels / c->heads, c->max_seq, specs, &r);
            gb_label(a->plans[i], pl[*n].label, sizeof pl[*n].label), pl[*n].sh = &sh[*n], (*n)++;
            if (hybrid_decode_check(&sh[*n - 1], &e)) rc = cli_fail("bench-generate", "--plan: %s", e.msg);
        }
    }
    for (int i = 0; i < a->n_files && !rc; i++) {
        if (heads_load(a->files[i], &sh[*n], c, &e)) rc = cli_fail("bench-generate", "--heads-file: %s", e.msg);
        else {
            gb_label(a->files[i], pl[*n].label, sizeof pl[*n].label), pl[*n].sh = &sh[*n], (*n)++;
            if (hybrid_decode_check(&sh[*n - 1], &e)) rc = cli_fail("bench-generate", "--heads-file: %s", e.msg);
        }
    }
    free(specs);
    return rc;
}

static void print_row(const bench_row *r, void *user) {
    (void)user;
    printf("%-28s %-7s %6d %4d %12.4f %9.2f %10.1f %6.2f\n", r->variant, bench_phase_name(r->phase), r->T, r->k,
           r->median_s * 1e3, r->gflops, r->peak_bytes / 1e6, r->cpu_pressure);
    fflush(stdout);
}

/* The per-phase rows, as gb_run_phases hands them over. */
typedef struct {
    phase_row *rows;
    int n, cap;
} bg_phases;

static void keep_phase(const phase_row *r, void *user) {
    bg_phases *p = user;
    if (p->n == p->cap) p->cap = p->cap ? 2 * p->cap : 16, p->rows = xrealloc(p->rows, (size_t)p->cap * sizeof *p->rows);
    p->rows[p->n++] = *r;
}

static void print_phases(const bg_phases *p) {
    printf("\nwhere the median step's time goes (sparse selection, head function, rest of the model)\n");
    for (int i = 0; i < p->n; i++) {
        char line[256];
        pt_text_line(&p->rows[i], line, sizeof line);
        printf("%s\n", line);
    }
}

static void print_note(const char *msg, void *user) {
    (void)user;
    fprintf(stderr, "note: %s\n", msg);
}

/* The distinct variants with decode rows, in first-seen order. */
static int decode_variants(const bench_row *rows, int n, const char **names, int cap) {
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (rows[i].phase != BENCH_DECODE) continue;
        int seen = 0;
        for (int j = 0; j < k; j++) seen |= !strcmp(names[j], rows[i].variant);
        if (!seen && k < cap) names[k++] = rows[i].variant;
    }
    return k;
}

/* Per cached variant: the line a + b T, the time ratio from the smallest to the largest T
 * against the context ratio (linear: about equal or less; quadratic: its square), and
 * the recompute's time over the cache's at each T where both ran. */
static void print_fits(const bench_row *rows, int n, int json) {
    const char *names[2 * GB_MAX_PLANS + 4];
    int nv = decode_variants(rows, n, names, 2 * GB_MAX_PLANS + 4), first = 1;
    if (!json) printf("\ndecode time per token vs context (least squares: a + b T)\n");
    for (int v = 0; v < nv; v++) {
        double a, b;
        int cnt, lo = 0, hi = 0;
        if (gb_fit(rows, n, names[v], &a, &b, &cnt)) continue;
        for (int i = 0; i < n; i++)
            if (rows[i].phase == BENCH_DECODE && !strcmp(rows[i].variant, names[v])) {
                if (!lo || rows[i].T < lo) lo = rows[i].T;
                if (rows[i].T > hi) hi = rows[i].T;
            }
        double tr = gb_decode_at(rows, n, names[v], hi) / gb_decode_at(rows, n, names[v], lo);
        if (json)
            printf("%s{\"variant\": \"%s\", \"a_s\": %.6e, \"b_s_per_token\": %.6e, \"rows\": %d, \"T_lo\": %d, "
                   "\"T_hi\": %d, \"time_ratio\": %.4f, \"context_ratio\": %.4f}",
                   first ? "" : ", ", names[v], a, b, cnt, lo, hi, tr, (double)hi / lo);
        else
            printf("%-28s a %.4f ms, b %.4f ms per 1K context; T %d -> %d (x%.1f): time x%.2f\n", names[v], a * 1e3,
                   b * 1e6, lo, hi, (double)hi / lo, tr);
        first = 0;
    }
}

static void print_speedups(const bench_row *rows, int n) {
    printf("\nrecompute time / cached time per token\n");
    for (int i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        if (r->phase != BENCH_DECODE || strncmp(r->variant, "gen-recompute", 13)) continue;
        const char *names[2 * GB_MAX_PLANS + 4];
        int nv = decode_variants(rows, n, names, 2 * GB_MAX_PLANS + 4);
        for (int v = 0; v < nv; v++) {
            double t = gb_decode_at(rows, n, names[v], r->T);
            if (t > 0 && strncmp(names[v], "gen-recompute", 13))
                printf("T %6d  %-22s / %-28s x%.1f\n", r->T, r->variant, names[v], r->median_s / t);
        }
    }
}

static void print_json(const bench_row *rows, int n, const bg_phases *ph) {
    printf("{\"rows\": [");
    for (int i = 0; i < n; i++) {
        char obj[640];
        bench_json_object(&rows[i], obj, sizeof obj);
        printf("%s%s", i ? ", " : "", obj);
    }
    printf("], \"fits\": [");
    print_fits(rows, n, 1);
    printf("], \"phases\": [");
    for (int i = 0; i < ph->n; i++) {
        char obj[512];
        pt_json_object(&ph->rows[i], obj, sizeof obj);
        printf("%s%s", i ? ", " : "", obj);
    }
    printf("]}\n");
}

static int bg_run(const bg_args *a, gpt_model *m, const gb_plan *pl, int np) {
    if (!a->json) {
        printf("model L%d H%d C%d V%d max_seq %d, prefill attention %s, threads %d; median of %d runs (decode: x %d "
               "steps)\n",
               m->cfg.layers, m->cfg.heads, m->cfg.channels, m->cfg.vocab, m->cfg.max_seq,
               m->cfg.attn == GPT_ATTN_FLASH ? "flash" : "naive", omp_get_max_threads(), a->cfg.runs, a->cfg.steps);
        printf("%-28s %-7s %6s %4s %12s %9s %10s %6s\n", "variant", "phase", "T", "k", "median_ms", "GFLOP/s",
               "peak_MB", "psi10");
    }
    bg_phases ph = {0};
    gb_sink sink = {a->json ? NULL : print_row, print_note, &ph};
    bench_row *rows;
    int n;
    gb_run_phases(m, pl, np, &a->cfg, &sink, keep_phase, &rows, &n);
    if (a->json) print_json(rows, n, &ph);
    else print_fits(rows, n, 0), print_speedups(rows, n), print_phases(&ph);
    sattn_err e;
    int rc = 0;
    if (a->csv && bench_csv_write(a->csv, rows, n, &e)) rc = cli_fail("bench-generate", "%s", e.msg);
    if (!rc && a->phases_csv && pt_csv_write(a->phases_csv, ph.rows, ph.n, &e))
        rc = cli_fail("bench-generate", "--phases-csv: %s", e.msg);
    free(rows), free(ph.rows);
    return rc;
}

int cmd_bench_generate(int argc, char **argv) {
    bg_args a = {.L = 4, .H = 4, .C = 256, .V = 256, .attn = GPT_ATTN_FLASH, .max_gib = 6.0f,
                 .cfg = {.contexts = {1024, 2048, 4096, 8192, 16384, 32768}, .n_contexts = 6, .runs = 3, .steps = 8,
                         .recompute_max = 4096, .prefill_repeat_s = 20.0, .seed = 1}};
    int r = bg_parse(&a, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    a.cfg.max_bytes = a.max_gib * 1024.0 * 1024.0 * 1024.0;
    if (a.threads) omp_set_num_threads(a.threads);
    if (cli_check_out("bench-generate", "--csv", a.csv) || cli_check_out("bench-generate", "--phases-csv", a.phases_csv))
        return 1;
    gpt_model m;
    if (bg_model(&a, &m)) return 1;
    sparse_heads sh[GB_MAX_PLANS];
    gb_plan pl[GB_MAX_PLANS];
    int np = 0;
    r = bg_heads(&a, &m, sh, pl, &np);
    if (!r) r = bg_run(&a, &m, pl, np);
    for (int i = 0; i < np; i++) sparse_heads_free(&sh[i]);
    gpt_free(&m);
    return r;
}
