/* Tests of model.h: the float GPT-2 against the double reference of tests/ref.c.
 *
 * The gradient test takes central finite differences of the DOUBLE reference loss
 * (ref_gpt_loss, built from the FD-checked reference ops) at the model's own float
 * parameters, for EVERY parameter of a tiny model (a few thousand; ~1 s), and compares
 * them with the float analytic gradients of gpt_forward + gpt_backward. Double FD with
 * eps = 1e-5 is accurate to ~1e-9 relative, so the comparison measures the float
 * implementation: its rounding through ~30 ops in float (u = 6e-8) is ~1e-6 relative to a
 * tensor's gradient scale (measured: 1e-7..1.5e-6 on every tensor), and the tolerance 1e-4
 * (relative to each tensor's largest gradient) is ~70x that, while a wrong or missing
 * gradient path is O(1e-2..1). */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "ref.h"
#include "sattn/distill.h"
#include "sattn/finetune.h"
#include "sattn/model.h"
#include "sattn/rng.h"
#include "sattn/train.h"

static const char *const tensor_names[GPT_NUM_TENSORS] = {
    "wte",  "wpe",  "ln1w", "ln1b",     "qkvw",     "qkvb",    "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw",  "fcb",      "fcprojw",  "fcprojb", "lnfw",     "lnfb"};

/* The tiny model of the brief: L=2, H=2 (hs 6), C=12, T=7 of max_seq 8, V=23 padded to 32. */
static gpt_config tiny_config(void) {
    gpt_config c = {.max_seq = 8, .vocab = 23, .padded_vocab = 32, .layers = 2, .heads = 2,
                    .channels = 12};
    return c;
}

static int *rand_tokens(size_t n, int V, rng_t *r) {
    int *t = malloc(n * sizeof(int));
    for (size_t i = 0; i < n; i++) t[i] = (int)rng_below(r, (uint32_t)V);
    return t;
}

/* Moves every parameter away from GPT-2's special initial values (LayerNorm 1/0, zero
 * biases, near-uniform attention, zero padded rows) so that every path carries signal:
 * weights ~N(0, 0.3), biases ~N(0, 0.2), LayerNorm weights 1 + N(0, 0.2). */
static void perturb_params(gpt_model *m, rng_t *r) {
    float *p = m->params_mem;
    for (int i = 0; i < GPT_NUM_TENSORS; i++) {
        size_t n = m->param_sizes[i];
        float s = gpt_param_is_matrix(i) ? 0.3f : 0.2f;
        for (size_t k = 0; k < n; k++) p[k] += s * rng_normal(r);
        p += n;
    }
}

/* Float analytic gradients vs double FD of the reference loss, every tensor, every entry. */
static void check_gradients(gpt_model *m, const int *inp, const int *tgt, int B, int T,
                            const char *tag) {
    const gpt_config *c = &m->cfg;
    size_t np = m->num_params;
    double *pd = ref_f2d(m->params_mem, np);

    gpt_forward(m, inp, tgt, B, T);
    double ref_loss = ref_gpt_loss(c, pd, inp, tgt, B, T, NULL);
    cr_assert(fabs(m->mean_loss - ref_loss) <= 1e-5 * fabs(ref_loss),
              "%s: loss %.9g vs reference %.9g (rel %.3g)", tag, m->mean_loss, ref_loss,
              fabs(m->mean_loss - ref_loss) / fabs(ref_loss));
    gpt_zero_grad(m);
    gpt_backward(m);

    const double eps = 1e-5;
    double *fd = ref_dalloc(np);
    for (size_t i = 0; i < np; i++) {
        double save = pd[i];
        pd[i] = save + eps;
        double lp = ref_gpt_loss(c, pd, inp, tgt, B, T, NULL);
        pd[i] = save - eps;
        double lm = ref_gpt_loss(c, pd, inp, tgt, B, T, NULL);
        pd[i] = save;
        fd[i] = (lp - lm) / (2 * eps);
    }
    size_t off = 0;
    for (int k = 0; k < GPT_NUM_TENSORS; k++) {
        size_t n = m->param_sizes[k];
        if (n == 0) continue; /* wpe of a RoPE model */
        const float *g = m->grads_mem + off;
        double e = ref_rel_err(g, fd + off, n), scale = ref_max_abs(fd + off, n);
        size_t w = ref_argmax_err(g, fd + off, n);
#ifdef REF_VERBOSE
        fprintf(stderr, "%s %-9s max|g| %.3e  rel err %.2e\n", tag, tensor_names[k], scale, e);
#endif
        cr_assert(scale > 0, "%s: %s has an all-zero finite-difference gradient", tag,
                  tensor_names[k]);
        cr_assert(e <= 1e-4,
                  "%s: d loss / d %s: float vs finite differences rel err %.3g > 1e-4 "
                  "(worst at [%zu]: analytic %.9g, FD %.9g; max|FD| %.3g)",
                  tag, tensor_names[k], e, w, (double)g[w], fd[off + w], scale);
        off += n;
    }
    /* exact zeros where the loss does not depend on a parameter */
    int V = c->vocab, Vp = c->padded_vocab, C = c->channels;
    for (size_t i = (size_t)V * C; i < (size_t)Vp * C; i++)
        cr_assert(m->grads.wte[i] == 0.0f, "%s: padded wte row %zu has gradient %g", tag, i / C,
                  m->grads.wte[i]);
    for (size_t i = (size_t)T * C; i < m->param_sizes[GPT_WPE]; i++)
        cr_assert(m->grads.wpe[i] == 0.0f, "%s: wpe row %zu >= T has gradient %g", tag, i / C,
                  m->grads.wpe[i]);
    free(pd);
    free(fd);
}

