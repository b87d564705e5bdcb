/* Cached decoding of tile-shared layers (tile=1; hybrid_decode.h "tile"), against the
 * hybrid's whole-window forward (GPT_ATTN_HOOK, tblock_select + tblock_forward):
 *  - at every step of a greedy run the decode's logits equal the forward's over the same
 *    window, to 1e-5 of max(1, |logit|): b = 5 and 8 (not multiples of the kernels' 6 and
 *    16), prompts of 1 token, inside a tile and on a tile boundary, runs that cross many
 *    tile boundaries and restart the window (re-prefill: max_seq 48, 60 tokens), RoPE and
 *    learned positions, n = 1 (own block only), 2, 3, layers with different b;
 *  - a rewind (what `sattn bench-generate` does between runs) to inside a tile, to a
 *    boundary and to one token decodes as a fresh prefill does;
 *  - sampling (temperature 0 and 0.8) gives the recompute's tokens (sample_tokens_recompute,
 *    one hybrid forward per token): the text `sattn sample --heads` prints;
 *  - a rewind on a cache this hook was not given the queries of is refused (death test);
 *  - the decode timers count. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
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
#define MAXT 48
#define V 40
#define NGEN 60

static void make_model(gpt_model *m, int pos, uint64_t seed) {
    gpt_config c = {MAXT, V, V, L, H, C, GPT_ATTN_HOOK, pos, 10000.0f, 1.0f};
    rng_t r;
    rng_seed(&r, seed);
    gpt_create(m, &c);
    gpt_init_random(m, &r);
    /* larger weights than GPT-2's init: attention and the selection far from uniform */
    for (size_t i = 0; i < m->num_params; i++) m->params_mem[i] *= 4.0f;
}

typedef struct {
    gpt_model m;
    sparse_heads sh;
    hybrid hy;
    hdec hd;
} fixture;

static void fx_open(fixture *f, const char *plan, int pos, uint64_t seed) {
    make_model(&f->m, pos, seed);
    head_spec specs[L * H];
    sattn_err e;
    rng_t r;
    rng_seed(&r, seed + 1);
    cr_assert_eq(plan_parse(plan, NULL, L, H, specs, &e), 0, "%s", e.msg);
    sparse_heads_create(&f->sh, L, H, C / H, MAXT, specs, &r);
    for (int i = 0; i < L * H; i++) /* cmp=1 gates away from their zero init */
        for (size_t j = 0; j < f->sh.h[i].n_fn; j++) f->sh.h[i].params[f->sh.h[i].n_sel + j] = 0.5f * rng_normal(&r);
    hybrid_init(&f->hy, &f->sh, C, H);
    hybrid_attach(&f->hy, &f->m);
    hdec_init(&f->hd, &f->hy, MAXT);
}

static void fx_close(fixture *f) {
    hybrid_detach(&f->m);
    hdec_free(&f->hd);
    hybrid_free(&f->hy);
    sparse_heads_free(&f->sh);
    gpt_free(&f->m);
}

static int argmax(const float *p, int n) {
    int b = 0;
    for (int j = 1; j < n; j++) b = p[j] > p[b] ? j : b;
    return b;
}

/* The forward's logits for the last position of ctx[0..T) against g's current logits. */
static void check_logits(fixture *f, const gen_state *g, const int *ctx, int T, const char *what, int step) {
    int Vp = f->m.cfg.padded_vocab;
    gpt_forward(&f->m, ctx, NULL, 1, T);
    const float *ref = f->m.acts.logits + (size_t)(T - 1) * Vp;
    for (int j = 0; j < V; j++)
        cr_assert(fabsf(g->logits[j] - ref[j]) <= 1e-5f * fmaxf(1.0f, fabsf(ref[j])),
                  "%s step %d (window of %d): logit %d is %.8g, forward %.8g", what, step, T, j, g->logits[j], ref[j]);
}

/* Greedy run of n tokens after a prompt of plen, the logits checked at every step (window
 * restarts re-prefill, as gen_sample does). */
static void greedy(fixture *f, int plen, int n, const char *what) {
    int ctx[MAXT + NGEN + 8], len = plen, start;
    for (int i = 0; i < plen; i++) ctx[i] = (7 * i + 3) % V;
    gen_state g;
    gen_init(&g, &f->m, &f->hd.hook);
    start = gen_window_start(0, len, MAXT);
    gen_prefill(&g, ctx + start, len - start);
    for (int i = 0; i < n; i++) {
        check_logits(f, &g, ctx + start, len - start, what, i);
        int tok = argmax(g.probs, V);
        ctx[len++] = tok;
        int ns = gen_window_start(start, len, MAXT);
        if (ns != start) start = ns, gen_prefill(&g, ctx + start, len - start);
        else gen_decode(&g, tok);
    }
    gen_free(&g);
}

static void tile_case(const char *plan, int pos, const int *prompts, int np) {
    fixture f;
    fx_open(&f, plan, pos, 31);
    for (int i = 0; i < np; i++) greedy(&f, prompts[i], NGEN, plan);
    cr_assert_gt(f.hd.steps_sparse, 0);
    cr_assert_gt(f.hd.tm.head_s, 0.0, "the decode's attention timer did not count");
    cr_assert_gt(f.hy.tm.select_s, 0.0, "the prefill's selection timer did not count");
    fx_close(&f);
}

