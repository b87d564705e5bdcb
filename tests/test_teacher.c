/* Tests for teacher: statistics against a sort-based reference and their invariants
 * (mass@T = 1, mass nondecreasing in k, entropy within [0, ln(t+1)]); extraction equal
 * to the model's activations bitwise and top-k keys causal, descending and equal to att;
 * shard round trips and every damaged shard rejected with one line naming the file;
 * head-list parsing; and `sattn collect` end to end (bad flags write nothing). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_util.h"
#include "sattn/ckpt.h"
#include "sattn/teacher.h"

static const gpt_config TINY = {.max_seq = 16, .vocab = 256, .padded_vocab = 256,
                                .layers = 2, .heads = 2, .channels = 16};

/* A random-initialised tiny model after a forward on B random sequences of T. */
static void tiny_forward(gpt_model *m, int B, int T, uint64_t seed) {
    rng_t r;
    rng_seed(&r, seed);
    gpt_create(m, &TINY);
    gpt_init_random(m, &r);
    /* Larger qkv weights than GPT-2's 0.02 so attention is far from uniform. */
    size_t n = (size_t)TINY.layers * 3 * TINY.channels * TINY.channels;
    for (size_t i = 0; i < n; i++) m->params.qkvw[i] *= 40.0f;
    int *in = xmalloc((size_t)B * T * sizeof(int));
    for (int i = 0; i < B * T; i++) in[i] = (int)(rng_below(&r, 256));
    gpt_forward(m, in, NULL, B, T);
    free(in);
}

static const float *row_of(const gpt_model *m, int B, int T, teacher_pair p, int b, int t) {
    return m->acts.att + ((((size_t)p.layer * B + b) * TINY.heads + p.head) * T + t) * T;
}

static void all_pairs(teacher_pair *p) {
    for (int l = 0; l < TINY.layers; l++)
        for (int h = 0; h < TINY.heads; h++) p[l * TINY.heads + h] = (teacher_pair){l, h};
}

static void assert_one_line(const char *msg, const char *a, const char *b) {
    cr_assert_not_null(strstr(msg, a), "message '%s' lacks '%s'", msg, a);
    if (b) cr_assert_not_null(strstr(msg, b), "message '%s' lacks '%s'", msg, b);
    cr_assert_null(strchr(msg, '\n'), "message '%s' is not one line", msg);
}

/* ------------------------------------------------------------ statistics */

static int cmp_desc(const void *x, const void *y) {
    float a = *(const float *)x, b = *(const float *)y;
    return a < b ? 1 : a > b ? -1 : 0;
}

/* Reference statistics of one head by sorting every row. */
static void ref_stats(const gpt_model *m, int B, int T, teacher_pair p, double *out, const int *ks,
                      int n_ks) {
    float *row = malloc((size_t)T * sizeof(float));
    memset(out, 0, (size_t)(4 + n_ks) * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *pr = row_of(m, B, T, p, b, t);
            int am = 0;
            for (int s = 0; s <= t; s++) {
                if (pr[s] > pr[am]) am = s;
                if (pr[s] > 0) out[0] -= pr[s] * log(pr[s]);
            }
            out[1] += t - am, out[2] += am == t, out[3] += am == 0;
            memcpy(row, pr, (size_t)(t + 1) * sizeof(float));
            qsort(row, (size_t)t + 1, sizeof(float), cmp_desc);
            for (int i = 0; i < n_ks; i++)
                for (int j = 0; j < ks[i] && j <= t; j++) out[4 + i] += row[j];
        }
    for (int i = 0; i < 4 + n_ks; i++) out[i] /= (double)B * T;
    free(row);
}

Test(teacher, ks_are_powers_of_two_then_T) {
    int ks[TEACHER_MAX_KS];
    int n = teacher_ks(16, ks);
    cr_assert_eq(n, 5);
    int want[] = {1, 2, 4, 8, 16};
    for (int i = 0; i < n; i++) cr_assert_eq(ks[i], want[i]);
    n = teacher_ks(100, ks);
    cr_assert_eq(n, 8);
    cr_assert_eq(ks[6], 64);
    cr_assert_eq(ks[7], 100);
    cr_assert_eq(teacher_ks(1, ks), 1);
    cr_assert_eq(ks[0], 1);
}

