/* eval_json: the JSON of `sattn eval --json` (sparse_eval.h's results), its writer and
 * its reader (`sattn report` reads it back; docs/report.md). One object on one line:
 *   {"heads": [{"layer", "head", "spec", "top1", "hit", "recall", "mass", "keys",
 *   "rel_err"}, ...], "mean_recall", "mean_mass", "mean_top1", "median_rel_err",
 *   "logit_rel_err", "windows", "loss_dense", "loss_hybrid", "loss_ratio", "loss_change",
 *   "bits_per_byte_dense"/"bits_per_token_dense", ..._hybrid, "tokens", "dense_below",
 *   "dense_below_from", "forwards_dense", "forwards_sparse"} */
#ifndef SATTN_EVAL_JSON_H
#define SATTN_EVAL_JSON_H

#include <stdio.h>

#include "sattn/core.h"
#include "sattn/sparse.h"
#include "sattn/sparse_eval.h"
#include "sattn/taskeval.h"

#define EVAL_NAME_LEN 96

/* Writes r as the object above (one line) to out. is_bytes: the byte tokenizer (bits
 * per byte, else per token). dense_below: hybrid by length's threshold (hybrid.h;
 * INT_MAX, dense at every length, is written as null), dense_below_from: where it came
 * from ("flag", "default" or a bench CSV path). A number that is not finite is written
 * as null: printf would write nan or inf, which is not JSON (the reader refuses both). */
void eval_json_write(FILE *out, const sparse_eval_result *r, const sparse_heads *sh, int is_bytes,
                     int dense_below, const char *dense_below_from);

typedef struct {
    int layer, head;
    char spec[EVAL_NAME_LEN];
    double top1, hit, recall, mass, keys, rel_err;
} eval_head;

typedef struct {
    char name[EVAL_NAME_LEN]; /* the file's base name without ".json" */
    int n_heads;              /* the sparse heads (dense heads are not listed) */
    eval_head *heads;
    double loss_dense, loss_hybrid, loss_ratio, logit_rel_err;
} eval_file;

/* Reads the JSON above, parsed by json-c (jdoc.h: strict JSON, nesting at most 32 levels).
 * Unknown fields are skipped; heads, loss_dense, loss_hybrid and loss_ratio are required.
 * Errors are one line naming the file, and "line N" for a syntax error or "field 'KEY'" for
 * a bad value: a number that is not finite anywhere in the file (json-c takes NaN, Infinity
 * and 1e999), a metric outside its range (fractions in 0..1, errors >= 0, losses > 0), a
 * string longer than its field or with a control byte, a NUL byte, a file over 64 MiB. */
int eval_json_read(const char *path, eval_file *f, sattn_err *e);
void eval_file_free(eval_file *f);

/* ---- the task JSON (`sattn task --json OUT`; docs/tasks.md), read by `sattn report --task` ----
 * One object on one line:
 *   {"task": "passkey", "model": PATH, "heads": PATH or null, "attn": "naive"|"flash",
 *    "seed": S, "pairs": N or null (mqar only), "cells": [{"length": T, "depth": D or null
 *    (mqar), "samples": N, "answers": N, "correct": N, "accuracy": X}, ...], "accuracy": X}
 * accuracy = correct / answers: passkey and needle count samples whose key is right in full,
 * mqar counts the values right (answers = samples * pairs); the top-level one pools the cells. */
typedef struct {
    const char *task, *model, *heads, *attn; /* heads NULL: the dense model */
    int pairs;                               /* mqar; 0 otherwise (written as null) */
    uint64_t seed;
} task_json_info;

/* Appends the object above (and a newline) to b. */
void eval_json_task_format(sbuf *b, const task_json_info *info, const task_cell *cells, int n);

#define TASK_JSON_MAX_CELLS 4096

typedef struct {
    char name[EVAL_NAME_LEN]; /* the file's base name without ".json", whitelisted as eval's */
    char task[16];            /* passkey, needle or mqar */
    int n_cells;
    task_cell *cells;
} task_file;

/* Reads the task JSON with the eval reader's limits (64 MiB, nesting 32, JSON numbers only,
 * strings within their field). Required: task (a known name), cells (1 to 4096), and in each
 * cell length (1 .. 2^20), samples, answers (>= 1), correct (0 .. answers), accuracy (0 .. 1),
 * depth (0 .. 1; null for mqar only). A (length, depth) given twice is an error. Unknown fields
 * are skipped. Errors name the file and the field, as eval_json_read's. */
int eval_json_task_read(const char *path, task_file *f, sattn_err *e);
void eval_json_task_free(task_file *f);

#endif
