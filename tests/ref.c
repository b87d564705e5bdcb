/* ref: direct double-precision reference implementations (see ref.h). */
#include "ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

double *ref_dalloc(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    if (!p) {
        fprintf(stderr, "ref_dalloc: out of memory\n");
        abort();
    }
    return p;
}

float *ref_falloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) {
        fprintf(stderr, "ref_falloc: out of memory\n");
        abort();
    }
    return p;
}

void ref_fill_normal(float *x, size_t n, float scale, rng_t *r) {
    for (size_t i = 0; i < n; i++) x[i] = scale * rng_normal(r);
}

void ref_fill_value(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++) x[i] = v;
}

double *ref_f2d(const float *x, size_t n) {
    double *d = ref_dalloc(n);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

double ref_max_abs(const double *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(x[i]) > m) m = fabs(x[i]);
    return m;
}

double ref_rel_err(const float *a, const double *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d != d) return INFINITY; /* NaN in either: fail loudly */
        if (d > num) num = d;
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return num / (den > 0 ? den : 1.0);
}

double ref_rel_err_dd(const double *a, const double *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (d != d) return INFINITY;
        if (d > num) num = d;
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return num / (den > 0 ? den : 1.0);
}

size_t ref_argmax_err(const float *a, const double *b, size_t n) {
    size_t best = 0;
    double m = -1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d != d) return i;
        if (d > m) {
            m = d;
            best = i;
        }
    }
    return best;
}

/* ---------------------------------------------------------------- gemm */

void ref_gemm(int trans_a, int trans_b, int M, int N, int K, double alpha, const double *A,
              int lda, const double *B, int ldb, double beta, double *C, int ldc) {
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                double a = trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += a * b;
            }
            double *c = &C[(size_t)i * ldc + j];
            *c = alpha * s + (beta == 0 ? 0.0 : beta * *c);
        }
    }
}

/* ---------------------------------------------------------------- encoder */

void ref_encoder_forward(double *out, const int *inp, const double *wte, const double *wpe,
                         int B, int T, int C) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int tok = inp[b * T + t];
            for (int c = 0; c < C; c++)
                out[((size_t)b * T + t) * C + c] =
                    wte[(size_t)tok * C + c] + (wpe ? wpe[(size_t)t * C + c] : 0.0);
        }
}

/* ---------------------------------------------------------------- RoPE */

/* The rotation of rope.h written out directly: for every row, q and k of every head, the
 * pair (x[i], x[i+hs/2]) turned by theta = (pos0+t) * scale * base^(-2i/hs), in double. */
void ref_rope_forward(double *qkv, int B, int T, int C, int H, int pos0, double base,
                      double scale) {
    int hs = C / H, half = hs / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int v = 0; v < 2 * H; v++) {
                double *x = qkv + ((size_t)b * T + t) * 3 * C + (size_t)v * hs;
                for (int i = 0; i < half; i++) {
                    double th = (pos0 + t) * scale * pow(base, -2.0 * i / hs);
                    double x0 = x[i], x1 = x[i + half];
                    x[i] = x0 * cos(th) - x1 * sin(th);
                    x[i + half] = x0 * sin(th) + x1 * cos(th);
                }
            }
}

void ref_encoder_backward(double *dwte, double *dwpe, const double *dout, const int *inp, int B,
                          int T, int C) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int tok = inp[b * T + t];
            for (int c = 0; c < C; c++) {
                double d = dout[((size_t)b * T + t) * C + c];
                dwte[(size_t)tok * C + c] += d;
                dwpe[(size_t)t * C + c] += d;
            }
        }
}

/* ---------------------------------------------------------------- layernorm */

static void ln_stats(const double *x, int C, double *mean, double *rstd) {
    double m = 0;
    for (int c = 0; c < C; c++) m += x[c];
    m /= C;
    double v = 0;
    for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
    v /= C; /* biased variance, as PyTorch's LayerNorm */
    *mean = m;
    *rstd = 1.0 / sqrt(v + 1e-5);
}

