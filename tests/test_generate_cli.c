/* `sattn bench-generate` end to end (its rows, CSV, JSON and one-line errors), the fitted
 * line, and the report's generation section from its CSV. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "sattn/benchres.h"
#include "sattn/genbench.h"

#define SMALL "--layers", "1", "--heads", "2", "--dim", "16", "--vocab", "40", "--runs", "1", "--steps", "2", \
              "--threads", "2"

static int count_rows(const bench_table *t, const char *variant, int phase) {
    int n = 0;
    for (int i = 0; i < t->n; i++) n += !strcmp(t->rows[i].variant, variant) && t->rows[i].phase == phase;
    return n;
}

Test(generate_cli, csv_rows, .timeout = 120) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *csv = cli_tpath(&t, "gen.csv");
    const char *argv[] = {"bench-generate", SMALL, "--contexts", "8,16,24", "--recompute-max", "16", "--plan",
                          "all:block+softmax:b=4,n=2", "--csv", csv, NULL};
    char *out = cli_expect_ok(argv);
    cr_assert(strstr(out, "decode time per token vs context"), "%s", out);
    cr_assert(strstr(out, "gen-recompute-naive    / gen-dense"), "%s", out);
    free(out);
    bench_table bt;
    sattn_err e;
    cr_assert_eq(bench_csv_read(csv, &bt, &e), 0, "%s", e.msg);
    cr_assert_eq(count_rows(&bt, "gen-dense", BENCH_PREFILL), 3);
    cr_assert_eq(count_rows(&bt, "gen-dense", BENCH_DECODE), 3);
    cr_assert_eq(count_rows(&bt, "gen-all:block+softmax:b=4_n=2", BENCH_PREFILL), 3);
    cr_assert_eq(count_rows(&bt, "gen-all:block+softmax:b=4_n=2", BENCH_DECODE), 3);
    cr_assert_eq(count_rows(&bt, "gen-recompute-naive", BENCH_DECODE), 2);
    cr_assert_eq(count_rows(&bt, "gen-recompute-flash", BENCH_DECODE), 2);
    cr_assert_eq(bt.n, 16);
    for (int i = 0; i < bt.n; i++) {
        cr_assert_eq(bt.rows[i].C, 16);
        cr_assert_eq(bt.rows[i].H, 2);
        cr_assert_eq(bt.rows[i].speedup_vs_flash, -1.0);
        cr_assert_gt(bt.rows[i].median_s, 0.0);
        cr_assert_eq(bt.rows[i].k, strstr(bt.rows[i].variant, "block") ? 8 : 0, "%s T=%d k=%d", bt.rows[i].variant,
                     bt.rows[i].T, bt.rows[i].k);
    }
    double a, b;
    int cnt;
    cr_assert_eq(gb_fit(bt.rows, bt.n, "gen-dense", &a, &b, &cnt), 0);
    cr_assert_eq(cnt, 3);
    cr_assert_eq(gb_fit(bt.rows, bt.n, "gen-nothing", &a, &b, &cnt), -1);
    bench_table_free(&bt);
    cli_tdir_close(&t);
}

/* The line through exact points, and the decode lookup. */
Test(generate_cli, fit_is_least_squares) {
    bench_row r[4];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 4; i++) {
        snprintf(r[i].variant, sizeof r[i].variant, "%s", i < 3 ? "gen-x" : "gen-y");
        r[i].phase = BENCH_DECODE, r[i].T = 1024 << i, r[i].median_s = 0.002 + 3e-6 * r[i].T;
    }
    double a, b;
    int n;
    cr_assert_eq(gb_fit(r, 4, "gen-x", &a, &b, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert(fabs(a - 0.002) < 1e-12 && fabs(b - 3e-6) < 1e-15, "a %g b %g", a, b);
    cr_assert_eq(gb_decode_at(r, 4, "gen-y", 8192), r[3].median_s);
    cr_assert_eq(gb_decode_at(r, 4, "gen-y", 1024), -1.0);
    char lab[16];
    gb_label("all:index+softmax:k=16,r=4; *:dense", lab, sizeof lab);
    cr_assert_str_eq(lab, "all:index+softm"); /* cut to fit, NUL included */
    gb_label("a,b c;d/e", lab, sizeof lab);
    cr_assert_str_eq(lab, "a_b_c_d_e");
}

Test(generate_cli, json, .timeout = 120) {
    const char *argv[] = {"bench-generate", SMALL, "--contexts", "8,16", "--recompute-max", "0", "--json", NULL};
    char *out = cli_expect_ok(argv);
    cr_assert(!strncmp(out, "{\"rows\": [{\"variant\": \"gen-dense\"", 33), "%s", out);
    cr_assert(strstr(out, "\"fits\": [{\"variant\": \"gen-dense\""), "%s", out);
    cr_assert_eq(cli_count_char(out, '\n'), 1);
    free(out);
}

Test(generate_cli, bad_input_is_one_line, .timeout = 120) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *dir_csv = t.dir;
    const char *a1[] = {"bench-generate", "--dim", "10", "--heads", "4", NULL};
    cli_expect_fail(a1, "--dim 10 is not a multiple of --heads 4", 0);
    const char *a2[] = {"bench-generate", "--heads-file", "x.heads", NULL};
    cli_expect_fail(a2, "--heads-file x.heads: trained heads need their --model", 0);
    const char *a3[] = {"bench-generate", "--model", "m.ckpt", "--layers", "2", NULL};
    cli_expect_fail(a3, "--model: the shape comes from the checkpoint", 0);
    const char *a4[] = {"bench-generate", SMALL, "--contexts", "8", "--plan", "all:block+nope", NULL};
    cli_expect_fail(a4, "--plan", 0);
    const char *a5[] = {"bench-generate", SMALL, "--contexts", "8", "--csv", dir_csv, NULL};
    cli_expect_fail(a5, "--csv", 0);
    const char *a6[] = {"bench-generate", "--contexts", "0", NULL};
    cli_expect_fail(a6, "--contexts", 0);
    const char *a7[] = {"bench-generate", "--model", cli_tpath(&t, "missing.ckpt"), NULL};
    cli_expect_fail(a7, "missing.ckpt", 0);
    cr_assert_eq(cli_dir_entries(t.dir), 0, "an error left a file behind");
    cli_tdir_close(&t);
}

