#define _POSIX_C_SOURCE 200809L /* PATH_MAX (report_impl.h) under -std=c11 */
/* report_generate: the report's generation section (`sattn report --generate CSV`, the
 * rows of `sattn bench-generate`, genbench.h): decode time per token and prefill time vs
 * context, cached (dense, each sparse plan) against the recompute, the fitted line per
 * variant and the table. Every text reaching gnuplot goes through rp_gp_str; the CSV's
 * variant names were whitelisted by bench_csv_read. */
#include <stdlib.h>
#include <string.h>

#include "report_impl.h"
#include "sattn/genbench.h"

#define GEN_MAX_SHOWN 16

typedef struct {
    const bench_row **rows; /* the generation rows ("gen-" variants), by T */
    int n, n_names;
    char names[GEN_MAX_SHOWN][REPORT_NAME_LEN];
} gen_view;

static int by_T(const void *a, const void *b) {
    const bench_row *x = *(const bench_row *const *)a, *y = *(const bench_row *const *)b;
    return x->T - y->T;
}

static int gen_select(const report_config *c, const bench_table *t, gen_view *gv, sattn_err *e) {
    gv->rows = xmalloc(sizeof(bench_row *) * ((size_t)t->n + 1));
    gv->n = gv->n_names = 0;
    for (int i = 0; i < t->n; i++) {
        const bench_row *w = &t->rows[i];
        if (strncmp(w->variant, "gen-", 4)) continue;
        gv->rows[gv->n++] = w;
        int j = 0;
        while (j < gv->n_names && strcmp(gv->names[j], w->variant)) j++;
        if (j < gv->n_names) continue;
        if (j == GEN_MAX_SHOWN)
            return err_set(e, "%s: more than %d generation variants, expected at most %d", c->generate, GEN_MAX_SHOWN,
                           GEN_MAX_SHOWN);
        snprintf(gv->names[gv->n_names++], REPORT_NAME_LEN, "%s", w->variant);
    }
    qsort(gv->rows, (size_t)gv->n, sizeof *gv->rows, by_T);
    return 0;
}

/* Black for the dense cache, grey dashed for the recompute, a colour per sparse plan. */
static void gen_style(const char *name, int i, char *buf, size_t n) {
    static const char *const COL[] = {"#1f5fbf", "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e"};
    if (!strcmp(name, "gen-dense")) snprintf(buf, n, "lw 2 lc rgb '#000000' dt 1");
    else if (!strncmp(name, "gen-recompute", 13))
        snprintf(buf, n, "lw 2 lc rgb '%s' dt 2", strstr(name, "naive") ? "#888888" : "#444444");
    else snprintf(buf, n, "lw 2 lc rgb '%s' dt 1", COL[i % 6]);
}

/* Datablock $g<i>: (T, milliseconds) of variant i in the phase; returns its row count. */
static int gen_block(sbuf *g, const gen_view *gv, int i, int phase) {
    int m = 0;
    sb_printf(g, "$g%d << EOD\n", i);
    for (int j = 0; j < gv->n; j++) {
        const bench_row *w = gv->rows[j];
        if (w->phase != phase || strcmp(w->variant, gv->names[i])) continue;
        sb_printf(g, "%d %.6g\n", w->T, w->median_s * 1e3);
        m++;
    }
    sb_printf(g, "EOD\n");
    return m;
}

