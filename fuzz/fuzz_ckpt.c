/* libFuzzer harness: ckpt_load (src/model/ckpt.c), sattn and llm.c checkpoints.
 * Each input is loaded as it is and, for a sattn checkpoint, with its checksum
 * recomputed (fuzz_common.h), so the checks behind the checksum are fuzzed too. */
#include "fuzz_common.h"

#include <math.h>

#include "sattn/ckpt.h"

#ifndef SATTN_FUZZ_STRICT
#define SATTN_FUZZ_STRICT 0 /* 1: also require issue 9's "readers reject non-finite parameters" */
#endif

static void try_load(const uint8_t *data, size_t n) {
    const char *path = fz_write("ckpt", data, n);
    gpt_model m;
    train_state st;
    sattn_err e = {{0}};
    if (ckpt_load(path, &m, &st, &e) != 0) {
        fz_check_err(&e, "ckpt_load");
        return;
    }
    sattn_err ce;
    FZ_CHECK(gpt_config_check(&m.cfg, &ce) == 0, "ckpt_load accepted bad dimensions: %s", ce.msg);
    FZ_CHECK(st.has_optim == 0 || st.has_optim == 1, "has_optim %d", st.has_optim);
    FZ_CHECK(!st.has_optim || (m.m_mem && m.v_mem), "has_optim without AdamW moments");
    FZ_CHECK(st.step >= 0, "step %d", st.step);
    /* Touch every parameter (ASan: the whole block is allocated and initialised). */
    size_t nonfinite = 0;
    for (size_t i = 0; i < m.num_params; i++) nonfinite += !isfinite(m.params_mem[i]);
    if (SATTN_FUZZ_STRICT)
        FZ_CHECK(nonfinite == 0, "ckpt_load accepted %zu non-finite parameters", nonfinite);
    gpt_free(&m);
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
