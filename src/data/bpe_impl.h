/* bpe_impl.h: the tokenizer's tables, shared by bpe_load.c (which fills them from the
 * vocabulary files) and bpe.c (which encodes and decodes with them). Private to src/data. */
#ifndef SATTN_BPE_IMPL_H
#define SATTN_BPE_IMPL_H

#include <stdint.h>

#include "sattn/bpe.h"

/* One merge in the open-addressing table: the pair (a, b) as key = a << 16 | b. */
typedef struct {
    uint32_t key;  /* BPE_NO_KEY: empty slot */
    uint32_t rank; /* the merge's line in vocab.bpe, 0-based after the header */
    uint32_t id;   /* the token the pair becomes */
} bpe_merge;
#define BPE_NO_KEY UINT32_MAX

/* The word cache: direct-mapped, one 64-byte slot per hash, a later word overwriting an
 * earlier one: memory is bounded (2 MiB) and most words of real text repeat. Words longer
 * than BPE_CACHE_KEY bytes (or of more than BPE_CACHE_IDS tokens) are not cached. */
#define BPE_CACHE_KEY 30
#define BPE_CACHE_IDS 16
#define BPE_CACHE_SLOTS (1u << 15)
typedef struct {
    uint8_t klen, nids; /* klen 0: empty */
    uint8_t key[BPE_CACHE_KEY];
    uint16_t ids[BPE_CACHE_IDS];
} bpe_cache_slot;

/* The scratch space of one word's merges (grown to the longest word seen). */
typedef struct {
    uint32_t *id;
    int32_t *next, *prev;
    uint64_t *heap; /* (rank << 32 | position): the lowest rank first, then the leftmost */
    size_t cap, heap_cap;
} bpe_work;

struct bpe_tokenizer {
    int n_vocab;
    uint32_t *tok_off;  /* token id's bytes: tok_bytes[tok_off[id] .. tok_off[id + 1]) */
    uint8_t *tok_bytes;
    uint16_t byte_id[256]; /* the single-byte token of each byte */
    bpe_merge *merges;     /* open addressing, merge_mask + 1 slots */
    uint32_t merge_mask;
    int n_merges;
    bpe_cache_slot *cache;
    bpe_work w;
};

/* The merge of pair (a, b), or NULL. */
static inline const bpe_merge *bpe_merge_find(const bpe_tokenizer *t, uint32_t a, uint32_t b) {
    uint32_t key = a << 16 | b;
    /* Fibonacci hashing: the high half of the product mixes every bit of both ids. */
    uint32_t h = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & t->merge_mask;
    for (;; h = (h + 1) & t->merge_mask) {
        const bpe_merge *m = &t->merges[h];
        if (m->key == key) return m;
        if (m->key == BPE_NO_KEY) return NULL;
    }
}

#endif
