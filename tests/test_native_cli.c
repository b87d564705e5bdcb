/* Native sparse training on the command line (docs/native_sparse.md):
 *  - `train --attn sparse:PLAN --heads-out H` writes the model and its heads; `loss
 *    --heads H` reloads them and gives exactly the validation loss train printed; eval and
 *    sample take the heads too;
 *  - --resume continues a sparse run exactly (dense warm-up crossing the stop, index
 *    selectors re-created from the seed): the same checkpoint and heads bytes as one run;
 *  - a resume against another plan, another warm-up, a dense run, or with mlp heads (whose
 *    AdamW state is not saved) is a one-line error, and so is every bad flag combination;
 *    nothing is written.
 * Helpers: cli_util.h. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "sattn/heads.h"
#include "sattn/tcmp.h"

#define TINY "--layers", "2", "--heads", "2", "--dim", "16", "--seq", "32", "--batch", "4", "--threads", "2", \
             "--seed", "5", "--lr", "3e-3", "--warmup", "2"
/* every head sparse: an index selector (parameters from the seed) and two block shapes */
#define PLAN "sparse:L0H0:index+softmax:k=6; L0H1:block+softmax:b=4,n=2; L1:block+softmax:b=8,n=2"

typedef struct {
    cli_tdir t;
    char data[256];
} fx;

static void fx_open(fx *f) {
    cli_tdir_open(&f->t);
    snprintf(f->data, sizeof f->data, "%s", cli_tpath(&f->t, "d.txt"));
    cli_write_text(f->data, 30000);
}

/* train TINY --steps steps --out out --heads-out heads [extra...]; returns stdout. */
static char *train(fx *f, const char *out, const char *heads, const char *steps, const char *const *extra) {
    cli_args a = {0};
    cli_args_add(&a, "train", "--data", f->data, "--out", out, TINY, "--steps", steps, "--json", NULL);
    if (heads) cli_args_add(&a, "--heads-out", heads, NULL);
    if (extra) cli_args_addv(&a, extra);
    return cli_expect_ok(a.v);
}

/* `loss --model out --heads heads` gives val (what train printed) to 2e-6. */
static void loss_reproduces(const fx *f, const char *out, const char *heads, const char *batch, double val) {
    const char *lo[] = {"loss", "--model", out, "--heads", heads, "--data", f->data, "--json", "--threads", "2",
                        "--batch", batch, NULL};
    char *lj = cli_expect_ok(lo);
    cr_assert(fabs(cli_json_num(lj, "loss") - val) < 2e-6, "loss --heads %g, train printed %g", cli_json_num(lj, "loss"),
              val);
    free(lj);
}

Test(native_cli, train_then_reload_with_heads, .timeout = 120) {
    fx f;
    fx_open(&f);
    char out[256], heads[256];
    snprintf(out, sizeof out, "%s", cli_tpath(&f.t, "m.ckpt"));
    snprintf(heads, sizeof heads, "%s", cli_tpath(&f.t, "m.heads"));
    const char *extra[] = {"--attn", PLAN, "--dense-warmup", "3", NULL};
    char *js = train(&f, out, heads, "8", extra);
    double val = cli_json_num(js, "val_loss");
    cr_assert(cli_file_exists(out) && cli_file_exists(heads));
    loss_reproduces(&f, out, heads, "4", val);
    /* the same model without its heads is another model */
    const char *ld[] = {"loss", "--model", out, "--data", f.data, "--json", "--threads", "2", "--batch", "4", NULL};
    char *dj = cli_expect_ok(ld);
    cr_assert(fabs(cli_json_num(dj, "loss") - val) > 1e-6);
    const char *ev[] = {"eval", "--model", out, "--heads", heads, "--data", f.data, "--json", "--threads", "2", NULL};
    char *ej = cli_expect_ok(ev);
    cr_assert(fabs(cli_json_num(ej, "loss_hybrid") - val) < 1e-4, "eval's hybrid loss %g, train's %g",
              cli_json_num(ej, "loss_hybrid"), val);
    const char *sa[] = {"sample", "--model", out, "--heads", heads, "--tokens", "10", "--threads", "2", NULL};
    free(cli_expect_ok(sa));
    /* flash cannot host the hook: refused with --heads */
    const char *lf[] = {"loss", "--model", out, "--heads", heads, "--data", f.data, "--attn", "flash", NULL};
    cli_expect_fail(lf, "--attn flash", 0);
    free(js), free(dj), free(ej);
    cli_tdir_close(&f.t);
}

