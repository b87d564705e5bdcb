/* Tests for data: byte and llm.c token files, the split, batches, and that every
 * bad file is a one-line error naming the file. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_util.h"
#include "sattn/data.h"

static void patch_i32(const char *path, long offset, int32_t v) {
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, offset, SEEK_SET), 0);
    cr_assert_eq(fwrite(&v, sizeof v, 1, f), 1u);
    cr_assert_eq(fclose(f), 0);
}

static long file_size(const char *path) {
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    return (long)st.st_size;
}

static void assert_msg_has(const sattn_err *e, const char *a, const char *b) {
    cr_assert_not_null(strstr(e->msg, a), "message '%s' lacks '%s'", e->msg, a);
    cr_assert_not_null(strstr(e->msg, b), "message '%s' lacks '%s'", e->msg, b);
    cr_assert_null(strchr(e->msg, '\n'), "message '%s' is not one line", e->msg);
}

/* 0, 1, 2, ... so a window's first token is its offset in the data. */
static void iota_bytes(uint8_t *b, size_t n) {
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)i;
}

Test(data, byte_file_split_sizes) {
    tmp_place t;
    tmp_open(&t, "text.txt");
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 7 + 3);
    cli_spew(t.path, buf, sizeof buf);
    dataset d;
    sattn_err e = {{0}};
    cr_assert_eq(dataset_load(&d, t.path, &e), 0, "%s", e.msg);
    cr_assert_eq(d.n_tokens, 1000u);
    cr_assert_eq(d.n_train, 900u);
    cr_assert_eq(d.vocab, 256);
    cr_assert(d.is_bytes);
    size_t ntr, nva;
    const uint16_t *tr = dataset_split_tokens(&d, SPLIT_TRAIN, &ntr);
    const uint16_t *va = dataset_split_tokens(&d, SPLIT_VAL, &nva);
    cr_assert_eq(ntr, 900u);
    cr_assert_eq(nva, 100u);
    cr_assert_eq(tr[5], buf[5]);
    cr_assert_eq(va[0], buf[900]);
    cr_assert_eq(va[99], buf[999]);
    dataset_free(&d);
    tmp_close(&t);
}

Test(data, batch_windows_match_text) {
    const char *text = "In the beginning God created the heaven and the earth. And the earth "
                       "was without form, and void; and darkness was upon the face of the deep.";
    size_t n = strlen(text);
    dataset d;
    dataset_from_bytes(&d, (const uint8_t *)text, n);
    enum { B = 6, T = 10 };
    int in[B * T], tg[B * T];
    rng_t r;
    rng_seed(&r, 42);
    dataset_batch(&d, SPLIT_TRAIN, B, T, &r, in, tg);
    for (int b = 0; b < B; b++) {
        char win[T + 2] = {0};
        for (int t = 0; t < T; t++) win[t] = (char)in[b * T + t];
        win[T] = (char)tg[b * T + T - 1];
        const char *hit = strstr(text, win);
        cr_assert_not_null(hit, "window %d '%s' not in the text", b, win);
        cr_assert_leq((size_t)(hit - text) + T + 1, d.n_train, "window %d leaves train", b);
        for (int t = 0; t + 1 < T; t++) cr_assert_eq(tg[b * T + t], in[b * T + t + 1]);
    }
    dataset_free(&d);
}

/* With distinct tokens the offset of each window is known, so the bounds of
 * both splits (and the last possible window) can be checked exactly. */
Test(data, batch_offsets_cover_split_exactly) {
    uint8_t buf[200];
    iota_bytes(buf, sizeof buf);
    dataset d;
    dataset_from_bytes(&d, buf, sizeof buf); /* train 0..179, val 180..199 */
    enum { B = 4000, T = 8 };
    int *in = malloc(sizeof(int) * B * T), *tg = malloc(sizeof(int) * B * T);
    rng_t r;
    rng_seed(&r, 7);
    for (int s = 0; s < 2; s++) {
        int lo = s == 0 ? 0 : 180, hi = s == 0 ? 180 : 200, seen_lo = 0, seen_hi = 0;
        dataset_batch(&d, (data_split)s, B, T, &r, in, tg);
        for (int b = 0; b < B; b++) {
            int o = in[b * T];
            cr_assert_geq(o, lo);
            cr_assert_leq(o + T, hi - 1, "split %d: window at %d overruns", s, o);
            for (int t = 0; t < T; t++) {
                cr_assert_eq(in[b * T + t], o + t);
                cr_assert_eq(tg[b * T + t], o + t + 1);
            }
            seen_lo |= o == lo;
            seen_hi |= o + T == hi - 1;
        }
        cr_assert(seen_lo && seen_hi, "split %d: first or last window never drawn", s);
    }
    free(in);
    free(tg);
    dataset_free(&d);
}

