/* flash: flash-style tiled causal attention on the CPU (the dense baseline that
 * sparse heads must beat) and one decode step against a KV cache.
 *
 * Same layouts and semantics as attention_forward/attention_backward in nn.h:
 * qkv (B,T,3C) with q, k, v in columns [0,C), [C,2C), [2C,3C); head h uses the
 * hs = C/H columns starting at h*hs; out (B,T,C); causal; scale 1/sqrt(hs):
 *   out_t = sum_{s<=t} softmax_s(q_t . k_s / sqrt(hs)) v_s.
 * Unlike nn.h no (B,H,T,T) probability buffer exists anywhere: the forward keeps
 * only the per-row log-sum-exp lse (B,H,T) and the backward recomputes the
 * probabilities tile by tile from it (FlashAttention-2). Memory is O(B H T),
 * not O(B H T^2). See docs/flash.md. */
#ifndef SATTN_FLASH_H
#define SATTN_FLASH_H

#include <stddef.h>

#include "sattn/core.h"

/* Query rows x keys per tile (square), and keys per decode chunk (why these sizes: flash.c).
 * The tile products run in register blocks of FLASH_MR rows x FLASH_NR columns; on the diagonal
 * tile the blocks wholly above the diagonal are skipped. costmodel.h's executed-MAC count
 * (cm_kernel_macs) follows the same tiles and blocks. */
enum { FLASH_BR = 96, FLASH_BC = 96, FLASH_DEC_CHUNK = 256, FLASH_MR = 6, FLASH_NR = 16 };
/* The backward's key-tile groups, at most: parallel over (b, h, group), G = min(this, key
 * tiles, ceil(8 / (B H))) depending on B, H, T only, deterministic for any thread count
 * (flash.c explains the split). */
enum { FLASH_BWD_GROUPS = 4 };

/* out (B,T,C) is overwritten; lse (B,H,T): lse[b,h,t] = log sum_{s<=t} exp(q_t.k_s/sqrt(hs)). */
void flash_attention_forward(float *out, float *lse, const float *qkv, int B, int T, int C, int H);
/* The same, adding its matrix products to cnt (core.h; a SATTN_COUNT build). */
void flash_attention_forward_counted(float *out, float *lse, const float *qkv, int B, int T, int C,
                                     int H, op_count *cnt);

/* Floats of scratch flash_attention_backward needs: B*T*(H + FLASH_BWD_GROUPS*C), linear in T
 * (D_t per head, and one partial dQ (B,T,C) per key-tile group). */
size_t flash_scratch_floats(int B, int T, int C, int H);

/* dqkv (B,T,3C) += d loss / d qkv, given dout (B,T,C) and the forward's out and lse.
 * scratch: flash_scratch_floats(B,T,C,H) floats, contents irrelevant (overwritten). */
void flash_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                              const float *lse, int B, int T, int C, int H, float *scratch);

/* One decode step: the newest query q (C) against T cached keys/values, row t of
 * kcache/vcache (T,C) being position t (the current token's own k, v included, as
 * row T-1). out (C = H*hs) is overwritten with, per head h,
 *   out_h = sum_t softmax_t(q_h . k_{t,h} / sqrt(hs)) v_{t,h}.
 * Parallel over (head, key chunk of 256) with a log-sum-exp merge of the chunks. */
void attention_decode_step(float *out, const float *q, const float *kcache, const float *vcache,
                           int T, int C, int H);
void attention_decode_step_counted(float *out, const float *q, const float *kcache,
                                   const float *vcache, int T, int C, int H, op_count *cnt);
/* The same for the heads h with skip[h] == 0 only (skip NULL = all heads; cnt may be NULL);
 * skipped heads' slices of out are left untouched (a sparse head's decode fills them). */
void attention_decode_step_skip(float *out, const float *q, const float *kcache, const float *vcache,
                                int T, int C, int H, const unsigned char *skip, op_count *cnt);

#endif
