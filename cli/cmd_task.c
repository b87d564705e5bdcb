/* sattn task: a byte-level model scored on passkey, needle or MQAR over a grid of lengths
 * and depths (sattn/taskeval.h, docs/tasks.md). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "opts.h"
#include "sattn/eval_json.h"
#include "sattn/heads.h"
#include "sattn/hybrid.h"
#include "sattn/taskeval.h"

static const cli_cmd TASK = {
    "task", NULL,
    "Scores a byte-level model (vocab 256) on a long-context retrieval task over lengths x\n"
    "depths: passkey (a 5-digit key in repeated filler), needle (the same key in a window of\n"
    "--data), mqar (multi-query associative recall: key-value pairs, then queries). Each\n"
    "sample is scored teacher-forced in one forward; for passkey and needle a sample counts\n"
    "when every key digit is the argmax (= the greedy continuation is the key), for mqar\n"
    "each value counts. Prints a length x depth table of accuracies.",
    "A length T is what the model reads: a sample is T+1 bytes, the last one an answer byte.\n"
    "Samples are deterministic from --seed, length, depth index and sample index."};

#define MAX_LENGTHS 64

typedef struct {
    const char *model, *data, *json, *heads;
    int kind, lengths[MAX_LENGTHS], n_lengths, depths, samples, pairs, batch, threads, attn;
    data_split split;
    data_format data_fmt;
    uint64_t seed;
    int depths_given, pairs_given;
} task_args;

/* --task: required, so its start value (-1) names no default; the value's name is spelled
 * out for the usage line and the "is required" error. */
static opt_spec task_opt(int *kind) {
    static const char *const kinds[] = {"passkey", "needle", "mqar", NULL};
    opt_spec o = opt_required(opt_enum("task", kind, kinds, NULL, "the task"));
    o.arg = "passkey|needle|mqar";
    return o;
}

static int task_parse(task_args *a, int argc, char **argv) {
    opt_spec o[] = {
        cli_opt_model(&a->model, "a byte-level checkpoint (vocab 256)"),
        task_opt(&a->kind),
        cli_opt_data(&a->data, "needle only: the corpus whose text is the filler (a random window\n"
                               "of --split, default the validation split)"),
        cli_opt_split(&a->split),
        opt_list("lengths", a->lengths, &a->n_lengths, MAX_LENGTHS, 1, 1 << 20, "LIST",
                 "lengths T to test, at most the model's context (default: the context)"),
        opt_int("depths", &a->depths, 1, 1000, "N", "passkey, needle: depths 0, 1/(N-1), ..., 1 (1: 0.5)"),
        opt_int("samples", &a->samples, 1, 1 << 20, "N", "samples per cell"),
        opt_int("pairs", &a->pairs, 1, TASK_MQAR_MAX_PAIRS, "N", "mqar: key-value pairs (needs 4N <= T+1)"),
        opt_int("batch", &a->batch, 1, 1 << 16, "B", "samples per forward"),
        cli_opt_seed(&a->seed, "sample seed"),
        opt_str("json", &a->json, "OUT", "also write the grid as JSON to OUT (atomically; `sattn report\n--task` draws it)"),
        opt_str("heads", &a->heads, "HEADS", "score the hybrid model (these sparse heads swapped in; naive attention)"),
        cli_opt_attn(&a->attn),
        cli_opt_threads(&a->threads),
        cli_opt_data_format(&a->data_fmt),
    };
    int r = cli_parse(&TASK, o, CLI_N(o), argc, argv);
    if (r) return r;
    a->depths_given = opts_seen(o, CLI_N(o), "depths");
    a->pairs_given = opts_seen(o, CLI_N(o), "pairs");
    if (a->kind == TASK_NEEDLE && !a->data)
        return cli_fail("task", "--task needle needs --data CORPUS (the filler text)");
    if (a->kind != TASK_NEEDLE && a->data)
        return cli_fail("task", "--data: only --task needle reads a corpus (%s uses its own filler)",
                        task_name((task_kind)a->kind));
    if (a->kind == TASK_MQAR && a->depths_given)
        return cli_fail("task", "--depths: mqar has no depth (its queries follow all the pairs)");
    if (a->kind != TASK_MQAR && a->pairs_given)
        return cli_fail("task", "--pairs: applies to --task mqar only");
    if (a->heads && a->attn == GPT_ATTN_FLASH)
        return cli_fail("task", "--heads: the hybrid model runs naive attention; drop --attn flash");
    return 0;
}

/* The model: a byte-level checkpoint, with the run's attention kernel (a->attn resolved here
 * for the model's context, so that the JSON names the kernel that ran). */
static int task_model(task_args *a, gpt_model *m) {
    if (cli_load_model("task", a->model, m)) return 1;
    if (m->cfg.vocab != 256) {
        int v = m->cfg.vocab;
        gpt_free(m);
        return cli_fail("task", "--model %s: vocabulary %d, expected a byte-level model (vocab 256): "
                                "the tasks are bytes", a->model, v);
    }
    int autoattn = a->attn == CLI_ATTN_AUTO;
    m->cfg.attn = a->attn = cli_attn_resolve(a->attn, m->cfg.max_seq, a->heads != NULL);
    /* every head sparse (a natively sparse model): the hook alone, no T x T buffer (as loss) */
    sparse_heads sh;
    sattn_err e;
    if (a->heads && autoattn && heads_load(a->heads, &sh, &m->cfg, &e) == 0) {
        if (hybrid_all_sparse(&sh)) m->cfg.attn = a->attn = GPT_ATTN_HOOK;
        sparse_heads_free(&sh);
    }
    return 0;
}

