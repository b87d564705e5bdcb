/* tcmp: NSA's compressed branch for tile-shared layers (include/sattn/tcmp.h). */
#include "sattn/tcmp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sattn/core.h"

void tcmp_init(float *params, int hs) { memset(params, 0, tcmp_param_count(hs) * sizeof(float)); }

size_t tcmp_cache_floats(int B, int T, int C, int H) {
    return (size_t)B * T * C + 2 * (size_t)B * H * T;
}

size_t tcmp_scratch_floats(int B, int T, int C, int H, int b) {
    size_t hs = (size_t)(C / H), nb = (size_t)(T / b);
    return (size_t)B * H * (4 * nb * hs + hs + 1);
}

typedef struct {
    int B, T, C, H, hs, b, nb; /* nb: complete blocks */
    float scale;               /* 1 / sqrt(hs) */
} cmp_geom;

static cmp_geom geom(int B, int T, int C, int H, int b) {
    return (cmp_geom){B, T, C, H, C / H, b, T / b, 1.0f / sqrtf((float)(C / H))};
}

static float dot(const float *a, const float *b, int n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int d = 0; d < n; d++) s += a[d] * b[d];
    return s;
}

static void axpy(float *y, float a, const float *x, int n) {
#pragma omp simd
    for (int d = 0; d < n; d++) y[d] += a * x[d];
}

/* Kbar, Vbar (nb, hs) of batch row bb, head h: the means of each complete block's keys and
 * values (qkv columns C + h hs and 2C + h hs). */
static void pool(const cmp_geom *g, const float *qkv, int bb, int h, float *kbar, float *vbar) {
    size_t ld = 3 * (size_t)g->C;
    memset(kbar, 0, (size_t)g->nb * g->hs * sizeof(float));
    memset(vbar, 0, (size_t)g->nb * g->hs * sizeof(float));
    for (int j = 0; j < g->nb; j++)
        for (int s = j * g->b; s < (j + 1) * g->b; s++) {
            const float *row = qkv + ((size_t)bb * g->T + s) * ld + (size_t)h * g->hs;
            axpy(kbar + (size_t)j * g->hs, 1.0f / (float)g->b, row + g->C, g->hs);
            axpy(vbar + (size_t)j * g->hs, 1.0f / (float)g->b, row + 2 * g->C, g->hs);
        }
}

/* One query: scores q . Kbar_j scale over j < i into p (exponentiated, shifted by the max),
 * returns lse; c = the softmax-weighted Vbar. */
static float attend(const cmp_geom *g, const float *q, const float *kbar, const float *vbar, int i, float *p,
                    float *c) {
    float m = -INFINITY, z = 0.0f;
    for (int j = 0; j < i; j++) {
        p[j] = dot(q, kbar + (size_t)j * g->hs, g->hs) * g->scale;
        m = p[j] > m ? p[j] : m;
    }
    memset(c, 0, (size_t)g->hs * sizeof(float));
    for (int j = 0; j < i; j++) p[j] = expf(p[j] - m), z += p[j];
    for (int j = 0; j < i; j++) axpy(c, p[j] / z, vbar + (size_t)j * g->hs, g->hs);
    return m + logf(z);
}

static float sigmoid(float z) { return 1.0f / (1.0f + expf(-z)); }

/* Tile i of (bb, h): c, lse, g of its queries into the cache, out += g c. */
static void fwd_tile(const cmp_geom *g, float *out, float *cache, const float *qkv, int bb, int h, int i,
                     const float *kbar, const float *vbar, const float *w, float *p) {
    size_t ld = 3 * (size_t)g->C, bht = ((size_t)bb * g->H + h) * g->T;
    float *cc = cache, *lse = cache + (size_t)g->B * g->T * g->C, *gate = lse + (size_t)g->B * g->H * g->T;
    int t1 = (i + 1) * g->b < g->T ? (i + 1) * g->b : g->T;
    for (int t = i * g->b; t < t1; t++) {
        const float *q = qkv + ((size_t)bb * g->T + t) * ld + (size_t)h * g->hs;
        float *c = cc + ((size_t)bb * g->T + t) * g->C + (size_t)h * g->hs;
        lse[bht + t] = attend(g, q, kbar, vbar, i, p, c);
        gate[bht + t] = sigmoid(dot(w, q, g->hs) + w[g->hs]);
        axpy(out + ((size_t)bb * g->T + t) * g->C + (size_t)h * g->hs, gate[bht + t], c, g->hs);
    }
}

void tcmp_forward(float *out, float *cache, const float *qkv, int B, int T, int C, int H, int b,
                  const float *const *params) {
    cmp_geom g = geom(B, T, C, H, b);
    int nt = (T + b - 1) / b;
    size_t per = (size_t)g.nb * g.hs;
    float *pooled = xmalloc(2 * (size_t)B * H * per * sizeof(float) + 1);
    /* tile 0 sees no compressed block: c = 0, g still defined (its gradient is then 0) */
#pragma omp parallel
    {
        float *p = xmalloc(((size_t)nt + 1) * sizeof(float));
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * H; bh++)
            pool(&g, qkv, bh / H, bh % H, pooled + 2 * (size_t)bh * per, pooled + (2 * (size_t)bh + 1) * per);
#pragma omp for collapse(2) schedule(dynamic)
        for (int bh = 0; bh < B * H; bh++)
            for (int i = 0; i < nt; i++)
                fwd_tile(&g, out, cache, qkv, bh / H, bh % H, i, pooled + 2 * (size_t)bh * per,
                         pooled + (2 * (size_t)bh + 1) * per, params[bh % H], p);
        free(p);
    }
    free(pooled);
}

