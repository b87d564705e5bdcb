/* sattn sample (sattn demo lives in cmd_demo.c). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "cli.h"
#include "gpt2text.h"
#include "lenpolicy.h"
#include "opts.h"
#include "sattn/heads.h"
#include "sattn/hybrid.h"
#include "sattn/hybrid_decode.h"

static const cli_cmd SAMPLE = {
    "sample", NULL,
    "Generates N tokens after the prompt at temperature X. Byte-level models print text; models of\n"
    "GPT-2's vocabulary (50257 or more) encode the prompt and print text with the GPT-2 tokenizer\n"
    "(--vocab, or data/gpt2 when it is there; without it and without --prompt they print token ids);\n"
    "other models print token ids.",
    NULL};

typedef struct {
    const char *model, *prompt, *heads, *vocab;
    int tokens, threads, attn;
    len_flags len;
    float temperature;
    uint64_t seed;
    cli_ctx ctx; /* --seq, --rope-scale, --rope-base */
} sample_args;

static int sample_parse(sample_args *a, int argc, char **argv) {
    opt_spec o[] = {
        cli_opt_model(&a->model, NULL),
        opt_str("prompt", &a->prompt, "TEXT", "the text to continue (default: a newline)"),
        opt_int("tokens", &a->tokens, 1, 1 << 20, "N", "tokens to generate"),
        opt_float("temperature", &a->temperature, 0, 0, 100, "X", "sampling temperature; 0 = greedy"),
        cli_opt_seed(&a->seed, "sampling seed"),
        cli_opt_threads(&a->threads),
        opt_str("heads", &a->heads, "HEADS",
                "sample from the hybrid model (these sparse heads swapped in); T for\n"
                "hybrid by length is the current context (prompt + generated, at most\n"
                "the model's context), so a forward switches to sparse as it grows"),
        cli_opt_dense_below(&a->len.dense_below),
        cli_opt_crossover_from(&a->len.crossover_from),
        cli_opt_attn(&a->attn),
        cli_opt_ctx_seq(&a->ctx),
        cli_opt_ctx_rope_scale(&a->ctx),
        cli_opt_ctx_rope_base(&a->ctx),
        cli_opt_vocab(&a->vocab),
    };
    int r = cli_parse(&SAMPLE, o, CLI_N(o), argc, argv);
    if (r) return r;
    if (a->prompt && !*a->prompt) return cli_fail("sample", "--prompt: expected non-empty text");
    if (a->heads && a->attn == GPT_ATTN_FLASH)
        return cli_fail("sample", "--attn flash: the sparse-head hook needs naive attention for the "
                                  "prefill, expected --attn naive with --heads");
    if (!a->heads && (a->len.dense_below >= 0 || a->len.crossover_from))
        return cli_fail("sample", "%s: applies to the hybrid model only; give --heads HEADS",
                        a->len.crossover_from ? "--crossover-from" : "--dense-below");
    return len_flags_check("sample", &a->len);
}

/* The tokenizer for m's text: for a model of GPT-2's vocabulary, the one in --vocab (which must
 * load), else the one in data/gpt2 when it is there or a prompt needs it; NULL (token ids are
 * printed) otherwise. Exit status. */
static int sample_vocab(const sample_args *a, const gpt_model *m, bpe_tokenizer **t) {
    struct stat sb;
    *t = NULL;
    if (m->cfg.vocab == 256) return 0;
    if (!cli_vocab_is_gpt2(m->cfg.vocab)) {
        if (a->prompt || a->vocab)
            return cli_fail("sample", "%s needs a byte-level model (vocab 256) or one of GPT-2's vocabulary "
                            "(50257 or more); this one has %d", a->prompt ? "--prompt" : "--vocab", m->cfg.vocab);
        return 0;
    }
    if (!a->vocab && !a->prompt && stat(BPE_DEFAULT_DIR "/encoder.json", &sb) != 0) return 0;
    *t = cli_vocab_load("sample", a->vocab);
    return *t ? 0 : 1;
}

/* The context generation starts from (room for n more): the prompt's bytes (byte model) or
 * GPT-2 tokens (t), else one start token: a newline, or GPT-2's <|endoftext|>. */
static int *start_context(const gpt_model *m, bpe_tokenizer *t, const char *prompt, int n, int *len) {
    size_t plen = prompt ? strlen(prompt) : 1, k = plen;
    uint16_t *ids = t && prompt ? bpe_encode(t, (const uint8_t *)prompt, plen, &k) : NULL;
    int *ctx = xmalloc((k + (size_t)n) * sizeof(int)), bytes = m->cfg.vocab == 256;
    for (size_t i = 0; i < k; i++)
        ctx[i] = ids ? ids[i] : prompt ? (unsigned char)prompt[i] : (bytes ? '\n' : (m->cfg.vocab > 50256 ? 50256 : 0));
    free(ids);
    *len = (int)k;
    return ctx;
}

/* Prints ctx as text (bytes, or GPT-2 tokens decoded: an id past the vocabulary as <|ID|>)
 * or as ids. */
