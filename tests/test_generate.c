/* KV-cache generation (generate.h, hybrid_decode.h) against the recompute.
 *
 * What is guaranteed, and so tested: at every step the cache's logits equal the logits of
 * a full forward over the same window to float rounding (1e-4 here: the decode step's
 * one-row products and attention sum in another order than the batched forward), and
 * greedy output is then identical token for token wherever no two logits are that close,
 * which holds for these seeds (the test would say which step otherwise). Sampled output
 * (temperature 0.8) draws the same uniforms (one per token) from the same rng, so it is
 * identical unless a draw falls within ~1e-6 of a boundary between two tokens' cumulative
 * probabilities: not guaranteed in principle, but fixed by the seed, so checked here too.
 * Below a hybrid's length threshold the cache is bitwise the dense cache (the same calls).
 *
 * Windows: max_seq 24, so the runs of 40 tokens restart the window (generate.h's
 * full-context rule) and re-prefill; block heads use blocks of 4, so prompts of 1 and
 * of 9 tokens (longer than two blocks) are both covered. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/generate.h"
#include "sattn/hybrid.h"
#include "sattn/hybrid_decode.h"
#include "sattn/plan.h"
#include "sattn/train.h"

#define L 2
#define H 4
#define C 32
#define MAXT 24
#define V 40
#define NGEN 40

static void make_model(gpt_model *m, int attn, uint64_t seed) {
    gpt_config c = {MAXT, V, V, L, H, C, attn, GPT_POS_LEARNED, 0, 0};
    rng_t r;
    rng_seed(&r, seed);
    gpt_create(m, &c);
    gpt_init_random(m, &r);
    /* larger weights than GPT-2's init: attention far from uniform, logits spread out */
    for (size_t i = 0; i < m->num_params; i++) m->params_mem[i] *= 4.0f;
}

static void make_heads(sparse_heads *sh, const char *plan, uint64_t seed) {
    head_spec specs[L * H];
    sattn_err e;
    rng_t r;
    rng_seed(&r, seed);
    cr_assert_eq(plan_parse(plan, NULL, L, H, specs, &e), 0, "%s", e.msg);
    sparse_heads_create(sh, L, H, C / H, MAXT, specs, &r);
}

static int argmax(const float *p, int n) {
    int b = 0;
    for (int j = 1; j < n; j++) b = p[j] > p[b] ? j : b;
    return b;
}

/* Greedy generation of n tokens after prompt (plen) with the cache, step by step as
 * gen_sample runs it; at each step a full forward of the same window (the recompute,
 * through m->attn when a hybrid is attached) must give the same logits (to tol) and
 * the same token. Returns the number of prefills. */
static long greedy_matches(gpt_model *m, const gen_decode_hook *hook, int plen, int n, float tol) {
    int ctx[64], len = plen, Vp = m->cfg.padded_vocab;
    for (int i = 0; i < plen; i++) ctx[i] = (7 * i + 3) % V;
    gen_state g;
    gen_init(&g, m, hook);
    int start = gen_window_start(0, len, MAXT);
    gen_prefill(&g, ctx + start, len - start);
    float *lg = malloc(sizeof(float) * (size_t)Vp);
    for (int i = 0; i < n; i++) {
        memcpy(lg, g.logits, sizeof(float) * (size_t)Vp);
        int tok = argmax(g.probs, V), T = len - start;
        gpt_forward(m, ctx + start, NULL, 1, T);
        const float *ref = m->acts.logits + (size_t)(T - 1) * Vp;
        for (int j = 0; j < V; j++)
            cr_assert(fabsf(lg[j] - ref[j]) <= tol * fmaxf(1.0f, fabsf(ref[j])),
                      "step %d (window %d..%d): logit %d is %.7g, recompute %.7g", i, start, len, j, lg[j], ref[j]);
        cr_assert_eq(tok, argmax(m->acts.probs + (size_t)(T - 1) * Vp, V), "step %d: greedy token differs", i);
        ctx[len++] = tok;
        int ns = gen_window_start(start, len, MAXT);
        if (ns != start || (hook && hook->stale && hook->stale(hook->ctx, len - start)))
            start = ns, gen_prefill(&g, ctx + start, len - start);
        else
            gen_decode(&g, tok);
    }
    long prefills = g.st.prefills;
    cr_assert_eq(g.st.prefills + g.st.decodes, n + 1);
    free(lg);
    gen_free(&g);
    return prefills;
}