/* The grid from the flags (lengths default to the model's context). */
static task_grid grid_of(task_args *a, const gpt_model *m, const dataset *d) {
    if (!a->n_lengths) a->lengths[0] = m->cfg.max_seq, a->n_lengths = 1;
    task_grid g = {.kind = (task_kind)a->kind, .pairs = a->pairs, .lengths = a->lengths,
                   .n_lengths = a->n_lengths, .n_depths = a->kind == TASK_MQAR ? 1 : a->depths,
                   .samples = a->samples, .batch = a->batch, .seed = a->seed};
    if (d) g.corpus = dataset_split_tokens(d, a->split, &g.n_corpus);
    return g;
}

/* The checks before any work: the grid, the corpus, memory, the JSON output. */
static int task_check_all(const task_args *a, const gpt_model *m, const dataset *d, const task_grid *g) {
    sattn_err e;
    if (d && !d->is_bytes)
        return cli_fail("task", "--data %s: read as llm.c tokens, expected text (bytes) for the filler", a->data);
    if (taskeval_check(g, m->cfg.max_seq, &e)) return cli_fail("task", "--lengths: %s", e.msg);
    int maxT = 0;
    for (int i = 0; i < g->n_lengths; i++) maxT = g->lengths[i] > maxT ? g->lengths[i] : maxT;
    int B = a->batch < g->samples * g->n_depths ? a->batch : g->samples * g->n_depths;
    if (cli_mem_check_model("task", "scoring this model", &m->cfg, B, maxT, 0,
                            d ? (double)d->n_tokens * sizeof *d->tokens : 0.0))
        return 1;
    cli_file outs[] = {{"--json", a->json}, {NULL, NULL}};
    cli_file ins[] = {{"--model", a->model}, {"--data", a->data}, {"--heads", a->heads}, {NULL, NULL}};
    return cli_check_outputs("task", outs, ins);
}

/* The length x depth table of accuracies on stdout. */
static void print_table(const task_args *a, const task_grid *g, const task_cell *c) {
    int nd = g->kind == TASK_MQAR ? 1 : g->n_depths;
    printf("%s accuracy (%s)\n%8s", task_name(g->kind),
           g->kind == TASK_MQAR ? "values right / values asked" : "keys right / samples", "T \\ depth");
    for (int d = 0; d < nd; d++)
        if (g->kind == TASK_MQAR) printf(" %7s", "all");
        else printf(" %7.3f", taskeval_depth(d, nd));
    printf("     mean\n");
    long right = 0, asked = 0;
    for (int l = 0; l < g->n_lengths; l++) {
        long r = 0, n = 0;
        printf("%8d ", g->lengths[l]);
        for (int d = 0; d < nd; d++) {
            const task_cell *x = &c[l * nd + d];
            printf(" %7.3f", x->accuracy);
            r += x->correct, n += x->answers;
        }
        printf("  %7.3f\n", (double)r / (double)n);
        right += r, asked += n;
    }
    printf("overall %.4f (%ld of %ld)\n", (double)right / (double)asked, right, asked);
}

static int write_json(const task_args *a, const task_grid *g, const task_cell *c) {
    task_json_info info = {task_name(g->kind), a->model, a->heads, a->attn == GPT_ATTN_FLASH ? "flash" : a->attn == GPT_ATTN_HOOK ? "hook" : "naive",
                           g->kind == TASK_MQAR ? g->pairs : 0, a->seed};
    sbuf b = {0};
    eval_json_task_format(&b, &info, c, taskeval_cells(g));
    afile f;
    sattn_err e;
    int rc = afile_open(&f, a->json, &e) || afile_write(&f, b.s, b.n, &e) ? (afile_abort(&f), -1) : afile_commit(&f, &e);
    sb_free(&b);
    return rc ? cli_fail("task", "--json %s", e.msg) : 0;
}

/* Runs the grid on m (with the sparse heads attached when --heads), prints, writes. */
static int task_run(const task_args *a, gpt_model *m, const task_grid *g) {
    sparse_heads sh;
    hybrid hy;
    sattn_err e;
    if (a->heads) {
        if (heads_load(a->heads, &sh, &m->cfg, &e)) return cli_fail("task", "%s", e.msg);
        hybrid_init(&hy, &sh, m->cfg.channels, m->cfg.heads);
        hybrid_attach(&hy, m);
    }
    task_cell *c = xcalloc((size_t)taskeval_cells(g), sizeof *c);
    double t0 = time_now();
    taskeval_grid(m, g, c);
    if (a->heads) hybrid_detach(m), hybrid_free(&hy), sparse_heads_free(&sh);
    int rc = a->json ? write_json(a, g, c) : 0;
    if (!rc) print_table(a, g, c);
    if (!rc) fprintf(stderr, "task: %d cells in %.1f s\n", taskeval_cells(g), time_now() - t0);
    free(c);
    return rc;
}

int cmd_task(int argc, char **argv) {
    task_args a = {.attn = CLI_ATTN_AUTO, .kind = -1, .depths = 10, .samples = 5, .pairs = TASK_MQAR_MAX_PAIRS, .batch = 8, .seed = 1337,
                   .split = SPLIT_VAL};
    int r = task_parse(&a, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    if (a.threads) omp_set_num_threads(a.threads);
    gpt_model m;
    if (task_model(&a, &m)) return 1;
    dataset d, *dp = NULL;
    if (a.data && load_data_for_model("task", a.data, a.data_fmt, &m, &d)) return gpt_free(&m), 1;
    if (a.data) dp = &d;
    task_grid g = grid_of(&a, &m, dp);
    r = task_check_all(&a, &m, dp, &g);
    if (!r) {
        if (dp) cli_data_note(a.data, dp);
        r = task_run(&a, &m, &g);
    }
    if (dp) dataset_free(dp);
    gpt_free(&m);
    return r;
}
