/* libFuzzer harness: teacher shards (src/sparse/teacher.c): teacher_shard_open, then
 * every record through teacher_shard_read. Each input is tried as it is, with its
 * checksum recomputed (fuzz_common.h), and "reshaped": the mass-column count (word 11)
 * and the file size made to agree with the header's dimensions (cut or zero-padded),
 * then the checksum recomputed, so mutated shapes get past the size check. The header
 * layout follows include/sattn/teacher.h: update it with it. */
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

/* The size the header's words 2..10 imply (teacher_shard_bytes); 0 if none. *n_ks: the
 * mass columns for its T. */
static uint64_t implied_size(const uint8_t *d, size_t n, int *n_ks) {
    if (n < TEACHER_HEADER_WORDS * 4 || fz_rd32(d, 0) != TEACHER_MAGIC ||
        fz_rd32(d, 1) != TEACHER_VERSION)
        return 0;
    uint32_t w[11];
    for (int i = 2; i <= 10; i++) {
        w[i] = fz_rd32(d, (size_t)i);
        if (w[i] > (1u << 30)) return 0;
    }
    teacher_shard_info in = {.layers = (int)w[2], .heads = (int)w[3], .channels = (int)w[4],
                             .max_seq = (int)w[5], .vocab = (int)w[6], .n_seqs = (int)w[7],
                             .T = (int)w[8], .kmax = (int)w[9], .n_pairs = (int)w[10]};
    if (in.heads < 1 || in.T < 1) return 0;
    in.n_ks = *n_ks = teacher_ks(in.T, in.ks);
    return teacher_shard_bytes(&in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    try_open(data, n);
    uint8_t *fixed = fz_fix_checksum(data, n);
    if (fixed) {
        try_open(fixed, n);
        free(fixed);
    }
    int n_ks = 0;
    uint64_t want = implied_size(data, n, &n_ks);
    uint8_t *shaped = fz_resize(data, n, want);
    if (shaped) {
        fz_wr32(shaped, 11, (uint32_t)n_ks);
        fixed = fz_fix_checksum(shaped, (size_t)want);
        try_open(fixed ? fixed : shaped, (size_t)want);
        free(fixed);
        free(shaped);
    }
    return 0;
}
