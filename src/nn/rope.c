/* rope: rotary position embeddings on q and k (math and layout in sattn/rope.h). */
#include "sattn/rope.h"

#include <math.h>
#include <stdlib.h>

#include "sattn/core.h"

/* cs[t*half + i] = cos theta(pos0 + t, i), sn[...] = sin, theta as in rope.h. The angle
 * is formed in double: p * base^(-2i/hs) with p up to ~1e6 would lose most of its
 * fractional digits in float, and those digits are the rotation. */
static void rope_table(float *cs, float *sn, int T, int hs, int pos0, float base, float pos_scale) {
    int half = hs / 2;
    double *freq = xmalloc((size_t)half * sizeof(double));
    for (int i = 0; i < half; i++) freq[i] = pow((double)base, -2.0 * i / hs);
#pragma omp parallel for if ((long)T * half > 4096)
    for (int t = 0; t < T; t++) {
        double p = (double)(pos0 + (long)t) * (double)pos_scale;
        for (int i = 0; i < half; i++) {
            double a = p * freq[i];
            cs[(size_t)t * half + i] = (float)cos(a);
            sn[(size_t)t * half + i] = (float)sin(a);
        }
    }
    free(freq);
}

/* Rotates the 2H head vectors (q and k) of one row x (3C floats) by the angles of one
 * table row: sign = +1 the forward rotation, -1 its inverse (the transpose), which is
 * the backward since the map is linear and orthogonal. */
static void rope_row(float *x, const float *cs, const float *sn, int C, int H, float sign) {
    int hs = C / H, half = hs / 2;
    for (int v = 0; v < 2 * H; v++) { /* q heads, then k heads: columns [0, 2C) */
        float *a = x + (size_t)v * hs, *b = a + half;
        for (int i = 0; i < half; i++) {
            float c = cs[i], s = sign * sn[i], x0 = a[i], x1 = b[i];
            a[i] = x0 * c - x1 * s;
            b[i] = x0 * s + x1 * c;
        }
    }
}

static void rope_apply(float *qkv, int B, int T, int C, int H, int pos0, float base, float pos_scale,
                       float sign) {
    if (B < 1 || T < 1 || H < 1 || C % H != 0 || (C / H) % 2 != 0 || pos0 < 0 ||
        !(base > 0.0f) || !isfinite(base) || !(pos_scale > 0.0f) || !isfinite(pos_scale))
        die_at(__FILE__, __LINE__, "rope: B=%d T=%d C=%d H=%d pos0=%d base=%g scale=%g (need an "
               "even head dim, positive finite base and scale)", B, T, C, H, pos0, (double)base,
               (double)pos_scale);
    int half = C / H / 2;
    float *cs = xmalloc(2 * (size_t)T * half * sizeof(float)), *sn = cs + (size_t)T * half;
    rope_table(cs, sn, T, C / H, pos0, base, pos_scale);
    long rows = (long)B * T;
#pragma omp parallel for if (rows * C > 16384)
    for (long r = 0; r < rows; r++) {
        size_t t = (size_t)(r % T);
        rope_row(qkv + (size_t)r * 3 * C, cs + t * half, sn + t * half, C, H, sign);
    }
    free(cs);
}

void rope_forward(float *qkv, int B, int T, int C, int H, int pos0, float base, float pos_scale) {
    rope_apply(qkv, B, T, C, H, pos0, base, pos_scale, 1.0f);
}

void rope_backward(float *dqkv, int B, int T, int C, int H, int pos0, float base, float pos_scale) {
    rope_apply(dqkv, B, T, C, H, pos0, base, pos_scale, -1.0f);
}
