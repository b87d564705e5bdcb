#define _POSIX_C_SOURCE 200809L /* PATH_MAX (report_impl.h) under -std=c11 */
/* report_curves: the training-curve section of `sattn report` (report_impl.h): the loss of
 * each `sattn train --log-csv` run against the tokens it has seen, in one plot (dense and
 * sparse training side by side), and a table of their final validation losses. Labels
 * reach gnuplot only through rp_gp_str. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report_impl.h"

/* The training loss as a trailing moving mean over w steps (a step's loss is one batch:
 * noisy), at every row; the validation points where the log has them. */
static void curve_blocks(sbuf *g, const trainlog *l, int i) {
    int w = l->n / 40 > 1 ? l->n / 40 : 1;
    double sum = 0;
    sb_printf(g, "$t%d << EOD\n", i);
    for (int r = 0; r < l->n; r++) {
        sum += l->rows[r].train_loss;
        if (r >= w) sum -= l->rows[r - w].train_loss;
        int k = r + 1 < w ? r + 1 : w;
        sb_printf(g, "%.6g %.6g\n", l->rows[r].tokens / 1e6, sum / k);
    }
    sb_printf(g, "EOD\n$v%d << EOD\n", i);
    for (int r = 0; r < l->n; r++)
        if (!isnan(l->rows[r].val_loss)) sb_printf(g, "%.6g %.6g\n", l->rows[r].tokens / 1e6, l->rows[r].val_loss);
    sb_printf(g, "EOD\n");
}

static int curve_plot(report_ctx *r, const trainlog *logs, const char *const *labels, int n, sattn_err *e) {
    sbuf g = {0};
    rp_plot_begin(&g, "train_curves", "Training: loss vs tokens seen (lines: training loss, moving mean; "
                  "points: validation)", "tokens seen (millions)", "loss (nats per token)", NULL, "%g");
    for (int i = 0; i < n; i++) curve_blocks(&g, &logs[i], i);
    sb_printf(&g, "plot ");
    for (int i = 0; i < n; i++) {
        sb_printf(&g, "%s$t%d using 1:2 with lines lw 2 lc %d title ", i ? ", \\\n     " : "", i, i + 1);
        rp_gp_str(&g, labels[i]);
        sb_printf(&g, ", $v%d using 1:2 with points pt 7 ps 1.2 lc %d notitle", i, i + 1);
    }
    sb_printf(&g, "\n");
    int rc = rp_plot_render(r, "train_curves", &g, e);
    sb_free(&g);
    return rc;
}

/* The last validation value of a log (its final loss over the whole split), or NaN. */
static double final_val(const trainlog *l) {
    for (int r = l->n - 1; r >= 0; r--)
        if (!isnan(l->rows[r].val_loss)) return l->rows[r].val_loss;
    return NAN;
}

static void curve_table(report_ctx *r, const trainlog *logs, const char *const *labels, const char *const *paths,
                        int n) {
    double ref = final_val(&logs[0]);
    sb_printf(&r->md, "| run | log | steps | tokens | final validation loss | × the first run | tokens/s |\n"
                      "|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        const trainlog_row *z = &logs[i].rows[logs[i].n - 1];
        double v = final_val(&logs[i]);
        sb_printf(&r->md, "| ");
        sb_escaped(&r->md, labels[i]);
        sb_printf(&r->md, " | `");
        sb_escaped(&r->md, paths[i]);
        sb_printf(&r->md, "` | %d | %.0f | %.4f | %.4f | %.0f |\n", z->step, z->tokens, v, v / ref,
                  z->wall_s > 0 ? z->tokens / z->wall_s : 0);
    }
    sb_printf(&r->md, "\n");
}

int rp_curves_section(report_ctx *r, const trainlog *logs, const char *const *labels, const char *const *paths, int n,
                      sattn_err *e) {
    sb_printf(&r->md, "## Training curves\n\nFrom `sattn train --log-csv` (one row per step; docs/report.md). "
                      "The final validation loss is the last row's (the whole validation split); runs "
                      "compared this way should share the data, the seed and the tokens per step.\n\n");
    if (curve_plot(r, logs, labels, n, e)) return -1;
    sb_printf(&r->md, "![train_curves](train_curves.png)\n\n");
    curve_table(r, logs, labels, paths, n);
    return 0;
}
