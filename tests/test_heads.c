/* Tests for the sparse heads: creation (counts, dense heads without parameters)
 * and the heads file: a bit-exact round trip of specs and parameters for a mix
 * of dense/index/block/pos heads with softmax and mlp functions, and a one-line
 * error naming the file for every damaged or mismatched file (truncated,
 * trailing bytes, wrong magic or version, corrupt payload, dims that differ
 * from the model, a spec inconsistent with its parameter counts); a failed or
 * refused save leaves no file. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_util.h"
#include "sattn/heads.h"

#define HEADER_BYTES 256
#define SPEC_BYTES 64

/* 3 layers x 4 heads of 8 dims. */
static const gpt_config CFG = {.max_seq = 16, .vocab = 256, .padded_vocab = 256,
                               .layers = 3, .heads = 4, .channels = 32};
#define NHEADS 12

/* ---------------------------------------------------------------- helpers */

static long file_size(const char *path) {
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    return (long)st.st_size;
}

static head_spec make(sel_kind sel, hfn_kind fn) {
    head_spec s = head_spec_default();
    s.sel = sel;
    s.fn = fn;
    return s;
}

/* Every selector with both head functions, dynamic k, switched-off mlp inputs. */
static void mixed_specs(head_spec *s) {
    for (int i = 0; i < NHEADS; i++) s[i] = head_spec_default();
    s[1] = make(SEL_INDEX, HFN_SOFTMAX);
    s[2] = make(SEL_BLOCK, HFN_SOFTMAX);
    s[2].block = 4, s[2].nblocks = 2;
    s[3] = make(SEL_POS, HFN_SOFTMAX);
    s[3].k = 4, s[3].hidden = 8;
    s[4] = make(SEL_INDEX, HFN_MLP);
    s[4].k = 4, s[4].hidden = 16, s[4].tau = 0.9f, s[4].k_min = 2, s[4].rank = 4, s[4].iheads = 2;
    s[5] = make(SEL_POS, HFN_MLP);
    s[5].k = 3, s[5].hidden = 8, s[5].mlp_logits = 0;
    s[6] = make(SEL_BLOCK, HFN_MLP);
    s[6].block = 4, s[6].nblocks = 2, s[6].bounds = 1, s[6].hidden = 8, s[6].mlp_q = 0;
    s[11] = make(SEL_INDEX, HFN_SOFTMAX);
    s[11].rank = 4, s[11].iheads = 2;
}
#define N_SPARSE 7

static void make_heads(sparse_heads *sh, uint64_t seed) {
    head_spec specs[NHEADS];
    mixed_specs(specs);
    rng_t r;
    rng_seed(&r, seed);
    sparse_heads_create(sh, CFG.layers, CFG.heads, CFG.channels / CFG.heads, CFG.max_seq, specs,
                        &r);
}

static void save_heads(const char *path, uint64_t seed) {
    sparse_heads sh;
    make_heads(&sh, seed);
    sattn_err e = {{0}};
    cr_assert_eq(heads_save(path, &sh, &CFG, &e), 0, "%s", e.msg);
    sparse_heads_free(&sh);
}

static int spec_eq(const head_spec *a, const head_spec *b) {
    return a->sel == b->sel && a->fn == b->fn && a->k == b->k && a->k_min == b->k_min &&
           memcmp(&a->tau, &b->tau, sizeof a->tau) == 0 && a->rank == b->rank &&
           a->iheads == b->iheads && a->block == b->block && a->nblocks == b->nblocks &&
           a->bounds == b->bounds && a->hidden == b->hidden && a->mlp_q == b->mlp_q &&
           a->mlp_logits == b->mlp_logits && a->tile == b->tile && a->shared == b->shared && a->cmp == b->cmp;
}

static void assert_msg_has(const sattn_err *e, const char *a, const char *b) {
    cr_assert_null(strchr(e->msg, '\n'), "message spans lines: %s", e->msg);
    cr_assert_not_null(strstr(e->msg, a), "message lacks '%s': %s", a, e->msg);
    if (b) cr_assert_not_null(strstr(e->msg, b), "message lacks '%s': %s", b, e->msg);
}

