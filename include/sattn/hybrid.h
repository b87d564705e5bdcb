/* hybrid: the teacher model with sparse heads swapped in (a gpt_attn_hook), for
 * evaluation and end-to-end fine-tuning. Dense heads run the normal kernels;
 * each sparse head runs its selector and head function on the layer's own q, k, v.
 *
 * Hybrid by length (issue 4, item 6; docs/hybrid_length.md): with dense_below = D > 0,
 * a forward whose sequence length T is below D runs EVERY head dense (exactly the dense
 * model's kernels and numbers), and one with T >= D runs the sparse heads. T is the
 * length the model's forward sees: the window for training and evaluation, the current
 * context (prompt + generated, capped at the model's context) when sampling. D usually
 * comes from the measured crossover (crossover.h), so short inputs never get slower. */
#ifndef SATTN_HYBRID_H
#define SATTN_HYBRID_H

#include "sattn/lindex.h"
#include "sattn/model.h"
#include "sattn/sparse.h"
#include "sattn/tblock.h"
#include "sattn/tcmp.h"

/* Accumulated wall time (seconds) of the sparse attention's parts, for the per-phase picture
 * of `sattn bench-train` and `bench-generate` (the rest of a step is the model: projections,
 * MLP, norms, logits, dense heads, AdamW). select: tblock_select, or the per-head selectors
 * (in a decode step: the selection state's upkeep and the choice); head: the head function's
 * forward (tblock_forward, headfn_forward, the decode step's attention); head_bwd: its
 * backward. Always on: a clock read per layer call, and in the per-head paths per (row,
 * head), whose parallel loop's wall time is split in the ratio of its threads' summed
 * selection and head-function times. */
typedef struct {
    double select_s, head_s, head_bwd_s;
} hybrid_timers;

/* Adds a parallel loop's wall time to tm, split in the ratio of its threads' summed
 * selection (sel) and head-function (fn) seconds. */
void hybrid_timers_split(hybrid_timers *tm, double wall, double sel, double fn);

typedef struct {
    const sparse_heads *sh;
    int C, H;
    gpt_attn_hook hook;
    int B, T;                /* buffers are sized for this batch shape */
    size_t *off_i, *off_f;   /* per (l, h): offsets of idx/count and score/cache */
    int *ints;               /* idx (B*T*kmax) then count (B*T) per sparse (l, h) */
    float *floats;           /* score (B*T*kmax) then headfn cache (B * cache) per sparse (l, h) */
    float *work;             /* per-thread selector scratch */
    size_t work_per_thread;
    float *dparams;          /* gradients of all heads' params (finetune), or NULL */
    size_t *off_p;           /* per (l, h): offset into dparams */
    size_t n_params;
    unsigned char *skip;     /* per (l, h): 1 if sparse */
    unsigned char *dense_in_layer; /* per l: 1 if a head of it is dense (runs the T x T kernels) */
    int dense_below;         /* 0: sparse heads at every T; T < dense_below: all heads dense */
    long fwd_dense, fwd_sparse; /* layer forwards run all-dense by length / with sparse heads */
    /* Tile-shared layers (every head block+softmax with tile=1, same b and n): the layer's
     * forward is tblock_select + tblock_forward over all heads at once, its backward
     * tblock_backward; none of the per-head buffers above. What the backward needs: */
    unsigned char *tile_layer; /* per l: 1 if the layer runs as tblock */
    tblock_sel *tsel;          /* per l: the last forward's selection (tile layers only) */
    float *tlse;               /* (L, B, H, T): the forward's lse per layer */
    const float **tout;        /* per l: the forward's out, the model's attention output
                                * (atty), which it keeps for the attention projection's
                                * backward: the hook reads it back rather than copying it */
    float *tscratch;           /* tblock_backward's scratch, shared by the layers */
    /* NSA's compressed branch in tile layers whose heads have cmp=1 (tcmp.h): the layer's
     * output is then o_sel + g c; the backward gives tcmp dout, and tblock o_sel = out - g c */
    unsigned char *cmp_layer;  /* per l: 1 if the tile layer has the compressed branch */
    float *tcache;             /* per cmp layer tcmp_cache_floats(B, T, C, H), at l * that */
    float *cscratch;           /* tcmp_backward's scratch, then o_sel (B T C) */
    /* Shared-indexer layers (every head index+softmax with shared=1, lindex.h): one
     * selection per batch row, in head 0's buffers, that every head of the layer reads. */
    unsigned char *shared_layer; /* per l: 1 if the layer's heads share one indexer */
    float *lix_w;              /* the shared layers' parameters in layer layout (gathered at
                                * every forward: training updates the heads' slots) */
    size_t *lix_off;           /* per l: offset into lix_w */
    lindex_prec lix_prec;      /* the score precision (LINDEX_AUTO unless set) */
    hybrid_timers tm;          /* since hybrid_init (reset it at will) */
} hybrid;

void hybrid_init(hybrid *hy, const sparse_heads *sh, int C, int H);
/* Makes m run hybrid attention (m->attn = &hy->hook); detach restores dense attention. */
void hybrid_attach(hybrid *hy, gpt_model *m);
void hybrid_detach(gpt_model *m);
/* Allocates (zeroed) gradient buffers for the heads' parameters: the backward then
 * accumulates into them. */
void hybrid_enable_param_grads(hybrid *hy);
/* Sets the length threshold (see top): 0 = sparse at every length, crossover.h's
 * XO_NEVER (INT_MAX) = dense at every length. */
void hybrid_set_dense_below(hybrid *hy, int dense_below);
void hybrid_free(hybrid *hy);

/* 1 when every head of every layer is sparse: the model may then run GPT_ATTN_HOOK, with
 * no T x T buffer (a natively sparse model's memory is linear in T, apart from the
 * selection buffers, which grow with T times the keys per query). */
int hybrid_all_sparse(const sparse_heads *sh);
/* Bytes the hook allocates at batch shape (B, T) with `threads` threads: selections, head-
 * function caches, selector scratch, and the heads' gradients and AdamW moments (training):
 * what a memory check adds to gpt_mem_estimate. */
double hybrid_mem_bytes(const hybrid *hy, int B, int T, int threads);

/* 0, or -1 and a message naming the option when some head of sh cannot be decoded with a
 * KV cache (hybrid_decode.h): shared=1 indexers have no decode step yet. */
int hybrid_decode_check(const sparse_heads *sh, sattn_err *e);


/* The selection the last forward made for (layer l, head h, batch row b); only valid
 * when that forward ran the sparse heads (T >= dense_below), and not for a tile layer
 * (its selection is per tile: hy->tsel[l]). */
const int *hybrid_idx(const hybrid *hy, int l, int h, int b, int *kmax, const int **count);

#endif
