#define _POSIX_C_SOURCE 200809L /* setenv */
#include "args.h"

#include "sattn/ckpt.h"
#include "sattn/core.h"
#include "sattn/optparse.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void cli_fput_escaped(const char *s, FILE *f) {
    sbuf b = {0};
    sb_escaped(&b, s);
    if (b.s) fputs(b.s, f);
    sb_free(&b);
}

int cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *msg = xmalloc(k > 0 ? (size_t)k + 1 : 1);
    va_start(ap, fmt);
    vsnprintf(msg, k > 0 ? (size_t)k + 1 : 1, fmt, ap);
    va_end(ap);
    fprintf(stderr, "sattn %s: ", cmd);
    cli_fput_escaped(msg, stderr);
    fputc('\n', stderr);
    free(msg);
    return 1;
}

void cli_json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

int cli_load_model(const char *cmd, const char *path, gpt_model *m) {
    sattn_err e;
    if (ckpt_load(path, m, NULL, &e) != 0) return cli_fail(cmd, "%s", e.msg);
    return 0;
}

int cli_check_out(const char *cmd, const char *flag, const char *path) {
    afile f;
    sattn_err e;
    struct stat sb; /* a directory passes the probe (it only makes a temp file beside it) */
    if (!path) return 0;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return cli_fail(cmd, "%s %s: is a directory, expected a file path", flag, path);
    if (afile_open(&f, path, &e) != 0) return cli_fail(cmd, "%s %s", flag, e.msg);
    afile_abort(&f);
    return 0;
}

/* Same file: both exist and share device and inode; or, for outputs not yet
 * created, the same path string. */
static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    return strcmp(a, b) == 0;
}

static int clash(const char *cmd, const cli_file *o, const cli_file *other, const char *what) {
    return cli_fail(cmd, "%s %s is the same file as %s %s: %s, expected a different path",
                    o->flag, o->path, other->flag, other->path, what);
}

int cli_check_outputs(const char *cmd, const cli_file *outs, const cli_file *ins) {
    for (const cli_file *o = outs; o->flag; o++) {
        if (!o->path) continue;
        for (const cli_file *i = ins; i->flag; i++)
            if (i->path && same_file(o->path, i->path))
                return clash(cmd, o, i, "writing it would destroy an input");
        for (const cli_file *p = outs; p != o; p++)
            if (p->path && same_file(o->path, p->path))
                return clash(cmd, o, p, "two outputs would overwrite each other");
        if (cli_check_out(cmd, o->flag, o->path)) return 1;
    }
    return 0;
}

double cli_max_mem_bytes(void) {
    const char *v = getenv("SATTN_MAX_MEM");
    char *end;
    double g = v ? strtod(v, &end) : 0.0;
    return v && end != v && !*end && isfinite(g) && g > 0 ? g * 1024.0 * 1024.0 * 1024.0 : 0.0;
}

int cli_mem_check(const char *cmd, const char *what, double need, const char *detail) {
    sattn_err e;
    if (mem_check(what, need, detail, cli_max_mem_bytes(), &e)) return cli_fail(cmd, "%s", e.msg);
    return 0;
}

int cli_mem_check_model(const char *cmd, const char *what, const gpt_config *c, int B, int T,
                        int training, double extra) {
    return cli_mem_check_hooked(cmd, what, c, B, T, training, extra, 0.0);
}

int cli_mem_check_hooked(const char *cmd, const char *what, const gpt_config *c, int B, int T,
                         int training, double extra, double hook) {
    gpt_mem m = gpt_mem_estimate(c, B, T, training);
    char p[32], o[32], a[32], x[32], h[32], hd[64] = "", detail[320];
    fmt_size(p, sizeof p, m.params);
    fmt_size(o, sizeof o, m.optim);
    fmt_size(a, sizeof a, m.acts);
    fmt_size(x, sizeof x, extra);
    fmt_size(h, sizeof h, hook);
    if (hook > 0) snprintf(hd, sizeof hd, ", sparse heads' buffers %s", h);
    if (training)
        snprintf(detail, sizeof detail, "parameters %s, gradients and AdamW %s, activations at "
                 "B=%d T=%d %s%s, data %s", p, o, B, T, a, hd, x);
    else
        snprintf(detail, sizeof detail, "parameters %s, activations at B=%d T=%d %s%s, data %s", p,
                 B, T, a, hd, x);
    return cli_mem_check(cmd, what, m.params + m.optim + m.acts + extra + hook, detail);
}

int cli_take_max_mem(int *argc, char **argv) {
    for (int i = 2; i < *argc; i++) {
        int n = !strcmp(argv[i], "--max-mem") ? 2 : !strncmp(argv[i], "--max-mem=", 10) ? 1 : 0;
        if (!strcmp(argv[i], "--")) break;
        if (!n) continue;
        if (n == 2 && i + 1 >= *argc)
            return cli_fail(argv[1], "option '--max-mem' needs a value (GiB)");
        float g;
        sattn_err e;
        opt_spec o = opt_float("max-mem", &g, 0.0, 1, 1e9, "GIB", NULL);
        if (opt_value(&o, n == 2 ? argv[i + 1] : argv[i] + 10, &e)) return cli_fail(argv[1], "%s", e.msg);
        char buf[64];
        snprintf(buf, sizeof buf, "%.9g", (double)g);
        setenv("SATTN_MAX_MEM", buf, 1);
        memmove(argv + i, argv + i + n, (size_t)(*argc - i - n + 1) * sizeof *argv);
        *argc -= n;
        i--;
    }
    return 0;
}

int cli_model_context(const char *cmd, gpt_model *m, int seq, float rope_scale, float rope_base) {
    sattn_err e;
    int rope = m->cfg.pos == GPT_POS_ROPE;
    if (!rope && (rope_scale > 0.0f || rope_base > 0.0f))
        return cli_fail(cmd, "%s %g: the model has learned positions, expected a RoPE model",
                        rope_scale > 0.0f ? "--rope-scale" : "--rope-base",
                        (double)(rope_scale > 0.0f ? rope_scale : rope_base));
    if (seq > 0 && gpt_set_context(m, seq, &e)) return cli_fail(cmd, "--seq %d: %s", seq, e.msg);
    if (rope_scale > 0.0f) m->cfg.rope_scale = rope_scale;
    if (rope_base > 0.0f) m->cfg.rope_base = rope_base;
    return 0;
}
