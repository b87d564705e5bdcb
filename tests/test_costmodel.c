/* Tests for the analytic cost model of one attention layer (sattn/costmodel.h):
 * hand-computed cases for every term, naive vs flash, decode against the prefill
 * formulas, the crossover search, block's O(T/b) per-query growth, and `sattn flops`
 * (its JSON and CSV, and one-line errors for bad flags). */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "sattn/autoplan.h"
#include "sattn/costmodel.h"
#include "sattn/plan.h"

static cm_cost cost(int C, int H, int T, int Br, int decode, cm_variant v) {
    cm_shape s = cm_shape_make(C, H, T);
    s.Br = Br, s.decode = decode;
    cm_cost c;
    cm_cost_of(&s, &v, &c);
    return c;
}

static cm_variant sp(const char *text) {
    head_spec s = test_spec_of(text);
    return cm_sparse(&s);
}

/* ---------------------------------------------------------- projections ---- */

/* C 4, T 3: 2*3*4*12 + 2*3*4*4 = 384 = 2*T*C*4C; bytes 4*(6*3*4 + 4*16) = 544. */
Test(costmodel, projections_exact) {
    cm_cost c = cost(4, 2, 3, 64, 0, cm_dense(CM_FLASH));
    cr_assert_eq(c.proj_flops, 384);
    cr_assert_eq(c.proj_bytes, 544);
    cr_assert_eq(c.flops, c.proj_flops + c.attn_flops);
    cm_cost d = cost(4, 2, 3, 64, 1, cm_dense(CM_FLASH)); /* one query: 2*4*16 */
    cr_assert_eq(d.proj_flops, 128);
    cr_assert_eq(d.proj_bytes, 4 * (6 * 4 + 4 * 16));
    for (int C = 64; C <= 1024; C *= 2)
        for (int T = 1; T <= 4096; T *= 4) {
            cm_shape s = cm_shape_make(C, 8, T);
            cr_assert_eq(cm_proj_flops(&s), 2.0 * T * C * 4 * C);
        }
}

/* ------------------------------------------------------------ dense ---- */

/* C 8, H 2 (d 4), T 5, Br 64 >= T: per head naive q,out 40 + k,v 40 + T x T 50 = 130;
 * flash 40 + 2*4*5 = 80; the difference is the T x T term 2*T^2 per head. */
Test(costmodel, naive_and_flash) {
    cm_cost n = cost(8, 2, 5, 64, 0, cm_dense(CM_NAIVE)), f = cost(8, 2, 5, 64, 0, cm_dense(CM_FLASH));
    cr_assert_eq(n.attn_flops, 2 * 2 * 2 * 4 * 15); /* H * 4d * T(T+1)/2 */
    cr_assert_eq(n.attn_flops, f.attn_flops);
    cr_assert_eq(n.attn_bytes, 4 * 2 * 130);
    cr_assert_eq(f.attn_bytes, 4 * 2 * 80);
    cr_assert_eq(n.attn_bytes - f.attn_bytes, 4.0 * 2 * 2 * 25);
    /* Br 2: tiles end at 2, 4, 5 keys: K,V reads 2*4*11 = 88; per head 40 + 88 */
    cr_assert_eq(cost(8, 2, 5, 2, 0, cm_dense(CM_FLASH)).attn_bytes, 4 * 2 * 128);
    /* peak: 4TC + naive H*T^2 ; flash H*2T + one tile min(Br, T)^2 */
    cr_assert_eq(n.peak_bytes, 4.0 * (4 * 5 * 8 + 2 * 25));
    cr_assert_eq(f.peak_bytes, 4.0 * (4 * 5 * 8 + 2 * 2 * 5 + 5 * 5));
    cr_assert_eq(cost(8, 2, 5, 2, 0, cm_dense(CM_FLASH)).peak_bytes, 4.0 * (160 + 20 + 4));
    /* on a large shape the bytes still differ by exactly the T x T term */
    n = cost(512, 8, 4096, 64, 0, cm_dense(CM_NAIVE)), f = cost(512, 8, 4096, 64, 0, cm_dense(CM_FLASH));
    cr_assert_eq(n.flops, f.flops);
    cr_assert_gt(n.bytes, f.bytes);
    double kv = 0;
    for (int end = 64; end <= 4096; end += 64) kv += end;
    cr_assert_eq(n.attn_bytes - f.attn_bytes, 4.0 * 8 * (2.0 * 4096 * 4096 + 2.0 * 4096 * 64 - 2 * 64 * kv));
}

