/* lindex_train: training the shared indexer by KL to the layer's attention (lindex.h;
 * docs/indexer.md "Training").
 *
 * For a query row t over its key list K_t (0..t in the dense phase, the selection in the
 * sparse phase) with target P_t (the heads' attention on K_t, summed and renormalised):
 *   a_j(s) = qt_j(t) . kt(s),  score(s) = sum_j w_j(t) relu(a_j(s)),  Q_t = softmax_{K_t}(score)
 *   loss = sum_t KL(P_t || Q_t),   g(s) = dloss/dscore(s) = Q_t(s) - P_t(s)
 *   dw_j(t) = sum_s g(s) relu(a_j(s));  da_j(s) = g(s) w_j(t) [a_j(s) > 0]
 *   dqt_j(t) = sum_s da_j(s) kt(s);     dkt(s) += sum_j da_j(s) qt_j(t)
 *   dWq_j += dqt_j(t) q_t^T / sqrt(r),  dWw_j += dw_j(t) q_t^T,  dbw_j += dw_j(t),
 *   dWk += sum_s dkt(s) k_s^T
 * Scores are float32 (the exact path; selection may run bf16), sums in double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/lindex.h"
#include "sattn/nn.h"

/* ---- targets ---- */

/* Key u of row i (its list, or u itself for 0..t). */
static int key_at(const lindex_rows *rw, int i, int u) {
    return rw->keys ? rw->keys[(size_t)i * rw->ldk + u] : u;
}

static int keys_of(const lindex_rows *rw, int i) {
    return rw->keys ? rw->nkeys[i] : rw->t[i] + 1;
}

/* One row: P(u) = (1/H) sum_h softmax_u(q^h_t . k^h_{s_u} / sqrt(hs)); lg: n scratch doubles. */
static void target_row(const lindex_dims *d, const float *q, const float *k, int ld, const lindex_rows *rw,
                       int i, float *P, double *lg) {
    int n = keys_of(rw, i), hs = d->hs;
    const float *qt = q + (size_t)rw->t[i] * ld;
    double sc = 1.0 / sqrt((double)hs);
    for (int u = 0; u < n; u++) P[u] = 0.0f;
    for (int h = 0; h < d->H; h++) {
        double mx = -INFINITY, z = 0.0;
        for (int u = 0; u < n; u++) {
            const float *ks = k + (size_t)key_at(rw, i, u) * ld + h * hs;
            double a = 0.0;
            for (int c = 0; c < hs; c++) a += (double)qt[h * hs + c] * ks[c];
            lg[u] = a * sc;
            mx = lg[u] > mx ? lg[u] : mx;
        }
        for (int u = 0; u < n; u++) z += (lg[u] = exp(lg[u] - mx));
        for (int u = 0; u < n; u++) P[u] += (float)(lg[u] / z / d->H);
    }
}

void lindex_target(const lindex_dims *d, const float *q, const float *k, int ld, const lindex_rows *rw,
                   float *P) {
    int most = 1;
    for (int i = 0; i < rw->n; i++) most = keys_of(rw, i) > most ? keys_of(rw, i) : most;
    double *lg = xmalloc((size_t)most * sizeof(double));
    for (int i = 0; i < rw->n; i++) target_row(d, q, k, ld, rw, i, P + (size_t)i * rw->ldp, lg);
    free(lg);
}

/* ---- KL and gradient ---- */

size_t lindex_grad_work_floats(const lindex_dims *d, int T) {
    size_t t = (size_t)T, J = (size_t)d->J, r = (size_t)d->r;
    return 2 * t * r + J * t + 2 * t + 2 * J * r + 2 * J;
}

typedef struct {
    float *Kt, *dKt, *a, *sc, *g, *qt, *dqt, *w, *dw;
} grad_bufs;

static grad_bufs grad_carve(const lindex_dims *d, int T, float *work) {
    size_t t = (size_t)T, J = (size_t)d->J, r = (size_t)d->r;
    grad_bufs b;
    b.Kt = work, b.dKt = b.Kt + t * r, b.a = b.dKt + t * r, b.sc = b.a + J * t, b.g = b.sc + t;
    b.qt = b.g + t, b.dqt = b.qt + J * r, b.w = b.dqt + J * r, b.dw = b.w + J;
    return b;
}

