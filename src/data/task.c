/* task: passkey, needle and MQAR samples, their teacher-forced score, and the training
 * mix (sattn/task.h, docs/tasks.md). */
#include "sattn/task.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const NAMES[TASK_KINDS] = {"passkey", "needle", "mqar"};

/* The classic passkey filler (Mohtashami and Jaggi 2023), repeated as needed. */
static const char FILLER[] =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ";
static const char CUE[] = "\nWhat is the pass key? The pass key is ";
#define NEEDLE_FMT "The pass key is %05d. Remember it. %05d is the pass key. "
#define NEEDLE_LEN 59 /* strlen of NEEDLE_FMT with two 5-digit keys */
#define CUE_LEN ((int)sizeof CUE - 1)
#define FILLER_LEN ((int)sizeof FILLER - 1)
#define BOUNDARY_SEARCH 512 /* needle: how far from the depth a sentence boundary is looked for */

const char *task_name(task_kind k) { return (unsigned)k < TASK_KINDS ? NAMES[k] : "?"; }

int task_kind_parse(const char *s, task_kind *k) {
    for (int i = 0; i < TASK_KINDS; i++)
        if (!strcmp(s, NAMES[i])) return *k = (task_kind)i, 0;
    return -1;
}

void task_sample_init(task_sample *s, int cap) {
    memset(s, 0, sizeof *s);
    s->cap = cap;
    s->tok = xmalloc((size_t)(cap > 0 ? cap : 1) * sizeof *s->tok);
    s->ans = xmalloc((size_t)(cap > 0 ? cap : 1) * sizeof *s->ans);
}

void task_sample_free(task_sample *s) {
    free(s->tok);
    free(s->ans);
    memset(s, 0, sizeof *s);
}

/* Bytes of a passkey or needle sample besides its filler. */
static int fixed_len(void) { return NEEDLE_LEN + CUE_LEN + TASK_KEY_DIGITS; }

int task_min_length(const task_params *p) {
    return p->kind == TASK_MQAR ? 4 * p->pairs : fixed_len();
}

int task_check(const task_params *p, int n, sattn_err *e) {
    if ((unsigned)p->kind >= TASK_KINDS) return err_set(e, "unknown task %d", (int)p->kind);
    if (p->kind == TASK_MQAR) {
        if (p->pairs < 1 || p->pairs > TASK_MQAR_MAX_PAIRS)
            return err_set(e, "mqar: %d pairs, expected 1 to %d (one byte per key, keys and "
                              "values from disjoint ranges of 64)", p->pairs, TASK_MQAR_MAX_PAIRS);
    } else if (!(p->depth >= 0.0 && p->depth <= 1.0)) {
        return err_set(e, "%s: depth %g, expected 0 to 1", task_name(p->kind), p->depth);
    }
    int min = task_min_length(p);
    if (n < min) {
        if (p->kind == TASK_MQAR)
            return err_set(e, "mqar: %d pairs need at least %d tokens (pairs and queries, 2 each), "
                              "the sample has %d", p->pairs, min, n);
        return err_set(e, "%s: a sample of %d tokens cannot hold the needle and the cue (%d tokens)",
                       task_name(p->kind), n, min);
    }
    if (p->kind == TASK_NEEDLE && (!p->corpus || p->n_corpus < (size_t)(n - fixed_len())))
        return err_set(e, "needle: the corpus has %zu tokens, a sample of %d needs %d of filler",
                       p->corpus ? p->n_corpus : 0, n, n - fixed_len());
    return 0;
}

uint64_t task_seed(uint64_t seed, uint64_t a, uint64_t b) {
    rng_t r = {seed};
    r.state = rng_u64(&r) ^ a;
    r.state = rng_u64(&r) ^ b;
    return rng_u64(&r);
}

/* Whether a sentence starts at i of fill[0..f): the ends, or after ". ", "? ", "! "
 * (or the same before a newline). */
static int is_boundary(const int *fill, int f, int i) {
    if (i <= 0 || i >= f) return 1;
    if (i < 2) return 0;
    int a = fill[i - 2], b = fill[i - 1];
    return (a == '.' || a == '?' || a == '!') && (b == ' ' || b == '\n');
}

/* The sentence start nearest to depth * f (the earlier one on a tie); the position itself
 * when none lies within BOUNDARY_SEARCH. */
