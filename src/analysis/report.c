/* report: report.md and gnuplot PNGs from the cost model, a bench CSV and eval JSONs
 * (sattn/report.h, docs/report.md). */
#define _GNU_SOURCE
#include "sattn/report.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <dirent.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sattn/autoplan.h"
#include "sattn/costmodel.h"
#include "sattn/crossover.h"
#include "sattn/plan.h"

/* ------------------------------------------------------------ string buffer ---- */

/* 1234567 -> "1.23M" */
static const char *si(double x, char *buf) {
    static const char *u[] = {"", "K", "M", "G", "T", "P", "E"};
    int i = 0;
    while (fabs(x) >= 1000 && i < 6) x /= 1000, i++;
    snprintf(buf, 24, i ? "%.3g%s" : "%.3g%s", x, u[i]);
    return buf;
}

/* ------------------------------------------------------------ input text ---- */

/* Limits for hostile input: far above anything sattn bench or eval writes (a full
 * bench grid is a few hundred rows; an eval JSON nests 3 levels), low enough that a
 * crafted file cannot exhaust memory or the stack. */
#define REPORT_MAX_INPUT ((size_t)64 << 20)
#define BENCH_MAX_ROWS (1 << 18)
#define JSON_MAX_DEPTH 32

static int line_at(const char *s, size_t off) {
    int line = 1;
    for (size_t i = 0; i < off; i++) line += s[i] == '\n';
    return line;
}

/* path's whole text, NUL-terminated: a regular file of at most REPORT_MAX_INPUT bytes
 * without a NUL byte (a NUL would silently end the text the parsers see). */
static int read_text(const char *path, char **text, size_t *len, sattn_err *e) {
    size_t size = 0, got = 0;
    FILE *f = file_open_regular(path, &size, e);
    if (!f) return -1;
    if (size > REPORT_MAX_INPUT)
        return fclose(f), err_set(e, "%s: %zu bytes, expected at most %zu MiB (a sattn bench CSV or eval JSON)", path,
                                  size, REPORT_MAX_INPUT >> 20);
    size_t cap = size < REPORT_MAX_INPUT ? size + 1 : REPORT_MAX_INPUT + 1;
    char *buf = xmalloc(cap + 1);
    for (;;) { /* to EOF: st_size is a hint (a file may grow while read) */
        got += fread(buf + got, 1, cap - got, f);
        if (got < cap || ferror(f) || got > REPORT_MAX_INPUT) break;
        cap = cap * 2 < REPORT_MAX_INPUT + 1 ? cap * 2 : REPORT_MAX_INPUT + 1;
        buf = xrealloc(buf, cap + 1);
    }
    int rerr = ferror(f);
    fclose(f);
    const char *nul = got <= REPORT_MAX_INPUT ? memchr(buf, 0, got) : NULL;
    int rc = rerr ? err_set(e, "%s: read failed after %zu bytes", path, got)
             : got > REPORT_MAX_INPUT ? err_set(e, "%s: more than %zu MiB, expected at most %zu MiB (a sattn bench CSV or eval JSON)",
                                                path, REPORT_MAX_INPUT >> 20, REPORT_MAX_INPUT >> 20)
             : nul ? err_set(e, "%s:%d: a NUL byte (offset %zu), expected text", path, line_at(buf, (size_t)(nul - buf)),
                             (size_t)(nul - buf))
                   : 0;
    if (rc) return free(buf), -1;
    buf[got] = 0;
    *text = buf, *len = got;
    return 0;
}

/* ---------------------------------------------------------------- bench CSV ---- */

static const char *const BENCH_COLS[] = {"variant", "phase", "C", "H", "T", "k", "median_s",
                                         "gflops", "speedup_vs_flash", "peak_bytes",
                                         "cpu_pressure_avg10"};
#define BENCH_NCOLS 11

/* The accepted range of each numeric column (2..10); na: a value outside that the
 * bench writes for "not available" (-1), or 0 for none. Anything else is refused
 * before plotting: a negative time or an absurd size makes no plot, only a broken one. */
static const struct {
    double lo, hi, na;
    const char *what;
} BENCH_RANGE[BENCH_NCOLS] = {
    [2] = {1, 1 << 20, 0, "an integer in 1 .. 1048576"},
    [3] = {1, 1 << 20, 0, "an integer in 1 .. 1048576"},
    [4] = {1, 1 << 30, 0, "an integer in 1 .. 2^30"},
    [5] = {0, 1 << 30, 0, "an integer in 0 .. 2^30"},
    [6] = {1e-12, 1e6, 0, "seconds in 1e-12 .. 1e6"},
    [7] = {0, 1e9, 0, "GFLOP/s in 0 .. 1e9"},
    [8] = {0, 1e9, -1, "a ratio in 0 .. 1e9, or -1 (no dense-flash row)"},
    [9] = {0, 1e18, 0, "bytes in 0 .. 1e18"},
    [10] = {0, 100, -1, "a percentage in 0 .. 100, or -1 (not available)"},
};

/* Splits line (modified in place) at commas; returns the field count (at most max). */
static int split_commas(char *line, char **f, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        if (n < max) f[n] = p;
        n++;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = 0;
        p = c + 1;
    }
    return n;
}

static int check_header(char *line, const char *path, sattn_err *e) {
    char *f[BENCH_NCOLS + 1];
    int n = split_commas(line, f, BENCH_NCOLS + 1);
    for (int i = 0; i < BENCH_NCOLS; i++) {
        if (i >= n) return err_set(e, "%s:1: header: missing column '%s'", path, BENCH_COLS[i]);
        if (strcmp(f[i], BENCH_COLS[i]))
            return err_set(e, "%s:1: header: column %d is '%.40s', expected '%s'", path, i + 1, f[i],
                           BENCH_COLS[i]);
    }
    if (n > BENCH_NCOLS)
        return err_set(e, "%s:1: header: %d columns, expected %d (%s ... %s)", path, n, BENCH_NCOLS,
                       BENCH_COLS[0], BENCH_COLS[BENCH_NCOLS - 1]);
    return 0;
}

/* The characters a variant name may hold: those of sattn's variant names and head
 * specs. Names reach gnuplot titles and report.md, so anything that could quote,
 * escape, substitute (`, @, $) or break a line is refused here, at the source. */
static int name_char_ok(char c) {
    return c && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("+-_.:=", c));
}

static int check_variant(const char *v, const char *path, int ln, sattn_err *e) {
    if (!*v || strlen(v) >= REPORT_NAME_LEN)
        return err_set(e, "%s:%d: column 'variant': empty or longer than %d", path, ln, REPORT_NAME_LEN - 1);
    for (size_t i = 0; v[i]; i++)
        if (!name_char_ok(v[i]))
            return err_set(e, "%s:%d: column 'variant': byte %zu is '%c' (0x%02x), expected letters, digits and + - _ . : =",
                           path, ln, i + 1, (unsigned char)v[i] >= 0x20 && (unsigned char)v[i] < 0x7f ? v[i] : '?',
                           (unsigned char)v[i]);
    return 0;
}

/* Column i's text as a number inside BENCH_RANGE[i] (integral for C, H, T, k). */
static int parse_col(const char *s, int i, double *out, const char *path, int ln, sattn_err *e) {
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    int decimal = s[strspn(s, "0123456789+-.eE")] == 0; /* strtod would also take hex */
    if (!decimal || end == s || *end || !isfinite(*out) || (errno && fabs(*out) > 1))
        return err_set(e, "%s:%d: column '%s': '%.40s' is not a finite decimal number, expected %s", path, ln,
                       BENCH_COLS[i], s, BENCH_RANGE[i].what);
    double x = *out;
    int in = (x >= BENCH_RANGE[i].lo && x <= BENCH_RANGE[i].hi) || (BENCH_RANGE[i].na && x == BENCH_RANGE[i].na);
    if (!in || (i <= 5 && x != floor(x)))
        return err_set(e, "%s:%d: column '%s': '%.40s' is out of range, expected %s", path, ln, BENCH_COLS[i], s,
                       BENCH_RANGE[i].what);
    return 0;
}

static int parse_row(char *line, bench_row *r, const char *path, int ln, sattn_err *e) {
    char *f[BENCH_NCOLS + 1];
    int n = split_commas(line, f, BENCH_NCOLS + 1);
    if (n != BENCH_NCOLS)
        return err_set(e, "%s:%d: %d fields, expected %d", path, ln, n, BENCH_NCOLS);
    if (check_variant(f[0], path, ln, e)) return -1;
    snprintf(r->variant, sizeof r->variant, "%s", f[0]);
    static const char *const PH[3] = {"prefill", "decode", "backward"};
    r->decode = -1;
    for (int p = 0; p < 3; p++)
        if (!strcmp(f[1], PH[p])) r->decode = p;
    if (r->decode < 0)
        return err_set(e, "%s:%d: column 'phase': '%.40s', expected 'prefill', 'decode' or 'backward'", path, ln, f[1]);
    double v[BENCH_NCOLS];
    for (int i = 2; i < BENCH_NCOLS; i++)
        if (parse_col(f[i], i, &v[i], path, ln, e)) return -1;
    r->C = (int)v[2], r->H = (int)v[3], r->T = (int)v[4], r->k = (int)v[5];
    r->median_s = v[6], r->gflops = v[7], r->speedup_vs_flash = v[8], r->peak_bytes = v[9];
    r->cpu_pressure = v[10];
    return 0;
}

