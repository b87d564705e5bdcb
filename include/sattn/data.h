/* data: corpora as token sequences, the train/validation split, random batches.
 *
 * A file is either an llm.c token file (int32 header[256] with magic 20240520,
 * version 1, token count; then uint16 tokens; vocabulary GPT-2's 50257) or any
 * other file, read as bytes (vocabulary 256); see data_format for how it is chosen. Train is the first 90% of the
 * tokens, validation the last 10%. */
#ifndef SATTN_DATA_H
#define SATTN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "sattn/bpe.h"
#include "sattn/core.h"
#include "sattn/rng.h"

#define LLMC_TOKENS_MAGIC 20240520
#define LLMC_TOKENS_VERSION 1
#define LLMC_GPT2_VOCAB 50257

typedef enum { SPLIT_TRAIN = 0, SPLIT_VAL = 1 } data_split;

typedef struct {
    uint16_t *tokens; /* all tokens */
    size_t n_tokens;
    size_t n_train; /* train = [0, n_train), val = [n_train, n_tokens) */
    int vocab;      /* 256 for bytes; 50257 (or max token + 1 if larger) for llm.c files */
    int is_bytes;
    int from_text;  /* GPT-2 tokens encoded from a text file (dataset_encode_text) */
} dataset;

/* How to read a --data file: auto (a token file if it starts like one, else bytes),
 * bytes (always bytes, vocabulary 256), tokens (must be a valid llm.c token file). */
typedef enum { DATA_AUTO = 0, DATA_BYTES = 1, DATA_TOKENS = 2 } data_format;
/* "auto", "bytes" or "tokens" -> *fmt; -1 (and *fmt untouched) for anything else. */
int data_format_parse(const char *s, data_format *fmt);

/* Loads path as fmt; fails (naming the file) on a missing, unreadable or empty file, an
 * llm.c file with a wrong magic or version, a header cut short, a token count that
 * disagrees with the file size. In auto mode a file that starts like a token file (the
 * magic, a magic a few bits or one byte off, or a token file's version and count words)
 * must validate as one: the error then says that --data-format bytes reads it as bytes.
 * The file is streamed: memory is 2 bytes per token plus a 64 KiB chunk. */
int dataset_load_as(dataset *d, const char *path, data_format fmt, sattn_err *e);
/* dataset_load_as(d, path, DATA_AUTO, e). */
int dataset_load(dataset *d, const char *path, sattn_err *e);
/* Builds a byte dataset from memory (for tests and for prompts). */
void dataset_from_bytes(dataset *d, const uint8_t *bytes, size_t n);
void dataset_free(dataset *d);

/* The tokens of one split. */
const uint16_t *dataset_split_tokens(const dataset *d, data_split s, size_t *n);
/* Checks that the split holds at least T+1 tokens (one training window); the
 * error names the file and both sizes. */
int dataset_check_window(const dataset *d, data_split s, int T, const char *path, sattn_err *e);
/* B windows of T+1 tokens at uniformly random offsets of the split:
 * inputs[b,t] = x[o_b + t], targets[b,t] = x[o_b + t + 1]. */
void dataset_batch(const dataset *d, data_split s, int B, int T, rng_t *rng, int *inputs,
                   int *targets);
/* Rows row0 .. row0+nrows-1 of that batch (into inputs/targets of nrows x T): rng advances
 * over all B draws, so the ranks of a data-parallel job that take consecutive slices of one
 * batch see exactly the single process's batch, and keep the same sampler state. */
void dataset_batch_rows(const dataset *d, data_split s, int B, int T, int row0, int nrows, rng_t *rng,
                        int *inputs, int *targets);

/* Turns a byte dataset (a text file read as bytes) into its GPT-2 tokens, in place: the
 * vocabulary becomes the tokenizer's, the split is again 90/10 (of the tokens). */
void dataset_encode_text(dataset *d, bpe_tokenizer *t);

/* Writes tokens as an llm.c token file (atomic). */
int llmc_tokens_save(const char *path, const uint16_t *tokens, size_t n, sattn_err *e);

#endif
