/* Running a training job for `train` and `demo`: setup, progress, summary. */
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "gpt2text.h"
#include "mpi_job.h"
#include "sattn/finetune.h"
#include "sattn/gradsync.h"
#include "sattn/heads.h"
#include "sattn/plan.h"
#include "sattn/trainlog.h"
#include "train_pos.h"

/* The sparse heads of a native sparse run (--attn sparse:PLAN); on = 0 for a dense run. */
typedef struct {
    int on, all_sparse;
    sparse_heads sh;
    uint64_t plan_hash; /* what the checkpoint records (ckpt_schedule.plan_hash) */
} run_heads;

/* Tokens are held as uint16: 2 bytes per byte of a text corpus, at most the file's
 * size for an llm.c token file; so twice the file size bounds what loading needs. */
static int data_mem_check(const char *cmd, const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) return 0; /* the loader says what is wrong */
    char what[64 + 256];
    snprintf(what, sizeof what, "loading %.255s", path);
    return cli_mem_check(cmd, what, 2.0 * (double)sb.st_size, "2 bytes per byte of a text corpus");
}

typedef struct {
    int tty, every;
    int save_every, save_failed; /* --save-every: checkpoint to out every N steps */
    int saved_step;              /* the step of the last periodic checkpoint (0: none) */
    const train_args *args;
    gpt_model *m;
    train_state *st;
    const run_heads *rh;
    trainlog log;     /* --log-csv: one row per step */
    double t0;        /* the run's (or resumption's) start */
    gradsync *sync;   /* data parallel: rank 0 writes, after gathering ZeRO-1's moments */
} progress_ctx;

/* Whether this process writes files and prints progress: rank 0, or a single process. */
static int is_root(const train_args *a) { return !a->dist || a->dist->rank == 0; }

