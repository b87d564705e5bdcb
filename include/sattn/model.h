/* model: GPT-2 (pre-LayerNorm, learned positions or RoPE, tied embedding/head, biases,
 * tanh GELU), float32. Parameters live in ONE block in llm.c's tensor order,
 * so llm.c checkpoints are a straight copy; gradients, AdamW moments and
 * activations are likewise single blocks allocated once. */
#ifndef SATTN_MODEL_H
#define SATTN_MODEL_H

#include <stddef.h>

#include "sattn/core.h"
#include "sattn/nn.h"
#include "sattn/rng.h"

typedef struct {
    int max_seq;      /* T_max: the context; learned positions: the rows of wpe */
    int vocab;        /* V: real tokens */
    int padded_vocab; /* Vp >= V: rows of wte (llm.c pads 50257 to 50304) */
    int layers;       /* L */
    int heads;        /* H, divides channels */
    int channels;     /* C */
    int attn;         /* GPT_ATTN_NAIVE (0, the default), _FLASH or _HOOK; not saved in checkpoints */
    int pos;          /* GPT_POS_LEARNED (0, the default) or GPT_POS_ROPE */
    float rope_base;  /* RoPE only: base of the frequencies (10000 in RoFormer); 0 with learned */
    float rope_scale; /* RoPE only: position interpolation factor (1: none); 0 with learned */
} gpt_config;

/* Positions (gpt_config.pos).
 * LEARNED: GPT-2's wpe (max_seq, C) added to the token embedding; exactly llm.c's layout,
 *   the only kind llm.c's checkpoint format holds; no forward past max_seq.
 * ROPE: no position embedding. The wpe tensor has 0 elements (the parameter count, the
 *   layout and every other tensor's offset are independent of max_seq, so running or
 *   fine-tuning at a longer context is a change of cfg.max_seq only: gpt_set_context).
 *   rope.h rotates q and k of every head after the qkv projection, position p = t *
 *   rope_scale, base rope_base; acts.qkv holds the rotated q, k, so every reader of it
 *   (naive, flash, the sparse-head hook, teacher statistics) sees what attention saw.
 *   The head dim C/H must be even. See docs/rope.md. */
enum { GPT_POS_LEARNED = 0, GPT_POS_ROPE = 1 };
#define GPT_ROPE_BASE_DEFAULT 10000.0f

/* How the dense model runs attention (gpt_config.attn).
 * NAIVE: nn.h's attention_forward/backward, keeping every head's (T,T) softmax in acts.att
 *   (L*B*H*T*T floats). Needed by everything that reads the probabilities: teacher
 *   collection, distillation, sparse_eval's attention statistics, and the sparse-head hook
 *   (gpt_attn_hook), so those refuse a flash model (die with a message).
 * FLASH: flash.h's tiled kernels: only the log-sum-exp acts.lse (L,B,H,T) is kept and the
 *   backward recomputes the probabilities; acts.att is NULL. Activation memory is linear in T.
 *   The result equals NAIVE to float rounding (not bit for bit).
 * HOOK: every head of every layer is replaced by the hook (gpt_attn_hook; a natively
 *   sparse model, hybrid.h with an all-sparse plan): neither acts.att nor acts.lse is
 *   allocated and the hook is handed att = NULL, so activation memory is linear in T. A
 *   forward without a hook dies. */
enum { GPT_ATTN_NAIVE = 0, GPT_ATTN_FLASH = 1, GPT_ATTN_HOOK = 2 };

/* Checks every dimension (positive, H divides C, Vp >= V, sizes that fit) and the positions
 * (pos known; RoPE: even head dim, finite base and scale > 0; learned: both 0); error names
 * the field. */
int gpt_config_check(const gpt_config *c, sattn_err *e);
/* Vp for a given V: V rounded up to a multiple of 128 when V > 256, else V. */
int gpt_padded_vocab(int vocab);

/* The 16 parameter tensors by name, in llm.c's order: gpt_params' field order, the order
 * of the parameter block and of both checkpoint formats. Indices into param_sizes. */