Test(model, param_layout) {
    gpt_config c = tiny_config();
    sattn_err e;
    cr_assert(gpt_config_check(&c, &e) == 0, "%s", e.msg);
    size_t s[GPT_NUM_TENSORS], rs[GPT_NUM_TENSORS];
    gpt_param_sizes(&c, s);
    ref_gpt_param_sizes(&c, rs);
    for (int i = 0; i < GPT_NUM_TENSORS; i++)
        cr_assert(s[i] == rs[i], "size of %s: %zu, want %zu", tensor_names[i], s[i], rs[i]);
    for (int i = 0; i < GPT_NUM_TENSORS; i++)
        cr_assert(gpt_param_is_matrix(i) == (i == 0 || i == 1 || i == 4 || i == 6 || i == 10 || i == 12),
                  "gpt_param_is_matrix(%d)", i);
    gpt_model m;
    gpt_create(&m, &c);
    cr_assert(m.num_params == ref_gpt_num_params(&c));
    const float *ptr[GPT_NUM_TENSORS] = {
        m.params.wte,  m.params.wpe,  m.params.ln1w, m.params.ln1b,     m.params.qkvw,
        m.params.qkvb, m.params.attprojw, m.params.attprojb, m.params.ln2w, m.params.ln2b,
        m.params.fcw,  m.params.fcb,  m.params.fcprojw, m.params.fcprojb, m.params.lnfw,
        m.params.lnfb};
    size_t off = 0;
    for (int i = 0; i < GPT_NUM_TENSORS; i++) {
        cr_assert(ptr[i] == m.params_mem + off, "params.%s is not at offset %zu", tensor_names[i], off);
        off += s[i];
    }
    gpt_free(&m);
}

Test(model, init_random) {
    gpt_config c = {.max_seq = 16, .vocab = 50, .padded_vocab = 64, .layers = 2, .heads = 4,
                    .channels = 64};
    gpt_model m;
    gpt_create(&m, &c);
    rng_t r;
    rng_seed(&r, 7);
    gpt_init_random(&m, &r);
    const float *p = m.params_mem;
    for (int i = 0; i < GPT_NUM_TENSORS; i++) {
        size_t n = m.param_sizes[i];
        double s = 0, s2 = 0;
        for (size_t k = 0; k < n; k++) s += p[k], s2 += (double)p[k] * p[k];
        if (i == 0) { /* wte: padded rows 0, the rest N(0, 0.02) */
            size_t real = (size_t)c.vocab * c.channels;
            for (size_t k = real; k < n; k++) cr_assert(p[k] == 0.0f, "padded wte not zero");
            n = real;
        }
        double mean = s / n, sd = sqrt(s2 / n - mean * mean);
        double want = 0;
        if (gpt_param_is_matrix(i)) want = (i == 6 || i == 12) ? 0.02 / sqrt(2.0 * c.layers) : 0.02;
        if (want > 0) {
            cr_assert(fabs(sd - want) < 0.1 * want && fabs(mean) < 0.1 * want,
                      "%s: mean %.4g sd %.4g, want sd %.4g", tensor_names[i], mean, sd, want);
        } else {
            double one = (i == 2 || i == 8 || i == 14) ? 1.0 : 0.0; /* LayerNorm weights 1, biases 0 */
            for (size_t k = 0; k < n; k++)
                cr_assert(p[k] == (float)one, "%s[%zu] = %g, want %g", tensor_names[i], k, p[k], one);
        }
        p += m.param_sizes[i];
    }
    gpt_free(&m);
}

Test(model, forward_matches_reference) {
    gpt_config c = tiny_config();
    gpt_model m;
    gpt_create(&m, &c);
    rng_t r;
    rng_seed(&r, 11);
    gpt_init_random(&m, &r);
    perturb_params(&m, &r);
    double *pd = ref_f2d(m.params_mem, m.num_params);
    /* several shapes on one model: activations are re-laid out (B*T shrinking and growing) */
    int shapes[][2] = {{2, 7}, {3, 4}, {1, 1}, {4, 8}, {2, 7}};
    for (int k = 0; k < 5; k++) {
        int B = shapes[k][0], T = shapes[k][1];
        size_t BT = (size_t)B * T, nl = BT * c.padded_vocab;
        int *inp = rand_tokens(BT, c.vocab, &r), *tgt = rand_tokens(BT, c.vocab, &r);
        double *logits = ref_dalloc(nl);
        double loss = ref_gpt_loss(&c, pd, inp, tgt, B, T, logits);
        gpt_forward(&m, inp, tgt, B, T);
        cr_assert(fabs(m.mean_loss - loss) <= 1e-5 * loss, "B=%d T=%d: loss %.9g, reference %.9g", B, T,
                  m.mean_loss, loss);
        double e = ref_rel_err(m.acts.logits, logits, nl);
        cr_assert(e <= 1e-4, "B=%d T=%d: logits rel err %.3g", B, T, e);
        /* per-position losses too */
        for (size_t i = 0; i < BT; i++) {
            double mx = -INFINITY, s = 0;
            for (int j = 0; j < c.vocab; j++) mx = fmax(mx, logits[i * c.padded_vocab + j]);
            for (int j = 0; j < c.vocab; j++) s += exp(logits[i * c.padded_vocab + j] - mx);
            double li = mx + log(s) - logits[i * c.padded_vocab + tgt[i]];
            cr_assert(fabs(m.acts.losses[i] - li) <= 1e-5 * fmax(1, li), "B=%d T=%d: losses[%zu]", B, T, i);
        }
        /* without targets: same logits, loss left alone */
        gpt_forward(&m, inp, NULL, B, T);
        e = ref_rel_err(m.acts.logits, logits, nl);
        cr_assert(e <= 1e-4, "B=%d T=%d (no targets): logits rel err %.3g", B, T, e);
        free(inp), free(tgt), free(logits);
    }
    free(pd);
    gpt_free(&m);
}

Test(model, gradients_at_init) {
    gpt_config c = tiny_config();
    gpt_model m;
    gpt_create(&m, &c);
    rng_t r;
    rng_seed(&r, 12);
    gpt_init_random(&m, &r);
    int B = 2, T = 7;
    int *inp = rand_tokens((size_t)B * T, c.vocab, &r), *tgt = rand_tokens((size_t)B * T, c.vocab, &r);
    check_gradients(&m, inp, tgt, B, T, "init");
    free(inp), free(tgt);
    gpt_free(&m);
}

