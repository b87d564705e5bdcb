/* Shared helpers for the end-to-end tests of the sattn binary (tests/test_cli.c,
 * tests/test_sparse_cli.c, and the CLI parts of test_teacher.c, test_autoplan.c and
 * test_demo.c): run the binary with captured output, per-test temp directories, and
 * the "one stderr line, nothing written" failure checks.
 *
 * The binary is $SATTN_BIN (default build/sattn); tests run from the repo root.
 * Children get OMP_WAIT_POLICY=passive (unless set): with spinning OpenMP waits a
 * 2-thread run on a busy 2-core machine is ~30x slower; results are unaffected.
 *
 * Every helper fails the current Criterion test (cr_assert) on an I/O error; none
 * is a test itself. */
#ifndef SATTN_TESTS_CLI_UTIL_H
#define SATTN_TESTS_CLI_UTIL_H

#include <stddef.h>

#include "sattn/sparse.h"

#define CLI_MAX_ARGS 64
#define CLI_SHAKESPEARE "../shared/data/tinyshakespeare.txt"

/* The last command run (shell-quoted, for assertion messages) and the byte length
 * of its captured stdout. */
extern char cli_cmd[4096];
extern size_t cli_out_len;

const char *cli_bin(void);

/* The whole file, NUL-terminated (malloc'd); *len (if not NULL) gets its size. */
char *cli_slurp(const char *path, size_t *len);
void cli_spew(const char *path, const void *data, size_t n);
/* cli_spew of a NUL-terminated text (without the NUL). */
void cli_spew_str(const char *path, const char *text);
int cli_file_exists(const char *path);
int cli_files_equal(const char *a, const char *b);
/* Deterministic English-like text of n bytes (no dependency on a corpus file), NUL-
 * terminated (malloc'd); a shorter text is a prefix of a longer one. */
char *cli_make_text(size_t n);
/* cli_make_text(n) written to path. */
void cli_write_text(const char *path, size_t n);

/* Runs `sattn argv...` (argv NULL-terminated, without the binary name) with stdin
 * from /dev/null and stdout/stderr captured into *out / *err (malloc'd, NUL-
 * terminated; the caller frees them; NULL: discarded). Returns the exit status,
 * or 128 + signal. */
int cli_run(const char *argv[], char **out, char **err);
/* The same for any program: full[0] (found on PATH), full NULL-terminated. */
int cli_run_prog(const char *full[], char **out, char **err);

/* A growable argument list (always NULL-terminated). */
typedef struct {
    const char *v[CLI_MAX_ARGS + 1];
    int n;
} cli_args;

/* Appends the arguments up to a NULL. */
void cli_args_add(cli_args *a, ...);
/* Appends a NULL-terminated array. */
void cli_args_addv(cli_args *a, const char *const *extra);

/* A bad-flag case: args appended after valid base flags, and what stderr must name. */
typedef struct {
    const char *args[8]; /* NULL-terminated */
    const char *needle;
} cli_bad_case;

int cli_count_char(const char *s, char c);

/* A failure: non-zero exit (not a crash), nothing on stdout unless stdout_ok,
 * stderr exactly one line that starts with prefix and contains needle. */
void cli_check_fail_line(int rc, const char *out, const char *err, const char *prefix,
                         const char *needle, int stdout_ok);
/* Runs argv and expects a one-line "sattn ..." error naming needle. */
void cli_expect_fail(const char *argv[], const char *needle, int stdout_ok);
/* The same, returning that stderr line (caller frees) for further checks. */
char *cli_expect_fail_msg(const char *argv[], const char *needle, int stdout_ok);
/* Runs argv and expects exit 0; returns stdout (caller frees). */
char *cli_expect_ok(const char *argv[]);

/* A per-test directory under /tmp, removed (with everything in it) at the end. */
typedef struct {
    char dir[64];
    char buf[8][256];
    int next;
} cli_tdir;

void cli_tdir_open(cli_tdir *t);
/* dir/name in one of 8 rotating buffers (enough for one command line). */
const char *cli_tpath(cli_tdir *t, const char *name);
void cli_tdir_close(cli_tdir *t);
void cli_rm_tree(const char *path);
/* The number of entries in dir, not counting "." and "..". */
int cli_dir_entries(const char *dir);

/* A per-test directory under /tmp holding one file of the test: path = dir/name.
 * tmp_close removes that file and then the directory, and fails the test when
 * anything else is left (a temporary file an error path should have removed). */
typedef struct {
    char dir[64];
    char path[128];
} tmp_place;
void tmp_open(tmp_place *t, const char *name);
void tmp_close(tmp_place *t);

/* Fails if dir holds any entry whose name starts with prefix (the output, or its
 * "<out>.tmp.<pid>" temp file). */
void cli_assert_no_output(const char *dir, const char *prefix);

/* The number after "key": in a JSON text (the first occurrence). */
double cli_json_num(const char *json, const char *key);
/* Fails unless s is one JSON object on one line (ending in a newline). */
void cli_assert_json_line(const char *s);

/* The head spec of a plan-grammar text like "index+softmax:k=16" (the plan "all:<text>"
 * of a 1 x 1 model); fails the test when it does not parse. */
head_spec test_spec_of(const char *text);

#endif
