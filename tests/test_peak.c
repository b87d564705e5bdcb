/* peak (include/sattn/peak.h): the FMA probe runs the FMAs it counts, returns a finite
 * positive rate, and `sattn bench` shows it; the bench CSV's pct_peak column (benchres.h)
 * round-trips and files without it still read. No timing is asserted. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "sattn/benchres.h"
#include "sattn/peak.h"

/* The loop's checksum proves it ran chains x lanes FMAs per iteration: each lane adds
 * `one` per iteration to its start value (a + l / 1024), all exact in float here. */
Test(peak, loop_runs_what_it_counts) {
    int L = peak_lanes(), A = peak_chains();
    cr_assert(L == 4 || L == 8 || L == 16, "lanes %d", L);
    cr_assert(A >= 8 && A <= 32, "chains %d", A);
    for (long iters = 0; iters <= 4000; iters += 1000) {
        double want = (double)A * L * iters + (double)L * A * (A - 1) / 2 + (double)A * L * (L - 1) / 2048.0;
        double got = peak_loop(iters, 1.0f);
        cr_assert_eq(got, want, "iters %ld: %.6f vs %.6f", iters, got, want);
        cr_assert_eq(peak_loop_flops(iters), 2.0 * L * A * iters);
    }
    /* one = 0.5 makes acc = acc / 2 + 1/2: a different number, so the multiply is not dropped */
    cr_assert_neq(peak_loop(10, 0.5f), peak_loop(10, 1.0f));
}

Test(peak, measure_positive_finite) {
    peak_result r = peak_measure(3);
    cr_assert(isfinite(r.gflops) && r.gflops > 0, "%g", r.gflops);
    cr_assert(isfinite(r.gflops_max) && r.gflops_max >= r.gflops, "%g %g", r.gflops_max, r.gflops);
    cr_assert_eq(r.runs, 3);
    cr_assert_geq(r.threads, 1);
    cr_assert_gt(r.iters, 0);
    cr_assert_eq(r.lanes, peak_lanes());
    cr_assert_str_eq(r.isa, peak_isa());
}

Test(peak, cli_peak_only) {
    const char *argv[] = {"bench", "--peak", "--json", "--threads", "1", NULL};
    char *out = cli_expect_ok(argv);
    cli_assert_json_line(out);
    cr_assert_gt(cli_json_num(out, "peak_gflops"), 0.0, "%s", out);
    cr_assert_eq(cli_json_num(out, "threads"), 1.0, "%s", out);
    free(out);
    const char *text[] = {"bench", "--peak", NULL};
    out = cli_expect_ok(text);
    cr_assert(!strncmp(out, "FP32 peak: ", 11) && !strchr(out, '\n')[1], "%s", out);
    free(out);
}

/* A CSV of the old 11 columns reads with pct_peak = -1; the 12-column file round-trips. */
Test(peak, csv_pct_peak_column) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *p = cli_tpath(&t, "old.csv");
    cli_spew_str(p, "variant,phase,C,H,T,k,median_s,gflops,speedup_vs_flash,peak_bytes,cpu_pressure_avg10\n"
                    "dense-flash,prefill,512,8,64,0,1e-3,80,1,100,0.5\n");
    bench_table bt;
    sattn_err e;
    cr_assert_eq(bench_csv_read(p, &bt, &e), 0, "%s", e.msg);
    cr_assert_eq(bt.rows[0].pct_peak, -1.0);
    cr_assert_eq(bt.rows[0].cpu_pressure, 0.5);
    bench_row r = bt.rows[0];
    bench_table_free(&bt);
    r.pct_peak = 42.5;
    const char *q = cli_tpath(&t, "new.csv");
    cr_assert_eq(bench_csv_write(q, &r, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(bench_csv_read(q, &bt, &e), 0, "%s", e.msg);
    cr_assert_eq(bt.rows[0].pct_peak, 42.5);
    bench_table_free(&bt);
    /* a 12-column file with an 11-field row, and a 12th column of another name, are refused */
    cli_spew_str(p, "variant,phase,C,H,T,k,median_s,gflops,speedup_vs_flash,peak_bytes,cpu_pressure_avg10,pct_peak\n"
                    "dense-flash,prefill,512,8,64,0,1e-3,80,1,100,0.5\n");
    cr_assert_eq(bench_csv_read(p, &bt, &e), -1);
    cr_assert(strstr(e.msg, ":2: 11 fields, expected 12"), "%s", e.msg);
    cli_spew_str(p, "variant,phase,C,H,T,k,median_s,gflops,speedup_vs_flash,peak_bytes,cpu_pressure_avg10,pct\n");
    cr_assert_eq(bench_csv_read(p, &bt, &e), -1);
    cr_assert(strstr(e.msg, "pct_peak"), "%s", e.msg);
    cli_spew_str(p, "variant,phase,C,H,T,k,median_s,gflops,speedup_vs_flash,peak_bytes,cpu_pressure_avg10,pct_peak\n"
                    "dense-flash,prefill,512,8,64,0,1e-3,80,1,100,0.5,-2\n");
    cr_assert_eq(bench_csv_read(p, &bt, &e), -1);
    cr_assert(strstr(e.msg, "'pct_peak': '-2' is out of range"), "%s", e.msg);
    cli_tdir_close(&t);
}