Test(model, gradients_perturbed) {
    gpt_config c = tiny_config();
    gpt_model m;
    gpt_create(&m, &c);
    rng_t r;
    rng_seed(&r, 13);
    gpt_init_random(&m, &r);
    perturb_params(&m, &r); /* padded wte rows become non-zero too: still no gradient */
    int B = 2, T = 7;
    int *inp = rand_tokens((size_t)B * T, c.vocab, &r), *tgt = rand_tokens((size_t)B * T, c.vocab, &r);
    /* a forward at another shape first, so the gradient run re-lays out the activations */
    int *inp2 = rand_tokens(3 * 8, c.vocab, &r);
    gpt_forward(&m, inp2, inp2, 3, 8);
    gpt_zero_grad(&m);
    gpt_backward(&m);
    check_gradients(&m, inp, tgt, B, T, "perturbed");
    free(inp), free(tgt), free(inp2);
    gpt_free(&m);
}

/* Ignored targets (GPT_IGNORE, as --mix-loss answers sets them): the loss is the mean over
 * the rest, and its gradient matches the double reference's finite differences. */
Test(model, gradients_ignored_targets) {
    gpt_config c = tiny_config();
    gpt_model m;
    gpt_create(&m, &c);
    rng_t r;
    rng_seed(&r, 17);
    gpt_init_random(&m, &r);
    perturb_params(&m, &r);
    int B = 2, T = 7;
    int *inp = rand_tokens((size_t)B * T, c.vocab, &r), *tgt = rand_tokens((size_t)B * T, c.vocab, &r);
    for (int i = 0; i < B * T; i++)
        if (i % 3 != 1) tgt[i] = GPT_IGNORE; /* 5 of 14 scored, in both rows */
    check_gradients(&m, inp, tgt, B, T, "ignored");
    cr_assert_eq(m.n_targets, 5);
    /* the mean over the scored ones: equal to the loss of those rows' full targets, averaged */
    double sum = 0.0;
    for (int i = 0; i < B * T; i++) sum += tgt[i] == GPT_IGNORE ? 0.0 : m.acts.losses[i];
    cr_assert_float_eq(m.mean_loss, (float)(sum / 5), 1e-6f * m.mean_loss);
    for (int i = 0; i < B * T; i++) tgt[i] = GPT_IGNORE;
    gpt_forward(&m, inp, tgt, B, T);
    cr_assert(m.mean_loss == 0.0f && m.n_targets == 0, "all ignored: loss %g", m.mean_loss);
    gpt_zero_grad(&m);
    gpt_backward(&m);
    for (size_t i = 0; i < m.num_params; i++)
        cr_assert(m.grads_mem[i] == 0.0f, "all ignored: gradient %g at %zu", m.grads_mem[i], i);
    free(inp), free(tgt);
    gpt_free(&m);
}

Test(model, gradients_odd_shape) {
    /* H = 3 (hs = 5), L = 1, B = 3, T = max_seq = 5, V = Vp (no padding) */
    gpt_config c = {.max_seq = 5, .vocab = 19, .padded_vocab = 19, .layers = 1, .heads = 3,
                    .channels = 15};
    gpt_model m;
    gpt_create(&m, &c);
    rng_t r;
    rng_seed(&r, 14);
    gpt_init_random(&m, &r);
    perturb_params(&m, &r);
    int B = 3, T = 5;
    int *inp = rand_tokens((size_t)B * T, c.vocab, &r), *tgt = rand_tokens((size_t)B * T, c.vocab, &r);
    check_gradients(&m, inp, tgt, B, T, "odd");
    free(inp), free(tgt);
    gpt_free(&m);
}

/* Copy of the gradients after zero_grad + forward + backward. */
static float *grads_of(gpt_model *m, const int *inp, const int *tgt, int B, int T, float *loss) {
    gpt_forward(m, inp, tgt, B, T);
    gpt_zero_grad(m);
    gpt_backward(m);
    *loss = m->mean_loss;
    float *g = ref_falloc(m->num_params);
    memcpy(g, m->grads_mem, m->num_params * sizeof(float));
    return g;
}

Test(model, deterministic_and_accumulating) {
    gpt_config c = tiny_config();
    gpt_model m, m2;
    gpt_create(&m, &c);
    gpt_create(&m2, &c);
    rng_t r, r2;
    rng_seed(&r, 15);
    rng_seed(&r2, 15);
    gpt_init_random(&m, &r);
    gpt_init_random(&m2, &r2);
    perturb_params(&m, &r);
    perturb_params(&m2, &r2);
    cr_assert(memcmp(m.params_mem, m2.params_mem, m.num_params * sizeof(float)) == 0,
              "gpt_init_random is not deterministic for a seed");
    int B = 2, T = 7;
    int *inp = rand_tokens((size_t)B * T, c.vocab, &r), *tgt = rand_tokens((size_t)B * T, c.vocab, &r);
    int *inp2 = rand_tokens(3 * 4, c.vocab, &r);
    float l1, l2, l3, l4, lx;
    float *g1 = grads_of(&m, inp, tgt, B, T, &l1);
    float *g2 = grads_of(&m, inp, tgt, B, T, &l2);
    float *gx = grads_of(&m, inp2, inp2, 3, 4, &lx); /* other shape in between: stale buffers */
    float *g3 = grads_of(&m, inp, tgt, B, T, &l3);
    float *g4 = grads_of(&m2, inp, tgt, B, T, &l4); /* a second model */
    size_t n = m.num_params;
    cr_assert(memcmp(&l1, &l2, sizeof l1) == 0 && memcmp(&l1, &l3, sizeof l1) == 0 &&
                  memcmp(&l1, &l4, sizeof l1) == 0,
              "losses differ: %.9g %.9g %.9g %.9g", l1, l2, l3, l4);
    cr_assert(memcmp(g1, g2, n * sizeof(float)) == 0, "two identical runs: gradients not bitwise equal");
    cr_assert(memcmp(g1, g3, n * sizeof(float)) == 0, "after a run at another shape: gradients differ");
    cr_assert(memcmp(g1, g4, n * sizeof(float)) == 0, "a second identical model: gradients differ");

    /* gpt_backward accumulates: a second backward without zero_grad doubles the gradients
     * (up to rounding, since kernels add into the buffers with their own order) */
    gpt_forward(&m, inp, tgt, B, T);
    gpt_zero_grad(&m);
    gpt_backward(&m);
    gpt_backward(&m);
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs(m.grads_mem[i] - 2.0 * g1[i]));
        den = fmax(den, fabs(2.0 * g1[i]));
    }
    cr_assert(num <= 1e-5 * den, "two backwards do not accumulate: rel err %.3g", num / den);
    free(g1), free(g2), free(g3), free(g4), free(gx), free(inp), free(tgt), free(inp2);
    gpt_free(&m);
    gpt_free(&m2);
}

