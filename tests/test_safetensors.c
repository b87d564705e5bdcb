/* Tests for safetensors (stf_*) and Hugging Face GPT-2 (hf_*): exact dtype conversions;
 * sattn -> safetensors / HF folder / llm.c -> sattn with bit-identical logits; files from an
 * independent writer (tests/hf_writer.py: struct and json only) loading with the loss of the
 * llm.c export of the same weights; every malformed file and config a one-line error naming
 * the file; sattn convert. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_util.h"
#include "sattn/ckpt.h"
#include "sattn/hfgpt2.h"
#include "sattn/safetensors.h"

/* ------------------------------------------------------------------ dtypes ---- */

static uint32_t bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

Test(safetensors, f16_known_values_and_exact_round_trip) {
    cr_assert_eq(stf_f16_to_f32(0x0001), 0x1p-24f);
    cr_assert_eq(stf_f16_to_f32(0x03ff), 1023 * 0x1p-24f);
    cr_assert_eq(stf_f16_to_f32(0x0400), 0x1p-14f);
    cr_assert_eq(stf_f16_to_f32(0x3c00), 1.0f);
    cr_assert_eq(stf_f16_to_f32(0x7bff), 65504.0f);
    cr_assert_eq(stf_f16_to_f32(0xc000), -2.0f);
    cr_assert_eq(bits(stf_f16_to_f32(0x8000)), 0x80000000u);
    cr_assert(isinf(stf_f16_to_f32(0x7c00)) && stf_f16_to_f32(0x7c00) > 0);
    cr_assert(isinf(stf_f16_to_f32(0xfc00)) && stf_f16_to_f32(0xfc00) < 0);
    cr_assert(isnan(stf_f16_to_f32(0x7e00)) && isnan(stf_f16_to_f32(0xfc01)));
    /* every value: f16 -> f32 -> f16 is the identity (NaN stays NaN) */
    for (uint32_t h = 0; h < 65536; h++) {
        float x = stf_f16_to_f32((uint16_t)h);
        uint16_t back = stf_f32_to_f16(x);
        if (isnan(x)) cr_assert(isnan(stf_f16_to_f32(back)) && (back & 0x8000) == (h & 0x8000), "%x", h);
        else cr_assert_eq(back, h, "0x%04x -> %g -> 0x%04x", h, (double)x, back);
    }
}

/* Round to nearest, ties to even: the result is no farther from x than either neighbour,
 * and on a tie its last bit is 0. */
Test(safetensors, f32_to_f16_rounds_to_nearest_even) {
    cr_assert_eq(stf_f32_to_f16(1.0f + 0x1p-11f), 0x3c00); /* tie: down to even */
    cr_assert_eq(stf_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02); /* tie: up to even */
    cr_assert_eq(stf_f32_to_f16(65519.99f), 0x7bff);
    cr_assert_eq(stf_f32_to_f16(65520.0f), 0x7c00);
    cr_assert_eq(stf_f32_to_f16(-1e10f), 0xfc00);
    cr_assert_eq(stf_f32_to_f16(0x1p-25f), 0x0000);      /* half of the smallest subnormal: tie to 0 */
    cr_assert_eq(stf_f32_to_f16(3 * 0x1p-25f), 0x0002);  /* 1.5 units: tie to 2 */
    cr_assert_eq(stf_f32_to_f16(1.25f * 0x1p-24f), 0x0001);
    cr_assert_eq(stf_f32_to_f16(-0x1p-30f), 0x8000);
    cr_assert_eq(stf_f32_to_f16(0x1p-149f), 0x0000);
    rng_t r;
    rng_seed(&r, 7);
    for (int i = 0; i < 200000; i++) {
        float x = stf_f16_to_f32((uint16_t)(rng_u64(&r) & 0x7bff)) * (1.0f + 0x1p-11f * rng_uniform(&r));
        if (x >= 65520.0f) continue; /* infinity: tested above */
        uint16_t h = stf_f32_to_f16(x);
        double d = fabs((double)stf_f16_to_f32(h) - x);
        double lo = h & 0x7fff ? fabs((double)stf_f16_to_f32((uint16_t)(h - 1)) - x) : INFINITY;
        double hi = (h & 0x7fff) < 0x7bff ? fabs((double)stf_f16_to_f32((uint16_t)(h + 1)) - x) : INFINITY;
        cr_assert(d <= lo && d <= hi, "%a -> 0x%04x", (double)x, h);
        if (d == lo || d == hi) cr_assert_eq(h & 1, 0, "tie %a -> 0x%04x", (double)x, h);
    }
}

