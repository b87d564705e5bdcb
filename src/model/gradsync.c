/* gradsync: gradient all-reduce, ZeRO-1 sharded AdamW (gradsync.h). */
#include "sattn/gradsync.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void gradsync_init(gradsync *gs, dist_ctx *d, int zero, gpt_model *m) {
    memset(gs, 0, sizeof *gs);
    gs->dist = d;
    gs->zero = zero && d->size > 1; /* one rank: the plain step */
    gs->off = xmalloc((size_t)d->size * sizeof(size_t));
    gs->cnt = xmalloc((size_t)d->size * sizeof(size_t));
    dist_shards(d, m->num_params, gs->off, gs->cnt);
    if (!gs->zero) return;
    size_t n = gs->cnt[d->rank] + 1, o = gs->off[d->rank];
    gs->g = xcalloc(n, sizeof(float));
    gs->m = xcalloc(n, sizeof(float));
    gs->v = xcalloc(n, sizeof(float));
    if (!m->m_mem) return;
    memcpy(gs->m, m->m_mem + o, gs->cnt[d->rank] * sizeof(float));
    memcpy(gs->v, m->v_mem + o, gs->cnt[d->rank] * sizeof(float));
    gs->has_moments = 1;
    gradsync_release_moments(gs, m);
}

void gradsync_free(gradsync *gs) {
    free(gs->off), free(gs->cnt), free(gs->g), free(gs->m), free(gs->v);
    memset(gs, 0, sizeof *gs);
}

double gradsync_weight(gradsync *gs, int n_targets) {
    if (gs->dist->size == 1) return 1.0;
    double n = (double)n_targets;
    dist_sum_f64(gs->dist, &n, 1);
    return n > 0 ? n_targets / n : 0.0;
}

static void scale(float *x, size_t n, float w) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) x[i] *= w;
}

float gradsync_reduce(gradsync *gs, gpt_model *m, double weight, float *extra, size_t n_extra) {
    dist_ctx *d = gs->dist;
    if (d->size == 1) return gpt_grad_norm(m);
    scale(m->grads_mem, m->num_params, (float)weight);
    if (extra && n_extra) {
        scale(extra, n_extra, (float)weight);
        dist_sum_f32(d, extra, n_extra);
    }
    if (!gs->zero) {
        dist_sum_f32(d, m->grads_mem, m->num_params);
        return gpt_grad_norm(m);
    }
    dist_reduce_scatter_f32(d, m->grads_mem, gs->g, gs->off, gs->cnt);
    double sq = vec_sumsq(gs->g, gs->cnt[d->rank]);
    dist_sum_f64(d, &sq, 1);
    return (float)sqrt(sq);
}

/* AdamW on this rank's shard [o, o + n) of the flat vector, tensor by tensor (weight decay
 * is per tensor). -1, or the first tensor left non-finite. */
static int update_shard(gradsync *gs, gpt_model *m, float lr, const adamw_config *opt, int t, float grad_scale) {
    size_t o = gs->off[gs->dist->rank], end = o + gs->cnt[gs->dist->rank], at = 0;
    int bad = -1;
    for (int i = 0; i < GPT_NUM_TENSORS; at += m->param_sizes[i], i++) {
        size_t lo = at > o ? at : o, hi = at + m->param_sizes[i] < end ? at + m->param_sizes[i] : end;
        if (lo >= hi) continue;
        if (adamw_update(m->params_mem + lo, gs->g + (lo - o), gs->m + (lo - o), gs->v + (lo - o), hi - lo, lr, opt,
                         gpt_param_is_matrix(i), t, grad_scale) &&
            bad < 0)
            bad = i;
    }
    return bad;
}

int gradsync_update(gradsync *gs, gpt_model *m, float lr, const adamw_config *opt, int t, float grad_scale) {
    if (!gs->zero) return gpt_update(m, lr, opt, t, grad_scale);
    int bad = update_shard(gs, m, lr, opt, t, grad_scale);
    gs->has_moments = 1;
    dist_allgather_f32(gs->dist, m->params_mem, gs->off, gs->cnt);
    int b = bad < 0 ? INT_MAX : bad; /* the lowest tensor over ranks */
    dist_min_i32(gs->dist, &b, 1);
    return b == INT_MAX ? -1 : b;
}

void gradsync_gather_moments(gradsync *gs, gpt_model *m) {
    if (!gs->zero || !gs->has_moments) return;
    dist_ctx *d = gs->dist;
    if (d->rank != 0) {
        dist_gather_f32(d, gs->m, gs->off, gs->cnt);
        dist_gather_f32(d, gs->v, gs->off, gs->cnt);
        return;
    }
    size_t n = m->num_params, c = gs->cnt[0];
    float *fm = xmalloc_aligned(n * sizeof(float)), *fv = xmalloc_aligned(n * sizeof(float));
    memcpy(fm, gs->m, c * sizeof(float)); /* rank 0's shard starts at 0 */
    memcpy(fv, gs->v, c * sizeof(float));
    dist_gather_f32(d, fm, gs->off, gs->cnt);
    dist_gather_f32(d, fv, gs->off, gs->cnt);
    free(m->m_mem), free(m->v_mem);
    m->m_mem = fm, m->v_mem = fv;
}

void gradsync_release_moments(gradsync *gs, gpt_model *m) {
    if (!gs->zero) return;
    free(m->m_mem), free(m->v_mem);
    m->m_mem = m->v_mem = NULL;
}

double gradsync_bytes_per_step(const gpt_model *m, size_t n_extra) {
    return 4.0 * ((double)m->num_params + (double)n_extra);
}