static int gen_plot(report_ctx *r, const gen_view *gv, int phase, sattn_err *e) {
    const char *name = phase == BENCH_DECODE ? "generate_decode" : "generate_prefill";
    sbuf g = {0};
    rp_plot_begin(&g, name,
                  phase == BENCH_DECODE ? "Generation: time per new token (KV cache vs recompute)"
                                        : "Generation: prefill of the context",
                  "context T (tokens)", phase == BENCH_DECODE ? "ms per token" : "prefill (ms)", "xy", "%g");
    int have[GEN_MAX_SHOWN] = {0}, any = 0;
    for (int i = 0; i < gv->n_names; i++) have[i] = gen_block(&g, gv, i, phase) > 0;
    sb_printf(&g, "plot ");
    for (int i = 0; i < gv->n_names; i++) {
        if (!have[i]) continue;
        char st[96];
        gen_style(gv->names[i], i, st, sizeof st);
        sb_printf(&g, "%s$g%d using 1:2 with linespoints pt 7 ps 0.8 %s title ", any ? ", \\\n     " : "", i, st);
        rp_gp_str(&g, gv->names[i] + 4);
        any = 1;
    }
    sb_printf(&g, "%s\n", any ? "" : "1/0 notitle");
    int rc = any ? rp_plot_render(r, name, &g, e) : 0;
    sb_free(&g);
    if (rc) return -1;
    if (any)
        sb_printf(&r->md, "![%s](%s.png)\n\n%s\n\n", name, name,
                  phase == BENCH_DECODE
                      ? "Median time per generated token, log–log: the cached decode step (dense, each sparse "
                        "plan) grows linearly in T (slope 1 on these axes once attention dominates), the "
                        "recompute (one forward of the whole window per token) quadratically."
                      : "Median time of one prefill of T tokens (a plan's prefill is its hybrid forward, naive "
                        "attention for the dense heads; missing where that did not fit the memory limit).");
    return 0;
}

/* Per cached variant the line a + b T (genbench.h's gb_fit) and the recompute's ratio. */
static void gen_fits(report_ctx *r, const gen_view *gv, const bench_table *t) {
    sb_printf(&r->md, "| variant | decode rows | a (ms) | b (ms per 1K context) | speedup over the naive recompute |\n"
                      "|---|---|---|---|---|\n");
    for (int i = 0; i < gv->n_names; i++) {
        double a, b;
        int cnt;
        if (!strncmp(gv->names[i], "gen-recompute", 13) || gb_fit(t->rows, t->n, gv->names[i], &a, &b, &cnt)) continue;
        sb_printf(&r->md, "| %s | %d | %.3f | %.3f | ", gv->names[i], cnt, a * 1e3, b * 1e6);
        int first = 1;
        for (int j = 0; j < gv->n; j++) {
            const bench_row *w = gv->rows[j];
            if (w->phase != BENCH_DECODE || strcmp(w->variant, gv->names[i])) continue;
            double rec = gb_decode_at(t->rows, t->n, "gen-recompute-naive", w->T);
            if (rec > 0) sb_printf(&r->md, "%sT=%d: %.0fx", first ? "" : ", ", w->T, rec / w->median_s), first = 0;
        }
        sb_printf(&r->md, "%s |\n", first ? "-" : "");
    }
    sb_printf(&r->md, "\n");
}

static void gen_table(report_ctx *r, const gen_view *gv) {
    sb_printf(&r->md, "| variant | phase | T | k | median (ms) | GFLOP/s (dense-equivalent) | CPU pressure avg10 |\n"
                      "|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < gv->n_names; i++)
        for (int j = 0; j < gv->n; j++) {
            const bench_row *w = gv->rows[j];
            if (strcmp(w->variant, gv->names[i])) continue;
            char pr[24] = "-";
            if (w->cpu_pressure >= 0) snprintf(pr, sizeof pr, "%.2f", w->cpu_pressure);
            sb_printf(&r->md, "| %s | %s | %d | %d | %.4g | %.3g | %s |\n", w->variant, bench_phase_name(w->phase), w->T,
                      w->k, w->median_s * 1e3, w->gflops, pr);
        }
    sb_printf(&r->md, "\n");
}

int rp_generate_section(report_ctx *r, const bench_table *t, sattn_err *e) {
    gen_view gv;
    if (gen_select(r->c, t, &gv, e)) return free(gv.rows), -1;
    sb_printf(&r->md, "## Generation (`%s`)\n\n`sattn bench-generate` rows (docs/generate.md): %d of %d rows.\n\n",
              r->c->generate, gv.n, t->n);
    int rc = 0;
    if (!gv.n) sb_printf(&r->md, "No generation rows (variants named gen-...).\n\n");
    else rc = gen_plot(r, &gv, BENCH_DECODE, e);
    if (!rc && gv.n) rc = gen_plot(r, &gv, BENCH_PREFILL, e);
    if (!rc && gv.n) gen_fits(r, &gv, t), gen_table(r, &gv);
    free(gv.rows);
    return rc;
}
