/* libFuzzer harness: safetensors files (src/model/safetensors.c) and GPT-2 in them
 * (src/model/hfgpt2.c). Each input is opened with stf_open and every tensor it accepts
 * is read, then loaded as a model through ckpt_load (which detects safetensors by its
 * first bytes). A second run has the 8-byte header length set to where the header's
 * JSON seems to end (the last '}' before a NUL or the end), so a mutation that changes
 * the header's length still reaches the JSON and the checks behind it. */
#include "fuzz_common.h"

#include <math.h>

#include "sattn/ckpt.h"
#include "sattn/safetensors.h"

/* What stf_open accepts must be consistent: sizes, offsets inside the data region. */
static void read_tensors(const char *path) {
    stf_file f;
    sattn_err e = {{0}};
    if (stf_open(path, &f, &e) != 0) {
        fz_check_err(&e, "stf_open");
        stf_close(&f);
        return;
    }
    for (int i = 0; i < f.n; i++) {
        const stf_tensor *t = &f.t[i];
        FZ_CHECK(t->end - t->begin == t->numel * stf_dtype_size(t->dtype), "tensor %d: size", i);
        FZ_CHECK(t->begin <= t->end && t->end <= f.data_len, "tensor %d: offsets", i);
        if (t->numel > (1u << 20)) continue;
        float *x = malloc((size_t)t->numel * sizeof(float) + 4);
        if (stf_read_f32(&f, t, x, &e) != 0) fz_check_err(&e, "stf_read_f32");
        free(x);
    }
    stf_close(&f);
}

static void try_load(const uint8_t *data, size_t n) {
    const char *path = fz_write("safetensors", data, n);
    read_tensors(path);
    gpt_model m;
    sattn_err e = {{0}};
    if (ckpt_load(path, &m, NULL, &e) != 0) {
        fz_check_err(&e, "ckpt_load");
        return;
    }
    sattn_err ce;
    FZ_CHECK(gpt_config_check(&m.cfg, &ce) == 0, "ckpt_load accepted bad dimensions: %s", ce.msg);
    size_t nonfinite = 0;
    for (size_t i = 0; i < m.num_params; i++) nonfinite += !isfinite(m.params_mem[i]);
    FZ_CHECK(nonfinite == 0, "accepted %zu non-finite parameters", nonfinite);
    gpt_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    try_load(data, n);
    if (n < 10 || data[8] != '{') return 0;
    size_t end = 8, i = 8;
    for (; i < n && data[i]; i++)
        if (data[i] == '}') end = i + 1;
    uint64_t len = end - 8, old;
    memcpy(&old, data, 8);
    if (len == old) return 0;
    uint8_t *fixed = malloc(n);
    memcpy(fixed, data, n);
    memcpy(fixed, &len, 8);
    try_load(fixed, n);
    free(fixed);
    return 0;
}
