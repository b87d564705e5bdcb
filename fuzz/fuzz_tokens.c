/* libFuzzer harness: dataset_load (src/data/data.c), llm.c token files and byte corpora.
 * What it accepts is used as training would: the window check and a few batches of each
 * split. */
#include "fuzz_common.h"
#include "sattn/data.h"

static void use(const dataset *d, data_split s, int T) {
    sattn_err e = {{0}};
    if (dataset_check_window(d, s, T, "fuzz", &e) != 0) {
        fz_check_err(&e, "dataset_check_window");
        return;
    }
    enum { B = 3 };
    int in[B * 16], tg[B * 16];
    rng_t r;
    rng_seed(&r, (uint64_t)T);
    dataset_batch(d, s, B, T, &r, in, tg);
    for (int i = 0; i < B * T; i++)
        FZ_CHECK(in[i] >= 0 && in[i] < d->vocab && tg[i] >= 0 && tg[i] < d->vocab,
                 "batch token %d/%d outside the vocabulary %d", in[i], tg[i], d->vocab);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fz_write("tokens", data, n);
    dataset d;
    sattn_err e = {{0}};
    if (dataset_load(&d, path, &e) != 0) {
        fz_check_err(&e, "dataset_load");
        return 0;
    }
    FZ_CHECK(d.n_tokens > 0 && d.n_train <= d.n_tokens, "%zu tokens, %zu train", d.n_tokens,
             d.n_train);
    FZ_CHECK(!d.is_bytes || (d.n_tokens == n && d.vocab == 256), "byte corpus of %zu tokens from %zu bytes",
             d.n_tokens, n);
    for (size_t i = 0; i < d.n_tokens; i++)
        FZ_CHECK(d.tokens[i] < d.vocab, "token %u >= vocab %d", d.tokens[i], d.vocab);
    for (int T = 1; T <= 16; T *= 4) {
        use(&d, SPLIT_TRAIN, T);
        use(&d, SPLIT_VAL, T);
    }
    dataset_free(&d);
    return 0;
}
