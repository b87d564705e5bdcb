/* Tests for the attention benchmark (sattn/attnbench.h, `sattn bench`): the single-
 * query block and index decode paths against the last row of the prefill selection +
 * softmax on awkward sizes, the crossover bookkeeping, the CSV format, and one-line
 * errors for bad flags. No timing assertions: the machine is shared. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "sattn/attnbench.h"
#include "sattn/sparse_decode.h"
#include "sattn/rng.h"

/* One head's q, k, v rows (T, 3d), N(0,1), with exactly tied keys: the key rows of every
 * odd run of `run` rows repeat the run before them (key rows [b, 2b) = [0, b), [3b, 4b) =
 * [2b, 3b), ...). With run = the block size, twin blocks have the same summaries, so the same
 * block scores; with run = 1, twin keys have the same selector scores. */
static float *random_qkv(int T, int d, int run, uint64_t seed) {
    float *x = malloc((size_t)T * 3 * d * sizeof(float));
    rng_t r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < (size_t)T * 3 * d; i++) x[i] = rng_normal(&r);
    for (int t = 0; t < T; t++)
        if (t / run % 2)
            memcpy(x + (size_t)t * 3 * d + d, x + (size_t)(t - run) * 3 * d + d, d * sizeof(float));
    return x;
}

/* Selected units (blocks of `run` keys, or keys) whose tied twin (unit ^ 1) was a candidate,
 * before unit `limit`, but not selected: a tie across the selection's cut. Each must be the
 * earlier of the two (ties go to the earlier key). Returns how many there were. */
static int ties_across_cut(const int *keys, int n, int run, int limit, const char *what) {
    int ties = 0;
    for (int j = 0; j < n; j++) {
        int u = keys[j] / run, twin = u ^ 1, chosen = 0;
        if (u >= limit || twin >= limit) continue;
        for (int i = 0; i < n; i++) chosen |= keys[i] / run == twin;
        if (chosen) continue;
        cr_assert_lt(u, twin, "%s: tie between units %d and %d went to the later one", what, u, twin);
        ties++;
    }
    return ties / run; /* a block's keys each counted it */
}

/* The prefill's last row: selector_select + headfn_forward over all T queries. */
static int prefill_last(const head_spec *s, const float *params, int d, const float *qkv, int T,
                        int *idx_last, float *o_last) {
    int kmax = selector_kmax(s, T), ld = 3 * d;
    int *idx = malloc((size_t)T * kmax * sizeof(int)), *count = malloc((size_t)T * sizeof(int));
    float *score = malloc((size_t)T * kmax * sizeof(float)), *cache = malloc((size_t)T * kmax * sizeof(float));
    float *work = malloc((selector_work_floats(s, d, T) + 1) * sizeof(float));
    float *out = malloc((size_t)T * d * sizeof(float));
    selector_select(s, params, d, T, qkv, qkv + d, ld, T, idx, score, count, work);
    headfn_forward(s, NULL, d, kmax, qkv, qkv + d, qkv + 2 * d, ld, T, idx, count, out, d, cache);
    int c = count[T - 1];
    memcpy(idx_last, idx + (size_t)(T - 1) * kmax, (size_t)c * sizeof(int));
    memcpy(o_last, out + (size_t)(T - 1) * d, (size_t)d * sizeof(float));
    free(idx), free(count), free(score), free(cache), free(work), free(out);
    return c;
}

static void assert_close(const float *a, const float *b, int n, float tol, const char *what) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) num += (a[i] - b[i]) * (double)(a[i] - b[i]), den += (double)b[i] * b[i];
    cr_assert(sqrt(num) <= tol * (sqrt(den) + 1e-6), "%s: rel err %g", what, sqrt(num / (den + 1e-30)));
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static head_spec block_spec(int b, int n, int bounds) {
    head_spec s = head_spec_default();
    s.sel = SEL_BLOCK, s.block = b, s.nblocks = n, s.bounds = bounds;
    return s;
}

