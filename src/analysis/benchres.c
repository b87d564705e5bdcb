/* benchres: the bench row's column table, its CSV writer and reader (benchres.h). */
#include "sattn/benchres.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Limits for hostile input: far above anything sattn bench writes (a full grid is a
 * few hundred rows), low enough that a crafted file cannot exhaust memory. */
#define BENCH_MAX_INPUT ((size_t)64 << 20)
#define BENCH_MAX_ROWS (1 << 18)

const char *bench_phase_name(int phase) {
    static const char *const P[BENCH_NPHASE] = {"prefill", "decode", "backward"};
    return phase >= 0 && phase < BENCH_NPHASE ? P[phase] : "?";
}

int bench_phase_parse(const char *s) {
    for (int p = 0; p < BENCH_NPHASE; p++)
        if (!strcmp(s, bench_phase_name(p))) return p;
    return -1;
}

/* ---- the columns ---- */

enum { COL_NAME, COL_PHASE, COL_INT, COL_NUM };

/* Each column: its name, kind, field, print format (numbers), and the accepted range;
 * na: a value outside it that bench writes for "not available" (-1), or 0 for none.
 * Anything else is refused before plotting: a negative time or an absurd size makes no
 * plot, only a broken one. */
typedef struct {
    const char *name;
    int kind;
    size_t off;
    const char *fmt;
    double lo, hi, na;
    const char *what;
} bench_col;

#define F(x) offsetof(bench_row, x)
static const bench_col COLS[] = {
    {"variant", COL_NAME, F(variant), "%s", 0, 0, 0, NULL},
    {"phase", COL_PHASE, F(phase), "%s", 0, 0, 0, NULL},
    {"C", COL_INT, F(C), "%d", 1, 1 << 20, 0, "an integer in 1 .. 1048576"},
    {"H", COL_INT, F(H), "%d", 1, 1 << 20, 0, "an integer in 1 .. 1048576"},
    {"T", COL_INT, F(T), "%d", 1, 1 << 30, 0, "an integer in 1 .. 2^30"},
    {"k", COL_INT, F(k), "%d", 0, 1 << 30, 0, "an integer in 0 .. 2^30"},
    {"median_s", COL_NUM, F(median_s), "%.6e", 1e-12, 1e6, 0, "seconds in 1e-12 .. 1e6"},
    {"gflops", COL_NUM, F(gflops), "%.4f", 0, 1e9, 0, "GFLOP/s in 0 .. 1e9"},
    {"speedup_vs_flash", COL_NUM, F(speedup_vs_flash), "%.4f", 0, 1e9, -1,
     "a ratio in 0 .. 1e9, or -1 (no dense-flash row)"},
    {"peak_bytes", COL_NUM, F(peak_bytes), "%.0f", 0, 1e18, 0, "bytes in 0 .. 1e18"},
    {"cpu_pressure_avg10", COL_NUM, F(cpu_pressure), "%.2f", 0, 100, -1,
     "a percentage in 0 .. 100, or -1 (not available)"},
    {"pct_peak", COL_NUM, F(pct_peak), "%.2f", 0, 1e6, -1,
     "a percentage in 0 .. 1e6, or -1 (no peak measured)"},
};
#undef F
#define NCOLS ((int)(sizeof COLS / sizeof COLS[0]))
/* Files written before pct_peak (issue 11) end at cpu_pressure_avg10: still read, with
 * pct_peak = -1. */
#define NCOLS_OLD (NCOLS - 1)

/* Appends fmt's text at buf + *len (n bytes in all; the text is cut where it is full). */
__attribute__((format(printf, 4, 5))) static void append(char *buf, size_t n, size_t *len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t at = *len < n ? *len : n;
    int w = vsnprintf(buf + at, n - at, fmt, ap);
    va_end(ap);
    *len += w > 0 ? (size_t)w : 0;
}

/* Column c of r appended as text (numbers in the column's format; quote: JSON). */
static void col_text(const bench_row *r, int c, int quote, char *buf, size_t n, size_t *len) {
    const bench_col *k = &COLS[c];
    const char *field = (const char *)r + k->off, *q = quote ? "\"" : "";
    if (k->kind == COL_NAME) append(buf, n, len, "%s%s%s", q, field, q);
    else if (k->kind == COL_PHASE) append(buf, n, len, "%s%s%s", q, bench_phase_name(*(const int *)field), q);
    else if (k->kind == COL_INT) append(buf, n, len, k->fmt, *(const int *)field);
    else append(buf, n, len, k->fmt, *(const double *)field);
}

/* The column names joined (every call writes the same bytes, so calls may overlap). */
const char *bench_csv_header(void) {
    static char header[256];
    size_t len = 0;
    for (int c = 0; c < NCOLS; c++) append(header, sizeof header, &len, "%s%s", c ? "," : "", COLS[c].name);
    append(header, sizeof header, &len, "\n");
    return header;
}

void bench_csv_line(const bench_row *r, char *buf, size_t n) {
    size_t len = 0;
    if (n) buf[0] = 0;
    for (int c = 0; c < NCOLS; c++) {
        if (c) append(buf, n, &len, ",");
        col_text(r, c, 0, buf, n, &len);
    }
    append(buf, n, &len, "\n");
}

void bench_json_object(const bench_row *r, char *buf, size_t n) {
    size_t len = 0;
    if (n) buf[0] = 0;
    for (int c = 0; c < NCOLS; c++) {
        append(buf, n, &len, "%s\"%s\": ", c ? ", " : "{", COLS[c].name);
        col_text(r, c, 1, buf, n, &len);
    }
    append(buf, n, &len, "}");
}

