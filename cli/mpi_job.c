/* Checks of a data-parallel job (mpi_job.h). */
#include "mpi_job.h"

#include <string.h>

#include "args.h"
#include "sattn/heads.h"
#include "sattn/train.h"

int job_check_batch(const dist_ctx *d, const char *cmd, int batch) {
    if (!d || d->size == 1 || batch % d->size == 0) return 0;
    return cli_fail(cmd, "--batch %d is not a multiple of the %d ranks (--batch is the global batch: each rank "
                         "runs batch/ranks rows; expected e.g. --batch %d)", batch, d->size,
                    (batch / d->size + 1) * d->size);
}

int job_check_windows(const dist_ctx *d, const char *cmd, const char *path, const dataset *ds, int T,
                      size_t max_tokens, const char *what) {
    if (!d || d->size == 1) return 0;
    size_t w = eval_split_windows(ds, SPLIT_VAL, T, max_tokens);
    if (w >= (size_t)d->size) return 0;
    return cli_fail(cmd, "%s: %s has %zu windows of %d tokens for %d ranks, so rank %zu's shard would be empty "
                         "(each rank scores a shard of them; expected at least one window per rank: fewer ranks, "
                         "a shorter --seq or more validation text)", path, what, w, T, d->size, w);
}

/* A fingerprint of what must not differ between the ranks' binaries. */
static uint64_t build_print(void) {
    uint32_t v[] = {CKPT_VERSION, HEADS_VERSION, (uint32_t)sizeof(gpt_config), (uint32_t)sizeof(train_state)};
    return fnv1a64(v, sizeof v, FNV1A64_INIT);
}

/* The model's weights and, with st, where its training stands. */
static uint64_t model_print(const gpt_model *m, const train_state *st) {
    uint64_t h = fnv1a64(m->params_mem, m->num_params * sizeof(float), FNV1A64_INIT);
    h = fnv1a64(&m->cfg.layers, sizeof m->cfg.layers, h);
    if (!st) return h;
    int s[2] = {st->step, st->has_optim};
    h = fnv1a64(s, sizeof s, h);
    return fnv1a64(&st->rng, sizeof st->rng, h);
}

int job_check_same(dist_ctx *d, const char *cmd, const gpt_model *m, const train_state *st, const char *source) {
    if (!d || d->size == 1) return 0;
    int r = dist_differs(d, build_print());
    if (r >= 0)
        return cli_fail(cmd, "rank %d runs another sattn build than rank 0 (checkpoint format version %d here; "
                             "expected the same sattn on every rank)", r, CKPT_VERSION);
    r = dist_differs(d, model_print(m, st));
    if (r < 0) return 0;
    return cli_fail(cmd, "rank %d's model differs from rank 0's after loading %s (another file on its host? "
                         "expected the same weights and training state on every rank)", r, source);
}
