/* sattn sample (sattn demo lives in cmd_demo.c). */
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "lenpolicy.h"
#include "sattn/heads.h"
#include "sattn/hybrid.h"

static const char SAMPLE_HELP[] =
    "usage: sattn sample --model PATH [--prompt TEXT] [--tokens N] [--temperature X] [--seed S] [--threads N]\n"
    "                    [--heads HEADS [--dense-below T | --crossover-from CSV]]\n"
    "Generates N tokens (default 200) after the prompt (default a newline) at temperature X\n"
    "(default 0.8; 0 = greedy). Byte-level models print text; other models print token ids.\n"
    "  --heads HEADS       sample from the hybrid model (these sparse heads swapped in); T for\n"
    "                      hybrid by length is the current context (prompt + generated, at most\n"
    "                      the model's context), so a forward switches to sparse as it grows\n" LEN_POLICY_HELP;

enum { S_MODEL = 256, S_PROMPT, S_TOKENS, S_TEMP, S_SEED, S_THREADS, S_HEADS, S_DENSE_BELOW, S_CROSSOVER,
       S_HELP };
static const struct option SAMPLE_OPTS[] = {
    {"model", 1, 0, S_MODEL}, {"prompt", 1, 0, S_PROMPT}, {"tokens", 1, 0, S_TOKENS},
    {"temperature", 1, 0, S_TEMP}, {"seed", 1, 0, S_SEED}, {"threads", 1, 0, S_THREADS},
    {"heads", 1, 0, S_HEADS}, {"dense-below", 1, 0, S_DENSE_BELOW}, {"crossover-from", 1, 0, S_CROSSOVER},
    {"help", 0, 0, S_HELP}, {0, 0, 0, 0}};

typedef struct {
    const char *model, *prompt, *heads;
    int tokens, threads;
    len_flags len;
    float temperature;
    uint64_t seed;
} sample_args;

static int sample_parse(sample_args *a, int argc, char **argv) {
    int c, bad = 0;
    optind = 1;
    opterr = 0;
    while (!bad && (c = getopt_long(argc, argv, ":", SAMPLE_OPTS, NULL)) != -1) {
        switch (c) {
        case S_HELP: fputs(SAMPLE_HELP, stdout); return 2;
        case S_MODEL: a->model = optarg; break;
        case S_PROMPT: a->prompt = optarg; break;
        case S_TOKENS: bad = arg_int("sample", "tokens", optarg, 1, 1 << 20, &a->tokens); break;
        case S_TEMP: bad = arg_float("sample", "temperature", optarg, 0, 0, 100, &a->temperature); break;
        case S_SEED: bad = arg_u64("sample", "seed", optarg, &a->seed); break;
        case S_THREADS: bad = arg_int("sample", "threads", optarg, 1, 1024, &a->threads); break;
        case S_HEADS: a->heads = optarg; break;
        case S_DENSE_BELOW: bad = len_flag_dense_below("sample", optarg, &a->len); break;
        case S_CROSSOVER: a->len.crossover_from = optarg; break;
        default: return cli_usage_error("sample", c, argc, argv);
        }
    }
    if (bad) return 1;
    if (optind < argc) return cli_usage_error("sample", 0, argc, argv);
    if (!a->model) return cli_fail("sample", "--model PATH is required");
    if (a->prompt && !*a->prompt) return cli_fail("sample", "--prompt: expected non-empty text");
    if (!a->heads && (a->len.dense_below >= 0 || a->len.crossover_from))
        return cli_fail("sample", "%s: applies to the hybrid model only; give --heads HEADS",
                        a->len.crossover_from ? "--crossover-from" : "--dense-below");
    return len_flags_check("sample", &a->len);
}

/* Generates after prompt and prints prompt + continuation (text for byte models). */
static int sample_print(gpt_model *m, const char *prompt, int n, float temp, uint64_t seed) {
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
    sample_tokens(m, ctx, &len, n, temp, &rng);
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
    len_choice lc;
    int r = len_choose("sample", &a->len, &sh, m->cfg.channels, &lc);
    if (!r) {
        hybrid hy;
        hybrid_init(&hy, &sh, m->cfg.channels, m->cfg.heads);
        hybrid_set_dense_below(&hy, lc.dense_below);
        hybrid_attach(&hy, m);
        r = sample_print(m, a->prompt, a->tokens, a->temperature, a->seed);
        hybrid_detach(m);
        int L = m->cfg.layers;
        fprintf(stderr, "hybrid by length: %s; %ld forwards with every head dense, %ld with the sparse heads\n",
                lc.desc, hy.fwd_dense / L, hy.fwd_sparse / L);
        hybrid_free(&hy);
    }
    sparse_heads_free(&sh);
    return r;
}

int cmd_sample(int argc, char **argv) {
    sample_args a = {.tokens = 200, .temperature = 0.8f, .seed = 1337, .len = {.dense_below = -1}};
    int r = sample_parse(&a, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    if (a.threads) omp_set_num_threads(a.threads);
    sattn_err e;
    gpt_model m;
    if (ckpt_load(a.model, &m, NULL, &e) != 0) return cli_fail("sample", "%s", e.msg);
    r = a.heads ? sample_hybrid(&m, &a) : sample_print(&m, a.prompt, a.tokens, a.temperature, a.seed);
    gpt_free(&m);
    return r;
}
