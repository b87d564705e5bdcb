/* End-to-end tests of RoPE in the CLI (docs/rope.md): `train --pos rope`, `--init-from`
 * with context extension, `loss`/`sample` past the training context, and the one-line
 * errors of every bad combination (nothing written at --out). */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

#define TINY_ROPE "--layers", "1", "--heads", "2", "--dim", "16", "--batch", "4", "--threads", "2"

static void train_ok(const char *data, const char *out, const char *seq, const char *steps,
                     const char *const *extra) {
    cli_args a = {0};
    cli_args_add(&a, "train", "--data", data, "--out", out, TINY_ROPE, "--seq", seq, "--steps",
                 steps, "--seed", "7", "--lr", "3e-3", "--warmup", "2", NULL);
    if (extra) cli_args_addv(&a, extra);
    free(cli_expect_ok(a.v));
    cr_assert(cli_file_exists(out), "%s: wrote no %s", cli_cmd, out);
}

static uint32_t header_word(const char *path, int w) {
    size_t n;
    char *raw = cli_slurp(path, &n);
    cr_assert(n >= 256);
    uint32_t v;
    memcpy(&v, raw + 4 * w, 4);
    free(raw);
    return v;
}

static float header_float(const char *path, int w) {
    uint32_t u = header_word(path, w);
    float x;
    memcpy(&x, &u, 4);
    return x;
}

