/* Tests for sattn report (sattn/report.h): the bench CSV parser and the eval JSON reader
 * on good and bad input (one-line errors naming file:line), the plan's relative FLOPs,
 * and the command end to end: report.md and the PNGs (skipped without gnuplot), and
 * one-line errors for bad flags. The bench CSV here is SYNTHETIC (made-up times). */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
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
    cr_assert_eq(bt.rows[0].phase, 0);
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
    json_bad("{\"heads\": [{\"layer\": 0, \"head\": 1,\n \"spec\": \"block+softmax\", \"top1\": }]}", "bad.json: not JSON at line 2, byte 69: unexpected character");
    json_bad("{\"heads\": [], \"loss_dense\": 1.0, \"loss_hybrid\": 1.1}", "loss_ratio");
    json_bad("{\"heads\": [{\"layer\": 0}], \"loss_dense\": 1, \"loss_hybrid\": 1, \"loss_ratio\": 1}", "without layer, head or spec");
    json_bad("[1, 2]", "bad.json: an array, expected a JSON object (`sattn eval --json` output)");
    json_bad("{\"heads\": [], \"loss_dense\": 1, \"loss_hybrid\": 1, \"loss_ratio\": 1} x", "bad.json: not JSON at line 1, byte 66: unexpected character");
    /* truncated in the middle of the file */
    char trunc[200];
    snprintf(trunc, sizeof trunc, "%.150s", EVAL_JSON);
    json_bad(trunc, "bad.json: not JSON: it ends inside a value");
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
    /* nothing: no directory, no temporary one beside it */
    cr_assert_not(cli_file_exists(out));
    cli_assert_no_output(t.dir, "rep");
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

/* ------------------------------------------------------------ hostile input ---- */

/* The CSV reader refuses values no plot can show, each a one-line error with the value. */
Test(report, csv_bad_values) {
    csv_bad(HEADER "dense-flash,prefill,512,8,64,0,nan,80,1,100,0.5\n", "2:", "'median_s': 'nan' is not a finite decimal number");
    csv_bad(HEADER "dense-flash,prefill,512,8,64,0,inf,80,1,100,0.5\n", "2:", "'median_s': 'inf' is not a finite");
    csv_bad(HEADER "dense-flash,prefill,512,8,64,0,1e999,80,1,100,0.5\n", "2:", "'median_s': '1e999' is not a finite");
    csv_bad(HEADER "dense-flash,prefill,512,8,64,0,-1e-3,80,1,100,0.5\n", "2:", "'median_s': '-1e-3' is out of range");
    csv_bad(HEADER "dense-flash,prefill,512,8,64,0,0,80,1,100,0.5\n", "2:", "'median_s': '0' is out of range");
    csv_bad(HEADER "dense-flash,prefill,512,8,64,0,1e-3,-80,1,100,0.5\n", "2:", "'gflops': '-80' is out of range");
    csv_bad(HEADER "dense-flash,prefill,512,8,64,0,1e-3,80,-2,100,0.5\n", "2:", "'speedup_vs_flash': '-2' is out");
    csv_bad(HEADER "dense-flash,prefill,512,8,64,0,1e-3,80,1,1e30,0.5\n", "2:", "'peak_bytes': '1e30' is out");
    csv_bad(HEADER "dense-flash,prefill,512,8,64,0,1e-3,80,1,100,101\n", "2:", "'cpu_pressure_avg10': '101' is out");
    csv_bad(HEADER "dense-flash,prefill,512,8,0,0,1e-3,80,1,100,0.5\n", "2:", "'T': '0' is out of range");
    csv_bad(HEADER "dense-flash,prefill,512,8,4294967296,0,1e-3,80,1,100,0.5\n", "2:", "'T': '4294967296' is out");
    csv_bad(HEADER "dense-flash,prefill,0,8,64,0,1e-3,80,1,100,0.5\n", "2:", "'C': '0' is out of range");
    csv_bad(HEADER "dense-flash,prefill,512,8,64,0,0x10,80,1,100,0.5\n", "2:", "'median_s': '0x10' is not a finite decimal number");
    /* what `sattn bench` writes for "not available" still reads */
    cli_tdir t;
    cli_tdir_open(&t);
    const char *p = cli_tpath(&t, "na.csv");
    cli_spew_str(p, HEADER "block+softmax,prefill,512,8,64,32,1e-3,80,-1.0000,100,-1.00\n");
    bench_table bt;
    sattn_err e;
    cr_assert_eq(bench_csv_read(p, &bt, &e), 0, "%s", e.msg);
    cr_assert_eq(bt.rows[0].speedup_vs_flash, -1.0);
    cr_assert_eq(bt.rows[0].cpu_pressure, -1.0);
    bench_table_free(&bt);
    cli_tdir_close(&t);
}

