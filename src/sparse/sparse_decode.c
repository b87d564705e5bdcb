/* sparse_decode: single-query decode steps of the index and block selectors with the
 * softmax head (sparse_decode.h). The scoring is selector.c's (its block summaries and
 * block score are shared), the softmax headfn.c's, so a decode step selects what the
 * prefill selects for its last query. */
#include "sattn/sparse_decode.h"

#include <math.h>
#include <string.h>

#include "../nn/fastmath.h"
#include "sattn/nn.h"

/* o = sum_j softmax_j(q . k_{idx_j} / sqrt(d)) v_{idx_j} over the c selected keys: the
 * softmax head function for one query (a: c floats of scratch). */
static void gathered_softmax(const head_spec *s, int d, const float *q, const float *k, const float *v, int ld,
                             const int *idx, int c, float *o, float *a, op_count *cnt) {
    head_spec sm = *s;
    sm.fn = HFN_SOFTMAX;
    headfn_forward_counted(&sm, NULL, d, c, q, k, v, ld, 1, idx, &c, o, d, a, cnt);
}

void sparse_decode_block_side(const head_spec *s, int d, const float *k, int ld, int T, float *sum) {
    selector_block_summaries(s, d, k, ld, T / s->block, sum);
}

size_t sparse_decode_block_work(const head_spec *s, int T) {
    return 3 * ((size_t)T / (size_t)s->block + 1) + (size_t)selector_kmax(s, T);
}

int sparse_decode_block_select(const head_spec *s, int d, const float *q, int T, const float *sum, int *idx,
                               float *work, op_count *cnt) {
    int b = s->block, t = T - 1, local = t / b, kmax = selector_kmax(s, T), c = 0;
    float *bsc = work, *top = bsc + local + 1, *a = top + local + 1;
    int *order = (int *)(a + kmax); /* ints live in the float scratch: same size */
    for (int u = local * b; u <= t; u++) idx[c++] = u;
    for (int j = 0; j < local; j++) bsc[j] = selector_block_score(s, q, sum + (size_t)j * 2 * d, d);
    uint64_t w = s->bounds ? 2 : 1;
    op_count_add(cnt, w * d * local, 4 * ((uint64_t)d + w * d * local));
    int n = selector_topk(bsc, local, s->nblocks - 1, top, order);
    for (int j = 0; j < n; j++)
        for (int u = order[j] * b; u < (order[j] + 1) * b && c < kmax; u++) idx[c++] = u;
    return c;
}

int sparse_decode_block_counted(const head_spec *s, int d, const float *q, const float *k, const float *v,
                                int ld, int T, const float *sum, float *o, int *idx, float *work, op_count *cnt) {
    int c = sparse_decode_block_select(s, d, q, T, sum, idx, work, cnt);
    float *a = work + 2 * ((T - 1) / s->block + 1);
    gathered_softmax(s, d, q, k, v, ld, idx, c, o, a, cnt);
    return c;
}

int sparse_decode_block(const head_spec *s, int d, const float *q, const float *k, const float *v, int ld,
                        int T, const float *sum, float *o, int *idx, float *work) {
    return sparse_decode_block_counted(s, d, q, k, v, ld, T, sum, o, idx, work, NULL);
}

void sparse_decode_index_side(const head_spec *s, const float *params, int d, const float *k, int ld, int T,
                              float *kt) {
    const float *Wk = params + (size_t)s->iheads * s->rank * d;
    nn_sgemm(0, 1, T, s->rank, d, 1.0f, k, ld, Wk, d, 0.0f, kt, s->rank);
}

size_t sparse_decode_index_work(const head_spec *s, int T) {
    return (size_t)s->iheads * s->rank + (size_t)s->iheads + 3 * (size_t)T + 2 * (size_t)s->k;
}

/* The indexer's score row for the one query, as selector.c's index_scores computes
 * row T-1: S_u = sum_j w_j relu(qt_j . kt_u / sqrt(r)). */
static void index_row(const head_spec *s, const float *params, int d, const float *q, int T, const float *kt,
                      float *qt, float *w, float *arow, float *S, op_count *cnt) {
    int J = s->iheads, r = s->rank;
    const float *Wq = params, *Ww = Wq + (size_t)(J + 1) * r * d, *bw = Ww + (size_t)J * d;
    nn_sgemm(0, 1, 1, J * r, d, 1.0f, q, d, Wq, d, 0.0f, qt, J * r);
    nn_sgemm(0, 1, 1, J, d, 1.0f, q, d, Ww, d, 0.0f, w, J);
    op_count_gemm(cnt, 1, J * r, d, 0);
    op_count_gemm(cnt, 1, J, d, 0);
    memset(S, 0, (size_t)T * sizeof(float));
    for (int j = 0; j < J; j++) {
        float wj = w[j] + bw[j];
        nn_sgemm(0, 1, 1, T, r, 1.0f / sqrtf((float)r), qt + j * r, J * r, kt, r, 0.0f, arow, T);
        op_count_gemm(cnt, 1, T, r, 0);
        vec_relu_axpy(S, wj, arow, T);
    }
}

