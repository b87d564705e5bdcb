/* plan: parse, load, format and save plans (grammar in sattn/plan.h).
 *
 * The text is copied once and cut in place: lines at '\n' (comments removed),
 * entries at ';', then each entry at its ':' separators. Every entry is parsed
 * and checked completely, even when earlier entries already decided every head,
 * so a typo anywhere in a plan is reported rather than silently ignored. */
#define _POSIX_C_SOURCE 200809L
#include "sattn/plan.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Where an entry is, for error messages. */
typedef struct {
    const char *origin; /* file name, or NULL for an inline plan */
    int line;           /* 1-based line in the file */
    int index;          /* 1-based entry number */
    const char *text;   /* the trimmed entry */
} entry_ctx;

/* An error about one entry: "PATH:LINE: entry 'TEXT': ..." or "plan entry N 'TEXT': ...". */
__attribute__((format(printf, 3, 4)))
static int entry_err(const entry_ctx *c, sattn_err *e, const char *fmt, ...) {
    char msg[SATTN_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->origin) return err_set(e, "%s:%d: entry '%.100s': %s", c->origin, c->line, c->text, msg);
    return err_set(e, "plan entry %d '%.100s': %s", c->index, c->text, msg);
}

static int is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f'; }

/* Trims s in place (it is a piece of the mutable copy) and returns its new start. */
static char *trim(char *s) {
    while (is_space(*s)) s++;
    size_t n = strlen(s);
    while (n && is_space(s[n - 1])) s[--n] = '\0';
    return s;
}

/* Cuts s at the first ch: returns what follows it, or NULL when there is no ch. */
static char *cut(char *s, char ch) {
    char *p = strchr(s, ch);
    if (!p) return NULL;
    *p = '\0';
    return p + 1;
}

/* ---------------------------------------------------------------- targets */

typedef struct {
    int layer, head; /* -1: any */
} target;

/* Digits only (no sign, no spaces), at most 9 of them so the value fits an int. */
static const char *parse_index(const char *p, int *v) {
    int n = 0;
    long x = 0;
    while (*p >= '0' && *p <= '9' && n < 10) x = x * 10 + (*p++ - '0'), n++;
    if (n == 0 || n > 9) return NULL;
    *v = (int)x;
    return p;
}

static int bad_target(const entry_ctx *c, const char *tok, sattn_err *e) {
    return entry_err(c, e, "unknown target '%s', expected all, *, L<layer>, H<head> or "
                           "L<layer>H<head>", tok);
}

static int parse_target(const entry_ctx *c, const char *tok, int layers, int heads, target *t,
                        sattn_err *e) {
    t->layer = t->head = -1;
    if (!*tok) return entry_err(c, e, "missing target before ':', expected all, *, L<layer>, "
                                      "H<head> or L<layer>H<head>");
    if (!strcmp(tok, "all") || !strcmp(tok, "*")) return 0;
    const char *p = tok;
    if (*p == 'L' || *p == 'l') {
        if (!(p = parse_index(p + 1, &t->layer))) return bad_target(c, tok, e);
    }
    if (*p == 'H' || *p == 'h') {
        if (!(p = parse_index(p + 1, &t->head))) return bad_target(c, tok, e);
    }
    if (p == tok || *p) return bad_target(c, tok, e);
    if (t->layer >= layers)
        return entry_err(c, e, "layer %d out of range: model has %d layers (expected 0..%d)",
                         t->layer, layers, layers - 1);
    if (t->head >= heads)
        return entry_err(c, e, "head %d out of range: model has %d heads (expected 0..%d)",
                         t->head, heads, heads - 1);
    return 0;
}

/* ---------------------------------------------------------------- specs */

static int parse_kind(const entry_ctx *c, char *tok, head_spec *s, sattn_err *e) {
    *s = head_spec_default();
    if (!*tok) return entry_err(c, e, "missing spec after ':', expected dense or "
                                      "SELECTOR+FUNCTION (e.g. index+softmax)");
    if (!strcmp(tok, "dense")) return 0;
    char *fn = cut(tok, '+');
    if (!fn)
        return entry_err(c, e, "missing '+' in spec '%s', expected dense or SELECTOR+FUNCTION "
                               "(pos|index|block + softmax|mlp)", tok);
    char *sel = trim(tok);
    fn = trim(fn);
    if (!strcmp(sel, "pos")) s->sel = SEL_POS;
    else if (!strcmp(sel, "index")) s->sel = SEL_INDEX;
    else if (!strcmp(sel, "block")) s->sel = SEL_BLOCK;
    else return entry_err(c, e, "unknown selector '%s', expected pos, index or block", sel);
    if (!strcmp(fn, "softmax")) s->fn = HFN_SOFTMAX;
    else if (!strcmp(fn, "mlp")) s->fn = HFN_MLP;
    else return entry_err(c, e, "unknown head function '%s', expected softmax or mlp", fn);
    return 0;
}

