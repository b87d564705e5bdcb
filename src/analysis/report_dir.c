/* report_dir: the atomic output folder of `sattn report` (report_impl.h). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "report_impl.h"

/* The whole report is written into a new folder beside the target, "OUT.tmp.PID", and
 * renamed into place only when every file is written; any failure removes that folder.
 * An existing OUT is replaced whole (never mixed with this run's files), but only if it
 * holds nothing sattn report does not write: `--out .` or `--out ~` is refused, not
 * emptied. */

/* out without trailing slashes into buf; "/", "." and ".." (as the last component)
 * cannot be renamed into place. */
int rp_target_of(const char *out, char *buf, size_t n, sattn_err *e) {
    size_t l = strlen(out);
    while (l > 1 && out[l - 1] == '/') l--;
    if (l >= n - 32) return err_set(e, "%.64s...: the output directory's name is too long", out);
    snprintf(buf, n, "%.*s", (int)l, out);
    const char *base = strrchr(buf, '/');
    base = base ? base + 1 : buf;
    if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
        return err_set(e, "%s: not a directory name the report can be renamed to, expected e.g. DIR/report", out);
    return 0;
}

/* A file name sattn report writes (or a temporary name of an interrupted write). */
static int report_file_name(const char *name) {
    size_t l = strlen(name);
    return !strcmp(name, "report.md") || !strcmp(name, "gnuplot.log") || (l > 4 && !strcmp(name + l - 4, ".png")) ||
           (l > 3 && !strcmp(name + l - 3, ".gp")) || strstr(name, ".tmp.") || (l > 4 && !strcmp(name + l - 4, ".tmp"));
}

/* Whether target exists (*exists), and if so that it is a directory holding only
 * regular files with report_file_name names. */
int rp_check_target(const char *target, int *exists, sattn_err *e) {
    struct stat st;
    *exists = lstat(target, &st) == 0;
    if (!*exists) return errno == ENOENT ? 0 : err_set(e, "%s: cannot stat (%s)", target, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return err_set(e, "%s: exists and is not a directory, expected a directory to replace or a new name", target);
    DIR *d = opendir(target);
    if (!d) return err_set(e, "%s: cannot read (%s)", target, strerror(errno));
    int rc = 0;
    for (struct dirent *de; !rc && (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode) ||
            !report_file_name(de->d_name))
            rc = err_set(e, "%s: exists and holds '%s', which is not a report file; expected a new, empty or "
                            "earlier report directory (it is replaced whole)", target, de->d_name);
    }
    closedir(d);
    return rc;
}

/* Removes dir and its regular files (all of them, or only report_file_name ones). */
int rp_remove_dir(const char *dir, int only_report_files) {
    for (int pass = 0; pass < 2; pass++) { /* a second pass for entries readdir skipped */
        DIR *d = opendir(dir);
        if (!d) return -1;
        for (struct dirent *de; (de = readdir(d));)
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
                (!only_report_files || report_file_name(de->d_name)))
                unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
        if (rmdir(dir) == 0) return 0;
    }
    return -1;
}

/* A killed report's folder: only report files are removed, so rmdir keeps anything else. */
static void remove_stale_dir(const char *dir) { rp_remove_dir(dir, 1); }

/* A new empty folder "target.tmp.PID" (".N" added while that name is taken) into buf,
 * after removing those of killed reports (dead PIDs) to the same target. */
int rp_make_temp_dir(const char *target, char *buf, size_t n, sattn_err *e) {
    stale_temps_remove(target, remove_stale_dir);
    for (int i = 0; i < 100; i++) {
        int w = i ? snprintf(buf, n, "%s.tmp.%ld.%d", target, (long)getpid(), i)
                  : snprintf(buf, n, "%s.tmp.%ld", target, (long)getpid());
        if (w < 0 || (size_t)w >= n) return err_set(e, "%s: the name is too long", target);
        if (mkdir(buf, 0755) == 0) return 0;
        if (errno != EEXIST) return err_set(e, "%s: cannot create directory (%s)", buf, strerror(errno));
    }
    return err_set(e, "%s: cannot create a temporary directory beside it (100 names taken)", target);
}

/* Puts tmp at target, which exists: exchanged atomically (renameat2 RENAME_EXCHANGE:
 * target always holds one whole report), or where the file system cannot exchange,
 * target renamed aside first. *old gets where the earlier report now is. */
static int swap_in(const char *tmp, const char *target, char *old, size_t n) {
    snprintf(old, n, "%s", tmp);
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, target, RENAME_EXCHANGE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS) return -1;
    snprintf(old, n, "%s.old", tmp);
    if (rename(target, old)) return -1;
    if (rename(tmp, target) == 0) return 0;
    int err = errno;
    rename(old, target); /* put the earlier report back */
    errno = err;
    return -1;
}

/* Moves the finished folder tmp to target (replacing an earlier report there, which is
 * then removed); on failure tmp is removed and target is as it was. */
int rp_install_dir(const char *tmp, const char *target, int exists, sattn_err *e) {
    char old[PATH_MAX + 64];
    if (exists ? swap_in(tmp, target, old, sizeof old) : rename(tmp, target)) {
        int err = errno;
        rp_remove_dir(tmp, 0);
        return err_set(e, "%s: cannot move the finished report into place (%s)", target, strerror(err));
    }
    if (exists && rp_remove_dir(old, 1))
        return err_set(e, "%s: the new report is in place, but the earlier one is left in %s (%s)", target, old,
                       strerror(errno));
    return 0;
}
