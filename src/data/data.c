/* data: corpora as uint16 token sequences, the 90/10 train/validation split,
 * random training windows, and llm.c token files (read and write).
 *
 * llm.c token file layout (little-endian, as llm.c writes it on x86):
 *   int32 header[256] = {20240520, 1, n_tokens, 0...}, then uint16 tokens[n_tokens]. */
#include "sattn/data.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
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
    d->from_text = 0;
    set_split(d);
}

void dataset_free(dataset *d) {
    free(d->tokens);
    memset(d, 0, sizeof *d);
}

int data_format_parse(const char *s, data_format *fmt) {
    static const char *const names[] = {"auto", "bytes", "tokens"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) return *fmt = (data_format)i, 0;
    return -1;
}

/* Bits in which two words differ. */
static int bit_distance(uint32_t a, uint32_t b) { return __builtin_popcount(a ^ b); }

/* Whether a file that is not a valid token file still starts like one: a magic a few
 * bits (or one byte) off, or the version and count words of a token file (the bytes
 * 01 00 00 00 never occur in text). Read as text, it would train on garbage. */
static int looks_like_tokens(const uint8_t *head, size_t got) {
    if (got < 4) return 0;
    uint32_t magic = (uint32_t)read_i32(head), want = LLMC_TOKENS_MAGIC;
    int bytes_off = 0;
    for (int i = 0; i < 32; i += 8) bytes_off += ((magic ^ want) >> i & 0xff) != 0;
    if (bit_distance(magic, want) <= 4 || bytes_off <= 1) return 1;
    return got >= 12 && read_i32(head + 4) == LLMC_TOKENS_VERSION && read_i32(head + 8) > 0;
}

/* Validates a token file's header against the file size; on success *count is the number
 * of tokens. */
static int llmc_check_header(const char *path, const uint8_t *head, size_t got, size_t size,
                             size_t *count, sattn_err *e) {
    int32_t magic = got >= 4 ? read_i32(head) : 0;
    if (got < 4 || magic != LLMC_TOKENS_MAGIC)
        return err_set(e, "%s: not an llm.c token file: magic %" PRId32 ", expected %d", path,
                       magic, LLMC_TOKENS_MAGIC);
    if (got < LLMC_HEADER_BYTES)
        return err_set(e, "%s: llm.c token file truncated inside its header: %zu bytes, "
                          "expected at least %zu", path, got, LLMC_HEADER_BYTES + 2);
    int32_t version = read_i32(head + 4);
    if (version != LLMC_TOKENS_VERSION)
        return err_set(e, "%s: llm.c token file version %" PRId32 ", expected version %d", path,
                       version, LLMC_TOKENS_VERSION);
    int32_t n = read_i32(head + 8);
    if (n <= 0)
        return err_set(e, "%s: llm.c token file header says %" PRId32
                          " tokens, expected at least 1", path, n);
    size_t want = LLMC_HEADER_BYTES + (size_t)n * sizeof(uint16_t);
    if (size < want)
        return err_set(e, "%s: llm.c token file truncated: header says %" PRId32
                          " tokens (%zu bytes), file has %zu bytes", path, n, want, size);
    if (size > want)
        return err_set(e, "%s: llm.c token file size mismatch: header says %" PRId32
                          " tokens (%zu bytes), file has %zu bytes", path, n, want, size);
    *count = (size_t)n;
    return 0;
}