static void fmt_time(char *buf, size_t n, double s) {
    if (s >= 3600) snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

/* The loss curve so far to --log-csv (atomically); 0, or -1 after a one-line error. */
static int save_log(const progress_ctx *pc) {
    sattn_err e;
    if (!pc->args->log_csv || trainlog_save(pc->args->log_csv, &pc->log, &e) == 0) return 0;
    cli_fail("train", "%s", e.msg);
    return -1;
}

/* Periodic checkpoint (atomic, so an interrupted run leaves the previous one intact), and
 * the log with it. */
static void save_now(progress_ctx *pc, int step) {
    sattn_err e;
    if (save_log(pc)) {
        pc->save_failed = 1;
        return;
    }
    const train_state *st = pc->args->format == CKPT_SATTN ? pc->st : NULL;
    /* the heads first: a checkpoint on disk then always has its heads beside it */
    if (gpt_check_finite(pc->m, &e) != 0 ||
        (pc->rh->on && heads_save(pc->args->heads_out, &pc->rh->sh, &pc->m->cfg, &e) != 0) ||
        ckpt_save(pc->args->out, pc->args->format, pc->m, st, &e) != 0) {
        cli_fail("train", "%s", e.msg);
        pc->save_failed = 1;
    } else {
        pc->saved_step = step;
    }
}

static void save_periodic(progress_ctx *pc, int step) {
    if (pc->save_every <= 0 || step % pc->save_every != 0) return;
    gradsync_gather_moments(pc->sync, pc->m); /* every rank (a collective) */
    if (is_root(pc->args) && !pc->save_failed) save_now(pc, step);
    gradsync_release_moments(pc->sync, pc->m);
}

/* The error line of a diverged run, saying what it leaves at --out. */
static int diverged_fail(const progress_ctx *pc, const char *cmd, const char *msg) {
    const char *out = pc->args->out;
    if (pc->saved_step > 0)
        return cli_fail(cmd, "%s; the last good checkpoint (step %d) is left in place at %s", msg,
                        pc->saved_step, out);
    if (access(out, F_OK) == 0) return cli_fail(cmd, "%s; %s is left as it was", msg, out);
    return cli_fail(cmd, "%s; no checkpoint was written", msg);
}

static void on_progress(const train_progress *p, void *user) {
    progress_ctx *pc = user;
    if (pc->args->log_csv) {
        double tok = (double)p->step * pc->args->tc.batch * pc->args->tc.seq;
        trainlog_row r = {p->step, tok, p->loss, p->val_loss >= 0 ? p->val_loss : NAN, p->lr, time_now() - pc->t0};
        trainlog_add(&pc->log, &r);
    }
    save_periodic(pc, p->step);
    if (!is_root(pc->args)) return;
    int show = pc->tty || p->step % pc->every == 0 || p->step == p->steps || p->val_loss >= 0;
    if (!show) return;
    char eta[32];
    fmt_time(eta, sizeof eta, p->eta_s);
    fprintf(stderr, "%sstep %d/%d | loss %.4f | lr %.2e | %.0f tok/s | ETA %s", pc->tty ? "\r" : "",
            p->step, p->steps, p->loss, p->lr, p->tokens_per_s, eta);
    if (p->val_loss >= 0) fprintf(stderr, " | val %.4f%s", p->val_loss, pc->tty ? "\n" : "");
    if (!pc->tty) fputc('\n', stderr);
    if (pc->tty && p->step == p->steps) fputc('\n', stderr);
}

_Static_assert(TASK_KINDS == sizeof(((ckpt_schedule *)0)->mix) / sizeof(float),
               "the checkpoint stores one mix fraction per task");

/* --mix-loss and --mix-length as the checkpoint's mix flags. */
static int mix_flags_of(const train_args *a) {
    return (a->mix_loss ? CKPT_MIX_ANSWERS : 0) | (a->mix_length ? CKPT_MIX_VARIED : 0);
}

/* The schedule this run trains with, as a checkpoint stores it. */
static ckpt_schedule schedule_of(const train_args *a, const run_heads *rh) {
    const train_config *t = &a->tc;
    ckpt_schedule s = {t->batch, t->seq, t->steps, t->warmup, t->lr, t->min_lr, t->clip,
                       t->opt.weight_decay, t->opt.beta1, t->opt.beta2, t->opt.eps, a->seed, {0}, 0, 0, 0};
    for (int i = 0; i < TASK_KINDS; i++) s.mix[i] = a->mix.frac[i];
    s.mix_flags = mix_flags_of(a);
    s.dense_warmup = rh->on ? a->dense_warmup : 0;
    s.plan_hash = rh->on ? rh->plan_hash : 0;
    return s;
}

/* A resumed run must have the attention it was started with: dense, or the same plan and
 * warm-up (the checkpoint holds the plan's hash, not its text). */
static int check_attn(const train_args *a, const ckpt_schedule *was, const ckpt_schedule *now, const char *cmd) {
    if (was->plan_hash != now->plan_hash) {
        const char *w = !was->plan_hash ? "dense attention" : "--attn sparse with another plan";
        if (!now->plan_hash)
            return cli_fail(cmd, "--resume %s: the checkpoint's run has --attn sparse:PLAN, this one dense "
                                 "attention (expected the same --attn, or --override-schedule)", a->resume);
        return cli_fail(cmd, "--resume %s: the checkpoint's run has %s, this one --attn sparse:%s (expected "
                             "the same --attn, or --override-schedule)", a->resume, w, a->sparse_plan);
    }
    if (was->dense_warmup != now->dense_warmup)
        return cli_fail(cmd, "--resume %s: the checkpoint's run has --dense-warmup %d, this one %d (expected "
                             "the same schedule, or --override-schedule)", a->resume, was->dense_warmup,
                        now->dense_warmup);
    return 0;
}

/* A changed --mix: the batches differ from the run that was started. */
static int check_mix(const train_args *a, const ckpt_schedule *was, const char *cmd) {
    task_mix w = {.seed = 0};
    for (int i = 0; i < TASK_KINDS; i++) w.frac[i] = was->mix[i];
    if (!memcmp(w.frac, a->mix.frac, sizeof w.frac)) {
        int now = mix_flags_of(a), diff = now ^ was->mix_flags;
        if (!diff) return 0;
        int ans = diff & CKPT_MIX_ANSWERS, f = ans ? CKPT_MIX_ANSWERS : CKPT_MIX_VARIED;
        const char *on = ans ? "answers" : "varied", *off = ans ? "all" : "full";
        return cli_fail(cmd, "--resume %s: the checkpoint's run has %s %s, this one %s (expected the same "
                             "schedule, or --override-schedule)", a->resume, ans ? "--mix-loss" : "--mix-length",
                        was->mix_flags & f ? on : off, now & f ? on : off);
    }
    char x[128], y[128];
    task_mix_format(&w, x, sizeof x);
    task_mix_format(&a->mix, y, sizeof y);
    return cli_fail(cmd, "--resume %s: the checkpoint's run has --mix %s, this one %s (expected the "
                         "same schedule, or --override-schedule)", a->resume, x, y);
}

/* %g, or %.9g where %g would print two different values alike. */
static void fmt_pair(char *a, char *b, size_t n, double x, double y) {
    snprintf(a, n, "%g", x);
    snprintf(b, n, "%g", y);
    if (!strcmp(a, b)) snprintf(a, n, "%.9g", x), snprintf(b, n, "%.9g", y);
}

/* The first schedule flag that differs from the checkpoint's: a resumed run continues the
 * run that was started, so another schedule is refused unless --override-schedule. */
static int check_schedule(const train_args *a, const ckpt_schedule *was, const char *cmd, const run_heads *rh) {
    ckpt_schedule now = schedule_of(a, rh);
    const struct { const char *flag; double was, now; } f[] = {
        {"--batch", was->batch, now.batch},   {"--seq", was->seq, now.seq},
        {"--steps", was->steps, now.steps},   {"--warmup", was->warmup, now.warmup},
        {"--lr", was->lr, now.lr},            {"--min-lr", was->min_lr, now.min_lr},
        {"--clip", was->clip, now.clip},      {"--wd", was->weight_decay, now.weight_decay},
        {"--beta2", was->beta2, now.beta2},   {"beta1", was->beta1, now.beta1},
        {"eps", was->eps, now.eps}};
    char x[40], y[40];
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].was != f[i].now) {
            fmt_pair(x, y, sizeof x, f[i].was, f[i].now);
            return cli_fail(cmd, "--resume %s: the checkpoint's run has %s %s, this one %s "
                                 "(expected the same schedule, or --override-schedule)",
                            a->resume, f[i].flag, x, y);
        }
    if (was->seed != now.seed)
        return cli_fail(cmd, "--resume %s: the checkpoint's run has --seed %" PRIu64 ", this one "
                             "%" PRIu64 " (expected the same schedule, or --override-schedule)",
                        a->resume, was->seed, now.seed);
    return check_mix(a, was, cmd) || check_attn(a, was, &now, cmd);
}

