/* teacher: per-head statistics, extraction and shard files (layout in sattn/teacher.h).
 *
 * Per query t the row p_t(0..t) is turned into 64-bit keys (float bits << 32 | ~s):
 * probabilities are >= 0, so their IEEE bits order like the values, and the low word
 * breaks ties toward the smaller position. Every key is distinct, so "the k largest"
 * is well defined and quickselect finds it in expected O(t) with no tie subtleties. */
#define _POSIX_C_SOURCE 200809L
#include "sattn/teacher.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "teacher shard I/O assumes a little-endian host"
#endif

#define NSTAT(n_ks) (TEACHER_NSTAT_FIXED + (n_ks))

/* ================================================================ head lists */

/* Reads a decimal index at *p (digits only); advances *p. -1 if none, -2 if too big. */
static long read_index(const char **p) {
    const char *s = *p;
    long v = 0;
    if (*s < '0' || *s > '9') return -1;
    for (; *s >= '0' && *s <= '9'; s++)
        if ((v = v * 10 + (*s - '0')) > (1L << 30)) v = 1L << 30;
    *p = s;
    return v;
}

/* One item "i" or "a-b" ending at ',' or NUL: marks sel[a..b]. */
static int parse_item(const char *what, const char *all, const char **p, int n,
                      unsigned char *sel, sattn_err *e) {
    const char *start = *p;
    long a = read_index(p), b = a;
    if (a >= 0 && **p == '-') (*p)++, b = read_index(p);
    if (a < 0 || b < 0 || (**p != ',' && **p)) {
        size_t len = strcspn(start, ",");
        if (!len) return err_set(e, "%s '%s': empty item (expected 'all' or indices like 0,2 or 1-3)", what, all);
        return err_set(e, "%s '%s': '%.*s' is not an index or range (expected 'all' or indices like 0,2 or 1-3)",
                       what, all, (int)len, start);
    }
    int len = (int)(*p - start);
    if (a > b) return err_set(e, "%s '%s': range '%.*s' is empty", what, all, len, start);
    if (b >= n) return err_set(e, "%s '%s': '%.*s' is outside 0..%d", what, all, len, start, n - 1);
    for (long i = a; i <= b; i++) {
        if (sel[i]) return err_set(e, "%s '%s': %ld is listed twice", what, all, i);
        sel[i] = 1;
    }
    return 0;
}

int teacher_parse_list(const char *what, const char *s, int n, unsigned char *sel, sattn_err *e) {
    memset(sel, 0, (size_t)n);
    if (!strcmp(s, "all")) return memset(sel, 1, (size_t)n), 0;
    const char *p = s;
    for (;;) {
        if (parse_item(what, s, &p, n, sel, e)) return -1;
        if (!*p) return 0;
        p++; /* the comma */
        if (!*p) return err_set(e, "%s '%s': empty item after the last comma", what, s);
    }
}

int teacher_select_pairs(const gpt_config *c, const char *layers, const char *heads,
                         teacher_pair **pairs, int *n_pairs, sattn_err *e) {
    unsigned char *sl = xcalloc((size_t)c->layers, 1), *sh = xcalloc((size_t)c->heads, 1);
    int rc = teacher_parse_list("layers", layers, c->layers, sl, e);
    if (!rc) rc = teacher_parse_list("heads", heads, c->heads, sh, e);
    int n = 0;
    teacher_pair *out = rc ? NULL : xmalloc((size_t)c->layers * c->heads * sizeof *out);
    for (int l = 0; !rc && l < c->layers; l++)
        for (int h = 0; h < c->heads; h++)
            if (sl[l] && sh[h]) out[n++] = (teacher_pair){l, h};
    free(sl);
    free(sh);
    if (rc) return -1;
    *pairs = out;
    *n_pairs = n;
    return 0;
}

int teacher_ks(int T, int ks[TEACHER_MAX_KS]) {
    int n = 0;
    for (long k = 1; k < T; k *= 2) ks[n++] = (int)k;
    ks[n++] = T;
    return n;
}

/* ================================================================ one query */

static inline uint64_t prob_key(float p, int s) {
    uint32_t bits;
    memcpy(&bits, &p, 4);
    return (uint64_t)bits << 32 | (uint32_t)~(uint32_t)s;
}
static inline float key_prob(uint64_t k) {
    uint32_t bits = (uint32_t)(k >> 32);
    float p;
    memcpy(&p, &bits, 4);
    return p;
}
static inline int key_pos(uint64_t k) { return (int)~(uint32_t)k; }

