#define _POSIX_C_SOURCE 200809L /* stat */
/* sattn convert: a model from any format sattn reads into sattn's, llm.c's, a safetensors
 * file or a Hugging Face GPT-2 folder (docs/safetensors.md). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "cli.h"
#include "opts.h"
#include "sattn/hfgpt2.h"

static const cli_cmd CONVERT = {
    "convert", NULL,
    "Reads --in (a sattn or llm.c checkpoint, a safetensors file or a Hugging Face GPT-2 folder:\n"
    "config.json + model.safetensors) and writes its weights to --out (no optimizer state).",
    "The output format, unless --format says it: a path ending in .safetensors is a safetensors\n"
    "file, one ending in / or an existing folder a Hugging Face folder (config.json +\n"
    "model.safetensors, made if missing), .bin llm.c's format, .ckpt sattn's. Anything else\n"
    "is an error. Safetensors and llm.c hold learned positions only (a RoPE model stays sattn)."};

enum { FMT_AUTO = -1 };
static const char *const FORMATS[] = {"sattn", "llmc", "safetensors", "hf", NULL};
static const int FORMAT_VALUES[] = {CKPT_SATTN, CKPT_LLMC, CKPT_SAFETENSORS, CKPT_HF};
static const char *const DTYPES[] = {"f32", "f16", "bf16", NULL};
static const stf_dtype DTYPE_OF[] = {STF_F32, STF_F16, STF_BF16}; /* by DTYPES' index */

typedef struct {
    const char *in, *out;
    int format, dtype; /* dtype: an index of DTYPES */
} convert_args;

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* The rule in CONVERT's help text. */
static int out_format(const char *out, int *fmt) {
    struct stat sb;
    if (ends_with(out, ".safetensors")) return *fmt = CKPT_SAFETENSORS, 0;
    if (ends_with(out, "/") || (stat(out, &sb) == 0 && S_ISDIR(sb.st_mode))) return *fmt = CKPT_HF, 0;
    if (ends_with(out, ".bin")) return *fmt = CKPT_LLMC, 0;
    if (ends_with(out, ".ckpt")) return *fmt = CKPT_SATTN, 0;
    return -1;
}

static int convert_parse(convert_args *a, int argc, char **argv) {
    opt_spec o[] = {
        opt_required(opt_str("in", &a->in, "PATH", "the model: sattn, llm.c, safetensors or a Hugging Face folder")),
        cli_opt_out(&a->out, "PATH", "where the model goes (a file, or a folder for hf)"),
        opt_enum("format", &a->format, FORMATS, FORMAT_VALUES,
                 "the output format: sattn, llmc, safetensors or hf (default: from --out's name)"),
        opt_enum("dtype", &a->dtype, DTYPES, NULL,
                 "safetensors and hf: the weights' dtype, f32, f16 or bf16 (rounded to nearest even)"),
    };
    int r = cli_parse(&CONVERT, o, CLI_N(o), argc, argv);
    if (r) return r;
    if (a->format == FMT_AUTO && out_format(a->out, &a->format))
        return cli_fail("convert", "--out %s: cannot tell the format from the name, expected a path ending in "
                                   ".safetensors, .bin, .ckpt or / (a folder), or --format", a->out);
    if (a->dtype && a->format != CKPT_SAFETENSORS && a->format != CKPT_HF)
        return cli_fail("convert", "--dtype %s: the %s format holds float32 only, expected --dtype f32 or a "
                                   "safetensors or hf output", DTYPES[a->dtype], FORMATS[a->format]);
    return 0;
}

/* A file output must not be a folder, a folder output not a file. */
static int check_out(const convert_args *a) {
    struct stat sb;
    if (a->format != CKPT_HF) return cli_check_out("convert", "--out", a->out);
    if (stat(a->out, &sb) == 0 && !S_ISDIR(sb.st_mode))
        return cli_fail("convert", "--out %s: not a folder, expected a folder (or a new path) for --format hf",
                        a->out);
    return 0;
}

int cmd_convert(int argc, char **argv) {
    convert_args a = {.format = FMT_AUTO};
    int r = convert_parse(&a, argc, argv);
    if (r) return r == 2 ? 0 : 1;
    if (check_out(&a)) return 1;
    gpt_model m;
    if (cli_load_model("convert", a.in, &m)) return 1;
    sattn_err e;
    if (a.format == CKPT_SAFETENSORS || a.format == CKPT_HF)
        r = hf_save(a.out, &m, a.format == CKPT_HF, DTYPE_OF[a.dtype], &e);
    else
        r = ckpt_save(a.out, (ckpt_format)a.format, &m, NULL, &e);
    if (r) return gpt_free(&m), cli_fail("convert", "%s", e.msg);
    const gpt_config *c = &m.cfg;
    printf("wrote %s (%s, %s): layers %d, heads %d, channels %d, context %d, vocab %d, %zu parameters\n", a.out,
           FORMATS[a.format], DTYPES[a.dtype], c->layers, c->heads, c->channels, c->max_seq, c->vocab, m.num_params);
    gpt_free(&m);
    return 0;
}
