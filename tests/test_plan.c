/* Tests for plans and head specs: the documented examples parse to the expected
 * specs, the first matching entry wins, unmatched heads are dense, unspecified
 * options take the defaults, plan_format reads back exactly (inline and from a
 * file), and every malformed plan is a one-line error naming the entry (or
 * file:line) and the offending token. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_util.h"
#include "sattn/plan.h"

#define NL 4
#define NH 4
#define NHEADS (NL * NH)

static int spec_eq(const head_spec *a, const head_spec *b) {
    return a->sel == b->sel && a->fn == b->fn && a->k == b->k && a->k_min == b->k_min &&
           memcmp(&a->tau, &b->tau, sizeof a->tau) == 0 && a->rank == b->rank &&
           a->iheads == b->iheads && a->block == b->block && a->nblocks == b->nblocks &&
           a->bounds == b->bounds && a->hidden == b->hidden && a->mlp_q == b->mlp_q &&
           a->mlp_logits == b->mlp_logits;
}

static void assert_spec(const head_spec *got, const head_spec *want, int i) {
    char g[192], w[192];
    head_spec_format(got, g, sizeof g);
    head_spec_format(want, w, sizeof w);
    cr_assert(spec_eq(got, want), "head %d (L%dH%d): got %s, expected %s", i, i / NH, i % NH, g, w);
}

static head_spec make(sel_kind sel, hfn_kind fn) {
    head_spec s = head_spec_default();
    s.sel = sel;
    s.fn = fn;
    return s;
}

static void parse_ok(const char *text, head_spec *specs) {
    sattn_err e = {{0}};
    cr_assert_eq(plan_parse(text, NULL, NL, NH, specs, &e), 0, "'%s': %s", text, e.msg);
}

static void assert_one_line(const sattn_err *e, const char *a, const char *b) {
    cr_assert_null(strchr(e->msg, '\n'), "message spans lines: %s", e->msg);
    cr_assert(strlen(e->msg) > 0);
    cr_assert_not_null(strstr(e->msg, a), "message lacks '%s': %s", a, e->msg);
    if (b) cr_assert_not_null(strstr(e->msg, b), "message lacks '%s': %s", b, e->msg);
}

/* An inline plan that must fail, with a message naming `where` and `token`. */
static void parse_bad(const char *text, const char *where, const char *token) {
    head_spec specs[NHEADS];
    sattn_err e = {{0}};
    cr_assert_eq(plan_parse(text, NULL, NL, NH, specs, &e), -1, "'%s' parsed", text);
    assert_one_line(&e, where, token);
}

/* ---------------------------------------------------------------- examples */

Test(plan, example_all_index_softmax) {
    head_spec s[NHEADS];
    parse_ok("all:index+softmax:k=16", s);
    head_spec want = make(SEL_INDEX, HFN_SOFTMAX);
    want.k = 16;
    for (int i = 0; i < NHEADS; i++) assert_spec(&s[i], &want, i);
}

Test(plan, example_one_block_head_rest_dense) {
    head_spec s[NHEADS];
    parse_ok("L0H1:block+softmax:b=16,n=4; *:dense", s);
    head_spec blk = make(SEL_BLOCK, HFN_SOFTMAX), dense = head_spec_default();
    blk.block = 16;
    blk.nblocks = 4;
    for (int i = 0; i < NHEADS; i++) assert_spec(&s[i], i == 1 ? &blk : &dense, i);
}

Test(plan, example_layer_mlp_rest_dynamic_k) {
    head_spec s[NHEADS];
    parse_ok("L1:index+mlp:k=8,hidden=256; *:index+softmax:k=16,tau=0.9,kmin=4", s);
    head_spec mlp = make(SEL_INDEX, HFN_MLP), dyn = make(SEL_INDEX, HFN_SOFTMAX);
    mlp.k = 8;
    mlp.hidden = 256;
    dyn.k = 16;
    dyn.tau = 0.9f;
    dyn.k_min = 4;
    for (int i = 0; i < NHEADS; i++) assert_spec(&s[i], i / NH == 1 ? &mlp : &dyn, i);
}

