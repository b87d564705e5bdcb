/* headfn: the head output o_t from the selected keys S_t (see sparse.h).
 *
 * softmax (no parameters): l_j = q_t . k_{idx_j} / sqrt(d), a = softmax(l), o_t = sum_j a_j v_{idx_j}.
 *   backward: g_j = dout . v_{idx_j};  dl_j = a_j (g_j - sum_i a_i g_i);
 *   dq_t += sum_j dl_j k_{idx_j} / sqrt(d);  dk_{idx_j} += dl_j q_t / sqrt(d);  dv_{idx_j} += a_j dout.
 *   cache: a (T, kmax).
 * mlp: x_t = [v_{idx_0} .. v_{idx_kmax-1} | q_t | l_0 .. l_{kmax-1}] (slots past count are 0),
 *   o_t = W2 gelu(W1 x_t + b1) + b2;  params W1 (hidden, D) | b1 | W2 (d, hidden) | b2,
 *   D = kmax d + mlp_q d + mlp_logits kmax.  cache: X (T, D), H (T, hidden), G (T, hidden). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/nn.h"
#include "sattn/sparse.h"
#include "sattn/tcmp.h"

static int mlp_in(const head_spec *s, int hs, int kmax) {
    return kmax * hs + (s->mlp_q ? hs : 0) + (s->mlp_logits ? kmax : 0);
}

size_t headfn_param_count(const head_spec *s, int hs, int kmax) {
    if (s->sel != SEL_DENSE && s->cmp) return tcmp_param_count(hs); /* the compressed branch's gate */
    if (s->fn != HFN_MLP || s->sel == SEL_DENSE) return 0;
    size_t D = (size_t)mlp_in(s, hs, kmax), h = (size_t)s->hidden;
    return h * D + h + (size_t)hs * h + (size_t)hs;
}

/* W1 ~ N(0, 1/D), W2 ~ N(0, 1/hidden): unit-scale activations at the start. */
void headfn_init(const head_spec *s, int hs, int kmax, float *params, rng_t *rng) {
    if (headfn_param_count(s, hs, kmax) == 0) return;
    if (s->cmp) {
        tcmp_init(params, hs);
        return;
    }
    size_t D = (size_t)mlp_in(s, hs, kmax), h = (size_t)s->hidden;
    float s1 = 1.0f / sqrtf((float)D), s2 = 1.0f / sqrtf((float)h);
    for (size_t i = 0; i < h * D; i++) params[i] = s1 * rng_normal(rng);
    memset(params + h * D, 0, h * sizeof(float));
    float *W2 = params + h * D + h;
    for (size_t i = 0; i < (size_t)hs * h; i++) W2[i] = s2 * rng_normal(rng);
    memset(W2 + (size_t)hs * h, 0, (size_t)hs * sizeof(float));
}

size_t headfn_cache_floats(const head_spec *s, int hs, int kmax, int T) {
    if (s->fn == HFN_SOFTMAX) return (size_t)T * kmax;
    return (size_t)T * ((size_t)mlp_in(s, hs, kmax) + 2 * (size_t)s->hidden);
}

static float dot(const float *a, const float *b, int n) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}

/* Logits of query t over its selection, into l[0..c). */
static void sel_logits(const float *qt, const float *k, int ld, const int *ix, int c, int hs, float *l) {
    float sc = 1.0f / sqrtf((float)hs);
    for (int j = 0; j < c; j++) l[j] = dot(qt, k + (size_t)ix[j] * ld, hs) * sc;
}

/* Counted per query: c logits (dot products over hs) and c value rows summed: 2 c hs
 * multiply-adds, reading q, the c key and value rows, writing o. */
static void softmax_forward(int hs, int kmax, const float *q, const float *k, const float *v,
                            int ld, int T, const int *idx, const int *count, float *out, int ldo,
                            float *a_all, op_count *cnt) {
    for (int t = 0; t < T; t++) {
        const int *ix = idx + (size_t)t * kmax;
        int c = count[t];
        float *a = a_all + (size_t)t * kmax, *o = out + (size_t)t * ldo, mx = -INFINITY, z = 0.0f;
        sel_logits(q + (size_t)t * ld, k, ld, ix, c, hs, a);
        for (int j = 0; j < c; j++) mx = a[j] > mx ? a[j] : mx;
        for (int j = 0; j < c; j++) z += (a[j] = expf(a[j] - mx));
        memset(o, 0, (size_t)hs * sizeof(float));
        for (int j = 0; j < c; j++) {
            const float *vr = v + (size_t)ix[j] * ld;
            float w = (a[j] /= z);
            vec_axpy(o, w, vr, hs);
        }
        op_count_add(cnt, 2 * (uint64_t)c * hs, 4 * (2 * (uint64_t)c * hs + 2 * (uint64_t)hs));
    }
}

