/* Flag parsing helpers for the CLI: every error is one line naming the
 * subcommand, the flag, what was expected and what was given. */
#ifndef SATTN_CLI_ARGS_H
#define SATTN_CLI_ARGS_H

#include <stdint.h>
#include <stdio.h>

int arg_int(const char *cmd, const char *flag, const char *s, long lo, long hi, int *out);
int arg_u64(const char *cmd, const char *flag, const char *s, uint64_t *out);
/* Accepts lo <= x <= hi (lo_open: lo < x). */
int arg_float(const char *cmd, const char *flag, const char *s, double lo, int lo_open, double hi,
              float *out);
/* Prints s with control bytes as \xNN and a backslash as \\ (input reaches error lines). */
void cli_fput_escaped(const char *s, FILE *f);
/* Prints "sattn CMD: message" to stderr, escaped as above; returns 1 (the exit status). */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Fails early (before any work) when an output file cannot be created: an existing
 * directory, or a path whose temporary sibling cannot be opened (the probe leaves no
 * file). path NULL: nothing to check. Exit status (0 or 1). */
int cli_check_out(const char *cmd, const char *flag, const char *path);

/* For getopt's '?' (unknown option) and ':' (missing value), run with opterr = 0 and
 * an optstring starting with ':'; any other c reports argv[optind] as a stray argument. */
int cli_usage_error(const char *cmd, int c, int argc, char **argv);

#endif
