/* Native sparse training (docs/native_sparse.md) at the library level:
 *  - GPT_ATTN_HOOK (an all-sparse model, no T x T buffer) computes bit for bit what the
 *    same hook computes on a naive model, and allocates neither att nor the backward's
 *    attention scratch;
 *  - its activation estimate (and the hook's buffers) grow linearly in T, naive's as T^2;
 *  - the whole model's gradient through the sparse heads (head function -> q, k, v of
 *    the selected keys -> projections -> embeddings) matches central finite differences
 *    of the loss, for every parameter whose perturbation leaves every selection as it was
 *    (the selection is discrete: across a change of it the loss jumps);
 *  - train_run with sparse_train: the dense warm-up switches to the sparse heads at the
 *    given step, and a run stopped and continued is the same run. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/finetune.h"
#include "sattn/hybrid.h"
#include "sattn/model.h"
#include "sattn/plan.h"
#include "sattn/train.h"

#define L 2
#define H 2
#define C 16
#define T 12
#define V 40
#define B 2

/* Every head sparse, each kind of head at least once; every selection a real subset. */
#define ALL_SPARSE "L0H0:block+softmax:b=4,n=2; L0H1:index+softmax:k=3; L1H0:index+mlp:k=4,hidden=8; " \
                   "L1H1:block+softmax:b=2,n=3"

static void make_model(gpt_model *m, int attn, rng_t *r) {
    gpt_config c = {T, V, V, L, H, C, attn, GPT_POS_LEARNED, 0, 0};
    gpt_create(m, &c);
    gpt_init_random(m, r);
    /* larger weights than GPT-2's init, so attention (and its gradient) is far from uniform */
    for (size_t i = 0; i < m->num_params; i++) m->params_mem[i] *= 5.0f;
}

static void make_heads(sparse_heads *sh, const char *plan, rng_t *r) {
    head_spec specs[L * H];
    sattn_err e;
    cr_assert_eq(plan_parse(plan, NULL, L, H, specs, &e), 0, "%s", e.msg);
    sparse_heads_create(sh, L, H, C / H, T, specs, r);
}

static void batch(int *in, int *tg, rng_t *r) {
    for (int i = 0; i < B * T; i++) in[i] = (int)rng_below(r, V), tg[i] = (int)rng_below(r, V);
}

Test(native, hook_mode_equals_naive_with_hook) {
    gpt_model m[2];
    sparse_heads sh;
    hybrid hy[2];
    rng_t r;
    int in[B * T], tg[B * T];
    for (int k = 0; k < 2; k++) {
        rng_seed(&r, 31);
        make_model(&m[k], k ? GPT_ATTN_HOOK : GPT_ATTN_NAIVE, &r);
    }
    make_heads(&sh, ALL_SPARSE, &r);
    batch(in, tg, &r);
    cr_assert(hybrid_all_sparse(&sh));
    for (int k = 0; k < 2; k++) {
        hybrid_init(&hy[k], &sh, C, H);
        hybrid_enable_param_grads(&hy[k]);
        hybrid_attach(&hy[k], &m[k]);
        gpt_forward(&m[k], in, tg, B, T);
        gpt_zero_grad(&m[k]);
        gpt_backward(&m[k]);
    }
    cr_assert_not_null(m[0].acts.att);
    cr_assert_null(m[1].acts.att, "GPT_ATTN_HOOK allocated the T x T buffer");
    cr_assert_null(m[1].acts.lse);
    cr_assert_null(m[1].grad_acts.att_scratch);
    cr_assert_eq(m[0].mean_loss, m[1].mean_loss);
    size_t nl = (size_t)B * T * m[0].cfg.padded_vocab;
    cr_assert(!memcmp(m[0].acts.logits, m[1].acts.logits, nl * sizeof(float)));
    cr_assert(!memcmp(m[0].grads_mem, m[1].grads_mem, m[0].num_params * sizeof(float)));
    cr_assert(!memcmp(hy[0].dparams, hy[1].dparams, hy[0].n_params * sizeof(float)));
    for (int k = 0; k < 2; k++) hybrid_detach(&m[k]), hybrid_free(&hy[k]), gpt_free(&m[k]);
    sparse_heads_free(&sh);
}

