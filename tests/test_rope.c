/* Tests of rope.h: the float kernel against the double reference of tests/ref.c on awkward
 * sizes, its backward against central finite differences in double, and the property RoPE
 * exists for (q.k after rotation depends on the positions only through their difference).
 *
 * Tolerances: the kernel rounds cos and sin to float and multiplies in float, so each
 * rotated value is within a few ulp (~2e-7 relative to the row's scale) of the double
 * rotation; 2e-6 relative to each tensor's largest value is 10x that, while a wrong angle,
 * pairing or sign is O(1). The finite differences of a linear map are exact up to double
 * rounding (~1e-10). */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "ref.h"
#include "sattn/rope.h"

typedef struct {
    int B, T, C, H, pos0;
    float base, scale;
} rope_case;

/* H = 3 heads of dim 2 (one pair each); hs = 6 (three pairs); T = 1; a far start position;
 * an interpolation factor that is not a power of two; a base other than 10000. */
static const rope_case CASES[] = {
    {2, 5, 6, 3, 0, 10000.0f, 1.0f},      {1, 7, 12, 2, 0, 10000.0f, 1.0f},
    {3, 1, 12, 2, 0, 10000.0f, 1.0f},     {1, 1, 6, 3, 4095, 10000.0f, 1.0f},
    {2, 9, 18, 3, 100000, 500.0f, 0.37f}, {1, 33, 64, 4, 17, 10000.0f, 0.25f},
    {2, 4, 8, 1, 3, 1e6f, 3.0f},
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

static float *rand_qkv(const rope_case *c, rng_t *r) {
    size_t n = (size_t)c->B * c->T * 3 * c->C;
    float *x = ref_falloc(n);
    ref_fill_normal(x, n, 1.0f, r);
    return x;
}

Test(rope, forward_matches_reference) {
    rng_t r;
    rng_seed(&r, 101);
    for (size_t k = 0; k < N_CASES; k++) {
        const rope_case *c = &CASES[k];
        size_t n = (size_t)c->B * c->T * 3 * c->C;
        float *x = rand_qkv(c, &r), *v0 = ref_falloc(n);
        memcpy(v0, x, n * sizeof(float));
        double *xd = ref_f2d(x, n);
        rope_forward(x, c->B, c->T, c->C, c->H, c->pos0, c->base, c->scale);
        ref_rope_forward(xd, c->B, c->T, c->C, c->H, c->pos0, c->base, c->scale);
        double e = ref_rel_err(x, xd, n);
        cr_assert(e <= 2e-6, "case %zu (B%d T%d C%d H%d pos0 %d): rel err %.3g", k, c->B, c->T,
                  c->C, c->H, c->pos0, e);
        for (size_t row = 0; row < (size_t)c->B * c->T; row++) /* v is not touched */
            cr_assert_arr_eq(x + row * 3 * c->C + 2 * c->C, v0 + row * 3 * c->C + 2 * c->C,
                             (size_t)c->C * sizeof(float), "case %zu: v of row %zu changed", k, row);
        free(x), free(v0), free(xd);
    }
}

/* Position 0 is the identity (angle 0 for every pair): bit for bit. */
Test(rope, position_zero_is_identity) {
    rng_t r;
    rng_seed(&r, 102);
    rope_case c = {3, 1, 12, 2, 0, 10000.0f, 1.0f};
    float *x = rand_qkv(&c, &r), *y = ref_falloc(3 * 36);
    memcpy(y, x, 3 * 36 * sizeof(float));
    rope_forward(y, 3, 1, 12, 2, 0, 10000.0f, 0.5f);
    cr_assert_arr_eq(x, y, 3 * 36 * sizeof(float));
    free(x), free(y);
}

/* L(x) = sum R . rope(x) in double: d L / d x by central differences, against rope_backward
 * applied to R (float). */
Test(rope, backward_matches_finite_differences) {
    rng_t r;
    rng_seed(&r, 103);
    for (size_t k = 0; k < N_CASES; k++) {
        const rope_case *c = &CASES[k];
        size_t n = (size_t)c->B * c->T * 3 * c->C;
        float *x = rand_qkv(c, &r), *g = rand_qkv(c, &r);
        double *xd = ref_f2d(x, n), *R = ref_f2d(g, n), *fd = ref_dalloc(n), *y = ref_dalloc(n);
        const double eps = 1e-5;
        for (size_t i = 0; i < n; i++) {
            double s[2], save = xd[i];
            for (int side = 0; side < 2; side++) {
                xd[i] = save + (side ? -eps : eps);
                memcpy(y, xd, n * sizeof(double));
                ref_rope_forward(y, c->B, c->T, c->C, c->H, c->pos0, c->base, c->scale);
                s[side] = 0;
                for (size_t j = 0; j < n; j++) s[side] += R[j] * y[j];
            }
            xd[i] = save;
            fd[i] = (s[0] - s[1]) / (2 * eps);
        }
        rope_backward(g, c->B, c->T, c->C, c->H, c->pos0, c->base, c->scale);
        double e = ref_rel_err(g, fd, n);
        cr_assert(e <= 2e-6, "case %zu: backward vs finite differences rel err %.3g", k, e);
        free(x), free(g), free(xd), free(R), free(fd), free(y);
    }
}

/* The backward is the inverse rotation: backward(forward(x)) = x to float rounding. */
Test(rope, backward_inverts_forward) {
    rng_t r;
    rng_seed(&r, 104);
    const rope_case *c = &CASES[4];
    size_t n = (size_t)c->B * c->T * 3 * c->C;
    float *x = rand_qkv(c, &r), *y = ref_falloc(n);
    memcpy(y, x, n * sizeof(float));
    rope_forward(y, c->B, c->T, c->C, c->H, c->pos0, c->base, c->scale);
    rope_backward(y, c->B, c->T, c->C, c->H, c->pos0, c->base, c->scale);
    double *xd = ref_f2d(x, n);
    cr_assert(ref_rel_err(y, xd, n) <= 1e-6);
    free(x), free(y), free(xd);
}

/* q at position t and k at position s (one row each, one head of dim hs): the score after
 * rotation. */
static double rotated_score(const float *q, const float *k, int hs, int t, int s, float base,
                            float scale) {
    float *a = ref_falloc(3 * (size_t)hs), *b = ref_falloc(3 * (size_t)hs);
    memcpy(a, q, hs * sizeof(float));
    memcpy(b + hs, k, hs * sizeof(float));
    rope_forward(a, 1, 1, hs, 1, t, base, scale);
    rope_forward(b, 1, 1, hs, 1, s, base, scale);
    double d = 0;
    for (int i = 0; i < hs; i++) d += (double)a[i] * b[hs + i];
    free(a), free(b);
    return d;
}

/* q_t . k_s = q_{t+d} . k_{s+d}: shifts of 1 to 10^5 positions, with and without
 * interpolation; and the score does change with the distance (it is not trivially constant). */
Test(rope, score_depends_only_on_distance) {
    rng_t r;
    rng_seed(&r, 105);
    int hs = 16;
    float q[16], k[16];
    ref_fill_normal(q, 16, 1.0f, &r);
    ref_fill_normal(k, 16, 1.0f, &r);
    const float scales[] = {1.0f, 0.5f, 0.3f};
    const int shifts[] = {1, 7, 100, 4096, 100000};
    for (int si = 0; si < 3; si++)
        for (int dist = 0; dist < 12; dist += 3) {
            double s0 = rotated_score(q, k, hs, 5 + dist, 5, 10000.0f, scales[si]);
            for (int j = 0; j < 5; j++) {
                int d = shifts[j];
                double s1 = rotated_score(q, k, hs, 5 + dist + d, 5 + d, 10000.0f, scales[si]);
                cr_assert(fabs(s1 - s0) <= 2e-5 * 16, "scale %g dist %d shift %d: %.8g vs %.8g",
                          scales[si], dist, d, s1, s0);
            }
        }
    double near = rotated_score(q, k, hs, 5, 5, 10000.0f, 1.0f);
    double far = rotated_score(q, k, hs, 8, 5, 10000.0f, 1.0f);
    cr_assert(fabs(near - far) > 1e-2, "score does not change with distance: %g vs %g", near, far);
}

/* Rows are independent: one thread and two give the same bits. */
Test(rope, thread_count_invariant) {
    rng_t r;
    rng_seed(&r, 106);
    rope_case c = {4, 300, 64, 4, 0, 10000.0f, 1.0f};
    size_t n = (size_t)c.B * c.T * 3 * c.C;
    float *x = rand_qkv(&c, &r), *y = ref_falloc(n);
    memcpy(y, x, n * sizeof(float));
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    rope_forward(x, c.B, c.T, c.C, c.H, 0, c.base, c.scale);
    omp_set_num_threads(2);
    rope_forward(y, c.B, c.T, c.C, c.H, 0, c.base, c.scale);
    omp_set_num_threads(nt);
    cr_assert_arr_eq(x, y, n * sizeof(float));
    free(x), free(y);
}

Test(rope, odd_head_dim_dies, .signal = SIGABRT) {
    float x[3 * 6] = {0};
    rope_forward(x, 1, 1, 6, 2, 0, 10000.0f, 1.0f); /* hs = 3 */
}
