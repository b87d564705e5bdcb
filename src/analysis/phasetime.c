/* phasetime: per-phase step times, their CSV (sattn/phasetime.h). */
#include "sattn/phasetime.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PT_MAX_INPUT (16u << 20)
#define PT_MAX_ROWS 65536

const char *pt_stage_name(int stage) {
    static const char *const S[PT_NSTAGE] = {"prefill", "decode", "train"};
    return stage >= 0 && stage < PT_NSTAGE ? S[stage] : "?";
}

int pt_stage_parse(const char *s) {
    for (int i = 0; i < PT_NSTAGE; i++)
        if (!strcmp(s, pt_stage_name(i))) return i;
    return -1;
}

/* The median sample(s) of tot: one index (odd n) or the two middle ones (even n). */
static void median_pair(const double *tot, int n, int *a, int *b) {
    int *ix = xmalloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) ix[i] = i;
    for (int i = 1; i < n; i++) /* insertion sort: a few hundred samples at most */
        for (int j = i; j > 0 && tot[ix[j - 1]] > tot[ix[j]]; j--) {
            int t = ix[j];
            ix[j] = ix[j - 1], ix[j - 1] = t;
        }
    *a = ix[(n - 1) / 2], *b = ix[n / 2];
    free(ix);
}

void pt_split(phase_row *r, const double *tot, const double *sel, const double *fwd, const double *bwd, int n) {
    int a, b;
    median_pair(tot, n, &a, &b);
    r->total_s = 0.5 * (tot[a] + tot[b]);
    r->select_s = 0.5 * (sel[a] + sel[b]);
    r->head_s = 0.5 * (fwd[a] + fwd[b]);
    r->head_bwd_s = bwd ? 0.5 * (bwd[a] + bwd[b]) : 0.0;
    r->rest_s = r->total_s - r->select_s - r->head_s - r->head_bwd_s;
}

void pt_dense(phase_row *r, const double *tot, int n) {
    int a, b;
    median_pair(tot, n, &a, &b);
    r->total_s = r->rest_s = 0.5 * (tot[a] + tot[b]);
    r->select_s = r->head_s = r->head_bwd_s = -1.0;
}

__attribute__((format(printf, 4, 5))) static void append(char *buf, size_t n, size_t *len, const char *fmt, ...) {
    if (*len >= n) return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *len, n - *len, fmt, ap);
    va_end(ap);
    *len += w > 0 ? (size_t)w : 0;
}

#define PT_HEADER "variant,stage,L,H,C,T,total_s,select_s,head_s,head_bwd_s,rest_s"

void pt_csv_line(const phase_row *r, char *buf, size_t n) {
    size_t len = 0;
    append(buf, n, &len, "%s,%s,%d,%d,%d,%d,%.6e,%.6e,%.6e,%.6e,%.6e\n", r->variant, pt_stage_name(r->stage), r->L,
           r->H, r->C, r->T, r->total_s, r->select_s, r->head_s, r->head_bwd_s, r->rest_s);
}

void pt_json_object(const phase_row *r, char *buf, size_t n) {
    size_t len = 0;
    append(buf, n, &len,
           "{\"variant\": \"%s\", \"stage\": \"%s\", \"L\": %d, \"H\": %d, \"C\": %d, \"T\": %d, \"total_s\": %.6e, "
           "\"select_s\": %.6e, \"head_s\": %.6e, \"head_bwd_s\": %.6e, \"rest_s\": %.6e}",
           r->variant, pt_stage_name(r->stage), r->L, r->H, r->C, r->T, r->total_s, r->select_s, r->head_s,
           r->head_bwd_s, r->rest_s);
}

void pt_text_line(const phase_row *r, char *buf, size_t n) {
    size_t len = 0;
    double t = r->total_s > 0 ? r->total_s : 1.0;
    append(buf, n, &len, "%-28s %-7s T %6d  %10.3f ms", r->variant, pt_stage_name(r->stage), r->T, r->total_s * 1e3);
    if (r->select_s < 0) {
        append(buf, n, &len, "  (dense: no split)");
        return;
    }
    append(buf, n, &len, " = select %.1f%% + head %.1f%%", 100 * r->select_s / t, 100 * r->head_s / t);
    if (r->stage == PT_TRAIN) append(buf, n, &len, " + head bwd %.1f%%", 100 * r->head_bwd_s / t);
    append(buf, n, &len, " + rest %.1f%%", 100 * r->rest_s / t);
}

