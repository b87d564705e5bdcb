/* Text for GPT-2-token models (docs/tokenizer.md): the --vocab option, loading the
 * tokenizer with a one-line error that says how to get the vocabulary, and the rule for
 * a text file given to a model whose vocabulary is GPT-2's. */
#ifndef SATTN_CLI_GPT2TEXT_H
#define SATTN_CLI_GPT2TEXT_H

#include "sattn/bpe.h"
#include "sattn/data.h"
#include "sattn/optparse.h"

/* --vocab DIR: the folder with encoder.json and vocab.bpe (NULL in the target: the default,
 * data/gpt2). */
opt_spec cli_opt_vocab(const char **target);
/* The tokenizer from dir (NULL: BPE_DEFAULT_DIR); NULL after a one-line "sattn CMD: ..." error. */
bpe_tokenizer *cli_vocab_load(const char *cmd, const char *dir);
/* Whether a model of this vocabulary reads text as GPT-2 tokens: GPT-2's 50257 or more
 * (llm.c pads the embedding to 50304). */
int cli_vocab_is_gpt2(int vocab);
/* A text file (d read as bytes) for a model of vocabulary `vocab`: encoded into GPT-2 tokens
 * in place when cli_vocab_is_gpt2(vocab), else left as it is. Exit status (0, or 1 after a
 * one-line error when the vocabulary cannot be loaded; d is then freed). */
int cli_text_for_model(const char *cmd, const char *dir, int vocab, dataset *d);

#endif
