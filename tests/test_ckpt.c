/* Tests for ckpt: bit-exact round trips in both formats, and that every damaged
 * file (truncated, trailing bytes, wrong magic or version, bad dimension,
 * corrupt payload) is a one-line error naming the file, never a misread; and
 * that a failed save leaves nothing under the real name. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_util.h"
#include "sattn/ckpt.h"

static const gpt_config SMALL = {.max_seq = 16, .vocab = 256, .padded_vocab = 256,
                                 .layers = 2, .heads = 2, .channels = 8};

static void fill(float *x, size_t n, rng_t *r) {
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(r);
}

/* A model with random parameters (and random AdamW moments when optim). */
static void make_model(gpt_model *m, uint64_t seed, int optim) {
    rng_t r;
    rng_seed(&r, seed);
    gpt_create(m, &SMALL);
    fill(m->params_mem, m->num_params, &r);
    if (!optim) return;
    m->m_mem = xmalloc_aligned(m->num_params * sizeof(float));
    m->v_mem = xmalloc_aligned(m->num_params * sizeof(float));
    fill(m->m_mem, m->num_params, &r);
    fill(m->v_mem, m->num_params, &r);
}

static void assert_same_config(const gpt_config *a, const gpt_config *b) {
    cr_assert_eq(a->max_seq, b->max_seq);
    cr_assert_eq(a->vocab, b->vocab);
    cr_assert_eq(a->padded_vocab, b->padded_vocab);
    cr_assert_eq(a->layers, b->layers);
    cr_assert_eq(a->heads, b->heads);
    cr_assert_eq(a->channels, b->channels);
}

static void assert_msg_has(const sattn_err *e, const char *a, const char *b) {
    cr_assert_not_null(strstr(e->msg, a), "message '%s' lacks '%s'", e->msg, a);
    cr_assert_not_null(strstr(e->msg, b), "message '%s' lacks '%s'", e->msg, b);
    cr_assert_null(strchr(e->msg, '\n'), "message '%s' is not one line", e->msg);
}

static long file_size(const char *path) {
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    return (long)st.st_size;
}

static void patch_u32(const char *path, long offset, uint32_t v) {
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, offset, SEEK_SET), 0);
    cr_assert_eq(fwrite(&v, sizeof v, 1, f), 1u);
    cr_assert_eq(fclose(f), 0);
}

static void flip_byte(const char *path, long offset) {
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, offset, SEEK_SET), 0);
    int c = fgetc(f);
    cr_assert_neq(c, EOF);
    cr_assert_eq(fseek(f, offset, SEEK_SET), 0);
    cr_assert_eq(fputc(c ^ 0x10, f), c ^ 0x10);
    cr_assert_eq(fclose(f), 0);
}

static void append_bytes(const char *path, size_t n) {
    FILE *f = fopen(path, "ab");
    cr_assert_not_null(f);
    for (size_t i = 0; i < n; i++) cr_assert_neq(fputc(0, f), EOF);
    cr_assert_eq(fclose(f), 0);
}

/* The three kinds of file, with where their header words live. */
typedef struct {
    const char *name;
    ckpt_format fmt;
    int optim;
    long header_bytes;
    int heads_word;
} variant;

static const variant VARIANTS[] = {
    {"sattn", CKPT_SATTN, 0, 256, 6},
    {"sattn+optim", CKPT_SATTN, 1, 256, 6},
    {"llm.c", CKPT_LLMC, 0, 1024, 5},
};
#define N_VARIANTS ((int)(sizeof VARIANTS / sizeof VARIANTS[0]))

static void save_variant(const variant *v, const char *path) {
    gpt_model m;
    make_model(&m, 11, v->optim);
    train_state st = {.has_optim = v->optim, .step = 3};
    rng_seed(&st.rng, 5);
    sattn_err e = {{0}};
    cr_assert_eq(ckpt_save(path, v->fmt, &m, &st, &e), 0, "%s: %s", v->name, e.msg);
    gpt_free(&m);
}

/* Loading must fail, name the file, say `word`, and leave the model empty. */
static void expect_load_error(const variant *v, const char *path, const char *word) {
    gpt_model m;
    train_state st = {0};
    sattn_err e = {{0}};
    cr_assert_eq(ckpt_load(path, &m, &st, &e), -1, "%s: damaged file loaded", v->name);
    assert_msg_has(&e, path, word);
    cr_assert_null(m.params_mem);
}