/* A free row slot in t (grown as rows come: a file of empty lines costs nothing). */
static bench_row *next_row(bench_table *t, int *cap) {
    if (t->n == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        t->rows = xrealloc(t->rows, sizeof(bench_row) * (size_t)*cap);
    }
    return &t->rows[t->n];
}

int bench_csv_read(const char *path, bench_table *t, sattn_err *e) {
    char *text;
    size_t len;
    t->n = 0, t->rows = NULL;
    if (read_text(path, &text, &len, e)) return -1;
    if (!len) return free(text), err_set(e, "%s:1: empty file, expected the header", path);
    int ln = 0, rc = 0, cap = 0;
    for (char *p = text, *nl; p && !rc; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl) *nl = 0;
        size_t l = strlen(p);
        if (l && p[l - 1] == '\r') p[--l] = 0;
        ln++;
        if (ln == 1) rc = check_header(p, path, e);
        else if (l && t->n == BENCH_MAX_ROWS)
            rc = err_set(e, "%s:%d: more than %d rows, expected a sattn bench CSV", path, ln, BENCH_MAX_ROWS);
        else if (l && !(rc = parse_row(p, next_row(t, &cap), path, ln, e))) t->n++;
    }
    if (!rc && t->n == 0) rc = err_set(e, "%s:1: no data rows after the header", path);
    free(text);
    if (rc) bench_table_free(t);
    return rc;
}

void bench_table_free(bench_table *t) {
    free(t->rows);
    t->rows = NULL, t->n = 0;
}

/* ---------------------------------------------------------------- eval JSON ---- */

/* A minimal reader for the JSON `sattn eval --json` prints: objects, arrays, strings,
 * numbers, literals; errors carry the line and the field being read. Hostile input is
 * bounded: nesting deeper than JSON_MAX_DEPTH is an error (the parser recurses), numbers
 * follow JSON's grammar (strtod alone would take nan, inf and hex), and a string longer
 * than its buffer is an error, not a silent cut. */
typedef struct {
    const char *s, *p, *path;
    sattn_err *e;
    int depth;
    char key[64]; /* the member being read, for messages */
} jp;

static int jp_fail(jp *j, const char *what) {
    int line = line_at(j->s, (size_t)(j->p - j->s));
    /* the key came from the file: its control bytes (a decoded "\n") must not split the line */
    char key[sizeof j->key * 4];
    size_t n = 0;
    for (const unsigned char *k = (const unsigned char *)j->key; *k && n + 5 < sizeof key; k++)
        n += (size_t)snprintf(key + n, sizeof key - n, *k < 0x20 || *k == 0x7f ? "\\x%02x" : "%c", *k);
    key[n] = 0;
    if (j->key[0]) return err_set(j->e, "%s:%d: field '%s': %s", j->path, line, key, what);
    return err_set(j->e, "%s:%d: %s", j->path, line, what);
}

static void jp_ws(jp *j) {
    while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r') j->p++;
}

static int jp_lit(jp *j, char c) {
    jp_ws(j);
    if (*j->p != c) {
        char msg[48];
        snprintf(msg, sizeof msg, "expected '%c'", c);
        return jp_fail(j, msg);
    }
    j->p++;
    return 0;
}

/* One level deeper (an object or array opens); jp_leave on its close. */
static int jp_enter(jp *j) {
    if (++j->depth <= JSON_MAX_DEPTH) return 0;
    char msg[96];
    snprintf(msg, sizeof msg, "nested deeper than %d levels, expected `sattn eval --json` output", JSON_MAX_DEPTH);
    return jp_fail(j, msg);
}

static int jp_leave(jp *j) { return j->p++, j->depth--, 0; }

/* A string into buf (n bytes; n == 0: read and discard). */
static int jp_string(jp *j, char *buf, size_t n) {
    if (jp_lit(j, '"')) return -1;
    size_t o = 0;
    while (*j->p && *j->p != '"') {
        char c = *j->p++;
        if ((unsigned char)c < 0x20) return j->p--, jp_fail(j, "a control byte inside a string");
        if (c == '\\') {
            if (!*j->p) break;
            c = *j->p++;
            if (c == 'n') c = '\n';
            else if (c == 't') c = '\t';
            else if (c == 'u') c = '?', j->p += strnlen(j->p, 4);
        }
        if (n && o + 1 >= n) return jp_fail(j, "string too long");
        if (n) buf[o++] = c;
    }
    if (n) buf[o] = 0;
    return *j->p == '"' ? (j->p++, 0) : jp_fail(j, "unterminated string");
}

/* The length of the JSON number at s, 0 if none: -?digits(.digits)?([eE][+-]?digits)? */
static size_t json_number_len(const char *s) {
    const char *p = s;
#define DIGITS(q) ((unsigned)(*(q) - '0') < 10)
    p += *p == '-';
    if (!DIGITS(p)) return 0;
    while (DIGITS(p)) p++;
    if (*p == '.') {
        if (!DIGITS(++p)) return 0;
        while (DIGITS(p)) p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        p += *p == '+' || *p == '-';
        if (!DIGITS(p)) return 0;
        while (DIGITS(p)) p++;
    }
#undef DIGITS
    return (size_t)(p - s);
}

static int jp_number(jp *j, double *x) {
    jp_ws(j);
    size_t l = json_number_len(j->p);
    char msg[96], *end;
    char next = j->p[l]; /* "0x10", "1.5.3", "12abc": not a number, not a number and text */
    if (!l || next == '.' || (next >= '0' && next <= '9') || ((next | 32) >= 'a' && (next | 32) <= 'z')) {
        size_t t = strcspn(j->p, ",}] \t\r\n");
        if (!t && *j->p) t = 1; /* show the delimiter that came instead */
        if (!*j->p) snprintf(msg, sizeof msg, "expected a number, got the end of the file");
        else snprintf(msg, sizeof msg, "expected a number, got '%.*s'", (int)(t < 24 ? t : 24), j->p);
        return jp_fail(j, msg);
    }
    *x = strtod(j->p, &end); /* JSON's grammar is a part of strtod's: both stop at l */
    if (!isfinite(*x) || end != j->p + l) {
        snprintf(msg, sizeof msg, "'%.*s' is not a finite number", (int)(l < 40 ? l : 40), j->p);
        return jp_fail(j, msg);
    }
    j->p += l;
    return 0;
}

/* A number in [lo, hi]: an eval's metrics are fractions, errors and losses, so NaN, a
 * negative error or an absurd loss is a broken file, refused before plotting. */
static int jp_number_in(jp *j, double lo, double hi, double *x) {
    if (jp_number(j, x)) return -1;
    if (*x >= lo && *x <= hi) return 0;
    char msg[128];
    snprintf(msg, sizeof msg, "%g is out of range, expected %g .. %g", *x, lo, hi);
    return jp_fail(j, msg);
}

static int jp_skip(jp *j);

/* Calls field(j, key, u) for each member; field parses the value. */
static int jp_object(jp *j, int (*field)(jp *, const char *, void *), void *u) {
    if (jp_lit(j, '{') || jp_enter(j)) return -1;
    jp_ws(j);
    if (*j->p == '}') return jp_leave(j);
    for (;;) {
        char key[256]; /* longer than any key read: an unknown long key is skipped, not cut */
        j->key[0] = 0;
        if (jp_string(j, key, sizeof key) || jp_lit(j, ':')) return -1;
        snprintf(j->key, sizeof j->key, "%.63s", key);
        if (field(j, key, u)) return -1;
        jp_ws(j);
        if (*j->p == '}') return jp_leave(j);
        if (jp_lit(j, ',')) return -1;
    }
}

static int skip_field(jp *j, const char *key, void *u) { return jp_skip(j); }

static int jp_array(jp *j, int (*item)(jp *, void *), void *u) {
    if (jp_lit(j, '[') || jp_enter(j)) return -1;
    jp_ws(j);
    if (*j->p == ']') return jp_leave(j);
    for (;;) {
        if (item(j, u)) return -1;
        jp_ws(j);
        if (*j->p == ']') return jp_leave(j);
        if (jp_lit(j, ',')) return -1;
    }
}

static int skip_item(jp *j, void *u) { return jp_skip(j); }

static int jp_skip(jp *j) {
    jp_ws(j);
    char c = *j->p;
    if (c == '{') return jp_object(j, skip_field, NULL);
    if (c == '[') return jp_array(j, skip_item, NULL);
    if (c == '"') return jp_string(j, NULL, 0);
    static const char *const lits[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++)
        if (!strncmp(j->p, lits[i], strlen(lits[i]))) return j->p += strlen(lits[i]), 0;
    double x;
    return jp_number(j, &x);
}

