/* Tests for sattn report (sattn/report.h): the bench CSV parser and the eval JSON reader
 * on good and bad input (one-line errors naming file:line), the plan's relative FLOPs,
 * and the command end to end: report.md and the PNGs (skipped without gnuplot), and
 * one-line errors for bad flags. The bench CSV here is SYNTHETIC (made-up times). */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_util.h"
#include "sattn/report.h"

#define HEADER "variant,phase,C,H,T,k,median_s,gflops,speedup_vs_flash,peak_bytes,cpu_pressure_avg10\n"

/* SYNTHETIC benchmark rows in `sattn bench`'s format: dense-flash time ~ T^2 (prefill)
 * or T (decode), block+softmax ~ T, index+softmax ~ 0.6 T^2; not measurements. */
static void write_synthetic_csv(const char *path) {
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(HEADER, f);
    static const int Ts[] = {64, 256, 1024, 4096};
    for (int dec = 0; dec < 2; dec++)
        for (int i = 0; i < 4; i++) {
            double T = Ts[i], flash = dec ? 1e-8 * T : 1e-9 * T * T;
            double blk = dec ? 2e-7 + 1e-9 * T : 5e-7 * T, idx = dec ? 1e-6 + 0.6e-8 * T : 0.6e-9 * T * T + 1e-4;
            const char *ph = dec ? "decode" : "prefill";
            if (!dec) fprintf(f, "dense-naive,%s,512,8,%d,0,%.6e,50,%.4f,%.0f,0.5\n", ph, Ts[i], 2 * flash, 0.5, 4e6 * T);
            fprintf(f, "dense-flash,%s,512,8,%d,0,%.6e,80,1.0000,%.0f,0.5\n", ph, Ts[i], flash, 1e4 * T);
            fprintf(f, "block+softmax,%s,512,8,%d,32,%.6e,20,%.4f,%.0f,0.5\n", ph, Ts[i], blk, flash / blk, 1.2e4 * T);
            fprintf(f, "index+softmax,%s,512,8,%d,32,%.6e,30,%.4f,%.0f,0.5\n", ph, Ts[i], idx, flash / idx, 1.5e4 * T);
        }
    /* backward rows (plotted in their own phase) */
    for (int i = 0; i < 4; i++) {
        double T = Ts[i], flash = 2e-9 * T * T, blk = 1e-6 * T;
        fprintf(f, "dense-flash,backward,512,8,%d,0,%.6e,80,1.0000,%.0f,0.5\n", Ts[i], flash, 2e4 * T);
        fprintf(f, "block+softmax,backward,512,8,%d,32,%.6e,20,%.4f,%.0f,0.5\n", Ts[i], blk, flash / blk, 2e4 * T);
    }
    /* another C and k: filtered out of the plots */
    fputs("block+softmax,prefill,128,2,64,8,1e-5,1,1,1000,0\n", f);
    fclose(f);
}

/* The format `sattn eval --json` prints (two sparse heads of a 2 x 2 model). */
static const char EVAL_JSON[] =
    "{\"heads\": [{\"layer\": 0, \"head\": 1, \"spec\": \"block+softmax:b=16,n=4\", \"top1\": 0.9, "
    "\"hit\": 1.000000, \"recall\": 0.95, \"mass\": 0.98, \"keys\": 50.500, \"rel_err\": 0.05}, "
    "{\"layer\": 1, \"head\": 0, \"spec\": \"index+softmax:k=16,r=16,j=4\", \"top1\": 0.8, \"hit\": 0.99, "
    "\"recall\": 0.9, \"mass\": 0.87, \"keys\": 15.531, \"rel_err\": 0.15}], \"mean_recall\": 0.925, "
    "\"mean_mass\": 0.925, \"mean_top1\": 0.85, \"median_rel_err\": 0.1, \"logit_rel_err\": 0.03, "
    "\"windows\": 100, \"loss_dense\": 1.895712, \"loss_hybrid\": 1.92, \"loss_ratio\": 1.012811, "
    "\"loss_change\": 0.024288, \"bits_per_byte_dense\": 2.734934, \"bits_per_byte_hybrid\": 2.77, "
    "\"tokens\": 111539}\n";

static int has_gnuplot(void) { return system("command -v gnuplot >/dev/null 2>&1") == 0; }

/* ------------------------------------------------------------------- CSV ---- */