/* The checks of --resume past its shape: the schedule and the steps left. Without
 * optimizer state the run starts at step 0 (say_fresh_optimizer tells the user). Frees m
 * on failure. */
static int check_resume(const train_args *a, const char *cmd, gpt_model *m, train_state *st,
                        const run_heads *rh) {
    if (st->has_optim && st->has_schedule && !a->override_schedule &&
        check_schedule(a, &st->sched, cmd, rh))
        return gpt_free(m), 1;
    int end = a->tc.stop_at > 0 ? a->tc.stop_at : a->tc.steps;
    if (st->has_optim && st->step >= end) {
        cli_fail(cmd, "--%s %d: %s has already done %d steps", a->tc.stop_at > 0 ? "stop-at" : "steps",
                 end, a->resume, st->step);
        return gpt_free(m), 1;
    }
    if (!st->has_optim) st->step = 0, rng_seed(&st->rng, a->seed ^ 0x5eedULL);
    return 0;
}

/* Resuming weights without AdamW moments is a different run than the user may think. */
static void say_fresh_optimizer(const char *cmd, const char *resume) {
    fprintf(stderr, "sattn %s: note: ", cmd);
    cli_fput_escaped(resume, stderr);
    fputs(" holds no optimizer state (an llm.c checkpoint never does): training starts "
          "at step 0 with a fresh AdamW from its weights\n", stderr);
}

/* The kind of head whose AdamW state the heads file does not keep, or NULL: mlp heads,
 * cmp=1 heads (their gates) and shared indexers (they train by KL, finetune.h). */