Test(data, batch_deterministic_for_seed) {
    uint8_t buf[5000];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)((i * 2654435761u) >> 13);
    dataset d;
    dataset_from_bytes(&d, buf, sizeof buf);
    enum { B = 8, T = 16 };
    int a[B * T], at[B * T], b[B * T], bt[B * T], c[B * T], ct[B * T];
    rng_t r1, r2, r3;
    rng_seed(&r1, 1234);
    rng_seed(&r2, 1234);
    rng_seed(&r3, 1235);
    dataset_batch(&d, SPLIT_TRAIN, B, T, &r1, a, at);
    dataset_batch(&d, SPLIT_TRAIN, B, T, &r2, b, bt);
    dataset_batch(&d, SPLIT_TRAIN, B, T, &r3, c, ct);
    cr_assert_arr_eq(a, b, sizeof a);
    cr_assert_arr_eq(at, bt, sizeof at);
    cr_assert_eq(r1.state, r2.state);
    cr_assert_arr_neq(a, c, sizeof a, "different seeds drew the same batch");
    dataset_free(&d);
}

Test(data, check_window_names_file_split_and_sizes) {
    uint8_t buf[100];
    iota_bytes(buf, sizeof buf);
    dataset d;
    dataset_from_bytes(&d, buf, sizeof buf); /* train 90, val 10 */
    sattn_err e = {{0}};
    cr_assert_eq(dataset_check_window(&d, SPLIT_TRAIN, 89, "corpus.txt", &e), 0);
    cr_assert_eq(dataset_check_window(&d, SPLIT_TRAIN, 90, "corpus.txt", &e), -1);
    assert_msg_has(&e, "corpus.txt", "train split has 90 tokens");
    cr_assert_not_null(strstr(e.msg, "91"), "%s", e.msg);
    cr_assert_eq(dataset_check_window(&d, SPLIT_VAL, 9, "corpus.txt", &e), 0);
    cr_assert_eq(dataset_check_window(&d, SPLIT_VAL, 10, "corpus.txt", &e), -1);
    assert_msg_has(&e, "corpus.txt", "validation split has 10 tokens");
    dataset_free(&d);
}

Test(data, llmc_round_trip) {
    tmp_place t;
    tmp_open(&t, "tok.bin");
    enum { N = 1000 };
    uint16_t tok[N];
    rng_t r;
    rng_seed(&r, 3);
    for (int i = 0; i < N; i++) tok[i] = (uint16_t)rng_below(&r, LLMC_GPT2_VOCAB);
    sattn_err e = {{0}};
    cr_assert_eq(llmc_tokens_save(t.path, tok, N, &e), 0, "%s", e.msg);
    cr_assert_eq(file_size(t.path), 1024 + 2 * N);
    dataset d;
    cr_assert_eq(dataset_load(&d, t.path, &e), 0, "%s", e.msg);
    cr_assert_eq(d.n_tokens, (size_t)N);
    cr_assert_eq(d.n_train, (size_t)N * 9 / 10);
    cr_assert_eq(d.vocab, LLMC_GPT2_VOCAB);
    cr_assert_not(d.is_bytes);
    cr_assert_arr_eq(d.tokens, tok, sizeof tok);
    dataset_free(&d);
    tmp_close(&t);
}

Test(data, llmc_vocab_grows_to_max_token) {
    tmp_place t;
    tmp_open(&t, "tok.bin");
    uint16_t tok[600] = {0};
    tok[77] = 60000;
    sattn_err e = {{0}};
    cr_assert_eq(llmc_tokens_save(t.path, tok, 600, &e), 0, "%s", e.msg);
    dataset d;
    cr_assert_eq(dataset_load(&d, t.path, &e), 0, "%s", e.msg);
    cr_assert_eq(d.vocab, 60001);
    dataset_free(&d);
    tmp_close(&t);
}

