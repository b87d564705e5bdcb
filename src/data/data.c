/* data: corpora as uint16 token sequences, the 90/10 train/validation split,
 * random training windows, and llm.c token files (read and write).
 *
 * llm.c token file layout (little-endian, as llm.c writes it on x86):
 *   int32 header[256] = {20240520, 1, n_tokens, 0...}, then uint16 tokens[n_tokens]. */
#include "sattn/data.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define LLMC_HEADER_INTS 256
#define LLMC_HEADER_BYTES (LLMC_HEADER_INTS * sizeof(int32_t))

/* memcpy instead of a cast: the file buffer has no alignment guarantee. */
static int32_t read_i32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void set_split(dataset *d) { d->n_train = d->n_tokens * 9 / 10; }

void dataset_from_bytes(dataset *d, const uint8_t *bytes, size_t n) {
    d->tokens = xmalloc(n * sizeof *d->tokens);
    for (size_t i = 0; i < n; i++) d->tokens[i] = bytes[i];
    d->n_tokens = n;
    d->vocab = 256;
    d->is_bytes = 1;
    set_split(d);
}

void dataset_free(dataset *d) {
    free(d->tokens);
    memset(d, 0, sizeof *d);
}

/* A file is taken for an llm.c token file only if it is big enough to hold the
 * header and starts with the magic: a text file starting with those 4 bytes by
 * chance and shorter than 1 KiB stays a byte corpus. */
static int is_llmc_tokens(const uint8_t *buf, size_t len) {
    return len >= LLMC_HEADER_BYTES && read_i32(buf) == LLMC_TOKENS_MAGIC;
}

/* Validates version and token count against the file size; on success *count is
 * the number of tokens. */
static int llmc_check_header(const char *path, const uint8_t *buf, size_t len, size_t *count,
                             sattn_err *e) {
    int32_t version = read_i32(buf + 4);
    if (version != LLMC_TOKENS_VERSION)
        return err_set(e, "%s: llm.c token file version %" PRId32 ", expected version %d", path,
                       version, LLMC_TOKENS_VERSION);
    int32_t n = read_i32(buf + 8);
    if (n <= 0)
        return err_set(e, "%s: llm.c token file header says %" PRId32
                          " tokens, expected at least 1", path, n);
    size_t want = LLMC_HEADER_BYTES + (size_t)n * sizeof(uint16_t);
    if (len < want)
        return err_set(e, "%s: llm.c token file truncated: header says %" PRId32
                          " tokens (%zu bytes), file has %zu bytes", path, n, want, len);
    if (len > want)
        return err_set(e, "%s: llm.c token file size mismatch: header says %" PRId32
                          " tokens (%zu bytes), file has %zu bytes", path, n, want, len);
    *count = (size_t)n;
    return 0;
}

static int load_llmc(dataset *d, const char *path, const uint8_t *buf, size_t len, sattn_err *e) {
    size_t n = 0;
    if (llmc_check_header(path, buf, len, &n, e)) return -1;
    d->tokens = xmalloc(n * sizeof *d->tokens);
    memcpy(d->tokens, buf + LLMC_HEADER_BYTES, n * sizeof *d->tokens);
    int max_tok = 0;
    for (size_t i = 0; i < n; i++)
        if (d->tokens[i] > max_tok) max_tok = d->tokens[i];
    /* A foreign tokenizer may use ids beyond GPT-2's; the embedding must cover them. */
    d->vocab = max_tok + 1 > LLMC_GPT2_VOCAB ? max_tok + 1 : LLMC_GPT2_VOCAB;
    d->n_tokens = n;
    d->is_bytes = 0;
    set_split(d);
    return 0;
}

int dataset_load(dataset *d, const char *path, sattn_err *e) {
    memset(d, 0, sizeof *d);
    uint8_t *buf;
    size_t len;
    if (file_read_all(path, &buf, &len, e)) return -1;
    int r = 0;
    if (len == 0)
        r = err_set(e, "%s: empty file, expected text or an llm.c token file", path);
    else if (is_llmc_tokens(buf, len))
        r = load_llmc(d, path, buf, len, e);
    else
        dataset_from_bytes(d, buf, len);
    free(buf);
    return r;
}

const uint16_t *dataset_split_tokens(const dataset *d, data_split s, size_t *n) {
    if (s == SPLIT_TRAIN) {
        *n = d->n_train;
        return d->tokens;
    }
    *n = d->n_tokens - d->n_train;
    return d->tokens + d->n_train;
}

static const char *split_name(data_split s) { return s == SPLIT_TRAIN ? "train" : "validation"; }

int dataset_check_window(const dataset *d, data_split s, int T, const char *path, sattn_err *e) {
    const char *name = path ? path : "(in-memory data)";
    if (T < 1) return err_set(e, "%s: sequence length %d, expected at least 1", name, T);
    size_t n;
    dataset_split_tokens(d, s, &n);
    if (n < (size_t)T + 1)
        return err_set(e, "%s: %s split has %zu tokens (of %zu in the file), "
                          "expected at least T+1 = %d for one window",
                       name, split_name(s), n, d->n_tokens, T + 1);
    return 0;
}

/* Uniform in [0, n); rng_below covers n < 2^32, bigger corpora fall back to a
 * modulo whose bias (n / 2^64) is negligible. */
static size_t rand_index(rng_t *rng, size_t n) {
    if (n <= UINT32_MAX) return rng_below(rng, (uint32_t)n);
    return (size_t)(rng_u64(rng) % n);
}

void dataset_batch(const dataset *d, data_split s, int B, int T, rng_t *rng, int *inputs,
                   int *targets) {
    size_t n;
    const uint16_t *x = dataset_split_tokens(d, s, &n);
    /* Callers validate with dataset_check_window first; reaching here is a bug. */
    if (T < 1 || n < (size_t)T + 1)
        die_at(__FILE__, __LINE__, "dataset_batch: split of %zu tokens, T=%d", n, T);
    for (int b = 0; b < B; b++) {
        size_t o = rand_index(rng, n - (size_t)T); /* o + T <= n - 1 */
        for (int t = 0; t < T; t++) {
            inputs[(size_t)b * T + t] = x[o + t];
            targets[(size_t)b * T + t] = x[o + t + 1];
        }
    }
}

int llmc_tokens_save(const char *path, const uint16_t *tokens, size_t n, sattn_err *e) {
    /* The same limits the reader enforces, so every file written can be read back. */
    if (n == 0 || n > INT32_MAX)
        return err_set(e, "%s: %zu tokens, an llm.c token file holds 1 to %d", path, n,
                       INT32_MAX);
    int32_t header[LLMC_HEADER_INTS] = {LLMC_TOKENS_MAGIC, LLMC_TOKENS_VERSION, (int32_t)n};
    afile a;
    if (afile_open(&a, path, e)) return -1;
    if (afile_write(&a, header, sizeof header, e) ||
        afile_write(&a, tokens, n * sizeof *tokens, e)) {
        afile_abort(&a);
        return -1;
    }
    return afile_commit(&a, e);
}