static inline uint64_t median3(uint64_t a, uint64_t b, uint64_t c) {
    if (a > b) { uint64_t t = a; a = b; b = t; }
    return c < a ? a : c > b ? b : c;
}

/* Reorders a[0..n) so that a[0..k) hold its k largest keys (any order), 1 <= k < n.
 * Hoare/Wirth quickselect: the pivot (median of three) lands at k-1 with larger keys
 * left of it and smaller right; expected O(n). */
static void select_top(uint64_t *a, int n, int k) {
    int lo = 0, hi = n - 1, kk = k - 1;
    while (lo < hi) {
        uint64_t x = median3(a[lo], a[lo + (hi - lo) / 2], a[hi]);
        int i = lo, j = hi;
        do {
            while (a[i] > x) i++;
            while (x > a[j]) j--;
            if (i <= j) {
                uint64_t t = a[i];
                a[i++] = a[j];
                a[j--] = t;
            }
        } while (i <= j);
        if (j < kk) lo = i;
        if (kk < i) hi = j;
    }
}

static int key_desc(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? 1 : a > b ? -1 : 0;
}

/* Sorts a[0..n) descending: insertion for the usual small kmax, qsort above. */
static void sort_desc(uint64_t *a, int n) {
    if (n > 48) return qsort(a, (size_t)n, sizeof *a, key_desc);
    for (int i = 1; i < n; i++) {
        uint64_t x = a[i];
        int j = i;
        for (; j > 0 && a[j - 1] < x; j--) a[j] = a[j - 1];
        a[j] = x;
    }
}

static void row_keys(const float *p, int t, uint64_t *keys) {
    for (int s = 0; s <= t; s++) keys[s] = prob_key(p[s], s);
}

double teacher_entropy(const float *p, int t) {
    double h = 0;
    for (int s = 0; s <= t; s++)
        if (p[s] > 0) h -= (double)p[s] * log((double)p[s]);
    return h;
}

/* teacher_topk with caller scratch keys[t+1]. */
static void topk_keys(const float *p, int t, int kmax, int32_t *idx, float *prob, uint64_t *keys) {
    int n = t + 1, k = kmax < n ? kmax : n;
    row_keys(p, t, keys);
    if (k < n) select_top(keys, n, k);
    sort_desc(keys, k);
    for (int j = 0; j < kmax; j++) {
        idx[j] = j < k ? key_pos(keys[j]) : -1;
        prob[j] = j < k ? key_prob(keys[j]) : 0.0f;
    }
}

void teacher_topk(const float *p, int t, int kmax, int32_t *idx, float *prob) {
    uint64_t *keys = xmalloc((size_t)(t + 1) * sizeof *keys);
    topk_keys(p, t, kmax, idx, prob, keys);
    free(keys);
}

/* Adds query t's statistics to acc[4 + n_ks]. The mass@k for ks descending comes from
 * nested selections: the top k/2 lie inside the top k, so each select works on the
 * previous prefix and the whole row costs expected O(2t). */
static void row_stats(const float *p, int t, const int *ks, int n_ks, uint64_t *keys, double *acc) {
    int n = t + 1, cur = n, amax = 0;
    double total = 0;
    for (int s = 0; s <= t; s++) {
        total += p[s];
        if (p[s] > p[amax]) amax = s;
    }
    acc[0] += teacher_entropy(p, t);
    acc[1] += t - amax;
    acc[2] += amax == t;
    acc[3] += amax == 0;
    row_keys(p, t, keys);
    for (int i = n_ks - 1; i >= 0; i--) {
        double mass = 0;
        if (ks[i] >= n) mass = total;
        else {
            select_top(keys, cur, ks[i]);
            cur = ks[i];
            for (int j = 0; j < cur; j++) mass += key_prob(keys[j]);
        }
        acc[TEACHER_NSTAT_FIXED + i] += mass;
    }
}

/* ================================================================ statistics */

void teacher_stats_init(teacher_stats *s, const teacher_pair *pairs, int n_pairs, int T) {
    memset(s, 0, sizeof *s);
    s->n_pairs = n_pairs;
    s->T = T;
    s->n_ks = teacher_ks(T, s->ks);
    s->pairs = xmalloc((size_t)n_pairs * sizeof *pairs);
    memcpy(s->pairs, pairs, (size_t)n_pairs * sizeof *pairs);
    s->sum = xcalloc((size_t)n_pairs * NSTAT(s->n_ks), sizeof(double));
    s->head = xcalloc((size_t)n_pairs, sizeof *s->head);
}

