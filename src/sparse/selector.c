/* selector: causal top-k key selection for one head of one sequence.
 *
 * index (a lightning-indexer-style scorer, rank r, J indexer heads):
 *   qt_j = Wq_j q_t (r),  kt_s = Wk k_s (r),  w_j(t) = Ww_j . q_t + bw_j
 *   score(t, s) = sum_j w_j(t) relu(qt_j . kt_s / sqrt(r))            for s <= t
 *   params: Wq (J*r, d) | Wk (r, d) | Ww (J, d) | bw (J)
 * pos (the original design, causally masked):
 *   logits_t = W2 relu(W1 q_t + b1) + b2 over positions 0..max_seq-1, scored on s <= t
 *   params: W1 (hidden, d) | b1 (hidden) | W2 (max_seq, hidden) | b2 (max_seq)
 * block: keys in blocks of b; complete blocks before the query's own are scored
 *   by q . mean key (or the min/max bound sum_d max(q_d lo_d, q_d hi_d)); the
 *   top nblocks-1 of them plus the local block (keys floor(t/b)*b .. t) are kept.
 *   O(T/b * d) per query for the scores; no parameters.
 * The selection lists keys in descending score; the local block comes first. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/nn.h"
#include "sattn/sparse.h"

int selector_kmax(const head_spec *s, int T) {
    int k = s->sel == SEL_BLOCK ? s->nblocks * s->block : s->k;
    return k < T ? k : T;
}

size_t selector_param_count(const head_spec *s, int hs, int max_seq) {
    size_t d = (size_t)hs, J = (size_t)s->iheads, r = (size_t)s->rank, h = (size_t)s->hidden;
    switch (s->sel) {
    case SEL_INDEX: return J * r * d + r * d + J * d + J;
    case SEL_POS: return h * d + h + (size_t)max_seq * h + (size_t)max_seq;
    default: return 0;
    }
}

static void fill_normal(float *p, size_t n, float std, rng_t *rng) {
    for (size_t i = 0; i < n; i++) p[i] = std * rng_normal(rng);
}

/* index: projections ~ N(0, 1/d) so qt, kt start at the scale of q, k; the indexer
 * head weights start at w_j = 1 (bias) so every head contributes from the start. */
void selector_init(const head_spec *s, int hs, int max_seq, float *params, rng_t *rng) {
    size_t d = (size_t)hs, J = (size_t)s->iheads, r = (size_t)s->rank, h = (size_t)s->hidden;
    float sd = 1.0f / sqrtf((float)hs);
    if (s->sel == SEL_INDEX) {
        fill_normal(params, J * r * d + r * d, sd, rng);
        fill_normal(params + J * r * d + r * d, J * d, 0.02f, rng);
        for (size_t j = 0; j < J; j++) params[(J * r + r + J) * d + j] = 1.0f;
    } else if (s->sel == SEL_POS) {
        fill_normal(params, h * d, sd, rng);
        memset(params + h * d, 0, h * sizeof(float));
        fill_normal(params + h * d + h, (size_t)max_seq * h, 1.0f / sqrtf((float)h), rng);
        memset(params + h * d + h + (size_t)max_seq * h, 0, (size_t)max_seq * sizeof(float));
    }
}

size_t selector_work_floats(const head_spec *s, int hs, int T) {
    size_t t = (size_t)T, J = (size_t)s->iheads, r = (size_t)s->rank;
    switch (s->sel) {
    /* Qt, Kt, W, A_j (J of T x T), score, dscore/dA, dQt, dKt, dW */
    case SEL_INDEX: return t * J * r + t * r + t * J + J * t * t + 2 * t * t + t * J * r + t * r + t * J;
    /* hidden acts, logits, dlogits/dh */
    case SEL_POS: return t * (size_t)s->hidden * 2 + 2 * t * t;
    /* summaries (2 per block for bounds), block scores, top scores, a query tile's block scores */
    case SEL_BLOCK: return (2 * (t / (size_t)s->block + 1)) * (size_t)hs + (2 + BLOCK_QTILE) * (t / (size_t)s->block + 1);
    default: return 0;
    }
}

