/* The shared options and cli_parse (opts.h). */
#include "opts.h"

#include <stdio.h>
#include <stdlib.h>

#include "args.h"

/* OPT_ENUM stores an int: these enums must be one. */
_Static_assert(sizeof(data_format) == sizeof(int), "data_format is not an int");
_Static_assert(sizeof(data_split) == sizeof(int), "data_split is not an int");

static opts_cmd table_of(const cli_cmd *c, opt_spec *opts, int n, char *prog, size_t len) {
    snprintf(prog, len, "sattn %s", c->name);
    return (opts_cmd){prog, c->usage, c->about, c->more, opts, n};
}

void cli_help(const cli_cmd *c, opt_spec *opts, int n, sbuf *out) {
    char prog[64];
    opts_cmd t = table_of(c, opts, n, prog, sizeof prog);
    opts_help(&t, out);
}

int cli_parse(const cli_cmd *c, opt_spec *opts, int n, int argc, char **argv) {
    char prog[64];
    opts_cmd t = table_of(c, opts, n, prog, sizeof prog);
    sattn_err e;
    int r = opts_parse(&t, argc, argv, &e);
    if (r == OPTS_HELP) {
        sbuf h = {0};
        opts_help(&t, &h);
        fputs(h.s, stdout);
        sb_free(&h);
        return 2;
    }
    if (r == OPTS_USAGE) return cli_fail(c->name, "%s (see sattn %s --help)", e.msg, c->name);
    return r ? cli_fail(c->name, "%s", e.msg) : 0;
}

opt_spec cli_opt_model(const char **target, const char *help) {
    const char *dflt = "the model: a sattn or llm.c checkpoint, a safetensors file or a\n"
                       "Hugging Face GPT-2 folder (docs/safetensors.md)";
    return opt_required(opt_str("model", target, "PATH", help ? help : dflt));
}

opt_spec cli_opt_data(const char **target, const char *help) {
    return opt_str("data", target, "PATH",
                   help ? help : "corpus: any file as bytes, or an llm.c token file (train = first\n"
                                 "90%, validation = last 10%)");
}

opt_spec cli_opt_data_format(data_format *target) {
    static const char *const names[] = {"auto", "bytes", "tokens", NULL};
    static const int values[] = {DATA_AUTO, DATA_BYTES, DATA_TOKENS};
    return opt_enum("data-format", (int *)target, names, values,
                    "how to read --data: auto (default: an llm.c token file if it\n"
                    "starts like one, else bytes), bytes, or tokens");
}

opt_spec cli_opt_split(data_split *target) {
    static const char *const names[] = {"val", "train", NULL};
    static const int values[] = {SPLIT_VAL, SPLIT_TRAIN};
    return opt_enum("split", (int *)target, names, values, "the split: validation (last 10%) or train");
}

opt_spec cli_opt_attn(int *target) {
    static const char *const names[] = {"auto", "naive", "flash", NULL};
    static const int values[] = {CLI_ATTN_AUTO, GPT_ATTN_NAIVE, GPT_ATTN_FLASH};
    return opt_enum("attn", target, names, values,
                    "dense attention kernel: naive (keeps every head's T x T softmax), flash\n"
                    "(tiled, keeps only the log-sum-exp: memory linear in T) or auto (default:\n"
                    "flash from T = 1024 on, where it measured faster; naive with sparse heads)");
}

int cli_attn_resolve(int attn, int T, int hooked) {
    if (attn != CLI_ATTN_AUTO) return attn;
    return !hooked && T >= CLI_ATTN_FLASH_FROM_T ? GPT_ATTN_FLASH : GPT_ATTN_NAIVE;
}

opt_spec cli_opt_threads(int *target) {
    return opt_int("threads", target, 1, 1024, "N", "OpenMP threads (default: OMP_NUM_THREADS, else all cores)");
}

opt_spec cli_opt_json(int *target, const char *help) {
    return opt_flag("json", target, help ? help : "print the result as one JSON object");
}

opt_spec cli_opt_out(const char **target, const char *arg, const char *help) {
    return opt_required(opt_str("out", target, arg, help));
}

opt_spec cli_opt_seed(uint64_t *target, const char *help) {
    return opt_u64("seed", target, "S", help ? help : "initialisation and batch seed");
}

opt_spec cli_opt_dense_below(int *target) {
    return opt_int("dense-below", target, 0, 1 << 30, "T",
                   "hybrid by length: forwards shorter than T tokens run every head\n"
                   "dense (the dense model exactly); 0 = sparse at every length;\n"
                   "no default");
}

opt_spec cli_opt_crossover_from(const char **target) {
    return opt_str("crossover-from", target, "CSV",
                   "the same, T = the measured prefill crossover in a `sattn bench\n"
                   "--csv` file for the plan's variant(s), nearest C and k");
}

opt_spec cli_opt_ctx_seq(cli_ctx *target) {
    return opt_int("seq", &target->seq, 1, 1 << 20, "T",
                   "context to run at (default: the model's; longer than its training\n"
                   "context only for a RoPE model)");
}

opt_spec cli_opt_ctx_rope_scale(cli_ctx *target) {
    return opt_float("rope-scale", &target->rope_scale, 0, 1, 1e6, "X",
                     "RoPE position interpolation factor for this run: position t is\n"
                     "rotated as t*X (default: the checkpoint's; --seq 2T with X 0.5\n"
                     "interpolates a model trained at T)");
}

opt_spec cli_opt_ctx_rope_base(cli_ctx *target) {
    return opt_float("rope-base", &target->rope_base, 0, 1, 1e12, "X",
                     "RoPE base for this run (default: the checkpoint's; a larger base\n"
                     "is NTK-aware scaling)");
}