int pt_csv_write(const char *path, const phase_row *rows, int n, sattn_err *e) {
    afile a;
    if (afile_open(&a, path, e)) return -1;
    if (afile_write(&a, PT_HEADER "\n", strlen(PT_HEADER) + 1, e)) return afile_abort(&a), -1;
    for (int i = 0; i < n; i++) {
        char buf[320];
        pt_csv_line(&rows[i], buf, sizeof buf);
        if (afile_write(&a, buf, strlen(buf), e)) return afile_abort(&a), -1;
    }
    return afile_commit(&a, e);
}

/* ---- the reader ---- */

static int name_ok(const char *s) {
    if (!*s || strlen(s) >= BENCH_NAME_LEN) return 0;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("+-_.:=", c)))
            return 0;
    }
    return 1;
}

/* A finite decimal in [lo, hi] into *x; 0 or -1. */
static int num(const char *s, double lo, double hi, double *x) {
    char *end;
    *x = strtod(s, &end);
    return end != s && !*end && isfinite(*x) && *x >= lo && *x <= hi ? 0 : -1;
}

static const char *const COLS[] = {"variant", "stage", "L", "H", "C", "T", "total_s", "select_s", "head_s",
                                   "head_bwd_s", "rest_s"};
#define NCOLS 11

static int parse_row(char *line, phase_row *r, const char *path, int ln, sattn_err *e) {
    char *f[NCOLS + 1];
    int n = 0;
    for (char *p = line;; n++) {
        if (n < NCOLS + 1) f[n] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = 0, p = c + 1;
    }
    if (++n != NCOLS) return err_set(e, "%s:%d: %d fields, expected %d (" PT_HEADER ")", path, ln, n, NCOLS);
    memset(r, 0, sizeof *r);
    if (!name_ok(f[0])) return err_set(e, "%s:%d: column 'variant': '%.40s', expected letters, digits, + - _ . : =", path, ln, f[0]);
    snprintf(r->variant, sizeof r->variant, "%s", f[0]);
    if ((r->stage = pt_stage_parse(f[1])) < 0)
        return err_set(e, "%s:%d: column 'stage': '%.40s', expected 'prefill', 'decode' or 'train'", path, ln, f[1]);
    int *ints[] = {&r->L, &r->H, &r->C, &r->T};
    for (int c = 2; c < 6; c++) {
        double x;
        if (num(f[c], 1, 1 << 24, &x) || x != floor(x))
            return err_set(e, "%s:%d: column '%s': '%.40s', expected an integer in 1..2^24", path, ln, COLS[c], f[c]);
        *ints[c - 2] = (int)x;
    }
    double *dbl[] = {&r->total_s, &r->select_s, &r->head_s, &r->head_bwd_s, &r->rest_s};
    for (int c = 6; c < NCOLS; c++)
        if (num(f[c], c == 6 ? 1e-12 : -1e6, 1e6, dbl[c - 6]))
            return err_set(e, "%s:%d: column '%s': '%.40s', expected seconds (%s)", path, ln, COLS[c], f[c],
                           c == 6 ? "> 0" : "-1 where not measured");
    return 0;
}

int pt_csv_read(const char *path, phase_table *t, sattn_err *e) {
    char *text;
    size_t len;
    t->n = 0, t->rows = NULL;
    if (file_read_text(path, PT_MAX_INPUT, "a sattn phases CSV", &text, &len, e)) return -1;
    int ln = 0, rc = 0, cap = 0;
    for (char *p = text, *nl; p && !rc; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl) *nl = 0;
        size_t l = strlen(p);
        if (l && p[l - 1] == '\r') p[--l] = 0;
        ln++;
        if (ln == 1 && strcmp(p, PT_HEADER))
            rc = err_set(e, "%s:1: header '%.60s', expected '" PT_HEADER "'", path, p);
        else if (ln > 1 && l && t->n == PT_MAX_ROWS)
            rc = err_set(e, "%s:%d: more than %d rows", path, ln, PT_MAX_ROWS);
        else if (ln > 1 && l) {
            if (t->n == cap) cap = cap ? 2 * cap : 32, t->rows = xrealloc(t->rows, (size_t)cap * sizeof *t->rows);
            if (!(rc = parse_row(p, &t->rows[t->n], path, ln, e))) t->n++;
        }
    }
    if (!rc && t->n == 0) rc = err_set(e, "%s: no data rows after the header", path);
    free(text);
    if (rc) pt_table_free(t);
    return rc;
}

void pt_table_free(phase_table *t) {
    free(t->rows);
    t->rows = NULL, t->n = 0;
}
