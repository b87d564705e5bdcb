/* End to end: `sattn task` (table, JSON, every bad flag a one-line error with nothing
 * written), `sattn train --mix` (errors, summary, --resume exact with a mix and refused
 * when the mix changes) and `sattn report --task` (docs/tasks.md). */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "sattn/data.h"

/* A tiny byte model of context 128 (enough for a passkey sample) trained 2 steps. */
#define TINY128 "--layers", "1", "--heads", "2", "--dim", "16", "--seq", "128", "--batch", "4", \
                "--threads", "2", "--seed", "7", "--lr", "3e-3", "--warmup", "2"

static void make_model(cli_tdir *t, char *data, char *model) {
    snprintf(data, 256, "%s", cli_tpath(t, "d.txt"));
    snprintf(model, 256, "%s", cli_tpath(t, "m.ckpt"));
    cli_write_text(data, 20000);
    const char *a[] = {"train", "--data", data, "--out", model, TINY128, "--steps", "2", NULL};
    free(cli_expect_ok(a));
}

Test(task_cli, runs_and_writes_json, .timeout = 120) {
    cli_tdir t;
    cli_tdir_open(&t);
    char data[256], model[256], j1[256], j2[256];
    make_model(&t, data, model);
    snprintf(j1, sizeof j1, "%s", cli_tpath(&t, "a.json"));
    snprintf(j2, sizeof j2, "%s", cli_tpath(&t, "b.json"));
    const char *a[] = {"task", "--model", model, "--task", "passkey", "--lengths", "110,128", "--depths", "3",
                       "--samples", "3", "--json", j1, NULL};
    char *out = cli_expect_ok(a);
    cr_assert(strstr(out, "passkey accuracy") && strstr(out, "overall"), "%s", out);
    free(out);
    char *json = cli_slurp(j1, NULL);
    cli_assert_json_line(json);
    cr_assert(strstr(json, "\"task\": \"passkey\"") && strstr(json, "\"length\": 110") &&
              strstr(json, "\"depth\": 0.500000"), "%s", json);
    /* batch 1 (one forward per sample) gives the same file as batches of 4 */
    const char *b[] = {"task", "--model", model, "--task", "passkey", "--lengths", "110,128", "--depths", "3",
                       "--samples", "3", "--batch", "1", "--json", j2, NULL};
    free(cli_expect_ok(b));
    cr_assert(cli_files_equal(j1, j2), "--batch 1 and --batch 8 differ");
    free(json);
    /* needle and mqar run too */
    const char *n[] = {"task", "--model", model, "--task", "needle", "--data", data, "--lengths", "128",
                       "--depths", "2", "--samples", "2", "--json", j2, NULL};
    free(cli_expect_ok(n));
    const char *q[] = {"task", "--model", model, "--task", "mqar", "--pairs", "8", "--samples", "2", "--json", j2, NULL};
    out = cli_expect_ok(q);
    cr_assert(strstr(out, "mqar accuracy") && strstr(out, "     128 "), "%s", out);
    free(out);
    json = cli_slurp(j2, NULL);
    cr_assert(strstr(json, "\"depth\": null") && strstr(json, "\"answers\": 16") && strstr(json, "\"pairs\": 8"),
              "%s", json);
    free(json);
    /* the hybrid model: sparse heads swapped in */
    char heads[256];
    snprintf(heads, sizeof heads, "%s", cli_tpath(&t, "m.heads"));
    const char *di[] = {"distill", "--model", model, "--data", data, "--plan", "all:block+softmax:b=16,n=2", "--out",
                        heads, "--steps", "2", "--threads", "2", NULL};
    free(cli_expect_ok(di));
    const char *h[] = {"task", "--model", model, "--task", "passkey", "--heads", heads, "--depths", "2",
                       "--samples", "2", "--json", j2, NULL};
    free(cli_expect_ok(h));
    json = cli_slurp(j2, NULL);
    cr_assert(strstr(json, "\"heads\": \"") && strstr(json, "m.heads\""), "%s", json);
    /* every head sparse: the hook alone runs (no T x T buffer), and the JSON says so */
    cr_assert(strstr(json, "\"attn\": \"hook\""), "%s", json);
    free(json);
    const char *hn[] = {"task", "--model", model, "--task", "passkey", "--heads", heads, "--depths", "2",
                        "--samples", "2", "--attn", "naive", "--json", j2, NULL};
    free(cli_expect_ok(hn));
    json = cli_slurp(j2, NULL);
    cr_assert(strstr(json, "\"attn\": \"naive\""), "--attn naive asked: %s", json);
    free(json);
    cli_tdir_close(&t);
}