Test(teacher, stats_sanity_and_reference) {
    const int B = 3, T = 16;
    gpt_model m;
    tiny_forward(&m, B, T, 7);
    teacher_pair pairs[4];
    all_pairs(pairs);
    teacher_stats s;
    teacher_stats_init(&s, pairs, 4, T);
    teacher_stats_add(&s, &m, B, T);
    teacher_stats_finish(&s);
    cr_assert_eq(s.queries, (long long)B * T);
    for (int p = 0; p < 4; p++) {
        const teacher_head_stats *h = &s.head[p];
        cr_assert_float_eq(h->mass[s.n_ks - 1], 1.0, 1e-5, "mass@T = %g", h->mass[s.n_ks - 1]);
        for (int i = 1; i < s.n_ks; i++) cr_assert_geq(h->mass[i], h->mass[i - 1]);
        cr_assert(h->entropy >= 0 && h->entropy <= log((double)T), "entropy %g", h->entropy);
        cr_assert(h->self_frac >= 0 && h->self_frac <= 1 && h->sink_frac >= 0 && h->sink_frac <= 1);
        cr_assert(h->argmax_dist >= 0 && h->argmax_dist <= T - 1);
        double ref[4 + TEACHER_MAX_KS];
        ref_stats(&m, B, T, pairs[p], ref, s.ks, s.n_ks);
        double got[4] = {h->entropy, h->argmax_dist, h->self_frac, h->sink_frac};
        for (int i = 0; i < 4; i++) cr_assert_float_eq(got[i], ref[i], 1e-9, "stat %d", i);
        for (int i = 0; i < s.n_ks; i++) cr_assert_float_eq(h->mass[i], ref[4 + i], 1e-9, "mass %d", i);
    }
    teacher_stats_free(&s);
    gpt_free(&m);
}

Test(teacher, entropy_per_query_within_bounds) {
    const int B = 2, T = 16;
    gpt_model m;
    tiny_forward(&m, B, T, 11);
    teacher_pair pairs[4];
    all_pairs(pairs);
    for (int p = 0; p < 4; p++)
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                double h = teacher_entropy(row_of(&m, B, T, pairs[p], b, t), t);
                cr_assert(h >= 0 && h <= log(t + 1.0) + 1e-6, "H = %g at t = %d", h, t);
            }
    float uni[8] = {0.25f, 0.25f, 0.25f, 0.25f};
    cr_assert_float_eq(teacher_entropy(uni, 3), log(4.0), 1e-7);
    float one[3] = {0, 1, 0};
    cr_assert_eq(teacher_entropy(one, 2), 0.0);
    gpt_free(&m);
}

Test(teacher, stats_do_not_depend_on_threads) {
    const int B = 4, T = 16;
    gpt_model m;
    tiny_forward(&m, B, T, 3);
    teacher_pair pairs[4];
    all_pairs(pairs);
    double sums[2][4 * (4 + TEACHER_MAX_KS)] = {{0}};
    int saved = omp_get_max_threads();
    for (int r = 0; r < 2; r++) {
        omp_set_num_threads(r ? 3 : 1);
        teacher_stats s;
        teacher_stats_init(&s, pairs, 4, T);
        teacher_stats_add(&s, &m, B, T);
        teacher_stats_add(&s, &m, B, T);
        memcpy(sums[r], s.sum, (size_t)4 * (4 + s.n_ks) * sizeof(double));
        teacher_stats_free(&s);
    }
    omp_set_num_threads(saved);
    cr_assert_eq(memcmp(sums[0], sums[1], sizeof sums[0]), 0);
    gpt_free(&m);
}

/* ------------------------------------------------------------ extraction */

static void check_topk_row(const float *p, int t, int K, const int32_t *idx, const float *pr) {
    int nv = K < t + 1 ? K : t + 1;
    unsigned char *in = calloc((size_t)t + 1, 1);
    for (int j = 0; j < K; j++) {
        if (j >= nv) {
            cr_assert_eq(idx[j], -1);
            cr_assert_eq(pr[j], 0.0f);
            continue;
        }
        cr_assert(idx[j] >= 0 && idx[j] <= t, "key %d of query %d", idx[j], t);
        cr_assert_eq(pr[j], p[idx[j]], "prob differs from att");
        cr_assert(!in[idx[j]], "key %d twice", idx[j]);
        in[idx[j]] = 1;
        if (j) cr_assert(pr[j] < pr[j - 1] || (pr[j] == pr[j - 1] && idx[j] > idx[j - 1]));
    }
    /* Every key left out has at most the smallest kept probability. */
    for (int s = 0; s <= t; s++)
        if (!in[s]) cr_assert_leq(p[s], pr[nv - 1]);
    free(in);
}

