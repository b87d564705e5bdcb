/* Tile-shared sparse attention as the model's own attention (tile=1; docs/native_sparse.md):
 *  - an all-tile model (GPT_ATTN_HOOK) has the loss and every parameter gradient of the
 *    same model whose hook runs a plain masked dense attention in double over the same
 *    selection (tblock_select's), on awkward sizes: T not a multiple of b, B = 2, RoPE,
 *    layers with different b and n; the hybrid keeps exactly that selection;
 *  - its hook buffers grow linearly in T;
 *  - the heads file keeps tile (and files without it read as tile = 0);
 *  - plans: tile only with block+softmax, bounds=0, and a whole layer of the same spec;
 *    errors name the field or the head. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sattn/heads.h"
#include "sattn/hybrid.h"
#include "sattn/model.h"
#include "sattn/plan.h"
#include "sattn/tblock.h"

#define NL 2
#define NH 2
#define NC 32
#define NT 37 /* 5 tiles of 8 (the last one 5 queries), 8 tiles of 5 (the last 2) */
#define NV 40
#define NB 2

static void make_model(gpt_model *m, rng_t *r) {
    gpt_config c = {NT, NV, NV, NL, NH, NC, GPT_ATTN_HOOK, GPT_POS_ROPE, 10000.0f, 1.0f};
    gpt_create(m, &c);
    gpt_init_random(m, r);
    /* larger weights than GPT-2's init, so attention and the selection are far from uniform */
    for (size_t i = 0; i < m->num_params; i++) m->params_mem[i] *= 5.0f;
}

static void make_heads(sparse_heads *sh, const char *plan, rng_t *r) {
    head_spec specs[NL * NH];
    sattn_err e;
    cr_assert_eq(plan_parse(plan, NULL, NL, NH, specs, &e), 0, "%s", e.msg);
    sparse_heads_create(sh, NL, NH, NC / NH, NT, specs, r);
}

/* ---- the reference hook: dense masked attention in double over tblock's selection ---- */

typedef struct {
    const sparse_heads *sh;
    tblock_sel sel[NL];
} ref_hook;

/* Query t attends to key s iff s <= t and block(s) is kept by t's tile (tblock.h). */
static int allowed(const tblock_sel *s, int b, int h, int t, int u) {
    if (u > t) return 0;
    int i = t / s->b, blk = u / s->b, n = s->count[((size_t)b * s->H + h) * s->ntiles + i];
    const int *kept = tblock_sel_tile(s, b, h, i);
    for (int j = 0; j < n; j++)
        if (kept[j] == blk) return 1;
    return 0;
}

/* P_t over the allowed keys (0 elsewhere), in double. */
static void probs(const tblock_sel *s, const float *qkv, int b, int h, int t, double *p) {
    int hs = NC / NH;
    const float *q = qkv + ((size_t)b * NT + t) * 3 * NC + h * hs;
    double mx = -INFINITY, sum = 0;
    for (int u = 0; u < NT; u++) {
        p[u] = -INFINITY;
        if (!allowed(s, b, h, t, u)) continue;
        const float *k = qkv + ((size_t)b * NT + u) * 3 * NC + NC + h * hs;
        double z = 0;
        for (int d = 0; d < hs; d++) z += (double)q[d] * k[d];
        p[u] = z / sqrt((double)hs);
        mx = p[u] > mx ? p[u] : mx;
    }
    for (int u = 0; u < NT; u++) sum += p[u] = isinf(p[u]) ? 0.0 : exp(p[u] - mx);
    for (int u = 0; u < NT; u++) p[u] /= sum;
}

static void ref_forward(void *ctx, int layer, float *out, float *att, const float *qkv, int b_, int t_) {
    ref_hook *r = ctx;
    (void)att;
    cr_assert(b_ == NB && t_ == NT);
    const head_spec *sp = &r->sh->h[layer * NH].spec;
    tblock_sel *s = &r->sel[layer];
    tblock_sel_free(s);
    sattn_err e;
    cr_assert_eq(tblock_sel_init(s, NB, NH, NT, sp->block, sp->nblocks, &e), 0);
    tblock_select(s, qkv, NC);
    int hs = NC / NH;
    double p[NT];
    for (int b = 0; b < NB; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < NT; t++) {
                probs(s, qkv, b, h, t, p);
                for (int d = 0; d < hs; d++) {
                    double o = 0;
                    for (int u = 0; u < NT; u++) o += p[u] * qkv[((size_t)b * NT + u) * 3 * NC + 2 * NC + h * hs + d];
                    out[((size_t)b * NT + t) * NC + h * hs + d] = (float)o;
                }
            }
}

