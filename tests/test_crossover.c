/* crossover.h: the measured prefill crossover from a small hand-written bench CSV (the
 * times are made up to exercise the rules, not measurements): a variant that wins from
 * some T on, one that never wins, a non-monotone one (a noisy win at a short T followed
 * by a loss), nearest C and k with their tie rules, rows without a dense-flash comparison,
 * the plan-level threshold (the largest over the plan's variants), and the errors. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sattn/crossover.h"
#include "sattn/plan.h"

#define HDR "variant,phase,C,H,T,k,median_s,gflops,speedup_vs_flash,peak_bytes,cpu_pressure_avg10\n"

/* speedups per T = 256, 1024, 2048, 4096 */
static const char CSV[] = HDR
    "dense-flash,prefill,256,4,256,0,1e-3,50,1,1e6,0.5\n"
    "dense-flash,prefill,256,4,1024,0,1e-2,50,1,1e6,0.5\n"
    "dense-flash,prefill,256,4,2048,0,4e-2,50,1,1e6,0.5\n"
    "dense-flash,prefill,256,4,4096,0,1e-1,50,1,1e6,0.5\n"
    /* block, C 256, k 32: non-monotone (wins at 256, loses at 1024), then wins from 2048 */
    "block+softmax,prefill,256,4,4096,32,5e-2,5,2.0,1e6,0.5\n" /* rows need not be sorted */
    "block+softmax,prefill,256,4,256,32,9e-4,5,1.1,1e6,0.5\n"
    "block+softmax,prefill,256,4,1024,32,2e-2,5,0.5,1e6,0.5\n"
    "block+softmax,prefill,256,4,2048,32,3e-2,5,1.3,1e6,0.5\n"
    /* decode rows must be ignored: block wins in decode from 256 */
    "block+softmax,decode,256,4,256,32,1e-5,5,1.5,1e6,0.5\n"
    "block+softmax,decode,256,4,1024,32,1e-5,5,3.0,1e6,0.5\n"
    /* block, C 256, k 16: wins from 1024; an unknown speedup (-1) at 8192 is no evidence */
    "block+softmax,prefill,256,4,256,16,2e-3,5,0.9,1e6,0.5\n"
    "block+softmax,prefill,256,4,1024,16,5e-3,5,1.2,1e6,0.5\n"
    "block+softmax,prefill,256,4,8192,16,5e-1,5,-1,1e6,0.5\n"
    /* block, C 512, k 32: wins at every T */
    "block+softmax,prefill,512,8,256,32,9e-4,5,1.5,1e6,0.5\n"
    "block+softmax,prefill,512,8,1024,32,9e-3,5,1.6,1e6,0.5\n"
    /* index, C 256, k 32: never wins */
    "index+softmax,prefill,256,4,256,32,5e-3,5,0.2,1e6,0.5\n"
    "index+softmax,prefill,256,4,1024,32,7e-2,5,0.15,1e6,0.5\n"
    "index+softmax,prefill,256,4,4096,32,6e-1,5,0.17,1e6,0.5\n"
    /* index+mlp: only rows without a dense-flash comparison */
    "index+mlp,prefill,256,4,256,32,5e-3,5,-1,1e6,0.5\n";

typedef struct {
    char path[64];
} tmpcsv;

