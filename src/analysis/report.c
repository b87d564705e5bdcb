/* report: report.md and gnuplot PNGs from the cost model, a bench CSV and eval JSONs
 * (sattn/report.h, docs/report.md). */
#define _GNU_SOURCE
#include "sattn/report.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sattn/autoplan.h"
#include "sattn/costmodel.h"
#include "sattn/crossover.h"
#include "sattn/plan.h"

extern char **environ;

/* ------------------------------------------------------------ string buffer ---- */

/* 1234567 -> "1.23M" */
static const char *si(double x, char *buf) {
    static const char *u[] = {"", "K", "M", "G", "T", "P", "E"};
    int i = 0;
    while (fabs(x) >= 1000 && i < 6) x /= 1000, i++;
    snprintf(buf, 24, i ? "%.3g%s" : "%.3g%s", x, u[i]);
    return buf;
}

/* ---------------------------------------------------------------- bench CSV ---- */

static const char *const BENCH_COLS[] = {"variant", "phase", "C", "H", "T", "k", "median_s",
                                         "gflops", "speedup_vs_flash", "peak_bytes",
                                         "cpu_pressure_avg10"};
#define BENCH_NCOLS 11

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

static int check_header(char *line, const char *path, sattn_err *e) {
    char *f[BENCH_NCOLS + 1];
    int n = split_commas(line, f, BENCH_NCOLS + 1);
    for (int i = 0; i < BENCH_NCOLS; i++) {
        if (i >= n) return err_set(e, "%s:1: header: missing column '%s'", path, BENCH_COLS[i]);
        if (strcmp(f[i], BENCH_COLS[i]))
            return err_set(e, "%s:1: header: column %d is '%s', expected '%s'", path, i + 1, f[i],
                           BENCH_COLS[i]);
    }
    if (n > BENCH_NCOLS)
        return err_set(e, "%s:1: header: %d columns, expected %d (%s ... %s)", path, n, BENCH_NCOLS,
                       BENCH_COLS[0], BENCH_COLS[BENCH_NCOLS - 1]);
    return 0;
}

static int parse_num(const char *s, double *out) {
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return end == s || *end || errno || !isfinite(*out) ? -1 : 0;
}

static int parse_row(char *line, bench_row *r, const char *path, int ln, sattn_err *e) {
    char *f[BENCH_NCOLS + 1];
    int n = split_commas(line, f, BENCH_NCOLS + 1);
    if (n != BENCH_NCOLS)
        return err_set(e, "%s:%d: %d fields, expected %d", path, ln, n, BENCH_NCOLS);
    if (!*f[0] || strlen(f[0]) >= REPORT_NAME_LEN)
        return err_set(e, "%s:%d: column 'variant': empty or longer than %d", path, ln, REPORT_NAME_LEN - 1);
    snprintf(r->variant, sizeof r->variant, "%s", f[0]);
    static const char *const PH[3] = {"prefill", "decode", "backward"};
    r->decode = -1;
    for (int p = 0; p < 3; p++)
        if (!strcmp(f[1], PH[p])) r->decode = p;
    if (r->decode < 0)
        return err_set(e, "%s:%d: column 'phase': '%s', expected 'prefill', 'decode' or 'backward'", path, ln, f[1]);
    double v[BENCH_NCOLS];
    for (int i = 2; i < BENCH_NCOLS; i++)
        if (parse_num(f[i], &v[i]) || (i <= 5 && (v[i] != floor(v[i]) || v[i] < 0 || v[i] > 1 << 30)))
            return err_set(e, "%s:%d: column '%s': '%s' is not a %s", path, ln, BENCH_COLS[i], f[i],
                           i <= 5 ? "non-negative integer" : "number");
    r->C = (int)v[2], r->H = (int)v[3], r->T = (int)v[4], r->k = (int)v[5];
    r->median_s = v[6], r->gflops = v[7], r->speedup_vs_flash = v[8], r->peak_bytes = v[9];
    r->cpu_pressure = v[10];
    return 0;
}