static const char *plan_unresumable(const head_spec *specs, int n) {
    for (int i = 0; i < n; i++) {
        if (specs[i].sel != SEL_DENSE && specs[i].fn == HFN_MLP) return "mlp heads";
        if (specs[i].sel != SEL_DENSE && specs[i].cmp) return "cmp=1 heads (compressed-branch gates)";
    }
    for (int i = 0; i < n; i++)
        if (specs[i].shared) return "shared indexers (shared=1)";
    return NULL;
}

/* The plan for the model's shape c, and its heads, initialised from the seed (on --resume
 * too: the selectors do not train, and a plan with trainable heads is refused there, so
 * re-creating them is exact). Nothing for a dense run. 0 or an exit status. */
static int heads_setup(const train_args *a, const char *cmd, const gpt_config *c, run_heads *rh) {
    memset(rh, 0, sizeof *rh);
    if (!a->sparse_plan) return 0;
    int n = c->layers * c->heads;
    head_spec *specs = xmalloc((size_t)n * sizeof *specs);
    sattn_err e;
    if (plan_load(a->sparse_plan, c->layers, c->heads, specs, &e) != 0)
        return free(specs), cli_fail(cmd, "--attn sparse:PLAN: %s", e.msg);
    int sparse = 0;
    for (int i = 0; i < n; i++) sparse += specs[i].sel != SEL_DENSE;
    if (!sparse)
        return free(specs), cli_fail(cmd, "--attn sparse:%s: the plan makes every head dense (expected at least "
                                          "one sparse head, or a dense run)", a->sparse_plan);
    const char *kind = plan_unresumable(specs, n);
    if (a->resume && kind)
        return free(specs), cli_fail(cmd, "--resume %s: the plan has %s, whose AdamW state is not saved "
                                          "(expected a plan without them to resume, or a fresh run)", a->resume, kind);
    char *text = plan_format(specs, c->layers, c->heads);
    rh->plan_hash = fnv1a64(text, strlen(text), FNV1A64_INIT);
    rh->plan_hash += !rh->plan_hash; /* 0 stands for a dense run */
    free(text);
    rng_t r;
    rng_seed(&r, a->seed ^ 0x5a7e5eedULL);
    sparse_heads_create(&rh->sh, c->layers, c->heads, c->channels / c->heads, c->max_seq, specs, &r);
    free(specs);
    rh->on = 1;
    rh->all_sparse = hybrid_all_sparse(&rh->sh);
    return 0;
}

static void heads_free(run_heads *rh) {
    if (rh->on) sparse_heads_free(&rh->sh);
    rh->on = 0;
}

/* The memory check of the run. A sparse run adds the hook's buffers; its all-sparse phase
 * needs no T x T buffer (GPT_ATTN_HOOK), its dense warm-up the dense kernel's. */
static int train_mem_check(const train_args *a, const char *cmd, const gpt_config *c, const dataset *d,
                           const run_heads *rh) {
    double data = (double)d->n_tokens * sizeof *d->tokens;
    int B = a->tc.batch, T = a->tc.seq;
    if (!rh->on) return cli_mem_check_model(cmd, "training this model", c, B, T, 1, data);
    hybrid hy;
    hybrid_init(&hy, &rh->sh, c->channels, c->heads);
    double hook = hybrid_mem_bytes(&hy, B, T, omp_get_max_threads());
    hybrid_free(&hy);
    gpt_config sc = *c;
    sc.attn = rh->all_sparse ? GPT_ATTN_HOOK : GPT_ATTN_NAIVE;
    if (a->dense_warmup > 0 && cli_mem_check_hooked(cmd, "the dense warm-up of this model", c, B, T, 1, data, hook))
        return 1;
    return cli_mem_check_hooked(cmd, "training this model with its sparse heads", &sc, B, T, 1, data, hook);
}

/* The model: fresh from flags, or resumed from a checkpoint whose shape wins; with
 * --attn sparse:PLAN its heads (rh). */
