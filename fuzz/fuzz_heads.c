/* libFuzzer harness: heads_load (src/sparse/heads.c), sparse heads files. Each input is
 * tried as it is and with its checksum recomputed (fuzz_common.h). What the reader
 * accepts is run the way distill and eval run it: every sparse head selects keys and
 * computes its output on one random sequence of the file's max_seq positions (heads
 * with max_seq above FZ_USE_MAX_SEQ are not run, to keep an input fast). */
#include "fuzz_common.h"

#include <math.h>

#include "sattn/heads.h"
#include "sattn/rng.h"

#ifndef SATTN_FUZZ_STRICT
#define SATTN_FUZZ_STRICT 0 /* 1: run heads with non-finite parameters too (issue 9 item 3: the
                               math helpers must be defined for NaN/Inf) */
#endif

#ifndef FZ_USE_MAX_SEQ
#define FZ_USE_MAX_SEQ 64
#endif

static void run_head(const sparse_head *sp, int hs, int max_seq) {
    int T = max_seq, ld = 3 * hs;
    float *qkv = malloc((size_t)T * ld * sizeof(float));
    FZ_CHECK(qkv, "out of memory");
    rng_t r;
    rng_seed(&r, 1);
    for (size_t i = 0; i < (size_t)T * ld; i++) qkv[i] = rng_normal(&r);
    head_scratch s;
    head_scratch_init(&s, &sp->spec, hs, T);
    selector_select(&sp->spec, sp->params, hs, max_seq, qkv, qkv + hs, ld, T, s.idx, s.score,
                    s.count, s.work);
    for (int t = 0; t < T; t++) {
        FZ_CHECK(s.count[t] >= 0 && s.count[t] <= s.kmax, "query %d selects %d keys (kmax %d)", t,
                 s.count[t], s.kmax);
        for (int j = 0; j < s.count[t]; j++) {
            int k = s.idx[(size_t)t * s.kmax + j];
            FZ_CHECK(k >= 0 && k <= t, "query %d selects key %d (not causal)", t, k);
        }
    }
    headfn_forward(&sp->spec, sp->params + sp->n_sel, hs, s.kmax, qkv, qkv + hs, qkv + 2 * hs, ld,
                   T, s.idx, s.count, s.out, hs, s.cache);
    head_scratch_free(&s);
    free(qkv);
}

static int all_finite(const sparse_head *sp) {
    for (size_t i = 0; i < sp->n_sel + sp->n_fn; i++)
        if (!isfinite(sp->params[i])) return 0;
    return 1;
}

static void try_load(const uint8_t *data, size_t n) {
    const char *path = fz_write("heads", data, n);
    sparse_heads sh;
    sattn_err e = {{0}};
    if (heads_load(path, &sh, NULL, &e) != 0) {
        fz_check_err(&e, "heads_load");
        return;
    }
    size_t nheads = (size_t)sh.layers * (size_t)sh.heads;
    for (size_t i = 0; i < nheads; i++) {
        const sparse_head *sp = &sh.h[i];
        sattn_err se;
        FZ_CHECK(head_spec_check(&sp->spec, &se) == 0, "head %zu: accepted a bad spec: %s", i, se.msg);
        if (sp->spec.sel == SEL_DENSE) continue;
        FZ_CHECK(sp->params, "head %zu: sparse without parameters", i);
        if (sh.max_seq <= FZ_USE_MAX_SEQ && (SATTN_FUZZ_STRICT || all_finite(sp)))
            run_head(sp, sh.hs, sh.max_seq);
    }
    sparse_heads_free(&sh);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    try_load(data, n);
    uint8_t *fixed = fz_fix_checksum(data, n);
    if (fixed) {
        try_load(fixed, n);
        free(fixed);
    }
    return 0;
}