int bench_csv_read(const char *path, bench_table *t, sattn_err *e) {
    uint8_t *data;
    size_t len;
    t->n = 0, t->rows = NULL;
    if (file_read_all(path, &data, &len, e)) return -1;
    if (!len) return free(data), err_set(e, "%s:1: empty file, expected the header", path);
    char *text = xmalloc(len + 1);
    memcpy(text, data, len);
    text[len] = 0;
    free(data);
    int lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    t->rows = xmalloc(sizeof(bench_row) * (size_t)lines);
    int ln = 0, rc = 0;
    for (char *p = text, *nl; p && !rc; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl) *nl = 0;
        size_t l = strlen(p);
        if (l && p[l - 1] == '\r') p[--l] = 0;
        ln++;
        if (ln == 1) rc = check_header(p, path, e);
        else if (l) rc = parse_row(p, &t->rows[t->n++], path, ln, e);
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

/* ---------------------------------------------------------------- eval JSON ---- */

/* A minimal reader for the JSON `sattn eval --json` prints: objects, arrays, strings,
 * numbers, literals; errors carry the line. */
typedef struct {
    const char *s, *p, *path;
    sattn_err *e;
} jp;

static int jp_fail(jp *j, const char *what) {
    int line = 1;
    for (const char *q = j->s; q < j->p; q++) line += *q == '\n';
    return err_set(j->e, "%s:%d: %s", j->path, line, what);
}

static void jp_ws(jp *j) {
    while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r') j->p++;
}

static int jp_lit(jp *j, char c) {
    jp_ws(j);
    if (*j->p != c) {
        char msg[48];
        snprintf(msg, sizeof msg, "expected '%c'", c);
        return jp_fail(j, msg);
    }
    j->p++;
    return 0;
}

static int jp_string(jp *j, char *buf, size_t n) {
    if (jp_lit(j, '"')) return -1;
    size_t o = 0;
    while (*j->p && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\') {
            if (!*j->p) break;
            c = *j->p++;
            if (c == 'n') c = '\n';
            else if (c == 't') c = '\t';
            else if (c == 'u') c = '?', j->p += strnlen(j->p, 4) < 4 ? strnlen(j->p, 4) : 4;
        }
        if (o + 1 < n) buf[o++] = c;
    }
    if (n) buf[o] = 0;
    return *j->p == '"' ? (j->p++, 0) : jp_fail(j, "unterminated string");
}

static int jp_number(jp *j, double *x) {
    jp_ws(j);
    char *end;
    *x = strtod(j->p, &end);
    if (end == j->p) return jp_fail(j, "expected a number");
    j->p = end;
    return 0;
}

static int jp_skip(jp *j);

/* Calls field(j, key, u) for each member; field parses the value. */
static int jp_object(jp *j, int (*field)(jp *, const char *, void *), void *u) {
    if (jp_lit(j, '{')) return -1;
    jp_ws(j);
    if (*j->p == '}') return j->p++, 0;
    for (;;) {
        char key[64];
        if (jp_string(j, key, sizeof key) || jp_lit(j, ':') || field(j, key, u)) return -1;
        jp_ws(j);
        if (*j->p == '}') return j->p++, 0;
        if (jp_lit(j, ',')) return -1;
    }
}

static int skip_field(jp *j, const char *key, void *u) { return jp_skip(j); }

static int jp_array(jp *j, int (*item)(jp *, void *), void *u) {
    if (jp_lit(j, '[')) return -1;
    jp_ws(j);
    if (*j->p == ']') return j->p++, 0;
    for (;;) {
        if (item(j, u)) return -1;
        jp_ws(j);
        if (*j->p == ']') return j->p++, 0;
        if (jp_lit(j, ',')) return -1;
    }
}

static int skip_item(jp *j, void *u) { return jp_skip(j); }

static int jp_skip(jp *j) {
    jp_ws(j);
    char c = *j->p;
    if (c == '{') return jp_object(j, skip_field, NULL);
    if (c == '[') return jp_array(j, skip_item, NULL);
    if (c == '"') {
        char tmp[8];
        return jp_string(j, tmp, sizeof tmp);
    }
    static const char *const lits[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++)
        if (!strncmp(j->p, lits[i], strlen(lits[i]))) return j->p += strlen(lits[i]), 0;
    double x;
    return jp_number(j, &x);
}

typedef struct {
    eval_file *f;
    int cap, seen; /* seen: bit mask of the required fields */
} eval_ctx;

