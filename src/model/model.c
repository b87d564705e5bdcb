/* model: GPT-2 forward/backward over the nn ops, with llm.c's memory layout:
 * one block each for parameters, gradients, AdamW moments and activations. */
#include "sattn/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/flash.h"
#include "sattn/rope.h"

/* Limits that keep every index inside int/size_t arithmetic with room to spare. */
#define GPT_MAX_DIM (1 << 20)

/* The position fields: RoPE needs an even head dim (it rotates pairs) and a usable base and
 * scale; learned positions carry no RoPE numbers (0), so a config has one meaning. */
static int pos_check(const gpt_config *c, sattn_err *e) {
    if (c->pos != GPT_POS_LEARNED && c->pos != GPT_POS_ROPE)
        return err_set(e, "pos = %d: expected 0 (learned) or 1 (rope)", c->pos);
    if (c->pos == GPT_POS_LEARNED) {
        if (c->rope_base != 0.0f || c->rope_scale != 0.0f)
            return err_set(e, "rope_base = %g, rope_scale = %g with learned positions: expected 0",
                           (double)c->rope_base, (double)c->rope_scale);
        return 0;
    }
    if (!isfinite(c->rope_base) || !(c->rope_base > 0.0f))
        return err_set(e, "rope_base = %g: expected a finite number > 0", (double)c->rope_base);
    if (!isfinite(c->rope_scale) || !(c->rope_scale > 0.0f))
        return err_set(e, "rope_scale = %g: expected a finite number > 0", (double)c->rope_scale);
    if ((c->channels / c->heads) % 2 != 0)
        return err_set(e, "head dim %d (channels %d / heads %d) is odd: RoPE rotates pairs, expected "
                          "an even head dim", c->channels / c->heads, c->channels, c->heads);
    return 0;
}

int gpt_config_check(const gpt_config *c, sattn_err *e) {
    const struct { const char *name; int v; } f[] = {
        {"max_seq", c->max_seq}, {"vocab", c->vocab},     {"padded_vocab", c->padded_vocab},
        {"layers", c->layers},   {"heads", c->heads},     {"channels", c->channels}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < 1 || f[i].v > GPT_MAX_DIM)
            return err_set(e, "%s = %d: expected 1..%d", f[i].name, f[i].v, GPT_MAX_DIM);
    if (c->channels % c->heads != 0)
        return err_set(e, "heads = %d does not divide channels = %d", c->heads, c->channels);
    if (c->padded_vocab < c->vocab)
        return err_set(e, "padded_vocab = %d is smaller than vocab = %d", c->padded_vocab,
                       c->vocab);
    if (c->attn != GPT_ATTN_NAIVE && c->attn != GPT_ATTN_FLASH && c->attn != GPT_ATTN_HOOK)
        return err_set(e, "attn = %d: expected 0 (naive), 1 (flash) or 2 (hook)", c->attn);
    if (c->vocab > 65536) return err_set(e, "vocab = %d: expected at most 65536", c->vocab);
    if (pos_check(c, e)) return -1;
    double params = 12.0 * c->layers * (double)c->channels * c->channels +
                    ((double)c->padded_vocab + (c->pos == GPT_POS_ROPE ? 0 : c->max_seq)) * c->channels;
    if (params > 4e9) return err_set(e, "model too large: %.3g parameters", params);
    return 0;
}

int gpt_padded_vocab(int vocab) { return vocab <= 256 ? vocab : (vocab + 127) / 128 * 128; }

