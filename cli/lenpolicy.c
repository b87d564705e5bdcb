/* The hybrid-by-length flags and the eval JSON (lenpolicy.h). */
#include "lenpolicy.h"

#include <math.h>
#include <string.h>

#include "args.h"
#include "sattn/crossover.h"

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

void eval_json_print(FILE *out, const sparse_eval_result *r, const sparse_heads *sh, int is_bytes,
                     const len_choice *lc) {
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
    if (lc->dense_below == XO_NEVER) fprintf(out, ", \"dense_below\": null");
    else fprintf(out, ", \"dense_below\": %d", lc->dense_below);
    fprintf(out, ", \"dense_below_from\": ");
    json_str(out, lc->source);
    int L = sh->layers > 0 ? sh->layers : 1; /* the counts are per layer: report model forwards */
    fprintf(out, ", \"forwards_dense\": %ld, \"forwards_sparse\": %ld}\n", r->fwd_dense / L, r->fwd_sparse / L);
}