int sparse_decode_index_select(const head_spec *s, const float *params, int d, const float *q, int T,
                               const float *kt, int *idx, float *work, op_count *cnt) {
    int J = s->iheads, r = s->rank;
    float *qt = work, *w = qt + J * r, *arow = w + J, *S = arow + T, *top = S + T;
    index_row(s, params, d, q, T, kt, qt, w, arow, S, cnt);
    int c = selector_topk(S, T, s->k, top, idx);
    /* dynamic k, as selector_select's rows */
    return s->tau > 0.0f ? selector_dynamic_k(s, S, T, top, c) : c;
}

int sparse_decode_index_counted(const head_spec *s, const float *params, int d, const float *q,
                                const float *k, const float *v, int ld, int T, const float *kt, float *o,
                                int *idx, float *work, op_count *cnt) {
    int c = sparse_decode_index_select(s, params, d, q, T, kt, idx, work, cnt);
    float *a = work + (size_t)s->iheads * s->rank + s->iheads + 2 * (size_t)T + s->k;
    gathered_softmax(s, d, q, k, v, ld, idx, c, o, a, cnt);
    return c;
}

int sparse_decode_index(const head_spec *s, const float *params, int d, const float *q, const float *k,
                        const float *v, int ld, int T, const float *kt, float *o, int *idx, float *work) {
    return sparse_decode_index_counted(s, params, d, q, k, v, ld, T, kt, o, idx, work, NULL);
}

size_t sparse_decode_pos_work(const head_spec *s, int T) {
    return (size_t)s->hidden + (size_t)T + (size_t)s->k;
}

/* h = relu(W1 q + b1) (hidden), S_u = W2_u . h + b2_u for u < T (selector.c's pos_scores
 * for row T-1), top-k (dynamic k with tau > 0). */
int sparse_decode_pos_select(const head_spec *s, const float *params, int d, int max_seq, const float *q, int T,
                             int *idx, float *work) {
    int h = s->hidden;
    const float *W1 = params, *b1 = W1 + (size_t)h * d, *W2 = b1 + h, *b2 = W2 + (size_t)max_seq * h;
    float *H = work, *S = H + h, *top = S + T;
    nn_sgemm(0, 1, 1, h, d, 1.0f, q, d, W1, d, 0.0f, H, h);
    for (int i = 0; i < h; i++) H[i] = H[i] + b1[i] > 0.0f ? H[i] + b1[i] : 0.0f;
    nn_sgemm(0, 1, 1, T, h, 1.0f, H, h, W2, h, 0.0f, S, T);
    for (int u = 0; u < T; u++) S[u] += b2[u];
    int c = selector_topk(S, T, s->k, top, idx);
    return s->tau > 0.0f ? selector_dynamic_k(s, S, T, top, c) : c;
}

/* ------------------------------------------------------------------ tile */

size_t sparse_decode_tile_work(int b, int c) { return (size_t)b * (size_t)(c > 0 ? c : 1) + 1; }

/* Keys of kept block j for the query at t: the whole block, or i b .. t for the own one. */
static int tile_keys(int j, int b, int t) { return j == t / b ? t - j * b + 1 : b; }

/* s_u = q . k_u / sqrt(d) over the kept keys u (block by block, in kept order), m = max s,
 * p_u = e^{s_u - m}, o = sum_u p_u v_u / sum_u p_u. One block's rows are b consecutive cache
 * rows: each product is a 1 x b (or b x d) sgemm over them, as flash.h's decode step. */
void sparse_decode_tile(int d, const float *q, const float *k, const float *v, int ld, int T, int b,
                        const int *kept, int c, float *o, float *work) {
    int t = T - 1, n = 0;
    float scale = 1.0f / sqrtf((float)d), mx = -INFINITY, sum = 0.0f;
    for (int a = 0; a < c; a++) {
        int j = kept[a], nk = tile_keys(j, b, t);
        nn_sgemm(0, 1, 1, nk, d, scale, q, d, k + (size_t)j * b * ld, ld, 0.0f, work + n, nk);
        n += nk;
    }
    for (int u = 0; u < n; u++) mx = work[u] > mx ? work[u] : mx;
#pragma omp simd reduction(+ : sum)
    for (int u = 0; u < n; u++) {
        work[u] = fast_expf(work[u] - mx);
        sum += work[u];
    }
    n = 0;
    for (int a = 0; a < c; a++) {
        int j = kept[a], nk = tile_keys(j, b, t);
        nn_sgemm(0, 0, 1, d, nk, 1.0f, work + n, nk, v + (size_t)j * b * ld, ld, a ? 1.0f : 0.0f, o, d);
        n += nk;
    }
    float inv = 1.0f / sum;
    for (int x = 0; x < d; x++) o[x] *= inv;
}
