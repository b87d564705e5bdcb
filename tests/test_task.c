/* The retrieval tasks (sattn/task.h, sattn/taskeval.h): generators (exact length, the needle
 * at the requested depth within one sentence, the answer span, determinism, MQAR's disjoint
 * ranges), the scorer on hand-made probabilities, teacher-forced score = greedy generation,
 * the training mix (off = today's batches, on = the right fraction), and the task JSON. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "sattn/eval_json.h"
#include "sattn/task.h"
#include "sattn/taskeval.h"
#include "sattn/train.h"

/* ------------------------------------------------------------- helpers ---- */

/* A byte corpus of English-like text (with sentence ends). */
static void text_dataset(dataset *d, size_t n) {
    char *t = cli_make_text(n);
    dataset_from_bytes(d, (const uint8_t *)t, n);
    free(t);
}

static task_sample gen(const task_params *p, int n, uint64_t seed) {
    task_sample s;
    task_sample_init(&s, n);
    rng_t r = {seed};
    task_generate(p, n, &r, &s);
    return s;
}

/* The key's 5 digits as text. */
static void key_text(const task_sample *s, char buf[6]) {
    for (int i = 0; i < 5; i++) buf[i] = (char)s->tok[s->ans[i]];
    buf[5] = 0;
}

/* Whether s holds text at position at. */
static int has_text_at(const task_sample *s, int at, const char *text) {
    for (size_t i = 0; text[i]; i++)
        if (at + (int)i >= s->n || s->tok[at + (int)i] != (unsigned char)text[i]) return 0;
    return 1;
}

/* Byte i of the filler (the sample without its needle). */
static int filler_at(const task_sample *s, int i) {
    if (i < 0) return 0;
    return i < s->needle_at ? s->tok[i] : s->tok[i + 59];
}

/* The longest sentence of the passkey filler (89 bytes of 5 sentences): the depth bound. */
#define MAX_SENTENCE 24

/* ---------------------------------------------------------- generators ---- */

Test(task, passkey_exact_length_answer_and_depth) {
    const int lens[] = {103, 104, 257, 1000, 4097};
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++)
        for (int di = 0; di <= 10; di++) {
            task_params p = {.kind = TASK_PASSKEY, .depth = di / 10.0};
            task_sample s = gen(&p, lens[li], 100 + (uint64_t)di);
            cr_assert_eq(s.n, lens[li]);
            cr_assert_eq(s.n_ans, 5);
            for (int i = 0; i < 5; i++) cr_assert_eq(s.ans[i], s.n - 5 + i, "answers are the last 5 bytes");
            char key[6], needle[80];
            key_text(&s, key);
            cr_assert_eq(atoi(key), s.key);
            cr_assert(s.key >= 10000 && s.key <= 99999);
            snprintf(needle, sizeof needle, "The pass key is %s. Remember it. %s is the pass key. ", key, key);
            cr_assert(has_text_at(&s, s.needle_at, needle), "needle at %d", s.needle_at);
            cr_assert(has_text_at(&s, s.n - 5 - 39, "\nWhat is the pass key? The pass key is "));
            int filler = s.n - 103;
            double want = p.depth * filler;
            cr_assert(fabs(s.needle_at - want) <= MAX_SENTENCE, "n %d depth %g: needle at %d, want %g", s.n,
                      p.depth, s.needle_at, want);
            /* at a sentence start: the filler before it ends with ". " (or is empty) */
            cr_assert(s.needle_at == 0 || s.needle_at == filler ||
                      (s.tok[s.needle_at - 2] == '.' && s.tok[s.needle_at - 1] == ' '));
            for (int i = 0; i < s.n; i++) cr_assert(s.tok[i] >= 0 && s.tok[i] < 128);
            task_sample_free(&s);
        }
}