/* decode, C 8, H 2 (d 4), T 5: 4dT = 80 per head; bytes naive 2d + 2Td + 2T = 58. */
Test(costmodel, dense_decode) {
    cm_cost n = cost(8, 2, 5, 64, 1, cm_dense(CM_NAIVE)), f = cost(8, 2, 5, 64, 1, cm_dense(CM_FLASH));
    cr_assert_eq(n.attn_flops, 2 * 80);
    cr_assert_eq(f.attn_flops, 2 * 80);
    cr_assert_eq(n.attn_bytes, 4 * 2 * 58);
    cr_assert_eq(f.attn_bytes, 4 * 2 * 48);
    cr_assert_eq(f.peak_bytes, 4.0 * (2 * 5 * 8 + 2 * 8 + 2 * 2));
}

/* ----------------------------------------------------------- sparse ---- */

/* Prefill attention FLOPs of every sparse kind, worked by hand (autoplan.h's per-head
 * formulas), H 3 heads of d 2 (C 6), T 5: P = 15 causal pairs.
 * |S_t| for k 2: min(2, t+1) = 1,2,2,2,2, keys 9. Block b 2, n 2: nb(t) = t/2 = 0,0,1,1,2
 * (cands 4), |S_t| = t%2 + 1 + 2*min(1, nb) = 1,2,3,4,3 (keys 13), kmax = b*n = 4.
 *   pos (hidden 4):   2*(4*2 + 4*5)*5 + P = 280 + 15                           = 295
 *   index (r 1, J 1): 2*(1*1*2 + 1*2 + 1*2)*5 + (2*1*1 + 1)*P + P = 60 + 45 + 15  = 120
 *   block:            d*T + 2*d*cands + cands = 10 + 16 + 4                      =  30
 *   block, bounds:    2*d*T + 2*2*d*cands + cands = 20 + 32 + 4                  =  56
 *   softmax:          4*d*keys: k 2 4*2*9 = 72; block 4*2*13                     = 104
 *   mlp (hidden 4, q and logits): D = kmax*d + d + kmax, 2*(4*D + 2*4)*T + 2*d*keys:
 *     k 2: D 8, 2*40*5 + 2*2*9 = 400 + 36 = 436; block: D 14, 2*64*5 + 2*2*13 = 640 + 52 = 692
 * and one at the default index shape, d 32, T 300 (P 45150, k 16: keys 136 + 284*16 = 4680):
 *   2*(4*16*32 + 16*32 + 4*32)*300 + (2*4*16 + 4 + 1)*P + 4*32*4680
 *   = 1612800 + 6004950 + 599040 = 8216790 per head. */
Test(costmodel, sparse_flops_by_hand) {
    static const struct {
        const char *spec;
        double per_head;
    } cases[] = {{"pos+softmax:k=2,hidden=4", 295 + 72},
                 {"pos+mlp:k=2,hidden=4", 295 + 436},
                 {"index+softmax:k=2,r=1,j=1", 120 + 72},
                 {"index+mlp:k=2,r=1,j=1,hidden=4", 120 + 436},
                 {"block+softmax:b=2,n=2", 30 + 104},
                 {"block+mlp:b=2,n=2,bounds=1,hidden=4", 56 + 692}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        double got = cost(6, 3, 5, 64, 0, sp(cases[i].spec)).attn_flops;
        cr_assert_eq(got, 3 * cases[i].per_head, "%s: %.0f FLOPs, expected 3 x %.0f", cases[i].spec,
                     got, cases[i].per_head);
    }
    cr_assert_eq(cost(96, 3, 300, 64, 0, sp("index+softmax:k=16")).attn_flops, 3 * 8216790.0);
    /* block b=2, n=2, d=1, T=5 (autoplan's hand case, 69 per head) */
    cr_assert_eq(cost(2, 2, 5, 64, 0, sp("block+softmax:b=2,n=2")).attn_flops, 2 * 69);
}