/* A hook-mode model with a plan that has a dense head cannot run: the dense head has no
 * T x T buffer. That is a programming error, caught (hybrid dies), never a silent misread;
 * here only the planner's side: hybrid_all_sparse says no. */
Test(native, mixed_plan_is_not_all_sparse) {
    rng_t r;
    rng_seed(&r, 3);
    sparse_heads sh;
    make_heads(&sh, "L0H0:block+softmax:b=4,n=2; *:dense", &r);
    cr_assert(!hybrid_all_sparse(&sh));
    sparse_heads_free(&sh);
}

/* The --max-mem estimate: an all-sparse model's activations grow linearly in T (naive's
 * with T^2), and so do the hook's own buffers for a block plan (fixed keys per query). */
Test(native, memory_linear_in_T) {
    gpt_config c = {16384, 256, 256, 4, 4, 128, GPT_ATTN_HOOK, GPT_POS_ROPE, 10000.0f, 1.0f};
    double hook[3], naive[3];
    int Ts[3] = {2048, 4096, 8192};
    for (int i = 0; i < 3; i++) {
        c.attn = GPT_ATTN_HOOK;
        hook[i] = gpt_mem_estimate(&c, 4, Ts[i], 1).acts;
        c.attn = GPT_ATTN_NAIVE;
        naive[i] = gpt_mem_estimate(&c, 4, Ts[i], 1).acts;
    }
    for (int i = 1; i < 3; i++) {
        cr_assert(hook[i] / hook[i - 1] < 2.001, "hook activations grow %.3fx from T=%d to %d", hook[i] / hook[i - 1],
                  Ts[i - 1], Ts[i]);
        cr_assert(naive[i] / naive[i - 1] > 3.0, "naive activations grow only %.3fx", naive[i] / naive[i - 1]);
    }
    /* the T x T buffer alone: L*B*H*T^2 floats */
    cr_assert(naive[2] - hook[2] >= 4.0 * 4 * 4 * 4 * 8192.0 * 8192.0);
    head_spec specs[16];
    sattn_err e;
    cr_assert_eq(plan_parse("all:block+softmax:b=16,n=4", NULL, 4, 4, specs, &e), 0, "%s", e.msg);
    sparse_heads sh;
    rng_t r;
    rng_seed(&r, 1);
    sparse_heads_create(&sh, 4, 4, 32, 16384, specs, &r);
    hybrid hy;
    hybrid_init(&hy, &sh, 128, 4);
    double hb[3];
    for (int i = 0; i < 3; i++) hb[i] = hybrid_mem_bytes(&hy, 4, Ts[i], 2);
    for (int i = 1; i < 3; i++)
        cr_assert(hb[i] / hb[i - 1] < 2.01, "hook buffers grow %.3fx from T=%d to %d", hb[i] / hb[i - 1], Ts[i - 1],
                  Ts[i]);
    /* and they are small next to what they replace */
    cr_assert(hb[2] < 0.05 * (naive[2] - hook[2]), "hook buffers %g bytes", hb[2]);
    hybrid_free(&hy);
    sparse_heads_free(&sh);
}

/* ---- the gradient through the sparse heads, against finite differences ---- */

/* Every selection of the last forward (idx and count rows of every head and row). */
typedef struct {
    int *v;
    size_t n;
} selection;

static void selection_take(const hybrid *hy, selection *s) {
    size_t n = 0;
    for (int pass = 0; pass < 2; pass++) {
        n = 0;
        for (int l = 0; l < L; l++)
            for (int h = 0; h < H; h++)
                for (int b = 0; b < B; b++) {
                    int kmax;
                    const int *count, *idx = hybrid_idx(hy, l, h, b, &kmax, &count);
                    for (int t = 0; t < T; t++) {
                        if (pass) s->v[n] = count[t];
                        n++;
                        for (int j = 0; j < count[t]; j++, n++)
                            if (pass) s->v[n] = idx[t * kmax + j];
                    }
                }
        if (!pass) s->v = malloc(n * sizeof(int)), s->n = n;
    }
}

