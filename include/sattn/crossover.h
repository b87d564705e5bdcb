/* crossover: the measured sequence length from which sparse attention beats dense-flash,
 * read from a `sattn bench --csv` table (benchres.h's bench_csv_read), and the threshold of
 * hybrid by length derived from it for a plan (docs/hybrid_length.md). Issue 4, item 6.
 *
 * Crossover of one series (variant, prefill, C, k): the smallest measured T from which
 * the variant beats dense-flash (speedup_vs_flash > 1) at that T and at EVERY larger
 * measured T; XO_NEVER when the largest measured T does not win. This is report.md's
 * "from then on" T*, not bench's first winning T: a noisy win at one short T must not
 * switch long inputs to a kernel that is slower there. Rows whose speedup is unknown
 * (<= 0: bench writes -1 where dense-flash has no row) carry no comparison and are left
 * out. Ties in T (a CSV with repeated rows) are settled conservatively: any losing row
 * at T' rules out every T <= T'. */
#ifndef SATTN_CROSSOVER_H
#define SATTN_CROSSOVER_H

#include <limits.h>

#include "sattn/benchres.h"
#include "sattn/sparse.h"

#define XO_NEVER INT_MAX  /* no crossover: the variant never beats dense-flash from some T on */
#define XO_MAX_FAMILIES 8

typedef struct {
    char variant[BENCH_NAME_LEN]; /* bench variant name, e.g. "index+softmax" */
    int want_C, want_k;            /* asked for: the model's C, the plan's k */
    int C, k;                      /* the bench rows used: nearest C, then nearest k */
    int T;                         /* the crossover, or XO_NEVER */
    int T_lo, T_hi, n;             /* measured T range and rows of the series (known speedup) */
} xover;

/* The from-then-on crossover of ONE series given as (T, speedup over dense-flash) pairs
 * in any order, the rule above: pairs with speedup <= 0 are left out, a loss (<= 1) at
 * T' excludes every T <= T', and the answer is the smallest winning T above the last
 * loss; -1 when there is none. `sattn bench`, `sattn report` and xover_find all use it. */
int xover_series_T(const int *T, const double *speedup, int n);

/* The crossover of variant at prefill from the rows at the C nearest want_C (ties: the
 * smaller C) and, among those, the k nearest want_k (ties: the larger k, which is
 * slower, so the conservative choice). path names the CSV in errors: no prefill rows for
 * the variant, or none with a known speedup. */
int xover_find(const bench_table *t, const char *path, const char *variant, int want_C, int want_k,
               xover *x, sattn_err *e);

/* The bench variant name of a sparse head spec ("index+softmax"), into buf. */
void xover_variant_name(const head_spec *s, char *buf, size_t n);

/* Hybrid-by-length threshold of a plan: for each (selector+head function) family among
 * sh's sparse heads, the crossover at the model's C and the family's largest k; the
 * threshold is the largest of them (below it at least one family is not yet faster, so
 * the whole model stays dense). dense_below is XO_NEVER when some family never wins, and
 * 0 when the plan has no sparse head. */
typedef struct {
    int dense_below;
    int n;
    xover fam[XO_MAX_FAMILIES];
} xover_policy;

int xover_policy_from_table(const bench_table *t, const char *path, const sparse_heads *sh, int C,
                            xover_policy *p, sattn_err *e);
/* bench_csv_read(path) then xover_policy_from_table. */
int xover_policy_from_csv(const char *path, const sparse_heads *sh, int C, xover_policy *p, sattn_err *e);

/* One line (no newline) saying which threshold was chosen and from what rows, e.g.
 * "dense below T=2048 (bench.csv: block+softmax prefill, C=512 k=32, measured T 256..8192)". */
void xover_policy_describe(const xover_policy *p, const char *path, char *buf, size_t n);

#endif
