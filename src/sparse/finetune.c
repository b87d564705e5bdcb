/* finetune: the sparse heads trained inside train_run (finetune.h). */
#include "sattn/finetune.h"

#include "sattn/gradsync.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void st_begin_step(void *ctx, gpt_model *m, int step) {
    sparse_train *s = ctx;
    s->m = m, s->step = step;
    sparse_train_use(s, m, step >= s->dense_warmup);
}

/* The selection the sparse phase ran for layer l (one per layer: head 0's buffers). */
static const int *st_selection(void *ctx, int l, int b, int *kmax, const int **count) {
    const sparse_train *s = ctx;
    return hybrid_idx(&s->hy, l, 0, b, kmax, count);
}

/* The shared indexers' step on this step's activations (DSA; finetune.h): dense targets
 * in the warm-up, the selected keys after it. -1, or 0 with `what` naming the layer. */
static int indexer_update(sparse_train *s, float lr, int t, char *what, size_t n) {
    if (!lindex_trainer_any(&s->lt)) return -1;
    int sparse = s->step >= s->dense_warmup;
    const gpt_model *m = s->m;
    s->indexer_kl = lindex_trainer_grad(&s->lt, s->sh, m->acts.qkv, m->B, m->T, sparse ? st_selection : NULL, s,
                                        s->seed ^ (uint64_t)s->step * 0x2545f4914f6cdd1dULL);
    lindex_trainer_mean_ranks(&s->lt, s->dist, &s->indexer_kl);
    int bad = lindex_trainer_update(&s->lt, s->sh, lr, t);
    if (bad < 0 && isfinite(s->indexer_kl)) return -1;
    snprintf(what, n, "the shared indexer of layer %d", bad < 0 ? 0 : bad);
    return 0;
}

static void st_zero_grad(void *ctx) {
    sparse_train *s = ctx;
    memset(s->hy.dparams, 0, s->hy.n_params * sizeof(float));
}

static double st_grad_sumsq(void *ctx) {
    sparse_train *s = ctx;
    return sumsq(s->hy.dparams, s->hy.n_params);
}

static float *st_grads(void *ctx, size_t *n) {
    sparse_train *s = ctx;
    *n = s->hy.n_params;
    return s->hy.dparams;
}

static int st_update(void *ctx, float lr, int t, float scale, char *what, size_t n) {
    sparse_train *s = ctx;
    int bad = heads_update(s->sh, &s->hy, s->mom, lr, t, scale);
    if (bad < 0) return indexer_update(s, lr, t, what, n);
    snprintf(what, n, "the parameters of head L%dH%d", bad / s->sh->heads, bad % s->sh->heads);
    return 0;
}

void sparse_train_init(sparse_train *s, sparse_heads *sh, const gpt_model *m, int dense_warmup) {
    memset(s, 0, sizeof *s);
    s->sh = sh;
    hybrid_init(&s->hy, sh, m->cfg.channels, m->cfg.heads);
    hybrid_enable_param_grads(&s->hy);
    s->mom = xcalloc(2 * s->hy.n_params + 1, sizeof(float));
    s->dense_warmup = dense_warmup > 0 ? dense_warmup : 0;
    s->dense_attn = m->cfg.attn;
    s->sparse_attn = hybrid_all_sparse(sh) ? GPT_ATTN_HOOK : GPT_ATTN_NAIVE;
    s->extra = (train_extra){s, st_begin_step, st_zero_grad, st_grad_sumsq, st_update, st_grads};
    lindex_trainer_init(&s->lt, sh, SPARSE_TRAIN_INDEXER_ROWS);
    s->seed = 0x15de7ULL;
}

void sparse_train_use(sparse_train *s, gpt_model *m, int on) {
    if (on) hybrid_attach(&s->hy, m);
    else hybrid_detach(m);
    m->cfg.attn = on ? s->sparse_attn : s->dense_attn;
}

void sparse_train_free(sparse_train *s, gpt_model *m) {
    if (m) sparse_train_use(s, m, 0);
    hybrid_free(&s->hy);
    lindex_trainer_free(&s->lt);
    free(s->mom);
    memset(s, 0, sizeof *s);
}

int finetune_run(gpt_model *m, sparse_heads *sh, train_state *st, const dataset *d,
                 const train_config *tc, train_progress_fn fn, void *user, float *last_loss,
                 sattn_err *e) {
    sparse_train s;
    sparse_train_init(&s, sh, m, 0);
    s.dist = tc->sync ? tc->sync->dist : NULL;
    train_config t = *tc;
    t.extra = &s.extra;
    int rc = train_run(m, st, d, &t, fn, user, last_loss, e);
    sparse_train_free(&s, m);
    return rc;
}