static int selection_same(const hybrid *hy, const selection *s) {
    selection now;
    selection_take(hy, &now);
    int same = now.n == s->n && !memcmp(now.v, s->v, s->n * sizeof(int));
    free(now.v);
    return same;
}

static double loss_at(gpt_model *m, const int *in, const int *tg) {
    gpt_forward(m, in, tg, B, T);
    double s = 0;
    for (int i = 0; i < B * T; i++) s += m->acts.losses[i];
    return s / (B * T);
}

/* Central differences of the whole model's loss for parameters upstream of every sparse
 * head: the token embedding, layer 0's and layer 1's q, k and v projections (weights and
 * biases), LayerNorm 1. Their gradient exists only through the head functions (no head
 * is dense), so a head function that dropped dq, dk or dv (or the gradient of an
 * unselected key) fails here. Perturbations that change any selection are skipped; the
 * test demands that most are checked. */
Test(native, whole_model_gradient_matches_fd, .timeout = 120) {
    rng_t r;
    rng_seed(&r, 41);
    gpt_model m;
    make_model(&m, GPT_ATTN_HOOK, &r);
    sparse_heads sh;
    make_heads(&sh, ALL_SPARSE, &r);
    int in[B * T], tg[B * T];
    batch(in, tg, &r);
    hybrid hy;
    hybrid_init(&hy, &sh, C, H);
    hybrid_enable_param_grads(&hy);
    hybrid_attach(&hy, &m);
    gpt_forward(&m, in, tg, B, T);
    gpt_zero_grad(&m);
    memset(hy.dparams, 0, hy.n_params * sizeof(float));
    gpt_backward(&m);
    selection base;
    selection_take(&hy, &base);
    float *g = malloc(m.num_params * sizeof(float));
    memcpy(g, m.grads_mem, m.num_params * sizeof(float));
    struct {
        const char *name;
        size_t off, n;
    } groups[] = {
        {"wte", (size_t)(m.params.wte - m.params_mem), (size_t)V * C},
        {"qkvw L0 (q rows)", (size_t)(m.params.qkvw - m.params_mem), (size_t)C * C},
        {"qkvw L0 (k rows)", (size_t)(m.params.qkvw - m.params_mem) + (size_t)C * C, (size_t)C * C},
        {"qkvw L0 (v rows)", (size_t)(m.params.qkvw - m.params_mem) + (size_t)2 * C * C, (size_t)C * C},
        {"qkvw L1 (k rows)", (size_t)(m.params.qkvw - m.params_mem) + (size_t)4 * C * C, (size_t)C * C},
        {"qkvw L1 (v rows)", (size_t)(m.params.qkvw - m.params_mem) + (size_t)5 * C * C, (size_t)C * C},
        {"qkvb L1", (size_t)(m.params.qkvb - m.params_mem) + 3 * C, 3 * C},
        {"ln1w L0", (size_t)(m.params.ln1w - m.params_mem), C},
    };
    int checked = 0, skipped = 0;
    double worst = 0.0;
    for (size_t k = 0; k < sizeof groups / sizeof groups[0]; k++) {
        int here = 0;
        for (size_t j = 0; j < groups[k].n; j += groups[k].n / 11 + 1) {
            /* a smaller step when the larger one moves a selection (float noise grows) */
            float *p = m.params_mem + groups[k].off + j, old = *p, eps = 1e-2f;
            double lp = 0, lm = 0;
            int same = 0;
            for (int tries = 0; tries < 3 && !same; tries++, eps *= 0.2f) {
                *p = old + eps;
                lp = loss_at(&m, in, tg);
                same = selection_same(&hy, &base);
                *p = old - eps;
                lm = loss_at(&m, in, tg);
                same = same && selection_same(&hy, &base);
                *p = old;
            }
            eps /= 0.2f;
            if (!same) {
                skipped++;
                continue;
            }
            /* the loss is a float forward: its rounding (~1e-7 relative) over 2 eps bounds
             * what the difference can resolve */
            double fd = (lp - lm) / (2 * eps), an = g[groups[k].off + j];
            double tol = 3e-2 * fabs(fd) + 1e-6 * fabs(lp) / eps;
            worst = fmax(worst, fabs(fd - an) / tol);
            cr_assert(fabs(fd - an) <= tol, "%s[%zu]: finite difference %g, analytic %g (eps %g)", groups[k].name, j,
                      fd, an, eps);
            checked++, here++;
        }
        cr_assert(here >= 3, "%s: only %d of its perturbations left the selection unchanged", groups[k].name, here);
    }
    cr_assert(checked >= 5 * skipped, "checked %d, skipped %d (selection changed)", checked, skipped);
    cr_log_info("whole-model FD: %d parameters checked, %d skipped, worst error / tolerance %.2g", checked, skipped,
                worst);
    free(base.v), free(g);
    hybrid_detach(&m);
    hybrid_free(&hy);
    sparse_heads_free(&sh);
    gpt_free(&m);
}