/* tile=1 (tblock's selection, once per tile) and cmp=1 (tcmp), C 6, H 3 (d 2), T 5, b 2, n 2:
 * keys as per-query block: 1+2+3+4+3 = 13, softmax 4 d 13 = 104; selection: means 2 d T = 20
 * and tiles i = 0, 1, 2 scoring i blocks: (2d i + i) = 0 + 5 + 10, so 35; cmp: mean values
 * d T = 10 and per query of tile i 4 d i + 2 d: 2 x 4 + 2 x 12 + 1 x 20 = 52, so 62.
 * Decode at T = 5 (t = 4, tile 2): selection (2d 2 + 2 + 2d) / b = 7, softmax 4 d 3 = 24;
 * cmp: 4 d 2 + 2 d + d / b = 21. Its analytic T* is finite and below per-query block's. */
Test(costmodel, tile_flops_by_hand) {
    cr_assert_eq(cost(6, 3, 5, 64, 0, sp("block+softmax:b=2,n=2,tile=1")).attn_flops, 3 * (35.0 + 104));
    cr_assert_eq(cost(6, 3, 5, 64, 0, sp("block+softmax:b=2,n=2,tile=1,cmp=1")).attn_flops, 3 * (35.0 + 62 + 104));
    cr_assert_eq(cost(6, 3, 5, 64, 1, sp("block+softmax:b=2,n=2,tile=1")).attn_flops, 3 * (7.0 + 24));
    cr_assert_eq(cost(6, 3, 5, 64, 1, sp("block+softmax:b=2,n=2,tile=1,cmp=1")).attn_flops, 3 * (7.0 + 24 + 21));
    cm_shape sh = cm_shape_make(512, 8, 0);
    cm_variant t = sp("block+softmax:b=64,n=8,tile=1"), q = sp("block+softmax:b=64,n=8");
    int tt = cm_crossover(&sh, &t, 1 << 20), tq = cm_crossover(&sh, &q, 1 << 20);
    cr_assert(tt > 0 && tt <= tq, "tile T* %d, per-query block %d", tt, tq);
}

/* block b=2, n=2, C 2, H 2 (d 1), T 5: keys 13, scored blocks 4; per head floats:
 * q, out 10 + k,v rows 26 + selection 26 + K read 5 + summaries 2 + their reads by
 * the one query tile (its last query, t = 4, has floor(4/2) = 2 blocks before it) 2 = 71;
 * with Br 1 every query is a tile: the reads are sum_t nb(t) = 4, 73.
 * peak: 4TC 40 + H*((2*kmax+1)*T + d*nb + nb), kmax 4, nb 3: 2*(45 + 6) = 102. */
Test(costmodel, block_bytes_and_peak) {
    cm_cost c = cost(2, 2, 5, 64, 0, sp("block+softmax:b=2,n=2"));
    cr_assert_eq(c.attn_bytes, 4 * 2 * 71);
    cr_assert_eq(c.peak_bytes, 4.0 * (40 + 102));
    cr_assert_eq(cost(2, 2, 5, 1, 0, sp("block+softmax:b=2,n=2")).attn_bytes, 4 * 2 * 73);
}

/* index J 1, r 1, k 1, d 2, T 2, Br 64: q,out 8 + k,v rows 2*2*2 = 8 + selection 4 +
 * selector: q,k 8, q~ k~ w 3*2 = 6, k~ re-reads 1*2 = 2: 36 per head. */
Test(costmodel, index_bytes) {
    cm_cost c = cost(2, 1, 2, 64, 0, sp("index+softmax:k=1,r=1,j=1"));
    cr_assert_eq(c.attn_bytes, 4 * 36);
    /* pos: the logits row written and read for every candidate key, 2P = 6 */
    c = cost(2, 1, 2, 64, 0, sp("pos+softmax:k=1,hidden=4"));
    cr_assert_eq(c.attn_bytes, 4 * (8 + 8 + 4 + 6));
}

/* One decode step equals the prefill formula's increment from T-1 to T queries for
 * every variant whose per-query cost does not depend on T otherwise (not pos: its
 * output layer spans all T positions, nor mlp while kmax changes). */
