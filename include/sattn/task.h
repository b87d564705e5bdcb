/* task: long-context retrieval tasks for byte-level models (vocabulary 256): generators,
 * the teacher-forced scorer on given probabilities, and the training mix (docs/tasks.md).
 *
 * A sample is n bytes (tokens 0..255) with its answer tokens marked. The model reads
 * the first n-1 and predicts each next one: a sample of n = T+1 bytes fits a model of
 * context T exactly, like a training window of T+1 tokens. The tasks:
 *
 *   passkey  filler (the classic "The grass is green. The sky is blue. The sun is yellow.
 *            Here we go. There and back again. " repeated) with the needle
 *            "The pass key is 48213. Remember it. 48213 is the pass key. " inserted at the
 *            sentence start nearest to depth d of the filler, then the cue
 *            "\nWhat is the pass key? The pass key is " and the 5 answer digits, which end
 *            the sample. The key is uniform in 10000..99999.
 *   needle   the same with real text as filler: a uniformly random window of a corpus, the
 *            needle inserted at the sentence boundary (after ". ", "? ", "! ", ".\n", ...)
 *            nearest to depth d (at d itself when the window has none within 512 bytes).
 *   mqar     multi-query associative recall (Zoology, Arora et al. 2023), one byte per key
 *            and per value: keys are drawn without replacement from 0x80..0xBF, values
 *            from 0xC0..0xFF (disjoint ranges of 64, so at most 64 pairs; neither occurs
 *            in ASCII text). The sample is k1 v1 k2 v2 ... kN vN, then the N keys again in
 *            a random order, each followed by its value, spread over the rest of the
 *            sample at random positions with the pad byte 0x00 between them. The answers
 *            are the N queried values: the model must predict v after seeing k again.
 *            Needs 4N <= n.
 *
 * Everything is deterministic from the seed given (splitmix64, rng.h). */
#ifndef SATTN_TASK_H
#define SATTN_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "sattn/core.h"
#include "sattn/data.h"
#include "sattn/rng.h"

typedef enum { TASK_PASSKEY = 0, TASK_NEEDLE = 1, TASK_MQAR = 2 } task_kind;
#define TASK_KINDS 3

#define TASK_KEY_DIGITS 5
#define TASK_NO_TARGET (-1) /* a target without loss: model.h's GPT_IGNORE (train.c checks) */
#define TASK_MQAR_KEY0 0x80   /* keys: 0x80 .. 0xBF */
#define TASK_MQAR_VALUE0 0xC0 /* values: 0xC0 .. 0xFF */
#define TASK_MQAR_MAX_PAIRS 64
#define TASK_MQAR_PAD 0x00

/* "passkey", "needle", "mqar". */
const char *task_name(task_kind k);
/* The kind named s; -1 if none. */
int task_kind_parse(const char *s, task_kind *k);

typedef struct {
    task_kind kind;
    double depth;           /* passkey, needle: where the needle goes, 0 (start) .. 1 (end) */
    int pairs;              /* mqar: key-value pairs, 1 .. 64 */
    const uint16_t *corpus; /* needle: the filler's source (bytes < 256), n_corpus tokens */
    size_t n_corpus;
} task_params;

/* One sample: tok[0..n) and the positions of its answer tokens (ascending, each >= 1). */
typedef struct {
    int n, cap;
    int *tok;
    int n_ans;
    int *ans;
    int needle_at; /* passkey, needle: the needle sentence's first byte; mqar: -1 */
    int key;       /* passkey, needle: the key (10000..99999); mqar: 0 */
} task_sample;

/* Allocates a sample for up to cap bytes. */
void task_sample_init(task_sample *s, int cap);
void task_sample_free(task_sample *s);

/* The fewest bytes a sample of p can have: needle + cue + digits for passkey and needle
 * (no filler), 4 * pairs for mqar. */
int task_min_length(const task_params *p);
/* Whether a sample of n bytes can be generated from p: depth in [0, 1], pairs in 1..64,
 * n >= task_min_length, a needle corpus that holds the filler and only bytes. One-line
 * error naming what is wrong. */
