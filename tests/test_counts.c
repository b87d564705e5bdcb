/* Instrumented counts (issue 4 item 2): the SATTN_COUNT build's kernels count the
 * multiply-adds of every matrix product they execute, and the analytic model
 * (cm_kernel_macs) must equal those counts EXACTLY, for every kernel the benchmark
 * times, on shapes that are not multiples of any tile (T = 1, 37, 300, 1000, 1029),
 * with several head counts. The counted binary is $SATTN_COUNT_BIN (`make test` builds
 * build-count/sattn); the normal binary must refuse `count` with a one-line error. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "sattn/costmodel.h"
#include "sattn/plan.h"

/* Points cli_run at the counting build (each test runs in its own process). */
static void use_count_bin(void) {
    const char *b = getenv("SATTN_COUNT_BIN");
    cr_assert(b && *b, "SATTN_COUNT_BIN is not set: run the tests with `make test` (it builds "
                       "build-count/sattn, the SATTN_COUNT build)");
    cr_assert(setenv("SATTN_BIN", b, 1) == 0);
}

static cm_variant variant_of(const char *name, int k) {
    if (!strcmp(name, "naive")) return cm_dense(CM_NAIVE);
    if (!strcmp(name, "flash")) return cm_dense(CM_FLASH);
    cm_variant all[8];
    cm_standard_variants(k, all);
    if (!strcmp(name, "index")) return all[4];
    if (!strcmp(name, "block")) return all[6];
    head_spec s = test_spec_of(name);
    return cm_sparse(&s);
}

/* Runs `count --json` and asserts counted == cm_kernel_macs (computed here, in the
 * uninstrumented test binary) exactly; returns the counted value. */
static double check_count(const char *variant, int C, int T, int k, int decode) {
    char cs[16], ts[16], ks[16];
    snprintf(cs, sizeof cs, "%d", C), snprintf(ts, sizeof ts, "%d", T), snprintf(ks, sizeof ks, "%d", k);
    const char *argv[] = {"count", "--json", "--variant", variant, "--dim", cs, "--seq", ts, "--k", ks,
                          decode ? "--decode" : NULL, NULL};
    char *out = cli_expect_ok(argv);
    cli_assert_json_line(out);
    double counted = cli_json_num(out, "counted_macs");
    cm_shape sh = cm_shape_make(C, C / 64, T);
    sh.decode = decode;
    cm_variant v = variant_of(variant, k);
    double model = cm_kernel_macs(&sh, &v);
    cr_assert(counted > 0, "%s: nothing counted: %s", cli_cmd, out);
    cr_assert(model == counted, "%s: model %.0f != counted %.0f", cli_cmd, model, counted);
    cr_assert(cli_json_num(out, "counted_bytes") > 0, "%s", cli_cmd);
    free(out);
    return counted;
}

static const int SEQS[] = {1, 37, 300, 1000, 1029};
static const int DIMS[] = {64, 192, 320};

Test(counts, dense_prefill_equal_model) {
    use_count_bin();
    for (int i = 0; i < 5; i++)
        for (int c = 0; c < 3; c++) {
            check_count("naive", DIMS[c], SEQS[i], 32, 0);
            check_count("flash", DIMS[c], SEQS[i], 32, 0);
        }
}

Test(counts, sparse_prefill_equal_model) {
    use_count_bin();
    static const char *const specs[] = {"index", "block", "pos+softmax:k=8,hidden=32",
                                        "index+mlp:k=8,r=8,j=2,hidden=16", "block+softmax:b=8,n=3,bounds=1",
                                        "block+mlp:b=4,n=2,hidden=8,logits=0", "pos+mlp:k=4,hidden=8,q=0,logits=1"};
    for (int s = 0; s < 7; s++)
        for (int i = 0; i < 4; i++) check_count(specs[s], DIMS[s % 3], SEQS[i], s < 2 ? 16 + 16 * (i % 2) : 32, 0);
}

Test(counts, decode_equal_model) {
    use_count_bin();
    static const char *const v[] = {"flash", "index", "block", "block+softmax:b=8,n=3,bounds=1"};
    for (int j = 0; j < 4; j++)
        for (int i = 0; i < 5; i++) check_count(v[j], DIMS[(i + j) % 3], SEQS[i], 32, 1);
}

/* The executed count covers the useful causal work, and the gap is the diagonal
 * tiles only: exactly T(T+1)/2 pairs when T is at most one tile. */
Test(counts, executed_covers_useful) {
    use_count_bin();
    double one_tile = check_count("naive", 64, 37, 32, 0); /* one 37-row tile: 37 x 37 pairs */
    cr_assert_eq(one_tile, 2.0 * 64 * 37 * 37);
    double flash = check_count("flash", 128, 1000, 32, 0);
    cm_shape sh = cm_shape_make(128, 2, 1000);
    cm_variant f = cm_dense(CM_FLASH);
    cm_cost c;
    cm_cost_of(&sh, &f, &c);
    cr_assert(flash >= c.attn_flops / 2 && flash < 1.15 * c.attn_flops / 2, "%.0f vs useful %.0f", flash,
              c.attn_flops / 2);
}

Test(counts, uninstrumented_build_refuses) {
    const char *argv[] = {"count", "--variant", "flash", NULL};
    cli_expect_fail(argv, "make count", 0);
}

Test(counts, bad_flags) {
    use_count_bin();
    static const cli_bad_case cases[] = {
        {{"--dim", "100", NULL}, "multiple of 64"},
        {{"--seq", "0", NULL}, "--seq"},
        {{"--k", "0", NULL}, "--k"},
        {{"--seed", "-3", NULL}, "--seed"},
        {{"--variant", "sideways", NULL}, "sideways"},
        {{"--variant", "naive", "--decode", NULL}, "no decode"},
        {{"--variant", "pos+softmax:k=4", "--decode", NULL}, "decode runs index or block"},
        {{"--bogus", NULL}, "--bogus"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_args a = {.n = 0};
        cli_args_add(&a, "count", NULL);
        cli_args_addv(&a, cases[i].args);
        cli_expect_fail(a.v, cases[i].needle, 0);
    }
}