Test(attnbench, block_decode_is_prefill_last_row) {
    int ties = 0;
    static const int Ts[] = {1, 5, 16, 17, 63, 100, 257};
    static const int ds[] = {5, 64};
    static const int cfg[][3] = {{16, 2, 0}, {4, 3, 0}, {7, 5, 1}, {16, 1, 0}};
    for (size_t ti = 0; ti < 7; ti++)
        for (size_t di = 0; di < 2; di++)
            for (size_t ci = 0; ci < 4; ci++) {
                int T = Ts[ti], d = ds[di];
                head_spec s = block_spec(cfg[ci][0], cfg[ci][1], cfg[ci][2]);
                float *qkv = random_qkv(T, d, s.block, 100 + ti * 7 + di * 3 + ci);
                int kmax = selector_kmax(&s, T), ld = 3 * d;
                int *ia = malloc((size_t)kmax * sizeof(int)), *ib = malloc((size_t)kmax * sizeof(int));
                float *oa = malloc((size_t)d * sizeof(float)), *ob = malloc((size_t)d * sizeof(float));
                float *sum = malloc(((size_t)2 * (T / s.block + 1) * d) * sizeof(float));
                float *work = malloc(sparse_decode_block_work(&s, T) * sizeof(float));
                int ca = prefill_last(&s, NULL, d, qkv, T, ia, oa);
                sparse_decode_block_side(&s, d, qkv + d, ld, T, sum);
                int cb = sparse_decode_block(&s, d, qkv + (size_t)(T - 1) * ld, qkv + d, qkv + 2 * d, ld, T,
                                             sum, ob, ib, work);
                cr_assert_eq(ca, cb, "T %d d %d cfg %zu: count %d vs %d", T, d, ci, ca, cb);
                for (int j = 0; j < ca; j++) cr_assert_eq(ia[j], ib[j], "T %d d %d cfg %zu slot %d", T, d, ci, j);
                assert_close(ob, oa, d, 1e-5f, "block output");
                /* twin blocks before the query's own block (the complete ones) tie exactly */
                ties += ties_across_cut(ib, cb, s.block, (T - 1) / s.block, "block decode");
                free(qkv), free(ia), free(ib), free(oa), free(ob), free(sum), free(work);
            }
    fprintf(stderr, "block decode: %d ties across the cut\n", ties);
    cr_assert_gt(ties, 0, "no tie across a selection's cut: the tied blocks test nothing");
}

Test(attnbench, index_decode_is_prefill_last_row) {
    int ties = 0;
    static const int Ts[] = {1, 3, 33, 100, 301};
    static const int ds[] = {5, 64};
    static const int cfg[][3] = {{8, 16, 4}, {3, 5, 2}, {32, 8, 1}}; /* k, r, J */
    for (size_t ti = 0; ti < 5; ti++)
        for (size_t di = 0; di < 2; di++)
            for (size_t ci = 0; ci < 3; ci++) {
                int T = Ts[ti], d = ds[di], ld = 3 * d;
                head_spec s = head_spec_default();
                s.sel = SEL_INDEX, s.k = cfg[ci][0], s.rank = cfg[ci][1], s.iheads = cfg[ci][2];
                float *params = malloc(selector_param_count(&s, d, T) * sizeof(float));
                rng_t r;
                rng_seed(&r, 7 + ci);
                selector_init(&s, d, T, params, &r);
                float *qkv = random_qkv(T, d, 1, 200 + ti * 7 + di * 3 + ci);
                int kmax = selector_kmax(&s, T);
                int *ia = malloc((size_t)kmax * sizeof(int)), *ib = malloc((size_t)kmax * sizeof(int));
                float *oa = malloc((size_t)d * sizeof(float)), *ob = malloc((size_t)d * sizeof(float));
                float *kt = malloc((size_t)T * s.rank * sizeof(float));
                float *work = malloc(sparse_decode_index_work(&s, T) * sizeof(float));
                int ca = prefill_last(&s, params, d, qkv, T, ia, oa);
                sparse_decode_index_side(&s, params, d, qkv + d, ld, T, kt);
                int cb = sparse_decode_index(&s, params, d, qkv + (size_t)(T - 1) * ld, qkv + d, qkv + 2 * d,
                                             ld, T, kt, ob, ib, work);
                cr_assert_eq(ca, cb, "T %d d %d cfg %zu: count %d vs %d", T, d, ci, ca, cb);
                /* the one-query products may round differently from the T-row ones, so
                 * compare the selected sets, and the outputs to float tolerance */
                qsort(ia, (size_t)ca, sizeof(int), cmp_int);
                qsort(ib, (size_t)cb, sizeof(int), cmp_int);
                for (int j = 0; j < ca; j++) cr_assert_eq(ia[j], ib[j], "T %d d %d cfg %zu key %d", T, d, ci, j);
                assert_close(ob, oa, d, 1e-5f, "index output");
                ties += ties_across_cut(ib, cb, 1, T, "index decode");
                free(params), free(qkv), free(ia), free(ib), free(oa), free(ob), free(kt), free(work);
            }
    fprintf(stderr, "index decode: %d ties across the cut\n", ties);
    cr_assert_gt(ties, 0, "no tie across a selection's cut: the tied keys test nothing");
}

