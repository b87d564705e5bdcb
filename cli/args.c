#define _POSIX_C_SOURCE 200809L /* setenv */
#include "args.h"

#include "sattn/core.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Control bytes from a file name, a flag value or a file's contents must not reach
 * the terminal raw (escape sequences, or a newline forging a second error line):
 * they are printed as \xNN, and a backslash as \\. */
void cli_fput_escaped(const char *s, FILE *f) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else if (*p == '\\')
            fputs("\\\\", f);
        else
            fputc(*p, f);
    }
}

int cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *msg = xmalloc(k > 0 ? (size_t)k + 1 : 1);
    va_start(ap, fmt);
    vsnprintf(msg, k > 0 ? (size_t)k + 1 : 1, fmt, ap);
    va_end(ap);
    fprintf(stderr, "sattn %s: ", cmd);
    cli_fput_escaped(msg, stderr);
    fputc('\n', stderr);
    free(msg);
    return 1;
}

int arg_int(const char *cmd, const char *flag, const char *s, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_fail(cmd, "--%s: expected an integer in [%ld, %ld], got '%s'", flag, lo, hi, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int arg_u64(const char *cmd, const char *flag, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-') {
        cli_fail(cmd, "--%s: expected a non-negative integer, got '%s'", flag, s);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

int arg_float(const char *cmd, const char *flag, const char *s, double lo, int lo_open, double hi,
              float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    int bad = errno || end == s || *end || !isfinite(v) || v > hi || v < lo || (lo_open && v == lo);
    if (bad) {
        cli_fail(cmd, "--%s: expected a number %s %g and <= %g, got '%s'", flag, lo_open ? ">" : ">=",
                 lo, hi, s);
        return -1;
    }
    *out = (float)v;
    return 0;
}

int cli_usage_error(const char *cmd, int c, int argc, char **argv) {
    const char *bad = optind - 1 < argc ? argv[optind - 1] : "?";
    if (c == ':') return cli_fail(cmd, "option '%s' needs a value (see sattn %s --help)", bad, cmd);
    if (c == '?') return cli_fail(cmd, "unknown option '%s' (see sattn %s --help)", bad, cmd);
    return cli_fail(cmd, "unexpected argument '%s' (see sattn %s --help)", argv[optind], cmd);
}

int cli_check_out(const char *cmd, const char *flag, const char *path) {
    afile f;
    sattn_err e;
    struct stat sb; /* a directory passes the probe (it only makes a temp file beside it) */
    if (!path) return 0;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return cli_fail(cmd, "%s %s: is a directory, expected a file path", flag, path);
    if (afile_open(&f, path, &e) != 0) return cli_fail(cmd, "%s %s", flag, e.msg);
    afile_abort(&f);
    return 0;
}

/* Same file: both exist and share device and inode; or, for outputs not yet
 * created, the same path string. */
static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    return strcmp(a, b) == 0;
}

static int clash(const char *cmd, const cli_file *o, const cli_file *other, const char *what) {
    return cli_fail(cmd, "%s %s is the same file as %s %s: %s, expected a different path",
                    o->flag, o->path, other->flag, other->path, what);
}

int cli_check_outputs(const char *cmd, const cli_file *outs, const cli_file *ins) {
    for (const cli_file *o = outs; o->flag; o++) {
        if (!o->path) continue;
        for (const cli_file *i = ins; i->flag; i++)
            if (i->path && same_file(o->path, i->path))
                return clash(cmd, o, i, "writing it would destroy an input");
        for (const cli_file *p = outs; p != o; p++)
            if (p->path && same_file(o->path, p->path))
                return clash(cmd, o, p, "two outputs would overwrite each other");
        if (cli_check_out(cmd, o->flag, o->path)) return 1;
    }
    return 0;
}

double cli_max_mem_bytes(void) {
    const char *v = getenv("SATTN_MAX_MEM");
    char *end;
    double g = v ? strtod(v, &end) : 0.0;
    return v && end != v && !*end && isfinite(g) && g > 0 ? g * 1024.0 * 1024.0 * 1024.0 : 0.0;
}

int cli_mem_check(const char *cmd, const char *what, double need, const char *detail) {
    sattn_err e;
    if (mem_check(what, need, detail, cli_max_mem_bytes(), &e)) return cli_fail(cmd, "%s", e.msg);
    return 0;
}

int cli_mem_check_model(const char *cmd, const char *what, const gpt_config *c, int B, int T,
                        int training, double extra) {
    gpt_mem m = gpt_mem_estimate(c, B, T, training);
    const double gib = 1024.0 * 1024.0 * 1024.0;
    char detail[256];
    snprintf(detail, sizeof detail, "parameters %.2f GiB, %s%.2f GiB, activations at B=%d T=%d "
             "%.2f GiB, data %.2f GiB", m.params / gib, training ? "gradients and AdamW " : "optimizer ",
             m.optim / gib, B, T, m.acts / gib, extra / gib);
    return cli_mem_check(cmd, what, m.params + m.optim + m.acts + extra, detail);
}

int cli_take_max_mem(int *argc, char **argv) {
    for (int i = 2; i < *argc; i++) {
        int n = !strcmp(argv[i], "--max-mem") ? 2 : !strncmp(argv[i], "--max-mem=", 10) ? 1 : 0;
        if (!strcmp(argv[i], "--")) break;
        if (!n) continue;
        if (n == 2 && i + 1 >= *argc)
            return cli_fail(argv[1], "option '--max-mem' needs a value (GiB)");
        float g;
        if (arg_float(argv[1], "max-mem", n == 2 ? argv[i + 1] : argv[i] + 10, 0.0, 1, 1e9, &g))
            return 1;
        char buf[64];
        snprintf(buf, sizeof buf, "%.9g", (double)g);
        setenv("SATTN_MAX_MEM", buf, 1);
        memmove(argv + i, argv + i + n, (size_t)(*argc - i - n + 1) * sizeof *argv);
        *argc -= n;
        i--;
    }
    return 0;
}
