/* The end-to-end benchmarks of issue 12 (docs/native_sparse.md, "End-to-end speed"):
 *  - phasetime.h: the median split, the CSV written and read back, bad files one line;
 *  - `sattn bench-generate --plan` with a tile=1 plan: prefill and decode rows, the phases
 *    CSV (the tile plan's rows split, the dense ones not), JSON "phases";
 *  - `sattn bench-train --plan`: dense and sparse rows per T, their split adds up, the runs
 *    interleaved and counted, flags of the other mode refused in one line;
 *  - `sattn report --phases`: the section and its speedups. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "sattn/phasetime.h"

#define TILE "all:block+softmax:b=4,n=2,tile=1"
#define TILE_LABEL "all:block+softmax:b=4_n=2_tile=1"

Test(e2e_bench, split_of_the_median) {
    double tot[] = {5, 1, 3}, sel[] = {0.5, 0.1, 0.3}, fwd[] = {1, 0.2, 0.6}, bwd[] = {2, 0.4, 1.2};
    phase_row r = {0};
    pt_split(&r, tot, sel, fwd, bwd, 3);
    cr_assert_eq(r.total_s, 3.0);
    cr_assert_eq(r.select_s, 0.3);
    cr_assert_eq(r.head_s, 0.6);
    cr_assert_eq(r.head_bwd_s, 1.2);
    cr_assert_float_eq(r.rest_s, 0.9, 1e-12);
    double t4[] = {4, 1, 3, 2}, s4[] = {0.4, 0.1, 0.3, 0.2}, f4[] = {1, 1, 1, 1};
    pt_split(&r, t4, s4, f4, NULL, 4); /* the two middle ones: 2 and 3 */
    cr_assert_eq(r.total_s, 2.5);
    cr_assert_float_eq(r.select_s, 0.25, 1e-12);
    cr_assert_eq(r.head_bwd_s, 0.0);
    cr_assert_float_eq(r.rest_s, 2.5 - 0.25 - 1.0, 1e-12);
    pt_dense(&r, t4, 4);
    cr_assert_eq(r.total_s, 2.5);
    cr_assert_eq(r.rest_s, 2.5);
    cr_assert_eq(r.select_s, -1.0);
    cr_assert_eq(t4[0], 4.0, "the samples were reordered");
}

Test(e2e_bench, csv_round_trip_and_errors) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *p = cli_tpath(&t, "ph.csv");
    phase_row w[2] = {{"train-flash", PT_TRAIN, 4, 4, 256, 4096, 2.5, -1, -1, -1, 2.5},
                      {"gen-" TILE_LABEL, PT_DECODE, 4, 4, 256, 32768, 1e-3, 1e-5, 2e-4, 0, 7.9e-4}};
    sattn_err e;
    cr_assert_eq(pt_csv_write(p, w, 2, &e), 0, "%s", e.msg);
    phase_table tb;
    cr_assert_eq(pt_csv_read(p, &tb, &e), 0, "%s", e.msg);
    cr_assert_eq(tb.n, 2);
    cr_assert_str_eq(tb.rows[1].variant, w[1].variant);
    cr_assert_eq(tb.rows[1].stage, PT_DECODE);
    cr_assert_eq(tb.rows[1].T, 32768);
    cr_assert_float_eq(tb.rows[1].head_s, 2e-4, 1e-9);
    cr_assert_eq(tb.rows[0].select_s, -1.0);
    pt_table_free(&tb);
    const char *bad[][2] = {
        {"variant,stage\n", "header"},
        {"variant,stage,L,H,C,T,total_s,select_s,head_s,head_bwd_s,rest_s\nx,fly,1,1,1,1,1,1,1,1,1\n", "'stage'"},
        {"variant,stage,L,H,C,T,total_s,select_s,head_s,head_bwd_s,rest_s\nx,train,1,1,1,1.5,1,1,1,1,1\n", "'T'"},
        {"variant,stage,L,H,C,T,total_s,select_s,head_s,head_bwd_s,rest_s\nx,train,1,1,1,1,0,1,1,1,1\n", "'total_s'"},
        {"variant,stage,L,H,C,T,total_s,select_s,head_s,head_bwd_s,rest_s\nx y,train,1,1,1,1,1,1,1,1,1\n", "'variant'"},
        {"variant,stage,L,H,C,T,total_s,select_s,head_s,head_bwd_s,rest_s\nx,train,1,1,1,1,1,1\n", "fields"},
        {"variant,stage,L,H,C,T,total_s,select_s,head_s,head_bwd_s,rest_s\n", "no data rows"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cli_spew_str(p, bad[i][0]);
        cr_assert_neq(pt_csv_read(p, &tb, &e), 0, "case %zu accepted", i);
        cr_assert(strstr(e.msg, bad[i][1]) && !strchr(e.msg, '\n'), "case %zu: '%s' lacks %s", i, e.msg, bad[i][1]);
    }
    cli_tdir_close(&t);
}

static const phase_row *find(const phase_table *t, const char *variant, int stage, int T) {
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->rows[i].variant, variant) && t->rows[i].stage == stage && t->rows[i].T == T) return &t->rows[i];
    return NULL;
}

/* A split row: parts non-negative, adding up to the total. */
static void check_split(const phase_row *r, int train) {
    cr_assert_not_null(r);
    cr_assert_gt(r->total_s, 0.0);
    cr_assert_geq(r->select_s, 0.0, "%s", r->variant);
    cr_assert_gt(r->head_s, 0.0, "%s", r->variant);
    if (train) cr_assert_gt(r->head_bwd_s, 0.0, "%s", r->variant);
    else cr_assert_eq(r->head_bwd_s, 0.0);
    cr_assert_float_eq(r->select_s + r->head_s + r->head_bwd_s + r->rest_s, r->total_s, 1e-9 * (1 + r->total_s));
}