Test(plan, every_option_is_read) {
    head_spec s[NHEADS];
    parse_ok("H0:pos+mlp:k=5,kmin=2,tau=0.5,hidden=64,q=0,logits=0;"
             "H1:index+softmax:k=7,r=8,j=2;"
             "H2:block+mlp:b=8,n=3,bounds=1,hidden=32", s);
    head_spec p = make(SEL_POS, HFN_MLP), x = make(SEL_INDEX, HFN_SOFTMAX),
              b = make(SEL_BLOCK, HFN_MLP), d = head_spec_default();
    p.k = 5, p.k_min = 2, p.tau = 0.5f, p.hidden = 64, p.mlp_q = 0, p.mlp_logits = 0;
    x.k = 7, x.rank = 8, x.iheads = 2;
    b.block = 8, b.nblocks = 3, b.bounds = 1, b.hidden = 32;
    const head_spec *by_head[NH] = {&p, &x, &b, &d};
    for (int i = 0; i < NHEADS; i++) assert_spec(&s[i], by_head[i % NH], i);
}

/* ---------------------------------------------------------------- semantics */

Test(plan, first_matching_entry_wins) {
    head_spec s[NHEADS];
    parse_ok("L0H0:pos+softmax:k=2; L0:index+softmax:k=3; H2:block+softmax:b=4; "
             "all:index+mlp; L0H1:dense", s);
    for (int i = 0; i < NHEADS; i++) {
        int l = i / NH, h = i % NH;
        sel_kind sel = l == 0 && h == 0 ? SEL_POS : l == 0 ? SEL_INDEX
                     : h == 2            ? SEL_BLOCK : SEL_INDEX;
        cr_assert_eq(s[i].sel, sel, "head L%dH%d: selector %d, expected %d", l, h, s[i].sel, sel);
    }
    cr_assert_eq(s[0].k, 2);
    cr_assert_eq(s[1].k, 3); /* L0H1 taken by L0 before the later dense entry */
    cr_assert_eq(s[1 * NH + 2].block, 4);
    cr_assert_eq(s[1 * NH + 0].fn, HFN_MLP);
}

Test(plan, unmatched_heads_are_dense_with_defaults) {
    head_spec s[NHEADS], d = head_spec_default();
    parse_ok("L2H3:index+softmax", s);
    for (int i = 0; i < NHEADS; i++)
        if (i != 2 * NH + 3) assert_spec(&s[i], &d, i);
    head_spec want = make(SEL_INDEX, HFN_SOFTMAX);
    assert_spec(&s[2 * NH + 3], &want, 2 * NH + 3);
}

Test(plan, defaults_for_unspecified_options) {
    head_spec d = head_spec_default();
    cr_assert_eq(d.sel, SEL_DENSE);
    cr_assert_eq(d.fn, HFN_SOFTMAX);
    cr_assert(d.k == 16 && d.k_min == 1 && d.tau == 0.0f && d.rank == 16 && d.iheads == 4);
    cr_assert(d.block == 16 && d.nblocks == 4 && d.bounds == 0 && d.hidden == 128);
    cr_assert(d.mlp_q == 1 && d.mlp_logits == 1);
    head_spec s[NHEADS];
    parse_ok("*:pos+mlp:k=3", s);
    head_spec want = make(SEL_POS, HFN_MLP);
    want.k = 3;
    for (int i = 0; i < NHEADS; i++) assert_spec(&s[i], &want, i);
}

Test(plan, spaces_tabs_empty_entries_and_case) {
    head_spec a[NHEADS], b[NHEADS];
    parse_ok(" ;; l1h2 :\tindex + softmax : k = 4 , r = 8 ;\n\n ; all : dense ; ", a);
    parse_ok("L1H2:index+softmax:k=4,r=8", b);
    for (int i = 0; i < NHEADS; i++) assert_spec(&a[i], &b[i], i);
}

/* ---------------------------------------------------------------- text form */