Test(teacher, extract_matches_activations) {
    const int B = 3, T = 16, K = 5, C = TINY.channels, hs = C / TINY.heads;
    gpt_model m;
    tiny_forward(&m, B, T, 5);
    teacher_record r;
    teacher_record_alloc(&r, T, hs, K);
    teacher_pair pairs[4];
    all_pairs(pairs);
    for (int p = 0; p < 4; p++)
        for (int b = 0; b < B; b++) {
            teacher_extract(&m, B, T, pairs[p], b, 0, T, &r);
            size_t row0 = ((size_t)pairs[p].layer * B + b) * T, off = (size_t)pairs[p].head * hs;
            for (int t = 0; t < T; t++) {
                const float *qkv = m.acts.qkv + (row0 + t) * 3 * C + off;
                const float *o = m.acts.atty + (row0 + t) * C + off;
                size_t i = (size_t)t * hs, by = (size_t)hs * 4;
                cr_assert_eq(memcmp(r.q + i, qkv, by), 0);
                cr_assert_eq(memcmp(r.k + i, qkv + C, by), 0);
                cr_assert_eq(memcmp(r.v + i, qkv + 2 * C, by), 0);
                cr_assert_eq(memcmp(r.o + i, o, by), 0);
                check_topk_row(row_of(&m, B, T, pairs[p], b, t), t, K, r.top_idx + (size_t)t * K,
                               r.top_p + (size_t)t * K);
            }
        }
    teacher_record_free(&r);
    gpt_free(&m);
}

/* Independent of the att layout: with K = T a record holds every key, so o_t must be
 * sum_j p_j v_{s_j} and p_j = softmax(q_t . k_s / sqrt(d)); T < max_seq on purpose. */
Test(teacher, record_is_attention) {
    const int B = 2, T = 11, hs = TINY.channels / TINY.heads;
    gpt_model m;
    tiny_forward(&m, B, T, 13);
    teacher_record r;
    teacher_record_alloc(&r, T, hs, T);
    teacher_pair p = {1, 0};
    teacher_extract(&m, B, T, p, 1, 0, T, &r);
    for (int t = 0; t < T; t++) {
        double logit[16], mx = -1e30, z = 0;
        for (int s = 0; s <= t; s++) {
            logit[s] = 0;
            for (int i = 0; i < hs; i++) logit[s] += (double)r.q[t * hs + i] * r.k[s * hs + i];
            logit[s] /= sqrt(hs);
            mx = fmax(mx, logit[s]);
        }
        for (int s = 0; s <= t; s++) z += exp(logit[s] - mx);
        for (int j = 0; j <= t; j++) {
            int s = r.top_idx[t * T + j];
            cr_assert_float_eq(r.top_p[t * T + j], exp(logit[s] - mx) / z, 1e-5, "t %d s %d", t, s);
        }
        for (int i = 0; i < hs; i++) {
            double o = 0;
            for (int j = 0; j <= t; j++) o += (double)r.top_p[t * T + j] * r.v[r.top_idx[t * T + j] * hs + i];
            cr_assert_float_eq(r.o[t * hs + i], o, 1e-5, "o[%d][%d]", t, i);
        }
    }
    teacher_stats s;
    teacher_stats_init(&s, &p, 1, T);
    teacher_stats_add(&s, &m, B, T);
    teacher_stats_finish(&s);
    cr_assert_float_eq(s.head[0].mass[s.n_ks - 1], 1.0, 1e-5);
    teacher_stats_free(&s);
    teacher_record_free(&r);
    gpt_free(&m);
}

Test(teacher, extract_position_range) {
    const int B = 2, T = 16, K = 4, hs = TINY.channels / TINY.heads;
    gpt_model m;
    tiny_forward(&m, B, T, 9);
    teacher_record all, part;
    teacher_record_alloc(&all, T, hs, K);
    teacher_record_alloc(&part, 5, hs, K);
    teacher_pair p = {1, 1};
    teacher_extract(&m, B, T, p, 1, 0, T, &all);
    teacher_extract(&m, B, T, p, 1, 7, 12, &part);
    cr_assert_eq(memcmp(part.q, all.q + 7 * hs, 5 * hs * 4), 0);
    cr_assert_eq(memcmp(part.o, all.o + 7 * hs, 5 * hs * 4), 0);
    cr_assert_eq(memcmp(part.top_idx, all.top_idx + 7 * K, 5 * K * 4), 0);
    cr_assert_eq(memcmp(part.top_p, all.top_p + 7 * K, 5 * K * 4), 0);
    teacher_record_free(&all);
    teacher_record_free(&part);
    gpt_free(&m);
}

Test(teacher, topk_ties_and_sorted_rows) {
    float p[6] = {0.2f, 0.1f, 0.2f, 0.2f, 0.1f, 0.2f};
    int32_t idx[8];
    float pr[8];
    teacher_topk(p, 5, 8, idx, pr);
    int want[8] = {0, 2, 3, 5, 1, 4, -1, -1};
    for (int j = 0; j < 8; j++) cr_assert_eq(idx[j], want[j], "slot %d: %d", j, idx[j]);
    /* Ascending and descending rows (quickselect's bad cases without a good pivot). */
    enum { N = 1000 };
    static float up[N], down[N];
    for (int s = 0; s < N; s++) up[s] = (float)(s + 1) / N, down[s] = (float)(N - s) / N;
    int32_t id[16];
    float q[16];
    teacher_topk(up, N - 1, 16, id, q);
    for (int j = 0; j < 16; j++) cr_assert_eq(id[j], N - 1 - j);
    teacher_topk(down, N - 1, 16, id, q);
    for (int j = 0; j < 16; j++) cr_assert_eq(id[j], j);
    float zeros[40] = {0};
    zeros[17] = 1;
    teacher_topk(zeros, 39, 3, id, q);
    cr_assert(id[0] == 17 && id[1] == 0 && id[2] == 1);
}