typedef struct {
    eval_file *f;
    int cap, seen; /* seen: bit mask of the required fields */
} eval_ctx;

/* The numeric fields read, with their accepted ranges. */
typedef struct {
    const char *name;
    double lo, hi;
} json_range;

static const json_range HEAD_NUMS[] = {{"top1", 0, 1}, {"hit", 0, 1},        {"recall", 0, 1},
                                       {"mass", 0, 1}, {"keys", 0, 1 << 30}, {"rel_err", 0, 1e6}};
static const json_range TOP_NUMS[] = {
    {"loss_dense", 1e-12, 1e6}, {"loss_hybrid", 0, 1e6}, {"loss_ratio", 1e-12, 1e6}, {"logit_rel_err", 0, 1e6}};

static int head_field(jp *j, const char *key, void *u) {
    eval_head *h = u;
    double *dst[] = {&h->top1, &h->hit, &h->recall, &h->mass, &h->keys, &h->rel_err};
    if (!strcmp(key, "spec")) return jp_string(j, h->spec, sizeof h->spec);
    for (int i = 0; i < 6; i++)
        if (!strcmp(key, HEAD_NUMS[i].name)) return jp_number_in(j, HEAD_NUMS[i].lo, HEAD_NUMS[i].hi, dst[i]);
    if (strcmp(key, "layer") && strcmp(key, "head")) return jp_skip(j);
    double x;
    if (jp_number(j, &x)) return -1;
    if (x < 0 || x > 1 << 20 || x != floor(x)) return jp_fail(j, "not a small non-negative integer");
    *(!strcmp(key, "layer") ? &h->layer : &h->head) = (int)x;
    return 0;
}

static int head_item(jp *j, void *u) {
    eval_ctx *c = u;
    if (c->f->n_heads == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->f->heads = xrealloc(c->f->heads, sizeof(eval_head) * (size_t)c->cap);
    }
    eval_head *h = &c->f->heads[c->f->n_heads];
    memset(h, 0, sizeof *h);
    h->layer = h->head = -1;
    if (jp_object(j, head_field, h)) return -1;
    snprintf(j->key, sizeof j->key, "heads");
    if (h->layer < 0 || h->head < 0 || !h->spec[0]) return jp_fail(j, "a head without layer, head or spec");
    c->f->n_heads++;
    return 0;
}

static int top_field(jp *j, const char *key, void *u) {
    eval_ctx *c = u;
    double *dst[] = {&c->f->loss_dense, &c->f->loss_hybrid, &c->f->loss_ratio, &c->f->logit_rel_err};
    if (!strcmp(key, "heads")) return c->seen |= 16, jp_array(j, head_item, c);
    for (int i = 0; i < 4; i++)
        if (!strcmp(key, TOP_NUMS[i].name))
            return c->seen |= 1 << i, jp_number_in(j, TOP_NUMS[i].lo, TOP_NUMS[i].hi, dst[i]);
    return jp_skip(j);
}

static void eval_name(const char *path, char *name, size_t n) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t l = strlen(b);
    if (l > 5 && !strcmp(b + l - 5, ".json")) l -= 5;
    if (l >= n) l = n - 1;
    for (size_t i = 0; i < l; i++) {
        char c = b[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '.';
        name[i] = ok ? c : '_'; /* the name becomes a file name and a gnuplot label */
    }
    name[l] = 0;
    if (!l) snprintf(name, n, "eval"); /* ".json": a label must not be empty */
}

int eval_json_read(const char *path, eval_file *f, sattn_err *e) {
    memset(f, 0, sizeof *f);
    char *text;
    size_t len;
    if (read_text(path, &text, &len, e)) return -1;
    jp j = {.s = text, .p = text, .path = path, .e = e};
    eval_ctx c = {f, 0, 0};
    int rc = jp_object(&j, top_field, &c);
    j.key[0] = 0;
    if (!rc) {
        jp_ws(&j);
        if (*j.p) rc = jp_fail(&j, "trailing text after the JSON object");
    }
    if (!rc && (c.seen & 23) != 23)
        rc = err_set(e, "%s: missing field '%s' (expected `sattn eval --json` output)", path,
                     !(c.seen & 16) ? "heads" : !(c.seen & 1) ? "loss_dense" : !(c.seen & 2) ? "loss_hybrid" : "loss_ratio");
    free(text);
    if (rc) return eval_file_free(f), -1;
    eval_name(path, f->name, sizeof f->name);
    return 0;
}

void eval_file_free(eval_file *f) {
    free(f->heads);
    f->heads = NULL, f->n_heads = 0;
}

static int spec_of(const char *text, head_spec *s, sattn_err *e) {
    char plan[REPORT_NAME_LEN + 8];
    snprintf(plan, sizeof plan, "all:%s", text);
    return plan_parse(plan, NULL, 1, 1, s, e);
}

/* Each listed head inside the model and listed once (a repeat would count twice). */
static int check_heads(const eval_file *f, const report_model *m, sattn_err *e) {
    unsigned char *seen = xcalloc((size_t)m->L * (size_t)m->H, 1);
    int rc = 0;
    for (int i = 0; i < f->n_heads && !rc; i++) {
        const eval_head *h = &f->heads[i];
        if (h->layer >= m->L || h->head >= m->H)
            rc = err_set(e, "%s: head L%dH%d is outside the model (%d layers, %d heads; see --model-shape)", f->name,
                         h->layer, h->head, m->L, m->H);
        else if (seen[(size_t)h->layer * m->H + h->head]++)
            rc = err_set(e, "%s: head L%dH%d is listed twice, expected each sparse head once", f->name, h->layer,
                         h->head);
    }
    free(seen);
    return rc;
}

int eval_relative_flops(const eval_file *f, const report_model *m, double *rel, sattn_err *e) {
    int d = m->C / m->H;
    head_spec dense = head_spec_default();
    double one = head_attention_flops(&dense, d, m->T), total = one * m->L * m->H;
    if (check_heads(f, m, e)) return -1;
    for (int i = 0; i < f->n_heads; i++) {
        head_spec s;
        if (spec_of(f->heads[i].spec, &s, e)) return -1;
        total += head_attention_flops(&s, d, m->T) - one;
    }
    *rel = total / (one * m->L * m->H);
    return 0;
}

/* ------------------------------------------------------------------- gnuplot ---- */

/* p as an absolute path into buf if it names an executable: gnuplot runs in the report
 * folder, so a relative SATTN_GNUPLOT or PATH entry must not change meaning there. */
static int exe_path(const char *p, char *buf, size_t n) {
    char cwd[PATH_MAX];
    if (access(p, X_OK)) return -1;
    if (*p == '/') return snprintf(buf, n, "%s", p) < (int)n ? 0 : -1;
    if (!getcwd(cwd, sizeof cwd)) return -1;
    return snprintf(buf, n, "%s/%s", cwd, p) < (int)n ? 0 : -1;
}

/* The gnuplot program (a path, or a name looked up in PATH) into buf; -1 if none. */
static int find_gnuplot(const char *prog, char *buf, size_t n) {
    if (strchr(prog, '/')) return exe_path(prog, buf, n);
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    while (*path) {
        size_t l = strcspn(path, ":");
        char cand[PATH_MAX];
        snprintf(cand, sizeof cand, "%.*s/%s", (int)l, path, prog);
        if (l && exe_path(cand, buf, n) == 0) return 0;
        path += l + (path[l] == ':');
    }
    return -1;
}

typedef struct {
    const report_config *c;
    char gnuplot[PATH_MAX];
    char dir[PATH_MAX]; /* the temporary folder the whole report is written into */
    sbuf md;            /* report.md */
    int plots;          /* PNGs written */
} report_ctx;

static void out_path(const report_ctx *r, const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", r->dir, name);
}

static int write_file(const report_ctx *r, const char *name, const sbuf *b, sattn_err *e) {
    char path[PATH_MAX + 128];
    out_path(r, name, path, sizeof path);
    afile a;
    if (afile_open(&a, path, e)) return -1;
    if (afile_write(&a, b->s, b->n, e)) return afile_abort(&a), -1;
    return afile_commit(&a, e);
}

/* s as a gnuplot single-quoted string. Inside single quotes gnuplot substitutes nothing
 * (no `backquotes`, no @macros, no backslash escapes) and '' is a quote, so doubling
 * quotes and replacing bytes that could end the line makes any text inert. Every text
 * put into a script goes through here; names from files are also whitelisted when read
 * (check_variant, eval_name), so this is the second of two locks. */
