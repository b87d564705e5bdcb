/* The hybrid-by-length flags and the eval JSON (lenpolicy.h). */
#include "lenpolicy.h"

#include <math.h>
#include <string.h>

#include "args.h"
#include "sattn/crossover.h"

int len_flag_dense_below(const char *cmd, const char *v, len_flags *f) {
    return arg_int(cmd, "dense-below", v, 0, 1 << 30, &f->dense_below) ? 1 : 0;
}

int len_flags_check(const char *cmd, const len_flags *f) {
    if (f->dense_below >= 0 && f->crossover_from)
        return cli_fail(cmd, "--dense-below and --crossover-from %s: give one threshold source, not both",
                        f->crossover_from);
    if (f->crossover_from && !*f->crossover_from)
        return cli_fail(cmd, "--crossover-from: expected a bench CSV path, got ''");
    return 0;
}

int len_choose(const char *cmd, const len_flags *f, const sparse_heads *sh, int C, len_choice *c) {
    memset(c, 0, sizeof *c);
    if (f->dense_below >= 0) {
        c->dense_below = f->dense_below;
        snprintf(c->source, sizeof c->source, "flag");
        if (c->dense_below) snprintf(c->desc, sizeof c->desc, "dense below T=%d (--dense-below)", c->dense_below);
        else snprintf(c->desc, sizeof c->desc, "sparse at every length (--dense-below 0)");
        return 0;
    }
    if (!f->crossover_from) {
        snprintf(c->source, sizeof c->source, "default");
        snprintf(c->desc, sizeof c->desc, "sparse at every length (no --dense-below or --crossover-from)");
        return 0;
    }
    xover_policy p;
    sattn_err e;
    if (xover_policy_from_csv(f->crossover_from, sh, C, &p, &e)) return cli_fail(cmd, "--crossover-from: %s", e.msg);
    c->dense_below = p.dense_below;
    snprintf(c->source, sizeof c->source, "%s", f->crossover_from);
    xover_policy_describe(&p, f->crossover_from, c->desc, sizeof c->desc);
    return 0;
}

/* A JSON string (quotes, backslashes and control bytes escaped). */
static void json_str(FILE *out, const char *s) {
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p == '"' || *p == '\\') fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f) fprintf(out, "\\u%04x", *p);
        else fputc(*p, out);
    fputc('"', out);
}

static void json_heads(FILE *out, const sparse_eval_result *r, const sparse_heads *sh) {
    fprintf(out, "{\"heads\": [");
    for (int j = 0; j < r->n_heads; j++) {
        const head_metrics *h = &r->heads[j];
        char spec[128];
        head_spec_format(&sh->h[h->layer * sh->heads + h->head].spec, spec, sizeof spec);
        fprintf(out, "%s{\"layer\": %d, \"head\": %d, \"spec\": \"%s\", \"top1\": %.6f, \"hit\": %.6f, "
                "\"recall\": %.6f, \"mass\": %.6f, \"keys\": %.3f, \"rel_err\": %.6f}",
                j ? ", " : "", h->layer, h->head, spec, h->top1, h->hit, h->recall, h->mass, h->keys, h->rel_err);
    }
    fprintf(out, "]");
}

void eval_json_print(FILE *out, const sparse_eval_result *r, const sparse_heads *sh, int is_bytes,
                     const len_choice *lc) {
    json_heads(out, r, sh);
    const char *unit = is_bytes ? "bits_per_byte" : "bits_per_token";
    fprintf(out, ", \"mean_recall\": %.6f, \"mean_mass\": %.6f, \"mean_top1\": %.6f, \"median_rel_err\": %.6f, "
            "\"logit_rel_err\": %.6f, \"windows\": %zu, \"loss_dense\": %.6f, \"loss_hybrid\": %.6f, "
            "\"loss_ratio\": %.6f, \"loss_change\": %.6f, \"%s_dense\": %.6f, \"%s_hybrid\": %.6f, "
            "\"tokens\": %zu",
            r->mean_recall, r->mean_mass, r->mean_top1, r->median_rel_err, r->logit_rel_err, r->windows,
            r->loss_dense, r->loss_hybrid, r->loss_hybrid / r->loss_dense, r->loss_hybrid - r->loss_dense,
            unit, r->loss_dense / log(2.0), unit, r->loss_hybrid / log(2.0), r->tokens);
    if (lc->dense_below == XO_NEVER) fprintf(out, ", \"dense_below\": null");
    else fprintf(out, ", \"dense_below\": %d", lc->dense_below);
    fprintf(out, ", \"dense_below_from\": ");
    json_str(out, lc->source);
    int L = sh->layers > 0 ? sh->layers : 1; /* the counts are per layer: report model forwards */
    fprintf(out, ", \"forwards_dense\": %ld, \"forwards_sparse\": %ld}\n", r->fwd_dense / L, r->fwd_sparse / L);
}