/* qt_j(t) = Wq_j q_t / sqrt(r) and w_j(t) = Ww_j . q_t + bw_j for one query. */
static void query_side(const lindex_dims *d, const float *W, const float *qt_in, grad_bufs *b) {
    int J = d->J, r = d->r, C = d->C;
    const float *Wq = W, *Ww = Wq + ((size_t)J * r + r) * C, *bw = Ww + (size_t)J * C;
    float inv = 1.0f / sqrtf((float)r);
    for (int i = 0; i < J * r; i++) {
        float acc = 0.0f;
        for (int c = 0; c < C; c++) acc += Wq[(size_t)i * C + c] * qt_in[c];
        b->qt[i] = acc * inv;
    }
    for (int j = 0; j < J; j++) {
        float acc = bw[j];
        for (int c = 0; c < C; c++) acc += Ww[(size_t)j * C + c] * qt_in[c];
        b->w[j] = acc;
    }
}

/* Scores of row i over its keys into b->sc (and a_j into b->a), then g = Q - P; returns KL. */
static double row_kl(const lindex_dims *d, const lindex_rows *rw, int i, grad_bufs *b) {
    int J = d->J, r = d->r, n = keys_of(rw, i);
    const float *P = rw->P + (size_t)i * rw->ldp;
    double mx = -INFINITY, z = 0.0, loss = 0.0;
    for (int u = 0; u < n; u++) {
        const float *kt = b->Kt + (size_t)key_at(rw, i, u) * r;
        float s = 0.0f;
        for (int j = 0; j < J; j++) {
            float a = 0.0f;
            for (int x = 0; x < r; x++) a += b->qt[j * r + x] * kt[x];
            b->a[(size_t)j * n + u] = a;
            s += b->w[j] * (a > 0.0f ? a : 0.0f);
        }
        b->sc[u] = s;
        mx = s > mx ? s : mx;
    }
    for (int u = 0; u < n; u++) z += exp((double)b->sc[u] - mx);
    double logz = log(z) + mx;
    for (int u = 0; u < n; u++) {
        double lq = (double)b->sc[u] - logz;
        b->g[u] = (float)(exp(lq) - P[u]);
        if (P[u] > 0.0f) loss += P[u] * (log((double)P[u]) - lq);
    }
    return loss;
}

/* Backward of row i (see the top) into g's Wq, Ww, bw and b->dKt. */
static void row_backward(const lindex_dims *d, const lindex_rows *rw, int i, const float *qt_in,
                         grad_bufs *b, float *G) {
    int J = d->J, r = d->r, C = d->C, n = keys_of(rw, i);
    float *dWq = G, *dWw = dWq + ((size_t)J * r + r) * C, *dbw = dWw + (size_t)J * C;
    memset(b->dqt, 0, (size_t)J * r * sizeof(float));
    for (int j = 0; j < J; j++) {
        float dw = 0.0f;
        for (int u = 0; u < n; u++) {
            float a = b->a[(size_t)j * n + u];
            if (a <= 0.0f) continue;
            float ga = b->g[u] * b->w[j];
            const float *kt = b->Kt + (size_t)key_at(rw, i, u) * r;
            float *dkt = b->dKt + (size_t)key_at(rw, i, u) * r;
            dw += b->g[u] * a;
            for (int x = 0; x < r; x++) b->dqt[j * r + x] += ga * kt[x], dkt[x] += ga * b->qt[j * r + x];
        }
        b->dw[j] = dw;
    }
    float inv = 1.0f / sqrtf((float)r);
    for (int m = 0; m < J * r; m++) {
        float gm = b->dqt[m] * inv;
        for (int c = 0; c < C; c++) dWq[(size_t)m * C + c] += gm * qt_in[c];
    }
    for (int j = 0; j < J; j++) {
        for (int c = 0; c < C; c++) dWw[(size_t)j * C + c] += b->dw[j] * qt_in[c];
        dbw[j] += b->dw[j];
    }
}

