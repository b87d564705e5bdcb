/* core: errors, checked allocation, atomic file writes, timer. */
#define _DEFAULT_SOURCE /* madvise */
#include "sattn/core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int err_set(sattn_err *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void die_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "sattn: fatal: %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

void *xmalloc_at(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) die_at(file, line, "out of memory allocating %zu bytes", n);
    return p;
}

void *xcalloc_at(size_t n, size_t size, const char *file, int line) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) die_at(file, line, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *xrealloc_at(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) die_at(file, line, "out of memory reallocating %zu bytes", n);
    return q;
}

/* Blocks of 4 MiB and more are 2 MiB aligned and advised as huge pages: this
 * kernel's THP mode is "madvise", and the parameter, gradient and moment blocks
 * of a 124M model otherwise cost a TLB miss every few kilobytes. */
void *xmalloc_aligned_at(size_t n, const char *file, int line) {
    void *p = NULL;
    size_t huge = (size_t)2 << 20, align = n >= 2 * huge ? huge : 64;
    size_t rounded = (n + align - 1) / align * align;
    if (posix_memalign(&p, align, rounded ? rounded : align) != 0)
        die_at(file, line, "out of memory allocating %zu bytes", n);
    if (align == huge) madvise(p, rounded, MADV_HUGEPAGE); /* advice only: failure is harmless */
    return p;
}

static char *xstrdup_printf(const char *a, const char *b, long n) {
    size_t len = strlen(a) + strlen(b) + 32;
    char *s = xmalloc(len);
    snprintf(s, len, "%s%s%ld", a, b, n);
    return s;
}

/* Temp files of writes in progress, for the signal handler: a SIGINT, SIGTERM or
 * SIGHUP during a save removes them before the process dies. This table is the one
 * piece of process-wide mutable state in sattn: a signal handler cannot be given a
 * context. Slots are claimed and released atomically; the handler only reads them
 * and calls unlink, which is async-signal-safe. A full table only loses the cleanup. */
#define AFILE_LIVE_SLOTS 64
static char *afile_live[AFILE_LIVE_SLOTS];
static int afile_handlers_set;

static void afile_on_signal(int sig) {
    for (int i = 0; i < AFILE_LIVE_SLOTS; i++) {
        char *p = __atomic_load_n(&afile_live[i], __ATOMIC_SEQ_CST);
        if (p) unlink(p);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Installs the handler for signals still at their default action (a caller that
 * ignores or handles SIGINT itself keeps its choice). */
static void afile_install_handlers(void) {
    if (__atomic_exchange_n(&afile_handlers_set, 1, __ATOMIC_SEQ_CST)) return;
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old, sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = afile_on_signal;
        sigemptyset(&sa.sa_mask);
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL)
            sigaction(sigs[i], &sa, NULL);
    }
}