static int needle_position(const int *fill, int f, double depth) {
    int t = (int)lround(depth * f);
    for (int d = 0; d <= BOUNDARY_SEARCH; d++) {
        if (t - d >= 0 && is_boundary(fill, f, t - d)) return t - d;
        if (t + d <= f && is_boundary(fill, f, t + d)) return t + d;
    }
    return t;
}

static void put_text(task_sample *s, const char *text, int len) {
    for (int i = 0; i < len; i++) s->tok[s->n++] = (unsigned char)text[i];
}

/* passkey and needle: filler with the needle at the chosen depth, the cue, the key. The
 * filler is built in the answer array first (it is free until the answers are marked). */
static void gen_passkey(const task_params *p, int n, rng_t *rng, task_sample *s) {
    int f = n - fixed_len(), *fill = s->ans;
    if (p->kind == TASK_PASSKEY) {
        for (int i = 0; i < f; i++) fill[i] = (unsigned char)FILLER[i % FILLER_LEN];
    } else {
        size_t span = p->n_corpus - (size_t)f + 1, o = span <= UINT32_MAX
                                                         ? rng_below(rng, (uint32_t)span)
                                                         : (size_t)(rng_u64(rng) % span);
        for (int i = 0; i < f; i++) fill[i] = p->corpus[o + (size_t)i];
    }
    s->key = 10000 + (int)rng_below(rng, 90000);
    char needle[96], key[16]; /* room for any int: the compiler cannot see the key's range */
    snprintf(needle, sizeof needle, NEEDLE_FMT, s->key, s->key);
    snprintf(key, sizeof key, "%05d", s->key);
    int at = needle_position(fill, f, p->depth);
    s->n = 0;
    for (int i = 0; i < at; i++) s->tok[s->n++] = fill[i];
    s->needle_at = s->n;
    put_text(s, needle, NEEDLE_LEN);
    for (int i = at; i < f; i++) s->tok[s->n++] = fill[i];
    put_text(s, CUE, CUE_LEN);
    s->n_ans = 0;
    for (int i = 0; i < TASK_KEY_DIGITS; i++) s->ans[s->n_ans++] = s->n, s->tok[s->n++] = key[i];
}

/* k distinct values of base .. base+range-1 (range <= 64) into out, in random order (a
 * partial shuffle). */
static void draw_distinct(rng_t *rng, int base, int range, int k, int *out) {
    int pool[64];
    for (int i = 0; i < range; i++) pool[i] = base + i;
    for (int i = 0; i < k; i++) {
        int j = i + (int)rng_below(rng, (uint32_t)(range - i)), t = pool[i];
        pool[i] = pool[j], pool[j] = t;
        out[i] = pool[i];
    }
}

/* mqar: the pairs, then the queries spread over the rest: the rest is a random order of
 * N query items (key, value) and n - 4N pad bytes, chosen by selection sampling. */
static void gen_mqar(const task_params *p, int n, rng_t *rng, task_sample *s) {
    int N = p->pairs, keys[64], vals[64], order[64];
    draw_distinct(rng, TASK_MQAR_KEY0, 64, N, keys);
    draw_distinct(rng, TASK_MQAR_VALUE0, 64, N, vals);
    draw_distinct(rng, 0, N, N, order); /* the order of the queries */
    s->n = 0, s->n_ans = 0, s->needle_at = -1, s->key = 0;
    for (int i = 0; i < N; i++) s->tok[s->n++] = keys[i], s->tok[s->n++] = vals[i];
    int items = n - 3 * N, q = 0; /* (n - 2N) positions: N items of 2, n - 4N of 1 */
    for (int j = 0; j < items; j++) {
        if ((int)rng_below(rng, (uint32_t)(items - j)) < N - q) {
            int k = order[q++];
            s->tok[s->n++] = keys[k];
            s->ans[s->n_ans++] = s->n;
            s->tok[s->n++] = vals[k];
        } else {
            s->tok[s->n++] = TASK_MQAR_PAD;
        }
    }
}

void task_generate(const task_params *p, int n, rng_t *rng, task_sample *s) {
    sattn_err e;
    if (n > s->cap || task_check(p, n, &e))
        die_at(__FILE__, __LINE__, "task_generate: n %d, cap %d: %s", n, s->cap, n > s->cap ? "" : e.msg);
    if (p->kind == TASK_MQAR) gen_mqar(p, n, rng, s);
    else gen_passkey(p, n, rng, s);
    if (s->n != n) die_at(__FILE__, __LINE__, "task_generate: %d bytes, expected %d", s->n, n);
}