void gpt_param_sizes(const gpt_config *c, size_t s[GPT_NUM_TENSORS]) {
    size_t C = (size_t)c->channels, L = (size_t)c->layers;
    size_t Vp = (size_t)c->padded_vocab, maxT = (size_t)c->max_seq;
    s[GPT_WTE] = Vp * C;             /* wte      (Vp, C) */
    s[GPT_WPE] = c->pos == GPT_POS_ROPE ? 0 : maxT * C; /* wpe (maxT, C); none with RoPE */
    s[GPT_LN1W] = L * C;             /* ln1w     (L, C) */
    s[GPT_LN1B] = L * C;             /* ln1b     (L, C) */
    s[GPT_QKVW] = L * 3 * C * C;     /* qkvw     (L, 3C, C) */
    s[GPT_QKVB] = L * 3 * C;         /* qkvb     (L, 3C) */
    s[GPT_ATTPROJW] = L * C * C;     /* attprojw (L, C, C) */
    s[GPT_ATTPROJB] = L * C;         /* attprojb (L, C) */
    s[GPT_LN2W] = L * C;             /* ln2w     (L, C) */
    s[GPT_LN2B] = L * C;             /* ln2b     (L, C) */
    s[GPT_FCW] = L * 4 * C * C;      /* fcw      (L, 4C, C) */
    s[GPT_FCB] = L * 4 * C;          /* fcb      (L, 4C) */
    s[GPT_FCPROJW] = L * C * 4 * C;  /* fcprojw  (L, C, 4C) */
    s[GPT_FCPROJB] = L * C;          /* fcprojb  (L, C) */
    s[GPT_LNFW] = C;                 /* lnfw     (C) */
    s[GPT_LNFB] = C;                 /* lnfb     (C) */
}

int gpt_param_is_matrix(int i) {
    return i == GPT_WTE || i == GPT_WPE || i == GPT_QKVW || i == GPT_ATTPROJW || i == GPT_FCW ||
           i == GPT_FCPROJW;
}

const char *gpt_param_name(int i) {
    static const char *const names[GPT_NUM_TENSORS] = {
        [GPT_WTE] = "wte",           [GPT_WPE] = "wpe",         [GPT_LN1W] = "ln1w",
        [GPT_LN1B] = "ln1b",         [GPT_QKVW] = "qkvw",       [GPT_QKVB] = "qkvb",
        [GPT_ATTPROJW] = "attprojw", [GPT_ATTPROJB] = "attprojb", [GPT_LN2W] = "ln2w",
        [GPT_LN2B] = "ln2b",         [GPT_FCW] = "fcw",         [GPT_FCB] = "fcb",
        [GPT_FCPROJW] = "fcprojw",   [GPT_FCPROJB] = "fcprojb", [GPT_LNFW] = "lnfw",
        [GPT_LNFB] = "lnfb"};
    return i >= 0 && i < GPT_NUM_TENSORS ? names[i] : "?";
}

/* The first non-finite element of x[0..n), or n. */
static size_t first_nonfinite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return n;
}

/* Which block of the model is checked, for the error: parameters or an AdamW moment. */
static int block_finite(const gpt_model *m, const float *mem, const char *what, sattn_err *e) {
    size_t off = 0;
    for (int t = 0; t < GPT_NUM_TENSORS; t++) {
        size_t n = m->param_sizes[t], i = first_nonfinite(mem + off, n);
        if (i < n)
            return err_set(e, "%s%s[%zu] is %s", what, gpt_param_name(t), i,
                           isnan(mem[off + i]) ? "nan" : mem[off + i] > 0 ? "inf" : "-inf");
        off += n;
    }
    return 0;
}

int gpt_check_finite(const gpt_model *m, sattn_err *e) {
    if (block_finite(m, m->params_mem, "parameter ", e)) return -1;
    if (m->m_mem && block_finite(m, m->m_mem, "AdamW first moment of ", e)) return -1;
    if (m->v_mem && block_finite(m, m->v_mem, "AdamW second moment of ", e)) return -1;
    return 0;
}

/* Points the 16 tensor pointers into one block, in llm.c's order. */
static void params_point(gpt_params *p, float *mem, const size_t sizes[GPT_NUM_TENSORS]) {
    float **ptrs[GPT_NUM_TENSORS] = {
        [GPT_WTE] = &p->wte,           [GPT_WPE] = &p->wpe,           [GPT_LN1W] = &p->ln1w,
        [GPT_LN1B] = &p->ln1b,         [GPT_QKVW] = &p->qkvw,         [GPT_QKVB] = &p->qkvb,
        [GPT_ATTPROJW] = &p->attprojw, [GPT_ATTPROJB] = &p->attprojb, [GPT_LN2W] = &p->ln2w,
        [GPT_LN2B] = &p->ln2b,         [GPT_FCW] = &p->fcw,           [GPT_FCB] = &p->fcb,
        [GPT_FCPROJW] = &p->fcprojw,   [GPT_FCPROJB] = &p->fcprojb,   [GPT_LNFW] = &p->lnfw,
        [GPT_LNFB] = &p->lnfb};
    for (int i = 0; i < GPT_NUM_TENSORS; i++) {
        *ptrs[i] = mem;
        mem += sizes[i];
    }
}