static void softmax_backward(int hs, int kmax, const float *q, const float *k, const float *v,
                             int ld, float *dq, float *dk, float *dv, int T, const int *idx,
                             const int *count, const float *dout, int ldo, const float *a_all) {
    float sc = 1.0f / sqrtf((float)hs), *g = xmalloc((size_t)kmax * sizeof(float));
    for (int t = 0; t < T; t++) {
        const int *ix = idx + (size_t)t * kmax;
        const float *a = a_all + (size_t)t * kmax, *d = dout + (size_t)t * ldo, *qt = q + (size_t)t * ld;
        int c = count[t];
        float ag = 0.0f;
        for (int j = 0; j < c; j++) ag += a[j] * (g[j] = dot(d, v + (size_t)ix[j] * ld, hs));
        for (int j = 0; j < c; j++) {
            float dl = a[j] * (g[j] - ag) * sc;
            const float *kr = k + (size_t)ix[j] * ld;
            if (dq)
                vec_axpy(dq + (size_t)t * ld, dl, kr, hs);
            if (dk)
                vec_axpy(dk + (size_t)ix[j] * ld, dl, qt, hs);
            if (dv)
                vec_axpy(dv + (size_t)ix[j] * ld, a[j], d, hs);
        }
    }
    free(g);
}

/* x_t rows of the mlp input (see the top comment). */
static void mlp_inputs(const head_spec *s, int hs, int kmax, const float *q, const float *k,
                       const float *v, int ld, int T, const int *idx, const int *count, float *X,
                       op_count *cnt) {
    int D = mlp_in(s, hs, kmax);
    for (int t = 0; t < T; t++) {
        const int *ix = idx + (size_t)t * kmax;
        int c = count[t];
        float *x = X + (size_t)t * D;
        memset(x, 0, (size_t)D * sizeof(float));
        for (int j = 0; j < c; j++) memcpy(x + (size_t)j * hs, v + (size_t)ix[j] * ld, (size_t)hs * sizeof(float));
        float *rest = x + (size_t)kmax * hs;
        if (s->mlp_q) memcpy(rest, q + (size_t)t * ld, (size_t)hs * sizeof(float)), rest += hs;
        if (s->mlp_logits) {
            sel_logits(q + (size_t)t * ld, k, ld, ix, c, hs, rest);
            op_count_add(cnt, (uint64_t)c * hs, 4 * ((uint64_t)c * hs + (uint64_t)hs));
        }
    }
}

static void mlp_forward(const head_spec *s, const float *params, int hs, int kmax, const float *q,
                        const float *k, const float *v, int ld, int T, const int *idx,
                        const int *count, float *out, int ldo, float *cache, op_count *cnt) {
    int D = mlp_in(s, hs, kmax), h = s->hidden;
    const float *W1 = params, *b1 = W1 + (size_t)h * D, *W2 = b1 + h, *b2 = W2 + (size_t)hs * h;
    float *X = cache, *H = X + (size_t)T * D, *G = H + (size_t)T * h;
    mlp_inputs(s, hs, kmax, q, k, v, ld, T, idx, count, X, cnt);
    matmul_forward(H, X, W1, b1, T, D, h);
    op_count_gemm(cnt, T, h, D, 0);
    gelu_forward(G, H, (size_t)T * h);
    for (int t = 0; t < T; t++) memcpy(out + (size_t)t * ldo, b2, (size_t)hs * sizeof(float));
    nn_sgemm(0, 1, T, hs, h, 1.0f, G, h, W2, h, 1.0f, out, ldo);
    op_count_gemm(cnt, T, hs, h, 1);
}