/* 12 steps in one run vs 7, then --resume to 12; the warm-up (4 steps) ends before the stop,
 * and in a second pair (warm-up 9) after it. */
Test(native_cli, resume_is_exact, .timeout = 180) {
    fx f;
    fx_open(&f);
    const char *warm[] = {"4", "9"};
    for (int w = 0; w < 2; w++) {
        char one[256], oneh[256], two[256], twoh[256];
        snprintf(one, sizeof one, "%s", cli_tpath(&f.t, "one.ckpt"));
        snprintf(oneh, sizeof oneh, "%s", cli_tpath(&f.t, "one.heads"));
        snprintf(two, sizeof two, "%s", cli_tpath(&f.t, "two.ckpt"));
        snprintf(twoh, sizeof twoh, "%s", cli_tpath(&f.t, "two.heads"));
        const char *ex[] = {"--attn", PLAN, "--dense-warmup", warm[w], NULL};
        free(train(&f, one, oneh, "12", ex));
        const char *ex1[] = {"--attn", PLAN, "--dense-warmup", warm[w], "--stop-at", "7", NULL};
        free(train(&f, two, twoh, "12", ex1));
        const char *ex2[] = {"--attn", PLAN, "--dense-warmup", warm[w], "--resume", two, NULL};
        free(train(&f, two, twoh, "12", ex2));
        cr_assert(cli_files_equal(one, two), "warm-up %s: resumed checkpoint differs from the one-run checkpoint",
                  warm[w]);
        cr_assert(cli_files_equal(oneh, twoh), "warm-up %s: resumed heads differ", warm[w]);
    }
    cli_tdir_close(&f.t);
}

