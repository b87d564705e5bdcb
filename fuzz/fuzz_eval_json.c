/* libFuzzer harness: eval_json_read (src/sparse/eval_json.c), the JSON of `sattn eval
 * --json`. What it accepts goes through eval_relative_flops, as `sattn report` does. */
#include "fuzz_common.h"
#include "sattn/report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fz_write("eval_json", data, n);
    eval_file f;
    sattn_err e = {{0}};
    if (eval_json_read(path, &f, &e) != 0) {
        fz_check_err(&e, "eval_json_read");
        FZ_CHECK(f.n_heads == 0 && !f.heads, "failed read left %d heads", f.n_heads);
        return 0;
    }
    FZ_CHECK(f.n_heads >= 0 && (f.n_heads == 0 || f.heads), "%d heads", f.n_heads);
    for (int i = 0; i < f.n_heads; i++) {
        const eval_head *h = &f.heads[i];
        FZ_CHECK(h->layer >= 0 && h->head >= 0, "head %d: L%dH%d", i, h->layer, h->head);
        FZ_CHECK(memchr(h->spec, 0, sizeof h->spec), "head %d: spec not terminated", i);
    }
    static const report_model models[] = {{1, 1, 8, 8}, {4, 4, 64, 256}};
    for (int m = 0; m < 2; m++) {
        double rel = 0;
        memset(&e, 0, sizeof e);
        if (eval_relative_flops(&f, &models[m], &rel, &e) != 0) fz_check_err(&e, "eval_relative_flops");
    }
    eval_file_free(&f);
    return 0;
}
