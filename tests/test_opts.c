/* Tests for the table-driven option parser (sattn/optparse.h): every kind stores what it
 * parses and refuses what is out of its range with a one-line message naming the flag,
 * what was expected and the bad value; unknown options, missing values, stray arguments
 * and missing required options are usage errors; --name=value, prefixes and options
 * after operands work as in getopt; seen records the order of first use; the help text
 * lists every option with its value name, help and default. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sattn/optparse.h"

typedef struct {
    int n, flag, e, list[4], nlist, call;
    uint64_t u;
    float x;
    const char *s, *req;
} targets;

static const char *const COLORS[] = {"red", "green", "blue", NULL};
static const int COLOR_VALUES[] = {10, 20, 30};

/* Accepts "ok" only. */
static int only_ok(const opt_spec *o, const char *v, sattn_err *e) {
    if (strcmp(v, "ok")) return err_set(e, "--%s: expected 'ok', got '%s'", o->name, v);
    ++*(int *)o->target;
    return 0;
}

#define NOPTS 9

/* The table under test, over t (defaults: n 4, x 0.5, u 7, e 20). */
static void table(targets *t, opt_spec *o) {
    *t = (targets){.n = 4, .x = 0.5f, .u = 7, .e = 20};
    opt_spec all[NOPTS] = {
        opt_int("num", &t->n, -3, 100, "N", "a number"),
        opt_flag("verbose", &t->flag, "talk more"),
        opt_float("rate", &t->x, 0, 1, 2.5, "X", "a rate in (0, 2.5]"),
        opt_u64("seed", &t->u, "S", "a seed"),
        opt_str("name", &t->s, "TEXT", "a name\nover two lines"),
        opt_enum("color", &t->e, COLORS, COLOR_VALUES, "a color"),
        opt_list("sizes", t->list, &t->nlist, 4, 1, 64, "LIST", "sizes (default none)"),
        opt_call("mode", &t->call, only_ok, "M", "the mode"),
        opt_required(opt_str("req", &t->req, "PATH", "a required path")),
    };
    memcpy(o, all, sizeof all);
}