/* dS = P (dP - sum P dP), dP_u = dout_t . v_u; dq += dS k / sqrt(hs), dk += dS q / sqrt(hs),
 * dv += P dout (accumulated: the model zeroes dqkv). */
static void ref_backward(void *ctx, int layer, float *dqkv, float *scratch, const float *dout, const float *qkv,
                         const float *att, int b_, int t_) {
    ref_hook *r = ctx;
    (void)scratch, (void)att, (void)b_, (void)t_;
    const tblock_sel *s = &r->sel[layer];
    int hs = NC / NH;
    double sc = 1.0 / sqrt((double)hs), p[NT], dp[NT];
    for (int b = 0; b < NB; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < NT; t++) {
                probs(s, qkv, b, h, t, p);
                const float *q = qkv + ((size_t)b * NT + t) * 3 * NC + h * hs, *go = dout + ((size_t)b * NT + t) * NC + h * hs;
                double D = 0;
                for (int u = 0; u < NT; u++) {
                    const float *v = qkv + ((size_t)b * NT + u) * 3 * NC + 2 * NC + h * hs;
                    dp[u] = 0;
                    for (int d = 0; d < hs; d++) dp[u] += (double)go[d] * v[d];
                    D += p[u] * dp[u];
                }
                for (int u = 0; u < NT; u++) {
                    if (p[u] == 0) continue;
                    double ds = p[u] * (dp[u] - D) * sc;
                    size_t ku = ((size_t)b * NT + u) * 3 * NC + h * hs, qt = ((size_t)b * NT + t) * 3 * NC + h * hs;
                    for (int d = 0; d < hs; d++) {
                        dqkv[qt + d] += (float)(ds * qkv[ku + NC + d]);
                        dqkv[ku + NC + d] += (float)(ds * q[d]);
                        dqkv[ku + 2 * NC + d] += (float)(p[u] * go[d]);
                    }
                }
            }
}

static void rand_batch(int *in, int *tg, rng_t *r) {
    for (int i = 0; i < NB * NT; i++) in[i] = (int)rng_below(r, NV), tg[i] = (int)rng_below(r, NV);
}

/* One forward + backward of m with hook hk; returns the loss. */
static float step(gpt_model *m, const gpt_attn_hook *hk, const int *in, const int *tg) {
    m->attn = hk;
    gpt_forward(m, in, tg, NB, NT);
    gpt_zero_grad(m);
    gpt_backward(m);
    return m->mean_loss;
}

static void check_against_reference(const char *plan, unsigned seed) {
    gpt_model m;
    sparse_heads sh;
    rng_t r;
    rng_seed(&r, seed);
    make_model(&m, &r);
    make_heads(&sh, plan, &r);
    cr_assert(hybrid_all_sparse(&sh));
    int in[NB * NT], tg[NB * NT];
    rand_batch(in, tg, &r);
    hybrid hy;
    hybrid_init(&hy, &sh, NC, NH);
    for (int l = 0; l < NL; l++) cr_assert(hy.tile_layer[l], "layer %d not run as tblock", l);
    float *g = malloc(m.num_params * sizeof(float));
    float lt = step(&m, &hy.hook, in, tg);
    memcpy(g, m.grads_mem, m.num_params * sizeof(float));
    ref_hook rh = {.sh = &sh};
    gpt_attn_hook rk = {ref_forward, ref_backward, &rh};
    float lr = step(&m, &rk, in, tg);
    cr_assert(isfinite(lt) && fabsf(lt - lr) <= 1e-5f * fabsf(lr), "%s: loss %.8g, reference %.8g", plan, lt, lr);
    /* the hybrid kept the selection the reference recomputed from the same q, k */
    for (int l = 0; l < NL; l++) {
        const tblock_sel *a = &hy.tsel[l], *b = &rh.sel[l];
        size_t nb = (size_t)NB * NH * a->ntiles;
        cr_assert(a->ntiles == b->ntiles && !memcmp(a->count, b->count, nb * sizeof(int)) &&
                  !memcmp(a->blocks, b->blocks, nb * a->n * sizeof(int)), "layer %d selection differs", l);
        /* and it is a real subset: some tile drops an earlier block */
        int dropped = 0;
        for (size_t i = 0; i < nb; i++) dropped |= a->count[i] < (int)(i % a->ntiles) + 1;
        cr_assert(dropped, "layer %d: every tile kept every block", l);
    }
    /* every parameter tensor: max |a - b| / max |b| */
    size_t off = 0;
    for (int i = 0; i < GPT_NUM_TENSORS; i++) {
        size_t n = m.param_sizes[i];
        double dm = 0, bm = 0;
        for (size_t j = 0; j < n; j++) {
            double d = fabs((double)g[off + j] - m.grads_mem[off + j]);
            dm = d > dm ? d : dm;
            bm = fabs(m.grads_mem[off + j]) > bm ? fabs(m.grads_mem[off + j]) : bm;
        }
        cr_assert(dm <= 1e-4 * bm + 1e-7, "%s: tensor %d: gradient off by %g (max %g)", plan, i, dm, bm);
        off += n;
    }
    for (int l = 0; l < NL; l++) tblock_sel_free(&rh.sel[l]);
    free(g);
    hybrid_free(&hy);
    m.attn = NULL;
    gpt_free(&m);
    sparse_heads_free(&sh);
}