size_t selector_select_work_floats(const head_spec *s, int hs, int T) {
    if (s->sel != SEL_INDEX) return selector_work_floats(s, hs, T);
    size_t t = (size_t)T, J = (size_t)s->iheads, r = (size_t)s->rank;
    size_t rows = t < INDEX_QTILE ? t : INDEX_QTILE;
    return t * (J * r + r + J) + 2 * rows * t; /* Qt, Kt, W; one A and S tile */
}

/* ---- top-k of one row ---- */

/* Entry a ranks below entry b: a lower score, or an equal score and a later key.
 * FIX (tests/test_sparse.c select_ties_earlier_key): the heap used to compare scores
 * only, so among tied scores it could evict an earlier key and keep a later one, and
 * list tied keys in any order, contrary to "ties go to the earlier key" below. */
static int heap_below(const float *hs, const int *hi, int a, int b) {
    return hs[a] < hs[b] || (hs[a] == hs[b] && hi[a] > hi[b]);
}

/* Sift-down in a min-heap of (score, index) by heap_below (the lowest-ranked on top). */
static void heap_down(float *hs, int *hi, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && heap_below(hs, hi, l, m)) m = l;
        if (r < n && heap_below(hs, hi, r, m)) m = r;
        if (m == i) return;
        float ts = hs[i];
        int ti = hi[i];
        hs[i] = hs[m], hi[i] = hi[m], hs[m] = ts, hi[m] = ti;
        i = m;
    }
}

/* A min-heap of the k best so far (the lowest-ranked on top); a key replaces the top
 * when it ranks above it. A buffer + quickselect variant measured no faster here: both
 * are bound by mispredicted data-dependent branches (about 9 us a row of 1024, k 32). */
int selector_topk(const float *row, int n, int k, float *sc, int *ix) {
    if (k > n) k = n;
    /* FIX (tests/test_sparse.c): k = 0 (block with nblocks = 1) used to compare row[s]
     * with the uninitialised sc[0] and write sc[0]/ix[0] (harmless, but read garbage). */
    if (k <= 0) return 0;
    for (int s = 0; s < k; s++) sc[s] = row[s], ix[s] = s;
    for (int i = k / 2 - 1; i >= 0; i--) heap_down(sc, ix, k, i);
    for (int s = k; s < n; s++)
        if (row[s] > sc[0]) {
            sc[0] = row[s], ix[0] = s;
            heap_down(sc, ix, k, 0);
        }
    /* heap sort: repeatedly move the minimum to the end -> descending order */
    for (int m = k - 1; m > 0; m--) {
        float ts = sc[0];
        int ti = ix[0];
        sc[0] = sc[m], ix[0] = ix[m], sc[m] = ts, ix[m] = ti;
        heap_down(sc, ix, m, 0);
    }
    return k;
}

/* Dynamic k: the smallest m in [k_min, count] whose share of softmax(row[0..n)) mass
 * (taken in descending order, as sc holds it) reaches tau. */
static int dynamic_count(const float *row, int n, const float *sc, int count, const head_spec *s) {
    float mx = sc[0];
    double z = 0.0, acc = 0.0;
    for (int i = 0; i < n; i++) z += exp((double)row[i] - mx);
    for (int m = 0; m < count; m++) {
        acc += exp((double)sc[m] - mx) / z;
        if (m + 1 >= s->k_min && acc >= s->tau) return m + 1;
    }
    return count;
}

int selector_dynamic_k(const head_spec *s, const float *row, int n, const float *sc, int count) {
    return dynamic_count(row, n, sc, count, s);
}

/* Top-k (or dynamic k) selection of query t from its score row (valid on s <= t). */
static void select_row(const head_spec *s, const float *row, int t, int kmax, int *idx,
                       float *score, int *count) {
    int c = selector_topk(row, t + 1, kmax, score + (size_t)t * kmax, idx + (size_t)t * kmax);
    if (s->tau > 0.0f) c = dynamic_count(row, t + 1, score + (size_t)t * kmax, c, s);
    count[t] = c;
}

/* The same for every row of full score rows S (T x T). */
static void select_rows(const head_spec *s, const float *S, int T, int kmax, int *idx, float *score,
                        int *count) {
    for (int t = 0; t < T; t++) select_row(s, S + (size_t)t * T, t, kmax, idx, score, count);
}

