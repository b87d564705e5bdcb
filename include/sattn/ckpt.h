/* ckpt: model checkpoints in two formats, chosen on write, detected on read.
 *
 * sattn native (little-endian), version 3 (written):
 *   header, 64 x int32/uint32:
 *     [0] magic 0x4e545453 ("STTN")  [1] version 3
 *     [2] max_seq [3] vocab [4] padded_vocab [5] layers [6] heads [7] channels
 *     [8] has_optim (0/1)  [9] step  [10..11] rng state (uint64, low word first)
 *     [12..13] num_params (uint64)  [14..15] FNV-1a 64 checksum (below)
 *     [16] has_schedule (0/1), then the schedule the run was started with (0 when absent):
 *     [17] batch [18] seq [19] steps [20] warmup [21] lr [22] min_lr [23] clip
 *     [24] weight_decay [25] beta1 [26] beta2 [27] eps (float32 bits) [28..29] seed (uint64)
 *     [30] pos (0 learned, 1 RoPE) [31] rope_base [32] rope_scale (float32 bits; both 0 with
 *          learned positions, finite and > 0 with RoPE)
 *     [33..35] the training mix (`train --mix`, version 3 only): the fraction of each batch's
 *     sequences that are passkey, needle and mqar samples (task.h's task_kind order; float32
 *     bits, 0 to 1), 0 without a mix; only with a schedule.
 *     [36] the mix's flags: bit 0 `train --mix-loss answers` (a task row takes loss on its
 *          answers only), bit 1 `--mix-length varied` (passkey and needle samples of random
 *          length after corpus text); 0 without a schedule.
 *     [37] the dense warm-up (`train --dense-warmup`, a sparse run; 0 otherwise)
 *     [38..39] natively sparse runs (`train --attn sparse:PLAN`): FNV-1a 64 of the plan's
 *          canonical text (plan_format), low word first; 0 for a dense run. The heads
 *          themselves are in the heads file (--heads-out); --resume checks both words.
 *     [40..63] reserved, must be 0
 *   float32 params[num_params] (llm.c tensor order)
 *   if has_optim: float32 m[num_params], float32 v[num_params]
 *   The checksum covers the whole file: the header with words 14..15 read as 0, then
 *   everything after it, so no header field can change unnoticed.
 * Version 2 (still read): version 3 without words 30..32 (reserved, 0): learned positions.
 * Version 1 (still read): the same words 0..15, the checksum covers only what follows the
 *   header, words 16..63 are ignored, and there is no schedule.
 * Safetensors files and Hugging Face folders: sattn/hfgpt2.h.
 * llm.c GPT-2 (version 3): int32 header[256] = {20240326, 3, maxT, V, L, NH, C, Vp, 0...},
 *   then float32 params in the same order; no optimizer state, learned positions only
 *   (saving a RoPE model in it is an error; one loads as learned).
 *
 * Writes are atomic (temp + rename). Reads validate magic, version, every
 * dimension, the exact file size, (native) the checksum and reserved words, and
 * that every parameter and AdamW moment is finite; errors are one line naming the
 * file (and the tensor, for a non-finite value). */
#ifndef SATTN_CKPT_H
#define SATTN_CKPT_H

#include <stdint.h>

#include "sattn/core.h"
#include "sattn/model.h"
#include "sattn/rng.h"

#define CKPT_MAGIC 0x4e545453u
#define CKPT_VERSION 3    /* written; the header is covered by the checksum; records positions */
#define CKPT_VERSION_V3 3
#define CKPT_VERSION_V2 2 /* still read (learned positions) */
#define CKPT_VERSION_V1 1 /* still read (learned positions) */
#define LLMC_CKPT_MAGIC 20240326
#define LLMC_CKPT_VERSION 3

/* CKPT_SAFETENSORS: one safetensors file, CKPT_HF: a Hugging Face GPT-2 folder (config.json +
 * model.safetensors); both float32, learned positions, no optimizer state (hfgpt2.h). */
typedef enum { CKPT_SATTN = 0, CKPT_LLMC = 1, CKPT_SAFETENSORS = 2, CKPT_HF = 3 } ckpt_format;
enum { CKPT_MIX_ANSWERS = 1, CKPT_MIX_VARIED = 2 };

/* The flags that shape a training run's trajectory: --resume refuses other values
 * (a changed schedule silently makes a different run). */
typedef struct {
    int batch, seq, steps, warmup;
    float lr, min_lr, clip, weight_decay, beta1, beta2, eps;
    uint64_t seed;
    float mix[3]; /* `train --mix` fractions: passkey, needle, mqar (task.h order); 0 = none */
    int mix_flags; /* CKPT_MIX_ANSWERS | CKPT_MIX_VARIED (`train --mix-loss`, `--mix-length`) */
    int dense_warmup;   /* `train --dense-warmup`: steps before the sparse heads run; 0 otherwise */
    uint64_t plan_hash; /* `train --attn sparse:PLAN`: FNV-1a of the canonical plan text; 0: dense */
} ckpt_schedule;

/* Training state saved beside the weights so --resume continues exactly. */
typedef struct {
    int has_optim;    /* m_mem/v_mem of the model are valid and saved */
    int step;         /* optimizer steps done */
    rng_t rng;        /* batch sampler state after `step` steps */
    int has_schedule; /* sched is valid (saved and loaded by version 2 only) */
    ckpt_schedule sched;
} train_state;

/* Saves m (and, for CKPT_SATTN with st && st->has_optim, the AdamW moments, step, rng).
 * CKPT_LLMC with optimizer state or with RoPE is an error (the format has no place for
 * either). */
int ckpt_save(const char *path, ckpt_format fmt, const gpt_model *m, const train_state *st,
              sattn_err *e);
/* Loads any of the formats into a fresh model (gpt_create'd here; caller gpt_free's it on
 * success only): sattn, llm.c, a safetensors file (detected by its first bytes: a header
 * length, then '{') or a Hugging Face GPT-2 folder (a directory). st, if non-NULL, receives
 * the training state (has_optim 0 and no schedule but for sattn's format). */
int ckpt_load(const char *path, gpt_model *m, train_state *st, sattn_err *e);

#endif