static int has_gnuplot(void) { return system("command -v gnuplot >/dev/null 2>&1") == 0; }

Test(generate_cli, report_section, .timeout = 120) {
    if (!has_gnuplot()) cr_skip_test("gnuplot is not installed (scripts/deps.sh installs gnuplot-nox)");
    cli_tdir t;
    cli_tdir_open(&t);
    char csv[256], out[256], path[512];
    snprintf(csv, sizeof csv, "%s", cli_tpath(&t, "gen.csv"));
    snprintf(out, sizeof out, "%s", cli_tpath(&t, "rep"));
    const char *argv[] = {"bench-generate", SMALL, "--contexts", "8,16", "--recompute-max", "16", "--plan",
                          "all:index+softmax:k=4", "--csv", csv, NULL};
    free(cli_expect_ok(argv));
    const char *rep[] = {"report", "--out", out, "--generate", csv, NULL};
    free(cli_expect_ok(rep));
    snprintf(path, sizeof path, "%s/report.md", out);
    char *md = cli_slurp(path, NULL);
    cr_assert(strstr(md, "## Generation ("), "%s", md);
    cr_assert(strstr(md, "(generate_decode.png)") && strstr(md, "(generate_prefill.png)"), "%s", md);
    cr_assert(strstr(md, "| gen-dense | 2 | "), "no fit row:\n%s", md);
    cr_assert(strstr(md, "| gen-recompute-naive | decode | 16 | 0 |"), "no table row:\n%s", md);
    free(md);
    snprintf(path, sizeof path, "%s/generate_decode.png", out);
    cr_assert(cli_file_exists(path));
    /* a CSV that does not read: one line naming it, no report */
    const char *bad[] = {"report", "--out", cli_tpath(&t, "rep2"), "--generate", cli_tpath(&t, "nope.csv"), NULL};
    cli_expect_fail(bad, "nope.csv", 0);
    cli_tdir_close(&t);
}
