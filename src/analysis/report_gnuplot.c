/* report_gnuplot: the gnuplot driver of `sattn report` (report_impl.h): scripts whose
 * every text is quoted inert, run by gnuplot inside the report folder. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "report_impl.h"

/* p as an absolute path into buf if it names an executable: gnuplot runs in the report
 * folder, so a relative SATTN_GNUPLOT or PATH entry must not change meaning there. */
static int exe_path(const char *p, char *buf, size_t n) {
    char cwd[PATH_MAX];
    if (access(p, X_OK)) return -1;
    if (*p == '/') return snprintf(buf, n, "%s", p) < (int)n ? 0 : -1;
    if (!getcwd(cwd, sizeof cwd)) return -1;
    return snprintf(buf, n, "%s/%s", cwd, p) < (int)n ? 0 : -1;
}

/* The gnuplot program (a path, or a name looked up in PATH) into buf; -1 if none. */
int rp_find_gnuplot(const char *prog, char *buf, size_t n) {
    if (strchr(prog, '/')) return exe_path(prog, buf, n);
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    while (*path) {
        size_t l = strcspn(path, ":");
        char cand[PATH_MAX];
        snprintf(cand, sizeof cand, "%.*s/%s", (int)l, path, prog);
        if (l && exe_path(cand, buf, n) == 0) return 0;
        path += l + (path[l] == ':');
    }
    return -1;
}


static void out_path(const report_ctx *r, const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", r->dir, name);
}

int rp_write_file(const report_ctx *r, const char *name, const sbuf *b, sattn_err *e) {
    char path[PATH_MAX + 128];
    out_path(r, name, path, sizeof path);
    afile a;
    if (afile_open(&a, path, e)) return -1;
    if (afile_write(&a, b->s, b->n, e)) return afile_abort(&a), -1;
    return afile_commit(&a, e);
}

/* s as a gnuplot single-quoted string. Inside single quotes gnuplot substitutes nothing
 * (no `backquotes`, no @macros, no backslash escapes) and '' is a quote, so doubling
 * quotes and replacing bytes that could end the line makes any text inert. Every text
 * put into a script goes through here; names from files are also whitelisted when read
 * (check_variant, eval_name), so this is the second of two locks. */
void rp_gp_str(sbuf *g, const char *s) {
    sb_printf(g, "'");
    for (; *s; s++) {
        if (*s == '\'') sb_printf(g, "''");
        else sb_printf(g, "%c", (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
    }
    sb_printf(g, "'");
}

/* "KEYWORD 'text'\n" */
static void gp_set(sbuf *g, const char *keyword, const char *text) {
    sb_printf(g, "%s ", keyword);
    rp_gp_str(g, text);
    sb_printf(g, "\n");
}

/* The script's first lines: terminal, output NAME.png (relative: gnuplot runs in the
 * report folder, so no path reaches the script), title, axes; logscale "x" or "xy"
 * (SI-prefixed tick labels; yfmt: the y tick format then) or NULL. */
void rp_plot_begin(sbuf *g, const char *name, const char *title, const char *xlabel, const char *ylabel,
                   const char *logscale, const char *yfmt) {
    char png[REPORT_NAME_LEN + 32];
    snprintf(png, sizeof png, "%s.png", name);
    sb_printf(g, "# sattn report: %s (redraw: gnuplot %s.gp, run inside this folder)\n", png, name);
    sb_printf(g, "set terminal pngcairo size 960,640 noenhanced font 'DejaVu Sans,11'\n");
    gp_set(g, "set output", png);
    gp_set(g, "set title", title);
    gp_set(g, "set xlabel", xlabel);
    gp_set(g, "set ylabel", ylabel);
    sb_printf(g, "set grid\nset key outside right top box\nset datafile missing 'NaN'\n");
    if (logscale) sb_printf(g, "set logscale %s\nset format x '%%.0s%%c'\n", logscale);
    if (yfmt) gp_set(g, "set format y", yfmt);
}

/* Runs gnuplot on script (a name in r->dir) with r->dir as its working directory,
 * stdout and stderr appended to gnuplot.log there; *st gets the wait status. */
static int run_gnuplot(const report_ctx *r, const char *script, int *st) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) { /* only async-signal-safe calls until exec */
        int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int log = chdir(r->dir) ? -1 : open("gnuplot.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (in < 0 || log < 0 || dup2(in, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0) _exit(126);
        char *argv[] = {(char *)r->gnuplot, (char *)script, NULL};
        execv(r->gnuplot, argv);
        _exit(127);
    }
    while (waitpid(pid, st, 0) < 0)
        if (errno != EINTR) return -1;
    return 0;
}

/* The last non-empty line gnuplot logged from byte `from` on (its error), into buf. */
static void log_tail(const report_ctx *r, size_t from, char *buf, size_t n) {
    char path[PATH_MAX + 32];
    uint8_t *d;
    size_t len;
    sattn_err ignored;
    snprintf(buf, n, "no message");
    out_path(r, "gnuplot.log", path, sizeof path);
    if (file_read_all(path, &d, &len, &ignored)) return;
    while (len > from && (d[len - 1] == '\n' || d[len - 1] == '\r' || d[len - 1] == ' ')) len--;
    size_t b = len;
    while (b > from && d[b - 1] != '\n') b--;
    if (len > b) snprintf(buf, n, "%.*s", (int)(len - b), (const char *)d + b);
    free(d);
}

static size_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) ? 0 : (size_t)st.st_size;
}

/* Writes NAME.gp into the report folder and runs gnuplot on it, which writes NAME.png.
 * A failure names the script and gnuplot's last message (its log is removed with the
 * temporary folder). */
int rp_plot_render(report_ctx *r, const char *name, const sbuf *g, sattn_err *e) {
    char script[REPORT_NAME_LEN + 32], log[PATH_MAX + 32], msg[200];
    snprintf(script, sizeof script, "%s.gp", name);
    if (rp_write_file(r, script, g, e)) return -1;
    out_path(r, "gnuplot.log", log, sizeof log);
    size_t from = file_size(log);
    int st = 0;
    if (run_gnuplot(r, script, &st)) return err_set(e, "%s: cannot run (%s)", r->gnuplot, strerror(errno));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return r->plots++, 0;
    log_tail(r, from, msg, sizeof msg);
    if (WIFEXITED(st))
        return err_set(e, "%s failed on %s (exit status %d): %s", r->gnuplot, script, WEXITSTATUS(st), msg);
    return err_set(e, "%s failed on %s (signal %d): %s", r->gnuplot, script, WTERMSIG(st), msg);
}

/* A gnuplot colour and dash type per variant name, so the same variant looks the same
 * in every plot. */
void rp_style_of(const char *name, char *buf, size_t n) {
    const char *col = !strncmp(name, "dense-naive", 11) ? "#888888"
                      : !strncmp(name, "dense", 5)      ? "#000000"
                      : !strncmp(name, "pos", 3)        ? "#d95f02"
                      : !strncmp(name, "index", 5)      ? "#1f5fbf"
                      : !strncmp(name, "block", 5)      ? "#1b9e77"
                                                        : "#7570b3";
    int dash = strstr(name, "+mlp") ? 2 : 1;
    snprintf(buf, n, "lw 2 lc rgb '%s' dt %d", col, dash);
}

/* "index+softmax:k=32,r=16,j=4" -> "index+softmax" (legends); the full specs go in the table. */
void rp_short_name(const char *name, char *buf, size_t n) {
    size_t l = strcspn(name, ":");
    snprintf(buf, n, "%.*s", (int)l, name);
}