Test(report, csv_good) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *p = cli_tpath(&t, "b.csv");
    write_synthetic_csv(p);
    bench_table bt;
    sattn_err e;
    cr_assert_eq(bench_csv_read(p, &bt, &e), 0, "%s", e.msg);
    cr_assert_eq(bt.n, 4 * 4 + 4 * 3 + 4 * 2 + 1);
    cr_assert_str_eq(bt.rows[0].variant, "dense-naive");
    cr_assert_eq(bt.rows[0].decode, 0);
    cr_assert_eq(bt.rows[0].C, 512);
    cr_assert_eq(bt.rows[0].T, 64);
    cr_assert_float_eq(bt.rows[0].median_s, 2 * 1e-9 * 64 * 64, 1e-12);
    cr_assert_eq(bt.rows[bt.n - 1].k, 8);
    bench_table_free(&bt);
    cli_tdir_close(&t);
}

/* The error for a CSV with this text: one line, naming where and needle. */
static void csv_bad(const char *text, const char *where, const char *needle) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *p = cli_tpath(&t, "bad.csv");
    cli_spew(p, text, strlen(text));
    bench_table bt;
    sattn_err e;
    cr_assert_eq(bench_csv_read(p, &bt, &e), -1, "accepted: %s", text);
    char loc[300];
    snprintf(loc, sizeof loc, "%s:%s", p, where);
    cr_assert(strstr(e.msg, loc), "'%s' does not name %s", e.msg, loc);
    cr_assert(strstr(e.msg, needle), "'%s' does not name %s", e.msg, needle);
    cr_assert_null(strchr(e.msg, '\n'), "not one line: %s", e.msg);
    cli_tdir_close(&t);
}

Test(report, csv_bad) {
    csv_bad("variant,phase,C,H,T,k,median_s,gflops,speedup_vs_flash,peak_bytes\nx\n", "1:", "cpu_pressure_avg10");
    csv_bad("variant,phase,C,H,T,K,median_s,gflops,speedup_vs_flash,peak_bytes,cpu_pressure_avg10\n", "1:", "'K'");
    csv_bad("variant,phase,C,H,T,k,median_s,gflops,speedup_vs_flash,peak_bytes,cpu_pressure_avg10,extra\n",
            "1:", "12 columns, expected 11");
    csv_bad(HEADER "dense-flash,prefill,512,8,64,0,1e-3,80,1,100,0.5\n"
                   "dense-flash,prefill,512,8,128,0,abc,80,1,100,0.5\n", "3:", "'median_s': 'abc'");
    csv_bad(HEADER "dense-flash,prefill,512,8,6.5,0,1e-3,80,1,100,0.5\n", "2:", "'T'");
    csv_bad(HEADER "dense-flash,prefill,512,8,64,0,1e-3,80,1,100\n", "2:", "10 fields, expected 11");
    csv_bad(HEADER "dense-flash,sideways,512,8,64,0,1e-3,80,1,100,0.5\n", "2:", "'phase'");
    csv_bad(HEADER, "1:", "no data rows");
    csv_bad("", "1:", "empty");
}

/* ------------------------------------------------------------------ JSON ---- */

Test(report, eval_json_good) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *p = cli_tpath(&t, "blk.json");
    cli_spew(p, EVAL_JSON, strlen(EVAL_JSON));
    eval_file f;
    sattn_err e;
    cr_assert_eq(eval_json_read(p, &f, &e), 0, "%s", e.msg);
    cr_assert_str_eq(f.name, "blk");
    cr_assert_eq(f.n_heads, 2);
    cr_assert_eq(f.heads[0].layer, 0);
    cr_assert_eq(f.heads[0].head, 1);
    cr_assert_str_eq(f.heads[0].spec, "block+softmax:b=16,n=4");
    cr_assert_float_eq(f.heads[1].rel_err, 0.15, 1e-12);
    cr_assert_float_eq(f.heads[1].keys, 15.531, 1e-12);
    cr_assert_float_eq(f.loss_ratio, 1.012811, 1e-12);
    cr_assert_float_eq(f.logit_rel_err, 0.03, 1e-12);
    /* block at T = 256 is cheaper than dense; two of four heads stay dense */
    report_model m = {2, 2, 64, 256};
    double rel;
    cr_assert_eq(eval_relative_flops(&f, &m, &rel, &e), 0, "%s", e.msg);
    cr_assert(rel > 0.5 && rel < 1.5, "rel %g", rel);
    report_model small = {1, 2, 64, 256};
    cr_assert_eq(eval_relative_flops(&f, &small, &rel, &e), -1);
    cr_assert(strstr(e.msg, "L1H0"), "%s", e.msg);
    eval_file_free(&f);
    cli_tdir_close(&t);
}