/* Loading must fail, name the file, say `word`, and leave sh empty. */
static void expect_load_error(const char *path, const gpt_config *expect, const char *word) {
    sparse_heads sh;
    memset(&sh, 0xab, sizeof sh);
    sattn_err e = {{0}};
    cr_assert_eq(heads_load(path, &sh, expect, &e), -1, "damaged file loaded (%s)", word);
    assert_msg_has(&e, path, word);
    cr_assert_null(sh.h);
    cr_assert_eq(sh.layers, 0);
}

static uint8_t *slurp(const char *path, size_t *len) {
    uint8_t *b;
    sattn_err e;
    cr_assert_eq(file_read_all(path, &b, len, &e), 0, "%s", e.msg);
    return b;
}

static void spit(const char *path, const uint8_t *b, size_t len) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static void put32(uint8_t *b, size_t off, uint32_t v) { memcpy(b + off, &v, 4); }

/* The version-2 checksum: the header with its checksum words as 0, then the payload. */
static uint64_t v2_checksum(const uint8_t *b, size_t len) {
    uint8_t z[HEADER_BYTES];
    memcpy(z, b, sizeof z);
    memset(z + 9 * 4, 0, 8);
    return fnv1a64(b + HEADER_BYTES, len - HEADER_BYTES, fnv1a64(z, sizeof z, FNV1A64_INIT));
}

/* Rewrites the header checksum so a deliberately edited file passes it. */
static void fix_checksum(uint8_t *b, size_t len) {
    uint64_t h = v2_checksum(b, len);
    put32(b, 9 * 4, (uint32_t)h);
    put32(b, 10 * 4, (uint32_t)(h >> 32));
}

/* Byte offset of head i's record (its spec words). */
static size_t record_offset(const uint8_t *b, int i) {
    size_t off = HEADER_BYTES;
    for (int j = 0; j < i; j++) {
        uint32_t sel;
        memcpy(&sel, b + off, 4);
        off += SPEC_BYTES;
        if (sel == SEL_DENSE) continue;
        uint64_t n[2];
        memcpy(n, b + off, 16);
        off += 16 + 4 * (n[0] + n[1]);
    }
    return off;
}

/* ---------------------------------------------------------------- creation */

Test(heads, create_counts_and_dense_heads) {
    sparse_heads sh;
    make_heads(&sh, 1);
    head_spec specs[NHEADS];
    mixed_specs(specs);
    int hs = CFG.channels / CFG.heads;
    cr_assert_eq(sparse_heads_count(&sh), N_SPARSE);
    cr_assert(sh.layers == 3 && sh.heads == 4 && sh.hs == hs && sh.max_seq == 16);
    for (int i = 0; i < NHEADS; i++) {
        sparse_head *p = &sh.h[i];
        cr_assert(spec_eq(&p->spec, &specs[i]), "head %d spec", i);
        if (specs[i].sel == SEL_DENSE) {
            cr_assert_null(p->params, "dense head %d has parameters", i);
            cr_assert_eq(p->n_sel + p->n_fn, 0);
            continue;
        }
        int kmax = selector_kmax(&specs[i], CFG.max_seq);
        cr_assert_eq(p->n_sel, selector_param_count(&specs[i], hs, CFG.max_seq), "head %d", i);
        cr_assert_eq(p->n_fn, headfn_param_count(&specs[i], hs, kmax), "head %d", i);
        cr_assert_not_null(p->params);
    }
    cr_assert_gt(sh.h[1].n_sel, 0);  /* index has a selector */
    cr_assert_eq(sh.h[2].n_sel, 0);  /* block has none */
    cr_assert_gt(sh.h[4].n_fn, 0);   /* mlp has a head function */
    cr_assert_eq(sh.h[1].n_fn, 0);   /* softmax has none */
    sparse_heads_free(&sh);
    cr_assert_null(sh.h);
    sparse_heads_free(&sh); /* twice is harmless */
}