/* Names that reach gnuplot are refused unless every byte is one sattn's names use. */
Test(report, csv_bad_variant_names) {
    csv_bad(HEADER "x'.system(\"touch PWNED\").',prefill,512,8,64,32,1e-3,80,1,100,0.5\n", "2:",
            "column 'variant': byte 2 is ''' (0x27)");
    csv_bad(HEADER "`touch PWNED`,prefill,512,8,64,32,1e-3,80,1,100,0.5\n", "2:", "byte 1 is '`' (0x60)");
    csv_bad(HEADER "a@b,prefill,512,8,64,32,1e-3,80,1,100,0.5\n", "2:", "byte 2 is '@' (0x40)");
    csv_bad(HEADER "a\rb,prefill,512,8,64,32,1e-3,80,1,100,0.5\n", "2:", "byte 2 is '?' (0x0d)");
    csv_bad(HEADER "a b,prefill,512,8,64,32,1e-3,80,1,100,0.5\n", "2:", "byte 2 is ' ' (0x20)");
    csv_bad(HEADER "a\"b,prefill,512,8,64,32,1e-3,80,1,100,0.5\n", "2:", "byte 2 is '\"' (0x22)");
    /* a newline inside a name ends the row: its first part has too few fields */
    csv_bad(HEADER "x\n' . system(\"touch PWNED\") . ',prefill,512,8,64,32,1e-3,80,1,100,0.5\n", "2:",
            "1 fields, expected 11");
}

/* A CSV with text in it after a NUL byte, an overlong line, a file of empty lines, too
 * many rows, a file over the size limit. */
Test(report, csv_hostile_files) {
    static const char nul[] = HEADER "dense-flash,prefill,512,8,64,0,1e-3,80,1,100,0.5\nx\0y\n";
    cli_tdir t;
    cli_tdir_open(&t);
    const char *p = cli_tpath(&t, "h.csv");
    bench_table bt;
    sattn_err e;
    cli_spew(p, nul, sizeof nul - 1);
    cr_assert_eq(bench_csv_read(p, &bt, &e), -1);
    cr_assert(strstr(e.msg, "h.csv:3: a NUL byte (offset "), "%s", e.msg);
    /* a 1 MB variant name */
    size_t big = 1 << 20;
    char *line = malloc(strlen(HEADER) + big + 64);
    memset(line, 'a', strlen(HEADER) + big);
    memcpy(line, HEADER, strlen(HEADER));
    strcpy(line + strlen(HEADER) + big, ",prefill,512,8,64,0,1e-3,80,1,100,0.5\n");
    cli_spew_str(p, line);
    free(line);
    cr_assert_eq(bench_csv_read(p, &bt, &e), -1);
    cr_assert(strstr(e.msg, "h.csv:2: column 'variant': empty or longer than 95"), "%s", e.msg);
    /* 4 MB of empty lines: no rows, and no row array the size of the line count */
    char *empty = malloc(4 << 20);
    memcpy(empty, HEADER, strlen(HEADER));
    memset(empty + strlen(HEADER), '\n', (4 << 20) - strlen(HEADER));
    cli_spew(p, empty, 4 << 20);
    free(empty);
    cr_assert_eq(bench_csv_read(p, &bt, &e), -1);
    cr_assert(strstr(e.msg, "h.csv:1: no data rows"), "%s", e.msg);
    /* one row more than the 262144 allowed */
    FILE *f = fopen(p, "w");
    fputs(HEADER, f);
    for (int i = 0; i <= 1 << 18; i++) fputs("a,prefill,1,1,1,0,1,0,0,0,0\n", f);
    fclose(f);
    cr_assert_eq(bench_csv_read(p, &bt, &e), -1);
    cr_assert(strstr(e.msg, "h.csv:262146: more than 262144 rows"), "%s", e.msg);
    /* 65 MiB (sparse): refused before it is read */
    cr_assert_eq(truncate(p, 65 << 20), 0);
    cr_assert_eq(bench_csv_read(p, &bt, &e), -1);
    cr_assert(strstr(e.msg, "h.csv: 68157440 bytes, expected at most 64 MiB"), "%s", e.msg);
    cli_tdir_close(&t);
}

