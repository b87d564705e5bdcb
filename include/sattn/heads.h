/* heads: the sparse heads file ("heads.sparse"): every head's spec and the
 * trained parameters of the non-dense ones, for one model shape.
 *
 * Layout (little-endian):
 *   header, 64 x int32/uint32:
 *     [0] magic 0x53444853 ("SHDS")  [1] version 2
 *     [2] layers  [3] heads  [4] hs (head dim)  [5] max_seq
 *     [6] model channels  [7] model vocab  [8] number of non-dense heads
 *     [9..10] FNV-1a 64 checksum (low word first) of the whole file: the header with
 *             words 9..10 read as 0, then everything after it
 *     [11..63] reserved, must be 0
 *   then for each head, in (layer, head) order:
 *     16 x int32 spec: sel, fn, k, k_min, tau (float32 bits), rank, iheads, block,
 *                      nblocks, bounds, hidden, mlp_q, mlp_logits, tile, shared, cmp
 *                      (tile took word 13, shared word 14 and cmp word 15, reserved and 0
 *                      before, so older files read as tile = shared = cmp = 0 and a file with
 *                      any of them set is refused by an older reader)
 *     non-dense heads only: uint64 n_sel, uint64 n_fn, float32 params[n_sel + n_fn]
 *                           (selector parameters, then head-function parameters)
 *
 * Version 1 (still read): the checksum covers only what follows the header, and the
 * reserved header and spec words are not checked (tile and shared read as 0).
 *
 * The heads' max_seq must equal the model's (pos sizes its output layer by it).
 * Writes are atomic (temp + rename). Reads check magic, version, the dimensions
 * (against a model, when given), every spec (head_spec_check), that n_sel and n_fn
 * are what the spec implies (selector_param_count, headfn_param_count with
 * kmax = selector_kmax(spec, max_seq)), the exact file size, the checksum and that
 * every parameter is finite;
 * errors are one line naming the file. */
#ifndef SATTN_HEADS_H
#define SATTN_HEADS_H

#include "sattn/core.h"
#include "sattn/model.h"
#include "sattn/sparse.h"

#define HEADS_MAGIC 0x53444853u
#define HEADS_VERSION 2    /* written: the checksum covers the header */
#define HEADS_VERSION_V1 1 /* still read */

/* Saves sh for model (whose layers, heads, channels = heads * hs and max_seq it must match).
 * Refused saves (shape mismatch, a head whose parameter counts disagree with its spec)
 * create no file. */
int heads_save(const char *path, const sparse_heads *sh, const gpt_config *model, sattn_err *e);

/* Loads into a fresh sh (caller sparse_heads_free's it on success only; on failure sh is
 * zeroed and nothing is left allocated). expect, if non-NULL, must match the file's
 * layers, heads, channels, max_seq and vocab. */
int heads_load(const char *path, sparse_heads *sh, const gpt_config *expect, sattn_err *e);

#endif
