/* End-to-end tests of `sattn demo`: the seed preset (random tokens, L0H0 replaced by each
 * selector) runs with tiny step counts and prints one valid JSON object whose fields are all
 * present, finite and in range, and the same object lands in OUT_DIR/metrics.json beside the
 * model and heads files; bad data and bad flags are one-line errors that create nothing.
 * The default preset runs on a small generated text with 3 training steps: once with the real
 * quick attention benchmark (bench.csv, the threshold from its crossover, the report), once
 * with --no-bench and a threshold inside the context; a bad --bench-csv fails before any work.
 *
 * The binary is $SATTN_BIN (default build/sattn); tests run from the repo root. Running it,
 * temp dirs and the one-line failure check are the shared helpers of cli_util.h. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

/* ------------------------------------------------- a minimal JSON reader ---- */

static const char *ws(const char *p) {
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    return p;
}

static const char *skip_value(const char *p);

/* p at '"'; returns past the closing quote, or NULL. */
static const char *skip_string(const char *p) {
    for (p++; *p && *p != '"'; p++) {
        if ((unsigned char)*p < 0x20) return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i]) return NULL;
                p += 4;
            } else if (!*p || !strchr("\"\\/bfnrt", *p)) {
                return NULL;
            }
        }
    }
    return *p == '"' ? p + 1 : NULL;
}

/* p at '{' or '['; returns past the closing bracket, or NULL. */
static const char *skip_container(const char *p) {
    char close = *p == '{' ? '}' : ']';
    int obj = *p == '{';
    p = ws(p + 1);
    if (*p == close) return p + 1;
    for (;;) {
        if (obj) {
            if (*p != '"' || !(p = skip_string(p))) return NULL;
            p = ws(p);
            if (*p != ':') return NULL;
            p = ws(p + 1);
        }
        if (!(p = skip_value(p))) return NULL;
        p = ws(p);
        if (*p == close) return p + 1;
        if (*p != ',') return NULL;
        p = ws(p + 1);
    }
}

/* Returns past one JSON value starting at p (no leading space), or NULL if it is malformed. */
static const char *skip_value(const char *p) {
    if (*p == '"') return skip_string(p);
    if (*p == '{' || *p == '[') return skip_container(p);
    static const char *words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++)
        if (!strncmp(p, words[i], strlen(words[i]))) return p + strlen(words[i]);
    char *end;
    strtod(p, &end);
    return end == p || *p == '+' || *p == '.' ? NULL : end;
}

/* The value of the direct member `key` of the object at obj, or NULL. */
static const char *member(const char *obj, const char *key) {
    cr_assert_eq(*obj, '{', "not an object: %.40s", obj);
    const char *p = ws(obj + 1);
    size_t kl = strlen(key);
    while (*p == '"') {
        const char *k = p + 1, *v = ws(ws(skip_string(p)) + 1);
        if (!strncmp(k, key, kl) && k[kl] == '"') return v;
        p = ws(skip_value(v));
        if (*p == ',') p = ws(p + 1);
    }
    return NULL;
}

static const char *need(const char *obj, const char *key) {
    const char *v = member(obj, key);
    cr_assert_not_null(v, "%s: no field \"%s\" in %.80s", cli_cmd, key, obj);
    return v;
}

/* Element i of the array at arr, or NULL past its end. */
static const char *element(const char *arr, int i) {
    cr_assert_eq(*arr, '[', "not an array: %.40s", arr);
    const char *p = ws(arr + 1);
    for (int j = 0; *p != ']'; j++) {
        if (j == i) return p;
        p = ws(skip_value(p));
        if (*p == ',') p = ws(p + 1);
    }
    return NULL;
}

static int count(const char *arr) {
    int n = 0;
    while (element(arr, n)) n++;
    return n;
}

/* A finite number field within [lo, hi]. */
static double num_in(const char *obj, const char *key, double lo, double hi) {
    const char *v = need(obj, key);
    char *end;
    double x = strtod(v, &end);
    cr_assert(end != v, "%s: \"%s\" is not a number: %.20s", cli_cmd, key, v);
    cr_assert(isfinite(x), "%s: \"%s\" is not finite: %.20s", cli_cmd, key, v);
    cr_assert(x >= lo && x <= hi, "%s: \"%s\" = %g outside [%g, %g]", cli_cmd, key, x, lo, hi);
    return x;
}