Test(task, needle_real_text_at_depth) {
    dataset d;
    text_dataset(&d, 200000);
    for (int di = 0; di <= 8; di++) {
        task_params p = {.kind = TASK_NEEDLE, .depth = di / 8.0, .corpus = d.tokens, .n_corpus = d.n_tokens};
        task_sample s = gen(&p, 2048, 7 + (uint64_t)di);
        cr_assert_eq(s.n, 2048);
        char key[6], needle[80];
        key_text(&s, key);
        snprintf(needle, sizeof needle, "The pass key is %s. Remember it. %s is the pass key. ", key, key);
        cr_assert(has_text_at(&s, s.needle_at, needle));
        int filler = s.n - 103, at = s.needle_at;
        /* within one sentence of the depth: no sentence boundary lies strictly between */
        int lo = at < p.depth * filler ? at : (int)lround(p.depth * filler);
        int hi = at < p.depth * filler ? (int)lround(p.depth * filler) : at;
        int boundaries = 0;
        for (int i = lo + 1; i < hi; i++) {
            int a = filler_at(&s, i - 2), b = filler_at(&s, i - 1);
            boundaries += i >= 2 && (a == '.' || a == '?' || a == '!') && (b == ' ' || b == '\n');
        }
        cr_assert(boundaries == 0, "depth %g: %d sentence starts between the depth and the needle", p.depth,
                  boundaries);
        task_sample_free(&s);
    }
    dataset_free(&d);
}

Test(task, deterministic_and_seeded) {
    dataset d;
    text_dataset(&d, 50000);
    for (int k = 0; k < TASK_KINDS; k++) {
        task_params p = {.kind = (task_kind)k, .depth = 0.3, .pairs = 16, .corpus = d.tokens, .n_corpus = d.n_tokens};
        task_sample a = gen(&p, 600, 42), b = gen(&p, 600, 42), c = gen(&p, 600, 43);
        cr_assert(!memcmp(a.tok, b.tok, 600 * sizeof(int)), "%s: same seed, different bytes", task_name(p.kind));
        cr_assert(memcmp(a.tok, c.tok, 600 * sizeof(int)), "%s: seeds 42 and 43 give the same bytes",
                  task_name(p.kind));
        cr_assert_eq(a.n_ans, b.n_ans);
        task_sample_free(&a), task_sample_free(&b), task_sample_free(&c);
    }
    cr_assert_neq(task_seed(1, 2, 3), task_seed(1, 3, 2));
    cr_assert_neq(task_seed(1, 2, 3), task_seed(2, 2, 3));
    cr_assert_eq(task_seed(5, 6, 7), task_seed(5, 6, 7));
    dataset_free(&d);
}

Test(task, mqar_layout) {
    const int cases[][2] = {{64, 256}, {64, 513}, {1, 4}, {16, 1000}, {33, 200}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int N = cases[c][0], n = cases[c][1];
        task_params p = {.kind = TASK_MQAR, .pairs = N};
        task_sample s = gen(&p, n, 9 + c);
        cr_assert_eq(s.n, n);
        cr_assert_eq(s.n_ans, N);
        int val_of[256], key_seen[256] = {0};
        for (int i = 0; i < N; i++) {
            int k = s.tok[2 * i], v = s.tok[2 * i + 1];
            cr_assert(k >= 0x80 && k <= 0xbf, "key %d outside 0x80..0xbf", k);
            cr_assert(v >= 0xc0 && v <= 0xff, "value %d outside 0xc0..0xff", v);
            cr_assert(!key_seen[k]++, "key %d drawn twice", k);
            val_of[k] = v;
        }
        int values_seen[256] = {0};
        for (int i = 0; i < N; i++) values_seen[s.tok[2 * i + 1]]++;
        for (int v = 0; v < 256; v++) cr_assert(values_seen[v] <= 1, "value %d drawn twice", v);
        int queried[256] = {0}, q = 0;
        for (int i = 2 * N; i < n; i++) {
            int t = s.tok[i];
            if (t == 0) continue;
            cr_assert(key_seen[t], "position %d: %d is neither pad nor a key", i, t);
            cr_assert(i + 1 < n && s.tok[i + 1] == val_of[t], "query %d not followed by its value", t);
            cr_assert_eq(s.ans[q], i + 1, "answer %d at %d, expected %d", q, s.ans[q], i + 1);
            cr_assert(!queried[t]++, "key %d queried twice", t);
            q++, i++;
        }
        cr_assert_eq(q, N, "%d of %d keys queried", q, N);
        task_sample_free(&s);
    }
}