void ref_layernorm_forward(double *out, double *mean, double *rstd, const double *inp,
                           const double *w, const double *b, int N, int C) {
    for (int i = 0; i < N; i++) {
        const double *x = inp + (size_t)i * C;
        double m, rs;
        ln_stats(x, C, &m, &rs);
        for (int c = 0; c < C; c++) out[(size_t)i * C + c] = (x[c] - m) * rs * w[c] + b[c];
        if (mean) mean[i] = m;
        if (rstd) rstd[i] = rs;
    }
}

/* y_c = xhat_c w_c + b_c,  xhat_c = (x_c - m) r,  m = mean x,  r = (var x + eps)^-1/2.
 * dL/dx_j = r (g_j - mean_c g_c - xhat_j mean_c(g_c xhat_c)),  g_c = dL/dy_c * w_c. */
void ref_layernorm_backward(double *dinp, double *dw, double *db, const double *dout,
                            const double *inp, const double *w, int N, int C) {
    double *xhat = ref_dalloc((size_t)C);
    double *g = ref_dalloc((size_t)C);
    for (int i = 0; i < N; i++) {
        const double *x = inp + (size_t)i * C;
        const double *dy = dout + (size_t)i * C;
        double m, rs;
        ln_stats(x, C, &m, &rs);
        double mean_g = 0, mean_gx = 0;
        for (int c = 0; c < C; c++) {
            xhat[c] = (x[c] - m) * rs;
            g[c] = dy[c] * w[c];
            mean_g += g[c];
            mean_gx += g[c] * xhat[c];
        }
        mean_g /= C;
        mean_gx /= C;
        for (int c = 0; c < C; c++) {
            dinp[(size_t)i * C + c] += rs * (g[c] - mean_g - xhat[c] * mean_gx);
            dw[c] += dy[c] * xhat[c];
            db[c] += dy[c];
        }
    }
    free(xhat);
    free(g);
}

/* ---------------------------------------------------------------- matmul */

void ref_matmul_forward(double *out, const double *inp, const double *w, const double *bias,
                        int N, int C, int OC) {
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OC; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int c = 0; c < C; c++) s += inp[(size_t)i * C + c] * w[(size_t)o * C + c];
            out[(size_t)i * OC + o] = s;
        }
}

void ref_matmul_backward(double *dinp, double *dw, double *dbias, const double *dout,
                         const double *inp, const double *w, int N, int C, int OC) {
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OC; o++) {
            double d = dout[(size_t)i * OC + o];
            for (int c = 0; c < C; c++) {
                dinp[(size_t)i * C + c] += d * w[(size_t)o * C + c];
                dw[(size_t)o * C + c] += d * inp[(size_t)i * C + c];
            }
            if (dbias) dbias[o] += d;
        }
}

/* ---------------------------------------------------------------- attention */

/* probabilities p[t*T + s] of one (b, h), zero for s > t */
static void attn_probs(double *p, const double *qkv, int b, int h, int T, int C, int H) {
    int hs = C / H;
    double scale = 1.0 / sqrt((double)hs);
    for (int t = 0; t < T; t++) {
        const double *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
        double mx = -INFINITY;
        for (int s = 0; s <= t; s++) {
            const double *k = qkv + ((size_t)b * T + s) * 3 * C + C + h * hs;
            double dot = 0;
            for (int i = 0; i < hs; i++) dot += q[i] * k[i];
            p[(size_t)t * T + s] = dot * scale;
            if (p[(size_t)t * T + s] > mx) mx = p[(size_t)t * T + s];
        }
        double sum = 0;
        for (int s = 0; s <= t; s++) {
            p[(size_t)t * T + s] = exp(p[(size_t)t * T + s] - mx);
            sum += p[(size_t)t * T + s];
        }
        for (int s = 0; s <= t; s++) p[(size_t)t * T + s] /= sum;
        for (int s = t + 1; s < T; s++) p[(size_t)t * T + s] = 0.0;
    }
}

