/* nn: float32 GPT-2 ops. Matrix products go to oneDNN's sgemm; the
 * elementwise and row-wise ops are OpenMP loops over rows. */
#include "sattn/nn.h"

#include <float.h>
#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/core.h"
#include "fastmath.h"

void nn_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
              int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M == 0 || N == 0) return;
    dnnl_status_t s = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda,
                                 B, ldb, beta, C, ldc);
    if (s != dnnl_success) die_at(__FILE__, __LINE__, "dnnl_sgemm failed (status %d)", (int)s);
}

void encoder_forward(float *out, const int *inp, const float *wte, const float *wpe, int B, int T,
                     int C) {
#pragma omp parallel for
    for (int bt = 0; bt < B * T; bt++) {
        const float *e = wte + (size_t)inp[bt] * C;
        float *o = out + (size_t)bt * C;
        if (!wpe) { /* no position embedding (RoPE models) */
            for (int i = 0; i < C; i++) o[i] = e[i];
            continue;
        }
        const float *p = wpe + (size_t)(bt % T) * C;
        for (int i = 0; i < C; i++) o[i] = e[i] + p[i];
    }
}

/* Serial over rows: two rows may share a token, and a fixed order keeps it deterministic. */
void encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp, int B, int T,
                      int C) {
    for (int bt = 0; bt < B * T; bt++) {
        const float *d = dout + (size_t)bt * C;
        float *de = dwte + (size_t)inp[bt] * C;
        for (int i = 0; i < C; i++) de[i] += d[i];
        if (!dwpe) continue; /* no position embedding (RoPE models) */
        float *dp = dwpe + (size_t)(bt % T) * C;
        for (int i = 0; i < C; i++) dp[i] += d[i];
    }
}

/* Column reductions over N rows of a (N, C) matrix, used by the backward passes:
 *   db[i] += sum_n dout[n,i];  and if dw: dw[i] += sum_n dout[n,i] * (inp[n,i] - mean[n]) * rstd[n].
 * Each thread sums a fixed contiguous range of rows into its own partial row
 * (streaming memory, vectorised over i); the partials are then added in thread
 * order, so the result is the same for a given thread count. */
static void column_sums(float *dw, float *db, const float *dout, const float *inp,
                        const float *mean, const float *rstd, int N, int C) {
    int nt = omp_get_max_threads();
    float *part = xcalloc((size_t)nt * 2 * C, sizeof(float));
#pragma omp parallel num_threads(nt)
    {
        int id = omp_get_thread_num(), n0 = (int)((long)N * id / nt), n1 = (int)((long)N * (id + 1) / nt);
        float *sb = part + (size_t)id * 2 * C, *sw = sb + C;
        for (int n = n0; n < n1; n++) {
            const float *d = dout + (size_t)n * C;
#pragma omp simd
            for (int i = 0; i < C; i++) sb[i] += d[i];
            if (!dw) continue;
            const float *x = inp + (size_t)n * C;
            float mu = mean[n], rs = rstd[n];
#pragma omp simd
            for (int i = 0; i < C; i++) sw[i] += d[i] * (x[i] - mu) * rs;
        }
    }
    for (int id = 0; id < nt; id++) {
        const float *sb = part + (size_t)id * 2 * C, *sw = sb + C;
        for (int i = 0; i < C; i++) db[i] += sb[i];
        if (dw)
            for (int i = 0; i < C; i++) dw[i] += sw[i];
    }
    free(part);
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int N, int C) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float m = 0.0f, v = 0.0f;
#pragma omp simd reduction(+ : m)
        for (int i = 0; i < C; i++) m += x[i];
        m /= (float)C;
#pragma omp simd reduction(+ : v)
        for (int i = 0; i < C; i++) v += (x[i] - m) * (x[i] - m);
        float s = 1.0f / sqrtf(v / (float)C + 1e-5f);
        float *o = out + (size_t)n * C;
        for (int i = 0; i < C; i++) o[i] = (x[i] - m) * s * w[i] + b[i];
        mean[n] = m;
        rstd[n] = s;
    }
}

