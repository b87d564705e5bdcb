#define _POSIX_C_SOURCE 200809L /* PATH_MAX (report_impl.h) under -std=c11 */
/* report_sections: the sections of report.md and their plots (report_impl.h): the
 * analytic cost model, the measured benchmark with its crossovers, the quality of the
 * eval files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report_impl.h"
#include "sattn/costmodel.h"
#include "sattn/crossover.h"

/* 1234567 -> "1.23M" */
static const char *si(double x, char *buf) {
    static const char *u[] = {"", "K", "M", "G", "T", "P", "E"};
    int i = 0;
    while (fabs(x) >= 1000 && i < 6) x /= 1000, i++;
    snprintf(buf, 24, i ? "%.3g%s" : "%.3g%s", x, u[i]);
    return buf;
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
        rp_style_of(v[i].name, st, sizeof st);
        rp_short_name(v[i].name, nm, sizeof nm);
        if (i == 1 && flash_label) snprintf(nm, sizeof nm, "%s", flash_label);
        sb_printf(g, "%s$v%d using 1:2 with lines %s title ", first ? "" : ", \\\n     ", i, st);
        rp_gp_str(g, nm);
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
    rp_plot_begin(&g, "flops", title, "sequence length T (tokens)", "attention FLOPs per layer (FLOP)", "xy", "%.0s%c");
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
    int rc = rp_plot_render(r, "flops", &g, e);
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
    rp_plot_begin(&g, name, title, "sequence length T (tokens)",
                  what == 1 ? "peak activation memory (bytes)" : "dense-flash FLOPs / variant FLOPs (x)", "xy",
                  what == 1 ? "%.0s%cB" : "%g");
    int use[8];
    for (int i = 0; i < n; i++) {
        use[i] = what == 1 || i >= 2; /* flash over itself is the break-even line */
        analytic_block(&g, c, &v[i], i, what);
    }
    plot_variants(&g, v, use, n, NULL, what == 2 ? "1 with lines lw 2 lc rgb '#cc0000' dt 2 title 'break-even (1x)'" : NULL);
    int rc = rp_plot_render(r, name, &g, e);
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

int rp_analytic_section(report_ctx *r, sattn_err *e) {
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
            rp_short_name(std[i].name, nm, sizeof nm);
            if (!strcmp(nm, name)) return *v = std[i], 0;
        }
    }
    head_spec s;
    sattn_err e;
    if (rp_spec_of(name, &s, &e) || s.sel == SEL_DENSE) return -1;
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

/* Datablock $b<i> of (T, y) for variant i in the phase; returns its row count. */
static int bench_block(sbuf *g, const bench_view *bv, int i, int phase, int speedup) {
    int m = 0;
    sb_printf(g, "$b%d << EOD\n", i);
    for (int j = 0; j < bv->n; j++) {
        const bench_row *w = bv->rows[j];
        if (w->phase != phase || strcmp(w->variant, bv->names[i]) || (speedup && w->speedup_vs_flash <= 0))
            continue; /* bench writes speedup -1 where dense-flash has no row */
        sb_printf(g, "%d %.6g\n", w->T, speedup ? w->speedup_vs_flash : w->median_s);
        m++;
    }
    sb_printf(g, "EOD\n");
    return m;
}

/* Measured T* of (name, phase) among the shown rows: xover_series_T's from-then-on rule. */
static int measured_crossover(const bench_view *bv, const char *name, int phase) {
    int *T = xmalloc(((size_t)bv->n + 1) * sizeof(int)), n = 0;
    double *sp = xmalloc(((size_t)bv->n + 1) * sizeof(double));
    for (int j = 0; j < bv->n; j++) {
        const bench_row *w = bv->rows[j];
        if (w->phase == phase && !strcmp(w->variant, name)) T[n] = w->T, sp[n++] = w->speedup_vs_flash;
    }
    int t = xover_series_T(T, sp, n);
    free(T), free(sp);
    return t;
}

/* Datablock $x: each sparse variant's measured T* in this phase, at its y (time or
 * speedup) there, so the plots mark where sparse starts winning; returns the count. */
static int crossover_marks(sbuf *g, const bench_view *bv, int phase, int speedup) {
    int m = 0;
    sb_printf(g, "$x << EOD\n");
    for (int i = 0; i < bv->n_names; i++) {
        if (is_dense_name(bv->names[i])) continue;
        int t = measured_crossover(bv, bv->names[i], phase);
        for (int j = 0; j < bv->n && t > 0; j++) {
            const bench_row *w = bv->rows[j];
            if (w->phase != phase || w->T != t || strcmp(w->variant, bv->names[i])) continue;
            sb_printf(g, "%d %.6g T*=%d\n", t, speedup ? w->speedup_vs_flash : w->median_s, t);
            m++;
            break;
        }
    }
    sb_printf(g, "EOD\n");
    return m;
}

