/* Data-parallel training under OpenMPI (issue 13, docs/mpi.md), through the CLI with
 * `mpirun -np 2 --oversubscribe --allow-run-as-root -q` (2 ranks on this 2-core machine):
 *  - equivalence: 2 ranks x half the batch each follow the single process's loss
 *    trajectory to 1e-5 (relative) over 100 steps of the nanoGPT CPU recipe's shape, with
 *    --zero 0 and --zero 1; native sparse training too; distill and finetune to 1e-4 on
 *    the final loss;
 *  - --resume with another number of ranks continues the same trajectory (the state is
 *    saved unsharded, the sampler is global);
 *  - a killed rank: mpirun ends the job (no hang) and the last checkpoint loads;
 *  - bad use (--batch not a multiple of the ranks, an empty validation shard, another
 *    model on one rank, a setup error on rank 1 only, a command that does not run as a
 *    job): one line from rank 0, non-zero exit, no hang.
 * Needs mpirun (scripts/deps.sh installs OpenMPI) and a sattn built with it; a build
 * without MPI (`make MPI=0`) skips them, saying so. */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "sattn/trainlog.h"

/* OpenMPI leaves allocations of the components it dlclose()s at MPI_Finalize; their stacks
 * end in "<unknown module>", which LeakSanitizer cannot suppress by name. The ranks of
 * `make check` therefore run without the leak check (every other ASan and UBSan check
 * stays on; the single-process tests keep the leak check for the same code). */
#define MPI_NO_LEAKS "ASAN_OPTIONS=detect_leaks=0"

/* The tests are built with the flags sattn is built with: -DSATTN_MPI or not. */
#ifdef SATTN_MPI
#define NEED_MPI() ((void)0)
#else
#define NEED_MPI() cr_skip_test("sattn was built without MPI (make MPI=0): data-parallel tests skipped")
#endif

/* Runs `mpirun -np np ... sattn args...` (args NULL-terminated). */
static int mpi_run(const char *np, const char *args[], char **out, char **err) {
    const char *full[CLI_MAX_ARGS + 12] = {"mpirun", "-np", np, "--oversubscribe", "--allow-run-as-root", "-q",
                                           "-x", "OMP_WAIT_POLICY", "-x", MPI_NO_LEAKS, cli_bin()};
    int n = 11;
    for (int i = 0; args[i]; i++) full[n++] = args[i];
    full[n] = NULL;
    return cli_run_prog(full, out, err);
}

static void mpi_ok(const char *np, const char *args[]) {
    char *out, *err;
    int rc = mpi_run(np, args, &out, &err);
    cr_assert_eq(rc, 0, "%s\n%s", cli_cmd, err);
    free(out), free(err);
}

static void run_ok(const char *args[]) { free(cli_expect_ok(args)); }

/* The largest relative difference of two logs' training losses (steps from..to). */
static double log_diff(const char *a, const char *b, int from, int to) {
    trainlog x, y;
    sattn_err e;
    cr_assert_eq(trainlog_read(a, &x, &e), 0, "%s", e.msg);
    cr_assert_eq(trainlog_read(b, &y, &e), 0, "%s", e.msg);
    double worst = 0.0;
    int seen = 0;
    for (int i = 0; i < x.n; i++)
        for (int j = 0; j < y.n; j++)
            if (x.rows[i].step == y.rows[j].step && x.rows[i].step >= from && x.rows[i].step <= to) {
                double d = fabs(x.rows[i].train_loss - y.rows[j].train_loss) / fabs(x.rows[i].train_loss);
                worst = d > worst ? d : worst, seen++;
            }
    cr_assert_eq(seen, to - from + 1, "%s and %s share %d of steps %d..%d", a, b, seen, from, to);
    trainlog_free(&x), trainlog_free(&y);
    return worst;
}

static const char *data_path(void) {
    return cli_file_exists(CLI_SHAKESPEARE) ? CLI_SHAKESPEARE : "data/kjv.txt";
}

/* The nanoGPT CPU recipe's shape (README: L4 H4 C128, T 64, batch 12), 100 steps. */
#define RECIPE(out, csv, threads)                                                                               \
    "train", "--data", data_path(), "--layers", "4", "--heads", "4", "--dim", "128", "--seq", "64", "--batch",  \
        "12", "--steps", "100", "--warmup", "10", "--eval-every", "50", "--threads", threads, "--out", out,     \
        "--log-csv", csv

