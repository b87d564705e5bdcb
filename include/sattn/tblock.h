/* tblock: tile-shared block-sparse causal attention (MoBA/NSA-style) on the CPU: every query
 * of a tile attends to the same few key blocks, so the forward and backward run as dense
 * GEMM-shaped tiles like flash.h, and are parallel over (batch, head, tile). docs/tblock.md.
 *
 * Layouts as flash.h: qkv (B,T,3C) with q, k, v in columns [0,C), [C,2C), [2C,3C); head h
 * uses the hs = C/H columns from h*hs; out (B,T,C); lse (B,H,T); scale 1/sqrt(hs).
 *
 * Selection (per batch row and head): keys are split into blocks of b, queries into tiles of
 * b; tile i holds queries [i b, min((i+1) b, T)) and block j keys [j b, (j+1) b). Tile i >= 1
 * scores each earlier block j < i (all complete) by qbar_{i-1} . kbar_j: the pooled query
 * of the PREVIOUS tile (the mean of queries (i-1) b .. i b - 1) against kbar_j, the mean of
 * block j's keys (MoBA's mean-key gate, made causal: tile i's own pooled query would hold
 * queries after t, so query t's output would depend on later tokens). The tile keeps its top
 * n-1 earlier blocks (a higher score first; ties to the earlier block) plus its own block i;
 * tile 0 keeps block 0 only. A decode step at t (tile i) can therefore make the same choice
 * as the forward: everything it needs lies before tile i.
 * Query t of tile i then attends to key s iff s <= t and block(s) is kept by tile i:
 *   out_t = sum_{s in S_t} softmax_s(q_t . k_s / sqrt(hs)) v_s,
 *   lse_t = log sum_{s in S_t} exp(q_t . k_s / sqrt(hs)).
 * The selection is discrete: it receives no gradient (the backward treats it as given). */
#ifndef SATTN_TBLOCK_H
#define SATTN_TBLOCK_H

#include <stddef.h>

#include "sattn/core.h"

/* The kept blocks of every (batch row, head, tile). */
typedef struct {
    int B, H, T;
    int b;      /* keys per block = queries per tile */
    int n;      /* blocks kept per tile, its own included (as asked, at most ntiles) */
    int ntiles; /* ceil(T / b) */
    int *blocks; /* (B, H, ntiles, n): tile i's kept blocks, ascending (the last is i), -1 after */
    int *count;  /* (B, H, ntiles): how many: min(n, i + 1) */
} tblock_sel;

/* Allocates s for (B, H, T) with blocks of b keeping n; -1 and a message unless B, H, T, b,
 * n >= 1. n above ntiles keeps every earlier block (the same as n = ntiles). */
int tblock_sel_init(tblock_sel *s, int B, int H, int T, int b, int n, sattn_err *e);
void tblock_sel_free(tblock_sel *s);
/* Tile i's kept blocks of batch row bb, head h (s->count entries). */
static inline const int *tblock_sel_tile(const tblock_sel *s, int bb, int h, int i) {
    return s->blocks + (((size_t)bb * s->H + h) * s->ntiles + i) * s->n;
}

/* Fills s->blocks and s->count from qkv (B, T, 3C) as described above (C = H hs).
 * Parallel over (batch row, head). */
void tblock_select(tblock_sel *s, const float *qkv, int C);

/* (query, key) pairs the selection attends to, summed over (b, h): per tile of nq queries
 * with c kept blocks, nq (c - 1) b + nq (nq + 1) / 2. The forward's useful work is 2
 * products of hs multiply-adds per pair (4 hs FLOPs), the backward's 4 (8 hs FLOPs), as
 * flash's useful work is counted over the causal pairs. */
double tblock_pairs(const tblock_sel *s);

/* out (B,T,C) and lse (B,H,T) are overwritten (formulas above). Parallel over (batch row,
 * head, tile); flash-style online softmax over the tile's kept blocks in ascending order. */
void tblock_forward(float *out, float *lse, const float *qkv, int C, const tblock_sel *s);

/* The backward's groups of key blocks per head, at most: parallel over (b, h, group), G =
 * min(this, tiles, ceil(8 / (B H))), as flash.h's FLASH_BWD_GROUPS. */
enum { TBLOCK_BWD_GROUPS = 4 };

/* Floats of scratch tblock_backward needs: D_t per (b, h, t), and with G > 1 groups (B H < 8)
 * one partial dQ (B, T, C) per group: B T (H + G C) at most, linear in T (no T x T buffer). */
size_t tblock_scratch_floats(const tblock_sel *s, int C);

/* dqkv (B,T,3C) += d loss / d qkv given dout (B,T,C) and the forward's out and lse, over the
 * same selection (FlashAttention-2: probabilities recomputed from lse). Parallel over (batch
 * row, head, group of key blocks): each task owns its blocks' dK, dV and its own partial dQ,
 * summed in a fixed order, so the result is the same bits for any thread count (no atomics).
 * scratch: tblock_scratch_floats(s, C) floats, contents irrelevant. */
void tblock_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                     const float *lse, int C, const tblock_sel *s, float *scratch);

#endif