void gpt_create(gpt_model *m, const gpt_config *c) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    gpt_param_sizes(c, m->param_sizes);
    for (int i = 0; i < GPT_NUM_TENSORS; i++) m->num_params += m->param_sizes[i];
    m->params_mem = xmalloc_aligned(m->num_params * sizeof(float));
    memset(m->params_mem, 0, m->num_params * sizeof(float));
    params_point(&m->params, m->params_mem, m->param_sizes);
}

static void fill_normal(float *p, size_t n, float std, rng_t *rng) {
    for (size_t i = 0; i < n; i++) p[i] = std * rng_normal(rng);
}

void gpt_init_random(gpt_model *m, rng_t *rng) {
    const gpt_config *c = &m->cfg;
    gpt_params *p = &m->params;
    size_t C = (size_t)c->channels, L = (size_t)c->layers;
    float std = 0.02f, res_std = 0.02f / sqrtf(2.0f * (float)c->layers);
    memset(m->params_mem, 0, m->num_params * sizeof(float));
    fill_normal(p->wte, (size_t)c->vocab * C, std, rng); /* padded rows stay 0 */
    fill_normal(p->wpe, m->param_sizes[GPT_WPE], std, rng); /* 0 with RoPE: no draws */
    fill_normal(p->qkvw, L * 3 * C * C, std, rng);
    fill_normal(p->attprojw, L * C * C, res_std, rng);
    fill_normal(p->fcw, L * 4 * C * C, std, rng);
    fill_normal(p->fcprojw, L * 4 * C * C, res_std, rng);
    for (size_t i = 0; i < L * C; i++) p->ln1w[i] = p->ln2w[i] = 1.0f;
    for (size_t i = 0; i < C; i++) p->lnfw[i] = 1.0f;
}

static void acts_free(gpt_model *m) {
    free(m->acts_mem);
    free(m->grad_acts_mem);
    free(m->inputs);
    free(m->targets);
    m->acts_mem = m->grad_acts_mem = NULL;
    m->inputs = m->targets = NULL;
}

void gpt_free(gpt_model *m) {
    acts_free(m);
    free(m->params_mem);
    free(m->grads_mem);
    free(m->m_mem);
    free(m->v_mem);
    memset(m, 0, sizeof *m);
}

/* Lays out n buffers of the given float counts in one aligned block (each
 * start rounded to 16 floats = 64 bytes) and returns the block. */
static float *carve(float **ptrs[], const size_t sizes[], int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (sizes[i] + 15) / 16 * 16;
    float *mem = xmalloc_aligned(total * sizeof(float)), *p = mem;
    for (int i = 0; i < n; i++) {
        *ptrs[i] = p;
        p += (sizes[i] + 15) / 16 * 16;
    }
    return mem;
}

/* The activation buffers by name, in gpt_acts' field order (the order of the block). */
enum {
    A_ENCODED, A_LN1, A_LN1_MEAN, A_LN1_RSTD, A_QKV, A_ATTY, A_ATT, A_LSE, A_ATTPROJ, A_RESIDUAL2, A_LN2,
    A_LN2_MEAN, A_LN2_RSTD, A_FCH, A_FCH_GELU, A_FCPROJ, A_RESIDUAL3, A_LNF, A_LNF_MEAN, A_LNF_RSTD,
    A_LOGITS, A_PROBS, A_LOSSES, GPT_NUM_ACTS
};
/* The backward's buffers by name, in gpt_grad_acts' field order. */
enum { G_DRESIDUAL, G_DBUF_C, G_DBUF_C2, G_DQKV, G_DFCH, G_DFCH_GELU, G_DLOGITS, G_ATT_SCRATCH,
       GPT_NUM_GRAD_ACTS };

