/* The hybrid-by-length flags (lenpolicy.h). */
#include "lenpolicy.h"

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