/* Row t of head (l, h), sequence b, in the (L,B,H,T,T) attention buffer. */
static const float *att_row(const gpt_model *m, int B, int T, teacher_pair pr, int b, int t) {
    size_t H = (size_t)m->cfg.heads;
    if (!m->acts.att) die_at(__FILE__, __LINE__, "teacher collection needs naive attention, not flash");
    size_t off = ((((size_t)pr.layer * B + b) * H + pr.head) * T + t) * T;
    return m->acts.att + off;
}

/* Each (pair, sequence) item sums its own queries into part[]; the items are then
 * reduced in a fixed order, so the sums do not depend on the thread count. */
void teacher_stats_add(teacher_stats *s, const gpt_model *m, int B, int T) {
    if (T != s->T) die_at(__FILE__, __LINE__, "teacher_stats_add: T %d, initialised for %d", T, s->T);
    int ns = NSTAT(s->n_ks), items = s->n_pairs * B;
    double *part = xcalloc((size_t)items * ns, sizeof(double));
#pragma omp parallel
    {
        uint64_t *keys = xmalloc((size_t)T * sizeof *keys);
#pragma omp for schedule(dynamic, 1)
        for (int it = 0; it < items; it++) {
            teacher_pair pr = s->pairs[it / B];
            for (int t = 0; t < T; t++)
                row_stats(att_row(m, B, T, pr, it % B, t), t, s->ks, s->n_ks, keys,
                          part + (size_t)it * ns);
        }
        free(keys);
    }
    for (int it = 0; it < items; it++)
        for (int j = 0; j < ns; j++) s->sum[(size_t)(it / B) * ns + j] += part[(size_t)it * ns + j];
    s->queries += (long long)B * T;
    free(part);
}

void teacher_stats_finish(teacher_stats *s) {
    int ns = NSTAT(s->n_ks);
    double q = s->queries > 0 ? (double)s->queries : 1.0;
    for (int p = 0; p < s->n_pairs; p++) {
        const double *x = s->sum + (size_t)p * ns;
        teacher_head_stats *h = &s->head[p];
        h->entropy = x[0] / q;
        h->argmax_dist = x[1] / q;
        h->self_frac = x[2] / q;
        h->sink_frac = x[3] / q;
        for (int i = 0; i < s->n_ks; i++) h->mass[i] = x[TEACHER_NSTAT_FIXED + i] / q;
    }
}

void teacher_stats_free(teacher_stats *s) {
    free(s->pairs);
    free(s->sum);
    free(s->head);
    memset(s, 0, sizeof *s);
}

/* ================================================================ extraction */

size_t teacher_record_bytes(int n, int hs, int kmax) {
    return (size_t)n * (4 * (size_t)hs + 2 * (size_t)kmax) * 4;
}

void teacher_record_alloc(teacher_record *r, int n, int hs, int kmax) {
    size_t nh = (size_t)n * hs, nk = (size_t)n * kmax;
    r->n = n;
    r->hs = hs;
    r->kmax = kmax;
    r->q = xmalloc(4 * nh * sizeof(float));
    r->k = r->q + nh;
    r->v = r->k + nh;
    r->o = r->v + nh;
    r->top_idx = xmalloc(nk * sizeof(int32_t));
    r->top_p = xmalloc(nk * sizeof(float));
}

void teacher_record_free(teacher_record *r) {
    free(r->q);
    free(r->top_idx);
    free(r->top_p);
    memset(r, 0, sizeof *r);
}