/* ---- train_run with sparse_train ---- */

typedef struct {
    const hybrid *hy;
    const gpt_model *m;
    long sparse_at[8]; /* the hook's sparse layer forwards after each step */
    int attn_at[8];    /* the model's attention mode during each step */
} watch;

static void on_step(const train_progress *p, void *user) {
    watch *w = user;
    w->sparse_at[p->step - 1] = w->hy->fwd_sparse;
    w->attn_at[p->step - 1] = w->m->cfg.attn;
}

/* Steps before the warm-up's end run no sparse head (and the dense kernel), every step from
 * it on runs them in every layer (all-sparse: GPT_ATTN_HOOK); after the run the model is
 * dense again (sparse_train_free restores it). */
Test(native, dense_warmup_switches_at_its_step, .timeout = 60) {
    rng_t r;
    rng_seed(&r, 51);
    gpt_model m;
    make_model(&m, GPT_ATTN_NAIVE, &r);
    sparse_heads sh;
    make_heads(&sh, ALL_SPARSE, &r);
    char *text = malloc(6000);
    for (int i = 0; i < 6000; i++) text[i] = (char)((i * 7 + i / 13) % V); /* tokens < V */
    dataset d;
    dataset_from_bytes(&d, (const uint8_t *)text, 6000);
    train_config tc = train_config_default();
    tc.batch = B, tc.seq = T, tc.steps = 6, tc.warmup = 1;
    sparse_train s;
    sparse_train_init(&s, &sh, &m, 4);
    tc.extra = &s.extra;
    train_state st = {0};
    rng_seed(&st.rng, 9);
    watch w = {&s.hy, &m, {0}, {0}};
    sattn_err e;
    cr_assert_eq(train_run(&m, &st, &d, &tc, on_step, &w, NULL, &e), 0, "%s", e.msg);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(w.sparse_at[i], i < 4 ? 0 : (long)(i - 3) * L, "after step %d: %ld sparse layer forwards", i + 1,
                     w.sparse_at[i]);
        cr_assert_eq(w.attn_at[i], i < 4 ? GPT_ATTN_NAIVE : GPT_ATTN_HOOK, "step %d", i + 1);
    }
    sparse_train_free(&s, &m);
    cr_assert_null(m.attn);
    cr_assert_eq(m.cfg.attn, GPT_ATTN_NAIVE);
    dataset_free(&d);
    free(text);
    sparse_heads_free(&sh);
    gpt_free(&m);
}

/* ---- DSA: the shared indexer trains by KL, detached from the model (lindex.h) ---- */

#define SHARED "all:index+softmax:k=4,r=8,j=2,shared=1"

static void text_dataset(dataset *d, char *text, int n) {
    for (int i = 0; i < n; i++) text[i] = (char)((i * 7 + i / 13) % V);
    dataset_from_bytes(d, (const uint8_t *)text, (size_t)n);
}

/* Mean KL per row of the layers' indexers on fixed activations qkv, dense targets. */
static double indexer_kl(sparse_heads *sh, const float *qkv) {
    lindex_trainer lt;
    lindex_trainer_init(&lt, sh, 0);
    double kl = lindex_trainer_grad(&lt, sh, qkv, B, T, NULL, NULL, 1);
    lindex_trainer_free(&lt);
    return kl;
}

