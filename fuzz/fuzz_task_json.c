/* libFuzzer harness: eval_json_task_read (src/sparse/eval_json.c), the JSON of `sattn task
 * --json` that `sattn report --task` reads. What it accepts must be a consistent grid. */
#include "fuzz_common.h" /* first: it sets _POSIX_C_SOURCE */
#include <math.h>

#include "sattn/eval_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fz_write("task_json", data, n);
    task_file f;
    sattn_err e = {{0}};
    if (eval_json_task_read(path, &f, &e) != 0) {
        fz_check_err(&e, "eval_json_task_read");
        FZ_CHECK(f.n_cells == 0 && !f.cells, "failed read left %d cells", f.n_cells);
        return 0;
    }
    task_kind k;
    FZ_CHECK(task_kind_parse(f.task, &k) == 0, "task '%.16s' accepted", f.task);
    FZ_CHECK(f.n_cells >= 1 && f.n_cells <= TASK_JSON_MAX_CELLS && f.cells, "%d cells", f.n_cells);
    for (int i = 0; i < f.n_cells; i++) {
        const task_cell *c = &f.cells[i];
        FZ_CHECK(c->length >= 1 && c->samples >= 1 && c->answers >= 1, "cell %d: %d %d %ld", i, c->length,
                 c->samples, c->answers);
        FZ_CHECK(c->correct >= 0 && c->correct <= c->answers, "cell %d: correct %ld of %ld", i, c->correct,
                 c->answers);
        FZ_CHECK(c->accuracy >= 0 && c->accuracy <= 1, "cell %d: accuracy %g", i, c->accuracy);
        FZ_CHECK(k == TASK_MQAR ? isnan(c->depth) : c->depth >= 0 && c->depth <= 1, "cell %d: depth %g", i,
                 c->depth);
    }
    eval_json_task_free(&f);
    return 0;
}
