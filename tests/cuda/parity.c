/* cuda-parity: every CUDA kernel against the CPU implementation it replaces, on random
 * inputs of awkward sizes, the GPU outputs poisoned (NaN / -1) before every call.
 * Built by `make cuda` (build-cuda/cuda-parity) and `make cuda-emu` (CPU emulation).
 * Exit 0: all checks pass; 1: a check failed; 77: no CUDA device (skipped).
 *
 * Parity rule (docs/cuda.md):
 *  - dense outputs and lse, sparse head outputs: rel = max|gpu - cpu| / max|cpu| <= 1e-4
 *    over the tensor, and no NaN (a poisoned element left unwritten is NaN);
 *  - selections: per row, the same count; GPU keys causal and distinct; each GPU score
 *    within tol of the exact (double) score of its key; the GPU list's exact scores
 *    equal the CPU list's entry by entry (both descending) within tol; and where the
 *    CPU's kk-th and (kk+1)-th exact scores differ by more than 2 tol, the same key SET.
 *    tol = 1e-4 * max(1, max |exact score| of the row). Rows whose lists differ only by
 *    such near-ties are counted and printed, not failed;
 *  - the head output on the GPU's own selection vs the CPU head function on that same
 *    selection (<= 1e-4), and vs the CPU's end-to-end output on rows whose lists match.
 * The tile-shared block kernels (tblock) are checked in parity_tblock.c by the same rule, the
 * shared indexer's bf16 kernels in parity_lindex.c (with bf16's rounding in the tolerance). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/sparse_decode.h"
#include "sattn/core.h"
#include "sattn/cuda_attn.h"
#include "sattn/flash.h"
#include "sattn/rng.h"
#include "sattn/sparse.h"

#include "parity.h"

void fill(float *x, size_t n, rng_t *r) {
    for (size_t i = 0; i < n; i++) x[i] = 3.4641016f * (rng_uniform(r) - 0.5f);
}

/* max|a - b| / max(floor, max|b|) (floor 0: the plain relative error); NaNs counted. */
static double rel_err(const float *a, const float *b, size_t n, double floor, int *nan) {
    double md = 0.0, mb = floor;
    *nan = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) {
            (*nan)++;
            continue;
        }
        double d = fabs((double)a[i] - b[i]);
        md = d > md ? d : md;
        mb = fabs(b[i]) > mb ? fabs(b[i]) : mb;
    }
    return mb > 0 ? md / mb : md;
}

void report(ctx *c, const char *what, double err, int nan) {
    int ok = err <= TOL && !nan;
    c->checks++;
    if (!ok) c->fails++;
    printf("%-4s %-58s rel %.2e%s\n", ok ? "ok" : "FAIL", what, err, nan ? " (NaN: unwritten or invalid)" : "");
    fflush(stdout);
}

void check_close(ctx *c, const char *what, const float *gpu, const float *cpu, size_t n) {
    check_close_scaled(c, what, gpu, cpu, n, 0.0);
}

void check_close_scaled(ctx *c, const char *what, const float *gpu, const float *cpu, size_t n, double scale) {
    int nan;
    double e = rel_err(gpu, cpu, n, scale, &nan);
    report(c, what, e, nan);
}

void *dup_dev(ctx *c, const void *h, size_t bytes) {
    void *d = sa_cuda_alloc(c->g, bytes);
    sa_cuda_upload(c->g, d, h, bytes);
    return d;
}

/* ------------------------------------------------------------------ dense ---- */