typedef struct {
    float *kbar, *vbar, *dk, *dv; /* (nb, hs) each */
    float *dw;                    /* hs + 1: this (bb, h)'s gate gradient */
} bwd_bufs;

/* One query t of tile i >= 1: with dO = dout_t (head h), c, g and lse from the forward:
 *   gate:  dz = (dO . c) g (1 - g);  dw += dz q, du += dz, dq += dz w;
 *   attention on dC = g dO (P recomputed from lse, D = dC . c):
 *     dVbar_j += P_j dC,  dS_j = P_j (dC . Vbar_j - D) scale,  dKbar_j += dS_j q,  dq += dS_j Kbar_j. */
static void bwd_query(const cmp_geom *g, const bwd_bufs *w, const float *q, float *dq, const float *dO,
                      const float *c, float gt, float lse, const float *wh, int i, float *dC) {
    float dz = dot(dO, c, g->hs) * gt * (1.0f - gt);
    axpy(w->dw, dz, q, g->hs);
    w->dw[g->hs] += dz;
    axpy(dq, dz, wh, g->hs);
    for (int d = 0; d < g->hs; d++) dC[d] = gt * dO[d];
    float D = dot(dC, c, g->hs);
    for (int j = 0; j < i; j++) {
        const float *kj = w->kbar + (size_t)j * g->hs, *vj = w->vbar + (size_t)j * g->hs;
        float P = expf(dot(q, kj, g->hs) * g->scale - lse);
        float dS = P * (dot(dC, vj, g->hs) - D) * g->scale;
        axpy(w->dv + (size_t)j * g->hs, P, dC, g->hs);
        axpy(w->dk + (size_t)j * g->hs, dS, q, g->hs);
        axpy(dq, dS, kj, g->hs);
    }
}

/* The pooled gradients back to the keys and values of each complete block: d k_s += dKbar_j / b. */
static void unpool(const cmp_geom *g, const bwd_bufs *w, float *dqkv, int bb, int h) {
    size_t ld = 3 * (size_t)g->C;
    for (int j = 0; j < g->nb; j++)
        for (int s = j * g->b; s < (j + 1) * g->b; s++) {
            float *row = dqkv + ((size_t)bb * g->T + s) * ld + (size_t)h * g->hs;
            axpy(row + g->C, 1.0f / (float)g->b, w->dk + (size_t)j * g->hs, g->hs);
            axpy(row + 2 * g->C, 1.0f / (float)g->b, w->dv + (size_t)j * g->hs, g->hs);
        }
}

static void bwd_head(const cmp_geom *g, float *dqkv, const float *dout, const float *qkv, const float *cache, int bb,
                     int h, const float *wh, const bwd_bufs *w, float *dC) {
    size_t ld = 3 * (size_t)g->C, bht = ((size_t)bb * g->H + h) * g->T;
    const float *cc = cache, *lse = cache + (size_t)g->B * g->T * g->C, *gate = lse + (size_t)g->B * g->H * g->T;
    size_t per = (size_t)g->nb * g->hs;
    pool(g, qkv, bb, h, w->kbar, w->vbar);
    memset(w->dk, 0, 2 * per * sizeof(float)); /* dk, dv adjacent */
    memset(w->dw, 0, ((size_t)g->hs + 1) * sizeof(float));
    for (int t = g->b; t < g->T; t++) { /* tile 0 has no compressed block: nothing flows */
        size_t row = (size_t)bb * g->T + t, col = (size_t)h * g->hs;
        bwd_query(g, w, qkv + row * ld + col, dqkv + row * ld + col, dout + row * g->C + col, cc + row * g->C + col,
                  gate[bht + t], lse[bht + t], wh, t / g->b, dC);
    }
    unpool(g, w, dqkv, bb, h);
}

void tcmp_backward(float *dqkv, float *const *dparams, const float *dout, const float *qkv, const float *cache,
                   int B, int T, int C, int H, int b, const float *const *params, float *scratch) {
    cmp_geom g = geom(B, T, C, H, b);
    size_t per = (size_t)g.nb * g.hs, stride = 4 * per + (size_t)g.hs + 1;
#pragma omp parallel
    {
        float *dC = xmalloc((size_t)g.hs * sizeof(float));
#pragma omp for schedule(dynamic)
        for (int bh = 0; bh < B * H; bh++) {
            float *s = scratch + (size_t)bh * stride;
            bwd_bufs w = {s, s + per, s + 2 * per, s + 3 * per, s + 4 * per};
            bwd_head(&g, dqkv, dout, qkv, cache, bh / H, bh % H, params[bh % H], &w, dC);
        }
        free(dC);
    }
    if (!dparams) return;
    for (int h = 0; h < H; h++) /* batch rows in order: the same sum for any thread count */
        for (int bb = 0; bb < B; bb++) {
            const float *dw = scratch + ((size_t)bb * H + h) * stride + 4 * per;
            for (int d = 0; d <= g.hs; d++) dparams[h][d] += dw[d];
        }
}