Test(heads, create_is_deterministic_per_seed) {
    sparse_heads a, b, c;
    make_heads(&a, 5);
    make_heads(&b, 5);
    make_heads(&c, 6);
    size_t n = a.h[4].n_sel + a.h[4].n_fn;
    cr_assert_eq(memcmp(a.h[4].params, b.h[4].params, n * 4), 0);
    cr_assert_neq(memcmp(a.h[4].params, c.h[4].params, n * 4), 0);
    sparse_heads_free(&a);
    sparse_heads_free(&b);
    sparse_heads_free(&c);
}

/* ---------------------------------------------------------------- round trip */

static void assert_same_heads(const sparse_heads *a, const sparse_heads *b) {
    cr_assert(a->layers == b->layers && a->heads == b->heads && a->hs == b->hs &&
              a->max_seq == b->max_seq);
    for (int i = 0; i < a->layers * a->heads; i++) {
        const sparse_head *p = &a->h[i], *q = &b->h[i];
        cr_assert(spec_eq(&p->spec, &q->spec), "head %d: spec differs", i);
        cr_assert(p->n_sel == q->n_sel && p->n_fn == q->n_fn, "head %d: counts differ", i);
        if (!p->params) {
            cr_assert_null(q->params, "head %d", i);
            continue;
        }
        cr_assert_eq(memcmp(p->params, q->params, (p->n_sel + p->n_fn) * sizeof(float)), 0,
                     "head %d: parameters differ", i);
    }
}

Test(heads, round_trip_is_bit_exact) {
    tmp_place t;
    tmp_open(&t, "h.sparse");
    sparse_heads a, b;
    make_heads(&a, 7);
    a.h[1].params[0] = -0.0f; /* odd values survive bit for bit */
    a.h[1].params[1] = 1e-40f;
    sattn_err e = {{0}};
    cr_assert_eq(heads_save(t.path, &a, &CFG, &e), 0, "%s", e.msg);
    long want = HEADER_BYTES + NHEADS * SPEC_BYTES;
    for (int i = 0; i < NHEADS; i++)
        if (a.h[i].spec.sel != SEL_DENSE) want += 16 + 4 * (long)(a.h[i].n_sel + a.h[i].n_fn);
    cr_assert_eq(file_size(t.path), want);
    cr_assert_eq(heads_load(t.path, &b, &CFG, &e), 0, "%s", e.msg);
    assert_same_heads(&a, &b);
    cr_assert_eq(sparse_heads_count(&b), N_SPARSE);
    sparse_heads_free(&b);
    cr_assert_eq(heads_load(t.path, &b, NULL, &e), 0, "%s", e.msg); /* no model check */
    assert_same_heads(&a, &b);
    sparse_heads_free(&b);
    sparse_heads_free(&a);
    tmp_close(&t);
}

Test(heads, header_layout) {
    tmp_place t;
    tmp_open(&t, "h.sparse");
    save_heads(t.path, 8);
    size_t len;
    uint8_t *b = slurp(t.path, &len);
    uint32_t w[64];
    memcpy(w, b, sizeof w);
    cr_assert_eq(w[0], 0x53444853u);
    cr_assert_eq(memcmp(b, "SHDS", 4), 0);
    uint32_t want[9] = {0x53444853u, 2, 3, 4, 8, 16, 32, 256, N_SPARSE};
    for (int i = 0; i < 9; i++) cr_assert_eq(w[i], want[i], "word %d: %u, expected %u", i, w[i], want[i]);
    uint64_t sum = (uint64_t)w[9] | (uint64_t)w[10] << 32;
    cr_assert_eq(sum, v2_checksum(b, len));
    for (int i = 11; i < 64; i++) cr_assert_eq(w[i], 0, "word %d not 0", i);
    /* Head 4's spec words: index, mlp, k 4, k_min 2, tau 0.9f, rank 4, J 2, ... */
    uint32_t s[16];
    memcpy(s, b + record_offset(b, 4), sizeof s);
    float tau;
    memcpy(&tau, &s[4], 4);
    cr_assert(s[0] == SEL_INDEX && s[1] == HFN_MLP && s[2] == 4 && s[3] == 2 && tau == 0.9f);
    cr_assert(s[5] == 4 && s[6] == 2 && s[10] == 16 && s[11] == 1 && s[12] == 1);
    cr_assert(s[13] == 0 && s[14] == 0 && s[15] == 0);
    free(b);
    tmp_close(&t);
}

