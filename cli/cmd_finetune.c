/* sattn finetune: recovery fine-tuning of the hybrid model on the LM loss. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "mpi_job.h"
#include "sattn/gradsync.h"
#include "cli.h"
#include "opts.h"
#include "sattn/finetune.h"
#include "sattn/heads.h"
#include "sattn/hybrid.h"

static const cli_cmd FINETUNE = {
    "finetune", NULL,
    "Trains the model with its sparse heads swapped in, end to end on the language-modelling\n"
    "loss, to win back the quality the sparse heads cost. Prints the validation loss (whole\n"
    "split) of the dense teacher, the hybrid before, and the hybrid after. The sparse heads run at\n"
    "every length here: hybrid by length (eval/sample --dense-below) is an inference choice, and\n"
    "training with it would leave windows below the threshold nothing sparse to train.",
    NULL};

typedef struct {
    const char *model, *heads, *data, *out, *heads_out;
    train_config tc;
    uint64_t seed;
    int threads, json, control;
    data_format data_fmt;
    dist_ctx *dist; /* under mpirun (docs/mpi.md); NULL: one process */
    int zero;       /* --zero */
} ft_args;

/* The gradient sync of a fine-tune of m: NULL for one process (the plain step). */
static gradsync *ft_sync(const ft_args *a, gpt_model *m, gradsync *gs) {
    if (!a->dist || a->dist->size == 1) return NULL;
    gradsync_init(gs, a->dist, a->zero, m);
    return gs;
}

static int ft_parse(ft_args *a, int argc, char **argv) {
    opt_spec o[] = {
        cli_opt_model(&a->model, NULL),
        opt_required(opt_str("heads", &a->heads, "HEADS", "the sparse heads (sattn distill --out)")),
        opt_required(cli_opt_data(&a->data, NULL)),
        cli_opt_out(&a->out, "PATH", "fine-tuned model checkpoint"),
        opt_str("heads-out", &a->heads_out, "PATH",
                "fine-tuned heads (required when the plan has mlp heads: they train too)"),
        opt_int("steps", &a->tc.steps, 1, 1 << 30, "N", "steps"),
        opt_int("batch", &a->tc.batch, 1, 1 << 16, "B",
                "sequences per step (under mpirun: over all ranks, a multiple of them)"),
        opt_float("lr", &a->tc.lr, 0, 1, 10, "X", "peak learning rate, cosine to --min-lr"),
        opt_float("min-lr", &a->tc.min_lr, 0, 0, 10, "X", "final learning rate (default: --lr/10)"),
        opt_int("warmup", &a->tc.warmup, 0, 1 << 30, "N", "warmup steps"),
        cli_opt_seed(&a->seed, "batch seed"),
        cli_opt_threads(&a->threads),
        opt_int("zero", &a->zero, 0, 1, "0|1",
                "under mpirun: 1 shards the AdamW moments over the ranks (ZeRO-1; docs/mpi.md)"),
        cli_opt_json(&a->json, "print the result as one JSON object"),
        opt_flag("control", &a->control,
                 "also fine-tune the DENSE model the same way (same steps, schedule and\n"
                 "batches) and report its loss: the fair baseline for 'after'"),
        cli_opt_data_format(&a->data_fmt),
    };
    int r = cli_parse(&FINETUNE, o, CLI_N(o), argc, argv);
    if (r) return r;
    if (a->heads_out && !strcmp(a->heads_out, a->out))
        return cli_fail("finetune", "--heads-out %s is the same file as --out", a->heads_out);
    if (!opts_seen(o, CLI_N(o), "min-lr")) a->tc.min_lr = a->tc.lr / 10;
    if (a->tc.min_lr > a->tc.lr)
        return cli_fail("finetune", "--min-lr %g is larger than --lr %g", a->tc.min_lr, a->tc.lr);
    return 0;
}

/* Heads whose parameters train in a finetune: mlp heads, and shared indexers (by KL on the
 * selected keys, finetune.h); NULL when none. */