/* 100,000 nested arrays, and objects, inside a valid top-level object: a one-line
 * error at the depth limit, not a stack overflow. */
Test(report, eval_json_deep_nesting) {
    static const char *const open_[2] = {"[", "{\"a\":"}, *const close_[2] = {"]", "}"};
    for (int kind = 0; kind < 2; kind++) {
        sbuf b = {0};
        sb_printf(&b, "{\"heads\": [], \"x\": ");
        for (int i = 0; i < 100000; i++) sb_printf(&b, "%s", open_[kind]);
        sb_printf(&b, kind ? "1" : "");
        for (int i = 0; i < 100000; i++) sb_printf(&b, "%s", close_[kind]);
        sb_printf(&b, "}\n");
        json_bad(b.s, "bad.json: JSON nested deeper than 32");
        /* as the top level */
        json_bad(b.s + strlen("{\"heads\": [], \"x\": "), "bad.json: JSON nested deeper than 32");
        sb_free(&b);
    }
    /* through the command */
    cli_tdir t;
    cli_tdir_open(&t);
    const char *json = cli_tpath(&t, "deep.json"), *out = cli_tpath(&t, "rep");
    sbuf b = {0};
    sb_printf(&b, "{\"loss_dense\": ");
    for (int i = 0; i < 100000; i++) sb_printf(&b, "[");
    cli_spew_str(json, b.s);
    sb_free(&b);
    const char *argv[] = {"report", "--out", out, "--eval", json, "--model-shape", "2,2,64,256", NULL};
    cli_expect_fail(argv, "deep.json: JSON nested deeper than 32", 0);
    cli_tdir_close(&t);
}

