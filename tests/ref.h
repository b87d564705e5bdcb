/* ref: a plain double-precision reference of every op in sattn/nn.h and of the
 * whole GPT-2 loss, for the tests. Written in the most direct loop form, with
 * the same shapes and semantics as nn.h (every *_backward ACCUMULATES into its
 * gradient outputs). Its backward passes are themselves checked against
 * central finite differences of its forward passes (tests/test_nn.c), so the
 * fast float kernels are compared against something known to be right. */
#ifndef SATTN_TESTS_REF_H
#define SATTN_TESTS_REF_H

#include <stddef.h>

#include "sattn/model.h"
#include "sattn/rng.h"

/* ---- small helpers shared by the test files ---- */

/* calloc that aborts on failure */
double *ref_dalloc(size_t n);
float *ref_falloc(size_t n);
/* x[i] = scale * N(0,1) (float draws, so float and double copies are identical) */
void ref_fill_normal(float *x, size_t n, float scale, rng_t *r);
void ref_fill_value(float *x, size_t n, float v);
/* a new double copy of a float array */
double *ref_f2d(const float *x, size_t n);
double ref_max_abs(const double *x, size_t n);
/* max_i |a_i - b_i| / max_i |b_i|  (denominator 1 if b is all zero): the error
 * relative to the scale of the reference tensor b. */
double ref_rel_err(const float *a, const double *b, size_t n);
double ref_rel_err_dd(const double *a, const double *b, size_t n);
/* index of the largest |a_i - b_i| (for failure messages) */
size_t ref_argmax_err(const float *a, const double *b, size_t n);

/* ---- ops (double), mirroring nn.h ---- */

/* C = alpha op(A) op(B) + beta C, row-major (beta == 0: C is not read) */
void ref_gemm(int trans_a, int trans_b, int M, int N, int K, double alpha, const double *A,
              int lda, const double *B, int ldb, double beta, double *C, int ldc);

/* wpe NULL: no position embedding (RoPE) */
void ref_encoder_forward(double *out, const int *inp, const double *wte, const double *wpe,
                         int B, int T, int C);
/* rope.h's rotation of q and k in place, in double (angle, cos, sin and products). */
void ref_rope_forward(double *qkv, int B, int T, int C, int H, int pos0, double base,
                      double scale);
void ref_encoder_backward(double *dwte, double *dwpe, const double *dout, const int *inp, int B,
                          int T, int C);

/* mean, rstd may be NULL */
void ref_layernorm_forward(double *out, double *mean, double *rstd, const double *inp,
                           const double *w, const double *b, int N, int C);
/* recomputes the statistics from inp */
void ref_layernorm_backward(double *dinp, double *dw, double *db, const double *dout,
                            const double *inp, const double *w, int N, int C);

/* bias / dbias may be NULL */
void ref_matmul_forward(double *out, const double *inp, const double *w, const double *bias,
                        int N, int C, int OC);
void ref_matmul_backward(double *dinp, double *dw, double *dbias, const double *dout,
                         const double *inp, const double *w, int N, int C, int OC);

/* att (B,H,T,T) may be NULL; zero above the diagonal */
void ref_attention_forward(double *out, double *att, const double *qkv, int B, int T, int C,
                           int H);
/* recomputes the probabilities from qkv */
void ref_attention_backward(double *dqkv, const double *dout, const double *qkv, int B, int T,
                            int C, int H);

double ref_gelu(double x);
void ref_gelu_forward(double *out, const double *inp, size_t n);
void ref_gelu_backward(double *dinp, const double *inp, const double *dout, size_t n);

void ref_residual_forward(double *out, const double *a, const double *b, size_t n);
void ref_residual_backward(double *da, double *db, const double *dout, size_t n);

void ref_crossentropy_softmax_forward(double *probs, double *losses, const double *logits,
                                      const int *targets, int N, int V, int Vp);
void ref_crossentropy_softmax_backward(double *dlogits, const double *probs, const int *targets,
                                       double dloss, int N, int V, int Vp);

void ref_adamw_update(double *p, const double *g, double *m, double *v, size_t n, double lr,
                      double beta1, double beta2, double eps, double weight_decay, int decay,
                      int t);

/* Same schedule as src/nn/nn.c's lr_schedule (see the comment in ref.c). */
double ref_lr_schedule(int step, int total, int warmup, double lr, double min_lr);

/* ---- whole GPT-2 (double) ---- */

/* Element counts of the 16 tensors in gpt_params order, written out independently of the library. */
void ref_gpt_param_sizes(const gpt_config *c, size_t sizes[GPT_NUM_TENSORS]);
size_t ref_gpt_num_params(const gpt_config *c);

/* params: all 16 tensors back to back in gpt_params order (as gpt_model.params_mem).
 * Pre-LN GPT-2: x = wte[inp] + wpe; per layer x += attproj(attn(qkv(ln1(x))));
 * with cfg->pos == GPT_POS_ROPE: x = wte[inp] and q, k rotated (ref_rope_forward) before attn;
 * x += fcproj(gelu(fc(ln2(x)))); logits = lnf(x) @ wte^T.
 * Returns the mean cross-entropy over B*T positions (0 if targets is NULL);
 * logits (B,T,Vp), if non-NULL, receives the logits. */
double ref_gpt_loss(const gpt_config *c, const double *params, const int *inputs,
                    const int *targets, int B, int T, double *logits);

#endif