Test(model, clip_grad_norm) {
    gpt_config c = tiny_config();
    gpt_model m;
    gpt_create(&m, &c);
    rng_t r;
    rng_seed(&r, 16);
    gpt_init_random(&m, &r);
    perturb_params(&m, &r);
    int B = 2, T = 7;
    int *inp = rand_tokens((size_t)B * T, c.vocab, &r), *tgt = rand_tokens((size_t)B * T, c.vocab, &r);
    float loss;
    float *g = grads_of(&m, inp, tgt, B, T, &loss);
    size_t n = m.num_params;
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    double norm = sqrt(s);
    /* no clipping: clip <= 0, or the norm already below clip; gradients untouched */
    float got = gpt_clip_grad_norm(&m, 0.0f);
    cr_assert(fabs(got - norm) <= 1e-6 * norm, "norm %.9g, want %.9g", got, norm);
    got = gpt_clip_grad_norm(&m, (float)(2 * norm));
    cr_assert(fabs(got - norm) <= 1e-6 * norm);
    cr_assert(memcmp(g, m.grads_mem, n * sizeof(float)) == 0, "gradients changed without clipping");
    /* clipping to half the norm: same direction, norm = clip */
    float clip = (float)(0.5 * norm);
    got = gpt_clip_grad_norm(&m, clip);
    cr_assert(fabs(got - norm) <= 1e-6 * norm, "returned norm is the norm before clipping");
    double s2 = 0, maxdev = 0;
    for (size_t i = 0; i < n; i++) {
        s2 += (double)m.grads_mem[i] * m.grads_mem[i];
        maxdev = fmax(maxdev, fabs(m.grads_mem[i] - 0.5 * g[i]));
    }
    cr_assert(fabs(sqrt(s2) - clip) <= 1e-5 * clip, "norm after clipping %.9g, want %.9g", sqrt(s2), clip);
    double gmax = 0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(g[i]));
    cr_assert(maxdev <= 1e-5 * gmax, "clipping is not a uniform scaling to clip/norm");
    free(g), free(inp), free(tgt);
    gpt_free(&m);
}

Test(model, update_matches_adamw_reference) {
    gpt_config c = tiny_config();
    gpt_model m;
    gpt_create(&m, &c);
    rng_t r;
    rng_seed(&r, 17);
    gpt_init_random(&m, &r);
    perturb_params(&m, &r);
    int B = 2, T = 7;
    int *inp = rand_tokens((size_t)B * T, c.vocab, &r), *tgt = rand_tokens((size_t)B * T, c.vocab, &r);
    size_t n = m.num_params;
    adamw_config opt = {0.9f, 0.95f, 1e-8f, 0.1f};
    float lr = 1e-2f;
    double *pd = ref_f2d(m.params_mem, n), *md = ref_dalloc(n), *vd = ref_dalloc(n);
    int steps = 3;
    for (int t = 1; t <= steps; t++) {
        float loss;
        float *g = grads_of(&m, inp, tgt, B, T, &loss);
        double *gd = ref_f2d(g, n);
        gpt_update(&m, lr, &opt, t, 1.0f);
        size_t off = 0;
        for (int k = 0; k < GPT_NUM_TENSORS; k++) {
            ref_adamw_update(pd + off, gd + off, md + off, vd + off, m.param_sizes[k], lr, opt.beta1,
                             opt.beta2, opt.eps, opt.weight_decay, gpt_param_is_matrix(k), t);
            off += m.param_sizes[k];
        }
        /* the float model's own gradients drive both; compare parameters after each step
         * (0.1% of the maximal movement lr * t, see tests/test_nn.c adamw) */
        off = 0;
        for (int k = 0; k < GPT_NUM_TENSORS; k++) {
            double e = 0;
            for (size_t i = 0; i < m.param_sizes[k]; i++) e = fmax(e, fabs(m.params_mem[off + i] - pd[off + i]));
            cr_assert(e <= 1e-3 * lr * t, "step %d, %s: max |p - ref| = %.3g", t, tensor_names[k], e);
            off += m.param_sizes[k];
        }
        /* keep the reference on the float trajectory so the next gradients agree */
        for (size_t i = 0; i < n; i++) pd[i] = m.params_mem[i];
        free(g), free(gd);
    }
    free(pd), free(md), free(vd), free(inp), free(tgt);
    gpt_free(&m);
}

Test(model, overfits_one_batch) {
    gpt_config c = tiny_config();
    gpt_model m;
    gpt_create(&m, &c);
    rng_t r;
    rng_seed(&r, 18);
    gpt_init_random(&m, &r);
    int B = 2, T = 7;
    int *inp = rand_tokens((size_t)B * T, c.vocab, &r), *tgt = rand_tokens((size_t)B * T, c.vocab, &r);
    adamw_config opt = {0.9f, 0.95f, 1e-8f, 0.0f};
    float first = 0, last = 0;
    /* One thread: this test is about optimisation, not threading (every other test runs
     * the kernels multi-threaded). Its ~10^4 tiny parallel regions take 0.1 s on an idle
     * machine but tens of seconds when other OpenMP programs compete for the cores. */
    omp_set_num_threads(1);
    int steps = 100;
    for (int t = 1; t <= steps; t++) {
        gpt_forward(&m, inp, tgt, B, T);
        if (t == 1) first = m.mean_loss;
        last = m.mean_loss;
        cr_assert(isfinite(last), "loss not finite at step %d", t);
        gpt_zero_grad(&m);
        gpt_backward(&m);
        gpt_update(&m, 1e-2f, &opt, t, gpt_clip_scale(gpt_grad_norm(&m), 1.0f));
    }
    gpt_forward(&m, inp, tgt, B, T);
    last = m.mean_loss;
#ifdef REF_VERBOSE
    fprintf(stderr, "overfit: loss %.4f -> %.4f\n", first, last);
#endif
    cr_assert(fabs(first - logf((float)c.vocab)) < 0.1f, "initial loss %.4f, expected ~ln V = %.4f", first,
              logf((float)c.vocab));
    cr_assert(last < 0.3f * first, "%d AdamW steps on one batch: loss %.4f -> %.4f", steps, first, last);
    free(inp), free(tgt);
    gpt_free(&m);
}