int task_check(const task_params *p, int n, sattn_err *e);
/* Writes one sample of exactly n bytes into s (n <= s->cap; p and n must pass
 * task_check, else it dies: a caller's bug). Draws from rng only. */
void task_generate(const task_params *p, int n, rng_t *rng, task_sample *s);

/* A seed for sample (a, b): distinct, well-mixed streams for (grid cell, sample) or
 * (training step, row) from one user seed. */
uint64_t task_seed(uint64_t seed, uint64_t a, uint64_t b);

/* The teacher-forced score: how many of s's answer tokens the model gets right, where
 * probs (or logits: only the argmax is used) holds one row of stride vp per input
 * position, row t predicting tok[t+1], from one forward over tok[0..n-1). The argmax
 * over the first v entries (the first maximum on ties, as sample_tokens takes it) must
 * equal the answer. Given the correct prefix, the greedy continuation equals the answer
 * exactly iff every answer position is right, so for passkey and needle "all right" is
 * the exact match of greedy decoding, at the cost of one forward. */
int task_score(const task_sample *s, const float *probs, int vp, int v);

/* ---- the training mix (`sattn train --mix passkey:0.1,mqar:0.05`) ---- */

typedef struct {
    float frac[TASK_KINDS]; /* share of each batch's sequences, by task_kind; 0 = not mixed */
    uint64_t seed;          /* the run's seed: samples are drawn from (seed, step, row) */
    int answers_only;       /* task rows take loss on their answers only (GPT_IGNORE elsewhere) */
    int varied_length;      /* passkey, needle: a sample of random length after corpus text */
} task_mix;

/* Parses "NAME:FRACTION[,NAME:FRACTION...]" (each task at most once, fractions in [0, 1],
 * their sum <= 1) into m (seed left 0). One-line error naming the part that is wrong. */
int task_mix_parse(const char *s, task_mix *m, sattn_err *e);
/* Whether any fraction is > 0. */
int task_mix_any(const task_mix *m);
/* "passkey:0.1,mqar:0.05" (fractions with %g), or "none". */
void task_mix_format(const task_mix *m, char *buf, size_t n);
/* Whether samples of T+1 bytes can be mixed into training on d's training split (T long
 * enough for every task in the mix, a byte corpus, for needle a split that holds the
 * filler). One-line error. */
int task_mix_check(const task_mix *m, const dataset *d, int T, sattn_err *e);
/* The most MQAR pairs of a mixed sample at context T: min(64, (T+1) / 4). Each mixed
 * sample draws its pairs uniformly from 1 .. that: easy samples (few pairs) among hard
 * ones, as Zoology trains on several pair counts; a fixed 64 pairs stayed on the loss
 * plateau of a model that has not found the lookup (docs/tasks.md). */
int task_mix_pairs(int T);

/* Rows of the batch at step (0-based) that hold samples of each task: systematic
 * sampling with one uniform draw from (seed, step) over the cumulative fractions, so task
 * i gets floor(f_i B) or ceil(f_i B) rows, f_i B on average, and the counts never sum
 * above B. rows[i] per task; returns their sum. */
int task_mix_rows(const task_mix *m, int step, int B, int rows[TASK_KINDS]);

/* A training batch (B rows of T inputs and targets) at step: the first B - (task rows)
 * rows are corpus windows drawn exactly as dataset_batch draws them with rng (so with no
 * task rows this IS dataset_batch), the rest are task samples of T+1 bytes drawn from
 * (m->seed, step, row), depths uniform in [0, 1], MQAR pairs uniform in 1 .. task_mix_pairs(T),
 * needle filler from the training split.
 * m NULL or all zero: dataset_batch. */
void task_mix_batch(const task_mix *m, const dataset *d, int step, int B, int T, rng_t *rng,
                    int *inputs, int *targets);
/* Rows row0 .. row0+nrows-1 of that batch (a rank's slice, dataset_batch_rows), with rng
 * left as the whole batch leaves it. */
void task_mix_batch_rows(const task_mix *m, const dataset *d, int step, int B, int T, int row0, int nrows,
                         rng_t *rng, int *inputs, int *targets);

#endif