static void gp_str(sbuf *g, const char *s) {
    sb_printf(g, "'");
    for (; *s; s++) {
        if (*s == '\'') sb_printf(g, "''");
        else sb_printf(g, "%c", (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
    }
    sb_printf(g, "'");
}

/* "KEYWORD 'text'\n" */
static void gp_set(sbuf *g, const char *keyword, const char *text) {
    sb_printf(g, "%s ", keyword);
    gp_str(g, text);
    sb_printf(g, "\n");
}

/* The script's first lines: terminal, output NAME.png (relative: gnuplot runs in the
 * report folder, so no path reaches the script), title, axes; logscale "x" or "xy"
 * (SI-prefixed tick labels; yfmt: the y tick format then) or NULL. */
static void plot_begin(sbuf *g, const char *name, const char *title, const char *xlabel, const char *ylabel,
                       const char *logscale, const char *yfmt) {
    char png[REPORT_NAME_LEN + 32];
    snprintf(png, sizeof png, "%s.png", name);
    sb_printf(g, "# sattn report: %s (redraw: gnuplot %s.gp, run inside this folder)\n", png, name);
    sb_printf(g, "set terminal pngcairo size 960,640 noenhanced font 'DejaVu Sans,11'\n");
    gp_set(g, "set output", png);
    gp_set(g, "set title", title);
    gp_set(g, "set xlabel", xlabel);
    gp_set(g, "set ylabel", ylabel);
    sb_printf(g, "set grid\nset key outside right top box\nset datafile missing 'NaN'\n");
    if (logscale) sb_printf(g, "set logscale %s\nset format x '%%.0s%%c'\n", logscale);
    if (yfmt) gp_set(g, "set format y", yfmt);
}

/* Runs gnuplot on script (a name in r->dir) with r->dir as its working directory,
 * stdout and stderr appended to gnuplot.log there; *st gets the wait status. */
static int run_gnuplot(const report_ctx *r, const char *script, int *st) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) { /* only async-signal-safe calls until exec */
        int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int log = chdir(r->dir) ? -1 : open("gnuplot.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (in < 0 || log < 0 || dup2(in, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0) _exit(126);
        char *argv[] = {(char *)r->gnuplot, (char *)script, NULL};
        execv(r->gnuplot, argv);
        _exit(127);
    }
    while (waitpid(pid, st, 0) < 0)
        if (errno != EINTR) return -1;
    return 0;
}

/* The last non-empty line gnuplot logged from byte `from` on (its error), into buf. */
static void log_tail(const report_ctx *r, size_t from, char *buf, size_t n) {
    char path[PATH_MAX + 32];
    uint8_t *d;
    size_t len;
    sattn_err ignored;
    snprintf(buf, n, "no message");
    out_path(r, "gnuplot.log", path, sizeof path);
    if (file_read_all(path, &d, &len, &ignored)) return;
    while (len > from && (d[len - 1] == '\n' || d[len - 1] == '\r' || d[len - 1] == ' ')) len--;
    size_t b = len;
    while (b > from && d[b - 1] != '\n') b--;
    if (len > b) snprintf(buf, n, "%.*s", (int)(len - b), (const char *)d + b);
    free(d);
}

static size_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) ? 0 : (size_t)st.st_size;
}

/* Writes NAME.gp into the report folder and runs gnuplot on it, which writes NAME.png.
 * A failure names the script and gnuplot's last message (its log is removed with the
 * temporary folder). */
static int plot_render(report_ctx *r, const char *name, const sbuf *g, sattn_err *e) {
    char script[REPORT_NAME_LEN + 32], log[PATH_MAX + 32], msg[200];
    snprintf(script, sizeof script, "%s.gp", name);
    if (write_file(r, script, g, e)) return -1;
    out_path(r, "gnuplot.log", log, sizeof log);
    size_t from = file_size(log);
    int st = 0;
    if (run_gnuplot(r, script, &st)) return err_set(e, "%s: cannot run (%s)", r->gnuplot, strerror(errno));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return r->plots++, 0;
    log_tail(r, from, msg, sizeof msg);
    if (WIFEXITED(st))
        return err_set(e, "%s failed on %s (exit status %d): %s", r->gnuplot, script, WEXITSTATUS(st), msg);
    return err_set(e, "%s failed on %s (signal %d): %s", r->gnuplot, script, WTERMSIG(st), msg);
}

/* A gnuplot colour and dash type per variant name, so the same variant looks the same
 * in every plot. */
static void style_of(const char *name, char *buf, size_t n) {
    const char *col = !strncmp(name, "dense-naive", 11) ? "#888888"
                      : !strncmp(name, "dense", 5)      ? "#000000"
                      : !strncmp(name, "pos", 3)        ? "#d95f02"
                      : !strncmp(name, "index", 5)      ? "#1f5fbf"
                      : !strncmp(name, "block", 5)      ? "#1b9e77"
                                                        : "#7570b3";
    int dash = strstr(name, "+mlp") ? 2 : 1;
    snprintf(buf, n, "lw 2 lc rgb '%s' dt %d", col, dash);
}

/* "index+softmax:k=32,r=16,j=4" -> "index+softmax" (legends); the full specs go in the table. */
static void short_name(const char *name, char *buf, size_t n) {
    size_t l = strcspn(name, ":");
    snprintf(buf, n, "%.*s", (int)l, name);
}

/* ------------------------------------------------------------ analytic plots ---- */

#define NT 49 /* T = 16 * 2^(i/4), i = 0..48: 16 .. 65536, four points per octave */

static int grid_T(int i) { return (int)lround(16.0 * pow(2.0, i / 4.0)); }

static double cost_at(const report_config *c, const cm_variant *v, int T, int decode, int what) {
    cm_shape s = cm_shape_make(c->C, c->H, T);
    s.decode = decode;
    cm_cost k;
    cm_cost_of(&s, v, &k);
    return what == 0 ? k.attn_flops : what == 1 ? k.peak_bytes : k.flops;
}

/* Datablock $v<i> with (T, value) for variant i; what: 0 attention FLOPs, 1 peak bytes,
 * 2 total-FLOP speedup over dense-flash. */
static void analytic_block(sbuf *g, const report_config *c, const cm_variant *v, int i, int what) {
    cm_variant flash = cm_dense(CM_FLASH);
    sb_printf(g, "$v%d << EOD\n", i);
    for (int t = 0; t < NT; t++) {
        int T = grid_T(t);
        double y = what == 2 ? cost_at(c, &flash, T, 0, 2) / cost_at(c, v, T, 0, 2) : cost_at(c, v, T, 0, what);
        sb_printf(g, "%d %.6g\n", T, y);
    }
    sb_printf(g, "EOD\n");
}

/* One line per used variant; flash_label (if not NULL) renames dense-flash. */
static void plot_variants(sbuf *g, const cm_variant *v, const int *use, int n, const char *flash_label,
                          const char *extra) {
    sb_printf(g, "plot ");
    int first = 1;
    for (int i = 0; i < n; i++) {
        if (!use[i]) continue;
        char st[96], nm[REPORT_NAME_LEN];
        style_of(v[i].name, st, sizeof st);
        short_name(v[i].name, nm, sizeof nm);
        if (i == 1 && flash_label) snprintf(nm, sizeof nm, "%s", flash_label);
        sb_printf(g, "%s$v%d using 1:2 with lines %s title ", first ? "" : ", \\\n     ", i, st);
        gp_str(g, nm);
        first = 0;
    }
    if (extra) sb_printf(g, ", \\\n     %s", extra);
    sb_printf(g, "\n");
}

static int analytic_flops_plot(report_ctx *r, const cm_variant *v, int n, const int *tstar, sattn_err *e) {
    const report_config *c = r->c;
    sbuf g = {0};
    char title[256];
    snprintf(title, sizeof title, "Attention FLOPs of one layer, prefill (analytic; C=%d, H=%d, d=%d, k=%d)",
             c->C, c->H, c->C / c->H, c->k);
    plot_begin(&g, "flops", title, "sequence length T (tokens)", "attention FLOPs per layer (FLOP)", "xy", "%.0s%c");
    int use[8];
    for (int i = 0; i < n; i++) {
        use[i] = i != 0; /* naive has flash's FLOPs: one dense curve */
        analytic_block(&g, c, &v[i], i, 0);
    }
    sb_printf(&g, "$x << EOD\n");
    int nx = 0;
    for (int i = 2; i < n; i++)
        if (tstar[i] > 0 && tstar[i] <= grid_T(NT - 1))
            sb_printf(&g, "%d %.6g T*=%d\n", tstar[i], cost_at(c, &v[i], tstar[i], 0, 0), tstar[i]), nx++;
    sb_printf(&g, "EOD\n");
    const char *marks = nx ? "$x using 1:2 with points pt 7 ps 1.6 lc rgb 'red' title 'crossover T* (beats dense)', "
                             "$x using 1:2:3 with labels offset char 1.2,-0.8 font ',9' tc rgb 'red' notitle"
                           : NULL;
    plot_variants(&g, v, use, n, "dense (naive = flash)", marks ? marks : "1/0 notitle");
    int rc = plot_render(r, "flops", &g, e);
    sb_free(&g);
    return rc;
}