Test(safetensors, bf16_exact_and_rounding) {
    for (uint32_t h = 0; h < 65536; h++) {
        float x = stf_bf16_to_f32((uint16_t)h);
        cr_assert_eq(bits(x), h << 16);
        if (!isnan(x)) cr_assert_eq(stf_f32_to_bf16(x), h);
        else cr_assert(isnan(stf_bf16_to_f32(stf_f32_to_bf16(x))));
    }
    cr_assert_eq(stf_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);     /* tie: down to even */
    cr_assert_eq(stf_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82); /* tie: up to even */
    cr_assert_eq(stf_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    cr_assert_eq(stf_f32_to_bf16(3.4e38f), 0x7f80); /* rounds past the largest: infinity */
}

/* ------------------------------------------------------------------ round trips ---- */

/* V 300 pads to Vp 384: the padded rows are not written and come back as 0. */
static const gpt_config TINY = {.max_seq = 16, .vocab = 300, .padded_vocab = 384, .layers = 2, .heads = 2,
                                .channels = 16};

static void make_model(gpt_model *m, const gpt_config *c, uint64_t seed) {
    rng_t r;
    rng_seed(&r, seed);
    gpt_create(m, c);
    gpt_init_random(m, &r);
    /* biases and LayerNorm start at 0 and 1: random ones catch a swapped weight and bias */
    for (size_t i = c->padded_vocab * (size_t)c->channels; i < m->num_params; i++)
        m->params_mem[i] += 0.05f * rng_normal(&r);
}

/* The loss and logits (B 2, T = max_seq) of m on fixed tokens; logits malloc'd, (2, T, Vp). */
static float forward(gpt_model *m, float **logits) {
    int B = 2, T = m->cfg.max_seq, in[64], tg[64];
    for (int i = 0; i < B * T; i++) in[i] = (i * 37 + 11) % m->cfg.vocab, tg[i] = (i * 53 + 5) % m->cfg.vocab;
    gpt_forward(m, in, tg, B, T);
    size_t n = (size_t)B * T * m->cfg.padded_vocab;
    if (logits) {
        *logits = malloc(n * sizeof(float));
        memcpy(*logits, m->acts.logits, n * sizeof(float));
    }
    return m->mean_loss;
}

static void load_ok(const char *path, gpt_model *m) {
    sattn_err e;
    cr_assert_eq(ckpt_load(path, m, NULL, &e), 0, "%s", e.msg);
}

Test(safetensors, round_trips_give_bit_identical_logits) {
    cli_tdir t;
    cli_tdir_open(&t);
    gpt_model a, b;
    make_model(&a, &TINY, 1);
    float *la, *lb;
    float loss = forward(&a, &la);
    sattn_err e;
    const char *st = cli_tpath(&t, "m.safetensors"), *hf = cli_tpath(&t, "hf"), *llmc = cli_tpath(&t, "m.bin");
    cr_assert_eq(ckpt_save(st, CKPT_SAFETENSORS, &a, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(ckpt_save(hf, CKPT_HF, &a, NULL, &e), 0, "%s", e.msg);
    const char *paths[] = {st, hf, cli_tpath(&t, "hf/model.safetensors"), llmc};
    for (int i = 0; i < 4; i++) {
        load_ok(paths[i], &b);
        cr_assert_eq(memcmp(&a.cfg, &b.cfg, sizeof a.cfg), 0, "%s", paths[i]);
        cr_assert_eq(memcmp(a.params_mem, b.params_mem, a.num_params * sizeof(float)), 0, "%s", paths[i]);
        cr_assert_eq(forward(&b, &lb), loss);
        cr_assert_eq(memcmp(la, lb, 2 * 16 * 384 * sizeof(float)), 0, "%s: logits differ", paths[i]);
        free(lb);
        if (i == 1) cr_assert_eq(ckpt_save(llmc, CKPT_LLMC, &b, NULL, &e), 0, "%s", e.msg); /* hf -> llm.c */
        gpt_free(&b);
    }
    free(la);
    gpt_free(&a);
    cli_tdir_close(&t);
}

/* F16 and BF16 files hold the rounded weights: each loads as exactly that rounding. */
Test(safetensors, half_precision_writes_round_each_weight) {
    cli_tdir t;
    cli_tdir_open(&t);
    gpt_model a, b;
    make_model(&a, &TINY, 2);
    sattn_err e;
    stf_dtype dts[2] = {STF_F16, STF_BF16};
    for (int k = 0; k < 2; k++) {
        const char *p = cli_tpath(&t, k ? "b.safetensors" : "h.safetensors");
        cr_assert_eq(hf_save(p, &a, 0, dts[k], &e), 0, "%s", e.msg);
        load_ok(p, &b);
        for (size_t i = 0; i < (size_t)TINY.vocab * TINY.channels; i++) {
            float want = k ? stf_bf16_to_f32(stf_f32_to_bf16(a.params_mem[i])) : stf_f16_to_f32(stf_f32_to_f16(a.params_mem[i]));
            cr_assert_eq(b.params_mem[i], want, "%zu", i);
        }
        gpt_free(&b);
    }
    a.params.wte[3] = 1e5f; /* beyond F16's 65504 */
    const char *p = cli_tpath(&t, "big.safetensors");
    cr_assert_eq(hf_save(p, &a, 0, STF_F16, &e), -1);
    cr_assert(strstr(e.msg, ": tensor 'wte.weight': element 3 is 100000, too large for F16"), "%s", e.msg);
    cr_assert(!cli_file_exists(p));
    gpt_free(&a);
    cli_tdir_close(&t);
}

/* ------------------------------------------------------------------ independent writer ---- */

static void run_writer(const char *llmc, const char *dir, const char *dtype, const char *rounded) {
    char cmd[1024];
    mkdir(dir, 0777);
    snprintf(cmd, sizeof cmd, "python3 tests/hf_writer.py '%s' '%s' %s '%s'", llmc, dir, dtype, rounded);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* GPT2LMHeadModel's names ("transformer." prefix, lm_head.weight, U8 mask buffers), tensors in
 * reverse name order, F32/F16/BF16: the folder loads with the same weights and loss as the llm.c
 * file of the same (rounded) weights, and F32 with the loss of the model itself. */
Test(safetensors, independent_python_writer_loads_with_the_llmc_loss, .timeout = 120) {
    cli_tdir t;
    cli_tdir_open(&t);
    gpt_config c = TINY;
    c.vocab = c.padded_vocab = 256;
    gpt_model a, b, r;
    make_model(&a, &c, 3);
    float loss = forward(&a, NULL);
    sattn_err e;
    const char *llmc = cli_tpath(&t, "m.bin");
    cr_assert_eq(ckpt_save(llmc, CKPT_LLMC, &a, NULL, &e), 0, "%s", e.msg);
    const char *dts[3] = {"F32", "F16", "BF16"};
    for (int k = 0; k < 3; k++) {
        char dir[300], rounded[300];
        snprintf(dir, sizeof dir, "%s/%s", t.dir, dts[k]);
        snprintf(rounded, sizeof rounded, "%s/r%s.bin", t.dir, dts[k]);
        run_writer(llmc, dir, dts[k], rounded);
        load_ok(dir, &b);
        load_ok(rounded, &r);
        cr_assert_eq(memcmp(b.params_mem, r.params_mem, b.num_params * sizeof(float)), 0, "%s", dts[k]);
        float lb = forward(&b, NULL), lr = forward(&r, NULL);
        cr_assert_eq(lb, lr, "%s: %.9g vs %.9g", dts[k], (double)lb, (double)lr);
        if (k == 0) cr_assert_eq(lb, loss);
        else cr_assert(fabsf(lb - loss) < 0.01f && lb != loss, "%s: %g vs %g", dts[k], (double)lb, (double)loss);
        gpt_free(&b), gpt_free(&r);
    }
    gpt_free(&a);
    cli_tdir_close(&t);
}

/* ------------------------------------------------------------------ malformed files ---- */

/* A file of header length n (the 8 bytes), header text h, then data_len zero bytes. */
static void spew_stf(const char *path, uint64_t n, const char *h, size_t data_len) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fwrite(&n, 8, 1, f);
    fwrite(h, 1, strlen(h), f);
    for (size_t i = 0; i < data_len; i++) fputc(0, f);
    fclose(f);
}

static void expect_error(const char *path, const char *needle) {
    gpt_model m;
    sattn_err e;
    cr_assert_eq(ckpt_load(path, &m, NULL, &e), -1, "accepted (%s)", needle);
    cr_assert(strstr(e.msg, path) == e.msg, "'%s' does not start with the file", e.msg);
    cr_assert(strstr(e.msg, needle), "'%s' lacks '%s'", e.msg, needle);
    cr_assert_null(strchr(e.msg, '\n'));
}

#define T_(name, dt, shape, b, e) "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

Test(safetensors, malformed_headers_are_one_line_errors) {
    tmp_place t;
    tmp_open(&t, "x.safetensors");
    const struct {
        const char *h;
        size_t data;
        const char *needle;
    } bad[] = {
        {"{\"a\": }", 0, "(safetensors header): not JSON at line 1, byte 6"},
        {"{\"a\": 1, \"a\" 2}", 0, "not JSON"},
        {"{" T_("a", "F32", "[2]", 0, 8) "," T_("b", "F32", "[2]", 4, 12) "}", 12,
         "tensor 'b': bytes [4, 12) overlap tensor 'a'"},
        {"{" T_("a", "F32", "[2]", 0, 8) "}", 4, "tensor 'a': data_offsets [0, 8] outside the data region of 4 bytes"},
        {"{" T_("a", "F32", "[2]", 0, 8) "," T_("b", "F32", "[2]", 12, 20) "}", 20,
         "tensor 'b': starts at byte 12, leaving a hole of 4 bytes"},
        {"{" T_("a", "F32", "[2]", 0, 8) "}", 12, "4 bytes after the last tensor's data"},
        {"{" T_("a", "F32", "[3]", 0, 8) "}", 8, "tensor 'a': data_offsets [0, 8] hold 8 bytes, its dtype F32 and shape need 12"},
        {"{" T_("a", "F17", "[2]", 0, 8) "}", 8, "tensor 'a': unknown dtype 'F17'"},
        {"{" T_("a", "F32", "[-2]", 0, 8) "}", 8, "tensor 'a': a shape entry is not a non-negative integer"},
        {"{" T_("a", "F32", "[2]", 8, 0) "}", 8, "outside the data region"},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2]}}", 8, "tensor 'a': expected \"data_offsets\""},
        {"{\"a\": 7}", 0, "tensor 'a': expected an object"},
        {"{\"__metadata__\": {\"n_head\": 2}}", 0, "__metadata__ 'n_head' is an integer, expected a string"},
        {"{\"x\\u0001y\": 1}", 0, "tensor 'x\\x01y'"},
        {"{" T_("a", "F32", "[2]", 0, 8) "}", 8, "missing tensor 'wte.weight'"},
        {"{" T_("wte.weight", "F32", "[2, 2]", 0, 16) "}", 16, "no __metadata__ \"n_head\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char h[1024];
        snprintf(h, sizeof h, "%s", bad[i].h);
        while (strlen(h) % 8) strcat(h, " ");
        spew_stf(t.path, strlen(h), h, bad[i].data);
        expect_error(t.path, bad[i].needle);
    }
    spew_stf(t.path, 1000, "{}      ", 0);
    expect_error(t.path, "safetensors header length 1000 runs past the end of the file (16 bytes)");
    spew_stf(t.path, (uint64_t)200000000, "{}      ", 0);
    expect_error(t.path, "safetensors header length 200000000, expected at most 100000000");
    stf_file f;
    sattn_err e;
    cli_spew(t.path, "\x08\0\0", 3);
    cr_assert_eq(stf_open(t.path, &f, &e), -1);
    stf_close(&f);
    cr_assert(strstr(e.msg, "3 bytes, too short for safetensors"), "%s", e.msg);
    tmp_close(&t);
}

