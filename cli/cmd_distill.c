/* sattn distill: sparse heads for a plan, trained against the teacher. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "mpi_job.h"
#include "cli.h"
#include "opts.h"
#include "sattn/distill.h"
#include "sattn/heads.h"
#include "sattn/plan.h"
#include "sattn/sparse_eval.h"

static const cli_cmd DISTILL = {
    "distill", NULL,
    "Trains the sparse heads a plan asks for against the model (the teacher), online:\n"
    "every step runs the dense teacher on a fresh training batch.",
    NULL};

typedef struct {
    const char *model, *data, *plan, *out;
    distill_config dc;
    int threads, json;
    data_format data_fmt;
} distill_args;

static int distill_parse(distill_args *a, int argc, char **argv) {
    opt_spec o[] = {
        cli_opt_model(&a->model, "the teacher: a sattn or llm.c checkpoint, safetensors or HF folder"),
        opt_required(cli_opt_data(&a->data, NULL)),
        opt_required(opt_str("plan", &a->plan, "PLAN",
                             "a plan file or an inline plan, e.g. 'all:index+softmax:k=16' or\n"
                             "'L0H1:block+softmax:b=16,n=4; *:dense' (docs/plans.md)")),
        cli_opt_out(&a->out, "HEADS", "the heads file to write"),
        opt_int("steps", &a->dc.steps, 1, 1 << 30, "N", "optimisation steps"),
        opt_int("batch", &a->dc.batch, 1, 1 << 16, "B",
                "sequences per step (under mpirun: over all ranks, a multiple of them)"),
        opt_float("lr", &a->dc.lr, 0, 1, 10, "X", "peak learning rate, cosine to X/10"),
        cli_opt_seed(&a->dc.seed, NULL),
        cli_opt_threads(&a->threads),
        cli_opt_json(&a->json, "print the summary as one JSON object"),
        cli_opt_data_format(&a->data_fmt),
    };
    int r = cli_parse(&DISTILL, o, CLI_N(o), argc, argv);
    if (r) return r;
    if (!strcmp(a->out, a->model) || !strcmp(a->out, a->data))
        return cli_fail("distill", "--out %s would overwrite the %s", a->out,
                        !strcmp(a->out, a->model) ? "--model checkpoint" : "--data file");
    a->dc.min_lr = a->dc.lr / 10;
    return 0;
}

static void distill_progress_line(const distill_progress *p, void *user) {
    int tty = *(const int *)user, every = p->steps / 10 > 0 ? p->steps / 10 : 1;
    if (!tty && p->step % every && p->step != p->steps) return;
    fprintf(stderr, "%sstep %d/%d | selector loss %.4f | mlp mse %.5f | %.0f tok/s | ETA %.0fs%s",
            tty ? "\r" : "", p->step, p->steps, p->sel_loss, p->fn_loss, p->tokens_per_s, p->eta_s,
            tty && p->step < p->steps ? "" : "\n");
}

/* Loads the teacher, the data and the plan into sparse heads. Exit status. */
static int distill_setup(const distill_args *a, gpt_model *m, dataset *d, sparse_heads *sh) {
    sattn_err e;
    if (cli_load_model("distill", a->model, m)) return 1;
    const gpt_config *c = &m->cfg;
    head_spec *specs = xmalloc((size_t)c->layers * c->heads * sizeof *specs);
    int rc = plan_load(a->plan, c->layers, c->heads, specs, &e) ? cli_fail("distill", "--plan %s", e.msg) : 0;
    if (!rc) rc = load_data_checked("distill", a->data, a->data_fmt, m, "distilling with this model",
                                    a->dc.batch, a->dc.seq > 0 ? a->dc.seq : c->max_seq, 0, d);
    if (!rc && dataset_check_window(d, SPLIT_TRAIN, c->max_seq, a->data, &e))
        rc = cli_fail("distill", "%s", e.msg), dataset_free(d);
    if (!rc) {
        rng_t rng;
        rng_seed(&rng, a->dc.seed);
        sparse_heads_create(sh, c->layers, c->heads, c->channels / c->heads, c->max_seq, specs, &rng);
        if (sparse_heads_count(sh) == 0) {
            rc = cli_fail("distill", "--plan %s: every head is dense, nothing to distill", a->plan);
            sparse_heads_free(sh), dataset_free(d);
        }
    }
    free(specs);
    if (rc) gpt_free(m);
    else cli_data_note(a->data, d);
    return rc;
}

int cmd_distill(int argc, char **argv, dist_ctx *dist) {
    distill_args a = {.dc = distill_config_default()};
    int r = distill_parse(&a, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    a.dc.dist = dist;
    int root = !dist || dist->rank == 0;
    if (job_check_batch(dist, "distill", a.dc.batch)) return 1;
    if (a.threads) omp_set_num_threads(a.threads);
    /* --plan may be inline text; same_file only matches it when it names a file. */
    cli_file outs[] = {{"--out", a.out}, {NULL, NULL}};
    cli_file ins[] = {{"--model", a.model}, {"--data", a.data}, {"--plan", a.plan}, {NULL, NULL}};
    sattn_err e;
    gpt_model m;
    dataset d;
    sparse_heads sh;
    int mine = cli_check_outputs("distill", outs, ins) || distill_setup(&a, &m, &d, &sh);
    if ((r = dist ? dist_agree(dist, mine, "distill") : mine) != 0) { /* every rank, before any other collective */
        if (!mine) sparse_heads_free(&sh), dataset_free(&d), gpt_free(&m);
        return r;
    }
    int tty = isatty(2);
    double t0 = time_now();
    r = job_check_same(dist, "distill", &m, NULL, "--model");
    if (!r) r = distill_run(&m, &sh, &d, &a.dc, root ? distill_progress_line : NULL, &tty, &e) ? 2 : 0;
    double dt = time_now() - t0;
    if (r == 2) r = cli_fail("distill", "%s; no heads file was written", e.msg);
    else if (!r && root) r = heads_save(a.out, &sh, &m.cfg, &e) ? cli_fail("distill", "%s", e.msg) : 0;
    if (!r && root && a.json)
        printf("{\"sparse_heads\": %d, \"steps\": %d, \"wall_s\": %.2f, \"out\": \"%s\"}\n",
               sparse_heads_count(&sh), a.dc.steps, dt, a.out);
    else if (!r && root)
        printf("sparse_heads %d\nsteps %d\nwall_s %.1f\n", sparse_heads_count(&sh), a.dc.steps, dt);
    sparse_heads_free(&sh);
    dataset_free(&d);
    gpt_free(&m);
    return r;
}