/* With xhat = (x - mean) * rstd and g = dout * w:
 *   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  dw += dout * xhat,  db += dout.
 * (dw, db: see column_sums.) */
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int N, int C) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
        float m = mean[n], s = rstd[n], gm = 0.0f, gxm = 0.0f;
#pragma omp simd reduction(+ : gm, gxm)
        for (int i = 0; i < C; i++) {
            float g = d[i] * w[i];
            gm += g;
            gxm += g * (x[i] - m) * s;
        }
        gm /= (float)C;
        gxm /= (float)C;
        float *dx = dinp + (size_t)n * C;
        for (int i = 0; i < C; i++) {
            float xhat = (x[i] - m) * s;
            dx[i] += s * (d[i] * w[i] - gm - xhat * gxm);
        }
    }
    column_sums(dw, db, dout, inp, mean, rstd, N, C);
}

void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int C,
                    int OC) {
    float beta = 0.0f;
    if (bias) {
#pragma omp parallel for
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    nn_sgemm(0, 1, N, OC, C, 1.0f, inp, C, w, C, beta, out, OC);
}

void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, int N, int C, int OC) {
    nn_sgemm(0, 0, N, C, OC, 1.0f, dout, OC, w, C, 1.0f, dinp, C);
    nn_sgemm(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
    if (dbias) column_sums(NULL, dbias, dout, NULL, NULL, NULL, N, OC);
}

size_t attention_scratch_floats(int B, int T, int H) {
    return (size_t)B * H * (size_t)(T < ATT_TILE ? T : ATT_TILE) * T;
}

/* In place over row p[0..n_k): p = softmax(p) on s <= t, 0 on t < s < n_k. */
static void causal_softmax_row(float *p, int t, int n_k) {
    float mx = -INFINITY, sum = 0.0f;
#pragma omp simd reduction(max : mx)
    for (int s = 0; s <= t; s++) mx = p[s] > mx ? p[s] : mx;
#pragma omp simd reduction(+ : sum)
    for (int s = 0; s <= t; s++) {
        p[s] = fast_expf(p[s] - mx);
        sum += p[s];
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int s = 0; s <= t; s++) p[s] *= inv;
    for (int s = t + 1; s < n_k; s++) p[s] = 0.0f;
}

/* One (b, h): for each row tile, S = scale * Q_tile K_{0..kmax}^T, P = causal softmax(S)
 * written into att (rows of length T, zero past the diagonal), O_tile = P V_{0..kmax}. */
static void attention_forward_head(float *o, float *P, const float *q, int T, int C, int hs,
                                   op_count *cnt) {
    const float *k = q + C, *v = q + 2 * C;
    float scale = 1.0f / sqrtf((float)hs);
    for (int t0 = 0; t0 < T; t0 += ATT_TILE) {
        int n = T - t0 < ATT_TILE ? T - t0 : ATT_TILE, kmax = t0 + n;
        float *Pt = P + (size_t)t0 * T;
        nn_sgemm(0, 1, n, kmax, hs, scale, q + (size_t)t0 * 3 * C, 3 * C, k, 3 * C, 0.0f, Pt, T);
        op_count_gemm(cnt, n, kmax, hs, 0);
        for (int i = 0; i < n; i++) {
            causal_softmax_row(Pt + (size_t)i * T, t0 + i, kmax);
            memset(Pt + (size_t)i * T + kmax, 0, (size_t)(T - kmax) * sizeof(float));
        }
        nn_sgemm(0, 0, n, hs, kmax, 1.0f, Pt, T, v, 3 * C, 0.0f, o + (size_t)t0 * C, C);
        op_count_gemm(cnt, n, hs, kmax, 0);
    }
}

static void attention_forward_impl(float *out, float *att, const float *qkv, int B, int T, int C,
                                   int H, const unsigned char *skip, op_count *cnt) {
    int hs = C / H;
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            if (!skip || !skip[h])
                attention_forward_head(out + (size_t)b * T * C + h * hs, att + ((size_t)b * H + h) * T * T,
                                   qkv + (size_t)b * T * 3 * C + h * hs, T, C, hs, cnt);
}

void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int H) {
    attention_forward_impl(out, att, qkv, B, T, C, H, NULL, NULL);
}