Test(task, check_errors) {
    sattn_err e;
    dataset d;
    text_dataset(&d, 500);
    task_params pk = {.kind = TASK_PASSKEY, .depth = 0.5};
    cr_assert_eq(task_check(&pk, 103, &e), 0);
    cr_assert_eq(task_check(&pk, 102, &e), -1);
    cr_assert(strstr(e.msg, "needle and the cue"), "%s", e.msg);
    pk.depth = 1.01;
    cr_assert_eq(task_check(&pk, 500, &e), -1);
    cr_assert(strstr(e.msg, "depth"), "%s", e.msg);
    pk.depth = NAN;
    cr_assert_eq(task_check(&pk, 500, &e), -1);
    task_params mq = {.kind = TASK_MQAR, .pairs = 65};
    cr_assert_eq(task_check(&mq, 1000, &e), -1);
    cr_assert(strstr(e.msg, "65 pairs"), "%s", e.msg);
    mq.pairs = 0;
    cr_assert_eq(task_check(&mq, 1000, &e), -1);
    mq.pairs = 64;
    cr_assert_eq(task_check(&mq, 255, &e), -1);
    cr_assert(strstr(e.msg, "at least 256"), "%s", e.msg);
    cr_assert_eq(task_check(&mq, 256, &e), 0);
    task_params nd = {.kind = TASK_NEEDLE, .depth = 0.5, .corpus = d.tokens, .n_corpus = d.n_tokens};
    cr_assert_eq(task_check(&nd, 603, &e), 0);
    cr_assert_eq(task_check(&nd, 604, &e), -1);
    cr_assert(strstr(e.msg, "corpus has 500"), "%s", e.msg);
    dataset_free(&d);
}

/* -------------------------------------------------------------- scorer ---- */

Test(task, score_hand_made_probs) {
    task_params p = {.kind = TASK_PASSKEY, .depth = 0.5};
    task_sample s = gen(&p, 120, 3);
    int vp = 260, v = 256; /* padded rows: the pad entries must be ignored */
    float *probs = calloc((size_t)(s.n - 1) * vp, sizeof *probs);
    for (int t = 0; t < s.n - 1; t++) probs[(size_t)t * vp + 'x'] = 0.5f; /* wrong everywhere */
    cr_assert_eq(task_score(&s, probs, vp, v), 0);
    for (int i = 0; i < s.n_ans; i++) probs[(size_t)(s.ans[i] - 1) * vp + s.tok[s.ans[i]]] = 0.9f;
    cr_assert_eq(task_score(&s, probs, vp, v), 5);
    /* a padded entry above the answer does not count (only the first v are the vocabulary) */
    probs[(size_t)(s.ans[2] - 1) * vp + 258] = 5.0f;
    cr_assert_eq(task_score(&s, probs, vp, v), 5);
    /* a tie: the first maximum wins, as in sample_tokens */
    probs[(size_t)(s.ans[0] - 1) * vp + 0] = 0.9f;
    cr_assert_eq(task_score(&s, probs, vp, v), 4);
    /* the row that predicts an answer is the one before it: the row before that is not read */
    probs[(size_t)(s.ans[0] - 1) * vp + 0] = 0.0f;
    probs[(size_t)(s.ans[0] - 2) * vp + 'y'] = 9.0f;
    cr_assert_eq(task_score(&s, probs, vp, v), 5);
    free(probs);
    task_sample_free(&s);
}

/* A small random byte model of context T. */
static void tiny_model(gpt_model *m, int T, uint64_t seed) {
    gpt_config c = {.max_seq = T, .vocab = 256, .padded_vocab = 256, .layers = 2, .heads = 2, .channels = 32};
    gpt_create(m, &c);
    rng_t r = {seed};
    gpt_init_random(m, &r);
}

/* The greedy continuation of s's prefix (before its first answer) for n_ans tokens. */
static void greedy(gpt_model *m, const task_sample *s, int *out) {
    int a0 = s->ans[0], len = a0, *ctx = malloc((size_t)(a0 + s->n_ans) * sizeof *ctx);
    memcpy(ctx, s->tok, (size_t)a0 * sizeof *ctx);
    rng_t r = {1};
    sample_tokens(m, ctx, &len, s->n_ans, 0.0f, &r);
    memcpy(out, ctx + a0, (size_t)s->n_ans * sizeof *out);
    free(ctx);
}

/* Teacher-forced exact match = greedy exact match: on the true keys (a random model misses
 * them, both ways), and on samples whose answer is set to the model's own greedy output
 * (then both must say "right"). */
