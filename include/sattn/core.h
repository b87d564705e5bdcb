/* core: errors, checked allocation, checked and atomic file I/O, timer.
 *
 * Library functions that can fail on bad input return 0 on success and -1 on
 * failure, with a one-line message in a caller-provided sattn_err: the CLI
 * prints it and exits non-zero. Out-of-memory and internal bugs abort with
 * the file and line (there is nothing sensible to recover). */
#ifndef SATTN_CORE_H
#define SATTN_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SATTN_ERR_LEN 512

typedef struct {
    char msg[SATTN_ERR_LEN];
} sattn_err;

/* Formats the message into e (if non-NULL) and returns -1. */
int err_set(sattn_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "file:line: message" and aborts: for out-of-memory and broken invariants. */
_Noreturn void die_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void *xmalloc_at(size_t n, const char *file, int line);
void *xcalloc_at(size_t n, size_t size, const char *file, int line);
#define xmalloc(n) xmalloc_at((n), __FILE__, __LINE__)
#define xcalloc(n, size) xcalloc_at((n), (size), __FILE__, __LINE__)
/* realloc that dies (file, line) on failure; n = 0 keeps one byte. */
void *xrealloc_at(void *p, size_t n, const char *file, int line);
#define xrealloc(p, n) xrealloc_at((p), (n), __FILE__, __LINE__)
/* 64-byte aligned allocation (free with free()); for the big parameter and activation blocks. */
void *xmalloc_aligned_at(size_t n, const char *file, int line);
#define xmalloc_aligned(n) xmalloc_aligned_at((n), __FILE__, __LINE__)

/* Atomic writer: writes go to "<path>.tmp.<pid>", commit fsyncs and renames it
 * over path, abort removes it. A failed or interrupted write never leaves a
 * partial file under the real name. */
typedef struct {
    FILE *f;
    char *path;
    char *tmp;
} afile;

int afile_open(afile *a, const char *path, sattn_err *e);
/* Whether name (an entry beside the output "base") is "base.tmp.PID" or "base.tmp.PID.N"
 * of a process that no longer exists: a write that was killed (SIGKILL cannot be caught). */
int stale_temp_name(const char *base, const char *name);
/* Calls remove_fn(full path) for every stale temporary sibling of path (afile_open
 * does this with unlink; sattn report with its folder removal). */
void stale_temps_remove(const char *path, void (*remove_fn)(const char *full));
int afile_write(afile *a, const void *data, size_t n, sattn_err *e);
int afile_commit(afile *a, sattn_err *e);
void afile_abort(afile *a);

/* Opens path for reading only if it is a regular file: the open is non-blocking and
 * the type is checked (fstat) before anything is read, so a FIFO, a device or a
 * directory is a one-line error instead of a read that blocks forever. *size gets
 * st_size (0 for /proc files, which must be read to EOF). NULL on error. */
FILE *file_open_regular(const char *path, size_t *size, sattn_err *e);

/* Reads a whole regular file (to EOF, so /proc files work too) into a malloc'd
 * buffer (*data, *len). Errors name the path. */
int file_read_all(const char *path, uint8_t **data, size_t *len, sattn_err *e);

/* Reads path's whole text for a parser of hostile input (src/core/text.c): a regular
 * file of at most max bytes without a NUL byte (a NUL would silently end the text the
 * parser sees), read to EOF, NUL-terminated into a malloc'd *text of *len bytes.
 * Errors name the path (and line, for a NUL); `expected` ends the size errors, e.g.
 * "a sattn bench CSV or eval JSON". */
int file_read_text(const char *path, size_t max, const char *expected, char **text, size_t *len,
                   sattn_err *e);
/* The 1-based line of byte off in s (for "path:line" messages). */
int text_line_at(const char *s, size_t off);

/* A float32's bits and back (a copy, not a cast: no aliasing rule is broken); for file
 * formats that store floats as words (checkpoint headers, safetensors' F16 and BF16). */
static inline uint32_t f32_to_bits(float x) {
    uint32_t u;
    __builtin_memcpy(&u, &x, sizeof u);
    return u;
}
static inline float f32_from_bits(uint32_t u) {
    float x;
    __builtin_memcpy(&x, &u, sizeof x);
    return x;
}

/* FNV-1a 64-bit hash, used as a checksum of file payloads. */
uint64_t fnv1a64(const void *data, size_t n, uint64_t h);
#define FNV1A64_INIT 0xcbf29ce484222325ULL
/* fnv1a64 from FNV1A64_INIT over a file header of n bytes, read as if its 8 bytes at off
 * (the checksum field the hash is stored in) were 0: what the header's writer hashed before
 * it filled the field in. */
uint64_t fnv1a64_header(const void *hdr, size_t n, size_t off);

/* Memory this process can still get, in bytes: /proc/meminfo's MemAvailable, capped
 * by a cgroup v2 limit (memory.max - memory.current) when there is one. -1 on error. */
int mem_available(double *bytes, sattn_err *e);
/* Refuses an allocation plan that would not fit, before anything is allocated:
 * need > limit (limit_bytes > 0, the user's override) or need > mem_available.
 * The error gives what, the estimate and its parts (detail, e.g. "parameters 0.5 GiB,
 * activations 12.1 GiB") and the memory that is available. */
int mem_check(const char *what, double need, const char *detail, double limit_bytes, sattn_err *e);

/* A byte count for people: "12.34 GiB", "4.5 MiB" or "800 KiB". */
void fmt_size(char *buf, size_t n, double bytes);

/* Monotonic wall-clock seconds. */
double time_now(void);

/* A growing NUL-terminated string (s may be NULL while n == 0): for text built in
 * pieces (JSON, Markdown, gnuplot scripts) and written once. Zero-initialise it. */
typedef struct {
    char *s;
    size_t n, cap;
} sbuf;
void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_free(sbuf *b);
/* Appends s with control bytes as \xNN and a backslash as \\: text from a file or the
 * command line that goes into a one-line message (no forged second line, no terminal
 * escape sequences). */
void sb_escaped(sbuf *b, const char *s);
/* Appends s as a JSON string (quoted; bytes >= 0x80 escaped too, so text that is not UTF-8
 * stays valid JSON). */
void sb_json_str(sbuf *b, const char *s);

/* qsort comparators, ascending. */
int cmp_int_asc(const void *a, const void *b);
int cmp_double_asc(const void *a, const void *b);
/* The median of v[0..n), n >= 1 (v is sorted in place): the middle value, or the mean
 * of the two middle ones. */
double median_sort(double *v, int n);

/* Instrumented counts (docs/costmodel.md, "Counted"). Built with -DSATTN_COUNT (`make
 * count`, build-count/sattn), the attention kernels' *_counted entry points add to the
 * op_count they are given, for every matrix product they execute (sgemm calls, and the
 * dot products and row updates of the gathered head functions):
 *   macs   multiply-adds, M*N*K for an (M x K)(K x N) product;
 *   bytes  4 * the floats its operands span: A and B read, C written (and read when
 *          accumulated into).
 * Elementwise work (softmax, relu, top-k) is not counted: the analytic model's exact
 * claim is about matrix products. Without the flag op_count_add compiles to nothing, so
 * the kernels pay nothing; OP_COUNT_ENABLED tells which build this is. Atomic adds:
 * kernels count from inside their OpenMP regions, and integer sums do not depend on
 * the order, so counts are exact and deterministic. */
typedef struct {
    uint64_t macs, bytes;
} op_count;

#ifdef SATTN_COUNT
#define OP_COUNT_ENABLED 1
#else
#define OP_COUNT_ENABLED 0
#endif

static inline void op_count_add(op_count *c, uint64_t macs, uint64_t bytes) {
#ifdef SATTN_COUNT
    if (!c) return;
    __atomic_fetch_add(&c->macs, macs, __ATOMIC_RELAXED);
    __atomic_fetch_add(&c->bytes, bytes, __ATOMIC_RELAXED);
#else
    (void)c, (void)macs, (void)bytes;
#endif
}

/* (M x K)(K x N) -> (M x N), accumulate: C is also read (beta != 0). */
static inline void op_count_gemm(op_count *c, int M, int N, int K, int accumulate) {
    uint64_t m = (uint64_t)M, n = (uint64_t)N, k = (uint64_t)K;
    op_count_add(c, m * n * k, 4 * (m * k + k * n + m * n * (accumulate ? 2 : 1)));
}

#endif