double lindex_kl_grad(const lindex_dims *d, const float *w, float *g, const float *q, const float *k,
                      int ld, int T, const lindex_rows *rw, float *work) {
    int r = d->r, C = d->C, J = d->J;
    grad_bufs b = grad_carve(d, T, work);
    const float *Wk = w + (size_t)J * r * C;
    nn_sgemm(0, 1, T, r, C, 1.0f, k, ld, Wk, C, 0.0f, b.Kt, r);
    memset(b.dKt, 0, (size_t)T * r * sizeof(float));
    double loss = 0.0;
    for (int i = 0; i < rw->n; i++) {
        const float *qt_in = q + (size_t)rw->t[i] * ld;
        query_side(d, w, qt_in, &b);
        loss += row_kl(d, rw, i, &b);
        row_backward(d, rw, i, qt_in, &b, g);
    }
    nn_sgemm(1, 0, r, C, T, 1.0f, b.dKt, r, k, ld, 1.0f, g + (size_t)J * r * C, C);
    return loss;
}

/* ---- the trainer ---- */

void lindex_trainer_init(lindex_trainer *lt, const sparse_heads *sh, int rows) {
    memset(lt, 0, sizeof *lt);
    int L = sh->layers;
    lt->layers = L, lt->rows = rows > 0 ? rows : 0;
    lt->on = xcalloc((size_t)L, 1);
    lt->dims = xcalloc((size_t)L, sizeof *lt->dims);
    lt->off = xcalloc((size_t)L, sizeof *lt->off);
    lt->loss = xcalloc((size_t)L, sizeof *lt->loss);
    lt->work = xcalloc((size_t)L, sizeof *lt->work), lt->P = xcalloc((size_t)L, sizeof *lt->P);
    lt->t = xcalloc((size_t)L, sizeof *lt->t), lt->keys = xcalloc((size_t)L, sizeof *lt->keys);
    lt->nkeys = xcalloc((size_t)L, sizeof *lt->nkeys);
    for (int l = 0; l < L; l++) {
        const head_spec *s = &sh->h[(size_t)l * sh->heads].spec;
        lt->off[l] = lt->n;
        if (s->sel != SEL_INDEX || !s->shared) continue;
        lt->on[l] = 1;
        lt->dims[l] = lindex_dims_of(s, sh->heads, sh->hs);
        lt->n += lindex_param_count(&lt->dims[l]);
    }
    lt->w = xcalloc(lt->n + 1, sizeof(float)), lt->g = xcalloc(lt->n + 1, sizeof(float));
    lt->m = xcalloc(lt->n + 1, sizeof(float)), lt->v = xcalloc(lt->n + 1, sizeof(float));
}

static void free_scratch(lindex_trainer *lt) {
    for (int l = 0; l < lt->layers; l++) {
        free(lt->work[l]), free(lt->P[l]), free(lt->t[l]), free(lt->keys[l]), free(lt->nkeys[l]);
        lt->work[l] = lt->P[l] = NULL, lt->t[l] = lt->keys[l] = lt->nkeys[l] = NULL;
    }
    lt->T = 0;
}

void lindex_trainer_free(lindex_trainer *lt) {
    if (!lt->on) return;
    free_scratch(lt);
    free(lt->on), free(lt->dims), free(lt->off), free(lt->loss);
    free(lt->work), free(lt->P), free(lt->t), free(lt->keys), free(lt->nkeys);
    free(lt->w), free(lt->g), free(lt->m), free(lt->v);
    memset(lt, 0, sizeof *lt);
}

int lindex_trainer_any(const lindex_trainer *lt) { return lt->n > 0; }

/* Rows per sequence at length T: all of them, or lt->rows. */
static int rows_at(const lindex_trainer *lt, int T) { return lt->rows && lt->rows < T ? lt->rows : T; }

static void size_scratch(lindex_trainer *lt, int T) {
    if (lt->T == T) return;
    free_scratch(lt);
    int R = rows_at(lt, T);
    for (int l = 0; l < lt->layers; l++) {
        if (!lt->on[l]) continue;
        lt->work[l] = xmalloc((lindex_grad_work_floats(&lt->dims[l], T) + 1) * sizeof(float));
        lt->P[l] = xmalloc(((size_t)R * T + 1) * sizeof(float));
        lt->t[l] = xmalloc((size_t)R * sizeof(int));
        lt->keys[l] = xmalloc(((size_t)R * T + 1) * sizeof(int));
        lt->nkeys[l] = xmalloc((size_t)R * sizeof(int));
    }
    lt->T = T;
}