static void test_flash(ctx *c, int B, int T, int C, int H) {
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, nl = (size_t)B * H * T;
    float *qkv = xmalloc(nq * 4), *out = xmalloc(no * 4), *lse = xmalloc(nl * 4);
    float *go = xmalloc(no * 4), *gl = xmalloc(nl * 4);
    fill(qkv, nq, &c->rng);
    flash_attention_forward(out, lse, qkv, B, T, C, H);
    float *dq = dup_dev(c, qkv, nq * 4), *dout = sa_cuda_alloc(c->g, no * 4), *dl = sa_cuda_alloc(c->g, nl * 4);
    sa_cuda_poison(c->g, dout, no * 4);
    sa_cuda_poison(c->g, dl, nl * 4);
    sa_cuda_flash_forward(c->g, dout, dl, dq, B, T, C, H);
    sa_cuda_download(c->g, go, dout, no * 4);
    sa_cuda_download(c->g, gl, dl, nl * 4);
    char name[128];
    snprintf(name, sizeof name, "flash forward out  B=%d T=%d C=%d H=%d (d=%d)", B, T, C, H, C / H);
    check_close(c, name, go, out, no);
    snprintf(name, sizeof name, "flash forward lse  B=%d T=%d C=%d H=%d", B, T, C, H);
    check_close(c, name, gl, lse, nl);
    sa_cuda_free(c->g, dq), sa_cuda_free(c->g, dout), sa_cuda_free(c->g, dl);
    free(qkv), free(out), free(lse), free(go), free(gl);
}

static void test_decode_dense(ctx *c, int T, int C, int H) {
    size_t n = (size_t)T * C;
    float *kc = xmalloc(n * 4), *vc = xmalloc(n * 4), *q = xmalloc((size_t)C * 4), *o = xmalloc((size_t)C * 4);
    float *go = xmalloc((size_t)C * 4);
    fill(kc, n, &c->rng), fill(vc, n, &c->rng), fill(q, (size_t)C, &c->rng);
    attention_decode_step(o, q, kc, vc, T, C, H);
    float *dk = dup_dev(c, kc, n * 4), *dv = dup_dev(c, vc, n * 4), *dq = dup_dev(c, q, (size_t)C * 4);
    float *dout = sa_cuda_alloc(c->g, (size_t)C * 4);
    sa_cuda_poison(c->g, dout, (size_t)C * 4);
    sa_cuda_decode_dense(c->g, dout, dq, dk, dv, T, C, H);
    sa_cuda_download(c->g, go, dout, (size_t)C * 4);
    char name[128];
    snprintf(name, sizeof name, "dense decode       T=%d C=%d H=%d", T, C, H);
    check_close(c, name, go, o, (size_t)C);
    sa_cuda_free(c->g, dk), sa_cuda_free(c->g, dv), sa_cuda_free(c->g, dq), sa_cuda_free(c->g, dout);
    free(kc), free(vc), free(q), free(o), free(go);
}

/* --------------------------------------------------------- exact scores ---- */

/* The exact (double) selector scores of query q against keys k + s*ld, s < n:
 * index: per key; block: per complete block (n = number of blocks). */
static void exact_scores(const head_spec *s, const float *params, int d, const float *q, const float *k,
                         int ld, int n, double *out) {
    if (s->sel == SEL_INDEX) {
        int J = s->iheads, r = s->rank;
        const float *Wq = params, *Wk = Wq + (size_t)J * r * d, *Ww = Wk + (size_t)r * d, *bw = Ww + (size_t)J * d;
        double qt[8 * 32], w[8], kt[32];
        for (int o = 0; o < J * r; o++) {
            double a = 0;
            for (int i = 0; i < d; i++) a += (double)Wq[(size_t)o * d + i] * q[i];
            qt[o] = a;
        }
        for (int j = 0; j < J; j++) {
            double a = bw[j];
            for (int i = 0; i < d; i++) a += (double)Ww[(size_t)j * d + i] * q[i];
            w[j] = a;
        }
        for (int u = 0; u < n; u++) {
            for (int e = 0; e < r; e++) {
                double a = 0;
                for (int i = 0; i < d; i++) a += (double)Wk[(size_t)e * d + i] * k[(size_t)u * ld + i];
                kt[e] = a;
            }
            double sc = 0;
            for (int j = 0; j < J; j++) {
                double a = 0;
                for (int e = 0; e < r; e++) a += qt[j * r + e] * kt[e];
                a /= sqrt((double)r);
                sc += w[j] * (a > 0 ? a : 0);
            }
            out[u] = sc;
        }
    } else {
        int b = s->block;
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int i = 0; i < d; i++) {
                double m = 0, lo = INFINITY, hi = -INFINITY;
                for (int u = j * b; u < (j + 1) * b; u++) {
                    double x = k[(size_t)u * ld + i];
                    m += x / b, lo = x < lo ? x : lo, hi = x > hi ? x : hi;
                }
                if (!s->bounds) acc += q[i] * m;
                else acc += fmax(q[i] * lo, q[i] * hi);
            }
            out[j] = acc;
        }
    }
}