static void str_is(const char *obj, const char *key, const char *want) {
    const char *v = need(obj, key);
    size_t n = strlen(want);
    cr_assert(*v == '"' && !strncmp(v + 1, want, n) && v[n + 1] == '"', "%s: \"%s\" is %.30s, expected \"%s\"",
              cli_cmd, key, v, want);
}

static void str_starts(const char *obj, const char *key, const char *prefix) {
    const char *v = need(obj, key);
    cr_assert(*v == '"' && !strncmp(v + 1, prefix, strlen(prefix)), "%s: \"%s\" is %.40s, expected \"%s...\"",
              cli_cmd, key, v, prefix);
}

/* ------------------------------------------------------------------ tests ---- */

static const char *const FRACTIONS[] = {"top1", "hit", "recall", "mass", NULL};

static void check_variant(const char *v, int T) {
    cr_assert_eq(*v, '{');
    need(v, "name"), need(v, "plan"), need(v, "spec");
    cr_assert_eq(num_in(v, "layer", 0, 0), 0);
    cr_assert_eq(num_in(v, "head", 0, 0), 0);
    for (int i = 0; FRACTIONS[i]; i++) num_in(v, FRACTIONS[i], 0, 1);
    for (int i = 0; FRACTIONS[i]; i++) {
        char mean[32];
        snprintf(mean, sizeof mean, "mean_%s", FRACTIONS[i]);
        if (member(v, mean)) num_in(v, mean, 0, 1);
    }
    num_in(v, "keys", 1, T);
    num_in(v, "head_rel_err", 0, 100);
    num_in(v, "median_rel_err", 0, 100);
    num_in(v, "logit_rel_err", 0, 100);
    num_in(v, "windows", 1, 1e9);
    num_in(v, "tokens", 1, 1e9);
    num_in(v, "loss_ratio", 0.5, 2);
    num_in(v, "distill_s", 0, 1e6);
    num_in(v, "eval_s", 0, 1e6);
    /* Random tokens: any model stays near ln 64 nats. */
    num_in(v, "loss_dense", 3.5, 5);
    num_in(v, "loss_hybrid", 3.5, 5);
}

static void check_teacher(const char *t, int heads, int T) {
    num_in(t, "windows", 1, 1e6);
    double uniform = num_in(t, "uniform_entropy", 0, log(T));
    const char *hs = need(t, "heads");
    cr_assert_eq(count(hs), heads, "%s: teacher stats for %d heads, expected %d", cli_cmd, count(hs), heads);
    for (int i = 0; i < heads; i++) {
        const char *h = element(hs, i);
        num_in(h, "entropy", 0, uniform + 1e-6);
        double m1 = num_in(h, "mass1", 0, 1), m4 = num_in(h, "mass4", 0, 1), m16 = num_in(h, "mass16", 0, 1);
        cr_assert(m1 <= m4 + 1e-9 && m4 <= m16 + 1e-9, "%s: mass@k not increasing in k", cli_cmd);
        num_in(h, "self_frac", 0, 1), num_in(h, "sink_frac", 0, 1);
    }
}