static int bench_plot(report_ctx *r, const bench_view *bv, int phase, int speedup, sattn_err *e) {
    static const char *const WHAT[3] = {"prefill of T tokens", "one decode step with a KV cache of T",
                                        "backward of a prefill of T tokens"};
    char name[64], title[256];
    snprintf(name, sizeof name, "bench_%s%s", speedup ? "speedup_" : "", bench_phase_name(phase));
    snprintf(title, sizeof title, "%s, %s (measured; C=%d, H=%d, k=%d)",
             speedup ? "Speedup over dense-flash" : "Wall time of one attention layer",
             WHAT[phase], bv->C, bv->H, r->c->k);
    sbuf g = {0};
    rp_plot_begin(&g, name, title, "sequence length T (tokens)",
                  speedup ? "dense-flash time / variant time (x)" : "median wall time (s)", "xy", "%g");
    int have[MAX_SHOWN] = {0}, any = 0;
    for (int i = 0; i < bv->n_names; i++)
        have[i] = (!speedup || !is_dense_name(bv->names[i])) && bench_block(&g, bv, i, phase, speedup) > 0;
    int marks = crossover_marks(&g, bv, phase, speedup); /* datablocks precede the plot command */
    sb_printf(&g, "plot ");
    for (int i = 0; i < bv->n_names; i++) {
        if (!have[i]) continue;
        char st[96], nm[REPORT_NAME_LEN];
        rp_style_of(bv->names[i], st, sizeof st);
        rp_short_name(bv->names[i], nm, sizeof nm);
        sb_printf(&g, "%s$b%d using 1:2 with linespoints pt 7 ps 0.8 %s title ", any ? ", \\\n     " : "", i, st);
        rp_gp_str(&g, nm);
        any = 1;
    }
    if (any && marks)
        sb_printf(&g, ", $x using 1:2 with points pt 6 ps 2.5 lw 2 lc rgb 'red' title 'measured crossover T*'");
    sb_printf(&g, "%s%s\n", any ? ", " : "", speedup ? "1 with lines lw 2 lc rgb '#cc0000' dt 2 title 'break-even (1x)'"
                                                      : "1/0 notitle");
    int rc = any ? rp_plot_render(r, name, &g, e) : 1;
    sb_free(&g);
    if (rc == 1) return 0; /* nothing measured in this phase */
    if (rc) return -1;
    static const char *const TIME_OF[3] = {"one layer's prefill", "one decode step", "one layer's backward"};
    if (speedup)
        sb_printf(&r->md, "![%s](%s.png)\n\nMeasured %s speedup over dense-flash per T; above the dashed "
                          "line sparse is faster.\n\n", name, name, bench_phase_name(phase));
    else
        sb_printf(&r->md, "![%s](%s.png)\n\nMeasured wall time of %s (median of the runs), log–log; red "
                          "circles mark each sparse variant's measured crossover T*.\n\n", name, name,
                  TIME_OF[phase]);
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
                rp_short_name(bv->names[i], nm, sizeof nm);
                char st[96], title[REPORT_NAME_LEN + 16];
                rp_style_of(bv->names[i], st, sizeof st);
                snprintf(title, sizeof title, "%s, %s", nm, dec ? "decode" : "prefill");
                sb_printf(&pts, "%d %d\n", ta, tm);
                sb_printf(&series, "$c every ::%d::%d using 1:2 with points pt %d ps 1.8 %s title ", npts, npts,
                          dec ? 5 : 7, st);
                rp_gp_str(&series, title);
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
        rp_plot_begin(&g, "crossover", "Crossover T*: analytic (FLOPs) vs measured (wall time)",
                      "analytic T* (tokens)", "measured T* (tokens)", "xy", "%g");
        sb_printf(&g, "$c << EOD\n%sEOD\nset xrange [%g:%g]\nset yrange [%g:%g]\nset size ratio -1\n", pts.s,
                  lo / 3, hi * 3, lo / 3, hi * 3);
        sb_printf(&g, "plot %sx with lines lw 2 lc rgb '#888888' dt 3 title 'measured = analytic'\n", series.s);
        rc = rp_plot_render(r, "crossover", &g, e);
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
                if (w->phase != dec || strcmp(w->variant, bv->names[i])) continue;
                char b[24], sp[24] = "-", pr[24] = "-"; /* bench writes -1 for "not available" */
                if (w->speedup_vs_flash > 0) snprintf(sp, sizeof sp, "%.3f", w->speedup_vs_flash);
                if (w->cpu_pressure >= 0) snprintf(pr, sizeof pr, "%.2f", w->cpu_pressure);
                sb_printf(&r->md, "| %s | %s | %d | %.4g | %.3g | %s | %sB | %s |\n", w->variant,
                          bench_phase_name(dec), w->T, w->median_s, w->gflops, sp, si(w->peak_bytes, b), pr);
            }
    sb_printf(&r->md, "\n");
}

int rp_bench_section(report_ctx *r, const bench_table *t, sattn_err *e) {
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
    rp_plot_begin(&g, name, title, "head", "layer", NULL, NULL);
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
    int rc = rp_plot_render(r, name, &g, e);
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
    rp_plot_begin(&g, "pareto", title, "attention FLOPs of the plan / dense attention FLOPs (x)",
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
    int rc = rp_plot_render(r, "pareto", &g, e);
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

int rp_eval_section(report_ctx *r, const eval_file *f, int n, sattn_err *e) {
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