static int head_field(jp *j, const char *key, void *u) {
    eval_head *h = u;
    static const char *const names[] = {"top1", "hit", "recall", "mass", "keys", "rel_err"};
    double *dst[] = {&h->top1, &h->hit, &h->recall, &h->mass, &h->keys, &h->rel_err};
    if (!strcmp(key, "spec")) return jp_string(j, h->spec, sizeof h->spec);
    for (int i = 0; i < 6; i++)
        if (!strcmp(key, names[i])) return jp_number(j, dst[i]);
    if (strcmp(key, "layer") && strcmp(key, "head")) return jp_skip(j);
    double x;
    if (jp_number(j, &x)) return -1;
    if (x < 0 || x > 1 << 20 || x != floor(x)) return jp_fail(j, "layer/head: not a small non-negative integer");
    *(!strcmp(key, "layer") ? &h->layer : &h->head) = (int)x;
    return 0;
}

static int head_item(jp *j, void *u) {
    eval_ctx *c = u;
    if (c->f->n_heads == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->f->heads = xrealloc(c->f->heads, sizeof(eval_head) * (size_t)c->cap);
    }
    eval_head *h = &c->f->heads[c->f->n_heads];
    memset(h, 0, sizeof *h);
    h->layer = h->head = -1;
    if (jp_object(j, head_field, h)) return -1;
    if (h->layer < 0 || h->head < 0 || !h->spec[0]) return jp_fail(j, "a head without layer, head or spec");
    c->f->n_heads++;
    return 0;
}

static int top_field(jp *j, const char *key, void *u) {
    eval_ctx *c = u;
    static const char *const names[] = {"loss_dense", "loss_hybrid", "loss_ratio", "logit_rel_err"};
    double *dst[] = {&c->f->loss_dense, &c->f->loss_hybrid, &c->f->loss_ratio, &c->f->logit_rel_err};
    if (!strcmp(key, "heads")) return c->seen |= 16, jp_array(j, head_item, c);
    for (int i = 0; i < 4; i++)
        if (!strcmp(key, names[i])) return c->seen |= 1 << i, jp_number(j, dst[i]);
    return jp_skip(j);
}

static void eval_name(const char *path, char *name, size_t n) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t l = strlen(b);
    if (l > 5 && !strcmp(b + l - 5, ".json")) l -= 5;
    if (l >= n) l = n - 1;
    for (size_t i = 0; i < l; i++) {
        char c = b[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '.';
        name[i] = ok ? c : '_'; /* the name becomes a file name and a gnuplot label */
    }
    name[l] = 0;
}

int eval_json_read(const char *path, eval_file *f, sattn_err *e) {
    memset(f, 0, sizeof *f);
    uint8_t *data;
    size_t len;
    if (file_read_all(path, &data, &len, e)) return -1;
    char *text = xmalloc(len + 1);
    memcpy(text, data, len);
    text[len] = 0;
    free(data);
    jp j = {text, text, path, e};
    eval_ctx c = {f, 0, 0};
    int rc = jp_object(&j, top_field, &c);
    if (!rc) {
        jp_ws(&j);
        if (*j.p) rc = jp_fail(&j, "trailing text after the JSON object");
    }
    if (!rc && (c.seen & 23) != 23)
        rc = err_set(e, "%s: missing field '%s' (expected `sattn eval --json` output)", path,
                     !(c.seen & 16) ? "heads" : !(c.seen & 1) ? "loss_dense" : !(c.seen & 2) ? "loss_hybrid" : "loss_ratio");
    free(text);
    if (rc) return eval_file_free(f), -1;
    eval_name(path, f->name, sizeof f->name);
    return 0;
}

void eval_file_free(eval_file *f) {
    free(f->heads);
    f->heads = NULL, f->n_heads = 0;
}

static int spec_of(const char *text, head_spec *s, sattn_err *e) {
    char plan[REPORT_NAME_LEN + 8];
    snprintf(plan, sizeof plan, "all:%s", text);
    return plan_parse(plan, NULL, 1, 1, s, e);
}