/* Float counts of the activation buffers. */
static void act_sizes(const gpt_config *c, int B, int T, size_t as[GPT_NUM_ACTS]) {
    size_t L = (size_t)c->layers, C = (size_t)c->channels, BT = (size_t)B * T;
    size_t H = (size_t)c->heads, Vp = (size_t)c->padded_vocab;
    as[A_ENCODED] = BT * C;              /* encoded   (B,T,C) */
    as[A_LN1] = L * BT * C;              /* ln1       (L,B,T,C) */
    as[A_LN1_MEAN] = L * BT;             /* ln1_mean  (L,B,T) */
    as[A_LN1_RSTD] = L * BT;             /* ln1_rstd  (L,B,T) */
    as[A_QKV] = L * BT * 3 * C;          /* qkv       (L,B,T,3C) */
    as[A_ATTY] = L * BT * C;             /* atty      (L,B,T,C) */
    as[A_ATT] = c->attn == GPT_ATTN_NAIVE ? L * B * H * T * T : 0; /* att (L,B,H,T,T), naive only */
    as[A_LSE] = c->attn == GPT_ATTN_FLASH ? L * B * H * T : 0;     /* lse (L,B,H,T), flash only */
    as[A_ATTPROJ] = L * BT * C;          /* attproj   (L,B,T,C) */
    as[A_RESIDUAL2] = L * BT * C;        /* residual2 (L,B,T,C) */
    as[A_LN2] = L * BT * C;              /* ln2       (L,B,T,C) */
    as[A_LN2_MEAN] = L * BT;             /* ln2_mean  (L,B,T) */
    as[A_LN2_RSTD] = L * BT;             /* ln2_rstd  (L,B,T) */
    as[A_FCH] = L * BT * 4 * C;          /* fch       (L,B,T,4C) */
    as[A_FCH_GELU] = L * BT * 4 * C;     /* fch_gelu  (L,B,T,4C) */
    as[A_FCPROJ] = L * BT * C;           /* fcproj    (L,B,T,C) */
    as[A_RESIDUAL3] = L * BT * C;        /* residual3 (L,B,T,C) */
    as[A_LNF] = BT * C;                  /* lnf       (B,T,C) */
    as[A_LNF_MEAN] = BT;                 /* lnf_mean  (B,T) */
    as[A_LNF_RSTD] = BT;                 /* lnf_rstd  (B,T) */
    as[A_LOGITS] = BT * Vp;              /* logits    (B,T,Vp) */
    as[A_PROBS] = BT * Vp;               /* probs     (B,T,Vp) */
    as[A_LOSSES] = BT;                   /* losses    (B,T) */
}

/* Float counts of the backward's buffers (one layer's worth, reused layer by layer). */
static void grad_act_sizes(const gpt_config *c, int B, int T, size_t gs[GPT_NUM_GRAD_ACTS]) {
    size_t C = (size_t)c->channels, BT = (size_t)B * T, Vp = (size_t)c->padded_vocab;
    gs[G_DRESIDUAL] = BT * C;                                   /* dresidual (B,T,C) */
    gs[G_DBUF_C] = BT * C;                                      /* dbuf_c    (B,T,C) */
    gs[G_DBUF_C2] = BT * C;                                     /* dbuf_c2   (B,T,C) */
    gs[G_DQKV] = BT * 3 * C;                                    /* dqkv      (B,T,3C) */
    gs[G_DFCH] = BT * 4 * C;                                    /* dfch      (B,T,4C) */
    gs[G_DFCH_GELU] = BT * 4 * C;                               /* dfch_gelu (B,T,4C) */
    gs[G_DLOGITS] = BT * Vp;                                    /* dlogits   (B,T,Vp) */
    gs[G_ATT_SCRATCH] = c->attn == GPT_ATTN_FLASH   ? flash_scratch_floats(B, T, c->channels, c->heads)
                        : c->attn == GPT_ATTN_NAIVE ? attention_scratch_floats(B, T, c->heads)
                                                    : 0; /* att_scratch; the hook brings its own */
}

static double floats_bytes(const size_t *n, int k) {
    double total = 0.0;
    for (int i = 0; i < k; i++) total += 4.0 * (double)((n[i] + 15) / 16 * 16);
    return total;
}

gpt_mem gpt_mem_estimate(const gpt_config *c, int B, int T, int training) {
    size_t ps[GPT_NUM_TENSORS], as[GPT_NUM_ACTS], gs[GPT_NUM_GRAD_ACTS];
    gpt_param_sizes(c, ps);
    act_sizes(c, B, T, as);
    grad_act_sizes(c, B, T, gs);
    gpt_mem m = {0, 0, 0};
    for (int i = 0; i < GPT_NUM_TENSORS; i++) m.params += 4.0 * (double)ps[i];
    m.optim = training ? 3.0 * m.params : 0.0; /* gradients and two AdamW moments */
    m.acts = floats_bytes(as, GPT_NUM_ACTS) + floats_bytes(gs, GPT_NUM_GRAD_ACTS) +
             2.0 * sizeof(int) * (double)B * T;
    return m;
}