static int why_fail(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int why_fail(char *why, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return -1;
}

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}
static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The selection rule for one row (query position pos). ex: exact scores (keys for index,
 * blocks for block), nex of them. Returns 0 ok (exact), 1 ok (near-tie), -1 failure;
 * why gets the reason. */
static int check_row(const head_spec *s, int pos, const double *ex, int nex, const int *ci, const int *cc,
                     const int *gi, const float *gs, const int *gc, char *why, size_t nwhy) {
    int n = *gc, b = s->block, local = pos / (s->sel == SEL_BLOCK ? b : 1);
    if (*cc != n) return why_fail(why, nwhy, "count gpu %d cpu %d", n, *cc);
    double scale = 1.0;
    for (int u = 0; u < nex; u++) scale = fabs(ex[u]) > scale ? fabs(ex[u]) : scale;
    double tol = TOL * scale;
    int *sg = xmalloc((size_t)(n + 1) * sizeof(int)), *sc = xmalloc((size_t)(n + 1) * sizeof(int));
    int rc = 0;
    for (int j = 0; j < n && !rc; j++) {
        int u = gi[j];
        if (u < 0 || u > pos) rc = why_fail(why, nwhy, "entry %d: key %d not in 0..%d", j, u, pos);
        else if (s->sel == SEL_BLOCK && u / b == local) {
            if (gs[j] != 3.40282347e38f) rc = why_fail(why, nwhy, "entry %d: local key %d score %g", j, u, gs[j]);
        } else {
            double e = ex[s->sel == SEL_BLOCK ? u / b : u];
            if (fabs(gs[j] - e) > tol) rc = why_fail(why, nwhy, "entry %d key %d: score %.7g, exact %.7g", j, u, gs[j], e);
            double e2 = s->sel == SEL_BLOCK && ci[j] / b == local ? 3.40282347e38 : ex[s->sel == SEL_BLOCK ? ci[j] / b : ci[j]];
            if (!rc && fabs(e - e2) > 2 * tol)
                rc = why_fail(why, nwhy, "entry %d: gpu key %d (%.7g) vs cpu key %d (%.7g)", j, u, e, ci[j], e2);
        }
    }
    if (!rc) {
        memcpy(sg, gi, (size_t)n * sizeof(int)), memcpy(sc, ci, (size_t)n * sizeof(int));
        qsort(sg, (size_t)n, sizeof(int), cmp_int), qsort(sc, (size_t)n, sizeof(int), cmp_int);
        for (int j = 1; j < n && !rc; j++)
            if (sg[j] == sg[j - 1]) rc = why_fail(why, nwhy, "key %d twice", sg[j]);
        int same_set = !rc && !memcmp(sg, sc, (size_t)n * sizeof(int));
        int same_list = same_set && !memcmp(gi, ci, (size_t)n * sizeof(int));
        if (!rc && !same_set) {
            /* allowed only at a near-tie of the kk-th and (kk+1)-th exact scores */
            int ncand = s->sel == SEL_BLOCK ? local : pos + 1;
            int kk = s->sel == SEL_BLOCK ? s->nblocks - 1 : s->k;
            if (kk > ncand) kk = ncand;
            double *srt = xmalloc((size_t)(ncand + 1) * sizeof(double));
            memcpy(srt, ex, (size_t)ncand * sizeof(double));
            qsort(srt, (size_t)ncand, sizeof(double), cmp_desc);
            if (kk > 0 && kk < ncand && srt[kk - 1] - srt[kk] > 2 * tol)
                rc = why_fail(why, nwhy, "different key set with a clear gap %.3g at the k-th score", srt[kk - 1] - srt[kk]);
            free(srt);
        }
        if (!rc) rc = same_list ? 0 : 1;
    }
    free(sg), free(sc);
    return rc;
}