/* ---- index ---- */

typedef struct {
    float *Qt, *Kt, *W, *A, *S, *dS, *dQt, *dKt, *dW;
} index_bufs;

static index_bufs index_carve(const head_spec *s, int T, float *work) {
    size_t t = (size_t)T, J = (size_t)s->iheads, r = (size_t)s->rank;
    index_bufs b;
    b.Qt = work, b.Kt = b.Qt + t * J * r, b.W = b.Kt + t * r, b.A = b.W + t * J;
    b.S = b.A + J * t * t, b.dS = b.S + t * t, b.dQt = b.dS + t * t, b.dKt = b.dQt + t * J * r;
    b.dW = b.dKt + t * r;
    return b;
}

/* Qt = q Wq^T (T, J*r), Kt = k Wk^T (T, r), W = q Ww^T + bw (T, J). */
static void index_project(const head_spec *s, const float *params, int hs, const float *q,
                          const float *k, int ld, int T, const index_bufs *b, op_count *cnt) {
    int J = s->iheads, r = s->rank, d = hs;
    const float *Wq = params, *Wk = Wq + (size_t)J * r * d, *Ww = Wk + (size_t)r * d, *bw = Ww + (size_t)J * d;
    nn_sgemm(0, 1, T, J * r, d, 1.0f, q, ld, Wq, d, 0.0f, b->Qt, J * r);
    nn_sgemm(0, 1, T, r, d, 1.0f, k, ld, Wk, d, 0.0f, b->Kt, r);
    nn_sgemm(0, 1, T, J, d, 1.0f, q, ld, Ww, d, 0.0f, b->W, J);
    op_count_gemm(cnt, T, J * r, d, 0);
    op_count_gemm(cnt, T, r, d, 0);
    op_count_gemm(cnt, T, J, d, 0);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < J; j++) b->W[t * J + j] += bw[j];
}

/* The training path keeps every A_j = Qt_j Kt^T / sqrt(r) (T x T, unmasked: the
 * backward's GEMMs read whole rows) and S = sum_j W_j relu(A_j). */
static index_bufs index_scores(const head_spec *s, const float *params, int hs, const float *q,
                               const float *k, int ld, int T, float *work) {
    int J = s->iheads, r = s->rank;
    index_bufs b = index_carve(s, T, work);
    index_project(s, params, hs, q, k, ld, T, &b, NULL);
    float sc = 1.0f / sqrtf((float)r);
    for (int j = 0; j < J; j++)
        nn_sgemm(0, 1, T, T, r, sc, b.Qt + j * r, J * r, b.Kt, r, 0.0f, b.A + (size_t)j * T * T, T);
    for (int t = 0; t < T; t++) {
        float *row = b.S + (size_t)t * T;
        memset(row, 0, (size_t)T * sizeof(float));
        for (int j = 0; j < J; j++) {
            const float *a = b.A + (size_t)j * T * T + (size_t)t * T;
            float w = b.W[t * J + j];
            vec_relu_axpy(row, w, a, t + 1);
        }
    }
    return b;
}

/* Selection only: the scores stream over query tiles [t0, t0+n) of INDEX_QTILE rows
 * against keys [0, t0+n) (the masked triangle is skipped tile by tile, and no J x T x T
 * buffer exists):  A_j = Qt_j,tile Kt^T / sqrt(r) (n x nk),  S_tile = sum_j W_j relu(A_j),
 * then each row's top-k. The same scores as index_scores, summed in the same order. */
