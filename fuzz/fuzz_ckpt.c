/* libFuzzer harness: ckpt_load (src/model/ckpt.c), sattn and llm.c checkpoints.
 * Each input is loaded up to three times: as it is; for a sattn checkpoint, with its
 * checksum recomputed (fuzz_common.h), so the checks behind the checksum are fuzzed too;
 * and "reshaped": cut or zero-padded to the size its header's dimensions imply (and, for
 * sattn, num_params and the checksum made to agree), so a mutated shape gets past the size
 * check. The header layouts below follow include/sattn/ckpt.h: update them with it. */
#include "fuzz_common.h"

#include <math.h>

#include "sattn/ckpt.h"

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

/* The file size the header implies (0: not a header we can reshape); *np: its
 * parameter count. native: words 2..7 = maxT, V, Vp, L, NH, C; 8 has_optim; 12..13
 * num_params; version 3: 30 pos, 31..32 rope base and scale (a RoPE model has no wpe).
 * llm.c: words 2..7 = maxT, V, L, NH, C, Vp. */
static uint64_t implied_size(const uint8_t *d, size_t n, int *native, uint64_t *np) {
    if (n < 256) return 0;
    uint32_t magic = fz_rd32(d, 0), version = fz_rd32(d, 1);
    *native = magic == CKPT_MAGIC && (version == CKPT_VERSION_V2 || version == CKPT_VERSION_V3);
    if (!*native && !(magic == LLMC_CKPT_MAGIC && version == LLMC_CKPT_VERSION)) return 0;
    int32_t w[8];
    for (int i = 2; i < 8; i++) w[i] = (int32_t)fz_rd32(d, (size_t)i);
    gpt_config c = {.max_seq = w[2], .vocab = w[3], .padded_vocab = *native ? w[4] : w[7],
                    .layers = *native ? w[5] : w[4], .heads = *native ? w[6] : w[5],
                    .channels = *native ? w[7] : w[6]};
    if (*native && version == CKPT_VERSION_V3) {
        uint32_t b = fz_rd32(d, 31), s = fz_rd32(d, 32);
        c.pos = (int)fz_rd32(d, 30);
        memcpy(&c.rope_base, &b, sizeof b);
        memcpy(&c.rope_scale, &s, sizeof s);
    }
    sattn_err e;
    if (gpt_config_check(&c, &e)) return 0;
    size_t sz[GPT_NUM_TENSORS];
    gpt_param_sizes(&c, sz);
    *np = 0;
    for (int i = 0; i < GPT_NUM_TENSORS; i++) *np += sz[i];
    uint32_t optim = *native ? fz_rd32(d, 8) : 0;
    if (optim > 1 || *np > FZ_RESHAPE_MAX) return 0;
    return (*native ? 256 : 1024) + *np * 4 * (optim ? 3 : 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    try_load(data, n);
    uint8_t *fixed = fz_fix_checksum(data, n);
    if (fixed) {
        try_load(fixed, n);
        free(fixed);
    }
    int native = 0;
    uint64_t np = 0, want = implied_size(data, n, &native, &np);
    uint8_t *shaped = fz_resize(data, n, want);
    if (shaped) {
        if (native) fz_wr32(shaped, 12, (uint32_t)np), fz_wr32(shaped, 13, (uint32_t)(np >> 32));
        fixed = fz_fix_checksum(shaped, (size_t)want);
        try_load(fixed ? fixed : shaped, (size_t)want);
        free(fixed);
        free(shaped);
    }
    return 0;
}