Test(report, eval_json_bad_values) {
#define TOP(h, rest) "{\"heads\": [" h "], \"loss_dense\": 1.9, \"loss_hybrid\": 2, " rest "}"
#define HEAD(x) "{\"layer\": 0, \"head\": 0, \"spec\": \"block+softmax\", " x "}"
    json_bad(TOP("", "\"loss_ratio\": NaN"), ": field 'loss_ratio': NaN is not a finite number");
    json_bad(TOP("", "\"loss_ratio\": nan"), "bad.json: not JSON at line 1, byte ");
    json_bad(TOP("", "\"loss_ratio\": -Infinity"), "field 'loss_ratio': -Infinity is not a finite number");
    json_bad(TOP("", "\"loss_ratio\": 1e999"), "field 'loss_ratio': 1e999 is not a finite number");
    json_bad(TOP("", "\"loss_ratio\": 0x10"), "bad.json: not JSON at line 1, byte ");
    json_bad(TOP("", "\"loss_ratio\": -1"), "field 'loss_ratio': -1 is out of range, expected 1e-12 .. 1e+06");
    json_bad(TOP("", "\"loss_ratio\": 1, \"logit_rel_err\": -0.5"), "field 'logit_rel_err': -0.5 is out of range");
    json_bad(TOP("", "\"loss_ratio\": 1, \"windows\": nan"), "bad.json: not JSON at line 1, byte ");
    json_bad(TOP(HEAD("\"mass\": 1.5"), "\"loss_ratio\": 1"), "field 'mass': 1.5 is out of range, expected 0 .. 1");
    json_bad(TOP(HEAD("\"rel_err\": -0.1"), "\"loss_ratio\": 1"), "field 'rel_err': -0.1 is out of range");
    json_bad(TOP(HEAD("\"rel_err\": null"), "\"loss_ratio\": 1"), "field 'rel_err': expected a number, got null");
    json_bad("{\"heads\": [], \"loss_dense\": 0, \"loss_hybrid\": 1, \"loss_ratio\": 1}", "field 'loss_dense': 0 is out");
    json_bad("{\"heads\": [{\"layer\": 0, \"head\": 0, \"spec\": \"block\nsoftmax\"}]}", ": field 'spec': a control byte");
    json_bad("{\"heads\": [{\"layer\": 0, \"head\": 0, \"spec\": \"block+softmax:b=16,n=4,"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}]}",
             "field 'spec': string too long");
    static const char nul[] = "{\"heads\": [], \"loss_dense\": 1, \"loss_hybrid\": 1, \"loss_ratio\": 1}\n\0junk";
    cli_tdir t;
    cli_tdir_open(&t);
    const char *p = cli_tpath(&t, "n.json");
    cli_spew(p, nul, sizeof nul - 1);
    eval_file f;
    sattn_err e;
    cr_assert_eq(eval_json_read(p, &f, &e), -1);
    cr_assert(strstr(e.msg, "n.json:2: a NUL byte (offset 66)"), "%s", e.msg);
    /* a head listed twice would count twice in the FLOPs */
    cli_spew_str(p, TOP(HEAD("\"rel_err\": 0.1") ", " HEAD("\"rel_err\": 0.2"), "\"loss_ratio\": 1"));
    cr_assert_eq(eval_json_read(p, &f, &e), 0, "%s", e.msg);
    report_model m = {2, 2, 64, 256};
    double rel;
    cr_assert_eq(eval_relative_flops(&f, &m, &rel, &e), -1);
    cr_assert_str_eq(e.msg, "n: head L0H0 is listed twice, expected each sparse head once");
    eval_file_free(&f);
    cli_tdir_close(&t);
#undef TOP
#undef HEAD
}

/* ----------------------------------------------------- gnuplot and the folder ---- */

static void skip_without_gnuplot(void) {
    if (!has_gnuplot()) cr_skip_test("gnuplot is not installed (scripts/deps.sh installs gnuplot-nox)");
}

/* A CSV whose variant name would run a command inside gnuplot (a quote breaking out of
 * title '...', backquotes, a macro) is refused before gnuplot runs, and the command does
 * not run: before the fix, report exited 0 and the file appeared. */
Test(report, csv_command_injection_refused) {
    skip_without_gnuplot();
    cli_tdir t;
    cli_tdir_open(&t);
    char csv[256], out[256], pwned[256], text[1024];
    snprintf(csv, sizeof csv, "%s", cli_tpath(&t, "evil.csv"));
    snprintf(out, sizeof out, "%s", cli_tpath(&t, "rep"));
    snprintf(pwned, sizeof pwned, "%s", cli_tpath(&t, "PWNED"));
    const char *names[] = {"x'.system(\"touch %s\").'", "`touch %s`", "x' . system(\"touch %s\") . '\nz"};
    for (int i = 0; i < 3; i++) {
        char name[512];
        snprintf(name, sizeof name, names[i], pwned);
        snprintf(text, sizeof text, HEADER "%s,prefill,512,8,64,32,1e-3,80,1,100,0.5\n", name);
        cli_spew_str(csv, text);
        const char *argv[] = {"report", "--out", out, "--bench", csv, NULL};
        cli_expect_fail(argv, i < 2 ? "evil.csv:2: column 'variant': byte " : "evil.csv:2: 1 fields, expected 11", 0);
        cr_assert_not(cli_file_exists(pwned), "the CSV ran a command: %s", name);
        cr_assert_not(cli_file_exists(out));
    }
    cr_assert_not(cli_file_exists("PWNED"));
    cli_tdir_close(&t);
}