static void index_select(const head_spec *s, const float *params, int hs, const float *q,
                         const float *k, int ld, int T, int kmax, int *idx, float *score,
                         int *count, float *work, op_count *cnt) {
    int J = s->iheads, r = s->rank;
    index_bufs b = index_carve(s, T, work);
    index_project(s, params, hs, q, k, ld, T, &b, cnt);
    /* A and S tiles of at most min(INDEX_QTILE, T) rows of nk <= T: within
     * selector_select_work_floats, and within selector_work_floats (J T^2 + 2 T^2) */
    float sc = 1.0f / sqrtf((float)r), *A = b.A;
    float *S = A + (size_t)(T < INDEX_QTILE ? T : INDEX_QTILE) * T;
    for (int t0 = 0; t0 < T; t0 += INDEX_QTILE) {
        int n = T - t0 < INDEX_QTILE ? T - t0 : INDEX_QTILE, nk = t0 + n;
        memset(S, 0, (size_t)n * nk * sizeof(float));
        for (int j = 0; j < J; j++) {
            nn_sgemm(0, 1, n, nk, r, sc, b.Qt + (size_t)t0 * J * r + j * r, J * r, b.Kt, r, 0.0f, A, nk);
            op_count_gemm(cnt, n, nk, r, 0);
            for (int i = 0; i < n; i++) {
                const float *a = A + (size_t)i * nk;
                float *row = S + (size_t)i * nk, w = b.W[(size_t)(t0 + i) * J + j];
                vec_relu_axpy(row, w, a, t0 + i + 1);
            }
        }
        for (int i = 0; i < n; i++) select_row(s, S + (size_t)i * nk, t0 + i, kmax, idx, score, count);
    }
}

/* dS = softmax(S_t) - P_t on s <= t (0 beyond); returns sum_t KL(P_t || softmax(S_t)). */
static double kl_rows(const float *S, float *dS, const float *P, int ldp, int T) {
    double loss = 0.0;
    for (int t = 0; t < T; t++) {
        const float *row = S + (size_t)t * T, *p = P + (size_t)t * ldp;
        float *g = dS + (size_t)t * T, mx = -INFINITY;
        for (int u = 0; u <= t; u++) mx = row[u] > mx ? row[u] : mx;
        double z = 0.0;
        for (int u = 0; u <= t; u++) z += exp((double)row[u] - mx);
        double logz = log(z) + mx;
        for (int u = 0; u <= t; u++) {
            double logq = row[u] - logz;
            g[u] = (float)(exp(logq) - p[u]);
            if (p[u] > 0.0f) loss += p[u] * (log((double)p[u]) - logq);
        }
        memset(g + t + 1, 0, (size_t)(T - t - 1) * sizeof(float));
    }
    return loss;
}

/* Backward of index_scores given dS (see the header comment for the chain):
 * dW_j(t) = sum_s dS relu(A_j); dA_j = dS W_j [A_j > 0] (in place over A_j);
 * dQt_j = dA_j Kt / sqrt(r); dKt = sum_j dA_j^T Qt_j / sqrt(r); then the projections. */
static void index_backward(const head_spec *s, float *dparams, int hs, const float *q,
                           const float *k, int ld, int T, index_bufs *b) {
    int J = s->iheads, r = s->rank, d = hs;
    float *dWq = dparams, *dWk = dWq + (size_t)J * r * d, *dWw = dWk + (size_t)r * d, *dbw = dWw + (size_t)J * d;
    float sc = 1.0f / sqrtf((float)r);
    memset(b->dW, 0, (size_t)T * J * sizeof(float));
    for (int j = 0; j < J; j++) {
        float *A = b->A + (size_t)j * T * T;
        for (int t = 0; t < T; t++) {
            float *a = A + (size_t)t * T, w = b->W[t * J + j], acc = 0.0f;
            const float *g = b->dS + (size_t)t * T;
            for (int u = 0; u <= t; u++) {
                float pos = a[u] > 0.0f;
                acc += g[u] * a[u] * pos;
                a[u] = g[u] * w * pos;
            }
            memset(a + t + 1, 0, (size_t)(T - t - 1) * sizeof(float));
            b->dW[t * J + j] = acc;
        }
        nn_sgemm(0, 0, T, r, T, sc, A, T, b->Kt, r, 0.0f, b->dQt + j * r, J * r);
        nn_sgemm(1, 0, T, r, T, sc, A, T, b->Qt + j * r, J * r, j ? 1.0f : 0.0f, b->dKt, r);
    }
    nn_sgemm(1, 0, J * r, d, T, 1.0f, b->dQt, J * r, q, ld, 1.0f, dWq, d);
    nn_sgemm(1, 0, r, d, T, 1.0f, b->dKt, r, k, ld, 1.0f, dWk, d);
    nn_sgemm(1, 0, J, d, T, 1.0f, b->dW, J, q, ld, 1.0f, dWw, d);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < J; j++) dbw[j] += b->dW[t * J + j];
}

