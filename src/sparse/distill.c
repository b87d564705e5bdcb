/* distill: online distillation of sparse heads from the dense teacher (distill.h). */
#include "sattn/distill.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/lindex.h"
#include "sattn/nn.h"
#include "sattn/train.h"

distill_config distill_config_default(void) {
    return (distill_config){.steps = 300, .batch = 8, .seq = 0, .warmup = 20, .lr = 3e-3f,
                            .min_lr = 3e-4f, .seed = 1337};
}

/* Everything one head needs during distillation, allocated once. */
typedef struct {
    int i;                /* head index l*H + h */
    float *dp, *m, *v;    /* gradient and AdamW moments of its params */
    float *dout;
    head_scratch s;
    int bad;              /* 1: non-finite loss or gradient (not applied); 2: the update left a
                           * non-finite parameter or moment; else 0 */
    float loss, gnorm;    /* of the diverged step, for the error */
} head_trainer;

/* The head's gradient is dp (n_sel + n_fn floats of one block over all heads, so the
 * ranks of a data-parallel run all-reduce it in one call). */
static void trainer_init(head_trainer *ht, const sparse_heads *sh, int i, int T, float *dp) {
    const sparse_head *sp = &sh->h[i];
    size_t n = sp->n_sel + sp->n_fn;
    ht->i = i;
    ht->dp = dp;
    ht->m = xcalloc(n + 1, sizeof(float));
    ht->v = xcalloc(n + 1, sizeof(float));
    ht->dout = xmalloc((size_t)T * sh->hs * sizeof(float));
    head_scratch_init(&ht->s, &sp->spec, sh->hs, T, sh->max_seq);
}

static void trainer_free(head_trainer *ht) {
    free(ht->m), free(ht->v), free(ht->dout);
    head_scratch_free(&ht->s);
}

/* MSE of the mlp head on one sequence; dout = d(mean_t ||o_t - target_t||^2) / d o. */
static double mlp_step(const sparse_head *sp, head_trainer *ht, int hs, int max_seq, const float *q,
                       int C, int T, const float *target, int ldt, double scale) {
    int ld = 3 * C;
    head_scratch_select(&ht->s, &sp->spec, sp->params, hs, max_seq, q, q + C, ld, T);
    headfn_forward(&sp->spec, sp->params + sp->n_sel, hs, ht->s.kmax, q, q + C, q + 2 * C, ld, T,
                   ht->s.idx, ht->s.count, ht->s.out, hs, ht->s.cache);
    double loss = 0.0;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < hs; i++) {
            float e = ht->s.out[(size_t)t * hs + i] - target[(size_t)t * ldt + i];
            loss += (double)e * e;
            ht->dout[(size_t)t * hs + i] = (float)(2.0 * e * scale);
        }
    headfn_backward(&sp->spec, sp->params + sp->n_sel, ht->dp + sp->n_sel, hs, ht->s.kmax, q, q + C,
                    q + 2 * C, ld, NULL, NULL, NULL, T, ht->s.idx, ht->s.count, ht->dout, hs, ht->s.cache);
    return loss;
}

/* The gradient of head ht on the teacher activations of the last forward (this rank's
 * rows): dp, and the mean losses per query. */
static void head_grad(const gpt_model *tm, sparse_heads *sh, head_trainer *ht, double *sel_loss, double *fn_loss) {
    const gpt_config *c = &tm->cfg;
    sparse_head *sp = &sh->h[ht->i];
    int l = ht->i / c->heads, h = ht->i % c->heads, B = tm->B, T = tm->T, C = c->channels, hs = sh->hs;
    double scale = 1.0 / ((double)B * T), sl = 0.0, fl = 0.0;
    if (!tm->acts.att) die_at(__FILE__, __LINE__, "distillation needs the teacher's naive attention, not flash");
    memset(ht->dp, 0, (sp->n_sel + sp->n_fn) * sizeof(float));
    *sel_loss = *fn_loss = 0.0;
    if (sp->spec.shared) return; /* the layer's indexer trains in distill_shared; softmax has no params */
    for (int b = 0; b < B; b++) {
        const float *q = tm->acts.qkv + ((size_t)l * B + b) * T * 3 * C + h * hs;
        const float *P = tm->acts.att + (((size_t)l * B + b) * c->heads + h) * T * T;
        const float *o = tm->acts.atty + ((size_t)l * B + b) * T * C + h * hs;
        sl += selector_grad(&sp->spec, sp->params, ht->dp, hs, sh->max_seq, q, q + C, 3 * C, T, P, T, ht->s.work);
        if (sp->spec.fn == HFN_MLP) fl += mlp_step(sp, ht, hs, sh->max_seq, q, C, T, o, C, scale);
    }
    for (size_t i = 0; i < sp->n_sel; i++) ht->dp[i] *= (float)scale;
    *sel_loss = sl * scale;
    *fn_loss = fl * scale;
}