void teacher_extract(const gpt_model *m, int B, int T, teacher_pair pr, int b, int t0, int t1,
                     teacher_record *r) {
    int C = m->cfg.channels, hs = C / m->cfg.heads, K = r->kmax;
    if (t1 - t0 != r->n || r->hs != hs || t0 < 0 || t1 > T || K > T)
        die_at(__FILE__, __LINE__, "teacher_extract: record (n %d, hs %d, kmax %d) for [%d, %d) of T %d",
               r->n, r->hs, K, t0, t1, T);
    size_t row0 = ((size_t)pr.layer * B + b) * T, hoff = (size_t)pr.head * hs;
    const float *qkv = m->acts.qkv + row0 * 3 * C, *atty = m->acts.atty + row0 * C;
    size_t bytes = (size_t)hs * sizeof(float);
    for (int t = t0; t < t1; t++) {
        size_t i = (size_t)(t - t0) * hs;
        memcpy(r->q + i, qkv + (size_t)t * 3 * C + hoff, bytes);
        memcpy(r->k + i, qkv + (size_t)t * 3 * C + C + hoff, bytes);
        memcpy(r->v + i, qkv + (size_t)t * 3 * C + 2 * C + hoff, bytes);
        memcpy(r->o + i, atty + (size_t)t * C + hoff, bytes);
    }
#pragma omp parallel if (t1 - t0 >= 64)
    {
        uint64_t *keys = xmalloc((size_t)T * sizeof *keys);
#pragma omp for schedule(static)
        for (int t = t0; t < t1; t++) {
            size_t i = (size_t)(t - t0) * K;
            topk_keys(att_row(m, B, T, pr, b, t), t, K, r->top_idx + i, r->top_p + i, keys);
        }
        free(keys);
    }
}

/* ================================================================ info and sizes */

teacher_shard_info teacher_shard_info_make(const gpt_config *c, const teacher_pair *pairs,
                                           int n_pairs, int n_seqs, int T, int kmax) {
    teacher_shard_info in = {.layers = c->layers, .heads = c->heads, .channels = c->channels,
                             .max_seq = c->max_seq, .vocab = c->vocab, .n_seqs = n_seqs,
                             .T = T, .kmax = kmax, .n_pairs = n_pairs,
                             .pairs = (teacher_pair *)pairs};
    in.n_ks = teacher_ks(T, in.ks);
    return in;
}

static uint64_t prefix_bytes(const teacher_shard_info *in) {
    return TEACHER_HEADER_WORDS * 4 + (uint64_t)in->n_pairs * 8 + (uint64_t)in->n_ks * 4;
}

static uint64_t stats_bytes(const teacher_shard_info *in) {
    return (uint64_t)in->n_pairs * NSTAT(in->n_ks) * 8;
}

uint64_t teacher_shard_bytes(const teacher_shard_info *in) {
    uint64_t rec = teacher_record_bytes(in->T, in->channels / in->heads, in->kmax), all;
    if (__builtin_mul_overflow(rec, (uint64_t)in->n_seqs * (uint64_t)in->n_pairs, &all)) return 0;
    uint64_t total = all + prefix_bytes(in) + stats_bytes(in);
    return total < all ? 0 : total;
}

/* Dimensions and pair list, for the writer and the reader alike. */
static int info_check(const teacher_shard_info *in, const char *path, sattn_err *e) {
    gpt_config c = {.max_seq = in->max_seq, .vocab = in->vocab, .layers = in->layers,
                    .heads = in->heads, .channels = in->channels};
    c.padded_vocab = gpt_padded_vocab(c.vocab > 0 ? c.vocab : 1);
    sattn_err ce;
    if (gpt_config_check(&c, &ce)) return err_set(e, "%s: model dimensions: %s", path, ce.msg);
    if (in->T < 1 || in->T > in->max_seq)
        return err_set(e, "%s: T = %d: expected 1..%d (the model's context)", path, in->T, in->max_seq);
    if (in->kmax < 1 || in->kmax > in->T)
        return err_set(e, "%s: kmax = %d: expected 1..%d (T)", path, in->kmax, in->T);
    if (in->n_seqs < 1) return err_set(e, "%s: %d sequences: expected at least 1", path, in->n_seqs);
    if (in->n_pairs < 1 || in->n_pairs > in->layers * in->heads)
        return err_set(e, "%s: %d heads: expected 1..%d", path, in->n_pairs, in->layers * in->heads);
    if (teacher_shard_bytes(in) == 0) return err_set(e, "%s: dimensions overflow the file size", path);
    return 0;
}

static int pairs_check(const teacher_shard_info *in, const char *path, sattn_err *e) {
    for (int p = 0; p < in->n_pairs; p++) {
        teacher_pair a = in->pairs[p];
        if (a.layer < 0 || a.layer >= in->layers || a.head < 0 || a.head >= in->heads)
            return err_set(e, "%s: head %d is (layer %d, head %d), outside the model's %d layers x %d heads",
                           path, p, a.layer, a.head, in->layers, in->heads);
        for (int q = 0; q < p; q++)
            if (in->pairs[q].layer == a.layer && in->pairs[q].head == a.head)
                return err_set(e, "%s: (layer %d, head %d) is listed twice", path, a.layer, a.head);
    }
    return 0;
}