static int setup_model(const train_args *a, const dataset *d, const char *cmd, gpt_model *m,
                       train_state *st, run_heads *rh) {
    sattn_err e;
    memset(rh, 0, sizeof *rh);
    if (a->init_from) { /* a new run from its weights: sparse heads fresh from the plan, as at step 0 */
        int rc = train_init_from(a, d, cmd, m, st);
        if (rc || !a->sparse_plan) return rc;
        if (heads_setup(a, cmd, &m->cfg, rh)) return gpt_free(m), 1;
        m->cfg.attn = cli_attn_resolve(a->cfg.attn, a->tc.seq, !rh->all_sparse);
        if (train_mem_check(a, cmd, &m->cfg, d, rh)) return heads_free(rh), gpt_free(m), 1;
        return 0;
    }
    if (a->resume) {
        if (ckpt_load(a->resume, m, st, &e) != 0) return cli_fail(cmd, "%s", e.msg);
        m->cfg.attn = cli_attn_resolve(a->cfg.attn, a->tc.seq, 0); /* a run setting, not saved */
        const gpt_config *c = &m->cfg;
        int clash = a->shape_given && (c->layers != a->cfg.layers || c->heads != a->cfg.heads ||
                                       c->channels != a->cfg.channels);
        const char *why = clash ? "--layers/--heads/--dim differ"
                          : a->tc.seq > c->max_seq ? "--seq is longer than its context"
                          : d->vocab > c->vocab ? "the data's vocabulary is larger" : NULL;
        if (why) {
            cli_fail(cmd, "--resume %s: model (L%d H%d C%d T%d V%d) does not fit: %s", a->resume,
                     c->layers, c->heads, c->channels, c->max_seq, c->vocab, why);
            return gpt_free(m), 1;
        }
        if (train_pos_resumed(a, cmd, m)) return gpt_free(m), 1;
        if (heads_setup(a, cmd, c, rh)) return gpt_free(m), 1;
        if (rh->on) m->cfg.attn = cli_attn_resolve(a->cfg.attn, a->tc.seq, !rh->all_sparse);
        if (check_resume(a, cmd, m, st, rh)) return heads_free(rh), 1;
        if (train_mem_check(a, cmd, c, d, rh)) return heads_free(rh), gpt_free(m), 1;
        return 0;
    }
    gpt_config c = a->cfg;
    c.attn = cli_attn_resolve(a->cfg.attn, a->tc.seq, 0);
    c.max_seq = a->tc.seq;
    c.vocab = d->vocab;
    c.padded_vocab = gpt_padded_vocab(d->vocab);
    train_pos_fresh(a, &c);
    if (gpt_config_check(&c, &e) != 0) return cli_fail(cmd, "model: %s", e.msg);
    if (heads_setup(a, cmd, &c, rh)) return 1;
    /* the dense warm-up's kernel; a plan with dense heads needs naive for them */
    if (rh->on) c.attn = cli_attn_resolve(a->cfg.attn, a->tc.seq, !rh->all_sparse);
    if (train_mem_check(a, cmd, &c, d, rh)) return heads_free(rh), 1;
    gpt_create(m, &c);
    rng_t init;
    rng_seed(&init, a->seed);
    gpt_init_random(m, &init);
    st->has_optim = 0;
    st->step = 0;
    rng_seed(&st->rng, a->seed ^ 0x5eedULL);
    return 0;
}