Test(costmodel, decode_is_last_query) {
    const char *specs[] = {"index+softmax:k=16", "index+mlp:k=4,r=4,j=2,hidden=16",
                           "block+softmax:b=8,n=4", "block+softmax:b=4,n=2,bounds=1"};
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++)
        for (int T = 40; T <= 400; T += 29) {
            head_spec s = test_spec_of(specs[i]);
            double want = head_attention_flops(&s, 16, T) - head_attention_flops(&s, 16, T - 1);
            cr_assert_eq(cost(32, 2, T, 64, 1, cm_sparse(&s)).attn_flops, 2 * want, "%s T %d", specs[i], T);
        }
    /* index J 1, r 1, k 1, d 2, T 2 by hand: 2*(2+2+2) + (2+1+1)*2 + 4*2*1 = 28 */
    cr_assert_eq(cost(2, 1, 2, 64, 1, sp("index+softmax:k=1,r=1,j=1")).attn_flops, 28);
    /* pos hidden 3, d 2, T 3, k 2: 2*(6 + 9) + 3 + 4*2*2 = 49 */
    cr_assert_eq(cost(2, 1, 3, 64, 1, sp("pos+softmax:k=2,hidden=3")).attn_flops, 49);
}

/* block's per-query cost grows like T/b: from T to 2T (T a multiple of b, past the
 * n-1 blocks) one decode step costs (2d + 1) * T/b more, whatever n keeps. */
Test(costmodel, block_grows_like_T_over_b) {
    for (int b = 8; b <= 64; b *= 2) {
        char spec[64];
        snprintf(spec, sizeof spec, "block+softmax:b=%d,n=4", b);
        for (int T = 1024; T <= 16384; T *= 4) {
            double a = cost(512, 8, T, 64, 1, sp(spec)).attn_flops;
            double c = cost(512, 8, 2 * T, 64, 1, sp(spec)).attn_flops;
            cr_assert_eq(c - a, 8.0 * (2 * 64 + 1) * T / b, "b %d T %d", b, T);
        }
    }
}

/* -------------------------------------------------------- crossover ---- */

static int is_cheaper(cm_shape s, const cm_variant *v, int T) {
    s.T = T;
    cm_variant f = cm_dense(CM_FLASH);
    cm_cost a, b;
    cm_cost_of(&s, v, &a);
    cm_cost_of(&s, &f, &b);
    return a.flops < b.flops;
}

static void check_flip(cm_shape s, const cm_variant *v) {
    int t = cm_crossover(&s, v, 1 << 20);
    cr_assert_gt(t, 1, "%s: T* %d", v->name, t);
    cr_assert(is_cheaper(s, v, t), "%s: not cheaper at T* %d", v->name, t);
    cr_assert(!is_cheaper(s, v, t - 1), "%s: already cheaper at T*-1 = %d", v->name, t - 1);
    cr_assert(!is_cheaper(s, v, t / 2), "%s: already cheaper at T*/2", v->name);
}

Test(costmodel, crossover_flips) {
    for (int decode = 0; decode < 2; decode++)
        for (int C = 128; C <= 1024; C *= 2) {
            cm_shape s = cm_shape_make(C, 8, 1);
            s.decode = decode;
            cm_variant v[8];
            int n = cm_standard_variants(32, v);
            cr_assert_eq(n, 8);
            check_flip(s, &v[6]); /* block+softmax */
            check_flip(s, &v[7]); /* block+mlp */
        }
    /* index with r*J well below d crosses; at d = 32 the default r 16, J 4 never does */
    cm_shape s = cm_shape_make(1024, 8, 1); /* d 128 */
    cm_variant ix = sp("index+softmax:k=32");
    check_flip(s, &ix);
    s = cm_shape_make(128, 4, 1); /* d 32 */
    cr_assert_eq(cm_crossover(&s, &ix, 1 << 20), -1);
    cm_variant pos = sp("pos+mlp:k=32");
    cr_assert_eq(cm_crossover(&s, &pos, 1 << 20), -1);
}

/* ------------------------------------------------ variants, original ---- */

