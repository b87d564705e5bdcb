/* sattn sample (sattn demo lives in cmd_demo.c). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "lenpolicy.h"
#include "opts.h"
#include "sattn/heads.h"
#include "sattn/hybrid.h"
#include "sattn/hybrid_decode.h"

static const cli_cmd SAMPLE = {
    "sample", NULL,
    "Generates N tokens after the prompt at temperature X. Byte-level models print text;\n"
    "other models print token ids.",
    NULL};

typedef struct {
    const char *model, *prompt, *heads;
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

/* Generates after prompt with the KV cache (hook: the sparse heads' decode side, or NULL)
 * and prints prompt + continuation (text for byte models). */
static int sample_print(gpt_model *m, const gen_decode_hook *hook, const char *prompt, int n, float temp,
                        uint64_t seed) {
    int bytes = m->cfg.vocab == 256;
    if (prompt && !bytes)
        return cli_fail("sample", "--prompt needs a byte-level model (vocab 256); this one has %d",
                        m->cfg.vocab);
    size_t plen = prompt ? strlen(prompt) : 1;
    int *ctx = xmalloc((plen + (size_t)n) * sizeof(int)), len = (int)plen;
    for (size_t i = 0; i < plen; i++)
        ctx[i] = prompt ? (unsigned char)prompt[i] : (bytes ? '\n' : (m->cfg.vocab > 50256 ? 50256 : 0));
    rng_t rng;
    rng_seed(&rng, seed);
    gen_state g;
    gen_init(&g, m, hook);
    gen_sample(&g, ctx, &len, n, temp, &rng);
    gen_free(&g);
    for (int i = 0; i < len; i++)
        if (bytes) putchar(ctx[i]);
        else printf("%d%c", ctx[i], i + 1 < len ? ' ' : '\n');
    if (bytes) putchar('\n');
    free(ctx);
    return 0;
}

/* Samples from the hybrid model: sh swapped in with the chosen length threshold. */
static int sample_hybrid(gpt_model *m, const sample_args *a) {
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
        r = sample_print(m, &hd.hook, a->prompt, a->tokens, a->temperature, a->seed);
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
    r = a.heads ? sample_hybrid(&m, &a) : sample_print(&m, NULL, a.prompt, a.tokens, a.temperature, a.seed);
    gpt_free(&m);
    return r;
}
