/* bpe_load: reads GPT-2's vocabulary (encoder.json through json-c, vocab.bpe by hand) into
 * a bpe_tokenizer, checking everything bpe.h promises about it. */
#define _POSIX_C_SOURCE 200809L /* stat */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bpe_impl.h"
#include "sattn/jdoc.h"

/* Larger than GPT-2's files (1.0 MB and 0.46 MB) by far; a cap so a wrong path to a huge
 * file fails fast. */
#define BPE_MAX_FILE ((size_t)64 << 20)
/* encoder.json is one flat object. */
#define BPE_JSON_DEPTH 2
/* The byte characters run up to U+0143 (bytes_to_unicode maps 68 bytes to 256 + n). */
#define BPE_CHAR_LIMIT 0x144
#define MADE_NEVER INT32_MAX

/* Whether byte b stands for itself in bytes_to_unicode. */
static int printable(int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

int bpe_byte_char(uint8_t b, char *out) {
    int c = b;
    if (!printable(b)) {
        c = 256;
        for (int x = 0; x < b; x++) c += !printable(x);
    }
    if (c < 0x80) return out[0] = (char)c, 1;
    out[0] = (char)(0xC0 | c >> 6), out[1] = (char)(0x80 | (c & 0x3F));
    return 2;
}

char *bpe_byte_vocab_json(const char *const *extra, int n_extra) {
    sbuf b = {0};
    sb_printf(&b, "{");
    for (int i = 0; i < 256; i++) {
        char c[3] = {0};
        bpe_byte_char((uint8_t)i, c);
        sb_printf(&b, "%s\"%s%s\": %d", i ? ", " : "", c[0] == '"' || c[0] == '\\' ? "\\" : "", c, i);
    }
    for (int i = 0; i < n_extra; i++) sb_printf(&b, ", \"%s\": %d", extra[i], 256 + i);
    sb_printf(&b, "}");
    return b.s;
}

/* GPT-2's bytes_to_unicode, inverted: the byte a character stands for, or -1. */
static void char_to_byte(int16_t map[BPE_CHAR_LIMIT]) {
    for (int c = 0; c < BPE_CHAR_LIMIT; c++) map[c] = -1;
    for (int b = 0, n = 0; b < 256; b++) map[printable(b) ? b : 256 + n++] = (int16_t)b;
}

/* The bytes of token string s (UTF-8 of byte characters) into out (at least strlen(s));
 * their count, or -1 with *bad the first character that is not a byte character. */
static long key_bytes(const int16_t *map, const char *s, uint8_t *out, unsigned *bad) {
    const uint8_t *p = (const uint8_t *)s;
    long n = 0;
    while (*p) {
        unsigned c = p[0];
        int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
        if (len == 2) c = (c & 0x1F) << 6 | (p[1] & 0x3F);
        if (len == 2 && c < 0x80) len = 0; /* an overlong form: two spellings of one byte */
        if (!len || c >= BPE_CHAR_LIMIT || map[c] < 0) return *bad = len ? c : 0xFFFD, -1;
        out[n++] = (uint8_t)map[c];
        p += len;
    }
    return n;
}

/* Text for an error line: s with control bytes escaped, cut to about 40 bytes. */
static void quote(char *buf, size_t n, const char *s) {
    sbuf b = {0};
    sb_escaped(&b, s);
    snprintf(buf, n, "%.40s%s", b.s ? b.s : "", b.n > 40 ? "..." : "");
    sb_free(&b);
}

/* What encoder.json's entries are gathered into before they are laid out by id. */
typedef struct {
    int16_t map[BPE_CHAR_LIMIT]; /* char_to_byte */
    sbuf arena;                  /* the tokens' bytes, in file order */
    uint32_t *start, *len;       /* by id; start UINT32_MAX: not seen yet */
} enc_gather;

/* One entry of encoder.json: its id checked (an integer in [0, N), not seen before) and
 * its bytes appended to the arena. */
static int encoder_entry(bpe_tokenizer *t, enc_gather *g, const char *key, json_object *v, const char *what,
                         sattn_err *e) {
    char q[64];
    quote(q, sizeof q, key);
    int64_t id = json_object_get_int64(v);
    if (!json_object_is_type(v, json_type_int) || id < 0 || id >= t->n_vocab)
        return err_set(e, "%s: token \"%s\" has id %s, expected an integer in [0, %d] (ids 0..N-1 "
                          "for N entries)", what, q, json_object_to_json_string(v), t->n_vocab - 1);
    if (g->start[id] != UINT32_MAX) return err_set(e, "%s: id %d appears twice", what, (int)id);
    size_t klen = strlen(key);
    if (g->arena.n + klen + 1 > g->arena.cap) {
        g->arena.cap = 2 * (g->arena.n + klen + 1);
        g->arena.s = xrealloc(g->arena.s, g->arena.cap);
    }
    unsigned bad = 0;
    uint8_t *out = (uint8_t *)g->arena.s + g->arena.n;
    long nb = key_bytes(g->map, key, out, &bad);
    if (nb <= 0)
        return nb ? err_set(e, "%s: token \"%s\" (id %d): character U+%04X is not one of GPT-2's 256 "
                               "byte characters", what, q, (int)id, bad)
                  : err_set(e, "%s: id %d is the empty token, expected at least one character", what, (int)id);
    g->start[id] = (uint32_t)g->arena.n;
    g->len[id] = (uint32_t)nb;
    g->arena.n += (size_t)nb;
    if (nb == 1) t->byte_id[out[0]] = (uint16_t)id;
    return 0;
}

/* Lays the tokens' bytes out by id (tok_off/tok_bytes). */
static void pack_tokens(bpe_tokenizer *t, const enc_gather *g) {
    t->tok_off = xmalloc(((size_t)t->n_vocab + 1) * sizeof *t->tok_off);
    t->tok_bytes = xmalloc(g->arena.n + 1);
    uint32_t off = 0;
    for (int id = 0; id < t->n_vocab; id++) {
        t->tok_off[id] = off;
        memcpy(t->tok_bytes + off, g->arena.s + g->start[id], g->len[id]);
        off += g->len[id];
    }
    t->tok_off[t->n_vocab] = off;
}

/* Every byte must have its single-byte token: the merges start from them. */
static int check_byte_tokens(const bpe_tokenizer *t, const char *what, sattn_err *e) {
    for (int b = 0; b < 256; b++)
        if (t->byte_id[b] == UINT16_MAX)
            return err_set(e, "%s: no token for the single byte 0x%02X, expected all 256", what, b);
    return 0;
}

/* encoder.json: the object {token: id} into tok_off/tok_bytes and byte_id. */
static int load_encoder(bpe_tokenizer *t, json_object *o, const char *what, sattn_err *e) {
    if (!json_object_is_type(o, json_type_object))
        return err_set(e, "%s: %s, expected a JSON object {token: id}", what,
                       jdoc_type_name(json_object_get_type(o)));
    int n = json_object_object_length(o);
    if (n < 256 || n > 65535)
        return err_set(e, "%s: %d tokens, expected 256 to 65535 (GPT-2 has 50257)", what, n);
    t->n_vocab = n;
    enc_gather g = {.arena = {0}};
    char_to_byte(g.map);
    g.start = xmalloc((size_t)n * sizeof *g.start);
    g.len = xmalloc((size_t)n * sizeof *g.len);
    memset(g.start, 0xff, (size_t)n * sizeof *g.start);
    for (int b = 0; b < 256; b++) t->byte_id[b] = UINT16_MAX;
    int rc = 0;
    json_object_object_foreach(o, key, v) {
        if ((rc = encoder_entry(t, &g, key, v, what, e))) break;
    }
    /* n distinct ids in [0, n): every id was seen */
    if (!rc) rc = check_byte_tokens(t, what, e);
    if (!rc) pack_tokens(t, &g);
    free(g.start), free(g.len), sb_free(&g.arena);
    return rc;
}

/* The id of token string s in encoder.json, or -1. */
static int token_id(json_object *enc, const char *s) {
    json_object *v;
    return json_object_object_get_ex(enc, s, &v) ? (int)json_object_get_int64(v) : -1;
}

/* Adds merge (a, b) -> id of rank r to the open-addressing table. */
static void merge_insert(bpe_tokenizer *t, uint32_t a, uint32_t b, uint32_t id, uint32_t r) {
    uint32_t key = a << 16 | b;
    uint32_t h = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & t->merge_mask;
    while (t->merges[h].key != BPE_NO_KEY) h = (h + 1) & t->merge_mask;
    t->merges[h] = (bpe_merge){key, r, id};
}

/* The id of part, or -1 with e naming it. */
static int part_id(json_object *enc, const char *part, const char *which, const char *what, int lineno,
                   sattn_err *e) {
    int id = token_id(enc, part);
    char q[64];
    quote(q, sizeof q, part);
    if (id < 0) err_set(e, "%s:%d: %s \"%s\" is not a token of encoder.json", what, lineno, which, q);
    return id;
}

/* Parses "A B" (line, NUL-terminated, without its newline) into the ids of A, B and AB. */
static int merge_ids(json_object *enc, char *line, int *ids, const char *what, int lineno, sattn_err *e) {
    char *sp = strchr(line, ' ');
    if (!sp || sp == line || !sp[1] || strchr(sp + 1, ' ')) {
        char q[64];
        quote(q, sizeof q, line);
        return err_set(e, "%s:%d: \"%s\", expected a merge: two tokens separated by one space", what, lineno, q);
    }
    *sp = 0;
    if ((ids[0] = part_id(enc, line, "the first part", what, lineno, e)) < 0 ||
        (ids[1] = part_id(enc, sp + 1, "the second part", what, lineno, e)) < 0)
        return -1;
    memmove(sp, sp + 1, strlen(sp + 1) + 1); /* "A B" -> "AB" */
    return (ids[2] = part_id(enc, line, "the merged token", what, lineno, e)) < 0 ? -1 : 0;
}

/* A merge's parts must exist before it (a byte or an earlier merge's result) and its
 * result must be new: then every merge creates a pair of a higher rank, and the heap
 * order of bpe.c equals GPT-2's rank-by-rank loop. made[id]: the rank that made id
 * (-1 for a byte token, MADE_NEVER: not yet). */
static int merge_order(int32_t *made, const int *ids, int r, const char *what, int lineno, sattn_err *e) {
    for (int k = 0; k < 2; k++)
        if (made[ids[k]] >= r)
            return err_set(e, "%s:%d: the %s part (id %d) is neither a byte nor made by an earlier merge",
                           what, lineno, k ? "second" : "first", ids[k]);
    if (made[ids[2]] != MADE_NEVER)
        return err_set(e, "%s:%d: makes token %d, which %s", what, lineno, ids[2],
                       made[ids[2]] < 0 ? "is a single byte" : "an earlier merge already makes");
    made[ids[2]] = r;
    return 0;
}

/* The merge table sized for up to `lines` merges (at most half full), and made[] with the
 * byte tokens marked. */
static int32_t *merges_alloc(bpe_tokenizer *t, size_t lines) {
    size_t slots = 64;
    while (slots < 2 * lines + 2) slots *= 2;
    t->merges = xmalloc(slots * sizeof *t->merges);
    for (size_t i = 0; i < slots; i++) t->merges[i].key = BPE_NO_KEY;
    t->merge_mask = (uint32_t)(slots - 1);
    int32_t *made = xmalloc((size_t)t->n_vocab * sizeof *made);
    for (int id = 0; id < t->n_vocab; id++) made[id] = MADE_NEVER;
    for (int b = 0; b < 256; b++) made[t->byte_id[b]] = -1;
    return made;
}

/* vocab.bpe: the "#version" line, then one merge per line (a last line without its
 * newline counts too; an empty line inside is an error). */
static int load_merges(bpe_tokenizer *t, json_object *enc, const char *text, size_t n, const char *what,
                       sattn_err *e) {
    const char *nul = memchr(text, 0, n), *end = text + n;
    if (nul) return err_set(e, "%s:%d: a NUL byte, expected text", what, text_line_at(text, (size_t)(nul - text)));
    if (n < 8 || strncmp(text, "#version", 8))
        return err_set(e, "%s:1: expected the \"#version\" line that starts a GPT-2 vocab.bpe", what);
    size_t lines = 1;
    for (const char *p = text; (p = memchr(p, '\n', (size_t)(end - p))); p++) lines++;
    int32_t *made = merges_alloc(t, lines);
    char *line = xmalloc(n + 1);
    const char *p = memchr(text, '\n', n);
    int rc = 0;
    for (int lineno = 2; p && ++p < end && !rc; lineno++) {
        const char *q = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((q ? q : end) - p);
        int ids[3] = {0, 0, 0};
        memcpy(line, p, len);
        line[len] = 0;
        if (!len) rc = err_set(e, "%s:%d: an empty line, expected a merge \"A B\"", what, lineno);
        else rc = merge_ids(enc, line, ids, what, lineno, e) || merge_order(made, ids, t->n_merges, what, lineno, e);
        if (!rc) merge_insert(t, (uint32_t)ids[0], (uint32_t)ids[1], (uint32_t)ids[2], (uint32_t)t->n_merges++);
        p = q;
    }
    free(line), free(made);
    return rc ? -1 : 0;
}

void bpe_free(bpe_tokenizer *t) {
    if (!t) return;
    free(t->tok_off), free(t->tok_bytes), free(t->merges), free(t->cache);
    free(t->w.id), free(t->w.next), free(t->w.prev), free(t->w.heap);
    free(t);
}

bpe_tokenizer *bpe_load_mem(const char *enc, size_t enc_n, const char *enc_what, const char *merges,
                            size_t merges_n, const char *merges_what, sattn_err *e) {
    json_object *o = jdoc_parse(enc, enc_n, enc_what, BPE_JSON_DEPTH, e);
    if (!o) return NULL;
    bpe_tokenizer *t = xcalloc(1, sizeof *t);
    int rc = load_encoder(t, o, enc_what, e);
    if (!rc) rc = load_merges(t, o, merges, merges_n, merges_what, e);
    json_object_put(o);
    if (rc) return bpe_free(t), NULL;
    t->cache = xcalloc(BPE_CACHE_SLOTS, sizeof *t->cache);
    return t;
}

/* A missing vocabulary file is the usual first-run error: say how to get it. */
static int vocab_present(const char *path, sattn_err *e) {
    struct stat sb;
    if (stat(path, &sb) != 0 && errno == ENOENT)
        return err_set(e, "%s: not found: the GPT-2 vocabulary is missing (%s into %s/)", path, BPE_HOW_TO_GET,
                       BPE_DEFAULT_DIR);
    return 0;
}

bpe_tokenizer *bpe_load_files(const char *encoder_json, const char *merges, sattn_err *e) {
    uint8_t *enc = NULL;
    char *mt = NULL;
    size_t enc_n = 0, mn = 0;
    bpe_tokenizer *t = NULL;
    if (vocab_present(encoder_json, e) || vocab_present(merges, e)) return NULL;
    if (file_read_all(encoder_json, &enc, &enc_n, e)) return NULL;
    if (enc_n > BPE_MAX_FILE)
        err_set(e, "%s: %zu bytes, expected at most %zu MiB (a GPT-2 encoder.json)", encoder_json, enc_n,
                BPE_MAX_FILE >> 20);
    else if (!file_read_text(merges, BPE_MAX_FILE, "a GPT-2 vocab.bpe", &mt, &mn, e))
        t = bpe_load_mem((const char *)enc, enc_n, encoder_json, mt, mn, merges, e);
    free(enc), free(mt);
    return t;
}

bpe_tokenizer *bpe_load(const char *dir, sattn_err *e) {
    size_t n = strlen(dir) + 32;
    char *enc = xmalloc(n), *mer = xmalloc(n);
    snprintf(enc, n, "%s/encoder.json", dir);
    snprintf(mer, n, "%s/vocab.bpe", dir);
    bpe_tokenizer *t = bpe_load_files(enc, mer, e);
    free(enc), free(mer);
    return t;
}

int bpe_vocab_size(const bpe_tokenizer *t) { return t->n_vocab; }
