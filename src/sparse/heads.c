/* heads: save and load the sparse heads file (layout in sattn/heads.h).
 *
 * Saving hashes the payload in one pass and writes it in a second (the same
 * emitter feeds both), so the header can carry the checksum without holding a
 * copy of the parameters. Loading reads the whole file, then checks in the
 * order that gives the most telling message: header, dimensions, structure
 * (truncated / trailing bytes), checksum, and only then each spec and its
 * parameter counts, before anything is allocated for the caller. */
#include "sattn/heads.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "heads file I/O assumes a little-endian host"
#endif

#define HEADER_WORDS 64
#define HEADER_BYTES (HEADER_WORDS * 4)
#define SPEC_WORDS 16
#define SPEC_BYTES (SPEC_WORDS * 4)
#define COUNT_BYTES 16 /* uint64 n_sel, uint64 n_fn */
#define W_CHECKSUM 9     /* header words 9..10 */
#define W_RESERVED 11    /* header words 11.. must be 0 (version 2) */
#define SPEC_TILE 13     /* spec word 13: tile (version 2; 0 = per-query selection, what older
                          * version-2 files hold there, so they read unchanged) */
#define SPEC_SHARED 14   /* spec word 14: shared (version 2; 0 = a per-head indexer, what older
                          * files hold there; older readers refuse shared=1 files as a
                          * non-zero reserved word) */
#define SPEC_CMP 15      /* spec word 15: cmp (version 2; 0 = no compressed branch, what older files
                          * hold there; older readers refuse cmp=1 files as a reserved word != 0) */
#define SPEC_RESERVED 16 /* spec words 16.. must be 0 (version 2): none left */

/* Limits that keep the parameter-count arithmetic (some of it in int) from overflowing. */
#define MAX_DIM (1 << 16)
#define MAX_SEQ (1 << 24)
#define MAX_HEADS (1 << 20)

/* ---------------------------------------------------------------- specs as words */

static void spec_to_words(const head_spec *s, uint32_t w[SPEC_WORDS]) {
    memset(w, 0, SPEC_BYTES);
    int32_t v[] = {(int32_t)s->sel, (int32_t)s->fn, s->k, s->k_min, 0, s->rank, s->iheads,
                   s->block, s->nblocks, s->bounds, s->hidden, s->mlp_q, s->mlp_logits,
                   s->tile, s->shared};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) w[i] = (uint32_t)v[i];
    w[SPEC_CMP] = (uint32_t)s->cmp;
    memcpy(&w[4], &s->tau, sizeof s->tau);
}

/* memcpy instead of a cast: the file buffer has no alignment guarantee. */
static uint32_t rd32(const uint8_t *p, size_t word) {
    uint32_t v;
    memcpy(&v, p + 4 * word, sizeof v);
    return v;
}

static uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* version: the file's; version 1 had no tile word (its word 13 was never checked). */
static head_spec spec_from_words(const uint8_t *p, int version) {
    head_spec s;
    s.sel = (sel_kind)(int32_t)rd32(p, 0);
    s.fn = (hfn_kind)(int32_t)rd32(p, 1);
    s.k = (int32_t)rd32(p, 2);
    s.k_min = (int32_t)rd32(p, 3);
    uint32_t tau = rd32(p, 4);
    memcpy(&s.tau, &tau, sizeof s.tau);
    s.rank = (int32_t)rd32(p, 5);
    s.iheads = (int32_t)rd32(p, 6);
    s.block = (int32_t)rd32(p, 7);
    s.nblocks = (int32_t)rd32(p, 8);
    s.bounds = (int32_t)rd32(p, 9);
    s.hidden = (int32_t)rd32(p, 10);
    s.mlp_q = (int32_t)rd32(p, 11);
    s.mlp_logits = (int32_t)rd32(p, 12);
    s.tile = version >= 2 ? (int32_t)rd32(p, SPEC_TILE) : 0;
    s.cmp = version >= 2 ? (int32_t)rd32(p, SPEC_CMP) : 0;
    s.shared = version >= 2 ? (int32_t)rd32(p, SPEC_SHARED) : 0;
    return s;
}