Test(plan, head_spec_format_examples) {
    char buf[192];
    head_spec s = head_spec_default();
    head_spec_format(&s, buf, sizeof buf);
    cr_assert_str_eq(buf, "dense");
    s = make(SEL_INDEX, HFN_SOFTMAX);
    head_spec_format(&s, buf, sizeof buf);
    cr_assert_str_eq(buf, "index+softmax:k=16,r=16,j=4");
    s = make(SEL_BLOCK, HFN_SOFTMAX);
    head_spec_format(&s, buf, sizeof buf);
    cr_assert_str_eq(buf, "block+softmax:b=16,n=4");
    s = make(SEL_POS, HFN_MLP);
    s.k = 3;
    head_spec_format(&s, buf, sizeof buf);
    cr_assert_str_eq(buf, "pos+mlp:k=3,hidden=128");
    s = make(SEL_INDEX, HFN_SOFTMAX);
    s.tau = 0.9f;
    s.k_min = 4;
    head_spec_format(&s, buf, sizeof buf);
    cr_assert_str_eq(buf, "index+softmax:k=16,r=16,j=4,tau=0.9,kmin=4");
    s = make(SEL_BLOCK, HFN_MLP);
    s.bounds = 1;
    s.mlp_q = 0;
    s.mlp_logits = 0;
    head_spec_format(&s, buf, sizeof buf);
    cr_assert_str_eq(buf, "block+mlp:b=16,n=4,bounds=1,hidden=128,q=0,logits=0");
}

Test(plan, head_spec_format_truncates_safely) {
    char buf[8];
    memset(buf, 'x', sizeof buf);
    head_spec s = make(SEL_INDEX, HFN_MLP);
    head_spec_format(&s, buf, sizeof buf);
    cr_assert_str_eq(buf, "index+m");
    head_spec_format(&s, buf, 1);
    cr_assert_eq(buf[0], '\0');
}

/* A spec for every head, covering every selector x function and odd option values. */
static void varied_specs(head_spec *s) {
    for (int i = 0; i < NHEADS; i++) {
        s[i] = make((sel_kind)(i % 4), (hfn_kind)(i / 4 % 2));
        s[i].k = 1 + i;
        s[i].rank = 1 + 3 * i;
        s[i].iheads = 1 + i % 5;
        s[i].block = 2 + i;
        s[i].nblocks = 1 + i % 3;
        s[i].bounds = i % 3 == 0;
        s[i].hidden = 7 + i;
        s[i].mlp_q = i % 2;
        s[i].mlp_logits = i / 2 % 2;
        if (s[i].sel == SEL_POS || s[i].sel == SEL_INDEX) {
            s[i].tau = i % 3 ? 0.123456789f * (float)i / 7.0f : 0.0f;
            s[i].k_min = s[i].tau > 0 ? 1 + i / 2 : 1;
        }
    }
}

/* What the canonical text can carry: options that do not apply keep their defaults. */
static head_spec relevant_only(const head_spec *s) {
    if (s->sel == SEL_DENSE) return head_spec_default();
    head_spec r = make(s->sel, s->fn), d = head_spec_default();
    if (s->sel != SEL_BLOCK) r.k = s->k, r.tau = s->tau, r.k_min = s->k_min;
    if (s->sel == SEL_INDEX) r.rank = s->rank, r.iheads = s->iheads;
    if (s->sel == SEL_BLOCK) r.block = s->block, r.nblocks = s->nblocks, r.bounds = s->bounds;
    if (s->sel == SEL_POS || s->fn == HFN_MLP) r.hidden = s->hidden;
    if (s->fn == HFN_MLP) r.mlp_q = s->mlp_q, r.mlp_logits = s->mlp_logits;
    if (r.tau == 0.0f) r.k_min = d.k_min;
    return r;
}

