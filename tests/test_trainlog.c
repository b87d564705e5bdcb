/* The training log (trainlog.h, `train --log-csv`, `report --train-log`):
 *  - save then read gives the rows back (val_loss NaN stays empty), and malformed logs are
 *    one-line errors naming the file and line;
 *  - train writes one row per step, tokens = step x batch x seq, the --eval-every points and
 *    the final validation loss (= the printed one) on the last row; a --resume continues the
 *    step count; a bad path leaves nothing;
 *  - report plots the logs and tables their final losses. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "sattn/trainlog.h"

Test(trainlog, save_read_round_trip) {
    cli_tdir t;
    cli_tdir_open(&t);
    trainlog l = {0}, r;
    for (int i = 1; i <= 300; i++) {
        trainlog_row row = {i, 64.0 * i, 5.0f - 0.01f * (float)i, i % 50 ? NAN : 4.0f + 1.0f / (float)i, 1e-3f,
                            0.5 * i};
        trainlog_add(&l, &row);
    }
    sattn_err e;
    const char *p = cli_tpath(&t, "l.csv");
    cr_assert_eq(trainlog_save(p, &l, &e), 0, "%s", e.msg);
    cr_assert_eq(trainlog_read(p, &r, &e), 0, "%s", e.msg);
    cr_assert_eq(r.n, 300);
    for (int i = 0; i < 300; i++) {
        cr_assert_eq(r.rows[i].step, l.rows[i].step);
        cr_assert_float_eq(r.rows[i].tokens, l.rows[i].tokens, 0.5);
        cr_assert_float_eq(r.rows[i].train_loss, l.rows[i].train_loss, 1e-6);
        cr_assert_eq(isnan(r.rows[i].val_loss), isnan(l.rows[i].val_loss), "row %d", i);
        if (!isnan(l.rows[i].val_loss)) cr_assert_float_eq(r.rows[i].val_loss, l.rows[i].val_loss, 1e-6);
    }
    trainlog_free(&l), trainlog_free(&r);
    cli_tdir_close(&t);
}

Test(trainlog, malformed_logs_are_errors) {
    cli_tdir t;
    cli_tdir_open(&t);
    static const struct {
        const char *text, *needle;
    } cases[] = {
        {"", "empty"},
        {"step,tokens,loss\n1,2,3\n", "line 1: expected the header"},
        {"step,tokens,train_loss,val_loss,lr,wall_s\n", "no rows"},
        {"step,tokens,train_loss,val_loss,lr,wall_s\n1,64,x,,1e-3,0.1\n", "line 2: train_loss: expected a number"},
        {"step,tokens,train_loss,val_loss,lr,wall_s\n1,64,5,,1e-3\n", "line 2: expected 6 fields"},
        {"step,tokens,train_loss,val_loss,lr,wall_s\n1,64,5,,1e-3,0.1,7\n", "line 2: expected 6 fields, found more"},
        {"step,tokens,train_loss,val_loss,lr,wall_s\n2,64,5,,1e-3,0.1\n2,128,5,,1e-3,0.2\n", "line 3: step 2 after step 2"},
        {"step,tokens,train_loss,val_loss,lr,wall_s\n1,64,5,,1e-3,0.1\n2,32,5,,1e-3,0.2\n", "line 3: tokens decrease"},
        {"step,tokens,train_loss,val_loss,lr,wall_s\n0,64,5,,1e-3,0.1\n", "line 2: step 0"},
        {"step,tokens,train_loss,val_loss,lr,wall_s\n1,64,inf,,1e-3,0.1\n", "finite losses"},
        {"step,tokens,train_loss,val_loss,lr,wall_s\n1,64,1e300,,1e-3,0.1\n", "(as float32)"}, /* found by fuzzing */
    };
    const char *p = cli_tpath(&t, "bad.csv");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_spew_str(p, cases[i].text);
        trainlog l;
        sattn_err e;
        cr_assert_eq(trainlog_read(p, &l, &e), -1, "case %zu read", i);
        cr_assert(strstr(e.msg, cases[i].needle) && strstr(e.msg, "bad.csv") && !strchr(e.msg, '\n'),
                  "case %zu: '%s' lacks '%s'", i, e.msg, cases[i].needle);
    }
    cli_tdir_close(&t);
}

#define TINY "--layers", "1", "--heads", "2", "--dim", "16", "--seq", "32", "--batch", "2", "--threads", "2", \
             "--seed", "3", "--warmup", "2", "--eval-every", "5"

