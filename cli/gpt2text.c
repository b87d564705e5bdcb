/* Text for GPT-2-token models: --vocab, the tokenizer's loading, text files as tokens. */
#include "gpt2text.h"

#include <stdlib.h>

#include "args.h"

opt_spec cli_opt_vocab(const char **target) {
    return opt_str("vocab", target, "DIR",
                   "the GPT-2 vocabulary: DIR/encoder.json and DIR/vocab.bpe (default " BPE_DEFAULT_DIR
                   ",\nwhich `bash scripts/deps.sh` fills)");
}

bpe_tokenizer *cli_vocab_load(const char *cmd, const char *dir) {
    sattn_err e;
    bpe_tokenizer *t = bpe_load(dir ? dir : BPE_DEFAULT_DIR, &e);
    if (!t) cli_fail(cmd, "%s", e.msg);
    return t;
}

int cli_vocab_is_gpt2(int vocab) { return vocab >= 50257; }

int cli_text_for_model(const char *cmd, const char *dir, int vocab, dataset *d) {
    if (!d->is_bytes || !cli_vocab_is_gpt2(vocab)) return 0;
    bpe_tokenizer *t = cli_vocab_load(cmd, dir);
    if (!t) return dataset_free(d), 1;
    dataset_encode_text(d, t);
    bpe_free(t);
    return 0;
}
