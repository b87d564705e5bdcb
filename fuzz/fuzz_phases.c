/* libFuzzer harness: pt_csv_read (src/analysis/phasetime.c), the per-phase CSV of `sattn
 * bench-train --plan --csv` and `bench-generate --phases-csv` that `sattn report --phases`
 * reads. What it accepts must name a known stage and hold non-negative dimensions. */
#include "fuzz_common.h"

#include <math.h>

#include "sattn/phasetime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fz_write("phases", data, n);
    phase_table t;
    sattn_err e = {{0}};
    if (pt_csv_read(path, &t, &e) != 0) {
        fz_check_err(&e, "pt_csv_read");
        return 0;
    }
    for (int i = 0; i < t.n; i++) {
        const phase_row *r = &t.rows[i];
        size_t vl = strnlen(r->variant, sizeof r->variant);
        FZ_CHECK(vl > 0 && vl < sizeof r->variant, "row %d: variant of length %zu", i, vl);
        FZ_CHECK(r->stage >= 0 && r->stage < PT_NSTAGE, "row %d: stage %d", i, r->stage);
        FZ_CHECK(r->L >= 0 && r->H >= 0 && r->C >= 0 && r->T >= 0, "row %d: negative dimension", i);
        FZ_CHECK(isfinite(r->total_s), "row %d: total %g", i, r->total_s);
    }
    pt_table_free(&t);
    return 0;
}