/* ------------------------------------------------------------ head lists */

Test(teacher, select_pairs) {
    teacher_pair *p;
    int n;
    sattn_err e;
    cr_assert_eq(teacher_select_pairs(&TINY, "all", "all", &p, &n, &e), 0);
    cr_assert_eq(n, 4);
    cr_assert(p[3].layer == 1 && p[3].head == 1 && p[1].layer == 0 && p[1].head == 1);
    free(p);
    cr_assert_eq(teacher_select_pairs(&TINY, "1", "0,1", &p, &n, &e), 0);
    cr_assert(n == 2 && p[0].layer == 1 && p[0].head == 0 && p[1].head == 1);
    free(p);
    cr_assert_eq(teacher_select_pairs(&TINY, "1,0", "0-1", &p, &n, &e), 0);
    cr_assert(n == 4 && p[0].layer == 0); /* layer-major, ascending */
    free(p);
}

Test(teacher, list_errors_are_one_line) {
    struct { const char *s, *why; } bad[] = {
        {"", "empty"},          {"2", "outside 0..1"},  {"0,,1", "empty"},
        {"0,", "empty"},        {"x", "not an index"},  {"-1", "not an index"},
        {"1-0", "empty"},       {"0,0", "twice"},       {"0-1,1", "twice"},
        {" 1", "not an index"}, {"1.5", "not an index"}, {"99999999999", "outside"},
        {"All", "not an index"}, {"0-", "not an index"}};
    unsigned char sel[2];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sattn_err e;
        cr_assert_eq(teacher_parse_list("layers", bad[i].s, 2, sel, &e), -1, "'%s' accepted", bad[i].s);
        assert_one_line(e.msg, "layers", bad[i].why);
    }
    teacher_pair *p;
    int n;
    sattn_err e;
    cr_assert_eq(teacher_select_pairs(&TINY, "0", "3", &p, &n, &e), -1);
    assert_one_line(e.msg, "heads '3'", "outside 0..1");
}

/* ------------------------------------------------------------ shards */

/* Writes a shard of 5 sequences (forwards of 3 and 2) for pairs {(0,1), (1,0)}, K = 6;
 * keeps the two models (their activations) for comparison. */
static const teacher_pair SHARD_PAIRS[2] = {{0, 1}, {1, 0}};

static void write_shard(const char *path, gpt_model m[2], teacher_stats *s) {
    const int T = 16;
    tiny_forward(&m[0], 3, T, 21);
    tiny_forward(&m[1], 2, T, 22);
    teacher_shard_info in = teacher_shard_info_make(&TINY, SHARD_PAIRS, 2, 5, T, 6);
    teacher_stats_init(s, SHARD_PAIRS, 2, T);
    teacher_writer w;
    sattn_err e;
    cr_assert_eq(teacher_writer_open(&w, path, &in, &e), 0, "%s", e.msg);
    for (int i = 0; i < 2; i++) {
        teacher_stats_add(s, &m[i], 3 - i, T);
        cr_assert_eq(teacher_writer_add(&w, &m[i], 3 - i, &e), 0, "%s", e.msg);
    }
    teacher_stats_finish(s);
    cr_assert_eq(teacher_writer_finish(&w, s, &e), 0, "%s", e.msg);
}

static void assert_same_record(const teacher_record *a, const teacher_record *b) {
    size_t nh = (size_t)a->n * a->hs * 4, nk = (size_t)a->n * a->kmax;
    cr_assert_eq(memcmp(a->q, b->q, nh * sizeof(float)), 0);
    cr_assert_eq(memcmp(a->top_idx, b->top_idx, nk * 4), 0);
    cr_assert_eq(memcmp(a->top_p, b->top_p, nk * 4), 0);
}

