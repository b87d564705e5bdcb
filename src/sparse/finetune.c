/* finetune: end-to-end training of the hybrid model (finetune.h). */
#include "sattn/finetune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/hybrid.h"

/* Sum of squares of the head-parameter gradients (fixed order: deterministic). */
static double sumsq(const float *g, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return s;
}

/* AdamW on every sparse head's parameters (no weight decay; clip factor fused). Returns
 * -1, or the first head whose update left a non-finite parameter or moment. */
static int heads_update(sparse_heads *sh, const hybrid *hy, float *mom, float lr, int t, float scale) {
    adamw_config opt = {0.9f, 0.99f, 1e-8f, 0.0f};
    int bad = -1;
    for (int i = 0; i < sh->layers * sh->heads; i++) {
        sparse_head *sp = &sh->h[i];
        size_t off = hy->off_p[i];
        if (sp->spec.sel == SEL_DENSE || sp->n_fn == 0) continue;
        /* only the head function learns from the LM loss; the selector is discrete */
        if (adamw_update(sp->params + sp->n_sel, hy->dparams + off + sp->n_sel, mom + off + sp->n_sel,
                         mom + hy->n_params + off + sp->n_sel, sp->n_fn, lr, &opt, 0, t, scale) &&
            bad < 0)
            bad = i;
    }
    return bad;
}

/* One step (the st->step+1-th, not counted here) of the model and the heads; *p gets the
 * progress numbers. 0, or -1 with e on divergence (train_run's rules: a non-finite loss or
 * gradient norm is not applied; an update that leaves a non-finite value stops the run). */
static int finetune_step(gpt_model *m, sparse_heads *sh, hybrid *hy, float *mom, train_state *st,
                         const dataset *d, const train_config *tc, int *in, int *tg, train_progress *p,
                         sattn_err *e) {
    int step = st->step + 1;
    dataset_batch(d, SPLIT_TRAIN, tc->batch, tc->seq, &st->rng, in, tg);
    gpt_forward(m, in, tg, tc->batch, tc->seq);
    gpt_zero_grad(m);
    memset(hy->dparams, 0, hy->n_params * sizeof(float));
    gpt_backward(m);
    float gn = gpt_grad_norm(m);
    p->grad_norm = (float)sqrt((double)gn * gn + sumsq(hy->dparams, hy->n_params));
    p->loss = m->mean_loss;
    p->lr = lr_schedule(st->step, tc->steps, tc->warmup, tc->lr, tc->min_lr);
    if (!train_step_finite(p->loss, p->grad_norm))
        return train_diverged(e, step, NULL, p->loss, p->grad_norm, NULL);
    float scale = gpt_clip_scale(p->grad_norm, tc->clip);
    int bad = gpt_update(m, p->lr, &tc->opt, step, scale);
    int badh = heads_update(sh, hy, mom, p->lr, step, scale);
    if (bad >= 0) return train_diverged(e, step, NULL, p->loss, p->grad_norm, gpt_param_name(bad));
    if (badh >= 0) {
        char what[64];
        snprintf(what, sizeof what, "the parameters of head L%dH%d", badh / sh->heads, badh % sh->heads);
        return train_diverged(e, step, NULL, p->loss, p->grad_norm, what);
    }
    return 0;
}

int finetune_run(gpt_model *m, sparse_heads *sh, train_state *st, const dataset *d,
                 const train_config *tc, train_progress_fn fn, void *user, float *last_loss,
                 sattn_err *e) {
    const gpt_config *c = &m->cfg;
    int B = tc->batch, T = tc->seq, rc = 0;
    hybrid hy;
    hybrid_init(&hy, sh, c->channels, c->heads);
    hybrid_enable_param_grads(&hy);
    float *mom = xcalloc(2 * hy.n_params + 1, sizeof(float));
    int *in = xmalloc((size_t)B * T * sizeof(int)), *tg = xmalloc((size_t)B * T * sizeof(int));
    if (last_loss) *last_loss = NAN;
    double t0 = time_now();
    int first = st->step;
    hybrid_attach(&hy, m);
    while (st->step < tc->steps) {
        train_progress p = {.steps = tc->steps, .val_loss = -1.0f};
        if ((rc = finetune_step(m, sh, &hy, mom, st, d, tc, in, tg, &p, e)) != 0) break;
        st->step++;
        st->has_optim = 1;
        if (last_loss) *last_loss = p.loss;
        if (!fn) continue;
        double dt = time_now() - t0;
        int done = st->step - first;
        p.step = st->step;
        p.tokens_per_s = (double)done * B * T / dt;
        p.eta_s = dt / done * (tc->steps - st->step);
        fn(&p, user);
    }
    hybrid_detach(m);
    free(mom), free(in), free(tg);
    hybrid_free(&hy);
    return rc;
}