Test(task, teacher_forced_equals_greedy, .timeout = 60) {
    gpt_model m;
    tiny_model(&m, 160, 11);
    for (int j = 0; j < 4; j++) {
        task_params p = {.kind = TASK_PASSKEY, .depth = j / 3.0};
        task_sample s = gen(&p, 150 + j, 20 + (uint64_t)j);
        int g[5], right;
        greedy(&m, &s, g);
        int same = 1;
        for (int i = 0; i < 5; i++) same &= g[i] == s.tok[s.ans[i]];
        taskeval_score(&m, &s, 1, 1, &right);
        cr_assert_eq(right == 5, same, "sample %d: teacher-forced %d of 5, greedy %s", j, right,
                     same ? "exact" : "not exact");
        for (int i = 0; i < 5; i++) s.tok[s.ans[i]] = g[i];
        taskeval_score(&m, &s, 1, 1, &right);
        cr_assert_eq(right, 5, "sample %d: the greedy continuation as answer scores %d of 5", j, right);
        /* the last answer token changed (no input reads it): exactly that position is wrong */
        s.tok[s.ans[4]] = (g[4] + 1) % 256;
        taskeval_score(&m, &s, 1, 1, &right);
        cr_assert_eq(right, 4);
        task_sample_free(&s);
    }
    gpt_free(&m);
}

Test(task, batched_score_equals_single, .timeout = 60) {
    gpt_model m;
    tiny_model(&m, 200, 5);
    task_sample s[5];
    for (int j = 0; j < 5; j++) {
        task_params p = {.kind = TASK_MQAR, .pairs = 24};
        s[j] = gen(&p, 200, 30 + (uint64_t)j);
        /* answers = the model's own argmax, so the expected score is known: all right */
        gpt_forward(&m, s[j].tok, NULL, 1, 199);
        for (int i = 0; i < s[j].n_ans; i++) {
            const float *row = m.acts.probs + (size_t)(s[j].ans[i] - 1) * 256;
            int best = 0;
            for (int v = 1; v < 256; v++) best = row[v] > row[best] ? v : best;
            s[j].tok[s[j].ans[i]] = best;
        }
    }
    /* changing an answer token changes no input before it: the argmax stays */
    int one[5], batched[5];
    for (int j = 0; j < 5; j++) taskeval_score(&m, &s[j], 1, 1, &one[j]);
    taskeval_score(&m, s, 5, 2, batched);
    for (int j = 0; j < 5; j++) cr_assert_eq(one[j], batched[j], "sample %d: %d alone, %d batched", j, one[j],
                                             batched[j]);
    for (int j = 0; j < 5; j++) task_sample_free(&s[j]);
    gpt_free(&m);
}

Test(task, grid_cells_and_check, .timeout = 60) {
    gpt_model m;
    tiny_model(&m, 256, 2);
    int lengths[] = {128, 256};
    task_grid g = {.kind = TASK_PASSKEY, .lengths = lengths, .n_lengths = 2, .n_depths = 3, .samples = 2,
                   .batch = 4, .seed = 1};
    sattn_err e;
    cr_assert_eq(taskeval_check(&g, 256, &e), 0, "%s", e.msg);
    task_cell c[6];
    taskeval_grid(&m, &g, c);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(c[i].length, lengths[i / 3]);
        cr_assert_float_eq(c[i].depth, (i % 3) / 2.0, 1e-12);
        cr_assert_eq(c[i].samples, 2);
        cr_assert_eq(c[i].answers, 2);
        cr_assert_float_eq(c[i].accuracy, c[i].correct / 2.0, 1e-12);
    }
    cr_assert_eq(taskeval_check(&g, 200, &e), -1);
    cr_assert(strstr(e.msg, "length 256 is above the model's context 200"), "%s", e.msg);
    lengths[0] = 50;
    cr_assert_eq(taskeval_check(&g, 256, &e), -1);
    cr_assert(strstr(e.msg, "length 50"), "%s", e.msg);
    g.kind = TASK_MQAR, g.pairs = 64;
    cr_assert_eq(taskeval_check(&g, 256, &e), -1);
    cr_assert(strstr(e.msg, "64 pairs"), "%s", e.msg);
    cr_assert_eq(taskeval_cells(&g), 2);
    cr_assert_float_eq(taskeval_depth(0, 1), 0.5, 0);
    cr_assert_float_eq(taskeval_depth(3, 4), 1.0, 0);
    gpt_free(&m);
}

/* ----------------------------------------------------------------- mix ---- */