Test(plan, format_parse_round_trip) {
    head_spec s[NHEADS], back[NHEADS];
    varied_specs(s);
    char *text = plan_format(s, NL, NH);
    cr_assert_not_null(strstr(text, "L0H0:dense\n"), "%s", text);
    cr_assert_not_null(strstr(text, "L3H3:block+mlp:"), "%s", text);
    parse_ok(text, back);
    for (int i = 0; i < NHEADS; i++) {
        head_spec want = relevant_only(&s[i]);
        assert_spec(&back[i], &want, i);
    }
    /* Canonical: formatting what was read gives the same text. */
    char *again = plan_format(back, NL, NH);
    cr_assert_str_eq(again, text);
    free(again);
    free(text);
}

/* ---------------------------------------------------------------- files */

Test(plan, file_with_comments_and_newlines) {
    tmp_place t;
    tmp_open(&t, "p.plan");
    cli_spew_str(t.path, "# a plan for a 4x4 model\r\n"
                       "\n"
                       "L1: index+mlp: k=8, hidden=256   # layer 1: mlp heads\r\n"
                       "L0H1:block+softmax:b=16,n=4; L0:dense # rest of layer 0 dense\n"
                       "   # a comment line; not an entry: all:pos+mlp\n"
                       "*:index+softmax:k=16,tau=0.9,kmin=4"); /* no final newline */
    head_spec a[NHEADS], b[NHEADS];
    sattn_err e = {{0}};
    cr_assert_eq(plan_load(t.path, NL, NH, a, &e), 0, "%s", e.msg);
    parse_ok("L1:index+mlp:k=8,hidden=256; L0H1:block+softmax:b=16,n=4; L0:dense;"
             "*:index+softmax:k=16,tau=0.9,kmin=4", b);
    for (int i = 0; i < NHEADS; i++) assert_spec(&a[i], &b[i], i);
    tmp_close(&t);
}

Test(plan, load_inline_when_not_a_file) {
    head_spec a[NHEADS], b[NHEADS];
    sattn_err e = {{0}};
    cr_assert_eq(plan_load("all:index+softmax:k=16", NL, NH, a, &e), 0, "%s", e.msg);
    parse_ok("all:index+softmax:k=16", b);
    for (int i = 0; i < NHEADS; i++) assert_spec(&a[i], &b[i], i);
}

Test(plan, save_load_round_trip) {
    tmp_place t;
    tmp_open(&t, "out.plan");
    head_spec s[NHEADS], back[NHEADS];
    varied_specs(s);
    sattn_err e = {{0}};
    cr_assert_eq(plan_save(t.path, s, NL, NH, &e), 0, "%s", e.msg);
    cr_assert_eq(plan_load(t.path, NL, NH, back, &e), 0, "%s", e.msg);
    for (int i = 0; i < NHEADS; i++) {
        head_spec want = relevant_only(&s[i]);
        assert_spec(&back[i], &want, i);
    }
    tmp_close(&t);
}

Test(plan, save_into_missing_directory_fails) {
    head_spec s[NHEADS];
    parse_ok("all:dense", s);
    sattn_err e = {{0}};
    cr_assert_eq(plan_save("/tmp/sattn-no-such-dir-x/p.plan", s, NL, NH, &e), -1);
    assert_one_line(&e, "/tmp/sattn-no-such-dir-x/p.plan", "cannot create");
}

Test(plan, file_errors_name_path_and_line) {
    tmp_place t;
    tmp_open(&t, "bad.plan");
    cli_spew_str(t.path, "# comment\nL0:dense\n\n  L1:index+softmax:k=4;  L2:index+sofmax:k=4\n");
    head_spec s[NHEADS];
    sattn_err e = {{0}};
    cr_assert_eq(plan_load(t.path, NL, NH, s, &e), -1);
    char where[160];
    snprintf(where, sizeof where, "%s:4:", t.path);
    assert_one_line(&e, where, "'sofmax'");
    cr_assert_not_null(strstr(e.msg, "L2:index+sofmax:k=4"), "%s", e.msg);

    cli_spew_str(t.path, "L0:dense\nL9:dense\n");
    cr_assert_eq(plan_load(t.path, NL, NH, s, &e), -1);
    snprintf(where, sizeof where, "%s:2:", t.path);
    assert_one_line(&e, where, "layer 9 out of range: model has 4 layers");

    cli_spew_str(t.path, "# nothing but comments\n\n;  ;\n");
    cr_assert_eq(plan_load(t.path, NL, NH, s, &e), -1);
    assert_one_line(&e, t.path, "empty");

    cli_spew_str(t.path, "all:dense\n");
    FILE *f = fopen(t.path, "ab");
    fputc('\0', f);
    fclose(f);
    cr_assert_eq(plan_load(t.path, NL, NH, s, &e), -1);
    assert_one_line(&e, t.path, "NUL");
    tmp_close(&t);
}

