/* Hybrid model: sparse heads inside the model's forward and backward.
 * With an index selector at k = T every key is selected, so a softmax head is
 * exactly dense attention: the hybrid loss and every gradient must equal the dense
 * model's. With a real subset, the hybrid's gradient must match central finite
 * differences of the hybrid loss for parameters that cannot change any selection
 * (those after the last attention, and the mlp head's own); the gradient through
 * the selected keys into q, k, v is covered by select_all_equals_dense here and by
 * the head-function finite-difference tests in test_sparse.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

static void make_model(gpt_model *m, rng_t *r) {
    gpt_config c = {T, V, V, L, H, C, GPT_ATTN_NAIVE, GPT_POS_LEARNED, 0, 0};
    gpt_create(m, &c);
    gpt_init_random(m, r);
    /* larger weights than GPT-2's init so attention is far from uniform */
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

/* A plan that keeps every key (k = T): the hybrid model is the dense model, loss and every
 * gradient. */
static void check_plan_equals_dense(const char *plan, unsigned seed) {
    rng_t r;
    rng_seed(&r, seed);
    gpt_model m;
    make_model(&m, &r);
    sparse_heads sh;
    make_heads(&sh, plan, &r);
    int in[B * T], tg[B * T];
    batch(in, tg, &r);
    gpt_forward(&m, in, tg, B, T);
    gpt_zero_grad(&m);
    gpt_backward(&m);
    float dense_loss = m.mean_loss;
    float *g = malloc(m.num_params * sizeof(float));
    memcpy(g, m.grads_mem, m.num_params * sizeof(float));
    hybrid hy;
    hybrid_init(&hy, &sh, C, H);
    hybrid_attach(&hy, &m);
    gpt_forward(&m, in, tg, B, T);
    gpt_zero_grad(&m);
    gpt_backward(&m);
    cr_assert(fabsf(m.mean_loss - dense_loss) <= 1e-5f * fabsf(dense_loss), "%s: loss %g vs dense %g", plan,
              m.mean_loss, dense_loss);
    double num = 0, den = 0;
    for (size_t i = 0; i < m.num_params; i++) {
        num += (double)(m.grads_mem[i] - g[i]) * (m.grads_mem[i] - g[i]);
        den += (double)g[i] * g[i];
    }
    cr_assert(sqrt(num / den) < 1e-5, "%s: hybrid grads differ from dense: rel %g", plan, sqrt(num / den));
    hybrid_detach(&m);
    hybrid_free(&hy);
    sparse_heads_free(&sh);
    gpt_free(&m);
    free(g);
}

Test(hybrid, select_all_equals_dense) { check_plan_equals_dense("all:index+softmax:k=12", 5); }

/* Loss of the hybrid model in double-accumulated float (the forward itself is float). */
static double loss_at(gpt_model *m, const int *in, const int *tg) {
    gpt_forward(m, in, tg, B, T);
    double s = 0;
    for (int i = 0; i < B * T; i++) s += m->acts.losses[i];
    return s / (B * T);
}

/* A real subset (k=3 of 12, block b=4 n=2, an mlp head): the analytic gradient of the
 * parameters after the last attention (lnf, last fc layers) and of the mlp head must
 * match finite differences; those perturbations cannot change any selection. */