Test(model, backward_without_targets_dies, .signal = SIGABRT) {
    gpt_config c = tiny_config();
    gpt_model m;
    gpt_create(&m, &c);
    int inp[7] = {0, 1, 2, 3, 4, 5, 6};
    gpt_forward(&m, inp, NULL, 1, 7);
    gpt_backward(&m);
}

/* ------------------------------------------------------------------ divergence (issue 9)
 * A run that diverges stops at the first non-finite loss or gradient norm, before the
 * update, with "diverged at step N: ..."; no non-finite value reaches the parameters
 * unnoticed. Before: the loop ran on with NaN and the caller saved a NaN model. */

/* A 1-layer byte model (C 16, context 16) and 20 KB of generated text. */
static void div_setup(gpt_model *m, dataset *d) {
    gpt_config c = {.max_seq = 16, .vocab = 256, .padded_vocab = 256, .layers = 1, .heads = 2,
                    .channels = 16};
    gpt_create(m, &c);
    rng_t r;
    rng_seed(&r, 5);
    gpt_init_random(m, &r);
    char *t = cli_make_text(20000);
    dataset_from_bytes(d, (const uint8_t *)t, 20000);
    free(t);
}

/* lr 10, weight decay 1, no clip, no warmup: the decay term alone scales every weight
 * matrix by 1 - 10 = -9 per step, so the logits overflow within a few dozen steps. */
static train_config div_config(void) {
    train_config tc = train_config_default();
    tc.batch = 4, tc.seq = 16, tc.steps = 200, tc.warmup = 0, tc.lr = 10.0f, tc.clip = 0.0f;
    tc.opt.weight_decay = 1.0f, tc.eval_every = 0;
    return tc;
}

typedef struct {
    int calls, finite, last_step;
} div_rec;

static void div_record(const train_progress *p, void *user) {
    div_rec *r = user;
    r->calls++;
    r->finite &= isfinite(p->loss) && isfinite(p->grad_norm);
    r->last_step = p->step;
}

Test(diverge, train_stops_at_first_nonfinite_step, .timeout = 60) {
    gpt_model m;
    dataset d;
    div_setup(&m, &d);
    train_config tc = div_config();
    train_state st = {0};
    rng_seed(&st.rng, 9);
    div_rec rec = {0, 1, 0};
    sattn_err e;
    float last = 0;
    cr_assert_eq(train_run(&m, &st, &d, &tc, div_record, &rec, &last, &e), -1, "a lr-10 wd-1 run did not diverge");
    int n = 0;
    cr_assert(sscanf(e.msg, "diverged at step %d:", &n) == 1 && n > 1, "message: %s", e.msg);
    cr_assert(strstr(e.msg, "nan") || strstr(e.msg, "inf"), "message names no non-finite value: %s", e.msg);
    cr_assert(!strstr(e.msg, "-nan"), "message: %s", e.msg);
    /* the diverged step is neither counted nor reported as progress; the steps before are */
    cr_assert(st.step == n - 1 && rec.calls == n - 1 && rec.last_step == n - 1 && rec.finite,
              "step %d, progress calls %d (last %d, finite %d), diverged at %d", st.step, rec.calls,
              rec.last_step, rec.finite, n);
    cr_assert(isfinite(last), "last loss %g is that of the last good step", last);
    sattn_err e2;
    if (!strstr(e.msg, "the update left"))
        cr_assert_eq(gpt_check_finite(&m, &e2), 0, "model after the last good step: %s", e2.msg);
    gpt_free(&m);
    dataset_free(&d);
}

/* A model that is non-finite from the start (a NaN weight): step 1 diverges and the
 * parameters are not touched. */
Test(diverge, nan_model_is_not_updated, .timeout = 60) {
    gpt_model m;
    dataset d;
    div_setup(&m, &d);
    m.params.qkvw[5] = NAN;
    float *before = malloc(m.num_params * sizeof(float));
    memcpy(before, m.params_mem, m.num_params * sizeof(float));
    train_config tc = div_config();
    tc.lr = 1e-3f, tc.clip = 1.0f;
    train_state st = {0};
    rng_seed(&st.rng, 9);
    sattn_err e;
    cr_assert_eq(train_run(&m, &st, &d, &tc, NULL, NULL, NULL, &e), -1);
    cr_assert_str_eq(e.msg, "diverged at step 1: loss nan (gradient norm nan)");
    cr_assert(st.step == 0 && !st.has_optim, "step %d has_optim %d", st.step, st.has_optim);
    cr_assert(memcmp(before, m.params_mem, m.num_params * sizeof(float)) == 0, "parameters changed");
    free(before);
    gpt_free(&m);
    dataset_free(&d);
}

/* Finite gradients can still overflow the update: g = 1e30 makes v = (1 - b2) g^2 = inf.
 * gpt_update names the tensor; gpt_check_finite the element. */