static int analytic_simple_plot(report_ctx *r, const cm_variant *v, int n, int what, sattn_err *e) {
    const report_config *c = r->c;
    sbuf g = {0};
    char title[256];
    const char *name = what == 1 ? "memory" : "speedup";
    if (what == 1)
        snprintf(title, sizeof title, "Peak activation memory of one layer, prefill (analytic; C=%d, H=%d, k=%d)",
                 c->C, c->H, c->k);
    else
        snprintf(title, sizeof title, "FLOP speedup over dense-flash, projections included (analytic; C=%d, H=%d, k=%d)",
                 c->C, c->H, c->k);
    plot_begin(&g, name, title, "sequence length T (tokens)",
               what == 1 ? "peak activation memory (bytes)" : "dense-flash FLOPs / variant FLOPs (x)", "xy",
               what == 1 ? "%.0s%cB" : "%g");
    int use[8];
    for (int i = 0; i < n; i++) {
        use[i] = what == 1 || i >= 2; /* flash over itself is the break-even line */
        analytic_block(&g, c, &v[i], i, what);
    }
    plot_variants(&g, v, use, n, NULL, what == 2 ? "1 with lines lw 2 lc rgb '#cc0000' dt 2 title 'break-even (1x)'" : NULL);
    int rc = plot_render(r, name, &g, e);
    sb_free(&g);
    return rc;
}

static void analytic_table(report_ctx *r, const cm_variant *v, int n, const int *tstar, const int *tdec) {
    const report_config *c = r->c;
    static const int Ts[] = {256, 1024, 4096, 32768};
    cm_variant flash = cm_dense(CM_FLASH);
    sb_printf(&r->md, "| variant | T* prefill | T* decode |");
    for (int j = 0; j < 4; j++) sb_printf(&r->md, " FLOPs vs flash, T=%d |", Ts[j]);
    sb_printf(&r->md, " attn FLOPs, T=4096 | peak memory, T=16384 |\n|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        char a[24], b[24], t1[16], t2[16];
        snprintf(t1, sizeof t1, tstar[i] > 0 ? "%d" : "-", tstar[i]);
        snprintf(t2, sizeof t2, tdec[i] > 0 ? "%d" : "-", tdec[i]);
        sb_printf(&r->md, "| %s | %s | %s |", v[i].name, i < 2 ? "" : t1, i < 2 ? "" : t2);
        for (int j = 0; j < 4; j++)
            sb_printf(&r->md, " %.3f |", cost_at(c, &v[i], Ts[j], 0, 2) / cost_at(c, &flash, Ts[j], 0, 2));
        sb_printf(&r->md, " %s | %sB |\n", si(cost_at(c, &v[i], 4096, 0, 0), a), si(cost_at(c, &v[i], 16384, 0, 1), b));
    }
    sb_printf(&r->md, "\nT\\*: the shortest T at which the variant needs fewer FLOPs than dense attention "
                      "(`-`: never, up to 2^20). FLOPs vs flash include the projections (8·T·C²).\n\n");
}

static int analytic_section(report_ctx *r, sattn_err *e) {
    const report_config *c = r->c;
    cm_variant v[8];
    int n = cm_standard_variants(c->k, v), tstar[8], tdec[8];
    for (int i = 0; i < n; i++) {
        cm_shape s = cm_shape_make(c->C, c->H, 1);
        tstar[i] = v[i].kind == CM_SPARSE ? cm_crossover(&s, &v[i], 1 << 20) : -1;
        s.decode = 1;
        tdec[i] = v[i].kind == CM_SPARSE ? cm_crossover(&s, &v[i], 1 << 20) : -1;
    }
    sb_printf(&r->md, "## Analytic cost model\n\nOne attention layer, batch 1, float32, C = %d, H = %d "
                      "(head dim %d), k = %d keys per query (block: b·n = k); formulas in "
                      "docs/costmodel.md (`sattn flops`). Solid lines: softmax head function; dashed: mlp.\n\n",
              c->C, c->H, c->C / c->H, c->k);
    if (analytic_flops_plot(r, v, n, tstar, e) || analytic_simple_plot(r, v, n, 1, e) ||
        analytic_simple_plot(r, v, n, 2, e))
        return -1;
    sb_printf(&r->md, "![attention FLOPs vs T](flops.png)\n\nAttention FLOPs (projections excluded) per "
                      "layer against T, log–log; red dots mark each variant's crossover T\\*, where it "
                      "drops below dense.\n\n");
    sb_printf(&r->md, "![peak memory vs T](memory.png)\n\nPeak activation memory of the layer: naive dense "
                      "keeps every head's T×T probabilities; flash and the sparse variants stay linear in T.\n\n");
    sb_printf(&r->md, "![FLOP speedup vs T](speedup.png)\n\nTotal FLOPs of dense-flash divided by the "
                      "variant's (projections included); above the dashed line the variant is cheaper.\n\n");
    analytic_table(r, v, n, tstar, tdec);
    return 0;
}

/* ------------------------------------------------------------- bench section ---- */

static int is_dense_name(const char *v) { return !strncmp(v, "dense", 5); }

/* The analytic variant of a bench variant name at k keys: a bare "index+softmax" is
 * cm_standard_variants' (what `sattn bench` runs), a full spec is itself; -1 if none. */
static int variant_of(const char *name, int k, cm_variant *v) {
    if (is_dense_name(name)) return *v = cm_dense(strstr(name, "naive") ? CM_NAIVE : CM_FLASH), 0;
    if (!strchr(name, ':')) {
        cm_variant std[8];
        int n = cm_standard_variants(k, std);
        for (int i = 2; i < n; i++) {
            char nm[REPORT_NAME_LEN];
            short_name(std[i].name, nm, sizeof nm);
            if (!strcmp(nm, name)) return *v = std[i], 0;
        }
    }
    head_spec s;
    sattn_err e;
    if (spec_of(name, &s, &e) || s.sel == SEL_DENSE) return -1;
    *v = cm_sparse(&s);
    return 0;
}

#define MAX_SHOWN 32 /* variants in one plot: more would be an unreadable legend */

typedef struct {
    const bench_row **rows; /* the rows shown: C == shown C, k == c->k (dense: any k) */
    int n, C, H;
    char names[MAX_SHOWN][REPORT_NAME_LEN];
    int n_names;
} bench_view;

static int row_cmp(const void *a, const void *b) {
    const bench_row *x = *(const bench_row *const *)a, *y = *(const bench_row *const *)b;
    return x->T - y->T;
}

/* The rows shown into bv (which owns bv->rows from then on, even on error). */
static int bench_select(const report_config *c, const bench_table *t, bench_view *bv, sattn_err *e) {
    bv->C = t->rows[0].C;
    for (int i = 0; i < t->n; i++)
        if (t->rows[i].C == c->C) bv->C = c->C;
    bv->rows = xmalloc(sizeof(bench_row *) * (size_t)t->n);
    bv->n = bv->n_names = 0;
    for (int i = 0; i < t->n; i++) {
        const bench_row *w = &t->rows[i];
        if (w->C != bv->C || (!is_dense_name(w->variant) && w->k != c->k)) continue;
        bv->rows[bv->n++] = w;
        bv->H = w->H;
        int j = 0;
        while (j < bv->n_names && strcmp(bv->names[j], w->variant)) j++;
        if (j < bv->n_names) continue;
        if (j == MAX_SHOWN)
            return err_set(e, "%s: more than %d variants at C = %d, expected at most %d", c->bench, MAX_SHOWN, bv->C,
                           MAX_SHOWN);
        snprintf(bv->names[bv->n_names++], REPORT_NAME_LEN, "%s", w->variant);
    }
    qsort(bv->rows, (size_t)bv->n, sizeof *bv->rows, row_cmp);
    return 0;
}

/* Datablock $b<i> of (T, y) for variant i in phase decode; returns its row count. */
static int bench_block(sbuf *g, const bench_view *bv, int i, int decode, int speedup) {
    int m = 0;
    sb_printf(g, "$b%d << EOD\n", i);
    for (int j = 0; j < bv->n; j++) {
        const bench_row *w = bv->rows[j];
        if (w->decode != decode || strcmp(w->variant, bv->names[i]) || (speedup && w->speedup_vs_flash <= 0))
            continue; /* bench writes speedup -1 where dense-flash has no row */
        sb_printf(g, "%d %.6g\n", w->T, speedup ? w->speedup_vs_flash : w->median_s);
        m++;
    }
    sb_printf(g, "EOD\n");
    return m;
}

/* Measured T* of (name, phase) among the shown rows: xover_series_T's from-then-on rule. */
static int measured_crossover(const bench_view *bv, const char *name, int decode) {
    int *T = xmalloc(((size_t)bv->n + 1) * sizeof(int)), n = 0;
    double *sp = xmalloc(((size_t)bv->n + 1) * sizeof(double));
    for (int j = 0; j < bv->n; j++) {
        const bench_row *w = bv->rows[j];
        if (w->decode == decode && !strcmp(w->variant, name)) T[n] = w->T, sp[n++] = w->speedup_vs_flash;
    }
    int t = xover_series_T(T, sp, n);
    free(T), free(sp);
    return t;
}