/* ---- pos ---- */

/* H = relu(q W1^T + b1) (T, hidden); S[t, s] = (H W2^T + b2)[t, s] for the first T positions. */
static void pos_scores(const head_spec *s, const float *params, int hs, int max_seq, const float *q,
                       int ld, int T, float *H, float *S, op_count *cnt) {
    int h = s->hidden, d = hs;
    const float *W1 = params, *b1 = W1 + (size_t)h * d, *W2 = b1 + h, *b2 = W2 + (size_t)max_seq * h;
    nn_sgemm(0, 1, T, h, d, 1.0f, q, ld, W1, d, 0.0f, H, h);
    op_count_gemm(cnt, T, h, d, 0);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < h; i++) {
            float x = H[(size_t)t * h + i] + b1[i];
            H[(size_t)t * h + i] = x > 0.0f ? x : 0.0f;
        }
    nn_sgemm(0, 1, T, T, h, 1.0f, H, h, W2, h, 0.0f, S, T);
    op_count_gemm(cnt, T, T, h, 0);
    for (int t = 0; t < T; t++)
        for (int u = 0; u < T; u++) S[(size_t)t * T + u] += b2[u];
}

/* Cross-entropy of the causally masked logits against the teacher's top-1 key. */
static double pos_ce_rows(const float *S, float *dS, const float *P, int ldp, int T) {
    double loss = 0.0;
    for (int t = 0; t < T; t++) {
        const float *row = S + (size_t)t * T, *p = P + (size_t)t * ldp;
        float *g = dS + (size_t)t * T, mx = -INFINITY;
        int target = 0;
        for (int u = 0; u <= t; u++) {
            mx = row[u] > mx ? row[u] : mx;
            target = p[u] > p[target] ? u : target;
        }
        double z = 0.0;
        for (int u = 0; u <= t; u++) z += exp((double)row[u] - mx);
        for (int u = 0; u <= t; u++) g[u] = (float)(exp((double)row[u] - mx) / z);
        g[target] -= 1.0f;
        loss += log(z) + mx - row[target];
        memset(g + t + 1, 0, (size_t)(T - t - 1) * sizeof(float));
    }
    return loss;
}

static void pos_backward(const head_spec *s, float *dparams, int hs, int max_seq, const float *params,
                         const float *q, int ld, int T, const float *H, const float *dS, float *dH) {
    int h = s->hidden, d = hs;
    const float *W2 = params + (size_t)h * d + h;
    float *dW1 = dparams, *db1 = dW1 + (size_t)h * d, *dW2 = db1 + h, *db2 = dW2 + (size_t)max_seq * h;
    nn_sgemm(1, 0, T, h, T, 1.0f, dS, T, H, h, 1.0f, dW2, h);
    for (int t = 0; t < T; t++)
        for (int u = 0; u < T; u++) db2[u] += dS[(size_t)t * T + u];
    nn_sgemm(0, 0, T, h, T, 1.0f, dS, T, W2, h, 0.0f, dH, h);
    for (size_t i = 0; i < (size_t)T * h; i++) dH[i] = H[i] > 0.0f ? dH[i] : 0.0f;
    nn_sgemm(1, 0, h, d, T, 1.0f, dH, h, q, ld, 1.0f, dW1, d);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < h; i++) db1[i] += dH[(size_t)t * h + i];
}

/* ---- block ---- */

/* Summaries of the complete blocks: mean key, or per-dimension [lo, hi] bounds. */
void selector_block_summaries(const head_spec *s, int hs, const float *k, int ld, int nb, float *sum) {
    int b = s->block;
    for (int j = 0; j < nb; j++) {
        float *m = sum + (size_t)j * 2 * hs, *hi = m + hs;
        for (int i = 0; i < hs; i++) m[i] = s->bounds ? INFINITY : 0.0f, hi[i] = -INFINITY;
        for (int u = j * b; u < (j + 1) * b; u++) {
            const float *kr = k + (size_t)u * ld;
            for (int i = 0; i < hs; i++) {
                if (s->bounds) m[i] = kr[i] < m[i] ? kr[i] : m[i], hi[i] = kr[i] > hi[i] ? kr[i] : hi[i];
                else m[i] += kr[i] / (float)b;
            }
        }
    }
}