int task_score(const task_sample *s, const float *probs, int vp, int v) {
    int right = 0;
    for (int i = 0; i < s->n_ans; i++) {
        const float *row = probs + (size_t)(s->ans[i] - 1) * (size_t)vp;
        int best = 0;
        for (int j = 1; j < v; j++) best = row[j] > row[best] ? j : best;
        right += best == s->tok[s->ans[i]];
    }
    return right;
}

/* ------------------------------------------------------------------ the mix ---- */

/* One "NAME:FRACTION" of a mix spec (len bytes at s) into m. */
static int mix_part(const char *s, size_t len, task_mix *m, sattn_err *e) {
    char part[64];
    if (len == 0 || len >= sizeof part)
        return err_set(e, "'%.*s': expected NAME:FRACTION (passkey, needle or mqar, then 0 to 1)",
                       (int)(len < 40 ? len : 40), s);
    memcpy(part, s, len);
    part[len] = 0;
    char *colon = strchr(part, ':'), *end;
    if (!colon) return err_set(e, "'%s': expected NAME:FRACTION, e.g. passkey:0.1", part);
    *colon = 0;
    task_kind k;
    if (task_kind_parse(part, &k))
        return err_set(e, "unknown task '%s', expected passkey, needle or mqar", part);
    double f = strtod(colon + 1, &end);
    if (end == colon + 1 || *end || !isfinite(f) || f < 0.0 || f > 1.0)
        return err_set(e, "%s: fraction '%s', expected a number from 0 to 1", part, colon + 1);
    if (m->frac[k] > 0.0f) return err_set(e, "%s is given twice", part);
    m->frac[k] = (float)f;
    return 0;
}

int task_mix_parse(const char *s, task_mix *m, sattn_err *e) {
    memset(m, 0, sizeof *m);
    for (const char *p = s;;) {
        size_t len = strcspn(p, ",");
        if (mix_part(p, len, m, e)) return -1;
        if (!p[len]) break;
        p += len + 1;
    }
    double sum = 0.0;
    for (int i = 0; i < TASK_KINDS; i++) sum += m->frac[i];
    if (sum > 1.0 + 1e-6) return err_set(e, "the fractions sum to %g, expected at most 1", sum);
    return 0;
}

int task_mix_any(const task_mix *m) {
    for (int i = 0; m && i < TASK_KINDS; i++)
        if (m->frac[i] > 0.0f) return 1;
    return 0;
}

void task_mix_format(const task_mix *m, char *buf, size_t n) {
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; m && i < TASK_KINDS && o < n; i++)
        if (m->frac[i] > 0.0f)
            o += (size_t)snprintf(buf + o, n - o, "%s%s:%g", o ? "," : "", NAMES[i], m->frac[i]);
    if (!buf[0]) snprintf(buf, n, "none");
}

int task_mix_pairs(int T) {
    int p = (T + 1) / 4;
    return p < TASK_MQAR_MAX_PAIRS ? p : TASK_MQAR_MAX_PAIRS;
}

/* The parameters of task k for a mixed sample of T+1 bytes (depth drawn later). */
static task_params mix_params(task_kind k, const dataset *d, int T) {
    task_params p = {.kind = k, .pairs = task_mix_pairs(T)};
    p.corpus = dataset_split_tokens(d, SPLIT_TRAIN, &p.n_corpus);
    return p;
}

int task_mix_check(const task_mix *m, const dataset *d, int T, sattn_err *e) {
    if (!task_mix_any(m)) return 0;
    if (!d->is_bytes)
        return err_set(e, "the task samples are bytes: it needs a byte-level corpus (vocab 256), "
                          "this one is llm.c tokens (vocab %d)", d->vocab);
    for (int k = 0; k < TASK_KINDS; k++) {
        task_params p = mix_params((task_kind)k, d, T);
        char why[SATTN_ERR_LEN];
        if (m->frac[k] > 0.0f && k != TASK_MQAR && m->varied_length && p.n_corpus < (size_t)T + 1)
            return err_set(e, "--mix-length varied: the training split has %zu tokens, a row of corpus "
                              "text needs %d", p.n_corpus, T + 1);
        if (m->frac[k] > 0.0f && task_check(&p, T + 1, e)) {
            snprintf(why, sizeof why, "%s", e->msg);
            return err_set(e, "--seq %d is too short for the mix: %s", T, why);
        }
    }
    return 0;
}

