/* rope: rotary position embeddings (RoFormer, Su et al. 2021) on the q and k of every
 * head, applied in place to the (B,T,3C) qkv rows that the attention kernels read.
 *
 * Layout as in nn.h / flash.h: q in columns [0,C), k in [C,2C), v in [2C,3C); head h
 * owns the hs = C/H columns starting at h*hs. hs must be even. Pair i (0 <= i < hs/2) of
 * a head is (x[i], x[i + hs/2]) (the half-split convention of GPT-NeoX and Hugging Face
 * Llama), rotated by the angle
 *   theta(p, i) = p * base^(-2i/hs),  p = (pos0 + t) * pos_scale
 * for the token in row t:
 *   x'[i]        = x[i] cos theta - x[i+hs/2] sin theta
 *   x'[i+hs/2]   = x[i] sin theta + x[i+hs/2] cos theta.
 * So q_t . k_s after rotation depends on the positions only through t - s.
 * pos0 is the position of row 0 (a KV-cache decode step passes the token's position with
 * T = 1); pos_scale < 1 is position interpolation (Chen et al. 2023), 1 plain RoPE.
 *
 * The cos/sin table (T, hs/2) is built once per call: the angle in double (positions
 * up to 2^20 times a frequency near 1 need more than float's 24 bits), cos and sin
 * rounded to float, the products in float. Parallel over the B*T rows (OpenMP). */
#ifndef SATTN_ROPE_H
#define SATTN_ROPE_H

/* qkv (B,T,3C): rotates q (columns [0,C)) and k ([C,2C)) of every head in place; token t has
 * position p = (pos0 + t) * pos_scale; head dim hs = C/H (even); pair i of a head = (x[i], x[i+hs/2])
 * (the half-split convention of GPT-NeoX / Hugging Face Llama), angle p * base^(-2i/hs). */
void rope_forward(float *qkv, int B, int T, int C, int H, int pos0, float base, float pos_scale);
/* dqkv (B,T,3C): the exact backward (the inverse rotation on dq, dk in place; dv untouched). */
void rope_backward(float *dqkv, int B, int T, int C, int H, int pos0, float base, float pos_scale);

#endif