int eval_relative_flops(const eval_file *f, const report_model *m, double *rel, sattn_err *e) {
    int d = m->C / m->H;
    head_spec dense = head_spec_default();
    double one = head_attention_flops(&dense, d, m->T), total = one * m->L * m->H;
    for (int i = 0; i < f->n_heads; i++) {
        const eval_head *h = &f->heads[i];
        head_spec s;
        if (h->layer >= m->L || h->head >= m->H)
            return err_set(e, "%s: head L%dH%d is outside the model (%d layers, %d heads; see --model-shape)", f->name,
                           h->layer, h->head, m->L, m->H);
        if (spec_of(h->spec, &s, e)) return -1;
        total += head_attention_flops(&s, d, m->T) - one;
    }
    *rel = total / (one * m->L * m->H);
    return 0;
}

/* ------------------------------------------------------------------- gnuplot ---- */

/* The gnuplot program as a path (absolute, or found in PATH) into buf; -1 if none. */
static int find_gnuplot(const char *prog, char *buf, size_t n) {
    if (strchr(prog, '/')) return snprintf(buf, n, "%s", prog), access(buf, X_OK) ? -1 : 0;
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    while (*path) {
        size_t l = strcspn(path, ":");
        snprintf(buf, n, "%.*s/%s", (int)l, path, prog);
        if (l && access(buf, X_OK) == 0) return 0;
        path += l + (path[l] == ':');
    }
    return -1;
}

typedef struct {
    const report_config *c;
    char gnuplot[1024];
    sbuf md;    /* report.md */
    int plots;  /* PNGs written */
} report_ctx;

static void out_path(const report_ctx *r, const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", r->c->out_dir, name);
}

static int write_file(const report_ctx *r, const char *name, const sbuf *b, sattn_err *e) {
    char path[2048];
    out_path(r, name, path, sizeof path);
    afile a;
    if (afile_open(&a, path, e)) return -1;
    if (afile_write(&a, b->s, b->n, e)) return afile_abort(&a), -1;
    return afile_commit(&a, e);
}

/* The script's first lines: terminal, output (a hidden temp name), title, axes; logscale
 * "x" or "xy" (SI-prefixed tick labels; yfmt: the y tick format then) or NULL. */
static void plot_begin(const report_ctx *r, sbuf *g, const char *name, const char *title,
                       const char *xlabel, const char *ylabel, const char *logscale, const char *yfmt) {
    sb_printf(g, "# sattn report: %s.png (run: gnuplot %s.gp from this directory's parent)\n", name, name);
    sb_printf(g, "set terminal pngcairo size 960,640 noenhanced font 'DejaVu Sans,11'\n");
    sb_printf(g, "set output '%s/.%s.png.tmp'\n", r->c->out_dir, name);
    sb_printf(g, "set title '%s'\nset xlabel '%s'\nset ylabel '%s'\n", title, xlabel, ylabel);
    sb_printf(g, "set grid\nset key outside right top box\nset datafile missing 'NaN'\n");
    if (logscale) sb_printf(g, "set logscale %s\nset format x '%%.0s%%c'\n", logscale);
    if (yfmt) sb_printf(g, "set format y '%s'\n", yfmt);
}

/* Writes out_dir/name.gp, runs gnuplot on it (stderr to out_dir/gnuplot.log), renames the
 * PNG into place. */
static int plot_render(report_ctx *r, const char *name, const sbuf *g, sattn_err *e) {
    char base[REPORT_NAME_LEN + 32], gp[2048], tmp[2048], png[2048], log[2048];
    snprintf(base, sizeof base, "%s.gp", name);
    if (write_file(r, base, g, e)) return -1;
    out_path(r, base, gp, sizeof gp);
    snprintf(tmp, sizeof tmp, "%s/.%s.png.tmp", r->c->out_dir, name);
    snprintf(png, sizeof png, "%s/%s.png", r->c->out_dir, name);
    out_path(r, "gnuplot.log", log, sizeof log);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    char *argv[] = {r->gnuplot, gp, NULL};
    pid_t pid;
    int st = 0, rc = posix_spawn(&pid, r->gnuplot, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) return err_set(e, "%s: cannot run (%s)", r->gnuplot, strerror(rc));
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (!WIFEXITED(st) || WEXITSTATUS(st)) {
        remove(tmp);
        return err_set(e, "gnuplot failed on %s (its messages are in %s)", gp, log);
    }
    if (rename(tmp, png)) return err_set(e, "%s: cannot rename to %s (%s)", tmp, png, strerror(errno));
    r->plots++;
    return 0;
}