Test(mpi, two_ranks_follow_one_process_zero0_and_zero1, .timeout = 600) {
    NEED_MPI();
    cli_tdir t;
    cli_tdir_open(&t);
    const char *one[] = {RECIPE(cli_tpath(&t, "one.ckpt"), cli_tpath(&t, "one.csv"), "2"), NULL};
    run_ok(one);
    for (int z = 0; z <= 1; z++) {
        char ck[32], csv[32];
        snprintf(ck, sizeof ck, "z%d.ckpt", z), snprintf(csv, sizeof csv, "z%d.csv", z);
        const char *two[] = {RECIPE(cli_tpath(&t, ck), cli_tpath(&t, csv), "1"), "--zero", z ? "1" : "0", NULL};
        mpi_ok("2", two);
        double d = log_diff(cli_tpath(&t, "one.csv"), cli_tpath(&t, csv), 1, 100);
        cr_assert_leq(d, 1e-5, "--zero %d: losses differ by %g (relative) from one process", z, d);
        const char *loss[] = {"loss", "--model", cli_tpath(&t, ck), "--data", data_path(), "--json", NULL};
        char *o = cli_expect_ok(loss);
        cr_assert_gt(cli_json_num(o, "loss"), 0.5);
        free(o);
    }
    cli_tdir_close(&t);
}

#define SMALL(out, csv, threads)                                                                                \
    "train", "--data", data_path(), "--layers", "2", "--heads", "2", "--dim", "64", "--seq", "32", "--batch", \
        "8", "--steps", "60", "--warmup", "5", "--eval-every", "0", "--threads", threads, "--out", out,        \
        "--log-csv", csv

/* Stopped at 30 under one rank count, resumed under the other: steps 31..60 follow the
 * uninterrupted single-process run. */
Test(mpi, resume_with_another_number_of_ranks, .timeout = 600) {
    NEED_MPI();
    cli_tdir t;
    cli_tdir_open(&t);
    const char *full[] = {SMALL(cli_tpath(&t, "full.ckpt"), cli_tpath(&t, "full.csv"), "2"), NULL};
    run_ok(full);
    /* 2 ranks (ZeRO-1: moments gathered into the checkpoint) -> 1 process */
    const char *a1[] = {SMALL(cli_tpath(&t, "a.ckpt"), cli_tpath(&t, "a1.csv"), "1"), "--zero", "1", "--stop-at",
                        "30", NULL};
    mpi_ok("2", a1);
    const char *a2[] = {SMALL(cli_tpath(&t, "a.ckpt"), cli_tpath(&t, "a2.csv"), "2"), "--resume",
                        cli_tpath(&t, "a.ckpt"), NULL};
    run_ok(a2);
    double d = log_diff(cli_tpath(&t, "full.csv"), cli_tpath(&t, "a2.csv"), 31, 60);
    cr_assert_leq(d, 1e-5, "2 ranks then 1: %g", d);
    /* 1 process -> 2 ranks with ZeRO-1 (each keeps its shard of the saved moments) */
    const char *b1[] = {SMALL(cli_tpath(&t, "b.ckpt"), cli_tpath(&t, "b1.csv"), "2"), "--stop-at", "30", NULL};
    run_ok(b1);
    const char *b2[] = {SMALL(cli_tpath(&t, "b.ckpt"), cli_tpath(&t, "b2.csv"), "1"), "--zero", "1", "--resume",
                        cli_tpath(&t, "b.ckpt"), NULL};
    mpi_ok("2", b2);
    d = log_diff(cli_tpath(&t, "full.csv"), cli_tpath(&t, "b2.csv"), 31, 60);
    cr_assert_leq(d, 1e-5, "1 process then 2 ranks: %g", d);
    cli_tdir_close(&t);
}

/* mpirun's line when a rank was killed, and the checkpoint left behind still loads and
 * resumes. tests/mpi_kill.sh starts the job, waits for the first periodic checkpoint,
 * kills rank 1 with SIGKILL and reports mpirun's exit status and time. */