static void print_summary(const train_args *a, const gpt_model *m, const train_result *r) {
    double bpb = r->val_loss / log(2.0);
    char mix[128];
    task_mix_format(&a->mix, mix, sizeof mix);
    if (a->json) {
        printf("{\"steps\": %d, \"params\": %zu, \"train_loss\": %.6f, \"val_loss\": %.6f, "
               "\"%s\": %.6f, \"val_tokens\": %zu, \"tokens_per_s\": %.1f, \"wall_s\": %.2f, "
               "\"out\": \"%s\"",
               r->steps_done, m->num_params, r->train_loss, r->val_loss,
               r->is_bytes ? "bits_per_byte" : "bits_per_token", bpb, r->val_tokens,
               r->tokens_per_s, r->wall_s, a->out);
        if (task_mix_any(&a->mix))
            printf(", \"mix\": \"%s\", \"mix_loss\": \"%s\", \"mix_length\": \"%s\"", mix,
                   a->mix_loss ? "answers" : "all", a->mix_length ? "varied" : "full");
        if (a->sparse_plan) {
            printf(", \"attn\": \"sparse\", \"dense_warmup\": %d, \"heads_out\": ", a->dense_warmup);
            cli_json_str(a->heads_out);
        }
        if (a->dist && a->dist->size > 1)
            printf(", \"ranks\": %d, \"zero\": %d, \"bytes_all_reduced_per_step\": %.0f", a->dist->size, a->zero,
                   r->sync_bytes);
        printf("}\n");
        return;
    }
    printf("steps %d\nparams %zu\ntrain_loss %.4f\nval_loss %.4f\n%s %.4f\ntokens_per_s %.0f\nwall_s %.1f\n",
           r->steps_done, m->num_params, r->train_loss, r->val_loss, r->is_bytes ? "bits_per_byte" : "bits_per_token",
           bpb, r->tokens_per_s, r->wall_s);
    if (task_mix_any(&a->mix))
        printf("mix %s%s%s\n", mix, a->mix_loss ? " (loss on the answers only)" : "",
               a->mix_length ? " (varied lengths)" : "");
    if (a->dist && a->dist->size > 1)
        printf("ranks %d (zero %d), %.0f bytes all-reduced per step\n", a->dist->size, a->zero, r->sync_bytes);
    if (a->sparse_plan) {
        printf("attn sparse (dense warm-up %d steps), heads ", a->dense_warmup);
        cli_fput_escaped(a->heads_out, stdout);
        putchar('\n');
    }
}

/* The whole validation split after the run, and the checks that keep a non-finite
 * model from being written: 0, or -1 with e. */
static int final_val_loss(gpt_model *m, const dataset *d, const train_args *a, int step, train_result *res,
                          gradsync *sync, sattn_err *e) {
    int b = a->tc.batch / (sync ? sync->dist->size : 1); /* this rank's rows, as in training */
    res->val_loss = eval_split_loss_dist(m, d, SPLIT_VAL, a->tc.seq, b, 0, &res->val_tokens, sync);
    if (!isfinite(res->val_loss))
        return err_set(e, "diverged: validation loss %s after step %d", isnan(res->val_loss) ? "nan" : "inf", step);
    return gpt_check_finite(m, e);
}

/* What the loaded data must allow (a window of each split, the task mix) and the outputs
 * being distinct from each other and from the data. 0 or an exit status. */
static int run_checks(const train_args *a, const char *cmd, const dataset *d) {
    sattn_err e;
    if (dataset_check_window(d, SPLIT_TRAIN, a->tc.seq, a->data, &e) ||
        dataset_check_window(d, SPLIT_VAL, a->tc.seq, a->data, &e))
        return cli_fail(cmd, "%s", e.msg);
    task_mix want = a->mix;
    want.varied_length = a->mix_length;
    if (task_mix_check(&want, d, a->tc.seq, &e)) return cli_fail(cmd, "--mix: %s", e.msg);
    if ((a->mix_loss || a->mix_length) && !task_mix_any(&a->mix))
        return cli_fail(cmd, "%s: there are no task rows without --mix (e.g. --mix passkey:0.5)",
                        a->mix_loss ? "--mix-loss answers" : "--mix-length varied");
    cli_file outs[] = {{"--out", a->out}, {"--heads-out", a->heads_out}, {"--log-csv", a->log_csv}, {NULL, NULL}};
    cli_file ins[] = {{"--data", a->data}, {NULL, NULL}};
    return cli_check_outputs(cmd, outs, ins);
}

/* Data, checks and the model (fresh, resumed or --init-from) with its heads: 0, or an
 * exit status with everything freed. Under mpirun the data-parallel checks too. */
static int train_setup(const train_args *a, const char *cmd, dataset *d, gpt_model *m, train_state *st,
                       run_heads *rh) {
    sattn_err e;
    if (job_check_batch(a->dist, cmd, a->tc.batch) || data_mem_check(cmd, a->data)) return 1;
    if (dataset_load_as(d, a->data, a->data_fmt, &e) != 0) return cli_fail(cmd, "%s", e.msg);
    int rc = run_checks(a, cmd, d);
    if (!rc) rc = job_check_windows(a->dist, cmd, a->data, d, a->tc.seq, 0, "the validation split");
    if (!rc && a->tc.eval_every > 0)
        rc = job_check_windows(a->dist, cmd, a->data, d, a->tc.seq, (size_t)a->tc.eval_tokens,
                               "--eval-tokens of the validation split");
    if (!rc) rc = setup_model(a, d, cmd, m, st, rh);
    if (rc) dataset_free(d);
    return rc;
}

