#include "args.h"

#include "sattn/core.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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