void attention_forward_skip(float *out, float *att, const float *qkv, int B, int T, int C, int H,
                            const unsigned char *skip) {
    attention_forward_impl(out, att, qkv, B, T, C, H, skip, NULL);
}

void attention_forward_counted(float *out, float *att, const float *qkv, int B, int T, int C, int H,
                               op_count *cnt) {
    attention_forward_impl(out, att, qkv, B, T, C, H, NULL, cnt);
}

/* One (b, h), per row tile (kmax = keys the tile sees), with D = dO_tile:
 *   dP = D V^T;  dS = P * (dP - rowsum(P * dP)) * scale   (softmax backward; 0 where P is 0)
 *   dQ_tile += dS K;  dK += dS^T Q_tile;  dV += P^T D.
 * Every product is O(n * kmax * hs): O(T^2 hs) per head in all. */
static void attention_backward_head(float *dq, float *dS, const float *dout, const float *q,
                                    const float *P, int T, int C, int hs) {
    const float *k = q + C, *v = q + 2 * C;
    float *dk = dq + C, *dv = dq + 2 * C;
    float scale = 1.0f / sqrtf((float)hs);
    for (int t0 = 0; t0 < T; t0 += ATT_TILE) {
        int n = T - t0 < ATT_TILE ? T - t0 : ATT_TILE, kmax = t0 + n;
        const float *Pt = P + (size_t)t0 * T, *D = dout + (size_t)t0 * C;
        nn_sgemm(0, 1, n, kmax, hs, 1.0f, D, C, v, 3 * C, 0.0f, dS, kmax);
        for (int i = 0; i < n; i++) {
            const float *p = Pt + (size_t)i * T;
            float *d = dS + (size_t)i * kmax, dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int s = 0; s < kmax; s++) dot += p[s] * d[s];
            for (int s = 0; s < kmax; s++) d[s] = p[s] * (d[s] - dot) * scale;
        }
        nn_sgemm(0, 0, n, hs, kmax, 1.0f, dS, kmax, k, 3 * C, 1.0f, dq + (size_t)t0 * 3 * C, 3 * C);
        nn_sgemm(1, 0, kmax, hs, n, 1.0f, dS, kmax, q + (size_t)t0 * 3 * C, 3 * C, 1.0f, dk, 3 * C);
        nn_sgemm(1, 0, kmax, hs, n, 1.0f, Pt, T, D, C, 1.0f, dv, 3 * C);
    }
}

void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                        const float *att, int B, int T, int C, int H) {
    attention_backward_skip(dqkv, scratch, dout, qkv, att, B, T, C, H, NULL);
}

void attention_backward_skip(float *dqkv, float *scratch, const float *dout, const float *qkv,
                             const float *att, int B, int T, int C, int H, const unsigned char *skip) {
    int hs = C / H;
    size_t tile = (size_t)(T < ATT_TILE ? T : ATT_TILE) * T;
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            if (skip && skip[h]) continue;
            size_t bh = (size_t)b * H + h, row = (size_t)b * T * 3 * C + h * hs;
            attention_backward_head(dqkv + row, scratch + bh * tile, dout + (size_t)b * T * C + h * hs,
                                    qkv + row, att + bh * T * T, T, C, hs);
        }
}

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_SAT 10.0f /* |x| beyond which tanh(k (x + 0.044715 x^3)) rounds to +-1 */

void gelu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd
    for (size_t i = 0; i < n; i++) {
        float x = inp[i], th = fast_tanhf(GELU_K * (x + 0.044715f * x * x * x));
        /* below -10, 1 + th is 0 in float and gelu is -0 already; the select also gives
         * gelu(-inf) = -0, not -inf * 0 = NaN (NaN still gives NaN) */
        out[i] = x < -GELU_SAT ? -0.0f : 0.5f * x * (1.0f + th);
    }
}

/* d/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx,  u = k (x + 0.044715 x^3).
 * For |x| >= GELU_SAT tanh u is exactly +-1 in float, so the second term is 0 and x is
 * clamped to +-GELU_SAT: the same numbers, without 0 * inf = NaN once x^2 overflows
 * (|x| > 1.8e19) or x is infinite (gelu'(+inf) = 1, gelu'(-inf) = 0; NaN stays NaN). */
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
#pragma omp parallel for simd
    for (size_t i = 0; i < n; i++) {
        float x = inp[i] < -GELU_SAT ? -GELU_SAT : inp[i];
        x = x > GELU_SAT ? GELU_SAT : x;
        float u = GELU_K * (x + 0.044715f * x * x * x), th = fast_tanhf(u);
        float du = GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] += dout[i] * (0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du);
    }
}