enum {
    GPT_WTE,      /* token embedding, tied with the output head */
    GPT_WPE,      /* position embedding */
    GPT_LN1W,     /* per layer: LayerNorm before attention, weight and bias */
    GPT_LN1B,
    GPT_QKVW,     /* per layer: attention's q, k, v projection */
    GPT_QKVB,
    GPT_ATTPROJW, /* per layer: attention's output projection */
    GPT_ATTPROJB,
    GPT_LN2W,     /* per layer: LayerNorm before the MLP */
    GPT_LN2B,
    GPT_FCW,      /* per layer: MLP up projection (C -> 4C) */
    GPT_FCB,
    GPT_FCPROJW,  /* per layer: MLP down projection (4C -> C) */
    GPT_FCPROJB,
    GPT_LNFW,     /* final LayerNorm */
    GPT_LNFB,
    GPT_NUM_TENSORS
};
typedef struct {
    float *wte;      /* (Vp, C) */
    float *wpe;      /* (maxT, C); 0 elements with GPT_POS_ROPE */
    float *ln1w;     /* (L, C) */
    float *ln1b;     /* (L, C) */
    float *qkvw;     /* (L, 3C, C) */
    float *qkvb;     /* (L, 3C) */
    float *attprojw; /* (L, C, C) */
    float *attprojb; /* (L, C) */
    float *ln2w;     /* (L, C) */
    float *ln2b;     /* (L, C) */
    float *fcw;      /* (L, 4C, C) */
    float *fcb;      /* (L, 4C) */
    float *fcprojw;  /* (L, C, 4C) */
    float *fcprojb;  /* (L, C) */
    float *lnfw;     /* (C) */
    float *lnfb;     /* (C) */
} gpt_params;

/* Element counts of the 16 tensors, indexed by the names above (llm.c's order). */
void gpt_param_sizes(const gpt_config *c, size_t sizes[GPT_NUM_TENSORS]);
/* Whether tensor i (GPT_WTE ...) is a 2-D weight (gets weight decay): wte, wpe, qkvw, attprojw,
 * fcw, fcprojw. */
int gpt_param_is_matrix(int i);

typedef struct {
    float *encoded;  /* (B,T,C) */
    float *ln1;      /* (L,B,T,C) */
    float *ln1_mean; /* (L,B,T) */
    float *ln1_rstd; /* (L,B,T) */
    float *qkv;      /* (L,B,T,3C) */
    float *atty;     /* (L,B,T,C) */
    float *att;      /* (L,B,H,T,T) softmax probabilities; NULL unless GPT_ATTN_NAIVE */
    float *lse;      /* (L,B,H,T) log-sum-exp of the scaled logits; NULL unless GPT_ATTN_FLASH */
    float *attproj;  /* (L,B,T,C) */
    float *residual2;/* (L,B,T,C) */
    float *ln2;      /* (L,B,T,C) */
    float *ln2_mean; /* (L,B,T) */
    float *ln2_rstd; /* (L,B,T) */
    float *fch;      /* (L,B,T,4C) */
    float *fch_gelu; /* (L,B,T,4C) */
    float *fcproj;   /* (L,B,T,C) */
    float *residual3;/* (L,B,T,C) */
    float *lnf;      /* (B,T,C) */
    float *lnf_mean; /* (B,T) */
    float *lnf_rstd; /* (B,T) */
    float *logits;   /* (B,T,Vp) */
    float *probs;    /* (B,T,Vp) */
    float *losses;   /* (B,T) */
} gpt_acts;

/* Gradient buffers for the backward pass: one layer's worth, reused layer by layer. */
typedef struct {
    float *dresidual; /* (B,T,C) gradient flowing down the residual stream */
    float *dbuf_c;    /* (B,T,C) */
    float *dbuf_c2;   /* (B,T,C) */
    float *dqkv;      /* (B,T,3C) */
    float *dfch;      /* (B,T,4C) */
    float *dfch_gelu; /* (B,T,4C) */
    float *dlogits;   /* (B,T,Vp) */
    float *att_scratch; /* attention_scratch_floats, flash_scratch_floats with flash; NULL with hook */
} gpt_grad_acts;

struct gpt_model;
/* Replaces a layer's attention (see nn.h for out/att/qkv layouts): how the hybrid
 * model swaps sparse heads in without the model knowing about them. With GPT_ATTN_NAIVE
 * it is handed the (T,T) buffer, with GPT_ATTN_HOOK att = NULL (and no backward scratch);
 * gpt_forward dies on a flash model. */
typedef struct {
    void (*forward)(void *ctx, int layer, float *out, float *att, const float *qkv, int B, int T);
    void (*backward)(void *ctx, int layer, float *dqkv, float *scratch, const float *dout,
                     const float *qkv, const float *att, int B, int T);
    void *ctx;
} gpt_attn_hook;

