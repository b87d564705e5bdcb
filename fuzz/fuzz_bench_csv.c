/* libFuzzer harness: bench_csv_read (src/analysis/benchres.c), the CSV of `sattn bench`. */
#include "fuzz_common.h"

#include <math.h>

#include "sattn/benchres.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fz_write("bench_csv", data, n);
    bench_table t;
    sattn_err e = {{0}};
    if (bench_csv_read(path, &t, &e) != 0) {
        fz_check_err(&e, "bench_csv_read");
        FZ_CHECK(t.n == 0 && !t.rows, "failed read left %d rows", t.n);
        return 0;
    }
    FZ_CHECK(t.n > 0 && t.rows, "accepted a table without rows");
    for (int i = 0; i < t.n; i++) {
        const bench_row *r = &t.rows[i];
        size_t vl = strnlen(r->variant, sizeof r->variant);
        FZ_CHECK(vl > 0 && vl < sizeof r->variant, "row %d: variant of length %zu", i, vl);
        FZ_CHECK(r->phase >= 0 && r->phase <= 2, "row %d: phase %d", i, r->phase);
        FZ_CHECK(r->C >= 0 && r->H >= 0 && r->T >= 0 && r->k >= 0, "row %d: negative dimension", i);
        FZ_CHECK(isfinite(r->median_s) && isfinite(r->gflops) && isfinite(r->speedup_vs_flash) &&
                     isfinite(r->peak_bytes) && isfinite(r->cpu_pressure) && isfinite(r->pct_peak),
                 "row %d: non-finite number", i);
    }
    bench_table_free(&t);
    return 0;
}
