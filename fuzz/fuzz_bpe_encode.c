/* libFuzzer harness: the GPT-2 encoder on hostile text (src/data/bpe.c, bpe_encode with GPT-2's
 * vocabulary from data/gpt2, loaded once). Every input must encode into ids of the vocabulary,
 * never a special token, at most one per byte, that decode back to exactly its bytes, and
 * encoding it twice (the second time from the word cache) must give the same ids. */
#include "fuzz_common.h"
#include "sattn/bpe.h"

static bpe_tokenizer *gpt2(void) {
    static bpe_tokenizer *t;
    if (!t) {
        sattn_err e;
        t = bpe_load(BPE_DEFAULT_DIR, &e);
        FZ_CHECK(t, "the GPT-2 vocabulary is needed (bash scripts/deps.sh): %s", e.msg);
    }
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    bpe_tokenizer *t = gpt2();
    size_t k = 0, k2 = 0, len = 0;
    uint16_t *ids = bpe_encode(t, data, n, &k), *again = bpe_encode(t, data, n, &k2);
    FZ_CHECK(k <= n && (k > 0) == (n > 0), "%zu bytes gave %zu tokens", n, k);
    FZ_CHECK(k == k2 && (k == 0 || !memcmp(ids, again, k * sizeof *ids)), "a second encoding differs");
    for (size_t i = 0; i < k; i++) FZ_CHECK(ids[i] < BPE_GPT2_EOT, "id %d at %zu", ids[i], i);
    uint8_t *back = NULL;
    sattn_err e;
    FZ_CHECK(bpe_decode(t, ids, k, &back, &len, &e) == 0, "decode: %s", e.msg);
    FZ_CHECK(len == n && !memcmp(back, data, n), "round trip of %zu bytes gave %zu other bytes", n, len);
    for (size_t i = 0; i < n;) {
        size_t j = bpe_pretoken_end(data, n, i);
        FZ_CHECK(j > i && j <= n, "pre-token at %zu ends at %zu", i, j);
        i = j;
    }
    free(back), free(ids), free(again);
    return 0;
}