Test(data, llmc_wrong_version) {
    tmp_place t;
    tmp_open(&t, "tok.bin");
    uint16_t tok[300] = {1, 2, 3};
    sattn_err e = {{0}};
    cr_assert_eq(llmc_tokens_save(t.path, tok, 300, &e), 0, "%s", e.msg);
    patch_i32(t.path, 4, 2);
    dataset d;
    cr_assert_eq(dataset_load(&d, t.path, &e), -1);
    assert_msg_has(&e, t.path, "expected version 1");
    tmp_close(&t);
}

Test(data, llmc_truncated_and_trailing) {
    tmp_place t;
    tmp_open(&t, "tok.bin");
    uint16_t tok[300] = {1, 2, 3};
    sattn_err e = {{0}};
    cr_assert_eq(llmc_tokens_save(t.path, tok, 300, &e), 0, "%s", e.msg);
    cr_assert_eq(truncate(t.path, 1024 + 2 * 300 - 2), 0);
    dataset d;
    cr_assert_eq(dataset_load(&d, t.path, &e), -1);
    assert_msg_has(&e, t.path, "truncated");
    cr_assert_not_null(strstr(e.msg, "1622"), "%s", e.msg); /* actual size */
    cr_assert_not_null(strstr(e.msg, "1624"), "%s", e.msg); /* expected size */
    cr_assert_eq(truncate(t.path, 1024 + 2 * 300 + 1), 0);
    cr_assert_eq(dataset_load(&d, t.path, &e), -1);
    assert_msg_has(&e, t.path, "size mismatch");
    tmp_close(&t);
}

Test(data, empty_file) {
    tmp_place t;
    tmp_open(&t, "empty.txt");
    cli_spew(t.path, "", 0);
    dataset d;
    sattn_err e = {{0}};
    cr_assert_eq(dataset_load(&d, t.path, &e), -1);
    assert_msg_has(&e, t.path, "empty file");
    tmp_close(&t);
}

Test(data, missing_file) {
    tmp_place t;
    tmp_open(&t, "absent.txt");
    dataset d;
    sattn_err e = {{0}};
    cr_assert_eq(dataset_load(&d, t.path, &e), -1);
    assert_msg_has(&e, t.path, "cannot open");
    tmp_close(&t);
}

/* A file that starts with the magic but is shorter than the header was read as text:
 * it is an error now, naming the file and what is wrong, unless bytes are asked for. */
Test(data, short_file_with_magic_is_an_error_unless_bytes) {
    tmp_place t;
    tmp_open(&t, "short.bin");
    int32_t head[16] = {LLMC_TOKENS_MAGIC, 1, 5};
    cli_spew(t.path, head, sizeof head);
    dataset d;
    sattn_err e = {{0}};
    cr_assert_eq(dataset_load(&d, t.path, &e), -1);
    assert_msg_has(&e, t.path, "truncated inside its header: 64 bytes, expected at least 1026");
    assert_msg_has(&e, "starts like an llm.c token file", "--data-format bytes reads it as bytes");
    cr_assert_null(d.tokens);
    cr_assert_eq(dataset_load_as(&d, t.path, DATA_BYTES, &e), 0, "%s", e.msg);
    cr_assert(d.is_bytes);
    cr_assert_eq(d.n_tokens, sizeof head);
    cr_assert_eq(d.tokens[0], LLMC_TOKENS_MAGIC & 0xff); /* the magic's low byte, as a token */
    dataset_free(&d);
    tmp_close(&t);
}

/* A token file whose magic is damaged (one bit, or a whole byte, or replaced while the
 * version and count words still say "token file") is an error, not a text corpus. */
