/* libFuzzer harness: teacher shards (src/sparse/teacher.c): teacher_shard_open, then
 * every record through teacher_shard_read. Each input is tried as it is and with its
 * checksum recomputed (fuzz_common.h). */
#include "fuzz_common.h"

#include <math.h>

#include "sattn/teacher.h"

static void try_open(const uint8_t *data, size_t n) {
    const char *path = fz_write("shard", data, n);
    teacher_shard s;
    sattn_err e = {{0}};
    if (teacher_shard_open(&s, path, &e) != 0) {
        fz_check_err(&e, "teacher_shard_open");
        return;
    }
    const teacher_shard_info *in = &s.info;
    FZ_CHECK(in->heads > 0 && in->channels % in->heads == 0, "heads %d channels %d", in->heads,
             in->channels);
    int hs = in->channels / in->heads;
    teacher_record r;
    teacher_record_alloc(&r, in->T, hs, in->kmax);
    for (int q = 0; q < in->n_seqs; q++)
        for (int p = 0; p < in->n_pairs; p++) {
            if (teacher_shard_read(&s, q, p, &r, &e) != 0) {
                fz_check_err(&e, "teacher_shard_read");
                continue;
            }
            /* The open validated every record: causal, descending top-k with -1 padding. */
            for (int t = 0; t < r.n; t++)
                for (int j = 0; j < r.kmax; j++) {
                    int32_t k = r.top_idx[(size_t)t * r.kmax + j];
                    FZ_CHECK(k >= -1 && k <= t, "record (%d, %d) row %d: key %d", q, p, t, k);
                }
        }
    /* Out of range requests are errors, not reads. */
    FZ_CHECK(teacher_shard_read(&s, in->n_seqs, 0, &r, &e) != 0, "read past the last sequence");
    fz_check_err(&e, "teacher_shard_read");
    for (int p = 0; p < in->n_pairs; p++)
        FZ_CHECK(isfinite(s.stats[p].entropy) && isfinite(s.stats[p].sink_frac), "stats of head %d", p);
    teacher_record_free(&r);
    teacher_shard_close(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    try_open(data, n);
    uint8_t *fixed = fz_fix_checksum(data, n);
    if (fixed) {
        try_open(fixed, n);
        free(fixed);
    }
    return 0;
}