static void header_words(const teacher_shard_info *in, uint32_t h[TEACHER_HEADER_WORDS]) {
    memset(h, 0, TEACHER_HEADER_WORDS * 4);
    uint32_t v[] = {TEACHER_MAGIC, TEACHER_VERSION, (uint32_t)in->layers, (uint32_t)in->heads,
                    (uint32_t)in->channels, (uint32_t)in->max_seq, (uint32_t)in->vocab,
                    (uint32_t)in->n_seqs, (uint32_t)in->T, (uint32_t)in->kmax,
                    (uint32_t)in->n_pairs, (uint32_t)in->n_ks,
                    (uint32_t)in->checksum, (uint32_t)(in->checksum >> 32)};
    memcpy(h, v, sizeof v);
}

/* ================================================================ writer */

static int wwrite(teacher_writer *w, const void *p, size_t n, sattn_err *e) {
    w->sum = fnv1a64(p, n, w->sum);
    return afile_write(&w->f, p, n, e);
}

int teacher_writer_open(teacher_writer *w, const char *path, const teacher_shard_info *info,
                        sattn_err *e) {
    memset(w, 0, sizeof *w);
    if (info_check(info, path, e) || pairs_check(info, path, e)) return -1;
    if (afile_open(&w->f, path, e)) return -1;
    w->info = *info;
    w->info.checksum = 0;
    w->info.pairs = xmalloc((size_t)info->n_pairs * sizeof *info->pairs);
    memcpy(w->info.pairs, info->pairs, (size_t)info->n_pairs * sizeof *info->pairs);
    teacher_record_alloc(&w->rec, info->T, info->channels / info->heads, info->kmax);
    uint32_t h[TEACHER_HEADER_WORDS];
    header_words(&w->info, h);
    w->sum = fnv1a64(h, sizeof h, FNV1A64_INIT); /* the checksum words are still 0 here */
    int rc = afile_write(&w->f, h, sizeof h, e);
    for (int p = 0; !rc && p < info->n_pairs; p++) {
        int32_t lh[2] = {info->pairs[p].layer, info->pairs[p].head};
        rc = wwrite(w, lh, sizeof lh, e);
    }
    if (!rc) rc = wwrite(w, w->info.ks, (size_t)w->info.n_ks * 4, e);
    if (rc) teacher_writer_abort(w);
    return rc;
}

static int write_record(teacher_writer *w, const teacher_record *r, sattn_err *e) {
    size_t nh = (size_t)r->n * r->hs, nk = (size_t)r->n * r->kmax;
    if (wwrite(w, r->q, 4 * nh * sizeof(float), e)) return -1; /* q, k, v, o are contiguous */
    if (wwrite(w, r->top_idx, nk * sizeof(int32_t), e)) return -1;
    return wwrite(w, r->top_p, nk * sizeof(float), e);
}

int teacher_writer_add(teacher_writer *w, const gpt_model *m, int B, sattn_err *e) {
    const teacher_shard_info *in = &w->info;
    if (w->seqs_written + B > in->n_seqs)
        return err_set(e, "%s: %d sequences written, the header says %d", w->f.path,
                       w->seqs_written + B, in->n_seqs);
    for (int b = 0; b < B; b++) {
        for (int p = 0; p < in->n_pairs; p++) {
            teacher_extract(m, B, in->T, in->pairs[p], b, 0, in->T, &w->rec);
            if (write_record(w, &w->rec, e)) return -1;
        }
        w->seqs_written++;
    }
    return 0;
}

static int write_stats(teacher_writer *w, const teacher_stats *s, sattn_err *e) {
    const teacher_shard_info *in = &w->info;
    if (s->n_pairs != in->n_pairs || s->T != in->T ||
        memcmp(s->pairs, in->pairs, (size_t)in->n_pairs * sizeof *in->pairs))
        return err_set(e, "%s: the statistics are for other heads or another T", w->f.path);
    for (int p = 0; p < in->n_pairs; p++) {
        const teacher_head_stats *h = &s->head[p];
        double x[NSTAT(TEACHER_MAX_KS)] = {h->entropy, h->argmax_dist, h->self_frac, h->sink_frac};
        memcpy(x + TEACHER_NSTAT_FIXED, h->mass, (size_t)in->n_ks * sizeof(double));
        if (wwrite(w, x, (size_t)NSTAT(in->n_ks) * sizeof(double), e)) return -1;
    }
    return 0;
}