/* Datablock $x: each sparse variant's measured T* in this phase, at its y (time or
 * speedup) there, so the plots mark where sparse starts winning; returns the count. */
static int crossover_marks(sbuf *g, const bench_view *bv, int decode, int speedup) {
    int m = 0;
    sb_printf(g, "$x << EOD\n");
    for (int i = 0; i < bv->n_names; i++) {
        if (is_dense_name(bv->names[i])) continue;
        int t = measured_crossover(bv, bv->names[i], decode);
        for (int j = 0; j < bv->n && t > 0; j++) {
            const bench_row *w = bv->rows[j];
            if (w->decode != decode || w->T != t || strcmp(w->variant, bv->names[i])) continue;
            sb_printf(g, "%d %.6g T*=%d\n", t, speedup ? w->speedup_vs_flash : w->median_s, t);
            m++;
            break;
        }
    }
    sb_printf(g, "EOD\n");
    return m;
}

static const char *const PHASE_NAME[3] = {"prefill", "decode", "backward"};

static int bench_plot(report_ctx *r, const bench_view *bv, int decode, int speedup, sattn_err *e) {
    static const char *const WHAT[3] = {"prefill of T tokens", "one decode step with a KV cache of T",
                                        "backward of a prefill of T tokens"};
    char name[64], title[256];
    snprintf(name, sizeof name, "bench_%s%s", speedup ? "speedup_" : "", PHASE_NAME[decode]);
    snprintf(title, sizeof title, "%s, %s (measured; C=%d, H=%d, k=%d)",
             speedup ? "Speedup over dense-flash" : "Wall time of one attention layer",
             WHAT[decode], bv->C, bv->H, r->c->k);
    sbuf g = {0};
    plot_begin(&g, name, title, "sequence length T (tokens)",
               speedup ? "dense-flash time / variant time (x)" : "median wall time (s)", "xy", "%g");
    int have[MAX_SHOWN] = {0}, any = 0;
    for (int i = 0; i < bv->n_names; i++)
        have[i] = (!speedup || !is_dense_name(bv->names[i])) && bench_block(&g, bv, i, decode, speedup) > 0;
    int marks = crossover_marks(&g, bv, decode, speedup); /* datablocks precede the plot command */
    sb_printf(&g, "plot ");
    for (int i = 0; i < bv->n_names; i++) {
        if (!have[i]) continue;
        char st[96], nm[REPORT_NAME_LEN];
        style_of(bv->names[i], st, sizeof st);
        short_name(bv->names[i], nm, sizeof nm);
        sb_printf(&g, "%s$b%d using 1:2 with linespoints pt 7 ps 0.8 %s title ", any ? ", \\\n     " : "", i, st);
        gp_str(&g, nm);
        any = 1;
    }
    if (any && marks)
        sb_printf(&g, ", $x using 1:2 with points pt 6 ps 2.5 lw 2 lc rgb 'red' title 'measured crossover T*'");
    sb_printf(&g, "%s%s\n", any ? ", " : "", speedup ? "1 with lines lw 2 lc rgb '#cc0000' dt 2 title 'break-even (1x)'"
                                                      : "1/0 notitle");
    int rc = any ? plot_render(r, name, &g, e) : 1;
    sb_free(&g);
    if (rc == 1) return 0; /* nothing measured in this phase */
    if (rc) return -1;
    static const char *const TIME_OF[3] = {"one layer's prefill", "one decode step", "one layer's backward"};
    if (speedup)
        sb_printf(&r->md, "![%s](%s.png)\n\nMeasured %s speedup over dense-flash per T; above the dashed "
                          "line sparse is faster.\n\n", name, name, PHASE_NAME[decode]);
    else
        sb_printf(&r->md, "![%s](%s.png)\n\nMeasured wall time of %s (median of the runs), log–log; red "
                          "circles mark each sparse variant's measured crossover T*.\n\n", name, name,
                  TIME_OF[decode]);
    return 0;
}

static int crossover_section(report_ctx *r, const bench_view *bv, sattn_err *e) {
    sbuf pts = {0}, series = {0}; /* series: one plot element per point, so each has its key entry */
    int npts = 0;
    double lo = INFINITY, hi = 0; /* one range for both axes, so the diagonal is the diagonal */
    sb_printf(&r->md, "### Crossover: analytic vs measured\n\n| variant | phase | analytic T* | measured T* | "
                      "measured / analytic |\n|---|---|---|---|---|\n");
    for (int i = 0; i < bv->n_names; i++) {
        cm_variant v;
        if (is_dense_name(bv->names[i])) continue;
        int known = variant_of(bv->names[i], r->c->k, &v) == 0;
        for (int dec = 0; dec < 2; dec++) {
            cm_shape s = cm_shape_make(bv->C, bv->H > 0 ? bv->H : r->c->H, 1);
            s.decode = dec;
            int ta = known ? cm_crossover(&s, &v, 1 << 20) : -1, tm = measured_crossover(bv, bv->names[i], dec);
            char a[16] = "-", m[16] = "-", q[16] = "";
            if (ta > 0) snprintf(a, sizeof a, "%d", ta);
            if (!known) snprintf(a, sizeof a, "n/a");
            if (tm > 0) snprintf(m, sizeof m, "%d", tm);
            if (ta > 0 && tm > 0) snprintf(q, sizeof q, "%.2f", (double)tm / ta);
            sb_printf(&r->md, "| %s | %s | %s | %s | %s |\n", bv->names[i], dec ? "decode" : "prefill", a, m, q);
            if (ta > 0 && tm > 0) {
                char nm[REPORT_NAME_LEN];
                short_name(bv->names[i], nm, sizeof nm);
                char st[96], title[REPORT_NAME_LEN + 16];
                style_of(bv->names[i], st, sizeof st);
                snprintf(title, sizeof title, "%s, %s", nm, dec ? "decode" : "prefill");
                sb_printf(&pts, "%d %d\n", ta, tm);
                sb_printf(&series, "$c every ::%d::%d using 1:2 with points pt %d ps 1.8 %s title ", npts, npts,
                          dec ? 5 : 7, st);
                gp_str(&series, title);
                sb_printf(&series, ", ");
                npts++;
                lo = fmin(lo, fmin(ta, tm)), hi = fmax(hi, fmax(ta, tm));
            }
        }
    }
    sb_printf(&r->md, "\nMeasured T\\*: the smallest measured T from which on the variant is faster than "
                      "dense-flash at every measured T (`-`: not within the grid; the grid's spacing "
                      "bounds its precision).\n\n");
    int rc = 0;
    if (pts.n) {
        sbuf g = {0};
        plot_begin(&g, "crossover", "Crossover T*: analytic (FLOPs) vs measured (wall time)",
                   "analytic T* (tokens)", "measured T* (tokens)", "xy", "%g");
        sb_printf(&g, "$c << EOD\n%sEOD\nset xrange [%g:%g]\nset yrange [%g:%g]\nset size ratio -1\n", pts.s,
                  lo / 3, hi * 3, lo / 3, hi * 3);
        sb_printf(&g, "plot %sx with lines lw 2 lc rgb '#888888' dt 3 title 'measured = analytic'\n", series.s);
        rc = plot_render(r, "crossover", &g, e);
        sb_free(&g);
        if (!rc) sb_printf(&r->md, "![crossover](crossover.png)\n\nEach point is one variant and phase (circles "
                                   "prefill, squares decode); on the dotted diagonal the measurement agrees "
                                   "with the FLOP model.\n\n");
    }
    sb_free(&pts);
    sb_free(&series);
    return rc;
}

static void bench_table_md(report_ctx *r, const bench_view *bv) {
    sb_printf(&r->md, "### Measured numbers\n\n| variant | phase | T | median (s) | GFLOP/s | speedup vs flash "
                      "| peak memory | CPU pressure avg10 |\n|---|---|---|---|---|---|---|---|\n");
    for (int dec = 0; dec < 3; dec++)
        for (int i = 0; i < bv->n_names; i++)
            for (int j = 0; j < bv->n; j++) {
                const bench_row *w = bv->rows[j];
                if (w->decode != dec || strcmp(w->variant, bv->names[i])) continue;
                char b[24], sp[24] = "-", pr[24] = "-"; /* bench writes -1 for "not available" */
                if (w->speedup_vs_flash > 0) snprintf(sp, sizeof sp, "%.3f", w->speedup_vs_flash);
                if (w->cpu_pressure >= 0) snprintf(pr, sizeof pr, "%.2f", w->cpu_pressure);
                sb_printf(&r->md, "| %s | %s | %d | %.4g | %.3g | %s | %sB | %s |\n", w->variant,
                          PHASE_NAME[dec], w->T, w->median_s, w->gflops, sp, si(w->peak_bytes, b), pr);
            }
    sb_printf(&r->md, "\n");
}