Test(trainlog, train_writes_the_curve_and_resume_continues, .timeout = 120) {
    cli_tdir t;
    cli_tdir_open(&t);
    char data[256], out[256], log[256], log2[256];
    snprintf(data, sizeof data, "%s", cli_tpath(&t, "d.txt"));
    cli_write_text(data, 20000);
    snprintf(out, sizeof out, "%s", cli_tpath(&t, "m.ckpt"));
    snprintf(log, sizeof log, "%s", cli_tpath(&t, "a.csv"));
    snprintf(log2, sizeof log2, "%s", cli_tpath(&t, "b.csv"));
    const char *tr[] = {"train", "--data", data, "--out", out, TINY, "--steps", "12", "--stop-at", "8",
                        "--log-csv", log, "--json", NULL};
    char *js = cli_expect_ok(tr);
    trainlog l;
    sattn_err e;
    cr_assert_eq(trainlog_read(log, &l, &e), 0, "%s", e.msg);
    cr_assert_eq(l.n, 8);
    int vals = 0;
    for (int i = 0; i < l.n; i++) {
        cr_assert_eq(l.rows[i].step, i + 1);
        cr_assert_float_eq(l.rows[i].tokens, 64.0 * (i + 1), 0.5);
        vals += !isnan(l.rows[i].val_loss);
    }
    cr_assert_eq(vals, 2, "the estimate at step 5 and the final loss: %d", vals);
    cr_assert(fabs(l.rows[7].val_loss - cli_json_num(js, "val_loss")) < 1e-5, "last row %g, printed %g",
              l.rows[7].val_loss, cli_json_num(js, "val_loss"));
    trainlog_free(&l);
    free(js);
    const char *re[] = {"train", "--data", data, "--out", out, TINY, "--steps", "12", "--resume", out,
                        "--log-csv", log2, NULL};
    free(cli_expect_ok(re));
    cr_assert_eq(trainlog_read(log2, &l, &e), 0, "%s", e.msg);
    cr_assert(l.n == 4 && l.rows[0].step == 9 && l.rows[3].step == 12, "resumed log: %d rows from step %d", l.n,
              l.rows[0].step);
    trainlog_free(&l);
    const char *bad[] = {"train", "--data", data, "--out", cli_tpath(&t, "x.ckpt"), TINY, "--steps", "3",
                         "--log-csv", cli_tpath(&t, "no/such/dir/l.csv"), NULL};
    cli_expect_fail(bad, "l.csv", 0);
    cli_tdir_close(&t);
}

Test(trainlog, report_plots_the_logs, .timeout = 60) {
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) cr_skip_test("gnuplot is not installed");
    cli_tdir t;
    cli_tdir_open(&t);
    trainlog a = {0}, b = {0}, c = {0};
    for (int i = 1; i <= 100; i++) {
        trainlog_row ra = {i, 128.0 * i, 5.0f / (float)i, i == 100 ? 2.5f : NAN, 1e-3f, 0.1 * i};
        trainlog_row rb = {i, 128.0 * i, 4.0f / (float)i, i == 100 ? 2.0f : NAN, 1e-3f, 0.05 * i};
        /* a run resumed at step 50: its clock starts again */
        trainlog_row rc = {i, 128.0 * i, 4.5f / (float)i, i == 100 ? 2.25f : NAN, 1e-3f, i <= 50 ? 0.1 * i : 0.2 * (i - 50)};
        trainlog_add(&a, &ra), trainlog_add(&b, &rb), trainlog_add(&c, &rc);
    }
    sattn_err e;
    char pa[256], pb[256], pc[256], arg[300], argc2[300], dir[256];
    snprintf(pa, sizeof pa, "%s", cli_tpath(&t, "dense.csv"));
    snprintf(pb, sizeof pb, "%s", cli_tpath(&t, "sparse.csv"));
    snprintf(pc, sizeof pc, "%s", cli_tpath(&t, "resumed.csv"));
    cr_assert_eq(trainlog_save(pa, &a, &e) | trainlog_save(pb, &b, &e) | trainlog_save(pc, &c, &e), 0);
    snprintf(arg, sizeof arg, "tile=%s", pb);
    snprintf(argc2, sizeof argc2, "resumed=%s", pc);
    snprintf(dir, sizeof dir, "%s", cli_tpath(&t, "rep"));
    const char *rp[] = {"report", "--out", dir, "--train-log", pa, "--train-log", arg, "--train-log", argc2, NULL};
    free(cli_expect_ok(rp));
    char path[300];
    snprintf(path, sizeof path, "%s/train_curves.png", dir);
    cr_assert(cli_file_exists(path));
    snprintf(path, sizeof path, "%s/report.md", dir);
    char *md = cli_slurp(path, NULL);
    cr_assert(strstr(md, "| dense.csv |") && strstr(md, "| 100 | 12800 | 2.5000 | 1.0000 | 1280 |"), "%s", md);
    cr_assert(strstr(md, "| tile |") && strstr(md, "| 2.0000 | 0.8000 | 2560 |"), "%s", md);
    /* the resumed run's rate is its last segment's: 50 x 128 tokens in 10 s */
    cr_assert(strstr(md, "| resumed |") && strstr(md, "| 2.2500 | 0.9000 | 640 |"), "%s", md);
    free(md);
    const char *bad[] = {"report", "--out", cli_tpath(&t, "rep2"), "--train-log", "x=", NULL};
    cli_expect_fail(bad, "cannot open", 0);
    trainlog_free(&a), trainlog_free(&b), trainlog_free(&c);
    cli_tdir_close(&t);
}