/* A TINY model from seed, saved (float32) at path, a file or (folder) a folder. */
static void save_tiny(gpt_model *a, uint64_t seed, const char *path, int folder) {
    sattn_err e;
    make_model(a, &TINY, seed);
    cr_assert_eq(hf_save(path, a, folder, STF_F32, &e), 0, "%s", e.msg);
}

/* A test case: `from` replaced by `to` must give an error naming `needle`. */
typedef struct {
    const char *from, *to, *needle;
} text_edit;

/* Rewrites the bytes at off of path. */
static void patch(const char *path, long off, const void *x, size_t n) {
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    fseek(f, off, SEEK_SET);
    fwrite(x, 1, n, f);
    fclose(f);
}

/* Replaces the first `from` in path's header with `to` (the same length). */
static void patch_text(const char *path, const char *from, const char *to) {
    size_t len;
    char *s = cli_slurp(path, &len);
    char *p = strstr(s + 8, from); /* the header is text after the 8-byte length */
    cr_assert(p && (size_t)(p - s) < len, "no %s", from);
    patch(path, p - s, to, strlen(to));
    free(s);
}

/* The file offset of tensor name's data. */
static long data_at(const char *path, const char *name) {
    stf_file f;
    sattn_err e;
    cr_assert_eq(stf_open(path, &f, &e), 0, "%s", e.msg);
    long off = (long)(f.data_start + stf_find(&f, name)->begin);
    stf_close(&f);
    return off;
}