int task_mix_rows(const task_mix *m, int step, int B, int rows[TASK_KINDS]) {
    memset(rows, 0, sizeof(int) * TASK_KINDS);
    if (!task_mix_any(m)) return 0;
    rng_t r = {task_seed(m->seed, (uint64_t)step, UINT64_MAX)};
    double u = (double)rng_u64(&r) / 18446744073709551616.0, cum[TASK_KINDS], c = 0.0;
    int last = 0;
    for (int i = 0; i < TASK_KINDS; i++) cum[i] = c += m->frac[i], last = m->frac[i] > 0.0f ? i : last;
    if (c >= 1.0 - 1e-6) cum[last] = 2.0; /* fractions that sum to 1 in float: every row a task */
    int total = 0;
    for (int k = 0; k < B; k++) {
        double x = (k + u) / B;
        for (int i = 0; i < TASK_KINDS; i++)
            if (x < cum[i]) {
                rows[i]++, total++;
                break;
            }
    }
    return total;
}

/* The length of a varied passkey or needle sample in a row of T+1 bytes: uniform in
 * [VARIED_MIN, T+1] (the row's first bytes are then corpus text). */
#define VARIED_MIN 128
static int varied_length(const task_params *p, int T, rng_t *g) {
    int lo = task_min_length(p) > VARIED_MIN ? task_min_length(p) : VARIED_MIN;
    if (lo > T + 1) lo = T + 1;
    return lo + (int)rng_below(g, (uint32_t)(T + 2 - lo));
}

/* Row r of the batch: pre bytes of corpus text at a random offset of the training split, then
 * the n-byte sample s; targets shifted by one, only the answers with answers_only. */
static void put_row(const task_mix *m, const task_params *p, const task_sample *s, int pre, rng_t *g,
                    int T, int *in, int *tg) {
    size_t o = pre ? (size_t)(rng_u64(g) % (p->n_corpus - (size_t)pre + 1)) : 0;
    for (int t = 0; t <= T; t++) {
        int x = t < pre ? p->corpus[o + (size_t)t] : s->tok[t - pre];
        if (t < T) in[t] = x;
        if (t > 0) tg[t - 1] = m->answers_only ? TASK_NO_TARGET : x;
    }
    for (int j = 0; m->answers_only && j < s->n_ans; j++) tg[pre + s->ans[j] - 1] = s->tok[s->ans[j]];
}

void task_mix_batch(const task_mix *m, const dataset *d, int step, int B, int T, rng_t *rng,
                    int *inputs, int *targets) {
    task_mix_batch_rows(m, d, step, B, T, 0, B, rng, inputs, targets);
}

void task_mix_batch_rows(const task_mix *m, const dataset *d, int step, int B, int T, int row0, int nrows,
                         rng_t *rng, int *inputs, int *targets) {
    int rows[TASK_KINDS], nt = task_mix_rows(m, step, B, rows), r = B - nt, end = row0 + nrows;
    int c0 = row0 < r ? row0 : r, c1 = end < r ? end : r;
    dataset_batch_rows(d, SPLIT_TRAIN, r, T, c0, c1 - c0, rng, inputs, targets);
    if (!nt) return;
    task_sample s;
    task_sample_init(&s, T + 1);
    for (int k = 0; k < TASK_KINDS; k++)
        for (int i = 0; i < rows[k]; i++, r++) {
            if (r < row0 || r >= end) continue; /* another rank's row: drawn from (seed, step, row) */
            rng_t g = {task_seed(m->seed, (uint64_t)step, (uint64_t)r)};
            task_params p = mix_params((task_kind)k, d, T);
            p.depth = rng_uniform(&g);
            p.pairs = 1 + (int)rng_below(&g, (uint32_t)p.pairs);
            int n = m->varied_length && k != TASK_MQAR ? varied_length(&p, T, &g) : T + 1;
            task_generate(&p, n, &g, &s);
            size_t o = (size_t)(r - row0) * T;
            put_row(m, &p, &s, T + 1 - n, &g, T, inputs + o, targets + o);
        }
    task_sample_free(&s);
}