/* The parameter counts a checked, non-dense spec implies. The mlp input width is an
 * int in headfn (kmax * hs + ...): refuse specs where it would overflow. */
static int implied_counts(const head_spec *s, int hs, int max_seq, size_t *n_sel, size_t *n_fn,
                          sattn_err *e) {
    int kmax = selector_kmax(s, max_seq);
    if (s->fn == HFN_MLP && (long long)kmax * (hs + 1) + hs > INT_MAX)
        return err_set(e, "mlp input of %lld values, expected at most %d",
                       (long long)kmax * (hs + 1) + hs, INT_MAX);
    *n_sel = selector_param_count(s, hs, max_seq);
    *n_fn = headfn_param_count(s, hs, kmax);
    return 0;
}

/* ---------------------------------------------------------------- save */

/* Where the payload goes: into the checksum (a == NULL) or into the file. */
typedef struct {
    afile *a;
    uint64_t hash;
    sattn_err *e;
} sink;

static int put(sink *s, const void *p, size_t n) {
    if (!s->a) {
        s->hash = fnv1a64(p, n, s->hash);
        return 0;
    }
    return afile_write(s->a, p, n, s->e);
}

static int put_heads(sink *s, const sparse_heads *sh) {
    for (size_t i = 0; i < (size_t)sh->layers * (size_t)sh->heads; i++) {
        const sparse_head *p = &sh->h[i];
        uint32_t w[SPEC_WORDS];
        spec_to_words(&p->spec, w);
        if (put(s, w, sizeof w)) return -1;
        if (p->spec.sel == SEL_DENSE) continue;
        uint64_t counts[2] = {p->n_sel, p->n_fn};
        if (put(s, counts, sizeof counts) || put(s, p->params, (p->n_sel + p->n_fn) * 4))
            return -1;
    }
    return 0;
}

static int check_head(const char *path, const sparse_heads *sh, int l, int h, sattn_err *e) {
    const sparse_head *p = &sh->h[(size_t)l * sh->heads + h];
    sattn_err inner;
    size_t n_sel, n_fn;
    if (head_spec_check(&p->spec, &inner))
        return err_set(e, "%s: head L%dH%d: %s", path, l, h, inner.msg);
    if (p->spec.sel == SEL_DENSE) return 0;
    if (implied_counts(&p->spec, sh->hs, sh->max_seq, &n_sel, &n_fn, &inner))
        return err_set(e, "%s: head L%dH%d: %s", path, l, h, inner.msg);
    if (p->n_sel != n_sel || p->n_fn != n_fn || !p->params)
        return err_set(e, "%s: head L%dH%d has %zu + %zu parameters%s, its spec implies %zu + %zu",
                       path, l, h, p->n_sel, p->n_fn, p->params ? "" : " (none allocated)",
                       n_sel, n_fn);
    return 0;
}

/* Refuses, before any file is created, what could only be written wrongly. */
static int check_save_args(const char *path, const sparse_heads *sh, const gpt_config *m,
                           sattn_err *e) {
    if (!m) return err_set(e, "%s: no model given, expected the model the heads belong to", path);
    if (!sh->h || sh->layers < 1 || sh->heads < 1 || sh->hs < 1 || sh->max_seq < 1)
        return err_set(e, "%s: empty sparse heads (%d x %d), expected created heads", path,
                       sh->layers, sh->heads);
    if (sh->layers != m->layers || sh->heads != m->heads ||
        (long long)sh->heads * sh->hs != m->channels || sh->max_seq != m->max_seq)
        return err_set(e, "%s: heads are %d layers x %d heads x %d dims, max_seq %d; the model "
                          "has %d x %d x %d, max_seq %d", path, sh->layers, sh->heads, sh->hs,
                       sh->max_seq, m->layers, m->heads, m->heads ? m->channels / m->heads : 0,
                       m->max_seq);
    for (int l = 0; l < sh->layers; l++)
        for (int h = 0; h < sh->heads; h++)
            if (check_head(path, sh, l, h, e)) return -1;
    return 0;
}