static void check_seed_json(const char *js) {
    cr_assert_eq(*js, '{', "%s: stdout is not a JSON object: %.80s", cli_cmd, js);
    const char *end = skip_value(js);
    cr_assert_not_null(end, "%s: stdout is not valid JSON: %s", cli_cmd, js);
    cr_assert_str_eq(end, "\n", "%s: stdout holds more than one JSON object", cli_cmd);
    str_is(js, "preset", "seed");
    const char *d = need(js, "data");
    cr_assert_eq(num_in(d, "vocab", 64, 64), 64);
    const char *m = need(js, "model");
    num_in(m, "layers", 2, 2), num_in(m, "heads", 2, 2), num_in(m, "channels", 128, 128);
    num_in(m, "vocab", 64, 64), num_in(m, "params", 1, 1e9);
    int T = (int)num_in(m, "seq", 64, 64);
    const char *tr = need(js, "train");
    num_in(tr, "train_loss", 3.5, 5), num_in(tr, "val_loss", 3.5, 5), num_in(tr, "wall_s", 0, 1e6);
    cr_assert_float_eq(num_in(js, "uniform_loss", 4, 4.3), log(64.0), 1e-5);
    check_teacher(need(js, "teacher"), 4, T);
    const char *vs = need(js, "variants");
    cr_assert_eq(count(vs), 5, "%s: %d variants, expected 5", cli_cmd, count(vs));
    for (int i = 0; i < 5; i++) check_variant(element(vs, i), T);
    str_starts(element(vs, 0), "spec", "pos+mlp:k=3,");
    str_starts(element(vs, 1), "spec", "pos+mlp:k=3,");
    cr_assert_not_null(strstr(need(element(vs, 1), "spec"), ",q=0,logits=0\""), "%s: values-only mlp", cli_cmd);
    str_starts(element(vs, 2), "spec", "index+softmax:k=3,");
    str_starts(element(vs, 3), "spec", "index+softmax:k=16,");
    str_starts(element(vs, 4), "spec", "block+softmax:b=16,n=4");
    num_in(js, "logit_err_ratio_pos_mlp_over_index_k3", 0, 1e6);
    num_in(js, "logit_err_ratio_pos_mlp_over_index_k16", 0, 1e6);
    const char *o = need(js, "original_reported");
    need(o, "note");
    cr_assert_float_eq(num_in(o, "top1", 0, 1), 0.094, 1e-9);
    cr_assert_float_eq(num_in(o, "head_rel_err", 0, 10), 0.85, 1e-9);
    cr_assert_float_eq(num_in(o, "logit_rel_err", 0, 10), 0.58, 1e-9);
    need(need(js, "files"), "model");
    num_in(js, "wall_s", 0, 1e6);
}

/* No temporary (or other unexpected) file is left beside the outputs. */
static void check_out_dir(cli_tdir *t) {
    static const char *want[] = {"model.ckpt", "metrics.json", "heads-pos-mlp-k3.sparse",
                                 "heads-pos-mlp-k3-v.sparse", "heads-index-k3.sparse",
                                 "heads-index-k16.sparse", "heads-block-b16n4.sparse"};
    int n = (int)(sizeof want / sizeof want[0]), seen = 0;
    char dir[300];
    snprintf(dir, sizeof dir, "%s", cli_tpath(t, "out"));
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s: no output directory %s", cli_cmd, dir);
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.') continue;
        int ok = 0;
        for (int i = 0; i < n; i++) ok |= !strcmp(de->d_name, want[i]);
        cr_assert(ok, "%s: unexpected file %s in %s", cli_cmd, de->d_name, dir);
        seen++;
    }
    closedir(d);
    cr_assert_eq(seen, n, "%s: %d files in %s, expected %d", cli_cmd, seen, dir, n);
}

Test(demo, seed_preset_json, .timeout = 120) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *argv[] = {"demo", "--preset", "seed", "--steps", "20", "--distill-steps", "10",
                          "--tokens", "20000", "--out-dir", cli_tpath(&t, "out"), "--json", NULL};
    char *out = cli_expect_ok(argv);
    check_seed_json(out);
    char *file = cli_slurp(cli_tpath(&t, "out/metrics.json"), NULL);
    cr_assert_str_eq(file, out, "%s: metrics.json differs from the printed JSON", cli_cmd);
    check_out_dir(&t);
    free(file), free(out);
    cli_tdir_close(&t);
}

/* Text mode prints the table with the original project's row, labelled as reported. */
Test(demo, seed_preset_text, .timeout = 120) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *argv[] = {"demo", "--preset", "seed", "--steps", "5", "--distill-steps", "3",
                          "--tokens", "5000", "--out-dir", cli_tpath(&t, "out"), NULL};
    char *out = cli_expect_ok(argv);
    static const char *lines[] = {"ln 64 = 4.1589", "pos+mlp k=3 (original)", "index+softmax k=16",
                                  "block+softmax b=16 n=4", "original project (reported, not run here)",
                                  "pos+mlp / index+softmax"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        cr_assert_not_null(strstr(out, lines[i]), "%s: stdout lacks '%s':\n%s", cli_cmd, lines[i], out);
    free(out);
    cli_tdir_close(&t);
}

/* One line on stderr naming `needle`, non-zero exit, empty stdout, no output directory. */
static void expect_fail(cli_tdir *t, const char *argv[], const char *needle) {
    cli_expect_fail(argv, needle, 0);
    cr_assert(!cli_file_exists(cli_tpath(t, "out")), "%s: created the output directory", cli_cmd);
}

