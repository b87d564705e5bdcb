/* libFuzzer harness: trainlog_read (src/model/trainlog.c), the loss curve `sattn train
 * --log-csv` writes and `sattn report --train-log` reads. What it accepts must be a curve:
 * steps >= 1 and increasing, tokens >= 0 and not decreasing, finite losses. */
#include "fuzz_common.h"

#include <math.h>

#include "sattn/trainlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fz_write("trainlog", data, n);
    trainlog l;
    sattn_err e = {{0}};
    if (trainlog_read(path, &l, &e) != 0) {
        fz_check_err(&e, "trainlog_read");
        FZ_CHECK(l.n == 0 && !l.rows, "failed read left %d rows", l.n);
        return 0;
    }
    FZ_CHECK(l.n > 0 && l.rows, "accepted a log without rows");
    for (int i = 0; i < l.n; i++) {
        const trainlog_row *r = &l.rows[i];
        FZ_CHECK(r->step >= 1 && (i == 0 || r->step > l.rows[i - 1].step), "row %d: step %d", i, r->step);
        FZ_CHECK(r->tokens >= 0 && (i == 0 || r->tokens >= l.rows[i - 1].tokens), "row %d: tokens %g", i, r->tokens);
        FZ_CHECK(isfinite(r->train_loss) && (isnan(r->val_loss) || isfinite(r->val_loss)), "row %d: loss", i);
    }
    trainlog_free(&l);
    return 0;
}