int heads_save(const char *path, const sparse_heads *sh, const gpt_config *model, sattn_err *e) {
    if (check_save_args(path, sh, model, e)) return -1;
    uint32_t hd[HEADER_WORDS] = {HEADS_MAGIC, HEADS_VERSION, (uint32_t)sh->layers,
                                 (uint32_t)sh->heads, (uint32_t)sh->hs, (uint32_t)sh->max_seq,
                                 (uint32_t)model->channels, (uint32_t)model->vocab,
                                 (uint32_t)sparse_heads_count(sh)};
    /* The checksum runs over the header (its own words still 0), then the payload. */
    sink hash = {NULL, fnv1a64(hd, sizeof hd, FNV1A64_INIT), e};
    put_heads(&hash, sh);
    hd[W_CHECKSUM] = (uint32_t)hash.hash;
    hd[W_CHECKSUM + 1] = (uint32_t)(hash.hash >> 32);
    afile a;
    if (afile_open(&a, path, e)) return -1;
    sink out = {&a, 0, e};
    if (put(&out, hd, sizeof hd) || put_heads(&out, sh)) {
        afile_abort(&a);
        return -1;
    }
    return afile_commit(&a, e);
}

/* ---------------------------------------------------------------- load */

typedef struct {
    int layers, heads, hs, max_seq, channels, vocab, n_sparse;
    int version;
    uint64_t checksum;
    uint64_t sum_start; /* where the checksum starts: the header's hash (v2), or the seed (v1) */
} heads_header;

/* Version 2: reserved words 0, and the header's hash with the checksum words as 0. */
static int header_v2(const char *path, const uint8_t *b, heads_header *h, sattn_err *e) {
    for (size_t w = W_RESERVED; w < HEADER_WORDS; w++)
        if (rd32(b, w))
            return err_set(e, "%s: header word %zu = 0x%08" PRIx32 ", expected 0 (reserved)", path,
                           w, rd32(b, w));
    h->sum_start = fnv1a64_header(b, HEADER_BYTES, 4 * W_CHECKSUM);
    return 0;
}

static int read_header(const char *path, const uint8_t *b, size_t len, heads_header *h,
                       sattn_err *e) {
    if (len < HEADER_BYTES)
        return err_set(e, "%s: truncated header: %zu bytes, expected at least %d", path, len,
                       HEADER_BYTES);
    if (rd32(b, 0) != HEADS_MAGIC)
        return err_set(e, "%s: not a sparse heads file: magic 0x%08" PRIx32 ", expected 0x%08x",
                       path, rd32(b, 0), HEADS_MAGIC);
    uint32_t version = rd32(b, 1);
    if (version != HEADS_VERSION && version != HEADS_VERSION_V1)
        return err_set(e, "%s: sparse heads file version %" PRIu32 ", expected version %d or %d",
                       path, version, HEADS_VERSION_V1, HEADS_VERSION);
    int32_t w[7];
    for (int i = 0; i < 7; i++) w[i] = (int32_t)rd32(b, 2 + (size_t)i);
    *h = (heads_header){w[0], w[1], w[2], w[3], w[4], w[5], w[6], (int)version,
                        (uint64_t)rd32(b, W_CHECKSUM) | (uint64_t)rd32(b, W_CHECKSUM + 1) << 32,
                        FNV1A64_INIT};
    return version == HEADS_VERSION ? header_v2(path, b, h, e) : 0;
}

static int check_range(const char *path, const char *name, int v, int hi, sattn_err *e) {
    if (v < 1 || v > hi)
        return err_set(e, "%s: bad header: %s = %d, expected 1..%d", path, name, v, hi);
    return 0;
}

static int check_header(const char *path, const heads_header *h, sattn_err *e) {
    if (check_range(path, "layers", h->layers, MAX_DIM, e) ||
        check_range(path, "heads", h->heads, MAX_DIM, e) ||
        check_range(path, "hs", h->hs, MAX_DIM, e) ||
        check_range(path, "max_seq", h->max_seq, MAX_SEQ, e) ||
        check_range(path, "vocab", h->vocab, INT_MAX, e))
        return -1;
    long long nheads = (long long)h->layers * h->heads;
    if (nheads > MAX_HEADS)
        return err_set(e, "%s: bad header: %lld heads in all, expected at most %d", path, nheads,
                       MAX_HEADS);
    if ((long long)h->heads * h->hs != h->channels)
        return err_set(e, "%s: bad header: %d heads x %d dims != %d channels", path, h->heads,
                       h->hs, h->channels);
    if (h->n_sparse < 0 || h->n_sparse > nheads)
        return err_set(e, "%s: bad header: %d sparse heads, expected 0..%lld", path, h->n_sparse,
                       nheads);
    return 0;
}