static const char *trained_heads(const sparse_heads *sh) {
    for (int i = 0; i < sh->layers * sh->heads; i++)
        if (sh->h[i].spec.sel != SEL_DENSE && sh->h[i].spec.fn == HFN_MLP) return "mlp heads";
    for (int i = 0; i < sh->layers * sh->heads; i++)
        if (sh->h[i].spec.shared) return "shared indexers (shared=1)";
    return NULL;
}

/* Whole-split validation loss with or without the sparse heads. */
static double val_loss(gpt_model *m, const sparse_heads *sh, const dataset *d, int hybrid_on, int B) {
    hybrid hy;
    hybrid_init(&hy, sh, m->cfg.channels, m->cfg.heads);
    if (hybrid_on) hybrid_attach(&hy, m);
    double loss = eval_split_loss(m, d, SPLIT_VAL, m->cfg.max_seq, B, 0, NULL);
    hybrid_detach(m);
    hybrid_free(&hy);
    return loss;
}

static void ft_progress(const train_progress *p, void *user) {
    int tty = *(const int *)user, every = p->steps / 10 > 0 ? p->steps / 10 : 1;
    if (!tty && p->step % every && p->step != p->steps) return;
    fprintf(stderr, "%sstep %d/%d | loss %.4f | lr %.2e | %.0f tok/s | ETA %.0fs%s", tty ? "\r" : "",
            p->step, p->steps, p->loss, p->lr, p->tokens_per_s, p->eta_s,
            tty && p->step < p->steps ? "" : "\n");
}

/* The same fine-tune on the dense model (every head dense): extra training alone also
 * lowers the loss, so "hybrid after" is compared with this, not only with the teacher.
 * Not finite, with e, when it fails (a diverged run). */
static double dense_control(const ft_args *a, const dataset *d, sattn_err *e) {
    gpt_model m;
    if (ckpt_load(a->model, &m, NULL, e) != 0) return NAN;
    free(m.m_mem), free(m.v_mem);
    m.m_mem = m.v_mem = NULL;
    const gpt_config *c = &m.cfg;
    head_spec *specs = xmalloc((size_t)c->layers * c->heads * sizeof *specs);
    for (int i = 0; i < c->layers * c->heads; i++) specs[i] = head_spec_default();
    sparse_heads sh;
    rng_t rng;
    rng_seed(&rng, a->seed);
    sparse_heads_create(&sh, c->layers, c->heads, c->channels / c->heads, c->max_seq, specs, &rng);
    train_state st = {.rng = {a->seed ^ 0xf1e7ULL}};
    train_config tc = a->tc;
    tc.seq = c->max_seq;
    gradsync gs;
    tc.sync = ft_sync(a, &m, &gs);
    double loss = NAN;
    if (finetune_run(&m, &sh, &st, d, &tc, NULL, NULL, NULL, e) == 0) {
        loss = eval_split_loss_dist(&m, d, SPLIT_VAL, c->max_seq, tc.batch, 0, NULL, tc.sync);
        if (!isfinite(loss)) err_set(e, "the dense fine-tune's validation loss is not finite");
    }
    if (tc.sync) gradsync_free(&gs);
    sparse_heads_free(&sh);
    free(specs);
    gpt_free(&m);
    return loss;
}

static int ft_load(const ft_args *a, gpt_model *m, sparse_heads *sh, dataset *d) {
    sattn_err e;
    if (cli_load_model("finetune", a->model, m)) return 1;
    if (heads_load(a->heads, sh, &m->cfg, &e) != 0) return gpt_free(m), cli_fail("finetune", "%s", e.msg);
    int rc = load_data_checked("finetune", a->data, a->data_fmt, m, "fine-tuning this model", a->tc.batch,
                               m->cfg.max_seq, 1, d);
    if (!rc && (dataset_check_window(d, SPLIT_TRAIN, m->cfg.max_seq, a->data, &e) ||
                dataset_check_window(d, SPLIT_VAL, m->cfg.max_seq, a->data, &e)))
        rc = cli_fail("finetune", "%s", e.msg), dataset_free(d);
    if (!rc && trained_heads(sh) && !a->heads_out)
        rc = cli_fail("finetune", "--heads-out PATH is required: %s has %s, which train too", a->heads,
                      trained_heads(sh)),
        dataset_free(d);
    if (rc) sparse_heads_free(sh), gpt_free(m);
    else cli_data_note(a->data, d);
    return rc;
}