Test(hybrid, subset_gradients_match_fd) {
    rng_t r;
    rng_seed(&r, 9);
    gpt_model m;
    make_model(&m, &r);
    sparse_heads sh;
    make_heads(&sh, "L0H0:index+softmax:k=3; L0H1:block+softmax:b=4,n=2; L1H0:index+mlp:k=4,hidden=8; *:dense", &r);
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
    /* last layer's fcproj weights and lnf: downstream of every attention */
    float *targets[] = {m.params.fcprojw + (size_t)(L - 1) * C * 4 * C, m.params.lnfw};
    float *grads[] = {m.grads.fcprojw + (size_t)(L - 1) * C * 4 * C, m.grads.lnfw};
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 6; j++) {
            float *p = targets[k] + j * 3, old = *p, eps = 1e-2f;
            *p = old + eps;
            double lp = loss_at(&m, in, tg);
            *p = old - eps;
            double lm = loss_at(&m, in, tg);
            *p = old;
            double fd = (lp - lm) / (2 * eps), an = grads[k][j * 3];
            cr_assert(fabs(fd - an) <= 2e-3 * fmax(1e-2, fabs(fd)), "param %d/%d: fd %g analytic %g", k, j, fd, an);
        }
    /* the mlp head's own parameters (selection does not depend on them) */
    sparse_head *sp = &sh.h[1 * H + 0];
    float *hp = sp->params + sp->n_sel, *hg = hy.dparams + hy.off_p[1 * H + 0] + sp->n_sel;
    for (size_t j = 0; j < sp->n_fn; j += sp->n_fn / 7 + 1) {
        float old = hp[j], eps = 1e-2f;
        hp[j] = old + eps;
        double lp = loss_at(&m, in, tg);
        hp[j] = old - eps;
        double lm = loss_at(&m, in, tg);
        hp[j] = old;
        double fd = (lp - lm) / (2 * eps);
        cr_assert(fabs(fd - hg[j]) <= 2e-3 * fmax(1e-2, fabs(fd)), "mlp param %zu: fd %g analytic %g", j, fd, hg[j]);
    }
    hybrid_detach(&m);
    hybrid_free(&hy);
    sparse_heads_free(&sh);
    gpt_free(&m);
}

/* ---- hybrid by length ---- */

/* Logits, loss and every parameter gradient of one forward/backward (m->attn as set). */
typedef struct {
    float loss;
    float *logits, *grads;
} fwd_out;

static void run_fwd(gpt_model *m, const int *in, const int *tg, int Tn, fwd_out *o) {
    gpt_forward(m, in, tg, B, Tn);
    gpt_zero_grad(m);
    gpt_backward(m);
    o->loss = m->mean_loss;
    size_t nl = (size_t)B * Tn * m->cfg.padded_vocab;
    o->logits = malloc(nl * sizeof(float));
    o->grads = malloc(m->num_params * sizeof(float));
    memcpy(o->logits, m->acts.logits, nl * sizeof(float));
    memcpy(o->grads, m->grads_mem, m->num_params * sizeof(float));
}

static void fwd_free(fwd_out *o) { free(o->logits), free(o->grads); }

static int fwd_same(const fwd_out *a, const fwd_out *b, const gpt_model *m, int Tn) {
    size_t nl = (size_t)B * Tn * m->cfg.padded_vocab;
    return a->loss == b->loss && !memcmp(a->logits, b->logits, nl * sizeof(float)) &&
           !memcmp(a->grads, b->grads, m->num_params * sizeof(float));
}

/* A real subset of keys (k=3, block b=4 n=2, an mlp head), so sparse != dense. Below the
 * threshold the hybrid must be the dense model bit for bit (forward and backward); at
 * and above it, bit for bit the hybrid without a threshold. */
Test(hybrid, dense_below_threshold_exact) {
    rng_t r;
    rng_seed(&r, 21);
    gpt_model m;
    make_model(&m, &r);
    sparse_heads sh;
    make_heads(&sh, "L0H0:index+softmax:k=3; L0H1:block+softmax:b=4,n=2; L1H0:index+mlp:k=4,hidden=8; *:dense", &r);
    int in[B * T], tg[B * T];
    batch(in, tg, &r);
    hybrid hy;
    hybrid_init(&hy, &sh, C, H);
    for (int Tn = T - 4; Tn <= T; Tn += 4) { /* two lengths: the threshold compares each */
        fwd_out dense, sparse, lenhy;
        m.attn = NULL;
        run_fwd(&m, in, tg, Tn, &dense);
        hybrid_set_dense_below(&hy, 0);
        hybrid_attach(&hy, &m);
        run_fwd(&m, in, tg, Tn, &sparse);
        cr_assert(!fwd_same(&dense, &sparse, &m, Tn), "T=%d: the subset plan should differ from dense", Tn);
        int thresholds[] = {Tn + 1, Tn, Tn - 1, 1 << 30};
        for (int i = 0; i < 4; i++) {
            hybrid_set_dense_below(&hy, thresholds[i]);
            long d0 = hy.fwd_dense, s0 = hy.fwd_sparse;
            run_fwd(&m, in, tg, Tn, &lenhy);
            int below = Tn < thresholds[i];
            cr_assert(fwd_same(below ? &dense : &sparse, &lenhy, &m, Tn), "T=%d, dense below %d: not the %s model",
                      Tn, thresholds[i], below ? "dense" : "sparse");
            cr_assert_eq(hy.fwd_dense - d0, below ? L : 0);
            cr_assert_eq(hy.fwd_sparse - s0, below ? 0 : L);
            fwd_free(&lenhy);
        }
        hybrid_detach(&m);
        fwd_free(&dense), fwd_free(&sparse);
    }
    hybrid_free(&hy);
    sparse_heads_free(&sh);
    gpt_free(&m);
}