/* Stratified rows: one uniform draw in each of R equal strata of [0, T) (all rows at R = T). */
static void draw_rows(int *t, int R, int T, uint64_t seed) {
    rng_t rng;
    rng_seed(&rng, seed);
    for (int i = 0; i < R; i++) {
        int lo = (int)((long long)i * T / R), hi = (int)((long long)(i + 1) * T / R);
        t[i] = R == T ? i : lo + (int)rng_below(&rng, (uint32_t)(hi - lo));
    }
}

/* Layer l, batch row b: rows, their keys (the selection, or NULL for 0..t), targets, grad. */
static double layer_row_grad(lindex_trainer *lt, int l, const float *q, int ld, int T, const int *idx,
                             int kmax, const int *count, uint64_t seed) {
    const lindex_dims *d = &lt->dims[l];
    int R = rows_at(lt, T);
    draw_rows(lt->t[l], R, T, seed);
    lindex_rows rw = {R, lt->t[l], NULL, NULL, 0, lt->P[l], T};
    if (idx) {
        for (int i = 0; i < R; i++) {
            int t = lt->t[l][i];
            lt->nkeys[l][i] = count[t];
            memcpy(lt->keys[l] + (size_t)i * T, idx + (size_t)t * kmax, (size_t)count[t] * sizeof(int));
        }
        rw.keys = lt->keys[l], rw.nkeys = lt->nkeys[l], rw.ldk = T;
    }
    lindex_target(d, q, q + d->C, ld, &rw, lt->P[l]);
    return lindex_kl_grad(d, lt->w + lt->off[l], lt->g + lt->off[l], q, q + d->C, ld, T, &rw, lt->work[l]);
}

double lindex_trainer_grad(lindex_trainer *lt, const sparse_heads *sh, const float *qkv, int B, int T,
                           lindex_sel_fn sel, void *ctx, uint64_t seed) {
    size_scratch(lt, T);
    memset(lt->g, 0, lt->n * sizeof(float));
    int L = lt->layers, R = rows_at(lt, T), shared = 0;
    double total = 0.0;
#pragma omp parallel for schedule(dynamic) reduction(+ : total, shared)
    for (int l = 0; l < L; l++) {
        if (!lt->on[l]) continue;
        const lindex_dims *d = &lt->dims[l];
        lindex_gather(sh, l, lt->w + lt->off[l]);
        double loss = 0.0;
        for (int b = 0; b < B; b++) {
            const float *q = qkv + ((size_t)l * B + b) * T * 3 * d->C;
            int kmax = 0;
            const int *count = NULL, *idx = sel ? sel(ctx, l, b, &kmax, &count) : NULL;
            uint64_t s = seed ^ (((uint64_t)l << 32 | (uint32_t)b) * 0x9e3779b97f4a7c15ULL);
            loss += layer_row_grad(lt, l, q, 3 * d->C, T, idx, kmax, count, s);
        }
        /* the mean KL per row: the gradient too, so the step size does not grow with B R */
        float scale = 1.0f / ((float)B * R);
        float *g = lt->g + lt->off[l];
        for (size_t i = 0; i < lindex_param_count(d); i++) g[i] *= scale;
        lt->loss[l] = loss / ((double)B * R);
        total += lt->loss[l], shared++;
    }
    return shared ? total / shared : 0.0;
}

void lindex_trainer_mean_ranks(lindex_trainer *lt, dist_ctx *d, double *loss) {
    if (!d || d->size == 1) return;
    dist_mean_f32(d, lt->g, lt->n);
    dist_mean_f64(d, lt->loss, (size_t)lt->layers);
    dist_mean_f64(d, loss, 1);
}

int lindex_trainer_update(lindex_trainer *lt, sparse_heads *sh, float lr, int t) {
    adamw_config opt = {0.9f, 0.99f, 1e-8f, 0.0f};
    int bad = -1;
    for (int l = 0; l < lt->layers; l++) {
        if (!lt->on[l]) continue;
        size_t o = lt->off[l], n = lindex_param_count(&lt->dims[l]);
        if (adamw_update(lt->w + o, lt->g + o, lt->m + o, lt->v + o, n, lr, &opt, 0, t, 1.0f) && bad < 0)
            bad = l;
        lindex_scatter(sh, l, lt->w + o);
    }
    return bad;
}