/* The final save: rank 0 writes the heads, the checkpoint (ZeRO-1's moments gathered
 * first, by every rank) and the log. 0 or an exit status. */
static int train_save(const train_args *a, const char *cmd, progress_ctx *pc, gradsync *gs, run_heads *rh) {
    sattn_err e;
    train_state *save_st = a->format == CKPT_SATTN ? pc->st : NULL;
    gradsync_gather_moments(gs, pc->m);
    int rc = 0;
    if (is_root(a)) { /* rank 0 writes */
        if (rh->on && heads_save(a->heads_out, &rh->sh, &pc->m->cfg, &e)) rc = cli_fail(cmd, "%s", e.msg);
        else rc = ckpt_save(a->out, a->format, pc->m, save_st, &e) ? cli_fail(cmd, "%s", e.msg) : save_log(pc) ? 1 : 0;
    }
    gradsync_release_moments(gs, pc->m);
    return rc;
}

/* The training loop with its progress, the final validation loss into res. */
static int train_loop(const train_args *a, gpt_model *m, train_state *st, dataset *d, run_heads *rh,
                      progress_ctx *pc, gradsync *gs, train_result *res, sattn_err *e) {
    int first = st->step;
    float train_loss;
    task_mix mix = a->mix;
    mix.seed = a->seed;
    mix.answers_only = a->mix_loss;
    mix.varied_length = a->mix_length;
    train_config tc = a->tc;
    tc.mix = task_mix_any(&mix) ? &mix : NULL;
    tc.sync = gs->dist->size > 1 ? gs : NULL;
    sparse_train spt;
    if (rh->on) sparse_train_init(&spt, &rh->sh, m, a->dense_warmup), tc.extra = &spt.extra, spt.dist = a->dist;
    res->sync_bytes = gradsync_bytes_per_step(m, rh->on ? spt.hy.n_params : 0);
    int rc = train_run(m, st, d, &tc, on_progress, pc, &train_loss, e);
    /* the final loss is the sparse model's, as `loss --heads` reloads it (also after a
     * --stop-at inside the warm-up) */
    if (rh->on) sparse_train_use(&spt, m, 1);
    res->train_loss = train_loss;
    double train_s = time_now() - pc->t0;
    res->steps_done = st->step;
    res->tokens_per_s = (double)(st->step - first) * a->tc.batch * a->tc.seq / (train_s > 0 ? train_s : 1);
    if (!rc) rc = final_val_loss(m, d, a, st->step, res, tc.sync, e);
    if (rh->on) sparse_train_free(&spt, m);
    return rc;
}

int train_execute_result(const train_args *a, const char *cmd, train_result *res) {
    sattn_err e;
    dataset d;
    gpt_model m;
    train_state st;
    run_heads rh;
    if (a->threads > 0) omp_set_num_threads(a->threads);
    int mine = train_setup(a, cmd, &d, &m, &st, &rh);
    int rc = a->dist ? dist_agree(a->dist, mine, cmd) : mine; /* the first collective: no rank left waiting */
    if (rc && !mine) heads_free(&rh), gpt_free(&m), dataset_free(&d);
    if (rc) return rc;
    dist_ctx one = {.size = 1};
    dist_ctx *dist = a->dist ? a->dist : &one;
    if (job_check_same(dist, cmd, &m, &st, a->resume ? "--resume" : a->init_from ? "--init-from" : "--seed"))
        return heads_free(&rh), gpt_free(&m), dataset_free(&d), 1;
    if (is_root(a)) cli_data_note(a->data, &d); /* the first line, once nothing can fail before training */
    if (is_root(a) && a->resume && !st.has_optim) say_fresh_optimizer(cmd, a->resume);
    st.has_schedule = 1; /* what this run trains with: the next --resume continues it */
    st.sched = schedule_of(a, &rh);
    gradsync gs;
    gradsync_init(&gs, dist, a->zero, &m);
    progress_ctx pc = {isatty(2), a->tc.steps / 20 > 0 ? a->tc.steps / 20 : 1, a->save_every, 0, 0,
                       a, &m, &st, &rh, {0}, time_now(), &gs};
    rc = train_loop(a, &m, &st, &d, &rh, &pc, &gs, res, &e);
    res->wall_s = time_now() - pc.t0;
    res->is_bytes = d.is_bytes;
    /* the last row carries the final loss over the whole validation split */
    if (!rc && pc.log.n) pc.log.rows[pc.log.n - 1].val_loss = (float)res->val_loss;
    if (rc) rc = is_root(a) ? (diverged_fail(&pc, cmd, e.msg), save_log(&pc), 1) : 1; /* the curve up to it */
    else rc = train_save(a, cmd, &pc, &gs, &rh);
    if (!rc && !a->no_summary && is_root(a)) print_summary(a, &m, res);
    gradsync_free(&gs);
    heads_free(&rh);
    trainlog_free(&pc.log);
    gpt_free(&m);
    dataset_free(&d);
    return rc;
}

