/* crossover: measured crossover T* from a bench table, and the hybrid-by-length
 * threshold of a plan (crossover.h). */
#include "sattn/crossover.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A prefill row of variant with a known comparison against dense-flash. */
static int usable(const bench_row *r, const char *variant) {
    return r->phase == BENCH_PREFILL && !strcmp(r->variant, variant) && r->speedup_vs_flash > 0;
}

/* Among the usable rows of variant (by_k: only those at C == fixed_C), the C (or k) value
 * nearest want; a tie goes to the larger value if prefer_larger, else the smaller. */
static int nearest(const bench_table *t, const char *variant, int want, int prefer_larger, int fixed_C,
                   int by_k) {
    int best = -1;
    for (int i = 0; i < t->n; i++) {
        const bench_row *r = &t->rows[i];
        if (!usable(r, variant) || (by_k && r->C != fixed_C)) continue;
        int v = by_k ? r->k : r->C;
        long d = labs((long)v - want), bd = best < 0 ? -1 : labs((long)best - want);
        if (best < 0 || d < bd || (d == bd && (prefer_larger ? v > best : v < best))) best = v;
    }
    return best;
}

int xover_series_T(const int *T, const double *speedup, int n) {
    int lose = -1, best = -1;
    for (int i = 0; i < n; i++)
        if (speedup[i] > 0 && speedup[i] <= 1 && T[i] > lose) lose = T[i];
    for (int i = 0; i < n; i++)
        if (speedup[i] > 1 && T[i] > lose && (best < 0 || T[i] < best)) best = T[i];
    return best;
}

/* The series (variant, prefill, C, k): its measured T range, row count and crossover. */
static void series_crossover(const bench_table *t, xover *x) {
    int *T = xmalloc(((size_t)t->n + 1) * sizeof(int)), lo = XO_NEVER, hi = -1;
    double *sp = xmalloc(((size_t)t->n + 1) * sizeof(double));
    x->n = 0;
    for (int i = 0; i < t->n; i++) {
        const bench_row *r = &t->rows[i];
        if (!usable(r, x->variant) || r->C != x->C || r->k != x->k) continue;
        T[x->n] = r->T, sp[x->n++] = r->speedup_vs_flash;
        lo = r->T < lo ? r->T : lo;
        hi = r->T > hi ? r->T : hi;
    }
    int c = xover_series_T(T, sp, x->n);
    x->T = c < 0 ? XO_NEVER : c;
    x->T_lo = lo, x->T_hi = hi;
    free(T), free(sp);
}

static int has_variant(const bench_table *t, const char *variant, int any_speedup) {
    for (int i = 0; i < t->n; i++)
        if (t->rows[i].phase == BENCH_PREFILL && !strcmp(t->rows[i].variant, variant) &&
            (any_speedup || t->rows[i].speedup_vs_flash > 0))
            return 1;
    return 0;
}

int xover_find(const bench_table *t, const char *path, const char *variant, int want_C, int want_k,
               xover *x, sattn_err *e) {
    memset(x, 0, sizeof *x);
    snprintf(x->variant, sizeof x->variant, "%s", variant);
    x->want_C = want_C, x->want_k = want_k;
    if (!has_variant(t, variant, 1))
        return err_set(e, "%s: no prefill rows for variant '%s' (expected `sattn bench --csv` rows "
                          "with variant %s, phase prefill)", path, variant, variant);
    if (!has_variant(t, variant, 0))
        return err_set(e, "%s: no prefill row of '%s' has a dense-flash comparison (speedup_vs_flash is "
                          "-1 in every one; run sattn bench with the flash variant too)", path, variant);
    x->C = nearest(t, variant, want_C, 0, 0, 0);
    x->k = nearest(t, variant, want_k, 1, x->C, 1);
    series_crossover(t, x);
    return 0;
}

void xover_variant_name(const head_spec *s, char *buf, size_t n) {
    char spec[128];
    head_spec_format(s, spec, sizeof spec);
    size_t l = strcspn(spec, ":"); /* "index+softmax:k=16,..." -> "index+softmax" */
    if (l >= n) l = n - 1;
    memcpy(buf, spec, l);
    buf[l] = 0;
}

/* The families of sh's sparse heads, each with its largest k (keys per query). */
static int families(const sparse_heads *sh, xover *fam, sattn_err *e) {
    int n = 0;
    for (int i = 0; i < sh->layers * sh->heads; i++) {
        const head_spec *s = &sh->h[i].spec;
        if (s->sel == SEL_DENSE) continue;
        char name[BENCH_NAME_LEN];
        xover_variant_name(s, name, sizeof name);
        int j = 0, k = selector_kmax(s, INT_MAX);
        while (j < n && strcmp(fam[j].variant, name)) j++;
        if (j == n) {
            if (n == XO_MAX_FAMILIES) return err_set(e, "more than %d head families in the plan", n);
            memset(&fam[n], 0, sizeof fam[n]);
            snprintf(fam[n++].variant, BENCH_NAME_LEN, "%s", name);
        }
        if (k > fam[j].want_k) fam[j].want_k = k;
    }
    return n;
}

int xover_policy_from_table(const bench_table *t, const char *path, const sparse_heads *sh, int C,
                            xover_policy *p, sattn_err *e) {
    memset(p, 0, sizeof *p);
    xover want[XO_MAX_FAMILIES];
    int n = families(sh, want, e);
    if (n < 0) return -1;
    for (int i = 0; i < n; i++) {
        if (xover_find(t, path, want[i].variant, C, want[i].want_k, &p->fam[i], e)) return -1;
        if (p->fam[i].T > p->dense_below) p->dense_below = p->fam[i].T;
    }
    p->n = n;
    return 0;
}

int xover_policy_from_csv(const char *path, const sparse_heads *sh, int C, xover_policy *p, sattn_err *e) {
    bench_table t;
    if (bench_csv_read(path, &t, e)) return -1;
    int rc = xover_policy_from_table(&t, path, sh, C, p, e);
    bench_table_free(&t);
    return rc;
}

void xover_policy_describe(const xover_policy *p, const char *path, char *buf, size_t n) {
    size_t len = 0;
    if (p->dense_below == XO_NEVER) len = (size_t)snprintf(buf, n, "dense at every length");
    else len = (size_t)snprintf(buf, n, "dense below T=%d", p->dense_below);
    for (int i = 0; i < p->n && len < n; i++) {
        const xover *x = &p->fam[i];
        char tstar[32];
        if (x->T == XO_NEVER) snprintf(tstar, sizeof tstar, "never faster");
        else snprintf(tstar, sizeof tstar, "T*=%d", x->T);
        len += (size_t)snprintf(buf + len, n - len, "%s%s prefill at C=%d k=%d: %s (measured T %d..%d, %d rows)",
                                i ? "; " : ", from ", x->variant, x->C, x->k, tstar, x->T_lo, x->T_hi, x->n);
    }
    if (p->n && len < n) snprintf(buf + len, n - len, " in %s", path);
}