static int bench_section(report_ctx *r, const bench_table *t, sattn_err *e) {
    bench_view bv;
    if (bench_select(r->c, t, &bv, e)) return free(bv.rows), -1;
    sb_printf(&r->md, "## Measured (`%s`)\n\nRows at C = %d%s, k = %d (dense rows at any k); %d of %d rows.\n\n",
              r->c->bench, bv.C, bv.C != r->c->C ? " (no rows at --dim; the file's first C)" : "", r->c->k, bv.n, t->n);
    int rc = 0;
    if (!bv.n) sb_printf(&r->md, "No rows match.\n\n");
    else
        for (int p = 0; p < 6 && !rc; p++) rc = bench_plot(r, &bv, p % 3, p / 3, e);
    if (!rc && bv.n) rc = crossover_section(r, &bv, e);
    if (!rc && bv.n) bench_table_md(r, &bv);
    free(bv.rows);
    return rc;
}

/* -------------------------------------------------------------- eval section ---- */

static int heatmap_plot(report_ctx *r, const eval_file *f, sattn_err *e) {
    const report_model *m = &r->c->model;
    char name[REPORT_NAME_LEN + 16], title[256];
    snprintf(name, sizeof name, "heatmap_%s", f->name);
    snprintf(title, sizeof title, "Head-output error per head: %s (%d of %d heads sparse)", f->name, f->n_heads,
             m->L * m->H);
    sbuf g = {0};
    plot_begin(&g, name, title, "head", "layer", NULL, NULL);
    sb_printf(&g, "set xrange [-0.5:%g]\nset yrange [-0.5:%g]\nset xtics 1\nset ytics 1\nset grid front noxtics noytics\n",
              m->H - 0.5, m->L - 0.5);
    sb_printf(&g, "set cblabel 'relative head-output error ||o - o_hat|| / ||o|| (ratio)'\nset cbrange [0:*]\n"
                  "set palette defined (0 '#fff7ec', 0.5 '#fc8d59', 1 '#7f0000')\nset key off\n");
    double *err = xmalloc(sizeof(double) * (size_t)m->L * (size_t)m->H); /* NaN: dense */
    for (int i = 0; i < m->L * m->H; i++) err[i] = NAN;
    for (int i = 0; i < f->n_heads; i++) err[f->heads[i].layer * m->H + f->heads[i].head] = f->heads[i].rel_err;
    sb_printf(&g, "$h << EOD\n");
    for (int l = 0; l < m->L; l++)
        for (int h = 0; h < m->H; h++) {
            double v = err[l * m->H + h];
            if (isnan(v)) sb_printf(&g, "%d %d NaN dense\n", h, l);
            else sb_printf(&g, "%d %d %.6g %.3f\n", h, l, v, v);
        }
    free(err);
    sb_printf(&g, "EOD\nplot $h using 1:2:3 with image notitle, $h using 1:2:4 with labels font ',10' notitle\n");
    int rc = plot_render(r, name, &g, e);
    sb_free(&g);
    if (!rc) sb_printf(&r->md, "![%s](%s.png)\n\nPer-head relative output error of `%s` (layers × heads; "
                               "white cells marked dense keep full attention).\n\n", name, name, f->name);
    return rc;
}

/* The Pareto front of (rel, loss increase) into g: by FLOPs ascending, each point that
 * lowers the best loss so far. */
static void pareto_front(sbuf *g, const eval_file *f, const double *rel, int n) {
    int *ord = xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) ord[i] = i;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && rel[ord[j]] < rel[ord[j - 1]]; j--) {
            int t = ord[j];
            ord[j] = ord[j - 1], ord[j - 1] = t;
        }
    double best = INFINITY;
    for (int i = 0; i < n; i++) {
        double y = 100.0 * (f[ord[i]].loss_ratio - 1.0);
        if (y < best) sb_printf(g, "%.6g %.6g\n", rel[ord[i]], y), best = y;
    }
    free(ord);
}

/* x: attention FLOPs relative to dense (log); y: loss increase over dense in % (log when
 * every plan loses, which spreads the good plans apart). */
static int pareto_plot(report_ctx *r, const eval_file *f, const double *rel, int n, sattn_err *e) {
    const report_model *m = &r->c->model;
    char title[256];
    int logy = 1;
    for (int i = 0; i < n; i++) logy &= f[i].loss_ratio > 1.0;
    snprintf(title, sizeof title, "Quality vs attention FLOPs, one plan per eval file (L=%d, H=%d, C=%d, T=%d)",
             m->L, m->H, m->C, m->T);
    sbuf g = {0};
    plot_begin(&g, "pareto", title, "attention FLOPs of the plan / dense attention FLOPs (x)",
               "validation loss increase over dense (%)", logy ? "xy" : "x", "%g");
    sb_printf(&g, "set format x '%%g'\nset key outside right top box\nset offsets graph 0.02, graph 0.25, graph 0.1, graph 0.1\n$p << EOD\n");
    for (int i = 0; i < n; i++) sb_printf(&g, "%.6g %.6g %s\n", rel[i], 100.0 * (f[i].loss_ratio - 1.0), f[i].name);
    sb_printf(&g, "EOD\n$f << EOD\n");
    pareto_front(&g, f, rel, n);
    sb_printf(&g, "EOD\nset arrow from 1, graph 0 to 1, graph 1 nohead lc rgb '#888888' dt 3\n"
                  "plot $f using 1:2 with lines lw 2 lc rgb '#1b9e77' title 'Pareto front', "
                  "$p using 1:2 with points pt 7 ps 1.4 lc rgb '#1f5fbf' title 'plan (eval file)', "
                  "$p using 1:2:3 with labels left offset char 1,0 font ',9' notitle, "
                  "1/0 with lines lc rgb '#888888' dt 3 title 'dense FLOPs (1x)'\n");
    int rc = plot_render(r, "pareto", &g, e);
    sb_free(&g);
    return rc;
}

static void eval_table(report_ctx *r, const eval_file *f, const double *rel, int n) {
    sb_printf(&r->md, "| eval | plan (first sparse head) | sparse heads | attention FLOPs vs dense | "
                      "loss dense | loss hybrid | loss ratio | logit rel_err | mean head rel_err |\n"
                      "|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < f[i].n_heads; j++) s += f[i].heads[j].rel_err;
        sb_printf(&r->md, "| %s | `%s` | %d / %d | %.3f | %.4f | %.4f | %.4f | %.4f | %.4f |\n", f[i].name,
                  f[i].n_heads ? f[i].heads[0].spec : "dense", f[i].n_heads, r->c->model.L * r->c->model.H,
                  rel[i], f[i].loss_dense, f[i].loss_hybrid, f[i].loss_ratio, f[i].logit_rel_err,
                  f[i].n_heads ? s / f[i].n_heads : 0.0);
    }
    sb_printf(&r->md, "\n");
}

static int eval_section(report_ctx *r, const eval_file *f, int n, sattn_err *e) {
    const report_model *m = &r->c->model;
    double *rel = xmalloc(sizeof(double) * (size_t)n);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) rc = eval_relative_flops(&f[i], m, &rel[i], e);
    if (!rc) {
        sb_printf(&r->md, "## Quality\n\nModel: %d layers, %d heads, d_model %d, context T = %d. Attention "
                          "FLOPs of each plan over one sequence of T (`head_attention_flops`, heads not "
                          "listed are dense), relative to all-dense.\n\n", m->L, m->H, m->C, m->T);
        rc = pareto_plot(r, f, rel, n, e);
    }
    if (!rc) {
        sb_printf(&r->md, "![quality vs FLOPs](pareto.png)\n\nEach point is one eval file: its validation "
                          "loss relative to the dense model against its attention FLOPs relative to dense; "
                          "the line joins the plans no other plan beats on both. Both axes are logarithmic when every plan loses quality.\n\n");
        eval_table(r, f, rel, n);
    }
    for (int i = 0; i < n && !rc; i++) rc = heatmap_plot(r, &f[i], e);
    free(rel);
    return rc;
}

/* ------------------------------------------------------------------ driver ---- */

#define MAX_EVAL_HEADS 65536 /* L x H of the eval model: one heat map cell each */

static int check_config(const report_config *c, sattn_err *e) {
    if (!c->out_dir || !*c->out_dir) return err_set(e, "no output directory");
    if (c->C < 1 || c->H < 1 || c->C % c->H || c->k < 1)
        return err_set(e, "C %d must be a positive multiple of H %d, k %d positive", c->C, c->H, c->k);
    const report_model *m = &c->model;
    if (c->n_evals && (m->L < 1 || m->H < 1 || m->C < 1 || m->T < 1 || m->C % m->H))
        return err_set(e, "the eval model shape L=%d H=%d C=%d T=%d is invalid (C a multiple of H)", m->L,
                       m->H, m->C, m->T);
    if (c->n_evals && (long)m->L * m->H > MAX_EVAL_HEADS)
        return err_set(e, "the eval model has %ld heads (L=%d x H=%d), expected at most %d", (long)m->L * m->H, m->L,
                       m->H, MAX_EVAL_HEADS);
    return 0;
}

