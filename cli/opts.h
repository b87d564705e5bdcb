/* The CLI's side of the option tables (sattn/optparse.h): the options that many
 * commands share, each declared once here, and cli_parse, which prints what the
 * parser says the sattn way (help on stdout; errors as one "sattn CMD: ..." line). */
#ifndef SATTN_CLI_OPTS_H
#define SATTN_CLI_OPTS_H

#include <stdint.h>

#include "sattn/data.h"
#include "sattn/optparse.h"

/* The number of entries of an option table (an array, not a pointer). */
#define CLI_N(table) ((int)(sizeof(table) / sizeof *(table)))

/* A command's help around its option lines (see opts_cmd). */
typedef struct {
    const char *name;  /* "train" */
    const char *usage; /* after "usage: sattn NAME"; NULL: generated from the table */
    const char *about; /* before the option lines */
    const char *more;  /* after them (NULL: nothing) */
} cli_cmd;

/* Parses argv (argv[0] is the command's name) against opts. 0: go on; 1: a one-line
 * error was printed (usage errors point to --help); 2: --help was printed (exit 0). */
int cli_parse(const cli_cmd *c, opt_spec *opts, int n, int argc, char **argv);
/* The help text of c (for tests and docs: the same text --help prints). */
void cli_help(const cli_cmd *c, opt_spec *opts, int n, sbuf *out);

/* ---- shared options (help: NULL for the standard text) ---- */

/* --model PATH, required: the checkpoint. */
opt_spec cli_opt_model(const char **target, const char *help);
/* --data PATH: the corpus (required unless the command has a default). */
opt_spec cli_opt_data(const char **target, const char *help);
/* --data-format auto|bytes|tokens. */
opt_spec cli_opt_data_format(data_format *target);
/* --split val|train. */
opt_spec cli_opt_split(data_split *target);
/* --attn auto|naive|flash: GPT_ATTN_NAIVE, GPT_ATTN_FLASH, or CLI_ATTN_AUTO (the default of
 * every command: resolved by cli_attn_resolve once the run's sequence length is known). */
enum { CLI_ATTN_AUTO = -1 };
/* Measured with scripts/bench-attn-default.sh (docs/flash.md): a whole training step with flash
 * is no slower than naive at T = 256 and 512 (within 2 %) and faster from T = 1024 on (1.13x,
 * 2048: 1.24x, 4096: 1.38x), so auto picks flash from here. */
enum { CLI_ATTN_FLASH_FROM_T = 1024 };
opt_spec cli_opt_attn(int *target);
/* The kernel for a run at sequence length T: attn itself unless it is CLI_ATTN_AUTO, then flash
 * from CLI_ATTN_FLASH_FROM_T on; naive whenever sparse heads are hooked in (hooked != 0: the
 * hook reads the T x T probabilities that only naive keeps). */
int cli_attn_resolve(int attn, int T, int hooked);
/* --threads N: OpenMP threads, 1..1024 (0 in the target: all cores). */
opt_spec cli_opt_threads(int *target);
/* --json: help says what is printed. */
opt_spec cli_opt_json(int *target, const char *help);
/* --out ARG, required: what is written. */
opt_spec cli_opt_out(const char **target, const char *arg, const char *help);
/* --seed S. */
opt_spec cli_opt_seed(uint64_t *target, const char *help);
/* --dense-below T and --crossover-from CSV: hybrid by length (lenpolicy.h). */
opt_spec cli_opt_dense_below(int *target);
opt_spec cli_opt_crossover_from(const char **target);

/* Running a checkpoint at another context (loss, sample; see cli_model_context in args.h):
 * --seq T (0 in the target: the model's context), --rope-scale X and --rope-base X (0: the
 * checkpoint's; RoPE models only). */
typedef struct {
    int seq;
    float rope_scale, rope_base;
} cli_ctx;
opt_spec cli_opt_ctx_seq(cli_ctx *target);
opt_spec cli_opt_ctx_rope_scale(cli_ctx *target);
opt_spec cli_opt_ctx_rope_base(cli_ctx *target);

#endif
