/* eval_json: the eval JSON's writer and reader (eval_json.h). */
#define _POSIX_C_SOURCE 200809L /* strnlen */
#include "sattn/eval_json.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
 * levels), low enough that a crafted file cannot exhaust memory or the stack. */
#define EVAL_MAX_INPUT ((size_t)64 << 20)
#define JSON_MAX_DEPTH 32

/* A minimal reader for the JSON `sattn eval --json` prints: objects, arrays, strings,
 * numbers, literals; errors carry the line and the field being read. Hostile input is
 * bounded: nesting deeper than JSON_MAX_DEPTH is an error (the parser recurses), numbers
 * follow JSON's grammar (strtod alone would take nan, inf and hex), and a string longer
 * than its buffer is an error, not a silent cut. */
typedef struct {
    const char *s, *p, *path;
    sattn_err *e;
    int depth;
    char key[64]; /* the member being read, for messages */
} jp;

static int jp_fail(jp *j, const char *what) {
    int line = text_line_at(j->s, (size_t)(j->p - j->s));
    if (!j->key[0]) return err_set(j->e, "%s:%d: %s", j->path, line, what);
    /* the key came from the file: its control bytes (a decoded "\n") must not split the line */
    sbuf key = {0};
    sb_escaped(&key, j->key);
    err_set(j->e, "%s:%d: field '%s': %s", j->path, line, key.s, what);
    sb_free(&key);
    return -1;
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

/* One level deeper (an object or array opens); jp_leave on its close. */
static int jp_enter(jp *j) {
    if (++j->depth <= JSON_MAX_DEPTH) return 0;
    char msg[96];
    snprintf(msg, sizeof msg, "nested deeper than %d levels, expected `sattn eval --json` output", JSON_MAX_DEPTH);
    return jp_fail(j, msg);
}

static int jp_leave(jp *j) { return j->p++, j->depth--, 0; }

/* A string into buf (n bytes; n == 0: read and discard). */
static int jp_string(jp *j, char *buf, size_t n) {
    if (jp_lit(j, '"')) return -1;
    size_t o = 0;
    while (*j->p && *j->p != '"') {
        char c = *j->p++;
        if ((unsigned char)c < 0x20) return j->p--, jp_fail(j, "a control byte inside a string");
        if (c == '\\') {
            if (!*j->p) break;
            c = *j->p++;
            if (c == 'n') c = '\n';
            else if (c == 't') c = '\t';
            else if (c == 'u') c = '?', j->p += strnlen(j->p, 4);
        }
        if (n && o + 1 >= n) return jp_fail(j, "string too long");
        if (n) buf[o++] = c;
    }
    if (n) buf[o] = 0;
    return *j->p == '"' ? (j->p++, 0) : jp_fail(j, "unterminated string");
}

/* The length of the JSON number at s, 0 if none: -?digits(.digits)?([eE][+-]?digits)? */
static size_t json_number_len(const char *s) {
    const char *p = s;
#define DIGITS(q) ((unsigned)(*(q) - '0') < 10)
    p += *p == '-';
    if (!DIGITS(p)) return 0;
    while (DIGITS(p)) p++;
    if (*p == '.') {
        if (!DIGITS(++p)) return 0;
        while (DIGITS(p)) p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        p += *p == '+' || *p == '-';
        if (!DIGITS(p)) return 0;
        while (DIGITS(p)) p++;
    }
#undef DIGITS
    return (size_t)(p - s);
}

static int jp_number(jp *j, double *x) {
    jp_ws(j);
    size_t l = json_number_len(j->p);
    char msg[96], *end;
    char next = j->p[l]; /* "0x10", "1.5.3", "12abc": not a number, not a number and text */
    if (!l || next == '.' || (next >= '0' && next <= '9') || ((next | 32) >= 'a' && (next | 32) <= 'z')) {
        size_t t = strcspn(j->p, ",}] \t\r\n");
        if (!t && *j->p) t = 1; /* show the delimiter that came instead */
        if (!*j->p) snprintf(msg, sizeof msg, "expected a number, got the end of the file");
        else snprintf(msg, sizeof msg, "expected a number, got '%.*s'", (int)(t < 24 ? t : 24), j->p);
        return jp_fail(j, msg);
    }
    *x = strtod(j->p, &end); /* JSON's grammar is a part of strtod's: both stop at l */
    if (!isfinite(*x) || end != j->p + l) {
        snprintf(msg, sizeof msg, "'%.*s' is not a finite number", (int)(l < 40 ? l : 40), j->p);
        return jp_fail(j, msg);
    }
    j->p += l;
    return 0;
}

/* A number in [lo, hi]: an eval's metrics are fractions, errors and losses, so NaN, a
 * negative error or an absurd loss is a broken file, refused before plotting. */
static int jp_number_in(jp *j, double lo, double hi, double *x) {
    if (jp_number(j, x)) return -1;
    if (*x >= lo && *x <= hi) return 0;
    char msg[128];
    snprintf(msg, sizeof msg, "%g is out of range, expected %g .. %g", *x, lo, hi);
    return jp_fail(j, msg);
}

static int jp_skip(jp *j);

/* Calls field(j, key, u) for each member; field parses the value. */
static int jp_object(jp *j, int (*field)(jp *, const char *, void *), void *u) {
    if (jp_lit(j, '{') || jp_enter(j)) return -1;
    jp_ws(j);
    if (*j->p == '}') return jp_leave(j);
    for (;;) {
        char key[256]; /* longer than any key read: an unknown long key is skipped, not cut */
        j->key[0] = 0;
        if (jp_string(j, key, sizeof key) || jp_lit(j, ':')) return -1;
        snprintf(j->key, sizeof j->key, "%.63s", key);
        if (field(j, key, u)) return -1;
        jp_ws(j);
        if (*j->p == '}') return jp_leave(j);
        if (jp_lit(j, ',')) return -1;
    }
}

static int skip_field(jp *j, const char *key, void *u) { return jp_skip(j); }

static int jp_array(jp *j, int (*item)(jp *, void *), void *u) {
    if (jp_lit(j, '[') || jp_enter(j)) return -1;
    jp_ws(j);
    if (*j->p == ']') return jp_leave(j);
    for (;;) {
        if (item(j, u)) return -1;
        jp_ws(j);
        if (*j->p == ']') return jp_leave(j);
        if (jp_lit(j, ',')) return -1;
    }
}

static int skip_item(jp *j, void *u) { return jp_skip(j); }

static int jp_skip(jp *j) {
    jp_ws(j);
    char c = *j->p;
    if (c == '{') return jp_object(j, skip_field, NULL);
    if (c == '[') return jp_array(j, skip_item, NULL);
    if (c == '"') return jp_string(j, NULL, 0);
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

/* The numeric fields read, with their accepted ranges. */
typedef struct {
    const char *name;
    double lo, hi;
} json_range;

static const json_range HEAD_NUMS[] = {{"top1", 0, 1}, {"hit", 0, 1},        {"recall", 0, 1},
                                       {"mass", 0, 1}, {"keys", 0, 1 << 30}, {"rel_err", 0, 1e6}};
static const json_range TOP_NUMS[] = {
    {"loss_dense", 1e-12, 1e6}, {"loss_hybrid", 0, 1e6}, {"loss_ratio", 1e-12, 1e6}, {"logit_rel_err", 0, 1e6}};

static int head_field(jp *j, const char *key, void *u) {
    eval_head *h = u;
    double *dst[] = {&h->top1, &h->hit, &h->recall, &h->mass, &h->keys, &h->rel_err};
    if (!strcmp(key, "spec")) return jp_string(j, h->spec, sizeof h->spec);
    for (int i = 0; i < 6; i++)
        if (!strcmp(key, HEAD_NUMS[i].name)) return jp_number_in(j, HEAD_NUMS[i].lo, HEAD_NUMS[i].hi, dst[i]);
    if (strcmp(key, "layer") && strcmp(key, "head")) return jp_skip(j);
    double x;
    if (jp_number(j, &x)) return -1;
    if (x < 0 || x > 1 << 20 || x != floor(x)) return jp_fail(j, "not a small non-negative integer");
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
    snprintf(j->key, sizeof j->key, "heads");
    if (h->layer < 0 || h->head < 0 || !h->spec[0]) return jp_fail(j, "a head without layer, head or spec");
    c->f->n_heads++;
    return 0;
}

static int top_field(jp *j, const char *key, void *u) {
    eval_ctx *c = u;
    double *dst[] = {&c->f->loss_dense, &c->f->loss_hybrid, &c->f->loss_ratio, &c->f->logit_rel_err};
    if (!strcmp(key, "heads")) return c->seen |= 16, jp_array(j, head_item, c);
    for (int i = 0; i < 4; i++)
        if (!strcmp(key, TOP_NUMS[i].name))
            return c->seen |= 1 << i, jp_number_in(j, TOP_NUMS[i].lo, TOP_NUMS[i].hi, dst[i]);
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
    if (!l) snprintf(name, n, "eval"); /* ".json": a label must not be empty */
}

int eval_json_read(const char *path, eval_file *f, sattn_err *e) {
    memset(f, 0, sizeof *f);
    char *text;
    size_t len;
    if (file_read_text(path, EVAL_MAX_INPUT, "a sattn bench CSV or eval JSON", &text, &len, e)) return -1;
    jp j = {.s = text, .p = text, .path = path, .e = e};
    eval_ctx c = {f, 0, 0};
    int rc = jp_object(&j, top_field, &c);
    j.key[0] = 0;
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

typedef struct {
    task_file *f;
    int cap, seen; /* seen: 1 task, 2 cells */
} task_ctx;

/* A cell field that must be an integer in [lo, hi]. */
static int jp_int_in(jp *j, double lo, double hi, long *out) {
    double x;
    if (jp_number_in(j, lo, hi, &x)) return -1;
    if (x != floor(x)) return jp_fail(j, "expected an integer");
    *out = (long)x;
    return 0;
}

static int cell_field(jp *j, const char *key, void *u) {
    task_cell *c = u;
    long v = 0;
    if (!strcmp(key, "depth")) {
        jp_ws(j);
        if (!strncmp(j->p, "null", 4)) return j->p += 4, c->depth = NAN, 0;
        return jp_number_in(j, 0, 1, &c->depth);
    }
    if (!strcmp(key, "accuracy")) return jp_number_in(j, 0, 1, &c->accuracy);
    long *dst = !strcmp(key, "answers") ? &c->answers : !strcmp(key, "correct") ? &c->correct : NULL;
    if (dst) return jp_int_in(j, 0, 1e15, dst);
    if (strcmp(key, "length") && strcmp(key, "samples")) return jp_skip(j);
    if (jp_int_in(j, 1, 1 << 20, &v)) return -1;
    *(!strcmp(key, "length") ? &c->length : &c->samples) = (int)v;
    return 0;
}

/* The checks of one cell once read (depth against the task: after the whole file). */
static int cell_done(jp *j, task_ctx *c, const task_cell *x) {
    snprintf(j->key, sizeof j->key, "cells");
    if (!x->length || !x->samples || x->answers < 1 || x->accuracy < 0)
        return jp_fail(j, "a cell without length, samples, answers (>= 1) or accuracy");
    if (x->correct < 0 || x->correct > x->answers) return jp_fail(j, "a cell whose correct is not 0 .. answers");
    for (int i = 0; i < c->f->n_cells; i++) {
        const task_cell *y = &c->f->cells[i];
        if (y->length == x->length && (y->depth == x->depth || (isnan(y->depth) && isnan(x->depth))))
            return jp_fail(j, "two cells of the same length and depth");
    }
    return 0;
}

static int cell_item(jp *j, void *u) {
    task_ctx *c = u;
    if (c->f->n_cells == TASK_JSON_MAX_CELLS) return jp_fail(j, "more than 4096 cells");
    if (c->f->n_cells == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->f->cells = xrealloc(c->f->cells, sizeof(task_cell) * (size_t)c->cap);
    }
    task_cell x = {.depth = NAN, .accuracy = -1};
    if (jp_object(j, cell_field, &x) || cell_done(j, c, &x)) return -1;
    c->f->cells[c->f->n_cells++] = x;
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

static int task_top_field(jp *j, const char *key, void *u) {
    task_ctx *c = u;
    if (!strcmp(key, "cells")) return c->seen |= 2, jp_array(j, cell_item, c);
    if (strcmp(key, "task")) return jp_skip(j);
    task_kind k;
    if (jp_string(j, c->f->task, sizeof c->f->task)) return -1;
    if (task_kind_parse(c->f->task, &k)) return jp_fail(j, "expected passkey, needle or mqar");
    return c->seen |= 1, 0;
}

int eval_json_task_read(const char *path, task_file *f, sattn_err *e) {
    memset(f, 0, sizeof *f);
    char *text;
    size_t len;
    if (file_read_text(path, EVAL_MAX_INPUT, "a sattn task JSON", &text, &len, e)) return -1;
    jp j = {.s = text, .p = text, .path = path, .e = e};
    task_ctx c = {f, 0, 0};
    int rc = jp_object(&j, task_top_field, &c);
    j.key[0] = 0;
    if (!rc) {
        jp_ws(&j);
        if (*j.p) rc = jp_fail(&j, "trailing text after the JSON object");
    }
    if (!rc && (c.seen != 3 || !f->n_cells))
        rc = err_set(e, "%s: missing field '%s' (expected `sattn task --json` output)", path,
                     !(c.seen & 1) ? "task" : "cells");
    if (!rc) rc = check_depths(path, f, e);
    free(text);
    if (rc) return eval_json_task_free(f), -1;
    eval_name(path, f->name, sizeof f->name);
    return 0;
}

void eval_json_task_free(task_file *f) {
    free(f->cells);
    f->cells = NULL, f->n_cells = 0;
}
