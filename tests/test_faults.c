/* Faults a hostile user or a bad day brings (issue 9): FIFOs and other non-files
 * given as inputs, outputs that name an input, control bytes in error lines, runs
 * that would not fit in memory, writes killed at random points, a full disk.
 * Each case is one line on stderr and a non-zero exit, and nothing is left behind:
 * no partial file under the real name, no temporary file after a caught signal,
 * and a killed process's temporary file removed by the next write to that output. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli_util.h"
#include "sattn/ckpt.h"

#define TINY "--layers", "1", "--heads", "2", "--dim", "16", "--seq", "16", "--batch", "4", \
             "--threads", "2"

static void train_tiny(const char *data, const char *out) {
    const char *argv[] = {"train", "--data", data, "--out", out, TINY, "--steps", "3", NULL};
    free(cli_expect_ok(argv));
}

/* A per-test directory with generated text (d.txt, 4000 bytes) and, when model is not
 * NULL, a tiny model trained on it (m.ckpt). */
static void setup_data_model(cli_tdir *t, char data[256], char *model) {
    cli_tdir_open(t);
    snprintf(data, 256, "%s", cli_tpath(t, "d.txt"));
    cli_write_text(data, 4000);
    if (!model) return;
    snprintf(model, 256, "%s", cli_tpath(t, "m.ckpt"));
    train_tiny(data, model);
}

