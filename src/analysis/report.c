#define _POSIX_C_SOURCE 200809L /* PATH_MAX (report_impl.h) under -std=c11 */
/* report: `sattn report`'s driver (sattn/report.h, docs/report.md): the inputs read
 * (bench CSV: benchres.h; eval JSON: eval_json.h), the plans' relative FLOPs, and
 * report.md with its plots written into a temporary folder and renamed into place.
 * The parts: report_impl.h. */
#include <stdlib.h>
#include <string.h>

#include "report_impl.h"
#include "sattn/costmodel.h"
#include "sattn/plan.h"

int rp_spec_of(const char *text, head_spec *s, sattn_err *e) {
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
        if (rp_spec_of(f->heads[i].spec, &s, e)) return -1;
        total += head_attention_flops(&s, d, m->T) - one;
    }
    *rel = total / (one * m->L * m->H);
    return 0;
}

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

/* Reads every input before anything is written, so a bad input leaves no output. */
static int read_inputs(const report_config *c, bench_table *bt, bench_table *gt, eval_file *ev, sattn_err *e) {
    bt->n = 0, bt->rows = NULL, gt->n = 0, gt->rows = NULL;
    if (c->bench && bench_csv_read(c->bench, bt, e)) return -1;
    if (c->generate && bench_csv_read(c->generate, gt, e)) return bench_table_free(bt), -1;
    for (int i = 0; i < c->n_evals; i++) {
        double rel;
        if (eval_json_read(c->evals[i], &ev[i], e) || (eval_relative_flops(&ev[i], &c->model, &rel, e) &&
                                                       (eval_file_free(&ev[i]), 1))) {
            while (i--) eval_file_free(&ev[i]);
            return bench_table_free(bt), bench_table_free(gt), -1;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(ev[i].name, ev[j].name)) {
                err_set(e, "%s: its name '%s' repeats %s's (the heat maps are named after it)", c->evals[i],
                        ev[i].name, c->evals[j]);
                for (int k = 0; k <= i; k++) eval_file_free(&ev[k]);
                return bench_table_free(bt), bench_table_free(gt), -1;
            }
    }
    return 0;
}

/* The task JSONs, read before anything is written; names must differ (they name the plots). */
static int read_tasks(const report_config *c, task_file *tf, sattn_err *e) {
    for (int i = 0; i < c->n_tasks; i++) {
        int rc = eval_json_task_read(c->tasks[i], &tf[i], e);
        for (int j = 0; j < i && !rc; j++)
            if (!strcmp(tf[i].name, tf[j].name))
                rc = err_set(e, "%s: its name '%s' repeats %s's (the heat maps are named after it)", c->tasks[i],
                             tf[i].name, c->tasks[j]), eval_json_task_free(&tf[i]);
        if (rc) {
            while (i--) eval_json_task_free(&tf[i]);
            return -1;
        }
    }
    return 0;
}

/* The training logs: "LABEL=CSV" (LABEL without '/') or "CSV", whose label is then its file
 * name; read before anything is written. */
typedef struct {
    trainlog *logs;
    char **labels;
    const char **paths;
    int n;
} curve_inputs;

static void curves_free(curve_inputs *ci) {
    for (int i = 0; i < ci->n; i++) trainlog_free(&ci->logs[i]), free(ci->labels[i]);
    free(ci->logs), free(ci->labels), free(ci->paths);
    memset(ci, 0, sizeof *ci);
}

static int read_curves(const report_config *c, curve_inputs *ci, sattn_err *e) {
    int n = c->n_train_logs;
    ci->logs = xcalloc((size_t)(n ? n : 1), sizeof *ci->logs);
    ci->labels = xcalloc((size_t)(n ? n : 1), sizeof *ci->labels);
    ci->paths = xcalloc((size_t)(n ? n : 1), sizeof *ci->paths);
    ci->n = 0;
    for (int i = 0; i < n; i++) {
        const char *t = c->train_logs[i], *eq = strchr(t, '=');
        int labelled = eq && eq > t && !memchr(t, '/', (size_t)(eq - t));
        const char *path = labelled ? eq + 1 : t, *base = strrchr(path, '/');
        size_t ll = labelled ? (size_t)(eq - t) : strlen(base ? base + 1 : path);
        if (trainlog_read(path, &ci->logs[i], e)) return curves_free(ci), -1;
        ci->labels[i] = xmalloc(ll + 1);
        memcpy(ci->labels[i], labelled ? t : base ? base + 1 : path, ll);
        ci->labels[i][ll] = '\0';
        ci->paths[i] = path;
        ci->n = i + 1;
    }
    return 0;
}

