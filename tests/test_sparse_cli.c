/* End-to-end tests of the sparse-heads subcommands of the sattn binary: distill, eval
 * and finetune.
 *
 *  - bad flags: every unknown flag, missing value, missing required flag, bad number
 *    and stray argument is a non-zero exit with exactly one stderr line "sattn CMD: ..."
 *    naming the flag or value, and nothing is created at --out / --heads-out;
 *  - bad files: missing, garbage, truncated or corrupt models and heads files, heads
 *    made for another model shape, plans that do not parse or keep every head dense,
 *    data too short for one window, outputs that cannot be written: one line naming
 *    the file (or the plan), nothing created;
 *  - a tiny pipeline (train -> distill -> eval -> finetune -> loss / eval) with the
 *    eval JSON checked head by head against the plan and against `sattn loss`;
 *  - distill is deterministic for a fixed seed and thread count.
 *
 * Helpers (cli_run, temp dirs, one-line failure checks): cli_util.h. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_util.h"

/* ---------------------------------------------------------------- helpers ---- */

/* The model of every test: 2 layers of 2 heads, 16 channels (hs 8), context 32. */
#define T_SEQ 32
#define SHAPE "--layers", "2", "--heads", "2", "--dim", "16", "--seq", "32", "--batch", "8"
#define THREADS "--threads", "2"
/* Every kind of sparse head: index+softmax (layer 0, both heads), block+softmax, and
 * index+mlp (layer 1). */
#define PLAN "L0:index+softmax:k=8; L1H0:block+softmax:b=8,n=2; L1H1:index+mlp:k=4,hidden=16"
#define DATA_BYTES 30000

/* DATA_BYTES of text: the start of tiny shakespeare when present, else generated. */
static void write_data(const char *path) {
    if (cli_file_exists(CLI_SHAKESPEARE)) {
        size_t n;
        char *all = cli_slurp(CLI_SHAKESPEARE, &n);
        if (n >= DATA_BYTES) {
            cli_spew(path, all, DATA_BYTES);
            free(all);
            return;
        }
        free(all);
    }
    cli_write_text(path, DATA_BYTES);
}

/* Trains a model of SHAPE (extra: more flags, they override SHAPE; or NULL). */
static void train(const char *data, const char *out, const char *steps, const char *const *extra) {
    cli_args a = {0};
    cli_args_add(&a, "train", "--data", data, "--out", out, SHAPE, THREADS, "--steps", steps,
                 "--lr", "3e-3", "--warmup", "5", "--seed", "11", NULL);
    if (extra) cli_args_addv(&a, extra);
    free(cli_expect_ok(a.v));
    cr_assert(cli_file_exists(out), "%s: wrote no %s", cli_cmd, out);
}

static void distill(const char *model, const char *data, const char *plan, const char *out,
                    const char *steps, const char *seed) {
    const char *argv[] = {"distill", "--model", model, "--data", data, "--plan", plan, "--out", out,
                          "--steps", steps, "--seed", seed, THREADS, NULL};
    free(cli_expect_ok(argv));
    cr_assert(cli_file_exists(out), "%s: wrote no %s", cli_cmd, out);
}

/* A directory with data, a model of SHAPE (train_steps) and, if distill_steps, heads
 * distilled for PLAN. Paths are copied out of the rotating cli_tpath buffers. */
typedef struct {
    cli_tdir t;
    char data[256], model[256], heads[256];
} fixture;

static void fixture_open(fixture *f, const char *train_steps, const char *distill_steps) {
    cli_tdir_open(&f->t);
    snprintf(f->data, sizeof f->data, "%s", cli_tpath(&f->t, "d.txt"));
    snprintf(f->model, sizeof f->model, "%s", cli_tpath(&f->t, "m.ckpt"));
    snprintf(f->heads, sizeof f->heads, "%s", cli_tpath(&f->t, "m.heads"));
    write_data(f->data);
    train(f->data, f->model, train_steps, NULL);
    if (distill_steps) distill(f->model, f->data, PLAN, f->heads, distill_steps, "1");
}

/* A copy of path in t's directory under name: the first `keep` bytes (the whole
 * file if keep exceeds it), then `extra` bytes of 0x55; flip: XOR the last kept
 * byte with 0x40. Returns the new path (a cli_tpath buffer). */
static const char *variant(cli_tdir *t, const char *path, const char *name, size_t keep,
                           size_t extra, int flip) {
    size_t n;
    char *b = cli_slurp(path, &n);
    if (keep > n) keep = n;
    b = realloc(b, keep + extra + 1);
    cr_assert_not_null(b);
    memset(b + keep, 0x55, extra);
    if (flip && keep) b[keep - 1] ^= 0x40;
    const char *p = cli_tpath(t, name);
    cli_spew(p, b, keep + extra);
    free(b);
    return p;
}

static size_t file_size(const char *path) {
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s", path);
    return (size_t)st.st_size;
}

/* Runs argv, expects a one-line error naming needle and also containing also (if not
 * NULL), and that nothing in dir starts with prefix. */
static void expect_fail_clean(const char *argv[], const char *needle, const char *also,
                              const char *dir, const char *prefix) {
    char *err = cli_expect_fail_msg(argv, needle, 0);
    if (also) cr_assert_not_null(strstr(err, also), "%s: stderr should say '%s': %s", cli_cmd, also, err);
    free(err);
    if (dir) cli_assert_no_output(dir, prefix);
}

static void assert_dir_empty(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    for (struct dirent *de; (de = readdir(d));)
        cr_assert(!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."), "%s: left '%s' in %s", cli_cmd,
                  de->d_name, dir);
    closedir(d);
}

/* A number that must be present and finite. */
static double num(const char *json, const char *key) {
    double v = cli_json_num(json, key);
    cr_assert(isfinite(v), "%s: \"%s\" is not finite in %s", cli_cmd, key, json);
    return v;
}

