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
int afile_write(afile *a, const void *data, size_t n, sattn_err *e);
int afile_commit(afile *a, sattn_err *e);
void afile_abort(afile *a);

/* Reads a whole file into a malloc'd buffer (*data, *len). Errors name the path. */
int file_read_all(const char *path, uint8_t **data, size_t *len, sattn_err *e);

/* FNV-1a 64-bit hash, used as a checksum of file payloads. */
uint64_t fnv1a64(const void *data, size_t n, uint64_t h);
#define FNV1A64_INIT 0xcbf29ce484222325ULL

/* Monotonic wall-clock seconds. */
double time_now(void);

#endif
