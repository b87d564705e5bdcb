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

/* Reads the JSON above. Unknown fields are skipped; heads, loss_dense, loss_hybrid and
 * loss_ratio are required. Errors name "path:line" and the field: nesting deeper than
 * 32 levels, a number that is not JSON's (NaN, Infinity, hex) or not finite, a metric
 * outside its range (fractions in 0..1, errors >= 0, losses > 0), a string longer than
 * its field or with a control byte, a NUL byte, a file over 64 MiB. */
int eval_json_read(const char *path, eval_file *f, sattn_err *e);
void eval_file_free(eval_file *f);

#endif