static int count_str(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* The i-th object of eval's "heads" array, copied into buf. */
static const char *head_obj(const char *json, int i, char *buf, size_t cap) {
    const char *p = json;
    for (int j = 0; j <= i; j++) {
        p = strstr(p, "{\"layer\": ");
        cr_assert_not_null(p, "%s: no head %d in %s", cli_cmd, i, json);
        if (j < i) p++;
    }
    const char *end = strchr(p, '}');
    cr_assert_not_null(end);
    size_t n = (size_t)(end - p) + 1;
    cr_assert(n < cap, "head object too long");
    memcpy(buf, p, n);
    buf[n] = 0;
    return buf;
}

static void assert_near(double a, double b, double tol, const char *what, const char *ctx) {
    cr_assert(fabs(a - b) <= tol, "%s: %s: %.7f vs %.7f (tolerance %g)\n%s", cli_cmd, what, a, b, tol, ctx);
}

/* ------------------------------------------------------- 1. bad flags ---- */

/* The flag errors come before any file is touched, so the files need not exist; the
 * message must still name the flag (a file error instead would fail the check). */
Test(sparse_cli, distill_bad_flags, .timeout = 60) {
    cli_tdir t;
    cli_tdir_open(&t);
    char model[256], data[256], out[256];
    snprintf(model, sizeof model, "%s", cli_tpath(&t, "m.ckpt"));
    snprintf(data, sizeof data, "%s", cli_tpath(&t, "d.txt"));
    snprintf(out, sizeof out, "%s", cli_tpath(&t, "out.heads"));
    static const cli_bad_case cases[] = {
        {{"--bogus"}, "--bogus"},
        {{"--steps"}, "--steps"},
        {{"--plan"}, "--plan"},
        {{"--steps", "0"}, "--steps"},
        {{"--steps", "-5"}, "--steps"},
        {{"--steps", "3x"}, "--steps"},
        {{"--batch", "0"}, "--batch"},
        {{"--batch", "abc"}, "--batch"},
        {{"--lr", "0"}, "--lr"},
        {{"--lr", "abc"}, "--lr"},
        {{"--lr", "abc"}, "abc"},
        {{"--lr", "-1e-3"}, "--lr"},
        {{"--lr", "nan"}, "--lr"},
        {{"--seed", "-1"}, "--seed"},
        {{"--seed", "x"}, "--seed"},
        {{"--threads", "0"}, "--threads"},
        {{"--json", "x"}, "'x'"},
        {{"--min-lr", "1e-4"}, "--min-lr"}, /* a finetune flag, not a distill one */
        {{"stray"}, "stray"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_args a = {0};
        cli_args_add(&a, "distill", "--model", model, "--data", data, "--plan", PLAN, "--out", out,
                     NULL);
        cli_args_addv(&a, cases[i].args);
        expect_fail_clean(a.v, cases[i].needle, NULL, t.dir, "out");
    }
    /* Each required flag missing in turn. */
    const char *no_model[] = {"distill", "--data", data, "--plan", PLAN, "--out", out, NULL};
    const char *no_data[] = {"distill", "--model", model, "--plan", PLAN, "--out", out, NULL};
    const char *no_plan[] = {"distill", "--model", model, "--data", data, "--out", out, NULL};
    const char *no_out[] = {"distill", "--model", model, "--data", data, "--plan", PLAN, NULL};
    const char *nothing[] = {"distill", NULL};
    expect_fail_clean(no_model, "--model", NULL, t.dir, "out");
    expect_fail_clean(no_data, "--data", NULL, t.dir, "out");
    expect_fail_clean(no_plan, "--plan", NULL, t.dir, "out");
    expect_fail_clean(no_out, "--out", NULL, t.dir, "out");
    expect_fail_clean(nothing, "--model", NULL, t.dir, "out");
    /* --out naming the teacher or the data would destroy it: refused while parsing flags. */
    const char *over_model[] = {"distill", "--model", model, "--data", data, "--plan", PLAN, "--out", model, NULL};
    const char *over_data[] = {"distill", "--model", model, "--data", data, "--plan", PLAN, "--out", data, NULL};
    expect_fail_clean(over_model, "--out", "overwrite the --model", t.dir, "out");
    expect_fail_clean(over_data, "--out", "overwrite the --data", t.dir, "out");
    cli_tdir_close(&t);
}

Test(sparse_cli, eval_bad_flags, .timeout = 60) {
    cli_tdir t;
    cli_tdir_open(&t);
    char model[256], heads[256], data[256];
    snprintf(model, sizeof model, "%s", cli_tpath(&t, "m.ckpt"));
    snprintf(heads, sizeof heads, "%s", cli_tpath(&t, "m.heads"));
    snprintf(data, sizeof data, "%s", cli_tpath(&t, "d.txt"));
    static const cli_bad_case cases[] = {
        {{"--bogus"}, "--bogus"},
        {{"--windows"}, "--windows"},
        {{"--windows", "-1"}, "--windows"},
        {{"--windows", "-1"}, "'-1'"},
        {{"--windows", "abc"}, "--windows"},
        {{"--split", "bogus"}, "--split"},
        {{"--split", "bogus"}, "bogus"},
        {{"--split"}, "--split"},
        {{"--batch", "0"}, "--batch"},
        {{"--batch", "-2"}, "--batch"},
        {{"--threads", "0"}, "--threads"},
        {{"--json", "x"}, "'x'"},
        {{"--out", "x"}, "--out"}, /* eval writes nothing */
        {{"stray"}, "stray"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_args a = {0};
        cli_args_add(&a, "eval", "--model", model, "--heads", heads, "--data", data, NULL);
        cli_args_addv(&a, cases[i].args);
        cli_expect_fail(a.v, cases[i].needle, 0);
    }
    const char *no_model[] = {"eval", "--heads", heads, "--data", data, NULL};
    const char *no_heads[] = {"eval", "--model", model, "--data", data, NULL};
    const char *no_data[] = {"eval", "--model", model, "--heads", heads, NULL};
    cli_expect_fail(no_model, "--model", 0);
    cli_expect_fail(no_heads, "--heads", 0);
    cli_expect_fail(no_data, "--data", 0);
    assert_dir_empty(t.dir); /* eval writes nothing */
    cli_tdir_close(&t);
}

Test(sparse_cli, finetune_bad_flags, .timeout = 60) {
    cli_tdir t;
    cli_tdir_open(&t);
    char model[256], heads[256], data[256], out[256], hout[256];
    snprintf(model, sizeof model, "%s", cli_tpath(&t, "m.ckpt"));
    snprintf(heads, sizeof heads, "%s", cli_tpath(&t, "m.heads"));
    snprintf(data, sizeof data, "%s", cli_tpath(&t, "d.txt"));
    snprintf(out, sizeof out, "%s", cli_tpath(&t, "out.ckpt"));
    snprintf(hout, sizeof hout, "%s", cli_tpath(&t, "out.heads"));
    static const cli_bad_case cases[] = {
        {{"--bogus"}, "--bogus"},
        {{"--steps"}, "--steps"},
        {{"--heads-out"}, "--heads-out"},
        {{"--steps", "0"}, "--steps"},
        {{"--steps", "-1"}, "--steps"},
        {{"--batch", "0"}, "--batch"},
        {{"--batch", "x"}, "--batch"},
        {{"--lr", "0"}, "--lr"},
        {{"--lr", "abc"}, "--lr"},
        {{"--lr", "abc"}, "abc"},
        {{"--lr", "inf"}, "--lr"},
        {{"--min-lr", "abc"}, "--min-lr"},
        {{"--min-lr", "-1e-5"}, "--min-lr"},
        {{"--min-lr", "0.01", "--lr", "0.001"}, "--min-lr"},
        {{"--lr", "0.001", "--min-lr", "0.01"}, "--min-lr"},
        {{"--min-lr", "0.001"}, "--min-lr"}, /* above the default --lr 1e-4 */
        {{"--warmup", "-1"}, "--warmup"},
        {{"--seed", "x"}, "--seed"},
        {{"--control", "x"}, "'x'"},
        {{"--threads", "0"}, "--threads"},
        {{"--plan", PLAN}, "--plan"}, /* a distill flag */
        {{"stray"}, "stray"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_args a = {0};
        cli_args_add(&a, "finetune", "--model", model, "--heads", heads, "--data", data, "--out", out,
                     "--heads-out", hout, NULL);
        cli_args_addv(&a, cases[i].args);
        expect_fail_clean(a.v, cases[i].needle, NULL, t.dir, "out");
    }
    const char *no_model[] = {"finetune", "--heads", heads, "--data", data, "--out", out, NULL};
    const char *no_heads[] = {"finetune", "--model", model, "--data", data, "--out", out, NULL};
    const char *no_data[] = {"finetune", "--model", model, "--heads", heads, "--out", out, NULL};
    const char *no_out[] = {"finetune", "--model", model, "--heads", heads, "--data", data,
                            "--heads-out", hout, NULL};
    expect_fail_clean(no_model, "--model", NULL, t.dir, "out");
    expect_fail_clean(no_heads, "--heads", NULL, t.dir, "out");
    expect_fail_clean(no_data, "--data", NULL, t.dir, "out");
    expect_fail_clean(no_out, "--out", NULL, t.dir, "out");
    cli_tdir_close(&t);
}

Test(sparse_cli, help, .timeout = 30) {
    static const char *cmds[] = {"distill", "eval", "finetune"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        const char *argv[] = {cmds[i], "--model", "nonexistent.ckpt", "--help", NULL};
        char *out, *err;
        int rc = cli_run(argv, &out, &err);
        cr_assert_eq(rc, 0, "%s: exit %d, stderr: %s", cli_cmd, rc, err);
        char want[64];
        snprintf(want, sizeof want, "usage: sattn %s", cmds[i]);
        cr_assert(strncmp(out, want, strlen(want)) == 0, "%s: stdout should start with '%s': %s",
                  cli_cmd, want, out);
        cr_assert_str_empty(err, "%s: unexpected stderr: %s", cli_cmd, err);
        free(out);
        free(err);
    }
}

/* ------------------------------------------------------- 2. bad files ---- */

Test(sparse_cli, distill_bad_files, .timeout = 120) {
    fixture f;
    fixture_open(&f, "2", NULL);
    cli_tdir *t = &f.t;
    char out[256];
    snprintf(out, sizeof out, "%s", cli_tpath(t, "out.heads"));
    size_t n = file_size(f.model);

    /* Bad models. */
    char bad[8][256];
    snprintf(bad[0], 256, "%s", cli_tpath(t, "missing.ckpt"));
    snprintf(bad[1], 256, "%s", variant(t, f.data, "text.ckpt", 4000, 0, 0)); /* not a checkpoint */
    snprintf(bad[2], 256, "%s", variant(t, f.model, "trunc.ckpt", n - 4, 0, 0));
    snprintf(bad[3], 256, "%s", variant(t, f.model, "header.ckpt", 256, 0, 0));
    snprintf(bad[4], 256, "%s", variant(t, f.model, "flip.ckpt", n, 0, 1));
    snprintf(bad[5], 256, "%s", variant(t, f.model, "long.ckpt", n, 3, 0));
    snprintf(bad[6], 256, "%s", variant(t, f.model, "empty.ckpt", 0, 0, 0));
    snprintf(bad[7], 256, "%s", cli_tpath(t, "adir.ckpt"));
    cr_assert_eq(mkdir(bad[7], 0755), 0);
    for (int i = 0; i < 8; i++) {
        const char *argv[] = {"distill", "--model", bad[i], "--data", f.data, "--plan", PLAN,
                              "--out", out, "--steps", "2", THREADS, NULL};
        expect_fail_clean(argv, bad[i], NULL, t->dir, "out");
    }

    /* Bad data: missing, empty, a directory, and a train split shorter than one window
     * (30 bytes: 27 train tokens < T+1 = 33). */
    snprintf(bad[0], 256, "%s", cli_tpath(t, "missing.txt"));
    snprintf(bad[1], 256, "%s", variant(t, f.data, "empty.txt", 0, 0, 0));
    snprintf(bad[2], 256, "%s", variant(t, f.data, "short.txt", 30, 0, 0));
    snprintf(bad[3], 256, "%s", cli_tpath(t, "adir.txt"));
    cr_assert_eq(mkdir(bad[3], 0755), 0);
    for (int i = 0; i < 4; i++) {
        const char *argv[] = {"distill", "--model", f.model, "--data", bad[i], "--plan", PLAN,
                              "--out", out, "--steps", "2", THREADS, NULL};
        expect_fail_clean(argv, bad[i], NULL, t->dir, "out");
    }
    /* The train split holds exactly one window (37 bytes: 33 train tokens): that is enough. */
    const char *just = variant(t, f.data, "just.txt", 37, 0, 0);
    const char *ok[] = {"distill", "--model", f.model, "--data", just, "--plan", PLAN, "--out",
                        cli_tpath(t, "ok.heads"), "--steps", "1", "--batch", "2", THREADS, NULL};
    free(cli_expect_ok(ok));

    /* Bad plans: inline ones are named by their text, files by path and line. */
    static const struct {
        const char *plan, *needle, *also;
    } plans[] = {
        {"all:index+sofmax", "all:index+sofmax", "sofmax"},
        {"*:dense", "*:dense", "dense"},
        {"L0:dense; L1:dense", "L0:dense; L1:dense", "dense"},
        {"L2:index+softmax:k=8", "L2:index+softmax:k=8", "layer 2"}, /* the model has 2 layers */
        {"L0H2:index+softmax", "L0H2:index+softmax", "head 2"},      /* ... and 2 heads */
        {"all:block+softmax:k=8", "all:block+softmax:k=8", "'k'"},
        {"all:index+softmax:k=0", "all:index+softmax:k=0", "k"},
        {"all:index+softmax:k=4,k=5", "all:index+softmax:k=4,k=5", "duplicate"},
        {"", "--plan", NULL},
    };
    for (size_t i = 0; i < sizeof plans / sizeof plans[0]; i++) {
        const char *argv[] = {"distill", "--model", f.model, "--data", f.data, "--plan", plans[i].plan,
                              "--out", out, "--steps", "2", THREADS, NULL};
        expect_fail_clean(argv, plans[i].needle, plans[i].also, t->dir, "out");
    }
    char pfile[256], needle[300];
    snprintf(pfile, sizeof pfile, "%s", cli_tpath(t, "bad.plan"));
    const char *two = "# a plan file\nL1:index+sofmax\n*:index+softmax:k=8\n";
    cli_spew(pfile, two, strlen(two));
    snprintf(needle, sizeof needle, "%s:2:", pfile);
    const char *pf[] = {"distill", "--model", f.model, "--data", f.data, "--plan", pfile, "--out", out,
                        "--steps", "2", THREADS, NULL};
    expect_fail_clean(pf, needle, "sofmax", t->dir, "out");
    const char *dense = "# nothing sparse\n*:dense\n";
    cli_spew(pfile, dense, strlen(dense));
    expect_fail_clean(pf, pfile, "dense", t->dir, "out");
    snprintf(pfile, sizeof pfile, "%s", cli_tpath(t, "missing.plan"));
    expect_fail_clean(pf, pfile, NULL, t->dir, "out");

    /* Outputs that cannot be written: a missing directory, an existing directory.
     * Both must fail before distilling (one line: no progress lines). */
    char nodir[256], isdir[256];
    snprintf(nodir, sizeof nodir, "%s", cli_tpath(t, "nodir/out.heads"));
    snprintf(isdir, sizeof isdir, "%s", cli_tpath(t, "xdir"));
    cr_assert_eq(mkdir(isdir, 0755), 0);
    const char *o1[] = {"distill", "--model", f.model, "--data", f.data, "--plan", PLAN, "--out", nodir,
                        "--steps", "2", THREADS, NULL};
    expect_fail_clean(o1, nodir, NULL, t->dir, "nodir");
    const char *o2[] = {"distill", "--model", f.model, "--data", f.data, "--plan", PLAN, "--out", isdir,
                        "--steps", "2", THREADS, NULL};
    expect_fail_clean(o2, isdir, NULL, t->dir, "xdir.");
    cli_tdir_close(t);
}

/* The bad heads files for f: each a path in f's directory. Returns the count. */
static int bad_heads(fixture *f, char bad[][256]) {
    cli_tdir *t = &f->t;
    size_t n = file_size(f->heads);
    int k = 0;
    snprintf(bad[k++], 256, "%s", cli_tpath(t, "missing.heads"));
    snprintf(bad[k++], 256, "%s", variant(t, f->heads, "empty.heads", 0, 0, 0));
    snprintf(bad[k++], 256, "%s", variant(t, f->data, "text.heads", 4000, 0, 0));
    snprintf(bad[k++], 256, "%s", variant(t, f->heads, "header.heads", 256, 0, 0));
    snprintf(bad[k++], 256, "%s", variant(t, f->heads, "half.heads", n / 2, 0, 0));
    snprintf(bad[k++], 256, "%s", variant(t, f->heads, "trunc.heads", n - 4, 0, 0));
    snprintf(bad[k++], 256, "%s", variant(t, f->heads, "long.heads", n, 4, 0));
    snprintf(bad[k++], 256, "%s", variant(t, f->heads, "flip.heads", n, 0, 1));
    snprintf(bad[k++], 256, "%s", f->model); /* a checkpoint is not a heads file */
    snprintf(bad[k], 256, "%s", cli_tpath(t, "adir.heads"));
    cr_assert_eq(mkdir(bad[k++], 0755), 0);
    return k;
}

/* Models of other shapes, for which f->heads was not made; with what their message says. */
typedef struct {
    char path[256];
    const char *what;
} other_model;

static int other_models(fixture *f, other_model *o) {
    static const char *const dim32[] = {"--dim", "32", NULL}, *const layers1[] = {"--layers", "1", NULL},
                             *const heads4[] = {"--heads", "4", NULL}, *const seq16[] = {"--seq", "16", NULL};
    static const struct {
        const char *name, *const *flags, *what;
    } shapes[] = {{"dim32.ckpt", dim32, "channels"},
                  {"layers1.ckpt", layers1, "layers"},
                  {"heads4.ckpt", heads4, "heads"},
                  {"seq16.ckpt", seq16, "max_seq"}};
    int k = (int)(sizeof shapes / sizeof shapes[0]);
    for (int i = 0; i < k; i++) {
        snprintf(o[i].path, sizeof o[i].path, "%s", cli_tpath(&f->t, shapes[i].name));
        o[i].what = shapes[i].what;
        train(f->data, o[i].path, "1", shapes[i].flags);
    }
    return k;
}

Test(sparse_cli, eval_bad_files, .timeout = 120) {
    fixture f;
    fixture_open(&f, "2", "2");
    cli_tdir *t = &f.t;

    char bad[12][256];
    int nb = bad_heads(&f, bad);
    for (int i = 0; i < nb; i++) {
        const char *argv[] = {"eval", "--model", f.model, "--heads", bad[i], "--data", f.data, THREADS, NULL};
        cli_expect_fail(argv, bad[i], 0);
    }
    /* The heads file of another model shape: names the file and what differs. */
    other_model om[4];
    int no = other_models(&f, om);
    for (int i = 0; i < no; i++) {
        const char *argv[] = {"eval", "--model", om[i].path, "--heads", f.heads, "--data", f.data, THREADS, NULL};
        expect_fail_clean(argv, f.heads, om[i].what, NULL, NULL);
    }
    /* Bad models. */
    size_t n = file_size(f.model);
    snprintf(bad[0], 256, "%s", cli_tpath(t, "missing.ckpt"));
    snprintf(bad[1], 256, "%s", variant(t, f.data, "text.ckpt", 4000, 0, 0));
    snprintf(bad[2], 256, "%s", variant(t, f.model, "trunc.ckpt", n - 4, 0, 0));
    snprintf(bad[3], 256, "%s", variant(t, f.model, "flip.ckpt", n, 0, 1));
    snprintf(bad[4], 256, "%s", f.heads); /* a heads file is not a checkpoint */
    for (int i = 0; i < 5; i++) {
        const char *argv[] = {"eval", "--model", bad[i], "--heads", f.heads, "--data", f.data, THREADS, NULL};
        cli_expect_fail(argv, bad[i], 0);
    }
    /* Bad data: missing, empty; 300 bytes: a val split of 30 tokens < T+1 = 33 (its
     * train split of 270 is enough: --split train works); 30 bytes: neither split. */
    snprintf(bad[0], 256, "%s", cli_tpath(t, "missing.txt"));
    snprintf(bad[1], 256, "%s", variant(t, f.data, "empty.txt", 0, 0, 0));
    snprintf(bad[2], 256, "%s", variant(t, f.data, "short300.txt", 300, 0, 0));
    snprintf(bad[3], 256, "%s", variant(t, f.data, "short30.txt", 30, 0, 0));
    for (int i = 0; i < 4; i++) {
        const char *argv[] = {"eval", "--model", f.model, "--heads", f.heads, "--data", bad[i], THREADS, NULL};
        cli_expect_fail(argv, bad[i], 0);
    }
    const char *tr_ok[] = {"eval", "--model", f.model, "--heads", f.heads, "--data", bad[2], "--split",
                           "train", THREADS, NULL};
    free(cli_expect_ok(tr_ok));
    const char *tr_bad[] = {"eval", "--model", f.model, "--heads", f.heads, "--data", bad[3], "--split",
                            "train", THREADS, NULL};
    expect_fail_clean(tr_bad, bad[3], "train", NULL, NULL);
    cli_tdir_close(t);
}

Test(sparse_cli, finetune_bad_files, .timeout = 120) {
    fixture f;
    fixture_open(&f, "2", "2");
    cli_tdir *t = &f.t;
    char out[256], hout[256];
    snprintf(out, sizeof out, "%s", cli_tpath(t, "out.ckpt"));
    snprintf(hout, sizeof hout, "%s", cli_tpath(t, "out.heads"));

    char bad[12][256];
    int nb = bad_heads(&f, bad);
    for (int i = 0; i < nb; i++) {
        const char *argv[] = {"finetune", "--model", f.model, "--heads", bad[i], "--data", f.data,
                              "--out", out, "--heads-out", hout, "--steps", "2", THREADS, NULL};
        expect_fail_clean(argv, bad[i], NULL, t->dir, "out");
    }
    other_model om[4];
    int no = other_models(&f, om);
    for (int i = 0; i < no; i++) {
        const char *argv[] = {"finetune", "--model", om[i].path, "--heads", f.heads, "--data", f.data,
                              "--out", out, "--heads-out", hout, "--steps", "2", THREADS, NULL};
        expect_fail_clean(argv, f.heads, om[i].what, t->dir, "out");
    }
    size_t n = file_size(f.model);
    snprintf(bad[0], 256, "%s", cli_tpath(t, "missing.ckpt"));
    snprintf(bad[1], 256, "%s", variant(t, f.data, "text.ckpt", 4000, 0, 0));
    snprintf(bad[2], 256, "%s", variant(t, f.model, "trunc.ckpt", n / 2, 0, 0));
    for (int i = 0; i < 3; i++) {
        const char *argv[] = {"finetune", "--model", bad[i], "--heads", f.heads, "--data", f.data,
                              "--out", out, "--heads-out", hout, "--steps", "2", THREADS, NULL};
        expect_fail_clean(argv, bad[i], NULL, t->dir, "out");
    }
    /* finetune needs a window in both splits: 300 bytes lacks one in val, 30 in both. */
    snprintf(bad[0], 256, "%s", cli_tpath(t, "missing.txt"));
    snprintf(bad[1], 256, "%s", variant(t, f.data, "short300.txt", 300, 0, 0));
    snprintf(bad[2], 256, "%s", variant(t, f.data, "short30.txt", 30, 0, 0));
    for (int i = 0; i < 3; i++) {
        const char *argv[] = {"finetune", "--model", f.model, "--heads", f.heads, "--data", bad[i],
                              "--out", out, "--heads-out", hout, "--steps", "2", THREADS, NULL};
        expect_fail_clean(argv, bad[i], NULL, t->dir, "out");
    }
    /* Outputs that cannot be written fail before training and leave nothing anywhere. */
    char nodir[256], isdir[256];
    snprintf(nodir, sizeof nodir, "%s", cli_tpath(t, "nodir/x"));
    snprintf(isdir, sizeof isdir, "%s", cli_tpath(t, "xdir"));
    cr_assert_eq(mkdir(isdir, 0755), 0);
    const char *targets[] = {nodir, isdir};
    for (int i = 0; i < 2; i++) {
        const char *a1[] = {"finetune", "--model", f.model, "--heads", f.heads, "--data", f.data,
                            "--out", targets[i], "--heads-out", hout, "--steps", "2", THREADS, NULL};
        expect_fail_clean(a1, targets[i], "--out", t->dir, "out");
        cli_assert_no_output(t->dir, "xdir.");
        const char *a2[] = {"finetune", "--model", f.model, "--heads", f.heads, "--data", f.data,
                            "--out", out, "--heads-out", targets[i], "--steps", "2", THREADS, NULL};
        expect_fail_clean(a2, targets[i], "--heads-out", t->dir, "out");
        cli_assert_no_output(t->dir, "xdir.");
    }
    /* --out and --heads-out the same file: one of the two would be lost. */
    const char *same[] = {"finetune", "--model", f.model, "--heads", f.heads, "--data", f.data,
                          "--out", out, "--heads-out", out, "--steps", "2", THREADS, NULL};
    expect_fail_clean(same, "--heads-out", out, t->dir, "out");
    cli_tdir_close(t);
}

/* ------------------------------------------------- 3. the pipeline, end to end ---- */

/* Keys per query of a fixed-k selector, averaged over the queries of a full window of
 * T: query t sees t+1 keys, at most k. */
static double mean_keys_fixed(int k, int T) {
    double s = 0;
    for (int t = 0; t < T; t++) s += t + 1 < k ? t + 1 : k;
    return s / T;
}

/* The block selector keeps the query's own (partial) block and the best n-1 complete
 * earlier blocks (all of them when there are fewer). */
static double mean_keys_block(int b, int n, int T) {
    double s = 0;
    for (int t = 0; t < T; t++) {
        int full = t / b;
        s += t % b + 1 + (full < n - 1 ? full : n - 1) * b;
    }
    return s / T;
}

/* What eval must report for one sparse head: where it is, the start of its spec, the
 * most keys per query it may select, and (keys >= 0) exactly how many on average. */
typedef struct {
    int layer, head;
    const char *spec;
    int kmax;
    double keys;
} want_head;

/* eval's JSON: exactly the sparse heads of want, in order, every metric finite,
 * fractions in [0, 1], keys per query within the spec's budget (and equal to what a
 * fixed k / the block rule gives); the means and the median are those of the heads;
 * the whole-model numbers are consistent with each other. */
static void check_eval_json(const char *j, const want_head *want, int nh) {
    cli_assert_json_line(j);
    cr_assert_eq(count_str(j, "{\"layer\": "), nh, "%s: expected %d sparse heads: %s", cli_cmd, nh, j);
    double recall = 0, mass = 0, top1 = 0, rel[16];
    cr_assert(nh <= 16);
    for (int i = 0; i < nh; i++) {
        char h[512];
        head_obj(j, i, h, sizeof h);
        cr_assert_eq((int)num(h, "layer"), want[i].layer, "%s: head %d: %s", cli_cmd, i, h);
        cr_assert_eq((int)num(h, "head"), want[i].head, "%s: head %d: %s", cli_cmd, i, h);
        char spec[128];
        snprintf(spec, sizeof spec, "\"spec\": \"%s", want[i].spec);
        cr_assert_not_null(strstr(h, spec), "%s: head %d should be %s: %s", cli_cmd, i, want[i].spec, h);
        static const char *frac[] = {"top1", "hit", "recall", "mass"};
        for (int k = 0; k < 4; k++) {
            double v = num(h, frac[k]);
            cr_assert(v >= 0 && v <= 1, "%s: %s = %g outside [0, 1]: %s", cli_cmd, frac[k], v, h);
        }
        /* The argmax key is selected whenever the selector's best key is the argmax. */
        cr_assert(num(h, "hit") >= num(h, "top1") - 1e-6, "%s: hit < top1: %s", cli_cmd, h);
        double kq = num(h, "keys");
        cr_assert(kq > 0 && kq <= want[i].kmax, "%s: keys %g outside (0, %d]: %s", cli_cmd, kq, want[i].kmax, h);
        if (want[i].keys >= 0) assert_near(kq, want[i].keys, 1e-3, "keys per query", h);
        rel[i] = num(h, "rel_err");
        cr_assert(rel[i] >= 0, "%s: rel_err < 0: %s", cli_cmd, h);
        recall += num(h, "recall") / nh, mass += num(h, "mass") / nh, top1 += num(h, "top1") / nh;
    }
    assert_near(num(j, "mean_recall"), recall, 2e-6, "mean_recall", j);
    assert_near(num(j, "mean_mass"), mass, 2e-6, "mean_mass", j);
    assert_near(num(j, "mean_top1"), top1, 2e-6, "mean_top1", j);
    for (int a = 0; a < nh; a++) /* sort rel for the median */
        for (int b = a + 1; b < nh; b++)
            if (rel[b] < rel[a]) {
                double x = rel[a];
                rel[a] = rel[b], rel[b] = x;
            }
    double median = nh % 2 ? rel[nh / 2] : (rel[nh / 2 - 1] + rel[nh / 2]) / 2;
    assert_near(num(j, "median_rel_err"), median, 2e-6, "median_rel_err", j);
    double dense = num(j, "loss_dense"), hybrid = num(j, "loss_hybrid");
    cr_assert(dense > 0 && hybrid > 0, "%s: %s", cli_cmd, j);
    cr_assert(num(j, "logit_rel_err") >= 0, "%s: %s", cli_cmd, j);
    assert_near(num(j, "loss_ratio"), hybrid / dense, 2e-6, "loss_ratio", j);
    assert_near(num(j, "loss_change"), hybrid - dense, 2e-6, "loss_change", j);
    assert_near(num(j, "bits_per_byte_dense"), dense / log(2.0), 2e-6, "bits_per_byte_dense", j);
    assert_near(num(j, "bits_per_byte_hybrid"), hybrid / log(2.0), 2e-6, "bits_per_byte_hybrid", j);
}

/* PLAN's heads. */
static void check_plan_json(const char *j) {
    const want_head want[] = {{0, 0, "index+softmax:k=8,", 8, mean_keys_fixed(8, T_SEQ)},
                              {0, 1, "index+softmax:k=8,", 8, mean_keys_fixed(8, T_SEQ)},
                              {1, 0, "block+softmax:b=8,n=2\"", 16, mean_keys_block(8, 2, T_SEQ)},
                              {1, 1, "index+mlp:k=4,", 4, mean_keys_fixed(4, T_SEQ)}};
    check_eval_json(j, want, 4);
}

Test(sparse_cli, pipeline, .timeout = 180) {
    fixture f;
    fixture_open(&f, "60", NULL);
    cli_tdir *t = &f.t;
    const size_t n_val = DATA_BYTES - DATA_BYTES * 9 / 10, n_train = DATA_BYTES * 9 / 10;

    /* distill */
    const char *dj_argv[] = {"distill", "--model", f.model, "--data", f.data, "--plan", PLAN, "--out",
                             f.heads, "--steps", "20", THREADS, "--json", NULL};
    char *dj = cli_expect_ok(dj_argv);
    cli_assert_json_line(dj);
    cr_assert_eq((int)num(dj, "sparse_heads"), 4, "%s: %s", cli_cmd, dj);
    cr_assert_eq((int)num(dj, "steps"), 20, "%s: %s", cli_cmd, dj);
    cr_assert(cli_file_exists(f.heads), "%s: no %s", cli_cmd, f.heads);
    free(dj);

    /* eval --json against the plan and against sattn loss on the same split */
    const char *ev[] = {"eval", "--model", f.model, "--heads", f.heads, "--data", f.data, "--json", THREADS, NULL};
    char *ej = cli_expect_ok(ev);
    check_plan_json(ej);
    const char *lv[] = {"loss", "--model", f.model, "--data", f.data, "--split", "val", "--json", THREADS, NULL};
    char *lj = cli_expect_ok(lv);
    assert_near(num(ej, "loss_dense"), num(lj, "loss"), 1e-5, "eval loss_dense vs sattn loss (val)", ej);
    cr_assert_eq((size_t)num(ej, "tokens"), n_val - 1, "%s: %s", cli_cmd, ej);
    cr_assert_eq((size_t)num(lj, "tokens"), n_val - 1, "%s: %s", cli_cmd, lj);
    cr_assert_eq((size_t)num(ej, "windows"), (n_val - 1) / T_SEQ, "%s: %s", cli_cmd, ej);
    free(lj);

    /* --windows 3: the logit error over 3 windows, the losses still over the whole split */
    const char *ev3[] = {"eval", "--model", f.model, "--heads", f.heads, "--data", f.data, "--json",
                         "--windows", "3", THREADS, NULL};
    char *e3 = cli_expect_ok(ev3);
    check_plan_json(e3);
    cr_assert_eq((int)num(e3, "windows"), 3, "%s: %s", cli_cmd, e3);
    assert_near(num(e3, "loss_dense"), num(ej, "loss_dense"), 1e-6, "--windows 3 loss_dense", e3);
    assert_near(num(e3, "loss_hybrid"), num(ej, "loss_hybrid"), 1e-6, "--windows 3 loss_hybrid", e3);
    cr_assert_eq((size_t)num(e3, "tokens"), n_val - 1, "%s: %s", cli_cmd, e3);
    free(e3);
    const char *ev3t[] = {"eval", "--model", f.model, "--heads", f.heads, "--data", f.data, "--windows",
                          "3", THREADS, NULL};
    char *tt = cli_expect_ok(ev3t);
    static const char *rows[] = {"\nL0H0 ", "\nL0H1 ", "\nL1H0 ", "\nL1H1 ", "(3 windows)", "loss dense "};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        cr_assert_not_null(strstr(tt, rows[i]), "%s: no '%s' in:\n%s", cli_cmd, rows[i], tt);
    free(tt);

    /* --split train against sattn loss --split train */
    const char *evt[] = {"eval", "--model", f.model, "--heads", f.heads, "--data", f.data, "--json",
                         "--split", "train", "--windows", "2", THREADS, NULL};
    const char *lt[] = {"loss", "--model", f.model, "--data", f.data, "--split", "train", "--json", THREADS, NULL};
    char *etj = cli_expect_ok(evt), *ltj = cli_expect_ok(lt);
    assert_near(num(etj, "loss_dense"), num(ltj, "loss"), 1e-5, "eval loss_dense vs sattn loss (train)", etj);
    cr_assert_eq((size_t)num(etj, "tokens"), n_train - 1, "%s: %s", cli_cmd, etj);
    free(etj);
    free(ltj);

    /* finetune: both files, each loads with its reader; the numbers agree with eval */
    char X[256], Y[256];
    snprintf(X, sizeof X, "%s", cli_tpath(t, "ft.ckpt"));
    snprintf(Y, sizeof Y, "%s", cli_tpath(t, "ft.heads"));
    const char *ft[] = {"finetune", "--model", f.model, "--heads", f.heads, "--data", f.data, "--steps", "10",
                        "--out", X, "--heads-out", Y, "--json", THREADS, NULL};
    char *fj = cli_expect_ok(ft);
    cli_assert_json_line(fj);
    cr_assert(cli_file_exists(X) && cli_file_exists(Y), "%s: wrote no %s or %s", cli_cmd, X, Y);
    cr_assert_eq((int)num(fj, "steps"), 10, "%s: %s", cli_cmd, fj);
    num(fj, "train_loss");
    assert_near(num(fj, "loss_dense_teacher"), num(ej, "loss_dense"), 1e-5, "finetune teacher loss", fj);
    assert_near(num(fj, "loss_hybrid_before"), num(ej, "loss_hybrid"), 1e-5, "finetune hybrid before", fj);
    assert_near(num(fj, "ratio_before"), num(fj, "loss_hybrid_before") / num(fj, "loss_dense_teacher"), 2e-6,
                "ratio_before", fj);
    assert_near(num(fj, "ratio_after"), num(fj, "loss_hybrid_after") / num(fj, "loss_dense_teacher"), 2e-6,
                "ratio_after", fj);
    cr_assert(!cli_files_equal(f.model, X), "%s: the fine-tuned model equals the teacher", cli_cmd);
    cr_assert(!cli_files_equal(f.heads, Y), "%s: the mlp head did not change", cli_cmd);
    const char *lx[] = {"loss", "--model", X, "--data", f.data, "--json", THREADS, NULL};
    char *lxj = cli_expect_ok(lx);
    const char *exy[] = {"eval", "--model", X, "--heads", Y, "--data", f.data, "--json", THREADS, NULL};
    char *exyj = cli_expect_ok(exy);
    check_plan_json(exyj);
    assert_near(num(exyj, "loss_dense"), num(lxj, "loss"), 1e-5, "eval of X,Y: loss_dense vs sattn loss X", exyj);
    assert_near(num(exyj, "loss_hybrid"), num(fj, "loss_hybrid_after"), 1e-5, "eval of X,Y vs finetune after",
                exyj);
    free(lxj);
    free(exyj);
    free(fj);
    free(ej);

    /* Without --heads-out, a plan with an mlp head fails in one line and writes nothing;
     * a plan without one needs no --heads-out. */
    char X2[256];
    snprintf(X2, sizeof X2, "%s", cli_tpath(t, "out2.ckpt"));
    const char *nohout[] = {"finetune", "--model", f.model, "--heads", f.heads, "--data", f.data, "--steps",
                            "2", "--out", X2, THREADS, NULL};
    expect_fail_clean(nohout, "--heads-out", f.heads, t->dir, "out2");
    char sm[256];
    snprintf(sm, sizeof sm, "%s", cli_tpath(t, "softmax.heads"));
    distill(f.model, f.data, "L0H1:index+softmax:k=8; L1:block+softmax:b=8,n=2", sm, "2", "1");
    const char *ok[] = {"finetune", "--model", f.model, "--heads", sm, "--data", f.data, "--steps", "2",
                        "--out", X2, THREADS, NULL};
    free(cli_expect_ok(ok));
    cr_assert(cli_file_exists(X2), "%s: wrote no %s", cli_cmd, X2);
    cli_tdir_close(t);
}

/* ---------------------------------------------------------- 4. determinism ---- */

Test(sparse_cli, distill_is_deterministic, .timeout = 120) {
    fixture f;
    fixture_open(&f, "20", NULL);
    char a[256], b[256], c[256];
    snprintf(a, sizeof a, "%s", cli_tpath(&f.t, "a.heads"));
    snprintf(b, sizeof b, "%s", cli_tpath(&f.t, "b.heads"));
    snprintf(c, sizeof c, "%s", cli_tpath(&f.t, "c.heads"));
    distill(f.model, f.data, PLAN, a, "20", "5");
    distill(f.model, f.data, PLAN, b, "20", "5");
    distill(f.model, f.data, PLAN, c, "20", "6");
    cr_assert(cli_files_equal(a, b), "two distill runs with --seed 5 --threads 2 differ: %s %s", a, b);
    cr_assert(!cli_files_equal(a, c), "--seed 5 and --seed 6 gave the same heads");
    /* eval of one heads file is deterministic too */
    const char *ev[] = {"eval", "--model", f.model, "--heads", a, "--data", f.data, "--json", THREADS, NULL};
    char *x = cli_expect_ok(ev), *y = cli_expect_ok(ev);
    cr_assert_str_eq(x, y, "two runs of eval differ");
    free(x);
    free(y);
    cli_tdir_close(&f.t);
}

/* ------------------------------------------------ 5. the other head kinds ---- */

/* The pos selector (with mlp and softmax), dynamic k and bounds-scored blocks go
 * through distill -> eval -> finetune too. */
Test(sparse_cli, plan_variants, .timeout = 120) {
    fixture f;
    fixture_open(&f, "20", NULL);
    const char *plan = "L0H0:pos+mlp:k=3,hidden=8; L0H1:index+softmax:k=8,tau=0.9,kmin=2; "
                       "L1H0:block+softmax:b=4,n=3,bounds=1; L1H1:pos+softmax:k=5";
    distill(f.model, f.data, plan, f.heads, "5", "3");
    const want_head want[] = {{0, 0, "pos+mlp:k=3,", 3, mean_keys_fixed(3, T_SEQ)},
                              {0, 1, "index+softmax:k=8,", 8, -1}, /* dynamic k */
                              {1, 0, "block+softmax:b=4,n=3,bounds=1\"", 12, mean_keys_block(4, 3, T_SEQ)},
                              {1, 1, "pos+softmax:k=5,", 5, mean_keys_fixed(5, T_SEQ)}};
    const char *ev[] = {"eval", "--model", f.model, "--heads", f.heads, "--data", f.data, "--json", THREADS, NULL};
    char *j = cli_expect_ok(ev);
    check_eval_json(j, want, 4);
    cr_assert_not_null(strstr(j, "tau=0.9,kmin=2\""), "%s: %s", cli_cmd, j);
    free(j);
    char X[256], Y[256];
    snprintf(X, sizeof X, "%s", cli_tpath(&f.t, "ft.ckpt"));
    snprintf(Y, sizeof Y, "%s", cli_tpath(&f.t, "ft.heads"));
    const char *ft[] = {"finetune", "--model", f.model, "--heads", f.heads, "--data", f.data, "--steps", "3",
                        "--out", X, "--heads-out", Y, "--json", THREADS, NULL};
    char *fj = cli_expect_ok(ft);
    cli_assert_json_line(fj);
    const char *exy[] = {"eval", "--model", X, "--heads", Y, "--data", f.data, "--json", THREADS, NULL};
    j = cli_expect_ok(exy);
    check_eval_json(j, want, 4);
    assert_near(num(j, "loss_hybrid"), num(fj, "loss_hybrid_after"), 1e-5, "eval of X,Y vs finetune after", j);
    free(j);
    free(fj);
    cli_tdir_close(&f.t);
}