/* The checksum is known only at the end: rewrite the header in place, then commit. */
static int patch_header(teacher_writer *w, sattn_err *e) {
    uint32_t h[TEACHER_HEADER_WORDS];
    w->info.checksum = w->sum;
    header_words(&w->info, h);
    if (fflush(w->f.f) || fseeko(w->f.f, 0, SEEK_SET) || fwrite(h, sizeof h, 1, w->f.f) != 1 ||
        fseeko(w->f.f, 0, SEEK_END))
        return err_set(e, "%s: write failed (%s)", w->f.path, strerror(errno));
    return 0;
}

int teacher_writer_finish(teacher_writer *w, const teacher_stats *s, sattn_err *e) {
    int rc = 0;
    if (w->seqs_written != w->info.n_seqs)
        rc = err_set(e, "%s: %d sequences written, the header says %d", w->f.path,
                     w->seqs_written, w->info.n_seqs);
    if (!rc) rc = write_stats(w, s, e);
    if (!rc) rc = patch_header(w, e);
    if (rc) return teacher_writer_abort(w), -1;
    rc = afile_commit(&w->f, e);
    teacher_record_free(&w->rec);
    free(w->info.pairs);
    memset(w, 0, sizeof *w);
    return rc;
}

void teacher_writer_abort(teacher_writer *w) {
    if (w->f.path) afile_abort(&w->f);
    teacher_record_free(&w->rec);
    free(w->info.pairs);
    memset(w, 0, sizeof *w);
}

/* ================================================================ reader */

static int rread(teacher_shard *s, void *p, size_t n, uint64_t *sum, sattn_err *e) {
    if (fread(p, 1, n, s->f) != n)
        return err_set(e, "%s: read failed (%s)", s->path, ferror(s->f) ? strerror(errno) : "unexpected end");
    if (sum) *sum = fnv1a64(p, n, *sum);
    return 0;
}

#define W_CHECKSUM 12 /* header words 12..13 */
#define W_RESERVED 14 /* header words 14.. must be 0 (version 2) */

/* Version 2: reserved words 0; the checksum starts with the header's own hash, taken
 * with the checksum words as 0. */
static int header_v2(teacher_shard *s, const uint32_t *h, uint64_t *sum, sattn_err *e) {
    for (int i = W_RESERVED; i < TEACHER_HEADER_WORDS; i++)
        if (h[i])
            return err_set(e, "%s: header word %d = 0x%08x, expected 0 (reserved)", s->path, i,
                           h[i]);
    *sum = fnv1a64_header(h, TEACHER_HEADER_WORDS * sizeof *h, W_CHECKSUM * sizeof *h);
    return 0;
}

/* Header words -> info; checks magic, version, reserved words and dimensions; *sum gets
 * where the checksum starts. */
static int read_header(teacher_shard *s, uint64_t size, uint64_t *sum, sattn_err *e) {
    uint32_t h[TEACHER_HEADER_WORDS];
    if (size < sizeof h)
        return err_set(e, "%s: truncated: %llu bytes, the header alone is %zu", s->path,
                       (unsigned long long)size, sizeof h);
    if (rread(s, h, sizeof h, NULL, e)) return -1;
    if (h[0] != TEACHER_MAGIC)
        return err_set(e, "%s: not a sattn teacher shard (magic 0x%08x, expected 0x%08x \"STCH\")",
                       s->path, h[0], TEACHER_MAGIC);
    if (h[1] != TEACHER_VERSION && h[1] != TEACHER_VERSION_V1)
        return err_set(e, "%s: shard version %u, expected %d or %d", s->path, h[1],
                       TEACHER_VERSION_V1, TEACHER_VERSION);
    *sum = FNV1A64_INIT;
    if (h[1] == TEACHER_VERSION && header_v2(s, h, sum, e)) return -1;
    for (int i = 2; i <= 11; i++)
        if (h[i] > (1u << 30))
            return err_set(e, "%s: header word %d = %u is out of range", s->path, i, h[i]);
    teacher_shard_info *in = &s->info;
    *in = (teacher_shard_info){.layers = (int)h[2], .heads = (int)h[3], .channels = (int)h[4],
                               .max_seq = (int)h[5], .vocab = (int)h[6], .n_seqs = (int)h[7],
                               .T = (int)h[8], .kmax = (int)h[9], .n_pairs = (int)h[10],
                               .checksum = (uint64_t)h[13] << 32 | h[12]};
    if (info_check(in, s->path, e)) return -1;
    in->n_ks = teacher_ks(in->T, in->ks);
    if ((int)h[11] != in->n_ks)
        return err_set(e, "%s: %u mass columns, expected %d for T = %d", s->path, h[11], in->n_ks, in->T);
    uint64_t want = teacher_shard_bytes(in);
    if (size != want)
        return err_set(e, "%s: %s: %llu bytes, expected %llu for %d sequences x %d heads (T %d, head dim %d, kmax %d)",
                       s->path, size < want ? "truncated" : "trailing bytes", (unsigned long long)size,
                       (unsigned long long)want, in->n_seqs, in->n_pairs, in->T,
                       in->channels / in->heads, in->kmax);
    return 0;
}