Test(ckpt, native_round_trip_without_optimizer) {
    tmp_place t;
    tmp_open(&t, "m.ckpt");
    gpt_model a, b;
    make_model(&a, 1, 0);
    train_state sa = {.has_optim = 0, .step = 17}, sb;
    rng_seed(&sa.rng, 0x123456789abcdefULL);
    sattn_err e = {{0}};
    cr_assert_eq(ckpt_save(t.path, CKPT_SATTN, &a, &sa, &e), 0, "%s", e.msg);
    cr_assert_eq(file_size(t.path), 256 + 4 * (long)a.num_params);
    cr_assert_eq(ckpt_load(t.path, &b, &sb, &e), 0, "%s", e.msg);
    assert_same_config(&a.cfg, &b.cfg);
    cr_assert_eq(b.num_params, a.num_params);
    cr_assert_arr_eq(b.params_mem, a.params_mem, a.num_params * sizeof(float));
    cr_assert_null(b.m_mem);
    cr_assert_null(b.v_mem);
    cr_assert_eq(sb.has_optim, 0);
    cr_assert_eq(sb.step, 17);
    cr_assert_eq(sb.rng.state, sa.rng.state);
    cr_assert_eq(b.params.lnfb, b.params_mem + b.num_params - 8, "tensor pointers not set");
    gpt_free(&a);
    gpt_free(&b);
    tmp_close(&t);
}

Test(ckpt, native_round_trip_with_optimizer) {
    tmp_place t;
    tmp_open(&t, "m.ckpt");
    gpt_model a, b;
    make_model(&a, 2, 1);
    train_state sa = {.has_optim = 1, .step = 123456}, sb;
    rng_seed(&sa.rng, 0xfedcba9876543210ULL); /* both 32-bit halves matter */
    sattn_err e = {{0}};
    cr_assert_eq(ckpt_save(t.path, CKPT_SATTN, &a, &sa, &e), 0, "%s", e.msg);
    cr_assert_eq(file_size(t.path), 256 + 12 * (long)a.num_params);
    cr_assert_eq(ckpt_load(t.path, &b, &sb, &e), 0, "%s", e.msg);
    size_t bytes = a.num_params * sizeof(float);
    cr_assert_arr_eq(b.params_mem, a.params_mem, bytes);
    cr_assert_not_null(b.m_mem);
    cr_assert_not_null(b.v_mem);
    cr_assert_arr_eq(b.m_mem, a.m_mem, bytes);
    cr_assert_arr_eq(b.v_mem, a.v_mem, bytes);
    cr_assert_eq(sb.has_optim, 1);
    cr_assert_eq(sb.step, 123456);
    cr_assert_eq(sb.rng.state, sa.rng.state);
    gpt_free(&a);
    gpt_free(&b);
    tmp_close(&t);
}