int cmd_finetune(int argc, char **argv, dist_ctx *dist) {
    ft_args a = {.tc = train_config_default(), .seed = 1337, .dist = dist};
    a.tc.steps = 300, a.tc.batch = 8, a.tc.lr = 1e-4f, a.tc.warmup = 20;
    int r = ft_parse(&a, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    if (job_check_batch(dist, "finetune", a.tc.batch)) return 1;
    if (a.threads) omp_set_num_threads(a.threads);
    cli_file outs[] = {{"--out", a.out}, {"--heads-out", a.heads_out}, {NULL, NULL}};
    cli_file ins[] = {{"--model", a.model}, {"--heads", a.heads}, {"--data", a.data}, {NULL, NULL}};
    gpt_model m;
    sparse_heads sh;
    dataset d;
    int mine = cli_check_outputs("finetune", outs, ins) || ft_load(&a, &m, &sh, &d);
    if ((r = dist ? dist_agree(dist, mine, "finetune") : mine) != 0) { /* every rank, before any other collective */
        if (!mine) sparse_heads_free(&sh), dataset_free(&d), gpt_free(&m);
        return r;
    }
    if (job_check_same(dist, "finetune", &m, NULL, "--model"))
        return sparse_heads_free(&sh), dataset_free(&d), gpt_free(&m), 1;
    int root = !dist || dist->rank == 0;
    free(m.m_mem), free(m.v_mem); /* fresh AdamW state for the new objective */
    m.m_mem = m.v_mem = NULL;
    a.tc.seq = m.cfg.max_seq;
    double dense = val_loss(&m, &sh, &d, 0, a.tc.batch), before = val_loss(&m, &sh, &d, 1, a.tc.batch);
    train_state st = {.rng = {a.seed ^ 0xf1e7ULL}};
    int tty = isatty(2);
    double t0 = time_now();
    float last = NAN;
    sattn_err e;
    train_config tc = a.tc;
    gradsync gs;
    tc.sync = ft_sync(&a, &m, &gs);
    r = finetune_run(&m, &sh, &st, &d, &tc, root ? ft_progress : NULL, &tty, &last, &e);
    if (tc.sync) gradsync_free(&gs);
    double wall = time_now() - t0, after = r ? NAN : val_loss(&m, &sh, &d, 1, a.tc.batch);
    double control = a.control && !r ? dense_control(&a, &d, &e) : NAN;
    if (r) r = cli_fail("finetune", "%s; nothing was written", e.msg);
    else if (a.control && !isfinite(control)) r = cli_fail("finetune", "--control: %s; nothing was written", e.msg);
    else if (root) r = ckpt_save(a.out, CKPT_SATTN, &m, NULL, &e) ? cli_fail("finetune", "%s", e.msg) : 0;
    if (!r && root && a.heads_out && heads_save(a.heads_out, &sh, &m.cfg, &e)) r = cli_fail("finetune", "%s", e.msg);
    if (!r && root && a.json)
        printf("{\"loss_dense_teacher\": %.6f, \"loss_hybrid_before\": %.6f, \"loss_hybrid_after\": %.6f, "
               "\"ratio_before\": %.6f, \"ratio_after\": %.6f, \"train_loss\": %.6f, \"steps\": %d, "
               "\"wall_s\": %.2f", dense, before, after, before / dense, after / dense, last, st.step, wall);
    else if (!r && root)
        printf("loss dense teacher %.4f\nloss hybrid before %.4f (x%.4f)\nloss hybrid after  %.4f (x%.4f)\n"
               "steps %d\nwall_s %.1f\n", dense, before, before / dense, after, after / dense, st.step, wall);
    if (!r && root && a.control && a.json)
        printf(", \"loss_dense_control\": %.6f, \"ratio_after_vs_control\": %.6f", control, after / control);
    else if (!r && root && a.control)
        printf("loss dense fine-tuned the same way (control) %.4f\nhybrid after / control x%.4f\n", control,
               after / control);
    if (!r && root && a.json) printf("}\n");
    sparse_heads_free(&sh);
    dataset_free(&d);
    gpt_free(&m);
    return r;
}
