/* hfgpt2: a GPT-2 as Hugging Face keeps it: a safetensors file of GPT2Model's tensors and a
 * config.json, read into and written from sattn's model (docs/safetensors.md).
 *
 * Names (an optional "transformer." prefix, as GPT2LMHeadModel saves them):
 *   wte.weight (V, C)   wpe.weight (n_positions, C)   ln_f.weight, ln_f.bias (C)
 *   h.N.ln_1.weight/.bias, h.N.ln_2.weight/.bias (C)
 *   h.N.attn.c_attn.weight (C, 3C) .bias (3C)     h.N.attn.c_proj.weight (C, C) .bias (C)
 *   h.N.mlp.c_fc.weight (C, 4C) .bias (4C)        h.N.mlp.c_proj.weight (4C, C) .bias (C)
 * The weights are Conv1D's: (in, out), y = x W + b, the transpose of sattn's (and llm.c's)
 * (out, in) matrices, which are transposed on the way in and out. Ignored: the buffers
 * h.N.attn.bias and h.N.attn.masked_bias (causal masks), and lm_head.weight when it holds
 * exactly wte's values (a tied head; anything else is an error: sattn ties them).
 * V is the real vocabulary; sattn's padded rows (Vp > V) are zero on read, not written.
 *
 * config.json: model_type "gpt2", vocab_size, n_positions, n_embd, n_layer, n_head; what
 * sattn's GPT-2 cannot compute is an error, never a silent misread: n_inner other than null
 * or 4 n_embd, an activation other than gelu_new (= gelu_pytorch_tanh, sattn's tanh GELU),
 * layer_norm_epsilon other than 1e-5, scale_attn_weights false,
 * scale_attn_by_inverse_layer_idx or add_cross_attention true, tie_word_embeddings false.
 * A bare safetensors file (no folder) takes n_head from its __metadata__ "n_head" (sattn
 * writes it) or from a config.json beside it; the other sizes come from the shapes. */
#ifndef SATTN_HFGPT2_H
#define SATTN_HFGPT2_H

#include "sattn/core.h"
#include "sattn/model.h"
#include "sattn/safetensors.h"

/* Loads path: a Hugging Face folder (config.json + model.safetensors) or a safetensors file,
 * into a fresh model (gpt_free it on success only). Every tensor is checked (name, dtype
 * F32/F16/BF16, shape against the config, finite values) before the model is used. */
int hf_load(const char *path, gpt_model *m, sattn_err *e);

/* Writes m as safetensors of dtype dt (F32, F16 or BF16): folder = 0, the file path;
 * folder = 1, the folder path (made if missing) with model.safetensors and config.json.
 * Learned positions only (RoPE: an error, GPT-2 has no place for it). Atomic per file:
 * model.safetensors is committed before config.json, so a folder is never readable with
 * a config that has no weights. */
int hf_save(const char *path, const gpt_model *m, int folder, stf_dtype dt, sattn_err *e);

/* config.json of path into *c (learned positions, Vp = gpt_padded_vocab(V)); the checks above. */
int hf_config_read(const char *path, gpt_config *c, sattn_err *e);
/* The config.json Hugging Face's GPT2LMHeadModel loads for c (weights of dtype dt). */
void hf_config_format(sbuf *b, const gpt_config *c, stf_dtype dt);

#endif