Test(diverge, update_overflow_and_check_finite) {
    gpt_model m;
    dataset d;
    div_setup(&m, &d);
    int tok[4] = {1, 2, 3, 4};
    gpt_forward(&m, tok, tok + 1, 1, 3);
    gpt_zero_grad(&m);
    gpt_backward(&m);
    adamw_config opt = {0.9f, 0.99f, 1e-8f, 0.1f};
    sattn_err e;
    cr_assert_eq(gpt_update(&m, 1e-3f, &opt, 1, 1.0f), -1, "a healthy update was flagged");
    cr_assert_eq(gpt_check_finite(&m, &e), 0, "%s", e.msg);
    m.grads.fcw[3] = 1e30f;
    cr_assert_eq(gpt_update(&m, 1e-3f, &opt, 2, 1.0f), 10, "the overflow is in fcw (tensor 10)");
    cr_assert_eq(gpt_check_finite(&m, &e), -1);
    cr_assert_str_eq(e.msg, "AdamW second moment of fcw[3] is inf");
    m.params.lnfb[1] = -INFINITY;
    cr_assert_eq(gpt_check_finite(&m, &e), -1);
    cr_assert_str_eq(e.msg, "parameter lnfb[1] is -inf");
    m.params.wte[7] = NAN;
    cr_assert_eq(gpt_check_finite(&m, &e), -1);
    cr_assert_str_eq(e.msg, "parameter wte[7] is nan");
    cr_assert_str_eq(gpt_param_name(4), "qkvw");
    gpt_free(&m);
    dataset_free(&d);
}

/* Fine-tuning the hybrid model and distilling heads follow the same rule. */
Test(diverge, finetune_and_distill_stop, .timeout = 60) {
    gpt_model m;
    dataset d;
    div_setup(&m, &d);
    m.params.qkvw[0] = NAN; /* in head 0's q: the teacher's attention of layer 0 is NaN too */
    head_spec specs[2] = {test_spec_of("index+mlp:k=4,r=2,j=1"), test_spec_of("block+softmax:b=4,n=2")};
    sparse_heads sh;
    rng_t r;
    rng_seed(&r, 3);
    sparse_heads_create(&sh, 1, 2, 8, 16, specs, &r);
    size_t np = sh.h[0].n_sel + sh.h[0].n_fn;
    float *before = malloc(np * sizeof(float));
    memcpy(before, sh.h[0].params, np * sizeof(float));
    train_config tc = div_config();
    train_state st = {0};
    rng_seed(&st.rng, 9);
    sattn_err e;
    cr_assert_eq(finetune_run(&m, &sh, &st, &d, &tc, NULL, NULL, NULL, &e), -1);
    cr_assert_str_eq(e.msg, "diverged at step 1: loss nan (gradient norm nan)");
    cr_assert_eq(st.step, 0);
    distill_config dc = distill_config_default();
    dc.steps = 5, dc.batch = 2, dc.seq = 16;
    cr_assert_eq(distill_run(&m, &sh, &d, &dc, NULL, NULL, &e), -1);
    cr_assert(!strncmp(e.msg, "diverged at step 1: head L0H0: loss nan", 39), "message: %s", e.msg);
    cr_assert(memcmp(before, sh.h[0].params, np * sizeof(float)) == 0, "a diverged head was updated");
    free(before);
    sparse_heads_free(&sh);
    gpt_free(&m);
    dataset_free(&d);
}

/* ------------------------------------------------------------------ flash attention (issue 11)
 * gpt_config.attn = GPT_ATTN_FLASH runs every head through flash.h's kernels. The model's
 * attention outputs (every layer), logits, loss and every parameter's gradient equal the
 * naive model's to float rounding: max|flash - naive| / max|naive| per tensor <= 1e-4
 * (measured ~1e-6). Sizes: H = 3, T = 1, T = 300 (two key tiles, not a multiple of the
 * 128-row tile), T = 1100 (more key tiles than backward groups). */
static double rel_err_tensor(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d != d) d = INFINITY;
        if (d > num) num = d;
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return num / (den > 0 ? den : 1);
}

static void flash_vs_naive_cfg(gpt_config c, int T, int B, unsigned seed) {
    int L = c.layers, H = c.heads;
    gpt_model n, f;
    gpt_create(&n, &c);
    rng_t r;
    rng_seed(&r, seed);
    gpt_init_random(&n, &r);
    perturb_params(&n, &r);
    c.attn = GPT_ATTN_FLASH;
    gpt_create(&f, &c);
    memcpy(f.params_mem, n.params_mem, n.num_params * sizeof(float));
    int *inp = rand_tokens((size_t)B * T, c.vocab, &r), *tgt = rand_tokens((size_t)B * T, c.vocab, &r);
    float ln, lf;
    float *gn = grads_of(&n, inp, tgt, B, T, &ln), *gf = grads_of(&f, inp, tgt, B, T, &lf);
    cr_assert_null(f.acts.att, "flash allocates the (T,T) buffer");
    cr_assert_not_null(f.acts.lse);
    cr_assert_null(n.acts.lse);
    size_t BTC = (size_t)B * T * c.channels;
    double e = rel_err_tensor(f.acts.atty, n.acts.atty, (size_t)L * BTC);
    cr_assert(e <= 1e-5, "T=%d H=%d: attention output rel err %.3g", T, H, e);
    e = rel_err_tensor(f.acts.logits, n.acts.logits, (size_t)B * T * c.padded_vocab);
    cr_assert(e <= 1e-5, "T=%d H=%d: logits rel err %.3g", T, H, e);
    cr_assert(fabsf(lf - ln) <= 1e-5f * fabsf(ln), "T=%d: loss %.8g vs %.8g", T, lf, ln);
    size_t off = 0;
    for (int i = 0; i < GPT_NUM_TENSORS; i++) {
        size_t k = n.param_sizes[i];
        e = rel_err_tensor(gf + off, gn + off, k);
        cr_assert(e <= 1e-4, "T=%d H=%d: gradient of %s rel err %.3g", T, H, tensor_names[i], e);
        off += k;
    }
    free(gn), free(gf), free(inp), free(tgt);
    gpt_free(&n);
    gpt_free(&f);
}

static void flash_vs_naive(int L, int H, int hs, int T, int B, unsigned seed) {
    gpt_config c = {.max_seq = T, .vocab = 23, .padded_vocab = 32, .layers = L, .heads = H,
                    .channels = H * hs};
    flash_vs_naive_cfg(c, T, B, seed);
}