/* ---------------------------------------------------------------- options */

enum { A_POS = 1, A_INDEX = 2, A_BLOCK = 4, A_MLP = 8 };
typedef enum { OPT_INT, OPT_FLOAT, OPT_BOOL } opt_type;

typedef struct {
    const char *name;
    opt_type type;
    size_t off;        /* field in head_spec */
    unsigned applies;  /* selectors / head function it means something for */
    const char *where; /* the same, for messages */
} opt_def;

static const opt_def OPTS[] = {
    {"k", OPT_INT, offsetof(head_spec, k), A_POS | A_INDEX, "pos and index"},
    {"kmin", OPT_INT, offsetof(head_spec, k_min), A_POS | A_INDEX, "pos and index"},
    {"tau", OPT_FLOAT, offsetof(head_spec, tau), A_POS | A_INDEX, "pos and index"},
    {"r", OPT_INT, offsetof(head_spec, rank), A_INDEX, "index"},
    {"j", OPT_INT, offsetof(head_spec, iheads), A_INDEX, "index"},
    {"b", OPT_INT, offsetof(head_spec, block), A_BLOCK, "block"},
    {"n", OPT_INT, offsetof(head_spec, nblocks), A_BLOCK, "block"},
    {"bounds", OPT_BOOL, offsetof(head_spec, bounds), A_BLOCK, "block"},
    {"tile", OPT_BOOL, offsetof(head_spec, tile), A_BLOCK, "block"},
    {"cmp", OPT_BOOL, offsetof(head_spec, cmp), A_BLOCK, "block"},
    {"shared", OPT_BOOL, offsetof(head_spec, shared), A_INDEX, "index"},
    {"hidden", OPT_INT, offsetof(head_spec, hidden), A_POS | A_MLP, "pos and mlp"},
    {"q", OPT_BOOL, offsetof(head_spec, mlp_q), A_MLP, "mlp"},
    {"logits", OPT_BOOL, offsetof(head_spec, mlp_logits), A_MLP, "mlp"},
};
#define N_OPTS ((int)(sizeof OPTS / sizeof OPTS[0]))

static unsigned spec_mask(const head_spec *s) {
    unsigned m = s->sel == SEL_POS ? A_POS : s->sel == SEL_INDEX ? A_INDEX : A_BLOCK;
    return m | (s->fn == HFN_MLP ? A_MLP : 0);
}

static int find_opt(const char *name) {
    for (int i = 0; i < N_OPTS; i++)
        if (!strcmp(OPTS[i].name, name)) return i;
    return -1;
}

/* Reads val into the field; ranges are head_spec_check's job, syntax is ours. */
static int set_value(const entry_ctx *c, const opt_def *o, const char *val, head_spec *s,
                     sattn_err *e) {
    char *end;
    errno = 0;
    if (o->type == OPT_FLOAT) {
        float x = strtof(val, &end);
        if (!*val || *end || errno || !isfinite(x))
            return entry_err(c, e, "bad number '%s' for option '%s', expected a decimal "
                                   "number", val, o->name);
        memcpy((char *)s + o->off, &x, sizeof x);
        return 0;
    }
    long x = strtol(val, &end, 10);
    if (o->type == OPT_BOOL && (strcmp(val, "0") && strcmp(val, "1")))
        return entry_err(c, e, "bad value '%s' for option '%s', expected 0 or 1", val, o->name);
    if (!*val || *end || errno || x < INT_MIN || x > INT_MAX)
        return entry_err(c, e, "bad number '%s' for option '%s', expected an integer", val,
                         o->name);
    int v = (int)x;
    memcpy((char *)s + o->off, &v, sizeof v);
    return 0;
}

static int parse_opt(const entry_ctx *c, char *tok, head_spec *s, unsigned *seen, sattn_err *e) {
    char *val = cut(tok, '=');
    char *name = trim(tok);
    if (!*name) return entry_err(c, e, "empty option, expected NAME=VALUE (e.g. k=16)");
    if (!val) return entry_err(c, e, "missing '=' in option '%s', expected NAME=VALUE", name);
    val = trim(val);
    int i = find_opt(name);
    if (i < 0)
        return entry_err(c, e, "unknown option '%s', expected k, kmin, tau, r, j, b, n, bounds, "
                               "tile, cmp, shared, hidden, q or logits", name);
    if (*seen & 1u << i) return entry_err(c, e, "duplicate option '%s'", name);
    *seen |= 1u << i;
    if (!(OPTS[i].applies & spec_mask(s)))
        return entry_err(c, e, "option '%s' does not apply here, expected it only with %s",
                         name, OPTS[i].where);
    return set_value(c, &OPTS[i], val, s, e);
}