void residual_forward(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void residual_backward(float *da, float *db, const float *dout, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

void crossentropy_softmax_forward(float *probs, float *losses, const float *logits,
                                  const int *targets, int N, int V, int Vp) {
#pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float *z = logits + (size_t)i * Vp;
        float *p = probs + (size_t)i * Vp, mx = row_max(z, V, -INFINITY);
        float sum = exp_sum(p, z, V, mx);
        float inv = 1.0f / sum;
        for (int j = 0; j < V; j++) p[j] *= inv;
        for (int j = V; j < Vp; j++) p[j] = 0.0f;
        /* log-sum-exp form: exact even when probs underflows to 0; an ignored target
         * (negative) takes no loss */
        if (targets) losses[i] = targets[i] < 0 ? 0.0f : logf(sum) + mx - z[targets[i]];
    }
}

void crossentropy_softmax_backward(float *dlogits, const float *probs, const int *targets,
                                   float dloss, int N, int V, int Vp) {
#pragma omp parallel for
    for (int i = 0; i < N; i++) {
        if (targets[i] < 0) continue; /* ignored: no loss, no gradient */
        const float *p = probs + (size_t)i * Vp;
        float *d = dlogits + (size_t)i * Vp;
        for (int j = 0; j < V; j++) d[j] += p[j] * dloss;
        d[targets[i]] -= dloss;
    }
}

double vec_sumsq(const float *x, size_t n) {
    enum { CHUNK = 1 << 16 };
    size_t nchunks = (n + CHUNK - 1) / CHUNK;
    double *part = xcalloc(nchunks + 1, sizeof(double)), total = 0.0;
#pragma omp parallel for
    for (size_t k = 0; k < nchunks; k++) {
        size_t end = (k + 1) * CHUNK < n ? (k + 1) * CHUNK : n;
        double s = 0.0;
        for (size_t i = k * CHUNK; i < end; i++) s += (double)x[i] * x[i];
        part[k] = s;
    }
    for (size_t k = 0; k < nchunks; k++) total += part[k];
    free(part);
    return total;
}

int adamw_update(float *p, const float *grads, float *m, float *v, size_t n, float lr,
                 const adamw_config *cfg, int decay, int t, float grad_scale) {
    float b1 = cfg->beta1, b2 = cfg->beta2, eps = cfg->eps;
    float inv_c1 = 1.0f / (1.0f - powf(b1, (float)t)), inv_c2 = 1.0f / (1.0f - powf(b2, (float)t));
    float wd = decay ? cfg->weight_decay : 0.0f;
    int bad = 0;
    /* p and v are checked in the same pass (in registers, no extra sweep over memory):
     * a finite g can still overflow g^2 into v = inf, and m is finite whenever v is */
#pragma omp parallel for simd reduction(| : bad)
    for (size_t i = 0; i < n; i++) {
        float g = grads[i] * grad_scale;
        float mi = b1 * m[i] + (1.0f - b1) * g, vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float pi = p[i] - lr * (mi * inv_c1 / (sqrtf(vi * inv_c2) + eps) + wd * p[i]);
        p[i] = pi;
        bad |= !(fabsf(pi) <= FLT_MAX) | !(vi <= FLT_MAX);
    }
    return bad ? -1 : 0;
}

/* nanoGPT's get_lr: warmup lr*(step+1)/(warmup+1), then cosine to min_lr at `total`. */
float lr_schedule(int step, int total, int warmup, float lr, float min_lr) {
    if (step < warmup) return lr * (float)(step + 1) / (float)(warmup + 1);
    if (step >= total || total <= warmup) return min_lr;
    double ratio = (double)(step - warmup) / (double)(total - warmup);
    return min_lr + (float)(0.5 * (1.0 + cos(3.141592653589793 * ratio))) * (lr - min_lr);
}
