/* Hybrid by length on the command line (docs/hybrid_length.md): `sattn eval` and `sattn
 * sample --heads` with --dense-below and --crossover-from.
 *  - a threshold above the model's context gives exactly the dense model: eval's hybrid
 *    loss equals its dense loss, and the hybrid's samples are the dense model's, byte for
 *    byte; --dense-below 0 equals no flag;
 *  - the threshold from a hand-written bench CSV (made-up times) is the one printed;
 *  - bad values, both flags at once, a missing or malformed CSV and a CSV without rows
 *    for the plan's variant are one-line errors naming the flag or file.
 * Helpers: cli_util.h. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

#define THREADS "--threads", "2"
#define HDR "variant,phase,C,H,T,k,median_s,gflops,speedup_vs_flash,peak_bytes,cpu_pressure_avg10\n"

typedef struct {
    cli_tdir t;
    char data[256], model[256], heads[256], csv[256];
} fx;

/* A model (2 layers, 2 heads, 16 channels, context 32) and index+softmax heads (k=8). */
static void fx_open(fx *f) {
    cli_tdir_open(&f->t);
    snprintf(f->data, sizeof f->data, "%s", cli_tpath(&f->t, "d.txt"));
    snprintf(f->model, sizeof f->model, "%s", cli_tpath(&f->t, "m.ckpt"));
    snprintf(f->heads, sizeof f->heads, "%s", cli_tpath(&f->t, "m.heads"));
    snprintf(f->csv, sizeof f->csv, "%s", cli_tpath(&f->t, "b.csv"));
    cli_write_text(f->data, 20000);
    const char *tr[] = {"train", "--data", f->data, "--out", f->model, "--layers", "2", "--heads", "2", "--dim", "16",
                        "--seq", "32", "--batch", "4", "--steps", "5", "--seed", "3", THREADS, NULL};
    free(cli_expect_ok(tr));
    const char *di[] = {"distill", "--model", f->model, "--data", f->data, "--plan", "all:index+softmax:k=8",
                        "--out", f->heads, "--steps", "3", THREADS, NULL};
    free(cli_expect_ok(di));
    /* index+softmax wins from T=64 at C 64 (the nearest C to 16); block never does */
    static const char csv[] = HDR
        "index+softmax,prefill,64,1,16,8,1,1,0.5,1,1\n"
        "index+softmax,prefill,64,1,64,8,1,1,1.5,1,1\n"
        "index+softmax,prefill,64,1,256,8,1,1,2.5,1,1\n"
        "index+softmax,prefill,512,8,16,8,1,1,3,1,1\n";
    cli_spew(f->csv, csv, strlen(csv));
}

static char *eval_json(fx *f, const char *flag, const char *value) {
    cli_args a = {0};
    cli_args_add(&a, "eval", "--model", f->model, "--heads", f->heads, "--data", f->data, "--json", THREADS, NULL);
    if (flag) cli_args_add(&a, flag, value, NULL);
    return cli_expect_ok(a.v);
}

Test(hybrid_cli, eval_threshold, .timeout = 120) {
    fx f;
    fx_open(&f);
    char *plain = eval_json(&f, NULL, NULL), *zero = eval_json(&f, "--dense-below", "0");
    cr_assert_float_eq(cli_json_num(plain, "loss_hybrid"), cli_json_num(zero, "loss_hybrid"), 0);
    cr_assert_eq(cli_json_num(plain, "dense_below"), 0);
    cr_assert_eq(cli_json_num(plain, "forwards_dense"), 0);
    cr_assert(cli_json_num(plain, "loss_hybrid") != cli_json_num(plain, "loss_dense"), "sparse heads changed nothing");
    /* every window (32 tokens) is below 33: the hybrid is the dense model exactly */
    char *above = eval_json(&f, "--dense-below", "33");
    cr_assert_eq(cli_json_num(above, "loss_hybrid"), cli_json_num(above, "loss_dense"));
    cr_assert_eq(cli_json_num(above, "logit_rel_err"), 0);
    cr_assert_eq(cli_json_num(above, "forwards_sparse"), 0);
    /* the per-head metrics stay the sparse heads' own */
    cr_assert_eq(cli_json_num(above, "mean_recall"), cli_json_num(plain, "mean_recall"));
    /* from the CSV: index+softmax at C 64 (nearest 16), k 8, T* 64 > 32 */
    char *fromcsv = eval_json(&f, "--crossover-from", f.csv);
    cr_assert_eq(cli_json_num(fromcsv, "dense_below"), 64);
    cr_assert_not_null(strstr(fromcsv, f.csv), "the JSON does not name the CSV: %s", fromcsv);
    cr_assert_eq(cli_json_num(fromcsv, "loss_hybrid"), cli_json_num(fromcsv, "loss_dense"));
    free(plain), free(zero), free(above), free(fromcsv);
    /* text mode prints where the threshold came from */
    const char *tx[] = {"eval", "--model", f.model, "--heads", f.heads, "--data", f.data, "--crossover-from", f.csv,
                        THREADS, NULL};
    char *out = cli_expect_ok(tx);
    cr_assert_not_null(strstr(out, "hybrid by length: dense below T=64, from index+softmax prefill at C=64 k=8"),
                       "%s", out);
    free(out);
    cli_tdir_close(&f.t);
}

