/* CUDA, the parts that run everywhere (issue 5, docs/cuda.md): `sattn bench --device`
 * flags, the "built without CUDA" error of a normal build, and the CUDA bench's CSV
 * rows being readable by `sattn report`. The kernels' own tests are tests/cuda/parity.c
 * (make cuda-parity on a GPU, make cuda-emu anywhere). */
#include <criterion/criterion.h>
#include <string.h>

#include "cli_util.h"
#include "sattn/benchres.h"
#include "sattn/cuda_attn.h"

Test(cuda_cli, device_flag_errors) {
    static const cli_bad_case bad[] = {
        {{"--device", "bogus"}, "--device"},
        {{"--device"}, "--device"},
        {{"--index-rank", "8"}, "--index-rank"},
        {{"--device", "cuda", "--index-rank", "33"}, "--index-rank"},
        {{"--device", "cuda", "--index-heads", "0"}, "--index-heads"},
        {{"--device", "cuda", "--json"}, "--json"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cli_args a = {0};
        cli_args_add(&a, "bench", "--dims", "64", "--seqs", "16", "--runs", "1", NULL);
        cli_args_addv(&a, bad[i].args);
        cli_expect_fail(a.v, bad[i].needle, 0);
    }
}

/* A normal build: one line naming the fix, non-zero exit, nothing timed. A CUDA build
 * on a machine without a GPU: one line saying there is no device. With a GPU: rows. */
Test(cuda_cli, device_cuda_without_cuda) {
    const char *argv[] = {"bench", "--device", "cuda", "--dims", "64", "--seqs", "16", "--ks", "8", "--runs", "1",
                          NULL};
#ifndef SATTN_CUDA
    cr_assert(!sa_cuda_built());
    char *msg = cli_expect_fail_msg(argv, "built without CUDA: run make cuda", 0);
    free(msg);
#else
    char *out = NULL, *err = NULL;
    int rc = cli_run(argv, &out, &err);
    if (rc) cr_assert(strstr(err, "CUDA device"), "rc %d: %s", rc, err);
    else cr_assert(strstr(out, "dense-flash-cuda"), "%s", out);
    free(out), free(err);
#endif
}

Test(cuda_cli, device_cpu_is_the_default_grid) {
    const char *argv[] = {"bench", "--device", "cpu", "--dims", "64", "--seqs", "16", "--ks", "8", "--variants",
                          "flash", "--phases", "prefill", "--runs", "1", NULL};
    char *out = cli_expect_ok(argv);
    cr_assert(strstr(out, "dense-flash ") && !strstr(out, "-cuda"), "%s", out);
    free(out);
}

/* The CUDA rows' names carry no comma or colon: report.c reads them back (tblock's backward
 * row too, its x_flash -1: there is no CUDA flash backward). */
Test(cuda_cli, csv_rows_read_by_report) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *csv = cli_tpath(&t, "cuda.csv");
    bench_row rows[4];
    memset(rows, 0, sizeof rows);
    const char *names[4] = {"dense-flash-cuda", "index+softmax-cuda-r16-j1", "block+softmax-cuda",
                            "tblock+softmax-cuda"};
    for (int i = 0; i < 4; i++)
        rows[i] = (bench_row){"", BENCH_DECODE, 512, 8, 65536, i ? 2048 : 0, 1e-4 * (i + 1), 100.0, 1.0 / (i + 1),
                              1e6, -1.0, -1.0};
    rows[3].phase = BENCH_BACKWARD, rows[3].k = 512, rows[3].speedup_vs_flash = -1.0; /* no CUDA flash backward */
    for (int i = 0; i < 4; i++) snprintf(rows[i].variant, sizeof rows[i].variant, "%s", names[i]);
    char line[256];
    bench_csv_line(&rows[1], line, sizeof line);
    cr_assert_eq(cli_count_char(line, ','), 11, "%s", line);
    cr_assert(!strncmp(line, "index+softmax-cuda-r16-j1,decode,512,8,65536,2048,", 50), "%s", line);
    sattn_err e;
    cr_assert_eq(bench_csv_write(csv, rows, 4, &e), 0, "%s", e.msg);
    bench_table bt;
    cr_assert_eq(bench_csv_read(csv, &bt, &e), 0, "%s", e.msg);
    cr_assert_eq(bt.n, 4);
    cr_assert_str_eq(bt.rows[3].variant, "tblock+softmax-cuda");
    cr_assert(bt.rows[3].phase == BENCH_BACKWARD && bt.rows[3].k == 512 && bt.rows[3].speedup_vs_flash < 0);
    cr_assert_str_eq(bt.rows[1].variant, "index+softmax-cuda-r16-j1");
    cr_assert(bt.rows[2].phase && bt.rows[2].T == 65536 && bt.rows[2].k == 2048);
    bench_table_free(&bt);
    cli_tdir_close(&t);
}
