/* Helpers of every command: one-line errors ("sattn CMD: ..."), the checks of output
 * paths, the memory limit. The option tables are in opts.h. */
#ifndef SATTN_CLI_ARGS_H
#define SATTN_CLI_ARGS_H

#include <stdint.h>
#include <stdio.h>

#include "sattn/model.h"

/* Prints s with control bytes as \xNN and a backslash as \\ (input reaches error lines). */
void cli_fput_escaped(const char *s, FILE *f);
/* Prints "sattn CMD: message" to stderr, escaped as above; returns 1 (the exit status). */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints s to stdout as a JSON string: quotes, backslashes and control bytes escaped
 * (paths in the one-line JSON summaries may hold any of them); other bytes as they are. */
void cli_json_str(const char *s);
/* Loads the checkpoint at path into m; on failure prints "sattn CMD: <why>" and returns 1
 * (the exit status), else 0. */
int cli_load_model(const char *cmd, const char *path, gpt_model *m);
/* Fails early (before any work) when an output file cannot be created: an existing
 * directory, or a path whose temporary sibling cannot be opened (the probe leaves no
 * file). path NULL: nothing to check. Exit status (0 or 1). */
int cli_check_out(const char *cmd, const char *flag, const char *path);

/* A file a command reads or writes, named by its flag ("--out"); path NULL: not given. */
typedef struct {
    const char *flag, *path;
} cli_file;

/* The one rule for outputs, checked before any work: each output passes cli_check_out,
 * and no output is the same file as an input (same device and inode, so a symlink, a
 * hard link or "./x" vs "x" is caught, not only the same string) or as another output.
 * outs and ins end with an entry whose flag is NULL. Exit status (0 or 1). */
int cli_check_outputs(const char *cmd, const cli_file *outs, const cli_file *ins);

/* The memory limit for cli_mem_check, in bytes: the --max-mem GIB that any command
 * takes (main moves it into SATTN_MAX_MEM, GiB), 0 when none (then the machine's
 * available memory is the limit). */
double cli_max_mem_bytes(void);
/* Refuses (one line, exit status 1) a run whose estimated memory exceeds the limit:
 * need bytes, described by what and detail (see mem_check). */
int cli_mem_check(const char *cmd, const char *what, double need, const char *detail);
/* cli_mem_check for a model at (B, T), training or forward only, plus extra bytes
 * already held (the corpus). */
int cli_mem_check_model(const char *cmd, const char *what, const gpt_config *c, int B, int T,
                        int training, double extra);
/* The same with the sparse-head hook's own buffers (hybrid_mem_bytes) named in the detail. */
int cli_mem_check_hooked(const char *cmd, const char *what, const gpt_config *c, int B, int T,
                         int training, double extra, double hook);
/* Sets up m to run at context seq (0: its own) with the RoPE scale and base overridden where
 * given (> 0): gpt_set_context, then the overrides; a learned-position model refuses a
 * longer context and either override. Exit status (0 or 1, after a one-line error). */
int cli_model_context(const char *cmd, gpt_model *m, int seq, float rope_scale, float rope_base);
/* Removes "--max-mem G" / "--max-mem=G" from argv[2..] (every command takes it) into
 * SATTN_MAX_MEM. Exit status: 0, or 1 after a one-line error on a bad value. */
int cli_take_max_mem(int *argc, char **argv);

#endif