Test(safetensors, bad_model_tensors_are_one_line_errors) {
    cli_tdir t;
    cli_tdir_open(&t);
    gpt_model a;
    const char *good = cli_tpath(&t, "good.safetensors"), *p = cli_tpath(&t, "m.safetensors");
    save_tiny(&a, 4, good, 0);
    const text_edit edits[] = {
        {"\"ln_f.bias\"", "\"ln_f.bizz\"", "tensor 'ln_f.bizz' is not one of GPT-2's"},
        {"\"h.1.ln_2.bias\"", "\"h.7.ln_2.bias\"", "missing tensor 'h.1.ln_2.bias'"},
        {"\"h.0.ln_1.bias\"", "\"h.0.ln_1.bia_\"", "is not one of GPT-2's"},
        {"\"F32\",\"shape\":[16,48]", "\"I32\",\"shape\":[16,48]", "tensor 'h.0.attn.c_attn.weight': dtype I32"},
        {"\"shape\":[16,48]", "\"shape\":[48,16]", "tensor 'h.0.attn.c_attn.weight': shape [48, 16], expected [16, 48] (Conv1D"},
        {"\"n_head\":\"2\"", "\"n_head\":\"x\"", "no __metadata__ \"n_head\""},
    };
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        size_t n;
        char *s = cli_slurp(good, &n);
        cli_spew(p, s, n);
        free(s);
        patch_text(p, edits[i].from, edits[i].to);
        expect_error(p, edits[i].needle);
    }
    /* a NaN weight */
    size_t n;
    char *s = cli_slurp(good, &n);
    cli_spew(p, s, n);
    free(s);
    float nan = NAN;
    patch(p, data_at(p, "h.1.mlp.c_fc.weight") + 4 * 5, &nan, 4);
    expect_error(p, "tensor 'h.1.mlp.c_fc.weight' holds NaN at element 5, expected finite parameters");
    gpt_free(&a);
    cli_tdir_close(&t);
}