/* A gnuplot colour and dash type per variant name, so the same variant looks the same
 * in every plot. */
static void style_of(const char *name, char *buf, size_t n) {
    const char *col = !strncmp(name, "dense-naive", 11) ? "#888888"
                      : !strncmp(name, "dense", 5)      ? "#000000"
                      : !strncmp(name, "pos", 3)        ? "#d95f02"
                      : !strncmp(name, "index", 5)      ? "#1f5fbf"
                      : !strncmp(name, "block", 5)      ? "#1b9e77"
                                                        : "#7570b3";
    int dash = strstr(name, "+mlp") ? 2 : 1;
    snprintf(buf, n, "lw 2 lc rgb '%s' dt %d", col, dash);
}

/* "index+softmax:k=32,r=16,j=4" -> "index+softmax" (legends); the full specs go in the table. */
static void short_name(const char *name, char *buf, size_t n) {
    size_t l = strcspn(name, ":");
    snprintf(buf, n, "%.*s", (int)l, name);
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
        style_of(v[i].name, st, sizeof st);
        short_name(v[i].name, nm, sizeof nm);
        if (i == 1 && flash_label) snprintf(nm, sizeof nm, "%s", flash_label);
        sb_printf(g, "%s$v%d using 1:2 with lines %s title '%s'", first ? "" : ", \\\n     ", i, st, nm);
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
    plot_begin(r, &g, "flops", title, "sequence length T (tokens)", "attention FLOPs per layer (FLOP)", "xy", "%.0s%c");
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
    int rc = plot_render(r, "flops", &g, e);
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
    plot_begin(r, &g, name, title, "sequence length T (tokens)",
               what == 1 ? "peak activation memory (bytes)" : "dense-flash FLOPs / variant FLOPs (x)", "xy",
               what == 1 ? "%.0s%cB" : "%g");
    int use[8];
    for (int i = 0; i < n; i++) {
        use[i] = what == 1 || i >= 2; /* flash over itself is the break-even line */
        analytic_block(&g, c, &v[i], i, what);
    }
    plot_variants(&g, v, use, n, NULL, what == 2 ? "1 with lines lw 2 lc rgb '#cc0000' dt 2 title 'break-even (1x)'" : NULL);
    int rc = plot_render(r, name, &g, e);
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

static int analytic_section(report_ctx *r, sattn_err *e) {
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
            short_name(std[i].name, nm, sizeof nm);
            if (!strcmp(nm, name)) return *v = std[i], 0;
        }
    }
    head_spec s;
    sattn_err e;
    if (spec_of(name, &s, &e) || s.sel == SEL_DENSE) return -1;
    *v = cm_sparse(&s);
    return 0;
}

typedef struct {
    const bench_row **rows; /* the rows shown: C == shown C, k == c->k (dense: any k) */
    int n, C, H;
    char names[32][REPORT_NAME_LEN];
    int n_names;
} bench_view;

static int row_cmp(const void *a, const void *b) {
    const bench_row *x = *(const bench_row *const *)a, *y = *(const bench_row *const *)b;
    return x->T - y->T;
}

static void bench_select(const report_config *c, const bench_table *t, bench_view *bv) {
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
        if (j == bv->n_names && j < 32) snprintf(bv->names[bv->n_names++], REPORT_NAME_LEN, "%s", w->variant);
    }
    qsort(bv->rows, (size_t)bv->n, sizeof *bv->rows, row_cmp);
}

/* Datablock $b<i> of (T, y) for variant i in phase decode; returns its row count. */
static int bench_block(sbuf *g, const bench_view *bv, int i, int decode, int speedup) {
    int m = 0;
    sb_printf(g, "$b%d << EOD\n", i);
    for (int j = 0; j < bv->n; j++) {
        const bench_row *w = bv->rows[j];
        if (w->decode != decode || strcmp(w->variant, bv->names[i]) || (speedup && w->speedup_vs_flash <= 0))
            continue; /* bench writes speedup -1 where dense-flash has no row */
        sb_printf(g, "%d %.6g\n", w->T, speedup ? w->speedup_vs_flash : w->median_s);
        m++;
    }
    sb_printf(g, "EOD\n");
    return m;
}