static void json_bad(const char *text, const char *needle) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *p = cli_tpath(&t, "bad.json");
    cli_spew(p, text, strlen(text));
    eval_file f;
    sattn_err e;
    cr_assert_eq(eval_json_read(p, &f, &e), -1, "accepted: %s", text);
    cr_assert(strstr(e.msg, p), "'%s' does not name the file", e.msg);
    cr_assert(strstr(e.msg, needle), "'%s' does not name %s", e.msg, needle);
    cr_assert_null(strchr(e.msg, '\n'));
    cli_tdir_close(&t);
}

Test(report, eval_json_malformed) {
    json_bad("{\"heads\": [{\"layer\": 0, \"head\": 1,\n \"spec\": \"block+softmax\", \"top1\": }]}", ":2: field 'top1': expected a number, got '}'");
    json_bad("{\"heads\": [], \"loss_dense\": 1.0, \"loss_hybrid\": 1.1}", "loss_ratio");
    json_bad("{\"heads\": [{\"layer\": 0}], \"loss_dense\": 1, \"loss_hybrid\": 1, \"loss_ratio\": 1}", "without layer, head or spec");
    json_bad("[1, 2]", ":1: expected '{'");
    json_bad("{\"heads\": [], \"loss_dense\": 1, \"loss_hybrid\": 1, \"loss_ratio\": 1} x", "trailing");
    /* truncated in the middle of the file */
    char trunc[200];
    snprintf(trunc, sizeof trunc, "%.150s", EVAL_JSON);
    json_bad(trunc, "bad.json:1:");
}

/* ---------------------------------------------------------------- command ---- */