/* A folder's config.json against its tensors and against what sattn computes. */
Test(safetensors, hf_folder_config_checks) {
    cli_tdir t;
    cli_tdir_open(&t);
    gpt_model a;
    sattn_err e;
    const char *dir = cli_tpath(&t, "hf"), *cfg = cli_tpath(&t, "hf/config.json");
    save_tiny(&a, 5, dir, 1);
    char *orig = cli_slurp(cfg, NULL);
    const text_edit edits[] = {
        {"\"n_layer\": 2", "\"n_layer\": 3", "missing tensor 'h.2.ln_1.weight'"},
        {"\"n_positions\": 16", "\"n_positions\": 8", "tensor 'wpe.weight': shape [16, 16], expected [8, 16]"},
        {"\"n_head\": 2", "\"n_head\": 3", "heads = 3 does not divide channels = 16"},
        {"\"gelu_new\"", "\"relu\"", "\"activation_function\" is \"relu\", expected \"gelu_new\""},
        {"1e-05", "1e-06", "\"layer_norm_epsilon\" is 1e-06, expected 1e-05"},
        {"\"gpt2\"", "\"llama\"", "\"model_type\" is \"llama\", expected \"gpt2\""},
        {"\"n_inner\": null", "\"n_inner\": 7", "\"n_inner\" is 7, expected null or 64"},
        {"\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false", "expected true"},
        {"\"n_embd\": 16,", "\"n_ctx\": 17, \"n_embd\": 16,", "\"n_ctx\" is 17, expected n_positions (16)"},
        {"\"vocab_size\": 300", "\"vocab_size\": 3e2", "\"vocab_size\" is a number, expected an integer"},
        {"\"n_embd\": 16,", "\"n_embd\": 16,,", "config.json: not JSON"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        char *s = strdup(orig), *at = strstr(s, edits[i].from);
        cr_assert_not_null(at, "%s", edits[i].from);
        sbuf b = {0};
        sb_printf(&b, "%.*s%s%s", (int)(at - s), s, edits[i].to, at + strlen(edits[i].from));
        cli_spew_str(cfg, b.s);
        sb_free(&b);
        free(s);
        gpt_model m;
        cr_assert_eq(ckpt_load(dir, &m, NULL, &e), -1, "accepted: %s", edits[i].to);
        cr_assert(strstr(e.msg, edits[i].needle), "'%s' lacks '%s'", e.msg, edits[i].needle);
        cr_assert_null(strchr(e.msg, '\n'));
    }
    unlink(cfg);
    expect_error(dir, "a folder without config.json, expected a Hugging Face GPT-2 folder");
    cli_spew_str(cfg, orig);
    cli_spew_str(cli_tpath(&t, "hf/model.safetensors.index.json"), "{}");
    unlink(cli_tpath(&t, "hf/model.safetensors"));
    expect_error(dir, "a sharded checkpoint (model.safetensors.index.json), expected one model.safetensors");
    free(orig);
    gpt_free(&a);
    cli_tdir_close(&t);
}

/* lm_head.weight is taken only when it is wte exactly. */
Test(safetensors, untied_lm_head_is_refused, .timeout = 60) {
    cli_tdir t;
    cli_tdir_open(&t);
    gpt_config c = TINY;
    c.vocab = c.padded_vocab = 256;
    gpt_model a, b;
    make_model(&a, &c, 6);
    sattn_err e;
    const char *llmc = cli_tpath(&t, "m.bin"), *dir = cli_tpath(&t, "py");
    cr_assert_eq(ckpt_save(llmc, CKPT_LLMC, &a, NULL, &e), 0, "%s", e.msg);
    run_writer(llmc, dir, "F32", cli_tpath(&t, "r.bin"));
    const char *st = cli_tpath(&t, "py/model.safetensors");
    load_ok(dir, &b);
    gpt_free(&b);
    float x = 0.5f;
    patch(st, data_at(st, "lm_head.weight") + 4 * 100, &x, 4);
    expect_error(st, "tensor 'lm_head.weight' differs from wte.weight");
    gpt_free(&a);
    cli_tdir_close(&t);
}

Test(safetensors, rope_models_and_optimizer_state_are_refused) {
    cli_tdir t;
    cli_tdir_open(&t);
    gpt_config c = TINY;
    c.pos = GPT_POS_ROPE, c.rope_base = 10000, c.rope_scale = 1;
    gpt_model a;
    make_model(&a, &c, 7);
    sattn_err e;
    const char *p = cli_tpath(&t, "r.safetensors");
    cr_assert_eq(ckpt_save(p, CKPT_SAFETENSORS, &a, NULL, &e), -1);
    cr_assert(strstr(e.msg, "holds only learned positions and this model uses RoPE"), "%s", e.msg);
    cr_assert(!cli_file_exists(p));
    gpt_free(&a);
    cli_tdir_close(&t);
}

/* ------------------------------------------------------------------ sattn convert ---- */

Test(safetensors, convert_cli, .timeout = 120) {
    cli_tdir t;
    cli_tdir_open(&t);
    gpt_model a;
    make_model(&a, &TINY, 8);
    sattn_err e;
    const char *ck = cli_tpath(&t, "m.ckpt"), *hf = cli_tpath(&t, "hf/"), *st = cli_tpath(&t, "x.safetensors");
    cr_assert_eq(ckpt_save(ck, CKPT_SATTN, &a, NULL, &e), 0, "%s", e.msg);
    const char *to_hf[] = {"convert", "--in", ck, "--out", hf, "--dtype", "bf16", NULL};
    char *out = cli_expect_ok(to_hf);
    cr_assert(strstr(out, "(hf, bf16): layers 2, heads 2, channels 16, context 16, vocab 300"), "%s", out);
    free(out);
    const char *back[] = {"convert", "--in", hf, "--out", st, NULL};
    free(cli_expect_ok(back));
    gpt_model b;
    load_ok(st, &b);
    for (size_t i = 0; i < b.num_params; i++)
        cr_assert_eq(b.params_mem[i], stf_bf16_to_f32(stf_f32_to_bf16(a.params_mem[i])), "%zu", i);
    gpt_free(&b);
    const char *bad_ext[] = {"convert", "--in", ck, "--out", cli_tpath(&t, "m.foo"), NULL};
    cli_expect_fail(bad_ext, "cannot tell the format from the name", 0);
    const char *bad_dt[] = {"convert", "--in", ck, "--out", cli_tpath(&t, "m.bin"), "--dtype", "f16", NULL};
    cli_expect_fail(bad_dt, "--dtype f16: the llmc format holds float32 only", 0);
    const char *bad_fmt[] = {"convert", "--in", ck, "--out", cli_tpath(&t, "m.bin"), "--format", "onnx", NULL};
    cli_expect_fail(bad_fmt, "--format", 0);
    const char *missing[] = {"convert", "--in", cli_tpath(&t, "none"), "--out", cli_tpath(&t, "n.bin"), NULL};
    cli_expect_fail(missing, "none", 0);
    const char *file_as_dir[] = {"convert", "--in", ck, "--out", ck, "--format", "hf", NULL};
    cli_expect_fail(file_as_dir, "not a folder", 0);
    cli_assert_no_output(t.dir, "m.bin");
    cli_assert_no_output(t.dir, "n.bin");
    const char *help[] = {"convert", "--help", NULL};
    out = cli_expect_ok(help);
    cr_assert(strstr(out, "--dtype") && strstr(out, ".safetensors"), "%s", out);
    free(out);
    gpt_free(&a);
    cli_tdir_close(&t);
}