/* Runs args (a NULL-terminated list after the command name) through the table. */
static int parse(targets *t, const char *const *args, sattn_err *e) {
    opt_spec o[NOPTS];
    table(t, o);
    char *argv[32] = {"cmd"};
    int argc = 1;
    for (; args[argc - 1]; argc++) argv[argc] = (char *)args[argc - 1];
    opts_cmd c = {"prog cmd", NULL, "What cmd does.", "The end.", o, NOPTS};
    e->msg[0] = 0;
    return opts_parse(&c, argc, argv, e);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void expect(int want, const char *const *args, const char *needle) {
    targets t;
    sattn_err e;
    int r = parse(&t, args, &e);
    cr_assert_eq(r, want, "%s ...: got %d (%s), expected %d", args[0], r, e.msg, want);
    cr_assert_not_null(strstr(e.msg, needle), "'%s' does not name '%s'", e.msg, needle);
    cr_assert_null(strchr(e.msg, '\n'), "not one line: '%s'", e.msg);
}

Test(opts, every_kind_stores_its_value) {
    targets t;
    sattn_err e;
    int r = parse(&t, ARGS("--req", "p", "--num", "-3", "--verbose", "--rate", "2.5", "--seed",
                           "18446744073709551615", "--name", "x y", "--color", "blue", "--sizes",
                           "8,,2,64", "--mode", "ok", "--mode", "ok"), &e);
    cr_assert_eq(r, OPTS_OK, "%s", e.msg);
    cr_assert_eq(t.n, -3);
    cr_assert_eq(t.flag, 1);
    cr_assert_float_eq(t.x, 2.5f, 0);
    cr_assert_eq(t.u, UINT64_MAX);
    cr_assert_str_eq(t.s, "x y");
    cr_assert_eq(t.e, 30);
    cr_assert_eq(t.nlist, 3);
    cr_assert(t.list[0] == 8 && t.list[1] == 2 && t.list[2] == 64);
    cr_assert_eq(t.call, 2, "a repeated option is parsed each time");
    cr_assert_str_eq(t.req, "p");
}

Test(opts, defaults_stay_when_not_given) {
    targets t;
    sattn_err e;
    cr_assert_eq(parse(&t, ARGS("--req", "p"), &e), OPTS_OK, "%s", e.msg);
    cr_assert(t.n == 4 && t.flag == 0 && t.x == 0.5f && t.u == 7 && !t.s && t.e == 20 && t.nlist == 0);
}

Test(opts, getopt_forms) {
    targets t;
    sattn_err e;
    /* --name=value, an unambiguous prefix, options after an operand-looking value */
    cr_assert_eq(parse(&t, ARGS("--num=12", "--verb", "--req=a=b", "--col", "red"), &e), OPTS_OK, "%s", e.msg);
    cr_assert(t.n == 12 && t.flag == 1 && !strcmp(t.req, "a=b") && t.e == 10);
    /* "--" ends the options: what follows is a stray argument */
    expect(OPTS_USAGE, ARGS("--req", "p", "--", "--num"), "unexpected argument '--num'");
}

Test(opts, ranges_and_values_refused) {
    expect(OPTS_BAD, ARGS("--num", "101"), "--num: expected an integer in [-3, 100], got '101'");
    expect(OPTS_BAD, ARGS("--num", "-4"), "got '-4'");
    expect(OPTS_BAD, ARGS("--num", "1.5"), "--num");
    expect(OPTS_BAD, ARGS("--num", ""), "got ''");
    expect(OPTS_BAD, ARGS("--num", "99999999999999999999"), "--num");
    expect(OPTS_BAD, ARGS("--rate", "0"), "--rate: expected a number > 0 and <= 2.5, got '0'");
    expect(OPTS_BAD, ARGS("--rate", "2.6"), "got '2.6'");
    expect(OPTS_BAD, ARGS("--rate", "nan"), "got 'nan'");
    expect(OPTS_BAD, ARGS("--rate", "inf"), "--rate");
    expect(OPTS_BAD, ARGS("--seed", "-1"), "--seed: expected a non-negative integer, got '-1'");
    expect(OPTS_BAD, ARGS("--seed", "18446744073709551616"), "--seed");
    expect(OPTS_BAD, ARGS("--color", "pink"), "--color: expected 'red', 'green' or 'blue', got 'pink'");
    expect(OPTS_BAD, ARGS("--sizes", "8,65"), "--sizes: expected an integer in [1, 64], got '65'");
    expect(OPTS_BAD, ARGS("--sizes", "8,8"), "--sizes: 8 given twice");
    expect(OPTS_BAD, ARGS("--sizes", "1,2,3,4,5"), "--sizes: at most 4 values");
    expect(OPTS_BAD, ARGS("--sizes", ","), "--sizes: expected a comma-separated list, got ','");
    expect(OPTS_BAD, ARGS("--mode", "no"), "--mode: expected 'ok', got 'no'");
}

Test(opts, usage_errors) {
    expect(OPTS_USAGE, ARGS("--req", "p", "--bogus"), "unknown option '--bogus'");
    expect(OPTS_USAGE, ARGS("--req", "p", "--verbose=1"), "unknown option '--verbose=1'");
    expect(OPTS_USAGE, ARGS("--req", "p", "-x"), "unknown option '-x'");
    expect(OPTS_USAGE, ARGS("--req", "p", "--n"), "unknown option '--n'"); /* ambiguous: num, name */
    expect(OPTS_USAGE, ARGS("--req", "p", "--num"), "option '--num' needs a value");
    expect(OPTS_USAGE, ARGS("--req", "p", "stray"), "unexpected argument 'stray'");
    expect(OPTS_BAD, ARGS("--num", "3"), "--req PATH is required");
}

Test(opts, first_problem_wins) {
    expect(OPTS_BAD, ARGS("--num", "x", "--bogus"), "--num");
    expect(OPTS_USAGE, ARGS("--bogus", "--num", "x"), "--bogus");
    expect(OPTS_HELP, ARGS("--num", "3", "--help", "--bogus"), "");
    expect(OPTS_BAD, ARGS("--num", "x", "--help"), "--num");
}

Test(opts, seen_is_the_order_of_first_use) {
    targets t;
    opt_spec o[NOPTS];
    table(&t, o);
    char *argv[] = {"cmd", "--rate", "1", "--req", "p", "--rate", "2", "--verbose"};
    opts_cmd c = {"prog cmd", NULL, NULL, NULL, o, NOPTS};
    sattn_err e;
    cr_assert_eq(opts_parse(&c, 8, argv, &e), OPTS_OK, "%s", e.msg);
    cr_assert_eq(opts_seen(o, NOPTS, "rate"), 1);
    cr_assert_eq(opts_seen(o, NOPTS, "req"), 2);
    cr_assert_eq(opts_seen(o, NOPTS, "verbose"), 3);
    cr_assert_eq(opts_seen(o, NOPTS, "num"), 0);
    cr_assert_eq(opts_seen(o, NOPTS, "nonexistent"), 0);
    cr_assert_float_eq(t.x, 2.0f, 0, "the last value counts");
}

Test(opts, help_lists_every_option) {
    targets t;
    opt_spec o[NOPTS];
    table(&t, o);
    opts_cmd c = {"prog cmd", NULL, "What cmd does.", "The end.", o, NOPTS};
    sbuf h = {0};
    opts_help(&c, &h);
    cr_assert(!strncmp(h.s, "usage: prog cmd --req PATH [options]\nWhat cmd does.\n", 52), "%s", h.s);
    static const char *const lines[] = {
        "  --num N             a number (default 4)\n",
        "  --verbose           talk more\n",
        "  --rate X            a rate in (0, 2.5] (default 0.5)\n",
        "  --seed S            a seed (default 7)\n",
        "  --name TEXT         a name\n                      over two lines\n",
        "  --color red|green|blue\n                      a color (default green)\n",
        "  --sizes LIST        sizes (default none)\n",
        "  --mode M            the mode\n",
        "  --req PATH          a required path\n",
    };
    const char *at = h.s;
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        const char *p = strstr(at, lines[i]);
        cr_assert_not_null(p, "help lacks (in order) '%s':\n%s", lines[i], h.s);
        at = p + strlen(lines[i]);
    }
    cr_assert_str_eq(at, "The end.\n", "%s", h.s);
    cr_assert_null(strstr(h.s, "%%"), "%s", h.s);
    sb_free(&h);
    /* a given usage replaces the generated one */
    opts_cmd u = {"prog cmd", "A | B", NULL, NULL, o, 0};
    opts_help(&u, &h);
    cr_assert_str_eq(h.s, "usage: prog cmd A | B\n");
    sb_free(&h);
}

Test(opts, value_alone) {
    float g = 0;
    sattn_err e;
    opt_spec o = opt_float("max-mem", &g, 0, 1, 1e9, "GIB", NULL);
    cr_assert_eq(opt_value(&o, "1.5", &e), 0);
    cr_assert_float_eq(g, 1.5f, 0);
    cr_assert_eq(opt_value(&o, "0", &e), -1);
    cr_assert_not_null(strstr(e.msg, "--max-mem: expected a number > 0"), "%s", e.msg);
}