Test(data, damaged_magic_is_an_error_unless_bytes) {
    const struct { int32_t magic; const char *says; } cases[] = {
        {LLMC_TOKENS_MAGIC ^ 1, "magic 20240521, expected 20240520"},
        {LLMC_TOKENS_MAGIC ^ 0x7f000000, "expected 20240520"},
        {0x64636261, "magic 1684234849, expected 20240520"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tmp_place t;
        tmp_open(&t, "tok.bin");
        uint16_t tok[300] = {1, 2, 3};
        sattn_err e = {{0}};
        cr_assert_eq(llmc_tokens_save(t.path, tok, 300, &e), 0, "%s", e.msg);
        patch_i32(t.path, 0, cases[i].magic);
        dataset d;
        cr_assert_eq(dataset_load(&d, t.path, &e), -1, "case %zu read as text", i);
        assert_msg_has(&e, t.path, cases[i].says);
        assert_msg_has(&e, "not an llm.c token file", "--data-format bytes");
        cr_assert_eq(dataset_load_as(&d, t.path, DATA_TOKENS, &e), -1);
        assert_msg_has(&e, t.path, cases[i].says);
        cr_assert_eq(dataset_load_as(&d, t.path, DATA_BYTES, &e), 0, "%s", e.msg);
        cr_assert_eq(d.n_tokens, 1024u + 600u);
        cr_assert_eq(d.vocab, 256);
        dataset_free(&d);
        tmp_close(&t);
    }
}

/* --data-format tokens refuses text; bytes reads even a valid token file as bytes. */
Test(data, explicit_formats) {
    tmp_place t;
    tmp_open(&t, "x.bin");
    cli_write_text(t.path, 3000);
    dataset d;
    sattn_err e = {{0}};
    cr_assert_eq(dataset_load_as(&d, t.path, DATA_TOKENS, &e), -1);
    assert_msg_has(&e, t.path, "not an llm.c token file: magic");
    cr_assert_eq(dataset_load_as(&d, t.path, DATA_AUTO, &e), 0, "%s", e.msg);
    cr_assert(d.is_bytes);
    cr_assert_eq(d.n_tokens, 3000u);
    dataset_free(&d);
    uint16_t tok[600] = {7};
    cr_assert_eq(llmc_tokens_save(t.path, tok, 600, &e), 0, "%s", e.msg);
    cr_assert_eq(dataset_load_as(&d, t.path, DATA_BYTES, &e), 0, "%s", e.msg);
    cr_assert(d.is_bytes);
    cr_assert_eq(d.n_tokens, 1024u + 1200u);
    dataset_free(&d);
    cr_assert_eq(dataset_load_as(&d, t.path, DATA_TOKENS, &e), 0, "%s", e.msg);
    cr_assert_eq(d.n_tokens, 600u);
    cr_assert_eq(d.tokens[0], 7);
    dataset_free(&d);
    tmp_close(&t);
}

Test(data, format_names) {
    data_format f = DATA_BYTES;
    cr_assert_eq(data_format_parse("auto", &f), 0);
    cr_assert_eq(f, DATA_AUTO);
    cr_assert_eq(data_format_parse("tokens", &f), 0);
    cr_assert_eq(f, DATA_TOKENS);
    cr_assert_eq(data_format_parse("bytes", &f), 0);
    cr_assert_eq(f, DATA_BYTES);
    cr_assert_eq(data_format_parse("text", &f), -1);
    cr_assert_eq(f, DATA_BYTES);
}

/* Virtual memory in use now (bytes), from /proc/self/statm. */
static size_t vm_size(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (!f || fscanf(f, "%lu", &pages) != 1) abort();
    fclose(f);
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

/* A 32 MiB byte corpus loads under an address-space limit of 2 bytes per byte plus
 * 16 MiB: the whole-file buffer plus the token copy (3 bytes per byte) would not fit. */
Test(data, byte_corpus_is_streamed_into_tokens) {
    tmp_place t;
    tmp_open(&t, "big.txt");
    const size_t n = (size_t)32 << 20;
    FILE *f = fopen(t.path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(ftruncate(fileno(f), (off_t)n), 0); /* sparse: 32 MiB of zero bytes */
    cr_assert_eq(fclose(f), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct rlimit lim = {vm_size() + 2 * n + ((size_t)16 << 20), RLIM_INFINITY};
        lim.rlim_max = lim.rlim_cur;
        if (setrlimit(RLIMIT_AS, &lim)) _exit(3);
        dataset d;
        sattn_err e;
        int r = dataset_load(&d, t.path, &e);
        _exit(r == 0 && d.n_tokens == n && d.is_bytes ? 0 : 2);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "loading 32 MiB under a 2n + 16 MiB limit failed (status 0x%x)", status);
    tmp_close(&t);
}

Test(data, save_into_missing_directory_fails_cleanly) {
    tmp_place t;
    tmp_open(&t, "nodir/tok.bin");
    uint16_t tok[4] = {1, 2, 3, 4};
    sattn_err e = {{0}};
    cr_assert_eq(llmc_tokens_save(t.path, tok, 4, &e), -1);
    assert_msg_has(&e, t.path, "cannot create");
    cr_assert_neq(access(t.path, F_OK), 0);
    tmp_close(&t);
}