/* Names that are not refused draw safely: an eval file and an output folder whose names
 * hold quotes, backquotes and a macro (the eval name is cleaned, the folder never
 * reaches a script: gnuplot runs inside it). The command would create PWNED in
 * gnuplot's working directory: the test's before the fix, the report folder after. */
Test(report, hostile_paths_draw_safely) {
    skip_without_gnuplot();
    cli_tdir t;
    cli_tdir_open(&t);
    char json[256], out[256], path[400];
    snprintf(json, sizeof json, "%s", cli_tpath(&t, "e'`touch PWNED`@x.json"));
    snprintf(out, sizeof out, "%s", cli_tpath(&t, "r'`touch PWNED`'"));
    cli_spew_str(json, EVAL_JSON);
    const char *argv[] = {"report", "--out", out, "--eval", json, "--model-shape", "2,2,64,256", NULL};
    free(cli_expect_ok(argv));
    snprintf(path, sizeof path, "%s/heatmap_e__touch_PWNED__x.png", out);
    cr_assert(png_magic(path), "no heat map named after the cleaned eval name: %s", path);
    snprintf(path, sizeof path, "%s/PWNED", out);
    cr_assert_not(cli_file_exists(path));
    cr_assert_not(cli_file_exists("PWNED"));
    cr_assert_not(cli_file_exists(cli_tpath(&t, "PWNED")));
    cli_tdir_close(&t);
}

/* A fake gnuplot first in PATH: it fails on the n-th call (n in the file "fail_at"). */
static void fake_gnuplot(cli_tdir *t, int fail_at) {
    char bin[256], script[1024];
    snprintf(bin, sizeof bin, "%s", cli_tpath(t, "bin"));
    cr_assert_eq(mkdir(bin, 0755), 0);
    snprintf(script, sizeof script,
             "#!/bin/sh\nn=$(cat %s/calls 2>/dev/null || echo 0); n=$((n + 1)); echo $n > %s/calls\n"
             "if [ $n -ge %d ]; then echo \"fake gnuplot: broken on $1\" >&2; exit 1; fi\nexec %s \"$@\"\n",
             t->dir, t->dir, fail_at, "/usr/bin/gnuplot");
    char path[300];
    snprintf(path, sizeof path, "%s/gnuplot", bin);
    cli_spew_str(path, script);
    cr_assert_eq(chmod(path, 0755), 0);
    char env[4096];
    snprintf(env, sizeof env, "%s:%s", bin, getenv("PATH"));
    setenv("PATH", env, 1);
    unsetenv("SATTN_GNUPLOT");
}

/* gnuplot failing on the first plot or a later one leaves neither the report folder
 * nor its temporary folder, and an earlier report in place stays as it was. */