/* Sampling grows the context, so a forward switches from dense to sparse mid-sequence:
 * with the threshold above the model's context the samples are the dense model's. */
Test(hybrid, sample_below_threshold_is_dense) {
    rng_t r;
    rng_seed(&r, 22);
    gpt_model m;
    make_model(&m, &r);
    sparse_heads sh;
    make_heads(&sh, "all:index+softmax:k=2", &r);
    int a[T + 20], b[T + 20], la = 2, lb = 2;
    a[0] = b[0] = 1, a[1] = b[1] = 7;
    rng_t ra, rb;
    rng_seed(&ra, 3), rng_seed(&rb, 3);
    sample_tokens(&m, a, &la, 20, 1.0f, &ra);
    hybrid hy;
    hybrid_init(&hy, &sh, C, H);
    hybrid_set_dense_below(&hy, T + 1);
    hybrid_attach(&hy, &m);
    sample_tokens(&m, b, &lb, 20, 1.0f, &rb);
    cr_assert_eq(la, lb);
    cr_assert(!memcmp(a, b, sizeof(int) * (size_t)la), "hybrid below its threshold sampled differently");
    cr_assert_eq(hy.fwd_sparse, 0);
    cr_assert_eq(hy.fwd_dense, 20L * L);
    /* threshold 6: the forwards of contexts 2..5 are dense, 6.. sparse */
    hybrid_set_dense_below(&hy, 6);
    hy.fwd_dense = hy.fwd_sparse = 0, lb = 2;
    sample_tokens(&m, b, &lb, 20, 1.0f, &rb);
    cr_assert_eq(hy.fwd_dense, 4L * L);
    cr_assert_eq(hy.fwd_sparse, 16L * L);
    hybrid_detach(&m);
    hybrid_free(&hy);
    sparse_heads_free(&sh);
    gpt_free(&m);
}

/* Causality across window lengths with mlp head functions: a query's output cannot depend
 * on keys after it, so the logits of a window of Ts tokens equal the first Ts rows of the
 * full window's, also for Ts below k (where the mlp keeps its trained input width and
 * leaves the missing slots empty instead of reading its parameters in a narrower layout). */
Test(hybrid, mlp_short_window_is_prefix) {
    rng_t r;
    rng_seed(&r, 23);
    gpt_model m;
    make_model(&m, &r);
    sparse_heads sh;
    make_heads(&sh, "L0H0:index+mlp:k=6,hidden=8; L1H1:block+mlp:b=4,n=2,hidden=8; *:dense", &r);
    int in[B * T], tg[B * T], ins[B * T], tgs[B * T];
    batch(in, tg, &r);
    hybrid hy;
    hybrid_init(&hy, &sh, C, H);
    hybrid_attach(&hy, &m);
    fwd_out full;
    run_fwd(&m, in, tg, T, &full);
    int Vp = m.cfg.padded_vocab, v = m.cfg.vocab;
    for (int Ts = 1; Ts < T; Ts += 2) {
        for (int b = 0; b < B; b++)
            for (int t = 0; t < Ts; t++) ins[b * Ts + t] = in[b * T + t], tgs[b * Ts + t] = tg[b * T + t];
        gpt_forward(&m, ins, tgs, B, Ts);
        double worst = 0.0;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < Ts; t++)
                for (int j = 0; j < v; j++) {
                    double a = m.acts.logits[((size_t)b * Ts + t) * Vp + j];
                    double e = full.logits[((size_t)b * T + t) * Vp + j];
                    double d = fabs(a - e) / (fabs(e) > 1.0 ? fabs(e) : 1.0);
                    worst = d > worst ? d : worst;
                }
        cr_assert_lt(worst, 1e-5, "window %d of %d: logits differ from the full window's prefix by %g", Ts, T, worst);
    }
    fwd_free(&full);
    hybrid_detach(&m);
    hybrid_free(&hy);
    sparse_heads_free(&sh);
    gpt_free(&m);
}