/* Scatters dX back onto dv (value slots), dq (q slot and logits), dk (logits). */
static void mlp_scatter(const head_spec *s, int hs, int kmax, const float *q, const float *k,
                        int ld, float *dq, float *dk, float *dv, int T, const int *idx,
                        const int *count, const float *dX) {
    int D = mlp_in(s, hs, kmax);
    float sc = 1.0f / sqrtf((float)hs);
    for (int t = 0; t < T; t++) {
        const int *ix = idx + (size_t)t * kmax;
        const float *dx = dX + (size_t)t * D, *qt = q + (size_t)t * ld;
        const float *dl = dx + (size_t)kmax * hs + (s->mlp_q ? hs : 0);
        for (int j = 0; j < count[t]; j++) {
            float *dvr = dv ? dv + (size_t)ix[j] * ld : NULL, *dkr = dk ? dk + (size_t)ix[j] * ld : NULL;
            const float *kr = k + (size_t)ix[j] * ld;
            for (int i = 0; i < hs; i++) {
                if (dvr) dvr[i] += dx[(size_t)j * hs + i];
                if (!s->mlp_logits) continue;
                if (dkr) dkr[i] += dl[j] * sc * qt[i];
                if (dq) dq[(size_t)t * ld + i] += dl[j] * sc * kr[i];
            }
        }
        if (s->mlp_q && dq)
            for (int i = 0; i < hs; i++) dq[(size_t)t * ld + i] += dx[(size_t)kmax * hs + i];
    }
}

static void mlp_backward(const head_spec *s, const float *params, float *dparams, int hs, int kmax,
                         const float *q, const float *k, int ld, float *dq, float *dk, float *dv,
                         int T, const int *idx, const int *count, const float *dout, int ldo,
                         const float *cache) {
    int D = mlp_in(s, hs, kmax), h = s->hidden;
    const float *W1 = params, *W2 = W1 + (size_t)h * D + h;
    const float *X = cache, *H = X + (size_t)T * D, *G = H + (size_t)T * h;
    float *dG = xmalloc((size_t)T * (2 * (size_t)h + D) * sizeof(float)), *dH = dG + (size_t)T * h;
    float *dX = dH + (size_t)T * h;
    nn_sgemm(0, 0, T, h, hs, 1.0f, dout, ldo, W2, h, 0.0f, dG, h);
    memset(dH, 0, (size_t)T * h * sizeof(float));
    gelu_backward(dH, H, dG, (size_t)T * h);
    if (dparams) {
        float *dW1 = dparams, *db1 = dW1 + (size_t)h * D, *dW2 = db1 + h, *db2 = dW2 + (size_t)hs * h;
        nn_sgemm(1, 0, hs, h, T, 1.0f, dout, ldo, G, h, 1.0f, dW2, h);
        nn_sgemm(1, 0, h, D, T, 1.0f, dH, h, X, D, 1.0f, dW1, D);
        for (int t = 0; t < T; t++) {
            for (int i = 0; i < hs; i++) db2[i] += dout[(size_t)t * ldo + i];
            for (int i = 0; i < h; i++) db1[i] += dH[(size_t)t * h + i];
        }
    }
    if (dq || dk || dv) {
        nn_sgemm(0, 0, T, D, h, 1.0f, dH, h, W1, D, 0.0f, dX, D);
        mlp_scatter(s, hs, kmax, q, k, ld, dq, dk, dv, T, idx, count, dX);
    }
    free(dG);
}

void headfn_forward(const head_spec *s, const float *params, int hs, int kmax, const float *q,
                    const float *k, const float *v, int ld, int T, const int *idx, const int *count,
                    float *out, int ldo, float *cache) {
    headfn_forward_counted(s, params, hs, kmax, q, k, v, ld, T, idx, count, out, ldo, cache, NULL);
}

void headfn_forward_counted(const head_spec *s, const float *params, int hs, int kmax,
                            const float *q, const float *k, const float *v, int ld, int T,
                            const int *idx, const int *count, float *out, int ldo, float *cache,
                            op_count *cnt) {
    if (s->fn == HFN_MLP) mlp_forward(s, params, hs, kmax, q, k, v, ld, T, idx, count, out, ldo, cache, cnt);
    else softmax_forward(hs, kmax, q, k, v, ld, T, idx, count, out, ldo, cache, cnt);
}

void headfn_backward(const head_spec *s, const float *params, float *dparams, int hs, int kmax,
                     const float *q, const float *k, const float *v, int ld, float *dq, float *dk,
                     float *dv, int T, const int *idx, const int *count, const float *dout,
                     int ldo, const float *cache) {
    if (s->fn == HFN_MLP)
        mlp_backward(s, params, dparams, hs, kmax, q, k, ld, dq, dk, dv, T, idx, count, dout, ldo, cache);
    else
        softmax_backward(hs, kmax, q, k, v, ld, dq, dk, dv, T, idx, count, dout, ldo, cache);
}