Test(plan, load_missing_file_or_directory) {
    head_spec s[NHEADS];
    sattn_err e = {{0}};
    cr_assert_eq(plan_load("/tmp/sattn-no-such.plan", NL, NH, s, &e), -1);
    assert_one_line(&e, "/tmp/sattn-no-such.plan", "no such plan file");
    cr_assert_eq(plan_load("/tmp", NL, NH, s, &e), -1);
    assert_one_line(&e, "/tmp", "directory");
}

/* /dev/null exists: it is not "no such plan file" but a device; an empty file says so. */
Test(plan, load_device_or_empty_file_says_what_is_wrong) {
    head_spec s[NHEADS];
    sattn_err e = {{0}};
    cr_assert_eq(plan_load("/dev/null", NL, NH, s, &e), -1);
    cr_assert_str_eq(e.msg, "/dev/null: not a regular file (a device), expected a plan file or "
                            "an inline plan");
    tmp_place t;
    tmp_open(&t, "empty.plan");
    cli_spew(t.path, "", 0);
    cr_assert_eq(plan_load(t.path, NL, NH, s, &e), -1);
    assert_one_line(&e, t.path, "empty file, expected a plan");
    tmp_close(&t);
}

/* ---------------------------------------------------------------- inline errors */

Test(plan, error_unknown_selector_function_option) {
    parse_bad("all:foo+softmax", "plan entry 1 'all:foo+softmax'", "unknown selector 'foo'");
    parse_bad("all:index+bar", "plan entry 1", "unknown head function 'bar'");
    parse_bad("all:index+softmax:zz=3", "plan entry 1", "unknown option 'zz'");
    parse_bad("L0:dense; all:index+softmax:k=3,rank=4", "plan entry 2", "unknown option 'rank'");
}

Test(plan, error_missing_separators) {
    parse_bad("all index+softmax", "plan entry 1 'all index+softmax'", "missing ':'");
    parse_bad("all:indexsoftmax", "plan entry 1", "missing '+' in spec 'indexsoftmax'");
    parse_bad("all:index+softmax:k16", "plan entry 1", "missing '=' in option 'k16'");
    parse_bad("all:index+softmax:k=4,", "plan entry 1", "empty option");
    parse_bad(":index+softmax", "plan entry 1", "missing target");
    parse_bad("all:", "plan entry 1", "missing spec");
    parse_bad("all::k=3", "plan entry 1", "missing spec");
}

Test(plan, error_bad_target) {
    parse_bad("X3:dense", "plan entry 1", "unknown target 'X3'");
    parse_bad("L:dense", "plan entry 1", "unknown target 'L'");
    parse_bad("L1H:dense", "plan entry 1", "unknown target 'L1H'");
    parse_bad("L-1:dense", "plan entry 1", "unknown target 'L-1'");
    parse_bad("H1L0:dense", "plan entry 1", "unknown target 'H1L0'");
    parse_bad("L99999999999:dense", "plan entry 1", "unknown target");
    parse_bad("L0;all:dense", "plan entry 1 'L0'", "missing ':'");
}

Test(plan, error_index_out_of_range) {
    parse_bad("L9:dense", "plan entry 1", "layer 9 out of range: model has 4 layers");
    parse_bad("L0:dense;L3H4:dense", "plan entry 2", "head 4 out of range: model has 4 heads");
    parse_bad("H7:index+softmax", "plan entry 1", "head 7 out of range");
}