Test(model_flash, gradients_equal_naive, .timeout = 120) {
    flash_vs_naive(2, 3, 5, 1, 2, 31);    /* T = 1 */
    flash_vs_naive(2, 3, 5, 7, 2, 32);    /* one partial tile */
    flash_vs_naive(2, 3, 8, 300, 2, 33);  /* two key tiles, T not a multiple of 128 */
    flash_vs_naive(1, 4, 4, 1100, 1, 34); /* 5 key tiles > 4 backward groups, B = 1 */
}

/* Switching cfg.attn on a model that already has activations re-sizes them at the next forward. */
Test(model_flash, switch_mode_reallocates) {
    gpt_config c = tiny_config();
    gpt_model m;
    gpt_create(&m, &c);
    rng_t r;
    rng_seed(&r, 35);
    gpt_init_random(&m, &r);
    int inp[7] = {0, 1, 2, 3, 4, 5, 6}, tgt[7] = {1, 2, 3, 4, 5, 6, 7};
    gpt_forward(&m, inp, tgt, 1, 7);
    float naive = m.mean_loss;
    cr_assert_not_null(m.acts.att);
    m.cfg.attn = GPT_ATTN_FLASH;
    gpt_forward(&m, inp, tgt, 1, 7);
    cr_assert_null(m.acts.att);
    cr_assert(fabsf(m.mean_loss - naive) <= 1e-5f * naive);
    gpt_zero_grad(&m);
    gpt_backward(&m);
    gpt_free(&m);
}

static void dummy_fwd(void *ctx, int layer, float *out, float *att, const float *qkv, int B, int T) {
    (void)ctx, (void)layer, (void)out, (void)att, (void)qkv, (void)B, (void)T;
}
static void dummy_bwd(void *ctx, int layer, float *dqkv, float *scratch, const float *dout,
                      const float *qkv, const float *att, int B, int T) {
    (void)ctx, (void)layer, (void)dqkv, (void)scratch, (void)dout, (void)qkv, (void)att, (void)B, (void)T;
}

/* The sparse-head hook is handed the (T,T) buffer: with flash the forward refuses it. */
Test(model_flash, hook_refuses_flash, .signal = SIGABRT) {
    gpt_config c = tiny_config();
    c.attn = GPT_ATTN_FLASH;
    gpt_model m;
    gpt_create(&m, &c);
    gpt_attn_hook hk = {dummy_fwd, dummy_bwd, NULL};
    m.attn = &hk;
    int inp[7] = {0, 1, 2, 3, 4, 5, 6};
    gpt_forward(&m, inp, NULL, 1, 7);
}

/* The memory estimate: at T = 16384, L4 H4 C256 B1 naive attention keeps L*H*T*T*4 bytes
 * = 17.2 GB of probabilities; flash's whole training estimate is under 4 GB. */
Test(model_flash, mem_estimate_linear) {
    gpt_config c = {.max_seq = 16384, .vocab = 256, .padded_vocab = 256, .layers = 4, .heads = 4,
                    .channels = 256};
    gpt_mem nv = gpt_mem_estimate(&c, 1, 16384, 1);
    c.attn = GPT_ATTN_FLASH;
    gpt_mem fl = gpt_mem_estimate(&c, 1, 16384, 1);
    cr_assert(nv.acts >= 4.0 * 4 * 4 * 16384.0 * 16384.0, "naive acts %.3g", nv.acts);
    cr_assert(fl.params + fl.optim + fl.acts < 4e9, "flash needs %.3g bytes", fl.params + fl.optim + fl.acts);
    gpt_mem f2 = gpt_mem_estimate(&c, 1, 8192, 1);
    cr_assert(f2.acts * 1.9 < fl.acts && fl.acts < f2.acts * 2.1, "flash acts not linear: %.3g, %.3g",
              f2.acts, fl.acts);
}

/* ------------------------------------------------------------------ RoPE (issue 11 item 2)
 * gpt_config.pos = GPT_POS_ROPE: no wpe (0 elements), q and k of every head rotated after
 * the qkv projection. The reference loss (tests/ref.c) applies ref_rope_forward at the same
 * place, so check_gradients compares every parameter's float gradient with double finite
 * differences exactly as for learned positions, for naive and flash attention. */
static gpt_config rope_config(float base, float scale, int attn) {
    gpt_config c = tiny_config(); /* H = 2, hs = 6: three pairs per head */
    c.pos = GPT_POS_ROPE;
    c.rope_base = base;
    c.rope_scale = scale;
    c.attn = attn;
    return c;
}

static void rope_gradients(gpt_config c, int B, int T, unsigned seed, const char *tag) {
    gpt_model m;
    gpt_create(&m, &c);
    cr_assert_eq(m.param_sizes[GPT_WPE], 0u, "%s: a RoPE model has wpe elements", tag);
    rng_t r;
    rng_seed(&r, seed);
    gpt_init_random(&m, &r);
    perturb_params(&m, &r);
    int *inp = rand_tokens((size_t)B * T, c.vocab, &r), *tgt = rand_tokens((size_t)B * T, c.vocab, &r);
    check_gradients(&m, inp, tgt, B, T, tag);
    free(inp), free(tgt);
    gpt_free(&m);
}

Test(model_rope, gradients_naive, .timeout = 120) {
    rope_gradients(rope_config(10000.0f, 1.0f, GPT_ATTN_NAIVE), 2, 7, 41, "rope naive");
    /* a small base and interpolation: angles of several radians on every pair */
    rope_gradients(rope_config(7.0f, 0.75f, GPT_ATTN_NAIVE), 2, 8, 42, "rope naive b7 s0.75");
}

Test(model_rope, gradients_flash, .timeout = 120) {
    rope_gradients(rope_config(10000.0f, 1.0f, GPT_ATTN_FLASH), 2, 7, 43, "rope flash");
    rope_gradients(rope_config(7.0f, 0.75f, GPT_ATTN_FLASH), 1, 8, 44, "rope flash b7 s0.75");
}

Test(model_rope, gradients_odd_heads) {
    /* H = 3, hs = 2 (one pair per head), L = 1, B = 3, T = max_seq = 5, no vocab padding */
    gpt_config c = {.max_seq = 5, .vocab = 19, .padded_vocab = 19, .layers = 1, .heads = 3,
                    .channels = 6, .pos = GPT_POS_ROPE, .rope_base = 3.0f, .rope_scale = 1.0f};
    rope_gradients(c, 3, 5, 45, "rope hs2");
}