void ref_attention_forward(double *out, double *att, const double *qkv, int B, int T, int C,
                           int H) {
    int hs = C / H;
    double *p = ref_dalloc((size_t)T * T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            attn_probs(p, qkv, b, h, T, C, H);
            if (att) memcpy(att + ((size_t)b * H + h) * T * T, p, sizeof(double) * T * T);
            for (int t = 0; t < T; t++) {
                double *o = out + ((size_t)b * T + t) * C + h * hs;
                for (int i = 0; i < hs; i++) o[i] = 0;
                for (int s = 0; s <= t; s++) {
                    const double *v = qkv + ((size_t)b * T + s) * 3 * C + 2 * C + h * hs;
                    for (int i = 0; i < hs; i++) o[i] += p[(size_t)t * T + s] * v[i];
                }
            }
        }
    free(p);
}

/* s_ts = scale q_t.k_s, p_t = softmax_{s<=t}(s_t.), o_t = sum_s p_ts v_s.
 * dp_ts = do_t.v_s;  dv_s += p_ts do_t;  ds_ts = p_ts (dp_ts - sum_u p_tu dp_tu);
 * dq_t += scale sum_s ds_ts k_s;  dk_s += scale ds_ts q_t. */
void ref_attention_backward(double *dqkv, const double *dout, const double *qkv, int B, int T,
                            int C, int H) {
    int hs = C / H;
    double scale = 1.0 / sqrt((double)hs);
    double *p = ref_dalloc((size_t)T * T);
    double *dp = ref_dalloc((size_t)T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            attn_probs(p, qkv, b, h, T, C, H);
            for (int t = 0; t < T; t++) {
                const double *dot = dout + ((size_t)b * T + t) * C + h * hs;
                const double *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                double *dq = dqkv + ((size_t)b * T + t) * 3 * C + h * hs;
                double pdp = 0;
                for (int s = 0; s <= t; s++) {
                    const double *v = qkv + ((size_t)b * T + s) * 3 * C + 2 * C + h * hs;
                    double *dv = dqkv + ((size_t)b * T + s) * 3 * C + 2 * C + h * hs;
                    double d = 0;
                    for (int i = 0; i < hs; i++) {
                        d += dot[i] * v[i];
                        dv[i] += p[(size_t)t * T + s] * dot[i];
                    }
                    dp[s] = d;
                    pdp += p[(size_t)t * T + s] * d;
                }
                for (int s = 0; s <= t; s++) {
                    double ds = p[(size_t)t * T + s] * (dp[s] - pdp);
                    const double *k = qkv + ((size_t)b * T + s) * 3 * C + C + h * hs;
                    double *dk = dqkv + ((size_t)b * T + s) * 3 * C + C + h * hs;
                    for (int i = 0; i < hs; i++) {
                        dq[i] += scale * ds * k[i];
                        dk[i] += scale * ds * q[i];
                    }
                }
            }
        }
    free(p);
    free(dp);
}

/* ---------------------------------------------------------------- gelu */

#define REF_GELU_K 0.7978845608028654 /* sqrt(2/pi) */

double ref_gelu(double x) {
    return 0.5 * x * (1.0 + tanh(REF_GELU_K * (x + 0.044715 * x * x * x)));
}

void ref_gelu_forward(double *out, const double *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = ref_gelu(inp[i]);
}

/* d/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) K (1 + 3 * 0.044715 x^2),  u = K (x + 0.044715 x^3) */
void ref_gelu_backward(double *dinp, const double *inp, const double *dout, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double x = inp[i];
        double th = tanh(REF_GELU_K * (x + 0.044715 * x * x * x));
        double d = 0.5 * (1.0 + th) +
                   0.5 * x * (1.0 - th * th) * REF_GELU_K * (1.0 + 3.0 * 0.044715 * x * x);
        dinp[i] += d * dout[i];
    }
}

/* ---------------------------------------------------------------- residual */