Test(mpi, killed_rank_ends_the_job_and_the_checkpoint_loads, .timeout = 300) {
    NEED_MPI();
    cli_tdir t;
    cli_tdir_open(&t);
    const char *ck = cli_tpath(&t, "k.ckpt");
    const char *kill[] = {"bash", "tests/mpi_kill.sh", cli_bin(), data_path(), ck, NULL};
    char *out, *err;
    int rc = cli_run_prog(kill, &out, &err);
    cr_assert_eq(rc, 0, "%s\nstdout: %s\nstderr: %s", cli_cmd, out, err);
    cr_assert(strstr(out, "mpirun exit 137") || strstr(out, "mpirun exit 1"), "%s", out);
    cr_assert(strstr(err, "rank 1") && strstr(err, "signal 9"), "mpirun did not say which rank died: %s", err);
    free(out), free(err);
    const char *loss[] = {"loss", "--model", ck, "--data", data_path(), "--json", NULL};
    char *o = cli_expect_ok(loss);
    cr_assert_gt(cli_json_num(o, "loss"), 0.5);
    free(o);
    cli_tdir_close(&t);
}

/* A failing job: exit non-zero, stdout empty, stderr one "sattn CMD: " line naming needle. */
static void mpi_fail(const char *args[], const char *needle) {
    char *out, *err;
    int rc = mpi_run("2", args, &out, &err);
    cli_check_fail_line(rc, out, err, "sattn ", needle, 0);
    free(out), free(err);
}

Test(mpi, bad_use_is_one_line_from_rank_0, .timeout = 300) {
    NEED_MPI();
    cli_tdir t;
    cli_tdir_open(&t);
    const char *b7[] = {SMALL(cli_tpath(&t, "x.ckpt"), cli_tpath(&t, "x.csv"), "1"), "--batch", "7", NULL};
    mpi_fail(b7, "--batch 7 is not a multiple of the 2 ranks");
    /* 40 bytes of validation text: one window of 32, two ranks */
    cli_write_text(cli_tpath(&t, "tiny.txt"), 400);
    const char *empty[] = {"train", "--data", cli_tpath(&t, "tiny.txt"), "--layers", "1", "--heads", "1", "--dim",
                           "16", "--seq", "32", "--batch", "2", "--steps", "2", "--out", cli_tpath(&t, "y.ckpt"),
                           NULL};
    mpi_fail(empty, "rank 1's shard would be empty");
    const char *loss[] = {"loss", "--model", "nope.ckpt", "--data", data_path(), NULL};
    mpi_fail(loss, "sattn loss: runs as one process");
    cli_assert_no_output(t.dir, "x.ckpt");
    cli_assert_no_output(t.dir, "y.ckpt");
    cli_tdir_close(&t);
}

/* MPMD jobs (one command line per rank): rank 1 fails its setup alone, or resumes
 * another checkpoint than rank 0. */
Test(mpi, a_rank_that_differs_is_named_by_rank_0, .timeout = 300) {
    NEED_MPI();
    cli_tdir t;
    cli_tdir_open(&t);
    const char *mk[] = {SMALL(cli_tpath(&t, "a.ckpt"), cli_tpath(&t, "a.csv"), "2"), "--stop-at", "2", NULL};
    run_ok(mk);
    const char *mk2[] = {SMALL(cli_tpath(&t, "b.ckpt"), cli_tpath(&t, "b.csv"), "2"), "--stop-at", "3", NULL};
    run_ok(mk2);
    const char *base[] = {"mpirun", "--oversubscribe", "--allow-run-as-root", "-q", "-x", MPI_NO_LEAKS, "-np", "1", cli_bin(),
                          SMALL(cli_tpath(&t, "o.ckpt"), cli_tpath(&t, "o.csv"), "1"), "--resume", NULL};
    const char *full[128];
    int n = 0;
    for (int i = 0; base[i]; i++) full[n++] = base[i];
    full[n++] = cli_tpath(&t, "a.ckpt");
    const char *rest[] = {":", "-np", "1", cli_bin(), SMALL(cli_tpath(&t, "o.ckpt"), cli_tpath(&t, "o.csv"), "1"),
                          "--resume", NULL};
    for (int i = 0; rest[i]; i++) full[n++] = rest[i];
    full[n++] = cli_tpath(&t, "b.ckpt");
    full[n] = NULL;
    char *out, *err;
    int rc = cli_run_prog(full, &out, &err);
    cli_check_fail_line(rc, out, err, "sattn train: ", "rank 1's model differs from rank 0's", 0);
    free(out), free(err);
    full[n - 1] = cli_tpath(&t, "missing.ckpt"); /* rank 1 alone cannot open its file */
    rc = cli_run_prog(full, &out, &err);
    cli_check_fail_line(rc, out, err, "sattn train: rank 1: ", "missing.ckpt", 0);
    free(out), free(err);
    cli_assert_no_output(t.dir, "o.ckpt");
    cli_tdir_close(&t);
}