static void acts_alloc(gpt_model *m, int B, int T) {
    size_t BT = (size_t)B * T;
    gpt_acts *a = &m->acts;
    float **ap[GPT_NUM_ACTS] = {
        [A_ENCODED] = &a->encoded,     [A_LN1] = &a->ln1,             [A_LN1_MEAN] = &a->ln1_mean,
        [A_LN1_RSTD] = &a->ln1_rstd,   [A_QKV] = &a->qkv,             [A_ATTY] = &a->atty,
        [A_ATT] = &a->att,             [A_LSE] = &a->lse,             [A_ATTPROJ] = &a->attproj,     [A_RESIDUAL2] = &a->residual2,
        [A_LN2] = &a->ln2,             [A_LN2_MEAN] = &a->ln2_mean,   [A_LN2_RSTD] = &a->ln2_rstd,
        [A_FCH] = &a->fch,             [A_FCH_GELU] = &a->fch_gelu,   [A_FCPROJ] = &a->fcproj,
        [A_RESIDUAL3] = &a->residual3, [A_LNF] = &a->lnf,             [A_LNF_MEAN] = &a->lnf_mean,
        [A_LNF_RSTD] = &a->lnf_rstd,   [A_LOGITS] = &a->logits,       [A_PROBS] = &a->probs,
        [A_LOSSES] = &a->losses};
    size_t as[GPT_NUM_ACTS], gs[GPT_NUM_GRAD_ACTS];
    act_sizes(&m->cfg, B, T, as);
    grad_act_sizes(&m->cfg, B, T, gs);
    acts_free(m);
    m->acts_mem = carve(ap, as, GPT_NUM_ACTS);
    if (!as[A_ATT]) a->att = NULL; /* flash, hook: no (T,T) buffer; readers of att must check */
    if (!as[A_LSE]) a->lse = NULL;
    m->acts_attn = m->cfg.attn;
    gpt_grad_acts *g = &m->grad_acts;
    float **gp[GPT_NUM_GRAD_ACTS] = {
        [G_DRESIDUAL] = &g->dresidual, [G_DBUF_C] = &g->dbuf_c,       [G_DBUF_C2] = &g->dbuf_c2,
        [G_DQKV] = &g->dqkv,           [G_DFCH] = &g->dfch,           [G_DFCH_GELU] = &g->dfch_gelu,
        [G_DLOGITS] = &g->dlogits,     [G_ATT_SCRATCH] = &g->att_scratch};
    m->grad_acts_mem = carve(gp, gs, GPT_NUM_GRAD_ACTS);
    if (!gs[G_ATT_SCRATCH]) g->att_scratch = NULL;
    m->inputs = xmalloc(BT * sizeof(int));
    m->targets = xmalloc(BT * sizeof(int));
    m->B = B;
    m->T = T;
}

