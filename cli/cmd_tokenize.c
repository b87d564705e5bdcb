/* sattn tokenize: a text file into GPT-2 tokens, written as an llm.c token file. */
#define _POSIX_C_SOURCE 200809L /* stat */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "cli.h"
#include "gpt2text.h"
#include "opts.h"

static const cli_cmd TOKENIZE = {
    "tokenize", NULL,
    "Encodes a text file with the GPT-2 tokenizer (byte-level BPE, 50257 tokens; agrees token for\n"
    "token with the reference encoder, docs/tokenizer.md) and writes the ids as an llm.c token file\n"
    "(magic 20240520, version 1, uint16): --data reads it, the first 90% of its tokens train and the\n"
    "last 10% validate. Any bytes round-trip, invalid UTF-8 included. Prints the encode speed (one\n"
    "thread).",
    NULL};

typedef struct {
    const char *in, *out, *vocab;
    int json, bench;
} tokenize_args;

static int tokenize_parse(tokenize_args *a, int argc, char **argv) {
    opt_spec o[] = {
        opt_required(opt_str("in", &a->in, "TEXT", "the text file (any bytes)")),
        cli_opt_out(&a->out, "TOKENS", "the llm.c token file to write (atomically)"),
        cli_opt_vocab(&a->vocab),
        opt_int("bench", &a->bench, 1, 1000, "N",
                "encode N times, each with a fresh word cache, and report the median speed"),
        cli_opt_json(&a->json, "print {\"in\", \"out\", \"bytes\", \"tokens\", \"seconds\", \"mb_per_s\"}"),
    };
    int r = cli_parse(&TOKENIZE, o, CLI_N(o), argc, argv);
    if (r) return r;
    cli_file outs[] = {{"--out", a->out}, {NULL, NULL}};
    cli_file ins[] = {{"--in", a->in}, {NULL, NULL}};
    return cli_check_outputs("tokenize", outs, ins);
}

/* The text to encode: a regular, non-empty file that is not already a token file, and the
 * memory for it and its ids (at most one 2-byte id per byte) checked first. */
static int read_text(const char *path, uint8_t **text, size_t *n) {
    sattn_err e;
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) &&
        cli_mem_check("tokenize", "tokenizing the text", 3.0 * (double)sb.st_size,
                      "the text, and 2 bytes per byte for its ids at most"))
        return 1;
    if (file_read_all(path, text, n, &e)) return cli_fail("tokenize", "%s", e.msg);
    int32_t magic = 0;
    if (*n >= 4) memcpy(&magic, *text, 4);
    if (*n && magic != LLMC_TOKENS_MAGIC) return 0;
    free(*text);
    return cli_fail("tokenize", *n ? "%s: already an llm.c token file (magic %d), expected text"
                                   : "%s: empty file, expected text (a token file holds at least one token)",
                    path, LLMC_TOKENS_MAGIC);
}

/* Encodes text `runs` times (a fresh tokenizer, so a cold word cache, each time: loading is not
 * timed) and returns the median seconds; *ids gets the last run's ids. */
static double encode_timed(const char *dir, const uint8_t *text, size_t n, int runs, uint16_t **ids,
                           size_t *n_ids) {
    double *s = xmalloc((size_t)runs * sizeof *s);
    *ids = NULL;
    for (int r = 0; r < runs; r++) {
        bpe_tokenizer *t = cli_vocab_load("tokenize", dir);
        if (!t) return free(s), -1.0;
        free(*ids);
        double t0 = time_now();
        *ids = bpe_encode(t, text, n, n_ids);
        s[r] = time_now() - t0;
        bpe_free(t);
    }
    double med = median_sort(s, runs);
    free(s);
    return med;
}

static void report(const tokenize_args *a, size_t bytes, size_t tokens, double sec) {
    double mbs = sec > 0 ? (double)bytes / sec / 1e6 : 0.0;
    if (a->json) {
        printf("{\"in\": ");
        cli_json_str(a->in);
        printf(", \"out\": ");
        cli_json_str(a->out);
        printf(", \"bytes\": %zu, \"tokens\": %zu, \"seconds\": %.6f, \"mb_per_s\": %.2f}\n", bytes, tokens, sec, mbs);
        return;
    }
    printf("tokenize: %zu bytes -> %zu GPT-2 tokens (%.2f bytes/token) in %.3f s: %.1f MB/s encode, one "
           "thread%s\n", bytes, tokens, tokens ? (double)bytes / (double)tokens : 0.0, sec, mbs,
           a->bench > 1 ? " (median of the runs)" : "");
}

int cmd_tokenize(int argc, char **argv) {
    tokenize_args a = {.bench = 1};
    int r = tokenize_parse(&a, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    uint8_t *text;
    size_t n, n_ids = 0;
    if (read_text(a.in, &text, &n)) return 1;
    uint16_t *ids;
    double sec = encode_timed(a.vocab, text, n, a.bench, &ids, &n_ids);
    free(text);
    if (sec < 0) return 1;
    sattn_err e;
    r = llmc_tokens_save(a.out, ids, n_ids, &e) ? cli_fail("tokenize", "%s", e.msg) : 0;
    free(ids);
    if (!r) report(&a, n, n_ids, sec);
    return r;
}