/* ---------------------------------------------------------------- damaged files */

Test(heads, truncated_anywhere) {
    tmp_place t;
    tmp_open(&t, "h.sparse");
    save_heads(t.path, 9);
    size_t len;
    uint8_t *b = slurp(t.path, &len);
    size_t cuts[] = {0, 3, 100, HEADER_BYTES, HEADER_BYTES + 10, record_offset(b, 1) + SPEC_BYTES + 8,
                     record_offset(b, 1) + SPEC_BYTES + 20, record_offset(b, 7), len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        spit(t.path, b, cuts[i]);
        expect_load_error(t.path, &CFG, "truncated");
    }
    free(b);
    tmp_close(&t);
}

Test(heads, trailing_bytes) {
    tmp_place t;
    tmp_open(&t, "h.sparse");
    save_heads(t.path, 10);
    size_t len;
    uint8_t *b = slurp(t.path, &len);
    uint8_t *more = xcalloc(len + 4, 1);
    memcpy(more, b, len);
    spit(t.path, more, len + 4);
    expect_load_error(t.path, &CFG, "4 trailing bytes");
    free(more);
    free(b);
    tmp_close(&t);
}

Test(heads, wrong_magic_and_version) {
    tmp_place t;
    tmp_open(&t, "h.sparse");
    save_heads(t.path, 11);
    size_t len;
    uint8_t *b = slurp(t.path, &len);
    put32(b, 0, 0x4e545453u); /* a checkpoint's magic */
    spit(t.path, b, len);
    expect_load_error(t.path, &CFG, "not a sparse heads file");
    put32(b, 0, 0x53444853u);
    put32(b, 4, 3);
    spit(t.path, b, len);
    expect_load_error(t.path, &CFG, "version 3, expected version 1 or 2");
    free(b);
    tmp_close(&t);
}

Test(heads, corrupt_payload_fails_checksum) {
    tmp_place t;
    tmp_open(&t, "h.sparse");
    save_heads(t.path, 12);
    size_t len;
    uint8_t *b = slurp(t.path, &len);
    size_t where[] = {len - 1, record_offset(b, 4) + SPEC_BYTES + 16 + 5, record_offset(b, 1) + 8};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        b[where[i]] ^= 0x10;
        spit(t.path, b, len);
        expect_load_error(t.path, &CFG, "checksum mismatch: file is corrupt");
        b[where[i]] ^= 0x10;
    }
    free(b);
    tmp_close(&t);
}

Test(heads, dims_differ_from_model) {
    tmp_place t;
    tmp_open(&t, "h.sparse");
    save_heads(t.path, 13);
    gpt_config c = CFG;
    c.layers = 6;
    expect_load_error(t.path, &c, "heads file was made for a model with 3 layers, this model has 6");
    c = CFG, c.heads = 8;
    expect_load_error(t.path, &c, "with 4 heads, this model has 8");
    c = CFG, c.channels = 64;
    expect_load_error(t.path, &c, "with 32 channels, this model has 64");
    c = CFG, c.max_seq = 32;
    expect_load_error(t.path, &c, "16 positions");
    c = CFG, c.vocab = 50257;
    expect_load_error(t.path, &c, "256 vocabulary entries, this model has 50257");
    tmp_close(&t);
}

Test(heads, bad_header_fields) {
    tmp_place t;
    tmp_open(&t, "h.sparse");
    save_heads(t.path, 14);
    size_t len;
    uint8_t *b = slurp(t.path, &len);
    put32(b, 6 * 4, 33); /* channels != heads * hs */
    spit(t.path, b, len);
    expect_load_error(t.path, NULL, "channels");
    put32(b, 6 * 4, 32);
    put32(b, 2 * 4, 0); /* no layers */
    spit(t.path, b, len);
    expect_load_error(t.path, NULL, "layers = 0");
    put32(b, 2 * 4, 3);
    put32(b, 8 * 4, N_SPARSE + 1); /* the checksum covers it; with a fixed one, counted too */
    spit(t.path, b, len);
    expect_load_error(t.path, NULL, "checksum mismatch");
    fix_checksum(b, len);
    spit(t.path, b, len);
    expect_load_error(t.path, NULL, "header says 8 sparse heads, the file holds 7");
    free(b);
    tmp_close(&t);
}

