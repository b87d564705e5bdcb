/* taskeval: a model scored on the retrieval tasks of task.h, over a grid of lengths and
 * depths (`sattn task`, docs/tasks.md).
 *
 * Each sample is scored teacher-forced: ONE forward over its first T tokens, then the
 * argmax at every answer position (task_score). Given the correct prefix, greedy
 * decoding reproduces the answer exactly iff every answer position's argmax is right,
 * so this is the exact-match score of greedy generation (tests/test_task.c checks the
 * two agree) at the cost of one forward instead of one per answer token. Samples of
 * one length (every depth and sample of that length) are batched. */
#ifndef SATTN_TASKEVAL_H
#define SATTN_TASKEVAL_H

#include <stdint.h>

#include "sattn/model.h"
#include "sattn/task.h"

/* One cell of the grid. */
typedef struct {
    int length;      /* T: tokens the model reads; samples are T+1 bytes */
    double depth;    /* passkey, needle: 0..1; mqar: NAN (no depth) */
    int samples;
    long answers;    /* passkey, needle: samples; mqar: samples * pairs (values asked for) */
    long correct;    /* passkey, needle: samples with every key digit right; mqar: values right */
    double accuracy; /* correct / answers */
} task_cell;

typedef struct {
    task_kind kind;
    int pairs;              /* mqar */
    const uint16_t *corpus; /* needle: the filler's source */
    size_t n_corpus;
    const int *lengths;     /* n_lengths values of T */
    int n_lengths;
    int n_depths;           /* passkey, needle: depths i / (n-1), i = 0..n-1 (n = 1: 0.5); mqar: 1 */
    int samples;            /* per cell */
    int batch;              /* samples per forward */
    uint64_t seed;
} task_grid;

/* Depth i of n: i / (n - 1), or 0.5 when n == 1. */
double taskeval_depth(int i, int n);
/* Whether g can run on a model of context max_seq: lengths 1..max_seq and long enough for
 * the task (task_check at each length and depth), n_depths, samples and batch >= 1.
 * One-line error naming the length or value. */
int taskeval_check(const task_grid *g, int max_seq, sattn_err *e);
/* Scores samples s[0..n) (all of the same length T+1, T <= the model's context) in
 * batches of B: right[i] = the answer tokens sample i gets right. */
void taskeval_score(gpt_model *m, const task_sample *s, int n, int B, int *right);
/* Runs the grid: cells[l * n_depths + d] (n_depths 1 for mqar). Sample j of a cell is
 * drawn from task_seed(seed, T, d << 32 | j): the same sample whatever else the grid holds. */
void taskeval_grid(gpt_model *m, const task_grid *g, task_cell *cells);
/* Cells of the grid: n_lengths * (n_depths, or 1 for mqar). */
int taskeval_cells(const task_grid *g);

#endif