Test(teacher, shard_round_trip) {
    tmp_place t;
    tmp_open(&t, "t.shard");
    const char *path = t.path;
    gpt_model m[2];
    teacher_stats s;
    write_shard(path, m, &s);
    cr_assert_eq(cli_dir_entries(t.dir), 1, "temporary file left behind");
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    teacher_shard sh;
    sattn_err e;
    cr_assert_eq(teacher_shard_open(&sh, path, &e), 0, "%s", e.msg);
    const teacher_shard_info *in = &sh.info;
    cr_assert_eq((uint64_t)st.st_size, teacher_shard_bytes(in));
    cr_assert(in->layers == 2 && in->heads == 2 && in->channels == 16 && in->max_seq == 16 &&
              in->vocab == 256 && in->n_seqs == 5 && in->T == 16 && in->kmax == 6 && in->n_pairs == 2);
    cr_assert_eq(memcmp(in->pairs, SHARD_PAIRS, sizeof SHARD_PAIRS), 0);
    cr_assert_eq(memcmp(sh.stats, s.head, 2 * sizeof *sh.stats), 0);
    teacher_record got, want;
    teacher_record_alloc(&got, 16, 8, 6);
    teacher_record_alloc(&want, 16, 8, 6);
    for (int n = 4; n >= 0; n--) /* backwards: reads seek */
        for (int p = 0; p < 2; p++) {
            int i = n < 3 ? 0 : 1, b = n < 3 ? n : n - 3;
            teacher_extract(&m[i], 3 - i, 16, SHARD_PAIRS[p], b, 0, 16, &want);
            cr_assert_eq(teacher_shard_read(&sh, n, p, &got, &e), 0, "%s", e.msg);
            assert_same_record(&got, &want);
        }
    cr_assert_eq(teacher_shard_read(&sh, 5, 0, &got, &e), -1);
    teacher_record_free(&got);
    teacher_record_free(&want);
    teacher_shard_close(&sh);
    teacher_stats_free(&s);
    gpt_free(&m[0]);
    gpt_free(&m[1]);
    tmp_close(&t);
}

/* Recomputes the header checksum (version 2: the header with the checksum words as 0,
 * then the rest), so a test reaches the check after it. */
static void fix_checksum(uint8_t *b, size_t n) {
    memset(b + 12 * 4, 0, 8);
    uint64_t h = fnv1a64(b, TEACHER_HEADER_WORDS * 4, FNV1A64_INIT);
    h = fnv1a64(b + TEACHER_HEADER_WORDS * 4, n - TEACHER_HEADER_WORDS * 4, h);
    uint32_t w[2] = {(uint32_t)h, (uint32_t)(h >> 32)};
    memcpy(b + 12 * 4, w, 8);
}

typedef enum { D_TRUNC, D_TRAIL, D_MAGIC, D_VERSION, D_PAYLOAD, D_LAYER, D_HEAD, D_DUP,
               D_CAUSAL, D_ORDER, D_KMAX, D_EMPTY, D_RESERVED, D_VOCAB, D_NAN_Q, D_INF_V } damage;

#define REC0 (TEACHER_HEADER_WORDS * 4 + 2 * 8 + 5 * 4) /* record (0, 0): q[16][8] first */

static void put_float(uint8_t *b, size_t off, float x) { memcpy(b + off, &x, 4); }

/* Byte offset of record (0, 0)'s top_idx row t. */
static size_t idx_off(int t) {
    size_t rec0 = TEACHER_HEADER_WORDS * 4 + 2 * 8 + 5 * 4;
    return rec0 + 4 * 16 * 8 * 4 + (size_t)t * 6 * 4;
}

static void swap_pair(uint8_t *p) {
    uint8_t t[4];
    memcpy(t, p, 4);
    memcpy(p, p + 4, 4);
    memcpy(p + 4, t, 4);
}

static size_t apply_damage(uint8_t *b, size_t n, damage d) {
    int32_t v;
    switch (d) {
    case D_TRUNC: return n - 9;
    case D_TRAIL: return n + 3;
    case D_MAGIC: b[0] ^= 0x20; break;
    case D_VERSION: b[4] = 3; break;
    case D_PAYLOAD: b[TEACHER_HEADER_WORDS * 4 + 2 * 8 + 5 * 4 + 100] ^= 1; break;
    case D_LAYER: v = 2, memcpy(b + 256 + 8, &v, 4); break;
    case D_HEAD: v = 5, memcpy(b + 256 + 12, &v, 4); break;
    case D_DUP: memcpy(b + 256 + 8, b + 256, 8), fix_checksum(b, n); break;
    case D_CAUSAL: v = 3, memcpy(b + idx_off(2), &v, 4), fix_checksum(b, n); break;
    case D_ORDER: /* swap the top two keys of query 5 (index and probability) */
        swap_pair(b + idx_off(5));
        swap_pair(b + idx_off(5) + 16 * 6 * 4);
        fix_checksum(b, n);
        break;
    case D_KMAX: v = 17, memcpy(b + 9 * 4, &v, 4); break;
    case D_EMPTY: return 0;
    case D_RESERVED: v = 1, memcpy(b + 30 * 4, &v, 4), fix_checksum(b, n); break;
    case D_VOCAB: v = 255, memcpy(b + 6 * 4, &v, 4); break; /* size-neutral */
    case D_NAN_Q: put_float(b, REC0 + (1 * 8 + 2) * 4, NAN), fix_checksum(b, n); break;
    case D_INF_V: put_float(b, REC0 + (2 * 128 + 3 * 8 + 4) * 4, INFINITY), fix_checksum(b, n); break;
    }
    return n;
}