/* One transformer block's forward for layer l on the residual stream x (B*T rows). */
static void block_forward(gpt_model *m, int l, const float *x, int B, int T) {
    const gpt_config *c = &m->cfg;
    const gpt_params *p = &m->params;
    gpt_acts *a = &m->acts;
    int C = c->channels, BT = B * T;
    size_t lc = (size_t)l * BT * C, lr = (size_t)l * BT;
    float *ln1 = a->ln1 + lc, *qkv = a->qkv + 3 * lc, *atty = a->atty + lc;
    float *ln2 = a->ln2 + lc, *fch = a->fch + 4 * lc, *fch_gelu = a->fch_gelu + 4 * lc;
    layernorm_forward(ln1, a->ln1_mean + lr, a->ln1_rstd + lr, x, p->ln1w + l * C, p->ln1b + l * C,
                      BT, C);
    matmul_forward(qkv, ln1, p->qkvw + (size_t)l * 3 * C * C, p->qkvb + l * 3 * C, BT, C, 3 * C);
    if (c->pos == GPT_POS_ROPE) rope_forward(qkv, B, T, C, c->heads, 0, c->rope_base, c->rope_scale);
    if (c->attn == GPT_ATTN_FLASH) {
        flash_attention_forward(atty, a->lse + (size_t)l * B * c->heads * T, qkv, B, T, C, c->heads);
    } else {
        float *att = a->att ? a->att + (size_t)l * B * c->heads * T * T : NULL;
        if (m->attn) m->attn->forward(m->attn->ctx, l, atty, att, qkv, B, T);
        else attention_forward(atty, att, qkv, B, T, C, c->heads);
    }
    matmul_forward(a->attproj + lc, atty, p->attprojw + (size_t)l * C * C, p->attprojb + l * C, BT,
                   C, C);
    residual_forward(a->residual2 + lc, x, a->attproj + lc, (size_t)BT * C);
    layernorm_forward(ln2, a->ln2_mean + lr, a->ln2_rstd + lr, a->residual2 + lc, p->ln2w + l * C,
                      p->ln2b + l * C, BT, C);
    matmul_forward(fch, ln2, p->fcw + (size_t)l * 4 * C * C, p->fcb + l * 4 * C, BT, C, 4 * C);
    gelu_forward(fch_gelu, fch, (size_t)BT * 4 * C);
    matmul_forward(a->fcproj + lc, fch_gelu, p->fcprojw + (size_t)l * 4 * C * C,
                   p->fcprojb + l * C, BT, 4 * C, C);
    residual_forward(a->residual3 + lc, a->residual2 + lc, a->fcproj + lc, (size_t)BT * C);
}

int gpt_set_context(gpt_model *m, int T, sattn_err *e) {
    const gpt_config *c = &m->cfg;
    if (T < 1 || T > GPT_MAX_DIM) return err_set(e, "context %d: expected 1..%d", T, GPT_MAX_DIM);
    if (T <= c->max_seq) return 0;
    if (c->pos != GPT_POS_ROPE)
        return err_set(e, "context %d is longer than the model's %d: learned positions have no "
                          "embedding for position %d and beyond (only a RoPE model runs longer)",
                       T, c->max_seq, c->max_seq);
    m->cfg.max_seq = T;
    return 0;
}

void gpt_forward(gpt_model *m, const int *inputs, const int *targets, int B, int T) {
    const gpt_config *c = &m->cfg;
    if (B < 1 || T < 1 || T > c->max_seq)
        die_at(__FILE__, __LINE__, "gpt_forward: B=%d T=%d (max_seq %d)", B, T, c->max_seq);
    for (int i = 0; i < B * T; i++)
        if (inputs[i] < 0 || inputs[i] >= c->vocab ||
            (targets && (targets[i] < GPT_IGNORE || targets[i] >= c->vocab)))
            die_at(__FILE__, __LINE__, "gpt_forward: token out of range [0, %d)", c->vocab);
    if (c->attn == GPT_ATTN_FLASH && m->attn)
        die_at(__FILE__, __LINE__, "gpt_forward: the sparse-head hook needs naive attention, not flash");
    if (c->attn == GPT_ATTN_HOOK && !m->attn)
        die_at(__FILE__, __LINE__, "gpt_forward: attention by the hook (GPT_ATTN_HOOK) without a hook");
    if (!m->acts_mem || B != m->B || T != m->T || m->acts_attn != c->attn) acts_alloc(m, B, T);
    int C = c->channels, BT = B * T, L = c->layers;
    memcpy(m->inputs, inputs, (size_t)BT * sizeof(int));
    m->has_targets = targets != NULL;
    if (targets) memcpy(m->targets, targets, (size_t)BT * sizeof(int));
    gpt_acts *a = &m->acts;
    const float *wpe = c->pos == GPT_POS_ROPE ? NULL : m->params.wpe; /* RoPE: no wpe rows */
    encoder_forward(a->encoded, inputs, m->params.wte, wpe, B, T, C);
    for (int l = 0; l < L; l++)
        block_forward(m, l, l == 0 ? a->encoded : a->residual3 + (size_t)(l - 1) * BT * C, B, T);
    const float *last = a->residual3 + (size_t)(L - 1) * BT * C;
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, last, m->params.lnfw, m->params.lnfb, BT, C);
    matmul_forward(a->logits, a->lnf, m->params.wte, NULL, BT, C, c->padded_vocab);
    crossentropy_softmax_forward(a->probs, a->losses, a->logits, targets, BT, c->vocab,
                                 c->padded_vocab);
    if (!targets) return;
    double sum = 0.0;
    int n = 0;
    for (int i = 0; i < BT; i++) sum += a->losses[i], n += targets[i] != GPT_IGNORE;
    m->n_targets = n;
    m->mean_loss = n ? (float)(sum / n) : 0.0f;
}