Test(heads, spec_inconsistent_with_param_counts) {
    tmp_place t;
    tmp_open(&t, "h.sparse");
    save_heads(t.path, 15);
    size_t len;
    uint8_t *b = slurp(t.path, &len);
    size_t rec = record_offset(b, 11); /* index+softmax, rank 4 */
    put32(b, rec + 5 * 4, 8);          /* claims rank 8: more selector parameters */
    fix_checksum(b, len);
    spit(t.path, b, len);
    expect_load_error(t.path, &CFG, "L2H3 (index+softmax:k=16,r=8,j=2) has");
    put32(b, rec + 5 * 4, 4);
    rec = record_offset(b, 4);          /* index+mlp */
    put32(b, rec + 11 * 4, 0);          /* mlp_q off: fewer function parameters */
    fix_checksum(b, len);
    spit(t.path, b, len);
    expect_load_error(t.path, &CFG, "spec implies");
    free(b);
    tmp_close(&t);
}

Test(heads, invalid_spec_in_file) {
    tmp_place t;
    tmp_open(&t, "h.sparse");
    save_heads(t.path, 16);
    size_t len;
    uint8_t *b = slurp(t.path, &len);
    size_t rec = record_offset(b, 5); /* pos+mlp */
    put32(b, rec + 2 * 4, 0);         /* k = 0 */
    fix_checksum(b, len);
    spit(t.path, b, len);
    expect_load_error(t.path, &CFG, "head L1H1: bad spec: k (keys per query) = 0");
    put32(b, rec + 2 * 4, 3);
    put32(b, rec + 1 * 4, 9); /* unknown head function */
    fix_checksum(b, len);
    spit(t.path, b, len);
    expect_load_error(t.path, &CFG, "head function 9");
    free(b);
    tmp_close(&t);
}

Test(heads, missing_and_tiny_files) {
    expect_load_error("/tmp/sattn-no-such-heads.sparse", NULL, "cannot open");
    tmp_place t;
    tmp_open(&t, "h.sparse");
    spit(t.path, (const uint8_t *)"", 0);
    expect_load_error(t.path, NULL, "truncated header");
    tmp_close(&t);
}

/* ---------------------------------------------------------------- failed saves */

Test(heads, refused_saves_create_nothing) {
    tmp_place t;
    tmp_open(&t, "h.sparse");
    sparse_heads sh;
    make_heads(&sh, 17);
    sattn_err e = {{0}};
    gpt_config c = CFG;
    c.layers = 4;
    cr_assert_eq(heads_save(t.path, &sh, &c, &e), -1);
    assert_msg_has(&e, t.path, "3 layers");
    c = CFG, c.max_seq = 32;
    cr_assert_eq(heads_save(t.path, &sh, &c, &e), -1);
    assert_msg_has(&e, t.path, "max_seq 16");
    cr_assert_eq(heads_save(t.path, &sh, NULL, &e), -1);
    assert_msg_has(&e, t.path, "no model");
    sh.h[4].n_fn -= 1; /* counts no longer what the spec implies */
    cr_assert_eq(heads_save(t.path, &sh, &CFG, &e), -1);
    assert_msg_has(&e, t.path, "L1H0");
    sh.h[4].n_fn += 1;
    sh.h[2].spec.tau = 0.5f; /* invalid spec: tau with block */
    cr_assert_eq(heads_save(t.path, &sh, &CFG, &e), -1);
    assert_msg_has(&e, t.path, "L0H2");
    cr_assert_eq(cli_dir_entries(t.dir), 0);
    sparse_heads_free(&sh);
    tmp_close(&t);
}