/* shared=1 (one indexer per layer, lindex.h) has its own defaults for what was not given:
 * r 32, j 1 (32 multiply-adds a query-key pair, a quarter of a 4 x 32 layer's q.k; why in
 * docs/indexer.md). */
static void shared_defaults(head_spec *s, unsigned seen) {
    if (!s->shared) return;
    if (!(seen & 1u << find_opt("r"))) s->rank = 32;
    if (!(seen & 1u << find_opt("j"))) s->iheads = 1;
}

static int parse_opts(const entry_ctx *c, char *opts, head_spec *s, sattn_err *e) {
    if (s->sel == SEL_DENSE) return entry_err(c, e, "dense takes no options, got '%s'", opts);
    unsigned seen = 0;
    for (char *tok = opts, *next; tok; tok = next) {
        next = cut(tok, ',');
        if (parse_opt(c, tok, s, &seen, e)) return -1;
    }
    shared_defaults(s, seen);
    sattn_err inner;
    if (head_spec_check(s, &inner)) return entry_err(c, e, "%s", inner.msg);
    return 0;
}

/* ---------------------------------------------------------------- entries */

static int parse_entry(const entry_ctx *c, char *text, int layers, int heads, target *t,
                       head_spec *s, sattn_err *e) {
    char *rest = cut(text, ':');
    if (!rest)
        return entry_err(c, e, "missing ':' after the target, expected TARGET:SPEC[:OPTIONS] "
                               "(e.g. all:index+softmax:k=16)");
    if (parse_target(c, trim(text), layers, heads, t, e)) return -1;
    char *opts = cut(rest, ':');
    if (parse_kind(c, trim(rest), s, e)) return -1;
    if (opts) return parse_opts(c, opts, s, e);
    if (s->sel == SEL_DENSE) return 0;
    sattn_err inner;
    if (head_spec_check(s, &inner)) return entry_err(c, e, "%s", inner.msg);
    return 0;
}

/* Gives the heads this entry matches its spec, unless an earlier entry got there first. */
static void apply_entry(const target *t, const head_spec *s, int layers, int heads,
                        head_spec *specs, unsigned char *decided) {
    for (int l = 0; l < layers; l++)
        for (int h = 0; h < heads; h++) {
            int i = l * heads + h;
            if (decided[i] || (t->layer >= 0 && t->layer != l) || (t->head >= 0 && t->head != h))
                continue;
            specs[i] = *s;
            decided[i] = 1;
        }
}

typedef struct {
    const char *origin;
    int layers, heads;
    head_spec *specs;
    unsigned char *decided;
    int entries; /* non-empty entries so far */
} parse_state;

/* One line, comment already removed: its ';'-separated entries. */
static int parse_line(parse_state *st, char *line, int lineno, sattn_err *e) {
    for (char *piece = line, *next; piece; piece = next) {
        next = cut(piece, ';');
        char *text = trim(piece);
        if (!*text) continue;
        st->entries++;
        /* The message quotes the entry as written, so keep a copy before it is cut up. */
        size_t n = strlen(text) + 1;
        char *quoted = xmalloc(n);
        memcpy(quoted, text, n);
        entry_ctx c = {st->origin, lineno, st->entries, quoted};
        target t = {-1, -1};
        head_spec s = head_spec_default();
        int r = parse_entry(&c, text, st->layers, st->heads, &t, &s, e);
        free(quoted);
        if (r) return -1;
        apply_entry(&t, &s, st->layers, st->heads, st->specs, st->decided);
    }
    return 0;
}

static int parse_lines(parse_state *st, char *buf, sattn_err *e) {
    int lineno = 1;
    for (char *line = buf, *next; line; line = next, lineno++) {
        next = cut(line, '\n');
        cut(line, '#');
        if (parse_line(st, line, lineno, e)) return -1;
    }
    return 0;
}