/* Measured T* of (name, phase) among the shown rows: xover_series_T's from-then-on rule. */
static int measured_crossover(const bench_view *bv, const char *name, int decode) {
    int *T = xmalloc(((size_t)bv->n + 1) * sizeof(int)), n = 0;
    double *sp = xmalloc(((size_t)bv->n + 1) * sizeof(double));
    for (int j = 0; j < bv->n; j++) {
        const bench_row *w = bv->rows[j];
        if (w->decode == decode && !strcmp(w->variant, name)) T[n] = w->T, sp[n++] = w->speedup_vs_flash;
    }
    int t = xover_series_T(T, sp, n);
    free(T), free(sp);
    return t;
}

/* Datablock $x: each sparse variant's measured T* in this phase, at its y (time or
 * speedup) there, so the plots mark where sparse starts winning; returns the count. */
static int crossover_marks(sbuf *g, const bench_view *bv, int decode, int speedup) {
    int m = 0;
    sb_printf(g, "$x << EOD\n");
    for (int i = 0; i < bv->n_names; i++) {
        if (is_dense_name(bv->names[i])) continue;
        int t = measured_crossover(bv, bv->names[i], decode);
        for (int j = 0; j < bv->n && t > 0; j++) {
            const bench_row *w = bv->rows[j];
            if (w->decode != decode || w->T != t || strcmp(w->variant, bv->names[i])) continue;
            sb_printf(g, "%d %.6g T*=%d\n", t, speedup ? w->speedup_vs_flash : w->median_s, t);
            m++;
            break;
        }
    }
    sb_printf(g, "EOD\n");
    return m;
}

static const char *const PHASE_NAME[3] = {"prefill", "decode", "backward"};

static int bench_plot(report_ctx *r, const bench_view *bv, int decode, int speedup, sattn_err *e) {
    static const char *const WHAT[3] = {"prefill of T tokens", "one decode step with a KV cache of T",
                                        "backward of a prefill of T tokens"};
    char name[64], title[256];
    snprintf(name, sizeof name, "bench_%s%s", speedup ? "speedup_" : "", PHASE_NAME[decode]);
    snprintf(title, sizeof title, "%s, %s (measured; C=%d, H=%d, k=%d)",
             speedup ? "Speedup over dense-flash" : "Wall time of one attention layer",
             WHAT[decode], bv->C, bv->H, r->c->k);
    sbuf g = {0};
    plot_begin(r, &g, name, title, "sequence length T (tokens)",
               speedup ? "dense-flash time / variant time (x)" : "median wall time (s)", "xy", "%g");
    int have[32] = {0}, any = 0;
    for (int i = 0; i < bv->n_names; i++)
        have[i] = (!speedup || !is_dense_name(bv->names[i])) && bench_block(&g, bv, i, decode, speedup) > 0;
    int marks = crossover_marks(&g, bv, decode, speedup); /* datablocks precede the plot command */
    sb_printf(&g, "plot ");
    for (int i = 0; i < bv->n_names; i++) {
        if (!have[i]) continue;
        char st[96], nm[REPORT_NAME_LEN];
        style_of(bv->names[i], st, sizeof st);
        short_name(bv->names[i], nm, sizeof nm);
        sb_printf(&g, "%s$b%d using 1:2 with linespoints pt 7 ps 0.8 %s title '%s'", any ? ", \\\n     " : "", i, st, nm);
        any = 1;
    }
    if (any && marks)
        sb_printf(&g, ", $x using 1:2 with points pt 6 ps 2.5 lw 2 lc rgb 'red' title 'measured crossover T*'");
    sb_printf(&g, "%s%s\n", any ? ", " : "", speedup ? "1 with lines lw 2 lc rgb '#cc0000' dt 2 title 'break-even (1x)'"
                                                      : "1/0 notitle");
    int rc = any ? plot_render(r, name, &g, e) : 1;
    sb_free(&g);
    if (rc == 1) return 0; /* nothing measured in this phase */
    if (rc) return -1;
    static const char *const TIME_OF[3] = {"one layer's prefill", "one decode step", "one layer's backward"};
    if (speedup)
        sb_printf(&r->md, "![%s](%s.png)\n\nMeasured %s speedup over dense-flash per T; above the dashed "
                          "line sparse is faster.\n\n", name, name, PHASE_NAME[decode]);
    else
        sb_printf(&r->md, "![%s](%s.png)\n\nMeasured wall time of %s (median of the runs), log–log; red "
                          "circles mark each sparse variant's measured crossover T*.\n\n", name, name,
                  TIME_OF[decode]);
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
                short_name(bv->names[i], nm, sizeof nm);
                char st[96];
                style_of(bv->names[i], st, sizeof st);
                sb_printf(&pts, "%d %d\n", ta, tm);
                sb_printf(&series, "$c every ::%d::%d using 1:2 with points pt %d ps 1.8 %s title '%s, %s', ",
                          npts, npts, dec ? 5 : 7, st, nm, dec ? "decode" : "prefill");
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
        plot_begin(r, &g, "crossover", "Crossover T*: analytic (FLOPs) vs measured (wall time)",
                   "analytic T* (tokens)", "measured T* (tokens)", "xy", "%g");
        sb_printf(&g, "$c << EOD\n%sEOD\nset xrange [%g:%g]\nset yrange [%g:%g]\nset size ratio -1\n", pts.s,
                  lo / 3, hi * 3, lo / 3, hi * 3);
        sb_printf(&g, "plot %sx with lines lw 2 lc rgb '#888888' dt 3 title 'measured = analytic'\n", series.s);
        rc = plot_render(r, "crossover", &g, e);
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
                if (w->decode != dec || strcmp(w->variant, bv->names[i])) continue;
                char b[24], sp[24] = "-", pr[24] = "-"; /* bench writes -1 for "not available" */
                if (w->speedup_vs_flash > 0) snprintf(sp, sizeof sp, "%.3f", w->speedup_vs_flash);
                if (w->cpu_pressure >= 0) snprintf(pr, sizeof pr, "%.2f", w->cpu_pressure);
                sb_printf(&r->md, "| %s | %s | %d | %.4g | %.3g | %s | %sB | %s |\n", w->variant,
                          PHASE_NAME[dec], w->T, w->median_s, w->gflops, sp, si(w->peak_bytes, b), pr);
            }
    sb_printf(&r->md, "\n");
}