Test(rope_cli, train_bad_flags, .timeout = 60) {
    cli_tdir t;
    cli_tdir_open(&t);
    char data[256];
    snprintf(data, sizeof data, "%s", cli_tpath(&t, "d.txt"));
    cli_write_text(data, 4000);
    static const cli_bad_case cases[] = {
        {{"--pos", "bogus"}, "--pos"},
        {{"--pos"}, "--pos"},
        {{"--rope-base", "1000"}, "--rope-base 1000: applies to --pos rope only"},
        {{"--rope-scale", "0.5"}, "--rope-scale 0.5: applies to --pos rope only"},
        {{"--pos", "learned", "--rope-base", "500"}, "--rope-base"},
        {{"--pos", "rope", "--rope-base", "0"}, "--rope-base"},
        {{"--pos", "rope", "--rope-base", "-10"}, "--rope-base"},
        {{"--pos", "rope", "--rope-base", "nan"}, "--rope-base"},
        {{"--pos", "rope", "--rope-base", "abc"}, "--rope-base"},
        {{"--pos", "rope", "--rope-scale", "0"}, "--rope-scale"},
        {{"--pos", "rope", "--rope-scale", "inf"}, "--rope-scale"},
        {{"--pos", "rope", "--format", "llmc"}, "--format llmc"},
        {{"--pos", "rope", "--heads", "16"}, "head dim 1"}, /* C 16 / H 16: odd */
        {{"--pos", "rope", "--dim", "15", "--heads", "3"}, "head dim 5"},
        {{"--rope-extend", "pi"}, "--rope-extend"},
        {{"--rope-extend", "bogus"}, "bogus"},
        {{"--resume", "a.ckpt", "--init-from", "b.ckpt"}, "--init-from"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_args a = {0};
        cli_args_add(&a, "train", "--data", data, "--out", cli_tpath(&t, "out.ckpt"), TINY_ROPE,
                     "--seq", "16", "--steps", "2", NULL);
        cli_args_addv(&a, cases[i].args);
        cli_expect_fail(a.v, cases[i].needle, 0);
        cli_assert_no_output(t.dir, "out");
    }
    cli_tdir_close(&t);
}

/* --init-from and --resume against checkpoints whose shape or positions disagree. */
Test(rope_cli, init_from_and_resume_errors, .timeout = 120) {
    cli_tdir t;
    cli_tdir_open(&t);
    char data[256], learned[256], rope[256], out[256];
    snprintf(data, sizeof data, "%s", cli_tpath(&t, "d.txt"));
    snprintf(learned, sizeof learned, "%s", cli_tpath(&t, "learned.ckpt"));
    snprintf(rope, sizeof rope, "%s", cli_tpath(&t, "rope.ckpt"));
    snprintf(out, sizeof out, "%s", cli_tpath(&t, "out.ckpt"));
    cli_write_text(data, 6000);
    train_ok(data, learned, "16", "2", NULL);
    const char *pr[] = {"--pos", "rope", NULL};
    train_ok(data, rope, "16", "2", pr);
    struct { const char *flag, *file, *args[6], *needle; } cases[] = {
        {"--init-from", learned, {"--seq", "32"}, "learned positions have no embedding past it"},
        {"--init-from", learned, {"--dim", "32"}, "does not fit: --layers/--heads/--dim differ"},
        {"--init-from", learned, {"--rope-base", "500"}, "has learned positions, expected a RoPE model"},
        {"--init-from", learned, {"--pos", "rope"}, "the checkpoint has --pos learned"},
        {"--init-from", rope, {"--pos", "learned"}, "the checkpoint has --pos rope"},
        {"--init-from", rope, {"--rope-base", "500"}, "--rope-base 10000, this run 500"},
        {"--init-from", rope, {"--format", "llmc"}, "--format llmc"},
        {"--init-from", rope, {"--seq", "32", "--rope-scale", "0.5", "--rope-extend", "ntk"},
         "expected one of them"},
        {"--init-from", cli_tpath(&t, "missing.ckpt"), {NULL}, "missing.ckpt"},
        {"--resume", rope, {"--pos", "learned"}, "the checkpoint has --pos rope"},
        {"--resume", rope, {"--rope-scale", "0.5"}, "--rope-scale 1, this run 0.5"},
        {"--resume", rope, {"--format", "llmc"}, "--format llmc"},
        {"--resume", learned, {"--rope-scale", "0.5"}, "has learned positions"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_args a = {0};
        cli_args_add(&a, "train", "--data", data, "--out", out, TINY_ROPE, "--seq", "16",
                     "--steps", "4", cases[i].flag, cases[i].file, NULL);
        cli_args_addv(&a, cases[i].args);
        cli_expect_fail(a.v, cases[i].needle, 0);
        cli_assert_no_output(t.dir, "out");
    }
    cli_tdir_close(&t);
}

/* Train at seq 64, continue from it at seq 128 (default: NTK-aware base; and interpolation),
 * score at 256; the new checkpoint records the new context, scale and base. */
Test(rope_cli, context_extension_end_to_end, .timeout = 180) {
    cli_tdir t;
    cli_tdir_open(&t);
    char data[256], r64[256], pi[256], ntk[256];
    snprintf(data, sizeof data, "%s", cli_tpath(&t, "d.txt"));
    snprintf(r64, sizeof r64, "%s", cli_tpath(&t, "r64.ckpt"));
    snprintf(pi, sizeof pi, "%s", cli_tpath(&t, "pi.ckpt"));
    snprintf(ntk, sizeof ntk, "%s", cli_tpath(&t, "ntk.ckpt"));
    cli_write_text(data, 30000);
    const char *pr[] = {"--pos", "rope", NULL};
    train_ok(data, r64, "64", "6", pr);
    cr_assert_eq(header_word(r64, 1), 3u);
    cr_assert_eq(header_word(r64, 2), 64u);
    cr_assert_eq(header_word(r64, 30), 1u);
    cr_assert_eq(header_float(r64, 31), 10000.0f);
    cr_assert_eq(header_float(r64, 32), 1.0f);
    const char *a_pi[] = {"train", "--data", data, "--out", pi, "--seq", "128", "--batch", "2",
                          "--steps", "4", "--threads", "2", "--init-from", r64, "--rope-extend",
                          "pi", "--json", NULL};
    char *err = NULL, *o = NULL;
    int rc = cli_run(a_pi, &o, &err);
    cr_assert_eq(rc, 0, "%s: %s", cli_cmd, err);
    cr_assert_not_null(strstr(err, "context 64 -> 128: RoPE base 10000 -> 10000, scale 1 -> 0.5"), "%s", err);
    double vl = cli_json_num(o, "val_loss");
    cr_assert(isfinite(vl) && vl > 0 && vl < 10, "val_loss %g", vl);
    free(err), free(o);
    cr_assert_eq(header_word(pi, 2), 128u);
    cr_assert_eq(header_float(pi, 32), 0.5f);
    cr_assert_eq(header_float(pi, 31), 10000.0f);
    cr_assert_eq(header_word(pi, 8), 1u, "the new run's AdamW state is saved");
    cr_assert_eq(header_word(pi, 9), 4u, "the step count starts from 0");
    cr_assert_eq(header_word(pi, 18), 128u, "the schedule records the new --seq");
    const char *a_ntk[] = {"train", "--data", data, "--out", ntk, "--seq", "128", "--batch", "2",
                           "--steps", "2", "--threads", "2", "--init-from", r64, NULL}; /* default */
    free(cli_expect_ok(a_ntk));
    cr_assert_eq(header_word(ntk, 2), 128u);
    cr_assert_eq(header_float(ntk, 32), 1.0f);
    /* hs = 8: base * 2^(8/6) */
    cr_assert_eq(header_float(ntk, 31), (float)(10000.0 * pow(2.0, 8.0 / 6.0)));
    /* scoring past the context: extrapolation and interpolation both run (what they cost
     * in loss is measured in docs/rope.md; this tiny model barely uses positions) */
    const char *l1[] = {"loss", "--model", pi, "--data", data, "--seq", "256", "--json", NULL};
    const char *l2[] = {"loss", "--model", r64, "--data", data, "--seq", "256", "--json", NULL};
    const char *l3[] = {"loss", "--model", r64, "--data", data, "--seq", "256", "--rope-scale",
                        "0.25", "--json", NULL};
    double x[3];
    const char **ls[] = {l1, l2, l3};
    for (int i = 0; i < 3; i++) {
        char *out = cli_expect_ok(ls[i]);
        x[i] = cli_json_num(out, "loss");
        cr_assert(isfinite(x[i]) && x[i] > 0, "%s: loss %g", cli_cmd, x[i]);
        free(out);
    }
    const char *s[] = {"sample", "--model", r64, "--seq", "200", "--tokens", "150", "--prompt",
                       "In the", NULL};
    char *so = cli_expect_ok(s);
    cr_assert_eq(cli_out_len, strlen("In the") + 150 + 1, "sample printed %zu bytes", cli_out_len);
    free(so);
    cli_tdir_close(&t);
}

/* NTK scaling needs a head dim > 2: with hs = 2 the default refuses and points to pi, which
 * works. */
Test(rope_cli, ntk_needs_head_dim_above_two, .timeout = 60) {
    cli_tdir t;
    cli_tdir_open(&t);
    char data[256], r[256];
    snprintf(data, sizeof data, "%s", cli_tpath(&t, "d.txt"));
    snprintf(r, sizeof r, "%s", cli_tpath(&t, "r.ckpt"));
    cli_write_text(data, 6000);
    const char *pr[] = {"--pos", "rope", "--heads", "8", NULL}; /* C 16: hs 2 */
    train_ok(data, r, "16", "2", pr);
    const char *ntk[] = {"train", "--data", data, "--out", cli_tpath(&t, "out.ckpt"), "--seq", "32",
                         "--steps", "2", "--init-from", r, NULL};
    cli_expect_fail(ntk, "use --rope-extend pi", 0);
    cli_assert_no_output(t.dir, "out");
    const char *pi[] = {"train", "--data", data, "--out", cli_tpath(&t, "out.ckpt"), "--seq", "32",
                        "--steps", "2", "--init-from", r, "--rope-extend", "pi", NULL};
    free(cli_expect_ok(pi));
    cli_tdir_close(&t);
}

/* loss and sample refuse what a learned model cannot do; --seq shorter than the context works
 * for loss with either kind. */
Test(rope_cli, loss_and_sample_context_errors, .timeout = 60) {
    cli_tdir t;
    cli_tdir_open(&t);
    char data[256], learned[256];
    snprintf(data, sizeof data, "%s", cli_tpath(&t, "d.txt"));
    snprintf(learned, sizeof learned, "%s", cli_tpath(&t, "learned.ckpt"));
    cli_write_text(data, 6000);
    train_ok(data, learned, "16", "2", NULL);
    const char *l1[] = {"loss", "--model", learned, "--data", data, "--seq", "32", NULL};
    cli_expect_fail(l1, "learned positions have no embedding for position 16", 0);
    const char *l2[] = {"loss", "--model", learned, "--data", data, "--rope-scale", "0.5", NULL};
    cli_expect_fail(l2, "--rope-scale 0.5: the model has learned positions", 0);
    const char *l3[] = {"loss", "--model", learned, "--data", data, "--rope-base", "0", NULL};
    cli_expect_fail(l3, "--rope-base", 0);
    const char *l4[] = {"loss", "--model", learned, "--data", data, "--seq", "8", "--json", NULL};
    free(cli_expect_ok(l4));
    const char *s1[] = {"sample", "--model", learned, "--seq", "32", NULL};
    cli_expect_fail(s1, "--seq 32", 0);
    const char *s2[] = {"sample", "--model", learned, "--seq", "8", NULL};
    cli_expect_fail(s2, "shorter than the model's context 16", 0);
    cli_tdir_close(&t);
}

/* --resume of a RoPE run is exact, as for learned positions: 8 steps straight equal 4, then
 * --resume to 8 (the positions come back from version 3's header). */
Test(rope_cli, resume_is_exact, .timeout = 120) {
    cli_tdir t;
    cli_tdir_open(&t);
    char data[256], a[256], b[256];
    snprintf(data, sizeof data, "%s", cli_tpath(&t, "d.txt"));
    snprintf(a, sizeof a, "%s", cli_tpath(&t, "a.ckpt"));
    snprintf(b, sizeof b, "%s", cli_tpath(&t, "b.ckpt"));
    cli_write_text(data, 6000);
    const char *pr[] = {"--pos", "rope", "--rope-base", "500", "--rope-scale", "0.5", NULL};
    train_ok(data, a, "16", "8", pr);
    const char *half[] = {"--pos", "rope", "--rope-base", "500", "--rope-scale", "0.5",
                          "--stop-at", "4", NULL};
    train_ok(data, b, "16", "8", half);
    const char *rest[] = {"--resume", b, NULL};
    train_ok(data, b, "16", "8", rest);
    cr_assert(cli_files_equal(a, b), "8 steps straight and 4 + resume to 8 differ");
    cr_assert_eq(header_float(b, 31), 500.0f);
    cli_tdir_close(&t);
}