/* distill and finetune as jobs: their results match the single process's. */
Test(mpi, distill_and_finetune_follow_one_process, .timeout = 600) {
    NEED_MPI();
    cli_tdir t;
    cli_tdir_open(&t);
    const char *mk[] = {SMALL(cli_tpath(&t, "m.ckpt"), cli_tpath(&t, "m.csv"), "2"), NULL};
    run_ok(mk);
    const char *plan = "all:index+softmax:k=8";
#define DISTILL(out, th) "distill", "--model", cli_tpath(&t, "m.ckpt"), "--data", data_path(), "--plan", plan, \
        "--steps", "20", "--batch", "4", "--threads", th, "--out", out
    const char *d1[] = {DISTILL(cli_tpath(&t, "h1.heads"), "2"), NULL};
    run_ok(d1);
    const char *d2[] = {DISTILL(cli_tpath(&t, "h2.heads"), "1"), NULL};
    mpi_ok("2", d2);
    double l[2];
    for (int i = 0; i < 2; i++) {
        const char *loss[] = {"loss", "--model", cli_tpath(&t, "m.ckpt"), "--heads",
                              cli_tpath(&t, i ? "h2.heads" : "h1.heads"), "--data", data_path(), "--json", NULL};
        char *o = cli_expect_ok(loss);
        l[i] = cli_json_num(o, "loss");
        free(o);
    }
    cr_assert_leq(fabs(l[0] - l[1]) / l[0], 1e-4, "distill: %.6f (1 process) vs %.6f (2 ranks)", l[0], l[1]);
#define FINETUNE(out, th) "finetune", "--model", cli_tpath(&t, "m.ckpt"), "--heads", cli_tpath(&t, "h1.heads"), \
        "--data", data_path(), "--steps", "10", "--batch", "4", "--threads", th, "--json", "--out", out
    char *o1 = cli_expect_ok((const char *[]){FINETUNE(cli_tpath(&t, "f1.ckpt"), "2"), NULL});
    char *o2, *err;
    int rc = mpi_run("2", (const char *[]){FINETUNE(cli_tpath(&t, "f2.ckpt"), "1"), "--zero", "1", NULL}, &o2, &err);
    cr_assert_eq(rc, 0, "%s\n%s", cli_cmd, err);
    double a = cli_json_num(o1, "loss_hybrid_after"), b = cli_json_num(o2, "loss_hybrid_after");
    cr_assert_leq(fabs(a - b) / a, 1e-4, "finetune: %.6f (1 process) vs %.6f (2 ranks)", a, b);
    free(o1), free(o2), free(err);
    cli_tdir_close(&t);
}

/* Native sparse training (--attn sparse:PLAN, mlp heads that train beside the model, a
 * dense warm-up) under 2 ranks with ZeRO-1 follows the single process step for step. */
Test(mpi, native_sparse_training_follows_one_process, .timeout = 600) {
    NEED_MPI();
    cli_tdir t;
    cli_tdir_open(&t);
#define NATIVE(out, heads, csv, th)                                                                             \
    "train", "--data", data_path(), "--layers", "2", "--heads", "2", "--dim", "64", "--seq", "64", "--batch",  \
        "8", "--steps", "20", "--eval-every", "0", "--attn", "sparse:all:index+mlp:k=8", "--dense-warmup", "5", \
        "--threads", th, "--out", out, "--heads-out", heads, "--log-csv", csv
    run_ok((const char *[]){NATIVE(cli_tpath(&t, "a.ckpt"), cli_tpath(&t, "a.heads"), cli_tpath(&t, "a.csv"), "2"),
                            NULL});
    mpi_ok("2", (const char *[]){NATIVE(cli_tpath(&t, "b.ckpt"), cli_tpath(&t, "b.heads"), cli_tpath(&t, "b.csv"),
                                        "1"),
                                 "--zero", "1", NULL});
    double d = log_diff(cli_tpath(&t, "a.csv"), cli_tpath(&t, "b.csv"), 1, 20);
    cr_assert_leq(d, 1e-5, "native sparse training: losses differ by %g from one process", d);
    cli_tdir_close(&t);
}
