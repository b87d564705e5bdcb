/* bpe: GPT-2's encoder — the pre-tokenizer regex by hand over UTF-8, byte-level BPE with
 * a heap over the word's pairs, a bounded word cache — and the decoder (bpe.h). */
#include <stdlib.h>
#include <string.h>

#include "bpe_impl.h"

enum { BPE_OTHER = 0, BPE_LETTER = 1, BPE_NUMBER = 2, BPE_SPACE = 3 };

typedef struct {
    uint32_t lo, hi;
    uint8_t cls;
} bpe_uni_range;

#include "bpe_unicode.h"

/* ---------------------------------------------------------------- pre-tokenizer ---- */

/* JavaScript's classes of ASCII: \s is \t \n \v \f \r and space (not 0x1C..0x1F). */
static inline int ascii_class(unsigned c) {
    if ((c | 0x20) - 'a' < 26u) return BPE_LETTER;
    if (c - '0' < 10u) return BPE_NUMBER;
    if (c == ' ' || (c >= 9 && c <= 13)) return BPE_SPACE;
    return BPE_OTHER;
}

/* The class of code point cp >= 0x80: a binary search of the generated ranges. */
static int uni_class(uint32_t cp) {
    size_t lo = 0, hi = sizeof BPE_UNI / sizeof BPE_UNI[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < BPE_UNI[mid].lo) hi = mid;
        else if (cp > BPE_UNI[mid].hi) lo = mid + 1;
        else return BPE_UNI[mid].cls;
    }
    return BPE_OTHER;
}

static inline int cont(uint8_t c) { return (c & 0xC0) == 0x80; }

/* The length of the well-formed UTF-8 sequence at s[0..n) (Unicode table 3-7: no overlong
 * form, no surrogate, nothing above U+10FFFF) with *cp its code point; 0 if it is not one. */
static size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t c = s[0];
    if (c >= 0xC2 && c <= 0xDF && n >= 2 && cont(s[1])) {
        *cp = (uint32_t)(c & 0x1F) << 6 | (s[1] & 0x3F);
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF && n >= 3 && cont(s[1]) && cont(s[2])) {
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F)) return 0;
        *cp = (uint32_t)(c & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4 && n >= 4 && cont(s[1]) && cont(s[2]) && cont(s[3])) {
        if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F)) return 0;
        *cp = (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 |
              (s[3] & 0x3F);
        return 4;
    }
    return 0;
}

/* The class of the unit at s[i] and its length: a code point, or one invalid byte (other:
 * the reference sees U+FFFD there, a symbol). */
static inline int unit_class(const uint8_t *s, size_t n, size_t i, size_t *len) {
    if (s[i] < 0x80) {
        *len = 1;
        return ascii_class(s[i]);
    }
    uint32_t cp;
    size_t l = utf8_decode(s + i, n - i, &cp);
    *len = l ? l : 1;
    return l ? uni_class(cp) : BPE_OTHER;
}

/* 's 't 're 've 'm 'll 'd at s[i] == '\'': its length, or 0. Case-sensitive, as GPT-2's. */
static size_t contraction(const uint8_t *s, size_t n, size_t i) {
    if (i + 1 >= n) return 0;
    uint8_t a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

/* \s+(?!\S)|\s+ from i: the whole run at the end of the text; else the run without its
 * last unit (which then starts the next pre-token, " ?\p{L}+" say), unless the run is one
 * unit long. */
static size_t space_end(const uint8_t *s, size_t n, size_t i) {
    size_t k = i, last = i, l;
    while (k < n && unit_class(s, n, k, &l) == BPE_SPACE) last = k, k += l;
    if (k == n) return n;
    return last > i ? last : k;
}

size_t bpe_pretoken_end(const uint8_t *s, size_t n, size_t i) {
    size_t l, k;
    if (s[i] == '\'' && (k = contraction(s, n, i))) return i + k;
    int c = unit_class(s, n, i, &l);
    size_t j = i;
    if (s[i] == ' ' && i + 1 < n) { /* " ?" before a letter, number or other run */
        size_t l2;
        int c2 = unit_class(s, n, i + 1, &l2);
        if (c2 != BPE_SPACE) c = c2, j = i + 1, l = l2;
    }
    if (c == BPE_SPACE) return space_end(s, n, i);
    for (j += l; j < n && unit_class(s, n, j, &l) == c; j += l) {}
    return j;
}

/* ------------------------------------------------------------------------ BPE ---- */

#define DEAD UINT32_MAX

static void work_reserve(bpe_work *w, size_t m) {
    if (m > w->cap) {
        w->cap = 2 * m;
        w->id = xrealloc(w->id, w->cap * sizeof *w->id);
        w->next = xrealloc(w->next, w->cap * sizeof *w->next);
        w->prev = xrealloc(w->prev, w->cap * sizeof *w->prev);
    }
    if (3 * m > w->heap_cap) {
        w->heap_cap = 6 * m;
        w->heap = xrealloc(w->heap, w->heap_cap * sizeof *w->heap);
    }
}

static void heap_push(uint64_t *h, size_t *n, uint64_t x) {
    size_t i = (*n)++;
    while (i > 0 && h[(i - 1) / 2] > x) h[i] = h[(i - 1) / 2], i = (i - 1) / 2;
    h[i] = x;
}

static uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], x = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (h[c] >= x) break;
        h[i] = h[c], i = c;
    }
    if (*n) h[i] = x;
    return top;
}

