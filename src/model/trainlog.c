/* trainlog: the loss-curve CSV of a training run (include/sattn/trainlog.h). */
#include "sattn/trainlog.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRAINLOG_HEADER "step,tokens,train_loss,val_loss,lr,wall_s"

void trainlog_add(trainlog *l, const trainlog_row *r) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->rows = xrealloc(l->rows, (size_t)l->cap * sizeof *l->rows);
    }
    l->rows[l->n++] = *r;
}

void trainlog_free(trainlog *l) {
    free(l->rows);
    memset(l, 0, sizeof *l);
}

int trainlog_save(const char *path, const trainlog *l, sattn_err *e) {
    sbuf b = {0};
    sb_printf(&b, "%s\n", TRAINLOG_HEADER);
    for (int i = 0; i < l->n; i++) {
        const trainlog_row *r = &l->rows[i];
        sb_printf(&b, "%d,%.0f,%.6f,", r->step, r->tokens, (double)r->train_loss);
        if (!isnan(r->val_loss)) sb_printf(&b, "%.6f", (double)r->val_loss);
        sb_printf(&b, ",%.6g,%.3f\n", (double)r->lr, r->wall_s);
    }
    afile f;
    int rc = afile_open(&f, path, e) || afile_write(&f, b.s, b.n, e) || afile_commit(&f, e) ? -1 : 0;
    sb_free(&b);
    return rc;
}

/* One comma-separated number of line `ln` at *p (advanced past it and its comma); empty
 * gives NaN when allowed. */
static int field(const char **p, double *x, int may_be_empty, const char *path, int ln, const char *name,
                 sattn_err *e) {
    const char *s = *p;
    if ((*s == ',' || *s == '\0') && may_be_empty) {
        *x = NAN;
    } else {
        char *end;
        errno = 0;
        *x = strtod(s, &end);
        if (end == s || errno || (*end != ',' && *end != '\0'))
            return err_set(e, "%s: line %d: %s: expected a number", path, ln, name);
        s = end;
    }
    *p = *s == ',' ? s + 1 : s;
    return 0;
}

static int parse_row(const char *line, trainlog_row *r, const char *path, int ln, sattn_err *e) {
    static const char *const NAMES[6] = {"step", "tokens", "train_loss", "val_loss", "lr", "wall_s"};
    double v[6];
    const char *p = line;
    for (int i = 0; i < 6; i++) {
        if (i && p[-1] != ',') return err_set(e, "%s: line %d: expected 6 fields, found %d", path, ln, i);
        if (field(&p, &v[i], i == 3, path, ln, NAMES[i], e)) return -1;
    }
    if (*p) return err_set(e, "%s: line %d: expected 6 fields, found more", path, ln);
    if (v[0] < 1 || v[0] > 2e9 || v[0] != floor(v[0]))
        return err_set(e, "%s: line %d: step %g: expected a whole number >= 1", path, ln, v[0]);
    *r = (trainlog_row){(int)v[0], v[1], (float)v[2], (float)v[3], (float)v[4], v[5]};
    /* finite as the floats they are kept in (1e300 is a finite double, not a float) */
    if (!(v[1] >= 0) || !isfinite(r->train_loss) || (!isnan(v[3]) && !isfinite(r->val_loss)) || !isfinite(r->lr) ||
        !isfinite(v[5]))
        return err_set(e, "%s: line %d: expected tokens >= 0 and finite losses, lr and wall_s (as float32)", path, ln);
    return 0;
}

/* Steps strictly increasing, tokens not decreasing. */
static int check_order(const trainlog *l, const char *path, int ln, sattn_err *e) {
    if (l->n < 2) return 0;
    const trainlog_row *a = &l->rows[l->n - 2], *b = &l->rows[l->n - 1];
    if (b->step <= a->step) return err_set(e, "%s: line %d: step %d after step %d (expected increasing)", path, ln, b->step, a->step);
    if (b->tokens < a->tokens) return err_set(e, "%s: line %d: tokens decrease", path, ln);
    return 0;
}

int trainlog_read(const char *path, trainlog *l, sattn_err *e) {
    memset(l, 0, sizeof *l);
    FILE *f = fopen(path, "r");
    if (!f) return err_set(e, "%s: cannot open (%s)", path, strerror(errno));
    char line[512];
    int ln = 0, rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        ln++;
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n') rc = err_set(e, "%s: line %d: too long", path, ln);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (rc) break;
        if (ln == 1) {
            if (strcmp(line, TRAINLOG_HEADER))
                rc = err_set(e, "%s: line 1: expected the header '%s' (a sattn train --log-csv file)", path, TRAINLOG_HEADER);
            continue;
        }
        trainlog_row r;
        rc = parse_row(line, &r, path, ln, e);
        if (!rc) trainlog_add(l, &r), rc = check_order(l, path, ln, e);
    }
    if (!rc && ferror(f)) rc = err_set(e, "%s: read error", path);
    fclose(f);
    if (!rc && ln == 0) rc = err_set(e, "%s: empty (expected a sattn train --log-csv file)", path);
    else if (!rc && l->n == 0) rc = err_set(e, "%s: no rows after the header", path);
    if (rc) trainlog_free(l);
    return rc;
}