void gpt_zero_grad(gpt_model *m) {
    if (!m->grads_mem) {
        m->grads_mem = xmalloc_aligned(m->num_params * sizeof(float));
        params_point(&m->grads, m->grads_mem, m->param_sizes);
    }
    memset(m->grads_mem, 0, m->num_params * sizeof(float));
}

static void zero(float *p, size_t n) { memset(p, 0, n * sizeof(float)); }

/* Backward of block l. On entry g->dresidual holds dLoss/d(residual3[l]); on exit
 * dLoss/d(x), x the block's input. The residual adds are identities, so both
 * branches' input gradients accumulate straight into dresidual. */
static void block_backward(gpt_model *m, int l, const float *x) {
    const gpt_config *c = &m->cfg;
    const gpt_params *p = &m->params;
    gpt_params *gr = &m->grads;
    const gpt_acts *a = &m->acts;
    gpt_grad_acts *g = &m->grad_acts;
    int B = m->B, T = m->T, C = c->channels, BT = B * T;
    size_t lc = (size_t)l * BT * C, lr = (size_t)l * BT, n = (size_t)BT * C;
    zero(g->dfch_gelu, 4 * n);
    matmul_backward(g->dfch_gelu, gr->fcprojw + (size_t)l * 4 * C * C, gr->fcprojb + l * C,
                    g->dresidual, a->fch_gelu + 4 * lc, p->fcprojw + (size_t)l * 4 * C * C, BT,
                    4 * C, C);
    zero(g->dfch, 4 * n);
    gelu_backward(g->dfch, a->fch + 4 * lc, g->dfch_gelu, 4 * n);
    zero(g->dbuf_c, n);
    matmul_backward(g->dbuf_c, gr->fcw + (size_t)l * 4 * C * C, gr->fcb + l * 4 * C, g->dfch,
                    a->ln2 + lc, p->fcw + (size_t)l * 4 * C * C, BT, C, 4 * C);
    layernorm_backward(g->dresidual, gr->ln2w + l * C, gr->ln2b + l * C, g->dbuf_c,
                       a->residual2 + lc, p->ln2w + l * C, a->ln2_mean + lr, a->ln2_rstd + lr, BT, C);
    zero(g->dbuf_c, n);
    matmul_backward(g->dbuf_c, gr->attprojw + (size_t)l * C * C, gr->attprojb + l * C,
                    g->dresidual, a->atty + lc, p->attprojw + (size_t)l * C * C, BT, C, C);
    zero(g->dqkv, 3 * n);
    if (c->attn == GPT_ATTN_FLASH) {
        flash_attention_backward(g->dqkv, g->dbuf_c, a->qkv + 3 * lc, a->atty + lc,
                                 a->lse + (size_t)l * B * c->heads * T, B, T, C, c->heads,
                                 g->att_scratch);
    } else {
        const float *att = a->att ? a->att + (size_t)l * B * c->heads * T * T : NULL;
        if (m->attn)
            m->attn->backward(m->attn->ctx, l, g->dqkv, g->att_scratch, g->dbuf_c, a->qkv + 3 * lc, att, B, T);
        else
            attention_backward(g->dqkv, g->att_scratch, g->dbuf_c, a->qkv + 3 * lc, att, B, T, C, c->heads);
    }
    /* dqkv is the gradient at the rotated q, k: rotate it back to the projection's output */
    if (c->pos == GPT_POS_ROPE) rope_backward(g->dqkv, B, T, C, c->heads, 0, c->rope_base, c->rope_scale);
    zero(g->dbuf_c2, n);
    matmul_backward(g->dbuf_c2, gr->qkvw + (size_t)l * 3 * C * C, gr->qkvb + l * 3 * C, g->dqkv,
                    a->ln1 + lc, p->qkvw + (size_t)l * 3 * C * C, BT, C, 3 * C);
    layernorm_backward(g->dresidual, gr->ln1w + l * C, gr->ln1b + l * C, g->dbuf_c2, x,
                       p->ln1w + l * C, a->ln1_mean + lr, a->ln1_rstd + lr, BT, C);
}