static void print_context(const int *ctx, int len, int bytes, const bpe_tokenizer *t) {
    for (int i = 0; i < len; i++) {
        size_t l;
        const uint8_t *p = t ? bpe_token_bytes(t, ctx[i], &l) : NULL;
        if (bytes) putchar(ctx[i]);
        else if (p) fwrite(p, 1, l, stdout);
        else if (t) printf("<|%d|>", ctx[i]);
        else printf("%d%c", ctx[i], i + 1 < len ? ' ' : '\n');
    }
    if (bytes || t) putchar('\n');
}

/* Generates after prompt with the KV cache (hook: the sparse heads' decode side, or NULL)
 * and prints prompt + continuation (text for byte models and with a tokenizer). */
static int sample_print(gpt_model *m, const gen_decode_hook *hook, const sample_args *a, bpe_tokenizer *t) {
    int bytes = m->cfg.vocab == 256, len;
    int *ctx = start_context(m, t, a->prompt, a->tokens, &len);
    for (int i = 0; i < len; i++)
        if (ctx[i] >= m->cfg.vocab) {
            int id = ctx[i];
            free(ctx);
            return cli_fail("sample", "--prompt: token %d is outside the model's vocabulary (%d)", id, m->cfg.vocab);
        }
    rng_t rng;
    rng_seed(&rng, a->seed);
    gen_state g;
    gen_init(&g, m, hook);
    gen_sample(&g, ctx, &len, a->tokens, a->temperature, &rng);
    gen_free(&g);
    print_context(ctx, len, bytes, t);
    free(ctx);
    return 0;
}

/* Samples from the hybrid model: sh swapped in with the chosen length threshold. */
static int sample_hybrid(gpt_model *m, const sample_args *a, bpe_tokenizer *t) {
    sattn_err e;
    sparse_heads sh;
    if (heads_load(a->heads, &sh, &m->cfg, &e) != 0) return cli_fail("sample", "%s", e.msg);
    if (hybrid_decode_check(&sh, &e)) {
        sparse_heads_free(&sh);
        return cli_fail("sample", "%s: %s", a->heads, e.msg);
    }
    len_choice lc;
    int r = len_choose("sample", &a->len, &sh, m->cfg.channels, &lc);
    /* every head sparse at every length (a tile=1 plan, say): the prefill needs no T x T
     * softmax (hybrid by length runs dense forwards, which do) */
    if (!r && a->attn == CLI_ATTN_AUTO && hybrid_all_sparse(&sh) && lc.dense_below <= 0) m->cfg.attn = GPT_ATTN_HOOK;
    if (!r) {
        hybrid hy;
        hybrid_init(&hy, &sh, m->cfg.channels, m->cfg.heads);
        hybrid_set_dense_below(&hy, lc.dense_below);
        hybrid_attach(&hy, m);
        hdec hd;
        hdec_init(&hd, &hy, m->cfg.max_seq);
        r = sample_print(m, &hd.hook, a, t);
        hybrid_detach(m);
        int L = m->cfg.layers;
        /* a "forward" is one token's computation: a prefill or a cached decode step */
        long fd = (hy.fwd_dense + hd.steps_dense) / L, fs = (hy.fwd_sparse + hd.steps_sparse) / L;
        fprintf(stderr, "hybrid by length: %s; %ld forwards with every head dense, %ld with the sparse heads "
                        "(%ld prefills, %ld cached decode steps)\n",
                lc.desc, fd, fs, (hy.fwd_dense + hy.fwd_sparse) / L, (hd.steps_dense + hd.steps_sparse) / L);
        hdec_free(&hd);
        hybrid_free(&hy);
    }
    sparse_heads_free(&sh);
    return r;
}

int cmd_sample(int argc, char **argv) {
    sample_args a = {.attn = CLI_ATTN_AUTO, .tokens = 200, .temperature = 0.8f, .seed = 1337, .len = {.dense_below = -1}};
    int r = sample_parse(&a, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    if (a.threads) omp_set_num_threads(a.threads);
    gpt_model m;
    if (cli_load_model("sample", a.model, &m)) return 1;
    /* the prefill's attention; decode steps use the cache either way */
    m.cfg.attn = cli_attn_resolve(a.attn, a.ctx.seq > 0 ? a.ctx.seq : m.cfg.max_seq, a.heads != NULL);
    /* the window slides at the model's context; a RoPE model may be given a longer one */
    if (a.ctx.seq > 0 && a.ctx.seq < m.cfg.max_seq) {
        int ctx = m.cfg.max_seq;
        gpt_free(&m);
        return cli_fail("sample", "--seq %d: shorter than the model's context %d (expected a "
                        "longer window, for a RoPE model)", a.ctx.seq, ctx);
    }
    if (cli_model_context("sample", &m, a.ctx.seq, a.ctx.rope_scale, a.ctx.rope_base))
        return gpt_free(&m), 1;
    bpe_tokenizer *t;
    if (sample_vocab(&a, &m, &t)) return gpt_free(&m), 1;
    r = a.heads ? sample_hybrid(&m, &a, t) : sample_print(&m, NULL, &a, t);
    bpe_free(t);
    gpt_free(&m);
    return r;
}