Test(heads, save_into_missing_directory) {
    tmp_place t;
    tmp_open(&t, "nodir/h.sparse");
    sparse_heads sh;
    make_heads(&sh, 18);
    sattn_err e = {{0}};
    cr_assert_eq(heads_save(t.path, &sh, &CFG, &e), -1);
    assert_msg_has(&e, t.path, "cannot create");
    cr_assert_eq(cli_dir_entries(t.dir), 0);
    sparse_heads_free(&sh);
    tmp_close(&t);
}

/* A write that fails part way (the file size limit) leaves no file, and an older
 * file under the same name stays as it was. */
Test(heads, failed_write_leaves_nothing) {
    tmp_place t;
    tmp_open(&t, "h.sparse");
    sparse_heads sh;
    make_heads(&sh, 19);
    sattn_err e = {{0}};
    signal(SIGXFSZ, SIG_IGN); /* Criterion forks per test: this stays in this test */
    struct rlimit lim = {.rlim_cur = 4096, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    cr_assert_eq(heads_save(t.path, &sh, &CFG, &e), -1);
    assert_msg_has(&e, t.path, "write failed");
    cr_assert_eq(cli_dir_entries(t.dir), 0);
    const char old[] = "older heads file";
    spit(t.path, (const uint8_t *)old, sizeof old);
    cr_assert_eq(heads_save(t.path, &sh, &CFG, &e), -1);
    cr_assert_eq(file_size(t.path), (long)sizeof old);
    cr_assert_eq(cli_dir_entries(t.dir), 1);
    sparse_heads_free(&sh);
    tmp_close(&t);
}

/* ---------------------------------------------------------------- version 2 */

/* Size-neutral edits of header fields no other check catches (the model's vocabulary
 * 256 -> 255 when no model is given) fail the checksum. */
Test(heads, header_edits_fail_checksum) {
    tmp_place t;
    tmp_open(&t, "h.sparse");
    save_heads(t.path, 20);
    size_t len;
    uint8_t *b = slurp(t.path, &len);
    put32(b, 7 * 4, 255);
    spit(t.path, b, len);
    expect_load_error(t.path, NULL, "checksum mismatch: file is corrupt");
    free(b);
    tmp_close(&t);
}

Test(heads, reserved_words_must_be_zero) {
    tmp_place t;
    tmp_open(&t, "h.sparse");
    save_heads(t.path, 21);
    size_t len;
    uint8_t *b = slurp(t.path, &len);
    put32(b, 40 * 4, 7);
    spit(t.path, b, len);
    expect_load_error(t.path, NULL, "header word 40 = 0x00000007, expected 0 (reserved)");
    put32(b, 40 * 4, 0);
    put32(b, record_offset(b, 5) + 15 * 4, 1);
    fix_checksum(b, len);
    spit(t.path, b, len);
    /* every spec word has a meaning now (15: cmp), so a stray 1 there is checked as that field */
    expect_load_error(t.path, NULL, "head L1H1: bad spec: cmp = 1 without tile = 1");
    free(b);
    tmp_close(&t);
}

/* A version-1 file made by hand (version word 1, checksum over the payload only, header
 * and spec reserved words not looked at) still loads, with the same heads. */
Test(heads, version1_still_loads) {
    tmp_place t;
    tmp_open(&t, "h.sparse");
    save_heads(t.path, 22);
    sparse_heads a, b2;
    sattn_err e = {{0}};
    cr_assert_eq(heads_load(t.path, &a, &CFG, &e), 0, "%s", e.msg);
    size_t len;
    uint8_t *b = slurp(t.path, &len);
    put32(b, 4, 1);
    put32(b, 40 * 4, 0xdeadbeef);
    uint64_t h = fnv1a64(b + HEADER_BYTES, len - HEADER_BYTES, FNV1A64_INIT);
    put32(b, 9 * 4, (uint32_t)h);
    put32(b, 10 * 4, (uint32_t)(h >> 32));
    spit(t.path, b, len);
    cr_assert_eq(heads_load(t.path, &b2, &CFG, &e), 0, "%s", e.msg);
    assert_same_heads(&a, &b2);
    sparse_heads_free(&b2);
    b[len - 1] ^= 1; /* the old checksum still guards the payload */
    spit(t.path, b, len);
    expect_load_error(t.path, &CFG, "checksum mismatch");
    sparse_heads_free(&a);
    free(b);
    tmp_close(&t);
}

/* A non-finite parameter (valid checksum) is refused, naming the head and the parameter. */
Test(heads, nonfinite_parameter_names_the_head) {
    tmp_place t;
    tmp_open(&t, "h.sparse");
    sparse_heads sh;
    make_heads(&sh, 23);
    sparse_head *p = &sh.h[4]; /* L1H0, index+mlp */
    p->params[p->n_sel + 3] = NAN;
    sattn_err e = {{0}};
    cr_assert_eq(heads_save(t.path, &sh, &CFG, &e), 0, "%s", e.msg);
    char spec[192], want[512];
    head_spec_format(&p->spec, spec, sizeof spec);
    snprintf(want, sizeof want, "%s: head L1H0 (%s): head-function parameter 3 is NaN, expected "
             "finite parameters", t.path, spec);
    sparse_heads got;
    cr_assert_eq(heads_load(t.path, &got, &CFG, &e), -1);
    cr_assert_str_eq(e.msg, want);
    cr_assert_null(got.h);
    p->params[p->n_sel + 3] = 0;
    p->params[1] = -INFINITY;
    cr_assert_eq(heads_save(t.path, &sh, &CFG, &e), 0, "%s", e.msg);
    expect_load_error(t.path, &CFG, "selector parameter 1 is -Inf, expected finite parameters");
    sparse_heads_free(&sh);
    tmp_close(&t);
}

/* ---------------------------------------------------------------- shared indexer */

/* shared=1 is spec word 14 (0 in older files, which read as shared = 0; an older reader
 * refuses a file with it set, as a non-zero reserved word): a layer of shared heads round
 * trips; the word on a non-index head, or on one head of a layer only, is refused. */
Test(heads, shared_word_14) {
    tmp_place t;
    tmp_open(&t, "h.sparse");
    head_spec specs[NHEADS];
    mixed_specs(specs);
    for (int h = 0; h < 4; h++) specs[8 + h] = make(SEL_INDEX, HFN_SOFTMAX), specs[8 + h].shared = 1,
                                specs[8 + h].rank = 6, specs[8 + h].iheads = 2;
    sparse_heads sh, back;
    rng_t r;
    rng_seed(&r, 31);
    sparse_heads_create(&sh, CFG.layers, CFG.heads, CFG.channels / CFG.heads, CFG.max_seq, specs, &r);
    sattn_err e = {{0}};
    cr_assert_eq(heads_save(t.path, &sh, &CFG, &e), 0, "%s", e.msg);
    cr_assert_eq(heads_load(t.path, &back, &CFG, &e), 0, "%s", e.msg);
    assert_same_heads(&sh, &back);
    cr_assert_eq(back.h[9].spec.shared, 1);
    sparse_heads_free(&back);
    size_t len;
    uint8_t *b = slurp(t.path, &len);
    uint32_t w14;
    memcpy(&w14, b + record_offset(b, 8) + 14 * 4, 4);
    cr_assert_eq(w14, 1u, "shared is word 14");
    put32(b, record_offset(b, 5) + 14 * 4, 1); /* L1H1, pos+mlp */
    fix_checksum(b, len);
    spit(t.path, b, len);
    expect_load_error(t.path, NULL, "head L1H1: bad spec: shared = 1 with a non-index selector");
    put32(b, record_offset(b, 5) + 14 * 4, 0);
    put32(b, record_offset(b, 11) + 14 * 4, 0); /* L2H3 no longer shared */
    fix_checksum(b, len);
    spit(t.path, b, len);
    expect_load_error(t.path, NULL, "head L2H3 is index+softmax:k=16,r=6,j=2 but L2H0 is");
    free(b);
    sparse_heads_free(&sh);
    tmp_close(&t);
}