Test(attnbench, crossovers_and_csv_row) {
    bench_row rows[] = {
        {"dense-flash", 0, 512, 8, 256, 0, 1.0, 1, 1.0, 1, 0.5, -1},
        {"block+softmax", 0, 512, 8, 256, 32, 2.0, 1, 0.5, 1, 0.5, -1},
        {"dense-flash", 0, 512, 8, 1024, 0, 4.0, 1, 1.0, 1, 0.5, -1},
        {"block+softmax", 0, 512, 8, 1024, 32, 2.0, 1, 2.0, 1, 0.5, -1},
        {"index+softmax", 1, 512, 8, 1024, 32, 2.0, 1, 0.9, 1, -1, -1},
    };
    ab_cross x[4];
    int n = ab_crossovers(rows, 5, x, 4);
    cr_assert_eq(n, 2);
    cr_assert_eq(x[0].v, AB_BLOCK);
    cr_assert_eq(x[0].measured, 1024);
    cr_assert_gt(x[0].analytic, 0);
    cr_assert_eq(x[1].measured, -1);
    char line[256];
    bench_csv_line(&rows[4], line, sizeof line);
    cr_assert_str_eq(line, "index+softmax,decode,512,8,1024,32,2.000000e+00,1.0000,0.9000,1,-1.00,-1.00\n");
    cr_assert_eq(ab_variant_parse("block"), AB_BLOCK);
    cr_assert_eq(ab_variant_parse("tblock"), AB_TBLOCK);
    cr_assert_eq(ab_variant_parse("tblock+softmax"), AB_TBLOCK);
    cr_assert_eq(ab_variant_parse("dense-naive"), AB_NAIVE);
    cr_assert_eq(ab_variant_parse("dense"), -1);
}

/* tblock's FLOPs are its useful work counted as flash's: with n b >= T it keeps every block
 * (dense causal attention), so its prefill and backward FLOPs (GFLOP/s x seconds) equal
 * dense-flash's; with n = 1 (the own block only) at T = 4 b they are the 4 diagonal blocks'
 * share, 4 b (b + 1) / 2 of T (T + 1) / 2 pairs. */
static double row_flops(const char *text, const char *prefix) {
    const char *l = strstr(text, prefix);
    cr_assert(l, "no row %s", prefix);
    char *f[13], buf[512], *save = NULL;
    snprintf(buf, sizeof buf, "%.*s", (int)strcspn(l + 1, "\n"), l + 1);
    int n = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok && n < 13; tok = strtok_r(NULL, ",", &save)) f[n++] = tok;
    return strtod(f[6], NULL) * strtod(f[7], NULL) * 1e9;
}