static void csv_write(tmpcsv *t, const char *text) {
    snprintf(t->path, sizeof t->path, "/tmp/sattn-xo-XXXXXX");
    int fd = mkstemp(t->path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void table(tmpcsv *t, bench_table *bt) {
    sattn_err e;
    csv_write(t, CSV);
    cr_assert_eq(bench_csv_read(t->path, bt, &e), 0, "%s", e.msg);
}

static xover find(const bench_table *bt, const char *v, int C, int k) {
    xover x;
    sattn_err e;
    cr_assert_eq(xover_find(bt, "t.csv", v, C, k, &x, &e), 0, "%s", e.msg);
    return x;
}

Test(crossover, series_rules) {
    tmpcsv t;
    bench_table bt;
    table(&t, &bt);
    xover x = find(&bt, "block+softmax", 256, 32);
    cr_assert_eq(x.T, 2048, "non-monotone: the win at 256 is followed by a loss, T* %d", x.T);
    cr_assert_eq(x.C, 256); cr_assert_eq(x.k, 32); cr_assert_eq(x.n, 4);
    cr_assert_eq(x.T_lo, 256); cr_assert_eq(x.T_hi, 4096);
    x = find(&bt, "block+softmax", 256, 16);
    cr_assert_eq(x.T, 1024, "the -1 row at 8192 must be left out, T* %d", x.T);
    cr_assert_eq(x.n, 2);
    x = find(&bt, "block+softmax", 512, 32);
    cr_assert_eq(x.T, 256, "wins everywhere: the smallest T");
    x = find(&bt, "index+softmax", 256, 32);
    cr_assert_eq(x.T, XO_NEVER, "never wins");
    bench_table_free(&bt);
    unlink(t.path);
}

Test(crossover, nearest_C_and_k) {
    tmpcsv t;
    bench_table bt;
    table(&t, &bt);
    xover x = find(&bt, "block+softmax", 128, 32); /* nearest C: 256 */
    cr_assert_eq(x.C, 256); cr_assert_eq(x.want_C, 128);
    x = find(&bt, "block+softmax", 384, 32);       /* tie 256 / 512: the smaller */
    cr_assert_eq(x.C, 256);
    x = find(&bt, "block+softmax", 400, 32);
    cr_assert_eq(x.C, 512); cr_assert_eq(x.k, 32); cr_assert_eq(x.T, 256);
    x = find(&bt, "block+softmax", 256, 24);       /* tie 16 / 32: the larger k */
    cr_assert_eq(x.k, 32); cr_assert_eq(x.T, 2048);
    x = find(&bt, "block+softmax", 256, 8);
    cr_assert_eq(x.k, 16); cr_assert_eq(x.T, 1024);
    x = find(&bt, "block+softmax", 512, 8);        /* C 512 has only k 32 */
    cr_assert_eq(x.k, 32);
    bench_table_free(&bt);
    unlink(t.path);
}

static void heads_of(sparse_heads *sh, const char *plan) {
    head_spec specs[4];
    sattn_err e;
    cr_assert_eq(plan_parse(plan, NULL, 2, 2, specs, &e), 0, "%s", e.msg);
    rng_t r;
    rng_seed(&r, 1);
    sparse_heads_create(sh, 2, 2, 32, 64, specs, &r);
}

Test(crossover, plan_threshold) {
    tmpcsv t;
    csv_write(&t, CSV);
    sattn_err e;
    xover_policy p;
    sparse_heads sh;
    heads_of(&sh, "all:block+softmax:b=16,n=2");   /* k = b*n = 32 */
    cr_assert_eq(xover_policy_from_csv(t.path, &sh, 256, &p, &e), 0, "%s", e.msg);
    cr_assert_eq(p.n, 1); cr_assert_eq(p.dense_below, 2048);
    cr_assert_str_eq(p.fam[0].variant, "block+softmax");
    char d[1024];
    xover_policy_describe(&p, t.path, d, sizeof d);
    cr_assert(strstr(d, "dense below T=2048") && strstr(d, t.path) && strstr(d, "C=256 k=32"), "%s", d);
    sparse_heads_free(&sh);
    /* the largest k among a family's heads decides its k: 8 and 16 -> 16 */
    heads_of(&sh, "L0H0:block+softmax:b=4,n=2; L0H1:block+softmax:b=8,n=2; *:dense");
    cr_assert_eq(xover_policy_from_csv(t.path, &sh, 256, &p, &e), 0, "%s", e.msg);
    cr_assert_eq(p.fam[0].k, 16); cr_assert_eq(p.dense_below, 1024);
    sparse_heads_free(&sh);
    /* two families: the larger crossover; index never wins, so dense at every length */
    heads_of(&sh, "L0:block+softmax:b=16,n=2; L1:index+softmax:k=32");
    cr_assert_eq(xover_policy_from_csv(t.path, &sh, 256, &p, &e), 0, "%s", e.msg);
    cr_assert_eq(p.n, 2); cr_assert_eq(p.dense_below, XO_NEVER);
    xover_policy_describe(&p, t.path, d, sizeof d);
    cr_assert(strstr(d, "dense at every length") && strstr(d, "never faster"), "%s", d);
    sparse_heads_free(&sh);
    /* no sparse head: nothing to switch */
    heads_of(&sh, "all:dense");
    cr_assert_eq(xover_policy_from_csv(t.path, &sh, 256, &p, &e), 0, "%s", e.msg);
    cr_assert_eq(p.n, 0); cr_assert_eq(p.dense_below, 0);
    sparse_heads_free(&sh);
    unlink(t.path);
}

static void expect_err(const char *csv, const char *plan, const char *want1, const char *want2) {
    tmpcsv t;
    csv_write(&t, csv);
    sparse_heads sh;
    heads_of(&sh, plan);
    xover_policy p;
    sattn_err e;
    cr_assert_neq(xover_policy_from_csv(t.path, &sh, 256, &p, &e), 0, "no error for %s", plan);
    cr_assert(strstr(e.msg, t.path) && strstr(e.msg, want1) && (!want2 || strstr(e.msg, want2)), "%s", e.msg);
    cr_assert_null(strchr(e.msg, '\n'));
    sparse_heads_free(&sh);
    unlink(t.path);
}

Test(crossover, errors) {
    expect_err(CSV, "all:pos+mlp:k=4", "no prefill rows for variant 'pos+mlp'", NULL);
    expect_err(CSV, "all:index+mlp:k=4", "index+mlp", "speedup_vs_flash is -1");
    expect_err(HDR "block+softmax,decode,256,4,256,32,1,1,2,1,1\n", "all:block+softmax", "no prefill rows", NULL);
    expect_err("variant,phase\n", "all:block+softmax", ":1: header", NULL);
    expect_err(HDR "block+softmax,prefill,256,4,2x,32,1,1,2,1,1\n", "all:block+softmax", ":2:", "'T'");
    expect_err("", "all:block+softmax", "empty file", NULL);
    sparse_heads sh;
    heads_of(&sh, "all:block+softmax");
    xover_policy p;
    sattn_err e;
    cr_assert_neq(xover_policy_from_csv("/nonexistent/b.csv", &sh, 256, &p, &e), 0);
    cr_assert(strstr(e.msg, "/nonexistent/b.csv"), "%s", e.msg);
    sparse_heads_free(&sh);
}

/* The one rule all three callers use, on bare (T, speedup) pairs in any order. */
Test(crossover, series_rule) {
    static const int T[] = {4096, 256, 1024, 512, 2048};
    static const double win_late[] = {2.0, 1.5, 0.9, 1.2, 1.1}, unknown[] = {2.0, 1.5, 0.9, 1.2, -1.0};
    static const double last_loses[] = {0.8, 1.5, 1.2, 1.2, 1.1}, all_win[] = {2, 2, 2, 2, 2};
    cr_assert_eq(xover_series_T(T, win_late, 5), 2048);
    cr_assert_eq(xover_series_T(T, unknown, 5), 4096);
    cr_assert_eq(xover_series_T(T, last_loses, 5), -1);
    cr_assert_eq(xover_series_T(T, all_win, 5), 256);
    cr_assert_eq(xover_series_T(T, all_win, 0), -1);
}