/* ------------------------------------------------------------------ sparse ---- */

static head_spec mk(sel_kind sel, hfn_kind fn, int k, int r, int J, int b, int n, int bounds, int hidden) {
    head_spec s = head_spec_default();
    s.sel = sel, s.fn = fn, s.k = k, s.rank = r, s.iheads = J, s.block = b, s.nblocks = n, s.bounds = bounds;
    s.hidden = hidden;
    return s;
}

typedef struct {
    int exact, near, bad;
    char first[256];
} sel_tally;

static void sel_note(sel_tally *t, int rc, int h, int pos, const char *why) {
    if (rc == 0) t->exact++;
    else if (rc == 1) t->near++;
    else {
        if (!t->bad) snprintf(t->first, sizeof t->first, "head %d query %d: %s", h, pos, why);
        t->bad++;
    }
}

static void sel_report(ctx *c, const char *name, const sel_tally *t) {
    c->checks++;
    c->near_rows += t->near, c->rows += t->exact + t->near + t->bad;
    if (t->bad) c->fails++;
    printf("%-4s %-58s rows %d exact, %d near-tie%s%s\n", t->bad ? "FAIL" : "ok", name, t->exact, t->near,
           t->bad ? "; first failure: " : "", t->bad ? t->first : "");
}

static void test_sparse(ctx *c, head_spec s, int T, int C, int H) {
    int d = C / H, kmax = selector_kmax(&s, T), ld = 3 * C;
    char spec[96], name[200];
    head_spec_format(&s, spec, sizeof spec);
    sattn_err e;
    if (sa_cuda_check_spec(&s, d, T, &e)) {
        printf("FAIL %s: %s\n", spec, e.msg);
        c->fails++;
        return;
    }
    size_t nqkv = (size_t)T * ld, tk = (size_t)T * kmax, np = selector_param_count(&s, d, T);
    size_t nf = headfn_param_count(&s, d, kmax);
    float *qkv = xmalloc(nqkv * 4), *sp = xmalloc((np * H + 1) * 4), *fp = xmalloc((nf * H + 1) * 4);
    fill(qkv, nqkv, &c->rng);
    for (int h = 0; h < H; h++) {
        selector_init(&s, d, T, sp + h * np, &c->rng);
        headfn_init(&s, d, kmax, fp + h * nf, &c->rng);
    }
    /* CPU: per head selection and output */
    int *ci = xmalloc((tk * H + 1) * sizeof(int)), *cc = xmalloc(((size_t)T * H + 1) * sizeof(int));
    float *cs = xmalloc((tk * H + 1) * 4), *co = xmalloc((size_t)T * C * 4), *cog = xmalloc((size_t)T * C * 4);
    float *work = xmalloc((selector_work_floats(&s, d, T) + 1) * 4);
    float *cache = xmalloc((headfn_cache_floats(&s, d, kmax, T) + 1) * 4);
    for (int h = 0; h < H; h++) {
        const float *q = qkv + (size_t)h * d;
        selector_select(&s, sp + h * np, d, T, q, q + C, ld, T, ci + h * tk, cs + h * tk, cc + (size_t)h * T, work);
        headfn_forward(&s, fp + h * nf, d, kmax, q, q + C, q + 2 * C, ld, T, ci + h * tk, cc + (size_t)h * T,
                       co + (size_t)h * d, C, cache);
    }
    /* GPU */
    float *dqkv = dup_dev(c, qkv, nqkv * 4), *dsp = dup_dev(c, sp, (np * H + 1) * 4);
    float *dfp = dup_dev(c, fp, (nf * H + 1) * 4);
    int *di = sa_cuda_alloc(c->g, tk * H * 4 + 4), *dc = sa_cuda_alloc(c->g, (size_t)T * H * 4);
    float *ds = sa_cuda_alloc(c->g, tk * H * 4 + 4), *dout = sa_cuda_alloc(c->g, (size_t)T * C * 4);
    sa_cuda_poison(c->g, di, tk * H * 4 + 4), sa_cuda_poison(c->g, dc, (size_t)T * H * 4);
    sa_cuda_poison(c->g, ds, tk * H * 4 + 4), sa_cuda_poison(c->g, dout, (size_t)T * C * 4);
    sa_cuda_sparse_forward(c->g, &s, dsp, s.fn == HFN_MLP ? dfp : NULL, dqkv, T, C, H, di, ds, dc, dout);
    int *gi = xmalloc((tk * H + 1) * sizeof(int)), *gc = xmalloc(((size_t)T * H + 1) * sizeof(int));
    float *gs = xmalloc((tk * H + 1) * 4), *go = xmalloc((size_t)T * C * 4);
    sa_cuda_download(c->g, gi, di, tk * H * 4), sa_cuda_download(c->g, gc, dc, (size_t)T * H * 4);
    sa_cuda_download(c->g, gs, ds, tk * H * 4), sa_cuda_download(c->g, go, dout, (size_t)T * C * 4);
    /* selection rule per row */
    sel_tally st = {0};
    double *ex = xmalloc(((size_t)T + 1) * sizeof(double));
    unsigned char *same = xcalloc((size_t)T * H + 1, 1);
    for (int h = 0; h < H; h++) {
        const float *q = qkv + (size_t)h * d;
        for (int t = 0; t < T; t++) {
            int nex = s.sel == SEL_BLOCK ? t / s.block : t + 1;
            exact_scores(&s, sp + h * np, d, q + (size_t)t * ld, q + C, ld, nex, ex);
            char why[200] = "";
            size_t o = h * tk + (size_t)t * kmax;
            int rc = gc[(size_t)h * T + t] < 0 || gc[(size_t)h * T + t] > kmax
                         ? (snprintf(why, sizeof why, "count %d", gc[(size_t)h * T + t]), -1)
                         : check_row(&s, t, ex, nex, ci + o, cc + (size_t)h * T + t, gi + o, gs + o,
                                     gc + (size_t)h * T + t, why, sizeof why);
            sel_note(&st, rc, h, t, why);
            same[(size_t)h * T + t] = rc == 0;
        }
    }
    snprintf(name, sizeof name, "select %s T=%d C=%d H=%d", spec, T, C, H);
    sel_report(c, name, &st);
    if (st.bad) goto done;
    /* the head function on the GPU's own selection */
    for (int h = 0; h < H; h++) {
        const float *q = qkv + (size_t)h * d;
        headfn_forward(&s, fp + h * nf, d, kmax, q, q + C, q + 2 * C, ld, T, gi + h * tk, gc + (size_t)h * T,
                       cog + (size_t)h * d, C, cache);
    }
    snprintf(name, sizeof name, "head   %s T=%d (GPU selection)", spec, T);
    check_close(c, name, go, cog, (size_t)T * C);
    /* end to end, rows whose lists match */
    {
        float *a = xmalloc((size_t)T * C * 4), *b = xmalloc((size_t)T * C * 4);
        size_t m = 0;
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++)
                if (same[(size_t)h * T + t])
                    for (int i = 0; i < d; i++) a[m] = go[(size_t)t * C + h * d + i], b[m++] = co[(size_t)t * C + h * d + i];
        snprintf(name, sizeof name, "layer  %s T=%d (vs CPU end to end)", spec, T);
        check_close(c, name, a, b, m);
        free(a), free(b);
    }