Test(demo, missing_data_is_one_line, .timeout = 30) {
    cli_tdir t;
    cli_tdir_open(&t);
    char data[256];
    snprintf(data, sizeof data, "%s", cli_tpath(&t, "missing.txt"));
    const char *argv[] = {"demo", "--data", data, "--out-dir", cli_tpath(&t, "out"), NULL};
    expect_fail(&t, argv, data);
    cli_tdir_close(&t);
}

Test(demo, bad_flags_are_one_line, .timeout = 30) {
    cli_tdir t;
    cli_tdir_open(&t);
    char out[256];
    snprintf(out, sizeof out, "%s", cli_tpath(&t, "out"));
    static const struct {
        const char *args[4];
        const char *needle;
    } cases[] = {
        {{"--preset", "bogus"}, "--preset"},
        {{"--preset"}, "--preset"},
        {{"--distill-steps", "0"}, "--distill-steps"},
        {{"--steps", "x"}, "--steps"},
        {{"--tokens", "100", "--preset", "seed"}, "--tokens"},
        {{"--tokens", "50000"}, "--tokens"},            /* only for the seed preset */
        {{"--preset", "seed", "--data", "x.txt"}, "--data"}, /* seed makes its own data */
        {{"--seed", "-1"}, "--seed"},
        {{"--out-dir", ""}, "--out-dir"},
        {{"stray"}, "stray"},
        {{"--extend-steps", "5"}, "--extend-steps"},          /* only for the long preset */
        {{"--seq", "1024", "--preset", "seed"}, "--seq"},
        {{"--preset", "long", "--seq", "1026"}, "--seq 1026"}, /* a multiple of 4 */
        {{"--preset", "long", "--seq", "256"}, "--seq"},       /* below 512 */
        {{"--preset", "long", "--no-bench"}, "--no-bench"},
        {{"--preset", "long", "--distill-steps", "3"}, "--distill-steps"},
        {{"--plan", "all:block+softmax"}, "--plan: apply to --preset long only"},
        {{"--preset", "long", "--plan", ""}, "--plan: expected a sparse plan"},
        {{"--preset", "long", "--plan", "all:bogus"}, "--plan: plan entry 1"}, /* before any stage runs */
    };
    cli_spew(cli_tpath(&t, "afile"), "", 0);
    const char *file_dir[] = {"demo", "--preset", "seed", "--out-dir", cli_tpath(&t, "afile"), NULL};
    expect_fail(&t, file_dir, "not a directory");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_args a = {0};
        cli_args_add(&a, "demo", "--out-dir", out, NULL);
        for (int j = 0; j < 4 && cases[i].args[j]; j++) cli_args_add(&a, cases[i].args[j], NULL);
        expect_fail(&t, a.v, cases[i].needle);
    }
    cli_tdir_close(&t);
}

/* ------------------------------------------- default preset: bench, length, report ---- */

static int have_gnuplot(void) {
    return cli_file_exists("/usr/bin/gnuplot") || cli_file_exists("/usr/local/bin/gnuplot");
}

/* Small enough that train (3 steps), distill (2 steps) and eval take seconds. */
#define DEFAULT_RUN(t, data) "demo", "--data", data, "--steps", "3", "--distill-steps", "2", "--threads", "2", \
                             "--out-dir", cli_tpath(t, "out")

static void check_report_dir(cli_tdir *t, int bench) {
    char *md = cli_slurp(cli_tpath(t, "out/report/report.md"), NULL);
    cr_assert_not_null(strstr(md, "eval-idx16.json"), "%s: report.md does not use the eval JSON", cli_cmd);
    cr_assert_eq(strstr(md, "## Measured") != NULL, bench, "%s: report.md measured section %s", cli_cmd,
                 bench ? "missing" : "unexpected");
    const char *pngs[] = {"flops.png", "pareto.png", "heatmap_eval-idx16.png", bench ? "bench_prefill.png" : NULL};
    for (int i = 0; i < 4 && pngs[i]; i++) {
        char name[64];
        snprintf(name, sizeof name, "out/report/%s", pngs[i]);
        size_t n;
        char *png = cli_slurp(cli_tpath(t, name), &n);
        cr_assert(n > 8 && !memcmp(png, "\x89PNG", 4), "%s: %s is not a PNG", cli_cmd, name);
        cr_assert_not_null(strstr(md, pngs[i]), "%s: report.md does not embed %s", cli_cmd, pngs[i]);
        free(png);
    }
    free(md);
}