/* The AdamW step of head ht on its (all-reduced) gradient. */
static void head_apply(sparse_heads *sh, head_trainer *ht, float lr, int t, double sel_loss, double fn_loss) {
    sparse_head *sp = &sh->h[ht->i];
    size_t n = sp->n_sel + sp->n_fn;
    if (sp->spec.shared) return;
    double g2 = 0.0;
    for (size_t i = 0; i < n; i++) g2 += (double)ht->dp[i] * ht->dp[i];
    ht->loss = (float)(sel_loss + fn_loss), ht->gnorm = (float)sqrt(g2);
    /* a non-finite loss or gradient never reaches the parameters (train_run's rule) */
    if (!train_step_finite(ht->loss, ht->gnorm)) {
        ht->bad = 1;
        return;
    }
    adamw_config opt = {0.9f, 0.99f, 1e-8f, 0.0f};
    if (adamw_update(sp->params, ht->dp, ht->m, ht->v, n, lr, &opt, 0, t, 1.0f)) ht->bad = 2;
}

/* Data parallel: the heads' gradients (one block of n floats) and losses become their
 * means over the ranks (every rank ran the same number of rows). */
static void heads_mean_ranks(dist_ctx *d, float *dp, size_t n, double *sl, double *fl, int nh) {
    if (!d || d->size == 1) return;
    dist_mean_f32(d, dp, n);
    dist_mean_f64(d, sl, (size_t)nh);
    dist_mean_f64(d, fl, (size_t)nh);
}

/* The first diverged head (in head order, so the message does not depend on threads). */
static int distill_diverged(const sparse_heads *sh, const head_trainer *tr, int nh, int step, sattn_err *e) {
    for (int j = 0; j < nh; j++) {
        if (!tr[j].bad) continue;
        char who[32], what[64];
        snprintf(who, sizeof who, "head L%dH%d", tr[j].i / sh->heads, tr[j].i % sh->heads);
        snprintf(what, sizeof what, "the parameters of %s", who);
        if (tr[j].bad == 2) return train_diverged(e, step, NULL, tr[j].loss, tr[j].gnorm, what);
        return train_diverged(e, step, who, tr[j].loss, tr[j].gnorm, NULL);
    }
    return 0;
}

/* Query rows a shared indexer trains on per sequence: every row up to this length (the
 * target costs O(t C) a row in double), a stratified sample of this many beyond it. */
enum { DISTILL_SHARED_ROWS = 256 };

/* One step of the shared indexers (lindex.h) on the teacher's last forward: KL to the
 * layer's attention (heads summed), dense keys. -1 with e when it diverged. */
static int distill_shared(lindex_trainer *lt, const gpt_model *tm, sparse_heads *sh, float lr, int step,
                          uint64_t seed, dist_ctx *d, double *loss, sattn_err *e) {
    *loss = lindex_trainer_grad(lt, sh, tm->acts.qkv, tm->B, tm->T, NULL, NULL, seed ^ (uint64_t)step);
    lindex_trainer_mean_ranks(lt, d, loss);
    int bad = lindex_trainer_update(lt, sh, lr, step);
    if (!isfinite(*loss)) return train_diverged(e, step, "shared indexers", (float)*loss, NAN, NULL);
    if (bad < 0) return 0;
    char what[64];
    snprintf(what, sizeof what, "the shared indexer of layer %d", bad);
    return train_diverged(e, step, NULL, (float)*loss, NAN, what);
}