done:
    sa_cuda_free(c->g, dqkv), sa_cuda_free(c->g, dsp), sa_cuda_free(c->g, dfp), sa_cuda_free(c->g, di);
    sa_cuda_free(c->g, dc), sa_cuda_free(c->g, ds), sa_cuda_free(c->g, dout);
    free(qkv), free(sp), free(fp), free(ci), free(cc), free(cs), free(co), free(cog), free(work), free(cache);
    free(gi), free(gc), free(gs), free(go), free(ex), free(same);
}

static void test_decode_sparse(ctx *c, head_spec s, int T, int C, int H) {
    int d = C / H, kmax = selector_kmax(&s, T);
    char spec[96], name[200];
    head_spec_format(&s, spec, sizeof spec);
    size_t n = (size_t)T * C, np = selector_param_count(&s, d, T), nf = headfn_param_count(&s, d, kmax);
    float *kc = xmalloc(n * 4), *vc = xmalloc(n * 4), *q = xmalloc((size_t)C * 4);
    float *sp = xmalloc((np * H + 1) * 4), *fp = xmalloc((nf * H + 1) * 4);
    fill(kc, n, &c->rng), fill(vc, n, &c->rng), fill(q, (size_t)C, &c->rng);
    for (int h = 0; h < H; h++) {
        selector_init(&s, d, T, sp + h * np, &c->rng);
        headfn_init(&s, d, kmax, fp + h * nf, &c->rng);
    }
    /* CPU: sparse_decode_* for the selection (and the softmax output) */
    int *ci = xmalloc(((size_t)kmax * H + 1) * sizeof(int)), *cc = xmalloc((size_t)H * sizeof(int));
    float *co = xmalloc((size_t)C * 4), *cog = xmalloc((size_t)C * 4);
    size_t nside = s.sel == SEL_BLOCK ? (size_t)2 * (T / s.block + 1) * d : (size_t)T * s.rank;
    size_t nw = s.sel == SEL_BLOCK ? sparse_decode_block_work(&s, T) : sparse_decode_index_work(&s, T);
    float *side = xmalloc((nside + 1) * 4), *work = xmalloc((nw + 1) * 4);
    float *cache = xmalloc((headfn_cache_floats(&s, d, kmax, 1) + 1) * 4);
    for (int h = 0; h < H; h++) {
        const float *kh = kc + (size_t)h * d, *vh = vc + (size_t)h * d, *qh = q + (size_t)h * d;
        int *ix = ci + (size_t)h * kmax;
        if (s.sel == SEL_BLOCK) {
            sparse_decode_block_side(&s, d, kh, C, T, side);
            cc[h] = sparse_decode_block(&s, d, qh, kh, vh, C, T, side, co + (size_t)h * d, ix, work);
        } else {
            sparse_decode_index_side(&s, sp + h * np, d, kh, C, T, side);
            cc[h] = sparse_decode_index(&s, sp + h * np, d, qh, kh, vh, C, T, side, co + (size_t)h * d, ix, work);
        }
        if (s.fn == HFN_MLP) /* sparse_decode_* is softmax only: the CPU mlp on the CPU selection */
            headfn_forward(&s, fp + h * nf, d, kmax, qh, kh, vh, C, 1, ix, &cc[h], co + (size_t)h * d, C, cache);
    }
    /* GPU */
    float *dk = dup_dev(c, kc, n * 4), *dv = dup_dev(c, vc, n * 4), *dq = dup_dev(c, q, (size_t)C * 4);
    float *dsp = dup_dev(c, sp, (np * H + 1) * 4), *dfp = dup_dev(c, fp, (nf * H + 1) * 4);
    float *dside = sa_cuda_alloc(c->g, sa_cuda_side_floats(&s, T, C, H) * 4);
    int *di = sa_cuda_alloc(c->g, (size_t)kmax * H * 4), *dc = sa_cuda_alloc(c->g, (size_t)H * 4);
    float *ds = sa_cuda_alloc(c->g, (size_t)kmax * H * 4), *dout = sa_cuda_alloc(c->g, (size_t)C * 4);
    sa_cuda_decode_side(c->g, &s, dsp, dk, T, C, H, dside);
    sa_cuda_poison(c->g, di, (size_t)kmax * H * 4), sa_cuda_poison(c->g, dc, (size_t)H * 4);
    sa_cuda_poison(c->g, ds, (size_t)kmax * H * 4), sa_cuda_poison(c->g, dout, (size_t)C * 4);
    sa_cuda_decode_sparse(c->g, &s, dsp, s.fn == HFN_MLP ? dfp : NULL, dq, dk, dv, T, C, H, dside, dout, di, ds, dc);
    int *gi = xmalloc(((size_t)kmax * H + 1) * sizeof(int)), *gc = xmalloc((size_t)H * sizeof(int));
    float *gs = xmalloc(((size_t)kmax * H + 1) * 4), *go = xmalloc((size_t)C * 4);
    sa_cuda_download(c->g, gi, di, (size_t)kmax * H * 4), sa_cuda_download(c->g, gc, dc, (size_t)H * 4);
    sa_cuda_download(c->g, gs, ds, (size_t)kmax * H * 4), sa_cuda_download(c->g, go, dout, (size_t)C * 4);
    sel_tally st = {0};
    double *ex = xmalloc(((size_t)T + 1) * sizeof(double));
    int all_same = 1;
    for (int h = 0; h < H; h++) {
        int nex = s.sel == SEL_BLOCK ? (T - 1) / s.block : T;
        exact_scores(&s, sp + h * np, d, q + (size_t)h * d, kc + (size_t)h * d, C, nex, ex);
        char why[200] = "";
        int rc = gc[h] < 0 || gc[h] > kmax ? (snprintf(why, sizeof why, "count %d", gc[h]), -1)
                                           : check_row(&s, T - 1, ex, nex, ci + (size_t)h * kmax, &cc[h],
                                                       gi + (size_t)h * kmax, gs + (size_t)h * kmax, &gc[h], why, sizeof why);
        sel_note(&st, rc, h, T - 1, why);
        all_same &= rc == 0;
    }
    snprintf(name, sizeof name, "decode select %s T=%d", spec, T);
    sel_report(c, name, &st);
    if (!st.bad) {
        for (int h = 0; h < H; h++)
            headfn_forward(&s, fp + h * nf, d, kmax, q + (size_t)h * d, kc + (size_t)h * d, vc + (size_t)h * d, C, 1,
                           gi + (size_t)h * kmax, &gc[h], cog + (size_t)h * d, C, cache);
        snprintf(name, sizeof name, "decode head   %s T=%d (GPU selection)", spec, T);
        check_close(c, name, go, cog, (size_t)C);
        if (all_same) {
            snprintf(name, sizeof name, "decode layer  %s T=%d (vs sparse_decode_*)", spec, T);
            check_close(c, name, go, co, (size_t)C);
        }
    }
    sa_cuda_free(c->g, dk), sa_cuda_free(c->g, dv), sa_cuda_free(c->g, dq), sa_cuda_free(c->g, dsp);
    sa_cuda_free(c->g, dfp), sa_cuda_free(c->g, dside), sa_cuda_free(c->g, di), sa_cuda_free(c->g, dc);
    sa_cuda_free(c->g, ds), sa_cuda_free(c->g, dout);
    free(kc), free(vc), free(q), free(sp), free(fp), free(ci), free(cc), free(co), free(cog), free(side);
    free(work), free(cache), free(gi), free(gc), free(gs), free(go), free(ex);
}