Test(attnbench, tblock_flops_as_flash) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *csv = cli_tpath(&t, "b.csv");
    const char *argv[] = {"bench", "--dims", "128", "--seqs", "256", "--variants", "flash,tblock", "--phases",
                          "prefill,backward", "--tblock-b", "64", "--tblock-n", "4", "--runs", "1", "--csv", csv, NULL};
    free(cli_expect_ok(argv));
    size_t len;
    char *text = cli_slurp(csv, &len);
    for (int ph = 0; ph < 2; ph++) {
        char fp[64], tp[64];
        snprintf(fp, sizeof fp, "\ndense-flash,%s,128,2,256,0,", ph ? "backward" : "prefill");
        snprintf(tp, sizeof tp, "\ntblock+softmax,%s,128,2,256,256,", ph ? "backward" : "prefill");
        double f = row_flops(text, fp), tb = row_flops(text, tp);
        cr_assert(fabs(tb / f - 1) < 1e-3, "%s: tblock %.6g FLOPs, flash %.6g", fp + 1, tb, f);
    }
    free(text);
    const char *argv1[] = {"bench", "--dims", "128", "--seqs", "256", "--variants", "flash,tblock", "--phases",
                           "prefill", "--tblock-n", "1", "--runs", "1", "--csv", csv, NULL};
    free(cli_expect_ok(argv1));
    text = cli_slurp(csv, &len);
    double f = row_flops(text, "\ndense-flash,prefill,"), tb = row_flops(text, "\ntblock+softmax,prefill,");
    double want = 4.0 * 64 * 65 / 2 / (256.0 * 257 / 2);
    cr_assert(fabs(tb / f / want - 1) < 1e-3, "n = 1: tblock / flash FLOPs %.6g, want %.6g", tb / f, want);
    free(text);
    cli_tdir_close(&t);
}

/* T* is "from then on": a noisy win at a short T followed by a loss does not count, a
 * row without a dense-flash reference is ignored, and a series whose largest T loses
 * has none. */
Test(attnbench, crossover_from_then_on) {
    bench_row rows[] = {
        {"block+softmax", 0, 512, 8, 256, 32, 1.0, 1, 1.3, 1, 0.5, -1},
        {"block+softmax", 0, 512, 8, 1024, 32, 1.0, 1, 0.8, 1, 0.5, -1},
        {"block+softmax", 0, 512, 8, 2048, 32, 1.0, 1, -1.0, 1, 0.5, -1},
        {"block+softmax", 0, 512, 8, 4096, 32, 1.0, 1, 1.5, 1, 0.5, -1},
        {"block+softmax", 0, 512, 8, 8192, 32, 1.0, 1, 2.5, 1, 0.5, -1},
        {"index+softmax", 0, 512, 8, 256, 32, 1.0, 1, 1.2, 1, 0.5, -1},
        {"index+softmax", 0, 512, 8, 1024, 32, 1.0, 1, 0.7, 1, 0.5, -1},
    };
    ab_cross x[4];
    int n = ab_crossovers(rows, 7, x, 4);
    cr_assert_eq(n, 2);
    cr_assert_eq(x[0].measured, 4096);
    cr_assert_eq(x[1].measured, -1);
}

/* ---- the CLI ---- */

static const char HEADER[] =
    "variant,phase,C,H,T,k,median_s,gflops,speedup_vs_flash,peak_bytes,cpu_pressure_avg10,pct_peak\n";

/* Checks one CSV data line: 12 fields, known names, numbers where numbers belong. */
static void check_csv_line(char *line) {
    char *f[13], *save = NULL;
    int n = 0;
    for (char *tok = strtok_r(line, ",", &save); tok && n < 13; tok = strtok_r(NULL, ",", &save)) f[n++] = tok;
    cr_assert_eq(n, 12, "fields: %d", n);
    cr_assert_geq(ab_variant_parse(f[0]), 0, "variant %s", f[0]);
    cr_assert_geq(bench_phase_parse(f[1]), 0, "phase %s", f[1]);
    for (int i = 2; i < 12; i++) {
        char *end;
        double v = strtod(f[i], &end);
        cr_assert(end != f[i] && (*end == 0 || *end == '\n') && isfinite(v), "field %d '%s'", i, f[i]);
    }
    cr_assert_gt(strtod(f[6], NULL), 0.0);
    cr_assert_gt(strtod(f[11], NULL), 0.0); /* pct_peak: measured */
    if (!strcmp(f[0], "dense-flash")) cr_assert_float_eq(strtod(f[8], NULL), 1.0, 1e-9);
}