typedef struct gpt_model {
    gpt_config cfg;
    const gpt_attn_hook *attn; /* NULL: dense attention everywhere */
    size_t num_params;
    size_t param_sizes[GPT_NUM_TENSORS];
    float *params_mem;
    gpt_params params;
    float *grads_mem; /* allocated on first backward */
    gpt_params grads;
    float *m_mem, *v_mem; /* AdamW moments, allocated on first update (or by a checkpoint) */
    int B, T;             /* batch and sequence length the activations are sized for */
    int acts_attn;        /* the cfg.attn they are sized for */
    float *acts_mem;
    gpt_acts acts;
    float *grad_acts_mem;
    gpt_grad_acts grad_acts;
    int *inputs, *targets; /* copies of the last forward's batch (B*T) */
    int has_targets;
    int n_targets;   /* targets of the last forward that were not GPT_IGNORE */
    float mean_loss; /* of the last forward with targets: the mean over its n_targets */
} gpt_model;

/* Allocates zeroed parameters for a checked config (no activations yet). */
void gpt_create(gpt_model *m, const gpt_config *c);
/* GPT-2 initialisation: N(0, 0.02) weights and embeddings, residual projections
 * (attproj, fcproj) N(0, 0.02/sqrt(2L)), biases 0, LayerNorm weights 1; padded wte rows 0. */
void gpt_init_random(gpt_model *m, rng_t *rng);
void gpt_free(gpt_model *m);

/* Lets m run at context T: 0 when T <= max_seq; a RoPE model beyond it gets max_seq = T (no
 * parameter depends on it); a learned-position model has no rows for positions >= max_seq:
 * -1 with e. The RoPE scale stays as configured (set cfg.rope_scale to interpolate). */
int gpt_set_context(gpt_model *m, int T, sattn_err *e);

/* A target that takes no loss (training on task samples scores only their answers). */
#define GPT_IGNORE (-1)

/* Forward on inputs (B,T) with 1 <= T <= max_seq; with targets it also computes
 * m->mean_loss, the mean over the targets that are not GPT_IGNORE (0 when all are).
 * Activations are (re)allocated when B*T grows. Tokens must be < V. */
void gpt_forward(gpt_model *m, const int *inputs, const int *targets, int B, int T);
void gpt_zero_grad(gpt_model *m);
/* Backward of mean_loss after a forward with targets; accumulates into grads. */
void gpt_backward(gpt_model *m);
/* Global L2 norm of all gradients (deterministic for any thread count). */
float gpt_grad_norm(const gpt_model *m);
/* The factor that clips a gradient of norm `norm` to `clip` (1 if clip <= 0 or norm <= clip). */
float gpt_clip_scale(float norm, float clip);
/* gpt_grad_norm, then scales the grads in place by gpt_clip_scale; returns the norm before. */
float gpt_clip_grad_norm(gpt_model *m, float clip);
/* One AdamW step (t counts from 1) on grad_scale * grads; weight decay only on 2-D weights.
 * Training passes the clip factor here instead of rescaling the grads in a separate pass.
 * Returns -1, or the first tensor (index as in gpt_params) that the step left with a
 * non-finite parameter or AdamW moment: the run has diverged. */
int gpt_update(gpt_model *m, float lr, const adamw_config *opt, int t, float grad_scale);
/* llm.c's name of tensor i ("wte", "wpe", "ln1w", ... "lnfb"); "?" outside 0..15. */
const char *gpt_param_name(int i);
/* 0 if every parameter and AdamW moment (where allocated) is finite; else -1 and an error
 * naming the first bad element: "parameter qkvw[17] is nan". Run before every save. */
int gpt_check_finite(const gpt_model *m, sattn_err *e);

/* Bytes a model needs (estimate, before allocating): parameters; gradients and AdamW
 * moments when training; activations and the backward's buffers at (B, T), which
 * are allocated even for a forward only. */
typedef struct {
    double params, optim, acts;
} gpt_mem;
gpt_mem gpt_mem_estimate(const gpt_config *c, int B, int T, int training);

/* Forward FLOPs per token at sequence length T (matrix products and causal
 * attention; 2 per multiply-add), for reporting GFLOP/s. Training is about 3x. */
double gpt_flops_per_token(const gpt_config *c, int T);

#endif
