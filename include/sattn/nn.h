/* nn: the float32 building blocks of a GPT-2, forward and backward.
 *
 * Layout conventions (row-major, as llm.c and PyTorch):
 *   activations are (N, C) with N = B*T rows; a Linear weight is (OC, C), so
 *   out = inp @ W^T + bias.
 *   qkv is (B, T, 3C): q in columns [0, C), k in [C, 2C), v in [2C, 3C);
 *   head h uses the hs = C/H columns starting at h*hs of each part.
 *
 * Every *_backward ACCUMULATES (+=) into all of its gradient outputs, so the
 * caller zeroes gradients once per step and branches that fan out add up. */
#ifndef SATTN_NN_H
#define SATTN_NN_H

#include <stddef.h>

#include "sattn/core.h"

/* C(M,N) = alpha * op(A)(M,K) op(B)(K,N) + beta * C, row-major, via oneDNN's
 * sgemm (measured 2x faster than OpenBLAS on this project's shapes; see
 * docs/gemm.md). Safe to call inside an OpenMP parallel region (runs serial). */
void nn_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
              int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* out(B,T,C) = wte[inp[b,t]] + wpe[t]; wpe NULL: wte[inp[b,t]] (RoPE models have no wpe).
 * The backward skips dwpe when it is NULL. */
void encoder_forward(float *out, const int *inp, const float *wte, const float *wpe, int B, int T,
                     int C);
void encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp, int B, int T,
                      int C);

/* out = (x - mean) * rstd * w + b over the last dim C, eps 1e-5; saves mean, rstd (N). */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int N, int C);
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int N, int C);

/* out(N,OC) = inp(N,C) @ w(OC,C)^T + bias(OC); bias may be NULL. */
void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int C,
                    int OC);
/* dinp += dout @ w; dw += dout^T @ inp; dbias += column sums of dout (dbias may be NULL). */
void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, int N, int C, int OC);

/* Causal multi-head attention. out(B,T,C); att(B,H,T,T) holds the softmax
 * probabilities (zero above the diagonal), the only T x T buffer kept: the
 * backward reads it, and no pre-softmax copy is stored.
 *   att[b,h,t,s] = softmax_s<=t( q_t . k_s / sqrt(hs) ),  out_t = sum_s att[t,s] v_s */
void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int H);
/* scratch: attention_scratch_floats(B,T,H) floats, reused across layers.
 * O(T^2 * hs) per (b,h) and parallel over (b,h). */
size_t attention_scratch_floats(int B, int T, int H);
void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                        const float *att, int B, int T, int C, int H);
/* The same for the heads h with skip[h] == 0 only (skip NULL = all heads); skipped
 * heads' slices of out/att/dqkv are left untouched (a sparse head fills them). */
void attention_forward_skip(float *out, float *att, const float *qkv, int B, int T, int C, int H,
                            const unsigned char *skip);
void attention_backward_skip(float *dqkv, float *scratch, const float *dout, const float *qkv,
                             const float *att, int B, int T, int C, int H, const unsigned char *skip);
/* attention_forward, adding its matrix products to cnt (core.h; a SATTN_COUNT build). */
void attention_forward_counted(float *out, float *att, const float *qkv, int B, int T, int C, int H,
                               op_count *cnt);

/* y += a x over n floats, for the gathered head functions' row updates. y and x must
 * not overlap: restrict lets the compiler vectorise (without it GCC kept the loop
 * scalar, a load-add-store chain per element that was half of block+softmax's time). */
static inline void vec_axpy(float *restrict y, float a, const float *restrict x, int n) {
#pragma omp simd
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/* y += a max(x, 0) over n floats: the index selector's weighted-ReLU sum over its
 * indexer heads. At -O2 GCC vectorises only with the pragma (and restrict): without it
 * this loop ran scalar over every causal pair. */
static inline void vec_relu_axpy(float *restrict y, float a, const float *restrict x, int n) {
#pragma omp simd
    for (int i = 0; i < n; i++) y[i] += a * (x[i] > 0.0f ? x[i] : 0.0f);
}

/* The naive kernels work on row tiles of ATT_TILE queries: a tile [t0, t0+n) only sees
 * keys [0, t0+n), so the GEMMs skip the masked upper triangle tile by tile (and
 * costmodel.h's executed-MAC count follows the same tiles). */
enum { ATT_TILE = 64 };

/* GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
void gelu_forward(float *out, const float *inp, size_t n);
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* out = a + b */
void residual_forward(float *out, const float *a, const float *b, size_t n);
void residual_backward(float *da, float *db, const float *dout, size_t n);

/* logits (N, Vp) of which the first V are real (the rest is llm.c's padding):
 * probs = softmax over [0, V) (padding gets 0), losses[i] = -log probs[i, targets[i]]. */
void crossentropy_softmax_forward(float *probs, float *losses, const float *logits,
                                  const int *targets, int N, int V, int Vp);
/* dlogits += (probs - onehot(target)) * dloss, for i < N, j < V (dloss = 1/N for the mean). */
void crossentropy_softmax_backward(float *dlogits, const float *probs, const int *targets,
                                   float dloss, int N, int V, int Vp);

/* AdamW (decoupled weight decay, bias-corrected), step t >= 1, on the gradient
 * g = grad_scale * grads (gradient clipping fused into this pass: one sweep over memory):
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= lr * ( m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + wd * p )   (wd only where decay) */
typedef struct {
    float beta1, beta2, eps, weight_decay;
} adamw_config;
/* Returns -1 when an updated parameter or second moment is not finite (a diverging run:
 * the caller stops before anything is saved), else 0. */
/* Sum of squares of x[0..n) in double, over fixed chunks reduced in a fixed order: the
 * same result for any thread count and schedule (gradient norms). */
double vec_sumsq(const float *x, size_t n);

int adamw_update(float *p, const float *grads, float *m, float *v, size_t n, float lr,
                 const adamw_config *cfg, int decay, int t, float grad_scale);

/* nanoGPT's schedule, step counting from 0:
 *   step < warmup:            lr * (step + 1) / (warmup + 1)
 *   warmup <= step < total:   min_lr + 0.5 (1 + cos(pi (step - warmup) / (total - warmup))) (lr - min_lr)
 *   step >= total:            min_lr */
float lr_schedule(int step, int total, int warmup, float lr, float min_lr);

#endif