/* q . mean key, or the upper bound sum_i max(q_i lo_i, q_i hi_i) of q . k over the block. */
float selector_block_score(const head_spec *s, const float *q, const float *m, int hs) {
    float acc = 0.0f;
    for (int i = 0; i < hs; i++) {
        if (!s->bounds) acc += q[i] * m[i];
        else {
            float a = q[i] * m[i], c = q[i] * m[hs + i];
            acc += a > c ? a : c;
        }
    }
    return acc;
}

/* Block scores of queries t0 .. t0+n-1 against the complete blocks before the tile's
 * last query's own block (nbt = floor((t0+n-1)/b), the most any row of the tile uses),
 * rows of length nb: for mean summaries one GEMM Q_tile M^T (the scoring then runs at
 * matrix-product speed, not a scalar loop); the min/max bound is not a product, so it
 * stays a loop over each row's own blocks (counted as 2 hs multiply-adds a pair). */
static void block_scores_tile(const head_spec *s, int hs, const float *q, int ld, int t0, int n,
                              int nb, const float *sum, float *bs, op_count *cnt) {
    int nbt = (t0 + n - 1) / s->block;
    if (nbt > nb) nbt = nb;
    if (nbt == 0) return;
    if (!s->bounds) {
        nn_sgemm(0, 1, n, nbt, hs, 1.0f, q + (size_t)t0 * ld, ld, sum, 2 * hs, 0.0f, bs, nb);
        op_count_gemm(cnt, n, nbt, hs, 0);
        return;
    }
    for (int i = 0; i < n; i++) {
        int local = (t0 + i) / s->block;
        for (int j = 0; j < local; j++)
            bs[(size_t)i * nb + j] = selector_block_score(s, q + (size_t)(t0 + i) * ld, sum + (size_t)j * 2 * hs, hs);
        op_count_add(cnt, 2 * (uint64_t)hs * local, 4 * (uint64_t)hs * (1 + 2 * (uint64_t)local));
    }
}

/* tile=1 (tblock.h's selection, one head): tile i = queries [i b, min((i+1) b, T)) keeps the
 * top n-1 earlier blocks j < i by qbar_{i-1} . kbar_j (qbar_{i-1} the mean of the previous
 * tile's queries: causal) and its own block; query t lists its own block's keys <= t first (score FLT_MAX), then the kept
 * blocks' keys, best block first. What the model's tile layers run (hybrid.c calls tblock
 * itself, for all heads at once); this per-head form serves eval's per-head metrics. The
 * means are summed in another order than tblock's: near-ties may go the other way. */
static void block_select_tile(const head_spec *s, int hs, const float *q, const float *k, int ld, int T,
                              int *idx, float *score, int *count, float *work, op_count *cnt) {
    int b = s->block, nb = T / b, kmax = selector_kmax(s, T);
    float *sum = work, *top = sum + (size_t)2 * (nb + 1) * hs, *bs = top + nb + 1;
    int *order = xmalloc((size_t)(nb + 1) * sizeof(int));
    float *qbar = xmalloc(((size_t)hs + 1) * sizeof(float));
    selector_block_summaries(s, hs, k, ld, nb, sum);
    for (int i = 0; i * b < T; i++) {
        int t0 = i * b, t1 = T < t0 + b ? T : t0 + b;
        /* the previous tile's pooled query (tblock.h: causal), tile 0 has no earlier block */
        for (int d = 0; d < hs; d++) qbar[d] = 0.0f;
        for (int t = t0 - (i > 0 ? b : 0); t < t0; t++)
            for (int d = 0; d < hs; d++) qbar[d] += q[(size_t)t * ld + d];
        for (int d = 0; d < hs; d++) qbar[d] /= (float)b;
        for (int j = 0; j < i; j++) bs[j] = selector_block_score(s, qbar, sum + (size_t)j * 2 * hs, hs);
        op_count_add(cnt, (uint64_t)hs * ((uint64_t)i + (uint64_t)(i > 0 ? b : 0)), 0);
        int n = selector_topk(bs, i, s->nblocks - 1, top, order);
        for (int t = t0; t < t1; t++) {
            int c = 0, *ix = idx + (size_t)t * kmax;
            float *sc = score + (size_t)t * kmax;
            for (int u = t0; u <= t; u++) ix[c] = u, sc[c++] = FLT_MAX;
            for (int j = 0; j < n; j++)
                for (int u = order[j] * b; u < (order[j] + 1) * b && c < kmax; u++) ix[c] = u, sc[c++] = top[j];
            count[t] = c;
        }
    }
    free(qbar);
    free(order);
}

