/* eval_json: the eval JSON's writer and reader (eval_json.h). */
#include "sattn/eval_json.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/jdoc.h"

/* ---- the writer ---- */

/* A JSON string (quotes, backslashes and control bytes escaped). */
static void json_str(FILE *out, const char *s) {
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p == '"' || *p == '\\') fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f) fprintf(out, "\\u%04x", *p);
        else fputc(*p, out);
    fputc('"', out);
}

/* `, "key": value` in fmt, or null where v is not finite: printf would write nan or inf,
 * which is not JSON (sattn report refuses both). */
static void json_num(FILE *out, const char *key, const char *fmt, double v) {
    fprintf(out, ", \"%s\": ", key);
    if (isfinite(v)) fprintf(out, fmt, v);
    else fputs("null", out);
}

static void json_heads(FILE *out, const sparse_eval_result *r, const sparse_heads *sh) {
    fprintf(out, "{\"heads\": [");
    for (int j = 0; j < r->n_heads; j++) {
        const head_metrics *h = &r->heads[j];
        char spec[128];
        head_spec_format(&sh->h[h->layer * sh->heads + h->head].spec, spec, sizeof spec);
        fprintf(out, "%s{\"layer\": %d, \"head\": %d, \"spec\": ", j ? ", " : "", h->layer, h->head);
        json_str(out, spec);
        json_num(out, "top1", "%.6f", h->top1);
        json_num(out, "hit", "%.6f", h->hit);
        json_num(out, "recall", "%.6f", h->recall);
        json_num(out, "mass", "%.6f", h->mass);
        json_num(out, "keys", "%.3f", h->keys);
        json_num(out, "rel_err", "%.6f", h->rel_err);
        fputc('}', out);
    }
    fprintf(out, "]");
}

void eval_json_write(FILE *out, const sparse_eval_result *r, const sparse_heads *sh, int is_bytes,
                     int dense_below, const char *dense_below_from) {
    json_heads(out, r, sh);
    const char *unit = is_bytes ? "bits_per_byte" : "bits_per_token";
    char k_dense[32], k_hybrid[32];
    snprintf(k_dense, sizeof k_dense, "%s_dense", unit);
    snprintf(k_hybrid, sizeof k_hybrid, "%s_hybrid", unit);
    json_num(out, "mean_recall", "%.6f", r->mean_recall);
    json_num(out, "mean_mass", "%.6f", r->mean_mass);
    json_num(out, "mean_top1", "%.6f", r->mean_top1);
    json_num(out, "median_rel_err", "%.6f", r->median_rel_err);
    json_num(out, "logit_rel_err", "%.6f", r->logit_rel_err);
    fprintf(out, ", \"windows\": %zu", r->windows);
    json_num(out, "loss_dense", "%.6f", r->loss_dense);
    json_num(out, "loss_hybrid", "%.6f", r->loss_hybrid);
    json_num(out, "loss_ratio", "%.6f", r->loss_hybrid / r->loss_dense);
    json_num(out, "loss_change", "%.6f", r->loss_hybrid - r->loss_dense);
    json_num(out, k_dense, "%.6f", r->loss_dense / log(2.0));
    json_num(out, k_hybrid, "%.6f", r->loss_hybrid / log(2.0));
    fprintf(out, ", \"tokens\": %zu", r->tokens);
    if (dense_below == INT_MAX) fprintf(out, ", \"dense_below\": null");
    else fprintf(out, ", \"dense_below\": %d", dense_below);
    fprintf(out, ", \"dense_below_from\": ");
    json_str(out, dense_below_from);
    int L = sh->layers > 0 ? sh->layers : 1; /* the counts are per layer: report model forwards */
    fprintf(out, ", \"forwards_dense\": %ld, \"forwards_sparse\": %ld}\n", r->fwd_dense / L, r->fwd_sparse / L);
}

/* ---- the reader ---- */

/* Limits for hostile input: far above anything sattn eval writes (its JSON nests 3
 * levels), low enough that a crafted file cannot exhaust memory. json-c (jdoc.h) parses
 * with this depth limit; the checks below are of the values: JSON numbers that are finite
 * (json-c takes NaN and Infinity), in their ranges, strings that fit their fields. */
#define EVAL_MAX_INPUT ((size_t)64 << 20)
#define JSON_MAX_DEPTH 32