void ref_residual_forward(double *out, const double *a, const double *b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void ref_residual_backward(double *da, double *db, const double *dout, size_t n) {
    for (size_t i = 0; i < n; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

/* ---------------------------------------------------------------- softmax + cross-entropy */

void ref_crossentropy_softmax_forward(double *probs, double *losses, const double *logits,
                                      const int *targets, int N, int V, int Vp) {
    for (int i = 0; i < N; i++) {
        const double *l = logits + (size_t)i * Vp;
        double *p = probs + (size_t)i * Vp;
        double mx = -INFINITY;
        for (int j = 0; j < V; j++)
            if (l[j] > mx) mx = l[j];
        double sum = 0;
        for (int j = 0; j < V; j++) sum += exp(l[j] - mx);
        for (int j = 0; j < V; j++) p[j] = exp(l[j] - mx) / sum;
        for (int j = V; j < Vp; j++) p[j] = 0.0;
        /* -log p[target] computed as logsumexp - logit: no log(0) for tiny probabilities */
        if (losses) losses[i] = targets[i] < 0 ? 0.0 : (mx + log(sum)) - l[targets[i]];
    }
}

void ref_crossentropy_softmax_backward(double *dlogits, const double *probs, const int *targets,
                                       double dloss, int N, int V, int Vp) {
    for (int i = 0; i < N; i++)
        for (int j = 0; j < V && targets[i] >= 0; j++)
            dlogits[(size_t)i * Vp + j] +=
                (probs[(size_t)i * Vp + j] - (j == targets[i] ? 1.0 : 0.0)) * dloss;
}

/* ---------------------------------------------------------------- AdamW, schedule */

void ref_adamw_update(double *p, const double *g, double *m, double *v, size_t n, double lr,
                      double beta1, double beta2, double eps, double weight_decay, int decay,
                      int t) {
    double bc1 = 1.0 - pow(beta1, t), bc2 = 1.0 - pow(beta2, t);
    for (size_t i = 0; i < n; i++) {
        m[i] = beta1 * m[i] + (1.0 - beta1) * g[i];
        v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i];
        double mhat = m[i] / bc1, vhat = v[i] / bc2;
        p[i] -= lr * (mhat / (sqrt(vhat) + eps) + (decay ? weight_decay * p[i] : 0.0));
    }
}

/* As src/nn/nn.c (current nanoGPT): steps 0..warmup-1 ramp linearly as
 * lr*(step+1)/(warmup+1); then cosine from lr down to min_lr over [warmup, total];
 * min_lr from step total on (and whenever total <= warmup). */
double ref_lr_schedule(int step, int total, int warmup, double lr, double min_lr) {
    if (step < warmup) return lr * (step + 1) / (warmup + 1);
    if (step >= total || total <= warmup) return min_lr;
    double ratio = (double)(step - warmup) / (double)(total - warmup);
    return min_lr + 0.5 * (1.0 + cos(3.14159265358979323846 * ratio)) * (lr - min_lr);
}

/* ---------------------------------------------------------------- GPT-2 */

void ref_gpt_param_sizes(const gpt_config *c, size_t s[GPT_NUM_TENSORS]) {
    size_t Vp = (size_t)c->padded_vocab, C = (size_t)c->channels, L = (size_t)c->layers;
    size_t maxT = (size_t)c->max_seq;
    s[0] = Vp * C;        /* wte */
    s[1] = c->pos == GPT_POS_ROPE ? 0 : maxT * C; /* wpe: none with RoPE */
    s[2] = L * C;         /* ln1w */
    s[3] = L * C;         /* ln1b */
    s[4] = L * 3 * C * C; /* qkvw */
    s[5] = L * 3 * C;     /* qkvb */
    s[6] = L * C * C;     /* attprojw */
    s[7] = L * C;         /* attprojb */
    s[8] = L * C;         /* ln2w */
    s[9] = L * C;         /* ln2b */
    s[10] = L * 4 * C * C; /* fcw */
    s[11] = L * 4 * C;     /* fcb */
    s[12] = L * C * 4 * C; /* fcprojw */
    s[13] = L * C;         /* fcprojb */
    s[14] = C;             /* lnfw */
    s[15] = C;             /* lnfb */
}

size_t ref_gpt_num_params(const gpt_config *c) {
    size_t s[GPT_NUM_TENSORS], n = 0;
    ref_gpt_param_sizes(c, s);
    for (int i = 0; i < GPT_NUM_TENSORS; i++) n += s[i];
    return n;
}

double ref_gpt_loss(const gpt_config *cfg, const double *params, const int *inputs,
                    const int *targets, int B, int T, double *logits_out) {
    int C = cfg->channels, L = cfg->layers, H = cfg->heads, V = cfg->vocab, Vp = cfg->padded_vocab;
    int N = B * T;
    size_t sz[GPT_NUM_TENSORS];
    const double *t[GPT_NUM_TENSORS];
    ref_gpt_param_sizes(cfg, sz);
    const double *p = params;
    for (int i = 0; i < GPT_NUM_TENSORS; i++) {
        t[i] = p;
        p += sz[i];
    }
    const double *wte = t[0], *wpe = t[1], *ln1w = t[2], *ln1b = t[3], *qkvw = t[4],
                 *qkvb = t[5], *attprojw = t[6], *attprojb = t[7], *ln2w = t[8], *ln2b = t[9],
                 *fcw = t[10], *fcb = t[11], *fcprojw = t[12], *fcprojb = t[13], *lnfw = t[14],
                 *lnfb = t[15];

    size_t NC = (size_t)N * C;
    double *x = ref_dalloc(NC), *ln = ref_dalloc(NC), *qkv = ref_dalloc(NC * 3);
    double *atty = ref_dalloc(NC), *proj = ref_dalloc(NC), *fch = ref_dalloc(NC * 4);
    double *fchg = ref_dalloc(NC * 4);
    double *logits = ref_dalloc((size_t)N * Vp), *probs = ref_dalloc((size_t)N * Vp);
    double *losses = ref_dalloc((size_t)N);

    int rope = cfg->pos == GPT_POS_ROPE;
    ref_encoder_forward(x, inputs, wte, rope ? NULL : wpe, B, T, C);
    for (int l = 0; l < L; l++) {
        size_t lc = (size_t)l * C;
        ref_layernorm_forward(ln, NULL, NULL, x, ln1w + lc, ln1b + lc, N, C);
        ref_matmul_forward(qkv, ln, qkvw + lc * 3 * C, qkvb + lc * 3, N, C, 3 * C);
        if (rope) ref_rope_forward(qkv, B, T, C, H, 0, cfg->rope_base, cfg->rope_scale);
        ref_attention_forward(atty, NULL, qkv, B, T, C, H);
        ref_matmul_forward(proj, atty, attprojw + lc * C, attprojb + lc, N, C, C);
        ref_residual_forward(x, x, proj, NC);
        ref_layernorm_forward(ln, NULL, NULL, x, ln2w + lc, ln2b + lc, N, C);
        ref_matmul_forward(fch, ln, fcw + lc * 4 * C, fcb + lc * 4, N, C, 4 * C);
        ref_gelu_forward(fchg, fch, NC * 4);
        ref_matmul_forward(proj, fchg, fcprojw + lc * 4 * C, fcprojb + lc, N, 4 * C, C);
        ref_residual_forward(x, x, proj, NC);
    }
    ref_layernorm_forward(ln, NULL, NULL, x, lnfw, lnfb, N, C);
    ref_matmul_forward(logits, ln, wte, NULL, N, C, Vp);
    double loss = 0;
    if (targets) {
        ref_crossentropy_softmax_forward(probs, losses, logits, targets, N, V, Vp);
        int n = 0; /* the mean over the scored targets (a negative one is ignored) */
        for (int i = 0; i < N; i++) loss += losses[i], n += targets[i] >= 0;
        loss = n ? loss / n : 0.0;
    }
    if (logits_out) memcpy(logits_out, logits, sizeof(double) * N * Vp);
    free(x);
    free(ln);
    free(qkv);
    free(atty);
    free(proj);
    free(fch);
    free(fchg);
    free(logits);
    free(probs);
    free(losses);
    return loss;
}
