/* optparse: the table-driven option parser (sattn/optparse.h). */
#define _POSIX_C_SOURCE 200809L /* strtok_r */
#include "sattn/optparse.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the constructors ---- */

static opt_spec spec(const char *name, opt_kind kind, void *target, const char *arg, const char *help) {
    return (opt_spec){.name = name, .kind = kind, .target = target, .arg = arg, .help = help};
}

opt_spec opt_flag(const char *name, int *target, const char *help) {
    return spec(name, OPT_FLAG, target, NULL, help);
}

opt_spec opt_int(const char *name, int *target, long lo, long hi, const char *arg, const char *help) {
    opt_spec o = spec(name, OPT_INT, target, arg, help);
    o.lo = (double)lo, o.hi = (double)hi;
    return o;
}

opt_spec opt_u64(const char *name, uint64_t *target, const char *arg, const char *help) {
    return spec(name, OPT_U64, target, arg, help);
}

opt_spec opt_float(const char *name, float *target, double lo, int lo_open, double hi, const char *arg,
                   const char *help) {
    opt_spec o = spec(name, OPT_FLOAT, target, arg, help);
    o.lo = lo, o.lo_open = lo_open, o.hi = hi;
    return o;
}

opt_spec opt_str(const char *name, const char **target, const char *arg, const char *help) {
    return spec(name, OPT_STR, (void *)target, arg, help);
}

opt_spec opt_enum(const char *name, int *target, const char *const *names, const int *values,
                  const char *help) {
    opt_spec o = spec(name, OPT_ENUM, target, NULL, help);
    o.names = names, o.values = values;
    return o;
}

opt_spec opt_list(const char *name, int *target, int *count, int max, long lo, long hi,
                  const char *arg, const char *help) {
    opt_spec o = spec(name, OPT_LIST, target, arg, help);
    o.count = count, o.max = max, o.lo = (double)lo, o.hi = (double)hi;
    return o;
}

opt_spec opt_call(const char *name, void *target,
                  int (*call)(const opt_spec *o, const char *value, sattn_err *e), const char *arg,
                  const char *help) {
    opt_spec o = spec(name, OPT_CALL, target, arg, help);
    o.call = call;
    return o;
}

opt_spec opt_required(opt_spec o) {
    o.required = 1;
    return o;
}

/* ---- values ---- */

static int parse_int(const opt_spec *o, const char *s, int *out, sattn_err *e) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < (long)o->lo || v > (long)o->hi)
        return err_set(e, "--%s: expected an integer in [%ld, %ld], got '%s'", o->name, (long)o->lo,
                       (long)o->hi, s);
    *out = (int)v;
    return 0;
}

static int parse_u64(const opt_spec *o, const char *s, sattn_err *e) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-')
        return err_set(e, "--%s: expected a non-negative integer, got '%s'", o->name, s);
    *(uint64_t *)o->target = (uint64_t)v;
    return 0;
}

static int parse_float(const opt_spec *o, const char *s, sattn_err *e) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v > o->hi || v < o->lo || (o->lo_open && v == o->lo))
        return err_set(e, "--%s: expected a number %s %g and <= %g, got '%s'", o->name,
                       o->lo_open ? ">" : ">=", o->lo, o->hi, s);
    *(float *)o->target = (float)v;
    return 0;
}

/* "'a' or 'b'", "'a', 'b' or 'c'" into buf. */
static void enum_names(const opt_spec *o, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; o->names[i] && len < n; i++) {
        const char *sep = i == 0 ? "" : o->names[i + 1] ? ", " : " or ";
        len += (size_t)snprintf(buf + len, n - len, "%s'%s'", sep, o->names[i]);
    }
}

static int parse_enum(const opt_spec *o, const char *s, sattn_err *e) {
    for (int i = 0; o->names[i]; i++)
        if (!strcmp(s, o->names[i])) {
            *(int *)o->target = o->values ? o->values[i] : i;
            return 0;
        }
    char names[256];
    enum_names(o, names, sizeof names);
    return err_set(e, "--%s: expected %s, got '%s'", o->name, names, s);
}

static int parse_list(const opt_spec *o, const char *s, sattn_err *e) {
    char buf[512], *save = NULL;
    int *out = o->target, n = 0;
    if (strlen(s) >= sizeof buf) return err_set(e, "--%s: list too long", o->name);
    strcpy(buf, s);
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == o->max) return err_set(e, "--%s: at most %d values", o->name, o->max);
        if (parse_int(o, tok, &out[n], e)) return -1;
        for (int i = 0; i < n; i++)
            if (out[i] == out[n]) return err_set(e, "--%s: %d given twice", o->name, out[i]);
        n++;
    }
    if (!n) return err_set(e, "--%s: expected a comma-separated list, got '%s'", o->name, s);
    *o->count = n;
    return 0;
}

int opt_value(const opt_spec *o, const char *value, sattn_err *e) {
    switch (o->kind) {
    case OPT_FLAG: *(int *)o->target = 1; return 0;
    case OPT_INT: return parse_int(o, value, o->target, e);
    case OPT_U64: return parse_u64(o, value, e);
    case OPT_FLOAT: return parse_float(o, value, e);
    case OPT_STR: *(const char **)o->target = value; return 0;
    case OPT_ENUM: return parse_enum(o, value, e);
    case OPT_LIST: return parse_list(o, value, e);
    case OPT_CALL: return o->call(o, value, e);
    }
    return err_set(e, "--%s: internal: unknown option kind %d", o->name, (int)o->kind);
}

/* ---- the scan ---- */

#define HELP_VAL 255 /* getopt's code for --help; the table's options are 256 + index */