void gpt_backward(gpt_model *m) {
    if (!m->acts_mem || !m->has_targets)
        die_at(__FILE__, __LINE__, "gpt_backward without a forward with targets");
    if (m->acts_attn != m->cfg.attn)
        die_at(__FILE__, __LINE__, "gpt_backward: cfg.attn changed since the forward");
    if (!m->grads_mem) gpt_zero_grad(m);
    const gpt_config *c = &m->cfg;
    const gpt_acts *a = &m->acts;
    gpt_grad_acts *g = &m->grad_acts;
    int BT = m->B * m->T, C = c->channels, L = c->layers;
    size_t n = (size_t)BT * C;
    zero(g->dlogits, (size_t)BT * c->padded_vocab);
    float dloss = m->n_targets ? 1.0f / (float)m->n_targets : 0.0f; /* the mean over scored targets */
    crossentropy_softmax_backward(g->dlogits, a->probs, m->targets, dloss, BT, c->vocab,
                                  c->padded_vocab);
    zero(g->dbuf_c, n);
    matmul_backward(g->dbuf_c, m->grads.wte, NULL, g->dlogits, a->lnf, m->params.wte, BT, C,
                    c->padded_vocab);
    zero(g->dresidual, n);
    layernorm_backward(g->dresidual, m->grads.lnfw, m->grads.lnfb, g->dbuf_c,
                       a->residual3 + (size_t)(L - 1) * n, m->params.lnfw, a->lnf_mean, a->lnf_rstd,
                       BT, C);
    for (int l = L - 1; l >= 0; l--)
        block_backward(m, l, l == 0 ? a->encoded : a->residual3 + (size_t)(l - 1) * n);
    float *dwpe = c->pos == GPT_POS_ROPE ? NULL : m->grads.wpe;
    encoder_backward(m->grads.wte, dwpe, g->dresidual, m->inputs, m->B, m->T, C);
}

/* vec_sumsq: the same result for any thread count and schedule. */
float gpt_grad_norm(const gpt_model *m) { return (float)sqrt(vec_sumsq(m->grads_mem, m->num_params)); }

float gpt_clip_scale(float norm, float clip) {
    return clip > 0.0f && norm > clip ? clip / (norm + 1e-6f) : 1.0f;
}

float gpt_clip_grad_norm(gpt_model *m, float clip) {
    float norm = gpt_grad_norm(m), s = gpt_clip_scale(norm, clip);
    if (s == 1.0f) return norm;
    size_t n = m->num_params;
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) m->grads_mem[i] *= s;
    return norm;
}

int gpt_update(gpt_model *m, float lr, const adamw_config *opt, int t, float grad_scale) {
    if (!m->m_mem) {
        m->m_mem = xmalloc_aligned(m->num_params * sizeof(float));
        m->v_mem = xmalloc_aligned(m->num_params * sizeof(float));
        memset(m->m_mem, 0, m->num_params * sizeof(float));
        memset(m->v_mem, 0, m->num_params * sizeof(float));
    }
    size_t off = 0;
    int bad = -1;
    for (int i = 0; i < GPT_NUM_TENSORS; i++) {
        if (adamw_update(m->params_mem + off, m->grads_mem + off, m->m_mem + off, m->v_mem + off,
                         m->param_sizes[i], lr, opt, gpt_param_is_matrix(i), t, grad_scale) &&
            bad < 0)
            bad = i;
        off += m->param_sizes[i];
    }
    return bad;
}

/* Forward FLOPs (2 per multiply-add) per token at sequence length T:
 *   per layer 24 C^2 (qkv 3C^2, proj C^2, fc 4C^2, fcproj 4C^2, x2) plus causal
 *   attention 2 * 2 * C * (T+1)/2 (q.k and p.v over the (T+1)/2 keys seen on average),
 *   plus the output head 2 C Vp. Training costs about 3x this. */
double gpt_flops_per_token(const gpt_config *c, int T) {
    double C = c->channels;
    return c->layers * (24.0 * C * C + 2.0 * C * (T + 1)) + 2.0 * C * c->padded_vocab;
}
