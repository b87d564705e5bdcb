/* sparse_eval: per-head and whole-model quality of sparse heads (sparse_eval.h). */
#include "sattn/sparse_eval.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/lindex.h"
#include "sattn/train.h"

/* Scratch and running sums for one sparse head. */
typedef struct {
    int i;
    head_scratch s;
    float *tmp; /* a copy of one teacher row for the k-th largest search */
    float *lw, *lwork; /* shared indexer (lindex.h): the layer's parameters and scratch */
    double top1, hit, recall, mass, keys, err2, ref2, queries;
} head_acc;

static void acc_init(head_acc *a, const sparse_heads *sh, int i, int T) {
    memset(a, 0, sizeof *a);
    a->i = i;
    head_scratch_init(&a->s, &sh->h[i].spec, sh->hs, T, sh->max_seq);
    a->tmp = xmalloc((size_t)T * sizeof(float));
    if (!sh->h[i].spec.shared) return;
    lindex_dims d = lindex_dims_of(&sh->h[i].spec, sh->heads, sh->hs);
    a->lw = xmalloc(lindex_param_count(&d) * sizeof(float));
    a->lwork = xmalloc((lindex_work_floats(&d, T) + 1) * sizeof(float));
    lindex_gather(sh, i / sh->heads, a->lw);
}

static void acc_free(head_acc *a) {
    head_scratch_free(&a->s);
    free(a->tmp), free(a->lw), free(a->lwork);
}

/* The head's selection on sequence (q, k of its columns; qkv: the layer's row base): its own
 * selector, or the layer's shared indexer on the C-wide rows (each head of the layer gets
 * the same selection; per-head metrics score it against that head's attention). */
static void acc_select(head_acc *a, const sparse_heads *sh, const float *q, const float *qkv, int C, int T) {
    const sparse_head *sp = &sh->h[a->i];
    if (sp->spec.shared) {
        lindex_dims d = lindex_dims_of(&sp->spec, sh->heads, sh->hs);
        lindex_select(&sp->spec, &d, a->lw, qkv, qkv + C, 3 * C, T, a->s.idx, a->s.score, a->s.count,
                      a->lwork, LINDEX_AUTO, NULL);
        return;
    }
    head_scratch_select(&a->s, &sp->spec, sp->params, sh->hs, sh->max_seq, q, q + C, 3 * C, T);
}

