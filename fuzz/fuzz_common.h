/* fuzz_common.h: what every libFuzzer harness in fuzz/ shares (docs: fuzz/README.md).
 *
 * sattn's readers take paths, so each harness writes its input to one temporary file
 * per process (under /dev/shm when it is writable, else $TMPDIR or /tmp), rewritten for
 * every input and removed at exit, and calls the public reader on that path.
 *
 * Oracles beyond "no crash, no sanitizer report, no leak, no hang":
 *   - a reader that fails must say why: a non-empty message (one line: strict mode);
 *   - what a reader accepts is used the way the CLI would use it (per harness).
 *
 * Checksums: a mutated file almost never keeps a valid FNV-1a checksum, so the
 * validation behind it would never be fuzzed. The harnesses of checksummed formats
 * therefore run each input twice: as it is, and (if that changes any byte) with the
 * checksum recomputed by fz_fix_checksum below. The format knowledge is in the table
 * FZ_SUMS: when a format gets a new version (or a new checksum scope), add a row. */
#ifndef SATTN_FUZZ_COMMON_H
#define SATTN_FUZZ_COMMON_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* strnlen, getpid, unlink: include this header first */
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sattn/core.h"

/* 1: also check contracts of issue 9 whose fixes are not merged yet (fuzz/README.md):
 * ckpt_load rejects non-finite parameters; error messages hold no newline (the CLI escapes
 * control bytes when it prints, so today a message may carry one from the input). */
#ifndef SATTN_FUZZ_STRICT
#define SATTN_FUZZ_STRICT 1
#endif

/* Aborts (a crash libFuzzer saves) when an oracle fails. */
#define FZ_CHECK(cond, ...)                                                          \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "fuzz oracle failed at %s:%d: ", __FILE__, __LINE__);    \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
            abort();                                                                 \
        }                                                                            \
    } while (0)

static char fz_path_buf[512];

static inline void fz_cleanup(void) {
    if (fz_path_buf[0]) unlink(fz_path_buf);
}

/* The per-process input file's path (made on first use). name: the harness, for the file name. */
static inline const char *fz_path(const char *name) {
    if (!fz_path_buf[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
        if (!dir || !*dir) dir = "/tmp";
        snprintf(fz_path_buf, sizeof fz_path_buf, "%s/sattn-fuzz-%s.%ld", dir, name, (long)getpid());
        atexit(fz_cleanup);
    }
    return fz_path_buf;
}

/* Writes data to the input file; returns its path. */
static inline const char *fz_write(const char *name, const uint8_t *data, size_t n) {
    const char *p = fz_path(name);
    FILE *f = fopen(p, "wb");
    FZ_CHECK(f, "cannot create %s", p);
    FZ_CHECK(n == 0 || fwrite(data, 1, n, f) == n, "cannot write %s", p);
    FZ_CHECK(fclose(f) == 0, "cannot close %s", p);
    return p;
}

/* A failed read must leave a non-empty message (of one line, in strict mode). */
static inline void fz_check_err(const sattn_err *e, const char *what) {
    size_t n = strnlen(e->msg, sizeof e->msg);
    FZ_CHECK(n > 0 && n < sizeof e->msg, "%s failed without a message", what);
    if (SATTN_FUZZ_STRICT)
        FZ_CHECK(!memchr(e->msg, '\n', n), "%s: error message spans lines: %s", what, e->msg);
}

static inline uint32_t fz_rd32(const uint8_t *b, size_t word) {
    uint32_t v;
    memcpy(&v, b + 4 * word, 4);
    return v;
}

static inline void fz_wr32(uint8_t *b, size_t word, uint32_t v) { memcpy(b + 4 * word, &v, 4); }

/* ---------------------------------------------------------------- checksums ---- */

/* How one (magic, version) of a format stores its checksum: FNV-1a 64 (core.h) from
 * byte `from` to the end of the file, the low word at header word `word`, the high word
 * after it. hash_header: the hash starts at byte 0 instead and covers the header with the
 * two checksum words read as zero (the planned "whole header" versions, issue 9 item 9;
 * check that row against the writer when the version lands). */
typedef struct {
    const char *format;
    uint32_t magic, version;
    size_t header_bytes; /* where the payload starts */
    int word;            /* checksum low word */
    int hash_header;
} fz_sum_rule;

/* Layouts: include/sattn/ckpt.h, heads.h, teacher.h. ADD A ROW PER NEW VERSION. */
static const fz_sum_rule FZ_SUMS[] = {
    {"sattn checkpoint", 0x4e545453u /* CKPT_MAGIC */, 1, 256, 14, 0},
    {"sparse heads", 0x53444853u /* HEADS_MAGIC */, 1, 256, 9, 0},
    {"teacher shard", 0x48435453u /* TEACHER_MAGIC */, 1, 256, 12, 0},
    /* version 2 of all three: the whole file, the checksum words read as 0 */
    {"sattn checkpoint", 0x4e545453u, 2, 256, 14, 1},
    {"sparse heads", 0x53444853u, 2, 256, 9, 1},
    {"teacher shard", 0x48435453u, 2, 256, 12, 1},
    /* sattn checkpoint version 3 (positions in words 30..32): the same scope as version 2 */
    {"sattn checkpoint", 0x4e545453u, 3, 256, 14, 1},
};

/* If data is a checksummed format FZ_SUMS knows, a malloc'd copy with the checksum
 * recomputed, when that differs from data; else NULL. */
static inline uint8_t *fz_fix_checksum(const uint8_t *data, size_t n) {
    if (n < 8) return NULL;
    for (size_t r = 0; r < sizeof FZ_SUMS / sizeof FZ_SUMS[0]; r++) {
        const fz_sum_rule *s = &FZ_SUMS[r];
        if (fz_rd32(data, 0) != s->magic || fz_rd32(data, 1) != s->version) continue;
        if (n < s->header_bytes) return NULL;
        uint8_t *c = malloc(n);
        FZ_CHECK(c, "out of memory");
        memcpy(c, data, n);
        uint64_t h;
        if (s->hash_header) {
            fz_wr32(c, (size_t)s->word, 0);
            fz_wr32(c, (size_t)s->word + 1, 0);
            h = fnv1a64(c, n, FNV1A64_INIT);
        } else {
            h = fnv1a64(c + s->header_bytes, n - s->header_bytes, FNV1A64_INIT);
        }
        fz_wr32(c, (size_t)s->word, (uint32_t)h);
        fz_wr32(c, (size_t)s->word + 1, (uint32_t)(h >> 32));
        if (!memcmp(c, data, n)) {
            free(c);
            return NULL;
        }
        return c;
    }
    return NULL;
}

/* data resized to want bytes (cut, or zero-padded), malloc'd; NULL if want is 0 or over
 * FZ_RESHAPE_MAX or already n. For the "reshape" tries: a header whose dimensions were
 * mutated gets the file size they imply, so the checks after the size check run too. */
#define FZ_RESHAPE_MAX (1u << 20)
static inline uint8_t *fz_resize(const uint8_t *data, size_t n, uint64_t want) {
    if (want == 0 || want > FZ_RESHAPE_MAX || want == n) return NULL;
    uint8_t *c = calloc(1, (size_t)want);
    FZ_CHECK(c, "out of memory");
    memcpy(c, data, n < want ? n : (size_t)want);
    return c;
}

#endif