/* b = 5: 1 token, inside tile 1 (7), on a boundary (10), in the last tile of the window (33) */
Test(tile_decode, b5_rope, .timeout = 60) {
    int p[] = {1, 7, 10, 33};
    tile_case("all:block+softmax:b=5,n=3,tile=1", GPT_POS_ROPE, p, 4);
}
Test(tile_decode, b8_learned, .timeout = 60) {
    int p[] = {1, 8, 13, 16};
    tile_case("all:block+softmax:b=8,n=2,tile=1", GPT_POS_LEARNED, p, 4);
}
/* n = 1: every tile keeps its own block only (a local window of 0 .. b-1 keys) */
Test(tile_decode, own_block_only, .timeout = 60) {
    int p[] = {1, 6};
    tile_case("all:block+softmax:b=5,n=1,tile=1", GPT_POS_ROPE, p, 2);
}
/* NSA's compressed branch (cmp=1, random gates): the step adds the gated pooled blocks before
 * its tile as the forward does; in one layer of two */
Test(tile_decode, cmp_branch, .timeout = 60) {
    int p[] = {1, 7, 10, 33};
    tile_case("all:block+softmax:b=5,n=2,tile=1,cmp=1", GPT_POS_ROPE, p, 4);
    int q[] = {3, 24};
    tile_case("L0:block+softmax:b=8,n=2,tile=1; L1:block+softmax:b=4,n=3,tile=1,cmp=1", GPT_POS_LEARNED, q, 2);
}

/* layers of different b and n, and n above the number of tiles */
Test(tile_decode, layers_differ, .timeout = 60) {
    int p[] = {3, 24};
    tile_case("L0:block+softmax:b=8,n=3,tile=1; L1:block+softmax:b=5,n=20,tile=1", GPT_POS_ROPE, p, 2);
}
/* a tile layer beside per-head sparse and dense layers (naive prefill: a dense head needs
 * the T x T buffer) */
Test(tile_decode, beside_other_layers, .timeout = 60) {
    fixture f;
    fx_open(&f, "L0:block+softmax:b=5,n=2,tile=1; L1H0:block+softmax:b=4,n=2; L1H1:dense; "
                "L1H2:index+softmax:k=5,r=4,j=2; L1H3:dense",
            GPT_POS_ROPE, 33);
    f.m.cfg.attn = GPT_ATTN_NAIVE;
    greedy(&f, 4, NGEN, "mixed");
    greedy(&f, 15, 20, "mixed");
    fx_close(&f);
}

/* Rewound to T (inside a tile, on a boundary, one token), the decode equals the forward. */
Test(tile_decode, rewind_rebuilds_state, .timeout = 60) {
    fixture f;
    fx_open(&f, "all:block+softmax:b=5,n=2,tile=1", GPT_POS_ROPE, 35);
    int ctx[MAXT], T0 = 40;
    for (int i = 0; i < MAXT; i++) ctx[i] = (11 * i + 5) % V;
    gen_state g;
    gen_init(&g, &f.m, &f.hd.hook);
    gen_prefill(&g, ctx, T0);
    int to[] = {23, 20, 1, 37};
    for (int r = 0; r < 4; r++) {
        gen_rewind(&g, to[r]);
        for (int T = to[r] + 1; T <= T0 + 4 && T <= MAXT; T++) {
            gen_decode(&g, ctx[T - 1]);
            check_logits(&f, &g, ctx, T, "rewind", T);
        }
    }
    gen_free(&g);
    fx_close(&f);
}

/* gen_sample (what `sattn sample --heads` runs) against the recompute through the hybrid. */
Test(tile_decode, sampled_text_matches_recompute, .timeout = 60) {
    fixture f;
    fx_open(&f, "all:block+softmax:b=8,n=2,tile=1", GPT_POS_ROPE, 37);
    float temps[] = {0.0f, 0.8f};
    for (int ti = 0; ti < 2; ti++)
        for (int plen = 1; plen <= 17; plen += 8) {
            int a[MAXT + NGEN], b[MAXT + NGEN], la = plen, lb = plen;
            for (int i = 0; i < plen; i++) a[i] = b[i] = (5 * i + 1) % V;
            rng_t ra, rb;
            rng_seed(&ra, 1337), rng_seed(&rb, 1337);
            gen_state g;
            gen_init(&g, &f.m, &f.hd.hook);
            gen_sample(&g, a, &la, NGEN, temps[ti], &ra);
            gen_free(&g);
            sample_tokens_recompute(&f.m, b, &lb, NGEN, temps[ti], &rb);
            cr_assert_eq(la, lb);
            for (int i = 0; i < la; i++)
                cr_assert_eq(a[i], b[i], "temperature %g, prompt %d: token %d is %d, recompute %d", temps[ti], plen, i,
                             a[i], b[i]);
        }
    fx_close(&f);
}

/* A cache filled without this hook cannot be rewound into it: the queries are missing. */
Test(tile_decode, rewind_without_queries_dies, .signal = SIGABRT) {
    fixture f;
    fx_open(&f, "all:block+softmax:b=5,n=2,tile=1", GPT_POS_ROPE, 39);
    int ctx[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    gen_state g;
    gen_init(&g, &f.m, NULL);
    gen_prefill(&g, ctx, 12);
    g.hook = &f.hd.hook;
    gen_rewind(&g, 10);
}
