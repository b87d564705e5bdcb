/* Hybrid by length on the command line (docs/hybrid_length.md): the --dense-below and
 * --crossover-from flags shared by `sattn eval`, `sattn sample` and `sattn demo` (declared
 * in opts.c) and the threshold they choose (the eval JSON they go into: eval_json.h). */
#ifndef SATTN_CLI_LENPOLICY_H
#define SATTN_CLI_LENPOLICY_H

#include <stdio.h>

#include "sattn/sparse.h"
#include "sattn/sparse_eval.h"

typedef struct {
    int dense_below;            /* --dense-below; -1 when not given */
    const char *crossover_from; /* --crossover-from CSV, or NULL */
} len_flags;

/* The chosen threshold: dense_below as in hybrid.h (0 sparse always, XO_NEVER dense
 * always), and a one-line description of where it came from. */
typedef struct {
    int dense_below;
    char source[1024]; /* "flag", the CSV path, or "default" */
    char desc[1536];
} len_choice;

/* Both flags given is an error. Exit status. */
int len_flags_check(const char *cmd, const len_flags *f);
/* Chooses the threshold for sh at the model's C: the flag, else the CSV's crossover,
 * else 0 (sparse at every length). A CSV that does not read, or lacks rows for the
 * plan's variants, is a one-line error naming the file. Exit status. */
int len_choose(const char *cmd, const len_flags *f, const sparse_heads *sh, int C, len_choice *c);

#endif