static void afile_register(char *tmp) {
    for (int i = 0; i < AFILE_LIVE_SLOTS; i++) {
        char *expect = NULL;
        if (__atomic_compare_exchange_n(&afile_live[i], &expect, tmp, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            return;
    }
}

static void afile_unregister(const char *tmp) {
    for (int i = 0; i < AFILE_LIVE_SLOTS; i++) {
        char *expect = (char *)tmp;
        __atomic_compare_exchange_n(&afile_live[i], &expect, NULL, 0, __ATOMIC_SEQ_CST,
                                    __ATOMIC_SEQ_CST);
    }
}

/* A SIGKILL (or a crash) cannot be caught, so the next write to the same output
 * removes "<name>.tmp.<pid>" siblings whose process no longer exists. A pid that
 * was reused by a live process keeps its file: never remove what may be in use. (A writer
 * in another PID namespace sharing the folder would look dead; sattn does not handle that.) */
int stale_temp_name(const char *base, const char *name) {
    size_t blen = strlen(base);
    if (strncmp(name, base, blen) != 0 || strncmp(name + blen, ".tmp.", 5) != 0) return 0;
    const char *num = name + blen + 5;
    char *end;
    long pid = strtol(num, &end, 10);
    if (end == num || pid <= 0 || pid == (long)getpid()) return 0;
    if (*end == '.') { /* ".N": a second temporary name of the same process */
        const char *n2 = end + 1;
        strtol(n2, &end, 10);
        if (end == n2) return 0;
    }
    if (*end) return 0;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

void stale_temps_remove(const char *path, void (*remove_fn)(const char *full)) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dlen = slash ? (size_t)(slash - path) + 1 : 2;
    char *dir = xmalloc(dlen + 1);
    memcpy(dir, slash ? path : "./", dlen);
    dir[dlen] = 0;
    DIR *d = opendir(dir);
    for (struct dirent *de; d && (de = readdir(d));) {
        if (!stale_temp_name(base, de->d_name)) continue;
        char *full = xmalloc(dlen + strlen(de->d_name) + 1);
        memcpy(full, dir, dlen);
        strcpy(full + dlen, de->d_name);
        remove_fn(full);
        free(full);
    }
    if (d) closedir(d);
    free(dir);
}

static void unlink_file(const char *full) { unlink(full); }

static void afile_remove_stale(const char *path) { stale_temps_remove(path, unlink_file); }

int afile_open(afile *a, const char *path, sattn_err *e) {
    afile_install_handlers();
    afile_remove_stale(path);
    a->path = xmalloc(strlen(path) + 1);
    strcpy(a->path, path);
    a->tmp = xstrdup_printf(path, ".tmp.", (long)getpid());
    afile_register(a->tmp);
    a->f = fopen(a->tmp, "wb");
    if (!a->f) {
        int r = err_set(e, "%s: cannot create (%s)", path, strerror(errno));
        afile_unregister(a->tmp);
        free(a->path);
        free(a->tmp);
        a->path = a->tmp = NULL;
        return r;
    }
    return 0;
}

int afile_write(afile *a, const void *data, size_t n, sattn_err *e) {
    if (n && fwrite(data, 1, n, a->f) != n)
        return err_set(e, "%s: write failed (%s)", a->path, strerror(errno));
    return 0;
}

static void afile_release(afile *a) {
    if (a->tmp) afile_unregister(a->tmp);
    free(a->path);
    free(a->tmp);
    a->path = a->tmp = NULL;
    a->f = NULL;
}

int afile_commit(afile *a, sattn_err *e) {
    int bad = fflush(a->f) != 0 || fsync(fileno(a->f)) != 0;
    bad |= fclose(a->f) != 0;
    a->f = NULL;
    if (bad || rename(a->tmp, a->path) != 0) {
        int r = err_set(e, "%s: write failed (%s)", a->path, strerror(errno));
        remove(a->tmp);
        afile_release(a);
        return r;
    }
    afile_release(a);
    return 0;
}

void afile_abort(afile *a) {
    if (a->f) fclose(a->f);
    if (a->tmp) remove(a->tmp);
    afile_release(a);
}

FILE *file_open_regular(const char *path, size_t *size, sattn_err *e) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        err_set(e, "%s: cannot open (%s)", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        err_set(e, "%s: cannot stat (%s)", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        err_set(e, "%s: not a regular file (%s)", path,
                S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISDIR(st.st_mode) ? "a directory"
                : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : "not a plain file");
        close(fd);
        return NULL;
    }
    /* Regular files never block; clear the flag so stdio sees ordinary reads. */
    int fl = fcntl(fd, F_GETFL);
    FILE *f = fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 ? NULL : fdopen(fd, "rb");
    if (!f) {
        err_set(e, "%s: cannot open (%s)", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (size) *size = (size_t)st.st_size;
    return f;
}

int file_read_all(const char *path, uint8_t **data, size_t *len, sattn_err *e) {
    size_t n = 0;
    FILE *f = file_open_regular(path, &n, e);
    if (!f) return -1;
    /* st_size is a hint: /proc files say 0, and a file may grow while read. */
    size_t cap = n + 1, got = 0;
    uint8_t *buf = xmalloc(cap);
    for (;;) {
        got += fread(buf + got, 1, cap - got, f);
        if (got < cap || ferror(f)) break;
        cap *= 2;
        buf = xrealloc(buf, cap);
    }
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        free(buf);
        return err_set(e, "%s: read failed after %zu bytes (%s)", path, got, strerror(errno));
    }
    *data = buf;
    *len = got;
    return 0;
}

uint64_t fnv1a64(const void *data, size_t n, uint64_t h) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t fnv1a64_header(const void *hdr, size_t n, size_t off) {
    static const uint8_t zero[8];
    const uint8_t *p = hdr;
    uint64_t h = fnv1a64(p, off, FNV1A64_INIT);
    h = fnv1a64(zero, sizeof zero, h);
    return fnv1a64(p + off + 8, n - off - 8, h);
}

/* The number after "key" in a /proc or /sys text, scaled; -1 if absent. */
static double text_field(const char *text, const char *key, double scale) {
    const char *p = strstr(text, key);
    if (!p) return -1.0;
    char *end;
    double v = strtod(p + strlen(key), &end);
    return end == p + strlen(key) ? -1.0 : v * scale;
}

static double file_number(const char *path, const char *key, double scale) {
    uint8_t *data;
    size_t len;
    if (file_read_all(path, &data, &len, NULL)) return -1.0;
    data = xrealloc(data, len + 1);
    data[len] = 0;
    double v = text_field((const char *)data, key, scale);
    free(data);
    return v;
}

int mem_available(double *bytes, sattn_err *e) {
    double avail = file_number("/proc/meminfo", "MemAvailable:", 1024.0);
    if (avail < 0) return err_set(e, "/proc/meminfo: no MemAvailable line, cannot tell free memory");
    /* "max" parses as no number: no cgroup limit. */
    double lim = file_number("/sys/fs/cgroup/memory.max", "", 1.0);
    double cur = file_number("/sys/fs/cgroup/memory.current", "", 1.0);
    if (lim > 0 && cur >= 0 && lim - cur < avail) avail = lim - cur > 0 ? lim - cur : 0;
    *bytes = avail;
    return 0;
}

/* "12.3 GiB", "4.5 MiB" or "800 KiB": sizes from a few KiB (tests) to terabytes. */
void fmt_size(char *buf, size_t n, double bytes) {
    const double k = 1024.0;
    if (bytes >= k * k * k) snprintf(buf, n, "%.2f GiB", bytes / (k * k * k));
    else if (bytes >= k * k) snprintf(buf, n, "%.1f MiB", bytes / (k * k));
    else snprintf(buf, n, "%.0f KiB", bytes / k);
}

int mem_check(const char *what, double need, const char *detail, double limit_bytes, sattn_err *e) {
    double avail = limit_bytes;
    if (limit_bytes <= 0 && mem_available(&avail, e)) return -1;
    if (need <= avail) return 0;
    char sn[32], sa[32];
    fmt_size(sn, sizeof sn, need);
    fmt_size(sa, sizeof sa, avail);
    if (limit_bytes > 0)
        return err_set(e, "%s needs an estimated %s (%s), more than --max-mem %s; expected a "
                          "smaller configuration or a larger --max-mem", what, sn, detail, sa);
    return err_set(e, "%s needs an estimated %s (%s), more than the %s this machine has "
                      "available; expected a smaller configuration, or --max-mem GIB to try anyway",
                   what, sn, detail, sa);
}

double time_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int cmp_int_asc(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int cmp_double_asc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double median_sort(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double_asc);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0) die_at(__FILE__, __LINE__, "vsnprintf failed");
    if (b->n + (size_t)k + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + (size_t)k + 1) cap *= 2;
        b->s = xrealloc(b->s, cap);
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

void sb_escaped(sbuf *b, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) sb_printf(b, "\\x%02x", *p);
        else if (*p == '\\') sb_printf(b, "\\\\");
        else sb_printf(b, "%c", *p);
    }
}

void sb_free(sbuf *b) {
    free(b->s);
    b->s = NULL, b->n = b->cap = 0;
}

void sb_json_str(sbuf *b, const char *s) {
    sb_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') sb_printf(b, "\\%c", *p);
        else if (*p == '\n') sb_printf(b, "\\n");
        else if (*p < 0x20 || *p >= 0x7f) sb_printf(b, "\\u%04x", *p);
        else sb_printf(b, "%c", *p);
    }
    sb_printf(b, "\"");
}