/* The whole default chain with the real quick benchmark (about 6 s of it): the bench CSV,
 * the threshold taken from it, the eval JSON and the report, all in the output directory. */
Test(demo, default_preset_bench_report, .timeout = 300) {
    if (!have_gnuplot()) cr_skip_test("gnuplot is not installed (scripts/deps.sh installs gnuplot-nox)");
    cli_tdir t;
    cli_tdir_open(&t);
    char data[256];
    snprintf(data, sizeof data, "%s", cli_tpath(&t, "d.txt"));
    cli_write_text(data, 40000);
    const char *argv[] = {DEFAULT_RUN(&t, data), "--json", NULL};
    char *out = cli_expect_ok(argv);
    cr_assert_eq(*out, '{');
    cr_assert_str_eq(skip_value(out), "\n", "%s: stdout is not one JSON object", cli_cmd);
    const char *b = need(out, "bench");
    num_in(b, "rows", 10, 1e4);
    cr_assert(!strncmp(need(b, "measured"), "true", 4));
    const char *h = need(out, "hybrid_by_length");
    const char *db = need(h, "dense_below");
    cr_assert(!strncmp(db, "null", 4) || num_in(h, "dense_below", 1, 1 << 30) > 0, "%s", cli_cmd);
    str_starts(h, "from", cli_tpath(&t, "out/bench.csv"));
    str_starts(h, "desc", "dense ");
    /* the demo's windows are 128 long; a threshold above that means the dense loss exactly */
    const char *ev = need(out, "eval");
    if (!strncmp(db, "null", 4) || num_in(h, "dense_below", 1, 1 << 30) > 128)
        cr_assert_float_eq(num_in(h, "loss", 0, 100), num_in(ev, "loss_dense", 0, 100), 1e-9);
    char *csv = cli_slurp(cli_tpath(&t, "out/bench.csv"), NULL);
    cr_assert(!strncmp(csv, "variant,phase,C,H,T,k,", 22), "%s: bench.csv header", cli_cmd);
    cr_assert_not_null(strstr(csv, "index+softmax,prefill,128,2,128,16,"), "%s: no row at the model's C, T, k", cli_cmd);
    char *ej = cli_slurp(cli_tpath(&t, "out/eval-idx16.json"), NULL);
    cr_assert_eq(count(need(ej, "heads")), 16);
    num_in(ej, "loss_ratio", 0.5, 2);
    check_report_dir(&t, 1);
    str_starts(need(out, "files"), "report", cli_tpath(&t, "out/report/report.md"));
    free(ej), free(csv), free(out);
    cli_tdir_close(&t);
}

