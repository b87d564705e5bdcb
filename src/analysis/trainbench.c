/* trainbench: a whole training step, dense flash vs a sparse plan (sattn/trainbench.h). */
#include "sattn/trainbench.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/hybrid.h"
#include "sattn/model.h"

/* The model both variants share: RoPE (the long-context models), max_seq T. */
static gpt_config model_config(const trb_config *c, int T, int attn) {
    gpt_config g = {.max_seq = T, .vocab = c->V, .padded_vocab = gpt_padded_vocab(c->V), .layers = c->L,
                    .heads = c->H, .channels = c->C, .attn = attn, .pos = GPT_POS_ROPE, .rope_base = 10000.0f,
                    .rope_scale = 1.0f};
    return g;
}

static double model_bytes(const gpt_config *g, int B, int T) {
    gpt_mem m = gpt_mem_estimate(g, B, T, 1);
    return m.params + m.optim + m.acts;
}

double trb_bytes(const trb_config *c, const head_spec *specs, int T) {
    sparse_heads sh;
    rng_t r;
    rng_seed(&r, c->seed);
    sparse_heads_create(&sh, c->L, c->H, c->C / c->H, T, specs, &r);
    hybrid hy;
    hybrid_init(&hy, &sh, c->C, c->H);
    gpt_config d = model_config(c, T, GPT_ATTN_FLASH), s = model_config(c, T, hybrid_all_sparse(&sh) ? GPT_ATTN_HOOK : GPT_ATTN_NAIVE);
    double b = model_bytes(&d, c->B, T) + model_bytes(&s, c->B, T) + hybrid_mem_bytes(&hy, c->B, T, omp_get_max_threads());
    hybrid_free(&hy);
    sparse_heads_free(&sh);
    return b;
}

/* One training step, as `sattn train` takes it (clip 1.0, AdamW), timed. */
static double step(gpt_model *m, const int *tok, int B, int T, int t) {
    adamw_config opt = {0.9f, 0.99f, 1e-8f, 0.1f};
    double t0 = time_now();
    gpt_forward(m, tok, tok + 1, B, T);
    gpt_zero_grad(m);
    gpt_backward(m);
    gpt_update(m, 1e-4f, &opt, t, gpt_clip_scale(gpt_grad_norm(m), 1.0f));
    return time_now() - t0;
}

static void make_model(gpt_model *m, const trb_config *c, int T, int attn) {
    gpt_config g = model_config(c, T, attn);
    rng_t r;
    rng_seed(&r, c->seed);
    gpt_create(m, &g);
    gpt_init_random(m, &r);
}

/* Both variants at T: warm-up, then interleaved timed steps; the sparse step's timers. */
static void run_T(const trb_config *c, const sparse_heads *sh, int T, const int *tok, trb_result *res) {
    gpt_model dm, sm;
    hybrid hy;
    hybrid_init(&hy, sh, c->C, c->H);
    if (hy.n_params) hybrid_enable_param_grads(&hy);
    make_model(&dm, c, T, GPT_ATTN_FLASH);
    make_model(&sm, c, T, hybrid_all_sparse(sh) ? GPT_ATTN_HOOK : GPT_ATTN_NAIVE);
    hybrid_attach(&hy, &sm);
    int t = 1;
    for (int w = 0; w < c->warmup; w++, t++) step(&dm, tok, c->B, T, t), step(&sm, tok, c->B, T, t);
    double sel[TRB_MAX_RUNS], fwd[TRB_MAX_RUNS], bwd[TRB_MAX_RUNS];
    for (int r = 0; r < c->runs; r++, t++) {
        res->dense_s[r] = step(&dm, tok, c->B, T, t);
        hybrid_timers before = hy.tm;
        res->sparse_s[r] = step(&sm, tok, c->B, T, t);
        sel[r] = hy.tm.select_s - before.select_s;
        fwd[r] = hy.tm.head_s - before.head_s, bwd[r] = hy.tm.head_bwd_s - before.head_bwd_s;
    }
    res->runs = c->runs;
    pt_dense(&res->dense, res->dense_s, c->runs);
    pt_split(&res->sparse, res->sparse_s, sel, fwd, bwd, c->runs);
    hybrid_detach(&sm);
    gpt_free(&dm), gpt_free(&sm);
    hybrid_free(&hy);
}

static void row_names(trb_result *res, const trb_config *c, const char *label, int T) {
    phase_row *rows[2] = {&res->dense, &res->sparse};
    for (int i = 0; i < 2; i++) {
        phase_row *p = rows[i];
        p->stage = PT_TRAIN, p->L = c->L, p->H = c->H, p->C = c->C, p->T = T;
    }
    snprintf(res->dense.variant, sizeof res->dense.variant, "train-flash");
    snprintf(res->sparse.variant, sizeof res->sparse.variant, "train-%.*s", BENCH_NAME_LEN - 8, label);
}

void trb_run(const trb_config *c, const head_spec *specs, const char *label,
             void (*done)(const trb_result *r, void *user), void (*note)(const char *msg, void *user), void *user) {
    for (int i = 0; i < c->n_seqs; i++) {
        int T = c->seqs[i];
        double need = trb_bytes(c, specs, T);
        if (need > c->max_bytes) {
            char msg[160];
            snprintf(msg, sizeof msg, "T=%d skipped: the two models need %.2f GB (above the limit)", T, need / 1e9);
            if (note) note(msg, user);
            continue;
        }
        sparse_heads sh;
        rng_t r;
        rng_seed(&r, c->seed + 1);
        sparse_heads_create(&sh, c->L, c->H, c->C / c->H, T, specs, &r);
        size_t n = (size_t)c->B * T + 1;
        int *tok = xmalloc(n * sizeof(int));
        for (size_t k = 0; k < n; k++) tok[k] = (int)rng_below(&r, (uint64_t)c->V);
        trb_result res = {.T = T, .bytes = need};
        row_names(&res, c, label, T);
        run_T(c, &sh, T, tok, &res);
        free(tok);
        sparse_heads_free(&sh);
        if (done) done(&res, user);
    }
}