/* "PATH: field 'KEY': WHAT" (the key came from the file: its control bytes are escaped). */
static int field_err(sattn_err *e, const char *path, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int field_err(sattn_err *e, const char *path, const char *key, const char *fmt, ...) {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    sbuf k = {0};
    sb_escaped(&k, key);
    err_set(e, "%s: field '%.64s': %s", path, k.s ? k.s : "", what);
    sb_free(&k);
    return -1;
}

/* A number in [lo, hi]: an eval's metrics are fractions, errors and losses, so NaN, a
 * negative error or an absurd loss is a broken file, refused before plotting. */
static int num_in(json_object *v, const char *key, double lo, double hi, double *x, const char *path,
                  sattn_err *e) {
    json_type t = json_object_get_type(v);
    if (t != json_type_double && t != json_type_int)
        return field_err(e, path, key, "expected a number, got %s", jdoc_type_name(t));
    *x = json_object_get_double(v);
    if (!isfinite(*x)) return field_err(e, path, key, "%.40s is not a finite number", json_object_to_json_string(v));
    if (*x < lo || *x > hi) return field_err(e, path, key, "%g is out of range, expected %g .. %g", *x, lo, hi);
    return 0;
}

/* An integer in [lo, hi]. */
static int int_in(json_object *v, const char *key, double lo, double hi, long *out, const char *path,
                  sattn_err *e) {
    double x;
    if (num_in(v, key, lo, hi, &x, path, e)) return -1;
    if (x != floor(x)) return field_err(e, path, key, "expected an integer");
    *out = (long)x;
    return 0;
}

/* A string into buf (n bytes) without control bytes (it becomes a label on one line). */
static int str_in(json_object *v, const char *key, char *buf, size_t n, const char *path, sattn_err *e) {
    if (!json_object_is_type(v, json_type_string))
        return field_err(e, path, key, "expected a string, got %s", jdoc_type_name(json_object_get_type(v)));
    const char *s = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20) return field_err(e, path, key, "a control byte inside a string");
    if (len + 1 > n) return field_err(e, path, key, "string too long");
    memcpy(buf, s, len + 1);
    return 0;
}

/* The first number anywhere in v that is not finite (json-c takes NaN, Infinity and
 * 1e999 where JSON has none), with the member it is under in *key; NULL if none. The
 * recursion is bounded by the parse's depth limit. */
static json_object *nonfinite(json_object *v, const char **key) {
    json_type t = json_object_get_type(v);
    if (t == json_type_double) return isfinite(json_object_get_double(v)) ? NULL : v;
    if (t == json_type_array)
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            json_object *x = nonfinite(json_object_array_get_idx(v, i), key);
            if (x) return x;
        }
    if (t != json_type_object) return NULL;
    json_object_object_foreach(v, k, m) {
        json_object *x = nonfinite(m, key);
        if (x && !*key) *key = k;
        if (x) return x;
    }
    return NULL;
}

/* The file's text through json-c; the top level must be an object and every number in it
 * finite (the fields report does not read included). */
static json_object *read_object(const char *path, const char *expected, const char *cmd, sattn_err *e) {
    char *text;
    size_t len;
    if (file_read_text(path, EVAL_MAX_INPUT, expected, &text, &len, e)) return NULL;
    json_object *o = jdoc_parse(text, len, path, JSON_MAX_DEPTH, e);
    free(text);
    const char *key = NULL;
    json_object *bad = o ? nonfinite(o, &key) : NULL;
    if (o && !json_object_is_type(o, json_type_object))
        err_set(e, "%s: %s, expected a JSON object (`%s` output)", path, jdoc_type_name(json_object_get_type(o)),
                cmd);
    else if (bad)
        field_err(e, path, key ? key : "?", "%.40s is not a finite number", json_object_to_json_string(bad));
    else
        return o;
    json_object_put(o);
    return NULL;
}

/* The numeric fields read, with their accepted ranges. */
typedef struct {
    const char *name;
    double lo, hi;
} json_range;

static const json_range HEAD_NUMS[] = {{"top1", 0, 1}, {"hit", 0, 1},        {"recall", 0, 1},
                                       {"mass", 0, 1}, {"keys", 0, 1 << 30}, {"rel_err", 0, 1e6}};
static const json_range TOP_NUMS[] = {
    {"loss_dense", 1e-12, 1e6}, {"loss_hybrid", 0, 1e6}, {"loss_ratio", 1e-12, 1e6}, {"logit_rel_err", 0, 1e6}};