/* No benchmark, a threshold inside the context (64 < 128): the loss needs its own pass. */
Test(demo, default_preset_no_bench_text, .timeout = 300) {
    if (!have_gnuplot()) cr_skip_test("gnuplot is not installed (scripts/deps.sh installs gnuplot-nox)");
    cli_tdir t;
    cli_tdir_open(&t);
    char data[256];
    snprintf(data, sizeof data, "%s", cli_tpath(&t, "d.txt"));
    cli_write_text(data, 40000);
    const char *argv[] = {DEFAULT_RUN(&t, data), "--no-bench", "--dense-below", "64", NULL};
    char *out = cli_expect_ok(argv);
    static const char *lines[] = {"[5/6] attention benchmark: skipped (--no-bench)",
                                  "hybrid by length: dense below T=64 (--dense-below)",
                                  "validation loss with the threshold", "[6/6] report", "report.md"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        cr_assert_not_null(strstr(out, lines[i]), "%s: stdout lacks '%s':\n%s", cli_cmd, lines[i], out);
    cr_assert(!cli_file_exists(cli_tpath(&t, "out/bench.csv")), "%s: --no-bench wrote bench.csv", cli_cmd);
    check_report_dir(&t, 0);
    free(out);
    cli_tdir_close(&t);
}

/* --bench-csv is read and checked before any work: a bad one creates nothing. */
Test(demo, bench_flags_are_one_line, .timeout = 60) {
    cli_tdir t;
    cli_tdir_open(&t);
    char out[256], data[256], nodata[256], bad[256], noidx[256], ok[256];
    snprintf(out, sizeof out, "%s", cli_tpath(&t, "out"));
    snprintf(data, sizeof data, "%s", cli_tpath(&t, "d.txt"));
    snprintf(nodata, sizeof nodata, "%s", cli_tpath(&t, "missing.csv"));
    snprintf(bad, sizeof bad, "%s", cli_tpath(&t, "bad.csv"));
    snprintf(noidx, sizeof noidx, "%s", cli_tpath(&t, "noidx.csv"));
    snprintf(ok, sizeof ok, "%s", cli_tpath(&t, "ok.csv"));
    cli_write_text(data, 40000);
    static const char hdr[] = "variant,phase,C,H,T,k,median_s,gflops,speedup_vs_flash,peak_bytes,cpu_pressure_avg10\n";
    char text[512];
    snprintf(text, sizeof text, "%sindex+softmax,prefill,256,4,x,16,1,1,1,1,1\n", hdr);
    cli_spew(bad, text, strlen(text));
    snprintf(text, sizeof text, "%sblock+softmax,prefill,256,4,256,16,1,1,2,1,1\n", hdr);
    cli_spew(noidx, text, strlen(text));
    cli_spew(ok, hdr, strlen(hdr)); /* no data rows */
    static const struct {
        const char *args[4];
        const char *needle;
    } cases[] = {
        {{"--dense-below", "-1"}, "--dense-below"},
        {{"--dense-below", "x"}, "--dense-below"},
        {{"--bench-csv", ""}, "--bench-csv"},
        {{"--no-bench", "--bench-csv", "b.csv"}, "--no-bench"},
        {{"--preset", "seed", "--no-bench"}, "--no-bench"},
        {{"--preset", "seed", "--dense-below", "64"}, "--dense-below"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_args a = {0};
        cli_args_add(&a, "demo", "--out-dir", out, NULL);
        if (strcmp(cases[i].args[0], "--preset")) cli_args_add(&a, "--data", data, NULL); /* seed: no --data */
        for (int j = 0; j < 4 && cases[i].args[j]; j++) cli_args_add(&a, cases[i].args[j], NULL);
        expect_fail(&t, a.v, cases[i].needle);
    }
    const char *files[][2] = {{nodata, nodata}, {bad, ":2:"}, {noidx, "index+softmax"}, {ok, "no data rows"}};
    for (int i = 0; i < 4; i++) {
        const char *argv[] = {"demo", "--data", data, "--out-dir", out, "--bench-csv", files[i][0], NULL};
        char *msg = cli_expect_fail_msg(argv, files[i][1], 0);
        cr_assert_not_null(strstr(msg, files[i][0]), "%s: the error does not name the file: %s", cli_cmd, msg);
        cr_assert(!cli_file_exists(out), "%s: created the output directory", cli_cmd);
        free(msg);
    }
    cli_tdir_close(&t);
}

/* ---------------------------------------------------------------- long preset ---- */

/* The whole chain at --seq 512 with a few steps: four stages (128, 128, 256, 512), the passkey grid (128, 256,
 * 512 x 10 depths) and the generation rows, one JSON on stdout equal to metrics.json. */
Test(demo, long_preset_json, .timeout = 300) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *data = cli_tpath(&t, "d.txt");
    cli_write_text(data, 60000);
    char out[256];
    snprintf(out, sizeof out, "%s", cli_tpath(&t, "out"));
    const char *argv[] = {"demo", "--preset", "long", "--data", data, "--seq", "512", "--steps", "3",
                          "--extend-steps", "2", "--task-samples", "1", "--threads", "2", "--json",
                          "--out-dir", out, NULL};
    char *js = cli_expect_ok(argv);
    char path[512];
    snprintf(path, sizeof path, "%s/metrics.json", out);
    size_t n;
    char *file = cli_slurp(path, &n);
    cr_assert_str_eq(js, file, "stdout and metrics.json differ");
    cr_assert(strstr(js, "\"preset\": \"long\""), "%s", js);
    cr_assert(strstr(js, "{\"seq\": 128, \"batch\": 32, \"steps\": 3, \"mix\": \"passkey:0.8\""), "%s", js);
    cr_assert(strstr(js, "{\"seq\": 128, \"batch\": 32, \"steps\": 3, \"mix\": \"passkey:1\""), "%s", js);
    cr_assert(strstr(js, "{\"seq\": 256, \"batch\": 16, \"steps\": 2, \"mix\": \"passkey:1\""), "%s", js);
    cr_assert(strstr(js, "{\"seq\": 512, \"batch\": 8, \"steps\": 2, \"mix\": \"passkey:1\""), "%s", js);
    int cells = 0;
    for (const char *p = js; (p = strstr(p, "\"correct\": ")); p++) cells++;
    cr_assert_eq(cells, 30, "passkey cells: %d", cells);
    for (int T = 128; T <= 512; T *= 2) {
        char key[64];
        snprintf(key, sizeof key, "{\"context\": %d, \"prefill_s\": ", T);
        const char *g = strstr(js, key);
        cr_assert(g, "no generation row at %d: %s", T, js);
        double pre, dec, rec;
        cr_assert_eq(sscanf(g + strlen(key), "%lf, \"decode_ms\": %lf, \"recompute_ms\": %lf", &pre, &dec, &rec), 3);
        cr_assert(pre > 0 && dec > 0 && rec > 0, "T %d: %g %g %g", T, pre, dec, rec);
    }
    for (int i = 1; i <= 3; i++) {
        snprintf(path, sizeof path, "%s/stage%d.ckpt", out, i);
        cr_assert(cli_file_exists(path), "%s missing", path);
        snprintf(path, sizeof path, "%s/stage%d.csv", out, i); /* the stage's loss curve */
        cr_assert(cli_file_exists(path), "%s missing", path);
    }
    snprintf(path, sizeof path, "%s/model.csv", out);
    cr_assert(cli_file_exists(path), "%s missing", path);
    snprintf(path, sizeof path, "%s/model.ckpt", out);
    const char *loss[] = {"loss", "--model", path, "--data", data, "--attn", "flash", NULL};
    free(cli_expect_ok(loss));
    free(file), free(js);
    cli_tdir_close(&t);
}

/* --plan: every stage trains natively sparse (a tile plan), each writes its heads beside its
 * checkpoint, the grid runs with the heads, metrics.json names the plan, and `loss --heads`
 * of the final model gives the last stage's validation loss. */
Test(demo, long_preset_native_sparse, .timeout = 300) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *data = cli_tpath(&t, "d.txt");
    cli_write_text(data, 60000);
    char out[256];
    snprintf(out, sizeof out, "%s", cli_tpath(&t, "out"));
    const char *argv[] = {"demo", "--preset", "long", "--data", data, "--seq", "512", "--steps", "3",
                          "--extend-steps", "2", "--task-samples", "1", "--threads", "2", "--json",
                          "--plan", "all:block+softmax:b=16,n=2,tile=1", "--out-dir", out, NULL};
    char *js = cli_expect_ok(argv);
    cr_assert(strstr(js, "\"attn\": \"sparse\", \"plan\": \"all:block+softmax:b=16,n=2,tile=1\""), "%s", js);
    char path[512], heads[512];
    for (int i = 1; i <= 3; i++) {
        snprintf(path, sizeof path, "%s/stage%d.heads", out, i);
        cr_assert(cli_file_exists(path), "%s missing", path);
    }
    const char *last = strstr(js, "{\"seq\": 512, \"batch\": 8, \"steps\": 2, \"mix\": \"passkey:1\", \"val_loss\": ");
    cr_assert(last, "%s", js);
    double val = atof(last + strlen("{\"seq\": 512, \"batch\": 8, \"steps\": 2, \"mix\": \"passkey:1\", \"val_loss\": "));
    snprintf(path, sizeof path, "%s/model.ckpt", out);
    snprintf(heads, sizeof heads, "%s/model.heads", out);
    const char *loss[] = {"loss", "--model", path, "--heads", heads, "--data", data, "--json", NULL};
    char *lj = cli_expect_ok(loss);
    cr_assert(fabs(cli_json_num(lj, "loss") - val) < 2e-6, "loss --heads %g, the stage printed %g",
              cli_json_num(lj, "loss"), val);
    free(lj), free(js);
    cli_tdir_close(&t);
}