/* A shared indexer (lindex.h) at k = T keeps every key: the hybrid is the dense model,
 * loss and gradients, through the layer-wide selection in head 0's buffers. */
Test(hybrid, shared_select_all_equals_dense) { check_plan_equals_dense("all:index+softmax:k=12,shared=1", 15); }

/* With k = 4 every head of a shared layer sees one selection, lindex_select's on the
 * layer's C-wide q and k, and its output is its softmax over that selection; both score
 * precisions. */
Test(hybrid, shared_layer_one_selection) {
    for (int bf = 0; bf < 2; bf++) {
        if (bf && !lindex_cpu_bf16()) continue;
        rng_t r;
        rng_seed(&r, 16);
        gpt_model m;
        make_model(&m, &r);
        sparse_heads sh;
        make_heads(&sh, "L1:index+softmax:k=4,shared=1; *:index+softmax:k=4", &r);
        hybrid hy;
        hybrid_init(&hy, &sh, C, H);
        hy.lix_prec = bf ? LINDEX_BF16 : LINDEX_F32;
        hybrid_attach(&hy, &m);
        int in[B * T], tg[B * T];
        batch(in, tg, &r);
        gpt_forward(&m, in, tg, B, T);
        const head_spec *s = &sh.h[H].spec;
        lindex_dims d = lindex_dims_of(s, H, C / H);
        float *w = malloc(lindex_param_count(&d) * sizeof(float));
        float *work = malloc(lindex_work_floats(&d, T) * sizeof(float));
        lindex_gather(&sh, 1, w);
        for (int b = 0; b < B; b++) {
            const float *q = m.acts.qkv + ((size_t)1 * B + b) * T * 3 * C;
            int idx[T * 4], count[T], kmax;
            float score[T * 4];
            lindex_select(s, &d, w, q, q + C, 3 * C, T, idx, score, count, work, hy.lix_prec, NULL);
            for (int h = 0; h < H; h++) {
                const int *cnt, *got = hybrid_idx(&hy, 1, h, b, &kmax, &cnt);
                cr_assert_eq(kmax, 4);
                cr_assert_eq(memcmp(cnt, count, sizeof count), 0);
                for (int t = 0; t < T; t++)
                    for (int j = 0; j < count[t]; j++)
                        cr_assert_eq(got[t * 4 + j], idx[t * 4 + j], "b=%d h=%d t=%d: selection differs", b, h, t);
                float out[T * (C / H)], cache[T * 8 + 1];
                cr_assert_leq(headfn_cache_floats(s, C / H, 4, T), T * 8 + 1);
                headfn_forward(s, NULL, C / H, 4, q + h * (C / H), q + C + h * (C / H), q + 2 * C + h * (C / H),
                               3 * C, T, idx, count, out, C / H, cache);
                const float *att = m.acts.atty + ((size_t)1 * B + b) * T * C + h * (C / H);
                for (int t = 0; t < T; t++)
                    for (int i = 0; i < C / H; i++)
                        cr_assert_eq(att[(size_t)t * C + i], out[t * (C / H) + i], "b=%d h=%d t=%d", b, h, t);
            }
        }
        free(w), free(work);
        hybrid_detach(&m);
        hybrid_free(&hy);
        sparse_heads_free(&sh);
        gpt_free(&m);
    }
}