Test(task, mix_off_is_dataset_batch) {
    dataset d;
    text_dataset(&d, 30000);
    int B = 6, T = 128;
    int *i1 = malloc(sizeof(int) * B * T), *t1 = malloc(sizeof(int) * B * T);
    int *i2 = malloc(sizeof(int) * B * T), *t2 = malloc(sizeof(int) * B * T);
    task_mix zero = {.seed = 9};
    for (int pass = 0; pass < 2; pass++) {
        rng_t a = {77}, b = {77};
        for (int step = 0; step < 5; step++) {
            dataset_batch(&d, SPLIT_TRAIN, B, T, &a, i1, t1);
            task_mix_batch(pass ? &zero : NULL, &d, step, B, T, &b, i2, t2);
            cr_assert(!memcmp(i1, i2, sizeof(int) * B * T) && !memcmp(t1, t2, sizeof(int) * B * T));
            cr_assert_eq(a.state, b.state);
        }
    }
    free(i1), free(t1), free(i2), free(t2);
    dataset_free(&d);
}

Test(task, mix_rows_fraction) {
    task_mix m;
    sattn_err e;
    cr_assert_eq(task_mix_parse("passkey:0.1,mqar:0.05,needle:0.3", &m, &e), 0, "%s", e.msg);
    m.seed = 4;
    const int Bs[] = {1, 3, 12, 16};
    for (size_t bi = 0; bi < sizeof Bs / sizeof *Bs; bi++) {
        int B = Bs[bi], steps = 4000;
        long sum[TASK_KINDS] = {0};
        for (int s = 0; s < steps; s++) {
            int rows[TASK_KINDS], n = task_mix_rows(&m, s, B, rows);
            cr_assert(n <= B);
            for (int k = 0; k < TASK_KINDS; k++) {
                double want = m.frac[k] * B;
                cr_assert(rows[k] >= floor(want) && rows[k] <= ceil(want), "B %d task %d: %d rows for %g", B, k,
                          rows[k], want);
                sum[k] += rows[k];
            }
        }
        for (int k = 0; k < TASK_KINDS; k++)
            cr_assert(fabs((double)sum[k] / ((double)steps * B) - m.frac[k]) < 0.02, "B %d task %d: fraction %g, want %g",
                      B, k, (double)sum[k] / ((double)steps * B), m.frac[k]);
    }
    cr_assert_eq(task_mix_parse("passkey:0.7,mqar:0.3", &m, &e), 0); /* 0.7f + 0.3f is not 1 */
    for (int s = 0; s < 200; s++) cr_assert_eq(task_mix_rows(&m, s, 7, (int[TASK_KINDS]){0}), 7);
    cr_assert_eq(task_mix_parse("mqar:1", &m, &e), 0);
    int rows[TASK_KINDS];
    cr_assert_eq(task_mix_rows(&m, 17, 8, rows), 8);
    cr_assert_eq(rows[TASK_MQAR], 8);
}

Test(task, mix_batch_rows) {
    dataset d;
    text_dataset(&d, 30000);
    task_mix m;
    sattn_err e;
    cr_assert_eq(task_mix_parse("mqar:0.5,passkey:0.25", &m, &e), 0);
    m.seed = 3;
    int B = 8, T = 256;
    cr_assert_eq(task_mix_check(&m, &d, T, &e), 0, "%s", e.msg);
    int *in = malloc(sizeof(int) * B * T), *tg = malloc(sizeof(int) * B * T);
    int *ref = malloc(sizeof(int) * B * T), *rt = malloc(sizeof(int) * B * T);
    for (int step = 0; step < 4; step++) {
        rng_t a = {5 + (uint64_t)step}, b = a;
        task_mix_batch(&m, &d, step, B, T, &a, in, tg);
        int rows[TASK_KINDS], nt = task_mix_rows(&m, step, B, rows);
        cr_assert_eq(nt, 6);
        dataset_batch(&d, SPLIT_TRAIN, B - nt, T, &b, ref, rt);
        cr_assert(!memcmp(in, ref, sizeof(int) * (B - nt) * T), "corpus rows differ from dataset_batch");
        cr_assert_eq(a.state, b.state, "the corpus rng drew for task rows");
        for (int r = B - nt; r < B; r++) {
            int high = 0;
            for (int t = 0; t < T; t++) {
                high += in[r * T + t] >= 0x80;
                if (t + 1 < T) cr_assert_eq(tg[r * T + t], in[r * T + t + 1]);
            }
            int is_mqar = r >= B - rows[TASK_MQAR]; /* task rows in task_kind order: passkey, then mqar */
            cr_assert(is_mqar ? high >= 3 : high == 0, "row %d: %d high bytes", r, high); /* >= 1 pair */
        }
    }
    free(in), free(tg), free(ref), free(rt);
    dataset_free(&d);
}