static int write_sections(report_ctx *r, const bench_table *bt, const bench_table *gt, const eval_file *ev,
                          const task_file *tf, const curve_inputs *ci, sattn_err *e) {
    const report_config *c = r->c;
    sb_printf(&r->md, "# sattn report\n\nWritten by `sattn report` (docs/report.md). Inputs: the analytic "
                      "cost model at C = %d, H = %d, k = %d", c->C, c->H, c->k);
    if (c->bench) sb_printf(&r->md, "; benchmark `%s`", c->bench);
    if (c->generate) sb_printf(&r->md, "; generation benchmark `%s`", c->generate);
    for (int i = 0; i < c->n_evals; i++) sb_printf(&r->md, "%s`%s`", i ? ", " : "; eval ", c->evals[i]);
    for (int i = 0; i < c->n_tasks; i++) sb_printf(&r->md, "%s`%s`", i ? ", " : "; task ", c->tasks[i]);
    for (int i = 0; i < ci->n; i++) sb_printf(&r->md, "%s`%s`", i ? ", " : "; training logs ", ci->paths[i]);
    sb_printf(&r->md, ". Each plot's gnuplot script (data included) is beside it as NAME.gp.\n\n");
    if (rp_analytic_section(r, e)) return -1;
    if (c->bench && rp_bench_section(r, bt, e)) return -1;
    if (c->generate && rp_generate_section(r, gt, e)) return -1;
    if (c->n_evals && rp_eval_section(r, ev, c->n_evals, e)) return -1;
    if (c->n_tasks && rp_task_section(r, tf, c->n_tasks, e)) return -1;
    if (ci->n && rp_curves_section(r, ci->logs, (const char *const *)ci->labels, ci->paths, ci->n, e)) return -1;
    return rp_write_file(r, "report.md", &r->md, e);
}

int report_write(const report_config *c, sattn_err *e) {
    char target[PATH_MAX];
    if (check_config(c, e) || rp_target_of(c->out_dir, target, sizeof target, e)) return -1;
    report_ctx r = {.c = c};
    if (rp_find_gnuplot(c->gnuplot ? c->gnuplot : "gnuplot", r.gnuplot, sizeof r.gnuplot))
        return err_set(e, "gnuplot not found ('%s'): install it with `apt-get install gnuplot-nox` "
                          "(or run scripts/deps.sh)", c->gnuplot ? c->gnuplot : "gnuplot");
    bench_table bt, gt;
    eval_file *ev = xcalloc((size_t)(c->n_evals ? c->n_evals : 1), sizeof(eval_file));
    if (read_inputs(c, &bt, &gt, ev, e)) return free(ev), -1;
    task_file *tf = xcalloc((size_t)(c->n_tasks ? c->n_tasks : 1), sizeof(task_file));
    curve_inputs ci = {0};
    int exists = 0, rc = read_tasks(c, tf, e) ? -1 : rp_check_target(target, &exists, e);
    if (!rc) rc = read_curves(c, &ci, e);
    if (!rc) rc = rp_make_temp_dir(target, r.dir, sizeof r.dir, e);
    if (!rc) {
        if (write_sections(&r, &bt, &gt, ev, tf, &ci, e)) rc = -1, rp_remove_dir(r.dir, 0);
        else rc = rp_install_dir(r.dir, target, exists, e);
    }
    sb_free(&r.md);
    for (int i = 0; i < c->n_evals; i++) eval_file_free(&ev[i]);
    free(ev);
    for (int i = 0; i < c->n_tasks; i++) eval_json_task_free(&tf[i]); /* freed ones are empty */
    free(tf);
    curves_free(&ci);
    bench_table_free(&bt);
    bench_table_free(&gt);
    return rc;
}