/* Every kernel of attn.cu; quick: the smaller set (make cuda-emu). */
static void parity_kernels(ctx *c, int quick) {
    /* dense flash: T not a multiple of 64, several heads, d 64, 40, 5, 100, 128 */
    test_flash(c, 1, 1, 64, 1);
    test_flash(c, 1, 37, 128, 2);
    test_flash(c, 2, 300, 256, 4);
    test_flash(c, 1, 77, 80, 2);
    test_flash(c, 1, 45, 10, 2);
    test_flash(c, 1, 130, 200, 2);
    if (!quick) test_flash(c, 1, 1000, 128, 2), test_flash(c, 1, 150, 256, 2);
    /* dense decode: one split, several splits, a ragged last split */
    test_decode_dense(c, 1, 128, 2);
    test_decode_dense(c, 37, 128, 2);
    test_decode_dense(c, 300, 80, 2);
    test_decode_dense(c, 1537, 128, 2);
    if (!quick) test_decode_dense(c, 1000, 256, 2), test_decode_dense(c, 70, 10, 2);
    /* sparse prefill */
    int Ts[] = {1, 37, 300, 1000};
    int nT = quick ? 3 : 4;
    for (int i = 0; i < nT; i++) {
        test_sparse(c, mk(SEL_INDEX, HFN_SOFTMAX, 8, 16, 4, 16, 4, 0, 128), Ts[i], 128, 2);
        test_sparse(c, mk(SEL_BLOCK, HFN_SOFTMAX, 16, 16, 4, 16, 4, 0, 128), Ts[i], 128, 2);
    }
    test_sparse(c, mk(SEL_INDEX, HFN_SOFTMAX, 64, 8, 1, 16, 4, 0, 128), quick ? 300 : 1000, 128, 2);
    test_sparse(c, mk(SEL_INDEX, HFN_SOFTMAX, 300, 16, 2, 16, 4, 0, 128), 37, 128, 2);
    test_sparse(c, mk(SEL_BLOCK, HFN_SOFTMAX, 16, 16, 4, 8, 1, 0, 128), 100, 128, 2);
    test_sparse(c, mk(SEL_BLOCK, HFN_SOFTMAX, 16, 16, 4, 4, 3, 1, 128), 300, 80, 2);
    test_sparse(c, mk(SEL_INDEX, HFN_MLP, 16, 16, 4, 16, 4, 0, 128), 300, 128, 2);
    test_sparse(c, mk(SEL_BLOCK, HFN_MLP, 16, 16, 4, 4, 2, 0, 64), 100, 80, 2);
    if (!quick) test_sparse(c, mk(SEL_INDEX, HFN_SOFTMAX, 2048, 16, 1, 16, 4, 0, 128), 3000, 128, 2);
    /* sparse decode */
    int Td[] = {1, 37, 300, 1000, 5000};
    int nTd = quick ? 4 : 5;
    for (int i = 0; i < nTd; i++) {
        test_decode_sparse(c, mk(SEL_INDEX, HFN_SOFTMAX, 64, 16, 4, 16, 4, 0, 128), Td[i], 128, 2);
        test_decode_sparse(c, mk(SEL_BLOCK, HFN_SOFTMAX, 16, 16, 4, 16, 4, 0, 128), Td[i], 128, 2);
    }
    test_decode_sparse(c, mk(SEL_BLOCK, HFN_SOFTMAX, 16, 16, 4, 8, 3, 1, 128), 301, 80, 2);
    test_decode_sparse(c, mk(SEL_INDEX, HFN_MLP, 16, 16, 4, 16, 4, 0, 128), 300, 128, 2);
    test_decode_sparse(c, mk(SEL_BLOCK, HFN_MLP, 16, 16, 4, 4, 2, 0, 64), 100, 80, 2);
}

