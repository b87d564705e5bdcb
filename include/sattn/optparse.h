/* optparse: a table-driven parser of long command-line options.
 *
 * A command declares each option once, as an opt_spec made by the opt_* constructors
 * below: its name, kind, target, range, value name, help text and whether it is
 * required. opts_parse checks every value against its entry (an error is one line in a
 * sattn_err naming the flag, what was expected and what was given), then that every
 * required option was given; opts_help writes the help text from the same table.
 * getopt_long does the scanning, so "--name value", "--name=value", unambiguous prefixes
 * ("--thr" for "--threads") and options after operands work as they do in getopt.
 * Nothing here knows the program: its name comes in opts_cmd.prog, and the caller
 * prints the messages (and adds a pointer to --help to the usage errors). */
#ifndef SATTN_OPTPARSE_H
#define SATTN_OPTPARSE_H

#include <stdint.h>

#include "sattn/core.h"

typedef enum {
    OPT_FLAG,  /* no value: *(int *)target = 1 */
    OPT_INT,   /* an integer in [lo, hi]: *(int *)target */
    OPT_U64,   /* a non-negative integer: *(uint64_t *)target */
    OPT_FLOAT, /* a finite number in [lo, hi] ((lo, hi] with lo_open): *(float *)target */
    OPT_STR,   /* any text: *(const char **)target = the argument itself */
    OPT_ENUM,  /* one of names[]: *(int *)target = values[i] (i when values is NULL) */
    OPT_LIST,  /* comma-separated distinct integers in [lo, hi], at most max of them:
                * ((int *)target)[0 .. *count) */
    OPT_CALL,  /* call(o, value, e) parses it: grammars of one command's own */
} opt_kind;

typedef struct opt_spec opt_spec;
struct opt_spec {
    const char *name; /* without the dashes: "lr" */
    opt_kind kind;
    void *target;
    double lo, hi;   /* OPT_INT, OPT_FLOAT, OPT_LIST: the accepted range */
    int lo_open;     /* OPT_FLOAT: lo itself is refused */
    const char *arg; /* the value's name in the help and in "is required" ("PATH") */
    /* One line or more ('\n' between them). Where the target's start value is the
     * default, opts_help adds "(default X)" to INT, U64, FLOAT and ENUM options, unless
     * the text says "default" itself (a default that is not the start value). */
    const char *help;
    int required;
    const char *const *names; /* OPT_ENUM: the accepted values, NULL-terminated */
    const int *values;        /* OPT_ENUM: what each name stores (NULL: its index) */
    int *count, max;          /* OPT_LIST */
    /* OPT_CALL: 0, or -1 with a one-line message in e (starting "--name: ..."). */
    int (*call)(const opt_spec *o, const char *value, sattn_err *e);
    int seen; /* set by opts_parse: 0 when not given, else 1 + the options given before it */
};

opt_spec opt_flag(const char *name, int *target, const char *help);
opt_spec opt_int(const char *name, int *target, long lo, long hi, const char *arg, const char *help);
opt_spec opt_u64(const char *name, uint64_t *target, const char *arg, const char *help);
opt_spec opt_float(const char *name, float *target, double lo, int lo_open, double hi, const char *arg,
                   const char *help);
opt_spec opt_str(const char *name, const char **target, const char *arg, const char *help);
opt_spec opt_enum(const char *name, int *target, const char *const *names, const int *values,
                  const char *help);
opt_spec opt_list(const char *name, int *target, int *count, int max, long lo, long hi,
                  const char *arg, const char *help);
opt_spec opt_call(const char *name, void *target,
                  int (*call)(const opt_spec *o, const char *value, sattn_err *e), const char *arg,
                  const char *help);
/* o, required. */
opt_spec opt_required(opt_spec o);

/* Parses value as o says into o->target: 0, or -1 with a one-line message in e. */
int opt_value(const opt_spec *o, const char *value, sattn_err *e);

typedef struct {
    const char *prog;  /* the usage line's start: "sattn train" */
    const char *usage; /* what follows prog; NULL: the required options, then "[options]" */
    const char *about; /* what the command does, after the usage line (NULL: nothing) */
    const char *more;  /* after the option lines (NULL: nothing) */
    opt_spec *opts;
    int n;
} opts_cmd;

enum {
    OPTS_OK = 0,
    OPTS_HELP = 1,   /* --help was given (before any bad option): print opts_help */
    OPTS_BAD = -1,   /* a bad value, or a required option missing */
    OPTS_USAGE = -2, /* an unknown option, an option without its value, a stray argument */
};

/* Scans argv[1..argc) (argv[0] is the command) in order and stops at the first problem
 * or at --help (every command takes --help; it is not in the table). Sets each option's
 * seen. One of the OPTS_ codes; e holds the message for the negative ones. */
int opts_parse(const opts_cmd *c, int argc, char **argv, sattn_err *e);

/* The seen of the option called name in opts[0..n) (0: not given, or no such option). */
int opts_seen(const opt_spec *opts, int n, const char *name);

/* The help text: "usage: PROG USAGE", about, one line per option ("  --name ARG" and
 * its help, continuation lines indented), then more. Appended to out. */
void opts_help(const opts_cmd *c, sbuf *out);

#endif