int distill_run(gpt_model *teacher, sparse_heads *sh, const dataset *d, const distill_config *dc,
                distill_progress_fn fn, void *user, sattn_err *e) {
    int rank = dc->dist ? dc->dist->rank : 0, ranks = dc->dist ? dc->dist->size : 1;
    int B = dc->batch, b = B / ranks, T = dc->seq > 0 ? dc->seq : teacher->cfg.max_seq, nh = sparse_heads_count(sh);
    head_trainer *tr = xcalloc((size_t)nh + 1, sizeof *tr);
    size_t ndp = 0;
    for (int i = 0; i < sh->layers * sh->heads; i++)
        if (sh->h[i].spec.sel != SEL_DENSE) ndp += sh->h[i].n_sel + sh->h[i].n_fn;
    float *dp = xcalloc(ndp + 1, sizeof(float));
    for (int i = 0, j = 0, o = 0; i < sh->layers * sh->heads; i++)
        if (sh->h[i].spec.sel != SEL_DENSE)
            trainer_init(&tr[j++], sh, i, T, dp + o), o += (int)(sh->h[i].n_sel + sh->h[i].n_fn);
    int *in = xmalloc((size_t)b * T * sizeof(int)), *tg = xmalloc((size_t)b * T * sizeof(int));
    double *sl = xcalloc((size_t)nh + 1, sizeof(double)), *fl = xcalloc((size_t)nh + 1, sizeof(double));
    rng_t rng;
    rng_seed(&rng, dc->seed ^ 0xd157ULL);
    lindex_trainer lt;
    lindex_trainer_init(&lt, sh, DISTILL_SHARED_ROWS);
    const gpt_attn_hook *saved = teacher->attn;
    teacher->attn = NULL; /* the teacher is always the dense model */
    double t0 = time_now();
    int rc = 0;
    for (int step = 0; step < dc->steps && !rc; step++) {
        dataset_batch_rows(d, SPLIT_TRAIN, B, T, rank * b, b, &rng, in, tg); /* this rank's rows */
        gpt_forward(teacher, in, NULL, b, T);
        float lr = lr_schedule(step, dc->steps, dc->warmup, dc->lr, dc->min_lr);
#pragma omp parallel for schedule(dynamic)
        for (int j = 0; j < nh; j++) head_grad(teacher, sh, &tr[j], &sl[j], &fl[j]);
        heads_mean_ranks(dc->dist, dp, ndp, sl, fl, nh);
#pragma omp parallel for schedule(dynamic)
        for (int j = 0; j < nh; j++) head_apply(sh, &tr[j], lr, step + 1, sl[j], fl[j]);
        if ((rc = distill_diverged(sh, tr, nh, step + 1, e)) != 0) continue;
        double lloss = 0.0;
        if (lindex_trainer_any(&lt) &&
            (rc = distill_shared(&lt, teacher, sh, lr, step + 1, dc->seed, dc->dist, &lloss, e)) != 0)
            continue;
        for (int j = 0; j < nh; j++)
            if (sh->h[tr[j].i].spec.shared) sl[j] = lt.loss[tr[j].i / sh->heads];
        if (!fn) continue;
        distill_progress p = {step + 1, dc->steps, 0, 0, 0, 0};
        int nsel = 0, nfn = 0;
        for (int j = 0; j < nh; j++) {
            const head_spec *s = &sh->h[tr[j].i].spec;
            if (s->sel != SEL_BLOCK) p.sel_loss += sl[j], nsel++;
            if (s->fn == HFN_MLP) p.fn_loss += fl[j], nfn++;
        }
        p.sel_loss /= nsel ? nsel : 1;
        p.fn_loss /= nfn ? nfn : 1;
        double dt = time_now() - t0;
        p.tokens_per_s = (double)(step + 1) * B * T / dt;
        p.eta_s = dt / (step + 1) * (dc->steps - step - 1);
        fn(&p, user);
    }
    teacher->attn = saved;
    lindex_trainer_free(&lt);
    for (int j = 0; j < nh; j++) trainer_free(&tr[j]);
    free(tr), free(dp), free(in), free(tg), free(sl), free(fl);
    return rc;
}