static int head_read(json_object *o, eval_head *h, const char *path, sattn_err *e) {
    double *dst[] = {&h->top1, &h->hit, &h->recall, &h->mass, &h->keys, &h->rel_err};
    json_object *v;
    long x;
    memset(h, 0, sizeof *h);
    h->layer = h->head = -1;
    if (!json_object_is_type(o, json_type_object))
        return field_err(e, path, "heads", "expected an object, got %s", jdoc_type_name(json_object_get_type(o)));
    if (json_object_object_get_ex(o, "spec", &v) && str_in(v, "spec", h->spec, sizeof h->spec, path, e)) return -1;
    for (int i = 0; i < 6; i++)
        if (json_object_object_get_ex(o, HEAD_NUMS[i].name, &v) &&
            num_in(v, HEAD_NUMS[i].name, HEAD_NUMS[i].lo, HEAD_NUMS[i].hi, dst[i], path, e))
            return -1;
    static const char *const lh[2] = {"layer", "head"};
    for (int i = 0; i < 2; i++) {
        if (!json_object_object_get_ex(o, lh[i], &v)) continue;
        json_type t = json_object_get_type(v);
        double d = json_object_get_double(v);
        if ((t != json_type_int && t != json_type_double) || !(d >= 0 && d <= 1 << 20) || d != floor(d))
            return field_err(e, path, lh[i], "not a small non-negative integer");
        x = (long)d;
        *(i ? &h->head : &h->layer) = (int)x;
    }
    if (h->layer < 0 || h->head < 0 || !h->spec[0])
        return field_err(e, path, "heads", "a head without layer, head or spec");
    return 0;
}

static int heads_read(json_object *a, eval_file *f, const char *path, sattn_err *e) {
    if (!json_object_is_type(a, json_type_array))
        return field_err(e, path, "heads", "expected an array, got %s", jdoc_type_name(json_object_get_type(a)));
    size_t n = json_object_array_length(a);
    f->heads = xcalloc(n ? n : 1, sizeof *f->heads);
    for (size_t i = 0; i < n; i++, f->n_heads++)
        if (head_read(json_object_array_get_idx(a, i), &f->heads[i], path, e)) return -1;
    return 0;
}

static int eval_read_object(json_object *o, eval_file *f, const char *path, sattn_err *e) {
    double *dst[] = {&f->loss_dense, &f->loss_hybrid, &f->loss_ratio, &f->logit_rel_err};
    json_object *v;
    if (json_object_object_get_ex(o, "heads", &v) && heads_read(v, f, path, e)) return -1;
    for (int i = 0; i < 4; i++)
        if (json_object_object_get_ex(o, TOP_NUMS[i].name, &v) &&
            num_in(v, TOP_NUMS[i].name, TOP_NUMS[i].lo, TOP_NUMS[i].hi, dst[i], path, e))
            return -1;
    static const char *const req[] = {"heads", "loss_dense", "loss_hybrid", "loss_ratio"};
    for (int i = 0; i < 4; i++)
        if (!json_object_object_get_ex(o, req[i], &v))
            return err_set(e, "%s: missing field '%s' (expected `sattn eval --json` output)", path, req[i]);
    return 0;
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
    if (!l) snprintf(name, n, "eval"); /* ".json": a label must not be empty */
}

int eval_json_read(const char *path, eval_file *f, sattn_err *e) {
    memset(f, 0, sizeof *f);
    json_object *o = read_object(path, "a sattn bench CSV or eval JSON", "sattn eval --json", e);
    int rc = o ? eval_read_object(o, f, path, e) : -1;
    json_object_put(o);
    if (rc) return eval_file_free(f), -1;
    eval_name(path, f->name, sizeof f->name);
    return 0;
}

void eval_file_free(eval_file *f) {
    free(f->heads);
    f->heads = NULL, f->n_heads = 0;
}

/* ---- the task JSON ---- */

void eval_json_task_format(sbuf *b, const task_json_info *info, const task_cell *cells, int n) {
    sb_printf(b, "{\"task\": ");
    sb_json_str(b, info->task);
    sb_printf(b, ", \"model\": ");
    sb_json_str(b, info->model);
    sb_printf(b, ", \"heads\": ");
    if (info->heads) sb_json_str(b, info->heads);
    else sb_printf(b, "null");
    sb_printf(b, ", \"attn\": ");
    sb_json_str(b, info->attn);
    sb_printf(b, ", \"seed\": %llu, \"pairs\": ", (unsigned long long)info->seed);
    if (info->pairs > 0) sb_printf(b, "%d", info->pairs);
    else sb_printf(b, "null");
    long answers = 0, correct = 0;
    sb_printf(b, ", \"cells\": [");
    for (int i = 0; i < n; i++) {
        const task_cell *c = &cells[i];
        sb_printf(b, "%s{\"length\": %d, \"depth\": ", i ? ", " : "", c->length);
        if (isfinite(c->depth)) sb_printf(b, "%.6f", c->depth);
        else sb_printf(b, "null");
        sb_printf(b, ", \"samples\": %d, \"answers\": %ld, \"correct\": %ld, \"accuracy\": %.6f}", c->samples,
                  c->answers, c->correct, c->accuracy);
        answers += c->answers, correct += c->correct;
    }
    sb_printf(b, "], \"accuracy\": %.6f}\n", answers ? (double)correct / (double)answers : 0.0);
}

/* One cell: length, samples (1 .. 2^20), answers, correct (0 .. 1e15), accuracy (0 .. 1),
 * depth (0 .. 1, or null: NaN). */