int train_execute(const train_args *a, const char *cmd) {
    train_result r;
    return train_execute_result(a, cmd, &r);
}

/* Sizes for people: 4.1 MB, 812.3 kB, 120 bytes. */
static void fmt_bytes(char *buf, size_t n, double b) {
    if (b >= 1e9) snprintf(buf, n, "%.1f GB", b / 1e9);
    else if (b >= 1e6) snprintf(buf, n, "%.1f MB", b / 1e6);
    else if (b >= 1e3) snprintf(buf, n, "%.1f kB", b / 1e3);
    else snprintf(buf, n, "%.0f bytes", b);
}

void cli_data_note(const char *path, const dataset *d) {
    char size[32];
    fmt_bytes(size, sizeof size, d->is_bytes ? (double)d->n_tokens : 1024.0 + 2.0 * d->n_tokens);
    fputs("data: ", stderr);
    cli_fput_escaped(path, stderr);
    if (d->is_bytes) fprintf(stderr, " read as bytes (%s, vocab 256)\n", size);
    else if (d->from_text) fprintf(stderr, " read as text, encoded into %zu GPT-2 tokens (vocab %d)\n", d->n_tokens,
                                   d->vocab);
    else fprintf(stderr, " read as llm.c tokens (%s, %zu tokens, vocab %d)\n", size, d->n_tokens,
                 d->vocab);
}

int load_data_for_model(const char *cmd, const char *path, data_format fmt, const gpt_model *m,
                        dataset *d) {
    return load_data_for_model_vocab(cmd, path, fmt, NULL, m, d);
}

int load_data_for_model_vocab(const char *cmd, const char *path, data_format fmt, const char *vocab,
                              const gpt_model *m, dataset *d) {
    sattn_err e;
    if (data_mem_check(cmd, path)) return 1;
    if (dataset_load_as(d, path, fmt, &e) != 0) return cli_fail(cmd, "%s", e.msg);
    if (cli_text_for_model(cmd, vocab, m->cfg.vocab, d)) return 1;
    for (size_t i = 0; i < d->n_tokens; i++)
        if (d->tokens[i] >= m->cfg.vocab) {
            int tok = d->tokens[i];
            dataset_free(d);
            return cli_fail(cmd, "%s: token %d at position %zu is outside the model's vocabulary (%d)",
                            path, tok, i, m->cfg.vocab);
        }
    return 0;
}

int load_data_checked(const char *cmd, const char *path, data_format fmt, const gpt_model *m,
                      const char *what, int B, int T, int training, dataset *d) {
    return load_data_checked_vocab(cmd, path, fmt, NULL, m, what, B, T, training, d);
}

int load_data_checked_vocab(const char *cmd, const char *path, data_format fmt, const char *vocab,
                            const gpt_model *m, const char *what, int B, int T, int training, dataset *d) {
    if (load_data_for_model_vocab(cmd, path, fmt, vocab, m, d)) return 1;
    if (cli_mem_check_model(cmd, what, &m->cfg, B, T, training, (double)d->n_tokens * sizeof *d->tokens))
        return dataset_free(d), 1;
    return 0;
}