Test(plan, error_bad_number) {
    parse_bad("all:index+softmax:k=abc", "plan entry 1", "bad number 'abc' for option 'k'");
    parse_bad("all:index+softmax:k=", "plan entry 1", "bad number '' for option 'k'");
    parse_bad("all:index+softmax:k=1.5", "plan entry 1", "'1.5'");
    parse_bad("all:index+softmax:k=99999999999", "plan entry 1", "'99999999999'");
    parse_bad("all:index+softmax:tau=0.5x", "plan entry 1", "bad number '0.5x' for option 'tau'");
    parse_bad("all:index+softmax:tau=nan", "plan entry 1", "'nan'");
    parse_bad("all:block+softmax:bounds=2", "plan entry 1", "bad value '2' for option 'bounds'");
    parse_bad("all:index+mlp:q=yes", "plan entry 1", "'yes'");
}

Test(plan, error_value_out_of_range) {
    parse_bad("all:index+softmax:k=0", "plan entry 1", "k (keys per query) = 0");
    parse_bad("all:index+softmax:k=70000", "plan entry 1", "k (keys per query) = 70000");
    parse_bad("all:index+softmax:k=8,kmin=9,tau=0.5", "plan entry 1", "kmin");
    parse_bad("all:pos+softmax:tau=1.5", "plan entry 1", "tau (dynamic-k mass) = 1.5");
    parse_bad("all:pos+softmax:tau=-0.1", "plan entry 1", "tau");
    parse_bad("all:index+softmax:r=2000", "plan entry 1", "r (index rank) = 2000");
    parse_bad("all:index+softmax:j=65", "plan entry 1", "j (indexer heads) = 65");
    parse_bad("all:block+softmax:b=0", "plan entry 1", "b (keys per block) = 0");
    parse_bad("all:block+softmax:n=-3", "plan entry 1", "n (blocks per query) = -3");
    parse_bad("all:pos+mlp:hidden=0", "plan entry 1", "hidden (MLP width) = 0");
    parse_bad("all:block+softmax:b=65536,n=65536", "plan entry 1", "b*n");
}

Test(plan, error_duplicate_option) {
    parse_bad("all:index+softmax:k=3,k=4", "plan entry 1", "duplicate option 'k'");
    parse_bad("all:index+softmax:r=3, j=2 ,r=3", "plan entry 1", "duplicate option 'r'");
}

Test(plan, error_option_that_does_not_apply) {
    parse_bad("all:block+softmax:tau=0.5", "plan entry 1", "option 'tau'");
    parse_bad("all:block+softmax:k=8", "plan entry 1", "option 'k' does not apply");
    parse_bad("all:index+softmax:b=8", "plan entry 1", "option 'b' does not apply");
    parse_bad("all:index+softmax:hidden=8", "plan entry 1", "option 'hidden' does not apply");
    parse_bad("all:pos+softmax:q=0", "plan entry 1", "option 'q' does not apply");
    parse_bad("all:dense:k=3", "plan entry 1", "dense takes no options");
}

Test(plan, error_empty_plan) {
    parse_bad("", "plan", "empty plan");
    parse_bad(" ; ;\n  \n# all:dense\n", "plan", "empty plan");
}

Test(plan, error_bad_model_shape) {
    head_spec s[1];
    sattn_err e = {{0}};
    cr_assert_eq(plan_parse("all:dense", NULL, 0, 4, s, &e), -1);
    assert_one_line(&e, "0 layers", NULL);
}

/* ---------------------------------------------------------------- head_spec_check */

static void check_bad(head_spec s, const char *word) {
    sattn_err e = {{0}};
    cr_assert_eq(head_spec_check(&s, &e), -1, "accepted, expected an error about %s", word);
    assert_one_line(&e, word, NULL);
}