/* flash = naive with RoPE: outputs, loss and every gradient to float rounding. */
Test(model_rope, flash_equals_naive, .timeout = 120) {
    gpt_config c = {.max_seq = 300, .vocab = 23, .padded_vocab = 32, .layers = 2, .heads = 3,
                    .channels = 24, .pos = GPT_POS_ROPE, .rope_base = 10000.0f, .rope_scale = 1.0f};
    flash_vs_naive_cfg(c, 300, 2, 46);
    c.max_seq = 1;
    c.rope_scale = 0.5f;
    flash_vs_naive_cfg(c, 1, 2, 47);
}

static void copy_fwd(void *ctx, int layer, float *out, float *att, const float *qkv, int B, int T) {
    const gpt_config *c = ctx;
    (void)layer;
    attention_forward(out, att, qkv, B, T, c->channels, c->heads);
}
static void copy_bwd(void *ctx, int layer, float *dqkv, float *scratch, const float *dout,
                     const float *qkv, const float *att, int B, int T) {
    const gpt_config *c = ctx;
    (void)layer;
    attention_backward(dqkv, scratch, dout, qkv, att, B, T, c->channels, c->heads);
}

/* The sparse-head hook is handed acts.qkv with q and k already rotated: a hook that runs
 * the dense kernel gives the hook-less model's loss and gradients bit for bit. */
Test(model_rope, hook_sees_rotated_qkv) {
    gpt_config c = rope_config(10000.0f, 1.0f, GPT_ATTN_NAIVE);
    gpt_model m;
    gpt_create(&m, &c);
    rng_t r;
    rng_seed(&r, 48);
    gpt_init_random(&m, &r);
    perturb_params(&m, &r);
    int *inp = rand_tokens(14, c.vocab, &r), *tgt = rand_tokens(14, c.vocab, &r);
    float l0, l1;
    float *g0 = grads_of(&m, inp, tgt, 2, 7, &l0);
    gpt_attn_hook hk = {copy_fwd, copy_bwd, &m.cfg};
    m.attn = &hk;
    float *g1 = grads_of(&m, inp, tgt, 2, 7, &l1);
    cr_assert_eq(l0, l1);
    cr_assert_arr_eq(g0, g1, m.num_params * sizeof(float));
    free(g0), free(g1), free(inp), free(tgt);
    gpt_free(&m);
}

/* gpt_set_context: a RoPE model runs past its training context with the same parameters
 * (and its first T positions give the same logits as before: causal, no wpe); a learned
 * model refuses; the parameter count does not depend on max_seq. */
Test(model_rope, longer_context) {
    gpt_config c = rope_config(10000.0f, 1.0f, GPT_ATTN_NAIVE);
    gpt_model m, l;
    gpt_create(&m, &c);
    rng_t r;
    rng_seed(&r, 49);
    gpt_init_random(&m, &r);
    size_t np = m.num_params;
    int *inp = rand_tokens(20, c.vocab, &r);
    gpt_forward(&m, inp, NULL, 1, 8);
    float *first = ref_falloc(8 * (size_t)c.padded_vocab);
    memcpy(first, m.acts.logits, 8 * (size_t)c.padded_vocab * sizeof(float));
    sattn_err e;
    cr_assert_eq(gpt_set_context(&m, 20, &e), 0, "%s", e.msg);
    cr_assert_eq(m.cfg.max_seq, 20);
    gpt_config c20 = m.cfg;
    gpt_create(&l, &c20);
    cr_assert_eq(l.num_params, np, "parameters depend on max_seq with RoPE");
    gpt_free(&l);
    gpt_forward(&m, inp, NULL, 1, 20);
    double *fd = ref_f2d(first, 8 * (size_t)c.padded_vocab);
    cr_assert(ref_rel_err(m.acts.logits, fd, 8 * (size_t)c.padded_vocab) <= 1e-6);
    c = tiny_config();
    gpt_create(&l, &c);
    cr_assert_eq(gpt_set_context(&l, 8, &e), 0);
    cr_assert_eq(gpt_set_context(&l, 9, &e), -1);
    cr_assert_not_null(strstr(e.msg, "learned positions"), "%s", e.msg);
    cr_assert_eq(l.cfg.max_seq, 8);
    gpt_free(&l);
    free(inp), free(first), free(fd);
    gpt_free(&m);
}

/* The config check: unknown pos, RoPE numbers on a learned model, bad base or scale, odd
 * head dim; each error names the field. */
Test(model_rope, config_check) {
    const struct { int pos; float base, scale; int heads; const char *needle; } bad[] = {
        {2, 0, 0, 2, "pos = 2"},
        {GPT_POS_LEARNED, 10000.0f, 0, 2, "rope_base"},
        {GPT_POS_ROPE, 0, 1, 2, "rope_base = 0"},
        {GPT_POS_ROPE, -5, 1, 2, "rope_base = -5"},
        {GPT_POS_ROPE, NAN, 1, 2, "rope_base = nan"},
        {GPT_POS_ROPE, 10000.0f, 0, 2, "rope_scale = 0"},
        {GPT_POS_ROPE, 10000.0f, INFINITY, 2, "rope_scale = inf"},
        {GPT_POS_ROPE, 10000.0f, 1, 4, "head dim 3"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gpt_config c = tiny_config();
        c.pos = bad[i].pos, c.rope_base = bad[i].base, c.rope_scale = bad[i].scale;
        c.heads = bad[i].heads;
        sattn_err e;
        cr_assert_eq(gpt_config_check(&c, &e), -1, "case %zu accepted", i);
        cr_assert_not_null(strstr(e.msg, bad[i].needle), "case %zu: '%s' lacks '%s'", i, e.msg,
                           bad[i].needle);
    }
    gpt_config ok = rope_config(10000.0f, 1.0f, 0);
    sattn_err e;
    cr_assert_eq(gpt_config_check(&ok, &e), 0, "%s", e.msg);
}
