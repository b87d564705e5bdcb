#define _POSIX_C_SOURCE 200809L /* PATH_MAX (report_impl.h) under -std=c11 */
/* report_tasks: the retrieval-task section of `sattn report` (report_impl.h): one length x
 * depth heat map of accuracy per task JSON (`sattn task --json`), and its table. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report_impl.h"

/* The distinct lengths and depths of f, ascending (mqar: one NaN depth). */
typedef struct {
    int *len, n_len;
    double *dep;
    int n_dep;
} task_axes;

static int cmp_double_nan(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return isnan(x) ? (isnan(y) ? 0 : 1) : isnan(y) ? -1 : (x > y) - (x < y);
}

static void axes_of(const task_file *f, task_axes *a) {
    a->len = xmalloc(sizeof(int) * (size_t)f->n_cells);
    a->dep = xmalloc(sizeof(double) * (size_t)f->n_cells);
    a->n_len = a->n_dep = 0;
    for (int i = 0; i < f->n_cells; i++) {
        int l = f->cells[i].length, seen = 0;
        double d = f->cells[i].depth;
        for (int j = 0; j < a->n_len; j++) seen |= a->len[j] == l;
        if (!seen) a->len[a->n_len++] = l;
        seen = 0;
        for (int j = 0; j < a->n_dep; j++) seen |= a->dep[j] == d || (isnan(d) && isnan(a->dep[j]));
        if (!seen) a->dep[a->n_dep++] = d;
    }
    qsort(a->len, (size_t)a->n_len, sizeof(int), cmp_int_asc);
    qsort(a->dep, (size_t)a->n_dep, sizeof(double), cmp_double_nan);
}

static void axes_free(task_axes *a) {
    free(a->len);
    free(a->dep);
}

/* The cell of f at (length l, depth d), or NULL. */
static const task_cell *cell_at(const task_file *f, int l, double d) {
    for (int i = 0; i < f->n_cells; i++) {
        const task_cell *c = &f->cells[i];
        if (c->length == l && (c->depth == d || (isnan(c->depth) && isnan(d)))) return c;
    }
    return NULL;
}

/* Tic labels from numbers only (no text from the file reaches the script here). */
static void tics(sbuf *g, const task_axes *a) {
    sb_printf(g, "set xtics (");
    for (int j = 0; j < a->n_dep; j++)
        if (isnan(a->dep[j])) sb_printf(g, "%s'all' %d", j ? ", " : "", j);
        else sb_printf(g, "%s'%.2f' %d", j ? ", " : "", a->dep[j], j);
    sb_printf(g, ")\nset ytics (");
    for (int i = 0; i < a->n_len; i++) sb_printf(g, "%s'%d' %d", i ? ", " : "", a->len[i], i);
    sb_printf(g, ")\n");
}

/* x: depth index, y: length index; colour and label: accuracy; a missing cell is white, "-". */
static int task_heatmap(report_ctx *r, const task_file *f, const task_axes *a, sattn_err *e) {
    char name[REPORT_NAME_LEN + 16], title[256];
    snprintf(name, sizeof name, "task_%s", f->name);
    int mqar = !strcmp(f->task, "mqar");
    snprintf(title, sizeof title, "%s accuracy by context length%s: %s", f->task, mqar ? "" : " and needle depth",
             f->name);
    sbuf g = {0};
    rp_plot_begin(&g, name, title, mqar ? "(no depth: queries follow all pairs)" : "needle depth (0 = start, 1 = end)",
                  "context length T (tokens)", NULL, NULL);
    sb_printf(&g, "set xrange [-0.5:%g]\nset yrange [-0.5:%g]\nset grid front noxtics noytics\nset key off\n",
              a->n_dep - 0.5, a->n_len - 0.5);
    tics(&g, a);
    sb_printf(&g, "set cblabel 'accuracy (%s)'\nset cbrange [0:1]\n"
                  "set palette defined (0 '#b2182b', 0.5 '#fddbc7', 1 '#2166ac')\n$h << EOD\n",
              mqar ? "values right / asked" : "keys right / samples");
    for (int i = 0; i < a->n_len; i++)
        for (int j = 0; j < a->n_dep; j++) {
            const task_cell *c = cell_at(f, a->len[i], a->dep[j]);
            if (c) sb_printf(&g, "%d %d %.6g %.2f\n", j, i, c->accuracy, c->accuracy);
            else sb_printf(&g, "%d %d NaN -\n", j, i);
        }
    sb_printf(&g, "EOD\nplot $h using 1:2:(0.5):(0.5):3 with boxxyerror fs solid 1.0 noborder lc palette notitle, "
                  "$h using 1:2:4 with labels font ',10' notitle\n");
    int rc = rp_plot_render(r, name, &g, e);
    sb_free(&g);
    return rc;
}

/* The same grid as a table: lengths down, depths across, then the pooled accuracy. */
static void task_table(report_ctx *r, const task_file *f, const task_axes *a) {
    sb_printf(&r->md, "| T \\ depth |");
    for (int j = 0; j < a->n_dep; j++)
        if (isnan(a->dep[j])) sb_printf(&r->md, " all |");
        else sb_printf(&r->md, " %.2f |", a->dep[j]);
    sb_printf(&r->md, " pooled |\n|---|");
    for (int j = 0; j <= a->n_dep; j++) sb_printf(&r->md, "---|");
    sb_printf(&r->md, "\n");
    for (int i = 0; i < a->n_len; i++) {
        long right = 0, asked = 0;
        sb_printf(&r->md, "| %d |", a->len[i]);
        for (int j = 0; j < a->n_dep; j++) {
            const task_cell *c = cell_at(f, a->len[i], a->dep[j]);
            if (c) sb_printf(&r->md, " %.2f |", c->accuracy), right += c->correct, asked += c->answers;
            else sb_printf(&r->md, " – |");
        }
        sb_printf(&r->md, " %.3f (%ld/%ld) |\n", (double)right / (double)asked, right, asked);
    }
    sb_printf(&r->md, "\n");
}

int rp_task_section(report_ctx *r, const task_file *f, int n, sattn_err *e) {
    sb_printf(&r->md, "## Retrieval tasks\n\nFrom `sattn task --json` (docs/tasks.md). Passkey and needle: the "
                      "fraction of samples whose 5-digit key the model predicts in full (teacher-forced "
                      "argmax = greedy exact match); mqar: the fraction of queried values predicted.\n\n");
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        task_axes a;
        axes_of(&f[i], &a);
        rc = task_heatmap(r, &f[i], &a, e);
        if (!rc) {
            sb_printf(&r->md, "### %s (%s)\n\n![task_%s](task_%s.png)\n\n", f[i].name, f[i].task, f[i].name,
                      f[i].name);
            task_table(r, &f[i], &a);
        }
        axes_free(&a);
    }
    return rc;
}
