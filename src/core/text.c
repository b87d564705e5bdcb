/* text: whole-file text for the parsers of hostile input (core.h: file_read_text),
 * shared by the bench CSV reader (benchres.c) and the eval and task JSON readers (eval_json.c,
 * whose text then goes to json-c). */
#include <stdlib.h>
#include <string.h>

#include "sattn/core.h"

int text_line_at(const char *s, size_t off) {
    int line = 1;
    for (size_t i = 0; i < off; i++) line += s[i] == '\n';
    return line;
}

int file_read_text(const char *path, size_t max, const char *expected, char **text, size_t *len,
                   sattn_err *e) {
    size_t size = 0, got = 0;
    FILE *f = file_open_regular(path, &size, e);
    if (!f) return -1;
    if (size > max)
        return fclose(f), err_set(e, "%s: %zu bytes, expected at most %zu MiB (%s)", path, size, max >> 20, expected);
    size_t cap = size < max ? size + 1 : max + 1;
    char *buf = xmalloc(cap + 1);
    for (;;) { /* to EOF: st_size is a hint (a file may grow while read) */
        got += fread(buf + got, 1, cap - got, f);
        if (got < cap || ferror(f) || got > max) break;
        cap = cap * 2 < max + 1 ? cap * 2 : max + 1;
        buf = xrealloc(buf, cap + 1);
    }
    int rerr = ferror(f);
    fclose(f);
    const char *nul = got <= max ? memchr(buf, 0, got) : NULL;
    int rc = rerr ? err_set(e, "%s: read failed after %zu bytes", path, got)
             : got > max ? err_set(e, "%s: more than %zu MiB, expected at most %zu MiB (%s)", path, max >> 20,
                                   max >> 20, expected)
             : nul ? err_set(e, "%s:%d: a NUL byte (offset %zu), expected text", path,
                             text_line_at(buf, (size_t)(nul - buf)), (size_t)(nul - buf))
                   : 0;
    if (rc) return free(buf), -1;
    buf[got] = 0;
    *text = buf, *len = got;
    return 0;
}