Test(tile_native, loss_and_gradients_equal_masked_reference, .timeout = 60) {
    check_against_reference("all:block+softmax:b=8,n=2,tile=1", 7);
    /* layers of their own b and n (the lse and selection are per layer) */
    check_against_reference("L0:block+softmax:b=8,n=3,tile=1; L1:block+softmax:b=5,n=2,tile=1", 11);
}

/* Causality: the all-tile model's loss at every position u <= t is the same from the whole
 * window's forward as from the forward of the prefix [0, t] alone, for every t (the tiles'
 * selection uses only earlier tiles' queries). With the pooled query of a tile's own queries
 * (the first definition) the prefix changes the last tile's selection and this fails. */
Test(tile_native, outputs_do_not_depend_on_later_tokens, .timeout = 60) {
    gpt_model m;
    sparse_heads sh;
    rng_t r;
    rng_seed(&r, 23);
    make_model(&m, &r);
    make_heads(&sh, "L0:block+softmax:b=4,n=2,tile=1; L1:block+softmax:b=5,n=2,tile=1", &r);
    hybrid hy;
    hybrid_init(&hy, &sh, NC, NH);
    hybrid_attach(&hy, &m);
    int in[NB * NT], tg[NB * NT];
    float full[NT];
    rand_batch(in, tg, &r);
    gpt_forward(&m, in, tg, 1, NT);
    memcpy(full, m.acts.losses, sizeof full);
    for (int t = 0; t < NT; t++) {
        gpt_forward(&m, in, tg, 1, t + 1);
        for (int u = 0; u <= t; u++)
            cr_assert(fabsf(m.acts.losses[u] - full[u]) <= 1e-5f * fabsf(full[u]) + 1e-6f,
                      "prefix [0,%d]: loss at %d is %.8g, whole window %.8g", t, u, m.acts.losses[u], full[u]);
    }
    hybrid_detach(&m);
    hybrid_free(&hy);
    sparse_heads_free(&sh);
    gpt_free(&m);
}

Test(tile_native, buffers_linear_in_T) {
    head_spec specs[16];
    sattn_err e;
    cr_assert_eq(plan_parse("all:block+softmax:b=64,n=8,tile=1", NULL, 4, 4, specs, &e), 0, "%s", e.msg);
    sparse_heads sh;
    rng_t r;
    rng_seed(&r, 1);
    sparse_heads_create(&sh, 4, 4, 64, 16384, specs, &r);
    hybrid hy;
    hybrid_init(&hy, &sh, 256, 4);
    double m4 = hybrid_mem_bytes(&hy, 1, 4096, 2), m16 = hybrid_mem_bytes(&hy, 1, 16384, 2);
    cr_assert(m16 / m4 < 4.01, "grow %.3fx from 4096 to 16384", m16 / m4);
    /* lse (NL NH NT floats) + scratch (NT (NH + G NC)) + a small selection: no per-query index lists */
    cr_assert(m16 < 40e6, "%g bytes at T = 16384", m16);
    hybrid_free(&hy);
    sparse_heads_free(&sh);
}

Test(tile_native, heads_file_keeps_tile) {
    char dir[] = "/tmp/sattn_tileXXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[96];
    snprintf(path, sizeof path, "%s/h.sparse", dir);
    gpt_config c = {NT, NV, NV, NL, NH, NC, GPT_ATTN_HOOK, GPT_POS_ROPE, 10000.0f, 1.0f};
    rng_t r;
    rng_seed(&r, 2);
    sparse_heads sh, back;
    make_heads(&sh, "L0:block+softmax:b=8,n=3,tile=1; L1:block+softmax:b=4,n=2", &r);
    sattn_err e;
    cr_assert_eq(heads_save(path, &sh, &c, &e), 0, "%s", e.msg);
    cr_assert_eq(heads_load(path, &back, &c, &e), 0, "%s", e.msg);
    for (int i = 0; i < NL * NH; i++) cr_assert_eq(back.h[i].spec.tile, i < NH, "head %d", i);
    sparse_heads_free(&back);
    /* word 13 of a head's spec is the tile flag: a mixed layer read back is refused */
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    uint32_t zero = 0;
    fseek(f, 256 + 64 + 16 + 13 * 4, SEEK_SET); /* header, L0H0's spec and counts (block: 0 params) */
    fwrite(&zero, 4, 1, f);
    fclose(f);
    cr_assert_neq(heads_load(path, &back, &c, &e), 0);
    cr_assert(strstr(e.msg, "checksum") || strstr(e.msg, "tile=1"), "%s", e.msg);
    sparse_heads_free(&sh);
    unlink(path);
    rmdir(dir);
}