/* Queues the pair that starts at symbol p, if it is a merge. */
static void push_pair(const bpe_tokenizer *t, bpe_work *w, size_t *hn, int32_t p) {
    int32_t r = w->next[p];
    if (r < 0) return;
    const bpe_merge *mg = bpe_merge_find(t, w->id[p], w->id[r]);
    if (mg) heap_push(w->heap, hn, (uint64_t)mg->rank << 32 | (uint32_t)p);
}

/* One pre-token's bytes w[0..m) merged into out (room for m ids); the count. The lowest
 * rank goes first and, within a rank, the leftmost pair: what GPT-2's loop does (merge
 * every occurrence of the best pair left to right, repeat), since a merge only ever
 * creates pairs of higher ranks (bpe_load.c checks it). An entry whose pair has changed
 * since it was queued is skipped. O(m log m), so a hostile megabyte-long word is fine. */
static size_t bpe_word(bpe_tokenizer *t, const uint8_t *wd, size_t m, uint16_t *out) {
    bpe_work *w = &t->w;
    work_reserve(w, m);
    size_t hn = 0;
    for (size_t k = 0; k < m; k++) {
        w->id[k] = t->byte_id[wd[k]];
        w->next[k] = k + 1 < m ? (int32_t)(k + 1) : -1;
        w->prev[k] = (int32_t)k - 1;
    }
    for (size_t k = 0; k + 1 < m; k++) push_pair(t, w, &hn, (int32_t)k);
    while (hn) {
        uint64_t x = heap_pop(w->heap, &hn);
        int32_t p = (int32_t)(uint32_t)x, r = w->next[p];
        if (w->id[p] == DEAD || r < 0) continue;
        const bpe_merge *mg = bpe_merge_find(t, w->id[p], w->id[r]);
        if (!mg || mg->rank != (uint32_t)(x >> 32)) continue;
        w->id[p] = mg->id, w->id[r] = DEAD;
        w->next[p] = w->next[r];
        if (w->next[r] >= 0) w->prev[w->next[r]] = p;
        if (w->prev[p] >= 0) push_pair(t, w, &hn, w->prev[p]);
        push_pair(t, w, &hn, p);
    }
    size_t n = 0;
    for (int32_t p = 0; p >= 0; p = w->next[p]) out[n++] = (uint16_t)w->id[p];
    return n;
}

/* ----------------------------------------------------------------- encoding ---- */

typedef struct {
    uint16_t *ids;
    size_t n, cap;
} id_buf;

static void ids_reserve(id_buf *b, size_t more) {
    if (b->n + more <= b->cap) return;
    b->cap = 2 * (b->n + more);
    b->ids = xrealloc(b->ids, b->cap * sizeof *b->ids);
}

/* Appends the ids of one pre-token, from the cache when it is there. */
static void encode_word(bpe_tokenizer *t, const uint8_t *wd, size_t m, id_buf *out) {
    ids_reserve(out, m);
    if (m == 1) {
        out->ids[out->n++] = t->byte_id[wd[0]];
        return;
    }
    bpe_cache_slot *s = NULL;
    if (m <= BPE_CACHE_KEY) {
        s = &t->cache[fnv1a64(wd, m, FNV1A64_INIT) & (BPE_CACHE_SLOTS - 1)];
        if (s->klen == m && !memcmp(s->key, wd, m)) {
            memcpy(out->ids + out->n, s->ids, s->nids * sizeof *s->ids);
            out->n += s->nids;
            return;
        }
    }
    size_t k = bpe_word(t, wd, m, out->ids + out->n);
    if (s && k <= BPE_CACHE_IDS) {
        s->klen = (uint8_t)m, s->nids = (uint8_t)k;
        memcpy(s->key, wd, m);
        memcpy(s->ids, out->ids + out->n, k * sizeof *s->ids);
    }
    out->n += k;
}

uint16_t *bpe_encode(bpe_tokenizer *t, const uint8_t *text, size_t n, size_t *n_ids) {
    id_buf out = {NULL, 0, 0};
    ids_reserve(&out, n / 3 + 16); /* English runs about 4.3 bytes a token */
    for (size_t i = 0; i < n;) {
        size_t j = bpe_pretoken_end(text, n, i);
        encode_word(t, text + i, j - i, &out);
        i = j;
    }
    *n_ids = out.n;
    if (!out.n) free(out.ids), out.ids = NULL;
    return out.ids;
}

/* ----------------------------------------------------------------- decoding ---- */

const uint8_t *bpe_token_bytes(const bpe_tokenizer *t, int id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    *len = t->tok_off[id + 1] - t->tok_off[id];
    return t->tok_bytes + t->tok_off[id];
}

int bpe_decode(const bpe_tokenizer *t, const uint16_t *ids, size_t n, uint8_t **out, size_t *len,
               sattn_err *e) {
    size_t total = 0, l;
    for (size_t i = 0; i < n; i++) {
        if (!bpe_token_bytes(t, ids[i], &l))
            return err_set(e, "token %d at position %zu is outside the GPT-2 vocabulary (%d tokens)", ids[i], i,
                           t->n_vocab);
        total += l;
    }
    uint8_t *b = xmalloc(total + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = bpe_token_bytes(t, ids[i], &l);
        memcpy(b + k, p, l);
        k += l;
    }
    b[k] = 0;
    *out = b;
    *len = k;
    return 0;
}