/* The number of entries in dir whose name contains ".tmp.". */
static int count_temps(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert(d, "opendir %s", dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

/* ------------------------------------------------------------ FIFOs ---- */

Test(faults, fifo_inputs_are_errors_not_hangs, .timeout = 60) {
    cli_tdir t;
    char data[256], model[256], fifo[256];
    setup_data_model(&t, data, model);
    snprintf(fifo, sizeof fifo, "%s", cli_tpath(&t, "fifo"));
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    const char *cases[][12] = {
        {"loss", "--model", fifo, "--data", data, NULL},
        {"loss", "--model", model, "--data", fifo, NULL},
        {"train", "--data", fifo, "--out", cli_tpath(&t, "x.ckpt"), NULL},
        {"eval", "--model", model, "--heads", fifo, "--data", data, NULL},
        {"report", "--bench", fifo, "--out", cli_tpath(&t, "rep"), NULL},
        {"collect", "--read", fifo, NULL},
        {"distill", "--model", model, "--data", data, "--plan", fifo, "--out",
         cli_tpath(&t, "h.sp"), NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *msg = cli_expect_fail_msg(cases[i], "fifo", 0);
        cr_assert(strstr(msg, "FIFO") || strstr(msg, "regular file"), "%s: %s", cli_cmd, msg);
        free(msg);
    }
    cli_tdir_close(&t);
}

/* /proc files report size 0 but have content: read to EOF, not "empty file". */
Test(faults, proc_file_is_read_to_eof, .timeout = 60) {
    cli_tdir t;
    char data[256], model[256];
    setup_data_model(&t, data, model);
    const char *argv[] = {"loss", "--model", model, "--data", "/proc/self/status", "--json", NULL};
    char *out = cli_expect_ok(argv);
    cr_assert_gt(cli_json_num(out, "tokens"), 10, "%s: %s", cli_cmd, out);
    free(out);
    cli_tdir_close(&t);
}

/* ------------------------------------------------- outputs vs inputs ---- */

Test(faults, output_never_overwrites_an_input, .timeout = 120) {
    cli_tdir t;
    cli_tdir_open(&t);
    char data[256], model[256], heads[256], plan[256], lnk[256], hard[256];
    snprintf(data, sizeof data, "%s", cli_tpath(&t, "d.txt"));
    snprintf(model, sizeof model, "%s", cli_tpath(&t, "m.ckpt"));
    snprintf(heads, sizeof heads, "%s", cli_tpath(&t, "h.sp"));
    snprintf(plan, sizeof plan, "%s", cli_tpath(&t, "p.plan"));
    snprintf(lnk, sizeof lnk, "%s", cli_tpath(&t, "link.txt"));
    snprintf(hard, sizeof hard, "%s", cli_tpath(&t, "hard.ckpt"));
    cli_write_text(data, 6000);
    train_tiny(data, model);
    cli_spew_str(plan, "all:index+softmax:k=4\n");
    const char *dist[] = {"distill", "--model", model, "--data", data, "--plan", plan, "--out",
                          heads, "--steps", "2", "--threads", "2", NULL};
    free(cli_expect_ok(dist));
    cr_assert_eq(symlink("d.txt", lnk), 0);
    cr_assert_eq(link(model, hard), 0);
    char *data_before = cli_slurp(data, NULL), *model_before = cli_slurp(model, NULL);
    char *plan_before = cli_slurp(plan, NULL);
    const char *cases[][24] = {
        {"train", "--data", data, "--out", lnk, TINY, NULL},
        {"train", "--data", lnk, "--out", data, TINY, NULL},
        {"collect", "--model", model, "--data", data, "--out", data, NULL},
        {"collect", "--model", model, "--data", data, "--out", hard, NULL},
        {"finetune", "--model", model, "--heads", heads, "--data", data, "--out", hard, NULL},
        {"finetune", "--model", model, "--heads", heads, "--data", data, "--out", lnk, NULL},
        {"finetune", "--model", model, "--heads", heads, "--data", data, "--out",
         cli_tpath(&t, "o.ckpt"), "--heads-out", heads, NULL},
        {"plan", "--model", model, "--data", data, "--budget", "1", "--out", lnk, NULL},
        {"plan", "--model", model, "--data", data, "--budget", "1", "--out", cli_tpath(&t, "o.plan"),
         "--heads-out", hard, NULL},
        {"distill", "--model", model, "--data", data, "--plan", plan, "--out", plan, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *msg = cli_expect_fail_msg(cases[i], "is the same file as", 0);
        cr_assert(strstr(msg, "--out") || strstr(msg, "--heads-out"), "%s: %s", cli_cmd, msg);
        free(msg);
    }
    /* and two outputs may not be one file */
    const char *two[] = {"plan", "--model", model, "--data", data, "--budget", "1", "--out", cli_tpath(&t, "same"),
                         "--heads-out", cli_tpath(&t, "same"), NULL};
    free(cli_expect_fail_msg(two, "--heads-out", 0));
    char *d2 = cli_slurp(data, NULL), *m2 = cli_slurp(model, NULL), *p2 = cli_slurp(plan, NULL);
    cr_assert_str_eq(d2, data_before);
    cr_assert_str_eq(p2, plan_before);
    cr_assert(!memcmp(m2, model_before, 8), "the model changed");
    free(d2), free(m2), free(p2), free(data_before), free(model_before), free(plan_before);
    cr_assert_eq(count_temps(t.dir), 0);
    cli_tdir_close(&t);
}

/* ----------------------------------------------------- control bytes ---- */

Test(faults, error_lines_escape_control_bytes, .timeout = 30) {
    const char *unknown[] = {"\x1b[31mevil\nsattn: forged", NULL};
    char *err = NULL;
    int rc = cli_run(unknown, NULL, &err);
    cr_assert(rc == 1 && cli_count_char(err, '\n') == 1 &&
                  strstr(err, "'\\x1b[31mevil\\x0asattn: forged'") && !strchr(err, '\x1b'),
              "%s: %s", cli_cmd, err);
    free(err);
    char *msg;
    const char *path[] = {"loss", "--model", "/nonexistent/a\rb\x07", "--data", "x", NULL};
    msg = cli_expect_fail_msg(path, "a\\x0db\\x07", 0);
    free(msg);
}

/* ------------------------------------------------------------ memory ---- */

Test(faults, memory_estimate_refuses_giant_runs, .timeout = 60) {
    cli_tdir t;
    cli_tdir_open(&t);
    char data[256], model[256];
    snprintf(data, sizeof data, "%s", cli_tpath(&t, "d.txt"));
    snprintf(model, sizeof model, "%s", cli_tpath(&t, "m.ckpt"));
    cli_write_text(data, 4000);
    const char *cases[][24] = {
        {"train", "--data", data, "--out", model, "--layers", "1024", "--dim", "512", NULL},
        {"train", "--data", data, "--out", model, "--batch", "1048576", "--seq", "8", NULL},
        {"train", "--data", data, "--out", model, TINY, "--max-mem", "0.0001", NULL},
        {"train", "--data", data, "--out", model, TINY, "--max-mem=0.0001", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *msg = cli_expect_fail_msg(cases[i], "needs an estimated", 0);
        cr_assert(strstr(msg, "GiB") || strstr(msg, "KiB"), "%s: %s", cli_cmd, msg);
        free(msg);
    }
    cr_assert(!cli_file_exists(model));
    train_tiny(data, model);
    const char *dist[] = {"distill", "--model", model, "--data", data, "--plan",
                          "all:index+softmax:k=4", "--out", cli_tpath(&t, "h.sp"), "--batch",
                          "65536", "--max-mem", "0.01", NULL};
    free(cli_expect_fail_msg(dist, "--max-mem 10.2 MiB", 0));
    const char *bad[] = {"loss", "--model", model, "--data", data, "--max-mem", "-1", NULL};
    free(cli_expect_fail_msg(bad, "--max-mem", 0));
    const char *word[] = {"loss", "--model", model, "--data", data, "--max-mem", "lots", NULL};
    free(cli_expect_fail_msg(word, "'lots'", 0));
    const char *none[] = {"loss", "--model", model, "--data", data, "--max-mem", NULL};
    free(cli_expect_fail_msg(none, "needs a value", 0));
    cli_tdir_close(&t);
}

Test(faults, count_refuses_what_does_not_fit, .timeout = 30) {
    const char *bin = getenv("SATTN_COUNT_BIN");
    if (!bin) cr_skip_test("SATTN_COUNT_BIN not set (make test sets it)");
    const char *argv[] = {"count", "--dim", "16384", "--seq", "65536", "--variant", "naive", NULL};
    setenv("SATTN_BIN", bin, 1);
    free(cli_expect_fail_msg(argv, "needs an estimated", 0));
}

/* ------------------------------------------------- killed writes ---- */

/* Starts `sattn train` saving a ~1 MB checkpoint every step; returns its pid. */
static pid_t start_saving_train(const char *data, const char *out) {
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1), dup2(null, 2);
        execl(cli_bin(), cli_bin(), "train", "--data", data, "--out", out, "--layers", "2",
              "--heads", "2", "--dim", "64", "--seq", "16", "--batch", "2", "--steps", "100000",
              "--save-every", "1", "--threads", "1", (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Kills training at random points, mostly inside saves (it saves every step): the
 * output is absent or a valid checkpoint, and a caught signal leaves no temporary
 * file; after SIGKILL the next write to the output removes the dead one's. */
Test(faults, kill_during_saves_leaves_valid_or_nothing, .timeout = 180) {
    cli_tdir t;
    cli_tdir_open(&t);
    char data[256], out[256];
    snprintf(data, sizeof data, "%s", cli_tpath(&t, "d.txt"));
    snprintf(out, sizeof out, "%s", cli_tpath(&t, "m.ckpt"));
    cli_write_text(data, 20000);
    const int sigs[] = {SIGTERM, SIGINT, SIGKILL};
    unsigned seed = 12345;
    int valid = 0;
    for (int i = 0; i < 24; i++) {
        int sig = sigs[i % 3];
        pid_t pid = start_saving_train(data, out);
        struct timespec ts = {0, (long)(50 + rand_r(&seed) % 400) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, sig);
        int st;
        waitpid(pid, &st, 0);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == sig, "run %d: not killed by %d", i, sig);
        if (sig != SIGKILL) cr_assert_eq(count_temps(t.dir), 0, "run %d: temp file after %d", i, sig);
        if (cli_file_exists(out)) {
            gpt_model m;
            sattn_err e;
            cr_assert_eq(ckpt_load(out, &m, NULL, &e), 0, "run %d: %s", i, e.msg);
            gpt_free(&m);
            valid++;
        }
    }
    cr_assert_gt(valid, 0, "no run got as far as a save");
    /* a stale temp file of a dead process goes at the next write */
    char stale[300];
    snprintf(stale, sizeof stale, "%s.tmp.%d", out, 999999999);
    cli_spew_str(stale, "partial");
    train_tiny(data, out);
    cr_assert_eq(count_temps(t.dir), 0, "a stale temp file survived the next write");
    cli_tdir_close(&t);
}

/* ------------------------------------------------------- full disk ---- */

Test(faults, full_disk_is_one_line_and_no_file, .timeout = 60) {
    cli_tdir t;
    cli_tdir_open(&t);
    char data[256], mnt[256], out[300];
    snprintf(data, sizeof data, "%s", cli_tpath(&t, "d.txt"));
    snprintf(mnt, sizeof mnt, "%s", cli_tpath(&t, "small"));
    cli_write_text(data, 4000);
    cr_assert_eq(mkdir(mnt, 0700), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=64k") != 0) {
        cli_tdir_close(&t);
        cr_skip_test("cannot mount a tmpfs here (%s): needs root", strerror(errno));
    }
    snprintf(out, sizeof out, "%s/m.ckpt", mnt);
    /* 2 layers of C=64: ~100k parameters, 1.2 MB with AdamW moments: does not fit */
    const char *argv[] = {"train", "--data", data, "--out", out, "--layers", "2", "--heads", "2",
                          "--dim", "64", "--seq", "16", "--batch", "2", "--steps", "2", NULL};
    char *err = NULL;
    int rc = cli_run(argv, NULL, &err);
    /* progress lines come first on stderr; the error is the last line */
    char *last = strrchr(err, '\n');
    while (last && last > err && last[1] == 0) {
        *last = 0;
        last = strrchr(err, '\n');
    }
    last = last ? last + 1 : err;
    cr_assert(rc == 1 && strstr(last, "sattn train: ") == last && strstr(last, out) &&
                  strstr(last, "No space left on device"),
              "%s: rc %d, stderr %s", cli_cmd, rc, err);
    free(err);
    int left = cli_dir_entries(mnt);
    umount(mnt);
    cr_assert_eq(left, 0, "the full disk holds %d files after the failed save", left);
    cli_tdir_close(&t);
}

/* ------------------------------------------------ OpenMP wait policy ---- */

/* Runs `sattn argv...` with OMP_WAIT_POLICY and GOMP_SPINCOUNT removed from the
 * environment (cli_run would set passive itself), stdout into path; exit status. */
static int run_without_wait_policy(const char *const *argv, const char *path) {
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        unsetenv("OMP_WAIT_POLICY");
        unsetenv("GOMP_SPINCOUNT");
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600), null = open("/dev/null", O_WRONLY);
        dup2(fd, 1), dup2(null, 2);
        execv(cli_bin(), (char *const *)argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* With nothing set, sattn waits passively (docs/reliability.md, "Under load"). */
Test(faults, default_wait_policy_is_passive, .timeout = 120) {
    cli_tdir t;
    cli_tdir_open(&t);
    const char *out = cli_tpath(&t, "out.txt");
    const char *argv[] = {cli_bin(), "bench-train", "--configs", "B", "--runs", "1",
                          "--steps-per-run", "1", "--threads", "2", NULL};
    cr_assert_eq(run_without_wait_policy(argv, out), 0);
    char *text = cli_slurp(out, NULL);
    cr_assert(strstr(text, "OpenMP wait policy passive\n"), "%s", text);
    free(text);
    /* the user's choice is kept */
    const char *flops[] = {"bench-train", "--configs", "B", "--runs", "1", "--steps-per-run", "1",
                           "--threads", "2", NULL};
    setenv("OMP_WAIT_POLICY", "active", 1);
    char *o = cli_expect_ok(flops);
    cr_assert(strstr(o, "OpenMP wait policy active\n"), "%s", o);
    free(o);
    cli_tdir_close(&t);
}

/* A report killed by SIGKILL (or SIGINT: the folder is not a single temp file) leaves
 * "OUT.tmp.PID"; the next report to OUT removes it when that process is gone. */
Test(faults, killed_report_folder_removed_by_next_report, .timeout = 60) {
    cli_tdir t;
    cli_tdir_open(&t);
    char stale[300], live[300];
    snprintf(stale, sizeof stale, "%s", cli_tpath(&t, "rep.tmp.999999999"));
    snprintf(live, sizeof live, "%s.tmp.%d", cli_tpath(&t, "rep"), (int)getppid());
    cr_assert_eq(mkdir(stale, 0700), 0);
    cr_assert_eq(mkdir(live, 0700), 0);
    char f[400];
    snprintf(f, sizeof f, "%s/report.md", stale);
    cli_spew_str(f, "partial");
    const char *argv[] = {"report", "--out", cli_tpath(&t, "rep"), "--bench",
                          "fuzz/corpus/bench_csv/bench.csv", NULL};
    free(cli_expect_ok(argv));
    struct stat st;
    cr_assert(stat(stale, &st) != 0, "the dead report's folder survived");
    cr_assert(stat(live, &st) == 0, "a live process's folder was removed");
    rmdir(live);
    cli_tdir_close(&t);
}
