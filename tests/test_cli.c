/* End-to-end tests of the sattn binary: every bad flag, value or file is a non-zero
 * exit with exactly one line on stderr naming the culprit (and, for train, nothing
 * written at --out); --help works everywhere; train -> loss -> sample learns real
 * text; --resume continues exactly; llm.c checkpoints load; loss is deterministic.
 *
 * The binary is $SATTN_BIN (default build/sattn); tests run from the repo root.
 * Children get OMP_WAIT_POLICY=passive (unless set): with spinning OpenMP waits a
 * 2-thread run on a busy 2-core machine is ~30x slower; results are unaffected. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_ARGS 64
#define SHAKESPEARE "../shared/data/tinyshakespeare.txt"

/* ---------------------------------------------------------------- helpers ---- */

static const char *sattn_bin(void) {
    const char *b = getenv("SATTN_BIN");
    return b && *b ? b : "build/sattn";
}

static char g_cmd[4096];    /* the last command run, for assertion messages */
static size_t g_out_len;    /* byte length of the last captured stdout */

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    for (size_t got; (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
    }
    fclose(f);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

static void spew(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

static int capture_fd(char *path) {
    strcpy(path, "/tmp/sattn-cli-io-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0, "mkstemp: %s", strerror(errno));
    return fd;
}

/* Runs `sattn argv...` (argv NULL-terminated, without the binary name) with stdin
 * from /dev/null and stdout/stderr captured into *out / *err (malloc'd, NUL-
 * terminated; the caller frees them). Returns the exit status, or 128 + signal. */
static int run_cli(const char *argv[], char **out, char **err) {
    const char *full[MAX_ARGS + 2];
    int n = 0;
    full[n++] = sattn_bin();
    size_t cl = (size_t)snprintf(g_cmd, sizeof g_cmd, "%s", sattn_bin());
    for (; argv[n - 1]; n++) {
        cr_assert(n <= MAX_ARGS, "too many arguments");
        full[n] = argv[n - 1];
        if (cl < sizeof g_cmd)
            cl += (size_t)snprintf(g_cmd + cl, sizeof g_cmd - cl, " '%s'", argv[n - 1]);
    }
    full[n] = NULL;

    char opath[64], epath[64];
    int ofd = capture_fd(opath), efd = capture_fd(epath);
    setenv("OMP_WAIT_POLICY", "passive", 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, ofd, 1);
    posix_spawn_file_actions_adddup2(&fa, efd, 2);
    posix_spawn_file_actions_addclose(&fa, ofd);
    posix_spawn_file_actions_addclose(&fa, efd);
    pid_t pid;
    int rc = posix_spawn(&pid, full[0], &fa, NULL, (char *const *)full, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(rc, 0, "cannot run %s: %s (build it with make build/sattn, or set SATTN_BIN)",
                 full[0], strerror(rc));
    int status;
    while (waitpid(pid, &status, 0) < 0) cr_assert_eq(errno, EINTR, "waitpid: %s", strerror(errno));
    close(ofd);
    close(efd);
    char *o = slurp(opath, &g_out_len), *e = slurp(epath, NULL);
    unlink(opath);
    unlink(epath);
    if (out) *out = o;
    else free(o);
    if (err) *err = e;
    else free(e);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* A growable argument list. */
typedef struct {
    const char *v[MAX_ARGS + 1];
    int n;
} args_t;

static void args_add(args_t *a, ...) {
    va_list ap;
    va_start(ap, a);
    for (const char *s; (s = va_arg(ap, const char *));) {
        cr_assert(a->n < MAX_ARGS, "too many arguments");
        a->v[a->n++] = s;
    }
    va_end(ap);
    a->v[a->n] = NULL;
}

static void args_addv(args_t *a, const char *const *extra) {
    for (; *extra; extra++) {
        cr_assert(a->n < MAX_ARGS, "too many arguments");
        a->v[a->n++] = *extra;
    }
    a->v[a->n] = NULL;
}

static int count_char(const char *s, char c) {
    int n = 0;
    for (; *s; s++) n += *s == c;
    return n;
}

/* A failure: non-zero exit (not a crash), nothing on stdout unless allowed,
 * stderr exactly one line that starts with prefix and contains needle. */
static void check_fail_line(int rc, const char *out, const char *err, const char *prefix,
                            const char *needle, int stdout_ok) {
    cr_assert(rc > 0 && rc < 128, "%s: expected a non-zero exit without a crash, got %d\nstderr: %s",
              g_cmd, rc, err);
    if (!stdout_ok) cr_assert_str_empty(out, "%s: expected no stdout, got: %s", g_cmd, out);
    size_t n = strlen(err);
    cr_assert(n > 0 && err[n - 1] == '\n' && count_char(err, '\n') == 1,
              "%s: expected exactly one line on stderr, got:\n%s", g_cmd, err);
    cr_assert(strncmp(err, prefix, strlen(prefix)) == 0, "%s: stderr should start with '%s': %s",
              g_cmd, prefix, err);
    cr_assert_not_null(strstr(err, needle), "%s: stderr should name '%s': %s", g_cmd, needle, err);
}

/* Runs argv and expects a one-line "sattn ..." error naming needle. */
static void expect_fail(const char *argv[], const char *needle, int stdout_ok) {
    char *out, *err;
    int rc = run_cli(argv, &out, &err);
    check_fail_line(rc, out, err, "sattn ", needle, stdout_ok);
    free(out);
    free(err);
}

/* Runs argv and expects exit 0; returns stdout (caller frees). */
static char *expect_ok(const char *argv[]) {
    char *out, *err;
    int rc = run_cli(argv, &out, &err);
    cr_assert_eq(rc, 0, "%s: exit %d\nstderr: %s", g_cmd, rc, err);
    free(err);
    return out;
}

/* A per-test directory under /tmp, removed (with everything in it) at the end. */
typedef struct {
    char dir[64];
    char buf[8][256];
    int next;
} tdir;

static void tdir_open(tdir *t) {
    memset(t, 0, sizeof *t);
    strcpy(t->dir, "/tmp/sattn-cli-XXXXXX");
    cr_assert_not_null(mkdtemp(t->dir), "mkdtemp: %s", strerror(errno));
}

/* dir/name in one of 8 rotating buffers (enough for one command line). */
static const char *tpath(tdir *t, const char *name) {
    char *b = t->buf[t->next++ % 8];
    size_t dl = strlen(t->dir), nl = strlen(name);
    cr_assert(dl + 1 + nl < sizeof t->buf[0], "path too long: %s", name);
    memcpy(b, t->dir, dl);
    b[dl] = '/';
    memcpy(b + dl + 1, name, nl + 1);
    return b;
}

static void rm_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            for (struct dirent *de; (de = readdir(d));) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
                char sub[512];
                snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
                rm_tree(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void tdir_close(tdir *t) { rm_tree(t->dir); }

/* Fails if dir holds any entry whose name starts with prefix (the output, or its
 * "<out>.tmp.<pid>" temp file). */
static void assert_no_output(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    for (struct dirent *de; (de = readdir(d));)
        cr_assert(strncmp(de->d_name, prefix, strlen(prefix)) != 0,
                  "%s: left '%s' in %s after failing", g_cmd, de->d_name, dir);
    closedir(d);
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Deterministic English-like text (no dependency on a corpus file). */
static void write_text(const char *path, size_t n) {
    static const char *words[] = {"the", "king", "and", "queen", "of", "a", "fair", "night",
                                  "shall", "speak", "to", "my", "lord", "what", "is", "love",
                                  "thou", "art", "good", "sir"};
    char *buf = malloc(n + 16);
    cr_assert_not_null(buf);
    uint64_t s = 12345;
    size_t i = 0;
    while (i < n) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        const char *w = words[(s >> 33) % 20];
        for (; *w && i < n; w++) buf[i++] = *w;
        if (i < n) buf[i++] = (s >> 20) % 9 == 0 ? '\n' : ' ';
    }
    spew(path, buf, n);
    free(buf);
}

/* The shape of every tiny model in these tests. */
#define TINY "--layers", "1", "--heads", "2", "--dim", "16", "--seq", "16", "--batch", "4", \
             "--threads", "2"

/* Trains a tiny model on data for `steps` steps into out (extra: more flags or NULL). */
static void train_tiny(const char *data, const char *out, const char *steps,
                       const char *const *extra) {
    args_t a = {0};
    args_add(&a, "train", "--data", data, "--out", out, TINY, "--steps", steps, "--seed", "7",
             "--lr", "3e-3", "--warmup", "2", NULL);
    if (extra) args_addv(&a, extra);
    free(expect_ok(a.v));
    cr_assert(file_exists(out), "%s: wrote no %s", g_cmd, out);
}

/* The number after "key": in a one-line JSON object. */
static double json_num(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(json, pat);
    cr_assert_not_null(p, "no field %s in %s", key, json);
    char *end;
    double v = strtod(p + strlen(pat), &end);
    cr_assert(end != p + strlen(pat), "field %s is not a number in %s", key, json);
    return v;
}

static void assert_json_line(const char *s) {
    size_t n = strlen(s);
    cr_assert(n > 2 && s[0] == '{' && s[n - 2] == '}' && s[n - 1] == '\n' && count_char(s, '\n') == 1,
              "%s: expected one JSON object on one line, got: %s", g_cmd, s);
}

static int files_equal(const char *a, const char *b) {
    size_t na, nb;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    int eq = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return eq;
}

/* ------------------------------------------------------- 1. bad flags ---- */

typedef struct {
    const char *args[8]; /* appended after the valid base flags; NULL-terminated */
    const char *needle;  /* the stderr line must contain this */
} bad_case;

Test(cli, train_bad_flags, .timeout = 60) {
    tdir t;
    tdir_open(&t);
    char data[256];
    snprintf(data, sizeof data, "%s", tpath(&t, "data.txt"));
    write_text(data, 4000);
    static const bad_case cases[] = {
        {{"--bogus"}, "--bogus"},
        {{"--lr"}, "--lr"},
        {{"--layers"}, "--layers"},
        {{"--layers", "0"}, "--layers"},
        {{"--heads", "0"}, "--heads"},
        {{"--dim", "-4"}, "--dim"},
        {{"--dim", "0"}, "--dim"},
        {{"--batch", "0"}, "--batch"},
        {{"--batch", "-1"}, "--batch"},
        {{"--seq", "0"}, "--seq"},
        {{"--steps", "0"}, "--steps"},
        {{"--steps", "-3"}, "--steps"},
        {{"--steps", "12x"}, "--steps"},
        {{"--warmup", "-1"}, "--warmup"},
        {{"--threads", "0"}, "--threads"},
        {{"--eval-every", "abc"}, "--eval-every"},
        {{"--eval-tokens", "0"}, "--eval-tokens"},
        {{"--lr", "abc"}, "abc"},
        {{"--lr", "abc"}, "--lr"},
        {{"--lr", "0"}, "--lr"},
        {{"--lr", "-1e-3"}, "--lr"},
        {{"--lr", "nan"}, "--lr"},
        {{"--wd", "-0.1"}, "--wd"},
        {{"--beta2", "1"}, "--beta2"},
        {{"--clip", "x"}, "--clip"},
        {{"--seed", "-1"}, "--seed"},
        {{"--seed", "abc"}, "--seed"},
        {{"--dim", "10", "--heads", "3"}, "heads"},
        {{"--min-lr", "0.01", "--lr", "0.001"}, "--min-lr"},
        {{"--format", "bogus"}, "bogus"},
        {{"--format"}, "--format"},
        {{"stray"}, "stray"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        args_t a = {0};
        args_add(&a, "train", "--data", data, "--out", tpath(&t, "out.ckpt"), TINY, "--steps", "2",
                 NULL);
        args_addv(&a, cases[i].args);
        expect_fail(a.v, cases[i].needle, 0);
        assert_no_output(t.dir, "out");
    }
    /* required flags */
    const char *no_data[] = {"train", "--out", tpath(&t, "out.ckpt"), TINY, NULL};
    expect_fail(no_data, "--data", 0);
    const char *no_out[] = {"train", "--data", data, TINY, NULL};
    expect_fail(no_out, "--out", 0);
    assert_no_output(t.dir, "out");
    tdir_close(&t);
}

Test(cli, loss_bad_flags, .timeout = 30) {
    tdir t;
    tdir_open(&t);
    /* The files do not exist: a flag error must come first and name the flag. */
    const char *model = tpath(&t, "m.ckpt"), *data = tpath(&t, "d.txt");
    static const bad_case cases[] = {
        {{"--bogus"}, "--bogus"},       {{"--split"}, "--split"},
        {{"--split", "bogus"}, "bogus"}, {{"--split", "bogus"}, "--split"},
        {{"--batch", "0"}, "--batch"},   {{"--batch", "-3"}, "--batch"},
        {{"--batch", "abc"}, "--batch"}, {{"--threads", "0"}, "--threads"},
        {{"--json", "x"}, "'x'"},        {{"stray"}, "stray"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        args_t a = {0};
        args_add(&a, "loss", "--model", model, "--data", data, NULL);
        args_addv(&a, cases[i].args);
        expect_fail(a.v, cases[i].needle, 0);
    }
    const char *no_model[] = {"loss", "--data", data, NULL};
    expect_fail(no_model, "--model", 0);
    const char *no_data[] = {"loss", "--model", model, NULL};
    expect_fail(no_data, "--data", 0);
    const char *nothing[] = {"loss", NULL};
    expect_fail(nothing, "--model", 0);
    tdir_close(&t);
}

Test(cli, sample_bad_flags, .timeout = 30) {
    tdir t;
    tdir_open(&t);
    const char *model = tpath(&t, "m.ckpt");
    static const bad_case cases[] = {
        {{"--bogus"}, "--bogus"},
        {{"--tokens"}, "--tokens"},
        {{"--tokens", "0"}, "--tokens"},
        {{"--tokens", "-5"}, "--tokens"},
        {{"--tokens", "abc"}, "--tokens"},
        {{"--temperature", "abc"}, "--temperature"},
        {{"--temperature", "-1"}, "--temperature"},
        {{"--seed", "x"}, "--seed"},
        {{"--threads", "0"}, "--threads"},
        {{"--prompt", ""}, "--prompt"},
        {{"stray"}, "stray"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        args_t a = {0};
        args_add(&a, "sample", "--model", model, NULL);
        args_addv(&a, cases[i].args);
        expect_fail(a.v, cases[i].needle, 0);
    }
    const char *no_model[] = {"sample", "--tokens", "5", NULL};
    expect_fail(no_model, "--model", 0);
    tdir_close(&t);
}

Test(cli, demo_bad_flags, .timeout = 30) {
    tdir t;
    tdir_open(&t);
    char data[256];
    snprintf(data, sizeof data, "%s", tpath(&t, "d.txt"));
    write_text(data, 4000);
    static const bad_case cases[] = {
        {{"--bogus"}, "--bogus"},        {{"--steps"}, "--steps"},
        {{"--steps", "0"}, "--steps"},   {{"--steps", "-3"}, "--steps"},
        {{"--steps", "abc"}, "--steps"}, {{"--threads", "abc"}, "--threads"},
        {{"--threads", "0"}, "--threads"}, {{"--layers", "1"}, "--layers"}, /* not a demo flag */
        {{"stray"}, "stray"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        args_t a = {0};
        args_add(&a, "demo", "--data", data, "--out", tpath(&t, "out.ckpt"), NULL);
        args_addv(&a, cases[i].args);
        expect_fail(a.v, cases[i].needle, 0);
        assert_no_output(t.dir, "out");
    }
    tdir_close(&t);
}

Test(cli, bench_train_bad_flags, .timeout = 30) {
    tdir t;
    tdir_open(&t);
    static const bad_case cases[] = {
        {{"--bogus"}, "--bogus"},
        {{"--runs"}, "--runs"},
        {{"--runs", "0"}, "--runs"},
        {{"--runs", "-2"}, "--runs"},
        {{"--runs", "65"}, "--runs"},
        {{"--steps-per-run", "0"}, "--steps-per-run"},
        {{"--threads", "abc"}, "--threads"},
        {{"--configs", "bogus"}, "bogus"},
        {{"--configs", "B,bogus"}, "bogus"},
        {{"--configs"}, "--configs"},
        {{"stray"}, "stray"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        args_t a = {0};
        args_add(&a, "bench-train", "--json-out", tpath(&t, "out.json"), NULL);
        args_addv(&a, cases[i].args);
        expect_fail(a.v, cases[i].needle, 0);
        assert_no_output(t.dir, "out");
    }
    const char *gemm[] = {"bench-gemm", "--bogus", NULL};
    expect_fail(gemm, "--bogus", 0);
    tdir_close(&t);
}

Test(cli, unknown_command, .timeout = 30) {
    char *out, *err;
    const char *argv[] = {"frobnicate", "--data", "x", NULL};
    int rc = run_cli(argv, &out, &err);
    /* The dispatcher has no subcommand to name, so its prefix is "sattn: ". */
    check_fail_line(rc, out, err, "sattn", "frobnicate", 0);
    cr_assert(err[5] == ' ' || err[5] == ':', "%s: stderr should start with 'sattn ': %s", g_cmd, err);
    free(out);
    free(err);
    /* No command at all: usage on stderr, non-zero. */
    const char *none[] = {NULL};
    rc = run_cli(none, &out, &err);
    cr_assert_neq(rc, 0, "%s: expected a non-zero exit", g_cmd);
    cr_assert_not_null(strstr(err, "usage: sattn"), "%s: expected usage on stderr: %s", g_cmd, err);
    free(out);
    free(err);
}

/* ------------------------------------------------------- 2. bad files ---- */

Test(cli, train_bad_data, .timeout = 60) {
    tdir t;
    tdir_open(&t);
    const char *empty = "empty.txt", *shortf = "short.txt", *tight = "tight.txt";
    spew(tpath(&t, empty), "", 0);
    write_text(tpath(&t, shortf), 100); /* val split 10 tokens < T+1 = 17 */
    write_text(tpath(&t, tight), 160);  /* val split exactly T = 16 tokens: one short */
    mkdir(tpath(&t, "adir"), 0755);
    const char *bad[] = {"missing.txt", empty, shortf, tight, "adir"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char data[256];
        snprintf(data, sizeof data, "%s", tpath(&t, bad[i]));
        const char *argv[] = {"train", "--data", data, "--out", tpath(&t, "out.ckpt"), TINY,
                              "--steps", "2", NULL};
        expect_fail(argv, data, 0);
        assert_no_output(t.dir, "out");
    }
    /* One token more in the val split (170 bytes: val = 17 = T+1) is enough. */
    write_text(tpath(&t, "ok.txt"), 170);
    train_tiny(tpath(&t, "ok.txt"), tpath(&t, "ok.ckpt"), "1", NULL);
    tdir_close(&t);
}

Test(cli, train_bad_out, .timeout = 60) {
    tdir t;
    tdir_open(&t);
    char data[256];
    snprintf(data, sizeof data, "%s", tpath(&t, "d.txt"));
    write_text(data, 4000);
    /* A directory that does not exist: fails before training, names the path. */
    char out[256];
    snprintf(out, sizeof out, "%s", tpath(&t, "nodir/out.ckpt"));
    const char *argv[] = {"train", "--data", data, "--out", out, TINY, "--steps", "2", NULL};
    expect_fail(argv, out, 0);
    cr_assert(!file_exists(tpath(&t, "nodir")));

    /* --out is an existing directory: must fail, leave no temp file, name the path.
     * (Where it fails -- before or after training -- see train_out_is_dir_fails_early.) */
    char odir[256];
    snprintf(odir, sizeof odir, "%s", tpath(&t, "outdir"));
    cr_assert_eq(mkdir(odir, 0755), 0);
    const char *argv2[] = {"train", "--data", data, "--out", odir, TINY, "--steps", "2", NULL};
    char *o, *e;
    int rc = run_cli(argv2, &o, &e);
    cr_assert(rc > 0 && rc < 128, "%s: expected failure, got %d", g_cmd, rc);
    size_t n = strlen(e);
    cr_assert(n > 0 && e[n - 1] == '\n');
    const char *last = e + n - 1;
    while (last > e && last[-1] != '\n') last--;
    cr_assert(strncmp(last, "sattn train: ", 13) == 0 && strstr(last, odir),
              "%s: last stderr line should name %s: %s", g_cmd, odir, last);
    assert_no_output(t.dir, "outdir.");
    free(o);
    free(e);
    tdir_close(&t);
}

/* `train --out DIR` with DIR an existing directory fails before any training. */
Test(cli, train_out_is_dir_fails_early, .timeout = 60) {
    tdir t;
    tdir_open(&t);
    char data[256], odir[256];
    snprintf(data, sizeof data, "%s", tpath(&t, "d.txt"));
    write_text(data, 4000);
    snprintf(odir, sizeof odir, "%s", tpath(&t, "outdir"));
    cr_assert_eq(mkdir(odir, 0755), 0);
    const char *argv[] = {"train", "--data", data, "--out", odir, TINY, "--steps", "2", NULL};
    expect_fail(argv, odir, 0);
    tdir_close(&t);
}

Test(cli, train_bad_resume, .timeout = 60) {
    tdir t;
    tdir_open(&t);
    char data[256], good[256];
    snprintf(data, sizeof data, "%s", tpath(&t, "d.txt"));
    snprintf(good, sizeof good, "%s", tpath(&t, "good.ckpt"));
    write_text(data, 4000);
    train_tiny(data, good, "2", NULL);
    size_t n;
    char *bytes = slurp(good, &n);
    spew(tpath(&t, "trunc.ckpt"), bytes, n / 2);
    spew(tpath(&t, "garbage.ckpt"), "this is not a checkpoint at all, no no no", 42);
    spew(tpath(&t, "empty.ckpt"), "", 0);
    free(bytes);
    const char *bad[] = {"missing.ckpt", "trunc.ckpt", "garbage.ckpt", "empty.ckpt"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char r[256];
        snprintf(r, sizeof r, "%s", tpath(&t, bad[i]));
        const char *argv[] = {"train", "--data", data, "--out", tpath(&t, "out.ckpt"), TINY,
                              "--steps", "4", "--resume", r, NULL};
        expect_fail(argv, r, 0);
        assert_no_output(t.dir, "out");
    }
    /* Shape flags that clash with the checkpoint, and a context longer than its own. */
    const char *clash[] = {"train", "--data", data, "--out", tpath(&t, "out.ckpt"), TINY,
                           "--dim", "32", "--steps", "4", "--resume", good, NULL};
    expect_fail(clash, good, 0);
    const char *longer[] = {"train", "--data", data, "--out", tpath(&t, "out.ckpt"), "--seq", "64",
                            "--steps", "4", "--resume", good, NULL};
    expect_fail(longer, good, 0);
    assert_no_output(t.dir, "out");
    tdir_close(&t);
}

/* When --resume does not fit the flags, the message names the checkpoint's real shape. */
Test(cli, train_resume_clash_names_shape, .timeout = 60) {
    tdir t;
    tdir_open(&t);
    char data[256], good[256];
    snprintf(data, sizeof data, "%s", tpath(&t, "d.txt"));
    snprintf(good, sizeof good, "%s", tpath(&t, "good.ckpt"));
    write_text(data, 4000);
    train_tiny(data, good, "2", NULL);
    const char *clash[] = {"train", "--data", data, "--out", tpath(&t, "out.ckpt"), TINY,
                           "--dim", "32", "--steps", "4", "--resume", good, NULL};
    expect_fail(clash, "L1 H2 C16 T16 V256", 0);
    tdir_close(&t);
}

/* Writes an llm.c token file (header magic 20240520, version 1, count; uint16 tokens). */
static void write_tokens(const char *path, const uint16_t *tok, int n, int claimed) {
    int32_t hdr[256] = {20240520, 1, claimed};
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(hdr, sizeof hdr, 1, f), 1);
    cr_assert_eq(fwrite(tok, sizeof *tok, (size_t)n, f), (size_t)n);
    cr_assert_eq(fclose(f), 0);
}

Test(cli, loss_and_sample_bad_files, .timeout = 60) {
    tdir t;
    tdir_open(&t);
    char data[256], good[256], llmc[256];
    snprintf(data, sizeof data, "%s", tpath(&t, "d.txt"));
    snprintf(good, sizeof good, "%s", tpath(&t, "good.ckpt"));
    snprintf(llmc, sizeof llmc, "%s", tpath(&t, "good.bin"));
    write_text(data, 4000);
    train_tiny(data, good, "2", NULL);
    static const char *const fmt_llmc[] = {"--format", "llmc", NULL};
    train_tiny(data, llmc, "2", fmt_llmc);

    size_t n, nl;
    char *bytes = slurp(good, &n), *lbytes = slurp(llmc, &nl);
    spew(tpath(&t, "trunc.ckpt"), bytes, n - 4);
    spew(tpath(&t, "header.ckpt"), bytes, 256); /* the header alone */
    bytes[n - 1] ^= 0x40;                        /* one flipped bit in the payload */
    spew(tpath(&t, "flip.ckpt"), bytes, n);
    spew(tpath(&t, "trunc.bin"), lbytes, nl / 2);
    spew(tpath(&t, "garbage.ckpt"), "GARBAGE! GARBAGE! GARBAGE! GARBAGE!\n", 36);
    spew(tpath(&t, "empty.ckpt"), "", 0);
    mkdir(tpath(&t, "adir"), 0755);
    free(bytes);
    free(lbytes);

    const char *bad_models[] = {"missing.ckpt", "trunc.ckpt", "header.ckpt", "flip.ckpt",
                                "trunc.bin",    "garbage.ckpt", "empty.ckpt", "adir"};
    for (size_t i = 0; i < sizeof bad_models / sizeof bad_models[0]; i++) {
        char m[256];
        snprintf(m, sizeof m, "%s", tpath(&t, bad_models[i]));
        const char *loss[] = {"loss", "--model", m, "--data", data, NULL};
        expect_fail(loss, m, 0);
        const char *sample[] = {"sample", "--model", m, "--tokens", "5", NULL};
        expect_fail(sample, m, 0);
    }

    /* Bad data for a good model. */
    spew(tpath(&t, "empty.txt"), "", 0);
    write_text(tpath(&t, "ten.txt"), 10); /* val split: 1 token, nothing to predict */
    uint16_t tok[400];
    for (int i = 0; i < 400; i++) tok[i] = (uint16_t)(32 + i % 90);
    tok[395] = 300; /* in the val split, outside a byte model's vocabulary */
    write_tokens(tpath(&t, "oov.bin"), tok, 400, 400);
    tok[395] = 33;
    write_tokens(tpath(&t, "count.bin"), tok, 400, 500); /* count disagrees with the size */
    const char *bad_data[] = {"missing.txt", "empty.txt", "ten.txt", "oov.bin", "count.bin", "adir"};
    for (size_t i = 0; i < sizeof bad_data / sizeof bad_data[0]; i++) {
        char d[256];
        snprintf(d, sizeof d, "%s", tpath(&t, bad_data[i]));
        const char *loss[] = {"loss", "--model", good, "--data", d, NULL};
        expect_fail(loss, d, 0);
    }
    tdir_close(&t);
}

/* ------------------------------------------------------------- 3. --help ---- */

Test(cli, help_everywhere, .timeout = 30) {
    static const char *cmds[] = {"train", "loss", "sample", "demo", "bench-train", "bench-gemm"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char *out, *err;
        const char *argv[] = {cmds[i], "--help", NULL};
        int rc = run_cli(argv, &out, &err);
        cr_assert_eq(rc, 0, "%s: exit %d, stderr: %s", g_cmd, rc, err);
        char want[64];
        snprintf(want, sizeof want, "usage: sattn %s", cmds[i]);
        cr_assert(strncmp(out, want, strlen(want)) == 0, "%s: stdout should start with '%s': %s",
                  g_cmd, want, out);
        cr_assert_str_empty(err, "%s: unexpected stderr: %s", g_cmd, err);
        free(out);
        free(err);
    }
    /* --help wins wherever it is, even after other (valid) flags. */
    const char *late[] = {"train", "--layers", "1", "--help", NULL};
    char *out = expect_ok(late);
    cr_assert(strncmp(out, "usage: sattn train", 18) == 0, "%s: %s", g_cmd, out);
    free(out);
    static const char *top[] = {"--help", "-h", "help"};
    for (size_t i = 0; i < 3; i++) {
        const char *argv[] = {top[i], NULL};
        out = expect_ok(argv);
        cr_assert(strncmp(out, "usage: sattn", 12) == 0, "%s: %s", g_cmd, out);
        for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++)
            cr_assert_not_null(strstr(out, cmds[k]), "%s: main help lacks %s", g_cmd, cmds[k]);
        free(out);
    }
}

/* ---------------------------------------------- 4. train -> loss -> sample ---- */

/* Unigram (byte frequency) entropy in nats of b[0..n). */
static double byte_entropy(const unsigned char *b, size_t n) {
    double cnt[256] = {0}, h = 0;
    for (size_t i = 0; i < n; i++) cnt[b[i]]++;
    for (int c = 0; c < 256; c++)
        if (cnt[c] > 0) h -= cnt[c] / (double)n * log(cnt[c] / (double)n);
    return h;
}

Test(cli, train_loss_sample_round_trip, .timeout = 120) {
    if (!file_exists(SHAKESPEARE)) cr_skip_test("%s not found (run from the repo root)", SHAKESPEARE);
    tdir t;
    tdir_open(&t);
    char data[256], model[256];
    snprintf(data, sizeof data, "%s", tpath(&t, "shakespeare60k.txt"));
    snprintf(model, sizeof model, "%s", tpath(&t, "m.ckpt"));
    size_t n;
    char *all = slurp(SHAKESPEARE, &n);
    cr_assert(n >= 60000, "%s is only %zu bytes", SHAKESPEARE, n);
    n = 60000;
    spew(data, all, n);
    size_t n_train = n * 9 / 10, n_val = n - n_train;
    double h = byte_entropy((const unsigned char *)all + n_train, n_val);
    free(all);

    const char *train[] = {"train", "--data", data, "--out", model, "--layers", "2", "--heads",
                           "2", "--dim", "32", "--seq", "32", "--batch", "8", "--steps", "300",
                           "--lr", "3e-3", "--min-lr", "3e-4", "--warmup", "10", "--seed", "1337",
                           "--threads", "2", "--json", NULL};
    char *tj = expect_ok(train);
    assert_json_line(tj);
    double val_loss = json_num(tj, "val_loss");
    cr_assert_eq((size_t)json_num(tj, "val_tokens"), n_val - 1, "%s", tj);
    free(tj);

    const char *loss[] = {"loss", "--model", model, "--data", data, "--json", "--threads", "2", NULL};
    char *lj = expect_ok(loss);
    assert_json_line(lj);
    double l = json_num(lj, "loss"), bpb = json_num(lj, "bits_per_byte");
    size_t tokens = (size_t)json_num(lj, "tokens");
    cr_assert_not_null(strstr(lj, "\"split\": \"val\""), "%s", lj);
    cr_assert_eq(tokens, n_val - 1, "every val byte but the first is predicted: %s", lj);
    cr_assert(fabs(bpb - l / log(2.0)) < 1e-5, "bits_per_byte != loss / ln 2: %s", lj);
    cr_assert(fabs(l - val_loss) < 1e-4, "loss %f != train's final val_loss %f", l, val_loss);
    cr_assert(l < h - 0.4, "val loss %.4f is not well below the unigram entropy %.4f nats", l, h);
    free(lj);

    const char *s1[] = {"sample", "--model", model, "--prompt", "ROMEO:", "--tokens", "50",
                        "--seed", "1", "--threads", "2", NULL};
    char *a = expect_ok(s1);
    size_t na = g_out_len;
    char *b = expect_ok(s1);
    size_t nb = g_out_len;
    cr_assert(strncmp(a, "ROMEO:", 6) == 0, "sample should start with the prompt: %s", a);
    cr_assert_eq(na, 6 + 50 + 1, "prompt + 50 bytes + newline, got %zu bytes: %s", na, a);
    cr_assert(na == nb && memcmp(a, b, na) == 0, "same seed, different samples:\n%s\n%s", a, b);
    const char *s2[] = {"sample", "--model", model, "--prompt", "ROMEO:", "--tokens", "50",
                        "--seed", "2", "--threads", "2", NULL};
    char *c = expect_ok(s2);
    cr_assert(g_out_len != na || memcmp(a, c, na) != 0, "seeds 1 and 2 gave the same sample: %s", a);
    free(a);
    free(b);
    free(c);
    /* Greedy decoding ignores the seed. */
    const char *g1[] = {"sample", "--model", model, "--prompt", "ROMEO:", "--tokens", "40",
                        "--temperature", "0", "--seed", "1", NULL};
    const char *g2[] = {"sample", "--model", model, "--prompt", "ROMEO:", "--tokens", "40",
                        "--temperature", "0", "--seed", "99", NULL};
    a = expect_ok(g1);
    na = g_out_len;
    b = expect_ok(g2);
    cr_assert(na == g_out_len && memcmp(a, b, na) == 0, "greedy samples differ:\n%s\n%s", a, b);
    free(a);
    free(b);
    tdir_close(&t);
}

/* ------------------------------------------------ 5. resume, llm.c format ---- */

/* Warmup then cosine decay over --steps 12: "--stop-at 6, then --resume to 12" must
 * give the same bytes as 12 steps straight. */
#define RESUME_FLAGS TINY, "--seed", "7", "--lr", "3e-3", "--min-lr", "3e-4", "--warmup", "2"

Test(cli, resume_is_exact, .timeout = 60) {
    tdir t;
    tdir_open(&t);
    char data[256], A[256], R[256], B[256];
    snprintf(data, sizeof data, "%s", tpath(&t, "d.txt"));
    snprintf(A, sizeof A, "%s", tpath(&t, "A.ckpt"));
    snprintf(R, sizeof R, "%s", tpath(&t, "R.ckpt"));
    snprintf(B, sizeof B, "%s", tpath(&t, "B.ckpt"));
    write_text(data, 20000);
    const char *a[] = {"train", "--data", data, "--out", A, RESUME_FLAGS, "--steps", "12", NULL};
    free(expect_ok(a));
    const char *r[] = {"train", "--data", data, "--out", R, RESUME_FLAGS, "--steps", "12",
                       "--stop-at", "6", NULL};
    free(expect_ok(r));
    const char *b[] = {"train", "--data", data, "--out", B, RESUME_FLAGS, "--steps", "12",
                       "--resume", R, NULL};
    free(expect_ok(b));
    cr_assert(!files_equal(A, R), "6 and 12 steps gave the same checkpoint");
    cr_assert(files_equal(A, B), "12 steps straight (%s) and 6 + resume to 12 (%s) differ", A, B);
    /* Training is deterministic at all: the same run again gives the same bytes. */
    const char *a2[] = {"train", "--data", data, "--out", R, RESUME_FLAGS, "--steps", "12", NULL};
    free(expect_ok(a2));
    cr_assert(files_equal(A, R), "the same 12-step run twice gave different checkpoints");
    tdir_close(&t);
}

static int32_t read_i32(const char *buf, int i) {
    int32_t v;
    memcpy(&v, buf + 4 * i, 4);
    return v;
}

Test(cli, llmc_format, .timeout = 60) {
    tdir t;
    tdir_open(&t);
    char data[256], nat[256], llmc[256];
    snprintf(data, sizeof data, "%s", tpath(&t, "d.txt"));
    snprintf(nat, sizeof nat, "%s", tpath(&t, "native.ckpt"));
    snprintf(llmc, sizeof llmc, "%s", tpath(&t, "model.bin"));
    write_text(data, 20000);
    const char *tn[] = {"train", "--data", data, "--out", nat, RESUME_FLAGS, "--steps", "8",
                        "--json", NULL};
    char *jn = expect_ok(tn);
    const char *tl[] = {"train", "--data", data, "--out", llmc, RESUME_FLAGS, "--steps", "8",
                        "--json", "--format", "llmc", NULL};
    char *jl = expect_ok(tl);
    size_t params = (size_t)json_num(jl, "params");
    cr_assert(json_num(jn, "val_loss") == json_num(jl, "val_loss"),
              "the same run in two formats trained differently:\n%s%s", jn, jl);
    free(jn);
    free(jl);

    size_t n;
    char *bytes = slurp(llmc, &n);
    cr_assert(n >= 1024, "%s: %zu bytes", llmc, n);
    cr_assert_eq(read_i32(bytes, 0), 20240326, "llm.c magic");
    cr_assert_eq(read_i32(bytes, 1), 3, "llm.c version");
    int32_t want[] = {16, 256, 1, 2, 16, 256}; /* maxT, V, L, NH, C, Vp */
    for (int i = 0; i < 6; i++)
        cr_assert_eq(read_i32(bytes, 2 + i), want[i], "llm.c header[%d] = %d, expected %d", 2 + i,
                     read_i32(bytes, 2 + i), want[i]);
    cr_assert_eq(n, 1024 + 4 * params, "llm.c file size %zu for %zu params", n, params);
    free(bytes);

    const char *ln[] = {"loss", "--model", nat, "--data", data, "--json", NULL};
    const char *ll[] = {"loss", "--model", llmc, "--data", data, "--json", NULL};
    char *on = expect_ok(ln), *ol = expect_ok(ll);
    assert_json_line(ol);
    cr_assert_str_eq(on, ol, "native and llm.c checkpoints of one run score differently");
    free(on);
    free(ol);
    const char *sn[] = {"sample", "--model", nat, "--tokens", "20", "--seed", "3", NULL};
    const char *sl[] = {"sample", "--model", llmc, "--tokens", "20", "--seed", "3", NULL};
    on = expect_ok(sn);
    size_t non = g_out_len;
    ol = expect_ok(sl);
    cr_assert(non == g_out_len && memcmp(on, ol, non) == 0, "samples differ between formats");
    free(on);
    free(ol);
    tdir_close(&t);
}

/* ------------------------------------------------------ 6. loss determinism ---- */

Test(cli, loss_is_deterministic, .timeout = 60) {
    tdir t;
    tdir_open(&t);
    char data[256], model[256];
    snprintf(data, sizeof data, "%s", tpath(&t, "d.txt"));
    snprintf(model, sizeof model, "%s", tpath(&t, "m.ckpt"));
    const size_t n = 20000, n_train = n * 9 / 10;
    write_text(data, n);
    train_tiny(data, model, "10", NULL);

    const char *l[] = {"loss", "--model", model, "--data", data, NULL};
    char *a = expect_ok(l), *b = expect_ok(l);
    cr_assert_str_eq(a, b, "two runs of loss differ");
    cr_assert(strncmp(a, "loss ", 5) == 0 && strstr(a, "\nbits_per_byte ") && strstr(a, "\ntokens "),
              "%s: %s", g_cmd, a);
    free(a);
    free(b);

    const char *tr[] = {"loss", "--model", model, "--data", data, "--split", "train", "--json", NULL};
    a = expect_ok(tr);
    b = expect_ok(tr);
    cr_assert_str_eq(a, b, "two runs of loss --split train differ");
    assert_json_line(a);
    cr_assert_not_null(strstr(a, "\"split\": \"train\""), "%s", a);
    cr_assert_eq((size_t)json_num(a, "tokens"), n_train - 1, "%s", a);
    double ltrain = json_num(a, "loss");
    cr_assert(ltrain > 0 && ltrain < 6.0, "%s", a);
    free(b);
    /* The batch size and thread count only group the windows: same loss. */
    const char *tr3[] = {"loss", "--model", model, "--data", data, "--split", "train", "--json",
                         "--batch", "3", "--threads", "1", NULL};
    b = expect_ok(tr3);
    cr_assert(fabs(json_num(b, "loss") - ltrain) < 2e-6, "batch 3 / 1 thread: %s vs %s", b, a);
    free(a);
    free(b);
    const char *va[] = {"loss", "--model", model, "--data", data, "--split", "val", "--json", NULL};
    a = expect_ok(va);
    cr_assert_eq((size_t)json_num(a, "tokens"), n - n_train - 1, "%s", a);
    free(a);
    tdir_close(&t);
}