static void plan_fails(const char *plan, const char *needle) {
    head_spec specs[NL * NH];
    sattn_err e;
    cr_assert_neq(plan_parse(plan, NULL, NL, NH, specs, &e), 0, "%s accepted", plan);
    cr_assert(strstr(e.msg, needle) && !strchr(e.msg, '\n'), "%s: '%s' lacks '%s'", plan, e.msg, needle);
}

Test(tile_native, plan_errors_name_the_field) {
    plan_fails("all:block+softmax:tile=2", "option 'tile', expected 0 or 1");
    plan_fails("all:block+softmax:tile=", "option 'tile'");
    plan_fails("all:index+softmax:k=4,tile=1", "option 'tile' does not apply");
    plan_fails("all:pos+softmax:tile=1", "option 'tile' does not apply");
    plan_fails("all:block+mlp:tile=1", "tile = 1 with the mlp head function");
    plan_fails("all:block+softmax:bounds=1,tile=1", "tile = 1 with bounds=1");
    plan_fails("L0H0:block+softmax:tile=1", "head L0H1 is dense but L0H0 is block+softmax:b=16,n=4,tile=1");
    plan_fails("L0H0:block+softmax:b=8,tile=1; L0H1:block+softmax:b=16,tile=1", "head L0H1");
    plan_fails("L0H0:block+softmax:tile=1; L0H1:block+softmax", "every head of layer 0");
    /* the text form round-trips */
    head_spec specs[NL * NH];
    sattn_err e;
    cr_assert_eq(plan_parse("all:block+softmax:b=8,n=3,tile=1", NULL, NL, NH, specs, &e), 0, "%s", e.msg);
    char buf[128];
    head_spec_format(&specs[0], buf, sizeof buf);
    cr_assert_str_eq(buf, "block+softmax:b=8,n=3,tile=1");
    cr_assert_eq(plan_parse("all:block+softmax:b=8,n=3,tile=0", NULL, NL, NH, specs, &e), 0, "%s", e.msg);
    head_spec_format(&specs[0], buf, sizeof buf);
    cr_assert_str_eq(buf, "block+softmax:b=8,n=3");
}

/* The per-head selector with tile=1 (what eval's per-head metrics use) lists for every query
 * exactly the keys tblock's selection lets it attend to (random q, k: no near-ties). */
Test(tile_native, per_head_selector_matches_tblock) {
    const int b = 5, n = 3, hs = NC / NH;
    rng_t r;
    rng_seed(&r, 9);
    float *qkv = malloc((size_t)NT * 3 * NC * sizeof(float));
    for (size_t i = 0; i < (size_t)NT * 3 * NC; i++) qkv[i] = rng_normal(&r);
    tblock_sel s;
    sattn_err e;
    cr_assert_eq(tblock_sel_init(&s, 1, NH, NT, b, n, &e), 0);
    tblock_select(&s, qkv, NC);
    head_spec spec = head_spec_default();
    spec.sel = SEL_BLOCK, spec.block = b, spec.nblocks = n, spec.tile = 1;
    cr_assert_eq(head_spec_check(&spec, &e), 0, "%s", e.msg);
    head_scratch hsr;
    head_scratch_init(&hsr, &spec, hs, NT);
    for (int h = 0; h < NH; h++) {
        const float *q = qkv + h * hs;
        selector_select(&spec, NULL, hs, NT, q, q + NC, 3 * NC, NT, hsr.idx, hsr.score, hsr.count, hsr.work);
        for (int t = 0; t < NT; t++) {
            int want = 0;
            for (int u = 0; u < NT; u++) want += allowed(&s, 0, h, t, u);
            cr_assert_eq(hsr.count[t], want, "head %d query %d: %d keys, tblock %d", h, t, hsr.count[t], want);
            for (int j = 0; j < hsr.count[t]; j++)
                cr_assert(allowed(&s, 0, h, t, hsr.idx[(size_t)t * hsr.kmax + j]), "head %d query %d key %d", h, t,
                          hsr.idx[(size_t)t * hsr.kmax + j]);
        }
    }
    head_scratch_free(&hsr);
    tblock_sel_free(&s);
    free(qkv);
}