Test(attnbench, cli_csv_tiny_grid) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *csv = cli_tpath(&t, "b.csv");
    const char *argv[] = {"bench", "--dims", "64,128", "--seqs", "17,128", "--ks", "8,32", "--runs", "1",
                          "--csv", csv, NULL};
    char *out = cli_expect_ok(argv);
    cr_assert(strstr(out, "crossover T*") && !strncmp(out, "FP32 peak: ", 11) && strstr(out, "%peak"), "%s", out);
    free(out);
    size_t len;
    char *text = cli_slurp(csv, &len);
    cr_assert(!strncmp(text, HEADER, strlen(HEADER)), "%s", text);
    /* per (C, T): prefill flash, naive, 2 k x (index, block), tblock; decode flash, 2 x 2;
     * backward as prefill */
    cr_assert_eq(cli_count_char(text, '\n'), 1 + 2 * 2 * (7 + 5 + 7), "%s", text);
    cr_assert(strstr(text, "\nblock+softmax,backward,128,2,128,32,"), "%s", text);
    cr_assert(strstr(text, "\ntblock+softmax,prefill,128,2,128,512,"), "%s", text); /* k = b n = 64 x 8 */
    char *save = NULL;
    strtok_r(text, "\n", &save);
    for (char *line = strtok_r(NULL, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) check_csv_line(line);
    free(text);
    cli_tdir_close(&t);
}

Test(attnbench, cli_json_and_help) {
    const char *argv[] = {"bench", "--dims", "64", "--seqs", "40", "--ks", "16", "--variants",
                          "flash,block", "--phases", "prefill,backward", "--runs", "1", "--json", NULL};
    char *out = cli_expect_ok(argv);
    cli_assert_json_line(out);
    cr_assert(strstr(out, "\"crossovers\": [") && strstr(out, "block+softmax") && !strstr(out, "index"),
              "%s", out);
    cr_assert(strstr(out, "\"phase\": \"backward\"") && !strstr(out, "\"phase\": \"decode\""), "%s", out);
    cr_assert(cli_json_num(out, "peak_gflops") > 0 && strstr(out, "\"pct_peak\": "), "%s", out);
    free(out);
    const char *help[] = {"bench", "--help", NULL};
    out = cli_expect_ok(help);
    cr_assert(!strncmp(out, "usage: sattn bench", 18), "%s", out);
    free(out);
}

Test(attnbench, cli_bad_flags) {
    static const cli_bad_case bad[] = {
        {{"--dims", "100"}, "multiple of 64"},
        {{"--dims", "64,x"}, "--dims"},
        {{"--seqs", "0"}, "--seqs"},
        {{"--seqs", ","}, "--seqs"},
        {{"--ks", "8,8"}, "twice"},
        {{"--variants", "dense"}, "--variants"},
        {{"--phases", "sideways"}, "--phases"},
        {{"--runs", "0"}, "--runs"},
        {{"--max-run", "-1"}, "--max-run"},
        {{"--max-gib", "0"}, "--max-gib"},
        {{"--max-gib", "lots"}, "--max-gib"},
        {{"--csv", "/nonexistent-dir/b.csv"}, "/nonexistent-dir/b.csv"},
        {{"--bogus"}, "unknown option"},
        {{"--ks"}, "needs a value"},
        {{"stray"}, "unexpected argument"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cli_args a = {0};
        cli_args_add(&a, "bench", "--dims", "64", "--seqs", "16", "--runs", "1", NULL);
        cli_args_addv(&a, bad[i].args);
        cli_expect_fail(a.v, bad[i].needle, 0);
    }
}