static void dense_case(int attn) {
    gpt_model m;
    make_model(&m, attn, 11);
    greedy_matches(&m, NULL, 1, NGEN, 1e-4f);
    /* 9 tokens; 40 more pass max_seq 24 twice: restarts at lengths 25 and 38 (keep 12) */
    cr_assert_eq(greedy_matches(&m, NULL, 9, NGEN, 1e-4f), 3);
    greedy_matches(&m, NULL, 30, 5, 1e-4f); /* a prompt longer than the context */
    gpt_free(&m);
}

Test(generate, dense_naive_matches_recompute) { dense_case(GPT_ATTN_NAIVE); }

/* RoPE: the decode step rotates the new token's q, k at its position, as gpt_forward does
 * for that row of the window (also after the window restarts at position 0). */
static void rope_case(int attn, float scale) {
    gpt_model m;
    gpt_config c = {MAXT, V, V, L, H, C, attn, GPT_POS_ROPE, 10000.0f, scale};
    rng_t r;
    rng_seed(&r, 21);
    gpt_create(&m, &c);
    gpt_init_random(&m, &r);
    for (size_t i = 0; i < m.num_params; i++) m.params_mem[i] *= 4.0f;
    greedy_matches(&m, NULL, 1, NGEN, 1e-4f);
    cr_assert_eq(greedy_matches(&m, NULL, 9, NGEN, 1e-4f), 3);
    gpt_free(&m);
}
Test(generate, rope_naive_matches_recompute) { rope_case(GPT_ATTN_NAIVE, 1.0f); }
Test(generate, rope_flash_interpolated_matches_recompute) { rope_case(GPT_ATTN_FLASH, 0.5f); }
Test(generate, dense_flash_matches_recompute) { dense_case(GPT_ATTN_FLASH); }

/* The hybrid (plan) decoding with its sparse heads' incremental state, against the
 * hybrid's recompute, at every length or with a threshold the window crosses. */
static void hybrid_case(const char *plan, int dense_below, int min_prompt) {
    gpt_model m;
    make_model(&m, GPT_ATTN_NAIVE, 12);
    sparse_heads sh;
    make_heads(&sh, plan, 13);
    hybrid hy;
    hybrid_init(&hy, &sh, C, H);
    hybrid_set_dense_below(&hy, dense_below);
    hybrid_attach(&hy, &m);
    hdec hd;
    hdec_init(&hd, &hy, MAXT);
    int prompts[] = {1, 9};
    for (int i = 0; i < 2; i++)
        greedy_matches(&m, &hd.hook, prompts[i] > min_prompt ? prompts[i] : min_prompt, NGEN, 1e-4f);
    cr_assert_gt(hd.steps_sparse, 0, "%s: no decode step ran the sparse heads", plan);
    hybrid_detach(&m);
    hdec_free(&hd);
    hybrid_free(&hy);
    sparse_heads_free(&sh);
    gpt_free(&m);
}

Test(generate, hybrid_block_all_heads) { hybrid_case("all:block+softmax:b=4,n=2", 0, 1); }
Test(generate, hybrid_block_bounds) { hybrid_case("all:block+softmax:b=4,n=3,bounds=1", 0, 1); }
Test(generate, hybrid_index_all_heads) { hybrid_case("all:index+softmax:k=5,r=4,j=2", 0, 1); }
Test(generate, hybrid_index_dynamic_k) { hybrid_case("all:index+softmax:k=6,kmin=2,tau=0.7,r=4,j=2", 0, 1); }
Test(generate, hybrid_pos) { hybrid_case("all:pos+softmax:k=4,hidden=8", 0, 1); }
Test(generate, hybrid_mixed_plan) {
    hybrid_case("L0H0:index+softmax:k=3; L0H1:block+softmax:b=4,n=2; L1H2:pos+softmax:k=3,hidden=8; *:dense", 0, 1);
}
/* mlp heads, from a 1-token prompt: windows shorter than k keep the trained input width */
Test(generate, hybrid_mlp_head) {
    hybrid_case("L0H1:index+mlp:k=4,hidden=8; L1H0:block+mlp:b=4,n=2,hidden=8; *:dense", 0, 1);
}
/* hybrid by length: windows cross 7 going up (re-prefill in sparse mode) and, after a
 * restart at 12 tokens, stay above it */
