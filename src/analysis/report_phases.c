#define _POSIX_C_SOURCE 200809L /* PATH_MAX (report_impl.h) under -std=c11 */
/* report_phases: the report's per-phase section (`sattn report --phases CSV`, phasetime.h):
 * where a whole-model prefill, decode step or training step spends its time. */
#include <string.h>

#include "report_impl.h"

/* The dense variant's total at (stage, T) in any of the tables, or -1: "gen-dense" for
 * prefill and decode, "train-flash" for a training step. */
static double dense_total(const phase_table *t, int n, int stage, int T) {
    const char *name = stage == PT_TRAIN ? "train-flash" : "gen-dense";
    for (int f = 0; f < n; f++)
        for (int i = 0; i < t[f].n; i++) {
            const phase_row *w = &t[f].rows[i];
            if (w->stage == stage && w->T == T && !strcmp(w->variant, name)) return w->total_s;
        }
    return -1.0;
}

static void pct(sbuf *md, double part, double total) {
    if (part < 0) sb_printf(md, " - |");
    else sb_printf(md, " %.1f %% |", 100.0 * part / total);
}

int rp_phases_section(report_ctx *r, const phase_table *t, int n, sattn_err *e) {
    (void)e;
    sbuf *md = &r->md;
    sb_printf(md, "## Where a step's time goes\n\n`sattn bench-train --plan` and `sattn bench-generate` "
                  "(docs/native_sparse.md, \"End-to-end speed\"): the median whole-model step per stage and "
                  "context, split by the hybrid's timers into the sparse attention's selection (tblock_select "
                  "or the per-head selectors), its head function (forward; backward in a training step) and the "
                  "rest of the model (projections, MLP, norms, logits, optimizer). Dense rows are not split. "
                  "Speedup: the dense variant's median (dense flash) over the row's.\n\n");
    sb_printf(md, "| variant | stage | T | median (ms) | selection | head fn | head fn bwd | rest | speedup |\n"
                  "|---|---|---|---|---|---|---|---|---|\n");
    for (int stage = 0; stage < PT_NSTAGE; stage++)
        for (int f = 0; f < n; f++)
            for (int i = 0; i < t[f].n; i++) {
                const phase_row *w = &t[f].rows[i];
                if (w->stage != stage) continue;
                sb_printf(md, "| %s | %s | %d | %.4g |", w->variant, pt_stage_name(stage), w->T, w->total_s * 1e3);
                pct(md, w->select_s, w->total_s), pct(md, w->head_s, w->total_s);
                pct(md, stage == PT_TRAIN ? w->head_bwd_s : -1.0, w->total_s);
                pct(md, w->select_s < 0 ? -1.0 : w->rest_s, w->total_s);
                double d = dense_total(t, n, stage, w->T);
                if (d > 0 && w->select_s >= 0) sb_printf(md, " %.2fx |\n", d / w->total_s);
                else sb_printf(md, " - |\n");
            }
    sb_printf(md, "\n");
    return 0;
}