Test(hybrid_cli, sample_below_threshold_is_dense, .timeout = 120) {
    fx f;
    fx_open(&f);
    const char *dense[] = {"sample", "--model", f.model, "--tokens", "60", "--seed", "5", THREADS, NULL};
    const char *hy[] = {"sample", "--model", f.model, "--tokens", "60", "--seed", "5", "--heads", f.heads,
                        "--dense-below", "1000", THREADS, NULL};
    const char *sp[] = {"sample", "--model", f.model, "--tokens", "60", "--seed", "5", "--heads", f.heads,
                        "--dense-below", "10", THREADS, NULL};
    char *a = cli_expect_ok(dense), *b = NULL, *c = NULL, *err = NULL;
    cr_assert_eq(cli_run(hy, &b, &err), 0);
    cr_assert_str_eq(a, b, "the hybrid below its threshold sampled differently");
    cr_assert_not_null(strstr(err, "dense below T=1000 (--dense-below); 60 forwards with every head dense, 0 with"),
                       "%s", err);
    free(err);
    cr_assert_eq(cli_run(sp, &c, &err), 0);
    /* contexts 1..9 dense, then 10.. (capped at 32) sparse */
    cr_assert_not_null(strstr(err, "9 forwards with every head dense, 51 with the sparse heads"), "%s", err);
    free(a), free(b), free(c), free(err);
    cli_tdir_close(&f.t);
}

Test(hybrid_cli, bad_values_are_one_line, .timeout = 120) {
    fx f;
    fx_open(&f);
    const char *missing = cli_tpath(&f.t, "missing.csv");
    char miss[256], bad[256], noidx[256];
    snprintf(miss, sizeof miss, "%s", missing);
    snprintf(bad, sizeof bad, "%s", cli_tpath(&f.t, "bad.csv"));
    snprintf(noidx, sizeof noidx, "%s", cli_tpath(&f.t, "noidx.csv"));
    static const char bad_csv[] = HDR "index+softmax,prefill,64,1,16,8,1,1,fast,1,1\n";
    static const char noidx_csv[] = HDR "block+softmax,prefill,64,1,16,16,1,1,2,1,1\n";
    cli_spew(bad, bad_csv, strlen(bad_csv));
    cli_spew(noidx, noidx_csv, strlen(noidx_csv));
    static const char *const values[][2] = {{"-1", "--dense-below"}, {"x", "--dense-below"}, {"12abc", "--dense-below"},
                                            {"99999999999", "--dense-below"}};
    for (int i = 0; i < 4; i++) {
        const char *argv[] = {"eval", "--model", f.model, "--heads", f.heads, "--data", f.data, "--dense-below",
                              values[i][0], NULL};
        char *msg = cli_expect_fail_msg(argv, values[i][1], 0);
        cr_assert_not_null(strstr(msg, values[i][0]), "the error does not name the value: %s", msg);
        free(msg);
    }
    const char *both[] = {"eval", "--model", f.model, "--heads", f.heads, "--data", f.data, "--dense-below", "5",
                          "--crossover-from", f.csv, NULL};
    cli_expect_fail(both, "not both", 0);
    const char *files[][2] = {{miss, miss}, {bad, ":2: column 'speedup_vs_flash'"},
                              {noidx, "no prefill rows for variant 'index+softmax'"}};
    for (int i = 0; i < 3; i++) {
        const char *argv[] = {"eval", "--model", f.model, "--heads", f.heads, "--data", f.data, "--crossover-from",
                              files[i][0], NULL};
        char *msg = cli_expect_fail_msg(argv, files[i][1], 0);
        cr_assert_not_null(strstr(msg, files[i][0]), "the error does not name the file: %s", msg);
        free(msg);
        const char *sa[] = {"sample", "--model", f.model, "--heads", f.heads, "--crossover-from", files[i][0], NULL};
        cli_expect_fail(sa, files[i][1], 0);
    }
    const char *noheads[] = {"sample", "--model", f.model, "--dense-below", "5", NULL};
    cli_expect_fail(noheads, "--heads", 0);
    const char *badheads[] = {"sample", "--model", f.model, "--heads", miss, NULL};
    cli_expect_fail(badheads, miss, 0);
    cli_tdir_close(&f.t);
}