Test(ckpt, native_without_state_and_null_state_on_load) {
    tmp_place t;
    tmp_open(&t, "m.ckpt");
    gpt_model a, b;
    make_model(&a, 3, 1); /* moments present but not asked for: not saved */
    sattn_err e = {{0}};
    cr_assert_eq(ckpt_save(t.path, CKPT_SATTN, &a, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(file_size(t.path), 256 + 4 * (long)a.num_params);
    cr_assert_eq(ckpt_load(t.path, &b, NULL, &e), 0, "%s", e.msg);
    cr_assert_arr_eq(b.params_mem, a.params_mem, a.num_params * sizeof(float));
    cr_assert_null(b.m_mem);
    gpt_free(&a);
    gpt_free(&b);
    tmp_close(&t);
}

Test(ckpt, llmc_round_trip) {
    tmp_place t;
    tmp_open(&t, "gpt2.bin");
    gpt_model a, b;
    make_model(&a, 4, 0);
    sattn_err e = {{0}};
    cr_assert_eq(ckpt_save(t.path, CKPT_LLMC, &a, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(file_size(t.path), 1024 + 4 * (long)a.num_params);
    train_state sb = {.has_optim = 7, .step = 7};
    cr_assert_eq(ckpt_load(t.path, &b, &sb, &e), 0, "%s", e.msg);
    assert_same_config(&a.cfg, &b.cfg);
    cr_assert_arr_eq(b.params_mem, a.params_mem, a.num_params * sizeof(float));
    cr_assert_null(b.m_mem);
    cr_assert_null(b.v_mem);
    cr_assert_eq(sb.has_optim, 0);
    cr_assert_eq(sb.step, 0);
    gpt_free(&a);
    gpt_free(&b);
    tmp_close(&t);
}

/* llm.c's header order is maxT, V, L, NH, C, Vp: read back distinct values in place. */
Test(ckpt, llmc_header_layout) {
    tmp_place t;
    tmp_open(&t, "gpt2.bin");
    gpt_config c = {.max_seq = 24, .vocab = 300, .padded_vocab = 384, .layers = 3, .heads = 4,
                    .channels = 16};
    gpt_model a;
    gpt_create(&a, &c);
    sattn_err e = {{0}};
    cr_assert_eq(ckpt_save(t.path, CKPT_LLMC, &a, NULL, &e), 0, "%s", e.msg);
    FILE *f = fopen(t.path, "rb");
    cr_assert_not_null(f);
    int32_t h[256];
    cr_assert_eq(fread(h, sizeof h, 1, f), 1u);
    fclose(f);
    int32_t want[8] = {20240326, 3, 24, 300, 3, 4, 16, 384};
    cr_assert_arr_eq(h, want, sizeof want);
    for (int i = 8; i < 256; i++) cr_assert_eq(h[i], 0);
    gpt_free(&a);
    tmp_close(&t);
}

Test(ckpt, truncated_file) {
    for (int i = 0; i < N_VARIANTS; i++) {
        tmp_place t;
        tmp_open(&t, "m.ckpt");
        save_variant(&VARIANTS[i], t.path);
        long n = file_size(t.path);
        cr_assert_eq(truncate(t.path, n - 4), 0);
        expect_load_error(&VARIANTS[i], t.path, "truncated");
        char want[32];
        snprintf(want, sizeof want, "expected %ld", n);
        expect_load_error(&VARIANTS[i], t.path, want);
        cr_assert_eq(truncate(t.path, 100), 0); /* inside the header */
        expect_load_error(&VARIANTS[i], t.path, "truncated");
        tmp_close(&t);
    }
}

Test(ckpt, trailing_bytes) {
    for (int i = 0; i < N_VARIANTS; i++) {
        tmp_place t;
        tmp_open(&t, "m.ckpt");
        save_variant(&VARIANTS[i], t.path);
        append_bytes(t.path, 1);
        expect_load_error(&VARIANTS[i], t.path, "size mismatch");
        tmp_close(&t);
    }
}

Test(ckpt, wrong_magic) {
    for (int i = 0; i < N_VARIANTS; i++) {
        tmp_place t;
        tmp_open(&t, "m.ckpt");
        save_variant(&VARIANTS[i], t.path);
        patch_u32(t.path, 0, 0xdeadbeef);
        expect_load_error(&VARIANTS[i], t.path, "not a checkpoint");
        tmp_close(&t);
    }
}

Test(ckpt, wrong_version) {
    for (int i = 0; i < N_VARIANTS; i++) {
        tmp_place t;
        tmp_open(&t, "m.ckpt");
        save_variant(&VARIANTS[i], t.path);
        patch_u32(t.path, 4, 7);
        expect_load_error(&VARIANTS[i], t.path,
                          VARIANTS[i].fmt == CKPT_LLMC ? "expected version 3"
                                                       : "expected version 1, 2 or 3");
        tmp_close(&t);
    }
}

Test(ckpt, bad_dimension_in_header) {
    for (int i = 0; i < N_VARIANTS; i++) {
        tmp_place t;
        tmp_open(&t, "m.ckpt");
        save_variant(&VARIANTS[i], t.path);
        patch_u32(t.path, 4L * VARIANTS[i].heads_word, 3); /* 3 does not divide C = 8 */
        expect_load_error(&VARIANTS[i], t.path, "heads");
        patch_u32(t.path, 4L * VARIANTS[i].heads_word, 0xffffffffu); /* -1 */
        expect_load_error(&VARIANTS[i], t.path, "heads");
        tmp_close(&t);
    }
}

/* In llm.c's format (no checksum) a dimension that passes the checks but disagrees with
 * the payload is caught by size only when the size changes; a size-neutral edit (heads
 * 2 -> 4) loads as another model, which is the format's limit. */
Test(ckpt, llmc_consistent_but_wrong_dimension_caught_by_size) {
    const variant *v = &VARIANTS[2];
    tmp_place t;
    tmp_open(&t, "m.ckpt");
    save_variant(v, t.path);
    patch_u32(t.path, 4L * v->heads_word, 4); /* 4 divides 8 */
    gpt_model m;
    sattn_err e = {{0}};
    cr_assert_eq(ckpt_load(t.path, &m, NULL, &e), 0, "%s: %s", v->name, e.msg);
    gpt_free(&m);
    patch_u32(t.path, 4L * v->heads_word + 4, 16); /* channels 8 -> 16 */
    expect_load_error(v, t.path, "truncated");
    tmp_close(&t);
}

/* Version 2 covers the whole header: a size-neutral edit of any field (heads 2 -> 4,
 * vocab 256 -> 255, step, sampler state, has_schedule with a zero schedule) fails the
 * checksum instead of loading as a different model or run. */
Test(ckpt, native_header_edits_fail_checksum) {
    const struct { int word; uint32_t v; } edits[] = {{6, 4}, {3, 255}, {9, 4}, {10, 1}, {11, 1}};
    for (int i = 0; i < 2; i++)
        for (size_t j = 0; j < sizeof edits / sizeof edits[0]; j++) {
            tmp_place t;
            tmp_open(&t, "m.ckpt");
            save_variant(&VARIANTS[i], t.path);
            patch_u32(t.path, 4L * edits[j].word, edits[j].v);
            expect_load_error(&VARIANTS[i], t.path, "checksum mismatch");
            tmp_close(&t);
        }
}

Test(ckpt, native_reserved_words_must_be_zero) {
    for (int w = 33; w < 64; w += 10) { /* version 3: words 30..32 hold the positions */
        tmp_place t;
        tmp_open(&t, "m.ckpt");
        save_variant(&VARIANTS[1], t.path);
        patch_u32(t.path, 4L * w, 1);
        char want[64];
        snprintf(want, sizeof want, "header word %d = 0x00000001, expected 0 (reserved)", w);
        expect_load_error(&VARIANTS[1], t.path, want);
        tmp_close(&t);
    }
    tmp_place t;
    tmp_open(&t, "m.ckpt");
    save_variant(&VARIANTS[1], t.path); /* no schedule: its words must be 0 too */
    patch_u32(t.path, 4L * 20, 5);
    expect_load_error(&VARIANTS[1], t.path, "expected 0 (no schedule is stored)");
    patch_u32(t.path, 4L * 20, 0);
    patch_u32(t.path, 4L * 16, 2);
    expect_load_error(&VARIANTS[1], t.path, "has_schedule = 2, expected 0 or 1");
    tmp_close(&t);
}

static uint32_t word_at(const uint8_t *b, int w) {
    uint32_t v;
    memcpy(&v, b + 4 * w, 4);
    return v;
}

static uint32_t fbits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

/* The schedule goes into words 16..29 and comes back exactly; the file is byte-identical
 * when saved again from what was loaded. */
Test(ckpt, native_schedule_round_trip) {
    tmp_place t, t2;
    tmp_open(&t, "m.ckpt");
    tmp_open(&t2, "n.ckpt");
    gpt_model a, b;
    make_model(&a, 4, 1);
    train_state sa = {.has_optim = 1, .step = 9, .has_schedule = 1,
                      .sched = {12, 64, 2000, 100, 1e-3f, 1e-4f, 1.0f, 0.1f, 0.9f, 0.99f, 1e-8f,
                                0x1122334455667788ULL, {0}, 0, 7, 0xa1b2c3d4e5f60718ULL}}, sb;
    rng_seed(&sa.rng, 77);
    sattn_err e = {{0}};
    cr_assert_eq(ckpt_save(t.path, CKPT_SATTN, &a, &sa, &e), 0, "%s", e.msg);
    size_t len;
    uint8_t *raw = (uint8_t *)cli_slurp(t.path, &len);
    uint32_t want[] = {1, 12, 64, 2000, 100, fbits(1e-3f), fbits(1e-4f), fbits(1.0f),
                       fbits(0.1f), fbits(0.9f), fbits(0.99f), fbits(1e-8f), 0x55667788u,
                       0x11223344u};
    cr_assert_eq(word_at(raw, 1), 3u);
    for (int w = 0; w < 14; w++) cr_assert_eq(word_at(raw, 16 + w), want[w], "word %d", 16 + w);
    /* a native sparse run: the dense warm-up and the plan's hash (words 37..39) */
    cr_assert_eq(word_at(raw, 37), 7u);
    cr_assert_eq(word_at(raw, 38), 0xe5f60718u);
    cr_assert_eq(word_at(raw, 39), 0xa1b2c3d4u);
    for (int w = 30; w < 64; w++)
        if (w < 37 || w > 39) cr_assert_eq(word_at(raw, w), 0u, "word %d", w);
    free(raw);
    cr_assert_eq(ckpt_load(t.path, &b, &sb, &e), 0, "%s", e.msg);
    cr_assert_eq(sb.has_schedule, 1);
    cr_assert_eq(sb.sched.dense_warmup, 7);
    cr_assert_eq(sb.sched.plan_hash, 0xa1b2c3d4e5f60718ULL);
    cr_assert_arr_eq(&sb.sched, &sa.sched, sizeof sa.sched);
    cr_assert_eq(ckpt_save(t2.path, CKPT_SATTN, &b, &sb, &e), 0, "%s", e.msg);
    cr_assert(cli_files_equal(t.path, t2.path));
    gpt_free(&a);
    gpt_free(&b);
    tmp_close(&t);
    tmp_close(&t2);
}

/* A version-1 file written by hand (checksum over the payload only, words 16..63 not
 * looked at) still loads, with no schedule. */
Test(ckpt, native_version1_still_loads) {
    tmp_place t;
    tmp_open(&t, "v1.ckpt");
    gpt_model a, b;
    make_model(&a, 8, 1);
    size_t bytes = a.num_params * sizeof(float);
    uint64_t sum = fnv1a64(a.params_mem, bytes, FNV1A64_INIT), np = a.num_params;
    sum = fnv1a64(a.v_mem, bytes, fnv1a64(a.m_mem, bytes, sum));
    uint32_t h[64] = {CKPT_MAGIC, 1, 16, 256, 256, 2, 2, 8, 1, 42, 0x9abcdef0u, 0x12345678u,
                      (uint32_t)np, (uint32_t)(np >> 32), (uint32_t)sum, (uint32_t)(sum >> 32)};
    h[40] = 0xdeadbeef;
    FILE *f = fopen(t.path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(h, sizeof h, 1, f), 1u);
    cr_assert_eq(fwrite(a.params_mem, bytes, 1, f), 1u);
    cr_assert_eq(fwrite(a.m_mem, bytes, 1, f), 1u);
    cr_assert_eq(fwrite(a.v_mem, bytes, 1, f), 1u);
    cr_assert_eq(fclose(f), 0);
    train_state sb;
    sattn_err e = {{0}};
    cr_assert_eq(ckpt_load(t.path, &b, &sb, &e), 0, "%s", e.msg);
    cr_assert_arr_eq(b.params_mem, a.params_mem, bytes);
    cr_assert_arr_eq(b.v_mem, a.v_mem, bytes);
    cr_assert_eq(sb.has_optim, 1);
    cr_assert_eq(sb.step, 42);
    cr_assert_eq(sb.rng.state, 0x123456789abcdef0ULL);
    cr_assert_eq(sb.has_schedule, 0);
    gpt_free(&b);
    flip_byte(t.path, 256 + 5); /* the old checksum still guards the payload */
    expect_load_error(&VARIANTS[1], t.path, "checksum mismatch");
    gpt_free(&a);
    tmp_close(&t);
}

/* Saves a (valid checksum) and expects loading to fail with exactly `want` after "path: ". */
static void expect_nonfinite(gpt_model *a, ckpt_format fmt, int optim, const char *want) {
    tmp_place t;
    tmp_open(&t, "nan.ckpt");
    train_state st = {.has_optim = optim};
    sattn_err e = {{0}};
    cr_assert_eq(ckpt_save(t.path, fmt, a, &st, &e), 0, "%s", e.msg);
    gpt_model b;
    cr_assert_eq(ckpt_load(t.path, &b, NULL, &e), -1, "a non-finite model loaded");
    char full[512];
    snprintf(full, sizeof full, "%s: %s", t.path, want);
    cr_assert_str_eq(e.msg, full);
    cr_assert_null(b.params_mem);
    tmp_close(&t);
}

Test(ckpt, nonfinite_parameters_are_refused_naming_the_tensor) {
    gpt_model a;
    make_model(&a, 3, 1);
    size_t per_layer = 3 * 8 * 8; /* qkvw is (L, 3C, C) */
    a.params.qkvw[per_layer + 17] = NAN;
    expect_nonfinite(&a, CKPT_SATTN, 0,
                     "tensor qkvw (layer 1) holds NaN at element 17, expected finite parameters");
    expect_nonfinite(&a, CKPT_LLMC, 0,
                     "tensor qkvw (layer 1) holds NaN at element 17, expected finite parameters");
    a.params.qkvw[per_layer + 17] = 0;
    a.params.wte[5] = INFINITY;
    expect_nonfinite(&a, CKPT_LLMC, 0, "tensor wte holds +Inf at element 5, expected finite parameters");
    a.params.wte[5] = 0;
    a.v_mem[a.num_params - 8 + 3] = -INFINITY; /* lnfb, the last tensor (C = 8) */
    expect_nonfinite(&a, CKPT_SATTN, 1,
                     "AdamW second moment of tensor lnfb holds -Inf at element 3, expected finite values");
    a.v_mem[a.num_params - 8 + 3] = 0;
    a.m_mem[8 * 256 + 16 * 8 + 2 * 8 + 1] = NAN; /* ln1b: after wte (Vp C), wpe (T C), ln1w (L C) */
    expect_nonfinite(&a, CKPT_SATTN, 1,
                     "AdamW first moment of tensor ln1b (layer 0) holds NaN at element 1, expected finite values");
    gpt_free(&a);
}

Test(ckpt, native_corrupt_payload_fails_checksum) {
    for (int i = 0; i < 2; i++) { /* the two native variants */
        tmp_place t;
        tmp_open(&t, "m.ckpt");
        save_variant(&VARIANTS[i], t.path);
        flip_byte(t.path, 256 + 1000);
        expect_load_error(&VARIANTS[i], t.path, "checksum mismatch: file is corrupt");
        flip_byte(t.path, 256 + 1000);
        flip_byte(t.path, file_size(t.path) - 1); /* last byte: v when optim */
        expect_load_error(&VARIANTS[i], t.path, "checksum mismatch");
        tmp_close(&t);
    }
}

/* llm.c's format carries no checksum: a flipped payload byte loads, and changes
 * exactly that one parameter (documents the limit; nothing else is misread). */
Test(ckpt, llmc_corrupt_payload_is_undetectable_but_local) {
    tmp_place t;
    tmp_open(&t, "gpt2.bin");
    gpt_model a, b;
    make_model(&a, 11, 0);
    sattn_err e = {{0}};
    cr_assert_eq(ckpt_save(t.path, CKPT_LLMC, &a, NULL, &e), 0, "%s", e.msg);
    flip_byte(t.path, 1024 + 4 * 100 + 3);
    cr_assert_eq(ckpt_load(t.path, &b, NULL, &e), 0, "%s", e.msg);
    for (size_t i = 0; i < a.num_params; i++)
        cr_assert_eq(memcmp(&a.params_mem[i], &b.params_mem[i], 4) != 0, i == 100, "param %zu", i);
    gpt_free(&a);
    gpt_free(&b);
    tmp_close(&t);
}

Test(ckpt, native_bad_state_fields) {
    tmp_place t;
    tmp_open(&t, "m.ckpt");
    save_variant(&VARIANTS[0], t.path);
    patch_u32(t.path, 4 * 8, 2);
    expect_load_error(&VARIANTS[0], t.path, "has_optim");
    patch_u32(t.path, 4 * 8, 0);
    patch_u32(t.path, 4 * 9, 0x80000000u);
    expect_load_error(&VARIANTS[0], t.path, "step");
    tmp_close(&t);
}

Test(ckpt, token_file_and_tiny_file_are_not_checkpoints) {
    tmp_place t;
    tmp_open(&t, "x.bin");
    FILE *f = fopen(t.path, "wb");
    int32_t tok_head[256] = {20240520, 1, 0};
    fwrite(tok_head, sizeof tok_head, 1, f);
    fclose(f);
    expect_load_error(&VARIANTS[0], t.path, "token file");
    cr_assert_eq(truncate(t.path, 2), 0);
    expect_load_error(&VARIANTS[0], t.path, "too small");
    tmp_close(&t);
}

Test(ckpt, missing_file) {
    tmp_place t;
    tmp_open(&t, "absent.ckpt");
    expect_load_error(&VARIANTS[0], t.path, "cannot open");
    tmp_close(&t);
}

Test(ckpt, save_into_missing_directory_fails_cleanly) {
    tmp_place t;
    tmp_open(&t, "nodir/m.ckpt");
    gpt_model m;
    make_model(&m, 5, 0);
    sattn_err e = {{0}};
    cr_assert_eq(ckpt_save(t.path, CKPT_SATTN, &m, NULL, &e), -1);
    assert_msg_has(&e, t.path, "cannot create");
    cr_assert_neq(access(t.path, F_OK), 0);
    cr_assert_eq(cli_dir_entries(t.dir), 0);
    gpt_free(&m);
    tmp_close(&t);
}

Test(ckpt, refused_saves_create_nothing) {
    tmp_place t;
    tmp_open(&t, "m.ckpt");
    gpt_model m;
    make_model(&m, 6, 0);
    train_state st = {.has_optim = 1, .step = 1};
    sattn_err e = {{0}};
    cr_assert_eq(ckpt_save(t.path, CKPT_SATTN, &m, &st, &e), -1); /* no moments yet */
    assert_msg_has(&e, t.path, "AdamW moments");
    cr_assert_eq(ckpt_save(t.path, CKPT_LLMC, &m, &st, &e), -1); /* format has no room */
    assert_msg_has(&e, t.path, "optimizer state");
    cr_assert_eq(cli_dir_entries(t.dir), 0);
    gpt_free(&m);
    tmp_close(&t);
}

/* A write that fails part way (here: the file size limit) leaves neither the
 * real name nor the temporary file behind, and keeps an older checkpoint intact. */
Test(ckpt, failed_write_leaves_nothing) {
    tmp_place t;
    tmp_open(&t, "m.ckpt");
    gpt_model m;
    make_model(&m, 7, 1);
    sattn_err e = {{0}};
    signal(SIGXFSZ, SIG_IGN); /* Criterion forks per test: this stays in this test */
    struct rlimit lim = {.rlim_cur = 8192, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    train_state st = {.has_optim = 1};
    cr_assert_eq(ckpt_save(t.path, CKPT_SATTN, &m, &st, &e), -1);
    assert_msg_has(&e, t.path, "write failed");
    cr_assert_eq(cli_dir_entries(t.dir), 0);
    char old[] = "older checkpoint";
    FILE *f = fopen(t.path, "wb");
    fwrite(old, 1, sizeof old, f);
    fclose(f);
    cr_assert_eq(ckpt_save(t.path, CKPT_LLMC, &m, NULL, &e), -1);
    cr_assert_eq(file_size(t.path), (long)sizeof old);
    cr_assert_eq(cli_dir_entries(t.dir), 1);
    gpt_free(&m);
    tmp_close(&t);
}

/* ------------------------------------------------------------------ version 3: positions */

static const gpt_config ROPE = {.max_seq = 16, .vocab = 256, .padded_vocab = 256, .layers = 2,
                                .heads = 2, .channels = 8, .pos = GPT_POS_ROPE,
                                .rope_base = 500.0f, .rope_scale = 0.25f};

static void make_rope_model(gpt_model *m, uint64_t seed) {
    rng_t r;
    rng_seed(&r, seed);
    gpt_create(m, &ROPE);
    fill(m->params_mem, m->num_params, &r);
}

/* Recomputes a native file's whole-file checksum (words 14..15 read as 0) after an edit, so
 * the check behind it is what fails. */
static void refix_checksum(const char *path) {
    size_t len;
    uint8_t *raw = (uint8_t *)cli_slurp(path, &len);
    memset(raw + 56, 0, 8);
    uint64_t h = fnv1a64(raw, len, FNV1A64_INIT);
    free(raw);
    patch_u32(path, 56, (uint32_t)h);
    patch_u32(path, 60, (uint32_t)(h >> 32));
}

/* A RoPE model: version 3, pos/base/scale in words 30..32, no wpe (the payload is 16 x 8
 * floats shorter than the learned model's), loads back exactly and saves byte-identically. */
Test(ckpt, v3_rope_round_trip) {
    tmp_place t, t2;
    tmp_open(&t, "r.ckpt");
    tmp_open(&t2, "r2.ckpt");
    gpt_model a, b, l;
    make_rope_model(&a, 21);
    gpt_create(&l, &SMALL);
    cr_assert_eq(a.num_params + 16 * 8, l.num_params);
    gpt_free(&l);
    sattn_err e = {{0}};
    cr_assert_eq(ckpt_save(t.path, CKPT_SATTN, &a, NULL, &e), 0, "%s", e.msg);
    size_t len;
    uint8_t *raw = (uint8_t *)cli_slurp(t.path, &len);
    cr_assert_eq(word_at(raw, 1), 3u);
    cr_assert_eq(word_at(raw, 30), 1u);
    cr_assert_eq(word_at(raw, 31), fbits(500.0f));
    cr_assert_eq(word_at(raw, 32), fbits(0.25f));
    cr_assert_eq(len, 256 + a.num_params * 4);
    free(raw);
    cr_assert_eq(ckpt_load(t.path, &b, NULL, &e), 0, "%s", e.msg);
    assert_same_config(&a.cfg, &b.cfg);
    cr_assert_eq(b.cfg.pos, GPT_POS_ROPE);
    cr_assert_eq(b.cfg.rope_base, 500.0f);
    cr_assert_eq(b.cfg.rope_scale, 0.25f);
    cr_assert_arr_eq(b.params_mem, a.params_mem, a.num_params * sizeof(float));
    cr_assert_eq(ckpt_save(t2.path, CKPT_SATTN, &b, NULL, &e), 0, "%s", e.msg);
    cr_assert(cli_files_equal(t.path, t2.path));
    gpt_free(&a);
    gpt_free(&b);
    tmp_close(&t);
    tmp_close(&t2);
}

/* A learned model in version 3 has words 30..32 zero and loads as learned with base and
 * scale 0; the same file relabelled version 2 (what earlier sattn wrote) loads the same. */
Test(ckpt, v2_still_loads_as_learned) {
    tmp_place t;
    tmp_open(&t, "m.ckpt");
    save_variant(&VARIANTS[1], t.path);
    patch_u32(t.path, 4, 2);
    refix_checksum(t.path);
    gpt_model a, b;
    make_model(&a, 11, 1);
    train_state st;
    sattn_err e = {{0}};
    cr_assert_eq(ckpt_load(t.path, &b, &st, &e), 0, "%s", e.msg);
    cr_assert_eq(b.cfg.pos, GPT_POS_LEARNED);
    cr_assert_eq(b.cfg.rope_base, 0.0f);
    cr_assert_eq(b.cfg.rope_scale, 0.0f);
    cr_assert_eq(st.step, 3);
    cr_assert_arr_eq(b.params_mem, a.params_mem, a.num_params * sizeof(float));
    gpt_free(&b);
    /* version 2 has no position words: word 30 is reserved there */
    patch_u32(t.path, 4 * 30, 1);
    refix_checksum(t.path);
    expect_load_error(&VARIANTS[1], t.path, "header word 30 = 0x00000001, expected 0 (reserved)");
    gpt_free(&a);
    tmp_close(&t);
}

/* Each bad position field of a version-3 header (checksum made valid) is a one-line error. */
Test(ckpt, v3_bad_position_fields) {
    const struct { int rope; int word; uint32_t v; const char *needle; } bad[] = {
        {1, 30, 2, "pos = 2, expected 0 (learned) or 1 (rope)"},
        {1, 31, 0, "rope base 0, expected a finite number > 0"},
        {1, 31, 0x7fc00000u, "rope base nan"},
        {1, 31, 0xc0000000u, "rope base -2"},
        {1, 32, 0x7f800000u, "rope scale inf"},
        {1, 32, 0, "rope scale 0"},
        {0, 31, 0x3f800000u, "in a learned-position checkpoint, expected 0"},
        {0, 30, 1, "rope base 0"}, /* learned file marked RoPE: no base */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tmp_place t;
        tmp_open(&t, "m.ckpt");
        if (bad[i].rope) {
            gpt_model a;
            make_rope_model(&a, 22);
            sattn_err e = {{0}};
            cr_assert_eq(ckpt_save(t.path, CKPT_SATTN, &a, NULL, &e), 0, "%s", e.msg);
            gpt_free(&a);
        } else {
            save_variant(&VARIANTS[0], t.path);
        }
        patch_u32(t.path, 4L * bad[i].word, bad[i].v);
        refix_checksum(t.path);
        expect_load_error(&VARIANTS[0], t.path, bad[i].needle);
        tmp_close(&t);
    }
}

/* A RoPE model whose head dim is odd cannot be written (gpt_config_check refuses it first),
 * but a header that says so is refused on load. */
Test(ckpt, v3_rope_odd_head_dim_refused) {
    tmp_place t;
    tmp_open(&t, "m.ckpt");
    gpt_model a;
    make_rope_model(&a, 23);
    sattn_err e = {{0}};
    cr_assert_eq(ckpt_save(t.path, CKPT_SATTN, &a, NULL, &e), 0, "%s", e.msg);
    gpt_free(&a);
    patch_u32(t.path, 4 * 6, 8); /* heads 2 -> 8: head dim 1 */
    refix_checksum(t.path);
    expect_load_error(&VARIANTS[0], t.path, "odd");
    tmp_close(&t);
}

/* llm.c's format holds only learned positions: saving a RoPE model there is one line and
 * creates nothing. */
Test(ckpt, llmc_refuses_rope) {
    tmp_place t;
    tmp_open(&t, "m.bin");
    gpt_model a;
    make_rope_model(&a, 24);
    sattn_err e = {{0}};
    cr_assert_eq(ckpt_save(t.path, CKPT_LLMC, &a, NULL, &e), -1);
    assert_msg_has(&e, t.path, "holds only learned positions");
    cr_assert(!cli_file_exists(t.path));
    gpt_free(&a);
    tmp_close(&t); /* fails on any leftover (temporary) file */
}