static int differs(const char *path, const char *what, int file, int model, sattn_err *e) {
    if (file == model) return 0;
    return err_set(e, "%s: heads file was made for a model with %d %s, this model has %d", path,
                   file, what, model);
}

static int check_expect(const char *path, const heads_header *h, const gpt_config *c,
                        sattn_err *e) {
    if (!c) return 0;
    if (differs(path, "layers", h->layers, c->layers, e) ||
        differs(path, "heads", h->heads, c->heads, e) ||
        differs(path, "channels", h->channels, c->channels, e) ||
        differs(path, "positions (max_seq)", h->max_seq, c->max_seq, e) ||
        differs(path, "vocabulary entries", h->vocab, c->vocab, e))
        return -1;
    return 0;
}

static int truncated(const char *path, size_t len, size_t i, int heads, const char *part,
                     sattn_err *e) {
    return err_set(e, "%s: truncated: %zu bytes, the file ends inside head L%zuH%zu's %s", path,
                   len, i / (size_t)heads, i % (size_t)heads, part);
}

/* Follows the records to the end they imply: catches truncation and trailing bytes
 * before the checksum, whose mismatch would say less. Counts the non-dense heads. */
static int walk(const char *path, const uint8_t *b, size_t len, const heads_header *h,
                int *n_sparse, sattn_err *e) {
    size_t off = HEADER_BYTES, nheads = (size_t)h->layers * (size_t)h->heads;
    *n_sparse = 0;
    for (size_t i = 0; i < nheads; i++) {
        if (len - off < SPEC_BYTES) return truncated(path, len, i, h->heads, "spec", e);
        int dense = rd32(b + off, 0) == SEL_DENSE;
        off += SPEC_BYTES;
        if (dense) continue;
        (*n_sparse)++;
        if (len - off < COUNT_BYTES)
            return truncated(path, len, i, h->heads, "parameter counts", e);
        uint64_t n_sel = rd64(b + off), n_fn = rd64(b + off + 8);
        off += COUNT_BYTES;
        size_t room = (len - off) / 4;
        if (n_sel > room || n_fn > room - n_sel)
            return truncated(path, len, i, h->heads, "parameters", e);
        off += (size_t)(n_sel + n_fn) * 4;
    }
    if (off != len)
        return err_set(e, "%s: %zu trailing bytes after the last head (expected %zu bytes in all)",
                       path, len - off, off);
    return 0;
}

/* The first non-finite parameter of a decoded head: NaN weights would poison every
 * forward they take part in. */
static int check_finite(const char *path, const sparse_head *p, int l, int h, sattn_err *e) {
    size_t n = p->n_sel + p->n_fn, i = 0;
    while (i < n && isfinite(p->params[i])) i++;
    if (i == n) return 0;
    char text[192];
    head_spec_format(&p->spec, text, sizeof text);
    int sel = i < p->n_sel;
    return err_set(e, "%s: head L%dH%d (%s): %s parameter %zu is %s, expected finite parameters",
                   path, l, h, text, sel ? "selector" : "head-function", sel ? i : i - p->n_sel,
                   isnan(p->params[i]) ? "NaN" : p->params[i] > 0 ? "+Inf" : "-Inf");
}