static void block_select(const head_spec *s, int hs, const float *q, const float *k, int ld, int T,
                         int *idx, float *score, int *count, float *work, op_count *cnt) {
    if (s->tile) {
        block_select_tile(s, hs, q, k, ld, T, idx, score, count, work, cnt);
        return;
    }
    int b = s->block, nb = T / b, kmax = selector_kmax(s, T);
    float *sum = work, *top = sum + (size_t)2 * (nb + 1) * hs, *bs = top + nb + 1;
    int *order = xmalloc((size_t)(nb + 1) * sizeof(int));
    selector_block_summaries(s, hs, k, ld, nb, sum);
    for (int t0 = 0; t0 < T; t0 += BLOCK_QTILE) {
        int n_q = T - t0 < BLOCK_QTILE ? T - t0 : BLOCK_QTILE;
        block_scores_tile(s, hs, q, ld, t0, n_q, nb, sum, bs, cnt);
        for (int t = t0; t < t0 + n_q; t++) {
            int local = t / b, c = 0, *ix = idx + (size_t)t * kmax;
            float *sc = score + (size_t)t * kmax;
            for (int u = local * b; u <= t; u++) ix[c] = u, sc[c++] = FLT_MAX;
            int n = selector_topk(bs + (size_t)(t - t0) * nb, local, s->nblocks - 1, top, order);
            for (int j = 0; j < n; j++)
                for (int u = order[j] * b; u < (order[j] + 1) * b && c < kmax; u++) ix[c] = u, sc[c++] = top[j];
            count[t] = c;
        }
    }
    free(order);
}

/* ---- entry points ---- */

void selector_select(const head_spec *s, const float *params, int hs, int max_seq,
                     const float *q, const float *k, int ld, int T, int *idx, float *score,
                     int *count, float *work) {
    selector_select_counted(s, params, hs, max_seq, q, k, ld, T, idx, score, count, work, NULL);
}

void selector_select_counted(const head_spec *s, const float *params, int hs, int max_seq,
                             const float *q, const float *k, int ld, int T, int *idx,
                             float *score, int *count, float *work, op_count *cnt) {
    int kmax = selector_kmax(s, T);
    if (s->sel == SEL_BLOCK) {
        block_select(s, hs, q, k, ld, T, idx, score, count, work, cnt);
    } else if (s->sel == SEL_INDEX) {
        index_select(s, params, hs, q, k, ld, T, kmax, idx, score, count, work, cnt);
    } else if (s->sel == SEL_POS) {
        float *H = work, *S = H + (size_t)T * s->hidden;
        pos_scores(s, params, hs, max_seq, q, ld, T, H, S, cnt);
        select_rows(s, S, T, kmax, idx, score, count);
    } else {
        die_at(__FILE__, __LINE__, "selector_select on a dense head");
    }
}

double selector_grad(const head_spec *s, const float *params, float *dparams, int hs, int max_seq,
                     const float *q, const float *k, int ld, int T, const float *P, int ldp,
                     float *work) {
    if (s->sel == SEL_INDEX) {
        index_bufs b = index_scores(s, params, hs, q, k, ld, T, work);
        double loss = kl_rows(b.S, b.dS, P, ldp, T);
        index_backward(s, dparams, hs, q, k, ld, T, &b);
        return loss;
    }
    if (s->sel == SEL_POS) {
        size_t th = (size_t)T * s->hidden;
        float *H = work, *S = H + th, *dS = S + (size_t)T * T, *dH = dS + (size_t)T * T;
        pos_scores(s, params, hs, max_seq, q, ld, T, H, S, NULL);
        double loss = pos_ce_rows(S, dS, P, ldp, T);
        pos_backward(s, dparams, hs, max_seq, params, q, ld, T, H, dS, dH);
        return loss;
    }
    return 0.0;
}
