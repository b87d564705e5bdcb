/* Shared helpers for the sattn CLI tests: see cli_util.h. No Test() here. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "cli_util.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

#include "sattn/plan.h"

extern char **environ;

char cli_cmd[4096];
size_t cli_out_len;

const char *cli_bin(void) {
    const char *b = getenv("SATTN_BIN");
    return b && *b ? b : "build/sattn";
}

char *cli_slurp(const char *path, size_t *len) {
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

void cli_spew(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

void cli_spew_str(const char *path, const char *text) { cli_spew(path, text, strlen(text)); }

int cli_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int cli_files_equal(const char *a, const char *b) {
    size_t na, nb;
    char *x = cli_slurp(a, &na), *y = cli_slurp(b, &nb);
    int eq = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return eq;
}

char *cli_make_text(size_t n) {
    static const char *words[] = {"the", "king", "and", "queen", "of", "a", "fair", "night",
                                  "shall", "speak", "to", "my", "lord", "what", "is", "love",
                                  "thou", "art", "good", "sir"};
    char *buf = malloc(n + 1);
    cr_assert_not_null(buf);
    uint64_t s = 12345;
    size_t i = 0;
    while (i < n) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        const char *w = words[(s >> 33) % 20];
        for (; *w && i < n; w++) buf[i++] = *w;
        if (i < n) buf[i++] = (s >> 20) % 9 == 0 ? '\n' : ' ';
    }
    buf[n] = 0;
    return buf;
}

void cli_write_text(const char *path, size_t n) {
    char *buf = cli_make_text(n);
    cli_spew(path, buf, n);
    free(buf);
}

static int capture_fd(char *path) {
    strcpy(path, "/tmp/sattn-cli-io-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0, "mkstemp: %s", strerror(errno));
    return fd;
}

int cli_run(const char *argv[], char **out, char **err) {
    const char *full[CLI_MAX_ARGS + 2];
    int n = 0;
    full[n++] = cli_bin();
    for (; argv[n - 1]; n++) {
        cr_assert(n <= CLI_MAX_ARGS, "too many arguments");
        full[n] = argv[n - 1];
    }
    full[n] = NULL;
    return cli_run_prog(full, out, err);
}

int cli_run_prog(const char *full[], char **out, char **err) {
    size_t cl = (size_t)snprintf(cli_cmd, sizeof cli_cmd, "%s", full[0]);
    for (int i = 1; full[i] && cl < sizeof cli_cmd; i++)
        cl += (size_t)snprintf(cli_cmd + cl, sizeof cli_cmd - cl, " '%s'", full[i]);
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
    int rc = posix_spawnp(&pid, full[0], &fa, NULL, (char *const *)full, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(rc, 0, "cannot run %s: %s (build it with make build/sattn, or set SATTN_BIN)",
                 full[0], strerror(rc));
    int status;
    while (waitpid(pid, &status, 0) < 0) cr_assert_eq(errno, EINTR, "waitpid: %s", strerror(errno));
    close(ofd);
    close(efd);
    char *o = cli_slurp(opath, &cli_out_len), *e = cli_slurp(epath, NULL);
    unlink(opath);
    unlink(epath);
    if (out) *out = o;
    else free(o);
    if (err) *err = e;
    else free(e);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void cli_args_add(cli_args *a, ...) {
    va_list ap;
    va_start(ap, a);
    for (const char *s; (s = va_arg(ap, const char *));) {
        cr_assert(a->n < CLI_MAX_ARGS, "too many arguments");
        a->v[a->n++] = s;
    }
    va_end(ap);
    a->v[a->n] = NULL;
}

void cli_args_addv(cli_args *a, const char *const *extra) {
    for (; *extra; extra++) {
        cr_assert(a->n < CLI_MAX_ARGS, "too many arguments");
        a->v[a->n++] = *extra;
    }
    a->v[a->n] = NULL;
}

int cli_count_char(const char *s, char c) {
    int n = 0;
    for (; *s; s++) n += *s == c;
    return n;
}

void cli_check_fail_line(int rc, const char *out, const char *err, const char *prefix,
                         const char *needle, int stdout_ok) {
    cr_assert(rc > 0 && rc < 128, "%s: expected a non-zero exit without a crash, got %d\nstderr: %s",
              cli_cmd, rc, err);
    if (!stdout_ok) cr_assert_str_empty(out, "%s: expected no stdout, got: %s", cli_cmd, out);
    size_t n = strlen(err);
    cr_assert(n > 0 && err[n - 1] == '\n' && cli_count_char(err, '\n') == 1,
              "%s: expected exactly one line on stderr, got:\n%s", cli_cmd, err);
    cr_assert(strncmp(err, prefix, strlen(prefix)) == 0, "%s: stderr should start with '%s': %s",
              cli_cmd, prefix, err);
    cr_assert_not_null(strstr(err, needle), "%s: stderr should name '%s': %s", cli_cmd, needle, err);
}

char *cli_expect_fail_msg(const char *argv[], const char *needle, int stdout_ok) {
    char *out, *err;
    int rc = cli_run(argv, &out, &err);
    cli_check_fail_line(rc, out, err, "sattn ", needle, stdout_ok);
    free(out);
    return err;
}

void cli_expect_fail(const char *argv[], const char *needle, int stdout_ok) {
    free(cli_expect_fail_msg(argv, needle, stdout_ok));
}

char *cli_expect_ok(const char *argv[]) {
    char *out, *err;
    int rc = cli_run(argv, &out, &err);
    cr_assert_eq(rc, 0, "%s: exit %d\nstderr: %s", cli_cmd, rc, err);
    free(err);
    return out;
}

void cli_tdir_open(cli_tdir *t) {
    memset(t, 0, sizeof *t);
    strcpy(t->dir, "/tmp/sattn-cli-XXXXXX");
    cr_assert_not_null(mkdtemp(t->dir), "mkdtemp: %s", strerror(errno));
}

const char *cli_tpath(cli_tdir *t, const char *name) {
    char *b = t->buf[t->next++ % 8];
    size_t dl = strlen(t->dir), nl = strlen(name);
    cr_assert(dl + 1 + nl < sizeof t->buf[0], "path too long: %s", name);
    memcpy(b, t->dir, dl);
    b[dl] = '/';
    memcpy(b + dl + 1, name, nl + 1);
    return b;
}

void cli_rm_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            for (struct dirent *de; (de = readdir(d));) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
                char sub[512];
                snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
                cli_rm_tree(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

void cli_tdir_close(cli_tdir *t) { cli_rm_tree(t->dir); }

int cli_dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot open %s: %s", dir, strerror(errno));
    int n = 0;
    for (struct dirent *de; (de = readdir(d));)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return n;
}

void cli_assert_no_output(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    for (struct dirent *de; (de = readdir(d));)
        cr_assert(strncmp(de->d_name, prefix, strlen(prefix)) != 0,
                  "%s: left '%s' in %s after failing", cli_cmd, de->d_name, dir);
    closedir(d);
}

double cli_json_num(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(json, pat);
    cr_assert_not_null(p, "no field %s in %s", key, json);
    char *end;
    double v = strtod(p + strlen(pat), &end);
    cr_assert(end != p + strlen(pat), "field %s is not a number in %s", key, json);
    return v;
}

void cli_assert_json_line(const char *s) {
    size_t n = strlen(s);
    cr_assert(n > 2 && s[0] == '{' && s[n - 2] == '}' && s[n - 1] == '\n' && cli_count_char(s, '\n') == 1,
              "%s: expected one JSON object on one line, got: %s", cli_cmd, s);
}

head_spec test_spec_of(const char *text) {
    head_spec s;
    sattn_err e;
    char plan[256];
    snprintf(plan, sizeof plan, "all:%s", text);
    cr_assert_eq(plan_parse(plan, NULL, 1, 1, &s, &e), 0, "%s: %s", text, e.msg);
    return s;
}

void tmp_open(tmp_place *t, const char *name) {
    strcpy(t->dir, "/tmp/sattn-test-XXXXXX");
    cr_assert_not_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof t->path, "%s/%s", t->dir, name);
}

void tmp_close(tmp_place *t) {
    remove(t->path);
    cr_assert_eq(rmdir(t->dir), 0, "leftover files in %s", t->dir);
}