static int bench_section(report_ctx *r, const bench_table *t, sattn_err *e) {
    bench_view bv;
    bench_select(r->c, t, &bv);
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
    plot_begin(r, &g, name, title, "head", "layer", NULL, NULL);
    sb_printf(&g, "set xrange [-0.5:%g]\nset yrange [-0.5:%g]\nset xtics 1\nset ytics 1\nset grid front noxtics noytics\n",
              m->H - 0.5, m->L - 0.5);
    sb_printf(&g, "set cblabel 'relative head-output error ||o - o_hat|| / ||o|| (ratio)'\nset cbrange [0:*]\n"
                  "set palette defined (0 '#fff7ec', 0.5 '#fc8d59', 1 '#7f0000')\nset key off\n");
    sb_printf(&g, "$h << EOD\n");
    for (int l = 0; l < m->L; l++)
        for (int h = 0; h < m->H; h++) {
            double v = NAN;
            for (int i = 0; i < f->n_heads; i++)
                if (f->heads[i].layer == l && f->heads[i].head == h) v = f->heads[i].rel_err;
            if (isnan(v)) sb_printf(&g, "%d %d NaN dense\n", h, l);
            else sb_printf(&g, "%d %d %.6g %.3f\n", h, l, v, v);
        }
    sb_printf(&g, "EOD\nplot $h using 1:2:3 with image notitle, $h using 1:2:4 with labels font ',10' notitle\n");
    int rc = plot_render(r, name, &g, e);
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
    plot_begin(r, &g, "pareto", title, "attention FLOPs of the plan / dense attention FLOPs (x)",
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
    int rc = plot_render(r, "pareto", &g, e);
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

static int eval_section(report_ctx *r, const eval_file *f, int n, sattn_err *e) {
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

/* ------------------------------------------------------------------ driver ---- */

static int check_config(const report_config *c, sattn_err *e) {
    if (!c->out_dir || !*c->out_dir) return err_set(e, "no output directory");
    if (strchr(c->out_dir, '\'') || strchr(c->out_dir, '\n'))
        return err_set(e, "%s: the output directory's name may not contain a quote or newline", c->out_dir);
    if (c->C < 1 || c->H < 1 || c->C % c->H || c->k < 1)
        return err_set(e, "C %d must be a positive multiple of H %d, k %d positive", c->C, c->H, c->k);
    const report_model *m = &c->model;
    if (c->n_evals && (m->L < 1 || m->H < 1 || m->C < 1 || m->T < 1 || m->C % m->H))
        return err_set(e, "the eval model shape L=%d H=%d C=%d T=%d is invalid (C a multiple of H)", m->L,
                       m->H, m->C, m->T);
    return 0;
}

static int make_dir(const char *dir, sattn_err *e) {
    struct stat st;
    if (stat(dir, &st) == 0) return S_ISDIR(st.st_mode) ? 0 : err_set(e, "%s: exists and is not a directory", dir);
    if (mkdir(dir, 0755)) return err_set(e, "%s: cannot create directory (%s)", dir, strerror(errno));
    return 0;
}

/* Reads every input before anything is written, so a bad input leaves no output. */
static int read_inputs(const report_config *c, bench_table *bt, eval_file *ev, sattn_err *e) {
    bt->n = 0, bt->rows = NULL;
    if (c->bench && bench_csv_read(c->bench, bt, e)) return -1;
    for (int i = 0; i < c->n_evals; i++) {
        double rel;
        if (eval_json_read(c->evals[i], &ev[i], e) || (eval_relative_flops(&ev[i], &c->model, &rel, e) &&
                                                       (eval_file_free(&ev[i]), 1))) {
            while (i--) eval_file_free(&ev[i]);
            return bench_table_free(bt), -1;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(ev[i].name, ev[j].name)) {
                err_set(e, "%s: its name '%s' repeats %s's (the heat maps are named after it)", c->evals[i],
                        ev[i].name, c->evals[j]);
                for (int k = 0; k <= i; k++) eval_file_free(&ev[k]);
                return bench_table_free(bt), -1;
            }
    }
    return 0;
}

static int write_sections(report_ctx *r, const bench_table *bt, const eval_file *ev, sattn_err *e) {
    const report_config *c = r->c;
    sb_printf(&r->md, "# sattn report\n\nWritten by `sattn report` (docs/report.md). Inputs: the analytic "
                      "cost model at C = %d, H = %d, k = %d", c->C, c->H, c->k);
    if (c->bench) sb_printf(&r->md, "; benchmark `%s`", c->bench);
    for (int i = 0; i < c->n_evals; i++) sb_printf(&r->md, "%s`%s`", i ? ", " : "; eval ", c->evals[i]);
    sb_printf(&r->md, ". Each plot's gnuplot script (data included) is beside it as NAME.gp.\n\n");
    if (analytic_section(r, e)) return -1;
    if (c->bench && bench_section(r, bt, e)) return -1;
    if (c->n_evals && eval_section(r, ev, c->n_evals, e)) return -1;
    return write_file(r, "report.md", &r->md, e);
}

int report_write(const report_config *c, sattn_err *e) {
    if (check_config(c, e)) return -1;
    report_ctx r = {.c = c};
    if (find_gnuplot(c->gnuplot ? c->gnuplot : "gnuplot", r.gnuplot, sizeof r.gnuplot))
        return err_set(e, "gnuplot not found ('%s'): install it with `apt-get install gnuplot-nox` "
                          "(or run scripts/deps.sh)", c->gnuplot ? c->gnuplot : "gnuplot");
    bench_table bt;
    eval_file *ev = xcalloc((size_t)(c->n_evals ? c->n_evals : 1), sizeof(eval_file));
    if (read_inputs(c, &bt, ev, e)) return free(ev), -1;
    int rc = make_dir(c->out_dir, e);
    if (!rc) rc = write_sections(&r, &bt, ev, e);
    sb_free(&r.md);
    for (int i = 0; i < c->n_evals; i++) eval_file_free(&ev[i]);
    free(ev);
    bench_table_free(&bt);
    return rc;
}