static int read_pairs(teacher_shard *s, uint64_t *sum, sattn_err *e) {
    teacher_shard_info *in = &s->info;
    int32_t *raw = xmalloc((size_t)in->n_pairs * 8), ks[TEACHER_MAX_KS];
    int rc = rread(s, raw, (size_t)in->n_pairs * 8, sum, e);
    in->pairs = xmalloc((size_t)in->n_pairs * sizeof *in->pairs);
    for (int p = 0; p < in->n_pairs; p++) in->pairs[p] = (teacher_pair){raw[2 * p], raw[2 * p + 1]};
    free(raw);
    if (!rc) rc = pairs_check(in, s->path, e);
    if (!rc) rc = rread(s, ks, (size_t)in->n_ks * 4, sum, e);
    for (int i = 0; !rc && i < in->n_ks; i++)
        if (ks[i] != in->ks[i])
            rc = err_set(e, "%s: mass column %d is k = %d, expected %d", s->path, i, ks[i], in->ks[i]);
    return rc;
}

/* Row t of a record: min(kmax, t+1) keys s <= t in descending (p, then smaller s)
 * order with p in [0, 1], then -1 / 0 padding. Returns a message or NULL. */
static const char *check_row(const int32_t *idx, const float *p, int t, int K, int *bad_j) {
    int nv = K < t + 1 ? K : t + 1;
    for (int j = 0; j < K; j++) {
        *bad_j = j;
        if (j >= nv) {
            if (idx[j] != -1 || p[j] != 0) return "padding is not -1 / 0";
            continue;
        }
        if (idx[j] < 0) return "missing key";
        if (idx[j] > t) return "key after the query (not causal)";
        if (!(p[j] >= 0 && p[j] <= 1)) return "probability outside [0, 1]";
        if (j > 0 && (p[j] > p[j - 1] || (p[j] == p[j - 1] && idx[j] <= idx[j - 1])))
            return "keys not in descending probability";
    }
    return NULL;
}

/* q, k, v, o of a record: a non-finite value would poison every head distilled on it. */
static int check_vectors(const teacher_shard *s, const teacher_record *r, int seq, int pair,
                         sattn_err *e) {
    static const char *const names[4] = {"q", "k", "v", "o"};
    size_t nh = (size_t)r->n * r->hs;
    for (size_t i = 0; i < 4 * nh; i++)
        if (!isfinite(r->q[i]))
            return err_set(e, "%s: sequence %d, layer %d, head %d: %s[%zu][%zu] is %s, expected "
                              "finite values", s->path, seq, s->info.pairs[pair].layer,
                           s->info.pairs[pair].head, names[i / nh], i % nh / (size_t)r->hs,
                           i % (size_t)r->hs, isnan(r->q[i]) ? "NaN" : "infinite");
    return 0;
}

static int check_record(const teacher_shard *s, const teacher_record *r, int seq, int pair,
                        sattn_err *e) {
    if (check_vectors(s, r, seq, pair, e)) return -1;
    for (int t = 0; t < r->n; t++) {
        int j;
        const int32_t *idx = r->top_idx + (size_t)t * r->kmax;
        const char *why = check_row(idx, r->top_p + (size_t)t * r->kmax, t, r->kmax, &j);
        if (why)
            return err_set(e, "%s: sequence %d, layer %d, head %d, query %d, top-k entry %d (key %d): %s",
                           s->path, seq, s->info.pairs[pair].layer, s->info.pairs[pair].head, t, j,
                           idx[j], why);
    }
    return 0;
}