Test(plan, head_spec_check_ranges) {
    sattn_err e = {{0}};
    head_spec d = head_spec_default();
    d.k = -5; /* dense ignores the rest */
    cr_assert_eq(head_spec_check(&d, &e), 0, "%s", e.msg);
    for (int sel = SEL_POS; sel <= SEL_BLOCK; sel++)
        for (int fn = HFN_SOFTMAX; fn <= HFN_MLP; fn++) {
            head_spec s = make((sel_kind)sel, (hfn_kind)fn);
            cr_assert_eq(head_spec_check(&s, &e), 0, "%s", e.msg);
        }
    head_spec s = make(SEL_INDEX, HFN_SOFTMAX);
    head_spec t = s;
    t.sel = (sel_kind)7;
    check_bad(t, "selector 7");
    t = s, t.fn = (hfn_kind)2;
    check_bad(t, "head function 2");
    t = s, t.k = 65537;
    check_bad(t, "k (keys per query) = 65537 out of range, expected 1..65536");
    t = s, t.k = 65536;
    cr_assert_eq(head_spec_check(&t, &e), 0, "%s", e.msg);
    t = s, t.k_min = 0;
    check_bad(t, "kmin");
    t = s, t.tau = NAN;
    check_bad(t, "tau");
    t = s, t.rank = 1025;
    check_bad(t, "r (index rank) = 1025 out of range, expected 1..1024");
    t = s, t.iheads = 0;
    check_bad(t, "j (indexer heads) = 0 out of range, expected 1..64");
    t = s, t.nblocks = 65537;
    check_bad(t, "n (blocks per query)");
    t = s, t.hidden = 65537;
    check_bad(t, "hidden");
    t = s, t.bounds = 2;
    check_bad(t, "bounds");
    t = s, t.mlp_q = -1;
    check_bad(t, "q (mlp input q)");
    t = s, t.mlp_logits = 3;
    check_bad(t, "logits");
    t = make(SEL_BLOCK, HFN_SOFTMAX), t.tau = 0.5f;
    check_bad(t, "block selector");
}

/* ---------------------------------------------------------------- shared indexer */

/* shared=1: its own defaults r 32, j 1 (explicit r, j kept), canonical text round trip. */
Test(plan, shared_defaults_and_round_trip) {
    head_spec specs[NHEADS], back[NHEADS];
    parse_ok("L0:index+softmax:k=8,shared=1; L1:index+softmax:shared=1,r=8,j=2; *:dense", specs);
    cr_assert_eq(specs[0].shared, 1);
    cr_assert_eq(specs[0].rank, 32);
    cr_assert_eq(specs[0].iheads, 1);
    cr_assert_eq(specs[4].rank, 8);
    cr_assert_eq(specs[4].iheads, 2);
    cr_assert_eq(specs[8].shared, 0);
    char *text = plan_format(specs, NL, NH);
    cr_assert_not_null(strstr(text, "L0H3:index+softmax:k=8,r=32,j=1,shared=1"), "%s", text);
    parse_ok(text, back);
    for (int i = 0; i < NHEADS; i++) {
        assert_spec(&back[i], &specs[i], i);
        cr_assert_eq(back[i].shared, specs[i].shared);
    }
    free(text);
}

/* Every head of a shared layer must carry the same spec; shared only with index+softmax. */
Test(plan, shared_errors) {
    parse_bad("L0H0:index+softmax:k=8,shared=1; *:index+softmax:k=8", "head L0H1 is index+softmax:k=8,r=16,j=4",
              "expected every head of it to be index+softmax:k=8,r=32,j=1,shared=1");
    parse_bad("L1H2:index+softmax:shared=1; L1:dense", "head L1H0 is dense", "shared=1 gives layer 1 one indexer");
    parse_bad("L0H0:index+softmax:k=4,shared=1; L0:index+softmax:k=8,shared=1", "head L0H1", "L0H0");
    parse_bad("all:block+softmax:shared=1", "option 'shared' does not apply here", "index");
    parse_bad("all:index+mlp:shared=1", "shared = 1 with the mlp head function", NULL);
    parse_bad("all:index+softmax:shared=2", "bad value '2' for option 'shared'", NULL);
}