Test(native_cli, resume_mismatch_errors, .timeout = 180) {
    fx f;
    fx_open(&f);
    char sp[256], dn[256], hh[256];
    snprintf(sp, sizeof sp, "%s", cli_tpath(&f.t, "sparse.ckpt"));
    snprintf(dn, sizeof dn, "%s", cli_tpath(&f.t, "dense.ckpt"));
    snprintf(hh, sizeof hh, "%s", cli_tpath(&f.t, "sparse.heads"));
    const char *ex[] = {"--attn", PLAN, "--dense-warmup", "2", "--stop-at", "3", NULL};
    free(train(&f, sp, hh, "6", ex));
    const char *exd[] = {"--stop-at", "3", NULL};
    free(train(&f, dn, NULL, "6", exd));
    struct {
        const char *resume, *attn, *warm, *needle;
    } cases[] = {
        {sp, NULL, NULL, "this one dense attention"},
        {sp, "sparse:all:block+softmax:b=4,n=2", "2", "another plan"},
        {sp, PLAN, "1", "--dense-warmup 2, this one 1"},
        {dn, PLAN, "2", "has dense attention, this one --attn sparse"},
        {sp, "sparse:all:index+mlp:k=4,hidden=8", "2", "mlp heads"},
        {sp, "sparse:all:index+softmax:k=4,shared=1", "2", "shared indexers (shared=1), whose AdamW state"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_args a = {0};
        cli_args_add(&a, "train", "--data", f.data, "--out", cli_tpath(&f.t, "out.ckpt"), TINY, "--steps", "6",
                     "--resume", cases[i].resume, NULL);
        if (cases[i].attn)
            cli_args_add(&a, "--attn", cases[i].attn, "--dense-warmup", cases[i].warm, "--heads-out",
                         cli_tpath(&f.t, "out.heads"), NULL);
        cli_expect_fail(a.v, cases[i].needle, 0);
        cli_assert_no_output(f.t.dir, "out");
    }
    cli_tdir_close(&f.t);
}

Test(native_cli, bad_flags, .timeout = 60) {
    fx f;
    fx_open(&f);
    struct {
        const char *args[10];
        const char *needle;
    } cases[] = {
        {{"--dense-warmup", "2"}, "--dense-warmup: applies to --attn sparse:PLAN only"},
        {{"--heads-out", "OUT.heads"}, "--heads-out: applies to --attn sparse:PLAN only"},
        {{"--attn", "sparse:all:block+softmax"}, "expected --heads-out PATH"},
        {{"--attn", "sparse:", "--heads-out", "OUT.heads"}, "--attn sparse: expected a plan"},
        {{"--attn", "sparse:all:bogus", "--heads-out", "OUT.heads"}, "--attn sparse:PLAN: plan entry 1"},
        {{"--attn", "sparse:L7:block+softmax", "--heads-out", "OUT.heads"}, "--attn sparse:PLAN"},
        {{"--attn", "sparse:*:dense", "--heads-out", "OUT.heads"}, "every head dense"},
        {{"--attn", "sparse:all:block+softmax", "--heads-out", "OUT.heads", "--format", "llmc"}, "--format llmc"},
        {{"--attn", "sparse:all:block+softmax", "--heads-out", "OUT.heads", "--dense-warmup", "4"},
         "--dense-warmup 4: expected fewer than --steps 4"},
        {{"--attn", "sparse:all:block+softmax", "--heads-out", "OUT.heads", "--init-from", "x.ckpt"}, "x.ckpt"},
        {{"--attn", "sparse:all:block+softmax", "--heads-out", "OUT.ckpt"}, "--heads-out"},
        {{"--attn", "sparse:all:block+softmax", "--heads-out", "OUT.heads", "--dense-warmup", "-1"}, "--dense-warmup"},
        {{"--attn", "bogus"}, "--attn: 'bogus' is not one of auto, naive, flash, sparse:PLAN"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_args a = {0};
        char heads[256], out[256];
        snprintf(out, sizeof out, "%s", cli_tpath(&f.t, "out.ckpt"));
        snprintf(heads, sizeof heads, "%s", cli_tpath(&f.t, "out.heads"));
        cli_args_add(&a, "train", "--data", f.data, "--out", out, TINY, "--steps", "4", NULL);
        for (int j = 0; cases[i].args[j]; j++)
            a.v[a.n++] = !strcmp(cases[i].args[j], "OUT.heads") ? heads
                         : !strcmp(cases[i].args[j], "OUT.ckpt") ? out
                                                                 : cases[i].args[j];
        a.v[a.n] = NULL;
        cli_expect_fail(a.v, cases[i].needle, 0);
        cli_assert_no_output(f.t.dir, "out");
    }
    cli_tdir_close(&f.t);
}

/* The --max-mem check sees that an all-sparse run has no T x T buffer: at T = 8192 a limit
 * of 0.25 GiB refuses naive attention (its probabilities alone are 0.5 GB) and admits the
 * sparse run, which then trains. A plan with a dense head keeps naive: refused too. */
Test(native_cli, max_mem_sees_linear_memory, .timeout = 120) {
    fx f;
    cli_tdir_open(&f.t);
    snprintf(f.data, sizeof f.data, "%s", cli_tpath(&f.t, "d.txt"));
    cli_write_text(f.data, 200000);
    char out[256], heads[256];
    snprintf(out, sizeof out, "%s", cli_tpath(&f.t, "m.ckpt"));
    snprintf(heads, sizeof heads, "%s", cli_tpath(&f.t, "m.heads"));
    const char *base[] = {"train", "--data", f.data, "--out", out, "--layers", "1", "--heads", "2", "--dim", "16",
                          "--seq", "8192", "--batch", "1", "--steps", "1", "--threads", "2", "--max-mem", "0.25", NULL};
    cli_args a = {0};
    cli_args_addv(&a, base);
    cli_args_add(&a, "--attn", "naive", NULL);
    cli_expect_fail(a.v, "training this model", 0);
    cli_args m = {0};
    cli_args_addv(&m, base);
    cli_args_add(&m, "--attn", "sparse:L0H0:block+softmax:b=16,n=4; *:dense", "--heads-out", heads, NULL);
    cli_expect_fail(m.v, "training this model with its sparse heads", 0);
    cli_assert_no_output(f.t.dir, "m.");
    cli_args s = {0};
    cli_args_addv(&s, base);
    cli_args_add(&s, "--attn", "sparse:all:block+softmax:b=16,n=4", "--heads-out", heads, NULL);
    free(cli_expect_ok(s.v));
    cr_assert(cli_file_exists(out) && cli_file_exists(heads));
    cli_tdir_close(&f.t);
}

/* tile=1 (tblock as the model's attention): trains from the command line at a window that
 * is no multiple of b, loss --heads reproduces the val loss, sample decodes it with the cache. */
Test(native_cli, tile_plan_trains_and_reloads, .timeout = 120) {
    fx f;
    fx_open(&f);
    char out[256], heads[256];
    snprintf(out, sizeof out, "%s", cli_tpath(&f.t, "m.ckpt"));
    snprintf(heads, sizeof heads, "%s", cli_tpath(&f.t, "m.heads"));
    const char *extra[] = {"--attn", "sparse:all:block+softmax:b=16,n=2,tile=1", "--seq", "40", "--pos", "rope", NULL};
    char *js = train(&f, out, heads, "6", extra);
    double val = cli_json_num(js, "val_loss");
    cr_assert(isfinite(val));
    loss_reproduces(&f, out, heads, "4", val);
    /* cached decoding of a tile plan (tests/test_tile_decode.c: the logits are the forward's) */
    const char *sa[] = {"sample", "--model", out, "--heads", heads, "--tokens", "50", "--temperature", "0",
                        "--prompt", "In the beginning", "--threads", "2", NULL};
    char *s1 = cli_expect_ok(sa), *s2 = cli_expect_ok(sa);
    cr_assert(!strncmp(s1, "In the beginning", 16) && strlen(s1) == 16 + 50 + 1, "%s", s1);
    cr_assert_str_eq(s1, s2);
    free(s1), free(s2);
    const char *bad[][2] = {{"sparse:all:block+softmax:tile=2", "option 'tile', expected 0 or 1"},
                            {"sparse:all:index+softmax:tile=1", "'tile' does not apply"},
                            {"sparse:all:block+mlp:tile=1", "tile = 1 with the mlp head function"},
                            {"sparse:L0H0:block+softmax:tile=1", "every head of layer 0"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char o2[256];
        snprintf(o2, sizeof o2, "%s", cli_tpath(&f.t, "x.ckpt"));
        const char *a[] = {"train", "--data", f.data, "--out", o2, TINY, "--steps", "1", "--attn", bad[i][0],
                           "--heads-out", heads, NULL};
        cli_expect_fail(a, bad[i][1], 0);
        cr_assert(!cli_file_exists(o2));
    }
    free(js);
    cli_tdir_close(&f.t);
}

/* --init-from a dense RoPE model at a longer context with a sparse plan: a new run from its
 * weights (the heads fresh from the plan, as at step 0); it trains, `loss --heads` gives the
 * printed validation loss, and the checkpoint records the plan (a dense --resume of it is
 * refused). What `demo --preset long --plan` does between its stages. */
Test(native_cli, init_from_dense_model_trains_sparse, .timeout = 120) {
    fx f;
    fx_open(&f);
    char d0[256], out[256], heads[256];
    snprintf(d0, sizeof d0, "%s", cli_tpath(&f.t, "d0.ckpt"));
    snprintf(out, sizeof out, "%s", cli_tpath(&f.t, "m.ckpt"));
    snprintf(heads, sizeof heads, "%s", cli_tpath(&f.t, "m.heads"));
    const char *rope[] = {"--pos", "rope", NULL};
    free(train(&f, d0, NULL, "4", rope));
    cli_args a = {0};
    cli_args_add(&a, "train", "--data", f.data, "--out", out, "--heads-out", heads, "--init-from", d0, "--seq", "64",
                 "--batch", "2", "--steps", "4", "--threads", "2", "--seed", "5", "--warmup", "1", "--json",
                 "--attn", "sparse:all:block+softmax:b=8,n=2,tile=1", "--rope-extend", "none", NULL);
    char *js = cli_expect_ok(a.v);
    double val = cli_json_num(js, "val_loss");
    loss_reproduces(&f, out, heads, "2", val);
    cli_args r = {0};
    cli_args_add(&r, "train", "--data", f.data, "--out", cli_tpath(&f.t, "r.ckpt"), "--resume", out, "--steps", "4",
                 "--seq", "64", "--batch", "2", "--warmup", "1", "--seed", "5", "--threads", "2", NULL);
    cli_expect_fail(r.v, "--attn sparse", 0);
    free(js);
    cli_tdir_close(&f.t);
}

/* NSA's compressed branch (cmp=1): the gates train (the heads file's gate parameters move
 * away from their zero init), `loss --heads` gives the printed loss, it samples, and
 * --resume refuses (the gates' AdamW state is not saved). */
Test(native_cli, cmp_plan_trains_and_reloads, .timeout = 120) {
    fx f;
    fx_open(&f);
    char out[256], heads[256];
    snprintf(out, sizeof out, "%s", cli_tpath(&f.t, "m.ckpt"));
    snprintf(heads, sizeof heads, "%s", cli_tpath(&f.t, "m.heads"));
    const char *extra[] = {"--attn", "sparse:all:block+softmax:b=8,n=2,tile=1,cmp=1", "--seq", "40", "--pos", "rope",
                           NULL};
    char *js = train(&f, out, heads, "6", extra);
    double val = cli_json_num(js, "val_loss");
    loss_reproduces(&f, out, heads, "4", val);
    sparse_heads sh;
    sattn_err e;
    cr_assert_eq(heads_load(heads, &sh, NULL, &e), 0, "%s", e.msg);
    double moved = 0;
    for (int i = 0; i < sh.layers * sh.heads; i++)
        for (size_t j = 0; j < sh.h[i].n_fn; j++) /* the init: w = 0, u = TCMP_GATE_INIT */
            moved = fmax(moved, fabs(sh.h[i].params[sh.h[i].n_sel + j] - (j + 1 == sh.h[i].n_fn ? TCMP_GATE_INIT : 0)));
    cr_assert(moved > 1e-4, "the gates did not train (max |param| %g)", moved);
    sparse_heads_free(&sh);
    const char *sa[] = {"sample", "--model", out, "--heads", heads, "--tokens", "10", "--threads", "2", NULL};
    free(cli_expect_ok(sa)); /* cached decoding with the compressed branch (test_tile_decode.c) */
    const char *re[] = {"train", "--data", f.data, "--out", cli_tpath(&f.t, "r.ckpt"), TINY, "--steps", "8",
                        "--seq", "40", "--pos", "rope", "--attn", "sparse:all:block+softmax:b=8,n=2,tile=1,cmp=1",
                        "--heads-out", cli_tpath(&f.t, "r.heads"), "--resume", out, NULL};
    cli_expect_fail(re, "cmp=1 heads", 0);
    free(js);
    cli_tdir_close(&f.t);
}

/* A shared-indexer plan trains DSA-style (warm-up, then sparse), reloads to the same loss,
 * and is refused by `sample` (no cached decode for it yet). */
Test(native_cli, shared_plan_trains_and_reloads, .timeout = 120) {
    fx f;
    fx_open(&f);
    char out[256], heads[256];
    snprintf(out, sizeof out, "%s", cli_tpath(&f.t, "m.ckpt"));
    snprintf(heads, sizeof heads, "%s", cli_tpath(&f.t, "m.heads"));
    const char *extra[] = {"--attn", "sparse:all:index+softmax:k=8,shared=1", "--dense-warmup", "3", NULL};
    char *js = train(&f, out, heads, "6", extra);
    double val = cli_json_num(js, "val_loss");
    cr_assert(isfinite(val));
    loss_reproduces(&f, out, heads, "4", val);
    const char *sa[] = {"sample", "--model", out, "--heads", heads, "--tokens", "10", NULL};
    cli_expect_fail(sa, "shared=1", 0);
    free(js);
    cli_tdir_close(&f.t);
}