static struct option *long_options(const opts_cmd *c) {
    struct option *lo = xmalloc((size_t)(c->n + 2) * sizeof *lo);
    for (int i = 0; i < c->n; i++)
        lo[i] = (struct option){c->opts[i].name, c->opts[i].kind == OPT_FLAG ? no_argument : required_argument,
                                NULL, 256 + i};
    lo[c->n] = (struct option){"help", no_argument, NULL, HELP_VAL};
    lo[c->n + 1] = (struct option){NULL, 0, NULL, 0};
    return lo;
}

/* getopt's '?' (unknown option) and ':' (no value), or a stray argument at argv[optind]. */
static int usage_error(int ch, int argc, char **argv, sattn_err *e) {
    const char *bad = optind - 1 < argc ? argv[optind - 1] : "?";
    if (ch == ':') err_set(e, "option '%s' needs a value", bad);
    else if (ch == '?') err_set(e, "unknown option '%s'", bad);
    else err_set(e, "unexpected argument '%s'", argv[optind]);
    return OPTS_USAGE;
}

static int check_required(const opts_cmd *c, sattn_err *e) {
    for (int i = 0; i < c->n; i++)
        if (c->opts[i].required && !c->opts[i].seen)
            return err_set(e, "--%s %s is required", c->opts[i].name, c->opts[i].arg), OPTS_BAD;
    return OPTS_OK;
}

int opts_parse(const opts_cmd *c, int argc, char **argv, sattn_err *e) {
    struct option *lo = long_options(c);
    int ch, r = OPTS_OK, order = 0;
    for (int i = 0; i < c->n; i++) c->opts[i].seen = 0;
    optind = 0; /* a full restart of getopt's scan */
    opterr = 0;
    while (r == OPTS_OK && (ch = getopt_long(argc, argv, ":", lo, NULL)) != -1) {
        if (ch == HELP_VAL) r = OPTS_HELP;
        else if (ch < 256 || ch >= 256 + c->n) r = usage_error(ch == ':' ? ':' : '?', argc, argv, e);
        else {
            opt_spec *o = &c->opts[ch - 256];
            if (!o->seen) o->seen = ++order;
            if (opt_value(o, optarg, e)) r = OPTS_BAD;
        }
    }
    free(lo);
    if (r == OPTS_OK && optind < argc) r = usage_error(0, argc, argv, e);
    return r == OPTS_OK ? check_required(c, e) : r;
}

int opts_seen(const opt_spec *opts, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(opts[i].name, name)) return opts[i].seen;
    return 0;
}

/* ---- the help ---- */

#define HELP_COL 22 /* where the help text starts; a longer "--name ARG" puts it on the next line */

/* "--name ARG" (ARG: the enum's names joined by '|'). */
static void option_head(const opt_spec *o, char *buf, size_t n) {
    size_t len = (size_t)snprintf(buf, n, "--%s", o->name);
    if (o->kind == OPT_ENUM)
        for (int i = 0; o->names[i] && len < n; i++)
            len += (size_t)snprintf(buf + len, n - len, "%c%s", i ? '|' : ' ', o->names[i]);
    else if (o->arg && len < n)
        snprintf(buf + len, n - len, " %s", o->arg);
}

/* " (default X)" for an option whose help does not state its default, else "". */
static void option_default(const opt_spec *o, char *buf, size_t n) {
    buf[0] = 0;
    if (o->help && strstr(o->help, "default")) return;
    switch (o->kind) {
    case OPT_INT: snprintf(buf, n, " (default %d)", *(const int *)o->target); break;
    case OPT_U64: snprintf(buf, n, " (default %llu)", (unsigned long long)*(const uint64_t *)o->target); break;
    case OPT_FLOAT: snprintf(buf, n, " (default %g)", (double)*(const float *)o->target); break;
    case OPT_ENUM:
        for (int i = 0; o->names[i]; i++)
            if ((o->values ? o->values[i] : i) == *(const int *)o->target)
                snprintf(buf, n, " (default %s)", o->names[i]);
        break;
    default: break;
    }
}

static void option_line(const opt_spec *o, sbuf *out) {
    char head[256], def[96];
    option_head(o, head, sizeof head);
    option_default(o, def, sizeof def);
    int len = 2 + (int)strlen(head);
    if (len + 2 > HELP_COL) sb_printf(out, "  %s\n%*s", head, HELP_COL, "");
    else sb_printf(out, "  %s%*s", head, HELP_COL - len, "");
    const char *h = o->help ? o->help : "";
    for (const char *nl; (nl = strchr(h, '\n')); h = nl + 1)
        sb_printf(out, "%.*s\n%*s", (int)(nl - h), h, HELP_COL, "");
    sb_printf(out, "%s%s\n", h, def);
}

static void usage_line(const opts_cmd *c, sbuf *out) {
    sb_printf(out, "usage: %s", c->prog);
    if (c->usage) {
        sb_printf(out, " %s\n", c->usage);
        return;
    }
    int optional = 0;
    for (int i = 0; i < c->n; i++)
        if (c->opts[i].required) sb_printf(out, " --%s %s", c->opts[i].name, c->opts[i].arg);
        else optional = 1;
    sb_printf(out, "%s\n", optional ? " [options]" : "");
}

/* A paragraph of the help, ending in a newline (NULL or empty: nothing). */
static void text_block(const char *s, sbuf *out) {
    if (s && *s) sb_printf(out, "%s%s", s, s[strlen(s) - 1] == '\n' ? "" : "\n");
}

void opts_help(const opts_cmd *c, sbuf *out) {
    usage_line(c, out);
    text_block(c->about, out);
    for (int i = 0; i < c->n; i++) option_line(&c->opts[i], out);
    text_block(c->more, out);
}
