/* Running a training job for `train` and `demo`: setup, progress, summary. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"

typedef struct {
    int tty, every;
    int save_every, save_failed; /* --save-every: checkpoint to out every N steps */
    int saved_step;              /* the step of the last periodic checkpoint (0: none) */
    const train_args *args;
    gpt_model *m;
    train_state *st;
} progress_ctx;

static void fmt_time(char *buf, size_t n, double s) {
    if (s >= 3600) snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

/* Periodic checkpoint (atomic, so an interrupted run leaves the previous one intact). */
static void save_periodic(progress_ctx *pc, int step) {
    if (pc->save_every <= 0 || step % pc->save_every != 0 || pc->save_failed) return;
    sattn_err e;
    const train_state *st = pc->args->format == CKPT_SATTN ? pc->st : NULL;
    if (gpt_check_finite(pc->m, &e) != 0 || ckpt_save(pc->args->out, pc->args->format, pc->m, st, &e) != 0) {
        cli_fail("train", "%s", e.msg);
        pc->save_failed = 1;
    } else {
        pc->saved_step = step;
    }
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
    save_periodic(pc, p->step);
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

/* The model: fresh from flags, or resumed from a checkpoint whose shape wins. */
static int setup_model(const train_args *a, const dataset *d, const char *cmd, gpt_model *m,
                       train_state *st) {
    sattn_err e;
    if (a->resume) {
        if (ckpt_load(a->resume, m, st, &e) != 0) return cli_fail(cmd, "%s", e.msg);
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
        int end = a->tc.stop_at > 0 ? a->tc.stop_at : a->tc.steps;
        if (st->has_optim && st->step >= end) {
            cli_fail(cmd, "--%s %d: %s has already done %d steps", a->tc.stop_at > 0 ? "stop-at" : "steps",
                     end, a->resume, st->step);
            return gpt_free(m), 1;
        }
        if (!st->has_optim) st->step = 0, rng_seed(&st->rng, a->seed ^ 0x5eedULL);
        if (cli_mem_check_model(cmd, "training this model", c, a->tc.batch, a->tc.seq, 1,
                                (double)d->n_tokens * sizeof *d->tokens))
            return gpt_free(m), 1;
        return 0;
    }
    gpt_config c = a->cfg;
    c.max_seq = a->tc.seq;
    c.vocab = d->vocab;
    c.padded_vocab = gpt_padded_vocab(d->vocab);
    if (gpt_config_check(&c, &e) != 0) return cli_fail(cmd, "model: %s", e.msg);
    if (cli_mem_check_model(cmd, "training this model", &c, a->tc.batch, a->tc.seq, 1,
                            (double)d->n_tokens * sizeof *d->tokens))
        return 1;
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
    if (a->json) {
        printf("{\"steps\": %d, \"params\": %zu, \"train_loss\": %.6f, \"val_loss\": %.6f, "
               "\"%s\": %.6f, \"val_tokens\": %zu, \"tokens_per_s\": %.1f, \"wall_s\": %.2f, "
               "\"out\": \"%s\"}\n",
               r->steps_done, m->num_params, r->train_loss, r->val_loss,
               r->is_bytes ? "bits_per_byte" : "bits_per_token", bpb, r->val_tokens,
               r->tokens_per_s, r->wall_s, a->out);
        return;
    }
    printf("steps %d\nparams %zu\ntrain_loss %.4f\nval_loss %.4f\n%s %.4f\ntokens_per_s %.0f\nwall_s %.1f\n",
           r->steps_done, m->num_params, r->train_loss, r->val_loss, r->is_bytes ? "bits_per_byte" : "bits_per_token",
           bpb, r->tokens_per_s, r->wall_s);
}

/* The whole validation split after the run, and the checks that keep a non-finite
 * model from being written: 0, or -1 with e. */
static int final_val_loss(gpt_model *m, const dataset *d, const train_args *a, int step, train_result *res,
                          sattn_err *e) {
    res->val_loss = eval_split_loss(m, d, SPLIT_VAL, a->tc.seq, a->tc.batch, 0, &res->val_tokens);
    if (!isfinite(res->val_loss))
        return err_set(e, "diverged: validation loss %s after step %d", isnan(res->val_loss) ? "nan" : "inf", step);
    return gpt_check_finite(m, e);
}

int train_execute_result(const train_args *a, const char *cmd, train_result *res) {
    sattn_err e;
    dataset d;
    if (a->threads > 0) omp_set_num_threads(a->threads);
    if (dataset_load(&d, a->data, &e) != 0) return cli_fail(cmd, "%s", e.msg);
    gpt_model m;
    train_state st;
    int rc = dataset_check_window(&d, SPLIT_TRAIN, a->tc.seq, a->data, &e) ||
             dataset_check_window(&d, SPLIT_VAL, a->tc.seq, a->data, &e);
    if (rc) rc = cli_fail(cmd, "%s", e.msg);
    if (!rc) {
        cli_file outs[] = {{"--out", a->out}, {NULL, NULL}};
        cli_file ins[] = {{"--data", a->data}, {NULL, NULL}};
        rc = cli_check_outputs(cmd, outs, ins);
    }
    if (!rc) rc = setup_model(a, &d, cmd, &m, &st);
    if (rc) return dataset_free(&d), rc;
    progress_ctx pc = {isatty(2), a->tc.steps / 20 > 0 ? a->tc.steps / 20 : 1, a->save_every, 0, 0,
                       a, &m, &st};
    int first = st.step;
    double t0 = time_now();
    float train_loss;
    rc = train_run(&m, &st, &d, &a->tc, on_progress, &pc, &train_loss, &e);
    res->train_loss = train_loss;
    double train_s = time_now() - t0;
    res->steps_done = st.step;
    res->tokens_per_s = (double)(st.step - first) * a->tc.batch * a->tc.seq / (train_s > 0 ? train_s : 1);
    if (!rc) rc = final_val_loss(&m, &d, a, st.step, res, &e);
    res->wall_s = time_now() - t0;
    res->is_bytes = d.is_bytes;
    train_state *save_st = a->format == CKPT_SATTN ? &st : NULL;
    if (rc) rc = diverged_fail(&pc, cmd, e.msg);
    else rc = ckpt_save(a->out, a->format, &m, save_st, &e) ? cli_fail(cmd, "%s", e.msg) : 0;
    if (!rc) print_summary(a, &m, res);
    gpt_free(&m);
    dataset_free(&d);
    return rc;
}

int train_execute(const train_args *a, const char *cmd) {
    train_result r;
    return train_execute_result(a, cmd, &r);
}

int load_data_for_model(const char *cmd, const char *path, const gpt_model *m, dataset *d) {
    sattn_err e;
    if (dataset_load(d, path, &e) != 0) return cli_fail(cmd, "%s", e.msg);
    for (size_t i = 0; i < d->n_tokens; i++)
        if (d->tokens[i] >= m->cfg.vocab) {
            int tok = d->tokens[i];
            dataset_free(d);
            return cli_fail(cmd, "%s: token %d at position %zu is outside the model's vocabulary (%d)",
                            path, tok, i, m->cfg.vocab);
        }
    return 0;
}