/* Checks one record against its spec and copies it into p; *used = the record's size. */
static int decode_head(const char *path, const uint8_t *rec, const heads_header *hd, int l,
                       int h, sparse_head *p, size_t *used, sattn_err *e) {
    sattn_err inner;
    p->spec = spec_from_words(rec, hd->version);
    *used = SPEC_BYTES;
    for (size_t w = SPEC_RESERVED; hd->version >= 2 && w < SPEC_WORDS; w++)
        if (rd32(rec, w))
            return err_set(e, "%s: head L%dH%d: spec word %zu = 0x%08" PRIx32 ", expected 0 "
                              "(reserved)", path, l, h, w, rd32(rec, w));
    if (head_spec_check(&p->spec, &inner))
        return err_set(e, "%s: head L%dH%d: bad spec: %s", path, l, h, inner.msg);
    if (p->spec.sel == SEL_DENSE) return 0;
    size_t n_sel, n_fn;
    if (implied_counts(&p->spec, hd->hs, hd->max_seq, &n_sel, &n_fn, &inner))
        return err_set(e, "%s: head L%dH%d: bad spec: %s", path, l, h, inner.msg);
    uint64_t f_sel = rd64(rec + SPEC_BYTES), f_fn = rd64(rec + SPEC_BYTES + 8);
    if (f_sel != n_sel || f_fn != n_fn) {
        char text[192];
        head_spec_format(&p->spec, text, sizeof text);
        return err_set(e, "%s: head L%dH%d (%s) has %" PRIu64 " selector + %" PRIu64 " function "
                          "parameters, its spec implies %zu + %zu", path, l, h, text, f_sel,
                       f_fn, n_sel, n_fn);
    }
    p->n_sel = n_sel;
    p->n_fn = n_fn;
    p->params = xmalloc((n_sel + n_fn) * sizeof(float));
    memcpy(p->params, rec + SPEC_BYTES + COUNT_BYTES, (n_sel + n_fn) * sizeof(float));
    *used += COUNT_BYTES + (n_sel + n_fn) * sizeof(float);
    return check_finite(path, p, l, h, e);
}

/* The walk already proved every record lies inside the file. */
static int decode(const char *path, const uint8_t *b, const heads_header *hd, sparse_heads *sh,
                  sattn_err *e) {
    sh->layers = hd->layers;
    sh->heads = hd->heads;
    sh->hs = hd->hs;
    sh->max_seq = hd->max_seq;
    sh->h = xcalloc((size_t)hd->layers * (size_t)hd->heads, sizeof *sh->h);
    size_t off = HEADER_BYTES;
    for (int l = 0; l < hd->layers; l++)
        for (int h = 0; h < hd->heads; h++) {
            size_t used;
            sparse_head *p = &sh->h[(size_t)l * hd->heads + h];
            if (decode_head(path, b + off, hd, l, h, p, &used, e)) return -1;
            off += used;
        }
    /* a hand-made or damaged file could mix tile=1 with other heads in a layer */
    sattn_err inner;
    head_spec *specs = xmalloc((size_t)hd->layers * hd->heads * sizeof *specs);
    for (size_t i = 0; i < (size_t)hd->layers * hd->heads; i++) specs[i] = sh->h[i].spec;
    int r = sparse_tile_check(specs, hd->layers, hd->heads, &inner) ||
            sparse_shared_check(specs, hd->layers, hd->heads, &inner);
    free(specs);
    if (r) return err_set(e, "%s: %s", path, inner.msg);
    return 0;
}

static int parse(const char *path, const uint8_t *b, size_t len, sparse_heads *sh,
                 const gpt_config *expect, sattn_err *e) {
    heads_header hd = {0};
    int n_sparse = 0;
    if (read_header(path, b, len, &hd, e) || check_header(path, &hd, e) ||
        check_expect(path, &hd, expect, e) || walk(path, b, len, &hd, &n_sparse, e))
        return -1;
    if (fnv1a64(b + HEADER_BYTES, len - HEADER_BYTES, hd.sum_start) != hd.checksum)
        return err_set(e, "%s: checksum mismatch: file is corrupt", path);
    if (n_sparse != hd.n_sparse)
        return err_set(e, "%s: header says %d sparse heads, the file holds %d", path, hd.n_sparse,
                       n_sparse);
    if (decode(path, b, &hd, sh, e)) {
        sparse_heads_free(sh);
        return -1;
    }
    return 0;
}

int heads_load(const char *path, sparse_heads *sh, const gpt_config *expect, sattn_err *e) {
    memset(sh, 0, sizeof *sh);
    uint8_t *data;
    size_t len;
    if (file_read_all(path, &data, &len, e)) return -1;
    int r = parse(path, data, len, sh, expect, e);
    free(data);
    return r;
}