static int png_magic(const char *path) {
    static const unsigned char MAGIC[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t n;
    char *b = cli_slurp(path, &n);
    int ok = n > 8 && !memcmp(b, MAGIC, 8);
    free(b);
    return ok;
}

Test(report, command_writes_report_and_pngs) {
    if (!has_gnuplot()) cr_skip_test("gnuplot is not installed (scripts/deps.sh installs gnuplot-nox)");
    cli_tdir t;
    cli_tdir_open(&t);
    char csv[256], json[256], out[256];
    snprintf(csv, sizeof csv, "%s", cli_tpath(&t, "synthetic.csv"));
    snprintf(json, sizeof json, "%s", cli_tpath(&t, "blk.json"));
    snprintf(out, sizeof out, "%s", cli_tpath(&t, "rep"));
    write_synthetic_csv(csv);
    cli_spew(json, EVAL_JSON, strlen(EVAL_JSON));
    const char *argv[] = {"report", "--out", out, "--bench", csv, "--eval", json,
                          "--model-shape", "2,2,64,256", NULL};
    free(cli_expect_ok(argv));
    static const char *const pngs[] = {"flops", "memory", "speedup", "bench_prefill", "bench_decode",
                                       "bench_speedup_prefill", "bench_speedup_decode", "bench_backward",
                                       "bench_speedup_backward", "crossover", "pareto", "heatmap_blk"};
    char path[512];
    snprintf(path, sizeof path, "%s/report.md", out);
    char *md = cli_slurp(path, NULL);
    for (size_t i = 0; i < sizeof pngs / sizeof pngs[0]; i++) {
        snprintf(path, sizeof path, "%s/%s.png", out, pngs[i]);
        cr_assert(cli_file_exists(path), "missing %s", path);
        cr_assert(png_magic(path), "%s is not a PNG", path);
        snprintf(path, sizeof path, "(%s.png)", pngs[i]);
        cr_assert(strstr(md, path), "report.md does not embed %s", path);
    }
    cr_assert(strstr(md, "| block+softmax | prefill |"), "no crossover row:\n%s", md);
    cr_assert(strstr(md, "| block+softmax | backward | 4096 |"), "no backward row:\n%s", md);
    cr_assert(strstr(md, "| blk | `block+softmax:b=16,n=4` | 2 / 4 |"), "no eval row:\n%s", md);
    free(md);
    cli_assert_no_output(out, ".flops"); /* the temporary PNG names are gone */
    cli_tdir_close(&t);
}

Test(report, analytic_only) {
    if (!has_gnuplot()) cr_skip_test("gnuplot is not installed (scripts/deps.sh installs gnuplot-nox)");
    cli_tdir t;
    cli_tdir_open(&t);
    const char *out = cli_tpath(&t, "rep");
    const char *argv[] = {"report", "--out", out, "--dim", "128", "--heads", "4", "--k", "16", NULL};
    free(cli_expect_ok(argv));
    char path[512];
    snprintf(path, sizeof path, "%s/flops.png", out);
    cr_assert(png_magic(path));
    snprintf(path, sizeof path, "%s/pareto.png", out);
    cr_assert_not(cli_file_exists(path));
    cli_tdir_close(&t);
}

/* A row without a dense-flash reference (speedup -1: flash was skipped at that T) is
 * no comparison: T* stays at the first T of the winning run, as in `sattn bench`. */
Test(report, crossover_ignores_unknown_speedup) {
    if (!has_gnuplot()) cr_skip_test("gnuplot is not installed (scripts/deps.sh installs gnuplot-nox)");
    cli_tdir t;
    cli_tdir_open(&t);
    const char *csv = cli_tpath(&t, "b.csv"), *out = cli_tpath(&t, "rep");
    FILE *f = fopen(csv, "w");
    cr_assert(f);
    fputs(HEADER, f);
    static const int Ts[] = {256, 512, 1024, 2048};
    static const double sp[] = {0.8, 1.2, 1.9, -1.0};
    for (int i = 0; i < 4; i++) {
        if (sp[i] > 0) fprintf(f, "dense-flash,prefill,512,8,%d,0,1e-3,80,1.0000,100,0.5\n", Ts[i]);
        fprintf(f, "block+softmax,prefill,512,8,%d,32,1e-3,20,%.4f,100,0.5\n", Ts[i], sp[i]);
    }
    fclose(f);
    const char *argv[] = {"report", "--out", out, "--bench", csv, "--dim", "512", "--heads", "8", "--k", "32", NULL};
    free(cli_expect_ok(argv));
    char path[512];
    snprintf(path, sizeof path, "%s/report.md", out);
    char *md = cli_slurp(path, NULL);
    cr_assert(strstr(md, "| block+softmax | prefill | 34 | 512 |"), "%s", md);
    free(md);
    cli_tdir_close(&t);
}

Test(report, bad_flags) {
    cli_tdir t;
    cli_tdir_open(&t);
    char out[256], csv[256], json[256];
    snprintf(out, sizeof out, "%s", cli_tpath(&t, "rep"));
    snprintf(csv, sizeof csv, "%s", cli_tpath(&t, "bad.csv"));
    snprintf(json, sizeof json, "%s", cli_tpath(&t, "e.json"));
    cli_spew(csv, "variant,phase\n", 14);
    cli_spew(json, EVAL_JSON, strlen(EVAL_JSON));
    const cli_bad_case cases[] = {
        {{"--dim", "100", "--heads", "8", NULL}, "not a multiple"},
        {{"--k", "zero", NULL}, "k"},
        {{"--eval", json, NULL}, "--model-shape"},
        {{"--eval", json, "--model-shape", "2,2,64", NULL}, "L,H,C,T"},
        {{"--eval", json, "--model-shape", "2,3,64,256", NULL}, "multiple"},
        {{"--eval", json, "--model-shape", "1,1,64,256", NULL}, "outside the model"},
        {{"--bench", csv, NULL}, "bad.csv:1:"},
        {{"--bench", cli_tpath(&t, "nope.csv"), NULL}, "nope.csv"},
        {{"--frobnicate", NULL}, "frobnicate"},
        {{"stray", NULL}, "stray"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_args a = {0};
        cli_args_add(&a, "report", "--out", out, NULL);
        cli_args_addv(&a, cases[i].args);
        cli_expect_fail(a.v, cases[i].needle, 0);
    }
    const char *no_out[] = {"report", NULL};
    cli_expect_fail(no_out, "--out", 0);
    /* nothing but possibly the empty directory */
    cr_assert(!cli_file_exists(out) || cli_dir_entries(out) == 0);
    cli_tdir_close(&t);
}

Test(report, gnuplot_missing) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *out = cli_tpath(&t, "rep");
    setenv("SATTN_GNUPLOT", "/nonexistent/gnuplot", 1);
    const char *argv[] = {"report", "--out", out, NULL};
    cli_expect_fail(argv, "gnuplot-nox", 0);
    unsetenv("SATTN_GNUPLOT");
    cr_assert_not(cli_file_exists(out));
    cli_tdir_close(&t);
}
