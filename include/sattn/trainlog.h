/* trainlog: the loss curve of a training run as a CSV (`sattn train --log-csv PATH`), and
 * its reader (`sattn report --train-log`, the loss-vs-tokens plot that compares dense and
 * sparse training).
 *
 * Format: the header line "step,tokens,train_loss,val_loss,lr,wall_s", then one row per
 * optimizer step: step (1-based, strictly increasing), tokens seen so far (step x batch x
 * seq, counted from the run's first step, so a resumed run continues the count), the
 * step's training loss, the periodic validation estimate at that step or empty when none
 * was taken, the learning rate, and seconds since the run (or its resumption) started.
 * Numbers in C locale; a log is written whole and atomically (core.h's afile). */
#ifndef SATTN_TRAINLOG_H
#define SATTN_TRAINLOG_H

#include <stddef.h>

#include "sattn/core.h"

typedef struct {
    int step;
    double tokens;
    float train_loss;
    float val_loss; /* NaN: no validation at this step */
    float lr;
    double wall_s;
} trainlog_row;

typedef struct {
    trainlog_row *rows;
    int n, cap;
} trainlog;

void trainlog_add(trainlog *l, const trainlog_row *r);
void trainlog_free(trainlog *l);
/* Writes the whole log to path (atomically). */
int trainlog_save(const char *path, const trainlog *l, sattn_err *e);
/* Reads a log into a fresh l (trainlog_free it on success only). Errors name the file and
 * line: a missing or different header, a field that is not a number (val_loss may be
 * empty), a step not above the previous one, tokens decreasing, a loss that is not finite,
 * an empty log. */
int trainlog_read(const char *path, trainlog *l, sattn_err *e);

#endif
