/* train: optimizer loop, evaluation over whole splits, sampling. */
#include "sattn/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/generate.h"
#include "sattn/gradsync.h"

_Static_assert(TASK_NO_TARGET == GPT_IGNORE, "task.h and model.h disagree on the ignored target");

train_config train_config_default(void) {
    train_config tc = {.batch = 12, .seq = 64, .steps = 2000, .warmup = 100, .lr = 1e-3f,
                       .min_lr = 1e-4f, .clip = 1.0f, .eval_every = 0, .eval_tokens = 8192};
    tc.opt = (adamw_config){.beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.1f};
    return tc;
}

int train_step_finite(float loss, float grad_norm) { return isfinite(loss) && isfinite(grad_norm); }

/* "nan" for any NaN (printf would say "-nan" for some), else the value. */
static const char *num_text(float x, char buf[32]) {
    if (isnan(x)) return "nan";
    snprintf(buf, 32, "%.4g", x);
    return buf;
}

int train_diverged(sattn_err *e, int step, const char *who, float loss, float grad_norm, const char *bad) {
    char l[32], g[32];
    if (bad)
        return err_set(e, "diverged at step %d: the update left %s non-finite (loss %s, gradient norm %s)",
                       step, bad, num_text(loss, l), num_text(grad_norm, g));
    return err_set(e, "diverged at step %d: %s%sloss %s (gradient norm %s)", step, who ? who : "",
                   who ? ": " : "", num_text(loss, l), num_text(grad_norm, g));
}

/* The ranks of the run: 1 and rank 0 without a gradsync. */
static int run_ranks(const train_config *tc, int *rank) {
    *rank = tc->sync ? tc->sync->dist->rank : 0;
    return tc->sync ? tc->sync->dist->size : 1;
}

/* The step's global loss and gradient norm (the model's and the extra's): over the ranks'
 * scored targets when data parallel (gradsync.h), this process's otherwise. */
static void step_loss_norm(gpt_model *m, const train_config *tc, train_progress *p) {
    const train_extra *x = tc->extra;
    gradsync *gs = tc->sync;
    p->loss = m->mean_loss;
    if (gs && gs->dist->size > 1) {
        double w = gradsync_weight(gs, m->n_targets), l = (double)m->mean_loss * w;
        dist_sum_f64(gs->dist, &l, 1);
        p->loss = (float)l;
        size_t nx = 0;
        float *xg = x && x->grads ? x->grads(x->ctx, &nx) : NULL;
        p->grad_norm = gradsync_reduce(gs, m, w, xg, nx);
    } else {
        p->grad_norm = gpt_grad_norm(m);
    }
    if (x) p->grad_norm = (float)sqrt((double)p->grad_norm * p->grad_norm + x->grad_sumsq(x->ctx));
}

/* One optimizer step (the st->step+1-th) on a fresh batch, not counted in st->step;
 * *p gets the numbers for the progress line. 0, or -1 with e when it diverged: a
 * non-finite loss or gradient norm never reaches the parameters, and an update that
 * leaves one non-finite (finite gradients can still overflow) stops the run too. Data
 * parallel, every decision here is made on global values: the ranks agree. */
static int train_step(gpt_model *m, train_state *st, const dataset *d, const train_config *tc,
                      int *inputs, int *targets, train_progress *p, sattn_err *e) {
    int step = st->step + 1, rank, n = run_ranks(tc, &rank), b = tc->batch / n;
    const train_extra *x = tc->extra;
    if (x && x->begin_step) x->begin_step(x->ctx, m, st->step);
    task_mix_batch_rows(tc->mix, d, st->step, tc->batch, tc->seq, rank * b, b, &st->rng, inputs, targets);
    gpt_forward(m, inputs, targets, b, tc->seq);
    gpt_zero_grad(m);
    if (x) x->zero_grad(x->ctx);
    gpt_backward(m);
    step_loss_norm(m, tc, p);
    p->lr = lr_schedule(st->step, tc->steps, tc->warmup, tc->lr, tc->min_lr);
    if (!train_step_finite(p->loss, p->grad_norm))
        return train_diverged(e, step, NULL, p->loss, p->grad_norm, NULL);
    float scale = gpt_clip_scale(p->grad_norm, tc->clip);
    int bad = tc->sync ? gradsync_update(tc->sync, m, p->lr, &tc->opt, step, scale)
                       : gpt_update(m, p->lr, &tc->opt, step, scale);
    char what[96] = "";
    int badx = x ? x->update(x->ctx, p->lr, step, scale, what, sizeof what) : -1;
    if (bad >= 0) return train_diverged(e, step, NULL, p->loss, p->grad_norm, gpt_param_name(bad));
    if (badx >= 0) return train_diverged(e, step, NULL, p->loss, p->grad_norm, what);
    return 0;
}