int bench_csv_write(const char *path, const bench_row *rows, int n, sattn_err *e) {
    afile a;
    if (afile_open(&a, path, e)) return -1;
    const char *h = bench_csv_header();
    if (afile_write(&a, h, strlen(h), e)) return afile_abort(&a), -1;
    for (int i = 0; i < n; i++) {
        char buf[384];
        bench_csv_line(&rows[i], buf, sizeof buf);
        if (afile_write(&a, buf, strlen(buf), e)) return afile_abort(&a), -1;
    }
    return afile_commit(&a, e);
}

/* ---- the reader ---- */

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

/* Returns the file's column count (NCOLS, or NCOLS_OLD for a file without pct_peak), -1 on error. */
static int check_header(char *line, const char *path, sattn_err *e) {
    char *f[NCOLS + 1];
    int n = split_commas(line, f, NCOLS + 1);
    for (int i = 0; i < NCOLS_OLD; i++) {
        if (i >= n) return err_set(e, "%s:1: header: missing column '%s'", path, COLS[i].name);
        if (strcmp(f[i], COLS[i].name))
            return err_set(e, "%s:1: header: column %d is '%.40s', expected '%s'", path, i + 1, f[i], COLS[i].name);
    }
    if (n > NCOLS || (n == NCOLS && strcmp(f[NCOLS - 1], COLS[NCOLS - 1].name)))
        return err_set(e, "%s:1: header: %d columns, expected %d (%s ... %s) or %d (... %s)", path, n, NCOLS_OLD,
                       COLS[0].name, COLS[NCOLS_OLD - 1].name, NCOLS, COLS[NCOLS - 1].name);
    return n;
}

/* The characters a variant name may hold: those of sattn's variant names and head
 * specs. Names reach gnuplot titles and report.md, so anything that could quote,
 * escape, substitute (`, @, $) or break a line is refused here, at the source. */
static int name_char_ok(char c) {
    return c && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("+-_.:=", c));
}

static int check_variant(const char *v, const char *path, int ln, sattn_err *e) {
    if (!*v || strlen(v) >= BENCH_NAME_LEN)
        return err_set(e, "%s:%d: column 'variant': empty or longer than %d", path, ln, BENCH_NAME_LEN - 1);
    for (size_t i = 0; v[i]; i++)
        if (!name_char_ok(v[i]))
            return err_set(e, "%s:%d: column 'variant': byte %zu is '%c' (0x%02x), expected letters, digits and + - _ . : =",
                           path, ln, i + 1, (unsigned char)v[i] >= 0x20 && (unsigned char)v[i] < 0x7f ? v[i] : '?',
                           (unsigned char)v[i]);
    return 0;
}

/* Numeric column i's text into its field of r: a finite decimal number inside the
 * column's range (integral for the COL_INT ones). */
static int parse_col(const char *s, int i, bench_row *r, const char *path, int ln, sattn_err *e) {
    const bench_col *k = &COLS[i];
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    int decimal = s[strspn(s, "0123456789+-.eE")] == 0; /* strtod would also take hex */
    if (!decimal || end == s || *end || !isfinite(x) || (errno && fabs(x) > 1))
        return err_set(e, "%s:%d: column '%s': '%.40s' is not a finite decimal number, expected %s", path, ln,
                       k->name, s, k->what);
    int in = (x >= k->lo && x <= k->hi) || (k->na && x == k->na);
    if (!in || (k->kind == COL_INT && x != floor(x)))
        return err_set(e, "%s:%d: column '%s': '%.40s' is out of range, expected %s", path, ln, k->name, s, k->what);
    char *field = (char *)r + k->off;
    if (k->kind == COL_INT) *(int *)field = (int)x;
    else *(double *)field = x;
    return 0;
}

/* One data line of a file with ncols columns (NCOLS or NCOLS_OLD). */
static int parse_row(char *line, int ncols, bench_row *r, const char *path, int ln, sattn_err *e) {
    char *f[NCOLS + 1];
    int n = split_commas(line, f, NCOLS + 1);
    if (n != ncols) return err_set(e, "%s:%d: %d fields, expected %d", path, ln, n, ncols);
    r->pct_peak = -1.0;
    if (check_variant(f[0], path, ln, e)) return -1;
    snprintf(r->variant, sizeof r->variant, "%s", f[0]);
    r->phase = bench_phase_parse(f[1]);
    if (r->phase < 0)
        return err_set(e, "%s:%d: column 'phase': '%.40s', expected 'prefill', 'decode' or 'backward'", path, ln, f[1]);
    for (int i = 2; i < ncols; i++)
        if (parse_col(f[i], i, r, path, ln, e)) return -1;
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
    if (file_read_text(path, BENCH_MAX_INPUT, "a sattn bench CSV or eval JSON", &text, &len, e)) return -1;
    if (!len) return free(text), err_set(e, "%s:1: empty file, expected the header", path);
    int ln = 0, rc = 0, cap = 0, ncols = 0;
    for (char *p = text, *nl; p && !rc; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl) *nl = 0;
        size_t l = strlen(p);
        if (l && p[l - 1] == '\r') p[--l] = 0;
        ln++;
        if (ln == 1) rc = (ncols = check_header(p, path, e)) < 0 ? -1 : 0;
        else if (l && t->n == BENCH_MAX_ROWS)
            rc = err_set(e, "%s:%d: more than %d rows, expected a sattn bench CSV", path, ln, BENCH_MAX_ROWS);
        else if (l && !(rc = parse_row(p, ncols, next_row(t, &cap), path, ln, e))) t->n++;
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