Test(e2e_bench, generate_tile_plan, .timeout = 120) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *csv = cli_tpath(&t, "ph.csv");
    /* contexts inside a tile and on a boundary; decode steps cross tile boundaries */
    const char *argv[] = {"bench-generate", "--layers", "2", "--heads", "2", "--dim", "16", "--vocab", "40", "--runs",
                          "2", "--steps", "6", "--threads", "2", "--contexts", "10,16", "--recompute-max", "0",
                          "--plan", TILE, "--phases-csv", csv, NULL};
    char *out = cli_expect_ok(argv);
    cr_assert(strstr(out, "where the median step's time goes"), "%s", out);
    free(out);
    phase_table tb;
    sattn_err e;
    cr_assert_eq(pt_csv_read(csv, &tb, &e), 0, "%s", e.msg);
    cr_assert_eq(tb.n, 8);
    int T[] = {10, 16};
    for (int i = 0; i < 2; i++) {
        check_split(find(&tb, "gen-" TILE_LABEL, PT_PREFILL, T[i]), 0);
        check_split(find(&tb, "gen-" TILE_LABEL, PT_DECODE, T[i]), 0);
        const phase_row *d = find(&tb, "gen-dense", PT_DECODE, T[i]);
        cr_assert_not_null(d);
        cr_assert_eq(d->select_s, -1.0);
        cr_assert_eq(d->rest_s, d->total_s);
    }
    pt_table_free(&tb);
    const char *js[] = {"bench-generate", "--layers", "1", "--heads", "2", "--dim", "16", "--vocab", "40", "--runs",
                        "1", "--steps", "2", "--threads", "2", "--contexts", "9", "--recompute-max", "0", "--plan", TILE,
                        "--json", NULL};
    out = cli_expect_ok(js);
    cr_assert(strstr(out, "\"phases\": [{\"variant\": \"gen-dense\", \"stage\": \"prefill\""), "%s", out);
    cr_assert(strstr(out, "\"variant\": \"gen-" TILE_LABEL "\", \"stage\": \"decode\""), "%s", out);
    free(out);
    cli_tdir_close(&t);
}

Test(e2e_bench, train_plan_rows, .timeout = 120) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *csv = cli_tpath(&t, "tr.csv"), *json = cli_tpath(&t, "tr.json");
    const char *argv[] = {"bench-train", "--plan", TILE, "--layers", "2", "--heads", "2", "--dim", "16", "--seqs",
                          "13,24", "--runs", "3", "--threads", "2", "--csv", csv, "--json-out", json, NULL};
    char *out = cli_expect_ok(argv);
    cr_assert(strstr(out, "T     13  dense-flash") && strstr(out, "speedup x"), "%s", out);
    cr_assert_eq(cli_count_char(out, '/'), 2 * 3, "3 runs of each T, dense/sparse: %s", out);
    free(out);
    phase_table tb;
    sattn_err e;
    cr_assert_eq(pt_csv_read(csv, &tb, &e), 0, "%s", e.msg);
    cr_assert_eq(tb.n, 4);
    for (int i = 0; i < 2; i++) {
        int T = i ? 24 : 13;
        check_split(find(&tb, "train-" TILE_LABEL, PT_TRAIN, T), 1);
        const phase_row *d = find(&tb, "train-flash", PT_TRAIN, T);
        cr_assert_not_null(d);
        cr_assert_eq(d->select_s, -1.0);
        cr_assert_eq(d->L, 2);
        cr_assert_eq(d->C, 16);
    }
    pt_table_free(&tb);
    char *j = cli_slurp(json, NULL);
    cr_assert(strstr(j, "\"rows\": [{\"T\": 13, \"speedup\": "), "%s", j);
    free(j);
    /* the report's section from both kinds of phases CSV */
    const char *rep = cli_tpath(&t, "rep");
    const char *ra[] = {"report", "--out", rep, "--phases", csv, NULL};
    free(cli_expect_ok(ra));
    char path[256];
    snprintf(path, sizeof path, "%s/report.md", rep);
    char *md = cli_slurp(path, NULL);
    cr_assert(strstr(md, "## Where a step's time goes"), "%s", md);
    cr_assert(strstr(md, "| train-" TILE_LABEL " | train | 24 |"), "%s", md);
    cr_assert(strstr(md, "\n| train-flash | train | 24 |"), "%s", md);
    free(md);
    cli_tdir_close(&t);
}

Test(e2e_bench, train_flags_are_one_line) {
    const char *a[] = {"bench-train", "--seqs", "64", NULL};
    cli_expect_fail(a, "--seqs", 0);
    const char *b[] = {"bench-train", "--plan", TILE, "--configs", "B", NULL};
    cli_expect_fail(b, "--configs", 0);
    const char *c[] = {"bench-train", "--plan", TILE, "--heads", "3", NULL};
    cli_expect_fail(c, "--heads", 0);
    const char *d[] = {"bench-train", "--plan", "all:block+softmax:b=4,n=2,tile=2", "--seqs", "8", NULL};
    cli_expect_fail(d, "--plan", 0);
    const char *f[] = {"bench-train", "--plan", TILE, "--runs", "0", NULL};
    cli_expect_fail(f, "--runs", 0);
    const char *g[] = {"report", "--out", "/tmp/sattn_never_written", "--phases", "/nonexistent.csv", NULL};
    cli_expect_fail(g, "/nonexistent.csv", 0);
}