static void expect_reject(damage d, const char *why) {
    tmp_place t;
    tmp_open(&t, "t.shard");
    const char *path = t.path;
    gpt_model m[2];
    teacher_stats s;
    write_shard(path, m, &s);
    size_t n;
    uint8_t *b = (uint8_t *)cli_slurp(path, &n);
    b = realloc(b, n + 16);
    cr_assert_not_null(b);
    memset(b + n, 0, 16);
    size_t n2 = apply_damage(b, n, d);
    cli_spew(path, b, n2);
    teacher_shard sh;
    sattn_err e;
    cr_assert_eq(teacher_shard_open(&sh, path, &e), -1, "damage %d accepted", (int)d);
    assert_one_line(e.msg, path, why);
    free(b);
    teacher_stats_free(&s);
    gpt_free(&m[0]);
    gpt_free(&m[1]);
    tmp_close(&t);
}

Test(teacher, reject_truncated) { expect_reject(D_TRUNC, "truncated"); }
Test(teacher, reject_trailing) { expect_reject(D_TRAIL, "trailing"); }
Test(teacher, reject_empty) { expect_reject(D_EMPTY, "truncated"); }
Test(teacher, reject_magic) { expect_reject(D_MAGIC, "magic"); }
Test(teacher, reject_version) { expect_reject(D_VERSION, "shard version 3, expected 1 or 2"); }
Test(teacher, reject_reserved_word) {
    expect_reject(D_RESERVED, "header word 30 = 0x00000001, expected 0 (reserved)");
}
Test(teacher, reject_header_edit_by_checksum) { expect_reject(D_VOCAB, "checksum mismatch"); }
Test(teacher, reject_nonfinite_q) {
    expect_reject(D_NAN_Q, "sequence 0, layer 0, head 1: q[1][2] is NaN, expected finite values");
}
Test(teacher, reject_nonfinite_v) { expect_reject(D_INF_V, "v[3][4] is infinite"); }

/* A version-1 shard made by hand (checksum over what follows the header, reserved words
 * not looked at) still opens and reads the same records. */
Test(teacher, version1_still_reads) {
    tmp_place t;
    tmp_open(&t, "t.shard");
    gpt_model m[2];
    teacher_stats s;
    write_shard(t.path, m, &s);
    size_t n;
    uint8_t *b = (uint8_t *)cli_slurp(t.path, &n);
    teacher_shard a, v1;
    sattn_err e;
    cr_assert_eq(teacher_shard_open(&a, t.path, &e), 0, "%s", e.msg);
    uint32_t one = 1, junk = 0xdeadbeef;
    memcpy(b + 4, &one, 4);
    memcpy(b + 40 * 4, &junk, 4);
    uint64_t h = fnv1a64(b + TEACHER_HEADER_WORDS * 4, n - TEACHER_HEADER_WORDS * 4, FNV1A64_INIT);
    uint32_t w[2] = {(uint32_t)h, (uint32_t)(h >> 32)};
    memcpy(b + 12 * 4, w, 8);
    cli_spew(t.path, b, n);
    cr_assert_eq(teacher_shard_open(&v1, t.path, &e), 0, "%s", e.msg);
    cr_assert_eq(memcmp(v1.stats, a.stats, 2 * sizeof *a.stats), 0);
    teacher_record ra, rb;
    teacher_record_alloc(&ra, 16, 8, 6);
    teacher_record_alloc(&rb, 16, 8, 6);
    cr_assert_eq(teacher_shard_read(&v1, 4, 1, &rb, &e), 0, "%s", e.msg);
    cr_assert_eq(teacher_shard_read(&a, 4, 1, &ra, &e), 0, "%s", e.msg);
    assert_same_record(&ra, &rb);
    teacher_record_free(&ra);
    teacher_record_free(&rb);
    teacher_shard_close(&a);
    teacher_shard_close(&v1);
    free(b);
    teacher_stats_free(&s);
    gpt_free(&m[0]);
    gpt_free(&m[1]);
    tmp_close(&t);
}
Test(teacher, reject_payload_byte) { expect_reject(D_PAYLOAD, "checksum"); }
Test(teacher, reject_layer) { expect_reject(D_LAYER, "layer 2"); }
Test(teacher, reject_head) { expect_reject(D_HEAD, "head 5"); }
Test(teacher, reject_duplicate_pair) { expect_reject(D_DUP, "twice"); }
Test(teacher, reject_noncausal) { expect_reject(D_CAUSAL, "not causal"); }
Test(teacher, reject_order) { expect_reject(D_ORDER, "descending"); }
Test(teacher, reject_kmax) { expect_reject(D_KMAX, "kmax = 17"); }

