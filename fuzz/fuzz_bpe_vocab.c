/* libFuzzer harness: the GPT-2 vocabulary reader (src/data/bpe_load.c, bpe_load_mem; bpe_load
 * reads the two files and calls it). An input with a NUL byte is encoder.json (before it) and
 * vocab.bpe (after it); an input without one is vocab.bpe for a built-in encoder.json of the
 * 256 byte tokens and a few merged ones, so mutations reach the merge checks. A vocabulary
 * that loads must encode text (the input itself, and a fixed sample) into ids inside it that
 * decode back to the same bytes. */
#include "fuzz_common.h"
#include "sattn/bpe.h"

static const char *const EXTRA[] = {"aa", "ab", "aab", "th", "the", "\xc4\xa0t", "\xc4\xa0the", "\xc4\xa0\xc4\xa0"};
#define N_EXTRA (sizeof EXTRA / sizeof *EXTRA)

/* The built-in encoder.json (made once). */
static const char *builtin_encoder(size_t *n) {
    static char *json;
    if (!json) json = bpe_byte_vocab_json(EXTRA, (int)N_EXTRA);
    *n = strlen(json);
    return json;
}

static void round_trip(bpe_tokenizer *t, const uint8_t *x, size_t n) {
    size_t k = 0, len = 0, l;
    uint16_t *ids = bpe_encode(t, x, n, &k);
    for (size_t i = 0; i < k; i++) FZ_CHECK(bpe_token_bytes(t, ids[i], &l), "id %d outside the vocabulary", ids[i]);
    uint8_t *back = NULL;
    sattn_err e;
    FZ_CHECK(bpe_decode(t, ids, k, &back, &len, &e) == 0, "decode: %s", e.msg);
    FZ_CHECK(len == n && !memcmp(back, x, n), "round trip of %zu bytes gave %zu other bytes", n, len);
    free(back);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const uint8_t *nul = memchr(data, 0, n);
    size_t en;
    const char *enc = nul ? (const char *)data : builtin_encoder(&en);
    const char *mer = nul ? (const char *)nul + 1 : (const char *)data;
    if (nul) en = (size_t)(nul - data);
    size_t mn = nul ? n - en - 1 : n;
    sattn_err e = {{0}};
    bpe_tokenizer *t = bpe_load_mem(enc, en, "encoder.json", mer, mn, "vocab.bpe", &e);
    if (!t) {
        fz_check_err(&e, "bpe_load_mem");
        return 0;
    }
    static const char sample[] = "the aab thethe  \xc4\xa0t 'll \xff\xfe caf\xc3\xa9 12";
    round_trip(t, (const uint8_t *)sample, sizeof sample - 1);
    round_trip(t, data, n);
    bpe_free(t);
    return 0;
}