static int read_record_raw(teacher_shard *s, teacher_record *r, uint64_t *sum, sattn_err *e) {
    size_t nh = (size_t)r->n * r->hs, nk = (size_t)r->n * r->kmax;
    if (rread(s, r->q, 4 * nh * sizeof(float), sum, e)) return -1;
    if (rread(s, r->top_idx, nk * sizeof(int32_t), sum, e)) return -1;
    return rread(s, r->top_p, nk * sizeof(float), sum, e);
}

/* Streams the records and stats once. A bad record is reported only if the checksum
 * holds (a checksum mismatch is the more basic fault). */
static int read_payload(teacher_shard *s, uint64_t *sum, sattn_err *e) {
    teacher_shard_info *in = &s->info;
    teacher_record r;
    teacher_record_alloc(&r, in->T, in->channels / in->heads, in->kmax);
    sattn_err first;
    int rc = 0, bad = 0;
    for (int n = 0; !rc && n < in->n_seqs; n++)
        for (int p = 0; !rc && p < in->n_pairs; p++) {
            rc = read_record_raw(s, &r, sum, e);
            if (!rc && !bad) bad = check_record(s, &r, n, p, &first) != 0;
        }
    teacher_record_free(&r);
    int ns = NSTAT(in->n_ks);
    double *x = xmalloc((size_t)in->n_pairs * ns * sizeof(double));
    if (!rc) rc = rread(s, x, (size_t)in->n_pairs * ns * sizeof(double), sum, e);
    s->stats = xcalloc((size_t)in->n_pairs, sizeof *s->stats);
    for (int p = 0; !rc && p < in->n_pairs; p++) {
        const double *v = x + (size_t)p * ns;
        for (int j = 0; j < ns; j++)
            if (!bad && !isfinite(v[j]))
                bad = err_set(&first, "%s: statistic %d of head %d is not finite", s->path, j, p);
        s->stats[p] = (teacher_head_stats){v[0], v[1], v[2], v[3], {0}};
        memcpy(s->stats[p].mass, v + TEACHER_NSTAT_FIXED, (size_t)in->n_ks * sizeof(double));
    }
    free(x);
    if (rc) return -1;
    if (*sum != in->checksum)
        return err_set(e, "%s: checksum mismatch (stored %016llx, computed %016llx): the file is corrupt",
                       s->path, (unsigned long long)in->checksum, (unsigned long long)*sum);
    return bad ? (*e = first, -1) : 0;
}

int teacher_shard_open(teacher_shard *s, const char *path, sattn_err *e) {
    memset(s, 0, sizeof *s);
    size_t size = 0;
    s->f = file_open_regular(path, &size, e);
    if (!s->f) return -1;
    s->path = xmalloc(strlen(path) + 1);
    strcpy(s->path, path);
    uint64_t sum = FNV1A64_INIT;
    int rc = read_header(s, (uint64_t)size, &sum, e);
    if (!rc) rc = read_pairs(s, &sum, e);
    s->records_off = prefix_bytes(&s->info);
    s->rec_bytes = teacher_record_bytes(s->info.T, s->info.channels / (s->info.heads ? s->info.heads : 1),
                                        s->info.kmax);
    if (!rc) rc = read_payload(s, &sum, e);
    if (rc) teacher_shard_close(s);
    return rc;
}

int teacher_shard_read(teacher_shard *s, int seq, int pair, teacher_record *r, sattn_err *e) {
    const teacher_shard_info *in = &s->info;
    if (seq < 0 || seq >= in->n_seqs || pair < 0 || pair >= in->n_pairs)
        return err_set(e, "%s: no record (sequence %d, head %d): the shard has %d x %d", s->path,
                       seq, pair, in->n_seqs, in->n_pairs);
    if (r->n != in->T || r->hs != in->channels / in->heads || r->kmax != in->kmax)
        return err_set(e, "%s: record buffer is (%d, %d, %d), the shard's is (%d, %d, %d)", s->path,
                       r->n, r->hs, r->kmax, in->T, in->channels / in->heads, in->kmax);
    uint64_t off = s->records_off + ((uint64_t)seq * in->n_pairs + pair) * s->rec_bytes;
    if (fseeko(s->f, (off_t)off, SEEK_SET))
        return err_set(e, "%s: seek failed (%s)", s->path, strerror(errno));
    return read_record_raw(s, r, NULL, e);
}

void teacher_shard_close(teacher_shard *s) {
    if (s->f) fclose(s->f);
    free(s->path);
    free(s->info.pairs);
    free(s->stats);
    memset(s, 0, sizeof *s);
}