Test(teacher, reject_missing_file) {
    teacher_shard sh;
    sattn_err e;
    cr_assert_eq(teacher_shard_open(&sh, "/nonexistent/x.shard", &e), -1);
    assert_one_line(e.msg, "/nonexistent/x.shard", "cannot open");
}

Test(teacher, writer_checks_counts_and_leaves_nothing) {
    tmp_place t;
    tmp_open(&t, "t.shard");
    const char *path = t.path;
    gpt_model m;
    tiny_forward(&m, 2, 16, 1);
    teacher_shard_info in = teacher_shard_info_make(&TINY, SHARD_PAIRS, 2, 3, 16, 4);
    teacher_stats s;
    teacher_stats_init(&s, SHARD_PAIRS, 2, 16);
    teacher_writer w;
    sattn_err e;
    cr_assert_eq(teacher_writer_open(&w, path, &in, &e), 0, "%s", e.msg);
    cr_assert_eq(teacher_writer_add(&w, &m, 2, &e), 0);
    cr_assert_eq(teacher_writer_add(&w, &m, 2, &e), -1, "a 4th sequence of 3 accepted");
    cr_assert_eq(teacher_writer_finish(&w, &s, &e), -1, "2 of 3 sequences accepted");
    assert_one_line(e.msg, path, "2 sequences");
    cr_assert_eq(cli_dir_entries(t.dir), 0);
    teacher_pair bad[1] = {{0, 2}};
    in = teacher_shard_info_make(&TINY, bad, 1, 3, 16, 4);
    cr_assert_eq(teacher_writer_open(&w, path, &in, &e), -1);
    assert_one_line(e.msg, path, "head 2");
    in = teacher_shard_info_make(&TINY, SHARD_PAIRS, 2, 3, 16, 17);
    cr_assert_eq(teacher_writer_open(&w, path, &in, &e), -1);
    cr_assert_eq(cli_dir_entries(t.dir), 0);
    teacher_stats_free(&s);
    gpt_free(&m);
    tmp_close(&t);
}

/* ------------------------------------------------------------ CLI */

/* A temp dir with a tiny random model checkpoint, 4000 random bytes of data (val: 400 =
 * 25 windows) and an empty directory out/ for the shard. */
typedef struct {
    cli_tdir t;
    char model[256], data[256], outdir[256], out[256];
} collect_fixture;

static void fixture_open(collect_fixture *c) {
    cli_tdir_open(&c->t);
    snprintf(c->model, sizeof c->model, "%s", cli_tpath(&c->t, "m.ckpt"));
    snprintf(c->data, sizeof c->data, "%s", cli_tpath(&c->t, "d.txt"));
    snprintf(c->outdir, sizeof c->outdir, "%s", cli_tpath(&c->t, "out"));
    snprintf(c->out, sizeof c->out, "%s", cli_tpath(&c->t, "out/t.shard"));
    gpt_model m;
    rng_t r;
    rng_seed(&r, 99);
    gpt_create(&m, &TINY);
    gpt_init_random(&m, &r);
    sattn_err e;
    cr_assert_eq(ckpt_save(c->model, CKPT_SATTN, &m, NULL, &e), 0, "%s", e.msg);
    gpt_free(&m);
    uint8_t bytes[4000];
    for (int i = 0; i < 4000; i++) bytes[i] = (uint8_t)rng_below(&r, 256);
    cli_spew(c->data, bytes, sizeof bytes);
    cr_assert_eq(mkdir(c->outdir, 0755), 0);
}

/* Fails if anything but the shard is left in out/, or anything else beside the fixture. */
static void fixture_close(collect_fixture *c) {
    remove(c->out);
    cr_assert_eq(rmdir(c->outdir), 0, "leftover files in %s", c->outdir);
    remove(c->model);
    remove(c->data);
    cr_assert_eq(cli_dir_entries(c->t.dir), 0, "leftover files in %s", c->t.dir);
    cli_tdir_close(&c->t);
}