Test(task_cli, bad_flags, .timeout = 120) {
    cli_tdir t;
    cli_tdir_open(&t);
    char data[256], model[256], tok[256], tokmodel[256];
    make_model(&t, data, model);
    snprintf(tok, sizeof tok, "%s", cli_tpath(&t, "tok.bin"));
    uint16_t toks[3000];
    for (int i = 0; i < 3000; i++) toks[i] = (uint16_t)(i % 300);
    sattn_err e;
    cr_assert_eq(llmc_tokens_save(tok, toks, 3000, &e), 0, "%s", e.msg);
    snprintf(tokmodel, sizeof tokmodel, "%s", cli_tpath(&t, "tok.ckpt"));
    const char *tt[] = {"train", "--data", tok, "--out", tokmodel, "--layers", "1", "--heads", "1", "--dim", "8",
                        "--seq", "128", "--steps", "1", "--batch", "1", NULL};
    free(cli_expect_ok(tt));
    const char *out = cli_tpath(&t, "out.json");
    static const cli_bad_case cases[] = {
        {{"--task", "passkey", "--depths", "0"}, "--depths"},
        {{"--task", "passkey", "--lengths", "129"}, "length 129 is above the model's context 128"},
        {{"--task", "passkey", "--lengths", "64"}, "cannot hold the needle and the cue"},
        {{"--task", "passkey", "--lengths", "0"}, "--lengths"},
        {{"--task", "bogus"}, "bogus"},
        {{"--task", "needle"}, "--task needle needs --data"},
        {{"--task", "mqar", "--pairs", "64"}, "64 pairs need at least 256 tokens"},
        {{"--task", "mqar", "--pairs", "65"}, "--pairs"},
        {{"--task", "mqar", "--depths", "3"}, "--depths: mqar has no depth"},
        {{"--task", "passkey", "--pairs", "3"}, "--pairs: applies to --task mqar only"},
        {{"--task", "passkey", "--samples", "0"}, "--samples"},
        {{"--task", "passkey", "--heads", "h.heads", "--attn", "flash"}, "--heads"},
        {{"--task", "passkey", "--heads", "/nonexistent.heads"}, "/nonexistent.heads"},
        {{"--depths", "3"}, "--task passkey|needle|mqar is required"},
        {{"--task", "passkey", "stray"}, "stray"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_args a = {0};
        cli_args_add(&a, "task", "--model", model, "--json", out, NULL);
        cli_args_addv(&a, cases[i].args);
        cli_expect_fail(a.v, cases[i].needle, 0);
        cli_assert_no_output(t.dir, "out");
    }
    const char *pk_data[] = {"task", "--model", model, "--task", "passkey", "--data", data, NULL};
    cli_expect_fail(pk_data, "--data: only --task needle reads a corpus", 0);
    const char *tokm[] = {"task", "--model", tokmodel, "--task", "passkey", NULL};
    cli_expect_fail(tokm, "expected a byte-level model (vocab 256)", 0);
    const char *tokd[] = {"task", "--model", model, "--task", "needle", "--data", tok, "--json", out, NULL};
    cli_expect_fail(tokd, "token", 0);
    const char *short_data[] = {"task", "--model", model, "--task", "needle", "--data", data, "--split", "val",
                                "--lengths", "128", NULL};
    cli_write_text(data, 100);
    cli_expect_fail(short_data, "corpus has", 0);
    const char *dir[] = {"task", "--model", model, "--task", "passkey", "--json", t.dir, NULL};
    cli_expect_fail(dir, "is a directory", 0);
    const char *same[] = {"task", "--model", model, "--task", "passkey", "--json", model, NULL};
    cli_expect_fail(same, "same file as --model", 0);
    const char *no_model[] = {"task", "--task", "passkey", NULL};
    cli_expect_fail(no_model, "--model", 0);
    cli_assert_no_output(t.dir, "out");
    cli_tdir_close(&t);
}

Test(task_cli, train_mix, .timeout = 180) {
    cli_tdir t;
    cli_tdir_open(&t);
    char data[256], A[256], R[256], B[256], tok[256];
    snprintf(data, sizeof data, "%s", cli_tpath(&t, "d.txt"));
    snprintf(A, sizeof A, "%s", cli_tpath(&t, "A.ckpt"));
    snprintf(R, sizeof R, "%s", cli_tpath(&t, "R.ckpt"));
    snprintf(B, sizeof B, "%s", cli_tpath(&t, "B.ckpt"));
    snprintf(tok, sizeof tok, "%s", cli_tpath(&t, "tok.bin"));
    cli_write_text(data, 20000);
    static const cli_bad_case cases[] = {
        {{"--mix", "foo:0.1"}, "--mix: unknown task 'foo'"},
        {{"--mix", "passkey:1.5"}, "--mix: passkey: fraction '1.5'"},
        {{"--mix", "passkey:-1"}, "--mix: passkey: fraction '-1'"},
        {{"--mix", "passkey:0.6,mqar:0.6"}, "--mix: the fractions sum to 1.2"},
        {{"--mix", "passkey"}, "--mix: 'passkey': expected NAME:FRACTION"},
        {{"--mix", "passkey:0.1", "--seq", "64"}, "--mix: --seq 64 is too short for the mix"},
        {{"--mix-loss", "answers"}, "--mix-loss answers: there are no task rows without --mix"},
        {{"--mix", "passkey:0.1", "--mix-loss", "some"}, "--mix-loss"},
        {{"--mix-length", "varied"}, "--mix-length varied: there are no task rows without --mix"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_args a = {0};
        cli_args_add(&a, "train", "--data", data, "--out", A, TINY128, "--steps", "2", NULL);
        cli_args_addv(&a, cases[i].args);
        cli_expect_fail(a.v, cases[i].needle, 0);
        cli_assert_no_output(t.dir, "A.ckpt");
    }
    uint16_t toks[3000];
    for (int i = 0; i < 3000; i++) toks[i] = (uint16_t)(i % 300);
    sattn_err e;
    cr_assert_eq(llmc_tokens_save(tok, toks, 3000, &e), 0, "%s", e.msg);
    const char *tk[] = {"train", "--data", tok, "--out", A, TINY128, "--steps", "2", "--mix", "mqar:0.5", NULL};
    cli_expect_fail(tk, "byte-level corpus", 0);
    /* a mixed run: summary names the mix; stop + resume = straight */
    const char *a[] = {"train", "--data", data, "--out", A, TINY128, "--steps", "8", "--mix", "passkey:0.25,mqar:0.5",
                       "--json", NULL};
    char *o = cli_expect_ok(a);
    cr_assert(strstr(o, "\"mix\": \"passkey:0.25,mqar:0.5\""), "%s", o);
    free(o);
    const char *r[] = {"train", "--data", data, "--out", R, TINY128, "--steps", "8", "--mix", "passkey:0.25,mqar:0.5",
                       "--stop-at", "4", NULL};
    free(cli_expect_ok(r));
    const char *b[] = {"train", "--data", data, "--out", B, TINY128, "--steps", "8", "--mix", "passkey:0.25,mqar:0.5",
                       "--resume", R, NULL};
    free(cli_expect_ok(b));
    cr_assert(cli_files_equal(A, B), "8 mixed steps straight and 4 + resume differ");
    /* a changed (or dropped) mix is refused on --resume, unless --override-schedule */
    const char *c1[] = {"train", "--data", data, "--out", B, TINY128, "--steps", "8", "--mix", "passkey:0.5",
                        "--resume", R, NULL};
    cli_expect_fail(c1, "the checkpoint's run has --mix passkey:0.25,mqar:0.5, this one passkey:0.5", 0);
    const char *c2[] = {"train", "--data", data, "--out", B, TINY128, "--steps", "8", "--resume", R, NULL};
    cli_expect_fail(c2, "this one none", 0);
    const char *c3[] = {"train", "--data", data, "--out", B, TINY128, "--steps", "8", "--resume", R,
                        "--override-schedule", NULL};
    free(cli_expect_ok(c3));
    /* --mix-loss answers: in the summary, kept by the checkpoint (stop + resume = straight),
     * and a changed one is refused on --resume */
    const char *l1[] = {"train", "--data", data, "--out", A, TINY128, "--steps", "6", "--mix", "passkey:0.5",
                        "--mix-loss", "answers", "--json", NULL};
    o = cli_expect_ok(l1);
    cr_assert(strstr(o, "\"mix_loss\": \"answers\""), "%s", o);
    free(o);
    const char *l2[] = {"train", "--data", data, "--out", R, TINY128, "--steps", "6", "--mix", "passkey:0.5",
                        "--mix-loss", "answers", "--stop-at", "3", NULL};
    free(cli_expect_ok(l2));
    const char *l3[] = {"train", "--data", data, "--out", B, TINY128, "--steps", "6", "--mix", "passkey:0.5",
                        "--mix-loss", "answers", "--resume", R, NULL};
    free(cli_expect_ok(l3));
    cr_assert(cli_files_equal(A, B), "6 answer-loss steps straight and 3 + resume differ");
    const char *l4[] = {"train", "--data", data, "--out", B, TINY128, "--steps", "6", "--mix", "passkey:0.5",
                        "--resume", R, NULL};
    cli_expect_fail(l4, "the checkpoint's run has --mix-loss answers, this one all", 0);
    const char *l5[] = {"train", "--data", data, "--out", B, TINY128, "--steps", "6", "--mix", "passkey:0.5",
                        "--mix-loss", "answers", "--mix-length", "varied", "--resume", R, NULL};
    cli_expect_fail(l5, "the checkpoint's run has --mix-length full, this one varied", 0);
    /* without a mix the run is the one it always was: same bytes as with --mix passkey:0 */
    const char *p0[] = {"train", "--data", data, "--out", A, TINY128, "--steps", "3", "--mix", "passkey:0", NULL};
    free(cli_expect_ok(p0));
    const char *p1[] = {"train", "--data", data, "--out", B, TINY128, "--steps", "3", NULL};
    free(cli_expect_ok(p1));
    cr_assert(cli_files_equal(A, B), "--mix passkey:0 changed the run");
    cli_tdir_close(&t);
}

static int has_gnuplot(void) { return system("command -v gnuplot >/dev/null 2>&1") == 0; }

Test(task_cli, report_heatmap, .timeout = 120) {
    if (!has_gnuplot()) cr_skip_test("gnuplot is not installed (scripts/deps.sh installs gnuplot-nox)");
    cli_tdir t;
    cli_tdir_open(&t);
    char pk[256], mq[256], bad[256], rep[256], path[300];
    snprintf(pk, sizeof pk, "%s", cli_tpath(&t, "pk.json"));
    snprintf(mq, sizeof mq, "%s", cli_tpath(&t, "mq.json"));
    snprintf(bad, sizeof bad, "%s", cli_tpath(&t, "bad.json"));
    snprintf(rep, sizeof rep, "%s", cli_tpath(&t, "rep"));
    cli_spew_str(pk, "{\"task\": \"passkey\", \"cells\": [{\"length\": 128, \"depth\": 0.0, \"samples\": 4, "
                     "\"answers\": 4, \"correct\": 4, \"accuracy\": 1.0}, {\"length\": 128, \"depth\": 1.0, "
                     "\"samples\": 4, \"answers\": 4, \"correct\": 1, \"accuracy\": 0.25}, {\"length\": 256, "
                     "\"depth\": 0.0, \"samples\": 4, \"answers\": 4, \"correct\": 2, \"accuracy\": 0.5}]}\n");
    cli_spew_str(mq, "{\"task\": \"mqar\", \"cells\": [{\"length\": 512, \"depth\": null, \"samples\": 2, "
                     "\"answers\": 128, \"correct\": 127, \"accuracy\": 0.9921875}]}\n");
    const char *a[] = {"report", "--out", rep, "--task", pk, "--task", mq, NULL};
    free(cli_expect_ok(a));
    snprintf(path, sizeof path, "%s/task_pk.png", rep);
    cr_assert(cli_file_exists(path), "no %s", path);
    snprintf(path, sizeof path, "%s/task_mq.png", rep);
    cr_assert(cli_file_exists(path), "no %s", path);
    snprintf(path, sizeof path, "%s/report.md", rep);
    char *md = cli_slurp(path, NULL);
    cr_assert(strstr(md, "## Retrieval tasks") && strstr(md, "| 128 | 1.00 | 0.25 | 0.625 (5/8) |") &&
              strstr(md, "| 256 | 0.50 | – | 0.500 (2/4) |") && strstr(md, "| 512 | 0.99 | 0.992 (127/128) |"),
              "%s", md);
    free(md);
    /* a bad task file: one line naming it, and the earlier report is left as it was */
    cli_spew_str(bad, "{\"task\": \"passkey\", \"cells\": [{\"length\": 1, \"depth\": 2}]}");
    const char *b[] = {"report", "--out", rep, "--task", bad, NULL};
    cli_expect_fail(b, "bad.json: field 'depth': 2 is out of range", 0);
    cr_assert(cli_file_exists(path));
    const char *dup[] = {"report", "--out", rep, "--task", pk, "--task", pk, NULL};
    cli_expect_fail(dup, "repeats", 0);
    cli_tdir_close(&t);
}