Test(costmodel, standard_variants) {
    int ks[] = {8, 16, 32, 64, 256};
    for (int i = 0; i < 5; i++) {
        cm_variant v[8];
        cr_assert_eq(cm_standard_variants(ks[i], v), 8);
        cr_assert_str_eq(v[0].name, "dense-naive");
        cr_assert_str_eq(v[1].name, "dense-flash");
        for (int j = 2; j < 8; j++) {
            sattn_err e;
            cr_assert_eq(head_spec_check(&v[j].spec, &e), 0, "%s: %s", v[j].name, e.msg);
            cr_assert_eq(selector_kmax(&v[j].spec, 1 << 20), ks[i], "%s", v[j].name);
        }
    }
}

Test(costmodel, original_formula) {
    cr_assert_eq(cm_original_dense(64, 256), 4.0 * 256 * 256 * 64);
    cr_assert_eq(cm_original_sparse(64, 256, 32, 128), 256.0 * 128 * 64 + 256.0 * 32 * 64 * 2);
    /* its ratio is 4T / (hidden + 2k), independent of d */
    cr_assert_float_eq(cm_original_dense(64, 8192) / cm_original_sparse(64, 8192, 32, 128),
                       4.0 * 8192 / 192, 1e-9);
}

/* -------------------------------------------------------------- CLI ---- */

Test(costmodel, cli_json) {
    const char *argv[] = {"flops", "--dim", "256", "--heads", "4", "--seq", "512", "--json", NULL};
    char *out = cli_expect_ok(argv);
    cli_assert_json_line(out);
    cr_assert_gt(cli_json_num(out, "flops"), 0);
    cr_assert_eq(cli_json_num(out, "proj_flops"), 2.0 * 512 * 256 * 4 * 256);
    free(out);
    const char *one[] = {"flops", "--variant", "block+softmax:b=16,n=4", "--json", NULL};
    out = cli_expect_ok(one);
    cli_assert_json_line(out);
    cr_assert(strstr(out, "\"crossover_T\": ") && !strstr(out, "dense-flash"));
    free(out);
    const char *orig[] = {"flops", "--original", "--json", NULL};
    out = cli_expect_ok(orig);
    cli_assert_json_line(out);
    cr_assert_eq(cli_json_num(out, "orig_dense"), 8 * cm_original_dense(64, 256));
    free(out);
}

Test(costmodel, cli_text_and_sweep) {
    const char *argv[] = {"flops", NULL};
    char *out = cli_expect_ok(argv);
    cr_assert(strstr(out, "dense-flash") && strstr(out, "block+softmax") && strstr(out, "decode"));
    free(out);
    const char *help[] = {"flops", "--dim", "64", "--help", NULL};
    out = cli_expect_ok(help);
    cr_assert(!strncmp(out, "usage: sattn flops", 18), "%s", out);
    free(out);
    const char *sw[] = {"flops", "--sweep", "--csv", NULL};
    out = cli_expect_ok(sw);
    cr_assert_eq(cli_count_char(out, '\n'), 1 + 4 * 6 * 2 * 10 * 8);
    cr_assert(!strncmp(out, "mode,dim,heads,seq,k,variant,", 29));
    free(out);
    const char *st[] = {"flops", "--sweep", NULL};
    out = cli_expect_ok(st);
    cr_assert(strstr(out, "crossover T*"));
    free(out);
}

Test(costmodel, cli_bad_flags) {
    static const cli_bad_case bad[] = {
        {{"--dim", "x"}, "--dim"},
        {{"--seq", "0"}, "--seq"},
        {{"--heads", "3"}, "not a multiple"},
        {{"--variant", "bogus+softmax"}, "--variant"},
        {{"--json", "--csv"}, "exclude"},
        {{"--sweep", "--variant", "dense-flash"}, "--variant"},
        {{"--bogus"}, "unknown option"},
        {{"--k"}, "needs a value"},
        {{"stray"}, "unexpected argument"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cli_args a = {0};
        cli_args_add(&a, "flops", NULL);
        cli_args_addv(&a, bad[i].args);
        cli_expect_fail(a.v, bad[i].needle, 0);
    }
}