Test(teacher, cli_collect_then_read, .timeout = 120) {
    collect_fixture c;
    fixture_open(&c);
    const char *run[] = {"collect", "--model", c.model, "--data", c.data, "--out", c.out,
                         "--seqs", "10", "--batch", "4", "--kmax", "8", "--layers", "1", NULL};
    char *out = cli_expect_ok(run);
    cr_assert_not_null(strstr(out, "m@16"), "table: %s", out);
    cr_assert_eq(cli_count_char(out, '\n'), 2 + 2, "summary + header + 2 heads: %s", out);
    free(out);
    teacher_shard sh;
    sattn_err e;
    cr_assert_eq(teacher_shard_open(&sh, c.out, &e), 0, "%s", e.msg);
    cr_assert(sh.info.n_seqs == 10 && sh.info.kmax == 8 && sh.info.n_pairs == 2 &&
              sh.info.pairs[0].layer == 1);
    teacher_shard_close(&sh);
    const char *rd[] = {"collect", "--read", c.out, NULL};
    out = cli_expect_ok(rd);
    cr_assert_not_null(strstr(out, "checksum"));
    cr_assert_not_null(strstr(out, "sequences 10 x T 16"));
    free(out);
    const char *rj[] = {"collect", "--read", c.out, "--json", NULL};
    out = cli_expect_ok(rj);
    cr_assert(out[0] == '{' && cli_count_char(out, '\n') == 1 && strstr(out, "\"mass\": ["), "%s", out);
    free(out);
    fixture_close(&c);
}

Test(teacher, cli_json_and_defaults, .timeout = 120) {
    collect_fixture c;
    fixture_open(&c);
    const char *run[] = {"collect", "--model", c.model, "--data", c.data, "--out", c.out,
                         "--seqs", "3", "--json", "--split", "train", "--threads", "1", NULL};
    char *out = cli_expect_ok(run);
    cr_assert(out[0] == '{' && cli_count_char(out, '\n') == 1, "%s", out);
    cr_assert_not_null(strstr(out, "\"kmax\": 16"), "kmax defaults to min(32, T): %s", out);
    cr_assert_not_null(strstr(out, "\"split\": \"train\""));
    int nstats = 0;
    for (const char *p = out; (p = strstr(p, "\"layer\":")); p++) nstats++;
    cr_assert_eq(nstats, 4);
    free(out);
    fixture_close(&c);
}

Test(teacher, cli_bad_flags_write_nothing, .timeout = 120) {
    collect_fixture c;
    fixture_open(&c);
    char corrupt[256];
    snprintf(corrupt, sizeof corrupt, "%s", cli_tpath(&c.t, "out/bad.shard"));
    const char *M = c.model, *D = c.data, *O = c.out;
    const char *cases[][16] = {
        {"--model", M, "--data", D, "--out", O, "--layers", "2", NULL},
        {"--model", M, "--data", D, "--out", O, "--heads", "0,x", NULL},
        {"--model", M, "--data", D, "--out", O, "--heads", "1,1", NULL},
        {"--model", M, "--data", D, "--out", O, "--kmax", "17", NULL},
        {"--model", M, "--data", D, "--out", O, "--kmax", "0", NULL},
        {"--model", M, "--data", D, "--out", O, "--seqs", "0", NULL},
        {"--model", M, "--data", D, "--out", O, "--seqs", "26", NULL},
        {"--model", M, "--data", D, "--out", O, "--split", "test", NULL},
        {"--model", M, "--data", D, "--out", O, "--batch", "x", NULL},
        {"--model", "/nonexistent.ckpt", "--data", D, "--out", O, NULL},
        {"--model", D, "--data", D, "--out", O, NULL},
        {"--model", M, "--data", "/nonexistent.txt", "--out", O, NULL},
        {"--model", M, "--data", D, NULL},
        {"--data", D, "--out", O, NULL},
        {"--model", M, "--out", O, NULL},
        {"--model", M, "--data", D, "--out", c.outdir, NULL},
        {"--model", M, "--data", D, "--out", "/nonexistent/dir/t.shard", NULL},
        {"--model", M, "--data", D, "--out", O, "--bogus", NULL},
        {"--model", M, "--data", D, "--out", O, "stray", NULL},
        {"--model", M, "--data", D, "--out", O, "--seqs", NULL},
        {"--read", O, "--model", M, NULL},
        {"--read", "/nonexistent.shard", NULL},
        {"--read", corrupt, NULL},
    };
    cli_spew(corrupt, "STCHxxxx", 8);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_args a = {0};
        cli_args_add(&a, "collect", NULL);
        cli_args_addv(&a, cases[i]);
        char *out, *err;
        int rc = cli_run(a.v, &out, &err);
        cli_check_fail_line(rc, out, err, "sattn collect: ", "", 1);
        cr_assert_eq(cli_dir_entries(c.outdir), 1, "%s left a file in %s", cli_cmd, c.outdir);
        free(out), free(err);
    }
    remove(corrupt);
    const char *help[] = {"collect", "--help", NULL};
    char *out = cli_expect_ok(help);
    cr_assert_not_null(strstr(out, "--kmax"));
    free(out);
    fixture_close(&c);
}