int main(int argc, char **argv) {
    /* --tblock / --lindex: only that group (parity_tblock.c / parity_lindex.c) */
    int quick = 0, only_tblock = 0, only_lindex = 0;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--quick")) quick = 1;
        else if (!strcmp(argv[a], "--tblock")) only_tblock = 1;
        else if (!strcmp(argv[a], "--lindex")) only_lindex = 1;
        else return fprintf(stderr, "usage: cuda-parity [--quick] [--tblock | --lindex]\n"), 2;
    }
    ctx c;
    memset(&c, 0, sizeof c);
    sattn_err e;
    if (sa_cuda_open(&c.g, &e)) {
        printf("cuda-parity: SKIPPED: %s\n", e.msg);
        return 77;
    }
    printf("cuda-parity on %s (tolerance %.0e)\n", sa_cuda_name(c.g), TOL);
    rng_seed(&c.rng, 20261128);
    if (!only_tblock && !only_lindex) parity_kernels(&c, quick);
    if (!only_lindex) parity_tblock(&c, quick);
    if (!only_tblock) parity_lindex(&c, quick);
    printf("cuda-parity: %d of %d checks passed (%d of %d selection rows were accepted near-ties)\n",
           c.checks - c.fails, c.checks, c.near_rows, c.rows);
    sa_cuda_close(c.g);
    return c.fails ? 1 : 0;
}