/* During the dense warm-up the indexer learns (its KL to the layer's attention on a fixed
 * batch falls) and the model trains bit for bit as without it: the indexer's loss sends no
 * gradient into the model, and the model's clipping does not see the indexer. */
Test(native, dsa_warmup_trains_indexer_detached, .timeout = 60) {
    rng_t r;
    rng_seed(&r, 61);
    gpt_model m, ref;
    make_model(&m, GPT_ATTN_NAIVE, &r);
    rng_seed(&r, 61);
    make_model(&ref, GPT_ATTN_NAIVE, &r);
    sparse_heads sh;
    make_heads(&sh, SHARED, &r);
    char text[6000];
    dataset d;
    text_dataset(&d, text, 6000);
    int in[B * T], tg[B * T];
    batch(in, tg, &r);
    gpt_forward(&m, in, tg, B, T);
    size_t nq = (size_t)L * B * T * 3 * C;
    float *qkv = malloc(nq * sizeof(float));
    memcpy(qkv, m.acts.qkv, nq * sizeof(float));
    double before = indexer_kl(&sh, qkv);
    train_config tc = train_config_default();
    tc.batch = B, tc.seq = T, tc.steps = 30, tc.warmup = 1, tc.lr = 3e-3f;
    sparse_train s;
    sparse_train_init(&s, &sh, &m, 30);
    tc.extra = &s.extra;
    train_state st = {0}, st2 = {0};
    rng_seed(&st.rng, 9), rng_seed(&st2.rng, 9);
    sattn_err e;
    cr_assert_eq(train_run(&m, &st, &d, &tc, NULL, NULL, NULL, &e), 0, "%s", e.msg);
    sparse_train_free(&s, &m);
    tc.extra = NULL;
    cr_assert_eq(train_run(&ref, &st2, &d, &tc, NULL, NULL, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(memcmp(m.params_mem, ref.params_mem, m.num_params * sizeof(float)), 0,
                 "the indexer changed the model's dense training");
    double after = indexer_kl(&sh, qkv);
    cr_assert_lt(after, 0.9 * before, "indexer KL %g -> %g", before, after);
    free(qkv);
    dataset_free(&d);
    sparse_heads_free(&sh);
    gpt_free(&m), gpt_free(&ref);
}

/* After the warm-up it keeps training on the selected keys (its parameters move, the KL is
 * finite), and the heads file holds what it learned. */
Test(native, dsa_sparse_phase_trains_on_selection, .timeout = 60) {
    rng_t r;
    rng_seed(&r, 62);
    gpt_model m;
    make_model(&m, GPT_ATTN_NAIVE, &r);
    sparse_heads sh;
    make_heads(&sh, SHARED, &r);
    char text[6000];
    dataset d;
    text_dataset(&d, text, 6000);
    train_config tc = train_config_default();
    tc.batch = B, tc.seq = T, tc.steps = 6, tc.warmup = 1;
    sparse_train s;
    sparse_train_init(&s, &sh, &m, 3);
    tc.extra = &s.extra;
    train_state st = {0};
    rng_seed(&st.rng, 9);
    sattn_err e;
    tc.stop_at = 3;
    cr_assert_eq(train_run(&m, &st, &d, &tc, NULL, NULL, NULL, &e), 0, "%s", e.msg);
    size_t n = sh.h[0].n_sel;
    float *w3 = malloc(n * sizeof(float));
    memcpy(w3, sh.h[0].params, n * sizeof(float));
    tc.stop_at = 0;
    cr_assert_eq(train_run(&m, &st, &d, &tc, NULL, NULL, NULL, &e), 0, "%s", e.msg);
    cr_assert(isfinite(s.indexer_kl) && s.indexer_kl >= 0.0, "KL %g", s.indexer_kl);
    cr_assert_neq(memcmp(w3, sh.h[0].params, n * sizeof(float)), 0, "the sparse phase did not train it");
    sparse_train_free(&s, &m);
    free(w3);
    dataset_free(&d);
    sparse_heads_free(&sh);
    gpt_free(&m);
}
