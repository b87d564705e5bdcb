/* train_pos: positions and context extension for `sattn train` (train_pos.h, docs/rope.md). */
#include "train_pos.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "args.h"

const char *const TRAIN_POS_NAMES[] = {"learned", "rope", NULL};
const int TRAIN_POS_VALUES[] = {GPT_POS_LEARNED, GPT_POS_ROPE};
const char *const TRAIN_EXTEND_NAMES[] = {"pi", "ntk", "none", NULL};
const int TRAIN_EXTEND_VALUES[] = {TRAIN_EXTEND_PI, TRAIN_EXTEND_NTK, TRAIN_EXTEND_NONE};
static const char *const *const POS_NAME = TRAIN_POS_NAMES;

int train_pos_check_flags(train_args *a, const opt_spec *o, int n, const char *cmd) {
    a->pos_given = opts_seen(o, n, "pos");
    a->rope_base_given = opts_seen(o, n, "rope-base");
    a->rope_scale_given = opts_seen(o, n, "rope-scale");
    a->rope_extend_given = opts_seen(o, n, "rope-extend");
    if (a->resume && a->init_from)
        return cli_fail(cmd, "--resume and --init-from: expected one of them (--resume continues "
                             "a run, --init-from starts a new one from a checkpoint's weights)");
    if (a->rope_extend_given && !a->init_from)
        return cli_fail(cmd, "--rope-extend: applies with --init-from only (extending a "
                             "checkpoint's context)");
    if (a->init_from && a->rope_extend_given && a->rope_scale_given)
        return cli_fail(cmd, "--rope-scale and --rope-extend: expected one of them (--rope-scale "
                             "sets the interpolation factor itself)");
    if (a->resume || a->init_from) return 0; /* the checkpoint's positions: checked on load */
    if (a->cfg.pos == GPT_POS_LEARNED && (a->rope_base_given || a->rope_scale_given))
        return cli_fail(cmd, "%s %g: applies to --pos rope only (this run uses learned positions)",
                        a->rope_base_given ? "--rope-base" : "--rope-scale",
                        (double)(a->rope_base_given ? a->rope_base : a->rope_scale));
    if (a->cfg.pos == GPT_POS_ROPE && a->format == CKPT_LLMC)
        return cli_fail(cmd, "--format llmc: llm.c's checkpoint format holds only learned "
                             "positions, expected --format sattn with --pos rope");
    return 0;
}

void train_pos_fresh(const train_args *a, gpt_config *c) {
    c->pos = a->cfg.pos;
    c->rope_base = c->pos == GPT_POS_ROPE ? a->rope_base : 0.0f;
    c->rope_scale = c->pos == GPT_POS_ROPE ? a->rope_scale : 0.0f;
}

/* The flags every loaded model checks: --pos and --rope-base as given must be the
 * checkpoint's (--rope-scale too when resuming: with --init-from it is the new factor);
 * RoPE flags on a learned model, and llm.c's format for a RoPE one, are refused. */
static int pos_flags_agree(const train_args *a, const char *cmd, const char *flag,
                           const char *path, const gpt_model *m, int resuming) {
    const gpt_config *c = &m->cfg;
    if (a->pos_given && a->cfg.pos != c->pos)
        return cli_fail(cmd, "%s %s: the checkpoint has --pos %s, this run --pos %s (positions "
                             "come from the checkpoint)", flag, path, POS_NAME[c->pos],
                        POS_NAME[a->cfg.pos]);
    if (c->pos == GPT_POS_LEARNED && (a->rope_base_given || a->rope_scale_given))
        return cli_fail(cmd, "%s: %s %s has learned positions, expected a RoPE model",
                        a->rope_base_given ? "--rope-base" : "--rope-scale", flag, path);
    if (a->rope_base_given && a->rope_base != c->rope_base)
        return cli_fail(cmd, "%s %s: the checkpoint has --rope-base %g, this run %g (expected the "
                             "same; --rope-extend ntk scales it)", flag, path,
                        (double)c->rope_base, (double)a->rope_base);
    if (resuming && a->rope_scale_given && a->rope_scale != c->rope_scale)
        return cli_fail(cmd, "%s %s: the checkpoint has --rope-scale %g, this run %g (expected "
                             "the same)", flag, path, (double)c->rope_scale, (double)a->rope_scale);
    if (c->pos == GPT_POS_ROPE && a->format == CKPT_LLMC)
        return cli_fail(cmd, "--format llmc: llm.c's checkpoint format holds only learned "
                             "positions and %s uses RoPE, expected --format sattn", path);
    return 0;
}