/* Reads the tokens straight into the dataset: memory is the tokens alone. */
static int load_llmc(dataset *d, const char *path, FILE *f, const uint8_t *head, size_t got,
                     size_t size, sattn_err *e) {
    size_t n = 0;
    if (llmc_check_header(path, head, got, size, &n, e)) return -1;
    d->tokens = xmalloc(n * sizeof *d->tokens);
    if (fread(d->tokens, sizeof *d->tokens, n, f) != n || fgetc(f) != EOF)
        return err_set(e, "%s: read failed (%s)", path,
                       ferror(f) ? strerror(errno) : "the file changed size while being read");
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

#define READ_CHUNK ((size_t)1 << 16)

/* Appends n bytes as tokens, growing the array only when the file outgrows its st_size. */
static void append_bytes(dataset *d, size_t *cap, const uint8_t *b, size_t n) {
    if (d->n_tokens + n > *cap) {
        *cap = 2 * (d->n_tokens + n);
        d->tokens = xrealloc(d->tokens, *cap * sizeof *d->tokens);
    }
    for (size_t i = 0; i < n; i++) d->tokens[d->n_tokens + i] = b[i];
    d->n_tokens += n;
}

/* Streams the file in chunks into the uint16 array sized by st_size: the peak is 2
 * bytes per byte plus one chunk, not the file held twice. */
static int load_bytes(dataset *d, const char *path, FILE *f, const uint8_t *head, size_t got,
                      size_t size, sattn_err *e) {
    size_t cap = size > got ? size : got;
    d->tokens = xmalloc(cap * sizeof *d->tokens);
    append_bytes(d, &cap, head, got);
    uint8_t *chunk = xmalloc(READ_CHUNK);
    size_t n;
    while ((n = fread(chunk, 1, READ_CHUNK, f)) > 0) append_bytes(d, &cap, chunk, n);
    free(chunk);
    if (ferror(f))
        return err_set(e, "%s: read failed after %zu bytes (%s)", path, d->n_tokens,
                       strerror(errno));
    d->vocab = 256;
    d->is_bytes = 1;
    set_split(d);
    return 0;
}

/* The auto-detected case: a file that starts like a token file must validate as one. */
static int load_guessed_tokens(dataset *d, const char *path, FILE *f, const uint8_t *head,
                               size_t got, size_t size, sattn_err *e) {
    if (!load_llmc(d, path, f, head, got, size, e)) return 0;
    char why[SATTN_ERR_LEN];
    snprintf(why, sizeof why, "%s", e->msg);
    return err_set(e, "%s (the file starts like an llm.c token file; --data-format bytes "
                      "reads it as bytes)", why);
}

int dataset_load_as(dataset *d, const char *path, data_format fmt, sattn_err *e) {
    memset(d, 0, sizeof *d);
    size_t size = 0;
    FILE *f = file_open_regular(path, &size, e);
    if (!f) return -1;
    uint8_t head[LLMC_HEADER_BYTES];
    size_t got = fread(head, 1, sizeof head, f);
    int r;
    if (ferror(f))
        r = err_set(e, "%s: read failed (%s)", path, strerror(errno));
    else if (got == 0)
        r = err_set(e, "%s: empty file, expected text or an llm.c token file", path);
    else if (fmt == DATA_BYTES)
        r = load_bytes(d, path, f, head, got, size, e);
    else if (fmt == DATA_TOKENS)
        r = load_llmc(d, path, f, head, got, size, e);
    else if (looks_like_tokens(head, got))
        r = load_guessed_tokens(d, path, f, head, got, size, e);
    else
        r = load_bytes(d, path, f, head, got, size, e);
    fclose(f);
    if (r) dataset_free(d);
    return r;
}

int dataset_load(dataset *d, const char *path, sattn_err *e) {
    return dataset_load_as(d, path, DATA_AUTO, e);
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
    dataset_batch_rows(d, s, B, T, 0, B, rng, inputs, targets);
}

void dataset_batch_rows(const dataset *d, data_split s, int B, int T, int row0, int nrows, rng_t *rng,
                        int *inputs, int *targets) {
    size_t n;
    const uint16_t *x = dataset_split_tokens(d, s, &n);
    /* Callers validate with dataset_check_window first; reaching here is a bug. */
    if (T < 1 || n < (size_t)T + 1)
        die_at(__FILE__, __LINE__, "dataset_batch: split of %zu tokens, T=%d", n, T);
    for (int b = 0; b < B; b++) {
        size_t o = rand_index(rng, n - (size_t)T); /* o + T <= n - 1 */
        if (b < row0 || b >= row0 + nrows) continue;
        size_t r = (size_t)(b - row0) * T;
        for (int t = 0; t < T; t++) {
            inputs[r + t] = x[o + t];
            targets[r + t] = x[o + t + 1];
        }
    }
}

void dataset_encode_text(dataset *d, bpe_tokenizer *t) {
    uint8_t *text = xmalloc(d->n_tokens ? d->n_tokens : 1);
    for (size_t i = 0; i < d->n_tokens; i++) text[i] = (uint8_t)d->tokens[i];
    size_t n = 0;
    uint16_t *ids = bpe_encode(t, text, d->n_tokens, &n);
    free(text);
    free(d->tokens);
    d->tokens = ids;
    d->n_tokens = n;
    d->vocab = bpe_vocab_size(t);
    d->is_bytes = 0;
    d->from_text = 1;
    set_split(d);
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