/* --mix-loss answers: the inputs are the same, corpus rows keep every target, a task row
 * keeps only its answers' targets (5 key digits, or one per MQAR query) and ignores the rest. */
Test(task, mix_batch_answers_only) {
    dataset d;
    text_dataset(&d, 30000);
    task_mix m;
    sattn_err e;
    cr_assert_eq(task_mix_parse("mqar:0.5,passkey:0.25", &m, &e), 0);
    m.seed = 3;
    int B = 8, T = 256;
    int *in = malloc(sizeof(int) * B * T), *tg = malloc(sizeof(int) * B * T);
    int *in1 = malloc(sizeof(int) * B * T), *tg1 = malloc(sizeof(int) * B * T);
    for (int step = 0; step < 4; step++) {
        rng_t a = {5 + (uint64_t)step}, b = a;
        m.answers_only = 0;
        task_mix_batch(&m, &d, step, B, T, &a, in, tg);
        m.answers_only = 1;
        task_mix_batch(&m, &d, step, B, T, &b, in1, tg1);
        cr_assert(!memcmp(in, in1, sizeof(int) * B * T), "step %d: the inputs changed", step);
        int rows[TASK_KINDS], nt = task_mix_rows(&m, step, B, rows);
        for (int r = 0; r < B; r++) {
            int kept = 0, is_task = r >= B - nt, is_mqar = r >= B - rows[TASK_MQAR];
            for (int t = 0; t < T; t++) {
                int x = tg1[r * T + t];
                cr_assert(x == TASK_NO_TARGET || x == tg[r * T + t], "row %d t %d: target %d", r, t, x);
                kept += x != TASK_NO_TARGET;
                /* what is kept in a task row is an answer: a digit, or an MQAR value */
                if (is_task && x != TASK_NO_TARGET)
                    cr_assert(is_mqar ? x >= TASK_MQAR_VALUE0 : (x >= '0' && x <= '9'), "row %d: kept %d", r, x);
            }
            if (!is_task) cr_assert_eq(kept, T, "corpus row %d lost targets", r);
            else if (!is_mqar) cr_assert_eq(kept, TASK_KEY_DIGITS, "passkey row %d keeps %d targets", r, kept);
            else cr_assert(kept >= 1 && kept <= task_mix_pairs(T), "mqar row %d keeps %d targets", r, kept);
        }
    }
    free(in), free(tg), free(in1), free(tg1);
    dataset_free(&d);
}

/* --mix-length varied: a passkey row is corpus text, then a sample of random length that
 * ends the row with the cue and the key (so the answers are the row's last 5 targets). */
Test(task, mix_batch_varied_length) {
    dataset d;
    text_dataset(&d, 30000);
    task_mix m;
    sattn_err e;
    cr_assert_eq(task_mix_parse("passkey:1", &m, &e), 0);
    m.seed = 9, m.varied_length = 1, m.answers_only = 1;
    int B = 4, T = 600, starts[64], ns = 0;
    cr_assert_eq(task_mix_check(&m, &d, T, &e), 0, "%s", e.msg);
    int *in = malloc(sizeof(int) * B * T), *tg = malloc(sizeof(int) * B * T);
    const char *cue = "The pass key is ";
    int lc = (int)strlen(cue);
    for (int step = 0; step < 8; step++) {
        rng_t a = {1};
        task_mix_batch(&m, &d, step, B, T, &a, in, tg);
        for (int r = 0; r < B; r++) {
            const int *x = in + r * T, *y = tg + r * T;
            for (int t = 0; t < T; t++)
                cr_assert_eq(y[t] != TASK_NO_TARGET, t >= T - TASK_KEY_DIGITS, "row %d t %d", r, t);
            for (int j = 0; j < TASK_KEY_DIGITS - 1; j++) cr_assert_eq(y[T - TASK_KEY_DIGITS + j], x[T - TASK_KEY_DIGITS + j + 1]);
            for (int j = 0; j < lc; j++) cr_assert_eq(x[T - TASK_KEY_DIGITS + 1 - lc + j], cue[j], "row %d: no cue", r);
            int at = -1; /* the sample's first byte: filler, or the needle at depth 0 */
            for (int t = 0; t + lc < T && at < 0; t++) {
                int f = 1, k = 1;
                for (int j = 0; j < 9; j++) f &= x[t + j] == "The grass"[j];
                for (int j = 0; j < lc; j++) k &= x[t + j] == cue[j];
                if (f || k) at = t;
            }
            cr_assert(at >= 0 && T + 1 - at >= 128, "row %d: a sample of %d bytes", r, T + 1 - at);
            if (ns < 64) starts[ns++] = at;
        }
    }
    int distinct = 0;
    for (int i = 0; i < ns; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++) seen |= starts[j] == starts[i];
        distinct += !seen;
    }
    cr_assert(ns >= 8 && distinct >= ns / 2, "%d samples, %d distinct starts: lengths do not vary", ns, distinct);
    free(in), free(tg);
    dataset_free(&d);
}