Test(report, gnuplot_failure_leaves_nothing) {
    skip_without_gnuplot();
    for (int fail_at = 1; fail_at <= 3; fail_at += 2) {
        cli_tdir t;
        cli_tdir_open(&t);
        fake_gnuplot(&t, fail_at);
        const char *out = cli_tpath(&t, "rep");
        const char *argv[] = {"report", "--out", out, NULL};
        cli_expect_fail(argv, fail_at == 1 ? "failed on flops.gp (exit status 1): fake gnuplot: broken on flops.gp"
                                           : "failed on speedup.gp (exit status 1): fake gnuplot: broken on speedup.gp", 0);
        cr_assert_not(cli_file_exists(out));
        cli_assert_no_output(t.dir, "rep");
        cli_tdir_close(&t);
    }
    /* over an earlier report */
    cli_tdir t;
    cli_tdir_open(&t);
    const char *out = cli_tpath(&t, "rep");
    cr_assert_eq(mkdir(out, 0755), 0);
    char md[300];
    snprintf(md, sizeof md, "%s/report.md", out);
    cli_spew_str(md, "earlier\n");
    fake_gnuplot(&t, 2);
    const char *argv[] = {"report", "--out", out, NULL};
    cli_expect_fail(argv, "memory.gp (exit status 1)", 0);
    char *text = cli_slurp(md, NULL);
    cr_assert_str_eq(text, "earlier\n");
    free(text);
    cr_assert_eq(cli_dir_entries(out), 1);
    cli_assert_no_output(t.dir, "rep.");
    cli_tdir_close(&t);
}

/* NaN in the CSV: one line naming file, line, column and value; nothing written. */
Test(report, nan_in_csv_writes_nothing) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *csv = cli_tpath(&t, "b.csv"), *out = cli_tpath(&t, "rep");
    cli_spew_str(csv, HEADER "dense-flash,prefill,512,8,64,0,1e-3,80,1,100,0.5\n"
                             "block+softmax,prefill,512,8,64,32,NaN,80,1,100,0.5\n");
    const char *argv[] = {"report", "--out", out, "--bench", csv, NULL};
    cli_expect_fail(argv, "b.csv:3: column 'median_s': 'NaN' is not a finite decimal number, expected seconds", 0);
    cr_assert_not(cli_file_exists(out));
    cli_assert_no_output(t.dir, "rep");
    cli_tdir_close(&t);
}

/* Writing over an earlier report replaces it whole: its files not written again (an
 * old heat map) are gone. A folder holding anything else, ".", or a file is refused. */
Test(report, output_folder_replaced_or_refused) {
    skip_without_gnuplot();
    cli_tdir t;
    cli_tdir_open(&t);
    char out[256], json[256], path[400];
    snprintf(out, sizeof out, "%s", cli_tpath(&t, "rep"));
    snprintf(json, sizeof json, "%s", cli_tpath(&t, "blk.json"));
    cli_spew_str(json, EVAL_JSON);
    const char *with_eval[] = {"report", "--out", out, "--eval", json, "--model-shape", "2,2,64,256", NULL};
    free(cli_expect_ok(with_eval));
    snprintf(path, sizeof path, "%s/heatmap_blk.png", out);
    cr_assert(png_magic(path));
    char slash[300];
    snprintf(slash, sizeof slash, "%s/", out); /* a trailing slash names the same folder */
    const char *plain[] = {"report", "--out", slash, NULL};
    free(cli_expect_ok(plain));
    cr_assert_not(cli_file_exists(path));
    snprintf(path, sizeof path, "%s/flops.png", out);
    cr_assert(png_magic(path));
    cli_assert_no_output(t.dir, "rep.");
    /* a folder with a file report does not write */
    snprintf(path, sizeof path, "%s/notes.txt", out);
    cli_spew_str(path, "mine\n");
    int before = cli_dir_entries(out);
    const char *again[] = {"report", "--out", out, NULL};
    cli_expect_fail(again, "rep: exists and holds 'notes.txt', which is not a report file", 0);
    cr_assert_eq(cli_dir_entries(out), before);
    cli_assert_no_output(t.dir, "rep.");
    const char *dot[] = {"report", "--out", ".", NULL};
    cli_expect_fail(dot, ".: not a directory name the report can be renamed to", 0);
    const char *file[] = {"report", "--out", json, NULL};
    cli_expect_fail(file, "blk.json: exists and is not a directory", 0);
    cli_tdir_close(&t);
}