/* The k-th largest of x[0..n) (1 <= k <= n), by quickselect (x is reordered). */
static float kth_largest(float *x, int n, int k) {
    int lo = 0, hi = n - 1, want = k - 1;
    while (lo < hi) {
        float piv = x[(lo + hi) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (x[i] > piv) i++;
            while (x[j] < piv) j--;
            if (i <= j) {
                float t = x[i];
                x[i++] = x[j], x[j--] = t;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else return x[want];
    }
    return x[want];
}

/* For block selection the best-scored unit is a block: the local block (listed first,
 * score FLT_MAX) or the best other block (the next score). Is key u in one of them? */
static int in_best_block(const float *sc, const int *ix, int c, int u) {
    float best = -FLT_MAX;
    for (int j = 0; j < c; j++)
        if (sc[j] != FLT_MAX) {
            best = sc[j];
            break;
        }
    for (int j = 0; j < c; j++)
        if (ix[j] == u) return sc[j] == FLT_MAX || sc[j] == best;
    return 0;
}

/* Selection metrics of query t against the teacher row p (entries s <= t). */
static void acc_query(head_acc *a, const head_spec *s, const float *p, int t) {
    const int *ix = a->s.idx + (size_t)t * a->s.kmax;
    const float *sc = a->s.score + (size_t)t * a->s.kmax;
    int c = a->s.count[t], arg = 0;
    for (int u = 1; u <= t; u++) arg = p[u] > p[arg] ? u : arg;
    memcpy(a->tmp, p, (size_t)(t + 1) * sizeof(float));
    float thr = kth_largest(a->tmp, t + 1, c);
    double mass = 0.0, in_top = 0.0;
    int hit = 0;
    for (int j = 0; j < c; j++) {
        mass += p[ix[j]];
        in_top += p[ix[j]] >= thr;
        hit |= ix[j] == arg;
    }
    int top1 = s->sel == SEL_BLOCK ? in_best_block(sc, ix, c, arg) : ix[0] == arg;
    a->top1 += top1, a->hit += hit, a->mass += mass, a->recall += in_top / c, a->keys += c;
    a->queries += 1;
}

/* One head on one sequence of the teacher's last forward (batch row b). */
static void acc_sequence(head_acc *a, const gpt_model *m, const sparse_heads *sh, int b) {
    const gpt_config *c = &m->cfg;
    const sparse_head *sp = &sh->h[a->i];
    int l = a->i / c->heads, h = a->i % c->heads, B = m->B, T = m->T, C = c->channels, hs = sh->hs;
    const float *q = m->acts.qkv + ((size_t)l * B + b) * T * 3 * C + h * hs;
    if (!m->acts.att) die_at(__FILE__, __LINE__, "sparse eval needs the model's naive attention, not flash");
    const float *P = m->acts.att + (((size_t)l * B + b) * c->heads + h) * T * T;
    const float *o = m->acts.atty + ((size_t)l * B + b) * T * C + h * hs;
    acc_select(a, sh, q, q - h * hs, C, T);
    headfn_forward(&sp->spec, sp->params + sp->n_sel, hs, a->s.kmax, q, q + C, q + 2 * C, 3 * C, T,
                   a->s.idx, a->s.count, a->s.out, hs, a->s.cache);
    for (int t = 0; t < T; t++) {
        acc_query(a, &sp->spec, P + (size_t)t * T, t);
        for (int i = 0; i < hs; i++) {
            double e = (double)a->s.out[(size_t)t * hs + i] - o[(size_t)t * C + i];
            a->err2 += e * e;
            a->ref2 += (double)o[(size_t)t * C + i] * o[(size_t)t * C + i];
        }
    }
}

/* sum ||z - ref||^2 and sum ||ref||^2 over the first V logits of each position. */
static void logit_err(const float *z, const float *ref, size_t n_pos, int V, int Vp, double *e2, double *r2) {
    for (size_t i = 0; i < n_pos; i++)
        for (int j = 0; j < V; j++) {
            double d = (double)z[i * Vp + j] - ref[i * Vp + j];
            *e2 += d * d;
            *r2 += (double)ref[i * Vp + j] * ref[i * Vp + j];
        }
}

static void summarise(sparse_eval_result *r, head_acc *acc, int nh) {
    double *errs = xmalloc(((size_t)nh + 1) * sizeof(double));
    for (int j = 0; j < nh; j++) {
        head_acc *a = &acc[j];
        double n = a->queries > 0 ? a->queries : 1;
        head_metrics *hm = &r->heads[j];
        hm->top1 = a->top1 / n, hm->hit = a->hit / n, hm->recall = a->recall / n;
        hm->mass = a->mass / n, hm->keys = a->keys / n;
        hm->rel_err = a->ref2 > 0 ? sqrt(a->err2 / a->ref2) : 0.0;
        errs[j] = hm->rel_err;
        r->mean_recall += hm->recall / nh, r->mean_mass += hm->mass / nh, r->mean_top1 += hm->top1 / nh;
    }
    r->median_rel_err = nh == 0 ? 0 : median_sort(errs, nh);
    free(errs);
}

void sparse_eval(gpt_model *m, const sparse_heads *sh, const dataset *d, data_split split,
                 int windows, int batch, sparse_eval_result *r) {
    sparse_eval_len(m, sh, d, split, windows, batch, 0, r);
}

void sparse_eval_len(gpt_model *m, const sparse_heads *sh, const dataset *d, data_split split,
                     int windows, int batch, int dense_below, sparse_eval_result *r) {
    const gpt_config *c = &m->cfg;
    int T = c->max_seq, nh = sparse_heads_count(sh);
    size_t n;
    const uint16_t *x = dataset_split_tokens(d, split, &n);
    size_t nw = n > 1 ? (n - 1) / T : 0;
    if (windows > 0 && (size_t)windows < nw) nw = (size_t)windows;
    memset(r, 0, sizeof *r);
    r->n_heads = nh;
    r->heads = xcalloc((size_t)nh + 1, sizeof *r->heads);
    r->windows = nw;
    head_acc *acc = xcalloc((size_t)nh + 1, sizeof *acc);
    for (int i = 0, j = 0; i < sh->layers * sh->heads; i++)
        if (sh->h[i].spec.sel != SEL_DENSE) {
            acc_init(&acc[j], sh, i, T);
            r->heads[j].layer = i / sh->heads, r->heads[j].head = i % sh->heads;
            j++;
        }
    hybrid hy;
    hybrid_init(&hy, sh, c->channels, c->heads);
    hybrid_set_dense_below(&hy, dense_below);
    int *in = xmalloc((size_t)batch * T * sizeof(int));
    float *zref = xmalloc_aligned((size_t)batch * T * c->padded_vocab * sizeof(float));
    double e2 = 0.0, r2 = 0.0;
    for (size_t w0 = 0; w0 < nw; w0 += (size_t)batch) {
        int nb = nw - w0 < (size_t)batch ? (int)(nw - w0) : batch;
        for (size_t i = 0; i < (size_t)nb * T; i++) in[i] = x[w0 * T + i];
        m->attn = NULL;
        gpt_forward(m, in, NULL, nb, T);
        memcpy(zref, m->acts.logits, (size_t)nb * T * c->padded_vocab * sizeof(float));
#pragma omp parallel for schedule(dynamic)
        for (int j = 0; j < nh; j++)
            for (int b = 0; b < nb; b++) acc_sequence(&acc[j], m, sh, b);
        hybrid_attach(&hy, m);
        gpt_forward(m, in, NULL, nb, T);
        hybrid_detach(m);
        logit_err(m->acts.logits, zref, (size_t)nb * T, c->vocab, c->padded_vocab, &e2, &r2);
    }
    r->logit_rel_err = r2 > 0 ? sqrt(e2 / r2) : 0.0;
    summarise(r, acc, nh);
    r->loss_dense = eval_split_loss(m, d, split, T, batch, 0, &r->tokens);
    hybrid_attach(&hy, m);
    r->loss_hybrid = eval_split_loss(m, d, split, T, batch, 0, NULL);
    hybrid_detach(m);
    r->fwd_dense = hy.fwd_dense, r->fwd_sparse = hy.fwd_sparse;
    for (int j = 0; j < nh; j++) acc_free(&acc[j]);
    free(acc), free(in), free(zref);
    hybrid_free(&hy);
}

void sparse_eval_free(sparse_eval_result *r) {
    free(r->heads);
    memset(r, 0, sizeof *r);
}