Test(task, mix_parse_and_check_errors) {
    task_mix m;
    sattn_err e;
    const struct {
        const char *spec, *needle;
    } bad[] = {{"foo:0.1", "unknown task 'foo'"}, {"passkey", "NAME:FRACTION"}, {"passkey:", "fraction ''"},
               {"passkey:1.5", "fraction '1.5'"}, {"passkey:-0.1", "fraction '-0.1'"}, {"passkey:nan", "fraction"},
               {"passkey:0.1x", "0.1x"}, {"mqar:0.6,passkey:0.5", "sum to 1.1"}, {"mqar:0.1,mqar:0.2", "twice"},
               {"", "NAME:FRACTION"}, {"mqar:0.1,", "NAME:FRACTION"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(task_mix_parse(bad[i].spec, &m, &e), -1, "'%s' parsed", bad[i].spec);
        cr_assert(strstr(e.msg, bad[i].needle), "'%s': %s", bad[i].spec, e.msg);
    }
    cr_assert_eq(task_mix_parse("passkey:0.1,mqar:0.05", &m, &e), 0);
    char buf[64];
    task_mix_format(&m, buf, sizeof buf);
    cr_assert_str_eq(buf, "passkey:0.1,mqar:0.05");
    dataset d;
    text_dataset(&d, 3000);
    cr_assert_eq(task_mix_check(&m, &d, 101, &e), -1);
    cr_assert(strstr(e.msg, "--seq 101 is too short"), "%s", e.msg);
    cr_assert_eq(task_mix_check(&m, &d, 102, &e), 0, "%s", e.msg);
    cr_assert_eq(task_mix_parse("needle:0.1", &m, &e), 0);
    cr_assert_eq(task_mix_check(&m, &d, 2900, &e), -1);
    cr_assert(strstr(e.msg, "corpus has"), "%s", e.msg);
    d.is_bytes = 0, d.vocab = 50257;
    cr_assert_eq(task_mix_check(&m, &d, 200, &e), -1);
    cr_assert(strstr(e.msg, "byte-level"), "%s", e.msg);
    dataset_free(&d);
}

/* ---------------------------------------------------------------- JSON ---- */

Test(task, json_round_trip) {
    tmp_place t;
    tmp_open(&t, "passkey_run.json");
    task_cell c[3] = {{128, 0.0, 5, 5, 3, 0.6}, {128, 1.0, 5, 5, 5, 1.0}, {256, 0.5, 4, 4, 0, 0.0}};
    task_json_info info = {"passkey", "m \"q\".ckpt", NULL, "flash", 0, 7};
    sbuf b = {0};
    eval_json_task_format(&b, &info, c, 3);
    cli_assert_json_line(b.s);
    cr_assert(strstr(b.s, "\"heads\": null") && strstr(b.s, "\"pairs\": null") && strstr(b.s, "m \\\"q\\\".ckpt"));
    cli_spew(t.path, b.s, b.n);
    task_file f;
    sattn_err e;
    cr_assert_eq(eval_json_task_read(t.path, &f, &e), 0, "%s", e.msg);
    cr_assert_str_eq(f.name, "passkey_run");
    cr_assert_str_eq(f.task, "passkey");
    cr_assert_eq(f.n_cells, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(f.cells[i].length, c[i].length);
        cr_assert_float_eq(f.cells[i].depth, c[i].depth, 1e-9);
        cr_assert_eq(f.cells[i].samples, c[i].samples);
        cr_assert_eq(f.cells[i].answers, c[i].answers);
        cr_assert_eq(f.cells[i].correct, c[i].correct);
        cr_assert_float_eq(f.cells[i].accuracy, c[i].accuracy, 1e-9);
    }
    eval_json_task_free(&f);
    sb_free(&b);
    /* mqar: depth null */
    task_cell q = {512, NAN, 2, 128, 100, 100.0 / 128};
    task_json_info qi = {"mqar", "m", "h.heads", "naive", 64, 1};
    eval_json_task_format(&b, &qi, &q, 1);
    cr_assert(strstr(b.s, "\"depth\": null") && strstr(b.s, "\"pairs\": 64"), "%s", b.s);
    cli_spew(t.path, b.s, b.n);
    cr_assert_eq(eval_json_task_read(t.path, &f, &e), 0, "%s", e.msg);
    cr_assert(isnan(f.cells[0].depth));
    eval_json_task_free(&f);
    sb_free(&b);
    tmp_close(&t);
}

Test(task, json_hostile) {
    tmp_place t;
    tmp_open(&t, "x.json");
    const struct {
        const char *text, *needle;
    } bad[] = {
        {"{\"cells\": [{\"length\": 1, \"depth\": 0, \"samples\": 1, \"answers\": 1, \"correct\": 1, \"accuracy\": 1}]}",
         "missing field 'task'"},
        {"{\"task\": \"passkey\"}", "missing field 'cells'"},
        {"{\"task\": \"passkey\", \"cells\": []}", "missing field 'cells'"},
        {"{\"task\": \"bogus\", \"cells\": []}", "expected passkey, needle or mqar"},
        {"{\"task\": \"passkey\", \"cells\": [{\"length\": 8, \"depth\": 0.5, \"samples\": 1, \"answers\": 1, "
         "\"correct\": 1, \"accuracy\": 1.5}]}", "1.5 is out of range"},
        {"{\"task\": \"passkey\", \"cells\": [{\"length\": 8, \"depth\": 0.5, \"samples\": 1, \"answers\": 1, "
         "\"correct\": 2, \"accuracy\": 1}]}", "correct is not 0 .. answers"},
        {"{\"task\": \"passkey\", \"cells\": [{\"length\": 8, \"depth\": NaN, \"samples\": 1, \"answers\": 1, "
         "\"correct\": 1, \"accuracy\": 1}]}", "field 'depth': NaN is not a finite number"},
        {"{\"task\": \"passkey\", \"cells\": [{\"length\": 8, \"samples\": 1, \"answers\": 1, "
         "\"correct\": 1, \"accuracy\": 1}]}", "depth must be a number"},
        {"{\"task\": \"mqar\", \"cells\": [{\"length\": 8, \"depth\": 0.5, \"samples\": 1, \"answers\": 1, "
         "\"correct\": 1, \"accuracy\": 1}]}", "depth must be null"},
        {"{\"task\": \"passkey\", \"cells\": [{\"length\": 8, \"depth\": 0.5, \"samples\": 1, \"answers\": 1, "
         "\"correct\": 1, \"accuracy\": 1}, {\"length\": 8, \"depth\": 0.5, \"samples\": 1, \"answers\": 1, "
         "\"correct\": 1, \"accuracy\": 1}]}", "same length and depth"},
        {"{\"task\": \"passkey\", \"cells\": [{\"length\": 2.5, \"depth\": 0.5, \"samples\": 1, \"answers\": 1, "
         "\"correct\": 1, \"accuracy\": 1}]}", "expected an integer"},
        {"{\"task\": \"passkey\", \"cells\": [{\"depth\": 0.5}]}", "a cell without length"},
        {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", "nested deeper than 32"},
        {"[1]", "an array, expected a JSON object (`sattn task --json` output)"},
        {"{\"task\": \"passkey\", \"x\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
         "nested deeper than 32"},
        {"{\"task\": \"passkey\"} trailing", "not JSON at line 1, byte 20"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cli_spew_str(t.path, bad[i].text);
        task_file f;
        sattn_err e;
        cr_assert_eq(eval_json_task_read(t.path, &f, &e), -1, "case %zu read", i);
        cr_assert(strstr(e.msg, bad[i].needle), "case %zu: %s", i, e.msg);
        cr_assert_eq(strchr(e.msg, '\n'), NULL);
    }
    tmp_close(&t);
}