static int cell_fields(json_object *o, task_cell *c, const char *path, sattn_err *e) {
    json_object *v;
    long x;
    static const char *const big[2] = {"answers", "correct"}, *const small[2] = {"length", "samples"};
    for (int i = 0; i < 2; i++) {
        if (json_object_object_get_ex(o, big[i], &v) && int_in(v, big[i], 0, 1e15, i ? &c->correct : &c->answers, path, e))
            return -1;
        if (json_object_object_get_ex(o, small[i], &v)) {
            if (int_in(v, small[i], 1, 1 << 20, &x, path, e)) return -1;
            *(i ? &c->samples : &c->length) = (int)x;
        }
    }
    if (json_object_object_get_ex(o, "accuracy", &v) && num_in(v, "accuracy", 0, 1, &c->accuracy, path, e)) return -1;
    if (json_object_object_get_ex(o, "depth", &v) && !json_object_is_type(v, json_type_null) &&
        num_in(v, "depth", 0, 1, &c->depth, path, e))
        return -1;
    return 0;
}

/* The checks of one cell once read (depth against the task: after the whole file). */
static int cell_done(const task_file *f, const task_cell *x, const char *path, sattn_err *e) {
    if (!x->length || !x->samples || x->answers < 1 || x->accuracy < 0)
        return field_err(e, path, "cells", "a cell without length, samples, answers (>= 1) or accuracy");
    if (x->correct < 0 || x->correct > x->answers)
        return field_err(e, path, "cells", "a cell whose correct is not 0 .. answers");
    for (int i = 0; i < f->n_cells; i++) {
        const task_cell *y = &f->cells[i];
        if (y->length == x->length && (y->depth == x->depth || (isnan(y->depth) && isnan(x->depth))))
            return field_err(e, path, "cells", "two cells of the same length and depth");
    }
    return 0;
}

static int cells_read(json_object *a, task_file *f, const char *path, sattn_err *e) {
    if (!json_object_is_type(a, json_type_array))
        return field_err(e, path, "cells", "expected an array, got %s", jdoc_type_name(json_object_get_type(a)));
    size_t n = json_object_array_length(a);
    if (n > TASK_JSON_MAX_CELLS) return field_err(e, path, "cells", "more than %d cells", TASK_JSON_MAX_CELLS);
    f->cells = xcalloc(n ? n : 1, sizeof *f->cells);
    for (size_t i = 0; i < n; i++) {
        json_object *o = json_object_array_get_idx(a, i);
        task_cell x = {.depth = NAN, .accuracy = -1};
        if (!json_object_is_type(o, json_type_object))
            return field_err(e, path, "cells", "expected an object, got %s", jdoc_type_name(json_object_get_type(o)));
        if (cell_fields(o, &x, path, e) || cell_done(f, &x, path, e)) return -1;
        f->cells[f->n_cells++] = x;
    }
    return 0;
}

/* Every cell has a depth, except in mqar, where none has one. */
static int check_depths(const char *path, const task_file *f, sattn_err *e) {
    int mqar = !strcmp(f->task, "mqar");
    for (int i = 0; i < f->n_cells; i++)
        if (isnan(f->cells[i].depth) != mqar)
            return err_set(e, "%s: cell %d (length %d): depth must be %s for %s", path, i + 1,
                           f->cells[i].length, mqar ? "null (or absent)" : "a number from 0 to 1", f->task);
    return 0;
}

static int task_read_object(json_object *o, task_file *f, const char *path, sattn_err *e) {
    json_object *v;
    task_kind k;
    int has_task = json_object_object_get_ex(o, "task", &v);
    if (has_task && (str_in(v, "task", f->task, sizeof f->task, path, e) ||
                     (task_kind_parse(f->task, &k) && field_err(e, path, "task", "expected passkey, needle or mqar"))))
        return -1;
    int has_cells = json_object_object_get_ex(o, "cells", &v);
    if (has_cells && cells_read(v, f, path, e)) return -1;
    if (!has_task || !has_cells || !f->n_cells)
        return err_set(e, "%s: missing field '%s' (expected `sattn task --json` output)", path,
                       !has_task ? "task" : "cells");
    return check_depths(path, f, e);
}

int eval_json_task_read(const char *path, task_file *f, sattn_err *e) {
    memset(f, 0, sizeof *f);
    json_object *o = read_object(path, "a sattn task JSON", "sattn task --json", e);
    int rc = o ? task_read_object(o, f, path, e) : -1;
    json_object_put(o);
    if (rc) return eval_json_task_free(f), -1;
    eval_name(path, f->name, sizeof f->name);
    return 0;
}

void eval_json_task_free(task_file *f) {
    free(f->cells);
    f->cells = NULL, f->n_cells = 0;
}