int train_run(gpt_model *m, train_state *st, const dataset *d, const train_config *tc,
              train_progress_fn fn, void *user, float *last_loss, sattn_err *e) {
    int rank, B = tc->batch / run_ranks(tc, &rank), T = tc->seq; /* this rank's rows */
    int *inputs = xmalloc((size_t)B * T * sizeof(int)), *targets = xmalloc((size_t)B * T * sizeof(int));
    double t0 = time_now();
    int rc = 0, first = st->step, end = tc->stop_at > 0 && tc->stop_at < tc->steps ? tc->stop_at : tc->steps;
    if (last_loss) *last_loss = NAN;
    while (st->step < end) {
        train_progress p = {.steps = tc->steps, .val_loss = -1.0f};
        if ((rc = train_step(m, st, d, tc, inputs, targets, &p, e)) != 0) break;
        if (last_loss) *last_loss = p.loss;
        p.step = st->step + 1;
        if (fn && tc->eval_every > 0 && (p.step % tc->eval_every == 0 || p.step == end)) {
            p.val_loss = (float)eval_split_loss_dist(m, d, SPLIT_VAL, T, B, (size_t)tc->eval_tokens, NULL, tc->sync);
            if (!isfinite(p.val_loss)) {
                char v[32];
                rc = err_set(e, "diverged at step %d: validation loss %s", p.step, num_text(p.val_loss, v));
                break;
            }
        }
        st->step++;
        st->has_optim = 1;
        if (!fn) continue;
        double dt = time_now() - t0;
        int done = st->step - first;
        p.tokens_per_s = (double)done * tc->batch * T / dt; /* the global batch: all ranks' tokens */
        p.eta_s = dt / done * (tc->steps - st->step);
        fn(&p, user);
    }
    free(inputs);
    free(targets);
    return rc;
}

/* Forward-only loss of nb windows of len tokens starting at x[off], x[off+len], ... */
static double windows_loss(gpt_model *m, const uint16_t *x, size_t off, int nb, int len, int *in,
                           int *tg) {
    for (int w = 0; w < nb; w++)
        for (int t = 0; t < len; t++) {
            in[w * len + t] = x[off + (size_t)w * len + t];
            tg[w * len + t] = x[off + (size_t)w * len + t + 1];
        }
    gpt_forward(m, in, tg, nb, len);
    return (double)m->mean_loss * nb * len;
}

/* The split's tokens (capped at max_tokens + 1), its predictions and its full windows. */
static const uint16_t *split_windows(const dataset *d, data_split s, int T, size_t max_tokens, size_t *preds,
                                     size_t *full) {
    size_t n;
    const uint16_t *x = dataset_split_tokens(d, s, &n);
    if (max_tokens > 0 && max_tokens + 1 < n) n = max_tokens + 1;
    *preds = n > 0 ? n - 1 : 0;
    *full = *preds / (size_t)T;
    return x;
}

size_t eval_split_windows(const dataset *d, data_split s, int T, size_t max_tokens) {
    size_t preds, full;
    split_windows(d, s, T, max_tokens, &preds, &full);
    return full;
}

/* Summed loss of the full windows w0 .. w1-1, B at a time, and of the tail-token window
 * after the last full one when tail > 0. */
static double windows_range_loss(gpt_model *m, const uint16_t *x, size_t w0, size_t w1, size_t full, int tail,
                                 int T, int B) {
    int *in = xmalloc((size_t)B * T * sizeof(int)), *tg = xmalloc((size_t)B * T * sizeof(int));
    double sum = 0.0;
    for (size_t w = w0; w < w1; w += (size_t)B) {
        int nb = w1 - w < (size_t)B ? (int)(w1 - w) : B;
        sum += windows_loss(m, x, w * (size_t)T, nb, T, in, tg);
    }
    if (tail > 0) sum += windows_loss(m, x, full * (size_t)T, 1, tail, in, tg);
    free(in);
    free(tg);
    return sum;
}

double eval_split_loss(gpt_model *m, const dataset *d, data_split s, int T, int B,
                       size_t max_tokens, size_t *tokens) {
    return eval_split_loss_dist(m, d, s, T, B, max_tokens, tokens, NULL);
}

double eval_split_loss_dist(gpt_model *m, const dataset *d, data_split s, int T, int B, size_t max_tokens,
                            size_t *tokens, gradsync *sync) {
    size_t preds, full;
    const uint16_t *x = split_windows(d, s, T, max_tokens, &preds, &full);
    int tail = (int)(preds % (size_t)T), rank = sync ? sync->dist->rank : 0, n = sync ? sync->dist->size : 1;
    size_t w0 = full * (size_t)rank / (size_t)n, w1 = full * (size_t)(rank + 1) / (size_t)n;
    double sum = windows_range_loss(m, x, w0, w1, full, rank == n - 1 ? tail : 0, T, B);
    if (n > 1) dist_sum_f64(sync->dist, &sum, 1);
    if (tokens) *tokens = preds;
    return preds ? sum / (double)preds : 0.0;
}

/* With the KV cache (generate.h). A hybrid attached as m->attn has no decode side here,
 * so it keeps the recompute (cmd_sample runs hybrids through gen_sample with
 * hybrid_decode.h's hook). */
void sample_tokens(gpt_model *m, int *ctx, int *len, int n, float temperature, rng_t *rng) {
    if (m->attn) {
        sample_tokens_recompute(m, ctx, len, n, temperature, rng);
        return;
    }
    gen_state g;
    gen_init(&g, m, NULL);
    gen_sample(&g, ctx, len, n, temperature, rng);
    gen_free(&g);
}

/* One full forward of the window per token: O(T^2) attention and O(T C^2) products per
 * token. The windows are gen_sample's (gen_window_start), so both see the same context. */
void sample_tokens_recompute(gpt_model *m, int *ctx, int *len, int n, float temperature, rng_t *rng) {
    const gpt_config *c = &m->cfg;
    int start = gen_window_start(0, *len, c->max_seq);
    for (int i = 0; i < n; i++) {
        int T = *len - start;
        gpt_forward(m, ctx + start, NULL, 1, T);
        const float *p = m->acts.probs + (size_t)(T - 1) * c->padded_vocab;
        ctx[(*len)++] = gen_sample_token(p, c->vocab, temperature, rng);
        start = gen_window_start(start, *len, c->max_seq);
    }
}