/* ------------------------------------------------------------ output folder ---- */

/* The whole report is written into a new folder beside the target, "OUT.tmp.PID", and
 * renamed into place only when every file is written; any failure removes that folder.
 * An existing OUT is replaced whole (never mixed with this run's files), but only if it
 * holds nothing sattn report does not write: `--out .` or `--out ~` is refused, not
 * emptied. */

/* out without trailing slashes into buf; "/", "." and ".." (as the last component)
 * cannot be renamed into place. */
static int target_of(const char *out, char *buf, size_t n, sattn_err *e) {
    size_t l = strlen(out);
    while (l > 1 && out[l - 1] == '/') l--;
    if (l >= n - 32) return err_set(e, "%.64s...: the output directory's name is too long", out);
    snprintf(buf, n, "%.*s", (int)l, out);
    const char *base = strrchr(buf, '/');
    base = base ? base + 1 : buf;
    if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
        return err_set(e, "%s: not a directory name the report can be renamed to, expected e.g. DIR/report", out);
    return 0;
}

/* A file name sattn report writes (or a temporary name of an interrupted write). */
static int report_file_name(const char *name) {
    size_t l = strlen(name);
    return !strcmp(name, "report.md") || !strcmp(name, "gnuplot.log") || (l > 4 && !strcmp(name + l - 4, ".png")) ||
           (l > 3 && !strcmp(name + l - 3, ".gp")) || strstr(name, ".tmp.") || (l > 4 && !strcmp(name + l - 4, ".tmp"));
}

/* Whether target exists (*exists), and if so that it is a directory holding only
 * regular files with report_file_name names. */
static int check_target(const char *target, int *exists, sattn_err *e) {
    struct stat st;
    *exists = lstat(target, &st) == 0;
    if (!*exists) return errno == ENOENT ? 0 : err_set(e, "%s: cannot stat (%s)", target, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return err_set(e, "%s: exists and is not a directory, expected a directory to replace or a new name", target);
    DIR *d = opendir(target);
    if (!d) return err_set(e, "%s: cannot read (%s)", target, strerror(errno));
    int rc = 0;
    for (struct dirent *de; !rc && (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode) ||
            !report_file_name(de->d_name))
            rc = err_set(e, "%s: exists and holds '%s', which is not a report file; expected a new, empty or "
                            "earlier report directory (it is replaced whole)", target, de->d_name);
    }
    closedir(d);
    return rc;
}

/* Removes dir and its regular files (all of them, or only report_file_name ones). */
static int remove_dir(const char *dir, int only_report_files) {
    for (int pass = 0; pass < 2; pass++) { /* a second pass for entries readdir skipped */
        DIR *d = opendir(dir);
        if (!d) return -1;
        for (struct dirent *de; (de = readdir(d));)
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
                (!only_report_files || report_file_name(de->d_name)))
                unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
        if (rmdir(dir) == 0) return 0;
    }
    return -1;
}

/* A killed report's folder: only report files are removed, so rmdir keeps anything else. */
static void remove_stale_dir(const char *dir) { remove_dir(dir, 1); }

/* A new empty folder "target.tmp.PID" (".N" added while that name is taken) into buf,
 * after removing those of killed reports (dead PIDs) to the same target. */
static int make_temp_dir(const char *target, char *buf, size_t n, sattn_err *e) {
    stale_temps_remove(target, remove_stale_dir);
    for (int i = 0; i < 100; i++) {
        int w = i ? snprintf(buf, n, "%s.tmp.%ld.%d", target, (long)getpid(), i)
                  : snprintf(buf, n, "%s.tmp.%ld", target, (long)getpid());
        if (w < 0 || (size_t)w >= n) return err_set(e, "%s: the name is too long", target);
        if (mkdir(buf, 0755) == 0) return 0;
        if (errno != EEXIST) return err_set(e, "%s: cannot create directory (%s)", buf, strerror(errno));
    }
    return err_set(e, "%s: cannot create a temporary directory beside it (100 names taken)", target);
}

/* Puts tmp at target, which exists: exchanged atomically (renameat2 RENAME_EXCHANGE:
 * target always holds one whole report), or where the file system cannot exchange,
 * target renamed aside first. *old gets where the earlier report now is. */
static int swap_in(const char *tmp, const char *target, char *old, size_t n) {
    snprintf(old, n, "%s", tmp);
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, target, RENAME_EXCHANGE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS) return -1;
    snprintf(old, n, "%s.old", tmp);
    if (rename(target, old)) return -1;
    if (rename(tmp, target) == 0) return 0;
    int err = errno;
    rename(old, target); /* put the earlier report back */
    errno = err;
    return -1;
}

/* Moves the finished folder tmp to target (replacing an earlier report there, which is
 * then removed); on failure tmp is removed and target is as it was. */
static int install_dir(const char *tmp, const char *target, int exists, sattn_err *e) {
    char old[PATH_MAX + 64];
    if (exists ? swap_in(tmp, target, old, sizeof old) : rename(tmp, target)) {
        int err = errno;
        remove_dir(tmp, 0);
        return err_set(e, "%s: cannot move the finished report into place (%s)", target, strerror(err));
    }
    if (exists && remove_dir(old, 1))
        return err_set(e, "%s: the new report is in place, but the earlier one is left in %s (%s)", target, old,
                       strerror(errno));
    return 0;
}

/* Reads every input before anything is written, so a bad input leaves no output. */
static int read_inputs(const report_config *c, bench_table *bt, eval_file *ev, sattn_err *e) {
    bt->n = 0, bt->rows = NULL;
    if (c->bench && bench_csv_read(c->bench, bt, e)) return -1;
    for (int i = 0; i < c->n_evals; i++) {
        double rel;
        if (eval_json_read(c->evals[i], &ev[i], e) || (eval_relative_flops(&ev[i], &c->model, &rel, e) &&
                                                       (eval_file_free(&ev[i]), 1))) {
            while (i--) eval_file_free(&ev[i]);
            return bench_table_free(bt), -1;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(ev[i].name, ev[j].name)) {
                err_set(e, "%s: its name '%s' repeats %s's (the heat maps are named after it)", c->evals[i],
                        ev[i].name, c->evals[j]);
                for (int k = 0; k <= i; k++) eval_file_free(&ev[k]);
                return bench_table_free(bt), -1;
            }
    }
    return 0;
}

static int write_sections(report_ctx *r, const bench_table *bt, const eval_file *ev, sattn_err *e) {
    const report_config *c = r->c;
    sb_printf(&r->md, "# sattn report\n\nWritten by `sattn report` (docs/report.md). Inputs: the analytic "
                      "cost model at C = %d, H = %d, k = %d", c->C, c->H, c->k);
    if (c->bench) sb_printf(&r->md, "; benchmark `%s`", c->bench);
    for (int i = 0; i < c->n_evals; i++) sb_printf(&r->md, "%s`%s`", i ? ", " : "; eval ", c->evals[i]);
    sb_printf(&r->md, ". Each plot's gnuplot script (data included) is beside it as NAME.gp.\n\n");
    if (analytic_section(r, e)) return -1;
    if (c->bench && bench_section(r, bt, e)) return -1;
    if (c->n_evals && eval_section(r, ev, c->n_evals, e)) return -1;
    return write_file(r, "report.md", &r->md, e);
}

int report_write(const report_config *c, sattn_err *e) {
    char target[PATH_MAX];
    if (check_config(c, e) || target_of(c->out_dir, target, sizeof target, e)) return -1;
    report_ctx r = {.c = c};
    if (find_gnuplot(c->gnuplot ? c->gnuplot : "gnuplot", r.gnuplot, sizeof r.gnuplot))
        return err_set(e, "gnuplot not found ('%s'): install it with `apt-get install gnuplot-nox` "
                          "(or run scripts/deps.sh)", c->gnuplot ? c->gnuplot : "gnuplot");
    bench_table bt;
    eval_file *ev = xcalloc((size_t)(c->n_evals ? c->n_evals : 1), sizeof(eval_file));
    if (read_inputs(c, &bt, ev, e)) return free(ev), -1;
    int exists = 0, rc = check_target(target, &exists, e);
    if (!rc) rc = make_temp_dir(target, r.dir, sizeof r.dir, e);
    if (!rc) {
        if (write_sections(&r, &bt, ev, e)) rc = -1, remove_dir(r.dir, 0);
        else rc = install_dir(r.dir, target, exists, e);
    }
    sb_free(&r.md);
    for (int i = 0; i < c->n_evals; i++) eval_file_free(&ev[i]);
    free(ev);
    bench_table_free(&bt);
    return rc;
}