int train_pos_resumed(const train_args *a, const char *cmd, const gpt_model *m) {
    return pos_flags_agree(a, cmd, "--resume", a->resume, m, 1);
}

/* The shape and vocabulary checks of --init-from (as --resume's: the file's shape wins). */
static int init_fits(const train_args *a, const dataset *d, const char *cmd, const gpt_model *m) {
    const gpt_config *c = &m->cfg;
    int clash = a->shape_given && (c->layers != a->cfg.layers || c->heads != a->cfg.heads ||
                                   c->channels != a->cfg.channels);
    const char *why = clash ? "--layers/--heads/--dim differ"
                      : d->vocab > c->vocab ? "the data's vocabulary is larger" : NULL;
    if (why)
        return cli_fail(cmd, "--init-from %s: model (L%d H%d C%d T%d V%d) does not fit: %s",
                        a->init_from, c->layers, c->heads, c->channels, c->max_seq, c->vocab, why);
    return pos_flags_agree(a, cmd, "--init-from", a->init_from, m, 0);
}

/* --seq T beyond the checkpoint's context T0: a RoPE model gets max_seq T and, by
 * --rope-extend, scale * T0/T (pi), base * (T/T0)^(hs/(hs-2)) (ntk) or neither (none);
 * --rope-scale X sets the scale instead. Prints one note saying what changed. */
static int extend_context(const train_args *a, const char *cmd, gpt_model *m) {
    gpt_config *c = &m->cfg, was = *c;
    int T = a->tc.seq, T0 = c->max_seq, hs = c->channels / c->heads;
    if (a->rope_scale_given) c->rope_scale = a->rope_scale;
    if (T <= T0) return 0;
    if (c->pos != GPT_POS_ROPE)
        return cli_fail(cmd, "--init-from %s: --seq %d is longer than its context %d and learned "
                             "positions have no embedding past it (expected --seq <= %d, or a RoPE "
                             "model)", a->init_from, T, T0, T0);
    if (!a->rope_scale_given && a->rope_extend == TRAIN_EXTEND_PI)
        c->rope_scale = (float)((double)c->rope_scale * T0 / T);
    if (!a->rope_scale_given && a->rope_extend == TRAIN_EXTEND_NTK) {
        if (hs <= 2)
            return cli_fail(cmd, "--rope-extend ntk (the default): head dim %d, expected > 2 (the "
                                 "base scales by (T/T0)^(hs/(hs-2))); use --rope-extend pi", hs);
        c->rope_base = (float)((double)c->rope_base * pow((double)T / T0, (double)hs / (hs - 2)));
    }
    sattn_err e;
    if (gpt_set_context(m, T, &e) || gpt_config_check(c, &e))
        return cli_fail(cmd, "--init-from %s: %s", a->init_from, e.msg);
    fprintf(stderr, "sattn %s: note: context %d -> %d: RoPE base %g -> %g, scale %g -> %g\n", cmd,
            T0, T, (double)was.rope_base, (double)c->rope_base, (double)was.rope_scale,
            (double)c->rope_scale);
    return 0;
}

int train_init_from(const train_args *a, const dataset *d, const char *cmd, gpt_model *m,
                    train_state *st) {
    sattn_err e;
    if (ckpt_load(a->init_from, m, NULL, &e) != 0) return cli_fail(cmd, "%s", e.msg);
    free(m->m_mem); /* weights only: AdamW starts from zero moments */
    free(m->v_mem);
    m->m_mem = m->v_mem = NULL;
    m->cfg.attn = cli_attn_resolve(a->cfg.attn, a->tc.seq, 0);
    if (init_fits(a, d, cmd, m) || extend_context(a, cmd, m) ||
        cli_mem_check_model(cmd, "training this model", &m->cfg, a->tc.batch, a->tc.seq, 1,
                            (double)d->n_tokens * sizeof *d->tokens))
        return gpt_free(m), 1;
    st->has_optim = 0;
    st->step = 0;
    rng_seed(&st->rng, a->seed ^ 0x5eedULL);
    return 0;
}
