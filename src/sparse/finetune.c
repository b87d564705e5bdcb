/* finetune: end-to-end training of the hybrid model (finetune.h). */
#include "sattn/finetune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/hybrid.h"

/* Sum of squares of the head-parameter gradients (fixed order: deterministic). */
static double sumsq(const float *g, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return s;
}

/* AdamW on every sparse head's parameters (no weight decay; clip factor fused). */
static void heads_update(sparse_heads *sh, const hybrid *hy, float *mom, float lr, int t, float scale) {
    adamw_config opt = {0.9f, 0.99f, 1e-8f, 0.0f};
    for (int i = 0; i < sh->layers * sh->heads; i++) {
        sparse_head *sp = &sh->h[i];
        size_t off = hy->off_p[i];
        if (sp->spec.sel == SEL_DENSE || sp->n_fn == 0) continue;
        /* only the head function learns from the LM loss; the selector is discrete */
        adamw_update(sp->params + sp->n_sel, hy->dparams + off + sp->n_sel, mom + off + sp->n_sel,
                     mom + hy->n_params + off + sp->n_sel, sp->n_fn, lr, &opt, 0, t, scale);
    }
}

float finetune_run(gpt_model *m, sparse_heads *sh, train_state *st, const dataset *d,
                   const train_config *tc, train_progress_fn fn, void *user) {
    const gpt_config *c = &m->cfg;
    int B = tc->batch, T = tc->seq;
    hybrid hy;
    hybrid_init(&hy, sh, c->channels, c->heads);
    hybrid_enable_param_grads(&hy);
    float *mom = xcalloc(2 * hy.n_params + 1, sizeof(float));
    int *in = xmalloc((size_t)B * T * sizeof(int)), *tg = xmalloc((size_t)B * T * sizeof(int));
    float last = NAN;
    double t0 = time_now();
    int first = st->step;
    hybrid_attach(&hy, m);
    while (st->step < tc->steps) {
        dataset_batch(d, SPLIT_TRAIN, B, T, &st->rng, in, tg);
        gpt_forward(m, in, tg, B, T);
        gpt_zero_grad(m);
        memset(hy.dparams, 0, hy.n_params * sizeof(float));
        gpt_backward(m);
        float gn = gpt_grad_norm(m);
        float norm = (float)sqrt((double)gn * gn + sumsq(hy.dparams, hy.n_params));
        float lr = lr_schedule(st->step, tc->steps, tc->warmup, tc->lr, tc->min_lr);
        float scale = gpt_clip_scale(norm, tc->clip);
        gpt_update(m, lr, &tc->opt, st->step + 1, scale);
        heads_update(sh, &hy, mom, lr, st->step + 1, scale);
        st->step++;
        st->has_optim = 1;
        last = m->mean_loss;
        if (!fn) continue;
        double dt = time_now() - t0;
        int done = st->step - first;
        train_progress p = {st->step, tc->steps, last, lr, norm, (double)done * B * T / dt,
                            dt / done * (tc->steps - st->step), -1.0f};
        fn(&p, user);
    }
    hybrid_detach(m);
    free(mom), free(in), free(tg);
    hybrid_free(&hy);
    return last;
}