Test(generate, hybrid_by_length_crosses_threshold) {
    hybrid_case("all:index+softmax:k=3,r=4,j=2; L1H3:dense", 7, 1);
}

/* Below its threshold the hybrid's cache is the dense model's, bit for bit. */
Test(generate, hybrid_below_threshold_is_dense_bitwise) {
    gpt_model m;
    make_model(&m, GPT_ATTN_NAIVE, 14);
    sparse_heads sh;
    make_heads(&sh, "all:block+softmax:b=4,n=2", 15);
    int a[80], b[80], la = 3, lb = 3;
    for (int i = 0; i < 3; i++) a[i] = b[i] = i + 1;
    rng_t ra, rb;
    rng_seed(&ra, 3), rng_seed(&rb, 3);
    gen_state g;
    gen_init(&g, &m, NULL);
    gen_sample(&g, a, &la, NGEN, 0.8f, &ra);
    gen_free(&g);
    hybrid hy;
    hybrid_init(&hy, &sh, C, H);
    hybrid_set_dense_below(&hy, MAXT + 1);
    hybrid_attach(&hy, &m);
    hdec hd;
    hdec_init(&hd, &hy, MAXT);
    gen_init(&g, &m, &hd.hook);
    gen_sample(&g, b, &lb, NGEN, 0.8f, &rb);
    cr_assert(!memcmp(a, b, sizeof a[0] * (size_t)la), "the hybrid below its threshold sampled differently");
    cr_assert_eq(hd.steps_sparse, 0);
    cr_assert_eq(hd.steps_dense, (long)g.st.decodes * L);
    gen_free(&g);
    hybrid_detach(&m);
    hdec_free(&hd);
    hybrid_free(&hy);
    sparse_heads_free(&sh);
    gpt_free(&m);
}

/* gen_sample (and sample_tokens, on it) against sample_tokens_recompute: same tokens at
 * temperature 0 and 0.8, the same number of draws (the rng streams end equal). */
Test(generate, sampled_output_matches_recompute) {
    gpt_model m;
    make_model(&m, GPT_ATTN_NAIVE, 16);
    float temps[] = {0.0f, 0.8f};
    for (int ti = 0; ti < 2; ti++)
        for (int plen = 1; plen <= 9; plen += 8) {
            int a[64], b[64], la = plen, lb = plen;
            for (int i = 0; i < plen; i++) a[i] = b[i] = (5 * i + 1) % V;
            rng_t ra, rb;
            rng_seed(&ra, 1337), rng_seed(&rb, 1337);
            sample_tokens(&m, a, &la, NGEN, temps[ti], &ra);
            sample_tokens_recompute(&m, b, &lb, NGEN, temps[ti], &rb);
            cr_assert_eq(la, plen + NGEN);
            cr_assert_eq(la, lb);
            for (int i = 0; i < la; i++)
                cr_assert_eq(a[i], b[i], "temperature %g, prompt %d: token %d is %d, recompute %d", temps[ti], plen, i,
                             a[i], b[i]);
            cr_assert_eq(rng_uniform(&ra), rng_uniform(&rb), "the two drew a different number of uniforms");
        }
    gpt_free(&m);
}

Test(generate, window_rule) {
    cr_assert_eq(gen_keep(24), 12);
    cr_assert_eq(gen_keep(1), 1);
    cr_assert_eq(gen_keep(3), 1);
    cr_assert_eq(gen_window_start(0, 24, 24), 0);
    cr_assert_eq(gen_window_start(0, 25, 24), 13);
    cr_assert_eq(gen_window_start(13, 37, 24), 13);
    cr_assert_eq(gen_window_start(13, 38, 24), 26);
    cr_assert_eq(gen_window_start(0, 100, 24), 88);
    cr_assert_eq(gen_window_start(0, 5, 1), 4);
}