int plan_parse(const char *text, const char *origin, int layers, int heads, head_spec *specs,
               sattn_err *e) {
    const char *where = origin ? origin : "plan";
    if (layers < 1 || heads < 1)
        return err_set(e, "%s: model shape %d layers x %d heads, expected at least 1 x 1", where,
                       layers, heads);
    size_t n = strlen(text) + 1, nheads = (size_t)layers * (size_t)heads;
    char *buf = xmalloc(n);
    memcpy(buf, text, n);
    parse_state st = {origin, layers, heads, specs, xcalloc(nheads, 1), 0};
    int r = parse_lines(&st, buf, e);
    free(buf);
    if (!r && st.entries == 0)
        r = err_set(e, "%s: empty plan, expected at least one entry TARGET:SPEC "
                       "(e.g. all:index+softmax:k=16)", where);
    for (size_t i = 0; !r && i < nheads; i++)
        if (!st.decided[i]) specs[i] = head_spec_default(); /* unmatched heads stay dense */
    free(st.decided);
    sattn_err inner;
    if (!r && (sparse_tile_check(specs, layers, heads, &inner) ||
               sparse_shared_check(specs, layers, heads, &inner)))
        r = err_set(e, "%s: %s", where, inner.msg);
    return r;
}

/* ---------------------------------------------------------------- files */

static int parse_file(const char *path, int layers, int heads, head_spec *specs, sattn_err *e) {
    uint8_t *data;
    size_t len;
    if (file_read_all(path, &data, &len, e)) return -1;
    if (len == 0) {
        free(data);
        return err_set(e, "%s: empty file, expected a plan (entries TARGET:SPEC, e.g. "
                          "all:index+softmax:k=16)", path);
    }
    if (memchr(data, '\0', len)) {
        free(data);
        return err_set(e, "%s: contains a NUL byte, expected a text plan", path);
    }
    char *text = xmalloc(len + 1);
    memcpy(text, data, len);
    text[len] = '\0';
    free(data);
    int r = plan_parse(text, path, layers, heads, specs, e);
    free(text);
    return r;
}

int plan_load(const char *arg, int layers, int heads, head_spec *specs, sattn_err *e) {
    struct stat st;
    if (stat(arg, &st) == 0) {
        if (S_ISREG(st.st_mode)) return parse_file(arg, layers, heads, specs, e);
        if (S_ISDIR(st.st_mode))
            return err_set(e, "%s: is a directory, expected a plan file or an inline plan", arg);
        /* It exists, so "no such plan file" would mislead (/dev/null, a FIFO). */
        return err_set(e, "%s: not a regular file (%s), expected a plan file or an inline plan",
                       arg, S_ISFIFO(st.st_mode) ? "a FIFO"
                            : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                                                                          : "a socket or other");
    }
    /* Every inline entry has a ':'; without one the user most likely meant a file
     * (a blank arg falls through to plan_parse's "empty plan"). */
    if (!strchr(arg, ':') && arg[strspn(arg, " \t\r\n;")])
        return err_set(e, "%s: no such plan file, and not an inline plan (expected entries "
                          "TARGET:SPEC, e.g. all:index+softmax:k=16)", arg);
    return plan_parse(arg, NULL, layers, heads, specs, e);
}

#define SPEC_TEXT 192

char *plan_format(const head_spec *specs, int layers, int heads) {
    size_t nheads = (size_t)layers * (size_t)heads, cap = nheads * (SPEC_TEXT + 32) + 1;
    char *out = xmalloc(cap), spec[SPEC_TEXT];
    size_t len = 0;
    out[0] = '\0';
    for (int l = 0; l < layers; l++)
        for (int h = 0; h < heads; h++) {
            head_spec_format(&specs[(size_t)l * heads + h], spec, sizeof spec);
            int w = snprintf(out + len, cap - len, "L%dH%d:%s\n", l, h, spec);
            if (w > 0) len += (size_t)w;
        }
    return out;
}

int plan_save(const char *path, const head_spec *specs, int layers, int heads, sattn_err *e) {
    if (layers < 1 || heads < 1)
        return err_set(e, "%s: model shape %d layers x %d heads, expected at least 1 x 1", path,
                       layers, heads);
    char head[128];
    int hn = snprintf(head, sizeof head, "# sattn plan: %d layers x %d heads (first matching "
                                         "entry wins; unmatched heads are dense)\n", layers, heads);
    char *text = plan_format(specs, layers, heads);
    afile a;
    int r = afile_open(&a, path, e);
    if (!r && (afile_write(&a, head, (size_t)hn, e) || afile_write(&a, text, strlen(text), e))) {
        afile_abort(&a);
        r = -1;
    } else if (!r) {
        r = afile_commit(&a, e);
    }
    free(text);
    return r;
}
